//! Recovery when every device is lost: the server keeps each user's backup sealed under their
//! recovery key, with the hash of a secret derived from that key. Whoever shows the secret
//! gets the backup and may register a device certified by the user's identity key (which
//! only the backup holds). A wrong secret, an unknown address and an address without backup
//! get the same answer.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use missive_proto::api::*;
use missive_proto::{ErrorBody, ErrorCode};
use sha2::{Digest, Sha256};

use crate::auth::Device;
use crate::error::AppError;
use crate::routes::{ApiJson, ApiResult};
use crate::{now_secs, AppState};

/// Largest sealed backup kept.
pub const MAX_BACKUP: usize = 3 * 1024 * 1024;

fn refused() -> AppError {
    AppError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::RecoveryRefused,
        "no recovery backup of this address opens with this key",
    )
}

fn auth_hash(auth: &[u8]) -> Result<[u8; 32], AppError> {
    if auth.len() != 32 {
        return Err(AppError::bad_request(
            ErrorCode::MalformedRequest,
            "auth must be 32 bytes",
        ));
    }
    Ok(Sha256::digest(auth).into())
}

/// Checks `auth` against `address`'s record; the sealed backup if it matches.
async fn unlock(state: &AppState, address: &str, auth: &[u8]) -> Result<Vec<u8>, AppError> {
    let hash = auth_hash(auth)?;
    let Some((stored, backup)) = state.store().recovery(address).await? else {
        return Err(refused());
    };
    if !same(&stored, &hash) {
        return Err(refused());
    }
    Ok(backup)
}

/// Compares a stored hash with one just made, without an early exit: the time taken says
/// nothing about the stored hash.
fn same(stored: &[u8], hash: &[u8; 32]) -> bool {
    stored
        .iter()
        .zip(hash.iter())
        .fold(stored.len() ^ hash.len(), |acc, (a, b)| {
            acc | usize::from(a ^ b)
        })
        == 0
}

/// Keeps the caller's user's sealed recovery backup.
#[utoipa::path(put, path = "/v1/recovery", request_body = RecoveryUpload,
    responses((status = 204), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn put_recovery(
    State(state): State<AppState>,
    device: Device,
    ApiJson(req): ApiJson<RecoveryUpload>,
) -> Result<StatusCode, AppError> {
    let hash = auth_hash(req.auth.as_bytes())?;
    if req.backup.0.len() > MAX_BACKUP {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("a recovery backup holds at most {MAX_BACKUP} bytes"),
        ));
    }
    // The first key stays: a device holding another one (made where the account's key was
    // not known) would lock the holder of the first out of their own backup.
    if let Some((stored, _)) = state.store().recovery(&device.address).await? {
        if !same(&stored, &hash) {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                ErrorCode::RecoveryKeyExists,
                "this account has a recovery key already, and this device does not hold it",
            ));
        }
    }
    state
        .store()
        .put_recovery(&device.address, hash, req.backup.0, now_secs())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The sealed backup of an address, for whoever holds its recovery key.
#[utoipa::path(post, path = "/v1/recovery/backup", request_body = RecoveryRequest,
    responses((status = 200, body = RecoveryBackup), (status = "4XX", body = ErrorBody)))]
pub async fn get_backup(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RecoveryRequest>,
) -> ApiResult<RecoveryBackup> {
    let backup = unlock(&state, &req.address, req.auth.as_bytes()).await?;
    Ok(Json(RecoveryBackup {
        backup: missive_proto::B64(backup),
    }))
}

/// Registers a recovered device: the recovery key's proof, and a certificate signed by the
/// user's identity key.
#[utoipa::path(post, path = "/v1/recovery/device", request_body = RecoverDeviceRequest,
    responses((status = 200, body = RegisterResponse), (status = "4XX", body = ErrorBody)))]
pub async fn recover_device(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RecoverDeviceRequest>,
) -> ApiResult<RegisterResponse> {
    unlock(&state, &req.address, req.auth.as_bytes()).await?;
    let (device_id, token) =
        crate::device_routes::add_certified_device(&state, &req.address, req.device_certificate.0)
            .await?;
    tracing::info!(device = %device_id, "device recovered");
    Ok(Json(RegisterResponse {
        address: req.address,
        token,
        device_id,
    }))
}

/// Most bytes of history segments kept per user.
pub const HISTORY_QUOTA: u64 = 256 * 1024 * 1024;
/// Segments per page read (each at most the route's 4 MiB body).
const HISTORY_PAGE: u32 = 4;

/// Appends a sealed segment of the caller's user's message history; the device must hold the
/// account's recovery key.
#[utoipa::path(post, path = "/v1/recovery/history", request_body = RecoveryHistoryUpload,
    responses((status = 204), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn put_history(
    State(state): State<AppState>,
    device: Device,
    ApiJson(req): ApiJson<RecoveryHistoryUpload>,
) -> Result<StatusCode, AppError> {
    unlock(&state, &device.address, req.auth.as_bytes()).await?;
    state
        .store()
        .add_history_segment(&device.address, req.segment.0, now_secs(), HISTORY_QUOTA)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The history segments of an address, for whoever holds its recovery key.
#[utoipa::path(post, path = "/v1/recovery/history/read", request_body = RecoveryHistoryRead,
    responses((status = 200, body = RecoveryHistoryPage), (status = "4XX", body = ErrorBody)))]
pub async fn read_history(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RecoveryHistoryRead>,
) -> ApiResult<RecoveryHistoryPage> {
    unlock(&state, &req.address, req.auth.as_bytes()).await?;
    let mut segments = state
        .store()
        .history_segments(&req.address, req.after, HISTORY_PAGE + 1)
        .await?;
    let more = segments.len() > HISTORY_PAGE as usize;
    segments.truncate(HISTORY_PAGE as usize);
    Ok(Json(RecoveryHistoryPage {
        segments: segments
            .into_iter()
            .map(|(index, segment)| RecoveryHistorySegment {
                index,
                segment: missive_proto::B64(segment),
            })
            .collect(),
        more,
    }))
}
