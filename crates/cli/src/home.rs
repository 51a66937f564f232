//! Account homes: where they are, opening one, and the commands that make one (`register`,
//! `recover`, `join`), which leave nothing behind when they fail.

use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use missive_core::client::Client;
use missive_core::recovery::RecoveryKey;
use missive_core::sqlite::SqliteAccountStore;
use missive_core::store::AccountStore;
use missive_core::CoreError;

/// The account's database file inside its home.
const ACCOUNT_FILE: &str = "account.db";

/// The account home: `--home` (or `MISSIVE_HOME`), else `~/.missive`.
pub(crate) fn path(cli_home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(h) = cli_home {
        return Ok(h);
    }
    let base = std::env::var_os("HOME").context("set --home or MISSIVE_HOME")?;
    Ok(Path::new(&base).join(".missive"))
}

/// The account store of an existing account home; nothing is created when there is none.
pub(crate) fn existing_store(home: &Path) -> anyhow::Result<Box<dyn AccountStore + Send>> {
    let path = home.join(ACCOUNT_FILE);
    if !path.exists() {
        anyhow::bail!(
            "no account in {}: run `missive register` (or `missive join` for another device \
             of yours) first, or pass the right --home",
            home.display()
        );
    }
    open_store(home)
}

fn open_store(home: &Path) -> anyhow::Result<Box<dyn AccountStore + Send>> {
    let store = SqliteAccountStore::open(&home.join(ACCOUNT_FILE))
        .with_context(|| format!("opening the account in {}", home.display()))?;
    Ok(Box::new(store))
}

/// A home being made by `register` or `join`: if the command fails, what it created is
/// removed, so that a mistyped code or an unreachable server leaves nothing half made.
struct NewHome {
    home: PathBuf,
    /// The home directory did not exist before.
    created_dir: bool,
    /// There was no account file before (a failure must never touch an existing account).
    created_file: bool,
}

impl NewHome {
    fn open(home: &Path) -> anyhow::Result<(Self, Box<dyn AccountStore + Send>)> {
        let guard = NewHome {
            home: home.to_owned(),
            created_dir: !home.exists(),
            created_file: !home.join(ACCOUNT_FILE).exists(),
        };
        let store = open_store(home)?;
        Ok((guard, store))
    }

    /// Removes what this command created (its store must be closed by now).
    fn discard(self) {
        if self.created_dir {
            let _ = std::fs::remove_dir_all(&self.home);
        } else if self.created_file {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(self.home.join(format!("{ACCOUNT_FILE}{suffix}")));
            }
        }
    }
}

/// Prints a recovery key (the one time it is shown), with what to do with it.
pub(crate) fn show_recovery_key(key: &RecoveryKey) -> anyhow::Result<()> {
    out!("recovery key: {}", key.display())?;
    eprintln!(
        "Write this recovery key down (or print it) and keep it somewhere safe: it is the only \
         way back into your account if you lose every device (`missive recover`). It is not \
         shown again."
    );
    Ok(())
}

/// Runs `make` on the store of a new home at `home`; if it fails, what it created is removed.
async fn in_new_home<T, F, Fut>(home: &Path, make: F) -> anyhow::Result<T>
where
    F: FnOnce(Box<dyn AccountStore + Send>) -> Fut,
    Fut: Future<Output = Result<T, CoreError>>,
{
    let (new_home, store) = NewHome::open(home)?;
    match make(store).await {
        Ok(done) => Ok(done),
        Err(e) => {
            new_home.discard();
            Err(e.into())
        }
    }
}

/// `missive register`.
pub(crate) async fn register(
    home: &Path,
    server: &str,
    address: &str,
    invite: Option<String>,
) -> anyhow::Result<ExitCode> {
    let client = in_new_home(home, |store| {
        Client::register(store, server, address, invite)
    })
    .await?;
    out!(
        "registered {} (device {}) on {}",
        client.account.address(),
        client.account.device_id(),
        client.account.server()
    )?;
    if let Some(key) = client.account.recovery_key()? {
        show_recovery_key(&key)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `missive recover`: the recovery key is read from stdin.
pub(crate) async fn recover(home: &Path, server: &str, address: &str) -> anyhow::Result<ExitCode> {
    if std::io::stdin().is_terminal() {
        eprintln!("recovery key:");
    }
    let mut typed = String::new();
    std::io::stdin().read_line(&mut typed)?;
    let key = RecoveryKey::parse(&typed)?;
    let (client, recovered) =
        in_new_home(home, |store| Client::recover(store, server, address, &key)).await?;
    for (conversation, why) in &recovered.failed {
        eprintln!("could not rejoin {conversation}: {why}");
    }
    out!(
        "recovered {} (device {}) on {}: {} conversations rejoined, {} messages of history, {} \
         lost devices removed",
        client.account.address(),
        client.account.device_id(),
        client.account.server(),
        recovered.rejoined,
        recovered.messages,
        recovered.revoked
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `missive join`.
pub(crate) async fn join(
    home: &Path,
    server: &str,
    code: &str,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    if std::io::stderr().is_terminal() {
        eprintln!("waiting for the linking device...");
    }
    let joined = in_new_home(home, |store| {
        Client::join(store, server, code, std::time::Duration::from_secs(timeout))
    })
    .await?;
    out!(
        "linked {} (device {}): {} conversations, {} messages of history",
        joined.client.account.address(),
        joined.client.account.device_id(),
        joined.conversations,
        joined.messages
    )?;
    Ok(ExitCode::SUCCESS)
}
