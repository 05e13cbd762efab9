//! Billing runs by itself: the process holding the projector lease charges
//! a due period every `BASKETRY_BILLING_INTERVAL` without anyone calling
//! `POST /admin/billing/run` or `basketry billing run`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;

use support::{token, Stores};

async fn post(http: &reqwest::Client, url: String, jwt: &str, body: Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(jwt)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let body: Value = r.json().await.expect("json");
    assert_eq!(status, 201, "{body:#}");
    body
}

#[tokio::test]
async fn the_lease_holder_charges_due_periods_every_interval_by_itself() {
    let stores = Stores::new().await;
    let mut settings = stores.settings();
    settings.billing_interval = "1s".into();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = basketry::startup::Application::build(&settings, listener)
        .await
        .expect("build the application");
    let base = format!("http://127.0.0.1:{}", app.port());
    let clock = app.clock.clone();
    let store = std::sync::Arc::clone(&app.store);
    tokio::spawn(app.run_until_stopped());

    let http = reqwest::Client::new();
    let admin = token("admin@basketry.dev", &["Admins"]);
    let basket = post(
        &http,
        format!("{base}/baskets"),
        &admin,
        json!({
            "name": "Nifty weekly income",
            "description": "Sells weekly straddles",
            "category": "INCOME",
            "strategies": [{
                "name": "Short straddle", "underlying": "NIFTY", "product": "MIS",
                "entry_time": "09:20", "exit_time": "15:15",
                "trading_days": ["MON", "TUE", "WED", "THU", "FRI"], "stop_loss_pct": 25,
                "legs": [
                    {"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": 3},
                    {"action": "SELL", "option_type": "PE", "strike": "ATM", "expiry": "WEEKLY", "lots": 3}
                ]
            }]
        }),
    )
    .await;
    let id = basket["basket_id"].as_str().expect("basket_id").to_string();
    post(
        &http,
        format!("{base}/admin/marketplace/templates/{id}"),
        &admin,
        json!({
            "visibility": "PUBLIC",
            "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
            "difficulty_level": "BEGINNER",
            "tags": ["NIFTY"],
            "category": "INCOME"
        }),
    )
    .await;
    let sub = post(
        &http,
        format!("{base}/marketplace/subscribe/{id}"),
        &token("payer@example.com", &[]),
        json!({}),
    )
    .await;
    let subscription = sub["subscription_id"].as_str().expect("id").to_string();

    let charges = || async {
        let mut n = 0;
        let mut after = None;
        loop {
            let page = store.read_all(after, 1000).await.expect("read_all");
            let Some(last) = page.last() else { break };
            after = Some(last.position);
            n += page
                .iter()
                .filter(|e| {
                    e.event_type == "SubscriptionCharged"
                        && e.data["subscription_id"] == subscription.as_str()
                })
                .count();
        }
        n
    };
    assert_eq!(charges().await, 1, "the first month, at subscription");

    // A month later, nobody calls the billing run: the server does.
    clock.advance(chrono::TimeDelta::days(32));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if charges().await == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second month was not charged within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And only once, however many intervals pass.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(charges().await, 2);
}
