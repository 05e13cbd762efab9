//! Route tables: what each API registers, as entries the OpenAPI
//! completeness test and the metrics can walk, and the 404 for paths no
//! route matches.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};

use crate::problem::Problem;

/// One route: method, path template and handler. The route tables — the
/// command API's and the query API's — are exactly what the apps register,
/// so the OpenAPI completeness test, which walks them, sees every route
/// there is.
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

/// Problem+json 404 `not_found` for every path no route matches.
pub async fn not_found() -> HttpResponse {
    Problem::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        "route not found",
    )
    .response()
}
