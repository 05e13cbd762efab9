//! Back-pressure, timeouts and pools (issue 13, findings 5 and 6): a locked
//! database answers 503 in bounded time and recovers, `/readyz` sees a dead
//! writer and a failing projector, a flood of requests holding the request
//! pool stalls neither projection nor the lease, and people are rate
//! limited exactly. Each runs on SQLite, and on PostgreSQL with
//! `BASKETRY_TEST_API_BACKEND=postgres`.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;

use support::{admin_post, free_port, strategy, token, Server, Stores};

fn basket() -> Value {
    json!({"name": "Weekly income", "category": "INCOME", "strategies": [strategy()]})
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // Longer than any bound asserted below, so a hang shows as a
        // failed assertion rather than a test that never ends.
        .timeout(Duration::from_secs(40))
        .build()
        .expect("client")
}

/// Another session holding the event store's write lock: SQLite
/// `BEGIN EXCLUSIVE` on `events.db`, PostgreSQL the advisory lock every
/// appending transaction takes.
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    async fn take(stores: &Stores) -> Self {
        use sqlx::{Connection, Executor};
        match &stores.pg {
            None => {
                let mut c = sqlx::SqliteConnection::connect(&stores.event_store_url())
                    .await
                    .expect("open events.db");
                c.execute("BEGIN EXCLUSIVE").await.expect("BEGIN EXCLUSIVE");
                WriteLock::Sqlite(c)
            }
            Some(db) => {
                let mut c = sqlx::PgConnection::connect(db.url())
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(basketry_store::postgres::WRITE_LOCK)
                    .execute(&mut c)
                    .await
                    .expect("advisory lock");
                WriteLock::Postgres(c)
            }
        }
    }

    async fn release(self) {
        use sqlx::{Connection, Executor};
        match self {
            WriteLock::Sqlite(mut c) => {
                c.execute("ROLLBACK").await.expect("ROLLBACK");
                c.close().await.expect("close");
            }
            WriteLock::Postgres(c) => c.close().await.expect("close"),
        }
    }
}

async fn post_basket(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
) -> (u16, Option<String>, String) {
    let r = http
        .post(format!("{base}/baskets"))
        .bearer_auth(admin)
        .json(&basket())
        .send()
        .await
        .expect("POST /baskets answers");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, retry, r.text().await.unwrap_or_default())
}

async fn readyz(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let r = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("/readyz answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls `/readyz` until it answers `want`, at most `within`.
async fn readyz_becomes(http: &reqwest::Client, base: &str, want: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = readyz(http, base).await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_event_store_is_a_prompt_503_readyz_sees_it_and_writes_recover() {
    let stores = Stores::new().await;
    let server = Server::start(&stores, free_port(), &[]).await;
    let base = server.base();
    let http = client();
    let admin = token("admin@basketry.dev", &["Admins"]);
    admin_post(&http, &base, "/baskets", basket()).await;
    readyz_becomes(&http, &base, 200, Duration::from_secs(20)).await;

    let lock = WriteLock::take(&stores).await;
    let started = Instant::now();
    let (status, retry, text) = post_basket(&http, &base, &admin).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "a write while the store is locked: {text}");
    assert!(text.contains("service_unavailable"), "{text}");
    assert!(retry.is_some(), "a 503 says when to retry");
    assert!(
        took < Duration::from_secs(15),
        "answered after {took:?}: bounded, not hanging"
    );
    let body = readyz_becomes(&http, &base, 503, Duration::from_secs(15)).await;
    assert_eq!(body["event_store"], "unavailable", "{body}");

    lock.release().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, text) = post_basket(&http, &base, &admin).await;
        if status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not recover after the lock went: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    readyz_becomes(&http, &base, 200, Duration::from_secs(30)).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_projector_makes_readyz_not_ready() {
    let stores = Stores::new().await;
    let server = Server::start(&stores, free_port(), &[]).await;
    let base = server.base();
    let http = client();
    admin_post(&http, &base, "/baskets", basket()).await;
    readyz_becomes(&http, &base, 200, Duration::from_secs(20)).await;

    // Take a read model's table away: the projector that writes it fails
    // every batch from now on.
    let pool = support::read_db(&stores).await;
    sqlx::query("DROP TABLE rm_baskets")
        .execute(&pool)
        .await
        .expect("drop a read-model table");
    admin_post(&http, &base, "/baskets", basket()).await;
    // Well before the 30 s lag bound would say so.
    let body = readyz_becomes(&http, &base, 503, Duration::from_secs(15)).await;
    let failing: Vec<&Value> = body["projectors"]
        .as_array()
        .expect("projectors")
        .iter()
        .filter(|p| p["ready"] == false)
        .collect();
    assert!(
        !failing.is_empty(),
        "a projector is reported failing: {body}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holding_every_request_connection_stalls_neither_projection_nor_the_lease() {
    use sqlx::Row;
    let stores = Stores::new().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = basketry::startup::Application::build(&stores.settings(), listener)
        .await
        .expect("build the application");
    let base = format!("http://127.0.0.1:{}", app.port());
    let requests = app.request_pool();
    tokio::spawn(app.run_until_stopped());
    let http = client();
    admin_post(&http, &base, "/baskets", basket()).await;
    let observer = support::read_db(&stores).await;
    let lease_until = |pool: sqlx::AnyPool| async move {
        sqlx::query("SELECT expires_at FROM projector_leases WHERE name = 'projectors'")
            .fetch_optional(&pool)
            .await
            .expect("read the lease")
            .map(|r| r.try_get::<i64, _>(0).expect("expires_at"))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while lease_until(observer.clone()).await.is_none() {
        assert!(Instant::now() < deadline, "the lease was never taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A flood of slow requests, at its worst: every connection of the
    // request pool taken and kept.
    let max = requests.options().get_max_connections();
    let mut held = Vec::new();
    for _ in 0..max {
        held.push(requests.acquire().await.expect("a request connection"));
    }
    let held_at = lease_until(observer.clone()).await.expect("lease row");
    let created = admin_post(&http, &base, "/baskets", basket()).await;
    let id = created["basket_id"]
        .as_str()
        .expect("basket_id")
        .to_string();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let projected = sqlx::query("SELECT 1 FROM rm_baskets WHERE basket_id = $1")
            .bind(&id)
            .fetch_optional(&observer)
            .await
            .expect("read rm_baskets")
            .is_some();
        let renewed = lease_until(observer.clone()).await.unwrap_or(0) > held_at;
        if projected && renewed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "with the request pool exhausted: projected {projected}, lease renewed {renewed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
}

/// A `basketry serve` process, killed when dropped (also when the test
/// panics).
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `basketry serve` on `stores` with extra environment; waits for `/healthz`.
async fn serve_with(stores: &Stores, port: u16, env: &[(&str, &str)]) -> Serving {
    let mut cmd = stores.basketry();
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut serving = Serving(cmd.spawn().expect("spawn basketry serve"));
    let http = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = serving.0.try_wait() {
            panic!("basketry serve exited at start: {status}");
        }
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return serving;
            }
        }
        assert!(Instant::now() < deadline, "basketry serve did not come up");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Fires `n` concurrent requests and sorts the answers by status.
async fn burst(n: usize, make: impl Fn() -> reqwest::RequestBuilder) -> Vec<reqwest::Response> {
    let all = futures::future::join_all((0..n).map(|_| make().send())).await;
    all.into_iter().map(|r| r.expect("an answer")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_rate_limited_exactly_under_concurrency_on_both_apis() {
    const LIMIT: usize = 5;
    const FIRED: usize = 24;
    let stores = Stores::new().await;
    let port = free_port();
    let serving = serve_with(
        &stores,
        port,
        &[("BASKETRY_USER_RATE_LIMIT_PER_MINUTE", "5")],
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let http = client();

    let reader = token("reader@example.com", &[]);
    let reads = burst(FIRED, || {
        http.get(format!("{base}/baskets")).bearer_auth(&reader)
    })
    .await;
    let writer = token("writer@example.com", &[]);
    let writes = burst(FIRED, || {
        http.post(format!("{base}/baskets"))
            .bearer_auth(&writer)
            .json(&basket())
    })
    .await;
    // The execution plan streams outside the query API's common path; it
    // counts against the same bucket.
    let executor = token("executor@example.com", &["Executors"]);
    let plans = burst(FIRED, || {
        http.get(format!("{base}/execution/plan?at=2026-11-23T03:45:00Z"))
            .bearer_auth(&executor)
    })
    .await;
    for (api, answers, ok) in [
        ("query", reads, 200),
        ("command", writes, 201),
        ("execution plan", plans, 200),
    ] {
        let passed = answers.iter().filter(|r| r.status() == ok).count();
        let limited: Vec<&reqwest::Response> =
            answers.iter().filter(|r| r.status() == 429).collect();
        assert_eq!(
            (passed, limited.len()),
            (LIMIT, FIRED - LIMIT),
            "{api} API: {:?}",
            answers
                .iter()
                .map(|r| r.status().as_u16())
                .collect::<Vec<_>>()
        );
        for r in &answers {
            let policy = r
                .headers()
                .get("ratelimit-policy")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(policy.contains("\"minute\";q=5;w=60"), "{api}: {policy:?}");
            assert!(r.headers().get("ratelimit").is_some(), "{api}");
        }
        for r in limited {
            assert!(r.headers().get("retry-after").is_some(), "{api}");
        }
    }
    // Another person is not held back by them.
    let other = token("other@example.com", &[]);
    let r = http
        .get(format!("{base}/baskets"))
        .bearer_auth(&other)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    drop(serving);
}
