//! Live push: a registry of connected devices, woken when their inbox grows. The wake-up only
//! says "look again"; the WebSocket task reads the events from the store, so ordering and
//! durability come from the store alone.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// Connected devices, each with a watch channel holding the newest event id it should fetch.
#[derive(Default)]
pub struct Hub {
    devices: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Hub {
    /// Subscribes to wake-ups for `device_id`.
    pub fn subscribe(&self, device_id: &str) -> watch::Receiver<u64> {
        let mut devices = self
            .devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        devices
            .entry(device_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the connected devices among `device_ids` for event `event_id`.
    pub fn notify<'a>(&self, device_ids: impl IntoIterator<Item = &'a String>, event_id: u64) {
        let mut devices = self
            .devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for id in device_ids {
            if let Some(tx) = devices.get(id) {
                if tx.receiver_count() == 0 {
                    devices.remove(id);
                } else {
                    tx.send_modify(|latest| *latest = (*latest).max(event_id));
                }
            }
        }
    }

    /// Number of devices with a live subscription.
    pub fn connected(&self) -> usize {
        let devices = self
            .devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        devices
            .values()
            .filter(|tx| tx.receiver_count() > 0)
            .count()
    }
}
