//! Group behaviour with real clients: epoch races, removal, fan-out.

use futures_util::future::join;
use missive_core::account::Outcome;
use missive_core::client::Client;
use missive_core::AlertCode;

use crate::support::*;

#[tokio::test]
async fn concurrent_commits_one_wins_the_other_retries() {
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("race").await;

    // Sequential race: bob commits on an epoch alice already moved past.
    let first = alice.update_keys(&conv).await.expect("alice commits");
    assert_eq!(first.attempts, 1);
    let second = bob
        .update_keys(&conv)
        .await
        .expect("bob commits after a retry");
    assert_eq!(
        second.attempts, 2,
        "bob lost the epoch once, processed the winner, retried"
    );
    assert_eq!(second.epoch, first.epoch + 1);

    // True race: both commit at once from the same epoch.
    alice.sync().await.expect("sync");
    carol.sync().await.expect("sync");
    let (a, c) = join(alice.update_keys(&conv), carol.update_keys(&conv)).await;
    let (a, c) = (a.expect("alice"), c.expect("carol"));
    assert_eq!(a.attempts.min(c.attempts), 1, "one won outright");
    assert!(
        a.attempts.max(c.attempts) >= 2,
        "the other retried: {a:?} {c:?}"
    );

    for client in [&mut alice, &mut bob, &mut carol] {
        let alerts = alerts(&client.sync().await.expect("sync"));
        assert!(alerts.is_empty(), "{alerts:?}");
    }
    let auth =
        |c: &missive_core::client::Client| c.account.epoch_authenticator(&conv).expect("auth");
    let (epoch, authenticator) = auth(&alice);
    assert_eq!(epoch, second.epoch + 2);
    assert_eq!(auth(&bob), (epoch, authenticator.clone()));
    assert_eq!(auth(&carol), (epoch, authenticator));

    // Everyone still talks.
    bob.send_text(&conv, "after the race").await.expect("send");
    assert_eq!(
        texts(&alice.sync().await.expect("sync")),
        ["after the race"]
    );
    assert_eq!(
        texts(&carol.sync().await.expect("sync")),
        ["after the race"]
    );
}

#[tokio::test]
async fn a_removed_member_cannot_read_anything_new() {
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("ops").await;
    alice.send_text(&conv, "before").await.expect("send");
    assert_eq!(texts(&carol.sync().await.expect("sync")), ["before"]);

    alice
        .remove_members(&conv, &[address("carol")])
        .await
        .expect("remove");
    let outcomes = carol.sync().await.expect("sync");
    assert!(
        outcomes.contains(&Outcome::Left(conv.clone())),
        "{outcomes:?}"
    );
    assert_eq!(
        alice.account.members(&conv).expect("members"),
        [address("alice"), address("bob")]
    );

    let cursor = bob.account.cursor();
    alice.send_text(&conv, "after").await.expect("send");
    assert!(
        texts(&carol.sync().await.expect("sync")).is_empty(),
        "the server no longer delivers to carol"
    );

    // Even handed the ciphertext, carol's old state cannot decrypt it.
    let events = h.raw_events(&bob, cursor).await;
    let leaked = events
        .iter()
        .find(|e| e.kind == missive_proto::api::EventKind::Message)
        .expect("bob has the message")
        .clone();
    let leaked = missive_proto::api::Event {
        id: carol.account.cursor() + 1,
        ..leaked
    };
    let outcomes = carol.account.process_event(&leaked).expect("processed");
    assert!(
        matches!(&outcomes[..], [Outcome::Alert(a)] if a.code == AlertCode::RejectedMessage),
        "{outcomes:?}"
    );
    assert_eq!(texts(&bob.sync().await.expect("sync")), ["before", "after"]);
}

#[tokio::test]
async fn two_members_adding_the_same_user_at_once_both_succeed() {
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("adds").await;
    let mut dave = h.user("dave").await;
    let (a, b) = join(
        alice.add_members(&conv, &[address("dave")]),
        bob.add_members(&conv, &[address("dave")]),
    )
    .await;
    let (a, b) = (a.expect("alice adds dave"), b.expect("bob adds dave too"));
    assert!(
        a.attempts.max(b.attempts) >= 2,
        "one of them lost the race: {a:?} {b:?}"
    );

    let joined = dave.sync().await.expect("dave syncs");
    assert_eq!(
        joined
            .iter()
            .filter(|o| matches!(o, Outcome::Joined(_)))
            .count(),
        1,
        "{joined:?}"
    );
    for c in [&mut alice, &mut bob, &mut carol] {
        assert!(alerts(&c.sync().await.expect("sync")).is_empty());
    }
    let members = alice.account.members(&conv).expect("members");
    assert_eq!(members, ["alice", "bob", "carol", "dave"].map(address));
    let auth =
        |c: &missive_core::client::Client| c.account.epoch_authenticator(&conv).expect("auth");
    assert_eq!(auth(&alice), auth(&dave));
    assert_eq!(auth(&bob), auth(&carol));
    dave.send_text(&conv, "hello all").await.expect("send");
    assert_eq!(texts(&carol.sync().await.expect("sync")), ["hello all"]);
}

#[tokio::test]
async fn two_members_removing_the_same_user_at_once_both_succeed() {
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("removes").await;
    let (a, b) = join(
        alice.remove_members(&conv, &[address("carol")]),
        bob.remove_members(&conv, &[address("carol")]),
    )
    .await;
    a.expect("alice removes carol");
    b.expect("bob removes carol too");
    let outcomes = carol.sync().await.expect("carol syncs");
    assert!(
        outcomes.contains(&Outcome::Left(conv.clone())),
        "{outcomes:?}"
    );
    alice.sync().await.expect("sync");
    bob.sync().await.expect("sync");
    assert_eq!(
        alice.account.members(&conv).expect("members"),
        ["alice", "bob"].map(address)
    );
    assert_eq!(
        alice.account.epoch_authenticator(&conv).expect("auth"),
        bob.account.epoch_authenticator(&conv).expect("auth")
    );
    // Removing someone who is not a member is an error.
    assert!(alice
        .remove_members(&conv, &[address("carol")])
        .await
        .is_err());
}

#[tokio::test]
async fn a_conversation_through_a_postgres_backed_server() {
    let h = Harness::with_postgres();
    let (mut alice, mut bob, mut carol, conv) = h.trio("on postgres").await;
    alice.send_text(&conv, "one").await.expect("send");
    bob.send_text(&conv, "two").await.expect("send");
    assert_eq!(texts(&carol.sync().await.expect("sync")), ["one", "two"]);
    let (a, b) = join(alice.update_keys(&conv), bob.update_keys(&conv)).await;
    assert!(
        a.expect("alice").attempts.max(b.expect("bob").attempts) >= 2,
        "one retried"
    );
    alice
        .remove_members(&conv, &[address("carol")])
        .await
        .expect("remove");
    // Bob catches up (unless a lost race made him do so already), then listens.
    let caught_up = texts(&bob.sync().await.expect("bob catches up"));
    assert!(
        caught_up.is_empty() || caught_up == ["one"],
        "{caught_up:?}"
    );
    let mut push = bob.connect_push().await.expect("push");
    alice.send_text(&conv, "three").await.expect("send");
    let mut got = Vec::new();
    while got.is_empty() {
        let events = push.next_batch().await.expect("push").expect("open");
        got = texts(&bob.process_events(&events).await.expect("process"));
    }
    assert_eq!(
        got,
        ["three"],
        "pushed over the WebSocket from a PostgreSQL-backed server"
    );
    let outcomes = carol.sync().await.expect("sync");
    assert!(outcomes.contains(&Outcome::Left(conv.clone())));
    assert!(texts(&outcomes).is_empty());
}

/// Found by the soak: a member who removes someone before reading that someone's last
/// messages still reads them (they come from an epoch before the removal, whose sender is no
/// longer in the tree).
#[tokio::test]
async fn the_last_words_of_a_removed_member_are_still_read() {
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("goodbye").await;
    carol.send_text(&conv, "my last words").await.expect("send");
    alice
        .remove_members(&conv, &[address("carol")])
        .await
        .expect("remove");
    let outcomes = alice.sync().await.expect("sync");
    assert!(alerts(&outcomes).is_empty(), "{:?}", alerts(&outcomes));
    let stored: Vec<String> = alice
        .account
        .store()
        .messages(&conv)
        .expect("history")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(stored, ["my last words"]);
    assert_eq!(texts(&bob.sync().await.expect("sync")), ["my last words"]);
}

/// The engine over the in-memory account store (what the conformance suite holds every store
/// to) talks to a client over SQLite: the store is the engine's only dependency on storage.
#[tokio::test]
async fn an_account_kept_in_memory_talks_like_any_other() {
    let h = Harness::new();
    let carol_address = address("carol");
    let invite = h.invite(&carol_address).await;
    let mut carol = Client::register(
        Box::new(missive_core::memory::MemoryAccountStore::new()),
        &h.server.url(),
        &carol_address,
        Some(invite),
    )
    .await
    .expect("registration");
    let mut bob = h.user("bob").await;
    let dm = bob
        .dm(&carol_address, "to memory")
        .await
        .expect("dm")
        .conversation;
    assert_eq!(texts(&carol.sync().await.expect("sync")), ["to memory"]);
    carol.send_text(&dm, "from memory").await.expect("send");
    assert_eq!(texts(&bob.sync().await.expect("sync")), ["from memory"]);
    let group = carol
        .create_conversation(Some("G".into()), None, &[address("bob")])
        .await
        .expect("group");
    carol.send_text(&group, "in a group").await.expect("send");
    assert_eq!(texts(&bob.sync().await.expect("sync")), ["in a group"]);
    assert!(carol.account.store().alerts().expect("alerts").is_empty());
}

/// The size of the last commit `client` can fetch.
async fn last_commit_bytes(h: &Harness, client: &Client) -> usize {
    h.raw_events(client, 0)
        .await
        .iter()
        .rev()
        .find(|e| e.kind == missive_proto::api::EventKind::Commit)
        .map(|e| e.payload.as_bytes().len())
        .expect("a commit")
}

/// Above the size up to which every commit renews its committer's keys, an add carries no
/// update path (the commit every member downloads stays small): members still read each other,
/// the newcomer reads what follows, and a removal (which always carries a path) and a key
/// update still go through.
#[tokio::test]
async fn in_a_large_group_an_add_carries_no_update_path() {
    let h = Harness::new();
    let (mut alice, mut bob, mut carol, conv) = h.trio("large").await;
    let mut dave = h.user("dave").await;
    let mut erin = h.user("erin").await;
    alice
        .add_members(&conv, &[address("dave")])
        .await
        .expect("add dave");
    let with_path = last_commit_bytes(&h, &bob).await;
    // The same group, treated as a large one.
    alice.account.set_path_on_every_commit_up_to(2);
    alice
        .add_members(&conv, &[address("erin")])
        .await
        .expect("add erin");
    let without_path = last_commit_bytes(&h, &bob).await;
    assert!(
        without_path + 2_000 < with_path,
        "no path: {without_path} bytes against {with_path}"
    );

    for c in [&mut bob, &mut carol, &mut dave, &mut erin] {
        assert!(alerts(&c.sync().await.expect("sync")).is_empty());
    }
    erin.send_text(&conv, "hello from erin")
        .await
        .expect("send");
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        assert_eq!(texts(&c.sync().await.expect("sync")), ["hello from erin"]);
    }
    // A removal and a key update carry a path whatever the size.
    alice
        .remove_members(&conv, &[address("carol")])
        .await
        .expect("remove carol");
    assert!(last_commit_bytes(&h, &bob).await > without_path);
    alice.update_keys(&conv).await.expect("update");
    alice
        .send_text(&conv, "after the removal")
        .await
        .expect("send");
    for c in [&mut bob, &mut dave, &mut erin] {
        let got = c.sync().await.expect("sync");
        assert!(alerts(&got).is_empty());
        assert_eq!(texts(&got), ["after the removal"]);
    }
}
