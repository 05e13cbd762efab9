//! What the command API answers, as OpenAPI schemas.
//!
//! The handlers render their bodies with `serde_json::json!`
//! ([`crate::views`] and a few handlers), so these types exist for the
//! document only and are never built. They cannot drift unnoticed: the
//! black-box test `openapi` (`tests/api/openapi.rs`) sends every command
//! and checks each real body against the documented schema with
//! [`super::shape`] — an undocumented member, a missing required one or a
//! wrong type fails it. The query API reuses the shared shapes (`Basket`,
//! `Subscription`, `ApiKey`, …) for its own answers, where its tests do
//! the same.
//!
//! Enumerations ([`Product`], [`SubscriptionStatus`], …) are built from the
//! domain's own `ALL` lists, so a value added to the domain appears here by
//! itself.
//!
//! A member that is always present but may be `null` is written
//! `#[schema(nullable)]` on a non-`Option` type (required and nullable); an
//! `Option` member is one that may be absent.

use chrono::{DateTime, NaiveDate, Utc};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{ToResponse, ToSchema};
use uuid::Uuid;

/// Declares a documentation type for a domain enumeration: a string schema
/// whose values are the domain type's `ALL`, spelled by its `as_str`.
macro_rules! domain_enum {
    ($(#[$meta:meta])* $name:ident = $domain:ty, $description:literal) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some(<$domain>::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

domain_enum!(
    /// `MIS` or `NRML`.
    Product = basketry_domain::basket::Product,
    "Product type: intraday (`MIS`) or carry-forward (`NRML`)."
);
domain_enum!(
    /// `MON` … `FRI`.
    TradingDay = basketry_domain::basket::TradingDay,
    "An exchange trading day."
);
domain_enum!(
    /// `BUY` or `SELL`.
    LegAction = basketry_domain::basket::LegAction,
    "Whether the leg buys or sells."
);
domain_enum!(
    /// `CE` or `PE`.
    OptionType = basketry_domain::basket::OptionType,
    "Call (`CE`) or put (`PE`)."
);
domain_enum!(
    /// `WEEKLY` or `MONTHLY`.
    Expiry = basketry_domain::basket::Expiry,
    "Which expiry the leg trades."
);
domain_enum!(
    /// `PUBLIC` or `PRIVATE`.
    Visibility = basketry_domain::basket::Visibility,
    "`PUBLIC` templates are listed in the marketplace; `PRIVATE` ones are subscribable by id only."
);
domain_enum!(
    /// `FREE` or `PAID`.
    PricingType = basketry_domain::basket::PricingType,
    "Whether subscribers pay a monthly fee."
);
domain_enum!(
    /// `BEGINNER` … `ADVANCED`.
    DifficultyLevel = basketry_domain::basket::DifficultyLevel,
    "How demanding the template is."
);
domain_enum!(
    /// `ACTIVE`, `PAUSED` or `CANCELLED`.
    SubscriptionStatus = basketry_domain::subscription::SubscriptionStatus,
    "`ACTIVE ⇄ PAUSED`, either `→ CANCELLED` (final)."
);
domain_enum!(
    /// `BROKER`, `ADVISOR` or `OTHER`.
    PartnerType = basketry_domain::partner::PartnerType,
    "What kind of business the partner is."
);
domain_enum!(
    /// `marketplace:read`, …
    Permission = basketry_domain::partner::Permission,
    "What a partner's keys may do."
);
domain_enum!(
    /// `ACTIVE`, `SUSPENDED` or `REVOKED`.
    ApiKeyStatus = basketry_domain::partner::ApiKeyStatus,
    "Whether the key authenticates: `ACTIVE ⇄ SUSPENDED`, either `→ REVOKED` (final)."
);

// ------------------------------------------------------------------ errors

/// An error, as RFC 9457 `application/problem+json`. Every 4xx and 5xx
/// answer of both APIs has this body.
#[derive(ToSchema)]
#[schema(example = json!({
    "type": "https://basketry.dev/problems/validation_failed",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "request validation failed",
    "code": "validation_failed",
    "errors": [{"field": "strategies[0].legs[1].lots", "message": "must be between 1 and 1000"}]
}))]
pub struct Problem {
    /// `https://basketry.dev/problems/{code}`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    pub problem_type: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for people. A 500 never carries its cause.
    pub detail: String,
    /// Stable snake_case identifier to branch on, e.g. `validation_failed`,
    /// `not_found`, `already_subscribed`, `rate_limited`.
    pub code: String,
    /// With `validation_failed`: every invalid field, by its path in the
    /// body (`strategies[0].legs[1].lots`) or query string.
    #[schema(required = false)]
    pub errors: Vec<FieldError>,
    /// With `already_subscribed`: the subscription that already exists.
    #[schema(required = false)]
    pub subscription_id: Uuid,
    /// With `idempotency_key_committed`: the `X-Consistency-Token` of the
    /// committed request's last event (`{commit}.{prepare}`), to read its
    /// result with.
    #[schema(required = false)]
    pub consistency_token: String,
    /// With `idempotency_key_committed`: the event streams the committed
    /// request wrote, e.g. `subscription-{id}`, in log order.
    #[schema(required = false)]
    pub streams: Vec<String>,
}

/// One invalid field of a request.
#[derive(ToSchema)]
pub struct FieldError {
    /// The field's path; empty for a rule about the whole body.
    pub field: String,
    /// Why it is invalid.
    pub message: String,
}

/// Bad request: the request could not be read — malformed JSON or an
/// unknown member (`malformed_json`), an unreadable body
/// (`unreadable_body`), an invalid `Idempotency-Key`
/// (`invalid_idempotency_key`) or `X-Consistency-Token`
/// (`invalid_consistency_token`); on queries an unknown, repeated or
/// malformed query parameter (`unknown_parameter`, `repeated_parameter`,
/// `malformed_query`), a foreign cursor (`invalid_cursor`) or month
/// (`invalid_month`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct BadRequest(pub Problem);

/// Unauthenticated: no credentials (`authentication_required`), or
/// credentials that do not authenticate (`malformed_credentials`,
/// `invalid_token`, `token_expired`, `invalid_token_signature`,
/// `unknown_key`, `invalid_secret`, `api_key_suspended`,
/// `api_key_revoked`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unauthorized(pub Problem);

/// Forbidden: authenticated, but this principal may not do this
/// (`forbidden`; a partner key without the permission the route needs:
/// `missing_permission`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Forbidden(pub Problem);

/// Not found: no such resource, or not the caller's (`not_found`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotFound(pub Problem);

/// Conflict with the resource's state or a duplicate (the route's
/// description names its codes), a change that kept losing to concurrent
/// ones (`concurrent_modification`), a retry while the first request
/// with the same `Idempotency-Key` is still running
/// (`idempotency_request_in_progress`), or a retry of a request that
/// committed but whose response was lost (`idempotency_key_committed`, with
/// `consistency_token` and `streams`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Conflict(pub Problem);

/// The body is larger than 64 KiB (`payload_too_large`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct PayloadTooLarge(pub Problem);

/// A body that is not `application/json` (`unsupported_media_type`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub Problem);

/// Invalid: the body or a query parameter is well-formed but breaks a rule
/// (`validation_failed`, with `errors` naming every invalid field), or the
/// `Idempotency-Key` was used before with a different request
/// (`idempotency_key_reused`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnprocessableEntity(pub Problem);

/// Too many requests: the partner's per-minute or per-day quota is spent
/// (`rate_limited`), or too many wrong secrets were tried for this key
/// (`too_many_failed_attempts`).
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(
        ("Retry-After" = u64, description = "Seconds to wait before retrying."),
        ("RateLimit-Policy" = String, description = "Partner requests only: the key's quotas."),
        ("RateLimit" = String, description = "Partner requests only: what is left of the tightest quota (`r=0`)."),
    )
)]
pub struct TooManyRequests(pub Problem);

/// A bug; the cause is logged, never sent (`internal_error`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct InternalError(pub Problem);

/// A store or the rate limiter is unavailable (`service_unavailable`), or
/// authentication cannot be decided (`authentication_unavailable`; it
/// fails closed); on queries also `consistency_timeout`: the read models
/// did not reach the request's `X-Consistency-Token` in time.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))
)]
pub struct ServiceUnavailable(pub Problem);

// ------------------------------------------------------ baskets, templates

/// A leg of a strategy.
#[derive(ToSchema)]
pub struct Leg {
    pub action: LegAction,
    pub option_type: OptionType,
    /// `ATM`, `ATM+n` or `ATM-n` (n from 1 to 100).
    #[schema(example = "ATM+1")]
    pub strike: String,
    pub expiry: Expiry,
    /// Lots per unit of allocation, 1–1000 (multiplied by each
    /// allocation's `lot_multiplier`).
    #[schema(minimum = 1, maximum = 1000)]
    pub lots: u32,
}

/// A scheduled options strategy of a basket.
#[derive(ToSchema)]
pub struct Strategy {
    pub strategy_id: Uuid,
    pub name: String,
    /// Upper-case exchange symbol, e.g. `NIFTY`.
    #[schema(example = "NIFTY")]
    pub underlying: String,
    pub product: Product,
    /// `HH:MM`, exchange time (Asia/Kolkata).
    #[schema(example = "09:20")]
    pub entry_time: String,
    /// `HH:MM`, after `entry_time`.
    #[schema(example = "15:15")]
    pub exit_time: String,
    pub trading_days: Vec<TradingDay>,
    /// Stop-loss, percent of premium.
    #[schema(nullable)]
    pub stop_loss_pct: f64,
    /// Target, percent of premium.
    #[schema(nullable)]
    pub target_pct: f64,
    /// 1 to 8 legs.
    pub legs: Vec<Leg>,
}

/// A strategy as a strategy command answers it: the strategy plus the
/// basket it belongs to and the basket's new revision.
#[derive(ToSchema)]
pub struct BasketStrategy {
    #[serde(flatten)]
    pub strategy: Strategy,
    pub basket_id: Uuid,
    pub basket_revision: u64,
}

/// A price: integer minor units with their currency (`99900` INR is
/// ₹999.00).
#[derive(ToSchema)]
pub struct Pricing {
    #[serde(rename = "type")]
    pub pricing_type: PricingType,
    /// Minor units (paise); 0 when `FREE`.
    #[schema(example = 99900)]
    pub monthly_fee: i64,
    /// ISO 4217 code.
    #[schema(example = "INR")]
    pub currency: String,
}

/// The marketplace configuration of a published basket.
#[derive(ToSchema)]
pub struct Marketplace {
    /// Equal to the basket's id.
    pub template_id: Uuid,
    /// Published and not disabled.
    pub enabled: bool,
    pub visibility: Visibility,
    pub pricing: Pricing,
    pub difficulty_level: DifficultyLevel,
    /// Up to 10 upper-case tags.
    pub tags: Vec<String>,
    /// The marketplace category.
    pub category: String,
    /// First publication.
    pub published_at: DateTime<Utc>,
}

/// A basket with its strategies.
#[derive(ToSchema)]
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
    #[schema(nullable)]
    pub marketplace: Marketplace,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A marketplace template as the template commands answer it.
#[derive(ToSchema)]
pub struct Template {
    /// Equal to `basket_id`.
    pub template_id: Uuid,
    /// Published and not disabled.
    pub enabled: bool,
    pub visibility: Visibility,
    pub pricing: Pricing,
    pub difficulty_level: DifficultyLevel,
    pub tags: Vec<String>,
    /// The marketplace category.
    pub category: String,
    pub published_at: DateTime<Utc>,
    pub basket_id: Uuid,
    pub name: String,
    pub description: String,
    pub strategy_count: u32,
    pub basket_revision: u64,
    /// Equal to `enabled`.
    pub is_template: bool,
}

// ----------------------------------------------------------- subscriptions

/// Who made a change.
#[derive(ToSchema)]
pub struct Actor {
    /// `user`, `admin`, `partner` or `system`.
    #[schema(example = "user")]
    pub kind: String,
    /// With `user` and `admin`.
    #[schema(required = false)]
    pub user_id: Uuid,
    /// With `partner`.
    #[schema(required = false)]
    pub partner_id: String,
    /// With `partner`.
    #[schema(required = false)]
    pub api_key_id: Uuid,
}

/// One status change of a subscription.
#[derive(ToSchema)]
pub struct StatusChange {
    /// `null` at creation.
    #[schema(nullable)]
    pub from: SubscriptionStatus,
    pub to: SubscriptionStatus,
    pub actor: Actor,
    #[schema(nullable)]
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A broker account that trades a subscription.
#[derive(ToSchema)]
pub struct Allocation {
    pub allocation_id: Uuid,
    pub broker_id: String,
    /// The customer's account at the broker.
    pub client_id: String,
    /// Multiplies every leg's lots (floored): `0 < m ≤ 100`, two decimals.
    #[schema(example = 1.5)]
    pub lot_multiplier: f64,
    /// Unique order of use, 1 first.
    pub priority: u32,
    /// Orders are split to at most this many lots.
    pub max_lots_per_order: u32,
}

/// A subscription to a template, with its allocations, billing and
/// status history.
#[derive(ToSchema)]
pub struct Subscription {
    pub subscription_id: Uuid,
    pub template_id: Uuid,
    pub template_name: String,
    pub user_id: Uuid,
    pub user_email: String,
    /// The partner that created it; `null` for a direct subscription.
    #[schema(nullable)]
    pub partner_id: String,
    /// The partner key that created it.
    #[schema(nullable)]
    pub api_key_id: Uuid,
    pub status: SubscriptionStatus,
    /// The price subscribed at (later price changes do not apply).
    pub pricing: Pricing,
    pub broker_allocations: Vec<Allocation>,
    /// `YYYY-MM-DD`; `null` when free or cancelled.
    #[schema(nullable)]
    pub next_billing_date: NaiveDate,
    pub status_history: Vec<StatusChange>,
    pub created_at: DateTime<Utc>,
    /// Last change. Query answers only (the read model's); command answers
    /// leave it out.
    #[schema(required = false)]
    pub updated_at: DateTime<Utc>,
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

// ------------------------------------------------------------ partner keys

/// A revenue share as percentages (`70`, `30`, or `72.5`).
#[derive(ToSchema)]
pub struct RevenueSharePercent {
    pub platform_percentage: f64,
    pub partner_percentage: f64,
}

/// A partner's request quotas.
#[derive(ToSchema)]
pub struct RateLimits {
    pub requests_per_minute: u32,
    pub requests_per_day: u32,
}

/// How a partner's customers see the platform.
#[derive(ToSchema)]
pub struct Branding {
    pub show_platform_branding: bool,
    #[schema(nullable, format = "uri")]
    pub custom_logo_url: String,
}

/// A partner API key with its partner's configuration; never the secret.
#[derive(ToSchema)]
pub struct ApiKey {
    pub api_key_id: Uuid,
    /// The public key, `pk_<partner>_live_<base62>`.
    #[schema(example = "pk_zebu_live_4fQm2…")]
    pub api_key: String,
    #[schema(example = "ZEBU")]
    pub partner_id: String,
    pub partner_name: String,
    pub partner_type: PartnerType,
    pub broker_id: String,
    pub status: ApiKeyStatus,
    pub revenue_share: RevenueSharePercent,
    pub permissions: Vec<Permission>,
    pub rate_limits: RateLimits,
    pub branding: Branding,
    pub issued_at: DateTime<Utc>,
    #[schema(nullable)]
    pub rotated_at: DateTime<Utc>,
    #[schema(nullable)]
    pub revoked_at: DateTime<Utc>,
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
