//! Exact decimal input for the few non-integer values the API accepts (lot
//! multipliers, percentages).
//!
//! A JSON number such as `2.01` must never be turned into a float and then
//! multiplied (`2.01 * 100.0` is `200.99999999999997`). Instead the number's
//! *text* is read digit by digit into an integer of a fixed scale. serde_json
//! (without `arbitrary_precision`) keeps a non-integer number as the nearest
//! `f64`, and prints it back as the shortest text that reads back to that
//! same `f64` — which, for anything a person types with a few decimals, is
//! exactly what they typed.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::error::ValueError;

/// A decimal as it arrives in a request body: a JSON number (`2.5`) or a
/// string (`"2.5"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DecimalInput {
    /// A JSON number.
    Number(serde_json::Number),
    /// A decimal written as a string.
    Text(String),
}

impl DecimalInput {
    /// The decimal's text (see the module documentation for numbers).
    pub fn text(&self) -> String {
        match self {
            DecimalInput::Number(n) => n.to_string(),
            DecimalInput::Text(s) => s.clone(),
        }
    }
}

impl From<&str> for DecimalInput {
    fn from(text: &str) -> Self {
        DecimalInput::Text(text.to_owned())
    }
}

impl From<u32> for DecimalInput {
    fn from(n: u32) -> Self {
        DecimalInput::Number(n.into())
    }
}

impl fmt::Display for DecimalInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// Why a text is not a decimal of the wanted scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Not decimal syntax (`NaN`, `abc`, `1.2.3`, empty).
    NotANumber,
    /// More significant decimals than the scale allows (`1.234` at scale 2).
    TooPrecise,
    /// Too large to hold.
    OutOfRange,
}

/// More digits than this cannot be a sensible input and would overflow.
const MAX_DIGITS: usize = 30;

/// Reads `text` (`[+-]digits[.digits][e[+-]digits]`, surrounding blanks
/// allowed) as an integer count of `10^-scale` units: `("2.5", 2)` is `250`.
/// Trailing zeros beyond the scale are fine (`"2.500"`), other digits are not.
pub(crate) fn parse_scaled(text: &str, scale: u32) -> Result<i128, DecimalError> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() && frac_part.is_empty()
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(DecimalError::NotANumber);
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) || digits.len() > 6 {
                return Err(DecimalError::NotANumber);
            }
            e.parse().map_err(|_| DecimalError::NotANumber)?
        }
    };

    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    // The value is digits × 10^shift in units of 10^-scale.
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| DecimalError::OutOfRange)?;
    let shift = exponent - frac_len + i64::from(scale);
    let magnitude: i128 = if digits.is_empty() {
        0
    } else if shift >= 0 {
        let shift = usize::try_from(shift).map_err(|_| DecimalError::OutOfRange)?;
        if digits.len() + shift > MAX_DIGITS {
            return Err(DecimalError::OutOfRange);
        }
        let base: i128 = digits.parse().map_err(|_| DecimalError::OutOfRange)?;
        base * 10i128.pow(u32::try_from(shift).map_err(|_| DecimalError::OutOfRange)?)
    } else {
        let dropped = usize::try_from(-shift).map_err(|_| DecimalError::TooPrecise)?;
        if dropped >= digits.len() {
            // Every significant digit lies below the scale.
            return Err(DecimalError::TooPrecise);
        }
        let (kept, tail) = digits.split_at(digits.len() - dropped);
        if tail.bytes().any(|b| b != b'0') {
            return Err(DecimalError::TooPrecise);
        }
        if kept.len() > MAX_DIGITS {
            return Err(DecimalError::OutOfRange);
        }
        kept.parse().map_err(|_| DecimalError::OutOfRange)?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// Reads `text` as hundredths (`"2.5"` is 250) that must lie in `range`;
/// `range_message` says what the range is. The one place decimal inputs turn
/// into errors, so they all read the same.
pub(crate) fn hundredths_in(
    text: &str,
    range: RangeInclusive<u32>,
    range_message: &str,
) -> Result<u32, ValueError> {
    match parse_scaled(text, 2) {
        Ok(value) => u32::try_from(value)
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| ValueError::new(range_message)),
        Err(DecimalError::NotANumber) => Err(ValueError::new("must be a decimal number")),
        Err(DecimalError::TooPrecise) => Err(ValueError::new("must have at most 2 decimals")),
        Err(DecimalError::OutOfRange) => Err(ValueError::new(range_message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_read_exactly_at_scale_two() {
        let cases = [
            ("2.5", 250),
            ("2.50", 250),
            ("2.500", 250),
            ("100", 10_000),
            ("0.01", 1),
            ("2.01", 201),
            ("-1", -100),
            ("+3", 300),
            (".5", 50),
            ("5.", 500),
            ("1e2", 10_000),
            ("2.5E-1", 25),
            ("0", 0),
            ("000.10", 10),
            (" 7 ", 700),
        ];
        for (text, want) in cases {
            assert_eq!(parse_scaled(text, 2), Ok(want), "{text}");
        }
    }

    #[test]
    fn non_decimals_and_excess_precision_are_refused() {
        for text in [
            "", "NaN", "inf", "abc", "1.2.3", "1e", "--1", ".", "1,5", "0x10",
        ] {
            assert_eq!(
                parse_scaled(text, 2),
                Err(DecimalError::NotANumber),
                "{text}"
            );
        }
        for text in ["1.234", "0.001", "1e-3"] {
            assert_eq!(
                parse_scaled(text, 2),
                Err(DecimalError::TooPrecise),
                "{text}"
            );
        }
        assert_eq!(parse_scaled("1e40", 2), Err(DecimalError::OutOfRange));
    }

    #[test]
    fn json_numbers_keep_their_decimal_text() {
        for (json, want) in [
            ("2.01", 201),
            ("0.07", 7),
            ("99.99", 9999),
            ("100.0", 10_000),
        ] {
            let input: DecimalInput = serde_json::from_str(json).unwrap();
            assert_eq!(parse_scaled(&input.text(), 2), Ok(want), "{json}");
        }
    }
}
