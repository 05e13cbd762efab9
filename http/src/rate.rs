//! Partner rate limits (docs/reference/api.md#rate-limits): two token buckets per API key, one for
//! `requests_per_minute` and one for `requests_per_day`.
//!
//! Each bucket holds at most `limit` tokens and refills continuously at
//! `limit` tokens per window. A request needs a token in *both* buckets and
//! takes one from each, or — when either is empty — takes none, so a request
//! refused by the minute bucket does not eat into the day's allowance.
//!
//! # Exact integer arithmetic
//!
//! A bucket's level is kept in units of `1 / window_ms` of a token (1/60 000
//! for the minute bucket, 1/86 400 000 for the day bucket). One millisecond
//! then refills exactly `limit` units, so refills never round and repeated
//! small refills add up to exactly what one large refill would: no drift, no
//! floats. Time is counted in whole milliseconds since the Unix epoch and
//! `refilled_at` always sits on a millisecond boundary, so the sub-millisecond
//! part of `now` is never lost — it is credited by a later request. The
//! largest level, `u32::MAX` tokens a day, is about 3.7 × 10^17 units, well
//! inside `i64`.
//!
//! The decision itself (`take`) is a pure function; the backends only keep
//! the state between calls: [`InMemoryRateLimiter`] for a single instance and
//! [`PostgresRateLimiter`] for instances that must share exact limits.
//!
//! # Headers
//!
//! [`RateDecision::policy_header`] and [`RateDecision::ratelimit_header`]
//! follow the syntax of [`RATELIMIT_HEADERS_DRAFT`]: structured-field lists
//! of policy items (`"minute";q=100;w=60`) and service-limit items
//! (`"minute";r=99;t=1`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use basketry_domain::partner::RateLimits;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

/// The revision of the IETF httpapi draft whose header syntax this module
/// follows (May 2026): `RateLimit-Policy` is a list of `"name";q=…;w=…`
/// items and `RateLimit` a list of `"name";r=…;t=…` items.
pub const RATELIMIT_HEADERS_DRAFT: &str = "draft-ietf-httpapi-ratelimit-headers-11";

/// Requests a minute a person (JWT) may make by default, over both APIs
/// (`BASKETRY_USER_RATE_LIMIT_PER_MINUTE`).
pub const DEFAULT_USER_RATE_LIMIT_PER_MINUTE: u32 = 1_200;

/// Keys an [`InMemoryRateLimiter`] tracks before it starts evicting.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// A key's limits: its partner's `rate_limits` (docs/reference/domain.md#partners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitPolicy {
    /// Requests per minute (`requests_per_minute`); at least 1.
    pub per_minute: u32,
    /// Requests per day (`requests_per_day`); at least 1.
    pub per_day: u32,
}

impl Default for RateLimitPolicy {
    /// A partner's defaults (docs/reference/domain.md#partners): 100 a minute, 10 000 a day.
    fn default() -> Self {
        Self {
            per_minute: 100,
            per_day: 10_000,
        }
    }
}

impl From<&RateLimits> for RateLimitPolicy {
    fn from(limits: &RateLimits) -> Self {
        Self {
            per_minute: limits.requests_per_minute.get(),
            per_day: limits.requests_per_day.get(),
        }
    }
}

impl RateLimitPolicy {
    /// A person's policy: `per_minute` (at least 1), and a day of full
    /// minutes, so only the minute ever binds.
    pub fn per_person(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            per_minute,
            per_day: per_minute.saturating_mul(24 * 60),
        }
    }

    /// The `RateLimit-Policy` field value for this policy, e.g.
    /// `"minute";q=100;w=60, "day";q=10000;w=86400`.
    pub fn header_value(&self) -> String {
        format!(
            "\"{}\";q={};w={}, \"{}\";q={};w={}",
            RateWindow::Minute.name(),
            self.per_minute,
            RateWindow::Minute.seconds(),
            RateWindow::Day.name(),
            self.per_day,
            RateWindow::Day.seconds(),
        )
    }

    fn limit(&self, window: RateWindow) -> u32 {
        match window {
            RateWindow::Minute => self.per_minute,
            RateWindow::Day => self.per_day,
        }
    }

    /// A zero limit would make every bucket empty forever and divide by zero
    /// in the wait computation; the domain never produces one.
    fn check(&self) -> Result<(), RateLimitError> {
        if self.per_minute == 0 || self.per_day == 0 {
            return Err(RateLimitError::InvalidPolicy(format!(
                "limits must be at least 1, got {} a minute and {} a day",
                self.per_minute, self.per_day
            )));
        }
        Ok(())
    }
}

/// One of the two windows a policy limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateWindow {
    /// `requests_per_minute`, 60 s.
    Minute,
    /// `requests_per_day`, 86 400 s.
    Day,
}

impl RateWindow {
    /// The policy identifier used in the headers: `minute` or `day`.
    pub const fn name(self) -> &'static str {
        match self {
            RateWindow::Minute => "minute",
            RateWindow::Day => "day",
        }
    }

    /// The window's length in seconds (the draft's `w`).
    pub const fn seconds(self) -> u64 {
        match self {
            RateWindow::Minute => 60,
            RateWindow::Day => 86_400,
        }
    }

    /// The window's length in milliseconds, which is also the number of
    /// level units in one token.
    const fn millis(self) -> i64 {
        self.seconds() as i64 * 1_000
    }
}

/// The outcome of one [`RateLimiter::acquire`], reporting the tighter of the
/// two windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go ahead (it took a token from both buckets).
    pub allowed: bool,
    /// The reported window's limit (the draft's `q`).
    pub limit: u32,
    /// Whole tokens left in the reported window's bucket after this request
    /// (the draft's `r`).
    pub remaining: u32,
    /// Seconds until the reported bucket is full again, rounded up (the
    /// draft's `t`); 0 when it is full.
    pub reset_secs: u64,
    /// For a refused request, seconds until the blocking bucket (the later
    /// one, when both are empty) holds a token again: rounded up and at least
    /// 1, for `Retry-After`. `None` when the request was allowed.
    pub retry_after_secs: Option<u64>,
    /// The window reported: the blocking one for a refused request, otherwise
    /// the one with fewer tokens left (the day on a tie, as it lasts longer).
    pub window: RateWindow,
}

impl RateDecision {
    /// The `RateLimit-Policy` field value for `policy` (see
    /// [`RateLimitPolicy::header_value`]).
    pub fn policy_header(&self, policy: &RateLimitPolicy) -> String {
        policy.header_value()
    }

    /// The `RateLimit` field value for the reported window, e.g.
    /// `"minute";r=99;t=1`. Only the tighter window is listed, as the draft's
    /// multiple-window example does: it is the one the client will hit first.
    pub fn ratelimit_header(&self) -> String {
        format!(
            "\"{}\";r={};t={}",
            self.window.name(),
            self.remaining,
            self.reset_secs
        )
    }
}

/// Why a rate limit could not be decided. The API answers with the status
/// each variant names; it never lets a request through unchecked.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The limiter's store cannot be reached or failed: 503 with
    /// `Retry-After` (limits fail closed, like authentication).
    #[error("rate limit store unavailable: {0}")]
    Unavailable(String),
    /// The policy has a zero limit, which the domain forbids: a bug, 500.
    #[error("invalid rate limit policy: {0}")]
    InvalidPolicy(String),
}

/// Decides whether the request of an API key may go ahead, and takes its
/// tokens if so.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes one token from both of `key`'s buckets under `policy` at `now`,
    /// or none when either is empty. The policy is passed on every call, so
    /// a changed limit applies at once (a lowered one caps the level).
    async fn acquire(
        &self,
        key: &str,
        policy: RateLimitPolicy,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, RateLimitError>;
}

/// Both buckets of one key, as kept between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Buckets {
    /// The minute bucket's level, in 1/60 000 of a token.
    minute: i64,
    /// The day bucket's level, in 1/86 400 000 of a token.
    day: i64,
    /// The millisecond (since the Unix epoch) up to which both levels have
    /// been refilled.
    refilled_at_ms: i64,
}

impl Buckets {
    /// The state of a key not seen before (or forgotten): both buckets full.
    fn full(policy: RateLimitPolicy, now_ms: i64) -> Self {
        Self {
            minute: capacity(policy.per_minute, RateWindow::Minute),
            day: capacity(policy.per_day, RateWindow::Day),
            refilled_at_ms: now_ms,
        }
    }
}

/// A bucket's capacity in level units: at most `u32::MAX` × 86 400 000.
fn capacity(limit: u32, window: RateWindow) -> i64 {
    i64::from(limit) * window.millis()
}

/// `⌈a / b⌉` for `a ≥ 0`, `b > 0`.
fn div_ceil(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Milliseconds to whole seconds, rounded up.
fn ceil_secs(ms: i64) -> u64 {
    div_ceil(ms.max(0), 1_000) as u64
}

/// What one bucket reports after a decision.
struct BucketReport {
    window: RateWindow,
    limit: u32,
    remaining: u32,
    /// Milliseconds until the bucket is full.
    reset_ms: i64,
    /// Milliseconds until the bucket holds a whole token (0 if it does).
    wait_ms: i64,
}

/// The whole decision, without I/O: refills `state` up to `now_ms`, takes a
/// token from both buckets if both have one, and reports.
///
/// `policy` must have passed [`RateLimitPolicy::check`].
fn take(state: Buckets, policy: RateLimitPolicy, now_ms: i64) -> (Buckets, RateDecision) {
    // A clock that steps back refills nothing, and `refilled_at` never moves
    // back: otherwise the same milliseconds would be credited twice.
    let elapsed_ms = (now_ms - state.refilled_at_ms).max(0);
    let refill = |level: i64, window: RateWindow| {
        let limit = policy.limit(window);
        // More than a window's worth of time fills the bucket anyway;
        // clamping first keeps `elapsed × limit` ≤ 3.7 × 10^17.
        let added = elapsed_ms.min(window.millis()) * i64::from(limit);
        // `min` also caps a level left over from a higher, older limit.
        (level + added).min(capacity(limit, window))
    };
    let mut minute = refill(state.minute, RateWindow::Minute);
    let mut day = refill(state.day, RateWindow::Day);

    let allowed = minute >= RateWindow::Minute.millis() && day >= RateWindow::Day.millis();
    if allowed {
        minute -= RateWindow::Minute.millis();
        day -= RateWindow::Day.millis();
    }
    let next = Buckets {
        minute,
        day,
        refilled_at_ms: state.refilled_at_ms.max(now_ms),
    };

    let report = |level: i64, window: RateWindow| {
        let limit = policy.limit(window);
        let per_ms = i64::from(limit);
        let token = window.millis();
        BucketReport {
            window,
            limit,
            // At most `limit`, so it fits.
            remaining: u32::try_from(level / token).unwrap_or(limit),
            reset_ms: div_ceil(capacity(limit, window) - level, per_ms),
            wait_ms: if level >= token {
                0
            } else {
                div_ceil(token - level, per_ms)
            },
        }
    };
    let minute = report(minute, RateWindow::Minute);
    let day = report(day, RateWindow::Day);
    let reported = if !allowed {
        // The request needs both buckets, so the later one decides.
        if minute.wait_ms > day.wait_ms {
            minute
        } else {
            day
        }
    } else if minute.remaining < day.remaining
        || (minute.remaining == day.remaining && minute.reset_ms > day.reset_ms)
    {
        minute
    } else {
        day
    };
    let decision = RateDecision {
        allowed,
        limit: reported.limit,
        remaining: reported.remaining,
        reset_secs: ceil_secs(reported.reset_ms),
        retry_after_secs: (!allowed).then(|| ceil_secs(reported.wait_ms).max(1)),
        window: reported.window,
    };
    (next, decision)
}

/// Token buckets in this process: for a single instance and for tests.
///
/// Memory is bounded: at most `max_keys` keys are tracked. When a new key
/// arrives and the map is full, keys idle for a whole day are dropped first —
/// their buckets are full whatever the policy, which is exactly what a
/// missing key means, so nothing is lost. If every key is active, the least
/// recently used one is forgotten and starts over with full buckets: a
/// bounded leniency, and only when more keys are active than `max_keys`.
#[derive(Debug)]
pub struct InMemoryRateLimiter {
    buckets: Mutex<HashMap<String, Buckets>>,
    max_keys: usize,
}

impl Default for InMemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryRateLimiter {
    /// A limiter tracking up to [`DEFAULT_MAX_KEYS`] keys.
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// A limiter tracking up to `max_keys` keys (at least 1).
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Buckets>> {
        // Every write to the map stores a whole computed value, so a panic
        // while the lock was held cannot have left it half-updated.
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for one more key (see the type's documentation). Linear in
    /// the number of keys, but only runs when the map is full.
    fn evict(buckets: &mut HashMap<String, Buckets>, max_keys: usize, now_ms: i64) {
        let day_ms = RateWindow::Day.millis();
        buckets.retain(|_, b| now_ms - b.refilled_at_ms < day_ms);
        if buckets.len() >= max_keys {
            let oldest = buckets
                .iter()
                .min_by_key(|(_, b)| b.refilled_at_ms)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                buckets.remove(&oldest);
            }
        }
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        policy: RateLimitPolicy,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, RateLimitError> {
        policy.check()?;
        let now_ms = now.timestamp_millis();
        // One lock around read, decide and write: that is what makes
        // concurrent acquires exact. Nothing awaits while it is held.
        let mut buckets = self.lock();
        let state = buckets.get(key).copied();
        let (next, decision) = take(
            state.unwrap_or_else(|| Buckets::full(policy, now_ms)),
            policy,
            now_ms,
        );
        match buckets.get_mut(key) {
            Some(slot) => *slot = next,
            None => {
                if buckets.len() >= self.max_keys {
                    Self::evict(&mut buckets, self.max_keys, now_ms);
                }
                buckets.insert(key.to_owned(), next);
            }
        }
        Ok(decision)
    }
}

/// Token buckets in PostgreSQL (table `rate_limit_buckets`), shared by every
/// command API instance so that limits hold exactly across them.
///
/// Each acquire is one transaction: insert the key's row with full buckets if
/// it is missing (`ON CONFLICT DO NOTHING`), lock it with `SELECT … FOR
/// UPDATE`, decide, `UPDATE`. The row lock serialises concurrent acquires of
/// one key; different keys never wait for each other.
#[derive(Debug, Clone)]
pub struct PostgresRateLimiter {
    pool: PgPool,
}

impl PostgresRateLimiter {
    /// Connects to `url` (`postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, RateLimitError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(unavailable)?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool (shared with the event store or read models)
    /// and applies the migrations, tolerating the other crates' ones.
    pub async fn with_pool(pool: PgPool) -> Result<Self, RateLimitError> {
        migrate_postgres(&pool)
            .await
            .map_err(RateLimitError::Unavailable)?;
        Ok(Self { pool })
    }

    /// Deletes the rows of keys idle for a day or more before `now`: their
    /// buckets are full whatever the policy, as a missing row means, so this
    /// only reclaims space. Returns how many rows went.
    pub async fn purge_idle(&self, now: DateTime<Utc>) -> Result<u64, RateLimitError> {
        let cutoff = now - chrono::TimeDelta::days(1);
        let done = sqlx::query("DELETE FROM rate_limit_buckets WHERE refilled_at <= $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }
}

/// The rate limiter's PostgreSQL table (`rate_limit_buckets`).
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Applies this crate's PostgreSQL migrations, tolerating versions applied
/// by other crates sharing the database (see
/// [`basketry_store::sharing_migrator`]).
async fn migrate_postgres(pool: &PgPool) -> Result<(), String> {
    basketry_store::sharing_migrator(&POSTGRES_MIGRATOR)
        .await
        .map_err(|e| format!("loading the rate limiter's migrations: {e}"))?
        .run(pool)
        .await
        .map_err(|e| format!("migrating the rate limiter's table in PostgreSQL: {e}"))
}

#[async_trait]
impl RateLimiter for PostgresRateLimiter {
    async fn acquire(
        &self,
        key: &str,
        policy: RateLimitPolicy,
        now: DateTime<Utc>,
    ) -> Result<RateDecision, RateLimitError> {
        policy.check()?;
        let now_ms = now.timestamp_millis();
        // chrono keeps the sub-second part as non-negative nanoseconds, so
        // truncating to milliseconds is the same floor as `timestamp_millis`.
        let now_at_ms = now.trunc_subsecs(3);
        let full = Buckets::full(policy, now_ms);

        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO rate_limit_buckets (bucket_key, minute_level, day_level, refilled_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (bucket_key) DO NOTHING",
        )
        .bind(key)
        .bind(full.minute)
        .bind(full.day)
        .bind(now_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let row = sqlx::query(
            "SELECT minute_level, day_level, refilled_at FROM rate_limit_buckets \
             WHERE bucket_key = $1 FOR UPDATE",
        )
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let state = Buckets {
            minute: row.try_get("minute_level").map_err(unavailable)?,
            day: row.try_get("day_level").map_err(unavailable)?,
            refilled_at_ms: row
                .try_get::<DateTime<Utc>, _>("refilled_at")
                .map_err(unavailable)?
                .timestamp_millis(),
        };
        let (next, decision) = take(state, policy, now_ms);
        // A refused request changes nothing that a later refill would not
        // recompute exactly, so it costs no write.
        if decision.allowed {
            sqlx::query(
                "UPDATE rate_limit_buckets SET minute_level = $2, day_level = $3, \
                 refilled_at = GREATEST(refilled_at, $4) WHERE bucket_key = $1",
            )
            .bind(key)
            .bind(next.minute)
            .bind(next.day)
            .bind(now_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(decision)
    }
}

fn unavailable(e: sqlx::Error) -> RateLimitError {
    RateLimitError::Unavailable(format!("PostgreSQL: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use basketry_test_support::postgres::with_throwaway_database;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 30, 0).unwrap()
    }

    fn policy(per_minute: u32, per_day: u32) -> RateLimitPolicy {
        RateLimitPolicy {
            per_minute,
            per_day,
        }
    }

    async fn allowed_count(
        limiter: &dyn RateLimiter,
        key: &str,
        policy: RateLimitPolicy,
        now: DateTime<Utc>,
        attempts: usize,
    ) -> usize {
        let mut allowed = 0;
        for _ in 0..attempts {
            if limiter.acquire(key, policy, now).await.unwrap().allowed {
                allowed += 1;
            }
        }
        allowed
    }

    // ---- cases run against every backend ----

    async fn admits_exactly_100_of_500_concurrent_acquires(limiter: Arc<dyn RateLimiter>) {
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    limiter
                        .acquire("pk_zebu_live_a", RateLimitPolicy::default(), t0())
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            if task.await.unwrap().allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 100);
    }

    async fn refills_10_tokens_6_seconds_later(limiter: Arc<dyn RateLimiter>) {
        let p = RateLimitPolicy::default();
        assert_eq!(allowed_count(&*limiter, "k", p, t0(), 101).await, 100);
        let later = t0() + chrono::TimeDelta::seconds(6);
        assert_eq!(allowed_count(&*limiter, "k", p, later, 11).await, 10);
    }

    async fn the_day_bucket_limits_independently(limiter: Arc<dyn RateLimiter>) {
        let p = policy(100, 150);
        assert_eq!(allowed_count(&*limiter, "k", p, t0(), 100).await, 100);
        let minute_later = t0() + chrono::TimeDelta::seconds(60);
        assert_eq!(allowed_count(&*limiter, "k", p, minute_later, 50).await, 50);
        let refused = limiter.acquire("k", p, minute_later).await.unwrap();
        // The minute bucket still has 50 tokens; the day bucket has 60 s of
        // refill (60 000 ms × 150 units) out of the 86 400 000 a token needs:
        // (86 400 000 − 9 000 000) / 150 ms = 516 s.
        assert_eq!(
            refused,
            RateDecision {
                allowed: false,
                limit: 150,
                remaining: 0,
                reset_secs: 86_340,
                retry_after_secs: Some(516),
                window: RateWindow::Day,
            }
        );
    }

    async fn a_refused_request_takes_no_token_from_either_bucket(limiter: Arc<dyn RateLimiter>) {
        let p = policy(2, 4);
        assert_eq!(allowed_count(&*limiter, "k", p, t0(), 7).await, 2);
        // Had the five refusals taken day tokens, the day would be empty now.
        let minute_later = t0() + chrono::TimeDelta::seconds(60);
        assert_eq!(allowed_count(&*limiter, "k", p, minute_later, 3).await, 2);
    }

    async fn retry_after_is_the_wait_for_the_blocking_bucket(limiter: Arc<dyn RateLimiter>) {
        // Minute empty: 600 ms to the next token, rounded up to 1 s.
        let p = RateLimitPolicy::default();
        assert_eq!(allowed_count(&*limiter, "a", p, t0(), 100).await, 100);
        let refused = limiter.acquire("a", p, t0()).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.window, RateWindow::Minute);
        assert_eq!(refused.retry_after_secs, Some(1));
        assert_eq!(
            (refused.limit, refused.remaining, refused.reset_secs),
            (100, 0, 60)
        );

        // 6 a minute: 10 s per token; 3.5 s in, 6.5 s are left, reported as 7.
        let p = policy(6, 1_000);
        assert_eq!(allowed_count(&*limiter, "b", p, t0(), 6).await, 6);
        let later = t0() + chrono::TimeDelta::milliseconds(3_500);
        let refused = limiter.acquire("b", p, later).await.unwrap();
        assert_eq!(refused.retry_after_secs, Some(7));

        // Both empty: the day's wait is the longer, so it is the one reported.
        let p = policy(2, 2);
        assert_eq!(allowed_count(&*limiter, "c", p, t0(), 2).await, 2);
        let refused = limiter.acquire("c", p, t0()).await.unwrap();
        assert_eq!(refused.window, RateWindow::Day);
        assert_eq!(refused.retry_after_secs, Some(43_200));
    }

    async fn keys_have_separate_buckets(limiter: Arc<dyn RateLimiter>) {
        let p = policy(1, 10);
        assert!(limiter.acquire("a", p, t0()).await.unwrap().allowed);
        assert!(!limiter.acquire("a", p, t0()).await.unwrap().allowed);
        assert!(limiter.acquire("b", p, t0()).await.unwrap().allowed);
    }

    async fn a_lowered_limit_applies_at_once(limiter: Arc<dyn RateLimiter>) {
        assert!(
            limiter
                .acquire("k", policy(100, 10_000), t0())
                .await
                .unwrap()
                .allowed
        );
        assert_eq!(
            allowed_count(&*limiter, "k", policy(5, 10_000), t0(), 10).await,
            5
        );
    }

    async fn a_zero_limit_is_refused_as_invalid(limiter: Arc<dyn RateLimiter>) {
        let err = limiter.acquire("k", policy(0, 10), t0()).await.unwrap_err();
        assert!(matches!(err, RateLimitError::InvalidPolicy(_)), "{err:?}");
    }

    macro_rules! backend_tests {
        ($($case:ident),* $(,)?) => {
            mod in_memory {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        super::$case(std::sync::Arc::new(super::InMemoryRateLimiter::new())).await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    #[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
                    async fn $case() {
                        super::with_throwaway_database(|db_url| async move {
                            let limiter = super::PostgresRateLimiter::connect(&db_url).await.unwrap();
                            super::$case(std::sync::Arc::new(limiter)).await;
                        })
                        .await;
                    }
                )*
            }
        };
    }

    backend_tests!(
        admits_exactly_100_of_500_concurrent_acquires,
        refills_10_tokens_6_seconds_later,
        the_day_bucket_limits_independently,
        a_refused_request_takes_no_token_from_either_bucket,
        retry_after_is_the_wait_for_the_blocking_bucket,
        keys_have_separate_buckets,
        a_lowered_limit_applies_at_once,
        a_zero_limit_is_refused_as_invalid,
    );

    // ---- headers and the pure decision ----

    #[test]
    fn headers_follow_the_ratelimit_draft() {
        let p = RateLimitPolicy::default();
        let (_, first) = take(Buckets::full(p, 0), p, 0);
        assert_eq!(
            first.policy_header(&p),
            "\"minute\";q=100;w=60, \"day\";q=10000;w=86400"
        );
        // 99 left; the missing token is back in 600 ms, reported as 1 s.
        assert_eq!(first.ratelimit_header(), "\"minute\";r=99;t=1");
        assert_eq!(first.retry_after_secs, None);
    }

    #[test]
    fn the_day_is_reported_when_it_has_fewer_tokens_left() {
        let p = policy(100, 150);
        let (_, first) = take(Buckets::full(p, 0), p, 0);
        assert_eq!(
            (first.window, first.limit, first.remaining),
            (RateWindow::Minute, 100, 99)
        );
        let (_, first) = take(Buckets::full(policy(100, 50), 0), policy(100, 50), 0);
        assert_eq!(first.ratelimit_header(), "\"day\";r=49;t=1728");
    }

    #[test]
    fn a_clock_stepping_back_refills_nothing() {
        let p = policy(1, 100);
        let (state, _) = take(Buckets::full(p, 10_000), p, 10_000);
        // Back 5 s, then forward to where it was: still no whole token.
        let (state, back) = take(state, p, 5_000);
        assert!(!back.allowed);
        assert_eq!(state.refilled_at_ms, 10_000);
        let (_, again) = take(state, p, 10_000);
        assert!(!again.allowed);
        let (_, later) = take(state, p, 70_000);
        assert!(later.allowed);
    }

    #[test]
    fn the_largest_limits_do_not_overflow() {
        let p = policy(u32::MAX, u32::MAX);
        let (state, first) = take(Buckets::full(p, 0), p, 0);
        assert!(first.allowed);
        assert_eq!(first.remaining, u32::MAX - 1);
        let (_, later) = take(state, p, i64::MAX / 2);
        assert!(later.allowed);
    }

    #[test]
    fn many_small_refills_add_up_exactly() {
        // 7 a minute does not divide a minute into whole milliseconds; 60 000
        // refills of 1 ms must still give back exactly 7 tokens.
        let p = policy(7, 10_000);
        let mut state = Buckets::full(p, 0);
        for _ in 0..7 {
            state = take(state, p, 0).0;
        }
        assert!(!take(state, p, 0).1.allowed);
        for ms in 1..=60_000 {
            let (next, decision) = take(state, p, ms);
            assert!(
                !decision.allowed || ms >= 8_572,
                "token too early at {ms} ms"
            );
            if !decision.allowed {
                state = next;
            } else {
                // Put it back: this test counts the refill, not the takes.
                state = Buckets {
                    minute: next.minute + RateWindow::Minute.millis(),
                    day: next.day + RateWindow::Day.millis(),
                    ..next
                };
            }
        }
        assert_eq!(state.minute, capacity(7, RateWindow::Minute));
    }

    #[tokio::test]
    async fn the_in_memory_limiter_keeps_at_most_max_keys() {
        let limiter = InMemoryRateLimiter::with_max_keys(2);
        let p = policy(1, 10);
        limiter.acquire("idle", p, t0()).await.unwrap();
        let next_day = t0() + chrono::TimeDelta::days(1);
        limiter.acquire("busy", p, next_day).await.unwrap();
        // "idle" is a day old, so it goes, and "busy" keeps its empty bucket.
        limiter.acquire("new", p, next_day).await.unwrap();
        assert_eq!(limiter.len(), 2);
        assert!(!limiter.acquire("busy", p, next_day).await.unwrap().allowed);
        // Both active: the least recently used ("busy") is forgotten.
        let later = next_day + chrono::TimeDelta::seconds(1);
        limiter.acquire("new", p, later).await.unwrap();
        limiter.acquire("third", p, later).await.unwrap();
        assert_eq!(limiter.len(), 2);
        assert!(!limiter.acquire("new", p, later).await.unwrap().allowed);
    }
}
