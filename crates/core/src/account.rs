//! The account engine: identity, devices, contacts, MLS conversations. It does no network I/O:
//! it builds request bodies and applies server answers and events.
//!
//! Persistence: openmls writes into an in-memory key-value map; [`Account::save`] writes what
//! changed since the last save together with the pending app-level writes in one transaction,
//! and [`Account::rollback`] drops everything since. A step is either wholly stored or not at
//! all, so a crash never leaves MLS state and conversations out of step.

use std::collections::{BTreeSet, HashMap};

use missive_proto::api::*;
use missive_proto::app::{AppBody, AppMessage, FileRef};
use missive_proto::cert::DeviceCertificate;
use missive_proto::B64;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use rand::RngCore;

use crate::error::{Alert, AlertCode, CoreError};
use crate::identity::{self, DeviceSigner, Identity, LeafOwner};
use crate::provider::Provider;
use crate::store::*;
use crate::{hex, now_ms, DEFAULT_CIPHERSUITE};

/// One-time key packages a device keeps on the server.
pub const KEY_PACKAGE_STOCK: usize = 50;
/// Replenish when fewer than this are left.
pub const KEY_PACKAGE_LOW: u32 = 10;
/// Padding of application messages, so that sizes leak only in buckets of this many bytes.
const PADDING: usize = 64;
/// Conversations of at most this many devices renew the committer's leaf (an update path) on
/// every membership change, for post-compromise security at every add. Larger ones carry a
/// path only where MLS requires it (a removal): after a bulk add a path encrypts to almost
/// every leaf, and its commit, which every member downloads, grows with the group (measured
/// with `missive-bench --group N`; see ARCHITECTURE.md).
pub const PATH_ON_EVERY_COMMIT_UP_TO: usize = 100;

pub mod calls;
mod changes;
mod contacts;
mod device_lists;
mod events;
mod linking;
mod recovery;
mod transparency;

mod keys {
    pub const ADDRESS: &str = "address";
    pub const SERVER: &str = "server";
    pub const TOKEN: &str = "token";
    pub const IDENTITY: &str = "identity";
    pub const DEVICE_KEY: &str = "device_key";
    pub const CERTIFICATE: &str = "certificate";
    pub const CURSOR: &str = "cursor";
    pub const PENDING_UPLOAD: &str = "pending_upload";
    /// Our highest signed device list.
    pub const DEVICE_LIST: &str = "device_list";
    /// The key transparency log followed: its domain, its key, the last head accepted.
    pub const KT_DOMAIN: &str = "kt_domain";
    pub const KT_KEY: &str = "kt_key";
    pub const KT_HEAD: &str = "kt_head";
    /// Entries of our own address in the log checked so far (the next position to report).
    pub const KT_OWN_SEEN: &str = "kt_own_seen";
    /// Heads other members passed on that are still to be compared with the server's log.
    pub const KT_GOSSIP: &str = "kt_gossip";
    /// The recovery key, and the BLAKE3 digest of the backup last uploaded.
    pub const RECOVERY_KEY: &str = "recovery_key";
    pub const RECOVERY_DIGEST: &str = "recovery_digest";
    /// Conversations a recovered device still has to rejoin (JSON).
    pub const REJOIN: &str = "rejoin";
    /// Whether the message history is backed up too, and per conversation the sequence
    /// number of the last message backed up (JSON).
    pub const HISTORY_BACKUP: &str = "history_backup";
    pub const HISTORY_MARKS: &str = "history_marks";
    /// Messages deleted for everyone not yet carried by a history backup segment (JSON).
    pub const HISTORY_DELETIONS: &str = "history_deletions";
    /// "off" when this user sends no read receipts.
    pub const READ_RECEIPTS: &str = "read_receipts";
    /// The organisation's policy as the server last gave it (JSON).
    pub const POLICY: &str = "policy";
}

pub use changes::{deleted as deleted_record, valid_reaction};

/// What every leaf of ours supports (public for the group benchmarks).
pub fn capabilities() -> Capabilities {
    Capabilities::new(
        None,
        Some(&[
            DEFAULT_CIPHERSUITE,
            Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
        ]),
        Some(&[ExtensionType::LastResort]),
        None,
        Some(&[CredentialType::Basic]),
    )
}

/// How far behind the newest message of a sender a receiver still decrypts one. The server
/// accepts a sender's messages in any order among those encrypted and not yet accepted, so a
/// sender keeps at most this many of them outstanding (several sends in flight, say);
/// beyond it, a late message would be unreadable.
pub const MAX_UNACCEPTED_SENDS: usize = 32;

fn sender_ratchet() -> SenderRatchetConfiguration {
    SenderRatchetConfiguration::new(MAX_UNACCEPTED_SENDS as u32, 10_000)
}

/// The settings of every conversation we create (public for the group benchmarks).
pub fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(DEFAULT_CIPHERSUITE)
        .capabilities(capabilities())
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .padding_size(PADDING)
        .max_past_epochs(3)
        .sender_ratchet_configuration(sender_ratchet())
        .build()
}

/// The settings of every conversation we join (public for the group benchmarks).
pub fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .padding_size(PADDING)
        .max_past_epochs(3)
        .sender_ratchet_configuration(sender_ratchet())
        .build()
}

fn tls_bytes(msg: &impl openmls::prelude::tls_codec::Serialize) -> Result<Vec<u8>, CoreError> {
    msg.tls_serialize_detached().map_err(CoreError::mls)
}

fn parse_mls(bytes: &[u8]) -> Result<MlsMessageIn, CoreError> {
    let mut rest = bytes;
    let msg = MlsMessageIn::tls_deserialize(&mut rest).map_err(|_| {
        CoreError::refused(AlertCode::RejectedMessage, "bytes are not an MLS message")
    })?;
    if !rest.is_empty() {
        return Err(CoreError::refused(
            AlertCode::RejectedMessage,
            "trailing bytes after an MLS message",
        ));
    }
    Ok(msg)
}

/// MLS exporter label of the epoch fingerprint carried in each application message's
/// authenticated data, so that members at the same epoch with different states notice.
const EPOCH_FINGERPRINT_LABEL: &str = "missive/v1/epoch-fingerprint";
/// Prefix of that authenticated data (format version).
const EPOCH_FINGERPRINT_TAG: &[u8] = b"MEF1";
const EPOCH_FINGERPRINT_LEN: usize = 16;

/// What a message body shows in the conversation.
#[derive(Default)]
struct Shown {
    text: String,
    file: Option<Box<FileRef>>,
    /// A body of a kind this version does not know, kept as JSON.
    unsupported: Option<String>,
    reply_to: Option<String>,
}

/// What `body` shows; `None` for a body that is not a message of its own (the conversation's
/// metadata).
fn displayed(body: &AppBody) -> Option<Shown> {
    match body {
        AppBody::Text { text, reply_to } => Some(Shown {
            text: text.clone(),
            reply_to: reply_to.clone(),
            ..Shown::default()
        }),
        AppBody::File { file } => Some(Shown {
            file: Some(Box::new(file.clone())),
            ..Shown::default()
        }),
        AppBody::Unknown { body, .. } => Some(Shown {
            unsupported: Some(body.to_string()),
            ..Shown::default()
        }),
        _ => None,
    }
}

/// A new application message: a random id and the sender's clock.
pub fn new_message(body: AppBody) -> AppMessage {
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    AppMessage {
        id: hex(&id),
        sent_at: now_ms(),
        prev: Vec::new(),
        kt: None,
        forwarded: false,
        body,
    }
}

/// The epoch fingerprint of a group's current state, as carried in authenticated data.
/// Computed once per epoch (`Account::fingerprints`).
fn epoch_fingerprint(provider: &Provider, group: &MlsGroup) -> Result<Vec<u8>, CoreError> {
    let secret = group
        .export_secret(
            provider.crypto(),
            EPOCH_FINGERPRINT_LABEL,
            &[],
            EPOCH_FINGERPRINT_LEN,
        )
        .map_err(CoreError::mls)?;
    Ok([EPOCH_FINGERPRINT_TAG, secret.as_slice()].concat())
}

/// A group id as a conversation id.
pub fn conversation_id(group_id: &[u8]) -> String {
    hex(group_id)
}

pub(crate) fn group_id_of(conversation: &str) -> Result<GroupId, CoreError> {
    ::hex::decode(conversation)
        .ok()
        .filter(|b| !b.is_empty())
        .map(|b| GroupId::from_slice(&b))
        .ok_or_else(|| CoreError::Usage(format!("{conversation:?} is not a conversation id")))
}

/// What processing one event produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new message to show.
    Message(MessageRecord),
    /// A message changed: edited, deleted or reacted to (the record as it is now).
    Changed(MessageRecord),
    /// Members' receipts in a conversation moved.
    Receipts(String),
    /// A member is typing in a conversation: (conversation, address).
    Typing(String, String),
    /// This device joined a conversation.
    Joined(String),
    /// This device was removed from a conversation.
    Left(String),
    /// Membership of a conversation changed.
    MembershipChanged(String),
    /// Something was refused.
    Alert(Alert),
}

/// A ready commit: the request to send and the conversation it is for.
pub struct PreparedCommit {
    pub group_id: Vec<u8>,
    pub request: CommitRequest,
}

/// A registered (or registering) account on this device.
pub struct Account {
    store: Box<dyn AccountStore + Send>,
    provider: Provider,
    /// Groups loaded from the MLS storage, kept to avoid parsing their tree for every message.
    /// Always in step with `provider`'s storage; emptied on rollback.
    groups: HashMap<String, MlsGroup>,
    /// Each cached group's epoch fingerprint, with the epoch it is for; emptied on rollback
    /// with the groups (a commit undone and another merged gives the same epoch a new state).
    fingerprints: HashMap<String, (u64, Vec<u8>)>,
    /// Ids of the latest messages saved: threat 9's check of the messages each one names
    /// finds them here instead of in the store.
    recent: RecentIds,
    persisted: HashMap<Vec<u8>, Vec<u8>>,
    /// Persisted MLS entries that are content-addressed (key packages): a save never compares
    /// their bytes, only whether they still exist. Saving ~50 key packages of ~11 KB each
    /// otherwise dominates the cost of a save.
    frozen: std::collections::HashSet<Vec<u8>>,
    /// Entries to mark frozen with the next save.
    to_freeze: Vec<Vec<u8>>,
    pending: Batch,
    /// Certificates whose signature already verified (they are immutable bytes, so the answer
    /// never changes; the comparison with the pinned identity key is still made every time).
    verified_certificates: std::sync::Mutex<std::collections::HashSet<Vec<u8>>>,
    /// Contacts read from the store, by address (every contact write goes through
    /// `write_contact`, which keeps this in step).
    contacts: std::sync::Mutex<HashMap<String, ContactRecord>>,
    /// Addresses whose device list was fetched since [`Account::begin_list_checks`].
    fresh_lists: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Key transparency gossip: the heads to check, and what this device passed on.
    gossip: transparency::Gossip,
    /// Contacts or conversations changed since the recovery backup was last compared.
    backup_dirty: bool,
    /// Messages were stored since the history backup last looked for new ones.
    history_dirty: bool,
    /// Whether the history backup is on, once read.
    history_on: Option<bool>,
    identity: Identity,
    device_key: DeviceSigner,
    cert: DeviceCertificate,
    /// The certificate's device id, in hex.
    device_id: String,
    server: String,
    token: String,
    cursor: u64,
    /// Conversation records as stored, read on every received message.
    conversations: HashMap<String, ConversationRecord>,
    /// Per conversation, the newest position received from others not yet receipted.
    delivered_due: std::collections::BTreeMap<String, u64>,
    /// The organisation's policy, once read from the store.
    policy: std::sync::Mutex<Option<missive_proto::api::Policy>>,
    /// See [`PATH_ON_EVERY_COMMIT_UP_TO`].
    path_up_to: usize,
}

/// The ids of the last [`RecentIds::CAPACITY`] messages saved.
#[derive(Default)]
struct RecentIds {
    order: std::collections::VecDeque<String>,
    ids: std::collections::HashSet<String>,
}

impl RecentIds {
    const CAPACITY: usize = 1024;

    fn extend(&mut self, ids: Vec<String>) {
        for id in ids {
            if self.ids.insert(id.clone()) {
                self.order.push_back(id);
            }
        }
        while self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

fn setting(store: &dyn AccountStore, key: &str) -> Result<Vec<u8>, CoreError> {
    store
        .setting(key)?
        .ok_or_else(|| CoreError::Storage(format!("account setting {key} missing")))
}

fn text(bytes: Vec<u8>) -> Result<String, CoreError> {
    String::from_utf8(bytes).map_err(CoreError::storage)
}

impl Account {
    /// An account with these keys and empty caches, nothing persisted, no token yet.
    fn assemble(
        store: Box<dyn AccountStore + Send>,
        provider: Provider,
        identity: Identity,
        device_key: DeviceSigner,
        cert: DeviceCertificate,
        server: String,
    ) -> Self {
        Account {
            store,
            provider,
            groups: HashMap::new(),
            fingerprints: HashMap::new(),
            recent: RecentIds::default(),
            persisted: HashMap::new(),
            frozen: Default::default(),
            to_freeze: Vec::new(),
            pending: Vec::new(),
            verified_certificates: Default::default(),
            contacts: Default::default(),
            fresh_lists: Default::default(),
            gossip: Default::default(),
            // Compared once per process at least: a change made by a process that ended before
            // it uploaded is caught by the next.
            backup_dirty: true,
            history_dirty: true,
            history_on: None,
            identity,
            device_key,
            device_id: cert.device_id_hex(),
            cert,
            server,
            token: String::new(),
            cursor: 0,
            conversations: HashMap::new(),
            delivered_due: Default::default(),
            policy: Default::default(),
            path_up_to: PATH_ON_EVERY_COMMIT_UP_TO,
        }
    }

    /// Opens the account in `store`; `None` if no account was registered there.
    pub fn open(store: Box<dyn AccountStore + Send>) -> Result<Option<Self>, CoreError> {
        if store.setting(keys::TOKEN)?.is_none() {
            return Ok(None);
        }
        let s = store.as_ref();
        let identity = Identity::from_secret(&setting(s, keys::IDENTITY)?)?;
        let pair: SignatureKeyPair =
            serde_json::from_slice(&setting(s, keys::DEVICE_KEY)?).map_err(CoreError::storage)?;
        let device_key = DeviceSigner::new(pair)?;
        let cert = DeviceCertificate::from_bytes(&setting(s, keys::CERTIFICATE)?)
            .map_err(CoreError::storage)?;
        let server = text(setting(s, keys::SERVER)?)?;
        let token = text(setting(s, keys::TOKEN)?)?;
        let cursor = s
            .setting(keys::CURSOR)?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let (persisted, frozen) = s.mls_entries()?;
        let provider = Provider::new()?;
        *provider
            .storage
            .inner
            .values
            .write()
            .map_err(CoreError::storage)? = persisted.clone();
        let mut account = Account::assemble(store, provider, identity, device_key, cert, server);
        account.persisted = persisted;
        account.frozen = frozen;
        account.token = token;
        account.cursor = cursor;
        Ok(Some(account))
    }

    /// Creates keys for a new account and its first device; returns the registration request.
    /// Nothing is stored until [`Account::finish_registration`].
    pub fn create(
        store: Box<dyn AccountStore + Send>,
        address: &str,
        server: &str,
        invite: Option<String>,
    ) -> Result<(Self, RegisterRequest), CoreError> {
        if store.setting(keys::TOKEN)?.is_some() {
            return Err(CoreError::Usage(
                "this home already holds a registered account".into(),
            ));
        }
        let account = Account::with_new_device(store, Identity::generate(), address, server)?;
        let request = RegisterRequest {
            address: address.to_owned(),
            invite,
            identity_key: B64(account.identity.public().to_vec()),
            device_certificate: B64(account.cert.to_bytes()),
        };
        Ok((account, request))
    }

    /// An account of `identity` on a new device of its own: a fresh device key and id,
    /// certified by the identity key.
    fn with_new_device(
        store: Box<dyn AccountStore + Send>,
        identity: Identity,
        address: &str,
        server: &str,
    ) -> Result<Self, CoreError> {
        let device_key = identity::new_device_key()?;
        let mut device_id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut device_id);
        let cert = identity.certify(address, device_id, device_key.public())?;
        Ok(Account::assemble(
            store,
            Provider::new()?,
            identity,
            DeviceSigner::new(device_key)?,
            cert,
            server.trim_end_matches('/').to_owned(),
        ))
    }

    /// Stores the account once the server accepted the registration.
    pub fn finish_registration(&mut self, response: &RegisterResponse) -> Result<(), CoreError> {
        if response.device_id != self.device_id() || response.address != self.address() {
            return Err(CoreError::Usage(
                "the server registered another device or address".into(),
            ));
        }
        self.token = response.token.clone();
        let device_key = serde_json::to_vec(self.device_key.pair()).map_err(CoreError::storage)?;
        self.pending.extend([
            Op::Setting(keys::ADDRESS.into(), self.cert.address.clone().into_bytes()),
            Op::Setting(keys::SERVER.into(), self.server.clone().into_bytes()),
            Op::Setting(keys::IDENTITY.into(), self.identity.secret().to_vec()),
            Op::Setting(keys::DEVICE_KEY.into(), device_key),
            Op::Setting(keys::CERTIFICATE.into(), self.cert.to_bytes()),
            Op::Setting(keys::CURSOR.into(), 0u64.to_be_bytes().to_vec()),
            Op::Setting(keys::TOKEN.into(), self.token.clone().into_bytes()),
        ]);
        self.save()
    }

    pub fn address(&self) -> &str {
        &self.cert.address
    }

    pub fn device_id(&self) -> String {
        self.device_id.clone()
    }

    /// A conversation's stored record (cached: every write goes through `save_with`, which
    /// keeps the cache in step).
    fn conversation_record(
        &mut self,
        conversation: &str,
    ) -> Result<Option<ConversationRecord>, CoreError> {
        if let Some(record) = self.conversations.get(conversation) {
            return Ok(Some(record.clone()));
        }
        let record = self.store.conversation(conversation)?;
        if let Some(r) = &record {
            self.conversations
                .insert(conversation.to_owned(), r.clone());
        }
        Ok(record)
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn identity_key(&self) -> [u8; 32] {
        self.identity.public()
    }

    pub fn store(&self) -> &dyn AccountStore {
        self.store.as_ref()
    }

    /// The file upload this account started and did not finish, if any.
    pub fn pending_upload(&self) -> Result<Option<crate::file::PendingUpload>, CoreError> {
        Ok(self
            .store
            .setting(keys::PENDING_UPLOAD)?
            .filter(|v| !v.is_empty())
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Records (durably: it holds the file's key, needed to resume) or clears the pending upload.
    pub fn set_pending_upload(
        &mut self,
        upload: Option<&crate::file::PendingUpload>,
    ) -> Result<(), CoreError> {
        let value = match upload {
            Some(u) => serde_json::to_vec(u).map_err(CoreError::storage)?,
            None => Vec::new(),
        };
        self.pending
            .push(Op::Setting(keys::PENDING_UPLOAD.into(), value));
        self.save()
    }

    /// Writes the MLS changes and pending app writes since the last save, atomically, durable
    /// against a power cut.
    pub fn save(&mut self) -> Result<(), CoreError> {
        self.save_with(Durability::Durable)
    }

    fn save_with(&mut self, durability: Durability) -> Result<(), CoreError> {
        // Only message secrets were written since the last save (the usual case: messages
        // sent or received): those alone are compared with what is on disk.
        let other_writes = self.provider.storage.take_other_writes();
        let changes = {
            let current = self
                .provider
                .storage
                .inner
                .values
                .read()
                .map_err(CoreError::storage)?;
            let changes = self.mls_changes(&current, !other_writes);
            #[cfg(debug_assertions)]
            if !other_writes {
                let mut fast: Vec<_> = changes.iter().collect();
                let full_diff = self.mls_changes(&current, false);
                let mut full: Vec<_> = full_diff.iter().collect();
                fast.sort();
                full.sort();
                assert_eq!(
                    fast, full,
                    "an MLS write other than message secrets went unnoted"
                );
            }
            changes
        };
        let mut batch = std::mem::take(&mut self.pending);
        batch.extend(changes.iter().map(|(k, v)| Op::Mls(k.clone(), v.clone())));
        let to_freeze = std::mem::take(&mut self.to_freeze);
        if !to_freeze.is_empty() {
            // After the entries themselves are written.
            batch.push(Op::FreezeMls(to_freeze));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut saved = Vec::new();
        for op in &batch {
            match op {
                Op::Message(m) | Op::Sent { record: m, .. } => {
                    saved.push(m.id.clone());
                    self.history_dirty = true;
                }
                // Records written now are re-read from the store when next needed.
                Op::Conversation(c) => {
                    self.conversations.remove(&c.id);
                    self.backup_dirty = true;
                }
                _ => {}
            }
        }
        if let Err(e) = self.store.apply(batch, durability) {
            if other_writes {
                // Still to be saved by the next attempt.
                self.provider.storage.note_other_writes();
            }
            return Err(e);
        }
        self.recent.extend(saved);
        for (k, v) in changes {
            match v {
                Some(v) => {
                    self.persisted.insert(k, v);
                }
                None => {
                    self.persisted.remove(&k);
                    self.frozen.remove(&k);
                }
            };
        }
        Ok(())
    }

    /// The MLS entries that differ from what is persisted (`None`: deleted); with
    /// `message_secrets_only`, among the groups' message secrets alone.
    #[allow(clippy::type_complexity)]
    fn mls_changes(
        &self,
        current: &HashMap<Vec<u8>, Vec<u8>>,
        message_secrets_only: bool,
    ) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let considered = |k: &[u8]| {
            !message_secrets_only || k.starts_with(crate::provider::MESSAGE_SECRETS_LABEL)
        };
        let mut changes: Vec<_> = current
            .iter()
            .filter(|(k, v)| {
                considered(k)
                    && !(self.frozen.contains(*k) && self.persisted.contains_key(*k))
                    && self.persisted.get(*k) != Some(*v)
            })
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        changes.extend(
            self.persisted
                .keys()
                .filter(|k| considered(k) && !current.contains_key(*k))
                .map(|k| (k.clone(), None)),
        );
        changes
    }

    /// Forgets every change since the last save.
    pub fn rollback(&mut self) -> Result<(), CoreError> {
        self.pending.clear();
        self.groups.clear();
        self.fingerprints.clear();
        for k in self.to_freeze.drain(..) {
            self.frozen.remove(&k);
        }
        *self
            .provider
            .storage
            .inner
            .values
            .write()
            .map_err(CoreError::storage)? = self.persisted.clone();
        self.cursor = self
            .store
            .setting(keys::CURSOR)?
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        Ok(())
    }

    fn set_cursor(&mut self, cursor: u64) {
        self.cursor = cursor;
        self.pending.push(Op::Setting(
            keys::CURSOR.into(),
            cursor.to_be_bytes().to_vec(),
        ));
    }

    /// Keeps an alert for the user at once: for a refusal that ended an operation, whose
    /// pending changes were rolled back (those of event processing are saved with its batch).
    pub fn record_alert(&mut self, alert: &Alert) -> Result<(), CoreError> {
        self.store.apply(
            vec![Op::Alert(AlertRecord {
                at: now_ms(),
                code: alert.code.as_str().to_owned(),
                detail: alert.detail.clone(),
            })],
            Durability::Relaxed,
        )
    }

    fn alert(&mut self, alert: &Alert) {
        self.pending.push(Op::Alert(AlertRecord {
            at: now_ms(),
            code: alert.code.as_str().to_owned(),
            detail: alert.detail.clone(),
        }));
    }

    // --- Key packages -----------------------------------------------------------------------

    fn key_package(&self, last_resort: bool) -> Result<Vec<u8>, CoreError> {
        let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(
                DEFAULT_CIPHERSUITE,
                &self.provider,
                &self.device_key,
                identity::credential_with_key(&self.cert),
            )
            .map_err(CoreError::mls)?;
        tls_bytes(&MlsMessageOut::from(bundle.key_package().clone()))
    }

    /// New key packages for the server (their private keys are kept here); save after upload.
    pub fn new_key_packages(
        &mut self,
        count: usize,
        last_resort: bool,
    ) -> Result<UploadKeyPackagesRequest, CoreError> {
        // Building a key package writes only its own entry, keyed by its hash reference: what
        // appears now is content-addressed and is frozen (see `frozen`).
        let before: std::collections::HashSet<Vec<u8>> = self
            .provider
            .storage
            .inner
            .values
            .read()
            .map_err(CoreError::storage)?
            .keys()
            .cloned()
            .collect();
        let requested = self.build_key_packages(count, last_resort);
        let created: Vec<Vec<u8>> = self
            .provider
            .storage
            .inner
            .values
            .read()
            .map_err(CoreError::storage)?
            .keys()
            .filter(|k| !before.contains(*k))
            .cloned()
            .collect();
        self.frozen.extend(created.iter().cloned());
        self.to_freeze.extend(created);
        requested
    }

    fn build_key_packages(
        &mut self,
        count: usize,
        last_resort: bool,
    ) -> Result<UploadKeyPackagesRequest, CoreError> {
        let key_packages = (0..count)
            .map(|_| self.key_package(false).map(B64))
            .collect::<Result<_, _>>()?;
        let last_resort = if last_resort {
            Some(B64(self.key_package(true)?))
        } else {
            None
        };
        Ok(UploadKeyPackagesRequest {
            key_packages,
            last_resort,
        })
    }

    // --- Conversations ----------------------------------------------------------------------

    /// Takes a group out of the cache (loading it if needed) for a change; give it back with
    /// [`Account::put_group`] once the change succeeded, or roll back.
    fn take_group(&mut self, conversation: &str) -> Result<MlsGroup, CoreError> {
        match self.groups.remove(conversation) {
            Some(g) => Ok(g),
            None => self.load_group(conversation),
        }
    }

    fn put_group(&mut self, conversation: &str, group: MlsGroup) {
        self.groups.insert(conversation.to_owned(), group);
    }

    /// Runs a change of one group: on success the group goes back to the cache, on failure
    /// everything since the last save is rolled back.
    fn with_group<R>(
        &mut self,
        conversation: &str,
        change: impl FnOnce(&mut Self, &mut MlsGroup) -> Result<R, CoreError>,
    ) -> Result<R, CoreError> {
        let mut group = self.take_group(conversation)?;
        let result = change(self, &mut group);
        match &result {
            Ok(_) => self.put_group(conversation, group),
            Err(_) => self.rollback()?,
        }
        result
    }

    /// The epoch fingerprint of `group` (the group of `conversation`) at its current epoch.
    fn fingerprint(&mut self, conversation: &str, group: &MlsGroup) -> Result<Vec<u8>, CoreError> {
        let epoch = group.epoch().as_u64();
        match self.fingerprints.get(conversation) {
            Some((at, fingerprint)) if *at == epoch => Ok(fingerprint.clone()),
            _ => {
                let fingerprint = epoch_fingerprint(&self.provider, group)?;
                self.fingerprints
                    .insert(conversation.to_owned(), (epoch, fingerprint.clone()));
                Ok(fingerprint)
            }
        }
    }

    fn load_group(&self, conversation: &str) -> Result<MlsGroup, CoreError> {
        MlsGroup::load(self.provider.storage(), &group_id_of(conversation)?)
            .map_err(CoreError::mls)?
            .ok_or_else(|| CoreError::Usage(format!("no conversation {conversation}")))
    }

    /// Creates a new group with this device as its only member. Save once the server accepted.
    pub fn create_group(
        &mut self,
        name: Option<String>,
        dm_peer: Option<String>,
    ) -> Result<(String, CreateGroupRequest), CoreError> {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.device_key,
            &create_config(),
            GroupId::from_slice(&id),
            identity::credential_with_key(&self.cert),
        )
        .map_err(CoreError::mls)?;
        let info = group
            .export_group_info(self.provider.crypto(), &self.device_key, true)
            .map_err(CoreError::mls)?;
        let conversation = conversation_id(&id);
        self.pending.push(Op::Conversation(ConversationRecord::new(
            conversation.clone(),
            name,
            dm_peer,
            now_ms(),
        )));
        Ok((
            conversation,
            CreateGroupRequest {
                group_info: B64(tls_bytes(&info)?),
            },
        ))
    }

    /// Sets the size up to which our commits always carry an update path (tests: a small group
    /// behaves like a large one).
    #[doc(hidden)]
    pub fn set_path_on_every_commit_up_to(&mut self, devices: usize) {
        self.path_up_to = devices;
    }

    /// Whether a commit of ours is staged in the conversation, waiting for the server's verdict.
    pub fn has_pending_commit(&mut self, conversation: &str) -> Result<bool, CoreError> {
        self.with_group(conversation, |_, group| {
            Ok(group.pending_commit().is_some())
        })
    }

    /// Builds a commit that adds `add` and removes the devices of `remove` (addresses, for all
    /// of a user's devices, or device ids: an address has an `@`, a device id never); the pending
    /// commit is saved so that a crash after the server accepted it can still merge it.
    pub fn prepare_commit(
        &mut self,
        conversation: &str,
        add: &[KeyPackage],
        remove: &[String],
    ) -> Result<PreparedCommit, CoreError> {
        self.with_group(conversation, |this, group| {
            if group.pending_commit().is_some() {
                group
                    .clear_pending_commit(this.provider.storage())
                    .map_err(CoreError::mls)?;
            }
            let mut removals = Vec::new();
            let mut present = std::collections::HashSet::new();
            for m in group.members() {
                let owner = this.check_leaf(&m.credential, &m.signature_key)?;
                if remove.contains(&owner.address) || remove.contains(&owner.device_id) {
                    removals.push(m.index);
                }
                present.insert(owner.device_id);
            }
            // After a lost race the winner may have added some of the same devices already.
            let mut adds = Vec::with_capacity(add.len());
            for kp in add {
                let leaf = kp.leaf_node();
                let owner = this.check_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
                if !present.contains(&owner.device_id) {
                    adds.push(kp.clone());
                }
            }
            // A commit without adds renews keys (an update) or removes (MLS requires a path).
            let path = adds.is_empty() || present.len() <= this.path_up_to;
            // Users already gone are skipped: after a lost race the winner may have removed
            // them. (`Client::remove_members` refuses non-members before the first try.)
            let bundle = group
                .commit_builder()
                .propose_adds(adds)
                .propose_removals(removals)
                .force_self_update(path)
                .load_psks(this.provider.storage())
                .map_err(CoreError::mls)?
                .use_ratchet_tree_extension(true)
                .build(
                    this.provider.rand(),
                    this.provider.crypto(),
                    &this.device_key,
                    |_| true,
                )
                .map_err(CoreError::mls)?
                .stage_commit(&this.provider)
                .map_err(CoreError::mls)?;
            let (commit, welcome, info) = bundle.into_messages();
            let info =
                info.ok_or_else(|| CoreError::Mls("no GroupInfo for the new epoch".into()))?;
            let request = CommitRequest {
                commit: B64(tls_bytes(&commit)?),
                welcome: welcome.map(|w| tls_bytes(&w)).transpose()?.map(B64),
                group_info: B64(tls_bytes(&info)?),
            };
            this.save()?;
            Ok(PreparedCommit {
                group_id: group.group_id().as_slice().to_vec(),
                request,
            })
        })
    }

    /// The server accepted our commit: merge it.
    pub fn commit_accepted(&mut self, conversation: &str) -> Result<(), CoreError> {
        self.with_group(conversation, |this, group| {
            group
                .merge_pending_commit(&this.provider)
                .map_err(CoreError::mls)?;
            this.save()
        })
    }

    /// The server refused our commit: drop it.
    pub fn commit_refused(&mut self, conversation: &str) -> Result<(), CoreError> {
        self.with_group(conversation, |this, group| {
            group
                .clear_pending_commit(this.provider.storage())
                .map_err(CoreError::mls)?;
            this.save()
        })
    }

    /// Encrypts an application message for a conversation.
    pub fn encrypt(
        &mut self,
        conversation: &str,
        body: AppBody,
    ) -> Result<(Vec<u8>, SendRequest, AppMessage), CoreError> {
        let mut out = self.encrypt_many(conversation, vec![body])?;
        out.pop()
            .ok_or_else(|| CoreError::Mls("nothing was encrypted".into()))
    }

    /// Encrypts several application messages, with one durable save before any can be sent.
    pub fn encrypt_many(
        &mut self,
        conversation: &str,
        bodies: Vec<AppBody>,
    ) -> Result<Vec<(Vec<u8>, SendRequest, AppMessage)>, CoreError> {
        let messages = bodies.into_iter().map(new_message).collect();
        self.encrypt_messages(conversation, messages)
    }

    /// Encrypts given application messages (a message sent again after a lost answer keeps
    /// its id, so that receivers show it once), with one durable save before any can be sent.
    pub fn encrypt_messages(
        &mut self,
        conversation: &str,
        messages: Vec<AppMessage>,
    ) -> Result<Vec<(Vec<u8>, SendRequest, AppMessage)>, CoreError> {
        let out = self.with_group(conversation, |this, group| {
            if !group.is_active() {
                return Err(CoreError::Usage(
                    "you are no longer a member of this conversation".into(),
                ));
            }
            this.check_sendable(group)?;
            let fingerprint = this.fingerprint(conversation, group)?;
            let mut gossip = this.gossip_for(conversation)?;
            let mut out = Vec::with_capacity(messages.len());
            // Each message names the accepted messages of this device that no accepted message
            // named yet. Not the messages encrypted with it: those may be posted together and
            // accepted in any order. A message sent again keeps what it first named.
            let unnamed = this
                .store
                .unnamed_messages(conversation, &this.device_id())?;
            for mut message in messages {
                if message.prev.is_empty() {
                    message.prev = unnamed.clone();
                }
                if message.kt.is_none() {
                    message.kt = gossip.take();
                }
                let plaintext = serde_json::to_vec(&message).map_err(CoreError::storage)?;
                group.set_aad(fingerprint.clone());
                let mls = group
                    .create_message(&this.provider, &this.device_key, &plaintext)
                    .map_err(CoreError::mls)?;
                out.push((
                    group.group_id().as_slice().to_vec(),
                    SendRequest {
                        message: B64(tls_bytes(&mls)?),
                    },
                    message,
                ));
            }
            Ok(out)
        })?;
        // The ratchet generations used must be on disk before any ciphertext leaves.
        self.save()?;
        Ok(out)
    }

    /// Refuses to send into a group with a member whose certificate no longer checks out
    /// (for example after that user's identity key changed).
    fn check_sendable(&self, group: &MlsGroup) -> Result<(), CoreError> {
        let members: Vec<Member> = group.members().collect();
        let owners = self.check_leaves(
            members
                .iter()
                .map(|m| (&m.credential, m.signature_key.as_slice())),
            false,
        )?;
        for owner in owners {
            if owner.address == self.address() {
                continue;
            }
            if self
                .contact(&owner.address)?
                .is_some_and(|c| c.pending_key.is_some())
            {
                return Err(CoreError::refused(
                    AlertCode::IdentityChanged,
                    format!(
                        "the identity key of {} changed; sending to them is blocked until you \
                         compare the new safety number with them and accept the new key",
                        owner.address
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Records a message we sent once the server accepted it.
    pub fn sent(
        &mut self,
        conversation: &str,
        message: &AppMessage,
        accepted: &SendResponse,
    ) -> Result<Option<MessageRecord>, CoreError> {
        let mut records = self.sent_many(&[(conversation, message, accepted)])?;
        Ok(records.pop().flatten())
    }

    /// Records several accepted messages with one save.
    pub fn sent_many(
        &mut self,
        sent: &[(&str, &AppMessage, &SendResponse)],
    ) -> Result<Vec<Option<MessageRecord>>, CoreError> {
        let mut records = Vec::with_capacity(sent.len());
        let own = self.address().to_owned();
        let device = self.device_id();
        for (conversation, message, accepted) in sent {
            let cx = changes::ChangeContext {
                conversation,
                sender: &own,
                sender_device: &device,
                seq: accepted.seq,
                at: now_ms(),
            };
            if let Some(outcomes) = self.apply_change(&cx, message)? {
                records.push(outcomes.into_iter().find_map(|o| match o {
                    Outcome::Message(m) | Outcome::Changed(m) => Some(m),
                    _ => None,
                }));
                continue;
            }
            let Some(shown) = displayed(&message.body) else {
                records.push(None);
                continue;
            };
            let settings = self.current_conversation(conversation)?;
            let record = MessageRecord {
                id: message.id.clone(),
                conversation: (*conversation).to_owned(),
                sender: own.clone(),
                sender_device: device.clone(),
                text: shown.text,
                sent_at: message.sent_at,
                server_time: 0,
                seq: accepted.seq,
                file: shown.file,
                unsupported: shown.unsupported,
                reply_to: shown.reply_to,
                expires_at: self.expiry_in(settings.as_ref(), now_ms())?,
                forwarded: message.forwarded,
                ..MessageRecord::default()
            };
            self.pending.push(Op::Sent {
                record: record.clone(),
                named: message.prev.clone(),
            });
            records.push(Some(record));
        }
        // Relaxed: the messages already left; the next durable save flushes these too.
        self.save_with(Durability::Relaxed)?;
        Ok(records)
    }

    /// The ids of this user's devices in a conversation's group.
    pub fn own_devices_in(
        &self,
        conversation: &str,
    ) -> Result<std::collections::HashSet<String>, CoreError> {
        let group = self.load_group(conversation)?;
        Ok(group
            .members()
            .filter_map(|m| self.check_leaf(&m.credential, &m.signature_key).ok())
            .filter(|o| o.address == self.address())
            .map(|o| o.device_id)
            .collect())
    }

    /// Conversations this device is in whose group holds a leaf of device `device_id`.
    pub fn conversations_with_device(&self, device_id: &str) -> Result<Vec<String>, CoreError> {
        let mut out = Vec::new();
        for c in self.store.conversations()? {
            if c.left {
                continue;
            }
            let group = self.load_group(&c.id)?;
            if group.members().any(|m| {
                self.check_leaf(&m.credential, &m.signature_key)
                    .is_ok_and(|o| o.device_id == device_id)
            }) {
                out.push(c.id);
            }
        }
        Ok(out)
    }

    /// Verified members of a conversation: distinct addresses, sorted.
    pub fn members(&self, conversation: &str) -> Result<Vec<String>, CoreError> {
        Ok(self.members_of(&self.load_group(conversation)?))
    }

    /// Verified members of a group: distinct addresses, sorted.
    fn members_of(&self, group: &MlsGroup) -> Vec<String> {
        let mut out = BTreeSet::new();
        for m in group.members() {
            if let Ok(owner) = self.check_leaf(&m.credential, &m.signature_key) {
                out.insert(owner.address);
            }
        }
        out.into_iter().collect()
    }

    /// The conversation's epoch and epoch authenticator (equal on all members in sync).
    pub fn epoch_authenticator(&self, conversation: &str) -> Result<(u64, Vec<u8>), CoreError> {
        let group = self.load_group(conversation)?;
        Ok((
            group.epoch().as_u64(),
            group.epoch_authenticator().as_slice().to_vec(),
        ))
    }

    /// Marks messages as shown to the user.
    pub fn mark_shown(&mut self, ids: Vec<String>) -> Result<(), CoreError> {
        self.pending.push(Op::MarkShown(ids));
        self.save_with(Durability::Relaxed)
    }
}
