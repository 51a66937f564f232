//! `missive`: the command-line client. Human-readable output by default, `--json` for scripts.
//! Exit status: 0 on success, 1 on error (one line on stderr), 3 when `sync` refused something
//! the server sent (each refusal is printed on stderr as `alert: CODE: DETAIL`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use missive_core::account::Outcome;
use missive_core::client::Client;
use missive_core::sqlite::SqliteAccountStore;
use missive_core::store::{AccountStore, MessageRecord};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "missive",
    version,
    about = "Missive: end-to-end encrypted messaging"
)]
struct Cli {
    /// Account home: keys, conversations and messages of one account on this device.
    #[arg(long, env = "MISSIVE_HOME", global = true)]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register a new account on a server, with an invite code from its administrator.
    Register {
        #[arg(long)]
        server: String,
        #[arg(long)]
        invite: Option<String>,
        address: String,
    },
    /// Become a new device of your account, with the code `missive link` shows on a device
    /// you already use; joins all its conversations and receives their recent history.
    Join {
        #[arg(long)]
        server: String,
        code: String,
        /// Seconds to wait for the other device.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    #[command(flatten)]
    Account(AccountCommand),
}

#[derive(Subcommand)]
enum DevicesAction {
    /// Revoke another device of yours (a lost phone): its token stops working and it is
    /// removed from every conversation, so it cannot read anything sent afterwards.
    Revoke { device_id: String },
}

/// Commands on a registered account.
#[derive(Subcommand)]
enum AccountCommand {
    /// Show this account's address, device and server.
    Whoami,
    /// Send a direct message; creates the one-to-one conversation on first use.
    Dm { address: String, text: String },
    /// Group conversations.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Send a text message to a conversation.
    Send { conversation: String, text: String },
    /// Encrypt a file and send it to a conversation; prints the message id alone on its last
    /// line. Run the same command again to resume an interrupted upload.
    SendFile { conversation: String, path: PathBuf },
    /// Download, decrypt and verify a received file (ID as shown by sync) into a directory;
    /// exits 0 only if the file is intact. Nothing is written under its name otherwise.
    Download {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Fetch and decrypt new messages; prints each new message.
    Sync {
        #[arg(long)]
        json: bool,
    },
    /// List conversations.
    Conversations {
        #[arg(long)]
        json: bool,
    },
    /// Show the stored messages of a conversation, oldest first.
    History {
        conversation: String,
        #[arg(long)]
        json: bool,
    },
    /// Show security alerts: things the server sent that were refused.
    Alerts,
    /// Link a new device (a phone, another computer) to this account: prints a one-time code
    /// alone on a line (and as a QR code on stderr), then waits for `missive join CODE` on the
    /// new device. It adds the new device to every conversation and hands it their history.
    Link {
        /// Seconds to wait for the new device (at most 900).
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Days of history to hand over.
        #[arg(long, default_value_t = 30)]
        history_days: u64,
    },
    /// List this account's devices; a device not certified by your identity key is flagged.
    Devices {
        #[command(subcommand)]
        action: Option<DevicesAction>,
        #[arg(long)]
        json: bool,
    },
    /// Show the safety number with a contact (the same on both sides); --confirm marks the
    /// contact verified once you compared it in person or by a trusted channel.
    Verify {
        address: String,
        #[arg(long)]
        confirm: bool,
    },
    /// Accept a contact's new identity key (after comparing the new safety number).
    Trust {
        address: String,
        #[arg(long)]
        accept_new_key: bool,
    },
    /// Live mode: prints messages as they arrive; with CONV, each line typed is sent there.
    /// `/quit` or end of input leaves.
    Chat {
        conversation: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a group; prints the conversation id alone on its last line.
    Create {
        name: String,
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Add a user (all their devices) to a group.
    Add {
        conversation: String,
        address: String,
    },
    /// Remove a user (all their devices) from a group.
    Remove {
        conversation: String,
        address: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn home(cli_home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(h) = cli_home {
        return Ok(h);
    }
    let base = std::env::var_os("HOME").context("set --home or MISSIVE_HOME")?;
    Ok(Path::new(&base).join(".missive"))
}

fn store(home: &Path) -> anyhow::Result<Box<dyn AccountStore + Send>> {
    let store = SqliteAccountStore::open(&home.join("account.db"))
        .with_context(|| format!("opening the account in {}", home.display()))?;
    Ok(Box::new(store))
}

fn message_json(m: &MessageRecord) -> serde_json::Value {
    let mut value = json!({
        "conversation": m.conversation,
        "sender": m.sender,
        "text": m.text,
        "id": m.id,
        "sender_device": m.sender_device,
        "sent_at": m.sent_at,
        "server_time": m.server_time,
        "seq": m.seq,
    });
    if let Some(f) = &m.file {
        // The key stays in the account; scripts get what identifies and describes the file.
        value["file"] = json!({
            "id": f.blob,
            "name": f.name,
            "size": f.size,
            "media_type": f.media_type,
            "blake3": f.blake3,
        });
    }
    value
}

fn print_message(m: &MessageRecord, as_json: bool) {
    if as_json {
        println!("{}", message_json(m));
    } else {
        let short = &m.conversation[..m.conversation.len().min(8)];
        match &m.file {
            Some(f) => println!(
                "[{short}] {}: file {:?} ({}) — missive download {} --out DIR",
                m.sender,
                f.name,
                human_size(f.size),
                f.blob
            ),
            None => println!("[{short}] {}: {}", m.sender, m.text),
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = home(cli.home)?;
    let command = match cli.command {
        Command::Register {
            server,
            invite,
            address,
        } => {
            let client = Client::register(store(&home)?, &server, &address, invite).await?;
            println!(
                "registered {} (device {}) on {}",
                client.account.address(),
                client.account.device_id(),
                client.account.server()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Join {
            server,
            code,
            timeout,
        } => {
            if std::io::stderr().is_terminal() {
                eprintln!("waiting for the linking device...");
            }
            let joined = Client::join(
                store(&home)?,
                &server,
                &code,
                std::time::Duration::from_secs(timeout),
            )
            .await?;
            println!(
                "linked {} (device {}): {} conversations, {} messages of history",
                joined.client.account.address(),
                joined.client.account.device_id(),
                joined.conversations,
                joined.messages
            );
            return Ok(ExitCode::SUCCESS);
        }
        Command::Account(command) => command,
    };
    let mut client = Client::open(store(&home)?)?;
    let mut alerts = 0usize;
    match command {
        AccountCommand::Whoami => {
            println!("address: {}", client.account.address());
            println!("device:  {}", client.account.device_id());
            println!("server:  {}", client.account.server());
        }
        AccountCommand::Dm { address, text } => {
            alerts += report(client.sync().await?);
            let m = client.dm(&address, &text).await?;
            println!("sent to {address} in {}", m.conversation);
            println!("{}", m.id);
        }
        AccountCommand::Group(GroupCommand::Create { name, members }) => {
            alerts += report(client.sync().await?);
            let id = client
                .create_conversation(Some(name.clone()), None, &members)
                .await?;
            println!("created group {name:?} with {}", members.join(", "));
            println!("{id}");
        }
        AccountCommand::Group(GroupCommand::Add {
            conversation,
            address,
        }) => {
            alerts += report(client.sync().await?);
            let outcome = client
                .add_members(&conversation, std::slice::from_ref(&address))
                .await?;
            println!(
                "added {address}; the conversation is at epoch {}",
                outcome.epoch
            );
        }
        AccountCommand::Group(GroupCommand::Remove {
            conversation,
            address,
        }) => {
            alerts += report(client.sync().await?);
            let outcome = client
                .remove_members(&conversation, std::slice::from_ref(&address))
                .await?;
            println!(
                "removed {address}; the conversation is at epoch {}",
                outcome.epoch
            );
        }
        AccountCommand::Send { conversation, text } => {
            alerts += report(client.sync().await?);
            let m = client.send_text(&conversation, &text).await?;
            println!("{}", m.id);
        }
        AccountCommand::SendFile { conversation, path } => {
            alerts += report(client.sync().await?);
            let (bar, progress) = progress_bar("upload");
            let m = client.send_file(&conversation, &path, progress).await;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let sent = m?;
            if sent.resumed_from > 0 {
                eprintln!(
                    "resumed the upload at byte {}: the server already had {}",
                    sent.resumed_from,
                    human_size(sent.resumed_from)
                );
            }
            if let Some(f) = &sent.message.file {
                eprintln!(
                    "sent {} ({}) as file {}",
                    f.name,
                    human_size(f.size),
                    f.blob
                );
            }
            println!("{}", sent.message.id);
        }
        AccountCommand::Download { id, out } => {
            let (bar, progress) = progress_bar("download");
            let mut path = client.download_file(&id, &out, progress.clone()).await;
            // A cut connection resumes from the chunks already written and checked.
            for _ in 0..3 {
                match &path {
                    Err(missive_core::CoreError::Network(e)) => {
                        eprintln!("transfer interrupted ({e}); resuming");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        path = client.download_file(&id, &out, progress.clone()).await;
                    }
                    _ => break,
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let path = path?;
            println!("{}", path.display());
        }
        AccountCommand::Sync { json } => {
            alerts += report(client.sync().await?);
            show_new(&mut client, json)?;
        }
        AccountCommand::Conversations { json } => {
            alerts += sync_if_reachable(&mut client).await?;
            for c in client.account.store().conversations()? {
                let members = client.account.members(&c.id).unwrap_or_default();
                if json {
                    println!(
                        "{}",
                        json!({
                            "id": c.id,
                            "name": c.name,
                            "dm": c.dm_peer,
                            "members": members,
                            "left": c.left,
                            "created_at": c.created_at,
                        })
                    );
                } else {
                    let title = c
                        .name
                        .clone()
                        .or(c.dm_peer.clone().map(|p| format!("with {p}")))
                        .unwrap_or_else(|| "(unnamed)".into());
                    let state = if c.left { " (left)" } else { "" };
                    println!("{}  {title}{state}  [{}]", c.id, members.join(", "));
                }
            }
        }
        AccountCommand::History { conversation, json } => {
            if client
                .account
                .store()
                .conversation(&conversation)?
                .is_none()
            {
                anyhow::bail!("no conversation {conversation}");
            }
            for m in client.account.store().messages(&conversation)? {
                print_message(&m, json);
            }
        }
        AccountCommand::Chat { conversation, json } => {
            alerts += chat(&mut client, conversation, json).await?;
        }
        AccountCommand::Link {
            timeout,
            history_days,
        } => {
            if timeout == 0 || timeout > 900 {
                anyhow::bail!("--timeout must be between 1 and 900 seconds");
            }
            alerts += report(client.sync().await?);
            let server = client.account.server().to_owned();
            let linked = client
                .link(
                    std::time::Duration::from_secs(timeout),
                    std::time::Duration::from_secs(history_days.saturating_mul(86_400)),
                    |code| {
                        println!("{}", code.text());
                        show_qr(&code.qr_payload());
                        eprintln!(
                            "on the new device: missive join --server {server} {}",
                            code.text()
                        );
                    },
                )
                .await?;
            eprintln!(
                "linked device {}: added to {} conversations, {} messages of history sent",
                linked.device_id, linked.conversations, linked.messages
            );
        }
        AccountCommand::Devices {
            action: Some(DevicesAction::Revoke { device_id }),
            ..
        } => {
            alerts += report(client.sync().await?);
            let removed = client.revoke_device(&device_id).await?;
            println!("revoked device {device_id}; removed from {removed} conversations");
        }
        AccountCommand::Devices { action: None, json } => {
            for d in client.devices().await? {
                if !d.certified {
                    eprintln!(
                        "alert: uncertified_device: the server lists device {} for your account, \
                         which you never linked; it is not used",
                        d.id
                    );
                    alerts += 1;
                }
                if json {
                    println!(
                        "{}",
                        json!({"id": d.id, "current": d.current, "certified": d.certified, "issued_at": d.issued_at})
                    );
                } else {
                    let mark = if d.current { " (this device)" } else { "" };
                    let state = if d.certified {
                        ""
                    } else {
                        "  NOT CERTIFIED BY YOU"
                    };
                    println!("{}{mark}{state}", d.id);
                }
            }
        }
        AccountCommand::Verify { address, confirm } => {
            let (number, verified) = client.safety_number(&address).await?;
            if confirm {
                client.account.mark_verified(&address)?;
            }
            println!("safety number with {address}:");
            println!("{}", number.display());
            println!("qr: {}", number.qr_payload());
            let status = if confirm || verified {
                "verified"
            } else {
                "not verified"
            };
            println!("status: {status}");
        }
        AccountCommand::Trust {
            address,
            accept_new_key,
        } => {
            if !accept_new_key {
                anyhow::bail!(
                    "compare the new safety number first (missive verify {address}), then run \
                     missive trust {address} --accept-new-key"
                );
            }
            client.accept_new_key(&address).await?;
            let (number, _) = client.account.safety_number(&address)?;
            println!("now trusting the current identity key of {address}; new safety number:");
            println!("{}", number.display());
        }
        AccountCommand::Alerts => {
            for a in client.account.store().alerts()? {
                println!("{} {}: {}", a.at, a.code, a.detail);
            }
        }
    }
    Ok(if alerts > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// A byte count for people.
/// A QR code of `payload` on stderr, drawn with half-block characters (dark on light).
fn show_qr(payload: &str) {
    match qrcode::QrCode::new(payload.as_bytes()) {
        Ok(code) => eprintln!(
            "{}",
            code.render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .build()
        ),
        Err(e) => eprintln!("(no QR code: {e})"),
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise (scripts stay quiet).
fn progress_bar(
    what: &'static str,
) -> (
    Option<indicatif::ProgressBar>,
    Option<missive_core::client::Progress>,
) {
    if !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what);
    let handle = bar.clone();
    let progress: missive_core::client::Progress = std::sync::Arc::new(move |done, total| {
        handle.set_length(total);
        handle.set_position(done);
    });
    (Some(bar), Some(progress))
}

/// Prints received messages not shown yet and marks them shown.
fn show_new(client: &mut Client, json: bool) -> anyhow::Result<()> {
    let new = client.account.store().unshown_messages()?;
    for m in &new {
        print_message(m, json);
    }
    client
        .account
        .mark_shown(new.into_iter().map(|m| m.id).collect())?;
    Ok(())
}

/// The live mode. Returns the number of alerts.
async fn chat(
    client: &mut Client,
    conversation: Option<String>,
    json: bool,
) -> anyhow::Result<usize> {
    use std::io::Write;
    use tokio::io::AsyncBufReadExt;

    let mut alerts = report(client.sync().await?);
    if let Some(c) = &conversation {
        if client.account.store().conversation(c)?.is_none() {
            anyhow::bail!("no conversation {c}");
        }
    }
    show_new(client, json)?;
    let mut push = Some(client.connect_push().await?);
    if !json {
        match &conversation {
            Some(c) => eprintln!("chatting in {c}; type a message and press enter, /quit to leave"),
            None => eprintln!("listening to every conversation; end of input leaves"),
        }
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        let Some(connection) = push.as_mut() else {
            // Reconnect: catch up on what was missed, then listen again.
            tokio::time::sleep(backoff).await;
            match client.sync().await {
                Ok(outcomes) => {
                    alerts += report(outcomes);
                    show_new(client, json)?;
                    push = client.connect_push().await.ok();
                }
                Err(missive_core::CoreError::Network(_)) => {}
                Err(e) => return Err(e.into()),
            }
            if push.is_some() {
                backoff = std::time::Duration::from_millis(200);
                eprintln!("reconnected");
            } else {
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
            continue;
        };
        tokio::select! {
            batch = connection.next_batch() => {
                match batch {
                    Ok(Some(events)) => {
                        alerts += report(client.process_events(&events).await?);
                        show_new(client, json)?;
                        std::io::stdout().flush()?;
                    }
                    Ok(None) | Err(_) => {
                        eprintln!("connection to the server lost; reconnecting");
                        push = None;
                    }
                }
            }
            line = lines.next_line(), if input_open => {
                match line? {
                    None => {
                        if conversation.is_some() {
                            break;
                        }
                        // Listening only: keep going without input.
                        input_open = false;
                    }
                    Some(line) if line.trim() == "/quit" => break,
                    Some(line) if line.trim().is_empty() => {}
                    Some(line) => match &conversation {
                        Some(c) => {
                            if let Err(e) = client.send_text(c, line.trim_end()).await {
                                eprintln!("not sent: {e}");
                            }
                        }
                        None => eprintln!("listening only: start chat with a conversation id to send"),
                    },
                }
            }
        }
    }
    Ok(alerts)
}

/// Syncs before showing local state; when the server is unreachable, says so and shows what
/// is stored.
async fn sync_if_reachable(client: &mut Client) -> anyhow::Result<usize> {
    match client.sync().await {
        Ok(outcomes) => Ok(report(outcomes)),
        Err(missive_core::CoreError::Network(e)) => {
            eprintln!("warning: showing stored state; cannot reach the server: {e}");
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints the alerts among sync outcomes on stderr; returns how many there were.
fn report(outcomes: Vec<Outcome>) -> usize {
    let mut n = 0;
    for o in outcomes {
        if let Outcome::Alert(a) = o {
            eprintln!("alert: {a}");
            n += 1;
        }
    }
    n
}
