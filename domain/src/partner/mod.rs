//! The partner aggregate (stream `partner-{PARTNER_ID}`): a broker or advisor
//! integrating through the Partner API, its configuration (revenue share,
//! permissions, rate limits, branding) and its API keys.
//!
//! Every command is for admins only (`Forbidden` otherwise). The domain
//! never sees a plaintext secret: keys (`pk_…`) are generated and secrets
//! hashed with argon2id outside, and only the PHC hash is recorded. Rotation
//! may keep the previous hash valid for a grace period of at most 7 days;
//! [`PartnerState::verify_candidates`] gives the hashes valid at a moment.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::NonZeroU32;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::error::{item, path, required, Collector, DomainError, ValidationErrors, ValueError};
use crate::event::Aggregate;
use crate::ids::{ApiKeyId, PartnerId};
use crate::money::{RevenueShare, RevenueShareInput};
use crate::values::{BrokerId, PartnerName, Reason};

/// The stream of a partner: `partner-{PARTNER_ID}`.
pub fn stream_name(partner_id: &PartnerId) -> String {
    format!("{}-{partner_id}", PartnerAggregate::STREAM_PREFIX)
}

string_enum! {
    /// What kind of business a partner is.
    pub enum PartnerType {
        /// A stock broker (e.g. Zebu, Angel One).
        Broker = "BROKER",
        /// An investment advisor.
        Advisor = "ADVISOR",
        /// Anything else.
        Other = "OTHER",
    }
}

string_enum! {
    /// What a partner's keys may do.
    pub enum Permission {
        /// Browse templates.
        MarketplaceRead = "marketplace:read",
        /// Subscribe customers.
        MarketplaceSubscribe = "marketplace:subscribe",
        /// Pause, resume and cancel its subscriptions.
        SubscriptionsManage = "subscriptions:manage",
        /// Read its revenue-share ledger.
        LedgerRead = "ledger:read",
    }
}

/// `marketplace:read` and `marketplace:subscribe` (docs/reference/domain.md#partners).
pub fn default_permissions() -> BTreeSet<Permission> {
    BTreeSet::from([
        Permission::MarketplaceRead,
        Permission::MarketplaceSubscribe,
    ])
}

string_enum! {
    /// Whether a key authenticates: `ACTIVE ⇄ SUSPENDED`, either `→ REVOKED` (final).
    pub enum ApiKeyStatus {
        /// Authenticates.
        Active = "ACTIVE",
        /// Refused for now.
        Suspended = "SUSPENDED",
        /// Refused for good.
        Revoked = "REVOKED",
    }
}

string_enum! {
    /// A member of a partner's configuration, to say which ones an update changed.
    pub enum PartnerConfigField {
        /// `partner_name`.
        PartnerName = "partner_name",
        /// `revenue_share`.
        RevenueShare = "revenue_share",
        /// `permissions`.
        Permissions = "permissions",
        /// `rate_limits`.
        RateLimits = "rate_limits",
        /// `branding`.
        Branding = "branding",
    }
}

/// How many requests a partner may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimits {
    /// Per minute; at least 1.
    pub requests_per_minute: NonZeroU32,
    /// Per day; at least 1.
    pub requests_per_day: NonZeroU32,
}

impl Default for RateLimits {
    /// 100 a minute, 10 000 a day (docs/reference/domain.md#partners).
    fn default() -> Self {
        Self {
            requests_per_minute: NonZeroU32::new(100).expect("100 is not zero"),
            requests_per_day: NonZeroU32::new(10_000).expect("10 000 is not zero"),
        }
    }
}

/// Rate limits as a request gives them; a missing member takes its default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A partner's quotas; a missing member takes its default.")
)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsInput {
    /// At least 1; 100 when absent.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 4294967295_i64, example = 100)
    )]
    pub requests_per_minute: Option<i64>,
    /// At least 1; 10 000 when absent.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 4294967295_i64, example = 10000)
    )]
    pub requests_per_day: Option<i64>,
}

fn positive_limit(value: i64) -> Result<NonZeroU32, ValueError> {
    u32::try_from(value)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| ValueError::new("must be between 1 and 4294967295"))
}

impl RateLimits {
    /// Reads the limits found at `at`; the whole object is replaced, so a
    /// missing member takes its default, not its previous value.
    pub fn parse(input: &RateLimitsInput, at: &str) -> Result<Self, ValidationErrors> {
        let defaults = RateLimits::default();
        let mut c = Collector::default();
        let per_minute = c.check(
            path(at, "requests_per_minute"),
            input
                .requests_per_minute
                .map_or(Ok(defaults.requests_per_minute), positive_limit),
        );
        let per_day = c.check(
            path(at, "requests_per_day"),
            input
                .requests_per_day
                .map_or(Ok(defaults.requests_per_day), positive_limit),
        );
        match (per_minute, per_day) {
            (Some(requests_per_minute), Some(requests_per_day)) => c.finish(RateLimits {
                requests_per_minute,
                requests_per_day,
            }),
            _ => Err(c.into_errors()),
        }
    }
}

/// An `https` URL of at most 500 characters, for a partner's logo.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogoUrl(String);

impl LogoUrl {
    /// Checks the scheme, a host and the absence of characters that have no
    /// place in a URL (blanks, quotes, angle brackets).
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let text = text.trim();
        if text.chars().count() > 500 {
            return Err(ValueError::new("must be at most 500 characters"));
        }
        let host = text
            .strip_prefix("https://")
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
        let clean = text.chars().all(|c| {
            !c.is_whitespace() && !c.is_control() && !matches!(c, '"' | '<' | '>' | '\\' | '`')
        });
        match host {
            Some(host) if !host.is_empty() && clean => Ok(Self(text.to_owned())),
            _ => Err(ValueError::new("must be an https url")),
        }
    }
}

string_newtype!(LogoUrl);

/// How a partner's customers see the platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Branding {
    /// Whether the platform's own branding is shown.
    pub show_platform_branding: bool,
    /// The partner's logo, if any.
    pub custom_logo_url: Option<LogoUrl>,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            show_platform_branding: true,
            custom_logo_url: None,
        }
    }
}

/// Branding as a request gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "How a partner's customers see the platform.")
)]
#[serde(deny_unknown_fields)]
pub struct BrandingInput {
    /// `true` when absent.
    pub show_platform_branding: Option<bool>,
    /// An `https` URL of at most 500 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            format = "uri",
            max_length = 500,
            example = "https://zebu.example/logo.png"
        )
    )]
    pub custom_logo_url: Option<String>,
}

impl Branding {
    /// Reads the branding found at `at` (the whole object is replaced).
    pub fn parse(input: &BrandingInput, at: &str) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        let url = c.check(
            path(at, "custom_logo_url"),
            input
                .custom_logo_url
                .as_deref()
                .map(LogoUrl::parse)
                .transpose(),
        );
        match url {
            Some(custom_logo_url) => c.finish(Branding {
                show_platform_branding: input.show_platform_branding.unwrap_or(true),
                custom_logo_url,
            }),
            None => Err(c.into_errors()),
        }
    }
}

/// Reads a permission list found at `at`: known names, at least one;
/// duplicates collapse.
pub fn parse_permissions(
    names: &[String],
    at: &str,
) -> Result<BTreeSet<Permission>, ValidationErrors> {
    let mut c = Collector::default();
    if names.is_empty() {
        c.push(at, "must grant at least one permission");
    }
    let parsed: BTreeSet<Permission> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| c.check(item("", at, i), Permission::parse(name)))
        .collect();
    c.finish(parsed)
}

/// A partner's public key string, `pk_<partner in lower case>_live_<base62>`.
/// It identifies the key in requests; it is not a secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiKeyToken(String);

impl ApiKeyToken {
    /// Checks the shape; the random part is 16 to 64 base62 characters.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let invalid = || ValueError::new("must look like pk_<partner>_live_<base62>");
        let rest = text.strip_prefix("pk_").ok_or_else(invalid)?;
        let (segment, random) = rest.rsplit_once("_live_").ok_or_else(invalid)?;
        let segment_ok = (2..=32).contains(&segment.len())
            && segment.as_bytes()[0].is_ascii_lowercase()
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let random_ok =
            (16..=64).contains(&random.len()) && random.bytes().all(|b| b.is_ascii_alphanumeric());
        if segment_ok && random_ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid())
        }
    }

    /// The partner part, e.g. `zebu` in `pk_zebu_live_…`.
    pub fn partner_segment(&self) -> &str {
        self.0
            .strip_prefix("pk_")
            .and_then(|rest| rest.rsplit_once("_live_"))
            .map_or("", |(segment, _)| segment)
    }
}

string_newtype!(ApiKeyToken);

/// The argon2id PHC string of a partner secret
/// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), computed outside the domain.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretHash(String);

impl SecretHash {
    /// Checks the PHC shape and the algorithm; the strength of the parameters
    /// is the hashing side's business.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let invalid = || ValueError::new("must be an argon2id phc string");
        let parts: Vec<&str> = text.split('$').collect();
        let b64 = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        };
        let ok = text.len() <= 512
            && parts.len() == 6
            && parts[0].is_empty()
            && parts[1] == "argon2id"
            && parts[2].starts_with("v=")
            && ["m=", "t=", "p="]
                .iter()
                .all(|k| parts[3].split(',').any(|p| p.starts_with(k)))
            && b64(parts[4])
            && b64(parts[5]);
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(invalid())
        }
    }
}

string_newtype!(SecretHash);

impl fmt::Debug for SecretHash {
    /// A hash is not a secret, but it has no business in logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(argon2id…)")
    }
}

/// How long a rotated-out secret stays valid: 0 to 168 hours (7 days).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "i64", into = "u32")]
pub struct GracePeriodHours(u32);

impl GracePeriodHours {
    /// No grace: the old secret stops at once.
    pub const NONE: GracePeriodHours = GracePeriodHours(0);

    /// Validates 0..=168.
    pub fn new(hours: i64) -> Result<Self, ValueError> {
        u32::try_from(hours)
            .ok()
            .filter(|h| *h <= 168)
            .map(Self)
            .ok_or_else(|| ValueError::new("must be between 0 and 168 hours"))
    }

    /// The hours.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for GracePeriodHours {
    type Error = ValueError;

    fn try_from(hours: i64) -> Result<Self, Self::Error> {
        Self::new(hours)
    }
}

impl From<GracePeriodHours> for u32 {
    fn from(h: GracePeriodHours) -> u32 {
        h.0
    }
}

// ---------------------------------------------------------------- state

/// A secret replaced by a rotation that stays valid until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Its hash.
    pub hash: SecretHash,
    /// The moment it stops being accepted.
    pub valid_until: DateTime<Utc>,
}

/// One API key of a partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub api_key_id: ApiKeyId,
    /// The `pk_…` string clients send.
    pub key: ApiKeyToken,
    /// Whether it authenticates.
    pub status: ApiKeyStatus,
    /// The current secret's hash.
    pub secret_hash: SecretHash,
    /// The previous secret, during a rotation's grace period.
    pub previous_secret: Option<PreviousSecret>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it was last rotated.
    pub rotated_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A partner as its events built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// Its id.
    pub partner_id: PartnerId,
    /// Display name.
    pub partner_name: PartnerName,
    /// Kind of business.
    pub partner_type: PartnerType,
    /// Its broker, for auto-linked allocations.
    pub broker_id: BrokerId,
    /// The revenue share in force now.
    pub revenue_share: RevenueShare,
    /// What its keys may do.
    pub permissions: BTreeSet<Permission>,
    /// Its request limits.
    pub rate_limits: RateLimits,
    /// Its branding.
    pub branding: Branding,
    /// Its keys by id.
    pub keys: BTreeMap<ApiKeyId, ApiKey>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When its configuration or keys last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a partner's stream knows: nothing before `PartnerRegistered`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerState {
    /// The partner, once registered.
    pub partner: Option<Partner>,
}

impl PartnerState {
    /// A key by id.
    pub fn key(&self, api_key_id: &ApiKeyId) -> Option<&ApiKey> {
        self.partner.as_ref()?.keys.get(api_key_id)
    }

    /// A key by its `pk_…` string (a partner has a handful of keys, so a scan
    /// is cheaper than keeping an index in step).
    pub fn key_by_token(&self, key: &str) -> Option<&ApiKey> {
        self.partner
            .as_ref()?
            .keys
            .values()
            .find(|k| k.key.as_str() == key)
    }

    /// A key's status.
    pub fn key_status(&self, api_key_id: &ApiKeyId) -> Option<ApiKeyStatus> {
        self.key(api_key_id).map(|k| k.status)
    }

    /// The PHC hashes a secret may match at `now`: the current one and, within
    /// a rotation's grace period, the previous one. None for a key that is
    /// not ACTIVE, so a suspended or revoked key never authenticates.
    pub fn verify_candidates(&self, api_key_id: &ApiKeyId, now: DateTime<Utc>) -> Vec<&str> {
        let Some(key) = self
            .key(api_key_id)
            .filter(|k| k.status == ApiKeyStatus::Active)
        else {
            return Vec::new();
        };
        let mut hashes = vec![key.secret_hash.as_str()];
        if let Some(previous) = key.previous_secret.as_ref().filter(|p| now < p.valid_until) {
            hashes.push(previous.hash.as_str());
        }
        hashes
    }

    /// The partner's permissions.
    pub fn permissions(&self) -> Option<&BTreeSet<Permission>> {
        self.partner.as_ref().map(|p| &p.permissions)
    }

    /// The partner's rate limits.
    pub fn rate_limits(&self) -> Option<RateLimits> {
        self.partner.as_ref().map(|p| p.rate_limits)
    }

    /// The revenue share in force.
    pub fn revenue_share(&self) -> Option<RevenueShare> {
        self.partner.as_ref().map(|p| p.revenue_share)
    }
}

// ---------------------------------------------------------------- commands

/// Registers a partner.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterPartner {
    /// Who asks (an admin).
    pub actor: Actor,
    /// The new partner's id.
    pub partner_id: PartnerId,
    /// Display name.
    pub partner_name: PartnerName,
    /// Kind of business.
    pub partner_type: PartnerType,
    /// Its broker.
    pub broker_id: BrokerId,
    /// Its revenue share.
    pub revenue_share: RevenueShare,
    /// Its permissions (at least one).
    pub permissions: BTreeSet<Permission>,
    /// Its limits.
    pub rate_limits: RateLimits,
    /// Its branding.
    pub branding: Branding,
    /// When.
    pub now: DateTime<Utc>,
}

/// A partner as a request gives it (`POST /admin/partner-api-keys`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A partner and its first key (`POST /admin/partner-api-keys`).")
)]
#[serde(deny_unknown_fields)]
pub struct RegisterPartnerInput {
    /// 2–32 characters: an upper-case letter, then `A-Z 0-9 _`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Z][A-Z0-9_]{1,31}$", example = "ZEBU"))]
    pub partner_id: Option<String>,
    /// 1–120 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 120, example = "Zebu Share and Wealth"))]
    pub partner_name: Option<String>,
    // `BROKER`, `ADVISOR` or `OTHER`; left to the enumeration's schema in
    // the API document, which a doc comment would repeat.
    #[allow(missing_docs)]
    #[cfg_attr(feature = "openapi", schema(value_type = PartnerType))]
    pub partner_type: Option<String>,
    /// The partner's broker id, 1–64 characters; linked allocations use it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 64, example = "zebu"))]
    pub broker_id: Option<String>,
    // Percentages summing to 100; left to the input's schema in the API
    // document, which a doc comment would repeat.
    #[allow(missing_docs)]
    #[cfg_attr(feature = "openapi", schema(value_type = RevenueShareInput))]
    pub revenue_share: Option<RevenueShareInput>,
    /// At least one; `marketplace:read` and `marketplace:subscribe` when
    /// absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Permission>>, min_items = 1))]
    pub permissions: Option<Vec<String>>,
    /// 100 a minute and 10 000 a day when absent.
    pub rate_limits: Option<RateLimitsInput>,
    /// Platform branding shown, no logo, when absent.
    pub branding: Option<BrandingInput>,
}

impl RegisterPartner {
    /// Validates a request body.
    pub fn from_input(
        actor: Actor,
        input: &RegisterPartnerInput,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        let partner_id = c.check(
            "partner_id",
            required(input.partner_id.as_deref()).and_then(PartnerId::parse),
        );
        let partner_name = c.check(
            "partner_name",
            required(input.partner_name.as_deref()).and_then(PartnerName::parse),
        );
        let partner_type = c.check(
            "partner_type",
            required(input.partner_type.as_deref()).and_then(PartnerType::parse),
        );
        let broker_id = c.check(
            "broker_id",
            required(input.broker_id.as_deref()).and_then(BrokerId::parse),
        );
        let revenue_share = match &input.revenue_share {
            Some(share) => c.nested(RevenueShare::parse(share, "revenue_share")),
            None => {
                c.push("revenue_share", "is required");
                None
            }
        };
        let permissions = c.nested(
            input
                .permissions
                .as_deref()
                .map_or(Ok(default_permissions()), |p| {
                    parse_permissions(p, "permissions")
                }),
        );
        let rate_limits = c.nested(RateLimits::parse(
            &input.rate_limits.unwrap_or_default(),
            "rate_limits",
        ));
        let branding = c.nested(Branding::parse(
            input.branding.as_ref().unwrap_or(&BrandingInput::default()),
            "branding",
        ));
        let (
            Some(partner_id),
            Some(partner_name),
            Some(partner_type),
            Some(broker_id),
            Some(revenue_share),
            Some(permissions),
            Some(rate_limits),
            Some(branding),
        ) = (
            partner_id,
            partner_name,
            partner_type,
            broker_id,
            revenue_share,
            permissions,
            rate_limits,
            branding,
        )
        else {
            return Err(c.into_errors());
        };
        c.finish(RegisterPartner {
            actor,
            partner_id,
            partner_name,
            partner_type,
            broker_id,
            revenue_share,
            permissions,
            rate_limits,
            branding,
            now,
        })
    }
}

/// Issues a new key to a partner.
#[derive(Debug, Clone, PartialEq)]
pub struct IssueApiKey {
    /// Who asks (an admin).
    pub actor: Actor,
    /// The new key's id.
    pub api_key_id: ApiKeyId,
    /// The `pk_<partner>_live_…` string, generated outside.
    pub key: ApiKeyToken,
    /// The argon2id hash of the secret, computed outside.
    pub secret_hash: SecretHash,
    /// When.
    pub now: DateTime<Utc>,
}

/// Changes some of a partner's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePartnerConfig {
    /// Who asks (an admin).
    pub actor: Actor,
    /// A new name, if any.
    pub partner_name: Option<PartnerName>,
    /// A new revenue share (applies to charges from now on), if any.
    pub revenue_share: Option<RevenueShare>,
    /// New permissions, if any.
    pub permissions: Option<BTreeSet<Permission>>,
    /// New limits, if any.
    pub rate_limits: Option<RateLimits>,
    /// New branding, if any.
    pub branding: Option<Branding>,
    /// When.
    pub now: DateTime<Utc>,
}

/// A configuration change as a request gives it (`PUT
/// /admin/partner-api-keys/{id}`, without `status`, which is
/// [`SetApiKeyStatus`]); at least one member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdatePartnerConfigInput {
    /// A new name, 1–120 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 120, example = "Zebu Broking")
    )]
    pub partner_name: Option<String>,
    /// A new revenue share.
    pub revenue_share: Option<RevenueShareInput>,
    /// New permissions, at least one.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Permission>>, min_items = 1))]
    pub permissions: Option<Vec<String>>,
    /// New limits (replacing the whole object).
    pub rate_limits: Option<RateLimitsInput>,
    /// New branding (replacing the whole object).
    pub branding: Option<BrandingInput>,
}

const NOTHING_TO_UPDATE: &str =
    "at least one of partner_name, revenue_share, permissions, rate_limits, branding must be given";

impl UpdatePartnerConfig {
    /// Validates a request body.
    pub fn from_input(
        actor: Actor,
        input: &UpdatePartnerConfigInput,
        now: DateTime<Utc>,
    ) -> Result<Self, ValidationErrors> {
        let mut c = Collector::default();
        if *input == UpdatePartnerConfigInput::default() {
            c.push("", NOTHING_TO_UPDATE);
        }
        let partner_name = c.check(
            "partner_name",
            input
                .partner_name
                .as_deref()
                .map(PartnerName::parse)
                .transpose(),
        );
        let revenue_share = c.nested(
            input
                .revenue_share
                .as_ref()
                .map(|s| RevenueShare::parse(s, "revenue_share"))
                .transpose(),
        );
        let permissions = c.nested(
            input
                .permissions
                .as_deref()
                .map(|p| parse_permissions(p, "permissions"))
                .transpose(),
        );
        let rate_limits = c.nested(
            input
                .rate_limits
                .as_ref()
                .map(|l| RateLimits::parse(l, "rate_limits"))
                .transpose(),
        );
        let branding = c.nested(
            input
                .branding
                .as_ref()
                .map(|b| Branding::parse(b, "branding"))
                .transpose(),
        );
        let (
            Some(partner_name),
            Some(revenue_share),
            Some(permissions),
            Some(rate_limits),
            Some(branding),
        ) = (
            partner_name,
            revenue_share,
            permissions,
            rate_limits,
            branding,
        )
        else {
            return Err(c.into_errors());
        };
        c.finish(UpdatePartnerConfig {
            actor,
            partner_name,
            revenue_share,
            permissions,
            rate_limits,
            branding,
            now,
        })
    }

    fn changed(&self) -> BTreeSet<PartnerConfigField> {
        [
            (self.partner_name.is_some(), PartnerConfigField::PartnerName),
            (
                self.revenue_share.is_some(),
                PartnerConfigField::RevenueShare,
            ),
            (self.permissions.is_some(), PartnerConfigField::Permissions),
            (self.rate_limits.is_some(), PartnerConfigField::RateLimits),
            (self.branding.is_some(), PartnerConfigField::Branding),
        ]
        .into_iter()
        .filter_map(|(given, field)| given.then_some(field))
        .collect()
    }
}

/// Activates, suspends or revokes a key.
#[derive(Debug, Clone, PartialEq)]
pub struct SetApiKeyStatus {
    /// Who asks (an admin).
    pub actor: Actor,
    /// The key.
    pub api_key_id: ApiKeyId,
    /// The status wanted; `REVOKED` revokes as [`RevokeApiKey`] does.
    pub status: ApiKeyStatus,
    /// Why, for the record.
    pub reason: Option<Reason>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Replaces a key's secret.
#[derive(Debug, Clone, PartialEq)]
pub struct RotateApiKey {
    /// Who asks (an admin).
    pub actor: Actor,
    /// The key.
    pub api_key_id: ApiKeyId,
    /// The argon2id hash of the new secret, computed outside.
    pub new_secret_hash: SecretHash,
    /// How long the old secret stays valid (0: it stops at once).
    pub grace_period: GracePeriodHours,
    /// When.
    pub now: DateTime<Utc>,
}

/// Revokes a key for good.
#[derive(Debug, Clone, PartialEq)]
pub struct RevokeApiKey {
    /// Who asks (an admin).
    pub actor: Actor,
    /// The key.
    pub api_key_id: ApiKeyId,
    /// Why, for the record.
    pub reason: Option<Reason>,
    /// When.
    pub now: DateTime<Utc>,
}

/// Everything the partner aggregate can be asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum PartnerCommand {
    /// See [`RegisterPartner`].
    RegisterPartner(RegisterPartner),
    /// See [`IssueApiKey`].
    IssueApiKey(IssueApiKey),
    /// See [`UpdatePartnerConfig`].
    UpdatePartnerConfig(UpdatePartnerConfig),
    /// See [`SetApiKeyStatus`].
    SetApiKeyStatus(SetApiKeyStatus),
    /// See [`RotateApiKey`].
    RotateApiKey(RotateApiKey),
    /// See [`RevokeApiKey`].
    RevokeApiKey(RevokeApiKey),
}

enum_from!(PartnerCommand {
    RegisterPartner,
    IssueApiKey,
    UpdatePartnerConfig,
    SetApiKeyStatus,
    RotateApiKey,
    RevokeApiKey,
});

// ---------------------------------------------------------------- events

/// A partner was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerRegistered {
    /// The partner.
    pub partner_id: PartnerId,
    /// Display name.
    pub partner_name: PartnerName,
    /// Kind of business.
    pub partner_type: PartnerType,
    /// Its broker.
    pub broker_id: BrokerId,
    /// Its revenue share.
    pub revenue_share: RevenueShare,
    /// Its permissions.
    pub permissions: BTreeSet<Permission>,
    /// Its limits.
    pub rate_limits: RateLimits,
    /// Its branding.
    pub branding: Branding,
    /// When.
    pub at: DateTime<Utc>,
}

/// A key was issued (ACTIVE). Carries the secret's hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyIssued {
    /// The partner.
    pub partner_id: PartnerId,
    /// The key.
    pub api_key_id: ApiKeyId,
    /// The `pk_…` string.
    pub key: ApiKeyToken,
    /// The argon2id hash of the secret.
    pub secret_hash: SecretHash,
    /// Always ACTIVE; given so readers copy rather than assume.
    pub status: ApiKeyStatus,
    /// When.
    pub at: DateTime<Utc>,
}

/// A partner's configuration changed; given in full as it now is, with the
/// members the update named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerConfigUpdated {
    /// The partner.
    pub partner_id: PartnerId,
    /// Name now.
    pub partner_name: PartnerName,
    /// Revenue share now.
    pub revenue_share: RevenueShare,
    /// Permissions now.
    pub permissions: BTreeSet<Permission>,
    /// Limits now.
    pub rate_limits: RateLimits,
    /// Branding now.
    pub branding: Branding,
    /// The members the update named.
    pub changed: BTreeSet<PartnerConfigField>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A key was activated or suspended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyStatusChanged {
    /// The partner.
    pub partner_id: PartnerId,
    /// The key.
    pub api_key_id: ApiKeyId,
    /// The status before.
    pub from: ApiKeyStatus,
    /// The status now (ACTIVE or SUSPENDED).
    pub to: ApiKeyStatus,
    /// Why, if said.
    pub reason: Option<Reason>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A key's secret was replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRotated {
    /// The partner.
    pub partner_id: PartnerId,
    /// The key.
    pub api_key_id: ApiKeyId,
    /// The new secret's hash.
    pub secret_hash: SecretHash,
    /// The grace period asked for.
    pub grace_period_hours: GracePeriodHours,
    /// Until when the previous secret is still accepted (none: it stopped at once).
    pub previous_valid_until: Option<DateTime<Utc>>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A key was revoked (final).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    /// The partner.
    pub partner_id: PartnerId,
    /// The key.
    pub api_key_id: ApiKeyId,
    /// The status before.
    pub from: ApiKeyStatus,
    /// Why, if said.
    pub reason: Option<Reason>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Production upcasters of partner events (none yet: every type is at v1).
pub const PARTNER_UPCASTERS: &[crate::event::Upcaster] = &[];

domain_events! {
    /// What happens to a partner and its keys.
    pub enum PartnerEvent (upcasters: PARTNER_UPCASTERS) {
        /// See [`PartnerRegistered`].
        PartnerRegistered = 1,
        /// See [`ApiKeyIssued`].
        ApiKeyIssued = 1,
        /// See [`PartnerConfigUpdated`].
        PartnerConfigUpdated = 1,
        /// See [`ApiKeyStatusChanged`].
        ApiKeyStatusChanged = 1,
        /// See [`ApiKeyRotated`].
        ApiKeyRotated = 1,
        /// See [`ApiKeyRevoked`].
        ApiKeyRevoked = 1,
    }
}

// ---------------------------------------------------------------- decide

/// The partner aggregate.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartnerAggregate;

impl Aggregate for PartnerAggregate {
    type State = PartnerState;
    type Command = PartnerCommand;
    type Event = PartnerEvent;
    const STREAM_PREFIX: &'static str = "partner";

    fn decide(
        state: &PartnerState,
        command: PartnerCommand,
    ) -> Result<Vec<PartnerEvent>, DomainError> {
        decide(state, command)
    }

    fn evolve(state: PartnerState, event: &PartnerEvent) -> PartnerState {
        evolve(state, event)
    }
}

/// Decides what a partner command does.
pub fn decide(
    state: &PartnerState,
    command: PartnerCommand,
) -> Result<Vec<PartnerEvent>, DomainError> {
    let actor = match &command {
        PartnerCommand::RegisterPartner(c) => &c.actor,
        PartnerCommand::IssueApiKey(c) => &c.actor,
        PartnerCommand::UpdatePartnerConfig(c) => &c.actor,
        PartnerCommand::SetApiKeyStatus(c) => &c.actor,
        PartnerCommand::RotateApiKey(c) => &c.actor,
        PartnerCommand::RevokeApiKey(c) => &c.actor,
    };
    if !actor.is_admin() {
        return Err(DomainError::Forbidden);
    }
    match command {
        PartnerCommand::RegisterPartner(c) => register(state, c),
        PartnerCommand::IssueApiKey(c) => issue(state, c),
        PartnerCommand::UpdatePartnerConfig(c) => update_config(state, c),
        PartnerCommand::SetApiKeyStatus(c) => set_status(state, c),
        PartnerCommand::RotateApiKey(c) => rotate(state, c),
        PartnerCommand::RevokeApiKey(c) => revoke(state, c.api_key_id, c.reason, c.now),
    }
}

fn registered(state: &PartnerState) -> Result<&Partner, DomainError> {
    state
        .partner
        .as_ref()
        .ok_or(DomainError::NotFound { what: "partner" })
}

fn key_of<'a>(partner: &'a Partner, api_key_id: &ApiKeyId) -> Result<&'a ApiKey, DomainError> {
    partner
        .keys
        .get(api_key_id)
        .ok_or(DomainError::NotFound { what: "api key" })
}

fn permissions_rule(permissions: &BTreeSet<Permission>) -> Result<(), DomainError> {
    if permissions.is_empty() {
        return Err(DomainError::invalid(
            "permissions",
            "must grant at least one permission",
        ));
    }
    Ok(())
}

fn register(state: &PartnerState, c: RegisterPartner) -> Result<Vec<PartnerEvent>, DomainError> {
    if state.partner.is_some() {
        return Err(DomainError::AlreadyExists { what: "partner" });
    }
    permissions_rule(&c.permissions)?;
    Ok(vec![PartnerRegistered {
        partner_id: c.partner_id,
        partner_name: c.partner_name,
        partner_type: c.partner_type,
        broker_id: c.broker_id,
        revenue_share: c.revenue_share,
        permissions: c.permissions,
        rate_limits: c.rate_limits,
        branding: c.branding,
        at: c.now,
    }
    .into()])
}

fn issue(state: &PartnerState, c: IssueApiKey) -> Result<Vec<PartnerEvent>, DomainError> {
    let partner = registered(state)?;
    if partner.keys.contains_key(&c.api_key_id) || state.key_by_token(c.key.as_str()).is_some() {
        return Err(DomainError::AlreadyExists { what: "api key" });
    }
    if c.key.partner_segment() != partner.partner_id.key_segment() {
        return Err(DomainError::invalid(
            "key",
            format!(
                "must start with pk_{}_live_",
                partner.partner_id.key_segment()
            ),
        ));
    }
    Ok(vec![ApiKeyIssued {
        partner_id: partner.partner_id.clone(),
        api_key_id: c.api_key_id,
        key: c.key,
        secret_hash: c.secret_hash,
        status: ApiKeyStatus::Active,
        at: c.now,
    }
    .into()])
}

fn update_config(
    state: &PartnerState,
    c: UpdatePartnerConfig,
) -> Result<Vec<PartnerEvent>, DomainError> {
    let partner = registered(state)?;
    let changed = c.changed();
    if changed.is_empty() {
        return Err(DomainError::invalid("", NOTHING_TO_UPDATE));
    }
    if let Some(permissions) = &c.permissions {
        permissions_rule(permissions)?;
    }
    Ok(vec![PartnerConfigUpdated {
        partner_id: partner.partner_id.clone(),
        partner_name: c
            .partner_name
            .unwrap_or_else(|| partner.partner_name.clone()),
        revenue_share: c.revenue_share.unwrap_or(partner.revenue_share),
        permissions: c.permissions.unwrap_or_else(|| partner.permissions.clone()),
        rate_limits: c.rate_limits.unwrap_or(partner.rate_limits),
        branding: c.branding.unwrap_or_else(|| partner.branding.clone()),
        changed,
        at: c.now,
    }
    .into()])
}

fn set_status(state: &PartnerState, c: SetApiKeyStatus) -> Result<Vec<PartnerEvent>, DomainError> {
    let partner = registered(state)?;
    let key = key_of(partner, &c.api_key_id)?;
    if key.status == ApiKeyStatus::Revoked {
        return Err(DomainError::InvalidTransition {
            from: key.status.as_str(),
            to: c.status.as_str(),
        });
    }
    if c.status == ApiKeyStatus::Revoked {
        return revoke(state, c.api_key_id, c.reason, c.now);
    }
    // Setting the status it already has is a no-op, as a PUT should be.
    if c.status == key.status {
        return Ok(vec![]);
    }
    Ok(vec![ApiKeyStatusChanged {
        partner_id: partner.partner_id.clone(),
        api_key_id: c.api_key_id,
        from: key.status,
        to: c.status,
        reason: c.reason,
        at: c.now,
    }
    .into()])
}

fn rotate(state: &PartnerState, c: RotateApiKey) -> Result<Vec<PartnerEvent>, DomainError> {
    let partner = registered(state)?;
    let key = key_of(partner, &c.api_key_id)?;
    if key.status == ApiKeyStatus::Revoked {
        return Err(DomainError::ApiKeyRevoked);
    }
    let previous_valid_until = match c.grace_period.get() {
        0 => None,
        hours => Some(c.now + TimeDelta::hours(i64::from(hours))),
    };
    Ok(vec![ApiKeyRotated {
        partner_id: partner.partner_id.clone(),
        api_key_id: c.api_key_id,
        secret_hash: c.new_secret_hash,
        grace_period_hours: c.grace_period,
        previous_valid_until,
        at: c.now,
    }
    .into()])
}

fn revoke(
    state: &PartnerState,
    api_key_id: ApiKeyId,
    reason: Option<Reason>,
    now: DateTime<Utc>,
) -> Result<Vec<PartnerEvent>, DomainError> {
    let partner = registered(state)?;
    let key = key_of(partner, &api_key_id)?;
    if key.status == ApiKeyStatus::Revoked {
        return Err(DomainError::InvalidTransition {
            from: ApiKeyStatus::Revoked.as_str(),
            to: ApiKeyStatus::Revoked.as_str(),
        });
    }
    Ok(vec![ApiKeyRevoked {
        partner_id: partner.partner_id.clone(),
        api_key_id,
        from: key.status,
        reason,
        at: now,
    }
    .into()])
}

// ---------------------------------------------------------------- evolve

/// Applies one partner event.
pub fn evolve(mut state: PartnerState, event: &PartnerEvent) -> PartnerState {
    if let PartnerEvent::PartnerRegistered(e) = event {
        state.partner = Some(Partner {
            partner_id: e.partner_id.clone(),
            partner_name: e.partner_name.clone(),
            partner_type: e.partner_type,
            broker_id: e.broker_id.clone(),
            revenue_share: e.revenue_share,
            permissions: e.permissions.clone(),
            rate_limits: e.rate_limits,
            branding: e.branding.clone(),
            keys: BTreeMap::new(),
            registered_at: e.at,
            updated_at: e.at,
        });
        return state;
    }
    let Some(partner) = state.partner.as_mut() else {
        return state;
    };
    match event {
        PartnerEvent::PartnerRegistered(_) => {}
        PartnerEvent::ApiKeyIssued(e) => {
            partner.keys.insert(
                e.api_key_id,
                ApiKey {
                    api_key_id: e.api_key_id,
                    key: e.key.clone(),
                    status: e.status,
                    secret_hash: e.secret_hash.clone(),
                    previous_secret: None,
                    issued_at: e.at,
                    rotated_at: None,
                    revoked_at: None,
                },
            );
            partner.updated_at = e.at;
        }
        PartnerEvent::PartnerConfigUpdated(e) => {
            partner.partner_name = e.partner_name.clone();
            partner.revenue_share = e.revenue_share;
            partner.permissions = e.permissions.clone();
            partner.rate_limits = e.rate_limits;
            partner.branding = e.branding.clone();
            partner.updated_at = e.at;
        }
        PartnerEvent::ApiKeyStatusChanged(e) => {
            if let Some(key) = partner.keys.get_mut(&e.api_key_id) {
                key.status = e.to;
            }
            partner.updated_at = e.at;
        }
        PartnerEvent::ApiKeyRotated(e) => {
            if let Some(key) = partner.keys.get_mut(&e.api_key_id) {
                let old = std::mem::replace(&mut key.secret_hash, e.secret_hash.clone());
                // Only the secret just replaced gets grace; an older one is gone.
                key.previous_secret = e.previous_valid_until.map(|valid_until| PreviousSecret {
                    hash: old,
                    valid_until,
                });
                key.rotated_at = Some(e.at);
            }
            partner.updated_at = e.at;
        }
        PartnerEvent::ApiKeyRevoked(e) => {
            if let Some(key) = partner.keys.get_mut(&e.api_key_id) {
                key.status = ApiKeyStatus::Revoked;
                key.previous_secret = None;
                key.revoked_at = Some(e.at);
            }
            partner.updated_at = e.at;
        }
    }
    state
}
