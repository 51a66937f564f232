//! Request and response bodies of the HTTP API, and the frames pushed over the WebSocket.

use serde::{Deserialize, Serialize};

use crate::B64;

/// `POST /v1/register`: a new user with its first device.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The user's address, `name@domain`.
    pub address: String,
    /// One-time invite code from the administrator (not needed under open registration).
    #[serde(default)]
    pub invite: Option<String>,
    /// The user's Ed25519 identity public key (32 bytes).
    pub identity_key: B64,
    /// The first device's certificate, signed by the identity key (see [`crate::cert`]).
    pub device_certificate: B64,
}

/// A registered device and its token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterResponse {
    pub address: String,
    /// Hex device id, as in the certificate.
    pub device_id: String,
    /// Bearer token for this device: `DEVICE_ID.SECRET`. Shown once; the server keeps a hash.
    pub token: String,
}

/// One device as published by the server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    pub device_id: String,
    pub certificate: B64,
}

/// `GET /v1/users/{address}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserResponse {
    pub address: String,
    pub identity_key: B64,
    pub devices: Vec<DeviceInfo>,
    /// The user's current signed device list (see [`crate::devicelist`]); absent until the
    /// user's first device has published one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_list: Option<B64>,
    /// The proof that this identity key and device list are in the domain's key transparency
    /// log (see [`crate::kt`]); with the device list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<KtProof>,
}

/// A signed head of the domain's key transparency log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KtHead {
    /// Leaves in the log.
    pub size: u64,
    /// The Merkle tree's root (32 bytes).
    pub root: B64,
    /// Ed25519 by the log key (64 bytes).
    pub signature: B64,
}

/// Where a user's identity key and device list are in the log, and why a client may believe it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KtProof {
    /// The leaf's position in the log.
    pub index: u64,
    pub head: KtHead,
    /// RFC 6962 audit path of the leaf under `head` (concatenated 32-byte hashes).
    pub inclusion: B64,
    /// Asked with `?since=N`: the RFC 6962 proof that `head` extends the log's first N leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<B64>,
}

/// `GET /v1/transparency?since=N&peer=M`: the log's key and current head, with the proofs
/// that the head extends the log's first N leaves (the head the client accepted last) and its
/// first M leaves (a head another member passed on).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransparencyInfo {
    /// The domain whose log this is (part of every head's signature).
    pub domain: String,
    /// The log's Ed25519 public key (32 bytes).
    pub key: B64,
    pub head: KtHead,
    /// With `?since=N` below the head's size: RFC 6962 consistency proof from N leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<B64>,
    /// With `?peer=M` below the head's size: RFC 6962 consistency proof from M leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_consistency: Option<B64>,
}

/// `GET /v1/transparency/entries?from=N&limit=M`: leaves of the log in order, for auditors.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KtEntries {
    pub entries: Vec<B64>,
}

/// `GET /v1/transparency/mine?since=N`: every leaf of the caller's address, each with its
/// audit path under one signed head, so that a user's own devices see any key or device list
/// the server logged in their name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KtOwnEntries {
    pub head: KtHead,
    /// The proof that `head` extends the log's first N leaves (with `?since=N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<B64>,
    pub entries: Vec<KtOwnEntry>,
}

/// One leaf of the caller's address.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KtOwnEntry {
    pub index: u64,
    pub leaf: B64,
    pub inclusion: B64,
}

/// `PUT /v1/device-list`: publishes the caller's user's next signed device list. Its version
/// must be above the stored one; every device on it must be an active device of the user,
/// the caller among them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishDeviceListRequest {
    pub device_list: B64,
}

/// The stored device list's version.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceListVersion {
    pub version: u64,
}

/// `POST /v1/key-packages`: add to this device's stock.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadKeyPackagesRequest {
    /// One-time key packages (TLS-serialized MLS messages).
    #[serde(default)]
    pub key_packages: Vec<B64>,
    /// The last-resort key package, replacing any previous one.
    #[serde(default)]
    pub last_resort: Option<B64>,
}

/// `GET /v1/key-packages/count` and the answer to an upload.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyPackageCount {
    /// One-time packages left.
    pub count: u32,
    /// Whether a last-resort package is stored.
    pub last_resort: bool,
}

/// `POST /v1/key-packages/claim`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimKeyPackagesRequest {
    pub address: String,
}

/// One claimed key package.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedKeyPackage {
    pub device_id: String,
    pub key_package: B64,
}

/// Exactly one key package per device on the user's signed device list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimKeyPackagesResponse {
    pub key_packages: Vec<ClaimedKeyPackage>,
}

/// `POST /v1/groups`: register a new group at epoch 0, with its creator as only member.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// A signed MLS GroupInfo carrying the ratchet tree extension.
    pub group_info: B64,
}

/// The group's id and current epoch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupResponse {
    pub group_id: B64,
    pub epoch: u64,
}

/// `POST /v1/groups/{group}/commits`: one commit, its Welcome, and the new epoch's GroupInfo.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// The commit as an MLS PublicMessage.
    pub commit: B64,
    /// The Welcome for the devices it adds, if any.
    #[serde(default)]
    pub welcome: Option<B64>,
    /// GroupInfo of the epoch the commit creates, with the ratchet tree extension.
    pub group_info: B64,
}

/// An accepted commit.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitResponse {
    pub epoch: u64,
    pub seq: u64,
    pub event_id: u64,
}

/// `POST /v1/groups/{group}/messages`: an MLS PrivateMessage.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub message: B64,
}

/// An accepted message: its place in the group and in the event log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendResponse {
    pub seq: u64,
    pub event_id: u64,
}

/// `POST /v1/blobs`: announces an upload of `size` bytes of ciphertext for a group's members.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateBlobRequest {
    /// The group whose members may download the blob; the uploader must be one of them.
    pub group_id: B64,
    /// The blob's exact size in bytes.
    pub size: u64,
    /// Seconds the blob is kept once complete, when its message disappears sooner than the
    /// server's retention (a conversation's timer): the server deletes it then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
}

/// A blob and how much of it the server holds durably.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobStatus {
    /// Unguessable blob id (hex).
    pub id: String,
    pub size: u64,
    /// Bytes stored durably; an interrupted upload resumes here.
    pub received: u64,
    /// All `size` bytes are stored: the blob can be downloaded.
    pub complete: bool,
}

/// `GET /v1/groups/{group}/group-info`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupInfoResponse {
    pub epoch: u64,
    pub group_info: B64,
}

/// What an event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An accepted commit (MLS PublicMessage).
    Commit,
    /// An application message (MLS PrivateMessage).
    Message,
    /// A Welcome addressed to this device.
    Welcome,
    /// A kind added after this version (never sent by this server): the client skips it.
    #[serde(other)]
    Unknown,
}

/// One entry of a device's inbox.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Position in the server's event log; the device's cursor.
    pub id: u64,
    pub group_id: B64,
    /// Sequence number within the group (commits and messages); 0 for a Welcome.
    pub seq: u64,
    pub kind: EventKind,
    /// Device id of the sender, as the server saw it authenticate.
    pub sender: String,
    pub payload: B64,
    /// Server time of acceptance, in milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// `GET /v1/events?after=CURSOR&limit=N`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsResponse {
    pub events: Vec<Event>,
    /// Whether more events follow the last one returned.
    pub more: bool,
}

/// `POST /v1/events/ack`: everything up to `cursor` is durably processed by the device.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub cursor: u64,
}

/// The WebSocket subprotocol of `GET /v1/ws`. A client that cannot set an `Authorization`
/// header (a browser) offers it together with [`WS_BEARER_PROTOCOL_PREFIX`]`TOKEN`; the server
/// then answers with this one.
pub const WS_PROTOCOL: &str = "missive";
/// The prefix of the subprotocol that carries a device's bearer token (token characters are
/// all allowed in a subprotocol name: hex, `.`, and base64url).
pub const WS_BEARER_PROTOCOL_PREFIX: &str = "missive.bearer.";

/// A frame the server pushes over `GET /v1/ws`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PushFrame {
    /// New events for this device, in order.
    Events { events: Vec<Event> },
    /// The call of one of this device's groups changed: someone joined or left, or it ended
    /// (`GET /v1/calls` says who is in it now). Not stored: missed while offline, nothing is
    /// lost, the list of calls is always current.
    CallChanged { group: B64 },
    /// A frame added after this version (never sent by this server): the client skips it.
    #[serde(other)]
    Unknown,
}

/// `GET /healthz`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    pub domain: String,
}

/// `POST /v1/links`: opens a relay channel over which a new device of this user is linked.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateLinkRequest {
    /// Channel id derived from the link code: 64 lowercase hex digits.
    pub channel: String,
    /// How long the channel stays open, at most 900 seconds.
    pub ttl_secs: u64,
}

/// A link message sealed under the link code; the server relays it and cannot read it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkSealed {
    pub sealed: B64,
}

/// `GET /v1/links/{channel}`: what the new device sent so far (for the linking device).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkStatus {
    pub offer: Option<B64>,
    /// The new device's id, once granted.
    pub device_id: Option<String>,
    pub packages: Option<B64>,
}

/// `POST /v1/links/{channel}/grant`: the certificate for the new device and the sealed grant.
/// The server registers the device and hands its token to the new device.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkGrantRequest {
    pub device_certificate: B64,
    pub sealed: B64,
}

/// `GET /v1/links/{channel}/grant`: the grant, once the linking device sent it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkGrantStatus {
    pub grant: Option<LinkGrant>,
}

/// The new device's registration, and the sealed grant.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkGrant {
    pub device_id: String,
    /// Bearer token of the new device: `DEVICE_ID.SECRET`.
    pub token: String,
    pub sealed: B64,
}

/// `GET /v1/links/{channel}/history`: the sealed history, once sent; reading it closes the link.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkHistoryStatus {
    pub sealed: Option<B64>,
}

/// `PUT /v1/recovery`: the user's sealed recovery backup (see `missive_core::recovery`),
/// replacing the stored one, and the secret that will unlock it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecoveryUpload {
    /// Derived from the recovery key (32 bytes); the server keeps its SHA-256.
    pub auth: B64,
    /// Sealed under the recovery key; opaque to the server.
    pub backup: B64,
}

/// `POST /v1/recovery/backup`: asks for the sealed backup of `address`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequest {
    pub address: String,
    pub auth: B64,
}

/// The sealed backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryBackup {
    pub backup: B64,
}

/// `POST /v1/recovery/device`: registers a device of `address` certified by its identity key
/// (restored from the backup), on proof of the recovery key. Answered like a registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecoverDeviceRequest {
    pub address: String,
    pub auth: B64,
    pub device_certificate: B64,
}

/// `POST /v1/recovery/history`: one sealed segment of the user's message history (see
/// `missive_core::recovery`), from a device holding the account's recovery key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecoveryHistoryUpload {
    /// Derived from the recovery key: it must match the account's.
    pub auth: B64,
    pub segment: B64,
}

/// `POST /v1/recovery/history/read`: the history segments of `address` after position
/// `after` (0: from the first), for whoever holds its recovery key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecoveryHistoryRead {
    pub address: String,
    pub auth: B64,
    #[serde(default)]
    pub after: u64,
}

/// A page of history segments, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryHistoryPage {
    pub segments: Vec<RecoveryHistorySegment>,
    /// More segments follow the last one.
    pub more: bool,
}

/// One stored history segment and its position (1, 2, ...).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryHistorySegment {
    pub index: u64,
    pub segment: B64,
}

/// The organisation's rules that every client applies (`GET /v1/policy`), from the server's
/// configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    /// The longest a message is kept, in seconds, if the organisation limits it: every client
    /// erases messages older than this, whatever a conversation's timer says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retention: Option<u64>,
    /// The sensitivity labels members may put on a conversation.
    #[serde(default)]
    pub labels: Vec<Label>,
}

/// A sensitivity label ("Diffusion restreinte") and the rules it carries. A member who sets a
/// label on a conversation sends it whole, rules included, inside the conversation: every
/// member's client enforces the rules it received, whatever the server says later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Label {
    pub name: String,
    /// How it is shown: `#RRGGBB`.
    pub colour: String,
    /// How restrictive it is: a message may move (be forwarded) only to a conversation whose
    /// label's level is at least this (no label: level 0).
    pub level: u32,
    /// The longest disappearing-message timer allowed, in seconds: the label puts it in force
    /// when set, and no member can set a longer one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disappear: Option<u64>,
    /// Nothing leaves the conversation: no forwarding, no export.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_forward: bool,
    /// What becomes of its files.
    #[serde(default, skip_serializing_if = "Downloads::is_allowed")]
    pub downloads: Downloads,
    /// Members only from these domains (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

/// Whether a labelled conversation's files may be downloaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Downloads {
    #[default]
    Allowed,
    /// Shown inside the app only (previews), never saved as a file.
    InApp,
    /// Not at all.
    Off,
    /// A rule of a later version: read as the strictest.
    #[serde(other)]
    Unknown,
}

impl Downloads {
    pub fn is_allowed(&self) -> bool {
        *self == Downloads::Allowed
    }

    /// Whether a file may be written to disk.
    pub fn to_disk(&self) -> bool {
        self.is_allowed()
    }

    /// Whether a file may be opened inside the app (shown, never saved by it).
    pub fn in_app(&self) -> bool {
        matches!(self, Downloads::Allowed | Downloads::InApp)
    }
}

impl Label {
    /// Whether `address` may be a member under this label.
    pub fn admits(&self, address: &str) -> bool {
        self.domains.is_empty()
            || address
                .rsplit_once('@')
                .is_some_and(|(_, domain)| self.domains.iter().any(|d| d == domain))
    }
}

/// `POST /v1/groups/{group}/call`: join the conversation's call (starting it if there is none)
/// with a WebRTC offer. Media goes to the server's media relay, sealed with SFrame under keys
/// only the group's members can derive (`call_id` is their context, not a secret).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallJoinRequest {
    /// 16 bytes naming the call, chosen by whoever starts it.
    pub call_id: B64,
    /// The SDP offer of this device's connection.
    pub offer: String,
}

/// The relay's answer to a [`CallJoinRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallJoinResponse {
    /// This connection in the call (leave with it).
    pub participant: u64,
    /// The SDP answer, with the relay's candidates.
    pub answer: String,
    /// When the call started (its first participant joined), ms since the Unix epoch by the
    /// server's clock.
    pub started_ms: u64,
}

/// The answer to leaving a call.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallLeaveResponse {
    /// This device was the last one in the call: it ended, and this device (alone) tells
    /// the members so.
    pub ended: bool,
}

/// `GET /v1/calls`: the calls going on in this device's conversations.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallsResponse {
    pub calls: Vec<CallInfo>,
}

/// How a device reaches the call relay from a network that blocks UDP to it: TURN servers
/// (RFC 8656), each with credentials of this device (the shape of WebRTC's `RTCIceServer`).
/// Empty when the server names none.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IceServersResponse {
    pub ice_servers: Vec<IceServer>,
}

/// A STUN or TURN server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IceServer {
    pub urls: Vec<String>,
    /// TURN only: `EXPIRY:DEVICE` (EXPIRY in seconds since the epoch), as coturn's
    /// `use-auth-secret` expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN only: base64 of HMAC-SHA1 of `username` under the shared secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One call going on in a conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallInfo {
    pub group: B64,
    pub call_id: B64,
    /// Milliseconds since the epoch when its first participant joined.
    pub started_ms: u64,
    /// The devices connected to it, by device id.
    pub devices: Vec<String>,
}
