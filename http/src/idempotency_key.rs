//! The `Idempotency-Key` request header, validated once: a command that
//! carries an [`IdempotencyKey`] holds a valid one.

use std::fmt;

use actix_web::http::header::HeaderMap;

use crate::error::EdgeError;

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Longest accepted key, in characters (all ASCII, so in bytes too).
pub const MAX_KEY_LEN: usize = 255;

/// A valid `Idempotency-Key`: 1–255 visible ASCII characters (`!` to `~`,
/// so no spaces or control characters). Anything else is 400
/// `invalid_idempotency_key` ([`EdgeError::InvalidIdempotencyKey`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks `key`.
    pub fn parse(key: &str) -> Result<Self, EdgeError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EdgeError::InvalidIdempotencyKey);
        }
        Ok(Self(key.to_string()))
    }

    /// The request's key (the first, if it sent several), if it sent one;
    /// 400 when it is invalid.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, EdgeError> {
        let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
            return Ok(None);
        };
        let text = value
            .to_str()
            .map_err(|_| EdgeError::InvalidIdempotencyKey)?;
        Self::parse(text).map(Some)
    }

    /// The key as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Only the length: keys are the client's and stay out of logs.
impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({} chars)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn keys_must_be_1_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("!~0aZ-_.:{}").is_ok());
        for bad in ["", " ", "a b", "has space", "tab\t", "é", "\u{7f}"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn the_header_is_read_once_and_checked() {
        let name = HeaderName::from_static(IDEMPOTENCY_KEY);
        assert!(matches!(
            IdempotencyKey::from_headers(&HeaderMap::new()),
            Ok(None)
        ));
        let mut headers = HeaderMap::new();
        headers.insert(name.clone(), HeaderValue::from_static("9f1c-key"));
        let key = IdempotencyKey::from_headers(&headers)
            .expect("a valid key")
            .expect("a key");
        assert_eq!(key.as_str(), "9f1c-key");
        assert!(!format!("{key:?}").contains("9f1c"));
        headers.insert(name.clone(), HeaderValue::from_static("a b"));
        assert!(matches!(
            IdempotencyKey::from_headers(&headers),
            Err(EdgeError::InvalidIdempotencyKey)
        ));
        headers.insert(name, HeaderValue::from_static(""));
        assert!(IdempotencyKey::from_headers(&headers).is_err());
    }
}
