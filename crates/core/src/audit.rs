//! Auditing a domain's key transparency log from outside: the auditor keeps the last head it
//! verified (size, root) and the log's key, fetches the head the server signs now and every
//! leaf, rebuilds the tree, and checks that the leaves make both the old root (for the first
//! `size` leaves: nothing was rewritten) and the new one (the server signs what it serves).
//! Every leaf must parse, and each address's list versions must only grow.

use std::collections::HashMap;

use missive_proto::api::{KtEntries, TransparencyInfo};
use missive_proto::kt::{Leaf, Log, TreeHead};
use serde::{Deserialize, Serialize};

use crate::client::Transport;
use crate::error::{AlertCode, CoreError};

/// Leaves fetched per request.
const PAGE: u32 = 1000;

/// What an auditor remembers between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    pub domain: String,
    /// The log key, hex.
    pub key: String,
    pub size: u64,
    /// The root of the first `size` leaves, hex.
    pub root: String,
}

/// A run's result: the new state to keep.
#[derive(Clone, Debug)]
pub struct AuditReport {
    /// What was verified: its `size` is the number of leaves checked (all of them).
    pub state: AuditState,
    /// Leaves that were in the log at the previous run.
    pub previous: u64,
}

fn failed(why: String) -> CoreError {
    CoreError::refused(AlertCode::TransparencyFailed, why)
}

/// Audits the log of the server `transport` talks to, against `previous` (the state of the
/// last run, if any).
pub async fn audit(
    transport: &Transport,
    previous: Option<&AuditState>,
) -> Result<AuditReport, CoreError> {
    let info: TransparencyInfo = transport.get("/v1/transparency").await?;
    let key = crate::hex(info.key.as_bytes());
    if let Some(p) = previous {
        if p.key != key || p.domain != info.domain {
            return Err(failed(format!(
                "the log of {} is now signed by another key ({key}) than before ({})",
                info.domain, p.key
            )));
        }
    }
    let head = TreeHead {
        size: info.head.size,
        root: info
            .head
            .root
            .as_bytes()
            .try_into()
            .map_err(|_| failed("the log's head is malformed".into()))?,
        signature: info
            .head
            .signature
            .as_bytes()
            .try_into()
            .map_err(|_| failed("the log's head is malformed".into()))?,
    };
    if !head.verify(info.key.as_bytes(), &info.domain) {
        return Err(failed("the log's head is not signed by its key".into()));
    }
    let previous_size = previous.map_or(0, |p| p.size);
    if head.size < previous_size {
        return Err(failed(format!(
            "the log shrank: {} entries now, {previous_size} before",
            head.size
        )));
    }
    let mut log = Log::new();
    let mut versions: HashMap<String, u64> = HashMap::new();
    while log.len() < head.size {
        let page: KtEntries = transport
            .get(&format!(
                "/v1/transparency/entries?from={}&limit={PAGE}",
                log.len()
            ))
            .await?;
        if page.entries.is_empty() {
            return Err(failed(format!(
                "the server serves {} entries of a log it says holds {}",
                log.len(),
                head.size
            )));
        }
        for entry in page.entries {
            if log.len() == head.size {
                break;
            }
            let leaf = Leaf::from_bytes(entry.as_bytes())
                .map_err(|_| failed(format!("entry {} of the log is malformed", log.len())))?;
            let last = versions.entry(leaf.address.clone()).or_insert(0);
            if leaf.list_version <= *last && *last > 0 {
                return Err(failed(format!(
                    "entry {} of the log sets the device list of {} back to version {} \
                     (version {} came before)",
                    log.len(),
                    leaf.address,
                    leaf.list_version,
                    last
                )));
            }
            *last = leaf.list_version;
            log.push(entry.0);
            if let Some(p) = previous.filter(|p| p.size == log.len()) {
                if crate::hex(&log.root()) != p.root {
                    return Err(failed(format!(
                        "the first {} entries of the log no longer make the root verified \
                         before: an entry was rewritten",
                        p.size
                    )));
                }
            }
        }
    }
    if log.root() != head.root {
        return Err(failed(
            "the entries the server serves do not make the head it signs".into(),
        ));
    }
    Ok(AuditReport {
        state: AuditState {
            domain: info.domain,
            key,
            size: head.size,
            root: crate::hex(&head.root),
        },
        previous: previous_size,
    })
}
