//! The one place where the query API's errors become HTTP responses, as
//! RFC 9457 problem+json ([`basketry_http::Problem`]).
//!
//! The edge's errors (authentication, rate limits, the
//! `X-Consistency-Token`) are [`EdgeError`]s and render as `basketry_http`
//! maps them, so both APIs answer them identically; so do 400, 404 and 422
//! with field errors, built on the same [`Problem`]. Each variant of
//! [`QueryError`] documents its status and `code`. A database failure never
//! reaches the client: it is logged and answered 503 (retry) or 500 (a
//! bug), without detail.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use basketry_domain::ValidationErrors;
use basketry_http::{AuthError, EdgeError, Problem};
use basketry_store::StoreError;

/// Everything a query can fail with, as seen by HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Refused at the edge (status and `code` as [`EdgeError`] maps them).
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// 400 with a stable `code`: a parameter or header that cannot be read.
    #[error("{detail}")]
    BadRequest {
        /// Stable snake_case identifier.
        code: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// 422 `validation_failed`, listing the parameters as `errors`.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// 404 `not_found`: no such resource, or not the caller's.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
    },
    /// 503 `consistency_timeout` with `Retry-After: 1` — the projectors did
    /// not reach the request's `X-Consistency-Token` within the wait.
    #[error("the read models have not caught up with the consistency token yet; retry shortly")]
    ConsistencyTimeout,
    /// 503 `service_unavailable` when the event store is down, 500
    /// `internal_error` otherwise; the cause is logged, never sent.
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// 503 `service_unavailable` or 500 `internal_error`, depending on the
    /// kind of failure (see [`is_transient`]); the cause is logged, never
    /// sent.
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
        QueryError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// 422 `validation_failed` naming one query parameter.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        QueryError::Invalid(ValidationErrors::single(field, message.into()))
    }

    /// 404 `not_found`.
    pub fn not_found(what: &'static str) -> Self {
        QueryError::NotFound { what }
    }

    /// 403 `forbidden`.
    pub fn forbidden() -> Self {
        AuthError::Forbidden.into()
    }

    /// The error as a problem.
    pub fn to_problem(&self) -> Problem {
        match self {
            QueryError::Edge(e) => e.problem(),
            QueryError::BadRequest { code, detail } => {
                Problem::new(StatusCode::BAD_REQUEST, code, detail.clone())
            }
            QueryError::Invalid(errors) => Problem::validation(errors),
            QueryError::NotFound { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "not_found", self.to_string())
            }
            QueryError::ConsistencyTimeout => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "consistency_timeout",
                self.to_string(),
            )
            .retry_after(1),
            QueryError::Store(StoreError::Unavailable(detail)) => Problem::unavailable(detail),
            QueryError::Store(StoreError::Invalid(detail)) => Problem::internal(detail),
            QueryError::Store(StoreError::Corrupt(detail)) => {
                Problem::internal(&format!("corrupt event: {detail}"))
            }
            QueryError::Database(e) if is_transient(e) => {
                Problem::unavailable(&format!("read database: {e}"))
            }
            QueryError::Database(e) => Problem::internal(&format!("read database: {e}")),
            QueryError::Sqlite(e) if is_transient_sqlite(e) => {
                Problem::unavailable(&format!("read database: {e}"))
            }
            QueryError::Sqlite(e) => Problem::internal(&format!("read database: {e}")),
            QueryError::Corrupt(detail) => {
                Problem::internal(&format!("corrupt read model: {detail}"))
            }
        }
    }

    /// The response as parts: status, headers and the problem+json body.
    pub fn problem(&self) -> (StatusCode, Vec<(&'static str, String)>, String) {
        self.to_problem().parts()
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
        self.to_problem().status
    }

    fn error_response(&self) -> HttpResponse {
        self.to_problem().response()
    }
}

impl From<AuthError> for QueryError {
    fn from(e: AuthError) -> Self {
        QueryError::Edge(e.into())
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
