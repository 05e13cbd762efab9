//! `GET /admin/partner-api-keys` and `/{id}` (admins): partner keys in the
//! command API's shape ([`shapes::ApiKey`]),
//! never a secret or its hash, plus `last_used_at` and
//! `usage {request_count}` from `partner_key_usage` (`null` and 0 for a key
//! never used).
//!
//! The list is newest first (`issued_position` descending, then
//! `api_key_id`) and takes `partner_id` and `status` (`ACTIVE`,
//! `SUSPENDED`, `REVOKED`) filters.

use actix_web::{web, HttpRequest, HttpResponse};
use basketry_domain::partner::{ApiKeyStatus, PartnerType};
use basketry_http::shapes;
use basketry_http::Principal;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::error::QueryError;
use crate::openapi;
use crate::paging::{Dir, KeyValue, Kind, Ordering, PageRequest};
use crate::params::{path_uuid, Params};
use crate::request::{run, Reply};
use crate::rows::{decode, int, json, opt_int, opt_text, parse_text, text, Sql};
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
    shape: shapes::ApiKeyWithUsage,
}

/// A basis-point column as a percentage.
fn percent(row: &AnyRow, column: &str) -> Result<shapes::Percent, QueryError> {
    let bps = int(row, column)?;
    u32::try_from(bps)
        .map(shapes::Percent)
        .map_err(|e| QueryError::Corrupt(format!("column {column} is out of range: {e}")))
}

impl KeyRow {
    fn from_row(row: &AnyRow) -> Result<Self, QueryError> {
        let api_key_id = text(row, "api_key_id")?.to_ascii_lowercase();
        let key = shapes::ApiKey {
            api_key_id: parse_text("api_key_id", &api_key_id, Uuid::parse_str)?,
            api_key: text(row, "api_key")?,
            partner_id: text(row, "partner_id")?,
            partner_name: text(row, "partner_name")?,
            partner_type: parse_text(
                "partner_type",
                &text(row, "partner_type")?,
                PartnerType::parse,
            )?,
            broker_id: text(row, "broker_id")?,
            status: parse_text("status", &text(row, "status")?, ApiKeyStatus::parse)?,
            revenue_share: shapes::RevenueSharePercent {
                platform_percentage: percent(row, "platform_bps")?,
                partner_percentage: percent(row, "partner_bps")?,
            },
            permissions: decode("permissions", json(row, "permissions")?)?,
            rate_limits: decode("rate_limits", json(row, "rate_limits")?)?,
            branding: decode("branding", json(row, "branding")?)?,
            issued_at: shapes::Timestamp::stored(text(row, "issued_at")?),
            rotated_at: opt_text(row, "rotated_at")?.map(shapes::Timestamp::stored),
            revoked_at: opt_text(row, "revoked_at")?.map(shapes::Timestamp::stored),
        };
        Ok(Self {
            api_key_id,
            issued_position: int(row, "issued_position")?,
            shape: shapes::ApiKeyWithUsage {
                key,
                last_used_at: opt_text(row, "last_used_at")?.map(shapes::Timestamp::stored),
                usage: shapes::KeyUsage {
                    request_count: opt_int(row, "request_count")?.unwrap_or(0),
                },
            },
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
        (status = 200, description = "A page of keys.", body = shapes::ApiKeyList),
        (status = 400, response = shapes::BadRequest),
        (status = 401, response = shapes::Unauthorized),
        (status = 403, response = shapes::Forbidden),
        (status = 422, response = shapes::UnprocessableEntity),
        (status = 429, response = shapes::TooManyRequests),
        (status = 500, response = shapes::InternalError),
        (status = 503, response = shapes::ServiceUnavailable),
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
    Ok(Reply::Json(shapes::body(&shapes::ApiKeyList {
        api_keys: page.rows.into_iter().map(|k| k.shape).collect(),
        next_cursor: page.next_cursor,
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
        (status = 200, description = "The key.", body = shapes::ApiKeyWithUsage),
        (status = 400, response = shapes::BadRequest),
        (status = 401, response = shapes::Unauthorized),
        (status = 403, response = shapes::Forbidden),
        (status = 404, response = shapes::NotFound),
        (status = 429, response = shapes::TooManyRequests),
        (status = 500, response = shapes::InternalError),
        (status = 503, response = shapes::ServiceUnavailable),
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
        Some(row) => Ok(Reply::Json(shapes::body(&KeyRow::from_row(&row)?.shape))),
        None => Err(QueryError::not_found("api key")),
    }
}
