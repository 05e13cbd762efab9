//! Building the whole program — command API, query API and projectors on
//! one port — so that tests start exactly what production starts.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web::{self, Data};
use actix_web::{App, HttpResponse, HttpServer};
use anyhow::Context;
use basketry_command_api::auth::usage::UsageLog;
use basketry_command_api::auth::{AuthState, JwtVerifier, PartnerAuthConfig, PartnerAuthenticator};
use basketry_command_api::command::{AppState, Clock};
use basketry_command_api::limits::{
    IdempotencyStore, InMemoryRateLimiter, PostgresIdempotencyStore, PostgresRateLimiter,
    RateLimitPolicy, RateLimiter, SqliteIdempotencyStore,
};
use basketry_projections::runtime::ProjectorRuntime;
use basketry_query_api::consistency::CheckpointWatcher;
use basketry_query_api::{QueryState, DEFAULT_CONSISTENCY_WAIT};
use basketry_store::{Backend, EventStore};
use serde_json::json;

use crate::config::Settings;

/// How often expired idempotency records are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// How often partner key usage is written to the read database.
const USAGE_FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Projector lag beyond which `/readyz` answers 503.
const READY_MAX_LAG_SECONDS: f64 = 30.0;

/// Time to live of the projector lease; renewed every third of it, so a
/// standby takes over within this long after the holder dies.
const PROJECTOR_LEASE_TTL: Duration = Duration::from_secs(10);

/// Which parts of the program this process runs (`--role`, repeatable;
/// all three by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// The command API.
    pub command: bool,
    /// The query API.
    pub query: bool,
    /// The projectors (under a lease: one holder at a time).
    pub projector: bool,
}

impl Roles {
    /// Everything in one process: the embedded default.
    pub const ALL: Roles = Roles {
        command: true,
        query: true,
        projector: true,
    };
}

/// A test's wrapper around a store it opened (to inject faults).
pub type Wrap<T> = Box<dyn FnOnce(Arc<T>) -> Arc<T> + Send>;

/// What a test may put around the parts [`Application::build`] opens, so
/// that it starts everything else exactly as production does. Production
/// uses the default: nothing wrapped, default partner-key tuning.
#[derive(Default)]
pub struct Seams {
    /// Wraps the event store every part of the program uses.
    pub event_store: Option<Wrap<dyn EventStore>>,
    /// Wraps the idempotency store of the command API.
    pub idempotency: Option<Wrap<dyn IdempotencyStore>>,
    /// Tuning of partner-key authentication.
    pub partner_auth: PartnerAuthConfig,
}

/// A built, not yet running, Basketry server.
pub struct Application {
    port: u16,
    server: Server,
    roles: Roles,
    runtime: Arc<ProjectorRuntime>,
    usage: Data<UsageLog>,
    read_db: sqlx::AnyPool,
    /// The read database's small second pool: projectors, the projector
    /// lease and key-usage flushes, never requests
    /// (`docs/adr/0013-back-pressure-timeouts-and-pools.md`).
    background_db: sqlx::AnyPool,
    /// How often the lease holder runs billing (`None`: never by itself).
    billing_every: Option<Duration>,
    /// The command side's clock (tests move it).
    pub clock: Clock,
    /// The event store (tests inspect it).
    pub store: Arc<dyn EventStore>,
    /// Partner-key authentication (tests count its argon2 runs).
    pub partners: PartnerAuthenticator,
}

/// What `/readyz` and `/healthz` need.
struct Ops {
    store: Arc<dyn EventStore>,
    runtime: Arc<ProjectorRuntime>,
}

impl Application {
    /// Opens the configured stores (creating and migrating embedded ones)
    /// and binds `listener`, with every role.
    pub async fn build(settings: &Settings, listener: TcpListener) -> anyhow::Result<Self> {
        Self::build_with_roles(settings, listener, Roles::ALL).await
    }

    /// [`Self::build`] for the given roles only. Every role serves
    /// `/healthz`, `/readyz` and `/metrics`.
    pub async fn build_with_roles(
        settings: &Settings,
        listener: TcpListener,
        roles: Roles,
    ) -> anyhow::Result<Self> {
        Self::build_with_seams(settings, listener, roles, Seams::default()).await
    }

    /// [`Self::build_with_roles`] with the stores passed through a test's
    /// [`Seams`].
    pub async fn build_with_seams(
        settings: &Settings,
        listener: TcpListener,
        roles: Roles,
        seams: Seams,
    ) -> anyhow::Result<Self> {
        // A deployment that would verify tokens loosely does not start.
        let jwt_config = settings.jwt_config()?;
        let billing_every = settings.billing_interval()?;
        let store = basketry_store::connect(&settings.event_store_url()?)
            .await
            .context("opening the event store")?;
        let store = match seams.event_store {
            Some(wrap) => wrap(store),
            None => store,
        };
        let read_db_url = settings.read_db_url()?;
        let read_db = basketry_projections::db::open(&read_db_url)
            .await
            .context("opening the read database")?;
        let background_db = basketry_projections::db::open_background(&read_db_url, &read_db)
            .await
            .context("opening the read database for the projectors")?;
        // The query API's hot paths read through sqlx's typed drivers
        // (docs/adr/0016-data-path.md).
        let read_typed = basketry_projections::db::open_typed(&read_db_url)
            .await
            .context("opening the read database for queries")?;
        let in_flight =
            chrono::TimeDelta::seconds(i64::from(settings.idempotency_in_flight_timeout));
        let read_db_backend = Backend::from_url(&read_db_url)?;
        let idempotency: Arc<dyn IdempotencyStore> = if read_db_backend == Backend::Postgres {
            Arc::new(
                PostgresIdempotencyStore::connect(&read_db_url)
                    .await?
                    .with_in_flight_timeout(in_flight),
            )
        } else {
            Arc::new(
                SqliteIdempotencyStore::connect(&read_db_url)
                    .await?
                    .with_in_flight_timeout(in_flight),
            )
        };
        let idempotency = match seams.idempotency {
            Some(wrap) => wrap(idempotency),
            None => idempotency,
        };
        let rate_limiter: Arc<dyn RateLimiter> = if settings.rate_limits == "memory" {
            Arc::new(InMemoryRateLimiter::new())
        } else {
            Arc::new(PostgresRateLimiter::connect(&settings.rate_limits).await?)
        };
        let jwt = JwtVerifier::new(jwt_config)
            .await
            .context("setting up JWT verification")?;
        let partners = PartnerAuthenticator::new(Arc::clone(&store), seams.partner_auth);
        let auth = Data::new(AuthState {
            jwt,
            partners: partners.clone(),
        });
        let runtime = Arc::new(ProjectorRuntime::new(
            Arc::clone(&store),
            read_db.clone(),
            basketry_projections::projectors::all(),
        ));
        let clock = Clock::system();
        let command = Data::new(AppState {
            store: Arc::clone(&store),
            rate_limiter: Arc::clone(&rate_limiter),
            user_rate_limit: RateLimitPolicy::per_person(settings.user_rate_limit_per_minute),
            idempotency: Arc::clone(&idempotency),
            clock: clock.clone(),
            billing_index: Arc::new(basketry_command_api::billing::SqlDueIndex::new(
                read_db.clone(),
            )),
        });
        let query = Data::new(QueryState {
            db: read_db.clone(),
            sqlite_reader: basketry_query_api::sqlite_reader::SqliteReader::of(&read_typed),
            read: read_typed,
            store: Arc::clone(&store),
            rate_limiter,
            user_rate_limit: RateLimitPolicy::per_person(settings.user_rate_limit_per_minute),
            consistency_wait: DEFAULT_CONSISTENCY_WAIT,
            checkpoints: CheckpointWatcher::new(
                read_db.clone(),
                runtime
                    .projectors()
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect(),
            ),
            clock: clock.clone(),
        });
        let ops = Data::new(Ops {
            store: Arc::clone(&store),
            runtime: Arc::clone(&runtime),
        });
        let usage = Data::new(UsageLog::new());
        let metrics = Data::new(crate::observability::Metrics::default());
        let port = listener.local_addr()?.port();
        let app_usage = usage.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    crate::observability::middleware,
                ))
                .app_data(app_usage.clone())
                .app_data(ops.clone())
                .app_data(metrics.clone())
                .app_data(auth.clone())
                .configure(|cfg| {
                    if roles.command {
                        basketry_command_api::app::configure(command.clone(), auth.clone())(cfg);
                    }
                    if roles.query {
                        basketry_query_api::configure(query.clone())(cfg);
                    }
                    if roles.command || roles.query {
                        basketry_openapi::configure(cfg);
                    }
                })
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_text))
                .default_service(web::to(basketry_command_api::app::not_found))
        })
        // Every response is written whole or in chunks the moment it is
        // ready; with Nagle's algorithm on, the last small write of a
        // streamed body (the chunked terminator) waited for the client's
        // delayed ACK, about 40 ms per plan (docs/adr/0016-data-path.md).
        .tcp_nodelay(true)
        .listen(listener)?
        .run();
        let purge = Arc::clone(&idempotency);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PURGE_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = purge.purge_expired(chrono::Utc::now()).await {
                    tracing::warn!(error = %e, "purging idempotency records failed; retrying next hour");
                }
            }
        });
        Ok(Self {
            port,
            server,
            roles,
            runtime,
            usage,
            read_db,
            background_db,
            billing_every,
            clock,
            store,
            partners,
        })
    }

    /// The read-database pool that requests use (tests exhaust it to show
    /// that projection and the lease do not depend on it).
    pub fn request_pool(&self) -> sqlx::AnyPool {
        self.read_db.clone()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server gracefully from elsewhere.
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Runs the projectors and serves until SIGINT/SIGTERM: in-flight
    /// requests finish, the projectors finish their batch (checkpoints
    /// saved), pending key usage is written.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (stop_projectors, stop_rx) = tokio::sync::watch::channel(false);
        let lease = basketry_projections::lease::Lease::new(
            self.background_db.clone(),
            PROJECTOR_LEASE_TTL,
        );
        let billing = match (self.roles.projector, self.billing_every) {
            (true, Some(every)) => Some(tokio::spawn(billing_loop(
                Arc::clone(&self.store),
                self.read_db.clone(),
                self.clock.clone(),
                lease.clone(),
                every,
                stop_rx.clone(),
            ))),
            _ => None,
        };
        let projectors = self.roles.projector.then(|| {
            // The runtime `/readyz` reads is the one the lease runs (its
            // successors report their errors to it).
            tokio::spawn(basketry_projections::lease::run_with_lease(
                Arc::clone(&self.runtime),
                self.background_db.clone(),
                lease,
                stop_rx,
            ))
        });
        let usage = self.usage.clone();
        let db = self.background_db.clone();
        let flusher = tokio::spawn(async move {
            let mut every = tokio::time::interval(USAGE_FLUSH_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = usage.flush(&db).await {
                    tracing::warn!(error = %e, "writing key usage failed; kept for the next flush");
                }
            }
        });
        let served = self.server.await;
        let _ = stop_projectors.send(true);
        if let Some(billing) = billing {
            let _ = billing.await;
        }
        if let Some(projectors) = projectors {
            let _ = projectors.await;
        }
        flusher.abort();
        if let Err(e) = self.usage.flush(&self.background_db).await {
            tracing::warn!(error = %e, "writing key usage at shutdown failed");
        }
        served.context("serving")
    }
}

/// How often the billing loop looks whether this process holds the
/// projector lease and whether a run is due.
const BILLING_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Billing by itself: while this process holds the projector lease (so one
/// process in a deployment does it), a run every `every`, the first as soon
/// as the lease is held. A run that fails as a whole is logged and tried at
/// the next check; failing subscriptions are in its report and retried by
/// the next run.
async fn billing_loop(
    store: Arc<dyn EventStore>,
    read_db: sqlx::AnyPool,
    clock: Clock,
    lease: basketry_projections::lease::Lease,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let index = basketry_command_api::billing::SqlDueIndex::new(read_db.clone());
    let mut last_run: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(BILLING_CHECK_EVERY.min(every)) => {}
        }
        if last_run.is_some_and(|at| at.elapsed() < every)
            || !lease.is_held().await.unwrap_or(false)
        {
            continue;
        }
        let now = clock.now();
        let meta = basketry_command_api::command::CommandMeta {
            actor: basketry_domain::Actor::System,
            correlation_id: uuid::Uuid::now_v7(),
            idempotency_key: None,
            now,
        };
        match basketry_command_api::billing::run(store.as_ref(), &index, &meta, now).await {
            Ok(report) => {
                last_run = Some(tokio::time::Instant::now());
                tracing::info!(
                    charges = report.charges,
                    subscriptions_examined = report.subscriptions_examined,
                    subscriptions_failed = report.subscriptions_failed,
                    "scheduled billing run"
                );
            }
            Err(e) => tracing::warn!(error = %e, "scheduled billing run failed; retrying"),
        }
    }
}

/// Prometheus text: request counts and latency per route and status, the
/// event store's head, and each projector's position and lag.
async fn metrics_text(
    ops: Data<Ops>,
    metrics: Data<crate::observability::Metrics>,
) -> HttpResponse {
    use std::fmt::Write;
    let mut out = String::new();
    metrics.render(&mut out);
    if let Ok(Some(head)) = ops.store.head().await {
        out.push_str(
            "# HELP basketry_event_store_head_position Global position of the newest event.\n",
        );
        out.push_str("# TYPE basketry_event_store_head_position gauge\n");
        let _ = writeln!(out, "basketry_event_store_head_position {}", head.commit);
    }
    if let Ok(status) = ops.runtime.status().await {
        out.push_str(
            "# HELP basketry_projector_position Commit position of each projector's checkpoint.\n",
        );
        out.push_str("# TYPE basketry_projector_position gauge\n");
        for p in &status {
            let _ = writeln!(
                out,
                "basketry_projector_position{{projector=\"{}\"}} {}",
                p.name,
                p.position.map_or(0, |pos| pos.commit)
            );
        }
        out.push_str(
            "# HELP basketry_projector_lag_events Events appended but not yet projected.\n",
        );
        out.push_str("# TYPE basketry_projector_lag_events gauge\n");
        for p in &status {
            let _ = writeln!(
                out,
                "basketry_projector_lag_events{{projector=\"{}\"}} {}",
                p.name, p.lag_events
            );
        }
        out.push_str(
            "# HELP basketry_projector_lag_seconds Age of the oldest event not yet projected.\n",
        );
        out.push_str("# TYPE basketry_projector_lag_seconds gauge\n");
        for p in &status {
            let _ = writeln!(
                out,
                "basketry_projector_lag_seconds{{projector=\"{}\"}} {}",
                p.name, p.lag_seconds
            );
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 when the event store and read database answer and every projector
/// is within [`READY_MAX_LAG_SECONDS`] of the log; 503 otherwise.
async fn readyz(ops: Data<Ops>) -> HttpResponse {
    let store_ok = ops.store.health().await.is_ok();
    let status = ops.runtime.status().await;
    let (db_ok, projectors) = match &status {
        Ok(list) => (
            true,
            list.iter()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "lag_events": p.lag_events,
                        "lag_seconds": p.lag_seconds,
                        "ready": p.lag_seconds <= READY_MAX_LAG_SECONDS && p.last_error.is_none(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Err(_) => (false, Vec::new()),
    };
    let ready = store_ok && db_ok && projectors.iter().all(|p| p["ready"] == true);
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "event_store": if store_ok { "ok" } else { "unavailable" },
        "read_db": if db_ok { "ok" } else { "unavailable" },
        "projectors": projectors,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "1"))
            .json(body)
    }
}
