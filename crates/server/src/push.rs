//! Live push. The store's writer publishes every committed event, in event-id order, to the
//! [`Hub`]; the hub hands each event, serialized once, to the connections of its recipients.
//! A connection whose queue is full is marked lagged and catches up from the store, so a slow
//! device costs bounded memory and loses nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::store::{EventSink, Published};

/// Events a connection may have queued before it is marked lagged.
pub const QUEUE: usize = 256;

/// What a connection is handed.
#[derive(Clone, Debug)]
pub enum Push {
    /// An event (its id, and its JSON as in `PushFrame::Events`).
    Event(u64, Arc<str>),
    /// Something new to fetch from the store.
    Wake,
    /// A frame to send as it is (JSON, a `PushFrame` of something not stored).
    Frame(Arc<str>),
}

struct Conn {
    id: u64,
    tx: mpsc::Sender<Push>,
    lagged: Arc<AtomicBool>,
}

/// Connected devices.
#[derive(Default)]
pub struct Hub {
    devices: Mutex<HashMap<String, Vec<Conn>>>,
    next_id: AtomicU64,
}

/// One connection's subscription; unsubscribes on drop.
pub struct Subscription {
    hub: Arc<Hub>,
    device_id: String,
    id: u64,
    pub rx: mpsc::Receiver<Push>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// Whether pushes were dropped since the last call (then catch up from the store).
    pub fn take_lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::AcqRel)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut devices = self.hub.lock();
        if let Some(conns) = devices.get_mut(&self.device_id) {
            conns.retain(|c| c.id != self.id);
            if conns.is_empty() {
                devices.remove(&self.device_id);
            }
        }
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Conn>>> {
        self.devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Subscribes a new connection of `device_id`.
    pub fn subscribe(self: &Arc<Self>, device_id: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicBool::new(false));
        self.lock()
            .entry(device_id.to_owned())
            .or_default()
            .push(Conn {
                id,
                tx,
                lagged: lagged.clone(),
            });
        Subscription {
            hub: self.clone(),
            device_id: device_id.to_owned(),
            id,
            rx,
            lagged,
        }
    }

    /// Ends every live connection of `device_id` (a revoked device).
    pub fn disconnect(&self, device_id: &str) {
        self.lock().remove(device_id);
    }

    /// Hands `frame` to every live connection of `devices`.
    pub fn send_frame(&self, devices: &[String], frame: Arc<str>) {
        Self::deliver_to(&self.lock(), devices, &Push::Frame(frame));
    }

    /// Hands `push` to every live connection of `devices` among `connected`.
    fn deliver_to(connected: &HashMap<String, Vec<Conn>>, devices: &[String], push: &Push) {
        for d in devices {
            for conn in connected.get(d).into_iter().flatten() {
                Self::deliver(conn, push.clone());
            }
        }
    }

    fn deliver(conn: &Conn, push: Push) {
        if conn.tx.try_send(push).is_err() {
            conn.lagged.store(true, Ordering::Release);
            // Make sure the connection wakes up to notice.
            let _ = conn.tx.try_send(Push::Wake);
        }
    }
}

impl EventSink for Hub {
    fn publish(&self, batch: Vec<Published>) {
        let devices = self.lock();
        if devices.is_empty() {
            return;
        }
        for published in batch {
            match published {
                Published::Event { event, recipients } => {
                    if !recipients.iter().any(|r| devices.contains_key(r)) {
                        continue;
                    }
                    let Ok(json) = serde_json::to_string(&event) else {
                        continue;
                    };
                    let json: Arc<str> = json.into();
                    for r in recipients.iter() {
                        for conn in devices.get(r).into_iter().flatten() {
                            Self::deliver(conn, Push::Event(event.id, json.clone()));
                        }
                    }
                }
                Published::Wake {
                    devices: targets, ..
                } => Self::deliver_to(&devices, &targets, &Push::Wake),
            }
        }
    }
}
