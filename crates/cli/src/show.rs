//! How the command line shows things: messages (text or JSON lines), sizes, progress bars, QR
//! codes and security alerts.

use std::io::IsTerminal;

use missive_core::account::Outcome;
use missive_core::store::MessageRecord;
use serde_json::json;

/// What stands for a message of a kind this version cannot display.
pub const UNSUPPORTED: &str = "a message this version cannot display (update Missive)";

/// One message as a JSON object, for `--json`.
pub fn message_json(m: &MessageRecord) -> serde_json::Value {
    let mut value = json!({
        "conversation": m.conversation,
        "sender": m.sender,
        "text": m.text,
        "id": m.id,
        "sender_device": m.sender_device,
        "sent_at": m.sent_at,
        "server_time": m.server_time,
        "seq": m.seq,
    });
    if let Some(answered) = &m.reply_to {
        value["reply_to"] = json!(answered);
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
    value
}

/// One message on one line of stdout: `[CONV] SENDER: TEXT`, or as JSON.
pub fn print_message(m: &MessageRecord, as_json: bool) -> std::io::Result<()> {
    if as_json {
        return out!("{}", message_json(m));
    }
    let short = &m.conversation[..m.conversation.len().min(8)];
    match &m.file {
        Some(f) => out!(
            "[{short}] {}: file {:?} ({}) — missive download {} --out DIR",
            m.sender,
            f.name,
            human_size(f.size),
            f.blob
        ),
        None if m.unsupported.is_some() => out!(
            "[{short}] {}: {UNSUPPORTED} ({})",
            m.sender,
            m.unsupported_kind().unwrap_or_default()
        ),
        None => match &m.reply_to {
            Some(answered) => out!(
                "[{short}] {}: (reply to {}) {}",
                m.sender,
                &answered[..answered.len().min(8)],
                m.text
            ),
            None => out!("[{short}] {}: {}", m.sender, m.text),
        },
    }
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
pub fn report(outcomes: Vec<Outcome>) -> usize {
    let mut n = 0;
    for o in outcomes {
        if let Outcome::Alert(a) = o {
            eprintln!("alert: {a}");
            n += 1;
        }
    }
    n
}
