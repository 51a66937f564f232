//! Signed device lists against a hostile server (played by writing into its database): a
//! device the user revoked and the server lists again, an old list served again, a list the
//! server signed itself, a listed device hidden from a claim. Each is refused or reported with
//! an alert, nothing is added, and honest messages still go through. Then the server's own
//! checks of what it is asked to store.

use missive_core::client::Client;
use missive_core::error::CoreError;
use missive_core::AlertCode;
use missive_proto::api::PublishDeviceListRequest;
use missive_proto::devicelist::{DeviceList, ListedDevice};
use missive_proto::{ErrorBody, ErrorCode, B64};
use rusqlite::params;

use crate::devices::link;
use crate::support::*;

/// Alice (a laptop) with a phone linked, whose key packages the server copies aside.
async fn alice_with_phone(h: &Harness) -> (Client, Client, Vec<(Vec<u8>, Vec<u8>)>) {
    let mut alice = h.user("alice").await;
    let phone = link(h, &mut alice, "alice-phone").await;
    let kept = h
        .db()
        .prepare("SELECT hash_ref, data FROM key_packages WHERE device_id = ?1")
        .expect("query")
        .query_map([phone.account.device_id()], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("packages");
    assert!(!kept.is_empty());
    (alice, phone, kept)
}

/// The server brings a revoked device back: active again, listed for claims, its key
/// packages restored.
fn bring_back(h: &Harness, device_id: &str, packages: &[(Vec<u8>, Vec<u8>)]) {
    let db = h.db();
    db.execute(
        "UPDATE devices SET revoked_at = NULL, listed = 1 WHERE device_id = ?1",
        [device_id],
    )
    .expect("un-revoke");
    for (hash_ref, data) in packages {
        db.execute(
            "INSERT OR IGNORE INTO key_packages (device_id, hash_ref, data) VALUES (?1, ?2, ?3)",
            params![device_id, hash_ref, data],
        )
        .expect("restore a package");
    }
}

#[tokio::test]
async fn a_revoked_device_the_server_lists_again_is_never_added() {
    let h = Harness::new();
    let (mut alice, phone, kept) = alice_with_phone(&h).await;
    let phone_id = phone.account.device_id();
    drop(phone);
    alice.revoke_device(&phone_id).await.expect("revoke");
    bring_back(&h, &phone_id, &kept);
    // The server shows the phone as an active device of alice again...
    let listed = alice.devices().await.expect("devices");
    assert!(listed
        .iter()
        .any(|d| d.id == phone_id && d.certified && !d.listed));

    // ...and hands out its key package to bob, who meets alice now: his client refuses the
    // phone, not alice.
    let mut bob = h.user("bob").await;
    let dm = bob
        .dm(&address("alice"), "hello alice")
        .await
        .expect("a conversation with alice's real device")
        .conversation;
    assert!(
        bob.account
            .conversations_with_device(&phone_id)
            .expect("members")
            .is_empty(),
        "the revoked phone was added"
    );
    assert!(
        stored_alerts(&bob).contains(&AlertCode::UnlistedDevice.as_str().to_owned()),
        "{:?}",
        stored_alerts(&bob)
    );
    assert_eq!(
        texts(&alice.sync().await.expect("sync")),
        ["hello alice"],
        "alice's real device reads it"
    );
    // The phone's stolen state, with its token working again, gets nothing of it.
    let mut stolen = Client::open(h.home("alice-phone")).expect("stolen state");
    let outcomes = stolen.sync().await.unwrap_or_default();
    assert!(texts(&outcomes).is_empty(), "{outcomes:?}");
    assert!(stolen
        .account
        .store()
        .conversation(&dm)
        .expect("read")
        .is_none());

    // Alice's own other devices refuse it too: a conversation she creates leaves it out.
    let mut carol = h.user("carol").await;
    let group = alice
        .create_conversation(Some("team".into()), None, &[address("carol")])
        .await
        .expect("group");
    assert!(alice
        .account
        .conversations_with_device(&phone_id)
        .expect("members")
        .is_empty());
    carol.sync().await.expect("carol joins");
    alice.send_text(&group, "team news").await.expect("send");
    assert_eq!(texts(&carol.sync().await.expect("sync")), ["team news"]);
}

#[tokio::test]
async fn an_older_device_list_is_refused_and_messages_still_flow() {
    let h = Harness::new();
    let (mut alice, phone, kept) = alice_with_phone(&h).await;
    let phone_id = phone.account.device_id();
    drop(phone);
    let mut bob = h.user("bob").await;
    let dm = bob
        .dm(&address("alice"), "hi")
        .await
        .expect("dm")
        .conversation;
    let old_list: Vec<u8> = h
        .db()
        .query_row(
            "SELECT device_list FROM users WHERE address = ?1",
            [address("alice")],
            |r| r.get(0),
        )
        .expect("the list bob saw");
    alice.sync().await.expect("alice joins");
    alice.revoke_device(&phone_id).await.expect("revoke");
    bob.sync().await.expect("bob sees the phone removed");
    bob.fetch_user(&address("alice"))
        .await
        .expect("bob sees the new list");

    // The server serves the list from before the revocation, and the phone with it.
    h.db()
        .execute(
            "UPDATE users SET device_list = ?1 WHERE address = ?2",
            params![old_list, address("alice")],
        )
        .expect("roll back");
    bring_back(&h, &phone_id, &kept);
    let refused = bob
        .create_conversation(Some("plans".into()), None, &[address("alice")])
        .await;
    match refused {
        Err(CoreError::Refused(a)) => assert_eq!(a.code, AlertCode::DeviceListRollback, "{a}"),
        other => panic!("expected a rollback refusal, got {other:?}"),
    }
    assert_eq!(
        bob.account.store().conversations().expect("list").len(),
        1,
        "nothing was created"
    );
    assert!(stored_alerts(&bob).contains(&AlertCode::DeviceListRollback.as_str().to_owned()));
    // The conversation they have goes on.
    bob.send_text(&dm, "still here").await.expect("send");
    assert_eq!(texts(&alice.sync().await.expect("sync")), ["still here"]);
}

#[tokio::test]
async fn a_device_list_the_server_signed_itself_is_refused() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let mut bob = h.user("bob").await;
    let real: Vec<u8> = h
        .db()
        .query_row(
            "SELECT device_list FROM users WHERE address = ?1",
            [address("alice")],
            |r| r.get(0),
        )
        .expect("alice's list");
    let mut tampered = DeviceList::from_bytes(&real).expect("parses");
    tampered.version += 1;
    tampered.devices.push(ListedDevice {
        device_id: [7; 16],
        device_key: [7; 32],
    });
    tampered.devices.sort();
    // One signed by a key of the server's, one of alice's changed without a new signature.
    let (_, made_up) = server_made_identity(&h, &address("alice"));
    let alice_key: [u8; 32] = alice.account.identity_key();
    for forged in [made_up, tampered.to_bytes()] {
        h.db()
            .execute(
                "UPDATE users SET device_list = ?1 WHERE address = ?2",
                params![forged, address("alice")],
            )
            .expect("forge");
        // Key transparency catches it first: the log does not hold it.
        match bob.dm(&address("alice"), "secret").await {
            Err(CoreError::Refused(a)) => {
                assert_eq!(a.code, AlertCode::TransparencyFailed, "{a}")
            }
            other => panic!("expected a transparency refusal, got {other:?}"),
        }
        // Logged too (for all to see), its signature still gives it away.
        log_leaf(&h, &address("alice"), alice_key, &forged);
        match bob.dm(&address("alice"), "secret").await {
            Err(CoreError::Refused(a)) => assert_eq!(a.code, AlertCode::ForgedDeviceList, "{a}"),
            other => panic!("expected a forged list refusal, got {other:?}"),
        }
    }
    assert!(bob
        .account
        .store()
        .conversations()
        .expect("list")
        .is_empty());
    let expected = [AlertCode::TransparencyFailed, AlertCode::ForgedDeviceList].map(|c| c.as_str());
    assert_eq!(stored_alerts(&bob), [expected, expected].concat());
    drop(alice);
}

#[tokio::test]
async fn a_listed_device_hidden_from_a_claim_is_reported() {
    let h = Harness::new();
    let (mut alice, phone, _) = alice_with_phone(&h).await;
    // The server keeps the phone out of claims, though alice's signed list names it.
    h.db()
        .execute(
            "UPDATE devices SET listed = 0 WHERE device_id = ?1",
            [phone.account.device_id()],
        )
        .expect("hide");
    let mut bob = h.user("bob").await;
    bob.dm(&address("alice"), "hello")
        .await
        .expect("the laptop is reached");
    assert_eq!(
        stored_alerts(&bob),
        [AlertCode::HiddenDevice.as_str()],
        "bob is told"
    );
    assert_eq!(texts(&alice.sync().await.expect("sync")), ["hello"]);
}

async fn put_list(h: &Harness, client: &Client, list: Vec<u8>) -> (u16, Option<ErrorCode>) {
    let resp = h
        .http
        .put(h.url("/v1/device-list"))
        .bearer_auth(client.account.token())
        .json(&PublishDeviceListRequest {
            device_list: B64(list),
        })
        .send()
        .await
        .expect("put");
    let status = resp.status().as_u16();
    let code = resp.json::<ErrorBody>().await.ok().map(|b| b.code);
    (status, code)
}

#[tokio::test]
async fn the_server_stores_only_lists_it_can_check() {
    let h = Harness::new();
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let me = alice.account.listed_self();
    let someone = ListedDevice {
        device_id: [9; 16],
        device_key: [9; 32],
    };
    let next = alice.account.next_device_list(&[], &[], &[]).expect("v2");
    let stale = {
        let list = DeviceList::from_bytes(&next).expect("parses");
        assert_eq!(list.version, 2);
        list
    };
    for (list, status, code) in [
        // Bob's list, signed by bob's key, sent by alice.
        (
            bob.account.next_device_list(&[], &[], &[]).expect("bob's"),
            400,
            ErrorCode::InvalidDeviceList,
        ),
        // A device the server does not know.
        (
            alice
                .account
                .next_device_list(&[], &[someone], &[])
                .expect("list"),
            400,
            ErrorCode::InvalidDeviceList,
        ),
        // Without the device sending it.
        (
            alice
                .account
                .next_device_list(&[], &[], &[me.device_id_hex()])
                .expect("list"),
            400,
            ErrorCode::InvalidDeviceList,
        ),
        (b"garbage".to_vec(), 400, ErrorCode::InvalidDeviceList),
    ] {
        assert_eq!(put_list(&h, &alice, list).await, (status, Some(code)));
    }
    assert_eq!(put_list(&h, &alice, next.clone()).await.0, 200);
    // The same version again, or a lower one: stale.
    assert_eq!(
        put_list(&h, &alice, stale.to_bytes()).await,
        (409, Some(ErrorCode::StaleDeviceList))
    );
    // Revoking a device the list still names is refused.
    let mut alice = alice;
    let phone = link(&h, &mut alice, "alice-phone").await;
    // (Alice's client signs version 2 again, finds the server at 2, and signs 3.)
    let resp = h
        .http
        .delete(h.url(&format!("/v1/devices/{}", phone.account.device_id())))
        .bearer_auth(alice.account.token())
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 409);
    let body: ErrorBody = resp.json().await.expect("error body");
    assert_eq!(body.code, ErrorCode::DeviceListed);
}

#[tokio::test]
async fn a_commit_adding_a_revoked_device_is_refused_by_the_other_members() {
    use openmls::prelude::tls_codec::Deserialize as _;
    use openmls::prelude::{MlsMessageBodyIn, MlsMessageIn, OpenMlsProvider, ProtocolVersion};

    let h = Harness::new();
    let (mut alice, phone, kept) = alice_with_phone(&h).await;
    let phone_id = phone.account.device_id();
    drop(phone);
    alice.revoke_device(&phone_id).await.expect("revoke");
    let mut bob = h.user("bob").await;
    let dm = bob
        .dm(&address("alice"), "hello")
        .await
        .expect("dm")
        .conversation;
    alice.sync().await.expect("alice joins");
    bring_back(&h, &phone_id, &kept);

    // A client of alice's that does not check lists (an old or tampered one) adds the revoked
    // phone with one of its packages the server kept, and the server accepts the commit.
    let provider = missive_core::provider::Provider::new().expect("provider");
    let MlsMessageBodyIn::KeyPackage(kp) = MlsMessageIn::tls_deserialize_exact(&kept[0].1)
        .expect("a key package")
        .extract()
    else {
        panic!("not a key package");
    };
    let kp = kp
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .expect("valid");
    let prepared = alice
        .account
        .prepare_commit(&dm, &[kp], &[])
        .expect("commit");
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

    // Bob's client refuses it: the phone is not on alice's signed list.
    let outcomes = bob.sync().await.expect("sync");
    let codes: Vec<AlertCode> = alerts(&outcomes).into_iter().map(|a| a.code).collect();
    assert_eq!(codes, [AlertCode::UnlistedDevice], "{outcomes:?}");
    assert!(bob
        .account
        .conversations_with_device(&phone_id)
        .expect("members")
        .is_empty());
}
