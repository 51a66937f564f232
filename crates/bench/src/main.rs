//! `missive-bench`: drives a live Missive server with real clients — real MLS (the default
//! X-Wing suite), real HTTP and WebSockets, one device and one push connection per user.
//!
//! One sender posts M messages to a group of N receivers with C sends in flight; every receiver
//! decrypts every message. Reported: sent messages/s, seconds until all were decrypted
//! everywhere, latency from send start to decryption (p50/p90/p99), and — when the bench starts
//! the server itself — the server's CPU seconds and peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod call;
mod connections;
mod files;
mod groups;
mod kt;
mod search;
mod sframe;
mod soak;

use anyhow::{bail, Context};
use clap::Parser;
use futures_util::stream::{FuturesUnordered, StreamExt};
use missive_core::account::{Outcome, MAX_UNACCEPTED_SENDS};
use missive_core::client::Client;
use missive_core::sqlite::SqliteAccountStore;
use serde_json::json;

#[derive(Parser, Clone)]
#[command(name = "missive-bench", about = "Load generator for a Missive server")]
struct Args {
    /// Receivers in the group (each its own user, device and WebSocket).
    #[arg(long, default_value_t = 50)]
    receivers: usize,
    /// Messages the sender posts.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Sends in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Use this server (it must allow open registration for --domain) instead of starting one.
    #[arg(long)]
    server: Option<String>,
    /// Domain of the bench users.
    #[arg(long, default_value = "bench.test")]
    domain: String,
    /// The missive-server binary to start (default: next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Instead: compare the server's time to accept one message in a group of --large devices
    /// with a group of 2 (sequential sends, no receiver connected).
    #[arg(long)]
    accept_ratio: bool,
    /// Devices in the large group of --accept-ratio.
    #[arg(long, default_value_t = 1000)]
    large: usize,
    /// Instead: an encrypted file round trip of this many MiB through the `missive` CLI,
    /// against the same bytes unencrypted through the same blob API.
    #[arg(long)]
    files: Option<u64>,
    /// Repetitions of --files (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Instead: hold this many idle WebSocket connections, report the server's memory per
    /// connection, then drop and reopen them all at once.
    #[arg(long)]
    connections: Option<usize>,
    /// Devices the --connections are spread over.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Instead: this many rounds of sends, device links, revocations and clients killed
    /// mid-commit; reports messages some device could not read (target: zero).
    #[arg(long)]
    soak: Option<usize>,
    /// Seed of --soak's random choices (a failing run can be replayed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Instead: key transparency's proofs in a log of this many entries (in this process).
    #[arg(long)]
    kt: Option<u64>,
    /// Instead: what adding, joining and removing cost in an MLS group of this many devices
    /// (in this process, no server).
    #[arg(long)]
    group: Option<usize>,
    /// Instead: search in a device's store of this many messages (in this process).
    #[arg(long)]
    search: Option<usize>,
    /// Instead: what call media encryption (SFrame) costs per frame, over this many frames
    /// (in this process).
    #[arg(long)]
    sframe: Option<usize>,
    /// Instead: a voice call of this many `missive call` processes (three speaking) through
    /// the server's media relay: its CPU per packet, delivery, mouth-to-ear latency.
    #[arg(long)]
    call: Option<usize>,
    /// Seconds the --call lasts.
    #[arg(long, default_value_t = 10)]
    call_seconds: u64,
}

/// A server process this bench started.
struct ServerProcess {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(args: &Args) -> anyhow::Result<ServerProcess> {
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("missive-server"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p missive-server) or pass --server-bin",
            bin.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let status = Command::new(&bin)
        .arg("--data")
        .arg(&data)
        .args(["init", "--domain", &args.domain])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("missive-server init failed");
    }
    // The bench registers its users without invites.
    let config = data.join("missive.toml");
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        // One machine plays thousands of users: no rate limits.
        text.replace("open_registration = false", "open_registration = true")
            .replace(
                "rate_limit_ip_per_second = 100",
                "rate_limit_ip_per_second = 0",
            )
            .replace(
                "rate_limit_device_per_second = 50",
                "rate_limit_device_per_second = 0",
            ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&bin)
        .arg("--data")
        .arg(&data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("MISSIVE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    Ok(ServerProcess {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}

async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the server at {url} did not become healthy")
}

/// CPU seconds (user + system) and peak RSS in bytes of a process, from /proc.
fn process_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    // USER_HZ is 100 on Linux.
    Some((ticks / 100.0, hwm_kib * 1024))
}

async fn register(url: &str, home: &Path, name: &str, domain: &str) -> anyhow::Result<Client> {
    register_with_stock(
        url,
        home,
        name,
        domain,
        missive_core::account::KEY_PACKAGE_STOCK,
    )
    .await
}

async fn register_with_stock(
    url: &str,
    home: &Path,
    name: &str,
    domain: &str,
    stock: usize,
) -> anyhow::Result<Client> {
    let store = SqliteAccountStore::open(&home.join(name).join("account.db"))?;
    let client = Client::register_with_stock(
        Box::new(store),
        url,
        &format!("{name}@{domain}"),
        None,
        stock,
    )
    .await
    .map_err(|e| {
        let hint = match e.server_code() {
            Some(missive_proto::ErrorCode::DomainNotAllowed) => {
                format!(" (its users are @{domain}: pass --domain with the server's domain)")
            }
            _ => String::new(),
        };
        anyhow::Error::new(e).context(format!("registering {name}{hint}"))
    })?;
    Ok(client)
}

/// Median and 90th percentile (ms) of posting `count` messages one at a time, and the
/// server's CPU seconds meanwhile.
async fn time_sends(
    sender: &mut Client,
    conversation: &str,
    count: usize,
    pid: Option<u32>,
) -> anyhow::Result<(f64, f64, Option<f64>)> {
    let transport = sender.transport();
    for i in 0..20 {
        let p = sender.prepare_texts(conversation, &[format!("warm-up {i}")])?;
        transport.post_prepared(&p[0]).await?;
    }
    let before = pid.and_then(process_usage);
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let p = sender.prepare_texts(conversation, &[i.to_string()])?;
        let start = Instant::now();
        transport.post_prepared(&p[0]).await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let after = pid.and_then(process_usage);
    times.sort_by(f64::total_cmp);
    let cpu = match (before, after) {
        (Some((a, _)), Some((b, _))) => Some(b - a),
        _ => None,
    };
    Ok((percentile(&times, 50.0), percentile(&times, 90.0), cpu))
}

async fn accept_ratio(args: &Args, url: &str, run: &str, pid: Option<u32>) -> anyhow::Result<()> {
    let homes = tempfile::tempdir()?;
    let setup = Instant::now();
    let mut sender = register(url, homes.path(), &format!("s{run}"), &args.domain).await?;
    let mut members = Vec::with_capacity(args.large);
    // One key package each is all these devices need.
    for i in 0..args.large.max(2) - 1 {
        register_with_stock(url, homes.path(), &format!("m{run}-{i}"), &args.domain, 1).await?;
        members.push(format!("m{run}-{i}@{}", args.domain));
    }
    let small = sender
        .create_conversation(None, None, &members[..1])
        .await?;
    let large = sender.create_conversation(None, None, &members).await?;
    println!(
        "setup: groups of 2 and {} devices in {:.1}s",
        members.len() + 1,
        setup.elapsed().as_secs_f64()
    );
    let (s50, s90, scpu) = time_sends(&mut sender, &small, args.messages, pid).await?;
    let (l50, l90, lcpu) = time_sends(&mut sender, &large, args.messages, pid).await?;
    let per_msg = |cpu: Option<f64>| cpu.map(|c| c * 1e6 / args.messages as f64);
    println!("accept one message, group of 2: p50 {s50:.2} ms, p90 {s90:.2} ms");
    println!(
        "accept one message, group of {}: p50 {l50:.2} ms, p90 {l90:.2} ms",
        members.len() + 1
    );
    println!("ratio of medians (large / small): {:.2}", l50 / s50);
    if let (Some(a), Some(b)) = (per_msg(scpu), per_msg(lcpu)) {
        println!(
            "server CPU per message: {a:.0} us (2) vs {b:.0} us ({})",
            members.len() + 1
        );
    }
    println!(
        "{}",
        json!({
            "small_devices": 2,
            "large_devices": members.len() + 1,
            "messages": args.messages,
            "small_ms": {"p50": s50, "p90": s90},
            "large_ms": {"p50": l50, "p90": l90},
            "ratio_p50": l50 / s50,
            "server_cpu_us_per_message": {"small": per_msg(scpu), "large": per_msg(lcpu)},
        })
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(devices) = args.group {
        return groups::run(devices);
    }
    if let Some(frames) = args.sframe {
        return sframe::run(frames);
    }
    if let Some(messages) = args.search {
        return search::run(messages);
    }
    if let Some(entries) = args.kt {
        return kt::run(entries);
    }
    if args.receivers == 0 || args.messages == 0 || args.concurrency == 0 {
        bail!("--receivers, --messages and --concurrency must be at least 1");
    }
    if args.concurrency > MAX_UNACCEPTED_SENDS {
        bail!("--concurrency is at most {MAX_UNACCEPTED_SENDS} (messages a sender may have outstanding)");
    }
    let server = match &args.server {
        Some(_) => None,
        None => Some(start_server(&args)?),
    };
    let url = args
        .server
        .clone()
        .or_else(|| server.as_ref().map(|s| s.url.clone()))
        .context("no server")?;
    wait_healthy(&url).await?;
    // Users of this run get a prefix of their own, so that runs against one server never collide.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let run = format!("{:06x}", (std::process::id() ^ nanos) & 0xff_ffff);
    if let Some(n) = args.connections {
        let pid = server.as_ref().map(|s| s.child.id());
        return connections::connections(&url, &run, &args.domain, n, args.devices, pid).await;
    }
    if let Some(mib) = args.files {
        let pid = server.as_ref().map(|s| s.child.id());
        return files::files(&url, &run, &args.domain, mib, args.runs.max(1), pid).await;
    }
    if let Some(participants) = args.call {
        let pid = server.as_ref().map(|s| s.child.id());
        return call::run(
            &url,
            &run,
            &args.domain,
            participants,
            args.call_seconds,
            pid,
        );
    }
    if let Some(rounds) = args.soak {
        return soak::soak(&url, &run, &args.domain, rounds, args.seed).await;
    }
    if args.accept_ratio {
        return accept_ratio(&args, &url, &run, server.as_ref().map(|s| s.child.id())).await;
    }
    let homes = tempfile::tempdir()?;

    // Users and the group.
    let setup = Instant::now();
    let mut sender = register(&url, homes.path(), &format!("s{run}"), &args.domain).await?;
    let mut receivers = Vec::with_capacity(args.receivers);
    for i in 0..args.receivers {
        receivers.push(register(&url, homes.path(), &format!("r{run}-{i}"), &args.domain).await?);
    }
    let members: Vec<String> = (0..args.receivers)
        .map(|i| format!("r{run}-{i}@{}", args.domain))
        .collect();
    let conversation = sender
        .create_conversation(Some("bench".into()), None, &members)
        .await?;
    for r in &mut receivers {
        r.sync().await?;
    }
    println!(
        "setup: {} receivers joined in {:.1}s",
        args.receivers,
        setup.elapsed().as_secs_f64()
    );

    // Receivers listen on their WebSockets and time each decryption.
    let start = Instant::now();
    let send_started: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..args.messages).map(|_| Mutex::new(None)).collect());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        args.messages * args.receivers,
    )));
    let delivered = Arc::new(AtomicUsize::new(0));
    let alerts = Arc::new(AtomicUsize::new(0));
    // Batches of events processed (each with one save).
    let batches = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for mut r in receivers {
        let mut push = r.connect_push().await?;
        let (send_started, latencies, delivered, alerts, batches) = (
            send_started.clone(),
            latencies.clone(),
            delivered.clone(),
            alerts.clone(),
            batches.clone(),
        );
        let expected = args.messages;
        tasks.push(tokio::spawn(async move {
            let mut got = 0;
            while got < expected {
                let Some(events) = push.next_batch().await? else {
                    bail!("push channel closed after {got} messages");
                };
                let outcomes = r.process_events(&events).await?;
                batches.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                for o in outcomes {
                    match o {
                        Outcome::Message(m) => {
                            let i: usize = m.text.parse().context("bench message")?;
                            let started = send_started[i]
                                .lock()
                                .map_err(|_| anyhow::anyhow!("poisoned"))?
                                .context("message decrypted before it was sent")?;
                            latencies
                                .lock()
                                .map_err(|_| anyhow::anyhow!("poisoned"))?
                                .push(now.duration_since(started).as_secs_f64() * 1000.0);
                            delivered.fetch_add(1, Ordering::Relaxed);
                            got += 1;
                        }
                        Outcome::Alert(a) => {
                            alerts.fetch_add(1, Ordering::Relaxed);
                            // A refused message never arrives: waiting for it would hang.
                            bail!("security alert on an honest server: {a}");
                        }
                        _ => {}
                    }
                }
            }
            // The client is handed back, so that closing its store (a checkpoint of its
            // write-ahead log) is not counted as decryption time.
            anyhow::Ok((Instant::now(), r))
        }));
    }

    let usage_before = server.as_ref().and_then(|s| process_usage(s.child.id()));
    let sending = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0;
    let transport = sender.transport();
    let mut prepared = std::collections::VecDeque::new();
    while next < args.messages || !prepared.is_empty() || !in_flight.is_empty() {
        // Encrypt up to C queued messages under one durable save when none is ready (latency is
        // counted from here), then post as many as there are free slots.
        // Messages encrypted and not yet accepted may be accepted in any order: receivers
        // read them only up to MAX_UNACCEPTED_SENDS apart.
        let room = MAX_UNACCEPTED_SENDS.saturating_sub(prepared.len() + in_flight.len());
        if prepared.is_empty() && next < args.messages && room > 0 {
            let batch: Vec<usize> =
                (next..(next + args.concurrency.min(room)).min(args.messages)).collect();
            next += batch.len();
            let now = Instant::now();
            for &i in &batch {
                *send_started[i]
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))? = Some(now);
            }
            let texts: Vec<String> = batch.iter().map(|i| i.to_string()).collect();
            prepared.extend(sender.prepare_texts(&conversation, &texts)?);
        }
        while in_flight.len() < args.concurrency {
            let Some(p) = prepared.pop_front() else { break };
            let transport = transport.clone();
            in_flight.push(async move {
                let accepted = transport.post_prepared(&p).await;
                accepted.map(|a| (p, a))
            });
        }
        if let Some(done) = in_flight.next().await {
            // Record every send that completed, with one save.
            let mut completed = vec![done?];
            while let Some(Some(more)) = futures_util::FutureExt::now_or_never(in_flight.next()) {
                completed.push(more?);
            }
            sender.record_sent(&completed)?;
        }
    }
    let send_secs = sending.elapsed().as_secs_f64();
    let mut last_decrypted = sending;
    let mut receivers = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (done, r) = t.await??;
        last_decrypted = last_decrypted.max(done);
        receivers.push(r);
    }
    let all_secs = last_decrypted.duration_since(sending).as_secs_f64();
    let usage_after = server.as_ref().and_then(|s| process_usage(s.child.id()));

    let mut lat = Arc::try_unwrap(latencies)
        .map_err(|_| anyhow::anyhow!("receivers still running"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    lat.sort_by(f64::total_cmp);
    let deliveries = delivered.load(Ordering::Relaxed);
    let (cpu, rss) = match (usage_before, usage_after) {
        (Some((c0, _)), Some((c1, rss))) => (Some(c1 - c0), Some(rss)),
        _ => (None, None),
    };
    let report = json!({
        "receivers": args.receivers,
        "messages": args.messages,
        "concurrency": args.concurrency,
        "sent_per_s": args.messages as f64 / send_secs,
        "deliveries": deliveries,
        "deliveries_per_s": deliveries as f64 / all_secs,
        "all_decrypted_s": all_secs,
        "latency_ms": {"p50": percentile(&lat, 50.0), "p90": percentile(&lat, 90.0), "p99": percentile(&lat, 99.0)},
        "server_cpu_s": cpu,
        "server_peak_rss_bytes": rss,
        "alerts": alerts.load(Ordering::Relaxed),
        "receive_batches": batches.load(Ordering::Relaxed),
        "elapsed_total_s": start.elapsed().as_secs_f64(),
    });
    println!(
        "sent {} messages in {:.2}s: {:.0} messages/s",
        args.messages,
        send_secs,
        args.messages as f64 / send_secs
    );
    println!(
        "{} decrypted deliveries in {:.2}s: {:.0}/s",
        deliveries,
        all_secs,
        deliveries as f64 / all_secs
    );
    println!(
        "latency send start -> decrypted: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0)
    );
    if let (Some(cpu), Some(rss)) = (cpu, rss) {
        println!(
            "server: {cpu:.2} CPU seconds, peak RSS {:.1} MiB",
            rss as f64 / 1048576.0
        );
    }
    println!("{report}");
    drop(receivers);
    if deliveries != args.messages * args.receivers {
        bail!(
            "{deliveries} deliveries instead of {}",
            args.messages * args.receivers
        );
    }
    let alerts = alerts.load(Ordering::Relaxed);
    if alerts > 0 {
        bail!("{alerts} security alerts on an honest server: a false alarm to fix");
    }
    Ok(())
}
