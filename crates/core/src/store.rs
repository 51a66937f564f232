//! The account's local storage interface. One [`AccountStore`] per account home; every state
//! change of one step (MLS state, conversations, messages, cursor) is written as one atomic
//! [`Batch`], so a crash never leaves MLS state and app state out of step.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// A conversation as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRecord {
    /// Hex of the MLS group id.
    pub id: String,
    pub name: Option<String>,
    /// For a one-to-one conversation, the other user.
    pub dm_peer: Option<String>,
    pub created_at: u64,
    /// This device was removed: nothing new can be read or sent.
    pub left: bool,
    /// The disappearing-message timer in seconds, if on: each message is erased that long
    /// after the server took it.
    pub disappear: Option<u64>,
    /// How far each member (by address, ours included) has received and read the
    /// conversation: sequence positions from their receipts.
    pub receipts: BTreeMap<String, Receipts>,
    /// The sensitivity label a member set, with the rules it carries.
    pub label: Option<missive_proto::api::Label>,
}

/// How far one user has received and read a conversation (sequence positions; 0: nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipts {
    pub delivered: u64,
    pub read: u64,
}

impl ConversationRecord {
    /// A new conversation's record, with nothing set.
    pub fn new(id: String, name: Option<String>, dm_peer: Option<String>, created_at: u64) -> Self {
        ConversationRecord {
            id,
            name,
            dm_peer,
            created_at,
            left: false,
            disappear: None,
            receipts: BTreeMap::new(),
            label: None,
        }
    }

    /// How restrictive the conversation is (its label's level; 0 without one).
    pub fn level(&self) -> u32 {
        self.label.as_ref().map_or(0, |l| l.level)
    }

    /// The members other than `sender` whose receipts reach position `seq`: (delivered, read).
    pub fn receipts_for(&self, sender: &str, seq: u64) -> (Vec<String>, Vec<String>) {
        let mut delivered = Vec::new();
        let mut read = Vec::new();
        for (who, r) in &self.receipts {
            if who == sender {
                continue;
            }
            if r.read >= seq {
                read.push(who.clone());
                delivered.push(who.clone());
            } else if r.delivered >= seq {
                delivered.push(who.clone());
            }
        }
        (delivered, read)
    }
}

/// A stored message (and, as JSON, a message of a history handed to another device: fields
/// missing from what an earlier version wrote take their defaults).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageRecord {
    /// The sender's message id (hex); unique.
    pub id: String,
    pub conversation: String,
    pub sender: String,
    pub sender_device: String,
    pub text: String,
    /// Sender's clock, ms.
    pub sent_at: u64,
    /// Server's acceptance time, ms (0 for our own messages until echoed).
    pub server_time: u64,
    /// Position in the group's sequence.
    pub seq: u64,
    /// For a file message: the file and its key (`text` is then empty).
    pub file: Option<Box<missive_proto::app::FileRef>>,
    /// For a message of a kind this version cannot display (sent by a newer version): its body
    /// as received, as JSON, kept for a later version to show (`text` is then empty).
    pub unsupported: Option<String>,
    /// For a reply: the id of the message it answers.
    pub reply_to: Option<String>,
    /// Earlier texts of an edited message, oldest first (kept on this device only).
    pub edits: Vec<Edit>,
    /// Deleted by its sender for everyone: text, file and edits are gone.
    pub deleted: bool,
    /// Reactions: each emoji with the users who chose it, in the order they did.
    pub reactions: BTreeMap<String, Vec<String>>,
    /// When the conversation's timer erases this message (ms since the Unix epoch).
    pub expires_at: Option<u64>,
    /// For a change of the conversation's settings shown in its history (no text).
    pub notice: Option<Notice>,
    /// Forwarded by its sender from another conversation.
    pub forwarded: bool,
}

/// An earlier text of an edited message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edit {
    pub text: String,
    /// When the text was replaced (the editor's clock, ms).
    pub until: u64,
}

/// What a message without text stands for in a conversation's history: a change of its
/// settings, or a message that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// The disappearing-message timer, in seconds (`None`: off).
    Disappear { seconds: Option<u64> },
    /// The sensitivity label, by name (`None`: taken off).
    Label { name: Option<String> },
    /// A message this device could not read, and why in plain words (a security check
    /// refused it: the alert's code and detail). It stands where the message would be, so
    /// that nothing is a silent gap.
    Unreadable { code: String, reason: String },
    /// A call: started (`ended` none), or ended after `ended` seconds with who took part
    /// (`answered`, addresses; a member not among them missed it).
    Call {
        call_id: String,
        ended: Option<u64>,
        answered: Vec<String>,
    },
}

impl MessageRecord {
    /// The kind of an unsupported message (`"poll"`, say), as its sender named it.
    pub fn unsupported_kind(&self) -> Option<String> {
        let body: serde_json::Value = serde_json::from_str(self.unsupported.as_deref()?).ok()?;
        body.get("type")?.as_str().map(str::to_owned)
    }
}

/// A pinned contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub address: String,
    /// The identity key trusted for this user.
    pub identity_key: Vec<u8>,
    /// Marked verified by the user (safety number compared); lost when the key changes.
    pub verified: bool,
    /// A different key the server announced, not accepted: sending to this user is blocked.
    pub pending_key: Option<Vec<u8>>,
    /// The highest-versioned signed device list seen for this user (verified under
    /// `identity_key`): a lower version is refused, and a device not on it is never added.
    #[serde(default)]
    pub device_list: Option<Vec<u8>>,
}

/// A security alert kept for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub at: u64,
    pub code: String,
    pub detail: String,
}

/// One write of a batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Op {
    Setting(std::borrow::Cow<'static, str>, Vec<u8>),
    /// An MLS storage entry; `None` deletes it.
    Mls(Vec<u8>, Option<Vec<u8>>),
    /// Marks stored MLS entries as content-addressed: never rewritten, only deleted.
    FreezeMls(Vec<Vec<u8>>),
    Conversation(ConversationRecord),
    Message(MessageRecord),
    Contact(ContactRecord),
    Alert(AlertRecord),
    /// Marks messages as shown to the user (by `sync`).
    MarkShown(Vec<String>),
    /// Our message, accepted by the server: stored as shown; the messages it `named` are named
    /// now, and it waits to be named by a later one (threat 9's chain, see `AppMessage::prev`).
    Sent {
        record: MessageRecord,
        named: Vec<String>,
    },
    /// A stored message changed (edited, deleted, reacted to): its content is replaced by the
    /// record's, its marks kept. Nothing happens if it is not stored.
    Revise(MessageRecord),
    /// Messages erased (their timer ran out): nothing of them is kept.
    Erase(Vec<String>),
    /// A message that changed others (an edit, a receipt...) was applied: it counts as held
    /// (`has_message`, `has_message_at`), so that it is applied once.
    Applied {
        id: String,
        conversation: String,
        seq: u64,
    },
}

/// Writes applied atomically, in order.
pub type Batch = Vec<Op>;

/// How hard a batch must be on disk before `apply` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives a power cut: required before anything derived from the batch leaves the device
    /// (a message encrypted with a new ratchet generation, a pending commit, key packages).
    Durable,
    /// Survives a crash of the process; a power cut may lose the latest such batches, all
    /// together and in order (received messages with their cursor: they are fetched again).
    Relaxed,
}

/// Persistent storage of one account.
pub trait AccountStore {
    fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError>;
    /// Every MLS entry, and the keys of those marked frozen.
    #[allow(clippy::type_complexity)]
    fn mls_entries(&self) -> Result<(HashMap<Vec<u8>, Vec<u8>>, HashSet<Vec<u8>>), CoreError>;
    fn apply(&mut self, batch: Batch, durability: Durability) -> Result<(), CoreError>;
    fn conversations(&self) -> Result<Vec<ConversationRecord>, CoreError>;
    fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, CoreError>;
    fn dm_with(&self, peer: &str) -> Result<Option<ConversationRecord>, CoreError>;
    fn messages(&self, conversation: &str) -> Result<Vec<MessageRecord>, CoreError>;
    /// Whether a message with this id is stored, or was applied (`Op::Applied`).
    fn has_message(&self, id: &str) -> Result<bool, CoreError>;
    /// Whether a message is stored, or was applied, at position `seq` of `conversation`.
    fn has_message_at(&self, conversation: &str, seq: u64) -> Result<bool, CoreError>;
    /// The id of the latest stored message from `device` in `conversation`.
    fn last_message_from(
        &self,
        conversation: &str,
        device: &str,
    ) -> Result<Option<String>, CoreError>;
    /// Our messages from `device` in `conversation` that were accepted and that no accepted
    /// message has named yet.
    fn unnamed_messages(&self, conversation: &str, device: &str) -> Result<Vec<String>, CoreError>;
    fn contact(&self, address: &str) -> Result<Option<ContactRecord>, CoreError>;
    /// Every pinned contact.
    fn contacts(&self) -> Result<Vec<ContactRecord>, CoreError>;
    fn alerts(&self) -> Result<Vec<AlertRecord>, CoreError>;
    /// Messages whose id, or whose file's blob id, starts with `prefix` (at most three: enough
    /// to tell a unique match from an ambiguous one), oldest first.
    fn messages_matching(&self, prefix: &str) -> Result<Vec<MessageRecord>, CoreError>;
    /// Received messages not yet shown, oldest first.
    fn unshown_messages(&self) -> Result<Vec<MessageRecord>, CoreError>;
    /// The message with id `id`.
    fn message(&self, id: &str) -> Result<Option<MessageRecord>, CoreError>;
    /// The ids of messages whose timer ran out at `now` (ms).
    fn expired_messages(&self, now: u64) -> Result<Vec<String>, CoreError>;
    /// The messages matching `query` (see `crate::search`), newest first, at most its limit.
    fn search(&self, query: &crate::search::Query) -> Result<Vec<MessageRecord>, CoreError>;
}
