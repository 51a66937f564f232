//! The application payload carried inside MLS application messages. The server never sees it.

use serde::{Deserialize, Serialize};

/// One application-level message, serialized as JSON and then encrypted by MLS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMessage {
    /// Random id chosen by the sender (hex); receivers deduplicate on it.
    pub id: String,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub sent_at: u64,
    pub body: AppBody,
}

/// What an application message says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppBody {
    /// A text message.
    Text { text: String },
    /// The conversation's metadata, sent by its creator and re-sent on every add so that new
    /// members learn it. It is never visible to the server.
    Meta {
        #[serde(default)]
        name: Option<String>,
        /// A one-to-one conversation.
        dm: bool,
    },
}
