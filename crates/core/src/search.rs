//! Search in the messages stored on this device (nothing of it reaches the server): what a
//! query means, the same in every store. A query is words; a message matches when each word
//! begins a word of its text or of its file's name, case and accents ignored ("reun" finds
//! "Réunion"). The SQLite store answers with its FTS5 index (tokenizer `unicode61
//! remove_diacritics 2`, which folds the same way); the stores in memory scan with
//! [`Query::matches`].

use crate::store::MessageRecord;

/// What to look for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// The words, folded (see [`words`]); at least one.
    pub words: Vec<String>,
    pub conversation: Option<String>,
    /// The sender's address.
    pub sender: Option<String>,
    /// Sent at or after (ms since the Unix epoch, the sender's clock).
    pub after: Option<u64>,
    /// Sent before (ms).
    pub before: Option<u64>,
    /// At most this many results, newest first.
    pub limit: usize,
}

impl Query {
    /// A query for what a person typed (no filters, 50 results at most); `None` when it holds
    /// no word.
    pub fn new(typed: &str) -> Option<Query> {
        let words = words(typed);
        (!words.is_empty()).then_some(Query {
            words,
            limit: 50,
            ..Query::default()
        })
    }

    /// Whether `m` matches (the scan of the stores in memory).
    pub fn matches(&self, m: &MessageRecord) -> bool {
        if self
            .conversation
            .as_ref()
            .is_some_and(|c| *c != m.conversation)
            || self.sender.as_ref().is_some_and(|s| *s != m.sender)
            || self.after.is_some_and(|t| m.sent_at < t)
            || self.before.is_some_and(|t| m.sent_at >= t)
            || m.deleted
        {
            return false;
        }
        let mut found = words(&m.text);
        if let Some(f) = &m.file {
            found.extend(words(&f.name));
        }
        self.words
            .iter()
            .all(|w| found.iter().any(|f| f.starts_with(w.as_str())))
    }

    /// The words as an FTS5 query: each a quoted prefix, all required.
    pub fn fts(&self) -> String {
        self.words
            .iter()
            .map(|w| format!("\"{w}\"*"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The words of `text`, lowercased, accents taken off: runs of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            fold_into(c, &mut word);
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Appends `c` lowercased, without its accent for the Latin letters of the languages an
/// administration writes in (and its ligatures spelled out).
fn fold_into(c: char, out: &mut String) {
    for lower in c.to_lowercase() {
        let plain = match lower {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
            'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
            'ď' | 'đ' => 'd',
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
            'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
            'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => 'i',
            'ñ' | 'ń' | 'ņ' | 'ň' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => 'o',
            'ŕ' | 'ř' => 'r',
            'ś' | 'ŝ' | 'ş' | 'š' => 's',
            'ţ' | 'ť' => 't',
            'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
            'ý' | 'ÿ' => 'y',
            'ź' | 'ż' | 'ž' => 'z',
            'œ' => {
                out.push_str("oe");
                continue;
            }
            'æ' => {
                out.push_str("ae");
                continue;
            }
            'ß' => {
                out.push_str("ss");
                continue;
            }
            other => other,
        };
        out.push(plain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_case_and_accents() {
        assert_eq!(
            words("Réunion à 14h, salle Œdipe — ÉTÉ 2027!"),
            ["reunion", "a", "14h", "salle", "oedipe", "ete", "2027"]
        );
        assert!(words(" ,;- ").is_empty());
        assert_eq!(Query::new("  "), None);
    }

    #[test]
    fn every_word_must_begin_a_word() {
        let m = MessageRecord {
            text: "Le budget de la Défense".into(),
            conversation: "c1".into(),
            sender: "a@x".into(),
            sent_at: 10,
            ..MessageRecord::default()
        };
        let q = |typed: &str| Query::new(typed).expect("words");
        assert!(q("defen budg").matches(&m));
        assert!(!q("udget").matches(&m), "a word's start, not its middle");
        assert!(!q("budget marine").matches(&m), "every word");
        let mut elsewhere = q("budget");
        elsewhere.conversation = Some("c2".into());
        assert!(!elsewhere.matches(&m));
        let mut later = q("budget");
        later.after = Some(11);
        assert!(!later.matches(&m));
        assert_eq!(q("l'été").fts(), "\"l\"* \"ete\"*");
    }
}
