//! Contacts: identity keys pinned on first contact (a changed one held as pending until the
//! user accepts it), safety numbers, and the checks that a leaf, a key package or a Welcome's
//! members carry a certificate from their user's pinned identity key.

use super::*;

impl Account {
    /// A contact, from the cache or the store.
    pub fn contact(&self, address: &str) -> Result<Option<ContactRecord>, CoreError> {
        if let Some(c) = self
            .contacts
            .lock()
            .ok()
            .and_then(|c| c.get(address).cloned())
        {
            return Ok(Some(c));
        }
        let contact = self.store.contact(address)?;
        if let (Some(c), Ok(mut cache)) = (&contact, self.contacts.lock()) {
            cache.insert(address.to_owned(), c.clone());
        }
        Ok(contact)
    }

    pub(super) fn write_contact(&mut self, contact: ContactRecord) -> Result<(), CoreError> {
        self.store
            .apply(vec![Op::Contact(contact.clone())], Durability::Durable)?;
        self.backup_dirty = true;
        if let Ok(mut cache) = self.contacts.lock() {
            cache.insert(contact.address.clone(), contact);
        }
        Ok(())
    }

    /// The identity key trusted for `address`, if any.
    pub fn pinned_identity(&self, address: &str) -> Result<Option<Vec<u8>>, CoreError> {
        if address == self.address() {
            return Ok(Some(self.identity.public().to_vec()));
        }
        Ok(self.contact(address)?.map(|c| c.identity_key))
    }

    /// Pins a user's identity key on first contact. A different key than the pinned one is
    /// recorded as pending and refused: sending to that user stays blocked until the user
    /// accepts it with [`Account::accept_new_key`].
    ///
    /// The user's signed device list is checked under the trusted key and pinned when newer
    /// (see [`device_lists`]).
    pub fn pin(&mut self, user: &UserResponse) -> Result<(), CoreError> {
        let served = user.device_list.as_ref().map(|l| l.as_bytes());
        if user.address == self.address() {
            if user.identity_key.0 != self.identity.public() {
                return Err(CoreError::refused(
                    AlertCode::IdentityChanged,
                    "the server announces another identity key for your own address",
                ));
            }
            return self.pin_list(&user.address, &user.identity_key.0, served);
        }
        match self.contact(&user.address)? {
            Some(c) if c.identity_key == user.identity_key.0 => {
                self.pin_list(&user.address, &user.identity_key.0, served)
            }
            Some(mut c) => {
                if c.pending_key.as_deref() != Some(user.identity_key.as_bytes()) {
                    c.pending_key = Some(user.identity_key.0.clone());
                    self.write_contact(c)?;
                }
                Err(CoreError::refused(
                    AlertCode::IdentityChanged,
                    format!(
                        "the identity key of {} changed; sending to them is blocked until you \
                         compare the new safety number with them and accept the new key",
                        user.address
                    ),
                ))
            }
            None => {
                self.write_contact(ContactRecord {
                    address: user.address.clone(),
                    identity_key: user.identity_key.0.clone(),
                    verified: false,
                    pending_key: None,
                    device_list: None,
                })?;
                self.pin_list(&user.address, &user.identity_key.0, served)
            }
        }
    }

    /// Accepts the identity key the server now announces for `address` (passed as `current`),
    /// which must be the pending one. The contact is no longer verified.
    pub fn accept_new_key(&mut self, address: &str, current: &[u8]) -> Result<(), CoreError> {
        let mut c = self
            .contact(address)?
            .ok_or_else(|| CoreError::Usage(format!("{address} is not a contact yet")))?;
        if c.identity_key == current {
            // The server announces the trusted key again: nothing to accept, nothing blocked.
            c.pending_key = None;
            return self.write_contact(c);
        }
        if c.pending_key.as_deref() != Some(current) {
            return Err(CoreError::Usage(format!(
                "the identity key of {address} changed again; look at it with `missive verify {address}` first"
            )));
        }
        c.identity_key = current.to_vec();
        c.pending_key = None;
        c.verified = false;
        // The list pinned was signed by the old key; the next lookup pins one under the new.
        c.device_list = None;
        self.write_contact(c)
    }

    /// While the identity key the server announces for `address` is pending (changed, not
    /// accepted), the safety number it gives: what to compare with the contact before
    /// accepting it. `None` when nothing is pending.
    pub fn pending_safety_number(
        &self,
        address: &str,
    ) -> Result<Option<identity::SafetyNumber>, CoreError> {
        let Some(pending) = self.contact(address)?.and_then(|c| c.pending_key) else {
            return Ok(None);
        };
        let own = self.identity.public();
        Ok(Some(identity::SafetyNumber::derive(
            (self.address(), own.as_slice()),
            (address, pending.as_slice()),
        )))
    }

    /// The safety number with `address` and whether the user marked it verified.
    pub fn safety_number(
        &self,
        address: &str,
    ) -> Result<(identity::SafetyNumber, bool), CoreError> {
        let c = self
            .contact(address)?
            .ok_or_else(|| CoreError::Usage(format!("{address} is not a contact yet")))?;
        let own = self.identity.public();
        let number = identity::SafetyNumber::derive(
            (self.address(), own.as_slice()),
            (address, c.identity_key.as_slice()),
        );
        Ok((number, c.verified))
    }

    /// Marks a contact verified (the user compared safety numbers out of band).
    pub fn mark_verified(&mut self, address: &str) -> Result<(), CoreError> {
        let mut c = self
            .contact(address)?
            .ok_or_else(|| CoreError::Usage(format!("{address} is not a contact yet")))?;
        if c.pending_key.is_some() {
            return Err(CoreError::Usage(format!(
                "the identity key of {address} changed; accept or reject the new key first"
            )));
        }
        c.verified = true;
        self.write_contact(c)
    }

    /// Checks that a leaf carries a certificate from its user's pinned identity key.
    pub fn check_leaf(
        &self,
        credential: &Credential,
        signature_key: &[u8],
    ) -> Result<LeafOwner, CoreError> {
        let cert = self.certificate(credential, signature_key)?;
        match self.pinned_identity(&cert.address)? {
            None => Err(CoreError::NeedContacts(vec![cert.address])),
            Some(key) if key == cert.identity_key => Ok(LeafOwner {
                device_id: cert.device_id_hex(),
                address: cert.address,
            }),
            Some(_) => Err(CoreError::refused(
                AlertCode::UncertifiedDevice,
                format!(
                    "a device claiming to belong to {} is not certified by their identity key",
                    cert.address
                ),
            )),
        }
    }

    /// A leaf's self-consistent certificate, verifying its signature only the first time.
    pub(super) fn certificate(
        &self,
        credential: &Credential,
        signature_key: &[u8],
    ) -> Result<DeviceCertificate, CoreError> {
        let seen = |bytes: &[u8]| {
            self.verified_certificates
                .lock()
                .map(|set| set.contains(bytes))
                .unwrap_or(false)
        };
        if let Ok(basic) = BasicCredential::try_from(credential.clone()) {
            if seen(basic.identity()) {
                if let Ok(cert) = DeviceCertificate::from_bytes(basic.identity()) {
                    if cert.device_key.as_slice() == signature_key {
                        return Ok(cert);
                    }
                }
            }
        }
        let cert = identity::leaf_certificate(credential, signature_key)?;
        if let Ok(mut set) = self.verified_certificates.lock() {
            set.insert(cert.to_bytes());
        }
        Ok(cert)
    }

    /// Checks a leaf being added to a group: certified like any leaf, and on its user's
    /// signed device list.
    pub(super) fn check_added_leaf(
        &self,
        credential: &Credential,
        signature_key: &[u8],
    ) -> Result<LeafOwner, CoreError> {
        let owner = self.check_leaf(credential, signature_key)?;
        self.check_listed(&self.certificate(credential, signature_key)?)?;
        Ok(owner)
    }

    /// Checks every leaf of a set (`listed`: each must also be on its user's device list),
    /// collecting all unknown contacts at once.
    pub(super) fn check_leaves<'a>(
        &self,
        leaves: impl IntoIterator<Item = (&'a Credential, &'a [u8])>,
        listed: bool,
    ) -> Result<Vec<LeafOwner>, CoreError> {
        let mut owners = Vec::new();
        let mut unknown = BTreeSet::new();
        for (credential, key) in leaves {
            let checked = if listed {
                self.check_added_leaf(credential, key)
            } else {
                self.check_leaf(credential, key)
            };
            match checked {
                Ok(owner) => owners.push(owner),
                Err(CoreError::NeedContacts(addrs)) => unknown.extend(addrs),
                Err(e) => return Err(e),
            }
        }
        if !unknown.is_empty() {
            return Err(CoreError::NeedContacts(unknown.into_iter().collect()));
        }
        Ok(owners)
    }

    /// Verifies key packages claimed for `address`: each must be signed, for our ciphersuite,
    /// and carry a certificate from `address`'s pinned identity key for the device it was
    /// claimed for. A package of a device not on the user's signed list is left out with an
    /// alert (`unlisted_device`), and so is, when the claim is meant to be `complete` (one
    /// package per listed device), every listed device without one (`hidden_device`): the
    /// alerts come back with the packages to use.
    pub fn verify_claimed(
        &self,
        address: &str,
        claimed: &[ClaimedKeyPackage],
        complete: bool,
    ) -> Result<(Vec<KeyPackage>, Vec<Alert>), CoreError> {
        let forged = |why: String| CoreError::refused(AlertCode::ForgedKeyPackage, why);
        let mut out = Vec::with_capacity(claimed.len());
        let mut alerts = Vec::new();
        let mut seen = BTreeSet::new();
        for c in claimed {
            let MlsMessageBodyIn::KeyPackage(kp) = parse_mls(c.key_package.as_bytes())?.extract()
            else {
                return Err(forged(format!(
                    "the server sent something else than a key package for {address}"
                )));
            };
            let kp = kp
                .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                .map_err(|_| forged(format!("a key package for {address} does not verify")))?;
            if kp.ciphersuite() != DEFAULT_CIPHERSUITE {
                return Err(forged(format!(
                    "a key package for {address} uses another ciphersuite"
                )));
            }
            let leaf = kp.leaf_node();
            let owner = self.check_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
            if owner.address != address || owner.device_id != c.device_id {
                return Err(forged(format!(
                    "a key package claimed for {address} belongs to another device or user"
                )));
            }
            let cert = self.certificate(leaf.credential(), leaf.signature_key().as_slice())?;
            match self.check_listed(&cert) {
                Ok(()) => {
                    seen.insert(owner.device_id);
                    out.push(kp);
                }
                Err(CoreError::Refused(alert)) => alerts.push(alert),
                Err(e) => return Err(e),
            }
        }
        if complete {
            alerts.extend(self.hidden_devices(address, &seen)?);
        }
        Ok((out, alerts))
    }
}
