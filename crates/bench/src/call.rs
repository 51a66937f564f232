//! `missive-bench --call PARTICIPANTS`: one voice call of that many `missive call` processes
//! through a server process's media relay, three of them speaking (short tone bursts on
//! silence, each at its own pitch and moment), the others listening. Reports:
//! - the relay's CPU per forwarded packet (its thread's CPU time over the frames the
//!   listeners heard, each one packet the relay delivered);
//! - delivery: frames heard from each speaker over the frames due in the time each listener
//!   was in the call (1.0: nothing lost);
//! - mouth-to-ear latency on loopback: when a burst of the first speaker was due to leave its
//!   file (the speaker's media clock) against when it begins in the first listener's
//!   recording (the listener's clock; one machine, one wall clock). No audio device buffers.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::files::{cli_bin, run_cli};
use crate::percentile;

const RATE: u32 = 48_000;
/// The speakers' pitches.
const PITCHES: [f64; 3] = [1000.0, 1500.0, 2200.0];
/// A burst lasts 100 ms; speaker i's bursts start at 1 s + i × 250 ms, once a second.
const BURST: f64 = 0.1;

fn burst_file(path: &Path, speaker: usize, seconds: f64) -> anyhow::Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    let hz = PITCHES[speaker];
    for i in 0..(seconds * f64::from(RATE)) as usize {
        let t = i as f64 / f64::from(RATE);
        let in_burst = t >= 1.0 && (t - 1.0 - speaker as f64 * 0.25).rem_euclid(1.0) < BURST;
        let v = if in_burst {
            0.5 * (2.0 * std::f64::consts::PI * hz * t).sin()
        } else {
            0.0
        };
        w.write_sample((v * 32767.0) as i16)?;
    }
    w.finalize()?;
    Ok(())
}

/// The share of `window`'s energy at `hz` (1 for a pure tone).
fn share_at(window: &[f64], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in window {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy = window.iter().map(|x| x * x).sum::<f64>() * window.len() as f64 / 2.0;
    if energy > 0.0 {
        power / energy
    } else {
        0.0
    }
}

/// Where each burst at `hz` begins in `samples` (seconds from the start), in 5 ms steps.
fn onsets(samples: &[f64], hz: f64) -> Vec<f64> {
    let step = (RATE / 200) as usize;
    let mut found = Vec::new();
    let mut inside = false;
    for (i, window) in samples.chunks_exact(step).enumerate() {
        let rms = (window.iter().map(|x| x * x).sum::<f64>() / window.len() as f64).sqrt();
        let tone = rms > 1000.0 && share_at(window, hz) > 0.5;
        if tone && !inside {
            found.push((i * step) as f64 / f64::from(RATE));
        }
        inside = tone;
    }
    found
}

fn spawn(home: &Path, args: &[String]) -> anyhow::Result<Child> {
    Ok(Command::new(cli_bin()?)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?)
}

/// CPU seconds of the server's media relay thread.
fn relay_cpu(pid: u32) -> Option<f64> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == "missive-sfu" {
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            return Some(ticks / 100.0);
        }
    }
    None
}

pub fn run(
    url: &str,
    run: &str,
    domain: &str,
    participants: usize,
    seconds: u64,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    if participants < 2 {
        bail!("--call needs at least 2 participants");
    }
    let seconds = seconds.max(4);
    let dir = tempfile::tempdir()?;
    let homes: Vec<_> = (0..participants)
        .map(|i| dir.path().join(format!("p{i}")))
        .collect();
    let addresses: Vec<String> = (0..participants)
        .map(|i| format!("p{i}{run}@{domain}"))
        .collect();
    let setup = Instant::now();
    for (home, address) in homes.iter().zip(&addresses) {
        run_cli(home, &["register", "--server", url, address])?;
    }
    let mut create = vec!["group".to_owned(), "create".into(), "Bench call".into()];
    for a in &addresses[1..] {
        create.extend(["--member".into(), a.clone()]);
    }
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let (out, _, _) = run_cli(&homes[0], &create)?;
    let conv = out.lines().last().context("group id")?.trim().to_owned();
    for home in &homes[1..] {
        run_cli(home, &["sync"])?;
    }
    let speakers = participants.min(PITCHES.len());
    // The first listener records; with two participants, the second speaker does.
    let recorder = if participants > speakers { speakers } else { 1 };
    for i in 0..speakers {
        burst_file(
            &dir.path().join(format!("s{i}.wav")),
            i,
            seconds as f64 + 6.0,
        )?;
    }
    eprintln!(
        "{participants} participants ({speakers} speaking) set up in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let args = |i: usize, verb: &str, duration: u64| -> Vec<String> {
        let mut a = vec![
            "call".to_owned(),
            verb.into(),
            conv.clone(),
            "--json".into(),
            "--duration".into(),
            duration.to_string(),
        ];
        if i < speakers {
            let play = dir.path().join(format!("s{i}.wav"));
            a.extend(["--play".into(), play.to_string_lossy().into_owned()]);
        }
        if i == recorder {
            let record = dir.path().join("heard.wav");
            a.extend(["--record".into(), record.to_string_lossy().into_owned()]);
        }
        a
    };
    // The first speaker starts the call and stays longest; the others join it.
    let mut children = vec![spawn(&homes[0], &args(0, "start", seconds + 4))?];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (listed, _, _) = run_cli(&homes[1], &["calls", "--json"])?;
        if listed.contains(&conv) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the call did not start");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for (i, home) in homes.iter().enumerate().skip(1) {
        children.push(spawn(home, &args(i, "join", seconds))?);
    }
    // The relay's work while everyone is in: from 2 s after the last join for `seconds - 3`.
    std::thread::sleep(Duration::from_secs(2));
    let cpu_before = server_pid.and_then(relay_cpu);
    let measured = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds.saturating_sub(3)));
    let cpu = server_pid
        .and_then(relay_cpu)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let window = measured.elapsed().as_secs_f64();

    let mut summaries = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "participant {i} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let summary: Value = serde_json::from_str(
            text.lines()
                .last()
                .context("a participant printed no summary")?,
        )?;
        summaries.push(summary);
    }

    // Delivery: each listener, each speaker, against 50 frames a second of the time both were
    // in the call.
    let interval = |s: &Value| {
        let start = s["media_started_ms"].as_f64().unwrap_or(0.0) / 1000.0;
        (start, start + s["seconds"].as_f64().unwrap_or(0.0))
    };
    let mut delivery = Vec::new();
    let mut heard_total = 0u64;
    for (i, s) in summaries.iter().enumerate() {
        let heard: HashMap<String, u64> = s["heard"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        heard_total += heard.values().sum::<u64>();
        let (from, to) = interval(s);
        for (j, speaker) in addresses.iter().enumerate().take(speakers) {
            let (spoke_from, spoke_to) = interval(&summaries[j]);
            let together = to.min(spoke_to) - from.max(spoke_from);
            if j != i && together > 1.0 {
                let got = heard.get(speaker).copied().unwrap_or(0) as f64;
                delivery.push(got / (together * 50.0));
            }
        }
    }
    delivery.sort_by(f64::total_cmp);

    // Mouth to ear: speaker 0's bursts, due at 1 s + k s of its media clock.
    let spoke_ms = summaries[0]["media_started_ms"].as_f64().unwrap_or(0.0);
    let heard_ms = summaries[recorder]["media_started_ms"]
        .as_f64()
        .unwrap_or(0.0);
    let samples: Vec<f64> = hound::WavReader::open(dir.path().join("heard.wav"))?
        .samples::<i16>()
        .map(|s| s.map(f64::from))
        .collect::<Result<_, _>>()?;
    let mut latencies: Vec<f64> = onsets(&samples, PITCHES[0])
        .into_iter()
        .filter_map(|at| {
            let arrived = heard_ms + at * 1000.0;
            let k = ((arrived - spoke_ms) / 1000.0 - 1.0).floor();
            let due = spoke_ms + (1.0 + k) * 1000.0;
            let latency = arrived - due;
            (k >= 0.0 && (0.0..500.0).contains(&latency)).then_some(latency)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);

    println!(
        "call of {participants} ({speakers} speaking, {seconds} s; `missive call` processes, {} build)",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    match cpu {
        Some(cpu) if heard_total > 0 => println!(
            "relay CPU: {:.1} % of a core over {window:.1} s; {:.1} µs per forwarded packet \
             ({heard_total} packets heard in the whole call)",
            100.0 * cpu / window,
            // Packets in the window: the heard total scaled to the window's share of the call.
            1e6 * cpu / (heard_total as f64 * window / seconds as f64),
        ),
        _ => println!("relay CPU: not measured (no server process of this bench)"),
    }
    if delivery.is_empty() {
        println!("delivery: nothing to measure");
    } else {
        println!(
            "delivery (frames heard / due, per listener and speaker): min {:.3}, median {:.3}",
            delivery[0],
            percentile(&delivery, 50.0)
        );
    }
    if latencies.is_empty() {
        println!("mouth-to-ear: no burst found in the recording");
    } else {
        println!(
            "mouth-to-ear on loopback over {} bursts: median {:.0} ms, max {:.0} ms (target < 150 ms)",
            latencies.len(),
            percentile(&latencies, 50.0),
            latencies[latencies.len() - 1]
        );
    }
    Ok(())
}
