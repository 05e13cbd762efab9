//! The one request body documented apart from the type the handler reads:
//! `PUT /admin/partner-api-keys/{api_key_id}`, whose handler reads the
//! domain's `UpdatePartnerConfigInput` flattened beside the key's `status`
//! and `reason`. Every other request body is documented by the type that
//! is deserialised (the domain's `…Input` types derive their schemas with
//! its `openapi` feature; the handlers' own inputs derive theirs).
//!
//! The test `request_schemas_mirror_the_domain_inputs_exactly` (in
//! `openapi/tests.rs`) checks this one, like the others, against the types
//! the handler deserialises.

use basketry_domain::partner::{ApiKeyStatus, BrandingInput, Permission, RateLimitsInput};
use basketry_domain::RevenueShareInput;
use utoipa::ToSchema;

/// `PUT /admin/partner-api-keys/{api_key_id}`: the partner's configuration
/// (the domain's `UpdatePartnerConfigInput`: objects given replace the old
/// ones whole) and this key's status; at least one member.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApiKeyInput {
    /// 1–120 characters.
    #[schema(min_length = 1, max_length = 120, example = "Zebu Broking")]
    pub partner_name: Option<String>,
    pub revenue_share: Option<RevenueShareInput>,
    #[schema(min_items = 1)]
    pub permissions: Option<Vec<Permission>>,
    pub rate_limits: Option<RateLimitsInput>,
    pub branding: Option<BrandingInput>,
    /// A new status for this key: `SUSPENDED`, back to `ACTIVE`, or
    /// `REVOKED` (final).
    pub status: Option<ApiKeyStatus>,
    /// Why the status changes, 1–500 characters.
    #[schema(min_length = 1, max_length = 500, example = "Contract paused")]
    pub reason: Option<String>,
}
