//! Basketry's OpenAPI 3.1 document — both APIs and the operational routes
//! — and the docs rendered from it.
//!
//! * [`document`] merges the command API's
//!   ([`basketry_command_api::openapi::CommandApiDoc`]) and the query API's
//!   ([`basketry_query_api::openapi::QueryApiDoc`]) documents, generated
//!   from their handlers' `#[utoipa::path]` annotations, with the
//!   operational routes documented here ([`BINARY_ROUTES`] and this crate's
//!   own) and the binary's `X-Request-Id`, and sets the title, the
//!   conventions and the tags.
//! * [`configure`] serves it: `GET /openapi.json`, and `GET /docs`, an HTML
//!   page rendered on the server from the document (inline CSS, no script,
//!   no external asset; see [`html`]).
//!
//! The tests in `tests/document.rs` keep it complete and valid: every
//! route of the route tables (and [`BINARY_ROUTES`]) is documented and
//! nothing else; it validates as OpenAPI 3.1 with `openapi-spec-validator`
//! when that is installed (required when
//! `BASKETRY_REQUIRE_OPENAPI_VALIDATOR=1`); every error answer is a
//! `Problem`.

pub mod html;
pub mod ordered;

use std::sync::OnceLock;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use basketry_command_api::openapi::{
    add_parameter, header_parameter, operations_mut, string_header, CommandApiDoc,
};
use basketry_command_api::routes::Endpoint;
use basketry_query_api::openapi::QueryApiDoc;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{InfoBuilder, LicenseBuilder, RefOr};
use utoipa::{OpenApi, ToSchema};

/// Routes the `basketry` binary registers itself (`src/startup.rs`), which
/// this crate documents: `(method, path)`.
pub const BINARY_ROUTES: &[(&str, &str)] =
    &[("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")];

/// The document's introduction: the conventions of every endpoint.
const INTRODUCTION: &str = "\
The backend of a B2B2C marketplace of options-strategy baskets: admins publish baskets as \
templates, people subscribe to them by reference, partners (brokers) subscribe their customers \
and reconcile their revenue share against the ledger. Commands change state (the command API); \
queries read the read models the projectors keep (the query API). Both are served on one port.

JSON in and out. Errors are RFC 9457 `application/problem+json` (the `Problem` schema) with a \
stable snake_case `code` and, for validation, `errors: [{field, message}]`. Statuses: 400 \
malformed, 401 unauthenticated, 403 not allowed, 404 not found or not yours, 409 conflict, 413 \
body over 64 KiB, 415 not JSON, 422 invalid, 429 rate limited, 503 a dependency is down.

Money is integer minor units (paise) with its `currency` beside it: `monthly_fee: 99900` is \
₹999.00. Revenue shares are percentages with at most two decimals. Enumerations are upper-case; \
timestamps are RFC 3339 UTC, dates `YYYY-MM-DD`.

Every command accepts `Idempotency-Key` (a retry replays the first response for 24 h) and \
answers `X-Consistency-Token`; a query that sends that token back waits until the read models \
include the command. Lists are cursor-paged: `limit` (1–100, default 20) and `cursor`; replies \
carry `next_cursor` (`null` at the end). Answers to partners carry `RateLimit-Policy` and \
`RateLimit`; a 429 or 503 carries `Retry-After`.";

/// The tags, in the order the docs show them.
const TAGS: &[(&str, &str)] = &[
    (
        "Baskets",
        "A person's baskets of scheduled options strategies.",
    ),
    (
        "Templates",
        "Admins publish their baskets as marketplace templates and manage them.",
    ),
    (
        "Marketplace",
        "Browsing templates: people, and partners with `marketplace:read`.",
    ),
    (
        "Subscriptions",
        "People subscribe to templates by reference and manage their subscriptions.",
    ),
    (
        "Partner API",
        "Partners (brokers) subscribe their customers and manage the subscriptions they created.",
    ),
    (
        "Ledger",
        "The revenue-share ledger, CSV exports and monthly statements with their digest.",
    ),
    (
        "Partner keys",
        "Admins register partners and issue, rotate, suspend and revoke their API keys.",
    ),
    ("Billing", "The billing run."),
    ("Execution", "What executors need to place orders."),
    (
        "Audit",
        "The event log itself, with every event's metadata and hash-chain link: admins and auditors.",
    ),
    (
        "Operations",
        "Health, readiness, metrics and this documentation; no authentication.",
    ),
];

/// `GET /healthz`'s body.
#[derive(ToSchema)]
pub struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// One projector's progress.
#[derive(ToSchema)]
pub struct ProjectorLag {
    pub name: String,
    /// Events of the log it has not applied yet.
    pub lag_events: i64,
    /// Age of the oldest event it has not applied.
    pub lag_seconds: f64,
    /// Within the readiness bound and without error.
    pub ready: bool,
}

/// `GET /readyz`'s body.
#[derive(ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub status: String,
    /// `ok` or `unavailable`.
    pub event_store: String,
    /// `ok` or `unavailable`.
    pub read_db: String,
    pub projectors: Vec<ProjectorLag>,
}

/// Liveness
///
/// 200 while the process is up. (Served by the `basketry` binary.)
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "Operations",
    responses((status = 200, description = "The process is up.", body = Health))
)]
#[allow(dead_code)]
fn healthz() {}

/// Readiness
///
/// 200 when the event store and the read database answer and every
/// projector is within 30 s of the log; 503 otherwise, with the same
/// report (not a `Problem`: the report says what is not ready). (Served by
/// the `basketry` binary.)
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "Operations",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (
            status = 503,
            description = "Not ready: a store is unreachable or a projector lags.",
            body = Readiness,
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again."))
        ),
    )
)]
#[allow(dead_code)]
fn readyz() {}

/// Metrics
///
/// Prometheus text: request latency histograms by route pattern, the event
/// store's head position, each projector's position and lag. (Served by
/// the `basketry` binary.)
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Operations",
    responses((
        status = 200,
        description = "The Prometheus text exposition format, version 0.0.4.",
        content_type = "text/plain; version=0.0.4",
        body = String
    ))
)]
#[allow(dead_code)]
fn metrics() {}

/// This document
///
/// The OpenAPI 3.1 document of both APIs.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "Operations",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(document_json())
}

/// These docs
///
/// This page: the document rendered as HTML.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "Operations",
    responses((status = 200, description = "The API documentation.", content_type = "text/html", body = String))
)]
async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(docs_html())
}

/// The operational routes.
#[derive(OpenApi)]
#[openapi(paths(healthz, readyz, metrics, openapi_json, docs))]
struct OperationsDoc;

/// The whole document: both APIs and the operational routes.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = OperationsDoc::openapi();
    doc.merge(CommandApiDoc::openapi());
    doc.merge(QueryApiDoc::openapi());
    add_request_id(&mut doc);
    doc.info = InfoBuilder::new()
        .title("Basketry API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(INTRODUCTION))
        .license(Some(
            LicenseBuilder::new()
                .name("MIT")
                .identifier(Some("MIT"))
                .build(),
        ))
        .build();
    doc.tags = Some(
        TAGS.iter()
            .map(|(name, description)| {
                TagBuilder::new()
                    .name(*name)
                    .description(Some(*description))
                    .build()
            })
            .collect(),
    );
    doc
}

/// What the binary's request middleware gives every route (and its 404):
/// `X-Request-Id`, echoed when the request brings a valid one, generated
/// otherwise.
fn add_request_id(doc: &mut utoipa::openapi::OpenApi) {
    let parameter = header_parameter(
        "X-Request-Id",
        "Names the request in the server's logs; echoed on the response when it is 1–128 \
         visible ASCII characters, generated otherwise.",
        Some(128),
    );
    let header = || string_header("The request's id, as in the server's logs.");
    for item in doc.paths.paths.values_mut() {
        for operation in operations_mut(item) {
            add_parameter(operation, parameter.clone());
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response.headers.insert("X-Request-Id".into(), header());
                }
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        for response in components.responses.values_mut() {
            if let RefOr::T(response) = response {
                response.headers.insert("X-Request-Id".into(), header());
            }
        }
    }
}

/// [`document`] as pretty JSON, built once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// The docs page, rendered once from [`document_json`].
pub fn docs_html() -> &'static str {
    static HTML: OnceLock<String> = OnceLock::new();
    HTML.get_or_init(|| {
        let doc: ordered::Node =
            serde_json::from_str(document_json()).expect("the OpenAPI document is JSON");
        html::render(&doc)
    })
}

/// This crate's routes: `GET /openapi.json` and `GET /docs`.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/openapi.json", openapi_json),
        Endpoint::new(Method::GET, "/docs", docs),
    ]
}

/// Registers `GET /openapi.json` and `GET /docs` (no authentication).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for endpoint in endpoints() {
        endpoint.register(cfg);
    }
}
