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
    pub body: AppBody,
}

/// What an application message says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppBody {
    /// A text message.
    Text { text: String },
    /// A file: where its ciphertext is and how to decrypt it.
    File { file: FileRef },
    /// The conversation's metadata, sent by its creator and re-sent on every add so that new
    /// members learn it. It is never visible to the server.
    Meta {
        #[serde(default)]
        name: Option<String>,
        /// A one-to-one conversation.
        dm: bool,
    },
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
