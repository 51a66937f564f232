//! What the command line accepts: every command, its arguments and their help (clap). What
//! each command does is in `main.rs` and the modules it calls.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{call, changes};

#[derive(Parser)]
#[command(
    name = "missive",
    version,
    about = "Missive: end-to-end encrypted messaging"
)]
pub struct Cli {
    /// Account home: keys, conversations and messages of one account on this device.
    #[arg(long, env = "MISSIVE_HOME", global = true)]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Register a new account on a server, with an invite code from its administrator.
    Register {
        /// The server's URL, with its scheme: http://HOST:PORT or https://HOST.
        #[arg(long)]
        server: String,
        /// The one-time invite code the administrator gave you.
        #[arg(long)]
        invite: Option<String>,
        /// Your address on that server, name@domain.
        address: String,
    },
    /// Every device lost: become your account again on this device, with the recovery key
    /// `missive register` printed (read from stdin). Your other devices are taken off the
    /// account, and this one rejoins every conversation.
    Recover {
        /// The server's URL, with its scheme: http://HOST:PORT or https://HOST.
        #[arg(long)]
        server: String,
        /// Your address on that server, name@domain.
        address: String,
    },
    /// Become a new device of your account, with the code `missive link` shows on a device
    /// you already use; joins all its conversations and receives their recent history.
    Join {
        /// The server's URL, with its scheme: http://HOST:PORT or https://HOST.
        #[arg(long)]
        server: String,
        /// The code `missive link` printed on your other device.
        code: String,
        /// Seconds to wait for the other device.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    #[command(flatten)]
    Account(AccountCommand),
}

#[derive(Subcommand)]
pub enum DevicesAction {
    /// Revoke another device of yours (a lost phone): its token stops working and it is
    /// removed from every conversation, so it cannot read anything sent afterwards.
    Revoke {
        /// The device's id, as `missive devices` lists it.
        device_id: String,
    },
}

/// Commands on a registered account.
#[derive(Subcommand)]
pub enum AccountCommand {
    /// Show this account's address, device and server.
    Whoami,
    /// Send a direct message; creates the one-to-one conversation on first use.
    Dm {
        /// The other person's address, name@domain.
        address: String,
        /// The message.
        text: String,
    },
    /// Group conversations.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Send a text message to a conversation.
    Send {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// The message.
        text: String,
    },
    /// Reply to a message: send a text that answers it; prints the new message's id alone on
    /// its last line.
    Reply {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// The id of the message answered (or its first 8 characters or more).
        message: String,
        /// The reply.
        text: String,
    },
    #[command(flatten)]
    Changes(changes::ConversationCommand),
    /// Encrypt a file and send it to a conversation; prints the message id alone on its last
    /// line. Run the same command again to resume an interrupted upload.
    SendFile {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// The file to send.
        path: PathBuf,
    },
    /// Download, decrypt and verify a received file into a directory; exits 0 only if the file
    /// is intact. Nothing is written under its name otherwise.
    Download {
        /// The file's id as `sync` shows it, or the id of the message that shared it (or the
        /// first 8 characters or more of either).
        id: String,
        /// The directory to write the file into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Fetch and decrypt new messages; prints each new message.
    Sync {
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// List conversations.
    Conversations {
        /// One JSON object per conversation.
        #[arg(long)]
        json: bool,
    },
    /// Show the stored messages of a conversation, oldest first.
    History {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// Show security alerts: things the server sent that were refused.
    Alerts,
    /// Key transparency: the head of the domain's log this device trusts (every key lookup is
    /// proven to be in that log, and each head to extend the one before). With --audit, audit
    /// the whole log: every entry is fetched, the tree rebuilt and checked against the head the
    /// server signs and against the head the last audit verified (kept in --state).
    Transparency {
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Audit the whole log.
        #[arg(long)]
        audit: bool,
        /// Where an audit keeps what it verified (default: audit.json in the account home).
        #[arg(long, requires = "audit")]
        state: Option<PathBuf>,
    },
    /// Back the message history up too, sealed under the recovery key (`on`), or stop
    /// (`off`); without either, say which. A recovered device then finds its past messages.
    HistoryBackup {
        /// `on` or `off` (without it, shows whether it is on).
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
    },
    /// Make a recovery key for an account registered before recovery keys existed (prints
    /// `recovery key: KEY` once; refused if the account has one).
    RecoveryKey,
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
        /// One JSON object per device.
        #[arg(long)]
        json: bool,
    },
    /// Show the safety number with a contact (the same on both sides); --confirm marks the
    /// contact verified once you compared it in person or by a trusted channel.
    Verify {
        /// The contact's address, name@domain.
        address: String,
        /// Mark the contact verified (after comparing the number with them).
        #[arg(long)]
        confirm: bool,
    },
    /// Accept a contact's new identity key (after comparing the new safety number).
    Trust {
        /// The contact's address, name@domain.
        address: String,
        /// Confirm that you compared the new safety number and accept the new key.
        #[arg(long)]
        accept_new_key: bool,
    },
    /// Live mode: prints messages as they arrive; with CONV, each line typed is sent there.
    /// `/quit` or end of input leaves.
    Chat {
        /// The conversation to send typed lines to (its id, or its first 8 characters or
        /// more); without it, only listens.
        conversation: Option<String>,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// Voice calls in a conversation, end-to-end encrypted (the server relays media it cannot
    /// read).
    #[command(subcommand)]
    Call(CallCommand),
    /// The calls going on in your conversations.
    Calls {
        /// One JSON object per call.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum CallCommand {
    /// Start a call in the conversation; ends after --duration or when everyone else left.
    Start(call::CallArgs),
    /// Join the call going on in the conversation.
    Join(call::CallArgs),
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group; prints the conversation id alone on its last line.
    Create {
        /// The group's name.
        name: String,
        /// A member's address; repeat the flag for each member
        /// (--member a@example.org --member b@example.org).
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Add a user (all their devices) to a group.
    Add {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// The new member's address, name@domain.
        address: String,
    },
    /// Remove a user (all their devices) from a group.
    Remove {
        /// The conversation's id, or its first 8 characters or more.
        conversation: String,
        /// The member's address, name@domain.
        address: String,
    },
}
