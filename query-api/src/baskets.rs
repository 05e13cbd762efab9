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
use basketry_command_api::openapi::schemas;
use basketry_command_api::views;
use basketry_domain::basket::Strategy;
use basketry_http::Principal;
use std::borrow::Cow;

use serde_json::{json, Value};

use crate::error::QueryError;
use crate::openapi;
use crate::paging::{Dir, KeyValue, Kind, Ordering, PageRequest};
use crate::params::{path_uuid, Params};
use crate::render::JsonOut;
use crate::request::{run, Reply};
use crate::rows::{parse_json, Columns, Sql};
use crate::QueryState;

/// The `rm_baskets` columns a marketplace list item shows
/// ([`TemplateItem`]), in the order it reads them, for `SELECT`s over
/// `rm_baskets b`.
pub const ITEM_COLUMNS: &str = "b.basket_id, b.name, b.description, b.category, \
     b.template_category, b.difficulty_level, b.tags, b.pricing_type, b.monthly_fee, \
     b.currency, b.visibility, b.is_template, b.subscriber_count, b.strategy_count, \
     b.revision, b.published_at, b.published_position";

/// The `rm_baskets` columns [`BasketRow::from_columns`] reads: the item's
/// ([`ITEM_COLUMNS`], at the same positions) and then the rest.
pub const BASKET_COLUMNS: &str = "b.basket_id, b.name, b.description, b.category, \
     b.template_category, b.difficulty_level, b.tags, b.pricing_type, b.monthly_fee, \
     b.currency, b.visibility, b.is_template, b.subscriber_count, b.strategy_count, \
     b.revision, b.published_at, b.published_position, b.owner_id, b.strategies, \
     b.created_at, b.updated_at, b.created_position, b.performance_metrics, \
     b.strategy_previews";

/// Positions of the columns of [`ITEM_COLUMNS`] and [`BASKET_COLUMNS`].
mod col {
    pub const BASKET_ID: usize = 0;
    pub const NAME: usize = 1;
    pub const DESCRIPTION: usize = 2;
    pub const CATEGORY: usize = 3;
    pub const TEMPLATE_CATEGORY: usize = 4;
    pub const DIFFICULTY_LEVEL: usize = 5;
    pub const TAGS: usize = 6;
    pub const PRICING_TYPE: usize = 7;
    pub const MONTHLY_FEE: usize = 8;
    pub const CURRENCY: usize = 9;
    pub const VISIBILITY: usize = 10;
    pub const IS_TEMPLATE: usize = 11;
    pub const SUBSCRIBER_COUNT: usize = 12;
    pub const STRATEGY_COUNT: usize = 13;
    pub const REVISION: usize = 14;
    pub const PUBLISHED_AT: usize = 15;
    pub const PUBLISHED_POSITION: usize = 16;
    pub const OWNER_ID: usize = 17;
    pub const STRATEGIES: usize = 18;
    pub const CREATED_AT: usize = 19;
    pub const UPDATED_AT: usize = 20;
    pub const CREATED_POSITION: usize = 21;
    pub const PERFORMANCE_METRICS: usize = 22;
    pub const STRATEGY_PREVIEWS: usize = 23;
}

/// An id column as the API shows ids (lower case; the projectors already
/// store them so).
fn lower(id: &str) -> Cow<'_, str> {
    if id.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(id.to_ascii_lowercase())
    } else {
        Cow::Borrowed(id)
    }
}

/// A marketplace list item, borrowed from its row ([`ITEM_COLUMNS`]) and
/// written straight into the answer ([`TemplateItem::write`]).
#[derive(Debug, Clone)]
pub struct TemplateItem<'r> {
    /// The template's (and basket's) id.
    pub basket_id: Cow<'r, str>,
    name: &'r str,
    description: &'r str,
    category: &'r str,
    template_category: Option<&'r str>,
    difficulty_level: Option<&'r str>,
    /// JSON array, as stored.
    tags: Option<&'r str>,
    pricing_type: Option<&'r str>,
    /// Minor units.
    pub monthly_fee: Option<i64>,
    currency: Option<&'r str>,
    visibility: Option<&'r str>,
    is_template: bool,
    /// Subscriptions not cancelled.
    pub subscriber_count: i64,
    strategy_count: i64,
    revision: i64,
    published_at: Option<&'r str>,
    /// Position of the first `TemplatePublished`.
    pub published_position: Option<i64>,
}

/// What a template's details add to its list item, at their places in the
/// sorted keys.
#[derive(Debug, Clone, Copy)]
pub struct Details<'a> {
    /// `performance_metrics`: JSON text, `None` for `null`.
    pub performance_metrics: Option<&'a str>,
    /// `strategies`: JSON text.
    pub strategies: &'a str,
    /// `updated_at`.
    pub updated_at: &'a str,
}

impl<'r> TemplateItem<'r> {
    /// Published and enabled.
    pub fn is_template(&self) -> bool {
        self.is_template
    }

    /// Reads a row whose first columns are [`ITEM_COLUMNS`].
    pub fn read(row: &'r dyn Columns) -> Result<Self, QueryError> {
        Ok(Self {
            basket_id: lower(row.str(col::BASKET_ID)?),
            name: row.str(col::NAME)?,
            description: row.str(col::DESCRIPTION)?,
            category: row.str(col::CATEGORY)?,
            template_category: row.opt_str(col::TEMPLATE_CATEGORY)?,
            difficulty_level: row.opt_str(col::DIFFICULTY_LEVEL)?,
            tags: row.opt_str(col::TAGS)?,
            pricing_type: row.opt_str(col::PRICING_TYPE)?,
            monthly_fee: row.opt_int(col::MONTHLY_FEE)?,
            currency: row.opt_str(col::CURRENCY)?,
            visibility: row.opt_str(col::VISIBILITY)?,
            is_template: row.flag(col::IS_TEMPLATE)?,
            subscriber_count: row.int(col::SUBSCRIBER_COUNT)?,
            strategy_count: row.int(col::STRATEGY_COUNT)?,
            revision: row.int(col::REVISION)?,
            published_at: row.opt_str(col::PUBLISHED_AT)?,
            published_position: row.opt_int(col::PUBLISHED_POSITION)?,
        })
    }

    /// Writes the item ([`BasketRow::template_item`]'s JSON, byte for
    /// byte), with the details' fields when given. Keys in sorted order.
    pub fn write(&self, out: &mut JsonOut, details: Option<Details<'_>>) -> Result<(), QueryError> {
        out.raw("{\"basket_id\":").str(&self.basket_id)?;
        out.raw(",\"basket_revision\":").int(self.revision);
        out.raw(",\"category\":")
            .str(self.template_category.unwrap_or(self.category))?;
        out.raw(",\"description\":").str(self.description)?;
        out.raw(",\"difficulty_level\":")
            .opt_str(self.difficulty_level)?;
        out.raw(",\"enabled\":").bool(self.is_template);
        out.raw(",\"is_template\":").bool(self.is_template);
        out.raw(",\"name\":").str(self.name)?;
        if let Some(d) = &details {
            out.raw(",\"performance_metrics\":")
                .opt_raw(d.performance_metrics, "null");
        }
        out.raw(",\"pricing\":");
        match self.pricing_type {
            None => {
                out.raw("null");
            }
            Some(kind) => {
                out.raw("{\"currency\":").opt_str(self.currency)?;
                out.raw(",\"monthly_fee\":")
                    .int(self.monthly_fee.unwrap_or(0));
                out.raw(",\"type\":").str(kind)?.raw("}");
            }
        }
        out.raw(",\"published_at\":").opt_str(self.published_at)?;
        if let Some(d) = &details {
            out.raw(",\"strategies\":").raw(d.strategies);
        }
        out.raw(",\"strategy_count\":").int(self.strategy_count);
        out.raw(",\"subscriber_count\":").int(self.subscriber_count);
        out.raw(",\"tags\":").opt_raw(self.tags, "[]");
        out.raw(",\"template_id\":").str(&self.basket_id)?;
        if let Some(d) = &details {
            out.raw(",\"updated_at\":").str(d.updated_at)?;
        }
        out.raw(",\"visibility\":").opt_str(self.visibility)?;
        out.raw("}");
        Ok(())
    }
}

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
    pub fn from_columns(row: &dyn Columns) -> Result<Self, QueryError> {
        let owned = |v: Option<&str>| v.map(str::to_owned);
        Ok(Self {
            basket_id: row.str(col::BASKET_ID)?.to_ascii_lowercase(),
            owner_id: row.str(col::OWNER_ID)?.to_ascii_lowercase(),
            name: row.str(col::NAME)?.to_owned(),
            description: row.str(col::DESCRIPTION)?.to_owned(),
            category: row.str(col::CATEGORY)?.to_owned(),
            strategies: parse_json("strategies", row.str(col::STRATEGIES)?)?,
            strategy_count: row.int(col::STRATEGY_COUNT)?,
            revision: row.int(col::REVISION)?,
            created_at: row.str(col::CREATED_AT)?.to_owned(),
            updated_at: row.str(col::UPDATED_AT)?.to_owned(),
            created_position: row.int(col::CREATED_POSITION)?,
            is_template: row.flag(col::IS_TEMPLATE)?,
            visibility: owned(row.opt_str(col::VISIBILITY)?),
            pricing_type: owned(row.opt_str(col::PRICING_TYPE)?),
            monthly_fee: row.opt_int(col::MONTHLY_FEE)?,
            currency: owned(row.opt_str(col::CURRENCY)?),
            difficulty_level: owned(row.opt_str(col::DIFFICULTY_LEVEL)?),
            tags: row
                .opt_str(col::TAGS)?
                .map(|t| parse_json("tags", t))
                .transpose()?,
            template_category: owned(row.opt_str(col::TEMPLATE_CATEGORY)?),
            published_at: owned(row.opt_str(col::PUBLISHED_AT)?),
            published_position: row.opt_int(col::PUBLISHED_POSITION)?,
            subscriber_count: row.int(col::SUBSCRIBER_COUNT)?,
            performance_metrics: row
                .opt_str(col::PERFORMANCE_METRICS)?
                .map(|t| parse_json("performance_metrics", t))
                .transpose()?,
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
/// (a paid template's logic is not given away; SPEC §4). The projector
/// stores the same in `rm_baskets.strategy_previews`
/// ([`basketry_projections::projectors::strategy_previews`]).
pub fn strategy_previews(strategies: &Value) -> Value {
    match strategies {
        Value::Array(items) => basketry_projections::projectors::strategy_previews(items),
        _ => json!([]),
    }
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
    read_basket(state, id, BasketRow::from_columns).await
}

/// Reads one basket by id ([`BASKET_COLUMNS`]) and hands its row to `read`.
pub async fn read_basket<T>(
    state: &QueryState,
    id: &str,
    read: impl FnOnce(&dyn Columns) -> Result<T, QueryError>,
) -> Result<Option<T>, QueryError> {
    let mut sql = Sql::new(&format!(
        "SELECT {BASKET_COLUMNS} FROM rm_baskets b WHERE b.basket_id = "
    ));
    sql.bind(id);
    sql.read_optional(state, read).await
}

/// The columns of [`BASKET_COLUMNS`] past the item's that a template's
/// details show, borrowed from the row.
#[derive(Debug, Clone, Copy)]
pub struct DetailColumns<'r> {
    /// The owner's `user_id`.
    pub owner_id: &'r str,
    /// The strategies, JSON text as the events carry them.
    pub strategies: &'r str,
    /// Last change.
    pub updated_at: &'r str,
    /// JSON text or `None`.
    pub performance_metrics: Option<&'r str>,
    /// The stored previews (JSON text); `None` on rows projected before
    /// the column existed.
    pub strategy_previews: Option<&'r str>,
}

impl<'r> DetailColumns<'r> {
    /// Reads them from a row selected with [`BASKET_COLUMNS`].
    pub fn read(row: &'r dyn Columns) -> Result<Self, QueryError> {
        Ok(Self {
            owner_id: row.str(col::OWNER_ID)?,
            strategies: row.str(col::STRATEGIES)?,
            updated_at: row.str(col::UPDATED_AT)?,
            performance_metrics: row.opt_str(col::PERFORMANCE_METRICS)?,
            strategy_previews: row.opt_str(col::STRATEGY_PREVIEWS)?,
        })
    }
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
    let mut rows = Vec::new();
    sql.read_each(state, |row| {
        rows.push(BasketRow::from_columns(row)?);
        Ok(())
    })
    .await?;
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

    /// A row of test values, by position.
    struct TestRow(Vec<Value>);

    impl Columns for TestRow {
        fn str(&self, i: usize) -> Result<&str, QueryError> {
            self.opt_str(i)?
                .ok_or_else(|| QueryError::Corrupt(format!("column {i} is NULL")))
        }

        fn opt_str(&self, i: usize) -> Result<Option<&str>, QueryError> {
            Ok(self.0[i].as_str())
        }

        fn opt_int(&self, i: usize) -> Result<Option<i64>, QueryError> {
            Ok(self.0[i].as_i64())
        }
    }

    fn row(published: bool) -> TestRow {
        let strategies = json!([{
            "strategy_id": "s1", "name": "Straddle \"weekly\"", "underlying": "NIFTY",
            "product": "MIS", "entry_time": "09:20", "exit_time": "15:15",
            "trading_days": ["MON"], "legs": [{"action": "SELL"}]
        }]);
        let some = |v: &str| if published { json!(v) } else { Value::Null };
        TestRow(vec![
            json!("0193A1B2-0000-7000-8000-000000000001"),
            json!("Nifty \"income\" \\ ünïcode\n"),
            json!("A description"),
            json!("INCOME"),
            some("WEEKLY"),
            some("BEGINNER"),
            some(r#"["NIFTY","WEEKLY"]"#),
            some("PAID"),
            if published { json!(99900) } else { Value::Null },
            some("INR"),
            some("PUBLIC"),
            json!(i64::from(published)),
            json!(12),
            json!(1),
            json!(4),
            some("2026-11-03T10:00:00.000000Z"),
            if published { json!(77) } else { Value::Null },
            json!("0193a1b2-0000-7000-8000-0000000000ff"),
            json!(strategies.to_string()),
            json!("2026-11-01T10:00:00.000000Z"),
            json!("2026-11-02T10:00:00.000000Z"),
            json!(5),
            some(r#"{"cagr_pct":18.5}"#),
            json!(strategy_previews(&strategies).to_string()),
        ])
    }

    #[test]
    fn items_are_written_byte_for_byte_as_the_value_renders_them() {
        for published in [true, false] {
            let row = row(published);
            let expected = BasketRow::from_columns(&row).unwrap();
            let item = TemplateItem::read(&row).unwrap();
            let mut out = JsonOut::default();
            item.write(&mut out, None).unwrap();
            assert_eq!(out.finish(), expected.template_item().to_string());

            let more = DetailColumns::read(&row).unwrap();
            let mut out = JsonOut::default();
            let details = Details {
                performance_metrics: more.performance_metrics,
                strategies: more.strategy_previews.unwrap(),
                updated_at: more.updated_at,
            };
            item.write(&mut out, Some(details)).unwrap();
            let mut detail = expected.template_item();
            if let Value::Object(map) = &mut detail {
                map.insert("strategies".into(), strategy_previews(&expected.strategies));
                map.insert(
                    "performance_metrics".into(),
                    expected.performance_metrics.clone().unwrap_or(Value::Null),
                );
                map.insert("updated_at".into(), json!(expected.updated_at));
            }
            assert_eq!(out.finish(), detail.to_string());
        }
    }

    #[test]
    fn basis_points_become_percentages() {
        assert_eq!(bps_to_pct(&json!(2500)), json!(25));
        assert_eq!(bps_to_pct(&json!(2750)), json!(27.5));
        assert_eq!(bps_to_pct(&Value::Null), Value::Null);
    }
}
