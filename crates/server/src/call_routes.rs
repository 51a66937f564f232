//! Call signalling: join a conversation's call with a WebRTC offer (members only), leave it,
//! and list the calls going on in one's conversations. The media itself goes to [`crate::sfu`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use missive_proto::api::{CallInfo, CallJoinRequest, CallJoinResponse, CallsResponse};
use missive_proto::{ErrorBody, ErrorCode, B64};

use crate::auth::Device;
use crate::error::AppError;
use crate::routes::{ApiJson, ApiResult, GroupPath};
use crate::sfu::JoinError;
use crate::{now_ms, AppState};

/// Length of a call id.
pub const CALL_ID_LEN: usize = 16;
/// Body limit of a join (an SDP offer is a few kilobytes).
pub const CALL_BODY: usize = 64 * 1024;

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
        Ok((participant, answer)) => Ok(Json(CallJoinResponse {
            participant,
            answer,
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

/// Leaves the conversation's call.
#[utoipa::path(delete, path = "/v1/groups/{group}/call",
    params(("group" = String, Path, description = "group id, base64url")),
    responses((status = 204), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
pub(crate) async fn leave_call(
    State(state): State<AppState>,
    device: Device,
    GroupPath(group_id): GroupPath,
) -> Result<StatusCode, AppError> {
    if state.sfu().leave(&group_id, &device.device_id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotInCall,
            "this device is in no call of the conversation",
        ))
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
