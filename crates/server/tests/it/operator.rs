//! What the operator of a server meets: a data directory only its owner can read, addresses
//! taken in any capitals, and logs without terminal colour codes when written to a file.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_missive-server");

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_data_directory_is_its_owners_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["init", "--domain", "example.org"])
        .output()
        .expect("init runs");
    assert!(out.status.success());
    assert_eq!(mode(&data), 0o700);
    for file in ["missive.toml", "missive.db"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    // An existing directory made readable by all (an older version, a careless copy) is
    // closed again the next time the server opens it.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(
        data.join("missive.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["invite", "Alice@Example.ORG"])
        .output()
        .expect("invite runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("invite for alice@example.org"), "{stdout}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("missive.toml")), 0o600);
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut server = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args([
            "serve",
            "--domain",
            "example.org",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("MISSIVE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("server runs");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the listening line");
    let addr = line
        .trim()
        .strip_prefix("missive-server listening on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    // One request, so that there is more in the log than the start.
    let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.kill().expect("kill");
    server.wait().expect("ends");

    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("serving"), "{text}");
    assert!(!text.contains('\u{1b}'), "no ANSI escape in {text:?}");
}
