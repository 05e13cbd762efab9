use serde_json::json;

use crate::helpers::{spawn_app, token, Cred, JWT_SECRET};

#[tokio::test]
async fn requests_without_credentials_are_401_problems() {
    let app = spawn_app().await;
    let r = app.post("/baskets", &Cred::None, json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_tokens_are_401() {
    use base64_like::encode;
    let app = spawn_app().await;
    let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = encode(br#"{"email":"admin@basketry.dev","groups":["Admins"],"exp":4102444800}"#);
    let none = format!("{header}.{claims}.");
    let r = app.post("/baskets", &Cred::Jwt(none), json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);

    let good = token("admin@basketry.dev", &["Admins"]);
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_sig = encode(b"not the signature at all, just bytes");
    parts[2] = &forged_sig;
    let r = app
        .post("/baskets", &Cred::Jwt(parts.join(".")), json!({}))
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test]
async fn malformed_json_is_400_non_json_is_415_and_big_bodies_are_413() {
    let app = spawn_app().await;
    let user = token("asha@example.com", &[]);
    let send = |body: String, ct: &'static str| {
        app.client
            .post(format!("{}/baskets", app.base))
            .bearer_auth(&user)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = send("{\"name\": ".into(), "application/json")
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let r = send("name=x".into(), "application/x-www-form-urlencoded")
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024));
    let r = send(big, "application/json").await.expect("send");
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let r = send(
        "{\"name\": \"x\", \"surprise\": 1}".into(),
        "application/json",
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 400, "unknown fields are refused");
}

#[tokio::test]
async fn unknown_routes_and_non_uuid_ids_are_404_problems() {
    let app = spawn_app().await;
    let admin = app.admin();
    let r = app.post("/nope", &admin, json!({})).await;
    r.assert_problem(404, "not_found");
    let r = app
        .put(
            "/user/subscriptions/..%2F..%2Fetc%2Fpasswd/pause",
            &admin,
            json!({}),
        )
        .await;
    r.assert_problem(404, "not_found");
    let r = app
        .put("/baskets/1;DROP TABLE events", &admin, json!({"name": "x"}))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
}

/// Base64url without padding, for hand-made tokens.
mod base64_like {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

#[tokio::test]
async fn expired_and_malformed_tokens_are_401() {
    let app = spawn_app().await;
    let expired = basketry_command_api::auth::mint_hs256(
        JWT_SECRET,
        "asha@example.com",
        &[],
        std::time::Duration::from_secs(60),
        chrono::Utc::now() - chrono::TimeDelta::hours(2),
    )
    .expect("mint");
    let r = app.post("/baskets", &Cred::Jwt(expired), json!({})).await;
    assert_eq!(r.status, 401, "{}", r.text);
    for bad in ["", "not-a-jwt", "a.b.c", "pk_zebu_live_x"] {
        let r = app
            .post("/baskets", &Cred::Jwt(bad.into()), json!({}))
            .await;
        assert_eq!(r.status, 401, "{bad:?}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
}
