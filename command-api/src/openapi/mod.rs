//! The command API's part of the OpenAPI 3.1 document, generated from the
//! code with `utoipa`.
//!
//! * Every handler in [`crate::routes`] carries `#[utoipa::path(...)]`:
//!   method, path, parameters, request body, each status it can answer and
//!   its security; [`CommandApiDoc`] collects them.
//! * [`schemas`] — the response shapes of [`basketry_http::shapes`];
//!   request bodies are documented by the types the handlers deserialise
//!   (the domain's `…Input` types derive their schemas with its `openapi`
//!   feature); [`shape`] — checking JSON against the document, for the
//!   tests that keep it honest.
//! * What every command has in common because [`crate::command::run`]
//!   does it for all of them — `Idempotency-Key`, `X-Consistency-Token`,
//!   `Idempotent-Replayed`, partner rate-limit headers — is added by the
//!   [`CommandConventions`] modifier, so no route can be documented
//!   without them. [`SecurityAddon`] declares the security schemes; it and
//!   the header helpers are shared with the query API from
//!   [`basketry_http::openapi`].
//!
//! The complete document (both APIs and the operational routes) is
//! assembled and served by the `basketry-openapi` crate.

pub mod schemas;
pub mod shape;

pub use basketry_http::openapi::{
    add_parameter, allows_partner, header_parameter, operations_mut, partner_requirement,
    rate_limit_headers, string_header, SecurityAddon, BEARER_JWT, PARTNER_KEY, PARTNER_SECRET,
};

use std::collections::BTreeMap;

use basketry_http::shapes::ErrorComponents;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi, ToResponse};

/// The command API's operations and components; the shared error
/// responses are [`ErrorComponents`], declared once for both APIs.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::routes::baskets::create_basket,
        crate::routes::baskets::update_basket,
        crate::routes::baskets::add_strategy,
        crate::routes::baskets::replace_strategy,
        crate::routes::baskets::remove_strategy,
        crate::routes::templates::publish_template,
        crate::routes::templates::update_template,
        crate::routes::templates::unpublish_template,
        crate::routes::subscriptions::subscribe,
        crate::routes::subscriptions::user_pause,
        crate::routes::subscriptions::user_resume,
        crate::routes::subscriptions::user_cancel,
        crate::routes::subscriptions::user_allocations,
        crate::routes::subscriptions::partner_subscribe,
        crate::routes::subscriptions::partner_pause,
        crate::routes::subscriptions::partner_resume,
        crate::routes::subscriptions::partner_cancel,
        crate::routes::partner_keys::create_api_key,
        crate::routes::partner_keys::update_api_key,
        crate::routes::partner_keys::rotate_api_key,
        crate::routes::partner_keys::revoke_api_key,
        crate::routes::billing::billing_run,
    ),
    modifiers(&ErrorComponents, &SecurityAddon, &CommandConventions)
)]
pub struct CommandApiDoc;

/// The error answers of a command on a resource its path names: every
/// status besides success that [`crate::command::run`] and the handlers
/// can answer, each a reference to one `Problem` response among the
/// components. Every command's `responses(...)` lists its successes and
/// one of these sets.
pub struct CommandErrors;

/// [`CommandErrors`] but 404: a command whose path names no resource
/// (creating one, or running over all of them).
pub struct CreateErrors;

/// [`CommandErrors`] but 415: a command that ignores its body.
pub struct BodylessErrors;

/// The error responses, by status, but those in `except`.
fn error_responses(except: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    fn reference<R: ToResponse<'static>>() -> RefOr<Response> {
        RefOr::Ref(Ref::from_response_name(R::response().0))
    }
    [
        (400, reference::<schemas::BadRequest>()),
        (401, reference::<schemas::Unauthorized>()),
        (403, reference::<schemas::Forbidden>()),
        (404, reference::<schemas::NotFound>()),
        (409, reference::<schemas::Conflict>()),
        (413, reference::<schemas::PayloadTooLarge>()),
        (415, reference::<schemas::UnsupportedMediaType>()),
        (422, reference::<schemas::UnprocessableEntity>()),
        (429, reference::<schemas::TooManyRequests>()),
        (500, reference::<schemas::InternalError>()),
        (503, reference::<schemas::ServiceUnavailable>()),
    ]
    .into_iter()
    .filter(|(status, _)| !except.contains(status))
    .map(|(status, response)| (status.to_string(), response))
    .collect()
}

impl IntoResponses for CommandErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[])
    }
}

impl IntoResponses for CreateErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[404])
    }
}

impl IntoResponses for BodylessErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[415])
    }
}

/// An optional body is written `Option<T>` in the annotations, which makes
/// utoipa both mark it not required (right: an empty body reads as `{}`)
/// and let it be `null` (wrong: `null` is 400). This keeps the former.
fn optional_bodies_are_not_null(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    for content in body.content.values_mut() {
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
        let mut others = one_of.items.iter().filter(|s| !is_null(s));
        if let (Some(only), None, true) = (others.next(), others.next(), one_of.items.len() == 2) {
            content.schema = Some(only.clone());
        }
    }
}

/// What [`crate::command::run`] gives every command: the
/// `Idempotency-Key` request header; `X-Consistency-Token` and
/// `Idempotent-Replayed` on success; partners' rate-limit headers.
pub struct CommandConventions;

impl Modify for CommandConventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                add_parameter(
                    operation,
                    header_parameter(
                        "Idempotency-Key",
                        "Makes a retry safe: the first response is stored for 24 h per \
                         principal and replayed for a retry of the same request (with \
                         `Idempotent-Replayed: true`). The same key with another request is \
                         422 `idempotency_key_reused`; a retry while the first is still \
                         running is 409 `idempotency_request_in_progress`. Answers that \
                         tell the client to retry (`concurrent_modification`, 429, 5xx) are \
                         not stored. A retry after a request whose instance died between \
                         committing and recording its response is 409 \
                         `idempotency_key_committed`, naming the consistency token and the \
                         streams it wrote; the command is not run twice.",
                        Some(255),
                    ),
                );
                optional_bodies_are_not_null(operation);
                let partner = allows_partner(operation);
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if status.starts_with('2') {
                        response.headers.insert(
                            "X-Consistency-Token".into(),
                            string_header(
                                "`commit.prepare`: the global position of the command's last \
                                 event. Send it back on a query to read your own write.",
                            ),
                        );
                        response.headers.insert(
                            "Idempotent-Replayed".into(),
                            string_header("`true` when this is a stored response replayed for a retry with the same `Idempotency-Key`."),
                        );
                    }
                    if partner {
                        for (name, header) in rate_limit_headers() {
                            response.headers.insert(name.into(), header);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
