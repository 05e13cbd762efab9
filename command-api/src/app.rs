//! Building and running the command API server, so that tests start
//! exactly what production starts.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::web::{self, Data};
use actix_web::{App, HttpServer};

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

/// A running command API.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `listener` (port 0 in tests) and prepares the server.
    pub fn build(listener: TcpListener, state: AppState, auth: AuthState) -> std::io::Result<Self> {
        let port = listener.local_addr()?.port();
        let state = Data::new(state);
        let auth = Data::new(auth);
        let server = HttpServer::new(move || {
            App::new()
                .configure(configure(state.clone(), auth.clone()))
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM or a handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
