//! Query-string and path parameters, read strictly at the edge.
//!
//! The query string is parsed by hand rather than with actix's `Query`
//! extractor so that every failure is problem+json: an unreadable query
//! string, a repeated or unknown parameter is 400 (a typo such as
//! `categroy=INCOME` would otherwise silently list everything); a value out
//! of its range is 422 naming the parameter.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest};
use chrono::NaiveDate;
use uuid::Uuid;

use crate::error::QueryError;

/// The query parameters of one request, each given at most once.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Reads `query` (the raw query string), accepting only the names in
    /// `allowed`.
    pub fn parse(query: &str, allowed: &[&str]) -> Result<Self, QueryError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| QueryError::bad_request("malformed_query", format!("query string: {e}")))?
            .into_inner();
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(QueryError::bad_request(
                    "unknown_parameter",
                    format!(
                        "unknown query parameter `{name}`; this endpoint takes: {}",
                        allowed.join(", ")
                    ),
                ));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(QueryError::bad_request(
                    "repeated_parameter",
                    format!("query parameter `{name}` is given more than once"),
                ));
            }
        }
        Ok(Self { values })
    }

    /// Reads the request's query string (see [`Params::parse`]).
    pub fn of(req: &HttpRequest, allowed: &[&str]) -> Result<Self, QueryError> {
        Self::parse(req.query_string(), allowed)
    }

    /// The value of `name`; an empty value counts as absent (`?status=`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An upper-case enumeration value among `allowed` (matched without
    /// regard to case), or 422.
    pub fn one_of(
        &self,
        name: &str,
        allowed: &'static [&'static str],
    ) -> Result<Option<&'static str>, QueryError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(raw))
            .copied()
            .map(Some)
            .ok_or_else(|| {
                QueryError::invalid(name, format!("must be one of {}", allowed.join(", ")))
            })
    }

    /// An upper-case identifier such as a category or a tag (`[A-Z0-9_]`,
    /// 1–64 characters, given in any case), or 422.
    pub fn identifier(&self, name: &str) -> Result<Option<String>, QueryError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let upper = raw.to_ascii_uppercase();
        let ok = (1..=64).contains(&upper.len())
            && upper
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Some(upper))
        } else {
            Err(QueryError::invalid(
                name,
                "must be an identifier of letters, digits and underscores",
            ))
        }
    }

    /// A `YYYY-MM-DD` date, or 422.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, QueryError> {
        self.get(name)
            .map(|raw| {
                parse_date(raw)
                    .ok_or_else(|| QueryError::invalid(name, "must be a date written YYYY-MM-DD"))
            })
            .transpose()
    }
}

/// A strict `YYYY-MM-DD` (no other spelling, so the text is the date).
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    if raw.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

/// The inclusive `from`/`to` dates of a ledger query as half-open text
/// bounds on `period_start`: `[from, to + 1 day)`. Timestamps and dates
/// stored as RFC 3339 UTC text sort as text, so `period_start >= lower AND
/// period_start < upper` keeps exactly the lines dated `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRange {
    /// `from` as `YYYY-MM-DD`, when given.
    pub lower: Option<String>,
    /// The day after `to` as `YYYY-MM-DD`, when given.
    pub upper: Option<String>,
}

impl DateRange {
    /// Reads `from` and `to`; 422 when one is malformed or `from` is after
    /// `to`.
    pub fn from_params(params: &Params) -> Result<Self, QueryError> {
        let from = params.date("from")?;
        let to = params.date("to")?;
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(QueryError::invalid("from", "must not be after `to`"));
            }
        }
        let upper = match to {
            None => None,
            Some(to) => Some(
                to.succ_opt()
                    .ok_or_else(|| QueryError::invalid("to", "is out of range"))?,
            ),
        };
        Ok(Self {
            lower: from.map(|d| d.format("%Y-%m-%d").to_string()),
            upper: upper.map(|d| d.format("%Y-%m-%d").to_string()),
        })
    }
}

/// The path parameter `name` as a UUID in its canonical lower-case
/// hyphenated spelling; anything that is not a UUID names nothing (404).
pub fn path_uuid(req: &HttpRequest, name: &str, what: &'static str) -> Result<String, QueryError> {
    req.match_info()
        .get(name)
        .and_then(|raw| Uuid::parse_str(raw).ok())
        .map(|id| id.hyphenated().to_string())
        .ok_or_else(|| QueryError::not_found(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(Params::parse("limit=5&cursor=abc", &["limit", "cursor"]).is_ok());
        assert!(Params::parse("limt=5", &["limit"]).is_err());
        assert!(Params::parse("limit=5&limit=6", &["limit"]).is_err());
        let p = Params::parse("status=&q=a%20b", &["status", "q"]).unwrap();
        assert_eq!(p.get("status"), None);
        assert_eq!(p.get("q"), Some("a b"));
    }

    #[test]
    fn enumerations_and_identifiers_ignore_case() {
        let p = Params::parse(
            "status=paused&tag=nifty&category=bad-one",
            &["status", "tag", "category"],
        )
        .unwrap();
        assert_eq!(
            p.one_of("status", &["ACTIVE", "PAUSED"]).unwrap(),
            Some("PAUSED")
        );
        assert_eq!(p.identifier("tag").unwrap().as_deref(), Some("NIFTY"));
        assert!(p.identifier("category").is_err());
    }

    #[test]
    fn date_ranges_are_inclusive_and_ordered() {
        let p = Params::parse("from=2026-01-31&to=2026-02-28", &["from", "to"]).unwrap();
        let r = DateRange::from_params(&p).unwrap();
        assert_eq!(r.lower.as_deref(), Some("2026-01-31"));
        assert_eq!(r.upper.as_deref(), Some("2026-03-01"));
        let p = Params::parse("from=2026-03-01&to=2026-02-28", &["from", "to"]).unwrap();
        assert!(DateRange::from_params(&p).is_err());
        for bad in ["2026-2-1", "2026-02-30", "20260201", "2026-02-01T00:00:00Z"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }
}
