//! Admins publishing their baskets as marketplace templates: a template is
//! its basket's stream, so these are basket commands
//! ([`basket_command`]) open to admins only.

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use basketry_domain::basket::{
    MarketplaceConfigInput, PublishTemplate, UnpublishTemplate, UpdateMarketplaceConfig,
};

use super::baskets::{basket_command, Access, Render};
use super::{parse_reason, ReasonInput};
use crate::auth::Principal;
use crate::command::{AppState, Body};
use crate::openapi::{schemas, CommandErrors};

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
    request_body = MarketplaceConfigInput,
    responses(
        (status = 201, description = "The template, published.", body = schemas::Template),
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn publish_template(
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
    request_body = MarketplaceConfigInput,
    responses(
        (status = 200, description = "The template as it now is.", body = schemas::Template),
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn update_template(
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
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn unpublish_template(
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
            let reason = parse_reason(input.reason.as_deref())?;
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
