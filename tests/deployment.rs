//! How a deployment is configured and what it refuses, through the same
//! start-up code as `basketry serve` (`Application::build` with
//! `Settings`): JWT verification with an identity provider's JWKS, the
//! secret file's and the SQLite files' modes, the compose file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basketry::config::{Settings, Toggle};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::Stores;

const ISSUER: &str = "https://idp.basketry.test/realms/main";
const AUDIENCES: &str = "basketry-web, basketry-admin";

// ---------------------------------------------------------------- helpers

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A fresh ES256 key: its signing key and its public JWK named `kid`.
fn es256_key(kid: &str) -> (EncodingKey, Value) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": b64url(&point[1..33]), "y": b64url(&point[33..65]),
    });
    (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
}

/// Claims of a good token from the identity provider, with `extra` merged
/// in (a null removes the claim).
fn claims(extra: Value) -> Value {
    let mut claims = json!({
        "email": "person@example.com",
        "email_verified": true,
        "iss": ISSUER,
        "aud": "basketry-web",
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn es256(kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(support::SECRET.as_bytes()),
    )
    .unwrap()
}

/// A tiny HTTP server on 127.0.0.1 answering every request with a JWKS
/// the test can change.
struct JwksServer {
    port: u16,
    body: Arc<Mutex<String>>,
}

impl JwksServer {
    async fn start(jwks: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(Mutex::new(jwks.to_string()));
        let served = Arc::clone(&body);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = vec![0u8; 4096];
                let _ = socket.read(&mut request).await;
                let body = served.lock().unwrap().clone();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        Self { port, body }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/.well-known/jwks.json", self.port)
    }

    fn set(&self, jwks: Value) {
        *self.body.lock().unwrap() = jwks.to_string();
    }
}

/// Settings of a JWKS deployment on `stores`.
fn jwks_settings(stores: &Stores, jwks_url: &str) -> Settings {
    let mut settings = stores.settings();
    settings.jwks_url = Some(jwks_url.to_string());
    settings.jwt_issuer = Some(ISSUER.to_string());
    settings.jwt_audience = Some(AUDIENCES.to_string());
    settings
}

/// Builds the program as `basketry serve` does and runs it; its base URL.
async fn serve(settings: &Settings) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = basketry::startup::Application::build(settings, listener)
        .await
        .expect("build the application");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    base
}

/// Error text of a start-up that must fail.
async fn refused_start(settings: &Settings) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    match basketry::startup::Application::build(settings, listener).await {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    }
}

/// The status of an authenticated read with `token`.
async fn status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/marketplace/templates"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn a_jwks_deployment_checks_issuer_audience_and_email_verified_and_refuses_hs256() {
    let (key, jwk) = es256_key("k1");
    let idp = JwksServer::start(json!({ "keys": [jwk] })).await;
    let stores = Stores::new().await;
    let base = serve(&jwks_settings(&stores, &idp.url())).await;
    let token = |extra: Value| es256("k1", &key, &claims(extra));

    assert_eq!(status(&base, &token(json!({}))).await, 200, "a good token");
    assert_eq!(
        status(
            &base,
            &token(json!({"aud": ["other-app", "basketry-admin"]}))
        )
        .await,
        200,
        "our audience in an array"
    );
    for (what, extra) in [
        (
            "wrong issuer",
            json!({"iss": "https://idp.basketry.test/realms/other"}),
        ),
        ("no issuer", json!({"iss": null})),
        ("wrong audience", json!({"aud": "other-app"})),
        (
            "wrong audiences",
            json!({"aud": ["other-app", "third-app"]}),
        ),
        ("no audience", json!({"aud": null})),
        ("e-mail not verified", json!({"email_verified": false})),
    ] {
        assert_eq!(status(&base, &token(extra)).await, 401, "{what}");
    }
    // HS256 is off in a JWKS deployment, even with the right claims and
    // the configured secret.
    assert_eq!(
        status(&base, &hs256(&claims(json!({})))).await,
        401,
        "hs256"
    );

    // … unless enabled explicitly.
    let stores = Stores::new().await;
    let mut settings = jwks_settings(&stores, &idp.url());
    settings.jwt_hs256 = Some(Toggle::Enabled);
    let base = serve(&settings).await;
    assert_eq!(status(&base, &hs256(&claims(json!({})))).await, 200);
    assert_eq!(
        status(&base, &hs256(&claims(json!({"aud": "other-app"})))).await,
        401,
        "hs256 tokens are held to the audience too"
    );
}

#[tokio::test]
async fn a_jwks_deployment_without_issuer_or_audience_does_not_start() {
    let (_, jwk) = es256_key("k1");
    let idp = JwksServer::start(json!({ "keys": [jwk] })).await;
    let stores = Stores::new().await;
    let mut settings = jwks_settings(&stores, &idp.url());
    settings.jwt_issuer = None;
    let error = refused_start(&settings).await;
    assert!(error.contains("BASKETRY_JWT_ISSUER"), "{error}");
    let mut settings = jwks_settings(&stores, &idp.url());
    settings.jwt_audience = Some(" , ".into());
    let error = refused_start(&settings).await;
    assert!(error.contains("BASKETRY_JWT_AUDIENCE"), "{error}");
}

#[tokio::test]
async fn a_key_withdrawn_from_the_jwks_stops_verifying_after_a_refresh() {
    let (old_key, old_jwk) = es256_key("old");
    let (new_key, new_jwk) = es256_key("new");
    let idp = JwksServer::start(json!({ "keys": [old_jwk, new_jwk.clone()] })).await;
    let stores = Stores::new().await;
    let mut settings = jwks_settings(&stores, &idp.url());
    settings.jwks_refresh = Duration::from_millis(500);
    let base = serve(&settings).await;
    let old = es256("old", &old_key, &claims(json!({})));
    let new = es256("new", &new_key, &claims(json!({})));
    assert_eq!(status(&base, &old).await, 200);
    assert_eq!(status(&base, &new).await, 200);

    idp.set(json!({ "keys": [new_jwk] }));
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(&base, &old).await == 200 {
        assert!(
            Instant::now() < deadline,
            "the withdrawn key still verifies after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status(&base, &old).await, 401);
    assert_eq!(status(&base, &new).await, 200);
}

#[tokio::test]
async fn an_oversized_jwks_is_refused_without_being_downloaded_whole() {
    // Streams up to 64 MiB of JSON whitespace with no length announced,
    // counting what the client took before it hung up.
    const BODY: usize = 64 * 1024 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        connection: close\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                continue;
            }
            let chunk = vec![b' '; 64 * 1024];
            while counter.load(Ordering::SeqCst) < BODY {
                if socket.write_all(&chunk).await.is_err() {
                    break;
                }
                counter.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        }
    });
    let stores = Stores::new().await;
    let settings = jwks_settings(&stores, &format!("http://127.0.0.1:{port}/jwks.json"));
    let error = tokio::time::timeout(Duration::from_secs(30), refused_start(&settings))
        .await
        .expect("start-up gives up within 30 s");
    // What the client read, plus what the kernel buffers held.
    let sent = sent.load(Ordering::SeqCst);
    eprintln!("{sent} bytes of a {BODY}-byte JWKS sent before the client hung up");
    assert!(
        sent < 16 * 1024 * 1024,
        "{sent} bytes of the JWKS were sent before the client stopped"
    );
    assert!(error.contains("larger than"), "{error}");
}

#[test]
fn basketry_token_refuses_to_mint_where_hs256_tokens_would_not_verify() {
    let stores = Stores::sqlite();
    let out = stores
        .basketry()
        .env("BASKETRY_JWKS_URL", "https://idp.basketry.test/jwks.json")
        .args(["token", "--email", "admin@example.com", "--group", "Admins"])
        .output()
        .expect("run basketry token");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a token was printed: {stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("would not"), "{stderr}");
    // Without a JWKS, or with HS256 enabled, it mints.
    assert!(!stores
        .run(&["token", "--email", "admin@example.com"])
        .trim()
        .is_empty());
}

#[cfg(unix)]
#[tokio::test]
async fn a_jwt_secret_file_others_can_read_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let stores = Stores::sqlite();
    let path = stores.data_dir().join(basketry::config::JWT_SECRET_FILE);
    std::fs::write(&path, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut settings = stores.settings();
    settings.jwt_secret = None;
    let error = refused_start(&settings).await;
    assert!(
        error.contains("jwt-secret") && error.contains("chmod 600"),
        "{error}"
    );
    // Owner-only, it starts.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let base = serve(&settings).await;
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_fresh_data_directory_holds_no_file_group_or_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let stores = Stores::sqlite();
    let mut settings = stores.settings();
    settings.data_dir = stores.data_dir().join("data");
    settings.jwt_secret = None;
    let base = serve(&settings).await;
    // A write, so every database has been written through its WAL.
    let secret = std::fs::read_to_string(settings.data_dir.join("jwt-secret")).unwrap();
    let admin = basketry_command_api::auth::mint_hs256(
        secret.trim().as_bytes(),
        "admin@example.com",
        &["Admins".to_string()],
        Duration::from_secs(600),
        chrono::Utc::now(),
    )
    .unwrap();
    let created = reqwest::Client::new()
        .post(format!("{base}/baskets"))
        .bearer_auth(&admin)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({
            "name": "Private",
            "description": "A basket written to every database",
            "category": "INCOME",
            "strategies": [{
                "name": "Short straddle",
                "underlying": "NIFTY",
                "product": "MIS",
                "entry_time": "09:20",
                "exit_time": "15:15",
                "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
                "stop_loss_pct": 25,
                "legs": [
                    {"action": "SELL", "option_type": "CE", "strike": "ATM",
                     "expiry": "WEEKLY", "lots": 1}
                ]
            }]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&settings.data_dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_file() {
            files.push((
                entry.file_name().to_string_lossy().into_owned(),
                meta.permissions().mode() & 0o777,
            ));
        }
    }
    files.sort();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["events.db", "read.db", "jwt-secret", "events.db-wal"] {
        assert!(names.contains(&expected), "{expected} missing: {files:?}");
    }
    for (name, mode) in &files {
        assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}: {files:?}");
    }
    let dir_mode = std::fs::metadata(&settings.data_dir)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "data directory mode {dir_mode:o}");
}

#[test]
fn the_compose_file_keeps_kurrentdb_off_the_host() {
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .unwrap();
    // The `kurrentdb` service's block: from its key to the next service.
    let start = compose.find("\n  kurrentdb:\n").expect("kurrentdb service");
    let block: Vec<&str> = compose[start + 1..]
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("    ") || l.starts_with("#"))
        .collect();
    assert!(block.iter().any(|l| l.contains("KURRENTDB_INSECURE")));
    assert!(
        !block
            .iter()
            .any(|l| l.trim_start().starts_with("ports:") || l.trim_start().starts_with("ports :")),
        "the insecure KurrentDB node publishes a host port:\n{}",
        block.join("\n")
    );
}
