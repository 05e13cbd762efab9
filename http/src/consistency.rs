//! The `X-Consistency-Token` (read-your-writes): a command answers with the
//! global-log position of its last event, written `commit.prepare`; a query
//! that sends it back waits until the read models include that position.
//!
//! Writing the token and reading it back both live here, so the two APIs
//! agree on its form. A token that is not two non-negative integers joined
//! by a dot is 400 `invalid_consistency_token`
//! ([`EdgeError::InvalidConsistencyToken`]); so are two such headers.

use actix_web::http::header::HeaderMap;
use basketry_store::Position;

use crate::error::EdgeError;

/// Header carrying the position a query must have caught up with.
pub const CONSISTENCY_TOKEN: &str = "x-consistency-token";

/// Formats a position as the `X-Consistency-Token` value (`commit.prepare`).
pub fn consistency_token(position: Position) -> String {
    format!("{}.{}", position.commit, position.prepare)
}

/// A global-log position, as consistency tokens carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token {
    /// KurrentDB's commit position (the SQL stores' global sequence).
    pub commit: i64,
    /// KurrentDB's prepare position (equal to `commit` in the SQL stores).
    pub prepare: i64,
}

impl Token {
    /// Reads `commit.prepare`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (commit, prepare) = text.trim().split_once('.')?;
        let number = |s: &str| {
            if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                s.parse::<i64>().ok()
            }
        };
        Some(Self {
            commit: number(commit)?,
            prepare: number(prepare)?,
        })
    }

    /// The token of the request, if it sent one; 400 when malformed or
    /// repeated.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, EdgeError> {
        let mut values = headers.get_all(CONSISTENCY_TOKEN);
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(EdgeError::InvalidConsistencyToken);
        }
        value
            .to_str()
            .ok()
            .and_then(Self::parse)
            .map(Some)
            .ok_or(EdgeError::InvalidConsistencyToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn tokens_are_two_integers_and_compare_commit_first() {
        assert_eq!(
            Token::parse("12.7"),
            Some(Token {
                commit: 12,
                prepare: 7
            })
        );
        for bad in [
            "",
            "12",
            "12.",
            ".7",
            "a.b",
            "-1.2",
            "1.2.3",
            "1 .2",
            "99999999999999999999.1",
        ] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
        assert!(Token::parse("2.0") > Token::parse("1.9"));
        assert!(Token::parse("2.1") > Token::parse("2.0"));
    }

    #[test]
    fn a_written_token_reads_back() {
        let text = consistency_token(Position::sequence(42));
        assert_eq!(text, "42.42");
        assert_eq!(
            Token::parse(&text),
            Some(Token {
                commit: 42,
                prepare: 42
            })
        );
    }

    #[test]
    fn two_token_headers_are_refused() {
        let mut headers = HeaderMap::new();
        let name = HeaderName::from_static(CONSISTENCY_TOKEN);
        headers.append(name.clone(), HeaderValue::from_static("1.1"));
        assert!(matches!(Token::from_headers(&headers), Ok(Some(_))));
        headers.append(name, HeaderValue::from_static("2.2"));
        assert!(matches!(
            Token::from_headers(&headers),
            Err(EdgeError::InvalidConsistencyToken)
        ));
        assert!(matches!(Token::from_headers(&HeaderMap::new()), Ok(None)));
    }
}
