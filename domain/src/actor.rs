//! Who acts. Commands carry the acting principal so that `decide` can apply
//! ownership and role rules itself instead of leaving them to handlers.

use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, PartnerId, UserId};

/// The principal behind a command, as authenticated by the API layer. It is
/// also recorded in status histories (`{"kind": "partner", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// An authenticated person.
    User {
        /// The person's id (UUIDv5 of their e-mail).
        user_id: UserId,
    },
    /// A person whose token carries the `Admins` group.
    Admin {
        /// The admin's own user id: admins own the baskets they publish.
        user_id: UserId,
    },
    /// A partner integration, authenticated by key and secret.
    Partner {
        /// The partner.
        partner_id: PartnerId,
        /// The key it used.
        api_key_id: ApiKeyId,
    },
    /// The program itself (billing runs, demo loading): trusted like an admin
    /// but owning nothing.
    System,
}

impl Actor {
    /// The person acting, if a person is.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User { user_id } | Actor::Admin { user_id } => Some(*user_id),
            Actor::Partner { .. } | Actor::System => None,
        }
    }

    /// Whether the actor may do what only admins may.
    pub fn is_admin(&self) -> bool {
        matches!(self, Actor::Admin { .. } | Actor::System)
    }

    /// The partner acting, if a partner is.
    pub fn partner_id(&self) -> Option<&PartnerId> {
        match self {
            Actor::Partner { partner_id, .. } => Some(partner_id),
            _ => None,
        }
    }
}
