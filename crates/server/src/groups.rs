//! The server's view of MLS groups: public state only (openmls `PublicGroup`). It validates
//! commits, derives the device membership used for fan-out, and never sees application content.
//!
//! Architecture Invariant: the server never decrypts anything; it only parses public framing
//! (group id and epoch of PrivateMessages, full PublicMessage commits).

use std::collections::{HashMap, HashSet};

use missive_proto::cert::DeviceCertificate;
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_libcrux_crypto::CryptoProvider;
use openmls_memory_storage::MemoryStorage;

/// Why a group operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("bytes are not the expected MLS message: {0}")]
    Malformed(&'static str),
    #[error("commit is for epoch {got}, the group is at {current}")]
    Stale { got: u64, current: u64 },
    #[error("invalid commit: {0}")]
    Invalid(String),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("internal: {0}")]
    Internal(String),
}

/// A loaded public group and the storage it lives in.
pub struct GroupState {
    storage: MemoryStorage,
    group: PublicGroup,
}

/// What an accepted commit changed.
pub struct CommitEffect {
    pub new_epoch: u64,
    /// An external commit: the sending device joined by itself (no Welcome).
    pub external: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Parses TLS-encoded bytes as one MLS message with nothing left over.
pub fn parse_message(bytes: &[u8]) -> Result<MlsMessageIn, GroupError> {
    let mut rest = bytes;
    let msg = MlsMessageIn::tls_deserialize(&mut rest)
        .map_err(|_| GroupError::Malformed("not an MLS message"))?;
    if !rest.is_empty() {
        return Err(GroupError::Malformed(
            "trailing bytes after the MLS message",
        ));
    }
    Ok(msg)
}

/// Device id named by a leaf's credential, if it carries a well-formed, self-consistent
/// device certificate for that leaf's signature key.
pub fn leaf_device(credential: &Credential, signature_key: &[u8]) -> Option<String> {
    let (device, cert) = parse_leaf(credential, signature_key)?;
    DeviceCertificate::from_bytes(&cert).ok()?.verify().ok()?;
    Some(device)
}

/// Device id and certificate bytes of a leaf whose certificate is well formed and names the
/// leaf's signature key; the certificate's signature is not checked.
fn parse_leaf(credential: &Credential, signature_key: &[u8]) -> Option<(String, Vec<u8>)> {
    let basic = BasicCredential::try_from(credential.clone()).ok()?;
    let cert = DeviceCertificate::from_bytes(basic.identity()).ok()?;
    (cert.device_key.as_slice() == signature_key)
        .then(|| (cert.device_id_hex(), basic.identity().to_vec()))
}

/// The group id and epoch of an application message (PrivateMessage), read from its header.
pub fn private_message_header(bytes: &[u8]) -> Result<(Vec<u8>, u64), GroupError> {
    let msg = parse_message(bytes)?;
    match msg.extract() {
        MlsMessageBodyIn::PrivateMessage(m) => {
            let pm = ProtocolMessage::from(m);
            Ok((pm.group_id().as_slice().to_vec(), pm.epoch().as_u64()))
        }
        _ => Err(GroupError::Malformed("expected an MLS PrivateMessage")),
    }
}

/// Parses a GroupInfo message.
pub fn parse_group_info(bytes: &[u8]) -> Result<VerifiableGroupInfo, GroupError> {
    match parse_message(bytes)?.extract() {
        MlsMessageBodyIn::GroupInfo(info) => Ok(info),
        _ => Err(GroupError::Malformed("expected an MLS GroupInfo")),
    }
}

fn internal(e: impl std::fmt::Debug) -> GroupError {
    GroupError::Internal(format!("{e:?}"))
}

/// A refusal by openmls, told to the client in our words (`what` failed to validate); the
/// library's own description of why goes to the log only.
fn invalid<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> GroupError {
    move |e| {
        tracing::debug!(error = ?e, "{what}");
        GroupError::Invalid(what.to_owned())
    }
}

impl GroupState {
    /// Starts tracking a new group from its creator's GroupInfo (with ratchet tree).
    pub fn create(group_info: &[u8]) -> Result<(Self, Vec<u8>, Vec<String>), GroupError> {
        let info = parse_group_info(group_info)?;
        if info.epoch().as_u64() != 0 {
            return Err(GroupError::Invalid("a new group starts at epoch 0".into()));
        }
        let tree = info
            .extensions()
            .ratchet_tree()
            .ok_or(GroupError::Invalid(
                "GroupInfo lacks the ratchet tree".into(),
            ))?
            .ratchet_tree()
            .clone();
        let storage = MemoryStorage::default();
        let crypto = CryptoProvider::new().map_err(internal)?;
        let (group, _) =
            PublicGroup::from_external(&crypto, &storage, tree, info, ProposalStore::new())
                .map_err(invalid(
                    "the group's GroupInfo and ratchet tree do not validate",
                ))?;
        let group_id = group.group_id().as_slice().to_vec();
        let state = GroupState { storage, group };
        let members = state.member_devices()?;
        Ok((state, group_id, members))
    }

    /// Loads a group from its serialized state.
    pub fn load(group_id: &[u8], bytes: &[u8]) -> Result<Self, GroupError> {
        let values =
            decode_values(bytes).ok_or(GroupError::Internal("corrupt group state".into()))?;
        let storage = MemoryStorage {
            values: std::sync::RwLock::new(values),
        };
        let group = PublicGroup::load(&storage, &GroupId::from_slice(group_id))
            .map_err(internal)?
            .ok_or(GroupError::Internal("group state incomplete".into()))?;
        Ok(GroupState { storage, group })
    }

    /// Serializes the state, deterministically.
    pub fn to_bytes(&self) -> Result<Vec<u8>, GroupError> {
        let values = self.storage.values.read().map_err(internal)?;
        Ok(encode_values(&values))
    }

    pub fn epoch(&self) -> u64 {
        self.group.group_context().epoch().as_u64()
    }

    /// `(device id, certificate)` of every leaf, parsed without checking signatures: leaves
    /// already in the group were verified when they came in.
    fn leaves(&self) -> Result<Vec<(String, Vec<u8>)>, GroupError> {
        self.group
            .members()
            .map(|m| {
                parse_leaf(&m.credential, &m.signature_key).ok_or(GroupError::Invalid(
                    "a leaf has no valid device certificate".into(),
                ))
            })
            .collect()
    }

    /// Whether a member leaf is certified for `address` by `identity_key` (a device of that
    /// user may then fetch the GroupInfo and join by itself).
    pub fn has_member(&self, address: &str, identity_key: &[u8]) -> bool {
        self.leaves().is_ok_and(|leaves| {
            leaves.iter().any(|(_, c)| {
                DeviceCertificate::from_bytes(c).is_ok_and(|m| {
                    m.address == address && m.identity_key.as_slice() == identity_key
                })
            })
        })
    }

    /// Device ids of all members; every leaf must carry a valid device certificate.
    pub fn member_devices(&self) -> Result<Vec<String>, GroupError> {
        self.group
            .members()
            .map(|m| {
                leaf_device(&m.credential, &m.signature_key).ok_or(GroupError::Invalid(
                    "a leaf has no valid device certificate".into(),
                ))
            })
            .collect()
    }

    /// Validates a commit sent by `sender` and merges it. The caller persists the new state
    /// only if its conditional write at the old epoch succeeds.
    pub fn apply_commit(
        &mut self,
        commit: &[u8],
        sender: &str,
        group_info: &[u8],
    ) -> Result<CommitEffect, GroupError> {
        let msg = parse_message(commit)?;
        let protocol = match msg.extract() {
            MlsMessageBodyIn::PublicMessage(m) => ProtocolMessage::from(m),
            _ => {
                return Err(GroupError::Malformed(
                    "a commit must be an MLS PublicMessage",
                ))
            }
        };
        if protocol.group_id() != self.group.group_id() {
            return Err(GroupError::Invalid("commit is for another group".into()));
        }
        let current = self.epoch();
        if protocol.epoch().as_u64() != current {
            return Err(GroupError::Stale {
                got: protocol.epoch().as_u64(),
                current,
            });
        }
        let crypto = CryptoProvider::new().map_err(internal)?;
        let processed = self
            .group
            .process_message(&crypto, protocol)
            .map_err(invalid(
                "the commit does not validate against the group's public state",
            ))?;
        let before = self.leaves()?;
        let before_devices: HashSet<&str> = before.iter().map(|(d, _)| d.as_str()).collect();
        let before_certs: HashSet<&[u8]> = before.iter().map(|(_, c)| c.as_slice()).collect();
        let external = match *processed.sender() {
            Sender::Member(leaf) => {
                let committer = self
                    .group
                    .leaf(leaf)
                    .and_then(|l| leaf_device(l.credential(), l.signature_key().as_slice()));
                if committer.as_deref() != Some(sender) {
                    return Err(GroupError::Forbidden(
                        "a device may only send commits signed by its own leaf",
                    ));
                }
                false
            }
            // A device joining by itself (account recovery): checked below, once merged.
            Sender::NewMemberCommit => true,
            _ => return Err(GroupError::Forbidden("only members may commit")),
        };
        let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
            return Err(GroupError::Invalid("expected a commit".into()));
        };
        self.group
            .merge_commit(&self.storage, *staged)
            .map_err(internal)?;
        let after = self.leaves()?;
        // Only certificates the commit brings in need their signature checked.
        for (_, cert) in after
            .iter()
            .filter(|(_, c)| !before_certs.contains(c.as_slice()))
        {
            DeviceCertificate::from_bytes(cert)
                .ok()
                .and_then(|c| c.verify().ok())
                .ok_or(GroupError::Invalid(
                    "a leaf the commit brings in has no valid device certificate".into(),
                ))?;
        }
        let after_devices: HashSet<&str> = after.iter().map(|(d, _)| d.as_str()).collect();
        if external {
            // The joiner is the sending device, new to the group, and certified by the
            // identity key of a user who is a member already: nobody else joins this way.
            let joiner = after
                .iter()
                .find(|(d, _)| d == sender && !before_devices.contains(d.as_str()))
                .and_then(|(_, c)| DeviceCertificate::from_bytes(c).ok())
                .ok_or(GroupError::Forbidden(
                    "an external commit must bring in the device that sends it",
                ))?;
            if !before.iter().any(|(_, c)| {
                DeviceCertificate::from_bytes(c).is_ok_and(|m| {
                    m.address == joiner.address && m.identity_key == joiner.identity_key
                })
            }) {
                return Err(GroupError::Forbidden(
                    "only a device of a current member may join by itself",
                ));
            }
        }
        let info = parse_group_info(group_info)?;
        if info.group_id() != self.group.group_id() || info.epoch().as_u64() != self.epoch() {
            return Err(GroupError::Invalid(
                "GroupInfo is not for the epoch the commit creates".into(),
            ));
        }
        let added = after_devices
            .difference(&before_devices)
            .map(|d| d.to_string())
            .collect();
        let removed = before_devices
            .difference(&after_devices)
            .map(|d| d.to_string())
            .collect();
        Ok(CommitEffect {
            new_epoch: self.epoch(),
            external,
            added,
            removed,
        })
    }
}

/// Checks that bytes are a Welcome message.
pub fn check_welcome(bytes: &[u8]) -> Result<(), GroupError> {
    match parse_message(bytes)?.extract() {
        MlsMessageBodyIn::Welcome(_) => Ok(()),
        _ => Err(GroupError::Malformed("expected an MLS Welcome")),
    }
}

/// Validates an uploaded key package: signature, protocol version, and that its leaf carries
/// the uploading device's own certificate. Returns its hash reference.
pub fn check_key_package(bytes: &[u8], device_certificate: &[u8]) -> Result<Vec<u8>, GroupError> {
    let msg = parse_message(bytes)?;
    let MlsMessageBodyIn::KeyPackage(kp) = msg.extract() else {
        return Err(GroupError::Malformed("expected an MLS KeyPackage"));
    };
    let crypto = CryptoProvider::new().map_err(internal)?;
    let kp = kp
        .validate(&crypto, ProtocolVersion::Mls10)
        .map_err(invalid("the key package does not validate"))?;
    let leaf = kp.leaf_node();
    let basic = BasicCredential::try_from(leaf.credential().clone())
        .map_err(|_| GroupError::Forbidden("key package credential is not ours"))?;
    if basic.identity() != device_certificate {
        return Err(GroupError::Forbidden(
            "key package does not carry this device's certificate",
        ));
    }
    if leaf_device(leaf.credential(), leaf.signature_key().as_slice()).is_none() {
        return Err(GroupError::Forbidden(
            "key package signature key is not certified",
        ));
    }
    let hash = kp.hash_ref(&crypto).map_err(internal)?;
    Ok(hash.as_slice().to_vec())
}

fn encode_values(values: &HashMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let mut entries: Vec<_> = values.iter().collect();
    entries.sort();
    let mut out = Vec::new();
    for (k, v) in entries {
        out.extend_from_slice(&(k.len() as u64).to_be_bytes());
        out.extend_from_slice(&(v.len() as u64).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}

fn decode_values(mut bytes: &[u8]) -> Option<HashMap<Vec<u8>, Vec<u8>>> {
    let take = |n: usize, bytes: &mut &[u8]| -> Option<Vec<u8>> {
        if bytes.len() < n {
            return None;
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Some(head.to_vec())
    };
    let mut map = HashMap::new();
    while !bytes.is_empty() {
        let klen =
            usize::try_from(u64::from_be_bytes(take(8, &mut bytes)?.try_into().ok()?)).ok()?;
        let vlen =
            usize::try_from(u64::from_be_bytes(take(8, &mut bytes)?.try_into().ok()?)).ok()?;
        let k = take(klen, &mut bytes)?;
        let v = take(vlen, &mut bytes)?;
        map.insert(k, v);
    }
    Some(map)
}
