//! OpenAPI conventions both APIs' documents share: the security schemes
//! of people and partners, and helpers that add headers and parameters to
//! operations (each API's modifier adds what its request path gives every
//! route).

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, Required};
use utoipa::Modify;

/// Security scheme of people: `Authorization: Bearer <JWT>`.
pub const BEARER_JWT: &str = "bearer_jwt";
/// Security scheme of partners' keys: `Authorization: Bearer pk_…`; always
/// together with [`PARTNER_SECRET`].
pub const PARTNER_KEY: &str = "partner_key";
/// Security scheme of partners' secrets: `X-Partner-Secret: sk_…`.
pub const PARTNER_SECRET: &str = "partner_secret";

/// Declares the security schemes: [`BEARER_JWT`], and the pair
/// [`PARTNER_KEY`] + [`PARTNER_SECRET`] that partner operations require
/// together.
pub struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::default);
        components.add_security_scheme(
            BEARER_JWT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A person's JWT (HS256 with the configured secret, or RS256/ES256 from \
                         the configured JWKS). Identity is the `email` claim; roles come from \
                         `groups` or `cognito:groups`: `Admins`, `Auditors`, `Executors`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            PARTNER_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pk_<partner>_live_<base62>")
                    .description(Some(
                        "A partner's API key as the bearer token: `Authorization: Bearer \
                         pk_…`. Always sent with `X-Partner-Secret` (scheme `partner_secret`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            PARTNER_SECRET,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Partner-Secret",
                "The key's secret, `sk_<partner>_live_<base62>`, shown once at creation or \
                 rotation. Repeated wrong secrets are throttled (429).",
            ))),
        );
    }
}

/// The security requirement of partner operations: key and secret.
pub fn partner_requirement() -> SecurityRequirement {
    SecurityRequirement::new(PARTNER_KEY, Vec::<String>::new())
        .add(PARTNER_SECRET, Vec::<String>::new())
}

/// Whether partners may call `operation`.
pub fn allows_partner(operation: &Operation) -> bool {
    operation
        .security
        .as_ref()
        .is_some_and(|s| s.contains(&partner_requirement()))
}

/// Every operation of a path item.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// A string header with a description.
pub fn string_header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

/// An optional string header parameter.
pub fn header_parameter(name: &str, description: &str, max_length: Option<usize>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(max_length.map(|_| 1))
                .max_length(max_length),
        ))
        .build()
}

/// `RateLimit-Policy` and `RateLimit` (IETF httpapi draft), on every
/// answer to a partner credential.
pub fn rate_limit_headers() -> [(&'static str, Header); 2] {
    [
        (
            "RateLimit-Policy",
            string_header(
                "Partner requests only: the key's quotas, e.g. `\"minute\";q=100;w=60, \
                 \"day\";q=10000;w=86400`.",
            ),
        ),
        (
            "RateLimit",
            string_header(
                "Partner requests only: what is left of the tightest quota, e.g. \
                 `\"minute\";r=99;t=60`.",
            ),
        ),
    ]
}

/// Adds `parameter` to `operation` unless it has one of that name.
pub fn add_parameter(operation: &mut Operation, parameter: Parameter) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    if !parameters.iter().any(|p| p.name == parameter.name) {
        parameters.push(parameter);
    }
}
