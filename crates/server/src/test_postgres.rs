//! The PostgreSQL database the test suites use (the store's conformance suite and the
//! end-to-end tests over PostgreSQL): `MISSIVE_TEST_POSTGRES` when set, else the database `test`
//! of the server at 127.0.0.1:5432 as user `postgres`, created on first use if it is missing.
//! Each test then works in a schema of its own.

use std::sync::OnceLock;

use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// The local server's test database.
const LOCAL: &str = "host=127.0.0.1 user=postgres dbname=test";
/// The local server's maintenance database, to create `test` from.
const LOCAL_ADMIN: &str = "host=127.0.0.1 user=postgres dbname=postgres";

/// The test database's connection string, or why there is none (said once per process).
pub fn url() -> Result<String, String> {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("MISSIVE_TEST_POSTGRES") {
        Ok(url) => Ok(url),
        Err(_) => create_local().map(|()| LOCAL.to_owned()),
    })
    .clone()
}

/// Creates the local `test` database unless it exists (on a thread of its own: callers may be
/// inside a runtime).
fn create_local() -> Result<(), String> {
    std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(LOCAL_ADMIN, NoTls)
                    .await
                    .map_err(|e| {
                        format!(
                        "PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres ({e}): \
                         start it, or set MISSIVE_TEST_POSTGRES to a connection string"
                    )
                    })?;
            tokio::spawn(connection);
            let exists = client
                .query_opt("SELECT 1 FROM pg_database WHERE datname = 'test'", &[])
                .await
                .map_err(|e| e.to_string())?
                .is_some();
            if exists {
                return Ok(());
            }
            match client.batch_execute("CREATE DATABASE test").await {
                // Another test process created it meanwhile.
                Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(()),
                Err(e) => Err(format!("creating the database test: {e}")),
                Ok(()) => Ok(()),
            }
        })
    })
    .join()
    .map_err(|_| "the PostgreSQL set-up thread panicked".to_owned())?
}
