//! The behaviour every [`Store`] backend must have, as a test suite over the trait alone.
//! A backend runs it with [`store_conformance!`](crate::store_conformance), given an async
//! function that returns a fresh, empty store.

use missive_proto::api::EventKind;

use crate::store::*;

fn user(address: &str, device: &str) -> NewUser {
    NewUser {
        address: address.to_owned(),
        identity_key: vec![1; 32],
        device: NewDevice {
            device_id: device.to_owned(),
            certificate: vec![2; 8],
            token_hash: [3; 32],
        },
    }
}

fn group(id: &[u8], members: &[&str]) -> NewGroup {
    NewGroup {
        group_id: id.to_vec(),
        epoch: 0,
        state: b"state-0".to_vec(),
        group_info: b"info-0".to_vec(),
        members: members.iter().map(|m| m.to_string()).collect(),
    }
}

fn commit(id: &[u8], expected: u64, sender: &str, added: &[&str], removed: &[&str]) -> CommitWrite {
    CommitWrite {
        group_id: id.to_vec(),
        expected_epoch: expected,
        new_epoch: expected + 1,
        state: format!("state-{}", expected + 1).into_bytes(),
        group_info: format!("info-{}", expected + 1).into_bytes(),
        sender: sender.to_owned(),
        commit: b"commit".to_vec(),
        joined: None,
        welcome: (!added.is_empty()).then(|| {
            (
                b"welcome".to_vec(),
                added.iter().map(|a| a.to_string()).collect(),
            )
        }),
        removed: removed.iter().map(|r| r.to_string()).collect(),
        now_ms: 1,
    }
}

fn message(id: &[u8], sender: &str, epoch: u64, text: &str) -> MessageWrite {
    MessageWrite {
        group_id: id.to_vec(),
        sender: sender.to_owned(),
        epoch,
        payload: text.as_bytes().to_vec(),
        now_ms: 1,
    }
}

/// Invites are single use, expiring and bound to one address; addresses are unique.
pub async fn invites(store: &dyn Store) {
    store
        .create_invite("a@x.org", [1; 32], 100)
        .await
        .expect("invite");
    store
        .create_invite("b@x.org", [2; 32], 10)
        .await
        .expect("invite");
    store
        .create_invite("c@x.org", [3; 32], 100)
        .await
        .expect("invite");
    let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::InviteInvalid));
    assert!(
        invalid(
            store
                .register(user("z@x.org", "d0"), Some([1; 32]), 50)
                .await
        ),
        "another address"
    );
    assert!(
        invalid(
            store
                .register(user("b@x.org", "d0"), Some([2; 32]), 50)
                .await
        ),
        "expired"
    );
    assert!(
        invalid(
            store
                .register(user("a@x.org", "d0"), Some([9; 32]), 50)
                .await
        ),
        "unknown"
    );
    store
        .register(user("a@x.org", "d1"), Some([1; 32]), 50)
        .await
        .expect("registers");
    assert!(
        invalid(
            store
                .register(user("a@x.org", "d2"), Some([1; 32]), 50)
                .await
        ),
        "reused"
    );
    assert!(matches!(
        store
            .register(user("c@x.org", "d1"), Some([3; 32]), 50)
            .await,
        Err(StoreError::DeviceExists)
    ));
    assert!(matches!(
        store.register(user("a@x.org", "d3"), None, 50).await,
        Err(StoreError::AddressTaken)
    ));
    // A refused registration consumed nothing: c's invite still works.
    store
        .register(user("c@x.org", "d4"), Some([3; 32]), 50)
        .await
        .expect("registers");
    let a = store
        .user("a@x.org")
        .await
        .expect("read")
        .expect("a exists");
    assert_eq!(a.devices, [("d1".to_owned(), vec![2; 8])]);
    assert!(store.device_auth("d1").await.expect("read").is_some());
    assert!(store.device_auth("nope").await.expect("read").is_none());
}

/// A second device is added, then revoked: no token, no listing, no key packages; only its
/// own user can revoke it, once.
pub async fn devices(store: &dyn Store) {
    store
        .register(user("a@x.org", "d1"), None, 1)
        .await
        .expect("a");
    store
        .register(user("b@x.org", "e1"), None, 1)
        .await
        .expect("b");
    let second = NewDevice {
        device_id: "d2".into(),
        certificate: vec![3; 8],
        token_hash: [4; 32],
    };
    store.add_device("a@x.org", second, 2).await.expect("adds");
    store
        .add_key_packages("d2", vec![(vec![1], vec![1])], Some(vec![2]))
        .await
        .expect("packages");
    let listed = |u: crate::store::UserRecord| -> Vec<String> {
        u.devices.into_iter().map(|(d, _)| d).collect()
    };
    let a = store.user("a@x.org").await.expect("read").expect("a");
    assert_eq!(listed(a), ["d1", "d2"]);
    // Authenticated once before its revocation (a store may remember that).
    assert!(store.device_auth("d2").await.expect("read").is_some());
    assert!(matches!(
        store.revoke_device("b@x.org", "d2", 3).await,
        Err(StoreError::NoDevice)
    ));
    store
        .revoke_device("a@x.org", "d2", 3)
        .await
        .expect("revokes");
    assert!(matches!(
        store.revoke_device("a@x.org", "d2", 4).await,
        Err(StoreError::NoDevice)
    ));
    assert!(store.device_auth("d2").await.expect("read").is_none());
    let a = store.user("a@x.org").await.expect("read").expect("a");
    assert_eq!(listed(a), ["d1"]);
    assert_eq!(
        store.key_package_count("d2").await.expect("count"),
        (0, false)
    );
    // Claims hand out packages of active devices only (d2 stays listed: a list is the user's
    // word, the revocation the server's).
    store
        .publish_device_list(
            "a@x.org",
            1,
            vec![1],
            vec!["d1".into(), "d2".into()],
            vec![],
        )
        .await
        .expect("list");
    store
        .add_key_packages("d1", vec![(vec![2], vec![5])], None)
        .await
        .expect("packages");
    let claimed = store.claim_key_packages("a@x.org").await.expect("claim");
    assert_eq!(claimed, [("d1".to_owned(), vec![5])]);
}

/// A device joining by external commit is a member from that commit on, with no Welcome.
pub async fn external_joins(store: &dyn Store) {
    let g = b"group-x";
    store.create_group(group(g, &["d1"])).await.expect("create");
    let mut join = commit(g, 0, "d9", &[], &[]);
    join.joined = Some("d9".into());
    store.commit(join).await.expect("join");
    let mut members = store.group_members(g).await.expect("members");
    members.sort();
    assert_eq!(members, ["d1", "d9"]);
    store
        .post_message(message(g, "d9", 1, "back"))
        .await
        .expect("the joiner posts");
    let kinds = |events: Vec<missive_proto::api::Event>| {
        events.into_iter().map(|e| e.kind).collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(store.events("d1", 0, 100).await.expect("events")),
        [EventKind::Commit, EventKind::Message]
    );
    assert_eq!(
        kinds(store.events("d9", 0, 100).await.expect("events")),
        [EventKind::Message],
        "the joiner made the commit; it gets what follows"
    );
}

/// A recovery record is kept per address, the latest replacing the earlier.
pub async fn recoveries(store: &dyn Store) {
    assert_eq!(store.recovery("a@x.org").await.expect("read"), None);
    store
        .put_recovery("a@x.org", [1; 32], b"first".to_vec(), 1)
        .await
        .expect("put");
    store
        .put_recovery("b@x.org", [2; 32], b"other".to_vec(), 1)
        .await
        .expect("put");
    store
        .put_recovery("a@x.org", [3; 32], b"second".to_vec(), 2)
        .await
        .expect("replace");
    assert_eq!(
        store.recovery("a@x.org").await.expect("read"),
        Some((vec![3; 32], b"second".to_vec()))
    );
    assert_eq!(
        store.recovery("b@x.org").await.expect("read"),
        Some((vec![2; 32], b"other".to_vec()))
    );
}

/// History segments are kept per address in order, within a quota.
pub async fn history_segments(store: &dyn Store) {
    store
        .register(user("a@x.org", "d1"), None, 1)
        .await
        .expect("a");
    for (n, segment) in [b"one".as_slice(), b"two", b"three"].iter().enumerate() {
        let index = store
            .add_history_segment("a@x.org", segment.to_vec(), 1, 11)
            .await
            .expect("append");
        assert_eq!(index, n as u64 + 1);
    }
    assert!(matches!(
        store
            .add_history_segment("a@x.org", b"four".to_vec(), 1, 11)
            .await,
        Err(StoreError::QuotaExceeded)
    ));
    assert_eq!(
        store
            .history_segments("a@x.org", 1, 10)
            .await
            .expect("read"),
        [(2, b"two".to_vec()), (3, b"three".to_vec())]
    );
    assert_eq!(
        store.history_segments("a@x.org", 0, 1).await.expect("read"),
        [(1, b"one".to_vec())]
    );
    assert!(store
        .history_segments("b@x.org", 0, 10)
        .await
        .expect("read")
        .is_empty());
}

/// A device list is stored only above the stored version, and served with the user.
pub async fn device_lists(store: &dyn Store) {
    store
        .register(user("a@x.org", "d1"), None, 1)
        .await
        .expect("a");
    let a = store.user("a@x.org").await.expect("read").expect("a");
    assert_eq!(a.device_list, None, "none until published");
    store
        .publish_device_list("a@x.org", 1, vec![1], vec!["d1".into()], vec![1])
        .await
        .expect("first");
    store
        .publish_device_list("a@x.org", 3, vec![3], vec!["d1".into()], vec![3])
        .await
        .expect("a version may skip");
    for stale in [1, 2, 3] {
        assert!(
            matches!(
                store
                    .publish_device_list("a@x.org", stale, vec![9], Vec::new(), vec![9])
                    .await,
                Err(StoreError::StaleDeviceList(3))
            ),
            "version {stale}"
        );
    }
    assert!(matches!(
        store
            .publish_device_list("nobody@x.org", 1, vec![1], Vec::new(), vec![])
            .await,
        Err(StoreError::NoUser)
    ));
    let a = store.user("a@x.org").await.expect("read").expect("a");
    assert_eq!(a.device_list, Some(vec![3]));
    // Claims hand out packages of listed devices only: d2 is not, until the next list.
    store
        .add_device("a@x.org", user("a@x.org", "d2").device, 2)
        .await
        .expect("adds");
    for d in ["d1", "d2"] {
        store
            .add_key_packages(d, vec![(d.as_bytes().to_vec(), vec![7])], None)
            .await
            .expect("packages");
    }
    let claimed = store.claim_key_packages("a@x.org").await.expect("claim");
    assert_eq!(claimed, [("d1".to_owned(), vec![7])]);
    store
        .publish_device_list("a@x.org", 4, vec![4], vec!["d2".into()], vec![4])
        .await
        .expect("d2 only");
    let claimed = store.claim_key_packages("a@x.org").await.expect("claim");
    assert_eq!(
        claimed,
        [("d2".to_owned(), vec![7])],
        "d1 is no longer listed"
    );
    // Each accepted list, and only those, went into the transparency log, in order.
    assert_eq!(
        store.kt_entries(0, 10).await.expect("entries"),
        [vec![1], vec![3], vec![4]]
    );
    assert_eq!(store.kt_entries(1, 1).await.expect("entries"), [vec![3]]);
    assert!(store.kt_entries(3, 10).await.expect("entries").is_empty());
    assert_eq!(store.kt_index("a@x.org", 3).await.expect("index"), Some(1));
    assert_eq!(store.kt_index("a@x.org", 2).await.expect("index"), None);
    assert_eq!(
        store.kt_entries_of("a@x.org").await.expect("entries"),
        [(0, vec![1]), (1, vec![3]), (2, vec![4])]
    );
    assert!(store
        .kt_entries_of("b@x.org")
        .await
        .expect("entries")
        .is_empty());
}

/// One key package per device per claim, never twice; then the last resort, reused.
pub async fn key_packages(store: &dyn Store) {
    store
        .register(user("a@x.org", "d1"), None, 1)
        .await
        .expect("registers");
    store
        .add_device("a@x.org", user("a@x.org", "d2").device, 2)
        .await
        .expect("second device");
    store
        .publish_device_list(
            "a@x.org",
            1,
            vec![1],
            vec!["d1".into(), "d2".into()],
            vec![],
        )
        .await
        .expect("list");
    let kps = |n: u8| (0..n).map(|i| (vec![i], vec![10 + i])).collect::<Vec<_>>();
    let count = store
        .add_key_packages("d1", kps(2), Some(vec![99]))
        .await
        .expect("add");
    assert_eq!(count, (2, true));
    // The same package again is stored once.
    assert_eq!(
        store
            .add_key_packages("d1", kps(2), None)
            .await
            .expect("add"),
        (2, true)
    );
    assert!(
        matches!(
            store.claim_key_packages("a@x.org").await,
            Err(StoreError::NoKeyPackage)
        ),
        "d2 has none"
    );
    store
        .add_key_packages("d2", vec![(vec![7], vec![77])], None)
        .await
        .expect("add");
    let claim = store.claim_key_packages("a@x.org").await.expect("claim");
    assert_eq!(
        claim,
        [("d1".to_owned(), vec![10]), ("d2".to_owned(), vec![77])]
    );
    let claim = store.claim_key_packages("d@x.org").await;
    assert!(matches!(claim, Err(StoreError::NoUser)));
    store
        .add_key_packages("d2", vec![], Some(vec![88]))
        .await
        .expect("last resort");
    let mut d1 = Vec::new();
    for _ in 0..3 {
        let claim = store.claim_key_packages("a@x.org").await.expect("claim");
        d1.push(claim[0].1.clone());
    }
    assert_eq!(d1, [vec![11], vec![99], vec![99]]);
    assert_eq!(
        store.key_package_count("d1").await.expect("count"),
        (0, true)
    );
}

/// Commits only at the current epoch; messages only from current members at it; every
/// device sees exactly the events of its membership ranges, in order.
pub async fn groups_and_events(store: &dyn Store) {
    let g = b"group-1";
    store
        .create_group(group(g, &["d1", "d2"]))
        .await
        .expect("create");
    assert!(matches!(
        store.create_group(group(g, &["d1"])).await,
        Err(StoreError::GroupExists)
    ));
    let m1 = store
        .post_message(message(g, "d1", 0, "m1"))
        .await
        .expect("m1");
    assert!(matches!(
        store.post_message(message(g, "d3", 0, "x")).await,
        Err(StoreError::NotMember)
    ));
    assert!(matches!(
        store.post_message(message(b"nowhere", "d1", 0, "x")).await,
        Err(StoreError::NoGroup)
    ));
    // d1 adds d3 and removes d2.
    let c1 = store
        .commit(commit(g, 0, "d1", &["d3"], &["d2"]))
        .await
        .expect("commit");
    assert_eq!(
        c1.seq,
        m1.seq + 1,
        "commits and messages share the group sequence"
    );
    assert!(matches!(
        store.commit(commit(g, 0, "d2", &[], &[])).await,
        Err(StoreError::StaleEpoch(1))
    ));
    assert!(matches!(
        store.post_message(message(g, "d1", 0, "late")).await,
        Err(StoreError::StaleEpoch(1))
    ));
    assert!(matches!(
        store.post_message(message(g, "d2", 1, "gone")).await,
        Err(StoreError::NotMember)
    ));
    store
        .post_message(message(g, "d3", 1, "m2"))
        .await
        .expect("m2");
    let record = store.group(g).await.expect("read").expect("group");
    assert_eq!((record.epoch, record.state), (1, b"state-1".to_vec()));
    assert_eq!(
        store.group_info(g).await.expect("read"),
        Some((1, b"info-1".to_vec()))
    );
    let mut members = store.group_members(g).await.expect("members");
    members.sort();
    assert_eq!(members, ["d1", "d3"]);

    let seen = |events: Vec<missive_proto::api::Event>| {
        events
            .into_iter()
            .map(|e| {
                (
                    e.kind,
                    String::from_utf8_lossy(e.payload.as_bytes()).into_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (msg, cmt, wel) = (EventKind::Message, EventKind::Commit, EventKind::Welcome);
    let s = |t: &str| t.to_owned();
    assert_eq!(
        seen(store.events("d1", 0, 100).await.expect("events")),
        [(msg, s("m1")), (cmt, s("commit")), (msg, s("m2"))]
    );
    assert_eq!(
        seen(store.events("d2", 0, 100).await.expect("events")),
        [(msg, s("m1")), (cmt, s("commit"))],
        "a removed device gets the commit that removed it, nothing after"
    );
    assert_eq!(
        seen(store.events("d3", 0, 100).await.expect("events")),
        [(wel, s("welcome")), (msg, s("m2"))],
        "an added device gets its Welcome and what follows"
    );
    // Cursors and limits.
    let all = store.events("d1", 0, 100).await.expect("events");
    let after_first = store.events("d1", all[0].id, 1).await.expect("events");
    assert_eq!(after_first.len(), 1);
    assert_eq!(after_first[0].id, all[1].id);
    store.ack("d1", all[2].id).await.expect("ack");
    store
        .ack("d1", all[0].id)
        .await
        .expect("an older ack is harmless");
}

fn new_blob(id: &str, owner: &str, group: &[u8], size: u64, now: u64) -> NewBlob {
    NewBlob {
        id: id.to_owned(),
        owner: owner.to_owned(),
        device: "d1".to_owned(),
        group_id: group.to_vec(),
        size,
        now,
        ttl: None,
    }
}

/// Blob records: quota per owner, progress, completion, and which blobs expire.
pub async fn blobs(store: &dyn Store) {
    store
        .register(user("a@x", "d1"), None, 0)
        .await
        .expect("register");
    store
        .register(user("b@x", "d2"), None, 0)
        .await
        .expect("register");
    store
        .create_group(group(b"g1", &["d1", "d2"]))
        .await
        .expect("group");
    store
        .create_group(group(b"g2", &["d1"]))
        .await
        .expect("group");

    store
        .create_blob(new_blob("b1", "a@x", b"g1", 600, 100), 1000)
        .await
        .expect("within quota");
    assert!(matches!(
        store
            .create_blob(new_blob("b2", "a@x", b"g1", 401, 100), 1000)
            .await,
        Err(StoreError::QuotaExceeded)
    ));
    // Another user's quota is their own.
    store
        .create_blob(new_blob("b3", "b@x", b"g1", 900, 100), 1000)
        .await
        .expect("b's own quota");
    store
        .create_blob(new_blob("b4", "a@x", b"g2", 400, 100), 1000)
        .await
        .expect("exactly at quota");

    let b1 = store.blob("b1").await.expect("read").expect("b1 exists");
    assert_eq!(
        b1,
        BlobRecord {
            id: "b1".into(),
            owner: "a@x".into(),
            device: "d1".into(),
            group_id: b"g1".to_vec(),
            size: 600,
            received: 0,
            complete: false,
            updated_at: 100,
        }
    );
    assert!(store.blob("nope").await.expect("read").is_none());
    store
        .blob_progress("b1", 600, true, 200)
        .await
        .expect("progress");
    store
        .blob_progress("b3", 300, false, 200)
        .await
        .expect("progress");
    let b1 = store.blob("b1").await.expect("read").expect("b1");
    assert_eq!((b1.received, b1.complete, b1.updated_at), (600, true, 200));

    // Idle uploads (b4, last touched at 100) and old complete blobs expire by their own clocks.
    let mut expired = store.expired_blobs(150, 150, 200).await.expect("expired");
    expired.sort();
    assert_eq!(expired, ["b4"]);
    let mut expired = store.expired_blobs(150, 250, 200).await.expect("expired");
    expired.sort();
    assert_eq!(expired, ["b1", "b4"]);
    // A blob kept only as long as its message: its ttl counts from its completion.
    store
        .create_blob(
            NewBlob {
                ttl: Some(60),
                ..new_blob("b6", "a@x", b"g1", 10, 100)
            },
            10_000,
        )
        .await
        .expect("create");
    let ttl_expired = |expired: Vec<String>| expired.contains(&"b6".to_owned());
    assert!(
        !ttl_expired(store.expired_blobs(0, 0, 1_000).await.expect("expired")),
        "unfinished"
    );
    store
        .blob_progress("b6", 10, true, 300)
        .await
        .expect("complete");
    assert!(!ttl_expired(
        store.expired_blobs(0, 0, 359).await.expect("expired")
    ));
    assert!(ttl_expired(
        store.expired_blobs(0, 0, 360).await.expect("expired")
    ));
    store.delete_blob("b6").await.expect("delete");
    // A group without members keeps no blobs.
    store
        .commit(commit(b"g2", 0, "d1", &[], &["d1"]))
        .await
        .expect("last member leaves");
    let mut expired = store.expired_blobs(0, 0, 0).await.expect("expired");
    expired.sort();
    assert_eq!(expired, ["b4"]);

    store.delete_blob("b4").await.expect("delete");
    assert!(store.blob("b4").await.expect("read").is_none());
    store
        .create_blob(new_blob("b5", "a@x", b"g1", 400, 300), 1000)
        .await
        .expect("deleting frees quota");
}

/// Generates one test per conformance check for a backend. `$new` is an async function
/// returning a fresh store (and anything that must outlive it, such as a temporary directory).
#[macro_export]
macro_rules! store_conformance {
    ($new:path) => {
        #[tokio::test]
        async fn conformance_invites() {
            let (_keep, store) = $new().await;
            $crate::conformance::invites(store.as_ref()).await;
        }
        #[tokio::test]
        async fn conformance_devices() {
            let (_keep, store) = $new().await;
            $crate::conformance::devices(store.as_ref()).await;
        }
        #[tokio::test]
        async fn conformance_device_lists() {
            let (_keep, store) = $new().await;
            $crate::conformance::device_lists(store.as_ref()).await;
        }
        #[tokio::test]
        async fn conformance_external_joins() {
            let (_keep, store) = $new().await;
            $crate::conformance::external_joins(store.as_ref()).await;
        }
        #[tokio::test]
        async fn conformance_history_segments() {
            let (_keep, store) = $new().await;
            $crate::conformance::history_segments(store.as_ref()).await;
        }
        #[tokio::test]
        async fn conformance_recoveries() {
            let (_keep, store) = $new().await;
            $crate::conformance::recoveries(store.as_ref()).await;
        }
        #[tokio::test]
        async fn conformance_key_packages() {
            let (_keep, store) = $new().await;
            $crate::conformance::key_packages(store.as_ref()).await;
        }
        #[tokio::test]
        async fn conformance_groups_and_events() {
            let (_keep, store) = $new().await;
            $crate::conformance::groups_and_events(store.as_ref()).await;
        }
        #[tokio::test]
        async fn conformance_blobs() {
            let (_keep, store) = $new().await;
            $crate::conformance::blobs(store.as_ref()).await;
        }
    };
}
