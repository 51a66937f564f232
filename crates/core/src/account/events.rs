//! Events, the account's side: each event the server delivers (a Welcome, a commit, a
//! message) is checked and applied, and saved with the cursor that moves past it. A refused
//! event becomes an alert and is skipped; nothing a member sends is taken on the server's word.

use super::*;

impl Account {
    /// Processes one event and saves the result with the new cursor. A refused event is
    /// recorded as an alert and skipped; `NeedContacts` leaves nothing changed so the caller can
    /// fetch and pin those users and call again.
    pub fn process_event(&mut self, event: &Event) -> Result<Vec<Outcome>, CoreError> {
        let late = event.id <= self.cursor;
        if late && !self.held_back(event)? {
            return Ok(Vec::new());
        }
        let result = self.apply_event(event);
        match result {
            Ok(mut outcomes) => {
                if late {
                    let alert = Alert {
                        code: AlertCode::DeliveredOutOfOrder,
                        detail: format!(
                            "a message of {} arrived after later events (their ids went \
                             backwards): the server had held it back",
                            conversation_id(event.group_id.as_bytes())
                        ),
                    };
                    self.alert(&alert);
                    outcomes.insert(0, Outcome::Alert(alert));
                } else {
                    self.set_cursor(event.id);
                }
                self.save_with(Durability::Relaxed)?;
                Ok(outcomes)
            }
            Err(CoreError::Refused(alert)) => {
                self.rollback()?;
                self.alert(&alert);
                if event.kind == EventKind::Message {
                    self.unreadable(event, &alert)?;
                }
                if !late {
                    self.set_cursor(event.id);
                }
                self.save_with(Durability::Relaxed)?;
                Ok(vec![Outcome::Alert(alert)])
            }
            Err(e) => {
                self.rollback()?;
                Err(e)
            }
        }
    }

    /// Processes events in order with one save for all of them. If any is refused or needs
    /// contacts, the batch is undone and processed again one event at a time, so a refusal
    /// never costs a good event.
    pub fn process_events(&mut self, events: &[Event]) -> Result<Vec<Outcome>, CoreError> {
        let mut outcomes = Vec::new();
        for event in events {
            let applied = if event.id > self.cursor {
                self.apply_event(event).ok()
            } else if self.held_back(event)? {
                // Rare, and alerted: taken with the slow path below.
                None
            } else {
                continue;
            };
            match applied {
                Some(o) => {
                    outcomes.extend(o);
                    self.set_cursor(event.id);
                }
                None => {
                    self.rollback()?;
                    let mut outcomes = Vec::new();
                    for event in events {
                        outcomes.extend(self.process_event(event)?);
                    }
                    return Ok(outcomes);
                }
            }
        }
        self.save_with(Durability::Relaxed)?;
        Ok(outcomes)
    }

    /// Whether an event the server delivers at or below the cursor (event ids going backwards)
    /// is one this device never read: a message event whose place in its conversation holds no
    /// stored message. Such an event is read (and alerted) instead of dropped for good; any
    /// other is one already processed, skipped.
    fn held_back(&self, event: &Event) -> Result<bool, CoreError> {
        if event.kind != EventKind::Message {
            return Ok(false);
        }
        let conversation = conversation_id(event.group_id.as_bytes());
        let pending = self.pending.iter().any(|op| {
            matches!(op, Op::Message(m) | Op::Sent { record: m, .. }
                if m.conversation == conversation && m.seq == event.seq)
        });
        Ok(!pending && !self.store.has_message_at(&conversation, event.seq)?)
    }

    fn apply_event(&mut self, event: &Event) -> Result<Vec<Outcome>, CoreError> {
        match event.kind {
            EventKind::Welcome => self.apply_welcome(event),
            EventKind::Commit => self.apply_commit(event),
            EventKind::Message => self.apply_message(event),
            // A kind of event added after this version: nothing here can apply it, and it is
            // no sign of an attack; the cursor moves past it.
            EventKind::Unknown => Ok(Vec::new()),
        }
    }

    fn apply_welcome(&mut self, event: &Event) -> Result<Vec<Outcome>, CoreError> {
        let rejected = |why: String| CoreError::refused(AlertCode::RejectedCommit, why);
        let MlsMessageBodyIn::Welcome(welcome) = parse_mls(event.payload.as_bytes())?.extract()
        else {
            return Err(rejected("a Welcome event does not hold a Welcome".into()));
        };
        let conversation = conversation_id(event.group_id.as_bytes());
        if self.store.conversation(&conversation)?.is_some() {
            return Ok(Vec::new());
        }
        let staged = StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
            .map_err(|e| rejected(format!("cannot join from this Welcome: {e:?}")))?;
        if staged.group_context().group_id().as_slice() != event.group_id.as_bytes() {
            return Err(rejected(
                "a Welcome is for another group than announced".into(),
            ));
        }
        // Every member is certified. The adder checked each device it added against its
        // user's list; a member that left a list since (revoked) is its own user's to remove.
        let members: Vec<Member> = staged.members().collect();
        self.check_leaves(
            members
                .iter()
                .map(|m| (&m.credential, m.signature_key.as_slice())),
            false,
        )?;
        staged
            .into_group(&self.provider)
            .map_err(|e| rejected(format!("cannot join from this Welcome: {e:?}")))?;
        self.pending.push(Op::Conversation(ConversationRecord::new(
            conversation.clone(),
            None,
            None,
            event.timestamp,
        )));
        Ok(vec![Outcome::Joined(conversation)])
    }

    fn protocol_message(&self, event: &Event) -> Result<ProtocolMessage, CoreError> {
        let msg = parse_mls(event.payload.as_bytes())?;
        let pm = msg.try_into_protocol_message().map_err(|_| {
            CoreError::refused(AlertCode::RejectedMessage, "not an MLS protocol message")
        })?;
        if pm.group_id().as_slice() != event.group_id.as_bytes() {
            return Err(CoreError::refused(
                AlertCode::RejectedMessage,
                "a message was delivered in another group than its own",
            ));
        }
        Ok(pm)
    }

    fn apply_commit(&mut self, event: &Event) -> Result<Vec<Outcome>, CoreError> {
        let conversation = conversation_id(event.group_id.as_bytes());
        let Some(mut record) = self.conversation_record(&conversation)? else {
            // A commit for a group we never joined (or already dropped): nothing to do.
            return Ok(Vec::new());
        };
        self.with_group(&conversation.clone(), |this, group| {
            let pm = this.protocol_message(event)?;
            if event.sender == this.device_id {
                // Our own commit: merge it if a crash came between the server's acceptance and our
                // merge; otherwise it is merged already.
                if pm.epoch() == group.epoch() {
                    if group.pending_commit().is_none() {
                        return Err(CoreError::refused(
                            AlertCode::RejectedCommit,
                            "the server accepted a commit of this device that it no longer \
                             holds (it was replaced after a crash); this conversation needs \
                             to be joined again",
                        ));
                    }
                    group
                        .merge_pending_commit(&this.provider)
                        .map_err(CoreError::mls)?;
                }
                return Ok(Vec::new());
            }
            if pm.epoch() != group.epoch() {
                return Err(CoreError::refused(
                    AlertCode::RejectedCommit,
                    format!(
                        "a commit for epoch {} arrived while the conversation is at epoch {}",
                        pm.epoch().as_u64(),
                        group.epoch().as_u64()
                    ),
                ));
            }
            if group.pending_commit().is_some() {
                group
                    .clear_pending_commit(this.provider.storage())
                    .map_err(CoreError::mls)?;
            }
            let processed = group
                .process_message(&this.provider, pm)
                .map_err(|e| CoreError::refused(AlertCode::RejectedCommit, format!("{e:?}")))?;
            // A device joining by itself (its user recovered the account): only a device of a
            // user who is a member already, and on that user's signed list.
            let external = matches!(processed.sender(), Sender::NewMemberCommit);
            let members_before = if external {
                this.members_of(group)
            } else {
                Vec::new()
            };
            let ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content()
            else {
                return Err(CoreError::refused(
                    AlertCode::RejectedCommit,
                    "a commit event holds something else than a commit",
                ));
            };
            // Every leaf the commit brings in must chain to its user's identity key, and every
            // device it adds must be on its user's signed device list.
            let leaf_of = |leaf: &LeafNode| {
                (
                    leaf.credential().clone(),
                    leaf.signature_key().as_slice().to_vec(),
                )
            };
            let added: Vec<(Credential, Vec<u8>)> = staged
                .add_proposals()
                .map(|p| leaf_of(p.add_proposal().key_package().leaf_node()))
                .collect();
            let updated: Vec<(Credential, Vec<u8>)> = staged
                .update_path_leaf_node()
                .map(leaf_of)
                .into_iter()
                .collect();
            let mut unknown = BTreeSet::new();
            let mut joiners = Vec::new();
            for (leaves, listed, path) in [(&added, true, false), (&updated, external, true)] {
                match this.check_leaves(leaves.iter().map(|(c, k)| (c, k.as_slice())), listed) {
                    Ok(owners) if path => joiners = owners,
                    Ok(_) => {}
                    Err(CoreError::NeedContacts(a)) => unknown.extend(a),
                    Err(e) => return Err(e),
                }
            }
            if !unknown.is_empty() {
                return Err(CoreError::NeedContacts(unknown.into_iter().collect()));
            }
            if external && !joiners.iter().all(|j| members_before.contains(&j.address)) {
                return Err(CoreError::refused(
                    AlertCode::RejectedCommit,
                    format!(
                        "a device that is not of a member tried to join {conversation} by \
                         itself"
                    ),
                ));
            }
            let self_removed = staged.self_removed();
            group
                .merge_staged_commit(&this.provider, *staged)
                .map_err(CoreError::mls)?;
            if self_removed {
                record.left = true;
                this.pending.push(Op::Conversation(record));
                return Ok(vec![Outcome::Left(conversation)]);
            }
            Ok(vec![Outcome::MembershipChanged(conversation)])
        })
    }

    fn apply_message(&mut self, event: &Event) -> Result<Vec<Outcome>, CoreError> {
        let conversation = conversation_id(event.group_id.as_bytes());
        let Some(mut record) = self.current_conversation(&conversation)? else {
            return Err(CoreError::refused(
                AlertCode::RejectedMessage,
                "a message for a conversation this device is not in",
            ));
        };
        if event.sender == self.device_id {
            // Our own message, stored when the server accepted it.
            return Ok(Vec::new());
        }
        self.with_group(&conversation.clone(), |this, group| {
            let pm = this.protocol_message(event)?;
            if let ProtocolMessage::PrivateMessage(private) = &pm {
                let aad = private.aad();
                if private.epoch() == group.epoch()
                    && aad.starts_with(EPOCH_FINGERPRINT_TAG)
                    && aad != this.fingerprint(&conversation, group)?.as_slice()
                {
                    return Err(CoreError::refused(
                        AlertCode::ForkDetected,
                        format!(
                            "a member of {conversation} is at epoch {} with another group \
                             state: the server sent different commits to different members",
                            group.epoch().as_u64()
                        ),
                    ));
                }
            }
            let processed = group.process_message(&this.provider, pm).map_err(|e| {
                CoreError::refused(
                    AlertCode::RejectedMessage,
                    format!("a message in {conversation} was refused: {e:?}"),
                )
            })?;
            let sender_leaf = match processed.sender() {
                Sender::Member(leaf) => *leaf,
                _ => {
                    return Err(CoreError::refused(
                        AlertCode::RejectedMessage,
                        "an application message not from a member",
                    ))
                }
            };
            // A message of a past epoch (sent before a commit we already merged) comes from the
            // leaf as it was then: openmls hands us that epoch's credential. Its sender may have
            // left since, or its leaf index may now hold someone else.
            let owner = match group.member_at(sender_leaf) {
                Some(leaf) if leaf.credential == *processed.credential() => {
                    this.check_leaf(&leaf.credential, &leaf.signature_key)?
                }
                _ => {
                    let credential = processed.credential().clone();
                    let key = identity::certified_device_key(&credential)?;
                    this.check_leaf(&credential, &key)?
                }
            };
            let app = match processed.into_content() {
                ProcessedMessageContent::ApplicationMessage(app) => app,
                // Our own message, posted again as another device's: the server reflects it.
                ProcessedMessageContent::OwnPrivateMessage => {
                    return Err(CoreError::refused(
                        AlertCode::RejectedMessage,
                        format!(
                            "a message you sent in {conversation} came back to you as if \
                             another member had sent it: the server reflected it"
                        ),
                    ))
                }
                _ => {
                    return Err(CoreError::refused(
                        AlertCode::RejectedMessage,
                        format!(
                            "a message event in {conversation} holds a handshake message \
                             instead of a message"
                        ),
                    ))
                }
            };
            let message: AppMessage = serde_json::from_slice(&app.into_bytes()).map_err(|_| {
                CoreError::refused(
                    AlertCode::RejectedMessage,
                    "a message's content is not a Missive message",
                )
            })?;
            if this.store.has_message(&message.id)? {
                return Ok(Vec::new());
            }
            let withheld = this.withheld_before(&conversation, &owner, &message.prev)?;
            let split_view = match &message.kt {
                Some(head) => this.received_gossip(&owner.address, head)?,
                None => None,
            };
            if let Some(alert) = &split_view {
                this.alert(alert);
            }
            if let AppBody::Meta {
                name,
                dm,
                timer,
                label,
            } = message.body
            {
                record.name = name;
                record.disappear = timer.filter(|s| *s > 0);
                record.label = label;
                record.dm_peer = match dm {
                    false => None,
                    // From another of our own devices (which re-added this one): the peer is
                    // the conversation's other member.
                    true if owner.address == this.address() => {
                        let own = this.address().to_owned();
                        this.members_of(group)
                            .into_iter()
                            .find(|m| *m != own)
                            .or(record.dm_peer)
                    }
                    true => Some(owner.address),
                };
                this.pending.push(Op::Conversation(record));
                return Ok(split_view.map(Outcome::Alert).into_iter().collect());
            }
            let cx = changes::ChangeContext {
                conversation: &conversation,
                sender: &owner.address,
                sender_device: &owner.device_id,
                seq: event.seq,
                at: event.timestamp,
            };
            if let Some(changed) = this.apply_change(&cx, &message)? {
                let mut outcomes: Vec<Outcome> =
                    split_view.map(Outcome::Alert).into_iter().collect();
                if let Some(alert) = withheld {
                    this.alert(&alert);
                    outcomes.push(Outcome::Alert(alert));
                }
                outcomes.extend(changed);
                return Ok(outcomes);
            }
            let Some(shown) = displayed(&message.body) else {
                return Ok(split_view.map(Outcome::Alert).into_iter().collect());
            };
            if owner.address != this.address() {
                this.note_delivered(&conversation, event.seq);
            }
            // The record read above: a message of its own changes no setting.
            let expires_at = this.expiry_in(Some(&record), event.timestamp)?;
            let m = MessageRecord {
                id: message.id,
                conversation,
                sender: owner.address,
                sender_device: owner.device_id,
                text: shown.text,
                sent_at: message.sent_at,
                server_time: event.timestamp,
                seq: event.seq,
                file: shown.file,
                unsupported: shown.unsupported,
                reply_to: shown.reply_to,
                expires_at,
                forwarded: message.forwarded,
                ..MessageRecord::default()
            };
            this.pending.push(Op::Message(m.clone()));
            let mut outcomes = Vec::with_capacity(2);
            outcomes.extend(split_view.map(Outcome::Alert));
            if let Some(alert) = withheld {
                this.alert(&alert);
                outcomes.push(Outcome::Alert(alert));
            }
            outcomes.push(Outcome::Message(m));
            Ok(outcomes)
        })
    }

    /// Threat 9: a message names its sender device's earlier accepted messages. If we hold
    /// messages from that device in this conversation but not one of those, the server
    /// withheld it (or will deliver it late). A device's first message since we joined has
    /// nothing to compare with.
    fn withheld_before(
        &self,
        conversation: &str,
        owner: &identity::LeafOwner,
        prev: &[String],
    ) -> Result<Option<Alert>, CoreError> {
        let pending_from = |pred: &dyn Fn(&MessageRecord) -> bool| {
            self.pending
                .iter()
                .any(|op| matches!(op, Op::Message(m) | Op::Sent { record: m, .. } if pred(m)))
        };
        // The usual case, the named messages are here, costs a lookup by unique id each; only
        // when one is missing do we look for earlier messages of that device.
        let mut all_held = true;
        for id in prev {
            if !(self.recent.contains(id)
                || pending_from(&|m| m.id == *id)
                || self.store.has_message(id)?)
            {
                all_held = false;
                break;
            }
        }
        if all_held {
            return Ok(None);
        }
        let known_sender =
            pending_from(&|m| m.conversation == conversation && m.sender_device == owner.device_id)
                || self
                    .store
                    .last_message_from(conversation, &owner.device_id)?
                    .is_some();
        if !known_sender {
            return Ok(None);
        }
        Ok(Some(Alert {
            code: AlertCode::MessagesWithheld,
            detail: format!(
                "a message from {} in {conversation} follows one that never arrived: the \
                 server withheld it, or delivers it out of order",
                owner.address
            ),
        }))
    }
}
