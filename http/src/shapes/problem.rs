//! The one error body of both APIs — RFC 9457 `application/problem+json`
//! — and the error responses every route documents with it.

use serde::{Deserialize, Serialize};
use utoipa::{ToResponse, ToSchema};
use uuid::Uuid;

/// An error, as RFC 9457 `application/problem+json`. Every 4xx and 5xx
/// answer of both APIs has this body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "https://basketry.dev/problems/validation_failed",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "request validation failed",
    "code": "validation_failed",
    "errors": [{"field": "strategies[0].legs[1].lots", "message": "must be between 1 and 1000"}]
}))]
pub struct Problem {
    /// `https://basketry.dev/problems/{code}`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    pub problem_type: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for people. A 500 never carries its cause.
    pub detail: String,
    /// Stable snake_case identifier to branch on, e.g. `validation_failed`,
    /// `not_found`, `already_subscribed`, `rate_limited`.
    pub code: String,
    /// With `validation_failed`: every invalid field, by its path in the
    /// body (`strategies[0].legs[1].lots`) or query string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<FieldError>, required = false)]
    pub errors: Option<Vec<FieldError>>,
    /// With `already_subscribed`: the subscription that already exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Uuid, required = false)]
    pub subscription_id: Option<Uuid>,
    /// With `idempotency_key_committed`: the `X-Consistency-Token` of the
    /// committed request's last event (`{commit}.{prepare}`), to read its
    /// result with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub consistency_token: Option<String>,
    /// With `idempotency_key_committed`: the event streams the committed
    /// request wrote, e.g. `subscription-{id}`, in log order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>, required = false)]
    pub streams: Option<Vec<String>>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's path; empty for a rule about the whole body.
    pub field: String,
    /// Why it is invalid.
    pub message: String,
}

/// Bad request: the request could not be read — malformed JSON or an
/// unknown member (`malformed_json`), an unreadable body
/// (`unreadable_body`), an invalid `Idempotency-Key`
/// (`invalid_idempotency_key`) or `X-Consistency-Token`
/// (`invalid_consistency_token`); on queries an unknown, repeated or
/// malformed query parameter (`unknown_parameter`, `repeated_parameter`,
/// `malformed_query`), a foreign cursor (`invalid_cursor`) or month
/// (`invalid_month`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct BadRequest(pub Problem);

/// Unauthenticated: no credentials (`authentication_required`), or
/// credentials that do not authenticate (`malformed_credentials`,
/// `invalid_token`, `token_expired`, `invalid_token_signature`,
/// `unknown_key`, `invalid_secret`, `api_key_suspended`,
/// `api_key_revoked`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unauthorized(pub Problem);

/// Forbidden: authenticated, but this principal may not do this
/// (`forbidden`; a partner key without the permission the route needs:
/// `missing_permission`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Forbidden(pub Problem);

/// Not found: no such resource, or not the caller's (`not_found`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotFound(pub Problem);

/// Conflict with the resource's state or a duplicate (the route's
/// description names its codes), a change that kept losing to concurrent
/// ones (`concurrent_modification`), a retry while the first request
/// with the same `Idempotency-Key` is still running
/// (`idempotency_request_in_progress`), or a retry of a request that
/// committed but whose response was lost (`idempotency_key_committed`, with
/// `consistency_token` and `streams`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Conflict(pub Problem);

/// The body is larger than 64 KiB (`payload_too_large`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct PayloadTooLarge(pub Problem);

/// A body that is not `application/json` (`unsupported_media_type`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub Problem);

/// Invalid: the body or a query parameter is well-formed but breaks a rule
/// (`validation_failed`, with `errors` naming every invalid field), or the
/// `Idempotency-Key` was used before with a different request
/// (`idempotency_key_reused`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnprocessableEntity(pub Problem);

/// Too many requests: the partner's per-minute or per-day quota is spent
/// (`rate_limited`), or too many wrong secrets were tried for this key
/// (`too_many_failed_attempts`).
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(
        ("Retry-After" = u64, description = "Seconds to wait before retrying."),
        ("RateLimit-Policy" = String, description = "Partner requests only: the key's quotas."),
        ("RateLimit" = String, description = "Partner requests only: what is left of the tightest quota (`r=0`)."),
    )
)]
pub struct TooManyRequests(pub Problem);

/// A bug; the cause is logged, never sent (`internal_error`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct InternalError(pub Problem);

/// A store or the rate limiter is unavailable (`service_unavailable`), or
/// authentication cannot be decided (`authentication_unavailable`; it
/// fails closed); on queries also `consistency_timeout`: the read models
/// did not reach the request's `X-Consistency-Token` in time.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))
)]
pub struct ServiceUnavailable(pub Problem);

/// The components both APIs' documents declare: the `Problem` body and
/// every shared error response. One list, so the two documents cannot
/// declare different ones.
#[derive(utoipa::OpenApi)]
#[openapi(components(
    schemas(Problem, FieldError),
    responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        UnprocessableEntity,
        TooManyRequests,
        InternalError,
        ServiceUnavailable,
    )
))]
pub struct ErrorComponents;

impl utoipa::Modify for ErrorComponents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(<Self as utoipa::OpenApi>::openapi());
    }
}
