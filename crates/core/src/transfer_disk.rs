//! Files on disk (native only): a file is read, sealed and sent by a thread of its own in one
//! streamed request, and received into a part file beside its final name, so a download
//! resumes from the chunks already written after a cut or a restart.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use missive_proto::api::BlobStatus;

use super::transfer::{Destination, FileSource, Progress, SentFile};
use super::{network, Client, Transport};
use crate::error::CoreError;
use crate::file::{Opener, Sealer, CHUNK};

/// Batches queued between the file thread and the network.
const QUEUE: usize = 4;
/// Bytes handed over at once between the file thread and the network: one thread wake-up per
/// batch, not per chunk or per network read.
const BATCH: usize = 1 << 20;

fn io_error(what: &str, path: &Path, e: std::io::Error) -> CoreError {
    CoreError::Io(format!("{what} {}: {e}", path.display()))
}

/// A file name safe to create in the output directory: the last path component, without
/// control characters, never empty, `.` or `..`.
fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim().trim_start_matches('.').to_owned();
    if clean.is_empty() {
        "file".to_owned()
    } else {
        clean
    }
}

/// `dir/name`, or `dir/stem (2).ext` and so on if that exists: a download never overwrites.
fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (2..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

fn modified_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Bytes received between two background flushes of a download.
const FLUSH_EVERY: usize = 32 << 20;

/// Flushes a file being written from a thread of its own, when nudged (a nudge while a flush
/// runs is dropped: the next flush covers it).
struct Flusher {
    nudges: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(file: &std::fs::File) -> Self {
        let Ok(file) = file.try_clone() else {
            return Flusher {
                nudges: None,
                thread: None,
            };
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                // Errors surface in the final fsync, which must succeed.
                let _ = file.sync_data();
            }
        });
        Flusher {
            nudges: Some(tx),
            thread: Some(thread),
        }
    }

    fn nudge(&self) {
        if let Some(tx) = &self.nudges {
            let _ = tx.try_send(());
        }
    }

    fn finish(mut self) {
        self.nudges.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A file on disk to send.
pub struct DiskFile {
    path: PathBuf,
    meta: std::fs::Metadata,
}

impl DiskFile {
    /// The regular file at `path`.
    pub fn open(path: &Path) -> Result<Self, CoreError> {
        let path = std::fs::canonicalize(path).map_err(|e| io_error("opening", path, e))?;
        let meta = std::fs::metadata(&path).map_err(|e| io_error("opening", &path, e))?;
        if !meta.is_file() {
            return Err(CoreError::Usage(format!(
                "{} is not a file",
                path.display()
            )));
        }
        Ok(DiskFile { path, meta })
    }
}

impl FileSource for DiskFile {
    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into())
    }

    fn size(&self) -> u64 {
        self.meta.len()
    }

    fn version(&self) -> (String, u64) {
        (
            self.path.to_string_lossy().into_owned(),
            modified_ns(&self.meta),
        )
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, CoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path).map_err(|e| io_error("reading", &path, e))?;
            file.seek(std::io::SeekFrom::Start(offset))
                .map_err(|e| io_error("reading", &path, e))?;
            let mut buf = vec![0; len];
            file.read_exact(&mut buf)
                .map_err(|e| io_error("reading", &path, e))?;
            Ok(buf)
        })
        .await
        .map_err(|e| CoreError::Io(format!("file reader failed: {e}")))?
    }

    /// One streamed request, fed by a thread that reads and seals (on two threads) while the
    /// network sends.
    async fn upload(
        &self,
        transport: &Transport,
        secret: &[u8],
        status: &BlobStatus,
        progress: Option<Progress>,
    ) -> Result<(Option<BlobStatus>, [u8; 32]), CoreError> {
        transport
            .upload_from(&self.path, secret, self.size(), status, progress)
            .await
    }
}

impl Transport {
    /// Streams a sealed file to the blob from `received`; returns the server's answer and the
    /// plaintext's digest (the whole file is read and hashed, what the server holds is skipped).
    async fn upload_from(
        &self,
        path: &Path,
        secret: &[u8],
        size: u64,
        status: &BlobStatus,
        progress: Option<Progress>,
    ) -> Result<(Option<BlobStatus>, [u8; 32]), CoreError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(QUEUE);
        let path = path.to_owned();
        let secret = secret.to_vec();
        let from = status.received;
        let total = status.size;
        let producer = tokio::task::spawn_blocking(move || -> Result<[u8; 32], CoreError> {
            let mut sealer = Sealer::new(&secret, size)?;
            if sealer.layout().blob_len() != total {
                return Err(CoreError::Usage(
                    "the server's blob does not match this file; start the upload again".into(),
                ));
            }
            let mut file = std::fs::File::open(&path).map_err(|e| io_error("reading", &path, e))?;
            let mut plain = Vec::with_capacity(BATCH);
            // Chunks the server holds completely are only hashed.
            while !sealer.done() {
                let index = sealer.position();
                let end =
                    sealer.layout().sealed_offset(index) + sealer.layout().sealed_len(index) as u64;
                if end > from {
                    break;
                }
                plain.resize(sealer.wants(), 0);
                file.read_exact(&mut plain)
                    .map_err(|e| io_error("reading", &path, e))?;
                sealer.skip(&plain)?;
            }
            // The rest goes out in batches of 16 chunks, sealed on two threads.
            let mut skip =
                from.saturating_sub(sealer.layout().sealed_offset(sealer.position())) as usize;
            while !sealer.done() {
                let layout = *sealer.layout();
                let first = sealer.position();
                let count = (layout.chunks - first).min((BATCH / CHUNK) as u64);
                let bytes: usize = (first..first + count)
                    .map(|i| layout.file_bytes_in(i))
                    .sum();
                plain.resize(bytes, 0);
                file.read_exact(&mut plain)
                    .map_err(|e| io_error("reading", &path, e))?;
                let mut batch = Vec::with_capacity(BATCH + count as usize * crate::file::TAG);
                sealer.seal_chunks(count, &plain, &mut batch)?;
                if skip > 0 {
                    batch.drain(..skip);
                    skip = 0;
                }
                if tx.blocking_send(Ok(batch)).is_err() {
                    // The request ended (cut or refused); the caller reads the reason.
                    return Err(CoreError::Network("upload interrupted".into()));
                }
                if let Some(p) = &progress {
                    p(layout.sealed_offset(first + count).min(total), total);
                }
            }
            Ok(sealer.digest())
        });
        let answer = if from < total {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            let resp = self
                .http
                .patch(self.url(&format!("/v1/blobs/{}", status.id)))
                .bearer_auth(&self.token)
                .header("upload-offset", from)
                .header("content-length", total - from)
                .header("content-type", "application/octet-stream")
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await
                .map_err(network);
            match resp {
                Ok(resp) => Some(Self::answer::<BlobStatus>(resp).await),
                Err(e) => Some(Err(e)),
            }
        } else {
            drop(rx);
            None
        };
        let digest = producer
            .await
            .map_err(|e| CoreError::Io(format!("file reader failed: {e}")))?;
        match (answer, digest) {
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(e),
            (Some(Ok(status)), Ok(digest)) => Ok((Some(status), digest)),
            (None, Ok(digest)) => Ok((None, digest)),
        }
    }
}

impl Client {
    /// Encrypts and uploads a file on disk, then sends it to the conversation. An interrupted
    /// upload of the same unchanged file to the same conversation resumes where the server's
    /// copy ends.
    pub async fn send_file(
        &mut self,
        conversation: &str,
        path: &Path,
        progress: Option<Progress>,
    ) -> Result<SentFile, CoreError> {
        let file = DiskFile::open(path)?;
        self.send_file_from(conversation, &file, progress).await
    }

    /// Downloads, decrypts and checks a received file into `out_dir`; returns where it was
    /// written. `id` is the file's id or the id of the message that shared it (or a unique
    /// prefix of either). Nothing appears under the file's name unless every chunk
    /// authenticated and the whole file's digest matched.
    pub async fn download_file(
        &mut self,
        id: &str,
        out_dir: &Path,
        progress: Option<Progress>,
    ) -> Result<PathBuf, CoreError> {
        let (file, mut opener) = self.file_to_open(id, Destination::Disk)?;
        let layout = *opener.layout();
        let name = safe_name(&file.name);
        std::fs::create_dir_all(out_dir).map_err(|e| io_error("creating", out_dir, e))?;
        let part = out_dir.join(format!(
            ".{name}.{}.part",
            &file.blob[..8.min(file.blob.len())]
        ));

        // Resume: re-hash the whole chunks a previous attempt wrote, drop any partial one.
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&part)
            .map_err(|e| io_error("writing", &part, e))?;
        // A received file is the user's alone, whatever their umask says (it keeps its mode
        // when renamed into place).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            out.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io_error("writing", &part, e))?;
        }
        let have = out
            .metadata()
            .map_err(|e| io_error("reading", &part, e))?
            .len();
        let whole = (have / CHUNK as u64).min(layout.chunks.saturating_sub(1));
        out.set_len(whole * CHUNK as u64)
            .map_err(|e| io_error("writing", &part, e))?;
        out.rewind().map_err(|e| io_error("reading", &part, e))?;
        let mut buf = vec![0u8; CHUNK];
        for _ in 0..whole {
            out.read_exact(&mut buf)
                .map_err(|e| io_error("reading", &part, e))?;
            opener.skip(&buf)?;
        }
        drop(buf);
        let start = layout.sealed_offset(whole);

        let transport = self.transport();
        let url = transport.url(&format!("/v1/blobs/{}", file.blob));
        let resp = transport
            .send(|| {
                let req = transport.http.get(&url);
                if start > 0 {
                    req.header("range", format!("bytes={start}-"))
                } else {
                    req
                }
            })
            .await?;
        let expected_status = if start > 0 { 206 } else { 200 };
        if resp.status().as_u16() != expected_status {
            return Err(Transport::answer::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or_else(|| {
                    CoreError::Network("the server did not send the expected byte range".into())
                }));
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUE);
        let part_path = part.clone();
        let total = layout.blob_len();
        let writer = tokio::task::spawn_blocking(move || -> Result<Opener, CoreError> {
            // The file reaches the disk while later chunks are still being decrypted: another
            // thread flushes what is written so far every FLUSH_EVERY bytes, so the final
            // fsync has little left to do.
            let flusher = Flusher::start(&out);
            let mut w = std::io::BufWriter::with_capacity(64 << 10, out);
            let mut done = start;
            let mut since_flush = 0;
            while let Some(bytes) = rx.blocking_recv() {
                since_flush += bytes.len();
                if since_flush >= FLUSH_EVERY {
                    flusher.nudge();
                    since_flush = 0;
                }
                opener
                    .push(&bytes, |plain| w.write_all(plain))
                    .map_err(|e| match e {
                        crate::file::OpenError::File(f) => CoreError::File(f),
                        crate::file::OpenError::Io(e) => io_error("writing", &part_path, e),
                    })?;
                done += bytes.len() as u64;
                if let Some(p) = &progress {
                    p(done, total);
                }
            }
            let file = w
                .into_inner()
                .map_err(|e| io_error("writing", &part_path, e.into_error()))?;
            flusher.finish();
            file.sync_all()
                .map_err(|e| io_error("writing", &part_path, e))?;
            Ok(opener)
        });
        let mut body = resp.bytes_stream();
        let mut cut = None;
        let mut batch = Vec::with_capacity(2 * BATCH);
        loop {
            let piece = body.next().await;
            let end = !matches!(piece, Some(Ok(_)));
            match piece {
                Some(Ok(bytes)) => batch.extend_from_slice(&bytes),
                Some(Err(e)) => cut = Some(network(e)),
                None => {}
            }
            if (batch.len() >= BATCH || end) && !batch.is_empty() {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(2 * BATCH));
                if tx.send(full).await.is_err() {
                    break;
                }
            }
            if end {
                break;
            }
        }
        drop(tx);
        let opened = writer
            .await
            .map_err(|e| CoreError::Io(format!("file writer failed: {e}")))?;
        let opener = match opened {
            Ok(o) => o,
            Err(e @ CoreError::File(_)) => {
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(e) = cut {
            // Keep what was written and checked: the next attempt resumes after it.
            return Err(e);
        }
        if let Err(e) = opener.finish() {
            let _ = std::fs::remove_file(&part);
            return Err(e.into());
        }
        let target = free_path(out_dir, &name);
        std::fs::rename(&part, &target).map_err(|e| io_error("writing", &target, e))?;
        if let Ok(dir) = std::fs::File::open(out_dir) {
            let _ = dir.sync_all();
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("report.pdf"), "report.pdf");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("a\\b\\c.txt"), "c.txt");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name(""), "file");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("bad\u{7}name\n.txt"), "badname.txt");
    }

    #[test]
    fn downloads_never_overwrite() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("a.txt"), b"x").expect("write");
        assert_eq!(free_path(&dir, "a.txt"), dir.join("a (2).txt"));
        std::fs::write(dir.join("a (2).txt"), b"x").expect("write");
        assert_eq!(free_path(&dir, "a.txt"), dir.join("a (3).txt"));
        assert_eq!(free_path(&dir, "b"), dir.join("b"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("missive-names-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }
}
