//! Key transparency: every signed device list a server accepts is appended, as a leaf naming
//! the address, its identity key, the list's version and its hash, to an append-only Merkle
//! log (RFC 6962 trees, through the `ct-merkle` crate). The server signs the log's head (size
//! and root) with a key of its own, answers every key lookup with a proof that the key and
//! list it serves are in the log, and proves that each head extends the ones a client saw
//! before. So the directory cannot show one user a key that is not in the log, nor rewrite the
//! log's past, without clients and auditors noticing. Our own encoding, documented in
//! ARCHITECTURE.md.
//!
//! Leaf: `"MSKT" | format u8 (=1) | address_len u16 | address | identity_key [32] |
//! list_version u64 | list_hash [32]` (SHA-256 of the signed list's bytes; integers big-endian).
//! Tree head signature: Ed25519 by the log key over [`HEAD_LABEL`] `| domain_len u16 | domain |
//! size u64 | root [32]`.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2_kt::{Digest, Sha256};

use crate::cert::{header, CertError, Reader};

/// Domain-separation label of tree head signatures.
pub const HEAD_LABEL: &[u8] = b"missive/v1/tree-head\0";
const MAGIC: &[u8; 4] = b"MSKT";
const FORMAT: u8 = 1;

/// One entry of the log: an address's identity key and signed device list, as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub address: String,
    pub identity_key: [u8; 32],
    pub list_version: u64,
    /// SHA-256 of the signed device list's bytes.
    pub list_hash: [u8; 32],
}

impl Leaf {
    /// The leaf for a signed device list (its bytes) of `address` under `identity_key`.
    pub fn of_list(address: &str, identity_key: [u8; 32], version: u64, list: &[u8]) -> Self {
        Leaf {
            address: address.to_owned(),
            identity_key,
            list_version: version,
            list_hash: Sha256::digest(list).into(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = header(MAGIC, FORMAT, &self.address, 32 + 8 + 32);
        out.extend_from_slice(&self.identity_key);
        out.extend_from_slice(&self.list_version.to_be_bytes());
        out.extend_from_slice(&self.list_hash);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CertError> {
        let mut r = Reader(bytes);
        let address = r.header(MAGIC, FORMAT)?;
        let leaf = Leaf {
            address,
            identity_key: r.array()?,
            list_version: u64::from_be_bytes(r.array()?),
            list_hash: r.array()?,
        };
        if !r.0.is_empty() {
            return Err(CertError::Malformed);
        }
        Ok(leaf)
    }
}

/// A signed head of a domain's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: [u8; 32],
    pub signature: [u8; 64],
}

fn head_message(domain: &str, size: u64, root: &[u8; 32]) -> Vec<u8> {
    let mut msg = HEAD_LABEL.to_vec();
    let len = u16::try_from(domain.len()).unwrap_or(u16::MAX);
    msg.extend_from_slice(&len.to_be_bytes());
    msg.extend_from_slice(domain.as_bytes());
    msg.extend_from_slice(&size.to_be_bytes());
    msg.extend_from_slice(root);
    msg
}

impl TreeHead {
    pub fn sign(key: &SigningKey, domain: &str, size: u64, root: [u8; 32]) -> Self {
        let signature = key.sign(&head_message(domain, size, &root)).to_bytes();
        TreeHead {
            size,
            root,
            signature,
        }
    }

    /// Whether the log key `key` signed this head for `domain`.
    pub fn verify(&self, key: &[u8], domain: &str) -> bool {
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            return false;
        };
        let Ok(key) = VerifyingKey::from_bytes(&key) else {
            return false;
        };
        key.verify_strict(
            &head_message(domain, self.size, &self.root),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }

    fn root_hash(&self) -> RootHash<Sha256> {
        RootHash::new(self.root.into(), self.size)
    }

    /// Whether `leaf` is at `index` in the tree this head describes (`proof`: RFC 6962 audit
    /// path, concatenated hashes).
    pub fn includes(&self, leaf: &Leaf, index: u64, proof: &[u8]) -> bool {
        if !proof.len().is_multiple_of(32) {
            return false;
        }
        let proof = InclusionProof::<Sha256>::from_bytes(proof.to_vec());
        self.root_hash()
            .verify_inclusion(&leaf.to_bytes(), index, &proof)
            .is_ok()
    }

    /// Whether this head's tree extends the tree of `older` (`proof`: RFC 6962 consistency
    /// proof between them). Equal sizes need equal roots; a smaller head never extends.
    pub fn extends(&self, older: &TreeHead, proof: &[u8]) -> bool {
        if older.size > self.size {
            return false;
        }
        if older.size == self.size {
            return older.root == self.root;
        }
        if older.size == 0 {
            return true;
        }
        let Ok(proof) = ConsistencyProof::<Sha256>::try_from_bytes(proof.to_vec()) else {
            return false;
        };
        self.root_hash()
            .verify_consistency(&older.root_hash(), &proof)
            .is_ok()
    }
}

/// The log itself, in memory: leaves in order, their tree, proofs.
#[derive(Default)]
pub struct Log {
    tree: MemoryBackedTree<Sha256, Vec<u8>>,
}

impl Log {
    pub fn new() -> Self {
        Log {
            tree: MemoryBackedTree::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Appends a leaf (its bytes).
    pub fn push(&mut self, leaf: Vec<u8>) {
        self.tree.push(leaf);
    }

    pub fn root(&self) -> [u8; 32] {
        (*self.tree.root().as_bytes()).into()
    }

    /// The audit path of the leaf at `index`, or `None` past the end.
    pub fn prove_inclusion(&self, index: u64) -> Option<Vec<u8>> {
        let index = usize::try_from(index).ok()?;
        (index < self.tree.len() as usize)
            .then(|| self.tree.prove_inclusion(index).as_bytes().to_vec())
    }

    /// The proof that the log extends its prefix of `size` leaves, or `None` when `size` is 0
    /// or beyond the end (nothing to prove, or nothing provable).
    pub fn prove_consistency(&self, size: u64) -> Option<Vec<u8>> {
        let len = self.tree.len();
        (size > 0 && size <= len).then(|| {
            self.tree
                .prove_consistency((len - size) as usize)
                .as_bytes()
                .to_vec()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: u8) -> Leaf {
        Leaf::of_list(&format!("user{n}@example.org"), [n; 32], 1, &[n; 10])
    }

    #[test]
    fn leaves_round_trip_and_refuse_malformed_bytes() {
        let l = leaf(3);
        assert_eq!(Leaf::from_bytes(&l.to_bytes()).expect("parses"), l);
        let good = l.to_bytes();
        for bad in [
            vec![],
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
        ] {
            assert!(Leaf::from_bytes(&bad).is_err());
        }
    }

    #[test]
    fn heads_prove_inclusion_and_extension_and_nothing_else() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let mut log = Log::new();
        for n in 0..5 {
            log.push(leaf(n).to_bytes());
        }
        let old = TreeHead::sign(&key, "example.org", log.len(), log.root());
        assert!(old.verify(&public, "example.org"));
        assert!(!old.verify(&public, "other.org"), "bound to its domain");
        let proof = log.prove_inclusion(3).expect("in range");
        assert!(old.includes(&leaf(3), 3, &proof));
        assert!(!old.includes(&leaf(4), 3, &proof), "another leaf");
        assert!(!old.includes(&leaf(3), 2, &proof), "another place");
        for n in 5..12 {
            log.push(leaf(n).to_bytes());
        }
        let new = TreeHead::sign(&key, "example.org", log.len(), log.root());
        let consistency = log.prove_consistency(old.size).expect("provable");
        assert!(new.extends(&old, &consistency));
        assert!(
            !old.extends(&new, &consistency),
            "a smaller head never extends"
        );
        // A log whose past was rewritten does not extend the old head.
        let mut forked = Log::new();
        for n in 0..12 {
            forked.push(leaf(if n == 1 { 99 } else { n }).to_bytes());
        }
        let forked_head = TreeHead::sign(&key, "example.org", forked.len(), forked.root());
        let forked_proof = forked.prove_consistency(old.size).expect("provable");
        assert!(!forked_head.extends(&old, &forked_proof));
        assert!(log.prove_consistency(0).is_none());
        assert!(log.prove_consistency(13).is_none());
        assert!(log.prove_inclusion(12).is_none());
    }
}
