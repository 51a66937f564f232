//! The relay for linking a new device (see `missive_core::link`). The server passes sealed
//! messages between the linking device and the new one; it reads none of them. Its own part is
//! to register the new device when the linking device presents a certificate for it, signed by
//! the user's identity key, and to hand the new device its token.
//!
//! Channels live in memory: they last minutes, and a server restart makes both sides fail
//! cleanly ("unknown, used or expired"), after which the user starts again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use missive_proto::api::{
    CreateLinkRequest, LinkGrant, LinkGrantRequest, LinkGrantStatus, LinkHistoryStatus, LinkSealed,
    LinkStatus,
};
use missive_proto::{ErrorBody, ErrorCode, B64};

use crate::auth::Device;
use crate::error::AppError;
use crate::routes::ApiJson;
use crate::AppState;

/// The longest a channel stays open.
pub const MAX_TTL_SECS: u64 = 900;
/// Channels one user may have open at once.
const MAX_OPEN_PER_USER: usize = 3;
/// Sealed offers and grants are small; key packages and history are bounded by the route
/// body limits.
const MAX_SMALL_SEALED: usize = 8 * 1024;

type ApiResult<T> = Result<Json<T>, AppError>;

struct Link {
    owner: Device,
    expires: Instant,
    offer: Option<Vec<u8>>,
    /// `(device id, token, sealed grant)`.
    grant: Option<(String, String, Vec<u8>)>,
    packages: Option<Vec<u8>>,
    history: Option<Vec<u8>>,
}

/// Open channels, by channel id.
#[derive(Default)]
pub struct Links {
    open: std::sync::Mutex<HashMap<[u8; 32], Link>>,
}

impl Links {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<[u8; 32], Link>) -> T) -> T {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        open.retain(|_, l| l.expires > now);
        f(&mut open)
    }

    /// Drops expired channels.
    pub fn forget_expired(&self) {
        self.with(|_| ());
    }
}

/// A channel id in the path.
pub struct ChannelPath([u8; 32]);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ChannelPath {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(hex)) => parse_channel(&hex).map(ChannelPath),
            Err(_) => Err(malformed_channel()),
        }
    }
}

fn malformed_channel() -> AppError {
    AppError::bad_request(
        ErrorCode::MalformedRequest,
        "a link channel is 64 lowercase hex digits",
    )
}

fn parse_channel(hex_id: &str) -> Result<[u8; 32], AppError> {
    let mut out = [0u8; 32];
    if hex_id.len() != 64 || hex_id.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(malformed_channel());
    }
    hex::decode_to_slice(hex_id, &mut out).map_err(|_| malformed_channel())?;
    Ok(out)
}

fn not_found() -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::LinkNotFound,
        "this link code is unknown, already used or expired",
    )
}

fn out_of_order(why: &str) -> AppError {
    AppError::new(StatusCode::CONFLICT, ErrorCode::LinkOutOfOrder, why)
}

fn small(sealed: &B64) -> Result<(), AppError> {
    if sealed.0.len() > MAX_SMALL_SEALED {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "sealed link message too large",
        ));
    }
    Ok(())
}

/// The channel if `device` opened it.
fn owned<'a>(
    open: &'a mut HashMap<[u8; 32], Link>,
    channel: &[u8; 32],
    device: &Device,
) -> Result<&'a mut Link, AppError> {
    match open.get_mut(channel) {
        Some(l) if l.owner.device_id == device.device_id => Ok(l),
        _ => Err(not_found()),
    }
}

/// The channel if `device` is the device it registered.
fn granted<'a>(
    open: &'a mut HashMap<[u8; 32], Link>,
    channel: &[u8; 32],
    device: &Device,
) -> Result<&'a mut Link, AppError> {
    match open.get_mut(channel) {
        Some(l) if l.grant.as_ref().is_some_and(|g| g.0 == device.device_id) => Ok(l),
        _ => Err(not_found()),
    }
}

/// Opens a channel for linking a new device to the caller's account.
#[utoipa::path(post, path = "/v1/links", request_body = CreateLinkRequest,
    responses((status = 201, description = "channel open"), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn create_link(
    State(state): State<AppState>,
    device: Device,
    ApiJson(req): ApiJson<CreateLinkRequest>,
) -> Result<StatusCode, AppError> {
    let channel = parse_channel(&req.channel)?;
    if req.ttl_secs == 0 || req.ttl_secs > MAX_TTL_SECS {
        return Err(AppError::bad_request(
            ErrorCode::MalformedRequest,
            format!("ttl_secs must be between 1 and {MAX_TTL_SECS}"),
        ));
    }
    state.links().with(|open| {
        if open.contains_key(&channel) {
            return Err(out_of_order("this channel is open already"));
        }
        let mine = open
            .values()
            .filter(|l| l.owner.address == device.address)
            .count();
        if mine >= MAX_OPEN_PER_USER {
            return Err(AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many device links open at once; finish or wait for one",
            ));
        }
        open.insert(
            channel,
            Link {
                owner: device,
                expires: Instant::now() + Duration::from_secs(req.ttl_secs),
                offer: None,
                grant: None,
                packages: None,
                history: None,
            },
        );
        Ok(StatusCode::CREATED)
    })
}

/// The new device's sealed offer (its key). Needs no token: knowing the channel is the proof.
#[utoipa::path(put, path = "/v1/links/{channel}/offer", request_body = LinkSealed,
    params(("channel" = String, Path, description = "link channel id")),
    responses((status = 204, description = "offer relayed"), (status = "4XX", body = ErrorBody)))]
pub async fn put_offer(
    State(state): State<AppState>,
    ChannelPath(channel): ChannelPath,
    ApiJson(req): ApiJson<LinkSealed>,
) -> Result<StatusCode, AppError> {
    small(&req.sealed)?;
    state.links().with(|open| {
        let link = open.get_mut(&channel).ok_or_else(not_found)?;
        if link.offer.is_some() {
            // A code works once: a second device using it gets the same answer as a stale code.
            return Err(not_found());
        }
        link.offer = Some(req.sealed.0);
        Ok(StatusCode::NO_CONTENT)
    })
}

/// What the new device sent so far, for the device that opened the channel.
#[utoipa::path(get, path = "/v1/links/{channel}",
    params(("channel" = String, Path, description = "link channel id")),
    responses((status = 200, body = LinkStatus), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn link_status(
    State(state): State<AppState>,
    device: Device,
    ChannelPath(channel): ChannelPath,
) -> ApiResult<LinkStatus> {
    state.links().with(|open| {
        let link = owned(open, &channel, &device)?;
        Ok(Json(LinkStatus {
            offer: link.offer.clone().map(B64),
            device_id: link.grant.as_ref().map(|g| g.0.clone()),
            packages: link.packages.clone().map(B64),
        }))
    })
}

/// Registers the new device from a certificate signed by the caller's identity key, and
/// relays the sealed grant to it.
#[utoipa::path(post, path = "/v1/links/{channel}/grant", request_body = LinkGrantRequest,
    params(("channel" = String, Path, description = "link channel id")),
    responses((status = 204, description = "device registered"), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn grant_link(
    State(state): State<AppState>,
    device: Device,
    ChannelPath(channel): ChannelPath,
    ApiJson(req): ApiJson<LinkGrantRequest>,
) -> Result<StatusCode, AppError> {
    small(&req.sealed)?;
    state.links().with(|open| {
        let link = owned(open, &channel, &device)?;
        match (&link.offer, &link.grant) {
            (None, _) => Err(out_of_order(
                "no device has offered itself on this link yet",
            )),
            (_, Some(_)) => Err(out_of_order("this link was granted already")),
            _ => Ok(()),
        }
    })?;
    let (device_id, token) = crate::device_routes::add_certified_device(
        &state,
        &device.address,
        req.device_certificate.0,
    )
    .await?;
    tracing::info!(device = %device_id, "device linked");
    state.links().with(|open| {
        // The channel may have expired while the device was being registered; the device then
        // exists without its token ever being handed out, and nothing can use it.
        let link = owned(open, &channel, &device)?;
        link.grant = Some((device_id.clone(), token, req.sealed.0));
        Ok(StatusCode::NO_CONTENT)
    })
}

/// The grant and the new device's token, once the linking device sent them. Needs no token:
/// knowing the channel is the proof.
#[utoipa::path(get, path = "/v1/links/{channel}/grant",
    params(("channel" = String, Path, description = "link channel id")),
    responses((status = 200, body = LinkGrantStatus), (status = "4XX", body = ErrorBody)))]
pub async fn get_grant(
    State(state): State<AppState>,
    ChannelPath(channel): ChannelPath,
) -> ApiResult<LinkGrantStatus> {
    state.links().with(|open| {
        let link = open.get(&channel).ok_or_else(not_found)?;
        Ok(Json(LinkGrantStatus {
            grant: link.grant.as_ref().filter(|_| link.packages.is_none()).map(
                |(device_id, token, sealed)| LinkGrant {
                    device_id: device_id.clone(),
                    token: token.clone(),
                    sealed: B64(sealed.clone()),
                },
            ),
        }))
    })
}

/// The new device's sealed key packages, for the linking device to add it with.
#[utoipa::path(put, path = "/v1/links/{channel}/packages", request_body = LinkSealed,
    params(("channel" = String, Path, description = "link channel id")),
    responses((status = 204, description = "packages relayed"), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn put_packages(
    State(state): State<AppState>,
    device: Device,
    ChannelPath(channel): ChannelPath,
    ApiJson(req): ApiJson<LinkSealed>,
) -> Result<StatusCode, AppError> {
    state.links().with(|open| {
        let link = granted(open, &channel, &device)?;
        if link.packages.is_some() {
            return Err(out_of_order("the key packages were sent already"));
        }
        link.packages = Some(req.sealed.0);
        Ok(StatusCode::NO_CONTENT)
    })
}

/// The sealed history, from the linking device once the new device is in its conversations.
#[utoipa::path(put, path = "/v1/links/{channel}/history", request_body = LinkSealed,
    params(("channel" = String, Path, description = "link channel id")),
    responses((status = 204, description = "history relayed"), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn put_history(
    State(state): State<AppState>,
    device: Device,
    ChannelPath(channel): ChannelPath,
    ApiJson(req): ApiJson<LinkSealed>,
) -> Result<StatusCode, AppError> {
    state.links().with(|open| {
        let link = owned(open, &channel, &device)?;
        if link.packages.is_none() || link.history.is_some() {
            return Err(out_of_order(
                "the history goes after the key packages, once",
            ));
        }
        link.history = Some(req.sealed.0);
        Ok(StatusCode::NO_CONTENT)
    })
}

/// The sealed history for the new device; reading it closes the channel.
#[utoipa::path(get, path = "/v1/links/{channel}/history",
    params(("channel" = String, Path, description = "link channel id")),
    responses((status = 200, body = LinkHistoryStatus), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub async fn get_history(
    State(state): State<AppState>,
    device: Device,
    ChannelPath(channel): ChannelPath,
) -> ApiResult<LinkHistoryStatus> {
    state.links().with(|open| {
        let link = granted(open, &channel, &device)?;
        let sealed = link.history.take();
        if sealed.is_some() {
            open.remove(&channel);
        }
        Ok(Json(LinkHistoryStatus {
            sealed: sealed.map(B64),
        }))
    })
}
