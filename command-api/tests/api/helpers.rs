//! `spawn_app()`: the whole program on port 0, started in this process by
//! the same start-up code as `basketry serve`
//! ([`basketry_test_support::server`]), over fresh stores — SQLite files,
//! or one throwaway PostgreSQL database with `BASKETRY_TEST_API_BACKEND=postgres`
//! — and a client with one method per kind of request.

use std::sync::Arc;
use std::time::Duration;

use basketry_command_api::auth::PartnerAuthenticator;
use basketry_command_api::command::Clock;
use basketry_store::{EventStore, RecordedEvent};
pub use basketry_test_support::server::Backend;
use basketry_test_support::server::{TestServer, TestServerBuilder};
use basketry_test_support::tokens::Token;
use serde_json::{json, Value};
use sqlx::Connection;

pub const JWT_SECRET: &[u8] = b"test-secret-that-is-at-least-32-bytes-long!!";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn EventStore>,
    pub clock: Clock,
    pub admin: String,
    /// The read database holding the billing index.
    pub read_db: sqlx::AnyPool,
    server: TestServer,
}

/// The app on the backend `BASKETRY_TEST_API_BACKEND` names (SQLite
/// unless it says `postgres`).
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::from_env()).await
}

/// The app on `backend`.
pub async fn spawn_app_on(backend: Backend) -> TestApp {
    spawn_with(server(backend)).await
}

/// How the app on `backend` is started: the HS256 test secret, the rest
/// as production; the caller may wrap its stores or change its settings.
pub fn server(backend: Backend) -> TestServerBuilder {
    TestServer::builder(backend).jwt_secret(std::str::from_utf8(JWT_SECRET).expect("ASCII secret"))
}

/// The app `builder` starts.
pub async fn spawn_with(builder: TestServerBuilder) -> TestApp {
    let server = builder.spawn().await.unwrap_or_else(|e| panic!("{e}"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    TestApp {
        base: server.base.clone(),
        client,
        store: Arc::clone(&server.store),
        clock: server.clock.clone(),
        admin: token("admin@basketry.dev", &["Admins"]),
        read_db: server.read_db.clone(),
        server,
    }
}

/// The default app on `backend` and its partner authenticator (for its
/// argon2 counter).
pub async fn spawn_app_observed(backend: Backend) -> (TestApp, PartnerAuthenticator) {
    let app = spawn_app_on(backend).await;
    let partners = app.server.partners.clone();
    (app, partners)
}

/// A JWT for `email` with `groups`, valid for a year (tests move the clock).
pub fn token(email: &str, groups: &[&str]) -> String {
    Token::new(email)
        .groups(groups)
        .ttl(Duration::from_secs(365 * 24 * 3600))
        .sign_hs256(JWT_SECRET)
        .expect("mint token")
}

/// How a request authenticates.
#[derive(Clone)]
pub enum Cred {
    None,
    Jwt(String),
    Partner { key: String, secret: String },
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

    pub async fn post(&self, path: &str, cred: &Cred, body: Value) -> Resp {
        self.send(reqwest::Method::POST, path, cred, Some(body), &[])
            .await
    }

    pub async fn put(&self, path: &str, cred: &Cred, body: Value) -> Resp {
        self.send(reqwest::Method::PUT, path, cred, Some(body), &[])
            .await
    }

    pub async fn delete(&self, path: &str, cred: &Cred) -> Resp {
        self.send(reqwest::Method::DELETE, path, cred, None, &[])
            .await
    }

    pub fn admin(&self) -> Cred {
        Cred::Jwt(self.admin.clone())
    }

    /// Every stored event of `event_type`, in log order.
    pub async fn events(&self, event_type: &str) -> Vec<RecordedEvent> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.read_all(after, 1000).await.expect("read_all");
            let Some(last) = page.last() else { break };
            after = Some(last.position);
            out.extend(page.into_iter().filter(|e| e.event_type == event_type));
        }
        out
    }

    /// An admin basket with one strategy, published as a PAID ₹999 template.
    pub async fn paid_template(&self) -> String {
        let basket = self.post("/baskets", &self.admin(), basket_body()).await;
        assert_eq!(basket.status, 201, "{}", basket.text);
        let id = basket.body["basket_id"]
            .as_str()
            .expect("basket_id")
            .to_string();
        let published = self
            .post(
                &format!("/admin/marketplace/templates/{id}"),
                &self.admin(),
                json!({
                    "visibility": "PUBLIC",
                    "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
                    "difficulty_level": "BEGINNER",
                    "tags": ["NIFTY", "WEEKLY"],
                    "category": "INCOME"
                }),
            )
            .await;
        assert_eq!(published.status, 201, "{}", published.text);
        id
    }

    /// A partner (30 % share) with the given permissions (the defaults when
    /// empty); its credentials and key id.
    pub async fn partner(&self, partner_id: &str, permissions: &[&str]) -> (Cred, String) {
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
        let created = self
            .post("/admin/partner-api-keys", &self.admin(), body)
            .await;
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
}

pub fn strategy_body() -> Value {
    json!({
        "name": "Short straddle",
        "underlying": "NIFTY",
        "product": "MIS",
        "entry_time": "09:20",
        "exit_time": "15:15",
        "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
        "stop_loss_pct": 25,
        "legs": [
            {"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": 3},
            {"action": "SELL", "option_type": "PE", "strike": "ATM", "expiry": "WEEKLY", "lots": 3}
        ]
    })
}

pub fn basket_body() -> Value {
    json!({
        "name": "Nifty weekly income",
        "description": "Sells weekly straddles",
        "category": "INCOME",
        "strategies": [strategy_body()]
    })
}

impl TestApp {
    /// Every stored event, in log order.
    pub async fn all_events(&self) -> Vec<RecordedEvent> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.read_all(after, 1000).await.expect("read_all");
            let Some(last) = page.last() else { break };
            after = Some(last.position);
            out.extend(page);
        }
        out
    }

    /// Sends raw bytes with `content_type` (none when `None`).
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        cred: &Cred,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match cred {
            Cred::None => req,
            Cred::Jwt(t) => req.bearer_auth(t),
            Cred::Partner { key, secret } => {
                req.bearer_auth(key).header("X-Partner-Secret", secret)
            }
        };
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.body(body).send().await.expect("request");
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

    /// Every value of every column of every table of the databases this app
    /// writes (event store, read models, idempotency records, key usage,
    /// rate limits), as text.
    pub async fn dump_databases(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.server.database {
            Some(db) => {
                let mut c = sqlx::PgConnection::connect(db.url())
                    .await
                    .expect("connect to postgres");
                let tables: Vec<(String, String)> = sqlx::query_as(
                    "SELECT table_schema, table_name FROM information_schema.tables \
                     WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
                     AND table_type = 'BASE TABLE'",
                )
                .fetch_all(&mut c)
                .await
                .expect("list tables");
                assert!(!tables.is_empty(), "no tables found");
                for (schema, table) in tables {
                    let rows: Vec<(Option<String>,)> = sqlx::query_as(&format!(
                        "SELECT row_to_json(t)::text FROM \"{schema}\".\"{table}\" t"
                    ))
                    .fetch_all(&mut c)
                    .await
                    .expect("dump table");
                    out.extend(rows.into_iter().filter_map(|(r,)| r));
                }
            }
            None => {
                for file in ["events.db", "read.db"] {
                    let url = format!(
                        "sqlite://{}?mode=ro",
                        self.server.dir.path().join(file).display()
                    );
                    let mut c = sqlx::SqliteConnection::connect(&url)
                        .await
                        .expect("open sqlite");
                    let tables: Vec<(String,)> =
                        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
                            .fetch_all(&mut c)
                            .await
                            .expect("list tables");
                    assert!(!tables.is_empty(), "no tables in {file}");
                    for (table,) in tables {
                        let columns: Vec<(String,)> =
                            sqlx::query_as("SELECT name FROM pragma_table_info(?1)")
                                .bind(&table)
                                .fetch_all(&mut c)
                                .await
                                .expect("list columns");
                        for (column,) in columns {
                            let values: Vec<(Option<Vec<u8>>,)> = sqlx::query_as(&format!(
                                "SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\""
                            ))
                            .fetch_all(&mut c)
                            .await
                            .expect("dump column");
                            out.extend(values.into_iter().filter_map(|(v,)| {
                                v.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                            }));
                        }
                    }
                }
            }
        }
        out
    }
}

/// Everything the process logs through `tracing`, at every level, from the
/// moment [`capture_logs`] is first called (by any test of this binary).
pub fn captured_logs() -> String {
    let buffer = log_buffer().lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&buffer).into_owned()
}

fn log_buffer() -> &'static std::sync::Mutex<Vec<u8>> {
    static BUFFER: std::sync::OnceLock<std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    BUFFER.get_or_init(|| std::sync::Mutex::new(Vec::new()))
}

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        log_buffer()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary, a global `tracing` subscriber that keeps
/// every event and span (with their fields, at every level) in memory. It
/// must be global: actix serves requests on worker threads of its own.
pub fn capture_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
            .with_ansi(false)
            .with_writer(|| LogSink)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
}
