//! The built binary as a user runs it: `basketry serve` in a temp directory,
//! tokens from `basketry token`, the main flow over HTTP, SIGTERM, restart.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn basketry(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_basketry"));
    c.current_dir(dir)
        .env_remove("BASKETRY_DATA_DIR")
        .env_remove("BASKETRY_EVENT_STORE")
        .env_remove("BASKETRY_READ_DB")
        .env_remove("BASKETRY_JWT_SECRET");
    c
}

fn token(dir: &Path, email: &str, group: Option<&str>) -> String {
    let mut c = basketry(dir);
    c.args(["token", "--email", email]);
    if let Some(g) = group {
        c.args(["--group", g]);
    }
    let out = c.output().expect("basketry token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        text.lines().count(),
        1,
        "token prints the token and nothing else"
    );
    text.trim().to_string()
}

/// Starts `basketry serve` with zero configuration and waits for /healthz.
async fn serve(dir: &Path, port: u16) -> Child {
    serve_roles(dir, port, &[]).await
}

/// Starts `basketry serve --role …` and waits for /healthz.
async fn serve_roles(dir: &Path, port: u16, roles: &[&str]) -> Child {
    let mut args = vec![
        "serve".to_string(),
        "--bind".into(),
        format!("127.0.0.1:{port}"),
    ];
    for r in roles {
        args.push("--role".into());
        args.push((*r).into());
    }
    let mut child = basketry(dir)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
            if r.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("basketry serve did not come up");
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
            return;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_with_no_configuration_survives_sigterm_and_a_restart_with_every_acknowledged_write()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve(dir.path(), port).await;
    let secret = std::fs::metadata(dir.path().join("data/jwt-secret")).expect("generated secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(secret.permissions().mode() & 0o777, 0o600);
    }
    let admin = token(dir.path(), "admin@basketry.dev", Some("Admins"));
    let http = reqwest::Client::new();
    let basket: Value = http
        .post(format!("{base}/baskets"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Durable", "category": "INCOME", "strategies": [{
            "name": "S", "underlying": "NIFTY", "product": "MIS", "entry_time": "09:20",
            "exit_time": "15:00", "trading_days": ["MON"],
            "legs": [{"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": 1}]}]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = basket["basket_id"].as_str().expect("id").to_string();
    let publish = http
        .post(format!("{base}/admin/marketplace/templates/{id}"))
        .bearer_auth(&admin)
        .json(&json!({"visibility": "PUBLIC", "pricing": {"type": "FREE", "monthly_fee": 0, "currency": "INR"},
                      "difficulty_level": "BEGINNER", "tags": [], "category": "INCOME"}))
        .send()
        .await
        .expect("publish");
    assert_eq!(publish.status(), 201);
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let user = token(dir.path(), &format!("user{i}@example.com"), None);
        let r = http
            .post(format!("{base}/marketplace/subscribe/{id}"))
            .bearer_auth(&user)
            .json(&json!({}))
            .send()
            .await
            .expect("subscribe");
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.expect("json");
        acknowledged.push((
            user,
            body["subscription_id"].as_str().expect("id").to_string(),
        ));
    }
    terminate(&mut server);

    let mut server = serve(dir.path(), port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for (user, id) in &acknowledged {
        loop {
            let r = http
                .get(format!("{base}/user/subscriptions/{id}"))
                .bearer_auth(user)
                .send()
                .await
                .expect("read");
            if r.status() == 200 {
                let body: Value = r.json().await.expect("json");
                assert_eq!(body["status"], "ACTIVE");
                break;
            }
            assert!(Instant::now() < deadline, "{id} not readable after restart");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let verify = basketry(dir.path())
        .args(["store", "verify"])
        .output()
        .expect("verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    terminate(&mut server);
}

/// Reads `path` on the query role until it answers 200 (or 30 s pass).
async fn read_eventually(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http.get(url).bearer_auth(token).send().await.expect("read");
        if r.status() == 200 {
            return r.json().await.expect("json");
        }
        assert!(Instant::now() < deadline, "{url} never became readable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn roles_apart_cooperate_and_a_standby_projector_takes_over_when_the_holder_dies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cp, qp, p1, p2) = (free_port(), free_port(), free_port(), free_port());
    let mut command = serve_roles(dir.path(), cp, &["command"]).await;
    let mut query = serve_roles(dir.path(), qp, &["query"]).await;
    let mut holder = serve_roles(dir.path(), p1, &["projector"]).await;
    let admin = token(dir.path(), "admin@basketry.dev", Some("Admins"));
    let http = reqwest::Client::new();
    let create = |name: &'static str| {
        let http = http.clone();
        let admin = admin.clone();
        async move {
            let r = http
                .post(format!("http://127.0.0.1:{cp}/baskets"))
                .bearer_auth(&admin)
                .json(&json!({"name": name, "category": "INCOME"}))
                .send()
                .await
                .expect("create");
            assert_eq!(r.status(), 201);
            let body: Value = r.json().await.expect("json");
            body["basket_id"].as_str().expect("id").to_string()
        }
    };
    // The command role does not serve queries, nor the query role commands.
    let r = http
        .get(format!("http://127.0.0.1:{cp}/baskets"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    let first = create("Written on the command role").await;
    let seen = read_eventually(
        &http,
        &format!("http://127.0.0.1:{qp}/baskets/{first}"),
        &admin,
    )
    .await;
    assert_eq!(seen["name"], "Written on the command role");

    // A standby projector; then the holder dies without releasing its lease.
    let mut standby = serve_roles(dir.path(), p2, &["projector"]).await;
    let _ = holder.kill();
    let _ = holder.wait();
    let second = create("Projected by the standby").await;
    let seen = read_eventually(
        &http,
        &format!("http://127.0.0.1:{qp}/baskets/{second}"),
        &admin,
    )
    .await;
    assert_eq!(seen["name"], "Projected by the standby");
    for child in [&mut command, &mut query, &mut standby] {
        terminate(child);
    }
}

#[test]
fn basketry_toml_sits_between_defaults_and_the_environment_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("basketry.toml"),
        "data_dir = \"from-file\"\nbind = \"127.0.0.1:9\"\n",
    )
    .expect("write config");
    let out = basketry(dir.path())
        .args(["store", "status"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path().join("from-file/events.db").exists(),
        "the file's data_dir is used"
    );

    let out = basketry(dir.path())
        .args(["store", "status"])
        .env("BASKETRY_DATA_DIR", dir.path().join("from-env"))
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(
        dir.path().join("from-env/events.db").exists(),
        "the environment wins"
    );

    let out = basketry(dir.path())
        .args(["--data-dir", "from-flag", "store", "status"])
        .env("BASKETRY_DATA_DIR", dir.path().join("from-env"))
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(dir.path().join("from-flag/events.db").exists(), "flags win");

    std::fs::write(dir.path().join("basketry.toml"), "data_dri = \"typo\"\n").expect("write");
    let out = basketry(dir.path())
        .args(["store", "status"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key \"data_dri\""));
}
