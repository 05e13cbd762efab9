//! The idempotency store of the command API
//! (docs/reference/api.md#idempotency), and the rate limiter it shares with
//! the query API.
//!
//! * [`idempotency`] — `Idempotency-Key` records: the first response to a
//!   key is kept for 24 h per principal and replayed; in SQLite or
//!   PostgreSQL. Keys arrive validated ([`basketry_http::IdempotencyKey`]).
//! * [`rate`] — per-API-key token buckets with their headers; part of the
//!   HTTP edge ([`basketry_http::rate`]), re-exported here.
//!
//! Both are stores only: the HTTP layer decides when to call them and maps
//! their errors (each variant documents its status).
//!
//! The idempotency tables come from this crate's migrations
//! (`migrations/sqlite`, `migrations/postgres`), versions `202611211xxxxx`
//! so they never collide with the event store's `202611210xxxxx` in a
//! shared database; the rate limiter's table comes from `basketry_http`'s.

pub mod idempotency;

pub use basketry_http::rate;
pub use idempotency::{
    fingerprint, Begin, Claim, Completion, Earlier, IdempotencyError, IdempotencyStore,
    PostgresIdempotencyStore, SqliteIdempotencyStore, StoredResponse,
};
pub use rate::{
    InMemoryRateLimiter, PostgresRateLimiter, RateDecision, RateLimitError, RateLimitPolicy,
    RateLimiter, RateWindow, DEFAULT_USER_RATE_LIMIT_PER_MINUTE,
};

static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Applies this crate's PostgreSQL migrations, tolerating versions applied
/// by other crates sharing the database (see
/// [`basketry_store::sharing_migrator`]).
async fn migrate_postgres(pool: &sqlx::PgPool) -> Result<(), String> {
    basketry_store::sharing_migrator(&POSTGRES_MIGRATOR)
        .await
        .map_err(|e| format!("loading the command API migrations: {e}"))?
        .run(pool)
        .await
        .map_err(|e| format!("migrating the command API tables in PostgreSQL: {e}"))
}

/// Applies this crate's SQLite migrations; tolerant like
/// [`migrate_postgres`], should the file be shared.
async fn migrate_sqlite(pool: &sqlx::SqlitePool) -> Result<(), String> {
    basketry_store::sharing_migrator(&SQLITE_MIGRATOR)
        .await
        .map_err(|e| format!("loading the command API migrations: {e}"))?
        .run(pool)
        .await
        .map_err(|e| format!("migrating the command API tables in SQLite: {e}"))
}

#[cfg(test)]
mod tests {
    use basketry_test_support::postgres::with_throwaway_database;

    use super::{PostgresIdempotencyStore, PostgresRateLimiter};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
    async fn migrations_share_a_postgres_database_with_the_event_store() {
        with_throwaway_database(|db_url| async move {
            // Either side may migrate first, and again at every start.
            basketry_store::postgres::PostgresStore::connect(&db_url)
                .await
                .unwrap();
            PostgresIdempotencyStore::connect(&db_url).await.unwrap();
            PostgresRateLimiter::connect(&db_url).await.unwrap();
            basketry_store::postgres::PostgresStore::connect(&db_url)
                .await
                .unwrap();
        })
        .await;
    }
}
