use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on, token, Backend, Cred, TestApp};

fn subscribe_body(template: &str, email: &str) -> serde_json::Value {
    json!({
        "template_id": template,
        "user_email": email,
        "broker_client_id": "ZB1234",
        "auto_link_broker": true,
        "lot_multiplier": 2
    })
}

#[tokio::test]
async fn an_admin_creates_a_key_whose_secret_is_shown_once_and_stored_only_as_argon2id() {
    let app = spawn_app().await;
    let (cred, key_id) = app.partner("ZEBU", &[]).await;
    let Cred::Partner { key, secret } = &cred else {
        panic!("partner cred")
    };
    assert!(key.starts_with("pk_zebu_live_"), "{key}");
    assert!(secret.starts_with("sk_zebu_live_"), "{secret}");
    let issued = app.events("ApiKeyIssued").await;
    assert_eq!(issued.len(), 1);
    let stored = serde_json::to_string(&issued[0].data).expect("json");
    assert!(
        !stored.contains(secret.as_str()),
        "plaintext secret in an event"
    );
    assert!(
        stored.contains("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    // Every later response about the key leaves the secret out.
    let updated = app
        .put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &app.admin(),
            json!({"rate_limits": {"requests_per_minute": 500, "requests_per_day": 50000}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert!(updated.body.get("api_secret").is_none());
    assert!(!updated.text.contains(secret.as_str()));
    assert_eq!(updated.body["rate_limits"]["requests_per_minute"], 500);
}

#[tokio::test]
async fn a_partner_subscribes_a_customer_with_the_broker_linked_and_earns_thirty_percent() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let (zebu, _) = app.partner("ZEBU", &[]).await;
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            subscribe_body(&template, "Ravi@Example.com"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["revenue_share"]["partner_commission"], 29970);
    assert_eq!(r.body["revenue_share"]["platform_fee"], 69930);
    assert_eq!(r.body["revenue_share"]["currency"], "INR");
    assert_eq!(r.body["broker_allocation"]["client_id"], "ZB1234");
    assert_eq!(r.body["broker_allocation"]["broker_id"], "zebu");
    // The same person logging in directly is the same user.
    let direct = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &Cred::Jwt(token("ravi@example.com", &[])),
            json!({}),
        )
        .await;
    direct.assert_problem(409, "already_subscribed");
    assert_eq!(direct.body["subscription_id"], r.body["subscription_id"]);
    assert!(
        r.header("ratelimit-policy").is_some(),
        "partner responses carry RateLimit-Policy"
    );
    assert!(r.header("ratelimit").is_some());
}

#[tokio::test]
async fn partners_manage_only_their_own_subscriptions_and_need_the_permission() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let (zebu, _) = app
        .partner("ZEBU", &["marketplace:subscribe", "subscriptions:manage"])
        .await;
    let (angel, _) = app
        .partner("ANGEL", &["marketplace:subscribe", "subscriptions:manage"])
        .await;
    let (reader, _) = app.partner("READER", &["marketplace:read"]).await;
    let s = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            subscribe_body(&template, "ravi@example.com"),
        )
        .await;
    let id = s.body["subscription_id"].as_str().expect("id").to_string();

    let r = app
        .put(
            &format!("/partner/subscriptions/{id}/pause"),
            &angel,
            json!({}),
        )
        .await;
    r.assert_problem(404, "not_found");
    let r = app
        .delete(&format!("/partner/subscriptions/{id}"), &angel)
        .await;
    r.assert_problem(404, "not_found");
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &reader,
            subscribe_body(&template, "x@example.com"),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    let r = app
        .put(
            &format!("/partner/subscriptions/{id}/pause"),
            &zebu,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "PAUSED");
    let r = app
        .put(
            &format!("/partner/subscriptions/{id}/resume"),
            &zebu,
            json!({}),
        )
        .await;
    assert_eq!(r.body["status"], "ACTIVE", "{}", r.text);
    let r = app
        .delete(&format!("/partner/subscriptions/{id}"), &zebu)
        .await;
    assert_eq!(r.body["status"], "CANCELLED", "{}", r.text);
}

#[tokio::test]
async fn suspended_revoked_and_rotated_credentials_are_refused_at_once() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let (zebu, key_id) = app.partner("ZEBU", &[]).await;
    let body = subscribe_body(&template, "a@example.com");
    let ok = app
        .post("/partner/marketplace/subscribe", &zebu, body.clone())
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);

    let Cred::Partner { key, secret } = zebu.clone() else {
        panic!()
    };
    let wrong = Cred::Partner {
        key: key.clone(),
        secret: format!("{secret}x"),
    };
    let r = app
        .post("/partner/marketplace/subscribe", &wrong, body.clone())
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    let r = app
        .put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &app.admin(),
            json!({"status": "SUSPENDED"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            subscribe_body(&template, "b@example.com"),
        )
        .await;
    assert_eq!(r.status, 401, "suspended key: {}", r.text);
    let r = app
        .put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &app.admin(),
            json!({"status": "ACTIVE"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let rotated = app
        .post(
            &format!("/admin/partner-api-keys/{key_id}/rotate"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_secret = rotated.body["api_secret"]
        .as_str()
        .expect("new secret")
        .to_string();
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            subscribe_body(&template, "c@example.com"),
        )
        .await;
    assert_eq!(r.status, 401, "old secret after rotation: {}", r.text);
    let fresh = Cred::Partner {
        key: key.clone(),
        secret: new_secret,
    };
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &fresh,
            subscribe_body(&template, "c@example.com"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let revoked = app
        .delete(&format!("/admin/partner-api-keys/{key_id}"), &app.admin())
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(revoked.body["status"], "REVOKED");
    assert!(revoked.body.get("api_secret").is_none());
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &fresh,
            subscribe_body(&template, "d@example.com"),
        )
        .await;
    assert_eq!(r.status, 401, "revoked key: {}", r.text);
}

#[tokio::test]
async fn an_idempotent_retry_of_a_partner_subscribe_replays_the_response_and_charges_once() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let (zebu, _) = app.partner("ZEBU", &[]).await;
    let body = subscribe_body(&template, "ravi@example.com");
    let send = |b: serde_json::Value, key: &'static str| {
        let zebu = zebu.clone();
        let app = &app;
        async move {
            app.send(
                reqwest::Method::POST,
                "/partner/marketplace/subscribe",
                &zebu,
                Some(b),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };
    let first = send(body.clone(), "order-42").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let retry = send(body.clone(), "order-42").await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body);
    assert_eq!(
        retry.header("x-consistency-token"),
        first.header("x-consistency-token")
    );
    assert_eq!(
        app.events("SubscriptionCharged").await.len(),
        1,
        "charged once"
    );

    let other = send(subscribe_body(&template, "someone@example.com"), "order-42").await;
    other.assert_problem(422, "idempotency_key_reused");
}

async fn rate_limit_admits_exactly_the_quota(app: TestApp) {
    let (zebu, key_id) = app.partner("ZEBU", &[]).await;
    let r = app
        .put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &app.admin(),
            json!({"rate_limits": {"requests_per_minute": 100, "requests_per_day": 10000}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Freeze time so no token refills while the 500 requests run.
    app.clock.freeze();
    let results = futures::future::join_all((0..500).map(|_| {
        // A partner without subscriptions:manage: each admitted request is a
        // cheap 403, each refused one a 429.
        app.put(
            "/partner/subscriptions/00000000-0000-0000-0000-000000000000/pause",
            &zebu,
            json!({}),
        )
    }))
    .await;
    let limited: Vec<_> = results.iter().filter(|r| r.status == 429).collect();
    let admitted = results.len() - limited.len();
    assert_eq!(admitted, 100, "exactly the per-minute quota is admitted");
    for r in &limited {
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert!(r.header("retry-after").is_some());
        assert!(r.header("ratelimit").is_some());
    }
}

#[tokio::test]
async fn five_hundred_concurrent_requests_against_a_100_per_minute_key_admit_exactly_100() {
    rate_limit_admits_exactly_the_quota(spawn_app().await).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn five_hundred_concurrent_requests_admit_exactly_100_with_the_postgres_limiter() {
    rate_limit_admits_exactly_the_quota(spawn_app_on(Backend::Postgres).await).await;
}

#[tokio::test]
async fn a_flood_of_wrong_secrets_is_throttled_but_does_not_lock_out_the_verified_partner() {
    let app = spawn_app().await;
    let (zebu, _) = app.partner("ZEBU", &["marketplace:read"]).await;
    let probe = "/partner/subscriptions/00000000-0000-0000-0000-000000000000/pause";
    // Verified once (403: the key lacks subscriptions:manage, but is valid).
    let r = app.put(probe, &zebu, json!({})).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let Cred::Partner { key, secret } = zebu.clone() else {
        panic!()
    };
    let wrong = Cred::Partner {
        key,
        secret: format!("{secret}-guess"),
    };
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(app.put(probe, &wrong, json!({})).await.status);
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = app.put(probe, &zebu, json!({})).await;
    assert_eq!(
        r.status, 403,
        "the right secret still authenticates: {}",
        r.text
    );
}
