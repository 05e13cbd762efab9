//! A partner's monthly statement: `GET /partner/statements/{yyyy-mm}`
//! and what `basketry ledger export` writes (the module docs of
//! [`super`] describe its canonical form and digest).

use actix_web::{web, HttpRequest, HttpResponse};
use basketry_domain::partner::Permission;
use basketry_http::shapes;
use basketry_http::Principal;
use chrono::{Datelike, NaiveDate};
use serde_json::Value;
use sqlx::AnyPool;

use super::{
    all_lines, digest, totals_members, totals_overflow, wants_csv, Filter, LedgerLine, Totals,
    CANONICAL_FORM_VERSION, CSV_HEADER, NO_HEADLINE, STATEMENT_PARAMS,
};
use crate::error::QueryError;
use crate::params::{DateRange, Params};
use crate::request::{run, Reply};
use crate::QueryState;

/// A strict `YYYY-MM` month: its first day and the first day of the next.
pub fn parse_month(raw: &str) -> Option<(NaiveDate, NaiveDate)> {
    let bytes = raw.as_bytes();
    if bytes.len() != 7 || bytes[4] != b'-' {
        return None;
    }
    let first = crate::params::parse_date(&format!("{raw}-01"))?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    Some((first, next))
}

/// A monthly statement
///
/// Needs `ledger:read`. Every line of the partner dated in that UTC month,
/// with totals and the SHA-256 digest of the canonical lines (version 1:
/// one line per entry, `event_id,commit.prepare,subscription_id,
/// period_start,period_end,amount,currency,partner_bps,partner_share,
/// platform_share` and `\n`). `Accept: text/csv` gives the lines as CSV.
/// The same statement is the same bytes every time. A month that is not
/// `YYYY-MM` is 400 `invalid_month`.
#[utoipa::path(
    get,
    path = "/partner/statements/{month}",
    tag = "Ledger",
    params(
        ("month" = String, Path, description = "`YYYY-MM`.", example = "2026-10"),
    ),
    responses(
        (status = 200, description = "The statement, or its lines as CSV.", content(
            (shapes::Statement = "application/json"),
            (String = "text/csv")
        )),
        (status = 400, response = shapes::BadRequest),
        (status = 401, response = shapes::Unauthorized),
        (status = 403, response = shapes::Forbidden),
        (status = 429, response = shapes::TooManyRequests),
        (status = 500, response = shapes::InternalError),
        (status = 503, response = shapes::ServiceUnavailable),
    ),
    security(("partner_key" = [], "partner_secret" = [])),
)]
pub async fn partner_statement(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        statement_query(&state, &req, &principal)
    })
    .await
}

async fn statement_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    let partner = principal.require_partner_permission(Permission::LedgerRead)?;
    Params::of(req, STATEMENT_PARAMS)?;
    let raw = req.match_info().get("month").unwrap_or_default();
    let statement = Statement::load(&state.db, partner.partner_id.as_ref(), raw).await?;
    if wants_csv(req) {
        return Ok(Reply::Csv {
            body: statement.to_csv(),
            filename: statement.csv_filename(),
        });
    }
    Ok(Reply::Json(statement.view()))
}

/// Lines as CSV: the header row, then one row per line, CRLF line ends.
fn csv(lines: &[LedgerLine]) -> String {
    let mut body = String::with_capacity(128 * (lines.len() + 1));
    body.push_str(CSV_HEADER);
    body.push_str("\r\n");
    for line in lines {
        body.push_str(&line.csv_row());
        body.push_str("\r\n");
    }
    body
}

/// A partner's monthly statement: what `GET /partner/statements/{month}`
/// answers and what `basketry ledger export` writes, byte for byte — both
/// render it with [`Statement::to_json`] or [`Statement::to_csv`], and it
/// holds nothing that depends on when it was rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The partner.
    pub partner_id: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The month's first day.
    pub first: NaiveDate,
    /// The next month's first day.
    pub next: NaiveDate,
    /// Every line of the partner dated (by `period_start`) in the month, in
    /// log order.
    pub lines: Vec<LedgerLine>,
}

impl Statement {
    /// Reads the statement of `partner_id` for `month` (`YYYY-MM`, else 400
    /// `invalid_month`) from the ledger read model.
    pub async fn load(db: &AnyPool, partner_id: &str, month: &str) -> Result<Self, QueryError> {
        let (first, next) = parse_month(month).ok_or_else(|| {
            QueryError::bad_request("invalid_month", "the month must be written YYYY-MM")
        })?;
        let filter = Filter {
            partner_id: Some(partner_id.to_string()),
            range: DateRange {
                lower: Some(first.format("%Y-%m-%d").to_string()),
                upper: Some(next.format("%Y-%m-%d").to_string()),
            },
        };
        // One statement, one read: the lines, their totals and their digest
        // all come from the same rows.
        let lines = all_lines(db, &filter).await?;
        if Totals::of_lines(&lines).is_none() {
            return Err(totals_overflow());
        }
        Ok(Self {
            partner_id: partner_id.to_string(),
            month: month.to_string(),
            first,
            next,
            lines,
        })
    }

    /// The SHA-256 digest of the canonical lines ([`digest`]).
    pub fn digest(&self) -> String {
        digest(&self.lines)
    }

    /// The statement as the API shows it.
    pub fn shape(&self) -> shapes::Statement {
        // `load` refuses a month whose sums overflow; one built otherwise
        // shows no headline sums rather than wrapped ones.
        let (totals, by_currency, count) = match Totals::of_lines(&self.lines) {
            Some(totals) => totals_members(&totals),
            None => (
                NO_HEADLINE,
                Vec::new(),
                i64::try_from(self.lines.len()).unwrap_or(i64::MAX),
            ),
        };
        let last_day = self.next.pred_opt().unwrap_or(self.first);
        shapes::Statement {
            partner_id: self.partner_id.clone(),
            month: self.month.clone(),
            from: self.first,
            to: last_day,
            entries: self.lines.iter().map(LedgerLine::entry).collect(),
            totals,
            totals_by_currency: by_currency,
            entry_count: count,
            canonical_form_version: CANONICAL_FORM_VERSION,
            digest_algorithm: "sha256".to_string(),
            digest: self.digest(),
        }
    }

    /// The JSON document.
    pub fn view(&self) -> Value {
        shapes::body(&self.shape())
    }

    /// The JSON document as the API sends it.
    pub fn to_json(&self) -> String {
        self.view().to_string()
    }

    /// The lines as CSV, as the API sends them for `Accept: text/csv`.
    pub fn to_csv(&self) -> String {
        csv(&self.lines)
    }

    /// The CSV's suggested file name.
    pub fn csv_filename(&self) -> String {
        format!("statement-{}-{}.csv", self.partner_id, self.month)
    }
}
