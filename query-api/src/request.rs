//! What every query goes through, in order ([`run`]):
//!
//! 1. one token from the caller's per-minute and per-day buckets — a
//!    partner's own limits (one bucket per partner, whichever of its keys
//!    is used), a person's `BASKETRY_USER_RATE_LIMIT_PER_MINUTE`;
//!    the limiter, the bucket key and the clock are the ones the command API
//!    uses ([`basketry_http::admission`]), so one quota spans both APIs;
//!    `RateLimit-Policy` and `RateLimit` go on whatever the response turns
//!    out to be, and an empty bucket is 429 with `Retry-After`;
//! 2. with an `X-Consistency-Token`, the wait for the projectors
//!    ([`crate::consistency`]);
//! 3. the handler, whose [`Reply`] is rendered as JSON or CSV, or whose
//!    [`QueryError`] becomes problem+json.

use std::future::Future;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use basketry_http::admission::RateHeaders;
use basketry_http::Principal;
use serde_json::Value;

use crate::consistency::Token;
use crate::error::QueryError;
use crate::QueryState;

/// A successful query's body.
#[derive(Debug)]
pub enum Reply {
    /// `application/json`.
    Json(Value),
    /// `application/json`, already written ([`crate::render`]).
    JsonText(String),
    /// `text/csv; charset=utf-8`, with a suggested file name.
    Csv {
        /// The CSV text, header row first.
        body: String,
        /// `Content-Disposition` file name.
        filename: String,
    },
    /// `text/csv; charset=utf-8` sent as it is produced (chunked), with a
    /// suggested file name.
    CsvStream {
        /// The CSV text in chunks, header row first.
        body: ChunkStream,
        /// `Content-Disposition` file name.
        filename: String,
    },
}

/// A body produced while it is sent.
pub struct ChunkStream(
    pub futures::stream::BoxStream<'static, Result<actix_web::web::Bytes, QueryError>>,
);

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkStream")
    }
}

/// Takes one token from the caller's per-minute and per-day buckets
/// ([`basketry_http::admission::admit`], on the application's clock).
/// Returns the `RateLimit-Policy` and `RateLimit` headers for the answer,
/// or the finished 429 (or 503 when the limiter is unreachable). Streaming
/// routes that do not go through [`run`] call it first too.
pub async fn admit(state: &QueryState, principal: &Principal) -> Result<RateHeaders, HttpResponse> {
    basketry_http::admission::admit(
        state.rate_limiter.as_ref(),
        principal,
        state.user_rate_limit,
        state.clock.now(),
    )
    .await
}

/// Runs `handler` for `principal` with rate limits and the consistency
/// wait, and renders the outcome.
pub async fn run<F, Fut>(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
    handler: F,
) -> HttpResponse
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Reply, QueryError>>,
{
    let extra = match admit(state, principal).await {
        Ok(extra) => extra,
        Err(refused) => return refused,
    };
    let outcome = async {
        if let Some(token) = Token::from_headers(req.headers())? {
            state
                .checkpoints
                .wait_for(token, state.consistency_wait)
                .await?;
        }
        handler().await
    }
    .await;
    let response = match outcome {
        Ok(reply) => render(reply),
        Err(e) => e.error_response(),
    };
    extra.apply(response)
}

fn render(reply: Reply) -> HttpResponse {
    match reply {
        Reply::Json(body) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "application/json"))
            // Read models are personal and change constantly.
            .insert_header((CACHE_CONTROL, "no-store"))
            .body(body.to_string()),
        Reply::JsonText(body) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "application/json"))
            .insert_header((CACHE_CONTROL, "no-store"))
            .body(body),
        Reply::Csv { body, filename } => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/csv; charset=utf-8"))
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((
                "content-disposition",
                format!("attachment; filename=\"{filename}\""),
            ))
            .body(body),
        Reply::CsvStream { body, filename } => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/csv; charset=utf-8"))
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((
                "content-disposition",
                format!("attachment; filename=\"{filename}\""),
            ))
            .streaming(body.0),
    }
}

/// `response` with the rate-limit headers of its admission.
pub(crate) fn with_headers(response: HttpResponse, headers: &RateHeaders) -> HttpResponse {
    headers.apply(response)
}

/// Whether `req`'s `Accept` headers list `media` as acceptable (any `q`
/// but 0), matched without regard to case.
pub fn accepts(req: &HttpRequest, media: &str) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let listed = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "q=0" || p.starts_with("q=0.") && p[4..].bytes().all(|b| b == b'0')
            });
            listed.eq_ignore_ascii_case(media) && !refused
        })
}

/// Who is reading, as the read rules need it.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The person's `user_id` (lower-case hyphenated), `None` for a partner.
    pub user_id: Option<String>,
    /// In `Admins`.
    pub is_admin: bool,
    /// In `Executors` (or an admin).
    pub is_executor: bool,
}

impl Viewer {
    /// The viewer `principal` is.
    pub fn of(principal: &Principal) -> Self {
        match principal.person() {
            Some(person) => Self {
                user_id: Some(person.user_id.to_string()),
                is_admin: person.is_admin(),
                is_executor: person.is_executor(),
            },
            None => Self {
                user_id: None,
                is_admin: false,
                is_executor: false,
            },
        }
    }

    /// Whether this viewer is the person `owner_id`.
    pub fn owns(&self, owner_id: &str) -> bool {
        self.user_id.as_deref() == Some(owner_id)
    }
}
