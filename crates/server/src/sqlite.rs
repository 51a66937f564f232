//! The embedded SQLite [`Store`]: one writer thread that commits queued writes in batches (one
//! fsync per batch, so an acknowledged write survives a power cut without costing one fsync per
//! request), and a small pool of reader connections. WAL mode, `synchronous=FULL`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use async_trait::async_trait;
use missive_proto::api::{Event, EventKind};
use missive_proto::B64;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::oneshot;

use crate::store::*;

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE invites (
    code_hash BLOB PRIMARY KEY,
    address TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE TABLE users (
    address TEXT PRIMARY KEY,
    identity_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    address TEXT NOT NULL REFERENCES users(address),
    certificate BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    cursor INTEGER NOT NULL DEFAULT 0,
    revoked_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX devices_by_address ON devices(address);
CREATE TABLE key_packages (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    hash_ref BLOB NOT NULL UNIQUE,
    data BLOB NOT NULL
);
CREATE INDEX key_packages_by_device ON key_packages(device_id, id);
CREATE TABLE last_resort_key_packages (
    device_id TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
-- The per-message row of a group stays small: accepting a message reads and updates it, and
-- must not touch the group's public state, which grows with its size.
CREATE TABLE groups (
    group_id BLOB PRIMARY KEY,
    epoch INTEGER NOT NULL,
    next_seq INTEGER NOT NULL
);
-- Changed by commits only.
CREATE TABLE group_states (
    group_id BLOB PRIMARY KEY REFERENCES groups(group_id),
    state BLOB NOT NULL,
    group_info BLOB NOT NULL
);
-- A device's membership of a group over a range of the event log: it receives the group's
-- events with from_event < id <= to_event (to_event NULL while it is still a member).
CREATE TABLE group_devices (
    group_id BLOB NOT NULL,
    device_id TEXT NOT NULL,
    from_event INTEGER NOT NULL,
    to_event INTEGER,
    PRIMARY KEY (group_id, device_id, from_event)
);
CREATE INDEX group_devices_by_device ON group_devices(device_id);
-- Large payloads shared by several events (a Welcome, once for all the devices it adds).
CREATE TABLE payloads (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
-- The event log. Group events (target NULL) are stored once and read by every member
-- (fan-out on read); Welcomes are addressed to one device and point to a shared payload.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    sender TEXT NOT NULL,
    target TEXT,
    payload BLOB NOT NULL,
    payload_id INTEGER REFERENCES payloads(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX events_by_group ON events(group_id, id) WHERE target IS NULL;
CREATE INDEX events_by_target ON events(target, id) WHERE target IS NOT NULL;
"#,
    r#"
-- Encrypted files: the bytes live in the blob store, this is who may read and write them.
CREATE TABLE blobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    device TEXT NOT NULL,
    group_id BLOB NOT NULL,
    size INTEGER NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
CREATE INDEX blobs_by_owner ON blobs(owner);
CREATE INDEX blobs_by_group ON blobs(group_id);
"#,
    r#"
ALTER TABLE users ADD COLUMN device_list BLOB;
ALTER TABLE users ADD COLUMN device_list_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN listed INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
CREATE TABLE kt_log (
    idx INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    version INTEGER NOT NULL,
    leaf BLOB NOT NULL
);
CREATE INDEX kt_log_by_list ON kt_log(address, version);
"#,
    r#"
CREATE TABLE recoveries (
    address TEXT PRIMARY KEY,
    auth_hash BLOB NOT NULL,
    backup BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE recovery_history (
    address TEXT NOT NULL,
    idx INTEGER NOT NULL,
    segment BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (address, idx)
);
"#,
    // A blob kept only as long as its message: seconds after completion.
    "ALTER TABLE blobs ADD COLUMN ttl INTEGER;",
];

const KIND_COMMIT: i64 = 0;
const KIND_MESSAGE: i64 = 1;
const KIND_WELCOME: i64 = 2;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        backend(e)
    }
}

/// State of the writer thread that jobs may use.
#[derive(Default)]
pub struct WriterCtx {
    /// What the current batch publishes once committed.
    outbox: Vec<Published>,
    /// Current member devices per group, as of the writer's own (possibly uncommitted) writes.
    members: HashMap<Vec<u8>, Arc<Vec<String>>>,
}

impl WriterCtx {
    /// Current member devices of a group, from the cache or the database.
    fn members(
        &mut self,
        tx: &Connection,
        group_id: &[u8],
    ) -> Result<Arc<Vec<String>>, StoreError> {
        if let Some(m) = self.members.get(group_id) {
            return Ok(m.clone());
        }
        let mut stmt = tx.prepare_cached(
            "SELECT device_id FROM group_devices WHERE group_id = ?1 AND to_event IS NULL",
        )?;
        let devices = stmt
            .query_map([group_id], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        let devices = Arc::new(devices);
        self.members.insert(group_id.to_vec(), devices.clone());
        Ok(devices)
    }
}

trait Job: Send {
    fn run(&mut self, tx: &Transaction<'_>, ctx: &mut WriterCtx);
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

struct FnJob<F, R> {
    f: Option<F>,
    out: Option<Result<R, StoreError>>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> Job for FnJob<F, R>
where
    F: FnOnce(&Transaction<'_>, &mut WriterCtx) -> Result<R, StoreError> + Send,
    R: Send,
{
    fn run(&mut self, tx: &Transaction<'_>, ctx: &mut WriterCtx) {
        let Some(f) = self.f.take() else { return };
        // Each job runs in its own savepoint so that one refused write does not undo the
        // others of its batch.
        let published = ctx.outbox.len();
        let sql = |tx: &Transaction<'_>, sql: &str| {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
        };
        let result = sql(tx, "SAVEPOINT job")
            .map_err(StoreError::from)
            .and_then(|()| f(tx, ctx));
        let undone = if result.is_err() {
            ctx.outbox.truncate(published);
            sql(tx, "ROLLBACK TO job").and_then(|()| sql(tx, "RELEASE job"))
        } else {
            sql(tx, "RELEASE job")
        };
        self.out = Some(match undone {
            Ok(()) => result,
            Err(e) => Err(backend(e)),
        });
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let out = match committed {
            Ok(()) => self
                .out
                .unwrap_or_else(|| Err(backend("write job did not run"))),
            Err(e) => Err(StoreError::Backend(e)),
        };
        // The requester may have gone away; its write is durable all the same.
        let _ = self.reply.send(out);
    }
}

/// The SQLite store.
pub struct SqliteStore {
    writer: mpsc::Sender<Box<dyn Job>>,
    sink: Arc<OnceLock<Arc<dyn EventSink>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: std::path::PathBuf,
    auth: Mutex<AuthCache>,
}

/// Active devices' token hashes, read from the database once each: every request is
/// authenticated, and the database is on this node alone, so a revocation here is the only
/// change to watch.
#[derive(Default)]
struct AuthCache {
    /// Bumped by every revocation: a lookup that read the database before one may not cache
    /// what it read.
    generation: u64,
    devices: HashMap<String, DeviceAuth>,
}

/// Entries kept before the cache starts over (a few hundred bytes each).
const AUTH_CACHE_MAX: usize = 100_000;

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; \
         PRAGMA busy_timeout=5000;",
    )?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open(path)?;
        migrate(&mut conn)?;
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let sink: Arc<OnceLock<Arc<dyn EventSink>>> = Arc::default();
        let writer_sink = sink.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, writer_sink))
            .map_err(backend)?;
        Ok(SqliteStore {
            writer: tx,
            sink,
            readers: Arc::new(Mutex::new(Vec::new())),
            path: path.to_owned(),
            auth: Mutex::default(),
        })
    }

    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.write_publishing(move |tx, _| f(tx)).await
    }

    /// A write that may publish events and use the writer's membership cache.
    async fn write_publishing<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Transaction<'_>, &mut WriterCtx) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = FnJob {
            f: Some(f),
            out: None,
            reply,
        };
        self.writer
            .send(Box::new(job))
            .map_err(|_| backend("writer thread stopped"))?;
        rx.await
            .map_err(|_| backend("writer thread dropped a job"))?
    }

    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().map_err(backend)?.pop();
            let conn = match pooled {
                Some(c) => c,
                None => open(&path)?,
            };
            let out = f(&conn);
            readers.lock().map_err(backend)?.push(conn);
            out
        })
        .await
        .map_err(backend)?
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Box<dyn Job>>,
    sink: Arc<OnceLock<Arc<dyn EventSink>>>,
) {
    let mut ctx = WriterCtx::default();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = (|| -> Result<(), rusqlite::Error> {
            let tx = conn.transaction()?;
            for job in batch.iter_mut() {
                job.run(&tx, &mut ctx);
            }
            tx.commit()
        })()
        .map_err(|e| e.to_string());
        let outbox = std::mem::take(&mut ctx.outbox);
        match &committed {
            Ok(()) => {
                if let Some(sink) = sink.get() {
                    sink.publish(outbox);
                }
            }
            Err(e) => {
                // The cache may hold membership the failed batch never committed.
                ctx.members.clear();
                tracing::error!(error = %e, jobs = batch.len(), "write batch failed");
            }
        }
        for job in batch {
            job.finish(committed.clone());
        }
    }
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let kind = match row.get::<_, i64>(3)? {
        KIND_COMMIT => EventKind::Commit,
        KIND_WELCOME => EventKind::Welcome,
        _ => EventKind::Message,
    };
    Ok(Event {
        id: to_u64(row.get(0)?),
        group_id: B64(row.get(1)?),
        seq: to_u64(row.get(2)?),
        kind,
        sender: row.get(4)?,
        payload: B64(row.get(5)?),
        timestamp: to_u64(row.get(6)?),
    })
}

/// Appends a commit or message of a group to the event log; returns its event id.
fn insert_group_event(
    tx: &Connection,
    group_id: &[u8],
    seq: u64,
    kind: i64,
    sender: &str,
    payload: &[u8],
    now_ms: u64,
) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO events (group_id, seq, kind, sender, payload, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        group_id,
        to_i64(seq),
        kind,
        sender,
        payload,
        to_i64(now_ms)
    ])?;
    Ok(tx.last_insert_rowid())
}

fn group_epoch(tx: &Connection, group_id: &[u8]) -> Result<(u64, u64), StoreError> {
    // Cached: read for every message posted.
    tx.prepare_cached("SELECT epoch, next_seq FROM groups WHERE group_id = ?1")?
        .query_row([group_id], |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?))))
        .optional()?
        .ok_or(StoreError::NoGroup)
}

#[async_trait]
impl Store for SqliteStore {
    fn set_event_sink(&self, sink: Arc<dyn EventSink>) {
        if self.sink.set(sink).is_err() {
            tracing::warn!("event sink already set; keeping the first");
        }
    }

    async fn create_invite(
        &self,
        address: &str,
        code_hash: [u8; 32],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let address = address.to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO invites (code_hash, address, expires_at) VALUES (?1, ?2, ?3)",
                params![code_hash.as_slice(), address, to_i64(expires_at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn register(
        &self,
        user: NewUser,
        invite_hash: Option<[u8; 32]>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            if let Some(hash) = invite_hash {
                let used = tx.execute(
                    "UPDATE invites SET used_at = ?1 WHERE code_hash = ?2 AND address = ?3 \
                     AND used_at IS NULL AND expires_at > ?1",
                    params![to_i64(now), hash.as_slice(), user.address],
                )?;
                if used != 1 {
                    return Err(StoreError::InviteInvalid);
                }
            }
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM users WHERE address = ?1)",
                [&user.address],
                |r| r.get(0),
            )?;
            if exists {
                return Err(StoreError::AddressTaken);
            }
            let device_taken: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM devices WHERE device_id = ?1)",
                [&user.device.device_id],
                |r| r.get(0),
            )?;
            if device_taken {
                return Err(StoreError::DeviceExists);
            }
            tx.execute(
                "INSERT INTO users (address, identity_key, created_at) VALUES (?1, ?2, ?3)",
                params![user.address, user.identity_key, to_i64(now)],
            )?;
            tx.execute(
                "INSERT INTO devices (device_id, address, certificate, token_hash, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    user.device.device_id,
                    user.address,
                    user.device.certificate,
                    user.device.token_hash.as_slice(),
                    to_i64(now)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn add_device(
        &self,
        address: &str,
        device: NewDevice,
        now: u64,
    ) -> Result<(), StoreError> {
        let address = address.to_owned();
        self.write(move |tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM users WHERE address = ?1)",
                [&address],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(StoreError::NoUser);
            }
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO devices (device_id, address, certificate, token_hash, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    device.device_id,
                    address,
                    device.certificate,
                    device.token_hash.as_slice(),
                    to_i64(now)
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::DeviceExists);
            }
            Ok(())
        })
        .await
    }

    async fn revoke_device(
        &self,
        address: &str,
        device_id: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let (address, device_id) = (address.to_owned(), device_id.to_owned());
        let revoked_id = device_id.clone();
        let revoked = self
            .write(move |tx| {
                let revoked = tx.execute(
                    "UPDATE devices SET revoked_at = ?1 WHERE device_id = ?2 AND address = ?3 \
                 AND revoked_at IS NULL",
                    params![to_i64(now), device_id, address],
                )?;
                if revoked == 0 {
                    return Err(StoreError::NoDevice);
                }
                tx.execute(
                    "DELETE FROM key_packages WHERE device_id = ?1",
                    [&device_id],
                )?;
                tx.execute(
                    "DELETE FROM last_resort_key_packages WHERE device_id = ?1",
                    [&device_id],
                )?;
                Ok(())
            })
            .await;
        let mut cache = self.auth.lock().map_err(backend)?;
        cache.generation += 1;
        cache.devices.remove(&revoked_id);
        revoked
    }

    async fn publish_device_list(
        &self,
        address: &str,
        version: u64,
        list: Vec<u8>,
        listed: Vec<String>,
        kt_leaf: Vec<u8>,
    ) -> Result<(), StoreError> {
        let address = address.to_owned();
        self.write(move |tx| {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT device_list_version FROM users WHERE address = ?1",
                    [&address],
                    |r| r.get(0),
                )
                .optional()?;
            match current.map(to_u64) {
                None => Err(StoreError::NoUser),
                Some(current) if current >= version => Err(StoreError::StaleDeviceList(current)),
                Some(_) => {
                    tx.execute(
                        "UPDATE users SET device_list = ?1, device_list_version = ?2 \
                         WHERE address = ?3",
                        params![list, to_i64(version), address],
                    )?;
                    tx.execute(
                        "UPDATE devices SET listed = 0 WHERE address = ?1",
                        [&address],
                    )?;
                    for id in &listed {
                        tx.execute(
                            "UPDATE devices SET listed = 1 WHERE address = ?1 AND device_id = ?2",
                            [&address, id],
                        )?;
                    }
                    tx.execute(
                        "INSERT INTO kt_log (idx, address, version, leaf) VALUES \
                         ((SELECT COALESCE(MAX(idx) + 1, 0) FROM kt_log), ?1, ?2, ?3)",
                        params![address, to_i64(version), kt_leaf],
                    )?;
                    Ok(())
                }
            }
        })
        .await
    }

    async fn kt_entries(&self, from: u64, limit: u32) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT leaf FROM kt_log WHERE idx >= ?1 ORDER BY idx LIMIT ?2")?;
            let rows = stmt
                .query_map(params![to_i64(from), limit], |r| r.get(0))?
                .collect::<Result<Vec<Vec<u8>>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn kt_entries_of(&self, address: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let address = address.to_owned();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT idx, leaf FROM kt_log WHERE address = ?1 ORDER BY idx")?;
            let rows = stmt
                .query_map([address], |r| Ok((to_u64(r.get(0)?), r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn kt_index(&self, address: &str, version: u64) -> Result<Option<u64>, StoreError> {
        let address = address.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT MAX(idx) FROM kt_log WHERE address = ?1 AND version = ?2",
                params![address, to_i64(version)],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten()
            .map(to_u64))
        })
        .await
    }

    async fn put_recovery(
        &self,
        address: &str,
        auth_hash: [u8; 32],
        backup: Vec<u8>,
        now: u64,
    ) -> Result<(), StoreError> {
        let address = address.to_owned();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO recoveries (address, auth_hash, backup, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (address) DO UPDATE SET \
                 auth_hash = excluded.auth_hash, backup = excluded.backup, \
                 updated_at = excluded.updated_at",
                params![address, auth_hash.to_vec(), backup, to_i64(now)],
            )?;
            Ok(())
        })
        .await
    }

    async fn recovery(&self, address: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        let address = address.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT auth_hash, backup FROM recoveries WHERE address = ?1",
                [address],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn add_history_segment(
        &self,
        address: &str,
        segment: Vec<u8>,
        now: u64,
        quota: u64,
    ) -> Result<u64, StoreError> {
        let address = address.to_owned();
        self.write(move |tx| {
            let (used, last): (i64, i64) = tx.query_row(
                "SELECT COALESCE(SUM(length(segment)), 0), COALESCE(MAX(idx), 0) \
                 FROM recovery_history WHERE address = ?1",
                [&address],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if to_u64(used) + segment.len() as u64 > quota {
                return Err(StoreError::QuotaExceeded);
            }
            tx.execute(
                "INSERT INTO recovery_history (address, idx, segment, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![address, last + 1, segment, to_i64(now)],
            )?;
            Ok(to_u64(last + 1))
        })
        .await
    }

    async fn history_segments(
        &self,
        address: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let address = address.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT idx, segment FROM recovery_history WHERE address = ?1 AND idx > ?2 \
                 ORDER BY idx LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![address, to_i64(after), limit], |r| {
                    Ok((to_u64(r.get(0)?), r.get(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn device_auth(&self, device_id: &str) -> Result<Option<DeviceAuth>, StoreError> {
        let generation = {
            let cache = self.auth.lock().map_err(backend)?;
            if let Some(known) = cache.devices.get(device_id) {
                return Ok(Some(known.clone()));
            }
            cache.generation
        };
        let id = device_id.to_owned();
        let found = self
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT address, token_hash FROM devices WHERE device_id = ?1 \
                     AND revoked_at IS NULL",
                    [id],
                    |r| {
                        Ok(DeviceAuth {
                            address: r.get(0)?,
                            token_hash: hash_array(r.get(1)?),
                        })
                    },
                )
                .optional()?)
            })
            .await?;
        if let Some(auth) = &found {
            let mut cache = self.auth.lock().map_err(backend)?;
            if cache.generation == generation {
                if cache.devices.len() >= AUTH_CACHE_MAX {
                    cache.devices.clear();
                }
                cache.devices.insert(device_id.to_owned(), auth.clone());
            }
        }
        Ok(found)
    }

    async fn device_certificate(&self, device_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let device_id = device_id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT certificate FROM devices WHERE device_id = ?1 AND revoked_at IS NULL",
                [device_id],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn user(&self, address: &str) -> Result<Option<UserRecord>, StoreError> {
        let address = address.to_owned();
        self.read(move |c| {
            let Some((identity_key, device_list)) = c
                .query_row(
                    "SELECT identity_key, device_list FROM users WHERE address = ?1",
                    [&address],
                    |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?)),
                )
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT device_id, certificate FROM devices WHERE address = ?1 \
                 AND revoked_at IS NULL ORDER BY created_at, device_id",
            )?;
            let devices = stmt
                .query_map([&address], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(UserRecord {
                address,
                identity_key,
                devices,
                device_list,
            }))
        })
        .await
    }

    async fn add_key_packages(
        &self,
        device_id: &str,
        packages: Vec<(Vec<u8>, Vec<u8>)>,
        last_resort: Option<Vec<u8>>,
    ) -> Result<(u32, bool), StoreError> {
        let device_id = device_id.to_owned();
        self.write(move |tx| {
            for (hash_ref, data) in packages {
                // A package uploaded twice is stored once.
                tx.execute(
                    "INSERT OR IGNORE INTO key_packages (device_id, hash_ref, data) \
                     VALUES (?1, ?2, ?3)",
                    params![device_id, hash_ref, data],
                )?;
            }
            if let Some(data) = last_resort {
                tx.execute(
                    "INSERT OR REPLACE INTO last_resort_key_packages (device_id, data) \
                     VALUES (?1, ?2)",
                    params![device_id, data],
                )?;
            }
            count_key_packages(tx, &device_id)
        })
        .await
    }

    async fn key_package_count(&self, device_id: &str) -> Result<(u32, bool), StoreError> {
        let device_id = device_id.to_owned();
        self.read(move |c| count_key_packages(c, &device_id)).await
    }

    async fn claim_key_packages(
        &self,
        address: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let address = address.to_owned();
        self.write(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT device_id FROM devices WHERE address = ?1 AND revoked_at IS NULL \
                 AND listed = 1 ORDER BY created_at, device_id",
            )?;
            let devices = stmt
                .query_map([&address], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            if devices.is_empty() {
                return Err(StoreError::NoUser);
            }
            let mut out = Vec::with_capacity(devices.len());
            for device in devices {
                let one_time = tx
                    .query_row(
                        "DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages \
                         WHERE device_id = ?1 ORDER BY id LIMIT 1) RETURNING data",
                        [&device],
                        |r| r.get::<_, Vec<u8>>(0),
                    )
                    .optional()?;
                let data = match one_time {
                    Some(d) => d,
                    None => tx
                        .query_row(
                            "SELECT data FROM last_resort_key_packages WHERE device_id = ?1",
                            [&device],
                            |r| r.get(0),
                        )
                        .optional()?
                        .ok_or(StoreError::NoKeyPackage)?,
                };
                out.push((device, data));
            }
            Ok(out)
        })
        .await
    }

    async fn create_group(&self, group: NewGroup) -> Result<(), StoreError> {
        self.write_publishing(move |tx, ctx| {
            ctx.members.remove(&group.group_id);
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM groups WHERE group_id = ?1)",
                [&group.group_id],
                |r| r.get(0),
            )?;
            if exists {
                return Err(StoreError::GroupExists);
            }
            tx.execute(
                "INSERT INTO groups (group_id, epoch, next_seq) VALUES (?1, ?2, 1)",
                params![group.group_id, to_i64(group.epoch)],
            )?;
            tx.execute(
                "INSERT INTO group_states (group_id, state, group_info) VALUES (?1, ?2, ?3)",
                params![group.group_id, group.state, group.group_info],
            )?;
            let last_event: i64 =
                tx.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
            for device in &group.members {
                tx.execute(
                    "INSERT INTO group_devices (group_id, device_id, from_event) \
                     VALUES (?1, ?2, ?3)",
                    params![group.group_id, device, last_event],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn group(&self, group_id: &[u8]) -> Result<Option<GroupRecord>, StoreError> {
        let group_id = group_id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT g.epoch, s.state FROM groups g JOIN group_states s \
                 ON s.group_id = g.group_id WHERE g.group_id = ?1",
                [group_id],
                |r| {
                    Ok(GroupRecord {
                        epoch: to_u64(r.get(0)?),
                        state: r.get(1)?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn group_info(&self, group_id: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let group_id = group_id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT g.epoch, s.group_info FROM groups g JOIN group_states s \
                 ON s.group_id = g.group_id WHERE g.group_id = ?1",
                [group_id],
                |r| Ok((to_u64(r.get(0)?), r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    async fn group_members(&self, group_id: &[u8]) -> Result<Vec<String>, StoreError> {
        let group_id = group_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT device_id FROM group_devices WHERE group_id = ?1 AND to_event IS NULL",
            )?;
            let rows = stmt
                .query_map([group_id], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn commit(&self, commit: CommitWrite) -> Result<Accepted, StoreError> {
        self.write_publishing(move |tx, ctx| {
            ctx.members.remove(&commit.group_id);
            let (epoch, seq) = group_epoch(tx, &commit.group_id)?;
            if epoch != commit.expected_epoch {
                return Err(StoreError::StaleEpoch(epoch));
            }
            let event_id = insert_group_event(
                tx,
                &commit.group_id,
                seq,
                KIND_COMMIT,
                &commit.sender,
                &commit.commit,
                commit.now_ms,
            )?;
            for device in &commit.removed {
                tx.execute(
                    "UPDATE group_devices SET to_event = ?1 WHERE group_id = ?2 \
                     AND device_id = ?3 AND to_event IS NULL",
                    params![event_id, commit.group_id, device],
                )?;
            }
            if let Some(device) = &commit.joined {
                tx.execute(
                    "INSERT INTO group_devices (group_id, device_id, from_event) \
                     VALUES (?1, ?2, ?3)",
                    params![commit.group_id, device, event_id],
                )?;
            }
            if let Some((welcome, devices)) = &commit.welcome {
                tx.execute("INSERT INTO payloads (data) VALUES (?1)", [welcome])?;
                let payload_id = tx.last_insert_rowid();
                for device in devices {
                    tx.execute(
                        "INSERT INTO group_devices (group_id, device_id, from_event) \
                         VALUES (?1, ?2, ?3)",
                        params![commit.group_id, device, event_id],
                    )?;
                    tx.prepare_cached(
                        "INSERT INTO events (group_id, seq, kind, sender, target, payload, \
                         payload_id, created_at) VALUES (?1, 0, ?2, ?3, ?4, x'', ?5, ?6)",
                    )?
                    .execute(params![
                        commit.group_id,
                        KIND_WELCOME,
                        commit.sender,
                        device,
                        payload_id,
                        to_i64(commit.now_ms)
                    ])?;
                }
            }
            tx.execute(
                "UPDATE groups SET epoch = ?1, next_seq = ?2 WHERE group_id = ?3",
                params![to_i64(commit.new_epoch), to_i64(seq + 1), commit.group_id],
            )?;
            tx.execute(
                "UPDATE group_states SET state = ?1, group_info = ?2 WHERE group_id = ?3",
                params![commit.state, commit.group_info, commit.group_id],
            )?;
            let mut recipients = ctx.members(tx, &commit.group_id)?.as_ref().clone();
            recipients.extend(commit.removed.iter().cloned());
            ctx.outbox.push(Published::group_event(
                to_u64(event_id),
                &commit.group_id,
                seq,
                EventKind::Commit,
                &commit.sender,
                &commit.commit,
                commit.now_ms,
                Arc::new(recipients),
            ));
            if let Some((_, devices)) = commit.welcome {
                let last: i64 = tx.query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))?;
                ctx.outbox.push(Published::Wake {
                    devices,
                    event_id: to_u64(last),
                });
            }
            Ok(Accepted {
                seq,
                event_id: to_u64(event_id),
            })
        })
        .await
    }

    async fn post_message(&self, message: MessageWrite) -> Result<Accepted, StoreError> {
        self.write_publishing(move |tx, ctx| {
            let (epoch, seq) = group_epoch(tx, &message.group_id)?;
            if !ctx
                .members(tx, &message.group_id)?
                .contains(&message.sender)
            {
                return Err(StoreError::NotMember);
            }
            if epoch != message.epoch {
                return Err(StoreError::StaleEpoch(epoch));
            }
            let event_id = insert_group_event(
                tx,
                &message.group_id,
                seq,
                KIND_MESSAGE,
                &message.sender,
                &message.payload,
                message.now_ms,
            )?;
            tx.prepare_cached("UPDATE groups SET next_seq = ?1 WHERE group_id = ?2")?
                .execute(params![to_i64(seq + 1), message.group_id])?;
            let recipients = ctx.members(tx, &message.group_id)?;
            ctx.outbox.push(Published::group_event(
                to_u64(event_id),
                &message.group_id,
                seq,
                EventKind::Message,
                &message.sender,
                &message.payload,
                message.now_ms,
                recipients,
            ));
            Ok(Accepted {
                seq,
                event_id: to_u64(event_id),
            })
        })
        .await
    }

    async fn events(
        &self,
        device_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let device_id = device_id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT e.id, e.group_id, e.seq, e.kind, e.sender, e.payload, e.created_at \
                 FROM group_devices m JOIN events e ON e.group_id = m.group_id \
                 AND e.target IS NULL AND e.id > m.from_event \
                 AND (m.to_event IS NULL OR e.id <= m.to_event) \
                 WHERE m.device_id = ?1 AND e.id > ?2 \
                 UNION ALL \
                 SELECT e.id, e.group_id, e.seq, e.kind, e.sender, \
                 COALESCE(p.data, e.payload), e.created_at \
                 FROM events e LEFT JOIN payloads p ON p.id = e.payload_id \
                 WHERE e.target = ?1 AND e.id > ?2 \
                 ORDER BY 1 LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![device_id, to_i64(after), limit], row_to_event)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn ack(&self, device_id: &str, cursor: u64) -> Result<(), StoreError> {
        let device_id = device_id.to_owned();
        self.write(move |tx| {
            tx.prepare_cached("UPDATE devices SET cursor = MAX(cursor, ?1) WHERE device_id = ?2")?
                .execute(params![to_i64(cursor), device_id])?;
            Ok(())
        })
        .await
    }
    async fn create_blob(&self, blob: NewBlob, quota: u64) -> Result<(), StoreError> {
        self.write(move |tx| {
            let used: i64 = tx.query_row(
                "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE owner = ?1",
                [&blob.owner],
                |r| r.get(0),
            )?;
            if to_u64(used).saturating_add(blob.size) > quota {
                return Err(StoreError::QuotaExceeded);
            }
            tx.execute(
                "INSERT INTO blobs (id, owner, device, group_id, size, updated_at, ttl) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    blob.id,
                    blob.owner,
                    blob.device,
                    blob.group_id,
                    to_i64(blob.size),
                    to_i64(blob.now),
                    blob.ttl.map(to_i64)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn blob(&self, id: &str) -> Result<Option<BlobRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, owner, device, group_id, size, received, complete, updated_at \
                 FROM blobs WHERE id = ?1",
                [id],
                |r| {
                    Ok(BlobRecord {
                        id: r.get(0)?,
                        owner: r.get(1)?,
                        device: r.get(2)?,
                        group_id: r.get(3)?,
                        size: to_u64(r.get(4)?),
                        received: to_u64(r.get(5)?),
                        complete: r.get(6)?,
                        updated_at: to_u64(r.get(7)?),
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn blob_progress(
        &self,
        id: &str,
        received: u64,
        complete: bool,
        now: u64,
    ) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE blobs SET received = ?2, complete = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, to_i64(received), complete, to_i64(now)],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_blob(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM blobs WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn expired_blobs(
        &self,
        idle_before: u64,
        complete_before: u64,
        now: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id FROM blobs b WHERE (complete = 0 AND updated_at < ?1) \
                 OR (complete = 1 AND updated_at < ?2) \
                 OR (complete = 1 AND ttl IS NOT NULL AND updated_at + ttl <= ?3) \
                 OR NOT EXISTS (SELECT 1 FROM group_devices g \
                                WHERE g.group_id = b.group_id AND g.to_event IS NULL)",
            )?;
            let rows = stmt
                .query_map(
                    params![to_i64(idle_before), to_i64(complete_before), to_i64(now)],
                    |r| r.get(0),
                )?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(rows)
        })
        .await
    }
}

fn count_key_packages(c: &Connection, device_id: &str) -> Result<(u32, bool), StoreError> {
    let count: u32 = c.query_row(
        "SELECT COUNT(*) FROM key_packages WHERE device_id = ?1",
        [device_id],
        |r| r.get(0),
    )?;
    let last_resort: bool = c.query_row(
        "SELECT EXISTS(SELECT 1 FROM last_resort_key_packages WHERE device_id = ?1)",
        [device_id],
        |r| r.get(0),
    )?;
    Ok((count, last_resort))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("test.db")).expect("open");
        (dir, Arc::new(store))
    }

    crate::store_conformance!(fresh);
}
