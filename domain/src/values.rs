//! Validated values shared by several aggregates. Each has a `parse`
//! constructor; serde goes through the same rules, so nothing invalid can be
//! read back from an event either.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::decimal::{hundredths_in, DecimalInput};
use crate::error::ValueError;

/// Trims `raw` and checks its length in characters and that it has no
/// control characters (new lines only where `multi_line`).
fn bounded_text(raw: &str, min: usize, max: usize, multi_line: bool) -> Result<String, ValueError> {
    let text = raw.trim();
    let len = text.chars().count();
    if len < min {
        return Err(ValueError::new("must not be empty"));
    }
    if len > max {
        return Err(ValueError::new(format!("must be at most {max} characters")));
    }
    let allowed = |c: char| !c.is_control() || (multi_line && matches!(c, '\n' | '\r' | '\t'));
    if !text.chars().all(allowed) {
        return Err(ValueError::new("must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// `[A-Z][A-Z0-9_]*`, at most `max` characters.
fn upper_identifier(raw: &str, max: usize, example: &str) -> Result<String, ValueError> {
    let bytes = raw.as_bytes();
    if bytes.is_empty() {
        return Err(ValueError::new("must not be empty"));
    }
    if bytes.len() > max {
        return Err(ValueError::new(format!("must be at most {max} characters")));
    }
    let ok = bytes[0].is_ascii_uppercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ValueError::new(format!(
            "must be an upper-case identifier (A-Z, 0-9, _) such as {example}"
        )))
    }
}

macro_rules! text_value {
    ($(#[$meta:meta])* $name:ident, min = $min:literal, max = $max:literal, multi_line = $ml:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Trims and validates the text.
            pub fn parse(text: &str) -> Result<Self, ValueError> {
                bounded_text(text, $min, $max, $ml).map(Self)
            }
        }

        string_newtype!($name);
    };
}

text_value!(
    /// A basket's name: 1–120 characters after trimming.
    BasketName, min = 1, max = 120, multi_line = false
);
text_value!(
    /// A strategy's name: 1–120 characters after trimming.
    StrategyName, min = 1, max = 120, multi_line = false
);
text_value!(
    /// A partner's display name: 1–120 characters after trimming.
    PartnerName, min = 1, max = 120, multi_line = false
);
text_value!(
    /// A basket's description: at most 2 000 characters, new lines allowed;
    /// empty by default.
    #[derive(Default)]
    Description, min = 0, max = 2000, multi_line = true
);
text_value!(
    /// Why a status was changed, kept in the status history: 1–500 characters.
    Reason, min = 1, max = 500, multi_line = false
);
text_value!(
    /// A broker's id (e.g. `ZEBU`), as the broker spells it: 1–64 characters.
    BrokerId, min = 1, max = 64, multi_line = false
);
text_value!(
    /// A customer's account id at a broker: 1–64 characters.
    ClientId, min = 1, max = 64, multi_line = false
);

/// A basket or template category, e.g. `INCOME`, `HEDGING`, `MOMENTUM`:
/// upper-case identifier of at most 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Category(String);

impl Category {
    /// Validates the category.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        upper_identifier(text, 40, "INCOME").map(Self)
    }
}

string_newtype!(Category);

/// A marketplace tag, e.g. `WEEKLY_EXPIRY`: upper-case identifier of at most
/// 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    /// Validates the tag.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        upper_identifier(text, 40, "NIFTY_WEEKLY").map(Self)
    }
}

string_newtype!(Tag);

/// An underlying's exchange symbol, e.g. `NIFTY`, `BANKNIFTY`, `M&M`: an
/// upper-case letter then up to 31 of A-Z, 0-9, `&`, `_`, `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Underlying(String);

impl Underlying {
    /// Validates the symbol.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let bytes = text.as_bytes();
        let ok = (1..=32).contains(&bytes.len())
            && bytes[0].is_ascii_uppercase()
            && bytes[1..].iter().all(|b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'&' | b'_' | b'-')
            });
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(ValueError::new(
                "must be an upper-case symbol such as NIFTY or BANKNIFTY",
            ))
        }
    }
}

string_newtype!(Underlying);

/// An e-mail address in the one spelling that identifies a person (the user
/// id is derived from it), so that two addresses two different people can
/// reach never share an id (ADR 0015):
///
/// * the local part (before `@`) is ASCII only — letters, digits and
///   ``!#$%&'*+-/=?^_`{|}~``, dots between atoms — and is lower-cased the
///   ASCII way; anything else (a KELVIN SIGN, a dotless i, full-width
///   letters, quoted local parts) is refused, never folded;
/// * the domain goes through IDNA (UTS 46, strict, as DNS resolves it) to
///   its ASCII form: `ＥＸＡＭＰＬＥ.com` is `example.com`, which is the same
///   host, while a mixed-script look-alike keeps its own `xn--` spelling.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Characters of a local part besides ASCII letters and digits (RFC 5322
/// `atext`; dots are checked apart).
const LOCAL_PART_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

impl Email {
    /// Trims and normalises the address (see [`Email`]). Full RFC 5322 is
    /// deliberately not attempted: the identity provider already verified
    /// the address; this only fixes one spelling and refuses the rest.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let text = text.trim();
        let invalid = || ValueError::new("must be an e-mail address such as name@example.com");
        if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = text.split_once('@').ok_or_else(invalid)?;
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(invalid());
        }
        if !local.is_ascii() {
            return Err(ValueError::new(
                "the part before @ must be ASCII: letters, digits and !#$%&'*+-/=?^_`{|}~.",
            ));
        }
        let atom_ok = |atom: &str| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || LOCAL_PART_SPECIALS.contains(c))
        };
        if local.len() > 64 || !local.split('.').all(atom_ok) {
            return Err(invalid());
        }
        let domain = idna::domain_to_ascii_strict(domain).map_err(|_| invalid())?;
        let domain_ok = domain.contains('.')
            && domain
                .split('.')
                .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if !domain_ok {
            return Err(invalid());
        }
        let email = format!("{}@{domain}", local.to_ascii_lowercase());
        if email.len() > 254 {
            return Err(invalid());
        }
        Ok(Self(email))
    }
}

string_newtype!(Email);

const RANGE_MESSAGE: &str = "must be greater than 0 and at most 100";

/// How many times a leg's lots a broker allocation trades, `0 < m ≤ 100`
/// with at most two decimals, kept exactly as hundredths (`2.5` is 250).
///
/// On the wire it is a JSON number (`2.5`); it is read from a number or a
/// string without float arithmetic (see [`crate::decimal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LotMultiplier(u32);

impl LotMultiplier {
    /// The multiplier 1.
    pub const ONE: LotMultiplier = LotMultiplier(100);
    const MAX_HUNDREDTHS: u32 = 10_000;

    /// From hundredths (`250` is 2.5).
    pub fn from_hundredths(hundredths: u32) -> Result<Self, ValueError> {
        if (1..=Self::MAX_HUNDREDTHS).contains(&hundredths) {
            Ok(Self(hundredths))
        } else {
            Err(ValueError::new(RANGE_MESSAGE))
        }
    }

    /// From decimal text: `"2.5"`, `"2.50"`, `"100"`.
    pub fn parse_str(text: &str) -> Result<Self, ValueError> {
        hundredths_in(text, 1..=Self::MAX_HUNDREDTHS, RANGE_MESSAGE).map(Self)
    }

    /// From a JSON number, through its decimal text (never through `f64`
    /// arithmetic).
    pub fn from_json_number(number: &serde_json::Number) -> Result<Self, ValueError> {
        Self::parse_str(&number.to_string())
    }

    /// From a request's number or string.
    pub fn parse(input: &DecimalInput) -> Result<Self, ValueError> {
        Self::parse_str(&input.text())
    }

    /// The multiplier in hundredths.
    pub const fn hundredths(self) -> u32 {
        self.0
    }

    /// `floor(lots × m)`, the lots an allocation trades for a leg.
    pub const fn apply(self, lots: u32) -> u64 {
        lots as u64 * self.0 as u64 / 100
    }
}

impl Default for LotMultiplier {
    fn default() -> Self {
        Self::ONE
    }
}

impl fmt::Display for LotMultiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}"),
            f10 if f10 % 10 == 0 => write!(f, "{whole}.{}", f10 / 10),
            _ => write!(f, "{whole}.{frac:02}"),
        }
    }
}

impl Serialize for LotMultiplier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Division by 100 of an integer ≤ 10 000 gives the double nearest to
        // the two-decimal value, and JSON writers print the shortest text that
        // reads back to that double — i.e. exactly the two-decimal value. A
        // test proves it for every one of the 10 000 values.
        serializer.serialize_f64(f64::from(self.0) / 100.0)
    }
}

impl<'de> Deserialize<'de> for LotMultiplier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let input = DecimalInput::deserialize(deserializer)?;
        Self::parse(&input).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            BasketName::parse("  Iron Fly  ").unwrap().as_str(),
            "Iron Fly"
        );
        assert!(BasketName::parse("   ").is_err());
        assert!(BasketName::parse(&"x".repeat(120)).is_ok());
        assert!(BasketName::parse(&"x".repeat(121)).is_err());
        assert!(BasketName::parse("a\u{0}b").is_err());
        // Characters, not bytes, are counted.
        assert!(BasketName::parse(&"₹".repeat(120)).is_ok());
    }

    #[test]
    fn descriptions_may_be_empty_and_multi_line() {
        assert!(Description::parse("").is_ok());
        assert!(Description::parse("line one\nline two").is_ok());
        assert!(Description::parse(&"d".repeat(2000)).is_ok());
        assert!(Description::parse(&"d".repeat(2001)).is_err());
    }

    #[test]
    fn categories_and_tags_are_upper_case_identifiers() {
        for ok in ["INCOME", "HEDGING", "MOMENTUM", "X", "WEEKLY_2"] {
            assert!(Category::parse(ok).is_ok(), "{ok}");
            assert!(Tag::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "income",
            "Income",
            "2X",
            "_X",
            "X-Y",
            "X Y",
            &"X".repeat(41),
        ] {
            assert!(Category::parse(bad).is_err(), "{bad}");
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn underlyings_are_upper_case_symbols() {
        for ok in ["NIFTY", "BANKNIFTY", "M&M", "BAJAJ-AUTO", "NIFTY50"] {
            assert!(Underlying::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "nifty", "1NIFTY", "NIF TY", "NIFTY!"] {
            assert!(Underlying::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_are_lower_cased_and_shape_checked() {
        assert_eq!(
            Email::parse(" Bob@Zebu.CO.in ").unwrap().as_str(),
            "bob@zebu.co.in"
        );
        for bad in [
            "",
            "bob",
            "bob@",
            "@zebu.in",
            "bob@zebu",
            "bob@@zebu.in",
            "b ob@zebu.in",
            "bob@zebu..in",
            "bob@-zebu.in",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_kelvin_sign_never_folds_into_an_ascii_k() {
        // U+212A KELVIN SIGN lower-cases to `k` under Unicode rules; two
        // different mailboxes must never share a user id.
        let kelvin = Email::parse("\u{212A}im@example.com");
        assert!(kelvin.is_err(), "{kelvin:?}");
        assert_eq!(
            Email::parse("KIM@example.com").unwrap().as_str(),
            "kim@example.com"
        );
    }

    #[test]
    fn dotless_i_and_full_width_letters_in_the_local_part_are_refused() {
        for bad in [
            "\u{0131}van@example.com", // dotless i
            "\u{0130}VAN@example.com", // capital I with dot
            "\u{FF41}sha@example.com", // full-width a
            "\u{FF21}SHA@example.com", // full-width A
            "\u{0430}sha@example.com", // Cyrillic a
            "\"quoted\"@example.com",
            ".asha@example.com",
            "asha.@example.com",
            "as..ha@example.com",
        ] {
            let parsed = Email::parse(bad);
            assert!(parsed.is_err(), "{bad}: {parsed:?}");
        }
        let err = Email::parse("\u{0131}van@example.com").unwrap_err();
        assert!(err.message().contains("ASCII"), "{err}");
    }

    #[test]
    fn the_domain_is_folded_by_idna_to_its_ascii_form() {
        // Full-width letters and the KELVIN SIGN in a domain name are the
        // same DNS name as their ASCII letters (UTS 46 mapping), so they reach
        // the same mailbox and are the same person.
        let ascii = Email::parse("asha@example.com").unwrap();
        for same in [
            "asha@EXAMPLE.com",
            "asha@\u{FF45}xample.com",
            "asha@example.co\u{FF4D}",
        ] {
            assert_eq!(Email::parse(same).unwrap(), ascii, "{same}");
        }
        assert_eq!(
            Email::parse("asha@\u{212A}ite.in").unwrap().as_str(),
            "asha@kite.in"
        );
        // A mixed-script look-alike (Cyrillic a) is another domain: it keeps
        // its own punycode spelling and never shares the ASCII one's id.
        let lookalike = Email::parse("asha@ex\u{0430}mple.com").unwrap();
        assert!(lookalike.as_str().starts_with("asha@xn--"), "{lookalike}");
        assert_ne!(lookalike, ascii);
        assert_ne!(
            crate::UserId::from_email(&lookalike),
            crate::UserId::from_email(&ascii)
        );
        // Dotless i in a domain is another domain too.
        let dotless = Email::parse("asha@\u{0131}bm.com").unwrap();
        assert_ne!(dotless, Email::parse("asha@ibm.com").unwrap());
        // Domains IDNA refuses are refused.
        for bad in ["asha@exa_mple.com", "asha@example.com.", "asha@xn--a.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lot_multipliers_are_read_exactly() {
        let ok = [
            ("2.5", 250),
            ("2.50", 250),
            ("100", 10_000),
            ("0.01", 1),
            ("1", 100),
            ("2.01", 201),
        ];
        for (text, hundredths) in ok {
            assert_eq!(
                LotMultiplier::parse_str(text).unwrap().hundredths(),
                hundredths,
                "{text}"
            );
        }
        for bad in [
            "0", "0.00", "100.01", "1.234", "-1", "NaN", "", "abc", "1e9",
        ] {
            assert!(LotMultiplier::parse_str(bad).is_err(), "{bad}");
        }
        assert_eq!(
            LotMultiplier::parse_str("1.234").unwrap_err().message(),
            "must have at most 2 decimals"
        );
    }

    #[test]
    fn lot_multipliers_read_from_json_numbers_without_float_error() {
        // 2.01 * 100.0 == 200.99999999999997 in f64; the decimal text is exact.
        let n: serde_json::Number = serde_json::from_str("2.01").unwrap();
        assert_eq!(
            LotMultiplier::from_json_number(&n).unwrap().hundredths(),
            201
        );
        let n: serde_json::Number = serde_json::from_str("100.01").unwrap();
        assert!(LotMultiplier::from_json_number(&n).is_err());
        let n: serde_json::Number = serde_json::from_str("3").unwrap();
        assert_eq!(
            LotMultiplier::from_json_number(&n).unwrap().hundredths(),
            300
        );
    }

    #[test]
    fn every_lot_multiplier_round_trips_through_json_exactly() {
        for h in 1..=10_000 {
            let m = LotMultiplier::from_hundredths(h).unwrap();
            let json = serde_json::to_string(&m).unwrap();
            let back: LotMultiplier = serde_json::from_str(&json).unwrap();
            assert_eq!(back, m, "{json}");
            assert_eq!(LotMultiplier::parse_str(&m.to_string()).unwrap(), m);
        }
        assert_eq!(
            serde_json::to_string(&LotMultiplier::from_hundredths(250).unwrap()).unwrap(),
            "2.5"
        );
        let from_text: LotMultiplier = serde_json::from_str("\"0.75\"").unwrap();
        assert_eq!(from_text.hundredths(), 75);
    }

    #[test]
    fn lot_multipliers_floor_the_lots() {
        let m = LotMultiplier::parse_str("2.5").unwrap();
        assert_eq!(m.apply(3), 7);
        assert_eq!(LotMultiplier::parse_str("0.5").unwrap().apply(1), 0);
        assert_eq!(m.to_string(), "2.5");
        assert_eq!(
            LotMultiplier::parse_str("0.05").unwrap().to_string(),
            "0.05"
        );
        assert_eq!(LotMultiplier::parse_str("7").unwrap().to_string(), "7");
    }
}
