//! The flows that keep the directory honest: our signed device list (made sure of, published
//! and retried on a race), key lookups checked against the key transparency log, the watch of
//! our own entries in it, key package claims checked against each user's signed list, and
//! our devices (listed, revoked), and contacts' safety numbers and identity changes.
//! The checks themselves are the account's (`account::device_lists`, `account::transparency`).

use missive_proto::api::*;
use missive_proto::cert::DeviceCertificate;
use missive_proto::devicelist::ListedDevice;
use missive_proto::{ErrorCode, B64};
use openmls::prelude::KeyPackage;

use super::{Client, DeviceStatus, MAX_CONTACT_ROUNDS};
use crate::error::{AlertCode, CoreError};

impl Client {
    /// The safety number with `address` (pinning their key on first contact) and whether it
    /// is marked verified. Refused when the server now announces another key.
    pub async fn safety_number(
        &mut self,
        address: &str,
    ) -> Result<(crate::identity::SafetyNumber, bool), CoreError> {
        match self.fetch_user(address).await {
            Ok(_) => {}
            // The number depends on the identity keys alone: a device list refused (and kept
            // as an alert) does not hide it.
            Err(CoreError::Refused(a))
                if matches!(
                    a.code,
                    AlertCode::ForgedDeviceList | AlertCode::DeviceListRollback
                ) => {}
            Err(e) => return Err(e),
        }
        self.account.safety_number(address)
    }

    /// Accepts the identity key the server now announces for `address`.
    pub async fn accept_new_key(&mut self, address: &str) -> Result<(), CoreError> {
        let user = self.lookup_checked(address).await?;
        match self.account.pin(&user) {
            Ok(()) | Err(CoreError::Refused(_)) => self
                .account
                .accept_new_key(address, user.identity_key.as_bytes()),
            Err(e) => Err(e),
        }
    }

    /// The contacts whose identity key changed and was not accepted yet (sorted): nothing is
    /// sent to them until it is.
    pub fn identity_changes(&self) -> Result<Vec<String>, CoreError> {
        let mut changed: Vec<String> = self
            .account
            .store()
            .contacts()?
            .into_iter()
            .filter(|c| c.pending_key.is_some())
            .map(|c| c.address)
            .collect();
        changed.sort();
        Ok(changed)
    }

    /// Makes sure our user has a signed device list: pins the server's (checked) or, when
    /// there is none yet (a registration that stopped before publishing it), publishes a
    /// first one naming the devices our identity key certified.
    pub async fn ensure_device_list(&mut self) -> Result<(), CoreError> {
        let address = self.account.address().to_owned();
        if self.account.pinned_list(&address)?.is_some() {
            return Ok(());
        }
        let user = self.fetch_user(&address).await?;
        if self.account.pinned_list(&address)?.is_some() {
            return Ok(());
        }
        let own = self.account.identity_key();
        let certified: Vec<ListedDevice> = user
            .devices
            .iter()
            .filter_map(|d| DeviceCertificate::from_bytes(d.certificate.as_bytes()).ok())
            .filter(|c| c.verify().is_ok() && c.identity_key == own && c.address == address)
            .map(|c| ListedDevice::of(&c))
            .collect();
        self.publish_device_list(&certified, &[], &[]).await
    }

    /// Signs and publishes our next device list (`add` added, `remove` removed; `base` for a
    /// first list). When another device of ours published one meanwhile, fetches it and signs
    /// the next.
    pub(super) async fn publish_device_list(
        &mut self,
        base: &[ListedDevice],
        add: &[ListedDevice],
        remove: &[String],
    ) -> Result<(), CoreError> {
        let address = self.account.address().to_owned();
        let mut attempts = 0;
        loop {
            let list = self.account.next_device_list(base, add, remove)?;
            let published = self
                .transport()
                .put_no_content(
                    "/v1/device-list",
                    &PublishDeviceListRequest {
                        device_list: B64(list.clone()),
                    },
                )
                .await;
            match published {
                Ok(()) => return self.account.pin_own_list(&list),
                Err(e) if e.server_code() == Some(ErrorCode::StaleDeviceList) && attempts < 3 => {
                    attempts += 1;
                    self.fetch_user(&address).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Looks a user up, with the proof that what the server serves is in its key transparency
    /// log (checked, and the log's head kept, before the caller pins anything).
    pub(super) async fn lookup_checked(
        &mut self,
        address: &str,
    ) -> Result<UserResponse, CoreError> {
        self.ensure_kt_log().await?;
        let since = self.account.kt_head()?.map_or(0, |h| h.size);
        let user = Self::lookup_user(self.transport(), address, since).await?;
        if let Err(e) = self.account.check_transparency(&user) {
            self.record_refusal(&e);
            return Err(e);
        }
        Ok(user)
    }

    /// Pins the domain's transparency log (its domain and key) at first use.
    async fn ensure_kt_log(&mut self) -> Result<(), CoreError> {
        if self.account.kt_log()?.is_none() {
            let info: TransparencyInfo = self.transport().get("/v1/transparency").await?;
            self.account.pin_kt_log(&info.domain, info.key.as_bytes())?;
        }
        Ok(())
    }

    /// Checks the heads other members passed on against the log the server shows us now;
    /// returns the alerts (a split view, or a current log that does not extend ours), each
    /// also kept.
    pub(super) async fn check_gossip(&mut self) -> Result<Vec<crate::Alert>, CoreError> {
        let mut alerts = Vec::new();
        for gossip in self.account.gossip_pending()? {
            let since = self.account.kt_head()?.map_or(0, |h| h.size);
            let info: TransparencyInfo = self
                .transport()
                .get(&format!(
                    "/v1/transparency?since={since}&peer={}",
                    gossip.size
                ))
                .await?;
            alerts.extend(self.account.check_gossip(&info, &gossip)?);
        }
        Ok(alerts)
    }

    /// Looks at what the transparency log holds in our own name; returns the alerts (an
    /// identity key for our address that is not ours). A refusal of the server's answer is an
    /// alert too, kept, not an error that would stop the sync.
    pub async fn watch_own_entries(&mut self) -> Result<Vec<crate::Alert>, CoreError> {
        self.ensure_kt_log().await?;
        let since = self.account.kt_head()?.map_or(0, |h| h.size);
        let answer: KtOwnEntries = self
            .transport()
            .get(&format!("/v1/transparency/mine?since={since}"))
            .await?;
        match self.account.check_own_entries(&answer) {
            Ok(alerts) => Ok(alerts),
            Err(CoreError::Refused(alert)) => {
                self.account.record_alert(&alert)?;
                Ok(vec![alert])
            }
            Err(e) => Err(e),
        }
    }

    /// One key package per listed device of `address`, each checked. Devices left out by the
    /// checks are reported as alerts; none left at all is an error.
    pub(super) async fn claim(&mut self, address: &str) -> Result<Vec<KeyPackage>, CoreError> {
        self.account.begin_list_checks();
        self.fetch_user(address).await?;
        self.claim_fetched(address).await
    }

    /// [`Client::claim`] once `address` was just fetched (its list is fresh).
    pub(super) async fn claim_fetched(
        &mut self,
        address: &str,
    ) -> Result<Vec<KeyPackage>, CoreError> {
        if self.account.pinned_list(address)?.is_none() {
            return Err(CoreError::Usage(format!(
                "{address} has not finished registering (no signed device list yet): try again \
                 later"
            )));
        }
        let claimed: ClaimKeyPackagesResponse = self
            .transport()
            .post(
                "/v1/key-packages/claim",
                &ClaimKeyPackagesRequest {
                    address: address.to_owned(),
                },
            )
            .await?;
        let mut rounds = 0;
        let (packages, alerts) = loop {
            match self
                .account
                .verify_claimed(address, &claimed.key_packages, true)
            {
                Err(CoreError::NeedContacts(addresses)) if rounds < MAX_CONTACT_ROUNDS => {
                    rounds += 1;
                    for a in addresses {
                        self.fetch_user(&a).await?;
                    }
                }
                Err(e) => {
                    self.record_refusal(&e);
                    return Err(e);
                }
                Ok(checked) => break checked,
            }
        };
        for alert in &alerts {
            self.account.record_alert(alert)?;
        }
        match alerts.into_iter().next() {
            Some(alert) if packages.is_empty() && address != self.account.address() => {
                Err(CoreError::Refused(alert))
            }
            _ => Ok(packages),
        }
    }

    /// Key packages of this user's other devices, which take part in every conversation.
    pub(super) async fn claim_own_devices(&mut self) -> Result<Vec<KeyPackage>, CoreError> {
        let address = self.account.address().to_owned();
        self.account.begin_list_checks();
        self.fetch_user(&address).await?;
        let listed = self
            .account
            .pinned_list(&address)?
            .map_or(0, |l| l.devices.len());
        if listed < 2 {
            return Ok(Vec::new());
        }
        // The claim hands out one of this device's packages too; the commit skips it.
        self.claim_fetched(&address).await
    }
    /// This user's devices as the server lists them, each checked against our own identity key.
    pub async fn devices(&mut self) -> Result<Vec<DeviceStatus>, CoreError> {
        let address = self.account.address().to_owned();
        let user = self.fetch_user(&address).await?;
        let own = self.account.identity_key();
        let current = self.account.device_id();
        let list = self.account.pinned_list(&address)?;
        let list_version = list.as_ref().map_or(0, |l| l.version);
        Ok(user
            .devices
            .iter()
            .map(|d| {
                let cert =
                    missive_proto::cert::DeviceCertificate::from_bytes(d.certificate.as_bytes())
                        .ok()
                        .filter(|c| c.verify().is_ok());
                let certified = cert.as_ref().is_some_and(|c| {
                    c.identity_key == own
                        && c.address == address
                        && c.device_id_hex() == d.device_id
                });
                let listed = certified
                    && cert
                        .as_ref()
                        .zip(list.as_ref())
                        .is_some_and(|(c, l)| l.lists(&c.device_id, &c.device_key));
                DeviceStatus {
                    id: d.device_id.clone(),
                    current: d.device_id == current,
                    certified,
                    issued_at: cert.map(|c| c.issued_at).unwrap_or(0),
                    listed,
                    list_version,
                }
            })
            .collect())
    }

    /// Revokes another device of this account: the server invalidates its token at once, then
    /// every conversation it is in gets a commit removing it, so that nothing sent afterwards
    /// can be read with its state. Returns the number of conversations it was removed from.
    /// Running it again finishes an interrupted revocation.
    pub async fn revoke_device(&mut self, device_id: &str) -> Result<usize, CoreError> {
        if device_id == self.account.device_id() {
            return Err(CoreError::Usage(
                "this is the device you are using; revoke it from another of your devices".into(),
            ));
        }
        let devices = self.devices().await?;
        let active = devices.iter().any(|d| d.id == device_id);
        let address = self.account.address().to_owned();
        let on_list = self
            .account
            .pinned_list(&address)?
            .is_some_and(|l| l.lists_id(device_id));
        let conversations = self.account.conversations_with_device(device_id)?;
        if !active && !on_list && conversations.is_empty() {
            return Err(CoreError::Usage(format!(
                "no device {device_id} on your account (see `missive devices`)"
            )));
        }
        // Signed first: once our list no longer names it, no client of anyone adds it again,
        // whatever the server does.
        if on_list {
            self.publish_device_list(&[], &[], &[device_id.to_owned()])
                .await?;
        }
        if active {
            self.transport()
                .delete(&format!("/v1/devices/{device_id}"))
                .await?;
        }
        let remove = [device_id.to_owned()];
        for conversation in &conversations {
            self.commit_with(conversation, &[], &remove).await?;
        }
        Ok(conversations.len())
    }
}
