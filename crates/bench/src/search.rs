//! `--search MESSAGES`: search in a device's store of MESSAGES messages, in this process (no
//! server: search never leaves the device). Reported: the latency of queries (one common word,
//! two words, a word found once), the write path with the index and without it (messages are
//! indexed by the next search, not as they arrive), what the first search after they arrived
//! pays to index them, and the cost of a deletion, which merges the index so that no word of
//! the deleted text stays in the file.

use std::time::Instant;

use missive_core::search::Query;
use missive_core::sqlite::SqliteAccountStore;
use missive_core::store::{AccountStore, Durability, MessageRecord, Op};
use serde_json::json;

const QUERIES: usize = 200;
/// Messages written per batch, as a sync writes what one page of events brought.
const BATCH: usize = 100;
const NEEDLE: &str = "zanzibarquartz";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A reproducible stream of pseudo-random numbers (xorshift), no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Words made of syllables, so that prefixes are shared as in a real language.
fn vocabulary(rng: &mut Rng) -> Vec<String> {
    const SYLLABLES: [&str; 24] = [
        "ba", "ré", "mi", "to", "lu", "ché", "dan", "fon", "gré", "ka", "pol", "sar", "ter", "vi",
        "mon", "né", "qua", "ri", "sé", "tion", "men", "par", "cul", "dé",
    ];
    (0..5000)
        .map(|_| {
            (0..2 + rng.below(3))
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect()
        })
        .collect()
}

fn message(n: usize, text: String) -> MessageRecord {
    MessageRecord {
        id: format!("{n:032x}"),
        conversation: format!("c{}", n % 40),
        sender: format!("user{}@ministere.gouv.fr", n % 25),
        sender_device: "d".into(),
        text,
        sent_at: n as u64,
        server_time: n as u64,
        seq: n as u64,
        ..MessageRecord::default()
    }
}

/// Writes `texts` in batches; returns the seconds it took.
fn fill(store: &mut SqliteAccountStore, texts: &[String]) -> anyhow::Result<f64> {
    let started = Instant::now();
    for (b, chunk) in texts.chunks(BATCH).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| Op::Message(message(b * BATCH + i, t.clone())))
            .collect();
        store.apply(batch, Durability::Relaxed)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

pub fn run(messages: usize) -> anyhow::Result<()> {
    anyhow::ensure!(messages >= 1000, "--search needs at least 1000 messages");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let words = vocabulary(&mut rng);
    let needle_at = messages / 3;
    let texts: Vec<String> = (0..messages)
        .map(|n| {
            let mut text: Vec<&str> = (0..6 + rng.below(15))
                .map(|_| words[rng.below(words.len())].as_str())
                .collect();
            if n == needle_at {
                text.push(NEEDLE);
            }
            text.join(" ")
        })
        .collect();

    let dir = tempfile::tempdir()?;
    let mut plain = SqliteAccountStore::open(&dir.path().join("plain.db"))?;
    plain.drop_search_index()?;
    let plain_s = fill(&mut plain, &texts)?;
    drop(plain);
    let mut store = SqliteAccountStore::open(&dir.path().join("indexed.db"))?;
    let indexed_s = fill(&mut store, &texts)?;
    let t = Instant::now();
    store.index_new_messages()?;
    let catch_up_s = t.elapsed().as_secs_f64();
    // And as it goes: a search after each 1,000 new messages.
    let extra: Vec<String> = texts.iter().take(1000).cloned().collect();
    let mut more = SqliteAccountStore::open(&dir.path().join("more.db"))?;
    fill(&mut more, &texts)?;
    more.index_new_messages()?;
    let t = Instant::now();
    for (i, text) in extra.iter().enumerate() {
        more.apply(
            vec![Op::Message(message(messages + i, text.clone()))],
            Durability::Relaxed,
        )?;
    }
    let t_write = t.elapsed().as_secs_f64();
    let t = Instant::now();
    more.index_new_messages()?;
    let index_1000_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(more);

    let timed = |query: Query| -> anyhow::Result<(f64, usize)> {
        let t = Instant::now();
        let found = store.search(&query)?.len();
        Ok((t.elapsed().as_secs_f64() * 1e3, found))
    };
    let mut one = Vec::with_capacity(QUERIES);
    let mut two = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let word = &words[rng.below(words.len())];
        one.push(timed(Query::new(word).expect("a word"))?.0);
        // A second word typed halfway: its first syllable.
        let other: String = words[rng.below(words.len())].chars().take(2).collect();
        let pair = format!("{word} {other}");
        two.push(timed(Query::new(&pair).expect("words"))?.0);
    }
    let (needle_ms, needle_found) = timed(Query::new(NEEDLE).expect("a word"))?;
    anyhow::ensure!(
        needle_found == 1,
        "the needle was found {needle_found} times"
    );
    one.sort_by(f64::total_cmp);
    two.sort_by(f64::total_cmp);

    // A deletion for everyone: the row revised, the index merged, the log truncated.
    let mut gone = message(needle_at, String::new());
    gone.deleted = true;
    let t = Instant::now();
    store.apply(vec![Op::Revise(gone)], Durability::Durable)?;
    let delete_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        store
            .search(&Query::new(NEEDLE).expect("a word"))?
            .is_empty(),
        "the deleted message is still found"
    );
    let file = std::fs::metadata(dir.path().join("indexed.db"))?.len();
    println!(
        "{}",
        json!({
            "messages": messages,
            "queries": QUERIES,
            "one_word_ms_p50": percentile(&one, 0.5),
            "one_word_ms_p90": percentile(&one, 0.9),
            "two_words_ms_p50": percentile(&two, 0.5),
            "two_words_ms_p90": percentile(&two, 0.9),
            "needle_ms": needle_ms,
            "write_us_per_message_with_index": indexed_s * 1e6 / messages as f64,
            "write_us_per_message_without_index": plain_s * 1e6 / messages as f64,
            "index_all_at_first_search_s": catch_up_s,
            "write_us_per_message_one_per_batch": t_write * 1e6 / 1000.0,
            "index_1000_new_at_next_search_ms": index_1000_ms,
            "delete_with_index_merge_ms": delete_ms,
            "store_mib": file as f64 / (1024.0 * 1024.0),
        })
    );
    Ok(())
}
