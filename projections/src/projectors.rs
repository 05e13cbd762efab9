//! The projectors that fill the read models (`migrations/`), one module
//! each, each the only writer of its tables:
//!
//! | projector | tables | from |
//! |---|---|---|
//! | [`baskets`](BasketsProjector) | `rm_baskets`, `rm_template_tags` | basket events; `SubscribedToTemplate` / `SubscriptionCancelled` for `subscriber_count` |
//! | [`subscriptions`](SubscriptionsProjector) | `rm_subscriptions` | subscription events |
//! | [`ledger`](LedgerProjector) | `rm_ledger` | `SubscriptionCharged` |
//! | [`partner_keys`](PartnerKeysProjector) | `rm_partner_keys`, `rm_partners` | partner events |
//! | [`schedule`](ScheduleProjector) | `rm_execution_schedule`, `rm_execution_baskets` | basket events |
//! | [`billing`](BillingIndexProjector) | `rm_billing_index` | subscription events of PAID subscriptions |
//!
//! They copy what events carry (docs/reference/events.md#facts: projectors copy, they do not
//! recompute business rules). Events of types a projector does not handle
//! are skipped, including types this build does not know; an event of a
//! handled type that does not decode stops the projector
//! ([`ProjectionError::Decode`]).
//!
//! Storage conventions (see the migration): timestamps are RFC 3339 UTC
//! text with microseconds ([`basketry_store::chain::format_timestamp`]),
//! dates `YYYY-MM-DD`, booleans 0/1, lists and objects JSON text in the
//! events' own serde shapes.

mod baskets;
mod billing;
mod ledger;
mod partner_keys;
mod schedule;
mod subscriptions;

use std::sync::Arc;

use basketry_store::RecordedEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyQueryResult};
use sqlx::{Any, AnyConnection};

pub use baskets::{strategy_previews, BasketsProjector};
pub use billing::BillingIndexProjector;
pub use ledger::LedgerProjector;
pub use partner_keys::PartnerKeysProjector;
pub use schedule::ScheduleProjector;
pub use subscriptions::SubscriptionsProjector;

use crate::db::Backend;
use crate::{ProjectionError, Projector};

/// Every projector of the read models, in a stable order.
pub fn all() -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(BasketsProjector),
        Arc::new(SubscriptionsProjector),
        Arc::new(LedgerProjector),
        Arc::new(PartnerKeysProjector),
        Arc::new(ScheduleProjector),
        Arc::new(BillingIndexProjector),
    ]
}

/// The projector called `name` (the CLI's `projections rebuild NAME`).
pub fn named(name: &str) -> Option<Arc<dyn Projector>> {
    all().into_iter().find(|p| p.name() == name)
}

/// A timestamp as the read models store it.
fn ts(t: &DateTime<Utc>) -> String {
    basketry_store::chain::format_timestamp(t)
}

/// A date (`YYYY-MM-DD`, UTC) as the read models store it.
fn date(t: &DateTime<Utc>) -> String {
    t.date_naive().to_string()
}

/// `value` as JSON text.
fn json(event: &RecordedEvent, value: &impl Serialize) -> Result<String, ProjectionError> {
    // Event data are plain structs that always serialize; should one not,
    // say which event it was rather than panic.
    serde_json::to_string(value).map_err(|e| ProjectionError::inconsistent(event, e.to_string()))
}

/// JSON text read back from a row of the projector's own table.
fn parse_json<T: serde::de::DeserializeOwned>(
    event: &RecordedEvent,
    column: &str,
    text: &str,
) -> Result<T, ProjectionError> {
    serde_json::from_str(text)
        .map_err(|e| ProjectionError::inconsistent(event, format!("{column} is not JSON: {e}")))
}

/// Checks that an update reached the one row `event` is about: a missing row
/// means the log holds an event for something it never created.
fn one_row(
    result: AnyQueryResult,
    event: &RecordedEvent,
    what: &str,
) -> Result<(), ProjectionError> {
    match result.rows_affected() {
        1 => Ok(()),
        n => Err(ProjectionError::inconsistent(
            event,
            format!("expected one {what} row, found {n}"),
        )),
    }
}

/// A small integer (basis points, period index) as a `BIGINT`.
fn int(value: impl Into<i64>) -> i64 {
    value.into()
}

/// A statement of the read database with its arguments.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Most values bound to one statement (SQLite takes at most 32 766,
/// PostgreSQL 65 535).
const MAX_VALUES: usize = 30_000;

/// Most rows one multi-row statement carries.
const MAX_ROWS: usize = 256;

/// A row that a multi-row statement writes.
pub(crate) trait BindRow: Sync {
    /// Values per row.
    const COLS: usize;
    /// Binds the row's values, in column order.
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q>;
}

/// `head ($1, …, $cols), (…), … tail`: `rows` rows of `cols` placeholders.
///
/// SQLite gets anonymous `?` placeholders: it looks a numbered (`$N`,
/// `?N`) parameter's name up by a linear search when binding it, so a
/// statement of thousands of numbered values costs time quadratic in their
/// number; anonymous ones bind in order at no cost.
fn values_sql(backend: Backend, head: &str, rows: usize, cols: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 6);
    sql.push_str(head);
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { " (" } else { ", (" });
        for col in 0..cols {
            n += 1;
            if col > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// `SELECT … WHERE key IN (…)` for `keys` keys: `head ( (k1), (k2) ) tail`.
pub(crate) fn in_list_sql(conn: &AnyConnection, head: &str, keys: usize, tail: &str) -> String {
    values_sql(
        Backend::of(conn),
        &format!("{head} ("),
        keys,
        1,
        &format!("){tail}"),
    )
}

/// `rows` cut into slices of a power-of-two length (at most `most`): each
/// length is one statement text, prepared once per connection and kept in
/// sqlx's statement cache, instead of one statement (and its memory) for
/// every batch size.
pub(crate) fn statement_chunks<T>(rows: &[T], most: usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(1 << rest.len().min(most.max(1)).ilog2());
        chunks.push(chunk);
        rest = after;
    }
    chunks
}

/// Runs `head VALUES-list tail` over `rows`, as few statements as the
/// databases' limits on bound values allow; the rows affected in all.
///
/// The rows of one statement must not share a conflict key (PostgreSQL
/// refuses an `ON CONFLICT DO UPDATE` that would touch a row twice):
/// callers write each key once per batch.
pub(crate) async fn execute_rows<R: BindRow>(
    conn: &mut AnyConnection,
    head: &str,
    tail: &str,
    rows: &[R],
) -> Result<u64, ProjectionError> {
    let most = (MAX_VALUES / R::COLS).clamp(1, MAX_ROWS);
    let backend = Backend::of(conn);
    let mut affected = 0;
    for chunk in statement_chunks(rows, most) {
        let sql = values_sql(backend, head, chunk.len(), R::COLS, tail);
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = row.bind(query);
        }
        affected += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(affected)
}

impl<T: BindRow> BindRow for &T {
    const COLS: usize = T::COLS;
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        (**self).bind(query)
    }
}

/// A key bound alone: for `… WHERE key IN (…)` lists.
impl BindRow for String {
    const COLS: usize = 1;
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query.bind(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_cut_into_power_of_two_statements() {
        let rows: Vec<u32> = (0..13).collect();
        let lengths: Vec<usize> = statement_chunks(&rows, 4).iter().map(|c| c.len()).collect();
        assert_eq!(lengths, [4, 4, 4, 1]);
        let lengths: Vec<usize> = statement_chunks(&rows, 256)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(lengths, [8, 4, 1]);
        assert!(statement_chunks::<u32>(&[], 8).is_empty());
    }

    #[test]
    fn values_lists_number_their_placeholders_row_by_row_on_postgres_only() {
        assert_eq!(
            values_sql(
                Backend::Postgres,
                "INSERT INTO t (a, b) VALUES",
                2,
                2,
                "ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            values_sql(
                Backend::Sqlite,
                "INSERT INTO t (a, b) VALUES",
                2,
                2,
                "ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            values_sql(Backend::Postgres, "DELETE FROM t WHERE a IN (", 3, 1, ")"),
            "DELETE FROM t WHERE a IN ( ($1), ($2), ($3) )"
        );
    }
}
