//! Subscriptions: a person subscribing to a template, a partner
//! subscribing its customer, status changes by either, and a person
//! replacing their broker allocations. Subscribing and status changes span
//! several streams: [`crate::workflows::subscribe`] does them, and the
//! handlers here parse the request and render what it returns.

use std::str::FromStr;

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use basketry_domain::partner::Permission;
use basketry_domain::subscription::{
    self, AllocationInput, BrokerAllocation, PartnerAttribution, SetBrokerAllocations,
    SubscriptionAggregate, SubscriptionCharged, SubscriptionStatus,
};
use basketry_domain::{
    AllocationId, BrokerId, ClientId, Currency, DecimalInput, Email, FieldError, LotMultiplier,
    SubscriptionId, TemplateId, UserId, ValidationErrors,
};
use basketry_http::shapes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{partner, path_uuid, person, reason, stream, to_body, ReasonInput};
use crate::auth::{PartnerPrincipal, Principal};
use crate::command::{execute, parse_body, run, AppState, Body, Reply};
use crate::error::ApiError;
use crate::openapi::{schemas, CommandErrors};
use crate::views;
use crate::workflows::subscribe::{self as workflow, Change, Owner};

/// Body of `POST /marketplace/subscribe/{template_id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscribeInput {
    /// Up to the allowed number of allocations; none when absent.
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
    pub(crate) lot_multiplier: Option<DecimalInput>,
}

/// Body of `PUT /user/subscriptions/{id}/allocations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllocationsInput {
    /// The new list (replacing the old one whole).
    #[schema(value_type = Vec<AllocationInput>)]
    pub(crate) broker_allocations: Option<Vec<AllocationInput>>,
}

impl PartnerSubscribeInput {
    /// The template, the customer's e-mail and, with `auto_link_broker`
    /// (the default), the one allocation linked to the partner `p`'s broker;
    /// every invalid member reported at once, under this body's names.
    fn parse(
        &self,
        p: &PartnerPrincipal,
    ) -> Result<(TemplateId, Email, Vec<BrokerAllocation>), ValidationErrors> {
        let mut errors = Vec::new();
        let template_id = match self.template_id.as_deref().map(Uuid::from_str) {
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
        let email = match self.user_email.as_deref().map(Email::parse) {
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
        let allocations = if self.auto_link_broker.unwrap_or(true) {
            let one = AllocationInput {
                allocation_id: None,
                broker_id: Some(p.broker_id.to_string()),
                client_id: self.broker_client_id.clone(),
                lot_multiplier: Some(
                    self.lot_multiplier
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
        match (template_id, email, errors.is_empty()) {
            (Some(template_id), Some(email), true) => Ok((template_id, email, allocations)),
            _ => Err(ValidationErrors(errors)),
        }
    }
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

/// The charge made at subscription (PAID templates).
#[derive(Debug, Serialize, ToSchema)]
pub struct Charge {
    /// Minor units.
    pub amount: i64,
    #[schema(value_type = String)]
    pub currency: Currency,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub partner_share: i64,
    pub platform_share: i64,
}

impl From<&SubscriptionCharged> for Charge {
    fn from(c: &SubscriptionCharged) -> Self {
        Self {
            amount: c.amount,
            currency: c.currency,
            period_start: c.period_start,
            period_end: c.period_end,
            partner_share: c.partner_share,
            platform_share: c.platform_share,
        }
    }
}

/// A new subscription, with its first charge.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewSubscription {
    // The subscription's own members, as every subscription is rendered.
    #[serde(flatten)]
    pub subscription: shapes::Subscription,
    /// `null` for a FREE template.
    #[schema(required = true)]
    pub first_charge: Option<Charge>,
}

/// The allocation a partner subscribe linked.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedAllocation {
    #[schema(value_type = Uuid)]
    pub allocation_id: AllocationId,
    /// The partner's `broker_id`.
    #[schema(value_type = String)]
    pub broker_id: BrokerId,
    #[schema(value_type = String)]
    pub client_id: ClientId,
    #[schema(value_type = f64)]
    pub lot_multiplier: LotMultiplier,
    /// Always `LINKED`.
    #[schema(example = "LINKED")]
    pub status: &'static str,
}

/// The split of the first charge.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerRevenue {
    /// The partner's share, minor units (0 for FREE).
    pub partner_commission: i64,
    /// The platform's share, minor units.
    pub platform_fee: i64,
    #[schema(value_type = String)]
    pub currency: Currency,
}

/// What `POST /partner/marketplace/subscribe` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerSubscription {
    #[schema(value_type = Uuid)]
    pub subscription_id: SubscriptionId,
    /// UUIDv5 of the lower-cased e-mail: the same user who logs in directly.
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    #[schema(value_type = Uuid)]
    pub template_id: TemplateId,
    #[schema(value_type = schemas::SubscriptionStatus)]
    pub status: SubscriptionStatus,
    /// `null` unless `auto_link_broker`.
    #[schema(required = true)]
    pub broker_allocation: Option<LinkedAllocation>,
    pub revenue_share: PartnerRevenue,
    #[schema(required = true)]
    pub next_billing_date: Option<NaiveDate>,
}

impl PartnerSubscription {
    /// The answer for the subscription a partner made.
    fn new(subscribed: &workflow::Subscribed) -> Self {
        let sub = &subscribed.subscription;
        let charge = subscribed.first_charge.as_ref();
        Self {
            subscription_id: sub.subscription_id,
            user_id: sub.user_id,
            template_id: sub.template_id,
            status: sub.status,
            broker_allocation: sub.allocations.first().map(|a| LinkedAllocation {
                allocation_id: a.allocation_id,
                broker_id: a.broker_id.clone(),
                client_id: a.client_id.clone(),
                lot_multiplier: a.lot_multiplier,
                status: "LINKED",
            }),
            revenue_share: PartnerRevenue {
                partner_commission: charge.map_or(0, |c| c.partner_share),
                platform_fee: charge.map_or(0, |c| c.platform_share),
                currency: sub.price.currency(),
            },
            next_billing_date: sub
                .billing
                .as_ref()
                .map(|b| b.next_billing_date.date_naive()),
        }
    }
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
        (status = 201, description = "The subscription, created, with its first charge.", body = NewSubscription),
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn subscribe(
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
        let subscribed = workflow::subscribe(
            state.store.as_ref(),
            &meta,
            template_id,
            workflow::NewSubscription {
                user_id: who.user_id,
                email: who.email.clone(),
                partner: None,
                allocations,
            },
        )
        .await?;
        let body = NewSubscription {
            subscription: views::subscription_shape(&subscribed.subscription),
            first_charge: subscribed.first_charge.as_ref().map(Charge::from),
        };
        Ok(Reply::created(to_body(&body)?, subscribed.position))
    })
    .await
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
        (status = 201, description = "The subscription, created.", body = PartnerSubscription),
        CommandErrors,
    ),
    security(("partner_key" = [], "partner_secret" = [])),
)]
pub(crate) async fn partner_subscribe(
    state: Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Body(body): Body,
) -> HttpResponse {
    let (state, req, principal) = (&state, &req, &principal);
    run(state, req, principal, body, |meta, body| async move {
        let p = partner(principal, Permission::MarketplaceSubscribe)?;
        let input: PartnerSubscribeInput = parse_body(req, &body)?;
        let (template_id, email, allocations) = input.parse(p)?;
        // The share in force is the partner stream's, not the credential
        // cache's (which other instances may hold for a while): this one
        // stands only until the workflow has read the stream.
        let partner_bps = p.revenue_share.partner_bps();
        let subscribed = workflow::subscribe(
            state.store.as_ref(),
            &meta,
            template_id,
            workflow::NewSubscription {
                user_id: UserId::from_email(&email),
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
        let body = PartnerSubscription::new(&subscribed);
        Ok(Reply::created(to_body(&body)?, subscribed.position))
    })
    .await
}

/// A status-change handler: `$owner` decides who may call it, `$change`
/// what it does; the attributes (docs, OpenAPI) go on the function.
macro_rules! status_route {
    ($(#[$attr:meta])* $name:ident, $owner:expr, $change:expr) => {
        $(#[$attr])*
        pub(crate) async fn $name(
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
                let id = SubscriptionId::from_uuid(path_uuid(&path, "subscription")?);
                let changed =
                    workflow::change_status(state.store.as_ref(), &meta, owner, id, $change, reason)
                        .await?;
                Ok(Reply::ok(
                    to_body(&views::subscription(&changed.subscription))?,
                    changed.position,
                ))
            })
            .await
        }
    };
}

/// The caller as the subscriber.
fn as_user(principal: &Principal) -> Result<Owner<'_>, ApiError> {
    person(principal).map(Owner::User)
}

/// The caller as the partner managing its customers' subscriptions.
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
            CommandErrors,
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
            CommandErrors,
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
            CommandErrors,
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
            CommandErrors,
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
            CommandErrors,
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
            CommandErrors,
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
        CommandErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn user_allocations(
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
        Ok(Reply::ok(
            to_body(&views::subscription(sub))?,
            executed.position,
        ))
    })
    .await
}
