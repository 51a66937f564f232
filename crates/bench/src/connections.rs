//! `missive-bench --connections N`: N idle WebSocket push connections to one server (spread
//! over `--devices` devices), the server's resident memory per connection, and a reconnect
//! storm: every connection dropped and reopened at once, timed until all are back.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Current resident memory of a process, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("VmRSS")?;
    Ok(kib * 1024)
}

async fn connect(url: &str, token: &str) -> anyhow::Result<Socket> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (socket, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(socket)
}

async fn attempt(url: String, token: String, delay: Duration) -> (String, anyhow::Result<Socket>) {
    tokio::time::sleep(delay).await;
    let result = connect(&url, &token).await;
    (token, result)
}

/// Opens `n` connections with at most `parallel` handshakes in flight; returns them and the
/// number of attempts that failed (each retried until it succeeds).
async fn open_all(
    url: &str,
    tokens: &[String],
    n: usize,
    parallel: usize,
) -> anyhow::Result<(Vec<Socket>, usize)> {
    let mut sockets = Vec::with_capacity(n);
    let mut failures = 0;
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    while sockets.len() < n {
        while next < n && pending.len() < parallel {
            let token = tokens[next % tokens.len()].clone();
            pending.push(attempt(url.to_owned(), token, Duration::ZERO));
            next += 1;
        }
        let Some((token, result)) = pending.next().await else {
            break;
        };
        match result {
            Ok(s) => sockets.push(s),
            Err(_) => {
                failures += 1;
                anyhow::ensure!(failures < 10 * n, "connections keep failing");
                pending.push(attempt(url.to_owned(), token, Duration::from_millis(20)));
            }
        }
    }
    Ok((sockets, failures))
}

pub async fn connections(
    url: &str,
    run: &str,
    domain: &str,
    n: usize,
    devices: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    let pid = server_pid.context("--connections measures a server this bench starts")?;
    let homes = tempfile::tempdir()?;
    let mut tokens = Vec::with_capacity(devices);
    for i in 0..devices.max(1) {
        let client =
            crate::register_with_stock(url, homes.path(), &format!("c{run}-{i}"), domain, 1)
                .await?;
        tokens.push(client.account.token().to_owned());
    }
    let ws = format!("{}/v1/ws", url.replacen("http", "ws", 1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(pid)?;

    let start = Instant::now();
    let (sockets, failures) = open_all(&ws, &tokens, n, 256).await?;
    let opened = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss(pid)?;
    let per_conn = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "{n} connections over {} devices opened in {opened:.2}s ({failures} attempts retried); \
         server RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per idle connection",
        tokens.len(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per_conn / 1024.0
    );

    // The storm: everyone drops at once (a server restart, a network blip) and comes back.
    drop(sockets);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let (sockets, storm_failures) = open_all(&ws, &tokens, n, n).await?;
    let settled = start.elapsed().as_secs_f64();
    println!("reconnect storm: all {n} back in {settled:.2}s ({storm_failures} attempts retried)");
    let peak = crate::process_usage(pid).map(|(_, hwm)| hwm);
    drop(sockets);
    println!(
        "{}",
        json!({
            "connections": n,
            "devices": tokens.len(),
            "open_s": opened,
            "server_rss_before": before,
            "server_rss_after": after,
            "bytes_per_connection": per_conn,
            "storm_s": settled,
            "storm_retries": storm_failures,
            "server_peak_rss": peak,
        })
    );
    Ok(())
}
