//! Hostile input never panics the domain.
//!
//! Arbitrary JSON — schema-shaped objects whose members are sometimes right,
//! sometimes hostile (huge or fractional numbers, `NaN`-like strings, 5 000
//! character strings, control characters, wrong types, unknown members) and
//! sometimes free-form trees — is fed to every `…Input` type the API
//! deserialises, then through its validation and through `decide` of its
//! aggregate, from prior states reached by replaying arbitrary sequences of
//! valid events. Every outcome must be a value or a [`DomainError`] /
//! [`ValidationErrors`]; accepted commands must give events that survive the
//! store's codec. Stored event data itself, decoded through the upcasters,
//! must never panic either, whatever it holds.

mod common;

use basketry_domain::basket::{
    AddStrategy, BasketInput, CreateBasket, DifficultyLevel, MarketplaceConfigInput, Pricing,
    PricingInput, PublishTemplate, RemoveStrategy, ReplaceStrategy, Strategy as TradingStrategy,
    StrategyInput, UnpublishTemplate, UpdateBasket, UpdateBasketInput, UpdateMarketplaceConfig,
    Visibility,
};
use basketry_domain::partner::{
    ApiKeyStatus, ApiKeyToken, Branding, BrandingInput, GracePeriodHours, IssueApiKey, RateLimits,
    RateLimitsInput, RegisterPartner, RegisterPartnerInput, RevokeApiKey, RotateApiKey, SecretHash,
    SetApiKeyStatus, UpdatePartnerConfig, UpdatePartnerConfigInput,
};
use basketry_domain::subscription::{
    AllocationInput, BrokerAllocation, CancelSubscription, ChargeDue, PauseSubscription,
    ResumeSubscription, SetBrokerAllocations, SubscribeToTemplate,
};
use basketry_domain::*;
use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use uuid::Uuid;

/// Cases per property: enough to reach the odd corners, small enough that
/// each property runs in seconds in a debug build.
const CASES: u32 = 8_000;

// ------------------------------------------------------------ hostile JSON

/// Strings that are almost right, exactly right, or nasty.
fn hostile_string() -> BoxedStrategy<String> {
    let samples: Vec<&'static str> = vec![
        "",
        " ",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "1e400",
        "-1e400",
        "1e-400",
        "-0",
        "0",
        "0.00",
        "0.001",
        "1.234",
        "2.5",
        "100",
        "100.00",
        "100.01",
        "-1",
        "1e2",
        "1E+2",
        "0x10",
        "1_000",
        "١٢",
        "ATM",
        "ATM+2",
        "ATM-3",
        "ATM+2147483648",
        "ATM-99999999999999999999",
        "ATM+",
        "ATM+-1",
        "09:20",
        "15:15",
        "24:00",
        "09:60",
        "9:5",
        "23:59",
        "00:00",
        "\u{0}",
        "\u{202e}",
        "\u{feff}INCOME",
        "💥",
        "ＩＮＣＯＭＥ",
        "income",
        "INCOME",
        "HEDGING",
        "NIFTY",
        "BANKNIFTY",
        "MON",
        "FRI",
        "SAT",
        "BUY",
        "SELL",
        "CE",
        "PE",
        "WEEKLY",
        "MONTHLY",
        "MIS",
        "NRML",
        "PUBLIC",
        "PRIVATE",
        "PAID",
        "FREE",
        "INR",
        "USD",
        "inr",
        "BEGINNER",
        "ADVANCED",
        "BROKER",
        "ADVISOR",
        "OTHER",
        "ZEBU",
        "zebu",
        "ACTIVE",
        "SUSPENDED",
        "REVOKED",
        "marketplace:read",
        "marketplace:subscribe",
        "subscriptions:manage",
        "ledger:read",
        "admin:*",
        "https://cdn.example.com/logo.png",
        "javascript:alert(1)",
        "http://insecure.example.com/x.png",
        "https://",
        "a@b.co",
        "Ravi@Example.COM",
        "@",
        "a@",
        "a@@b.c",
        "pk_zebu_live_4fTq9ZkP0aLmN3xYb7Cw2R",
        "'; DROP TABLE events;--",
        "../../etc/passwd",
        "%2e%2e%2f",
        "\\u0000",
        "0190a3b2-7c4e-7d1a-9f00-000000000001",
        "00000000-0000-0000-0000-000000000000",
        "not-a-uuid",
        "2026-01-31T10:00:00Z",
        "9999-12-31T23:59:59Z",
    ];
    prop_oneof![
        6 => prop::sample::select(samples).prop_map(str::to_owned),
        2 => ".{0,40}",
        2 => "[0-9eE.+-]{0,32}",
        1 => (0usize..5_000, any::<char>()).prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
        1 => (0usize..3, "[A-Z:+@._-]{0,4}").prop_map(|(n, s)| s.repeat(n * 2_000 + 1)),
    ]
    .boxed()
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Numbers at every edge: integers of any size, fractions, extremes.
fn hostile_number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0i64, 1, -1, 2, 8, 9, 10, 49, 50, 51, 100, 101, 120, 168, 169, 999, 1_000, 1_001,
            9_999, 10_000, 10_001, 99_900, i64::from(i32::MAX), i64::from(u32::MAX),
            i64::from(u32::MAX) + 1, i64::MAX, i64::MIN,
        ])
        .prop_map(Value::from),
        1 => Just(Value::from(u64::MAX)),
        2 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        2 => prop::sample::select(vec![
            0.1, 0.5, 0.01, 0.001, 0.005, 1.005, 2.01, 2.5, 27.5, 33.333, 70.0, 99.99, 100.0,
            100.001, 100.01, 1e15, 1e16, 1e21, 1e300, f64::MAX, -f64::MAX, f64::MIN_POSITIVE,
            5e-324, -0.0, -0.01, 1.0 / 3.0,
        ])
        .prop_map(float),
        1 => any::<f64>().prop_map(float),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => hostile_number(),
        3 => hostile_string().prop_map(Value::String),
    ]
    .boxed()
}

/// Every member name of every input, so free-form trees hit real fields.
const FIELD_NAMES: &[&str] = &[
    "name",
    "description",
    "category",
    "strategies",
    "underlying",
    "product",
    "entry_time",
    "exit_time",
    "trading_days",
    "stop_loss_pct",
    "target_pct",
    "legs",
    "action",
    "option_type",
    "strike",
    "expiry",
    "lots",
    "visibility",
    "pricing",
    "type",
    "monthly_fee",
    "currency",
    "difficulty_level",
    "tags",
    "partner_id",
    "partner_name",
    "partner_type",
    "broker_id",
    "revenue_share",
    "platform_percentage",
    "partner_percentage",
    "permissions",
    "rate_limits",
    "requests_per_minute",
    "requests_per_day",
    "branding",
    "show_platform_branding",
    "custom_logo_url",
    "allocation_id",
    "client_id",
    "lot_multiplier",
    "priority",
    "max_lots_per_order",
    "surprise",
    "__proto__",
    "",
];

/// A free-form JSON tree of hostile leaves.
fn hostile() -> BoxedStrategy<Value> {
    let key = prop_oneof![
        3 => prop::sample::select(FIELD_NAMES.to_vec()).prop_map(str::to_owned),
        1 => ".{0,12}",
    ];
    leaf()
        .prop_recursive(4, 48, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A member value: usually plausible (`good`), sometimes hostile.
fn member(good: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        2 => Just(None),
        6 => good.prop_map(Some),
        1 => leaf().prop_map(Some),
        1 => hostile().prop_map(Some),
    ]
    .boxed()
}

/// An object with `fields` (each maybe present) and, now and then, an
/// unknown member; now and then something that is not an object at all.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let names: Vec<&'static str> = fields.iter().map(|(n, _)| *n).collect();
    let members: Vec<BoxedStrategy<Option<Value>>> =
        fields.into_iter().map(|(_, s)| member(s)).collect();
    let shaped =
        (members, prop::option::weighted(0.05, leaf())).prop_map(move |(values, extra)| {
            let mut map = Map::new();
            for (name, value) in names.iter().zip(values) {
                if let Some(value) = value {
                    map.insert((*name).to_owned(), value);
                }
            }
            if let Some(extra) = extra {
                map.insert("surprise".into(), extra);
            }
            Value::Object(map)
        });
    prop_oneof![20 => shaped, 1 => hostile()].boxed()
}

fn text(samples: &[&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(samples.to_vec()).prop_map(Value::from),
        1 => hostile_string().prop_map(Value::String),
    ]
    .boxed()
}

fn number(samples: &[i64]) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(samples.to_vec()).prop_map(Value::from),
        1 => hostile_number(),
    ]
    .boxed()
}

fn decimal(samples: &[&'static str]) -> BoxedStrategy<Value> {
    let samples = samples.to_vec();
    prop_oneof![
        2 => prop::sample::select(samples.clone()).prop_map(|s| {
            serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::from(s))
        }),
        2 => prop::sample::select(samples).prop_map(Value::from),
        1 => hostile_number(),
        1 => hostile_string().prop_map(Value::String),
    ]
    .boxed()
}

fn list(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(item, 0..max)
        .prop_map(Value::Array)
        .boxed()
}

fn leg_json() -> BoxedStrategy<Value> {
    object(vec![
        ("action", text(&["BUY", "SELL"])),
        ("option_type", text(&["CE", "PE"])),
        ("strike", text(&["ATM", "ATM+2", "ATM-1"])),
        ("expiry", text(&["WEEKLY", "MONTHLY"])),
        ("lots", number(&[1, 3, 1_000, 1_001, 0, -1])),
    ])
}

fn strategy_json() -> BoxedStrategy<Value> {
    object(vec![
        ("name", text(&["Short straddle", "Iron condor"])),
        ("underlying", text(&["NIFTY", "BANKNIFTY"])),
        ("product", text(&["MIS", "NRML"])),
        ("entry_time", text(&["09:20", "09:30"])),
        ("exit_time", text(&["15:15", "09:20"])),
        (
            "trading_days",
            list(text(&["MON", "TUE", "WED", "THU", "FRI"]), 8),
        ),
        ("stop_loss_pct", decimal(&["25", "150", "0.5", "1000.01"])),
        ("target_pct", decimal(&["50", "0.01", "-3"])),
        ("legs", list(leg_json(), 10)),
    ])
}

fn basket_json() -> BoxedStrategy<Value> {
    object(vec![
        ("name", text(&["Nifty weekly income", "B"])),
        ("description", text(&["Sells weekly straddles", ""])),
        ("category", text(&["INCOME", "HEDGING"])),
        ("strategies", list(strategy_json(), 4)),
    ])
}

fn update_basket_json() -> BoxedStrategy<Value> {
    object(vec![
        ("name", text(&["Renamed"])),
        ("description", text(&["New words"])),
        ("category", text(&["MOMENTUM"])),
    ])
}

fn pricing_json() -> BoxedStrategy<Value> {
    object(vec![
        ("type", text(&["PAID", "FREE"])),
        ("monthly_fee", number(&[99_900, 0, 1, -1])),
        ("currency", text(&["INR", "USD"])),
    ])
}

fn config_json() -> BoxedStrategy<Value> {
    object(vec![
        ("visibility", text(&["PUBLIC", "PRIVATE"])),
        ("pricing", pricing_json()),
        (
            "difficulty_level",
            text(&["BEGINNER", "INTERMEDIATE", "ADVANCED"]),
        ),
        ("tags", list(text(&["NIFTY", "WEEKLY", "HEDGED"]), 12)),
        ("category", text(&["INCOME"])),
    ])
}

fn share_json() -> BoxedStrategy<Value> {
    object(vec![
        ("platform_percentage", decimal(&["70", "72.5", "100", "0"])),
        ("partner_percentage", decimal(&["30", "27.5", "0", "100"])),
    ])
}

fn limits_json() -> BoxedStrategy<Value> {
    object(vec![
        ("requests_per_minute", number(&[100, 1, 0, 500])),
        ("requests_per_day", number(&[10_000, 1, 0])),
    ])
}

fn branding_json() -> BoxedStrategy<Value> {
    object(vec![
        (
            "show_platform_branding",
            any::<bool>().prop_map(Value::Bool).boxed(),
        ),
        (
            "custom_logo_url",
            text(&["https://cdn.example.com/logo.png", "ftp://x"]),
        ),
    ])
}

fn permissions_json() -> BoxedStrategy<Value> {
    list(
        text(&[
            "marketplace:read",
            "marketplace:subscribe",
            "subscriptions:manage",
            "ledger:read",
        ]),
        6,
    )
}

fn register_partner_json() -> BoxedStrategy<Value> {
    object(vec![
        ("partner_id", text(&["ZEBU", "ANGEL"])),
        ("partner_name", text(&["Zebu Share and Wealth"])),
        ("partner_type", text(&["BROKER", "OTHER"])),
        ("broker_id", text(&["zebu"])),
        ("revenue_share", share_json()),
        ("permissions", permissions_json()),
        ("rate_limits", limits_json()),
        ("branding", branding_json()),
    ])
}

fn update_partner_json() -> BoxedStrategy<Value> {
    object(vec![
        ("partner_name", text(&["Zebu"])),
        ("revenue_share", share_json()),
        ("permissions", permissions_json()),
        ("rate_limits", limits_json()),
        ("branding", branding_json()),
    ])
}

fn allocation_json() -> BoxedStrategy<Value> {
    object(vec![
        (
            "allocation_id",
            text(&["0190a3b2-7c4e-7d1a-9f00-000000000001", "x"]),
        ),
        ("broker_id", text(&["zebu", "ANGEL"])),
        ("client_id", text(&["ZB1234", "C2"])),
        (
            "lot_multiplier",
            decimal(&["1", "2.5", "0.01", "100", "0", "-1", "100.01", "1.234"]),
        ),
        ("priority", number(&[1, 2, 0, -1])),
        ("max_lots_per_order", number(&[50, 1, 10_000, 10_001, 0])),
    ])
}

// -------------------------------------------------------------- checking

/// A refusal is a well-formed domain error: a stable snake_case code and,
/// for validation, at least one field error with a message.
fn check_error(error: &DomainError) -> Result<(), TestCaseError> {
    let code = error.code();
    prop_assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "code {code:?}"
    );
    if let DomainError::Validation(errors) = error {
        check_validation(errors)?;
    }
    Ok(())
}

fn check_validation(errors: &ValidationErrors) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "a refusal without a reason");
    for e in errors.errors() {
        prop_assert!(!e.message.is_empty(), "{e:?}");
        prop_assert!(e.field.len() < 200, "field path {:?}", e.field);
    }
    Ok(())
}

/// Decides `command` on `state`; on success the events must apply and come
/// back unchanged through the store's codec.
fn decide_checked<A: Aggregate>(state: &A::State, command: A::Command) -> Result<(), TestCaseError>
where
    A::Event: std::fmt::Debug + PartialEq + Clone,
{
    match A::decide(state, command) {
        Ok(events) => {
            let _ = events.iter().fold(state.clone(), A::evolve);
            for e in &events {
                let back = A::Event::from_stored(e.event_type(), e.schema_version(), e.to_data())
                    .map_err(|err| TestCaseError::fail(format!("{err}: {e:?}")))?;
                prop_assert_eq!(&back, e);
            }
            Ok(())
        }
        Err(error) => check_error(&error),
    }
}

fn input<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    serde_json::from_value(value.clone()).ok()
}

fn new_strategy_ids() -> impl FnMut() -> StrategyId {
    let mut n = 0u128;
    move || {
        n += 1;
        StrategyId::from_uuid(Uuid::from_u128(5_000 + n))
    }
}

// ------------------------------------------------------------ prior states

fn now0() -> DateTime<Utc> {
    at("2026-01-01T00:00:00Z")
}

/// A basket state reached by replaying the events of an arbitrary sequence
/// of commands (the refused ones leave no event).
fn basket_state() -> impl Strategy<Value = BasketState> {
    (
        0u8..3,
        prop::collection::vec((0u8..7, any::<bool>(), 0u8..6), 0..16),
    )
        .prop_map(|(initial, ops)| {
            let mut state = BasketState::default();
            let mut log: Vec<BasketEvent> = Vec::new();
            let mut now = now0();
            let create = CreateBasket {
                actor: admin(),
                basket_id: basket_id(),
                name: BasketName::parse("Start").unwrap(),
                description: Description::default(),
                category: Category::parse("INCOME").unwrap(),
                strategies: (0..initial).map(|n| strategy(u128::from(n), 1)).collect(),
                now,
            };
            let mut commands: Vec<BasketCommand> = vec![create.into()];
            for (op, owner, n) in ops {
                now += TimeDelta::minutes(5);
                let actor = if owner { admin() } else { stranger() };
                let n = u128::from(n);
                commands.push(match op {
                    0 => AddStrategy {
                        actor,
                        strategy: strategy(n, 2),
                        now,
                    }
                    .into(),
                    1 => ReplaceStrategy {
                        actor,
                        strategy: strategy(n, 5),
                        now,
                    }
                    .into(),
                    2 => RemoveStrategy {
                        actor,
                        strategy_id: sid(n),
                        now,
                    }
                    .into(),
                    3 | 4 => PublishTemplate {
                        actor,
                        visibility: Visibility::Public,
                        pricing: paid(99_900),
                        difficulty_level: DifficultyLevel::Beginner,
                        tags: vec![],
                        category: None,
                        now,
                    }
                    .into(),
                    5 => UnpublishTemplate {
                        actor,
                        reason: None,
                        now,
                    }
                    .into(),
                    _ => UpdateBasket {
                        actor,
                        name: Some(BasketName::parse("Renamed").unwrap()),
                        description: None,
                        category: None,
                        now,
                    }
                    .into(),
                });
            }
            for command in commands {
                if let Ok(events) = BasketAggregate::decide(&state, command) {
                    state = events.iter().fold(state, BasketAggregate::evolve);
                    log.extend(events);
                }
            }
            // Prior states are what replay gives, as the command API loads them.
            BasketAggregate::replay(&log)
        })
}

fn partner_state() -> impl Strategy<Value = PartnerState> {
    (
        any::<bool>(),
        prop::collection::vec((0u8..5, 0u8..3, 0i64..=168), 0..16),
    )
        .prop_map(|(registered, ops)| {
            let story = partner_story();
            let mut log: Vec<PartnerEvent> = if registered {
                story[..1].to_vec()
            } else {
                Vec::new()
            };
            let mut state = PartnerAggregate::replay(&log);
            let mut now = now0();
            for (op, k, hours) in ops {
                now += TimeDelta::hours(hours.max(1));
                let api_key_id = ApiKeyId::from_uuid(Uuid::from_u128(600 + u128::from(k)));
                let command: PartnerCommand =
                    match op {
                        0 => IssueApiKey {
                            actor: admin(),
                            api_key_id,
                            key: ApiKeyToken::parse(&format!("pk_zebu_live_{k:0>20}")).unwrap(),
                            secret_hash: secret_hash(&format!("c2FsdA{k}")),
                            now,
                        }
                        .into(),
                        1 => SetApiKeyStatus {
                            actor: admin(),
                            api_key_id,
                            status: ApiKeyStatus::ALL[usize::from(k) % ApiKeyStatus::ALL.len()],
                            reason: None,
                            now,
                        }
                        .into(),
                        2 => RotateApiKey {
                            actor: admin(),
                            api_key_id,
                            new_secret_hash: secret_hash(&format!("cm90{}", now.timestamp())),
                            grace_period: GracePeriodHours::new(hours).unwrap(),
                            now,
                        }
                        .into(),
                        3 => RevokeApiKey {
                            actor: admin(),
                            api_key_id,
                            reason: None,
                            now,
                        }
                        .into(),
                        _ => UpdatePartnerConfig {
                            actor: admin(),
                            partner_name: None,
                            revenue_share: Some(RevenueShare::from_partner_bps(bps(
                                u32::try_from(hours).unwrap() * 50,
                            ))),
                            permissions: None,
                            rate_limits: None,
                            branding: None,
                            now,
                        }
                        .into(),
                    };
                if let Ok(events) = PartnerAggregate::decide(&state, command) {
                    state = events.iter().fold(state, PartnerAggregate::evolve);
                    log.extend(events);
                }
            }
            PartnerAggregate::replay(&log)
        })
}

fn subscription_state() -> impl Strategy<Value = SubscriptionState> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec((0u8..5, 0i64..=1_500), 0..12),
    )
        .prop_map(|(exists, through_partner, ops)| {
            let mut log: Vec<SubscriptionEvent> = Vec::new();
            let mut state = SubscriptionState::default();
            let mut now = at("2026-01-31T10:00:00Z");
            if !exists {
                return state;
            }
            let subscribe = SubscribeToTemplate {
                actor: if through_partner {
                    zebu_actor()
                } else {
                    user()
                },
                subscription_id: SubscriptionId::from_uuid(Uuid::from_u128(200)),
                user_id: UserId::from_email(&email()),
                user_email: email(),
                template: template_terms(paid(99_900)),
                partner: through_partner.then(attribution),
                allocations: vec![allocation(1, 1, "2")],
                now,
            };
            let mut commands: Vec<(SubscriptionCommand, i64)> = vec![(subscribe.into(), 0)];
            for (op, hours) in ops {
                let command: SubscriptionCommand = match op {
                    0 => PauseSubscription {
                        actor: user(),
                        reason: None,
                        now,
                    }
                    .into(),
                    1 => ResumeSubscription {
                        actor: user(),
                        reason: None,
                        partner_bps_now: None,
                        now,
                    }
                    .into(),
                    2 => CancelSubscription {
                        actor: user(),
                        reason: None,
                        now,
                    }
                    .into(),
                    3 => SetBrokerAllocations {
                        actor: user(),
                        allocations: vec![allocation(2, 1, "0.5")],
                        now,
                    }
                    .into(),
                    _ => ChargeDue {
                        as_of: now,
                        partner_bps_now: Some(bps(2_500)),
                    }
                    .into(),
                };
                commands.push((command, hours));
            }
            for (command, hours) in commands {
                now += TimeDelta::hours(hours);
                let command = match command {
                    SubscriptionCommand::ChargeDue(c) => ChargeDue { as_of: now, ..c }.into(),
                    other => other,
                };
                if let Ok(events) = SubscriptionAggregate::decide(&state, command) {
                    state = events.iter().fold(state, SubscriptionAggregate::evolve);
                    log.extend(events);
                }
            }
            SubscriptionAggregate::replay(&log)
        })
}

fn any_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        Just(admin()),
        Just(user()),
        Just(stranger()),
        Just(zebu_actor()),
        Just(Actor::System),
    ]
}

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        4 => (1_767_225_600i64..1_830_297_600).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        1 => Just(DateTime::<Utc>::MIN_UTC),
        1 => Just(DateTime::<Utc>::MAX_UTC),
        1 => Just(DateTime::<Utc>::UNIX_EPOCH),
        1 => (-8_000_000_000_000i64..8_000_000_000_000)
            .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
    ]
}

// ------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// `POST /baskets`, `PUT /baskets/{id}`, strategies and template
    /// configuration: any body, any prior basket.
    #[test]
    fn hostile_basket_bodies_never_panic(
        state in basket_state(),
        actor in any_actor(),
        now in any_time(),
        create in basket_json(),
        update in update_basket_json(),
        one_strategy in strategy_json(),
        config in config_json(),
        target in 0u8..8,
    ) {
        if let Some(body) = input::<BasketInput>(&create) {
            match CreateBasket::from_input(actor.clone(), basket_id(), &body, new_strategy_ids(), now) {
                Ok(command) => decide_checked::<BasketAggregate>(&state, command.into())?,
                Err(errors) => check_validation(&errors)?,
            }
        }
        if let Some(body) = input::<UpdateBasketInput>(&update) {
            match UpdateBasket::from_input(actor.clone(), &body, now) {
                Ok(command) => decide_checked::<BasketAggregate>(&state, command.into())?,
                Err(errors) => check_validation(&errors)?,
            }
        }
        if let Some(body) = input::<StrategyInput>(&one_strategy) {
            // A new id (add) or one the basket may hold (replace).
            match TradingStrategy::parse(sid(u128::from(target)), &body) {
                Ok(parsed) => {
                    decide_checked::<BasketAggregate>(&state, AddStrategy { actor: actor.clone(), strategy: parsed.clone(), now }.into())?;
                    decide_checked::<BasketAggregate>(&state, ReplaceStrategy { actor: actor.clone(), strategy: parsed, now }.into())?;
                }
                Err(errors) => check_validation(&errors)?,
            }
        }
        if let Some(body) = input::<MarketplaceConfigInput>(&config) {
            match PublishTemplate::from_input(actor.clone(), &body, now) {
                Ok(command) => decide_checked::<BasketAggregate>(&state, command.into())?,
                Err(errors) => check_validation(&errors)?,
            }
            match UpdateMarketplaceConfig::from_input(actor.clone(), &body, now) {
                Ok(command) => decide_checked::<BasketAggregate>(&state, command.into())?,
                Err(errors) => check_validation(&errors)?,
            }
            if let Some(pricing) = input::<PricingInput>(&config["pricing"]) {
                if let Err(errors) = Pricing::parse(&pricing, "pricing") {
                    check_validation(&errors)?;
                }
            }
        }
        decide_checked::<BasketAggregate>(&state, RemoveStrategy { actor: actor.clone(), strategy_id: sid(u128::from(target)), now }.into())?;
        decide_checked::<BasketAggregate>(&state, UnpublishTemplate { actor, reason: None, now }.into())?;
    }

    /// `POST /admin/partner-api-keys`, `PUT /admin/partner-api-keys/{id}`,
    /// rotation and status changes: any body, any prior partner.
    #[test]
    fn hostile_partner_bodies_never_panic(
        state in partner_state(),
        actor in any_actor(),
        now in any_time(),
        register in register_partner_json(),
        update in update_partner_json(),
        grace in hostile_number(),
        status in hostile_string(),
        token in hostile_string(),
        hash in hostile_string(),
        key in 0u8..4,
    ) {
        if let Some(body) = input::<RegisterPartnerInput>(&register) {
            match RegisterPartner::from_input(actor.clone(), &body, now) {
                Ok(command) => decide_checked::<PartnerAggregate>(&state, command.into())?,
                Err(errors) => check_validation(&errors)?,
            }
            if let Some(limits) = input::<RateLimitsInput>(&register["rate_limits"]) {
                if let Err(errors) = RateLimits::parse(&limits, "rate_limits") {
                    check_validation(&errors)?;
                }
            }
            if let Some(branding) = input::<BrandingInput>(&register["branding"]) {
                if let Err(errors) = Branding::parse(&branding, "branding") {
                    check_validation(&errors)?;
                }
            }
        }
        if let Some(body) = input::<UpdatePartnerConfigInput>(&update) {
            match UpdatePartnerConfig::from_input(actor.clone(), &body, now) {
                Ok(command) => decide_checked::<PartnerAggregate>(&state, command.into())?,
                Err(errors) => check_validation(&errors)?,
            }
        }
        let api_key_id = ApiKeyId::from_uuid(Uuid::from_u128(600 + u128::from(key)));
        if let (Some(hours), Ok(new_secret_hash)) = (grace.as_i64(), SecretHash::parse(&hash)) {
            if let Ok(grace_period) = GracePeriodHours::new(hours) {
                decide_checked::<PartnerAggregate>(&state, RotateApiKey { actor: actor.clone(), api_key_id, new_secret_hash, grace_period, now }.into())?;
            }
        }
        if let Ok(status) = ApiKeyStatus::parse(&status) {
            decide_checked::<PartnerAggregate>(&state, SetApiKeyStatus { actor: actor.clone(), api_key_id, status, reason: None, now }.into())?;
        }
        if let (Ok(key), Ok(secret_hash)) = (ApiKeyToken::parse(&token), SecretHash::parse(&hash)) {
            decide_checked::<PartnerAggregate>(&state, IssueApiKey { actor: actor.clone(), api_key_id, key, secret_hash, now }.into())?;
        }
        // What authentication asks of any state, for any token and time.
        let _ = state.key_by_token(&token);
        let _ = state.verify_candidates(&api_key_id, now);
        decide_checked::<PartnerAggregate>(&state, RevokeApiKey { actor, api_key_id, reason: None, now }.into())?;
    }

    /// `POST /marketplace/subscribe/{id}`, `PUT …/allocations`, status
    /// changes with reasons and billing runs: any body, any prior
    /// subscription, any time.
    #[test]
    fn hostile_subscription_bodies_never_panic(
        state in subscription_state(),
        actor in any_actor(),
        now in any_time(),
        allocations in list(allocation_json(), 12),
        reason in hostile_string(),
        email_text in hostile_string(),
        fee in hostile_number(),
        share in prop::option::of(0u32..=10_000),
        change in 0u8..4,
    ) {
        let inputs: Option<Vec<AllocationInput>> = input(&allocations);
        let mut n = 0u128;
        let parsed = inputs.map(|list| BrokerAllocation::parse_list(&list, || {
            n += 1;
            AllocationId::from_uuid(Uuid::from_u128(9_000 + n))
        }));
        let reason = Reason::parse(&reason).ok();
        if let Some(result) = parsed {
            match result {
                Ok(list) => {
                    decide_checked::<SubscriptionAggregate>(&state, SetBrokerAllocations { actor: actor.clone(), allocations: list.clone(), now }.into())?;
                    let pricing = fee
                        .as_i64()
                        .and_then(|f| Money::new(f, Currency::INR).ok())
                        .and_then(|m| basket::Pricing::paid(m).ok())
                        .unwrap_or_else(|| basket::Pricing::free(Currency::INR));
                    if let Ok(user_email) = Email::parse(&email_text) {
                        let subscribe = SubscribeToTemplate {
                            actor: actor.clone(),
                            subscription_id: SubscriptionId::from_uuid(Uuid::from_u128(201)),
                            user_id: UserId::from_email(&user_email),
                            user_email,
                            template: template_terms(pricing),
                            partner: share.map(|s| subscription::PartnerAttribution { partner_bps: bps(s), ..attribution() }),
                            allocations: list,
                            now,
                        };
                        decide_checked::<SubscriptionAggregate>(&state, subscribe.clone().into())?;
                        // Charging what was just subscribed, at any later time.
                        if let Ok(events) = SubscriptionAggregate::decide(&SubscriptionState::default(), subscribe.into()) {
                            let fresh = SubscriptionAggregate::replay(&events);
                            decide_checked::<SubscriptionAggregate>(&fresh, ChargeDue { as_of: now.checked_add_signed(TimeDelta::days(400)).unwrap_or(DateTime::<Utc>::MAX_UTC), partner_bps_now: share.map(bps) }.into())?;
                        }
                    }
                }
                Err(errors) => check_validation(&errors)?,
            }
        }
        let command: SubscriptionCommand = match change {
            0 => PauseSubscription { actor, reason, now }.into(),
            1 => ResumeSubscription { actor, reason, partner_bps_now: share.map(bps), now }.into(),
            2 => CancelSubscription { actor, reason, now }.into(),
            _ => ChargeDue { as_of: now, partner_bps_now: share.map(bps) }.into(),
        };
        decide_checked::<SubscriptionAggregate>(&state, command)?;
    }

    /// Scalars the API reads one by one: lot multipliers, ids, names.
    #[test]
    fn hostile_scalars_never_panic(value in hostile(), text_value in hostile_string()) {
        if let Some(decimal) = input::<DecimalInput>(&value) {
            if let Ok(m) = LotMultiplier::parse(&decimal) {
                // An accepted multiplier is within (0, 100] with two decimals.
                let text = m.to_string();
                let back = LotMultiplier::parse_str(&text);
                prop_assert_eq!(back.ok(), Some(m));
            }
        }
        let _ = LotMultiplier::parse_str(&text_value);
        let _ = Email::parse(&text_value);
        let _ = PartnerId::parse(&text_value);
        let _ = ApiKeyToken::parse(&text_value);
        let _ = SecretHash::parse(&text_value);
        let _ = Reason::parse(&text_value);
        let _ = BasketName::parse(&text_value);
        let _ = Description::parse(&text_value);
        let _ = Category::parse(&text_value);
        let _ = Tag::parse(&text_value);
        let _ = ClientId::parse(&text_value);
        let _ = BrokerId::parse(&text_value);
        let _ = Currency::parse(&text_value);
        let _ = AllocationId::parse(&text_value);
        let _ = BasisPoints::from_percentage_str(&text_value);
        let _ = ApiKeyStatus::parse(&text_value);
        if let Some(n) = value.as_i64() {
            let _ = GracePeriodHours::new(n);
            let _ = subscription::Priority::new(n);
            let _ = subscription::MaxLotsPerOrder::new(n);
            let _ = Money::new(n, Currency::INR);
        }
    }

    /// Stored event data, whatever it holds (a corrupted or hand-written
    /// row), decodes to an event or a `DecodeError`, never a panic.
    #[test]
    fn hostile_stored_events_never_panic(
        data in hostile(),
        version in prop_oneof![Just(0u32), Just(1u32), Just(2u32), any::<u32>()],
        pick in any::<prop::sample::Index>(),
    ) {
        let types: Vec<&str> = BasketEvent::EVENT_TYPES
            .iter()
            .chain(SubscriptionEvent::EVENT_TYPES)
            .chain(PartnerEvent::EVENT_TYPES)
            .chain(UserLinkEvent::EVENT_TYPES)
            .chain(api_key_index::ApiKeyIndexEvent::EVENT_TYPES)
            .copied()
            .chain(["", "Nope"])
            .collect();
        let event_type = types[pick.index(types.len())];
        let _ = BasketEvent::from_stored(event_type, version, data.clone());
        let _ = SubscriptionEvent::from_stored(event_type, version, data.clone());
        let _ = PartnerEvent::from_stored(event_type, version, data.clone());
        let _ = UserLinkEvent::from_stored(event_type, version, data.clone());
        let _ = api_key_index::ApiKeyIndexEvent::from_stored(event_type, version, data);
    }
}
