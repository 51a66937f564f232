//! Durability under crashes: the server process is killed with SIGKILL again and again while
//! two users send to a group; every message the server acknowledged is delivered, shown once,
//! in the order it was sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use missive_core::client::Client;
use rand::Rng;

use crate::support::{address, open_user, ServerProcess};

/// Kills of the server during the run.
const KILLS: usize = 20;

/// Sends numbered texts until told to stop; returns the numbers the server acknowledged.
async fn keep_sending(
    mut client: Client,
    conv: String,
    stop: Arc<AtomicBool>,
) -> (Client, Vec<u32>) {
    let name = client.account.address().to_owned();
    let mut acked = Vec::new();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        match client
            .send_text_patiently(&conv, &format!("{name} {n}"), Duration::from_secs(60))
            .await
        {
            Ok(_) => acked.push(n),
            Err(e) => panic!("{name}: message {n} not sent within a minute: {e}"),
        }
        n += 1;
    }
    (client, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_twenty_times_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(&dir.path().join("server")).await;
    let mut alice = open_user(dir.path(), &server.url, "alice").await;
    let mut bob = open_user(dir.path(), &server.url, "bob").await;
    let mut carol = open_user(dir.path(), &server.url, "carol").await;
    let conv = alice
        .create_conversation(
            Some("ops".into()),
            None,
            &[address("bob"), address("carol")],
        )
        .await
        .expect("group");
    bob.sync().await.expect("bob joins");
    carol.sync().await.expect("carol joins");

    let stop = Arc::new(AtomicBool::new(false));
    let senders = [
        tokio::spawn(keep_sending(alice, conv.clone(), stop.clone())),
        tokio::spawn(keep_sending(bob, conv.clone(), stop.clone())),
    ];
    for _ in 0..KILLS {
        let pause = rand::thread_rng().gen_range(100..300);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        server.kill_and_restart().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked: HashMap<String, Vec<u32>> = HashMap::new();
    let mut clients = Vec::new();
    for sender in senders {
        let (client, numbers) = sender.await.expect("sender task");
        acked.insert(client.account.address().to_owned(), numbers);
        clients.push(client);
    }

    // Carol reads everything; each acknowledged message exactly once, in order per sender.
    carol.sync().await.expect("carol syncs");
    let history = carol.account.store().messages(&conv).expect("history");
    let mut shown: HashMap<String, Vec<u32>> = HashMap::new();
    for m in &history {
        let n = m
            .text
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("numbered text");
        shown.entry(m.sender.clone()).or_default().push(n);
    }
    let mut total = 0;
    for (sender, numbers) in &acked {
        assert!(numbers.len() >= 10, "{sender} sent only {}", numbers.len());
        assert_eq!(
            shown.get(sender),
            Some(numbers),
            "{sender}: every acknowledged message, once, in order"
        );
        total += numbers.len();
    }
    // The senders see each other's messages too.
    for mut client in clients {
        client.sync().await.expect("sync");
        let me = client.account.address().to_owned();
        let others = client
            .account
            .store()
            .messages(&conv)
            .expect("history")
            .into_iter()
            .filter(|m| m.sender != me)
            .count();
        let expected: usize = acked
            .iter()
            .filter(|(s, _)| **s != me)
            .map(|(_, n)| n.len())
            .sum();
        assert_eq!(others, expected, "{me} got the other's messages");
    }
    // Ciphertexts that reached the server more than once (a lost answer, sent again): shown once.
    let (mut events, mut after) = (0, 0);
    loop {
        let page: missive_proto::api::EventsResponse = reqwest::Client::new()
            .get(format!("{}/v1/events?after={after}", server.url))
            .bearer_auth(carol.account.token())
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json");
        events += page
            .events
            .iter()
            .filter(|e| e.kind == missive_proto::api::EventKind::Message)
            .count();
        match page.events.last() {
            Some(last) if page.more => after = last.id,
            _ => break,
        }
    }
    println!(
        "{KILLS} kills: {total} messages acknowledged, {total} delivered once each, \
         {} sent again after a lost answer, 0 lost, 0 shown twice",
        events.saturating_sub(total)
    );
}
