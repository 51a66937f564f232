//! Device certificates: an identity key's signature binding a device's MLS signature key to the
//! user's address. Our own small construction, documented in ARCHITECTURE.md.
//!
//! Encoding (all integers big-endian):
//! `"MSVC" | version u8 (=1) | address_len u16 | address | device_id [16] | device_key [32] |
//!  identity_key [32] | issued_at u64 | signature [64]`.
//! The signature is Ed25519 by `identity_key` over [`CERT_LABEL`] followed by every byte before it.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Domain-separation label of device certificate signatures.
pub const CERT_LABEL: &[u8] = b"missive/v1/device-certificate\0";
const MAGIC: &[u8; 4] = b"MSVC";
const VERSION: u8 = 1;
/// Longest address accepted in a certificate.
pub const MAX_ADDRESS_LEN: usize = 320;

/// A parsed device certificate. Parsing does not verify; call [`DeviceCertificate::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCertificate {
    pub address: String,
    pub device_id: [u8; 16],
    /// The device's Ed25519 MLS signature public key.
    pub device_key: [u8; 32],
    /// The user's Ed25519 identity public key.
    pub identity_key: [u8; 32],
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    pub signature: [u8; 64],
}

/// Why a certificate was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertError {
    Malformed,
    BadSignature,
}

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertError::Malformed => f.write_str("malformed device certificate"),
            CertError::BadSignature => f.write_str("device certificate signature does not verify"),
        }
    }
}

impl std::error::Error for CertError {}

impl DeviceCertificate {
    /// Issues a certificate for `device_key`, signed by `identity`.
    pub fn issue(
        identity: &SigningKey,
        address: &str,
        device_id: [u8; 16],
        device_key: [u8; 32],
        issued_at: u64,
    ) -> Self {
        let mut cert = DeviceCertificate {
            address: address.to_owned(),
            device_id,
            device_key,
            identity_key: identity.verifying_key().to_bytes(),
            issued_at,
            signature: [0; 64],
        };
        cert.signature = identity.sign(&cert.signed_message()).to_bytes();
        cert
    }

    /// The device id as lowercase hex, its textual form everywhere.
    pub fn device_id_hex(&self) -> String {
        self.device_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn body(&self) -> Vec<u8> {
        let mut out = header(MAGIC, VERSION, &self.address, 16 + 32 + 32 + 8);
        out.extend_from_slice(&self.device_id);
        out.extend_from_slice(&self.device_key);
        out.extend_from_slice(&self.identity_key);
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out
    }

    fn signed_message(&self) -> Vec<u8> {
        let mut msg = CERT_LABEL.to_vec();
        msg.extend_from_slice(&self.body());
        msg
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the canonical encoding; rejects trailing bytes and non-UTF-8 addresses.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CertError> {
        let mut r = Reader(bytes);
        let address = r.header(MAGIC, VERSION)?;
        let cert = DeviceCertificate {
            address,
            device_id: r.array()?,
            device_key: r.array()?,
            identity_key: r.array()?,
            issued_at: u64::from_be_bytes(r.array()?),
            signature: r.array()?,
        };
        if !r.0.is_empty() {
            return Err(CertError::Malformed);
        }
        Ok(cert)
    }

    /// Verifies the signature against the identity key the certificate names. The caller must
    /// still check that this identity key is the one it trusts for `address`.
    pub fn verify(&self) -> Result<(), CertError> {
        let key =
            VerifyingKey::from_bytes(&self.identity_key).map_err(|_| CertError::BadSignature)?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.signed_message(), &sig)
            .map_err(|_| CertError::BadSignature)
    }
}

/// The start our encodings share (certificates, device lists, log leaves): a magic, a format
/// byte, and the address with its length (u16 BE), with room for `rest` more bytes. The
/// address is at most MAX_ADDRESS_LEN when issuing through clients and when parsing; anything
/// longer saturates the length rather than wrap it (and fails to parse).
pub(crate) fn header(magic: &[u8; 4], format: u8, address: &str, rest: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 1 + 2 + address.len() + rest);
    out.extend_from_slice(magic);
    out.push(format);
    let len = u16::try_from(address.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(address.as_bytes());
    out
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CertError> {
        if self.0.len() < n {
            return Err(CertError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    /// Reads what [`header`] wrote: checks the magic and format, returns the address
    /// (non-empty, UTF-8, at most MAX_ADDRESS_LEN bytes).
    pub(crate) fn header(&mut self, magic: &[u8; 4], format: u8) -> Result<String, CertError> {
        if self.take(4)? != magic || self.take(1)? != [format] {
            return Err(CertError::Malformed);
        }
        let len = u16::from_be_bytes(self.array()?) as usize;
        if len == 0 || len > MAX_ADDRESS_LEN {
            return Err(CertError::Malformed);
        }
        Ok(std::str::from_utf8(self.take(len)?)
            .map_err(|_| CertError::Malformed)?
            .to_owned())
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CertError> {
        self.take(N)?.try_into().map_err(|_| CertError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn round_trip_and_verify() {
        let cert = DeviceCertificate::issue(&key(1), "alice@example.org", [7; 16], [9; 32], 42);
        let parsed = DeviceCertificate::from_bytes(&cert.to_bytes()).expect("parses");
        assert_eq!(parsed, cert);
        parsed.verify().expect("verifies");
        assert_eq!(parsed.device_id_hex(), "07".repeat(16));
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let cert = DeviceCertificate::issue(&key(1), "alice@example.org", [7; 16], [9; 32], 42);
        let mut forged = cert.clone();
        forged.address = "mallory@example.org".into();
        assert_eq!(forged.verify(), Err(CertError::BadSignature));
        let mut forged = cert.clone();
        forged.device_key = [8; 32];
        assert_eq!(forged.verify(), Err(CertError::BadSignature));
        // Re-signing with another identity key verifies, but names that other key.
        let other = DeviceCertificate::issue(&key(2), "alice@example.org", [7; 16], [9; 32], 42);
        other.verify().expect("self-consistent");
        assert_ne!(other.identity_key, cert.identity_key);
    }

    #[test]
    fn malformed_inputs_are_refused() {
        let good = DeviceCertificate::issue(&key(1), "a@b", [7; 16], [9; 32], 42).to_bytes();
        for bad in [
            vec![],
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
            [b"XXXX".as_slice(), &good[4..]].concat(),
        ] {
            assert_eq!(
                DeviceCertificate::from_bytes(&bad),
                Err(CertError::Malformed)
            );
        }
    }
}
