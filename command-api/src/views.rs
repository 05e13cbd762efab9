//! What the command API answers, built from domain state as the typed
//! shapes of [`basketry_http::shapes`] — the same types the OpenAPI
//! document is generated from and the query API answers with.
//!
//! Each shape has a builder (`basket_shape`, …) and a function of the
//! shape's own name (`basket`, …) that gives the body as the handlers keep
//! it: a `serde_json::Value` ([`shapes::body`]), which the idempotency
//! store records and replays as it was sent.

use basketry_domain::basket::{Basket, Strategy};
use basketry_domain::partner::{ApiKey, Partner};
use basketry_domain::subscription::{
    BrokerAllocation, StatusChange, Subscription, SubscriptionStatus,
};
use basketry_domain::Actor;
use basketry_http::shapes::{self, Percent, Timestamp};
use serde_json::Value;

/// A strategy as clients send it, its risk limits as percentages.
pub fn strategy_shape(s: &Strategy) -> shapes::Strategy {
    shapes::Strategy::from(s)
}

/// A strategy as clients send it.
pub fn strategy(s: &Strategy) -> Value {
    shapes::body(&strategy_shape(s))
}

/// The price of a published basket.
fn pricing(b: &basketry_domain::basket::Pricing) -> shapes::Pricing {
    shapes::Pricing {
        pricing_type: b.pricing_type(),
        monthly_fee: b.monthly_fee().amount_minor(),
        currency: b.monthly_fee().currency().to_string(),
    }
}

/// The marketplace part of a basket, `None` when never published.
fn marketplace(b: &Basket) -> Option<shapes::Marketplace> {
    let m = b.marketplace.as_ref()?;
    Some(shapes::Marketplace {
        template_id: *b.basket_id.as_uuid(),
        enabled: m.enabled,
        visibility: m.config.visibility,
        pricing: pricing(&m.config.pricing),
        difficulty_level: m.config.difficulty_level,
        tags: m.config.tags.iter().map(ToString::to_string).collect(),
        category: m.config.category.to_string(),
        published_at: Timestamp::from(m.published_at),
    })
}

/// A basket with its strategies.
pub fn basket_shape(b: &Basket) -> shapes::Basket {
    shapes::Basket {
        basket_id: *b.basket_id.as_uuid(),
        owner_id: *b.owner_id.as_uuid(),
        name: b.name.to_string(),
        description: b.description.to_string(),
        category: b.category.to_string(),
        strategies: b.strategies.iter().map(strategy_shape).collect(),
        revision: b.revision,
        is_template: b.marketplace.as_ref().is_some_and(|m| m.enabled),
        marketplace: marketplace(b),
        created_at: Timestamp::from(b.created_at),
        updated_at: Timestamp::from(b.updated_at),
    }
}

/// A basket with its strategies.
pub fn basket(b: &Basket) -> Value {
    shapes::body(&basket_shape(b))
}

/// A template: the basket's marketplace configuration and identity; `None`
/// for a basket never published.
pub fn template_shape(b: &Basket) -> Option<shapes::Template> {
    let m = marketplace(b)?;
    Some(shapes::Template {
        template_id: m.template_id,
        enabled: m.enabled,
        visibility: m.visibility,
        pricing: m.pricing,
        difficulty_level: m.difficulty_level,
        tags: m.tags,
        category: m.category,
        published_at: m.published_at,
        basket_id: *b.basket_id.as_uuid(),
        name: b.name.to_string(),
        description: b.description.to_string(),
        strategy_count: u32::try_from(b.strategies.len()).unwrap_or(u32::MAX),
        basket_revision: b.revision,
        is_template: m.enabled,
    })
}

/// A template: the basket's marketplace configuration and identity
/// (`null` for a basket never published, which no template command
/// answers).
pub fn template(b: &Basket) -> Value {
    template_shape(b).map_or(Value::Null, |t| shapes::body(&t))
}

/// Who made a change.
fn actor(a: &Actor) -> shapes::Actor {
    let kind = match a {
        Actor::User { .. } => "user",
        Actor::Admin { .. } => "admin",
        Actor::Partner { .. } => "partner",
        Actor::System => "system",
    };
    let (partner_id, api_key_id) = match a {
        Actor::Partner {
            partner_id,
            api_key_id,
        } => (Some(partner_id.to_string()), Some(*api_key_id.as_uuid())),
        _ => (None, None),
    };
    shapes::Actor {
        kind: kind.to_string(),
        user_id: a.user_id().map(|u| *u.as_uuid()),
        partner_id,
        api_key_id,
    }
}

/// One status change.
fn status_change(h: &StatusChange) -> shapes::StatusChange {
    shapes::StatusChange {
        from: h.from,
        to: h.to,
        actor: actor(&h.actor),
        reason: h.reason.as_ref().map(ToString::to_string),
        at: Timestamp::from(h.at),
    }
}

/// A broker allocation.
fn allocation(a: &BrokerAllocation) -> shapes::Allocation {
    shapes::Allocation {
        allocation_id: *a.allocation_id.as_uuid(),
        broker_id: a.broker_id.to_string(),
        client_id: a.client_id.to_string(),
        // A ratio of two integers is finite, so always a JSON number.
        lot_multiplier: serde_json::Number::from_f64(
            f64::from(a.lot_multiplier.hundredths()) / 100.0,
        )
        .unwrap_or_else(|| serde_json::Number::from(0)),
        priority: a.priority.get(),
        max_lots_per_order: a.max_lots_per_order.get(),
    }
}

/// A subscription with allocations, billing and status history.
pub fn subscription_shape(s: &Subscription) -> shapes::Subscription {
    shapes::Subscription {
        subscription_id: *s.subscription_id.as_uuid(),
        template_id: *s.template_id.as_uuid(),
        template_name: s.template_name.to_string(),
        user_id: *s.user_id.as_uuid(),
        user_email: s.user_email.to_string(),
        partner_id: s.partner.as_ref().map(|p| p.partner_id.to_string()),
        api_key_id: s.partner.as_ref().map(|p| *p.api_key_id.as_uuid()),
        status: s.status,
        pricing: shapes::Pricing {
            pricing_type: s.pricing_type,
            monthly_fee: s.price.amount_minor(),
            currency: s.price.currency().to_string(),
        },
        broker_allocations: s.allocations.iter().map(allocation).collect(),
        next_billing_date: s
            .billing
            .as_ref()
            .filter(|_| s.status != SubscriptionStatus::Cancelled)
            .map(|b| b.next_billing_date.date_naive()),
        status_history: s.status_history.iter().map(status_change).collect(),
        created_at: Timestamp::from(s.created_at),
        updated_at: None,
    }
}

/// A subscription with allocations, billing and status history.
pub fn subscription(s: &Subscription) -> Value {
    shapes::body(&subscription_shape(s))
}

/// An API key as admins see it: never the secret or its hash.
pub fn api_key_shape(partner: &Partner, key: &ApiKey) -> shapes::ApiKey {
    shapes::ApiKey {
        api_key_id: *key.api_key_id.as_uuid(),
        api_key: key.key.to_string(),
        partner_id: partner.partner_id.to_string(),
        partner_name: partner.partner_name.to_string(),
        partner_type: partner.partner_type,
        broker_id: partner.broker_id.to_string(),
        status: key.status,
        revenue_share: shapes::RevenueSharePercent {
            platform_percentage: Percent(partner.revenue_share.platform_bps().get()),
            partner_percentage: Percent(partner.revenue_share.partner_bps().get()),
        },
        permissions: partner.permissions.iter().copied().collect(),
        rate_limits: shapes::RateLimits {
            requests_per_minute: partner.rate_limits.requests_per_minute.get(),
            requests_per_day: partner.rate_limits.requests_per_day.get(),
        },
        branding: shapes::Branding {
            show_platform_branding: partner.branding.show_platform_branding,
            custom_logo_url: partner
                .branding
                .custom_logo_url
                .as_ref()
                .map(ToString::to_string),
        },
        issued_at: Timestamp::from(key.issued_at),
        rotated_at: key.rotated_at.map(Timestamp::from),
        revoked_at: key.revoked_at.map(Timestamp::from),
    }
}

/// An API key as admins see it: never the secret or its hash.
pub fn api_key(partner: &Partner, key: &ApiKey) -> Value {
    shapes::body(&api_key_shape(partner, key))
}
