//! A client that dies in the middle of a commit or a send. When the server accepted a commit, the
//! client merges it on restart instead of making a second, different commit for that epoch;
//! when the server never got it, the client makes a new one. A sender killed between encrypting
//! and posting never reuses a ratchet generation. Either way nobody is left unable to decrypt.

use missive_core::client::Client;
use missive_proto::api::{ClaimKeyPackagesRequest, ClaimKeyPackagesResponse};
use missive_proto::B64;

use crate::support::*;

/// Alice stages a commit adding carol, durably, as `add_members` does before posting it;
/// with `post`, the server accepts it. Then alice's process "dies" before she hears back.
async fn commit_then_crash(h: &Harness, alice: &mut Client, conv: &str, post: bool) {
    alice.fetch_user(&address("carol")).await.expect("carol");
    let claimed: ClaimKeyPackagesResponse = h
        .http
        .post(h.url("/v1/key-packages/claim"))
        .bearer_auth(alice.account.token())
        .json(&ClaimKeyPackagesRequest {
            address: address("carol"),
        })
        .send()
        .await
        .expect("claim")
        .json()
        .await
        .expect("json");
    let (packages, alerts) = alice
        .account
        .verify_claimed(&address("carol"), &claimed.key_packages, true)
        .expect("carol's key packages check out");
    assert!(alerts.is_empty(), "{alerts:?}");
    let prepared = alice
        .account
        .prepare_commit(conv, &packages, &[])
        .expect("commit");
    if post {
        let resp = h
            .http
            .post(h.url(&format!(
                "/v1/groups/{}/commits",
                B64::encode(&prepared.group_id)
            )))
            .bearer_auth(alice.account.token())
            .json(&prepared.request)
            .send()
            .await
            .expect("post");
        assert!(resp.status().is_success(), "{}", resp.status());
    }
}

async fn everyone_reads(alice: &mut Client, conv: &str, readers: &mut [&mut Client]) {
    for r in readers.iter_mut() {
        let outcomes = r.sync().await.expect("sync");
        assert!(alerts(&outcomes).is_empty(), "{:?}", alerts(&outcomes));
    }
    alice
        .send_text(conv, "all of us, same epoch")
        .await
        .expect("send");
    for r in readers.iter_mut() {
        let outcomes = r.sync().await.expect("sync");
        assert!(alerts(&outcomes).is_empty(), "{:?}", alerts(&outcomes));
        assert_eq!(texts(&outcomes), ["all of us, same epoch"]);
    }
}

/// Alice and Bob in a group; Alice stages a commit adding Carol (posted to the server or not),
/// dies, restarts, and adds Dave. Returns everyone, the conversation and how the add went.
async fn crash_mid_commit_then_add_dave(
    h: &Harness,
    posted: bool,
) -> (
    [Client; 4],
    String,
    Result<missive_core::client::CommitOutcome, missive_core::CoreError>,
) {
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let carol = h.user("carol").await;
    let dave = h.user("dave").await;
    let conv = alice
        .create_conversation(Some("crash".into()), None, &[address("bob")])
        .await
        .expect("group");
    bob.sync().await.expect("bob joins");

    commit_then_crash(h, &mut alice, &conv, posted).await;
    drop(alice);
    let mut alice = Client::open(h.home("alice")).expect("alice restarts");
    let outcome = alice.add_members(&conv, &[address("dave")]).await;
    ([alice, bob, carol, dave], conv, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_accepted_while_its_client_died_is_merged_not_replaced() {
    let h = Harness::new();
    let ([mut alice, mut bob, mut carol, mut dave], conv, outcome) =
        crash_mid_commit_then_add_dave(&h, true).await;
    let outcome = outcome.expect("the next change goes on top of the accepted one");
    assert_eq!(outcome.attempts, 1, "no epoch race with herself");
    assert_eq!(
        alice.account.members(&conv).expect("members"),
        [
            address("alice"),
            address("bob"),
            address("carol"),
            address("dave")
        ]
    );
    everyone_reads(&mut alice, &conv, &mut [&mut bob, &mut carol, &mut dave]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_the_server_never_got_is_replaced_after_a_restart() {
    let h = Harness::new();
    let ([mut alice, mut bob, _carol, mut dave], conv, outcome) =
        crash_mid_commit_then_add_dave(&h, false).await;
    let outcome = outcome.expect("add dave");
    assert_eq!(outcome.attempts, 1);
    assert_eq!(
        alice.account.members(&conv).expect("members"),
        [address("alice"), address("bob"), address("dave")]
    );
    everyone_reads(&mut alice, &conv, &mut [&mut bob, &mut dave]).await;
}

/// A sender killed mid-send, twenty times: each time it has encrypted (and durably saved) a
/// few messages, posted only some, and never recorded their answers. After each restart it
/// goes on sending; receivers decrypt every message that reached the server, none twice, with
/// no alert, and the messages that never left are simply absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_killed_mid_send_twenty_times_leaves_nothing_undecryptable() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let mut carol = h.user("carol").await;
    let conv = alice
        .create_conversation(
            Some("kills".into()),
            None,
            &[address("bob"), address("carol")],
        )
        .await
        .expect("group");
    bob.sync().await.expect("bob joins");
    carol.sync().await.expect("carol joins");

    let mut delivered = Vec::new();
    for round in 0..20 {
        let texts: Vec<String> = (0..3)
            .map(|i| format!("round {round} message {i}"))
            .collect();
        let prepared = alice.prepare_texts(&conv, &texts).expect("encrypt");
        // The crash comes after `round % 4` of the three were posted.
        for p in prepared.iter().take(round % 4) {
            alice.transport().post_prepared(p).await.expect("post");
            delivered.push(p.message.id.clone());
        }
        drop(alice);
        alice = Client::open(h.home("alice")).expect("alice restarts");
        // Sometimes the restarted sender writes at once, sometimes it syncs first.
        if round % 3 == 0 {
            alice.sync().await.expect("sync");
        }
        let m = alice
            .send_text(&conv, &format!("after restart {round}"))
            .await
            .expect("send after restart");
        delivered.push(m.id);
    }
    for reader in [&mut bob, &mut carol] {
        let outcomes = reader.sync().await.expect("sync");
        assert!(alerts(&outcomes).is_empty(), "{:?}", alerts(&outcomes));
        let got: Vec<String> = reader
            .account
            .store()
            .messages(&conv)
            .expect("history")
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(got, delivered, "every posted message, once, in order");
    }
}
