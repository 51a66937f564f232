//! The OpenMLS provider: libcrux crypto and an in-memory key-value storage that the account
//! persists atomically together with its own state (see `account::Account::save`).

use std::sync::atomic::{AtomicBool, Ordering};

use openmls_libcrux_crypto::CryptoProvider;
use openmls_memory_storage::{MemoryStorage, MemoryStorageError};
use openmls_traits::storage::{traits, StorageProvider, CURRENT_VERSION};
use openmls_traits::OpenMlsProvider;

/// libcrux crypto and randomness, memory storage.
pub struct Provider {
    crypto: CryptoProvider,
    pub(crate) storage: TrackedStorage,
}

impl Provider {
    pub fn new() -> Result<Self, crate::CoreError> {
        Ok(Provider {
            crypto: CryptoProvider::new().map_err(crate::CoreError::mls)?,
            storage: TrackedStorage::default(),
        })
    }
}

impl OpenMlsProvider for Provider {
    type CryptoProvider = CryptoProvider;
    type RandProvider = CryptoProvider;
    type StorageProvider = TrackedStorage;

    fn storage(&self) -> &TrackedStorage {
        &self.storage
    }

    fn crypto(&self) -> &CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &CryptoProvider {
        &self.crypto
    }
}

/// The label OpenMLS's memory storage puts before the key of a group's message secrets.
pub(crate) const MESSAGE_SECRETS_LABEL: &[u8] = b"MessageSecrets";

/// The first byte of a group's message secrets stored as postcard. Entries written before it
/// are OpenMLS's JSON, which starts with `{`.
const SECRETS_POSTCARD: u8 = 1;

/// The storage key of a group's message secrets: OpenMLS's memory storage's own layout (label,
/// JSON of the group id, version), so that its delete finds what is written here.
fn message_secrets_key<GroupId: traits::GroupId<CURRENT_VERSION>>(
    group_id: &GroupId,
) -> Result<Vec<u8>, MemoryStorageError> {
    let mut key = MESSAGE_SECRETS_LABEL.to_vec();
    serde_json::to_writer(&mut key, group_id)?;
    key.extend_from_slice(&CURRENT_VERSION.to_be_bytes());
    Ok(key)
}

/// The memory storage, noting whether anything but message secrets was written or deleted
/// since [`TrackedStorage::take_other_writes`] was last called.
///
/// Sending or receiving an application message rewrites only the group's message secrets (a
/// few kilobytes), while the group's other entries (its ratchet tree: hundreds of kilobytes
/// in a group of 50) stay as they are. Knowing that, a save compares only the message
/// secrets with what is on disk instead of every entry.
#[derive(Default)]
pub struct TrackedStorage {
    pub(crate) inner: MemoryStorage,
    other_writes: AtomicBool,
}

impl TrackedStorage {
    /// Whether anything but message secrets changed since the last call; resets the note.
    pub(crate) fn take_other_writes(&self) -> bool {
        self.other_writes.swap(false, Ordering::AcqRel)
    }

    /// Notes a change other than of message secrets (also: one a failed save did not write).
    pub(crate) fn note_other_writes(&self) {
        self.other_writes.store(true, Ordering::Release);
    }
}

/// Every method is the memory storage's; writes and deletes other than of message secrets
/// are noted first.
impl StorageProvider<CURRENT_VERSION> for TrackedStorage {
    type Error = <MemoryStorage as StorageProvider<CURRENT_VERSION>>::Error;

    fn write_mls_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        config: &MlsGroupJoinConfig,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.write_mls_join_config(group_id, config)
    }

    fn append_own_leaf_node<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        leaf_node: &LeafNode,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.append_own_leaf_node(group_id, leaf_node)
    }

    fn queue_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
        proposal: &QueuedProposal,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.queue_proposal(group_id, proposal_ref, proposal)
    }

    fn write_tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        tree: &TreeSync,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.write_tree(group_id, tree)
    }

    fn write_interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        interim_transcript_hash: &InterimTranscriptHash,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner
            .write_interim_transcript_hash(group_id, interim_transcript_hash)
    }

    fn write_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_context: &GroupContext,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.write_context(group_id, group_context)
    }

    fn write_confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        confirmation_tag: &ConfirmationTag,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner
            .write_confirmation_tag(group_id, confirmation_tag)
    }

    fn write_group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_state: &GroupState,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.write_group_state(group_id, group_state)
    }

    fn write_message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        message_secrets: &MessageSecrets,
    ) -> Result<(), Self::Error> {
        // Rewritten after every message sent or received, and saved: as postcard, not the
        // memory storage's JSON, which spells every byte of every ratchet secret as a decimal
        // number (three times the size, and most of the time spent storing a message).
        let key = message_secrets_key(group_id)?;
        let value = postcard::to_extend(message_secrets, vec![SECRETS_POSTCARD])
            .map_err(|_| MemoryStorageError::SerializationError)?;
        self.inner
            .values
            .write()
            .map_err(|_| MemoryStorageError::SerializationError)?
            .insert(key, value);
        Ok(())
    }

    fn write_resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        resumption_psk_store: &ResumptionPskStore,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner
            .write_resumption_psk_store(group_id, resumption_psk_store)
    }

    fn write_own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        own_leaf_index: &LeafNodeIndex,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.write_own_leaf_index(group_id, own_leaf_index)
    }

    fn write_group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        group_epoch_secrets: &GroupEpochSecrets,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner
            .write_group_epoch_secrets(group_id, group_epoch_secrets)
    }

    fn write_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
        signature_key_pair: &SignatureKeyPair,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner
            .write_signature_key_pair(public_key, signature_key_pair)
    }

    fn write_encryption_key_pair<
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
        key_pair: &HpkeKeyPair,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.write_encryption_key_pair(public_key, key_pair)
    }

    fn write_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
        key_pairs: &[HpkeKeyPair],
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner
            .write_encryption_epoch_key_pairs(group_id, epoch, leaf_index, key_pairs)
    }

    fn write_key_package<
        HashReference: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &HashReference,
        key_package: &KeyPackage,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.write_key_package(hash_ref, key_package)
    }

    fn write_psk<
        PskId: traits::PskId<CURRENT_VERSION>,
        PskBundle: traits::PskBundle<CURRENT_VERSION>,
    >(
        &self,
        psk_id: &PskId,
        psk: &PskBundle,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.write_psk(psk_id, psk)
    }

    fn mls_group_join_config<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MlsGroupJoinConfig: traits::MlsGroupJoinConfig<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<MlsGroupJoinConfig>, Self::Error> {
        self.inner.mls_group_join_config(group_id)
    }

    fn own_leaf_nodes<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNode: traits::LeafNode<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<LeafNode>, Self::Error> {
        self.inner.own_leaf_nodes(group_id)
    }

    fn queued_proposal_refs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<ProposalRef>, Self::Error> {
        self.inner.queued_proposal_refs(group_id)
    }

    fn queued_proposals<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
        QueuedProposal: traits::QueuedProposal<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Vec<(ProposalRef, QueuedProposal)>, Self::Error> {
        self.inner.queued_proposals(group_id)
    }

    fn tree<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        TreeSync: traits::TreeSync<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<TreeSync>, Self::Error> {
        self.inner.tree(group_id)
    }

    fn group_context<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupContext: traits::GroupContext<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupContext>, Self::Error> {
        self.inner.group_context(group_id)
    }

    fn interim_transcript_hash<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        InterimTranscriptHash: traits::InterimTranscriptHash<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<InterimTranscriptHash>, Self::Error> {
        self.inner.interim_transcript_hash(group_id)
    }

    fn confirmation_tag<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ConfirmationTag: traits::ConfirmationTag<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<ConfirmationTag>, Self::Error> {
        self.inner.confirmation_tag(group_id)
    }

    fn group_state<
        GroupState: traits::GroupState<CURRENT_VERSION>,
        GroupId: traits::GroupId<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupState>, Self::Error> {
        self.inner.group_state(group_id)
    }

    fn message_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        MessageSecrets: traits::MessageSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<MessageSecrets>, Self::Error> {
        let key = message_secrets_key(group_id)?;
        let values = self
            .inner
            .values
            .read()
            .map_err(|_| MemoryStorageError::SerializationError)?;
        let Some(value) = values.get(&key) else {
            return Ok(None);
        };
        let secrets = match value.split_first() {
            Some((&SECRETS_POSTCARD, encoded)) => {
                postcard::from_bytes(encoded).map_err(|_| MemoryStorageError::SerializationError)?
            }
            // Written as JSON by an earlier version.
            _ => serde_json::from_slice(value)?,
        };
        Ok(Some(secrets))
    }

    fn resumption_psk_store<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ResumptionPskStore: traits::ResumptionPskStore<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<ResumptionPskStore>, Self::Error> {
        self.inner.resumption_psk_store(group_id)
    }

    fn own_leaf_index<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        LeafNodeIndex: traits::LeafNodeIndex<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<LeafNodeIndex>, Self::Error> {
        self.inner.own_leaf_index(group_id)
    }

    fn group_epoch_secrets<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        GroupEpochSecrets: traits::GroupEpochSecrets<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<Option<GroupEpochSecrets>, Self::Error> {
        self.inner.group_epoch_secrets(group_id)
    }

    fn signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
        SignatureKeyPair: traits::SignatureKeyPair<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> Result<Option<SignatureKeyPair>, Self::Error> {
        self.inner.signature_key_pair(public_key)
    }

    fn encryption_key_pair<
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
        EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &EncryptionKey,
    ) -> Result<Option<HpkeKeyPair>, Self::Error> {
        self.inner.encryption_key_pair(public_key)
    }

    fn encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
        HpkeKeyPair: traits::HpkeKeyPair<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> Result<Vec<HpkeKeyPair>, Self::Error> {
        self.inner
            .encryption_epoch_key_pairs(group_id, epoch, leaf_index)
    }

    fn key_package<
        KeyPackageRef: traits::HashReference<CURRENT_VERSION>,
        KeyPackage: traits::KeyPackage<CURRENT_VERSION>,
    >(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> Result<Option<KeyPackage>, Self::Error> {
        self.inner.key_package(hash_ref)
    }

    fn psk<PskBundle: traits::PskBundle<CURRENT_VERSION>, PskId: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskId,
    ) -> Result<Option<PskBundle>, Self::Error> {
        self.inner.psk(psk_id)
    }

    fn remove_proposal<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        proposal_ref: &ProposalRef,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.remove_proposal(group_id, proposal_ref)
    }

    fn delete_own_leaf_nodes<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_own_leaf_nodes(group_id)
    }

    fn delete_group_config<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_group_config(group_id)
    }

    fn delete_tree<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_tree(group_id)
    }

    fn delete_confirmation_tag<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_confirmation_tag(group_id)
    }

    fn delete_group_state<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_group_state(group_id)
    }

    fn delete_context<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_context(group_id)
    }

    fn delete_interim_transcript_hash<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_interim_transcript_hash(group_id)
    }

    fn delete_message_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_message_secrets(group_id)
    }

    fn delete_all_resumption_psk_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_all_resumption_psk_secrets(group_id)
    }

    fn delete_own_leaf_index<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_own_leaf_index(group_id)
    }

    fn delete_group_epoch_secrets<GroupId: traits::GroupId<CURRENT_VERSION>>(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_group_epoch_secrets(group_id)
    }

    fn clear_proposal_queue<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        ProposalRef: traits::ProposalRef<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner
            .clear_proposal_queue::<GroupId, ProposalRef>(group_id)
    }

    fn delete_signature_key_pair<
        SignaturePublicKey: traits::SignaturePublicKey<CURRENT_VERSION>,
    >(
        &self,
        public_key: &SignaturePublicKey,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_signature_key_pair(public_key)
    }

    fn delete_encryption_key_pair<EncryptionKey: traits::EncryptionKey<CURRENT_VERSION>>(
        &self,
        public_key: &EncryptionKey,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_encryption_key_pair(public_key)
    }

    fn delete_encryption_epoch_key_pairs<
        GroupId: traits::GroupId<CURRENT_VERSION>,
        EpochKey: traits::EpochKey<CURRENT_VERSION>,
    >(
        &self,
        group_id: &GroupId,
        epoch: &EpochKey,
        leaf_index: u32,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner
            .delete_encryption_epoch_key_pairs(group_id, epoch, leaf_index)
    }

    fn delete_key_package<KeyPackageRef: traits::HashReference<CURRENT_VERSION>>(
        &self,
        hash_ref: &KeyPackageRef,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_key_package(hash_ref)
    }

    fn delete_psk<PskKey: traits::PskId<CURRENT_VERSION>>(
        &self,
        psk_id: &PskKey,
    ) -> Result<(), Self::Error> {
        self.note_other_writes();
        self.inner.delete_psk(psk_id)
    }
}

#[cfg(test)]
mod tests {
    use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
    use openmls::prelude::*;
    use openmls_basic_credential::SignatureKeyPair;

    use super::*;

    const SUITE: Ciphersuite = Ciphersuite::MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519;

    fn member<P: OpenMlsProvider>(
        provider: &P,
        name: &str,
    ) -> (CredentialWithKey, SignatureKeyPair) {
        let keys = SignatureKeyPair::new(SUITE.signature_algorithm()).expect("keys");
        keys.store(provider.storage()).expect("stored");
        let credential = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: keys.public().into(),
        };
        (credential, keys)
    }

    fn stored_secrets(storage: &MemoryStorage, group: &GroupId) -> Vec<u8> {
        let key = message_secrets_key(group).expect("key");
        storage.values.read().expect("lock")[&key].clone()
    }

    /// A group whose message secrets an earlier version stored as OpenMLS's JSON goes on: they
    /// are read, written back as postcard (much smaller), and read again after a reload.
    #[test]
    fn message_secrets_stored_as_json_are_read_and_rewritten_as_postcard() {
        // Alice's group starts in OpenMLS's own memory storage, which writes JSON.
        let earlier = openmls_libcrux_crypto::Provider::new().expect("provider");
        let (alice, alice_keys) = member(&earlier, "alice");
        let bob_provider = Provider::new().expect("provider");
        let (bob, bob_keys) = member(&bob_provider, "bob");
        let bob_package = KeyPackage::builder()
            .build(SUITE, &bob_provider, &bob_keys, bob)
            .expect("key package");
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(SUITE)
            .use_ratchet_tree_extension(true)
            .build();
        let mut group =
            MlsGroup::new(&earlier, &alice_keys, &config, alice).expect("group created");
        let (_, welcome, _) = group
            .add_members(&earlier, &alice_keys, &[bob_package.key_package().clone()])
            .expect("bob added");
        group.merge_pending_commit(&earlier).expect("merged");
        let MlsMessageBodyOut::Welcome(welcome) = welcome.body() else {
            panic!("not a welcome");
        };
        let mut bob_group = StagedWelcome::new_from_welcome(
            &bob_provider,
            &MlsGroupJoinConfig::default(),
            welcome.clone(),
            None,
        )
        .expect("welcome")
        .into_group(&bob_provider)
        .expect("bob joined");
        let group_id = group.group_id().clone();
        let json = stored_secrets(earlier.storage(), &group_id);
        assert_eq!(
            json.first(),
            Some(&b'{'),
            "OpenMLS's own storage writes JSON"
        );

        // This version opens the same entries.
        let alice_provider = Provider::new().expect("provider");
        alice_provider
            .storage
            .inner
            .values
            .write()
            .expect("lock")
            .clone_from(&earlier.storage().values.read().expect("lock"));
        let mut received = Vec::new();
        for text in ["read from JSON", "read from postcard"] {
            let mut group = MlsGroup::load(&alice_provider.storage, &group_id)
                .expect("loads")
                .expect("group stored");
            let message = group
                .create_message(&alice_provider, &alice_keys, text.as_bytes())
                .expect("encrypted");
            let message = MlsMessageIn::tls_deserialize_exact(
                message.tls_serialize_detached().expect("serialized"),
            )
            .expect("parsed")
            .try_into_protocol_message()
            .expect("protocol message");
            let processed = bob_group
                .process_message(&bob_provider, message)
                .expect("bob decrypts");
            if let ProcessedMessageContent::ApplicationMessage(m) = processed.into_content() {
                received.push(String::from_utf8(m.into_bytes()).expect("utf-8"));
            }
            let postcard = stored_secrets(&alice_provider.storage.inner, &group_id);
            assert_eq!(postcard.first(), Some(&SECRETS_POSTCARD));
            assert!(
                postcard.len() * 2 < json.len(),
                "postcard {} bytes, JSON {} bytes",
                postcard.len(),
                json.len()
            );
        }
        assert_eq!(received, ["read from JSON", "read from postcard"]);
        let bob_secrets = stored_secrets(&bob_provider.storage.inner, &group_id);
        assert_eq!(bob_secrets.first(), Some(&SECRETS_POSTCARD));
    }
}
