//! The one place where the command API's errors become HTTP responses:
//! RFC 9457 `application/problem+json` ([`basketry_http::Problem`]) with a
//! stable `code`, and for validation failures an `errors: [{field,
//! message}]` list. The edge's own errors (authentication, rate limits,
//! the `Idempotency-Key` header) are [`EdgeError`]s and render as
//! `basketry_http` maps them, the same in both APIs.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use basketry_domain::{DomainError, ValidationErrors};
use basketry_http::consistency::{consistency_token, CONSISTENCY_TOKEN};
use basketry_http::{AuthError, EdgeError, Problem};
use basketry_store::{AppendError, Position, StoreError};
use serde_json::json;

use crate::limits::{IdempotencyError, RateLimitError};
use crate::load::LoadError;

pub use basketry_http::PROBLEM_JSON;

/// Everything a command can fail with, as seen by HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Refused at the edge: authentication (401/403/429/503), rate limits
    /// (429, or 503 when the limiter is down), an invalid
    /// `Idempotency-Key` (400); status per [`EdgeError`] variant.
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// The domain refused the command (status per variant of [`DomainError`]).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// 400: the request could not be read (bad JSON, bad header, bad id).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// 404: no such resource, or not the caller's.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// 413: body over 64 KiB.
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    /// 415: body that is not `application/json`.
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    /// 409 `already_subscribed` without the subscription's id: the person
    /// already subscribes to the template, through a subscription the
    /// caller may not read (another partner's, or the person's own).
    #[error("this person already has a live subscription to this template")]
    AlreadySubscribedUnnamed,
    /// 409: the stream kept moving under us after the bounded retries.
    #[error("the resource was changed concurrently; retry the request")]
    Concurrency,
    /// 422: the Idempotency-Key was used before with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// 409: a request with this Idempotency-Key is still being processed.
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInFlight,
    /// 409: an earlier request with this Idempotency-Key committed, but its
    /// response was lost (its instance died before recording it); the
    /// command is not run again. Names the consistency token of its last
    /// event and the streams it wrote, so the client can read the result.
    #[error(
        "the request with this Idempotency-Key was committed but its response was lost; \
         read the resources it wrote (streams) at the consistency token"
    )]
    IdempotencyKeyCommitted {
        position: Position,
        streams: Vec<String>,
    },
    /// 503 with `Retry-After`: a store or dependency is down.
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// 500: a bug. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 with a stable code.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// Stable snake_case identifier of the error, for clients to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Edge(e) => e.code(),
            ApiError::Domain(e) => e.code(),
            ApiError::BadRequest { code, .. } => code,
            ApiError::NotFound { .. } => "not_found",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::AlreadySubscribedUnnamed => "already_subscribed",
            ApiError::Concurrency => "concurrent_modification",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::IdempotencyInFlight => "idempotency_request_in_progress",
            ApiError::IdempotencyKeyCommitted { .. } => "idempotency_key_committed",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// Whether the answer tells the client to retry the same request
    /// (`concurrent_modification`, a key still in progress, 429, any 5xx):
    /// such answers are never kept for `Idempotency-Key` replays.
    pub fn tells_to_retry(&self) -> bool {
        let status = self.status_code();
        matches!(self, ApiError::Concurrency | ApiError::IdempotencyInFlight)
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
    }

    /// The error as a problem.
    pub fn to_problem(&self) -> Problem {
        match self {
            ApiError::Edge(e) => e.problem(),
            ApiError::Domain(DomainError::Validation(errors)) => Problem::validation(errors),
            ApiError::Unavailable(cause) => Problem::unavailable(cause),
            ApiError::Internal(cause) => Problem::internal(cause),
            other => {
                let problem = Problem::new(other.status_code(), other.code(), other.to_string());
                match other {
                    ApiError::Domain(DomainError::AlreadySubscribed { subscription_id }) => {
                        problem.member("subscription_id", json!(subscription_id))
                    }
                    ApiError::IdempotencyKeyCommitted { position, streams } => problem
                        .member("consistency_token", json!(consistency_token(*position)))
                        .member("streams", json!(streams))
                        .header(CONSISTENCY_TOKEN, consistency_token(*position)),
                    _ => problem,
                }
            }
        }
    }

    /// The response as parts: status, headers and the problem+json body.
    pub fn problem(&self) -> (StatusCode, Vec<(&'static str, String)>, String) {
        self.to_problem().parts()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Edge(e.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(detail) => ApiError::Internal(detail),
            StoreError::Unavailable(detail) => ApiError::Unavailable(detail),
            StoreError::Corrupt(detail) => ApiError::Internal(format!("corrupt event: {detail}")),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Conflict { .. } => ApiError::Concurrency,
            AppendError::Store(e) => e.into(),
        }
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Store(e) => e.into(),
            decode @ LoadError::Decode { .. } => ApiError::Internal(decode.to_string()),
        }
    }
}

impl From<RateLimitError> for ApiError {
    fn from(e: RateLimitError) -> Self {
        ApiError::Edge(e.into())
    }
}

impl From<IdempotencyError> for ApiError {
    fn from(e: IdempotencyError) -> Self {
        ApiError::Unavailable(format!("idempotency store: {e}"))
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Domain(DomainError::Validation(e))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Edge(e) => e.status(),
            ApiError::Domain(e) => match e {
                DomainError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                DomainError::NotFound { .. } => StatusCode::NOT_FOUND,
                DomainError::Forbidden => StatusCode::FORBIDDEN,
                DomainError::AlreadyExists { .. }
                | DomainError::AlreadySubscribed { .. }
                | DomainError::InvalidTransition { .. }
                | DomainError::TemplateNotAvailable
                | DomainError::TemplateAlreadyPublished
                | DomainError::TemplateNotPublished
                | DomainError::TemplateNeedsStrategy
                | DomainError::SubscriptionCancelled
                | DomainError::ApiKeyRevoked
                | DomainError::ReservationReleased => StatusCode::CONFLICT,
            },
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Concurrency
            | ApiError::IdempotencyInFlight
            | ApiError::AlreadySubscribedUnnamed
            | ApiError::IdempotencyKeyCommitted { .. } => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.to_problem().response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn answers_that_tell_the_client_to_retry_are_the_ones_never_replayed() {
        let retry = [
            ApiError::Concurrency,
            ApiError::IdempotencyInFlight,
            ApiError::Edge(EdgeError::RateLimited {
                retry_after_secs: 1,
            }),
            ApiError::from(AuthError::Throttled {
                retry_after_secs: 1,
            }),
            ApiError::from(AuthError::Unavailable),
            ApiError::Unavailable("store down".into()),
            ApiError::Internal("bug".into()),
        ];
        for e in &retry {
            assert!(e.tells_to_retry(), "{e:?}");
        }
        let final_answers = [
            ApiError::from(ValidationErrors::single("name", "must not be empty")),
            ApiError::NotFound { what: "basket" },
            ApiError::IdempotencyKeyReused,
            ApiError::IdempotencyKeyCommitted {
                position: Position::sequence(3),
                streams: vec!["basket-0190".into()],
            },
            ApiError::Domain(DomainError::TemplateNotAvailable),
        ];
        for e in &final_answers {
            assert!(!e.tells_to_retry(), "{e:?}");
        }
    }

    #[test]
    fn a_committed_key_names_its_token_and_streams() {
        let e = ApiError::IdempotencyKeyCommitted {
            position: Position::sequence(42),
            streams: vec!["user-a".into(), "subscription-b".into()],
        };
        let (status, headers, body) = e.problem();
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(headers.contains(&("x-consistency-token", "42.42".to_string())));
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], "idempotency_key_committed");
        assert_eq!(body["consistency_token"], "42.42");
        assert_eq!(body["streams"], json!(["user-a", "subscription-b"]));
    }
}
