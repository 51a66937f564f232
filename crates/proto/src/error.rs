//! Errors on the wire: a stable machine code and a human message.

use serde::{Deserialize, Serialize};

/// Stable machine-readable error codes. Clients match on these; never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The body is not valid JSON or does not match the expected shape.
    MalformedRequest,
    /// The body exceeds this route's limit.
    PayloadTooLarge,
    /// A binary field (MLS message, key package, certificate) does not decode.
    MalformedMls,
    /// Missing, malformed or unknown device token.
    Unauthorized,
    /// The device is known but may not do this (not a member, not its own key package...).
    Forbidden,
    /// The address is not in a domain this server serves.
    DomainNotAllowed,
    /// Registration needs an invite code.
    InviteRequired,
    /// The invite code is unknown, already used, expired, or for another address.
    InviteInvalid,
    /// The address is already registered.
    AddressTaken,
    /// The device certificate does not verify against the identity key.
    InvalidCertificate,
    /// The key package does not verify or does not belong to this device.
    InvalidKeyPackage,
    /// No such user, group or resource.
    NotFound,
    /// The group already exists.
    GroupExists,
    /// The commit or message is not for the group's current epoch; see `current_epoch`.
    StaleEpoch,
    /// The commit does not validate against the group's public state.
    InvalidCommit,
    /// The target user has a device without any key package left.
    NoKeyPackage,
    /// Too many requests; retry later.
    RateLimited,
    /// The user's blobs would exceed the server's storage quota.
    QuotaExceeded,
    /// The upload does not continue at the offset the server has; see `received`.
    OffsetMismatch,
    /// The blob's upload is not complete yet, so it cannot be downloaded.
    BlobIncomplete,
    /// The requested byte range is not within the blob.
    RangeNotSatisfiable,
    /// The device-link channel is unknown, already used or expired.
    LinkNotFound,
    /// The device link is not at the step this request belongs to.
    LinkOutOfOrder,
    /// Method not allowed on this route.
    MethodNotAllowed,
    /// The device list does not verify under the user's identity key, is for another user, or
    /// lists a device that is not an active device of the user (or not the caller).
    InvalidDeviceList,
    /// The server holds this device list version or a later one; fetch it and sign the next.
    StaleDeviceList,
    /// The device is still on its user's signed device list: publish a list without it first.
    DeviceListed,
    /// No recovery backup of this address opens with that key (the same answer whether the
    /// address, its backup or the key is at fault).
    RecoveryRefused,
    /// The account has a recovery key already, and this is not it: a device that does not
    /// hold it cannot replace the backup.
    RecoveryKeyExists,
    /// The conversation has a call going on under another call id: join that one.
    CallInProgress,
    /// This device is in no call of the conversation.
    NotInCall,
    /// The server failed; the request may be retried.
    Internal,
    /// A code added after this version (never sent by this server): the client keeps the
    /// server's message and treats it as a refusal.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::MalformedMls => "malformed_mls",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::DomainNotAllowed => "domain_not_allowed",
            ErrorCode::InviteRequired => "invite_required",
            ErrorCode::InviteInvalid => "invite_invalid",
            ErrorCode::AddressTaken => "address_taken",
            ErrorCode::InvalidCertificate => "invalid_certificate",
            ErrorCode::InvalidKeyPackage => "invalid_key_package",
            ErrorCode::NotFound => "not_found",
            ErrorCode::GroupExists => "group_exists",
            ErrorCode::StaleEpoch => "stale_epoch",
            ErrorCode::InvalidCommit => "invalid_commit",
            ErrorCode::NoKeyPackage => "no_key_package",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::OffsetMismatch => "offset_mismatch",
            ErrorCode::BlobIncomplete => "blob_incomplete",
            ErrorCode::RangeNotSatisfiable => "range_not_satisfiable",
            ErrorCode::LinkNotFound => "link_not_found",
            ErrorCode::LinkOutOfOrder => "link_out_of_order",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::InvalidDeviceList => "invalid_device_list",
            ErrorCode::StaleDeviceList => "stale_device_list",
            ErrorCode::DeviceListed => "device_listed",
            ErrorCode::RecoveryRefused => "recovery_refused",
            ErrorCode::RecoveryKeyExists => "recovery_key_exists",
            ErrorCode::CallInProgress => "call_in_progress",
            ErrorCode::NotInCall => "not_in_call",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every error response.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// With `stale_epoch`: the group's current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
    /// With `offset_mismatch`: the bytes of the blob the server holds, where the upload resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}
