//! Linking a new device to an account: the one-time code and what travels under it
//! ("missive-link v1", specified in ARCHITECTURE.md).
//!
//! The device that links shows a code of 16 random bytes. Both devices derive from it, with
//! HKDF-SHA256 under labels of their own, the id of a relay channel on the server (the only
//! value the server learns) and a ChaCha20-Poly1305 key. Every message of a link crosses the
//! server sealed under that key: the server relays them but can neither read nor forge one, so
//! it cannot complete a link by itself. A key serves one link and each kind of message is
//! sealed once, so each kind has a fixed nonce of its own.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use missive_proto::B64;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::CoreError;

/// Secret bytes in a link code.
const SECRET_LEN: usize = 16;
/// Base-32 characters that carry the secret (130 bits, the last 2 zero).
const DATA_CHARS: usize = 26;
/// RFC 4648 base32, lower case: no 0/1/8 to confuse with letters.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// What a QR code of a link code holds before the code.
pub const QR_PREFIX: &str = "missive-link:";

const CHANNEL_LABEL: &[u8] = b"missive/v1/link\0channel";
const KEY_LABEL: &[u8] = b"missive/v1/link\0key";
const SEAL_LABEL: &[u8] = b"missive/v1/link\0seal";

/// The messages of a link, in the order they travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// New device → linking device: the new device's key ([`Offer`]).
    Offer = 1,
    /// Linking device → new device: identity key and certificate ([`Grant`]).
    Grant = 2,
    /// New device → linking device: key packages to be added with ([`Packages`]).
    Packages = 3,
    /// Linking device → new device: recent conversations and messages ([`History`]).
    History = 4,
}

/// A one-time link code.
pub struct LinkCode {
    secret: [u8; SECRET_LEN],
}

impl LinkCode {
    pub fn generate() -> Self {
        let mut secret = [0u8; SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        LinkCode { secret }
    }

    /// Reads a code as typed (any case, with or without dashes and spaces) or as scanned from
    /// its QR code. A typing error is caught here, before anything reaches the server.
    pub fn parse(text: &str) -> Result<Self, CoreError> {
        let text = text.trim();
        let text = text.strip_prefix(QR_PREFIX).unwrap_or(text);
        let values = text
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| {
                let c = c.to_ascii_lowercase();
                ALPHABET
                    .iter()
                    .position(|&a| char::from(a) == c)
                    .map(|v| v as u8)
                    .ok_or_else(|| not_a_code(&format!("it contains {c:?}")))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        let Some((&check, data)) = values.split_last() else {
            return Err(not_a_code("it is empty"));
        };
        if data.len() != DATA_CHARS {
            return Err(not_a_code("it has the wrong length"));
        }
        if luhn_mod_32(data) != check {
            return Err(not_a_code("a character is wrong"));
        }
        let (mut bits, mut held) = (0u64, 0);
        let mut secret = Vec::with_capacity(SECRET_LEN);
        for &v in data {
            bits = (bits << 5) | u64::from(v);
            held += 5;
            if held >= 8 {
                held -= 8;
                secret.push((bits >> held) as u8);
                bits &= (1 << held) - 1;
            }
        }
        if bits != 0 {
            return Err(not_a_code("a character is wrong"));
        }
        let secret = secret
            .try_into()
            .map_err(|_| not_a_code("it has the wrong length"))?;
        Ok(LinkCode { secret })
    }

    /// The code as shown: 27 characters (26 of secret, one check) in groups of four.
    pub fn text(&self) -> String {
        let mut values = Vec::with_capacity(DATA_CHARS + 1);
        let (mut bits, mut held) = (0u64, 0);
        for b in self.secret {
            bits = (bits << 8) | u64::from(b);
            held += 8;
            while held >= 5 {
                held -= 5;
                values.push(((bits >> held) & 31) as u8);
            }
        }
        if held > 0 {
            values.push(((bits << (5 - held)) & 31) as u8);
        }
        values.push(luhn_mod_32(&values));
        let mut out = String::new();
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            out.push(char::from(ALPHABET[usize::from(v)]));
        }
        out
    }

    /// What the QR code shows.
    pub fn qr_payload(&self) -> String {
        format!("{QR_PREFIX}{}", self.text())
    }

    /// The relay channel's id on the server.
    pub fn channel(&self) -> [u8; 32] {
        self.derive(CHANNEL_LABEL)
    }

    pub fn seal(&self, kind: Kind, plaintext: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.cipher()
            .encrypt(
                &nonce(kind),
                Payload {
                    msg: plaintext,
                    aad: &aad(kind),
                },
            )
            .map_err(|_| CoreError::Usage("link message too large to seal".into()))
    }

    /// Opens a message of `kind`; anything not sealed under this code is refused.
    pub fn open(&self, kind: Kind, sealed: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.cipher()
            .decrypt(
                &nonce(kind),
                Payload {
                    msg: sealed,
                    aad: &aad(kind),
                },
            )
            .map_err(|_| {
                CoreError::refused(
                    crate::AlertCode::ForgedLink,
                    format!("a {kind:?} message of the link was not sealed with its code"),
                )
            })
    }

    /// Seals a value as JSON.
    pub fn seal_json<T: Serialize>(&self, kind: Kind, value: &T) -> Result<Vec<u8>, CoreError> {
        let json = serde_json::to_vec(value).map_err(CoreError::storage)?;
        self.seal(kind, &json)
    }

    /// Opens a value sealed with [`LinkCode::seal_json`].
    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        sealed: &[u8],
    ) -> Result<T, CoreError> {
        serde_json::from_slice(&self.open(kind, sealed)?).map_err(|e| {
            CoreError::refused(
                crate::AlertCode::ForgedLink,
                format!("a {kind:?} message of the link is malformed: {e}"),
            )
        })
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.derive(KEY_LABEL)))
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(None, &self.secret)
            .expand(label, &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        out
    }
}

/// The check character of base-32 values (Luhn mod N, N = 32): it catches every single wrong
/// character and every swap of two adjacent ones except 'a' with '7' (values 0 and 31),
/// before anything reaches the server.
fn luhn_mod_32(values: &[u8]) -> u8 {
    let mut factor = 2;
    let mut sum = 0u32;
    for &v in values.iter().rev() {
        let addend = factor * u32::from(v);
        sum += addend / 32 + addend % 32;
        factor = 3 - factor;
    }
    ((32 - sum % 32) % 32) as u8
}

fn not_a_code(why: &str) -> CoreError {
    CoreError::Usage(format!(
        "this is not a link code ({why}); type it again as `missive link` shows it"
    ))
}

fn nonce(kind: Kind) -> Nonce {
    let mut n = [0u8; 12];
    n[0] = kind as u8;
    *Nonce::from_slice(&n)
}

fn aad(kind: Kind) -> Vec<u8> {
    let mut a = SEAL_LABEL.to_vec();
    a.push(kind as u8);
    a
}

/// The new device's key, to be certified.
#[derive(Debug, Serialize, Deserialize)]
pub struct Offer {
    /// Hex of the 16-byte device id the new device chose.
    pub device_id: String,
    /// Its Ed25519 signature public key.
    pub device_key: B64,
}

/// What makes the new device a device of the account.
#[derive(Serialize, Deserialize)]
pub struct Grant {
    pub address: String,
    /// The identity key's secret: the new device can certify devices in turn.
    pub identity_secret: B64,
    pub certificate: B64,
    /// How many key packages the linking device needs (one per conversation to add it to).
    pub packages: u32,
    /// The contacts pinned by the linking device, with their verified marks.
    pub contacts: Vec<ContactTransfer>,
    /// The account's recovery key, so that every device keeps the recovery backup current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_key: Option<B64>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("address", &self.address)
            .field("packages", &self.packages)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ContactTransfer {
    pub address: String,
    pub identity_key: B64,
    pub verified: bool,
    /// The highest signed device list seen for the contact (checked again by the new device).
    #[serde(default)]
    pub device_list: Option<B64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Packages {
    pub key_packages: Vec<B64>,
}

/// Recent history, sent once the new device is in every conversation.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub conversations: Vec<ConversationHistory>,
    /// Messages deleted for everyone since earlier history was written (the segments of a
    /// recovery history backup): erased from what those brought.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
}

impl History {
    /// Drops the oldest quarter of the messages (at least one), to fit a size limit. `false`
    /// when there was nothing left to drop.
    pub fn drop_oldest(&mut self) -> bool {
        let mut times: Vec<u64> = self
            .conversations
            .iter()
            .flat_map(|c| c.messages.iter().map(|m| m.sent_at))
            .collect();
        if times.is_empty() {
            return false;
        }
        times.sort_unstable();
        let mut to_drop = (times.len() / 4).max(1);
        let cutoff = times[to_drop - 1];
        for c in &mut self.conversations {
            c.messages.retain(|m| {
                if m.sent_at < cutoff || (m.sent_at == cutoff && to_drop > 0) {
                    to_drop = to_drop.saturating_sub(1);
                    false
                } else {
                    true
                }
            });
        }
        true
    }

    pub fn message_count(&self) -> usize {
        self.conversations.iter().map(|c| c.messages.len()).sum()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConversationHistory {
    pub id: String,
    pub name: Option<String>,
    pub dm_peer: Option<String>,
    pub created_at: u64,
    /// The disappearing-message timer in seconds, if on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disappear: Option<u64>,
    /// The sensitivity label, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<missive_proto::api::Label>,
    pub messages: Vec<MessageTransfer>,
}

/// A message as history carries it: the record as stored, whose fields a version that does
/// not know them skips, and whose fields a version before them leaves at their defaults.
pub type MessageTransfer = crate::store::MessageRecord;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_reads_back_as_shown_typed_or_scanned() {
        let code = LinkCode::generate();
        let text = code.text();
        assert_eq!(text.len(), 27 + 6, "{text}");
        for typed in [
            text.clone(),
            text.to_uppercase(),
            text.replace('-', " "),
            text.replace('-', ""),
            code.qr_payload(),
        ] {
            let back = LinkCode::parse(&typed).expect("parses");
            assert_eq!(back.channel(), code.channel());
        }
    }

    #[test]
    fn typing_errors_are_caught_before_the_server() {
        let refused = |bad: &str| {
            let e = LinkCode::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("accepted {bad}"));
            assert!(e.to_string().contains("not a link code"), "{bad}: {e}");
        };
        for _ in 0..20 {
            let text = LinkCode::generate().text();
            let chars: Vec<char> = text.chars().collect();
            // Every single wrong character, everywhere.
            for i in (0..chars.len()).filter(|&i| chars[i] != '-') {
                for &c in ALPHABET.iter().filter(|&&c| char::from(c) != chars[i]) {
                    let mut wrong = chars.clone();
                    wrong[i] = char::from(c);
                    refused(&wrong.iter().collect::<String>());
                }
            }
            // Every swap of two different neighbours, but for Luhn's blind spot: the first
            // and the last character of the alphabet ('a' and '7').
            let plain: Vec<char> = chars.iter().copied().filter(|&c| c != '-').collect();
            let blind = |a: char, b: char| matches!((a, b), ('a', '7') | ('7', 'a'));
            for i in 0..plain.len() - 1 {
                if plain[i] != plain[i + 1] && !blind(plain[i], plain[i + 1]) {
                    let mut swapped = plain.clone();
                    swapped.swap(i, i + 1);
                    refused(&swapped.iter().collect::<String>());
                }
            }
            refused(&text[..text.len() - 1]);
            refused(&format!("{text}a"));
        }
        refused("hello");
        refused("");
    }

    #[test]
    fn history_too_large_loses_its_oldest_messages_first() {
        let message = |id: &str, sent_at: u64| MessageTransfer {
            id: id.into(),
            sender: "a@x".into(),
            sender_device: "d".into(),
            text: id.into(),
            sent_at,
            server_time: sent_at,
            seq: sent_at,
            ..MessageTransfer::default()
        };
        let conversation = |id: &str, messages| ConversationHistory {
            id: id.into(),
            name: None,
            dm_peer: None,
            created_at: 0,
            disappear: None,
            label: None,
            messages,
        };
        let mut history = History {
            conversations: vec![
                conversation(
                    "c1",
                    vec![message("m1", 1), message("m4", 4), message("m8", 8)],
                ),
                conversation(
                    "c2",
                    vec![
                        message("m2", 2),
                        message("m3", 3),
                        message("m5", 5),
                        message("m6", 6),
                    ],
                ),
            ],
            deleted: Vec::new(),
        };
        let left = |h: &History| -> Vec<String> {
            let mut ids: Vec<String> = h
                .conversations
                .iter()
                .flat_map(|c| c.messages.iter().map(|m| m.id.clone()))
                .collect();
            ids.sort();
            ids
        };
        // A quarter of 7, then of 6: one message each time, the oldest.
        assert!(history.drop_oldest());
        assert_eq!(left(&history), ["m2", "m3", "m4", "m5", "m6", "m8"]);
        assert!(history.drop_oldest());
        assert_eq!(left(&history), ["m3", "m4", "m5", "m6", "m8"]);
        while history.drop_oldest() {}
        assert_eq!(history.message_count(), 0);
        assert_eq!(history.conversations.len(), 2, "conversations stay");
    }

    #[test]
    fn only_the_code_opens_what_it_sealed_and_each_kind_stays_apart() {
        let code = LinkCode::generate();
        let sealed = code.seal(Kind::Offer, b"device key").expect("seal");
        assert_eq!(
            code.open(Kind::Offer, &sealed).expect("opens"),
            b"device key"
        );
        assert!(code.open(Kind::Grant, &sealed).is_err(), "another kind");
        assert!(LinkCode::generate().open(Kind::Offer, &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(code.open(Kind::Offer, &flipped).is_err());
        assert_ne!(code.channel(), LinkCode::generate().channel());
    }
}
