//! Errors and security alerts of the client library.

use std::fmt;

use missive_proto::ErrorCode;

/// A security-relevant refusal: something the server (or network) sent was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub code: AlertCode,
    pub detail: String,
}

/// Stable codes of security alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertCode {
    /// A leaf, key package or Welcome member lacks a valid certificate from its user's pinned
    /// identity key.
    UncertifiedDevice,
    /// A key package is not for the user or device it was claimed for, or does not verify.
    ForgedKeyPackage,
    /// A user's identity key differs from the pinned one.
    IdentityChanged,
    /// A message could not be decrypted or authenticated (replay, wrong group, tampering).
    RejectedMessage,
    /// A commit or Welcome could not be applied.
    RejectedCommit,
    /// Another member is at the same epoch with a different group state: the server sent
    /// different commits to different members.
    ForkDetected,
    /// A message of a device link was not sealed with the link's code.
    ForgedLink,
    /// A member's message refers to an earlier message of theirs that never arrived: the
    /// server withheld it (or delivers it late, out of order).
    MessagesWithheld,
    /// A message arrived after later events (event ids going backwards): the server held it
    /// back. It is read all the same.
    DeliveredOutOfOrder,
    /// A user's device list is not signed by their identity key (or is malformed, or missing
    /// where one was seen before).
    ForgedDeviceList,
    /// The server served an older device list than one already seen (a revoked device could
    /// come back with it), or a different list under the same version.
    DeviceListRollback,
    /// A device is not on its user's signed device list: a device the user revoked that the
    /// server lists again, or one the server added.
    UnlistedDevice,
    /// The server handed out no key package for a device on its user's signed list (hiding
    /// it from a conversation); the user's own devices add it when they see the conversation.
    HiddenDevice,
    /// A key lookup's answer is not proven to be in the domain's key transparency log, or the
    /// log the server shows does not extend the one it showed before.
    TransparencyFailed,
    /// The key transparency log holds an identity key for our own address that is not ours:
    /// the server may show it to our contacts as us.
    OwnKeyLogged,
    /// Another member was shown a transparency log that the one the server shows us does not
    /// extend (or another root at the same size): the server shows different logs, so
    /// possibly different keys, to different users.
    SplitView,
}

impl AlertCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertCode::UncertifiedDevice => "uncertified_device",
            AlertCode::ForgedKeyPackage => "forged_key_package",
            AlertCode::IdentityChanged => "identity_changed",
            AlertCode::RejectedMessage => "rejected_message",
            AlertCode::RejectedCommit => "rejected_commit",
            AlertCode::ForkDetected => "fork_detected",
            AlertCode::ForgedLink => "forged_link",
            AlertCode::MessagesWithheld => "messages_withheld",
            AlertCode::DeliveredOutOfOrder => "delivered_out_of_order",
            AlertCode::ForgedDeviceList => "forged_device_list",
            AlertCode::DeviceListRollback => "device_list_rollback",
            AlertCode::UnlistedDevice => "unlisted_device",
            AlertCode::HiddenDevice => "hidden_device",
            AlertCode::TransparencyFailed => "transparency_failed",
            AlertCode::OwnKeyLogged => "own_key_logged",
            AlertCode::SplitView => "split_view",
        }
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

/// Failures of client operations.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A security refusal; nothing was applied.
    #[error("refused ({0})")]
    Refused(Alert),
    /// The server answered with an error.
    #[error("server refused: {message} ({})", code.as_str())]
    Server {
        status: u16,
        /// The stable code; [`ErrorCode::Unknown`] for one of a later server version (the
        /// message then ends with the code as the server spelled it).
        code: ErrorCode,
        message: String,
        current_epoch: Option<u64>,
    },
    #[error("cannot reach the server: {0}")]
    Network(String),
    #[error("local storage: {0}")]
    Storage(String),
    #[error("mls: {0}")]
    Mls(String),
    #[error("{0}")]
    Usage(String),
    /// A file's ciphertext failed its integrity checks; nothing was written under its name.
    #[error("file: {0}")]
    File(#[from] crate::file::FileError),
    /// Reading or writing a local file.
    #[error("{0}")]
    Io(String),
    /// The server has no user at this address.
    #[error("no user {0} on this server")]
    UnknownUser(String),
    /// Identity keys of these users are needed before the operation can be checked.
    #[error("unknown contacts: {0:?}")]
    NeedContacts(Vec<String>),
}

impl CoreError {
    pub fn mls(e: impl fmt::Debug) -> Self {
        CoreError::Mls(format!("{e:?}"))
    }

    pub fn storage(e: impl fmt::Display) -> Self {
        CoreError::Storage(e.to_string())
    }

    pub fn refused(code: AlertCode, detail: impl Into<String>) -> Self {
        CoreError::Refused(Alert {
            code,
            detail: detail.into(),
        })
    }

    /// The server's error code, if this is a server refusal.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            CoreError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}
