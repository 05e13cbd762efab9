//! The request bodies the domain parses — its `…Input` types — as OpenAPI
//! schemas.
//!
//! The domain crate stays free of HTTP and OpenAPI, so each input type is
//! mirrored here by a documentation type of the same name (but for
//! `UpdatePartnerConfigInput`, documented flattened into the body that
//! carries it, [`UpdateApiKeyInput`]). Members the
//! domain refuses to go without are required here (the domain types make
//! every member optional only to report all missing ones at once).
//!
//! The mirrors cannot drift unnoticed; the tests at the bottom check, for
//! each pair, on the generated document:
//! * every documented property is a member of the domain type, of a type
//!   it accepts: an example body built from the schema deserializes into
//!   it (the domain types deny unknown fields);
//! * every member of the domain type is documented;
//! * that example body — and each documented enumeration value — passes
//!   the domain's own validation, so documented formats and ranges are
//!   ones the domain accepts.

use serde_json::json;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::schemas::{
    ApiKeyStatus, DifficultyLevel, Expiry, LegAction, OptionType, PartnerType, Permission,
    PricingType, Product, TradingDay, Visibility,
};

/// A decimal as a JSON number (`2.5`) or a string (`"2.5"`); it is read
/// from its text, never through floating point.
pub struct DecimalInput;

impl PartialSchema for DecimalInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "A decimal as a JSON number (`2.5`) or its text (`\"2.5\"`); read from its \
                 text, never through floating point.",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .examples([json!(2.5)]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[+-]?[0-9]+(\.[0-9]+)?$"))
                    .examples([json!("2.5")]),
            )
            .into()
    }
}

impl ToSchema for DecimalInput {}

/// A new basket (`POST /baskets`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BasketInput {
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120, example = "Nifty weekly income")]
    pub name: String,
    /// At most 2 000 characters; empty when absent.
    #[schema(max_length = 2000, example = "Sells weekly straddles on NIFTY")]
    pub description: Option<String>,
    /// Upper-case identifier of at most 40 characters, e.g. `INCOME`,
    /// `HEDGING`, `MOMENTUM`.
    #[schema(pattern = "^[A-Z][A-Z0-9_]*$", max_length = 40, example = "INCOME")]
    pub category: String,
    /// At most 50 strategies; none when absent.
    #[schema(max_items = 50)]
    pub strategies: Option<Vec<StrategyInput>>,
}

/// A basket update (`PUT /baskets/{basket_id}`): at least one member.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBasketInput {
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120, example = "Nifty weekly income v2")]
    pub name: Option<String>,
    /// At most 2 000 characters.
    #[schema(max_length = 2000, example = "Now with a stop-loss")]
    pub description: Option<String>,
    /// Upper-case identifier.
    #[schema(pattern = "^[A-Z][A-Z0-9_]*$", max_length = 40, example = "HEDGING")]
    pub category: Option<String>,
}

/// A strategy (in `POST /baskets`, `POST /baskets/{basket_id}/strategies`
/// and `PUT /baskets/{basket_id}/strategies/{strategy_id}`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategyInput {
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120, example = "Short straddle")]
    pub name: String,
    /// Upper-case exchange symbol: a letter, then up to 31 of `A-Z 0-9 & _ -`.
    #[schema(pattern = "^[A-Z][A-Z0-9&_-]{0,31}$", example = "NIFTY")]
    pub underlying: String,
    pub product: Product,
    /// `HH:MM` (00:00–23:59), exchange time (Asia/Kolkata).
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "09:20")]
    pub entry_time: String,
    /// `HH:MM`, after `entry_time`.
    #[schema(pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "15:15")]
    pub exit_time: String,
    /// A non-empty set of days, without repeats.
    #[schema(min_items = 1, max_items = 5)]
    pub trading_days: Vec<TradingDay>,
    /// Stop-loss, percent of premium: more than 0, at most 1 000, two
    /// decimals.
    pub stop_loss_pct: Option<DecimalInput>,
    /// Target, percent of premium: more than 0, at most 1 000, two
    /// decimals.
    pub target_pct: Option<DecimalInput>,
    /// 1 to 8 legs.
    #[schema(min_items = 1, max_items = 8)]
    pub legs: Vec<LegInput>,
}

/// A leg of a strategy.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegInput {
    pub action: LegAction,
    pub option_type: OptionType,
    /// `ATM`, `ATM+n` or `ATM-n`, n from 1 to 100.
    #[schema(pattern = "^ATM([+-][1-9][0-9]{0,2})?$", example = "ATM")]
    pub strike: String,
    pub expiry: Expiry,
    /// Lots per unit of allocation.
    #[schema(minimum = 1, maximum = 1000, example = 2)]
    pub lots: i64,
}

/// A price as a request gives it.
#[derive(ToSchema)]
#[schema(example = json!({"type": "PAID", "monthly_fee": 99900, "currency": "INR"}))]
#[serde(deny_unknown_fields)]
pub struct PricingInput {
    #[serde(rename = "type")]
    pub pricing_type: PricingType,
    /// Minor units: 0 (or absent) when `FREE`, more than 0 when `PAID`.
    #[schema(minimum = 0, example = 99900)]
    pub monthly_fee: Option<i64>,
    /// Three upper-case letters; `INR` when absent.
    #[schema(pattern = "^[A-Z]{3}$", example = "INR")]
    pub currency: Option<String>,
}

/// A template's marketplace configuration
/// (`POST`/`PUT /admin/marketplace/templates/{basket_id}`). Publishing
/// needs `pricing`; an update needs at least one member.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketplaceConfigInput {
    /// `PUBLIC` when absent at publication.
    pub visibility: Option<Visibility>,
    /// Required when publishing.
    pub pricing: Option<PricingInput>,
    /// `BEGINNER` when absent at publication.
    pub difficulty_level: Option<DifficultyLevel>,
    /// Up to 10 distinct upper-case identifiers.
    #[schema(max_items = 10, example = json!(["NIFTY", "WEEKLY"]))]
    pub tags: Option<Vec<String>>,
    /// Upper-case identifier; the basket's own category when absent.
    #[schema(pattern = "^[A-Z][A-Z0-9_]*$", max_length = 40, example = "INCOME")]
    pub category: Option<String>,
}

/// A broker allocation of a subscription.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocationInput {
    /// Kept when given (to replace a list without renaming what stays); a
    /// new id otherwise.
    #[schema(format = Uuid, example = "0192f3a4-5b6c-7d8e-9f00-112233445566")]
    pub allocation_id: Option<String>,
    /// 1–64 characters.
    #[schema(min_length = 1, max_length = 64, example = "zebu")]
    pub broker_id: String,
    /// The customer's account at the broker, 1–64 characters.
    #[schema(min_length = 1, max_length = 64, example = "ZB1234")]
    pub client_id: String,
    /// `0 < m ≤ 100`, at most two decimals; 1 when absent.
    pub lot_multiplier: Option<DecimalInput>,
    /// Unique within the list, at least 1; the allocation's position
    /// (1-based) when absent.
    #[schema(minimum = 1, example = 1)]
    pub priority: Option<i64>,
    /// 1–10 000; 50 when absent.
    #[schema(minimum = 1, maximum = 10000, example = 50)]
    pub max_lots_per_order: Option<i64>,
}

/// A revenue share as percentages with at most two decimals, summing to
/// 100.
#[derive(ToSchema)]
#[schema(example = json!({"platform_percentage": 70, "partner_percentage": 30}))]
#[serde(deny_unknown_fields)]
pub struct RevenueShareInput {
    pub platform_percentage: DecimalInput,
    pub partner_percentage: DecimalInput,
}

/// A partner's quotas; a missing member takes its default.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsInput {
    /// At least 1; 100 when absent.
    #[schema(minimum = 1, maximum = 4294967295_i64, example = 100)]
    pub requests_per_minute: Option<i64>,
    /// At least 1; 10 000 when absent.
    #[schema(minimum = 1, maximum = 4294967295_i64, example = 10000)]
    pub requests_per_day: Option<i64>,
}

/// How a partner's customers see the platform.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandingInput {
    /// `true` when absent.
    pub show_platform_branding: Option<bool>,
    /// An `https` URL of at most 500 characters.
    #[schema(
        format = "uri",
        max_length = 500,
        example = "https://zebu.example/logo.png"
    )]
    pub custom_logo_url: Option<String>,
}

/// A partner and its first key (`POST /admin/partner-api-keys`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterPartnerInput {
    /// 2–32 characters: an upper-case letter, then `A-Z 0-9 _`.
    #[schema(pattern = "^[A-Z][A-Z0-9_]{1,31}$", example = "ZEBU")]
    pub partner_id: String,
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120, example = "Zebu Share and Wealth")]
    pub partner_name: String,
    pub partner_type: PartnerType,
    /// The partner's broker id, 1–64 characters; linked allocations use it.
    #[schema(min_length = 1, max_length = 64, example = "zebu")]
    pub broker_id: String,
    pub revenue_share: RevenueShareInput,
    /// At least one; `marketplace:read` and `marketplace:subscribe` when
    /// absent.
    #[schema(min_items = 1)]
    pub permissions: Option<Vec<Permission>>,
    /// 100 a minute and 10 000 a day when absent.
    pub rate_limits: Option<RateLimitsInput>,
    /// Platform branding shown, no logo, when absent.
    pub branding: Option<BrandingInput>,
}

/// `PUT /admin/partner-api-keys/{api_key_id}`: the partner's configuration
/// (the domain's `UpdatePartnerConfigInput`: objects given replace the old
/// ones whole) and this key's status; at least one member.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApiKeyInput {
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120, example = "Zebu Broking")]
    pub partner_name: Option<String>,
    pub revenue_share: Option<RevenueShareInput>,
    #[schema(min_items = 1)]
    pub permissions: Option<Vec<Permission>>,
    pub rate_limits: Option<RateLimitsInput>,
    pub branding: Option<BrandingInput>,
    /// A new status for this key: `SUSPENDED`, back to `ACTIVE`, or
    /// `REVOKED` (final).
    pub status: Option<ApiKeyStatus>,
    /// Why the status changes, 1–500 characters.
    #[schema(min_length = 1, max_length = 500, example = "Contract paused")]
    pub reason: Option<String>,
}
