//! The command API's response shapes.
//!
//! Every shape both APIs send is a typed struct of
//! [`basketry_http::shapes`], re-exported here so the route annotations
//! can keep naming them `schemas::X`. The shapes only the command API
//! sends (a strategy with its basket's revision, a new subscription with
//! its first charge, the partner subscribe answer, a key with its secret)
//! are the typed structs of the [`crate::routes`] that send them.

pub use basketry_http::shapes::{
    Actor, Allocation, ApiKey, ApiKeyStatus, BadRequest, Basket, Branding, Conflict,
    DifficultyLevel, Expiry, FieldError, Forbidden, InternalError, Leg, LegAction, Marketplace,
    NotFound, OptionType, PartnerType, PayloadTooLarge, Permission, Pricing, PricingType, Problem,
    Product, RateLimits, RevenueSharePercent, ServiceUnavailable, StatusChange, Strategy,
    Subscription, SubscriptionStatus, Template, TooManyRequests, TradingDay, Unauthorized,
    UnprocessableEntity, UnsupportedMediaType, Visibility,
};
