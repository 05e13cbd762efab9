//! The user-link aggregate (stream `user-{user_id}`): the reservation that
//! keeps **at most one live (non-cancelled) subscription per user and
//! template**, also under concurrent requests.
//!
//! A read model may lag, so uniqueness cannot come from one. Instead the
//! subscribe handler first appends `TemplateSubscriptionReserved` to the
//! user's stream with the revision it read: of two racing requests, the
//! second append conflicts, is decided again on the new state and refused
//! with `AlreadySubscribed` naming the winner. Cancelling releases the
//! reservation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::event::Aggregate;
use crate::ids::{SubscriptionId, TemplateId, UserId};

/// The stream of a user: `user-{user_id}`.
pub fn stream_name(user_id: &UserId) -> String {
    format!("{}-{user_id}", UserLinkAggregate::STREAM_PREFIX)
}

/// What a user's stream knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLinkState {
    /// The user, once anything was reserved.
    pub user_id: Option<UserId>,
    /// The live subscription of each template the user is subscribed to.
    pub live: BTreeMap<TemplateId, SubscriptionId>,
}

impl UserLinkState {
    /// The user's live subscription to `template_id`, if any.
    pub fn live_subscription(&self, template_id: &TemplateId) -> Option<SubscriptionId> {
        self.live.get(template_id).copied()
    }
}

/// Reserves (user, template) for a new subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveTemplateSubscription {
    /// The user (the stream's).
    pub user_id: UserId,
    /// The template.
    pub template_id: TemplateId,
    /// The subscription about to be created.
    pub subscription_id: SubscriptionId,
    /// When.
    pub now: DateTime<Utc>,
}

/// Releases the reservation of a cancelled subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTemplateSubscription {
    /// The user (the stream's).
    pub user_id: UserId,
    /// The template.
    pub template_id: TemplateId,
    /// The subscription cancelled.
    pub subscription_id: SubscriptionId,
    /// When.
    pub now: DateTime<Utc>,
}

/// Everything the user-link aggregate can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLinkCommand {
    /// See [`ReserveTemplateSubscription`].
    ReserveTemplateSubscription(ReserveTemplateSubscription),
    /// See [`ReleaseTemplateSubscription`].
    ReleaseTemplateSubscription(ReleaseTemplateSubscription),
}

enum_from!(UserLinkCommand {
    ReserveTemplateSubscription,
    ReleaseTemplateSubscription,
});

/// A live subscription of the user to a template was reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSubscriptionReserved {
    /// The user.
    pub user_id: UserId,
    /// The template.
    pub template_id: TemplateId,
    /// The subscription holding the reservation.
    pub subscription_id: SubscriptionId,
    /// When.
    pub at: DateTime<Utc>,
}

/// A reservation was released (its subscription was cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSubscriptionReleased {
    /// The user.
    pub user_id: UserId,
    /// The template.
    pub template_id: TemplateId,
    /// The subscription that held it.
    pub subscription_id: SubscriptionId,
    /// When.
    pub at: DateTime<Utc>,
}

/// Production upcasters of user-link events (none yet: every type is at v1).
pub const USER_LINK_UPCASTERS: &[crate::event::Upcaster] = &[];

domain_events! {
    /// What happens to a user's reservations.
    pub enum UserLinkEvent (upcasters: USER_LINK_UPCASTERS) {
        /// See [`TemplateSubscriptionReserved`].
        TemplateSubscriptionReserved = 1,
        /// See [`TemplateSubscriptionReleased`].
        TemplateSubscriptionReleased = 1,
    }
}

/// The user-link aggregate.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserLinkAggregate;

impl Aggregate for UserLinkAggregate {
    type State = UserLinkState;
    type Command = UserLinkCommand;
    type Event = UserLinkEvent;
    const STREAM_PREFIX: &'static str = "user";

    fn decide(
        state: &UserLinkState,
        command: UserLinkCommand,
    ) -> Result<Vec<UserLinkEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: UserLinkState, event: &UserLinkEvent) -> UserLinkState {
        evolve(state, event)
    }
}

fn same_user(state: &UserLinkState, user_id: &UserId) -> Result<(), DomainError> {
    match state.user_id {
        Some(owner) if owner != *user_id => Err(DomainError::invalid(
            "user_id",
            "does not match the user's stream",
        )),
        _ => Ok(()),
    }
}

/// Decides what a user-link command does. Both commands are idempotent for
/// the same subscription, so a retried request does no harm: reserving again
/// for the holder, or releasing what is not held, records nothing.
pub fn decide(
    state: &UserLinkState,
    command: UserLinkCommand,
) -> Result<Vec<UserLinkEvent>, DomainError> {
    match command {
        UserLinkCommand::ReserveTemplateSubscription(c) => {
            same_user(state, &c.user_id)?;
            match state.live_subscription(&c.template_id) {
                Some(existing) if existing == c.subscription_id => Ok(vec![]),
                Some(existing) => Err(DomainError::AlreadySubscribed {
                    subscription_id: existing,
                }),
                None => Ok(vec![TemplateSubscriptionReserved {
                    user_id: c.user_id,
                    template_id: c.template_id,
                    subscription_id: c.subscription_id,
                    at: c.now,
                }
                .into()]),
            }
        }
        UserLinkCommand::ReleaseTemplateSubscription(c) => {
            same_user(state, &c.user_id)?;
            if state.live_subscription(&c.template_id) != Some(c.subscription_id) {
                return Ok(vec![]);
            }
            Ok(vec![TemplateSubscriptionReleased {
                user_id: c.user_id,
                template_id: c.template_id,
                subscription_id: c.subscription_id,
                at: c.now,
            }
            .into()])
        }
    }
}

/// Applies one user-link event.
pub fn evolve(mut state: UserLinkState, event: &UserLinkEvent) -> UserLinkState {
    match event {
        UserLinkEvent::TemplateSubscriptionReserved(e) => {
            state.user_id = Some(e.user_id);
            state.live.insert(e.template_id, e.subscription_id);
        }
        UserLinkEvent::TemplateSubscriptionReleased(e) => {
            if state.live.get(&e.template_id) == Some(&e.subscription_id) {
                state.live.remove(&e.template_id);
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, given_events};
    use uuid::Uuid;

    fn given(
        events: impl IntoIterator<Item = UserLinkEvent>,
    ) -> crate::testing::Given<UserLinkAggregate> {
        given_events(events)
    }

    fn user() -> UserId {
        UserId::from_uuid(Uuid::from_u128(7))
    }

    fn template() -> TemplateId {
        TemplateId::from_uuid(Uuid::from_u128(100))
    }

    fn sub(n: u128) -> SubscriptionId {
        SubscriptionId::from_uuid(Uuid::from_u128(n))
    }

    fn reserve(n: u128) -> UserLinkCommand {
        ReserveTemplateSubscription {
            user_id: user(),
            template_id: template(),
            subscription_id: sub(n),
            now: at("2026-01-01T00:00:00Z"),
        }
        .into()
    }

    fn release(n: u128) -> UserLinkCommand {
        ReleaseTemplateSubscription {
            user_id: user(),
            template_id: template(),
            subscription_id: sub(n),
            now: at("2026-02-01T00:00:00Z"),
        }
        .into()
    }

    fn reserved(n: u128) -> UserLinkEvent {
        TemplateSubscriptionReserved {
            user_id: user(),
            template_id: template(),
            subscription_id: sub(n),
            at: at("2026-01-01T00:00:00Z"),
        }
        .into()
    }

    fn released(n: u128) -> UserLinkEvent {
        TemplateSubscriptionReleased {
            user_id: user(),
            template_id: template(),
            subscription_id: sub(n),
            at: at("2026-02-01T00:00:00Z"),
        }
        .into()
    }

    #[test]
    fn a_first_subscription_to_a_template_is_reserved() {
        given([]).when(reserve(1)).then([reserved(1)]);
    }

    #[test]
    fn a_second_live_subscription_to_the_same_template_is_refused_naming_the_first() {
        given([reserved(1)])
            .when(reserve(2))
            .then_err(DomainError::AlreadySubscribed {
                subscription_id: sub(1),
            });
    }

    #[test]
    fn reserving_again_for_the_same_subscription_records_nothing() {
        given([reserved(1)]).when(reserve(1)).then([]);
    }

    #[test]
    fn a_subscription_to_another_template_is_reserved_beside_the_first() {
        let other = ReserveTemplateSubscription {
            user_id: user(),
            template_id: TemplateId::from_uuid(Uuid::from_u128(101)),
            subscription_id: sub(2),
            now: at("2026-01-01T00:00:00Z"),
        };
        given([reserved(1)])
            .when(other.clone().into())
            .then([TemplateSubscriptionReserved {
                user_id: user(),
                template_id: other.template_id,
                subscription_id: sub(2),
                at: other.now,
            }
            .into()]);
    }

    #[test]
    fn cancelling_releases_the_reservation() {
        given([reserved(1)]).when(release(1)).then([released(1)]);
    }

    #[test]
    fn after_release_the_user_may_subscribe_again() {
        given([reserved(1), released(1)])
            .when(reserve(2))
            .then([reserved(2)]);
    }

    #[test]
    fn releasing_what_is_not_held_records_nothing() {
        given([]).when(release(1)).then([]);
        given([reserved(1)]).when(release(2)).then([]);
        given([reserved(1), released(1)]).when(release(1)).then([]);
    }

    #[test]
    fn a_command_for_another_user_is_refused() {
        let stranger = ReserveTemplateSubscription {
            user_id: UserId::from_uuid(Uuid::from_u128(8)),
            template_id: template(),
            subscription_id: sub(3),
            now: at("2026-01-01T00:00:00Z"),
        };
        given([reserved(1)])
            .when(stranger.into())
            .then_err(DomainError::invalid(
                "user_id",
                "does not match the user's stream",
            ));
    }
}
