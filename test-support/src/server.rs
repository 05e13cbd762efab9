//! The whole program — command API, query API and projectors on one port —
//! started in this process by `basketry::startup::Application`, the start-up
//! code `basketry serve` runs, on port 0 over stores of its own: SQLite
//! files in a temporary directory, or one throwaway PostgreSQL database for
//! the event store, the read models, the idempotency records and the rate
//! limits.
//!
//! A test changes only what a deployment could change (its [`Settings`])
//! or wraps a store to inject faults ([`TestServerBuilder::wrap_event_store`],
//! [`TestServerBuilder::wrap_idempotency`]); everything else is production's.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use basketry::config::Settings;
use basketry::startup::{Application, Roles, Seams};
use basketry_command_api::auth::{PartnerAuthConfig, PartnerAuthenticator};
use basketry_command_api::command::Clock;
use basketry_command_api::limits::IdempotencyStore;
use basketry_store::EventStore;

use crate::postgres::{TestDatabase, TestDatabaseError};

/// Where a test server keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite files in a temporary directory.
    Sqlite,
    /// One throwaway PostgreSQL database for every store.
    Postgres,
}

impl Backend {
    /// PostgreSQL when `BASKETRY_TEST_API_BACKEND=postgres` (CI runs the
    /// black-box suites a second time so), SQLite otherwise.
    pub fn from_env() -> Self {
        match std::env::var("BASKETRY_TEST_API_BACKEND").as_deref() {
            Ok("postgres") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// Why a test server did not start.
#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    /// No temporary directory for its files.
    #[error("creating the data directory: {0}")]
    DataDir(#[source] std::io::Error),
    /// No throwaway PostgreSQL database.
    #[error(transparent)]
    Database(#[from] TestDatabaseError),
    /// Port 0 could not be bound.
    #[error("binding port 0: {0}")]
    Bind(#[source] std::io::Error),
    /// The start-up code refused or failed.
    #[error("starting the application: {0:#}")]
    Start(anyhow::Error),
}

/// A running server and what tests read behind its back.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The port it listens on.
    pub port: u16,
    /// The clock of both APIs (tests move it).
    pub clock: Clock,
    /// The event store the program writes, as wrapped by the test.
    pub store: Arc<dyn EventStore>,
    /// The read database's request pool (read models, idempotency records,
    /// the billing index).
    pub read_db: sqlx::AnyPool,
    /// Partner-key authentication (its argon2 counter).
    pub partners: PartnerAuthenticator,
    /// What it was started with.
    pub settings: Settings,
    /// Its data directory (SQLite files).
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, when on PostgreSQL.
    pub database: Option<TestDatabase>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Asks the server to stop; the test's runtime would drop it anyway.
        drop(self.handle.stop(false));
    }
}

impl TestServer {
    /// A server on `backend` with the defaults of [`TestServerBuilder`].
    pub fn builder(backend: Backend) -> TestServerBuilder {
        TestServerBuilder {
            backend,
            jwt_secret: "test-secret-that-is-at-least-32-bytes-long!!".into(),
            settings: Vec::new(),
            seams: Seams::default(),
        }
    }

    /// Whether it runs on PostgreSQL.
    pub fn backend(&self) -> Backend {
        if self.database.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

type SettingsChange = Box<dyn FnOnce(&mut Settings) + Send>;

/// How a [`TestServer`] is started.
pub struct TestServerBuilder {
    backend: Backend,
    jwt_secret: String,
    settings: Vec<SettingsChange>,
    seams: Seams,
}

impl TestServerBuilder {
    /// The HS256 secret tokens are signed with (at least 32 bytes).
    pub fn jwt_secret(mut self, secret: &str) -> Self {
        self.jwt_secret = secret.to_string();
        self
    }

    /// Changes the settings after the stores are chosen, as a deployment
    /// would configure them (e.g. a JWKS).
    pub fn settings(mut self, change: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.settings.push(Box::new(change));
        self
    }

    /// Puts `wrap` around the event store the program opens.
    pub fn wrap_event_store(
        mut self,
        wrap: impl FnOnce(Arc<dyn EventStore>) -> Arc<dyn EventStore> + Send + 'static,
    ) -> Self {
        self.seams.event_store = Some(Box::new(wrap));
        self
    }

    /// Puts `wrap` around the idempotency store the program opens.
    pub fn wrap_idempotency(
        mut self,
        wrap: impl FnOnce(Arc<dyn IdempotencyStore>) -> Arc<dyn IdempotencyStore> + Send + 'static,
    ) -> Self {
        self.seams.idempotency = Some(Box::new(wrap));
        self
    }

    /// Tunes partner-key authentication.
    pub fn partner_auth(mut self, config: PartnerAuthConfig) -> Self {
        self.seams.partner_auth = config;
        self
    }

    /// Opens the stores, starts the program on port 0 and runs it on the
    /// current tokio runtime.
    pub async fn spawn(self) -> Result<TestServer, TestServerError> {
        let dir = tempfile::tempdir().map_err(TestServerError::DataDir)?;
        let database = match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await?),
        };
        let url = database.as_ref().map(|db| db.url().to_string());
        let mut settings = Settings {
            data_dir: dir.path().to_path_buf(),
            event_store: url.clone(),
            read_db: url.clone(),
            rate_limits: url.unwrap_or_else(|| "memory".into()),
            jwt_secret: Some(self.jwt_secret),
            jwks_url: None,
            jwks_refresh: Duration::from_secs(600),
            jwt_issuer: None,
            jwt_audience: None,
            jwt_hs256: None,
            user_rate_limit_per_minute:
                basketry_command_api::limits::DEFAULT_USER_RATE_LIMIT_PER_MINUTE,
            idempotency_in_flight_timeout:
                basketry::config::DEFAULT_IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECS,
            // Billing runs when a test asks for it, never by itself.
            billing_interval: "off".into(),
        };
        for change in self.settings {
            change(&mut settings);
        }
        let listener = TcpListener::bind("127.0.0.1:0").map_err(TestServerError::Bind)?;
        let app = Application::build_with_seams(&settings, listener, Roles::ALL, self.seams)
            .await
            .map_err(TestServerError::Start)?;
        let port = app.port();
        let (clock, store, read_db, partners) = (
            app.clock.clone(),
            Arc::clone(&app.store),
            app.request_pool(),
            app.partners.clone(),
        );
        let server = app.server_handle();
        tokio::spawn(app.run_until_stopped());
        Ok(TestServer {
            base: format!("http://127.0.0.1:{port}"),
            port,
            clock,
            store,
            read_db,
            partners,
            settings,
            dir,
            database,
            handle: server,
        })
    }
}
