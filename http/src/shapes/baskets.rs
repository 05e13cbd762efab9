//! Baskets, their strategies and legs, templates and the marketplace.

use basketry_domain::basket as domain;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Percent, Timestamp};

/// A leg of a strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Leg {
    #[schema(value_type = super::LegAction)]
    pub action: domain::LegAction,
    #[schema(value_type = super::OptionType)]
    pub option_type: domain::OptionType,
    /// `ATM`, `ATM+n` or `ATM-n` (n from 1 to 100).
    #[schema(example = "ATM+1")]
    pub strike: String,
    #[schema(value_type = super::Expiry)]
    pub expiry: domain::Expiry,
    /// Lots per unit of allocation, 1–1000 (multiplied by each
    /// allocation's `lot_multiplier`).
    #[schema(minimum = 1, maximum = 1000)]
    pub lots: u32,
}

/// A scheduled options strategy of a basket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Strategy {
    pub strategy_id: Uuid,
    pub name: String,
    /// Upper-case exchange symbol, e.g. `NIFTY`.
    #[schema(example = "NIFTY")]
    pub underlying: String,
    #[schema(value_type = super::Product)]
    pub product: domain::Product,
    /// `HH:MM`, exchange time (Asia/Kolkata).
    #[schema(example = "09:20")]
    pub entry_time: String,
    /// `HH:MM`, after `entry_time`.
    #[schema(example = "15:15")]
    pub exit_time: String,
    #[schema(value_type = Vec<super::TradingDay>)]
    pub trading_days: Vec<domain::TradingDay>,
    /// Stop-loss, percent of premium.
    #[schema(value_type = f64, nullable)]
    pub stop_loss_pct: Option<Percent>,
    /// Target, percent of premium.
    #[schema(value_type = f64, nullable)]
    pub target_pct: Option<Percent>,
    /// 1 to 8 legs.
    pub legs: Vec<Leg>,
}

impl From<&domain::Leg> for Leg {
    fn from(l: &domain::Leg) -> Self {
        Self {
            action: l.action,
            option_type: l.option_type,
            strike: l.strike.to_string(),
            expiry: l.expiry,
            lots: l.lots.get(),
        }
    }
}

/// A strategy as clients send it, its risk limits as percentages. Both
/// APIs build it from the domain's strategy: the command API from the
/// basket's state, the query API from the read model's copy of it.
impl From<&domain::Strategy> for Strategy {
    fn from(s: &domain::Strategy) -> Self {
        Self {
            strategy_id: *s.strategy_id.as_uuid(),
            name: s.name.to_string(),
            underlying: s.underlying.to_string(),
            product: s.product,
            entry_time: s.entry_time.to_string(),
            exit_time: s.exit_time.to_string(),
            trading_days: s.trading_days.iter().copied().collect(),
            stop_loss_pct: s.stop_loss_bps.map(|r| Percent(u32::from(r))),
            target_pct: s.target_bps.map(|r| Percent(u32::from(r))),
            legs: s.legs.iter().map(Leg::from).collect(),
        }
    }
}

/// A price: integer minor units with their currency (`99900` INR is
/// ₹999.00).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pricing {
    #[serde(rename = "type")]
    #[schema(value_type = super::PricingType)]
    pub pricing_type: domain::PricingType,
    /// Minor units (paise); 0 when `FREE`.
    #[schema(example = 99900)]
    pub monthly_fee: i64,
    /// ISO 4217 code.
    #[schema(example = "INR")]
    pub currency: String,
}

/// The marketplace configuration of a published basket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Marketplace {
    /// Equal to the basket's id.
    pub template_id: Uuid,
    /// Published and not disabled.
    pub enabled: bool,
    #[schema(value_type = super::Visibility)]
    pub visibility: domain::Visibility,
    pub pricing: Pricing,
    #[schema(value_type = super::DifficultyLevel)]
    pub difficulty_level: domain::DifficultyLevel,
    /// Up to 10 upper-case tags.
    pub tags: Vec<String>,
    /// The marketplace category.
    pub category: String,
    /// First publication.
    #[schema(value_type = String, format = DateTime)]
    pub published_at: Timestamp,
}

/// A basket with its strategies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Basket {
    pub basket_id: Uuid,
    /// The owner's `user_id`.
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    /// Upper-case identifier, e.g. `INCOME`.
    pub category: String,
    pub strategies: Vec<Strategy>,
    /// Bumped by every change.
    pub revision: u64,
    /// Published as an enabled marketplace template.
    pub is_template: bool,
    /// `null` until first published.
    #[schema(required = true)]
    pub marketplace: Option<Marketplace>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A marketplace template as the template commands answer it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Template {
    /// Equal to `basket_id`.
    pub template_id: Uuid,
    /// Published and not disabled.
    pub enabled: bool,
    #[schema(value_type = super::Visibility)]
    pub visibility: domain::Visibility,
    pub pricing: Pricing,
    #[schema(value_type = super::DifficultyLevel)]
    pub difficulty_level: domain::DifficultyLevel,
    pub tags: Vec<String>,
    /// The marketplace category.
    pub category: String,
    #[schema(value_type = String, format = DateTime)]
    pub published_at: Timestamp,
    pub basket_id: Uuid,
    pub name: String,
    pub description: String,
    pub strategy_count: u32,
    pub basket_revision: u64,
    /// Equal to `enabled`.
    pub is_template: bool,
}

/// A marketplace template: identity, configuration and popularity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateItem {
    pub template_id: Uuid,
    /// Equal to `template_id`.
    pub basket_id: Uuid,
    pub name: String,
    pub description: String,
    /// The marketplace category.
    pub category: String,
    #[schema(value_type = super::DifficultyLevel, nullable, required = true)]
    pub difficulty_level: Option<domain::DifficultyLevel>,
    pub tags: Vec<String>,
    #[schema(nullable, required = true)]
    pub pricing: Option<Pricing>,
    #[schema(value_type = super::Visibility, nullable, required = true)]
    pub visibility: Option<domain::Visibility>,
    /// Published and not disabled.
    pub enabled: bool,
    /// Equal to `enabled`.
    pub is_template: bool,
    /// Subscriptions not cancelled.
    pub subscriber_count: u64,
    pub strategy_count: u32,
    pub basket_revision: u64,
    /// First publication.
    #[schema(value_type = String, format = DateTime, nullable, required = true)]
    pub published_at: Option<Timestamp>,
}

/// A page of templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateList {
    pub templates: Vec<TemplateItem>,
    /// `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// What anyone may see of a template's strategy: what runs when, not the
/// legs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyPreview {
    pub strategy_id: Uuid,
    pub name: String,
    pub underlying: String,
    #[schema(value_type = super::Product)]
    pub product: domain::Product,
    pub entry_time: String,
    pub exit_time: String,
    #[schema(value_type = Vec<super::TradingDay>)]
    pub trading_days: Vec<domain::TradingDay>,
    pub leg_count: u32,
}

/// A full strategy, for the template's owner, admins and executors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FullStrategy {
    #[serde(flatten)]
    pub strategy: Strategy,
    pub leg_count: u32,
}

/// A template's strategy: a preview, or in full for the owner, admins and
/// executors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TemplateStrategy {
    Preview(StrategyPreview),
    Full(FullStrategy),
}

/// A template with its strategies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TemplateDetail {
    #[serde(flatten)]
    pub item: TemplateItem,
    pub strategies: Vec<TemplateStrategy>,
    /// Performance metrics, `null` when none.
    #[schema(value_type = Object, nullable)]
    pub performance_metrics: serde_json::Value,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A page of baskets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BasketList {
    pub baskets: Vec<Basket>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
