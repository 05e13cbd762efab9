//! `GET /admin/partner-api-keys` and `/{id}` (admins): partner keys as the
//! command API renders them ([`basketry_command_api::views::api_key`]),
//! never a secret or its hash, plus `last_used_at` and
//! `usage {request_count}` from `partner_key_usage` (`null` and 0 for a key
//! never used).
//!
//! The list is newest first (`issued_position` descending, then
//! `api_key_id`) and takes `partner_id` and `status` (`ACTIVE`,
//! `SUSPENDED`, `REVOKED`) filters.

use actix_web::{web, HttpRequest, HttpResponse};
use basketry_command_api::openapi::schemas;
use basketry_http::Principal;
use serde_json::{json, Value};
use sqlx::any::AnyRow;

use crate::baskets::bps_to_pct;
use crate::error::QueryError;
use crate::openapi;
use crate::paging::{Dir, KeyValue, Kind, Ordering, PageRequest};
use crate::params::{path_uuid, Params};
use crate::request::{run, Reply};
use crate::rows::{int, json, opt_int, opt_text, text, Sql};
use crate::QueryState;

const KEYS: Ordering = Ordering {
    name: "api_keys",
    keys: &[
        ("k.issued_position", Dir::Desc, Kind::Int),
        ("k.api_key_id", Dir::Asc, Kind::Text),
    ],
};

const SELECT: &str = "SELECT k.api_key_id, k.partner_id, k.api_key, k.partner_name, \
     k.partner_type, k.broker_id, k.status, k.platform_bps, k.partner_bps, k.permissions, \
     k.rate_limits, k.branding, k.issued_at, k.rotated_at, k.revoked_at, k.issued_position, \
     u.last_used_at, u.request_count \
     FROM rm_partner_keys k LEFT JOIN partner_key_usage u ON u.api_key_id = k.api_key_id \
     WHERE 1 = 1";

/// The query parameters of `GET /admin/partner-api-keys`.
pub const LIST_API_KEYS_PARAMS: &[&str] = &["partner_id", "status", "limit", "cursor"];

/// One key with its usage.
struct KeyRow {
    api_key_id: String,
    issued_position: i64,
    view: Value,
}

impl KeyRow {
    fn from_row(row: &AnyRow) -> Result<Self, QueryError> {
        let api_key_id = text(row, "api_key_id")?.to_ascii_lowercase();
        let view = json!({
            "api_key_id": api_key_id,
            "api_key": text(row, "api_key")?,
            "partner_id": text(row, "partner_id")?,
            "partner_name": text(row, "partner_name")?,
            "partner_type": text(row, "partner_type")?,
            "broker_id": text(row, "broker_id")?,
            "status": text(row, "status")?,
            "revenue_share": {
                "platform_percentage": bps_to_pct(&json!(int(row, "platform_bps")?)),
                "partner_percentage": bps_to_pct(&json!(int(row, "partner_bps")?)),
            },
            "permissions": json(row, "permissions")?,
            "rate_limits": json(row, "rate_limits")?,
            "branding": json(row, "branding")?,
            "issued_at": text(row, "issued_at")?,
            "rotated_at": opt_text(row, "rotated_at")?,
            "revoked_at": opt_text(row, "revoked_at")?,
            "last_used_at": opt_text(row, "last_used_at")?,
            "usage": {"request_count": opt_int(row, "request_count")?.unwrap_or(0)},
        });
        Ok(Self {
            api_key_id,
            issued_position: int(row, "issued_position")?,
            view,
        })
    }
}

/// Partner keys
///
/// Admins: keys with their partner's configuration, `last_used_at` and
/// usage, newest first; never a secret.
#[utoipa::path(
    get,
    path = "/admin/partner-api-keys",
    tag = "Partner keys",
    params(
        openapi::PartnerFilter,
        openapi::KeyStatusFilter,
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of keys.", body = openapi::ApiKeyList),
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
pub async fn list_api_keys(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        list_query(&state, &req, &principal)
    })
    .await
}

async fn list_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    principal.require_admin()?;
    let params = Params::of(req, LIST_API_KEYS_PARAMS)?;
    let page = PageRequest::from_params(&params, KEYS)?;
    let mut sql = Sql::new(SELECT);
    if let Some(partner_id) = params.identifier("partner_id")? {
        sql.push(" AND k.partner_id = ").bind(partner_id);
    }
    if let Some(status) = params.one_of("status", &["ACTIVE", "SUSPENDED", "REVOKED"])? {
        sql.push(" AND k.status = ").bind(status);
    }
    page.push_tail(&mut sql);
    let rows = sql.query().fetch_all(&state.db).await?;
    let rows = rows
        .iter()
        .map(KeyRow::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let page = page.finish(rows, |k| {
        vec![
            KeyValue::Int(k.issued_position),
            KeyValue::Text(k.api_key_id.clone()),
        ]
    });
    Ok(Reply::Json(json!({
        "api_keys": page.rows.into_iter().map(|k| k.view).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// A partner key
///
/// Admins; never the secret.
#[utoipa::path(
    get,
    path = "/admin/partner-api-keys/{api_key_id}",
    tag = "Partner keys",
    params(
        ("api_key_id" = Uuid, Path, description = "The API key id."),
    ),
    responses(
        (status = 200, description = "The key.", body = openapi::ApiKeyWithUsage),
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
pub async fn get_api_key(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        get_query(&state, &req, &principal)
    })
    .await
}

async fn get_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    principal.require_admin()?;
    let id = path_uuid(req, "api_key_id", "api key")?;
    let mut sql = Sql::new(SELECT);
    sql.push(" AND k.api_key_id = ").bind(id);
    match sql.query().fetch_optional(&state.db).await? {
        Some(row) => Ok(Reply::Json(KeyRow::from_row(&row)?.view)),
        None => Err(QueryError::not_found("api key")),
    }
}
