//! The Missive delivery server: accounts and devices, key packages, public MLS group state,
//! and ordered delivery of ciphertext to devices over HTTP and WebSocket.
//!
//! Entry points: [`app`] builds the router (tests drive it over real sockets), [`serve`] runs it.

#![forbid(unsafe_code)]

pub mod auth;
pub mod blob_routes;
pub mod blobs;
pub mod call_routes;
pub mod config;
#[cfg(test)]
pub mod conformance;
pub mod device_routes;
pub mod error;
pub mod groups;
pub mod links;
pub mod postgres;
pub mod push;
pub mod ratelimit;
pub mod recovery_routes;
pub mod routes;
pub mod running;
pub mod sfu;
pub mod sqlite;
pub mod store;
pub mod test_postgres;
pub mod transparency;
pub mod web;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;

use blobs::BlobStore;
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
    blobs: Arc<dyn BlobStore>,
    limits: Arc<ratelimit::Limits>,
    hub: Arc<push::Hub>,
    /// Blobs with a request writing them (one at a time per blob).
    uploads: Mutex<HashSet<String>>,
    /// Set when the server starts shutting down, so that push loops end.
    closing: tokio::sync::watch::Sender<bool>,
    group_locks: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
    links: links::Links,
    transparency: transparency::Transparency,
    sfu: sfu::Sfu,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        transparency: transparency::Transparency,
    ) -> std::io::Result<Self> {
        let sfu = sfu::Sfu::start(&config.media_listen, config.media_public_address)?;
        tracing::info!(addr = %sfu.addr(), "call media relay");
        let hub = Arc::new(push::Hub::default());
        store.set_event_sink(hub.clone());
        tell_call_changes(&sfu, store.clone(), hub.clone());
        let limits = ratelimit::Limits::new(&config);
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                store,
                blobs,
                limits,
                hub,
                uploads: Mutex::new(HashSet::new()),
                closing: tokio::sync::watch::channel(false).0,
                group_locks: Mutex::new(HashMap::new()),
                links: links::Links::default(),
                transparency,
                sfu,
            }),
        })
    }

    /// The call media relay.
    pub fn sfu(&self) -> &sfu::Sfu {
        &self.inner.sfu
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub fn limits(&self) -> &ratelimit::Limits {
        &self.inner.limits
    }

    /// The key transparency log.
    pub fn transparency(&self) -> &transparency::Transparency {
        &self.inner.transparency
    }

    /// Open device-link channels.
    pub fn links(&self) -> &links::Links {
        &self.inner.links
    }

    pub fn blobs(&self) -> &dyn BlobStore {
        self.inner.blobs.as_ref()
    }

    /// Claims the right to write blob `id` until the guard drops; `None` if a request has it.
    pub fn claim_upload(&self, id: &str) -> Option<UploadGuard> {
        let mut uploads = self
            .inner
            .uploads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        uploads.insert(id.to_owned()).then(|| UploadGuard {
            state: self.clone(),
            id: id.to_owned(),
        })
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

/// The claim of one request on one blob (see [`AppState::claim_upload`]).
pub struct UploadGuard {
    state: AppState,
    id: String,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        let mut uploads = self
            .state
            .inner
            .uploads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        uploads.remove(&self.id);
    }
}

/// Pushes `PushFrame::CallChanged` to the connected members of a group whose call changed (and
/// to the devices that left it, a device removed from the group among them), so their apps
/// show who is in it at once rather than when they next ask. Runs while the relay
/// lives (its end closes the channel); outside a Tokio runtime (never, in the server) nothing
/// is pushed and clients still see the change when they ask.
fn tell_call_changes(sfu: &sfu::Sfu, store: Arc<dyn Store>, hub: Arc<push::Hub>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut changes = sfu.watch();
    runtime.spawn(async move {
        while let Some((group, left)) = changes.recv().await {
            let mut members = match store.group_members(&group).await {
                Ok(members) => members,
                Err(e) => {
                    tracing::warn!(error = %e, "call change: reading the members failed");
                    continue;
                }
            };
            for device in left {
                if !members.contains(&device) {
                    members.push(device);
                }
            }
            let frame = missive_proto::api::PushFrame::CallChanged {
                group: missive_proto::B64(group),
            };
            if let Ok(json) = serde_json::to_string(&frame) {
                hub.send_frame(&members, json.into());
            }
        }
    });
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
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::Service;

    tokio::spawn(upkeep(state.clone()));
    let router = app(state.clone());
    let header_timeout = Duration::from_secs(state.config().header_read_timeout_secs.max(1));
    // Each connection task holds a receiver; when all are gone, every connection has ended.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                let mut router = router.clone();
                async move { router.call(req.map(axum::body::Body::new)).await }
            });
        let state = state.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // A client gets this long to send its request headers (slow-loris).
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder.http2().timer(TokioTimer::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = state.closing() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            drop(open);
        });
    }
    // Stop accepting; tell push loops and connections to finish; wait for them (bounded).
    drop(listener);
    state.inner.closing.send_replace(true);
    drop(open_rx);
    let _ = tokio::time::timeout(Duration::from_secs(30), open_tx.closed()).await;
    Ok(())
}

/// Upkeep until the server closes: rate-limit keys idle for a while are forgotten every
/// minute; expired blobs are removed at start and then every hour.
async fn upkeep(state: AppState) {
    let mut minutes = 0u64;
    loop {
        state.limits().forget_idle();
        state.links().forget_expired();
        if minutes.is_multiple_of(60) {
            collect_garbage_now(&state).await;
        }
        minutes += 1;
        tokio::select! {
            () = state.closing() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

async fn collect_garbage_now(state: &AppState) {
    let inner = &state.inner;
    let removed = blobs::collect_garbage(
        inner.store.as_ref(),
        inner.blobs.as_ref(),
        &inner.config,
        now_secs(),
    )
    .await;
    match removed {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "expired blobs removed"),
        Err(e) => tracing::warn!(error = %e, "blob expiry failed"),
    }
}

/// Opens the blob store of a data directory (`DATA/blobs`).
pub fn open_blobs(data: &std::path::Path) -> std::io::Result<Arc<dyn BlobStore>> {
    Ok(Arc::new(blobs::FsBlobStore::open(&data.join("blobs"))?))
}

/// Opens the store the configuration names: PostgreSQL when `postgres` is set, else the
/// embedded SQLite database in the data directory.
pub async fn open_store(
    config: &Config,
    data: &std::path::Path,
) -> Result<Arc<dyn Store>, store::StoreError> {
    let store: Arc<dyn Store> = match &config.postgres {
        Some(url) => Arc::new(postgres::PgStore::connect(url, None).await?),
        None => Arc::new(sqlite::SqliteStore::open(&data.join(config::DB_FILE))?),
    };
    // Now that the database files exist, they are made the owner's alone with the rest.
    config::restrict_permissions(data).map_err(|e| {
        store::StoreError::Backend(format!(
            "making {} readable by its owner only: {e}",
            data.display()
        ))
    })?;
    Ok(store)
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
