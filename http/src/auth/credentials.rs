//! Partner credentials: generating keys and secrets, hashing secrets with
//! argon2id and checking a presented secret against a stored hash.
//!
//! A key (`pk_<partner>_live_<base62>`) names the credential and is not
//! secret; a secret (`sk_<partner>_live_<base62>`) carries 256 random bits,
//! is shown once and is stored only as an argon2id PHC hash (SPEC §1).

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use basketry_domain::partner::{ApiKeyToken, SecretHash};
use basketry_domain::PartnerId;
use rand::rngs::OsRng;
use rand::RngCore;

use super::AuthError;

/// argon2id memory cost in KiB: 19 MiB, the OWASP minimum.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// argon2id passes over memory.
pub const ARGON2_ITERATIONS: u32 = 2;
/// argon2id lanes.
pub const ARGON2_PARALLELISM: u32 = 1;

/// Random bytes in a key's random part.
const KEY_RANDOM_BYTES: usize = 24;
/// Base62 digits that hold 24 bytes: ⌈192 / log2 62⌉.
const KEY_RANDOM_CHARS: usize = 33;
/// Random bytes in a secret: 256 bits.
const SECRET_RANDOM_BYTES: usize = 32;
/// Base62 digits that hold 32 bytes: ⌈256 / log2 62⌉.
const SECRET_RANDOM_CHARS: usize = 43;
/// Bytes of salt per hash (the PHC recommendation is at least 16).
const SALT_BYTES: usize = 16;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A plaintext partner secret, as generated (to be shown once) or as
/// presented. `Debug` and `Display` print `[redacted]`, so it cannot leak
/// into a log line by accident; [`PlainSecret::expose`] reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainSecret(String);

impl PlainSecret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself, for the one response that shows it or for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainSecret([redacted])")
    }
}

impl fmt::Display for PlainSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `bytes` as a big-endian number in base62, left-padded with `0` to
/// `width` digits (so every value of a given size has the same length).
fn base62(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(width);
    while number.iter().any(|&b| b != 0) {
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            // acc < 62 · 256, so the quotient fits a byte.
            *byte = (acc / 62) as u8;
            remainder = acc % 62;
        }
        digits.push(BASE62[remainder as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

/// `n` bytes from the operating system's CSPRNG.
///
/// # Panics
/// When the operating system cannot give randomness, which leaves nothing
/// sensible to do.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A new key for `partner_id`: `pk_<partner in lower case>_live_<base62 of
/// 24 random bytes>` (33 base62 digits).
pub fn generate_api_key(partner_id: &PartnerId) -> ApiKeyToken {
    let random = base62(&random_bytes::<KEY_RANDOM_BYTES>(), KEY_RANDOM_CHARS);
    let key = format!("pk_{}_live_{random}", partner_id.key_segment());
    // A partner id is 2–32 of [A-Z0-9_] starting with a letter, and the
    // random part is 33 base62 digits: exactly the shape ApiKeyToken checks.
    ApiKeyToken::parse(&key).expect("a generated key has the ApiKeyToken shape")
}

/// A new secret for `partner_id`: `sk_<partner in lower case>_live_<base62
/// of 32 random bytes>` (256 bits of entropy in 43 base62 digits).
pub fn generate_secret(partner_id: &PartnerId) -> PlainSecret {
    let random = base62(&random_bytes::<SECRET_RANDOM_BYTES>(), SECRET_RANDOM_CHARS);
    PlainSecret(format!("sk_{}_live_{random}", partner_id.key_segment()))
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .expect("the OWASP argon2id parameters are within argon2's bounds");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `secret` with argon2id (m=19456 KiB, t=2, p=1) and a random salt,
/// as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`). CPU-heavy (tens of
/// milliseconds): call it from a blocking thread in async code.
///
/// Fails with [`AuthError::Unavailable`] only if hashing itself fails.
pub fn hash_secret(secret: &PlainSecret) -> Result<SecretHash, AuthError> {
    let salt = SaltString::encode_b64(&random_bytes::<SALT_BYTES>()).map_err(|e| {
        tracing::error!(error = %e, "argon2 salt could not be encoded");
        AuthError::Unavailable
    })?;
    let phc = hasher()
        .hash_password(secret.expose().as_bytes(), &salt)
        .map_err(|e| {
            tracing::error!(error = %e, "argon2 hashing failed");
            AuthError::Unavailable
        })?;
    SecretHash::parse(&phc.to_string()).map_err(|_| {
        tracing::error!("argon2 produced a hash the domain does not accept");
        AuthError::Unavailable
    })
}

/// [`hash_secret`] on a blocking thread, for async handlers (issuing and
/// rotating keys) that must not stall the runtime for the tens of
/// milliseconds argon2 takes.
pub async fn hash_secret_async(secret: &PlainSecret) -> Result<SecretHash, AuthError> {
    let secret = secret.clone();
    tokio::task::spawn_blocking(move || hash_secret(&secret))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "argon2 hashing task failed");
            AuthError::Unavailable
        })?
}

/// Whether `secret` matches the argon2id PHC hash `phc`, with the
/// parameters recorded in the hash. The comparison is argon2's own,
/// constant-time. A hash that does not parse, or is not argon2id, never
/// matches. CPU-heavy: call it from a blocking thread in async code.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    Argon2::default()
        .verify_password(secret.as_bytes(), &hash)
        .is_ok()
}

/// The partner a presented key claims to belong to: the part between `pk_`
/// and the last `_live_`, upper-cased (`pk_angel_one_live_x` → `ANGEL_ONE`).
/// `None` when the key does not have that shape or the part is not a valid
/// partner id. Whether the key exists is for the partner's stream to say.
pub fn partner_id_of_key(key: &str) -> Option<PartnerId> {
    let (segment, random) = key.strip_prefix("pk_")?.rsplit_once("_live_")?;
    if random.is_empty() || segment.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    PartnerId::parse(&segment.to_ascii_uppercase()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zebu() -> PartnerId {
        PartnerId::parse("ZEBU").unwrap()
    }

    fn random_part<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.strip_prefix(prefix).unwrap()
    }

    #[test]
    fn a_generated_secret_carries_256_random_bits_in_base62() {
        let secret = generate_secret(&zebu());
        let random = random_part(secret.expose(), "sk_zebu_live_");
        assert_eq!(random.len(), 43);
        assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()));
        // 43 base62 digits hold 256.03 bits, so every 32-byte value fits and
        // no information is lost; 42 digits would not be enough.
        assert!(43.0 * 62f64.log2() >= 256.0);
        assert!(42.0 * 62f64.log2() < 256.0);
        assert_eq!(base62(&[0xff; 32], 43).len(), 43);
        assert_ne!(base62(&[0xff; 32], 43), "0".repeat(43));
        assert_ne!(generate_secret(&zebu()), secret);
    }

    #[test]
    fn a_generated_key_has_the_partner_and_24_random_bytes() {
        let partner = PartnerId::parse("ANGEL_ONE").unwrap();
        let key = generate_api_key(&partner);
        let random = random_part(key.as_str(), "pk_angel_one_live_");
        assert_eq!(random.len(), 33);
        assert!(random.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(partner_id_of_key(key.as_str()), Some(partner));
        assert_ne!(generate_api_key(&zebu()), generate_api_key(&zebu()));
    }

    #[test]
    fn base62_is_a_big_endian_number_padded_to_its_width() {
        assert_eq!(base62(&[0, 0], 3), "000");
        assert_eq!(base62(&[0, 61], 3), "00z");
        assert_eq!(base62(&[0, 62], 3), "010");
        assert_eq!(base62(&[1, 0], 3), "048"); // 256 = 4·62 + 8
        assert_eq!(base62(&[0xff; 24], 33).len(), 33);
    }

    #[test]
    fn a_plain_secret_never_prints_itself() {
        let secret = generate_secret(&zebu());
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "PlainSecret([redacted])");
        assert!(secret.expose().starts_with("sk_zebu_live_"));
    }

    #[test]
    fn a_hash_is_argon2id_with_the_owasp_parameters_and_verifies() {
        let secret = generate_secret(&zebu());
        let hash = hash_secret(&secret).unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_secret(secret.expose(), hash.as_str()));
        // A fresh salt every time.
        assert_ne!(hash_secret(&secret).unwrap(), hash);
    }

    #[tokio::test]
    async fn hashing_off_the_runtime_gives_the_same_kind_of_hash() {
        let secret = generate_secret(&zebu());
        let hash = hash_secret_async(&secret).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_secret(secret.expose(), hash.as_str()));
    }

    #[test]
    fn a_wrong_secret_or_a_foreign_hash_does_not_verify() {
        let secret = generate_secret(&zebu());
        let hash = hash_secret(&secret).unwrap();
        let other = generate_secret(&zebu());
        assert!(!verify_secret(other.expose(), hash.as_str()));
        assert!(!verify_secret("", hash.as_str()));
        assert!(!verify_secret(secret.expose(), "not a phc string"));
        let argon2i = hash.as_str().replacen("$argon2id$", "$argon2i$", 1);
        assert!(!verify_secret(secret.expose(), &argon2i));
    }

    #[test]
    fn the_partner_of_a_key_is_the_part_before_the_last_live() {
        let id = |s: &str| PartnerId::parse(s).ok();
        assert_eq!(partner_id_of_key("pk_angel_one_live_xxx"), id("ANGEL_ONE"));
        assert_eq!(partner_id_of_key("pk_zebu_live_abc"), id("ZEBU"));
        assert_eq!(partner_id_of_key("pk_x_live_y_live_abc"), id("X_LIVE_Y"));
        for bad in [
            "",
            "pk_zebu_abc",
            "sk_zebu_live_abc",
            "pk__live_abc",
            "pk_zebu_live_",
            "pk_ZEBU_live_abc",
            "pk_z_live_abc",
            "pk_1zebu_live_abc",
            "pk_ze-bu_live_abc",
            "eyJhbGciOiJIUzI1NiJ9.e30.sig",
        ] {
            assert_eq!(partner_id_of_key(bad), None, "{bad}");
        }
    }
}
