//! Identity keys, device keys and certificates, and the check that a leaf of an MLS group
//! belongs to a device its user really certified.

use ed25519_dalek::SigningKey;
use missive_proto::cert::DeviceCertificate;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::signatures::{Signer, SignerError};
use zeroize::Zeroize;

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

impl Identity {
    /// Signs a device list of `devices` at `version`.
    pub fn sign_device_list(
        &self,
        address: &str,
        version: u64,
        devices: Vec<missive_proto::devicelist::ListedDevice>,
    ) -> Result<missive_proto::devicelist::DeviceList, CoreError> {
        missive_proto::devicelist::DeviceList::issue(
            &self.key,
            address,
            version,
            devices,
            crate::now_ms() / 1000,
        )
        .map_err(|_| {
            CoreError::Usage(format!(
                "a device list holds at most {} devices",
                missive_proto::devicelist::MAX_DEVICES
            ))
        })
    }
}

/// A new device's MLS signature key pair.
pub fn new_device_key() -> Result<SignatureKeyPair, CoreError> {
    SignatureKeyPair::new(SignatureScheme::ED25519).map_err(CoreError::mls)
}

/// A device's MLS signing key, the Ed25519 key expanded once.
///
/// OpenMLS's `SignatureKeyPair` keeps the private key as bytes and rebuilds the Ed25519 key,
/// public point included (a scalar multiplication), on every signature: half the cost of
/// signing each message. This keeps the pair (stored as before) and signs with the same
/// ed25519-dalek key built once; Ed25519 signatures are deterministic, so they are the same.
pub struct DeviceSigner {
    pair: SignatureKeyPair,
    key: SigningKey,
}

impl DeviceSigner {
    pub fn new(pair: SignatureKeyPair) -> Result<Self, CoreError> {
        /// The stored shape of a `SignatureKeyPair` (serde), for its private key.
        #[derive(serde::Deserialize)]
        struct Stored {
            private: Vec<u8>,
        }
        let mut encoded = serde_json::to_vec(&pair).map_err(CoreError::storage)?;
        let stored: Result<Stored, _> = serde_json::from_slice(&encoded);
        encoded.zeroize();
        let mut private = stored.map_err(CoreError::storage)?.private;
        let key = SigningKey::try_from(private.as_slice());
        private.zeroize();
        let key =
            key.map_err(|_| CoreError::Storage("the device key is not an Ed25519 key".into()))?;
        if pair.signature_scheme() != SignatureScheme::ED25519
            || key.verifying_key().as_bytes().as_slice() != pair.public()
        {
            return Err(CoreError::Storage(
                "the device key's private and public halves do not match".into(),
            ));
        }
        Ok(DeviceSigner { pair, key })
    }

    /// The key pair as OpenMLS stores it.
    pub fn pair(&self) -> &SignatureKeyPair {
        &self.pair
    }

    pub fn public(&self) -> &[u8] {
        self.pair.public()
    }
}

impl Signer for DeviceSigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
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

/// The signature key a credential's certificate names (for a sender known only by the
/// credential it had in a past epoch; its leaf was checked against that key when it joined).
pub fn certified_device_key(credential: &Credential) -> Result<Vec<u8>, CoreError> {
    let basic = BasicCredential::try_from(credential.clone()).map_err(|_| {
        CoreError::refused(
            AlertCode::UncertifiedDevice,
            "a device has no basic credential",
        )
    })?;
    let cert = DeviceCertificate::from_bytes(basic.identity()).map_err(|_| {
        CoreError::refused(
            AlertCode::UncertifiedDevice,
            "a device credential is not a device certificate",
        )
    })?;
    Ok(cert.device_key.to_vec())
}

/// Domain-separation label of safety numbers.
pub const SAFETY_NUMBER_LABEL: &[u8] = b"missive/v1/safety-number\0";
/// Hash iterations: slows down grinding identity keys to match a displayed number.
const SAFETY_NUMBER_ITERATIONS: usize = 5200;

/// The safety number of two users: 60 digits, in 12 groups of 5, the same on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyNumber {
    groups: Vec<String>,
}

impl SafetyNumber {
    /// Derives the number from both `(address, identity key)` pairs, in either order.
    pub fn derive(a: (&str, &[u8]), b: (&str, &[u8])) -> Self {
        use sha2::{Digest, Sha512};
        let (first, second) = if (a.0, a.1) <= (b.0, b.1) {
            (a, b)
        } else {
            (b, a)
        };
        let mut input = Vec::new();
        for (address, key) in [first, second] {
            input.extend_from_slice(&(address.len() as u32).to_be_bytes());
            input.extend_from_slice(address.as_bytes());
            input.extend_from_slice(&(key.len() as u32).to_be_bytes());
            input.extend_from_slice(key);
        }
        let mut digest = Sha512::new_with_prefix(SAFETY_NUMBER_LABEL)
            .chain_update(&input)
            .finalize();
        for _ in 0..SAFETY_NUMBER_ITERATIONS {
            digest = Sha512::new_with_prefix(digest)
                .chain_update(&input)
                .finalize();
        }
        let groups = digest[..60]
            .chunks(5)
            .map(|c| {
                let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
                format!("{:05}", n % 100_000)
            })
            .collect();
        SafetyNumber { groups }
    }

    /// The 12 groups of 5 digits.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The digits as three lines of four groups.
    pub fn display(&self) -> String {
        self.groups
            .chunks(4)
            .map(|line| line.join(" "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The payload to encode in a QR code for scanning.
    pub fn qr_payload(&self) -> String {
        format!("missive-safety-number:v1:{}", self.groups.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_numbers_are_symmetric_and_change_with_any_key() {
        let a = ("alice@example.org", [1u8; 32].as_slice());
        let b = ("bob@example.org", [2u8; 32].as_slice());
        let n = SafetyNumber::derive(a, b);
        assert_eq!(n, SafetyNumber::derive(b, a));
        assert_eq!(n.groups().len(), 12);
        assert!(n
            .groups()
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit())));
        assert_eq!(n.display().lines().count(), 3);
        assert_ne!(
            n,
            SafetyNumber::derive(("alice@example.org", &[3u8; 32]), b)
        );
        assert_ne!(n, SafetyNumber::derive(a, ("bob@example.org", &[3u8; 32])));
        assert_ne!(
            n,
            SafetyNumber::derive(("carol@example.org", &[1u8; 32]), b)
        );
        assert!(n.qr_payload().ends_with(&n.groups().concat()));
    }

    /// The device signer makes OpenMLS's own signatures, and refuses a pair whose halves
    /// disagree.
    #[test]
    fn the_device_signer_signs_as_the_key_pair_does() {
        let pair = new_device_key().expect("key");
        let expected = pair.sign(b"payload").expect("signed");
        let stored = serde_json::to_vec(&pair).expect("stored");
        let signer =
            DeviceSigner::new(serde_json::from_slice(&stored).expect("read")).expect("signer");
        assert_eq!(signer.sign(b"payload").expect("signed"), expected);
        assert_eq!(signer.public(), pair.public());

        let other = new_device_key().expect("key");
        let mut mixed: serde_json::Value = serde_json::from_slice(&stored).expect("json");
        mixed["public"] = serde_json::json!(other.public());
        let mixed: SignatureKeyPair = serde_json::from_value(mixed).expect("pair");
        assert!(DeviceSigner::new(mixed).is_err());
    }
}
