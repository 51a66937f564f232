//! Identity keys, device keys and certificates, and the check that a leaf of an MLS group
//! belongs to a device its user really certified.

use ed25519_dalek::SigningKey;
use missive_proto::cert::DeviceCertificate;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;

use crate::error::{AlertCode, CoreError};

/// A user's identity key pair (Ed25519). It signs device certificates; it never signs MLS
/// messages.
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    pub fn generate() -> Self {
        Identity {
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn from_secret(bytes: &[u8]) -> Result<Self, CoreError> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CoreError::Storage("identity key has the wrong length".into()))?;
        Ok(Identity {
            key: SigningKey::from_bytes(&bytes),
        })
    }

    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Certifies a device's MLS signature key.
    pub fn certify(
        &self,
        address: &str,
        device_id: [u8; 16],
        device_key: &[u8],
    ) -> Result<DeviceCertificate, CoreError> {
        let device_key: [u8; 32] = device_key
            .try_into()
            .map_err(|_| CoreError::Usage("device key must be an Ed25519 key".into()))?;
        Ok(DeviceCertificate::issue(
            &self.key,
            address,
            device_id,
            device_key,
            crate::now_ms() / 1000,
        ))
    }
}

/// A new device's MLS signature key pair.
pub fn new_device_key() -> Result<SignatureKeyPair, CoreError> {
    SignatureKeyPair::new(SignatureScheme::ED25519).map_err(CoreError::mls)
}

/// The MLS credential of a device: a basic credential whose identity is its certificate.
pub fn credential_with_key(cert: &DeviceCertificate) -> CredentialWithKey {
    CredentialWithKey {
        credential: BasicCredential::new(cert.to_bytes()).into(),
        signature_key: cert.device_key.to_vec().into(),
    }
}

/// Who a verified leaf belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafOwner {
    pub address: String,
    pub device_id: String,
}

/// Parses a leaf's certificate and checks it is self-consistent: well formed, signed by the
/// identity key it names, for this leaf's signature key. The caller must still compare that
/// identity key with the one pinned for the address.
pub fn leaf_certificate(
    credential: &Credential,
    signature_key: &[u8],
) -> Result<DeviceCertificate, CoreError> {
    let uncertified = |why: &str| CoreError::refused(AlertCode::UncertifiedDevice, why.to_owned());
    let basic = BasicCredential::try_from(credential.clone())
        .map_err(|_| uncertified("a device has no basic credential"))?;
    let cert = DeviceCertificate::from_bytes(basic.identity())
        .map_err(|_| uncertified("a device credential is not a device certificate"))?;
    cert.verify().map_err(|_| {
        uncertified(&format!(
            "a device of {} has a certificate whose signature does not verify",
            cert.address
        ))
    })?;
    if cert.device_key.as_slice() != signature_key {
        return Err(uncertified(&format!(
            "a device of {} signs with a key its certificate does not name",
            cert.address
        )));
    }
    Ok(cert)
}
