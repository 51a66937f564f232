//! `--sframe N`: what call media encryption costs per frame (`missive_core::call`, SFrame
//! keyed as a call keys it), sealing and opening N frames of an Opus packet's size and of a
//! video packet's, in this process.

use std::time::Instant;

use missive_core::account::calls::CallEpoch;
use missive_core::call::CallKeys;
use missive_core::identity::LeafOwner;

/// An Opus packet of 20 ms at 64 kbit/s, and a video packet filling an Ethernet MTU.
const SIZES: [(&str, usize); 2] = [("audio (160 B)", 160), ("video (1,200 B)", 1200)];

fn member(index: u32) -> (u32, LeafOwner) {
    let owner = LeafOwner {
        address: format!("member{index}@bench.test"),
        device_id: format!("{index:032x}"),
    };
    (index, owner)
}

fn keys(own_index: u32, secret: &[u8]) -> anyhow::Result<CallKeys> {
    Ok(CallKeys::new(CallEpoch {
        epoch: 7,
        own_index,
        members: vec![member(0), member(1)],
        secret: secret.to_vec(),
    })?)
}

pub fn run(frames: usize) -> anyhow::Result<()> {
    let secret = [0x5a; 32];
    for (name, size) in SIZES {
        let mut sender = keys(0, &secret)?;
        let mut receiver = keys(1, &secret)?;
        let payload = vec![0x42u8; size];
        let mut seal = Vec::with_capacity(frames);
        let mut open = Vec::with_capacity(frames);
        for _ in 0..frames {
            let started = Instant::now();
            let sealed = sender.seal(&payload)?;
            seal.push(started.elapsed());
            let started = Instant::now();
            let opened = receiver.open(&sealed, Instant::now())?;
            open.push(started.elapsed());
            anyhow::ensure!(opened.payload == payload, "a frame came back different");
        }
        seal.sort();
        open.sort();
        let median = |d: &[std::time::Duration]| d[d.len() / 2].as_secs_f64() * 1e6;
        let p99 = |d: &[std::time::Duration]| d[d.len() * 99 / 100].as_secs_f64() * 1e6;
        println!(
            "sframe {name}: seal median {:.1} µs (p99 {:.1}), open median {:.1} µs (p99 {:.1}), \
             {} bytes on the wire ({frames} frames)",
            median(&seal),
            p99(&seal),
            median(&open),
            p99(&open),
            sender.seal(&payload)?.len(),
        );
    }
    Ok(())
}
