//! The API's flows (docs/reference/api.md) end to end over HTTP against the whole program (command
//! API, projectors and query API on one port), as `basketry serve` runs it.

use std::time::Duration;

use serde_json::{json, Value};

mod support;

use support::{token, Stores};

struct App {
    base: String,
    client: reqwest::Client,
    admin: String,
    stores: Stores,
}

struct Resp {
    status: u16,
    body: Value,
    text: String,
    token: Option<String>,
}

async fn spawn() -> App {
    // `.ci/run` runs these flows a second time with every store on
    // PostgreSQL (BASKETRY_TEST_API_BACKEND=postgres).
    let stores = Stores::new().await;
    let base = support::serve_in_process(&stores).await;
    App {
        base,
        client: reqwest::Client::new(),
        admin: token("admin@basketry.dev", &["Admins"]),
        stores,
    }
}

#[derive(Clone)]
enum Cred {
    Jwt(String),
    Partner(String, String),
}

impl App {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        cred: &Cred,
        body: Option<Value>,
        consistency: Option<&str>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match cred {
            Cred::Jwt(t) => req.bearer_auth(t),
            Cred::Partner(k, s) => req.bearer_auth(k).header("X-Partner-Secret", s),
        };
        if let Some(t) = consistency {
            req = req.header("X-Consistency-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let token = r
            .headers()
            .get("x-consistency-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = r.text().await.expect("body");
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            token,
        }
    }

    async fn post(&self, path: &str, cred: &Cred, body: Value) -> Resp {
        self.call(reqwest::Method::POST, path, cred, Some(body), None)
            .await
    }

    async fn put(&self, path: &str, cred: &Cred, body: Value) -> Resp {
        self.call(reqwest::Method::PUT, path, cred, Some(body), None)
            .await
    }

    /// A read that waits for the projections to include `after`.
    async fn get(&self, path: &str, cred: &Cred, after: Option<&str>) -> Resp {
        self.call(reqwest::Method::GET, path, cred, None, after)
            .await
    }

    fn admin(&self) -> Cred {
        Cred::Jwt(self.admin.clone())
    }

    /// A published PAID (₹999) template named `name` with `lots` per leg.
    async fn template(&self, name: &str, category: &str, lots: u32) -> (String, String) {
        let b = self
            .post(
                "/baskets",
                &self.admin(),
                json!({"name": name, "category": category, "strategies": [strategy(lots)]}),
            )
            .await;
        assert_eq!(b.status, 201, "{}", b.text);
        let id = b.body["basket_id"].as_str().expect("id").to_string();
        let p = self
            .post(
                &format!("/admin/marketplace/templates/{id}"),
                &self.admin(),
                json!({"visibility": "PUBLIC",
                       "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
                       "difficulty_level": "BEGINNER", "tags": ["NIFTY"], "category": category}),
            )
            .await;
        assert_eq!(p.status, 201, "{}", p.text);
        (id, p.token.expect("token"))
    }

    async fn partner(&self, id: &str) -> Cred {
        let r = self
            .post(
                "/admin/partner-api-keys",
                &self.admin(),
                json!({"partner_id": id, "partner_name": format!("{id} Ltd"), "partner_type": "BROKER",
                       "broker_id": id.to_lowercase(),
                       "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
                       "rate_limits": {"requests_per_minute": 10000, "requests_per_day": 100000},
                       "permissions": ["marketplace:read", "marketplace:subscribe", "subscriptions:manage", "ledger:read"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        Cred::Partner(
            r.body["api_key"].as_str().expect("key").into(),
            r.body["api_secret"].as_str().expect("secret").into(),
        )
    }
}

fn strategy(lots: u32) -> Value {
    json!({"name": "Short straddle", "underlying": "NIFTY", "product": "MIS",
           "entry_time": "09:20", "exit_time": "15:15",
           "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
           "legs": [{"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": lots},
                    {"action": "SELL", "option_type": "PE", "strike": "ATM", "expiry": "WEEKLY", "lots": lots}]})
}

/// The consistency token of the write that committed last among
/// concurrent ones (tokens are `commit.prepare`).
fn newest_token(results: &[Resp]) -> Option<String> {
    results
        .iter()
        .filter_map(|r| r.token.clone())
        .max_by_key(|t| {
            t.split('.')
                .next()
                .and_then(|c| c.parse::<u64>().ok())
                .unwrap_or(0)
        })
}

fn user(email: &str) -> Cred {
    Cred::Jwt(token(email, &[]))
}

#[tokio::test]
async fn browse_ranks_templates_by_subscribers_and_subscribers_see_the_admins_edit() {
    let app = spawn().await;
    let (quiet, _) = app.template("Quiet income", "INCOME", 1).await;
    let (busy, _) = app.template("Busy momentum", "MOMENTUM", 2).await;
    let mut last = None;
    for i in 0..3 {
        let r = app
            .post(
                &format!("/marketplace/subscribe/{busy}"),
                &user(&format!("u{i}@example.com")),
                json!({}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        last = r.token;
    }
    let r = app
        .post(
            &format!("/marketplace/subscribe/{quiet}"),
            &user("u0@example.com"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Read after the last write of all (the quiet subscription).
    assert!(last.is_some());
    let browse = app
        .get(
            "/marketplace/templates?sort=popular",
            &user("x@example.com"),
            r.token.as_deref(),
        )
        .await;
    assert_eq!(browse.status, 200, "{}", browse.text);
    let list = browse.body["templates"].as_array().expect("templates");
    assert_eq!(list[0]["template_id"], busy.as_str(), "{}", browse.text);
    assert_eq!(list[0]["subscriber_count"], 3);
    assert_eq!(list[1]["subscriber_count"], 1);

    // The admin edits the basket: every subscriber trades the new version.
    let basket = app
        .get(&format!("/baskets/{busy}"), &app.admin(), None)
        .await;
    let sid = basket.body["strategies"][0]["strategy_id"]
        .as_str()
        .expect("sid")
        .to_string();
    let edit = app
        .put(
            &format!("/baskets/{busy}/strategies/{sid}"),
            &app.admin(),
            strategy(7),
        )
        .await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    let details = app
        .get(
            &format!("/marketplace/templates/{busy}"),
            &Cred::Jwt(token("exec@basketry.dev", &["Executors"])),
            edit.token.as_deref(),
        )
        .await;
    assert_eq!(details.status, 200, "{}", details.text);
    assert_eq!(
        details.body["strategies"][0]["legs"][0]["lots"], 7,
        "{}",
        details.text
    );
    let mine = app
        .get(
            "/user/subscriptions",
            &user("u1@example.com"),
            edit.token.as_deref(),
        )
        .await;
    assert_eq!(mine.body["subscriptions"][0]["template_id"], busy.as_str());
}

#[tokio::test]
async fn pause_resume_and_cancel_are_reflected_in_the_read_models() {
    let app = spawn().await;
    let (t, _) = app.template("Weekly", "INCOME", 1).await;
    let zebu = app.partner("ZEBU").await;
    let s = app
        .post("/partner/marketplace/subscribe", &zebu,
              json!({"template_id": t, "user_email": "ravi@example.com", "broker_client_id": "ZB1", "auto_link_broker": true, "lot_multiplier": 1}))
        .await;
    assert_eq!(s.status, 201, "{}", s.text);
    let id = s.body["subscription_id"].as_str().expect("id").to_string();
    for (op, status) in [("pause", "PAUSED"), ("resume", "ACTIVE")] {
        let r = app
            .put(
                &format!("/partner/subscriptions/{id}/{op}"),
                &zebu,
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let read = app
            .get(
                &format!("/partner/subscriptions/{id}"),
                &zebu,
                r.token.as_deref(),
            )
            .await;
        assert_eq!(read.body["status"], status, "{}", read.text);
    }
    let r = app
        .call(
            reqwest::Method::DELETE,
            &format!("/partner/subscriptions/{id}"),
            &zebu,
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let read = app
        .get(
            &format!("/user/subscriptions/{id}"),
            &user("ravi@example.com"),
            r.token.as_deref(),
        )
        .await;
    assert_eq!(read.body["status"], "CANCELLED", "{}", read.text);
    assert_eq!(
        read.body["status_history"].as_array().map(Vec::len),
        Some(4)
    );
    let details = app
        .get(
            &format!("/marketplace/templates/{t}"),
            &user("ravi@example.com"),
            r.token.as_deref(),
        )
        .await;
    assert_eq!(details.body["subscriber_count"], 0, "{}", details.text);
}

#[tokio::test]
async fn subscriber_count_is_exact_after_200_mixed_concurrent_subscribes_and_cancels() {
    let app = spawn().await;
    let (t, _) = app.template("Crowded", "INCOME", 1).await;
    // 150 users subscribe concurrently; then 50 of them cancel while 50 more
    // subscribe, all at once.
    let subscribe = |i: usize| {
        let app = &app;
        let t = t.clone();
        async move {
            let r = app
                .post(
                    &format!("/marketplace/subscribe/{t}"),
                    &user(&format!("c{i}@example.com")),
                    json!({}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["subscription_id"].as_str().expect("id").to_string()
        }
    };
    let first: Vec<String> = futures::future::join_all((0..150).map(subscribe)).await;
    let cancels = first.iter().take(50).enumerate().map(|(i, id)| {
        let app = &app;
        async move {
            let r = app
                .call(
                    reqwest::Method::DELETE,
                    &format!("/user/subscriptions/{id}"),
                    &user(&format!("c{i}@example.com")),
                    None,
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.token
        }
    });
    let (tokens, _more): (Vec<Option<String>>, Vec<String>) = futures::future::join(
        futures::future::join_all(cancels),
        futures::future::join_all((150..200).map(subscribe)),
    )
    .await;
    let probe = app
        .post(
            &format!("/marketplace/subscribe/{t}"),
            &user("last@example.com"),
            json!({}),
        )
        .await;
    assert_eq!(probe.status, 201);
    assert!(tokens.iter().all(Option::is_some));
    let details = app
        .get(
            &format!("/marketplace/templates/{t}"),
            &user("x@example.com"),
            probe.token.as_deref(),
        )
        .await;
    assert_eq!(
        details.body["subscriber_count"],
        150 - 50 + 50 + 1,
        "{}",
        details.text
    );
}

#[tokio::test]
async fn the_money_checks_of_the_business_plan_hold_through_the_ledger_api() {
    let app = spawn().await;
    let (t, _) = app.template("Money", "INCOME", 1).await;
    let zebu = app.partner("ZEBU").await;
    let mut last = None;
    for batch in 0..10 {
        let results = futures::future::join_all((0..100).map(|i| {
            let app = &app;
            let zebu = zebu.clone();
            let t = t.clone();
            async move {
                app.post("/partner/marketplace/subscribe", &zebu,
                         json!({"template_id": t, "user_email": format!("m{batch}-{i}@example.com"),
                                "broker_client_id": "C1", "auto_link_broker": true, "lot_multiplier": 1}))
                    .await
            }
        }))
        .await;
        for r in &results {
            assert_eq!(r.status, 201, "{}", r.text);
        }
        if batch == 0 {
            // One subscription: platform 69 930, partner 29 970 paise.
            assert_eq!(
                results[0].body["revenue_share"]["partner_commission"],
                29970
            );
            assert_eq!(results[0].body["revenue_share"]["platform_fee"], 69930);
            let ledger = app
                .get("/partner/ledger", &zebu, newest_token(&results).as_deref())
                .await;
            assert_eq!(ledger.status, 200, "{}", ledger.text);
            // 100 subscriptions: ₹69 930.00 platform, ₹29 970.00 partner.
            assert_eq!(
                ledger.body["totals"]["platform_share"], 6_993_000,
                "{}",
                ledger.text
            );
            assert_eq!(ledger.body["totals"]["partner_share"], 2_997_000);
        }
        last = newest_token(&results);
    }
    // 1 000 subscriptions: gross ₹9 99 000, partner ₹2 99 700, platform ₹6 99 300.
    let ledger = app
        .get("/partner/ledger?limit=100", &zebu, last.as_deref())
        .await;
    assert_eq!(
        ledger.body["totals"]["gross"], 99_900_000,
        "{}",
        ledger.text
    );
    assert_eq!(ledger.body["totals"]["partner_share"], 29_970_000);
    assert_eq!(ledger.body["totals"]["platform_share"], 69_930_000);
    let admin = app
        .get(
            "/admin/ledger?partner_id=ZEBU",
            &app.admin(),
            last.as_deref(),
        )
        .await;
    assert_eq!(admin.body["totals"], ledger.body["totals"]);
}

/// Every row of the read-model tables, in primary-key order, as text.
async fn snapshot(read_db: &std::path::Path) -> Vec<String> {
    use sqlx::{Connection, Row};
    let url = format!("sqlite://{}", read_db.display());
    let mut c = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open read db");
    let mut out = Vec::new();
    for (table, key) in [
        ("rm_baskets", "basket_id"),
        ("rm_template_tags", "template_id, tag"),
        ("rm_subscriptions", "subscription_id"),
        ("rm_ledger", "event_id"),
        ("rm_partner_keys", "api_key_id"),
    ] {
        let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {key}"))
            .fetch_all(&mut c)
            .await
            .expect("read table");
        for row in rows {
            let cols: Vec<String> = (0..row.len())
                .map(|i| {
                    row.try_get::<Option<String>, _>(i)
                        .map(|v| v.unwrap_or_else(|| "NULL".into()))
                        .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                        .unwrap_or_else(|_| "?".into())
                })
                .collect();
            out.push(format!("{table}: {}", cols.join("|")));
        }
    }
    out
}

#[tokio::test]
async fn projections_rebuild_on_the_command_line_reproduces_the_live_read_models() {
    if std::env::var("BASKETRY_TEST_API_BACKEND").as_deref() == Ok("postgres") {
        // The command-line rebuild is exercised on the embedded default;
        // rebuild-equals-live on PostgreSQL is covered by the projections
        // crate's tests.
        return;
    }
    let app = spawn().await;
    let (t, _) = app.template("Rebuilt", "INCOME", 1).await;
    let zebu = app.partner("ZEBU").await;
    let mut last = None;
    for i in 0..5 {
        let r = app
            .post(
                "/partner/marketplace/subscribe",
                &zebu,
                json!({"template_id": t, "user_email": format!("r{i}@example.com"),
                       "broker_client_id": "C1", "auto_link_broker": true, "lot_multiplier": 1}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        last = r.token;
    }
    let caught_up = app.get("/partner/ledger", &zebu, last.as_deref()).await;
    assert_eq!(caught_up.body["entries"].as_array().map(Vec::len), Some(5));
    let read_db = app.stores.data_dir().join("read.db");
    let before = snapshot(&read_db).await;
    assert!(before.len() > 10, "{before:?}");
    assert!(
        before.iter().all(|l| !l.split('|').any(|c| c == "?")),
        "every column decoded: {before:?}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_basketry"))
        .args(["projections", "rebuild"])
        .env("BASKETRY_DATA_DIR", app.stores.data_dir())
        .env_remove("BASKETRY_EVENT_STORE")
        .env_remove("BASKETRY_READ_DB")
        .output()
        .expect("run basketry");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("rebuilt all projectors from"), "{stdout}");
    assert_eq!(snapshot(&read_db).await, before);
}

#[tokio::test]
async fn request_ids_are_echoed_and_metrics_count_requests_by_route_and_show_projector_lag() {
    let app = spawn().await;
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-42")
    );
    let generated = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("healthz");
    assert!(generated.headers().get("x-request-id").is_some());
    let (t, token) = app.template("Measured", "INCOME", 1).await;
    // The template is read back through the query API, so the projectors
    // have caught up; readiness follows within a poll or two.
    let details = app
        .get(
            &format!("/marketplace/templates/{t}"),
            &app.admin(),
            Some(&token),
        )
        .await;
    assert_eq!(details.status, 200, "{}", details.text);
    let mut ready = app.get("/readyz", &app.admin(), None).await;
    for _ in 0..100 {
        if ready.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = app.get("/readyz", &app.admin(), None).await;
    }
    assert_eq!(ready.status, 200, "{}", ready.text);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "basketry_http_requests_total{method=\"POST\",route=\"/baskets\",status=\"201\"} 1",
        "basketry_http_request_duration_seconds_bucket{method=\"GET\",route=\"/marketplace/templates/{id}\",status=\"200\",le=\"+Inf\"} 1",
        "basketry_projector_lag_events{projector=\"baskets\"}",
        "basketry_event_store_head_position",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn after_the_demo_browse_returns_templates_ranked_by_subscribers() {
    if std::env::var("BASKETRY_TEST_API_BACKEND").as_deref() == Ok("postgres") {
        return; // the demo is exercised on the embedded default
    }
    let stores = Stores::sqlite();
    let summary = basketry::demo::run(&stores.settings(), 150, |_, _| {})
        .await
        .expect("demo");
    assert_eq!((summary.templates, summary.subscriptions), (24, 150));
    assert!(
        summary.charges > 100,
        "first months and billing runs: {}",
        summary.charges
    );
    let base = support::serve_in_process(&stores).await;
    let body: Value = reqwest::Client::new()
        .get(format!("{base}/marketplace/templates?limit=100"))
        .bearer_auth(token("browser@example.com", &[]))
        .send()
        .await
        .expect("browse")
        .json()
        .await
        .expect("json");
    let counts: Vec<i64> = body["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| t["subscriber_count"].as_i64().expect("count"))
        .collect();
    assert_eq!(counts.len(), 23, "24 templates, one PRIVATE: {body}");
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "ranked: {counts:?}"
    );
    assert!(counts[0] > counts[counts.len() - 1], "{counts:?}");
    // The partner printed for the reader works.
    let r = reqwest::Client::new()
        .get(format!("{base}/partner/subscriptions"))
        .bearer_auth(&summary.partner_key)
        .header("X-Partner-Secret", &summary.partner_secret)
        .send()
        .await
        .expect("partner");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_program_serves_its_documented_operational_routes_and_the_api_documents() {
    let app = spawn().await;
    for (method, path) in basketry_openapi::BINARY_ROUTES {
        assert_eq!(*method, "GET");
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("request");
        assert_ne!(r.status(), 404, "{path} is documented but not served");
    }
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    for (_, path) in basketry_openapi::BINARY_ROUTES {
        assert!(
            doc["paths"][*path].is_object(),
            "{path} missing from the document"
        );
    }
    let docs = app
        .client
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), 200);
    assert!(docs
        .text()
        .await
        .expect("html")
        .contains("/partner/marketplace/subscribe"));
}
