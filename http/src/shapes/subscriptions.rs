//! Subscriptions, their status history and broker allocations.

use basketry_domain::subscription as domain;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Pricing, Timestamp};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    /// `user`, `admin`, `partner` or `system`.
    #[schema(example = "user")]
    pub kind: String,
    /// With `user` and `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Uuid, required = false)]
    pub user_id: Option<Uuid>,
    /// With `partner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub partner_id: Option<String>,
    /// With `partner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Uuid, required = false)]
    pub api_key_id: Option<Uuid>,
}

/// One status change of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusChange {
    /// `null` at creation.
    #[schema(value_type = super::SubscriptionStatus, nullable, required = true)]
    pub from: Option<domain::SubscriptionStatus>,
    #[schema(value_type = super::SubscriptionStatus)]
    pub to: domain::SubscriptionStatus,
    pub actor: Actor,
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

/// A broker account that trades a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Allocation {
    pub allocation_id: Uuid,
    pub broker_id: String,
    /// The customer's account at the broker.
    pub client_id: String,
    // A JSON number rather than an `f64`: the query API sends it as the
    // read model stores it (`2`), the command API as the domain writes it
    // (`2.0`).
    /// Multiplies every leg's lots (floored): `0 < m ≤ 100`, two decimals.
    #[schema(value_type = f64, example = 1.5)]
    pub lot_multiplier: serde_json::Number,
    /// Unique order of use, 1 first.
    pub priority: u32,
    /// Orders are split to at most this many lots.
    pub max_lots_per_order: u32,
}

/// A subscription to a template, with its allocations, billing and
/// status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    pub subscription_id: Uuid,
    pub template_id: Uuid,
    pub template_name: String,
    pub user_id: Uuid,
    pub user_email: String,
    /// The partner that created it; `null` for a direct subscription.
    #[schema(required = true)]
    pub partner_id: Option<String>,
    /// The partner key that created it.
    #[schema(required = true)]
    pub api_key_id: Option<Uuid>,
    #[schema(value_type = super::SubscriptionStatus)]
    pub status: domain::SubscriptionStatus,
    /// The price subscribed at (later price changes do not apply).
    pub pricing: Pricing,
    pub broker_allocations: Vec<Allocation>,
    /// `YYYY-MM-DD`; `null` when free or cancelled.
    #[schema(required = true)]
    pub next_billing_date: Option<NaiveDate>,
    pub status_history: Vec<StatusChange>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last change. Query answers only (the read model's); command answers
    /// leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, format = DateTime, required = false)]
    pub updated_at: Option<Timestamp>,
}

/// A page of subscriptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<Subscription>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An ACTIVE subscriber of a template, as executors see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subscriber {
    pub subscription_id: Uuid,
    pub user_id: Uuid,
    #[schema(required = true)]
    pub partner_id: Option<String>,
    #[schema(value_type = super::SubscriptionStatus)]
    pub status: domain::SubscriptionStatus,
    pub broker_allocations: Vec<Allocation>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// A page of a template's subscribers, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriberList {
    pub template_id: Uuid,
    pub subscribers: Vec<Subscriber>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
