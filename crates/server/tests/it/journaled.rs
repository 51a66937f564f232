//! The browser's storage model, natively: the engine over a [`JournaledStore`] whose journal a
//! barrier writes to a "disk" before every request. A restart from that disk, taken at any
//! request (a page closed while the request was in flight), goes on with nothing unreadable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use missive_core::client::{Barrier, Client};
use missive_core::journal::{Journal, JournaledStore};
use missive_core::CoreError;

use crate::support::*;

/// What the browser's IndexedDB would hold.
#[derive(Clone, Default)]
struct Disk {
    entries: BTreeMap<u64, Vec<u8>>,
    snapshot: Option<(u64, Vec<u8>)>,
}

impl Disk {
    fn restore(&self) -> (JournaledStore, Journal) {
        let entries: Vec<_> = self.entries.iter().map(|(n, e)| (*n, e.clone())).collect();
        JournaledStore::restore(
            self.snapshot.as_ref().map(|(n, b)| (*n, b.as_slice())),
            &entries,
        )
        .expect("restore")
    }
}

/// Writes the journal to `disk` before each request, and keeps a copy of the disk as it was
/// when each request left. With `last = Some(k)`, the page "closes" after its k-th request
/// left: the barrier refuses every later one, so nothing more is sent or written.
fn barrier(
    journal: Journal,
    disk: Arc<Mutex<Disk>>,
    copies: Arc<Mutex<Vec<Disk>>>,
    last: Option<usize>,
) -> Barrier {
    Arc::new(move || {
        let journal = journal.clone();
        let disk = disk.clone();
        let copies = copies.clone();
        Box::pin(async move {
            let mut copies = copies.lock().expect("copies");
            if last.is_some_and(|k| copies.len() >= k) {
                return Err(CoreError::Storage("the page was closed".into()));
            }
            let mut disk = disk.lock().expect("disk");
            if let Some(flush) = journal.take()? {
                for (n, e) in flush.entries {
                    disk.entries.insert(n, e);
                }
                if let Some((covered, bytes)) = flush.snapshot {
                    disk.entries.retain(|n, _| *n > covered);
                    disk.snapshot = Some((covered, bytes));
                }
            }
            copies.push(disk.clone());
            Ok(())
        })
    })
}

/// A restarted device from `disk`, writing to a disk of its own from now on; `None` if the
/// account was not on the disk yet (the page closed during registration).
fn reopen(disk: &Disk) -> Option<Client> {
    let (store, journal) = disk.restore();
    let mut client = Client::open(Box::new(store)).ok()?;
    let own = Arc::new(Mutex::new(disk.clone()));
    client.set_barrier(barrier(
        journal,
        own,
        Arc::new(Mutex::new(Vec::new())),
        None,
    ));
    Some(client)
}

/// Alice (journaled, her page closing after request `last`) registers, creates a group with
/// Bob, and they exchange a message each way. Returns Alice's disk and the requests made.
async fn scenario(
    h: &Harness,
    alice_address: &str,
    bob: &mut Client,
    last: Option<usize>,
) -> (Disk, usize) {
    let invite = h.invite(alice_address).await;
    let (store, journal) = JournaledStore::new();
    let disk = Arc::new(Mutex::new(Disk::default()));
    let copies = Arc::new(Mutex::new(Vec::new()));
    let run = async {
        let mut alice = Client::register_with_barrier(
            Box::new(store),
            &h.server.url(),
            alice_address,
            Some(invite),
            barrier(journal, disk.clone(), copies.clone(), last),
        )
        .await?;
        let group = alice
            .create_conversation(
                Some("Budget".into()),
                None,
                &[bob.account.address().to_owned()],
            )
            .await?;
        alice.send_text(&group, "first").await?;
        bob.sync().await?;
        bob.send_text(&group, "answer").await?;
        alice.sync().await?;
        Ok::<_, CoreError>(())
    };
    let outcome = run.await;
    if last.is_none() {
        outcome.expect("the scenario runs without a crash");
    }
    let requests = copies.lock().expect("copies").len();
    let disk = disk.lock().expect("disk").clone();
    (disk, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_account_survives_a_restart() {
    let h = Harness::new();
    let mut bob = h.user("bob").await;
    let (disk, requests) = scenario(&h, &address("alice"), &mut bob, None).await;
    assert!(requests >= 6, "every request ran the barrier ({requests})");
    let mut alice = reopen(&disk).expect("the account is on the disk");
    let group = alice
        .account
        .store()
        .conversations()
        .expect("conversations")[0]
        .id
        .clone();
    let history: Vec<String> = alice
        .account
        .store()
        .messages(&group)
        .expect("messages")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(history, ["first", "answer"]);
    alice
        .send_text(&group, "after restart")
        .await
        .expect("send");
    assert_eq!(texts(&bob.sync().await.expect("sync")), ["after restart"]);
    bob.send_text(&group, "read you").await.expect("send");
    assert_eq!(texts(&alice.sync().await.expect("sync")), ["read you"]);
}

/// The page closed after each request in turn (the request left, its answer was never
/// applied, nothing after it was written): the reopened account catches up, and every
/// conversation it shares with Bob carries messages both ways with no alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_account_closed_after_any_request_recovers() {
    let h = Harness::new();
    let mut bob = h.user("bob").await;
    let (_, requests) = scenario(&h, "alice0@example.org", &mut bob, None).await;
    let mut recovered_in_group = 0;
    for k in 1..=requests {
        let alice_address = format!("alice{k}@{DOMAIN}");
        let (disk, _) = scenario(&h, &alice_address, &mut bob, Some(k)).await;
        let Some(mut alice) = reopen(&disk) else {
            // Closed before the account was saved: nothing to recover, nothing was lost.
            assert!(
                k <= 1,
                "the account is saved before its first request is answered"
            );
            continue;
        };
        let caught_up = alice
            .sync()
            .await
            .unwrap_or_else(|e| panic!("k={k}: sync: {e}"));
        assert!(
            alerts(&caught_up).is_empty(),
            "k={k}: {:?}",
            alerts(&caught_up)
        );
        bob.sync().await.expect("bob syncs");
        let shared: Vec<String> = alice
            .account
            .store()
            .conversations()
            .expect("conversations")
            .into_iter()
            .map(|c| c.id)
            .filter(|id| {
                bob.account
                    .store()
                    .conversation(id)
                    .ok()
                    .flatten()
                    .is_some()
            })
            .collect();
        recovered_in_group += usize::from(!shared.is_empty());
        for group in &shared {
            let text = format!("to alice {k}");
            bob.send_text(group, &text).await.expect("bob sends");
            let outcomes = alice.sync().await.expect("sync");
            assert_eq!(texts(&outcomes), [text], "k={k}");
            assert!(
                alerts(&outcomes).is_empty(),
                "k={k}: {:?}",
                alerts(&outcomes)
            );
            let text = format!("from alice {k}");
            alice
                .send_text(group, &text)
                .await
                .unwrap_or_else(|e| panic!("k={k}: send: {e}"));
            assert_eq!(texts(&bob.sync().await.expect("sync")), [text], "k={k}");
        }
    }
    // Not vacuous: every closing point from the commit adding Bob on (the commit, the
    // message, the syncs) leaves a group to carry on in.
    assert!(
        recovered_in_group >= 4,
        "{recovered_in_group} of {requests} restarts were in a group"
    );
}
