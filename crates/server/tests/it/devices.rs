//! Linked devices at the API level: a link through the relay, the relay's refusals, and a
//! revocation after which the revoked device's stolen state reads nothing new.

use std::time::Duration;

use missive_core::account::Outcome;
use missive_core::client::Client;
use missive_core::link::{Kind, LinkCode};
use missive_core::AlertCode;
use missive_proto::api::{EventKind, LinkSealed};
use missive_proto::B64;

use crate::support::*;

/// Links a new device `name` to `client`'s account; returns it.
pub async fn link(h: &Harness, client: &mut Client, name: &str) -> Client {
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let url = h.server.url();
    let store = h.home(name);
    let joining = tokio::spawn(async move {
        let code = rx.await.expect("the code");
        Client::join(store, &url, &code, Duration::from_secs(30)).await
    });
    let mut tx = Some(tx);
    client
        .link(
            Duration::from_secs(30),
            Duration::from_secs(86_400),
            |code| {
                let _ = tx.take().expect("shown once").send(code.text());
            },
        )
        .await
        .expect("link");
    joining.await.expect("join task").expect("join").client
}

#[tokio::test]
async fn a_revoked_device_is_cut_off_and_its_stolen_state_reads_nothing_new() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let dm = alice
        .dm(&address("bob"), "hello")
        .await
        .expect("dm")
        .conversation;
    bob.sync().await.expect("bob joins");
    let mut phone = link(&h, &mut alice, "alice-phone").await;
    bob.send_text(&dm, "to both devices").await.expect("send");
    assert_eq!(
        texts(&phone.sync().await.expect("sync")),
        ["to both devices"]
    );
    let phone_cursor = phone.account.cursor();

    let removed = alice
        .revoke_device(&phone.account.device_id())
        .await
        .expect("revoke");
    assert_eq!(removed, 1);
    let devices = alice.devices().await.expect("devices");
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert!(
        !bob.account.members(&dm).expect("members").is_empty(),
        "bob is still in the conversation"
    );

    bob.send_text(&dm, "after the revocation")
        .await
        .expect("send");
    assert_eq!(
        texts(&alice.sync().await.expect("sync")),
        ["to both devices", "after the revocation"]
    );
    // The token is dead.
    let e = phone.sync().await.expect_err("revoked");
    assert_eq!(
        e.server_code(),
        Some(missive_proto::ErrorCode::Unauthorized),
        "{e}"
    );
    let phone_id = phone.account.device_id();
    drop(phone);
    // Someone holding the phone's state and the ciphertext (taken from the server) reads
    // nothing: neither with the removal commit applied nor without it.
    let events = h.raw_events(&alice, phone_cursor).await;
    let message_only: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Message)
        .cloned()
        .collect();
    assert_eq!(message_only.len(), 1);
    for feed in [message_only, events] {
        let stolen = Client::open(h.home("alice-phone")).expect("stolen state");
        let mut stolen = stolen;
        let outcomes = stolen.account.process_events(&feed).unwrap_or_default();
        assert!(
            !outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Message(m) if m.text == "after the revocation")),
            "the revoked device read a message sent after its revocation: {outcomes:?}"
        );
    }
    // Revoking again finds nothing left to do; revoking oneself is refused.
    assert!(alice.revoke_device(&phone_id).await.is_err());
    assert!(alice
        .revoke_device(&alice.account.device_id())
        .await
        .is_err());
}

#[tokio::test]
async fn the_relay_refuses_strangers_and_forged_messages() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mallory = h.user("mallory").await;
    let channel = hex::encode(LinkCode::generate().channel());
    let http = reqwest::Client::new();
    let create = |token: String, channel: String| {
        http.post(h.url("/v1/links"))
            .bearer_auth(token)
            .json(&serde_json::json!({"channel": channel, "ttl_secs": 60}))
            .send()
    };
    let status = create(alice.account.token().to_owned(), channel.clone())
        .await
        .expect("create")
        .status();
    assert_eq!(status, 201);
    // Another user cannot read or grant alice's link.
    let seen = http
        .get(h.url(&format!("/v1/links/{channel}")))
        .bearer_auth(mallory.account.token())
        .send()
        .await
        .expect("get");
    assert_eq!(seen.status(), 404);
    // Malformed channels and absurd lifetimes are refused with stable codes.
    for (body_channel, ttl) in [("zz", 60), (&channel[..10], 60), (&*"a".repeat(64), 0)] {
        let resp = http
            .post(h.url("/v1/links"))
            .bearer_auth(alice.account.token())
            .json(&serde_json::json!({"channel": body_channel, "ttl_secs": ttl}))
            .send()
            .await
            .expect("create");
        assert_eq!(resp.status(), 400, "{body_channel} {ttl}");
    }
    // The server (or anyone who learned the channel id but not the code) offers a device of
    // its own on a live link: the linking device refuses the offer, links nothing, and says
    // why; the genuine new device, coming second, is told the code is spent.
    let (tx, rx) = tokio::sync::oneshot::channel::<(String, String)>();
    let forger = {
        let http = http.clone();
        let base = h.server.url();
        tokio::spawn(async move {
            let (channel, _) = rx.await.expect("channel");
            let forged = LinkCode::generate().seal(Kind::Offer, b"{}").expect("seal");
            http.put(format!("{base}/v1/links/{channel}/offer"))
                .json(&LinkSealed {
                    sealed: B64(forged),
                })
                .send()
                .await
                .expect("offer")
                .status()
        })
    };
    let mut tx = Some(tx);
    let mut shown = String::new();
    let result = alice
        .link(Duration::from_secs(30), Duration::from_secs(60), |code| {
            shown = code.text();
            let _ = tx
                .take()
                .expect("once")
                .send((hex::encode(code.channel()), code.text()));
        })
        .await;
    assert_eq!(forger.await.expect("forger"), 204);
    match result {
        Err(missive_core::CoreError::Refused(alert)) => {
            assert_eq!(alert.code, AlertCode::ForgedLink, "{alert}")
        }
        other => panic!("a forged offer must be refused: {other:?}"),
    }
    let genuine = Client::join(
        h.home("late"),
        &h.server.url(),
        &shown,
        Duration::from_secs(5),
    )
    .await
    .err()
    .expect("the spent code is refused");
    assert_eq!(
        genuine.server_code(),
        Some(missive_proto::ErrorCode::LinkNotFound),
        "{genuine}"
    );
    assert_eq!(alice.devices().await.expect("devices").len(), 1);
}

#[tokio::test]
async fn a_new_device_that_dies_after_its_grant_is_revoked_not_left_half_linked() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let _bob = h.user("bob").await;
    alice.dm(&address("bob"), "hello").await.expect("dm");
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let base = h.server.url();
    // A new device that offers itself, receives its grant, and dies before sending its key
    // packages.
    let dying = tokio::spawn(async move {
        let code = LinkCode::parse(&rx.await.expect("code")).expect("code");
        let channel = hex::encode(code.channel());
        let (_key, offer) = missive_core::account::Account::new_link_offer().expect("offer");
        let http = reqwest::Client::new();
        let put = http
            .put(format!("{base}/v1/links/{channel}/offer"))
            .json(&LinkSealed {
                sealed: B64(code.seal_json(Kind::Offer, &offer).expect("seal")),
            })
            .send()
            .await
            .expect("offer");
        assert_eq!(put.status(), 204);
        loop {
            let status: missive_proto::api::LinkGrantStatus = http
                .get(format!("{base}/v1/links/{channel}/grant"))
                .send()
                .await
                .expect("grant")
                .json()
                .await
                .expect("json");
            if let Some(grant) = status.grant {
                return grant.device_id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut tx = Some(tx);
    let e = alice
        .link(Duration::from_secs(3), Duration::from_secs(60), |code| {
            let _ = tx.take().expect("once").send(code.text());
        })
        .await
        .expect_err("the new device never finished");
    assert!(e.to_string().contains("revoked"), "{e}");
    let half_linked = dying.await.expect("the dying device got its grant");
    let devices = alice.devices().await.expect("devices");
    assert!(
        devices.iter().all(|d| d.id != half_linked),
        "the half-linked device is gone: {devices:?}"
    );
    assert_eq!(devices.len(), 1);
}

#[tokio::test]
async fn a_device_missing_from_a_new_conversation_is_added_by_its_own_user() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let mut phone = link(&h, &mut alice, "alice-phone").await;
    // Bob's claim does not see alice's phone (the server hides it, or the phone was being
    // linked at that moment): bob's new conversation has alice's laptop only.
    let db = h.db();
    let hide = |hidden: bool| {
        db.execute(
            "UPDATE devices SET revoked_at = CASE WHEN ?1 THEN 1 ELSE NULL END \
             WHERE device_id = ?2",
            rusqlite::params![hidden, phone.account.device_id()],
        )
        .expect("hide");
    };
    hide(true);
    let dm = bob
        .dm(&address("alice"), "first")
        .await
        .expect("dm")
        .conversation;
    let cabinet = bob
        .create_conversation(Some("Cabinet".into()), None, &[address("alice")])
        .await
        .expect("group");
    hide(false);
    assert_eq!(
        bob.account
            .conversations_with_device(&phone.account.device_id())
            .expect("bob's view"),
        Vec::<String>::new()
    );
    // Alice's laptop joins and adds her phone itself.
    assert_eq!(texts(&alice.sync().await.expect("sync")), ["first"]);
    assert_eq!(
        alice
            .account
            .own_devices_in(&dm)
            .expect("own devices")
            .len(),
        2
    );
    let outcomes = phone.sync().await.expect("phone joins");
    assert!(
        outcomes.contains(&Outcome::Joined(dm.clone())),
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&Outcome::Joined(cabinet.clone())));
    // Re-added by its own user, the phone learns what each conversation is, as a device
    // added by anyone else does: the group's name, and who the one-to-one is with.
    let record = |id: &str| {
        phone
            .account
            .store()
            .conversation(id)
            .expect("store")
            .expect("joined")
    };
    assert_eq!(record(&cabinet).name.as_deref(), Some("Cabinet"));
    assert_eq!(record(&dm).dm_peer, Some(address("bob")));
    bob.send_text(&dm, "to all of alice").await.expect("send");
    assert_eq!(
        texts(&phone.sync().await.expect("sync")),
        ["to all of alice"]
    );
    assert_eq!(
        texts(&alice.sync().await.expect("sync")),
        ["to all of alice"]
    );
    assert!(alerts(&bob.sync().await.expect("sync")).is_empty());
}

#[tokio::test]
async fn the_history_window_bounds_what_a_new_device_receives() {
    let h = Harness::new();
    let mut alice = h.user("alice").await;
    let _bob = h.user("bob").await;
    let dm = alice
        .dm(&address("bob"), "old news")
        .await
        .expect("dm")
        .conversation;
    // A window of zero: the new device joins the conversation but gets no message of it.
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let url = h.server.url();
    let store = h.home("alice-tablet");
    let joining = tokio::spawn(async move {
        Client::join(
            store,
            &url,
            &rx.await.expect("code"),
            Duration::from_secs(30),
        )
        .await
    });
    let mut tx = Some(tx);
    let linked = alice
        .link(Duration::from_secs(30), Duration::ZERO, |code| {
            let _ = tx.take().expect("once").send(code.text());
        })
        .await
        .expect("link");
    assert_eq!((linked.conversations, linked.messages), (1, 0));
    let tablet = joining.await.expect("join task").expect("join");
    assert_eq!((tablet.conversations, tablet.messages), (1, 0));
    assert!(tablet
        .client
        .account
        .store()
        .messages(&dm)
        .expect("history")
        .is_empty());
}
