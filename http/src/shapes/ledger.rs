//! The revenue-share ledger: lines, totals and monthly statements. Ids are
//! the read model's text (lower-case uuids), sent as stored.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// One ledger line: one charge of one billing period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    /// The `SubscriptionCharged` event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: String,
    /// `commit.prepare`: the charge's place in the global log.
    #[schema(example = "42.42")]
    pub position: String,
    pub commit_position: i64,
    pub prepare_position: i64,
    #[schema(value_type = String, format = Uuid)]
    pub subscription_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub template_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: String,
    /// `null` for a direct subscription.
    #[schema(required = true)]
    pub partner_id: Option<String>,
    /// Which billing period of the subscription (0 first).
    pub period_index: i64,
    /// The line's date.
    #[schema(value_type = String, format = DateTime)]
    pub period_start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub period_end: Timestamp,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    pub partner_bps: i64,
    pub platform_bps: i64,
    pub partner_share: i64,
    pub platform_share: i64,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
}

/// The sums over the whole requested range. With no line: zeros and
/// `currency: null`; over several currencies: all `null` (see
/// `totals_by_currency`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerTotals {
    #[schema(required = true)]
    pub gross: Option<i64>,
    #[schema(required = true)]
    pub platform_share: Option<i64>,
    #[schema(required = true)]
    pub partner_share: Option<i64>,
    #[schema(required = true)]
    pub currency: Option<String>,
}

/// The sums of one currency's lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CurrencyTotals {
    pub gross: i64,
    pub platform_share: i64,
    pub partner_share: i64,
    pub currency: String,
}

/// A page of ledger lines with the totals of the whole range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ledger {
    /// In log order.
    pub entries: Vec<LedgerEntry>,
    pub totals: LedgerTotals,
    /// One per currency, alphabetical.
    pub totals_by_currency: Vec<CurrencyTotals>,
    /// Lines in the whole range.
    pub entry_count: i64,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A partner's monthly statement with the digest of its lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Statement {
    pub partner_id: String,
    /// `YYYY-MM`.
    #[schema(example = "2026-10")]
    pub month: String,
    /// The month's first day.
    pub from: NaiveDate,
    /// The month's last day.
    pub to: NaiveDate,
    /// Every line of the month, in log order.
    pub entries: Vec<LedgerEntry>,
    pub totals: LedgerTotals,
    pub totals_by_currency: Vec<CurrencyTotals>,
    pub entry_count: i64,
    /// The canonical form the digest is over (1).
    pub canonical_form_version: u32,
    /// `sha256`.
    #[schema(example = "sha256")]
    pub digest_algorithm: String,
    /// Lower-case hex SHA-256 of the canonical lines (see the ledger
    /// documentation).
    pub digest: String,
}
