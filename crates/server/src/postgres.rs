//! The PostgreSQL [`Store`], for deployments that outgrow one machine's SQLite. It passes the
//! same conformance suite as the SQLite store.
//!
//! Writes go through one writer task and connection, which commits queued writes in batches
//! (a savepoint per write, one transaction per batch) and publishes a batch's events after its
//! commit, so this process publishes in commit order. (Several server processes on one database
//! need cross-node ordering of the event log: see ARCHITECTURE.md.)

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use missive_proto::api::{Event, EventKind};
use missive_proto::B64;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient, NoTls, Row, Transaction};

use crate::store::*;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE invites (
    code_hash BYTEA PRIMARY KEY,
    address TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE TABLE users (
    address TEXT PRIMARY KEY,
    identity_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    address TEXT NOT NULL REFERENCES users(address),
    certificate BYTEA NOT NULL,
    token_hash BYTEA NOT NULL,
    cursor BIGINT NOT NULL DEFAULT 0,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX devices_by_address ON devices(address);
CREATE TABLE key_packages (
    id BIGSERIAL PRIMARY KEY,
    device_id TEXT NOT NULL,
    hash_ref BYTEA NOT NULL UNIQUE,
    data BYTEA NOT NULL
);
CREATE INDEX key_packages_by_device ON key_packages(device_id, id);
CREATE TABLE last_resort_key_packages (
    device_id TEXT PRIMARY KEY,
    data BYTEA NOT NULL
);
CREATE TABLE groups (
    group_id BYTEA PRIMARY KEY,
    epoch BIGINT NOT NULL,
    next_seq BIGINT NOT NULL
);
CREATE TABLE group_states (
    group_id BYTEA PRIMARY KEY REFERENCES groups(group_id),
    state BYTEA NOT NULL,
    group_info BYTEA NOT NULL
);
CREATE TABLE group_devices (
    group_id BYTEA NOT NULL,
    device_id TEXT NOT NULL,
    from_event BIGINT NOT NULL,
    to_event BIGINT,
    PRIMARY KEY (group_id, device_id, from_event)
);
CREATE INDEX group_devices_by_device ON group_devices(device_id);
CREATE TABLE payloads (
    id BIGSERIAL PRIMARY KEY,
    data BYTEA NOT NULL
);
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    group_id BYTEA NOT NULL,
    seq BIGINT NOT NULL,
    kind SMALLINT NOT NULL,
    sender TEXT NOT NULL,
    target TEXT,
    payload BYTEA NOT NULL,
    payload_id BIGINT REFERENCES payloads(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX events_by_group ON events(group_id, id) WHERE target IS NULL;
CREATE INDEX events_by_target ON events(target, id) WHERE target IS NOT NULL;
"#,
    r#"
CREATE TABLE blobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    device TEXT NOT NULL,
    group_id BYTEA NOT NULL,
    size BIGINT NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    complete BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL
);
CREATE INDEX blobs_by_owner ON blobs(owner);
CREATE INDEX blobs_by_group ON blobs(group_id);
"#,
    r#"
ALTER TABLE users ADD COLUMN device_list BYTEA;
ALTER TABLE users ADD COLUMN device_list_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN listed BOOLEAN NOT NULL DEFAULT FALSE;
"#,
    r#"
CREATE TABLE kt_log (
    idx BIGINT PRIMARY KEY,
    address TEXT NOT NULL,
    version BIGINT NOT NULL,
    leaf BYTEA NOT NULL
);
CREATE INDEX kt_log_by_list ON kt_log(address, version);
"#,
    r#"
CREATE TABLE recoveries (
    address TEXT PRIMARY KEY,
    auth_hash BYTEA NOT NULL,
    backup BYTEA NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE recovery_history (
    address TEXT NOT NULL,
    idx BIGINT NOT NULL,
    segment BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (address, idx)
);
"#,
    // A blob kept only as long as its message: seconds after completion.
    "ALTER TABLE blobs ADD COLUMN ttl BIGINT;",
];

const KIND_COMMIT: i16 = 0;
const KIND_MESSAGE: i16 = 1;
const KIND_WELCOME: i16 = 2;

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        backend(e)
    }
}

/// The PostgreSQL store.
pub struct PgStore {
    writer: tokio::sync::mpsc::UnboundedSender<Box<dyn Job>>,
    reader: Client,
    sink: Arc<OnceLock<Arc<dyn EventSink>>>,
}

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 256;

type JobFuture<'a, R> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(R, Vec<Published>), StoreError>> + Send + 'a>,
>;

/// A queued write: run inside the batch's transaction, then told whether the batch committed.
trait Job: Send {
    fn run<'a>(
        &'a mut self,
        tx: &'a Transaction<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
    /// What the job publishes if the batch commits.
    fn take_published(&mut self) -> Vec<Published>;
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

struct FnJob<F, R> {
    f: Option<F>,
    out: Option<Result<R, StoreError>>,
    published: Vec<Published>,
    reply: tokio::sync::oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> Job for FnJob<F, R>
where
    F: for<'a> FnOnce(&'a Transaction<'a>) -> JobFuture<'a, R> + Send,
    R: Send,
{
    fn run<'a>(
        &'a mut self,
        tx: &'a Transaction<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let Some(f) = self.f.take() else { return };
            // A savepoint per job: one refused write does not undo the others of its batch.
            let result = match tx.batch_execute("SAVEPOINT job").await {
                Ok(()) => f(tx).await,
                Err(e) => Err(e.into()),
            };
            let undo = match result {
                Ok(_) => "RELEASE SAVEPOINT job",
                Err(_) => "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job",
            };
            self.out = Some(match (tx.batch_execute(undo).await, result) {
                (Ok(()), Ok((out, published))) => {
                    self.published = published;
                    Ok(out)
                }
                (Ok(()), Err(e)) => Err(e),
                (Err(e), _) => Err(e.into()),
            });
        })
    }

    fn take_published(&mut self) -> Vec<Published> {
        std::mem::take(&mut self.published)
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let out = match committed {
            Ok(()) => self
                .out
                .unwrap_or_else(|| Err(backend("write job did not run"))),
            Err(e) => Err(StoreError::Backend(e)),
        };
        let _ = self.reply.send(out);
    }
}

async fn writer_loop(
    mut client: Client,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Box<dyn Job>>,
    sink: Arc<OnceLock<Arc<dyn EventSink>>>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = async {
            let tx = client.transaction().await?;
            for job in batch.iter_mut() {
                job.run(&tx).await;
            }
            tx.commit().await
        }
        .await
        .map_err(|e| e.to_string());
        match &committed {
            Ok(()) => {
                let published: Vec<Published> =
                    batch.iter_mut().flat_map(|j| j.take_published()).collect();
                if let (Some(sink), false) = (sink.get(), published.is_empty()) {
                    sink.publish(published);
                }
            }
            Err(e) => tracing::error!(error = %e, jobs = batch.len(), "write batch failed"),
        }
        for job in batch {
            job.finish(committed.clone());
        }
    }
}

async fn connect(url: &str, schema: Option<&str>) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "postgres connection ended");
        }
    });
    if let Some(schema) = schema {
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await?;
    }
    Ok(client)
}

impl PgStore {
    /// Connects to `url` and runs pending migrations. `schema`, when given, must exist and is
    /// used instead of the default one (tests use one schema each).
    pub async fn connect(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        if let Some(s) = schema {
            if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(backend("schema names are letters, digits and _"));
            }
        }
        let mut writer = connect(url, schema).await?;
        let reader = connect(url, schema).await?;
        let tx = writer.transaction().await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS missive_schema (version INTEGER NOT NULL); \
             LOCK TABLE missive_schema IN EXCLUSIVE MODE;",
        )
        .await?;
        let applied: i32 = tx
            .query_opt("SELECT version FROM missive_schema", &[])
            .await?
            .map(|r| r.get(0))
            .unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            tx.batch_execute(sql).await?;
            tx.execute("DELETE FROM missive_schema", &[]).await?;
            tx.execute(
                "INSERT INTO missive_schema (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .await?;
        }
        tx.commit().await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let sink: Arc<OnceLock<Arc<dyn EventSink>>> = Arc::default();
        tokio::spawn(writer_loop(writer, rx, sink.clone()));
        Ok(PgStore {
            writer: tx,
            reader,
            sink,
        })
    }

    /// Queues `f` for the writer, which runs it in the next batch's transaction and publishes
    /// what it returned once that batch committed.
    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: for<'a> FnOnce(&'a Transaction<'a>) -> JobFuture<'a, R> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = FnJob {
            f: Some(f),
            out: None,
            published: Vec::new(),
            reply,
        };
        self.writer
            .send(Box::new(job))
            .map_err(|_| backend("writer task stopped"))?;
        rx.await.map_err(|_| backend("writer task dropped a job"))?
    }
}

fn row_to_event(row: &Row) -> Event {
    let kind = match row.get::<_, i16>(3) {
        KIND_COMMIT => EventKind::Commit,
        KIND_WELCOME => EventKind::Welcome,
        _ => EventKind::Message,
    };
    Event {
        id: to_u64(row.get(0)),
        group_id: B64(row.get(1)),
        seq: to_u64(row.get(2)),
        kind,
        sender: row.get(4),
        payload: B64(row.get(5)),
        timestamp: to_u64(row.get(6)),
    }
}

async fn members(c: &impl GenericClient, group_id: &[u8]) -> Result<Vec<String>, StoreError> {
    Ok(c.query(
        "SELECT device_id FROM group_devices WHERE group_id = $1 AND to_event IS NULL",
        &[&group_id],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Appends a commit or message of a group to the event log; returns its event id.
async fn insert_group_event(
    tx: &Transaction<'_>,
    group_id: &[u8],
    seq: u64,
    kind: i16,
    sender: &str,
    payload: &[u8],
    now_ms: u64,
) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(
            "INSERT INTO events (group_id, seq, kind, sender, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &group_id,
                &to_i64(seq),
                &kind,
                &sender,
                &payload,
                &to_i64(now_ms),
            ],
        )
        .await?
        .get(0))
}

async fn group_epoch(c: &impl GenericClient, group_id: &[u8]) -> Result<(u64, u64), StoreError> {
    let row = c
        .query_opt(
            "SELECT epoch, next_seq FROM groups WHERE group_id = $1 FOR UPDATE",
            &[&group_id],
        )
        .await?
        .ok_or(StoreError::NoGroup)?;
    Ok((to_u64(row.get(0)), to_u64(row.get(1))))
}

async fn count_key_packages(
    c: &impl GenericClient,
    device_id: &str,
) -> Result<(u32, bool), StoreError> {
    let count: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM key_packages WHERE device_id = $1",
            &[&device_id],
        )
        .await?
        .get(0);
    let last_resort: bool = c
        .query_one(
            "SELECT EXISTS(SELECT 1 FROM last_resort_key_packages WHERE device_id = $1)",
            &[&device_id],
        )
        .await?
        .get(0);
    Ok((u32::try_from(count).unwrap_or(u32::MAX), last_resort))
}

#[async_trait]
impl Store for PgStore {
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
        self.reader
            .execute(
                "INSERT INTO invites (code_hash, address, expires_at) VALUES ($1, $2, $3)",
                &[&code_hash.as_slice(), &address, &to_i64(expires_at)],
            )
            .await?;
        Ok(())
    }

    async fn register(
        &self,
        user: NewUser,
        invite_hash: Option<[u8; 32]>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                if let Some(hash) = invite_hash {
                    let used = tx
                        .execute(
                            "UPDATE invites SET used_at = $1 WHERE code_hash = $2 AND address = $3 \
                             AND used_at IS NULL AND expires_at > $1",
                            &[&to_i64(now), &hash.as_slice(), &user.address],
                        )
                        .await?;
                    if used != 1 {
                        return Err(StoreError::InviteInvalid);
                    }
                }
                let taken: bool = tx
                    .query_one(
                        "SELECT EXISTS(SELECT 1 FROM users WHERE address = $1)",
                        &[&user.address],
                    )
                    .await?
                    .get(0);
                if taken {
                    return Err(StoreError::AddressTaken);
                }
                let device_taken: bool = tx
                    .query_one(
                        "SELECT EXISTS(SELECT 1 FROM devices WHERE device_id = $1)",
                        &[&user.device.device_id],
                    )
                    .await?
                    .get(0);
                if device_taken {
                    return Err(StoreError::DeviceExists);
                }
                tx.execute(
                    "INSERT INTO users (address, identity_key, created_at) VALUES ($1, $2, $3)",
                    &[&user.address, &user.identity_key, &to_i64(now)],
                )
                .await?;
                tx.execute(
                    "INSERT INTO devices (device_id, address, certificate, token_hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &user.device.device_id,
                        &user.address,
                        &user.device.certificate,
                        &user.device.token_hash.as_slice(),
                        &to_i64(now),
                    ],
                )
                .await?;
                Ok(((), Vec::new()))
            })
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
            Box::pin(async move {
                let exists: bool = tx
                    .query_one("SELECT EXISTS(SELECT 1 FROM users WHERE address = $1)", &[&address])
                    .await?
                    .get(0);
                if !exists {
                    return Err(StoreError::NoUser);
                }
                let inserted = tx
                    .execute(
                        "INSERT INTO devices (device_id, address, certificate, token_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                        &[
                            &device.device_id,
                            &address,
                            &device.certificate,
                            &device.token_hash.as_slice(),
                            &to_i64(now),
                        ],
                    )
                    .await?;
                if inserted == 0 {
                    return Err(StoreError::DeviceExists);
                }
                Ok(((), Vec::new()))
            })
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
        self.write(move |tx| {
            Box::pin(async move {
                let revoked = tx
                    .execute(
                        "UPDATE devices SET revoked_at = $1 WHERE device_id = $2 AND address = $3 \
                         AND revoked_at IS NULL",
                        &[&to_i64(now), &device_id, &address],
                    )
                    .await?;
                if revoked == 0 {
                    return Err(StoreError::NoDevice);
                }
                tx.execute(
                    "DELETE FROM key_packages WHERE device_id = $1",
                    &[&device_id],
                )
                .await?;
                tx.execute(
                    "DELETE FROM last_resort_key_packages WHERE device_id = $1",
                    &[&device_id],
                )
                .await?;
                Ok(((), Vec::new()))
            })
        })
        .await
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
            Box::pin(async move {
                let current = tx
                    .query_opt(
                        "SELECT device_list_version FROM users WHERE address = $1 FOR UPDATE",
                        &[&address],
                    )
                    .await?
                    .map(|r| to_u64(r.get(0)));
                match current {
                    None => Err(StoreError::NoUser),
                    Some(current) if current >= version => {
                        Err(StoreError::StaleDeviceList(current))
                    }
                    Some(_) => {
                        tx.execute(
                            "UPDATE users SET device_list = $1, device_list_version = $2 \
                             WHERE address = $3",
                            &[&list, &to_i64(version), &address],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE devices SET listed = (device_id = ANY($2)) WHERE address = $1",
                            &[&address, &listed],
                        )
                        .await?;
                        // One appender at a time across nodes: the log's positions have no gap.
                        tx.batch_execute("LOCK TABLE kt_log IN EXCLUSIVE MODE")
                            .await?;
                        tx.execute(
                            "INSERT INTO kt_log (idx, address, version, leaf) VALUES \
                             ((SELECT COALESCE(MAX(idx) + 1, 0) FROM kt_log), $1, $2, $3)",
                            &[&address, &to_i64(version), &kt_leaf],
                        )
                        .await?;
                        Ok(((), Vec::new()))
                    }
                }
            })
        })
        .await
    }

    async fn kt_entries(&self, from: u64, limit: u32) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .reader
            .query(
                "SELECT leaf FROM kt_log WHERE idx >= $1 ORDER BY idx LIMIT $2",
                &[&to_i64(from), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn kt_entries_of(&self, address: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .reader
            .query(
                "SELECT idx, leaf FROM kt_log WHERE address = $1 ORDER BY idx",
                &[&address],
            )
            .await?
            .iter()
            .map(|r| (to_u64(r.get(0)), r.get(1)))
            .collect())
    }

    async fn kt_index(&self, address: &str, version: u64) -> Result<Option<u64>, StoreError> {
        Ok(self
            .reader
            .query_opt(
                "SELECT MAX(idx) FROM kt_log WHERE address = $1 AND version = $2",
                &[&address, &to_i64(version)],
            )
            .await?
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .map(to_u64))
    }

    async fn put_recovery(
        &self,
        address: &str,
        auth_hash: [u8; 32],
        backup: Vec<u8>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.reader
            .execute(
                "INSERT INTO recoveries (address, auth_hash, backup, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (address) DO UPDATE SET \
                 auth_hash = excluded.auth_hash, backup = excluded.backup, \
                 updated_at = excluded.updated_at",
                &[&address, &auth_hash.as_slice(), &backup, &to_i64(now)],
            )
            .await?;
        Ok(())
    }

    async fn recovery(&self, address: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        Ok(self
            .reader
            .query_opt(
                "SELECT auth_hash, backup FROM recoveries WHERE address = $1",
                &[&address],
            )
            .await?
            .map(|r| (r.get(0), r.get(1))))
    }

    async fn add_history_segment(
        &self,
        address: &str,
        segment: Vec<u8>,
        now: u64,
        quota: u64,
    ) -> Result<u64, StoreError> {
        let address = address.to_owned();
        // Through the single writer; across nodes, the user's row lock serializes appends.
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "SELECT 1 FROM users WHERE address = $1 FOR UPDATE",
                    &[&address],
                )
                .await?;
                let row = tx
                    .query_one(
                        "SELECT COALESCE(SUM(length(segment)), 0)::BIGINT, \
                         COALESCE(MAX(idx), 0)::BIGINT FROM recovery_history WHERE address = $1",
                        &[&address],
                    )
                    .await?;
                let (used, last): (i64, i64) = (row.get(0), row.get(1));
                if to_u64(used).saturating_add(segment.len() as u64) > quota {
                    return Err(StoreError::QuotaExceeded);
                }
                tx.execute(
                    "INSERT INTO recovery_history (address, idx, segment, created_at) \
                     VALUES ($1, $2, $3, $4)",
                    &[&address, &(last + 1), &segment, &to_i64(now)],
                )
                .await?;
                Ok((to_u64(last + 1), Vec::new()))
            })
        })
        .await
    }

    async fn history_segments(
        &self,
        address: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .reader
            .query(
                "SELECT idx, segment FROM recovery_history WHERE address = $1 AND idx > $2 \
                 ORDER BY idx LIMIT $3",
                &[&address, &to_i64(after), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| (to_u64(r.get(0)), r.get(1)))
            .collect())
    }

    async fn device_auth(&self, device_id: &str) -> Result<Option<DeviceAuth>, StoreError> {
        Ok(self
            .reader
            .query_opt(
                "SELECT address, token_hash FROM devices WHERE device_id = $1 AND revoked_at IS NULL",
                &[&device_id],
            )
            .await?
            .map(|r| DeviceAuth {
                address: r.get(0),
                token_hash: hash_array(r.get(1)),
            }))
    }

    async fn device_certificate(&self, device_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .reader
            .query_opt(
                "SELECT certificate FROM devices WHERE device_id = $1 AND revoked_at IS NULL",
                &[&device_id],
            )
            .await?
            .map(|r| r.get(0)))
    }

    async fn user(&self, address: &str) -> Result<Option<UserRecord>, StoreError> {
        let Some(row) = self
            .reader
            .query_opt(
                "SELECT identity_key, device_list FROM users WHERE address = $1",
                &[&address],
            )
            .await?
        else {
            return Ok(None);
        };
        let devices = self
            .reader
            .query(
                "SELECT device_id, certificate FROM devices WHERE address = $1 \
                 AND revoked_at IS NULL ORDER BY created_at, device_id",
                &[&address],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(Some(UserRecord {
            address: address.to_owned(),
            identity_key: row.get(0),
            devices,
            device_list: row.get(1),
        }))
    }

    async fn add_key_packages(
        &self,
        device_id: &str,
        packages: Vec<(Vec<u8>, Vec<u8>)>,
        last_resort: Option<Vec<u8>>,
    ) -> Result<(u32, bool), StoreError> {
        let device_id = device_id.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                for (hash_ref, data) in &packages {
                    tx.execute(
                        "INSERT INTO key_packages (device_id, hash_ref, data) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                        &[&device_id, hash_ref, data],
                    )
                    .await?;
                }
                if let Some(data) = &last_resort {
                    tx.execute(
                        "INSERT INTO last_resort_key_packages (device_id, data) VALUES ($1, $2) \
                         ON CONFLICT (device_id) DO UPDATE SET data = EXCLUDED.data",
                        &[&device_id, data],
                    )
                    .await?;
                }
                Ok((count_key_packages(tx, &device_id).await?, Vec::new()))
            })
        })
        .await
    }

    async fn key_package_count(&self, device_id: &str) -> Result<(u32, bool), StoreError> {
        count_key_packages(&self.reader, device_id).await
    }

    async fn claim_key_packages(
        &self,
        address: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let address = address.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                let devices: Vec<String> = tx
                    .query(
                        "SELECT device_id FROM devices WHERE address = $1 AND revoked_at IS NULL \
                         AND listed ORDER BY created_at, device_id",
                        &[&address],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                if devices.is_empty() {
                    return Err(StoreError::NoUser);
                }
                let mut out = Vec::with_capacity(devices.len());
                for device in devices {
                    let one_time = tx
                        .query_opt(
                            "DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages \
                             WHERE device_id = $1 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                             RETURNING data",
                            &[&device],
                        )
                        .await?
                        .map(|r| r.get::<_, Vec<u8>>(0));
                    let data = match one_time {
                        Some(d) => d,
                        None => tx
                            .query_opt(
                                "SELECT data FROM last_resort_key_packages WHERE device_id = $1",
                                &[&device],
                            )
                            .await?
                            .map(|r| r.get(0))
                            .ok_or(StoreError::NoKeyPackage)?,
                    };
                    out.push((device, data));
                }
                Ok((out, Vec::new()))
            })
        })
        .await
    }

    async fn create_group(&self, group: NewGroup) -> Result<(), StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                let exists: bool = tx
                    .query_one("SELECT EXISTS(SELECT 1 FROM groups WHERE group_id = $1)", &[&group.group_id])
                    .await?
                    .get(0);
                if exists {
                    return Err(StoreError::GroupExists);
                }
                tx.execute(
                    "INSERT INTO groups (group_id, epoch, next_seq) VALUES ($1, $2, 1)",
                    &[&group.group_id, &to_i64(group.epoch)],
                )
                .await?;
                tx.execute(
                    "INSERT INTO group_states (group_id, state, group_info) VALUES ($1, $2, $3)",
                    &[&group.group_id, &group.state, &group.group_info],
                )
                .await?;
                let last: i64 = tx
                    .query_one("SELECT COALESCE(MAX(id), 0) FROM events", &[])
                    .await?
                    .get(0);
                for device in &group.members {
                    tx.execute(
                        "INSERT INTO group_devices (group_id, device_id, from_event) VALUES ($1, $2, $3)",
                        &[&group.group_id, device, &last],
                    )
                    .await?;
                }
                Ok(((), Vec::new()))
            })
        })
        .await
    }

    async fn group(&self, group_id: &[u8]) -> Result<Option<GroupRecord>, StoreError> {
        Ok(self
            .reader
            .query_opt(
                "SELECT g.epoch, s.state FROM groups g JOIN group_states s \
                 ON s.group_id = g.group_id WHERE g.group_id = $1",
                &[&group_id],
            )
            .await?
            .map(|r| GroupRecord {
                epoch: to_u64(r.get(0)),
                state: r.get(1),
            }))
    }

    async fn group_info(&self, group_id: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .reader
            .query_opt(
                "SELECT g.epoch, s.group_info FROM groups g JOIN group_states s \
                 ON s.group_id = g.group_id WHERE g.group_id = $1",
                &[&group_id],
            )
            .await?
            .map(|r| (to_u64(r.get(0)), r.get(1))))
    }

    async fn group_members(&self, group_id: &[u8]) -> Result<Vec<String>, StoreError> {
        members(&self.reader, group_id).await
    }

    async fn commit(&self, commit: CommitWrite) -> Result<Accepted, StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                let (epoch, seq) = group_epoch(tx, &commit.group_id).await?;
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
                )
                .await?;
                for device in &commit.removed {
                    tx.execute(
                        "UPDATE group_devices SET to_event = $1 WHERE group_id = $2 \
                         AND device_id = $3 AND to_event IS NULL",
                        &[&event_id, &commit.group_id, device],
                    )
                    .await?;
                }
                if let Some(device) = &commit.joined {
                    tx.execute(
                        "INSERT INTO group_devices (group_id, device_id, from_event) VALUES ($1, $2, $3)",
                        &[&commit.group_id, device, &event_id],
                    )
                    .await?;
                }
                let mut published = Vec::new();
                let mut welcome_wake = None;
                if let Some((welcome, devices)) = &commit.welcome {
                    let payload_id: i64 = tx
                        .query_one("INSERT INTO payloads (data) VALUES ($1) RETURNING id", &[welcome])
                        .await?
                        .get(0);
                    let mut last = event_id;
                    for device in devices {
                        tx.execute(
                            "INSERT INTO group_devices (group_id, device_id, from_event) VALUES ($1, $2, $3)",
                            &[&commit.group_id, device, &event_id],
                        )
                        .await?;
                        last = tx
                            .query_one(
                                "INSERT INTO events (group_id, seq, kind, sender, target, payload, \
                                 payload_id, created_at) VALUES ($1, 0, $2, $3, $4, ''::bytea, $5, $6) \
                                 RETURNING id",
                                &[
                                    &commit.group_id,
                                    &KIND_WELCOME,
                                    &commit.sender,
                                    device,
                                    &payload_id,
                                    &to_i64(commit.now_ms),
                                ],
                            )
                            .await?
                            .get(0);
                    }
                    welcome_wake = Some(Published::Wake {
                        devices: devices.clone(),
                        event_id: to_u64(last),
                    });
                }
                tx.execute(
                    "UPDATE groups SET epoch = $1, next_seq = $2 WHERE group_id = $3",
                    &[&to_i64(commit.new_epoch), &to_i64(seq + 1), &commit.group_id],
                )
                .await?;
                tx.execute(
                    "UPDATE group_states SET state = $1, group_info = $2 WHERE group_id = $3",
                    &[&commit.state, &commit.group_info, &commit.group_id],
                )
                .await?;
                let mut recipients = members(tx, &commit.group_id).await?;
                recipients.extend(commit.removed.iter().cloned());
                published.push(Published::group_event(to_u64(event_id), &commit.group_id, seq, EventKind::Commit, &commit.sender, &commit.commit, commit.now_ms, Arc::new(recipients)));
                published.extend(welcome_wake);
                Ok((
                    Accepted {
                        seq,
                        event_id: to_u64(event_id),
                    },
                    published,
                ))
            })
        })
        .await
    }

    async fn post_message(&self, message: MessageWrite) -> Result<Accepted, StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                // One statement, one round trip to the database: the group's row locked, its
                // members, and the event appended and the sequence advanced only when the
                // sender is a member at the current epoch. Typed parameters: no round trip to
                // prepare it either.
                let row = tx
                    .query_typed_opt(
                        "WITH g AS (SELECT epoch, next_seq FROM groups WHERE group_id = $1 \
                         FOR UPDATE), \
                         m AS (SELECT array_agg(device_id) AS devices FROM group_devices \
                         WHERE group_id = $1 AND to_event IS NULL), \
                         ok AS (SELECT g.next_seq FROM g, m WHERE g.epoch = $2 \
                         AND $3 = ANY(m.devices)), \
                         ins AS (INSERT INTO events (group_id, seq, kind, sender, payload, \
                         created_at) SELECT $1, ok.next_seq, $4, $3, $5, $6 FROM ok \
                         RETURNING id), \
                         upd AS (UPDATE groups SET next_seq = next_seq + 1 WHERE group_id = $1 \
                         AND EXISTS (SELECT 1 FROM ins)) \
                         SELECT g.epoch, g.next_seq, m.devices, (SELECT id FROM ins) FROM g, m",
                        &[
                            (&message.group_id, Type::BYTEA),
                            (&to_i64(message.epoch), Type::INT8),
                            (&message.sender, Type::TEXT),
                            (&KIND_MESSAGE, Type::INT2),
                            (&message.payload, Type::BYTEA),
                            (&to_i64(message.now_ms), Type::INT8),
                        ],
                    )
                    .await?
                    .ok_or(StoreError::NoGroup)?;
                let epoch = to_u64(row.get(0));
                let seq = to_u64(row.get(1));
                let recipients: Vec<String> =
                    row.get::<_, Option<Vec<String>>>(2).unwrap_or_default();
                let Some(event_id) = row.get::<_, Option<i64>>(3) else {
                    if !recipients.contains(&message.sender) {
                        return Err(StoreError::NotMember);
                    }
                    return Err(StoreError::StaleEpoch(epoch));
                };
                let published = vec![Published::group_event(
                    to_u64(event_id),
                    &message.group_id,
                    seq,
                    EventKind::Message,
                    &message.sender,
                    &message.payload,
                    message.now_ms,
                    Arc::new(recipients),
                )];
                Ok((
                    Accepted {
                        seq,
                        event_id: to_u64(event_id),
                    },
                    published,
                ))
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
        let rows = self
            .reader
            .query(
                "SELECT * FROM ( \
                 SELECT e.id, e.group_id, e.seq, e.kind, e.sender, e.payload, e.created_at \
                 FROM group_devices m JOIN events e ON e.group_id = m.group_id \
                 AND e.target IS NULL AND e.id > m.from_event \
                 AND (m.to_event IS NULL OR e.id <= m.to_event) \
                 WHERE m.device_id = $1 AND e.id > $2 \
                 UNION ALL \
                 SELECT e.id, e.group_id, e.seq, e.kind, e.sender, COALESCE(p.data, e.payload), \
                 e.created_at FROM events e LEFT JOIN payloads p ON p.id = e.payload_id \
                 WHERE e.target = $1 AND e.id > $2) AS u \
                 ORDER BY id LIMIT $3",
                &[&device_id, &to_i64(after), &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(row_to_event).collect())
    }

    async fn ack(&self, device_id: &str, cursor: u64) -> Result<(), StoreError> {
        self.reader
            .execute(
                "UPDATE devices SET cursor = GREATEST(cursor, $1) WHERE device_id = $2",
                &[&to_i64(cursor), &device_id],
            )
            .await?;
        Ok(())
    }

    async fn create_blob(&self, blob: NewBlob, quota: u64) -> Result<(), StoreError> {
        // Through the single writer, so that two uploads of one user cannot both pass the
        // quota check; across nodes, the owner's row lock below serializes them.
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "SELECT 1 FROM users WHERE address = $1 FOR UPDATE",
                    &[&blob.owner],
                )
                .await?;
                let used: i64 = tx
                    .query_one(
                        "SELECT COALESCE(SUM(size), 0)::BIGINT FROM blobs WHERE owner = $1",
                        &[&blob.owner],
                    )
                    .await?
                    .get(0);
                if to_u64(used).saturating_add(blob.size) > quota {
                    return Err(StoreError::QuotaExceeded);
                }
                tx.execute(
                    "INSERT INTO blobs (id, owner, device, group_id, size, updated_at, ttl) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &blob.id,
                        &blob.owner,
                        &blob.device,
                        &blob.group_id,
                        &to_i64(blob.size),
                        &to_i64(blob.now),
                        &blob.ttl.map(to_i64),
                    ],
                )
                .await?;
                Ok(((), Vec::new()))
            })
        })
        .await
    }

    async fn blob(&self, id: &str) -> Result<Option<BlobRecord>, StoreError> {
        let row = self
            .reader
            .query_opt(
                "SELECT id, owner, device, group_id, size, received, complete, updated_at \
                 FROM blobs WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| BlobRecord {
            id: r.get(0),
            owner: r.get(1),
            device: r.get(2),
            group_id: r.get(3),
            size: to_u64(r.get(4)),
            received: to_u64(r.get(5)),
            complete: r.get(6),
            updated_at: to_u64(r.get(7)),
        }))
    }

    async fn blob_progress(
        &self,
        id: &str,
        received: u64,
        complete: bool,
        now: u64,
    ) -> Result<(), StoreError> {
        self.reader
            .execute(
                "UPDATE blobs SET received = $2, complete = $3, updated_at = $4 WHERE id = $1",
                &[&id, &to_i64(received), &complete, &to_i64(now)],
            )
            .await?;
        Ok(())
    }

    async fn delete_blob(&self, id: &str) -> Result<(), StoreError> {
        self.reader
            .execute("DELETE FROM blobs WHERE id = $1", &[&id])
            .await?;
        Ok(())
    }

    async fn expired_blobs(
        &self,
        idle_before: u64,
        complete_before: u64,
        now: u64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self
            .reader
            .query(
                "SELECT id FROM blobs b WHERE (NOT complete AND updated_at < $1) \
                 OR (complete AND updated_at < $2) \
                 OR (complete AND ttl IS NOT NULL AND updated_at + ttl <= $3) \
                 OR NOT EXISTS (SELECT 1 FROM group_devices g \
                                WHERE g.group_id = b.group_id AND g.to_event IS NULL)",
                &[&to_i64(idle_before), &to_i64(complete_before), &to_i64(now)],
            )
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> String {
        crate::test_postgres::url().unwrap_or_else(|why| panic!("{why}"))
    }

    /// A store in a fresh schema, dropped again when the returned guard is.
    async fn fresh() -> (SchemaGuard, Arc<dyn Store>) {
        let name = format!("missive_test_{:016x}", rand::random::<u64>());
        let admin = connect(&url(), None)
            .await
            .expect("connecting to the test database");
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        let store = PgStore::connect(&url(), Some(&name)).await.expect("store");
        (SchemaGuard { name }, Arc::new(store))
    }

    struct SchemaGuard {
        name: String,
    }

    impl Drop for SchemaGuard {
        fn drop(&mut self) {
            // Best effort, from outside the test's runtime.
            let name = self.name.clone();
            let url = url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(c) = connect(&url, None).await {
                            let _ = c
                                .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                                .await;
                        }
                    });
                }
            })
            .join();
        }
    }

    crate::store_conformance!(fresh);
}
