//! Key transparency, the client's side (`missive_proto::kt`): the domain's log key, pinned at
//! first use, and the last tree head this device accepted. Every key lookup's answer must prove
//! that the identity key and device list served are in the log, under a head signed by that
//! key that extends the last one accepted; otherwise it is refused (`transparency_failed`)
//! before anything is pinned.
//!
//! Gossip: each device passes the head it accepted on to the members of its conversations
//! (inside the encrypted message, once per conversation each time it changes). A member that
//! follows the same log checks it against its own: two signed heads of one size with different
//! roots, or a head the server cannot prove its current log extends, mean the server shows
//! different logs to different users (`split_view`).

use std::collections::HashMap;

use missive_proto::api::{KtHead, KtOwnEntries, TransparencyInfo, UserResponse};
use missive_proto::app::KtGossip;
use missive_proto::devicelist::DeviceList;
use missive_proto::kt::{Leaf, TreeHead};
use missive_proto::B64;

use super::{keys, Account};
use crate::error::{Alert, AlertCode, CoreError};
use crate::store::{AlertRecord, Durability, Op};

fn failed(why: String) -> CoreError {
    CoreError::refused(AlertCode::TransparencyFailed, why)
}

/// Most received heads kept for checking (the oldest are dropped beyond).
const MAX_PENDING_GOSSIP: usize = 16;

/// What an account keeps in memory for gossip.
#[derive(Default)]
pub(super) struct Gossip {
    /// Heads other members passed on, still to check; `None` until read from the store.
    pending: Option<Vec<KtGossip>>,
    /// Per conversation, the size of the head this device last passed on (in this process).
    passed_on: HashMap<String, u64>,
    /// The head this device accepted last, once read.
    head: Option<Option<TreeHead>>,
}

fn split_view(detail: String) -> Alert {
    Alert {
        code: AlertCode::SplitView,
        detail,
    }
}

/// Whether the server's current head `now` extends a head another member passed on (else a
/// split view).
fn compare_gossip(gossip: &KtGossip, now: &TreeHead, info: &TransparencyInfo) -> Option<Alert> {
    let seen = gossip_head(gossip)?;
    let consistent = match seen.size.cmp(&now.size) {
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => seen.root == now.root,
        std::cmp::Ordering::Less => now.extends(
            &seen,
            info.peer_consistency
                .as_ref()
                .map_or(&[][..], |p| p.as_bytes()),
        ),
    };
    (!consistent).then(|| {
        split_view(format!(
            "another member was shown a transparency log ({} entries) that the log the server \
             shows you ({} entries) does not extend: the server shows different keys to \
             different users",
            seen.size, now.size
        ))
    })
}

fn gossip_head(gossip: &KtGossip) -> Option<TreeHead> {
    Some(TreeHead {
        size: gossip.size,
        root: gossip.root.as_bytes().try_into().ok()?,
        signature: gossip.signature.as_bytes().try_into().ok()?,
    })
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
            self.gossip.head = Some(Some(head));
        }
        Ok(head)
    }

    /// The head to pass on in a message to `conversation`: the one this device accepted, if
    /// this process has not passed it on there yet.
    pub(super) fn gossip_for(&mut self, conversation: &str) -> Result<Option<KtGossip>, CoreError> {
        let head = match &self.gossip.head {
            Some(head) => *head,
            None => {
                let head = self.kt_head()?;
                self.gossip.head = Some(head);
                head
            }
        };
        let Some(head) = head else {
            return Ok(None);
        };
        if self.gossip.passed_on.get(conversation) == Some(&head.size) {
            return Ok(None);
        }
        let Some((domain, _)) = self.kt_log()? else {
            return Ok(None);
        };
        self.gossip
            .passed_on
            .insert(conversation.to_owned(), head.size);
        Ok(Some(KtGossip {
            domain,
            size: head.size,
            root: B64(head.root.to_vec()),
            signature: B64(head.signature.to_vec()),
        }))
    }

    /// A head `from` passed on. One of another log, or not signed by the log's key, says
    /// nothing about ours and is ignored. One of the size of ours is compared at once (two
    /// roots for one size: a split view, returned as an alert); any other is kept, for
    /// [`Account::check_gossip`] with the server's proof.
    pub(super) fn received_gossip(
        &mut self,
        from: &str,
        gossip: &KtGossip,
    ) -> Result<Option<Alert>, CoreError> {
        let Some((domain, key)) = self.kt_log()? else {
            return Ok(None);
        };
        let Some(head) = gossip_head(gossip) else {
            return Ok(None);
        };
        if gossip.domain != domain || !head.verify(&key, &domain) {
            return Ok(None);
        }
        if let Some(own) = self.kt_head()? {
            if own.size == head.size {
                return Ok((own.root != head.root).then(|| {
                    split_view(format!(
                        "{from} was shown another transparency log than you at the same size                          ({} entries): the server shows different keys to different users",
                        head.size
                    ))
                }));
            }
        }
        let mut pending = self.gossip_pending()?;
        if !pending.contains(gossip) {
            pending.push(gossip.clone());
            if pending.len() > MAX_PENDING_GOSSIP {
                pending.remove(0);
            }
            let bytes = serde_json::to_vec(&pending).map_err(CoreError::storage)?;
            self.pending
                .push(Op::Setting(keys::KT_GOSSIP.into(), bytes));
            self.gossip.pending = Some(pending);
        }
        Ok(None)
    }

    /// Heads received from other members and not checked yet.
    pub fn gossip_pending(&mut self) -> Result<Vec<KtGossip>, CoreError> {
        if let Some(pending) = &self.gossip.pending {
            return Ok(pending.clone());
        }
        let pending: Vec<KtGossip> = match self.store.setting(keys::KT_GOSSIP)? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => Vec::new(),
        };
        self.gossip.pending = Some(pending.clone());
        Ok(pending)
    }

    /// Checks a head another member passed on against the log the server shows now
    /// (`info`, asked with `since` our head and `peer` the gossiped head's size): the current
    /// head must extend ours (else `transparency_failed`) and the gossiped one (else
    /// `split_view`). The alert is returned and kept; the gossiped head is dropped either way.
    pub fn check_gossip(
        &mut self,
        info: &TransparencyInfo,
        gossip: &KtGossip,
    ) -> Result<Option<Alert>, CoreError> {
        let Some((domain, key)) = self.kt_log()? else {
            return Err(CoreError::Usage(
                "this device follows no transparency log yet".into(),
            ));
        };
        let alert = match self.accept_head(&domain, &key, &info.head, info.consistency.as_ref()) {
            Ok(now) => compare_gossip(gossip, &now, info),
            // A log we refuse cannot be compared with anything: this head is dropped too.
            Err(CoreError::Refused(alert)) => Some(alert),
            Err(e) => return Err(e),
        };
        let mut pending = self.gossip_pending()?;
        pending.retain(|g| g != gossip);
        let mut ops = vec![Op::Setting(
            keys::KT_GOSSIP.into(),
            serde_json::to_vec(&pending).map_err(CoreError::storage)?,
        )];
        if let Some(a) = &alert {
            ops.push(Op::Alert(AlertRecord {
                at: crate::now_ms(),
                code: a.code.as_str().to_owned(),
                detail: a.detail.clone(),
            }));
        }
        self.store.apply(ops, Durability::Durable)?;
        self.gossip.pending = Some(pending);
        Ok(alert)
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
