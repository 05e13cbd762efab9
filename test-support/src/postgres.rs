//! Throwaway PostgreSQL databases: a uniquely named database on the server
//! of `BASKETRY_TEST_POSTGRES_URL`, handed to one test and dropped after it.
//!
//! Tests that use these are marked ignored unless the package was built
//! with the URL set (see the crate docs); a test that was built to run and
//! then finds no URL fails with [`TestDatabaseError::NotConfigured`] rather
//! than passing without running.

use std::future::Future;

use sqlx::{Connection, Executor};

/// The variable naming the PostgreSQL server the tests may create
/// databases on, e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub const URL_VAR: &str = "BASKETRY_TEST_POSTGRES_URL";

/// The variable that, set to `1`, makes running without [`URL_VAR`] a
/// failure (CI).
pub const REQUIRE_VAR: &str = "BASKETRY_REQUIRE_POSTGRES";

/// Why a throwaway database could not be had or dropped.
#[derive(Debug, thiserror::Error)]
pub enum TestDatabaseError {
    /// The test was built to run against PostgreSQL but the URL is not set
    /// now.
    #[error("{URL_VAR} is not set (this PostgreSQL test was built to run: set it, or rebuild without it to have the test ignored)")]
    NotConfigured,
    /// The server did not accept a connection.
    #[error("connecting to the server of {URL_VAR}: {0}")]
    Connect(#[source] sqlx::Error),
    /// `CREATE DATABASE` failed.
    #[error("creating the test database {name}: {source}")]
    Create {
        /// The database's name.
        name: String,
        /// What the server said.
        #[source]
        source: sqlx::Error,
    },
    /// `DROP DATABASE` failed.
    #[error("dropping the test database {name}: {source}")]
    Drop {
        /// The database's name.
        name: String,
        /// What the server said.
        #[source]
        source: sqlx::Error,
    },
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Whether PostgreSQL tests must run (`BASKETRY_REQUIRE_POSTGRES` set to
/// anything but `0` or `false`).
pub fn required() -> bool {
    var(REQUIRE_VAR).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The server URL for a test harness that decides at run time (the store's
/// conformance suite reports its PostgreSQL trials as ignored when this is
/// `None`). Panics when PostgreSQL is [`required`] and the URL is not set.
pub fn configured_url() -> Option<String> {
    let url = var(URL_VAR);
    assert!(
        url.is_some() || !required(),
        "{REQUIRE_VAR}=1 but {URL_VAR} is not set: the PostgreSQL tests would be skipped"
    );
    url
}

/// The server URL for a test that was built to run against PostgreSQL.
pub fn server_url() -> Result<String, TestDatabaseError> {
    var(URL_VAR).ok_or(TestDatabaseError::NotConfigured)
}

/// `server_url` with its database name replaced by `database`, keeping
/// credentials, host and query parameters.
pub fn database_url(server_url: &str, database: &str) -> String {
    let (scheme, rest) = server_url
        .split_once("://")
        .unwrap_or(("postgres", server_url));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    match query {
        Some(q) => format!("{scheme}://{authority}/{database}?{q}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// A database that exists for one test: created on the server of
/// `BASKETRY_TEST_POSTGRES_URL`, dropped by [`TestDatabase::drop_now`] or,
/// failing that, when the value is dropped (best effort: a leftover
/// database only costs disk).
#[derive(Debug)]
pub struct TestDatabase {
    server_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl TestDatabase {
    /// A fresh, empty database on the server of `BASKETRY_TEST_POSTGRES_URL`.
    pub async fn create() -> Result<Self, TestDatabaseError> {
        Self::create_on(&server_url()?).await
    }

    /// A fresh, empty database on the server of `server_url`.
    pub async fn create_on(server_url: &str) -> Result<Self, TestDatabaseError> {
        let name = format!("basketry_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(server_url)
            .await
            .map_err(TestDatabaseError::Connect)?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .map_err(|source| TestDatabaseError::Create {
                name: name.clone(),
                source,
            })?;
        let _ = admin.close().await;
        Ok(Self {
            url: database_url(server_url, &name),
            server_url: server_url.to_string(),
            name,
            dropped: false,
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now (forcibly: pools may still hold connections).
    pub async fn drop_now(mut self) -> Result<(), TestDatabaseError> {
        self.dropped = true;
        drop_database(&self.server_url, &self.name).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // On a thread of its own: the test's runtime may be shutting down,
        // and blocking inside it is not allowed.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = rt.block_on(drop_database(&server_url, &name));
        })
        .join();
    }
}

async fn drop_database(server_url: &str, name: &str) -> Result<(), TestDatabaseError> {
    let mut admin = sqlx::PgConnection::connect(server_url)
        .await
        .map_err(TestDatabaseError::Connect)?;
    let dropped = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .map(|_| ())
        .map_err(|source| TestDatabaseError::Drop {
            name: name.to_string(),
            source,
        });
    let _ = admin.close().await;
    dropped
}

/// Creates a throwaway database, runs `body` with its URL, then drops it
/// whether or not `body` panicked, and re-raises the panic. Panics when no
/// database can be had.
pub async fn with_throwaway_database<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = match TestDatabase::create().await {
        Ok(db) => db,
        Err(e) => panic!("{e}"),
    };
    // A spawned task turns a panic into a JoinError, so the drop below runs.
    let outcome = tokio::spawn(body(db.url().to_string())).await;
    if let Err(e) = db.drop_now().await {
        panic!("{e}");
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the test body did not finish: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn the_database_name_is_replaced_and_everything_else_kept() {
        assert_eq!(
            database_url("postgres://u:p@h:5432/postgres", "t1"),
            "postgres://u:p@h:5432/t1"
        );
        assert_eq!(
            database_url("postgres://h/postgres?sslmode=disable", "t1"),
            "postgres://h/t1?sslmode=disable"
        );
        assert_eq!(database_url("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            database_url("postgresql://h:1/db?a=b&c=d", "t1"),
            "postgresql://h:1/t1?a=b&c=d"
        );
    }
}
