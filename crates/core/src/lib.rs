//! The Missive client library: identity keys, device certificates, MLS conversations, contact
//! pinning, the local account store, and the sync engine.
//!
//! Architecture Invariant: [`account::Account`] does no network I/O. It turns server answers
//! into state changes and produces requests; [`client::Client`] (feature `client`) carries them.
//! Storage goes through [`store::AccountStore`]; SQLite is one implementation (feature `sqlite`).

#![forbid(unsafe_code)]

pub mod account;
pub mod call;
pub mod conformance;
pub mod error;
pub mod file;
pub mod group_bench;
pub mod identity;
pub mod journal;
pub mod link;
pub mod lookup;
pub mod memory;
pub mod provider;
pub mod recovery;
pub mod search;
pub mod store;

#[cfg(feature = "client")]
pub mod audit;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use error::{Alert, AlertCode, CoreError};
pub use missive_proto as proto;

/// The default ciphersuite: post-quantum hybrid X-Wing KEM, ChaCha20-Poly1305, Ed25519.
pub const DEFAULT_CIPHERSUITE: openmls::prelude::Ciphersuite =
    openmls::prelude::Ciphersuite::MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    // web-time is std's clock on native targets and the JavaScript clock in browsers.
    web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}
