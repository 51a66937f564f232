//! A 1 GiB encrypted file between two users, with the server in a process of its own: the
//! bytes arrive intact and neither side's memory grows with the file.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use missive_core::account::Outcome;
use missive_core::client::Client;
use missive_core::sqlite::SqliteAccountStore;
use sha2::{Digest, Sha256};

use crate::support::DOMAIN;

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

struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_file_round_trip_keeps_memory_flat() {
    let mib: u64 = std::env::var("MISSIVE_BIG_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    let bin = env!("CARGO_BIN_EXE_missive-server");
    let init = Command::new(bin)
        .arg("--data")
        .arg(&data)
        .args(["init", "--domain", DOMAIN])
        .stdout(Stdio::null())
        .status()
        .expect("init runs");
    assert!(init.success());
    let config = data.join("missive.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("open_registration = false", "open_registration = true"),
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let server = ServerProcess(
        Command::new(bin)
            .arg("--data")
            .arg(&data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("MISSIVE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("server runs"),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let open = |name: &str| {
        Box::new(
            SqliteAccountStore::open(&dir.path().join(name).join("account.db")).expect("store"),
        )
    };
    let mut alice = Client::register(open("alice"), &url, &format!("alice@{DOMAIN}"), None)
        .await
        .expect("alice registers");
    let mut bob = Client::register(open("bob"), &url, &format!("bob@{DOMAIN}"), None)
        .await
        .expect("bob registers");
    let conv = alice
        .dm(&format!("bob@{DOMAIN}"), "a big file follows")
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

    let server_peak = peak_rss(&server.0.id().to_string());
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
