//! HTTP routes of encrypted file transfer: announce a blob, upload it (resumably, from any
//! offset the server confirmed), read its status, download it (whole or a byte range), delete it.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use missive_proto::api::{BlobStatus, CreateBlobRequest};
use missive_proto::{ErrorBody, ErrorCode};

use crate::auth::Device;
use crate::blobs::{is_blob_id, new_blob_id};
use crate::error::AppError;
use crate::routes::ApiJson;
use crate::store::{BlobRecord, NewBlob};
use crate::{now_secs, AppState};

/// The header carrying where an upload request continues.
pub const UPLOAD_OFFSET: &str = "upload-offset";
/// Bytes gathered before a write to the blob store.
const WRITE_BUFFER: usize = 1 << 20;
/// Longest wait for the next piece of an upload's body.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// Bytes written between two durable checkpoints of a long upload.
const CHECKPOINT: u64 = 16 << 20;

/// A blob id in the path.
pub struct BlobPath(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for BlobPath {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) if is_blob_id(&id) => Ok(BlobPath(id)),
            _ => Err(AppError::bad_request(
                ErrorCode::MalformedRequest,
                "a blob id is 32 lowercase hex digits",
            )),
        }
    }
}

fn status_of(record: &BlobRecord) -> BlobStatus {
    BlobStatus {
        id: record.id.clone(),
        size: record.size,
        received: record.received,
        complete: record.complete,
    }
}

fn blob_not_found() -> AppError {
    AppError::not_found("no such blob")
}

fn storage_error(e: std::io::Error) -> AppError {
    AppError::internal(format!("blob storage: {e}"))
}

fn offset_mismatch(received: u64, message: &str) -> AppError {
    AppError {
        received: Some(received),
        ..AppError::new(StatusCode::CONFLICT, ErrorCode::OffsetMismatch, message)
    }
}

/// The blob if `device` may read it: its uploader, or a current member of its group. Anyone
/// else learns nothing, not even that it exists.
async fn readable(state: &AppState, device: &Device, id: &str) -> Result<BlobRecord, AppError> {
    let record = state.store().blob(id).await?.ok_or_else(blob_not_found)?;
    if record.device == device.device_id {
        return Ok(record);
    }
    let members = state.store().group_members(&record.group_id).await?;
    if members.contains(&device.device_id) {
        Ok(record)
    } else {
        Err(blob_not_found())
    }
}

/// Announces a blob of `size` bytes for the members of a group; returns its id.
#[utoipa::path(post, path = "/v1/blobs", request_body = CreateBlobRequest,
    responses((status = 200, body = BlobStatus),
        (status = 413, description = "too large or over quota", body = ErrorBody),
        (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn create_blob(
    State(state): State<AppState>,
    device: Device,
    ApiJson(req): ApiJson<CreateBlobRequest>,
) -> Result<Json<BlobStatus>, AppError> {
    let config = state.config();
    if req.size == 0 || req.size > config.max_blob_bytes {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "a blob has 1 to {} bytes on this server",
                config.max_blob_bytes
            ),
        ));
    }
    let members = state.store().group_members(req.group_id.as_bytes()).await?;
    if !members.contains(&device.device_id) {
        return Err(AppError::forbidden(
            "blobs are shared with a group this device is a member of",
        ));
    }
    let id = new_blob_id();
    state
        .store()
        .create_blob(
            NewBlob {
                id: id.clone(),
                owner: device.address,
                device: device.device_id,
                group_id: req.group_id.0,
                size: req.size,
                now: now_secs(),
                // Beyond the retention, a ttl changes nothing.
                ttl: req.ttl.filter(|t| *t > 0),
            },
            config.blob_quota_bytes,
        )
        .await?;
    Ok(Json(BlobStatus {
        id,
        size: req.size,
        received: 0,
        complete: false,
    }))
}

/// How much of a blob the server holds: where an interrupted upload resumes.
#[utoipa::path(get, path = "/v1/blobs/{id}/status",
    params(("id" = String, Path, description = "blob id")),
    responses((status = 200, body = BlobStatus), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn blob_status(
    State(state): State<AppState>,
    device: Device,
    BlobPath(id): BlobPath,
) -> Result<Json<BlobStatus>, AppError> {
    Ok(Json(status_of(&readable(&state, &device, &id).await?)))
}

/// Appends to a blob from `Upload-Offset`, which must be where the server's copy ends. What
/// arrives is stored durably even if the connection is cut; the blob becomes downloadable once
/// its last byte is in.
#[utoipa::path(patch, path = "/v1/blobs/{id}",
    params(("id" = String, Path, description = "blob id"),
        ("Upload-Offset" = u64, Header, description = "where this request's bytes start")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = BlobStatus),
        (status = 409, description = "offset mismatch: resume at `received`", body = ErrorBody),
        (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn upload_blob(
    State(state): State<AppState>,
    device: Device,
    BlobPath(id): BlobPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BlobStatus>, AppError> {
    let offset = headers
        .get(UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            AppError::bad_request(
                ErrorCode::MalformedRequest,
                "an upload needs an Upload-Offset header (a byte offset)",
            )
        })?;
    let record = state.store().blob(&id).await?.ok_or_else(blob_not_found)?;
    if record.device != device.device_id {
        return Err(AppError::forbidden(
            "only the uploading device writes a blob",
        ));
    }
    let Some(claim) = state.claim_upload(&id) else {
        return Err(offset_mismatch(
            record.received,
            "another request is uploading this blob",
        ));
    };
    // Re-read under the claim: an upload that just ended may have moved it.
    let mut record = state.store().blob(&id).await?.ok_or_else(blob_not_found)?;
    if record.received == record.size && !record.complete {
        // Every byte was recorded but a crash came before the blob was marked complete: finish
        // the move (idempotent) rather than receive it all again.
        state.blobs().complete(&id).await.map_err(storage_error)?;
        state
            .store()
            .blob_progress(&id, record.size, true, now_secs())
            .await?;
        record.complete = true;
    }
    if record.complete {
        return if offset == record.size {
            Ok(Json(status_of(&record)))
        } else {
            Err(offset_mismatch(record.received, "the blob is complete"))
        };
    }
    let (writer, at) = state
        .blobs()
        .resume(&id, record.received)
        .await
        .map_err(storage_error)?;
    if at != record.received {
        tracing::warn!(
            lost = record.received - at,
            "blob storage lost recorded bytes"
        );
        record.received = at;
        state
            .store()
            .blob_progress(&id, at, false, now_secs())
            .await?;
    }
    if offset != at {
        return Err(offset_mismatch(at, "resume the upload at `received`"));
    }

    // The bytes are received by a task of their own: when the client goes away, hyper drops
    // this handler, and what arrived must still be made durable and recorded.
    let task = tokio::spawn(receive(state.clone(), id, record, writer, body, claim));
    match task.await {
        Ok(result) => result.map(|record| Json(status_of(&record))),
        Err(e) => Err(AppError::internal(format!("upload task: {e}"))),
    }
}

/// Appends a request's body to an upload, with a durable checkpoint every [`CHECKPOINT`]
/// bytes and at the end, however the body ends.
async fn receive(
    state: AppState,
    id: String,
    mut record: BlobRecord,
    mut writer: Box<dyn crate::blobs::BlobWriter>,
    body: Body,
    _claim: crate::UploadGuard,
) -> Result<BlobRecord, AppError> {
    let at = record.received;
    let mut stream = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    let mut durable = at;
    let mut written = at;
    let mut overflow = false;
    loop {
        // A client that stops sending without closing holds the blob's claim: not for long.
        let next = tokio::time::timeout(BODY_IDLE, stream.next())
            .await
            .unwrap_or(None);
        let end = match next {
            Some(Ok(bytes)) => {
                let room = record.size - written - pending.len() as u64;
                let take = (bytes.len() as u64).min(room) as usize;
                pending.extend_from_slice(&bytes[..take]);
                overflow = take < bytes.len();
                overflow
            }
            // The client went away, stalled, or the stream broke: keep what arrived.
            Some(Err(_)) | None => true,
        };
        if pending.len() >= WRITE_BUFFER || (end && !pending.is_empty()) {
            writer.write(&pending).await.map_err(storage_error)?;
            written += pending.len() as u64;
            pending.clear();
        }
        if end || written - durable >= CHECKPOINT {
            writer.sync().await.map_err(storage_error)?;
            let complete = written == record.size;
            if complete {
                state.blobs().complete(&id).await.map_err(storage_error)?;
            }
            state
                .store()
                .blob_progress(&id, written, complete, now_secs())
                .await?;
            durable = written;
            record.received = written;
            record.complete = complete;
        }
        if end {
            break;
        }
    }
    if overflow {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "the upload goes beyond the blob's announced {} bytes",
                record.size
            ),
        ));
    }
    Ok(record)
}

/// A Range header that names no byte of the blob.
#[derive(Debug)]
pub struct Unsatisfiable;

/// A single byte range `bytes=A-B`, `bytes=A-` or `bytes=-N` within `size` bytes, as
/// `(start, end_exclusive)`. `Ok(None)`: no usable Range header (serve everything).
pub fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let Some(spec) = value.to_str().ok().and_then(|v| v.strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: allowed to answer with the whole blob.
        return Ok(None);
    }
    let (a, b) = spec.trim().split_once('-').ok_or(Unsatisfiable)?;
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(last)) if start <= last => (start, last.saturating_add(1).min(size)),
        (Ok(start), Err(_)) if b.is_empty() => (start, size),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => (size.saturating_sub(n), size),
        _ => return Err(Unsatisfiable),
    };
    if range.0 >= size {
        return Err(Unsatisfiable);
    }
    Ok(Some(range))
}

/// A blob's bytes, or one range of them (`Range: bytes=…`). Only complete blobs are served.
#[utoipa::path(get, path = "/v1/blobs/{id}",
    params(("id" = String, Path, description = "blob id"),
        ("Range" = Option<String>, Header, description = "one byte range, `bytes=START-END`")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 409, description = "upload not complete", body = ErrorBody),
        (status = 416, description = "range outside the blob", body = ErrorBody),
        (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn download_blob(
    State(state): State<AppState>,
    device: Device,
    BlobPath(id): BlobPath,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let record = readable(&state, &device, &id).await?;
    if !record.complete {
        return Err(AppError {
            received: Some(record.received),
            ..AppError::new(
                StatusCode::CONFLICT,
                ErrorCode::BlobIncomplete,
                "the blob's upload is not complete",
            )
        });
    }
    let size = record.size;
    let range = parse_range(&headers, size).map_err(|Unsatisfiable| {
        AppError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::RangeNotSatisfiable,
            format!("the blob has {size} bytes; ask for one range within them"),
        )
    });
    let range = match range {
        Ok(r) => r,
        Err(e) => {
            let mut response = e.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let (start, end) = range.unwrap_or((0, size));
    let reader = state
        .blobs()
        .read(&id, start, end - start)
        .await
        .map_err(storage_error)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        reader,
        256 * 1024,
    ));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// Deletes a blob its user uploaded (from any of their devices), freeing quota.
#[utoipa::path(delete, path = "/v1/blobs/{id}",
    params(("id" = String, Path, description = "blob id")),
    responses((status = 204), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn delete_blob(
    State(state): State<AppState>,
    device: Device,
    BlobPath(id): BlobPath,
) -> Result<StatusCode, AppError> {
    let record = state.store().blob(&id).await?.ok_or_else(blob_not_found)?;
    if record.owner != device.address {
        return Err(blob_not_found());
    }
    let Some(_guard) = state.claim_upload(&id) else {
        return Err(offset_mismatch(
            record.received,
            "the blob is being uploaded; try again when the upload ends",
        ));
    };
    state.blobs().delete(&id).await.map_err(storage_error)?;
    state.store().delete_blob(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
