//! Recovery when every device is lost: the recovery key restores the account under the same
//! identity key on a new device, which rejoins every conversation by external commit; a wrong
//! key learns nothing; and nobody else can join a conversation that way, even with the
//! server's help.

use missive_core::client::Client;
use missive_core::error::CoreError;
use missive_core::recovery::RecoveryKey;
use missive_core::AlertCode;
use missive_proto::api::RecoveryRequest;
use missive_proto::{ErrorBody, ErrorCode, B64};
use missive_server::store::CommitWrite;

use crate::support::*;

fn recovery_key(client: &Client) -> RecoveryKey {
    client
        .account
        .recovery_key()
        .expect("read")
        .expect("every registered account has one")
}

#[tokio::test]
async fn every_device_lost_the_recovery_key_brings_the_conversations_back() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let mut carol = h.user("carol").await;
    let cabinet = alice
        .create_conversation(
            Some("Cabinet".into()),
            None,
            &[address("bob"), address("carol")],
        )
        .await
        .expect("group");
    let dm = alice.dm(&address("bob"), "before").await.expect("dm");
    bob.sync().await.expect("sync");
    carol.sync().await.expect("sync");
    let key = recovery_key(&alice);
    let lost_device = alice.account.device_id();
    drop(alice);

    // The key as the user typed it back, on a new device.
    let typed = RecoveryKey::parse(&key.display().to_lowercase().replace('-', " ")).expect("key");
    let (mut alice, recovered) = Client::recover(
        h.home("alice-new"),
        &h.server.url(),
        &address("alice"),
        &typed,
    )
    .await
    .expect("recover");
    assert_eq!(recovered.rejoined, 2, "{recovered:?}");
    assert!(recovered.failed.is_empty(), "{recovered:?}");
    assert_eq!(recovered.revoked, 1);
    let conversations = alice.account.store().conversations().expect("list");
    let named = conversations
        .iter()
        .find(|c| c.id == cabinet)
        .expect("the group");
    assert_eq!(named.name.as_deref(), Some("Cabinet"));
    let one_to_one = conversations
        .iter()
        .find(|c| c.id == dm.conversation)
        .expect("the dm");
    assert_eq!(one_to_one.dm_peer.as_deref(), Some(address("bob").as_str()));
    // Same identity: contacts stay pinned, and see a new device, not a new key.
    assert_eq!(
        alice.account.identity_key(),
        recovery_identity(&h, "alice"),
        "the identity key the server holds is the one restored"
    );

    // Messages after recovery are read both ways, in both conversations.
    alice.send_text(&cabinet, "I am back").await.expect("send");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["I am back"]);
    assert!(alerts(&outcomes).is_empty(), "{outcomes:?}");
    assert_eq!(texts(&carol.sync().await.expect("sync")), ["I am back"]);
    bob.send_text(&dm.conversation, "welcome back")
        .await
        .expect("send");
    carol
        .send_text(&cabinet, "hello again")
        .await
        .expect("send");
    let mut read = texts(&alice.sync().await.expect("sync"));
    read.sort();
    assert_eq!(read, ["hello again", "welcome back"]);
    assert!(stored_alerts(&bob).is_empty() && stored_alerts(&carol).is_empty());
    // The lost device is off the account and out of every conversation.
    for c in [&cabinet, &dm.conversation] {
        let devices = h
            .db()
            .prepare("SELECT device_id FROM group_devices WHERE group_id = ?1 AND to_event IS NULL")
            .expect("query")
            .query_map([hex::decode(c).expect("hex")], |r| r.get::<_, String>(0))
            .expect("rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("members");
        assert!(!devices.contains(&lost_device), "{devices:?}");
        assert!(devices.contains(&alice.account.device_id()));
    }
    let listed = alice
        .devices()
        .await
        .expect("devices")
        .into_iter()
        .map(|d| d.id)
        .collect::<Vec<_>>();
    assert_eq!(listed, [alice.account.device_id()]);
}

fn recovery_identity(h: &Harness, name: &str) -> [u8; 32] {
    let key: Vec<u8> = h
        .db()
        .query_row(
            "SELECT identity_key FROM users WHERE address = ?1",
            [address(name)],
            |r| r.get(0),
        )
        .expect("user");
    key.try_into().expect("32 bytes")
}

#[tokio::test]
async fn a_wrong_recovery_key_is_refused_and_learns_nothing() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let wrong = RecoveryKey::generate();
    match Client::recover(h.home("thief"), &h.server.url(), &address("alice"), &wrong).await {
        Err(CoreError::Usage(why)) => assert!(why.contains("no recovery backup"), "{why}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    // Nothing registered, nothing changed.
    let devices: i64 = h
        .db()
        .query_row(
            "SELECT COUNT(*) FROM devices WHERE address = ?1",
            [address("alice")],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(devices, 1);
    // The same answer for a wrong key, an address without backup and an unknown address.
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for (who, key) in [
        ("alice", &wrong),
        ("nobody", &wrong),
        ("alice", &recovery_key(&alice)),
    ] {
        let response = http
            .post(h.url("/v1/recovery/backup"))
            .json(&RecoveryRequest {
                address: address(who),
                auth: key.auth(&address(who)),
            })
            .send()
            .await
            .expect("answer");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        answers.push((status, body));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 403);
    let body: ErrorBody = serde_json::from_str(&answers[0].1).expect("an error");
    assert_eq!(body.code, ErrorCode::RecoveryRefused);
    assert_eq!(answers[2].0, 200, "the right key opens it");
    // A malformed request is a clear 400, not a 5xx.
    let response = http
        .post(h.url("/v1/recovery/backup"))
        .json(&serde_json::json!({"address": address("alice"), "auth": B64(vec![1; 3])}))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 400);
}

/// Only a device of a member may join by itself. The server refuses anyone else; and if it
/// let one through (here it writes the commit straight into its store), the members refuse it.
#[tokio::test]
async fn nobody_else_joins_by_external_commit_even_with_the_servers_help() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let mut dave = h.user("dave").await;
    let dm = alice.dm(&address("bob"), "private").await.expect("dm");
    bob.sync().await.expect("sync");
    // Dave pins alice and bob (their real keys), and gets the GroupInfo from the database:
    // the server refuses to hand it to him.
    dave.fetch_user(&address("alice")).await.expect("alice");
    dave.fetch_user(&address("bob")).await.expect("bob");
    let group_id = hex::decode(&dm.conversation).expect("hex");
    let path = format!("/v1/groups/{}/group-info", B64::encode(&group_id));
    let refused = reqwest::Client::new()
        .get(h.url(&path))
        .bearer_auth(dave.account.token())
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 404);
    let (epoch, info): (i64, Vec<u8>) = h
        .db()
        .query_row(
            "SELECT g.epoch, s.group_info FROM groups g JOIN group_states s \
             ON s.group_id = g.group_id WHERE g.group_id = ?1",
            [&group_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("group info");
    let (_, request) = dave
        .account
        .rejoin(&dm.conversation, &info)
        .expect("an external commit");
    // The server refuses it...
    let response = reqwest::Client::new()
        .post(h.url(&format!("/v1/groups/{}/commits", B64::encode(&group_id))))
        .bearer_auth(dave.account.token())
        .json(&request)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 403);
    // ...and a server that writes it all the same gets it refused by the members.
    h.server
        .store()
        .commit(CommitWrite {
            group_id: group_id.clone(),
            expected_epoch: epoch as u64,
            new_epoch: epoch as u64 + 1,
            state: h
                .db()
                .query_row(
                    "SELECT state FROM group_states WHERE group_id = ?1",
                    [&group_id],
                    |r| r.get(0),
                )
                .expect("state"),
            group_info: request.group_info.0.clone(),
            sender: dave.account.device_id(),
            commit: request.commit.0.clone(),
            welcome: None,
            joined: None,
            removed: Vec::new(),
            now_ms: 1,
        })
        .await
        .expect("written");
    let outcomes = bob.sync().await.expect("sync");
    let codes: Vec<AlertCode> = alerts(&outcomes).into_iter().map(|a| a.code).collect();
    assert_eq!(codes, [AlertCode::RejectedCommit], "{outcomes:?}");
    assert_eq!(
        bob.account.members(&dm.conversation).expect("members"),
        [address("alice"), address("bob")],
        "dave is not a member for bob"
    );
}

/// `name`'s device forgets its recovery key, as a device of an account registered before
/// recovery keys existed (or linked before it had one) never held one.
fn forget_recovery_key(h: &Harness, name: &str) {
    rusqlite::Connection::open(h.home_db(name))
        .expect("account db")
        .execute("DELETE FROM settings WHERE key = 'recovery_key'", [])
        .expect("forget");
}

#[tokio::test]
async fn an_account_without_a_recovery_key_gets_one_and_only_one() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    alice.dm(&address("bob"), "hi").await.expect("dm");
    bob.sync().await.expect("sync");
    // An account from before recovery keys: none on its device, no backup on the server.
    drop(alice);
    forget_recovery_key(&h, "alice");
    h.db()
        .execute(
            "DELETE FROM recoveries WHERE address = ?1",
            [address("alice")],
        )
        .expect("no backup");
    let mut alice = Client::open(h.home("alice")).expect("alice");
    assert!(alice.account.recovery_key().expect("read").is_none());
    let key = alice.make_recovery_key().await.expect("a key");
    assert!(
        matches!(alice.make_recovery_key().await, Err(CoreError::Usage(_))),
        "only one"
    );
    // A device of bob's that never received his key cannot replace it.
    let mut phone = crate::devices::link(&h, &mut bob, "bob-phone").await;
    drop(phone);
    forget_recovery_key(&h, "bob-phone");
    phone = Client::open(h.home("bob-phone")).expect("phone");
    match phone.make_recovery_key().await {
        Err(CoreError::Usage(why)) => assert!(why.contains("another of your devices"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    phone.sync().await.expect("its syncs go on");
    drop(bob);
    drop(phone);

    // Alice's new key recovers her account, conversation included.
    let (mut recovered, report) = Client::recover(
        h.home("alice-new"),
        &h.server.url(),
        &address("alice"),
        &key,
    )
    .await
    .expect("recover");
    assert_eq!(report.rejoined, 1, "{report:?}");
    recovered.dm(&address("bob"), "still me").await.expect("dm");
}

#[tokio::test]
async fn the_history_backup_brings_past_messages_back_and_the_server_reads_none() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    alice.account.set_history_backup(true).expect("on");
    let cabinet = alice
        .create_conversation(Some("Cabinet".into()), None, &[address("bob")])
        .await
        .expect("group");
    let first = alice
        .send_text(&cabinet, "secret minutes 1")
        .await
        .expect("send");
    alice
        .send_text(&cabinet, "secret minutes 2")
        .await
        .expect("send");
    bob.sync().await.expect("sync");
    bob.send_text(&cabinet, "secret answer")
        .await
        .expect("send");
    alice.sync().await.expect("sync");
    let segments = |h: &Harness, who: &str| -> Vec<Vec<u8>> {
        h.db()
            .prepare("SELECT segment FROM recovery_history WHERE address = ?1 ORDER BY idx")
            .expect("query")
            .query_map([address(who)], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("segments")
    };
    assert_eq!(segments(&h, "alice").len(), 1);
    // Incremental: the next message makes a segment of its own.
    alice
        .send_text(&cabinet, "secret minutes 3")
        .await
        .expect("send");
    alice.sync().await.expect("sync");
    let stored = segments(&h, "alice");
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|s| !s.windows(6).any(|w| w == b"secret")),
        "the server holds ciphertext only"
    );
    assert!(segments(&h, "bob").is_empty(), "off unless asked for");
    // A deletion for everyone after its message was backed up: the next segment says so.
    alice.delete(&cabinet, &first.id).await.expect("delete");
    alice.sync().await.expect("sync");
    assert_eq!(segments(&h, "alice").len(), 3);

    let key = recovery_key(&alice);
    drop(alice);
    let (alice, recovered) = Client::recover(
        h.home("alice-new"),
        &h.server.url(),
        &address("alice"),
        &key,
    )
    .await
    .expect("recover");
    assert_eq!(recovered.messages, 4, "{recovered:?}");
    let mut past: Vec<String> = alice
        .account
        .store()
        .messages(&cabinet)
        .expect("messages")
        .into_iter()
        .map(|m| m.text)
        .collect();
    past.sort();
    assert_eq!(
        past,
        ["", "secret answer", "secret minutes 2", "secret minutes 3"],
        "the deleted message comes back deleted"
    );
    let trace = alice
        .account
        .store()
        .message(&first.id)
        .expect("read")
        .expect("its trace");
    assert!(trace.deleted);
    assert!(alice.account.history_backup().expect("read"), "still on");
}
