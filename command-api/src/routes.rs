//! The command routes (docs/reference/api.md#commands), one thin handler per route: parse into
//! domain types → load → decide → append → render.

use std::str::FromStr;

use actix_web::http::Method;
use actix_web::web::{self, Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use basketry_domain::api_key_index::{self, ApiKeyIndexAggregate, AssignApiKey};
use basketry_domain::basket::{
    self, AddStrategy, BasketAggregate, BasketCommand, BasketInput, CreateBasket,
    MarketplaceConfigInput, PublishTemplate, RemoveStrategy, ReplaceStrategy, Strategy,
    StrategyInput, UnpublishTemplate, UpdateBasket, UpdateBasketInput, UpdateMarketplaceConfig,
};
use basketry_domain::partner::{
    self, ApiKeyStatus, GracePeriodHours, IssueApiKey, PartnerAggregate, PartnerCommand,
    PartnerState, Permission, RegisterPartner, RegisterPartnerInput, RevokeApiKey, RotateApiKey,
    SecretHash, SetApiKeyStatus, UpdatePartnerConfig, UpdatePartnerConfigInput,
};
use basketry_domain::subscription::{
    self, AbandonSubscription, AllocationInput, BrokerAllocation, CancelSubscription,
    PartnerAttribution, PauseSubscription, ResumeSubscription, SetBrokerAllocations,
    SubscribeToTemplate, SubscriptionAggregate, SubscriptionEvent, SubscriptionState,
};
use basketry_domain::user_link::{
    self, ReleaseTemplateSubscription, ReserveTemplateSubscription, UserLinkAggregate,
    UserLinkEvent,
};
use basketry_domain::{
    AllocationId, ApiKeyId, BasisPoints, BasketId, DecimalInput, DomainError, DomainEvent, Email,
    FieldError, PartnerId, Reason, StrategyId, SubscriptionId, TemplateId, UserId,
    ValidationErrors,
};
use basketry_store::{EventStore, StreamId};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::credentials::{generate_api_key, generate_secret, hash_secret_async};
use crate::auth::{AuthState, PartnerPrincipal, Person, Principal};
use crate::command::{
    execute, execute_from, execute_many, parse_body, run, AppState, Body, CommandMeta, Reply,
};
use crate::error::ApiError;
use crate::load::{load, Loaded};
use crate::openapi::{requests, schemas};
use crate::views;

/// One route: method, path template and handler. The route tables — this
/// crate's [`endpoints`] and the query API's — are exactly what the apps
/// register, so the OpenAPI completeness test, which walks them, sees every
/// route there is.
pub struct Endpoint {
    /// The HTTP method.
    pub method: Method,
    /// The path template, `{name}` for a path parameter (also the OpenAPI
    /// spelling).
    pub path: &'static str,
    route: actix_web::Route,
}

impl Endpoint {
    /// `handler` at `method path`.
    pub fn new<F, Args>(method: Method, path: &'static str, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        Self {
            route: web::route().method(method.clone()).to(handler),
            method,
            path,
        }
    }

    /// Registers the route on `cfg` (beside other routes of the same path
    /// and other methods).
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        cfg.route(self.path, self.route);
    }
}

/// The command routes (docs/reference/api.md#commands).
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        Endpoint::new(M::POST, "/baskets", create_basket),
        Endpoint::new(M::PUT, "/baskets/{basket_id}", update_basket),
        Endpoint::new(M::POST, "/baskets/{basket_id}/strategies", add_strategy),
        Endpoint::new(
            M::PUT,
            "/baskets/{basket_id}/strategies/{strategy_id}",
            replace_strategy,
        ),
        Endpoint::new(
            M::DELETE,
            "/baskets/{basket_id}/strategies/{strategy_id}",
            remove_strategy,
        ),
        Endpoint::new(
            M::POST,
            "/admin/marketplace/templates/{basket_id}",
            publish_template,
        ),
        Endpoint::new(
            M::PUT,
            "/admin/marketplace/templates/{basket_id}",
            update_template,
        ),
        Endpoint::new(
            M::DELETE,
            "/admin/marketplace/templates/{basket_id}",
            unpublish_template,
        ),
        Endpoint::new(M::POST, "/marketplace/subscribe/{template_id}", subscribe),
        Endpoint::new(M::PUT, "/user/subscriptions/{id}/pause", user_pause),
        Endpoint::new(M::PUT, "/user/subscriptions/{id}/resume", user_resume),
        Endpoint::new(M::DELETE, "/user/subscriptions/{id}", user_cancel),
        Endpoint::new(
            M::PUT,
            "/user/subscriptions/{id}/allocations",
            user_allocations,
        ),
        Endpoint::new(M::POST, "/partner/marketplace/subscribe", partner_subscribe),
        Endpoint::new(M::PUT, "/partner/subscriptions/{id}/pause", partner_pause),
        Endpoint::new(M::PUT, "/partner/subscriptions/{id}/resume", partner_resume),
        Endpoint::new(M::DELETE, "/partner/subscriptions/{id}", partner_cancel),
        Endpoint::new(M::POST, "/admin/partner-api-keys", create_api_key),
        Endpoint::new(
            M::PUT,
            "/admin/partner-api-keys/{api_key_id}",
            update_api_key,
        ),
        Endpoint::new(
            M::POST,
            "/admin/partner-api-keys/{api_key_id}/rotate",
            rotate_api_key,
        ),
        Endpoint::new(
            M::DELETE,
            "/admin/partner-api-keys/{api_key_id}",
            revoke_api_key,
        ),
        Endpoint::new(M::POST, "/admin/billing/run", billing_run),
    ]
}

/// Registers every command route ([`endpoints`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for endpoint in endpoints() {
        endpoint.register(cfg);
    }
}

// ------------------------------------------------------------------ helpers

fn stream(name: String) -> Result<StreamId, ApiError> {
    StreamId::parse(name).map_err(|e| ApiError::Internal(e.to_string()))
}

/// An id from the path; anything that is not a UUID names nothing.
fn path_uuid(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::from_str(raw).map_err(|_| ApiError::NotFound { what })
}

fn person(principal: &Principal) -> Result<&Person, ApiError> {
    match principal {
        Principal::Person(p) => Ok(p),
        Principal::Partner(_) => Err(ApiError::Domain(DomainError::Forbidden)),
    }
}

fn admin(principal: &Principal) -> Result<&Person, ApiError> {
    match principal {
        Principal::Person(p) if p.is_admin() => Ok(p),
        _ => Err(ApiError::Domain(DomainError::Forbidden)),
    }
}

fn partner(principal: &Principal, permission: Permission) -> Result<&PartnerPrincipal, ApiError> {
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

fn reason(req: &HttpRequest, body: &Bytes) -> Result<Option<Reason>, ApiError> {
    let input: ReasonInput = parse_body(req, body)?;
    parse_reason(input.reason.as_deref())
}

/// An optional free-text reason, validated.
fn parse_reason(text: Option<&str>) -> Result<Option<Reason>, ApiError> {
    text.map(Reason::parse)
        .transpose()
        .map_err(|e| ValidationErrors::single("reason", e.to_string()).into())
}

// ------------------------------------------------- baskets and templates

/// Who may send a basket command (the domain still checks ownership).
#[derive(Clone, Copy)]
enum Access {
    /// Any person; the domain answers 404 to anyone but the owner.
    Person,
    /// Admins only (template commands).
    Admin,
}

/// What a basket command answers with.
enum Render {
    /// The basket with its strategies.
    Basket,
    /// The marketplace template.
    Template,
    /// One strategy of the basket.
    Strategy(StrategyId),
}

/// A body that must be empty or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EmptyBody)]
pub(crate) struct NoInput {}

/// Runs one command on the basket `raw_id`: checks the principal, reads the
/// body as `I`, lets `make` build the command, executes it and renders the
/// basket as it now is (201 when `created`).
#[allow(clippy::too_many_arguments)]
async fn basket_command<I, F>(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    raw_id: &str,
    body: Bytes,
    access: Access,
    created: bool,
    make: F,
) -> HttpResponse
where
    I: serde::de::DeserializeOwned,
    F: FnOnce(&CommandMeta, I) -> Result<(BasketCommand, Render), ApiError>,
{
    run(state, req, principal, body, |meta, body| async move {
        match access {
            Access::Person => person(principal).map(|_| ())?,
            Access::Admin => admin(principal).map(|_| ())?,
        }
        let id = BasketId::from_uuid(path_uuid(raw_id, "basket")?);
        let input: I = parse_body(req, &body)?;
        let (command, render) = make(&meta, input)?;
        let s = stream(basket::stream_name(&id))?;
        let executed =
            execute::<BasketAggregate, _>(state.store.as_ref(), &s, &meta, |_| Ok(command.clone()))
                .await?;
        let b = executed
            .state
            .basket
            .as_ref()
            .ok_or(ApiError::NotFound { what: "basket" })?;
        let body = match render {
            Render::Basket => views::basket(b),
            Render::Template => views::template(b),
            Render::Strategy(strategy_id) => {
                let s = b
                    .strategies
                    .iter()
                    .find(|s| s.strategy_id == strategy_id)
                    .ok_or(ApiError::NotFound { what: "strategy" })?;
                let mut body = views::strategy(s);
                if let Value::Object(map) = &mut body {
                    map.insert("basket_id".into(), json!(b.basket_id));
                    map.insert("basket_revision".into(), json!(b.revision));
                }
                body
            }
        };
        Ok(if created {
            Reply::created(body, executed.position)
        } else {
            Reply::ok(body, executed.position)
        })
    })
    .await
}

/// Create a basket
///
/// Creates a basket owned by the caller, with its strategies (ids are
/// assigned). Users and admins; only a basket created by an admin can later
/// be published as a template.
#[utoipa::path(
    post,
    path = "/baskets",
    tag = "Baskets",
    request_body = requests::BasketInput,
    responses(
        (status = 201, description = "The basket, created.", body = schemas::Basket),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn create_basket(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Body(body): Body,
) -> HttpResponse {
    let basket_id = BasketId::from_uuid(Uuid::now_v7());
    let raw_id = basket_id.to_string();
    basket_command(
        &state,
        &req,
        &principal,
        &raw_id,
        body,
        Access::Person,
        true,
        |meta, input: BasketInput| {
            let command = CreateBasket::from_input(
                meta.actor.clone(),
                basket_id,
                &input,
                || StrategyId::from_uuid(Uuid::now_v7()),
                meta.now,
            )?;
            Ok((command.into(), Render::Basket))
        },
    )
    .await
}

/// Rename, describe or recategorise a basket
///
/// Owner only (anyone else: 404). At least one member. Bumps the revision.
#[utoipa::path(
    put,
    path = "/baskets/{basket_id}",
    tag = "Baskets",
    params(
        ("basket_id" = Uuid, Path, description = "The basket (and template) id."),
    ),
    request_body = requests::UpdateBasketInput,
    responses(
        (status = 200, description = "The basket as it now is.", body = schemas::Basket),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn update_basket(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    basket_command(
        &state,
        &req,
        &principal,
        &path,
        body,
        Access::Person,
        false,
        |meta, input: UpdateBasketInput| {
            let command = UpdateBasket::from_input(meta.actor.clone(), &input, meta.now)?;
            Ok((command.into(), Render::Basket))
        },
    )
    .await
}

/// Add a strategy
///
/// Owner only. At most 50 strategies per basket. Subscribers of a template
/// run the new strategy from the next execution plan on.
#[utoipa::path(
    post,
    path = "/baskets/{basket_id}/strategies",
    tag = "Baskets",
    params(
        ("basket_id" = Uuid, Path, description = "The basket (and template) id."),
    ),
    request_body = requests::StrategyInput,
    responses(
        (status = 201, description = "The strategy, created, with the basket's new revision.", body = schemas::BasketStrategy),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn add_strategy(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    basket_command(
        &state,
        &req,
        &principal,
        &path,
        body,
        Access::Person,
        true,
        |meta, input: StrategyInput| {
            let strategy_id = StrategyId::from_uuid(Uuid::now_v7());
            let command = AddStrategy {
                actor: meta.actor.clone(),
                strategy: Strategy::parse(strategy_id, &input)?,
                now: meta.now,
            };
            Ok((command.into(), Render::Strategy(strategy_id)))
        },
    )
    .await
}

/// Replace a strategy
///
/// Owner only; the strategy keeps its id.
#[utoipa::path(
    put,
    path = "/baskets/{basket_id}/strategies/{strategy_id}",
    tag = "Baskets",
    params(
        ("basket_id" = Uuid, Path, description = "The basket (and template) id."),
        ("strategy_id" = Uuid, Path, description = "The strategy id."),
    ),
    request_body = requests::StrategyInput,
    responses(
        (status = 200, description = "The strategy as it now is.", body = schemas::BasketStrategy),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn replace_strategy(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<(String, String)>,
    Body(body): Body,
) -> HttpResponse {
    let (basket_id, strategy_id) = path.into_inner();
    basket_command(
        &state,
        &req,
        &principal,
        &basket_id,
        body,
        Access::Person,
        false,
        |meta, input: StrategyInput| {
            let strategy_id = StrategyId::from_uuid(path_uuid(&strategy_id, "strategy")?);
            let command = ReplaceStrategy {
                actor: meta.actor.clone(),
                strategy: Strategy::parse(strategy_id, &input)?,
                now: meta.now,
            };
            Ok((command.into(), Render::Strategy(strategy_id)))
        },
    )
    .await
}

/// Remove a strategy
///
/// Owner only. A published template cannot lose its last strategy (409
/// `template_needs_strategy`). The body, if any, must be `{}`.
#[utoipa::path(
    delete,
    path = "/baskets/{basket_id}/strategies/{strategy_id}",
    tag = "Baskets",
    params(
        ("basket_id" = Uuid, Path, description = "The basket (and template) id."),
        ("strategy_id" = Uuid, Path, description = "The strategy id."),
    ),
    request_body(content = Option<NoInput>, description = "Nothing, or `{}`."),
    responses(
        (status = 200, description = "The basket without the strategy.", body = schemas::Basket),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn remove_strategy(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<(String, String)>,
    Body(body): Body,
) -> HttpResponse {
    let (basket_id, strategy_id) = path.into_inner();
    basket_command(
        &state,
        &req,
        &principal,
        &basket_id,
        body,
        Access::Person,
        false,
        |meta, _: NoInput| {
            let command = RemoveStrategy {
                actor: meta.actor.clone(),
                strategy_id: StrategyId::from_uuid(path_uuid(&strategy_id, "strategy")?),
                now: meta.now,
            };
            Ok((command.into(), Render::Basket))
        },
    )
    .await
}

/// Publish a basket as a marketplace template
///
/// Admins, for a basket they created with at least one strategy. 409
/// `template_already_published`, `template_needs_strategy`.
#[utoipa::path(
    post,
    path = "/admin/marketplace/templates/{basket_id}",
    tag = "Templates",
    params(
        ("basket_id" = Uuid, Path, description = "The basket (and template) id."),
    ),
    request_body = requests::MarketplaceConfigInput,
    responses(
        (status = 201, description = "The template, published.", body = schemas::Template),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn publish_template(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    basket_command(
        &state,
        &req,
        &principal,
        &path,
        body,
        Access::Admin,
        true,
        |meta, input: MarketplaceConfigInput| {
            let command = PublishTemplate::from_input(meta.actor.clone(), &input, meta.now)?;
            Ok((command.into(), Render::Template))
        },
    )
    .await
}

/// Update a template's marketplace configuration
///
/// Admins. At least one member; a price change applies to new
/// subscriptions only. 409 `template_not_published`.
#[utoipa::path(
    put,
    path = "/admin/marketplace/templates/{basket_id}",
    tag = "Templates",
    params(
        ("basket_id" = Uuid, Path, description = "The basket (and template) id."),
    ),
    request_body = requests::MarketplaceConfigInput,
    responses(
        (status = 200, description = "The template as it now is.", body = schemas::Template),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn update_template(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    basket_command(
        &state,
        &req,
        &principal,
        &path,
        body,
        Access::Admin,
        false,
        |meta, input: MarketplaceConfigInput| {
            let command =
                UpdateMarketplaceConfig::from_input(meta.actor.clone(), &input, meta.now)?;
            Ok((command.into(), Render::Template))
        },
    )
    .await
}

/// Disable a template
///
/// Admins. The template leaves the marketplace and refuses new
/// subscriptions; existing subscriptions keep running. 409
/// `template_not_published`.
#[utoipa::path(
    delete,
    path = "/admin/marketplace/templates/{basket_id}",
    tag = "Templates",
    params(
        ("basket_id" = Uuid, Path, description = "The basket (and template) id."),
    ),
    request_body(content = Option<ReasonInput>, description = "An optional reason."),
    responses(
        (status = 200, description = "The template, disabled.", body = schemas::Template),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn unpublish_template(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    basket_command(
        &state,
        &req,
        &principal,
        &path,
        body,
        Access::Admin,
        false,
        |meta, input: ReasonInput| {
            let reason = input
                .reason
                .as_deref()
                .map(Reason::parse)
                .transpose()
                .map_err(|e| ValidationErrors::single("reason", e.to_string()))?;
            let command = UnpublishTemplate {
                actor: meta.actor.clone(),
                reason,
                now: meta.now,
            };
            Ok((command.into(), Render::Template))
        },
    )
    .await
}

// ------------------------------------------------------------ subscriptions

/// Body of `POST /marketplace/subscribe/{template_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscribeInput {
    /// Up to the allowed number of allocations; none when absent.
    #[schema(value_type = Option<Vec<requests::AllocationInput>>)]
    pub(crate) broker_allocations: Option<Vec<AllocationInput>>,
}

/// Body of `POST /partner/marketplace/subscribe`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartnerSubscribeInput {
    /// The template to subscribe to.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) template_id: Option<String>,
    /// The customer's e-mail: their identity (lower-cased).
    #[schema(value_type = String, format = Email, example = "asha@example.com")]
    pub(crate) user_email: Option<String>,
    /// The customer's account at the partner's broker; required with
    /// `auto_link_broker`.
    #[schema(min_length = 1, max_length = 64, example = "ZB1234")]
    pub(crate) broker_client_id: Option<String>,
    /// Link one allocation to the partner's broker (default `true`).
    pub(crate) auto_link_broker: Option<bool>,
    /// The linked allocation's multiplier; 1 when absent.
    #[schema(value_type = Option<requests::DecimalInput>)]
    pub(crate) lot_multiplier: Option<DecimalInput>,
}

/// Body of `PUT /user/subscriptions/{id}/allocations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllocationsInput {
    /// The new list (replacing the old one whole).
    #[schema(value_type = Vec<requests::AllocationInput>)]
    pub(crate) broker_allocations: Option<Vec<AllocationInput>>,
}

/// Everything a new subscription needs besides its template.
struct NewSubscription {
    user_id: UserId,
    email: Email,
    /// For a partner's subscription: its `partner_bps` is the credential's
    /// until [`reserve_and_subscribe`] replaces it with the share in force
    /// in the partner's stream (ADR 0015).
    partner: Option<PartnerAttribution>,
    allocations: Vec<BrokerAllocation>,
}

/// [`reserve_and_subscribe`], with a refusal for an existing subscription
/// naming it only to a caller who may read it: the person (their own), or
/// the partner that made it. Anyone else learns only that the person
/// already subscribes, so a partner cannot probe for other partners'
/// customers (ADR 0015).
async fn subscribe_to(
    store: &dyn EventStore,
    meta: &CommandMeta,
    template_id: TemplateId,
    new: NewSubscription,
) -> Result<crate::command::Executed<SubscriptionState, SubscriptionEvent>, ApiError> {
    let partner = new.partner.as_ref().map(|p| p.partner_id.clone());
    match reserve_and_subscribe(store, meta, template_id, new).await {
        Err(ApiError::Domain(DomainError::AlreadySubscribed { subscription_id })) => {
            let Some(partner_id) = partner else {
                return Err(DomainError::AlreadySubscribed { subscription_id }.into());
            };
            let s = stream(subscription::stream_name(&subscription_id))?;
            let existing = load::<SubscriptionAggregate>(store, &s).await?;
            if existing.state.is_owned_by_partner(&partner_id) {
                Err(DomainError::AlreadySubscribed { subscription_id }.into())
            } else {
                Err(ApiError::AlreadySubscribedUnnamed)
            }
        }
        other => other,
    }
}

/// Reserves (user, template) in the user's stream, then records the
/// subscription. A reservation left by a cancelled subscription (a crash
/// between cancel and release) is released and the reservation retried;
/// so is one whose subscription never appeared within
/// [`ABANDONED_RESERVATION`], once its subscription stream is claimed.
async fn reserve_and_subscribe(
    store: &dyn EventStore,
    meta: &CommandMeta,
    template_id: TemplateId,
    mut new: NewSubscription,
) -> Result<crate::command::Executed<SubscriptionState, SubscriptionEvent>, ApiError> {
    let template_stream = stream(basket::stream_name(&template_id))?;
    let link_stream = stream(user_link::stream_name(&new.user_id))?;
    // Three independent reads, at once: the template, the person's stream
    // (where the reservation goes; its first attempt decides on this load)
    // and, for a partner, the partner's stream for the share in force.
    let (template, link, share) = futures::try_join!(
        async {
            load::<BasketAggregate>(store, &template_stream)
                .await
                .map_err(ApiError::from)
        },
        async {
            load::<UserLinkAggregate>(store, &link_stream)
                .await
                .map_err(ApiError::from)
        },
        partner_share_in_force(store, new.partner.as_ref()),
    )?;
    if let (Some(partner), Some(bps)) = (new.partner.as_mut(), share) {
        partner.partner_bps = bps;
    }
    let terms = template
        .state
        .template_terms()
        .ok_or(ApiError::NotFound { what: "template" })?;
    if !terms.enabled {
        return Err(DomainError::TemplateNotAvailable.into());
    }
    let subscription_id = SubscriptionId::from_uuid(Uuid::now_v7());
    let mut link = Some(link);
    for _ in 0..2 {
        let reserved =
            execute_from::<UserLinkAggregate, _>(store, &link_stream, meta, link.take(), |_| {
                Ok(ReserveTemplateSubscription {
                    user_id: new.user_id,
                    template_id,
                    subscription_id,
                    now: meta.now,
                }
                .into())
            })
            .await;
        match reserved {
            Ok(_) => break,
            Err(ApiError::Domain(DomainError::AlreadySubscribed {
                subscription_id: existing,
            })) => {
                let existing_stream = stream(subscription::stream_name(&existing))?;
                let current = load::<SubscriptionAggregate>(store, &existing_stream).await?;
                let stale = match current.state.subscription.as_ref() {
                    Some(s) => {
                        s.status == basketry_domain::subscription::SubscriptionStatus::Cancelled
                    }
                    // Reserved but never written: another request is still
                    // on its way (the winner of a race), or one crashed
                    // between its two appends long ago. Before releasing,
                    // claim its stream, so that the request, if it is only
                    // slow, fails its `NoStream` append instead of making a
                    // second live subscription.
                    None => {
                        reserved_before(store, &link_stream, existing, meta.now).await?
                            && abandon(store, meta, &existing_stream, &new, template_id, existing)
                                .await?
                    }
                };
                if !stale {
                    return Err(DomainError::AlreadySubscribed {
                        subscription_id: existing,
                    }
                    .into());
                }
                release(store, meta, new.user_id, template_id, existing).await?;
            }
            Err(e) => return Err(e),
        }
    }
    let s = stream(subscription::stream_name(&subscription_id))?;
    // The id was generated above, so its stream is new: the first attempt
    // decides on the empty state without reading it, and appends expecting
    // no stream (a stream there after all is a conflict, then reloaded).
    execute_from::<SubscriptionAggregate, _>(store, &s, meta, Some(Loaded::empty()), |_| {
        Ok(SubscribeToTemplate {
            actor: meta.actor.clone(),
            subscription_id,
            user_id: new.user_id,
            user_email: new.email.clone(),
            template: terms.clone(),
            partner: new.partner.clone(),
            allocations: new.allocations.clone(),
            now: meta.now,
        }
        .into())
    })
    .await
}

/// The partner's revenue share in force, read from its stream, for a
/// partner subscription (`None` for a person's own, or when the stream
/// holds no share: the credential's then stands).
async fn partner_share_in_force(
    store: &dyn EventStore,
    partner: Option<&PartnerAttribution>,
) -> Result<Option<BasisPoints>, ApiError> {
    let Some(partner) = partner else {
        return Ok(None);
    };
    let s = stream(partner::stream_name(&partner.partner_id))?;
    let loaded = load::<PartnerAggregate>(store, &s).await?;
    Ok(loaded.state.revenue_share().map(|r| r.partner_bps()))
}

/// How long a reservation may wait for its subscription before it counts as
/// abandoned by a crashed request.
const ABANDONED_RESERVATION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Whether the reservation of `subscription_id` in the user's stream was
/// recorded more than [`ABANDONED_RESERVATION`] before `now`.
async fn reserved_before(
    store: &dyn EventStore,
    link_stream: &StreamId,
    subscription_id: SubscriptionId,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let events = store
        .read_stream(link_stream, basketry_store::Revision::START)
        .await?;
    for e in events.iter().rev() {
        let decoded = UserLinkEvent::from_stored(&e.event_type, e.schema_version, e.data.clone())
            .map_err(|err| ApiError::Internal(format!("{link_stream}: {err}")))?;
        if let UserLinkEvent::TemplateSubscriptionReserved(r) = decoded {
            if r.subscription_id == subscription_id {
                return Ok(e.metadata.recorded_at + ABANDONED_RESERVATION < now);
            }
        }
    }
    Ok(false)
}

/// Claims the empty stream of the abandoned `subscription_id` with
/// `SubscriptionAbandoned`. True when it is abandoned (now or before), so
/// its reservation may go; false when its subscription appeared after all.
async fn abandon(
    store: &dyn EventStore,
    meta: &CommandMeta,
    subscription_stream: &StreamId,
    new: &NewSubscription,
    template_id: TemplateId,
    subscription_id: SubscriptionId,
) -> Result<bool, ApiError> {
    let claimed = execute::<SubscriptionAggregate, _>(store, subscription_stream, meta, |_| {
        Ok(AbandonSubscription {
            actor: meta.actor.clone(),
            subscription_id,
            user_id: new.user_id,
            template_id,
            now: meta.now,
        }
        .into())
    })
    .await?;
    Ok(match claimed.state.subscription {
        Some(s) => s.status == basketry_domain::subscription::SubscriptionStatus::Cancelled,
        None => claimed.state.abandoned,
    })
}

async fn release(
    store: &dyn EventStore,
    meta: &CommandMeta,
    user_id: UserId,
    template_id: TemplateId,
    subscription_id: SubscriptionId,
) -> Result<(), ApiError> {
    let link_stream = stream(user_link::stream_name(&user_id))?;
    execute::<UserLinkAggregate, _>(store, &link_stream, meta, |_| {
        Ok(ReleaseTemplateSubscription {
            user_id,
            template_id,
            subscription_id,
            now: meta.now,
        }
        .into())
    })
    .await?;
    Ok(())
}

/// Subscribe to a template
///
/// The caller subscribes to an enabled template (PUBLIC or PRIVATE) by
/// reference, with optional broker allocations. A PAID template charges
/// the first month now. At most one live subscription per user and
/// template: 409 `already_subscribed` names it in `subscription_id`; 409
/// `template_not_available` for a disabled template.
#[utoipa::path(
    post,
    path = "/marketplace/subscribe/{template_id}",
    tag = "Subscriptions",
    params(
        ("template_id" = Uuid, Path, description = "The template id (the basket id)."),
    ),
    request_body(content = Option<SubscribeInput>, description = "Optional broker allocations."),
    responses(
        (status = 201, description = "The subscription, created, with its first charge.", body = schemas::NewSubscription),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn subscribe(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        let who = person(principal)?;
        let template_id = TemplateId::from_uuid(path_uuid(&path, "template")?);
        let input: SubscribeInput = parse_body(req, &body)?;
        let allocations = BrokerAllocation::parse_list(
            input.broker_allocations.as_deref().unwrap_or_default(),
            || AllocationId::from_uuid(Uuid::now_v7()),
        )?;
        let executed = subscribe_to(
            state.store.as_ref(),
            &meta,
            template_id,
            NewSubscription {
                user_id: who.user_id,
                email: who.email.clone(),
                partner: None,
                allocations,
            },
        )
        .await?;
        let sub = executed
            .state
            .subscription
            .as_ref()
            .ok_or(ApiError::NotFound {
                what: "subscription",
            })?;
        let mut body = views::subscription(sub);
        if let Value::Object(map) = &mut body {
            map.insert("first_charge".into(), first_charge(&executed.events));
        }
        Ok(Reply::created(body, executed.position))
    })
    .await
}

/// The charge recorded at subscription, if the template is paid.
fn first_charge(events: &[SubscriptionEvent]) -> Value {
    events
        .iter()
        .find_map(|e| match e {
            SubscriptionEvent::SubscriptionCharged(c) => Some(json!({
                "amount": c.amount,
                "currency": c.currency,
                "period_start": c.period_start,
                "period_end": c.period_end,
                "partner_share": c.partner_share,
                "platform_share": c.platform_share,
            })),
            _ => None,
        })
        .unwrap_or(Value::Null)
}

/// Moves field errors of the partner body to its own field names.
fn partner_fields(errors: ValidationErrors) -> ValidationErrors {
    ValidationErrors(
        errors
            .0
            .into_iter()
            .map(|FieldError { field, message }| FieldError {
                field: match field.as_str() {
                    "broker_allocations[0].client_id" => "broker_client_id".into(),
                    "broker_allocations[0].lot_multiplier" => "lot_multiplier".into(),
                    _ => field,
                },
                message,
            })
            .collect(),
    )
}

/// Subscribe a customer (partner)
///
/// Needs `marketplace:subscribe`. Subscribes the person `user_email` (the
/// same user as when they log in themselves) to a template, attributed to
/// the partner; with `auto_link_broker` (the default) one allocation is
/// linked to the partner's `broker_id` and `broker_client_id`. 409
/// `already_subscribed`, `template_not_available`.
#[utoipa::path(
    post,
    path = "/partner/marketplace/subscribe",
    tag = "Partner API",
    request_body = PartnerSubscribeInput,
    responses(
        (status = 201, description = "The subscription, created.", body = schemas::PartnerSubscription),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("partner_key" = [], "partner_secret" = [])),
)]
async fn partner_subscribe(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        let p = partner(principal, Permission::MarketplaceSubscribe)?;
        let input: PartnerSubscribeInput = parse_body(req, &body)?;
        let mut errors = Vec::new();
        let template_id = match input.template_id.as_deref().map(Uuid::from_str) {
            Some(Ok(id)) => Some(TemplateId::from_uuid(id)),
            Some(Err(_)) => {
                errors.push(FieldError {
                    field: "template_id".into(),
                    message: "must be a template id (UUID)".into(),
                });
                None
            }
            None => {
                errors.push(FieldError {
                    field: "template_id".into(),
                    message: "is required".into(),
                });
                None
            }
        };
        let email = match input.user_email.as_deref().map(Email::parse) {
            Some(Ok(e)) => Some(e),
            Some(Err(e)) => {
                errors.push(FieldError {
                    field: "user_email".into(),
                    message: e.to_string(),
                });
                None
            }
            None => {
                errors.push(FieldError {
                    field: "user_email".into(),
                    message: "is required".into(),
                });
                None
            }
        };
        let allocations = if input.auto_link_broker.unwrap_or(true) {
            let one = AllocationInput {
                allocation_id: None,
                broker_id: Some(p.broker_id.to_string()),
                client_id: input.broker_client_id.clone(),
                lot_multiplier: Some(
                    input
                        .lot_multiplier
                        .clone()
                        .unwrap_or(DecimalInput::Text("1".into())),
                ),
                priority: Some(1),
                max_lots_per_order: None,
            };
            match BrokerAllocation::parse_list(&[one], || AllocationId::from_uuid(Uuid::now_v7())) {
                Ok(list) => list,
                Err(e) => {
                    errors.extend(partner_fields(e).0);
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let (Some(template_id), Some(email), true) = (template_id, email, errors.is_empty()) else {
            return Err(ValidationErrors(errors).into());
        };
        let user_id = UserId::from_email(&email);
        // The share in force is the partner stream's, not the credential
        // cache's (which other instances may hold for a while): this one
        // stands only until `reserve_and_subscribe` has read the stream.
        let partner_bps = p.revenue_share.partner_bps();
        let executed = subscribe_to(
            state.store.as_ref(),
            &meta,
            template_id,
            NewSubscription {
                user_id,
                email,
                partner: Some(PartnerAttribution {
                    partner_id: p.partner_id.clone(),
                    api_key_id: p.api_key_id,
                    broker_id: p.broker_id.clone(),
                    partner_bps,
                }),
                allocations,
            },
        )
        .await?;
        let sub = executed
            .state
            .subscription
            .as_ref()
            .ok_or(ApiError::NotFound {
                what: "subscription",
            })?;
        let charge = executed.events.iter().find_map(|e| match e {
            SubscriptionEvent::SubscriptionCharged(c) => Some(c),
            _ => None,
        });
        let body = json!({
            "subscription_id": sub.subscription_id,
            "user_id": sub.user_id,
            "template_id": sub.template_id,
            "status": sub.status,
            "broker_allocation": sub.allocations.first().map(|a| json!({
                "allocation_id": a.allocation_id,
                "broker_id": a.broker_id,
                "client_id": a.client_id,
                "lot_multiplier": a.lot_multiplier,
                "status": "LINKED",
            })),
            "revenue_share": {
                "partner_commission": charge.map_or(0, |c| c.partner_share),
                "platform_fee": charge.map_or(0, |c| c.platform_share),
                "currency": sub.price.currency(),
            },
            "next_billing_date": sub.billing.as_ref().map(|b| b.next_billing_date.date_naive()),
        });
        Ok(Reply::created(body, executed.position))
    })
    .await
}

/// Who is changing a subscription, and therefore which ones they may see.
enum Owner<'a> {
    User(&'a Person),
    Partner(&'a PartnerPrincipal),
}

fn owns(owner: &Owner<'_>, state: &SubscriptionState) -> bool {
    match owner {
        Owner::User(p) => state.is_owned_by_user(&p.user_id),
        Owner::Partner(p) => state.is_owned_by_partner(&p.partner_id),
    }
}

/// The partner's revenue share in force now, for charges made on resume.
async fn partner_bps_now(
    store: &dyn EventStore,
    state: &SubscriptionState,
) -> Result<Option<BasisPoints>, ApiError> {
    let Some(attribution) = state.subscription.as_ref().and_then(|s| s.partner.as_ref()) else {
        return Ok(None);
    };
    let s = stream(partner::stream_name(&attribution.partner_id))?;
    let loaded = load::<PartnerAggregate>(store, &s).await?;
    Ok(Some(
        loaded
            .state
            .revenue_share()
            .map_or(attribution.partner_bps, |r| r.partner_bps()),
    ))
}

#[derive(Clone, Copy)]
enum Change {
    Pause,
    Resume,
    Cancel,
}

async fn change_status(
    state: &AppState,
    meta: &CommandMeta,
    owner: Owner<'_>,
    raw_id: &str,
    change: Change,
    reason: Option<Reason>,
) -> Result<Reply, ApiError> {
    let id = SubscriptionId::from_uuid(path_uuid(raw_id, "subscription")?);
    let s = stream(subscription::stream_name(&id))?;
    let store = state.store.as_ref();
    let current = load::<SubscriptionAggregate>(store, &s).await?;
    if !owns(&owner, &current.state) {
        return Err(ApiError::NotFound {
            what: "subscription",
        });
    }
    let bps_now = match change {
        Change::Resume => partner_bps_now(store, &current.state).await?,
        _ => None,
    };
    let executed = execute::<SubscriptionAggregate, _>(store, &s, meta, |loaded| {
        if !owns(&owner, &loaded.state) {
            return Err(ApiError::NotFound {
                what: "subscription",
            });
        }
        Ok(match change {
            Change::Pause => PauseSubscription {
                actor: meta.actor.clone(),
                reason: reason.clone(),
                now: meta.now,
            }
            .into(),
            Change::Resume => ResumeSubscription {
                actor: meta.actor.clone(),
                reason: reason.clone(),
                partner_bps_now: bps_now,
                now: meta.now,
            }
            .into(),
            Change::Cancel => CancelSubscription {
                actor: meta.actor.clone(),
                reason: reason.clone(),
                now: meta.now,
            }
            .into(),
        })
    })
    .await?;
    let sub = executed
        .state
        .subscription
        .as_ref()
        .ok_or(ApiError::NotFound {
            what: "subscription",
        })?;
    let mut position = executed.position;
    if let Change::Cancel = change {
        release(
            store,
            meta,
            sub.user_id,
            sub.template_id,
            sub.subscription_id,
        )
        .await?;
        // The release is the command's last event when it wrote one.
        let link = load::<UserLinkAggregate>(store, &stream(user_link::stream_name(&sub.user_id))?)
            .await?;
        position = position.max(link.position);
    }
    Ok(Reply::ok(views::subscription(sub), position))
}

/// A status-change handler: `$owner` decides who may call it, `$change`
/// what it does; the attributes (docs, OpenAPI) go on the function.
macro_rules! status_route {
    ($(#[$attr:meta])* $name:ident, $owner:expr, $change:expr) => {
        $(#[$attr])*
        async fn $name(
            state: Data<AppState>,
            req: HttpRequest,
            principal: Principal,
            path: Path<String>,
            Body(body): Body,
        ) -> HttpResponse {
            let (state, req, principal) = (&state, &req, &principal);
            run(state, req, principal, body, |meta, body| async move {
                let owner = $owner(&principal)?;
                let reason = reason(&req, &body)?;
                change_status(&state, &meta, owner, &path, $change, reason).await
            })
            .await
        }
    };
}

fn as_user(principal: &Principal) -> Result<Owner<'_>, ApiError> {
    person(principal).map(Owner::User)
}

fn as_partner(principal: &Principal) -> Result<Owner<'_>, ApiError> {
    partner(principal, Permission::SubscriptionsManage).map(Owner::Partner)
}

status_route!(
    /// Pause a subscription
    ///
    /// The subscriber only. A paused subscription is not charged and gets no
    /// orders. 409 `invalid_transition` unless ACTIVE.
    #[utoipa::path(
        put,
        path = "/user/subscriptions/{id}/pause",
        tag = "Subscriptions",
        params(
            ("id" = Uuid, Path, description = "The subscription id."),
        ),
        request_body(content = Option<ReasonInput>, description = "An optional reason, kept in the status history."),
        responses(
            (status = 200, description = "The subscription, paused.", body = schemas::Subscription),
            (status = 400, response = schemas::BadRequest),
            (status = 401, response = schemas::Unauthorized),
            (status = 403, response = schemas::Forbidden),
            (status = 404, response = schemas::NotFound),
            (status = 409, response = schemas::Conflict),
            (status = 413, response = schemas::PayloadTooLarge),
            (status = 415, response = schemas::UnsupportedMediaType),
            (status = 422, response = schemas::UnprocessableEntity),
            (status = 429, response = schemas::TooManyRequests),
            (status = 500, response = schemas::InternalError),
            (status = 503, response = schemas::ServiceUnavailable),
        ),
        security(("bearer_jwt" = [])),
    )]
    user_pause, as_user, Change::Pause
);
status_route!(
    /// Resume a subscription
    ///
    /// The subscriber only. If the paid period is over, a new one starts now
    /// and is charged. 409 `invalid_transition` unless PAUSED.
    #[utoipa::path(
        put,
        path = "/user/subscriptions/{id}/resume",
        tag = "Subscriptions",
        params(
            ("id" = Uuid, Path, description = "The subscription id."),
        ),
        request_body(content = Option<ReasonInput>, description = "An optional reason, kept in the status history."),
        responses(
            (status = 200, description = "The subscription, active again.", body = schemas::Subscription),
            (status = 400, response = schemas::BadRequest),
            (status = 401, response = schemas::Unauthorized),
            (status = 403, response = schemas::Forbidden),
            (status = 404, response = schemas::NotFound),
            (status = 409, response = schemas::Conflict),
            (status = 413, response = schemas::PayloadTooLarge),
            (status = 415, response = schemas::UnsupportedMediaType),
            (status = 422, response = schemas::UnprocessableEntity),
            (status = 429, response = schemas::TooManyRequests),
            (status = 500, response = schemas::InternalError),
            (status = 503, response = schemas::ServiceUnavailable),
        ),
        security(("bearer_jwt" = [])),
    )]
    user_resume, as_user, Change::Resume
);
status_route!(
    /// Cancel a subscription
    ///
    /// The subscriber only. Immediate and final, without refund. 409
    /// `invalid_transition` when already cancelled.
    #[utoipa::path(
        delete,
        path = "/user/subscriptions/{id}",
        tag = "Subscriptions",
        params(
            ("id" = Uuid, Path, description = "The subscription id."),
        ),
        request_body(content = Option<ReasonInput>, description = "An optional reason, kept in the status history."),
        responses(
            (status = 200, description = "The subscription, cancelled.", body = schemas::Subscription),
            (status = 400, response = schemas::BadRequest),
            (status = 401, response = schemas::Unauthorized),
            (status = 403, response = schemas::Forbidden),
            (status = 404, response = schemas::NotFound),
            (status = 409, response = schemas::Conflict),
            (status = 413, response = schemas::PayloadTooLarge),
            (status = 415, response = schemas::UnsupportedMediaType),
            (status = 422, response = schemas::UnprocessableEntity),
            (status = 429, response = schemas::TooManyRequests),
            (status = 500, response = schemas::InternalError),
            (status = 503, response = schemas::ServiceUnavailable),
        ),
        security(("bearer_jwt" = [])),
    )]
    user_cancel, as_user, Change::Cancel
);
status_route!(
    /// Pause a customer's subscription (partner)
    ///
    /// Needs `subscriptions:manage`; only subscriptions the partner created
    /// (others: 404). 409 `invalid_transition` unless ACTIVE.
    #[utoipa::path(
        put,
        path = "/partner/subscriptions/{id}/pause",
        tag = "Partner API",
        params(
            ("id" = Uuid, Path, description = "The subscription id."),
        ),
        request_body(content = Option<ReasonInput>, description = "An optional reason, kept in the status history."),
        responses(
            (status = 200, description = "The subscription, paused.", body = schemas::Subscription),
            (status = 400, response = schemas::BadRequest),
            (status = 401, response = schemas::Unauthorized),
            (status = 403, response = schemas::Forbidden),
            (status = 404, response = schemas::NotFound),
            (status = 409, response = schemas::Conflict),
            (status = 413, response = schemas::PayloadTooLarge),
            (status = 415, response = schemas::UnsupportedMediaType),
            (status = 422, response = schemas::UnprocessableEntity),
            (status = 429, response = schemas::TooManyRequests),
            (status = 500, response = schemas::InternalError),
            (status = 503, response = schemas::ServiceUnavailable),
        ),
        security(("partner_key" = [], "partner_secret" = [])),
    )]
    partner_pause, as_partner, Change::Pause
);
status_route!(
    /// Resume a customer's subscription (partner)
    ///
    /// Needs `subscriptions:manage`; only subscriptions the partner created.
    /// 409 `invalid_transition` unless PAUSED.
    #[utoipa::path(
        put,
        path = "/partner/subscriptions/{id}/resume",
        tag = "Partner API",
        params(
            ("id" = Uuid, Path, description = "The subscription id."),
        ),
        request_body(content = Option<ReasonInput>, description = "An optional reason, kept in the status history."),
        responses(
            (status = 200, description = "The subscription, active again.", body = schemas::Subscription),
            (status = 400, response = schemas::BadRequest),
            (status = 401, response = schemas::Unauthorized),
            (status = 403, response = schemas::Forbidden),
            (status = 404, response = schemas::NotFound),
            (status = 409, response = schemas::Conflict),
            (status = 413, response = schemas::PayloadTooLarge),
            (status = 415, response = schemas::UnsupportedMediaType),
            (status = 422, response = schemas::UnprocessableEntity),
            (status = 429, response = schemas::TooManyRequests),
            (status = 500, response = schemas::InternalError),
            (status = 503, response = schemas::ServiceUnavailable),
        ),
        security(("partner_key" = [], "partner_secret" = [])),
    )]
    partner_resume, as_partner, Change::Resume
);
status_route!(
    /// Cancel a customer's subscription (partner)
    ///
    /// Needs `subscriptions:manage`; only subscriptions the partner created.
    /// Immediate and final.
    #[utoipa::path(
        delete,
        path = "/partner/subscriptions/{id}",
        tag = "Partner API",
        params(
            ("id" = Uuid, Path, description = "The subscription id."),
        ),
        request_body(content = Option<ReasonInput>, description = "An optional reason, kept in the status history."),
        responses(
            (status = 200, description = "The subscription, cancelled.", body = schemas::Subscription),
            (status = 400, response = schemas::BadRequest),
            (status = 401, response = schemas::Unauthorized),
            (status = 403, response = schemas::Forbidden),
            (status = 404, response = schemas::NotFound),
            (status = 409, response = schemas::Conflict),
            (status = 413, response = schemas::PayloadTooLarge),
            (status = 415, response = schemas::UnsupportedMediaType),
            (status = 422, response = schemas::UnprocessableEntity),
            (status = 429, response = schemas::TooManyRequests),
            (status = 500, response = schemas::InternalError),
            (status = 503, response = schemas::ServiceUnavailable),
        ),
        security(("partner_key" = [], "partner_secret" = [])),
    )]
    partner_cancel, as_partner, Change::Cancel
);

/// Replace a subscription's broker allocations
///
/// The subscriber only. The whole list is replaced; an allocation that
/// brings its `allocation_id` keeps it.
#[utoipa::path(
    put,
    path = "/user/subscriptions/{id}/allocations",
    tag = "Subscriptions",
    params(
        ("id" = Uuid, Path, description = "The subscription id."),
    ),
    request_body = AllocationsInput,
    responses(
        (status = 200, description = "The subscription as it now is.", body = schemas::Subscription),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn user_allocations(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        let who = person(principal)?;
        let id = SubscriptionId::from_uuid(path_uuid(&path, "subscription")?);
        let input: AllocationsInput = parse_body(req, &body)?;
        let Some(inputs) = input.broker_allocations else {
            return Err(ValidationErrors::single("broker_allocations", "is required").into());
        };
        let allocations =
            BrokerAllocation::parse_list(&inputs, || AllocationId::from_uuid(Uuid::now_v7()))?;
        let s = stream(subscription::stream_name(&id))?;
        let executed =
            execute::<SubscriptionAggregate, _>(state.store.as_ref(), &s, &meta, |loaded| {
                if !loaded.state.is_owned_by_user(&who.user_id) {
                    return Err(ApiError::NotFound {
                        what: "subscription",
                    });
                }
                Ok(SetBrokerAllocations {
                    actor: meta.actor.clone(),
                    allocations: allocations.clone(),
                    now: meta.now,
                }
                .into())
            })
            .await?;
        let sub = executed
            .state
            .subscription
            .as_ref()
            .ok_or(ApiError::NotFound {
                what: "subscription",
            })?;
        Ok(Reply::ok(views::subscription(sub), executed.position))
    })
    .await
}

// ----------------------------------------------------------- partner keys

async fn partner_of_key(
    store: &dyn EventStore,
    raw: &str,
) -> Result<(ApiKeyId, PartnerId, StreamId), ApiError> {
    let api_key_id = ApiKeyId::from_uuid(path_uuid(raw, "api key")?);
    let index =
        load::<ApiKeyIndexAggregate>(store, &stream(api_key_index::stream_name(&api_key_id))?)
            .await?;
    let partner_id = index
        .state
        .partner_id
        .ok_or(ApiError::NotFound { what: "api key" })?;
    let s = stream(partner::stream_name(&partner_id))?;
    Ok((api_key_id, partner_id, s))
}

fn key_reply(
    state: &PartnerState,
    api_key_id: ApiKeyId,
    secret: Option<&str>,
    created: bool,
    position: Option<basketry_store::Position>,
) -> Result<Reply, ApiError> {
    let p = state
        .partner
        .as_ref()
        .ok_or(ApiError::NotFound { what: "api key" })?;
    let key = p
        .keys
        .get(&api_key_id)
        .ok_or(ApiError::NotFound { what: "api key" })?;
    let mut body = views::api_key(p, key);
    if let (Some(secret), Value::Object(map)) = (secret, &mut body) {
        map.insert("api_secret".into(), json!(secret));
    }
    let reply = if created {
        Reply::created(body, position)
    } else {
        Reply::ok(body, position)
    };
    // The secret is shown once: an Idempotency-Key replay answers without it.
    Ok(if secret.is_some() {
        reply.shown_once("api_secret")
    } else {
        reply
    })
}

async fn new_secret_hash(partner_id: &PartnerId) -> Result<(String, SecretHash), ApiError> {
    let secret = generate_secret(partner_id);
    let hash = hash_secret_async(&secret).await?;
    Ok((secret.expose().to_string(), hash))
}

/// Register a partner and issue its key
///
/// Admins. Answers the key and its secret; the secret is shown this once.
/// For a partner that exists, issues an additional key (its own id and
/// secret) beside the partner's other keys, even if they are all revoked;
/// the configuration members are then checked but not applied (change them
/// with `PUT /admin/partner-api-keys/{api_key_id}`). Rate limits count all
/// of a partner's keys together.
#[utoipa::path(
    post,
    path = "/admin/partner-api-keys",
    tag = "Partner keys",
    request_body = requests::RegisterPartnerInput,
    responses(
        (status = 201, description = "The key and, once, its secret.", body = schemas::IssuedApiKey),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn create_api_key(
    state: Data<AppState>,
    auth: Data<AuthState>,
    req: HttpRequest,
    principal: Principal,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        admin(principal)?;
        let input: RegisterPartnerInput = parse_body(req, &body)?;
        let register = RegisterPartner::from_input(meta.actor.clone(), &input, meta.now)?;
        let partner_id = register.partner_id.clone();
        let api_key_id = ApiKeyId::from_uuid(Uuid::now_v7());
        let key = generate_api_key(&partner_id);
        let (secret, hash) = new_secret_hash(&partner_id).await?;
        let store = state.store.as_ref();
        execute::<ApiKeyIndexAggregate, _>(
            store,
            &stream(api_key_index::stream_name(&api_key_id))?,
            &meta,
            |_| {
                Ok(AssignApiKey {
                    api_key_id,
                    partner_id: partner_id.clone(),
                    now: meta.now,
                }
                .into())
            },
        )
        .await?;
        let s = stream(partner::stream_name(&partner_id))?;
        let issue = IssueApiKey {
            actor: meta.actor.clone(),
            api_key_id,
            key,
            secret_hash: hash,
            now: meta.now,
        };
        // Register and issue in one append: a partner never exists without
        // the key it was created for. A partner that exists gets one more
        // key beside the ones it has (any of them suspended or revoked);
        // its configuration is left as it is (ADR 0015).
        let executed = execute_many::<PartnerAggregate, _>(store, &s, &meta, |loaded| {
            if loaded.exists() {
                Ok(vec![issue.clone().into()])
            } else {
                Ok(vec![register.clone().into(), issue.clone().into()])
            }
        })
        .await?;
        auth.partners.invalidate_partner(&partner_id);
        key_reply(
            &executed.state,
            api_key_id,
            Some(&secret),
            true,
            executed.position,
        )
    })
    .await
}

/// Body of `PUT /admin/partner-api-keys/{id}`: partner config and key status.
/// Documented as [`requests::UpdateApiKeyInput`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKeyInput {
    #[serde(flatten)]
    pub(crate) config: UpdatePartnerConfigInput,
    pub(crate) status: Option<String>,
    pub(crate) reason: Option<String>,
}

/// Update a partner's configuration or a key's status
///
/// Admins. Configuration members replace the partner's (objects whole);
/// `status` suspends, reactivates or revokes this key. 409
/// `api_key_revoked` once revoked.
#[utoipa::path(
    put,
    path = "/admin/partner-api-keys/{api_key_id}",
    tag = "Partner keys",
    params(
        ("api_key_id" = Uuid, Path, description = "The API key id."),
    ),
    request_body = requests::UpdateApiKeyInput,
    responses(
        (status = 200, description = "The key as it now is (never the secret).", body = schemas::ApiKey),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn update_api_key(
    state: Data<AppState>,
    auth: Data<AuthState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        admin(principal)?;
        let input: UpdateKeyInput = parse_body(req, &body)?;
        let store = state.store.as_ref();
        let (api_key_id, partner_id, s) = partner_of_key(store, &path).await?;
        let config_given = input.config != UpdatePartnerConfigInput::default();
        let mut commands: Vec<PartnerCommand> = Vec::new();
        let mut errors = Vec::new();
        if config_given || input.status.is_none() {
            match UpdatePartnerConfig::from_input(meta.actor.clone(), &input.config, meta.now) {
                Ok(c) => commands.push(c.into()),
                Err(e) => errors.extend(e.0),
            }
        }
        let reason = match input.reason.as_deref().map(Reason::parse).transpose() {
            Ok(r) => r,
            Err(e) => {
                errors.push(FieldError {
                    field: "reason".into(),
                    message: e.to_string(),
                });
                None
            }
        };
        if let Some(status) = input.status.as_deref() {
            match ApiKeyStatus::parse(status) {
                Ok(ApiKeyStatus::Revoked) => commands.push(
                    RevokeApiKey {
                        actor: meta.actor.clone(),
                        api_key_id,
                        reason: reason.clone(),
                        now: meta.now,
                    }
                    .into(),
                ),
                Ok(status) => commands.push(
                    SetApiKeyStatus {
                        actor: meta.actor.clone(),
                        api_key_id,
                        status,
                        reason: reason.clone(),
                        now: meta.now,
                    }
                    .into(),
                ),
                Err(e) => errors.push(FieldError {
                    field: "status".into(),
                    message: e.to_string(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(ValidationErrors(errors).into());
        }
        let executed = execute_all(store, &s, &meta, &commands).await?;
        auth.partners.invalidate_partner(&partner_id);
        key_reply(&executed.0, api_key_id, None, false, executed.1)
    })
    .await
}

/// Decides several commands on an existing partner's stream and appends
/// their events together; a partner that does not exist is 404.
async fn execute_all(
    store: &dyn EventStore,
    s: &StreamId,
    meta: &CommandMeta,
    commands: &[PartnerCommand],
) -> Result<(PartnerState, Option<basketry_store::Position>), ApiError> {
    let executed = execute_many::<PartnerAggregate, _>(store, s, meta, |loaded| {
        if !loaded.exists() {
            return Err(ApiError::NotFound { what: "api key" });
        }
        Ok(commands.to_vec())
    })
    .await?;
    Ok((executed.state, executed.position))
}

/// Body of `POST /admin/partner-api-keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateInput {
    /// Hours the previous secret keeps working, 0–168; 0 when absent.
    #[schema(minimum = 0, maximum = 168, example = 24)]
    pub(crate) grace_period_hours: Option<i64>,
}

/// Rotate a key's secret
///
/// Admins. Issues a new secret, shown once. The previous one stops at once,
/// or after `grace_period_hours` (at most 168).
#[utoipa::path(
    post,
    path = "/admin/partner-api-keys/{api_key_id}/rotate",
    tag = "Partner keys",
    params(
        ("api_key_id" = Uuid, Path, description = "The API key id."),
    ),
    request_body(content = Option<RotateInput>, description = "An optional grace period."),
    responses(
        (status = 200, description = "The key with its new secret.", body = schemas::RotatedApiKey),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn rotate_api_key(
    state: Data<AppState>,
    auth: Data<AuthState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        admin(principal)?;
        let input: RotateInput = parse_body(req, &body)?;
        let grace = GracePeriodHours::new(input.grace_period_hours.unwrap_or(0))
            .map_err(|e| ValidationErrors::single("grace_period_hours", e.to_string()))?;
        let store = state.store.as_ref();
        let (api_key_id, partner_id, s) = partner_of_key(store, &path).await?;
        let (secret, hash) = new_secret_hash(&partner_id).await?;
        let command: PartnerCommand = RotateApiKey {
            actor: meta.actor.clone(),
            api_key_id,
            new_secret_hash: hash,
            grace_period: grace,
            now: meta.now,
        }
        .into();
        let executed = execute_all(store, &s, &meta, &[command]).await?;
        auth.partners.invalidate_partner(&partner_id);
        let mut reply = key_reply(&executed.0, api_key_id, Some(&secret), false, executed.1)?;
        if let Value::Object(map) = &mut reply.body {
            map.insert("grace_period_hours".into(), json!(grace.get()));
        }
        Ok(reply)
    })
    .await
}

/// Revoke a key
///
/// Admins. Final: the key never authenticates again. Any body is ignored.
#[utoipa::path(
    delete,
    path = "/admin/partner-api-keys/{api_key_id}",
    tag = "Partner keys",
    params(
        ("api_key_id" = Uuid, Path, description = "The API key id."),
    ),
    responses(
        (status = 200, description = "The key, revoked (never the secret).", body = schemas::ApiKey),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn revoke_api_key(
    state: Data<AppState>,
    auth: Data<AuthState>,
    req: HttpRequest,
    principal: Principal,
    path: Path<String>,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, _| async move {
        admin(principal)?;
        let store = state.store.as_ref();
        let (api_key_id, partner_id, s) = partner_of_key(store, &path).await?;
        let command: PartnerCommand = RevokeApiKey {
            actor: meta.actor.clone(),
            api_key_id,
            reason: None,
            now: meta.now,
        }
        .into();
        let executed = execute_all(store, &s, &meta, &[command]).await?;
        auth.partners.invalidate_partner(&partner_id);
        key_reply(&executed.0, api_key_id, None, false, executed.1)
    })
    .await
}

// ------------------------------------------------------------------ billing

/// Body of `POST /admin/billing/run`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BillingRunInput)]
pub(crate) struct BillingInput {
    /// Charge periods due up to this instant; now when absent, never in
    /// the future.
    pub(crate) as_of: Option<DateTime<Utc>>,
}

/// Run billing
///
/// Admins. Charges every due period of every ACTIVE subscription up to
/// `as_of` (now when absent; never in the future), each period exactly
/// once however often the run repeats. Due subscriptions come from the
/// billing index; one that cannot be charged is counted in
/// `subscriptions_failed` and named in `failures` with the reason, and the
/// run goes on with the others (the next run tries it again). The process
/// holding the projector lease also runs this every
/// `BASKETRY_BILLING_INTERVAL`.
#[utoipa::path(
    post,
    path = "/admin/billing/run",
    tag = "Billing",
    request_body(content = Option<BillingInput>, description = "Optional `as_of`."),
    responses(
        (status = 200, description = "What the run charged.", body = crate::billing::BillingReport),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 409, response = schemas::Conflict),
        (status = 413, response = schemas::PayloadTooLarge),
        (status = 415, response = schemas::UnsupportedMediaType),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
async fn billing_run(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        admin(principal)?;
        let input: BillingInput = parse_body(req, &body)?;
        let as_of = input.as_of.unwrap_or(meta.now);
        if as_of > meta.now {
            return Err(ValidationErrors::single("as_of", "must not be in the future").into());
        }
        let report = crate::billing::run(
            state.store.as_ref(),
            state.billing_index.as_ref(),
            &meta,
            as_of,
        )
        .await?;
        Ok(Reply::ok(
            serde_json::to_value(&report).unwrap_or(Value::Null),
            report.last_position,
        ))
    })
    .await
}
