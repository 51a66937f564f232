//! `missive call start|join CONV` and `missive calls`: a call in a conversation from the
//! terminal, for scripts, bots and tests. The media runs on its own thread (`media.rs`); this
//! side joins through the server, follows the group (a new epoch is a new key: a member added
//! or removed), rejoins after a lost connection, and ends the call after `--duration` or when
//! everyone else has left.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use missive_core::call::CallKeys;
use missive_core::client::{call_message, new_call_id, Client, PushConnection, Transport};
use missive_core::proto::ErrorCode;

use crate::audio::Source;
use crate::media::{self, Command, Offer, Participant, Report};
use crate::show::report;

/// How often the command looks whether it has something to do (the deadline, the push
/// channel to reconnect, a rejoin to try again).
const FOLLOW: Duration = Duration::from_secs(1);
/// How often it asks the server who is in the call and brings the group up to date, though
/// the push channel says so as it happens (every FOLLOW while that channel is down).
const FALLBACK: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct CallArgs {
    /// The conversation's id, or its first 8 characters or more.
    pub conversation: String,
    /// A WAV file sent in real time as the microphone (silence without it).
    #[arg(long)]
    pub play: Option<PathBuf>,
    /// Write what this participant hears, mixed, as a 48 kHz 16-bit WAV file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Leave after this many seconds (otherwise when everyone else has left, or on Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// At the end, print what happened as one JSON object (frames sent, heard per person,
    /// refused, and the wall clock at which the media began).
    #[arg(long)]
    pub json: bool,
}

/// Runs a call in the conversation: a new one (`start`), or the one going on. Returns the
/// number of alerts.
pub async fn call(client: &mut Client, args: CallArgs, start: bool) -> anyhow::Result<usize> {
    let mut alerts = report(&client.sync().await?);
    let conversation = crate::conversation_id(client, &args.conversation)?;
    let transport = client.transport();
    let going_on = transport.ongoing_call(&conversation).await?;
    let call_id = match (start, going_on) {
        (true, Some(_)) => bail!(
            "a call is going on in this conversation: join it with `missive call join {}`",
            &conversation[..8]
        ),
        // A call id names the call (the relay's key and the exporter's context), no secret.
        (true, None) => new_call_id(),
        (false, Some(call)) => call.call_id,
        (false, None) => bail!(
            "no call is going on in this conversation: start one with `missive call start {}`",
            &conversation[..8]
        ),
    };
    let source = args.play.as_deref().map(Source::open).transpose()?;
    let first = client
        .account
        .call_epoch(&conversation, &call_id, CallKeys::secret_len())?;
    let names: HashMap<String, String> = first
        .members
        .iter()
        .map(|(_, owner)| (owner.device_id.clone(), owner.address.clone()))
        .collect();
    let mut epoch = first.epoch;
    let keys = CallKeys::new(first)?;

    let server = server_addr(client.account.server()).await?;
    let local = media::local_ip_towards(server)?;
    let (connection, started_ms) = connect(&transport, &conversation, &call_id, local).await?;
    let own_address = client.account.address().to_owned();
    if start {
        // The ring: an encrypted message, so the server learns no more than the call it
        // relays; every member's devices show it.
        client
            .send_body(&conversation, call_message(&call_id, None, Vec::new()))
            .await?;
    }
    let mut answered: HashSet<String> = HashSet::from([own_address]);
    eprintln!(
        "{} call in {} (Ctrl-C leaves)",
        if start { "started a" } else { "joined the" },
        &conversation[..8]
    );

    let (command_tx, command_rx) = std::sync::mpsc::channel();
    let (report_tx, mut report_rx) = tokio::sync::mpsc::unbounded_channel();
    let participant = Participant {
        connection,
        keys,
        source,
    };
    let media = std::thread::Builder::new()
        .name("missive-call-media".into())
        .spawn(move || participant.run(command_rx, report_tx))?;

    let own = client.account.device_id().to_owned();
    let begun = Instant::now();
    let deadline = args
        .duration
        .map(|s| begun + Duration::from_secs_f64(s.max(0.0)));
    let mut others: HashSet<String> = HashSet::new();
    let mut had_company = false;
    let mut ended_by = "time";
    // The group's commits and who joins or leaves come on the push channel; without it (and
    // every FALLBACK with it, should a frame be lost) the command asks.
    let mut push = client.connect_push().await.ok();
    let mut asked_at: Option<Instant> = None;
    let mut rejoin = false;
    let mut ticker = tokio::time::interval(FOLLOW);
    loop {
        // What to do this time round: bring the group up to date, ask who is in the call.
        let mut sync = false;
        let mut look = false;
        tokio::select! {
            _ = ticker.tick() => {
                if push.is_none() {
                    push = client.connect_push().await.ok();
                }
                let due = asked_at.is_none_or(|at| at.elapsed() >= FALLBACK);
                sync = push.is_none() || due;
                look = sync;
            }
            r = report_rx.recv() => match r {
                Some(Report::Lost) => {
                    eprintln!("connection to the call lost; joining again");
                    rejoin = true;
                }
                // A member is at a newer epoch: catch up now, not at the next tick.
                Some(Report::EpochAhead) => sync = true,
                Some(Report::Connected) | None => {}
            },
            batch = next_push(&mut push) => match batch {
                Some(events) => {
                    alerts += report(&client.process_events(&events).await?);
                    look = push
                        .as_mut()
                        .is_some_and(|p| p.take_calls_changed().contains(&conversation));
                }
                None => push = None,
            },
            _ = tokio::signal::ctrl_c() => { ended_by = "you"; break; }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if rejoin {
            // Until it works: the network may still be down.
            match connect(&transport, &conversation, &call_id, local).await {
                Ok((c, _)) => {
                    let _ = command_tx.send(Command::Replace(Box::new(c)));
                    rejoin = false;
                }
                Err(e) => eprintln!("could not join again yet: {e:#}"),
            }
        }
        if sync {
            match client.sync().await {
                Ok(outcomes) => alerts += report(&outcomes),
                Err(e) => eprintln!("cannot reach the server: {e}"),
            }
        }
        if !follow_epoch(client, &conversation, &call_id, &mut epoch, &command_tx) {
            ended_by = "removal";
            eprintln!("you are no longer a member of this conversation");
            break;
        }
        if !look {
            continue;
        }
        asked_at = Some(Instant::now());
        // Who is in the call.
        let current = match transport.ongoing_call(&conversation).await {
            Ok(current) => current,
            Err(e) => {
                eprintln!("cannot see who is in the call: {e:#}");
                continue;
            }
        };
        let now_in: HashSet<String> = current
            .filter(|c| c.call_id == call_id)
            .map(|c| c.devices.into_iter().filter(|d| *d != own).collect())
            .unwrap_or_default();
        for joined in now_in.difference(&others) {
            eprintln!("{} joined", name(&names, joined));
            answered.insert(name(&names, joined).to_owned());
        }
        for left in others.difference(&now_in) {
            eprintln!("{} left", name(&names, left));
        }
        had_company |= !now_in.is_empty();
        others = now_in;
        if had_company && others.is_empty() && deadline.is_none() {
            ended_by = "everyone else leaving";
            break;
        }
    }

    let _ = command_tx.send(Command::Stop);
    let summary = media
        .join()
        .map_err(|_| anyhow::anyhow!("the call's media thread failed"))??;
    // The last one out says the call ended, and who was in it; a member removed has no say
    // (and sees no call of the conversation any more), it only leaves the relay.
    let left = if ended_by == "removal" {
        match transport.leave_call(&conversation).await {
            Err(e) if e.server_code() != Some(ErrorCode::NotInCall) => Err(e),
            _ => Ok(false),
        }
    } else {
        client
            .hang_up(
                &conversation,
                &call_id,
                started_ms,
                answered.into_iter().collect(),
            )
            .await
    };
    if let Err(e) = left {
        eprintln!("leaving the call: {e}");
    }
    if let Some(path) = &args.record {
        summary.recorder.write(path, Instant::now())?;
    }
    let mut heard: Vec<String> = summary
        .heard
        .iter()
        .map(|(device, frames)| format!("{} ({frames} frames)", name(&names, device)))
        .collect();
    heard.sort();
    if args.json {
        let by_person: serde_json::Map<String, serde_json::Value> = summary
            .heard
            .iter()
            .map(|(device, frames)| (name(&names, device).to_owned(), (*frames).into()))
            .collect();
        out!(
            "{}",
            serde_json::json!({
                "ended_by": ended_by,
                "seconds": begun.elapsed().as_secs_f64(),
                "sent": summary.sent,
                "heard": by_person,
                "refused": summary.refused,
                "media_started_ms": summary.started_ms,
            })
        )?;
    }
    eprintln!(
        "call ended by {ended_by} after {:.1} s; sent {} frames; heard {}{}",
        begun.elapsed().as_secs_f64(),
        summary.sent,
        if heard.is_empty() {
            "nobody".to_owned()
        } else {
            heard.join(", ")
        },
        if summary.refused > 0 {
            format!(
                "; refused {} frames not sealed by a member",
                summary.refused
            )
        } else {
            String::new()
        }
    );
    Ok(alerts)
}

/// The next batch pushed (events, or only calls that changed); `None` once the channel is
/// lost. Never ready without a channel.
async fn next_push(
    push: &mut Option<PushConnection>,
) -> Option<Vec<missive_core::proto::api::Event>> {
    match push {
        Some(p) => p.next_batch().await.ok().flatten(),
        None => std::future::pending().await,
    }
}

/// Follows the group's epoch (the group brought up to date before): a new one rekeys the
/// media. `false` once this device is no longer a member (the call is over for it).
fn follow_epoch(
    client: &mut Client,
    conversation: &str,
    call_id: &[u8],
    epoch: &mut u64,
    media: &std::sync::mpsc::Sender<Command>,
) -> bool {
    match client
        .account
        .call_epoch(conversation, call_id, CallKeys::secret_len())
    {
        Ok(now) => {
            if now.epoch != *epoch {
                *epoch = now.epoch;
                let _ = media.send(Command::Rekey(now));
            }
            true
        }
        Err(_) => false,
    }
}

/// `missive calls`: the calls going on in my conversations.
pub async fn calls(client: &mut Client, json: bool) -> anyhow::Result<usize> {
    let alerts = report(&client.sync().await?);
    let calls = client.transport().calls().await?;
    for c in &calls {
        if json {
            out!(
                "{}",
                serde_json::json!({
                    "conversation": c.conversation,
                    "call_id": missive_core::hex(&c.call_id),
                    "started_ms": c.started_ms,
                    "devices": c.devices,
                })
            )?;
        } else {
            out!(
                "{}  {} device(s) connected",
                c.conversation,
                c.devices.len()
            )?;
        }
    }
    if calls.is_empty() && !json {
        eprintln!("no call is going on in your conversations");
    }
    Ok(alerts)
}

/// Offers a new connection to the relay and accepts its answer; with when the call started.
async fn connect(
    transport: &Transport,
    conversation: &str,
    call_id: &[u8],
    local: std::net::IpAddr,
) -> anyhow::Result<(media::Connection, u64)> {
    let offer = Offer::new(local)?;
    let answer = transport
        .join_call(conversation, call_id, offer.sdp.clone())
        .await?;
    Ok((offer.accept(&answer.answer)?, answer.started_ms))
}

fn name<'a>(names: &'a HashMap<String, String>, device: &'a str) -> &'a str {
    names.get(device).map(String::as_str).unwrap_or(device)
}

/// The server's address, from its URL.
async fn server_addr(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    let with_port = if rest
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        rest.to_owned()
    } else if url.starts_with("https://") {
        format!("{rest}:443")
    } else {
        format!("{rest}:80")
    };
    let found = tokio::net::lookup_host(&with_port)
        .await
        .with_context(|| format!("cannot resolve {with_port}"))?
        .next();
    found.with_context(|| format!("{with_port} has no address"))
}
