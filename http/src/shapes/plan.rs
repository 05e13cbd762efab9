//! The execution plan of one minute: the orders to place, what is skipped
//! and why, and the closing line of its ndjson form. Ids are the read
//! models' text (lower-case uuids), sent as stored; members are sent in
//! the order declared here (the plan is streamed, not built as a
//! `serde_json::Value`).

use basketry_domain::basket as domain;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// Whether an order enters (`ENTRY`) or exits (`EXIT`) a strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PlanPhase {
    Entry,
    Exit,
}

/// `OPEN` on entry; `CLOSE` on exit (the order reverses its leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PositionEffect {
    Open,
    Close,
}

/// Whom an order trades for: the basket's owner on their own basket, or a
/// subscription through one of its allocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderSource {
    Owner,
    Subscription,
}

/// `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    Order,
}

/// `skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SkippedKind {
    Skipped,
}

/// `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndKind {
    End,
}

/// Why nothing is traded: `no_allocation` (the subscription has none) or
/// `zero_lots` (`floor(leg lots × lot_multiplier)` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipCode {
    NoAllocation,
    ZeroLots,
}

/// One order to place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanOrder {
    #[serde(rename = "type")]
    pub kind: OrderKind,
    pub phase: PlanPhase,
    pub position_effect: PositionEffect,
    pub source: OrderSource,
    #[schema(value_type = String, format = Uuid)]
    pub basket_id: String,
    /// Equal to `basket_id` for a subscription; `null` for the owner.
    #[schema(value_type = String, format = Uuid, nullable, required = true)]
    pub template_id: Option<String>,
    pub basket_revision: u64,
    #[schema(value_type = String, format = Uuid)]
    pub strategy_id: String,
    pub strategy_name: String,
    pub underlying: String,
    #[schema(value_type = super::Product)]
    pub product: domain::Product,
    /// The subscriber, or the owner.
    #[schema(value_type = String, format = Uuid)]
    pub user_id: String,
    /// `null` for the owner.
    #[schema(value_type = String, format = Uuid, nullable, required = true)]
    pub subscription_id: Option<String>,
    #[schema(required = true)]
    pub partner_id: Option<String>,
    /// `null` for the owner, who has no allocation.
    #[schema(value_type = String, format = Uuid, nullable, required = true)]
    pub allocation_id: Option<String>,
    #[schema(required = true)]
    pub broker_id: Option<String>,
    #[schema(required = true)]
    pub client_id: Option<String>,
    /// The allocation's multiplier; 1 for the owner.
    #[schema(example = 2.5)]
    pub lot_multiplier: f64,
    /// The allocation's; 50 for the owner.
    pub max_lots_per_order: u32,
    /// The leg's place in the strategy, from 0.
    pub leg_index: u32,
    /// What this order does: the leg's action on entry, its reverse on exit.
    #[schema(value_type = super::LegAction)]
    pub action: domain::LegAction,
    /// The leg's own action.
    #[schema(value_type = super::LegAction)]
    pub leg_action: domain::LegAction,
    #[schema(value_type = super::OptionType)]
    pub option_type: domain::OptionType,
    #[schema(example = "ATM+1")]
    pub strike: String,
    #[schema(value_type = super::Expiry)]
    pub expiry: domain::Expiry,
    /// The leg's lots.
    pub leg_lots: u32,
    /// `floor(leg_lots × lot_multiplier)`: the lots of every slice together.
    pub total_lots: u64,
    /// This order's lots, at most `max_lots_per_order`.
    pub lots: u64,
    /// Which slice of `total_lots` this order is, from 1.
    pub slice: u32,
    pub slices: u32,
}

/// What the plan does not trade, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanSkipped {
    #[serde(rename = "type")]
    pub kind: SkippedKind,
    pub phase: PlanPhase,
    #[schema(value_type = String, format = Uuid)]
    pub basket_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub template_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub strategy_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub subscription_id: String,
    #[schema(required = true)]
    pub partner_id: Option<String>,
    /// The allocation of a `zero_lots` entry.
    #[schema(value_type = String, format = Uuid, nullable, required = true)]
    pub allocation_id: Option<String>,
    /// The leg of a `zero_lots` entry.
    #[schema(required = true)]
    pub leg_index: Option<u32>,
    pub code: SkipCode,
    pub reason: String,
}

/// The plan of one minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// The instant asked for.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The planned minute, Asia/Kolkata.
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T09:20:00+05:30")]
    pub minute: Timestamp,
    /// `null` on Saturday and Sunday (no plan).
    #[schema(value_type = super::TradingDay, nullable, required = true)]
    pub weekday: Option<String>,
    /// Exits first, then by basket, strategy, the owner before subscriptions
    /// oldest first, allocation priority, leg and slice.
    pub orders: Vec<PlanOrder>,
    /// In the same order.
    pub skipped: Vec<PlanSkipped>,
    pub order_count: u64,
    pub skipped_count: u64,
}

/// The last line of the ndjson form; a stream without it was cut short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanEnd {
    #[serde(rename = "type")]
    pub kind: EndKind,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(value_type = String, format = DateTime, example = "2026-11-23T09:20:00+05:30")]
    pub minute: Timestamp,
    #[schema(value_type = super::TradingDay, nullable, required = true)]
    pub weekday: Option<String>,
    pub order_count: u64,
    pub skipped_count: u64,
}

/// One line of the `application/x-ndjson` form: the orders, then the
/// skipped entries, then the `end` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PlanLine {
    Order(PlanOrder),
    Skipped(PlanSkipped),
    End(PlanEnd),
}
