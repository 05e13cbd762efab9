//! `Idempotency-Key` storage (docs/reference/api.md#idempotency).
//!
//! A POST/PUT/DELETE carrying a key goes through [`IdempotencyStore::begin`]
//! before it runs:
//!
//! * [`Begin::Proceed`] — the key is new (or free again): run the command,
//!   then [`IdempotencyStore::complete`] with the response, or
//!   [`IdempotencyStore::abandon`] when it failed with an error that tells
//!   the client to retry, so that a retry can run;
//! * [`Begin::TakeOver`] — the key was claimed before by a request that
//!   never completed (its instance died, or it was abandoned): the caller
//!   must look in the event log for what that request committed before it
//!   runs the command again (docs/adr/0012-idempotency-fenced-by-the-log.md);
//! * [`Begin::Replay`] — the same request already completed: send the stored
//!   response again, with `Idempotent-Replayed: true`;
//! * [`Begin::InFlight`] — the same request is still running: 409;
//! * [`Begin::Mismatch`] — the key was used for a different request: 422
//!   `idempotency_key_reused`.
//!
//! Every claim carries a fresh token ([`Claim`]); `complete` and `abandon`
//! act only on the claim holding it, so a slow original cannot overwrite or
//! release the claim of the request that took its key over. A claim also
//! records the event store's head when the key was first claimed, where the
//! log is searched from on a takeover.
//!
//! Keys are scoped per principal (two partners may use the same key) and
//! kept for [`RETENTION`] from their first use; older records count as
//! absent and [`IdempotencyStore::purge_expired`] deletes them. A record left
//! in flight for longer than the in-flight timeout (an instance crashed
//! mid-request) is taken over by the next `begin`.
//!
//! Claiming a new key is one `INSERT … ON CONFLICT DO NOTHING`, taking one
//! over a conditional `UPDATE` on the token read just before, so of any
//! number of concurrent `begin`s for one key exactly one gets to run, on one
//! instance or many.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use basketry_http::IdempotencyKey;
use basketry_store::Position;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::Row;
use uuid::Uuid;

/// How long a key's first response is kept and replayed (docs/reference/api.md#idempotency).
pub const RETENTION: TimeDelta = TimeDelta::hours(24);

/// How long a request may stay in flight before another `begin` with its
/// key may take it over, by default (`BASKETRY_IDEMPOTENCY_IN_FLIGHT_TIMEOUT`
/// sets it for the program). Far longer than any command should run; a
/// request still in flight after it is presumed lost with its instance.
pub const DEFAULT_IN_FLIGHT_TIMEOUT: TimeDelta = TimeDelta::seconds(60);

/// How often `begin` retries when the record it collided with changed
/// before it could act on it (abandoned, purged or taken over in between).
const BEGIN_ATTEMPTS: usize = 3;

/// One request's hold on a key. Its token fences `complete` and `abandon`,
/// and is the correlation id of every event the request appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// Fresh for every claim, never reused.
    pub token: Uuid,
}

impl Claim {
    fn fresh() -> Self {
        Self {
            token: Uuid::now_v7(),
        }
    }
}

/// What a taken-over key's earlier requests may have left in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Earlier {
    /// The event store's head when the key was first claimed: events of the
    /// earlier requests come after it. `None`: search from the start of the
    /// log (it was empty then, or the record predates claim positions).
    pub after: Option<Position>,
}

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key is now claimed by this request: run it, then `complete` or
    /// `abandon` with the claim.
    Proceed(Claim),
    /// The key is now claimed by this request, taken over from earlier
    /// requests with the same fingerprint that never completed. Look in the
    /// log after `earlier.after` for what they committed; run the command
    /// only if they committed nothing.
    TakeOver {
        /// This request's claim.
        claim: Claim,
        /// Where the earlier requests' events would be.
        earlier: Earlier,
    },
    /// The same request already completed: send this response again.
    Replay(StoredResponse),
    /// The same request is still running: 409.
    InFlight,
    /// The key was used for a different request: 422
    /// `idempotency_key_reused`.
    Mismatch,
}

/// What [`IdempotencyStore::complete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The response is the key's record now.
    Recorded,
    /// Nothing: the claim is no longer the key's (it was taken over after
    /// the in-flight timeout, or expired). The caller still answers its own
    /// client with its response.
    Superseded,
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
    /// The store cannot be reached or failed: 503 with `Retry-After`. The
    /// request must not run unprotected.
    #[error("idempotency store unavailable: {0}")]
    Unavailable(String),
    /// A stored record cannot be decoded: 500.
    #[error("stored idempotency record is corrupt: {0}")]
    Corrupt(String),
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
    /// to do instead (see [`Begin`]); the key was validated when the request
    /// was read ([`IdempotencyKey`]). `head` is the
    /// event store's head read before the call: a claim of a new key keeps
    /// it as the place its events will come after.
    async fn begin(
        &self,
        principal: &str,
        key: &IdempotencyKey,
        request_fingerprint: &str,
        head: Option<Position>,
        now: DateTime<Utc>,
    ) -> Result<Begin, IdempotencyError>;

    /// Stores the response of the request holding `claim`, for replay.
    /// Does nothing ([`Completion::Superseded`]) if the key is no longer
    /// held by that claim.
    async fn complete(
        &self,
        principal: &str,
        key: &IdempotencyKey,
        claim: &Claim,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<Completion, IdempotencyError>;

    /// Releases `claim` (the command failed with an error that tells the
    /// client to retry, or the request was cancelled) so that a retry does
    /// not wait for the in-flight timeout. The retry gets
    /// [`Begin::TakeOver`]: whatever the released request may have
    /// committed is looked for before the command runs again. A completed
    /// record, or one held by another claim, is left alone.
    async fn abandon(
        &self,
        principal: &str,
        key: &IdempotencyKey,
        claim: &Claim,
    ) -> Result<(), IdempotencyError>;

    /// Deletes the records that are [`RETENTION`] old at `now`; returns how
    /// many went.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, IdempotencyError>;
}

// The statements are shared by both backends: sqlx binds SQLite's `$N`
// parameters by number too. `claim_token` is NULL only on records written
// before claims had tokens; `COALESCE(claim_token, '')` lets a takeover
// compare-and-set those too.

/// Claims a key nobody holds. Returns a row only when this request claimed
/// it.
const INSERT: &str = "\
    INSERT INTO idempotency_keys (principal, idempotency_key, fingerprint, created_at, \
        claim_token, claim_commit, claim_prepare) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) \
    ON CONFLICT (principal, idempotency_key) DO NOTHING \
    RETURNING idempotency_key";

/// The record in the way of an `INSERT`, with whether it is expired (`$3`
/// is the expiry cutoff) or may be taken over (`$4` the staleness cutoff).
const SELECT: &str = "\
    SELECT fingerprint, completed_at IS NOT NULL AS completed, response_status, \
           response_headers, response_body, claim_token, claim_commit, claim_prepare, \
           created_at <= $3 AS expired, \
           (completed_at IS NULL AND (released OR created_at <= $4)) AS stale \
    FROM idempotency_keys WHERE principal = $1 AND idempotency_key = $2";

/// Replaces an expired record (which counts as absent) with a new claim,
/// if it is still the one read (`$8`: its token).
const RECLAIM_EXPIRED: &str = "\
    UPDATE idempotency_keys SET fingerprint = $3, created_at = $4, completed_at = NULL, \
        response_status = NULL, response_headers = NULL, response_body = NULL, \
        claim_token = $5, claim_commit = $6, claim_prepare = $7, released = FALSE \
    WHERE principal = $1 AND idempotency_key = $2 AND COALESCE(claim_token, '') = $8 \
      AND created_at <= $9";

/// Takes over a stale or released claim, if it is still the one read
/// (`$5`: its token). The first claim's head position stays: the earlier
/// requests' events come after it.
const TAKE_OVER: &str = "\
    UPDATE idempotency_keys SET created_at = $3, claim_token = $4, released = FALSE \
    WHERE principal = $1 AND idempotency_key = $2 AND COALESCE(claim_token, '') = $5 \
      AND completed_at IS NULL AND (released OR created_at <= $6)";

const COMPLETE: &str = "\
    UPDATE idempotency_keys SET completed_at = $3, response_status = $4, \
        response_headers = $5, response_body = $6 \
    WHERE principal = $1 AND idempotency_key = $2 AND claim_token = $7 \
      AND completed_at IS NULL AND NOT released";

const ABANDON: &str = "\
    UPDATE idempotency_keys SET released = TRUE \
    WHERE principal = $1 AND idempotency_key = $2 AND claim_token = $3 \
      AND completed_at IS NULL";

const PURGE: &str = "DELETE FROM idempotency_keys WHERE created_at <= $1";

/// A record that was already there when `begin` tried to claim its key.
struct Existing {
    fingerprint: String,
    completed: bool,
    status: Option<i32>,
    headers: Option<Json<Vec<(String, String)>>>,
    body: Option<Vec<u8>>,
    token: Option<String>,
    claim_commit: Option<i64>,
    claim_prepare: Option<i64>,
    expired: bool,
    stale: bool,
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

    /// Where the earlier requests' events would be.
    fn earlier(&self) -> Result<Earlier, IdempotencyError> {
        let after = match (self.claim_commit, self.claim_prepare) {
            (Some(commit), Some(prepare)) => Some(Position {
                commit: u64::try_from(commit)
                    .map_err(|_| IdempotencyError::Corrupt(format!("claim_commit {commit}")))?,
                prepare: u64::try_from(prepare)
                    .map_err(|_| IdempotencyError::Corrupt(format!("claim_prepare {prepare}")))?,
            }),
            _ => None,
        };
        Ok(Earlier { after })
    }
}

/// A position as the two BIGINT columns of a claim.
fn position_columns(
    head: Option<Position>,
) -> Result<(Option<i64>, Option<i64>), IdempotencyError> {
    let Some(p) = head else {
        return Ok((None, None));
    };
    let column = |v: u64| {
        i64::try_from(v).map_err(|_| {
            IdempotencyError::Unavailable(format!("log position {p} does not fit a claim"))
        })
    };
    Ok((Some(column(p.commit)?), Some(column(p.prepare)?)))
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
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
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
        token: row
            .try_get("claim_token")
            .map_err(|e| corrupt("claim_token", e))?,
        claim_commit: row
            .try_get("claim_commit")
            .map_err(|e| corrupt("claim_commit", e))?,
        claim_prepare: row
            .try_get("claim_prepare")
            .map_err(|e| corrupt("claim_prepare", e))?,
        expired: row.try_get("expired").map_err(|e| corrupt("expired", e))?,
        stale: row.try_get("stale").map_err(|e| corrupt("stale", e))?,
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
                key: &IdempotencyKey,
                request_fingerprint: &str,
                head: Option<Position>,
                now: DateTime<Utc>,
            ) -> Result<Begin, IdempotencyError> {
                let cutoffs = Cutoffs::at(now, self.in_flight_timeout);
                let (commit, prepare) = position_columns(head)?;
                for _ in 0..BEGIN_ATTEMPTS {
                    let claim = Claim::fresh();
                    let token = claim.token.to_string();
                    let claimed = sqlx::query(INSERT)
                        .bind(principal)
                        .bind(key.as_str())
                        .bind(request_fingerprint)
                        .bind($time(now))
                        .bind(&token)
                        .bind(commit)
                        .bind(prepare)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($unavailable)?;
                    if claimed.is_some() {
                        return Ok(Begin::Proceed(claim));
                    }
                    let Some(row) = sqlx::query(SELECT)
                        .bind(principal)
                        .bind(key.as_str())
                        .bind($time(cutoffs.expired))
                        .bind($time(cutoffs.stale))
                        .fetch_optional(&self.pool)
                        .await
                        .map_err($unavailable)?
                    else {
                        // Purged in between: claim it afresh.
                        continue;
                    };
                    let existing = decode_existing(&row)?;
                    let old_token = existing.token.clone().unwrap_or_default();
                    if existing.expired {
                        let done = sqlx::query(RECLAIM_EXPIRED)
                            .bind(principal)
                            .bind(key.as_str())
                            .bind(request_fingerprint)
                            .bind($time(now))
                            .bind(&token)
                            .bind(commit)
                            .bind(prepare)
                            .bind(&old_token)
                            .bind($time(cutoffs.expired))
                            .execute(&self.pool)
                            .await
                            .map_err($unavailable)?;
                        if done.rows_affected() == 1 {
                            return Ok(Begin::Proceed(claim));
                        }
                        continue;
                    }
                    if existing.stale && existing.fingerprint == request_fingerprint {
                        let earlier = existing.earlier()?;
                        let done = sqlx::query(TAKE_OVER)
                            .bind(principal)
                            .bind(key.as_str())
                            .bind($time(now))
                            .bind(&token)
                            .bind(&old_token)
                            .bind($time(cutoffs.stale))
                            .execute(&self.pool)
                            .await
                            .map_err($unavailable)?;
                        if done.rows_affected() == 1 {
                            return Ok(Begin::TakeOver { claim, earlier });
                        }
                        continue;
                    }
                    return existing.decide(request_fingerprint);
                }
                // The key keeps changing hands under us: tell the client to
                // retry rather than run unprotected.
                Ok(Begin::InFlight)
            }

            async fn complete(
                &self,
                principal: &str,
                key: &IdempotencyKey,
                claim: &Claim,
                response: &StoredResponse,
                now: DateTime<Utc>,
            ) -> Result<Completion, IdempotencyError> {
                let done = sqlx::query(COMPLETE)
                    .bind(principal)
                    .bind(key.as_str())
                    .bind($time(now))
                    .bind(i32::from(response.status))
                    .bind(Json(&response.headers))
                    .bind(&response.body)
                    .bind(claim.token.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err($unavailable)?;
                Ok(if done.rows_affected() == 1 {
                    Completion::Recorded
                } else {
                    Completion::Superseded
                })
            }

            async fn abandon(
                &self,
                principal: &str,
                key: &IdempotencyKey,
                claim: &Claim,
            ) -> Result<(), IdempotencyError> {
                sqlx::query(ABANDON)
                    .bind(principal)
                    .bind(key.as_str())
                    .bind(claim.token.to_string())
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
    use basketry_test_support::postgres::with_throwaway_database;

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

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text).expect("a valid key")
    }

    fn k() -> IdempotencyKey {
        key(K)
    }

    fn fp_a() -> String {
        fingerprint("POST", "/partner/marketplace/subscribe", b"{\"a\":1}")
    }

    fn fp_b() -> String {
        fingerprint("POST", "/partner/marketplace/subscribe", b"{\"a\":2}")
    }

    /// The head passed to `begin` in these cases.
    fn head() -> Option<Position> {
        Some(Position::sequence(7))
    }

    /// The claim of a `begin` that must proceed.
    async fn claims(
        store: &dyn IdempotencyStore,
        key: &IdempotencyKey,
        fp: &str,
        now: DateTime<Utc>,
    ) -> Claim {
        match store.begin(P, key, fp, head(), now).await.unwrap() {
            Begin::Proceed(claim) => claim,
            other => panic!("expected Proceed, got {other:?}"),
        }
    }

    /// The claim of a `begin` that must take the key over.
    async fn takes_over(
        store: &dyn IdempotencyStore,
        fp: &str,
        now: DateTime<Utc>,
    ) -> (Claim, Earlier) {
        match store.begin(P, &k(), fp, head(), now).await.unwrap() {
            Begin::TakeOver { claim, earlier } => (claim, earlier),
            other => panic!("expected TakeOver, got {other:?}"),
        }
    }

    async fn begins(
        store: &dyn IdempotencyStore,
        key: &IdempotencyKey,
        fp: &str,
        now: DateTime<Utc>,
    ) -> Begin {
        store.begin(P, key, fp, head(), now).await.unwrap()
    }

    // ---- cases run against every backend ----

    async fn proceed_then_complete_then_replay(store: Arc<dyn IdempotencyStore>) {
        let claim = claims(&*store, &k(), &fp_a(), t0()).await;
        assert_eq!(
            store
                .complete(P, &k(), &claim, &created(), t0())
                .await
                .unwrap(),
            Completion::Recorded
        );
        let later = t0() + TimeDelta::hours(1);
        assert_eq!(
            begins(&*store, &k(), &fp_a(), later).await,
            Begin::Replay(created())
        );
    }

    async fn a_different_request_with_the_key_is_a_mismatch(store: Arc<dyn IdempotencyStore>) {
        let claim = claims(&*store, &k(), &fp_a(), t0()).await;
        // While in flight…
        assert_eq!(begins(&*store, &k(), &fp_b(), t0()).await, Begin::Mismatch);
        // …after the in-flight timeout (only the same request takes over)…
        let after_timeout = t0() + DEFAULT_IN_FLIGHT_TIMEOUT;
        assert_eq!(
            begins(&*store, &k(), &fp_b(), after_timeout).await,
            Begin::Mismatch
        );
        store
            .complete(P, &k(), &claim, &created(), t0())
            .await
            .unwrap();
        // …and once completed.
        assert_eq!(begins(&*store, &k(), &fp_b(), t0()).await, Begin::Mismatch);
    }

    async fn a_retry_while_running_is_in_flight(store: Arc<dyn IdempotencyStore>) {
        claims(&*store, &k(), &fp_a(), t0()).await;
        let soon = t0() + TimeDelta::seconds(59);
        assert_eq!(begins(&*store, &k(), &fp_a(), soon).await, Begin::InFlight);
    }

    async fn only_one_of_50_concurrent_begins_proceeds(store: Arc<dyn IdempotencyStore>) {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { begins(&*store, &k(), &fp_a(), t0()).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let proceeded = outcomes
            .iter()
            .filter(|b| matches!(b, Begin::Proceed(_)))
            .count();
        let in_flight = outcomes.iter().filter(|b| **b == Begin::InFlight).count();
        assert_eq!((proceeded, in_flight), (1, 49));
    }

    async fn only_one_of_50_concurrent_takeovers_wins(store: Arc<dyn IdempotencyStore>) {
        claims(&*store, &k(), &fp_a(), t0()).await;
        let after_timeout = t0() + DEFAULT_IN_FLIGHT_TIMEOUT;
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { begins(&*store, &k(), &fp_a(), after_timeout).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let took_over = outcomes
            .iter()
            .filter(|b| matches!(b, Begin::TakeOver { .. }))
            .count();
        let in_flight = outcomes.iter().filter(|b| **b == Begin::InFlight).count();
        assert_eq!((took_over, in_flight), (1, 49), "{outcomes:?}");
    }

    async fn abandon_lets_a_retry_run_after_a_look_at_the_log(store: Arc<dyn IdempotencyStore>) {
        let first = claims(&*store, &k(), &fp_a(), t0()).await;
        store.abandon(P, &k(), &first).await.unwrap();
        // The retry need not wait for the in-flight timeout, but must look
        // for what the released request committed, from where it started.
        let (second, earlier) = takes_over(&*store, &fp_a(), t0()).await;
        assert_ne!(second, first);
        assert_eq!(earlier, Earlier { after: head() });
        // A completed record is not abandoned.
        store
            .complete(P, &k(), &second, &created(), t0())
            .await
            .unwrap();
        store.abandon(P, &k(), &second).await.unwrap();
        assert_eq!(
            begins(&*store, &k(), &fp_a(), t0()).await,
            Begin::Replay(created())
        );
    }

    async fn a_key_expires_after_24_hours(store: Arc<dyn IdempotencyStore>) {
        let claim = claims(&*store, &k(), &fp_a(), t0()).await;
        store
            .complete(P, &k(), &claim, &created(), t0())
            .await
            .unwrap();
        let almost = t0() + RETENTION - TimeDelta::microseconds(1);
        assert_eq!(
            begins(&*store, &k(), &fp_b(), almost).await,
            Begin::Mismatch
        );
        // Expired records are absent, whatever request they were for.
        let expired = t0() + RETENTION;
        claims(&*store, &k(), &fp_b(), expired).await;
    }

    async fn purge_deletes_only_expired_records(store: Arc<dyn IdempotencyStore>) {
        let old = claims(&*store, &key("old"), &fp_a(), t0()).await;
        store
            .complete(P, &key("old"), &old, &created(), t0())
            .await
            .unwrap();
        claims(&*store, &key("stuck"), &fp_a(), t0()).await;
        let later = t0() + TimeDelta::hours(12);
        let new = claims(&*store, &key("new"), &fp_a(), later).await;
        store
            .complete(P, &key("new"), &new, &created(), later)
            .await
            .unwrap();

        assert_eq!(
            store
                .purge_expired(t0() + TimeDelta::hours(23))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.purge_expired(t0() + RETENTION).await.unwrap(), 2);
        assert_eq!(
            begins(&*store, &key("new"), &fp_a(), t0() + RETENTION).await,
            Begin::Replay(created())
        );
    }

    async fn a_stale_in_flight_key_is_taken_over(store: Arc<dyn IdempotencyStore>) {
        claims(&*store, &k(), &fp_a(), t0()).await;
        let after_timeout = t0() + DEFAULT_IN_FLIGHT_TIMEOUT;
        let (_, earlier) = takes_over(&*store, &fp_a(), after_timeout).await;
        assert_eq!(earlier, Earlier { after: head() });
        // The new claim is fresh: it is in flight again.
        assert_eq!(
            begins(&*store, &k(), &fp_a(), after_timeout).await,
            Begin::InFlight
        );
        // Taken over again, the log is still searched from the first claim.
        let much_later = after_timeout + DEFAULT_IN_FLIGHT_TIMEOUT;
        let later_head = Some(Position::sequence(99));
        match store
            .begin(P, &k(), &fp_a(), later_head, much_later)
            .await
            .unwrap()
        {
            Begin::TakeOver { earlier, .. } => assert_eq!(earlier, Earlier { after: head() }),
            other => panic!("expected TakeOver, got {other:?}"),
        }
    }

    async fn a_claim_on_an_empty_log_searches_from_the_start(store: Arc<dyn IdempotencyStore>) {
        match store.begin(P, &k(), &fp_a(), None, t0()).await.unwrap() {
            Begin::Proceed(_) => {}
            other => panic!("expected Proceed, got {other:?}"),
        }
        let (_, earlier) = takes_over(&*store, &fp_a(), t0() + DEFAULT_IN_FLIGHT_TIMEOUT).await;
        assert_eq!(earlier, Earlier { after: None });
    }

    async fn a_slow_original_cannot_overwrite_the_record_of_its_successor(
        store: Arc<dyn IdempotencyStore>,
    ) {
        let original = claims(&*store, &k(), &fp_a(), t0()).await;
        let after_timeout = t0() + DEFAULT_IN_FLIGHT_TIMEOUT;
        let (successor, _) = takes_over(&*store, &fp_a(), after_timeout).await;
        let mut theirs = created();
        theirs.body = br#"{"subscription_id":"successor"}"#.to_vec();
        // The slow original finishes while its successor still runs, then
        // the successor completes: the successor's response is the record.
        assert_eq!(
            store
                .complete(P, &k(), &original, &created(), after_timeout)
                .await
                .unwrap(),
            Completion::Superseded
        );
        assert_eq!(
            store
                .complete(P, &k(), &successor, &theirs, after_timeout)
                .await
                .unwrap(),
            Completion::Recorded
        );
        assert_eq!(
            begins(&*store, &k(), &fp_a(), after_timeout).await,
            Begin::Replay(theirs)
        );
    }

    async fn a_slow_original_cannot_complete_or_release_its_successors_claim(
        store: Arc<dyn IdempotencyStore>,
    ) {
        let original = claims(&*store, &k(), &fp_a(), t0()).await;
        let after_timeout = t0() + DEFAULT_IN_FLIGHT_TIMEOUT;
        takes_over(&*store, &fp_a(), after_timeout).await;
        // The original gives up while its successor is still running: the
        // successor's claim stays.
        store.abandon(P, &k(), &original).await.unwrap();
        assert_eq!(
            begins(&*store, &k(), &fp_a(), after_timeout).await,
            Begin::InFlight
        );
        // The original completes while its successor is still running: the
        // successor's claim stays in flight, nothing is replayed yet.
        store
            .complete(P, &k(), &original, &created(), after_timeout)
            .await
            .unwrap();
        assert_eq!(
            begins(&*store, &k(), &fp_a(), after_timeout).await,
            Begin::InFlight
        );
    }

    async fn keys_are_scoped_per_principal(store: Arc<dyn IdempotencyStore>) {
        claims(&*store, &k(), &fp_a(), t0()).await;
        match store
            .begin("user:0190", &k(), &fp_b(), head(), t0())
            .await
            .unwrap()
        {
            Begin::Proceed(_) => {}
            other => panic!("expected Proceed, got {other:?}"),
        }
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
                    #[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
                    async fn $case() {
                        super::with_throwaway_database(|db_url| async move {
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
        only_one_of_50_concurrent_takeovers_wins,
        abandon_lets_a_retry_run_after_a_look_at_the_log,
        a_key_expires_after_24_hours,
        purge_deletes_only_expired_records,
        a_stale_in_flight_key_is_taken_over,
        a_claim_on_an_empty_log_searches_from_the_start,
        a_slow_original_cannot_overwrite_the_record_of_its_successor,
        a_slow_original_cannot_complete_or_release_its_successors_claim,
        keys_are_scoped_per_principal,
    );

    // ---- records written before claims had tokens ----

    /// A record left in flight by a version without claim tokens (no
    /// `claim_token`, no claim position) is taken over like any other, and
    /// the log is searched from its start.
    async fn a_record_from_before_claim_tokens_is_taken_over(
        store: Arc<dyn IdempotencyStore>,
        insert_legacy: impl std::future::Future<Output = ()>,
    ) {
        insert_legacy.await;
        assert_eq!(begins(&*store, &k(), &fp_a(), t0()).await, Begin::InFlight);
        let (claim, earlier) = takes_over(&*store, &fp_a(), t0() + DEFAULT_IN_FLIGHT_TIMEOUT).await;
        assert_eq!(earlier, Earlier { after: None });
        assert_eq!(
            store
                .complete(
                    P,
                    &k(),
                    &claim,
                    &created(),
                    t0() + DEFAULT_IN_FLIGHT_TIMEOUT
                )
                .await
                .unwrap(),
            Completion::Recorded
        );
    }

    const LEGACY_INSERT: &str = "INSERT INTO idempotency_keys \
        (principal, idempotency_key, fingerprint, created_at) VALUES ($1, $2, $3, $4)";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_a_record_from_before_claim_tokens_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteIdempotencyStore::open(dir.path().join("idempotency.db"))
            .await
            .unwrap();
        let pool = store.pool.clone();
        let legacy = async move {
            sqlx::query(LEGACY_INSERT)
                .bind(P)
                .bind(K)
                .bind(fp_a())
                .bind(micros(t0()))
                .execute(&pool)
                .await
                .unwrap();
        };
        a_record_from_before_claim_tokens_is_taken_over(Arc::new(store), legacy).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
    async fn postgres_a_record_from_before_claim_tokens_is_taken_over() {
        with_throwaway_database(|db_url| async move {
            let store = PostgresIdempotencyStore::connect(&db_url).await.unwrap();
            let pool = store.pool.clone();
            let legacy = async move {
                sqlx::query(LEGACY_INSERT)
                    .bind(P)
                    .bind(K)
                    .bind(fp_a())
                    .bind(pg_time(t0()))
                    .execute(&pool)
                    .await
                    .unwrap();
            };
            a_record_from_before_claim_tokens_is_taken_over(Arc::new(store), legacy).await;
        })
        .await;
    }

    // ---- pure helpers ----

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
