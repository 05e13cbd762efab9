//! Any sequence of commands, valid or not, leaves a state that replaying the
//! recorded events rebuilds exactly — from memory and after the store's codec.
//! Along the way the business invariants are checked on every history.

mod common;

use std::collections::BTreeSet;

use basketry_domain::basket::{
    AddStrategy, DifficultyLevel, PublishTemplate, RemoveStrategy, ReplaceStrategy,
    UnpublishTemplate, UpdateBasket, UpdateMarketplaceConfig, Visibility, MAX_STRATEGIES,
};
use basketry_domain::partner::{
    ApiKeyStatus, ApiKeyToken, GracePeriodHours, IssueApiKey, RevokeApiKey, RotateApiKey,
    SetApiKeyStatus, UpdatePartnerConfig,
};
use basketry_domain::subscription::{
    CancelSubscription, ChargeDue, PauseSubscription, ResumeSubscription, SetBrokerAllocations,
    SubscribeToTemplate, SubscriptionCharged,
};
use basketry_domain::*;
use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use proptest::prelude::*;
use uuid::Uuid;

/// Folds `log` from the empty state, directly and after `to_data`/`from_stored`,
/// and checks both equal the state built decision by decision.
fn assert_replays<A: Aggregate>(log: &[A::Event], live: &A::State) -> Result<(), TestCaseError> {
    prop_assert_eq!(&A::replay(log), live);
    let stored: Vec<A::Event> = log
        .iter()
        .map(|e| A::Event::from_stored(e.event_type(), e.schema_version(), e.to_data()))
        .collect::<Result<_, _>>()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&stored, &log.to_vec());
    prop_assert_eq!(&A::replay(&stored), live);
    Ok(())
}

/// Decides and, when accepted, applies and logs.
fn step<A: Aggregate>(
    state: A::State,
    log: &mut Vec<A::Event>,
    command: A::Command,
) -> (A::State, bool) {
    match A::decide(&state, command) {
        Ok(events) => {
            let state = events.iter().fold(state, A::evolve);
            log.extend(events);
            (state, true)
        }
        Err(_) => (state, false),
    }
}

// ------------------------------------------------------------ subscription

#[derive(Debug, Clone)]
enum SubOp {
    Pause(Who),
    Resume(Who, Option<u32>),
    Cancel(Who),
    SetAllocations(Who, u8),
    Charge(Option<u32>),
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Subscriber,
    Partner,
    Stranger,
    Admin,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => Just(Who::Subscriber),
        2 => Just(Who::Partner),
        1 => Just(Who::Stranger),
        1 => Just(Who::Admin),
    ]
}

fn actor(who: Who) -> Actor {
    match who {
        Who::Subscriber => user(),
        Who::Partner => zebu_actor(),
        Who::Stranger => stranger(),
        Who::Admin => admin(),
    }
}

fn share() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), (0u32..=10_000).prop_map(Some)]
}

fn sub_op() -> impl Strategy<Value = SubOp> {
    prop_oneof![
        2 => who().prop_map(SubOp::Pause),
        2 => (who(), share()).prop_map(|(w, s)| SubOp::Resume(w, s)),
        1 => who().prop_map(SubOp::Cancel),
        1 => (who(), 0u8..=3).prop_map(|(w, n)| SubOp::SetAllocations(w, n)),
        4 => share().prop_map(SubOp::Charge),
    ]
}

fn anchor() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        (1_767_225_600i64..1_830_297_600).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        prop::sample::select(vec![
            "2026-01-31T10:00:00Z",
            "2028-01-31T23:59:59Z",
            "2026-03-31T00:00:00Z",
            "2026-08-29T00:00:00Z",
            "2026-12-31T18:30:00Z",
        ])
        .prop_map(at),
    ]
}

fn sub_command(op: &SubOp, now: DateTime<Utc>) -> SubscriptionCommand {
    match op {
        SubOp::Pause(w) => PauseSubscription {
            actor: actor(*w),
            reason: Some(Reason::parse("because").unwrap()),
            now,
        }
        .into(),
        SubOp::Resume(w, s) => ResumeSubscription {
            actor: actor(*w),
            reason: None,
            partner_bps_now: s.map(bps),
            now,
        }
        .into(),
        SubOp::Cancel(w) => CancelSubscription {
            actor: actor(*w),
            reason: None,
            now,
        }
        .into(),
        SubOp::SetAllocations(w, n) => SetBrokerAllocations {
            actor: actor(*w),
            allocations: (0..*n)
                .map(|i| allocation(u128::from(i), i64::from(i) + 1, "1.25"))
                .collect(),
            now,
        }
        .into(),
        SubOp::Charge(s) => ChargeDue {
            as_of: now,
            partner_bps_now: s.map(bps),
        }
        .into(),
    }
}

fn charges(log: &[SubscriptionEvent]) -> Vec<&SubscriptionCharged> {
    log.iter()
        .filter_map(|e| match e {
            SubscriptionEvent::SubscriptionCharged(c) => Some(c),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_sequence_of_subscription_commands_replays_to_the_same_state(
        paid_template in any::<bool>(),
        through_partner in any::<bool>(),
        start in anchor(),
        ops in prop::collection::vec((sub_op(), 0i64..=1_500), 0..40),
    ) {
        let pricing = if paid_template { paid(99_900) } else { basket::Pricing::free(Currency::INR) };
        let subscribe = SubscribeToTemplate {
            actor: if through_partner { zebu_actor() } else { user() },
            subscription_id: SubscriptionId::from_uuid(Uuid::from_u128(200)),
            user_id: UserId::from_email(&email()),
            user_email: email(),
            template: template_terms(pricing),
            partner: through_partner.then(attribution),
            allocations: vec![allocation(1, 1, "2")],
            now: start,
        };
        let mut log = Vec::new();
        let (mut state, ok) = step::<SubscriptionAggregate>(SubscriptionState::default(), &mut log, subscribe.into());
        prop_assert!(ok);

        let mut now = start;
        for (op, hours) in &ops {
            now += TimeDelta::hours(*hours);
            let accepted;
            (state, accepted) = step::<SubscriptionAggregate>(state, &mut log, sub_command(op, now));
            if accepted {
                if let SubOp::Charge(_) = op {
                    // However often the run repeats, a period is charged once.
                    let again = SubscriptionAggregate::decide(&state, sub_command(op, now)).unwrap();
                    prop_assert!(again.is_empty());
                }
            }
        }

        assert_replays::<SubscriptionAggregate>(&log, &state)?;

        let all = charges(&log);
        prop_assert!(paid_template || all.is_empty());
        let periods: BTreeSet<_> = all.iter().map(|c| (c.billing_anchor, c.period_index)).collect();
        prop_assert_eq!(periods.len(), all.len(), "a period was charged twice");
        for c in &all {
            prop_assert_eq!(c.partner_share + c.platform_share, c.amount);
            prop_assert!(c.partner_share >= 0 && c.platform_share >= 0);
            prop_assert!(c.period_start <= c.charged_at);
            prop_assert_eq!(c.partner_bps.get() + c.platform_bps.get(), 10_000);
            prop_assert!(through_partner || c.partner_bps.get() == 0);
            let p = period(c.billing_anchor, c.period_index).unwrap();
            prop_assert_eq!((p.start, p.end), (c.period_start, c.period_end));
        }
        let sub = state.subscription.as_ref().unwrap();
        let transitions = log
            .iter()
            .filter(|e| matches!(
                e,
                SubscriptionEvent::SubscribedToTemplate(_)
                    | SubscriptionEvent::SubscriptionPaused(_)
                    | SubscriptionEvent::SubscriptionResumed(_)
                    | SubscriptionEvent::SubscriptionCancelled(_)
            ))
            .count();
        prop_assert_eq!(sub.status_history.len(), transitions);
        if let Some(last_cancel) = sub.status_history.iter().position(|c| c.to == SubscriptionStatus::Cancelled) {
            prop_assert_eq!(last_cancel, sub.status_history.len() - 1, "cancelled is final");
        }
    }

    #[test]
    fn billing_runs_charge_exactly_the_periods_that_have_started(
        start in anchor(),
        first_days in 0i64..400,
        more_days in 0i64..400,
    ) {
        let subscribe = SubscribeToTemplate {
            actor: user(),
            subscription_id: SubscriptionId::from_uuid(Uuid::from_u128(200)),
            user_id: UserId::from_email(&email()),
            user_email: email(),
            template: template_terms(paid(99_900)),
            partner: None,
            allocations: vec![],
            now: start,
        };
        let first = start + TimeDelta::days(first_days);
        let second = first + TimeDelta::days(more_days);
        let log = run::<SubscriptionAggregate>([
            subscribe.into(),
            ChargeDue { as_of: first, partner_bps_now: None }.into(),
            ChargeDue { as_of: second, partner_bps_now: None }.into(),
            ChargeDue { as_of: first, partner_bps_now: None }.into(),
        ]);
        let started = (0..).take_while(|k| period(start, *k).unwrap().start <= second).count();
        prop_assert_eq!(charges(&log).len(), started);
    }
}

// ------------------------------------------------------------ basket

#[derive(Debug, Clone)]
enum BasketOp {
    Rename(bool),
    Add(bool, u8),
    Replace(bool, u8, i64),
    Remove(bool, u8),
    Publish(bool),
    Reprice(bool, i64),
    Unpublish(bool),
}

fn basket_op() -> impl Strategy<Value = BasketOp> {
    let owner = prop_oneof![5 => Just(true), 1 => Just(false)];
    prop_oneof![
        1 => owner.clone().prop_map(BasketOp::Rename),
        4 => (owner.clone(), 0u8..8).prop_map(|(o, n)| BasketOp::Add(o, n)),
        2 => (owner.clone(), 0u8..8, 1i64..=1000).prop_map(|(o, n, l)| BasketOp::Replace(o, n, l)),
        3 => (owner.clone(), 0u8..8).prop_map(|(o, n)| BasketOp::Remove(o, n)),
        2 => owner.clone().prop_map(BasketOp::Publish),
        1 => (owner.clone(), 0i64..500_000).prop_map(|(o, f)| BasketOp::Reprice(o, f)),
        1 => owner.prop_map(BasketOp::Unpublish),
    ]
}

fn basket_command(op: &BasketOp, now: DateTime<Utc>) -> BasketCommand {
    let by = |owner: bool| if owner { admin() } else { stranger() };
    match op {
        BasketOp::Rename(o) => UpdateBasket {
            actor: by(*o),
            name: Some(BasketName::parse(&format!("Renamed at {now}")).unwrap()),
            description: None,
            category: None,
            now,
        }
        .into(),
        BasketOp::Add(o, n) => AddStrategy {
            actor: by(*o),
            strategy: strategy(u128::from(*n), 1),
            now,
        }
        .into(),
        BasketOp::Replace(o, n, lots) => ReplaceStrategy {
            actor: by(*o),
            strategy: strategy(u128::from(*n), *lots),
            now,
        }
        .into(),
        BasketOp::Remove(o, n) => RemoveStrategy {
            actor: by(*o),
            strategy_id: sid(u128::from(*n)),
            now,
        }
        .into(),
        BasketOp::Publish(o) => PublishTemplate {
            actor: by(*o),
            visibility: Visibility::Public,
            pricing: paid(99_900),
            difficulty_level: DifficultyLevel::Beginner,
            tags: vec![],
            category: None,
            now,
        }
        .into(),
        BasketOp::Reprice(o, fee) => UpdateMarketplaceConfig {
            actor: by(*o),
            visibility: None,
            pricing: Some(if *fee == 0 {
                basket::Pricing::free(Currency::INR)
            } else {
                paid(*fee)
            }),
            difficulty_level: None,
            tags: None,
            category: None,
            now,
        }
        .into(),
        BasketOp::Unpublish(o) => UnpublishTemplate {
            actor: by(*o),
            reason: None,
            now,
        }
        .into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_sequence_of_basket_commands_replays_to_the_same_state(
        initial in 0u8..3,
        ops in prop::collection::vec(basket_op(), 0..80),
    ) {
        let create = basket::CreateBasket {
            actor: admin(),
            basket_id: basket_id(),
            name: BasketName::parse("Start").unwrap(),
            description: Description::default(),
            category: Category::parse("INCOME").unwrap(),
            strategies: (0..initial).map(|n| strategy(u128::from(n), 1)).collect(),
            now: at("2026-01-01T00:00:00Z"),
        };
        let mut log = Vec::new();
        let (mut state, ok) = step::<BasketAggregate>(BasketState::default(), &mut log, create.into());
        prop_assert!(ok);
        let mut now = at("2026-01-01T00:00:00Z");
        for op in &ops {
            now += TimeDelta::minutes(7);
            (state, _) = step::<BasketAggregate>(state, &mut log, basket_command(op, now));
            let basket = state.basket.as_ref().unwrap();
            prop_assert!(basket.strategies.len() <= MAX_STRATEGIES);
            prop_assert!(!state.is_published() || !basket.strategies.is_empty(), "a published template lost its last strategy");
        }
        assert_replays::<BasketAggregate>(&log, &state)?;
        // Every change bumped the revision by exactly one.
        let revisions: Vec<u64> = log.iter().map(BasketEvent::revision).collect();
        let expected: Vec<u64> = (1..=u64::try_from(log.len()).unwrap()).collect();
        prop_assert_eq!(revisions, expected);
        prop_assert_eq!(state.revision(), u64::try_from(log.len()).unwrap());
    }
}

// ------------------------------------------------------------ partner

#[derive(Debug, Clone)]
enum PartnerOp {
    Issue(u8),
    Status(u8, ApiKeyStatus),
    Rotate(u8, i64),
    Revoke(u8),
    Share(u32),
}

fn partner_op() -> impl Strategy<Value = PartnerOp> {
    prop_oneof![
        (0u8..4).prop_map(PartnerOp::Issue),
        (0u8..4, prop::sample::select(ApiKeyStatus::ALL.to_vec()))
            .prop_map(|(k, s)| PartnerOp::Status(k, s)),
        (0u8..4, 0i64..=168).prop_map(|(k, h)| PartnerOp::Rotate(k, h)),
        (0u8..4).prop_map(PartnerOp::Revoke),
        (0u32..=10_000).prop_map(PartnerOp::Share),
    ]
}

fn key(n: u8) -> ApiKeyId {
    ApiKeyId::from_uuid(Uuid::from_u128(600 + u128::from(n)))
}

fn partner_command(op: &PartnerOp, now: DateTime<Utc>) -> PartnerCommand {
    match op {
        PartnerOp::Issue(n) => IssueApiKey {
            actor: admin(),
            api_key_id: key(*n),
            key: ApiKeyToken::parse(&format!("pk_zebu_live_{n:0>20}")).unwrap(),
            secret_hash: secret_hash(&format!("c2FsdA{n}")),
            now,
        }
        .into(),
        PartnerOp::Status(n, s) => SetApiKeyStatus {
            actor: admin(),
            api_key_id: key(*n),
            status: *s,
            reason: None,
            now,
        }
        .into(),
        PartnerOp::Rotate(n, h) => RotateApiKey {
            actor: admin(),
            api_key_id: key(*n),
            new_secret_hash: secret_hash(&format!("cm90{}", now.timestamp())),
            grace_period: GracePeriodHours::new(*h).unwrap(),
            now,
        }
        .into(),
        PartnerOp::Revoke(n) => RevokeApiKey {
            actor: admin(),
            api_key_id: key(*n),
            reason: None,
            now,
        }
        .into(),
        PartnerOp::Share(b) => UpdatePartnerConfig {
            actor: admin(),
            partner_name: None,
            revenue_share: Some(RevenueShare::from_partner_bps(bps(*b))),
            permissions: None,
            rate_limits: None,
            branding: None,
            now,
        }
        .into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_sequence_of_partner_commands_replays_to_the_same_state(
        ops in prop::collection::vec((partner_op(), 0i64..=72), 0..40),
    ) {
        let mut log = common::partner_story()[..1].to_vec();
        let mut state = PartnerAggregate::replay(&log);
        let mut now = at("2026-01-01T00:00:00Z");
        for (op, hours) in &ops {
            now += TimeDelta::hours(*hours);
            (state, _) = step::<PartnerAggregate>(state, &mut log, partner_command(op, now));
        }
        assert_replays::<PartnerAggregate>(&log, &state)?;
        for n in 0..4 {
            let candidates = state.verify_candidates(&key(n), now);
            match state.key_status(&key(n)) {
                Some(ApiKeyStatus::Active) => prop_assert!((1..=2).contains(&candidates.len())),
                _ => prop_assert!(candidates.is_empty(), "an inactive key authenticates"),
            }
        }
    }
}
