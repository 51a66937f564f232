//! Blob storage: the bytes of encrypted files. The server never holds a key; a blob is opaque,
//! padded ciphertext under an unguessable id. Who may write and read it is in the [`Store`]
//! (see [`BlobRecord`]); the bytes are in a [`BlobStore`], the filesystem by default.
//!
//! Architecture Invariant: a blob is served only once all its bytes are stored durably. An
//! upload writes into `partial/`, fsyncs, records its progress in the store, and moves the file
//! into `complete/` with an atomic rename only when the last byte is in.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::config::Config;
use crate::store::{Store, StoreError};

/// Where uploads continue and what they have written.
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable.
    async fn sync(&mut self) -> io::Result<()>;
}

/// The bytes of blobs. The filesystem implementation is [`FsBlobStore`]; an S3-compatible
/// one fits the same shape (multipart parts for `write`, completion for `complete`).
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Continues the upload of `id` at `offset` (bytes the store recorded as durable), dropping
    /// anything written beyond it. Returns the writer and where it really continues, which is
    /// less than `offset` only if stored bytes were lost.
    async fn resume(&self, id: &str, offset: u64) -> io::Result<(Box<dyn BlobWriter>, u64)>;

    /// Makes a fully written upload downloadable, atomically. Idempotent.
    async fn complete(&self, id: &str) -> io::Result<()>;

    /// `len` bytes of a complete blob from `start`.
    async fn read(
        &self,
        id: &str,
        start: u64,
        len: u64,
    ) -> io::Result<Pin<Box<dyn AsyncRead + Send>>>;

    /// Removes the blob, complete or not. Removing a missing blob succeeds.
    async fn delete(&self, id: &str) -> io::Result<()>;
}

/// Blobs as files under a directory: `partial/ID` while uploading, `complete/AB/ID` after.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root.join("partial"))?;
        std::fs::create_dir_all(root.join("complete"))?;
        Ok(FsBlobStore {
            root: root.to_owned(),
        })
    }

    fn partial(&self, id: &str) -> PathBuf {
        self.root.join("partial").join(id)
    }

    fn complete_path(&self, id: &str) -> PathBuf {
        self.root
            .join("complete")
            .join(id.get(..2).unwrap_or("__"))
            .join(id)
    }
}

struct FsWriter {
    file: tokio::fs::File,
}

#[async_trait]
impl BlobWriter for FsWriter {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes).await
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.file.flush().await?;
        self.file.sync_data().await
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn resume(&self, id: &str, offset: u64) -> io::Result<(Box<dyn BlobWriter>, u64)> {
        let path = self.partial(id);
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&path).await?;
        let len = file.metadata().await?.len();
        let at = len.min(offset);
        if len != at {
            file.set_len(at).await?;
        }
        if len == 0 {
            sync_dir(&self.root.join("partial")).await?;
        }
        file.seek(io::SeekFrom::Start(at)).await?;
        Ok((Box::new(FsWriter { file }), at))
    }

    async fn complete(&self, id: &str) -> io::Result<()> {
        let to = self.complete_path(id);
        let from = self.partial(id);
        if tokio::fs::try_exists(&to).await? && !tokio::fs::try_exists(&from).await? {
            return Ok(());
        }
        let dir = to.parent().unwrap_or(&self.root).to_owned();
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::File::open(&from).await?.sync_all().await?;
        tokio::fs::rename(&from, &to).await?;
        sync_dir(&dir).await?;
        sync_dir(&self.root.join("partial")).await
    }

    async fn read(
        &self,
        id: &str,
        start: u64,
        len: u64,
    ) -> io::Result<Pin<Box<dyn AsyncRead + Send>>> {
        let mut file = tokio::fs::File::open(self.complete_path(id)).await?;
        let stored = file.metadata().await?.len();
        if stored < start.saturating_add(len) {
            // Never send fewer bytes than announced: the client would see a broken transfer
            // and retry forever. This is storage damage, reported as such.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob is {stored} bytes on disk, shorter than recorded"),
            ));
        }
        file.seek(io::SeekFrom::Start(start)).await?;
        Ok(Box::pin(file.take(len)))
    }

    async fn delete(&self, id: &str) -> io::Result<()> {
        for path in [self.partial(id), self.complete_path(id)] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A new unguessable blob id: 128 random bits, hex.
pub fn new_blob_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Whether `id` has the shape of a blob id.
pub fn is_blob_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Deletes the blobs nobody needs any more (see [`Store::expired_blobs`]); returns how many.
pub async fn collect_garbage(
    store: &dyn Store,
    blobs: &dyn BlobStore,
    config: &Config,
    now: u64,
) -> Result<usize, StoreError> {
    let idle_before = now.saturating_sub(config.upload_idle_hours.saturating_mul(3600));
    let complete_before = now.saturating_sub(config.blob_retention_days.saturating_mul(86_400));
    let expired = store
        .expired_blobs(idle_before, complete_before, now)
        .await?;
    let mut removed = 0;
    for id in expired {
        // Bytes first: a crash in between leaves a record whose bytes are gone, which the next
        // pass removes; never bytes without a record.
        match blobs.delete(&id).await {
            Ok(()) => {
                store.delete_blob(&id).await?;
                removed += 1;
            }
            Err(e) => tracing::warn!(error = %e, "could not delete an expired blob"),
        }
    }
    Ok(removed)
}
