//! The Missive delivery server: accounts and devices, key packages, public MLS group state,
//! and ordered delivery of ciphertext to devices over HTTP and WebSocket.
//!
//! Entry points: [`app`] builds the router (tests drive it over real sockets), [`serve`] runs it.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
#[cfg(test)]
pub mod conformance;
pub mod error;
pub mod groups;
pub mod postgres;
pub mod push;
pub mod routes;
pub mod running;
pub mod sqlite;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;

pub use config::Config;
pub use running::RunningServer;
use store::Store;

/// Shared state of a running server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    hub: Arc<push::Hub>,
    /// Set when the server starts shutting down, so that push loops end.
    closing: tokio::sync::watch::Sender<bool>,
    group_locks: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        let hub = Arc::new(push::Hub::default());
        store.set_event_sink(hub.clone());
        AppState {
            inner: Arc::new(Inner {
                config,
                store,
                hub,
                closing: tokio::sync::watch::channel(false).0,
                group_locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub fn hub(&self) -> &Arc<push::Hub> {
        &self.inner.hub
    }

    /// Resolves once the server starts shutting down.
    pub async fn closing(&self) {
        let mut rx = self.inner.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }

    /// The lock serializing commits of one group within this process. Across processes the
    /// store's conditional write at the expected epoch keeps commits ordered.
    pub fn group_lock(&self, group_id: &[u8]) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .group_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(group_id.to_vec()).or_default().clone()
    }
}

/// The router with every route, limit and fallback.
pub fn app(state: AppState) -> Router {
    routes::router(state)
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = state.inner.closing.clone();
    let shutdown = async move {
        shutdown.await;
        closing.send_replace(true);
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Opens the store the configuration names: PostgreSQL when `postgres` is set, else the
/// embedded SQLite database in the data directory.
pub async fn open_store(
    config: &Config,
    data: &std::path::Path,
) -> Result<Arc<dyn Store>, store::StoreError> {
    Ok(match &config.postgres {
        Some(url) => Arc::new(postgres::PgStore::connect(url, None).await?),
        None => Arc::new(sqlite::SqliteStore::open(&data.join(config::DB_FILE))?),
    })
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
