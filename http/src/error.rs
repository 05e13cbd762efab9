//! The edge's own errors and the one place they become HTTP responses:
//! authentication, rate limits, the `Idempotency-Key` and the
//! `X-Consistency-Token`. Both APIs answer them identically; each API's
//! error type wraps an [`EdgeError`] and renders it with
//! [`EdgeError::problem`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::problem::Problem;
use crate::rate::RateLimitError;

/// Why the edge refused a request before any handler ran.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// 401/403/429/503, as documented on each [`AuthError`] variant.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 429 `rate_limited` with `Retry-After`: a bucket is empty.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the bucket has a token again (at least 1).
        retry_after_secs: u64,
    },
    /// 503 `service_unavailable` with `Retry-After: 1`: the rate limiter
    /// cannot be reached; the request is not run unlimited.
    #[error("rate limiter: {0}")]
    RateLimiter(#[from] RateLimitError),
    /// 400 `invalid_idempotency_key`.
    #[error("Idempotency-Key must be 1-255 visible ASCII characters")]
    InvalidIdempotencyKey,
    /// 400 `invalid_consistency_token`.
    #[error("X-Consistency-Token must be the `commit.prepare` value a command answered with")]
    InvalidConsistencyToken,
}

impl EdgeError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::Auth(e) => auth_status(e),
            EdgeError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            EdgeError::RateLimiter(_) => StatusCode::SERVICE_UNAVAILABLE,
            EdgeError::InvalidIdempotencyKey | EdgeError::InvalidConsistencyToken => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// Stable snake_case identifier of the error, for the problem's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            EdgeError::Auth(e) => e.code(),
            EdgeError::RateLimited { .. } => "rate_limited",
            EdgeError::RateLimiter(_) => "service_unavailable",
            EdgeError::InvalidIdempotencyKey => "invalid_idempotency_key",
            EdgeError::InvalidConsistencyToken => "invalid_consistency_token",
        }
    }

    /// The response as a problem.
    pub fn problem(&self) -> Problem {
        match self {
            EdgeError::RateLimiter(e) => Problem::unavailable(&format!("rate limiter: {e}")),
            other => {
                let problem = Problem::new(other.status(), other.code(), other.to_string());
                match other.retry_after_secs() {
                    Some(secs) => problem.retry_after(secs),
                    None => problem,
                }
            }
        }
    }

    /// `Retry-After` of the errors that have one.
    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            EdgeError::Auth(AuthError::Unavailable) => Some(1),
            EdgeError::Auth(e) => e.retry_after_secs(),
            EdgeError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            EdgeError::RateLimiter(_) => Some(1),
            EdgeError::InvalidIdempotencyKey | EdgeError::InvalidConsistencyToken => None,
        }
    }
}

/// HTTP status of each authentication failure.
fn auth_status(e: &AuthError) -> StatusCode {
    match e {
        AuthError::Missing
        | AuthError::Malformed
        | AuthError::InvalidToken
        | AuthError::Expired
        | AuthError::BadSignature
        | AuthError::UnknownKey
        | AuthError::WrongSecret
        | AuthError::KeySuspended
        | AuthError::KeyRevoked => StatusCode::UNAUTHORIZED,
        AuthError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        AuthError::Forbidden | AuthError::MissingPermission { .. } => StatusCode::FORBIDDEN,
    }
}

impl ResponseError for EdgeError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_edge_error_has_its_status_code_and_retry_after() {
        let cases = [
            (
                EdgeError::Auth(AuthError::Missing),
                401,
                "authentication_required",
                None,
            ),
            (
                EdgeError::Auth(AuthError::Forbidden),
                403,
                "forbidden",
                None,
            ),
            (
                EdgeError::Auth(AuthError::Throttled {
                    retry_after_secs: 7,
                }),
                429,
                "too_many_failed_attempts",
                Some("7"),
            ),
            (
                EdgeError::Auth(AuthError::Unavailable),
                503,
                "authentication_unavailable",
                Some("1"),
            ),
            (
                EdgeError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "rate_limited",
                Some("3"),
            ),
            (
                EdgeError::RateLimiter(RateLimitError::Unavailable("down".into())),
                503,
                "service_unavailable",
                Some("1"),
            ),
            (
                EdgeError::InvalidIdempotencyKey,
                400,
                "invalid_idempotency_key",
                None,
            ),
            (
                EdgeError::InvalidConsistencyToken,
                400,
                "invalid_consistency_token",
                None,
            ),
        ];
        for (error, status, code, retry_after) in cases {
            let (s, headers, body) = error.problem().parts();
            assert_eq!(s.as_u16(), status, "{error:?}");
            let body: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(body["code"], code);
            let sent = headers
                .iter()
                .find(|(n, _)| *n == "retry-after")
                .map(|(_, v)| v.as_str());
            assert_eq!(sent, retry_after, "{error:?}");
        }
    }
}
