//! Hostile clients on the network: slow headers (slow-loris) and oversized WebSocket frames cost
//! the server bounded time and memory, and others are still served meanwhile.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_others_are_still_served() {
    let h = Harness::with_settings("header_read_timeout_secs = 1\n");
    let addr = h.server.addr();
    // Many connections that start a request and never finish its headers.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("partial headers");
        slow.push(s);
    }
    // Meanwhile an honest client is served at once.
    let start = Instant::now();
    let resp = h.http.get(h.url("/healthz")).send().await.expect("healthz");
    assert!(resp.status().is_success());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // Each slow connection is closed once its time is up.
    let start = Instant::now();
    for mut s in slow {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the server closes a slow connection");
        // Closed, possibly after a 408 answer, never a response to the unfinished request.
        if let Ok(n) = read {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_websocket_frame_closes_that_connection_only() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let url = format!("ws://{}/v1/ws", h.server.addr());
    let connect = || {
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", alice.account.token())
                .parse()
                .expect("header"),
        );
        tokio_tungstenite::connect_async(req)
    };
    let (mut big, _) = connect().await.expect("websocket");
    let (mut small, _) = connect().await.expect("websocket");
    // A client sends nothing but control frames; a small text is ignored, a huge one refused.
    small
        .send(Message::Text("hello".into()))
        .await
        .expect("send small");
    let _ = big.send(Message::Binary(vec![0u8; 200_000].into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match big.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server closes a connection that sends a 200 KB frame"
    );
    // The other connection is alive: it answers a ping.
    small
        .send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match small.next().await {
                Some(Ok(Message::Pong(p))) => return p.to_vec(),
                Some(Ok(_)) => {}
                other => panic!("the other connection ended: {other:?}"),
            }
        }
    })
    .await
    .expect("pong");
    assert_eq!(pong, b"still there?");
}
