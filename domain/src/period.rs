//! Billing periods (docs/reference/domain.md#billing-periods): one calendar month, anchored at the
//! subscription time like Stripe's billing-cycle anchor.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};

/// One billing period `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BillingPeriod {
    /// The period's index from the anchor (0 is the first month).
    pub index: u32,
    /// When the period starts (and is charged).
    pub start: DateTime<Utc>,
    /// When it ends, which is when the next one starts.
    pub end: DateTime<Utc>,
}

/// Period `k` runs from `anchor + k months` to `anchor + (k+1) months`.
///
/// Each bound is computed from the anchor, never from the previous bound, so
/// the anchor's day comes back after a short month (31 Jan → 28 Feb → 31 Mar
/// → 30 Apr); a day the month lacks is clamped to its last day, and the time
/// of day is kept. `None` only past chrono's last representable date.
pub fn period(anchor: DateTime<Utc>, k: u32) -> Option<BillingPeriod> {
    let start = anchor.checked_add_months(Months::new(k))?;
    let end = anchor.checked_add_months(Months::new(k.checked_add(1)?))?;
    Some(BillingPeriod {
        index: k,
        start,
        end,
    })
}
