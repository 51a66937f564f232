//! Call signalling: join a conversation's call with a WebRTC offer (members only), leave it,
//! and list the calls going on in one's conversations. The media itself goes to [`crate::sfu`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use missive_proto::api::{
    CallInfo, CallJoinRequest, CallJoinResponse, CallLeaveResponse, CallsResponse, IceServer,
    IceServersResponse,
};
use missive_proto::{ErrorBody, ErrorCode, B64};

use crate::auth::Device;
use crate::error::AppError;
use crate::routes::{ApiJson, ApiResult, GroupPath};
use crate::sfu::JoinError;
use crate::{now_ms, AppState};

/// Length of a call id.
pub const CALL_ID_LEN: usize = 16;
/// Body limit of a join: an SDP offer is a few kilobytes for sound only, about 30 KB from a
/// browser offering every video codec it has on five video tracks.
pub const CALL_BODY: usize = 128 * 1024;

/// Joins the conversation's call, starting it if none is going on, with this device's SDP
/// offer; answers with the media relay's SDP. Only a device that is a member of the group may.
#[utoipa::path(post, path = "/v1/groups/{group}/call", request_body = CallJoinRequest,
    params(("group" = String, Path, description = "group id, base64url")),
    responses((status = 200, body = CallJoinResponse),
        (status = 409, description = "another call is going on", body = ErrorBody),
        (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub(crate) async fn join_call(
    State(state): State<AppState>,
    device: Device,
    GroupPath(group_id): GroupPath,
    ApiJson(req): ApiJson<CallJoinRequest>,
) -> ApiResult<CallJoinResponse> {
    if req.call_id.0.len() != CALL_ID_LEN {
        return Err(AppError::bad_request(
            ErrorCode::MalformedRequest,
            "a call id is 16 bytes",
        ));
    }
    let members = state.store().group_members(&group_id).await?;
    if !members.contains(&device.device_id) {
        return Err(AppError::forbidden(
            "only a member of the conversation may join its call",
        ));
    }
    match state.sfu().join(
        &group_id,
        &req.call_id.0,
        &device.device_id,
        &req.offer,
        now_ms(),
    ) {
        Ok(joined) => Ok(Json(CallJoinResponse {
            participant: joined.participant,
            answer: joined.answer,
            started_ms: joined.started_ms,
        })),
        Err(JoinError::OtherCall) => Err(AppError::new(
            StatusCode::CONFLICT,
            ErrorCode::CallInProgress,
            "the conversation has another call going on: join it",
        )),
        Err(e @ JoinError::BadOffer(_)) => Err(AppError::bad_request(
            ErrorCode::MalformedRequest,
            e.to_string(),
        )),
    }
}

/// Leaves the conversation's call; the answer says whether this device was the last one in it
/// (the call ended with it).
#[utoipa::path(delete, path = "/v1/groups/{group}/call",
    params(("group" = String, Path, description = "group id, base64url")),
    responses((status = 200, body = CallLeaveResponse), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub(crate) async fn leave_call(
    State(state): State<AppState>,
    device: Device,
    GroupPath(group_id): GroupPath,
) -> ApiResult<CallLeaveResponse> {
    match state.sfu().leave(&group_id, &device.device_id) {
        Some(ended) => Ok(Json(CallLeaveResponse { ended })),
        None => Err(AppError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotInCall,
            "this device is in no call of the conversation",
        )),
    }
}

/// The calls going on in the conversations this device is a member of.
#[utoipa::path(get, path = "/v1/calls",
    responses((status = 200, body = CallsResponse), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub(crate) async fn list_calls(
    State(state): State<AppState>,
    device: Device,
) -> ApiResult<CallsResponse> {
    let mut calls = Vec::new();
    for (group, room) in state.sfu().rooms() {
        let members = state.store().group_members(&group).await?;
        if members.contains(&device.device_id) {
            calls.push(CallInfo {
                group: B64(group),
                call_id: B64(room.call_id),
                started_ms: room.started_ms,
                devices: room.participants.into_iter().map(|(_, d)| d).collect(),
            });
        }
    }
    calls.sort_by_key(|c| c.started_ms);
    Ok(Json(CallsResponse { calls }))
}

/// The TURN servers this device may use to reach the relay, with credentials of its own that
/// expire (coturn's `use-auth-secret` scheme: the username is `EXPIRY:DEVICE`, the password
/// HMAC-SHA1 of it under the secret shared with the TURN servers, in base64).
#[utoipa::path(get, path = "/v1/calls/ice-servers",
    responses((status = 200, body = IceServersResponse), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub(crate) async fn ice_servers(
    State(state): State<AppState>,
    device: Device,
) -> ApiResult<IceServersResponse> {
    let config = state.config();
    let expiry = now_ms() / 1000 + config.turn_ttl_hours * 3600;
    Ok(Json(IceServersResponse {
        ice_servers: ice_servers_for(
            &config.turn_urls,
            config.turn_secret.as_deref(),
            &device.device_id,
            expiry,
        ),
    }))
}

/// `urls` as ICE servers for `device`: the TURN ones with credentials valid until `expiry`
/// (seconds since the epoch), the STUN ones without.
pub fn ice_servers_for(
    urls: &[String],
    secret: Option<&str>,
    device: &str,
    expiry: u64,
) -> Vec<IceServer> {
    let (turn, stun): (Vec<String>, Vec<String>) =
        urls.iter().cloned().partition(|u| u.starts_with("turn"));
    let mut servers = Vec::new();
    if !stun.is_empty() {
        servers.push(IceServer {
            urls: stun,
            username: None,
            credential: None,
        });
    }
    if let (false, Some(secret)) = (turn.is_empty(), secret) {
        use base64::Engine as _;
        use hmac::Mac as _;
        let username = format!("{expiry}:{device}");
        // HMAC takes a key of any length: this never fails.
        let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else {
            return servers;
        };
        mac.update(username.as_bytes());
        let credential =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        servers.push(IceServer {
            urls: turn,
            username: Some(username),
            credential: Some(credential),
        });
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_follow_coturns_shared_secret_scheme() {
        let urls = [
            "stun:turn.test:3478".to_owned(),
            "turns:turn.test:443?transport=tcp".to_owned(),
        ];
        let servers = ice_servers_for(&urls, Some("north-wind"), "d3v1ce", 1_765_000_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, ["stun:turn.test:3478"]);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[1].urls, ["turns:turn.test:443?transport=tcp"]);
        assert_eq!(servers[1].username.as_deref(), Some("1765000000:d3v1ce"));
        // Computed apart: base64(HMAC-SHA1("north-wind", "1765000000:d3v1ce")), Python's hmac.
        assert_eq!(
            servers[1].credential.as_deref(),
            Some("VTgJTiI+4wrPM6toUJfcgwhJHWk=")
        );
        assert!(ice_servers_for(&[], Some("north-wind"), "d", 1).is_empty());
    }
}
