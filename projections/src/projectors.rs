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
//! They copy what events carry (SPEC §5: "projectors copy, they do not
//! recompute business rules"). Events of types a projector does not handle
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
use sqlx::any::AnyQueryResult;

pub use baskets::{strategy_previews, BasketsProjector};
pub use billing::BillingIndexProjector;
pub use ledger::LedgerProjector;
pub use partner_keys::PartnerKeysProjector;
pub use schedule::ScheduleProjector;
pub use subscriptions::SubscriptionsProjector;

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
