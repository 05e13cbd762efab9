//! The response bodies both APIs send, one `Serialize` + `ToSchema` type per
//! shape: the command API builds them from domain state
//! (`basketry_command_api::views`), the query API from read-model rows, and
//! the OpenAPI document is generated from the same types. A shape is
//! described here and nowhere else.
//!
//! * [`problem`] — the one error body (`application/problem+json`) and the
//!   error responses every route shares;
//! * [`baskets`] — baskets, strategies, templates and the marketplace;
//! * [`subscriptions`] — subscriptions, their history and allocations;
//! * [`partners`] — partner API keys;
//! * [`ledger`] — ledger lines and statements;
//! * [`plan`] — the execution plan;
//! * [`audit`] — recorded events.
//!
//! Bodies are sent as `serde_json::Value` (the command API keeps them for
//! `Idempotency-Key` replays; the query API adds to some), whose objects
//! have sorted keys: a type's field order is the document's, not the
//! wire's.
//!
//! A member that is always present but may be `null` is an `Option` marked
//! `required = true`; a member that may be absent is an `Option` skipped
//! when `None`. Enumerations ([`Product`], [`SubscriptionStatus`], …) are
//! the domain's own types with the domain's own schemas (documented from
//! its `ALL` lists), so a value added to the domain appears in the
//! document by itself.

pub mod audit;
pub mod baskets;
pub mod ledger;
pub mod partners;
pub mod plan;
pub mod problem;
pub mod subscriptions;

pub use audit::*;
pub use baskets::*;
pub use ledger::*;
pub use partners::*;
pub use plan::*;
pub use problem::*;
pub use subscriptions::*;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// The domain's enumerations, documented by the domain itself (its
/// `openapi` feature): each a string whose values are the type's `ALL`.
/// Fields of the shapes name them with `#[schema(value_type = …)]`.
pub use basketry_domain::basket::{
    DifficultyLevel, Expiry, LegAction, OptionType, PricingType, Product, TradingDay, Visibility,
};
pub use basketry_domain::partner::{ApiKeyStatus, PartnerType, Permission};
pub use basketry_domain::subscription::SubscriptionStatus;

/// An instant as the API writes it: RFC 3339 in UTC with a `Z`. Built from
/// a `DateTime<Utc>` (written as chrono writes it: only the fractional
/// digits it needs) or taken as a read model stores it (microseconds), so
/// both APIs send exactly the text they sent before the types existed.
/// Fields name its schema with `#[schema(value_type = String, format = DateTime)]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(String);

impl Timestamp {
    /// The instant as stored text, trusted to be RFC 3339 (a read-model
    /// column the projectors wrote).
    pub fn stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        // What chrono's own `Serialize` writes for a UTC instant.
        Self(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl From<&DateTime<Utc>> for Timestamp {
    fn from(at: &DateTime<Utc>) -> Self {
        Self::from(*at)
    }
}

/// A share or a risk limit in basis points, sent as a percentage number:
/// `7000` → `70`, `2750` → `27.5`. Display only: the stored value stays
/// integral. Fields name its schema with `#[schema(value_type = f64)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(pub u32);

impl Percent {
    /// From basis points.
    pub fn from_bps(bps: u32) -> Self {
        Self(bps)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let percent = f64::deserialize(deserializer)?;
        let bps = (percent * 100.0).round();
        if (0.0..=f64::from(u32::MAX)).contains(&bps) {
            // In range and integral: the conversion is exact.
            Ok(Self(bps as u32))
        } else {
            Err(serde::de::Error::custom("a percentage out of range"))
        }
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            serializer.serialize_u32(self.0 / 100)
        } else {
            serializer.serialize_f64(f64::from(self.0) / 100.0)
        }
    }
}

/// A response body as the APIs send it: `value` as JSON with sorted keys.
/// Serialising one of these types cannot fail (no map has non-string keys),
/// so a failure is a bug, sent as `null` rather than a panic.
pub fn body<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        for at in [
            Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap(),
            Utc.timestamp_opt(1_790_000_000, 123_000_000).unwrap(),
            Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap(),
        ] {
            assert_eq!(
                serde_json::to_value(Timestamp::from(at)).unwrap(),
                serde_json::to_value(at).unwrap()
            );
        }
    }

    #[test]
    fn percentages_are_integers_when_whole() {
        assert_eq!(serde_json::to_string(&Percent(7000)).unwrap(), "70");
        assert_eq!(serde_json::to_string(&Percent(2750)).unwrap(), "27.5");
        assert_eq!(serde_json::to_string(&Percent(1)).unwrap(), "0.01");
    }
}
