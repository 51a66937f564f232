//! Key transparency against a hostile server (played by writing into its database): a key the
//! log does not hold is refused before anything is pinned; a log whose past was rewritten is
//! caught by an auditor (across ten thousand entries) and by a client that saw an earlier head.

use missive_core::audit::audit;
use missive_core::AlertCode;
use missive_proto::kt::Leaf;
use missive_server::store::{NewDevice, NewUser};
use rusqlite::params;

use crate::support::*;

#[tokio::test]
async fn a_key_the_log_does_not_hold_is_refused_before_anything_is_pinned() {
    let h = Harness::new();
    let _alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    // Bob follows the log: a lookup of his own account is proven.
    bob.devices().await.expect("devices");
    assert!(bob.account.kt_head().expect("head").is_some());
    let rogue = server_made_identity(&h, &address("alice"));
    swap_identity(&h, &address("alice"), &rogue, false);

    assert_refused(
        bob.dm(&address("alice"), "secret").await,
        AlertCode::TransparencyFailed,
    );
    assert!(
        bob.account
            .contact(&address("alice"))
            .expect("read")
            .is_none(),
        "nothing pinned"
    );
    assert!(bob
        .account
        .store()
        .conversations()
        .expect("list")
        .is_empty());
    assert_eq!(stored_alerts(&bob), ["transparency_failed"]);
}

#[tokio::test]
async fn a_rewritten_log_is_caught_by_a_client_that_saw_an_earlier_head() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = ServerProcess::start(dir.path()).await;
    let _alice = open_user(dir.path(), &server.url, "alice").await;
    let _carol = open_user(dir.path(), &server.url, "carol").await;
    let mut bob = open_user(dir.path(), &server.url, "bob").await;
    bob.fetch_user(&address("alice")).await.expect("proven");
    let seen = bob.account.kt_head().expect("head").expect("a head");

    // The server rewrites carol's entry (an earlier one) and restarts: its tree is rebuilt from
    // what the database now holds.
    let db =
        rusqlite::Connection::open(dir.path().join(missive_server::config::DB_FILE)).expect("db");
    let (idx, leaf): (i64, Vec<u8>) = db
        .query_row(
            "SELECT idx, leaf FROM kt_log WHERE address = ?1",
            [address("carol")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("carol's entry");
    let mut forged = Leaf::from_bytes(&leaf).expect("a leaf");
    forged.identity_key = [9; 32];
    db.execute(
        "UPDATE kt_log SET leaf = ?1 WHERE idx = ?2",
        params![forged.to_bytes(), idx],
    )
    .expect("rewrite");
    drop(db);
    server.kill_and_restart().await;

    assert_refused(
        bob.fetch_user(&address("alice")).await,
        AlertCode::TransparencyFailed,
    );
    assert_eq!(
        bob.account.kt_head().expect("head").expect("kept"),
        seen,
        "the head bob trusts is still the one he verified"
    );
}

#[tokio::test]
async fn an_auditor_following_ten_thousand_entries_finds_one_rewritten() {
    let h = Harness::new();
    let auditor = h.user("auditor").await;
    // Ten thousand registrations and key changes, written as the server writes them (many at
    // once, so that its writer commits them in batches).
    let store = h.server.store();
    let user = |n: u32| async move {
        let address = format!("user{n}@{DOMAIN}");
        store
            .register(
                NewUser {
                    address: address.clone(),
                    identity_key: vec![1; 32],
                    device: NewDevice {
                        device_id: format!("{n:032x}"),
                        certificate: vec![2; 8],
                        token_hash: [3; 32],
                    },
                },
                None,
                1,
            )
            .await
            .expect("register");
        for version in 1..=2u64 {
            let leaf = Leaf::of_list(&address, [n as u8; 32], version, &[version as u8]);
            store
                .publish_device_list(&address, version, vec![], vec![], leaf.to_bytes())
                .await
                .expect("publish");
        }
    };
    for chunk in (0..5_000u32).collect::<Vec<_>>().chunks(500) {
        futures_util::future::join_all(chunk.iter().map(|n| user(*n))).await;
    }
    let transport = auditor.transport();
    let first = audit(&transport, None).await.expect("a sound log");
    assert!(first.state.size >= 10_000, "{}", first.state.size);
    let again = audit(&transport, Some(&first.state))
        .await
        .expect("still sound");
    assert_eq!(again.previous, first.state.size);

    // One entry in the middle is rewritten in the database.
    let db = h.db();
    let leaf: Vec<u8> = db
        .query_row("SELECT leaf FROM kt_log WHERE idx = 4321", [], |r| r.get(0))
        .expect("an entry");
    let mut forged = Leaf::from_bytes(&leaf).expect("a leaf");
    forged.identity_key = [0xee; 32];
    db.execute(
        "UPDATE kt_log SET leaf = ?1 WHERE idx = 4321",
        [forged.to_bytes()],
    )
    .expect("rewrite");
    assert_refused(
        audit(&transport, Some(&again.state)).await,
        AlertCode::TransparencyFailed,
    );
}

#[tokio::test]
async fn a_key_the_server_logs_for_you_is_reported_by_your_own_devices() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    // The server logs a key and device list of its making for alice, to show bob.
    let rogue = server_made_identity(&h, &address("alice"));
    swap_identity(&h, &address("alice"), &rogue, true);
    // Bob, who never met alice, is shown it and cannot tell (the log holds it)...
    bob.fetch_user(&address("alice"))
        .await
        .expect("logged, so proven");
    // ...but alice's own device, at its next start, sees it in the log.
    drop(alice);
    let mut alice = missive_core::client::Client::open(h.home("alice")).expect("alice");
    let outcomes = alice.sync().await.expect("sync");
    let codes: Vec<AlertCode> = alerts(&outcomes).into_iter().map(|a| a.code).collect();
    assert_eq!(codes, [AlertCode::OwnKeyLogged], "{outcomes:?}");
    // Reported once: neither the next sync nor the next start repeats it.
    assert!(alerts(&alice.sync().await.expect("sync")).is_empty());
    drop(alice);
    let mut alice = missive_core::client::Client::open(h.home("alice")).expect("alice");
    assert!(alerts(&alice.sync().await.expect("sync")).is_empty());
    assert_eq!(stored_alerts(&alice), ["own_key_logged"]);
}

/// Bob and carol talk; then alice registers and carol looks her up, so that carol's head
/// covers alice's real key and bob's does not.
async fn before_the_split(
    dir: &std::path::Path,
    url: &str,
) -> (
    missive_core::client::Client,
    missive_core::client::Client,
    missive_core::store::MessageRecord,
) {
    let mut bob = open_user(dir, url, "bob").await;
    let mut carol = open_user(dir, url, "carol").await;
    let hello = carol.dm(&address("bob"), "hello").await.expect("dm");
    bob.sync().await.expect("sync");
    assert!(stored_alerts(&bob).is_empty() && stored_alerts(&carol).is_empty());
    let _alice = open_user(dir, url, "alice").await;
    carol.fetch_user(&address("alice")).await.expect("proven");
    (bob, carol, hello)
}

/// A split view: the server rewrites its log for the users it wants to deceive (here, bob is
/// shown a key of its making for alice, who registered after bob last looked) while carol
/// saw the real one. Each log is consistent on its own; the heads carol and bob pass on inside
/// their conversation are not.
#[tokio::test]
async fn a_split_view_is_caught_by_the_heads_members_pass_on() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = ServerProcess::start(dir.path()).await;
    let (mut bob, mut carol, hello) = before_the_split(dir.path(), &server.url).await;

    // The server rewrites alice's entry with a key of its making, and serves that log from
    // now on. Bob never saw a head covering alice's entry, so it is consistent with his.
    let (rogue, _) = missive_core::account::Account::create(
        Box::new(
            missive_core::sqlite::SqliteAccountStore::open(&dir.path().join("rogue.db"))
                .expect("store"),
        ),
        &address("alice"),
        &server.url,
        None,
    )
    .expect("rogue");
    let list = rogue
        .next_device_list(&[rogue.listed_self()], &[], &[])
        .expect("rogue list");
    let db =
        rusqlite::Connection::open(dir.path().join(missive_server::config::DB_FILE)).expect("db");
    let version = missive_proto::devicelist::DeviceList::from_bytes(&list)
        .expect("list")
        .version;
    let leaf = Leaf::of_list(&address("alice"), rogue.identity_key(), version, &list);
    db.execute(
        "UPDATE kt_log SET leaf = ?1 WHERE address = ?2",
        params![leaf.to_bytes(), address("alice")],
    )
    .expect("rewrite");
    db.execute(
        "UPDATE users SET identity_key = ?1, device_list = ?2 WHERE address = ?3",
        params![rogue.identity_key().to_vec(), list, address("alice")],
    )
    .expect("swap");
    drop(db);
    server.kill_and_restart().await;
    let _dave = open_user(dir.path(), &server.url, "dave").await;
    // Bob is shown the rogue key, proven in the rewritten log, and cannot tell by himself.
    bob.fetch_user(&address("alice"))
        .await
        .expect("consistent with what bob saw");

    // Carol writes to bob: her message carries the head she accepted. The server cannot
    // prove that the log it shows bob extends it.
    carol
        .send_text(&hello.conversation, "still there?")
        .await
        .expect("send");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["still there?"], "the message is read");
    let codes: Vec<AlertCode> = alerts(&outcomes).into_iter().map(|a| a.code).collect();
    assert_eq!(codes, [AlertCode::SplitView], "{outcomes:?}");
    assert_eq!(stored_alerts(&bob), ["split_view"]);
    // Checked once: the next sync does not raise it again.
    assert!(alerts(&bob.sync().await.expect("sync")).is_empty());

    // Bob's answer carries his head the other way: carol's own check fails too.
    bob.send_text(&hello.conversation, "yes")
        .await
        .expect("send");
    let outcomes = carol.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["yes"]);
    let codes: Vec<AlertCode> = alerts(&outcomes).into_iter().map(|a| a.code).collect();
    assert_eq!(codes, [AlertCode::TransparencyFailed], "{outcomes:?}");
}

/// Two signed heads of one size with different roots need no proof from the server: the
/// member who receives the other is alerted as the message is read.
#[tokio::test]
async fn two_roots_for_one_size_are_a_split_view_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let mut server = ServerProcess::start(dir.path()).await;
    let (mut bob, mut carol, hello) = before_the_split(dir.path(), &server.url).await;

    // Alice's entry rewritten: the log bob is shown has carol's size but another root.
    let db =
        rusqlite::Connection::open(dir.path().join(missive_server::config::DB_FILE)).expect("db");
    let leaf: Vec<u8> = db
        .query_row(
            "SELECT leaf FROM kt_log WHERE address = ?1",
            [address("alice")],
            |r| r.get(0),
        )
        .expect("alice's entry");
    let mut forged = Leaf::from_bytes(&leaf).expect("a leaf");
    forged.identity_key = [7; 32];
    db.execute(
        "UPDATE kt_log SET leaf = ?1 WHERE address = ?2",
        params![forged.to_bytes(), address("alice")],
    )
    .expect("rewrite");
    drop(db);
    server.kill_and_restart().await;
    bob.devices()
        .await
        .expect("bob's own lookup, proven in the rewritten log");
    assert_eq!(
        bob.account.kt_head().expect("head").map(|h| h.size),
        carol.account.kt_head().expect("head").map(|h| h.size)
    );

    carol
        .send_text(&hello.conversation, "same size")
        .await
        .expect("send");
    let outcomes = bob.sync().await.expect("sync");
    assert_eq!(texts(&outcomes), ["same size"]);
    let codes: Vec<AlertCode> = alerts(&outcomes).into_iter().map(|a| a.code).collect();
    assert_eq!(codes, [AlertCode::SplitView], "{outcomes:?}");
    assert!(
        bob.account.gossip_pending().expect("pending").is_empty(),
        "decided as the message was read, nothing left to ask the server"
    );
}
