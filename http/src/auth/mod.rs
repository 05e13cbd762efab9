//! Authentication (SPEC §1): who is calling.
//!
//! * People present a JWT (`Authorization: Bearer <jwt>`), HS256 with a
//!   configured secret or RS256/ES256 against a JWKS ([`jwt::JwtVerifier`]);
//!   the result is a [`jwt::Person`].
//! * Partners present their key and secret (`Authorization: Bearer pk_…` and
//!   `X-Partner-Secret: sk_…`), checked against the argon2id hash recorded in
//!   the partner's stream ([`partner::PartnerAuthenticator`]); the result is a
//!   [`partner::PartnerPrincipal`].
//! * [`extract::Principal`] is the actix extractor handlers take; it reads
//!   the verifiers from `web::Data<`[`extract::AuthState`]`>`.
//!
//! The application builds one [`extract::AuthState`] (a [`jwt::JwtVerifier`]
//! and a [`partner::PartnerAuthenticator`]) and registers it as app data,
//! with its [`crate::clock::Clock`] as `web::Data<Clock>` (credentials
//! expire on that clock); handlers take a [`extract::Principal`] argument,
//! call its `require_*` helpers, and invalidate a partner's cached
//! credentials after changing its keys or configuration.
//!
//! Every failure is an [`AuthError`]; [`crate::error::EdgeError`] maps it to
//! HTTP for both APIs, as each variant documents. Authentication fails
//! closed: when the event store cannot be read the answer is 503, never a
//! pass. No error message, log line or `Debug` output carries a token, a
//! secret or a hash.

pub mod credentials;
pub mod extract;
pub mod jwt;
pub mod partner;
#[cfg(test)]
mod testing;
pub mod usage;

use basketry_domain::partner::Permission;

pub use credentials::{
    generate_api_key, generate_secret, hash_secret, hash_secret_async, partner_id_of_key,
    verify_secret, PlainSecret,
};
pub use extract::{AuthState, Principal};
pub use jwt::{
    mint_hs256, mint_hs256_scoped, JwksSource, JwtConfig, JwtSetupError, JwtVerifier, Person,
};
pub use partner::{PartnerAuthConfig, PartnerAuthenticator, PartnerPrincipal};

/// Why a request is not authenticated or not allowed.
///
/// The HTTP status each variant must map to is given first in its
/// documentation. Messages are short, lower-case and never include a token,
/// a key secret or a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401 — no credentials: no `Authorization` header, or a partner key
    /// without its `X-Partner-Secret` header.
    #[error("authentication required")]
    Missing,
    /// 401 — the `Authorization` header is not `Bearer <token>`, or the token
    /// is not a well-formed JWT (three base64url segments of JSON).
    #[error("malformed credentials")]
    Malformed,
    /// 401 — a well-formed JWT that is not acceptable: an algorithm that is
    /// not configured (including `none`), a missing or invalid `email`,
    /// `exp` or `groups` claim, a wrong issuer or audience, a token not yet
    /// valid.
    #[error("invalid token")]
    InvalidToken,
    /// 401 — the JWT's `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// 401 — the JWT's signature does not verify.
    #[error("bad token signature")]
    BadSignature,
    /// 401 — the partner key (`pk_…`) is not known, or the JWT names a
    /// signing key (`kid`) the JWKS does not have.
    #[error("unknown key")]
    UnknownKey,
    /// 401 — the partner secret does not match the key.
    #[error("wrong secret")]
    WrongSecret,
    /// 401 — the partner key is suspended.
    #[error("api key suspended")]
    KeySuspended,
    /// 401 — the partner key is revoked.
    #[error("api key revoked")]
    KeyRevoked,
    /// 429 with `Retry-After: retry_after_secs` — too many wrong secrets for
    /// this key recently; refused before any hashing is done.
    #[error("too many failed attempts, retry in {retry_after_secs} s")]
    Throttled {
        /// Seconds until attempts are accepted again (at least 1).
        retry_after_secs: u64,
    },
    /// 503 — authentication could not be decided (event store or JWKS
    /// unreachable, authentication not configured): fail closed.
    #[error("authentication unavailable")]
    Unavailable,
    /// 403 — authenticated, but this principal may not do this.
    #[error("forbidden")]
    Forbidden,
    /// 403 — a partner key lacks the permission the endpoint needs.
    #[error("missing permission {permission}")]
    MissingPermission {
        /// The permission the endpoint needs.
        permission: Permission,
    },
}

impl AuthError {
    /// Stable snake_case identifier of the error, for the problem+json
    /// `code` (as [`basketry_domain::DomainError::code`] is for the domain).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "authentication_required",
            AuthError::Malformed => "malformed_credentials",
            AuthError::InvalidToken => "invalid_token",
            AuthError::Expired => "token_expired",
            AuthError::BadSignature => "invalid_token_signature",
            AuthError::UnknownKey => "unknown_key",
            AuthError::WrongSecret => "invalid_secret",
            AuthError::KeySuspended => "api_key_suspended",
            AuthError::KeyRevoked => "api_key_revoked",
            AuthError::Throttled { .. } => "too_many_failed_attempts",
            AuthError::Unavailable => "authentication_unavailable",
            AuthError::Forbidden => "forbidden",
            AuthError::MissingPermission { .. } => "missing_permission",
        }
    }

    /// The seconds a client must wait, for `Retry-After`: only
    /// [`AuthError::Throttled`] has one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::Throttled { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// Unpadded base64url (RFC 4648 §5), as JWTs use it. Small enough to keep
/// here rather than pull another crate in for the JWT header peek.
pub(crate) mod b64url {
    #[cfg(test)]
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }

    /// Decodes unpadded base64url; `None` on any other character or length.
    pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
        let bytes = text.as_bytes();
        if bytes.len() % 4 == 1 {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let mut acc = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                acc |= value(c)? << (18 - 6 * i);
            }
            let produced = chunk.len() - 1;
            out.extend_from_slice(&acc.to_be_bytes()[1..=produced]);
        }
        Some(out)
    }

    /// Encodes as unpadded base64url (tests craft tokens with it).
    #[cfg(test)]
    pub(crate) fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let mut acc = 0u32;
            for (i, &b) in chunk.iter().enumerate() {
                acc |= u32::from(b) << (16 - 8 * i);
            }
            for i in 0..=chunk.len() {
                let index = (acc >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[index as usize]));
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn base64url_round_trips_every_length() {
            let data: Vec<u8> = (0..=255u8).collect();
            for n in 0..data.len() {
                let text = encode(&data[..n]);
                assert!(!text.contains('='));
                assert_eq!(decode(&text).unwrap(), &data[..n], "length {n}");
            }
            assert_eq!(encode(b"{\"alg\":\"none\"}"), "eyJhbGciOiJub25lIn0");
            assert!(decode("a").is_none());
            assert!(decode("ab+/").is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_auth_error_has_a_distinct_code_and_a_message_without_credentials() {
        let all = [
            AuthError::Missing,
            AuthError::Malformed,
            AuthError::InvalidToken,
            AuthError::Expired,
            AuthError::BadSignature,
            AuthError::UnknownKey,
            AuthError::WrongSecret,
            AuthError::KeySuspended,
            AuthError::KeyRevoked,
            AuthError::Throttled {
                retry_after_secs: 7,
            },
            AuthError::Unavailable,
            AuthError::Forbidden,
            AuthError::MissingPermission {
                permission: Permission::LedgerRead,
            },
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(AuthError::code).collect();
        assert_eq!(codes.len(), all.len());
        for error in &all {
            let message = error.to_string();
            assert_eq!(message, message.to_lowercase(), "{message}");
            assert!(!message.contains("pk_") && !message.contains("sk_") && !message.contains('$'));
        }
        assert_eq!(all[9].retry_after_secs(), Some(7));
        assert_eq!(AuthError::WrongSecret.retry_after_secs(), None);
        assert_eq!(all[12].to_string(), "missing permission ledger:read");
    }
}
