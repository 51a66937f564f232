//! What the page sees: records as plain JavaScript objects (the types of the TypeScript
//! section in `lib.rs`).

use missive_core::account::Outcome;
use std::collections::BTreeMap;

use missive_core::store::{ConversationRecord, Edit, MessageRecord, Notice, Receipts};
use serde::Serialize;

/// How long a link waits for the other device.
pub(crate) const LINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Serialize)]
pub(crate) struct LinkedView<'a> {
    pub(crate) device_id: &'a str,
    pub(crate) conversations: usize,
    pub(crate) messages: usize,
}

#[derive(Serialize)]
pub(crate) struct DeviceView<'a> {
    pub(crate) id: &'a str,
    pub(crate) current: bool,
    pub(crate) certified: bool,
    pub(crate) listed: bool,
    pub(crate) list_version: u64,
    pub(crate) issued_at: u64,
}

#[derive(Serialize)]
pub(crate) struct SafetyNumberView {
    pub(crate) digits: String,
    pub(crate) qr: String,
    pub(crate) qr_svg: String,
    pub(crate) verified: bool,
    pub(crate) changed: bool,
}

/// A message as the page sees it (the `Message` type above).
#[derive(Serialize)]
pub(crate) struct MessageView<'a> {
    pub(crate) id: &'a str,
    pub(crate) conversation: &'a str,
    pub(crate) sender: &'a str,
    pub(crate) sender_device: &'a str,
    pub(crate) text: &'a str,
    pub(crate) sent_at: u64,
    pub(crate) server_time: u64,
    pub(crate) seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unsupported: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<FileView<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub(crate) edits: &'a [Edit],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) deleted: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) reactions: &'a BTreeMap<String, Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) notice: Option<&'a Notice>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) forwarded: bool,
}

#[derive(Serialize)]
pub(crate) struct FileView<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) size: u64,
    pub(crate) media_type: &'a str,
}

impl<'a> From<&'a MessageRecord> for MessageView<'a> {
    fn from(m: &'a MessageRecord) -> Self {
        MessageView {
            id: &m.id,
            conversation: &m.conversation,
            sender: &m.sender,
            sender_device: &m.sender_device,
            text: &m.text,
            sent_at: m.sent_at,
            server_time: m.server_time,
            seq: m.seq,
            reply_to: m.reply_to.as_deref(),
            unsupported: m.unsupported_kind(),
            file: m.file.as_deref().map(|f| FileView {
                id: &f.blob,
                name: &f.name,
                size: f.size,
                media_type: &f.media_type,
            }),
            edits: &m.edits,
            deleted: m.deleted,
            reactions: &m.reactions,
            expires_at: m.expires_at,
            notice: m.notice.as_ref(),
            forwarded: m.forwarded,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ConversationView<'a> {
    pub(crate) id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dm_peer: Option<&'a str>,
    pub(crate) created_at: u64,
    pub(crate) left: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) disappear: Option<u64>,
    pub(crate) receipts: &'a BTreeMap<String, Receipts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<&'a missive_proto::api::Label>,
}

impl<'a> From<&'a ConversationRecord> for ConversationView<'a> {
    fn from(c: &'a ConversationRecord) -> Self {
        ConversationView {
            id: &c.id,
            name: c.name.as_deref(),
            dm_peer: c.dm_peer.as_deref(),
            created_at: c.created_at,
            left: c.left,
            disappear: c.disappear,
            receipts: &c.receipts,
            label: c.label.as_ref(),
        }
    }
}

/// An [`Outcome`] as the page sees it (the `Outcome` type above).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutcomeView<'a> {
    Message {
        message: MessageView<'a>,
    },
    Changed {
        message: MessageView<'a>,
    },
    Receipts {
        conversation: &'a str,
    },
    Typing {
        conversation: &'a str,
        sender: &'a str,
    },
    Joined {
        conversation: &'a str,
    },
    Left {
        conversation: &'a str,
    },
    MembershipChanged {
        conversation: &'a str,
    },
    Alert {
        code: &'static str,
        detail: &'a str,
    },
}

impl<'a> From<&'a Outcome> for OutcomeView<'a> {
    fn from(o: &'a Outcome) -> Self {
        match o {
            Outcome::Message(m) => OutcomeView::Message {
                message: MessageView::from(m),
            },
            Outcome::Changed(m) => OutcomeView::Changed {
                message: MessageView::from(m),
            },
            Outcome::Receipts(c) => OutcomeView::Receipts { conversation: c },
            Outcome::Typing(c, sender) => OutcomeView::Typing {
                conversation: c,
                sender,
            },
            Outcome::Joined(c) => OutcomeView::Joined { conversation: c },
            Outcome::Left(c) => OutcomeView::Left { conversation: c },
            Outcome::MembershipChanged(c) => OutcomeView::MembershipChanged { conversation: c },
            Outcome::Alert(a) => OutcomeView::Alert {
                code: a.code.as_str(),
                detail: &a.detail,
            },
        }
    }
}
