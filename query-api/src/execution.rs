//! The execution plan (SPEC §3 "Execution plan"):
//! `GET /execution/plan?at=RFC3339`, for executors and admins.
//!
//! # The minute
//! `at` (any RFC 3339 offset; a `+` that a query string turned into a space
//! is read back as `+`) is converted to Asia/Kolkata — a fixed UTC+05:30,
//! India has no daylight saving time — and truncated to the minute. Its
//! date gives the weekday; Saturday, Sunday and a minute at which no
//! strategy enters or exits give an empty plan. A missing `at` is 400
//! `missing_parameter`, a malformed one 400 `invalid_timestamp`.
//!
//! # What is planned
//! For every strategy whose `entry_time` (phase `ENTRY`, the legs as they
//! are: `position_effect: "OPEN"`) or `exit_time` (phase `EXIT`: each
//! order's `action` is the reverse of its leg's `leg_action`, closing what
//! the entry opened: `position_effect: "CLOSE"`) is that minute on one of
//! its `trading_days`:
//!
//! * the basket owner's own basket — a basket never published as a
//!   marketplace template (only admins can publish, and a published
//!   template trades for its subscribers, not on the admin's account, also
//!   once disabled): `source: "OWNER"`, `user_id` the owner, no
//!   subscription and no allocation (`subscription_id`, `allocation_id`,
//!   `broker_id`, `client_id` are null), `lot_multiplier` 1 and
//!   `max_lots_per_order` 50 (the default of an allocation);
//! * every ACTIVE subscription of the template (`source: "SUBSCRIPTION"`;
//!   PAUSED and CANCELLED ones are left out), for each of its broker
//!   allocations in `priority` order: `total_lots = floor(leg_lots ×
//!   lot_multiplier)` with the exact two-decimal multiplier
//!   ([`LotMultiplier::apply`]), split into orders of at most
//!   `max_lots_per_order` lots (`slice` of `slices`, the last one smaller:
//!   7 lots at most 5 per order are 5 then 2).
//!
//! Not planned, and said why in `skipped`: a subscription without any
//! allocation (`code: "no_allocation"`, one entry per subscription and
//! phase), and an allocation whose `total_lots` for a leg is 0
//! (`code: "zero_lots"`, one entry per allocation and leg).
//!
//! # Order
//! Deterministic: exits before entries (positions are closed before new
//! ones are opened in the same minute), then by `basket_id`, `strategy_id`;
//! within a strategy the owner first, then subscriptions oldest first (by
//! the log position of their creation, then `subscription_id`); within a
//! subscription allocations by `priority`, then legs in the strategy's
//! order, then slices. `skipped` follows the same order.
//!
//! # Forms
//! JSON (default): `{"at", "minute", "weekday", "orders": [...],
//! "skipped": [...], "order_count", "skipped_count"}` — `at` is the
//! instant asked for in UTC, `minute` the planned minute in IST
//! (`2026-11-23T09:20:00+05:30`), `weekday` `MON`…`FRI` or null. Every
//! order has `"type": "order"`, every skipped entry `"type": "skipped"`.
//!
//! `Accept: application/x-ndjson`: one JSON object per line — the orders,
//! then the skipped entries (the same objects as in the JSON form), then
//! one `{"type": "end", "at", "minute", "weekday", "order_count",
//! "skipped_count"}` line. A stream without its `end` line was cut short.
//!
//! # Streaming
//! Both forms are streamed with bounded memory, whatever the number of
//! subscribers: a task reads the rows with `fetch` (never collecting them)
//! and hands the body on in chunks of about [`CHUNK_BYTES`] through a
//! channel of [`CHANNEL_CHUNKS`] chunks, so a slow client slows the read
//! down instead of filling memory, and a client that goes away stops it; a
//! client that stops reading for [`STALLED_CLIENT`] is cut off, so it
//! cannot keep a pooled connection from other requests.
//! The plan is two passes of one indexed join (`rm_execution_schedule` of
//! the minute joined to `rm_subscriptions` on `template_id`, `status`), the
//! first writing the orders and the second the skipped entries, in one
//! read-only snapshot (REPEATABLE READ on PostgreSQL; one read transaction
//! on SQLite), so both passes see the same read models: a plan costs two
//! SQL statements however many subscribers there are.
//!
//! A failure before the first chunk is answered as problem+json (503 when
//! the database is down); one after it can only end the body early, which
//! makes the JSON form invalid and leaves the ndjson form without its `end`
//! line.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use basketry_command_api::auth::Principal;
use basketry_command_api::openapi::schemas;
use basketry_domain::basket::{Expiry, Leg, LegAction, OptionType, Strike};
use basketry_domain::subscription::{BrokerAllocation, MaxLotsPerOrder};
use basketry_domain::LotMultiplier;
use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Timelike, Utc, Weekday};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use tokio::sync::mpsc;

use crate::consistency::Token;
use crate::error::QueryError;
use crate::openapi;
use crate::params::Params;
use crate::request::accepts;
use crate::rows::{int, opt_text, snapshot, text};
use crate::QueryState;

/// The query parameters of `GET /execution/plan`.
pub const PLAN_PARAMS: &[&str] = &["at"];

/// The media type of the line-by-line form.
pub const NDJSON: &str = "application/x-ndjson";

/// Asia/Kolkata: UTC+05:30 all year.
pub const IST_OFFSET_SECONDS: i32 = 5 * 3600 + 30 * 60;

/// Asia/Kolkata as an offset.
const IST: FixedOffset = match FixedOffset::east_opt(IST_OFFSET_SECONDS) {
    Some(offset) => offset,
    // Checked at compile time: 19 800 s is within ±24 h.
    None => panic!("UTC+05:30 is a valid offset"),
};

/// About how many bytes of body are handed on at a time.
pub const CHUNK_BYTES: usize = 32 * 1024;

/// How many chunks may wait for a slow client.
pub const CHANNEL_CHUNKS: usize = 4;

/// How long the plan's read waits for a client to take the next chunk. The
/// read holds a pooled connection (its snapshot) while it waits, so a
/// client that stops reading is cut off after this long and the connection
/// goes back to the pool; its body ends without the `end` line (ndjson) or
/// the closing brackets (JSON). A client that reads, however slowly, is not
/// affected: the wait is per chunk.
pub const STALLED_CLIENT: std::time::Duration = std::time::Duration::from_secs(5);

/// The rows of one minute: the owner's line of each strategy of a basket
/// never published, and one line per ACTIVE subscription of each template,
/// in the plan's order (module docs). `$1` is the weekday, `$2` the minute
/// of the day.
const PLAN_SQL: &str = "\
SELECT s.phase_rank, s.phase, s.basket_id, s.strategy_id, s.strategy_name, s.underlying, \
s.product, s.legs, s.basket_revision, CAST(0 AS BIGINT) AS source_rank, s.owner_id AS user_id, \
CAST(NULL AS TEXT) AS subscription_id, CAST(NULL AS TEXT) AS partner_id, \
CAST(NULL AS TEXT) AS allocations, CAST(0 AS BIGINT) AS created_position \
FROM rm_execution_schedule s \
WHERE s.weekday = $1 AND s.minute_of_day = $2 AND s.owner_trades = 1 \
UNION ALL \
SELECT s.phase_rank, s.phase, s.basket_id, s.strategy_id, s.strategy_name, s.underlying, \
s.product, s.legs, s.basket_revision, CAST(1 AS BIGINT) AS source_rank, sub.user_id, \
sub.subscription_id, sub.partner_id, sub.allocations, sub.created_position \
FROM rm_execution_schedule s \
JOIN rm_subscriptions sub ON sub.template_id = s.basket_id AND sub.status = 'ACTIVE' \
WHERE s.weekday = $1 AND s.minute_of_day = $2 \
ORDER BY phase_rank, basket_id, strategy_id, source_rank, created_position, subscription_id";

// ------------------------------------------------------------ arithmetic

/// Whether a schedule row enters or exits a strategy's legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// At `entry_time`: the legs as they are.
    Entry,
    /// At `exit_time`: the reverse of each leg.
    Exit,
}

impl Phase {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "ENTRY" => Some(Phase::Entry),
            "EXIT" => Some(Phase::Exit),
            _ => None,
        }
    }

    /// `ENTRY` or `EXIT`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Entry => "ENTRY",
            Phase::Exit => "EXIT",
        }
    }

    /// The action of this phase's order for a leg: the leg's own on entry,
    /// its reverse on exit.
    pub const fn order_action(self, leg: LegAction) -> LegAction {
        match (self, leg) {
            (Phase::Entry, action) => action,
            (Phase::Exit, LegAction::Buy) => LegAction::Sell,
            (Phase::Exit, LegAction::Sell) => LegAction::Buy,
        }
    }

    /// `OPEN` on entry, `CLOSE` on exit.
    pub const fn position_effect(self) -> &'static str {
        match self {
            Phase::Entry => "OPEN",
            Phase::Exit => "CLOSE",
        }
    }
}

/// The order sizes for a leg of `leg_lots` traded by an allocation:
/// `floor(leg_lots × multiplier)` lots split into orders of at most
/// `max_per_order`, largest first. Empty when that is 0 lots.
pub fn order_sizes(leg_lots: u32, multiplier: LotMultiplier, max_per_order: u32) -> Vec<u64> {
    let total = multiplier.apply(leg_lots);
    let max = u64::from(max_per_order.max(1));
    let mut sizes = Vec::with_capacity(usize::try_from(total.div_ceil(max)).unwrap_or(0));
    let mut left = total;
    while left > 0 {
        let size = left.min(max);
        sizes.push(size);
        left -= size;
    }
    sizes
}

// ------------------------------------------------------------ the minute

/// The minute a plan is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanMinute {
    /// The instant asked for, UTC.
    pub at: DateTime<Utc>,
    /// The minute in IST, seconds dropped.
    pub minute: DateTime<FixedOffset>,
    /// `MON`…`FRI`; `None` on a weekend.
    pub weekday: Option<&'static str>,
}

impl PlanMinute {
    /// The IST minute of `at`.
    pub fn of(at: DateTime<Utc>) -> Self {
        let local = at.with_timezone(&IST);
        let minute = local
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(local);
        let weekday = match minute.weekday() {
            Weekday::Mon => Some("MON"),
            Weekday::Tue => Some("TUE"),
            Weekday::Wed => Some("WED"),
            Weekday::Thu => Some("THU"),
            Weekday::Fri => Some("FRI"),
            Weekday::Sat | Weekday::Sun => None,
        };
        Self {
            at,
            minute,
            weekday,
        }
    }

    /// Reads the `at` parameter: RFC 3339 with any offset.
    pub fn parse(raw: Option<&str>) -> Result<Self, QueryError> {
        let raw = raw.ok_or_else(|| {
            QueryError::bad_request(
                "missing_parameter",
                "query parameter `at` is required: an RFC 3339 timestamp such as \
                 2026-11-23T09:20:00%2B05:30 or 2026-11-23T03:50:00Z",
            )
        })?;
        let parsed = DateTime::parse_from_rfc3339(raw).or_else(|e| {
            // `+05:30` in a query string that was not percent-encoded
            // arrives as ` 05:30`.
            match raw.len().checked_sub(6) {
                Some(i) if raw.is_char_boundary(i) && raw[i..].starts_with(' ') => {
                    DateTime::parse_from_rfc3339(&format!("{}+{}", &raw[..i], &raw[i + 1..]))
                }
                _ => Err(e),
            }
        });
        parsed
            .map(|t| Self::of(t.with_timezone(&Utc)))
            .map_err(|_| {
                QueryError::bad_request(
                    "invalid_timestamp",
                    "query parameter `at` must be an RFC 3339 timestamp such as \
                     2026-11-23T09:20:00%2B05:30 or 2026-11-23T03:50:00Z",
                )
            })
    }

    /// Minutes since midnight, IST.
    pub fn minute_of_day(&self) -> i64 {
        i64::from(self.minute.hour() * 60 + self.minute.minute())
    }

    fn at_text(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    fn minute_text(&self) -> String {
        self.minute.to_rfc3339_opts(SecondsFormat::Secs, false)
    }
}

// ------------------------------------------------------------ the lines

/// One order of the plan.
#[derive(Debug, Serialize)]
struct OrderLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    phase: &'static str,
    position_effect: &'static str,
    source: &'static str,
    basket_id: &'a str,
    template_id: Option<&'a str>,
    basket_revision: i64,
    strategy_id: &'a str,
    strategy_name: &'a str,
    underlying: &'a str,
    product: &'a str,
    user_id: &'a str,
    subscription_id: Option<&'a str>,
    partner_id: Option<&'a str>,
    allocation_id: Option<String>,
    broker_id: Option<&'a str>,
    client_id: Option<&'a str>,
    lot_multiplier: LotMultiplier,
    max_lots_per_order: u32,
    leg_index: usize,
    action: LegAction,
    leg_action: LegAction,
    option_type: OptionType,
    strike: Strike,
    expiry: Expiry,
    leg_lots: u32,
    total_lots: u64,
    lots: u64,
    slice: usize,
    slices: usize,
}

/// Something the plan does not trade, and why.
#[derive(Debug, Serialize)]
struct SkippedLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    phase: &'static str,
    basket_id: &'a str,
    template_id: &'a str,
    strategy_id: &'a str,
    user_id: &'a str,
    subscription_id: &'a str,
    partner_id: Option<&'a str>,
    allocation_id: Option<String>,
    leg_index: Option<usize>,
    code: &'static str,
    reason: String,
}

/// The last line of the ndjson form.
#[derive(Debug, Serialize)]
struct EndLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    at: &'a str,
    minute: &'a str,
    weekday: Option<&'static str>,
    order_count: u64,
    skipped_count: u64,
}

/// Who a row plans for.
enum Source {
    /// The basket's owner, on their own basket.
    Owner,
    /// An ACTIVE subscription with its allocations (JSON, as projected).
    Subscription {
        subscription_id: String,
        partner_id: Option<String>,
        allocations: String,
    },
}

/// One row of [`PLAN_SQL`].
struct PlanRow {
    phase: Phase,
    basket_id: String,
    strategy_id: String,
    strategy_name: String,
    underlying: String,
    product: String,
    legs: String,
    basket_revision: i64,
    user_id: String,
    source: Source,
}

impl PlanRow {
    fn from_row(row: &AnyRow) -> Result<Self, QueryError> {
        let phase_text = text(row, "phase")?;
        let phase = Phase::parse(&phase_text)
            .ok_or_else(|| QueryError::Corrupt(format!("phase {phase_text:?}")))?;
        let source = if int(row, "source_rank")? == 0 {
            Source::Owner
        } else {
            Source::Subscription {
                subscription_id: opt_text(row, "subscription_id")?
                    .ok_or_else(|| QueryError::Corrupt("subscription without an id".into()))?
                    .to_ascii_lowercase(),
                partner_id: opt_text(row, "partner_id")?,
                allocations: opt_text(row, "allocations")?.unwrap_or_default(),
            }
        };
        Ok(Self {
            phase,
            basket_id: text(row, "basket_id")?.to_ascii_lowercase(),
            strategy_id: text(row, "strategy_id")?.to_ascii_lowercase(),
            strategy_name: text(row, "strategy_name")?,
            underlying: text(row, "underlying")?,
            product: text(row, "product")?,
            legs: text(row, "legs")?,
            basket_revision: int(row, "basket_revision")?,
            user_id: text(row, "user_id")?.to_ascii_lowercase(),
            source,
        })
    }
}

/// The legs of the last strategy seen: consecutive rows are mostly the same
/// strategy for many subscribers, so its legs are parsed once.
#[derive(Default)]
struct LegCache {
    text: String,
    legs: Vec<Leg>,
}

impl LegCache {
    fn get(&mut self, text: &str) -> Result<&[Leg], QueryError> {
        if self.text != text {
            self.legs = serde_json::from_str(text)
                .map_err(|e| QueryError::Corrupt(format!("legs are not legs: {e}")))?;
            self.text = text.to_string();
        }
        Ok(&self.legs)
    }
}

fn allocations_of(text: &str) -> Result<Vec<BrokerAllocation>, QueryError> {
    let mut allocations: Vec<BrokerAllocation> = serde_json::from_str(text)
        .map_err(|e| QueryError::Corrupt(format!("allocations are not allocations: {e}")))?;
    allocations.sort_by_key(|a| a.priority);
    Ok(allocations)
}

/// Which list a pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Orders,
    Skipped,
}

// ------------------------------------------------------------ the body

/// The response form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Ndjson,
}

/// Why writing the plan stopped early.
enum Stop {
    /// The client went away: nothing to report.
    Gone,
    /// The read failed.
    Failed(QueryError),
}

impl From<QueryError> for Stop {
    fn from(e: QueryError) -> Self {
        Stop::Failed(e)
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Failed(e.into())
    }
}

/// Writes the body in chunks into the channel.
struct Writer {
    format: Format,
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, QueryError>>,
    /// No item written yet in the current JSON list.
    first: bool,
    orders: u64,
    skipped: u64,
}

impl Writer {
    fn new(format: Format, tx: mpsc::Sender<Result<Bytes, QueryError>>) -> Self {
        Self {
            format,
            buf: Vec::with_capacity(CHUNK_BYTES + 4096),
            tx,
            first: true,
            orders: 0,
            skipped: 0,
        }
    }

    fn raw(&mut self, text: &str) {
        self.buf.extend_from_slice(text.as_bytes());
    }

    fn item(&mut self, item: &impl Serialize) -> Result<(), Stop> {
        if self.format == Format::Json && !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        serde_json::to_writer(&mut self.buf, item)
            .map_err(|e| QueryError::Corrupt(format!("a plan line does not serialise: {e}")))?;
        if self.format == Format::Ndjson {
            self.buf.push(b'\n');
        }
        Ok(())
    }

    fn text_value(&mut self, value: &str) {
        // Strings of the plan's own making (timestamps, weekdays) always
        // serialise; the fallback only keeps the JSON valid.
        let quoted = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        self.raw(&quoted);
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES + 4096),
        ));
        match tokio::time::timeout(STALLED_CLIENT, self.tx.send(Ok(chunk))).await {
            Ok(sent) => sent.map_err(|_| Stop::Gone),
            Err(_) => {
                tracing::warn!(
                    "execution plan: the client took no data for {} s; cut off",
                    STALLED_CLIENT.as_secs()
                );
                Err(Stop::Gone)
            }
        }
    }

    async fn maybe_flush(&mut self) -> Result<(), Stop> {
        if self.buf.len() >= CHUNK_BYTES {
            self.flush().await
        } else {
            Ok(())
        }
    }

    fn begin(&mut self, plan: &PlanMinute) {
        if self.format == Format::Json {
            self.raw("{\"at\":");
            self.text_value(&plan.at_text());
            self.raw(",\"minute\":");
            self.text_value(&plan.minute_text());
            self.raw(",\"weekday\":");
            match plan.weekday {
                Some(day) => self.text_value(day),
                None => self.raw("null"),
            }
            self.raw(",\"orders\":[");
            self.first = true;
        }
    }

    fn between_lists(&mut self) {
        if self.format == Format::Json {
            self.raw("],\"skipped\":[");
            self.first = true;
        }
    }

    fn end(&mut self, plan: &PlanMinute) -> Result<(), Stop> {
        match self.format {
            Format::Json => {
                let counts = format!(
                    "],\"order_count\":{},\"skipped_count\":{}}}",
                    self.orders, self.skipped
                );
                self.raw(&counts);
                Ok(())
            }
            Format::Ndjson => {
                let (at, minute) = (plan.at_text(), plan.minute_text());
                let end = EndLine {
                    kind: "end",
                    at: &at,
                    minute: &minute,
                    weekday: plan.weekday,
                    order_count: self.orders,
                    skipped_count: self.skipped,
                };
                self.item(&end)
            }
        }
    }

    /// Writes what `pass` writes of one row.
    fn row(&mut self, pass: Pass, row: &PlanRow, legs: &[Leg]) -> Result<(), Stop> {
        let phase = row.phase;
        match &row.source {
            Source::Owner => {
                if pass == Pass::Orders {
                    let max = MaxLotsPerOrder::default().get();
                    self.orders_for(row, legs, None, LotMultiplier::ONE, max)?;
                }
            }
            Source::Subscription {
                subscription_id,
                partner_id,
                allocations,
            } => {
                let allocations = allocations_of(allocations)?;
                let skipped = |allocation_id: Option<String>,
                               leg_index: Option<usize>,
                               code: &'static str,
                               reason: String| SkippedLine {
                    kind: "skipped",
                    phase: phase.as_str(),
                    basket_id: &row.basket_id,
                    template_id: &row.basket_id,
                    strategy_id: &row.strategy_id,
                    user_id: &row.user_id,
                    subscription_id,
                    partner_id: partner_id.as_deref(),
                    allocation_id,
                    leg_index,
                    code,
                    reason,
                };
                if allocations.is_empty() {
                    if pass == Pass::Skipped {
                        self.item(&skipped(
                            None,
                            None,
                            "no_allocation",
                            "the subscription has no broker allocation".into(),
                        ))?;
                        self.skipped += 1;
                    }
                    return Ok(());
                }
                for allocation in &allocations {
                    match pass {
                        Pass::Orders => self.orders_for(
                            row,
                            legs,
                            Some((subscription_id, partner_id.as_deref(), allocation)),
                            allocation.lot_multiplier,
                            allocation.max_lots_per_order.get(),
                        )?,
                        Pass::Skipped => {
                            for (leg_index, leg) in legs.iter().enumerate() {
                                let lots = leg.lots.get();
                                if allocation.lot_multiplier.apply(lots) == 0 {
                                    let reason = format!(
                                        "floor({lots} lots × lot_multiplier {}) is 0 lots",
                                        allocation.lot_multiplier
                                    );
                                    self.item(&skipped(
                                        Some(allocation.allocation_id.to_string()),
                                        Some(leg_index),
                                        "zero_lots",
                                        reason,
                                    ))?;
                                    self.skipped += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn orders_for(
        &mut self,
        row: &PlanRow,
        legs: &[Leg],
        subscription: Option<(&String, Option<&str>, &BrokerAllocation)>,
        multiplier: LotMultiplier,
        max_per_order: u32,
    ) -> Result<(), Stop> {
        let phase = row.phase;
        for (leg_index, leg) in legs.iter().enumerate() {
            let sizes = order_sizes(leg.lots.get(), multiplier, max_per_order);
            let total: u64 = sizes.iter().sum();
            for (i, lots) in sizes.iter().enumerate() {
                let order = OrderLine {
                    kind: "order",
                    phase: phase.as_str(),
                    position_effect: phase.position_effect(),
                    source: if subscription.is_some() {
                        "SUBSCRIPTION"
                    } else {
                        "OWNER"
                    },
                    basket_id: &row.basket_id,
                    template_id: subscription.map(|_| row.basket_id.as_str()),
                    basket_revision: row.basket_revision,
                    strategy_id: &row.strategy_id,
                    strategy_name: &row.strategy_name,
                    underlying: &row.underlying,
                    product: &row.product,
                    user_id: &row.user_id,
                    subscription_id: subscription.map(|(id, _, _)| id.as_str()),
                    partner_id: subscription.and_then(|(_, partner, _)| partner),
                    allocation_id: subscription.map(|(_, _, a)| a.allocation_id.to_string()),
                    broker_id: subscription.map(|(_, _, a)| a.broker_id.as_str()),
                    client_id: subscription.map(|(_, _, a)| a.client_id.as_str()),
                    lot_multiplier: multiplier,
                    max_lots_per_order: max_per_order,
                    leg_index,
                    action: phase.order_action(leg.action),
                    leg_action: leg.action,
                    option_type: leg.option_type,
                    strike: leg.strike,
                    expiry: leg.expiry,
                    leg_lots: leg.lots.get(),
                    total_lots: total,
                    lots: *lots,
                    slice: i + 1,
                    slices: sizes.len(),
                };
                self.item(&order)?;
                self.orders += 1;
            }
        }
        Ok(())
    }
}

/// Writes the whole plan of `plan` into `writer`.
async fn write_plan(db: &AnyPool, plan: &PlanMinute, writer: &mut Writer) -> Result<(), Stop> {
    writer.begin(plan);
    if let Some(weekday) = plan.weekday {
        let mut tx = snapshot(db).await?;
        let mut legs = LegCache::default();
        for pass in [Pass::Orders, Pass::Skipped] {
            if pass == Pass::Skipped {
                writer.between_lists();
            }
            let mut rows = sqlx::query(PLAN_SQL)
                .bind(weekday)
                .bind(plan.minute_of_day())
                .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let row = PlanRow::from_row(&row)?;
                let legs = legs.get(&row.legs)?;
                writer.row(pass, &row, legs)?;
                writer.maybe_flush().await?;
            }
        }
        tx.commit().await?;
    } else {
        writer.between_lists();
    }
    writer.end(plan)?;
    writer.flush().await
}

/// Runs [`write_plan`] and reports how it ended into the channel.
async fn produce(
    db: AnyPool,
    plan: PlanMinute,
    format: Format,
    tx: mpsc::Sender<Result<Bytes, QueryError>>,
) {
    let mut writer = Writer::new(format, tx.clone());
    match write_plan(&db, &plan, &mut writer).await {
        Ok(()) | Err(Stop::Gone) => {}
        Err(Stop::Failed(e)) => {
            tracing::error!(error = %e, minute = %plan.minute_text(), "execution plan failed");
            // The client may be gone too; then there is no one to tell.
            let _ = tx.send(Err(e)).await;
        }
    }
}

/// Who may ask, which minute, and the `X-Consistency-Token` wait.
async fn prepare(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<PlanMinute, QueryError> {
    principal.require_executor()?;
    let params = Params::of(req, PLAN_PARAMS)?;
    let plan = PlanMinute::parse(params.get("at"))?;
    if let Some(token) = Token::from_headers(req.headers())? {
        state
            .checkpoints
            .wait_for(token, state.consistency_wait)
            .await?;
    }
    Ok(plan)
}

/// The execution plan of a minute
///
/// Executors and admins: every order to place at the minute of `at`
/// (Asia/Kolkata, truncated to the minute) — each strategy entering or
/// exiting then on that weekday, for the owner of a basket never published
/// and for every ACTIVE subscription of a template, per broker allocation:
/// `floor(leg lots × lot_multiplier)` lots split into orders of at most
/// `max_lots_per_order`; on exit each order reverses its leg. What is not
/// traded (no allocation, 0 lots) is listed in `skipped` with the reason.
/// Exits come before entries, then by basket, strategy, the owner before
/// subscriptions oldest first, allocation priority, leg and slice.
/// `Accept: application/x-ndjson` streams one object per line: the orders,
/// the skipped entries, then an `end` line with the counts.
#[utoipa::path(
    get,
    path = "/execution/plan",
    tag = "Execution",
    params(openapi::PlanAt),
    responses(
        (status = 200, description = "The plan of the minute (streamed).", content(
            (openapi::Plan = "application/json"),
            (openapi::PlanLine = "application/x-ndjson")
        )),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
pub async fn plan(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    // The plan streams, so it takes its token here rather than in
    // `request::run`; the headers go on every answer, errors included.
    let limits = match crate::request::admit(&state, &principal).await {
        Ok(limits) => limits,
        Err(refused) => return refused,
    };
    let plan = match prepare(&state, &req, &principal).await {
        Ok(plan) => plan,
        Err(e) => return crate::request::with_headers(e.error_response(), &limits),
    };
    let format = if accepts(&req, NDJSON) {
        Format::Ndjson
    } else {
        Format::Json
    };
    let (tx, mut rx) = mpsc::channel(CHANNEL_CHUNKS);
    tokio::spawn(produce(state.db.clone(), plan, format, tx));
    let first = match rx.recv().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(e)) => return crate::request::with_headers(e.error_response(), &limits),
        None => {
            let e = QueryError::Corrupt("the plan writer stopped without a word".into());
            return crate::request::with_headers(e.error_response(), &limits);
        }
    };
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let body = futures::stream::once(async move { Ok::<_, QueryError>(first) }).chain(rest);
    let content_type = match format {
        Format::Json => "application/json",
        Format::Ndjson => NDJSON,
    };
    let response = HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "no-store"))
        .streaming(body);
    crate::request::with_headers(response, &limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> LotMultiplier {
        LotMultiplier::parse_str(text).unwrap()
    }

    #[test]
    fn lots_are_floored_and_split_at_the_allocation_maximum() {
        assert_eq!(order_sizes(3, m("2.5"), 5), vec![5, 2]);
        assert_eq!(order_sizes(3, m("2.5"), 50), vec![7]);
        assert_eq!(order_sizes(4, m("2.5"), 5), vec![5, 5]);
        assert_eq!(order_sizes(1000, m("100"), 10_000), vec![10_000; 10]);
        assert_eq!(order_sizes(1, m("0.5"), 50), Vec::<u64>::new());
        assert_eq!(order_sizes(3, m("0.33"), 50), Vec::<u64>::new());
        assert_eq!(order_sizes(3, m("0.34"), 50), vec![1]);
        assert_eq!(order_sizes(7, m("1"), 1), vec![1; 7]);
    }

    #[test]
    fn exits_reverse_the_legs() {
        assert_eq!(Phase::Exit.order_action(LegAction::Sell), LegAction::Buy);
        assert_eq!(Phase::Exit.order_action(LegAction::Buy), LegAction::Sell);
        assert_eq!(Phase::Entry.order_action(LegAction::Sell), LegAction::Sell);
    }

    #[test]
    fn the_minute_is_ist_truncated() {
        let p = PlanMinute::parse(Some("2026-11-23T03:50:59.999Z")).unwrap();
        assert_eq!(p.minute_text(), "2026-11-23T09:20:00+05:30");
        assert_eq!(p.weekday, Some("MON"));
        assert_eq!(p.minute_of_day(), 9 * 60 + 20);
        // 23:59 UTC on a Friday is already Saturday in India.
        let late = PlanMinute::parse(Some("2026-11-27T18:40:00Z")).unwrap();
        assert_eq!(late.weekday, None);
        // A `+` that became a space in the query string.
        let spaced = PlanMinute::parse(Some("2026-11-23T09:20:00 05:30")).unwrap();
        assert_eq!(spaced.minute, p.minute);
        for bad in ["2026-11-23", "09:20", "2026-11-23T09:20:00", "yesterday"] {
            assert!(PlanMinute::parse(Some(bad)).is_err(), "{bad}");
        }
        assert!(PlanMinute::parse(None).is_err());
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_gives_its_connection_back() {
        // One connection in the pool: the plan's read takes it.
        let db = basketry_projections::db::open("sqlite::memory:")
            .await
            .expect("read database");
        sqlx::query(
            "INSERT INTO rm_execution_schedule (basket_id, strategy_id, phase, weekday, \
             minute_of_day, phase_rank, owner_id, owner_trades, strategy_name, underlying, \
             product, legs, basket_revision) VALUES ('t1', 's1', 'ENTRY', 'MON', 560, 1, \
             'owner', 0, 'Straddle', 'NIFTY', 'MIS', '[]', 1)",
        )
        .execute(&db)
        .await
        .expect("schedule row");
        // Enough subscribers (none with an allocation: one skipped line
        // each) for a body far larger than the channel holds.
        for i in 0..2_000 {
            sqlx::query(
                "INSERT INTO rm_subscriptions (subscription_id, created_position, user_id, \
                 user_email, template_id, template_name, status, pricing_type, monthly_fee, \
                 currency, allocations, status_history, created_at, updated_at) VALUES \
                 ($1, $2, $3, 'x@example.com', 't1', 'T', 'ACTIVE', 'FREE', 0, 'INR', '[]', \
                 '[]', '2026-11-23T00:00:00.000000Z', '2026-11-23T00:00:00.000000Z')",
            )
            .bind(format!("sub-{i:05}"))
            .bind(i64::from(i))
            .bind(format!("user-{i:05}"))
            .execute(&db)
            .await
            .expect("subscription row");
        }
        let plan = PlanMinute::parse(Some("2026-11-23T03:50:00Z")).expect("a Monday at 09:20 IST");
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let producer = tokio::spawn(produce(db.clone(), plan, Format::Ndjson, tx));
        // The client never reads; another request still gets the
        // connection, within the stall limit and not at the pool's timeout.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let conn = tokio::time::timeout(
            STALLED_CLIENT + std::time::Duration::from_secs(10),
            db.acquire(),
        )
        .await
        .expect("the connection came back")
        .expect("acquire");
        assert!(
            started.elapsed() >= std::time::Duration::from_secs(1),
            "the read had it"
        );
        drop(conn);
        producer.await.expect("the producer ended");
        drop(rx);
    }
}
