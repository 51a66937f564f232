//! The behaviour every [`AccountStore`] must have, as a test suite over the trait alone. A store
//! runs it with [`account_store_conformance!`](crate::account_store_conformance), given a
//! function that returns a fresh, empty store (and whatever must live as long as it).

use missive_proto::app::FileRef;
use missive_proto::B64;

use crate::store::*;

fn conversation(id: &str, created_at: u64, dm_peer: Option<&str>) -> ConversationRecord {
    ConversationRecord::new(id.into(), None, dm_peer.map(Into::into), created_at)
}

fn message(id: &str, conversation: &str, device: &str, seq: u64) -> MessageRecord {
    MessageRecord {
        id: id.into(),
        conversation: conversation.into(),
        sender: "alice@example.org".into(),
        sender_device: device.into(),
        text: format!("text of {id}"),
        sent_at: seq,
        server_time: seq,
        seq,
        ..MessageRecord::default()
    }
}

fn apply(store: &mut dyn AccountStore, batch: Batch) {
    store.apply(batch, Durability::Durable).expect("apply");
}

fn ids(records: &[MessageRecord]) -> Vec<&str> {
    records.iter().map(|m| m.id.as_str()).collect()
}

/// Settings and MLS entries: upserts, deletions, and the frozen (content-addressed) marks.
pub fn settings_and_mls(store: &mut dyn AccountStore) {
    assert_eq!(store.setting("cursor").expect("read"), None);
    apply(store, vec![Op::Setting("cursor".into(), vec![1])]);
    apply(store, vec![Op::Setting("cursor".into(), vec![2])]);
    assert_eq!(store.setting("cursor").expect("read"), Some(vec![2]));

    apply(
        store,
        vec![
            Op::Mls(b"a".to_vec(), Some(b"1".to_vec())),
            Op::Mls(b"b".to_vec(), Some(b"2".to_vec())),
            Op::Mls(b"c".to_vec(), Some(b"3".to_vec())),
            Op::Mls(b"a".to_vec(), Some(b"1'".to_vec())),
            Op::FreezeMls(vec![b"b".to_vec(), b"c".to_vec(), b"absent".to_vec()]),
        ],
    );
    apply(
        store,
        vec![
            Op::Mls(b"c".to_vec(), None),
            // A frozen entry written again stays frozen.
            Op::Mls(b"b".to_vec(), Some(b"2".to_vec())),
        ],
    );
    let (entries, frozen) = store.mls_entries().expect("entries");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[b"a".as_slice()], b"1'");
    assert_eq!(entries[b"b".as_slice()], b"2");
    assert_eq!(
        frozen.into_iter().collect::<Vec<_>>(),
        [b"b".to_vec()],
        "only entries that exist are frozen, and a deleted one is forgotten"
    );
}

/// Conversations: listed by creation time, replaced whole, and the one-to-one lookup.
pub fn conversations(store: &mut dyn AccountStore) {
    apply(
        store,
        vec![
            Op::Conversation(conversation("c2", 20, Some("bob@example.org"))),
            Op::Conversation(conversation("c1", 10, None)),
            Op::Conversation(conversation("c3", 30, Some("bob@example.org"))),
        ],
    );
    let listed: Vec<String> = store
        .conversations()
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, ["c1", "c2", "c3"]);
    assert_eq!(
        store.dm_with("bob@example.org").expect("dm").map(|c| c.id),
        Some("c2".into()),
        "the oldest one-to-one with that user"
    );
    // Removed from the first: the next one is the conversation with bob.
    let mut left = conversation("c2", 20, Some("bob@example.org"));
    left.left = true;
    left.name = Some("old".into());
    left.disappear = Some(3600);
    left.label = Some(missive_proto::api::Label {
        name: "Diffusion restreinte".into(),
        colour: "#b3261e".into(),
        level: 2,
        max_disappear: Some(604_800),
        no_forward: true,
        downloads: missive_proto::api::Downloads::InApp,
        domains: vec!["interieur.gouv.fr".into()],
    });
    left.receipts.insert(
        "carol@example.org".into(),
        Receipts {
            delivered: 7,
            read: 5,
        },
    );
    apply(store, vec![Op::Conversation(left.clone())]);
    assert_eq!(store.conversation("c2").expect("read"), Some(left));
    assert_eq!(
        store.dm_with("bob@example.org").expect("dm").map(|c| c.id),
        Some("c3".into())
    );
    assert_eq!(store.dm_with("carol@example.org").expect("dm"), None);
    assert_eq!(store.conversation("c9").expect("read"), None);
}

/// Received messages: stored once, listed in arrival order, shown once, found by id, by a
/// prefix of their id or their file's id, and by their place in the conversation.
pub fn messages(store: &mut dyn AccountStore) {
    let mut with_file = message("f00d01", "c1", "d1", 3);
    with_file.text = String::new();
    with_file.file = Some(Box::new(FileRef {
        blob: "b10b5e".into(),
        secret: B64(vec![7; 32]),
        blake3: "ab".into(),
        size: 5,
        name: "minutes.pdf".into(),
        media_type: "application/pdf".into(),
    }));
    let mut reply = message("aaaa02", "c1", "d2", 2);
    reply.reply_to = Some("aaaa01".into());
    let mut unsupported = message("0dd001", "c2", "d2", 1);
    unsupported.text = String::new();
    unsupported.unsupported = Some(r#"{"type":"poll"}"#.into());
    apply(
        store,
        vec![
            Op::Message(message("aaaa01", "c1", "d1", 1)),
            Op::Message(reply.clone()),
            Op::Message(with_file.clone()),
            Op::Message(unsupported.clone()),
        ],
    );
    // The same id again (a message delivered twice) changes nothing.
    let mut again = message("aaaa01", "c1", "d1", 9);
    again.text = "replayed".into();
    apply(store, vec![Op::Message(again)]);

    let c1 = store.messages("c1").expect("list");
    assert_eq!(ids(&c1), ["aaaa01", "aaaa02", "f00d01"]);
    assert_eq!(c1[0].text, "text of aaaa01");
    assert_eq!(c1[1], reply, "a reply comes back with what it answers");
    assert_eq!(c1[2], with_file, "a file message comes back whole");
    assert_eq!(store.messages("c2").expect("list"), [unsupported]);

    assert_eq!(
        ids(&store.unshown_messages().expect("unshown")),
        ["aaaa01", "aaaa02", "f00d01", "0dd001"]
    );
    apply(
        store,
        vec![Op::MarkShown(vec!["aaaa01".into(), "0dd001".into()])],
    );
    assert_eq!(
        ids(&store.unshown_messages().expect("unshown")),
        ["aaaa02", "f00d01"]
    );

    assert!(store.has_message("aaaa02").expect("has"));
    assert!(!store.has_message("aaaa0").expect("has"), "ids are whole");
    assert!(store.has_message_at("c1", 2).expect("at"));
    assert!(!store.has_message_at("c2", 2).expect("at"));
    assert_eq!(
        store.last_message_from("c1", "d1").expect("last"),
        Some("f00d01".into())
    );
    assert_eq!(store.last_message_from("c2", "d1").expect("last"), None);

    assert_eq!(
        ids(&store.messages_matching("aaaa").expect("match")),
        ["aaaa01", "aaaa02"]
    );
    assert_eq!(
        ids(&store.messages_matching("b10b").expect("match")),
        ["f00d01"]
    );
    assert_eq!(
        ids(&store.messages_matching("f00d01").expect("match")),
        ["f00d01"]
    );
    assert!(store.messages_matching("ffff").expect("match").is_empty());
    apply(
        store,
        (3..8)
            .map(|n| Op::Message(message(&format!("aaaa0{n}"), "c1", "d1", n + 10)))
            .collect(),
    );
    assert_eq!(
        ids(&store.messages_matching("aaaa").expect("match")),
        ["aaaa01", "aaaa02", "aaaa03"],
        "three are enough to tell an ambiguous prefix"
    );
}

/// Our own messages: stored shown, waiting to be named by a later one of ours (threat 9's
/// chain), named by it.
pub fn sent_messages(store: &mut dyn AccountStore) {
    apply(
        store,
        vec![Op::Sent {
            record: message("5e01", "c1", "me", 1),
            named: Vec::new(),
        }],
    );
    apply(
        store,
        vec![Op::Sent {
            record: message("5e02", "c1", "me", 2),
            named: Vec::new(),
        }],
    );
    assert_eq!(
        store.unnamed_messages("c1", "me").expect("unnamed"),
        ["5e01", "5e02"]
    );
    apply(
        store,
        vec![Op::Sent {
            record: message("5e03", "c1", "me", 3),
            named: vec!["5e01".into(), "5e02".into()],
        }],
    );
    assert_eq!(
        store.unnamed_messages("c1", "me").expect("unnamed"),
        ["5e03"]
    );
    assert!(store
        .unnamed_messages("c2", "me")
        .expect("unnamed")
        .is_empty());
    assert!(
        store.unshown_messages().expect("unshown").is_empty(),
        "our own messages are never shown as new"
    );
    // One of ours that came back as a received message first (history handed over by a
    // linking device) is marked ours when accepted, keeping what was stored.
    apply(store, vec![Op::Message(message("5e04", "c1", "me", 4))]);
    let mut later = message("5e04", "c1", "me", 4);
    later.text = "other".into();
    apply(
        store,
        vec![Op::Sent {
            record: later,
            named: vec!["5e03".into()],
        }],
    );
    assert_eq!(
        store.unnamed_messages("c1", "me").expect("unnamed"),
        ["5e04"]
    );
    assert!(store.unshown_messages().expect("unshown").is_empty());
    assert_eq!(store.messages("c1").expect("list")[3].text, "text of 5e04");
}

/// Contacts (replaced whole, listed by address) and alerts (kept in order).
pub fn contacts_and_alerts(store: &mut dyn AccountStore) {
    let contact = |address: &str, key: u8| ContactRecord {
        address: address.into(),
        identity_key: vec![key; 32],
        verified: false,
        pending_key: None,
        device_list: None,
    };
    apply(
        store,
        vec![
            Op::Contact(contact("carol@example.org", 3)),
            Op::Contact(contact("bob@example.org", 2)),
        ],
    );
    let mut changed = contact("bob@example.org", 2);
    changed.verified = true;
    changed.pending_key = Some(vec![9; 32]);
    changed.device_list = Some(vec![7; 100]);
    apply(store, vec![Op::Contact(changed.clone())]);
    assert_eq!(
        store.contact("bob@example.org").expect("read"),
        Some(changed)
    );
    assert_eq!(store.contact("dave@example.org").expect("read"), None);
    let listed: Vec<String> = store
        .contacts()
        .expect("list")
        .into_iter()
        .map(|c| c.address)
        .collect();
    assert_eq!(listed, ["bob@example.org", "carol@example.org"]);

    let alert = |code: &str| AlertRecord {
        at: 7,
        code: code.into(),
        detail: format!("detail of {code}"),
    };
    apply(store, vec![Op::Alert(alert("fork_detected"))]);
    apply(store, vec![Op::Alert(alert("identity_changed"))]);
    assert_eq!(
        store.alerts().expect("alerts"),
        [alert("fork_detected"), alert("identity_changed")]
    );
}

/// Messages changed after they were stored (edited, deleted, reacted to) keep their place and
/// marks; erased ones are gone; those whose timer ran out are found.
pub fn revised_and_erased(store: &mut dyn AccountStore) {
    let mut timed = message("cccc02", "c1", "d1", 2);
    timed.expires_at = Some(5_000);
    apply(
        store,
        vec![
            Op::Message(message("cccc01", "c1", "d1", 1)),
            Op::Message(timed.clone()),
            Op::Message(message("cccc03", "c1", "d2", 3)),
        ],
    );
    apply(store, vec![Op::MarkShown(vec!["cccc01".into()])]);
    let mut edited = message("cccc01", "c1", "d1", 1);
    edited.text = "second thoughts".into();
    edited.edits.push(Edit {
        text: "text of cccc01".into(),
        until: 40,
    });
    edited
        .reactions
        .insert("👍".into(), vec!["bob@example.org".into()]);
    edited.notice = None;
    edited.forwarded = true;
    let mut gone = message("cccc03", "c1", "d2", 3);
    gone.text = String::new();
    gone.deleted = true;
    apply(
        store,
        vec![
            Op::Revise(edited.clone()),
            Op::Revise(gone.clone()),
            // Not stored: nothing happens.
            Op::Revise(message("dddd01", "c1", "d1", 4)),
        ],
    );
    assert_eq!(store.message("cccc01").expect("read"), Some(edited.clone()));
    assert_eq!(store.message("dddd01").expect("read"), None);
    assert_eq!(
        ids(&store.unshown_messages().expect("unshown")),
        ["cccc02", "cccc03"],
        "a revision keeps the marks"
    );
    assert_eq!(
        store.expired_messages(4_999).expect("expired"),
        Vec::<String>::new()
    );
    assert_eq!(store.expired_messages(5_000).expect("expired"), ["cccc02"]);

    let mut notice = message("cccc04", "c1", "d1", 4);
    notice.text = String::new();
    notice.notice = Some(Notice::Disappear { seconds: Some(300) });
    let mut label = message("cccc05", "c1", "d1", 5);
    label.text = String::new();
    label.notice = Some(Notice::Label {
        name: Some("Diffusion restreinte".into()),
    });
    apply(
        store,
        vec![Op::Message(notice.clone()), Op::Message(label.clone())],
    );
    apply(
        store,
        vec![Op::Erase(vec!["cccc02".into(), "absent".into()])],
    );
    assert_eq!(
        store.messages("c1").expect("list"),
        [edited, gone, notice, label],
        "in their order, with what changed"
    );
    assert!(!store.has_message("cccc02").expect("has"));
    apply(
        store,
        vec![Op::Applied {
            id: "eeee01".into(),
            conversation: "c1".into(),
            seq: 9,
        }],
    );
    assert!(
        store.has_message("eeee01").expect("has"),
        "applied counts as held"
    );
    assert!(store.has_message_at("c1", 9).expect("at"));
    assert!(!store.has_message_at("c2", 9).expect("at"));
    assert_eq!(
        store.messages("c1").expect("list").len(),
        4,
        "and is no message"
    );
    assert!(store
        .expired_messages(u64::MAX)
        .expect("expired")
        .is_empty());
    assert!(store.messages_matching("cccc02").expect("match").is_empty());
}

/// Search: every word begins a word of the text or file name, case and accents ignored;
/// filters; newest first; deleted and erased messages are not found, edited ones by their new
/// text only.
pub fn search(store: &mut dyn AccountStore) {
    let text = |id: &str, conversation: &str, sender: &str, at: u64, text: &str| MessageRecord {
        id: id.into(),
        conversation: conversation.into(),
        sender: sender.into(),
        sender_device: "d".into(),
        text: text.into(),
        sent_at: at,
        server_time: at,
        seq: at,
        ..MessageRecord::default()
    };
    let mut file = text("f1", "c2", "bob@x", 5, "");
    file.file = Some(Box::new(FileRef {
        blob: "b1".into(),
        secret: B64(vec![1; 32]),
        blake3: "ab".into(),
        size: 1,
        name: "Compte-rendu réunion.pdf".into(),
        media_type: "application/pdf".into(),
    }));
    apply(
        store,
        vec![
            Op::Message(text(
                "m1",
                "c1",
                "alice@x",
                1,
                "La Réunion budgétaire est lundi",
            )),
            Op::Message(text("m2", "c1", "bob@x", 2, "réunion déplacée à mardi")),
            Op::Message(text("m3", "c2", "alice@x", 3, "Reunion du cabinet")),
            Op::Message(text("m4", "c2", "alice@x", 4, "rien à voir")),
            Op::Message(file),
        ],
    );
    let q = |typed: &str| crate::search::Query::new(typed).expect("words");
    assert_eq!(
        ids(&store.search(&q("reunion")).expect("search")),
        ["f1", "m3", "m2", "m1"],
        "accents and case ignored, file names too, newest first"
    );
    assert_eq!(ids(&store.search(&q("REU budg")).expect("search")), ["m1"]);
    assert!(
        store.search(&q("union")).expect("search").is_empty(),
        "word starts only"
    );
    let mut filtered = q("reunion");
    filtered.conversation = Some("c1".into());
    filtered.sender = Some("bob@x".into());
    assert_eq!(ids(&store.search(&filtered).expect("search")), ["m2"]);
    let mut dated = q("reunion");
    dated.after = Some(2);
    dated.before = Some(5);
    dated.limit = 1;
    assert_eq!(ids(&store.search(&dated).expect("search")), ["m3"]);

    let mut edited = text("m1", "c1", "alice@x", 1, "Le conseil est lundi");
    edited.edits.push(Edit {
        text: "La Réunion budgétaire est lundi".into(),
        until: 9,
    });
    let mut deleted = text("m2", "c1", "bob@x", 2, "");
    deleted.deleted = true;
    apply(
        store,
        vec![
            Op::Revise(edited),
            Op::Revise(deleted),
            Op::Erase(vec!["m3".into()]),
        ],
    );
    assert_eq!(ids(&store.search(&q("reunion")).expect("search")), ["f1"]);
    assert_eq!(ids(&store.search(&q("conseil")).expect("search")), ["m1"]);
    // The newest message erased, the next one stored is found all the same.
    apply(store, vec![Op::Erase(vec!["f1".into()])]);
    apply(
        store,
        vec![Op::Message(text(
            "m6",
            "c1",
            "bob@x",
            6,
            "nouvelle réunion",
        ))],
    );
    assert_eq!(ids(&store.search(&q("reunion")).expect("search")), ["m6"]);
}

/// Runs the conformance suite against the stores `$new()` returns (a fresh, empty store and
/// anything that must live as long as it), one test per part.
#[macro_export]
macro_rules! account_store_conformance {
    ($new:path) => {
        #[test]
        fn conformance_settings_and_mls() {
            let (_keep, mut store) = $new();
            $crate::conformance::settings_and_mls(&mut store);
        }
        #[test]
        fn conformance_conversations() {
            let (_keep, mut store) = $new();
            $crate::conformance::conversations(&mut store);
        }
        #[test]
        fn conformance_messages() {
            let (_keep, mut store) = $new();
            $crate::conformance::messages(&mut store);
        }
        #[test]
        fn conformance_sent_messages() {
            let (_keep, mut store) = $new();
            $crate::conformance::sent_messages(&mut store);
        }
        #[test]
        fn conformance_revised_and_erased() {
            let (_keep, mut store) = $new();
            $crate::conformance::revised_and_erased(&mut store);
        }
        #[test]
        fn conformance_search() {
            let (_keep, mut store) = $new();
            $crate::conformance::search(&mut store);
        }
        #[test]
        fn conformance_contacts_and_alerts() {
            let (_keep, mut store) = $new();
            $crate::conformance::contacts_and_alerts(&mut store);
        }
    };
}
