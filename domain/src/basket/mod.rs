//! The basket aggregate (stream `basket-{basket_id}`): a user's or admin's
//! basket of strategies and, once an admin publishes it, its marketplace
//! configuration as a template (`template_id == basket_id`).
//!
//! Access rules:
//! * basket and strategy commands are for the owner only; anyone else gets
//!   `NotFound` (SPEC §4: "404 not found or not yours");
//! * template commands are for admins only (`Forbidden` otherwise), and only
//!   on a basket an admin created — a user's private strategies are never
//!   put on the marketplace by someone else (`Forbidden`).
//!
//! Every change bumps `revision`, which events carry so readers copy it.

mod marketplace;
mod strategy;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use marketplace::{
    parse_tags, DifficultyLevel, MarketplaceConfig, Pricing, PricingInput, PricingType, Visibility,
    MAX_TAGS,
};
pub use strategy::{
    Expiry, Leg, LegAction, LegInput, Lots, OptionType, Product, RiskLimit, Strategy,
    StrategyInput, Strike, TimeOfDay, TradingDay, MAX_LEGS,
};

use crate::actor::Actor;
use crate::error::{item, path, required, Collector, DomainError, ValidationErrors};
use crate::event::Aggregate;
use crate::ids::{BasketId, StrategyId, TemplateId, UserId};
use crate::values::{BasketName, Category, Description, Reason, Tag};

/// A basket has at most this many strategies.
pub const MAX_STRATEGIES: usize = 50;

/// The stream of a basket: `basket-{basket_id}`.
pub fn stream_name(basket_id: &BasketId) -> String {
    format!("{}-{basket_id}", BasketAggregate::STREAM_PREFIX)
}

// ---------------------------------------------------------------- state

/// A basket as its events built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basket {
    /// Its id (and its template id).
    pub basket_id: BasketId,
    /// Who created it and may change its strategies.
    pub owner_id: UserId,
    /// Whether it was created by an admin, which is what lets it be published.
    pub owner_is_admin: bool,
    /// Display name.
    pub name: BasketName,
    /// Free text.
    pub description: Description,
    /// Category, e.g. `INCOME`.
    pub category: Category,
    /// 0 to 50 strategies, in the order they were added.
    pub strategies: Vec<Strategy>,
    /// Bumped by every change, starting at 1.
    pub revision: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its marketplace side, once it has been published.
    pub marketplace: Option<Marketplace>,
}

/// The marketplace side of a basket that has been published at least once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marketplace {
    /// Whether it takes new subscriptions (false once unpublished).
    pub enabled: bool,
    /// The latest configuration (kept when unpublished, for the record).
    pub config: MarketplaceConfig,
    /// When it was last published.
    pub published_at: DateTime<Utc>,
}

/// What a basket's stream knows: nothing before `BasketCreated`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasketState {
    /// The basket, once created.
    pub basket: Option<Basket>,
}

/// What a subscription needs to know of a template when it is created: a
/// snapshot taken from the basket's state by the command handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateTerms {
    /// The template (the basket's id).
    pub template_id: TemplateId,
    /// Its name now, copied into the subscription.
    pub name: BasketName,
    /// Whether it takes new subscriptions.
    pub enabled: bool,
    /// Listed or not.
    pub visibility: Visibility,
    /// The price a new subscription pays.
    pub pricing: Pricing,
    /// The basket revision the snapshot was taken at.
    pub revision: u64,
}

impl BasketState {
    /// The template terms, if the basket has ever been published.
    pub fn template_terms(&self) -> Option<TemplateTerms> {
        let basket = self.basket.as_ref()?;
        let marketplace = basket.marketplace.as_ref()?;
        Some(TemplateTerms {
            template_id: basket.basket_id,
            name: basket.name.clone(),
            enabled: marketplace.enabled,
            visibility: marketplace.config.visibility,
            pricing: marketplace.config.pricing,
            revision: basket.revision,
        })
    }

    /// Whether `user_id` owns the basket.
    pub fn is_owned_by(&self, user_id: &UserId) -> bool {
        self.basket.as_ref().is_some_and(|b| b.owner_id == *user_id)
    }

    /// Whether it is a published (enabled) template now.
    pub fn is_published(&self) -> bool {
        self.basket
            .as_ref()
            .and_then(|b| b.marketplace.as_ref())
            .is_some_and(|m| m.enabled)
    }

    /// The current revision (0 before creation).
    pub fn revision(&self) -> u64 {
        self.basket.as_ref().map_or(0, |b| b.revision)
    }
}

// ---------------------------------------------------------------- commands

/// Creates a basket owned by the acting user or admin.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateBasket {
    /// Who creates (and so owns) it.
    pub actor: Actor,
    /// Its new id (UUIDv7).
    pub basket_id: BasketId,
    /// Display name.
    pub name: BasketName,
    /// Free text.
    pub description: Description,
    /// Category.
    pub category: Category,
    /// Its initial strategies (at most 50).
    pub strategies: Vec<Strategy>,
    /// When.
    pub now: DateTime<Utc>,
}

/// A basket as a request gives it (`POST /baskets`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A new basket (`POST /baskets`).")
)]
#[serde(deny_unknown_fields)]
pub struct BasketInput {
    /// 1–120 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 120, example = "Nifty weekly income"))]
    pub name: Option<String>,
    /// At most 2 000 characters; empty when absent.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 2000, example = "Sells weekly straddles on NIFTY")
    )]
    pub description: Option<String>,
    /// Upper-case identifier of at most 40 characters, e.g. `INCOME`,
    /// `HEDGING`, `MOMENTUM`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Z][A-Z0-9_]*$", max_length = 40, example = "INCOME"))]
    pub category: Option<String>,
    /// At most 50 strategies; none when absent.
    #[cfg_attr(feature = "openapi", schema(max_items = 50))]
    pub strategies: Option<Vec<StrategyInput>>,
}

impl CreateBasket {
    /// Validates a request body; `new_strategy_id` names each strategy (ids
    /// come from outside so the domain stays pure).
    pub fn from_input(
        actor: Actor,
        basket_id: BasketId,
        input: &BasketInput,
        mut new_strategy_id: impl FnMut() -> StrategyId,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        let name = c.check(
            "name",
            required(input.name.as_deref()).and_then(BasketName::parse),
        );
        let description = c.check(
            "description",
            input
                .description
                .as_deref()
                .map_or(Ok(Description::default()), Description::parse),
        );
        let category = c.check(
            "category",
            required(input.category.as_deref()).and_then(Category::parse),
        );
        let inputs = input.strategies.as_deref().unwrap_or_default();
        if inputs.len() > MAX_STRATEGIES {
            c.push(
                "strategies",
                format!("must have at most {MAX_STRATEGIES} strategies"),
            );
        }
        let strategies: Vec<Option<Strategy>> = inputs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                c.nested(Strategy::parse_at(
                    new_strategy_id(),
                    s,
                    &item("", "strategies", i),
                ))
            })
            .collect();
        let strategies: Option<Vec<Strategy>> = strategies.into_iter().collect();
        let (Some(name), Some(description), Some(category), Some(strategies)) =
            (name, description, category, strategies)
        else {
            return Err(c.into_errors());
        };
        c.finish(CreateBasket {
            actor,
            basket_id,
            name,
            description,
            category,
            strategies,
            now,
        })
    }
}

/// Renames, re-describes or re-categorises a basket (owner only).
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateBasket {
    /// Who asks.
    pub actor: Actor,
    /// A new name, if any.
    pub name: Option<BasketName>,
    /// A new description, if any.
    pub description: Option<Description>,
    /// A new category, if any.
    pub category: Option<Category>,
    /// When.
    pub now: DateTime<Utc>,
}

/// A basket update as a request gives it (`PUT /baskets/{id}`); at least one
/// member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A basket update (`PUT /baskets/{basket_id}`): at least one member.")
)]
#[serde(deny_unknown_fields)]
pub struct UpdateBasketInput {
    /// 1–120 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 120, example = "Nifty weekly income v2")
    )]
    pub name: Option<String>,
    /// At most 2 000 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 2000, example = "Now with a stop-loss")
    )]
    pub description: Option<String>,
    /// Upper-case identifier.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Z][A-Z0-9_]*$", max_length = 40, example = "HEDGING")
    )]
    pub category: Option<String>,
}

impl UpdateBasket {
    /// Validates a request body.
    pub fn from_input(
        actor: Actor,
        input: &UpdateBasketInput,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        let name = c.check(
            "name",
            input.name.as_deref().map(BasketName::parse).transpose(),
        );
        let description = c.check(
            "description",
            input
                .description
                .as_deref()
                .map(Description::parse)
                .transpose(),
        );
        let category = c.check(
            "category",
            input.category.as_deref().map(Category::parse).transpose(),
        );
        if input.name.is_none() && input.description.is_none() && input.category.is_none() {
            c.push(
                "",
                "at least one of name, description, category must be given",
            );
        }
        let (Some(name), Some(description), Some(category)) = (name, description, category) else {
            return Err(c.into_errors());
        };
        c.finish(UpdateBasket {
            actor,
            name,
            description,
            category,
            now,
        })
    }
}

/// Adds a strategy (owner only).
#[derive(Debug, Clone, PartialEq)]
pub struct AddStrategy {
    /// Who asks.
    pub actor: Actor,
    /// The new strategy, with its new id.
    pub strategy: Strategy,
    /// When.
    pub now: DateTime<Utc>,
}

/// Replaces the strategy with the same `strategy_id` (owner only).
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaceStrategy {
    /// Who asks.
    pub actor: Actor,
    /// The new version; its id names the strategy replaced.
    pub strategy: Strategy,
    /// When.
    pub now: DateTime<Utc>,
}

/// Removes a strategy (owner only).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveStrategy {
    /// Who asks.
    pub actor: Actor,
    /// The strategy to remove.
    pub strategy_id: StrategyId,
    /// When.
    pub now: DateTime<Utc>,
}

/// Enables the marketplace for a basket (admin only).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishTemplate {
    /// Who asks.
    pub actor: Actor,
    /// Listed or not.
    pub visibility: Visibility,
    /// The price.
    pub pricing: Pricing,
    /// How demanding.
    pub difficulty_level: DifficultyLevel,
    /// Up to 10 tags.
    pub tags: Vec<Tag>,
    /// The marketplace category; the basket's own when absent.
    pub category: Option<Category>,
    /// When.
    pub now: DateTime<Utc>,
}

/// A template's marketplace configuration as a request gives it
/// (`POST`/`PUT /admin/marketplace/templates/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "A template's marketplace configuration\n(`POST`/`PUT /admin/marketplace/templates/{basket_id}`). Publishing\nneeds `pricing`; an update needs at least one member."
    )
)]
#[serde(deny_unknown_fields)]
pub struct MarketplaceConfigInput {
    /// `PUBLIC` when absent at publication.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Visibility>))]
    pub visibility: Option<String>,
    /// Required when publishing.
    pub pricing: Option<PricingInput>,
    /// `BEGINNER` when absent at publication.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<DifficultyLevel>))]
    pub difficulty_level: Option<String>,
    /// Up to 10 distinct upper-case identifiers.
    #[cfg_attr(feature = "openapi", schema(max_items = 10, example = json!(["NIFTY", "WEEKLY"])))]
    pub tags: Option<Vec<String>>,
    /// Upper-case identifier; the basket's own category when absent.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Z][A-Z0-9_]*$", max_length = 40, example = "INCOME")
    )]
    pub category: Option<String>,
}

/// The members of a [`MarketplaceConfigInput`], each checked if present.
struct ConfigParts {
    visibility: Option<Visibility>,
    pricing: Option<Pricing>,
    difficulty_level: Option<DifficultyLevel>,
    tags: Option<Vec<Tag>>,
    category: Option<Category>,
}

fn parse_config_parts(c: &mut Collector, input: &MarketplaceConfigInput) -> Option<ConfigParts> {
    let visibility = c.check(
        "visibility",
        input
            .visibility
            .as_deref()
            .map(Visibility::parse)
            .transpose(),
    );
    let pricing = c.nested(
        input
            .pricing
            .as_ref()
            .map(|p| Pricing::parse(p, "pricing"))
            .transpose(),
    );
    let difficulty_level = c.check(
        "difficulty_level",
        input
            .difficulty_level
            .as_deref()
            .map(DifficultyLevel::parse)
            .transpose(),
    );
    let tags = c.nested(
        input
            .tags
            .as_deref()
            .map(|t| parse_tags(t, "tags"))
            .transpose(),
    );
    let category = c.check(
        "category",
        input.category.as_deref().map(Category::parse).transpose(),
    );
    Some(ConfigParts {
        visibility: visibility?,
        pricing: pricing?,
        difficulty_level: difficulty_level?,
        tags: tags?,
        category: category?,
    })
}

impl PublishTemplate {
    /// Validates a request body; `pricing` is required, the rest defaults.
    pub fn from_input(
        actor: Actor,
        input: &MarketplaceConfigInput,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        if input.pricing.is_none() {
            c.push("pricing", "is required");
        }
        let parts = parse_config_parts(&mut c, input);
        let Some(ConfigParts {
            visibility,
            pricing: Some(pricing),
            difficulty_level,
            tags,
            category,
        }) = parts
        else {
            return Err(c.into_errors());
        };
        c.finish(PublishTemplate {
            actor,
            visibility: visibility.unwrap_or(Visibility::Public),
            pricing,
            difficulty_level: difficulty_level.unwrap_or(DifficultyLevel::Beginner),
            tags: tags.unwrap_or_default(),
            category,
            now,
        })
    }
}

/// Changes a published template's configuration (admin only). A price change
/// applies to new subscriptions only.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateMarketplaceConfig {
    /// Who asks.
    pub actor: Actor,
    /// A new visibility, if any.
    pub visibility: Option<Visibility>,
    /// A new price, if any.
    pub pricing: Option<Pricing>,
    /// A new difficulty, if any.
    pub difficulty_level: Option<DifficultyLevel>,
    /// New tags (replacing the old), if any.
    pub tags: Option<Vec<Tag>>,
    /// A new category, if any.
    pub category: Option<Category>,
    /// When.
    pub now: DateTime<Utc>,
}

impl UpdateMarketplaceConfig {
    /// Validates a request body; at least one member must be present.
    pub fn from_input(
        actor: Actor,
        input: &MarketplaceConfigInput,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        if *input == MarketplaceConfigInput::default() {
            c.push(
                "",
                "at least one of visibility, pricing, difficulty_level, tags, category must be given",
            );
        }
        let Some(parts) = parse_config_parts(&mut c, input) else {
            return Err(c.into_errors());
        };
        c.finish(UpdateMarketplaceConfig {
            actor,
            visibility: parts.visibility,
            pricing: parts.pricing,
            difficulty_level: parts.difficulty_level,
            tags: parts.tags,
            category: parts.category,
            now,
        })
    }

    fn is_empty(&self) -> bool {
        self.visibility.is_none()
            && self.pricing.is_none()
            && self.difficulty_level.is_none()
            && self.tags.is_none()
            && self.category.is_none()
    }
}

/// Disables a template (admin only): hidden, no new subscriptions, existing
/// ones keep running.
#[derive(Debug, Clone, PartialEq)]
pub struct UnpublishTemplate {
    /// Who asks.
    pub actor: Actor,
    /// Why, for the record.
    pub reason: Option<Reason>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Everything the basket aggregate can be asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum BasketCommand {
    /// See [`CreateBasket`].
    CreateBasket(CreateBasket),
    /// See [`UpdateBasket`].
    UpdateBasket(UpdateBasket),
    /// See [`AddStrategy`].
    AddStrategy(AddStrategy),
    /// See [`ReplaceStrategy`].
    ReplaceStrategy(ReplaceStrategy),
    /// See [`RemoveStrategy`].
    RemoveStrategy(RemoveStrategy),
    /// See [`PublishTemplate`].
    PublishTemplate(PublishTemplate),
    /// See [`UpdateMarketplaceConfig`].
    UpdateMarketplaceConfig(UpdateMarketplaceConfig),
    /// See [`UnpublishTemplate`].
    UnpublishTemplate(UnpublishTemplate),
}

enum_from!(BasketCommand {
    CreateBasket,
    UpdateBasket,
    AddStrategy,
    ReplaceStrategy,
    RemoveStrategy,
    PublishTemplate,
    UpdateMarketplaceConfig,
    UnpublishTemplate,
});

// ---------------------------------------------------------------- events

/// A basket was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketCreated {
    /// The basket.
    pub basket_id: BasketId,
    /// Its owner.
    pub owner_id: UserId,
    /// Whether the owner acted as an admin (only such baskets can be published).
    pub owner_is_admin: bool,
    /// Display name.
    pub name: BasketName,
    /// Free text.
    pub description: Description,
    /// Category.
    pub category: Category,
    /// Initial strategies.
    pub strategies: Vec<Strategy>,
    /// Always 1.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// A basket's name, description or category changed; all three are given as
/// they now are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketUpdated {
    /// The basket.
    pub basket_id: BasketId,
    /// Name now.
    pub name: BasketName,
    /// Description now.
    pub description: Description,
    /// Category now.
    pub category: Category,
    /// The new revision.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// A strategy was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyAdded {
    /// The basket.
    pub basket_id: BasketId,
    /// The strategy, in full.
    pub strategy: Strategy,
    /// The new revision.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// A strategy was replaced by a new version with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyReplaced {
    /// The basket.
    pub basket_id: BasketId,
    /// The new version, in full.
    pub strategy: Strategy,
    /// The new revision.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// A strategy was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyRemoved {
    /// The basket.
    pub basket_id: BasketId,
    /// The strategy removed.
    pub strategy_id: StrategyId,
    /// The new revision.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// The marketplace was enabled for a basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatePublished {
    /// The template (the basket's id).
    pub template_id: TemplateId,
    /// Its configuration.
    pub config: MarketplaceConfig,
    /// The new revision.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// A template's configuration changed; given in full as it now is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketplaceConfigUpdated {
    /// The template.
    pub template_id: TemplateId,
    /// The configuration now.
    pub config: MarketplaceConfig,
    /// The new revision.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// A template was disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateUnpublished {
    /// The template.
    pub template_id: TemplateId,
    /// Why, if said.
    pub reason: Option<Reason>,
    /// The new revision.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}

/// Production upcasters of basket events (none yet: every type is at v1).
pub const BASKET_UPCASTERS: &[crate::event::Upcaster] = &[];

domain_events! {
    /// What happens to a basket.
    pub enum BasketEvent (upcasters: BASKET_UPCASTERS) {
        /// See [`BasketCreated`].
        BasketCreated = 1,
        /// See [`BasketUpdated`].
        BasketUpdated = 1,
        /// See [`StrategyAdded`].
        StrategyAdded = 1,
        /// See [`StrategyReplaced`].
        StrategyReplaced = 1,
        /// See [`StrategyRemoved`].
        StrategyRemoved = 1,
        /// See [`TemplatePublished`].
        TemplatePublished = 1,
        /// See [`MarketplaceConfigUpdated`].
        MarketplaceConfigUpdated = 1,
        /// See [`TemplateUnpublished`].
        TemplateUnpublished = 1,
    }
}

impl BasketEvent {
    /// The basket revision the event brings the basket to.
    pub fn revision(&self) -> u64 {
        match self {
            BasketEvent::BasketCreated(e) => e.revision,
            BasketEvent::BasketUpdated(e) => e.revision,
            BasketEvent::StrategyAdded(e) => e.revision,
            BasketEvent::StrategyReplaced(e) => e.revision,
            BasketEvent::StrategyRemoved(e) => e.revision,
            BasketEvent::TemplatePublished(e) => e.revision,
            BasketEvent::MarketplaceConfigUpdated(e) => e.revision,
            BasketEvent::TemplateUnpublished(e) => e.revision,
        }
    }

    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            BasketEvent::BasketCreated(e) => e.at,
            BasketEvent::BasketUpdated(e) => e.at,
            BasketEvent::StrategyAdded(e) => e.at,
            BasketEvent::StrategyReplaced(e) => e.at,
            BasketEvent::StrategyRemoved(e) => e.at,
            BasketEvent::TemplatePublished(e) => e.at,
            BasketEvent::MarketplaceConfigUpdated(e) => e.at,
            BasketEvent::TemplateUnpublished(e) => e.at,
        }
    }
}

// ---------------------------------------------------------------- decide

/// The basket aggregate.
#[derive(Debug, Clone, Copy, Default)]
pub struct BasketAggregate;

impl Aggregate for BasketAggregate {
    type State = BasketState;
    type Command = BasketCommand;
    type Event = BasketEvent;
    const STREAM_PREFIX: &'static str = "basket";

    fn decide(
        state: &BasketState,
        command: BasketCommand,
    ) -> Result<Vec<BasketEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: BasketState, event: &BasketEvent) -> BasketState {
        evolve(state, event)
    }
}

/// Decides what a basket command does.
pub fn decide(
    state: &BasketState,
    command: BasketCommand,
) -> Result<Vec<BasketEvent>, DomainError> {
    match command {
        BasketCommand::CreateBasket(c) => create(state, c),
        BasketCommand::UpdateBasket(c) => update(state, c),
        BasketCommand::AddStrategy(c) => add_strategy(state, c),
        BasketCommand::ReplaceStrategy(c) => replace_strategy(state, c),
        BasketCommand::RemoveStrategy(c) => remove_strategy(state, c),
        BasketCommand::PublishTemplate(c) => publish(state, c),
        BasketCommand::UpdateMarketplaceConfig(c) => update_config(state, c),
        BasketCommand::UnpublishTemplate(c) => unpublish(state, c),
    }
}

const BASKET: DomainError = DomainError::NotFound { what: "basket" };

/// The basket, if it exists and `actor` owns it; otherwise `NotFound`.
fn owned<'a>(state: &'a BasketState, actor: &Actor) -> Result<&'a Basket, DomainError> {
    let basket = state.basket.as_ref().ok_or(BASKET)?;
    match actor.user_id() {
        Some(user_id) if user_id == basket.owner_id => Ok(basket),
        _ => Err(BASKET),
    }
}

/// The basket, if `actor` is an admin (`Forbidden` otherwise) and it exists.
fn administered<'a>(state: &'a BasketState, actor: &Actor) -> Result<&'a Basket, DomainError> {
    if !actor.is_admin() {
        return Err(DomainError::Forbidden);
    }
    state.basket.as_ref().ok_or(BASKET)
}

/// The published marketplace side, or `TemplateNotPublished`.
fn published(basket: &Basket) -> Result<&Marketplace, DomainError> {
    basket
        .marketplace
        .as_ref()
        .filter(|m| m.enabled)
        .ok_or(DomainError::TemplateNotPublished)
}

fn strategies_rule(strategies: &[Strategy]) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    if strategies.len() > MAX_STRATEGIES {
        c.push(
            "strategies",
            format!("must have at most {MAX_STRATEGIES} strategies"),
        );
    }
    for (i, s) in strategies.iter().enumerate() {
        let at = item("", "strategies", i);
        c.nested(s.validate_at(&at));
        if strategies[..i]
            .iter()
            .any(|o| o.strategy_id == s.strategy_id)
        {
            c.push(path(&at, "strategy_id"), "duplicate strategy id");
        }
    }
    c.finish(())
}

fn create(state: &BasketState, c: CreateBasket) -> Result<Vec<BasketEvent>, DomainError> {
    if state.basket.is_some() {
        return Err(DomainError::AlreadyExists { what: "basket" });
    }
    let owner_id = c.actor.user_id().ok_or(DomainError::Forbidden)?;
    strategies_rule(&c.strategies)?;
    Ok(vec![BasketCreated {
        basket_id: c.basket_id,
        owner_id,
        owner_is_admin: matches!(c.actor, Actor::Admin { .. }),
        name: c.name,
        description: c.description,
        category: c.category,
        strategies: c.strategies,
        revision: 1,
        at: c.now,
    }
    .into()])
}

fn update(state: &BasketState, c: UpdateBasket) -> Result<Vec<BasketEvent>, DomainError> {
    let basket = owned(state, &c.actor)?;
    if c.name.is_none() && c.description.is_none() && c.category.is_none() {
        return Err(DomainError::invalid(
            "",
            "at least one of name, description, category must be given",
        ));
    }
    Ok(vec![BasketUpdated {
        basket_id: basket.basket_id,
        name: c.name.unwrap_or_else(|| basket.name.clone()),
        description: c.description.unwrap_or_else(|| basket.description.clone()),
        category: c.category.unwrap_or_else(|| basket.category.clone()),
        revision: basket.revision + 1,
        at: c.now,
    }
    .into()])
}

fn add_strategy(state: &BasketState, c: AddStrategy) -> Result<Vec<BasketEvent>, DomainError> {
    let basket = owned(state, &c.actor)?;
    c.strategy.validate_at("")?;
    if basket.strategies.len() >= MAX_STRATEGIES {
        return Err(DomainError::invalid(
            "strategies",
            format!("must have at most {MAX_STRATEGIES} strategies"),
        ));
    }
    if basket
        .strategies
        .iter()
        .any(|s| s.strategy_id == c.strategy.strategy_id)
    {
        return Err(DomainError::AlreadyExists { what: "strategy" });
    }
    Ok(vec![StrategyAdded {
        basket_id: basket.basket_id,
        strategy: c.strategy,
        revision: basket.revision + 1,
        at: c.now,
    }
    .into()])
}

fn replace_strategy(
    state: &BasketState,
    c: ReplaceStrategy,
) -> Result<Vec<BasketEvent>, DomainError> {
    let basket = owned(state, &c.actor)?;
    if !basket
        .strategies
        .iter()
        .any(|s| s.strategy_id == c.strategy.strategy_id)
    {
        return Err(DomainError::NotFound { what: "strategy" });
    }
    c.strategy.validate_at("")?;
    Ok(vec![StrategyReplaced {
        basket_id: basket.basket_id,
        strategy: c.strategy,
        revision: basket.revision + 1,
        at: c.now,
    }
    .into()])
}

fn remove_strategy(
    state: &BasketState,
    c: RemoveStrategy,
) -> Result<Vec<BasketEvent>, DomainError> {
    let basket = owned(state, &c.actor)?;
    if !basket
        .strategies
        .iter()
        .any(|s| s.strategy_id == c.strategy_id)
    {
        return Err(DomainError::NotFound { what: "strategy" });
    }
    if basket.strategies.len() == 1 && state.is_published() {
        return Err(DomainError::TemplateNeedsStrategy);
    }
    Ok(vec![StrategyRemoved {
        basket_id: basket.basket_id,
        strategy_id: c.strategy_id,
        revision: basket.revision + 1,
        at: c.now,
    }
    .into()])
}

fn publish(state: &BasketState, c: PublishTemplate) -> Result<Vec<BasketEvent>, DomainError> {
    let basket = administered(state, &c.actor)?;
    if !basket.owner_is_admin {
        return Err(DomainError::Forbidden);
    }
    if state.is_published() {
        return Err(DomainError::TemplateAlreadyPublished);
    }
    if basket.strategies.is_empty() {
        return Err(DomainError::TemplateNeedsStrategy);
    }
    marketplace::tags_rule(&c.tags, "tags")?;
    Ok(vec![TemplatePublished {
        template_id: basket.basket_id,
        config: MarketplaceConfig {
            visibility: c.visibility,
            pricing: c.pricing,
            difficulty_level: c.difficulty_level,
            tags: c.tags,
            category: c.category.unwrap_or_else(|| basket.category.clone()),
        },
        revision: basket.revision + 1,
        at: c.now,
    }
    .into()])
}

fn update_config(
    state: &BasketState,
    c: UpdateMarketplaceConfig,
) -> Result<Vec<BasketEvent>, DomainError> {
    let basket = administered(state, &c.actor)?;
    let current = &published(basket)?.config;
    if c.is_empty() {
        return Err(DomainError::invalid(
            "",
            "at least one of visibility, pricing, difficulty_level, tags, category must be given",
        ));
    }
    if let Some(tags) = &c.tags {
        marketplace::tags_rule(tags, "tags")?;
    }
    Ok(vec![MarketplaceConfigUpdated {
        template_id: basket.basket_id,
        config: MarketplaceConfig {
            visibility: c.visibility.unwrap_or(current.visibility),
            pricing: c.pricing.unwrap_or(current.pricing),
            difficulty_level: c.difficulty_level.unwrap_or(current.difficulty_level),
            tags: c.tags.unwrap_or_else(|| current.tags.clone()),
            category: c.category.unwrap_or_else(|| current.category.clone()),
        },
        revision: basket.revision + 1,
        at: c.now,
    }
    .into()])
}

fn unpublish(state: &BasketState, c: UnpublishTemplate) -> Result<Vec<BasketEvent>, DomainError> {
    let basket = administered(state, &c.actor)?;
    published(basket)?;
    Ok(vec![TemplateUnpublished {
        template_id: basket.basket_id,
        reason: c.reason,
        revision: basket.revision + 1,
        at: c.now,
    }
    .into()])
}

// ---------------------------------------------------------------- evolve

/// Applies one basket event.
pub fn evolve(mut state: BasketState, event: &BasketEvent) -> BasketState {
    if let BasketEvent::BasketCreated(e) = event {
        state.basket = Some(Basket {
            basket_id: e.basket_id,
            owner_id: e.owner_id,
            owner_is_admin: e.owner_is_admin,
            name: e.name.clone(),
            description: e.description.clone(),
            category: e.category.clone(),
            strategies: e.strategies.clone(),
            revision: e.revision,
            created_at: e.at,
            updated_at: e.at,
            marketplace: None,
        });
        return state;
    }
    let Some(basket) = state.basket.as_mut() else {
        return state;
    };
    match event {
        BasketEvent::BasketCreated(_) => {}
        BasketEvent::BasketUpdated(e) => {
            basket.name = e.name.clone();
            basket.description = e.description.clone();
            basket.category = e.category.clone();
        }
        BasketEvent::StrategyAdded(e) => basket.strategies.push(e.strategy.clone()),
        BasketEvent::StrategyReplaced(e) => {
            if let Some(s) = basket
                .strategies
                .iter_mut()
                .find(|s| s.strategy_id == e.strategy.strategy_id)
            {
                *s = e.strategy.clone();
            }
        }
        BasketEvent::StrategyRemoved(e) => {
            basket.strategies.retain(|s| s.strategy_id != e.strategy_id)
        }
        BasketEvent::TemplatePublished(e) => {
            basket.marketplace = Some(Marketplace {
                enabled: true,
                config: e.config.clone(),
                published_at: e.at,
            });
        }
        BasketEvent::MarketplaceConfigUpdated(e) => {
            if let Some(m) = basket.marketplace.as_mut() {
                m.config = e.config.clone();
            }
        }
        BasketEvent::TemplateUnpublished(_) => {
            if let Some(m) = basket.marketplace.as_mut() {
                m.enabled = false;
            }
        }
    }
    basket.revision = event.revision();
    basket.updated_at = event.at();
    state
}
