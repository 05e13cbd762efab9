//! A person's baskets and their strategies. Every basket command, template
//! commands included, runs through [`basket_command`]: one stream, one
//! decision, the basket as it now is in the answer.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use basketry_domain::basket::{
    self, AddStrategy, BasketAggregate, BasketCommand, BasketInput, CreateBasket, RemoveStrategy,
    ReplaceStrategy, Strategy, StrategyInput, UpdateBasket, UpdateBasketInput,
};
use basketry_domain::{BasketId, StrategyId};
use basketry_http::shapes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{admin, path_uuid, person, stream, to_body};
use crate::auth::Principal;
use crate::command::{execute, parse_body, run, AppState, Body, CommandMeta, Reply};
use crate::error::ApiError;
use crate::openapi::{schemas, CommandErrors, CreateErrors};
use crate::views;

/// A strategy as a strategy command answers it: the strategy plus the
/// basket it belongs to and the basket's new revision.
#[derive(Debug, Serialize, ToSchema)]
pub struct BasketStrategy {
    // The strategy's own members, as every strategy is rendered.
    #[serde(flatten)]
    pub strategy: shapes::Strategy,
    // The basket the strategy belongs to.
    #[schema(value_type = Uuid)]
    pub basket_id: BasketId,
    // The basket's revision after the command.
    pub basket_revision: u64,
}

/// Who may send a basket command (the domain still checks ownership).
#[derive(Clone, Copy)]
pub(super) enum Access {
    /// Any person; the domain answers 404 to anyone but the owner.
    Person,
    /// Admins only (template commands).
    Admin,
}

/// What a basket command answers with.
pub(super) enum Render {
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
pub(super) async fn basket_command<I, F>(
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
            Render::Basket => to_body(&views::basket(b))?,
            Render::Template => to_body(&views::template(b))?,
            Render::Strategy(strategy_id) => {
                let s = b
                    .strategies
                    .iter()
                    .find(|s| s.strategy_id == strategy_id)
                    .ok_or(ApiError::NotFound { what: "strategy" })?;
                to_body(&BasketStrategy {
                    strategy: views::strategy_shape(s),
                    basket_id: b.basket_id,
                    basket_revision: b.revision,
                })?
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
    request_body = BasketInput,
    responses(
        (status = 201, description = "The basket, created.", body = schemas::Basket),
        CreateErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn create_basket(
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
    request_body = UpdateBasketInput,
    responses(
        (status = 200, description = "The basket as it now is.", body = schemas::Basket),
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn update_basket(
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
    request_body = StrategyInput,
    responses(
        (status = 201, description = "The strategy, created, with the basket's new revision.", body = BasketStrategy),
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn add_strategy(
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
    request_body = StrategyInput,
    responses(
        (status = 200, description = "The strategy as it now is.", body = BasketStrategy),
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn replace_strategy(
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
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn remove_strategy(
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
