//! `missive`: the command-line client. Human-readable output by default, `--json` for scripts.
//! Exit status: 0 on success, 1 on error (one line on stderr), 3 when `sync` refused something
//! the server sent (each refusal is printed on stderr as `alert: CODE: DETAIL`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use missive_core::client::Client;
use missive_core::lookup;
use missive_core::{AlertCode, CoreError};
use serde_json::json;

/// Writes a line to stdout, returning the write's error instead of panicking as `println!`
/// does: a reader that went away (`missive history CONV | head -1`) ends the command quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

mod args;
mod audio;
mod call;
mod changes;
mod chat;
mod home;
mod media;
mod show;

use args::*;
use show::{human_size, print_message, progress_bar, report, show_qr};

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
        // The reader of our output went away (`| head -1`): what it wanted, it has.
        Err(e) if is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if let Some(CoreError::Refused(alert)) = e.downcast_ref() {
                if alert.code == AlertCode::IdentityChanged {
                    eprintln!(
                        "hint: `missive verify ADDRESS` shows their new safety number; \
                         `missive trust ADDRESS --accept-new-key` accepts it"
                    );
                }
            }
            ExitCode::FAILURE
        }
    }
}

fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Addresses as typed, in their one spelling.
fn addresses(typed: &[String]) -> anyhow::Result<Vec<String>> {
    Ok(typed
        .iter()
        .map(|a| lookup::address(a))
        .collect::<Result<_, _>>()?)
}

/// Syncs first (so that a command acts on the conversation's current state), counting the
/// alerts the sync raised, then finds the conversation `typed` names (a conversation just
/// joined is known by then).
pub(crate) async fn synced_conversation(
    client: &mut Client,
    typed: &str,
    alerts: &mut usize,
) -> anyhow::Result<String> {
    *alerts += report(&client.sync().await?);
    conversation_id(client, typed)
}

/// The full id of the conversation `typed` names (its id or a unique prefix).
pub(crate) fn conversation_id(client: &Client, typed: &str) -> anyhow::Result<String> {
    Ok(lookup::conversation(client.account.store(), typed)?.id)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = home::path(cli.home)?;
    let command = match cli.command {
        Command::Register {
            server,
            invite,
            address,
        } => return home::register(&home, &server, &address, invite).await,
        Command::Recover { server, address } => {
            return home::recover(&home, &server, &address).await
        }
        Command::Join {
            server,
            code,
            timeout,
        } => return home::join(&home, &server, &code, timeout).await,
        Command::Account(command) => command,
    };
    let mut client = Client::open(home::existing_store(&home)?)?;
    let alerts = match account_command(&mut client, command, &home).await {
        Ok(alerts) => alerts,
        Err(e) => {
            // A security refusal that ended the command is kept for `missive alerts` too (once:
            // the engine keeps most of them itself).
            if let Some(CoreError::Refused(alert)) = e.downcast_ref() {
                let kept = client
                    .account
                    .store()
                    .alerts()
                    .ok()
                    .and_then(|a| a.last().cloned())
                    .is_some_and(|last| {
                        last.code == alert.code.as_str() && last.detail == alert.detail
                    });
                if kept {
                    return Err(e);
                }
                if let Err(store) = client.account.record_alert(alert) {
                    eprintln!("warning: the alert could not be kept: {store}");
                }
            }
            return Err(e);
        }
    };
    Ok(if alerts > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs a command on a registered account; returns the number of security alerts raised.
async fn account_command(
    client: &mut Client,
    command: AccountCommand,
    home: &Path,
) -> anyhow::Result<usize> {
    let mut alerts = 0usize;
    match command {
        AccountCommand::Whoami => {
            out!("address: {}", client.account.address())?;
            out!("device:  {}", client.account.device_id())?;
            out!("server:  {}", client.account.server())?;
        }
        AccountCommand::Dm { address, text } => {
            let address = lookup::address(&address)?;
            alerts += report(&client.sync().await?);
            let m = client.dm(&address, &text).await?;
            out!("sent to {address} in {}", m.conversation)?;
            out!("{}", m.id)?;
        }
        AccountCommand::Group(GroupCommand::Create { name, members }) => {
            let members = addresses(&members)?;
            alerts += report(&client.sync().await?);
            let id = client
                .create_conversation(Some(name.clone()), None, &members)
                .await?;
            out!("created group {name:?} with {}", members.join(", "))?;
            out!("{id}")?;
        }
        AccountCommand::Group(GroupCommand::Add {
            conversation,
            address,
        }) => {
            let address = lookup::address(&address)?;
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
            let outcome = client
                .add_members(&conversation, std::slice::from_ref(&address))
                .await?;
            out!(
                "added {address}; the conversation is at epoch {}",
                outcome.epoch
            )?;
        }
        AccountCommand::Group(GroupCommand::Remove {
            conversation,
            address,
        }) => {
            let address = lookup::address(&address)?;
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
            let outcome = client
                .remove_members(&conversation, std::slice::from_ref(&address))
                .await?;
            out!(
                "removed {address}; the conversation is at epoch {}",
                outcome.epoch
            )?;
        }
        AccountCommand::Send { conversation, text } => {
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
            let m = client.send_text(&conversation, &text).await?;
            out!("{}", m.id)?;
        }
        AccountCommand::Reply {
            conversation,
            message,
            text,
        } => {
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
            let m = client.send_reply(&conversation, &message, &text).await?;
            out!("{}", m.id)?;
        }
        AccountCommand::Changes(command) => alerts += changes::run(client, command).await?,
        AccountCommand::SendFile { conversation, path } => {
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
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
            out!("{}", sent.message.id)?;
        }
        AccountCommand::Download { id, out } => {
            let (bar, progress) = progress_bar("download");
            let mut path = client.download_file(&id, &out, progress.clone()).await;
            // A cut connection resumes from the chunks already written and checked.
            for _ in 0..3 {
                match &path {
                    Err(CoreError::Network(e)) => {
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
            out!("{}", path.display())?;
        }
        AccountCommand::Sync { json } => {
            let outcomes = client.sync().await?;
            alerts += report(&outcomes);
            chat::show_new(client, &outcomes, json)?;
            chat::send_receipts(client).await?;
        }
        AccountCommand::Conversations { json } => {
            alerts += sync_if_reachable(client).await?;
            for c in client.account.store().conversations()? {
                let members = client.account.members(&c.id).unwrap_or_default();
                if json {
                    out!("{}", show::conversation_json(&c, &members))?;
                } else {
                    let state = if c.left { " (left)" } else { "" };
                    let title = show::title(&c);
                    out!("{}  {title}{state}  [{}]", c.id, members.join(", "))?;
                }
            }
        }
        AccountCommand::History { conversation, json } => {
            let conversation = conversation_id(client, &conversation)?;
            client.erase_expired()?;
            let record = client.account.store().conversation(&conversation)?;
            let members = client.account.members(&conversation).unwrap_or_default();
            let receipted = record.as_ref().map(|conversation| show::Receipted {
                conversation,
                members: Some(&members),
            });
            for m in client.account.store().messages(&conversation)? {
                print_message(&m, receipted.as_ref(), json)?;
            }
        }
        AccountCommand::Chat { conversation, json } => {
            alerts += chat::chat(client, conversation, json).await?;
        }
        AccountCommand::Call(CallCommand::Start(args)) => {
            alerts += call::call(client, args, true).await?;
        }
        AccountCommand::Call(CallCommand::Join(args)) => {
            alerts += call::call(client, args, false).await?;
        }
        AccountCommand::Calls { json } => {
            alerts += call::calls(client, json).await?;
        }
        AccountCommand::HistoryBackup { state } => {
            if let Some(state) = state {
                if client.account.recovery_key()?.is_none() {
                    anyhow::bail!(
                        "this device holds no recovery key: make one with `missive recovery-key`"
                    );
                }
                client.account.set_history_backup(state == "on")?;
                client.upload_backup(false).await?;
                client.upload_history().await?;
            }
            let on = client.account.history_backup()?;
            out!("history backup: {}", if on { "on" } else { "off" })?;
        }
        AccountCommand::RecoveryKey => {
            home::show_recovery_key(&client.make_recovery_key().await?)?;
        }
        AccountCommand::Link {
            timeout,
            history_days,
        } => {
            if timeout == 0 || timeout > 900 {
                anyhow::bail!("--timeout must be between 1 and 900 seconds");
            }
            alerts += report(&client.sync().await?);
            let server = client.account.server().to_owned();
            let linked = client
                .link(
                    std::time::Duration::from_secs(timeout),
                    std::time::Duration::from_secs(history_days.saturating_mul(86_400)),
                    |code| {
                        // The code is what the user came for: a closed stdout is reported by
                        // the wait that follows, not here.
                        let _ = out!("{}", code.text());
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
            alerts += report(&client.sync().await?);
            let removed = client.revoke_device(&device_id).await?;
            out!("revoked device {device_id}; removed from {removed} conversations")?;
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
                    out!(
                        "{}",
                        json!({
                            "id": d.id,
                            "current": d.current,
                            "certified": d.certified,
                            "listed": d.listed,
                            "list_version": d.list_version,
                            "issued_at": d.issued_at
                        })
                    )?;
                } else {
                    let mark = if d.current { " (this device)" } else { "" };
                    let state = if !d.certified {
                        "  NOT CERTIFIED BY YOU"
                    } else if !d.listed {
                        "  not on your signed device list (being linked, or revoked)"
                    } else {
                        ""
                    };
                    out!("{}{mark}{state}", d.id)?;
                }
            }
        }
        AccountCommand::Verify { address, confirm } => {
            let address = lookup::address(&address)?;
            let (number, verified) = match client.safety_number(&address).await {
                Err(CoreError::Refused(alert)) if alert.code == AlertCode::IdentityChanged => {
                    // The number to compare before accepting: the one the new key gives.
                    if let Some(new) = client.account.pending_safety_number(&address)? {
                        out!("the identity key of {address} changed; the new safety number:")?;
                        out!("{}", new.display())?;
                        out!("qr: {}", new.qr_payload())?;
                        out!(
                            "status: changed, not accepted (compare it with {address}, then run \
                             `missive trust {address} --accept-new-key`)"
                        )?;
                    }
                    return Err(CoreError::Refused(alert).into());
                }
                number => number?,
            };
            if confirm {
                client.account.mark_verified(&address)?;
            }
            out!("safety number with {address}:")?;
            out!("{}", number.display())?;
            out!("qr: {}", number.qr_payload())?;
            let status = if confirm || verified {
                "verified"
            } else {
                "not verified"
            };
            out!("status: {status}")?;
        }
        AccountCommand::Trust {
            address,
            accept_new_key,
        } => {
            let address = lookup::address(&address)?;
            if !accept_new_key {
                anyhow::bail!(
                    "compare the new safety number first (missive verify {address}), then run \
                     missive trust {address} --accept-new-key"
                );
            }
            client.accept_new_key(&address).await?;
            let (number, _) = client.account.safety_number(&address)?;
            out!("now trusting the current identity key of {address}; new safety number:")?;
            out!("{}", number.display())?;
        }
        AccountCommand::Alerts => {
            for a in client.account.store().alerts()? {
                out!("{} {}: {}", a.at, a.code, a.detail)?;
            }
        }
        AccountCommand::Transparency {
            json, audit: false, ..
        } => {
            // A lookup of our own account: proven, and it moves the trusted head forward.
            let address = client.account.address().to_owned();
            client.fetch_user(&address).await?;
            let log = client.account.kt_log()?;
            let head = client.account.kt_head()?;
            let (domain, key) = log.map_or((String::new(), String::new()), |(d, k)| {
                (d, missive_core::hex(&k))
            });
            let (size, root) =
                head.map_or((0, String::new()), |h| (h.size, missive_core::hex(&h.root)));
            if json {
                out!(
                    "{}",
                    json!({"domain": domain, "key": key, "size": size, "root": root})
                )?;
            } else {
                out!("transparency log of {domain}, key {key}")?;
                out!("trusted head: {size} entries, root {root}")?;
                out!(
                    "every key lookup is proven to be in this log, and every new head to \
                     extend this one"
                )?;
            }
        }
        AccountCommand::Transparency {
            json,
            audit: true,
            state,
        } => {
            let path = state.unwrap_or_else(|| home.join("audit.json"));
            let previous: Option<missive_core::audit::AuditState> = match std::fs::read(&path) {
                Ok(bytes) => Some(
                    serde_json::from_slice(&bytes)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let report = missive_core::audit::audit(&client.transport(), previous.as_ref()).await?;
            std::fs::write(&path, serde_json::to_vec_pretty(&report.state)?)
                .with_context(|| format!("writing {}", path.display()))?;
            if json {
                out!(
                    "{}",
                    json!({
                        "domain": report.state.domain,
                        "entries": report.state.size,
                        "previous": report.previous,
                        "root": report.state.root,
                    })
                )?;
            } else {
                out!(
                    "log of {}: {} entries checked, the head verified, and the {} entries of \
                     the last audit unchanged",
                    report.state.domain,
                    report.state.size,
                    report.previous
                )?;
            }
        }
    }
    Ok(alerts)
}

/// Syncs before showing local state; when the server is unreachable, says so and shows what
/// is stored.
pub(crate) async fn sync_if_reachable(client: &mut Client) -> anyhow::Result<usize> {
    match client.sync().await {
        Ok(outcomes) => Ok(report(&outcomes)),
        Err(CoreError::Network(e)) => {
            eprintln!("warning: showing stored state; cannot reach the server: {e}");
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The arguments and subcommands under `cmd` that `--help` would show without a word.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" && arg.get_help().is_none() {
                out.push(format!("{path} <{id}>"));
            }
        }
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                out.push(path.clone());
            }
            undocumented(sub, &path, out);
        }
    }

    #[test]
    fn every_command_and_argument_says_what_it_is() {
        let cli = super::Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        undocumented(&cli, "missive", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
