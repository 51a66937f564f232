//! Linked devices through the `missive` binary: `link` on a device in use, `join` on a new
//! one; the new device is in every conversation, old and new, and holds their history. Wrong,
//! reused and expired codes fail cleanly on both sides.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use missive_core::link::LinkCode;
use serde_json::Value;

use super::{last_line, said, World};

/// Starts `missive link` for `who`; returns the process and the code it printed.
pub(crate) fn start_link(w: &World, who: &str, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_missive"))
        .arg("--home")
        .arg(w.home(who))
        .arg("link")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("missive link runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the code line");
    let code = line.trim().to_owned();
    assert!(!code.is_empty(), "link printed its code alone on a line");
    (child, code)
}

pub(crate) fn join(w: &World, who: &str, code: &str) -> std::process::Output {
    let url = w.server().url();
    w.run(who, &["join", "--server", &url, code, "--timeout", "60"])
}

fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().expect("link ends");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn history_texts(w: &World, who: &str, conversation: &str) -> Vec<String> {
    w.ok(who, &["history", conversation, "--json"])
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["text"].as_str().expect("text").to_owned()
        })
        .collect()
}

fn conversation_ids(w: &World, who: &str) -> Vec<String> {
    w.ok(who, &["conversations", "--json"])
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["id"].as_str().expect("id").to_owned()
        })
        .collect()
}

#[test]
fn a_linked_device_reads_and_writes_everything_with_its_history() {
    let w = World::new();
    for name in ["alice", "bob", "carol"] {
        w.register(name);
    }
    w.ok("alice", &["dm", "bob@example.org", "before the link"]);
    w.sync("bob");
    w.ok("bob", &["dm", "alice@example.org", "bob answers"]);
    let group = last_line(&w.ok(
        "alice",
        &[
            "group",
            "create",
            "Cabinet",
            "--member",
            "bob@example.org",
            "--member",
            "carol@example.org",
        ],
    ));
    w.ok("carol", &["send", &group, "carol in the group"]);
    w.sync("alice");
    w.ok("alice", &["verify", "bob@example.org", "--confirm"]);
    let dm = conversation_ids(&w, "alice")
        .into_iter()
        .find(|c| *c != group)
        .expect("the DM");

    let (link, code) = start_link(&w, "alice", &[]);
    let joined = join(&w, "phone", &code);
    assert!(
        joined.status.success(),
        "join: {}",
        String::from_utf8_lossy(&joined.stderr)
    );
    let (linked, stderr) = finish(link);
    assert!(linked, "link: {stderr}");
    assert!(
        stderr.contains("added to 2 conversations"),
        "link reports what it did: {stderr}"
    );

    // The new device holds the history and the conversations' names, and shows none of it
    // as new.
    assert_eq!(
        history_texts(&w, "phone", &dm),
        ["before the link", "bob answers"]
    );
    assert_eq!(history_texts(&w, "phone", &group), ["carol in the group"]);
    let listing: Vec<Value> = w
        .ok("phone", &["conversations", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(
        listing.iter().any(|c| c["name"] == "Cabinet"),
        "{listing:?}"
    );
    assert!(w.sync("phone").is_empty(), "history is not new");
    // The verified mark came along.
    let verified = w.ok("phone", &["verify", "bob@example.org"]);
    assert!(verified.contains("status: verified"), "{verified}");

    // Both devices receive every later message, and what one sends the other sees.
    w.ok("bob", &["dm", "alice@example.org", "after the link"]);
    w.ok("carol", &["send", &group, "group after the link"]);
    let expected = [
        said("bob", "after the link"),
        said("carol", "group after the link"),
    ];
    let mut on_phone = w.sync("phone");
    on_phone.sort();
    let mut on_laptop = w.sync("alice");
    on_laptop.sort();
    assert_eq!(on_phone, expected);
    assert_eq!(on_laptop, expected);
    w.sync("bob");
    w.ok("phone", &["send", &group, "sent from the phone"]);
    assert_eq!(w.sync("alice"), [said("alice", "sent from the phone")]);
    assert_eq!(w.sync("bob"), [said("alice", "sent from the phone")]);
    assert_eq!(w.sync("carol"), [said("alice", "sent from the phone")]);

    // Conversations created after the link include both devices, whoever creates them.
    let later = last_line(&w.ok(
        "bob",
        &["group", "create", "Later", "--member", "alice@example.org"],
    ));
    w.ok("bob", &["send", &later, "new group"]);
    assert_eq!(w.sync("phone"), [said("bob", "new group")]);
    assert_eq!(w.sync("alice"), [said("bob", "new group")]);
    w.ok("phone", &["dm", "carol@example.org", "phone writes carol"]);
    assert_eq!(w.sync("carol"), [said("alice", "phone writes carol")]);
    assert_eq!(w.sync("alice"), [said("alice", "phone writes carol")]);

    let devices: Vec<Value> = w
        .ok("phone", &["devices", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert_eq!(
        devices.iter().filter(|d| d["current"] == true).count(),
        1,
        "{devices:?}"
    );
    assert!(devices.iter().all(|d| d["certified"] == true));

    // The phone is lost: the laptop revokes it. It is removed from all four conversations and
    // its token stops working; the conversations go on without it.
    let phone_id = devices
        .iter()
        .find(|d| d["current"] == true)
        .and_then(|d| d["id"].as_str())
        .expect("the phone's id")
        .to_owned();
    let revoked = w.ok("alice", &["devices", "revoke", &phone_id]);
    assert!(
        revoked.contains("removed from 4 conversations"),
        "{revoked}"
    );
    assert!(!w.run("phone", &["sync", "--json"]).status.success());
    w.ok("bob", &["dm", "alice@example.org", "after the revocation"]);
    assert_eq!(w.sync("alice"), [said("bob", "after the revocation")]);
    assert_eq!(w.ok("alice", &["devices", "--json"]).lines().count(), 1);
    assert!(!w
        .run("alice", &["devices", "revoke", &phone_id])
        .status
        .success());
}

#[test]
fn wrong_reused_and_expired_codes_fail_cleanly_on_both_sides() {
    let w = World::new();
    w.register("alice");

    // A typing error is caught before the server; a well-formed code nobody showed is unknown.
    for (code, expected) in [
        ("abcd-efgh", "not a link code"),
        (
            &LinkCode::generate().text() as &str,
            "unknown, already used or expired",
        ),
    ] {
        let out = join(&w, "stranger", code);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{code}: {stderr}");
        assert!(
            !w.home("stranger").join("account.db").exists()
                || w.run("stranger", &["whoami"]).status.code() != Some(0),
            "a failed join leaves no account"
        );
    }

    // A home that holds an account cannot join, and trying does not spend the code; nor can
    // the home of the linking device itself, which its `link` holds meanwhile.
    w.register("bob");
    let (link, code) = start_link(&w, "alice", &[]);
    for (home, expected) in [
        ("bob", "already holds an account"),
        ("alice", "another missive process is using this account"),
    ] {
        let taken = join(&w, home, &code);
        assert!(!taken.status.success());
        let stderr = String::from_utf8_lossy(&taken.stderr);
        assert!(stderr.contains(expected), "{home}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr}");
    }
    // A used code does not work twice.
    assert!(join(&w, "phone", &code).status.success());
    assert!(finish(link).0);
    let again = join(&w, "thief", &code);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("unknown, already used or expired"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr}");

    // A code nobody uses expires: the linking side says so and fails; the code is dead.
    let (link, code) = start_link(&w, "alice", &["--timeout", "1"]);
    let (linked, stderr) = finish(link);
    assert!(!linked, "an unused link fails");
    assert!(stderr.contains("expired"), "{stderr}");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let late = join(&w, "late", &code);
    assert!(!late.status.success());
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert!(
        stderr.contains("unknown, already used or expired"),
        "{stderr}"
    );

    // Still exactly the two devices that were linked on purpose.
    let devices = w.ok("alice", &["devices", "--json"]);
    assert_eq!(devices.lines().count(), 2, "{devices}");
}
