//! Sending and receiving files, on every target: a file is sealed while it is read and opened
//! while it arrives (`crate::file`), so memory holds a few pieces whatever its size. An
//! interrupted upload resumes where the server's copy ends, with the key it started with;
//! a cut download goes on from the last piece that arrived.
//!
//! Where the bytes come from is a [`FileSource`]: a browser's `File`, bytes in memory, or
//! (natively, `transfer_disk.rs`) a file on disk, which streams one request from a reading
//! thread. Elsewhere a file travels in pieces of [`PIECE_CHUNKS`] chunks, one request each:
//! the same requests a browser's `fetch` can make (it cannot stream a request body).

use std::future::Future;

use missive_proto::api::{BlobStatus, CreateBlobRequest};
use missive_proto::app::{AppBody, FileRef};
use missive_proto::B64;

use super::{Client, Transport};
use crate::error::CoreError;
use crate::file::{FileCipher, Layout, Opener, PendingUpload, Sealer, SEALED_CHUNK};
use crate::store::MessageRecord;

/// Chunks (64 KiB of the file each) in one piece: 8 MiB a request.
pub const PIECE_CHUNKS: u64 = 128;
/// Upload attempts in a row that make no progress before giving up.
const MAX_STALLED: usize = 4;
/// Upload attempts refused as over the server's rate limit (one second apart) before giving up.
const MAX_RATE_LIMITED_UPLOADS: usize = 120;
/// Attempts at one piece of a download, a growing pause apart, before giving up.
const PIECE_ATTEMPTS: u32 = 5;

/// Called with `(done, total)` bytes as a transfer advances.
#[cfg(not(target_arch = "wasm32"))]
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;
/// Called with `(done, total)` bytes as a transfer advances.
#[cfg(target_arch = "wasm32")]
pub type Progress = std::rc::Rc<dyn Fn(u64, u64)>;

/// A file sent.
#[derive(Clone, Debug)]
pub struct SentFile {
    pub message: MessageRecord,
    /// Bytes of the blob an earlier, interrupted attempt had already stored (0 if none).
    pub resumed_from: u64,
}

/// A file to send, wherever its bytes are.
pub trait FileSource {
    /// Its name, as the members will see it.
    fn name(&self) -> String;
    fn size(&self) -> u64;
    /// Where it is and when it last changed: an interrupted upload resumes only for the same
    /// place, size and time (otherwise two plaintexts would be sealed under one key).
    fn version(&self) -> (String, u64);
    /// `len` bytes from `offset` (the caller never asks past the end).
    fn read_at(&self, offset: u64, len: usize) -> impl Future<Output = Result<Vec<u8>, CoreError>>;
    /// Uploads the sealed file from where the server's copy ends (`status.received`); returns
    /// the server's last answer (none if it held everything) and the plaintext's digest (the
    /// whole file is read and hashed; what the server holds is not sent again).
    fn upload(
        &self,
        transport: &Transport,
        secret: &[u8],
        status: &BlobStatus,
        progress: Option<Progress>,
    ) -> impl Future<Output = Result<(Option<BlobStatus>, [u8; 32]), CoreError>> {
        transport.upload_pieces(self, secret, status, progress)
    }
}

/// A file held in memory: what a browser forwards, and what tests send.
pub struct MemoryFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl FileSource for MemoryFile {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Bytes in memory are gone with the process: their upload never resumes in another.
    fn version(&self) -> (String, u64) {
        (format!("memory:{}", self.name), crate::now_ms())
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>, CoreError> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        self.bytes
            .get(start..start.saturating_add(len))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| CoreError::Io(format!("{} is shorter than announced", self.name)))
    }
}

/// A media type from a file name's extension (the receiver only uses it to present the file).
pub fn media_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" | "md" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "zip" => "application/zip",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

/// Where a received file goes, which its conversation's label may forbid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Written to disk, where any program can read it.
    Disk,
    /// Shown inside the app (a browser keeps it in memory).
    App,
}

impl Transport {
    pub(super) async fn blob_status(&self, blob: &str) -> Result<BlobStatus, CoreError> {
        self.get(&format!("/v1/blobs/{blob}/status")).await
    }

    /// [`FileSource::upload`] in pieces: each piece is read, sealed and sent as one request,
    /// which the server stores durably before it answers.
    pub async fn upload_pieces<S: FileSource + ?Sized>(
        &self,
        source: &S,
        secret: &[u8],
        status: &BlobStatus,
        progress: Option<Progress>,
    ) -> Result<(Option<BlobStatus>, [u8; 32]), CoreError> {
        let mut sealer = Sealer::new(secret, source.size())?;
        let layout = *sealer.layout();
        if layout.blob_len() != status.size {
            return Err(CoreError::Usage(
                "the server's blob does not match this file; start the upload again".into(),
            ));
        }
        let total = status.size;
        let from = status.received.min(total);
        // Chunks the server holds completely are only hashed.
        let held = if from == total {
            layout.chunks
        } else {
            from / SEALED_CHUNK as u64
        };
        let mut offset = 0u64;
        while sealer.position() < held {
            let first = sealer.position();
            let count = (held - first).min(PIECE_CHUNKS);
            let plain = read_chunks(source, &layout, first, count, &mut offset).await?;
            let mut rest = &plain[..];
            for i in first..first + count {
                let (chunk, after) = rest.split_at(layout.file_bytes_in(i));
                sealer.skip(chunk)?;
                rest = after;
            }
        }
        // The rest goes out a piece at a time; the first may start inside a chunk.
        let mut skip = (from - layout.sealed_offset(sealer.position()).min(from)) as usize;
        let mut last = None;
        while !sealer.done() {
            let first = sealer.position();
            let count = (layout.chunks - first).min(PIECE_CHUNKS);
            let plain = read_chunks(source, &layout, first, count, &mut offset).await?;
            let mut piece = Vec::with_capacity(plain.len() + count as usize * crate::file::TAG);
            sealer.seal_chunks(count, &plain, &mut piece)?;
            drop(plain);
            let at = layout.sealed_offset(first) + skip as u64;
            piece.drain(..skip);
            skip = 0;
            let end = at + piece.len() as u64;
            let answer = self.patch_piece(&status.id, at, piece).await?;
            if answer.received != end {
                return Err(CoreError::Network(format!(
                    "the server stored {} of the file's {total} bytes, not {end}",
                    answer.received
                )));
            }
            last = Some(answer);
            if let Some(p) = &progress {
                p(end, total);
            }
        }
        Ok((last, sealer.digest()))
    }

    /// Sends the blob bytes from `at` in one request.
    async fn patch_piece(
        &self,
        blob: &str,
        at: u64,
        piece: Vec<u8>,
    ) -> Result<BlobStatus, CoreError> {
        let url = self.url(&format!("/v1/blobs/{blob}"));
        let piece = bytes::Bytes::from(piece);
        let resp = self
            .send(|| {
                self.http
                    .patch(&url)
                    .header("upload-offset", at)
                    .header("content-type", "application/octet-stream")
                    .body(piece.clone())
            })
            .await?;
        Self::answer(resp).await
    }

    /// The blob's bytes from `start` to `end` (exclusive), in one request.
    async fn fetch_range(&self, blob: &str, start: u64, end: u64) -> Result<Vec<u8>, CoreError> {
        let url = self.url(&format!("/v1/blobs/{blob}"));
        let range = format!("bytes={start}-{}", end - 1);
        let resp = self
            .send(|| self.http.get(&url).header("range", &range))
            .await?;
        if resp.status().as_u16() != 206 {
            return Err(Self::answer::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or_else(|| {
                    CoreError::Network("the server did not send the expected byte range".into())
                }));
        }
        let bytes = resp.bytes().await.map_err(super::network)?;
        if bytes.len() as u64 != end - start {
            return Err(CoreError::Network(format!(
                "the server sent {} bytes of a {}-byte range",
                bytes.len(),
                end - start
            )));
        }
        Ok(bytes.to_vec())
    }
}

/// The file bytes of chunks `first..first + count`, read from `*offset` (advanced past them).
async fn read_chunks<S: FileSource + ?Sized>(
    source: &S,
    layout: &Layout,
    first: u64,
    count: u64,
    offset: &mut u64,
) -> Result<Vec<u8>, CoreError> {
    let len: usize = (first..first + count)
        .map(|i| layout.file_bytes_in(i))
        .sum();
    let plain = if len == 0 {
        Vec::new()
    } else {
        source.read_at(*offset, len).await?
    };
    if plain.len() != len {
        return Err(CoreError::Io(format!(
            "{} changed while it was being sent",
            source.name()
        )));
    }
    *offset += len as u64;
    Ok(plain)
}

impl Client {
    /// Encrypts and uploads a file, then sends it to the conversation. An interrupted upload of
    /// the same unchanged file to the same conversation resumes where the server's copy ends.
    pub async fn send_file_from<S: FileSource>(
        &mut self,
        conversation: &str,
        source: &S,
        progress: Option<Progress>,
    ) -> Result<SentFile, CoreError> {
        self.send_file_as(conversation, source, progress, false)
            .await
    }

    /// [`Client::send_file_from`], the message marked forwarded or not.
    pub(super) async fn send_file_as<S: FileSource>(
        &mut self,
        conversation: &str,
        source: &S,
        progress: Option<Progress>,
        forwarded: bool,
    ) -> Result<SentFile, CoreError> {
        let record = self.conversation(conversation)?;
        if record.left {
            return Err(CoreError::Usage(
                "you are no longer a member of this conversation".into(),
            ));
        }
        let name = source.name();
        let size = source.size();
        let (place, modified) = source.version();
        let layout = Layout::new(size)?;
        let group_id = hex::decode(&record.id)
            .map_err(|_| CoreError::Storage("conversation id is not hex".into()))?;
        let transport = self.transport();
        let version = PendingUpload {
            conversation: conversation.to_owned(),
            path: place,
            size,
            modified_ns: modified,
            blob: String::new(),
            secret: B64(Vec::new()),
        };

        let resumable = self.account.pending_upload()?.filter(|p| {
            p.conversation == version.conversation
                && p.path == version.path
                && p.size == size
                && p.modified_ns == version.modified_ns
        });
        let mut pending = match resumable {
            Some(p) => p,
            None => self.start_upload(&version, &group_id, layout).await?,
        };

        let mut stalled = 0;
        let mut rate_limited_waits = 0;
        let mut resumed_from = None;
        let digest = loop {
            let status = match transport.blob_status(&pending.blob).await {
                Ok(s) => s,
                // Expired or deleted meanwhile: start over with a new blob (and a new key).
                Err(e) if e.server_code() == Some(missive_proto::ErrorCode::NotFound) => {
                    pending = self.start_upload(&version, &group_id, layout).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let before = status.received;
            resumed_from.get_or_insert(before);
            match source
                .upload(
                    &transport,
                    pending.secret.as_bytes(),
                    &status,
                    progress.clone(),
                )
                .await
            {
                Ok((_, digest)) if status.complete => break digest,
                Ok((Some(done), digest)) if done.complete => break digest,
                Ok(_) => {}
                // Over the server's rate limit: wait and go on from what it stored.
                Err(CoreError::Server { status: 429, .. }) => {
                    rate_limited_waits += 1;
                    if rate_limited_waits > MAX_RATE_LIMITED_UPLOADS {
                        return Err(CoreError::Network(
                            "the server keeps refusing the upload as too frequent; send the \
                             same file again later to resume"
                                .into(),
                        ));
                    }
                    super::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                Err(e @ CoreError::Server { status, .. }) if status != 409 && status < 500 => {
                    return Err(e)
                }
                Err(e @ (CoreError::File(_) | CoreError::Io(_) | CoreError::Usage(_))) => {
                    return Err(e)
                }
                Err(_) => {}
            }
            let now = transport.blob_status(&pending.blob).await?.received;
            stalled = if now > before { 0 } else { stalled + 1 };
            if stalled >= MAX_STALLED {
                return Err(CoreError::Network(format!(
                    "the upload makes no progress ({now} of {} bytes stored); send the same \
                     file again to resume",
                    layout.blob_len()
                )));
            }
        };

        let file = FileRef {
            blob: pending.blob.clone(),
            secret: pending.secret.clone(),
            blake3: hex::encode(digest),
            size,
            media_type: media_type(&name).to_owned(),
            name,
        };
        let mut message = crate::account::new_message(AppBody::File { file });
        message.forwarded = forwarded;
        let (sent, _) = self.send_message(conversation, message, None).await?;
        self.account.set_pending_upload(None)?;
        let message = sent.ok_or_else(|| CoreError::Mls("a file message left no record".into()))?;
        Ok(SentFile {
            message,
            resumed_from: resumed_from.unwrap_or(0),
        })
    }

    /// A new blob for `version` of a file, its key saved before anything sealed with it leaves.
    async fn start_upload(
        &mut self,
        version: &PendingUpload,
        group_id: &[u8],
        layout: Layout,
    ) -> Result<PendingUpload, CoreError> {
        // The server keeps the blob no longer than its message lives (a minute more: the
        // message is accepted after the upload ends).
        let ttl = self
            .account
            .lifetime(&version.conversation)?
            .map(|s| s + 60);
        let status: BlobStatus = self
            .transport()
            .post(
                "/v1/blobs",
                &CreateBlobRequest {
                    group_id: B64(group_id.to_vec()),
                    size: layout.blob_len(),
                    ttl,
                },
            )
            .await?;
        let pending = PendingUpload {
            blob: status.id,
            secret: B64(FileCipher::new_secret().to_vec()),
            ..version.clone()
        };
        // The key is stored before any byte sealed with it leaves.
        self.account.set_pending_upload(Some(&pending))?;
        Ok(pending)
    }

    /// The file a message shared (`id`: the message's or the file's id, or a unique prefix),
    /// if its conversation's label lets it go to `destination`, and an opener for its blob.
    pub(super) fn file_to_open(
        &mut self,
        id: &str,
        destination: Destination,
    ) -> Result<(FileRef, Opener), CoreError> {
        let message = crate::lookup::message(self.account.store(), id)?;
        if let Some(label) = self.conversation(&message.conversation)?.label {
            let allowed = match destination {
                Destination::Disk => label.downloads.to_disk(),
                Destination::App => label.downloads.in_app(),
            };
            if !allowed {
                return Err(CoreError::Usage(format!(
                    "the conversation is labelled {:?}: its files {}",
                    label.name,
                    match label.downloads {
                        missive_proto::api::Downloads::InApp => "can be viewed in the app only",
                        _ => "cannot be downloaded",
                    }
                )));
            }
        }
        let file = message
            .file
            .ok_or_else(|| CoreError::Usage(format!("message {id} shares no file")))?;
        let digest: [u8; 32] = hex::decode(&file.blake3)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| CoreError::Usage("the file's digest is malformed".into()))?;
        let opener = Opener::new(file.secret.as_bytes(), file.size, digest)?;
        Ok((*file, opener))
    }

    /// Downloads and decrypts a received file in pieces, handing its plaintext to `out` as
    /// each chunk authenticates; a piece cut short is fetched again. `out` has the whole file
    /// only when this returns `Ok` (the digest is checked last): until then, nothing it was
    /// given may be shown or kept.
    pub async fn receive_file(
        &mut self,
        id: &str,
        destination: Destination,
        mut out: impl FnMut(&[u8]) -> Result<(), CoreError>,
        progress: Option<Progress>,
    ) -> Result<FileRef, CoreError> {
        let (file, mut opener) = self.file_to_open(id, destination)?;
        let layout = *opener.layout();
        let total = layout.blob_len();
        let transport = self.transport();
        while opener.position() < layout.chunks {
            let first = opener.position();
            let count = (layout.chunks - first).min(PIECE_CHUNKS);
            let start = layout.sealed_offset(first);
            let end = (start + count * SEALED_CHUNK as u64).min(total);
            let mut attempt = 0;
            let piece = loop {
                match transport.fetch_range(&file.blob, start, end).await {
                    Ok(piece) => break piece,
                    Err(CoreError::Network(_)) if attempt + 1 < PIECE_ATTEMPTS => {
                        attempt += 1;
                        super::sleep(std::time::Duration::from_millis(250 << attempt)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            opener
                .push(&piece, |plain| {
                    out(plain).map_err(|e| std::io::Error::other(e.to_string()))
                })
                .map_err(|e| match e {
                    crate::file::OpenError::File(f) => CoreError::File(f),
                    crate::file::OpenError::Io(e) => CoreError::Io(e.to_string()),
                })?;
            if let Some(p) = &progress {
                p(end, total);
            }
        }
        opener.finish()?;
        Ok(file)
    }
}
