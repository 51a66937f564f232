//! Key transparency, the server's side: the log of every accepted signed device list (the
//! leaves are in the store, appended in the transaction that accepts the list), held in memory
//! as a Merkle tree to answer with proofs, and the log key that signs its heads.
//!
//! The in-memory tree is only a cache of the store's log: before each answer it takes what
//! other writers (another node on the same PostgreSQL) appended since. The log key lives in
//! `DATA/transparency.key` (0600); nodes of one domain share it.

use std::path::Path;

use ed25519_dalek::SigningKey;
use missive_proto::api::{KtHead, KtOwnEntries, KtOwnEntry, KtProof};
use missive_proto::kt::{Log, TreeHead};
use missive_proto::B64;

use crate::store::{Store, StoreError};

/// Leaves read from the store per query while catching up.
const CATCH_UP_PAGE: u32 = 4096;

pub struct Transparency {
    key: SigningKey,
    domain: String,
    log: tokio::sync::Mutex<Log>,
}

impl Transparency {
    /// The log of `domain`, signed with the key in `data` (made on first use).
    pub fn open(data: &Path, domain: &str) -> std::io::Result<Self> {
        let path = data.join("transparency.key");
        let secret: [u8; 32] = match std::fs::read(&path) {
            Ok(bytes) => bytes.try_into().map_err(|_| {
                std::io::Error::other(format!("{} is not a 32-byte key", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                write_secret(&path, &key.to_bytes())?;
                key.to_bytes()
            }
            Err(e) => return Err(e),
        };
        Ok(Transparency {
            key: SigningKey::from_bytes(&secret),
            domain: domain.to_owned(),
            log: tokio::sync::Mutex::new(Log::new()),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The log's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The log as the store holds it now.
    async fn current(
        &self,
        store: &dyn Store,
    ) -> Result<tokio::sync::MutexGuard<'_, Log>, StoreError> {
        let mut log = self.log.lock().await;
        loop {
            let leaves = store.kt_entries(log.len(), CATCH_UP_PAGE).await?;
            let done = (leaves.len() as u32) < CATCH_UP_PAGE;
            for leaf in leaves {
                log.push(leaf);
            }
            if done {
                return Ok(log);
            }
        }
    }

    fn head(&self, log: &Log) -> KtHead {
        let head = TreeHead::sign(&self.key, &self.domain, log.len(), log.root());
        KtHead {
            size: head.size,
            root: B64(head.root.to_vec()),
            signature: B64(head.signature.to_vec()),
        }
    }

    /// The current signed head, with the proofs that it extends the log's first `since`
    /// leaves and its first `peer` leaves (each when below the log's size).
    pub async fn current_head(
        &self,
        store: &dyn Store,
        since: Option<u64>,
        peer: Option<u64>,
    ) -> Result<(KtHead, Option<B64>, Option<B64>), StoreError> {
        let log = self.current(store).await?;
        let prove = |from: Option<u64>| {
            from.filter(|s| *s < log.len())
                .and_then(|s| log.prove_consistency(s))
                .map(B64)
        };
        Ok((self.head(&log), prove(since), prove(peer)))
    }

    /// The proof that the leaf at `index` is in the log, under the current head, and (with
    /// `since`) that the head extends the log's first `since` leaves.
    pub async fn prove(
        &self,
        store: &dyn Store,
        index: u64,
        since: Option<u64>,
    ) -> Result<Option<KtProof>, StoreError> {
        let log = self.current(store).await?;
        let Some(inclusion) = log.prove_inclusion(index) else {
            return Ok(None);
        };
        let consistency = since
            .filter(|s| *s < log.len())
            .and_then(|s| log.prove_consistency(s))
            .map(B64);
        Ok(Some(KtProof {
            index,
            head: self.head(&log),
            inclusion: B64(inclusion),
            consistency,
        }))
    }
}

impl Transparency {
    /// The leaves at `entries` (position, leaf) with their audit paths under one current
    /// head, and (with `since`) the proof that the head extends the log's first `since` leaves.
    pub async fn prove_all(
        &self,
        store: &dyn Store,
        entries: Vec<(u64, Vec<u8>)>,
        since: Option<u64>,
    ) -> Result<KtOwnEntries, StoreError> {
        let log = self.current(store).await?;
        let entries = entries
            .into_iter()
            .filter_map(|(index, leaf)| {
                log.prove_inclusion(index).map(|inclusion| KtOwnEntry {
                    index,
                    leaf: B64(leaf),
                    inclusion: B64(inclusion),
                })
            })
            .collect();
        let consistency = since
            .filter(|s| *s < log.len())
            .and_then(|s| log.prove_consistency(s))
            .map(B64);
        Ok(KtOwnEntries {
            head: self.head(&log),
            consistency,
            entries,
        })
    }
}

fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
