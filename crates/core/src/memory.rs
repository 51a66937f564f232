//! An [`AccountStore`] in memory: for tests, and as the executable statement of what every
//! store must do (the SQLite store and the browser's follow the same conformance suite,
//! [`account_store_conformance!`](crate::account_store_conformance)). Nothing survives the
//! process, so its batches are durable as soon as they are applied.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::CoreError;
use crate::store::*;

/// A message and the two marks the engine keeps on it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Stored {
    record: MessageRecord,
    /// Shown to the user (by `sync`); our own messages are stored shown.
    shown: bool,
    /// Our accepted message that no later accepted message names yet (threat 9's chain).
    unnamed: bool,
}

/// Every record of one account, in memory (serializable whole: the browser's store keeps
/// snapshots of it, see `journal.rs`).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct MemoryAccountStore {
    settings: HashMap<String, Vec<u8>>,
    mls: HashMap<Vec<u8>, Vec<u8>>,
    frozen: HashSet<Vec<u8>>,
    conversations: BTreeMap<String, ConversationRecord>,
    /// In the order stored (the order `messages` lists them in).
    messages: Vec<Stored>,
    /// Each message's position in `messages`.
    by_id: HashMap<String, usize>,
    contacts: BTreeMap<String, ContactRecord>,
    alerts: Vec<AlertRecord>,
    /// Messages applied to others (`Op::Applied`): their ids, and their places.
    applied: HashSet<String>,
    applied_at: HashSet<(String, u64)>,
}

impl MemoryAccountStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn stored(&self) -> std::slice::Iter<'_, Stored> {
        self.messages.iter()
    }

    fn records(&self, keep: impl Fn(&Stored) -> bool) -> Vec<MessageRecord> {
        self.stored()
            .filter(|s| keep(s))
            .map(|s| s.record.clone())
            .collect()
    }

    /// Inserts a message unless one with its id is stored; returns its position.
    fn insert(&mut self, record: MessageRecord, shown: bool, unnamed: bool) -> usize {
        if let Some(&at) = self.by_id.get(&record.id) {
            return at;
        }
        let at = self.messages.len();
        self.by_id.insert(record.id.clone(), at);
        self.messages.push(Stored {
            record,
            shown,
            unnamed,
        });
        at
    }

    fn set_marks(&mut self, id: &str, mark: impl Fn(&mut Stored)) {
        if let Some(&at) = self.by_id.get(id) {
            mark(&mut self.messages[at]);
        }
    }
}

impl AccountStore for MemoryAccountStore {
    fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        Ok(self.settings.get(key).cloned())
    }

    fn mls_entries(&self) -> Result<(HashMap<Vec<u8>, Vec<u8>>, HashSet<Vec<u8>>), CoreError> {
        Ok((self.mls.clone(), self.frozen.clone()))
    }

    fn apply(&mut self, batch: Batch, _durability: Durability) -> Result<(), CoreError> {
        // No operation can fail half way, so the batch is applied whole or (on a panic) not
        // at all as far as anyone holding the store can tell.
        for op in batch {
            match op {
                Op::Setting(key, value) => {
                    self.settings.insert(key.into_owned(), value);
                }
                Op::Mls(key, Some(value)) => {
                    self.mls.insert(key, value);
                }
                Op::Mls(key, None) => {
                    self.mls.remove(&key);
                    self.frozen.remove(&key);
                }
                Op::FreezeMls(keys) => {
                    for key in keys {
                        if self.mls.contains_key(&key) {
                            self.frozen.insert(key);
                        }
                    }
                }
                Op::Conversation(c) => {
                    self.conversations.insert(c.id.clone(), c);
                }
                Op::Message(m) => {
                    self.insert(m, false, false);
                }
                Op::Sent { record, named } => {
                    let id = record.id.clone();
                    self.insert(record, true, true);
                    self.set_marks(&id, |s| {
                        s.shown = true;
                        s.unnamed = true;
                    });
                    for named in &named {
                        self.set_marks(named, |s| s.unnamed = false);
                    }
                }
                Op::Contact(c) => {
                    self.contacts.insert(c.address.clone(), c);
                }
                Op::Alert(a) => self.alerts.push(a),
                Op::MarkShown(ids) => {
                    for id in &ids {
                        self.set_marks(id, |s| s.shown = true);
                    }
                }
                Op::Applied {
                    id,
                    conversation,
                    seq,
                } => {
                    self.applied.insert(id);
                    self.applied_at.insert((conversation, seq));
                }
                Op::Revise(record) => {
                    if let Some(&at) = self.by_id.get(&record.id) {
                        self.messages[at].record = record;
                    }
                }
                Op::Erase(ids) => {
                    let gone: HashSet<String> = ids.into_iter().collect();
                    let before = self.messages.len();
                    self.messages.retain(|s| !gone.contains(&s.record.id));
                    if self.messages.len() != before {
                        self.by_id = (self.messages.iter().enumerate())
                            .map(|(at, s)| (s.record.id.clone(), at))
                            .collect();
                    }
                }
            }
        }
        Ok(())
    }

    fn conversations(&self) -> Result<Vec<ConversationRecord>, CoreError> {
        let mut all: Vec<ConversationRecord> = self.conversations.values().cloned().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, CoreError> {
        Ok(self.conversations.get(id).cloned())
    }

    fn dm_with(&self, peer: &str) -> Result<Option<ConversationRecord>, CoreError> {
        Ok(self
            .conversations()?
            .into_iter()
            .find(|c| c.dm_peer.as_deref() == Some(peer) && !c.left))
    }

    fn messages(&self, conversation: &str) -> Result<Vec<MessageRecord>, CoreError> {
        Ok(self.records(|s| s.record.conversation == conversation))
    }

    fn messages_matching(&self, prefix: &str) -> Result<Vec<MessageRecord>, CoreError> {
        Ok(self
            .stored()
            .filter(|s| {
                s.record.id.starts_with(prefix)
                    || s.record
                        .file
                        .as_ref()
                        .is_some_and(|f| f.blob.starts_with(prefix))
            })
            .take(3)
            .map(|s| s.record.clone())
            .collect())
    }

    fn has_message(&self, id: &str) -> Result<bool, CoreError> {
        Ok(self.by_id.contains_key(id) || self.applied.contains(id))
    }

    fn has_message_at(&self, conversation: &str, seq: u64) -> Result<bool, CoreError> {
        Ok(self.applied_at.contains(&(conversation.to_owned(), seq))
            || self
                .stored()
                .any(|s| s.record.conversation == conversation && s.record.seq == seq))
    }

    fn last_message_from(
        &self,
        conversation: &str,
        device: &str,
    ) -> Result<Option<String>, CoreError> {
        Ok(self
            .stored()
            .rev()
            .find(|s| s.record.conversation == conversation && s.record.sender_device == device)
            .map(|s| s.record.id.clone()))
    }

    fn unnamed_messages(&self, conversation: &str, device: &str) -> Result<Vec<String>, CoreError> {
        Ok(self
            .stored()
            .filter(|s| {
                s.unnamed
                    && s.record.conversation == conversation
                    && s.record.sender_device == device
            })
            .map(|s| s.record.id.clone())
            .collect())
    }

    fn contact(&self, address: &str) -> Result<Option<ContactRecord>, CoreError> {
        Ok(self.contacts.get(address).cloned())
    }

    fn contacts(&self) -> Result<Vec<ContactRecord>, CoreError> {
        Ok(self.contacts.values().cloned().collect())
    }

    fn alerts(&self) -> Result<Vec<AlertRecord>, CoreError> {
        Ok(self.alerts.clone())
    }

    fn unshown_messages(&self) -> Result<Vec<MessageRecord>, CoreError> {
        Ok(self.records(|s| !s.shown))
    }

    fn message(&self, id: &str) -> Result<Option<MessageRecord>, CoreError> {
        Ok(self
            .by_id
            .get(id)
            .map(|&at| self.messages[at].record.clone()))
    }

    fn search(&self, query: &crate::search::Query) -> Result<Vec<MessageRecord>, CoreError> {
        Ok(self
            .stored()
            .rev()
            .filter(|s| query.matches(&s.record))
            .take(query.limit)
            .map(|s| s.record.clone())
            .collect())
    }

    fn expired_messages(&self, now: u64) -> Result<Vec<String>, CoreError> {
        Ok(self
            .stored()
            .filter(|s| s.record.expires_at.is_some_and(|t| t <= now))
            .map(|s| s.record.id.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> ((), MemoryAccountStore) {
        ((), MemoryAccountStore::new())
    }

    crate::account_store_conformance!(fresh);
}
