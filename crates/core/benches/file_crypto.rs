//! Throughput of attachment encryption (`cargo bench -p missive-core --bench file_crypto`):
//! sealing and opening 256 MiB in memory, the SHA-256 of the plaintext included.

use std::time::Instant;

use missive_core::file::{FileCipher, Opener, Sealer};

fn main() {
    let size: usize = 256 << 20;
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let secret = FileCipher::new_secret();
    let mut best_seal = f64::MAX;
    let mut best_open = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut sealer = Sealer::new(&secret, size as u64).expect("sealer");
        let mut blob = Vec::with_capacity(sealer.layout().blob_len() as usize);
        let mut at = 0;
        let mut buf = Vec::new();
        while !sealer.done() {
            let n = sealer.wants();
            buf.clear();
            buf.extend_from_slice(&data[at..at + n]);
            at += n;
            sealer.seal_next(&mut buf).expect("seal");
            blob.extend_from_slice(&buf);
        }
        let digest = sealer.digest();
        best_seal = best_seal.min(start.elapsed().as_secs_f64());

        let start = Instant::now();
        let mut opener = Opener::new(&secret, size as u64, digest).expect("opener");
        let mut total = 0usize;
        for piece in blob.chunks(16 << 10) {
            opener
                .push(piece, |p| {
                    total += p.len();
                    Ok(())
                })
                .expect("open");
        }
        opener.finish().expect("intact");
        assert_eq!(total, size);
        best_open = best_open.min(start.elapsed().as_secs_f64());

        use std::io::Write;
        let start = Instant::now();
        let path = std::env::temp_dir().join("missive-bench-open.bin");
        let mut w =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).expect("file"));
        let mut opener = Opener::new(&secret, size as u64, digest).expect("opener");
        for piece in blob.chunks(16 << 10) {
            opener.push(piece, |p| w.write_all(p)).expect("open");
        }
        opener.finish().expect("intact");
        w.flush().expect("flush");
        let t = start.elapsed().as_secs_f64();
        println!("open + write: {:.0} MiB/s", 256.0 / t);
        let _ = std::fs::remove_file(&path);
    }
    let mib = (size >> 20) as f64;
    {
        use sha2::Digest;
        let start = Instant::now();
        let d = sha2::Sha256::digest(&data);
        println!(
            "sha256 alone: {:.0} MiB/s ({:x})",
            mib / start.elapsed().as_secs_f64(),
            d[0]
        );
        let start = Instant::now();
        let d = blake3::hash(&data);
        println!(
            "blake3 alone: {:.0} MiB/s ({:x})",
            mib / start.elapsed().as_secs_f64(),
            d.as_bytes()[0]
        );
        let cipher = FileCipher::new(
            &secret,
            missive_core::file::Layout::new(size as u64).expect("layout"),
        )
        .expect("cipher");
        let start = Instant::now();
        let mut buf = Vec::with_capacity(70_000);
        let layout = *cipher.layout();
        for i in 0..layout.chunks {
            buf.clear();
            buf.extend_from_slice(&data[..layout.plain_len(i)]);
            cipher.seal(i, &mut buf).expect("seal");
        }
        println!(
            "aead alone: {:.0} MiB/s",
            mib / start.elapsed().as_secs_f64()
        );
    }
    println!(
        "seal {:.0} MiB/s, open {:.0} MiB/s (best of 3, 256 MiB, BLAKE3 digest included)",
        mib / best_seal,
        mib / best_open
    );
}
