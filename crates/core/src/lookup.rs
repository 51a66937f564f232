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

#[cfg(test)]
mod tests {
    use super::*;

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
