//! `--soak ROUNDS`: three users in a group and a one-to-one conversation; each round, devices
//! send, new devices are linked, extra devices are revoked, and a device dies in the middle of
//! a commit (posted or not) and is restored from its home. At the end every device still in
//! use must hold every message of every conversation it is in. Reported: what was done, the
//! alerts raised and the messages some device could not read — the target is zero.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use missive_core::account::Outcome;
use missive_core::client::Client;
use missive_core::sqlite::SqliteAccountStore;
use missive_proto::B64;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Most devices per user at once.
const MAX_DEVICES: usize = 3;

struct Device {
    user: usize,
    home: PathBuf,
    client: Client,
}

#[derive(Default)]
struct Tally {
    sent: usize,
    linked: usize,
    revoked: usize,
    crashed_posted: usize,
    crashed_unposted: usize,
    alerts: Vec<String>,
}

fn open(home: &Path) -> anyhow::Result<Client> {
    let store = SqliteAccountStore::open(&home.join("account.db"))?;
    Ok(Client::open(Box::new(store))?)
}

async fn sync_all(devices: &mut [Device], tally: &mut Tally) -> anyhow::Result<()> {
    for d in devices.iter_mut() {
        for o in d.client.sync().await.context("sync")? {
            if let Outcome::Alert(a) = o {
                tally.alerts.push(format!("{}: {a}", d.home.display()));
            }
        }
    }
    Ok(())
}

/// Links a new device for `user` from one of its devices.
async fn link(
    url: &str,
    dir: &Path,
    devices: &mut [Device],
    from: usize,
    name: &str,
) -> anyhow::Result<Device> {
    let home = dir.join(name);
    let store = SqliteAccountStore::open(&home.join("account.db"))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let url = url.to_owned();
    let joining = tokio::spawn(async move {
        let code = rx.await?;
        anyhow::Ok(Client::join(Box::new(store), &url, &code, Duration::from_secs(60)).await?)
    });
    let mut tx = Some(tx);
    let linker = &mut devices[from];
    linker
        .client
        .link(Duration::from_secs(60), Duration::from_secs(86_400), |c| {
            if let Some(tx) = tx.take() {
                let _ = tx.send(c.text());
            }
        })
        .await
        .context("link")?;
    let joined = joining.await??;
    Ok(Device {
        user: linker.user,
        home,
        client: joined.client,
    })
}

/// The device stages a commit in `conversation` (posted to the server or not) and dies before
/// hearing back; it is restored from its home.
async fn crash_mid_commit(
    url: &str,
    devices: &mut Vec<Device>,
    d: usize,
    conversation: &str,
    post: bool,
) -> anyhow::Result<()> {
    // The device leaves the list while it "crashes": its store must be closed (as a dead
    // process's is) before the restarted client opens it.
    let device = devices.swap_remove(d);
    let restarted = crash_and_restart(url, device, conversation, post).await?;
    devices.push(restarted);
    let last = devices.len() - 1;
    devices.swap(d, last);
    Ok(())
}

async fn crash_and_restart(
    url: &str,
    mut device: Device,
    conversation: &str,
    post: bool,
) -> anyhow::Result<Device> {
    device.client.sync().await?;
    let prepared = device
        .client
        .account
        .prepare_commit(conversation, &[], &[])?;
    if post {
        let resp = reqwest::Client::new()
            .post(format!(
                "{url}/v1/groups/{}/commits",
                B64::encode(&prepared.group_id)
            ))
            .bearer_auth(device.client.account.token())
            .json(&prepared.request)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "commit refused: {}",
            resp.status()
        );
    }
    let Device { user, home, client } = device;
    drop(client);
    let client = open(&home)?;
    Ok(Device { user, home, client })
}

/// The one-to-one conversation half the time when `user` is in it, else the group.
fn pick<'a>(
    rng: &mut StdRng,
    members: &BTreeMap<&str, HashSet<usize>>,
    user: usize,
    group: &'a str,
    dm: &'a str,
) -> &'a str {
    if members[dm].contains(&user) && rng.gen_bool(0.5) {
        dm
    } else {
        group
    }
}

pub async fn soak(
    url: &str,
    run: &str,
    domain: &str,
    rounds: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let names = ["alice", "bob", "carol"];
    let mut devices = Vec::new();
    for (user, name) in names.iter().enumerate() {
        let home = dir.path().join(format!("{name}-0"));
        let store = SqliteAccountStore::open(&home.join("account.db"))?;
        let client = Client::register(Box::new(store), url, &format!("{name}{run}@{domain}"), None)
            .await
            .with_context(|| format!("registering {name}"))?;
        devices.push(Device { user, home, client });
    }
    let address = |user: usize| format!("{}{run}@{domain}", names[user]);
    let group = devices[0]
        .client
        .create_conversation(Some("soak".into()), None, &[address(1), address(2)])
        .await?;
    let dm = devices[0]
        .client
        .create_conversation(None, Some(address(1)), &[address(1)])
        .await?;
    let members: BTreeMap<&str, HashSet<usize>> = [
        (group.as_str(), HashSet::from([0, 1, 2])),
        (dm.as_str(), HashSet::from([0, 1])),
    ]
    .into();
    let mut sent: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    let trace = std::env::var_os("MISSIVE_SOAK_TRACE").is_some();
    let mut tally = Tally::default();
    let mut next_device = 1;
    sync_all(&mut devices, &mut tally).await?;

    for round in 0..rounds {
        // Sends from random devices into conversations their user is in.
        for _ in 0..3 {
            let d = rng.gen_range(0..devices.len());
            let conversation = pick(&mut rng, &members, devices[d].user, &group, &dm);
            let text = format!("round {round} from device {d}");
            let record = devices[d]
                .client
                .send_text(conversation, &text)
                .await
                .with_context(|| format!("round {round}: send"))?;
            if trace {
                eprintln!(
                    "r{round}: {} sends {text:?} in {conversation}",
                    devices[d].home.display()
                );
            }
            sent.entry(conversation)
                .or_default()
                .push((record.id, text));
            tally.sent += 1;
        }
        // Link a device.
        if rng.gen_bool(0.2) {
            let user = rng.gen_range(0..names.len());
            let of_user: Vec<usize> = (0..devices.len())
                .filter(|&i| devices[i].user == user)
                .collect();
            if of_user.len() < MAX_DEVICES {
                let from = of_user[rng.gen_range(0..of_user.len())];
                let name = format!("{}-{next_device}", names[user]);
                next_device += 1;
                let new = link(url, dir.path(), &mut devices, from, &name)
                    .await
                    .with_context(|| format!("round {round}: link"))?;
                if trace {
                    eprintln!(
                        "r{round}: {} links {}",
                        devices[from].home.display(),
                        new.home.display()
                    );
                }
                devices.push(new);
                tally.linked += 1;
            }
        }
        // Revoke a device of a user who has several.
        if rng.gen_bool(0.15) {
            let user = rng.gen_range(0..names.len());
            let of_user: Vec<usize> = (0..devices.len())
                .filter(|&i| devices[i].user == user)
                .collect();
            if of_user.len() > 1 {
                let victim = of_user[rng.gen_range(0..of_user.len())];
                let by = *of_user.iter().find(|&&i| i != victim).context("another")?;
                let id = devices[victim].client.account.device_id();
                devices[by]
                    .client
                    .revoke_device(&id)
                    .await
                    .with_context(|| format!("round {round}: revoke"))?;
                if trace {
                    eprintln!(
                        "r{round}: {} revokes {}",
                        devices[by].home.display(),
                        devices[victim].home.display()
                    );
                }
                devices.remove(victim);
                tally.revoked += 1;
            }
        }
        // A device dies mid-commit and is restored.
        if rng.gen_bool(0.3) {
            let d = rng.gen_range(0..devices.len());
            let post = rng.gen_bool(0.5);
            let conversation = pick(&mut rng, &members, devices[d].user, &group, &dm);
            if trace {
                eprintln!(
                    "r{round}: {} dies mid-commit in {conversation}, posted: {post}",
                    devices[d].home.display()
                );
            }
            crash_mid_commit(url, &mut devices, d, conversation, post)
                .await
                .with_context(|| format!("round {round}: crash mid-commit"))?;
            if post {
                tally.crashed_posted += 1;
            } else {
                tally.crashed_unposted += 1;
            }
        }
        sync_all(&mut devices, &mut tally).await?;
    }
    sync_all(&mut devices, &mut tally).await?;

    // Every device in use holds every message of every conversation its user is in.
    let mut unreadable = 0;
    for d in &devices {
        for (conversation, ids) in &sent {
            if !members[conversation].contains(&d.user) {
                continue;
            }
            let held: HashSet<String> = d
                .client
                .account
                .store()
                .messages(conversation)?
                .into_iter()
                .map(|m| m.id)
                .collect();
            for (id, text) in ids {
                if !held.contains(id) {
                    unreadable += 1;
                    if trace {
                        eprintln!("{} lacks {text:?} in {conversation}", d.home.display());
                    }
                }
            }
        }
    }
    println!(
        "{}",
        json!({
            "rounds": rounds,
            "seed": seed,
            "messages_sent": tally.sent,
            "devices_linked": tally.linked,
            "devices_revoked": tally.revoked,
            "crashes_mid_commit_posted": tally.crashed_posted,
            "crashes_mid_commit_unposted": tally.crashed_unposted,
            "devices_at_end": devices.len(),
            "alerts": tally.alerts.len(),
            "messages_not_readable": unreadable,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
    for a in &tally.alerts {
        eprintln!("alert: {a}");
    }
    anyhow::ensure!(
        unreadable == 0 && tally.alerts.is_empty(),
        "{unreadable} messages could not be read, {} alerts",
        tally.alerts.len()
    );
    Ok(())
}
