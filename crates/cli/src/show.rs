//! How the command line shows things: messages (text or JSON lines), sizes, progress bars, QR
//! codes and security alerts.

use std::io::IsTerminal;

use missive_core::account::Outcome;
use missive_core::client::timer_name;
use missive_core::store::{ConversationRecord, MessageRecord, Notice};
use serde_json::json;

/// What stands for a message of a kind this version cannot display.
pub const UNSUPPORTED: &str = "a message this version cannot display (update Missive)";

/// What is shown beside each message: its conversation's label, and in a history, who
/// received and read it (with the members).
pub struct Receipted<'a> {
    pub conversation: &'a ConversationRecord,
    /// The members, for receipts (none: receipts are not shown).
    pub members: Option<&'a [String]>,
}

impl Receipted<'_> {
    /// Who received and who read `m`, and how many members besides its sender there are;
    /// `None` before any receipt.
    fn of(&self, m: &MessageRecord) -> Option<(Vec<String>, Vec<String>, usize)> {
        let members = self.members?;
        if m.notice.is_some() || !self.conversation.receipts.keys().any(|k| *k != m.sender) {
            return None;
        }
        let (delivered, read) = self.conversation.receipts_for(&m.sender, m.seq);
        let others = members.iter().filter(|a| **a != m.sender).count();
        Some((delivered, read, others))
    }
}

/// One message as a JSON object, for `--json`; in a history, with who received and read it.
pub fn message_json(m: &MessageRecord, receipted: Option<&Receipted<'_>>) -> serde_json::Value {
    let mut value = json!({
        "conversation": m.conversation,
        "sender": m.sender,
        "id": m.id,
        "sender_device": m.sender_device,
        "sent_at": m.sent_at,
        "server_time": m.server_time,
        "seq": m.seq,
    });
    if let Some(label) = receipted.and_then(|r| r.conversation.label.as_ref()) {
        value["label"] = json!(label.name);
    }
    match &m.notice {
        // A change of settings: an event, not a message.
        Some(Notice::Disappear { seconds }) => {
            value["event"] = json!("settings");
            value["disappear"] = json!(timer_name(*seconds));
            return value;
        }
        Some(Notice::Label { name }) => {
            value["event"] = json!("settings");
            value["label"] = json!(name);
            return value;
        }
        Some(Notice::Unreadable { code, reason }) => {
            value["event"] = json!("unreadable");
            value["code"] = json!(code);
            value["reason"] = json!(reason);
            return value;
        }
        Some(Notice::Call {
            call_id,
            ended,
            answered,
        }) => {
            value["event"] = json!("call");
            value["call_id"] = json!(call_id);
            value["state"] = json!(if ended.is_some() { "ended" } else { "started" });
            if let Some(seconds) = ended {
                value["seconds"] = json!(seconds);
                value["answered"] = json!(answered);
            }
            return value;
        }
        None => {}
    }
    if m.forwarded {
        value["forwarded"] = json!(true);
    }
    let mentioned = missive_core::lookup::mentions(&m.text);
    if !mentioned.is_empty() {
        value["mentions"] = json!(mentioned);
    }
    if m.deleted {
        value["deleted"] = json!(true);
    } else {
        value["text"] = json!(m.text);
    }
    if let Some(answered) = &m.reply_to {
        value["reply_to"] = json!(answered);
    }
    if !m.edits.is_empty() {
        value["edited"] = json!(true);
    }
    if !m.reactions.is_empty() {
        value["reactions"] = json!(m.reactions);
    }
    if let Some(at) = m.expires_at {
        value["expires_at"] = json!(at);
    }
    if let Some(kind) = m.unsupported_kind() {
        // A kind of message added after this version: named, never silently left out.
        value["unsupported"] = json!(kind);
    }
    if let Some(f) = &m.file {
        // The key stays in the account; scripts get what identifies and describes the file.
        value["file"] = json!({
            "id": f.blob,
            "name": f.name,
            "size": f.size,
            "media_type": f.media_type,
            "blake3": f.blake3,
        });
    }
    if let Some((delivered, read, _)) = receipted.and_then(|r| r.of(m)) {
        value["delivered_to"] = json!(delivered);
        value["read_by"] = json!(read);
    }
    value
}

/// One message on one line of stdout: `[CONV] SENDER: TEXT`, or as JSON.
pub fn print_message(
    m: &MessageRecord,
    receipted: Option<&Receipted<'_>>,
    as_json: bool,
) -> std::io::Result<()> {
    if as_json {
        return out!("{}", message_json(m, receipted));
    }
    let mut short = m.conversation[..m.conversation.len().min(8)].to_owned();
    if let Some(label) = receipted.and_then(|r| r.conversation.label.as_ref()) {
        short = format!("{short} · {}", label.name);
    }
    let mut line = match (&m.file, &m.notice) {
        (_, Some(Notice::Label { name: None })) => {
            format!("[{short}] {} took the label off", m.sender)
        }
        (_, Some(Notice::Label { name: Some(name) })) => {
            format!("[{short}] {} labelled the conversation {name:?}", m.sender)
        }
        (_, Some(Notice::Unreadable { code, reason })) => format!(
            "[{short}] a message{} could not be read ({code}): {reason}",
            if m.sender.is_empty() {
                String::new()
            } else {
                format!(" from {}", m.sender)
            }
        ),
        (_, Some(Notice::Disappear { seconds: None })) => {
            format!("[{short}] {} turned disappearing messages off", m.sender)
        }
        (_, Some(Notice::Disappear { seconds })) => format!(
            "[{short}] {} set disappearing messages to {}",
            m.sender,
            timer_name(*seconds)
        ),
        (_, Some(Notice::Call { ended: None, .. })) => format!(
            "[{short}] {} started a call — missive call join {}",
            m.sender,
            &m.conversation[..m.conversation.len().min(8)]
        ),
        (
            _,
            Some(Notice::Call {
                ended: Some(seconds),
                answered,
                ..
            }),
        ) => format!(
            "[{short}] call ended after {}; in it: {}",
            call_length(*seconds),
            answered.join(", ")
        ),
        _ if m.deleted => format!("[{short}] {}: (deleted)", m.sender),
        (Some(f), _) => format!(
            "[{short}] {}: file {:?} ({}) — missive download {} --out DIR",
            m.sender,
            f.name,
            human_size(f.size),
            f.blob
        ),
        (None, _) if m.unsupported.is_some() => format!(
            "[{short}] {}: {UNSUPPORTED} ({})",
            m.sender,
            m.unsupported_kind().unwrap_or_default()
        ),
        (None, _) => match &m.reply_to {
            Some(answered) => format!(
                "[{short}] {}: (reply to {}) {}",
                m.sender,
                &answered[..answered.len().min(8)],
                m.text
            ),
            None => format!("[{short}] {}: {}", m.sender, m.text),
        },
    };
    if !m.edits.is_empty() && !m.deleted {
        line.push_str(" (edited)");
    }
    if m.forwarded && !m.deleted {
        line.push_str(" (forwarded)");
    }
    if !m.reactions.is_empty() {
        line.push_str("  ");
        line.push_str(&reactions_line(m));
    }
    if let Some((delivered, read, others)) = receipted.and_then(|r| r.of(m)) {
        if !delivered.is_empty() {
            line.push_str(&format!(
                "  [delivered to {} of {others}, read by {} of {others}]",
                delivered.len(),
                read.len()
            ));
        }
    }
    out!("{line}")
}

/// A message that changed (edited, deleted, reacted to), as it is now.
pub fn print_change(
    m: &MessageRecord,
    receipted: Option<&Receipted<'_>>,
    as_json: bool,
) -> std::io::Result<()> {
    if as_json {
        let mut value = message_json(m, receipted);
        value["changed"] = json!(true);
        return out!("{value}");
    }
    print_message(m, receipted, false)
}

/// A message's reactions: `👍 2 · 🎉 1`, or `no reactions`.
pub fn reactions_line(m: &MessageRecord) -> String {
    if m.reactions.is_empty() {
        return "no reactions".into();
    }
    m.reactions
        .iter()
        .map(|(emoji, who)| format!("{emoji} {}", who.len()))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A conversation's name for people: its name, `with PEER`, or `(unnamed)`.
pub fn title(c: &ConversationRecord) -> String {
    c.name
        .clone()
        .or(c.dm_peer.as_ref().map(|p| format!("with {p}")))
        .unwrap_or_else(|| "(unnamed)".into())
}

/// A conversation as a JSON object (`conversations --json`, `conversation --json`).
pub fn conversation_json(c: &ConversationRecord, members: &[String]) -> serde_json::Value {
    json!({
        "id": c.id,
        "name": c.name,
        "dm": c.dm_peer,
        "members": members,
        "left": c.left,
        "created_at": c.created_at,
        "disappear": timer_name(c.disappear),
        "label": c.label,
    })
}

/// A conversation's settings, as `missive conversation` shows them.
pub fn conversation_settings(
    client: &missive_core::client::Client,
    conversation: &str,
    as_json: bool,
) -> anyhow::Result<()> {
    let Some(c) = client.account.store().conversation(conversation)? else {
        anyhow::bail!("no conversation {conversation}");
    };
    let members = client.account.members(conversation).unwrap_or_default();
    if as_json {
        out!("{}", conversation_json(&c, &members))?;
    } else {
        out!("conversation: {} {}", c.id, title(&c))?;
        out!("members:      {}", members.join(", "))?;
        out!("disappearing: {}", timer_name(c.disappear))?;
        match &c.label {
            Some(l) => out!("label:        {}{}", l.name, rules(l))?,
            None => out!("label:        none")?,
        }
    }
    Ok(())
}

/// A label's rules in words, after its name (` (level 2; at most 1w; no forwarding...)`).
pub fn rules(l: &missive_proto::api::Label) -> String {
    let mut rules = vec![format!("level {}", l.level)];
    if let Some(max) = l.max_disappear {
        rules.push(format!(
            "messages disappear within {}",
            timer_name(Some(max))
        ));
    }
    if l.no_forward {
        rules.push("no forwarding".into());
    }
    match l.downloads {
        missive_proto::api::Downloads::Allowed => {}
        missive_proto::api::Downloads::InApp => rules.push("files in the app only".into()),
        _ => rules.push("no file downloads".into()),
    }
    if !l.domains.is_empty() {
        rules.push(format!("members from {} only", l.domains.join(", ")));
    }
    format!(" ({})", rules.join("; "))
}

/// A byte count for people.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A QR code of `payload` on stderr, drawn with half-block characters (dark on light).
pub fn show_qr(payload: &str) {
    match qrcode::QrCode::new(payload.as_bytes()) {
        Ok(code) => eprintln!(
            "{}",
            code.render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .build()
        ),
        Err(e) => eprintln!("(no QR code: {e})"),
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise (scripts stay quiet).
pub fn progress_bar(
    what: &'static str,
) -> (
    Option<indicatif::ProgressBar>,
    Option<missive_core::client::Progress>,
) {
    if !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what);
    let handle = bar.clone();
    let progress: missive_core::client::Progress = std::sync::Arc::new(move |done, total| {
        handle.set_length(total);
        handle.set_position(done);
    });
    (Some(bar), Some(progress))
}

/// Prints the alerts among sync outcomes on stderr; returns how many there were.
pub fn report(outcomes: &[Outcome]) -> usize {
    let mut n = 0;
    for o in outcomes {
        if let Outcome::Alert(a) = o {
            eprintln!("alert: {a}");
            n += 1;
        }
    }
    n
}

/// A call's length as people say it: `45 s`, `3 min 5 s`, `1 h 2 min`.
fn call_length(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}
