//! The security contract (docs/reference/api.md#authentication, docs/reference/domain.md#access) over HTTP: who may change
//! what (another's resource is a 404, an admin route a 403), how partner
//! credentials die (suspension, revocation, rotation and its grace period),
//! which JWTs are refused, that the plaintext partner secret is nowhere but
//! in the one response that issues it, and that wrong secrets cannot buy
//! argon2 work.
//!
//! Every case runs on SQLite and on PostgreSQL (event store, read models,
//! idempotency records, rate limiter); without `BASKETRY_TEST_POSTGRES_URL`
//! the PostgreSQL cases are reported as ignored.

use basketry_command_api::auth::{PartnerAuthConfig, PartnerAuthenticator};
use chrono::TimeDelta;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    capture_logs, captured_logs, spawn_app_observed, spawn_with, token, Backend, Cred, Resp,
    TestApp, JWT_SECRET,
};

const RSA_KEY_PEM: &str = include_str!("../../../http/src/auth/testdata/rsa-test-key.pem");
const RSA_JWKS: &str = include_str!("../../../http/src/auth/testdata/rsa-test-jwks.json");
const ISSUER: &str = "https://idp.basketry.test";
const AUDIENCE: &str = "basketry-api";

/// Runs each `async fn(TestApp, PartnerAuthenticator)` on SQLite and on
/// PostgreSQL (reported as ignored unless `BASKETRY_TEST_POSTGRES_URL` was
/// set when the tests were built).
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (app, auth) =
                        crate::helpers::spawn_app_observed(crate::helpers::Backend::Sqlite).await;
                    super::$case(app, auth).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
                async fn $case() {
                    let (app, auth) =
                        crate::helpers::spawn_app_observed(crate::helpers::Backend::Postgres).await;
                    super::$case(app, auth).await;
                }
            )*
        }
    };
}

on_both_backends!(
    another_partners_subscription_is_a_404_indistinguishable_from_none_and_stays_untouched,
    people_without_the_admin_group_and_partners_get_403_on_every_admin_route,
    another_users_basket_and_subscription_are_404_and_stay_untouched,
    suspended_and_revoked_keys_are_refused_on_the_next_request_without_hashing,
    a_rotated_secret_works_through_its_grace_period_and_not_a_second_after,
    the_plaintext_secret_is_in_no_event_no_table_no_later_response_and_no_log_line,
    a_flood_of_wrong_secrets_runs_argon2_at_most_max_failures_times,
);

/// Every 4xx/5xx is problem+json with the five members docs/reference/api.md#errors names.
pub fn assert_problem_shape(r: &Resp) {
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{} {}",
        r.status,
        r.text
    );
    for member in ["type", "title", "detail", "code"] {
        assert!(r.body[member].is_string(), "{member} missing: {}", r.text);
    }
    assert_eq!(r.body["status"], r.status, "{}", r.text);
}

fn subscribe_body(template: &str, email: &str) -> Value {
    json!({
        "template_id": template,
        "user_email": email,
        "broker_client_id": "ZB1234",
        "auto_link_broker": true,
        "lot_multiplier": 2
    })
}

fn partner_parts(cred: &Cred) -> (String, String) {
    match cred {
        Cred::Partner { key, secret } => (key.clone(), secret.clone()),
        _ => panic!("not a partner credential"),
    }
}

/// A partner's own subscription (through `cred`), its id.
async fn partner_subscription(app: &TestApp, cred: &Cred, template: &str, email: &str) -> String {
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            cred,
            subscribe_body(template, email),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["subscription_id"]
        .as_str()
        .expect("subscription_id")
        .to_string()
}

async fn event_count(app: &TestApp) -> usize {
    app.all_events().await.len()
}

async fn another_partners_subscription_is_a_404_indistinguishable_from_none_and_stays_untouched(
    app: TestApp,
    _auth: PartnerAuthenticator,
) {
    let template = app.paid_template().await;
    let manage = ["marketplace:subscribe", "subscriptions:manage"];
    let (zebu, _) = app.partner("ZEBU", &manage).await;
    let (angel, _) = app.partner("ANGEL", &manage).await;
    let id = partner_subscription(&app, &zebu, &template, "ravi@example.com").await;
    let nobody = uuid::Uuid::now_v7().to_string();
    let before = event_count(&app).await;

    // Paused by its partner, so that a resume by another would change it.
    let r = app
        .put(
            &format!("/partner/subscriptions/{id}/pause"),
            &zebu,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = before + (event_count(&app).await - before);

    for (method, suffix) in [
        (Method::PUT, "/pause"),
        (Method::PUT, "/resume"),
        (Method::DELETE, ""),
    ] {
        let theirs = app
            .send(
                method.clone(),
                &format!("/partner/subscriptions/{id}{suffix}"),
                &angel,
                Some(json!({"reason": "taking over"})),
                &[],
            )
            .await;
        theirs.assert_problem(404, "not_found");
        assert_problem_shape(&theirs);
        let none = app
            .send(
                method,
                &format!("/partner/subscriptions/{nobody}{suffix}"),
                &angel,
                Some(json!({"reason": "taking over"})),
                &[],
            )
            .await;
        // Nothing tells a real id of another partner from an unknown one.
        assert_eq!((theirs.status, &theirs.body), (none.status, &none.body));
    }
    // A partner is not a person: the user routes are closed to it.
    for (method, path) in [
        (Method::PUT, format!("/user/subscriptions/{id}/resume")),
        (Method::DELETE, format!("/user/subscriptions/{id}")),
        (Method::PUT, format!("/user/subscriptions/{id}/allocations")),
    ] {
        let r = app
            .send(
                method,
                &path,
                &angel,
                Some(json!({"broker_allocations": []})),
                &[],
            )
            .await;
        r.assert_problem(403, "forbidden");
    }
    // Another partner's attempts left no trace, and the owner still can.
    assert_eq!(event_count(&app).await, before, "a refused command wrote");
    let r = app
        .put(
            &format!("/partner/subscriptions/{id}/resume"),
            &zebu,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ACTIVE");
}

async fn people_without_the_admin_group_and_partners_get_403_on_every_admin_route(
    app: TestApp,
    _auth: PartnerAuthenticator,
) {
    let template = app.paid_template().await;
    let (zebu, key_id) = app
        .partner(
            "ZEBU",
            &[
                "marketplace:subscribe",
                "subscriptions:manage",
                "ledger:read",
            ],
        )
        .await;
    let before = event_count(&app).await;
    let config = json!({"visibility": "PRIVATE"});
    let new_partner = json!({
        "partner_id": "EVIL", "partner_name": "Evil", "partner_type": "OTHER",
        "broker_id": "evil",
        "revenue_share": {"platform_percentage": 0, "partner_percentage": 100}
    });
    let routes: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            format!("/admin/marketplace/templates/{template}"),
            json!({"pricing": {"type": "FREE"}}),
        ),
        (
            Method::PUT,
            format!("/admin/marketplace/templates/{template}"),
            config.clone(),
        ),
        (
            Method::DELETE,
            format!("/admin/marketplace/templates/{template}"),
            json!({}),
        ),
        (Method::POST, "/admin/partner-api-keys".into(), new_partner),
        (
            Method::PUT,
            format!("/admin/partner-api-keys/{key_id}"),
            json!({"revenue_share": {"platform_percentage": 0, "partner_percentage": 100}}),
        ),
        (
            Method::POST,
            format!("/admin/partner-api-keys/{key_id}/rotate"),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/admin/partner-api-keys/{key_id}"),
            json!({}),
        ),
        (Method::POST, "/admin/billing/run".into(), json!({})),
    ];
    let callers = [
        ("user", Cred::Jwt(token("asha@example.com", &[]))),
        (
            "auditor",
            Cred::Jwt(token("audit@example.com", &["Auditors"])),
        ),
        (
            "executor",
            Cred::Jwt(token("exec@example.com", &["Executors"])),
        ),
        // Group names are exact: no case folding into admin.
        (
            "admins-lowercase",
            Cred::Jwt(token("x@example.com", &["admins"])),
        ),
        ("partner", zebu.clone()),
    ];
    for (who, cred) in &callers {
        for (method, path, body) in &routes {
            let r = app
                .send(method.clone(), path, cred, Some(body.clone()), &[])
                .await;
            assert_eq!(r.status, 403, "{who} {method} {path}: {}", r.text);
            assert_problem_shape(&r);
        }
    }
    assert_eq!(event_count(&app).await, before, "a refused command wrote");
    // The template is untouched: still subscribable at its price.
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            subscribe_body(&template, "ravi@example.com"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["revenue_share"]["partner_commission"], 29970);
}

async fn another_users_basket_and_subscription_are_404_and_stay_untouched(
    app: TestApp,
    _auth: PartnerAuthenticator,
) {
    let asha = Cred::Jwt(token("asha@example.com", &[]));
    let ravi = Cred::Jwt(token("ravi@example.com", &[]));
    let basket = app
        .post("/baskets", &asha, crate::helpers::basket_body())
        .await;
    assert_eq!(basket.status, 201, "{}", basket.text);
    let basket_id = basket.body["basket_id"].as_str().expect("id").to_string();
    let strategy_id = basket.body["strategies"][0]["strategy_id"]
        .as_str()
        .expect("strategy_id")
        .to_string();
    let template = app.paid_template().await;
    let sub = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &asha,
            json!({}),
        )
        .await;
    assert_eq!(sub.status, 201, "{}", sub.text);
    let sub_id = sub.body["subscription_id"]
        .as_str()
        .expect("id")
        .to_string();
    let before = event_count(&app).await;

    let strategy = crate::helpers::strategy_body();
    let attempts: Vec<(Method, String, Value)> = vec![
        (
            Method::PUT,
            format!("/baskets/{basket_id}"),
            json!({"name": "Mine now"}),
        ),
        (
            Method::POST,
            format!("/baskets/{basket_id}/strategies"),
            strategy.clone(),
        ),
        (
            Method::PUT,
            format!("/baskets/{basket_id}/strategies/{strategy_id}"),
            strategy,
        ),
        (
            Method::DELETE,
            format!("/baskets/{basket_id}/strategies/{strategy_id}"),
            json!({}),
        ),
        (
            Method::PUT,
            format!("/user/subscriptions/{sub_id}/pause"),
            json!({}),
        ),
        (
            Method::PUT,
            format!("/user/subscriptions/{sub_id}/resume"),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/user/subscriptions/{sub_id}"),
            json!({}),
        ),
        (
            Method::PUT,
            format!("/user/subscriptions/{sub_id}/allocations"),
            json!({"broker_allocations": [{"broker_id": "zebu", "client_id": "STEAL"}]}),
        ),
    ];
    for (method, path, body) in &attempts {
        let r = app
            .send(method.clone(), path, &ravi, Some(body.clone()), &[])
            .await;
        r.assert_problem(404, "not_found");
        assert_problem_shape(&r);
    }
    assert_eq!(event_count(&app).await, before, "a refused command wrote");
    // The owner's view is unchanged: the subscription is still hers.
    let r = app
        .put(
            &format!("/user/subscriptions/{sub_id}/pause"),
            &asha,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .put(
            &format!("/baskets/{basket_id}"),
            &asha,
            json!({"name": "Still hers"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn suspended_and_revoked_keys_are_refused_on_the_next_request_without_hashing(
    app: TestApp,
    auth: PartnerAuthenticator,
) {
    let template = app.paid_template().await;
    let (zebu, key_id) = app.partner("ZEBU", &[]).await;
    let (angel, _) = app.partner("ANGEL", &[]).await;
    // Both verified and cached.
    partner_subscription(&app, &zebu, &template, "a@example.com").await;
    partner_subscription(&app, &angel, &template, "b@example.com").await;
    let hashed = auth.argon2_runs();

    let app = &app;
    let key_path = format!("/admin/partner-api-keys/{key_id}");
    let admin = app.admin();
    let set_status = |status: &'static str| {
        app.put(
            &key_path,
            &admin,
            json!({"status": status, "reason": "security review"}),
        )
    };
    let r = set_status("SUSPENDED").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "SUSPENDED");
    let refused = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            subscribe_body(&template, "c@example.com"),
        )
        .await;
    refused.assert_problem(401, "api_key_suspended");
    // Another partner's cached credential is not affected.
    partner_subscription(app, &angel, &template, "d@example.com").await;

    let r = set_status("ACTIVE").await;
    assert_eq!(r.status, 200, "{}", r.text);
    partner_subscription(app, &zebu, &template, "e@example.com").await;

    let r = app
        .delete(&format!("/admin/partner-api-keys/{key_id}"), &app.admin())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let refused = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            subscribe_body(&template, "f@example.com"),
        )
        .await;
    refused.assert_problem(401, "api_key_revoked");
    // Revocation is final: no status change, no rotation brings it back.
    let r = set_status("ACTIVE").await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_problem_shape(&r);
    let r = app
        .post(
            &format!("/admin/partner-api-keys/{key_id}/rotate"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(!r.text.contains("sk_"), "{}", r.text);
    let refused = app
        .put(
            "/partner/subscriptions/00000000-0000-0000-0000-000000000000/pause",
            &zebu,
            json!({}),
        )
        .await;
    refused.assert_problem(401, "api_key_revoked");
    // Refusing a suspended or revoked key costs no argon2: only the
    // re-activation's first request (a cache miss) verified again.
    assert_eq!(auth.argon2_runs(), hashed + 1);
}

async fn a_rotated_secret_works_through_its_grace_period_and_not_a_second_after(
    app: TestApp,
    _auth: PartnerAuthenticator,
) {
    let (zebu, key_id) = app.partner("ZEBU", &["marketplace:read"]).await;
    let (key, old_secret) = partner_parts(&zebu);
    // A cheap authenticated probe: 403 (no subscriptions:manage) when the
    // credential is good, 401 when it is not.
    let probe = "/partner/subscriptions/00000000-0000-0000-0000-000000000000/pause";
    let app = &app;
    let status_of = |cred: Cred| async move { app.put(probe, &cred, json!({})).await };
    assert_eq!(status_of(zebu.clone()).await.status, 403);

    // Out-of-range grace periods are refused and change nothing.
    for bad in [json!(-1), json!(169), json!(24 * 365)] {
        let r = app
            .post(
                &format!("/admin/partner-api-keys/{key_id}/rotate"),
                &app.admin(),
                json!({"grace_period_hours": bad}),
            )
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(
            r.body["errors"][0]["field"], "grace_period_hours",
            "{}",
            r.text
        );
    }
    assert_eq!(status_of(zebu.clone()).await.status, 403);

    let rotated = app
        .post(
            &format!("/admin/partner-api-keys/{key_id}/rotate"),
            &app.admin(),
            json!({"grace_period_hours": 2}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.body["grace_period_hours"], 2);
    let new_secret = rotated.body["api_secret"]
        .as_str()
        .expect("new secret")
        .to_string();
    assert_ne!(new_secret, old_secret);
    let old = zebu.clone();
    let new = Cred::Partner {
        key: key.clone(),
        secret: new_secret.clone(),
    };
    assert_eq!(status_of(old.clone()).await.status, 403, "old, in grace");
    assert_eq!(status_of(new.clone()).await.status, 403, "new");

    app.clock
        .advance(TimeDelta::hours(2) - TimeDelta::seconds(5));
    assert_eq!(
        status_of(old.clone()).await.status,
        403,
        "old, 5 s before the grace ends"
    );
    app.clock.advance(TimeDelta::seconds(6));
    let r = status_of(old.clone()).await;
    r.assert_problem(401, "invalid_secret");
    assert_eq!(status_of(new.clone()).await.status, 403, "new, after grace");

    // A rotation without grace retires the current secret at once, and no
    // earlier one comes back.
    let again = app
        .post(
            &format!("/admin/partner-api-keys/{key_id}/rotate"),
            &app.admin(),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["grace_period_hours"], 0);
    let newest = Cred::Partner {
        key,
        secret: again.body["api_secret"]
            .as_str()
            .expect("secret")
            .to_string(),
    };
    status_of(new).await.assert_problem(401, "invalid_secret");
    status_of(old).await.assert_problem(401, "invalid_secret");
    assert_eq!(status_of(newest).await.status, 403);
}

async fn the_plaintext_secret_is_in_no_event_no_table_no_later_response_and_no_log_line(
    app: TestApp,
    _auth: PartnerAuthenticator,
) {
    capture_logs();
    let template = app.paid_template().await;
    let body = json!({
        "partner_id": "ZEBU",
        "partner_name": "Zebu Broking",
        "partner_type": "BROKER",
        "broker_id": "zebu",
        "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
        "permissions": ["marketplace:read", "marketplace:subscribe", "subscriptions:manage"]
    });
    // With an Idempotency-Key, the path that keeps responses for replay.
    let created = app
        .send(
            Method::POST,
            "/admin/partner-api-keys",
            &app.admin(),
            Some(body.clone()),
            &[("Idempotency-Key", "create-zebu-1")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key_id = created.body["api_key_id"].as_str().expect("id").to_string();
    let key = created.body["api_key"].as_str().expect("key").to_string();
    let first = created.body["api_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let zebu = Cred::Partner {
        key: key.clone(),
        secret: first.clone(),
    };
    let id = partner_subscription(&app, &zebu, &template, "ravi@example.com").await;
    let wrong = Cred::Partner {
        key: key.clone(),
        secret: format!("{first}-wrong-guess"),
    };
    let r = app
        .put(
            &format!("/partner/subscriptions/{id}/pause"),
            &wrong,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);

    let rotated = app
        .send(
            Method::POST,
            &format!("/admin/partner-api-keys/{key_id}/rotate"),
            &app.admin(),
            Some(json!({"grace_period_hours": 1})),
            &[("Idempotency-Key", "rotate-zebu-1")],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let second = rotated.body["api_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let zebu2 = Cred::Partner {
        key: key.clone(),
        secret: second.clone(),
    };
    let r = app
        .put(
            &format!("/partner/subscriptions/{id}/pause"),
            &zebu2,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .put(
            &format!("/partner/subscriptions/{id}/resume"),
            &zebu,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "old secret in grace: {}", r.text);

    // Every later response about the key, replays included.
    let mut later = Vec::new();
    later.push(
        app.send(
            Method::POST,
            "/admin/partner-api-keys",
            &app.admin(),
            Some(body),
            &[("Idempotency-Key", "create-zebu-1")],
        )
        .await,
    );
    later.push(
        app.send(
            Method::POST,
            &format!("/admin/partner-api-keys/{key_id}/rotate"),
            &app.admin(),
            Some(json!({"grace_period_hours": 1})),
            &[("Idempotency-Key", "rotate-zebu-1")],
        )
        .await,
    );
    later.push(
        app.put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &app.admin(),
            json!({"partner_name": "Zebu Share and Wealth"}),
        )
        .await,
    );
    later.push(
        app.put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &app.admin(),
            json!({"status": "SUSPENDED"}),
        )
        .await,
    );
    later.push(
        app.delete(&format!("/admin/partner-api-keys/{key_id}"), &app.admin())
            .await,
    );
    for r in &later {
        assert!(r.status < 500, "{}", r.text);
        for secret in [&first, &second] {
            assert!(
                !r.text.contains(secret.as_str()),
                "a later response ({}) repeats a secret: {}",
                r.status,
                r.text
            );
            assert!(
                !r.headers
                    .values()
                    .any(|v| v.to_str().is_ok_and(|v| v.contains(secret.as_str()))),
                "a header repeats a secret"
            );
        }
    }

    // No stored event, data or metadata, carries a secret.
    let events = app.all_events().await;
    assert!(events.len() >= 5);
    for e in &events {
        let stored = format!(
            "{} {} {}",
            e.event_type,
            serde_json::to_string(&e.data).expect("data"),
            serde_json::to_string(&e.metadata).expect("metadata")
        );
        for secret in [&first, &second] {
            assert!(!stored.contains(secret.as_str()), "secret in {stored}");
        }
    }
    // No row of any table the app writes.
    let rows = app.dump_databases().await;
    assert!(
        rows.iter().any(|r| r.contains("ApiKeyIssued")),
        "the dump did not see the events table"
    );
    for secret in [&first, &second] {
        let hex_secret = hex::encode(secret.as_bytes());
        for row in &rows {
            assert!(
                !row.contains(secret.as_str()) && !row.contains(&hex_secret),
                "a stored row holds a secret: {row}"
            );
        }
    }
    // No log line, at any level.
    let logs = captured_logs();
    assert!(!logs.is_empty(), "the log capture saw nothing");
    for secret in [&first, &second, &format!("{first}-wrong-guess")] {
        assert!(
            !logs.contains(secret.as_str()),
            "a log line holds a secret: {}",
            logs.lines()
                .find(|l| l.contains(secret.as_str()))
                .unwrap_or_default()
        );
    }
}

async fn a_flood_of_wrong_secrets_runs_argon2_at_most_max_failures_times(
    app: TestApp,
    auth: PartnerAuthenticator,
) {
    let max_failures = u64::from(PartnerAuthConfig::default().max_failures);
    let (zebu, _) = app.partner("ZEBU", &["marketplace:read"]).await;
    let (key, secret) = partner_parts(&zebu);
    let probe = "/partner/subscriptions/00000000-0000-0000-0000-000000000000/pause";
    // The holder verifies once; the credential is cached. The clock stands
    // still so the cache entry (10 s) outlives the flood however slow the
    // machine: past its TTL the holder would wait out the failure window too.
    app.clock.freeze();
    assert_eq!(app.put(probe, &zebu, json!({})).await.status, 403);
    let before = auth.argon2_runs();
    assert!(before >= 1);

    // 100 wrong secrets at once, then 50 more one by one.
    let concurrent = futures::future::join_all((0..100).map(|i| {
        let wrong = Cred::Partner {
            key: key.clone(),
            secret: format!("sk_zebu_live_guess{i:04}"),
        };
        let app = &app;
        async move { app.put(probe, &wrong, json!({})).await }
    }))
    .await;
    let mut responses = concurrent;
    for i in 0..50 {
        let wrong = Cred::Partner {
            key: key.clone(),
            secret: format!("sk_zebu_live_later{i:04}"),
        };
        responses.push(app.put(probe, &wrong, json!({})).await);
    }
    let refused = responses.iter().filter(|r| r.status == 401).count() as u64;
    let throttled: Vec<&Resp> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(refused, max_failures, "wrong secrets that were hashed");
    assert_eq!(throttled.len() as u64, 150 - max_failures);
    for r in &throttled {
        r.assert_problem(429, "too_many_failed_attempts");
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=60).contains(&retry), "{retry}");
    }
    assert_eq!(
        auth.argon2_runs() - before,
        max_failures,
        "argon2 ran for throttled attempts"
    );

    // Keys that do not exist, or secrets too long to be one, cost nothing.
    let ghost_keys = [
        "pk_zebu_live_0000000000000000000000000".to_string(),
        "pk_nobody_live_0000000000000000000000".to_string(),
        format!("pk_{}", "z".repeat(4_000)),
    ];
    for ghost in &ghost_keys {
        let r = app
            .put(
                probe,
                &Cred::Partner {
                    key: ghost.clone(),
                    secret: secret.clone(),
                },
                json!({}),
            )
            .await;
        r.assert_problem(401, "unknown_key");
    }
    let (angel, _) = app.partner("ANGEL", &["marketplace:read"]).await;
    let (angel_key, _) = partner_parts(&angel);
    let r = app
        .put(
            probe,
            &Cred::Partner {
                key: angel_key,
                secret: format!("sk_angel_live_{}", "x".repeat(5_000)),
            },
            json!({}),
        )
        .await;
    r.assert_problem(401, "invalid_secret");
    assert_eq!(auth.argon2_runs() - before, max_failures);

    // The holder of the right, cached secret is not locked out.
    let r = app.put(probe, &zebu, json!({})).await;
    r.assert_problem(403, "missing_permission");
    assert_eq!(auth.argon2_runs() - before, max_failures);
}

// ----------------------------------------------------------------- JWTs

/// Base64url without padding, for hand-made tokens.
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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

fn unsigned(alg: &str, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

/// An HS256 token with any header, signed with the test secret.
fn hs256_by_hand(header: &Value, claims: &Value) -> String {
    use hmac::{Hmac, Mac};
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(JWT_SECRET).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

fn rsa() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_KEY_PEM.as_bytes()).expect("rsa key")
}

fn claims(extra: Value) -> Value {
    let exp = (chrono::Utc::now() + TimeDelta::hours(1)).timestamp();
    let mut claims = json!({
        "email": "admin@basketry.dev", "groups": ["Admins"], "exp": exp,
        "iss": ISSUER, "aud": AUDIENCE,
    });
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            claims.as_object_mut().expect("object").remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

/// Sends `jwt` to a route that needs a person and asserts the 401 and code.
async fn refused(app: &TestApp, what: &str, jwt: String, code: &str) {
    let r = app
        .post("/baskets", &Cred::Jwt(jwt), crate::helpers::basket_body())
        .await;
    assert_eq!(r.status, 401, "{what}: {}", r.text);
    assert_problem_shape(&r);
    assert_eq!(r.body["code"], code, "{what}: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_garbage_jwts_are_401_problems_with_their_codes() {
    let (app, _) = spawn_app_observed(Backend::Sqlite).await;
    let hs = EncodingKey::from_secret(JWT_SECRET);
    let admin = claims(json!({"iss": null, "aud": null}));
    // Control: the same claims, properly signed, are an admin.
    let ok = app
        .post(
            "/baskets",
            &Cred::Jwt(sign(Algorithm::HS256, None, &admin, &hs)),
            crate::helpers::basket_body(),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);

    for alg in ["none", "None", "NONE", "nOnE"] {
        refused(&app, alg, unsigned(alg, &admin), "invalid_token").await;
    }
    // An HS256 header with the signature left off.
    let good = sign(Algorithm::HS256, None, &admin, &hs);
    let stripped = good.rsplit_once('.').expect("three parts").0.to_string() + ".";
    refused(&app, "empty signature", stripped, "invalid_token_signature").await;
    let other = EncodingKey::from_secret(b"another-secret-that-is-at-least-32-bytes-long");
    refused(
        &app,
        "wrong secret",
        sign(Algorithm::HS256, None, &admin, &other),
        "invalid_token_signature",
    )
    .await;
    // Claims swapped under a valid signature.
    let user = sign(
        Algorithm::HS256,
        None,
        &claims(json!({"groups": [], "iss": null, "aud": null})),
        &hs,
    );
    let (head, rest) = user.split_once('.').expect("parts");
    let sig = rest.split_once('.').expect("parts").1;
    let swapped = format!("{head}.{}.{sig}", b64(admin.to_string().as_bytes()));
    refused(&app, "payload swapped", swapped, "invalid_token_signature").await;
    refused(
        &app,
        "rs256 without a jwks",
        sign(Algorithm::RS256, Some("rsa-test-1"), &admin, &rsa()),
        "invalid_token",
    )
    .await;
    refused(
        &app,
        "hs512",
        sign(Algorithm::HS512, None, &admin, &hs),
        "invalid_token",
    )
    .await;
    let expired = claims(json!({
        "iss": null, "aud": null,
        "exp": (chrono::Utc::now() - TimeDelta::minutes(5)).timestamp()
    }));
    refused(
        &app,
        "expired",
        sign(Algorithm::HS256, None, &expired, &hs),
        "token_expired",
    )
    .await;
    for (what, extra) in [
        ("no exp", json!({"exp": null, "iss": null, "aud": null})),
        (
            "exp as text",
            json!({"exp": "tomorrow", "iss": null, "aud": null}),
        ),
        (
            "not before in an hour",
            json!({"nbf": (chrono::Utc::now() + TimeDelta::hours(1)).timestamp(), "iss": null, "aud": null}),
        ),
        ("no email", json!({"email": null, "iss": null, "aud": null})),
        (
            "email not an address",
            json!({"email": "admin", "iss": null, "aud": null}),
        ),
        (
            "unverified email",
            json!({"email_verified": false, "iss": null, "aud": null}),
        ),
        (
            "groups as text",
            json!({"groups": "Admins", "iss": null, "aud": null}),
        ),
        (
            "groups of numbers",
            json!({"groups": [1], "iss": null, "aud": null}),
        ),
    ] {
        refused(
            &app,
            what,
            sign(Algorithm::HS256, None, &claims(extra), &hs),
            "invalid_token",
        )
        .await;
    }
    refused(
        &app,
        "crit header",
        hs256_by_hand(&json!({"alg": "HS256", "crit": ["exp"]}), &admin),
        "invalid_token",
    )
    .await;
    for garbage in [
        "x".to_string(),
        "a.b".to_string(),
        "a.b.c.d".to_string(),
        "....".to_string(),
        "%%%.%%%.%%%".to_string(),
        format!(
            "{}.{}.{}",
            "e".repeat(8_000),
            "e".repeat(8_000),
            "e".repeat(100)
        ),
        b64(b"{\"alg\":").to_string() + ".e30.",
        b64(b"[]") + ".e30.",
    ] {
        refused(
            &app,
            &garbage[..garbage.len().min(20)],
            garbage.clone(),
            "malformed_credentials",
        )
        .await;
    }
    // Authorization headers that are not one `Bearer <token>`.
    for header in [
        format!("Basic {}", b64(b"admin:admin")),
        "Bearer".to_string(),
        format!("Bearer {good} {good}"),
        format!("Token {good}"),
    ] {
        let r = app
            .client
            .post(format!("{}/baskets", app.base))
            .header("authorization", header.clone())
            .json(&crate::helpers::basket_body())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "{header:.30}");
    }
    let r = app
        .client
        .post(format!("{}/baskets", app.base))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"))
        .json(&crate::helpers::basket_body())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401, "two Authorization headers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_verifier_checks_issuer_and_audience_and_refuses_hs256_and_unknown_keys() {
    // A deployment configured for an identity provider: its JWKS (a file),
    // issuer and audience, and so no HS256.
    let app = spawn_with(crate::helpers::server(Backend::Sqlite).settings(|s| {
        let jwks = s.data_dir.join("jwks.json");
        std::fs::write(&jwks, RSA_JWKS).expect("write the JWKS");
        s.jwks_url = Some(jwks.display().to_string());
        s.jwt_issuer = Some(ISSUER.into());
        s.jwt_audience = Some(AUDIENCE.into());
    }))
    .await;
    let good = claims(json!({}));
    let ok = app
        .post(
            "/baskets",
            &Cred::Jwt(sign(Algorithm::RS256, Some("rsa-test-1"), &good, &rsa())),
            crate::helpers::basket_body(),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let rs = |c: &Value| sign(Algorithm::RS256, Some("rsa-test-1"), c, &rsa());

    for (what, extra) in [
        ("wrong issuer", json!({"iss": "https://evil.example.com"})),
        ("no issuer", json!({"iss": null})),
        (
            "issuer with a trailing slash",
            json!({"iss": format!("{ISSUER}/")}),
        ),
        ("wrong audience", json!({"aud": "someone-else"})),
        ("audience list without ours", json!({"aud": ["a", "b"]})),
        ("no audience", json!({"aud": null})),
    ] {
        refused(&app, what, rs(&claims(extra)), "invalid_token").await;
    }
    // HS256 is not configured here: neither the test secret nor the public
    // key material used as an HMAC secret (key confusion) is accepted.
    refused(
        &app,
        "hs256 with the test secret",
        sign(
            Algorithm::HS256,
            None,
            &good,
            &EncodingKey::from_secret(JWT_SECRET),
        ),
        "invalid_token",
    )
    .await;
    refused(
        &app,
        "hs256 keyed with the jwks",
        sign(
            Algorithm::HS256,
            Some("rsa-test-1"),
            &good,
            &EncodingKey::from_secret(RSA_JWKS.as_bytes()),
        ),
        "invalid_token",
    )
    .await;
    refused(&app, "alg none", unsigned("none", &good), "invalid_token").await;
    refused(
        &app,
        "unknown kid",
        sign(Algorithm::RS256, Some("rsa-test-2"), &good, &rsa()),
        "unknown_key",
    )
    .await;
    // The right kid but another algorithm (ES256 header on an RSA key).
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-test-1".into());
    let token = jsonwebtoken::encode(&header, &good, &rsa()).expect("sign");
    let (_, rest) = token.split_once('.').expect("parts");
    let es_header = b64(br#"{"alg":"ES256","kid":"rsa-test-1","typ":"JWT"}"#);
    refused(
        &app,
        "es256 header on rsa key",
        format!("{es_header}.{rest}"),
        "invalid_token",
    )
    .await;
    let expired = claims(json!({"exp": (chrono::Utc::now() - TimeDelta::minutes(5)).timestamp()}));
    refused(&app, "expired rs256", rs(&expired), "token_expired").await;
}
