//! Strategies and their legs (SPEC §3), and their parsing from request bodies.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decimal::{hundredths_in, DecimalInput};
use crate::error::{item, path, required, Collector, ValidationErrors, ValueError};
use crate::ids::StrategyId;
use crate::values::{StrategyName, Underlying};

/// A strategy has at most this many legs.
pub const MAX_LEGS: usize = 8;

string_enum! {
    /// Intraday (`MIS`) or carry-forward (`NRML`).
    pub enum Product {
        /// Margin intraday square-off.
        Mis = "MIS",
        /// Normal, carried overnight.
        Nrml = "NRML",
    }
}

string_enum! {
    /// An exchange trading day.
    pub enum TradingDay {
        /// Monday.
        Mon = "MON",
        /// Tuesday.
        Tue = "TUE",
        /// Wednesday.
        Wed = "WED",
        /// Thursday.
        Thu = "THU",
        /// Friday.
        Fri = "FRI",
    }
}

string_enum! {
    /// Whether a leg buys or sells.
    pub enum LegAction {
        /// Buy.
        Buy = "BUY",
        /// Sell (write).
        Sell = "SELL",
    }
}

string_enum! {
    /// Call or put.
    pub enum OptionType {
        /// Call.
        Ce = "CE",
        /// Put.
        Pe = "PE",
    }
}

string_enum! {
    /// Which expiry a leg trades.
    pub enum Expiry {
        /// The nearest weekly expiry.
        Weekly = "WEEKLY",
        /// The nearest monthly expiry.
        Monthly = "MONTHLY",
    }
}

/// A minute of the exchange day (Asia/Kolkata), written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// Reads exactly `HH:MM`, 00:00 to 23:59.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let invalid = || ValueError::new("must be a time HH:MM between 00:00 and 23:59");
        let b = text.as_bytes();
        if b.len() != 5 || b[2] != b':' || ![b[0], b[1], b[3], b[4]].iter().all(u8::is_ascii_digit)
        {
            return Err(invalid());
        }
        let hour = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
        let minute = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
        if hour > 23 || minute > 59 {
            return Err(invalid());
        }
        Ok(Self(hour * 60 + minute))
    }

    /// The hour, 0–23.
    pub const fn hour(self) -> u16 {
        self.0 / 60
    }

    /// The minute, 0–59.
    pub const fn minute(self) -> u16 {
        self.0 % 60
    }

    /// Minutes since midnight, handy for schedule indexes.
    pub const fn minutes_since_midnight(self) -> u16 {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour(), self.minute())
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        t.to_string()
    }
}

/// A strike relative to the at-the-money strike: `ATM`, `ATM+2`, `ATM-1`
/// (in strike steps; at most 100 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Strike(i16);

impl Strike {
    /// The at-the-money strike.
    pub const ATM: Strike = Strike(0);
    const MAX_STEPS: i16 = 100;

    /// Reads `ATM`, `ATM+n` or `ATM-n` with `n` in 1..=100 and no leading zero.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let invalid = || ValueError::new("must be ATM, ATM+n or ATM-n with n from 1 to 100");
        let rest = text.strip_prefix("ATM").ok_or_else(invalid)?;
        if rest.is_empty() {
            return Ok(Self::ATM);
        }
        let (sign, digits) = match rest.as_bytes()[0] {
            b'+' => (1, &rest[1..]),
            b'-' => (-1, &rest[1..]),
            _ => return Err(invalid()),
        };
        if digits.is_empty()
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let steps: i16 = digits.parse().map_err(|_| invalid())?;
        if steps > Self::MAX_STEPS {
            return Err(invalid());
        }
        Ok(Self(sign * steps))
    }

    /// Steps away from ATM: positive above, negative below.
    pub const fn offset(self) -> i16 {
        self.0
    }
}

impl fmt::Display for Strike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("ATM"),
            n if n > 0 => write!(f, "ATM+{n}"),
            n => write!(f, "ATM{n}"),
        }
    }
}

impl TryFrom<String> for Strike {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Strike> for String {
    fn from(s: Strike) -> String {
        s.to_string()
    }
}

/// A leg's size in lots, 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Lots(u32);

impl Lots {
    /// Validates 1..=1000.
    pub fn new(lots: i64) -> Result<Self, ValueError> {
        u32::try_from(lots)
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .map(Self)
            .ok_or_else(|| ValueError::new("must be between 1 and 1000"))
    }

    /// The lots.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Lots {
    type Error = ValueError;

    fn try_from(lots: i64) -> Result<Self, Self::Error> {
        Self::new(lots)
    }
}

impl From<Lots> for u32 {
    fn from(l: Lots) -> u32 {
        l.0
    }
}

const RANGE_MESSAGE: &str = "must be greater than 0 and at most 1000 percent";

/// A stop-loss or target as a percentage of the premium, kept in basis
/// points: greater than 0, at most 1 000 % (a sold option's stop-loss is
/// often above 100 %), at most two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct RiskLimit(u32);

impl RiskLimit {
    const MAX_BPS: u32 = 100_000;

    /// From basis points, 1..=100 000.
    pub fn from_bps(bps: u32) -> Result<Self, ValueError> {
        if (1..=Self::MAX_BPS).contains(&bps) {
            Ok(Self(bps))
        } else {
            Err(ValueError::new(RANGE_MESSAGE))
        }
    }

    /// From a percentage (`"25"`, `27.5`).
    pub fn from_percentage(input: &DecimalInput) -> Result<Self, ValueError> {
        hundredths_in(&input.text(), 1..=Self::MAX_BPS, RANGE_MESSAGE).map(Self)
    }

    /// The basis points.
    pub const fn bps(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for RiskLimit {
    type Error = ValueError;

    fn try_from(bps: u32) -> Result<Self, Self::Error> {
        Self::from_bps(bps)
    }
}

impl From<RiskLimit> for u32 {
    fn from(r: RiskLimit) -> u32 {
        r.0
    }
}

/// One option order of a strategy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leg {
    /// Buy or sell.
    pub action: LegAction,
    /// Call or put.
    pub option_type: OptionType,
    /// Strike relative to ATM.
    pub strike: Strike,
    /// Weekly or monthly expiry.
    pub expiry: Expiry,
    /// Lots per unit of allocation (multiplied by each allocation's lot multiplier).
    pub lots: Lots,
}

/// A scheduled options strategy of a basket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Strategy {
    /// Its id within the basket.
    pub strategy_id: StrategyId,
    /// Display name.
    pub name: StrategyName,
    /// The index or stock whose options are traded.
    pub underlying: Underlying,
    /// MIS or NRML.
    pub product: Product,
    /// When the legs are entered (Asia/Kolkata).
    pub entry_time: TimeOfDay,
    /// When they are exited; always after `entry_time`.
    pub exit_time: TimeOfDay,
    /// The days it runs; never empty.
    pub trading_days: BTreeSet<TradingDay>,
    /// Optional stop-loss, in basis points of premium.
    pub stop_loss_bps: Option<RiskLimit>,
    /// Optional target, in basis points of premium.
    pub target_bps: Option<RiskLimit>,
    /// 1 to 8 legs.
    pub legs: Vec<Leg>,
}

/// A strategy as a request gives it. Every member is optional here so that a
/// missing one is reported with its path instead of failing the whole body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "A strategy (in `POST /baskets`, `POST /baskets/{basket_id}/strategies`\nand `PUT /baskets/{basket_id}/strategies/{strategy_id}`)."
    )
)]
#[serde(deny_unknown_fields)]
pub struct StrategyInput {
    /// 1–120 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 120, example = "Short straddle"))]
    pub name: Option<String>,
    /// Upper-case exchange symbol: a letter, then up to 31 of `A-Z 0-9 & _ -`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Z][A-Z0-9&_-]{0,31}$", example = "NIFTY"))]
    pub underlying: Option<String>,
    // `MIS` or `NRML`; left to the enumeration's schema in
    // the API document, which a doc comment would repeat.
    #[allow(missing_docs)]
    #[cfg_attr(feature = "openapi", schema(value_type = Product))]
    pub product: Option<String>,
    /// `HH:MM` (00:00–23:59), exchange time (Asia/Kolkata).
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "09:20"))]
    pub entry_time: Option<String>,
    /// `HH:MM`, after `entry_time`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-2][0-9]:[0-5][0-9]$", example = "15:15"))]
    pub exit_time: Option<String>,
    /// A non-empty set of days, without repeats.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<TradingDay>, min_items = 1, max_items = 5))]
    pub trading_days: Option<Vec<String>>,
    /// Stop-loss, percent of premium: more than 0, at most 1 000, two
    /// decimals.
    pub stop_loss_pct: Option<DecimalInput>,
    /// Target, percent of premium: more than 0, at most 1 000, two
    /// decimals.
    pub target_pct: Option<DecimalInput>,
    /// 1 to 8 legs.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<LegInput>, min_items = 1, max_items = 8))]
    pub legs: Option<Vec<LegInput>>,
}

/// A leg as a request gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(description = "A leg of a strategy."))]
#[serde(deny_unknown_fields)]
pub struct LegInput {
    // `BUY` or `SELL`; left to the enumeration's schema in
    // the API document, which a doc comment would repeat.
    #[allow(missing_docs)]
    #[cfg_attr(feature = "openapi", schema(value_type = LegAction))]
    pub action: Option<String>,
    // `CE` or `PE`; left to the enumeration's schema in
    // the API document, which a doc comment would repeat.
    #[allow(missing_docs)]
    #[cfg_attr(feature = "openapi", schema(value_type = OptionType))]
    pub option_type: Option<String>,
    /// `ATM`, `ATM+n` or `ATM-n`, n from 1 to 100.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^ATM([+-][1-9][0-9]{0,2})?$", example = "ATM"))]
    pub strike: Option<String>,
    // `WEEKLY` or `MONTHLY`; left to the enumeration's schema in
    // the API document, which a doc comment would repeat.
    #[allow(missing_docs)]
    #[cfg_attr(feature = "openapi", schema(value_type = Expiry))]
    pub expiry: Option<String>,
    /// Lots per unit of allocation.
    #[cfg_attr(feature = "openapi", schema(value_type = i64, minimum = 1, maximum = 1000, example = 2))]
    pub lots: Option<i64>,
}

fn leg_count_rule(count: usize) -> Result<(), ValueError> {
    if (1..=MAX_LEGS).contains(&count) {
        Ok(())
    } else {
        Err(ValueError::new(format!("must have 1 to {MAX_LEGS} legs")))
    }
}

fn times_rule(entry: TimeOfDay, exit: TimeOfDay) -> Result<(), ValueError> {
    if exit > entry {
        Ok(())
    } else {
        Err(ValueError::new("must be after entry_time"))
    }
}

impl Strategy {
    /// Validates a request's strategy and gives it `strategy_id`.
    pub fn parse(strategy_id: StrategyId, input: &StrategyInput) -> Result<Self, ValidationErrors> {
        Self::parse_at(strategy_id, input, "")
    }

    /// [`Strategy::parse`] for a strategy found at `at` in a larger body
    /// (e.g. `strategies[0]`), so error paths point into that body.
    pub fn parse_at(
        strategy_id: StrategyId,
        input: &StrategyInput,
        at: &str,
    ) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        let name = c.check(
            path(at, "name"),
            required(input.name.as_deref()).and_then(StrategyName::parse),
        );
        let underlying = c.check(
            path(at, "underlying"),
            required(input.underlying.as_deref()).and_then(Underlying::parse),
        );
        let product = c.check(
            path(at, "product"),
            required(input.product.as_deref()).and_then(Product::parse),
        );
        let entry_time = c.check(
            path(at, "entry_time"),
            required(input.entry_time.as_deref()).and_then(TimeOfDay::parse),
        );
        let exit_time = c.check(
            path(at, "exit_time"),
            required(input.exit_time.as_deref()).and_then(TimeOfDay::parse),
        );
        if let (Some(entry), Some(exit)) = (entry_time, exit_time) {
            c.check(path(at, "exit_time"), times_rule(entry, exit));
        }
        let trading_days = parse_days(&mut c, at, input.trading_days.as_deref());
        let stop_loss_bps = c.check(
            path(at, "stop_loss_pct"),
            input
                .stop_loss_pct
                .as_ref()
                .map(RiskLimit::from_percentage)
                .transpose(),
        );
        let target_bps = c.check(
            path(at, "target_pct"),
            input
                .target_pct
                .as_ref()
                .map(RiskLimit::from_percentage)
                .transpose(),
        );
        let legs = parse_legs(&mut c, at, input.legs.as_deref());

        let (
            Some(name),
            Some(underlying),
            Some(product),
            Some(entry_time),
            Some(exit_time),
            Some(trading_days),
            Some(stop_loss_bps),
            Some(target_bps),
            Some(legs),
        ) = (
            name,
            underlying,
            product,
            entry_time,
            exit_time,
            trading_days,
            stop_loss_bps,
            target_bps,
            legs,
        )
        else {
            return Err(c.into_errors());
        };
        c.finish(Strategy {
            strategy_id,
            name,
            underlying,
            product,
            entry_time,
            exit_time,
            trading_days,
            stop_loss_bps,
            target_bps,
            legs,
        })
    }

    /// Checks the rules the field types cannot carry (leg count, non-empty
    /// days, exit after entry), for a strategy built in code rather than
    /// parsed; `at` prefixes the error paths.
    pub fn validate_at(&self, at: &str) -> Result<(), ValidationErrors> {
        let mut c = Collector::default();
        c.check(path(at, "legs"), leg_count_rule(self.legs.len()));
        if self.trading_days.is_empty() {
            c.push(path(at, "trading_days"), "must not be empty");
        }
        c.check(
            path(at, "exit_time"),
            times_rule(self.entry_time, self.exit_time),
        );
        c.finish(())
    }
}

fn parse_days(
    c: &mut Collector,
    at: &str,
    days: Option<&[String]>,
) -> Option<BTreeSet<TradingDay>> {
    let field = path(at, "trading_days");
    let Some(days) = days else {
        c.push(field, "is required");
        return None;
    };
    if days.is_empty() {
        c.push(field, "must not be empty");
        return None;
    }
    let mut set = BTreeSet::new();
    let mut ok = true;
    for (i, day) in days.iter().enumerate() {
        match c.check(item(at, "trading_days", i), TradingDay::parse(day)) {
            Some(d) if !set.insert(d) => {
                c.push(item(at, "trading_days", i), "duplicate day");
                ok = false;
            }
            Some(_) => {}
            None => ok = false,
        }
    }
    ok.then_some(set)
}

fn parse_legs(c: &mut Collector, at: &str, legs: Option<&[LegInput]>) -> Option<Vec<Leg>> {
    let field = path(at, "legs");
    let Some(legs) = legs else {
        c.push(field, "is required");
        return None;
    };
    // The legs are checked even when there are too many, so their own errors
    // are reported in the same round trip.
    let count_ok = c.check(field, leg_count_rule(legs.len())).is_some();
    let parsed: Vec<Option<Leg>> = legs
        .iter()
        .enumerate()
        .map(|(i, leg)| parse_leg(c, &item(at, "legs", i), leg))
        .collect();
    let parsed: Option<Vec<Leg>> = parsed.into_iter().collect();
    parsed.filter(|_| count_ok)
}

fn parse_leg(c: &mut Collector, at: &str, input: &LegInput) -> Option<Leg> {
    let action = c.check(
        path(at, "action"),
        required(input.action.as_deref()).and_then(LegAction::parse),
    );
    let option_type = c.check(
        path(at, "option_type"),
        required(input.option_type.as_deref()).and_then(OptionType::parse),
    );
    let strike = c.check(
        path(at, "strike"),
        required(input.strike.as_deref()).and_then(Strike::parse),
    );
    let expiry = c.check(
        path(at, "expiry"),
        required(input.expiry.as_deref()).and_then(Expiry::parse),
    );
    let lots = c.check(path(at, "lots"), required(input.lots).and_then(Lots::new));
    Some(Leg {
        action: action?,
        option_type: option_type?,
        strike: strike?,
        expiry: expiry?,
        lots: lots?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id() -> StrategyId {
        StrategyId::from_uuid(Uuid::from_u128(1))
    }

    fn leg() -> LegInput {
        LegInput {
            action: Some("SELL".into()),
            option_type: Some("CE".into()),
            strike: Some("ATM+1".into()),
            expiry: Some("WEEKLY".into()),
            lots: Some(2),
        }
    }

    fn input() -> StrategyInput {
        StrategyInput {
            name: Some("Short strangle".into()),
            underlying: Some("NIFTY".into()),
            product: Some("MIS".into()),
            entry_time: Some("09:20".into()),
            exit_time: Some("15:15".into()),
            trading_days: Some(vec!["MON".into(), "THU".into()]),
            stop_loss_pct: Some("25".into()),
            target_pct: None,
            legs: Some(vec![leg()]),
        }
    }

    #[test]
    fn a_complete_strategy_parses() {
        let s = Strategy::parse(id(), &input()).unwrap();
        assert_eq!(s.entry_time.to_string(), "09:20");
        assert_eq!(s.stop_loss_bps.map(RiskLimit::bps), Some(2500));
        assert_eq!(s.legs[0].strike.offset(), 1);
        assert!(s.validate_at("").is_ok());
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_path() {
        let mut bad = input();
        bad.name = None;
        bad.product = Some("CNC".into());
        bad.exit_time = Some("09:00".into());
        bad.trading_days = Some(vec!["MON".into(), "SAT".into(), "MON".into()]);
        let mut leg2 = leg();
        leg2.lots = Some(0);
        leg2.strike = Some("ATM+01".into());
        bad.legs = Some(vec![leg(), leg(), leg2]);
        let err = Strategy::parse_at(id(), &bad, "strategies[0]").unwrap_err();
        let fields: Vec<&str> = err.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "strategies[0].name",
                "strategies[0].product",
                "strategies[0].exit_time",
                "strategies[0].trading_days[1]",
                "strategies[0].trading_days[2]",
                "strategies[0].legs[2].strike",
                "strategies[0].legs[2].lots",
            ]
        );
    }

    #[test]
    fn leg_counts_and_risk_limits_are_bounded() {
        let mut bad = input();
        bad.legs = Some(vec![leg(); 9]);
        bad.target_pct = Some("0".into());
        let err = Strategy::parse(id(), &bad).unwrap_err();
        assert!(err.has_field("legs"));
        assert!(err.has_field("target_pct"));
        bad.legs = Some(vec![]);
        assert!(Strategy::parse(id(), &bad).unwrap_err().has_field("legs"));
        bad.trading_days = Some(vec![]);
        assert!(Strategy::parse(id(), &bad)
            .unwrap_err()
            .has_field("trading_days"));
    }

    #[test]
    fn strikes_times_and_lots_read_and_print_their_wire_form() {
        for text in ["ATM", "ATM+1", "ATM-3", "ATM+100"] {
            assert_eq!(Strike::parse(text).unwrap().to_string(), text);
        }
        for bad in ["atm", "ATM+0", "ATM+", "ATM-101", "ATM 1", "ITM", "ATM+-1"] {
            assert!(Strike::parse(bad).is_err(), "{bad}");
        }
        for bad in ["9:20", "24:00", "12:60", "1200", "ab:cd"] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
        assert!(Lots::new(1000).is_ok());
        assert!(Lots::new(1001).is_err());
        assert!(Lots::new(-1).is_err());
    }
}
