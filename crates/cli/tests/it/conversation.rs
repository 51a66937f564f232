//! Conversations as people expect them, through the `missive` binary between three users:
//! replies, edits, deletion for everyone, reactions, delivery and read receipts, and
//! disappearing messages; after a server restart and on a device linked afterwards; and no
//! trace of a deleted or expired text left in any store file.

use serde_json::Value;

use super::linking::{join, start_link};
use super::{last_line, World};

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn history(w: &World, who: &str, conversation: &str) -> Vec<Value> {
    lines(&w.ok(who, &["history", conversation, "--json"]))
}

fn message<'a>(history: &'a [Value], id: &str) -> &'a Value {
    history
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} in {history:?}"))
}

/// Whether `text` appears anywhere in the files of an account home (the store, its WAL).
fn trace_of(w: &World, who: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(w.home(who)).expect("home") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            if bytes.windows(text.len()).any(|win| win == text.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn fails_with(w: &World, who: &str, args: &[&str], expected: &str) {
    let out = w.run(who, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

#[test]
fn replies_edits_deletions_reactions_and_receipts_between_three() {
    let mut w = World::new();
    for name in ["alice", "bob", "carol"] {
        w.register(name);
    }
    let group = w.group(
        "alice",
        "Cabinet",
        &["bob@example.org", "carol@example.org"],
    );
    let draft = last_line(&w.ok("alice", &["send", &group, "first draft"]));
    let secret = last_line(&w.ok("alice", &["send", &group, "the code is zanzibarquartz"]));
    w.sync("bob");
    w.sync("carol");

    // A reply names what it answers.
    let reply = last_line(&w.ok("bob", &["reply", &group, &draft[..8], "agreed"]));
    // An edit replaces the text everywhere; only the sender may.
    fails_with(
        &w,
        "bob",
        &["edit", &group, &draft, "bob's version"],
        "only its sender can edit it",
    );
    assert_eq!(
        last_line(&w.ok("alice", &["edit", &group, &draft, "final text"])),
        draft
    );
    let seen = lines(&w.ok("bob", &["sync", "--json"]));
    let edited = seen
        .iter()
        .find(|m| m["id"] == draft)
        .expect("the edit is shown");
    assert_eq!(edited["text"], "final text");
    assert_eq!(edited["edited"], true);
    assert_eq!(edited["changed"], true);
    let carol_sees = history(&w, "carol", &group);
    assert_eq!(
        message(&carol_sees, &draft)["text"],
        "first draft",
        "not synced yet"
    );
    let carol_sees = {
        w.ok("carol", &["sync"]);
        history(&w, "carol", &group)
    };
    assert_eq!(message(&carol_sees, &draft)["text"], "final text");
    assert_eq!(message(&carol_sees, &reply)["reply_to"], draft.as_str());

    // Reactions: one per user and emoji, removable, seen by all.
    w.ok("carol", &["react", &group, &draft, "👍"]);
    w.ok("bob", &["sync"]);
    w.ok("bob", &["react", &group, &draft, "👍"]);
    w.ok("bob", &["react", &group, &draft, "🎉"]);
    assert_eq!(
        last_line(&w.ok("bob", &["react", &group, &draft, "🎉", "--remove"])),
        "👍 2"
    );
    fails_with(
        &w,
        "bob",
        &["react", &group, &draft, "ok"],
        "is not a reaction",
    );

    // Receipts: bob and carol received (their syncs said so); bob reads.
    assert_eq!(
        w.ok("bob", &["read", &group]).trim(),
        format!("read up to {}", message(&carol_sees, &reply)["seq"])
    );
    w.ok("alice", &["sync"]);
    let alice_sees = history(&w, "alice", &group);
    let d = message(&alice_sees, &draft);
    assert_eq!(
        d["reactions"],
        serde_json::json!({"👍": ["carol@example.org", "bob@example.org"]})
    );
    assert_eq!(
        d["delivered_to"],
        serde_json::json!(["bob@example.org", "carol@example.org"])
    );
    assert_eq!(d["read_by"], serde_json::json!(["bob@example.org"]));
    let shown = w.ok("alice", &["history", &group]);
    assert!(
        shown.contains("final text (edited)  👍 2  [delivered to 2 of 2, read by 1 of 2]"),
        "{shown}"
    );

    // Read receipts off: carol's reading tells nobody.
    assert_eq!(
        w.ok("carol", &["read-receipts", "off"]).trim(),
        "read receipts: off"
    );
    w.ok("carol", &["read", &group]);
    w.ok("alice", &["sync"]);
    assert_eq!(
        message(&history(&w, "alice", &group), &draft)["read_by"],
        serde_json::json!(["bob@example.org"])
    );

    // Deletion for everyone: no trace of the text in any store file, the sender's included.
    fails_with(
        &w,
        "bob",
        &["delete", &group, &secret],
        "only its sender can delete it",
    );
    w.ok("alice", &["delete", &group, &secret]);
    w.restart_server();
    w.ok("bob", &["sync"]);
    w.ok("carol", &["sync"]);
    for who in ["alice", "bob", "carol"] {
        let gone = history(&w, who, &group);
        let m = message(&gone, &secret);
        assert_eq!(m["deleted"], true, "{who}");
        assert!(m.get("text").is_none(), "{who}");
        assert!(
            trace_of(&w, who, "zanzibarquartz").is_empty(),
            "{who}: {:?}",
            trace_of(&w, who, "zanzibarquartz")
        );
    }
    assert!(w
        .ok("bob", &["history", &group])
        .contains("alice@example.org: (deleted)"));
    fails_with(&w, "alice", &["edit", &group, &secret, "x"], "was deleted");

    // A device linked afterwards receives the conversation as it is now.
    let (mut link, code) = start_link(&w, "bob", &["--timeout", "60"]);
    let joined = join(&w, "bob-phone", &code);
    assert!(
        joined.status.success(),
        "{}",
        String::from_utf8_lossy(&joined.stderr)
    );
    assert!(link.wait().expect("link ends").success());
    let phone = history(&w, "bob-phone", &group);
    assert_eq!(message(&phone, &draft)["text"], "final text");
    assert_eq!(message(&phone, &draft)["edited"], true);
    assert_eq!(
        message(&phone, &draft)["reactions"]["👍"],
        serde_json::json!(["carol@example.org", "bob@example.org"])
    );
    assert_eq!(message(&phone, &secret)["deleted"], true);
    assert!(trace_of(&w, "bob-phone", "zanzibarquartz").is_empty());
    // And takes part: its reaction is bob's (already there: nothing changes).
    assert_eq!(
        last_line(&w.ok("bob-phone", &["react", &group, &draft, "👍"])),
        "👍 2"
    );
}

#[test]
fn disappearing_messages_leave_no_trace_anywhere() {
    let w = World::new();
    for name in ["alice", "bob"] {
        w.register(name);
    }
    let group = w.group("alice", "Crisis", &["bob@example.org"]);
    let kept = last_line(&w.ok("alice", &["send", &group, "before the timer"]));
    fails_with(
        &w,
        "alice",
        &["conversation", &group, "--disappear", "5 minutes"],
        "is not a timer",
    );
    let set = w.ok("alice", &["conversation", &group, "--disappear", "3s"]);
    assert!(set.contains("disappearing: 3s"), "{set}");

    // Bob sees the change as an event, then writes under the timer.
    let seen = lines(&w.ok("bob", &["sync", "--json"]));
    let event = seen
        .iter()
        .find(|e| e["event"] == "settings")
        .expect("the change is shown");
    assert_eq!(event["disappear"], "3s");
    assert_eq!(event["sender"], "alice@example.org");
    assert!(w
        .ok("bob", &["history", &group])
        .contains("alice@example.org set disappearing messages to 3s"));
    let shown = w.ok("bob", &["conversation", &group, "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&shown).expect("json")["disappear"],
        "3s"
    );
    let fleeting = last_line(&w.ok(
        "bob",
        &["send", &group, "burn after reading vanishingpangolin"],
    ));
    let got = lines(&w.ok("alice", &["sync", "--json"]));
    let m = got.iter().find(|m| m["id"] == fleeting).expect("received");
    assert_eq!(m["text"], "burn after reading vanishingpangolin");
    assert!(m["expires_at"].as_u64().is_some());

    std::thread::sleep(std::time::Duration::from_millis(3_500));
    for who in ["alice", "bob"] {
        let h = history(&w, who, &group);
        assert!(h.iter().all(|m| m["id"] != fleeting), "{who}: {h:?}");
        assert!(
            h.iter().any(|m| m["id"] == kept),
            "{who}: earlier messages stay"
        );
        assert!(
            trace_of(&w, who, "vanishingpangolin").is_empty(),
            "{who}: {:?}",
            trace_of(&w, who, "vanishingpangolin")
        );
    }

    // Off again: later messages stay.
    w.ok("bob", &["conversation", &group, "--disappear", "off"]);
    w.ok("alice", &["sync"]);
    let stays = last_line(&w.ok("alice", &["send", &group, "for the record"]));
    w.ok("bob", &["sync"]);
    let h = history(&w, "bob", &group);
    assert!(message(&h, &stays).get("expires_at").is_none());
    assert!(w
        .ok("alice", &["history", &group])
        .contains("bob@example.org turned disappearing messages off"));
}

#[test]
fn search_finds_words_in_texts_and_file_names_with_filters() {
    let w = World::new();
    for name in ["alice", "bob", "carol"] {
        w.register(name);
    }
    let group = w.group(
        "alice",
        "Cabinet",
        &["bob@example.org", "carol@example.org"],
    );
    w.ok(
        "alice",
        &["send", &group, "La Réunion budgétaire est lundi"],
    );
    w.ok("bob", &["sync"]);
    w.ok("bob", &["send", &group, "réunion déplacée à mardi"]);
    w.ok(
        "carol",
        &["dm", "alice@example.org", "Pas de reunion pour moi"],
    );
    let minutes = w.home("alice").with_file_name("Compte-rendu réunion.txt");
    std::fs::write(&minutes, b"minutes").expect("file");
    w.ok(
        "bob",
        &["send-file", &group, minutes.to_str().expect("path")],
    );
    w.ok("alice", &["sync"]);

    let found = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["search"];
        all.extend_from_slice(args);
        all.push("--json");
        lines(&w.ok("alice", &all))
            .iter()
            .map(|m| {
                m["file"]["name"]
                    .as_str()
                    .or(m["text"].as_str().filter(|t| !t.is_empty()))
                    .expect("text or file")
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(
        found(&["REUNION"]),
        [
            "Compte-rendu réunion.txt",
            "Pas de reunion pour moi",
            "réunion déplacée à mardi",
            "La Réunion budgétaire est lundi"
        ],
        "accents and case ignored, file names too, newest first"
    );
    assert_eq!(found(&["réu", "budg"]), ["La Réunion budgétaire est lundi"]);
    assert_eq!(
        found(&["reunion", "--from", "BOB@example.org"]),
        ["Compte-rendu réunion.txt", "réunion déplacée à mardi"]
    );
    assert_eq!(
        found(&["reunion", "--conversation", &group[..8], "--limit", "1"]),
        ["Compte-rendu réunion.txt"]
    );
    assert!(found(&["reunion", "--before", "2000-01-01"]).is_empty());
    assert_eq!(found(&["reunion", "--after", "2000-01-01"]).len(), 4);
    assert!(
        found(&["union"]).is_empty(),
        "the start of a word, not its middle"
    );
    let human = w.ok("alice", &["search", "mardi"]);
    assert!(
        human.contains("bob@example.org: réunion déplacée à mardi"),
        "{human}"
    );

    fails_with(&w, "alice", &["search", " ,; "], "holds no word");
    fails_with(
        &w,
        "alice",
        &["search", "x", "--after", "04/12/2026"],
        "is not a day",
    );
    fails_with(
        &w,
        "alice",
        &["search", "x", "--from", "bob"],
        "is not an address",
    );
}

fn label(name: &str, level: u32) -> missive_proto::api::Label {
    missive_proto::api::Label {
        name: name.into(),
        colour: "#b3261e".into(),
        level,
        max_disappear: None,
        no_forward: false,
        downloads: missive_proto::api::Downloads::Allowed,
        domains: Vec::new(),
    }
}

#[test]
fn labels_carry_rules_that_every_client_enforces() {
    let w = World::with_config(|c| {
        c.allowed_domains = vec!["example.org".into(), "partner.org".into()];
        c.max_retention_days = Some(365);
        c.labels = vec![
            missive_proto::api::Label {
                max_disappear: Some(604_800),
                no_forward: true,
                downloads: missive_proto::api::Downloads::InApp,
                domains: vec!["example.org".into()],
                ..label("Diffusion restreinte", 2)
            },
            label("Interne", 1),
        ];
    });
    for name in ["alice", "bob"] {
        w.register(name);
    }
    w.register_as("dave", "dave@partner.org");
    let listed = w.ok("alice", &["labels"]);
    assert!(
        listed.contains(
            "Diffusion restreinte (level 2; messages disappear within 1w; no forwarding; files \
             in the app only; members from example.org only)"
        ),
        "{listed}"
    );
    let secret = w.group("alice", "Crise", &["bob@example.org"]);
    let open = w.group("alice", "Ouvert", &["bob@example.org", "dave@partner.org"]);
    let internal = w.group("alice", "Equipe", &["bob@example.org"]);

    fails_with(
        &w,
        "alice",
        &["conversation", &secret, "--label", "Secret défense"],
        "your organisation defines Diffusion restreinte, Interne",
    );
    fails_with(
        &w,
        "alice",
        &["conversation", &open, "--label", "diffusion restreinte"],
        "admits members from example.org only, and dave@partner.org is a member",
    );
    // Set: the label's rules come with it, and its timer is put in force.
    let set = w.ok(
        "alice",
        &["conversation", &secret, "--label", "diffusion restreinte"],
    );
    assert!(
        set.contains("label:        Diffusion restreinte (level 2"),
        "{set}"
    );
    assert!(set.contains("disappearing: 1w"), "{set}");
    w.ok("alice", &["conversation", &internal, "--label", "Interne"]);

    // Bob's client learned the label and its rules from the conversation itself.
    let seen = lines(&w.ok("bob", &["sync", "--json"]));
    assert!(
        seen.iter()
            .any(|e| e["event"] == "settings" && e["label"] == "Diffusion restreinte"),
        "{seen:?}"
    );
    fails_with(
        &w,
        "bob",
        &["conversation", &secret, "--disappear", "4w"],
        "messages must disappear within 1w at most",
    );
    fails_with(
        &w,
        "bob",
        &["conversation", &secret, "--disappear", "off"],
        "messages must disappear within 1w at most",
    );
    w.ok("bob", &["conversation", &secret, "--disappear", "1d"]);
    fails_with(
        &w,
        "bob",
        &["group", "add", &secret, "dave@partner.org"],
        "admits members from example.org only: dave@partner.org cannot be added",
    );
    let said = last_line(&w.ok("bob", &["send", &secret, "the plan stays here"]));
    let shown = w.ok("bob", &["history", &secret, "--json"]);
    let m = message(&lines(&shown), &said).clone();
    assert_eq!(m["label"], "Diffusion restreinte");
    assert!(
        m["expires_at"].as_u64().is_some(),
        "the label's timer applies"
    );
    assert!(w
        .ok("bob", &["history", &secret])
        .contains(" · Diffusion restreinte] bob@example.org: the plan stays here"));

    // Nothing leaves a conversation whose label forbids it.
    fails_with(
        &w,
        "bob",
        &["forward", &said, &internal],
        "nothing of it may be forwarded",
    );
    // A message never moves to a less restrictive conversation; to an equal or more
    // restrictive one it may, marked forwarded.
    let note = last_line(&w.ok("alice", &["send", &internal, "internal note"]));
    w.ok("bob", &["sync"]);
    let plain = w.group("bob", "Plain", &["alice@example.org"]);
    fails_with(
        &w,
        "bob",
        &["forward", &note, &plain],
        "a message never moves to a less restrictive conversation",
    );
    let forwarded = last_line(&w.ok("bob", &["forward", &note[..8], &secret]));
    w.ok("alice", &["sync"]);
    let got = lines(&w.ok("alice", &["history", &secret, "--json"]));
    let f = message(&got, &forwarded);
    assert_eq!(f["text"], "internal note");
    assert_eq!(f["forwarded"], true);

    // Files of a conversation labelled "in the app only" are not written to disk here.
    let file = w.home("bob").with_file_name("plan.txt");
    std::fs::write(&file, b"plan").expect("file");
    let shared = last_line(&w.ok("bob", &["send-file", &secret, file.to_str().expect("path")]));
    w.ok("alice", &["sync"]);
    let out = w.home("alice").with_file_name("downloads");
    fails_with(
        &w,
        "alice",
        &["download", &shared, "--out", out.to_str().expect("path")],
        "can be viewed in the app only",
    );

    // The label comes off as it went on, by a member, for everyone.
    w.ok("bob", &["conversation", &secret, "--label", "none"]);
    w.ok("alice", &["sync"]);
    assert!(w
        .ok("alice", &["history", &secret])
        .contains("bob@example.org took the label off"));
    // The organisation's retention still bounds every message: a year.
    let later = last_line(&w.ok("alice", &["send", &plain, "kept a year at most"]));
    let h = lines(&w.ok("alice", &["history", &plain, "--json"]));
    let at = message(&h, &later)["expires_at"]
        .as_u64()
        .expect("a deadline");
    let year = 365 * 86_400_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        at > now + year - 60_000 && at <= now + year,
        "{at} vs {now}"
    );
}
