//! `basketry serve`: the command API over the configured stores.

use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;
use basketry_command_api::app::Application;
use basketry_command_api::auth::{
    AuthState, JwksSource, JwtConfig, JwtVerifier, PartnerAuthConfig, PartnerAuthenticator,
};
use basketry_command_api::command::{AppState, Clock};
use basketry_command_api::limits::{
    IdempotencyStore, InMemoryRateLimiter, PostgresIdempotencyStore, PostgresRateLimiter,
    RateLimiter, SqliteIdempotencyStore,
};

use crate::config::Settings;

/// How often expired idempotency records are purged.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

pub async fn serve(settings: &Settings, bind: &str) -> anyhow::Result<()> {
    let store = basketry_store::connect(&settings.event_store_url()?)
        .await
        .context("opening the event store")?;
    let read_db = settings.read_db_url()?;
    let idempotency: Arc<dyn IdempotencyStore> = if read_db.starts_with("postgres") {
        Arc::new(PostgresIdempotencyStore::connect(&read_db).await?)
    } else {
        Arc::new(SqliteIdempotencyStore::connect(&read_db).await?)
    };
    let rate_limiter: Arc<dyn RateLimiter> = if settings.rate_limits == "memory" {
        Arc::new(InMemoryRateLimiter::new())
    } else {
        Arc::new(PostgresRateLimiter::connect(&settings.rate_limits).await?)
    };
    let jwks = settings.jwks_url.as_ref().map(|u| {
        if u.starts_with("http://") || u.starts_with("https://") {
            JwksSource::Url(u.clone())
        } else {
            JwksSource::File(u.into())
        }
    });
    let jwt = JwtVerifier::new(JwtConfig {
        hs256_secret: Some(settings.jwt_secret()?),
        jwks,
        ..JwtConfig::default()
    })
    .await
    .context("setting up JWT verification")?;
    let auth = AuthState {
        jwt,
        partners: PartnerAuthenticator::new(Arc::clone(&store), PartnerAuthConfig::default()),
    };
    let purge = Arc::clone(&idempotency);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            every.tick().await;
            // A failed purge only delays clean-up; the next tick retries.
            let _ = purge.purge_expired(chrono::Utc::now()).await;
        }
    });
    let listener = TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
    let state = AppState {
        store,
        rate_limiter,
        idempotency,
        clock: Clock::system(),
    };
    let app = Application::build(listener, state, auth)?;
    eprintln!("basketry listening on http://{bind}");
    app.run_until_stopped().await?;
    Ok(())
}
