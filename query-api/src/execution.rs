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
//! subscribers: a task reads the rows in keyset slices of [`SLICE_ROWS`]
//! (each slice one statement, handed over whole: one hand-off from the
//! driver per slice, not per row) and hands the body on in chunks of about
//! [`CHUNK_BYTES`] through a channel of [`CHANNEL_CHUNKS`] chunks, so a slow
//! client slows the read down instead of filling memory, and a client that
//! goes away stops it; a client that stops reading for [`STALLED_CLIENT`]
//! is cut off, so it cannot keep a pooled connection from other requests.
//! The minute's strategies are read from `rm_execution_schedule` (index
//! `rm_execution_schedule_minute`) and each one's ACTIVE subscribers from
//! `rm_subscriptions` (index `rm_subscriptions_template`), both in the
//! plan's order, twice: the first pass writes the orders and the second
//! the skipped entries.
//!
//! All slices of both passes are read in one read-only snapshot
//! (REPEATABLE READ on PostgreSQL; one read transaction on SQLite), so the
//! whole body describes one state of the read models: a subscription
//! paused, re-allocated or added while the plan is being sent is in the
//! plan as it was before or not at all, never in its orders as one and in
//! its skipped entries as the other. The price is that the snapshot's
//! pooled connection stays with the plan until its last slice is read
//! (on SQLite a snapshot is a read transaction of one connection); the
//! stall limit above is what bounds that for a client that stops reading.
//!
//! Every order is one JSON object of the same members in the same order
//! (the ndjson line is that object), concatenated from parts rendered
//! once: the strategy's head (type … product) per strategy, one part per
//! leg (leg_index … leg_lots) per strategy, the allocation's part (user_id
//! … max_lots_per_order) per allocation, then the order's sizes
//! (total_lots, lots, slice, slices).
//!
//! A failure before the first chunk is answered as problem+json (503 when
//! the database is down); one after it can only end the body early, which
//! makes the JSON form invalid and leaves the ndjson form without its `end`
//! line.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use basketry_command_api::openapi::schemas;
use basketry_domain::basket::{Expiry, Leg, LegAction, OptionType, Strike};
use basketry_domain::subscription::{BrokerAllocation, MaxLotsPerOrder};
use basketry_domain::LotMultiplier;
use basketry_http::Principal;
use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Timelike, Utc, Weekday};
use futures::StreamExt;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool};
use std::io::Write as _;
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

/// How many rows one slice of the plan's read holds: a slice is read with
/// one statement and handed over whole (one hand-off from the driver per
/// slice rather than per row), then rendered; at most one slice of
/// strategies and one of subscribers are in memory at a time.
pub const SLICE_ROWS: i64 = 2_000;

/// The strategies entering or exiting at one minute, in the plan's order,
/// one keyset slice at a time: `$1` the weekday, `$2` the minute of the
/// day, `$3`–`$5` the (`phase_rank`, `basket_id`, `strategy_id`) of the
/// last row of the previous slice (`-1`, `''`, `''` for the first), `$6`
/// the slice's size. A (basket, strategy, phase, weekday) is one row, so
/// the three columns identify a row of the minute.
const SCHEDULE_SQL: &str = "\
SELECT CAST(phase_rank AS BIGINT) AS phase_rank, phase, basket_id, strategy_id, strategy_name, \
underlying, product, legs, basket_revision, owner_id, CAST(owner_trades AS BIGINT) AS owner_trades \
FROM rm_execution_schedule \
WHERE weekday = $1 AND minute_of_day = $2 AND phase_rank >= $3 \
AND (phase_rank > $3 OR basket_id > $4 OR (basket_id = $4 AND strategy_id > $5)) \
ORDER BY phase_rank, basket_id, strategy_id LIMIT $6";

/// The ACTIVE subscriptions of a template, oldest first, one keyset slice
/// at a time (`rm_subscriptions_template`): `$1` the template, `$2`/`$3`
/// the (`created_position`, `subscription_id`) of the last row of the
/// previous slice (`i64::MIN`, `''` for the first), `$4` the slice's size.
const SUBSCRIBERS_SQL: &str = "\
SELECT subscription_id, user_id, partner_id, allocations, created_position \
FROM rm_subscriptions \
WHERE template_id = $1 AND status = 'ACTIVE' AND created_position >= $2 \
AND (created_position > $2 OR subscription_id > $3) \
ORDER BY created_position, subscription_id LIMIT $4";

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

/// One order of the plan, as one object: what the pre-rendered parts
/// below ([`HeadPart`], [`WhoPart`], [`LegPart`] and the sizes) must add up
/// to, byte for byte (checked by the tests).
#[cfg(test)]
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

/// The fields of an order that are the same for every order of a strategy
/// and source: rendered once per strategy.
#[derive(Debug, Serialize)]
struct HeadPart<'a> {
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
}

/// The fields of an order that are the same for every order of an
/// allocation (or of the owner): rendered once per allocation.
#[derive(Debug, Serialize)]
struct WhoPart<'a> {
    user_id: &'a str,
    subscription_id: Option<&'a str>,
    partner_id: Option<&'a str>,
    allocation_id: Option<String>,
    broker_id: Option<&'a str>,
    client_id: Option<&'a str>,
    lot_multiplier: LotMultiplier,
    max_lots_per_order: u32,
}

/// The fields of an order that are the same for every order of a leg:
/// rendered once per strategy.
#[derive(Debug, Serialize)]
struct LegPart {
    leg_index: usize,
    action: LegAction,
    leg_action: LegAction,
    option_type: OptionType,
    strike: Strike,
    expiry: Expiry,
    leg_lots: u32,
}

/// The members of a serialised struct, without its braces, followed by a
/// comma: a part to concatenate into an order object.
fn members(part: &impl Serialize) -> Result<Vec<u8>, QueryError> {
    let mut out = serde_json::to_vec(part)
        .map_err(|e| QueryError::Corrupt(format!("a plan part does not serialise: {e}")))?;
    // A struct with fields serialises as `{…}`.
    if out.len() < 2 || out.first() != Some(&b'{') || out.last() != Some(&b'}') {
        return Err(QueryError::Corrupt("a plan part is not an object".into()));
    }
    out.pop();
    out.remove(0);
    out.push(b',');
    Ok(out)
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

/// One row of [`SCHEDULE_SQL`]: a strategy entering or exiting at the
/// minute, its legs parsed once.
struct StrategyRow {
    phase: Phase,
    /// The keyset of the slice, as stored.
    key: (i64, String, String),
    basket_id: String,
    strategy_id: String,
    strategy_name: String,
    underlying: String,
    product: String,
    legs: Vec<Leg>,
    basket_revision: i64,
    owner_id: String,
    owner_trades: bool,
}

impl StrategyRow {
    fn from_row(row: &AnyRow) -> Result<Self, QueryError> {
        let phase_text = text(row, "phase")?;
        let phase = Phase::parse(&phase_text)
            .ok_or_else(|| QueryError::Corrupt(format!("phase {phase_text:?}")))?;
        let basket_key = text(row, "basket_id")?;
        let strategy_key = text(row, "strategy_id")?;
        let legs = serde_json::from_str(&text(row, "legs")?)
            .map_err(|e| QueryError::Corrupt(format!("legs are not legs: {e}")))?;
        Ok(Self {
            phase,
            basket_id: basket_key.to_ascii_lowercase(),
            strategy_id: strategy_key.to_ascii_lowercase(),
            key: (int(row, "phase_rank")?, basket_key, strategy_key),
            strategy_name: text(row, "strategy_name")?,
            underlying: text(row, "underlying")?,
            product: text(row, "product")?,
            legs,
            basket_revision: int(row, "basket_revision")?,
            owner_id: text(row, "owner_id")?.to_ascii_lowercase(),
            owner_trades: int(row, "owner_trades")? == 1,
        })
    }

    /// The head of its orders: the owner's (`source: "OWNER"`) or a
    /// subscription's.
    fn head(&self, subscription: bool) -> Result<Vec<u8>, QueryError> {
        let mut head = vec![b'{'];
        head.extend(members(&HeadPart {
            kind: "order",
            phase: self.phase.as_str(),
            position_effect: self.phase.position_effect(),
            source: if subscription {
                "SUBSCRIPTION"
            } else {
                "OWNER"
            },
            basket_id: &self.basket_id,
            template_id: subscription.then_some(self.basket_id.as_str()),
            basket_revision: self.basket_revision,
            strategy_id: &self.strategy_id,
            strategy_name: &self.strategy_name,
            underlying: &self.underlying,
            product: &self.product,
        })?);
        Ok(head)
    }

    /// One part per leg, in the strategy's order.
    fn leg_parts(&self) -> Result<Vec<Vec<u8>>, QueryError> {
        self.legs
            .iter()
            .enumerate()
            .map(|(leg_index, leg)| {
                members(&LegPart {
                    leg_index,
                    action: self.phase.order_action(leg.action),
                    leg_action: leg.action,
                    option_type: leg.option_type,
                    strike: leg.strike,
                    expiry: leg.expiry,
                    leg_lots: leg.lots.get(),
                })
            })
            .collect()
    }
}

/// The parts of a strategy's orders, rendered once per strategy and pass.
struct StrategyParts {
    owner_head: Vec<u8>,
    subscription_head: Vec<u8>,
    legs: Vec<Vec<u8>>,
}

impl StrategyParts {
    fn of(strategy: &StrategyRow) -> Result<Self, QueryError> {
        Ok(Self {
            owner_head: strategy.head(false)?,
            subscription_head: strategy.head(true)?,
            legs: strategy.leg_parts()?,
        })
    }
}

/// One row of [`SUBSCRIBERS_SQL`]: an ACTIVE subscription of a template.
struct SubscriberRow {
    /// The keyset of the slice, as stored.
    key: (i64, String),
    subscription_id: String,
    user_id: String,
    partner_id: Option<String>,
    allocations: String,
}

impl SubscriberRow {
    fn from_row(row: &AnyRow) -> Result<Self, QueryError> {
        let subscription_key = text(row, "subscription_id")?;
        Ok(Self {
            subscription_id: subscription_key.to_ascii_lowercase(),
            key: (int(row, "created_position")?, subscription_key),
            user_id: text(row, "user_id")?.to_ascii_lowercase(),
            partner_id: opt_text(row, "partner_id")?,
            allocations: opt_text(row, "allocations")?.unwrap_or_default(),
        })
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
        self.start_item();
        serde_json::to_writer(&mut self.buf, item)
            .map_err(|e| QueryError::Corrupt(format!("a plan line does not serialise: {e}")))?;
        self.end_item();
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

    /// Starts an item: a comma between the items of a JSON list.
    fn start_item(&mut self) {
        if self.format == Format::Json && !self.first {
            self.buf.push(b',');
        }
        self.first = false;
    }

    /// Ends an item: a line break in ndjson.
    fn end_item(&mut self) {
        if self.format == Format::Ndjson {
            self.buf.push(b'\n');
        }
    }

    /// Writes the orders of one leg for one allocation (or the owner):
    /// `floor(leg_lots × multiplier)` lots in orders of at most
    /// `max_per_order`, each order its three parts and its sizes.
    async fn leg_orders(
        &mut self,
        head: &[u8],
        who: &[u8],
        leg: (&[u8], u32),
        multiplier: LotMultiplier,
        max_per_order: u32,
    ) -> Result<(), Stop> {
        let (leg_part, leg_lots) = leg;
        let total = multiplier.apply(leg_lots);
        let max = u64::from(max_per_order.max(1));
        let slices = total.div_ceil(max);
        for slice in 1..=slices {
            let lots = (total - (slice - 1) * max).min(max);
            self.start_item();
            self.buf.extend_from_slice(head);
            self.buf.extend_from_slice(who);
            self.buf.extend_from_slice(leg_part);
            write!(
                self.buf,
                "\"total_lots\":{total},\"lots\":{lots},\"slice\":{slice},\"slices\":{slices}}}"
            )
            .map_err(|e| QueryError::Corrupt(format!("a plan line does not render: {e}")))?;
            self.end_item();
            self.orders += 1;
            self.maybe_flush().await?;
        }
        Ok(())
    }

    /// Writes the owner's orders of a strategy of a basket never published.
    async fn owner_orders(
        &mut self,
        strategy: &StrategyRow,
        parts: &StrategyParts,
    ) -> Result<(), Stop> {
        let max = MaxLotsPerOrder::default().get();
        let who = members(&WhoPart {
            user_id: &strategy.owner_id,
            subscription_id: None,
            partner_id: None,
            allocation_id: None,
            broker_id: None,
            client_id: None,
            lot_multiplier: LotMultiplier::ONE,
            max_lots_per_order: max,
        })?;
        for (leg, part) in strategy.legs.iter().zip(&parts.legs) {
            self.leg_orders(
                &parts.owner_head,
                &who,
                (part, leg.lots.get()),
                LotMultiplier::ONE,
                max,
            )
            .await?;
        }
        Ok(())
    }

    /// Writes what `pass` writes of one subscription of a strategy.
    async fn subscriber(
        &mut self,
        pass: Pass,
        strategy: &StrategyRow,
        parts: &StrategyParts,
        sub: &SubscriberRow,
    ) -> Result<(), Stop> {
        let allocations = allocations_of(&sub.allocations)?;
        let partner_id = sub.partner_id.as_deref();
        let skipped = |allocation_id: Option<String>,
                       leg_index: Option<usize>,
                       code: &'static str,
                       reason: String| SkippedLine {
            kind: "skipped",
            phase: strategy.phase.as_str(),
            basket_id: &strategy.basket_id,
            template_id: &strategy.basket_id,
            strategy_id: &strategy.strategy_id,
            user_id: &sub.user_id,
            subscription_id: &sub.subscription_id,
            partner_id,
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
                self.maybe_flush().await?;
            }
            return Ok(());
        }
        for allocation in &allocations {
            match pass {
                Pass::Orders => {
                    let max = allocation.max_lots_per_order.get();
                    let who = members(&WhoPart {
                        user_id: &sub.user_id,
                        subscription_id: Some(&sub.subscription_id),
                        partner_id,
                        allocation_id: Some(allocation.allocation_id.to_string()),
                        broker_id: Some(allocation.broker_id.as_str()),
                        client_id: Some(allocation.client_id.as_str()),
                        lot_multiplier: allocation.lot_multiplier,
                        max_lots_per_order: max,
                    })?;
                    for (leg, part) in strategy.legs.iter().zip(&parts.legs) {
                        self.leg_orders(
                            &parts.subscription_head,
                            &who,
                            (part, leg.lots.get()),
                            allocation.lot_multiplier,
                            max,
                        )
                        .await?;
                    }
                }
                Pass::Skipped => {
                    for (leg_index, leg) in strategy.legs.iter().enumerate() {
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
                            self.maybe_flush().await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// One slice of the minute's strategies, after `after`.
async fn strategy_slice(
    conn: &mut AnyConnection,
    weekday: &str,
    minute_of_day: i64,
    after: &(i64, String, String),
) -> Result<Vec<StrategyRow>, QueryError> {
    let rows = sqlx::query(SCHEDULE_SQL)
        .bind(weekday.to_string())
        .bind(minute_of_day)
        .bind(after.0)
        .bind(after.1.clone())
        .bind(after.2.clone())
        .bind(SLICE_ROWS)
        .fetch_all(conn)
        .await?;
    rows.iter().map(StrategyRow::from_row).collect()
}

/// One slice of a template's ACTIVE subscriptions, after `after`.
async fn subscriber_slice(
    conn: &mut AnyConnection,
    template_id: &str,
    after: &(i64, String),
) -> Result<Vec<SubscriberRow>, QueryError> {
    let rows = sqlx::query(SUBSCRIBERS_SQL)
        .bind(template_id.to_string())
        .bind(after.0)
        .bind(after.1.clone())
        .bind(SLICE_ROWS)
        .fetch_all(conn)
        .await?;
    rows.iter().map(SubscriberRow::from_row).collect()
}

/// Writes what `pass` writes of one strategy: the owner's orders, then its
/// subscribers' slice by slice.
async fn write_strategy(
    conn: &mut AnyConnection,
    pass: Pass,
    strategy: &StrategyRow,
    writer: &mut Writer,
) -> Result<(), Stop> {
    let parts = StrategyParts::of(strategy)?;
    if pass == Pass::Orders && strategy.owner_trades {
        writer.owner_orders(strategy, &parts).await?;
    }
    let mut after = (i64::MIN, String::new());
    loop {
        let slice = subscriber_slice(conn, &strategy.key.1, &after).await?;
        for sub in &slice {
            writer.subscriber(pass, strategy, &parts, sub).await?;
        }
        match slice.last() {
            Some(last) if slice.len() >= SLICE_ROWS as usize => after = last.key.clone(),
            _ => return Ok(()),
        }
    }
}

/// Writes the whole plan of `plan` into `writer`.
async fn write_plan(db: &AnyPool, plan: &PlanMinute, writer: &mut Writer) -> Result<(), Stop> {
    writer.begin(plan);
    if let Some(weekday) = plan.weekday {
        let mut tx = snapshot(db).await?;
        for pass in [Pass::Orders, Pass::Skipped] {
            if pass == Pass::Skipped {
                writer.between_lists();
            }
            let mut after = (-1, String::new(), String::new());
            loop {
                let slice = strategy_slice(&mut tx, weekday, plan.minute_of_day(), &after).await?;
                for strategy in &slice {
                    write_strategy(&mut tx, pass, strategy, writer).await?;
                }
                match slice.last() {
                    Some(last) if slice.len() >= SLICE_ROWS as usize => after = last.key.clone(),
                    _ => break,
                }
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

    /// The order as one serialised object, the reference the parts must
    /// reproduce.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        strategy: &StrategyRow,
        sub: Option<(&SubscriberRow, &BrokerAllocation)>,
        leg_index: usize,
        total: u64,
        lots: u64,
        slice: usize,
        slices: usize,
    ) -> String {
        let leg = &strategy.legs[leg_index];
        let (multiplier, max) = match sub {
            Some((_, a)) => (a.lot_multiplier, a.max_lots_per_order.get()),
            None => (LotMultiplier::ONE, MaxLotsPerOrder::default().get()),
        };
        serde_json::to_string(&OrderLine {
            kind: "order",
            phase: strategy.phase.as_str(),
            position_effect: strategy.phase.position_effect(),
            source: if sub.is_some() {
                "SUBSCRIPTION"
            } else {
                "OWNER"
            },
            basket_id: &strategy.basket_id,
            template_id: sub.map(|_| strategy.basket_id.as_str()),
            basket_revision: strategy.basket_revision,
            strategy_id: &strategy.strategy_id,
            strategy_name: &strategy.strategy_name,
            underlying: &strategy.underlying,
            product: &strategy.product,
            user_id: sub.map_or(strategy.owner_id.as_str(), |(s, _)| s.user_id.as_str()),
            subscription_id: sub.map(|(s, _)| s.subscription_id.as_str()),
            partner_id: sub.and_then(|(s, _)| s.partner_id.as_deref()),
            allocation_id: sub.map(|(_, a)| a.allocation_id.to_string()),
            broker_id: sub.map(|(_, a)| a.broker_id.as_str()),
            client_id: sub.map(|(_, a)| a.client_id.as_str()),
            lot_multiplier: multiplier,
            max_lots_per_order: max,
            leg_index,
            action: strategy.phase.order_action(leg.action),
            leg_action: leg.action,
            option_type: leg.option_type,
            strike: leg.strike,
            expiry: leg.expiry,
            leg_lots: leg.lots.get(),
            total_lots: total,
            lots,
            slice,
            slices,
        })
        .expect("an order serialises")
    }

    /// Everything sent into `rx`, once its senders are gone.
    async fn body_of(mut rx: mpsc::Receiver<Result<Bytes, QueryError>>) -> String {
        let mut body = Vec::new();
        while let Some(chunk) = rx.recv().await {
            body.extend_from_slice(&chunk.expect("a chunk"));
        }
        String::from_utf8(body).expect("UTF-8")
    }

    #[tokio::test]
    async fn orders_from_parts_are_the_orders_serialised_whole() {
        let legs: Vec<Leg> = serde_json::from_value(serde_json::json!([
            {"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY",
             "lots": 3},
            {"action": "BUY", "option_type": "PE", "strike": "ATM+2", "expiry": "MONTHLY",
             "lots": 1}
        ]))
        .expect("legs");
        // Priorities out of order, a multiplier with a fraction, a split,
        // and a client id that needs escaping.
        let allocations: Vec<BrokerAllocation> = serde_json::from_value(serde_json::json!([
            {"allocation_id": "0193f0a4-0000-7000-8000-000000000002", "broker_id": "kite",
             "client_id": "K9", "lot_multiplier": 1, "priority": 2, "max_lots_per_order": 50},
            {"allocation_id": "0193f0a4-0000-7000-8000-000000000001", "broker_id": "zebu",
             "client_id": "C\"1\u{e9}", "lot_multiplier": 2.5, "priority": 1,
             "max_lots_per_order": 5}
        ]))
        .expect("allocations");
        for phase in [Phase::Entry, Phase::Exit] {
            let strategy = StrategyRow {
                phase,
                key: (0, "B".into(), "S".into()),
                basket_id: "b-1".into(),
                strategy_id: "s-1".into(),
                strategy_name: "Straddle \"wide\" \u{2014} 9:20\n".into(),
                underlying: "NIFTY".into(),
                product: "MIS".into(),
                legs: legs.clone(),
                basket_revision: 7,
                owner_id: "owner-1".into(),
                owner_trades: true,
            };
            let sub = SubscriberRow {
                key: (1, "S-1".into()),
                subscription_id: "s-1".into(),
                user_id: "u-1".into(),
                partner_id: Some("p-1".into()),
                allocations: serde_json::to_string(&allocations).expect("allocations"),
            };
            let parts = StrategyParts::of(&strategy).expect("parts");
            let (tx, rx) = mpsc::channel(1024);
            let mut writer = Writer::new(Format::Ndjson, tx);
            assert!(writer.owner_orders(&strategy, &parts).await.is_ok());
            let written = writer.subscriber(Pass::Orders, &strategy, &parts, &sub);
            assert!(written.await.is_ok());
            assert!(writer.flush().await.is_ok());
            drop(writer);
            let body = body_of(rx).await;
            let mut expected = String::new();
            for (i, leg) in strategy.legs.iter().enumerate() {
                let lots = u64::from(leg.lots.get());
                expected += &reference(&strategy, None, i, lots, lots, 1, 1);
                expected.push('\n');
            }
            let mut sorted = allocations.clone();
            sorted.sort_by_key(|a| a.priority);
            for a in &sorted {
                for (i, leg) in strategy.legs.iter().enumerate() {
                    let sizes =
                        order_sizes(leg.lots.get(), a.lot_multiplier, a.max_lots_per_order.get());
                    let total = sizes.iter().sum();
                    for (n, lots) in sizes.iter().enumerate() {
                        let line = reference(
                            &strategy,
                            Some((&sub, a)),
                            i,
                            total,
                            *lots,
                            n + 1,
                            sizes.len(),
                        );
                        expected += &line;
                        expected.push('\n');
                    }
                }
            }
            assert_eq!(body, expected, "{phase:?}");
            // 2.5 × 3 lots at most 5 per order: 5 then 2.
            assert!(body.contains("\"total_lots\":7,\"lots\":2,\"slice\":2,\"slices\":2}"));
        }
    }

    /// A private read database whose schedule holds one ENTRY of strategy
    /// `s1` of template `t1` on Mondays at 09:20 IST.
    async fn one_strategy_at_0920() -> sqlx::AnyPool {
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
        db
    }

    /// A subscription to `t1` with no broker allocation (one skipped line in
    /// the plan while ACTIVE), of person `user-{user:05}`.
    async fn without_allocation(
        db: &sqlx::AnyPool,
        id: &str,
        position: i64,
        user: i64,
        status: &str,
    ) {
        sqlx::query(
            "INSERT INTO rm_subscriptions (subscription_id, created_position, user_id, \
             user_email, template_id, template_name, status, pricing_type, monthly_fee, \
             currency, allocations, status_history, created_at, updated_at) VALUES \
             ($1, $2, $3, 'x@example.com', 't1', 'T', $4, 'FREE', 0, 'INR', '[]', \
             '[]', '2026-11-23T00:00:00.000000Z', '2026-11-23T00:00:00.000000Z')",
        )
        .bind(id)
        .bind(position)
        .bind(format!("user-{user:05}"))
        .bind(status)
        .execute(db)
        .await
        .expect("subscription row");
    }

    #[tokio::test]
    async fn slices_follow_the_plan_order_across_equal_positions() {
        let db = one_strategy_at_0920().await;
        // More than two slices, three subscriptions to a log position so
        // that slices end inside a run of equal positions, inserted in
        // reverse; none has an allocation: one skipped line each.
        let count = 2 * SLICE_ROWS + 7;
        for i in (0..count).rev() {
            let status = if i % 101 == 0 { "PAUSED" } else { "ACTIVE" };
            without_allocation(&db, &format!("sub-{:05}", count - i), i / 3, i, status).await;
        }
        let plan = PlanMinute::parse(Some("2026-11-23T03:50:00Z")).expect("a Monday at 09:20 IST");
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let producer = tokio::spawn(produce(db.clone(), plan, Format::Ndjson, tx));
        let body = body_of(rx).await;
        producer.await.expect("the producer ended");
        let lines: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        let got: Vec<&str> = lines
            .iter()
            .filter(|l| l["type"] == "skipped")
            .map(|l| l["subscription_id"].as_str().expect("an id"))
            .collect();
        let mut expected: Vec<(i64, String)> = (0..count)
            .filter(|i| i % 101 != 0)
            .map(|i| (i / 3, format!("sub-{:05}", count - i)))
            .collect();
        expected.sort();
        let expected: Vec<&str> = expected.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(got, expected);
        let end = lines.last().expect("an end line");
        assert_eq!(end["type"], "end");
        assert_eq!(end["skipped_count"], expected.len());
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_gives_its_connection_back() {
        // One connection in the pool: the plan's read takes it.
        let db = one_strategy_at_0920().await;
        // Enough subscribers (none with an allocation: one skipped line
        // each) for a body far larger than the channel holds.
        for i in 0..2_000 {
            without_allocation(
                &db,
                &format!("sub-{i:05}"),
                i64::from(i),
                i64::from(i),
                "ACTIVE",
            )
            .await;
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
