//! `missive-bench --files MIB`: an encrypted file round trip through the `missive` CLI (its
//! own processes, as a user runs it) against the same bytes sent unencrypted through the same
//! HTTP blob API, on the same server. Reports times, the throughput ratio, peak RSS of the
//! client processes and of the server, and whether the downloaded file is intact.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use missive_core::client::Client;
use missive_core::sqlite::SqliteAccountStore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::process_usage;

pub(crate) fn cli_bin() -> anyhow::Result<PathBuf> {
    let bin = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .join("missive");
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p missive-cli)",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs the CLI to completion, sampling its peak RSS; returns stdout, seconds and peak bytes.
pub(crate) fn run_cli(home: &Path, args: &[&str]) -> anyhow::Result<(String, f64, u64)> {
    let start = Instant::now();
    let mut child = Command::new(cli_bin()?)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut peak = 0;
    // VmHWM is a high-water mark: sampling it late still sees earlier peaks.
    while child.try_wait()?.is_none() {
        if let Some((_, hwm)) = process_usage(pid) {
            peak = peak.max(hwm);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output()?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "missive {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        secs,
        peak,
    ))
}

fn sha256_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hash.finalize().into());
        }
        hash.update(&buf[..n]);
    }
}

fn write_random_file(path: &Path, bytes: u64) -> anyhow::Result<()> {
    use rand::RngCore;
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rand::thread_rng().fill_bytes(&mut buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// Uploads and downloads `path` unencrypted through the blob API; returns both times.
async fn raw_round_trip(
    url: &str,
    token: &str,
    group_hex: &str,
    path: &Path,
    out: &Path,
) -> anyhow::Result<(f64, f64, bool)> {
    let http = reqwest::Client::new();
    let size = std::fs::metadata(path)?.len();
    let group = missive_proto::B64::encode(&hex_decode(group_hex)?);
    let start = Instant::now();
    let created: Value = http
        .post(format!("{url}/v1/blobs"))
        .bearer_auth(token)
        .json(&json!({"group_id": group, "size": size}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("blob id")?.to_owned();
    let file = tokio::fs::File::open(path).await?;
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10));
    http.patch(format!("{url}/v1/blobs/{id}"))
        .bearer_auth(token)
        .header("upload-offset", 0)
        .header("content-length", size)
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    let upload = start.elapsed().as_secs_f64();
    // As between the CLI's upload and download: the upload's dirty pages are written out first.
    settle()?;
    let start = Instant::now();
    let resp = http
        .get(format!("{url}/v1/blobs/{id}"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?;
    let mut file =
        tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::create(out).await?);
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        file.write_all(&piece?).await?;
    }
    file.flush().await?;
    file.into_inner().sync_all().await?;
    let download = start.elapsed().as_secs_f64();
    http.delete(format!("{url}/v1/blobs/{id}"))
        .bearer_auth(token)
        .send()
        .await?;
    // Checked and removed at once, so that the other variant never runs beside a leftover
    // gigabyte in the page cache.
    let intact = sha256_file(out)? == sha256_file(path)?;
    std::fs::remove_file(out)?;
    Ok((upload, download, intact))
}

/// Writes out dirty pages (the `sync` command), so that one phase's writeback does not slow
/// the next.
fn settle() -> anyhow::Result<()> {
    Command::new("sync").status()?;
    // Deleting the previous phase's gigabyte leaves the filesystem busy for a while after
    // `sync` returns; let that pass too, so that it does not land on whichever phase is next.
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

fn hex_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .context("hex")
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The files benchmark: `mib` MiB, `runs` times.
pub async fn files(
    url: &str,
    run: &str,
    domain: &str,
    mib: u64,
    runs: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let (a_addr, b_addr) = (format!("a{run}@{domain}"), format!("b{run}@{domain}"));
    run_cli(&alice, &["register", "--server", url, &a_addr])?;
    run_cli(&bob, &["register", "--server", url, &b_addr])?;
    run_cli(&alice, &["dm", &b_addr, "files follow"])?;
    run_cli(&bob, &["sync"])?;
    let (convs, _, _) = run_cli(&alice, &["conversations", "--json"])?;
    let conv: Value = serde_json::from_str(convs.trim())?;
    let conv = conv["id"].as_str().context("conversation id")?.to_owned();
    let token = {
        let store = SqliteAccountStore::open(&alice.join("account.db"))?;
        Client::open(Box::new(store))?.account.token().to_owned()
    };

    let input = dir.path().join("input.bin");
    let bytes = mib << 20;
    write_random_file(&input, bytes)?;
    let want = sha256_file(&input)?;
    let input_s = input.to_str().context("utf8 path")?;

    let (mut enc_up, mut enc_down, mut raw_up, mut raw_down) = (vec![], vec![], vec![], vec![]);
    let mut client_peak = 0u64;
    let mut intact = true;
    for i in 0..runs {
        // Each phase starts with no dirty pages left by the previous one, and the two variants
        // take turns going first.
        let raw_first = i % 2 == 1;
        let raw_out = dir.path().join("raw.bin");
        let mut raw = None;
        if raw_first {
            settle()?;
            raw = Some(raw_round_trip(url, &token, &conv, &input, &raw_out).await?);
        }
        settle()?;
        let (_, up, peak_up) = run_cli(&alice, &["send-file", &conv, input_s])?;
        let (synced, _, _) = run_cli(&bob, &["sync", "--json"])?;
        let id = synced
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v["file"]["id"].as_str().map(str::to_owned))
            .context("bob got no file message")?;
        let out_dir = dir.path().join(format!("down-{i}"));
        settle()?;
        let (path, down, peak_down) = run_cli(
            &bob,
            &["download", &id, "--out", out_dir.to_str().context("utf8")?],
        )?;
        intact &= sha256_file(Path::new(path.trim()))? == want;
        std::fs::remove_dir_all(&out_dir)?;
        let http = reqwest::Client::new();
        http.delete(format!("{url}/v1/blobs/{id}"))
            .bearer_auth(&token)
            .send()
            .await?;
        client_peak = client_peak.max(peak_up).max(peak_down);

        let (ru, rd, raw_intact) = match raw.take() {
            Some(r) => r,
            None => {
                settle()?;
                raw_round_trip(url, &token, &conv, &input, &raw_out).await?
            }
        };
        intact &= raw_intact;
        println!(
            "run {i}: encrypted upload {up:.2}s download {down:.2}s | unencrypted upload {ru:.2}s download {rd:.2}s"
        );
        enc_up.push(up);
        enc_down.push(down);
        raw_up.push(ru);
        raw_down.push(rd);
    }
    let total =
        |u: &[f64], d: &[f64]| -> Vec<f64> { u.iter().zip(d).map(|(a, b)| a + b).collect() };
    let enc_total = median(total(&enc_up, &enc_down));
    let raw_total = median(total(&raw_up, &raw_down));
    let mb = bytes as f64 / (1 << 20) as f64;
    let server_peak = server_pid.and_then(process_usage).map(|(_, hwm)| hwm);
    println!(
        "{mib} MiB, median of {runs}: encrypted {:.0} MiB/s up, {:.0} MiB/s down; unencrypted {:.0} MiB/s up, {:.0} MiB/s down",
        mb / median(enc_up.clone()),
        mb / median(enc_down.clone()),
        mb / median(raw_up.clone()),
        mb / median(raw_down.clone()),
    );
    println!(
        "round-trip throughput, encrypted / unencrypted: {:.2}",
        raw_total / enc_total
    );
    println!(
        "peak RSS: client {:.1} MiB, server {}; sha256 intact: {intact}",
        client_peak as f64 / (1 << 20) as f64,
        server_peak
            .map(|b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64))
            .unwrap_or_else(|| "n/a".into()),
    );
    println!(
        "{}",
        json!({
            "mib": mib,
            "runs": runs,
            "encrypted_s": {"upload": median(enc_up), "download": median(enc_down)},
            "unencrypted_s": {"upload": median(raw_up), "download": median(raw_down)},
            "throughput_ratio": raw_total / enc_total,
            "client_peak_rss_bytes": client_peak,
            "server_peak_rss_bytes": server_peak,
            "intact": intact,
        })
    );
    if !intact {
        bail!("a downloaded file differs from the original");
    }
    Ok(())
}
