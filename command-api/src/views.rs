//! JSON renderings of aggregates, with the field names of docs/reference/api.md#response-shapes
//! (`basket_id`, `template_id`, `subscription_id`, …).

use basketry_domain::basket::{Basket, Strategy};
use basketry_domain::partner::{ApiKey, Partner};
use basketry_domain::subscription::{Subscription, SubscriptionStatus};
use serde_json::{json, Value};

/// A basis-point value as a percentage number (`2750` → `27.5`). Display
/// only: the stored value stays integral.
fn pct(bps: u32) -> Value {
    if bps % 100 == 0 {
        json!(bps / 100)
    } else {
        json!(f64::from(bps) / 100.0)
    }
}

/// A strategy as clients send it.
pub fn strategy(s: &Strategy) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for (from, to) in [
            ("stop_loss_bps", "stop_loss_pct"),
            ("target_bps", "target_pct"),
        ] {
            let value = map.remove(from).and_then(|b| b.as_u64());
            map.insert(
                to.into(),
                value.map_or(Value::Null, |b| pct(u32::try_from(b).unwrap_or(u32::MAX))),
            );
        }
    }
    v
}

/// The marketplace part of a basket, `null` when never published.
fn marketplace(b: &Basket) -> Value {
    match &b.marketplace {
        None => Value::Null,
        Some(m) => json!({
            "template_id": b.basket_id,
            "enabled": m.enabled,
            "visibility": m.config.visibility,
            "pricing": m.config.pricing,
            "difficulty_level": m.config.difficulty_level,
            "tags": m.config.tags,
            "category": m.config.category,
            "published_at": m.published_at,
        }),
    }
}

/// A basket with its strategies.
pub fn basket(b: &Basket) -> Value {
    json!({
        "basket_id": b.basket_id,
        "owner_id": b.owner_id,
        "name": b.name,
        "description": b.description,
        "category": b.category,
        "strategies": b.strategies.iter().map(strategy).collect::<Vec<_>>(),
        "revision": b.revision,
        "is_template": b.marketplace.as_ref().is_some_and(|m| m.enabled),
        "marketplace": marketplace(b),
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    })
}

/// A template: the basket's marketplace configuration and identity.
pub fn template(b: &Basket) -> Value {
    let mut v = marketplace(b);
    if let Value::Object(map) = &mut v {
        map.insert("basket_id".into(), json!(b.basket_id));
        map.insert("name".into(), json!(b.name));
        map.insert("description".into(), json!(b.description));
        map.insert("strategy_count".into(), json!(b.strategies.len()));
        map.insert("basket_revision".into(), json!(b.revision));
        map.insert(
            "is_template".into(),
            json!(b.marketplace.as_ref().is_some_and(|m| m.enabled)),
        );
    }
    v
}

/// A subscription with allocations, billing and status history.
pub fn subscription(s: &Subscription) -> Value {
    json!({
        "subscription_id": s.subscription_id,
        "template_id": s.template_id,
        "template_name": s.template_name,
        "user_id": s.user_id,
        "user_email": s.user_email,
        "partner_id": s.partner.as_ref().map(|p| &p.partner_id),
        "api_key_id": s.partner.as_ref().map(|p| p.api_key_id),
        "status": s.status,
        "pricing": {
            "type": s.pricing_type,
            "monthly_fee": s.price.amount_minor(),
            "currency": s.price.currency(),
        },
        "broker_allocations": s.allocations,
        "next_billing_date": s
            .billing
            .as_ref()
            .filter(|_| s.status != SubscriptionStatus::Cancelled)
            .map(|b| b.next_billing_date.date_naive()),
        "status_history": s.status_history.iter().map(|h| json!({
            "from": h.from,
            "to": h.to,
            "actor": h.actor,
            "reason": h.reason,
            "at": h.at,
        })).collect::<Vec<_>>(),
        "created_at": s.created_at,
    })
}

/// An API key as admins see it: never the secret or its hash.
pub fn api_key(partner: &Partner, key: &ApiKey) -> Value {
    json!({
        "api_key_id": key.api_key_id,
        "api_key": key.key,
        "partner_id": partner.partner_id,
        "partner_name": partner.partner_name,
        "partner_type": partner.partner_type,
        "broker_id": partner.broker_id,
        "status": key.status,
        "revenue_share": {
            "platform_percentage": pct(partner.revenue_share.platform_bps().get()),
            "partner_percentage": pct(partner.revenue_share.partner_bps().get()),
        },
        "permissions": partner.permissions,
        "rate_limits": partner.rate_limits,
        "branding": partner.branding,
        "issued_at": key.issued_at,
        "rotated_at": key.rotated_at,
        "revoked_at": key.revoked_at,
    })
}
