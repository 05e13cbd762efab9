//! People: JWT bearer tokens (SPEC §1).
//!
//! HS256 tokens are checked with a configured secret (`basketry token` mints
//! them with [`mint_hs256`]); RS256 and ES256 tokens with the keys of a JWKS
//! document (Cognito, Keycloak, Auth0) read from a JSON string, a file or a
//! URL. Only the algorithms configured are accepted: `alg: none`, HS384,
//! PS256 … are refused, and an RS256 token is never checked against the
//! HS256 secret (no key confusion). A token names its JWKS key by `kid`; an
//! unknown `kid` makes the verifier read the JWKS again, at most once per
//! [`JwtConfig::jwks_min_refresh_interval`]. The JWKS is also read again
//! every [`JwtConfig::jwks_refresh_interval`], so a key the identity
//! provider withdraws stops verifying without a restart. A JWKS download is
//! cut off as soon as it passes [`MAX_JWKS_BYTES`].
//!
//! Issuer and audiences, when configured, are checked on every token; a
//! token whose `email_verified` claim is present and false is refused.
//!
//! The person is the `email` claim, lower-cased; their groups come from
//! `groups` and `cognito:groups`. Expiry is checked against the `now` the
//! caller gives, with [`JwtConfig::leeway`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use basketry_domain::{Email, UserId};
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{b64url, AuthError};

/// The group of admins.
pub const ADMINS: &str = "Admins";
/// The group of auditors.
pub const AUDITORS: &str = "Auditors";
/// The group of executors.
pub const EXECUTORS: &str = "Executors";

/// Shortest HS256 secret accepted: 256 bits, as RFC 7518 §3.2 asks.
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// Longest token looked at; anything longer is malformed.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest JWKS document read; a download stops as soon as it passes this.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// An authenticated person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// UUIDv5 of the e-mail ([`UserId::from_email`]).
    pub user_id: UserId,
    /// The `email` claim, lower-cased.
    pub email: Email,
    /// The token's groups (`groups` and `cognito:groups` together).
    pub groups: BTreeSet<String>,
}

impl Person {
    /// A person with this e-mail and these groups.
    pub fn new(email: Email, groups: BTreeSet<String>) -> Self {
        Self {
            user_id: UserId::from_email(&email),
            email,
            groups,
        }
    }

    /// In the `Admins` group.
    pub fn is_admin(&self) -> bool {
        self.groups.contains(ADMINS)
    }

    /// In the `Auditors` group.
    pub fn is_auditor(&self) -> bool {
        self.groups.contains(AUDITORS)
    }

    /// In the `Executors` group, or an admin.
    pub fn is_executor(&self) -> bool {
        self.groups.contains(EXECUTORS) || self.is_admin()
    }
}

/// Where a JWKS document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// The document itself (read once; never refreshed).
    Json(String),
    /// A file, read again when a token names an unknown `kid`.
    File(PathBuf),
    /// An `https://` (or, for a local identity provider, `http://`) URL,
    /// fetched again when a token names an unknown `kid`.
    Url(String),
}

/// How tokens are verified.
#[derive(Clone)]
pub struct JwtConfig {
    /// The HS256 secret (at least 32 bytes); `None` refuses HS256 tokens.
    pub hs256_secret: Option<Vec<u8>>,
    /// The JWKS for RS256/ES256; `None` refuses RS256/ES256 tokens.
    pub jwks: Option<JwksSource>,
    /// When set, the `iss` claim must be present and equal to it.
    pub issuer: Option<String>,
    /// The accepted audiences: when not empty, the `aud` claim (a string
    /// or an array) must be present and name one of them; when empty, `aud`
    /// is not checked.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    pub leeway: Duration,
    /// At most one JWKS read per this interval (default 60 s; the read at
    /// start-up counts), so tokens with made-up `kid`s cannot hammer the
    /// identity provider.
    pub jwks_min_refresh_interval: Duration,
    /// Time limit of one JWKS fetch over HTTP (default 5 s).
    pub jwks_fetch_timeout: Duration,
    /// How often a JWKS file or URL is read again in the background
    /// (default 10 minutes; `None`: only for unknown `kid`s). A key
    /// withdrawn from the document stops verifying after the next read.
    pub jwks_refresh_interval: Option<Duration>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks: None,
            issuer: None,
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            jwks_min_refresh_interval: Duration::from_secs(60),
            jwks_fetch_timeout: Duration::from_secs(5),
            jwks_refresh_interval: Some(Duration::from_secs(600)),
        }
    }
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("jwks_min_refresh_interval", &self.jwks_min_refresh_interval)
            .field("jwks_fetch_timeout", &self.jwks_fetch_timeout)
            .field("jwks_refresh_interval", &self.jwks_refresh_interval)
            .finish()
    }
}

/// Why a [`JwtVerifier`] could not be set up (a configuration problem, at
/// start-up).
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// Neither an HS256 secret nor a JWKS.
    #[error("no jwt verification configured: give an hs256 secret or a jwks")]
    NothingConfigured,
    /// The HS256 secret is shorter than 32 bytes.
    #[error("the hs256 secret must be at least 32 bytes")]
    WeakSecret,
    /// The JWKS could not be read (file or HTTP).
    #[error("jwks could not be read: {0}")]
    Read(String),
    /// The JWKS document is larger than [`MAX_JWKS_BYTES`] (its download
    /// was stopped there).
    #[error("jwks document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The JWKS is not a JSON `{"keys": [...]}` document.
    #[error("jwks is not valid: {0}")]
    Invalid(String),
    /// The JWKS has no RS256 or ES256 (P-256) signing key.
    #[error("jwks has no usable rs256 or es256 signing key")]
    NoUsableKey,
}

/// One verification key of a JWKS.
#[derive(Clone)]
struct JwksKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The usable keys of a JWKS document.
#[derive(Clone, Default)]
struct KeySet {
    by_kid: HashMap<String, JwksKey>,
    without_kid: Vec<JwksKey>,
}

impl KeySet {
    fn is_empty(&self) -> bool {
        self.by_kid.is_empty() && self.without_kid.is_empty()
    }

    /// The key a token with `alg` and `kid` is to be checked with. Without
    /// a `kid`, only a JWKS with exactly one key of that algorithm answers.
    fn find(&self, algorithm: Algorithm, kid: Option<&str>) -> Lookup {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(k) if k.algorithm == algorithm => Lookup::Found(k.key.clone()),
                Some(_) => Lookup::WrongAlgorithm,
                None => Lookup::Unknown,
            },
            None => {
                let mut all = self
                    .by_kid
                    .values()
                    .chain(&self.without_kid)
                    .filter(|k| k.algorithm == algorithm);
                match (all.next(), all.next()) {
                    (Some(only), None) => Lookup::Found(only.key.clone()),
                    _ => Lookup::Unknown,
                }
            }
        }
    }
}

enum Lookup {
    Found(DecodingKey),
    WrongAlgorithm,
    Unknown,
}

/// The algorithm a JWK is for, when it is one this verifier accepts.
fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let p256 = matches!(
        &jwk.algorithm,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256
    );
    let rsa = matches!(&jwk.algorithm, AlgorithmParameters::RSA(_));
    match jwk.common.key_algorithm {
        Some(KeyAlgorithm::RS256) if rsa => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) if p256 => Some(Algorithm::ES256),
        Some(_) => None,
        None if rsa => Some(Algorithm::RS256),
        None if p256 => Some(Algorithm::ES256),
        None => None,
    }
}

/// Reads a JWKS document, keeping the RS256 and ES256 signing keys and
/// skipping the others (encryption keys, other algorithms, odd entries).
fn parse_jwks(json: &str) -> Result<KeySet, JwtSetupError> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let document: Document =
        serde_json::from_str(json).map_err(|e| JwtSetupError::Invalid(e.to_string()))?;
    let mut set = KeySet::default();
    for entry in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry) else {
            continue;
        };
        let Some(algorithm) = jwk_algorithm(&jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let entry = JwksKey { algorithm, key };
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, entry);
            }
            None => set.without_kid.push(entry),
        }
    }
    Ok(set)
}

/// A JWKS and how to read it again.
struct Jwks {
    source: JwksSource,
    client: Option<reqwest::Client>,
    keys: RwLock<KeySet>,
    /// When the last refresh was attempted; held across a refresh so
    /// concurrent unknown `kid`s wait for one fetch.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
}

impl Jwks {
    async fn read(
        source: &JwksSource,
        client: Option<&reqwest::Client>,
    ) -> Result<KeySet, JwtSetupError> {
        let text = match source {
            JwksSource::Json(json) => json.clone(),
            JwksSource::File(path) => {
                let path = path.clone();
                let body = tokio::task::spawn_blocking(move || {
                    use std::io::Read;
                    let mut body = Vec::new();
                    std::fs::File::open(path)?
                        .take(MAX_JWKS_BYTES as u64 + 1)
                        .read_to_end(&mut body)?;
                    Ok::<_, std::io::Error>(body)
                })
                .await
                .map_err(|e| JwtSetupError::Read(e.to_string()))?
                .map_err(|e| JwtSetupError::Read(e.to_string()))?;
                if body.len() > MAX_JWKS_BYTES {
                    return Err(JwtSetupError::TooLarge);
                }
                String::from_utf8(body).map_err(|_| JwtSetupError::Invalid("not utf-8".into()))?
            }
            JwksSource::Url(url) => {
                let client = client.ok_or_else(|| JwtSetupError::Read("no http client".into()))?;
                let mut response = client
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| JwtSetupError::Read(e.without_url().to_string()))?;
                if response
                    .content_length()
                    .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
                {
                    return Err(JwtSetupError::TooLarge);
                }
                // Read chunk by chunk and stop past the cap, so a huge or
                // endless body costs at most MAX_JWKS_BYTES of memory.
                let mut body = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .map_err(|e| JwtSetupError::Read(e.without_url().to_string()))?
                {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(JwtSetupError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                String::from_utf8(body).map_err(|_| JwtSetupError::Invalid("not utf-8".into()))?
            }
        };
        if text.len() > MAX_JWKS_BYTES {
            return Err(JwtSetupError::TooLarge);
        }
        parse_jwks(&text)
    }

    /// Reads the document again and replaces the keys with what it holds
    /// now (keys withdrawn from it are gone). A failed read keeps the keys
    /// known so far. The caller holds `last_refresh`.
    async fn reload(&self, why: &'static str) -> Result<(), JwtSetupError> {
        match Self::read(&self.source, self.client.as_ref()).await {
            Ok(fresh) => {
                if fresh.is_empty() {
                    tracing::warn!(
                        why,
                        "jwks read again has no usable key: every key is withdrawn"
                    );
                } else {
                    tracing::info!(why, "jwks read again");
                }
                match self.keys.write() {
                    Ok(mut keys) => *keys = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(why, error = %e, "reading the jwks again failed; keeping the keys known so far");
                Err(e)
            }
        }
    }

    /// The periodic read.
    async fn refresh(&self) {
        let mut last = self.last_refresh.lock().await;
        *last = Some(Instant::now());
        let _ = self.reload("the periodic refresh").await;
    }

    fn find(&self, algorithm: Algorithm, kid: Option<&str>) -> Lookup {
        match self.keys.read() {
            Ok(keys) => keys.find(algorithm, kid),
            Err(poisoned) => poisoned.into_inner().find(algorithm, kid),
        }
    }

    /// The key for a token, reading the JWKS again (at most once per
    /// interval) when the `kid` is unknown.
    async fn key_for(
        &self,
        algorithm: Algorithm,
        kid: Option<&str>,
    ) -> Result<DecodingKey, AuthError> {
        match self.find(algorithm, kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::WrongAlgorithm => return Err(AuthError::InvalidToken),
            Lookup::Unknown => {}
        }
        if matches!(self.source, JwksSource::Json(_)) {
            return Err(AuthError::UnknownKey);
        }
        let mut last = self.last_refresh.lock().await;
        // Someone else may have refreshed while this one waited.
        match self.find(algorithm, kid) {
            Lookup::Found(key) => return Ok(key),
            Lookup::WrongAlgorithm => return Err(AuthError::InvalidToken),
            Lookup::Unknown => {}
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
            return Err(AuthError::UnknownKey);
        }
        *last = Some(Instant::now());
        if self.reload("an unknown key id").await.is_err() {
            return Err(AuthError::Unavailable);
        }
        match self.find(algorithm, kid) {
            Lookup::Found(key) => Ok(key),
            Lookup::WrongAlgorithm => Err(AuthError::InvalidToken),
            Lookup::Unknown => Err(AuthError::UnknownKey),
        }
    }
}

struct Inner {
    hs256: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: Option<String>,
    audiences: Vec<String>,
    leeway_secs: f64,
}

/// Verifies JWTs and turns them into [`Person`]s. Cheap to clone (shared
/// state behind an `Arc`).
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.inner.hs256.is_some())
            .field("jwks", &self.inner.jwks.as_ref().map(|j| &j.source))
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .finish()
    }
}

/// The part of a JOSE header looked at before choosing a key.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// Reads the header of a compact JWS without trusting it.
fn peek_header(token: &str) -> Result<RawHeader, AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let bytes = b64url::decode(header).ok_or(AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

fn map_jwt_error(error: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => AuthError::Malformed,
        _ => AuthError::InvalidToken,
    }
}

/// The strings of claim `name`, which must be an array of strings when
/// present.
fn string_array(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(AuthError::InvalidToken),
        Some(_) => Err(AuthError::InvalidToken),
    }
}

/// Reads the JWKS again every `every` for as long as the verifier lives
/// (the task holds it weakly and ends with it).
fn spawn_refresh(inner: &Arc<Inner>, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    let verifier = Arc::downgrade(inner);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = verifier.upgrade() else {
                break;
            };
            if let Some(jwks) = &inner.jwks {
                jwks.refresh().await;
            }
        }
    });
}

impl JwtVerifier {
    /// Sets a verifier up, reading the JWKS (file or URL) once now.
    pub async fn new(config: JwtConfig) -> Result<Self, JwtSetupError> {
        if config.hs256_secret.is_none() && config.jwks.is_none() {
            return Err(JwtSetupError::NothingConfigured);
        }
        let hs256 = match &config.hs256_secret {
            Some(secret) if secret.len() < MIN_HS256_SECRET_BYTES => {
                return Err(JwtSetupError::WeakSecret)
            }
            Some(secret) => Some(DecodingKey::from_secret(secret)),
            None => None,
        };
        let jwks = match config.jwks {
            None => None,
            Some(source) => {
                let client = match &source {
                    JwksSource::Url(url) => {
                        if !(url.starts_with("https://") || url.starts_with("http://")) {
                            return Err(JwtSetupError::Read(
                                "jwks url must start with https:// or http://".into(),
                            ));
                        }
                        Some(
                            reqwest::Client::builder()
                                .timeout(config.jwks_fetch_timeout)
                                .build()
                                .map_err(|e| JwtSetupError::Read(e.to_string()))?,
                        )
                    }
                    _ => None,
                };
                let keys = Jwks::read(&source, client.as_ref()).await?;
                if keys.is_empty() {
                    return Err(JwtSetupError::NoUsableKey);
                }
                Some(Jwks {
                    source,
                    client,
                    keys: RwLock::new(keys),
                    last_refresh: tokio::sync::Mutex::new(Some(Instant::now())),
                    min_refresh_interval: config.jwks_min_refresh_interval,
                })
            }
        };
        let inner = Arc::new(Inner {
            hs256,
            jwks,
            issuer: config.issuer,
            audiences: config.audiences,
            leeway_secs: config.leeway.as_secs_f64(),
        });
        let rereadable = inner
            .jwks
            .as_ref()
            .is_some_and(|j| !matches!(j.source, JwksSource::Json(_)));
        if let (true, Some(every)) = (rereadable, config.jwks_refresh_interval) {
            spawn_refresh(&inner, every);
        }
        Ok(Self { inner })
    }

    /// A verifier of HS256 tokens only, with the default leeway.
    pub fn hs256(secret: &[u8]) -> Result<Self, JwtSetupError> {
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(JwtSetupError::WeakSecret);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                hs256: Some(DecodingKey::from_secret(secret)),
                jwks: None,
                issuer: None,
                audiences: Vec::new(),
                leeway_secs: JwtConfig::default().leeway.as_secs_f64(),
            }),
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        // Time is checked against the caller's `now` below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.inner.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if self.inner.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.inner.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Verifies `token` at `now` and gives the person it names.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Person, AuthError> {
        let header = peek_header(token)?;
        if header.crit.is_some() {
            // No header extension is understood, so none may be critical
            // (RFC 7515 §4.1.11).
            return Err(AuthError::InvalidToken);
        }
        let (algorithm, key) = match header.alg.as_str() {
            "HS256" => match &self.inner.hs256 {
                Some(key) => (Algorithm::HS256, key.clone()),
                None => return Err(AuthError::InvalidToken),
            },
            "RS256" | "ES256" => {
                let Some(jwks) = &self.inner.jwks else {
                    return Err(AuthError::InvalidToken);
                };
                let algorithm = if header.alg == "RS256" {
                    Algorithm::RS256
                } else {
                    Algorithm::ES256
                };
                let key = jwks.key_for(algorithm, header.kid.as_deref()).await?;
                (algorithm, key)
            }
            // `none`, HS384, PS256, EdDSA, …: not configured.
            _ => return Err(AuthError::InvalidToken),
        };
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation(algorithm))
                .map_err(map_jwt_error)?;
        self.person(&data.claims, now)
    }

    /// Checks the time claims and reads the person out of verified claims.
    fn person(&self, claims: &Map<String, Value>, now: DateTime<Utc>) -> Result<Person, AuthError> {
        let now = now.timestamp_millis() as f64 / 1000.0;
        let leeway = self.inner.leeway_secs;
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(AuthError::InvalidToken)?;
        if exp + leeway < now {
            return Err(AuthError::Expired);
        }
        match claims.get("nbf") {
            None => {}
            Some(nbf) => match nbf.as_f64() {
                Some(nbf) if nbf - leeway <= now => {}
                _ => return Err(AuthError::InvalidToken),
            },
        }
        // A person is their e-mail, so an address the identity provider says
        // it has not verified cannot stand for anyone.
        if matches!(claims.get("email_verified"), Some(Value::Bool(false)))
            || claims.get("email_verified").and_then(Value::as_str) == Some("false")
        {
            return Err(AuthError::InvalidToken);
        }
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .and_then(|e| Email::parse(e).ok())
            .ok_or(AuthError::InvalidToken)?;
        let mut groups: BTreeSet<String> = string_array(claims, "groups")?.into_iter().collect();
        groups.extend(string_array(claims, "cognito:groups")?);
        Ok(Person::new(email, groups))
    }
}

/// Mints an HS256 token for `email` with `groups`, valid from `now` for
/// `ttl`: claims `sub` and `email` (the lower-cased address), `groups`,
/// `iat`, `exp`. For `basketry token` and tests.
///
/// Fails with [`AuthError::InvalidToken`] when `email` is not an e-mail
/// address or `ttl` is out of range, and [`AuthError::Unavailable`] if
/// signing fails.
pub fn mint_hs256(
    secret: &[u8],
    email: &str,
    groups: &[String],
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<String, AuthError> {
    mint_hs256_scoped(secret, email, groups, ttl, now, None, None)
}

/// [`mint_hs256`] with the `iss` and `aud` claims a verifier configured
/// with an issuer and audiences asks for.
pub fn mint_hs256_scoped(
    secret: &[u8],
    email: &str,
    groups: &[String],
    ttl: Duration,
    now: DateTime<Utc>,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, AuthError> {
    let email = Email::parse(email).map_err(|_| AuthError::InvalidToken)?;
    let ttl = i64::try_from(ttl.as_secs()).map_err(|_| AuthError::InvalidToken)?;
    let iat = now.timestamp();
    let exp = iat.checked_add(ttl).ok_or(AuthError::InvalidToken)?;
    let mut claims = serde_json::json!({
        "sub": email.as_str(),
        "email": email.as_str(),
        "groups": groups,
        "iat": iat,
        "exp": exp,
    });
    if let Some(issuer) = issuer {
        claims["iss"] = Value::from(issuer);
    }
    if let Some(audience) = audience {
        claims["aud"] = Value::from(audience);
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| {
        tracing::error!(error = %e, "minting a token failed");
        AuthError::Unavailable
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";
    const RSA_KEY_PEM: &str = include_str!("testdata/rsa-test-key.pem");
    const RSA_JWKS: &str = include_str!("testdata/rsa-test-jwks.json");
    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> DateTime<Utc> {
        "2026-03-01T10:00:00Z".parse().unwrap()
    }

    fn hs256() -> JwtVerifier {
        JwtVerifier::hs256(SECRET).unwrap()
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn claims(email: &str, exp: DateTime<Utc>) -> Value {
        json!({"email": email, "exp": exp.timestamp()})
    }

    /// A fresh ES256 key pair: its signing key and its public JWK.
    fn es256_key(kid: &str) -> (EncodingKey, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // Uncompressed point: 0x04 ‖ x ‖ y.
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64url::encode(&point[1..33]), "y": b64url::encode(&point[33..65]),
        });
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_KEY_PEM.as_bytes()).unwrap()
    }

    async fn jwks_verifier(source: JwksSource, refresh: Duration) -> JwtVerifier {
        JwtVerifier::new(JwtConfig {
            jwks: Some(source),
            jwks_min_refresh_interval: refresh,
            ..JwtConfig::default()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_valid_hs256_token_is_accepted() {
        let groups = vec!["Admins".to_string()];
        let token = mint_hs256(SECRET, " Alice@Example.COM ", &groups, HOUR, now()).unwrap();
        let person = hs256().verify(&token, now()).await.unwrap();
        assert_eq!(person.email.as_str(), "alice@example.com");
        assert_eq!(
            person.user_id.to_string(),
            "6a7d8f5d-807f-5d29-9a65-9eb7713f1da8"
        );
        assert_eq!(person.groups, BTreeSet::from(["Admins".to_string()]));
        assert!(person.is_admin() && person.is_executor() && !person.is_auditor());
    }

    #[tokio::test]
    async fn an_expired_token_is_refused_after_the_leeway() {
        let token = mint_hs256(SECRET, "a@example.com", &[], HOUR, now()).unwrap();
        let verifier = hs256();
        let at = |secs| now() + TimeDelta::seconds(secs);
        assert!(verifier.verify(&token, at(3600 + 29)).await.is_ok());
        assert_eq!(
            verifier.verify(&token, at(3600 + 31)).await,
            Err(AuthError::Expired)
        );
    }

    #[tokio::test]
    async fn an_alg_none_token_is_refused() {
        let header = b64url::encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64url::encode(
            json!({"email": "mallory@example.com", "groups": ["Admins"], "exp": 4_000_000_000u64})
                .to_string()
                .as_bytes(),
        );
        let verifier = hs256();
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2ln"),
        ] {
            assert_eq!(
                verifier.verify(&token, now()).await,
                Err(AuthError::InvalidToken)
            );
        }
    }

    #[tokio::test]
    async fn a_token_signed_with_another_secret_has_a_bad_signature() {
        let token = mint_hs256(
            b"another-secret-another-secret-another",
            "a@example.com",
            &[],
            HOUR,
            now(),
        )
        .unwrap();
        assert_eq!(
            hs256().verify(&token, now()).await,
            Err(AuthError::BadSignature)
        );
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused_as_malformed() {
        let verifier = hs256();
        // Correctly signed, but the payload is not JSON.
        let message = format!(
            "{}.{}",
            b64url::encode(br#"{"alg":"HS256"}"#),
            b64url::encode(b"not json")
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        for token in [
            String::new(),
            "abc".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            "!!!.e30.sig".into(),
            format!("{}.e30.sig", b64url::encode(b"not json")),
            format!("{message}.{signature}"),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                verifier.verify(&token, now()).await,
                Err(AuthError::Malformed),
                "{token:.40}"
            );
        }
    }

    #[tokio::test]
    async fn a_token_without_a_valid_email_or_exp_is_invalid() {
        let key = EncodingKey::from_secret(SECRET);
        let exp = (now() + TimeDelta::hours(1)).timestamp();
        let verifier = hs256();
        for body in [
            json!({"exp": exp}),
            json!({"email": "not-an-email", "exp": exp}),
            json!({"email": 42, "exp": exp}),
            json!({"email": "a@example.com"}),
            json!({"email": "a@example.com", "exp": "tomorrow"}),
            json!({"email": "a@example.com", "exp": exp, "groups": "Admins"}),
            json!({"email": "a@example.com", "exp": exp, "groups": [1]}),
            json!({"email": "a@example.com", "exp": exp, "email_verified": false}),
            json!({"email": "a@example.com", "exp": exp, "nbf": exp}),
        ] {
            let token = sign(Algorithm::HS256, None, &body, &key);
            assert_eq!(
                verifier.verify(&token, now()).await,
                Err(AuthError::InvalidToken),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn a_token_of_an_algorithm_not_configured_is_refused() {
        let body = claims("a@example.com", now() + TimeDelta::hours(1));
        let hs384 = sign(
            Algorithm::HS384,
            None,
            &body,
            &EncodingKey::from_secret(SECRET),
        );
        assert_eq!(
            hs256().verify(&hs384, now()).await,
            Err(AuthError::InvalidToken)
        );
        // RS256 without a JWKS, HS256 without a secret.
        let rs256 = sign(Algorithm::RS256, Some("rsa-test-1"), &body, &rsa_key());
        assert_eq!(
            hs256().verify(&rs256, now()).await,
            Err(AuthError::InvalidToken)
        );
        let jwks_only = jwks_verifier(JwksSource::Json(RSA_JWKS.into()), HOUR).await;
        let hs = mint_hs256(SECRET, "a@example.com", &[], HOUR, now()).unwrap();
        assert_eq!(
            jwks_only.verify(&hs, now()).await,
            Err(AuthError::InvalidToken)
        );
    }

    #[tokio::test]
    async fn groups_come_from_cognito_groups_too() {
        let key = EncodingKey::from_secret(SECRET);
        let body = json!({
            "email": "audit@example.com",
            "exp": (now() + TimeDelta::hours(1)).timestamp(),
            "cognito:groups": ["Auditors", "Executors"],
            "groups": ["Readers"],
        });
        let token = sign(Algorithm::HS256, None, &body, &key);
        let person = hs256().verify(&token, now()).await.unwrap();
        assert_eq!(
            person.groups.iter().map(String::as_str).collect::<Vec<_>>(),
            ["Auditors", "Executors", "Readers"]
        );
        assert!(person.is_auditor() && person.is_executor() && !person.is_admin());
    }

    #[tokio::test]
    async fn an_rs256_token_verifies_against_a_jwks_document() {
        let verifier = jwks_verifier(JwksSource::Json(RSA_JWKS.into()), HOUR).await;
        let body = claims("Bob@Zebu.in", now() + TimeDelta::minutes(5));
        let token = sign(Algorithm::RS256, Some("rsa-test-1"), &body, &rsa_key());
        let person = verifier.verify(&token, now()).await.unwrap();
        assert_eq!(person.email.as_str(), "bob@zebu.in");
        // A tampered payload no longer matches the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = b64url::encode(
            claims("eve@zebu.in", now() + TimeDelta::minutes(5))
                .to_string()
                .as_bytes(),
        );
        parts[1] = &forged;
        assert_eq!(
            verifier.verify(&parts.join("."), now()).await,
            Err(AuthError::BadSignature)
        );
    }

    #[tokio::test]
    async fn an_es256_token_verifies_against_a_jwks_document() {
        let (key, jwk) = es256_key("ec-1");
        let (_, other) = es256_key("ec-2");
        let jwks = json!({"keys": [jwk, other]}).to_string();
        let verifier = jwks_verifier(JwksSource::Json(jwks), HOUR).await;
        let body = claims("carol@example.com", now() + TimeDelta::minutes(5));
        let token = sign(Algorithm::ES256, Some("ec-1"), &body, &key);
        assert_eq!(
            verifier.verify(&token, now()).await.unwrap().email.as_str(),
            "carol@example.com"
        );
        // Signed by ec-1's key but naming ec-2.
        let wrong = sign(Algorithm::ES256, Some("ec-2"), &body, &key);
        assert_eq!(
            verifier.verify(&wrong, now()).await,
            Err(AuthError::BadSignature)
        );
    }

    #[tokio::test]
    async fn a_token_naming_an_unknown_kid_is_refused() {
        let verifier = jwks_verifier(JwksSource::Json(RSA_JWKS.into()), HOUR).await;
        let body = claims("a@example.com", now() + TimeDelta::minutes(5));
        let token = sign(Algorithm::RS256, Some("nobody"), &body, &rsa_key());
        assert_eq!(
            verifier.verify(&token, now()).await,
            Err(AuthError::UnknownKey)
        );
        // A known kid with another algorithm than the key's.
        let (ec, _) = es256_key("rsa-test-1");
        let token = sign(Algorithm::ES256, Some("rsa-test-1"), &body, &ec);
        assert_eq!(
            verifier.verify(&token, now()).await,
            Err(AuthError::InvalidToken)
        );
    }

    #[tokio::test]
    async fn a_token_without_kid_uses_the_only_key_of_its_algorithm() {
        let verifier = jwks_verifier(JwksSource::Json(RSA_JWKS.into()), HOUR).await;
        let body = claims("a@example.com", now() + TimeDelta::minutes(5));
        let token = sign(Algorithm::RS256, None, &body, &rsa_key());
        assert!(verifier.verify(&token, now()).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_kid_rereads_a_jwks_file_at_most_once_per_interval() {
        let (key_a, jwk_a) = es256_key("a");
        let (key_b, jwk_b) = es256_key("b");
        let (key_c, jwk_c) = es256_key("c");
        let path = std::env::temp_dir().join(format!(
            "basketry-auth-jwks-refresh-{}.json",
            std::process::id()
        ));
        let write = |keys: Value| {
            std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
        };
        write(json!([jwk_a]));
        let body = claims("a@example.com", now() + TimeDelta::minutes(5));
        let token = |key: &EncodingKey, kid| sign(Algorithm::ES256, Some(kid), &body, key);

        // Interval zero: a key published after start-up is picked up.
        let eager = jwks_verifier(JwksSource::File(path.clone()), Duration::ZERO).await;
        // Interval one hour: the read at start-up counts, so no re-read yet.
        let lazy = jwks_verifier(JwksSource::File(path.clone()), HOUR).await;
        assert!(eager.verify(&token(&key_a, "a"), now()).await.is_ok());
        write(json!([jwk_a, jwk_b]));
        assert!(eager.verify(&token(&key_b, "b"), now()).await.is_ok());
        assert_eq!(
            lazy.verify(&token(&key_b, "b"), now()).await,
            Err(AuthError::UnknownKey)
        );
        // A key withdrawn from the document is gone after the next re-read.
        write(json!([jwk_c]));
        assert!(eager.verify(&token(&key_c, "c"), now()).await.is_ok());
        assert_eq!(
            eager.verify(&token(&key_a, "a"), now()).await,
            Err(AuthError::UnknownKey)
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn a_jwks_is_fetched_over_http_and_refetched_for_an_unknown_kid() {
        let (key_a, jwk_a) = es256_key("a");
        let (key_b, jwk_b) = es256_key("b");
        let server = JwksServer::start(json!({ "keys": [jwk_a] })).await;
        let verifier = jwks_verifier(JwksSource::Url(server.url()), Duration::ZERO).await;
        let body = claims("a@example.com", now() + TimeDelta::minutes(5));
        let a = sign(Algorithm::ES256, Some("a"), &body, &key_a);
        let b = sign(Algorithm::ES256, Some("b"), &body, &key_b);
        assert!(verifier.verify(&a, now()).await.is_ok());
        assert_eq!(server.hits(), 1);
        server.set(json!({ "keys": [jwk_a, jwk_b] }));
        assert!(verifier.verify(&b, now()).await.is_ok());
        assert!(verifier.verify(&a, now()).await.is_ok());
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_jwks_url_fails_closed() {
        let (key, jwk) = es256_key("a");
        let server = JwksServer::start(json!({ "keys": [jwk] })).await;
        let verifier = jwks_verifier(JwksSource::Url(server.url()), Duration::ZERO).await;
        server.stop().await;
        let body = claims("a@example.com", now() + TimeDelta::minutes(5));
        let unknown = sign(Algorithm::ES256, Some("zz"), &body, &key);
        assert_eq!(
            verifier.verify(&unknown, now()).await,
            Err(AuthError::Unavailable)
        );
        // Keys already known still verify.
        let known = sign(Algorithm::ES256, Some("a"), &body, &key);
        assert!(verifier.verify(&known, now()).await.is_ok());
    }

    #[tokio::test]
    async fn issuer_and_audience_are_checked_when_configured() {
        let verifier = JwtVerifier::new(JwtConfig {
            hs256_secret: Some(SECRET.to_vec()),
            issuer: Some("https://idp.example.com".into()),
            audiences: vec!["basketry".into(), "basketry-admin".into()],
            ..JwtConfig::default()
        })
        .await
        .unwrap();
        let key = EncodingKey::from_secret(SECRET);
        let exp = (now() + TimeDelta::hours(1)).timestamp();
        let good = json!({"email": "a@example.com", "exp": exp,
            "iss": "https://idp.example.com", "aud": ["other", "basketry"]});
        assert!(verifier
            .verify(&sign(Algorithm::HS256, None, &good, &key), now())
            .await
            .is_ok());
        let mut single = good.clone();
        single["aud"] = json!("basketry-admin");
        assert!(verifier
            .verify(&sign(Algorithm::HS256, None, &single, &key), now())
            .await
            .is_ok());
        for (claim, value) in [
            ("iss", json!("https://evil.example.com")),
            ("iss", Value::Null),
            ("aud", json!("other")),
            ("aud", json!(["other", "more"])),
            ("aud", Value::Null),
        ] {
            let mut body = good.clone();
            match value {
                Value::Null => {
                    body.as_object_mut().unwrap().remove(claim);
                }
                v => body[claim] = v,
            }
            assert_eq!(
                verifier
                    .verify(&sign(Algorithm::HS256, None, &body, &key), now())
                    .await,
                Err(AuthError::InvalidToken),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn setup_refuses_weak_secrets_and_empty_configurations() {
        assert!(matches!(
            JwtVerifier::hs256(b"short"),
            Err(JwtSetupError::WeakSecret)
        ));
        assert!(matches!(
            JwtVerifier::new(JwtConfig::default()).await,
            Err(JwtSetupError::NothingConfigured)
        ));
        let only_encryption = json!({"keys": [{"kty": "RSA", "use": "enc", "kid": "x",
            "n": "AQAB", "e": "AQAB"}]});
        assert!(matches!(
            JwtVerifier::new(JwtConfig {
                jwks: Some(JwksSource::Json(only_encryption.to_string())),
                ..JwtConfig::default()
            })
            .await,
            Err(JwtSetupError::NoUsableKey)
        ));
        let debug = format!(
            "{:?}",
            JwtConfig {
                hs256_secret: Some(SECRET.to_vec()),
                ..JwtConfig::default()
            }
        );
        assert!(debug.contains("[redacted]") && !debug.contains("0123456789abcdef"));
    }

    // ------------------------------------------------------------ helpers

    /// A one-route HTTP server answering every request with a JWKS that the
    /// test can change, counting requests.
    struct JwksServer {
        port: u16,
        body: Arc<std::sync::Mutex<String>>,
        hits: Arc<std::sync::atomic::AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl JwksServer {
        async fn start(jwks: Value) -> Self {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let body = Arc::new(std::sync::Mutex::new(jwks.to_string()));
            let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (b, h) = (Arc::clone(&body), Arc::clone(&hits));
            let task = tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let mut request = vec![0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = b.lock().unwrap().clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                }
            });
            Self {
                port,
                body,
                hits,
                task,
            }
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}/.well-known/jwks.json", self.port)
        }

        fn set(&self, jwks: Value) {
            *self.body.lock().unwrap() = jwks.to_string();
        }

        fn hits(&self) -> usize {
            self.hits.load(std::sync::atomic::Ordering::SeqCst)
        }

        async fn stop(self) {
            self.task.abort();
            // Dropping the task drops the listener: connections are refused.
            let _ = self.task.await;
        }
    }
}
