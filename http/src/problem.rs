//! RFC 9457 `application/problem+json`: the one body every error response
//! of both APIs has.
//!
//! Every problem carries `type` (`https://basketry.dev/problems/<code>`),
//! `title` (the status's reason phrase), `status`, `detail` and a stable
//! snake_case `code` for clients to branch on, then any members of its own
//! (`errors` for field errors, `subscription_id`, `consistency_token`…).
//! Each API maps its own errors to a [`Problem`] in one place; the edge's
//! errors map in [`crate::error`].

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use basketry_domain::{FieldError, ValidationErrors};
use serde_json::{json, Map, Value};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response before it is sent: status, `code`, `detail`, members
/// of its own and headers besides `Content-Type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable snake_case identifier of the error.
    pub code: &'static str,
    /// What went wrong, for people; never a secret or a cause to hide.
    pub detail: String,
    /// Members after `code`, in order.
    pub members: Vec<(&'static str, Value)>,
    /// Headers after `Content-Type`, in order (`Retry-After`…).
    pub headers: Vec<(&'static str, String)>,
}

impl Problem {
    /// A problem with `status`, `code` and `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            members: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// 503 `service_unavailable` with `Retry-After: 1`: a store or
    /// dependency is down. `cause` is logged, never sent.
    pub fn unavailable(cause: &str) -> Self {
        tracing::warn!(%cause, "answering 503");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "a dependency is unavailable; retry later",
        )
        .retry_after(1)
    }

    /// 500 `internal_error`: a bug. `cause` is logged, never sent.
    pub fn internal(cause: &str) -> Self {
        tracing::error!(%cause, "answering 500");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred",
        )
    }

    /// 422 `validation_failed` listing `errors` as `errors: [{field,
    /// message}]`.
    pub fn validation(errors: &ValidationErrors) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            errors.to_string(),
        )
        .member("errors", field_errors(errors))
    }

    /// The same problem with the body member `name`.
    pub fn member(mut self, name: &'static str, value: Value) -> Self {
        self.members.push((name, value));
        self
    }

    /// The same problem with the header `name`.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The same problem with `Retry-After: secs`.
    pub fn retry_after(self, secs: u64) -> Self {
        self.header("retry-after", secs.to_string())
    }

    /// The response as parts: status, headers (`Content-Type` first) and
    /// the problem+json body.
    pub fn parts(&self) -> (StatusCode, Vec<(&'static str, String)>, String) {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("https://basketry.dev/problems/{}", self.code)),
        );
        body.insert(
            "title".into(),
            json!(self.status.canonical_reason().unwrap_or("Error")),
        );
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.insert("code".into(), json!(self.code));
        for (name, value) in &self.members {
            body.insert((*name).into(), value.clone());
        }
        let mut headers = vec![("content-type", PROBLEM_JSON.to_string())];
        headers.extend(self.headers.iter().cloned());
        (self.status, headers, Value::Object(body).to_string())
    }

    /// The response.
    pub fn response(&self) -> HttpResponse {
        let (status, headers, body) = self.parts();
        let mut response = HttpResponse::build(status);
        for (name, value) in headers {
            response.insert_header((name, value));
        }
        response.body(body)
    }
}

/// `errors: [{field, message}]` of a 422.
pub fn field_errors(errors: &ValidationErrors) -> Value {
    Value::Array(
        errors
            .errors()
            .iter()
            .map(|FieldError { field, message }| json!({"field": field, "message": message}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_has_the_standard_members_first_then_its_own() {
        let (status, headers, body) =
            Problem::new(StatusCode::CONFLICT, "already_subscribed", "taken")
                .member("subscription_id", json!("0190"))
                .retry_after(2)
                .parts();
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            headers,
            vec![
                ("content-type", PROBLEM_JSON.to_string()),
                ("retry-after", "2".to_string())
            ]
        );
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            body["type"],
            "https://basketry.dev/problems/already_subscribed"
        );
        assert_eq!(body["title"], "Conflict");
        assert_eq!(body["status"], 409);
        assert_eq!(body["detail"], "taken");
        assert_eq!(body["code"], "already_subscribed");
        assert_eq!(body["subscription_id"], "0190");
    }

    #[test]
    fn outages_and_bugs_never_send_their_cause() {
        for p in [
            Problem::unavailable("pool timed out at 10.0.0.7"),
            Problem::internal("secret_column missing"),
        ] {
            let (_, _, body) = p.parts();
            assert!(!body.contains("10.0.0.7") && !body.contains("secret_column"));
        }
        assert!(Problem::unavailable("x")
            .headers
            .contains(&("retry-after", "1".to_string())));
    }

    #[test]
    fn validation_lists_the_fields() {
        let p = Problem::validation(&ValidationErrors::single("limit", "too big"));
        let body: Value = serde_json::from_str(&p.parts().2).expect("json");
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["errors"][0]["field"], "limit");
        assert_eq!(body["detail"], "invalid input: limit: too big");
    }
}
