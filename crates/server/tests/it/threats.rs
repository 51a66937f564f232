//! The hostile server of ../shared/threats.md, played by writing into the server's own store:
//! it injects devices and key packages (1, 2, 3), forges and replays commits (4), swaps an
//! identity key (5), replays, reflects and misroutes ciphertext (7, 8), withholds and reorders
//! messages (9) and forks a group (10). Each must end refused or reported, visibly. Case 6 (a
//! removed member keeps reading) is `groups::a_removed_member_cannot_read_anything_new`, and for
//! a revoked device `devices::a_revoked_device_is_cut_off_and_its_stolen_state_reads_nothing_new`;
//! case 11 (tampered files) is in the CLI's `files` tests.

use missive_core::account::Account;
use missive_core::store::Notice;
use missive_core::AlertCode;
use missive_proto::api::EventKind;
use missive_server::store::{MessageWrite, NewDevice};
use rusqlite::params;

use crate::support::*;

/// A device for `address` that the server made up: its own identity key, a self-consistent
/// certificate, key packages. Returns (device id, certificate, key packages, last resort).
fn forged_device(h: &Harness, address: &str) -> (String, Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
    let (mut rogue, request) = Account::create(
        h.home(&format!("rogue-{address}")),
        address,
        &h.server.url(),
        None,
    )
    .expect("rogue account");
    let kps = rogue.new_key_packages(2, true).expect("key packages");
    (
        rogue.device_id(),
        request.device_certificate.0,
        kps.key_packages.into_iter().map(|k| k.0).collect(),
        kps.last_resort.expect("last resort").0,
    )
}

/// The server adds a device of its own making, with key packages, to `address`'s account;
/// returns its id.
async fn inject_forged_device(h: &Harness, address: &str) -> String {
    let (device_id, cert, kps, last_resort) = forged_device(h, address);
    let store = h.server.store();
    store
        .add_device(
            address,
            NewDevice {
                device_id: device_id.clone(),
                certificate: cert,
                token_hash: [0; 32],
            },
            1,
        )
        .await
        .expect("server injects a device");
    let kps = kps
        .into_iter()
        .enumerate()
        .map(|(i, k)| (vec![i as u8], k))
        .collect();
    store
        .add_key_packages(&device_id, kps, Some(last_resort))
        .await
        .expect("and its key packages");
    // And lists it for claims, as if the user's signed list named it.
    h.db()
        .execute(
            "UPDATE devices SET listed = 1 WHERE device_id = ?1",
            [&device_id],
        )
        .expect("listed");
    device_id
}

#[tokio::test]
async fn threat_1_injected_device_is_refused() {
    let h = Harness::new();
    let _alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    inject_forged_device(&h, &address("alice")).await;

    assert_refused(
        bob.dm(&address("alice"), "secret").await,
        AlertCode::UncertifiedDevice,
    );
    assert!(
        bob.account
            .store()
            .conversations()
            .expect("list")
            .is_empty(),
        "no conversation was created"
    );
}

#[tokio::test]
async fn threat_2_forged_key_package_is_refused() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let carol = h.user("carol").await;
    let (_, _, forged, _) = forged_device(&h, &address("alice"));

    // The server hands out, as alice's device's package: one it generated itself, then one of
    // carol's real packages.
    let carol_kp: Vec<u8> = h
        .db()
        .query_row(
            "SELECT data FROM key_packages WHERE device_id = ?1 LIMIT 1",
            [carol.account.device_id()],
            |r| r.get(0),
        )
        .expect("carol's package");
    for (package, code) in [
        (forged[0].clone(), AlertCode::UncertifiedDevice),
        (carol_kp, AlertCode::ForgedKeyPackage),
    ] {
        let db = h.db();
        db.execute(
            "DELETE FROM key_packages WHERE device_id = ?1",
            [alice.account.device_id()],
        )
        .expect("delete");
        db.execute(
            "INSERT INTO key_packages (device_id, hash_ref, data) VALUES (?1, randomblob(16), ?2)",
            params![alice.account.device_id(), package],
        )
        .expect("inject");
        assert_refused(bob.dm(&address("alice"), "secret").await, code);
    }
    assert!(bob
        .account
        .store()
        .conversations()
        .expect("list")
        .is_empty());
}

/// Alice and Bob in a one-to-one conversation where Bob read Alice's "one".
async fn dm_read_once(
    h: &Harness,
) -> (
    missive_core::client::Client,
    missive_core::client::Client,
    String,
) {
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let dm = alice
        .dm(&address("bob"), "one")
        .await
        .expect("dm")
        .conversation;
    assert_eq!(texts(&bob.sync().await.expect("sync")), ["one"]);
    (alice, bob, dm)
}

/// Alice and Bob with a DM (one message, "one", read by Bob) and a second conversation; the
/// event of "one" as the server holds it.
async fn replay_setup(
    h: &Harness,
) -> (
    missive_core::client::Client,
    missive_core::client::Client,
    String,
    String,
    missive_proto::api::Event,
) {
    let (mut alice, mut bob, dm) = dm_read_once(h).await;
    let other = alice
        .create_conversation(Some("other".into()), None, &[address("bob")])
        .await
        .expect("group");
    assert_eq!(
        texts(&bob.sync().await.expect("sync")),
        Vec::<String>::new()
    );
    let original = h
        .raw_events(&bob, 0)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::Message)
        .find(|e| hex::encode(e.group_id.as_bytes()) == dm)
        .expect("the message event");
    (alice, bob, dm, other, original)
}

/// The server posts `original`'s ciphertext again, in `group`, as from `sender`.
async fn inject(
    h: &Harness,
    original: &missive_proto::api::Event,
    group: &str,
    sender: String,
    at: &missive_core::client::Client,
) {
    let epoch = at.account.epoch_authenticator(group).expect("epoch").0;
    h.server
        .store()
        .post_message(MessageWrite {
            group_id: hex::decode(group).expect("hex"),
            sender,
            epoch,
            payload: original.payload.0.clone(),
            now_ms: 1,
        })
        .await
        .expect("inject");
}

/// The texts a client holds for a conversation, in the order stored.
fn stored_texts(client: &missive_core::client::Client, conversation: &str) -> Vec<String> {
    client
        .account
        .store()
        .messages(conversation)
        .expect("history")
        .into_iter()
        .map(|m| m.text)
        .collect()
}

fn codes(outcomes: &[missive_core::account::Outcome]) -> Vec<AlertCode> {
    alerts(outcomes).iter().map(|a| a.code).collect()
}

#[tokio::test]
async fn threat_7_replayed_and_reflected_ciphertext_is_refused() {
    let h = Harness::new();
    let (mut alice, mut bob, dm, _, original) = replay_setup(&h).await;
    // The same ciphertext again, as a new event.
    inject(&h, &original, &dm, original.sender.clone(), &alice).await;
    let outcomes = bob.sync().await.expect("sync");
    assert!(texts(&outcomes).is_empty(), "the replay is not shown");
    assert_eq!(codes(&outcomes), [AlertCode::RejectedMessage]);
    // Alice's own message reflected back to her as if from bob: the alert says so.
    inject(&h, &original, &dm, bob.account.device_id(), &alice).await;
    let outcomes = alice.sync().await.expect("sync");
    assert!(texts(&outcomes).is_empty());
    let reflected = alerts(&outcomes);
    assert_eq!(reflected.len(), 1, "{outcomes:?}");
    assert!(
        reflected[0]
            .detail
            .contains("came back to you as if another member had sent it"),
        "{}",
        reflected[0].detail
    );

    let history = bob.account.store().messages(&dm).expect("history");
    assert_eq!(
        history.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["one", ""]
    );
    // Where the replay came, a notice says a message could not be read, and why: never a
    // silent gap.
    assert!(
        matches!(&history[1].notice, Some(Notice::Unreadable { code, .. }) if code == "rejected_message"),
        "{:?}",
        history[1]
    );
    assert_eq!(
        bob.account.store().alerts().expect("alerts").len(),
        1,
        "alerts are kept for the user"
    );
    // The conversation still works after the attacks.
    alice.send_text(&dm, "two").await.expect("send");
    assert_eq!(texts(&bob.sync().await.expect("sync")), ["two"]);
}

#[tokio::test]
async fn threat_8_a_ciphertext_delivered_in_another_group_is_refused() {
    let h = Harness::new();
    let (mut alice, mut bob, dm, other, original) = replay_setup(&h).await;
    inject(&h, &original, &other, original.sender.clone(), &alice).await;
    let outcomes = bob.sync().await.expect("sync");
    assert!(texts(&outcomes).is_empty());
    assert_eq!(codes(&outcomes), [AlertCode::RejectedMessage]);
    let shown = bob.account.store().messages(&other).expect("history");
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(shown[0].text.is_empty());
    assert!(
        matches!(&shown[0].notice, Some(Notice::Unreadable { code, .. }) if code == "rejected_message"),
        "{:?}",
        shown[0]
    );
    alice
        .send_text(&other, "in its own group")
        .await
        .expect("send");
    alice.send_text(&dm, "and here").await.expect("send");
    assert_eq!(
        texts(&bob.sync().await.expect("sync")),
        ["in its own group", "and here"]
    );
}

#[tokio::test]
async fn threat_4_forged_and_replayed_commits_are_refused() {
    let h = Harness::new();
    let (mut alice, mut bob, _carol, conv) = h.trio("board").await;
    let members = |c: &missive_core::client::Client| c.account.members(&conv).expect("members");
    let before = members(&bob);

    // A real commit of this group (alice rotating her keys), which bob processes.
    let cursor = bob.account.cursor();
    alice.update_keys(&conv).await.expect("commit");
    bob.sync().await.expect("sync");
    let commit = h
        .raw_events(&bob, cursor)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::Commit)
        .expect("the commit event");

    // The server replays it, then sends bytes that are no commit at all, both as commits of
    // this group from alice's device.
    let db = h.db();
    let group = hex::decode(&conv).expect("hex");
    for payload in [commit.payload.0.clone(), b"not a commit".to_vec()] {
        db.execute(
            "INSERT INTO events (group_id, seq, kind, sender, payload, created_at) \
             VALUES (?1, 99, 0, ?2, ?3, 0)",
            params![group, alice.account.device_id(), payload],
        )
        .expect("inject");
    }
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(
        alerts(&outcomes).iter().map(|a| a.code).collect::<Vec<_>>(),
        [AlertCode::RejectedCommit, AlertCode::RejectedMessage],
        "{outcomes:?}"
    );
    assert_eq!(
        members(&bob),
        before,
        "membership is what the verified MLS state says"
    );
    // The group still works.
    alice.send_text(&conv, "still fine").await.expect("send");
    assert_eq!(texts(&bob.sync().await.expect("sync")), ["still fine"]);
}

#[tokio::test]
async fn threat_10_a_forked_group_is_detected() {
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("fork").await;
    let group = hex::decode(&conv).expect("hex");

    // Bob prepares a commit for the current epoch; alice's commit for the same epoch wins.
    let forked = bob
        .account
        .prepare_commit(&conv, &[], &[])
        .expect("bob's commit");
    alice.update_keys(&conv).await.expect("alice's commit");
    bob.sync().await.expect("bob follows alice's commit");

    // The hostile server hides alice's commit from carol and gives her bob's instead.
    let db = h.db();
    let winner: i64 = db
        .query_row(
            "SELECT MAX(id) FROM events WHERE group_id = ?1 AND kind = 0",
            [&group],
            |r| r.get(0),
        )
        .expect("winning commit");
    let carol_device = carol.account.device_id();
    db.execute(
        "UPDATE group_devices SET to_event = ?1 - 1 WHERE group_id = ?2 AND device_id = ?3 \
         AND to_event IS NULL",
        params![winner, group, carol_device],
    )
    .expect("hide");
    db.execute(
        "INSERT INTO group_devices (group_id, device_id, from_event) VALUES (?1, ?2, ?3)",
        params![group, carol_device, winner],
    )
    .expect("resume");
    db.execute(
        "INSERT INTO events (group_id, seq, kind, sender, target, payload, created_at) \
         VALUES (?1, 0, 0, ?2, ?3, ?4, 0)",
        params![
            group,
            bob.account.device_id(),
            carol_device,
            forked.request.commit.0
        ],
    )
    .expect("fork");
    assert!(
        alerts(&carol.sync().await.expect("sync")).is_empty(),
        "bob's commit is valid"
    );
    let epoch =
        |c: &missive_core::client::Client| c.account.epoch_authenticator(&conv).expect("epoch");
    assert_eq!(epoch(&carol).0, epoch(&alice).0, "same epoch number");
    assert_ne!(epoch(&carol).1, epoch(&alice).1, "different group states");

    // The next message across the fork is reported as a fork, both ways.
    alice.send_text(&conv, "to everyone").await.expect("send");
    let codes =
        |o: &[missive_core::account::Outcome]| alerts(o).iter().map(|a| a.code).collect::<Vec<_>>();
    let outcomes = carol.sync().await.expect("sync");
    assert!(texts(&outcomes).is_empty());
    assert_eq!(codes(&outcomes), [AlertCode::ForkDetected]);
    assert_eq!(
        texts(&bob.sync().await.expect("sync")),
        ["to everyone"],
        "bob is on alice's side"
    );
    carol
        .send_text(&conv, "from the other branch")
        .await
        .expect("send");
    assert_eq!(
        codes(&alice.sync().await.expect("sync")),
        [AlertCode::ForkDetected]
    );
}

#[tokio::test]
async fn threat_9_withheld_and_reordered_messages_are_detected() {
    let h = Harness::new();
    let (mut alice, mut bob, dm) = dm_read_once(&h).await;
    let message_events = |events: Vec<missive_proto::api::Event>| -> Vec<i64> {
        events
            .into_iter()
            .filter(|e| e.kind == EventKind::Message)
            .map(|e| e.id as i64)
            .collect()
    };

    // The server withholds "two".
    let cursor = bob.account.cursor();
    alice.send_text(&dm, "two").await.expect("send");
    alice.send_text(&dm, "three").await.expect("send");
    let ids = message_events(h.raw_events(&bob, cursor).await);
    assert_eq!(ids.len(), 2);
    h.db()
        .execute("DELETE FROM events WHERE id = ?1", [ids[0]])
        .expect("withhold");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["three"]);
    let codes =
        |o: &[missive_core::account::Outcome]| alerts(o).iter().map(|a| a.code).collect::<Vec<_>>();
    assert_eq!(codes(&outcomes), [AlertCode::MessagesWithheld]);

    // The server swaps "four" and "five": both are shown once, and the gap "five" opens is
    // reported.
    let cursor = bob.account.cursor();
    alice.send_text(&dm, "four").await.expect("send");
    alice.send_text(&dm, "five").await.expect("send");
    let ids = message_events(h.raw_events(&bob, cursor).await);
    let db = h.db();
    let payload = |id: i64| -> Vec<u8> {
        db.query_row("SELECT payload FROM events WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .expect("payload")
    };
    let (four, five) = (payload(ids[0]), payload(ids[1]));
    db.execute(
        "UPDATE events SET payload = ?1 WHERE id = ?2",
        params![five, ids[0]],
    )
    .expect("swap");
    db.execute(
        "UPDATE events SET payload = ?1 WHERE id = ?2",
        params![four, ids[1]],
    )
    .expect("swap");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["five", "four"]);
    assert_eq!(codes(&outcomes), [AlertCode::MessagesWithheld]);

    // An honest stream raises nothing, and nothing is shown twice.
    alice.send_text(&dm, "six").await.expect("send");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["six"]);
    assert!(codes(&outcomes).is_empty());
    let stored = stored_texts(&bob, &dm);
    assert_eq!(stored, ["one", "three", "five", "four", "six"]);
}

/// Messages encrypted together and posted concurrently may be accepted in any order: that is
/// no reason for alarm. Withholding one of them still is.
#[tokio::test]
async fn threat_9_sends_in_flight_together_arrive_in_any_order_but_none_vanishes_unseen() {
    let h = Harness::new();
    let (mut alice, mut bob, dm) = dm_read_once(&h).await;
    let transport = alice.transport();
    let strings = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // As many messages as a sender may have outstanding, encrypted together and accepted
    // last first: every one is read, and none raises an alarm.
    let burst: Vec<String> = (0..missive_core::account::MAX_UNACCEPTED_SENDS)
        .map(|i| format!("m{i}"))
        .collect();
    let prepared = alice.prepare_texts(&dm, &burst).expect("prepare");
    let mut sent = Vec::new();
    for p in prepared.into_iter().rev() {
        let accepted = transport.post_prepared(&p).await.expect("post");
        sent.push((p, accepted));
    }
    alice.record_sent(&sent).expect("record");
    let outcomes = bob.sync().await.expect("sync");
    let reversed: Vec<&str> = burst.iter().rev().map(String::as_str).collect();
    assert_eq!(texts(&outcomes), reversed);
    assert_eq!(codes(&outcomes), []);

    // Two more together; the server withholds the first. The one after them names both.
    let cursor = bob.account.cursor();
    let prepared = alice
        .prepare_texts(&dm, &strings(&["e", "f"]))
        .expect("prepare");
    let mut sent = Vec::new();
    for p in prepared {
        let accepted = transport.post_prepared(&p).await.expect("post");
        sent.push((p, accepted));
    }
    alice.record_sent(&sent).expect("record");
    alice.send_text(&dm, "g").await.expect("send");
    let withheld = h
        .raw_events(&bob, cursor)
        .await
        .into_iter()
        .find(|e| e.kind == EventKind::Message)
        .expect("the event of e")
        .id;
    h.db()
        .execute("DELETE FROM events WHERE id = ?1", [withheld as i64])
        .expect("withhold");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["f", "g"]);
    assert_eq!(codes(&outcomes), [AlertCode::MessagesWithheld]);
}

#[tokio::test]
async fn threat_3_a_device_list_the_server_made_up_is_caught_by_the_certificate_chain() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let phone = crate::devices::link(&h, &mut alice, "alice-phone").await;
    // The server adds a device of its own to alice's list.
    let device_id = inject_forged_device(&h, &address("alice")).await;

    // Alice sees it flagged; her real phone is certified.
    let listed = alice.devices().await.expect("devices");
    let flagged: Vec<&str> = listed
        .iter()
        .filter(|d| !d.certified)
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(flagged, [device_id.as_str()]);
    assert!(listed
        .iter()
        .any(|d| d.id == phone.account.device_id() && d.certified));
    // Bob, shown the same list, refuses to encrypt to it, and so never to a device alice
    // did not certify.
    assert_refused(
        bob.dm(&address("alice"), "secret").await,
        AlertCode::UncertifiedDevice,
    );
}

#[tokio::test]
async fn threat_5_a_swapped_identity_key_blocks_sending_until_accepted_and_still_reads_nothing() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let dm = bob
        .dm(&address("alice"), "hello")
        .await
        .expect("dm")
        .conversation;
    let (before, _) = bob.safety_number(&address("alice")).await.expect("number");
    bob.account
        .mark_verified(&address("alice"))
        .expect("verified");

    // The server announces another identity key for alice ("she has a new phone"), with a
    // device list of its own, and puts both in its transparency log (where alice could see
    // them: a swap kept out of the log is refused outright, see `transparency`).
    let rogue = server_made_identity(&h, &address("alice"));
    swap_identity(&h, &address("alice"), &rogue, true);
    assert_refused(
        bob.safety_number(&address("alice")).await,
        AlertCode::IdentityChanged,
    );
    assert_refused(
        bob.send_text(&dm, "still there?").await,
        AlertCode::IdentityChanged,
    );
    // The refusals are kept among bob's alerts, not only returned by the commands.
    assert_eq!(
        stored_alerts(&bob),
        ["identity_changed", "identity_changed"]
    );

    // Bob accepts the new key: the safety number changes and the verified mark is gone...
    bob.accept_new_key(&address("alice")).await.expect("accept");
    let (after, verified) = bob.safety_number(&address("alice")).await.expect("number");
    assert_ne!(before.display(), after.display());
    assert!(!verified);
    // ...and the server still gets nothing: alice's real device is certified by her real key,
    // so bob's client refuses to encrypt to it.
    assert_refused(
        bob.send_text(&dm, "secret").await,
        AlertCode::UncertifiedDevice,
    );
    drop(alice);
}

/// Threat 9, the other half: a message the server held back and delivers after later events,
/// with an event id below the device's cursor (ids going backwards), is read once with an
/// alert, not dropped for good; delivered again, it is not shown twice.
#[tokio::test]
async fn threat_9_a_held_back_message_delivered_below_the_cursor_is_read_once() {
    let h = Harness::new();
    let (mut alice, mut bob, dm) = dm_read_once(&h).await;
    let cursor = bob.account.cursor();
    alice.send_text(&dm, "two").await.expect("send");
    alice.send_text(&dm, "three").await.expect("send");
    let events: Vec<_> = h
        .raw_events(&bob, cursor)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::Message)
        .collect();
    assert_eq!(events.len(), 2);
    let two = events[0].clone();
    h.db()
        .execute("DELETE FROM events WHERE id = ?1", [two.id as i64])
        .expect("hold back");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["three"]);
    assert_eq!(codes(&outcomes), [AlertCode::MessagesWithheld]);
    assert!(two.id < bob.account.cursor());

    // The server now hands over what it held back, below the cursor.
    let outcomes = bob
        .process_events(std::slice::from_ref(&two))
        .await
        .expect("process");
    assert_eq!(texts(&outcomes), ["two"]);
    assert_eq!(codes(&outcomes), [AlertCode::DeliveredOutOfOrder]);
    // Again: already read, nothing shown twice and nothing raised.
    let outcomes = bob
        .process_events(std::slice::from_ref(&two))
        .await
        .expect("process");
    assert!(outcomes.is_empty(), "{outcomes:?}");
    let stored = stored_texts(&bob, &dm);
    assert_eq!(stored, ["one", "three", "two"]);
    // And the conversation goes on.
    alice.send_text(&dm, "four").await.expect("send");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["four"]);
    assert!(codes(&outcomes).is_empty());
}
