//! Basketry query API (actix-web): the read endpoints of SPEC §4's Queries
//! table over the read models the projectors keep
//! (`projections/migrations`), with keyset paging, partner rate limits and
//! read-your-writes waiting.
//!
//! * [`configure`] registers every route on an app beside the command API;
//!   the application also registers `web::Data<AuthState>` (the
//!   [`basketry_http::auth::Principal`] extractor reads it);
//! * [`marketplace`] — browsing templates, template details and the
//!   admin's templates;
//! * [`baskets`] — a person's own baskets;
//! * [`subscriptions`] — users' and partners' subscriptions, and template
//!   subscribers for executors;
//! * [`execution`] — the execution plan of a minute, streamed;
//! * [`ledger`] — the revenue-share ledger, CSV export and monthly
//!   statements with their digest (the canonical form is documented there);
//! * [`api_keys`] — partner keys, admin view;
//! * [`audit`] — the event log with its metadata, for admins and auditors;
//! * [`request`] — what every query goes through: rate limits for
//!   partners, the `X-Consistency-Token` wait, rendering;
//! * [`consistency`] — the `X-Consistency-Token` wait;
//! * [`paging`] — `limit` and opaque keyset cursors;
//! * [`params`] — strict query-string and path parameters;
//! * [`rows`] — the portable SQL builder and column readers;
//! * [`render`] — JSON written straight from rows into an answer;
//! * [`sqlite_reader`] — SQLite reads on the request's own thread;
//! * [`error`] — the one place query errors become problem+json;
//! * [`openapi`] — the OpenAPI 3.1 description of the routes.
//!
//! Every query is portable SQL, so the same code serves SQLite (embedded)
//! and PostgreSQL (production). The marketplace and basket routes run it
//! through sqlx's typed drivers ([`QueryState::read`]); the others still go
//! through its `Any` driver ([`QueryState::db`]).

pub mod api_keys;
pub mod audit;
pub mod baskets;
pub mod consistency;
pub mod error;
pub mod execution;
pub mod ledger;
pub mod marketplace;
pub mod openapi;
pub mod paging;
pub mod params;
pub mod render;
pub mod request;
pub mod rows;
pub mod sqlite_reader;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::web;
use basketry_http::clock::Clock;
use basketry_http::rate::{RateLimitPolicy, RateLimiter};
use basketry_http::route::Endpoint;
use basketry_store::EventStore;
use sqlx::AnyPool;

pub use error::QueryError;

/// How long a query with `X-Consistency-Token` waits by default (SPEC §4).
pub const DEFAULT_CONSISTENCY_WAIT: Duration = Duration::from_secs(3);

/// What the query side needs from the process; register it with
/// [`configure`].
pub struct QueryState {
    /// The read-model database (SQLite or PostgreSQL through `Any`).
    pub db: AnyPool,
    /// The same database through sqlx's typed drivers
    /// ([`basketry_projections::db::open_typed`]): the hot read paths
    /// (browsing, template details, baskets).
    pub read: basketry_projections::db::ReadPool,
    /// On SQLite, the hot read paths read on the request's own thread
    /// through this ([`sqlite_reader::SqliteReader::of`] the typed pool);
    /// `None` on PostgreSQL.
    pub sqlite_reader: Option<sqlite_reader::SqliteReader>,
    /// The event store, read by the audit routes ([`audit`]).
    pub store: Arc<dyn EventStore>,
    /// Partner rate limits: the same instance as the command API's, so a
    /// partner's quota spans both APIs.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Longest wait for the projectors to reach a consistency token before
    /// answering 503 (3 s in production, see [`DEFAULT_CONSISTENCY_WAIT`]).
    pub consistency_wait: Duration,
    /// The checkpoints a consistency token waits for (one watcher per
    /// process, shared by every waiting request).
    pub checkpoints: consistency::CheckpointWatcher,
    /// Every person's (JWT) rate limit, as the command API's.
    pub user_rate_limit: RateLimitPolicy,
    /// The time rate limits are counted at: the application's one clock,
    /// shared with the command API, so one limiter sees one time.
    pub clock: Clock,
}

/// The Queries table of SPEC §4: what [`configure`] registers.
///
/// Path parameters are named as the command API names them on the same
/// paths (`/baskets/{basket_id}`), so one path has one spelling in the
/// OpenAPI document.
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        Endpoint::new(
            M::GET,
            "/marketplace/templates",
            marketplace::list_templates,
        ),
        Endpoint::new(
            M::GET,
            "/marketplace/templates/{id}",
            marketplace::get_template,
        ),
        Endpoint::new(
            M::GET,
            "/admin/marketplace/templates",
            marketplace::admin_templates,
        ),
        Endpoint::new(
            M::GET,
            "/execution/templates/{id}/subscribers",
            subscriptions::template_subscribers,
        ),
        Endpoint::new(M::GET, "/execution/plan", execution::plan),
        Endpoint::new(M::GET, "/baskets", baskets::list_baskets),
        Endpoint::new(M::GET, "/baskets/{basket_id}", baskets::get_basket),
        Endpoint::new(
            M::GET,
            "/user/subscriptions",
            subscriptions::list_user_subscriptions,
        ),
        Endpoint::new(
            M::GET,
            "/user/subscriptions/{id}",
            subscriptions::get_user_subscription,
        ),
        Endpoint::new(
            M::GET,
            "/partner/subscriptions",
            subscriptions::list_partner_subscriptions,
        ),
        Endpoint::new(
            M::GET,
            "/partner/subscriptions/{id}",
            subscriptions::get_partner_subscription,
        ),
        Endpoint::new(M::GET, "/partner/ledger", ledger::partner_ledger),
        Endpoint::new(
            M::GET,
            "/partner/statements/{month}",
            ledger::partner_statement,
        ),
        Endpoint::new(M::GET, "/admin/ledger", ledger::admin_ledger),
        Endpoint::new(M::GET, "/admin/partner-api-keys", api_keys::list_api_keys),
        Endpoint::new(
            M::GET,
            "/admin/partner-api-keys/{api_key_id}",
            api_keys::get_api_key,
        ),
        Endpoint::new(M::GET, "/audit/streams/{stream_id}", audit::stream_events),
        Endpoint::new(M::GET, "/audit/events", audit::log_events),
    ]
}

/// Registers the query routes ([`endpoints`]), `state` and its clock (for
/// the [`basketry_http::Principal`] extractor) on an app.
/// `web::Data<AuthState>` must be registered too.
///
/// Routes are registered with method guards on their resources, so they
/// sit beside the command API's routes on the same paths (`GET /baskets`
/// and `POST /baskets`).
pub fn configure(state: web::Data<QueryState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clock.clone()))
            .app_data(state);
        for endpoint in endpoints() {
            endpoint.register(cfg);
        }
    }
}
