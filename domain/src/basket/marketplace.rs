//! The marketplace configuration of a published basket (a template).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{item, path, required, Collector, ValidationErrors, ValueError};
use crate::money::{Currency, Money};
use crate::values::{Category, Tag};

/// A template has at most this many tags.
pub const MAX_TAGS: usize = 10;

string_enum! {
    /// Whether a template is listed when browsing.
    pub enum Visibility {
        /// Listed in browse.
        Public = "PUBLIC",
        /// Not listed; subscribable by anyone who has its id.
        Private = "PRIVATE",
    }
}

string_enum! {
    /// Whether a template costs a monthly fee.
    pub enum PricingType {
        /// No fee.
        Free = "FREE",
        /// A monthly fee, charged per billing period.
        Paid = "PAID",
    }
}

string_enum! {
    /// How demanding a template is to follow.
    pub enum DifficultyLevel {
        /// For newcomers.
        Beginner = "BEGINNER",
        /// For experienced traders.
        Intermediate = "INTERMEDIATE",
        /// For experts.
        Advanced = "ADVANCED",
    }
}

/// A template's price: FREE costs exactly 0, PAID more than 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PricingRepr", into = "PricingRepr")]
pub struct Pricing {
    pricing_type: PricingType,
    monthly_fee: Money,
}

/// The wire shape `{type, monthly_fee, currency}` (SPEC §3).
#[derive(Serialize, Deserialize)]
struct PricingRepr {
    #[serde(rename = "type")]
    pricing_type: PricingType,
    monthly_fee: i64,
    currency: Currency,
}

/// The largest monthly fee a template may ask, in minor units (₹10 crore
/// in paise): far above any real fee, and low enough that the sums of a
/// ledger stay far from `i64::MAX` (see ADR 0015).
pub const MAX_MONTHLY_FEE: i64 = 10_000_000_000;

impl Pricing {
    /// A free template.
    pub const fn free(currency: Currency) -> Self {
        Self {
            pricing_type: PricingType::Free,
            monthly_fee: Money::zero(currency),
        }
    }

    /// A paid template; the fee must be greater than 0.
    pub fn paid(monthly_fee: Money) -> Result<Self, ValueError> {
        Self::new(PricingType::Paid, monthly_fee)
    }

    /// Checks that the fee fits the type.
    pub fn new(pricing_type: PricingType, monthly_fee: Money) -> Result<Self, ValueError> {
        match (pricing_type, monthly_fee.amount_minor()) {
            (PricingType::Free, 0) => Ok(Self::free(monthly_fee.currency())),
            (PricingType::Free, _) => Err(ValueError::new("must be 0 for a FREE template")),
            (PricingType::Paid, fee) if fee > 0 => Ok(Self {
                pricing_type,
                monthly_fee,
            }),
            (PricingType::Paid, _) => Err(ValueError::new(
                "must be greater than 0 for a PAID template",
            )),
        }
    }

    /// FREE or PAID.
    pub const fn pricing_type(&self) -> PricingType {
        self.pricing_type
    }

    /// The fee per billing period (0 when FREE).
    pub const fn monthly_fee(&self) -> Money {
        self.monthly_fee
    }

    /// Whether subscriptions are charged.
    pub const fn is_paid(&self) -> bool {
        matches!(self.pricing_type, PricingType::Paid)
    }

    /// Reads `{type, monthly_fee, currency}` found at `at`. A missing
    /// `monthly_fee` is 0 and a missing `currency` is INR, the marketplace's
    /// currency.
    pub fn parse(input: &PricingInput, at: &str) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        let pricing_type = c.check(
            path(at, "type"),
            required(input.pricing_type.as_deref()).and_then(PricingType::parse),
        );
        let currency = c.check(
            path(at, "currency"),
            input
                .currency
                .as_deref()
                .map_or(Ok(Currency::INR), Currency::parse),
        );
        let fee = currency.and_then(|currency| {
            let amount = input.monthly_fee.unwrap_or(0);
            let capped = if amount > MAX_MONTHLY_FEE {
                Err(ValueError::new(format!(
                    "must be at most {MAX_MONTHLY_FEE} (minor units)"
                )))
            } else {
                Money::new(amount, currency)
            };
            c.check(path(at, "monthly_fee"), capped)
        });
        let (Some(pricing_type), Some(fee)) = (pricing_type, fee) else {
            return Err(c.into_errors());
        };
        match c.check(path(at, "monthly_fee"), Pricing::new(pricing_type, fee)) {
            Some(pricing) => c.finish(pricing),
            None => Err(c.into_errors()),
        }
    }
}

impl TryFrom<PricingRepr> for Pricing {
    type Error = ValueError;

    fn try_from(r: PricingRepr) -> Result<Self, Self::Error> {
        Pricing::new(r.pricing_type, Money::new(r.monthly_fee, r.currency)?)
    }
}

impl From<Pricing> for PricingRepr {
    fn from(p: Pricing) -> Self {
        PricingRepr {
            pricing_type: p.pricing_type,
            monthly_fee: p.monthly_fee.amount_minor(),
            currency: p.monthly_fee.currency(),
        }
    }
}

/// A price as a request gives it: `{"type": "PAID", "monthly_fee": 99900, "currency": "INR"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(description = "A price as a request gives it.", example = json!({"type": "PAID", "monthly_fee": 99900, "currency": "INR"})))]
#[serde(deny_unknown_fields)]
pub struct PricingInput {
    // `FREE` or `PAID`; left to the enumeration's schema in
    // the API document, which a doc comment would repeat.
    #[allow(missing_docs)]
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = PricingType))]
    pub pricing_type: Option<String>,
    /// Minor units: 0 (or absent) when `FREE`, more than 0 when `PAID`.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, example = 99900))]
    pub monthly_fee: Option<i64>,
    /// Three upper-case letters; `INR` when absent.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Z]{3}$", example = "INR"))]
    pub currency: Option<String>,
}

/// How a published basket appears in the marketplace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MarketplaceConfig {
    /// Listed or not.
    pub visibility: Visibility,
    /// The price new subscriptions pay.
    pub pricing: Pricing,
    /// How demanding it is.
    pub difficulty_level: DifficultyLevel,
    /// Up to 10 distinct tags.
    pub tags: Vec<Tag>,
    /// The marketplace category (the basket's own unless set).
    pub category: Category,
}

/// Reads a list of tags found at `at`: at most 10, each an upper-case
/// identifier, no duplicates.
pub fn parse_tags(tags: &[String], at: &str) -> Result<Vec<Tag>, ValidationErrors> {
    let mut c = Collector::default();
    if tags.len() > MAX_TAGS {
        c.push(at, format!("must have at most {MAX_TAGS} tags"));
    }
    let mut seen = BTreeSet::new();
    let mut parsed = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let field = format!("{at}[{i}]");
        if let Some(tag) = c.check(field.clone(), Tag::parse(tag)) {
            if seen.insert(tag.clone()) {
                parsed.push(tag);
            } else {
                c.push(field, "duplicate tag");
            }
        }
    }
    c.finish(parsed)
}

/// The tag rules for tags built in code rather than parsed.
pub(crate) fn tags_rule(tags: &[Tag], at: &str) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    if tags.len() > MAX_TAGS {
        c.push(at, format!("must have at most {MAX_TAGS} tags"));
    }
    let mut seen = BTreeSet::new();
    for (i, tag) in tags.iter().enumerate() {
        if !seen.insert(tag) {
            c.push(item("", at, i), "duplicate tag");
        }
    }
    c.finish(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pricing(t: &str, fee: Option<i64>) -> PricingInput {
        PricingInput {
            pricing_type: Some(t.into()),
            monthly_fee: fee,
            currency: None,
        }
    }

    #[test]
    fn paid_needs_a_fee_and_free_needs_none() {
        let paid = Pricing::parse(&pricing("PAID", Some(99_900)), "pricing").unwrap();
        assert_eq!(
            paid.monthly_fee(),
            Money::new(99_900, Currency::INR).unwrap()
        );
        assert!(
            Pricing::parse(&pricing("FREE", None), "pricing")
                .unwrap()
                .monthly_fee()
                .amount_minor()
                == 0
        );
        for bad in [
            pricing("PAID", None),
            pricing("PAID", Some(0)),
            pricing("FREE", Some(1)),
            pricing("PAID", Some(-5)),
        ] {
            let err = Pricing::parse(&bad, "pricing").unwrap_err();
            assert!(err.has_field("pricing.monthly_fee"), "{bad:?}: {err}");
        }
        assert!(Pricing::parse(&pricing("GRATIS", None), "pricing")
            .unwrap_err()
            .has_field("pricing.type"));
    }

    #[test]
    fn pricing_travels_as_type_fee_and_currency() {
        let paid = Pricing::paid(Money::new(99_900, Currency::INR).unwrap()).unwrap();
        let json = serde_json::to_value(paid).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "PAID", "monthly_fee": 99900, "currency": "INR"})
        );
        assert!(serde_json::from_value::<Pricing>(
            serde_json::json!({"type": "FREE", "monthly_fee": 5, "currency": "INR"})
        )
        .is_err());
    }

    #[test]
    fn tags_are_bounded_and_distinct() {
        let many: Vec<String> = (0..11).map(|i| format!("T{i}")).collect();
        assert!(parse_tags(&many, "tags").unwrap_err().has_field("tags"));
        let dup = vec!["WEEKLY".to_owned(), "bad".to_owned(), "WEEKLY".to_owned()];
        let err = parse_tags(&dup, "tags").unwrap_err();
        assert!(err.has_field("tags[1]"));
        assert!(err.has_field("tags[2]"));
    }

    #[test]
    fn a_monthly_fee_above_the_cap_is_refused_naming_the_field() {
        let at_cap = Pricing::parse(&pricing("PAID", Some(MAX_MONTHLY_FEE)), "pricing").unwrap();
        assert_eq!(at_cap.monthly_fee().amount_minor(), 10_000_000_000);
        for fee in [MAX_MONTHLY_FEE + 1, i64::MAX] {
            let err = Pricing::parse(&pricing("PAID", Some(fee)), "pricing").unwrap_err();
            assert!(err.has_field("pricing.monthly_fee"), "{err}");
        }
    }
}
