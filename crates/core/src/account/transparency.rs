//! Key transparency, the client's side (`missive_proto::kt`): the domain's log key, pinned at
//! first use, and the last tree head this device accepted. Every key lookup's answer must prove
//! that the identity key and device list served are in the log, under a head signed by that
//! key that extends the last one accepted; otherwise it is refused (`transparency_failed`)
//! before anything is pinned.

use missive_proto::api::{KtHead, KtOwnEntries, UserResponse};
use missive_proto::devicelist::DeviceList;
use missive_proto::kt::{Leaf, TreeHead};
use missive_proto::B64;

use super::{keys, Account};
use crate::error::{Alert, AlertCode, CoreError};
use crate::store::{AlertRecord, Durability, Op};

fn failed(why: String) -> CoreError {
    CoreError::refused(AlertCode::TransparencyFailed, why)
}

impl Account {
    /// The log this device follows: its domain and key, once pinned.
    pub fn kt_log(&self) -> Result<Option<(String, [u8; 32])>, CoreError> {
        let (Some(domain), Some(key)) = (
            self.store.setting(keys::KT_DOMAIN)?,
            self.store.setting(keys::KT_KEY)?,
        ) else {
            return Ok(None);
        };
        let domain = String::from_utf8(domain).map_err(CoreError::storage)?;
        let key = key
            .try_into()
            .map_err(|_| CoreError::Storage("the pinned log key has the wrong length".into()))?;
        Ok(Some((domain, key)))
    }

    /// Pins the log's domain and key (trust on first use, like the server's address).
    pub fn pin_kt_log(&mut self, domain: &str, key: &[u8]) -> Result<(), CoreError> {
        if key.len() != 32 {
            return Err(failed(
                "the server's transparency log key is malformed".into(),
            ));
        }
        self.store.apply(
            vec![
                Op::Setting(keys::KT_DOMAIN.into(), domain.as_bytes().to_vec()),
                Op::Setting(keys::KT_KEY.into(), key.to_vec()),
            ],
            Durability::Durable,
        )
    }

    /// The last tree head this device accepted.
    pub fn kt_head(&self) -> Result<Option<TreeHead>, CoreError> {
        let Some(bytes) = self.store.setting(keys::KT_HEAD)? else {
            return Ok(None);
        };
        let malformed = || CoreError::Storage("the stored tree head is malformed".into());
        if bytes.len() != 8 + 32 + 64 {
            return Err(malformed());
        }
        Ok(Some(TreeHead {
            size: u64::from_be_bytes(bytes[..8].try_into().map_err(|_| malformed())?),
            root: bytes[8..40].try_into().map_err(|_| malformed())?,
            signature: bytes[40..].try_into().map_err(|_| malformed())?,
        }))
    }

    /// Checks the proof of a lookup's answer (pinned log required) and keeps its head.
    pub fn check_transparency(&mut self, user: &UserResponse) -> Result<(), CoreError> {
        let Some(list_bytes) = &user.device_list else {
            // Nothing published yet: nothing to prove, and nothing a client would add.
            return Ok(());
        };
        let Some((domain, key)) = self.kt_log()? else {
            return Err(CoreError::Usage(
                "this device follows no transparency log yet".into(),
            ));
        };
        let address = &user.address;
        let Some(proof) = &user.transparency else {
            return Err(failed(format!(
                "the server gave no proof that the key of {address} is in its transparency log"
            )));
        };
        let head = self.accept_head(&domain, &key, &proof.head, proof.consistency.as_ref())?;
        let list = DeviceList::from_bytes(list_bytes.as_bytes()).map_err(|_| {
            CoreError::refused(
                AlertCode::ForgedDeviceList,
                format!("the device list the server serves for {address} is malformed"),
            )
        })?;
        let identity_key: [u8; 32] = user.identity_key.0.as_slice().try_into().map_err(|_| {
            failed(format!(
                "the identity key served for {address} is malformed"
            ))
        })?;
        let leaf = Leaf::of_list(address, identity_key, list.version, list_bytes.as_bytes());
        if !head.includes(&leaf, proof.index, proof.inclusion.as_bytes()) {
            return Err(failed(format!(
                "the identity key and device list the server serves for {address} are not in \
                 its transparency log: it may be showing you a key it shows no one else"
            )));
        }
        Ok(())
    }

    /// Checks a head the server signs now: the log key's signature, and that it extends the
    /// last head this device accepted (`consistency`: the proof from that one); keeps it.
    fn accept_head(
        &mut self,
        domain: &str,
        key: &[u8; 32],
        served: &KtHead,
        consistency: Option<&B64>,
    ) -> Result<TreeHead, CoreError> {
        let malformed = || failed("a tree head of the transparency log is malformed".into());
        let head = TreeHead {
            size: served.size,
            root: served.root.as_bytes().try_into().map_err(|_| malformed())?,
            signature: served
                .signature
                .as_bytes()
                .try_into()
                .map_err(|_| malformed())?,
        };
        if !head.verify(key, domain) {
            return Err(failed(
                "a tree head of the transparency log is not signed by the log's key".into(),
            ));
        }
        let known = self.kt_head()?;
        if let Some(old) = &known {
            let consistency = consistency.map_or(&[][..], |c| c.as_bytes());
            if !head.extends(old, consistency) {
                return Err(failed(format!(
                    "the transparency log the server shows now ({} entries) does not extend \
                     the one it showed before ({} entries): its past was changed",
                    head.size, old.size
                )));
            }
        }
        if known.is_none_or(|old| head.size > old.size) {
            let mut bytes = head.size.to_be_bytes().to_vec();
            bytes.extend_from_slice(&head.root);
            bytes.extend_from_slice(&head.signature);
            self.store.apply(
                vec![Op::Setting(keys::KT_HEAD.into(), bytes)],
                Durability::Relaxed,
            )?;
        }
        Ok(head)
    }

    /// Checks what the log holds in our own name (every entry proven under one head): an
    /// entry with another identity key than ours means the server logged a key for our
    /// address, to show our contacts. Returns one alert per such entry not reported before
    /// (each is also kept).
    pub fn check_own_entries(&mut self, answer: &KtOwnEntries) -> Result<Vec<Alert>, CoreError> {
        let Some((domain, key)) = self.kt_log()? else {
            return Err(CoreError::Usage(
                "this device follows no transparency log yet".into(),
            ));
        };
        let head = self.accept_head(&domain, &key, &answer.head, answer.consistency.as_ref())?;
        let seen = self
            .store
            .setting(keys::KT_OWN_SEEN)?
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes);
        let own_key = self.identity.public();
        let mut next = seen;
        let mut alerts = Vec::new();
        for entry in &answer.entries {
            let leaf = Leaf::from_bytes(entry.leaf.as_bytes()).map_err(|_| {
                failed(format!(
                    "entry {} of your address in the log is malformed",
                    entry.index
                ))
            })?;
            if leaf.address != self.address()
                || !head.includes(&leaf, entry.index, entry.inclusion.as_bytes())
            {
                return Err(failed(format!(
                    "entry {} the server shows as yours is not in its transparency log",
                    entry.index
                )));
            }
            if entry.index < seen {
                continue;
            }
            next = next.max(entry.index + 1);
            if leaf.identity_key != own_key {
                alerts.push(Alert {
                    code: AlertCode::OwnKeyLogged,
                    detail: format!(
                        "the transparency log holds another identity key than yours for your \
                         address (entry {}, device list version {}): the server may be \
                         showing it to your contacts as you",
                        entry.index, leaf.list_version
                    ),
                });
            }
        }
        let mut ops = vec![Op::Setting(
            keys::KT_OWN_SEEN.into(),
            next.to_be_bytes().to_vec(),
        )];
        ops.extend(alerts.iter().map(|a| {
            Op::Alert(AlertRecord {
                at: crate::now_ms(),
                code: a.code.as_str().to_owned(),
                detail: a.detail.clone(),
            })
        }));
        self.store.apply(ops, Durability::Durable)?;
        Ok(alerts)
    }
}
