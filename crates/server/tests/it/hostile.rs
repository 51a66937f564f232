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

/// Sends `n` requests one after the other; returns their statuses. Every 429 must carry the
/// stable code and a Retry-After of at least a second.
async fn statuses(n: usize, req: impl Fn() -> reqwest::RequestBuilder) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let resp = req().send().await.expect("request");
        let status = resp.status().as_u16();
        if status == 429 {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!(retry >= 1);
            let body: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(body["code"], "rate_limited");
        }
        out.push(status);
    }
    out
}

/// The burst was served, then no more than the rate allows over `elapsed`, the rest refused.
fn within_rate(statuses: &[u16], burst: usize, per_second: f64, elapsed: Duration) {
    let served = count(statuses, 200);
    let allowed = burst + (per_second * elapsed.as_secs_f64()).ceil() as usize + 1;
    assert!(served >= burst, "the burst is served: {statuses:?}");
    assert!(
        served <= allowed,
        "at most {allowed} in {elapsed:?}: {statuses:?}"
    );
    assert_eq!(
        served + count(statuses, 429),
        statuses.len(),
        "{statuses:?}"
    );
    assert!(count(statuses, 429) > 0, "{statuses:?}");
}

fn count(statuses: &[u16], code: u16) -> usize {
    statuses.iter().filter(|s| **s == code).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_over_its_rate_is_refused_and_others_are_not() {
    let h =
        Harness::with_settings("rate_limit_device_per_second = 5\nrate_limit_device_burst = 10\n");
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    // Registration and key packages spent some of their buckets: wait for them to refill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let get = |token: String| {
        let h = &h;
        move || {
            h.http
                .get(h.url("/v1/key-packages/count"))
                .bearer_auth(&token)
        }
    };
    let start = std::time::Instant::now();
    let a = statuses(40, get(alice.account.token().to_owned())).await;
    within_rate(&a, 10, 5.0, start.elapsed());
    let b = statuses(5, get(bob.account.token().to_owned())).await;
    assert_eq!(count(&b, 200), 5, "another device is not affected: {b:?}");
    // Once the bucket refills, alice is served again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = statuses(3, get(alice.account.token().to_owned())).await;
    assert_eq!(count(&again, 200), 3, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_over_its_rate_is_refused_and_proxied_clients_count_apart() {
    let h = Harness::with_settings(
        "rate_limit_ip_per_second = 5\nrate_limit_ip_burst = 10\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let from = |ip: &'static str| {
        let h = &h;
        move || {
            h.http
                .get(h.url("/healthz"))
                .header("x-forwarded-for", format!("203.0.113.7, {ip}"))
        }
    };
    let start = std::time::Instant::now();
    let first = statuses(30, from("198.51.100.1")).await;
    within_rate(&first, 10, 5.0, start.elapsed());
    // Behind the same trusted proxy, another client has its own bucket; the address the
    // client itself claims (the first in the list) is not trusted.
    let second = statuses(5, from("198.51.100.2")).await;
    assert_eq!(count(&second, 200), 5, "{second:?}");
}
