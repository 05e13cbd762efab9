//! Mounting the command API on an actix app: its routes and shared state,
//! and the problem+json 404 for unmatched paths. `basketry::startup`
//! composes it with the query API and the projectors into the program.

use actix_web::web::{self, Data};
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthState;
use crate::command::AppState;
use crate::error::ApiError;
use crate::routes;

/// Registers the command API's routes and shared state on an app.
pub fn configure(
    state: Data<AppState>,
    auth: Data<AuthState>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state)
            .app_data(auth)
            .configure(routes::configure);
    }
}

/// Problem+json 404 for every path no route matches.
pub async fn not_found() -> HttpResponse {
    ApiError::NotFound { what: "route" }.error_response()
}
