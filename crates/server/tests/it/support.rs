//! Test harness: a server on port 0 in a temporary directory, and registered clients.

use missive_core::client::Client;
use missive_core::sqlite::SqliteAccountStore;
use missive_server::config::Config;
use missive_server::{auth, now_secs, RunningServer};
use tempfile::TempDir;

pub const DOMAIN: &str = "example.org";

pub struct Harness {
    pub dir: TempDir,
    pub server: RunningServer,
    pub http: reqwest::Client,
    /// The PostgreSQL schema the server stores into, dropped with the harness.
    pg_schema: Option<String>,
}

/// The PostgreSQL database of the tests (see `missive_server::test_postgres`).
pub fn postgres_url() -> String {
    missive_server::test_postgres::url().unwrap_or_else(|why| panic!("{why}"))
}

fn postgres_admin(sql: String) {
    // On a thread of its own: callers may be inside a runtime.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
                .await
                .expect("connecting to the test database");
            tokio::spawn(conn);
            client.batch_execute(&sql).await.expect("admin statement");
        });
    })
    .join()
    .expect("admin thread");
}

impl Harness {
    pub fn new() -> Self {
        Self::start(None, "")
    }

    /// A server whose configuration has these extra TOML lines.
    pub fn with_settings(settings: &str) -> Self {
        Self::start(None, settings)
    }

    /// A server storing into a fresh PostgreSQL schema instead of SQLite.
    pub fn with_postgres() -> Self {
        let schema = format!("missive_it_{:016x}", rand::random::<u64>());
        postgres_admin(format!("CREATE SCHEMA {schema}"));
        Self::start(Some(schema), "")
    }

    fn start(pg_schema: Option<String>, settings: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("server");
        Config::init(&data, DOMAIN).expect("init");
        if let Some(schema) = &pg_schema {
            let path = data.join(missive_server::config::CONFIG_FILE);
            let mut text = std::fs::read_to_string(&path).expect("config");
            text.push_str(&format!(
                "postgres = \"{} options='-c search_path={schema}'\"\n",
                postgres_url()
            ));
            std::fs::write(&path, text).expect("config");
        }
        if !settings.is_empty() {
            let path = data.join(missive_server::config::CONFIG_FILE);
            let text = std::fs::read_to_string(&path).expect("config");
            // Each setting replaces the line of the same key that init wrote.
            let keys: Vec<&str> = settings
                .lines()
                .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
                .collect();
            let mut kept: String = text
                .lines()
                .filter(|l| {
                    !keys
                        .iter()
                        .any(|k| l.split('=').next().map(str::trim) == Some(k))
                })
                .map(|l| format!("{l}\n"))
                .collect();
            kept.push_str(settings);
            std::fs::write(&path, kept).expect("config");
        }
        let server = RunningServer::start(&data, "127.0.0.1:0", 2).expect("server starts");
        Harness {
            dir,
            server,
            http: reqwest::Client::new(),
            pg_schema,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    /// A fresh invite code for `address`, valid for an hour.
    pub async fn invite(&self, address: &str) -> String {
        self.invite_expiring(address, now_secs() + 3600).await
    }

    pub async fn invite_expiring(&self, address: &str, expires_at: u64) -> String {
        let code = auth::new_invite_code();
        self.server
            .store()
            .create_invite(address, auth::hash_secret(&code), expires_at)
            .await
            .expect("invite stored");
        code
    }

    /// The account database of a client home named `name`.
    pub fn home_db(&self, name: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join("clients")
            .join(name)
            .join("account.db")
    }

    /// A store for a client home named `name`.
    pub fn home(&self, name: &str) -> Box<SqliteAccountStore> {
        Box::new(SqliteAccountStore::open(&self.home_db(name)).expect("account store"))
    }

    /// Registers `name@example.org`.
    pub async fn user(&self, name: &str) -> Client {
        let address = format!("{name}@{DOMAIN}");
        let invite = self.invite(&address).await;
        Client::register(self.home(name), &self.server.url(), &address, Some(invite))
            .await
            .expect("registration")
    }

    /// GETs `path` with a client's token and parses the JSON answer.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, client: &Client, path: &str) -> T {
        self.http
            .get(self.url(path))
            .bearer_auth(client.account.token())
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON answer")
    }

    /// Raw events of a client's device after `after`, as the server delivers them.
    pub async fn raw_events(&self, client: &Client, after: u64) -> Vec<missive_proto::api::Event> {
        let resp: missive_proto::api::EventsResponse = self
            .get_json(client, &format!("/v1/events?after={after}"))
            .await;
        resp.events
    }

    /// Alice, Bob and Carol, registered, in a group named `name` that Alice created and the
    /// others joined.
    pub async fn trio(&self, name: &str) -> (Client, Client, Client, String) {
        let mut alice = self.user("alice").await;
        let mut bob = self.user("bob").await;
        let mut carol = self.user("carol").await;
        let conv = alice
            .create_conversation(Some(name.into()), None, &[address("bob"), address("carol")])
            .await
            .expect("group");
        bob.sync().await.expect("bob joins");
        carol.sync().await.expect("carol joins");
        (alice, bob, carol, conv)
    }

    /// A direct connection to the server's database, to play a hostile server.
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.dir.path().join("server").join("missive.db"))
            .expect("db");
        c.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy timeout");
        c
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(schema) = self.pg_schema.take() {
            postgres_admin(format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

pub fn address(name: &str) -> String {
    format!("{name}@{DOMAIN}")
}

/// Texts of the messages that a list of sync outcomes shows.
pub fn texts(outcomes: &[missive_core::account::Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            missive_core::account::Outcome::Message(m) => Some(m.text.clone()),
            _ => None,
        })
        .collect()
}

/// Alerts among sync outcomes.
pub fn alerts(outcomes: &[missive_core::account::Outcome]) -> Vec<missive_core::Alert> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            missive_core::account::Outcome::Alert(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

/// A `missive-server` process of its own (so that it can be killed), with open registration.
pub struct ServerProcess {
    child: std::process::Child,
    data: std::path::PathBuf,
    pub port: u16,
    pub url: String,
}

impl ServerProcess {
    /// Initialises `data` and serves it on a free port.
    pub async fn start(data: &std::path::Path) -> Self {
        let bin = env!("CARGO_BIN_EXE_missive-server");
        let init = std::process::Command::new(bin)
            .arg("--data")
            .arg(data)
            .args(["init", "--domain", DOMAIN])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("init runs");
        assert!(init.success());
        let config = data.join(missive_server::config::CONFIG_FILE);
        let text = std::fs::read_to_string(&config).expect("config");
        // These tests measure durability and memory, not the rate limits: off.
        let text = text
            .replace("open_registration = false", "open_registration = true")
            .replace(
                "rate_limit_ip_per_second = 100",
                "rate_limit_ip_per_second = 0",
            )
            .replace(
                "rate_limit_device_per_second = 50",
                "rate_limit_device_per_second = 0",
            );
        std::fs::write(&config, text).expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut server = ServerProcess {
            child: Self::spawn(data, port),
            data: data.to_owned(),
            port,
            url: format!("http://127.0.0.1:{port}"),
        };
        server.wait_healthy().await;
        server
    }

    fn spawn(data: &std::path::Path, port: u16) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_missive-server"))
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("MISSIVE_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("server runs")
    }

    async fn wait_healthy(&mut self) {
        for _ in 0..400 {
            if let Ok(r) = reqwest::get(format!("{}/healthz", self.url)).await {
                if r.status().is_success() {
                    return;
                }
            }
            // A restart may find the port still held for a moment: start again.
            if let Ok(Some(_)) = self.child.try_wait() {
                self.child = Self::spawn(&self.data, self.port);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the server did not become healthy");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then start again on the same port and data.
    pub async fn kill_and_restart(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
        self.child = Self::spawn(&self.data, self.port);
        self.wait_healthy().await;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client registered (open registration) on a `ServerProcess`, with its home under `dir`.
pub async fn open_user(dir: &std::path::Path, url: &str, name: &str) -> Client {
    let store = SqliteAccountStore::open(&dir.join(name).join("account.db")).expect("store");
    Client::register(Box::new(store), url, &address(name), None)
        .await
        .expect("registration")
}

/// The server appends to its key transparency log the leaf of `list` (a device list's bytes)
/// for `address` under `identity_key`, as if it had accepted it.
pub fn log_leaf(h: &Harness, address: &str, identity_key: [u8; 32], list: &[u8]) {
    let version = missive_proto::devicelist::DeviceList::from_bytes(list)
        .expect("a device list")
        .version;
    let leaf = missive_proto::kt::Leaf::of_list(address, identity_key, version, list);
    h.db()
        .execute(
            "INSERT INTO kt_log (idx, address, version, leaf) VALUES \
             ((SELECT MAX(idx) + 1 FROM kt_log), ?1, ?2, ?3)",
            rusqlite::params![address, version as i64, leaf.to_bytes()],
        )
        .expect("log it");
}

/// Alert codes kept in `client`'s account, oldest first.
pub fn stored_alerts(client: &Client) -> Vec<String> {
    client
        .account
        .store()
        .alerts()
        .expect("alerts")
        .into_iter()
        .map(|a| a.code)
        .collect()
}

/// An identity the server makes up for `address`: an account of its own (never registered)
/// and the device list it signs for its one device.
pub fn server_made_identity(
    h: &Harness,
    address: &str,
) -> (missive_core::account::Account, Vec<u8>) {
    let (rogue, _) = missive_core::account::Account::create(
        h.home(&format!("rogue-{address}")),
        address,
        &h.server.url(),
        None,
    )
    .expect("rogue");
    let list = rogue
        .next_device_list(&[rogue.listed_self()], &[], &[])
        .expect("rogue list");
    (rogue, list)
}

/// The server announces `identity`'s key and device list as `address`'s (logging them too
/// when `log`).
pub fn swap_identity(
    h: &Harness,
    address: &str,
    identity: &(missive_core::account::Account, Vec<u8>),
    log: bool,
) {
    let (rogue, list) = identity;
    h.db()
        .execute(
            "UPDATE users SET identity_key = ?1, device_list = ?2 WHERE address = ?3",
            rusqlite::params![rogue.identity_key().to_vec(), list, address],
        )
        .expect("swap");
    if log {
        log_leaf(h, address, rogue.identity_key(), list);
    }
}

/// Asserts a security refusal with `code`.
pub fn assert_refused(
    result: Result<impl std::fmt::Debug, missive_core::error::CoreError>,
    code: missive_core::AlertCode,
) {
    match result {
        Err(missive_core::error::CoreError::Refused(alert)) => {
            assert_eq!(alert.code, code, "{alert}")
        }
        other => panic!("expected a refusal with {code:?}, got {other:?}"),
    }
}
