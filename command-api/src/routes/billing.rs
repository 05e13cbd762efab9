//! The billing run on demand (admins); the run itself is
//! [`crate::billing::run`], which the process holding the projector lease
//! also starts on a timer.

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use basketry_domain::ValidationErrors;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{admin, to_body};
use crate::auth::Principal;
use crate::command::{parse_body, run, AppState, Body, Reply};
use crate::openapi::CreateErrors;

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
        CreateErrors,
    ),
    security(("bearer_jwt" = [])),
)]
pub(crate) async fn billing_run(
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
        Ok(Reply::ok(to_body(&report)?, report.last_position))
    })
    .await
}
