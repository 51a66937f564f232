//! End-to-end media encryption of calls: SFrame (RFC 9605, the `sframe` crate on RustCrypto)
//! keyed from the conversation's MLS group, so a call has no key of its own to distribute.
//!
//! Per epoch, the group exports a call secret (`Account::call_epoch`: our label, the call's
//! id as context). Every sender's key is derived from it under its own key id (RFC 9605
//! §5.2): the epoch's low bits, the sender's leaf index, and no context bits. A frame names
//! its key id in the clear, so a receiver finds the sender's key without trial decryption, and
//! refuses a key id of a leaf that is not a member at that epoch.
//!
//! Membership changes are new epochs, so new keys ([`CallKeys::rekey`]); frames of the
//! previous epoch are still read for [`GRACE`] (the senders' commits reach everyone at
//! slightly different times), then its keys are forgotten. A device removed by the commit
//! holds only the previous epoch's secret: it reads nothing sent under the new one.
//!
//! Video frames keep the first bytes of their VP8 payload header in clear ([`Media::clear_len`]:
//! 10 bytes of a keyframe, 3 of any other), as Jitsi's and the WebRTC samples' end-to-end
//! encryption do: the receivers' depacketizers read them to find keyframes and picture sizes.
//! Those bytes are the SFrame's metadata, authenticated with the frame, so changing one makes
//! the frame refused; they tell the relay which frames are keyframes, nothing of the picture.
//!
//! What SFrame does not give, said plainly: every member holds the epoch secret, so a member
//! could forge another member's frames (RFC 9605 §9.5). The SFU forwards only the frames of the
//! device a connection authenticated as, which leaves a hostile server, not a hostile member,
//! able to misattribute within a call it cannot read.

use std::collections::HashMap;
use std::time::Duration;

use sframe::frame::validation::{ReplayAttackProtectionStore, Tolerance};
use sframe::frame::{EncryptedFrameView, MediaFrameView, MonotonicCounter};
use sframe::key::{DecryptionKey, EncryptionKey};
use sframe::mls::{MlsKeyId, MlsKeyIdBitRange};
use sframe::CipherSuite;
use web_time::Instant;

use crate::account::calls::CallEpoch;
use crate::error::CoreError;
use crate::identity::LeafOwner;

/// AES-256-GCM with a 128-bit tag, HKDF-SHA-512: the suite RFC 9605 recommends for media.
pub const CIPHER_SUITE: CipherSuite = CipherSuite::AesGcm256Sha512;
/// How long frames of the previous epoch are still read after a new one.
pub const GRACE: Duration = Duration::from_secs(10);
/// Key id layout: 8 bits of epoch, 16 of leaf index (groups up to 65,536 leaves).
const EPOCH_BITS: u8 = 8;
const INDEX_BITS: u8 = 16;
/// How far behind the newest frame of a sender a frame may arrive (reordering on the network).
const REPLAY_WINDOW: usize = 128;

/// The kind of media a frame carries, which decides what of it stays in clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// An Opus frame: all of it is sealed.
    Audio,
    /// A VP8 frame: its payload header stays in clear (authenticated).
    Video,
}

impl Media {
    /// How many of `frame`'s first bytes stay in clear: for VP8 (RFC 6386 §9.1), 10 bytes of
    /// a keyframe (the frame tag, start code and picture size) and 3 of an interframe (the
    /// frame tag). The first byte's lowest bit, clear itself, tells which.
    pub fn clear_len(self, frame: &[u8]) -> usize {
        match (self, frame.first()) {
            (Media::Audio, _) | (Media::Video, None) => 0,
            (Media::Video, Some(tag)) if tag & 1 == 0 => frame.len().min(10),
            (Media::Video, Some(_)) => frame.len().min(3),
        }
    }
}

/// One epoch's keys: ours to send, the members' to read (derived when first needed).
struct EpochKeys {
    epoch: u64,
    secret: Vec<u8>,
    members: HashMap<u32, LeafOwner>,
    receivers: HashMap<u64, DecryptionKey>,
}

/// A device's keys for one call: it seals its own frames and opens the other members'.
pub struct CallKeys {
    own_index: u32,
    sender: EncryptionKey,
    counter: MonotonicCounter,
    current: EpochKeys,
    /// The epoch before, and until when its frames are read.
    previous: Option<(EpochKeys, Instant)>,
    replay: ReplayAttackProtectionStore,
}

/// A frame opened: who sent it, and what.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub sender: LeafOwner,
    pub payload: Vec<u8>,
}

fn bits() -> MlsKeyIdBitRange {
    MlsKeyIdBitRange::new(EPOCH_BITS, INDEX_BITS)
}

fn key_id(epoch: u64, index: u32) -> Result<u64, CoreError> {
    MlsKeyId::try_new(0u64, epoch, u64::from(index), bits())
        .map(u64::from)
        .map_err(call_error)
}

fn call_error(e: impl std::fmt::Display) -> CoreError {
    CoreError::Usage(format!("call media: {e}"))
}

impl EpochKeys {
    fn of(epoch: CallEpoch) -> Self {
        EpochKeys {
            epoch: epoch.epoch,
            secret: epoch.secret,
            members: epoch.members.into_iter().collect(),
            receivers: HashMap::new(),
        }
    }

    /// The key of key id `kid` (whose sender the caller found among the members).
    fn receiver(&mut self, kid: u64) -> Result<&DecryptionKey, CoreError> {
        if !self.receivers.contains_key(&kid) {
            let key =
                DecryptionKey::derive_from(CIPHER_SUITE, kid, &self.secret).map_err(call_error)?;
            self.receivers.insert(kid, key);
        }
        Ok(&self.receivers[&kid])
    }
}

impl CallKeys {
    /// The length of the call secret to export (the suite's key length).
    pub fn secret_len() -> usize {
        CIPHER_SUITE.key_len()
    }

    /// Keys for a call at `epoch`.
    pub fn new(epoch: CallEpoch) -> Result<Self, CoreError> {
        let own_index = epoch.own_index;
        let sender = EncryptionKey::derive_from(
            CIPHER_SUITE,
            key_id(epoch.epoch, own_index)?,
            &epoch.secret,
        )
        .map_err(call_error)?;
        Ok(CallKeys {
            own_index,
            sender,
            counter: MonotonicCounter::default(),
            current: EpochKeys::of(epoch),
            previous: None,
            replay: ReplayAttackProtectionStore::new(
                Tolerance::try_new(REPLAY_WINDOW).map_err(call_error)?,
            ),
        })
    }

    /// The epoch frames are sealed under.
    pub fn epoch(&self) -> u64 {
        self.current.epoch
    }

    /// Moves to a new epoch (after a commit of the conversation's group): frames are sealed
    /// under its keys from now on, and the previous epoch's are read until `now + GRACE`.
    pub fn rekey(&mut self, epoch: CallEpoch, now: Instant) -> Result<(), CoreError> {
        if epoch.epoch <= self.current.epoch {
            return Err(call_error(format!(
                "epoch {} does not follow {}",
                epoch.epoch, self.current.epoch
            )));
        }
        let next = CallKeys::new(epoch)?;
        let previous = std::mem::replace(&mut self.current, next.current);
        self.own_index = next.own_index;
        self.sender = next.sender;
        self.counter = next.counter;
        // Key ids of epochs older than the previous one are never read again.
        let keep: Vec<u64> = previous.receivers.keys().copied().collect();
        self.replay.retain(|kid| keep.contains(&kid));
        self.previous = Some((previous, now + GRACE));
        Ok(())
    }

    /// Seals one encoded audio frame for the other members.
    pub fn seal(&mut self, payload: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.seal_media(Media::Audio, payload)
    }

    /// Seals one encoded frame of `media` for the other members: what stays in clear
    /// ([`Media::clear_len`]) comes first, as it was, then the SFrame that authenticates it.
    pub fn seal_media(&mut self, media: Media, frame: &[u8]) -> Result<Vec<u8>, CoreError> {
        let (clear, payload) = frame.split_at(media.clear_len(frame));
        let view = MediaFrameView::try_with_meta_data(&mut self.counter, payload, clear)
            .map_err(call_error)?;
        // The sealed frame is laid out as it goes out: the metadata (the clear bytes), then
        // the SFrame.
        let sealed = view.encrypt(&self.sender).map_err(call_error)?;
        Ok(sealed.as_ref().to_vec())
    }

    /// Opens a member's audio frame: refused when its key id names no member of the current
    /// epoch (or of the previous one, within the grace), when it is replayed, or when it does
    /// not authenticate.
    pub fn open(&mut self, frame: &[u8], now: Instant) -> Result<Opened, CoreError> {
        self.open_media(Media::Audio, frame, now)
    }

    /// Opens a member's frame of `media`, refused as [`CallKeys::open`] says; a video frame's
    /// clear bytes are part of what must authenticate.
    pub fn open_media(
        &mut self,
        media: Media,
        frame: &[u8],
        now: Instant,
    ) -> Result<Opened, CoreError> {
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| now > *until)
        {
            if let Some((old, _)) = self.previous.take() {
                self.replay.retain(|kid| !old.receivers.contains_key(&kid));
            }
        }
        let (clear, sealed) = frame.split_at(media.clear_len(frame));
        let view = EncryptedFrameView::try_with_meta_data(sealed, clear).map_err(|e| {
            CoreError::refused(
                crate::AlertCode::RejectedMessage,
                format!("a call frame is not an SFrame: {e}"),
            )
        })?;
        let kid = view.header().key_id();
        let id = MlsKeyId::from_key_id(kid, bits());
        let index = u32::try_from(id.member_index()).map_err(call_error)?;
        let low = id.epoch_lsb();
        let mask = (1u64 << EPOCH_BITS) - 1;
        let keys = if self.current.epoch & mask == low {
            &mut self.current
        } else {
            match self.previous.as_mut() {
                Some((old, _)) if old.epoch & mask == low => old,
                _ => {
                    return Err(CoreError::refused(
                        crate::AlertCode::RejectedMessage,
                        "a call frame of an epoch this device no longer (or not yet) reads",
                    ))
                }
            }
        };
        let Some(sender) = keys.members.get(&index).cloned() else {
            return Err(CoreError::refused(
                crate::AlertCode::RejectedMessage,
                format!(
                    "a call frame names leaf {index}, not a member at epoch {}",
                    keys.epoch
                ),
            ));
        };
        let key = keys.receiver(kid)?;
        let opened = view.validated_decrypt(key, &mut self.replay).map_err(|e| {
            CoreError::refused(
                crate::AlertCode::RejectedMessage,
                format!("a call frame was refused: {e}"),
            )
        })?;
        // The frame as it was sealed: its clear bytes (the metadata), then what was sealed.
        Ok(Opened {
            sender,
            payload: opened.as_ref().to_vec(),
        })
    }

    /// Whether `frame` is sealed under an epoch a little after ours: a member rekeyed before
    /// this device learnt of the commit. The caller keeps such a frame, brings the group up to
    /// date, rekeys and opens it then, rather than losing it.
    pub fn is_ahead(&self, media: Media, frame: &[u8]) -> bool {
        let (clear, sealed) = frame.split_at(media.clear_len(frame));
        let Ok(view) = EncryptedFrameView::try_with_meta_data(sealed, clear) else {
            return false;
        };
        let low = MlsKeyId::from_key_id(view.header().key_id(), bits()).epoch_lsb();
        let mask = (1u64 << EPOCH_BITS) - 1;
        (1..=3).any(|ahead| (self.current.epoch + ahead) & mask == low)
    }

    /// Our own leaf index, as the key ids of our frames carry it.
    pub fn own_index(&self) -> u32 {
        self.own_index
    }
}
