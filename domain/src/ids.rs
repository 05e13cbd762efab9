//! Identifiers. Every id is a newtype so a `BasketId` can never be passed
//! where a `SubscriptionId` is meant. The domain never generates ids: they
//! arrive in commands (UUIDv7 from the API layer), which keeps `decide` pure.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValueError;
use crate::values::Email;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an id chosen outside the domain.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Reads a UUID in any of its usual spellings.
            pub fn parse(text: &str) -> Result<Self, ValueError> {
                Uuid::parse_str(text.trim())
                    .map(Self)
                    .map_err(|_| ValueError::new("must be a uuid"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// A basket (stream `basket-{id}`). A published basket's template id is
    /// the same value.
    BasketId
);
uuid_id!(
    /// A strategy within a basket.
    StrategyId
);
uuid_id!(
    /// A subscription (stream `subscription-{id}`).
    SubscriptionId
);
uuid_id!(
    /// A broker allocation within a subscription.
    AllocationId
);
uuid_id!(
    /// A partner API key (the record, not the `pk_…` string).
    ApiKeyId
);
uuid_id!(
    /// A person (stream `user-{id}`): always [`UserId::from_email`], so the
    /// same person subscribed by a partner and logging in directly is one user.
    UserId
);

/// A template is a published basket and shares its id (docs/reference/api.md#conventions: `template_id`
/// equals the basket's id).
pub type TemplateId = BasketId;

/// Namespace of [`UserId`]: `UUIDv5(NAMESPACE_URL, "urn:basketry:user-id")`.
/// Fixed forever — changing it would give every person a new id.
pub const USER_ID_NAMESPACE: Uuid = Uuid::from_u128(0xa568b16b_8216_5f5e_9d68_566b73f0db4b);

impl UserId {
    /// The id of the person with this (already lower-cased) e-mail address.
    pub fn from_email(email: &Email) -> Self {
        Self(Uuid::new_v5(&USER_ID_NAMESPACE, email.as_str().as_bytes()))
    }
}

/// A partner, e.g. `ZEBU` (stream `partner-ZEBU`): upper-case
/// `[A-Z][A-Z0-9_]{1,31}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartnerId(String);

impl PartnerId {
    /// Validates the id; lower-case is refused rather than fixed so a
    /// partner's id is spelled one way everywhere (streams, keys, ledgers).
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let bytes = text.as_bytes();
        let shape_ok = (2..=32).contains(&bytes.len())
            && bytes[0].is_ascii_uppercase()
            && bytes[1..]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
        if shape_ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(ValueError::new(
                "must be 2 to 32 characters: an upper-case letter, then A-Z, 0-9 or _",
            ))
        }
    }

    /// The lower-case form used inside `pk_<partner>_live_…` keys.
    pub fn key_segment(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

string_newtype!(PartnerId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_namespace_is_the_documented_derivation() {
        assert_eq!(
            USER_ID_NAMESPACE,
            Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:basketry:user-id")
        );
    }

    #[test]
    fn a_user_id_is_stable_and_ignores_the_case_of_the_email() {
        let lower = Email::parse("alice@example.com").unwrap();
        let mixed = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(UserId::from_email(&lower), UserId::from_email(&mixed));
        // Pinned: user ids are stored everywhere and must never drift.
        assert_eq!(
            UserId::from_email(&lower).to_string(),
            "6a7d8f5d-807f-5d29-9a65-9eb7713f1da8"
        );
    }

    #[test]
    fn partner_ids_are_upper_case_identifiers() {
        for ok in [
            "ZEBU",
            "ANGEL_ONE",
            "A1",
            "X2345678901234567890123456789012",
        ] {
            assert!(PartnerId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Z",
            "zebu",
            "1ZEBU",
            "_ZEBU",
            "ZE BU",
            "ZEBU-1",
            "X23456789012345678901234567890123",
        ] {
            assert!(PartnerId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            PartnerId::parse("ANGEL_ONE").unwrap().key_segment(),
            "angel_one"
        );
    }

    #[test]
    fn ids_read_and_print_as_hyphenated_uuids() {
        let id = BasketId::parse("0190F8A1-0000-7000-8000-000000000001").unwrap();
        assert_eq!(id.to_string(), "0190f8a1-0000-7000-8000-000000000001");
        assert!(BasketId::parse("nope").is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"0190f8a1-0000-7000-8000-000000000001\"");
    }
}
