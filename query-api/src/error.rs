//! The one place where the query API's errors become HTTP responses.
//!
//! Failure modes shared with the command API (authentication, 400, 404,
//! 422 with field errors, 429, 503, 500) are [`ApiError`]s and render
//! through [`ApiError::problem`], so both APIs answer them identically. The
//! query-only ones are the other variants of [`QueryError`]; each documents
//! its status and `code`. A database failure never reaches the client: it
//! is logged and answered 503 (retry) or 500 (a bug), without detail.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use basketry_command_api::auth::AuthError;
use basketry_command_api::error::{ApiError, PROBLEM_JSON};
use basketry_domain::{DomainError, ValidationErrors};
use serde_json::json;

/// Everything a query can fail with, as seen by HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A failure shared with the command API (status and `code` as
    /// [`ApiError`] maps them).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// 503 `consistency_timeout` with `Retry-After: 1` — the projectors did
    /// not reach the request's `X-Consistency-Token` within the wait.
    #[error("the read models have not caught up with the consistency token yet; retry shortly")]
    ConsistencyTimeout,
    /// 503 `service_unavailable` or 500 `internal_error`, depending on the
    /// kind of failure (see [`QueryError::from`] for `sqlx::Error`); the
    /// cause is logged, never sent.
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
    /// As [`QueryError::Database`], from a read on the request's thread
    /// ([`crate::sqlite_reader`]): 503 when SQLite is busy or cannot open
    /// the file, 500 otherwise.
    #[error("read database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// 500 `internal_error` — a read-model row that does not decode (a
    /// projector bug); logged, never sent.
    #[error("corrupt read model: {0}")]
    Corrupt(String),
}

impl QueryError {
    /// 400 with a stable `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::bad_request(code, detail).into()
    }

    /// 422 `validation_failed` naming one query parameter.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Domain(DomainError::Validation(ValidationErrors::single(
            field,
            message.into(),
        )))
        .into()
    }

    /// 404 `not_found`.
    pub fn not_found(what: &'static str) -> Self {
        ApiError::NotFound { what }.into()
    }

    /// 403 `forbidden`.
    pub fn forbidden() -> Self {
        ApiError::Auth(AuthError::Forbidden).into()
    }

    /// The shared error this one renders as; `None` for the query-only
    /// consistency timeout.
    fn as_api_error(&self) -> Option<ApiError> {
        match self {
            QueryError::Api(_) | QueryError::ConsistencyTimeout => None,
            QueryError::Database(e) if is_transient(e) => {
                Some(ApiError::Unavailable(format!("read database: {e}")))
            }
            QueryError::Database(e) => Some(ApiError::Internal(format!("read database: {e}"))),
            QueryError::Sqlite(e) if is_transient_sqlite(e) => {
                Some(ApiError::Unavailable(format!("read database: {e}")))
            }
            QueryError::Sqlite(e) => Some(ApiError::Internal(format!("read database: {e}"))),
            QueryError::Corrupt(detail) => {
                Some(ApiError::Internal(format!("corrupt read model: {detail}")))
            }
        }
    }

    /// The response as parts: status, headers and the problem+json body.
    pub fn problem(&self) -> (StatusCode, Vec<(&'static str, String)>, String) {
        match self {
            QueryError::Api(e) => e.problem(),
            QueryError::ConsistencyTimeout => {
                let status = StatusCode::SERVICE_UNAVAILABLE;
                let code = "consistency_timeout";
                let body = json!({
                    "type": format!("https://basketry.dev/problems/{code}"),
                    "title": status.canonical_reason().unwrap_or("Error"),
                    "status": status.as_u16(),
                    "detail": self.to_string(),
                    "code": code,
                });
                (
                    status,
                    vec![
                        ("content-type", PROBLEM_JSON.to_string()),
                        ("retry-after", "1".to_string()),
                    ],
                    body.to_string(),
                )
            }
            other => match other.as_api_error() {
                Some(api) => api.problem(),
                None => ApiError::Internal("unmapped query error".into()).problem(),
            },
        }
    }
}

/// Whether a database error is worth a retry (the database is down or
/// overloaded) rather than a bug in a query.
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_)
    )
}

/// [`is_transient`] for SQLite read on the request's thread.
fn is_transient_sqlite(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
        )
    )
}

impl ResponseError for QueryError {
    fn status_code(&self) -> StatusCode {
        self.problem().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, headers, body) = self.problem();
        let mut response = HttpResponse::build(status);
        for (name, value) in headers {
            response.insert_header((name, value));
        }
        response.body(body)
    }
}

impl From<AuthError> for QueryError {
    fn from(e: AuthError) -> Self {
        QueryError::Api(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(e: &QueryError) -> serde_json::Value {
        serde_json::from_str(&e.problem().2).unwrap()
    }

    #[test]
    fn a_consistency_timeout_is_a_503_with_retry_after() {
        let (status, headers, _) = QueryError::ConsistencyTimeout.problem();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains(&("retry-after", "1".to_string())));
        assert_eq!(
            body(&QueryError::ConsistencyTimeout)["code"],
            "consistency_timeout"
        );
    }

    #[test]
    fn database_errors_never_leak_their_cause() {
        let bug = QueryError::Database(sqlx::Error::ColumnNotFound("secret_column".into()));
        let (status, _, text) = bug.problem();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!text.contains("secret_column"), "{text}");

        let down = QueryError::Database(sqlx::Error::PoolTimedOut);
        let (status, headers, text) = down.problem();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.iter().any(|(n, _)| *n == "retry-after"));
        assert!(!text.contains("pool"), "{text}");

        let corrupt = QueryError::Corrupt("rm_baskets.tags is not json: [oops".into());
        assert!(!corrupt.problem().2.contains("oops"));
    }

    #[test]
    fn invalid_parameters_are_422_with_the_field() {
        let e = QueryError::invalid("limit", "must be between 1 and 100");
        let (status, _, _) = e.problem();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body(&e)["errors"][0]["field"], "limit");
        assert_eq!(body(&e)["code"], "validation_failed");
    }
}
