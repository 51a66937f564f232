//! A hostile server for the browser tests (`web/tests`): the attacks of ../shared/threats.md
//! that `tests/it/threats.rs` plays in process, played here on a running server's data
//! directory, by writing into its store as a compromised server would. Never part of a
//! release: an example, built by `cargo xtask browser-test`.
//!
//! ```text
//! hostile DATA forge-device ADDRESS     # a device of the server's making on ADDRESS's account (threat 1)
//! hostile DATA swap-identity ADDRESS    # another identity key announced (and logged) for ADDRESS (threat 5)
//! hostile DATA withhold-message         # the next-to-last application message never delivered (threat 9)
//! ```

use anyhow::{bail, Context};
use missive_core::account::Account;
use missive_core::memory::MemoryAccountStore;
use rusqlite::params;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, attack, rest @ ..] = args.as_slice() else {
        bail!(
            "usage: hostile DATA (forge-device ADDRESS | swap-identity ADDRESS | withhold-message)"
        );
    };
    let db_path = std::path::Path::new(data).join("missive.db");
    let mut db = rusqlite::Connection::open(&db_path).context("the server's database")?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    match (attack.as_str(), rest) {
        ("forge-device", [address]) => forge_device(&mut db, address),
        ("swap-identity", [address]) => swap_identity(&db, address),
        ("withhold-message", []) => withhold_message(&db),
        _ => bail!("unknown attack or wrong arguments: {attack} {rest:?}"),
    }
}

/// An account of the server's own making for `address` (never registered): its own identity
/// key, a self-consistent certificate; with the certificate of its device.
fn rogue(address: &str) -> anyhow::Result<(Account, Vec<u8>)> {
    let (rogue, request) = Account::create(
        Box::new(MemoryAccountStore::new()),
        address,
        "http://127.0.0.1",
        None,
    )?;
    Ok((rogue, request.device_certificate.0))
}

/// Threat 1: a device the server made up joins `address`'s account, with key packages, listed
/// for claims as if the user's signed list named it.
fn forge_device(db: &mut rusqlite::Connection, address: &str) -> anyhow::Result<()> {
    let (mut rogue, certificate) = rogue(address)?;
    let made = rogue.new_key_packages(2, true)?;
    let device_id = rogue.device_id();
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO devices (device_id, address, certificate, token_hash, created_at, listed) \
         VALUES (?1, ?2, ?3, ?4, 1, 1)",
        params![device_id, address, certificate, [0u8; 32].as_slice()],
    )?;
    for (i, package) in made.key_packages.iter().enumerate() {
        tx.execute(
            "INSERT INTO key_packages (device_id, hash_ref, data) VALUES (?1, ?2, ?3)",
            params![
                device_id,
                format!("{device_id}/{i}").into_bytes(),
                package.0
            ],
        )?;
    }
    if let Some(last_resort) = made.last_resort {
        tx.execute(
            "INSERT INTO last_resort_key_packages (device_id, data) VALUES (?1, ?2)",
            params![device_id, last_resort.0],
        )?;
    }
    tx.commit()?;
    println!("forged device {device_id}");
    Ok(())
}

/// Threat 5: the server announces another identity key for `address`, with a device list that
/// key signed, and puts both in its key transparency log (a swap kept out of the log is
/// refused outright).
fn swap_identity(db: &rusqlite::Connection, address: &str) -> anyhow::Result<()> {
    let (rogue, _) = rogue(address)?;
    let list = rogue.next_device_list(&[rogue.listed_self()], &[], &[])?;
    let version = missive_proto::devicelist::DeviceList::from_bytes(&list)?.version;
    let changed = db.execute(
        "UPDATE users SET identity_key = ?1, device_list = ?2 WHERE address = ?3",
        params![rogue.identity_key().to_vec(), list, address],
    )?;
    if changed != 1 {
        bail!("no user {address}");
    }
    let leaf = missive_proto::kt::Leaf::of_list(address, rogue.identity_key(), version, &list);
    db.execute(
        "INSERT INTO kt_log (idx, address, version, leaf) VALUES \
         ((SELECT MAX(idx) + 1 FROM kt_log), ?1, ?2, ?3)",
        params![address, version as i64, leaf.to_bytes()],
    )?;
    println!("swapped the identity key of {address}");
    Ok(())
}

/// Threat 9: of the two newest application messages, the older is deleted: never delivered.
fn withhold_message(db: &rusqlite::Connection) -> anyhow::Result<()> {
    let id: i64 = db
        .query_row(
            "SELECT id FROM events WHERE kind = 1 AND target IS NULL \
             ORDER BY id DESC LIMIT 1 OFFSET 1",
            [],
            |row| row.get(0),
        )
        .context("fewer than two messages")?;
    db.execute("DELETE FROM events WHERE id = ?1", [id])?;
    println!("withheld event {id}");
    Ok(())
}
