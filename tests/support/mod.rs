//! What the tests that run the real `basketry` binary share: stores under a
//! temp directory (or a throwaway PostgreSQL database from
//! `basketry_test_support::postgres` when `BASKETRY_TEST_API_BACKEND=postgres`), starting, killing and restarting
//! `basketry serve`, tokens, the seed data every test needs, and reading
//! the log and the read models back directly.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use basketry_store::RecordedEvent;
use basketry_test_support::postgres::TestDatabase;
use serde_json::{json, Value};

/// The HS256 secret every spawned server is given.
pub const SECRET: &str = "binary-test-secret-that-is-longer-than-32-bytes";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A JWT for `email` with `groups`, signed with [`SECRET`].
pub fn token(email: &str, groups: &[&str]) -> String {
    basketry_test_support::tokens::hs256(SECRET.as_bytes(), email, groups)
}

/// Where a test's servers keep their state: a data directory, and with
/// `BASKETRY_TEST_API_BACKEND=postgres` one PostgreSQL database for the
/// event store and the read models.
pub struct Stores {
    pub dir: tempfile::TempDir,
    pub pg: Option<TestDatabase>,
}

impl Stores {
    /// SQLite under a temp directory, or PostgreSQL when asked for.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = match std::env::var("BASKETRY_TEST_API_BACKEND").as_deref() {
            Ok("postgres") => Some(
                TestDatabase::create()
                    .await
                    .unwrap_or_else(|e| panic!("BASKETRY_TEST_API_BACKEND=postgres: {e}")),
            ),
            _ => None,
        };
        Self { dir, pg }
    }

    /// Embedded SQLite only, whatever the environment says.
    pub fn sqlite() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            pg: None,
        }
    }

    pub fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn event_store_url(&self) -> String {
        match &self.pg {
            Some(db) => db.url().to_string(),
            None => format!("sqlite://{}", self.dir.path().join("events.db").display()),
        }
    }

    pub fn read_db_url(&self) -> String {
        match &self.pg {
            Some(db) => db.url().to_string(),
            None => format!("sqlite://{}", self.dir.path().join("read.db").display()),
        }
    }

    /// `basketry` configured for these stores (and nothing from the
    /// caller's environment or working directory).
    pub fn basketry(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_basketry"));
        c.current_dir(self.dir.path())
            .env_remove("BASKETRY_CONFIG")
            .env_remove("BASKETRY_BIND")
            .env_remove("BASKETRY_RATE_LIMITS")
            .env_remove("BASKETRY_JWKS_URL")
            .env_remove("BASKETRY_JWKS_REFRESH")
            .env_remove("BASKETRY_JWT_ISSUER")
            .env_remove("BASKETRY_JWT_AUDIENCE")
            .env_remove("BASKETRY_JWT_HS256")
            .env_remove("BASKETRY_FAULT")
            .env_remove("BASKETRY_IDEMPOTENCY_IN_FLIGHT_TIMEOUT")
            .env("BASKETRY_DATA_DIR", self.dir.path())
            .env("BASKETRY_JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn");
        match &self.pg {
            Some(db) => {
                c.env("BASKETRY_EVENT_STORE", db.url())
                    .env("BASKETRY_READ_DB", db.url());
            }
            None => {
                c.env_remove("BASKETRY_EVENT_STORE")
                    .env_remove("BASKETRY_READ_DB");
            }
        }
        c
    }

    /// Runs `basketry ARGS…` to completion; panics with its output unless
    /// it succeeds. Returns stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.basketry().args(args).output().expect("run basketry");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "basketry {args:?}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Stores {
    /// What `basketry serve` would be configured with for these stores.
    pub fn settings(&self) -> basketry::config::Settings {
        let url = self.pg.as_ref().map(|db| db.url().to_string());
        basketry::config::Settings {
            data_dir: self.dir.path().to_path_buf(),
            event_store: url.clone(),
            read_db: url,
            rate_limits: "memory".into(),
            jwt_secret: Some(SECRET.into()),
            jwks_url: None,
            jwks_refresh: std::time::Duration::from_secs(600),
            jwt_issuer: None,
            jwt_audience: None,
            jwt_hs256: None,
            user_rate_limit_per_minute:
                basketry_command_api::limits::DEFAULT_USER_RATE_LIMIT_PER_MINUTE,
            idempotency_in_flight_timeout:
                basketry::config::DEFAULT_IDEMPOTENCY_IN_FLIGHT_TIMEOUT_SECS,
            billing_interval: "1h".into(),
        }
    }
}

/// The whole program (command API, projectors, query API) in this process
/// on `stores`, on a free port, as `basketry serve` composes it: its base
/// URL.
pub async fn serve_in_process(stores: &Stores) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = basketry::startup::Application::build(&stores.settings(), listener)
        .await
        .expect("build the application");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    base
}

/// One `basketry serve` process.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    roles: Vec<String>,
    log: PathBuf,
    starts: u32,
    /// Extra environment of every (re)start: `None` removes the variable.
    env: Vec<(String, Option<String>)>,
}

impl Server {
    /// Starts `basketry serve --bind 127.0.0.1:PORT [--role …]` on `stores`
    /// and waits until `/healthz` answers.
    pub async fn start(stores: &Stores, port: u16, roles: &[&str]) -> Self {
        let mut server = Server {
            child: None,
            port,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            log: stores.dir.path().join(format!("serve-{port}.log")),
            starts: 0,
            env: Vec::new(),
        };
        server.restart(stores).await;
        server
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets (`Some`) or removes (`None`) an environment variable for the
    /// next [`Self::restart`] and every later one.
    pub fn set_env(&mut self, name: &str, value: Option<&str>) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value.map(str::to_string)));
    }

    /// Waits (15 s at most) for the process to end by itself, e.g. through
    /// a fault hook; returns how it ended.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a running server");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not exit by itself:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process again on the same stores and port (after
    /// [`Self::kill`] or [`Self::terminate`]).
    pub async fn restart(&mut self, stores: &Stores) {
        assert!(self.child.is_none(), "the server is still running");
        let mut args = vec![
            "serve".to_string(),
            "--bind".into(),
            format!("127.0.0.1:{}", self.port),
        ];
        for r in &self.roles {
            args.push("--role".into());
            args.push(r.clone());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let err = log.try_clone().expect("server log");
        let mut command = stores.basketry();
        for (name, value) in &self.env {
            match value {
                Some(v) => command.env(name, v),
                None => command.env_remove(name),
            };
        }
        let mut child = command
            .args(&args)
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn basketry serve");
        self.starts += 1;
        let url = format!("{}/healthz", self.base());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "basketry serve exited at start ({status}):\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = http.get(&url).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("basketry serve did not come up:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown hook runs, nothing is flushed.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("a running server");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn terminate(&mut self) {
        let mut child = self.child.take().expect("a running server");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                assert!(
                    status.success(),
                    "serve exits cleanly on SIGTERM: {status}\n{}",
                    self.log_tail()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The end of the server's log (stdout and stderr of every start).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A partner's credentials: the key (bearer) and its secret.
#[derive(Clone, Debug)]
pub struct Partner {
    pub api_key_id: String,
    pub key: String,
    pub secret: String,
}

impl Partner {
    /// Adds the partner's headers to `req`.
    pub fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.bearer_auth(&self.key)
            .header("X-Partner-Secret", &self.secret)
    }
}

/// POSTs `body` as the admin and returns the 201 body.
pub async fn admin_post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(token("admin@basketry.dev", &["Admins"]))
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, 201, "POST {path}: {text}");
    serde_json::from_str(&text).expect("json")
}

/// A strategy every basket of these tests carries.
pub fn strategy() -> Value {
    json!({"name": "Short straddle", "underlying": "NIFTY", "product": "MIS",
           "entry_time": "09:20", "exit_time": "15:15",
           "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
           "legs": [{"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": 1},
                    {"action": "SELL", "option_type": "PE", "strike": "ATM", "expiry": "WEEKLY", "lots": 1}]})
}

/// An admin basket published as a PUBLIC PAID (₹999) template: its id.
pub async fn paid_template(http: &reqwest::Client, base: &str, name: &str) -> String {
    let basket = admin_post(
        http,
        base,
        "/baskets",
        json!({"name": name, "category": "INCOME", "strategies": [strategy()]}),
    )
    .await;
    let id = basket["basket_id"].as_str().expect("basket_id").to_string();
    admin_post(
        http,
        base,
        &format!("/admin/marketplace/templates/{id}"),
        json!({"visibility": "PUBLIC",
               "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
               "difficulty_level": "BEGINNER", "tags": ["NIFTY"], "category": "INCOME"}),
    )
    .await;
    id
}

/// A 70/30 partner with every permission and limits no test reaches.
pub async fn partner(http: &reqwest::Client, base: &str, partner_id: &str) -> Partner {
    let r = admin_post(
        http,
        base,
        "/admin/partner-api-keys",
        json!({"partner_id": partner_id, "partner_name": format!("{partner_id} Ltd"),
               "partner_type": "BROKER", "broker_id": partner_id.to_lowercase(),
               "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
               "rate_limits": {"requests_per_minute": 100000, "requests_per_day": 1000000},
               "permissions": ["marketplace:read", "marketplace:subscribe",
                               "subscriptions:manage", "ledger:read"]}),
    )
    .await;
    Partner {
        api_key_id: r["api_key_id"].as_str().expect("api_key_id").into(),
        key: r["api_key"].as_str().expect("api_key").into(),
        secret: r["api_secret"].as_str().expect("api_secret").into(),
    }
}

/// The whole log, in position order, read straight from the store.
pub async fn read_log(stores: &Stores) -> Vec<RecordedEvent> {
    let store = basketry_store::connect(&stores.event_store_url())
        .await
        .expect("open the event store");
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .read_all(after, 1_000)
            .await
            .expect("read the event store");
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        events.extend(page);
    }
    events
}

/// Verifies every stream's hash chain (revisions from 0, each linked to
/// the previous); returns the number of streams.
pub fn verify_chains(events: &[RecordedEvent]) -> usize {
    let mut streams: BTreeMap<&str, Vec<RecordedEvent>> = BTreeMap::new();
    for e in events {
        streams
            .entry(e.stream_id.as_str())
            .or_default()
            .push(e.clone());
    }
    for (stream, list) in &mut streams {
        list.sort_by_key(|e| e.revision);
        for (i, e) in list.iter().enumerate() {
            assert_eq!(e.revision.0, i as u64, "{stream}: revisions have a gap");
        }
        if let Err(brk) = basketry_store::chain::verify_stream(list) {
            panic!("{stream}: hash chain broken: {brk}");
        }
    }
    streams.len()
}

/// Opens the read database (as the projectors do).
pub async fn read_db(stores: &Stores) -> sqlx::AnyPool {
    basketry_projections::db::open(&stores.read_db_url())
        .await
        .expect("open the read database")
}

/// Each projector's committed position (commit part) and events applied.
pub async fn checkpoints(pool: &sqlx::AnyPool) -> BTreeMap<String, (u64, u64)> {
    basketry_projections::runtime::checkpoints(pool)
        .await
        .expect("read checkpoints")
        .into_iter()
        .map(|c| (c.name, (c.position.commit, c.events_applied)))
        .collect()
}

/// Waits until every projector's checkpoint is at `head` (60 s at most).
pub async fn wait_caught_up(pool: &sqlx::AnyPool, head: u64) -> BTreeMap<String, (u64, u64)> {
    let names = basketry_projections::projectors::all().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cps = checkpoints(pool).await;
        if cps.len() == names && cps.values().all(|(p, _)| *p == head) {
            return cps;
        }
        assert!(
            Instant::now() < deadline,
            "projectors did not reach {head}: {cps:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row of every projector's tables, as sorted text lines: what a
/// rebuild must reproduce exactly.
pub async fn snapshot(pool: &sqlx::AnyPool) -> Vec<String> {
    use sqlx::Row;
    let mut out = Vec::new();
    for projector in basketry_projections::projectors::all() {
        for table in projector.tables() {
            let rows = sqlx::query(&format!("SELECT * FROM {table}"))
                .fetch_all(pool)
                .await
                .expect("read table");
            let mut lines: Vec<String> = rows
                .iter()
                .map(|row| {
                    let cols: Vec<String> = (0..row.len())
                        .map(|i| {
                            row.try_get::<Option<String>, _>(i)
                                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                                .or_else(|_| {
                                    row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}"))
                                })
                                .or_else(|_| {
                                    row.try_get::<Option<i32>, _>(i)
                                        .map(|v| format!("{:?}", v.map(i64::from)))
                                })
                                .or_else(|_| {
                                    row.try_get::<Option<f64>, _>(i).map(|v| format!("{v:?}"))
                                })
                                .or_else(|_| {
                                    row.try_get::<Option<bool>, _>(i).map(|v| format!("{v:?}"))
                                })
                                .unwrap_or_else(|e| panic!("{table} column {i}: {e}"))
                        })
                        .collect();
                    format!("{table}: {}", cols.join("|"))
                })
                .collect();
            lines.sort();
            out.extend(lines);
        }
    }
    out
}

/// Live read models against a full rebuild: snapshots the projectors'
/// tables, runs `basketry projections rebuild` (the servers must be
/// stopped) and asserts the tables come back identical. Returns the number
/// of rows compared.
pub async fn assert_rebuild_reproduces(stores: &Stores) -> usize {
    let pool = read_db(stores).await;
    let live = snapshot(&pool).await;
    pool.close().await;
    let out = stores.run(&["projections", "rebuild"]);
    assert!(out.contains("rebuilt all projectors from"), "{out}");
    let pool = read_db(stores).await;
    let rebuilt = snapshot(&pool).await;
    pool.close().await;
    if live != rebuilt {
        let only_live: Vec<&String> = live.iter().filter(|l| !rebuilt.contains(l)).collect();
        let only_rebuilt: Vec<&String> = rebuilt.iter().filter(|l| !live.contains(l)).collect();
        panic!(
            "the live read models differ from a rebuild\nlive only ({}): {:#?}\nrebuild only ({}): {:#?}",
            only_live.len(),
            &only_live[..only_live.len().min(10)],
            only_rebuilt.len(),
            &only_rebuilt[..only_rebuilt.len().min(10)]
        );
    }
    live.len()
}
