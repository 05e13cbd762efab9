//! Money (SPEC §2): integer minor units beside a currency, basis points for
//! revenue shares, and the one split rule every charge uses.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decimal::{hundredths_in, DecimalInput};
use crate::error::{path, Collector, ValidationErrors, ValueError};

/// An ISO 4217 currency code: three upper-case letters, e.g. `INR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Indian rupees, the marketplace's currency.
    pub const INR: Currency = Currency(*b"INR");

    /// Validates the code.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        match text.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(ValueError::new(
                "must be a three-letter upper-case currency code such as INR",
            )),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a currency holds three ASCII letters by construction")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

/// A non-negative amount in minor units (paise for INR) with its currency,
/// exactly like Stripe: `{amount_minor: 99900, currency: INR}` is ₹999.00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyRepr", into = "MoneyRepr")]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

#[derive(Serialize, Deserialize)]
struct MoneyRepr {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount ≥ 0 in minor units.
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, ValueError> {
        if amount_minor < 0 {
            return Err(ValueError::new("must not be negative"));
        }
        Ok(Self {
            amount_minor,
            currency,
        })
    }

    /// Nothing, in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self {
            amount_minor: 0,
            currency,
        }
    }

    /// The amount in minor units.
    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }
}

impl TryFrom<MoneyRepr> for Money {
    type Error = ValueError;

    fn try_from(r: MoneyRepr) -> Result<Self, Self::Error> {
        Money::new(r.amount_minor, r.currency)
    }
}

impl From<Money> for MoneyRepr {
    fn from(m: Money) -> Self {
        MoneyRepr {
            amount_minor: m.amount_minor,
            currency: m.currency,
        }
    }
}

/// A share of a whole in basis points, 0..=10 000 (10 000 is 100 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct BasisPoints(u32);

impl BasisPoints {
    /// 0 %.
    pub const ZERO: BasisPoints = BasisPoints(0);
    /// 100 %.
    pub const FULL: BasisPoints = BasisPoints(10_000);

    /// Validates 0..=10 000.
    pub fn new(bps: u32) -> Result<Self, ValueError> {
        if bps <= Self::FULL.0 {
            Ok(Self(bps))
        } else {
            Err(ValueError::new("must be at most 10000 basis points"))
        }
    }

    /// From a percentage with at most two decimals: `"30"` is 3 000 bps,
    /// `"27.5"` is 2 750.
    pub fn from_percentage_str(text: &str) -> Result<Self, ValueError> {
        hundredths_in(text, 0..=Self::FULL.0, "must be between 0 and 100").map(Self)
    }

    /// From a request's percentage, number or string.
    pub fn from_percentage(input: &DecimalInput) -> Result<Self, ValueError> {
        Self::from_percentage_str(&input.text())
    }

    /// The basis points.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// What is left of the whole: `FULL - self`.
    pub const fn complement(self) -> Self {
        Self(Self::FULL.0 - self.0)
    }
}

impl TryFrom<u32> for BasisPoints {
    type Error = ValueError;

    fn try_from(bps: u32) -> Result<Self, Self::Error> {
        Self::new(bps)
    }
}

impl From<BasisPoints> for u32 {
    fn from(b: BasisPoints) -> u32 {
        b.0
    }
}

impl fmt::Display for BasisPoints {
    /// As a percentage: `27.5%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}%"),
            f10 if f10 % 10 == 0 => write!(f, "{whole}.{}%", f10 / 10),
            _ => write!(f, "{whole}.{frac:02}%"),
        }
    }
}

/// How subscription revenue is shared between platform and partner; the two
/// always sum to 10 000 bps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RevenueShareRepr", into = "RevenueShareRepr")]
pub struct RevenueShare {
    platform_bps: BasisPoints,
    partner_bps: BasisPoints,
}

#[derive(Serialize, Deserialize)]
struct RevenueShareRepr {
    platform_bps: BasisPoints,
    partner_bps: BasisPoints,
}

impl RevenueShare {
    /// A direct subscription: the platform keeps everything.
    pub const DIRECT: RevenueShare = RevenueShare {
        platform_bps: BasisPoints::FULL,
        partner_bps: BasisPoints::ZERO,
    };

    /// Validates that the shares sum to 100 %.
    pub fn new(platform_bps: BasisPoints, partner_bps: BasisPoints) -> Result<Self, ValueError> {
        if platform_bps.0 + partner_bps.0 == BasisPoints::FULL.0 {
            Ok(Self {
                platform_bps,
                partner_bps,
            })
        } else {
            Err(ValueError::new(
                "platform and partner percentages must sum to 100",
            ))
        }
    }

    /// The partner gets `partner_bps`, the platform the rest.
    pub const fn from_partner_bps(partner_bps: BasisPoints) -> Self {
        Self {
            platform_bps: partner_bps.complement(),
            partner_bps,
        }
    }

    /// The platform's share.
    pub const fn platform_bps(&self) -> BasisPoints {
        self.platform_bps
    }

    /// The partner's share.
    pub const fn partner_bps(&self) -> BasisPoints {
        self.partner_bps
    }

    /// Reads `{platform_percentage, partner_percentage}` (`at` is the field
    /// path of the object, e.g. `revenue_share`).
    pub fn parse(input: &RevenueShareInput, at: &str) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        let platform = c.check(
            path(at, "platform_percentage"),
            crate::error::required(input.platform_percentage.as_ref())
                .and_then(BasisPoints::from_percentage),
        );
        let partner = c.check(
            path(at, "partner_percentage"),
            crate::error::required(input.partner_percentage.as_ref())
                .and_then(BasisPoints::from_percentage),
        );
        let (Some(platform), Some(partner)) = (platform, partner) else {
            return Err(c.into_errors());
        };
        let share = c.check(at.to_owned(), RevenueShare::new(platform, partner));
        match share {
            Some(share) => c.finish(share),
            None => Err(c.into_errors()),
        }
    }
}

impl TryFrom<RevenueShareRepr> for RevenueShare {
    type Error = ValueError;

    fn try_from(r: RevenueShareRepr) -> Result<Self, Self::Error> {
        RevenueShare::new(r.platform_bps, r.partner_bps)
    }
}

impl From<RevenueShare> for RevenueShareRepr {
    fn from(s: RevenueShare) -> Self {
        RevenueShareRepr {
            platform_bps: s.platform_bps,
            partner_bps: s.partner_bps,
        }
    }
}

/// A revenue share as a request gives it: percentages with at most two
/// decimals (`{"platform_percentage": 70, "partner_percentage": 30}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(description = "A revenue share as percentages with at most two decimals, summing to\n100.", example = json!({"platform_percentage": 70, "partner_percentage": 30})))]
#[serde(deny_unknown_fields)]
pub struct RevenueShareInput {
    // The platform's percentage; left to `DecimalInput`'s schema in the API
    // document, which a doc comment would repeat.
    #[allow(missing_docs)]
    #[cfg_attr(feature = "openapi", schema(value_type = DecimalInput))]
    pub platform_percentage: Option<DecimalInput>,
    // The partner's percentage (as above).
    #[allow(missing_docs)]
    #[cfg_attr(feature = "openapi", schema(value_type = DecimalInput))]
    pub partner_percentage: Option<DecimalInput>,
}

/// One amount divided between partner and platform; the two always sum to
/// the amount, to the paisa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Split {
    /// The partner's share in minor units.
    pub partner_share: i64,
    /// The platform's share in minor units: the amount minus the partner's.
    pub platform_share: i64,
}

/// `partner_share = round_half_up(amount × partner_bps / 10 000)`,
/// `platform_share = amount − partner_share` (SPEC §2).
///
/// Integer arithmetic in `i128`, so no amount can overflow or lose a paisa.
/// Rounding is half up, towards +∞, for negative amounts too (the domain
/// never charges negative amounts, but the function stays total).
pub fn split(amount_minor: i64, partner_bps: BasisPoints) -> Split {
    let scaled = i128::from(amount_minor) * i128::from(partner_bps.get());
    let partner = (scaled + 5_000).div_euclid(10_000);
    // |partner| ≤ |amount|, because partner_bps ≤ 10 000.
    let partner_share = i64::try_from(partner).expect("a share never exceeds its amount");
    Split {
        partner_share,
        platform_share: amount_minor - partner_share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_become_basis_points() {
        for (text, bps) in [
            ("30", 3000),
            ("27.5", 2750),
            ("0", 0),
            ("100", 10_000),
            ("0.01", 1),
            ("70.00", 7000),
        ] {
            assert_eq!(
                BasisPoints::from_percentage_str(text).unwrap().get(),
                bps,
                "{text}"
            );
        }
        for bad in ["100.01", "-1", "27.555", "x", ""] {
            assert!(BasisPoints::from_percentage_str(bad).is_err(), "{bad}");
        }
        assert_eq!(BasisPoints::new(2750).unwrap().to_string(), "27.5%");
    }

    #[test]
    fn a_revenue_share_must_sum_to_one_hundred_percent() {
        let input = RevenueShareInput {
            platform_percentage: Some(70.into()),
            partner_percentage: Some("30".into()),
        };
        let share = RevenueShare::parse(&input, "revenue_share").unwrap();
        assert_eq!(
            (share.platform_bps().get(), share.partner_bps().get()),
            (7000, 3000)
        );

        let input = RevenueShareInput {
            platform_percentage: Some(70.into()),
            partner_percentage: Some(20.into()),
        };
        let err = RevenueShare::parse(&input, "revenue_share").unwrap_err();
        assert!(err.has_field("revenue_share"));

        let err = RevenueShare::parse(&RevenueShareInput::default(), "revenue_share").unwrap_err();
        assert!(err.has_field("revenue_share.platform_percentage"));
        assert!(err.has_field("revenue_share.partner_percentage"));
    }

    #[test]
    fn money_is_never_negative_and_currency_is_checked() {
        assert!(Money::new(-1, Currency::INR).is_err());
        assert!(Currency::parse("inr").is_err());
        assert!(Currency::parse("INRR").is_err());
        let json = serde_json::to_value(Money::new(99_900, Currency::INR).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"amount_minor": 99900, "currency": "INR"})
        );
        assert!(serde_json::from_value::<Money>(
            serde_json::json!({"amount_minor": -5, "currency": "INR"})
        )
        .is_err());
    }

    #[test]
    fn splits_round_half_up_for_negative_amounts_too() {
        let half = BasisPoints::new(5000).unwrap();
        assert_eq!(
            split(-1, half),
            Split {
                partner_share: 0,
                platform_share: -1
            }
        );
        assert_eq!(split(i64::MAX, BasisPoints::FULL).partner_share, i64::MAX);
        assert_eq!(split(i64::MIN, BasisPoints::FULL).partner_share, i64::MIN);
    }
}
