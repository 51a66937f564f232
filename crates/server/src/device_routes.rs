//! Users and their devices: the directory (identity key, certificates, signed device list),
//! publishing a new device list, revoking a device, and claiming key packages.
//!
//! The server stores a user's signed device list and serves it, but cannot make one: only the
//! identity key signs it. It checks what it can before storing one (the signature, a version
//! above the stored one, only active devices of the user), and the store hands out key
//! packages of listed devices only, so that an honest server never shows a client a device the
//! list does not vouch for (a device being linked is listed once its key packages are up).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use missive_proto::api::*;
use missive_proto::cert::DeviceCertificate;
use missive_proto::devicelist::DeviceList;
use missive_proto::kt::Leaf;
use missive_proto::{ErrorBody, ErrorCode, B64};

use crate::auth::Device;
use crate::error::AppError;
use crate::routes::{ApiJson, ApiResult};
use crate::store::UserRecord;
use crate::{now_secs, AppState};

/// `GET /v1/users/{address}?since=N`: N is the size of the last log head the client saw.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct UserQuery {
    since: Option<u64>,
}

/// Most log leaves returned by one `GET /v1/transparency/entries`.
const MAX_KT_ENTRIES: u32 = 1000;

/// `GET /v1/transparency/entries?from=N&limit=M`.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct EntriesQuery {
    #[serde(default)]
    from: u64,
    limit: Option<u32>,
}

/// `GET /v1/transparency?since=N&peer=M`: N is the size of the last head the client accepted,
/// M that of a head another member passed on.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct HeadQuery {
    since: Option<u64>,
    peer: Option<u64>,
}

/// The key transparency log's key and current head, proven to extend the heads named.
#[utoipa::path(get, path = "/v1/transparency", params(HeadQuery),
    responses((status = 200, body = TransparencyInfo), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn transparency_info(
    State(state): State<AppState>,
    _device: Device,
    query: Result<Query<HeadQuery>, QueryRejection>,
) -> ApiResult<TransparencyInfo> {
    let Query(q) =
        query.map_err(|e| AppError::bad_request(ErrorCode::MalformedRequest, e.body_text()))?;
    let kt = state.transparency();
    let (head, consistency, peer_consistency) =
        kt.current_head(state.store(), q.since, q.peer).await?;
    Ok(Json(TransparencyInfo {
        domain: kt.domain().to_owned(),
        key: B64(kt.public_key().to_vec()),
        head,
        consistency,
        peer_consistency,
    }))
}

/// The organisation's rules every client applies: the longest retention, the sensitivity
/// labels with their rules.
#[utoipa::path(get, path = "/v1/policy",
    responses((status = 200, body = Policy), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn get_policy(State(state): State<AppState>, _device: Device) -> ApiResult<Policy> {
    Ok(Json(state.config().policy()))
}

/// Leaves of the key transparency log, in order (for auditors: they rebuild the tree and
/// compare its root with the signed heads they saw). Open to the domain's devices only: the
/// leaves name every address.
#[utoipa::path(get, path = "/v1/transparency/entries", params(EntriesQuery),
    responses((status = 200, body = KtEntries), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn transparency_entries(
    State(state): State<AppState>,
    _device: Device,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> ApiResult<KtEntries> {
    let Query(q) =
        query.map_err(|e| AppError::bad_request(ErrorCode::MalformedRequest, e.body_text()))?;
    let limit = q.limit.unwrap_or(MAX_KT_ENTRIES).clamp(1, MAX_KT_ENTRIES);
    let entries = state.store().kt_entries(q.from, limit).await?;
    Ok(Json(KtEntries {
        entries: entries.into_iter().map(B64).collect(),
    }))
}

/// Every leaf of the caller's own address, with proofs under one head: a user's devices
/// watch what the log holds in their name.
#[utoipa::path(get, path = "/v1/transparency/mine", params(UserQuery),
    responses((status = 200, body = KtOwnEntries), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn transparency_mine(
    State(state): State<AppState>,
    device: Device,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> ApiResult<KtOwnEntries> {
    let since = query.ok().and_then(|Query(q)| q.since);
    let entries = state.store().kt_entries_of(&device.address).await?;
    Ok(Json(
        state
            .transparency()
            .prove_all(state.store(), entries, since)
            .await?,
    ))
}

/// Adds a device to `address`'s account, on a certificate signed by the user's identity key
/// for that address (a linked or recovered device). Returns its id and token.
pub async fn add_certified_device(
    state: &AppState,
    address: &str,
    certificate: Vec<u8>,
) -> Result<(String, String), AppError> {
    let cert = DeviceCertificate::from_bytes(&certificate)
        .and_then(|c| c.verify().map(|()| c))
        .map_err(|e| AppError::bad_request(ErrorCode::InvalidCertificate, e.to_string()))?;
    let user = state
        .store()
        .user(address)
        .await?
        .ok_or_else(|| AppError::not_found("no such user"))?;
    if cert.address != address || cert.identity_key.as_slice() != user.identity_key {
        return Err(AppError::bad_request(
            ErrorCode::InvalidCertificate,
            "the certificate is not signed by this account's identity key for its address",
        ));
    }
    let device_id = cert.device_id_hex();
    let secret = crate::auth::new_secret();
    state
        .store()
        .add_device(
            address,
            crate::store::NewDevice {
                device_id: device_id.clone(),
                certificate,
                token_hash: crate::auth::hash_secret(&secret),
            },
            now_secs(),
        )
        .await?;
    let token = format!("{device_id}.{secret}");
    Ok((device_id, token))
}

/// The parsed list of a user (the server verified it when it was published).
fn current_list(user: &UserRecord) -> Option<DeviceList> {
    user.device_list
        .as_deref()
        .and_then(|bytes| DeviceList::from_bytes(bytes).ok())
}

/// A user's identity key, device certificates and signed device list.
#[utoipa::path(get, path = "/v1/users/{address}",
    params(("address" = String, Path, description = "the user's address"), UserQuery),
    responses((status = 200, body = UserResponse), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    _device: Device,
    Path(address): Path<String>,
    query: Result<Query<UserQuery>, QueryRejection>,
) -> ApiResult<UserResponse> {
    let since = query.ok().and_then(|Query(q)| q.since);
    // An address of a domain served elsewhere is not "unknown": say which it is, so that a
    // person knows whether a typo or the domain is at fault.
    if let Some((_, domain)) = crate::config::split_address(&address) {
        if !state.config().allows(&address) {
            return Err(AppError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::DomainNotAllowed,
                format!("this server does not serve addresses of {domain}"),
            ));
        }
    }
    let user = state
        .store()
        .user(&address)
        .await?
        .ok_or_else(|| AppError::not_found("no such user"))?;
    // The proof for the list served: its leaf, found by version (a list published meanwhile
    // has a leaf of its own, so the two always match).
    let transparency = match current_list(&user) {
        Some(list) => match state.store().kt_index(&user.address, list.version).await? {
            Some(index) => {
                state
                    .transparency()
                    .prove(state.store(), index, since)
                    .await?
            }
            None => None,
        },
        None => None,
    };
    Ok(Json(UserResponse {
        transparency,
        address: user.address,
        identity_key: B64(user.identity_key),
        devices: user
            .devices
            .into_iter()
            .map(|(device_id, cert)| DeviceInfo {
                device_id,
                certificate: B64(cert),
            })
            .collect(),
        device_list: user.device_list.map(B64),
    }))
}

/// Publishes the caller's user's next signed device list (after linking a device, before
/// revoking one).
#[utoipa::path(put, path = "/v1/device-list", request_body = PublishDeviceListRequest,
    responses((status = 200, body = DeviceListVersion), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn publish_device_list(
    State(state): State<AppState>,
    device: Device,
    ApiJson(req): ApiJson<PublishDeviceListRequest>,
) -> ApiResult<DeviceListVersion> {
    let invalid = |why: &str| AppError::bad_request(ErrorCode::InvalidDeviceList, why);
    let user = state
        .store()
        .user(&device.address)
        .await?
        .ok_or_else(AppError::unauthorized)?;
    let list = DeviceList::open(
        req.device_list.as_bytes(),
        &user.address,
        &user.identity_key,
    )
    .map_err(|e| {
        invalid(&format!(
            "{e}: a device list is signed by your identity key"
        ))
    })?;
    // Every listed device is an active device of this user, with the key its certificate
    // names; the caller is one of them (a device does not de-list itself).
    for listed in &list.devices {
        let id = listed.device_id_hex();
        let known = user.devices.iter().any(|(d, cert)| {
            *d == id
                && DeviceCertificate::from_bytes(cert)
                    .is_ok_and(|c| c.device_key == listed.device_key)
        });
        if !known {
            return Err(invalid(&format!(
                "device {id} is not an active device of yours with that key"
            )));
        }
    }
    if !list.lists_id(&device.device_id) {
        return Err(invalid("the list must name the device publishing it"));
    }
    let listed = list.devices.iter().map(|d| d.device_id_hex()).collect();
    let leaf = Leaf::of_list(
        &user.address,
        list.identity_key,
        list.version,
        req.device_list.as_bytes(),
    );
    state
        .store()
        .publish_device_list(
            &user.address,
            list.version,
            req.device_list.0,
            listed,
            leaf.to_bytes(),
        )
        .await?;
    tracing::info!(device = %device.device_id, version = list.version, "device list published");
    Ok(Json(DeviceListVersion {
        version: list.version,
    }))
}

/// Claims one key package per device on a user's signed device list.
#[utoipa::path(post, path = "/v1/key-packages/claim", request_body = ClaimKeyPackagesRequest,
    responses((status = 200, body = ClaimKeyPackagesResponse), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn claim_key_packages(
    State(state): State<AppState>,
    _device: Device,
    ApiJson(req): ApiJson<ClaimKeyPackagesRequest>,
) -> ApiResult<ClaimKeyPackagesResponse> {
    let Some(user) = state.store().user(&req.address).await? else {
        return Err(AppError::not_found("no such user"));
    };
    if user.device_list.is_none() {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            ErrorCode::NoKeyPackage,
            "this user has not published a device list yet (registration unfinished)",
        ));
    }
    let claimed = state.store().claim_key_packages(&req.address).await?;
    Ok(Json(ClaimKeyPackagesResponse {
        key_packages: claimed
            .into_iter()
            .map(|(device_id, kp)| ClaimedKeyPackage {
                device_id,
                key_package: B64(kp),
            })
            .collect(),
    }))
}

/// Revokes another device of the caller's account, once the user's signed device list no
/// longer names it: its token stops working at once, its live connections end and its key
/// packages are deleted. Removing it from conversations is the clients' part (MLS commits).
#[utoipa::path(delete, path = "/v1/devices/{device_id}",
    params(("device_id" = String, Path, description = "hex device id")),
    responses((status = 204, description = "revoked"), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn revoke_device(
    State(state): State<AppState>,
    device: Device,
    device_id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, AppError> {
    let device_id = device_id.map(|Path(d)| d).unwrap_or_default();
    if device_id.len() != 32
        || !device_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(AppError::bad_request(
            ErrorCode::MalformedRequest,
            "a device id is 32 lowercase hex digits",
        ));
    }
    if device_id == device.device_id {
        return Err(AppError::bad_request(
            ErrorCode::MalformedRequest,
            "a device cannot revoke itself; revoke it from another of your devices",
        ));
    }
    let user = state
        .store()
        .user(&device.address)
        .await?
        .ok_or_else(AppError::unauthorized)?;
    if current_list(&user).is_none_or(|list| list.lists_id(&device_id)) {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            ErrorCode::DeviceListed,
            "the device is on your signed device list: publish a list without it first",
        ));
    }
    state
        .store()
        .revoke_device(&device.address, &device_id, now_secs())
        .await?;
    state.hub().disconnect(&device_id);
    state.sfu().remove_device(&device_id);
    tracing::info!(device = %device_id, "device revoked");
    Ok(StatusCode::NO_CONTENT)
}
