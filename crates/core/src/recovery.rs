//! Recovery when every device is lost: the recovery key and the backup it seals.
//!
//! Our construction (documented in ARCHITECTURE.md): a recovery key is 20 random bytes (160
//! bits, so no slow KDF is needed: there is no passphrase to guess), shown as 32 Crockford
//! base32 characters in groups of four. From it, with HKDF-SHA256 and the address:
//! - `auth = HKDF(key, info = "missive/v1/recovery-auth\0" || address)`, which the server keeps
//!   hashed and asks for before it hands out the backup or accepts a recovered device;
//! - `seal = HKDF(key, info = "missive/v1/recovery-seal\0" || address)`, the XChaCha20-Poly1305
//!   key of the backup: `nonce (24) || ciphertext`, with the label and address as associated
//!   data. The server holds the backup and `SHA-256(auth)`, and can open neither;
//! - `history = HKDF(key, info = "missive/v1/recovery-history\0" || address)`, the key of the
//!   optional message history segments, sealed the same way under their own label.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use missive_proto::B64;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::CoreError;
use crate::link::{ContactTransfer, History};
use crate::store::ConversationRecord;

const KEY_LEN: usize = 20;
const AUTH_LABEL: &[u8] = b"missive/v1/recovery-auth\0";
const SEAL_LABEL: &[u8] = b"missive/v1/recovery-seal\0";
const HISTORY_LABEL: &[u8] = b"missive/v1/recovery-history\0";
/// Crockford's base32: no I, L, O or U, so that nothing reads as something else.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A recovery key.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(..)")
    }
}

impl RecoveryKey {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        RecoveryKey(key)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(RecoveryKey(Zeroizing::new(bytes.try_into().ok()?)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// Reads a key as people type it: case, spaces and dashes do not matter, and O, I and L
    /// are read as 0, 1 and 1.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let bad = || {
            CoreError::Usage(
                "a recovery key is 32 letters and digits (groups of four, as shown at \
                 registration)"
                    .into(),
            )
        };
        let mut bits: u64 = 0;
        let mut count = 0u32;
        let mut out = Vec::with_capacity(KEY_LEN);
        let mut chars = 0;
        for c in text.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            let value = ALPHABET
                .iter()
                .position(|&a| a as char == c)
                .ok_or_else(bad)?;
            chars += 1;
            bits = (bits << 5) | value as u64;
            count += 5;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        if chars != KEY_LEN * 8 / 5 {
            return Err(bad());
        }
        Self::from_bytes(&out).ok_or_else(bad)
    }

    /// The key as shown: eight groups of four characters, separated by dashes.
    pub fn display(&self) -> String {
        let mut out = String::with_capacity(40);
        let mut bits: u64 = 0;
        let mut count = 0u32;
        let mut chars = 0;
        for &byte in self.0.iter() {
            bits = (bits << 8) | byte as u64;
            count += 8;
            while count >= 5 {
                count -= 5;
                if chars > 0 && chars % 4 == 0 {
                    out.push('-');
                }
                out.push(ALPHABET[((bits >> count) & 31) as usize] as char);
                chars += 1;
            }
            bits &= (1 << count) - 1;
        }
        out
    }

    fn derive(&self, label: &[u8], address: &str) -> Zeroizing<[u8; 32]> {
        let mut info = label.to_vec();
        info.extend_from_slice(address.as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<Sha256>::new(None, self.as_bytes())
            .expand(&info, out.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// What the server asks for before handing out the backup of `address`.
    pub fn auth(&self, address: &str) -> B64 {
        B64(self.derive(AUTH_LABEL, address).to_vec())
    }

    fn aad(label: &[u8], address: &str) -> Vec<u8> {
        let mut aad = label.to_vec();
        aad.extend_from_slice(address.as_bytes());
        aad
    }

    fn seal_with(
        &self,
        label: &[u8],
        address: &str,
        value: &impl Serialize,
    ) -> Result<Vec<u8>, CoreError> {
        let plain = Zeroizing::new(serde_json::to_vec(value).map_err(CoreError::storage)?);
        let cipher = XChaCha20Poly1305::new(self.derive(label, address).as_ref().into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: &plain,
                    aad: &Self::aad(label, address),
                },
            )
            .map_err(|_| CoreError::Storage("the backup could not be sealed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open_with<T: serde::de::DeserializeOwned>(
        &self,
        label: &[u8],
        address: &str,
        sealed: &[u8],
    ) -> Option<T> {
        if sealed.len() < 24 {
            return None;
        }
        let (nonce, body) = sealed.split_at(24);
        let cipher = XChaCha20Poly1305::new(self.derive(label, address).as_ref().into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    nonce.into(),
                    Payload {
                        msg: body,
                        aad: &Self::aad(label, address),
                    },
                )
                .ok()?,
        );
        serde_json::from_slice(&plain).ok()
    }

    /// Seals a backup of `address`.
    pub fn seal(&self, address: &str, backup: &Backup) -> Result<Vec<u8>, CoreError> {
        self.seal_with(SEAL_LABEL, address, backup)
    }

    /// Opens a backup of `address`; `None` if it was not sealed with this key for it.
    pub fn open(&self, address: &str, sealed: &[u8]) -> Option<Backup> {
        self.open_with(SEAL_LABEL, address, sealed)
    }

    /// Seals a segment of `address`'s message history.
    pub fn seal_history(&self, address: &str, history: &History) -> Result<Vec<u8>, CoreError> {
        self.seal_with(HISTORY_LABEL, address, history)
    }

    /// Opens a segment of `address`'s message history.
    pub fn open_history(&self, address: &str, sealed: &[u8]) -> Option<History> {
        self.open_with(HISTORY_LABEL, address, sealed)
    }
}

/// What a recovered device needs to be the account again: the identity key, the contacts as
/// pinned, the conversations to rejoin, and the transparency log followed.
#[derive(Serialize, Deserialize)]
pub struct Backup {
    pub identity_secret: B64,
    pub contacts: Vec<ContactTransfer>,
    pub conversations: Vec<ConversationRecord>,
    /// The log's domain, key and last head accepted (as stored).
    #[serde(default)]
    pub kt: Option<(String, B64, B64)>,
    /// Whether the account backs its message history up too.
    #[serde(default)]
    pub history: bool,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup")
            .field("contacts", &self.contacts.len())
            .field("conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_as_shown_and_as_people_type_it() {
        let key = RecoveryKey::generate();
        let shown = key.display();
        assert_eq!(shown.len(), 32 + 7);
        assert_eq!(RecoveryKey::parse(&shown).expect("parse"), key);
        let typed = shown.replace('-', " ").to_lowercase();
        assert_eq!(RecoveryKey::parse(&typed).expect("parse"), key);
        let squashed = shown.replace('-', "");
        assert_eq!(RecoveryKey::parse(&squashed).expect("parse"), key);
        assert!(RecoveryKey::parse(&squashed[1..]).is_err(), "too short");
        assert!(
            RecoveryKey::parse(&format!("{squashed}0")).is_err(),
            "too long"
        );
        assert!(RecoveryKey::parse(&squashed.replacen(|_| true, "U", 1)).is_err());
    }

    #[test]
    fn a_backup_opens_only_with_its_key_and_address() {
        let key = RecoveryKey::generate();
        let backup = Backup {
            identity_secret: B64(vec![7; 32]),
            contacts: Vec::new(),
            conversations: Vec::new(),
            kt: None,
            history: false,
        };
        let sealed = key.seal("a@x.example", &backup).expect("seal");
        let opened = key.open("a@x.example", &sealed).expect("open");
        assert_eq!(opened.identity_secret, backup.identity_secret);
        assert!(key.open("b@x.example", &sealed).is_none());
        assert!(RecoveryKey::generate()
            .open("a@x.example", &sealed)
            .is_none());
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert!(key.open("a@x.example", &tampered).is_none());
        assert_ne!(key.auth("a@x.example"), key.auth("b@x.example"));
        // A history segment is sealed under its own key: it never opens as a backup.
        let segment = key
            .seal_history("a@x.example", &History::default())
            .expect("seal");
        assert!(key.open_history("a@x.example", &segment).is_some());
        assert!(key.open("a@x.example", &segment).is_none());
        assert!(key.open_history("a@x.example", &sealed).is_none());
    }
}
