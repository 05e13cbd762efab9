//! The marketplace: browsing templates, one template's details, and the
//! admin's own templates.
//!
//! # `GET /marketplace/templates`
//! Any person; a partner needs `marketplace:read`. PUBLIC, enabled
//! templates. Filters: `category` (the marketplace category), `difficulty_level`,
//! `tag`, `pricing_type` (identifiers and enumerations in any case), `q`
//! (case-insensitive substring of the name; `%` and `_` match themselves).
//! `sort`: `popular` (default; `subscriber_count` descending), `newest`
//! (first publication, latest first) or `price` (`monthly_fee` ascending);
//! `template_id` breaks ties, so paging is deterministic.
//! Reply: `{"templates": [item…], "next_cursor"}` with items
//! `{template_id, basket_id, name, description, category, difficulty_level,
//! tags, pricing {type, monthly_fee, currency}, visibility, enabled,
//! is_template, subscriber_count, strategy_count, basket_revision,
//! published_at}`.
//!
//! # `GET /marketplace/templates/{id}`
//! The item plus `strategies`, `performance_metrics` (`null` if none) and
//! `updated_at`. Strategies are previews (`strategy_id, name, underlying,
//! product, entry_time, exit_time, trading_days, leg_count`) except for the
//! owner, admins and executors, who get full strategies (legs, stop loss,
//! target) plus `leg_count`. An enabled template is served by id whatever
//! its visibility (PRIVATE templates are subscribable by id). A disabled
//! template is 404 except to the owner and admins; a basket never
//! published is 404 except to its owner (admins do not read other people's
//! unpublished baskets: ADR 0005).
//!
//! # `GET /admin/marketplace/templates`
//! Admins: their own baskets that have ever been published, enabled or
//! not, latest first publication first; items as above.

use actix_web::{web, HttpRequest, HttpResponse};
use basketry_command_api::openapi::schemas;
use basketry_domain::partner::Permission;
use basketry_http::Principal;
use serde_json::{json, Value};

use crate::baskets::{
    full_strategies, read_basket, strategy_previews, DetailColumns, Details, TemplateItem,
    ITEM_COLUMNS,
};
use crate::error::QueryError;
use crate::openapi;
use crate::paging::{Dir, KeyValue, Kind, Ordering, PageRequest};
use crate::params::{path_uuid, Params};
use crate::render::JsonOut;
use crate::request::{run, Reply, Viewer};
use crate::rows::{like_escape, parse_json, Sql};
use crate::QueryState;

/// The query parameters of `GET /marketplace/templates` (the OpenAPI test
/// compares them with the documented ones).
pub const LIST_TEMPLATES_PARAMS: &[&str] = &[
    "category",
    "difficulty_level",
    "tag",
    "pricing_type",
    "q",
    "sort",
    "limit",
    "cursor",
];

/// The query parameters of `GET /admin/marketplace/templates`.
pub const ADMIN_TEMPLATES_PARAMS: &[&str] = &["limit", "cursor"];

/// `sort=popular`.
const POPULAR: Ordering = Ordering {
    name: "templates.popular",
    keys: &[
        ("b.subscriber_count", Dir::Desc, Kind::Int),
        ("b.basket_id", Dir::Asc, Kind::Text),
    ],
};

/// `sort=newest`.
const NEWEST: Ordering = Ordering {
    name: "templates.newest",
    keys: &[
        ("COALESCE(b.published_position, 0)", Dir::Desc, Kind::Int),
        ("b.basket_id", Dir::Asc, Kind::Text),
    ],
};

/// `sort=price`.
const PRICE: Ordering = Ordering {
    name: "templates.price",
    keys: &[
        ("COALESCE(b.monthly_fee, 0)", Dir::Asc, Kind::Int),
        ("b.basket_id", Dir::Asc, Kind::Text),
    ],
};

/// The admin's templates, latest first publication first.
const ADMIN: Ordering = Ordering {
    name: "admin_templates",
    keys: &[
        ("COALESCE(b.published_position, 0)", Dir::Desc, Kind::Int),
        ("b.basket_id", Dir::Asc, Kind::Text),
    ],
};

/// Longest `q` accepted.
const MAX_SEARCH_CHARS: usize = 100;

/// People browse; partners need `marketplace:read`.
fn require_browse(principal: &Principal) -> Result<(), QueryError> {
    if principal.partner().is_some() {
        principal.require_partner_permission(Permission::MarketplaceRead)?;
    }
    Ok(())
}

fn key_of(ordering: &Ordering, b: &TemplateItem<'_>) -> Vec<KeyValue> {
    let first = match ordering.name {
        "templates.popular" => b.subscriber_count,
        "templates.price" => b.monthly_fee.unwrap_or(0),
        _ => b.published_position.unwrap_or(0),
    };
    vec![
        KeyValue::Int(first),
        KeyValue::Text(b.basket_id.to_string()),
    ]
}

/// Runs a list of templates ([`ITEM_COLUMNS`]) and writes the page straight
/// from its rows: `{"next_cursor", "templates": [item…]}`.
async fn fetch_page(
    state: &QueryState,
    mut sql: Sql,
    page: &PageRequest,
) -> Result<Reply, QueryError> {
    page.push_tail(&mut sql);
    let ordering = page.ordering;
    // `LIMIT limit + 1`: a row past the page only says a next one exists.
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let mut items = JsonOut::with_capacity(640 * limit);
    let (mut shown, mut more, mut last_key) = (0usize, false, None);
    sql.read_each(state, |row| {
        if shown == limit {
            more = true;
            return Ok(());
        }
        let item = TemplateItem::read(row)?;
        if shown > 0 {
            items.raw(",");
        }
        item.write(&mut items, None)?;
        shown += 1;
        if shown == limit {
            last_key = Some(key_of(&ordering, &item));
        }
        Ok(())
    })
    .await?;
    let next_cursor = if more {
        last_key.map(|key| ordering.encode(key))
    } else {
        None
    };
    let items = items.finish();
    let mut out = JsonOut::with_capacity(items.len() + 128);
    out.raw("{\"next_cursor\":")
        .opt_str(next_cursor.as_deref())?
        .raw(",\"templates\":[")
        .raw(&items)
        .raw("]}");
    Ok(Reply::JsonText(out.finish()))
}

/// Browse the marketplace
///
/// PUBLIC, enabled templates, most popular first by default. People, and
/// partners with `marketplace:read`.
#[utoipa::path(
    get,
    path = "/marketplace/templates",
    tag = "Marketplace",
    params(
        openapi::TemplateFilters,
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of templates.", body = openapi::TemplateList),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = []), ("partner_key" = [], "partner_secret" = [])),
)]
pub async fn list_templates(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        list_templates_query(&state, &req, &principal)
    })
    .await
}

async fn list_templates_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    require_browse(principal)?;
    let params = Params::of(req, LIST_TEMPLATES_PARAMS)?;
    let ordering = match params.one_of("sort", &["POPULAR", "NEWEST", "PRICE"])? {
        None | Some("POPULAR") => POPULAR,
        Some("NEWEST") => NEWEST,
        Some(_) => PRICE,
    };
    let page = PageRequest::from_params(&params, ordering)?;

    let mut sql = Sql::new(&format!(
        "SELECT {ITEM_COLUMNS} FROM rm_baskets b \
         WHERE b.is_template = 1 AND b.visibility = 'PUBLIC'"
    ));
    if let Some(category) = params.identifier("category")? {
        sql.push(" AND b.template_category = ").bind(category);
    }
    if let Some(level) = params.one_of(
        "difficulty_level",
        &["BEGINNER", "INTERMEDIATE", "ADVANCED"],
    )? {
        sql.push(" AND b.difficulty_level = ").bind(level);
    }
    if let Some(kind) = params.one_of("pricing_type", &["FREE", "PAID"])? {
        sql.push(" AND b.pricing_type = ").bind(kind);
    }
    if let Some(tag) = params.identifier("tag")? {
        sql.push(
            " AND EXISTS (SELECT 1 FROM rm_template_tags t \
             WHERE t.template_id = b.basket_id AND t.tag = ",
        )
        .bind(tag)
        .push(")");
    }
    if let Some(q) = params.get("q").map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > MAX_SEARCH_CHARS {
            return Err(QueryError::invalid(
                "q",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            ));
        }
        let pattern = format!("%{}%", like_escape(&q.to_lowercase()));
        sql.push(" AND LOWER(b.name) LIKE ")
            .bind(pattern)
            .push(" ESCAPE '\\'");
    }
    fetch_page(state, sql, &page).await
}

/// The admin's templates
///
/// Admins: their own baskets that were ever published, enabled or not,
/// latest first publication first.
#[utoipa::path(
    get,
    path = "/admin/marketplace/templates",
    tag = "Templates",
    params(
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of templates.", body = openapi::TemplateList),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
pub async fn admin_templates(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        admin_templates_query(&state, &req, &principal)
    })
    .await
}

async fn admin_templates_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    let admin = principal.require_admin()?;
    let params = Params::of(req, ADMIN_TEMPLATES_PARAMS)?;
    let page = PageRequest::from_params(&params, ADMIN)?;
    let mut sql = Sql::new(&format!(
        "SELECT {ITEM_COLUMNS} FROM rm_baskets b \
         WHERE b.published_position IS NOT NULL AND b.owner_id = "
    ));
    sql.bind(admin.user_id.to_string());
    fetch_page(state, sql, &page).await
}

/// A template's details
///
/// Any enabled template by id (PRIVATE ones too). Strategies are previews
/// without legs, except for the owner, admins and executors, who get them
/// in full. A disabled template is 404 except to the owner and admins.
#[utoipa::path(
    get,
    path = "/marketplace/templates/{id}",
    tag = "Marketplace",
    params(
        ("id" = Uuid, Path, description = "The template id."),
    ),
    responses(
        (status = 200, description = "The template.", body = openapi::TemplateDetail),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = []), ("partner_key" = [], "partner_secret" = [])),
)]
pub async fn get_template(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        get_template_query(&state, &req, &principal)
    })
    .await
}

async fn get_template_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    require_browse(principal)?;
    let id = path_uuid(req, "id", "template")?;
    let viewer = Viewer::of(principal);
    read_basket(state, &id, |row| {
        let item = TemplateItem::read(row)?;
        let more = DetailColumns::read(row)?;
        let owner_id = more.owner_id.to_ascii_lowercase();
        if !visible(&viewer, &item, &owner_id) {
            return Ok(None);
        }
        let privileged = viewer.owns(&owner_id) || viewer.is_admin || viewer.is_executor;
        let rendered;
        let strategies = match (privileged, more.strategy_previews) {
            (false, Some(stored)) => stored,
            (privileged, _) => {
                let all = parse_json("strategies", more.strategies)?;
                rendered = if privileged {
                    with_leg_counts(full_strategies(&all))
                } else {
                    // A row projected before previews were stored.
                    strategy_previews(&all)
                }
                .to_string();
                &rendered
            }
        };
        let mut out = JsonOut::with_capacity(1024 + strategies.len());
        item.write(
            &mut out,
            Some(Details {
                performance_metrics: more.performance_metrics,
                strategies,
                updated_at: more.updated_at,
            }),
        )?;
        Ok(Some(Reply::JsonText(out.finish())))
    })
    .await?
    .flatten()
    .ok_or_else(|| QueryError::not_found("template"))
}

/// Whether `viewer` may read the basket `item` (owned by `owner_id`) as a
/// template (module docs).
fn visible(viewer: &Viewer, item: &TemplateItem<'_>, owner_id: &str) -> bool {
    if item.is_template() {
        true
    } else if item.published_position.is_some() {
        viewer.is_admin || viewer.owns(owner_id)
    } else {
        viewer.owns(owner_id)
    }
}

/// Full strategies also say how many legs they have, like previews do.
fn with_leg_counts(mut strategies: Value) -> Value {
    if let Value::Array(items) = &mut strategies {
        for s in items {
            let legs = s.get("legs").and_then(Value::as_array).map_or(0, Vec::len);
            if let Value::Object(map) = s {
                map.insert("leg_count".into(), json!(legs));
            }
        }
    }
    strategies
}
