//! Signed device lists: the set of a user's devices, signed by their identity key, with a
//! version that only grows. Linking a device and revoking one each publish a new version; the
//! server stores and serves the list but cannot make one, so it cannot add a device to a user
//! (nor bring back one the user revoked) without clients noticing. Our own small construction,
//! documented in ARCHITECTURE.md.
//!
//! Encoding (all integers big-endian):
//! `"MSDL" | format u8 (=1) | address_len u16 | address | identity_key [32] | version u64 |
//!  issued_at u64 | count u16 | count × (device_id [16] | device_key [32]) | signature [64]`,
//! devices sorted by id, no id twice. The signature is Ed25519 by `identity_key` over
//! [`LIST_LABEL`] followed by every byte before it.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::cert::{header, CertError, DeviceCertificate, Reader, MAX_ADDRESS_LEN};

/// Domain-separation label of device list signatures.
pub const LIST_LABEL: &[u8] = b"missive/v1/device-list\0";
const MAGIC: &[u8; 4] = b"MSDL";
const FORMAT: u8 = 1;
/// Most devices one user may have listed at once.
pub const MAX_DEVICES: usize = 64;

/// One listed device: its id and the MLS signature key its certificate binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedDevice {
    pub device_id: [u8; 16],
    pub device_key: [u8; 32],
}

impl ListedDevice {
    /// The device a certificate names.
    pub fn of(cert: &DeviceCertificate) -> Self {
        ListedDevice {
            device_id: cert.device_id,
            device_key: cert.device_key,
        }
    }

    /// The device id as lowercase hex, its textual form everywhere.
    pub fn device_id_hex(&self) -> String {
        self.device_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A parsed device list. Parsing does not verify; call [`DeviceList::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceList {
    pub address: String,
    /// The user's Ed25519 identity public key, which signs the list.
    pub identity_key: [u8; 32],
    /// Grows by at least one with every change; clients refuse a lower one than they saw.
    pub version: u64,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    /// Sorted by device id, each id once.
    pub devices: Vec<ListedDevice>,
    pub signature: [u8; 64],
}

impl DeviceList {
    /// Signs a list of `devices` (sorted here; a device id given twice is refused).
    pub fn issue(
        identity: &SigningKey,
        address: &str,
        version: u64,
        mut devices: Vec<ListedDevice>,
        issued_at: u64,
    ) -> Result<Self, CertError> {
        devices.sort();
        if devices.len() > MAX_DEVICES
            || devices.windows(2).any(|w| w[0].device_id == w[1].device_id)
            || address.is_empty()
            || address.len() > MAX_ADDRESS_LEN
        {
            return Err(CertError::Malformed);
        }
        let mut list = DeviceList {
            address: address.to_owned(),
            identity_key: identity.verifying_key().to_bytes(),
            version,
            issued_at,
            devices,
            signature: [0; 64],
        };
        list.signature = identity.sign(&list.signed_message()).to_bytes();
        Ok(list)
    }

    /// Whether the device with this id and signature key is listed.
    pub fn lists(&self, device_id: &[u8; 16], device_key: &[u8]) -> bool {
        self.devices
            .binary_search_by(|d| d.device_id.cmp(device_id))
            .is_ok_and(|i| self.devices[i].device_key.as_slice() == device_key)
    }

    /// Whether the device with this hex id is listed (whatever its key).
    pub fn lists_id(&self, device_id_hex: &str) -> bool {
        self.devices
            .iter()
            .any(|d| d.device_id_hex() == device_id_hex)
    }

    fn body(&self) -> Vec<u8> {
        // Bounded by MAX_DEVICES when issuing and parsing.
        let mut out = header(
            MAGIC,
            FORMAT,
            &self.address,
            32 + 8 + 8 + 2 + 48 * self.devices.len(),
        );
        out.extend_from_slice(&self.identity_key);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        let count = u16::try_from(self.devices.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for d in &self.devices {
            out.extend_from_slice(&d.device_id);
            out.extend_from_slice(&d.device_key);
        }
        out
    }

    fn signed_message(&self) -> Vec<u8> {
        let mut msg = LIST_LABEL.to_vec();
        msg.extend_from_slice(&self.body());
        msg
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses the canonical encoding: devices strictly sorted by id, no trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CertError> {
        let mut r = Reader(bytes);
        let address = r.header(MAGIC, FORMAT)?;
        let identity_key = r.array()?;
        let version = u64::from_be_bytes(r.array()?);
        let issued_at = u64::from_be_bytes(r.array()?);
        let count = u16::from_be_bytes(r.array()?) as usize;
        if count > MAX_DEVICES {
            return Err(CertError::Malformed);
        }
        let mut devices = Vec::with_capacity(count);
        for _ in 0..count {
            devices.push(ListedDevice {
                device_id: r.array()?,
                device_key: r.array()?,
            });
        }
        if devices.windows(2).any(|w| w[0].device_id >= w[1].device_id) {
            return Err(CertError::Malformed);
        }
        let list = DeviceList {
            address,
            identity_key,
            version,
            issued_at,
            devices,
            signature: r.array()?,
        };
        if !r.0.is_empty() {
            return Err(CertError::Malformed);
        }
        Ok(list)
    }

    /// Verifies the signature against the identity key the list names. The caller must still
    /// check that this identity key is the one it trusts for `address`.
    pub fn verify(&self) -> Result<(), CertError> {
        let key =
            VerifyingKey::from_bytes(&self.identity_key).map_err(|_| CertError::BadSignature)?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.signed_message(), &sig)
            .map_err(|_| CertError::BadSignature)
    }

    /// Parses and verifies `bytes` as `address`'s list under `identity_key`.
    pub fn open(bytes: &[u8], address: &str, identity_key: &[u8]) -> Result<Self, CertError> {
        let list = Self::from_bytes(bytes)?;
        if list.address != address || list.identity_key.as_slice() != identity_key {
            return Err(CertError::BadSignature);
        }
        list.verify()?;
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn device(id: u8) -> ListedDevice {
        ListedDevice {
            device_id: [id; 16],
            device_key: [id.wrapping_add(100); 32],
        }
    }

    #[test]
    fn round_trip_verify_and_lookup() {
        let list = DeviceList::issue(
            &key(1),
            "alice@example.org",
            3,
            vec![device(9), device(2)],
            42,
        )
        .expect("a list");
        assert_eq!(list.devices, vec![device(2), device(9)], "sorted");
        let bytes = list.to_bytes();
        let parsed = DeviceList::open(
            &bytes,
            "alice@example.org",
            &key(1).verifying_key().to_bytes(),
        )
        .expect("opens");
        assert_eq!(parsed, list);
        assert!(parsed.lists(&[9; 16], &[109; 32]));
        assert!(!parsed.lists(&[9; 16], &[1; 32]), "same id, other key");
        assert!(!parsed.lists(&[3; 16], &[103; 32]));
        assert!(parsed.lists_id(&"02".repeat(16)));
    }

    #[test]
    fn any_changed_field_or_another_signer_is_refused() {
        let list =
            DeviceList::issue(&key(1), "alice@example.org", 3, vec![device(2)], 42).expect("list");
        let pk = key(1).verifying_key().to_bytes();
        let mut more = list.clone();
        more.devices.push(device(7));
        let mut older = list.clone();
        older.version = 2;
        for forged in [more, older] {
            assert_eq!(
                DeviceList::open(&forged.to_bytes(), "alice@example.org", &pk),
                Err(CertError::BadSignature)
            );
        }
        // Signed by another key: verifies on its own, refused under Alice's key.
        let other =
            DeviceList::issue(&key(2), "alice@example.org", 9, vec![device(2)], 42).expect("list");
        other.verify().expect("self-consistent");
        assert!(DeviceList::open(&other.to_bytes(), "alice@example.org", &pk).is_err());
        assert!(DeviceList::open(&list.to_bytes(), "bob@example.org", &pk).is_err());
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert!(
            DeviceList::issue(&key(1), "a@b", 1, vec![device(2), device(2)], 0).is_err(),
            "an id twice"
        );
        let good = DeviceList::issue(&key(1), "a@b", 1, vec![device(2), device(3)], 0)
            .expect("list")
            .to_bytes();
        // The two devices swapped: not sorted.
        let header = 4 + 1 + 2 + 3 + 32 + 8 + 8 + 2;
        let mut swapped = good.clone();
        swapped[header..header + 48].copy_from_slice(&good[header + 48..header + 96]);
        swapped[header + 48..header + 96].copy_from_slice(&good[header..header + 48]);
        for bad in [
            vec![],
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
            [b"MSVC".as_slice(), &good[4..]].concat(),
            swapped,
        ] {
            assert_eq!(DeviceList::from_bytes(&bad), Err(CertError::Malformed));
        }
    }
}
