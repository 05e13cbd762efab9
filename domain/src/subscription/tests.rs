use chrono::TimeDelta;
use uuid::Uuid;

use super::*;
use crate::basket::{Pricing, Visibility};
use crate::ids::AllocationId;
use crate::testing::{at, given_events, Given};
use crate::values::{ClientId, LotMultiplier};

fn given(events: impl IntoIterator<Item = SubscriptionEvent>) -> Given<SubscriptionAggregate> {
    given_events(events)
}

fn email() -> Email {
    Email::parse("alice@example.com").unwrap()
}

fn user_id() -> UserId {
    UserId::from_email(&email())
}

fn user() -> Actor {
    Actor::User { user_id: user_id() }
}

fn stranger() -> Actor {
    Actor::User {
        user_id: UserId::from_uuid(Uuid::from_u128(99)),
    }
}

fn admin() -> Actor {
    Actor::Admin {
        user_id: UserId::from_uuid(Uuid::from_u128(1)),
    }
}

fn zebu() -> PartnerId {
    PartnerId::parse("ZEBU").unwrap()
}

fn key_id() -> ApiKeyId {
    ApiKeyId::from_uuid(Uuid::from_u128(500))
}

fn zebu_actor() -> Actor {
    Actor::Partner {
        partner_id: zebu(),
        api_key_id: key_id(),
    }
}

fn angel_actor() -> Actor {
    Actor::Partner {
        partner_id: PartnerId::parse("ANGEL_ONE").unwrap(),
        api_key_id: ApiKeyId::from_uuid(Uuid::from_u128(501)),
    }
}

fn bps(n: u32) -> BasisPoints {
    BasisPoints::new(n).unwrap()
}

fn attribution() -> PartnerAttribution {
    PartnerAttribution {
        partner_id: zebu(),
        api_key_id: key_id(),
        broker_id: BrokerId::parse("ZEBU").unwrap(),
        partner_bps: bps(3000),
    }
}

fn sub_id() -> SubscriptionId {
    SubscriptionId::from_uuid(Uuid::from_u128(200))
}

fn template_id() -> TemplateId {
    TemplateId::from_uuid(Uuid::from_u128(100))
}

fn fee() -> Money {
    Money::new(99_900, Currency::INR).unwrap()
}

fn terms(pricing: Pricing) -> TemplateTerms {
    TemplateTerms {
        template_id: template_id(),
        name: BasketName::parse("Weekly income").unwrap(),
        enabled: true,
        visibility: Visibility::Public,
        pricing,
        revision: 3,
    }
}

fn paid_terms() -> TemplateTerms {
    terms(Pricing::paid(fee()).unwrap())
}

fn free_terms() -> TemplateTerms {
    terms(Pricing::free(Currency::INR))
}

/// 31 January: the anchor that shows month-end clamping.
fn anchor() -> DateTime<Utc> {
    at("2026-01-31T10:00:00Z")
}

fn allocation(n: u128, priority: i64) -> BrokerAllocation {
    BrokerAllocation {
        allocation_id: AllocationId::from_uuid(Uuid::from_u128(300 + n)),
        broker_id: BrokerId::parse("ZEBU").unwrap(),
        client_id: ClientId::parse(&format!("Z{n}")).unwrap(),
        lot_multiplier: LotMultiplier::parse_str("1.5").unwrap(),
        priority: Priority::new(priority).unwrap(),
        max_lots_per_order: MaxLotsPerOrder::default(),
    }
}

fn subscribe_cmd(
    actor: Actor,
    template: TemplateTerms,
    partner: Option<PartnerAttribution>,
) -> SubscriptionCommand {
    SubscribeToTemplate {
        actor,
        subscription_id: sub_id(),
        user_id: user_id(),
        user_email: email(),
        template,
        partner,
        allocations: vec![allocation(1, 1)],
        now: anchor(),
    }
    .into()
}

fn subscribed(
    template: &TemplateTerms,
    partner: Option<&PartnerAttribution>,
    actor: Actor,
) -> SubscriptionEvent {
    let paid = template.pricing.is_paid();
    SubscribedToTemplate {
        subscription_id: sub_id(),
        template_id: template_id(),
        template_name: template.name.clone(),
        template_revision: 3,
        user_id: user_id(),
        user_email: email(),
        partner_id: partner.map(|p| p.partner_id.clone()),
        api_key_id: partner.map(|p| p.api_key_id),
        broker_id: partner.map(|p| p.broker_id.clone()),
        pricing_type: template.pricing.pricing_type(),
        price: template.pricing.monthly_fee(),
        revenue_share: partner.map_or(RevenueShare::DIRECT, |p| {
            RevenueShare::from_partner_bps(p.partner_bps)
        }),
        allocations: vec![allocation(1, 1)],
        status: SubscriptionStatus::Active,
        billing_anchor: paid.then(anchor),
        next_billing_date: paid.then(|| at("2026-02-28T10:00:00Z")),
        actor,
        at: anchor(),
    }
    .into()
}

/// The charge of period `k` from `anchor`, with the shares worked out by hand.
fn charged(
    anchor: DateTime<Utc>,
    k: u32,
    partner_bps: u32,
    shares: (i64, i64),
    charged_at: DateTime<Utc>,
) -> SubscriptionEvent {
    let p = period(anchor, k).unwrap();
    SubscriptionCharged {
        subscription_id: sub_id(),
        template_id: template_id(),
        user_id: user_id(),
        partner_id: (partner_bps > 0 || shares.0 > 0).then(zebu),
        billing_anchor: anchor,
        period_index: k,
        period_start: p.start,
        period_end: p.end,
        amount: 99_900,
        currency: Currency::INR,
        partner_bps: bps(partner_bps),
        platform_bps: bps(10_000 - partner_bps),
        partner_share: shares.0,
        platform_share: shares.1,
        charged_at,
    }
    .into()
}

const DIRECT: (i64, i64) = (0, 99_900);
const ZEBU_30: (i64, i64) = (29_970, 69_930);

/// A direct PAID subscription, period 0 charged.
fn direct_history() -> Vec<SubscriptionEvent> {
    vec![
        subscribed(&paid_terms(), None, user()),
        charged(anchor(), 0, 0, DIRECT, anchor()),
    ]
}

/// A PAID subscription by ZEBU at 30 %, period 0 charged.
fn partner_history() -> Vec<SubscriptionEvent> {
    vec![
        subscribed(&paid_terms(), Some(&attribution()), zebu_actor()),
        charged(anchor(), 0, 3000, ZEBU_30, anchor()),
    ]
}

fn reason(text: &str) -> Option<Reason> {
    Some(Reason::parse(text).unwrap())
}

fn paused(actor: Actor, when: DateTime<Utc>, partner: bool) -> SubscriptionEvent {
    SubscriptionPaused {
        subscription_id: sub_id(),
        template_id: template_id(),
        user_id: user_id(),
        partner_id: partner.then(zebu),
        from: SubscriptionStatus::Active,
        actor,
        reason: reason("holiday"),
        at: when,
    }
    .into()
}

fn cancelled(from: SubscriptionStatus, when: DateTime<Utc>) -> SubscriptionEvent {
    SubscriptionCancelled {
        subscription_id: sub_id(),
        template_id: template_id(),
        user_id: user_id(),
        partner_id: None,
        from,
        actor: user(),
        reason: None,
        at: when,
    }
    .into()
}

fn with(
    mut history: Vec<SubscriptionEvent>,
    more: impl IntoIterator<Item = SubscriptionEvent>,
) -> Vec<SubscriptionEvent> {
    history.extend(more);
    history
}

fn transition_err(from: SubscriptionStatus, to: SubscriptionStatus) -> DomainError {
    DomainError::InvalidTransition {
        from: from.as_str(),
        to: to.as_str(),
    }
}

fn not_found() -> DomainError {
    DomainError::NotFound {
        what: "subscription",
    }
}

// ------------------------------------------------------------ SubscribeToTemplate

#[test]
fn a_direct_subscription_to_a_paid_template_charges_the_first_month_all_to_the_platform() {
    let state = given([])
        .when(subscribe_cmd(user(), paid_terms(), None))
        .then(direct_history());
    assert_eq!(state.next_billing_date(), Some(at("2026-02-28T10:00:00Z")));
    assert_eq!(state.status(), Some(SubscriptionStatus::Active));
    assert!(state.is_owned_by_user(&user_id()));
    assert!(!state.is_owned_by_partner(&zebu()));
}

#[test]
fn a_partner_subscription_charges_the_first_month_with_the_partners_share() {
    let state = given([])
        .when(subscribe_cmd(
            zebu_actor(),
            paid_terms(),
            Some(attribution()),
        ))
        .then(partner_history());
    assert!(state.is_owned_by_partner(&zebu()));
    assert!(!state.is_owned_by_partner(&PartnerId::parse("ANGEL_ONE").unwrap()));
    assert_eq!(state.subscription.unwrap().partner, Some(attribution()));
}

#[test]
fn a_subscription_to_a_free_template_has_no_billing_and_no_charge() {
    let state = given([])
        .when(subscribe_cmd(user(), free_terms(), None))
        .then([subscribed(&free_terms(), None, user())]);
    assert_eq!(state.next_billing_date(), None);
}

#[test]
fn subscribing_to_a_disabled_template_is_refused() {
    let mut disabled = paid_terms();
    disabled.enabled = false;
    given([])
        .when(subscribe_cmd(user(), disabled, None))
        .then_err(DomainError::TemplateNotAvailable);
}

#[test]
fn subscribing_on_an_existing_subscription_stream_is_refused_naming_it() {
    given(direct_history())
        .when(subscribe_cmd(user(), paid_terms(), None))
        .then_err(DomainError::AlreadySubscribed {
            subscription_id: sub_id(),
        });
}

#[test]
fn a_user_cannot_subscribe_someone_else() {
    given([])
        .when(subscribe_cmd(stranger(), paid_terms(), None))
        .then_err(DomainError::Forbidden);
}

#[test]
fn a_user_cannot_claim_a_partners_attribution() {
    given([])
        .when(subscribe_cmd(user(), paid_terms(), Some(attribution())))
        .then_err(DomainError::Forbidden);
}

#[test]
fn a_partner_can_only_subscribe_under_its_own_attribution() {
    given([])
        .when(subscribe_cmd(
            angel_actor(),
            paid_terms(),
            Some(attribution()),
        ))
        .then_err(DomainError::Forbidden);
    given([])
        .when(subscribe_cmd(zebu_actor(), paid_terms(), None))
        .then_err(DomainError::Forbidden);
}

#[test]
fn an_admin_may_subscribe_a_user() {
    given([])
        .when(subscribe_cmd(admin(), paid_terms(), None))
        .then([
            subscribed(&paid_terms(), None, admin()),
            charged(anchor(), 0, 0, DIRECT, anchor()),
        ]);
}

#[test]
fn a_user_id_that_is_not_derived_from_the_email_is_refused() {
    let command = SubscribeToTemplate {
        actor: admin(),
        subscription_id: sub_id(),
        user_id: UserId::from_uuid(Uuid::from_u128(99)),
        user_email: email(),
        template: paid_terms(),
        partner: None,
        allocations: vec![],
        now: anchor(),
    };
    given([])
        .when(command.into())
        .then_err(DomainError::invalid("user_id", "does not match user_email"));
}

#[test]
fn subscribing_with_duplicate_allocation_priorities_is_refused() {
    let command = SubscribeToTemplate {
        actor: user(),
        subscription_id: sub_id(),
        user_id: user_id(),
        user_email: email(),
        template: paid_terms(),
        partner: None,
        allocations: vec![allocation(1, 1), allocation(2, 1)],
        now: anchor(),
    };
    given([])
        .when(command.into())
        .then_err(DomainError::invalid(
            "broker_allocations[1].priority",
            "duplicate priority",
        ));
}

// ------------------------------------------------------------ PauseSubscription

fn pause_cmd(actor: Actor, when: DateTime<Utc>) -> SubscriptionCommand {
    PauseSubscription {
        actor,
        reason: reason("holiday"),
        now: when,
    }
    .into()
}

#[test]
fn pausing_an_active_subscription_records_actor_reason_and_time_in_the_history() {
    let when = at("2026-02-10T08:00:00Z");
    let state = given(direct_history())
        .when(pause_cmd(user(), when))
        .then([paused(user(), when, false)]);
    let sub = state.subscription.unwrap();
    assert_eq!(sub.status, SubscriptionStatus::Paused);
    assert_eq!(
        sub.status_history.last(),
        Some(&StatusChange {
            from: Some(SubscriptionStatus::Active),
            to: SubscriptionStatus::Paused,
            actor: user(),
            reason: reason("holiday"),
            at: when,
        })
    );
    assert_eq!(sub.status_history.len(), 2);
}

#[test]
fn the_partner_that_created_a_subscription_may_pause_it() {
    let when = at("2026-02-10T08:00:00Z");
    given(partner_history())
        .when(pause_cmd(zebu_actor(), when))
        .then([paused(zebu_actor(), when, true)]);
}

#[test]
fn another_partner_pausing_a_subscription_is_refused_as_not_found() {
    given(partner_history())
        .when(pause_cmd(angel_actor(), anchor()))
        .then_err(not_found());
}

#[test]
fn a_partner_pausing_a_direct_subscription_is_refused_as_not_found() {
    given(direct_history())
        .when(pause_cmd(zebu_actor(), anchor()))
        .then_err(not_found());
}

#[test]
fn pausing_someone_elses_subscription_is_refused_as_not_found() {
    given(direct_history())
        .when(pause_cmd(stranger(), anchor()))
        .then_err(not_found());
}

#[test]
fn pausing_a_subscription_that_does_not_exist_is_refused_as_not_found() {
    given([])
        .when(pause_cmd(user(), anchor()))
        .then_err(not_found());
}

#[test]
fn pausing_a_paused_subscription_is_refused_as_an_invalid_transition() {
    let when = at("2026-02-10T08:00:00Z");
    given(with(direct_history(), [paused(user(), when, false)]))
        .when(pause_cmd(user(), when))
        .then_err(transition_err(
            SubscriptionStatus::Paused,
            SubscriptionStatus::Paused,
        ));
}

#[test]
fn pausing_a_cancelled_subscription_is_refused_as_an_invalid_transition() {
    given(with(
        direct_history(),
        [cancelled(SubscriptionStatus::Active, anchor())],
    ))
    .when(pause_cmd(user(), anchor()))
    .then_err(transition_err(
        SubscriptionStatus::Cancelled,
        SubscriptionStatus::Paused,
    ));
}

// ------------------------------------------------------------ ResumeSubscription

fn resume_cmd(
    actor: Actor,
    when: DateTime<Utc>,
    partner_bps_now: Option<u32>,
) -> SubscriptionCommand {
    ResumeSubscription {
        actor,
        reason: None,
        partner_bps_now: partner_bps_now.map(bps),
        now: when,
    }
    .into()
}

fn resumed(
    actor: Actor,
    when: DateTime<Utc>,
    new_anchor: bool,
    partner: bool,
) -> SubscriptionEvent {
    SubscriptionResumed {
        subscription_id: sub_id(),
        template_id: template_id(),
        user_id: user_id(),
        partner_id: partner.then(zebu),
        from: SubscriptionStatus::Paused,
        actor,
        reason: None,
        new_billing_anchor: new_anchor.then_some(when),
        at: when,
    }
    .into()
}

#[test]
fn resuming_within_the_paid_period_keeps_the_billing_anchor() {
    let pause_at = at("2026-02-10T08:00:00Z");
    let resume_at = at("2026-02-20T08:00:00Z");
    let state = given(with(direct_history(), [paused(user(), pause_at, false)]))
        .when(resume_cmd(user(), resume_at, None))
        .then([resumed(user(), resume_at, false, false)]);
    let billing = state.subscription.unwrap().billing.unwrap();
    assert_eq!(billing.anchor, anchor());
    assert_eq!(billing.next_period_index, 1);
}

#[test]
fn resuming_after_the_paid_period_starts_a_new_period_at_once_and_charges_it() {
    let pause_at = at("2026-02-10T08:00:00Z");
    let resume_at = at("2026-03-15T12:00:00Z");
    let state = given(with(direct_history(), [paused(user(), pause_at, false)]))
        .when(resume_cmd(user(), resume_at, None))
        .then([
            resumed(user(), resume_at, true, false),
            charged(resume_at, 0, 0, DIRECT, resume_at),
        ]);
    assert_eq!(state.next_billing_date(), Some(at("2026-04-15T12:00:00Z")));
}

#[test]
fn resuming_exactly_at_the_next_billing_date_restarts_billing() {
    let pause_at = at("2026-02-10T08:00:00Z");
    let resume_at = at("2026-02-28T10:00:00Z");
    given(with(direct_history(), [paused(user(), pause_at, false)]))
        .when(resume_cmd(user(), resume_at, None))
        .then([
            resumed(user(), resume_at, true, false),
            charged(resume_at, 0, 0, DIRECT, resume_at),
        ]);
}

#[test]
fn a_resume_charge_uses_the_partners_share_in_force_now() {
    let pause_at = at("2026-02-10T08:00:00Z");
    let resume_at = at("2026-03-15T12:00:00Z");
    given(with(
        partner_history(),
        [paused(zebu_actor(), pause_at, true)],
    ))
    .when(resume_cmd(zebu_actor(), resume_at, Some(2500)))
    .then([
        resumed(zebu_actor(), resume_at, true, true),
        charged(resume_at, 0, 2500, (24_975, 74_925), resume_at),
    ]);
}

#[test]
fn resuming_a_free_subscription_charges_nothing() {
    let pause_at = at("2026-02-10T08:00:00Z");
    let resume_at = at("2026-05-01T00:00:00Z");
    given([
        subscribed(&free_terms(), None, user()),
        paused(user(), pause_at, false),
    ])
    .when(resume_cmd(user(), resume_at, None))
    .then([resumed(user(), resume_at, false, false)]);
}

#[test]
fn resuming_an_active_subscription_is_refused_as_an_invalid_transition() {
    given(direct_history())
        .when(resume_cmd(user(), anchor(), None))
        .then_err(transition_err(
            SubscriptionStatus::Active,
            SubscriptionStatus::Active,
        ));
}

#[test]
fn resuming_a_cancelled_subscription_is_refused_as_an_invalid_transition() {
    given(with(
        direct_history(),
        [cancelled(SubscriptionStatus::Active, anchor())],
    ))
    .when(resume_cmd(user(), anchor(), None))
    .then_err(transition_err(
        SubscriptionStatus::Cancelled,
        SubscriptionStatus::Active,
    ));
}

#[test]
fn resuming_someone_elses_subscription_is_refused_as_not_found() {
    given(with(direct_history(), [paused(user(), anchor(), false)]))
        .when(resume_cmd(stranger(), anchor(), None))
        .then_err(not_found());
}

// ------------------------------------------------------------ CancelSubscription

fn cancel_cmd(actor: Actor, when: DateTime<Utc>) -> SubscriptionCommand {
    CancelSubscription {
        actor,
        reason: None,
        now: when,
    }
    .into()
}

#[test]
fn cancelling_an_active_subscription_ends_it_and_its_billing() {
    let when = at("2026-02-01T00:00:00Z");
    let state = given(direct_history())
        .when(cancel_cmd(user(), when))
        .then([cancelled(SubscriptionStatus::Active, when)]);
    assert_eq!(state.status(), Some(SubscriptionStatus::Cancelled));
    assert_eq!(state.next_billing_date(), None);
}

#[test]
fn cancelling_a_paused_subscription_ends_it() {
    let when = at("2026-02-11T00:00:00Z");
    given(with(direct_history(), [paused(user(), anchor(), false)]))
        .when(cancel_cmd(user(), when))
        .then([cancelled(SubscriptionStatus::Paused, when)]);
}

#[test]
fn cancelling_a_cancelled_subscription_is_refused_as_an_invalid_transition() {
    given(with(
        direct_history(),
        [cancelled(SubscriptionStatus::Active, anchor())],
    ))
    .when(cancel_cmd(user(), anchor()))
    .then_err(transition_err(
        SubscriptionStatus::Cancelled,
        SubscriptionStatus::Cancelled,
    ));
}

#[test]
fn cancelling_someone_elses_subscription_is_refused_as_not_found() {
    given(direct_history())
        .when(cancel_cmd(stranger(), anchor()))
        .then_err(not_found());
    given(partner_history())
        .when(cancel_cmd(angel_actor(), anchor()))
        .then_err(not_found());
}

// ------------------------------------------------------------ SetBrokerAllocations

fn set_cmd(actor: Actor, allocations: Vec<BrokerAllocation>) -> SubscriptionCommand {
    SetBrokerAllocations {
        actor,
        allocations,
        now: at("2026-02-02T00:00:00Z"),
    }
    .into()
}

#[test]
fn the_subscriber_replaces_the_broker_allocations() {
    let list = vec![allocation(2, 1), allocation(3, 2)];
    let state = given(direct_history())
        .when(set_cmd(user(), list.clone()))
        .then([BrokerAllocationsSet {
            subscription_id: sub_id(),
            template_id: template_id(),
            user_id: user_id(),
            allocations: list.clone(),
            actor: user(),
            at: at("2026-02-02T00:00:00Z"),
        }
        .into()]);
    assert_eq!(state.subscription.unwrap().allocations, list);
}

#[test]
fn allocations_of_a_paused_subscription_can_be_replaced() {
    given(with(direct_history(), [paused(user(), anchor(), false)]))
        .when(set_cmd(user(), vec![]))
        .then([BrokerAllocationsSet {
            subscription_id: sub_id(),
            template_id: template_id(),
            user_id: user_id(),
            allocations: vec![],
            actor: user(),
            at: at("2026-02-02T00:00:00Z"),
        }
        .into()]);
}

#[test]
fn setting_allocations_on_a_cancelled_subscription_is_refused() {
    given(with(
        direct_history(),
        [cancelled(SubscriptionStatus::Active, anchor())],
    ))
    .when(set_cmd(user(), vec![allocation(2, 1)]))
    .then_err(DomainError::SubscriptionCancelled);
}

#[test]
fn setting_more_than_ten_allocations_is_refused() {
    let many: Vec<BrokerAllocation> = (0..11)
        .map(|n| allocation(n, i64::try_from(n).unwrap() + 1))
        .collect();
    given(direct_history())
        .when(set_cmd(user(), many))
        .then_err(DomainError::invalid(
            "broker_allocations",
            "must have at most 10 allocations",
        ));
}

#[test]
fn setting_someone_elses_allocations_is_refused_as_not_found() {
    given(direct_history())
        .when(set_cmd(stranger(), vec![]))
        .then_err(not_found());
}

// ------------------------------------------------------------ ChargeDue

fn charge_cmd(as_of: DateTime<Utc>, partner_bps_now: Option<u32>) -> SubscriptionCommand {
    ChargeDue {
        as_of,
        partner_bps_now: partner_bps_now.map(bps),
    }
    .into()
}

#[test]
fn a_billing_run_before_the_next_billing_date_charges_nothing() {
    given(direct_history())
        .when(charge_cmd(at("2026-02-28T09:59:59Z"), None))
        .then([]);
}

#[test]
fn a_billing_run_charges_every_missed_period_once_with_month_end_clamping() {
    let run = at("2026-05-01T00:00:00Z");
    let state = given(direct_history()).when(charge_cmd(run, None)).then([
        charged(anchor(), 1, 0, DIRECT, run),
        charged(anchor(), 2, 0, DIRECT, run),
        charged(anchor(), 3, 0, DIRECT, run),
    ]);
    // Periods 1..3 are Feb 28 → Mar 31 → Apr 30 → May 31 (vectors/billing_periods.json).
    assert_eq!(state.next_billing_date(), Some(at("2026-05-31T10:00:00Z")));
    given(with(
        direct_history(),
        [charged(anchor(), 1, 0, DIRECT, run)],
    ))
    .when(charge_cmd(run, None))
    .then([
        charged(anchor(), 2, 0, DIRECT, run),
        charged(anchor(), 3, 0, DIRECT, run),
    ]);
}

#[test]
fn a_repeated_billing_run_charges_nothing_more() {
    let run = at("2026-03-01T00:00:00Z");
    given(with(
        direct_history(),
        [charged(anchor(), 1, 0, DIRECT, run)],
    ))
    .when(charge_cmd(run, None))
    .then([]);
}

#[test]
fn a_billing_run_exactly_at_the_next_billing_date_charges_it() {
    let run = at("2026-02-28T10:00:00Z");
    given(direct_history())
        .when(charge_cmd(run, None))
        .then([charged(anchor(), 1, 0, DIRECT, run)]);
}

#[test]
fn a_billing_run_applies_the_partners_share_in_force_now() {
    let run = at("2026-03-01T00:00:00Z");
    given(partner_history())
        .when(charge_cmd(run, Some(2750)))
        .then([charged(anchor(), 1, 2750, (27_473, 72_427), run)]);
}

#[test]
fn a_billing_run_without_a_current_share_applies_the_share_at_subscription() {
    let run = at("2026-03-01T00:00:00Z");
    given(partner_history())
        .when(charge_cmd(run, None))
        .then([charged(anchor(), 1, 3000, ZEBU_30, run)]);
}

#[test]
fn a_billing_run_gives_the_platform_everything_of_a_direct_subscription() {
    let run = at("2026-03-01T00:00:00Z");
    given(direct_history())
        .when(charge_cmd(run, Some(3000)))
        .then([charged(anchor(), 1, 0, DIRECT, run)]);
}

#[test]
fn a_billing_run_does_not_charge_a_paused_subscription() {
    given(with(direct_history(), [paused(user(), anchor(), false)]))
        .when(charge_cmd(at("2026-06-01T00:00:00Z"), None))
        .then([]);
}

#[test]
fn a_billing_run_does_not_charge_a_cancelled_subscription() {
    given(with(
        direct_history(),
        [cancelled(SubscriptionStatus::Active, anchor())],
    ))
    .when(charge_cmd(at("2026-06-01T00:00:00Z"), None))
    .then([]);
}

#[test]
fn a_billing_run_does_not_charge_a_free_subscription() {
    given([subscribed(&free_terms(), None, user())])
        .when(charge_cmd(at("2027-06-01T00:00:00Z"), None))
        .then([]);
}

#[test]
fn charging_a_subscription_that_does_not_exist_is_refused_as_not_found() {
    given([])
        .when(charge_cmd(anchor(), None))
        .then_err(not_found());
}

#[test]
fn a_billing_run_charges_at_most_a_bounded_number_of_periods_and_the_next_run_continues() {
    let run = anchor() + TimeDelta::days(366 * 20);
    let first = given(direct_history())
        .when(charge_cmd(run, None))
        .then((1..=MAX_CHARGES_PER_DECISION).map(|k| charged(anchor(), k, 0, DIRECT, run)));
    let next = SubscriptionAggregate::decide(&first, charge_cmd(run, None).clone()).unwrap();
    assert_eq!(
        next.first(),
        Some(&charged(
            anchor(),
            MAX_CHARGES_PER_DECISION + 1,
            0,
            DIRECT,
            run
        ))
    );
}

#[test]
fn the_stream_of_a_subscription_is_named_after_its_id() {
    assert_eq!(stream_name(&sub_id()), format!("subscription-{}", sub_id()));
}

// ------------------------------------------------------------ AbandonSubscription

fn abandon_cmd() -> SubscriptionCommand {
    AbandonSubscription {
        actor: user(),
        subscription_id: sub_id(),
        user_id: user_id(),
        template_id: template_id(),
        now: anchor() + TimeDelta::seconds(61),
    }
    .into()
}

fn abandoned() -> SubscriptionEvent {
    SubscriptionAbandoned {
        subscription_id: sub_id(),
        template_id: template_id(),
        user_id: user_id(),
        actor: user(),
        at: anchor() + TimeDelta::seconds(61),
    }
    .into()
}

#[test]
fn abandoning_an_empty_subscription_stream_claims_it() {
    let state = given([]).when(abandon_cmd()).then([abandoned()]);
    assert!(state.abandoned);
    assert_eq!(state.subscription, None);
}

#[test]
fn a_late_subscribe_on_an_abandoned_stream_is_refused() {
    given([abandoned()])
        .when(subscribe_cmd(user(), paid_terms(), None))
        .then_err(DomainError::ReservationReleased);
}

#[test]
fn abandoning_a_subscription_that_exists_or_was_abandoned_records_nothing() {
    let state = given(direct_history()).when(abandon_cmd()).then([]);
    assert!(!state.abandoned);
    given([abandoned()]).when(abandon_cmd()).then([]);
}

#[test]
fn an_abandoned_stream_has_nothing_to_manage_or_bill() {
    given([abandoned()])
        .when(
            PauseSubscription {
                actor: user(),
                reason: None,
                now: anchor(),
            }
            .into(),
        )
        .then_err(not_found());
    given([abandoned()])
        .when(
            ChargeDue {
                as_of: anchor() + TimeDelta::days(90),
                partner_bps_now: None,
            }
            .into(),
        )
        .then_err(not_found());
}
