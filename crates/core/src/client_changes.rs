//! What a user does to a conversation besides writing in it: edit or delete their message,
//! react, tell others what they received and read, set the disappearing-message timer. Each is
//! checked here before it is sent (so that a mistake gets a clear error, not a silent no-op on
//! the other devices), then sent as an MLS application message and applied like a received
//! one (`account::changes`).

use missive_proto::api::{Label, Policy};
use missive_proto::app::AppBody;
use missive_proto::ErrorCode;

use super::Client;
use crate::error::CoreError;
use crate::store::MessageRecord;

/// The timers offered to users, in seconds, with their names.
pub const TIMERS: [(&str, u64); 5] = [
    ("5m", 300),
    ("1h", 3_600),
    ("1d", 86_400),
    ("1w", 604_800),
    ("4w", 2_419_200),
];

/// The longest timer accepted: a year.
const MAX_TIMER: u64 = 366 * 86_400;

/// A timer as typed: `off`, or a count with its unit (`30s`, `5m`, `1h`, `1d`, `1w`; those of
/// [`TIMERS`] are the ones offered).
pub fn parse_timer(typed: &str) -> Result<Option<u64>, CoreError> {
    let typed = typed.trim().to_ascii_lowercase();
    if typed == "off" {
        return Ok(None);
    }
    let unit = match typed.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        Some('w') => 604_800,
        _ => 0,
    };
    typed[..typed.len().saturating_sub(1)]
        .parse::<u64>()
        .ok()
        .filter(|n| unit > 0 && *n > 0)
        .map(|n| n.saturating_mul(unit))
        .filter(|s| *s <= MAX_TIMER)
        .map(Some)
        .ok_or_else(|| {
            CoreError::Usage(format!(
                "{typed:?} is not a timer: use off, 5m, 1h, 1d, 1w or 4w (or a count of s, m, \
                 h, d or w up to a year)"
            ))
        })
}

/// A timer for people: `5m`, `1h`... (`off` when there is none).
pub fn timer_name(seconds: Option<u64>) -> String {
    let Some(s) = seconds else {
        return "off".into();
    };
    [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)]
        .iter()
        .find(|(_, unit)| s % unit == 0)
        .map(|(name, unit)| format!("{}{name}", s / unit))
        .unwrap_or_else(|| format!("{s}s"))
}

impl Client {
    /// A message of `conversation` as the user named it (its id or a prefix of 8 characters
    /// or more), still there.
    fn target(&self, conversation: &str, typed: &str) -> Result<MessageRecord, CoreError> {
        let m = crate::lookup::message(self.account.store(), typed)?;
        if m.conversation != conversation {
            return Err(CoreError::Usage(format!(
                "message {typed} is in another conversation"
            )));
        }
        if m.deleted {
            return Err(CoreError::Usage(format!("message {typed} was deleted")));
        }
        if m.notice.is_some() {
            return Err(CoreError::Usage(format!(
                "message {typed} is a change of settings, not a message"
            )));
        }
        Ok(m)
    }

    /// One of our own messages, which only we may change.
    fn own_target(
        &self,
        conversation: &str,
        typed: &str,
        what: &str,
    ) -> Result<MessageRecord, CoreError> {
        let m = self.target(conversation, typed)?;
        if m.sender != self.account.address() {
            return Err(CoreError::Usage(format!(
                "message {typed} was sent by {}: only its sender can {what} it",
                m.sender
            )));
        }
        Ok(m)
    }

    /// Sends a change and returns the message it changed (or the notice it made), as it is now.
    async fn send_change(
        &mut self,
        conversation: &str,
        body: AppBody,
    ) -> Result<MessageRecord, CoreError> {
        let (record, _) = self.send_body(conversation, body).await?;
        record.ok_or_else(|| CoreError::Mls("the change left nothing to show".into()))
    }

    /// Replaces the text of one of our messages, on every member's device (each keeps the
    /// earlier texts and shows it as edited).
    pub async fn edit(
        &mut self,
        conversation: &str,
        message: &str,
        text: &str,
    ) -> Result<MessageRecord, CoreError> {
        let m = self.own_target(conversation, message, "edit")?;
        if m.file.is_some() || m.unsupported.is_some() {
            return Err(CoreError::Usage(format!(
                "message {message} is not a text: only texts can be edited"
            )));
        }
        if text.trim().is_empty() {
            return Err(CoreError::Usage(
                "an empty text is not an edit: delete the message instead".into(),
            ));
        }
        if m.text == text {
            return Ok(m);
        }
        self.send_change(
            conversation,
            AppBody::Edit {
                target: m.id,
                text: text.to_owned(),
            },
        )
        .await
    }

    /// Deletes one of our messages for everyone: every member's device that receives the
    /// deletion erases its text (or its file's key), here at once.
    pub async fn delete(
        &mut self,
        conversation: &str,
        message: &str,
    ) -> Result<MessageRecord, CoreError> {
        let m = self.own_target(conversation, message, "delete")?;
        self.send_change(conversation, AppBody::Delete { target: m.id })
            .await
    }

    /// Adds our reaction to a message (one per user and emoji), or takes it back.
    pub async fn react(
        &mut self,
        conversation: &str,
        message: &str,
        emoji: &str,
        remove: bool,
    ) -> Result<MessageRecord, CoreError> {
        let emoji = emoji.trim();
        if !crate::account::valid_reaction(emoji) {
            return Err(CoreError::Usage(format!(
                "{emoji:?} is not a reaction: use one emoji"
            )));
        }
        let m = self.target(conversation, message)?;
        let ours = m
            .reactions
            .get(emoji)
            .is_some_and(|who| who.iter().any(|a| a == self.account.address()));
        if ours != remove {
            // Already as asked.
            return Ok(m);
        }
        self.send_change(
            conversation,
            AppBody::React {
                target: m.id,
                emoji: emoji.to_owned(),
                remove,
            },
        )
        .await
    }

    /// Marks everything in `conversation` as read: a read receipt to its members (unless read
    /// receipts are off, when only this device knows). Returns the position read up to.
    pub async fn mark_read(&mut self, conversation: &str) -> Result<u64, CoreError> {
        let record = self.conversation(conversation)?;
        let messages = self.account.store().messages(conversation)?;
        let own = self.account.address().to_owned();
        let position = messages.iter().map(|m| m.seq).max().unwrap_or(0);
        let unshown: Vec<String> = self
            .account
            .store()
            .unshown_messages()?
            .into_iter()
            .filter(|m| m.conversation == conversation)
            .map(|m| m.id)
            .collect();
        if !unshown.is_empty() {
            self.account.mark_shown(unshown)?;
        }
        let said = record.receipts.get(&own).copied().unwrap_or_default();
        if position == 0 || said.read >= position {
            return Ok(said.read);
        }
        if self.account.read_receipts()? && !record.left {
            self.send_body(
                conversation,
                AppBody::Receipt {
                    delivered: position,
                    read: position,
                },
            )
            .await?;
        } else {
            self.account.mark_read_locally(conversation, position)?;
        }
        Ok(position)
    }

    /// Sends the delivery receipts due: one per conversation that received messages from
    /// others since the last, saying how far. `sync` calls it; a client that keeps a push
    /// connection calls it after a batch (not for every message: each receipt is a message
    /// to every member). Returns how many were sent.
    pub async fn send_receipts(&mut self) -> Result<usize, CoreError> {
        let mut sent = 0;
        for (conversation, position) in self.account.receipts_due()? {
            self.send_body(
                &conversation,
                AppBody::Receipt {
                    delivered: position,
                    read: 0,
                },
            )
            .await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Sets the conversation's disappearing-message timer for everyone (`None`: off); returns
    /// the notice shown in its history.
    pub async fn set_timer(
        &mut self,
        conversation: &str,
        seconds: Option<u64>,
    ) -> Result<MessageRecord, CoreError> {
        let record = self.conversation(conversation)?;
        if record.left {
            return Err(CoreError::Usage(
                "you are no longer a member of this conversation".into(),
            ));
        }
        if let Some(label) = &record.label {
            if let Some(max) = label.max_disappear {
                if seconds.is_none_or(|s| s > max) {
                    return Err(CoreError::Usage(format!(
                        "the conversation is labelled {:?}: messages must disappear within {} \
                         at most",
                        label.name,
                        timer_name(Some(max))
                    )));
                }
            }
        }
        self.send_change(conversation, AppBody::Timer { seconds })
            .await
    }

    /// Fetches the organisation's rules (retention, labels) and keeps them. A server of a
    /// version before them has none.
    pub async fn refresh_policy(&mut self) -> Result<(), CoreError> {
        let policy = match self.transport().get::<Policy>("/v1/policy").await {
            Ok(policy) => policy,
            Err(e) if e.server_code() == Some(ErrorCode::NotFound) => Policy::default(),
            Err(e) => return Err(e),
        };
        self.account.set_policy(&policy)
    }

    /// The labels the organisation defines (fetched again).
    pub async fn labels(&mut self) -> Result<Vec<Label>, CoreError> {
        self.refresh_policy().await?;
        Ok(self.account.policy()?.labels)
    }

    /// Puts the label named `name` (as the organisation defines it, case ignored) on the
    /// conversation for everyone, or takes it off (`None`). The label's rules travel with it.
    /// Refused if a member is from a domain it does not admit; when it limits the timer and
    /// the conversation's is off or longer, the timer is set to that limit too.
    pub async fn set_label(
        &mut self,
        conversation: &str,
        name: Option<&str>,
    ) -> Result<MessageRecord, CoreError> {
        let record = self.conversation(conversation)?;
        if record.left {
            return Err(CoreError::Usage(
                "you are no longer a member of this conversation".into(),
            ));
        }
        let label = match name {
            None => None,
            Some(name) => {
                let labels = self.labels().await?;
                let found = labels
                    .iter()
                    .find(|l| l.name.eq_ignore_ascii_case(name.trim()))
                    .cloned();
                let Some(label) = found else {
                    let known: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
                    return Err(CoreError::Usage(if known.is_empty() {
                        "your organisation defines no labels".into()
                    } else {
                        format!(
                            "no label {name:?}: your organisation defines {}",
                            known.join(", ")
                        )
                    }));
                };
                let members = self.account.members(conversation)?;
                if let Some(outsider) = members.iter().find(|m| !label.admits(m)) {
                    return Err(CoreError::Usage(format!(
                        "label {:?} admits members from {} only, and {outsider} is a member",
                        label.name,
                        label.domains.join(", ")
                    )));
                }
                Some(label)
            }
        };
        let limit = label.as_ref().and_then(|l| l.max_disappear);
        let notice = self
            .send_change(conversation, AppBody::Label { label })
            .await?;
        if let Some(max) = limit {
            if record.disappear.is_none_or(|s| s > max) {
                self.set_timer(conversation, Some(max)).await?;
            }
        }
        Ok(notice)
    }

    /// Forwards a message (its text, or its file on native: downloaded, checked and sent again
    /// under a new key) to another conversation, marked forwarded. Refused where a label says
    /// so: out of a conversation whose label forbids it, or into a less restrictive one.
    pub async fn forward(&mut self, message: &str, to: &str) -> Result<MessageRecord, CoreError> {
        let m = crate::lookup::message(self.account.store(), message)?;
        if m.deleted || m.notice.is_some() || m.unsupported.is_some() {
            return Err(CoreError::Usage(format!(
                "message {message} has nothing to forward"
            )));
        }
        let from = self.conversation(&m.conversation)?;
        let target = self.conversation(to)?;
        if target.left {
            return Err(CoreError::Usage(
                "you are no longer a member of the conversation to forward to".into(),
            ));
        }
        if let Some(label) = from.label.as_ref().filter(|l| l.no_forward) {
            return Err(CoreError::Usage(format!(
                "the conversation is labelled {:?}: nothing of it may be forwarded",
                label.name
            )));
        }
        if target.level() < from.level() {
            return Err(CoreError::Usage(format!(
                "the message is labelled {:?} and the conversation to forward to is {}: a \
                 message never moves to a less restrictive conversation",
                from.label.as_ref().map_or("", |l| l.name.as_str()),
                target
                    .label
                    .as_ref()
                    .map_or("not labelled".to_owned(), |l| format!(
                        "labelled {:?}",
                        l.name
                    ))
            )));
        }
        if m.file.is_some() {
            return self.forward_file(&m, to).await;
        }
        let mut out = crate::account::new_message(AppBody::Text {
            text: m.text,
            reply_to: None,
        });
        out.forwarded = true;
        let (record, _) = self.send_message(to, out, None).await?;
        record.ok_or_else(|| CoreError::Mls("a forwarded message left no record".into()))
    }

    /// Forwards a file: received into memory (never written to disk), then sent again under
    /// a new key, since the blob is readable by its own conversation's members only.
    async fn forward_file(
        &mut self,
        m: &MessageRecord,
        to: &str,
    ) -> Result<MessageRecord, CoreError> {
        let mut bytes = Vec::new();
        let file = self
            .receive_file(
                &m.id,
                super::Destination::App,
                |plain| {
                    bytes.extend_from_slice(plain);
                    Ok(())
                },
                None,
            )
            .await?;
        let copy = super::MemoryFile {
            name: file.name,
            bytes,
        };
        Ok(self.send_file_as(to, &copy, None, true).await?.message)
    }

    /// Tells the conversation's members that we are typing (call it at most every few
    /// seconds while the user types; it is a message to every member).
    pub async fn typing(&mut self, conversation: &str) -> Result<(), CoreError> {
        self.send_body(conversation, AppBody::Typing).await?;
        Ok(())
    }

    /// Erases the messages whose timer ran out (text, file key, edits); returns how many.
    pub fn erase_expired(&mut self) -> Result<usize, CoreError> {
        Ok(self.account.erase_expired(crate::now_ms())?.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_read_and_print_back() {
        for (name, seconds) in TIMERS {
            assert_eq!(parse_timer(name).expect("offered"), Some(seconds));
            assert_eq!(timer_name(Some(seconds)), name);
        }
        assert_eq!(parse_timer(" OFF ").expect("off"), None);
        assert_eq!(parse_timer("3s").expect("seconds"), Some(3));
        assert_eq!(timer_name(Some(3)), "3s");
        assert_eq!(timer_name(Some(90)), "90s");
        for bad in ["", "5", "m", "0m", "-1h", "5y", "1000w", "1.5h"] {
            assert!(parse_timer(bad).is_err(), "{bad:?}");
        }
    }
}
