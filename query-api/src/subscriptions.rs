//! Subscriptions, from `rm_subscriptions`.
//!
//! * `GET /user/subscriptions?status=` and `/{id}` — the person's own
//!   (direct or made for them by a partner: one user either way);
//!   partners are 403, anyone else's id is 404.
//! * `GET /partner/subscriptions?status=` and `/{id}` — the subscriptions
//!   the calling partner created (any of its keys); another partner's id is
//!   404, people are 403.
//! * `GET /execution/templates/{id}/subscribers` — executors and admins:
//!   the ACTIVE subscriptions of a template with their allocations, oldest
//!   first; 404 for a basket that was never published.
//!
//! A subscription renders with the command API's field names
//! ([`basketry_command_api::views::subscription`]): `subscription_id,
//! template_id, template_name, user_id, user_email, partner_id, api_key_id,
//! status, pricing {type, monthly_fee, currency}, broker_allocations,
//! next_billing_date (YYYY-MM-DD, null when free or cancelled),
//! status_history [{from, to, actor, reason, at}], created_at, updated_at`.
//! Lists are newest first (`created_position` descending, then
//! `subscription_id`); `status` filters by `ACTIVE`, `PAUSED` or
//! `CANCELLED`.

use actix_web::{web, HttpRequest, HttpResponse};
use basketry_command_api::openapi::schemas;
use basketry_http::Principal;
use serde_json::{json, Value};
use sqlx::any::AnyRow;

use crate::baskets::fetch_basket;
use crate::error::QueryError;
use crate::openapi;
use crate::paging::{Dir, KeyValue, Kind, Ordering, PageRequest};
use crate::params::{path_uuid, Params};
use crate::request::{run, Reply};
use crate::rows::{int, json, opt_text, text, Sql};
use crate::QueryState;

/// The statuses `?status=` accepts.
const STATUSES: &[&str] = &["ACTIVE", "PAUSED", "CANCELLED"];

const COLUMNS: &str = "s.subscription_id, s.created_position, s.user_id, s.user_email, \
     s.template_id, s.template_name, s.partner_id, s.api_key_id, s.status, s.pricing_type, \
     s.monthly_fee, s.currency, s.allocations, s.next_billing_date, s.status_history, \
     s.created_at, s.updated_at";

/// The query parameters of the subscription lists (user and partner).
pub const LIST_PARAMS: &[&str] = &["status", "limit", "cursor"];

/// The query parameters of `GET /execution/templates/{id}/subscribers`.
pub const SUBSCRIBERS_PARAMS: &[&str] = &["limit", "cursor"];

/// Newest first.
const NEWEST: Ordering = Ordering {
    name: "subscriptions",
    keys: &[
        ("s.created_position", Dir::Desc, Kind::Int),
        ("s.subscription_id", Dir::Asc, Kind::Text),
    ],
};

/// Oldest first: an executor walking the subscribers meets new ones at the
/// end.
const SUBSCRIBERS: Ordering = Ordering {
    name: "subscribers",
    keys: &[
        ("s.created_position", Dir::Asc, Kind::Int),
        ("s.subscription_id", Dir::Asc, Kind::Text),
    ],
};

/// One `rm_subscriptions` row.
#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    /// Its id.
    pub subscription_id: String,
    /// Position of `SubscribedToTemplate`.
    pub created_position: i64,
    /// The subscriber.
    pub user_id: String,
    /// The subscriber's e-mail.
    pub user_email: String,
    /// The template.
    pub template_id: String,
    /// The template's name.
    pub template_name: String,
    /// The partner that created it, if any.
    pub partner_id: Option<String>,
    /// The partner key that created it, if any.
    pub api_key_id: Option<String>,
    /// `ACTIVE`, `PAUSED` or `CANCELLED`.
    pub status: String,
    /// `FREE` or `PAID`.
    pub pricing_type: String,
    /// The price subscribed at, minor units.
    pub monthly_fee: i64,
    /// Its currency.
    pub currency: String,
    /// Broker allocations, JSON.
    pub allocations: Value,
    /// `YYYY-MM-DD`, when billed.
    pub next_billing_date: Option<String>,
    /// Status changes, JSON.
    pub status_history: Value,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl SubscriptionRow {
    fn from_row(row: &AnyRow) -> Result<Self, QueryError> {
        Ok(Self {
            subscription_id: text(row, "subscription_id")?.to_ascii_lowercase(),
            created_position: int(row, "created_position")?,
            user_id: text(row, "user_id")?.to_ascii_lowercase(),
            user_email: text(row, "user_email")?,
            template_id: text(row, "template_id")?.to_ascii_lowercase(),
            template_name: text(row, "template_name")?,
            partner_id: opt_text(row, "partner_id")?,
            api_key_id: opt_text(row, "api_key_id")?.map(|k| k.to_ascii_lowercase()),
            status: text(row, "status")?,
            pricing_type: text(row, "pricing_type")?,
            monthly_fee: int(row, "monthly_fee")?,
            currency: text(row, "currency")?,
            allocations: json(row, "allocations")?,
            next_billing_date: opt_text(row, "next_billing_date")?,
            status_history: json(row, "status_history")?,
            created_at: text(row, "created_at")?,
            updated_at: text(row, "updated_at")?,
        })
    }

    /// The subscription as users and partners see it.
    pub fn view(&self) -> Value {
        let next_billing_date = if self.status == "CANCELLED" {
            None
        } else {
            self.next_billing_date.as_deref()
        };
        json!({
            "subscription_id": self.subscription_id,
            "template_id": self.template_id,
            "template_name": self.template_name,
            "user_id": self.user_id,
            "user_email": self.user_email,
            "partner_id": self.partner_id,
            "api_key_id": self.api_key_id,
            "status": self.status,
            "pricing": {
                "type": self.pricing_type,
                "monthly_fee": self.monthly_fee,
                "currency": self.currency,
            },
            "broker_allocations": self.allocations,
            "next_billing_date": next_billing_date,
            "status_history": self.status_history,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    /// The subscriber as executors see it: who, through whom, and where
    /// orders go.
    pub fn subscriber_view(&self) -> Value {
        json!({
            "subscription_id": self.subscription_id,
            "user_id": self.user_id,
            "partner_id": self.partner_id,
            "status": self.status,
            "broker_allocations": self.allocations,
            "created_at": self.created_at,
        })
    }

    fn key(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::Int(self.created_position),
            KeyValue::Text(self.subscription_id.clone()),
        ]
    }
}

/// Whose subscriptions a list is restricted to.
enum Scope {
    /// `user_id = …`.
    User(String),
    /// `partner_id = …`.
    Partner(String),
}

impl Scope {
    fn of(principal: &Principal, as_partner: bool) -> Result<Self, QueryError> {
        if as_partner {
            let partner = principal.partner().ok_or_else(QueryError::forbidden)?;
            Ok(Scope::Partner(partner.partner_id.to_string()))
        } else {
            let person = principal.require_person()?;
            Ok(Scope::User(person.user_id.to_string()))
        }
    }

    fn push(&self, sql: &mut Sql) {
        match self {
            Scope::User(id) => sql.push(" AND s.user_id = ").bind(id.clone()),
            Scope::Partner(id) => sql.push(" AND s.partner_id = ").bind(id.clone()),
        };
    }
}

async fn list(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
    as_partner: bool,
) -> Result<Reply, QueryError> {
    let scope = Scope::of(principal, as_partner)?;
    let params = Params::of(req, LIST_PARAMS)?;
    let page = PageRequest::from_params(&params, NEWEST)?;
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM rm_subscriptions s WHERE 1 = 1"
    ));
    scope.push(&mut sql);
    if let Some(status) = params.one_of("status", STATUSES)? {
        sql.push(" AND s.status = ").bind(status);
    }
    page.push_tail(&mut sql);
    let rows = sql.query().fetch_all(&state.db).await?;
    let rows = rows
        .iter()
        .map(SubscriptionRow::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let page = page.finish(rows, SubscriptionRow::key);
    Ok(Reply::Json(json!({
        "subscriptions": page.rows.iter().map(SubscriptionRow::view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

async fn one(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
    as_partner: bool,
) -> Result<Reply, QueryError> {
    let scope = Scope::of(principal, as_partner)?;
    let id = path_uuid(req, "id", "subscription")?;
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM rm_subscriptions s WHERE s.subscription_id = "
    ));
    sql.bind(id);
    // Scoping in SQL makes another's subscription indistinguishable from a
    // missing one: both are 404.
    scope.push(&mut sql);
    let row = sql.query().fetch_optional(&state.db).await?;
    match row {
        Some(row) => Ok(Reply::Json(SubscriptionRow::from_row(&row)?.view())),
        None => Err(QueryError::not_found("subscription")),
    }
}

/// Your subscriptions
///
/// The caller's subscriptions (direct, or made for them by a partner),
/// newest first.
#[utoipa::path(
    get,
    path = "/user/subscriptions",
    tag = "Subscriptions",
    params(
        openapi::StatusFilter,
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of subscriptions.", body = openapi::SubscriptionList),
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
pub async fn list_user_subscriptions(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        list(&state, &req, &principal, false)
    })
    .await
}

/// One of your subscriptions
///
/// With its status history. Anyone else's is 404.
#[utoipa::path(
    get,
    path = "/user/subscriptions/{id}",
    tag = "Subscriptions",
    params(
        ("id" = Uuid, Path, description = "The subscription id."),
    ),
    responses(
        (status = 200, description = "The subscription.", body = schemas::Subscription),
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
pub async fn get_user_subscription(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        one(&state, &req, &principal, false)
    })
    .await
}

/// The partner's subscriptions
///
/// The subscriptions the calling partner created (with any of its keys),
/// newest first.
#[utoipa::path(
    get,
    path = "/partner/subscriptions",
    tag = "Partner API",
    params(
        openapi::StatusFilter,
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of subscriptions.", body = openapi::SubscriptionList),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("partner_key" = [], "partner_secret" = [])),
)]
pub async fn list_partner_subscriptions(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        list(&state, &req, &principal, true)
    })
    .await
}

/// One of the partner's subscriptions
///
/// Another partner's subscription is 404.
#[utoipa::path(
    get,
    path = "/partner/subscriptions/{id}",
    tag = "Partner API",
    params(
        ("id" = Uuid, Path, description = "The subscription id."),
    ),
    responses(
        (status = 200, description = "The subscription.", body = schemas::Subscription),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("partner_key" = [], "partner_secret" = [])),
)]
pub async fn get_partner_subscription(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        one(&state, &req, &principal, true)
    })
    .await
}

/// A template's active subscribers
///
/// Executors and admins: the ACTIVE subscriptions of a template with their
/// allocations, oldest first. 404 for a basket never published.
#[utoipa::path(
    get,
    path = "/execution/templates/{id}/subscribers",
    tag = "Execution",
    params(
        ("id" = Uuid, Path, description = "The template id."),
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of subscribers.", body = openapi::SubscriberList),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
pub async fn template_subscribers(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        subscribers_query(&state, &req, &principal)
    })
    .await
}

async fn subscribers_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    principal.require_executor()?;
    let id = path_uuid(req, "id", "template")?;
    let params = Params::of(req, SUBSCRIBERS_PARAMS)?;
    let page = PageRequest::from_params(&params, SUBSCRIBERS)?;
    match fetch_basket(state, &id).await? {
        Some(basket) if basket.ever_published() => {}
        _ => return Err(QueryError::not_found("template")),
    }
    let mut sql = Sql::new(&format!(
        "SELECT {COLUMNS} FROM rm_subscriptions s WHERE s.status = 'ACTIVE' AND s.template_id = "
    ));
    sql.bind(id.clone());
    page.push_tail(&mut sql);
    let rows = sql.query().fetch_all(&state.db).await?;
    let rows = rows
        .iter()
        .map(SubscriptionRow::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let page = page.finish(rows, SubscriptionRow::key);
    Ok(Reply::Json(json!({
        "template_id": id,
        "subscribers": page.rows.iter().map(SubscriptionRow::subscriber_view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}
