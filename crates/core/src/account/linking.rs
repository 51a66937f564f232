//! The account's side of linking a device: certifying the new device, becoming one, and
//! handing over contacts and recent history (the messages themselves are in
//! [`crate::link`]).

use missive_proto::api::RegisterResponse;
use missive_proto::cert::DeviceCertificate;
use missive_proto::devicelist::DeviceList;
use missive_proto::B64;
use openmls_basic_credential::SignatureKeyPair;

use super::{keys, Account};
use crate::error::{AlertCode, CoreError};
use crate::hex;
use crate::identity::{DeviceSigner, Identity};
use crate::link::{ContactTransfer, ConversationHistory, Grant, History, Offer};
use crate::provider::Provider;
use crate::store::{AccountStore, ContactRecord, ConversationRecord, MessageRecord, Op};

fn forged(why: impl Into<String>) -> CoreError {
    CoreError::refused(AlertCode::ForgedLink, why)
}

impl Account {
    /// Whether `store` holds a registered account already.
    pub fn is_registered(store: &dyn AccountStore) -> Result<bool, CoreError> {
        Ok(store.setting(keys::TOKEN)?.is_some())
    }

    /// Certifies the device that offered itself on a link, for this account.
    pub fn certify_offer(&self, offer: &Offer) -> Result<DeviceCertificate, CoreError> {
        let mut device_id = [0u8; 16];
        ::hex::decode_to_slice(&offer.device_id, &mut device_id)
            .map_err(|_| forged("the new device's id is not 32 hex digits"))?;
        self.identity
            .certify(self.address(), device_id, offer.device_key.as_bytes())
    }

    /// The contacts as pinned, with their verified marks and device lists.
    pub(super) fn contact_transfers(&self) -> Result<Vec<ContactTransfer>, CoreError> {
        Ok(self
            .store
            .contacts()?
            .into_iter()
            .map(|c| ContactTransfer {
                address: c.address,
                identity_key: B64(c.identity_key),
                verified: c.verified,
                device_list: c.device_list.map(B64),
            })
            .collect())
    }

    /// Pins contacts handed over by another device of ours (or a backup). A device list that
    /// does not verify under the contact's key is dropped, not pinned.
    pub(super) fn import_contacts(
        &mut self,
        contacts: &[ContactTransfer],
    ) -> Result<(), CoreError> {
        for c in contacts {
            if c.address == self.address() {
                continue;
            }
            let device_list = c.device_list.as_ref().and_then(|l| {
                DeviceList::open(l.as_bytes(), &c.address, c.identity_key.as_bytes())
                    .ok()
                    .map(|_| l.0.clone())
            });
            self.write_contact(ContactRecord {
                address: c.address.clone(),
                identity_key: c.identity_key.0.clone(),
                verified: c.verified,
                pending_key: None,
                device_list,
            })?;
        }
        Ok(())
    }

    /// The grant for a certified device: identity key, certificate, contacts, recovery key.
    pub fn grant(&self, cert: &DeviceCertificate, packages: u32) -> Result<Grant, CoreError> {
        Ok(Grant {
            address: self.address().to_owned(),
            identity_secret: B64(self.identity.secret().to_vec()),
            certificate: B64(cert.to_bytes()),
            packages,
            contacts: self.contact_transfers()?,
            recovery_key: self.recovery_key()?.map(|k| B64(k.as_bytes().to_vec())),
        })
    }

    /// Becomes the device a grant certifies: checks that the certificate is for our key and
    /// device id and signed by the identity key we received, then stores the account.
    pub fn from_grant(
        store: Box<dyn AccountStore + Send>,
        server: &str,
        device_key: SignatureKeyPair,
        device_id: &str,
        grant: &Grant,
        token: &str,
    ) -> Result<Self, CoreError> {
        if store.setting(keys::TOKEN)?.is_some() {
            return Err(CoreError::Usage(
                "this home already holds a registered account".into(),
            ));
        }
        let identity = Identity::from_secret(grant.identity_secret.as_bytes())
            .map_err(|_| forged("the identity key of the grant is malformed"))?;
        let cert = DeviceCertificate::from_bytes(grant.certificate.as_bytes())
            .and_then(|c| c.verify().map(|()| c))
            .map_err(|e| forged(format!("the certificate of the grant is invalid: {e}")))?;
        if cert.identity_key != identity.public()
            || cert.device_key.as_slice() != device_key.public()
            || cert.device_id_hex() != device_id
            || cert.address != grant.address
        {
            return Err(forged(
                "the certificate of the grant is not for this device and identity",
            ));
        }
        let mut account = Account::assemble(
            store,
            Provider::new()?,
            identity,
            DeviceSigner::new(device_key)?,
            cert,
            server.trim_end_matches('/').to_owned(),
        );
        account.finish_registration(&RegisterResponse {
            address: grant.address.clone(),
            device_id: device_id.to_owned(),
            token: token.to_owned(),
        })?;
        account.import_contacts(&grant.contacts)?;
        if let Some(key) = grant
            .recovery_key
            .as_ref()
            .and_then(|k| crate::recovery::RecoveryKey::from_bytes(k.as_bytes()))
        {
            account.set_recovery_key(&key)?;
        }
        Ok(account)
    }

    /// The conversations this device is in, with their messages since `since_ms`.
    pub fn history_since(&self, since_ms: u64) -> Result<History, CoreError> {
        self.history_where(|_, m| m.sent_at >= since_ms)
    }

    /// The conversations this device is in, with the messages `keep` keeps.
    pub(super) fn history_where(
        &self,
        keep: impl Fn(&ConversationRecord, &MessageRecord) -> bool,
    ) -> Result<History, CoreError> {
        let mut conversations = Vec::new();
        let now = crate::now_ms();
        for c in self.store.conversations()? {
            if c.left {
                continue;
            }
            let messages = self
                .store
                .messages(&c.id)?
                .into_iter()
                .filter(|m| keep(&c, m) && m.expires_at.is_none_or(|t| t > now))
                .collect();
            conversations.push(ConversationHistory {
                id: c.id,
                name: c.name,
                dm_peer: c.dm_peer,
                created_at: c.created_at,
                disappear: c.disappear,
                label: c.label,
                messages,
            });
        }
        Ok(History {
            conversations,
            deleted: Vec::new(),
        })
    }

    /// Stores transferred history: names of the conversations this device joined, and their
    /// messages (marked shown: the user saw them on the other device). Conversations this
    /// device is not in are skipped.
    pub fn import_history(&mut self, history: History) -> Result<usize, CoreError> {
        let mut ops = Vec::new();
        let mut imported = 0;
        for c in history.conversations {
            let Some(mut record) = self.store.conversation(&c.id)? else {
                continue;
            };
            record = ConversationRecord {
                name: c.name.or(record.name),
                dm_peer: c.dm_peer.or(record.dm_peer),
                created_at: c.created_at.min(record.created_at),
                disappear: record.disappear.or(c.disappear),
                label: record.label.or(c.label),
                ..record
            };
            ops.push(Op::Conversation(record));
            let mut ids = Vec::with_capacity(c.messages.len());
            let now = crate::now_ms();
            for m in c.messages {
                if m.expires_at.is_some_and(|t| t <= now) {
                    continue;
                }
                ids.push(m.id.clone());
                ops.push(Op::Message(MessageRecord {
                    conversation: c.id.clone(),
                    ..m
                }));
            }
            imported += ids.len();
            ops.push(Op::MarkShown(ids));
        }
        // Deleted for everyone since an earlier part of this history was written.
        for id in &history.deleted {
            if let Some(m) = self.store.message(id)? {
                ops.push(Op::Revise(super::changes::deleted(m)));
            }
        }
        self.store.apply(ops, crate::store::Durability::Durable)?;
        // The records just rewritten are read from the store again when needed.
        self.conversations.clear();
        Ok(imported)
    }

    /// A fresh signature key and device id for a device about to be linked.
    pub fn new_link_offer() -> Result<(SignatureKeyPair, Offer), CoreError> {
        let key = crate::identity::new_device_key()?;
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let offer = Offer {
            device_id: hex(&id),
            device_key: B64(key.public().to_vec()),
        };
        Ok((key, offer))
    }
}
