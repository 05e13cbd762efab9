//! Partners: an API key (`pk_…`) and its secret (`sk_…`), checked against
//! the argon2id hash recorded in the partner's stream (SPEC §1).
//!
//! [`PartnerAuthenticator::authenticate`] does, in order:
//!
//! 1. read the partner id out of the key (`pk_zebu_live_…` → `ZEBU`);
//! 2. refuse at once, with [`AuthError::Throttled`], a key that had
//!    [`PartnerAuthConfig::max_failures`] wrong secrets in the current
//!    [`PartnerAuthConfig::failure_window`] — no hashing is done for it;
//! 3. answer from the cache of verified credentials, keyed by
//!    HMAC-SHA256(process-random key, api key ‖ 0x00 ‖ secret), so the
//!    cache holds no secret and a hit costs no argon2;
//! 4. on a miss, read the partner's stream (a store error is
//!    [`AuthError::Unavailable`], never a pass), find the key, refuse a
//!    SUSPENDED or REVOKED key without hashing, and argon2-verify the secret
//!    on a blocking thread against the current hash and, during a
//!    rotation's grace period, the previous one.
//!
//! Concurrent misses for the same key and secret wait for one verification
//! (then hit the cache), and every verification reserves one of the key's
//! allowed failures before it starts, so neither a burst of correct requests
//! nor a burst of wrong ones runs more argon2 than needed or allowed.
//!
//! # How long a revoked key may still pass
//!
//! [`PartnerAuthenticator::invalidate_partner`] drops a partner's cached
//! credentials at once, and a verification that was under way when it was
//! called does not cache its result; handlers call it after every key
//! update, rotation, suspension or revocation, so on the instance that
//! handled the command the change applies to the very next request. Other
//! instances keep a cached credential for at most
//! [`PartnerAuthConfig::cache_ttl`] (10 s by default) after they verified
//! it: that is the bound on how long a revoked, suspended or rotated-out
//! secret can still be accepted anywhere. A credential verified against a
//! rotated-out hash is never cached past that hash's grace period.
//!
//! Failure counts are per instance too: with N instances a key gets at most
//! N × `max_failures` wrong secrets per window in all.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use basketry_domain::partner::{stream_name, ApiKeyStatus, Permission, RateLimits};
use basketry_domain::{
    Aggregate, ApiKeyId, BrokerId, DecodeError, DomainEvent, PartnerAggregate, PartnerId,
    RevenueShare,
};
use basketry_store::{EventStore, Revision, StoreError, StreamId};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::OwnedMutexGuard;

use super::credentials::{partner_id_of_key, verify_secret};
use super::AuthError;

/// Longest secret looked at; anything longer is wrong without hashing.
const MAX_SECRET_LEN: usize = 256;
/// Failure records kept before expired ones are swept.
const SWEEP_FAILURES_ABOVE: usize = 4096;

/// An authenticated partner key, with what the request layers need to know
/// about its partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerPrincipal {
    /// The partner.
    pub partner_id: PartnerId,
    /// The key used.
    pub api_key_id: ApiKeyId,
    /// What the partner's keys may do.
    pub permissions: BTreeSet<Permission>,
    /// The partner's request limits.
    pub rate_limits: RateLimits,
    /// The partner's broker, for auto-linked allocations.
    pub broker_id: BrokerId,
    /// The partner's revenue share in force.
    pub revenue_share: RevenueShare,
}

impl PartnerPrincipal {
    /// Whether the key may do `permission`.
    pub fn has_permission(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }
}

/// Tuning of a [`PartnerAuthenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerAuthConfig {
    /// How long a verified credential is trusted without reading the stream
    /// again (default 10 s): the bound on how long another instance accepts
    /// a revoked key.
    pub cache_ttl: Duration,
    /// Wrong secrets allowed per key and client per window (default 5). A
    /// client is the connection's peer address, an IPv6 one by its /64.
    pub max_failures: u32,
    /// The window of `max_failures` (default 60 s). The window starts at the
    /// first failure; once `max_failures` are reached the key is refused
    /// *to that client* until it ends, even with the right secret, so a
    /// flood from one client cannot lock the partner out everywhere.
    pub failure_window: Duration,
    /// Wrong secrets allowed per key per window from all clients together
    /// (default 100): the bound on the argon2 work one key id can cause,
    /// high enough that a few flooding clients never reach it.
    pub max_failures_per_key: u32,
    /// How long a credential verified once stays *proven* (default 1 h):
    /// after `cache_ttl` the partner stream is read again (status, current
    /// hashes) but argon2 is not run again while the hash it matched is
    /// still one the key accepts. A proven credential also passes the
    /// failure throttle, so a flood of wrong secrets against a key id (key
    /// ids are not secret) cannot lock out the holder of the right one.
    pub proven_ttl: Duration,
    /// Cached credentials kept at most (default 10 000); beyond, expired
    /// ones are swept and, if that is not enough, the cache is emptied.
    pub max_cache_entries: usize,
}

impl Default for PartnerAuthConfig {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(10),
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            proven_ttl: Duration::from_secs(3600),
            max_cache_entries: 10_000,
            max_failures_per_key: 100,
        }
    }
}

/// HMAC-SHA256 of a presented credential.
type CacheKey = [u8; 32];

struct CacheEntry {
    principal: PartnerPrincipal,
    /// Until then the principal is used as is.
    expires_at: DateTime<Utc>,
    /// The argon2id hash the secret matched.
    phc: String,
    /// Until then the secret is known to match `phc`: the stream is read
    /// again, argon2 is not run again.
    proven_until: DateTime<Utc>,
}

/// Wrong secrets of one key in the current window.
struct FailureWindow {
    started: DateTime<Utc>,
    count: u32,
}

#[derive(Default)]
struct Shared {
    cache: HashMap<CacheKey, CacheEntry>,
    /// By the presented `pk_…` key (only keys that exist get here).
    failures: HashMap<String, FailureWindow>,
    /// Bumped by every invalidation: a verification that started before one
    /// must not cache what it found.
    epoch: u64,
}

struct Inner {
    store: Arc<dyn EventStore>,
    cache_ttl: TimeDelta,
    proven_ttl: TimeDelta,
    failure_window: TimeDelta,
    max_failures: u32,
    max_failures_per_key: u32,
    max_cache_entries: usize,
    mac_key: [u8; 32],
    shared: Mutex<Shared>,
    /// One lock per credential being verified, so concurrent misses for the
    /// same key and secret share one argon2 run.
    inflight: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    argon2_runs: AtomicU64,
}

/// Authenticates partner keys; cheap to clone (shared state behind an
/// `Arc`), so one instance serves the whole process.
#[derive(Clone)]
pub struct PartnerAuthenticator {
    inner: Arc<Inner>,
}

impl fmt::Debug for PartnerAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartnerAuthenticator")
            .field("cache_ttl", &self.inner.cache_ttl)
            .field("max_failures", &self.inner.max_failures)
            .field("failure_window", &self.inner.failure_window)
            .finish_non_exhaustive()
    }
}

/// The two failure counters an attempt counts against: the key's from this
/// client, and the key's from every client.
struct Buckets {
    client: String,
    key: String,
}

impl Buckets {
    fn new(api_key: &str, client: Option<IpAddr>) -> Self {
        // An IPv6 client is its /64: one host is given a whole /64, so
        // counting its addresses one by one would count nothing.
        let client = match client.map(|ip| ip.to_canonical()) {
            None => "unknown".to_owned(),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        };
        Self {
            client: format!("{api_key} {client}"),
            key: api_key.to_owned(),
        }
    }
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// `at + delta`, saturating instead of panicking on absurd configurations.
fn after(at: DateTime<Utc>, delta: TimeDelta) -> DateTime<Utc> {
    at.checked_add_signed(delta)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whole seconds from `now` to `until`, at least 1 (for `Retry-After`).
fn seconds_until(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let millis = u64::try_from((until - now).num_milliseconds()).unwrap_or(0);
    millis.div_ceil(1000).max(1)
}

/// Holds the per-credential lock; removes it from the map when the last
/// user lets go (also when the request is dropped half-way).
struct InflightSlot {
    inner: Arc<Inner>,
    key: CacheKey,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for InflightSlot {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut inflight = lock(&self.inner.inflight);
        if inflight
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            inflight.remove(&self.key);
        }
    }
}

/// Locks a std mutex, recovering from poisoning: the maps stay consistent
/// because no code panics while holding them.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PartnerAuthenticator {
    /// An authenticator reading partner streams from `store`.
    pub fn new(store: Arc<dyn EventStore>, config: PartnerAuthConfig) -> Self {
        let mut mac_key = [0u8; 32];
        OsRng.fill_bytes(&mut mac_key);
        Self {
            inner: Arc::new(Inner {
                store,
                cache_ttl: delta(config.cache_ttl),
                proven_ttl: delta(config.proven_ttl),
                failure_window: delta(config.failure_window),
                max_failures: config.max_failures,
                max_failures_per_key: config.max_failures_per_key,
                max_cache_entries: config.max_cache_entries,
                mac_key,
                shared: Mutex::new(Shared::default()),
                inflight: Mutex::new(HashMap::new()),
                argon2_runs: AtomicU64::new(0),
            }),
        }
    }

    /// How many argon2 verifications this authenticator has run (one per
    /// hash tried), for tests and metrics.
    pub fn argon2_runs(&self) -> u64 {
        self.inner.argon2_runs.load(Ordering::Relaxed)
    }

    /// Drops every cached credential of `partner_id`, so its next request
    /// reads the stream again. Call it after any change to the partner's
    /// keys or configuration.
    pub fn invalidate_partner(&self, partner_id: &PartnerId) {
        let mut shared = lock(&self.inner.shared);
        shared
            .cache
            .retain(|_, entry| entry.principal.partner_id != *partner_id);
        shared.epoch += 1;
    }

    fn cache_key(&self, api_key: &str, secret: &str) -> CacheKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.mac_key)
            .expect("hmac takes keys of any length");
        mac.update(api_key.as_bytes());
        mac.update(&[0]);
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Seconds until `buckets` may try again, if either is spent.
    fn throttled(&self, shared: &Shared, buckets: &Buckets, now: DateTime<Utc>) -> Option<u64> {
        [
            (&buckets.client, self.inner.max_failures),
            (&buckets.key, self.inner.max_failures_per_key),
        ]
        .into_iter()
        .filter_map(|(bucket, max)| {
            let window = shared.failures.get(bucket)?;
            let ends = after(window.started, self.inner.failure_window);
            (now < ends && window.count >= max).then(|| seconds_until(ends, now))
        })
        .max()
    }

    /// Counts one failure against both buckets ahead of a verification,
    /// refusing when either has none left. Gives the windows' starts, to
    /// undo it on success.
    fn reserve_failure(
        &self,
        buckets: &Buckets,
        now: DateTime<Utc>,
    ) -> Result<[DateTime<Utc>; 2], AuthError> {
        let mut shared = lock(&self.inner.shared);
        if let Some(retry_after_secs) = self.throttled(&shared, buckets, now) {
            return Err(AuthError::Throttled { retry_after_secs });
        }
        if shared.failures.len() > SWEEP_FAILURES_ABOVE {
            let window = self.inner.failure_window;
            shared
                .failures
                .retain(|_, w| now < after(w.started, window));
        }
        let mut starts = [now; 2];
        for (start, bucket) in starts.iter_mut().zip([&buckets.client, &buckets.key]) {
            let window = shared
                .failures
                .entry(bucket.clone())
                .or_insert(FailureWindow {
                    started: now,
                    count: 0,
                });
            if now >= after(window.started, self.inner.failure_window) {
                *window = FailureWindow {
                    started: now,
                    count: 0,
                };
            }
            window.count += 1;
            *start = window.started;
        }
        Ok(starts)
    }

    /// Undoes [`Self::reserve_failure`] after a successful verification.
    fn release_failure(&self, buckets: &Buckets, starts: [DateTime<Utc>; 2]) {
        let mut shared = lock(&self.inner.shared);
        for (bucket, started) in [&buckets.client, &buckets.key].into_iter().zip(starts) {
            if let Some(window) = shared.failures.get_mut(bucket) {
                if window.started == started {
                    window.count = window.count.saturating_sub(1);
                    if window.count == 0 {
                        shared.failures.remove(bucket);
                    }
                }
            }
        }
    }

    fn cached(&self, key: &CacheKey, now: DateTime<Utc>) -> Option<PartnerPrincipal> {
        let mut shared = lock(&self.inner.shared);
        match shared.cache.get(key) {
            Some(entry) if now < entry.expires_at => Some(entry.principal.clone()),
            Some(entry) if now < entry.proven_until => None,
            Some(_) => {
                shared.cache.remove(key);
                None
            }
            None => None,
        }
    }

    /// The hash this exact credential was proven to match, while proven.
    fn proven(&self, key: &CacheKey, now: DateTime<Utc>) -> Option<String> {
        lock(&self.inner.shared)
            .cache
            .get(key)
            .filter(|entry| now < entry.proven_until)
            .map(|entry| entry.phc.clone())
    }

    fn epoch(&self) -> u64 {
        lock(&self.inner.shared).epoch
    }

    fn remember(&self, key: CacheKey, entry: CacheEntry, epoch: u64, now: DateTime<Utc>) {
        let mut shared = lock(&self.inner.shared);
        if shared.epoch != epoch {
            return;
        }
        if shared.cache.len() >= self.inner.max_cache_entries {
            shared.cache.retain(|_, e| now < e.proven_until);
            if shared.cache.len() >= self.inner.max_cache_entries {
                shared.cache.clear();
            }
        }
        shared.cache.insert(key, entry);
    }

    async fn inflight_slot(&self, key: CacheKey) -> InflightSlot {
        let mutex = Arc::clone(lock(&self.inner.inflight).entry(key).or_default());
        let guard = mutex.lock_owned().await;
        InflightSlot {
            inner: Arc::clone(&self.inner),
            key,
            guard: Some(guard),
        }
    }

    /// Authenticates `api_key` with `secret` at `now`.
    ///
    /// Errors: [`AuthError::UnknownKey`] (no such key),
    /// [`AuthError::Throttled`] (too many wrong secrets lately),
    /// [`AuthError::KeySuspended`], [`AuthError::KeyRevoked`],
    /// [`AuthError::WrongSecret`], [`AuthError::Unavailable`] (store down).
    pub async fn authenticate(
        &self,
        api_key: &str,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<PartnerPrincipal, AuthError> {
        self.authenticate_from(api_key, secret, None, now).await
    }

    /// [`PartnerAuthenticator::authenticate`] for a request from `client`
    /// (the connection's peer address; `None` when unknown).
    pub async fn authenticate_from(
        &self,
        api_key: &str,
        secret: &str,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<PartnerPrincipal, AuthError> {
        let buckets = Buckets::new(api_key, client);
        let partner_id = partner_id_of_key(api_key).ok_or(AuthError::UnknownKey)?;
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Err(AuthError::WrongSecret);
        }
        // The cache is consulted before the throttle: a hit proves the exact
        // secret without argon2, so a flood of wrong secrets (key ids are not
        // secret) cannot lock out a partner whose credential is verified.
        let key = self.cache_key(api_key, secret);
        if let Some(principal) = self.cached(&key, now) {
            return Ok(principal);
        }
        // A proven credential is checked against the stream below, without
        // argon2, throttled or not.
        let proven = self.proven(&key, now);
        if proven.is_none() {
            if let Some(retry_after_secs) = self.throttled(&lock(&self.inner.shared), &buckets, now)
            {
                return Err(AuthError::Throttled { retry_after_secs });
            }
        }
        let _slot = self.inflight_slot(key).await;
        // Whoever held the slot before may have just verified this very
        // credential.
        if let Some(principal) = self.cached(&key, now) {
            return Ok(principal);
        }
        let epoch = self.epoch();

        let stream =
            StreamId::parse(stream_name(&partner_id)).map_err(|_| AuthError::UnknownKey)?;
        let state = load_partner(self.inner.store.as_ref(), &stream)
            .await
            .map_err(|e| {
                tracing::error!(partner_id = %partner_id, error = %e, "partner stream unreadable during authentication");
                AuthError::Unavailable
            })?;
        let (Some(partner), Some(api)) = (state.partner.as_ref(), state.key_by_token(api_key))
        else {
            return Err(AuthError::UnknownKey);
        };
        match api.status {
            ApiKeyStatus::Active => {}
            ApiKeyStatus::Suspended => return Err(AuthError::KeySuspended),
            ApiKeyStatus::Revoked => return Err(AuthError::KeyRevoked),
        }
        let candidates: Vec<String> = state
            .verify_candidates(&api.api_key_id, now)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let grace_ends = api.previous_secret.as_ref().map(|p| p.valid_until);
        let principal = PartnerPrincipal {
            partner_id: partner.partner_id.clone(),
            api_key_id: api.api_key_id,
            permissions: partner.permissions.clone(),
            rate_limits: partner.rate_limits,
            broker_id: partner.broker_id.clone(),
            revenue_share: partner.revenue_share,
        };
        // Trusted as is until the TTL, and for a rotated-out secret no
        // longer than its grace.
        let trusted_until = |index: usize| {
            let expires_at = after(now, self.inner.cache_ttl);
            match grace_ends {
                Some(ends) if index > 0 => expires_at.min(ends),
                _ => expires_at,
            }
        };

        if let Some(phc) = proven {
            if let Some(index) = candidates.iter().position(|c| *c == phc) {
                let entry = CacheEntry {
                    principal: principal.clone(),
                    expires_at: trusted_until(index),
                    phc,
                    proven_until: after(now, self.inner.proven_ttl),
                };
                self.remember(key, entry, epoch, now);
                return Ok(principal);
            }
            // The hash it matched is no longer accepted (rotated out): an
            // ordinary attempt from here on.
            if let Some(retry_after_secs) = self.throttled(&lock(&self.inner.shared), &buckets, now)
            {
                return Err(AuthError::Throttled { retry_after_secs });
            }
        }

        let window = self.reserve_failure(&buckets, now)?;
        let inner = Arc::clone(&self.inner);
        let presented = secret.to_owned();
        let hashes = candidates.clone();
        let matched = tokio::task::spawn_blocking(move || {
            hashes.iter().position(|phc| {
                inner.argon2_runs.fetch_add(1, Ordering::Relaxed);
                verify_secret(&presented, phc)
            })
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "argon2 verification task failed");
            AuthError::Unavailable
        })?;

        let Some(index) = matched else {
            tracing::info!(partner_id = %partner_id, api_key_id = %api.api_key_id, "partner secret refused");
            return Err(AuthError::WrongSecret);
        };
        self.release_failure(&buckets, window);
        let entry = CacheEntry {
            principal: principal.clone(),
            expires_at: trusted_until(index),
            phc: candidates[index].clone(),
            proven_until: after(now, self.inner.proven_ttl),
        };
        self.remember(key, entry, epoch, now);
        Ok(principal)
    }
}

/// The partner's state, folded from its stream through the domain's
/// decoders (upcasters included): what authentication checks a key
/// against. A stream that does not exist folds to the empty state.
pub(crate) async fn load_partner(
    store: &dyn EventStore,
    stream: &StreamId,
) -> Result<<PartnerAggregate as Aggregate>::State, PartnerLoadError> {
    let events = store.read_stream(stream, Revision::START).await?;
    let mut state = <PartnerAggregate as Aggregate>::State::default();
    for recorded in events {
        let event = <PartnerAggregate as Aggregate>::Event::from_stored(
            &recorded.event_type,
            recorded.schema_version,
            recorded.data,
        )
        .map_err(|source| PartnerLoadError::Decode {
            revision: recorded.revision.0,
            source,
        })?;
        state = PartnerAggregate::evolve(state, &event);
    }
    Ok(state)
}

/// Why a partner's stream could not be folded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PartnerLoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event no longer decodes: a bug or a missing upcaster.
    #[error("event {revision} of the partner's stream does not decode: {source}")]
    Decode { revision: u64, source: DecodeError },
}

#[cfg(test)]
mod tests {
    use basketry_domain::partner::ApiKeyStatus;

    use super::*;
    use crate::auth::credentials::generate_secret;
    use crate::auth::testing::{t0, FailingStore, Fixture};

    fn authenticator(fixture: &Fixture) -> PartnerAuthenticator {
        PartnerAuthenticator::new(fixture.store(), PartnerAuthConfig::default())
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        t0() + TimeDelta::seconds(seconds)
    }

    #[tokio::test]
    async fn the_right_secret_is_accepted_with_the_partners_terms() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let principal = auth
            .authenticate(f.key.as_str(), f.secret.expose(), at(1))
            .await
            .unwrap();
        assert_eq!(principal.partner_id, f.partner_id);
        assert_eq!(principal.api_key_id, f.api_key_id);
        assert_eq!(principal.broker_id.as_str(), "ZEBU");
        assert_eq!(principal.rate_limits, RateLimits::default());
        assert!(principal.has_permission(Permission::MarketplaceRead));
        assert!(!principal.has_permission(Permission::LedgerRead));
        assert_eq!(auth.argon2_runs(), 1);
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let other = generate_secret(&f.partner_id);
        for secret in [other.expose(), "", &"x".repeat(MAX_SECRET_LEN + 1)] {
            assert_eq!(
                auth.authenticate(f.key.as_str(), secret, at(1)).await,
                Err(AuthError::WrongSecret)
            );
        }
        // Only the well-formed one was worth hashing.
        assert_eq!(auth.argon2_runs(), 1);
    }

    #[tokio::test]
    async fn an_unknown_key_is_refused_without_hashing() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let secret = f.secret.expose();
        for key in [
            "pk_zebu_live_000000000000000000000000000000000",
            "pk_nobody_live_000000000000000000000000000000000",
            "sk_zebu_live_000000000000000000000000000000000",
            "garbage",
        ] {
            assert_eq!(
                auth.authenticate(key, secret, at(1)).await,
                Err(AuthError::UnknownKey),
                "{key}"
            );
        }
        assert_eq!(auth.argon2_runs(), 0);
    }

    #[tokio::test]
    async fn the_sixth_wrong_secret_within_a_minute_is_throttled_without_hashing() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let wrong = generate_secret(&f.partner_id);
        for i in 0..5 {
            assert_eq!(
                auth.authenticate(f.key.as_str(), wrong.expose(), at(i))
                    .await,
                Err(AuthError::WrongSecret)
            );
        }
        assert_eq!(auth.argon2_runs(), 5);
        // The window started at t0 + 0 s and ends at t0 + 60 s.
        assert_eq!(
            auth.authenticate(f.key.as_str(), wrong.expose(), at(10))
                .await,
            Err(AuthError::Throttled {
                retry_after_secs: 50
            })
        );
        // Even the right secret waits: the key is locked, not the guess.
        assert_eq!(
            auth.authenticate(f.key.as_str(), f.secret.expose(), at(59))
                .await,
            Err(AuthError::Throttled {
                retry_after_secs: 1
            })
        );
        assert_eq!(auth.argon2_runs(), 5);
        // Once the window has passed, the right secret works again.
        assert!(auth
            .authenticate(f.key.as_str(), f.secret.expose(), at(60))
            .await
            .is_ok());
        assert_eq!(auth.argon2_runs(), 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_wrong_secrets_run_argon2_no_more_than_the_allowed_failures() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (auth, key) = (auth.clone(), f.key.to_string());
            let wrong = generate_secret(&f.partner_id);
            tasks.spawn(async move { auth.authenticate(&key, wrong.expose(), at(1)).await });
        }
        let mut wrong = 0;
        let mut throttled = 0;
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Err(AuthError::WrongSecret) => wrong += 1,
                Err(AuthError::Throttled { .. }) => throttled += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((wrong, throttled), (5, 5));
        assert_eq!(auth.argon2_runs(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_with_the_same_secret_share_one_verification() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (auth, key, secret) = (auth.clone(), f.key.to_string(), f.secret.clone());
            tasks.spawn(async move { auth.authenticate(&key, secret.expose(), at(1)).await });
        }
        while let Some(result) = tasks.join_next().await {
            assert!(result.unwrap().is_ok());
        }
        assert_eq!(auth.argon2_runs(), 1);
    }

    #[tokio::test]
    async fn a_cache_hit_does_not_run_argon2_and_expires_after_the_ttl() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let (key, secret) = (f.key.as_str(), f.secret.expose());
        auth.authenticate(key, secret, at(0)).await.unwrap();
        auth.authenticate(key, secret, at(9)).await.unwrap();
        assert_eq!(auth.argon2_runs(), 1);
        // After the TTL the stream is read again (see the revocation test
        // below), but the secret stays proven: no second argon2 run...
        auth.authenticate(key, secret, at(10)).await.unwrap();
        auth.authenticate(key, secret, at(3_599)).await.unwrap();
        assert_eq!(auth.argon2_runs(), 1);
        // ...until an hour after it was last verified.
        auth.authenticate(key, secret, at(3_599 + 3_600))
            .await
            .unwrap();
        assert_eq!(auth.argon2_runs(), 2);
        // A wrong secret never hits the cache of the right one.
        let wrong = generate_secret(&f.partner_id);
        assert_eq!(
            auth.authenticate(key, wrong.expose(), at(11)).await,
            Err(AuthError::WrongSecret)
        );
    }

    #[tokio::test]
    async fn a_flood_of_wrong_secrets_does_not_lock_out_the_holder_of_the_right_one() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let (key, secret) = (f.key.as_str(), f.secret.expose());
        auth.authenticate(key, secret, at(0)).await.unwrap();
        // Anyone who knows the key id uses up its failures...
        let wrong = generate_secret(&f.partner_id);
        for i in 1..=5 {
            assert_eq!(
                auth.authenticate(key, wrong.expose(), at(i)).await,
                Err(AuthError::WrongSecret)
            );
        }
        assert!(matches!(
            auth.authenticate(key, wrong.expose(), at(20)).await,
            Err(AuthError::Throttled { .. })
        ));
        // ...but the holder, past the cache TTL and inside the window, is
        // still let in, without argon2.
        let runs = auth.argon2_runs();
        assert!(auth.authenticate(key, secret, at(30)).await.is_ok());
        assert!(auth.authenticate(key, secret, at(59)).await.is_ok());
        assert_eq!(auth.argon2_runs(), runs);
        // A secret never verified here is throttled all the same.
        let fresh = authenticator(&f);
        for i in 1..=5 {
            let _ = fresh.authenticate(key, wrong.expose(), at(i)).await;
        }
        assert!(matches!(
            fresh.authenticate(key, secret, at(30)).await,
            Err(AuthError::Throttled { .. })
        ));
    }

    #[tokio::test]
    async fn a_proven_secret_stops_working_once_rotated_out_even_uninvalidated() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let old = f.secret.expose();
        auth.authenticate(f.key.as_str(), old, at(0)).await.unwrap();
        let new = f.rotate(0, at(5)).await;
        // No invalidation (as on another instance): past the TTL the stream
        // is read, the hash the old secret matched is gone, argon2 decides.
        assert_eq!(
            auth.authenticate(f.key.as_str(), old, at(11)).await,
            Err(AuthError::WrongSecret)
        );
        assert!(auth
            .authenticate(f.key.as_str(), new.expose(), at(12))
            .await
            .is_ok());
        // And a suspension is seen on the next read of the stream.
        f.set_status(ApiKeyStatus::Suspended).await;
        assert_eq!(
            auth.authenticate(f.key.as_str(), new.expose(), at(23))
                .await,
            Err(AuthError::KeySuspended)
        );
    }

    #[tokio::test]
    async fn a_suspended_key_is_refused_immediately() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        f.set_status(ApiKeyStatus::Suspended).await;
        assert_eq!(
            auth.authenticate(f.key.as_str(), f.secret.expose(), at(1))
                .await,
            Err(AuthError::KeySuspended)
        );
        assert_eq!(auth.argon2_runs(), 0);
        f.set_status(ApiKeyStatus::Active).await;
        assert!(auth
            .authenticate(f.key.as_str(), f.secret.expose(), at(2))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_revoked_key_is_refused_immediately() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        f.revoke().await;
        let wrong = generate_secret(&f.partner_id);
        for secret in [f.secret.expose(), wrong.expose()] {
            assert_eq!(
                auth.authenticate(f.key.as_str(), secret, at(1)).await,
                Err(AuthError::KeyRevoked)
            );
        }
        assert_eq!(auth.argon2_runs(), 0);
    }

    #[tokio::test]
    async fn invalidation_applies_a_revocation_to_the_next_request_and_the_ttl_bounds_the_rest() {
        let f = Fixture::new().await;
        let here = authenticator(&f);
        let elsewhere = authenticator(&f);
        let (key, secret) = (f.key.as_str(), f.secret.expose());
        here.authenticate(key, secret, at(0)).await.unwrap();
        elsewhere.authenticate(key, secret, at(0)).await.unwrap();

        f.revoke().await;
        here.invalidate_partner(&f.partner_id);
        assert_eq!(
            here.authenticate(key, secret, at(1)).await,
            Err(AuthError::KeyRevoked)
        );
        // Another instance was not told: its cache answers until the TTL.
        assert!(elsewhere.authenticate(key, secret, at(9)).await.is_ok());
        assert_eq!(
            elsewhere.authenticate(key, secret, at(10)).await,
            Err(AuthError::KeyRevoked)
        );
    }

    #[tokio::test]
    async fn after_a_rotation_without_grace_the_old_secret_fails() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let old = f.secret.expose();
        auth.authenticate(f.key.as_str(), old, at(0)).await.unwrap();
        let new = f.rotate(0, at(5)).await;
        auth.invalidate_partner(&f.partner_id);
        assert_eq!(
            auth.authenticate(f.key.as_str(), old, at(6)).await,
            Err(AuthError::WrongSecret)
        );
        assert!(auth
            .authenticate(f.key.as_str(), new.expose(), at(7))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn after_a_rotation_with_grace_the_old_secret_works_until_the_grace_ends() {
        let f = Fixture::new().await;
        let auth = authenticator(&f);
        let old = f.secret.expose();
        let new = f.rotate(1, at(0)).await;
        auth.invalidate_partner(&f.partner_id);
        let hour = 3600;
        assert!(auth.authenticate(f.key.as_str(), old, at(60)).await.is_ok());
        assert!(auth
            .authenticate(f.key.as_str(), new.expose(), at(60))
            .await
            .is_ok());
        // Verified 5 s before the grace ends: the cache must not carry it
        // past the end, although its TTL would.
        assert!(auth
            .authenticate(f.key.as_str(), old, at(hour - 5))
            .await
            .is_ok());
        assert_eq!(
            auth.authenticate(f.key.as_str(), old, at(hour)).await,
            Err(AuthError::WrongSecret)
        );
        assert!(auth
            .authenticate(f.key.as_str(), new.expose(), at(hour + 1))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_store_error_is_unavailable_never_a_pass() {
        let f = Fixture::new().await;
        let auth = PartnerAuthenticator::new(Arc::new(FailingStore), PartnerAuthConfig::default());
        assert_eq!(
            auth.authenticate(f.key.as_str(), f.secret.expose(), at(1))
                .await,
            Err(AuthError::Unavailable)
        );
        assert_eq!(auth.argon2_runs(), 0);
    }

    fn addr(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[tokio::test]
    async fn wrong_secrets_from_one_address_do_not_throttle_the_owner_at_another() {
        let f = Fixture::new().await;
        // A fresh process: the owner's secret was never verified here.
        let auth = authenticator(&f);
        let key = f.key.as_str();
        let wrong = generate_secret(&f.partner_id);
        for i in 0..20 {
            let r = auth
                .authenticate_from(key, wrong.expose(), addr("203.0.113.7"), at(i))
                .await;
            assert!(r.is_err(), "{r:?}");
        }
        // The attacker's address is throttled after five hashes...
        assert_eq!(auth.argon2_runs(), 5);
        assert!(matches!(
            auth.authenticate_from(key, wrong.expose(), addr("203.0.113.7"), at(21))
                .await,
            Err(AuthError::Throttled { .. })
        ));
        // ...while the owner, elsewhere, gets in with the right secret.
        let principal = auth
            .authenticate_from(key, f.secret.expose(), addr("198.51.100.2"), at(22))
            .await
            .expect("the owner is not locked out");
        assert_eq!(principal.partner_id, f.partner_id);
        assert_eq!(auth.argon2_runs(), 6);
    }

    #[tokio::test]
    async fn wrong_secrets_from_many_addresses_hash_no_more_than_the_per_key_cap() {
        let f = Fixture::new().await;
        let config = PartnerAuthConfig {
            max_failures_per_key: 12,
            ..PartnerAuthConfig::default()
        };
        let auth = PartnerAuthenticator::new(f.store(), config);
        let key = f.key.as_str();
        let wrong = generate_secret(&f.partner_id);
        for i in 0..40u8 {
            let client = Some(IpAddr::from([192, 0, 2, i]));
            let _ = auth
                .authenticate_from(key, wrong.expose(), client, at(1))
                .await;
        }
        assert_eq!(auth.argon2_runs(), 12);
        // One IPv6 network (a /64) is one client, however many addresses it
        // uses.
        let auth = authenticator(&f);
        for i in 0..20u16 {
            let client = Some(IpAddr::from([0x2001, 0xdb8, 0, 7, 0, 0, 0, i]));
            let _ = auth
                .authenticate_from(key, wrong.expose(), client, at(1))
                .await;
        }
        assert_eq!(auth.argon2_runs(), 5);
    }
}
