//! Recovery, the account's side: the recovery key every device of the account keeps, the
//! backup it seals (compared again whenever contacts or conversations change, uploaded when
//! it differs), becoming the account again from a backup, and rejoining its conversations by
//! external commit.

use std::collections::BTreeMap;

use missive_proto::api::{
    CommitRequest, RecoverDeviceRequest, RecoveryHistoryUpload, RecoveryUpload, RegisterResponse,
};
use missive_proto::B64;
use openmls::prelude::*;

use super::{capabilities, group_id_of, join_config, keys, parse_mls, tls_bytes, Account};
use crate::error::{AlertCode, CoreError};
use crate::identity::{self, Identity};
use crate::recovery::{Backup, RecoveryKey};
use crate::store::{AccountStore, ConversationRecord, Durability, Op};

/// Most messages in one history segment.
const MAX_SEGMENT_MESSAGES: usize = 2000;

/// Per conversation, the sequence number of the last message backed up.
pub type HistoryMarks = BTreeMap<String, u64>;

/// What a history segment carried, to record once the server has it: the marks it reached,
/// and the deletions it passed on.
pub struct SegmentDone {
    pub marks: HistoryMarks,
    pub deletions: Vec<String>,
}

impl Account {
    /// The account's recovery key, if it has one.
    pub fn recovery_key(&self) -> Result<Option<RecoveryKey>, CoreError> {
        Ok(self
            .store
            .setting(keys::RECOVERY_KEY)?
            .and_then(|b| RecoveryKey::from_bytes(&b)))
    }

    /// Keeps the recovery key (the backup is sealed under it from now on).
    pub fn set_recovery_key(&mut self, key: &RecoveryKey) -> Result<(), CoreError> {
        self.store.apply(
            vec![Op::Setting(
                keys::RECOVERY_KEY.into(),
                key.as_bytes().to_vec(),
            )],
            Durability::Durable,
        )?;
        self.backup_dirty = true;
        Ok(())
    }

    fn backup(&self) -> Result<Backup, CoreError> {
        let kt = match (self.kt_log()?, self.store.setting(keys::KT_HEAD)?) {
            (Some((domain, key)), Some(head)) => Some((domain, B64(key.to_vec()), B64(head))),
            _ => None,
        };
        Ok(Backup {
            identity_secret: B64(self.identity.secret().to_vec()),
            contacts: self.contact_transfers()?,
            conversations: self
                .store
                .conversations()?
                .into_iter()
                .filter(|c| !c.left)
                .collect(),
            kt,
            history: self.history_backup()?,
        })
    }

    /// The sealed backup to upload, with its digest for [`Account::backup_uploaded`]: with
    /// `force`, or when contacts or conversations changed since the last look and the backup
    /// is not the one last uploaded. `None` without a recovery key.
    pub fn backup_upload(
        &mut self,
        force: bool,
    ) -> Result<Option<(RecoveryUpload, [u8; 32])>, CoreError> {
        if !force && !self.backup_dirty {
            return Ok(None);
        }
        self.backup_dirty = false;
        let Some(key) = self.recovery_key()? else {
            return Ok(None);
        };
        let (backup, digest) = self.backup_and_digest()?;
        if !force && self.store.setting(keys::RECOVERY_DIGEST)?.as_deref() == Some(&digest[..]) {
            return Ok(None);
        }
        Ok(Some((self.seal_backup(&key, &backup)?, digest)))
    }

    /// The backup sealed under `key` (also a key this device does not keep yet: one made for
    /// an account that had none), with the digest of what it seals.
    pub fn backup_under(&self, key: &RecoveryKey) -> Result<(RecoveryUpload, [u8; 32]), CoreError> {
        let (backup, digest) = self.backup_and_digest()?;
        Ok((self.seal_backup(key, &backup)?, digest))
    }

    /// The backup, and the BLAKE3 digest of its encoding (compared before anything is sealed).
    fn backup_and_digest(&self) -> Result<(Backup, [u8; 32]), CoreError> {
        let backup = self.backup()?;
        let plain =
            zeroize::Zeroizing::new(serde_json::to_vec(&backup).map_err(CoreError::storage)?);
        Ok((backup, blake3::hash(&plain).into()))
    }

    fn seal_backup(&self, key: &RecoveryKey, backup: &Backup) -> Result<RecoveryUpload, CoreError> {
        let address = self.address();
        Ok(RecoveryUpload {
            auth: key.auth(address),
            backup: B64(key.seal(address, backup)?),
        })
    }

    /// The server keeps the backup of this digest.
    pub fn backup_uploaded(&mut self, digest: [u8; 32]) -> Result<(), CoreError> {
        self.store.apply(
            vec![Op::Setting(keys::RECOVERY_DIGEST.into(), digest.to_vec())],
            Durability::Relaxed,
        )
    }

    /// A new device of the account a backup restores (identity key from the backup, a new
    /// device key and certificate), and the request that registers it.
    pub fn restore(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        address: &str,
        key: &RecoveryKey,
        backup: &Backup,
    ) -> Result<(Self, RecoverDeviceRequest), CoreError> {
        if Self::is_registered(store.as_ref())? {
            return Err(CoreError::Usage(
                "this home already holds a registered account".into(),
            ));
        }
        let identity = Identity::from_secret(backup.identity_secret.as_bytes())
            .map_err(|_| CoreError::Usage("the backup holds a malformed identity key".into()))?;
        let account = Account::with_new_device(store, identity, address, server)?;
        let request = RecoverDeviceRequest {
            address: address.to_owned(),
            auth: key.auth(address),
            device_certificate: B64(account.cert.to_bytes()),
        };
        Ok((account, request))
    }

    /// Stores the restored account once the server registered the device: contacts as the
    /// backup pinned them, the log followed, the recovery key, the conversations to rejoin.
    pub fn finish_restore(
        &mut self,
        response: &RegisterResponse,
        key: &RecoveryKey,
        backup: &Backup,
    ) -> Result<(), CoreError> {
        self.finish_registration(response)?;
        self.import_contacts(&backup.contacts)?;
        let mut ops = vec![
            Op::Setting(keys::RECOVERY_KEY.into(), key.as_bytes().to_vec()),
            Op::Setting(
                keys::REJOIN.into(),
                serde_json::to_vec(&backup.conversations).map_err(CoreError::storage)?,
            ),
        ];
        if backup.history {
            ops.push(Op::Setting(keys::HISTORY_BACKUP.into(), vec![1]));
        }
        self.history_on = Some(backup.history);
        if let Some((domain, log_key, head)) = &backup.kt {
            ops.extend([
                Op::Setting(keys::KT_DOMAIN.into(), domain.as_bytes().to_vec()),
                Op::Setting(keys::KT_KEY.into(), log_key.0.clone()),
                Op::Setting(keys::KT_HEAD.into(), head.0.clone()),
            ]);
        }
        self.store.apply(ops, Durability::Durable)
    }

    /// Conversations a recovered device has still to rejoin.
    pub fn to_rejoin(&self) -> Result<Vec<ConversationRecord>, CoreError> {
        Ok(match self.store.setting(keys::REJOIN)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(CoreError::storage)?,
            None => Vec::new(),
        })
    }

    /// Joins a conversation by external commit from its current GroupInfo. The group the
    /// GroupInfo describes must be this conversation's, and every member certified by its
    /// user's pinned identity key (`NeedContacts` names the users to look up first). The new
    /// group state is saved before the commit can leave; [`Account::rejoin_refused`] drops it
    /// if the server refuses.
    pub fn rejoin(
        &mut self,
        conversation: &str,
        group_info: &[u8],
    ) -> Result<(Vec<u8>, CommitRequest), CoreError> {
        let rejected = |why: String| CoreError::refused(AlertCode::RejectedCommit, why);
        let MlsMessageBodyIn::GroupInfo(info) = parse_mls(group_info)?.extract() else {
            return Err(rejected(format!(
                "the server gave no GroupInfo for {conversation}"
            )));
        };
        let group_id = group_id_of(conversation)?;
        if info.group_id() != &group_id {
            return Err(rejected(format!(
                "the server gave the GroupInfo of another group for {conversation}"
            )));
        }
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_config(join_config())
            .build_group(
                &self.provider,
                info,
                identity::credential_with_key(&self.cert),
            )
            .map_err(|e| rejected(format!("cannot join {conversation}: {e:?}")))?
            .leaf_node_parameters(
                LeafNodeParameters::builder()
                    .with_capabilities(capabilities())
                    .build(),
            )
            .load_psks(self.provider.storage())
            .map_err(CoreError::mls)?
            .use_ratchet_tree_extension(true)
            .build(
                self.provider.rand(),
                self.provider.crypto(),
                &self.device_key,
                |_| true,
            )
            .map_err(|e| rejected(format!("cannot join {conversation}: {e:?}")))?
            .finalize(&self.provider)
            .map_err(|e| rejected(format!("cannot join {conversation}: {e:?}")))?;
        let members: Vec<Member> = group.members().collect();
        if let Err(e) = self.check_leaves(
            members
                .iter()
                .map(|m| (&m.credential, m.signature_key.as_slice())),
            false,
        ) {
            self.drop_group(conversation)?;
            return Err(e);
        }
        let (commit, _, info) = bundle.into_messages();
        let info = info.ok_or_else(|| CoreError::Mls("no GroupInfo for the new epoch".into()))?;
        let request = CommitRequest {
            commit: B64(tls_bytes(&commit)?),
            welcome: None,
            group_info: B64(tls_bytes(&info)?),
        };
        self.save()?;
        Ok((group_id.as_slice().to_vec(), request))
    }

    /// The server accepted our external commit: the conversation is ours again.
    pub fn rejoined(&mut self, record: &ConversationRecord) -> Result<(), CoreError> {
        self.pending.push(Op::Conversation(record.clone()));
        self.forget_rejoin(&record.id)
    }

    /// The server refused the external commit (or the group could not be joined): the
    /// state it made is dropped.
    pub fn rejoin_refused(&mut self, conversation: &str) -> Result<(), CoreError> {
        self.drop_group(conversation)?;
        self.save()
    }

    /// A conversation that cannot be rejoined is not tried again.
    pub fn forget_rejoin(&mut self, conversation: &str) -> Result<(), CoreError> {
        let mut left = self.to_rejoin()?;
        left.retain(|c| c.id != conversation);
        self.pending.push(Op::Setting(
            keys::REJOIN.into(),
            serde_json::to_vec(&left).map_err(CoreError::storage)?,
        ));
        self.save()
    }

    fn drop_group(&mut self, conversation: &str) -> Result<(), CoreError> {
        self.groups.remove(conversation);
        self.fingerprints.remove(conversation);
        if let Some(mut group) =
            MlsGroup::load(self.provider.storage(), &group_id_of(conversation)?)
                .map_err(CoreError::mls)?
        {
            group
                .delete(self.provider.storage())
                .map_err(CoreError::mls)?;
        }
        Ok(())
    }

    /// Devices of ours in a conversation other than this one (after a recovery: the lost ones,
    /// to remove).
    pub fn other_own_devices(&self, conversation: &str) -> Result<Vec<String>, CoreError> {
        let group = self.load_group(conversation)?;
        Ok(group
            .members()
            .filter_map(|m| self.check_leaf(&m.credential, &m.signature_key).ok())
            .filter(|o| o.address == self.address() && o.device_id != self.device_id)
            .map(|o| o.device_id)
            .collect())
    }

    /// Whether this account backs its message history up (with its recovery key).
    pub fn history_backup(&self) -> Result<bool, CoreError> {
        Ok(self.store.setting(keys::HISTORY_BACKUP)?.as_deref() == Some(&[1][..]))
    }

    /// Turns the history backup on or off (for this device; the recovery backup carries the
    /// choice to a recovered device).
    pub fn set_history_backup(&mut self, on: bool) -> Result<(), CoreError> {
        self.store.apply(
            vec![Op::Setting(keys::HISTORY_BACKUP.into(), vec![u8::from(on)])],
            Durability::Durable,
        )?;
        self.backup_dirty = true;
        self.history_dirty = true;
        self.history_on = Some(on);
        Ok(())
    }

    fn history_marks(&self) -> Result<HistoryMarks, CoreError> {
        Ok(match self.store.setting(keys::HISTORY_MARKS)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(CoreError::storage)?,
            None => BTreeMap::new(),
        })
    }

    /// The next segment of message history to back up: messages not backed up yet, oldest
    /// first in each conversation, at most [`MAX_SEGMENT_MESSAGES`]; with the marks to keep
    /// once the server has it. `None` when there is nothing to back up (or the backup is off).
    pub fn next_history_segment(
        &mut self,
    ) -> Result<Option<(RecoveryHistoryUpload, SegmentDone)>, CoreError> {
        if !self.history_dirty {
            return Ok(None);
        }
        let on = match self.history_on {
            Some(on) => on,
            None => *self.history_on.insert(self.history_backup()?),
        };
        let key = match (on, self.recovery_key()?) {
            (true, Some(key)) => key,
            _ => {
                self.history_dirty = false;
                return Ok(None);
            }
        };
        let marks = self.history_marks()?;
        let mut history =
            self.history_where(|c, m| marks.get(&c.id).is_none_or(|mark| m.seq > *mark))?;
        let mut budget = MAX_SEGMENT_MESSAGES;
        let mut next = marks;
        history.conversations.retain_mut(|c| {
            c.messages.sort_by_key(|m| m.seq);
            c.messages.truncate(budget);
            budget -= c.messages.len();
            if let Some(last) = c.messages.last() {
                next.insert(c.id.clone(), last.seq);
            }
            !c.messages.is_empty()
        });
        history.deleted = self.deletions_for_backup()?;
        if history.conversations.is_empty() && history.deleted.is_empty() {
            self.history_dirty = false;
            return Ok(None);
        }
        let deletions = history.deleted.clone();
        let address = self.address().to_owned();
        Ok(Some((
            RecoveryHistoryUpload {
                auth: key.auth(&address),
                segment: B64(key.seal_history(&address, &history)?),
            },
            SegmentDone {
                marks: next,
                deletions,
            },
        )))
    }

    /// The server keeps the segment these marks close.
    pub fn history_uploaded(&mut self, done: &SegmentDone) -> Result<(), CoreError> {
        let mut ops = vec![Op::Setting(
            keys::HISTORY_MARKS.into(),
            serde_json::to_vec(&done.marks).map_err(CoreError::storage)?,
        )];
        if !done.deletions.is_empty() {
            // Those passed on; any made since stay for the next segment.
            let left: Vec<String> = self
                .deletions_for_backup()?
                .into_iter()
                .filter(|id| !done.deletions.contains(id))
                .collect();
            ops.push(Op::Setting(
                keys::HISTORY_DELETIONS.into(),
                serde_json::to_vec(&left).map_err(CoreError::storage)?,
            ));
        }
        self.store.apply(ops, Durability::Relaxed)
    }

    /// Messages deleted for everyone that the history backup has not passed on yet.
    fn deletions_for_backup(&self) -> Result<Vec<String>, CoreError> {
        let pending = self.pending.iter().rev().find_map(|op| match op {
            Op::Setting(k, v) if k == keys::HISTORY_DELETIONS => Some(v.clone()),
            _ => None,
        });
        Ok(
            match pending.or(self.store.setting(keys::HISTORY_DELETIONS)?) {
                Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
                None => Vec::new(),
            },
        )
    }

    /// A message deleted for everyone: when the history is backed up, the next segment says
    /// so, so that a recovered device erases it from the earlier segments it restores.
    pub(super) fn note_deletion_for_backup(&mut self, id: &str) -> Result<(), CoreError> {
        if !self.history_backup()? {
            return Ok(());
        }
        let mut list = self.deletions_for_backup()?;
        if !list.iter().any(|d| d == id) {
            list.push(id.to_owned());
        }
        self.pending.push(Op::Setting(
            keys::HISTORY_DELETIONS.into(),
            serde_json::to_vec(&list).map_err(CoreError::storage)?,
        ));
        self.history_dirty = true;
        Ok(())
    }

    /// Stores the history segments of a recovered account (those that open with its key; the
    /// messages of conversations it rejoined). Returns how many messages were restored.
    pub fn restore_history(
        &mut self,
        key: &RecoveryKey,
        segments: &[Vec<u8>],
    ) -> Result<usize, CoreError> {
        let address = self.address().to_owned();
        let mut marks = self.history_marks()?;
        let mut restored = 0;
        for sealed in segments {
            let Some(history) = key.open_history(&address, sealed) else {
                continue;
            };
            for c in &history.conversations {
                if let Some(last) = c.messages.iter().map(|m| m.seq).max() {
                    let mark = marks.entry(c.id.clone()).or_insert(last);
                    *mark = (*mark).max(last);
                }
            }
            restored += self.import_history(history)?;
        }
        // What was restored is on the server already.
        self.history_uploaded(&SegmentDone {
            marks,
            deletions: Vec::new(),
        })?;
        Ok(restored)
    }
}
