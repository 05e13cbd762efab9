//! The whole program (`basketry::startup::Application`) on a loopback port
//! with its embedded SQLite stores in a directory, and a small HTTP client
//! for setting data up through the real command path.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use basketry::config::Settings;
use basketry::startup::Application;
use basketry_store::EventStore;
use serde_json::Value;

/// The HS256 secret of every benchmark server (throwaway data only).
pub const JWT_SECRET: &str = "basketry-benchmark-secret-0123456789abcdef";

/// A running server.
pub struct Server {
    pub base: String,
    pub store: Arc<dyn EventStore>,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
}

/// Settings for the embedded stores under `dir`.
pub fn settings(dir: &Path) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        event_store: None,
        read_db: None,
        rate_limits: "memory".into(),
        jwt_secret: Some(JWT_SECRET.into()),
        jwks_url: None,
        jwks_refresh: std::time::Duration::from_secs(600),
        jwt_issuer: None,
        jwt_audience: None,
        jwt_hs256: None,
        // The benchmarks drive the server as a handful of people at full
        // speed: they measure the server, not a person's rate limit.
        user_rate_limit_per_minute: u32::MAX,
        idempotency_in_flight_timeout: basketry::config::DEFAULT_IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECS,
        // Benchmarks call billing themselves (B7); a scheduled run would
        // only disturb the other figures.
        billing_interval: "off".into(),
    }
}

/// A token for `email` in `groups` (`Admins`, `Executors`, or none).
pub fn token(email: &str, groups: &[&str]) -> anyhow::Result<String> {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    basketry_command_api::auth::mint_hs256(
        JWT_SECRET.as_bytes(),
        email,
        &groups,
        Duration::from_secs(12 * 3600),
        chrono::Utc::now(),
    )
    .map_err(|e| anyhow::anyhow!("minting a token: {e}"))
}

impl Server {
    /// Builds and starts the program on the data in `dir`.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
        let app = Application::build(&settings(dir), listener).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let store = Arc::clone(&app.store);
        let handle = app.server_handle();
        let task = tokio::spawn(app.run_until_stopped());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            base,
            store,
            handle,
            task,
            http,
        })
    }

    /// Sends a JSON request and returns the JSON answer, failing on any
    /// non-2xx status.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .json(&body);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: body"))
    }

    /// Stops gracefully (projector checkpoints saved).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.task.await.context("server task")??;
        Ok(())
    }
}

/// Headers of a bearer token.
pub fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// Headers of a partner key.
pub fn partner_headers(key: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {key}")),
        ("x-partner-secret", secret.to_string()),
    ]
}

/// One strategy with two legs, entering at `entry` on every weekday.
pub fn strategy(name: &str, entry: &str, exit: &str) -> Value {
    serde_json::json!({
        "name": name,
        "underlying": "NIFTY",
        "product": "MIS",
        "entry_time": entry,
        "exit_time": exit,
        "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
        "stop_loss_pct": 25,
        "legs": [
            {"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": 2},
            {"action": "BUY", "option_type": "CE", "strike": "ATM+2", "expiry": "WEEKLY", "lots": 1}
        ],
    })
}

/// Creates and publishes a template through the API; its id.
pub async fn publish_template(
    server: &Server,
    admin: &str,
    name: &str,
    entry: &str,
    exit: &str,
    monthly_fee: i64,
) -> anyhow::Result<String> {
    let basket = server
        .send(
            reqwest::Method::POST,
            "/baskets",
            &bearer(admin),
            serde_json::json!({
                "name": name,
                "description": "A benchmark basket of one strategy",
                "category": "INCOME",
                "strategies": [strategy("Short call spread", entry, exit)],
            }),
        )
        .await?;
    let id = basket["basket_id"]
        .as_str()
        .context("basket_id")?
        .to_string();
    let paid = monthly_fee > 0;
    server
        .send(
            reqwest::Method::POST,
            &format!("/admin/marketplace/templates/{id}"),
            &bearer(admin),
            serde_json::json!({
                "visibility": "PUBLIC",
                "pricing": {"type": if paid { "PAID" } else { "FREE" }, "monthly_fee": monthly_fee, "currency": "INR"},
                "difficulty_level": "BEGINNER",
                "tags": ["NIFTY", "WEEKLY"],
                "category": "INCOME",
            }),
        )
        .await?;
    Ok(id)
}

/// Issues a partner key with limits far above any benchmark's rate;
/// `(api_key, api_secret)`.
pub async fn partner_key(server: &Server, admin: &str) -> anyhow::Result<(String, String)> {
    let key = server
        .send(
            reqwest::Method::POST,
            "/admin/partner-api-keys",
            &bearer(admin),
            serde_json::json!({
                "partner_id": "ZEBU", "partner_name": "Zebu Share and Wealth", "partner_type": "BROKER",
                "broker_id": "zebu",
                "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
                "permissions": ["marketplace:read", "marketplace:subscribe", "subscriptions:manage", "ledger:read"],
                "rate_limits": {"requests_per_minute": 1_000_000_000u32, "requests_per_day": 4_000_000_000u32},
            }),
        )
        .await?;
    Ok((
        key["api_key"].as_str().context("api_key")?.to_string(),
        key["api_secret"]
            .as_str()
            .context("api_secret")?
            .to_string(),
    ))
}

/// Subscribes `email` through the partner API; the subscription id.
pub async fn partner_subscribe(
    server: &Server,
    key: &(String, String),
    template: &str,
    email: &str,
) -> anyhow::Result<String> {
    let sub = server
        .send(
            reqwest::Method::POST,
            "/partner/marketplace/subscribe",
            &partner_headers(&key.0, &key.1),
            partner_subscribe_body(template, email),
        )
        .await?;
    Ok(sub["subscription_id"]
        .as_str()
        .context("subscription_id")?
        .to_string())
}

/// The body of a partner subscribe.
pub fn partner_subscribe_body(template: &str, email: &str) -> Value {
    serde_json::json!({
        "template_id": template, "user_email": email,
        "broker_client_id": "C000001", "auto_link_broker": true, "lot_multiplier": 2,
    })
}
