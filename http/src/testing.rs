//! Test support: a throwaway PostgreSQL database per test.
//!
//! PostgreSQL tests run when `BASKETRY_TEST_POSTGRES_URL` names a server
//! (e.g. `postgres://postgres@127.0.0.1:5432/postgres`); otherwise they print
//! one line and pass — unless `BASKETRY_REQUIRE_POSTGRES=1` (CI), which turns
//! the skip into a failure.

use std::future::Future;

use sqlx::{Connection, Executor};
use uuid::Uuid;

const POSTGRES_URL: &str = "BASKETRY_TEST_POSTGRES_URL";
const REQUIRE_POSTGRES: &str = "BASKETRY_REQUIRE_POSTGRES";

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The server URL to test against, or `None` (after saying so) when the
/// test is to be skipped. Panics when PostgreSQL is required but not set.
pub(crate) fn postgres_url(test: &str) -> Option<String> {
    if let Some(url) = env_var(POSTGRES_URL) {
        return Some(url);
    }
    let required = env_var(REQUIRE_POSTGRES)
        .is_some_and(|v| v.trim() != "0" && !v.trim().eq_ignore_ascii_case("false"));
    assert!(
        !required,
        "{test}: PostgreSQL required ({REQUIRE_POSTGRES}=1) but {POSTGRES_URL} is not set"
    );
    println!("{test}: skipped (set {POSTGRES_URL}=postgres://postgres@localhost:5432/postgres to run it)");
    None
}

/// Creates `basketry_rl_<uuid>` on the server of `url`, runs `body` with a
/// URL naming it, then drops it (forcibly: pools may still hold connections)
/// whether or not `body` panicked, and re-raises the panic.
pub(crate) async fn with_throwaway_database<F, Fut>(url: &str, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = format!("basketry_rl_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL}: {e}"));
    admin
        .execute(format!("CREATE DATABASE {db}").as_str())
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {db}: {e}"));
    // A spawned task turns a panic into a JoinError, so the drop below runs.
    let outcome = tokio::spawn(body(with_database(url, &db))).await;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str())
        .await
        .unwrap_or_else(|e| panic!("DROP DATABASE {db}: {e}"));
    let _ = admin.close().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test body did not finish: {e}"),
        }
    }
}

/// `url` with its database name replaced by `db`, keeping credentials, host
/// and query parameters.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}
