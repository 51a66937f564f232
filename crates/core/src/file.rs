//! Attachment encryption, "missive-file v1" (our construction, specified in ARCHITECTURE.md).
//!
//! A file gets a fresh random 32-byte secret. HKDF-SHA256 with the label
//! `missive/v1/file-encryption\0` turns it into a ChaCha20-Poly1305 key and a 7-byte nonce
//! prefix. The plaintext is padded with zeroes to a size bucket (Padmé), cut into 64 KiB chunks,
//! and each chunk is sealed with the STREAM construction (`aead::stream::StreamBE32`): its nonce
//! is the prefix, the chunk index (32-bit big endian) and a last-chunk flag. Truncation,
//! reordering, chunk swaps and extension all make some chunk fail to open.
//!
//! The sender also announces the plaintext's BLAKE3 digest, checked after the last chunk. The
//! AEAD alone authenticates the chunks under the file key; the digest, which every recipient
//! receives in the same MLS message, also binds that key to one plaintext (ChaCha20-Poly1305 is
//! not key-committing, so a dishonest sender could otherwise craft a blob that opens to different
//! files under the keys it sends to different members). BLAKE3 rather than SHA-256 because it
//! costs a quarter as much: on a 2-core server the digest was half the client's crypto time.
//!
//! Sans-I/O: the caller reads and writes bytes; this module seals and opens chunks, by index,
//! so that uploads resume and downloads fetch ranges from any chunk.

use chacha20poly1305::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use sha2::Sha256;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Authentication tag appended to every chunk.
pub const TAG: usize = 16;
/// A sealed full chunk.
pub const SEALED_CHUNK: usize = CHUNK + TAG;
/// Plaintext sizes are padded to at least this, so small files all look alike.
pub const MIN_PADDED: u64 = 4096;
/// Largest file the format carries (1 TiB; the server's own limit is lower).
pub const MAX_FILE: u64 = 1 << 40;

const LABEL: &[u8] = b"missive/v1/file-encryption\0";

/// An upload in progress, kept in the account store so that it resumes after a restart with
/// the same secret (so the same ciphertext) for the bytes the server already holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingUpload {
    pub conversation: String,
    /// The file's absolute path, size and modification time (ns): a file changed since must
    /// not be resumed, or two plaintexts would share one key and nonce.
    pub path: String,
    pub size: u64,
    pub modified_ns: u64,
    pub blob: String,
    pub secret: missive_proto::B64,
}

/// Why a file could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("file too large for the format ({0} bytes)")]
    TooLarge(u64),
    #[error("chunk {0} does not authenticate: the blob was altered, truncated, reordered or the key is wrong")]
    Tampered(u64),
    #[error("the blob has {actual} bytes, the sender announced {expected}")]
    WrongLength { expected: u64, actual: u64 },
    #[error("the padding of the last chunk is not zero")]
    BadPadding,
    #[error("the file's digest differs from the one its sender announced")]
    DigestMismatch,
    #[error("chunk {index} has {actual} bytes, expected {expected}")]
    ChunkSize {
        index: u64,
        expected: usize,
        actual: usize,
    },
    #[error("the file secret must be 32 bytes")]
    BadSecret,
}

/// The padded size of a `size`-byte file: Padmé (Nikitin et al., PETS 2019), which leaks
/// O(log log size) bits of the size at under 12 % overhead, with a 4 KiB floor.
pub fn padded_len(size: u64) -> u64 {
    let l = size.max(MIN_PADDED);
    let e = 63 - u64::from(l.leading_zeros()); // floor(log2 l)
    let s = 64 - u64::from(e.leading_zeros()); // floor(log2 e) + 1
    let mask = (1u64 << (e - s)) - 1;
    (l + mask) & !mask
}

/// Where a file's bytes sit in its padded plaintext and in its blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The file's real size.
    pub size: u64,
    /// The padded plaintext size.
    pub padded: u64,
    /// Number of chunks (at least one).
    pub chunks: u64,
}

impl Layout {
    pub fn new(size: u64) -> Result<Self, FileError> {
        if size > MAX_FILE {
            return Err(FileError::TooLarge(size));
        }
        let padded = padded_len(size);
        Ok(Layout {
            size,
            padded,
            chunks: padded.div_ceil(CHUNK as u64),
        })
    }

    /// The blob's size: the padded plaintext plus a tag per chunk.
    pub fn blob_len(&self) -> u64 {
        self.padded + self.chunks * TAG as u64
    }

    /// Plaintext bytes in chunk `index` (padding included).
    pub fn plain_len(&self, index: u64) -> usize {
        if index + 1 < self.chunks {
            CHUNK
        } else {
            (self.padded - (self.chunks - 1) * CHUNK as u64) as usize
        }
    }

    /// Bytes of chunk `index` in the blob.
    pub fn sealed_len(&self, index: u64) -> usize {
        self.plain_len(index) + TAG
    }

    /// Where chunk `index` starts in the blob.
    pub fn sealed_offset(&self, index: u64) -> u64 {
        index * SEALED_CHUNK as u64
    }

    /// Bytes of the real file (not padding) in chunk `index`.
    pub fn file_bytes_in(&self, index: u64) -> usize {
        let start = index * CHUNK as u64;
        self.size.saturating_sub(start).min(CHUNK as u64) as usize
    }
}

/// Seals and opens the chunks of one file.
pub struct FileCipher {
    stream: StreamBE32<ChaCha20Poly1305>,
    layout: Layout,
}

impl FileCipher {
    /// A fresh random file secret.
    pub fn new_secret() -> [u8; 32] {
        rand::random()
    }

    pub fn new(secret: &[u8], layout: Layout) -> Result<Self, FileError> {
        if secret.len() != 32 {
            return Err(FileError::BadSecret);
        }
        let mut okm = [0u8; 39];
        hkdf::Hkdf::<Sha256>::new(None, secret)
            .expand(LABEL, &mut okm)
            .map_err(|_| FileError::BadSecret)?;
        let aead =
            ChaCha20Poly1305::new_from_slice(&okm[..32]).map_err(|_| FileError::BadSecret)?;
        let stream = StreamBE32::from_aead(aead, okm[32..].into());
        Ok(FileCipher { stream, layout })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn position(&self, index: u64) -> Result<(u32, bool), FileError> {
        let position = u32::try_from(index).map_err(|_| FileError::TooLarge(self.layout.size))?;
        Ok((position, index + 1 == self.layout.chunks))
    }

    /// Seals chunk `index` in place: `buf` holds its padded plaintext and gets the tag appended.
    pub fn seal(&self, index: u64, buf: &mut Vec<u8>) -> Result<(), FileError> {
        let expected = self.layout.plain_len(index);
        if buf.len() != expected || index >= self.layout.chunks {
            return Err(FileError::ChunkSize {
                index,
                expected,
                actual: buf.len(),
            });
        }
        let (position, last) = self.position(index)?;
        self.stream
            .encrypt_in_place(position, last, b"", buf)
            .map_err(|_| FileError::TooLarge(self.layout.size))
    }

    /// Seals consecutive chunks from `first`: `file` holds their file bytes back to back,
    /// `out` receives exactly their sealed bytes.
    fn seal_range(&self, first: u64, file: &[u8], out: &mut [u8]) -> Result<(), FileError> {
        let (mut file, mut out) = (file, out);
        let mut scratch = Vec::with_capacity(SEALED_CHUNK);
        let mut index = first;
        while !out.is_empty() {
            let take = self.layout.file_bytes_in(index);
            scratch.clear();
            scratch.extend_from_slice(&file[..take]);
            scratch.resize(self.layout.plain_len(index), 0);
            self.seal(index, &mut scratch)?;
            let (slot, rest) = out.split_at_mut(scratch.len());
            slot.copy_from_slice(&scratch);
            out = rest;
            file = &file[take..];
            index += 1;
        }
        Ok(())
    }

    /// Opens consecutive whole chunks from `first` (`sealed` holds exactly them); returns
    /// their file bytes back to back.
    fn open_range(&self, first: u64, sealed: &[u8]) -> Result<Vec<u8>, FileError> {
        let mut plain = Vec::with_capacity(sealed.len());
        let mut scratch = Vec::with_capacity(SEALED_CHUNK);
        let mut rest = sealed;
        let mut index = first;
        while !rest.is_empty() {
            let len = self.layout.sealed_len(index);
            scratch.clear();
            scratch.extend_from_slice(&rest[..len]);
            self.open(index, &mut scratch)?;
            plain.extend_from_slice(&scratch);
            rest = &rest[len..];
            index += 1;
        }
        Ok(plain)
    }

    /// Opens chunk `index` in place and cuts it to the file's bytes (the padding is checked to
    /// be zero and dropped).
    pub fn open(&self, index: u64, buf: &mut Vec<u8>) -> Result<(), FileError> {
        if index >= self.layout.chunks {
            return Err(FileError::Tampered(index));
        }
        let expected = self.layout.sealed_len(index);
        if buf.len() != expected {
            return Err(FileError::ChunkSize {
                index,
                expected,
                actual: buf.len(),
            });
        }
        let (position, last) = self.position(index)?;
        self.stream
            .decrypt_in_place(position, last, b"", buf)
            .map_err(|_| FileError::Tampered(index))?;
        let keep = self.layout.file_bytes_in(index);
        if buf[keep..].iter().any(|b| *b != 0) {
            return Err(FileError::BadPadding);
        }
        buf.truncate(keep);
        Ok(())
    }
}

/// Seals a file read sequentially, chunk by chunk, and hashes its plaintext on the way.
pub struct Sealer {
    cipher: FileCipher,
    next: u64,
    hash: blake3::Hasher,
    /// Batches are shared with a second thread (never in a browser: see [`side_by_side`]).
    threads: bool,
}

/// Whether batches of chunks are shared with a second thread: natively yes; not on wasm32,
/// where a thread is a Worker and `std::thread` panics. The format is the same either way.
const THREADS: bool = cfg!(not(target_arch = "wasm32"));

/// Runs `helper` beside `mine`, on a second thread when `threads`, else one after the other
/// on this one; the helper's result is `None` if its thread panicked.
fn side_by_side<H: Send, M>(
    threads: bool,
    helper: impl FnOnce() -> H + Send,
    mine: impl FnOnce() -> M,
) -> (Option<H>, M) {
    if !threads {
        let theirs = helper();
        return (Some(theirs), mine());
    }
    std::thread::scope(|scope| {
        let theirs = scope.spawn(helper);
        let mine = mine();
        (theirs.join().ok(), mine)
    })
}

impl Sealer {
    /// A sealer starting at chunk 0.
    pub fn new(secret: &[u8], size: u64) -> Result<Self, FileError> {
        Ok(Sealer {
            cipher: FileCipher::new(secret, Layout::new(size)?)?,
            next: 0,
            hash: blake3::Hasher::new(),
            threads: THREADS,
        })
    }

    pub fn layout(&self) -> &Layout {
        self.cipher.layout()
    }

    /// Chunks sealed so far.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// How many file bytes the next chunk takes (0 when only padding is left).
    pub fn wants(&self) -> usize {
        self.layout().file_bytes_in(self.next)
    }

    /// Hashes a chunk's file bytes without sealing it (resuming past chunks already stored).
    pub fn skip(&mut self, file_bytes: &[u8]) -> Result<(), FileError> {
        self.check(file_bytes)?;
        self.hash.update(file_bytes);
        self.next += 1;
        Ok(())
    }

    /// Seals the next chunk: `buf` holds exactly [`Sealer::wants`] file bytes and becomes the
    /// sealed chunk. Returns `false` (and leaves `buf` alone) once every chunk is sealed.
    pub fn seal_next(&mut self, buf: &mut Vec<u8>) -> Result<bool, FileError> {
        if self.next >= self.layout().chunks {
            return Ok(false);
        }
        self.check(buf)?;
        self.hash.update(&buf[..]);
        buf.resize(self.layout().plain_len(self.next), 0);
        self.cipher.seal(self.next, buf)?;
        self.next += 1;
        Ok(true)
    }

    /// Seals the next `count` chunks, whose file bytes are `file` (back to back), appending
    /// them to `out`. The work is shared with a second thread (natively): it seals the first
    /// part while this one hashes everything and seals the rest.
    pub fn seal_chunks(
        &mut self,
        count: u64,
        file: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FileError> {
        let layout = *self.layout();
        let first = self.next;
        let end = first + count;
        let expected: usize = (first..end).map(|i| layout.file_bytes_in(i)).sum();
        if end > layout.chunks || file.len() != expected {
            return Err(FileError::ChunkSize {
                index: first,
                expected,
                actual: file.len(),
            });
        }
        let at = out.len();
        let sealed: usize = (first..end).map(|i| layout.sealed_len(i)).sum();
        out.resize(at + sealed, 0);
        // The helper takes about 5/8 of the chunks: hashing costs this thread about a quarter
        // of what sealing everything costs.
        let mid = first + (count * 5).div_ceil(8);
        let file_mid: usize = (first..mid).map(|i| layout.file_bytes_in(i)).sum();
        let out_mid: usize = (first..mid).map(|i| layout.sealed_len(i)).sum();
        let (file_a, file_b) = file.split_at(file_mid);
        let (out_a, out_b) = out[at..].split_at_mut(out_mid);
        let cipher = &self.cipher;
        let hash = &mut self.hash;
        let (theirs, mine) = side_by_side(
            self.threads && mid > first,
            || cipher.seal_range(first, file_a, out_a),
            || {
                hash.update(file);
                cipher.seal_range(mid, file_b, out_b)
            },
        );
        mine.and(theirs.unwrap_or(Err(FileError::TooLarge(layout.size))))?;
        self.next = end;
        Ok(())
    }

    fn check(&self, file_bytes: &[u8]) -> Result<(), FileError> {
        let expected = self.wants();
        if file_bytes.len() != expected || self.next >= self.layout().chunks {
            return Err(FileError::ChunkSize {
                index: self.next,
                expected,
                actual: file_bytes.len(),
            });
        }
        Ok(())
    }

    /// Whether every chunk is sealed.
    pub fn done(&self) -> bool {
        self.next >= self.layout().chunks
    }

    /// The plaintext's BLAKE3 digest, once every chunk has been sealed or skipped.
    pub fn digest(self) -> [u8; 32] {
        *self.hash.finalize().as_bytes()
    }
}

/// Opens a blob streamed in order, in pieces of any size, and checks the file's digest at the
/// end. Nothing it returns is trusted until [`Opener::finish`] succeeds.
pub struct Opener {
    cipher: FileCipher,
    next: u64,
    buf: Vec<u8>,
    hash: blake3::Hasher,
    expected_digest: [u8; 32],
    /// Batches are shared with a second thread (never in a browser: see [`side_by_side`]).
    threads: bool,
}

impl Opener {
    /// An opener for a file of `size` bytes whose plaintext has BLAKE3 digest `digest`.
    pub fn new(secret: &[u8], size: u64, digest: [u8; 32]) -> Result<Self, FileError> {
        Ok(Opener {
            cipher: FileCipher::new(secret, Layout::new(size)?)?,
            next: 0,
            buf: Vec::with_capacity(SEALED_CHUNK),
            hash: blake3::Hasher::new(),
            expected_digest: digest,
            threads: THREADS,
        })
    }

    pub fn layout(&self) -> &Layout {
        self.cipher.layout()
    }

    /// Chunks opened so far; the blob continues at `layout().sealed_offset(position())`.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Hashes the plaintext of the next chunk, opened earlier (resuming a download).
    pub fn skip(&mut self, file_bytes: &[u8]) -> Result<(), FileError> {
        let expected = self.layout().file_bytes_in(self.next);
        if file_bytes.len() != expected || self.next >= self.layout().chunks || !self.buf.is_empty()
        {
            return Err(FileError::ChunkSize {
                index: self.next,
                expected,
                actual: file_bytes.len(),
            });
        }
        self.hash.update(file_bytes);
        self.next += 1;
        Ok(())
    }

    /// Feeds blob bytes; calls `out` with the plaintext of every chunk completed.
    pub fn push(
        &mut self,
        mut bytes: &[u8],
        mut out: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), OpenError> {
        while !bytes.is_empty() {
            if self.buf.is_empty() {
                let (count, len) = self.whole_chunks_in(bytes.len());
                if count >= 2 {
                    self.open_chunks(count, &bytes[..len], &mut out)?;
                    bytes = &bytes[len..];
                    continue;
                }
            }
            if self.next >= self.layout().chunks {
                return Err(FileError::WrongLength {
                    expected: self.layout().blob_len(),
                    actual: self.layout().blob_len() + bytes.len() as u64,
                }
                .into());
            }
            let want = self.layout().sealed_len(self.next) - self.buf.len();
            let take = want.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() == self.layout().sealed_len(self.next) {
                self.cipher.open(self.next, &mut self.buf)?;
                self.hash.update(&self.buf);
                out(&self.buf).map_err(OpenError::Io)?;
                self.buf.clear();
                self.next += 1;
            }
        }
        Ok(())
    }

    /// How many whole chunks from the next one fit in `available` bytes, and their length.
    fn whole_chunks_in(&self, available: usize) -> (u64, usize) {
        let layout = self.layout();
        let (mut count, mut len) = (0u64, 0usize);
        while self.next + count < layout.chunks {
            let next = layout.sealed_len(self.next + count);
            if len + next > available {
                break;
            }
            len += next;
            count += 1;
        }
        (count, len)
    }

    /// Opens `count` whole chunks, shared with a second thread (natively): it opens the second
    /// part while this one opens, hashes and hands out the first, then the second.
    fn open_chunks(
        &mut self,
        count: u64,
        sealed: &[u8],
        out: &mut impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), OpenError> {
        let layout = *self.layout();
        let first = self.next;
        let mid = first + count / 2;
        let split: usize = (first..mid).map(|i| layout.sealed_len(i)).sum();
        let (part_a, part_b) = sealed.split_at(split);
        let cipher = &self.cipher;
        let hash = &mut self.hash;
        let mut scratch = std::mem::take(&mut self.buf);
        let (plain_b, first_part) = side_by_side(
            self.threads,
            || cipher.open_range(mid, part_b),
            || -> Result<(), OpenError> {
                let mut rest = part_a;
                for index in first..mid {
                    let len = layout.sealed_len(index);
                    scratch.clear();
                    scratch.extend_from_slice(&rest[..len]);
                    rest = &rest[len..];
                    cipher.open(index, &mut scratch)?;
                    hash.update(&scratch);
                    out(&scratch).map_err(OpenError::Io)?;
                }
                Ok(())
            },
        );
        scratch.clear();
        self.buf = scratch;
        first_part?;
        let plain_b = plain_b.unwrap_or(Err(FileError::Tampered(mid)))?;
        hash.update(&plain_b);
        for piece in plain_b.chunks(CHUNK) {
            out(piece).map_err(OpenError::Io)?;
        }
        self.next = first + count;
        Ok(())
    }

    /// Ends the stream: every chunk must have arrived and the digest must match.
    pub fn finish(self) -> Result<(), FileError> {
        if self.next != self.layout().chunks || !self.buf.is_empty() {
            let done = self.layout().sealed_offset(self.next) + self.buf.len() as u64;
            return Err(FileError::WrongLength {
                expected: self.layout().blob_len(),
                actual: done,
            });
        }
        let digest: [u8; 32] = *self.hash.finalize().as_bytes();
        if digest != self.expected_digest {
            return Err(FileError::DigestMismatch);
        }
        Ok(())
    }
}

/// A failure while opening a stream: the blob's or the sink's.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("writing the file: {0}")]
    Io(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_all(secret: &[u8], data: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let mut sealer = Sealer::new(secret, data.len() as u64).expect("sealer");
        let mut blob = Vec::new();
        let mut at = 0;
        let mut buf = Vec::new();
        while !sealer.done() {
            let n = sealer.wants();
            buf.clear();
            buf.extend_from_slice(&data[at..at + n]);
            at += n;
            assert!(sealer.seal_next(&mut buf).expect("seal"));
            blob.extend_from_slice(&buf);
        }
        assert_eq!(blob.len() as u64, sealer.layout().blob_len());
        (blob, sealer.digest())
    }

    /// Opens `blob` fed in odd pieces, as a network delivers them, and again in one piece
    /// (which takes the two-thread path); both must agree.
    fn open_all(
        secret: &[u8],
        size: u64,
        digest: [u8; 32],
        blob: &[u8],
    ) -> Result<Vec<u8>, FileError> {
        let small = open_in_pieces(secret, size, digest, blob, 7919, true);
        let whole = open_in_pieces(secret, size, digest, blob, blob.len().max(1), true);
        assert_eq!(small, whole, "sequential and parallel opening agree");
        // In a browser batches are opened on one thread: the same bytes, or the same refusal.
        let one_thread = open_in_pieces(secret, size, digest, blob, blob.len().max(1), false);
        assert_eq!(small, one_thread, "opening on one thread agrees");
        small
    }

    fn open_in_pieces(
        secret: &[u8],
        size: u64,
        digest: [u8; 32],
        blob: &[u8],
        piece: usize,
        threads: bool,
    ) -> Result<Vec<u8>, FileError> {
        let mut opener = Opener::new(secret, size, digest)?;
        opener.threads = threads;
        let mut out = Vec::new();
        for piece in blob.chunks(piece) {
            opener
                .push(piece, |b| {
                    out.extend_from_slice(b);
                    Ok(())
                })
                .map_err(|e| match e {
                    OpenError::File(f) => f,
                    OpenError::Io(_) => unreachable!("the sink never fails"),
                })?;
        }
        opener.finish()?;
        Ok(out)
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn padme_buckets() {
        assert_eq!(padded_len(0), 4096);
        assert_eq!(padded_len(4096), 4096);
        assert_eq!(padded_len(4097), 4352);
        // 1 GiB is a bucket of its own; one byte more pads to the next 32 MiB.
        assert_eq!(padded_len(1 << 30), 1 << 30);
        assert_eq!(padded_len((1 << 30) + 1), (1 << 30) + (32 << 20));
        for size in [1u64, 5000, 70_000, 1 << 20, 123_456_789] {
            let p = padded_len(size);
            let floor = size.max(MIN_PADDED);
            assert!(
                p >= floor && (p - floor) as f64 <= 0.12 * floor as f64,
                "{size} -> {p}"
            );
        }
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        let secret = FileCipher::new_secret();
        for len in [0, 1, 4096, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data = sample(len);
            let (blob, digest) = seal_all(&secret, &data);
            assert_eq!(open_all(&secret, len as u64, digest, &blob), Ok(data));
        }
    }

    #[test]
    fn tampering_is_detected() {
        let secret = FileCipher::new_secret();
        let data = sample(3 * CHUNK + 100);
        let (blob, digest) = seal_all(&secret, &data);
        let size = data.len() as u64;

        let mut flipped = blob.clone();
        flipped[CHUNK + 40] ^= 1;
        assert_eq!(
            open_all(&secret, size, digest, &flipped),
            Err(FileError::Tampered(1))
        );

        // Cut at a chunk boundary: the new last chunk was not sealed as last.
        let truncated = &blob[..2 * SEALED_CHUNK];
        assert!(open_all(&secret, size, digest, truncated).is_err());
        let layout = Layout::new(size).expect("layout");
        let mut short = Opener::new(&secret, size, digest).expect("opener");
        short
            .push(truncated, |_| Ok(()))
            .expect("two whole chunks open");
        assert_eq!(
            short.finish(),
            Err(FileError::WrongLength {
                expected: layout.blob_len(),
                actual: 2 * SEALED_CHUNK as u64
            })
        );

        let mut swapped = blob.clone();
        let (a, b) = swapped.split_at_mut(SEALED_CHUNK);
        a.swap_with_slice(&mut b[..SEALED_CHUNK]);
        assert_eq!(
            open_all(&secret, size, digest, &swapped),
            Err(FileError::Tampered(0))
        );

        let wrong = FileCipher::new_secret();
        assert_eq!(
            open_all(&wrong, size, digest, &blob),
            Err(FileError::Tampered(0))
        );

        let mut extended = blob.clone();
        extended.extend_from_slice(&[0; 10]);
        assert!(matches!(
            open_all(&secret, size, digest, &extended),
            Err(FileError::WrongLength { .. })
        ));

        // A sender that lies about the digest is caught too.
        assert_eq!(
            open_all(&secret, size, [0; 32], &blob),
            Err(FileError::DigestMismatch)
        );
    }

    #[test]
    fn sealing_in_batches_on_one_or_two_threads_gives_the_same_blob() {
        let secret = FileCipher::new_secret();
        for (len, threads) in [0, 5 * CHUNK + 3, 40 * CHUNK]
            .into_iter()
            .flat_map(|len| [(len, true), (len, false)])
        {
            let data = sample(len);
            let (expected, digest) = seal_all(&secret, &data);
            let mut sealer = Sealer::new(&secret, len as u64).expect("sealer");
            sealer.threads = threads;
            let mut blob = Vec::new();
            let mut at = 0;
            while !sealer.done() {
                let first = sealer.position();
                let count = (sealer.layout().chunks - first).min(16);
                let bytes: usize = (first..first + count)
                    .map(|i| sealer.layout().file_bytes_in(i))
                    .sum();
                sealer
                    .seal_chunks(count, &data[at..at + bytes], &mut blob)
                    .expect("seal");
                at += bytes;
            }
            assert_eq!(sealer.digest(), digest);
            assert!(blob == expected, "{len} bytes, threads: {threads}");
        }
    }

    #[test]
    fn chunks_open_by_index() {
        let secret = FileCipher::new_secret();
        let data = sample(2 * CHUNK + 5);
        let (blob, _) = seal_all(&secret, &data);
        let cipher = FileCipher::new(&secret, Layout::new(data.len() as u64).expect("layout"))
            .expect("cipher");
        let l = cipher.layout().to_owned();
        let mut last = blob[l.sealed_offset(2) as usize..].to_vec();
        cipher.open(2, &mut last).expect("last chunk opens alone");
        assert_eq!(last, data[2 * CHUNK..]);
    }
}
