//! The HTTP and WebSocket side of a client: requests with the device's token (waiting out the
//! server's rate limit), error answers made into [`CoreError`]s, the push channel, and the
//! timer. The flows in `client.rs` use it; nothing here knows what a request means.
//!
//! One set of flows runs natively and in a browser: reqwest is hyper natively and `fetch` on
//! wasm32; the push channel is tokio-tungstenite natively and the browser's `WebSocket` on
//! wasm32 (which cannot set an `Authorization` header, so the token travels as a WebSocket
//! subprotocol there); [`sleep`] is tokio's timer or the browser's `setTimeout`.

use missive_proto::api::*;
use missive_proto::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::PreparedSend;
use crate::error::CoreError;

/// Longest wait for an API answer (file transfers are bounded per read instead).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Longest a request waits out the server's rate limit (`429` with `Retry-After`) in all
/// before the refusal is returned.
const MAX_RATE_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(300);
/// Runs before every request leaves the device and returns once everything the account's
/// store applied is durable: how a store that writes asynchronously (the browser's, see
/// `journal.rs`) keeps the rule that what a request depends on is saved before it is sent.
#[cfg(target_arch = "wasm32")]
pub type Barrier =
    std::rc::Rc<dyn Fn() -> futures_util::future::LocalBoxFuture<'static, Result<(), CoreError>>>;
/// Runs before every request leaves the device and returns once everything the account's
/// store applied is durable: how a store that writes asynchronously (the browser's, see
/// `journal.rs`) keeps the rule that what a request depends on is saved before it is sent.
#[cfg(not(target_arch = "wasm32"))]
pub type Barrier = std::sync::Arc<
    dyn Fn() -> futures_util::future::BoxFuture<'static, Result<(), CoreError>> + Send + Sync,
>;

/// The HTTP side of a client: cheap to clone, usable while the account is busy.
#[derive(Clone)]
pub struct Transport {
    pub(super) http: reqwest::Client,
    pub(super) server: String,
    pub(super) token: String,
    pub(super) barrier: Option<Barrier>,
}

impl Transport {
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{}", self.server, path)
    }

    pub(super) async fn answer<T: DeserializeOwned>(
        resp: reqwest::Response,
    ) -> Result<T, CoreError> {
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(network);
        }
        let body = resp.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&body) {
            Ok(e) => CoreError::Server {
                status: status.as_u16(),
                code: e.code,
                // A code of a later server version is kept, as the server spelled it.
                message: match (e.code, serde_json::from_str::<WireCode>(&body)) {
                    (ErrorCode::Unknown, Ok(wire)) => format!("{} [{}]", e.message, wire.code),
                    _ => e.message,
                },
                current_epoch: e.current_epoch,
            },
            Err(_) => CoreError::Server {
                status: status.as_u16(),
                code: ErrorCode::Unknown,
                message: format!("HTTP {status}"),
                current_epoch: None,
            },
        })
    }

    /// Sends the request `build` makes (with the device's token), waiting out the server's
    /// rate limit: on `429` it sleeps for the answer's `Retry-After` and sends again, for up to
    /// [`MAX_RATE_LIMIT_WAIT`] in all, so that nothing a user asked for is dropped because they
    /// asked quickly.
    pub(super) async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CoreError> {
        if let Some(barrier) = &self.barrier {
            barrier().await?;
        }
        let mut waited = std::time::Duration::ZERO;
        loop {
            let mut req = build();
            if !self.token.is_empty() {
                req = req.bearer_auth(&self.token);
            }
            let resp = req.send().await.map_err(network)?;
            let Some(wait) = rate_limited(&resp) else {
                return Ok(resp);
            };
            if waited + wait > MAX_RATE_LIMIT_WAIT {
                return Ok(resp);
            }
            sleep(wait).await;
            waited += wait;
        }
    }

    pub(super) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CoreError> {
        let url = self.url(path);
        Self::answer(self.send(|| timed(self.http.post(&url)).json(body)).await?).await
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CoreError> {
        let url = self.url(path);
        Self::answer(self.send(|| timed(self.http.get(&url))).await?).await
    }

    pub(super) async fn post_no_content<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), CoreError> {
        let url = self.url(path);
        self.expect_no_content(|| self.http.post(&url).json(body))
            .await
    }

    pub(super) async fn put_no_content<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), CoreError> {
        let url = self.url(path);
        self.expect_no_content(|| self.http.put(&url).json(body))
            .await
    }

    pub(super) async fn delete_json<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, CoreError> {
        let url = self.url(path);
        Self::answer(self.send(|| timed(self.http.delete(&url))).await?).await
    }

    pub(super) async fn delete(&self, path: &str) -> Result<(), CoreError> {
        let url = self.url(path);
        self.expect_no_content(|| self.http.delete(&url)).await
    }

    /// A request whose success has no body (204, or 201 for a creation).
    pub(super) async fn expect_no_content(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(), CoreError> {
        let resp = self.send(|| timed(build())).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Self::answer::<serde_json::Value>(resp).await.map(|_| ())
    }

    /// Posts a prepared message.
    pub async fn post_prepared(&self, prepared: &PreparedSend) -> Result<SendResponse, CoreError> {
        self.post(&prepared.path, &prepared.request).await
    }
}

/// An error body's code as spelled on the wire.
#[derive(serde::Deserialize)]
struct WireCode {
    code: String,
}

/// How long a `429 Too Many Requests` answer asks to wait (`Retry-After` in seconds, 1 when
/// absent or unreadable, at most a minute); `None` for any other answer.
fn rate_limited(resp: &reqwest::Response) -> Option<std::time::Duration> {
    if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let secs = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, 60);
    Some(std::time::Duration::from_secs(secs))
}

/// A failure to reach the server, described by its innermost cause ("Connection refused",
/// "operation timed out"): what a person can act on, without the request's URL or the HTTP
/// library's layers.
pub(super) fn network(e: impl std::error::Error) -> CoreError {
    let mut cause: &dyn std::error::Error = &e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    CoreError::Network(cause.to_string())
}

/// A JSON request bounded by [`REQUEST_TIMEOUT`] (natively and in a browser, where reqwest
/// aborts the `fetch`).
fn timed(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.timeout(REQUEST_TIMEOUT)
}

#[cfg(not(target_arch = "wasm32"))]
pub(super) fn http_client() -> Result<reqwest::Client, CoreError> {
    // No overall timeout: a file transfer may take minutes. A read that stalls, or a connect
    // that hangs, still fails; JSON requests also carry REQUEST_TIMEOUT each.
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(network)
}

#[cfg(target_arch = "wasm32")]
pub(super) fn http_client() -> Result<reqwest::Client, CoreError> {
    reqwest::Client::builder().build().map_err(network)
}

/// Waits `duration` without blocking the thread (the browser's only one on wasm32).
pub async fn sleep(duration: std::time::Duration) {
    #[cfg(not(target_arch = "wasm32"))]
    tokio::time::sleep(duration).await;
    #[cfg(target_arch = "wasm32")]
    gloo_timers::future::sleep(duration).await;
}

/// The WebSocket URL of the push channel of `server` (an `http(s)://` base URL).
pub(super) fn push_url(server: &str, cursor: u64) -> Result<String, CoreError> {
    let ws_base = if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        return Err(CoreError::Usage(format!("unsupported server URL {server}")));
    };
    Ok(format!("{ws_base}/v1/ws?after={cursor}"))
}

/// A push frame's text made into events (none for a call that changed, noted in
/// `calls_changed`): `None` for a frame this version does not know (skipped).
fn frame_events(
    text: &str,
    calls_changed: &mut Vec<String>,
) -> Result<Option<Vec<Event>>, CoreError> {
    match serde_json::from_str::<PushFrame>(text).map_err(network)? {
        PushFrame::Events { events } => Ok(Some(events)),
        PushFrame::CallChanged { group } => {
            let conversation = crate::account::conversation_id(&group.0);
            if !calls_changed.contains(&conversation) {
                calls_changed.push(conversation);
            }
            Ok(Some(Vec::new()))
        }
        // A frame added after this version: skipped.
        PushFrame::Unknown => Ok(None),
    }
}

/// A live push channel.
pub struct PushConnection {
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    #[cfg(target_arch = "wasm32")]
    pub(super) stream: gloo_net::websocket::futures::WebSocket,
    /// The conversations whose call changed since [`PushConnection::take_calls_changed`].
    calls_changed: Vec<String>,
}

impl PushConnection {
    /// Opens the push channel of the device whose token is `token`, delivering its events
    /// after `cursor`.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) async fn open(
        server: &str,
        token: &str,
        cursor: u64,
    ) -> Result<PushConnection, CoreError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = push_url(server, cursor)?
            .into_client_request()
            .map_err(network)?;
        let auth = format!("Bearer {token}").parse().map_err(network)?;
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, auth);
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(network)?;
        Ok(PushConnection {
            stream,
            calls_changed: Vec::new(),
        })
    }

    /// Opens the push channel of the device whose token is `token`, delivering its events
    /// after `cursor`. A browser cannot set the `Authorization` header of a WebSocket: the
    /// token travels as the subprotocol `missive.bearer.TOKEN`, beside `missive`, which the
    /// server picks.
    #[cfg(target_arch = "wasm32")]
    pub(super) async fn open(
        server: &str,
        token: &str,
        cursor: u64,
    ) -> Result<PushConnection, CoreError> {
        let bearer = format!("{}{token}", missive_proto::api::WS_BEARER_PROTOCOL_PREFIX);
        let stream = gloo_net::websocket::futures::WebSocket::open_with_protocols(
            &push_url(server, cursor)?,
            &[missive_proto::api::WS_PROTOCOL, bearer.as_str()],
        )
        .map_err(|e| CoreError::Network(e.to_string()))?;
        Ok(PushConnection {
            stream,
            calls_changed: Vec::new(),
        })
    }

    /// Every event that arrived: waits for one frame, then takes all frames already received,
    /// so that a busy client processes (and saves) them together. `None` when closed.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Event>>, CoreError> {
        use futures_util::FutureExt;
        let Some(mut events) = self.next().await? else {
            return Ok(None);
        };
        while events.len() < 16 {
            match self.next().now_or_never() {
                Some(Ok(Some(more))) => events.extend(more),
                Some(Ok(None)) | None => break,
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(Some(events))
    }

    /// The conversations whose call changed (someone joined or left, or it ended) since the
    /// last time this was asked: a batch with no events may have come for them.
    pub fn take_calls_changed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.calls_changed)
    }

    /// The next batch of events; `None` when the server closed the channel.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn next(&mut self) -> Result<Option<Vec<Event>>, CoreError> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        while let Some(msg) = self.stream.next().await {
            match msg.map_err(network)? {
                Message::Text(text) => {
                    if let Some(events) = frame_events(&text, &mut self.calls_changed)? {
                        return Ok(Some(events));
                    }
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }

    /// The next batch of events; `None` when the server closed the channel.
    #[cfg(target_arch = "wasm32")]
    pub async fn next(&mut self) -> Result<Option<Vec<Event>>, CoreError> {
        use futures_util::StreamExt;
        use gloo_net::websocket::{Message, WebSocketError};
        while let Some(msg) = self.stream.next().await {
            match msg {
                Ok(Message::Text(text)) => {
                    if let Some(events) = frame_events(&text, &mut self.calls_changed)? {
                        return Ok(Some(events));
                    }
                }
                Ok(Message::Bytes(_)) => {}
                Err(WebSocketError::ConnectionClose(_)) => return Ok(None),
                Err(e) => return Err(CoreError::Network(e.to_string())),
            }
        }
        Ok(None)
    }
}
