//! `missive register` prints a recovery key; `missive recover` with it, on a new device after
//! every device is lost, brings the account and its conversations back, with their past
//! messages when the history backup is on. A wrong key makes no home.

use std::io::Write;
use std::process::Stdio;

use super::{said, World};

fn recover(w: &World, name: &str, key: &str) -> std::process::Output {
    let url = w.server().url();
    let address = format!("{name}@example.org");
    let mut child = w
        .command(name, &["recover", "--server", &url, &address])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("recover runs");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{key}").expect("type the key");
    drop(stdin);
    child.wait_with_output().expect("recover ends")
}

#[test]
fn a_lost_account_comes_back_with_its_recovery_key() {
    let w = World::new();
    let printed = w.register("alice");
    w.register("bob");
    let key = printed
        .lines()
        .find_map(|l| l.strip_prefix("recovery key: "))
        .unwrap_or_else(|| panic!("no recovery key line in {printed}"))
        .to_owned();
    assert_eq!(key.len(), 39, "{key}");
    // Shown once: asking for a key again is refused, the one shown stays.
    let again = w.run("alice", &["recovery-key"]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("has a recovery key already"), "{stderr}");
    assert_eq!(
        w.ok("alice", &["history-backup", "on"]).trim(),
        "history backup: on"
    );
    w.ok("alice", &["dm", "bob@example.org", "before"]);
    assert_eq!(w.sync("bob"), [said("alice", "before")]);
    w.ok("bob", &["dm", "alice@example.org", "reply"]);
    // Alice's next sync backs up what she sent and read.
    assert_eq!(w.sync("alice"), [said("bob", "reply")]);

    // Every device lost.
    std::fs::remove_dir_all(w.home("alice")).expect("lose the device");
    let wrong = recover(&w, "alice", "0000-0000-0000-0000-0000-0000-0000-0000");
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("no recovery backup"), "{stderr}");
    assert!(
        !w.home("alice").exists(),
        "a refused recovery leaves no home"
    );

    // Typed back with spaces, in lower case.
    let out = recover(&w, "alice", &key.replace('-', " ").to_lowercase());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 conversations rejoined, 2 messages of history, 1 lost devices removed"),
        "{stdout}"
    );
    let conv: serde_json::Value =
        serde_json::from_str(w.ok("alice", &["conversations", "--json"]).trim()).expect("json");
    let past = w.ok("alice", &["history", conv["id"].as_str().expect("id")]);
    assert!(past.contains("before") && past.contains("reply"), "{past}");
    w.ok("alice", &["dm", "bob@example.org", "I am back"]);
    assert_eq!(w.sync("bob"), [said("alice", "I am back")]);
    w.ok("bob", &["dm", "alice@example.org", "welcome back"]);
    assert_eq!(w.sync("alice"), [said("bob", "welcome back")]);
    // Bob saw a new device of alice's, under the key he pinned: nothing to alert.
    assert!(w.ok("bob", &["alerts"]).is_empty(), "no security alert");
}
