//! A server running on its own thread and runtime: what tests and the load generator start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::store::Store;
use crate::AppState;

/// A running server; stopped (gracefully) on [`RunningServer::stop`] or drop.
pub struct RunningServer {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    config: Config,
    state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Starts a server on `data` (which must hold a configuration) listening on `listen`
    /// (`127.0.0.1:0` for any free port), with `workers` runtime threads.
    pub fn start(data: &Path, listen: &str, workers: usize) -> anyhow::Result<Self> {
        let config = Config::load(data)?;
        let server_config = config.clone();
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()?;
        let data = data.to_owned();
        // Everything async happens on the server's own thread and runtime, so that this works
        // from inside another runtime too.
        let thread = std::thread::Builder::new()
            .name("missive-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let store = match crate::open_store(&config, &data).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx
                                .send(Err(crate::store::StoreError::Backend(e.to_string())));
                            return;
                        }
                    };
                    let blobs = match crate::open_blobs(&data) {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = ready_tx
                                .send(Err(crate::store::StoreError::Backend(e.to_string())));
                            return;
                        }
                    };
                    let transparency =
                        match crate::transparency::Transparency::open(&data, &config.domain) {
                            Ok(t) => t,
                            Err(e) => {
                                let _ = ready_tx
                                    .send(Err(crate::store::StoreError::Backend(e.to_string())));
                                return;
                            }
                        };
                    let state =
                        match AppState::new(config, store.clone(), blobs.clone(), transparency) {
                            Ok(s) => s,
                            Err(e) => {
                                let _ = ready_tx.send(Err(crate::store::StoreError::Backend(
                                    format!("call media relay: {e}"),
                                )));
                                return;
                            }
                        };
                    let _ = ready_tx.send(Ok((store, blobs, state.clone())));
                    let shutdown = async move {
                        let _ = rx.await;
                    };
                    if let Err(e) = crate::serve(listener, state, shutdown).await {
                        tracing::error!(error = %e, "server stopped");
                    }
                });
                // Dropping the runtime here ends the WebSocket tasks still running.
            })?;
        let (store, blobs, state) = ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the server thread ended before starting"))??;
        Ok(RunningServer {
            addr,
            store,
            blobs,
            config: server_config,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The call media relay (tests look at what it forwards).
    pub fn sfu(&self) -> &crate::sfu::Sfu {
        self.state.sfu()
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's store, for tests that play a hostile server.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Runs blob expiry as if the clock read `now` (seconds); returns how many were removed.
    pub fn collect_garbage(&self, now: u64) -> anyhow::Result<usize> {
        let (store, blobs, config) = (self.store.clone(), self.blobs.clone(), self.config.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // On a thread of its own: the caller may be inside a runtime.
        let removed = std::thread::spawn(move || {
            rt.block_on(crate::blobs::collect_garbage(
                store.as_ref(),
                blobs.as_ref(),
                &config,
                now,
            ))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("garbage collection panicked"))??;
        Ok(removed)
    }

    /// Stops accepting, lets requests in flight finish, and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}
