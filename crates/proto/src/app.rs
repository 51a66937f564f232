//! The application payload carried inside MLS application messages. The server never sees it.

use serde::{Deserialize, Serialize};

use crate::B64;

/// One application-level message, serialized as JSON and then encrypted by MLS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMessage {
    /// Random id chosen by the sender (hex); receivers deduplicate on it.
    pub id: String,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// The ids of the sender device's earlier messages in this conversation that the server
    /// accepted and no accepted message has named yet: usually the one before, several when
    /// sends were in flight together. Each was accepted before this message was encrypted, so
    /// an honest server delivers them first; a receiver that has messages from that device but
    /// not one of these knows the server withheld something (threat 9).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prev: Vec<String>,
    /// The key transparency head the sender's device last accepted, sent when it changed
    /// (gossip): members compare it with the log the server shows them, so that a server
    /// showing different logs to different users is caught by the users themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kt: Option<KtGossip>,
    /// Forwarded by its sender from another conversation (shown as such).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forwarded: bool,
    pub body: AppBody,
}

/// A signed head of a domain's key transparency log, as one member passes it on to others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtGossip {
    /// The domain whose log it is (part of what the log key signs).
    pub domain: String,
    pub size: u64,
    /// The Merkle root (32 bytes).
    pub root: B64,
    /// Ed25519 by the log key (64 bytes).
    pub signature: B64,
}

/// What an application message says.
///
/// Forward compatibility: a body of a kind this version does not know (sent by a newer client)
/// is not an error. It is read as [`AppBody::Unknown`], keeping the whole body as received, so
/// that it is stored, shown as a message this version cannot display, and readable by a later
/// version from what was stored. It serializes back to exactly that body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppBody {
    /// A text message; `reply_to` names the message it answers (its id, in the same
    /// conversation). Readers of versions before replies show the text alone.
    Text {
        text: String,
        reply_to: Option<String>,
    },
    /// A file: where its ciphertext is and how to decrypt it.
    File { file: FileRef },
    /// The conversation's metadata, sent by its creator and re-sent on every add so that new
    /// members learn it. It is never visible to the server.
    /// `timer`: the disappearing-message timer in seconds, if on; `label`: the sensitivity
    /// label, if any.
    Meta {
        name: Option<String>,
        dm: bool,
        timer: Option<u64>,
        label: Option<crate::api::Label>,
    },
    /// A new text for an earlier message of the same sender (`target`, its id).
    Edit { target: String, text: String },
    /// Erases an earlier message of the same sender, on every device that receives this.
    Delete { target: String },
    /// The sender's reaction to a message (one per user and emoji), or its removal.
    React {
        target: String,
        emoji: String,
        remove: bool,
    },
    /// How far the sender's user has received (`delivered`) and read (`read`) the conversation,
    /// as positions in its sequence; 0 says nothing of that kind.
    Receipt { delivered: u64, read: u64 },
    /// The conversation's disappearing-message timer, in seconds (`None`: off), set by a member
    /// for everyone: messages after this one are erased that long after the server took them.
    Timer { seconds: Option<u64> },
    /// The conversation's sensitivity label with its rules (`None`: no label), set by a member
    /// for everyone.
    Label { label: Option<crate::api::Label> },
    /// The sender is typing (shown for a few seconds, never stored).
    Typing,
    /// A call in the conversation: started by the sender (`ended` none: the members' devices
    /// ring), or ended, after `ended` seconds, sent by the last to leave with who took part
    /// (`answered`, addresses). `call_id` is the call's id in hex.
    Call {
        call_id: String,
        ended: Option<u64>,
        answered: Vec<String>,
    },
    /// A kind added after this version: its `type`, and the whole body.
    Unknown {
        kind: String,
        body: serde_json::Value,
    },
}

/// The kinds this version knows, as the wire spells them (`{"type": "text", ...}`).
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Known {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    File {
        file: FileRef,
    },
    Meta {
        #[serde(default)]
        name: Option<String>,
        dm: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timer: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<crate::api::Label>,
    },
    Edit {
        target: String,
        text: String,
    },
    Delete {
        target: String,
    },
    React {
        target: String,
        emoji: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remove: bool,
    },
    Receipt {
        #[serde(default, skip_serializing_if = "is_zero")]
        delivered: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        read: u64,
    },
    Timer {
        seconds: Option<u64>,
    },
    Label {
        label: Option<crate::api::Label>,
    },
    Typing,
    Call {
        call_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ended: Option<u64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        answered: Vec<String>,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<Known> for AppBody {
    fn from(known: Known) -> Self {
        match known {
            Known::Text { text, reply_to } => AppBody::Text { text, reply_to },
            Known::File { file } => AppBody::File { file },
            Known::Meta {
                name,
                dm,
                timer,
                label,
            } => AppBody::Meta {
                name,
                dm,
                timer,
                label,
            },
            Known::Edit { target, text } => AppBody::Edit { target, text },
            Known::Delete { target } => AppBody::Delete { target },
            Known::React {
                target,
                emoji,
                remove,
            } => AppBody::React {
                target,
                emoji,
                remove,
            },
            Known::Receipt { delivered, read } => AppBody::Receipt { delivered, read },
            Known::Timer { seconds } => AppBody::Timer { seconds },
            Known::Label { label } => AppBody::Label { label },
            Known::Typing => AppBody::Typing,
            Known::Call {
                call_id,
                ended,
                answered,
            } => AppBody::Call {
                call_id,
                ended,
                answered,
            },
        }
    }
}

impl AppBody {
    /// The kind as the wire names it.
    pub fn kind(&self) -> &str {
        match self {
            AppBody::Text { .. } => "text",
            AppBody::File { .. } => "file",
            AppBody::Meta { .. } => "meta",
            AppBody::Edit { .. } => "edit",
            AppBody::Delete { .. } => "delete",
            AppBody::React { .. } => "react",
            AppBody::Receipt { .. } => "receipt",
            AppBody::Timer { .. } => "timer",
            AppBody::Label { .. } => "label",
            AppBody::Typing => "typing",
            AppBody::Call { .. } => "call",
            AppBody::Unknown { kind, .. } => kind,
        }
    }
}

impl Serialize for AppBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let known = match self {
            AppBody::Text { text, reply_to } => Known::Text {
                text: text.clone(),
                reply_to: reply_to.clone(),
            },
            AppBody::File { file } => Known::File { file: file.clone() },
            AppBody::Meta {
                name,
                dm,
                timer,
                label,
            } => Known::Meta {
                name: name.clone(),
                dm: *dm,
                timer: *timer,
                label: label.clone(),
            },
            AppBody::Edit { target, text } => Known::Edit {
                target: target.clone(),
                text: text.clone(),
            },
            AppBody::Delete { target } => Known::Delete {
                target: target.clone(),
            },
            AppBody::React {
                target,
                emoji,
                remove,
            } => Known::React {
                target: target.clone(),
                emoji: emoji.clone(),
                remove: *remove,
            },
            AppBody::Receipt { delivered, read } => Known::Receipt {
                delivered: *delivered,
                read: *read,
            },
            AppBody::Timer { seconds } => Known::Timer { seconds: *seconds },
            AppBody::Label { label } => Known::Label {
                label: label.clone(),
            },
            AppBody::Typing => Known::Typing,
            AppBody::Call {
                call_id,
                ended,
                answered,
            } => Known::Call {
                call_id: call_id.clone(),
                ended: *ended,
                answered: answered.clone(),
            },
            AppBody::Unknown { body, .. } => return body.serialize(serializer),
        };
        known.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AppBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let body = serde_json::Value::deserialize(deserializer)?;
        let kind = body
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| D::Error::custom("a message body has no type"))?
            .to_owned();
        match kind.as_str() {
            // A known kind must be well formed: a malformed one is refused, not shown.
            "text" | "file" | "meta" | "edit" | "delete" | "react" | "receipt" | "timer"
            | "label" | "typing" | "call" => Known::deserialize(body)
                .map(AppBody::from)
                .map_err(D::Error::custom),
            _ => Ok(AppBody::Unknown { kind, body }),
        }
    }
}

/// A shared file, as its sender describes it inside the encrypted message. None of this is
/// visible to the server, which holds only the padded ciphertext under an opaque id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// The blob holding the ciphertext.
    pub blob: String,
    /// The file's fresh random secret (32 bytes); the chunk key derives from it.
    pub secret: B64,
    /// BLAKE3 digest of the plaintext, hex.
    pub blake3: String,
    /// The plaintext size in bytes.
    pub size: u64,
    pub name: String,
    pub media_type: String,
}
