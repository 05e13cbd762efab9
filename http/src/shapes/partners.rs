//! Partner API keys with their partner's configuration.

use basketry_domain::partner as domain;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Percent, Timestamp};

/// A revenue share as percentages (`70`, `30`, or `72.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevenueSharePercent {
    #[schema(value_type = f64)]
    pub platform_percentage: Percent,
    #[schema(value_type = f64)]
    pub partner_percentage: Percent,
}

/// A partner's request quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateLimits {
    pub requests_per_minute: u32,
    pub requests_per_day: u32,
}

/// How a partner's customers see the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Branding {
    pub show_platform_branding: bool,
    #[schema(format = "uri", required = true)]
    pub custom_logo_url: Option<String>,
}

/// A partner API key with its partner's configuration; never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub api_key_id: Uuid,
    /// The public key, `pk_<partner>_live_<base62>`.
    #[schema(example = "pk_zebu_live_4fQm2…")]
    pub api_key: String,
    #[schema(example = "ZEBU")]
    pub partner_id: String,
    pub partner_name: String,
    #[schema(value_type = super::PartnerType)]
    pub partner_type: domain::PartnerType,
    pub broker_id: String,
    #[schema(value_type = super::ApiKeyStatus)]
    pub status: domain::ApiKeyStatus,
    pub revenue_share: RevenueSharePercent,
    #[schema(value_type = Vec<super::Permission>)]
    pub permissions: Vec<domain::Permission>,
    pub rate_limits: RateLimits,
    pub branding: Branding,
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Timestamp,
    #[schema(value_type = String, format = DateTime, nullable, required = true)]
    pub rotated_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime, nullable, required = true)]
    pub revoked_at: Option<Timestamp>,
}

/// How much a key was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyUsage {
    pub request_count: i64,
}

/// A key as admins list it, with its usage; never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyWithUsage {
    #[serde(flatten)]
    pub key: ApiKey,
    /// `null` when never used.
    #[schema(value_type = String, format = DateTime, nullable, required = true)]
    pub last_used_at: Option<Timestamp>,
    pub usage: KeyUsage,
}

/// A page of keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyWithUsage>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
