use chrono::TimeDelta;
use uuid::Uuid;

use super::*;
use crate::money::{Currency, Money};
use crate::testing::{at, given_events, Given};

fn given(events: impl IntoIterator<Item = BasketEvent>) -> Given<BasketAggregate> {
    given_events(events)
}

fn admin_id() -> UserId {
    UserId::from_uuid(Uuid::from_u128(1))
}

fn user_id() -> UserId {
    UserId::from_uuid(Uuid::from_u128(2))
}

fn admin() -> Actor {
    Actor::Admin {
        user_id: admin_id(),
    }
}

fn other_admin() -> Actor {
    Actor::Admin {
        user_id: UserId::from_uuid(Uuid::from_u128(4)),
    }
}

fn user() -> Actor {
    Actor::User { user_id: user_id() }
}

fn stranger() -> Actor {
    Actor::User {
        user_id: UserId::from_uuid(Uuid::from_u128(3)),
    }
}

fn partner() -> Actor {
    Actor::Partner {
        partner_id: crate::PartnerId::parse("ZEBU").unwrap(),
        api_key_id: crate::ApiKeyId::from_uuid(Uuid::from_u128(5)),
    }
}

fn basket_id() -> BasketId {
    BasketId::from_uuid(Uuid::from_u128(100))
}

fn sid(n: u128) -> StrategyId {
    StrategyId::from_uuid(Uuid::from_u128(1000 + n))
}

fn t(hours: i64) -> DateTime<Utc> {
    at("2026-01-05T09:00:00Z") + TimeDelta::hours(hours)
}

fn leg_input() -> LegInput {
    LegInput {
        action: Some("SELL".into()),
        option_type: Some("PE".into()),
        strike: Some("ATM-2".into()),
        expiry: Some("WEEKLY".into()),
        lots: Some(1),
    }
}

fn strategy_input() -> StrategyInput {
    StrategyInput {
        name: Some("Nifty short put".into()),
        underlying: Some("NIFTY".into()),
        product: Some("MIS".into()),
        entry_time: Some("09:20".into()),
        exit_time: Some("15:10".into()),
        trading_days: Some(vec!["MON".into(), "WED".into(), "FRI".into()]),
        stop_loss_pct: Some("30".into()),
        target_pct: Some("50".into()),
        legs: Some(vec![leg_input()]),
    }
}

fn strategy(n: u128) -> Strategy {
    Strategy::parse(sid(n), &strategy_input()).unwrap()
}

fn name(text: &str) -> BasketName {
    BasketName::parse(text).unwrap()
}

fn category(text: &str) -> Category {
    Category::parse(text).unwrap()
}

fn created_by(owner: UserId, owner_is_admin: bool, strategies: Vec<Strategy>) -> BasketEvent {
    BasketCreated {
        basket_id: basket_id(),
        owner_id: owner,
        owner_is_admin,
        name: name("Weekly income"),
        description: Description::parse("Sells weekly puts").unwrap(),
        category: category("INCOME"),
        strategies,
        revision: 1,
        at: t(0),
    }
    .into()
}

/// An admin's basket with one strategy (revision 1).
fn admin_basket() -> BasketEvent {
    created_by(admin_id(), true, vec![strategy(1)])
}

/// A user's basket with one strategy (revision 1).
fn user_basket() -> BasketEvent {
    created_by(user_id(), false, vec![strategy(1)])
}

fn paid() -> Pricing {
    Pricing::paid(Money::new(99_900, Currency::INR).unwrap()).unwrap()
}

fn config() -> MarketplaceConfig {
    MarketplaceConfig {
        visibility: Visibility::Public,
        pricing: paid(),
        difficulty_level: DifficultyLevel::Intermediate,
        tags: vec![Tag::parse("WEEKLY").unwrap()],
        category: category("INCOME"),
    }
}

fn publish_cmd(actor: Actor) -> BasketCommand {
    PublishTemplate {
        actor,
        visibility: Visibility::Public,
        pricing: paid(),
        difficulty_level: DifficultyLevel::Intermediate,
        tags: vec![Tag::parse("WEEKLY").unwrap()],
        category: None,
        now: t(5),
    }
    .into()
}

fn published(revision: u64) -> BasketEvent {
    TemplatePublished {
        template_id: basket_id(),
        config: config(),
        revision,
        at: t(5),
    }
    .into()
}

fn unpublished(revision: u64) -> BasketEvent {
    TemplateUnpublished {
        template_id: basket_id(),
        reason: None,
        revision,
        at: t(6),
    }
    .into()
}

fn create_cmd(actor: Actor, strategies: Vec<Strategy>) -> BasketCommand {
    CreateBasket {
        actor,
        basket_id: basket_id(),
        name: name("Weekly income"),
        description: Description::parse("Sells weekly puts").unwrap(),
        category: category("INCOME"),
        strategies,
        now: t(0),
    }
    .into()
}

fn not_found(what: &'static str) -> DomainError {
    DomainError::NotFound { what }
}

// ------------------------------------------------------------ CreateBasket

#[test]
fn creating_a_basket_records_it_at_revision_one_owned_by_the_user() {
    given([])
        .when(create_cmd(user(), vec![strategy(1)]))
        .then([user_basket()]);
}

#[test]
fn a_basket_created_by_an_admin_is_marked_as_publishable() {
    given([])
        .when(create_cmd(admin(), vec![strategy(1)]))
        .then([admin_basket()]);
}

#[test]
fn creating_a_basket_that_already_exists_is_refused() {
    given([user_basket()])
        .when(create_cmd(user(), vec![]))
        .then_err(DomainError::AlreadyExists { what: "basket" });
}

#[test]
fn a_partner_cannot_create_a_basket() {
    given([])
        .when(create_cmd(partner(), vec![]))
        .then_err(DomainError::Forbidden);
}

#[test]
fn creating_a_basket_with_more_than_fifty_strategies_is_refused() {
    let many: Vec<Strategy> = (0..51).map(strategy).collect();
    given([])
        .when(create_cmd(user(), many))
        .then_err(DomainError::invalid(
            "strategies",
            "must have at most 50 strategies",
        ));
}

#[test]
fn creating_a_basket_with_duplicate_strategy_ids_is_refused() {
    given([])
        .when(create_cmd(user(), vec![strategy(1), strategy(1)]))
        .then_err(DomainError::invalid(
            "strategies[1].strategy_id",
            "duplicate strategy id",
        ));
}

#[test]
fn creating_a_basket_with_a_strategy_without_legs_is_refused() {
    let mut legless = strategy(1);
    legless.legs.clear();
    given([])
        .when(create_cmd(user(), vec![legless]))
        .then_err(DomainError::invalid(
            "strategies[0].legs",
            "must have 1 to 8 legs",
        ));
}

#[test]
fn a_basket_body_reports_every_broken_rule_with_its_path() {
    let mut bad_strategy = strategy_input();
    bad_strategy.legs = Some(vec![
        leg_input(),
        leg_input(),
        LegInput {
            lots: Some(0),
            ..leg_input()
        },
    ]);
    let body = BasketInput {
        name: Some("  ".into()),
        description: None,
        category: Some("income".into()),
        strategies: Some(vec![strategy_input(), bad_strategy]),
    };
    let mut n = 0;
    let err = CreateBasket::from_input(
        user(),
        basket_id(),
        &body,
        || {
            n += 1;
            sid(n)
        },
        t(0),
    )
    .unwrap_err();
    let fields: Vec<&str> = err.errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["name", "category", "strategies[1].legs[2].lots"]);
}

#[test]
fn a_valid_basket_body_becomes_a_command_with_fresh_strategy_ids() {
    let body: BasketInput = serde_json::from_value(serde_json::json!({
        "name": "Weekly income",
        "category": "INCOME",
        "strategies": [{
            "name": "Nifty short put", "underlying": "NIFTY", "product": "MIS",
            "entry_time": "09:20", "exit_time": "15:10", "trading_days": ["MON"],
            "legs": [{"action": "SELL", "option_type": "PE", "strike": "ATM", "expiry": "WEEKLY", "lots": 1}]
        }]
    }))
    .unwrap();
    let command = CreateBasket::from_input(user(), basket_id(), &body, || sid(7), t(0)).unwrap();
    assert_eq!(command.strategies[0].strategy_id, sid(7));
    assert_eq!(command.description, Description::default());
}

#[test]
fn a_basket_body_with_more_than_fifty_strategies_is_refused() {
    let body = BasketInput {
        name: Some("x".into()),
        description: None,
        category: Some("INCOME".into()),
        strategies: Some(vec![strategy_input(); 51]),
    };
    let err = CreateBasket::from_input(user(), basket_id(), &body, || sid(1), t(0)).unwrap_err();
    assert!(err.has_field("strategies"));
}

#[test]
fn unknown_members_of_a_basket_body_are_refused_by_serde() {
    let body = serde_json::from_value::<BasketInput>(serde_json::json!({"name": "x", "nmae": "y"}));
    assert!(body.is_err());
}

// ------------------------------------------------------------ UpdateBasket

fn update_cmd(actor: Actor) -> BasketCommand {
    UpdateBasket {
        actor,
        name: Some(name("Weekly income v2")),
        description: None,
        category: Some(category("HEDGING")),
        now: t(1),
    }
    .into()
}

#[test]
fn the_owner_renames_a_basket_and_its_revision_is_bumped() {
    let state = given([user_basket()])
        .when(update_cmd(user()))
        .then([BasketUpdated {
            basket_id: basket_id(),
            name: name("Weekly income v2"),
            description: Description::parse("Sells weekly puts").unwrap(),
            category: category("HEDGING"),
            revision: 2,
            at: t(1),
        }
        .into()]);
    let basket = state.basket.unwrap();
    assert_eq!((basket.revision, basket.updated_at), (2, t(1)));
}

#[test]
fn updating_someone_elses_basket_is_refused_as_not_found() {
    given([user_basket()])
        .when(update_cmd(stranger()))
        .then_err(not_found("basket"));
}

#[test]
fn an_admin_updating_a_users_basket_is_refused_as_not_found() {
    given([user_basket()])
        .when(update_cmd(admin()))
        .then_err(not_found("basket"));
}

#[test]
fn updating_a_basket_that_does_not_exist_is_refused_as_not_found() {
    given([])
        .when(update_cmd(user()))
        .then_err(not_found("basket"));
}

#[test]
fn an_update_that_changes_nothing_is_refused() {
    let empty = UpdateBasket {
        actor: user(),
        name: None,
        description: None,
        category: None,
        now: t(1),
    };
    given([user_basket()])
        .when(empty.into())
        .then_err(DomainError::invalid(
            "",
            "at least one of name, description, category must be given",
        ));
    let err = UpdateBasket::from_input(user(), &UpdateBasketInput::default(), t(1)).unwrap_err();
    assert!(err.has_field(""));
}

// ------------------------------------------------------------ strategies

fn add_cmd(actor: Actor, strategy: Strategy) -> BasketCommand {
    AddStrategy {
        actor,
        strategy,
        now: t(2),
    }
    .into()
}

#[test]
fn the_owner_adds_a_strategy() {
    let state = given([user_basket()])
        .when(add_cmd(user(), strategy(2)))
        .then([StrategyAdded {
            basket_id: basket_id(),
            strategy: strategy(2),
            revision: 2,
            at: t(2),
        }
        .into()]);
    assert_eq!(state.basket.unwrap().strategies.len(), 2);
}

#[test]
fn adding_a_strategy_whose_id_is_taken_is_refused() {
    given([user_basket()])
        .when(add_cmd(user(), strategy(1)))
        .then_err(DomainError::AlreadyExists { what: "strategy" });
}

#[test]
fn adding_a_fifty_first_strategy_is_refused() {
    let full = created_by(user_id(), false, (0..50).map(strategy).collect());
    given([full])
        .when(add_cmd(user(), strategy(50)))
        .then_err(DomainError::invalid(
            "strategies",
            "must have at most 50 strategies",
        ));
}

#[test]
fn adding_a_strategy_whose_exit_is_not_after_its_entry_is_refused() {
    let mut bad = strategy(2);
    bad.exit_time = bad.entry_time;
    given([user_basket()])
        .when(add_cmd(user(), bad))
        .then_err(DomainError::invalid(
            "exit_time",
            "must be after entry_time",
        ));
}

#[test]
fn a_stranger_cannot_add_a_strategy() {
    given([user_basket()])
        .when(add_cmd(stranger(), strategy(2)))
        .then_err(not_found("basket"));
}

#[test]
fn the_owner_replaces_a_strategy() {
    let mut v2 = strategy(1);
    v2.legs.push(v2.legs[0].clone());
    let state = given([user_basket()])
        .when(
            ReplaceStrategy {
                actor: user(),
                strategy: v2.clone(),
                now: t(3),
            }
            .into(),
        )
        .then([StrategyReplaced {
            basket_id: basket_id(),
            strategy: v2.clone(),
            revision: 2,
            at: t(3),
        }
        .into()]);
    assert_eq!(state.basket.unwrap().strategies, vec![v2]);
}

#[test]
fn replacing_an_unknown_strategy_is_refused_as_not_found() {
    given([user_basket()])
        .when(
            ReplaceStrategy {
                actor: user(),
                strategy: strategy(9),
                now: t(3),
            }
            .into(),
        )
        .then_err(not_found("strategy"));
}

#[test]
fn a_stranger_cannot_replace_a_strategy() {
    given([user_basket()])
        .when(
            ReplaceStrategy {
                actor: stranger(),
                strategy: strategy(1),
                now: t(3),
            }
            .into(),
        )
        .then_err(not_found("basket"));
}

#[test]
fn replacing_a_strategy_with_too_many_legs_is_refused() {
    let mut bad = strategy(1);
    bad.legs = vec![bad.legs[0].clone(); 9];
    given([user_basket()])
        .when(
            ReplaceStrategy {
                actor: user(),
                strategy: bad,
                now: t(3),
            }
            .into(),
        )
        .then_err(DomainError::invalid("legs", "must have 1 to 8 legs"));
}

fn remove_cmd(actor: Actor, n: u128) -> BasketCommand {
    RemoveStrategy {
        actor,
        strategy_id: sid(n),
        now: t(4),
    }
    .into()
}

#[test]
fn the_owner_removes_a_strategy() {
    let state = given([user_basket()])
        .when(remove_cmd(user(), 1))
        .then([StrategyRemoved {
            basket_id: basket_id(),
            strategy_id: sid(1),
            revision: 2,
            at: t(4),
        }
        .into()]);
    assert!(state.basket.unwrap().strategies.is_empty());
}

#[test]
fn removing_an_unknown_strategy_is_refused_as_not_found() {
    given([user_basket()])
        .when(remove_cmd(user(), 9))
        .then_err(not_found("strategy"));
}

#[test]
fn a_stranger_cannot_remove_a_strategy() {
    given([user_basket()])
        .when(remove_cmd(stranger(), 1))
        .then_err(not_found("basket"));
}

#[test]
fn removing_the_last_strategy_of_a_published_template_is_refused() {
    given([admin_basket(), published(2)])
        .when(remove_cmd(admin(), 1))
        .then_err(DomainError::TemplateNeedsStrategy);
}

#[test]
fn removing_one_of_several_strategies_of_a_published_template_is_allowed() {
    let two = created_by(admin_id(), true, vec![strategy(1), strategy(2)]);
    given([two, published(2)])
        .when(remove_cmd(admin(), 1))
        .then([StrategyRemoved {
            basket_id: basket_id(),
            strategy_id: sid(1),
            revision: 3,
            at: t(4),
        }
        .into()]);
}

#[test]
fn removing_the_last_strategy_of_an_unpublished_template_is_allowed() {
    given([admin_basket(), published(2), unpublished(3)])
        .when(remove_cmd(admin(), 1))
        .then([StrategyRemoved {
            basket_id: basket_id(),
            strategy_id: sid(1),
            revision: 4,
            at: t(4),
        }
        .into()]);
}

// ------------------------------------------------------------ PublishTemplate

#[test]
fn an_admin_publishes_their_basket_with_the_baskets_category() {
    let state = given([admin_basket()])
        .when(publish_cmd(admin()))
        .then([published(2)]);
    assert!(state.is_published());
    assert_eq!(state.revision(), 2);
}

#[test]
fn another_admin_may_publish_an_admins_basket_under_its_own_category() {
    let command = PublishTemplate {
        actor: other_admin(),
        visibility: Visibility::Private,
        pricing: Pricing::free(Currency::INR),
        difficulty_level: DifficultyLevel::Beginner,
        tags: vec![],
        category: Some(category("HEDGING")),
        now: t(5),
    };
    given([admin_basket()])
        .when(command.into())
        .then([TemplatePublished {
            template_id: basket_id(),
            config: MarketplaceConfig {
                visibility: Visibility::Private,
                pricing: Pricing::free(Currency::INR),
                difficulty_level: DifficultyLevel::Beginner,
                tags: vec![],
                category: category("HEDGING"),
            },
            revision: 2,
            at: t(5),
        }
        .into()]);
}

#[test]
fn a_user_cannot_publish_a_template() {
    given([user_basket()])
        .when(publish_cmd(user()))
        .then_err(DomainError::Forbidden);
}

#[test]
fn an_admin_cannot_publish_a_basket_a_user_created() {
    given([user_basket()])
        .when(publish_cmd(admin()))
        .then_err(DomainError::Forbidden);
}

#[test]
fn publishing_a_basket_that_does_not_exist_is_refused_as_not_found() {
    given([])
        .when(publish_cmd(admin()))
        .then_err(not_found("basket"));
}

#[test]
fn publishing_a_basket_without_strategies_is_refused() {
    given([created_by(admin_id(), true, vec![])])
        .when(publish_cmd(admin()))
        .then_err(DomainError::TemplateNeedsStrategy);
}

#[test]
fn publishing_a_published_template_again_is_refused() {
    given([admin_basket(), published(2)])
        .when(publish_cmd(admin()))
        .then_err(DomainError::TemplateAlreadyPublished);
}

#[test]
fn an_unpublished_template_can_be_published_again() {
    let state = given([admin_basket(), published(2), unpublished(3)])
        .when(publish_cmd(admin()))
        .then([published(4)]);
    assert!(state.template_terms().unwrap().enabled);
}

#[test]
fn publishing_with_duplicate_tags_built_in_code_is_refused() {
    let tag = Tag::parse("WEEKLY").unwrap();
    let command = PublishTemplate {
        actor: admin(),
        visibility: Visibility::Public,
        pricing: paid(),
        difficulty_level: DifficultyLevel::Beginner,
        tags: vec![tag.clone(), tag],
        category: None,
        now: t(5),
    };
    given([admin_basket()])
        .when(command.into())
        .then_err(DomainError::invalid("tags[1]", "duplicate tag"));
}

#[test]
fn a_publish_body_needs_a_price_and_defaults_the_rest() {
    let body: MarketplaceConfigInput = serde_json::from_value(serde_json::json!({
        "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"}
    }))
    .unwrap();
    let command = PublishTemplate::from_input(admin(), &body, t(5)).unwrap();
    assert_eq!(command.visibility, Visibility::Public);
    assert_eq!(command.difficulty_level, DifficultyLevel::Beginner);
    assert_eq!(command.pricing, paid());
    assert_eq!(command.category, None);

    let err =
        PublishTemplate::from_input(admin(), &MarketplaceConfigInput::default(), t(5)).unwrap_err();
    assert!(err.has_field("pricing"));
}

#[test]
fn a_publish_body_reports_every_broken_rule() {
    let body: MarketplaceConfigInput = serde_json::from_value(serde_json::json!({
        "visibility": "HIDDEN",
        "pricing": {"type": "PAID", "monthly_fee": 0},
        "difficulty_level": "EASY",
        "tags": ["OK", "bad tag"],
        "category": "x"
    }))
    .unwrap();
    let err = PublishTemplate::from_input(admin(), &body, t(5)).unwrap_err();
    let fields: Vec<&str> = err.errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "visibility",
            "pricing.monthly_fee",
            "difficulty_level",
            "tags[1]",
            "category"
        ]
    );
}

// ------------------------------------------------------------ UpdateMarketplaceConfig

fn reprice_cmd(actor: Actor) -> BasketCommand {
    UpdateMarketplaceConfig {
        actor,
        visibility: None,
        pricing: Some(Pricing::paid(Money::new(149_900, Currency::INR).unwrap()).unwrap()),
        difficulty_level: None,
        tags: None,
        category: None,
        now: t(7),
    }
    .into()
}

#[test]
fn an_admin_changes_a_templates_price_and_the_full_config_is_recorded() {
    let mut expected = config();
    expected.pricing = Pricing::paid(Money::new(149_900, Currency::INR).unwrap()).unwrap();
    let state = given([admin_basket(), published(2)])
        .when(reprice_cmd(admin()))
        .then([MarketplaceConfigUpdated {
            template_id: basket_id(),
            config: expected,
            revision: 3,
            at: t(7),
        }
        .into()]);
    assert_eq!(
        state
            .template_terms()
            .unwrap()
            .pricing
            .monthly_fee()
            .amount_minor(),
        149_900
    );
}

#[test]
fn a_user_cannot_update_a_templates_config() {
    given([admin_basket(), published(2)])
        .when(reprice_cmd(user()))
        .then_err(DomainError::Forbidden);
}

#[test]
fn updating_the_config_of_a_basket_never_published_is_refused() {
    given([admin_basket()])
        .when(reprice_cmd(admin()))
        .then_err(DomainError::TemplateNotPublished);
}

#[test]
fn updating_the_config_of_an_unpublished_template_is_refused() {
    given([admin_basket(), published(2), unpublished(3)])
        .when(reprice_cmd(admin()))
        .then_err(DomainError::TemplateNotPublished);
}

#[test]
fn updating_the_config_of_a_missing_basket_is_refused_as_not_found() {
    given([])
        .when(reprice_cmd(admin()))
        .then_err(not_found("basket"));
}

#[test]
fn a_config_update_that_changes_nothing_is_refused() {
    let empty = UpdateMarketplaceConfig {
        actor: admin(),
        visibility: None,
        pricing: None,
        difficulty_level: None,
        tags: None,
        category: None,
        now: t(7),
    };
    given([admin_basket(), published(2)])
        .when(empty.into())
        .then_err(DomainError::invalid(
            "",
            "at least one of visibility, pricing, difficulty_level, tags, category must be given",
        ));
    let err =
        UpdateMarketplaceConfig::from_input(admin(), &MarketplaceConfigInput::default(), t(7))
            .unwrap_err();
    assert!(err.has_field(""));
}

#[test]
fn a_config_update_with_eleven_tags_built_in_code_is_refused() {
    let tags: Vec<Tag> = (0..11)
        .map(|i| Tag::parse(&format!("T{i}")).unwrap())
        .collect();
    let command = UpdateMarketplaceConfig {
        actor: admin(),
        visibility: None,
        pricing: None,
        difficulty_level: None,
        tags: Some(tags),
        category: None,
        now: t(7),
    };
    given([admin_basket(), published(2)])
        .when(command.into())
        .then_err(DomainError::invalid("tags", "must have at most 10 tags"));
}

// ------------------------------------------------------------ UnpublishTemplate

fn unpublish_cmd(actor: Actor) -> BasketCommand {
    UnpublishTemplate {
        actor,
        reason: None,
        now: t(6),
    }
    .into()
}

#[test]
fn an_admin_unpublishes_a_template_which_keeps_its_config() {
    let state = given([admin_basket(), published(2)])
        .when(unpublish_cmd(admin()))
        .then([unpublished(3)]);
    let terms = state.template_terms().unwrap();
    assert!(!terms.enabled);
    assert_eq!(terms.pricing, paid());
    assert_eq!(terms.revision, 3);
}

#[test]
fn unpublishing_a_template_that_is_not_published_is_refused() {
    given([admin_basket()])
        .when(unpublish_cmd(admin()))
        .then_err(DomainError::TemplateNotPublished);
    given([admin_basket(), published(2), unpublished(3)])
        .when(unpublish_cmd(admin()))
        .then_err(DomainError::TemplateNotPublished);
}

#[test]
fn a_user_cannot_unpublish_a_template() {
    given([admin_basket(), published(2)])
        .when(unpublish_cmd(user()))
        .then_err(DomainError::Forbidden);
}

// ------------------------------------------------------------ state

#[test]
fn template_terms_exist_only_once_published_and_follow_the_basket() {
    let before = BasketAggregate::replay(&[admin_basket()]);
    assert_eq!(before.template_terms(), None);
    let renamed: BasketEvent = BasketUpdated {
        basket_id: basket_id(),
        name: name("Renamed"),
        description: Description::default(),
        category: category("INCOME"),
        revision: 3,
        at: t(8),
    }
    .into();
    let state = BasketAggregate::replay(&[admin_basket(), published(2), renamed]);
    assert_eq!(
        state.template_terms(),
        Some(TemplateTerms {
            template_id: basket_id(),
            name: name("Renamed"),
            enabled: true,
            visibility: Visibility::Public,
            pricing: paid(),
            revision: 3,
        })
    );
    assert!(state.is_owned_by(&admin_id()));
    assert!(!state.is_owned_by(&user_id()));
}

#[test]
fn the_stream_of_a_basket_is_named_after_its_id() {
    assert_eq!(stream_name(&basket_id()), format!("basket-{}", basket_id()));
}
