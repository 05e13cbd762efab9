//! Fixtures and scripted histories shared by the integration tests. Each test
//! binary uses a different part of this module, hence the allowance below.
#![allow(dead_code)]

use basketry_domain::basket::{
    AddStrategy, CreateBasket, DifficultyLevel, LegInput, Pricing, PublishTemplate, RemoveStrategy,
    ReplaceStrategy, Strategy, StrategyInput, UnpublishTemplate, UpdateBasket,
    UpdateMarketplaceConfig, Visibility,
};
use basketry_domain::partner::{
    default_permissions, ApiKeyStatus, ApiKeyToken, Branding, GracePeriodHours, IssueApiKey,
    PartnerType, RateLimits, RegisterPartner, RevokeApiKey, RotateApiKey, SecretHash,
    SetApiKeyStatus, UpdatePartnerConfig,
};
use basketry_domain::subscription::{
    BrokerAllocation, CancelSubscription, ChargeDue, MaxLotsPerOrder, PartnerAttribution,
    PauseSubscription, Priority, ResumeSubscription, SetBrokerAllocations, SubscribeToTemplate,
};
use basketry_domain::user_link::{ReleaseTemplateSubscription, ReserveTemplateSubscription};
use basketry_domain::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

pub fn admin_id() -> UserId {
    UserId::from_uuid(Uuid::from_u128(1))
}

pub fn admin() -> Actor {
    Actor::Admin {
        user_id: admin_id(),
    }
}

pub fn email() -> Email {
    Email::parse("alice@example.com").unwrap()
}

pub fn user() -> Actor {
    Actor::User {
        user_id: UserId::from_email(&email()),
    }
}

pub fn stranger() -> Actor {
    Actor::User {
        user_id: UserId::from_uuid(Uuid::from_u128(99)),
    }
}

pub fn zebu() -> PartnerId {
    PartnerId::parse("ZEBU").unwrap()
}

pub fn zebu_key() -> ApiKeyId {
    ApiKeyId::from_uuid(Uuid::from_u128(500))
}

pub fn zebu_actor() -> Actor {
    Actor::Partner {
        partner_id: zebu(),
        api_key_id: zebu_key(),
    }
}

pub fn bps(n: u32) -> BasisPoints {
    BasisPoints::new(n).unwrap()
}

pub fn basket_id() -> BasketId {
    BasketId::from_uuid(Uuid::from_u128(100))
}

pub fn sid(n: u128) -> StrategyId {
    StrategyId::from_uuid(Uuid::from_u128(1000 + n))
}

pub fn strategy(n: u128, lots: i64) -> Strategy {
    let input = StrategyInput {
        name: Some(format!("Strategy {n}")),
        underlying: Some("BANKNIFTY".into()),
        product: Some("NRML".into()),
        entry_time: Some("09:30".into()),
        exit_time: Some("15:00".into()),
        trading_days: Some(vec!["TUE".into(), "THU".into()]),
        stop_loss_pct: Some("150".into()),
        target_pct: None,
        legs: Some(vec![
            LegInput {
                action: Some("SELL".into()),
                option_type: Some("CE".into()),
                strike: Some("ATM+2".into()),
                expiry: Some("MONTHLY".into()),
                lots: Some(lots),
            },
            LegInput {
                action: Some("BUY".into()),
                option_type: Some("CE".into()),
                strike: Some("ATM+5".into()),
                expiry: Some("MONTHLY".into()),
                lots: Some(lots),
            },
        ]),
    };
    Strategy::parse(sid(n), &input).unwrap()
}

pub fn paid(fee: i64) -> Pricing {
    Pricing::paid(Money::new(fee, Currency::INR).unwrap()).unwrap()
}

pub fn allocation(n: u128, priority: i64, multiplier: &str) -> BrokerAllocation {
    BrokerAllocation {
        allocation_id: AllocationId::from_uuid(Uuid::from_u128(300 + n)),
        broker_id: BrokerId::parse("ZEBU").unwrap(),
        client_id: ClientId::parse(&format!("Z{n:04}")).unwrap(),
        lot_multiplier: LotMultiplier::parse_str(multiplier).unwrap(),
        priority: Priority::new(priority).unwrap(),
        max_lots_per_order: MaxLotsPerOrder::new(25).unwrap(),
    }
}

pub fn attribution() -> PartnerAttribution {
    PartnerAttribution {
        partner_id: zebu(),
        api_key_id: zebu_key(),
        broker_id: BrokerId::parse("ZEBU").unwrap(),
        partner_bps: bps(3000),
    }
}

pub fn template_terms(pricing: Pricing) -> TemplateTerms {
    TemplateTerms {
        template_id: basket_id(),
        name: BasketName::parse("Weekly income").unwrap(),
        enabled: true,
        visibility: Visibility::Public,
        pricing,
        revision: 2,
    }
}

pub fn key_token() -> ApiKeyToken {
    ApiKeyToken::parse("pk_zebu_live_4fTq9ZkP0aLmN3xYb7Cw2R").unwrap()
}

pub fn secret_hash(salt: &str) -> SecretHash {
    SecretHash::parse(&format!(
        "$argon2id$v=19$m=19456,t=2,p=1${salt}$q83vEjRWeJq83vEjRWeJqw"
    ))
    .unwrap()
}

/// Runs `commands` in order, each on the state the previous ones left, and
/// returns every event recorded.
pub fn run<A: Aggregate>(commands: impl IntoIterator<Item = A::Command>) -> Vec<A::Event>
where
    A::Event: std::fmt::Debug,
{
    let mut state = A::State::default();
    let mut log = Vec::new();
    for (i, command) in commands.into_iter().enumerate() {
        let (next, events) =
            A::execute(state, command).unwrap_or_else(|e| panic!("command {i} refused: {e:?}"));
        state = next;
        log.extend(events);
    }
    log
}

/// A basket's life that records every basket event type.
pub fn basket_story() -> Vec<BasketEvent> {
    run::<BasketAggregate>([
        CreateBasket {
            actor: admin(),
            basket_id: basket_id(),
            name: BasketName::parse("Weekly income").unwrap(),
            description: Description::parse("Sells weekly calls\nwith a hedge").unwrap(),
            category: Category::parse("INCOME").unwrap(),
            strategies: vec![strategy(1, 1)],
            now: at("2026-01-01T09:00:00Z"),
        }
        .into(),
        UpdateBasket {
            actor: admin(),
            name: None,
            description: None,
            category: Some(Category::parse("HEDGING").unwrap()),
            now: at("2026-01-01T10:00:00Z"),
        }
        .into(),
        AddStrategy {
            actor: admin(),
            strategy: strategy(2, 3),
            now: at("2026-01-01T11:00:00Z"),
        }
        .into(),
        ReplaceStrategy {
            actor: admin(),
            strategy: strategy(2, 4),
            now: at("2026-01-01T12:00:00Z"),
        }
        .into(),
        PublishTemplate {
            actor: admin(),
            visibility: Visibility::Public,
            pricing: paid(99_900),
            difficulty_level: DifficultyLevel::Advanced,
            tags: vec![Tag::parse("BANKNIFTY").unwrap()],
            category: None,
            now: at("2026-01-02T09:00:00Z"),
        }
        .into(),
        RemoveStrategy {
            actor: admin(),
            strategy_id: sid(1),
            now: at("2026-01-03T09:00:00Z"),
        }
        .into(),
        UpdateMarketplaceConfig {
            actor: admin(),
            visibility: Some(Visibility::Private),
            pricing: Some(paid(149_900)),
            difficulty_level: None,
            tags: None,
            category: None,
            now: at("2026-01-04T09:00:00Z"),
        }
        .into(),
        UnpublishTemplate {
            actor: admin(),
            reason: Some(Reason::parse("strategy under review").unwrap()),
            now: at("2026-01-05T09:00:00Z"),
        }
        .into(),
    ])
}

/// A partner subscription's life that records every subscription event type.
pub fn subscription_story() -> Vec<SubscriptionEvent> {
    run::<SubscriptionAggregate>([
        SubscribeToTemplate {
            actor: zebu_actor(),
            subscription_id: SubscriptionId::from_uuid(Uuid::from_u128(200)),
            user_id: UserId::from_email(&email()),
            user_email: email(),
            template: template_terms(paid(99_900)),
            partner: Some(attribution()),
            allocations: vec![allocation(1, 1, "2.5")],
            now: at("2026-01-31T10:00:00Z"),
        }
        .into(),
        SetBrokerAllocations {
            actor: user(),
            allocations: vec![allocation(1, 2, "2.5"), allocation(2, 1, "0.75")],
            now: at("2026-02-01T10:00:00Z"),
        }
        .into(),
        ChargeDue {
            as_of: at("2026-04-01T00:00:00Z"),
            partner_bps_now: Some(bps(2750)),
        }
        .into(),
        PauseSubscription {
            actor: zebu_actor(),
            reason: Some(Reason::parse("customer request").unwrap()),
            now: at("2026-04-02T00:00:00Z"),
        }
        .into(),
        ResumeSubscription {
            actor: user(),
            reason: None,
            partner_bps_now: None,
            now: at("2026-06-15T00:00:00Z"),
        }
        .into(),
        CancelSubscription {
            actor: user(),
            reason: Some(Reason::parse("too risky").unwrap()),
            now: at("2026-07-01T00:00:00Z"),
        }
        .into(),
    ])
}

/// A subscription id whose reservation was released before it was
/// recorded (another stream than [`subscription_story`]'s).
pub fn abandoned_subscription_story() -> Vec<SubscriptionEvent> {
    run::<SubscriptionAggregate>([subscription::AbandonSubscription {
        actor: user(),
        subscription_id: SubscriptionId::from_uuid(Uuid::from_u128(201)),
        user_id: UserId::from_email(&email()),
        template_id: basket_id(),
        now: at("2026-01-31T10:01:01Z"),
    }
    .into()])
}

/// A user's reservations that record every user-link event type.
pub fn user_link_story() -> Vec<UserLinkEvent> {
    let user_id = UserId::from_email(&email());
    let subscription_id = SubscriptionId::from_uuid(Uuid::from_u128(200));
    run::<UserLinkAggregate>([
        ReserveTemplateSubscription {
            user_id,
            template_id: basket_id(),
            subscription_id,
            now: at("2026-01-31T10:00:00Z"),
        }
        .into(),
        ReleaseTemplateSubscription {
            user_id,
            template_id: basket_id(),
            subscription_id,
            now: at("2026-07-01T00:00:00Z"),
        }
        .into(),
    ])
}

/// A partner's life that records every partner event type.
pub fn partner_story() -> Vec<PartnerEvent> {
    run::<PartnerAggregate>([
        RegisterPartner {
            actor: admin(),
            partner_id: zebu(),
            partner_name: PartnerName::parse("Zebu Share and Wealth").unwrap(),
            partner_type: PartnerType::Broker,
            broker_id: BrokerId::parse("ZEBU").unwrap(),
            revenue_share: RevenueShare::from_partner_bps(bps(3000)),
            permissions: default_permissions(),
            rate_limits: RateLimits::default(),
            branding: Branding::default(),
            now: at("2026-01-01T00:00:00Z"),
        }
        .into(),
        IssueApiKey {
            actor: admin(),
            api_key_id: zebu_key(),
            key: key_token(),
            secret_hash: secret_hash("c2FsdDE"),
            now: at("2026-01-01T00:00:00Z"),
        }
        .into(),
        UpdatePartnerConfig {
            actor: admin(),
            partner_name: None,
            revenue_share: Some(RevenueShare::from_partner_bps(bps(2750))),
            permissions: None,
            rate_limits: None,
            branding: None,
            now: at("2026-02-01T00:00:00Z"),
        }
        .into(),
        SetApiKeyStatus {
            actor: admin(),
            api_key_id: zebu_key(),
            status: ApiKeyStatus::Suspended,
            reason: None,
            now: at("2026-02-02T00:00:00Z"),
        }
        .into(),
        RotateApiKey {
            actor: admin(),
            api_key_id: zebu_key(),
            new_secret_hash: secret_hash("c2FsdDI"),
            grace_period: GracePeriodHours::new(48).unwrap(),
            now: at("2026-02-03T00:00:00Z"),
        }
        .into(),
        RevokeApiKey {
            actor: admin(),
            api_key_id: zebu_key(),
            reason: None,
            now: at("2026-03-01T00:00:00Z"),
        }
        .into(),
    ])
}
