//! A server running on its own thread and runtime: what tests and the load generator start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::{Config, DB_FILE};
use crate::sqlite::SqliteStore;
use crate::store::Store;
use crate::AppState;

/// A running server; stopped (gracefully) on [`RunningServer::stop`] or drop.
pub struct RunningServer {
    addr: SocketAddr,
    store: Arc<SqliteStore>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Starts a server on `data` (which must hold a configuration) listening on `listen`
    /// (`127.0.0.1:0` for any free port), with `workers` runtime threads.
    pub fn start(data: &Path, listen: &str, workers: usize) -> anyhow::Result<Self> {
        let config = Config::load(data)?;
        let store = Arc::new(SqliteStore::open(&data.join(DB_FILE))?);
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(config, store.clone() as Arc<dyn Store>);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("missive-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot listen");
                            return;
                        }
                    };
                    let shutdown = async move {
                        let _ = rx.await;
                    };
                    if let Err(e) = crate::serve(listener, state, shutdown).await {
                        tracing::error!(error = %e, "server stopped");
                    }
                });
                // Dropping the runtime here ends the WebSocket tasks still running.
            })?;
        Ok(RunningServer {
            addr,
            store,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's store, for tests that play a hostile server.
    pub fn store(&self) -> &SqliteStore {
        &self.store
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
