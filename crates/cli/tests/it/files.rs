//! Encrypted file sharing through the `missive` binary: round trip, privacy from the server,
//! tampering, and an upload killed halfway.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use missive_core::file::{Layout, SEALED_CHUNK};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{files_containing, last_line, World};

/// A file of `len` pseudo-random bytes (no compressible pattern the server could spot).
fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, &data).expect("write");
    data
}

/// The file objects of the messages `sync --json` prints.
fn synced_files(w: &World, who: &str) -> Vec<Value> {
    w.ok(who, &["sync", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter_map(|v| v.get("file").cloned())
        .collect()
}

/// Every complete blob file in the server's data directory.
fn blob_files(w: &World) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = w.data().join("blobs").join("complete");
    for shard in std::fs::read_dir(root).expect("blob dir") {
        for f in std::fs::read_dir(shard.expect("shard").path()).expect("shard dir") {
            out.push(f.expect("entry").path());
        }
    }
    out
}

fn dm_conversation(w: &World) -> String {
    w.ok("alice", &["dm", "bob@example.org", "a file follows"]);
    w.sync("bob");
    let conv: Value =
        serde_json::from_str(w.ok("alice", &["conversations", "--json"]).trim()).expect("json");
    conv["id"].as_str().expect("id").to_owned()
}

fn listing(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_file_goes_end_to_end_and_the_server_learns_nothing() {
    let w = World::new();
    for name in ["alice", "bob", "carol"] {
        w.register(name);
    }
    let conv = dm_conversation(&w);
    let name = "Budget 2027 (confidential).pdf";
    let path = w.dir.path().join("outbox").join(name);
    let data = random_file(&path, 300_000, 1);

    let out = w.ok("alice", &["send-file", &conv, path.to_str().expect("utf8")]);
    let message_id = last_line(&out);
    assert_eq!(message_id.len(), 32, "a message id: {out}");

    let files = synced_files(&w, "bob");
    assert_eq!(files.len(), 1, "{files:?}");
    let f = &files[0];
    assert_eq!(f["name"], name);
    assert_eq!(f["size"], 300_000);
    assert_eq!(f["media_type"], "application/pdf");
    assert_eq!(f["blake3"], blake3::hash(&data).to_hex().as_str());
    assert!(f.get("secret").is_none(), "the key is not printed");
    let id = f["id"].as_str().expect("id").to_owned();

    let inbox = w.dir.path().join("inbox");
    let got = PathBuf::from(last_line(&w.ok(
        "bob",
        &["download", &id, "--out", inbox.to_str().expect("utf8")],
    )));
    assert_eq!(got, inbox.join(name));
    assert_eq!(std::fs::read(&got).expect("downloaded"), data);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&got)
            .expect("downloaded")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "a received file is its owner's alone");
    }
    // A second download never overwrites the first; the message id that `send-file` printed
    // names the file as well as the file's own id does.
    let again = last_line(&w.ok(
        "bob",
        &[
            "download",
            &message_id,
            "--out",
            inbox.to_str().expect("utf8"),
        ],
    ));
    assert!(
        again.ends_with("Budget 2027 (confidential) (2).pdf"),
        "{again}"
    );
    // The sender's own history has the file, and her other device... she can fetch it too.
    let history = w.ok("alice", &["history", &conv, "--json"]);
    assert!(history.contains(&id), "{history}");

    // The server holds padded ciphertext only: no name, no content, not the exact size.
    let blobs = blob_files(&w);
    assert_eq!(blobs.len(), 1);
    let layout = Layout::new(300_000).expect("layout");
    assert_eq!(
        std::fs::metadata(&blobs[0]).expect("blob").len(),
        layout.blob_len()
    );
    assert!(layout.padded > 300_000);
    for needle in [
        name.as_bytes(),
        b"Budget 2027".as_slice(),
        &data[..32],
        &data[150_000..150_032],
        &data[300_000 - 32..],
    ] {
        let hits = files_containing(&w.data(), needle);
        assert!(hits.is_empty(), "found plaintext in {hits:?}");
    }

    // Carol is not in the conversation: she has no such file.
    let out = w.run("carol", &["download", &id, "--out", "/tmp"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no file"));
}

#[test]
fn tampered_or_substituted_blobs_are_refused_and_nothing_is_written() {
    let w = World::new();
    for name in ["alice", "bob"] {
        w.register(name);
    }
    let conv = dm_conversation(&w);
    let path = w.dir.path().join("outbox").join("minutes.odt");
    let data = random_file(&path, 5 * 65_536 + 100, 2);
    let p = path.to_str().expect("utf8");
    w.ok("alice", &["send-file", &conv, p]);
    w.ok("alice", &["send-file", &conv, p]);
    let files = synced_files(&w, "bob");
    let ids: Vec<String> = files
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let blob_of = |id: &str| {
        blob_files(&w)
            .into_iter()
            .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(id))
            .expect("blob file")
    };
    let (target, other) = (blob_of(&ids[0]), blob_of(&ids[1]));
    let original = std::fs::read(&target).expect("blob");
    let other_bytes = std::fs::read(&other).expect("blob");
    assert_ne!(original, other_bytes, "each file has its own key");

    let mut flipped = original.clone();
    flipped[70_000] ^= 0x01;
    let truncated = original[..2 * SEALED_CHUNK].to_vec();
    let mut swapped = original.clone();
    let (a, b) = swapped.split_at_mut(SEALED_CHUNK);
    a.swap_with_slice(&mut b[..SEALED_CHUNK]);
    let cases = [
        ("a flipped bit", flipped),
        ("a truncated blob", truncated),
        ("two swapped chunks", swapped),
        ("another file's blob (wrong key)", other_bytes),
    ];
    // A hostile server changes its records along with the bytes, so it serves them as whole.
    let db = rusqlite::Connection::open(w.data().join("missive.db")).expect("server db");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let record_size = |len: usize| {
        db.execute(
            "UPDATE blobs SET size = ?1, received = ?1 WHERE id = ?2",
            rusqlite::params![len as i64, ids[0]],
        )
        .expect("record");
    };
    for (i, (what, bytes)) in cases.into_iter().enumerate() {
        std::fs::write(&target, &bytes).expect("tamper");
        record_size(bytes.len());
        let out_dir = w.dir.path().join(format!("tampered-{i}"));
        let out = w.run(
            "bob",
            &[
                "download",
                &ids[0],
                "--out",
                out_dir.to_str().expect("utf8"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: download must fail");
        assert!(
            stderr.starts_with("error: file: ") && stderr.lines().count() == 1,
            "{what}: one clear line: {stderr}"
        );
        assert!(
            listing(&out_dir).is_empty(),
            "{what}: nothing written: {:?}",
            listing(&out_dir)
        );
    }
    std::fs::write(&target, &original).expect("restore");
    record_size(original.len());
    let out_dir = w.dir.path().join("intact");
    let got = last_line(&w.ok(
        "bob",
        &[
            "download",
            &ids[0],
            "--out",
            out_dir.to_str().expect("utf8"),
        ],
    ));
    assert_eq!(std::fs::read(got).expect("file"), data);
}

#[test]
fn an_upload_killed_halfway_resumes_after_a_server_restart() {
    let mut w = World::new();
    for name in ["alice", "bob"] {
        w.register(name);
    }
    let conv = dm_conversation(&w);
    let path = w.dir.path().join("outbox").join("recording.mp4");
    let size = 48 << 20;
    let data = random_file(&path, size, 3);
    let blob_len = Layout::new(size as u64).expect("layout").blob_len();

    // Start the upload and stop the client dead once the server holds a few MiB.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_missive"))
        .arg("--home")
        .arg(w.home("alice"))
        .args(["send-file", &conv, path.to_str().expect("utf8")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("missive runs");
    let partial = w.data().join("blobs").join("partial");
    let deadline = Instant::now() + Duration::from_secs(60);
    let blob_id = loop {
        let stored = std::fs::read_dir(&partial)
            .expect("partial dir")
            .filter_map(|e| e.ok())
            .find(|e| e.metadata().map(|m| m.len() > 4 << 20).unwrap_or(false));
        if let Some(e) = stored {
            child.kill().expect("SIGKILL");
            break e.file_name().to_string_lossy().into_owned();
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the upload ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(2));
    };
    child.wait().expect("reaped");

    // The server records what it holds once it notices the client is gone.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut stored = 0;
    for _ in 0..500 {
        let record = rt
            .block_on(w.server().store().blob(&blob_id))
            .expect("store")
            .expect("blob record");
        stored = record.received;
        if stored > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        stored > 0 && stored < blob_len,
        "halfway: {stored} of {blob_len}"
    );
    w.restart_server();

    let out = w.run("alice", &["send-file", &conv, path.to_str().expect("utf8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("resumed the upload at byte {stored}:")),
        "resumed where the server's copy ended ({stored}): {stderr}"
    );

    let files = synced_files(&w, "bob");
    assert_eq!(files.len(), 1, "one file message, not two: {files:?}");
    assert_eq!(
        files[0]["id"],
        blob_id.as_str(),
        "the same blob was completed"
    );
    let inbox = w.dir.path().join("inbox");
    let got = last_line(&w.ok(
        "bob",
        &[
            "download",
            files[0]["id"].as_str().expect("id"),
            "--out",
            inbox.to_str().expect("utf8"),
        ],
    ));
    let downloaded = std::fs::read(got).expect("file");
    assert_eq!(Sha256::digest(&downloaded), Sha256::digest(&data));
}
