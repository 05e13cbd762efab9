//! Mounting the command API on an actix app: its routes and shared state,
//! and (from `basketry_http`) the problem+json 404 for unmatched paths. `basketry::startup`
//! composes it with the query API and the projectors into the program.

use actix_web::web::{self, Data};

use crate::auth::AuthState;
use crate::command::AppState;
use crate::routes;

/// Registers the command API's routes and shared state on an app.
pub fn configure(
    state: Data<AppState>,
    auth: Data<AuthState>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(Data::new(state.clock.clone()))
            .app_data(state)
            .app_data(auth)
            .configure(routes::configure);
    }
}

pub use basketry_http::route::not_found;
