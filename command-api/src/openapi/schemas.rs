//! The command API's response shapes.
//!
//! Every shape both APIs send is a typed struct of
//! [`basketry_http::shapes`], re-exported here so the route annotations
//! can keep naming them `schemas::X`. What remains below are the shapes
//! only the command API sends whose bodies the handlers still write
//! themselves (a strategy with its basket's revision, a new subscription
//! with its first charge, the partner subscribe answer, a key with its
//! secret); they document those bodies until the handlers build them as
//! typed structs.

pub use basketry_http::shapes::{
    Actor, Allocation, ApiKey, ApiKeyStatus, BadRequest, Basket, Branding, Conflict,
    DifficultyLevel, Expiry, FieldError, Forbidden, InternalError, Leg, LegAction, Marketplace,
    NotFound, OptionType, PartnerType, PayloadTooLarge, Permission, Pricing, PricingType, Problem,
    Product, RateLimits, RevenueSharePercent, ServiceUnavailable, StatusChange, Strategy,
    Subscription, SubscriptionStatus, Template, TooManyRequests, TradingDay, Unauthorized,
    UnprocessableEntity, UnsupportedMediaType, Visibility,
};

use chrono::{DateTime, NaiveDate, Utc};
use utoipa::ToSchema;
use uuid::Uuid;

/// A strategy as a strategy command answers it: the strategy plus the
/// basket it belongs to and the basket's new revision.
#[derive(ToSchema)]
pub struct BasketStrategy {
    #[serde(flatten)]
    pub strategy: Strategy,
    pub basket_id: Uuid,
    pub basket_revision: u64,
}

/// The charge made at subscription (PAID templates).
#[derive(ToSchema)]
pub struct Charge {
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub partner_share: i64,
    pub platform_share: i64,
}

/// A new subscription, with its first charge.
#[derive(ToSchema)]
pub struct NewSubscription {
    #[serde(flatten)]
    pub subscription: Subscription,
    /// `null` for a FREE template.
    #[schema(nullable)]
    pub first_charge: Charge,
}

/// The allocation a partner subscribe linked.
#[derive(ToSchema)]
pub struct LinkedAllocation {
    pub allocation_id: Uuid,
    /// The partner's `broker_id`.
    pub broker_id: String,
    pub client_id: String,
    pub lot_multiplier: f64,
    /// Always `LINKED`.
    #[schema(example = "LINKED")]
    pub status: String,
}

/// The split of the first charge.
#[derive(ToSchema)]
pub struct PartnerRevenue {
    /// The partner's share, minor units (0 for FREE).
    pub partner_commission: i64,
    /// The platform's share, minor units.
    pub platform_fee: i64,
    pub currency: String,
}

/// What `POST /partner/marketplace/subscribe` answers.
#[derive(ToSchema)]
pub struct PartnerSubscription {
    pub subscription_id: Uuid,
    /// UUIDv5 of the lower-cased e-mail: the same user who logs in directly.
    pub user_id: Uuid,
    pub template_id: Uuid,
    pub status: SubscriptionStatus,
    /// `null` unless `auto_link_broker`.
    #[schema(nullable)]
    pub broker_allocation: LinkedAllocation,
    pub revenue_share: PartnerRevenue,
    #[schema(nullable)]
    pub next_billing_date: NaiveDate,
}

/// A new key: the key and, this once, its secret.
#[derive(ToSchema)]
pub struct IssuedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// `sk_<partner>_live_<base62>`. Shown once: only its argon2id hash is
    /// kept, and an `Idempotency-Key` replay of this response leaves it out.
    pub api_secret: String,
}

/// A rotated key: the new secret (shown once) and how long the previous
/// one stays valid.
#[derive(ToSchema)]
pub struct RotatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The new secret, shown once (an `Idempotency-Key` replay of this
    /// response leaves it out).
    pub api_secret: String,
    /// Hours the previous secret keeps working (0: it stopped at once).
    pub grace_period_hours: u32,
}
