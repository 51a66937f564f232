//! A 1 GiB encrypted file between two users, with the server in a process of its own: the
//! bytes arrive intact and neither side's memory grows with the file.

use std::io::{Read, Write};

use missive_core::account::Outcome;
use sha2::{Digest, Sha256};

use crate::support::{address, open_user, ServerProcess};

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kib * 1024
}

fn sha256_file(path: &std::path::Path) -> [u8; 32] {
    let mut file = std::fs::File::open(path).expect("open");
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            return hash.finalize().into();
        }
        hash.update(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_file_round_trip_keeps_memory_flat() {
    let mib: u64 = std::env::var("MISSIVE_BIG_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(&dir.path().join("server")).await;
    let mut alice = open_user(dir.path(), &server.url, "alice").await;
    let mut bob = open_user(dir.path(), &server.url, "bob").await;
    let conv = alice
        .dm(&address("bob"), "a big file follows")
        .await
        .expect("dm")
        .conversation;
    bob.sync().await.expect("bob joins");

    // The file, written a MiB at a time.
    let path = dir.path().join("archive.tar");
    {
        use rand::RngCore;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mib {
            rand::thread_rng().fill_bytes(&mut buf);
            file.write_all(&buf).expect("write");
        }
        file.flush().expect("flush");
    }
    let want = sha256_file(&path);

    let started = std::time::Instant::now();
    let sent = alice
        .send_file(&conv, &path, None)
        .await
        .expect("file sent");
    assert_eq!(sent.resumed_from, 0);
    let uploaded = started.elapsed();
    let file = bob
        .sync()
        .await
        .expect("bob syncs")
        .into_iter()
        .find_map(|o| match o {
            Outcome::Message(m) => m.file,
            _ => None,
        })
        .expect("bob received the file message");
    assert_eq!(file.size, mib << 20);
    let out = bob
        .download_file(&file.blob, &dir.path().join("inbox"), None)
        .await
        .expect("download intact");
    let round_trip = started.elapsed();
    assert_eq!(sha256_file(&out), want, "the same bytes came out");

    let server_peak = peak_rss(&server.pid().to_string());
    // This test process is the two clients (and nothing else big).
    let client_peak = peak_rss("self");
    println!(
        "{mib} MiB round trip in {:.1}s (upload {:.1}s): client peak RSS {:.1} MiB, \
         server peak RSS {:.1} MiB",
        round_trip.as_secs_f64(),
        uploaded.as_secs_f64(),
        client_peak as f64 / 1048576.0,
        server_peak as f64 / 1048576.0
    );
    assert!(server_peak < 100 << 20, "server peak RSS {server_peak}");
    assert!(client_peak < 100 << 20, "client peak RSS {client_peak}");
}
