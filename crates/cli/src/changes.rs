//! The commands that change a conversation rather than write in it: edit, delete, react,
//! mark read, its settings (timer, label), the organisation's labels, forwarding, search, and
//! whether read receipts are sent.

use clap::Subcommand;
use missive_core::client::Client;
use missive_core::lookup;
use serde_json::json;

use crate::show::{self, print_message, report};
use crate::{conversation_id, sync_if_reachable, synced_conversation};

#[derive(Subcommand)]
pub enum ConversationCommand {
    /// Replace the text of one of your messages, for everyone (each device keeps the earlier
    /// texts and shows it as edited).
    Edit {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// The message's id (or its first 8 characters or more).
        message: String,
        /// The new text.
        text: String,
    },
    /// Delete one of your messages for everyone: every device that receives the deletion
    /// erases its text (or its file's key).
    Delete {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// The message's id (or its first 8 characters or more).
        message: String,
    },
    /// React to a message with an emoji (one reaction per emoji and person), or take the
    /// reaction back with --remove.
    React {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// The message's id (or its first 8 characters or more).
        message: String,
        /// One emoji.
        emoji: String,
        /// Take the reaction back.
        #[arg(long)]
        remove: bool,
    },
    /// Mark everything in a conversation as read: its members see it in their read receipts
    /// (unless `missive read-receipts off`).
    Read {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
    },
    /// Show a conversation's settings, or change them for every member.
    Conversation {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// Disappearing messages: off, 5m, 1h, 1d, 1w or 4w (messages sent afterwards are
        /// erased on every device that long after the server took them).
        #[arg(long)]
        disappear: Option<String>,
        /// A sensitivity label your organisation defines (`missive labels`), or `none`: its
        /// rules apply on every member's device.
        #[arg(long)]
        label: Option<String>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Search the messages stored on this device (nothing is asked of the server): each word
    /// must begin a word of the text or of a file's name, case and accents ignored. Newest
    /// first.
    Search {
        /// The words to find (quoted together or not).
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// Only in this conversation (its id, or its first 8 characters or more).
        #[arg(long)]
        conversation: Option<String>,
        /// Only messages from this address.
        #[arg(long)]
        from: Option<String>,
        /// Only messages sent on or after this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        after: Option<String>,
        /// Only messages sent before this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        before: Option<String>,
        /// At most this many results.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// The sensitivity labels your organisation defines, with their rules.
    Labels {
        /// One JSON object per label.
        #[arg(long)]
        json: bool,
    },
    /// Forward a message (its text, or its file) to another conversation, unless a label
    /// forbids it; prints the new message's id alone on its last line.
    Forward {
        /// The message's id (or its first 8 characters or more).
        message: String,
        /// The conversation to forward to (its id, or its first 8 characters or more).
        conversation: String,
    },
    /// Send read receipts (`on`, the default) or not (`off`); without either, say which.
    ReadReceipts {
        /// `on` or `off` (without it, shows whether it is on).
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
    },
}

/// Runs a command; returns the number of security alerts raised.
pub async fn run(client: &mut Client, command: ConversationCommand) -> anyhow::Result<usize> {
    let mut alerts = 0usize;
    match command {
        ConversationCommand::Edit {
            conversation,
            message,
            text,
        } => {
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
            let m = client.edit(&conversation, &message, &text).await?;
            out!("{}", m.id)?;
        }
        ConversationCommand::Delete {
            conversation,
            message,
        } => {
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
            let m = client.delete(&conversation, &message).await?;
            out!("deleted {}", m.id)?;
        }
        ConversationCommand::React {
            conversation,
            message,
            emoji,
            remove,
        } => {
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
            let m = client
                .react(&conversation, &message, &emoji, remove)
                .await?;
            out!("{}", show::reactions_line(&m))?;
        }
        ConversationCommand::Read { conversation } => {
            let conversation = synced_conversation(client, &conversation, &mut alerts).await?;
            let position = client.mark_read(&conversation).await?;
            out!("read up to {position}")?;
        }
        ConversationCommand::Conversation {
            conversation,
            disappear,
            label,
            json,
        } => {
            alerts += sync_if_reachable(client).await?;
            let conversation = conversation_id(client, &conversation)?;
            let seconds = disappear
                .map(|typed| missive_core::client::parse_timer(&typed))
                .transpose()?;
            if label.is_some() || seconds.is_some() {
                alerts += report(&client.sync().await?);
            }
            if let Some(label) = label {
                let name = Some(label.as_str()).filter(|l| !l.eq_ignore_ascii_case("none"));
                client.set_label(&conversation, name).await?;
            }
            if let Some(seconds) = seconds {
                client.set_timer(&conversation, seconds).await?;
            }
            show::conversation_settings(client, &conversation, json)?;
        }
        ConversationCommand::Labels { json } => {
            let labels = client.labels().await?;
            if labels.is_empty() && !json {
                eprintln!("your organisation defines no labels");
            }
            for l in labels {
                if json {
                    out!("{}", json!(l))?;
                } else {
                    out!("{}{}", l.name, show::rules(&l))?;
                }
            }
        }
        ConversationCommand::Forward {
            message,
            conversation,
        } => {
            let to = synced_conversation(client, &conversation, &mut alerts).await?;
            let m = client.forward(&message, &to).await?;
            out!("{}", m.id)?;
        }
        ConversationCommand::Search {
            query,
            conversation,
            from,
            after,
            before,
            limit,
            json,
        } => {
            let query = query.join(" ");
            let Some(mut q) = missive_core::search::Query::new(&query) else {
                anyhow::bail!("{query:?} holds no word to search for");
            };
            q.conversation = conversation
                .map(|c| conversation_id(client, &c))
                .transpose()?;
            q.sender = from.map(|a| lookup::address(&a)).transpose()?;
            q.after = after.map(|d| lookup::day(&d)).transpose()?;
            q.before = before.map(|d| lookup::day(&d)).transpose()?;
            q.limit = limit.max(1);
            client.erase_expired()?;
            let found = client.account.store().search(&q)?;
            if found.is_empty() && !json {
                eprintln!("no message matches");
            }
            for m in found {
                let c = client.account.store().conversation(&m.conversation)?;
                let shown = c.as_ref().map(|conversation| show::Receipted {
                    conversation,
                    members: None,
                });
                print_message(&m, shown.as_ref(), json)?;
            }
        }
        ConversationCommand::ReadReceipts { state } => {
            if let Some(state) = state {
                client.account.set_read_receipts(state == "on")?;
            }
            let on = client.account.read_receipts()?;
            out!("read receipts: {}", if on { "on" } else { "off" })?;
        }
    }
    Ok(alerts)
}
