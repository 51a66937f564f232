//! What a person types, made into what the engine works with: a conversation or a message from
//! its id or a unique prefix of it (the short ids `sync` and `history` print), an address in
//! its one spelling, a server URL with its scheme. Every client resolves input here, so that the
//! same words mean the same thing on the command line and in any other shell.

use crate::error::CoreError;
use crate::store::{AccountStore, ConversationRecord, MessageRecord};

/// The shortest id prefix accepted: 8 hex characters (what `sync` and `history` print).
pub const MIN_PREFIX: usize = 8;

/// An id as typed: trimmed, lowercase (ids are hex), and long enough to name one thing.
fn id_prefix(what: &str, typed: &str) -> Result<String, CoreError> {
    let prefix = typed.trim().to_ascii_lowercase();
    if prefix.len() < MIN_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CoreError::Usage(format!(
            "no {what} {typed:?}: give its id, or at least its first {MIN_PREFIX} characters \
             as `sync` and `history` show them"
        )));
    }
    Ok(prefix)
}

/// The conversation whose id is `typed`, or starts with it.
pub fn conversation(
    store: &dyn AccountStore,
    typed: &str,
) -> Result<ConversationRecord, CoreError> {
    let prefix = id_prefix("conversation", typed)?;
    if let Some(exact) = store.conversation(&prefix)? {
        return Ok(exact);
    }
    let mut found: Vec<ConversationRecord> = store
        .conversations()?
        .into_iter()
        .filter(|c| c.id.starts_with(&prefix))
        .collect();
    match found.len() {
        0 => Err(CoreError::Usage(format!(
            "no conversation {typed} (`missive conversations` lists yours)"
        ))),
        1 => Ok(found.remove(0)),
        n => Err(CoreError::Usage(format!(
            "{typed} starts the ids of {n} conversations: give more of it"
        ))),
    }
}

/// The message whose id, or whose file's id, is `typed` or starts with it.
pub fn message(store: &dyn AccountStore, typed: &str) -> Result<MessageRecord, CoreError> {
    let prefix = id_prefix("message", typed)?;
    let mut found = store.messages_matching(&prefix)?;
    match found.len() {
        0 => Err(CoreError::Usage(format!(
            "no file or message {typed} in your messages (run `missive sync` to fetch new ones)"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(CoreError::Usage(format!(
            "{typed} starts the ids of several messages: give more of it"
        ))),
    }
}

/// An address in its one spelling (`name@domain`, lowercase), or why it is not one.
pub fn address(typed: &str) -> Result<String, CoreError> {
    let address = typed.trim().to_lowercase();
    match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(address)
        }
        _ => Err(CoreError::Usage(format!(
            "{typed:?} is not an address: write it as name@domain"
        ))),
    }
}

/// A server URL as typed, checked to be one the client can reach (`http://` or `https://`),
/// without a trailing slash.
pub fn server_url(typed: &str) -> Result<String, CoreError> {
    let url = typed.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.into()),
        Some(_) => Err(CoreError::Usage(format!(
            "{typed:?} is not a server URL: it names no host"
        ))),
        None => Err(CoreError::Usage(format!(
            "the server URL needs http:// or https:// (for example http://{url})"
        ))),
    }
}

/// The addresses a text mentions (`@name@domain`), in their one spelling, once each, in order.
pub fn mentions(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let Some(rest) = word.strip_prefix('@') else {
            continue;
        };
        // Punctuation after the address is the sentence's.
        let rest = rest.trim_end_matches(|c: char| !c.is_alphanumeric());
        if let Ok(a) = address(rest) {
            if a.split('@').all(|part| !part.is_empty()) && !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// A day as typed, `YYYY-MM-DD`, as the start of that day in UTC (ms since the Unix epoch).
pub fn day(typed: &str) -> Result<u64, CoreError> {
    let bad = || CoreError::Usage(format!("{typed:?} is not a day: write it as YYYY-MM-DD"));
    let mut parts = typed.trim().splitn(3, '-');
    let mut next = |len: usize| {
        parts
            .next()
            .filter(|p| p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let (y, m, d) = (next(4)?, next(2)?, next(2)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month[(m - 1) as usize] || y < 1970 {
        return Err(bad());
    }
    // Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's
    // `days_from_civil`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(u64::try_from(days).map_err(|_| bad())? * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_addresses_after_an_at_sign() {
        assert_eq!(
            mentions("@Bob@Example.org, see @carol@x.fr. Not me@here nor @, nor @bob@example.org"),
            ["bob@example.org", "carol@x.fr"]
        );
        assert!(mentions("email me at a@b.c").is_empty());
    }

    #[test]
    fn days_are_utc_midnights() {
        assert_eq!(day("1970-01-01").expect("day"), 0);
        assert_eq!(day("2026-12-04").expect("day"), 1_796_342_400_000);
        assert_eq!(day("2024-02-29").expect("day"), 1_709_164_800_000);
        for bad in [
            "2026-13-01",
            "2026-02-29",
            "26-12-04",
            "2026/12/04",
            "2026-12-4",
            "x",
        ] {
            assert!(day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_have_one_spelling() {
        assert_eq!(
            address(" Alice@Example.ORG ").expect("an address"),
            "alice@example.org"
        );
        for bad in ["alice", "@example.org", "alice@", "a@b@c", ""] {
            assert!(address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_urls_need_a_scheme() {
        assert_eq!(
            server_url("http://127.0.0.1:8080/").expect("a URL"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            server_url("https://m.gouv.fr").expect("a URL"),
            "https://m.gouv.fr"
        );
        let e = server_url("127.0.0.1:8080")
            .expect_err("no scheme")
            .to_string();
        assert!(e.contains("http:// or https://"), "{e}");
        assert!(e.contains("http://127.0.0.1:8080"), "{e}");
        assert!(server_url("http://").is_err());
    }
}
