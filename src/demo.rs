//! `basketry demo`: a realistic marketplace loaded through the real command
//! path — the whole program runs in-process on a loopback port and every
//! write is an HTTP request, exactly as a client would send it.
//!
//! What it loads (choices drawn from a seeded generator, so two runs make
//! the same marketplace up to ids and timestamps):
//! * 24 templates in six categories, FREE and PAID, 1–3 strategies each;
//! * 3 partners (ZEBU 30 %, ANGEL_ONE 25 %, FYERS 20 %) with keys;
//! * 2 000 users (by default) subscribing over the last 150 days, 60 % through a partner
//!   with the broker linked, the rest directly with their own allocation;
//! * a billing run every 30 days (several months of charges), about 6 % of
//!   subscriptions paused and 6 % cancelled, some resumed.
//!
//! Time: the demo moves the command side's clock back 150 days and forward
//! day by day, so subscriptions, periods and charges are spread over months
//! as in a live marketplace (events' `recorded_at` stays the real time).

use std::net::TcpListener;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::TimeDelta;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::config::Settings;
use crate::startup::Application;

const CATEGORIES: [&str; 6] = [
    "INCOME",
    "HEDGING",
    "MOMENTUM",
    "VOLATILITY",
    "DIRECTIONAL",
    "ARBITRAGE",
];
const UNDERLYINGS: [&str; 4] = ["NIFTY", "BANKNIFTY", "FINNIFTY", "SENSEX"];
const DIFFICULTIES: [&str; 3] = ["BEGINNER", "INTERMEDIATE", "ADVANCED"];
const PARTNERS: [(&str, &str, u32); 3] = [
    ("ZEBU", "Zebu Share and Wealth", 30),
    ("ANGEL_ONE", "Angel One", 25),
    ("FYERS", "Fyers Securities", 20),
];
const DAYS: i64 = 150;
/// Users (and so subscriptions) loaded by default.
pub const DEFAULT_USERS: usize = 2_000;

/// What the demo printed for the reader to try.
pub struct DemoSummary {
    /// An admin JWT (12 h).
    pub admin_token: String,
    /// One partner's key and secret.
    pub partner_key: String,
    /// Its secret (shown once, like the API does).
    pub partner_secret: String,
    /// Counts of what was loaded.
    pub templates: usize,
    /// Subscriptions created.
    pub subscriptions: usize,
    /// Charges made (first months and billing runs).
    pub charges: u64,
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: &[(&str, String)],
        body: Value,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .json(&body);
        for (name, value) in auth {
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
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn strategy(rng: &mut StdRng, i: usize) -> Value {
    let entry_hour = rng.gen_range(9..12);
    let entry_minute = [15, 20, 30, 45][rng.gen_range(0..4)];
    let exit_hour = rng.gen_range(13..15);
    let legs: Vec<Value> = (0..rng.gen_range(1..=4))
        .map(|l| {
            json!({
                "action": if l % 2 == 0 { "SELL" } else { "BUY" },
                "option_type": if l % 4 < 2 { "CE" } else { "PE" },
                "strike": (["ATM", "ATM+1", "ATM-1", "ATM+2"][l % 4]),
                "expiry": if rng.gen_bool(0.7) { "WEEKLY" } else { "MONTHLY" },
                "lots": rng.gen_range(1..=5),
            })
        })
        .collect();
    let days: Vec<&str> = ["MON", "TUE", "WED", "THU", "FRI"]
        .into_iter()
        .filter(|_| rng.gen_bool(0.8))
        .collect();
    json!({
        "name": format!("Leg set {}", i + 1),
        "underlying": UNDERLYINGS[rng.gen_range(0..UNDERLYINGS.len())],
        "product": if rng.gen_bool(0.7) { "MIS" } else { "NRML" },
        "entry_time": format!("{entry_hour:02}:{entry_minute:02}"),
        "exit_time": format!("{exit_hour:02}:{:02}", rng.gen_range(0..60)),
        "trading_days": if days.is_empty() { vec!["THU"] } else { days },
        "stop_loss_pct": rng.gen_range(10..40),
        "legs": legs,
    })
}

/// Loads the demo marketplace into the configured stores and returns what
/// to print. `progress(done, total)` is called as users are loaded.
pub async fn run(
    settings: &Settings,
    users: usize,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<DemoSummary> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    // The demo moves the clock and runs billing itself every 30 days; a
    // scheduled run at some other simulated instant would only blur the
    // counts it prints.
    let mut settings = settings.clone();
    settings.billing_interval = "off".into();
    let settings = &settings;
    let app = Application::build(settings, listener).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let clock = app.clock.clone();
    let handle = app.server_handle();
    let server = tokio::spawn(app.run_until_stopped());
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("http client")?,
        base,
    };
    let secret = settings.jwt_secret()?;
    let mint = |email: &str, groups: &[&str]| {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        basketry_command_api::auth::mint_hs256(
            &secret,
            email,
            &groups,
            Duration::from_secs(12 * 3600),
            chrono::Utc::now(),
        )
        .map_err(|e| anyhow::anyhow!("minting a token: {e}"))
    };
    let admin = mint("admin@demo.basketry.dev", &["Admins"])?;
    let mut rng = StdRng::seed_from_u64(20261121);
    clock.advance(TimeDelta::days(-DAYS));

    // Templates.
    let mut templates = Vec::new();
    for i in 0..24 {
        let category = CATEGORIES[i % CATEGORIES.len()];
        let strategies: Vec<Value> = (0..rng.gen_range(1..=3))
            .map(|s| strategy(&mut rng, s))
            .collect();
        let basket = client
            .send(
                reqwest::Method::POST,
                "/baskets",
                &bearer(&admin),
                json!({
                    "name": format!("{} {} #{}", UNDERLYINGS[i % 4].to_lowercase(), category.to_lowercase(), i + 1),
                    "description": format!("A {} basket of {} strategies", category.to_lowercase(), strategies.len()),
                    "category": category,
                    "strategies": strategies,
                }),
            )
            .await?;
        let id = basket["basket_id"]
            .as_str()
            .context("basket_id")?
            .to_string();
        let paid = i % 3 != 0;
        let fee = if paid {
            [49_900, 99_900, 149_900, 299_900][i % 4]
        } else {
            0
        };
        client
            .send(
                reqwest::Method::POST,
                &format!("/admin/marketplace/templates/{id}"),
                &bearer(&admin),
                json!({
                    "visibility": if i == 23 { "PRIVATE" } else { "PUBLIC" },
                    "pricing": {"type": if paid { "PAID" } else { "FREE" }, "monthly_fee": fee, "currency": "INR"},
                    "difficulty_level": DIFFICULTIES[i % 3],
                    "tags": [UNDERLYINGS[i % 4], if i % 2 == 0 { "WEEKLY" } else { "MONTHLY" }],
                    "category": category,
                }),
            )
            .await?;
        templates.push(id);
    }

    // Partners.
    let mut partners = Vec::new();
    for (id, name, share) in PARTNERS {
        let key = client
            .send(
                reqwest::Method::POST,
                "/admin/partner-api-keys",
                &bearer(&admin),
                json!({
                    "partner_id": id, "partner_name": name, "partner_type": "BROKER",
                    "broker_id": id.to_lowercase(),
                    "revenue_share": {"platform_percentage": 100 - share, "partner_percentage": share},
                    "permissions": ["marketplace:read", "marketplace:subscribe", "subscriptions:manage", "ledger:read"],
                    "rate_limits": {"requests_per_minute": 100_000, "requests_per_day": 10_000_000},
                }),
            )
            .await?;
        partners.push((
            key["api_key"].as_str().context("api_key")?.to_string(),
            key["api_secret"]
                .as_str()
                .context("api_secret")?
                .to_string(),
        ));
    }

    // Users subscribe day by day; billing runs every 30 days.
    let mut subscriptions: Vec<(String, Option<usize>, String)> = Vec::new();
    let mut user = 0usize;
    let mut charges = 0u64;
    for day in 0..DAYS {
        let today = (users * (day as usize + 1)) / DAYS as usize;
        while user < today {
            let email = format!("user{:04}@demo.basketry.dev", user + 1);
            // Popularity is skewed so that "popular" ranks mean something.
            let t = (rng.gen_range(0.0f64..1.0).powi(2) * templates.len() as f64) as usize;
            let template = &templates[t.min(templates.len() - 1)];
            let via_partner = rng.gen_bool(0.6).then(|| rng.gen_range(0..partners.len()));
            let sub =
                match via_partner {
                    Some(p) => {
                        let (key, secret) = &partners[p];
                        client
                            .send(
                                reqwest::Method::POST,
                                "/partner/marketplace/subscribe",
                                &[
                                    ("authorization", format!("Bearer {key}")),
                                    ("x-partner-secret", secret.clone()),
                                ],
                                json!({
                                    "template_id": template, "user_email": email,
                                    "broker_client_id": format!("C{:06}", user + 1),
                                    "auto_link_broker": true,
                                    "lot_multiplier": ([1, 1, 2, 3][rng.gen_range(0..4)]),
                                }),
                            )
                            .await?
                    }
                    None => client
                        .send(
                            reqwest::Method::POST,
                            &format!("/marketplace/subscribe/{template}"),
                            &bearer(&mint(&email, &[])?),
                            json!({"broker_allocations": [{
                                "broker_id": (["zerodha", "upstox", "dhan"][rng.gen_range(0..3)]),
                                "client_id": format!("D{:06}", user + 1),
                                "lot_multiplier": "1.5", "priority": 1
                            }]}),
                        )
                        .await?,
                };
            if sub["revenue_share"].is_object() || sub["first_charge"].is_object() {
                charges += 1;
            }
            subscriptions.push((
                sub["subscription_id"]
                    .as_str()
                    .context("subscription_id")?
                    .to_string(),
                via_partner,
                email,
            ));
            user += 1;
            progress(user as u64, users as u64);
        }
        // Some customers pause, resume or leave.
        if day % 7 == 6 && !subscriptions.is_empty() {
            for _ in 0..6 {
                let i = rng.gen_range(0..subscriptions.len());
                let action = ["pause", "pause", "resume", "cancel"][rng.gen_range(0..4)];
                let (id, partner, email) = &subscriptions[i];
                let (method, path, auth) = match (action, partner) {
                    ("cancel", Some(p)) => (
                        reqwest::Method::DELETE,
                        format!("/partner/subscriptions/{id}"),
                        vec![
                            ("authorization", format!("Bearer {}", partners[*p].0)),
                            ("x-partner-secret", partners[*p].1.clone()),
                        ],
                    ),
                    ("cancel", None) => (
                        reqwest::Method::DELETE,
                        format!("/user/subscriptions/{id}"),
                        bearer(&mint(email, &[])?),
                    ),
                    (op, Some(p)) => (
                        reqwest::Method::PUT,
                        format!("/partner/subscriptions/{id}/{op}"),
                        vec![
                            ("authorization", format!("Bearer {}", partners[*p].0)),
                            ("x-partner-secret", partners[*p].1.clone()),
                        ],
                    ),
                    (op, None) => (
                        reqwest::Method::PUT,
                        format!("/user/subscriptions/{id}/{op}"),
                        bearer(&mint(email, &[])?),
                    ),
                };
                // A transition the subscription cannot make (resuming an
                // active one, pausing a cancelled one) is refused with 409,
                // as it would be for any client: that is part of the demo.
                let _ = client.send(method, &path, &auth, json!({})).await;
            }
        }
        if day % 30 == 29 {
            let run = client
                .send(
                    reqwest::Method::POST,
                    "/admin/billing/run",
                    &bearer(&admin),
                    json!({}),
                )
                .await?;
            charges += run["charges"].as_u64().unwrap_or(0);
        }
        clock.advance(TimeDelta::days(1));
    }
    let run = client
        .send(
            reqwest::Method::POST,
            "/admin/billing/run",
            &bearer(&admin),
            json!({}),
        )
        .await?;
    charges += run["charges"].as_u64().unwrap_or(0);
    // Let the projectors catch up so the read models show everything, then
    // stop gracefully (checkpoints saved).
    for _ in 0..600 {
        let ready = client
            .http
            .get(format!("{}/readyz", client.base))
            .send()
            .await
            .ok();
        let body: Value = match ready {
            Some(r) => r.json().await.unwrap_or(Value::Null),
            None => Value::Null,
        };
        let caught_up = body["projectors"]
            .as_array()
            .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["lag_events"] == 0));
        if caught_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    handle.stop(true).await;
    server.await.context("server task")?.context("server")?;
    let (partner_key, partner_secret) = partners.swap_remove(0);
    Ok(DemoSummary {
        admin_token: admin,
        partner_key,
        partner_secret,
        templates: templates.len(),
        subscriptions: subscriptions.len(),
        charges,
    })
}
