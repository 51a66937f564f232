//! Messages that change the conversation instead of adding to it: edits, deletions, reactions,
//! receipts and the disappearing-message timer. Each travels as an MLS application message like
//! any other (the server can neither tell them apart nor forge one) and is applied to what is
//! stored, the same way for a member's message received and for our own once accepted. Who may
//! do what is checked here, on every receiving device: only a message's sender (any device of
//! that user) edits or deletes it.

use missive_proto::app::AppMessage;

use super::*;

/// The longest reaction accepted (an emoji with its modifiers and joiners).
const MAX_REACTION_BYTES: usize = 64;

/// Who sent a change, and where it sits in its conversation.
pub(super) struct ChangeContext<'a> {
    pub conversation: &'a str,
    pub sender: &'a str,
    pub sender_device: &'a str,
    pub seq: u64,
    /// The server's time of acceptance (our clock for our own changes), ms.
    pub at: u64,
}

impl Account {
    /// Applies `message` if it is a change; `None` if it is a message of its own (text, file,
    /// metadata). What it returns is what a user sees change.
    pub(super) fn apply_change(
        &mut self,
        cx: &ChangeContext<'_>,
        message: &AppMessage,
    ) -> Result<Option<Vec<Outcome>>, CoreError> {
        let outcomes = match &message.body {
            AppBody::Edit { target, text } => self.apply_edit(cx, message, target, text)?,
            AppBody::Delete { target } => self.apply_delete(cx, target)?,
            AppBody::React {
                target,
                emoji,
                remove,
            } => self.apply_reaction(cx, target, emoji, *remove)?,
            AppBody::Receipt { delivered, read } => self.apply_receipt(cx, *delivered, *read)?,
            AppBody::Typing if cx.sender != self.address() => vec![Outcome::Typing(
                cx.conversation.to_owned(),
                cx.sender.to_owned(),
            )],
            AppBody::Typing => Vec::new(),
            AppBody::Timer { seconds } => {
                let seconds = seconds.filter(|s| *s > 0);
                return self
                    .apply_setting(cx, message, Notice::Disappear { seconds }, |c| {
                        c.disappear = seconds
                    })
                    .map(Some);
            }
            AppBody::Label { label } => {
                let name = label.as_ref().map(|l| l.name.clone());
                let label = label.clone();
                return self
                    .apply_setting(cx, message, Notice::Label { name }, |c| c.label = label)
                    .map(Some);
            }
            AppBody::Call {
                call_id,
                ended,
                answered,
            } => {
                let notice = Notice::Call {
                    call_id: call_id.clone(),
                    ended: *ended,
                    answered: answered.clone(),
                };
                return self.apply_notice(cx, message, notice).map(Some);
            }
            _ => return Ok(None),
        };
        self.pending.push(Op::Applied {
            id: message.id.clone(),
            conversation: cx.conversation.to_owned(),
            seq: cx.seq,
        });
        Ok(Some(outcomes))
    }

    fn apply_edit(
        &mut self,
        cx: &ChangeContext<'_>,
        message: &AppMessage,
        target: &str,
        text: &str,
    ) -> Result<Vec<Outcome>, CoreError> {
        let Some(mut m) = self.target_of(cx, target, "edit")? else {
            return Ok(Vec::new());
        };
        if m.deleted || m.file.is_some() || m.notice.is_some() || text.trim().is_empty() {
            return Ok(Vec::new());
        }
        if m.text != text {
            let earlier = std::mem::replace(&mut m.text, text.to_owned());
            m.edits.push(Edit {
                text: earlier,
                until: message.sent_at,
            });
        }
        Ok(self.revise(m))
    }

    fn apply_delete(
        &mut self,
        cx: &ChangeContext<'_>,
        target: &str,
    ) -> Result<Vec<Outcome>, CoreError> {
        let Some(m) = self.target_of(cx, target, "delete")? else {
            return Ok(Vec::new());
        };
        if m.deleted {
            return Ok(Vec::new());
        }
        self.note_deletion_for_backup(&m.id)?;
        Ok(self.revise(deleted(m)))
    }

    fn apply_reaction(
        &mut self,
        cx: &ChangeContext<'_>,
        target: &str,
        emoji: &str,
        remove: bool,
    ) -> Result<Vec<Outcome>, CoreError> {
        if !valid_reaction(emoji) {
            return Err(CoreError::refused(
                AlertCode::RejectedMessage,
                format!(
                    "{} sent a reaction in {} that is not an emoji",
                    cx.sender, cx.conversation
                ),
            ));
        }
        let Some(mut m) = self.current_message(target)? else {
            return Ok(Vec::new());
        };
        if m.conversation != cx.conversation || m.deleted || m.notice.is_some() {
            return Ok(Vec::new());
        }
        let who = m.reactions.entry(emoji.to_owned()).or_default();
        let had = who.iter().position(|a| a == cx.sender);
        match (had, remove) {
            (None, false) => who.push(cx.sender.to_owned()),
            (Some(at), true) => {
                who.remove(at);
                if who.is_empty() {
                    m.reactions.remove(emoji);
                }
            }
            _ => return Ok(Vec::new()),
        }
        Ok(self.revise(m))
    }

    fn apply_receipt(
        &mut self,
        cx: &ChangeContext<'_>,
        delivered: u64,
        read: u64,
    ) -> Result<Vec<Outcome>, CoreError> {
        let Some(mut record) = self.current_conversation(cx.conversation)? else {
            return Ok(Vec::new());
        };
        // Nobody received or read beyond the receipt itself.
        let read = read.min(cx.seq);
        let delivered = delivered.min(cx.seq).max(read);
        let now = record.receipts.entry(cx.sender.to_owned()).or_default();
        if delivered <= now.delivered && read <= now.read {
            return Ok(Vec::new());
        }
        now.delivered = now.delivered.max(delivered);
        now.read = now.read.max(read);
        self.pending.push(Op::Conversation(record));
        Ok(vec![Outcome::Receipts(cx.conversation.to_owned())])
    }

    /// A change of the conversation's settings: applied to its record, and kept in its history
    /// as a notice.
    fn apply_setting(
        &mut self,
        cx: &ChangeContext<'_>,
        message: &AppMessage,
        notice: Notice,
        change: impl FnOnce(&mut ConversationRecord),
    ) -> Result<Vec<Outcome>, CoreError> {
        let Some(mut record) = self.current_conversation(cx.conversation)? else {
            return Ok(Vec::new());
        };
        change(&mut record);
        self.pending.push(Op::Conversation(record));
        // Shown in the history as a notice, so that every member sees who set what.
        self.apply_notice(cx, message, notice)
    }

    /// Keeps `message` in the history as `notice` (an event shown in its place).
    fn apply_notice(
        &mut self,
        cx: &ChangeContext<'_>,
        message: &AppMessage,
        notice: Notice,
    ) -> Result<Vec<Outcome>, CoreError> {
        let notice = MessageRecord {
            id: message.id.clone(),
            conversation: cx.conversation.to_owned(),
            sender: cx.sender.to_owned(),
            sender_device: cx.sender_device.to_owned(),
            sent_at: message.sent_at,
            server_time: cx.at,
            seq: cx.seq,
            notice: Some(notice),
            ..MessageRecord::default()
        };
        if cx.sender == self.address() {
            self.pending.push(Op::Sent {
                record: notice.clone(),
                named: message.prev.clone(),
            });
        } else {
            self.pending.push(Op::Message(notice.clone()));
        }
        Ok(vec![Outcome::Message(notice)])
    }

    /// The message an edit or a deletion is for, if stored and still there; an attempt on
    /// another user's message is refused (only its sender can, on any of their devices).
    fn target_of(
        &self,
        cx: &ChangeContext<'_>,
        target: &str,
        what: &str,
    ) -> Result<Option<MessageRecord>, CoreError> {
        let Some(m) = self.current_message(target)? else {
            // Erased by its timer, or never received here: nothing left to change.
            return Ok(None);
        };
        if m.conversation != cx.conversation || m.sender != cx.sender {
            return Err(CoreError::refused(
                AlertCode::RejectedMessage,
                format!(
                    "{} tried to {what} a message of {} in {}: only its sender can",
                    cx.sender, m.sender, cx.conversation
                ),
            ));
        }
        Ok(Some(m))
    }

    fn revise(&mut self, m: MessageRecord) -> Vec<Outcome> {
        self.pending.push(Op::Revise(m.clone()));
        vec![Outcome::Changed(m)]
    }

    /// A message as it is now: as changed by writes not yet saved, else as stored.
    pub(super) fn current_message(&self, id: &str) -> Result<Option<MessageRecord>, CoreError> {
        for op in self.pending.iter().rev() {
            match op {
                Op::Message(m) | Op::Sent { record: m, .. } | Op::Revise(m) if m.id == id => {
                    return Ok(Some(m.clone()))
                }
                Op::Erase(ids) if ids.iter().any(|e| e == id) => return Ok(None),
                _ => {}
            }
        }
        self.store.message(id)
    }

    /// A conversation's record as it is now: as changed by writes not yet saved, else stored.
    pub(super) fn current_conversation(
        &mut self,
        id: &str,
    ) -> Result<Option<ConversationRecord>, CoreError> {
        for op in self.pending.iter().rev() {
            if let Op::Conversation(c) = op {
                if c.id == id {
                    return Ok(Some(c.clone()));
                }
            }
        }
        self.conversation_record(id)
    }

    /// How long a message of `conversation` lives, in seconds: the shortest of the
    /// conversation's timer, its label's longest timer and the organisation's longest
    /// retention (`None` when none of them is set).
    pub fn lifetime(&mut self, conversation: &str) -> Result<Option<u64>, CoreError> {
        let record = self.current_conversation(conversation)?;
        self.lifetime_in(record.as_ref())
    }

    /// [`Account::lifetime`] of a conversation whose record is at hand.
    pub(super) fn lifetime_in(
        &self,
        record: Option<&ConversationRecord>,
    ) -> Result<Option<u64>, CoreError> {
        let timer = record.and_then(|c| c.disappear);
        let label = record
            .and_then(|c| c.label.as_ref())
            .and_then(|l| l.max_disappear);
        let retention = self.with_policy(|p| p.max_retention)?;
        Ok([timer, label, retention].into_iter().flatten().min())
    }

    /// When a message taken at `at` (ms) disappears, if it does, in a conversation whose
    /// record is at hand.
    pub(super) fn expiry_in(
        &self,
        record: Option<&ConversationRecord>,
        at: u64,
    ) -> Result<Option<u64>, CoreError> {
        Ok(self
            .lifetime_in(record)?
            .map(|s| at.saturating_add(s.saturating_mul(1000))))
    }

    /// The organisation's policy as the server last gave it (none before the first sync).
    pub fn policy(&self) -> Result<missive_proto::api::Policy, CoreError> {
        self.with_policy(Clone::clone)
    }

    /// `f` of the policy, read from the store once per process (every stored message asks for
    /// its retention: no copy of the labels for that).
    fn with_policy<T>(
        &self,
        f: impl FnOnce(&missive_proto::api::Policy) -> T,
    ) -> Result<T, CoreError> {
        let mut cached = self.policy.lock().map_err(CoreError::storage)?;
        if cached.is_none() {
            *cached = Some(
                self.store
                    .setting(keys::POLICY)?
                    .and_then(|v| serde_json::from_slice(&v).ok())
                    .unwrap_or_default(),
            );
        }
        Ok(f(cached.get_or_insert_with(Default::default)))
    }

    /// Keeps the organisation's policy the server gave.
    pub fn set_policy(&mut self, policy: &missive_proto::api::Policy) -> Result<(), CoreError> {
        if self.policy()? == *policy {
            return Ok(());
        }
        let value = serde_json::to_vec(policy).map_err(CoreError::storage)?;
        self.pending.push(Op::Setting(keys::POLICY.into(), value));
        *self.policy.lock().map_err(CoreError::storage)? = Some(policy.clone());
        self.save()
    }

    /// Erases every message whose timer ran out at `now` (ms): text, file key, edits, all of
    /// it. Returns the ids erased.
    pub fn erase_expired(&mut self, now: u64) -> Result<Vec<String>, CoreError> {
        let ids = self.store.expired_messages(now)?;
        if !ids.is_empty() {
            self.pending.push(Op::Erase(ids.clone()));
            self.history_dirty = true;
            self.save()?;
        }
        Ok(ids)
    }

    /// Records a conversation's newest message from another user, for the next delivery
    /// receipt.
    pub(super) fn note_delivered(&mut self, conversation: &str, seq: u64) {
        let due = self
            .delivered_due
            .entry(conversation.to_owned())
            .or_default();
        *due = (*due).max(seq);
    }

    /// The delivery receipts to send: per conversation, the newest position received from
    /// others since the last ones, beyond what our receipts already said.
    pub fn receipts_due(&mut self) -> Result<Vec<(String, u64)>, CoreError> {
        let own = self.address().to_owned();
        let mut due = Vec::new();
        for (conversation, seq) in std::mem::take(&mut self.delivered_due) {
            let Some(record) = self.current_conversation(&conversation)? else {
                continue;
            };
            let said = record.receipts.get(&own).copied().unwrap_or_default();
            if !record.left && seq > said.delivered {
                due.push((conversation, seq));
            }
        }
        Ok(due)
    }

    /// Whether this user sends read receipts (on unless turned off).
    pub fn read_receipts(&self) -> Result<bool, CoreError> {
        Ok(self.store.setting(keys::READ_RECEIPTS)?.as_deref() != Some(b"off"))
    }

    /// Turns sending read receipts on or off.
    pub fn set_read_receipts(&mut self, on: bool) -> Result<(), CoreError> {
        let value: &[u8] = if on { b"on" } else { b"off" };
        self.pending
            .push(Op::Setting(keys::READ_RECEIPTS.into(), value.to_vec()));
        self.save()
    }

    /// Marks a conversation read up to `position` on this device without telling anyone (read
    /// receipts off): unread counts follow it, no receipt is sent.
    pub fn mark_read_locally(
        &mut self,
        conversation: &str,
        position: u64,
    ) -> Result<(), CoreError> {
        let Some(mut record) = self.current_conversation(conversation)? else {
            return Ok(());
        };
        let own = record
            .receipts
            .entry(self.address().to_owned())
            .or_default();
        if own.read >= position {
            return Ok(());
        }
        own.read = position;
        own.delivered = own.delivered.max(position);
        self.pending.push(Op::Conversation(record));
        self.save_with(Durability::Relaxed)
    }
}

impl Account {
    /// Stands a notice where a message event this device refused would be: the reader sees a
    /// message it could not read, and why, instead of a gap. Nothing for an event of a
    /// conversation this device is not (or no longer) in.
    pub(super) fn unreadable(&mut self, event: &Event, alert: &Alert) -> Result<(), CoreError> {
        let conversation = conversation_id(event.group_id.as_bytes());
        let Some(record) = self.current_conversation(&conversation)? else {
            return Ok(());
        };
        if record.left {
            return Ok(());
        }
        // Who sent it, if their device is still a member: the server's word for the device,
        // checked against the pinned keys.
        let sender = self
            .load_group(&conversation)
            .ok()
            .and_then(|group| {
                group.members().find_map(|m| {
                    self.check_leaf(&m.credential, &m.signature_key)
                        .ok()
                        .filter(|o| o.device_id == event.sender)
                        .map(|o| o.address)
                })
            })
            .unwrap_or_default();
        self.pending.push(Op::Message(MessageRecord {
            id: format!("unreadable-{}", event.id),
            conversation,
            sender,
            sender_device: event.sender.clone(),
            sent_at: event.timestamp,
            server_time: event.timestamp,
            seq: event.seq,
            notice: Some(Notice::Unreadable {
                code: alert.code.as_str().to_owned(),
                reason: alert.detail.clone(),
            }),
            ..MessageRecord::default()
        }));
        Ok(())
    }
}

/// A deleted message: what identifies it and when, nothing of what it said.
pub fn deleted(m: MessageRecord) -> MessageRecord {
    MessageRecord {
        text: String::new(),
        file: None,
        unsupported: None,
        reply_to: None,
        edits: Vec::new(),
        reactions: Default::default(),
        deleted: true,
        ..m
    }
}

/// A reaction is one short run of symbols: no letters or digits of a script, no spaces, no
/// control characters.
pub fn valid_reaction(emoji: &str) -> bool {
    !emoji.is_empty()
        && emoji.len() <= MAX_REACTION_BYTES
        && !emoji
            .chars()
            .any(|c| c.is_alphanumeric() || c.is_whitespace() || c.is_control())
}
