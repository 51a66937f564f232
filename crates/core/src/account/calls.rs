//! What a call takes from its conversation's MLS group: the epoch, who is in it (leaf index
//! and owner, each checked against their pinned identity key), and the epoch's call secret,
//! exported from the group under a Missive label with the call's id as context. Every
//! membership change is a new epoch, so a new secret: a removed device cannot compute it.
//! The media keys themselves are derived in [`crate::call`].

use super::*;
use crate::identity::LeafOwner;

/// The exporter label of a call's secret (RFC 9420 §8.5; its context is the call's id).
const CALL_LABEL: &str = "missive/v1/call sframe";

/// A conversation's group as a call sees it, at one epoch.
pub struct CallEpoch {
    pub epoch: u64,
    /// Our own leaf index: the member index in the SFrame key ids we send under.
    pub own_index: u32,
    /// Every member's leaf index and owner.
    pub members: Vec<(u32, LeafOwner)>,
    /// The epoch's secret for this call: the base key of every sender's SFrame key.
    pub secret: Vec<u8>,
}

impl Account {
    /// The call secret of `conversation`'s group at its current epoch for the call `call_id`
    /// (`secret_len` bytes: the SFrame cipher suite's key length), with the members it is
    /// shared with.
    pub fn call_epoch(
        &mut self,
        conversation: &str,
        call_id: &[u8],
        secret_len: usize,
    ) -> Result<CallEpoch, CoreError> {
        let group = self.take_group(conversation)?;
        let epoch = self.call_epoch_of(&group, call_id, secret_len);
        self.put_group(conversation, group);
        epoch
    }

    fn call_epoch_of(
        &self,
        group: &MlsGroup,
        call_id: &[u8],
        secret_len: usize,
    ) -> Result<CallEpoch, CoreError> {
        let secret = group
            .export_secret(self.provider.crypto(), CALL_LABEL, call_id, secret_len)
            .map_err(CoreError::mls)?;
        let mut members = Vec::new();
        for member in group.members() {
            let owner = self.check_leaf(&member.credential, &member.signature_key)?;
            members.push((member.index.u32(), owner));
        }
        Ok(CallEpoch {
            epoch: group.epoch().as_u64(),
            own_index: group.own_leaf_index().u32(),
            members,
            secret,
        })
    }
}
