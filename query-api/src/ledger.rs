//! The revenue-share ledger (`rm_ledger`: one line per
//! `SubscriptionCharged` event), for partners to reconcile and auditors to
//! check.
//!
//! # Lines
//! A line is dated by its `period_start`. An entry renders as
//! `{event_id, position, commit_position, prepare_position,
//! subscription_id, template_id, user_id, partner_id, period_index,
//! period_start, period_end, amount, currency, partner_bps, platform_bps,
//! partner_share, platform_share, recorded_at}`; `position` is
//! `"<commit>.<prepare>"`, the charge event's place in the global log, and
//! with `event_id` names the line in a dispute. Amounts are integers in
//! minor units. Lines are listed in log order (`commit_position`,
//! `prepare_position`, then `event_id`): a new charge always lands after
//! every line already listed, so paging never repeats or skips a line.
//!
//! # `GET /partner/ledger?from=&to=` (partner with `ledger:read`)
//! The partner's lines with `from ≤ period_start's date ≤ to` (both
//! optional, `YYYY-MM-DD`, inclusive, UTC). JSON:
//! `{"entries": [...], "totals": {gross, platform_share, partner_share,
//! currency}, "totals_by_currency": [...], "entry_count", "next_cursor"}`.
//! `totals` and `entry_count` cover the whole requested range, not the
//! page, and are read in the same snapshot as the page, so they always
//! equal the sum of the range's lines. With no line, `totals` is zeros and
//! `currency: null`; should a range hold several currencies, `totals` has
//! nulls and `totals_by_currency` (always present, one object per currency
//! in alphabetical order) has each sum.
//!
//! `Accept: text/csv` gives the whole range (no paging; `limit` and
//! `cursor` are ignored) as RFC 4180 CSV, streamed (chunked) in pages of
//! [`CSV_PAGE`] lines read one query at a time, so memory stays bounded and
//! no database connection is held while the client reads; the range is
//! fixed when the request starts (lines up to the newest commit position
//! then), so it is the same bytes as a single read would give. CRLF line
//! ends, with the header
//! row `event_id,position,commit_position,prepare_position,subscription_id,
//! template_id,user_id,partner_id,period_index,period_start,period_end,
//! amount,currency,partner_bps,platform_bps,partner_share,platform_share,
//! recorded_at` (an empty `partner_id` field for direct lines).
//!
//! # `GET /admin/ledger?partner_id=&from=&to=` (admins and auditors)
//! The same over every line, or one partner's (`partner_id`); direct
//! subscriptions' lines have `partner_id: null`. CSV as above.
//!
//! # `GET /partner/statements/{yyyy-mm}` (partner with `ledger:read`)
//! Every line of the partner whose `period_start` falls in that UTC month,
//! unpaged, with `totals`, `totals_by_currency`, `entry_count`,
//! `partner_id`, `month`, `from`/`to` (the month's first and last day),
//! `canonical_form_version` (1), `digest_algorithm` (`"sha256"`) and
//! `digest`; `Accept: text/csv` gives the lines as CSV (as the ledger's).
//! Nothing in it depends on when it is asked for, so the same statement is
//! the same bytes every time, and `basketry ledger export` writes exactly
//! these bytes ([`Statement`]). A month that is not `YYYY-MM` is 400
//! `invalid_month`.
//!
//! ## Canonical form, version 1
//! The digest lets a partner prove which lines a statement had. To
//! recompute it:
//!
//! 1. take the statement's entries in **(`commit_position`,
//!    `prepare_position`) ascending order** — the order they are listed in;
//! 2. for each, write one line of these ten fields, joined by `,` with no
//!    quoting and no spaces, terminated by a single `\n` (LF), the last line
//!    included:
//!    `event_id,commit_position.prepare_position,subscription_id,period_start,period_end,amount,currency,partner_bps,partner_share,platform_share`
//!    * `event_id`, `subscription_id`: lower-case hyphenated UUIDs;
//!    * `commit_position.prepare_position`: the two integers in decimal
//!      joined by `.` (the entry's `position`);
//!    * `period_start`, `period_end`: exactly the strings of the entry;
//!    * `amount`, `partner_bps`, `partner_share`, `platform_share`:
//!      integers in decimal, `-` for a negative, no leading zeros;
//!    * `currency`: the ISO code as given (`INR`);
//! 3. `digest = lower-case hex(SHA-256(UTF-8 bytes of the concatenated
//!    lines))`. A statement without lines has the digest of the empty
//!    string (`e3b0c442…b855`).
//!
//! For example the line of a ₹999 charge at 30 %:
//! `0193…-…,42.42,0193…-…,2026-10-05T09:30:00.000000Z,2026-11-05T09:30:00.000000Z,99900,INR,3000,29970,69930\n`.
//! No field can hold a comma or a line break (ids, integers, RFC 3339
//! timestamps, ISO codes), so the form needs no escaping. A future change
//! of the form gets a new `canonical_form_version`.

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use basketry_command_api::openapi::schemas;
use basketry_domain::partner::Permission;
use basketry_http::Principal;
use chrono::{Datelike, NaiveDate};
use futures::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::AnyPool;

use crate::error::QueryError;
use crate::openapi;
use crate::paging::{Dir, KeyValue, Kind, Ordering, PageRequest};
use crate::params::{DateRange, Params};
use crate::request::{accepts, run, ChunkStream, Reply};
use crate::rows::{int, opt_text, snapshot, text, Sql};
use crate::QueryState;

/// The version of the canonical form [`LedgerLine::canonical_line`] writes.
pub const CANONICAL_FORM_VERSION: u32 = 1;

/// The query parameters of `GET /partner/ledger`.
pub const PARTNER_LEDGER_PARAMS: &[&str] = &["from", "to", "limit", "cursor"];

/// The query parameters of `GET /admin/ledger`.
pub const ADMIN_LEDGER_PARAMS: &[&str] = &["partner_id", "from", "to", "limit", "cursor"];

/// The query parameters of `GET /partner/statements/{month}`: none.
pub const STATEMENT_PARAMS: &[&str] = &[];

/// Log order.
const LEDGER: Ordering = Ordering {
    name: "ledger",
    keys: &[
        ("l.commit_position", Dir::Asc, Kind::Int),
        ("l.prepare_position", Dir::Asc, Kind::Int),
        ("l.event_id", Dir::Asc, Kind::Text),
    ],
};

const COLUMNS: &str = "l.event_id, l.commit_position, l.prepare_position, l.subscription_id, \
     l.template_id, l.user_id, l.partner_id, l.period_index, l.period_start, l.period_end, \
     l.amount, l.currency, l.partner_bps, l.platform_bps, l.partner_share, l.platform_share, \
     l.recorded_at";

/// The CSV header row.
pub const CSV_HEADER: &str = "event_id,position,commit_position,prepare_position,\
subscription_id,template_id,user_id,partner_id,period_index,period_start,period_end,amount,\
currency,partner_bps,platform_bps,partner_share,platform_share,recorded_at";

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerLine {
    /// The `SubscriptionCharged` event.
    pub event_id: String,
    /// Its commit position.
    pub commit_position: i64,
    /// Its prepare position.
    pub prepare_position: i64,
    /// The subscription charged.
    pub subscription_id: String,
    /// Its template.
    pub template_id: String,
    /// The subscriber.
    pub user_id: String,
    /// The partner, `None` for a direct subscription.
    pub partner_id: Option<String>,
    /// Which billing period of the subscription.
    pub period_index: i64,
    /// Start of the period: the line's date.
    pub period_start: String,
    /// End of the period.
    pub period_end: String,
    /// Charged, minor units.
    pub amount: i64,
    /// ISO currency.
    pub currency: String,
    /// The partner's share in basis points.
    pub partner_bps: i64,
    /// The platform's share in basis points.
    pub platform_bps: i64,
    /// The partner's share, minor units.
    pub partner_share: i64,
    /// The platform's share, minor units.
    pub platform_share: i64,
    /// When the charge was recorded.
    pub recorded_at: String,
}

impl LedgerLine {
    fn from_row(row: &AnyRow) -> Result<Self, QueryError> {
        Ok(Self {
            event_id: text(row, "event_id")?.to_ascii_lowercase(),
            commit_position: int(row, "commit_position")?,
            prepare_position: int(row, "prepare_position")?,
            subscription_id: text(row, "subscription_id")?.to_ascii_lowercase(),
            template_id: text(row, "template_id")?.to_ascii_lowercase(),
            user_id: text(row, "user_id")?.to_ascii_lowercase(),
            partner_id: opt_text(row, "partner_id")?,
            period_index: int(row, "period_index")?,
            period_start: text(row, "period_start")?,
            period_end: text(row, "period_end")?,
            amount: int(row, "amount")?,
            currency: text(row, "currency")?,
            partner_bps: int(row, "partner_bps")?,
            platform_bps: int(row, "platform_bps")?,
            partner_share: int(row, "partner_share")?,
            platform_share: int(row, "platform_share")?,
            recorded_at: text(row, "recorded_at")?,
        })
    }

    /// `"<commit>.<prepare>"`.
    pub fn position(&self) -> String {
        format!("{}.{}", self.commit_position, self.prepare_position)
    }

    /// The entry's JSON.
    pub fn view(&self) -> Value {
        json!({
            "event_id": self.event_id,
            "position": self.position(),
            "commit_position": self.commit_position,
            "prepare_position": self.prepare_position,
            "subscription_id": self.subscription_id,
            "template_id": self.template_id,
            "user_id": self.user_id,
            "partner_id": self.partner_id,
            "period_index": self.period_index,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "amount": self.amount,
            "currency": self.currency,
            "partner_bps": self.partner_bps,
            "platform_bps": self.platform_bps,
            "partner_share": self.partner_share,
            "platform_share": self.platform_share,
            "recorded_at": self.recorded_at,
        })
    }

    /// The line's canonical form, version 1 (module docs), `\n` included.
    pub fn canonical_line(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            self.event_id,
            self.position(),
            self.subscription_id,
            self.period_start,
            self.period_end,
            self.amount,
            self.currency,
            self.partner_bps,
            self.partner_share,
            self.platform_share,
        )
    }

    fn csv_row(&self) -> String {
        let fields = [
            self.event_id.clone(),
            self.position(),
            self.commit_position.to_string(),
            self.prepare_position.to_string(),
            self.subscription_id.clone(),
            self.template_id.clone(),
            self.user_id.clone(),
            self.partner_id.clone().unwrap_or_default(),
            self.period_index.to_string(),
            self.period_start.clone(),
            self.period_end.clone(),
            self.amount.to_string(),
            self.currency.clone(),
            self.partner_bps.to_string(),
            self.platform_bps.to_string(),
            self.partner_share.to_string(),
            self.platform_share.to_string(),
            self.recorded_at.clone(),
        ];
        fields
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn key(&self) -> Vec<KeyValue> {
        vec![
            KeyValue::Int(self.commit_position),
            KeyValue::Int(self.prepare_position),
            KeyValue::Text(self.event_id.clone()),
        ]
    }
}

/// `hex(SHA-256(canonical lines))` of `lines`, which must be in log order.
pub fn digest(lines: &[LedgerLine]) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.canonical_line().as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// A CSV field, quoted per RFC 4180 only when it needs it (none of the
/// ledger's fields do today; this keeps the output valid if one ever does).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// The sums of one currency's lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// The currency.
    pub currency: String,
    /// Sum of `amount`.
    pub gross: i64,
    /// Sum of `platform_share`.
    pub platform_share: i64,
    /// Sum of `partner_share`.
    pub partner_share: i64,
    /// How many lines.
    pub count: i64,
}

impl Totals {
    fn view(&self) -> Value {
        json!({
            "gross": self.gross,
            "platform_share": self.platform_share,
            "partner_share": self.partner_share,
            "currency": self.currency,
        })
    }

    /// Sums `lines` per currency, in currency order; `None` when a sum does
    /// not fit in an `i64` (never wrapped).
    fn of_lines(lines: &[LedgerLine]) -> Option<Vec<Totals>> {
        let mut by_currency: std::collections::BTreeMap<&str, Totals> = Default::default();
        for line in lines {
            let t = by_currency
                .entry(line.currency.as_str())
                .or_insert_with(|| Totals {
                    currency: line.currency.clone(),
                    ..Totals::default()
                });
            t.gross = t.gross.checked_add(line.amount)?;
            t.platform_share = t.platform_share.checked_add(line.platform_share)?;
            t.partner_share = t.partner_share.checked_add(line.partner_share)?;
            t.count += 1;
        }
        Some(by_currency.into_values().collect())
    }
}

/// The 422 of a range whose sums do not fit in 64-bit minor units.
fn totals_overflow() -> QueryError {
    QueryError::invalid(
        "to",
        "the totals of this range do not fit in 64-bit minor units; ask for a shorter range",
    )
}

/// Whether the database refused a sum because it overflowed 64 bits
/// (PostgreSQL `numeric_value_out_of_range` casting the exact sum to BIGINT;
/// SQLite's integer SUM).
fn is_sum_overflow(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("22003") || db.message().contains("integer overflow")
        }
        _ => false,
    }
}

/// The `totals`, `totals_by_currency` and `entry_count` members.
fn totals_members(totals: &[Totals]) -> (Value, Value, i64) {
    let headline = match totals {
        [] => json!({"gross": 0, "platform_share": 0, "partner_share": 0, "currency": null}),
        [one] => one.view(),
        _ => {
            json!({"gross": null, "platform_share": null, "partner_share": null, "currency": null})
        }
    };
    let by_currency = Value::Array(totals.iter().map(Totals::view).collect());
    (headline, by_currency, totals.iter().map(|t| t.count).sum())
}

/// Which lines a request covers.
#[derive(Debug, Clone)]
struct Filter {
    /// `None`: every line, direct ones included.
    partner_id: Option<String>,
    /// Bounds on `period_start`.
    range: DateRange,
}

impl Filter {
    fn push(&self, sql: &mut Sql) {
        if let Some(partner_id) = &self.partner_id {
            sql.push(" AND l.partner_id = ").bind(partner_id.clone());
        }
        if let Some(lower) = &self.range.lower {
            sql.push(" AND l.period_start >= ").bind(lower.clone());
        }
        if let Some(upper) = &self.range.upper {
            sql.push(" AND l.period_start < ").bind(upper.clone());
        }
    }

    fn lines_sql(&self) -> Sql {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM rm_ledger l WHERE 1 = 1"));
        self.push(&mut sql);
        sql
    }
}

/// Every line of `filter`, in log order.
async fn all_lines(db: &AnyPool, filter: &Filter) -> Result<Vec<LedgerLine>, QueryError> {
    let mut sql = filter.lines_sql();
    sql.push(&format!(" ORDER BY {}", LEDGER.order_by()));
    let rows = sql.query().fetch_all(db).await?;
    rows.iter().map(LedgerLine::from_row).collect()
}

/// Lines per page of a streamed CSV export.
pub const CSV_PAGE: i64 = 1_000;

/// Where a streamed CSV export is.
struct CsvCursor {
    db: AnyPool,
    filter: Filter,
    /// The newest commit position when the export started: the range.
    upper: i64,
    /// Key of the last line sent.
    after: Option<Vec<KeyValue>>,
    done: bool,
}

impl CsvCursor {
    /// The next page as CSV rows (empty when the range is done).
    async fn next_page(&mut self) -> Result<String, QueryError> {
        if self.done {
            return Ok(String::new());
        }
        let mut sql = self.filter.lines_sql();
        sql.push(" AND l.commit_position <= ").bind(self.upper);
        if let Some(key) = &self.after {
            LEDGER.push_after(&mut sql, key);
        }
        sql.push(&format!(" ORDER BY {} LIMIT ", LEDGER.order_by()))
            .bind(CSV_PAGE);
        // One statement on a pooled connection, returned before the page
        // is sent: a slow reader holds no connection.
        let rows = sql.query().fetch_all(&self.db).await?;
        let lines = rows
            .iter()
            .map(LedgerLine::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.done = (lines.len() as i64) < CSV_PAGE;
        self.after = lines.last().map(LedgerLine::key);
        let mut body = String::with_capacity(160 * lines.len());
        for line in &lines {
            body.push_str(&line.csv_row());
            body.push_str("\r\n");
        }
        Ok(body)
    }
}

/// The CSV export of `filter` as a stream: the header and the first page
/// are read before answering (so a failing database is a problem+json
/// answer), the other pages as the client takes them.
async fn csv_stream(db: &AnyPool, filter: Filter) -> Result<ChunkStream, QueryError> {
    let mut sql = Sql::new(
        "SELECT CAST(COALESCE(MAX(l.commit_position), 0) AS BIGINT) AS upper \
         FROM rm_ledger l WHERE 1 = 1",
    );
    filter.push(&mut sql);
    let upper = int(&sql.query().fetch_one(db).await?, "upper")?;
    let mut cursor = CsvCursor {
        db: db.clone(),
        filter,
        upper,
        after: None,
        done: upper == 0,
    };
    let first = format!("{CSV_HEADER}\r\n{}", cursor.next_page().await?);
    let rest = futures::stream::try_unfold(cursor, |mut cursor| async move {
        if cursor.done {
            return Ok(None);
        }
        let page = cursor.next_page().await?;
        Ok(Some((Bytes::from(page), cursor)))
    });
    let body = futures::stream::once(async move { Ok(Bytes::from(first)) }).chain(rest);
    Ok(ChunkStream(Box::pin(body)))
}

/// Whether the client asked for CSV (`text/csv` acceptable with q > 0).
fn wants_csv(req: &HttpRequest) -> bool {
    accepts(req, "text/csv")
}

/// The ledger reply for `filter`: CSV when asked, else one JSON page with
/// the range's totals.
async fn ledger(
    state: &QueryState,
    req: &HttpRequest,
    params: &Params,
    filter: Filter,
    file_stem: &str,
) -> Result<Reply, QueryError> {
    let page = PageRequest::from_params(params, LEDGER)?;
    if wants_csv(req) {
        let body = csv_stream(&state.db, filter).await?;
        let filename = format!(
            "{file_stem}-{}-{}.csv",
            params.get("from").unwrap_or("start"),
            params.get("to").unwrap_or("now")
        );
        return Ok(Reply::CsvStream { body, filename });
    }

    let mut tx = snapshot(&state.db).await?;
    let mut sql = filter.lines_sql();
    page.push_tail(&mut sql);
    let rows = sql.query().fetch_all(&mut *tx).await?;
    let lines = rows
        .iter()
        .map(LedgerLine::from_row)
        .collect::<Result<Vec<_>, _>>()?;

    let mut sums = Sql::new(
        "SELECT l.currency, \
         CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) AS gross, \
         CAST(COALESCE(SUM(l.platform_share), 0) AS BIGINT) AS platform_share, \
         CAST(COALESCE(SUM(l.partner_share), 0) AS BIGINT) AS partner_share, \
         COUNT(*) AS line_count \
         FROM rm_ledger l WHERE 1 = 1",
    );
    filter.push(&mut sums);
    sums.push(" GROUP BY l.currency ORDER BY l.currency");
    let totals = sums
        .query()
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| {
            if is_sum_overflow(&e) {
                totals_overflow()
            } else {
                e.into()
            }
        })?
        .iter()
        .map(|row| {
            Ok(Totals {
                currency: text(row, "currency")?,
                gross: int(row, "gross")?,
                platform_share: int(row, "platform_share")?,
                partner_share: int(row, "partner_share")?,
                count: int(row, "line_count")?,
            })
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    tx.commit().await?;

    let page = page.finish(lines, LedgerLine::key);
    let (totals, by_currency, count) = totals_members(&totals);
    Ok(Reply::Json(json!({
        "entries": page.rows.iter().map(LedgerLine::view).collect::<Vec<_>>(),
        "totals": totals,
        "totals_by_currency": by_currency,
        "entry_count": count,
        "next_cursor": page.next_cursor,
    })))
}

/// The partner's ledger
///
/// Needs `ledger:read`. The partner's revenue-share lines dated (by
/// `period_start`) from `from` to `to`, in log order, with the totals of
/// the whole range. `Accept: text/csv` gives the whole range as CSV
/// (RFC 4180, no paging).
#[utoipa::path(
    get,
    path = "/partner/ledger",
    tag = "Ledger",
    params(
        openapi::LedgerRange,
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of lines with the range's totals, or the whole range as CSV.", content(
            (openapi::Ledger = "application/json"),
            (String = "text/csv")
        )),
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
pub async fn partner_ledger(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        partner_ledger_query(&state, &req, &principal)
    })
    .await
}

async fn partner_ledger_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    let partner = principal.require_partner_permission(Permission::LedgerRead)?;
    let params = Params::of(req, PARTNER_LEDGER_PARAMS)?;
    let filter = Filter {
        partner_id: Some(partner.partner_id.to_string()),
        range: DateRange::from_params(&params)?,
    };
    let stem = format!("ledger-{}", partner.partner_id);
    ledger(state, req, &params, filter, &stem).await
}

/// Any ledger
///
/// Admins and auditors: every line, or one partner's, with totals; direct
/// subscriptions' lines have `partner_id: null`. `Accept: text/csv` gives
/// CSV.
#[utoipa::path(
    get,
    path = "/admin/ledger",
    tag = "Ledger",
    params(
        openapi::PartnerFilter,
        openapi::LedgerRange,
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of lines with the range's totals, or the whole range as CSV.", content(
            (openapi::Ledger = "application/json"),
            (String = "text/csv")
        )),
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
pub async fn admin_ledger(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        admin_ledger_query(&state, &req, &principal)
    })
    .await
}

async fn admin_ledger_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    principal.require_auditor()?;
    let params = Params::of(req, ADMIN_LEDGER_PARAMS)?;
    let partner_id = params.identifier("partner_id")?;
    let stem = match &partner_id {
        Some(id) => format!("ledger-{id}"),
        None => "ledger-all".to_string(),
    };
    let filter = Filter {
        partner_id,
        range: DateRange::from_params(&params)?,
    };
    ledger(state, req, &params, filter, &stem).await
}

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
            (openapi::Statement = "application/json"),
            (String = "text/csv")
        )),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
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

    /// The JSON document.
    pub fn view(&self) -> Value {
        // `load` refuses a month whose sums overflow; one built otherwise
        // shows no headline sums rather than wrapped ones.
        let (totals, by_currency, count) = match Totals::of_lines(&self.lines) {
            Some(totals) => totals_members(&totals),
            None => (
                json!({"gross": null, "platform_share": null, "partner_share": null, "currency": null}),
                Value::Null,
                i64::try_from(self.lines.len()).unwrap_or(i64::MAX),
            ),
        };
        let last_day = self.next.pred_opt().unwrap_or(self.first);
        json!({
            "partner_id": self.partner_id,
            "month": self.month,
            "from": self.first.format("%Y-%m-%d").to_string(),
            "to": last_day.format("%Y-%m-%d").to_string(),
            "entries": self.lines.iter().map(LedgerLine::view).collect::<Vec<_>>(),
            "totals": totals,
            "totals_by_currency": by_currency,
            "entry_count": count,
            "canonical_form_version": CANONICAL_FORM_VERSION,
            "digest_algorithm": "sha256",
            "digest": self.digest(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: &str, position: i64, amount: i64) -> LedgerLine {
        LedgerLine {
            event_id: event.into(),
            commit_position: position,
            prepare_position: position,
            subscription_id: "00000000-0000-0000-0000-000000000002".into(),
            template_id: "00000000-0000-0000-0000-000000000003".into(),
            user_id: "00000000-0000-0000-0000-000000000004".into(),
            partner_id: Some("ZEBU".into()),
            period_index: 0,
            period_start: "2026-10-05T09:30:00.000000Z".into(),
            period_end: "2026-11-05T09:30:00.000000Z".into(),
            amount,
            currency: "INR".into(),
            partner_bps: 3000,
            platform_bps: 7000,
            partner_share: amount * 3 / 10,
            platform_share: amount - amount * 3 / 10,
            recorded_at: "2026-10-05T09:30:00.000000Z".into(),
        }
    }

    #[test]
    fn the_canonical_line_follows_the_documented_form() {
        let l = line("00000000-0000-0000-0000-000000000001", 42, 99900);
        assert_eq!(
            l.canonical_line(),
            "00000000-0000-0000-0000-000000000001,42.42,00000000-0000-0000-0000-000000000002,\
             2026-10-05T09:30:00.000000Z,2026-11-05T09:30:00.000000Z,99900,INR,3000,29970,69930\n"
        );
        assert_eq!(
            digest(&[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn months_are_strict() {
        let (first, next) = parse_month("2026-12").unwrap();
        assert_eq!(first.to_string(), "2026-12-01");
        assert_eq!(next.to_string(), "2027-01-01");
        for bad in ["2026-13", "2026-1", "26-10", "2026/10", "2026-10-01", ""] {
            assert!(parse_month(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn totals_sum_per_currency() {
        let lines = [line("a", 1, 99900), line("b", 2, 100)];
        let totals = Totals::of_lines(&lines).unwrap();
        let (headline, by_currency, count) = totals_members(&totals);
        assert_eq!(headline["gross"], 100000);
        assert_eq!(headline["currency"], "INR");
        assert_eq!(by_currency.as_array().unwrap().len(), 1);
        assert_eq!(count, 2);
        let (empty, _, zero) = totals_members(&[]);
        assert_eq!((empty["gross"].clone(), zero), (json!(0), 0));
    }

    #[test]
    fn totals_that_overflow_are_refused_not_wrapped() {
        let mut big = line("a", 1, 0);
        big.amount = i64::MAX;
        big.platform_share = i64::MAX;
        let lines = [big, line("b", 2, 10)];
        assert_eq!(Totals::of_lines(&lines), None);
        let statement = Statement {
            partner_id: "ZEBU".into(),
            month: "2026-10".into(),
            first: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            next: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            lines: lines.to_vec(),
        };
        assert_eq!(statement.view()["totals"]["gross"], Value::Null);
        let (status, _, body) = totals_overflow().problem();
        assert_eq!(status.as_u16(), 422, "{body}");
    }

    #[test]
    fn csv_is_chosen_only_when_acceptable() {
        use actix_web::http::header::ACCEPT;
        use actix_web::test::TestRequest;
        let req = |accept: &str| {
            TestRequest::default()
                .insert_header((ACCEPT, accept))
                .to_http_request()
        };
        assert!(wants_csv(&req("text/csv")));
        assert!(wants_csv(&req("application/json;q=0.5, text/csv")));
        assert!(!wants_csv(&req("text/csv;q=0")));
        assert!(!wants_csv(&req("application/json")));
        assert!(!wants_csv(&TestRequest::default().to_http_request()));
    }
}
