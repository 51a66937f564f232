//! The server's storage interface. Every backend (SQLite now, PostgreSQL later) implements
//! [`Store`] and must pass the same test suite.
//!
//! Architecture Invariant: the store holds the only truth. Nothing a request relies on lives
//! only in one process's memory, so several server nodes can share one database.

use async_trait::async_trait;
use missive_proto::api::Event;

/// A storage failure or a refused write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("address already registered")]
    AddressTaken,
    #[error("device id already registered")]
    DeviceExists,
    #[error("invite code unknown, used, expired or for another address")]
    InviteInvalid,
    #[error("group already exists")]
    GroupExists,
    #[error("no such group")]
    NoGroup,
    #[error("not a member of the group")]
    NotMember,
    #[error("stale epoch, current is {0}")]
    StaleEpoch(u64),
    #[error("a device of the user has no key package left")]
    NoKeyPackage,
    #[error("no such user")]
    NoUser,
    #[error("no such device")]
    NoDevice,
    #[error("the user's blobs would exceed the quota")]
    QuotaExceeded,
    #[error("a device list of this version or later is stored: {0}")]
    StaleDeviceList(u64),
    #[error("storage backend: {0}")]
    Backend(String),
}

/// A user registering with its first device.
pub struct NewUser {
    pub address: String,
    pub identity_key: Vec<u8>,
    pub device: NewDevice,
}

/// A device to record.
pub struct NewDevice {
    pub device_id: String,
    pub certificate: Vec<u8>,
    /// SHA-256 of the token secret.
    pub token_hash: [u8; 32],
}

/// What authentication needs to know of a device.
#[derive(Clone)]
pub struct DeviceAuth {
    pub address: String,
    pub token_hash: [u8; 32],
}

/// A user as published to other users.
pub struct UserRecord {
    pub address: String,
    pub identity_key: Vec<u8>,
    /// `(device_id, certificate)` of every active device.
    pub devices: Vec<(String, Vec<u8>)>,
    /// The user's current signed device list, once published.
    pub device_list: Option<Vec<u8>>,
}

/// A group's server-side state.
pub struct GroupRecord {
    pub epoch: u64,
    /// Serialized public MLS state (see `groups::GroupState`).
    pub state: Vec<u8>,
}

/// A new group at its first epoch.
pub struct NewGroup {
    pub group_id: Vec<u8>,
    pub epoch: u64,
    pub state: Vec<u8>,
    pub group_info: Vec<u8>,
    pub members: Vec<String>,
}

/// An accepted commit, written atomically with its effects.
pub struct CommitWrite {
    pub group_id: Vec<u8>,
    /// The epoch the commit was made in; the write fails with `StaleEpoch` if it moved.
    pub expected_epoch: u64,
    pub new_epoch: u64,
    pub state: Vec<u8>,
    pub group_info: Vec<u8>,
    pub sender: String,
    pub commit: Vec<u8>,
    /// The Welcome and the devices it is for.
    pub welcome: Option<(Vec<u8>, Vec<String>)>,
    /// A device that joined by this (external) commit: a member from the commit on.
    pub joined: Option<String>,
    pub removed: Vec<String>,
    pub now_ms: u64,
}

/// Where an accepted commit or message landed.
#[derive(Clone, Copy, Debug)]
pub struct Accepted {
    pub seq: u64,
    pub event_id: u64,
}

/// A new application message.
pub struct MessageWrite {
    pub group_id: Vec<u8>,
    pub sender: String,
    pub epoch: u64,
    pub payload: Vec<u8>,
    pub now_ms: u64,
}

/// A blob announced for upload.
pub struct NewBlob {
    pub id: String,
    /// The uploading user's address (its quota is charged).
    pub owner: String,
    /// The uploading device, the only one that may write the blob.
    pub device: String,
    /// The group whose members may download the blob.
    pub group_id: Vec<u8>,
    pub size: u64,
    pub now: u64,
    /// Seconds it is kept once complete (its message's timer), if less than the retention.
    pub ttl: Option<u64>,
}

/// A blob's record: who may do what with it, and how much of it is durably stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRecord {
    pub id: String,
    pub owner: String,
    pub device: String,
    pub group_id: Vec<u8>,
    pub size: u64,
    /// Bytes durably stored (fsynced before being recorded).
    pub received: u64,
    pub complete: bool,
    /// When the upload last progressed or completed (seconds).
    pub updated_at: u64,
}

/// What a committed write makes visible to connected devices, in event-log order.
#[derive(Clone, Debug)]
pub enum Published {
    /// An event and the devices it is for.
    Event {
        event: Event,
        recipients: std::sync::Arc<Vec<String>>,
    },
    /// Devices with a new event too large to carry (a Welcome): they fetch it.
    Wake { devices: Vec<String>, event_id: u64 },
}

impl Published {
    /// A group event (commit or message) for `recipients`.
    #[allow(clippy::too_many_arguments)]
    pub fn group_event(
        id: u64,
        group_id: &[u8],
        seq: u64,
        kind: missive_proto::api::EventKind,
        sender: &str,
        payload: &[u8],
        timestamp: u64,
        recipients: std::sync::Arc<Vec<String>>,
    ) -> Self {
        Published::Event {
            event: Event {
                id,
                group_id: missive_proto::B64(group_id.to_vec()),
                seq,
                kind,
                sender: sender.to_owned(),
                payload: missive_proto::B64(payload.to_vec()),
                timestamp,
            },
            recipients,
        }
    }
}

/// Receives what committed writes published, in the order of their event ids.
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, batch: Vec<Published>);
}

/// Storage of accounts, key packages, groups and the event log.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Where committed events are published (once, before serving).
    fn set_event_sink(&self, sink: std::sync::Arc<dyn EventSink>);

    /// Records an invite code (by hash) for `address`, valid until `expires_at` (seconds).
    async fn create_invite(
        &self,
        address: &str,
        code_hash: [u8; 32],
        expires_at: u64,
    ) -> Result<(), StoreError>;

    /// Registers a user and its first device, consuming the invite if one is given.
    async fn register(
        &self,
        user: NewUser,
        invite_hash: Option<[u8; 32]>,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Adds a further device to an existing user.
    async fn add_device(
        &self,
        address: &str,
        device: NewDevice,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Revokes a device of `address`: its token stops working, its key packages are deleted
    /// and it is no longer listed. `NoDevice` if it is not an active device of that user.
    async fn revoke_device(
        &self,
        address: &str,
        device_id: &str,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Stores `list` as `address`'s signed device list if `version` is above the stored one
    /// (`StaleDeviceList` with the stored version otherwise), and marks exactly the devices
    /// `listed` (ids) as listed: claims hand out key packages of listed devices only. The
    /// caller verified the list.
    /// In the same transaction, `kt_leaf` is appended to the key transparency log.
    async fn publish_device_list(
        &self,
        address: &str,
        version: u64,
        list: Vec<u8>,
        listed: Vec<String>,
        kt_leaf: Vec<u8>,
    ) -> Result<(), StoreError>;

    /// Leaves of the key transparency log from position `from`, at most `limit`, in order.
    async fn kt_entries(&self, from: u64, limit: u32) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Every leaf of `address` in the log, `(position, leaf)` in order.
    async fn kt_entries_of(&self, address: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// The log position of `address`'s device list `version`.
    async fn kt_index(&self, address: &str, version: u64) -> Result<Option<u64>, StoreError>;

    /// Keeps `address`'s sealed recovery backup and the hash of the secret that unlocks it,
    /// replacing any earlier one.
    async fn put_recovery(
        &self,
        address: &str,
        auth_hash: [u8; 32],
        backup: Vec<u8>,
        now: u64,
    ) -> Result<(), StoreError>;

    /// `address`'s recovery record: `(auth hash, sealed backup)`.
    async fn recovery(&self, address: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError>;

    /// Appends a sealed history segment for `address` (`QuotaExceeded` if its segments would
    /// pass `quota` bytes); returns its position (1, 2, ...).
    async fn add_history_segment(
        &self,
        address: &str,
        segment: Vec<u8>,
        now: u64,
        quota: u64,
    ) -> Result<u64, StoreError>;

    /// `address`'s history segments after position `after`, at most `limit`, in order.
    async fn history_segments(
        &self,
        address: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    async fn device_auth(&self, device_id: &str) -> Result<Option<DeviceAuth>, StoreError>;

    async fn device_certificate(&self, device_id: &str) -> Result<Option<Vec<u8>>, StoreError>;

    async fn user(&self, address: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Adds one-time key packages `(hash_ref, bytes)` and optionally replaces the last resort.
    async fn add_key_packages(
        &self,
        device_id: &str,
        packages: Vec<(Vec<u8>, Vec<u8>)>,
        last_resort: Option<Vec<u8>>,
    ) -> Result<(u32, bool), StoreError>;

    async fn key_package_count(&self, device_id: &str) -> Result<(u32, bool), StoreError>;

    /// Atomically takes one key package per active, listed device of `address`: a one-time package
    /// when one is left (never handed out twice), else the device's last-resort package.
    async fn claim_key_packages(&self, address: &str)
        -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    async fn create_group(&self, group: NewGroup) -> Result<(), StoreError>;

    async fn group(&self, group_id: &[u8]) -> Result<Option<GroupRecord>, StoreError>;

    async fn group_info(&self, group_id: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// Device ids currently in the group.
    async fn group_members(&self, group_id: &[u8]) -> Result<Vec<String>, StoreError>;

    /// Writes an accepted commit: new state, the commit event, Welcome events, membership.
    async fn commit(&self, commit: CommitWrite) -> Result<Accepted, StoreError>;

    /// Appends an application message from a current member at the current epoch. Its cost
    /// does not depend on the group's size.
    async fn post_message(&self, message: MessageWrite) -> Result<Accepted, StoreError>;

    /// Events for `device_id` after `after`, oldest first, at most `limit`.
    async fn events(
        &self,
        device_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// Records the device's durable cursor.
    async fn ack(&self, device_id: &str, cursor: u64) -> Result<(), StoreError>;

    /// Records a blob about to be uploaded, unless the owner's blobs would then exceed `quota`
    /// bytes (`QuotaExceeded`).
    async fn create_blob(&self, blob: NewBlob, quota: u64) -> Result<(), StoreError>;

    async fn blob(&self, id: &str) -> Result<Option<BlobRecord>, StoreError>;

    /// Records how much of a blob is durably stored, and whether it is complete.
    async fn blob_progress(
        &self,
        id: &str,
        received: u64,
        complete: bool,
        now: u64,
    ) -> Result<(), StoreError>;

    async fn delete_blob(&self, id: &str) -> Result<(), StoreError>;

    /// Blobs nobody needs any more: uploads idle since before `idle_before`, complete blobs
    /// older than `complete_before` or whose `ttl` ran out by `now`, and blobs of groups that
    /// no longer have any member.
    async fn expired_blobs(
        &self,
        idle_before: u64,
        complete_before: u64,
        now: u64,
    ) -> Result<Vec<String>, StoreError>;
}

/// A stored signed integer as u64 (negative values, which the stores never write, become 0).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A u64 as a stored signed integer (saturating).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored 32-byte hash (zeroes if the stored value has another length, which never matches).
pub(crate) fn hash_array(v: Vec<u8>) -> [u8; 32] {
    let mut out = [0u8; 32];
    if v.len() == 32 {
        out.copy_from_slice(&v);
    }
    out
}
