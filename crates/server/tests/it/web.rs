//! What a browser needs from the server: the web app's files from the API's own origin, and
//! the push channel authenticated without an `Authorization` header.

use futures_util::StreamExt;
use missive_proto::api::{WS_BEARER_PROTOCOL_PREFIX, WS_PROTOCOL};
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

fn browser_request(
    url: &str,
    protocols: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("sec-websocket-protocol", protocols.parse().expect("header"));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_socket_authenticates_with_its_token_as_a_subprotocol() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let url = format!("ws://{}/v1/ws", h.server.addr());

    let offered = format!(
        "{WS_PROTOCOL}, {WS_BEARER_PROTOCOL_PREFIX}{}",
        alice.account.token()
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(browser_request(&url, &offered))
        .await
        .expect("the token as a subprotocol opens the push channel");
    // A browser drops a socket whose server picks none of the offered subprotocols; the token
    // itself is never echoed.
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some(WS_PROTOCOL)
    );
    // Nothing is pending: the channel stays open (no close frame) until the client leaves.
    let first = tokio::time::timeout(std::time::Duration::from_millis(300), socket.next()).await;
    assert!(
        first.is_err(),
        "no frame and no close on an idle channel: {first:?}"
    );

    let forged = format!(
        "{WS_PROTOCOL}, {WS_BEARER_PROTOCOL_PREFIX}{}.{}",
        alice.account.device_id(),
        "A".repeat(43)
    );
    for offered in [forged.as_str(), WS_PROTOCOL, "missive.bearer."] {
        match tokio_tungstenite::connect_async(browser_request(&url, offered)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{offered}");
            }
            other => panic!("{offered}: expected 401, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_web_app_is_served_beside_the_api_and_nothing_else_is() {
    let h = Harness::new();
    // Without a web directory, `/` is the API's not_found.
    let resp = h.http.get(h.url("/")).send().await.expect("get /");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.text().await.expect("body").contains("not_found"));

    let web = tempfile::tempdir().expect("web dir");
    std::fs::write(
        web.path().join("index.html"),
        "<!doctype html><title>Missive</title>",
    )
    .expect("index");
    std::fs::create_dir(web.path().join("pkg")).expect("pkg");
    std::fs::write(
        web.path().join("pkg").join("engine.wasm"),
        b"\0asm\x01\0\0\0",
    )
    .expect("wasm");
    std::fs::write(web.path().join(".secret"), "hidden").expect("hidden file");
    let h = Harness::with_settings(&format!("web_dir = {:?}\n", web.path()));

    let resp = h.http.get(h.url("/")).send().await.expect("get /");
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("connect-src 'self'") && csp.contains("'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(resp
        .text()
        .await
        .expect("body")
        .contains("<title>Missive</title>"));

    let wasm = h
        .http
        .get(h.url("/pkg/engine.wasm"))
        .send()
        .await
        .expect("wasm");
    assert_eq!(wasm.status(), StatusCode::OK);
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert_eq!(
        wasm.bytes().await.expect("bytes").as_ref(),
        b"\0asm\x01\0\0\0"
    );

    // Hidden files, escapes and other methods get the API's JSON not_found; the API is intact.
    for path in [
        "/.secret",
        "/pkg/../.secret",
        "/%2e%2e/missive.toml",
        "/missing.js",
    ] {
        let resp = h.http.get(h.url(path)).send().await.expect("get");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            resp.text().await.expect("body").contains("not_found"),
            "{path}"
        );
    }
    let post = h.http.post(h.url("/")).send().await.expect("post");
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    let api = h.http.get(h.url("/healthz")).send().await.expect("healthz");
    assert_eq!(api.status(), StatusCode::OK);
    let unknown = h
        .http
        .get(h.url("/v1/nothing"))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
