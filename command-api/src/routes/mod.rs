//! The command routes, one module per resource; every handler reads as
//! parse → decide → append → respond:
//!
//! * [`baskets`] — a person's baskets and their strategies;
//! * [`templates`] — admins publishing baskets as marketplace templates;
//! * [`subscriptions`] — subscribing (a person, or a partner for its
//!   customer), status changes and broker allocations; the steps that span
//!   several streams are [`crate::workflows::subscribe`]'s;
//! * [`partner_keys`] — partners and their API keys;
//! * [`billing`] — the billing run.
//!
//! This module holds what they share: the route table ([`endpoints`]) and
//! the small parsers of principals, path ids and reasons.

use std::str::FromStr;

use actix_web::http::Method;
use actix_web::web::{self, Bytes};
use actix_web::HttpRequest;
use basketry_domain::partner::Permission;
use basketry_domain::{DomainError, Reason, ValidationErrors};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{PartnerPrincipal, Person, Principal};
use crate::command::parse_body;
use crate::error::ApiError;
pub(crate) use crate::load::stream;

pub(crate) mod baskets;
pub(crate) mod billing;
pub(crate) mod partner_keys;
pub(crate) mod subscriptions;
pub(crate) mod templates;

// The request bodies by the names the document's tests use.
#[cfg(test)]
pub(crate) use self::baskets::NoInput;
#[cfg(test)]
pub(crate) use self::billing::BillingInput;
#[cfg(test)]
pub(crate) use self::partner_keys::{RotateInput, UpdateKeyInput};
#[cfg(test)]
pub(crate) use self::subscriptions::{AllocationsInput, PartnerSubscribeInput, SubscribeInput};

pub use basketry_http::route::Endpoint;

/// Every command route, by resource.
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        Endpoint::new(M::POST, "/baskets", baskets::create_basket),
        Endpoint::new(M::PUT, "/baskets/{basket_id}", baskets::update_basket),
        Endpoint::new(
            M::POST,
            "/baskets/{basket_id}/strategies",
            baskets::add_strategy,
        ),
        Endpoint::new(
            M::PUT,
            "/baskets/{basket_id}/strategies/{strategy_id}",
            baskets::replace_strategy,
        ),
        Endpoint::new(
            M::DELETE,
            "/baskets/{basket_id}/strategies/{strategy_id}",
            baskets::remove_strategy,
        ),
        Endpoint::new(
            M::POST,
            "/admin/marketplace/templates/{basket_id}",
            templates::publish_template,
        ),
        Endpoint::new(
            M::PUT,
            "/admin/marketplace/templates/{basket_id}",
            templates::update_template,
        ),
        Endpoint::new(
            M::DELETE,
            "/admin/marketplace/templates/{basket_id}",
            templates::unpublish_template,
        ),
        Endpoint::new(
            M::POST,
            "/marketplace/subscribe/{template_id}",
            subscriptions::subscribe,
        ),
        Endpoint::new(
            M::PUT,
            "/user/subscriptions/{id}/pause",
            subscriptions::user_pause,
        ),
        Endpoint::new(
            M::PUT,
            "/user/subscriptions/{id}/resume",
            subscriptions::user_resume,
        ),
        Endpoint::new(
            M::DELETE,
            "/user/subscriptions/{id}",
            subscriptions::user_cancel,
        ),
        Endpoint::new(
            M::PUT,
            "/user/subscriptions/{id}/allocations",
            subscriptions::user_allocations,
        ),
        Endpoint::new(
            M::POST,
            "/partner/marketplace/subscribe",
            subscriptions::partner_subscribe,
        ),
        Endpoint::new(
            M::PUT,
            "/partner/subscriptions/{id}/pause",
            subscriptions::partner_pause,
        ),
        Endpoint::new(
            M::PUT,
            "/partner/subscriptions/{id}/resume",
            subscriptions::partner_resume,
        ),
        Endpoint::new(
            M::DELETE,
            "/partner/subscriptions/{id}",
            subscriptions::partner_cancel,
        ),
        Endpoint::new(
            M::POST,
            "/admin/partner-api-keys",
            partner_keys::create_api_key,
        ),
        Endpoint::new(
            M::PUT,
            "/admin/partner-api-keys/{api_key_id}",
            partner_keys::update_api_key,
        ),
        Endpoint::new(
            M::POST,
            "/admin/partner-api-keys/{api_key_id}/rotate",
            partner_keys::rotate_api_key,
        ),
        Endpoint::new(
            M::DELETE,
            "/admin/partner-api-keys/{api_key_id}",
            partner_keys::revoke_api_key,
        ),
        Endpoint::new(M::POST, "/admin/billing/run", billing::billing_run),
    ]
}

/// Registers every command route ([`endpoints`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for endpoint in endpoints() {
        endpoint.register(cfg);
    }
}

// ------------------------------------------------------------------ helpers

/// An id from the path; anything that is not a UUID names nothing.
pub(crate) fn path_uuid(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::from_str(raw).map_err(|_| ApiError::NotFound { what })
}

/// The caller as a person (a user or an admin); partners are refused.
pub(crate) fn person(principal: &Principal) -> Result<&Person, ApiError> {
    match principal {
        Principal::Person(p) => Ok(p),
        Principal::Partner(_) => Err(ApiError::Domain(DomainError::Forbidden)),
    }
}

/// The caller as an admin; anyone else is refused.
pub(crate) fn admin(principal: &Principal) -> Result<&Person, ApiError> {
    match principal {
        Principal::Person(p) if p.is_admin() => Ok(p),
        _ => Err(ApiError::Domain(DomainError::Forbidden)),
    }
}

/// The caller as a partner holding `permission`.
pub(crate) fn partner(
    principal: &Principal,
    permission: Permission,
) -> Result<&PartnerPrincipal, ApiError> {
    Ok(principal.require_partner_permission(permission)?)
}

/// Optional `{reason}` body of status changes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonInput {
    /// Why, 1–500 characters; kept in the status history.
    #[schema(min_length = 1, max_length = 500, example = "Travelling this month")]
    pub(crate) reason: Option<String>,
}

/// The optional reason of a status change, read from its body.
pub(crate) fn reason(req: &HttpRequest, body: &Bytes) -> Result<Option<Reason>, ApiError> {
    let input: ReasonInput = parse_body(req, body)?;
    parse_reason(input.reason.as_deref())
}

/// An optional free-text reason, validated.
pub(crate) fn parse_reason(text: Option<&str>) -> Result<Option<Reason>, ApiError> {
    text.map(Reason::parse)
        .transpose()
        .map_err(|e| ValidationErrors::single("reason", e.to_string()).into())
}

/// A response shape as the JSON body of a [`crate::command::Reply`].
pub(crate) fn to_body<T: serde::Serialize>(shape: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(shape).map_err(|e| ApiError::Internal(format!("rendering a reply: {e}")))
}
