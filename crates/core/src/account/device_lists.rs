//! Signed device lists (`missive_proto::devicelist`): ours, which we sign when a device is
//! linked or revoked, and our contacts', pinned at the highest version seen.
//!
//! The rules, which every client applies:
//! - a list must verify under the user's pinned identity key, else `forged_device_list`;
//! - a lower version than the pinned one, or another list under the same version, is refused
//!   (`device_list_rollback`): a revoked device could come back with an old list;
//! - a device is added to a conversation (from a claimed key package or another member's
//!   commit) only if it is on its user's list. When it is not on the pinned list, the list is
//!   fetched once more (the user may have linked it since); if it is still not there, it is
//!   refused with `unlisted_device`;
//! - a claim that leaves out a listed device is reported (`hidden_device`).

use std::collections::BTreeSet;

use missive_proto::cert::DeviceCertificate;
use missive_proto::devicelist::{DeviceList, ListedDevice};

use super::{keys, Account};
use crate::error::{Alert, AlertCode, CoreError};
use crate::store::{Durability, Op};

impl Account {
    /// The highest signed device list seen for `address` (ours included), if any.
    pub fn pinned_list(&self, address: &str) -> Result<Option<DeviceList>, CoreError> {
        let bytes = if address == self.address() {
            self.store.setting(keys::DEVICE_LIST)?
        } else {
            self.contact(address)?.and_then(|c| c.device_list)
        };
        bytes
            .map(|b| DeviceList::from_bytes(&b))
            .transpose()
            .map_err(|e| CoreError::Storage(format!("a pinned device list: {e}")))
    }

    /// Forgets which lists were fetched: from now on a device missing from a pinned list makes
    /// the caller fetch that list again (once), before it is refused.
    pub fn begin_list_checks(&self) {
        if let Ok(mut fresh) = self.fresh_lists.lock() {
            fresh.clear();
        }
    }

    /// Checks the list the server serves for `address` (whose identity key is trusted and is
    /// `identity_key`) and pins it when it is newer than the pinned one.
    pub(super) fn pin_list(
        &mut self,
        address: &str,
        identity_key: &[u8],
        served: Option<&[u8]>,
    ) -> Result<(), CoreError> {
        if let Ok(mut fresh) = self.fresh_lists.lock() {
            fresh.insert(address.to_owned());
        }
        let pinned = self.pinned_list(address)?;
        let Some(bytes) = served else {
            return match pinned {
                // The user has not finished registering: there is nothing to add them with.
                None => Ok(()),
                Some(p) => Err(CoreError::refused(
                    AlertCode::ForgedDeviceList,
                    format!(
                        "the server no longer serves the signed device list of {address} \
                         (version {} was seen before)",
                        p.version
                    ),
                )),
            };
        };
        let list = DeviceList::open(bytes, address, identity_key).map_err(|_| {
            CoreError::refused(
                AlertCode::ForgedDeviceList,
                format!(
                    "the device list the server serves for {address} is not signed by their \
                     identity key"
                ),
            )
        })?;
        match pinned {
            Some(p) if list.version < p.version => Err(CoreError::refused(
                AlertCode::DeviceListRollback,
                format!(
                    "the server serves version {} of the device list of {address}, older than \
                     version {} seen before (a device they revoked could come back with it)",
                    list.version, p.version
                ),
            )),
            Some(p) if list.version == p.version && list != p => Err(CoreError::refused(
                AlertCode::DeviceListRollback,
                format!(
                    "the server serves another device list of {address} under version {}, \
                     which was seen with other devices",
                    list.version
                ),
            )),
            Some(p) if list.version == p.version => Ok(()),
            _ => self.store_list(address, bytes.to_vec()),
        }
    }

    fn store_list(&mut self, address: &str, bytes: Vec<u8>) -> Result<(), CoreError> {
        if address == self.address() {
            return self.store.apply(
                vec![Op::Setting(keys::DEVICE_LIST.into(), bytes)],
                Durability::Durable,
            );
        }
        let Some(mut contact) = self.contact(address)? else {
            return Err(CoreError::Usage(format!("{address} is not a contact yet")));
        };
        contact.device_list = Some(bytes);
        self.write_contact(contact)
    }

    /// Checks that the device a certificate names is on its user's signed list.
    /// `NeedContacts` when it is not on the pinned list and that list was not fetched since
    /// [`Account::begin_list_checks`]: the caller fetches it and asks again.
    pub(super) fn check_listed(&self, cert: &DeviceCertificate) -> Result<(), CoreError> {
        let list = self.pinned_list(&cert.address)?;
        if list
            .as_ref()
            .is_some_and(|l| l.lists(&cert.device_id, &cert.device_key))
        {
            return Ok(());
        }
        let fresh = self
            .fresh_lists
            .lock()
            .map(|f| f.contains(&cert.address))
            .unwrap_or(true);
        if !fresh {
            return Err(CoreError::NeedContacts(vec![cert.address.clone()]));
        }
        Err(CoreError::refused(
            AlertCode::UnlistedDevice,
            match list {
                Some(l) => format!(
                    "device {} of {} is not on their signed device list (version {}): a device \
                     they revoked, or one the server made up; it was not added",
                    cert.device_id_hex(),
                    cert.address,
                    l.version
                ),
                None => format!(
                    "{} has no signed device list yet, so device {} cannot be added",
                    cert.address,
                    cert.device_id_hex()
                ),
            },
        ))
    }

    /// The listed devices of `address` that a claim left out (ours: other than this device).
    pub(super) fn hidden_devices(
        &self,
        address: &str,
        claimed: &BTreeSet<String>,
    ) -> Result<Vec<Alert>, CoreError> {
        let Some(list) = self.pinned_list(address)? else {
            return Ok(Vec::new());
        };
        Ok(list
            .devices
            .iter()
            .map(ListedDevice::device_id_hex)
            .filter(|id| !claimed.contains(id) && *id != self.device_id)
            .map(|id| Alert {
                code: AlertCode::HiddenDevice,
                detail: format!(
                    "the server handed out no key package for device {id} of {address}, which \
                     is on their signed device list: it is not in the conversation until one \
                     of their devices adds it"
                ),
            })
            .collect())
    }

    /// Our next signed device list: the pinned one (or, for a first one, `base`) with `add`
    /// added and the devices `remove` (hex ids) removed, one version up.
    pub fn next_device_list(
        &self,
        base: &[ListedDevice],
        add: &[ListedDevice],
        remove: &[String],
    ) -> Result<Vec<u8>, CoreError> {
        let pinned = self.pinned_list(self.address())?;
        let (version, mut devices) = match pinned {
            Some(p) => (p.version + 1, p.devices),
            None => (1, base.to_vec()),
        };
        for d in add {
            if !devices.iter().any(|x| x.device_id == d.device_id) {
                devices.push(*d);
            }
        }
        devices.retain(|d| !remove.contains(&d.device_id_hex()));
        let list = self
            .identity
            .sign_device_list(self.address(), version, devices)?;
        Ok(list.to_bytes())
    }

    /// Pins a list of ours the server accepted.
    pub fn pin_own_list(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        let own = self.address().to_owned();
        let key = self.identity.public();
        self.pin_list(&own, &key, Some(bytes))
    }

    /// This device, as listed.
    pub fn listed_self(&self) -> ListedDevice {
        ListedDevice::of(&self.cert)
    }
}
