//! Failure modes every query shares: authentication, paging parameters,
//! rate limits and a broken database.

use serde_json::json;

use crate::helpers::{admin, user, Cred, TestApp};
use crate::on_every_backend;

on_every_backend!(
    unauthenticated_requests_are_401_problems,
    bad_paging_and_unknown_parameters_are_refused_with_problems,
    a_partners_quota_spans_both_apis_and_429_carries_retry_after,
    a_closed_read_database_is_a_503_and_a_broken_schema_a_500_without_internals,
);

async fn unauthenticated_requests_are_401_problems(app: TestApp) {
    for path in [
        "/marketplace/templates",
        "/baskets",
        "/partner/ledger",
        "/admin/partner-api-keys",
    ] {
        app.get(path, &Cred::None)
            .await
            .assert_problem(401, "authentication_required");
        app.get(path, &Cred::Jwt("not-a-jwt".into()))
            .await
            .assert_problem(401, "malformed_credentials");
    }
    let wrong = Cred::Partner {
        key: "pk_zebu_live_0000000000000000000000".into(),
        secret: "sk_zebu_live_0000000000000000000000".into(),
    };
    assert_eq!(app.get("/partner/subscriptions", &wrong).await.status, 401);
    app.get("/no/such/route", &user("u@example.com"))
        .await
        .assert_problem(404, "not_found");
}

async fn bad_paging_and_unknown_parameters_are_refused_with_problems(app: TestApp) {
    let u = user("u@example.com");
    for limit in ["0", "101", "-5", "many"] {
        let r = app
            .get(&format!("/marketplace/templates?limit={limit}"), &u)
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "limit");
    }
    for cursor in ["garbage", "eyJvIjoiYmFza2V0cyJ9", "%FF%FE"] {
        app.get(&format!("/baskets?cursor={cursor}"), &u)
            .await
            .assert_problem(400, "invalid_cursor");
    }
    app.get("/baskets?categroy=INCOME", &u)
        .await
        .assert_problem(400, "unknown_parameter");
    app.get("/user/subscriptions?status=ACTIVE&status=PAUSED", &u)
        .await
        .assert_problem(400, "repeated_parameter");
    // A cursor of one list is refused by another.
    for i in 0..2 {
        app.seed_basket(&crate::helpers::BasketSeed::basket(
            &app,
            "u@example.com",
            &format!("B{i}"),
        ))
        .await;
    }
    let page = app.get("/baskets?limit=1", &u).await;
    let cursor = page.next_cursor().expect("a second page");
    app.get(&format!("/user/subscriptions?cursor={cursor}"), &u)
        .await
        .assert_problem(400, "invalid_cursor");
}

async fn a_partners_quota_spans_both_apis_and_429_carries_retry_after(app: TestApp) {
    let (partner, _) = app
        .partner(
            "ZEBU",
            &["marketplace:read", "marketplace:subscribe", "ledger:read"],
            Some(json!({"requests_per_minute": 3, "requests_per_day": 100})),
        )
        .await;
    // One command (refused by the domain, but it still spends a request)…
    let command = app
        .post(
            "/partner/marketplace/subscribe",
            &partner,
            json!({
                "template_id": uuid::Uuid::now_v7().to_string(),
                "user_email": "u@example.com",
                "broker_client_id": "ZB1",
                "auto_link_broker": true,
                "lot_multiplier": 1
            }),
        )
        .await;
    assert!(command.header("ratelimit").is_some(), "{}", command.text);
    // …and two queries use the minute's three requests.
    let second = app.get("/marketplace/templates", &partner).await;
    assert_eq!(
        second.header("ratelimit-policy"),
        Some("\"minute\";q=3;w=60, \"day\";q=100;w=86400")
    );
    assert!(second.header("ratelimit").unwrap().contains("r=1"));
    app.get("/partner/ledger", &partner).await.ok();
    let refused = app.get("/marketplace/templates", &partner).await;
    refused.assert_problem(429, "rate_limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert!(refused.header("ratelimit").unwrap().contains("r=0"));
    // People are not rate limited.
    for _ in 0..5 {
        app.get("/marketplace/templates", &admin()).await.ok();
    }
}

async fn a_closed_read_database_is_a_503_and_a_broken_schema_a_500_without_internals(app: TestApp) {
    app.exec("DROP TABLE partner_key_usage", vec![]).await;
    let broken = app.get("/admin/partner-api-keys", &admin()).await;
    broken.assert_problem(500, "internal_error");
    assert!(
        !broken.text.contains("partner_key_usage"),
        "{}",
        broken.text
    );
    assert!(
        !broken.text.to_lowercase().contains("sql"),
        "{}",
        broken.text
    );

    app.db.close().await;
    app.read.close().await;
    let down = app
        .get("/marketplace/templates", &user("u@example.com"))
        .await;
    down.assert_problem(503, "service_unavailable");
    assert_eq!(down.header("retry-after"), Some("1"));
    assert!(!down.text.to_lowercase().contains("pool"), "{}", down.text);
}
