//! The subscription aggregate (stream `subscription-{subscription_id}`): a
//! user's subscription to a template — by reference, never a copy — with its
//! status, broker allocations and billing.
//!
//! Access: the subscriber (a `User` actor with the same user id) and the
//! partner that created it (a `Partner` actor with the same partner id) may
//! manage it; admins and the system may too. Anyone else gets `NotFound`, so
//! one partner cannot learn another's subscription ids.
//!
//! Billing (PAID templates only): period k runs from anchor + k months to
//! anchor + k+1 months ([`crate::period::period`]). The first period is
//! charged at subscription; [`ChargeDue`] charges every later period whose
//! start is ≤ `as_of`, each exactly once because the state remembers the
//! next period index. PAUSED and CANCELLED subscriptions are not charged; on
//! resume, if the paid period is over, a new period is anchored at the resume
//! time and charged at once.
//!
//! At most one live subscription per (user, template) is enforced by the
//! [`crate::user_link`] aggregate, appended before this stream. A
//! reservation whose subscription never appeared is released only after
//! [`AbandonSubscription`] has claimed the subscription's empty stream, so
//! the late request that reserved it can no longer create it (ADR 0015).

mod allocation;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use allocation::{
    allocations_rule, AllocationInput, BrokerAllocation, MaxLotsPerOrder, Priority,
    ALLOCATIONS_FIELD, MAX_ALLOCATIONS,
};

use crate::actor::Actor;
use crate::basket::{PricingType, TemplateTerms};
use crate::error::DomainError;
use crate::event::Aggregate;
use crate::ids::{ApiKeyId, PartnerId, SubscriptionId, TemplateId, UserId};
use crate::money::{split, BasisPoints, Currency, Money, RevenueShare};
use crate::period::{period, BillingPeriod};
use crate::values::{BasketName, BrokerId, Email, Reason};

/// One decision charges at most this many missed periods; a later billing run
/// continues where it stopped, so nothing is skipped or charged twice.
pub const MAX_CHARGES_PER_DECISION: u32 = 120;

/// The stream of a subscription: `subscription-{subscription_id}`.
pub fn stream_name(subscription_id: &SubscriptionId) -> String {
    format!("{}-{subscription_id}", SubscriptionAggregate::STREAM_PREFIX)
}

string_enum! {
    /// Where a subscription is in its life: `ACTIVE ⇄ PAUSED`,
    /// `ACTIVE|PAUSED → CANCELLED` (final).
    pub enum SubscriptionStatus {
        /// Trading and billed.
        Active = "ACTIVE",
        /// Neither trading nor billed.
        Paused = "PAUSED",
        /// Ended for good.
        Cancelled = "CANCELLED",
    }
}

/// The partner that created a subscription on its customer's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartnerAttribution {
    /// The partner.
    pub partner_id: PartnerId,
    /// The key it used.
    pub api_key_id: ApiKeyId,
    /// The partner's broker, used for an auto-linked allocation.
    pub broker_id: BrokerId,
    /// The partner's revenue share in force at subscription time.
    pub partner_bps: BasisPoints,
}

// ---------------------------------------------------------------- state

/// Where billing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billing {
    /// Start of period 0 (moved to the resume time when a resume restarts billing).
    pub anchor: DateTime<Utc>,
    /// The first period not charged yet.
    pub next_period_index: u32,
    /// When that period starts, i.e. when it is due.
    pub next_billing_date: DateTime<Utc>,
}

/// One entry of the status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The status before (none at creation).
    pub from: Option<SubscriptionStatus>,
    /// The status after.
    pub to: SubscriptionStatus,
    /// Who changed it.
    pub actor: Actor,
    /// Why, if said.
    pub reason: Option<Reason>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A subscription as its events built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its id.
    pub subscription_id: SubscriptionId,
    /// The template subscribed to.
    pub template_id: TemplateId,
    /// The template's name at subscription.
    pub template_name: BasketName,
    /// The subscriber.
    pub user_id: UserId,
    /// The subscriber's e-mail.
    pub user_email: Email,
    /// The partner that created it, if one did.
    pub partner: Option<PartnerAttribution>,
    /// Current status.
    pub status: SubscriptionStatus,
    /// FREE or PAID at subscription.
    pub pricing_type: PricingType,
    /// The monthly price at subscription; later price changes do not apply.
    pub price: Money,
    /// Broker accounts that trade it.
    pub allocations: Vec<BrokerAllocation>,
    /// Billing, for a PAID subscription.
    pub billing: Option<Billing>,
    /// Every status change, oldest first.
    pub status_history: Vec<StatusChange>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What a subscription's stream knows: nothing before `SubscribedToTemplate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionState {
    /// The subscription, once created.
    pub subscription: Option<Subscription>,
    /// Set when the id was abandoned before any subscription was recorded
    /// (`SubscriptionAbandoned`): it can never be created any more.
    pub abandoned: bool,
}

impl SubscriptionState {
    /// The current status, once created.
    pub fn status(&self) -> Option<SubscriptionStatus> {
        self.subscription.as_ref().map(|s| s.status)
    }

    /// When the next charge is due (PAID and not cancelled).
    pub fn next_billing_date(&self) -> Option<DateTime<Utc>> {
        let s = self.subscription.as_ref()?;
        if s.status == SubscriptionStatus::Cancelled {
            return None;
        }
        s.billing.map(|b| b.next_billing_date)
    }

    /// Whether `partner_id` created it — a partner sees only its own.
    pub fn is_owned_by_partner(&self, partner_id: &PartnerId) -> bool {
        self.subscription
            .as_ref()
            .and_then(|s| s.partner.as_ref())
            .is_some_and(|p| p.partner_id == *partner_id)
    }

    /// Whether `user_id` is the subscriber.
    pub fn is_owned_by_user(&self, user_id: &UserId) -> bool {
        self.subscription
            .as_ref()
            .is_some_and(|s| s.user_id == *user_id)
    }
}

// ---------------------------------------------------------------- commands

/// Subscribes a user to a template, directly or through a partner.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeToTemplate {
    /// Who asks: the user themself, the partner in `partner`, or an admin.
    pub actor: Actor,
    /// The new subscription's id (UUIDv7).
    pub subscription_id: SubscriptionId,
    /// The subscriber; must be `UserId::from_email(user_email)`.
    pub user_id: UserId,
    /// The subscriber's e-mail.
    pub user_email: Email,
    /// The template's terms now (see [`crate::basket::BasketState::template_terms`]).
    pub template: TemplateTerms,
    /// The partner, for a partner subscription.
    pub partner: Option<PartnerAttribution>,
    /// Initial broker allocations (may be empty).
    pub allocations: Vec<BrokerAllocation>,
    /// When; also the billing anchor.
    pub now: DateTime<Utc>,
}

/// Pauses an ACTIVE subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct PauseSubscription {
    /// Who asks.
    pub actor: Actor,
    /// Why, for the status history.
    pub reason: Option<Reason>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Resumes a PAUSED subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeSubscription {
    /// Who asks.
    pub actor: Actor,
    /// Why, for the status history.
    pub reason: Option<Reason>,
    /// The partner's revenue share in force now, for the charge a resume may
    /// make; the share at subscription when absent.
    pub partner_bps_now: Option<BasisPoints>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Cancels a subscription at once, with no refund.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelSubscription {
    /// Who asks.
    pub actor: Actor,
    /// Why, for the status history.
    pub reason: Option<Reason>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Replaces the broker allocations.
#[derive(Debug, Clone, PartialEq)]
pub struct SetBrokerAllocations {
    /// Who asks.
    pub actor: Actor,
    /// The new list (may be empty).
    pub allocations: Vec<BrokerAllocation>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Charges every period due by `as_of` (a billing run).
#[derive(Debug, Clone, PartialEq)]
pub struct ChargeDue {
    /// The run's time: periods starting at or before it are charged.
    pub as_of: DateTime<Utc>,
    /// The partner's revenue share in force now; the share at subscription
    /// when absent. Ignored for direct subscriptions, whose revenue is all
    /// the platform's.
    pub partner_bps_now: Option<BasisPoints>,
}

/// Claims the empty stream of a subscription whose reservation is being
/// released as abandoned, so that the request that reserved it, however
/// late, can no longer create it. Records nothing when the subscription
/// exists (the caller then keeps the reservation) or was abandoned already.
#[derive(Debug, Clone, PartialEq)]
pub struct AbandonSubscription {
    /// Who releases the reservation.
    pub actor: Actor,
    /// The subscription id the reservation named.
    pub subscription_id: SubscriptionId,
    /// Its subscriber.
    pub user_id: UserId,
    /// Its template.
    pub template_id: TemplateId,
    /// When.
    pub now: DateTime<Utc>,
}

/// Everything the subscription aggregate can be asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionCommand {
    /// See [`SubscribeToTemplate`].
    SubscribeToTemplate(SubscribeToTemplate),
    /// See [`PauseSubscription`].
    PauseSubscription(PauseSubscription),
    /// See [`ResumeSubscription`].
    ResumeSubscription(ResumeSubscription),
    /// See [`CancelSubscription`].
    CancelSubscription(CancelSubscription),
    /// See [`SetBrokerAllocations`].
    SetBrokerAllocations(SetBrokerAllocations),
    /// See [`ChargeDue`].
    ChargeDue(ChargeDue),
    /// See [`AbandonSubscription`].
    AbandonSubscription(AbandonSubscription),
}

enum_from!(SubscriptionCommand {
    SubscribeToTemplate,
    PauseSubscription,
    ResumeSubscription,
    CancelSubscription,
    SetBrokerAllocations,
    ChargeDue,
    AbandonSubscription,
});

// ---------------------------------------------------------------- events

/// A user subscribed to a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribedToTemplate {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The template.
    pub template_id: TemplateId,
    /// The template's name at subscription.
    pub template_name: BasketName,
    /// The basket revision the terms were read at.
    pub template_revision: u64,
    /// The subscriber.
    pub user_id: UserId,
    /// The subscriber's e-mail.
    pub user_email: Email,
    /// The partner that created it, if any.
    pub partner_id: Option<PartnerId>,
    /// The partner's key, if a partner created it.
    pub api_key_id: Option<ApiKeyId>,
    /// The partner's broker, if a partner created it.
    pub broker_id: Option<BrokerId>,
    /// FREE or PAID.
    pub pricing_type: PricingType,
    /// The monthly price, kept for the subscription's life.
    pub price: Money,
    /// The revenue share in force (platform 100 % for direct subscriptions).
    pub revenue_share: RevenueShare,
    /// Initial broker allocations.
    pub allocations: Vec<BrokerAllocation>,
    /// Always ACTIVE; given so readers copy rather than assume.
    pub status: SubscriptionStatus,
    /// Start of billing period 0 (PAID only).
    pub billing_anchor: Option<DateTime<Utc>>,
    /// When the next charge is due once period 0 — charged by the
    /// `SubscriptionCharged` of the same decision — is paid (PAID only).
    pub next_billing_date: Option<DateTime<Utc>>,
    /// Who subscribed.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// A subscription was paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionPaused {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// Its template.
    pub template_id: TemplateId,
    /// Its subscriber.
    pub user_id: UserId,
    /// Its partner, if any.
    pub partner_id: Option<PartnerId>,
    /// The status before.
    pub from: SubscriptionStatus,
    /// Who paused it.
    pub actor: Actor,
    /// Why, if said.
    pub reason: Option<Reason>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A subscription was resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionResumed {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// Its template.
    pub template_id: TemplateId,
    /// Its subscriber.
    pub user_id: UserId,
    /// Its partner, if any.
    pub partner_id: Option<PartnerId>,
    /// The status before.
    pub from: SubscriptionStatus,
    /// Who resumed it.
    pub actor: Actor,
    /// Why, if said.
    pub reason: Option<Reason>,
    /// Set when the paid period was over: billing restarts here, and the new
    /// period 0 is charged by the `SubscriptionCharged` that follows.
    pub new_billing_anchor: Option<DateTime<Utc>>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A subscription was cancelled (final).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCancelled {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// Its template.
    pub template_id: TemplateId,
    /// Its subscriber.
    pub user_id: UserId,
    /// Its partner, if any.
    pub partner_id: Option<PartnerId>,
    /// The status before.
    pub from: SubscriptionStatus,
    /// Who cancelled it.
    pub actor: Actor,
    /// Why, if said.
    pub reason: Option<Reason>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The broker allocations were replaced; the full new list is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerAllocationsSet {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// Its template.
    pub template_id: TemplateId,
    /// Its subscriber.
    pub user_id: UserId,
    /// The allocations now.
    pub allocations: Vec<BrokerAllocation>,
    /// Who set them.
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// One billing period was charged. Carries everything the ledger needs:
/// amounts, the basis points used and both shares, already split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCharged {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// Its template.
    pub template_id: TemplateId,
    /// Its subscriber.
    pub user_id: UserId,
    /// The partner that earns a share, if any.
    pub partner_id: Option<PartnerId>,
    /// The anchor the period is counted from.
    pub billing_anchor: DateTime<Utc>,
    /// The period's index from that anchor.
    pub period_index: u32,
    /// Start of the period charged.
    pub period_start: DateTime<Utc>,
    /// Its end, which is also the next billing date.
    pub period_end: DateTime<Utc>,
    /// The amount charged, in minor units.
    pub amount: i64,
    /// Its currency.
    pub currency: Currency,
    /// The partner's share in basis points (0 for direct subscriptions).
    pub partner_bps: BasisPoints,
    /// The platform's share in basis points.
    pub platform_bps: BasisPoints,
    /// The partner's share in minor units.
    pub partner_share: i64,
    /// The platform's share in minor units; the two shares sum to `amount`.
    pub platform_share: i64,
    /// When the charge was made (the subscription or resume time, or the
    /// billing run's `as_of`).
    pub charged_at: DateTime<Utc>,
}

/// A subscription id whose reservation was released before the subscription
/// was recorded: the stream is claimed so that it is never created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionAbandoned {
    /// The subscription id that will never be used.
    pub subscription_id: SubscriptionId,
    /// The template it was reserved for.
    pub template_id: TemplateId,
    /// The user it was reserved for.
    pub user_id: UserId,
    /// Who abandoned it (the request that released the reservation).
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
}

/// Production upcasters of subscription events (none yet: every type is at v1).
pub const SUBSCRIPTION_UPCASTERS: &[crate::event::Upcaster] = &[];

domain_events! {
    /// What happens to a subscription.
    pub enum SubscriptionEvent (upcasters: SUBSCRIPTION_UPCASTERS) {
        /// See [`SubscribedToTemplate`].
        SubscribedToTemplate = 1,
        /// See [`SubscriptionPaused`].
        SubscriptionPaused = 1,
        /// See [`SubscriptionResumed`].
        SubscriptionResumed = 1,
        /// See [`SubscriptionCancelled`].
        SubscriptionCancelled = 1,
        /// See [`BrokerAllocationsSet`].
        BrokerAllocationsSet = 1,
        /// See [`SubscriptionCharged`].
        SubscriptionCharged = 1,
        /// See [`SubscriptionAbandoned`].
        SubscriptionAbandoned = 1,
    }
}

// ---------------------------------------------------------------- decide

/// The subscription aggregate.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriptionAggregate;

impl Aggregate for SubscriptionAggregate {
    type State = SubscriptionState;
    type Command = SubscriptionCommand;
    type Event = SubscriptionEvent;
    const STREAM_PREFIX: &'static str = "subscription";

    fn decide(
        state: &SubscriptionState,
        command: SubscriptionCommand,
    ) -> Result<Vec<SubscriptionEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: SubscriptionState, event: &SubscriptionEvent) -> SubscriptionState {
        evolve(state, event)
    }
}

/// Decides what a subscription command does.
pub fn decide(
    state: &SubscriptionState,
    command: SubscriptionCommand,
) -> Result<Vec<SubscriptionEvent>, DomainError> {
    match command {
        SubscriptionCommand::SubscribeToTemplate(c) => subscribe(state, c),
        SubscriptionCommand::PauseSubscription(c) => pause(state, c),
        SubscriptionCommand::ResumeSubscription(c) => resume(state, c),
        SubscriptionCommand::CancelSubscription(c) => cancel(state, c),
        SubscriptionCommand::SetBrokerAllocations(c) => set_allocations(state, c),
        SubscriptionCommand::ChargeDue(c) => charge_due(state, c),
        SubscriptionCommand::AbandonSubscription(c) => abandon(state, c),
    }
}

const SUBSCRIPTION: DomainError = DomainError::NotFound {
    what: "subscription",
};

/// The subscription, if it exists and `actor` may manage it; otherwise `NotFound`.
fn managed<'a>(
    state: &'a SubscriptionState,
    actor: &Actor,
) -> Result<&'a Subscription, DomainError> {
    let sub = state.subscription.as_ref().ok_or(SUBSCRIPTION)?;
    let allowed = match actor {
        Actor::User { user_id } => sub.user_id == *user_id,
        Actor::Partner { partner_id, .. } => state.is_owned_by_partner(partner_id),
        Actor::Admin { .. } | Actor::System => true,
    };
    if allowed {
        Ok(sub)
    } else {
        Err(SUBSCRIPTION)
    }
}

fn transition(from: SubscriptionStatus, to: SubscriptionStatus) -> DomainError {
    DomainError::InvalidTransition {
        from: from.as_str(),
        to: to.as_str(),
    }
}

fn period_at(anchor: DateTime<Utc>, k: u32, field: &str) -> Result<BillingPeriod, DomainError> {
    period(anchor, k).ok_or_else(|| DomainError::invalid(field, "date out of range"))
}

/// Who pays what, for building charges before and after the subscription exists.
struct Payer<'a> {
    subscription_id: SubscriptionId,
    template_id: TemplateId,
    user_id: UserId,
    partner_id: Option<&'a PartnerId>,
    price: Money,
}

impl Payer<'_> {
    fn of(sub: &Subscription) -> Payer<'_> {
        Payer {
            subscription_id: sub.subscription_id,
            template_id: sub.template_id,
            user_id: sub.user_id,
            partner_id: sub.partner.as_ref().map(|p| &p.partner_id),
            price: sub.price,
        }
    }

    fn charge(
        &self,
        anchor: DateTime<Utc>,
        period: BillingPeriod,
        partner_bps: BasisPoints,
        at: DateTime<Utc>,
    ) -> SubscriptionCharged {
        // A direct subscription has no partner to pay, whatever was asked.
        let partner_bps = if self.partner_id.is_some() {
            partner_bps
        } else {
            BasisPoints::ZERO
        };
        let amount = self.price.amount_minor();
        let shares = split(amount, partner_bps);
        SubscriptionCharged {
            subscription_id: self.subscription_id,
            template_id: self.template_id,
            user_id: self.user_id,
            partner_id: self.partner_id.cloned(),
            billing_anchor: anchor,
            period_index: period.index,
            period_start: period.start,
            period_end: period.end,
            amount,
            currency: self.price.currency(),
            partner_bps,
            platform_bps: partner_bps.complement(),
            partner_share: shares.partner_share,
            platform_share: shares.platform_share,
            charged_at: at,
        }
    }
}

/// The partner share a charge uses: the one in force now when known, else
/// the one at subscription.
fn partner_bps_for(sub: &Subscription, now: Option<BasisPoints>) -> BasisPoints {
    match &sub.partner {
        Some(p) => now.unwrap_or(p.partner_bps),
        None => BasisPoints::ZERO,
    }
}

fn subscribe(
    state: &SubscriptionState,
    c: SubscribeToTemplate,
) -> Result<Vec<SubscriptionEvent>, DomainError> {
    if let Some(existing) = &state.subscription {
        return Err(DomainError::AlreadySubscribed {
            subscription_id: existing.subscription_id,
        });
    }
    if state.abandoned {
        return Err(DomainError::ReservationReleased);
    }
    let allowed = match (&c.actor, &c.partner) {
        (Actor::User { user_id }, None) => *user_id == c.user_id,
        (Actor::User { .. }, Some(_)) => false,
        (
            Actor::Partner {
                partner_id,
                api_key_id,
            },
            Some(p),
        ) => p.partner_id == *partner_id && p.api_key_id == *api_key_id,
        (Actor::Partner { .. }, None) => false,
        (Actor::Admin { .. } | Actor::System, _) => true,
    };
    if !allowed {
        return Err(DomainError::Forbidden);
    }
    if c.user_id != UserId::from_email(&c.user_email) {
        return Err(DomainError::invalid("user_id", "does not match user_email"));
    }
    if !c.template.enabled {
        return Err(DomainError::TemplateNotAvailable);
    }
    allocations_rule(&c.allocations)?;

    let pricing = c.template.pricing;
    let revenue_share = c.partner.as_ref().map_or(RevenueShare::DIRECT, |p| {
        RevenueShare::from_partner_bps(p.partner_bps)
    });
    let first_period = if pricing.is_paid() {
        Some(period_at(c.now, 0, "now")?)
    } else {
        None
    };
    let payer = Payer {
        subscription_id: c.subscription_id,
        template_id: c.template.template_id,
        user_id: c.user_id,
        partner_id: c.partner.as_ref().map(|p| &p.partner_id),
        price: pricing.monthly_fee(),
    };
    let first_charge =
        first_period.map(|p| payer.charge(c.now, p, revenue_share.partner_bps(), c.now));

    let mut events = vec![SubscriptionEvent::from(SubscribedToTemplate {
        subscription_id: c.subscription_id,
        template_id: c.template.template_id,
        template_name: c.template.name,
        template_revision: c.template.revision,
        user_id: c.user_id,
        user_email: c.user_email,
        partner_id: c.partner.as_ref().map(|p| p.partner_id.clone()),
        api_key_id: c.partner.as_ref().map(|p| p.api_key_id),
        broker_id: c.partner.as_ref().map(|p| p.broker_id.clone()),
        pricing_type: pricing.pricing_type(),
        price: pricing.monthly_fee(),
        revenue_share,
        allocations: c.allocations,
        status: SubscriptionStatus::Active,
        billing_anchor: first_period.map(|_| c.now),
        next_billing_date: first_period.map(|p| p.end),
        actor: c.actor,
        at: c.now,
    })];
    events.extend(first_charge.map(SubscriptionEvent::from));
    Ok(events)
}

fn pause(
    state: &SubscriptionState,
    c: PauseSubscription,
) -> Result<Vec<SubscriptionEvent>, DomainError> {
    let sub = managed(state, &c.actor)?;
    if sub.status != SubscriptionStatus::Active {
        return Err(transition(sub.status, SubscriptionStatus::Paused));
    }
    Ok(vec![SubscriptionPaused {
        subscription_id: sub.subscription_id,
        template_id: sub.template_id,
        user_id: sub.user_id,
        partner_id: sub.partner.as_ref().map(|p| p.partner_id.clone()),
        from: sub.status,
        actor: c.actor,
        reason: c.reason,
        at: c.now,
    }
    .into()])
}

fn resume(
    state: &SubscriptionState,
    c: ResumeSubscription,
) -> Result<Vec<SubscriptionEvent>, DomainError> {
    let sub = managed(state, &c.actor)?;
    if sub.status != SubscriptionStatus::Paused {
        return Err(transition(sub.status, SubscriptionStatus::Active));
    }
    // The paid period is over: billing restarts now, as a new period 0.
    let restart = match sub.billing {
        Some(b) if b.next_billing_date <= c.now => Some(period_at(c.now, 0, "now")?),
        _ => None,
    };
    let mut events = vec![SubscriptionEvent::from(SubscriptionResumed {
        subscription_id: sub.subscription_id,
        template_id: sub.template_id,
        user_id: sub.user_id,
        partner_id: sub.partner.as_ref().map(|p| p.partner_id.clone()),
        from: sub.status,
        actor: c.actor,
        reason: c.reason,
        new_billing_anchor: restart.map(|_| c.now),
        at: c.now,
    })];
    if let Some(p) = restart {
        let bps = partner_bps_for(sub, c.partner_bps_now);
        events.push(Payer::of(sub).charge(c.now, p, bps, c.now).into());
    }
    Ok(events)
}

fn cancel(
    state: &SubscriptionState,
    c: CancelSubscription,
) -> Result<Vec<SubscriptionEvent>, DomainError> {
    let sub = managed(state, &c.actor)?;
    if sub.status == SubscriptionStatus::Cancelled {
        return Err(transition(sub.status, SubscriptionStatus::Cancelled));
    }
    Ok(vec![SubscriptionCancelled {
        subscription_id: sub.subscription_id,
        template_id: sub.template_id,
        user_id: sub.user_id,
        partner_id: sub.partner.as_ref().map(|p| p.partner_id.clone()),
        from: sub.status,
        actor: c.actor,
        reason: c.reason,
        at: c.now,
    }
    .into()])
}

fn set_allocations(
    state: &SubscriptionState,
    c: SetBrokerAllocations,
) -> Result<Vec<SubscriptionEvent>, DomainError> {
    let sub = managed(state, &c.actor)?;
    if sub.status == SubscriptionStatus::Cancelled {
        return Err(DomainError::SubscriptionCancelled);
    }
    allocations_rule(&c.allocations)?;
    Ok(vec![BrokerAllocationsSet {
        subscription_id: sub.subscription_id,
        template_id: sub.template_id,
        user_id: sub.user_id,
        allocations: c.allocations,
        actor: c.actor,
        at: c.now,
    }
    .into()])
}

fn charge_due(
    state: &SubscriptionState,
    c: ChargeDue,
) -> Result<Vec<SubscriptionEvent>, DomainError> {
    let sub = state.subscription.as_ref().ok_or(SUBSCRIPTION)?;
    let Some(billing) = sub
        .billing
        .filter(|_| sub.status == SubscriptionStatus::Active)
    else {
        return Ok(vec![]);
    };
    let payer = Payer::of(sub);
    let bps = partner_bps_for(sub, c.partner_bps_now);
    let mut events = Vec::new();
    let mut k = billing.next_period_index;
    while events.len() < MAX_CHARGES_PER_DECISION as usize {
        let p = period_at(billing.anchor, k, "as_of")?;
        if p.start > c.as_of {
            break;
        }
        events.push(payer.charge(billing.anchor, p, bps, c.as_of).into());
        k += 1;
    }
    Ok(events)
}

fn abandon(
    state: &SubscriptionState,
    c: AbandonSubscription,
) -> Result<Vec<SubscriptionEvent>, DomainError> {
    if state.subscription.is_some() || state.abandoned {
        return Ok(vec![]);
    }
    Ok(vec![SubscriptionAbandoned {
        subscription_id: c.subscription_id,
        template_id: c.template_id,
        user_id: c.user_id,
        actor: c.actor,
        at: c.now,
    }
    .into()])
}

// ---------------------------------------------------------------- evolve

/// Applies one subscription event.
pub fn evolve(mut state: SubscriptionState, event: &SubscriptionEvent) -> SubscriptionState {
    if let SubscriptionEvent::SubscribedToTemplate(e) = event {
        let partner = match (&e.partner_id, e.api_key_id, &e.broker_id) {
            (Some(partner_id), Some(api_key_id), Some(broker_id)) => Some(PartnerAttribution {
                partner_id: partner_id.clone(),
                api_key_id,
                broker_id: broker_id.clone(),
                partner_bps: e.revenue_share.partner_bps(),
            }),
            _ => None,
        };
        state.subscription = Some(Subscription {
            subscription_id: e.subscription_id,
            template_id: e.template_id,
            template_name: e.template_name.clone(),
            user_id: e.user_id,
            user_email: e.user_email.clone(),
            partner,
            status: e.status,
            pricing_type: e.pricing_type,
            price: e.price,
            allocations: e.allocations.clone(),
            // Period 0 is due at the anchor until its charge is recorded.
            billing: e.billing_anchor.map(|anchor| Billing {
                anchor,
                next_period_index: 0,
                next_billing_date: anchor,
            }),
            status_history: vec![StatusChange {
                from: None,
                to: e.status,
                actor: e.actor.clone(),
                reason: None,
                at: e.at,
            }],
            created_at: e.at,
        });
        return state;
    }
    if let SubscriptionEvent::SubscriptionAbandoned(_) = event {
        state.abandoned = state.subscription.is_none();
        return state;
    }
    let Some(sub) = state.subscription.as_mut() else {
        return state;
    };
    let mut record = |to: SubscriptionStatus, actor: &Actor, reason: &Option<Reason>, at| {
        sub.status_history.push(StatusChange {
            from: Some(sub.status),
            to,
            actor: actor.clone(),
            reason: reason.clone(),
            at,
        });
        sub.status = to;
    };
    match event {
        SubscriptionEvent::SubscribedToTemplate(_)
        | SubscriptionEvent::SubscriptionAbandoned(_) => {}
        SubscriptionEvent::SubscriptionPaused(e) => {
            record(SubscriptionStatus::Paused, &e.actor, &e.reason, e.at);
        }
        SubscriptionEvent::SubscriptionResumed(e) => {
            record(SubscriptionStatus::Active, &e.actor, &e.reason, e.at);
            if let Some(anchor) = e.new_billing_anchor {
                sub.billing = Some(Billing {
                    anchor,
                    next_period_index: 0,
                    next_billing_date: anchor,
                });
            }
        }
        SubscriptionEvent::SubscriptionCancelled(e) => {
            record(SubscriptionStatus::Cancelled, &e.actor, &e.reason, e.at);
        }
        SubscriptionEvent::BrokerAllocationsSet(e) => sub.allocations = e.allocations.clone(),
        SubscriptionEvent::SubscriptionCharged(e) => {
            sub.billing = Some(Billing {
                anchor: e.billing_anchor,
                next_period_index: e.period_index.saturating_add(1),
                next_billing_date: e.period_end,
            });
        }
    }
    state
}
