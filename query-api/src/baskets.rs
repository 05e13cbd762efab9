//! `GET /baskets` and `GET /baskets/{id}`: a person's own baskets, with
//! full strategies, in the command API's basket shape
//! ([`basketry_command_api::views::basket`]). Anyone else's basket is 404
//! (admins included: they manage their own baskets, ADR 0005); partners
//! are 403.
//!
//! The list is newest first (`created_position` descending, then
//! `basket_id`).
//!
//! [`BasketRow`] (one `rm_baskets` row) and its renderings are shared with
//! the marketplace endpoints.

use actix_web::{web, HttpRequest, HttpResponse};
use basketry_command_api::auth::Principal;
use basketry_command_api::openapi::schemas;
use basketry_command_api::views;
use basketry_domain::basket::Strategy;
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;

use crate::error::QueryError;
use crate::openapi;
use crate::paging::{Dir, KeyValue, Kind, Ordering, PageRequest};
use crate::params::{path_uuid, Params};
use crate::request::{run, Reply};
use crate::rows::{flag, int, json, opt_int, opt_json, opt_text, text, Sql};
use crate::QueryState;

/// The `rm_baskets` columns [`BasketRow::from_row`] reads, for `SELECT`s
/// over `rm_baskets b`.
pub const BASKET_COLUMNS: &str = "b.basket_id, b.owner_id, b.name, b.description, b.category, \
     b.strategies, b.strategy_count, b.revision, b.created_at, b.updated_at, b.created_position, \
     b.is_template, b.visibility, b.pricing_type, b.monthly_fee, b.currency, b.difficulty_level, \
     b.tags, b.template_category, b.published_at, b.published_position, b.subscriber_count, \
     b.performance_metrics";

/// One basket of the read model, with its marketplace configuration.
#[derive(Debug, Clone)]
pub struct BasketRow {
    /// The basket's (and template's) id.
    pub basket_id: String,
    /// The owner's `user_id`.
    pub owner_id: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The basket's own category.
    pub category: String,
    /// The strategies, as the events carry them.
    pub strategies: Value,
    /// How many strategies.
    pub strategy_count: i64,
    /// The basket's revision.
    pub revision: i64,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Position of `BasketCreated`.
    pub created_position: i64,
    /// Published and enabled.
    pub is_template: bool,
    /// `PUBLIC` or `PRIVATE`; `None` until first published.
    pub visibility: Option<String>,
    /// `FREE` or `PAID`.
    pub pricing_type: Option<String>,
    /// Minor units.
    pub monthly_fee: Option<i64>,
    /// ISO currency.
    pub currency: Option<String>,
    /// `BEGINNER` … `ADVANCED`.
    pub difficulty_level: Option<String>,
    /// Upper-case tags.
    pub tags: Option<Value>,
    /// The marketplace category.
    pub template_category: Option<String>,
    /// First publication.
    pub published_at: Option<String>,
    /// Position of the first `TemplatePublished`; `None` if never published.
    pub published_position: Option<i64>,
    /// Subscriptions not cancelled.
    pub subscriber_count: i64,
    /// Performance metrics, when any.
    pub performance_metrics: Option<Value>,
}

impl BasketRow {
    /// Reads a row selected with [`BASKET_COLUMNS`].
    pub fn from_row(row: &AnyRow) -> Result<Self, QueryError> {
        Ok(Self {
            basket_id: text(row, "basket_id")?.to_ascii_lowercase(),
            owner_id: text(row, "owner_id")?.to_ascii_lowercase(),
            name: text(row, "name")?,
            description: text(row, "description")?,
            category: text(row, "category")?,
            strategies: json(row, "strategies")?,
            strategy_count: int(row, "strategy_count")?,
            revision: int(row, "revision")?,
            created_at: text(row, "created_at")?,
            updated_at: text(row, "updated_at")?,
            created_position: int(row, "created_position")?,
            is_template: flag(row, "is_template")?,
            visibility: opt_text(row, "visibility")?,
            pricing_type: opt_text(row, "pricing_type")?,
            monthly_fee: opt_int(row, "monthly_fee")?,
            currency: opt_text(row, "currency")?,
            difficulty_level: opt_text(row, "difficulty_level")?,
            tags: opt_json(row, "tags")?,
            template_category: opt_text(row, "template_category")?,
            published_at: opt_text(row, "published_at")?,
            published_position: opt_int(row, "published_position")?,
            subscriber_count: int(row, "subscriber_count")?,
            performance_metrics: opt_json(row, "performance_metrics")?,
        })
    }

    /// Ever published (enabled or disabled now).
    pub fn ever_published(&self) -> bool {
        self.published_position.is_some()
    }

    /// `{type, monthly_fee, currency}`, `null` when never published.
    pub fn pricing(&self) -> Value {
        match &self.pricing_type {
            None => Value::Null,
            Some(kind) => json!({
                "type": kind,
                "monthly_fee": self.monthly_fee.unwrap_or(0),
                "currency": self.currency,
            }),
        }
    }

    /// The marketplace category, the basket's own when none is set.
    fn marketplace_category(&self) -> &str {
        self.template_category.as_deref().unwrap_or(&self.category)
    }

    /// The marketplace part of the basket view, `null` when never
    /// published (as [`views::basket`] renders it).
    pub fn marketplace(&self) -> Value {
        if !self.ever_published() {
            return Value::Null;
        }
        json!({
            "template_id": self.basket_id,
            "enabled": self.is_template,
            "visibility": self.visibility,
            "pricing": self.pricing(),
            "difficulty_level": self.difficulty_level,
            "tags": self.tags.clone().unwrap_or_else(|| json!([])),
            "category": self.marketplace_category(),
            "published_at": self.published_at,
        })
    }

    /// The basket with full strategies ([`views::basket`]'s fields).
    pub fn basket_view(&self) -> Value {
        json!({
            "basket_id": self.basket_id,
            "owner_id": self.owner_id,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "strategies": full_strategies(&self.strategies),
            "revision": self.revision,
            "is_template": self.is_template,
            "marketplace": self.marketplace(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// A marketplace list item: the template's identity, configuration and
    /// popularity (the field names of [`views::template`], plus
    /// `subscriber_count`).
    pub fn template_item(&self) -> Value {
        json!({
            "template_id": self.basket_id,
            "basket_id": self.basket_id,
            "name": self.name,
            "description": self.description,
            "category": self.marketplace_category(),
            "difficulty_level": self.difficulty_level,
            "tags": self.tags.clone().unwrap_or_else(|| json!([])),
            "pricing": self.pricing(),
            "visibility": self.visibility,
            "enabled": self.is_template,
            "is_template": self.is_template,
            "subscriber_count": self.subscriber_count,
            "strategy_count": self.strategy_count,
            "basket_revision": self.revision,
            "published_at": self.published_at,
        })
    }
}

/// The strategies as clients send them (`stop_loss_pct`, `target_pct`), as
/// the command API renders them.
pub fn full_strategies(strategies: &Value) -> Value {
    match strategies {
        Value::Array(items) => Value::Array(items.iter().map(full_strategy).collect()),
        _ => json!([]),
    }
}

fn full_strategy(raw: &Value) -> Value {
    match serde_json::from_value::<Strategy>(raw.clone()) {
        Ok(strategy) => views::strategy(&strategy),
        // A shape the domain does not decode (a newer projector, say):
        // still rename the basis points the same way rather than fail.
        Err(_) => {
            let mut v = raw.clone();
            if let Value::Object(map) = &mut v {
                for (from, to) in [
                    ("stop_loss_bps", "stop_loss_pct"),
                    ("target_bps", "target_pct"),
                ] {
                    if let Some(bps) = map.remove(from) {
                        map.insert(to.into(), bps_to_pct(&bps));
                    }
                }
            }
            v
        }
    }
}

/// A basis-point value as a percentage (`2750` → `27.5`); display only.
pub fn bps_to_pct(bps: &Value) -> Value {
    match bps.as_i64() {
        None => Value::Null,
        Some(b) if b % 100 == 0 => json!(b / 100),
        Some(b) => json!(b as f64 / 100.0),
    }
}

/// The strategy preview anyone may see: what runs when, but not the legs
/// (a paid template's logic is not given away; SPEC §4).
pub fn strategy_previews(strategies: &Value) -> Value {
    let Value::Array(items) = strategies else {
        return json!([]);
    };
    Value::Array(
        items
            .iter()
            .map(|s| {
                let mut preview = Map::new();
                for key in [
                    "strategy_id",
                    "name",
                    "underlying",
                    "product",
                    "entry_time",
                    "exit_time",
                    "trading_days",
                ] {
                    preview.insert(key.into(), s.get(key).cloned().unwrap_or(Value::Null));
                }
                let legs = s.get("legs").and_then(Value::as_array).map_or(0, Vec::len);
                preview.insert("leg_count".into(), json!(legs));
                Value::Object(preview)
            })
            .collect(),
    )
}

/// Newest first.
const BASKETS: Ordering = Ordering {
    name: "baskets",
    keys: &[
        ("b.created_position", Dir::Desc, Kind::Int),
        ("b.basket_id", Dir::Asc, Kind::Text),
    ],
};

/// The query parameters of `GET /baskets` (the OpenAPI test compares
/// them with the documented ones).
pub const LIST_BASKETS_PARAMS: &[&str] = &["limit", "cursor"];

/// Reads one basket by id.
pub async fn fetch_basket(state: &QueryState, id: &str) -> Result<Option<BasketRow>, QueryError> {
    let mut sql = Sql::new(&format!(
        "SELECT {BASKET_COLUMNS} FROM rm_baskets b WHERE b.basket_id = "
    ));
    sql.bind(id);
    let row = sql.query().fetch_optional(&state.db).await?;
    row.as_ref().map(BasketRow::from_row).transpose()
}

/// Your baskets
///
/// The caller's own baskets, newest first, with full strategies.
#[utoipa::path(
    get,
    path = "/baskets",
    tag = "Baskets",
    params(
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of baskets.", body = openapi::BasketList),
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
pub async fn list_baskets(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        list_baskets_query(&state, &req, &principal)
    })
    .await
}

async fn list_baskets_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    let person = principal.require_person()?;
    let params = Params::of(req, LIST_BASKETS_PARAMS)?;
    let page = PageRequest::from_params(&params, BASKETS)?;
    let mut sql = Sql::new(&format!(
        "SELECT {BASKET_COLUMNS} FROM rm_baskets b WHERE b.owner_id = "
    ));
    sql.bind(person.user_id.to_string());
    page.push_tail(&mut sql);
    let rows = sql.query().fetch_all(&state.db).await?;
    let rows = rows
        .iter()
        .map(BasketRow::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let page = page.finish(rows, |b| {
        vec![
            KeyValue::Int(b.created_position),
            KeyValue::Text(b.basket_id.clone()),
        ]
    });
    Ok(Reply::Json(json!({
        "baskets": page.rows.iter().map(BasketRow::basket_view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// One of your baskets
///
/// Anyone else's basket is 404 (admins included).
#[utoipa::path(
    get,
    path = "/baskets/{basket_id}",
    tag = "Baskets",
    params(
        ("basket_id" = Uuid, Path, description = "The basket id."),
    ),
    responses(
        (status = 200, description = "The basket.", body = schemas::Basket),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
pub async fn get_basket(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        get_basket_query(&state, &req, &principal)
    })
    .await
}

async fn get_basket_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    let person = principal.require_person()?;
    let id = path_uuid(req, "basket_id", "basket")?;
    match fetch_basket(state, &id).await? {
        Some(basket) if basket.owner_id == person.user_id.to_string() => {
            Ok(Reply::Json(basket.basket_view()))
        }
        _ => Err(QueryError::not_found("basket")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_keep_the_schedule_and_count_the_legs() {
        let strategies = json!([{
            "strategy_id": "s1", "name": "Straddle", "underlying": "NIFTY", "product": "MIS",
            "entry_time": "09:20", "exit_time": "15:15", "trading_days": ["MON"],
            "stop_loss_bps": 2500, "target_bps": null,
            "legs": [{"action": "SELL"}, {"action": "SELL"}]
        }]);
        let preview = strategy_previews(&strategies);
        assert_eq!(preview[0]["leg_count"], 2);
        assert!(preview[0].get("legs").is_none());
        assert!(preview[0].get("stop_loss_pct").is_none());
        // Not a decodable domain strategy: the fallback still renames.
        let full = full_strategies(&strategies);
        assert_eq!(full[0]["stop_loss_pct"], 25);
        assert_eq!(full[0]["legs"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn basis_points_become_percentages() {
        assert_eq!(bps_to_pct(&json!(2500)), json!(25));
        assert_eq!(bps_to_pct(&json!(2750)), json!(27.5));
        assert_eq!(bps_to_pct(&Value::Null), Value::Null);
    }
}
