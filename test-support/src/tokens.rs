//! JWTs for tests, signed with a test's HS256 secret, carrying the claims
//! Basketry reads (`sub`, `email`, `groups`, `iat`, `exp`, and `iss`/`aud`
//! when asked for).
//!
//! Minted here rather than by the code under test, so that a token the
//! tests send is what an identity provider would send.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The lifetime does not fit in a timestamp.
    #[error("the token's lifetime is out of range")]
    Lifetime,
    /// The JWT library refused to sign.
    #[error("signing the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A token to mint: [`Token::new`], then the builder methods, then
/// [`Token::sign_hs256`].
#[derive(Debug, Clone)]
pub struct Token {
    email: String,
    groups: Vec<String>,
    ttl: Duration,
    issued_at: DateTime<Utc>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Token {
    /// A token for `email`, in no group, issued now, valid for an hour.
    pub fn new(email: &str) -> Self {
        Self {
            email: email.to_string(),
            groups: Vec::new(),
            ttl: Duration::from_secs(3600),
            issued_at: Utc::now(),
            issuer: None,
            audience: None,
        }
    }

    /// In `groups` (e.g. `Admins`).
    pub fn groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// Valid for `ttl` after it is issued.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Issued at `at` (in the past, to mint an expired token).
    pub fn issued_at(mut self, at: DateTime<Utc>) -> Self {
        self.issued_at = at;
        self
    }

    /// With `iss` and `aud` claims.
    pub fn scoped(mut self, issuer: &str, audience: &str) -> Self {
        self.issuer = Some(issuer.to_string());
        self.audience = Some(audience.to_string());
        self
    }

    /// The token, signed with HS256 and `secret`.
    pub fn sign_hs256(&self, secret: &[u8]) -> Result<String, TokenError> {
        let ttl = i64::try_from(self.ttl.as_secs()).map_err(|_| TokenError::Lifetime)?;
        let iat = self.issued_at.timestamp();
        let exp = iat.checked_add(ttl).ok_or(TokenError::Lifetime)?;
        let mut claims = serde_json::json!({
            "sub": self.email,
            "email": self.email,
            "groups": self.groups,
            "iat": iat,
            "exp": exp,
        });
        if let Some(issuer) = &self.issuer {
            claims["iss"] = serde_json::Value::from(issuer.as_str());
        }
        if let Some(audience) = &self.audience {
            claims["aud"] = serde_json::Value::from(audience.as_str());
        }
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )?)
    }
}

/// A token for `email` in `groups`, valid for an hour, signed with
/// `secret`. Panics if it cannot be signed (a test bug).
pub fn hs256(secret: &[u8], email: &str, groups: &[&str]) -> String {
    Token::new(email)
        .groups(groups)
        .sign_hs256(secret)
        .unwrap_or_else(|e| panic!("minting a test token: {e}"))
}
