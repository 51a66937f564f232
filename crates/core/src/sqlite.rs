//! The SQLite [`AccountStore`]: one file per account home, readable by its owner only.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::CoreError;
use crate::store::*;

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS mls (key BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (
    address TEXT PRIMARY KEY,
    identity_key BLOB NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    name TEXT,
    dm_peer TEXT,
    created_at INTEGER NOT NULL,
    left_group INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_by_peer ON conversations(dm_peer);
CREATE TABLE IF NOT EXISTS messages (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    conversation TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    server_time INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    shown INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_unshown ON messages(n) WHERE shown = 0;
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation, n);
CREATE TABLE IF NOT EXISTS alerts (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#,
    // An identity key the server now announces for a contact, not yet accepted by the user.
    "ALTER TABLE contacts ADD COLUMN pending_key BLOB;",
    // MLS entries that are content-addressed (key packages): never rewritten, only deleted.
    "ALTER TABLE mls ADD COLUMN frozen INTEGER NOT NULL DEFAULT 0;",
    // A file message's reference (JSON, with its key), findable by blob id.
    "ALTER TABLE messages ADD COLUMN file TEXT; ALTER TABLE messages ADD COLUMN file_id TEXT; \
     CREATE INDEX messages_by_file ON messages(file_id) WHERE file_id IS NOT NULL;",
    // `unnamed`: our accepted messages that no later accepted message names yet (threat 9's
    // chain). And the table without AUTOINCREMENT (messages are never deleted, so row numbers
    // keep growing all the same): that spared a write to `sqlite_sequence` on every insert.
    r#"
CREATE TABLE messages_v5 (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    conversation TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    server_time INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    shown INTEGER NOT NULL DEFAULT 0,
    file TEXT,
    file_id TEXT,
    unnamed INTEGER NOT NULL DEFAULT 0
);
INSERT INTO messages_v5 (n, id, conversation, sender, sender_device, text, sent_at,
    server_time, seq, shown, file, file_id)
    SELECT n, id, conversation, sender, sender_device, text, sent_at, server_time, seq, shown,
    file, file_id FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v5 RENAME TO messages;
CREATE INDEX messages_unshown ON messages(n) WHERE shown = 0;
CREATE INDEX messages_by_conversation ON messages(conversation, n);
CREATE INDEX messages_by_file ON messages(file_id) WHERE file_id IS NOT NULL;
CREATE INDEX messages_unnamed ON messages(conversation, sender_device) WHERE unnamed = 1;
"#,
    // A message of a kind this version cannot display: its body as received (JSON), kept so
    // that a later version can show it.
    "ALTER TABLE messages ADD COLUMN unsupported TEXT;",
    // For a reply: the id of the message it answers.
    "ALTER TABLE messages ADD COLUMN reply_to TEXT;",
    // The highest signed device list seen for a contact.
    "ALTER TABLE contacts ADD COLUMN device_list BLOB;",
    // Edits (earlier texts, JSON), deletion, reactions (JSON), the timer's deadline, settings
    // notices (JSON); a conversation's timer and its members' receipts (JSON).
    r#"
ALTER TABLE messages ADD COLUMN edits TEXT;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN reactions TEXT;
ALTER TABLE messages ADD COLUMN expires_at INTEGER;
ALTER TABLE messages ADD COLUMN notice TEXT;
CREATE INDEX messages_expiring ON messages(expires_at) WHERE expires_at IS NOT NULL;
ALTER TABLE conversations ADD COLUMN disappear INTEGER;
ALTER TABLE conversations ADD COLUMN receipts TEXT;
CREATE TABLE applied (id TEXT PRIMARY KEY, conversation TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX applied_at ON applied(conversation, seq);
"#,
    // Search: an FTS5 index of each message's text and file name, under its row number. It
    // keeps no copy of the text (contentless) and, with `secure-delete`, nothing of a deleted
    // entry. Messages are indexed by the next search, not as they arrive (a batch at a time
    // costs a fraction of a row at a time): rows numbered up to `indexed_up_to` are in the
    // index, and triggers keep those in step when they change or go.
    r#"
CREATE VIRTUAL TABLE messages_fts USING fts5(body, content='', contentless_delete=1,
    tokenize='unicode61 remove_diacritics 2');
INSERT INTO messages_fts(messages_fts, rank) VALUES ('secure-delete', 1);
CREATE TABLE search_state (id INTEGER PRIMARY KEY CHECK (id = 0), indexed_up_to INTEGER NOT NULL);
INSERT INTO search_state (id, indexed_up_to) VALUES (0, 0);
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.n <= (SELECT indexed_up_to FROM search_state)
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.n;
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, file, deleted ON messages
    WHEN (old.text IS NOT new.text OR old.file IS NOT new.file OR old.deleted IS NOT new.deleted)
        AND old.n <= (SELECT indexed_up_to FROM search_state)
BEGIN
    DELETE FROM messages_fts WHERE rowid = old.n;
    INSERT INTO messages_fts(rowid, body)
        SELECT new.n, new.text || ' ' || coalesce(json_extract(new.file, '$.name'), '')
        WHERE new.deleted = 0 AND (new.text != '' OR new.file IS NOT NULL);
END;
"#,
    // A conversation's sensitivity label (JSON, with its rules); forwarded messages.
    "ALTER TABLE conversations ADD COLUMN label TEXT; \
     ALTER TABLE messages ADD COLUMN forwarded INTEGER NOT NULL DEFAULT 0;",
];

/// A message's content columns, in the order of [`write_message`]'s parameters (`?1` to
/// `?18`).
const MESSAGE_COLUMNS: &str = "id, conversation, sender, sender_device, text, sent_at, \
     server_time, seq, file, file_id, unsupported, reply_to, edits, deleted, reactions, \
     expires_at, notice, forwarded";

/// An account's SQLite file.
pub struct SqliteAccountStore {
    conn: Connection,
    durability: Durability,
}

fn db(e: rusqlite::Error) -> CoreError {
    CoreError::storage(e)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Runs `sql` with a message's [`MESSAGE_COLUMNS`] as its parameters `?1` to `?18`.
fn write_message(
    tx: &rusqlite::Transaction<'_>,
    m: &MessageRecord,
    sql: &str,
) -> rusqlite::Result<usize> {
    let file = m.file.as_ref().and_then(|f| serde_json::to_string(f).ok());
    let edits = (!m.edits.is_empty())
        .then(|| serde_json::to_string(&m.edits).ok())
        .flatten();
    let reactions = (!m.reactions.is_empty())
        .then(|| serde_json::to_string(&m.reactions).ok())
        .flatten();
    let notice = m
        .notice
        .as_ref()
        .and_then(|n| serde_json::to_string(n).ok());
    tx.prepare_cached(sql)?.execute(params![
        m.id,
        m.conversation,
        m.sender,
        m.sender_device,
        m.text,
        i(m.sent_at),
        i(m.server_time),
        i(m.seq),
        file,
        m.file.as_ref().map(|f| f.blob.as_str()),
        m.unsupported,
        m.reply_to,
        edits,
        m.deleted as i64,
        reactions,
        m.expires_at.map(i),
        notice,
        m.forwarded as i64,
    ])
}

/// A JSON column's value, or the type's default when NULL (or unreadable).
fn json_or_default<T: serde::de::DeserializeOwned + Default>(
    r: &rusqlite::Row<'_>,
    at: usize,
) -> rusqlite::Result<T> {
    Ok(r.get::<_, Option<String>>(at)?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SqliteAccountStore {
    /// Opens or creates the store at `path`, with permissions 0600.
    pub fn open(path: &Path) -> Result<Self, CoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(CoreError::storage)?;
            restrict(dir, 0o700)?;
        }
        let conn = Connection::open(path).map_err(db)?;
        restrict(path, 0o600)?;
        // One process at a time owns an account: two would each hold MLS state in memory and
        // overwrite each other's ratchets. The exclusive lock, taken here and held until the
        // store is dropped, says so at once; it also spares every statement a file lock and
        // the WAL's shared-memory index (set before WAL mode is entered, so none is made). A
        // second process waits up to five seconds for the first to finish (a quick `send` while
        // another ends) before giving up.
        conn.execute_batch(
            "PRAGMA locking_mode=EXCLUSIVE; PRAGMA busy_timeout=5000; \
             PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        )
        .and_then(|()| conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;"))
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                CoreError::Usage(
                    "another missive process is using this account (waited 5 s for it); try \
                     again when it ends"
                        .into(),
                )
            }
            _ => db(e),
        })?;
        migrate(&conn)?;
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            if p.exists() {
                restrict(&p, 0o600)?;
            }
        }
        Ok(SqliteAccountStore {
            conn,
            durability: Durability::Durable,
        })
    }
}

impl SqliteAccountStore {
    /// Stops indexing messages for search (what is written afterwards is not found): for
    /// measuring what the index costs (`missive-bench --search`), never for an account.
    pub fn drop_search_index(&mut self) -> Result<(), CoreError> {
        self.conn
            .execute_batch(
                "DROP TRIGGER messages_fts_update; DROP TRIGGER messages_fts_delete; \
                 DROP TABLE messages_fts;",
            )
            .map_err(db)
    }

    /// Adds the messages written since the last search to the search index, in one
    /// transaction. Returns how many rows it looked at.
    pub fn index_new_messages(&self) -> Result<usize, CoreError> {
        let tx = self.conn.unchecked_transaction().map_err(db)?;
        let added = tx
            .execute(
                "INSERT INTO messages_fts(rowid, body) \
                 SELECT n, text || ' ' || coalesce(json_extract(file, '$.name'), '') \
                 FROM messages WHERE n > (SELECT indexed_up_to FROM search_state) \
                 AND deleted = 0 AND (text != '' OR file IS NOT NULL)",
                [],
            )
            .map_err(db)?;
        tx.execute(
            "UPDATE search_state SET indexed_up_to = \
             max(indexed_up_to, (SELECT coalesce(max(n), 0) FROM messages))",
            [],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(added)
    }
}

fn migrate(conn: &Connection) -> Result<(), CoreError> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .map_err(db)?;
    }
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> Result<(), CoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(CoreError::storage)
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> Result<(), CoreError> {
    Ok(())
}

impl SqliteAccountStore {
    fn query_messages(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<MessageRecord>, CoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT id, conversation, sender, sender_device, text, sent_at, server_time, seq, \
                 file, unsupported, reply_to, edits, deleted, reactions, expires_at, notice, \
                 forwarded FROM messages {filter} ORDER BY n"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(MessageRecord {
                    id: r.get(0)?,
                    conversation: r.get(1)?,
                    sender: r.get(2)?,
                    sender_device: r.get(3)?,
                    text: r.get(4)?,
                    sent_at: u(r.get(5)?),
                    server_time: u(r.get(6)?),
                    seq: u(r.get(7)?),
                    file: r
                        .get::<_, Option<String>>(8)?
                        .and_then(|json| serde_json::from_str(&json).ok()),
                    unsupported: r.get(9)?,
                    reply_to: r.get(10)?,
                    edits: json_or_default(r, 11)?,
                    deleted: r.get::<_, i64>(12)? != 0,
                    reactions: json_or_default(r, 13)?,
                    expires_at: r.get::<_, Option<i64>>(14)?.map(u),
                    notice: r
                        .get::<_, Option<String>>(15)?
                        .and_then(|json| serde_json::from_str(&json).ok()),
                    forwarded: r.get::<_, i64>(16)? != 0,
                })
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(rows)
    }
}

fn conversation(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRecord> {
    Ok(ConversationRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        dm_peer: r.get(2)?,
        created_at: u(r.get(3)?),
        left: r.get::<_, i64>(4)? != 0,
        disappear: r.get::<_, Option<i64>>(5)?.map(u),
        receipts: json_or_default(r, 6)?,
        label: r
            .get::<_, Option<String>>(7)?
            .and_then(|json| serde_json::from_str(&json).ok()),
    })
}

const CONVERSATION_COLUMNS: &str =
    "id, name, dm_peer, created_at, left_group, disappear, receipts, label";

fn contact_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContactRecord> {
    Ok(ContactRecord {
        address: r.get(0)?,
        identity_key: r.get(1)?,
        verified: r.get::<_, i64>(2)? != 0,
        pending_key: r.get(3)?,
        device_list: r.get(4)?,
    })
}

const PARAMS_18: &str =
    "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18";

impl AccountStore for SqliteAccountStore {
    fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)
    }

    fn mls_entries(&self) -> Result<(HashMap<Vec<u8>, Vec<u8>>, HashSet<Vec<u8>>), CoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value, frozen FROM mls")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)? != 0,
                ))
            })
            .map_err(db)?;
        let mut entries = HashMap::new();
        let mut frozen = HashSet::new();
        for row in rows {
            let (k, v, is_frozen) = row.map_err(db)?;
            if is_frozen {
                frozen.insert(k.clone());
            }
            entries.insert(k, v);
        }
        Ok((entries, frozen))
    }

    fn apply(&mut self, batch: Batch, durability: Durability) -> Result<(), CoreError> {
        if durability != self.durability {
            // In WAL mode a FULL commit also makes every earlier NORMAL commit durable, so the
            // order of batches on disk is always the order they were applied.
            let mode = match durability {
                Durability::Durable => "FULL",
                Durability::Relaxed => "NORMAL",
            };
            self.conn
                .execute_batch(&format!("PRAGMA synchronous = {mode}"))
                .map_err(db)?;
            self.durability = durability;
        }
        // A batch that takes text away (a deletion, a timer) leaves none of it in the file:
        // freed space is overwritten with zeros while it runs.
        let erasing = batch
            .iter()
            .any(|op| matches!(op, Op::Erase(_)) || matches!(op, Op::Revise(m) if m.deleted));
        if erasing {
            self.conn
                .execute_batch("PRAGMA secure_delete = ON;")
                .map_err(db)?;
        }
        let tx = self.conn.transaction().map_err(db)?;
        for op in batch {
            match op {
                // Upserts, not INSERT OR REPLACE: a replace deletes the row and inserts it
                // under a new row id, touching twice the pages (the MLS entries rewritten on
                // every message are several kilobytes).
                Op::Setting(k, v) => tx
                    .prepare_cached(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .and_then(|mut s| s.execute(params![k.as_ref(), v])),
                Op::Mls(k, Some(v)) => tx
                    .prepare_cached(
                        "INSERT INTO mls (key, value) VALUES (?1, ?2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .and_then(|mut s| s.execute(params![k, v])),
                Op::Mls(k, None) => tx
                    .prepare_cached("DELETE FROM mls WHERE key = ?1")
                    .and_then(|mut s| s.execute(params![k])),
                Op::Conversation(c) => tx
                    .prepare_cached(&format!(
                        "INSERT OR REPLACE INTO conversations ({CONVERSATION_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ))
                    .and_then(|mut s| {
                        let receipts = (!c.receipts.is_empty())
                            .then(|| serde_json::to_string(&c.receipts).ok())
                            .flatten();
                        s.execute(params![
                            c.id,
                            c.name,
                            c.dm_peer,
                            i(c.created_at),
                            c.left as i64,
                            c.disappear.map(i),
                            receipts,
                            c.label.as_ref().and_then(|l| serde_json::to_string(l).ok()),
                        ])
                    }),
                Op::Message(m) => write_message(
                    &tx,
                    &m,
                    &format!(
                        "INSERT OR IGNORE INTO messages ({MESSAGE_COLUMNS}) VALUES ({})",
                        PARAMS_18
                    ),
                ),
                // Inserted shown and waiting to be named: one row write, and no entry in the
                // index of unshown messages to add and take out again.
                Op::Sent { record, named } => write_message(
                    &tx,
                    &record,
                    &format!(
                        "INSERT INTO messages ({MESSAGE_COLUMNS}, shown, unnamed) \
                         VALUES ({PARAMS_18}, 1, 1) \
                         ON CONFLICT (id) DO UPDATE SET shown = 1, unnamed = 1"
                    ),
                )
                .and_then(|n| {
                    named.iter().try_fold(n, |n, named| {
                        tx.prepare_cached("UPDATE messages SET unnamed = 0 WHERE id = ?1")
                            .and_then(|mut s| s.execute([named]))
                            .map(|k| n + k)
                    })
                }),
                Op::Contact(c) => tx.execute(
                    "INSERT OR REPLACE INTO contacts \
                     (address, identity_key, verified, pending_key, device_list) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        c.address,
                        c.identity_key,
                        c.verified as i64,
                        c.pending_key,
                        c.device_list
                    ],
                ),
                Op::FreezeMls(keys) => keys.iter().try_fold(0, |n, k| {
                    tx.prepare_cached("UPDATE mls SET frozen = 1 WHERE key = ?1")
                        .and_then(|mut s| s.execute([k]))
                        .map(|k| n + k)
                }),
                Op::MarkShown(ids) => ids.iter().try_fold(0, |n, id| {
                    tx.prepare_cached("UPDATE messages SET shown = 1 WHERE id = ?1")
                        .and_then(|mut s| s.execute([id]))
                        .map(|k| n + k)
                }),
                Op::Alert(a) => tx.execute(
                    "INSERT INTO alerts (at, code, detail) VALUES (?1, ?2, ?3)",
                    params![i(a.at), a.code, a.detail],
                ),
                Op::Revise(m) => write_message(
                    &tx,
                    &m,
                    "UPDATE messages SET conversation = ?2, sender = ?3, sender_device = ?4, \
                     text = ?5, sent_at = ?6, server_time = ?7, seq = ?8, file = ?9, \
                     file_id = ?10, unsupported = ?11, reply_to = ?12, edits = ?13, \
                     deleted = ?14, reactions = ?15, expires_at = ?16, notice = ?17, \
                     forwarded = ?18 WHERE id = ?1",
                ),
                Op::Applied {
                    id,
                    conversation,
                    seq,
                } => tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO applied (id, conversation, seq) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![id, conversation, i(seq)])),
                Op::Erase(ids) => ids
                    .iter()
                    .try_fold(0, |n, id| {
                        tx.prepare_cached("DELETE FROM messages WHERE id = ?1")
                            .and_then(|mut s| s.execute([id]))
                            .map(|k| n + k)
                    })
                    // Row numbers are reused once the highest is gone: the index must not
                    // claim a number the next message will take.
                    .and_then(|n| {
                        tx.execute(
                            "UPDATE search_state SET indexed_up_to = \
                             min(indexed_up_to, (SELECT coalesce(max(n), 0) FROM messages))",
                            [],
                        )
                        .map(|k| n + k)
                    }),
            }
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        if erasing {
            // The search index drops the entries of the rows it lost but keeps their words
            // as terms of its segments until they are merged: merged now, into one. Then what
            // was overwritten or deleted is zeroed in the pages (secure_delete), and the
            // write-ahead log, which still holds the pages as they were, is emptied.
            self.conn
                .execute_batch(
                    "INSERT INTO messages_fts(messages_fts) VALUES ('optimize'); \
                     PRAGMA secure_delete = OFF; PRAGMA wal_checkpoint(TRUNCATE);",
                )
                .map_err(db)?;
        }
        Ok(())
    }

    fn conversations(&self) -> Result<Vec<ConversationRecord>, CoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations ORDER BY created_at, id"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map([], conversation)
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(rows)
    }

    fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, CoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], conversation).optional())
            .map_err(db)
    }

    fn dm_with(&self, peer: &str) -> Result<Option<ConversationRecord>, CoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE dm_peer = ?1 \
                     AND left_group = 0 ORDER BY created_at LIMIT 1"
                ),
                [peer],
                conversation,
            )
            .optional()
            .map_err(db)
    }

    fn messages(&self, conversation: &str) -> Result<Vec<MessageRecord>, CoreError> {
        self.query_messages("WHERE conversation = ?1", [conversation])
    }

    fn messages_matching(&self, prefix: &str) -> Result<Vec<MessageRecord>, CoreError> {
        self.query_messages(
            "WHERE n IN (SELECT n FROM messages WHERE substr(id, 1, length(?1)) = ?1 \
             OR substr(file_id, 1, length(?1)) = ?1 LIMIT 3)",
            [prefix],
        )
    }

    fn unshown_messages(&self) -> Result<Vec<MessageRecord>, CoreError> {
        self.query_messages("WHERE shown = 0", [])
    }

    fn message(&self, id: &str) -> Result<Option<MessageRecord>, CoreError> {
        Ok(self.query_messages("WHERE id = ?1", [id])?.pop())
    }

    fn search(&self, query: &crate::search::Query) -> Result<Vec<MessageRecord>, CoreError> {
        self.index_new_messages()?;
        let mut found = self.query_messages(
            "WHERE n IN (SELECT n FROM messages \
             WHERE n IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1) \
             AND (?2 IS NULL OR conversation = ?2) AND (?3 IS NULL OR sender = ?3) \
             AND (?4 IS NULL OR sent_at >= ?4) AND (?5 IS NULL OR sent_at < ?5) \
             ORDER BY n DESC LIMIT ?6)",
            params![
                query.fts(),
                query.conversation,
                query.sender,
                query.after.map(i),
                query.before.map(i),
                i64::try_from(query.limit).unwrap_or(i64::MAX),
            ],
        )?;
        found.reverse();
        Ok(found)
    }

    fn expired_messages(&self, now: u64) -> Result<Vec<String>, CoreError> {
        self.conn
            .prepare_cached(
                "SELECT id FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?1 \
                 ORDER BY n",
            )
            .and_then(|mut s| {
                s.query_map([i(now)], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            })
            .map_err(db)
    }

    fn last_message_from(
        &self,
        conversation: &str,
        device: &str,
    ) -> Result<Option<String>, CoreError> {
        self.conn
            .prepare_cached(
                "SELECT id FROM messages WHERE conversation = ?1 AND sender_device = ?2 \
                 ORDER BY n DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([conversation, device], |r| r.get(0)).optional())
            .map_err(db)
    }

    fn unnamed_messages(&self, conversation: &str, device: &str) -> Result<Vec<String>, CoreError> {
        self.conn
            .prepare_cached(
                "SELECT id FROM messages WHERE conversation = ?1 AND sender_device = ?2 \
                 AND unnamed = 1 ORDER BY n",
            )
            .and_then(|mut s| {
                s.query_map([conversation, device], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()
            })
            .map_err(db)
    }

    fn has_message(&self, id: &str) -> Result<bool, CoreError> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM messages WHERE id = ?1) \
                 OR EXISTS(SELECT 1 FROM applied WHERE id = ?1)",
            )
            .and_then(|mut s| s.query_row([id], |r| r.get(0)))
            .map_err(db)
    }

    fn has_message_at(&self, conversation: &str, seq: u64) -> Result<bool, CoreError> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM messages WHERE conversation = ?1 AND seq = ?2) \
                 OR EXISTS(SELECT 1 FROM applied WHERE conversation = ?1 AND seq = ?2)",
            )
            .and_then(|mut s| s.query_row(params![conversation, i(seq)], |r| r.get(0)))
            .map_err(db)
    }

    fn contact(&self, address: &str) -> Result<Option<ContactRecord>, CoreError> {
        self.conn
            .query_row(
                "SELECT address, identity_key, verified, pending_key, device_list FROM contacts \
                 WHERE address = ?1",
                [address],
                contact_row,
            )
            .optional()
            .map_err(db)
    }

    fn contacts(&self) -> Result<Vec<ContactRecord>, CoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT address, identity_key, verified, pending_key, device_list FROM contacts \
                 ORDER BY address",
            )
            .map_err(db)?;
        let rows = stmt.query_map([], contact_row).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn alerts(&self) -> Result<Vec<AlertRecord>, CoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, code, detail FROM alerts ORDER BY n")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AlertRecord {
                    at: u(r.get(0)?),
                    code: r.get(1)?,
                    detail: r.get(2)?,
                })
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, SqliteAccountStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteAccountStore::open(&dir.path().join("account.db")).expect("store");
        (dir, store)
    }

    crate::account_store_conformance!(fresh);
}
