//! Versions side by side: a message of a kind added after this version (sent here by the
//! engine as a newer client would) is stored and shown as one this version cannot display,
//! never refused as an attack, never a gap, and it does not stop the messages after it. And
//! replies, the first field added to a known kind (readers before it show the text alone).

use missive_core::client::Client;
use missive_core::sqlite::SqliteAccountStore;
use missive_proto::app::AppBody;
use serde_json::{json, Value};

use super::{said, World};

#[test]
fn a_message_kind_added_later_is_shown_as_such_and_nothing_after_it_is_lost() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    w.ok("alice", &["dm", "bob@example.org", "before"]);
    assert_eq!(w.sync("bob"), [said("alice", "before")]);
    let conv: Value =
        serde_json::from_str(w.ok("alice", &["conversations", "--json"]).trim()).expect("json");
    let conv = conv["id"].as_str().expect("id").to_owned();

    // Alice's client of a later version sends a poll, a kind this version does not know.
    let poll = json!({"type": "poll", "question": "Lunch at noon?", "options": ["yes", "no"]});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = SqliteAccountStore::open(&w.home("alice").join("account.db")).expect("store");
        let mut alice = Client::open(Box::new(store)).expect("account");
        alice
            .send_body(
                &conv,
                AppBody::Unknown {
                    kind: "poll".into(),
                    body: poll.clone(),
                },
            )
            .await
            .expect("sent");
    });
    w.ok("alice", &["send", &conv, "after"]);

    // Bob's sync: no alert (exit 0), the poll named for what it is, the next message read.
    let out = w.run("bob", &["sync", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["unsupported"], "poll");
    assert_eq!(lines[0]["sender"], "alice@example.org");
    assert_eq!(lines[1]["text"], "after");
    assert!(lines[1].get("unsupported").is_none());
    assert!(w.ok("bob", &["alerts"]).is_empty(), "no security alert");

    let history = w.ok("bob", &["history", &conv]);
    assert!(
        history.contains(
            "alice@example.org: a message this version cannot display (update Missive) (poll)"
        ),
        "{history}"
    );

    // What was received is kept whole, for the version that can show it.
    let db = rusqlite::Connection::open(w.home("bob").join("account.db")).expect("db");
    let kept: String = db
        .query_row(
            "SELECT unsupported FROM messages WHERE unsupported IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("kept");
    assert_eq!(serde_json::from_str::<Value>(&kept).expect("json"), poll);
}

#[test]
fn a_reply_names_the_message_it_answers() {
    let w = World::new();
    w.register("alice");
    w.register("bob");
    let asked = super::last_line(&w.ok("alice", &["dm", "bob@example.org", "Lunch at noon?"]));
    assert_eq!(w.sync("bob"), [said("alice", "Lunch at noon?")]);
    let conv: Value =
        serde_json::from_str(w.ok("bob", &["conversations", "--json"]).trim()).expect("json");
    let conv = conv["id"].as_str().expect("id").to_owned();

    // The short id `history` shows is enough to name the message answered.
    let reply = super::last_line(&w.ok("bob", &["reply", &conv, &asked[..8], "Yes, noon."]));
    assert_eq!(reply.len(), 32, "the reply's id alone on the last line");
    let out = w.ok("alice", &["sync", "--json"]);
    let got: Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(got["text"], "Yes, noon.");
    assert_eq!(got["reply_to"], asked.as_str());
    assert_eq!(got["id"], reply.as_str());
    let history = w.ok("alice", &["history", &conv]);
    assert!(
        history.contains(&format!(
            "bob@example.org: (reply to {}) Yes, noon.",
            &asked[..8]
        )),
        "{history}"
    );
    // Bob's own history keeps it too, and a message of another conversation is refused.
    let mine = w.ok("bob", &["history", &conv, "--json"]);
    assert!(
        mine.contains(&format!("\"reply_to\":\"{asked}\"")),
        "{mine}"
    );
    let group = super::last_line(&w.ok(
        "bob",
        &["group", "create", "G", "--member", "alice@example.org"],
    ));
    let out = w.run("bob", &["reply", &group, &asked, "wrong place"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in another conversation"));
}
