//! `Idempotency-Key` storage (SPEC §4).
//!
//! A POST/PUT/DELETE carrying a key goes through [`IdempotencyStore::begin`]
//! before it runs:
//!
//! * [`Begin::Proceed`] — the key is new (or free again): run the command,
//!   then [`IdempotencyStore::complete`] with the response, or
//!   [`IdempotencyStore::abandon`] when it failed with a 5xx or the request
//!   was cancelled, so that a retry can run;
//! * [`Begin::Replay`] — the same request already completed: send the stored
//!   response again, with `Idempotent-Replayed: true`;
//! * [`Begin::InFlight`] — the same request is still running: 409;
//! * [`Begin::Mismatch`] — the key was used for a different request: 422
//!   `idempotency_key_reused`.
//!
//! Keys are scoped per principal (two partners may use the same key) and
//! kept for [`RETENTION`] from their first use; older records count as
//! absent and [`IdempotencyStore::purge_expired`] deletes them. A record left
//! in flight for longer than the in-flight timeout (an instance crashed
//! mid-request) is taken over by the next `begin`.
//!
//! Claiming a key is one `INSERT … ON CONFLICT` statement, so of any number
//! of concurrent `begin`s for one key exactly one gets `Proceed`, on one
//! instance or many.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::Row;

/// How long a key's first response is kept and replayed (SPEC §4).
pub const RETENTION: TimeDelta = TimeDelta::hours(24);

/// How long a request may stay in flight before another `begin` with its
/// key may take it over, by default. Far longer than any command should
/// run; a request still in flight after it is presumed lost with its
/// instance.
pub const DEFAULT_IN_FLIGHT_TIMEOUT: TimeDelta = TimeDelta::seconds(60);

/// Longest `Idempotency-Key` accepted (SPEC §4).
pub const MAX_KEY_LEN: usize = 255;

/// How often `begin` retries when the record it collided with vanished
/// before it could be read (abandoned or purged in between).
const BEGIN_ATTEMPTS: usize = 3;

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key is now claimed by this request: run it, then `complete` or
    /// `abandon`.
    Proceed,
    /// The same request already completed: send this response again.
    Replay(StoredResponse),
    /// The same request is still running: 409.
    InFlight,
    /// The key was used for a different request: 422
    /// `idempotency_key_reused`.
    Mismatch,
}

/// A response as stored for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status code.
    pub status: u16,
    /// The headers to replay, in order (repeats allowed). Per-request
    /// headers such as `X-Request-Id` or `RateLimit` do not belong here.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

/// Why an idempotency operation failed. Each variant names the status the
/// API answers with.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The `Idempotency-Key` header is empty, too long or not visible ASCII:
    /// 400.
    #[error("invalid idempotency key: {0}")]
    InvalidKey(String),
    /// The store cannot be reached or failed: 503 with `Retry-After`. The
    /// request must not run unprotected.
    #[error("idempotency store unavailable: {0}")]
    Unavailable(String),
    /// A stored record cannot be decoded: 500.
    #[error("stored idempotency record is corrupt: {0}")]
    Corrupt(String),
}

/// Checks an `Idempotency-Key`: 1–255 visible ASCII characters (`!` to `~`,
/// so no spaces or control characters), else [`IdempotencyError::InvalidKey`]
/// (400).
pub fn validate_key(key: &str) -> Result<(), IdempotencyError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(IdempotencyError::InvalidKey(format!(
            "must be 1-{MAX_KEY_LEN} characters, got {}",
            key.chars().count()
        )));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IdempotencyError::InvalidKey(
            "must be visible ASCII characters only".into(),
        ));
    }
    Ok(())
}

/// Fingerprint of a request: lower-case hex SHA-256 over the method, the
/// path (include the query string if it matters to the command) and the
/// body. Each part is prefixed with its length, so that moving bytes between
/// parts changes the fingerprint.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), body] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Where requests carrying an `Idempotency-Key` are recorded.
///
/// `principal` scopes keys, e.g. `partner:<api_key_id>` or
/// `user:<user_id>`; `now` is passed in so that expiry is testable.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request with `request_fingerprint`, or says what
    /// to do instead (see [`Begin`]). Validates the key first.
    async fn begin(
        &self,
        principal: &str,
        key: &str,
        request_fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<Begin, IdempotencyError>;

    /// Stores the response of the request that got [`Begin::Proceed`], for
    /// replay. Does nothing if the key is no longer in flight (its record
    /// expired or was taken over after the in-flight timeout).
    async fn complete(
        &self,
        principal: &str,
        key: &str,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<(), IdempotencyError>;

    /// Releases an in-flight key (the command failed with a 5xx, or the
    /// request was cancelled) so that a retry runs. A completed record is
    /// left alone.
    async fn abandon(&self, principal: &str, key: &str) -> Result<(), IdempotencyError>;

    /// Deletes the records that are [`RETENTION`] old at `now`; returns how
    /// many went.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, IdempotencyError>;
}

// The statements are shared by both backends: sqlx binds SQLite's `$N`
// parameters by number too.

/// Inserts an in-flight record, or takes over one that is expired or stale
/// (in flight past the timeout). `$5` is the expiry cutoff, `$6` the
/// staleness cutoff. Returns a row only when this request claimed the key.
/// The conflict clause decides under the row's lock (PostgreSQL) or the
/// database's write lock (SQLite), so only one claimant can win.
const CLAIM: &str = "\
    INSERT INTO idempotency_keys (principal, idempotency_key, fingerprint, created_at) \
    VALUES ($1, $2, $3, $4) \
    ON CONFLICT (principal, idempotency_key) DO UPDATE SET \
        fingerprint = excluded.fingerprint, created_at = excluded.created_at, \
        completed_at = NULL, response_status = NULL, response_headers = NULL, \
        response_body = NULL \
    WHERE idempotency_keys.created_at <= $5 \
       OR (idempotency_keys.completed_at IS NULL AND idempotency_keys.created_at <= $6) \
    RETURNING idempotency_key";

const SELECT: &str = "\
    SELECT fingerprint, completed_at IS NOT NULL AS completed, response_status, \
           response_headers, response_body \
    FROM idempotency_keys WHERE principal = $1 AND idempotency_key = $2";

const COMPLETE: &str = "\
    UPDATE idempotency_keys SET completed_at = $3, response_status = $4, \
        response_headers = $5, response_body = $6 \
    WHERE principal = $1 AND idempotency_key = $2 AND completed_at IS NULL";

const ABANDON: &str = "\
    DELETE FROM idempotency_keys \
    WHERE principal = $1 AND idempotency_key = $2 AND completed_at IS NULL";

const PURGE: &str = "DELETE FROM idempotency_keys WHERE created_at <= $1";

/// A record that was already there when `begin` tried to claim its key.
struct Existing {
    fingerprint: String,
    completed: bool,
    status: Option<i32>,
    headers: Option<Json<Vec<(String, String)>>>,
    body: Option<Vec<u8>>,
}

impl Existing {
    fn decide(self, request_fingerprint: &str) -> Result<Begin, IdempotencyError> {
        if self.fingerprint != request_fingerprint {
            return Ok(Begin::Mismatch);
        }
        if !self.completed {
            return Ok(Begin::InFlight);
        }
        match (self.status, self.headers, self.body) {
            (Some(status), Some(Json(headers)), Some(body)) => Ok(Begin::Replay(StoredResponse {
                status: u16::try_from(status)
                    .map_err(|_| IdempotencyError::Corrupt(format!("status {status}")))?,
                headers,
                body,
            })),
            _ => Err(IdempotencyError::Corrupt(
                "completed record without a response".into(),
            )),
        }
    }
}

/// The cutoffs of one `begin`: records created at or before `expired` are
/// gone; in-flight ones created at or before `stale` may be taken over.
struct Cutoffs {
    expired: DateTime<Utc>,
    stale: DateTime<Utc>,
}

impl Cutoffs {
    fn at(now: DateTime<Utc>, in_flight_timeout: TimeDelta) -> Self {
        Self {
            expired: now - RETENTION,
            stale: now - in_flight_timeout,
        }
    }
}

/// Idempotency records in SQLite: the embedded default. Same file settings
/// as the event store (WAL, `synchronous=FULL`, busy timeout), but keep it in
/// a file of its own: the event store's migrator does not tolerate foreign
/// migrations.
#[derive(Debug, Clone)]
pub struct SqliteIdempotencyStore {
    pool: SqlitePool,
    in_flight_timeout: TimeDelta,
}

impl SqliteIdempotencyStore {
    /// Opens (creating if needed) the database file at `path` and applies
    /// the migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, IdempotencyError> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true);
        Self::with_options(options).await
    }

    /// Opens the database named by a `sqlite://path` URL.
    pub async fn connect(url: &str) -> Result<Self, IdempotencyError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| IdempotencyError::Unavailable(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true);
        Self::with_options(options).await
    }

    async fn with_options(options: SqliteConnectOptions) -> Result<Self, IdempotencyError> {
        basketry_store::sqlite::create_private_file(&options)
            .map_err(|e| IdempotencyError::Unavailable(format!("creating the SQLite file: {e}")))?;
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // SQLite runs one writer at a time anyway; a few connections let
        // reads (replays) proceed beside a write.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(sqlite_unavailable)?;
        super::migrate_sqlite(&pool)
            .await
            .map_err(IdempotencyError::Unavailable)?;
        Ok(Self {
            pool,
            in_flight_timeout: DEFAULT_IN_FLIGHT_TIMEOUT,
        })
    }

    /// Sets how long a request may stay in flight before its key may be
    /// taken over (default [`DEFAULT_IN_FLIGHT_TIMEOUT`]).
    pub fn with_in_flight_timeout(mut self, timeout: TimeDelta) -> Self {
        self.in_flight_timeout = timeout;
        self
    }
}

/// SQLite keeps times as microseconds since the Unix epoch.
fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn sqlite_unavailable(e: sqlx::Error) -> IdempotencyError {
    IdempotencyError::Unavailable(format!("SQLite: {e}"))
}

fn corrupt(column: &str, e: sqlx::Error) -> IdempotencyError {
    IdempotencyError::Corrupt(format!("{column}: {e}"))
}

fn decode_existing<R: Row>(row: &R) -> Result<Existing, IdempotencyError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Json<Vec<(String, String)>>>:
        sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    Ok(Existing {
        fingerprint: row
            .try_get("fingerprint")
            .map_err(|e| corrupt("fingerprint", e))?,
        completed: row
            .try_get("completed")
            .map_err(|e| corrupt("completed", e))?,
        status: row
            .try_get("response_status")
            .map_err(|e| corrupt("response_status", e))?,
        headers: row
            .try_get("response_headers")
            .map_err(|e| corrupt("response_headers", e))?,
        body: row
            .try_get("response_body")
            .map_err(|e| corrupt("response_body", e))?,
    })
}

/// The one implementation of [`IdempotencyStore`] over a sqlx pool; the
/// backends differ only in how instants are bound and errors named.
macro_rules! sql_idempotency_store {
    ($store:ty, $time:ident, $unavailable:ident) => {
        #[async_trait]
        impl IdempotencyStore for $store {
            async fn begin(
                &self,
                principal: &str,
                key: &str,
                request_fingerprint: &str,
                now: DateTime<Utc>,
            ) -> Result<Begin, IdempotencyError> {
                validate_key(key)?;
                let cutoffs = Cutoffs::at(now, self.in_flight_timeout);
                for _ in 0..BEGIN_ATTEMPTS {
                    let claimed = sqlx::query(CLAIM)
                        .bind(principal)
                        .bind(key)
                        .bind(request_fingerprint)
                        .bind($time(now))
                        .bind($time(cutoffs.expired))
                        .bind($time(cutoffs.stale))
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($unavailable)?;
                    if claimed.is_some() {
                        return Ok(Begin::Proceed);
                    }
                    let existing = sqlx::query(SELECT)
                        .bind(principal)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($unavailable)?;
                    if let Some(row) = existing {
                        return decode_existing(&row)?.decide(request_fingerprint);
                    }
                }
                // The key keeps being claimed and released under us: tell the client
                // to retry rather than run unprotected.
                Ok(Begin::InFlight)
            }

            async fn complete(
                &self,
                principal: &str,
                key: &str,
                response: &StoredResponse,
                now: DateTime<Utc>,
            ) -> Result<(), IdempotencyError> {
                sqlx::query(COMPLETE)
                    .bind(principal)
                    .bind(key)
                    .bind($time(now))
                    .bind(i32::from(response.status))
                    .bind(Json(&response.headers))
                    .bind(&response.body)
                    .execute(&self.pool)
                    .await
                    .map_err($unavailable)?;
                Ok(())
            }

            async fn abandon(&self, principal: &str, key: &str) -> Result<(), IdempotencyError> {
                sqlx::query(ABANDON)
                    .bind(principal)
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err($unavailable)?;
                Ok(())
            }

            async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, IdempotencyError> {
                let done = sqlx::query(PURGE)
                    .bind($time(now - RETENTION))
                    .execute(&self.pool)
                    .await
                    .map_err($unavailable)?;
                Ok(done.rows_affected())
            }
        }
    };
}

sql_idempotency_store!(SqliteIdempotencyStore, micros, sqlite_unavailable);

/// Idempotency records in PostgreSQL, shared by every command API instance.
#[derive(Debug, Clone)]
pub struct PostgresIdempotencyStore {
    pool: PgPool,
    in_flight_timeout: TimeDelta,
}

impl PostgresIdempotencyStore {
    /// Connects to `url` (`postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, IdempotencyError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(pg_unavailable)?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool (shared with the event store or read models)
    /// and applies the migrations, tolerating the other crates' ones.
    pub async fn with_pool(pool: PgPool) -> Result<Self, IdempotencyError> {
        super::migrate_postgres(&pool)
            .await
            .map_err(IdempotencyError::Unavailable)?;
        Ok(Self {
            pool,
            in_flight_timeout: DEFAULT_IN_FLIGHT_TIMEOUT,
        })
    }

    /// Sets how long a request may stay in flight before its key may be
    /// taken over (default [`DEFAULT_IN_FLIGHT_TIMEOUT`]).
    pub fn with_in_flight_timeout(mut self, timeout: TimeDelta) -> Self {
        self.in_flight_timeout = timeout;
        self
    }
}

/// PostgreSQL keeps microseconds; truncating here means the cutoffs compare
/// exactly what is stored, instead of values PostgreSQL would round.
fn pg_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn pg_unavailable(e: sqlx::Error) -> IdempotencyError {
    IdempotencyError::Unavailable(format!("PostgreSQL: {e}"))
}

sql_idempotency_store!(PostgresIdempotencyStore, pg_time, pg_unavailable);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::limits::testing::{postgres_url, with_throwaway_database};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 30, 0).unwrap()
    }

    fn created() -> StoredResponse {
        StoredResponse {
            status: 201,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-consistency-token".into(), "42/42".into()),
                ("vary".into(), "a".into()),
                ("vary".into(), "b".into()),
            ],
            body: br#"{"subscription_id":"0190"}"#.to_vec(),
        }
    }

    const P: &str = "partner:pk_zebu_live_a";
    const K: &str = "9f1c6a3e-key";

    fn fp_a() -> String {
        fingerprint("POST", "/partner/marketplace/subscribe", b"{\"a\":1}")
    }

    fn fp_b() -> String {
        fingerprint("POST", "/partner/marketplace/subscribe", b"{\"a\":2}")
    }

    // ---- cases run against every backend ----

    async fn proceed_then_complete_then_replay(store: Arc<dyn IdempotencyStore>) {
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        store.complete(P, K, &created(), t0()).await.unwrap();
        let later = t0() + TimeDelta::hours(1);
        assert_eq!(
            store.begin(P, K, &fp_a(), later).await.unwrap(),
            Begin::Replay(created())
        );
    }

    async fn a_different_request_with_the_key_is_a_mismatch(store: Arc<dyn IdempotencyStore>) {
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        // While in flight…
        assert_eq!(
            store.begin(P, K, &fp_b(), t0()).await.unwrap(),
            Begin::Mismatch
        );
        store.complete(P, K, &created(), t0()).await.unwrap();
        // …and once completed.
        assert_eq!(
            store.begin(P, K, &fp_b(), t0()).await.unwrap(),
            Begin::Mismatch
        );
    }

    async fn a_retry_while_running_is_in_flight(store: Arc<dyn IdempotencyStore>) {
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        let soon = t0() + TimeDelta::seconds(59);
        assert_eq!(
            store.begin(P, K, &fp_a(), soon).await.unwrap(),
            Begin::InFlight
        );
    }

    async fn only_one_of_50_concurrent_begins_proceeds(store: Arc<dyn IdempotencyStore>) {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.begin(P, K, &fp_a(), t0()).await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let proceeded = outcomes.iter().filter(|b| **b == Begin::Proceed).count();
        let in_flight = outcomes.iter().filter(|b| **b == Begin::InFlight).count();
        assert_eq!((proceeded, in_flight), (1, 49));
    }

    async fn abandon_lets_a_retry_run(store: Arc<dyn IdempotencyStore>) {
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        store.abandon(P, K).await.unwrap();
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        // A completed record is not abandoned.
        store.complete(P, K, &created(), t0()).await.unwrap();
        store.abandon(P, K).await.unwrap();
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Replay(created())
        );
    }

    async fn a_key_expires_after_24_hours(store: Arc<dyn IdempotencyStore>) {
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        store.complete(P, K, &created(), t0()).await.unwrap();
        let almost = t0() + RETENTION - TimeDelta::microseconds(1);
        assert_eq!(
            store.begin(P, K, &fp_b(), almost).await.unwrap(),
            Begin::Mismatch
        );
        // Expired records are absent, whatever request they were for.
        let expired = t0() + RETENTION;
        assert_eq!(
            store.begin(P, K, &fp_b(), expired).await.unwrap(),
            Begin::Proceed
        );
    }

    async fn purge_deletes_only_expired_records(store: Arc<dyn IdempotencyStore>) {
        assert_eq!(
            store.begin(P, "old", &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        store.complete(P, "old", &created(), t0()).await.unwrap();
        assert_eq!(
            store.begin(P, "stuck", &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        let later = t0() + TimeDelta::hours(12);
        assert_eq!(
            store.begin(P, "new", &fp_a(), later).await.unwrap(),
            Begin::Proceed
        );
        store.complete(P, "new", &created(), later).await.unwrap();

        assert_eq!(
            store
                .purge_expired(t0() + TimeDelta::hours(23))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.purge_expired(t0() + RETENTION).await.unwrap(), 2);
        assert_eq!(
            store
                .begin(P, "new", &fp_a(), t0() + RETENTION)
                .await
                .unwrap(),
            Begin::Replay(created())
        );
    }

    async fn a_stale_in_flight_key_is_taken_over(store: Arc<dyn IdempotencyStore>) {
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        let after_timeout = t0() + DEFAULT_IN_FLIGHT_TIMEOUT;
        assert_eq!(
            store.begin(P, K, &fp_a(), after_timeout).await.unwrap(),
            Begin::Proceed
        );
        // The new claim is fresh: it is in flight again.
        assert_eq!(
            store.begin(P, K, &fp_a(), after_timeout).await.unwrap(),
            Begin::InFlight
        );
    }

    async fn keys_are_scoped_per_principal(store: Arc<dyn IdempotencyStore>) {
        assert_eq!(
            store.begin(P, K, &fp_a(), t0()).await.unwrap(),
            Begin::Proceed
        );
        assert_eq!(
            store.begin("user:0190", K, &fp_b(), t0()).await.unwrap(),
            Begin::Proceed
        );
    }

    async fn an_invalid_key_is_refused(store: Arc<dyn IdempotencyStore>) {
        let err = store
            .begin(P, "has space", &fp_a(), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, IdempotencyError::InvalidKey(_)), "{err:?}");
    }

    macro_rules! backend_tests {
        ($($case:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let dir = tempfile::tempdir().unwrap();
                        let store = super::SqliteIdempotencyStore::open(dir.path().join("idempotency.db"))
                            .await
                            .unwrap();
                        super::$case(std::sync::Arc::new(store)).await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let Some(url) = super::postgres_url(concat!("idempotency::", stringify!($case))) else {
                            return;
                        };
                        super::with_throwaway_database(&url, |db_url| async move {
                            let store = super::PostgresIdempotencyStore::connect(&db_url).await.unwrap();
                            super::$case(std::sync::Arc::new(store)).await;
                        })
                        .await;
                    }
                )*
            }
        };
    }

    backend_tests!(
        proceed_then_complete_then_replay,
        a_different_request_with_the_key_is_a_mismatch,
        a_retry_while_running_is_in_flight,
        only_one_of_50_concurrent_begins_proceeds,
        abandon_lets_a_retry_run,
        a_key_expires_after_24_hours,
        purge_deletes_only_expired_records,
        a_stale_in_flight_key_is_taken_over,
        keys_are_scoped_per_principal,
        an_invalid_key_is_refused,
    );

    // ---- pure helpers ----

    #[test]
    fn keys_must_be_1_to_255_visible_ascii_characters() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key(&"k".repeat(255)).is_ok());
        assert!(validate_key("!~0aZ-_.:{}").is_ok());
        for bad in ["", " ", "a b", "tab\t", "é", "\u{7f}"] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_key(&"k".repeat(256)).is_err());
    }

    #[test]
    fn fingerprints_are_sha256_hex_and_separate_the_parts() {
        let fp = fingerprint("POST", "/baskets", b"{}");
        assert_eq!(fp.len(), 64);
        assert!(fp
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(fp, fingerprint("POST", "/baskets", b"{}"));
        assert_ne!(fp, fingerprint("PUT", "/baskets", b"{}"));
        assert_ne!(fp, fingerprint("POST", "/baskets", b"{} "));
        assert_ne!(
            fingerprint("POST", "/a", b"b"),
            fingerprint("POST", "/ab", b"")
        );
    }
}
