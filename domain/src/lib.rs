//! # basketry-domain
//!
//! The pure domain of Basketry, a B2B2C marketplace of options-trading
//! strategy baskets: commands, events, deciders, money and billing periods.
//! No I/O, no async, no clock, no randomness — time and new ids arrive in
//! commands, so every decision is a pure function tested given/when/then.
//!
//! ## Aggregates and their streams
//!
//! | aggregate | stream | commands | events |
//! |---|---|---|---|
//! | [`basket`] | `basket-{basket_id}` | `CreateBasket`, `UpdateBasket`, `AddStrategy`, `ReplaceStrategy`, `RemoveStrategy`, `PublishTemplate`, `UpdateMarketplaceConfig`, `UnpublishTemplate` | `BasketCreated`, `BasketUpdated`, `StrategyAdded`, `StrategyReplaced`, `StrategyRemoved`, `TemplatePublished`, `MarketplaceConfigUpdated`, `TemplateUnpublished` |
//! | [`subscription`] | `subscription-{subscription_id}` | `SubscribeToTemplate`, `PauseSubscription`, `ResumeSubscription`, `CancelSubscription`, `SetBrokerAllocations`, `ChargeDue` | `SubscribedToTemplate`, `SubscriptionPaused`, `SubscriptionResumed`, `SubscriptionCancelled`, `BrokerAllocationsSet`, `SubscriptionCharged` |
//! | [`api_key_index`] | `apikey-{api_key_id}` | `AssignApiKey` | `ApiKeyAssigned` |
//! | [`user_link`] | `user-{user_id}` | `ReserveTemplateSubscription`, `ReleaseTemplateSubscription` | `TemplateSubscriptionReserved`, `TemplateSubscriptionReleased` |
//! | [`partner`] | `partner-{PARTNER_ID}` | `RegisterPartner`, `IssueApiKey`, `UpdatePartnerConfig`, `SetApiKeyStatus`, `RotateApiKey`, `RevokeApiKey` | `PartnerRegistered`, `ApiKeyIssued`, `PartnerConfigUpdated`, `ApiKeyStatusChanged`, `ApiKeyRotated`, `ApiKeyRevoked` |
//!
//! Each aggregate module has `XxxCommand`, `XxxEvent`, `XxxState`
//! (`Default` is the empty stream), free functions `decide` and `evolve`, a
//! `stream_name` helper and a marker type implementing [`Aggregate`].
//!
//! ## Writing: load → decide → append
//!
//! ```
//! use basketry_domain::{Actor, Aggregate, DomainEvent, UserId, Email};
//! use basketry_domain::basket::{BasketAggregate, BasketInput, CreateBasket};
//! use basketry_domain::ids::{BasketId, StrategyId};
//! use chrono::Utc;
//! use uuid::Uuid;
//!
//! let owner = UserId::from_email(&Email::parse("ops@basketry.dev").unwrap());
//! let body: BasketInput = serde_json::from_str(r#"{"name": "Income", "category": "INCOME"}"#).unwrap();
//! let command = CreateBasket::from_input(
//!     Actor::Admin { user_id: owner },
//!     BasketId::from_uuid(Uuid::now_v7()),
//!     &body,
//!     || StrategyId::from_uuid(Uuid::now_v7()),
//!     Utc::now(),
//! )
//! .unwrap(); // a handler answers 422 with every FieldError instead
//! let state = BasketAggregate::replay(&[]); // the events read from the stream
//! let events = BasketAggregate::decide(&state, command.into()).unwrap();
//! for e in &events {
//!     // what the store keeps: type, version, JSON data
//!     let _ = (e.event_type(), e.schema_version(), e.to_data());
//! }
//! ```
//!
//! Requests are parsed into commands at the edge by `from_input`/`parse`
//! functions over serde `…Input` structs; they report **every** broken rule
//! as a [`FieldError`] with a path like `strategies[0].legs[2].lots`.
//! Deciders re-check the rules their field types cannot carry, so a command
//! built in code cannot bypass them. With the cargo feature `openapi`, the
//! `…Input` structs and the enumerations they name also implement
//! `utoipa::ToSchema`, so an API documents each request body from the type
//! it deserialises; without it the crate has no OpenAPI dependency.
//!
//! ## Reading events back
//!
//! [`DomainEvent::from_stored`] runs the upcaster chain of the event's type
//! from its stored `schema_version` to the current one, then decodes. Old
//! events are never rewritten.
//!
//! ## Money and billing
//!
//! Amounts are `i64` minor units beside a [`Currency`]; shares are
//! [`BasisPoints`]; [`split`] is the one rounding rule (SPEC §2); [`period()`]
//! is the billing calendar (SPEC §3).
//!
//! ## Errors
//!
//! [`DomainError`] is closed; each variant documents its HTTP status and has
//! a stable [`DomainError::code`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;
pub mod error;
#[macro_use]
pub mod event;
pub mod actor;
pub mod decimal;
pub mod ids;
pub mod money;
pub mod period;
pub mod values;

pub mod api_key_index;
pub mod basket;
pub mod partner;
pub mod subscription;
pub mod user_link;

#[cfg(feature = "openapi")]
mod openapi;

#[cfg(test)]
mod testing;

pub use actor::Actor;
pub use basket::{BasketAggregate, BasketCommand, BasketEvent, BasketState, TemplateTerms};
pub use decimal::DecimalInput;
pub use error::{DomainError, FieldError, ValidationErrors, ValueError};
pub use event::{upcast, Aggregate, DecodeError, DomainEvent, Upcaster};
pub use ids::{
    AllocationId, ApiKeyId, BasketId, PartnerId, StrategyId, SubscriptionId, TemplateId, UserId,
    USER_ID_NAMESPACE,
};
pub use money::{split, BasisPoints, Currency, Money, RevenueShare, RevenueShareInput, Split};
pub use partner::{PartnerAggregate, PartnerCommand, PartnerEvent, PartnerState};
pub use period::{period, BillingPeriod};
pub use subscription::{
    SubscriptionAggregate, SubscriptionCommand, SubscriptionEvent, SubscriptionState,
    SubscriptionStatus,
};
pub use user_link::{UserLinkAggregate, UserLinkCommand, UserLinkEvent, UserLinkState};
pub use values::{
    BasketName, BrokerId, Category, ClientId, Description, Email, LotMultiplier, PartnerName,
    Reason, StrategyName, Tag, Underlying,
};
