//! An account store for places with no synchronous durable storage (a browser): the account
//! lives in memory ([`MemoryAccountStore`]) and every batch applied to it is also queued, as
//! bytes, in a [`Journal`] that the host writes to its own storage (IndexedDB) and replays on
//! the next start.
//!
//! The durability rule of [`AccountStore::apply`] is kept by the host's *barrier*: the engine
//! runs it before every request leaves the device (see `Client::set_barrier`), and the barrier
//! returns only once every queued entry is durably written. So a batch that advances a sending
//! ratchet, stages a commit or uploads key packages is on disk before the request it enabled is
//! sent, as with SQLite; a batch of received events written later than it was applied is, at
//! worst, fetched again (the cursor moves in the same batch).
//!
//! Entries are numbered from 1 and replayed in order. Now and then a flush carries a snapshot
//! of the whole store instead, covering every entry up to its number, so that a start replays a
//! bounded journal.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::CoreError;
use crate::memory::MemoryAccountStore;
use crate::store::*;

/// Entries written since the last snapshot after which the next flush carries a new one.
const SNAPSHOT_EVERY: usize = 256;

/// What the host must write, in one durable transaction: the entries (each under its number),
/// and, when present, a snapshot that replaces every entry up to its number (the host then
/// deletes those).
#[derive(Debug, Default)]
pub struct Flush {
    pub entries: Vec<(u64, Vec<u8>)>,
    pub snapshot: Option<(u64, Vec<u8>)>,
}

/// The queue of entries not yet written, shared between the store and the host.
#[derive(Default)]
struct Queue {
    next: u64,
    pending: Vec<(u64, Vec<u8>)>,
    since_snapshot: usize,
}

/// The host's side of a [`JournaledStore`]: takes what to write.
#[derive(Clone)]
pub struct Journal {
    queue: Arc<Mutex<Queue>>,
    memory: Arc<Mutex<MemoryAccountStore>>,
}

impl Journal {
    /// Everything applied and not yet handed out, oldest first; `None` when all is written.
    /// Hand a [`Flush`] that could not be written back with [`Journal::put_back`].
    pub fn take(&self) -> Result<Option<Flush>, CoreError> {
        let mut queue = lock(&self.queue)?;
        if queue.pending.is_empty() {
            return Ok(None);
        }
        let entries = std::mem::take(&mut queue.pending);
        queue.since_snapshot += entries.len();
        let mut flush = Flush {
            entries,
            snapshot: None,
        };
        if queue.since_snapshot >= SNAPSHOT_EVERY {
            // The memory store holds exactly the entries numbered below `next`: the queue is
            // locked while a batch is applied and numbered.
            let snapshot = postcard::to_allocvec(&*lock(&self.memory)?)
                .map_err(|e| CoreError::Storage(format!("snapshot: {e}")))?;
            flush.snapshot = Some((queue.next - 1, snapshot));
            queue.since_snapshot = 0;
        }
        Ok(Some(flush))
    }

    /// Returns a flush that failed to be written, to be taken again first.
    pub fn put_back(&self, flush: Flush) -> Result<(), CoreError> {
        let mut queue = lock(&self.queue)?;
        let mut entries = flush.entries;
        queue.since_snapshot = queue.since_snapshot.saturating_sub(entries.len());
        entries.append(&mut queue.pending);
        queue.pending = entries;
        if flush.snapshot.is_some() {
            // Retried with the next flush's snapshot.
            queue.since_snapshot = SNAPSHOT_EVERY;
        }
        Ok(())
    }

    /// Entries waiting to be written.
    pub fn pending(&self) -> Result<usize, CoreError> {
        Ok(lock(&self.queue)?.pending.len())
    }
}

/// An account store in memory whose every batch is journaled for the host to persist.
pub struct JournaledStore {
    memory: Arc<Mutex<MemoryAccountStore>>,
    queue: Arc<Mutex<Queue>>,
}

impl JournaledStore {
    /// A store rebuilt from what the host wrote: the latest snapshot (with the number of the
    /// last entry it covers) and the entries after it, in any order. Entries the snapshot
    /// covers are skipped.
    pub fn restore(
        snapshot: Option<(u64, &[u8])>,
        entries: &[(u64, Vec<u8>)],
    ) -> Result<(JournaledStore, Journal), CoreError> {
        let (mut memory, covered) = match snapshot {
            Some((covered, bytes)) => (
                postcard::from_bytes::<MemoryAccountStore>(bytes)
                    .map_err(|e| CoreError::Storage(format!("unreadable snapshot: {e}")))?,
                covered,
            ),
            None => (MemoryAccountStore::new(), 0),
        };
        let mut sorted: Vec<&(u64, Vec<u8>)> =
            entries.iter().filter(|(n, _)| *n > covered).collect();
        sorted.sort_by_key(|(n, _)| *n);
        let mut last = covered;
        for (n, bytes) in sorted {
            if *n != last + 1 {
                return Err(CoreError::Storage(format!(
                    "the stored journal misses entry {} (found {n})",
                    last + 1
                )));
            }
            let batch: Batch = postcard::from_bytes(bytes)
                .map_err(|e| CoreError::Storage(format!("unreadable journal entry {n}: {e}")))?;
            memory.apply(batch, Durability::Durable)?;
            last = *n;
        }
        let queue = Arc::new(Mutex::new(Queue {
            next: last + 1,
            pending: Vec::new(),
            since_snapshot: usize::try_from(last - covered).unwrap_or(usize::MAX),
        }));
        let memory = Arc::new(Mutex::new(memory));
        let journal = Journal {
            queue: queue.clone(),
            memory: memory.clone(),
        };
        Ok((JournaledStore { memory, queue }, journal))
    }

    /// An empty store and its journal.
    pub fn new() -> (JournaledStore, Journal) {
        // Restoring nothing cannot fail.
        Self::restore(None, &[]).unwrap_or_else(|_| unreachable!("an empty journal restores"))
    }

    fn memory(&self) -> Result<MutexGuard<'_, MemoryAccountStore>, CoreError> {
        lock(&self.memory)
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, CoreError> {
    m.lock()
        .map_err(|_| CoreError::Storage("the store was poisoned by a panic".into()))
}

impl AccountStore for JournaledStore {
    fn message(&self, id: &str) -> Result<Option<MessageRecord>, CoreError> {
        self.memory()?.message(id)
    }

    fn expired_messages(&self, now: u64) -> Result<Vec<String>, CoreError> {
        self.memory()?.expired_messages(now)
    }

    fn search(&self, query: &crate::search::Query) -> Result<Vec<MessageRecord>, CoreError> {
        self.memory()?.search(query)
    }

    fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.memory()?.setting(key)
    }

    fn mls_entries(&self) -> Result<(HashMap<Vec<u8>, Vec<u8>>, HashSet<Vec<u8>>), CoreError> {
        self.memory()?.mls_entries()
    }

    fn apply(&mut self, batch: Batch, durability: Durability) -> Result<(), CoreError> {
        let entry = postcard::to_allocvec(&batch)
            .map_err(|e| CoreError::Storage(format!("journal entry: {e}")))?;
        // A batch that erases text (a deletion, a timer) makes the next flush a snapshot: the
        // host then deletes the earlier entries, which still hold that text.
        let erasing = batch
            .iter()
            .any(|op| matches!(op, Op::Erase(_)) || matches!(op, Op::Revise(m) if m.deleted));
        // Queue locked while applying: a snapshot taken meanwhile would not match its number.
        let mut queue = lock(&self.queue)?;
        if erasing {
            queue.since_snapshot = SNAPSHOT_EVERY;
        }
        self.memory()?.apply(batch, durability)?;
        let n = queue.next;
        queue.next += 1;
        queue.pending.push((n, entry));
        Ok(())
    }

    fn conversations(&self) -> Result<Vec<ConversationRecord>, CoreError> {
        self.memory()?.conversations()
    }

    fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, CoreError> {
        self.memory()?.conversation(id)
    }

    fn dm_with(&self, peer: &str) -> Result<Option<ConversationRecord>, CoreError> {
        self.memory()?.dm_with(peer)
    }

    fn messages(&self, conversation: &str) -> Result<Vec<MessageRecord>, CoreError> {
        self.memory()?.messages(conversation)
    }

    fn has_message(&self, id: &str) -> Result<bool, CoreError> {
        self.memory()?.has_message(id)
    }

    fn has_message_at(&self, conversation: &str, seq: u64) -> Result<bool, CoreError> {
        self.memory()?.has_message_at(conversation, seq)
    }

    fn last_message_from(
        &self,
        conversation: &str,
        device: &str,
    ) -> Result<Option<String>, CoreError> {
        self.memory()?.last_message_from(conversation, device)
    }

    fn unnamed_messages(&self, conversation: &str, device: &str) -> Result<Vec<String>, CoreError> {
        self.memory()?.unnamed_messages(conversation, device)
    }

    fn contact(&self, address: &str) -> Result<Option<ContactRecord>, CoreError> {
        self.memory()?.contact(address)
    }

    fn contacts(&self) -> Result<Vec<ContactRecord>, CoreError> {
        self.memory()?.contacts()
    }

    fn alerts(&self) -> Result<Vec<AlertRecord>, CoreError> {
        self.memory()?.alerts()
    }

    fn messages_matching(&self, prefix: &str) -> Result<Vec<MessageRecord>, CoreError> {
        self.memory()?.messages_matching(prefix)
    }

    fn unshown_messages(&self) -> Result<Vec<MessageRecord>, CoreError> {
        self.memory()?.unshown_messages()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (Journal, JournaledStore) {
        let (store, journal) = JournaledStore::new();
        (journal, store)
    }

    crate::account_store_conformance!(fresh);

    /// Everything the host was handed, as it would have written it: entries by number, and
    /// the latest snapshot replacing those it covers.
    #[derive(Default)]
    struct Disk {
        entries: std::collections::BTreeMap<u64, Vec<u8>>,
        snapshot: Option<(u64, Vec<u8>)>,
    }

    impl Disk {
        fn write(&mut self, flush: Flush) {
            for (n, e) in flush.entries {
                self.entries.insert(n, e);
            }
            if let Some((covered, bytes)) = flush.snapshot {
                self.entries.retain(|n, _| *n > covered);
                self.snapshot = Some((covered, bytes));
            }
        }

        fn restore(&self) -> (JournaledStore, Journal) {
            let entries: Vec<_> = self.entries.iter().map(|(n, e)| (*n, e.clone())).collect();
            JournaledStore::restore(
                self.snapshot.as_ref().map(|(n, b)| (*n, b.as_slice())),
                &entries,
            )
            .expect("restores")
        }
    }

    fn message(i: usize) -> MessageRecord {
        MessageRecord {
            id: format!("m{i:04}"),
            conversation: "c".into(),
            sender: "a@b.c".into(),
            sender_device: "d".into(),
            text: format!("text {i}"),
            sent_at: i as u64,
            server_time: i as u64,
            seq: i as u64,
            ..MessageRecord::default()
        }
    }

    #[test]
    fn a_restart_sees_exactly_what_was_written() {
        let (mut store, journal) = JournaledStore::new();
        let mut disk = Disk::default();
        // Enough entries for snapshots to be taken along the way.
        for i in 0..(SNAPSHOT_EVERY * 2 + 10) {
            store
                .apply(
                    vec![
                        Op::Message(message(i)),
                        Op::Setting("cursor".into(), (i as u64).to_be_bytes().to_vec()),
                    ],
                    Durability::Relaxed,
                )
                .expect("apply");
            if i % 7 == 0 {
                disk.write(journal.take().expect("take").expect("something pending"));
            }
        }
        disk.write(journal.take().expect("take").expect("the rest"));
        assert!(journal.take().expect("take").is_none(), "all handed out");
        assert!(disk.snapshot.is_some(), "a snapshot was taken");
        assert!(
            disk.entries.len() < SNAPSHOT_EVERY,
            "covered entries were dropped"
        );

        let (mut again, journal) = disk.restore();
        assert_eq!(
            again.messages("c").expect("messages"),
            store.messages("c").expect("messages")
        );
        assert_eq!(
            again.setting("cursor").expect("cursor"),
            store.setting("cursor").expect("cursor")
        );
        // The restored store goes on numbering after what it replayed.
        again
            .apply(vec![Op::Message(message(9999))], Durability::Durable)
            .expect("apply");
        disk.write(journal.take().expect("take").expect("pending"));
        let (third, _) = disk.restore();
        assert!(third.has_message("m9999").expect("has"));
        assert_eq!(
            third.messages("c").expect("messages").len(),
            2 * SNAPSHOT_EVERY + 11
        );
    }

    /// A deletion's flush carries a snapshot, so the host drops the entries that still hold
    /// the deleted text: nothing written keeps it.
    #[test]
    fn a_deleted_text_leaves_the_written_journal_at_the_next_flush() {
        let (mut store, journal) = JournaledStore::new();
        let mut disk = Disk::default();
        let mut secret = message(1);
        secret.text = "launch code 0000".into();
        store
            .apply(vec![Op::Message(secret.clone())], Durability::Durable)
            .expect("apply");
        disk.write(journal.take().expect("take").expect("pending"));
        let holds = |disk: &Disk| {
            let needle = b"launch code";
            disk.entries
                .values()
                .chain(disk.snapshot.iter().map(|(_, b)| b))
                .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        };
        assert!(holds(&disk), "written, as any message is");
        store
            .apply(
                vec![Op::Revise(crate::account::deleted_record(secret))],
                Durability::Durable,
            )
            .expect("apply");
        disk.write(journal.take().expect("take").expect("pending"));
        assert!(!holds(&disk), "the deletion's flush replaced every trace");
        let (again, _) = disk.restore();
        let kept = again
            .message("m0001")
            .expect("read")
            .expect("a trace stays");
        assert!(kept.deleted && kept.text.is_empty());
    }

    #[test]
    fn what_was_not_written_is_not_there_and_a_failed_write_is_retried() {
        let (mut store, journal) = JournaledStore::new();
        let mut disk = Disk::default();
        store
            .apply(vec![Op::Message(message(1))], Durability::Durable)
            .expect("apply");
        let lost = journal.take().expect("take").expect("pending");
        store
            .apply(vec![Op::Message(message(2))], Durability::Durable)
            .expect("apply");
        // The write of entry 1 failed: it goes back, before entry 2.
        journal.put_back(lost).expect("put back");
        assert_eq!(journal.pending().expect("pending"), 2);
        let flush = journal.take().expect("take").expect("pending");
        assert_eq!(
            flush.entries.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [1, 2]
        );
        disk.write(flush);
        store
            .apply(vec![Op::Message(message(3))], Durability::Durable)
            .expect("apply");
        // The page closed before entry 3 was written: a restart has 1 and 2, not 3.
        let (again, _) = disk.restore();
        assert!(again.has_message("m0002").expect("has"));
        assert!(!again.has_message("m0003").expect("has"));
    }

    #[test]
    fn a_gap_in_the_journal_is_refused_not_papered_over() {
        let (mut store, journal) = JournaledStore::new();
        for i in 0..3 {
            store
                .apply(vec![Op::Message(message(i))], Durability::Durable)
                .expect("apply");
        }
        let mut entries = journal.take().expect("take").expect("pending").entries;
        entries.remove(1);
        let refused = JournaledStore::restore(None, &entries).err();
        assert!(
            matches!(&refused, Some(CoreError::Storage(m)) if m.contains("misses entry 2")),
            "{refused:?}"
        );
    }
}
