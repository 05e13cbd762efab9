//! The query API's part of the OpenAPI 3.1 document.
//!
//! Every handler carries `#[utoipa::path(...)]`; [`QueryApiDoc`] collects
//! them. The answers are the typed shapes of [`basketry_http::shapes`],
//! built from read-model rows, the same types the command API answers
//! with; the error responses are the shared
//! [`ErrorComponents`](basketry_http::shapes::ErrorComponents).
//!
//! What [`crate::request::run`] gives every query — the optional
//! `X-Consistency-Token` request header, partners' rate-limit headers — is
//! added by the [`QueryConventions`] modifier. Query parameters are
//! [`IntoParams`] types; the unit test below checks that each route's
//! documented parameters are exactly the ones its handler accepts (the
//! `…_PARAMS` lists it passes to [`crate::params::Params::of`]).

use basketry_http::openapi::{
    add_parameter, allows_partner, header_parameter, operations_mut, rate_limit_headers,
    SecurityAddon,
};
use basketry_http::shapes::{
    ApiKeyStatus, DifficultyLevel, ErrorComponents, PricingType, SubscriptionStatus,
};
use chrono::{DateTime, NaiveDate, Utc};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

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
        schemas(TemplateSort),
    ),
    modifiers(&ErrorComponents, &SecurityAddon, &QueryConventions)
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

/// The minute of an execution plan.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanAt {
    /// An RFC 3339 instant (any offset; encode `+` as `%2B`), planned as its
    /// minute in Asia/Kolkata (UTC+05:30), seconds dropped.
    #[param(example = "2026-11-23T09:20:00+05:30")]
    pub at: DateTime<Utc>,
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::to_value(QueryApiDoc::openapi()).expect("the document serialises")
    }

    /// What a `$ref` (`#/components/…`) points to; `node` itself when it
    /// is not a reference.
    fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
        node.get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| doc.pointer(pointer))
            .unwrap_or(node)
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
                    let resolved = resolve(&doc, response);
                    let body = &resolved["content"]["application/problem+json"]["schema"];
                    assert_eq!(
                        body["$ref"], "#/components/schemas/Problem",
                        "{at} {status}"
                    );
                }
            }
        }
    }
}
