//! The rate-limit step both APIs run before a handler: one token from the
//! caller's per-minute and per-day buckets, and the `RateLimit-Policy` /
//! `RateLimit` headers on whatever the answer turns out to be.
//!
//! A partner has one bucket pair of its own limits, shared by all its keys
//! (issuing more keys never raises its limits); a person has the
//! configured per-person limit, keyed `user:<user_id>`, which no partner
//! key can be. Both APIs count against the same buckets of the same
//! limiter at the same [`crate::clock::Clock`], so one quota spans them.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponse;
use basketry_domain::PartnerId;
use chrono::{DateTime, Utc};

use crate::auth::Principal;
use crate::error::EdgeError;
use crate::rate::{RateLimitPolicy, RateLimiter};

/// The rate-limit bucket of a partner: one per partner, shared by all its
/// keys.
pub fn rate_key(partner_id: &PartnerId) -> String {
    format!("partner:{partner_id}")
}

/// The rate-limit bucket and policy of `principal`: a partner's own limits,
/// or `users` for a person.
pub fn rate_policy(principal: &Principal, users: RateLimitPolicy) -> (String, RateLimitPolicy) {
    match principal {
        Principal::Partner(p) => (
            rate_key(&p.partner_id),
            RateLimitPolicy {
                per_minute: p.rate_limits.requests_per_minute.get(),
                per_day: p.rate_limits.requests_per_day.get(),
            },
        ),
        Principal::Person(_) => (principal.principal_key(), users),
    }
}

/// The `RateLimit-Policy` and `RateLimit` headers of an admitted request,
/// for its answer.
#[derive(Debug, Clone, Default)]
pub struct RateHeaders(Vec<(HeaderName, HeaderValue)>);

impl RateHeaders {
    /// `response` with these headers set (replacing any of the same name).
    pub fn apply(&self, mut response: HttpResponse) -> HttpResponse {
        for (name, value) in &self.0 {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }

    /// The headers, as name and value.
    pub fn iter(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.0.iter()
    }
}

/// Takes one token from `principal`'s buckets at `now` (`users` is every
/// person's policy). Returns the headers for the answer, or the finished
/// refusal: 429 `rate_limited` with `Retry-After` and the headers, or 503
/// when the limiter cannot be reached (limits fail closed).
pub async fn admit(
    limiter: &dyn RateLimiter,
    principal: &Principal,
    users: RateLimitPolicy,
    now: DateTime<Utc>,
) -> Result<RateHeaders, HttpResponse> {
    let (key, policy) = rate_policy(principal, users);
    let decision = match limiter.acquire(&key, policy, now).await {
        Ok(decision) => decision,
        Err(e) => return Err(EdgeError::from(e).problem().response()),
    };
    let mut headers = RateHeaders::default();
    headers
        .0
        .extend(header("ratelimit-policy", &decision.policy_header(&policy)));
    headers
        .0
        .extend(header("ratelimit", &decision.ratelimit_header()));
    if !decision.allowed {
        let refused = EdgeError::RateLimited {
            retry_after_secs: decision.retry_after_secs.unwrap_or(1),
        };
        return Err(headers.apply(refused.problem().response()));
    }
    Ok(headers)
}

fn header(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    HeaderValue::from_str(value)
        .ok()
        .map(|v| (HeaderName::from_static(name), v))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use async_trait::async_trait;
    use basketry_domain::Email;

    use super::*;
    use crate::auth::Person;
    use crate::rate::{InMemoryRateLimiter, RateDecision, RateLimitError};

    fn person() -> Principal {
        Principal::Person(Person::new(
            Email::parse("asha@example.com").expect("an e-mail"),
            BTreeSet::new(),
        ))
    }

    #[actix_web::test]
    async fn an_empty_bucket_is_a_429_that_still_carries_the_rate_headers() {
        let limiter = InMemoryRateLimiter::new();
        let users = RateLimitPolicy::per_person(1);
        let now = Utc::now();
        let admitted = admit(&limiter, &person(), users, now)
            .await
            .expect("the first request is admitted");
        let names: Vec<&str> = admitted.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ratelimit-policy", "ratelimit"]);
        let refused = admit(&limiter, &person(), users, now)
            .await
            .expect_err("the second is refused");
        assert_eq!(refused.status().as_u16(), 429);
        for name in ["ratelimit-policy", "ratelimit", "retry-after"] {
            assert!(refused.headers().contains_key(name), "{name}");
        }
    }

    struct Down;

    #[async_trait]
    impl RateLimiter for Down {
        async fn acquire(
            &self,
            _key: &str,
            _policy: RateLimitPolicy,
            _now: DateTime<Utc>,
        ) -> Result<RateDecision, RateLimitError> {
            Err(RateLimitError::Unavailable("connection refused".into()))
        }
    }

    #[actix_web::test]
    async fn an_unreachable_limiter_refuses_with_503_never_lets_through() {
        let refused = admit(&Down, &person(), RateLimitPolicy::per_person(5), Utc::now())
            .await
            .expect_err("limits fail closed");
        assert_eq!(refused.status().as_u16(), 503);
        assert_eq!(
            refused
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
    }

    #[test]
    fn a_person_is_limited_by_the_per_person_policy_under_their_own_key() {
        let users = RateLimitPolicy::per_person(7);
        let (key, policy) = rate_policy(&person(), users);
        assert!(key.starts_with("user:"), "{key}");
        assert_eq!(policy, users);
    }
}
