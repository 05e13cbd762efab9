//! The query API's part of the OpenAPI 3.1 document.
//!
//! Every handler carries `#[utoipa::path(...)]`; [`QueryApiDoc`] collects
//! them. The answers are JSON built from read-model rows, so their shapes
//! are described here by documentation-only types (never built); the
//! black-box test `openapi` (`tests/api/openapi.rs`) checks real answers
//! against them with [`basketry_command_api::openapi::shape`]. Shapes shared
//! with the command API (`Basket`, `Subscription`, `ApiKey`, …) are the
//! command API's.
//!
//! What [`crate::request::run`] gives every query — the optional
//! `X-Consistency-Token` request header, partners' rate-limit headers — is
//! added by the [`QueryConventions`] modifier. Query parameters are
//! [`IntoParams`] types; the unit test below checks that each route's
//! documented parameters are exactly the ones its handler accepts (the
//! `…_PARAMS` lists it passes to [`crate::params::Params::of`]).

use basketry_command_api::openapi::schemas::{
    self, ApiKey, ApiKeyStatus, Basket, DifficultyLevel, Pricing, PricingType, Strategy,
    Subscription, SubscriptionStatus, Visibility,
};
use basketry_command_api::openapi::{
    add_parameter, allows_partner, header_parameter, operations_mut, rate_limit_headers,
    SecurityAddon,
};
use chrono::{DateTime, NaiveDate, Utc};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use uuid::Uuid;

/// The query API's operations and components.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::marketplace::list_templates,
        crate::marketplace::get_template,
        crate::marketplace::admin_templates,
        crate::subscriptions::template_subscribers,
        crate::execution::plan,
        crate::baskets::list_baskets,
        crate::baskets::get_basket,
        crate::subscriptions::list_user_subscriptions,
        crate::subscriptions::get_user_subscription,
        crate::subscriptions::list_partner_subscriptions,
        crate::subscriptions::get_partner_subscription,
        crate::ledger::partner_ledger,
        crate::ledger::partner_statement,
        crate::ledger::admin_ledger,
        crate::api_keys::list_api_keys,
        crate::api_keys::get_api_key,
        crate::audit::stream_events,
        crate::audit::log_events,
    ),
    components(
        // Schemas only parameters refer to (utoipa collects the others).
        schemas(schemas::Problem, schemas::FieldError, TemplateSort),
        responses(
            schemas::BadRequest,
            schemas::Unauthorized,
            schemas::Forbidden,
            schemas::NotFound,
            schemas::Conflict,
            schemas::PayloadTooLarge,
            schemas::UnsupportedMediaType,
            schemas::UnprocessableEntity,
            schemas::TooManyRequests,
            schemas::InternalError,
            schemas::ServiceUnavailable,
        )
    ),
    modifiers(&SecurityAddon, &QueryConventions)
)]
pub struct QueryApiDoc;

/// What [`crate::request::run`] gives every query: the optional
/// `X-Consistency-Token` request header, and partners' rate-limit headers
/// on the answers of the routes partners may call.
pub struct QueryConventions;

impl Modify for QueryConventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                add_parameter(
                    operation,
                    header_parameter(
                        "X-Consistency-Token",
                        "The `X-Consistency-Token` a command answered with: the query waits \
                         (at most 3 s) until the read models include that command, else \
                         answers 503 `consistency_timeout` with `Retry-After`.",
                        None,
                    ),
                );
                if !allows_partner(operation) {
                    continue;
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                        for (name, header) in rate_limit_headers() {
                            response.headers.insert(name.into(), header);
                        }
                    }
                }
            }
        }
    }
}

// -------------------------------------------------------------- parameters

/// Cursor paging.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100, example = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (opaque).
    pub cursor: Option<String>,
}

/// The order of `GET /marketplace/templates` (any case).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TemplateSort {
    /// `subscriber_count` descending (the default).
    Popular,
    /// Latest first publication first.
    Newest,
    /// `monthly_fee` ascending.
    Price,
}

/// Filters of `GET /marketplace/templates`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TemplateFilters {
    /// The marketplace category (any case), e.g. `INCOME`.
    #[param(pattern = "^[A-Za-z0-9_]{1,64}$", example = "INCOME")]
    pub category: Option<String>,
    pub difficulty_level: Option<DifficultyLevel>,
    /// A tag the template has (any case).
    #[param(pattern = "^[A-Za-z0-9_]{1,64}$", example = "NIFTY")]
    pub tag: Option<String>,
    pub pricing_type: Option<PricingType>,
    /// Case-insensitive substring of the name (at most 100 characters; `%`
    /// and `_` match themselves).
    #[param(max_length = 100, example = "straddle")]
    pub q: Option<String>,
    pub sort: Option<TemplateSort>,
}

/// The status filter of subscription lists (any case).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusFilter {
    pub status: Option<SubscriptionStatus>,
}

/// The period of a ledger query, by the lines' `period_start` (UTC dates,
/// both inclusive).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerRange {
    /// `YYYY-MM-DD`, inclusive.
    pub from: Option<NaiveDate>,
    /// `YYYY-MM-DD`, inclusive; not before `from`.
    pub to: Option<NaiveDate>,
}

/// One partner's lines only (direct subscriptions have none).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartnerFilter {
    /// A partner id (any case), e.g. `ZEBU`.
    #[param(pattern = "^[A-Za-z0-9_]{1,64}$", example = "ZEBU")]
    pub partner_id: Option<String>,
}

/// The status filter of the key list (any case).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyStatusFilter {
    pub status: Option<ApiKeyStatus>,
}

// ---------------------------------------------------------------- answers

/// A marketplace template: identity, configuration and popularity.
#[derive(ToSchema)]
pub struct TemplateItem {
    pub template_id: Uuid,
    /// Equal to `template_id`.
    pub basket_id: Uuid,
    pub name: String,
    pub description: String,
    /// The marketplace category.
    pub category: String,
    #[schema(nullable)]
    pub difficulty_level: DifficultyLevel,
    pub tags: Vec<String>,
    #[schema(nullable)]
    pub pricing: Pricing,
    #[schema(nullable)]
    pub visibility: Visibility,
    /// Published and not disabled.
    pub enabled: bool,
    /// Equal to `enabled`.
    pub is_template: bool,
    /// Subscriptions not cancelled.
    pub subscriber_count: u64,
    pub strategy_count: u32,
    pub basket_revision: u64,
    /// First publication.
    #[schema(nullable)]
    pub published_at: DateTime<Utc>,
}

/// A page of templates.
#[derive(ToSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateItem>,
    /// `null` on the last page.
    #[schema(nullable)]
    pub next_cursor: String,
}

/// What anyone may see of a template's strategy: what runs when, not the
/// legs.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyPreview {
    pub strategy_id: Uuid,
    pub name: String,
    pub underlying: String,
    pub product: schemas::Product,
    pub entry_time: String,
    pub exit_time: String,
    pub trading_days: Vec<schemas::TradingDay>,
    pub leg_count: u32,
}

/// A full strategy, for the template's owner, admins and executors.
#[derive(ToSchema)]
pub struct FullStrategy {
    #[serde(flatten)]
    pub strategy: Strategy,
    pub leg_count: u32,
}

/// A template's strategy: a preview, or in full for the owner, admins and
/// executors.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum TemplateStrategy {
    Preview(StrategyPreview),
    Full(FullStrategy),
}

/// A template with its strategies.
#[derive(ToSchema)]
pub struct TemplateDetail {
    #[serde(flatten)]
    pub item: TemplateItem,
    pub strategies: Vec<TemplateStrategy>,
    /// Performance metrics, `null` when none.
    #[schema(value_type = Object, nullable)]
    pub performance_metrics: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

/// A page of baskets.
#[derive(ToSchema)]
pub struct BasketList {
    pub baskets: Vec<Basket>,
    #[schema(nullable)]
    pub next_cursor: String,
}

/// A page of subscriptions.
#[derive(ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<Subscription>,
    #[schema(nullable)]
    pub next_cursor: String,
}

/// An ACTIVE subscriber of a template, as executors see it.
#[derive(ToSchema)]
pub struct Subscriber {
    pub subscription_id: Uuid,
    pub user_id: Uuid,
    #[schema(nullable)]
    pub partner_id: String,
    pub status: SubscriptionStatus,
    pub broker_allocations: Vec<schemas::Allocation>,
    pub created_at: DateTime<Utc>,
}

/// A page of a template's subscribers, oldest first.
#[derive(ToSchema)]
pub struct SubscriberList {
    pub template_id: Uuid,
    pub subscribers: Vec<Subscriber>,
    #[schema(nullable)]
    pub next_cursor: String,
}

/// The minute of an execution plan.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanAt {
    /// An RFC 3339 instant (any offset; encode `+` as `%2B`), planned as its
    /// minute in Asia/Kolkata (UTC+05:30), seconds dropped.
    #[param(example = "2026-11-23T09:20:00+05:30")]
    pub at: DateTime<Utc>,
}

/// Whether an order enters (`ENTRY`) or exits (`EXIT`) a strategy.
#[derive(ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PlanPhase {
    Entry,
    Exit,
}

/// `OPEN` on entry; `CLOSE` on exit (the order reverses its leg).
#[derive(ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PositionEffect {
    Open,
    Close,
}

/// Whom an order trades for: the basket's owner on their own basket, or a
/// subscription through one of its allocations.
#[derive(ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderSource {
    Owner,
    Subscription,
}

/// `order`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    Order,
}

/// `skipped`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SkippedKind {
    Skipped,
}

/// `end`.
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndKind {
    End,
}

/// Why nothing is traded: `no_allocation` (the subscription has none) or
/// `zero_lots` (`floor(leg lots × lot_multiplier)` is 0).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipCode {
    NoAllocation,
    ZeroLots,
}

/// One order to place.
#[derive(ToSchema)]
pub struct PlanOrder {
    #[serde(rename = "type")]
    pub kind: OrderKind,
    pub phase: PlanPhase,
    pub position_effect: PositionEffect,
    pub source: OrderSource,
    pub basket_id: Uuid,
    /// Equal to `basket_id` for a subscription; `null` for the owner.
    #[schema(nullable)]
    pub template_id: Uuid,
    pub basket_revision: u64,
    pub strategy_id: Uuid,
    pub strategy_name: String,
    pub underlying: String,
    pub product: schemas::Product,
    /// The subscriber, or the owner.
    pub user_id: Uuid,
    /// `null` for the owner.
    #[schema(nullable)]
    pub subscription_id: Uuid,
    #[schema(nullable)]
    pub partner_id: String,
    /// `null` for the owner, who has no allocation.
    #[schema(nullable)]
    pub allocation_id: Uuid,
    #[schema(nullable)]
    pub broker_id: String,
    #[schema(nullable)]
    pub client_id: String,
    /// The allocation's multiplier; 1 for the owner.
    #[schema(example = 2.5)]
    pub lot_multiplier: f64,
    /// The allocation's; 50 for the owner.
    pub max_lots_per_order: u32,
    /// The leg's place in the strategy, from 0.
    pub leg_index: u32,
    /// What this order does: the leg's action on entry, its reverse on exit.
    pub action: schemas::LegAction,
    /// The leg's own action.
    pub leg_action: schemas::LegAction,
    pub option_type: schemas::OptionType,
    #[schema(example = "ATM+1")]
    pub strike: String,
    pub expiry: schemas::Expiry,
    /// The leg's lots.
    pub leg_lots: u32,
    /// `floor(leg_lots × lot_multiplier)`: the lots of every slice together.
    pub total_lots: u64,
    /// This order's lots, at most `max_lots_per_order`.
    pub lots: u64,
    /// Which slice of `total_lots` this order is, from 1.
    pub slice: u32,
    pub slices: u32,
}

/// What the plan does not trade, and why.
#[derive(ToSchema)]
pub struct PlanSkipped {
    #[serde(rename = "type")]
    pub kind: SkippedKind,
    pub phase: PlanPhase,
    pub basket_id: Uuid,
    pub template_id: Uuid,
    pub strategy_id: Uuid,
    pub user_id: Uuid,
    pub subscription_id: Uuid,
    #[schema(nullable)]
    pub partner_id: String,
    /// The allocation of a `zero_lots` entry.
    #[schema(nullable)]
    pub allocation_id: Uuid,
    /// The leg of a `zero_lots` entry.
    #[schema(nullable)]
    pub leg_index: u32,
    pub code: SkipCode,
    pub reason: String,
}

/// The plan of one minute.
#[derive(ToSchema)]
pub struct Plan {
    /// The instant asked for.
    pub at: DateTime<Utc>,
    /// The planned minute, Asia/Kolkata.
    #[schema(example = "2026-11-23T09:20:00+05:30")]
    pub minute: DateTime<Utc>,
    /// `null` on Saturday and Sunday (no plan).
    #[schema(nullable)]
    pub weekday: schemas::TradingDay,
    /// Exits first, then by basket, strategy, the owner before subscriptions
    /// oldest first, allocation priority, leg and slice.
    pub orders: Vec<PlanOrder>,
    /// In the same order.
    pub skipped: Vec<PlanSkipped>,
    pub order_count: u64,
    pub skipped_count: u64,
}

/// The last line of the ndjson form; a stream without it was cut short.
#[derive(ToSchema)]
pub struct PlanEnd {
    #[serde(rename = "type")]
    pub kind: EndKind,
    pub at: DateTime<Utc>,
    #[schema(example = "2026-11-23T09:20:00+05:30")]
    pub minute: DateTime<Utc>,
    #[schema(nullable)]
    pub weekday: schemas::TradingDay,
    pub order_count: u64,
    pub skipped_count: u64,
}

/// One line of the `application/x-ndjson` form: the orders, then the
/// skipped entries, then the `end` line.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum PlanLine {
    Order(PlanOrder),
    Skipped(PlanSkipped),
    End(PlanEnd),
}

/// One ledger line: one charge of one billing period.
#[derive(ToSchema)]
pub struct LedgerEntry {
    /// The `SubscriptionCharged` event.
    pub event_id: Uuid,
    /// `commit.prepare`: the charge's place in the global log.
    #[schema(example = "42.42")]
    pub position: String,
    pub commit_position: i64,
    pub prepare_position: i64,
    pub subscription_id: Uuid,
    pub template_id: Uuid,
    pub user_id: Uuid,
    /// `null` for a direct subscription.
    #[schema(nullable)]
    pub partner_id: String,
    /// Which billing period of the subscription (0 first).
    pub period_index: i64,
    /// The line's date.
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    pub partner_bps: i64,
    pub platform_bps: i64,
    pub partner_share: i64,
    pub platform_share: i64,
    pub recorded_at: DateTime<Utc>,
}

/// The sums over the whole requested range. With no line: zeros and
/// `currency: null`; over several currencies: all `null` (see
/// `totals_by_currency`).
#[derive(ToSchema)]
pub struct LedgerTotals {
    #[schema(nullable)]
    pub gross: i64,
    #[schema(nullable)]
    pub platform_share: i64,
    #[schema(nullable)]
    pub partner_share: i64,
    #[schema(nullable)]
    pub currency: String,
}

/// The sums of one currency's lines.
#[derive(ToSchema)]
pub struct CurrencyTotals {
    pub gross: i64,
    pub platform_share: i64,
    pub partner_share: i64,
    pub currency: String,
}

/// A page of ledger lines with the totals of the whole range.
#[derive(ToSchema)]
pub struct Ledger {
    /// In log order.
    pub entries: Vec<LedgerEntry>,
    pub totals: LedgerTotals,
    /// One per currency, alphabetical.
    pub totals_by_currency: Vec<CurrencyTotals>,
    /// Lines in the whole range.
    pub entry_count: i64,
    #[schema(nullable)]
    pub next_cursor: String,
}

/// A partner's monthly statement with the digest of its lines.
#[derive(ToSchema)]
pub struct Statement {
    pub partner_id: String,
    /// `YYYY-MM`.
    #[schema(example = "2026-10")]
    pub month: String,
    /// The month's first day.
    pub from: NaiveDate,
    /// The month's last day.
    pub to: NaiveDate,
    /// Every line of the month, in log order.
    pub entries: Vec<LedgerEntry>,
    pub totals: LedgerTotals,
    pub totals_by_currency: Vec<CurrencyTotals>,
    pub entry_count: i64,
    /// The canonical form the digest is over (1).
    pub canonical_form_version: u32,
    /// `sha256`.
    #[schema(example = "sha256")]
    pub digest_algorithm: String,
    /// Lower-case hex SHA-256 of the canonical lines (see the ledger
    /// documentation).
    pub digest: String,
}

/// How much a key was used.
#[derive(ToSchema)]
pub struct KeyUsage {
    pub request_count: i64,
}

/// A key as admins list it, with its usage; never the secret.
#[derive(ToSchema)]
pub struct ApiKeyWithUsage {
    #[serde(flatten)]
    pub key: ApiKey,
    /// `null` when never used.
    #[schema(nullable)]
    pub last_used_at: DateTime<Utc>,
    pub usage: KeyUsage,
}

/// A page of keys.
#[derive(ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyWithUsage>,
    #[schema(nullable)]
    pub next_cursor: String,
}

/// Paging of the global log.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPage {
    /// Only events strictly after this log position (`commit.prepare`, or a
    /// bare integer `n` for `n.n`); the previous page's `next_cursor`.
    #[param(example = "1042.1042")]
    pub after: Option<String>,
    /// Events per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// Who caused an event.
#[derive(ToSchema)]
pub struct AuditActor {
    /// `user`, `admin`, `partner` or `system`.
    pub kind: String,
    pub id: String,
}

/// An event's metadata, with its link of the stream's hash chain.
#[derive(ToSchema)]
pub struct AuditMetadata {
    pub actor: AuditActor,
    pub correlation_id: Uuid,
    #[schema(nullable)]
    pub causation_id: Uuid,
    #[schema(nullable)]
    pub idempotency_key: String,
    pub recorded_at: DateTime<Utc>,
    /// Lower-case hex SHA-256 of the previous event of the stream (64 zeros
    /// for the first).
    pub prev_hash: String,
    /// Lower-case hex SHA-256 over `prev_hash` and this event's canonical
    /// form.
    pub hash: String,
}

/// A recorded event.
#[derive(ToSchema)]
pub struct AuditEvent {
    pub event_id: Uuid,
    pub stream_id: String,
    /// Its place in its stream, from 0.
    pub revision: i64,
    /// `commit.prepare`.
    #[schema(example = "1042.1042")]
    pub position: String,
    pub commit_position: i64,
    pub prepare_position: i64,
    /// PascalCase past tense, e.g. `SubscribedToTemplate`.
    pub event_type: String,
    pub schema_version: i64,
    /// The event's data as stored.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub metadata: AuditMetadata,
}

/// A page of one stream.
#[derive(ToSchema)]
pub struct AuditStream {
    pub stream_id: String,
    pub events: Vec<AuditEvent>,
    #[schema(nullable)]
    pub next_cursor: String,
}

/// A page of the global log.
#[derive(ToSchema)]
pub struct AuditEventList {
    pub events: Vec<AuditEvent>,
    /// The position to pass as the next `after`; `null` at the end of the
    /// log.
    #[schema(nullable)]
    pub next_cursor: String,
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::to_value(QueryApiDoc::openapi()).expect("the document serialises")
    }

    #[test]
    fn documented_query_parameters_are_the_ones_each_handler_accepts() {
        let accepted: BTreeMap<&str, &[&str]> = BTreeMap::from([
            (
                "/marketplace/templates",
                crate::marketplace::LIST_TEMPLATES_PARAMS,
            ),
            (
                "/admin/marketplace/templates",
                crate::marketplace::ADMIN_TEMPLATES_PARAMS,
            ),
            (
                "/execution/templates/{id}/subscribers",
                crate::subscriptions::SUBSCRIBERS_PARAMS,
            ),
            ("/execution/plan", crate::execution::PLAN_PARAMS),
            ("/baskets", crate::baskets::LIST_BASKETS_PARAMS),
            ("/user/subscriptions", crate::subscriptions::LIST_PARAMS),
            ("/partner/subscriptions", crate::subscriptions::LIST_PARAMS),
            ("/partner/ledger", crate::ledger::PARTNER_LEDGER_PARAMS),
            (
                "/partner/statements/{month}",
                crate::ledger::STATEMENT_PARAMS,
            ),
            ("/admin/ledger", crate::ledger::ADMIN_LEDGER_PARAMS),
            (
                "/admin/partner-api-keys",
                crate::api_keys::LIST_API_KEYS_PARAMS,
            ),
            ("/audit/streams/{stream_id}", crate::audit::STREAM_PARAMS),
            ("/audit/events", crate::audit::EVENTS_PARAMS),
        ]);
        let doc = doc();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let op = &item["get"];
            let documented: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let handled: BTreeSet<&str> = accepted
                .get(path.as_str())
                .map(|names| names.iter().copied().collect())
                .unwrap_or_default();
            assert_eq!(documented, handled, "GET {path}");
        }
    }

    #[test]
    fn the_route_table_and_the_annotations_agree() {
        let doc = doc();
        let registered: BTreeSet<(String, String)> = crate::endpoints()
            .iter()
            .map(|e| (e.method.as_str().to_ascii_lowercase(), e.path.to_string()))
            .collect();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        assert_eq!(registered, documented);
    }

    #[test]
    fn every_query_documents_what_run_gives_it() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let at = format!("{method} {path}");
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "X-Consistency-Token" && p["in"] == "header"),
                    "{at}"
                );
                let path_names: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                    .collect();
                let path_params: BTreeSet<&str> = params
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                assert_eq!(path_names, path_params, "{at}");
                assert!(op["security"].is_array(), "{at}: no security");
                let responses = op["responses"].as_object().expect("responses");
                for status in [200, 400, 401, 403, 429, 500, 503] {
                    assert!(
                        responses.contains_key(&status.to_string()),
                        "{at}: {status}"
                    );
                }
                for (status, response) in responses.iter().filter(|(s, _)| *s != "200") {
                    let resolved = basketry_command_api::openapi::shape::resolve(&doc, response);
                    let body = &resolved["content"]["application/problem+json"]["schema"];
                    assert_eq!(
                        basketry_command_api::openapi::shape::ref_name(body),
                        Some("Problem"),
                        "{at} {status}"
                    );
                }
            }
        }
    }
}
