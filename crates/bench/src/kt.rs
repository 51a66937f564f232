//! `--kt ENTRIES`: the cost of key transparency's proofs in a log of ENTRIES leaves, in this
//! process (the server's share of a key lookup: the audit path and a signed head; the client's:
//! checking both, and a consistency proof from a head half the log ago).

use std::time::Instant;

use ed25519_dalek::SigningKey;
use missive_proto::kt::{Leaf, Log, TreeHead};
use serde_json::json;

const LOOKUPS: usize = 2000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn leaf(n: u64) -> Leaf {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&n.to_be_bytes());
    Leaf::of_list(
        &format!("user{n}@ministere.gouv.fr"),
        key,
        1,
        &n.to_be_bytes(),
    )
}

pub fn run(entries: u64) -> anyhow::Result<()> {
    anyhow::ensure!(entries >= 2, "--kt needs at least 2 entries");
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key().to_bytes();
    let before = rss_mib();
    let started = Instant::now();
    let mut log = Log::new();
    for n in 0..entries {
        log.push(leaf(n).to_bytes());
    }
    let build_s = started.elapsed().as_secs_f64();
    let memory = rss_mib() - before;
    let old = TreeHead::sign(&key, "ministere.gouv.fr", log.len(), log.root());
    let old_size = entries / 2;

    let mut server_us = Vec::with_capacity(LOOKUPS);
    let mut client_us = Vec::with_capacity(LOOKUPS);
    let mut proof_bytes = 0;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..LOOKUPS {
        // xorshift: spread the lookups over the whole log without a dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let index = seed % entries;
        let t = Instant::now();
        let proof = log.prove_inclusion(index).expect("in range");
        let head = TreeHead::sign(&key, "ministere.gouv.fr", log.len(), log.root());
        server_us.push(t.elapsed().as_secs_f64() * 1e6);
        proof_bytes = proof.len();
        let t = Instant::now();
        let ok =
            head.verify(&public, "ministere.gouv.fr") && head.includes(&leaf(index), index, &proof);
        client_us.push(t.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(ok, "a proof did not verify");
    }
    // The consistency proof a client gets when its last head is half the log ago.
    let half = {
        let mut half = Log::new();
        for n in 0..old_size {
            half.push(leaf(n).to_bytes());
        }
        TreeHead::sign(&key, "ministere.gouv.fr", half.len(), half.root())
    };
    let consistency = log.prove_consistency(old_size).expect("provable");
    anyhow::ensure!(
        old.extends(&half, &consistency),
        "consistency did not verify"
    );
    server_us.sort_by(f64::total_cmp);
    client_us.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "entries": entries,
            "build_seconds": build_s,
            "memory_mib": memory,
            "lookups": LOOKUPS,
            "server_proof_and_head_us_p50": percentile(&server_us, 0.5),
            "server_proof_and_head_us_p90": percentile(&server_us, 0.9),
            "client_check_us_p50": percentile(&client_us, 0.5),
            "inclusion_proof_bytes": proof_bytes,
            "consistency_proof_bytes_from_half": consistency.len(),
        })
    );
    Ok(())
}
