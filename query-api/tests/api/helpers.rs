//! `spawn_app(backend)`: the query API mounted beside the command API on one
//! actix app (as the `basketry` binary mounts them), on port 0, over a fresh
//! read-model database opened by `basketry_projections::db::open`; seeding
//! helpers that write the `rm_*` tables as the projectors would; a client
//! with one method per kind of request.

use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::{self, Data};
use actix_web::{App, HttpServer};
use basketry_command_api::command::AppState;
use basketry_command_api::limits::SqliteIdempotencyStore;
use basketry_domain::{Email, UserId};
use basketry_http::auth::{AuthState, JwtVerifier, PartnerAuthConfig, PartnerAuthenticator};
use basketry_http::clock::Clock;
use basketry_http::rate::{InMemoryRateLimiter, RateLimitPolicy, RateLimiter};
use basketry_http::route::not_found;
use basketry_query_api::consistency::CheckpointWatcher;
use basketry_query_api::{configure, QueryState};
use basketry_store::memory::MemoryStore;
use basketry_store::EventStore;
use basketry_test_support::postgres::TestDatabase;
use basketry_test_support::tokens::Token;
use serde_json::{json, Value};
use sqlx::AnyPool;
use uuid::Uuid;

pub const JWT_SECRET: &[u8] = b"query-test-secret-that-is-at-least-32-bytes!";

/// How long a consistency token is waited for in tests (production: 3 s).
pub const CONSISTENCY_WAIT: Duration = Duration::from_millis(1500);

/// Which database the read models live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named case (an `async fn(TestApp)`) once per backend:
/// `sqlite::<case>` and `postgres::<case>`, the latter reported as ignored
/// unless `BASKETRY_TEST_POSTGRES_URL` was set when the tests were built.
#[macro_export]
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await;
                    super::$case(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
                async fn $case() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await;
                    super::$case(app).await;
                }
            )*
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The read-model database the app queries.
    pub db: AnyPool,
    /// The same database through the typed pool of the hot read paths.
    pub read: basketry_projections::db::ReadPool,
    pub store: Arc<dyn EventStore>,
    position: AtomicI64,
    /// The app's checkpoint watcher (it counts its database reads).
    pub checkpoints: CheckpointWatcher,
    _dir: tempfile::TempDir,
    _pg: Option<TestDatabase>,
}

/// People's rate limit, as production's default.
fn people() -> RateLimitPolicy {
    RateLimitPolicy::per_person(basketry_command_api::limits::DEFAULT_USER_RATE_LIMIT_PER_MINUTE)
}

/// The app on `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, CONSISTENCY_WAIT).await
}

/// The app on `backend` with a chosen consistency wait.
pub async fn spawn_app_with(backend: Backend, consistency_wait: Duration) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pg) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("read.db").display()),
            None,
        ),
        Backend::Postgres => {
            let db = TestDatabase::create()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (db.url().to_string(), Some(db))
        }
    };
    // Opened and migrated exactly as the application opens it.
    let db = basketry_projections::db::open(&url)
        .await
        .expect("open the read database");

    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // One limiter for both APIs, as in production.
    let rate_limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::new());
    let auth = Data::new(AuthState {
        jwt: JwtVerifier::hs256(JWT_SECRET).expect("jwt verifier"),
        partners: PartnerAuthenticator::new(Arc::clone(&store), PartnerAuthConfig::default()),
    });
    // One clock for both APIs, as in production.
    let clock = Clock::system();
    let commands = Data::new(AppState {
        store: Arc::clone(&store),
        rate_limiter: Arc::clone(&rate_limiter),
        user_rate_limit: people(),
        idempotency: Arc::new(
            SqliteIdempotencyStore::open(dir.path().join("command.db"))
                .await
                .expect("open idempotency store"),
        ),
        clock: clock.clone(),
        billing_index: Arc::new(basketry_command_api::billing::SqlDueIndex::new(db.clone())),
    });
    let checkpoints = CheckpointWatcher::new(db.clone(), Vec::new());
    let read = basketry_projections::db::open_typed(&url)
        .await
        .expect("open the typed read pool");
    let queries = Data::new(QueryState {
        db: db.clone(),
        sqlite_reader: basketry_query_api::sqlite_reader::SqliteReader::of(&read),
        read: read.clone(),
        store: Arc::clone(&store),
        rate_limiter,
        user_rate_limit: people(),
        consistency_wait,
        checkpoints: checkpoints.clone(),
        clock,
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let port = listener.local_addr().expect("local addr").port();
    let server = HttpServer::new(move || {
        App::new()
            .configure(basketry_command_api::app::configure(
                commands.clone(),
                auth.clone(),
            ))
            .configure(configure(queries.clone()))
            .default_service(web::to(not_found))
    })
    .workers(2)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        db,
        read,
        store,
        position: AtomicI64::new(100),
        checkpoints,
        _dir: dir,
        _pg: pg,
    }
}

/// A JWT for `email` with `groups`.
pub fn token(email: &str, groups: &[&str]) -> String {
    Token::new(email)
        .groups(groups)
        .sign_hs256(JWT_SECRET)
        .expect("mint token")
}

/// The `user_id` of `email`.
pub fn user_id(email: &str) -> String {
    UserId::from_email(&Email::parse(email).expect("email")).to_string()
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Cred {
    None,
    Jwt(String),
    Partner { key: String, secret: String },
}

pub fn admin() -> Cred {
    Cred::Jwt(token("admin@basketry.dev", &["Admins"]))
}

pub fn admin_id() -> String {
    user_id("admin@basketry.dev")
}

pub fn user(email: &str) -> Cred {
    Cred::Jwt(token(email, &[]))
}

pub fn executor() -> Cred {
    Cred::Jwt(token("exec@basketry.dev", &["Executors"]))
}

pub fn auditor() -> Cred {
    Cred::Jwt(token("audit@basketry.dev", &["Auditors"]))
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a 200 and gives the body.
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.text);
        &self.body
    }

    /// Asserts the response is problem+json with `status` and `code`.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(self.body["status"], status, "{}", self.text);
        assert!(self.body["type"].is_string() && self.body["title"].is_string());
    }

    /// The ids under `field` of every item of the list `plural`.
    pub fn ids(&self, plural: &str, field: &str) -> Vec<String> {
        self.ok()[plural]
            .as_array()
            .unwrap_or_else(|| panic!("no `{plural}` in {}", self.text))
            .iter()
            .map(|item| item[field].as_str().expect("id").to_string())
            .collect()
    }

    pub fn next_cursor(&self) -> Option<String> {
        self.ok()["next_cursor"].as_str().map(str::to_string)
    }
}

impl TestApp {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        cred: &Cred,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match cred {
            Cred::None => req,
            Cred::Jwt(t) => req.bearer_auth(t),
            Cred::Partner { key, secret } => {
                req.bearer_auth(key).header("X-Partner-Secret", secret)
            }
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, cred: &Cred) -> Resp {
        self.send(reqwest::Method::GET, path, cred, None, &[]).await
    }

    pub async fn get_with(&self, path: &str, cred: &Cred, headers: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::GET, path, cred, None, headers)
            .await
    }

    pub async fn post(&self, path: &str, cred: &Cred, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, cred, Some(body), &[])
            .await
    }

    /// Every item of the list at `path` (which has a `?`), following
    /// `next_cursor` with pages of `limit`; panics on a repeated page.
    pub async fn all_pages(&self, path: &str, cred: &Cred, plural: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let url = match &cursor {
                None => format!("{path}&limit={limit}"),
                Some(c) => format!("{path}&limit={limit}&cursor={c}"),
            };
            let page = self.get(&url, cred).await;
            let body = page.ok().clone();
            items.extend(body[plural].as_array().expect("list").iter().cloned());
            match page.next_cursor() {
                Some(next) => cursor = Some(next),
                None => return items,
            }
        }
        panic!("paging did not end");
    }

    /// A global position not used yet in this test.
    pub fn next_position(&self) -> i64 {
        self.position.fetch_add(1, Ordering::Relaxed)
    }

    /// A partner registered through the command API (30 % share) with
    /// `permissions` (the defaults when empty) and optional rate limits;
    /// its credentials and key id.
    pub async fn partner(
        &self,
        partner_id: &str,
        permissions: &[&str],
        rate_limits: Option<Value>,
    ) -> (Cred, String) {
        let mut body = json!({
            "partner_id": partner_id,
            "partner_name": format!("{partner_id} Broking"),
            "partner_type": "BROKER",
            "broker_id": partner_id.to_lowercase(),
            "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
        });
        if !permissions.is_empty() {
            body["permissions"] = json!(permissions);
        }
        if let Some(limits) = rate_limits {
            body["rate_limits"] = limits;
        }
        let created = self.post("/admin/partner-api-keys", &admin(), body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        let key = created.body["api_key"]
            .as_str()
            .expect("api_key")
            .to_string();
        let secret = created.body["api_secret"]
            .as_str()
            .expect("api_secret")
            .to_string();
        let id = created.body["api_key_id"]
            .as_str()
            .expect("api_key_id")
            .to_string();
        (Cred::Partner { key, secret }, id)
    }

    /// Runs one statement with text and integer values bound in order.
    pub async fn exec(&self, sql: &str, args: Vec<Arg>) {
        let mut q = sqlx::query(sql);
        for a in args {
            q = match a {
                Arg::I(v) => q.bind(v),
                Arg::T(v) => q.bind(v),
                Arg::N => q.bind(Option::<String>::None),
                Arg::NI => q.bind(Option::<i64>::None),
            };
        }
        q.execute(&self.db).await.expect(sql);
    }

    /// Writes a basket row as the projector would.
    pub async fn seed_basket(&self, b: &BasketSeed) {
        let published = b.published_position.is_some();
        self.exec(
            "INSERT INTO rm_baskets (basket_id, owner_id, owner_is_admin, name, description, \
             category, strategies, strategy_count, revision, created_at, updated_at, \
             created_position, is_template, visibility, pricing_type, monthly_fee, currency, \
             difficulty_level, tags, template_category, published_at, published_position, \
             subscriber_count, performance_metrics, strategy_previews) VALUES ($1, $2, $3, $4, \
             $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
             $23, $24, $25)",
            vec![
                Arg::T(b.basket_id.clone()),
                Arg::T(b.owner_id.clone()),
                Arg::I(i64::from(b.owner_id == admin_id())),
                Arg::T(b.name.clone()),
                Arg::T(format!("{} description", b.name)),
                Arg::T(b.category.clone()),
                Arg::T(b.strategies.to_string()),
                Arg::I(b.strategies.as_array().map_or(0, |s| s.len() as i64)),
                Arg::I(b.revision),
                Arg::T("2026-11-01T10:00:00.000000Z".into()),
                Arg::T("2026-11-02T10:00:00.000000Z".into()),
                Arg::I(b.created_position),
                Arg::I(i64::from(b.enabled)),
                opt(published.then(|| b.visibility.clone())),
                opt(published.then(|| b.pricing_type.clone())),
                if published {
                    Arg::I(b.monthly_fee)
                } else {
                    Arg::NI
                },
                opt(published.then(|| "INR".to_string())),
                opt(published.then(|| b.difficulty_level.clone())),
                opt(published.then(|| json!(b.tags).to_string())),
                opt(published.then(|| b.category.clone())),
                opt(published.then(|| "2026-11-03T10:00:00.000000Z".to_string())),
                match b.published_position {
                    Some(p) => Arg::I(p),
                    None => Arg::NI,
                },
                Arg::I(b.subscriber_count),
                opt(b.performance_metrics.as_ref().map(Value::to_string)),
                Arg::T(
                    basketry_projections::projectors::strategy_previews(
                        b.strategies.as_array().map_or(&[], Vec::as_slice),
                    )
                    .to_string(),
                ),
            ],
        )
        .await;
        if published {
            for tag in &b.tags {
                self.exec(
                    "INSERT INTO rm_template_tags (template_id, tag) VALUES ($1, $2)",
                    vec![Arg::T(b.basket_id.clone()), Arg::T(tag.clone())],
                )
                .await;
            }
        }
    }

    /// Writes a subscription row as the projector would.
    pub async fn seed_subscription(&self, s: &SubscriptionSeed) {
        self.exec(
            "INSERT INTO rm_subscriptions (subscription_id, created_position, user_id, \
             user_email, template_id, template_name, partner_id, api_key_id, status, \
             pricing_type, monthly_fee, currency, allocations, next_billing_date, \
             status_history, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            vec![
                Arg::T(s.subscription_id.clone()),
                Arg::I(s.created_position),
                Arg::T(user_id(&s.user_email)),
                Arg::T(s.user_email.clone()),
                Arg::T(s.template_id.clone()),
                Arg::T("Nifty weekly income".into()),
                opt(s.partner_id.clone()),
                opt(s.partner_id.as_ref().map(|_| Uuid::now_v7().to_string())),
                Arg::T(s.status.clone()),
                Arg::T("PAID".into()),
                Arg::I(99900),
                Arg::T("INR".into()),
                Arg::T(s.allocations.to_string()),
                opt((s.status != "CANCELLED").then(|| "2026-12-05".to_string())),
                Arg::T(
                    json!([{"from": null, "to": "ACTIVE", "actor": {"kind": "user"},
                            "reason": null, "at": "2026-11-05T09:30:00.000000Z"}])
                    .to_string(),
                ),
                Arg::T("2026-11-05T09:30:00.000000Z".into()),
                Arg::T("2026-11-05T09:30:00.000000Z".into()),
            ],
        )
        .await;
    }

    /// Writes a ledger line; its id.
    pub async fn seed_ledger(
        &self,
        partner_id: Option<&str>,
        period_start: &str,
        amount: i64,
        partner_bps: i64,
    ) -> String {
        let event_id = Uuid::now_v7().to_string();
        let position = self.next_position();
        // docs/reference/domain.md#revenue-share: partner share rounded half up, platform the rest.
        let partner_share = (amount * partner_bps + 5_000) / 10_000;
        self.exec(
            "INSERT INTO rm_ledger (event_id, commit_position, prepare_position, \
             subscription_id, template_id, user_id, partner_id, period_index, period_start, \
             period_end, amount, currency, partner_bps, platform_bps, partner_share, \
             platform_share, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
             $12, $13, $14, $15, $16, $17)",
            vec![
                Arg::T(event_id.clone()),
                Arg::I(position),
                Arg::I(position),
                Arg::T(Uuid::now_v7().to_string()),
                Arg::T(Uuid::now_v7().to_string()),
                Arg::T(user_id("payer@example.com")),
                opt(partner_id.map(str::to_string)),
                Arg::I(0),
                Arg::T(period_start.to_string()),
                Arg::T(period_start.replacen("2026-", "2027-", 1)),
                Arg::I(amount),
                Arg::T("INR".into()),
                Arg::I(partner_bps),
                Arg::I(10_000 - partner_bps),
                Arg::I(partner_share),
                Arg::I(amount - partner_share),
                Arg::T(period_start.to_string()),
            ],
        )
        .await;
        event_id
    }

    /// Sets projector `name`'s checkpoint to `commit.prepare`.
    pub async fn checkpoint(&self, name: &str, commit: i64, prepare: i64) {
        self.exec(
            "DELETE FROM projector_checkpoints WHERE name = $1",
            vec![Arg::T(name.into())],
        )
        .await;
        self.exec(
            "INSERT INTO projector_checkpoints (name, commit_position, prepare_position, \
             events_applied, last_recorded_at) VALUES ($1, $2, $3, $4, $5)",
            vec![
                Arg::T(name.into()),
                Arg::I(commit),
                Arg::I(prepare),
                Arg::I(commit),
                Arg::T("2026-11-21T10:00:00.000000Z".into()),
            ],
        )
        .await;
    }
}

/// A value to bind (NULLs are typed: PostgreSQL refuses a text NULL in
/// a BIGINT column).
pub enum Arg {
    I(i64),
    T(String),
    /// A text NULL.
    N,
    /// An integer NULL.
    NI,
}

fn opt(v: Option<String>) -> Arg {
    v.map_or(Arg::N, Arg::T)
}

/// A strategy as `BasketCreated` carries it.
pub fn strategy_json(name: &str) -> Value {
    json!({
        "strategy_id": Uuid::now_v7().to_string(),
        "name": name,
        "underlying": "NIFTY",
        "product": "MIS",
        "entry_time": "09:20",
        "exit_time": "15:15",
        "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
        "stop_loss_bps": 2500,
        "target_bps": null,
        "legs": [
            {"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": 3},
            {"action": "SELL", "option_type": "PE", "strike": "ATM", "expiry": "WEEKLY", "lots": 3}
        ]
    })
}

/// An `rm_baskets` row to seed; [`BasketSeed::template`] is a PUBLIC
/// enabled template of the admin.
#[derive(Debug, Clone)]
pub struct BasketSeed {
    pub basket_id: String,
    pub owner_id: String,
    pub name: String,
    pub category: String,
    pub strategies: Value,
    pub revision: i64,
    pub created_position: i64,
    pub enabled: bool,
    pub published_position: Option<i64>,
    pub visibility: String,
    pub pricing_type: String,
    pub monthly_fee: i64,
    pub difficulty_level: String,
    pub tags: Vec<String>,
    pub subscriber_count: i64,
    pub performance_metrics: Option<Value>,
}

impl BasketSeed {
    /// A PUBLIC, enabled, PAID ₹999 INCOME template of the admin.
    pub fn template(app: &TestApp, name: &str) -> Self {
        let created = app.next_position();
        Self {
            basket_id: Uuid::now_v7().to_string(),
            owner_id: admin_id(),
            name: name.to_string(),
            category: "INCOME".into(),
            strategies: json!([strategy_json("Short straddle")]),
            revision: 2,
            created_position: created,
            enabled: true,
            published_position: Some(app.next_position()),
            visibility: "PUBLIC".into(),
            pricing_type: "PAID".into(),
            monthly_fee: 99900,
            difficulty_level: "BEGINNER".into(),
            tags: vec!["NIFTY".into(), "WEEKLY".into()],
            subscriber_count: 0,
            performance_metrics: None,
        }
    }

    /// A basket of `owner_email`, never published.
    pub fn basket(app: &TestApp, owner_email: &str, name: &str) -> Self {
        Self {
            owner_id: user_id(owner_email),
            enabled: false,
            published_position: None,
            ..Self::template(app, name)
        }
    }
}

/// An `rm_subscriptions` row to seed.
#[derive(Debug, Clone)]
pub struct SubscriptionSeed {
    pub subscription_id: String,
    pub created_position: i64,
    pub user_email: String,
    pub template_id: String,
    pub partner_id: Option<String>,
    pub status: String,
    pub allocations: Value,
}

impl SubscriptionSeed {
    /// An ACTIVE direct subscription of `email` to `template_id`.
    pub fn new(app: &TestApp, email: &str, template_id: &str) -> Self {
        Self {
            subscription_id: Uuid::now_v7().to_string(),
            created_position: app.next_position(),
            user_email: email.to_string(),
            template_id: template_id.to_string(),
            partner_id: None,
            status: "ACTIVE".into(),
            allocations: json!([{
                "allocation_id": Uuid::now_v7().to_string(),
                "broker_id": "zebu",
                "client_id": "ZB1234",
                "lot_multiplier": 2,
                "priority": 1,
                "max_lots_per_order": 50
            }]),
        }
    }
}

impl TestApp {
    /// Runs every projector over the app's event store until the read
    /// models hold everything appended so far: commands sent through the
    /// command API (or events appended straight to the store) become the
    /// rows the query API reads, as `basketry serve` makes them.
    pub async fn project(&self) {
        basketry_projections::ProjectorRuntime::new(
            Arc::clone(&self.store),
            self.db.clone(),
            basketry_projections::projectors::all(),
        )
        .catch_up()
        .await
        .expect("the projectors catch up");
    }
}
