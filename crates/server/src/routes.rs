//! HTTP routes. Each handler is registered together with its OpenAPI description
//! (utoipa-axum), so `/openapi.json` lists exactly the routes the server has.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use missive_proto::api::*;
use missive_proto::cert::DeviceCertificate;
use missive_proto::{ErrorBody, ErrorCode, B64};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::auth::{self, Device};
use crate::error::AppError;
use crate::groups::{self, GroupState};
use crate::push::Push;
use crate::store::*;
use crate::{now_ms, now_secs, AppState};

/// Body limit of small JSON requests (registration, claims, acks).
pub const SMALL_BODY: usize = 16 * 1024;
/// Body limit of requests carrying MLS messages (group creation, key package batches).
pub const MLS_BODY: usize = 4 * 1024 * 1024;
/// Body limit of a commit: with the post-quantum suite, adding a thousand devices at once means
/// a thousand key packages, their Welcome and a GroupInfo with the whole ratchet tree.
pub const COMMIT_BODY: usize = 32 * 1024 * 1024;
/// Body limit of an application message.
pub const MESSAGE_BODY: usize = 256 * 1024;
/// Body limit of the history a linking device hands to a new one (sealed, in base64).
pub const LINK_HISTORY_BODY: usize = 48 * 1024 * 1024;
/// Most events returned by one fetch.
pub const MAX_EVENTS: u32 = 500;
/// Most key packages in one upload.
pub const MAX_KEY_PACKAGES: usize = 200;

pub(crate) type ApiResult<T> = Result<Json<T>, AppError>;

/// JSON body extractor whose rejections are [`AppError`]s with stable codes.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::new(status, ErrorCode::PayloadTooLarge, "request body too large")
    } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        AppError::new(
            status,
            ErrorCode::MalformedRequest,
            "expected Content-Type: application/json",
        )
    } else {
        AppError::bad_request(ErrorCode::MalformedRequest, rejection.body_text())
    }
}

/// A group id in the path, as base64url.
pub(crate) struct GroupPath(pub(crate) Vec<u8>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for GroupPath {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::bad_request(ErrorCode::MalformedRequest, "bad group id"))?;
        match B64::decode(&text) {
            Some(id) if !id.is_empty() && id.len() <= 64 => Ok(GroupPath(id)),
            _ => Err(AppError::bad_request(
                ErrorCode::MalformedRequest,
                "group id must be 1 to 64 bytes of base64url",
            )),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Missive", description = "Missive delivery server API"),
    components(schemas(ErrorBody, ErrorCode))
)]
struct ApiDoc;

/// The full router.
pub fn router(state: AppState) -> Router {
    let small = DefaultBodyLimit::max(SMALL_BODY);
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(register).layer(small))
        .routes(routes!(crate::device_routes::get_user))
        .routes(routes!(upload_key_packages).layer(DefaultBodyLimit::max(MLS_BODY)))
        .routes(routes!(count_key_packages))
        .routes(routes!(crate::device_routes::claim_key_packages).layer(small))
        .routes(routes!(create_group).layer(DefaultBodyLimit::max(MLS_BODY)))
        .routes(routes!(get_group_info))
        .routes(routes!(post_commit).layer(DefaultBodyLimit::max(COMMIT_BODY)))
        .routes(routes!(post_message).layer(DefaultBodyLimit::max(MESSAGE_BODY)))
        .routes(routes!(get_events))
        .routes(routes!(ack_events).layer(small))
        .routes(routes!(websocket))
        .routes(routes!(crate::blob_routes::create_blob).layer(small))
        .routes(routes!(crate::blob_routes::blob_status))
        .routes(routes!(crate::device_routes::revoke_device))
        .routes(routes!(crate::device_routes::publish_device_list).layer(small))
        .routes(routes!(crate::device_routes::transparency_info))
        .routes(routes!(crate::device_routes::get_policy))
        .routes(routes!(crate::device_routes::transparency_entries))
        .routes(routes!(crate::device_routes::transparency_mine))
        .routes(
            routes!(crate::recovery_routes::put_recovery).layer(DefaultBodyLimit::max(MLS_BODY)),
        )
        .routes(routes!(crate::recovery_routes::get_backup).layer(small))
        .routes(routes!(crate::recovery_routes::recover_device).layer(small))
        .routes(routes!(crate::recovery_routes::put_history).layer(DefaultBodyLimit::max(MLS_BODY)))
        .routes(routes!(crate::recovery_routes::read_history).layer(small))
        .routes(
            routes!(
                crate::call_routes::join_call,
                crate::call_routes::leave_call
            )
            .layer(DefaultBodyLimit::max(crate::call_routes::CALL_BODY)),
        )
        .routes(routes!(crate::call_routes::list_calls))
        .routes(routes!(crate::call_routes::ice_servers))
        .routes(routes!(crate::links::create_link).layer(small))
        .routes(routes!(crate::links::put_offer).layer(small))
        .routes(routes!(crate::links::link_status))
        .routes(routes!(crate::links::grant_link).layer(small))
        .routes(routes!(crate::links::put_packages).layer(DefaultBodyLimit::max(MLS_BODY)))
        .routes(
            routes!(crate::links::put_history, crate::links::get_history)
                .layer(DefaultBodyLimit::max(LINK_HISTORY_BODY)),
        )
        .routes(routes!(crate::links::get_grant))
        .routes(routes!(
            crate::blob_routes::upload_blob,
            crate::blob_routes::download_blob,
            crate::blob_routes::delete_blob
        ))
        .split_for_parts();
    let doc_json = doc.to_pretty_json().unwrap_or_else(|_| "{}".into());
    api.route(
        "/openapi.json",
        get(move || async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                doc_json,
            )
        }),
    )
    .layer(axum::middleware::from_fn(refuse_declared_oversize))
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::ratelimit::enforce,
    ))
    .fallback(crate::web::serve)
    .method_not_allowed_fallback(|| async {
        AppError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route",
        )
    })
    // Nothing should panic; if something does, the client still gets a JSON error and the
    // server keeps serving.
    .layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |_: Box<dyn std::any::Any + Send>| AppError::internal("handler panicked").into_response(),
    ))
    .with_state(state)
}

/// The body limit of a route, by path.
fn body_limit(path: &str) -> usize {
    if path.starts_with("/v1/blobs/") {
        // Uploads are streamed to storage; the handler enforces each blob's announced size.
        usize::MAX
    } else if path.ends_with("/commits") {
        COMMIT_BODY
    } else if path.ends_with("/messages") {
        MESSAGE_BODY
    } else if path.starts_with("/v1/links/") && path.ends_with("/history") {
        LINK_HISTORY_BODY
    } else if path.starts_with("/v1/groups/") && path.ends_with("/call") {
        crate::call_routes::CALL_BODY
    } else if path == "/v1/groups"
        || path == "/v1/key-packages"
        || path == "/v1/recovery"
        || path == "/v1/recovery/history"
        || (path.starts_with("/v1/links/") && path.ends_with("/packages"))
    {
        MLS_BODY
    } else {
        SMALL_BODY
    }
}

/// Answers 413 to a request whose declared length exceeds its route's limit, before reading
/// any of it. (Bodies without a declared length are cut at the same limit while read.)
async fn refuse_declared_oversize(req: Request, next: axum::middleware::Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared {
        if len > body_limit(req.uri().path()) as u64 {
            return AppError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "request body too large",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Liveness and the domain served.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        domain: state.config().domain.clone(),
    })
}

/// Registers a user with its first device.
#[utoipa::path(post, path = "/v1/register", request_body = RegisterRequest,
    responses((status = 200, body = RegisterResponse), (status = "4XX", body = ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> ApiResult<RegisterResponse> {
    let config = state.config();
    if crate::config::split_address(&req.address).is_none() {
        return Err(AppError::bad_request(
            ErrorCode::MalformedRequest,
            "address must be lowercase name@domain",
        ));
    }
    if !config.allows(&req.address) {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::DomainNotAllowed,
            "this server does not register addresses of that domain",
        ));
    }
    let invite_hash = match (&req.invite, config.open_registration) {
        (Some(code), _) => Some(auth::hash_secret(&auth::normalize_invite_code(code))),
        (None, true) => None,
        (None, false) => {
            return Err(AppError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::InviteRequired,
                "registration needs an invite code from the administrator",
            ))
        }
    };
    let cert = DeviceCertificate::from_bytes(req.device_certificate.as_bytes())
        .and_then(|c| c.verify().map(|()| c))
        .map_err(|e| AppError::bad_request(ErrorCode::InvalidCertificate, e.to_string()))?;
    if cert.address != req.address || cert.identity_key.as_slice() != req.identity_key.as_bytes() {
        return Err(AppError::bad_request(
            ErrorCode::InvalidCertificate,
            "certificate is not for this address and identity key",
        ));
    }
    let device_id = cert.device_id_hex();
    let secret = auth::new_secret();
    let user = NewUser {
        address: req.address.clone(),
        identity_key: req.identity_key.0,
        device: NewDevice {
            device_id: device_id.clone(),
            certificate: req.device_certificate.0,
            token_hash: auth::hash_secret(&secret),
        },
    };
    state
        .store()
        .register(user, invite_hash, now_secs())
        .await?;
    tracing::info!(device = %device_id, "registered");
    Ok(Json(RegisterResponse {
        address: req.address,
        token: format!("{device_id}.{secret}"),
        device_id,
    }))
}

/// Adds key packages to this device's stock.
#[utoipa::path(post, path = "/v1/key-packages", request_body = UploadKeyPackagesRequest,
    responses((status = 200, body = KeyPackageCount), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn upload_key_packages(
    State(state): State<AppState>,
    device: Device,
    ApiJson(req): ApiJson<UploadKeyPackagesRequest>,
) -> ApiResult<KeyPackageCount> {
    if req.key_packages.len() > MAX_KEY_PACKAGES {
        return Err(AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("at most {MAX_KEY_PACKAGES} key packages per upload"),
        ));
    }
    let cert = state
        .store()
        .device_certificate(&device.device_id)
        .await?
        .ok_or_else(AppError::unauthorized)?;
    let check = |bytes: &[u8]| {
        groups::check_key_package(bytes, &cert)
            .map_err(|e| AppError::bad_request(ErrorCode::InvalidKeyPackage, e.to_string()))
    };
    let mut packages = Vec::with_capacity(req.key_packages.len());
    for kp in req.key_packages {
        packages.push((check(kp.as_bytes())?, kp.0));
    }
    let last_resort = match req.last_resort {
        Some(kp) => {
            check(kp.as_bytes())?;
            Some(kp.0)
        }
        None => None,
    };
    let (count, last_resort) = state
        .store()
        .add_key_packages(&device.device_id, packages, last_resort)
        .await?;
    Ok(Json(KeyPackageCount { count, last_resort }))
}

/// How many one-time key packages this device has left.
#[utoipa::path(get, path = "/v1/key-packages/count",
    responses((status = 200, body = KeyPackageCount), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn count_key_packages(
    State(state): State<AppState>,
    device: Device,
) -> ApiResult<KeyPackageCount> {
    let (count, last_resort) = state.store().key_package_count(&device.device_id).await?;
    Ok(Json(KeyPackageCount { count, last_resort }))
}

/// Registers a new group, whose only member is the calling device.
#[utoipa::path(post, path = "/v1/groups", request_body = CreateGroupRequest,
    responses((status = 200, body = GroupResponse), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn create_group(
    State(state): State<AppState>,
    device: Device,
    ApiJson(req): ApiJson<CreateGroupRequest>,
) -> ApiResult<GroupResponse> {
    let (group, group_id, members) = GroupState::create(req.group_info.as_bytes())?;
    if members != [device.device_id.clone()] {
        return Err(AppError::forbidden(
            "a new group must have the creating device as its only member",
        ));
    }
    state
        .store()
        .create_group(NewGroup {
            group_id: group_id.clone(),
            epoch: group.epoch(),
            state: group.to_bytes()?,
            group_info: req.group_info.0,
            members,
        })
        .await?;
    Ok(Json(GroupResponse {
        group_id: B64(group_id),
        epoch: group.epoch(),
    }))
}

/// The current GroupInfo (with ratchet tree), for members and external joins.
#[utoipa::path(get, path = "/v1/groups/{group}/group-info",
    params(("group" = String, Path, description = "group id, base64url")),
    responses((status = 200, body = GroupInfoResponse), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn get_group_info(
    State(state): State<AppState>,
    device: Device,
    GroupPath(group_id): GroupPath,
) -> ApiResult<GroupInfoResponse> {
    let members = state.store().group_members(&group_id).await?;
    if !members.contains(&device.device_id) && !is_member_user(&state, &group_id, &device).await? {
        return Err(AppError::not_found("no such group"));
    }
    let (epoch, info) = state
        .store()
        .group_info(&group_id)
        .await?
        .ok_or_else(|| AppError::not_found("no such group"))?;
    Ok(Json(GroupInfoResponse {
        epoch,
        group_info: B64(info),
    }))
}

/// Whether another device of the caller's user is a member of the group (certified by the
/// user's current identity key): a recovered device rejoins that way.
async fn is_member_user(
    state: &AppState,
    group_id: &[u8],
    device: &Device,
) -> Result<bool, AppError> {
    let (Some(record), Some(user)) = (
        state.store().group(group_id).await?,
        state.store().user(&device.address).await?,
    ) else {
        return Ok(false);
    };
    let group = GroupState::load(group_id, &record.state)?;
    Ok(group.has_member(&device.address, &user.identity_key))
}

/// Submits a commit for the group's current epoch.
#[utoipa::path(post, path = "/v1/groups/{group}/commits", request_body = CommitRequest,
    params(("group" = String, Path, description = "group id, base64url")),
    responses((status = 200, body = CommitResponse),
        (status = 409, description = "stale epoch", body = ErrorBody),
        (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn post_commit(
    State(state): State<AppState>,
    device: Device,
    GroupPath(group_id): GroupPath,
    ApiJson(req): ApiJson<CommitRequest>,
) -> ApiResult<CommitResponse> {
    let lock = state.group_lock(&group_id);
    let _guard = lock.lock().await;
    let record = state
        .store()
        .group(&group_id)
        .await?
        .ok_or_else(|| AppError::not_found("no such group"))?;
    let mut group = GroupState::load(&group_id, &record.state)?;
    let effect = group.apply_commit(
        req.commit.as_bytes(),
        &device.device_id,
        req.group_info.as_bytes(),
    )?;
    // An external commit adds only its sender, who needs no Welcome.
    let welcome = match (req.welcome, effect.added.is_empty() || effect.external) {
        (Some(w), false) => {
            groups::check_welcome(w.as_bytes())?;
            Some((w.0, effect.added.clone()))
        }
        (None, true) => None,
        (None, false) => {
            return Err(AppError::bad_request(
                ErrorCode::InvalidCommit,
                "a commit that adds devices needs their Welcome",
            ))
        }
        (Some(_), true) => {
            return Err(AppError::bad_request(
                ErrorCode::InvalidCommit,
                "a Welcome without added devices",
            ))
        }
    };
    let accepted = state
        .store()
        .commit(CommitWrite {
            group_id: group_id.clone(),
            expected_epoch: record.epoch,
            new_epoch: effect.new_epoch,
            state: group.to_bytes()?,
            group_info: req.group_info.0,
            sender: device.device_id.clone(),
            commit: req.commit.0,
            welcome,
            joined: effect.external.then(|| device.device_id.clone()),
            removed: effect.removed.clone(),
            now_ms: now_ms(),
        })
        .await?;
    // A device removed from the group leaves its call at once: it could not read the media
    // sealed under the new epoch, and it should not receive it either.
    state.sfu().remove(&group_id, &effect.removed);
    Ok(Json(CommitResponse {
        epoch: effect.new_epoch,
        seq: accepted.seq,
        event_id: accepted.event_id,
    }))
}

/// Sends an application message (MLS PrivateMessage) to the group.
#[utoipa::path(post, path = "/v1/groups/{group}/messages", request_body = SendRequest,
    params(("group" = String, Path, description = "group id, base64url")),
    responses((status = 200, body = SendResponse),
        (status = 409, description = "stale epoch", body = ErrorBody),
        (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn post_message(
    State(state): State<AppState>,
    device: Device,
    GroupPath(group_id): GroupPath,
    ApiJson(req): ApiJson<SendRequest>,
) -> ApiResult<SendResponse> {
    let (msg_group, epoch) = groups::private_message_header(req.message.as_bytes())?;
    if msg_group != group_id {
        return Err(AppError::bad_request(
            ErrorCode::MalformedMls,
            "the message is for another group",
        ));
    }
    let accepted = state
        .store()
        .post_message(MessageWrite {
            group_id,
            sender: device.device_id,
            epoch,
            payload: req.message.0,
            now_ms: now_ms(),
        })
        .await?;
    Ok(Json(SendResponse {
        seq: accepted.seq,
        event_id: accepted.event_id,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct EventsQuery {
    /// Return events after this cursor (an event id); 0 for all.
    #[serde(default)]
    after: u64,
    /// At most this many events (default and maximum 500).
    #[serde(default)]
    limit: Option<u32>,
}

/// Events for this device after a cursor.
#[utoipa::path(get, path = "/v1/events", params(EventsQuery),
    responses((status = 200, body = EventsResponse), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn get_events(
    State(state): State<AppState>,
    device: Device,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<EventsResponse> {
    let Query(query) =
        query.map_err(|e| AppError::bad_request(ErrorCode::MalformedRequest, e.body_text()))?;
    let limit = query.limit.unwrap_or(MAX_EVENTS).clamp(1, MAX_EVENTS);
    let mut events = state
        .store()
        .events(&device.device_id, query.after, limit + 1)
        .await?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    Ok(Json(EventsResponse { events, more }))
}

/// Records that this device durably processed everything up to `cursor`.
#[utoipa::path(post, path = "/v1/events/ack", request_body = AckRequest,
    responses((status = 204), (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn ack_events(
    State(state): State<AppState>,
    device: Device,
    ApiJson(req): ApiJson<AckRequest>,
) -> Result<StatusCode, AppError> {
    state.store().ack(&device.device_id, req.cursor).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
struct WsQuery {
    /// Push events after this cursor.
    #[serde(default)]
    after: u64,
}

/// Live push of this device's events (JSON `PushFrame`s) over WebSocket.
#[utoipa::path(get, path = "/v1/ws", params(WsQuery),
    responses((status = 101, description = "switching to WebSocket"),
        (status = "4XX", body = ErrorBody)),
    security(("token" = [])))]
async fn websocket(
    State(state): State<AppState>,
    device: Device,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let Query(query) =
        query.map_err(|e| AppError::bad_request(ErrorCode::MalformedRequest, e.body_text()))?;
    let ws = ws.map_err(|e| AppError::bad_request(ErrorCode::MalformedRequest, e.body_text()))?;
    // Clients send only control frames, so a small read buffer (tungstenite's default is 128
    // KiB, per connection) suffices; with 10,000 idle connections this is most of the memory.
    Ok(ws
        // Chosen only when offered (by browsers, beside the token): a browser closes a socket
        // whose server picks none of the subprotocols it offered.
        .protocols([missive_proto::api::WS_PROTOCOL])
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .on_upgrade(move |socket| push_loop(state, device, query.after, socket)))
}

async fn push_loop(state: AppState, device: Device, mut cursor: u64, mut socket: WebSocket) {
    // Subscribe before reading the store, so nothing committed in between is missed; what
    // arrives twice is skipped by id.
    let mut sub = state.hub().subscribe(&device.device_id);
    let ping_every = Duration::from_secs(30);
    let mut catch_up = true;
    loop {
        if catch_up {
            match send_from_store(&state, &device, cursor, &mut socket).await {
                Some(c) => cursor = c,
                None => return,
            }
            catch_up = false;
        }
        tokio::select! {
            () = state.closing() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            push = sub.rx.recv() => {
                let Some(first) = push else { return };
                let mut batch = vec![first];
                while batch.len() < MAX_EVENTS as usize {
                    match sub.rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                for push in &batch {
                    if let Push::Frame(text) = push {
                        if socket.send(Message::Text(text.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
                if sub.take_lagged() || batch.iter().any(|p| matches!(p, Push::Wake)) {
                    catch_up = true;
                    continue;
                }
                let fresh: Vec<&str> = batch
                    .iter()
                    .filter_map(|p| match p {
                        Push::Event(id, json) if *id > cursor => Some(json.as_ref()),
                        _ => None,
                    })
                    .collect();
                let Some(last) = batch.iter().rev().find_map(|p| match p {
                    Push::Event(id, _) => Some(*id),
                    Push::Wake | Push::Frame(_) => None,
                }) else {
                    continue;
                };
                if fresh.is_empty() {
                    continue;
                }
                // The frame is PushFrame::Events, assembled from events serialized once.
                let text = format!(r#"{{"type":"events","events":[{}]}}"#, fresh.join(","));
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
                cursor = cursor.max(last);
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Clients send nothing but pings and pongs; axum answers pings itself.
                Some(Ok(_)) => {}
            },
            () = tokio::time::sleep(ping_every) => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends every stored event after `cursor`, page by page; returns the new cursor, or `None`
/// when the connection is gone.
async fn send_from_store(
    state: &AppState,
    device: &Device,
    mut cursor: u64,
    socket: &mut WebSocket,
) -> Option<u64> {
    loop {
        let events = match state
            .store()
            .events(&device.device_id, cursor, MAX_EVENTS)
            .await
        {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "push: reading events failed");
                return None;
            }
        };
        let Some(last) = events.last().map(|e| e.id) else {
            return Some(cursor);
        };
        let text = serde_json::to_string(&PushFrame::Events { events }).ok()?;
        socket.send(Message::Text(text.into())).await.ok()?;
        cursor = last;
    }
}
