//! Issue 13, findings 3, 7 and 8 (a, b, d, e): what a 409 may reveal, the
//! fenced reservation, fee caps, e-mail identities, the share a partner
//! charge uses and additional partner keys.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use basketry_store::{AppendError, ExpectedRevision, StreamId};
use basketry_test_support::stores::{Intercepted, StoreHooks};
use serde_json::json;
use tokio::sync::Notify;

use crate::helpers::{
    server, spawn_app, spawn_app_on, spawn_with, token, Backend, Cred, TestApp, JWT_SECRET,
};

fn user(email: &str) -> Cred {
    Cred::Jwt(token(email, &[]))
}

fn partner_subscribe_body(template: &str, email: &str) -> serde_json::Value {
    json!({
        "template_id": template,
        "user_email": email,
        "broker_client_id": "ZB1234",
        "auto_link_broker": true,
    })
}

// --------------------------------------------------------- finding 3

/// The members of a 409 that could name or describe another's subscription.
fn assert_reveals_nothing(r: &crate::helpers::Resp, ids: &[&str]) {
    r.assert_problem(409, "already_subscribed");
    assert!(r.body.get("subscription_id").is_none(), "{}", r.text);
    for id in ids {
        assert!(!r.text.contains(id), "{id} leaked: {}", r.text);
    }
}

#[tokio::test]
async fn a_partner_probing_another_partners_customer_learns_no_subscription_id() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let (zebu, _) = app.partner("ZEBU", &[]).await;
    let (angel, angel_key) = app.partner("ANGEL", &[]).await;
    let first = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            partner_subscribe_body(&template, "ravi@example.com"),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.body["subscription_id"].as_str().expect("id");

    let probe = app
        .post(
            "/partner/marketplace/subscribe",
            &angel,
            partner_subscribe_body(&template, "ravi@example.com"),
        )
        .await;
    assert_reveals_nothing(&probe, &[id, "ZEBU", "zebu"]);
    assert!(!probe.text.contains(&angel_key));

    // The partner that made it is told which one it is.
    let own = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            partner_subscribe_body(&template, "ravi@example.com"),
        )
        .await;
    own.assert_problem(409, "already_subscribed");
    assert_eq!(own.body["subscription_id"], id);
}

#[tokio::test]
async fn a_partner_probing_a_persons_direct_subscription_learns_no_subscription_id() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let (zebu, _) = app.partner("ZEBU", &[]).await;
    let direct = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &user("meera@example.com"),
            json!({}),
        )
        .await;
    assert_eq!(direct.status, 201, "{}", direct.text);
    let id = direct.body["subscription_id"].as_str().expect("id");

    let probe = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            partner_subscribe_body(&template, "meera@example.com"),
        )
        .await;
    assert_reveals_nothing(&probe, &[id]);

    // The person is shown their own.
    let again = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &user("meera@example.com"),
            json!({}),
        )
        .await;
    again.assert_problem(409, "already_subscribed");
    assert_eq!(again.body["subscription_id"], id);
}

// --------------------------------------------------------- finding 7

/// Holds back the first append to a `subscription-` stream until the test
/// lets it go, and says when it is holding it.
struct StallFirstSubscription {
    armed: AtomicBool,
    stalled: Notify,
    go: Notify,
}

#[async_trait::async_trait]
impl StoreHooks for StallFirstSubscription {
    async fn before_append(
        &self,
        stream: &StreamId,
        _expected: ExpectedRevision,
    ) -> Result<(), AppendError> {
        if stream.as_str().starts_with("subscription-") && self.armed.swap(false, Ordering::SeqCst)
        {
            self.stalled.notify_one();
            self.go.notified().await;
        }
        Ok(())
    }
}

async fn a_request_stalled_past_the_release_of_its_reservation_loses(backend: Backend) {
    let gate = Arc::new(StallFirstSubscription {
        armed: AtomicBool::new(false),
        stalled: Notify::new(),
        go: Notify::new(),
    });
    let hook = Arc::clone(&gate);
    let app =
        spawn_with(server(backend).wrap_event_store(move |store| Intercepted::wrap(store, hook)))
            .await;
    let app = Arc::new(app);
    let template = app.paid_template().await;
    let path = format!("/marketplace/subscribe/{template}");
    let who = user("slow@example.com");

    gate.armed.store(true, Ordering::SeqCst);
    let stalled = {
        let (app, path, who) = (Arc::clone(&app), path.clone(), who.clone());
        tokio::spawn(async move { app.post(&path, &who, json!({})).await })
    };
    tokio::time::timeout(Duration::from_secs(15), gate.stalled.notified())
        .await
        .expect("the first request reaches its subscription append");

    // Past the abandonment window, a second request takes the template.
    app.clock.advance(chrono::TimeDelta::seconds(61));
    let second = app.post(&path, &who, json!({})).await;
    assert_eq!(second.status, 201, "{}", second.text);

    // The stalled request now appends: it must not make a second one.
    gate.go.notify_one();
    let first = tokio::time::timeout(Duration::from_secs(15), stalled)
        .await
        .expect("the stalled request answers")
        .expect("request task");
    first.assert_problem(409, "reservation_released");

    let subscribed = app.events("SubscribedToTemplate").await;
    assert_eq!(subscribed.len(), 1, "one live subscription");
    assert_eq!(
        subscribed[0].data["subscription_id"],
        second.body["subscription_id"]
    );
    assert_eq!(
        app.events("SubscriptionCharged").await.len(),
        1,
        "one charge"
    );
    // The person can still see and use the one that won.
    let again = app.post(&path, &who, json!({})).await;
    again.assert_problem(409, "already_subscribed");
    assert_eq!(
        again.body["subscription_id"],
        second.body["subscription_id"]
    );
}

#[tokio::test]
async fn a_request_stalled_past_the_release_of_its_reservation_loses_on_sqlite() {
    a_request_stalled_past_the_release_of_its_reservation_loses(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn a_request_stalled_past_the_release_of_its_reservation_loses_on_postgres() {
    a_request_stalled_past_the_release_of_its_reservation_loses(Backend::Postgres).await;
}

// --------------------------------------------------------- finding 8a

#[tokio::test]
async fn a_monthly_fee_above_the_cap_is_422_naming_the_field() {
    let app = spawn_app().await;
    let basket = app
        .post("/baskets", &app.admin(), crate::helpers::basket_body())
        .await;
    let id = basket.body["basket_id"].as_str().expect("basket_id");
    let r = app
        .post(
            &format!("/admin/marketplace/templates/{id}"),
            &app.admin(),
            json!({
                "visibility": "PUBLIC",
                "pricing": {"type": "PAID", "monthly_fee": i64::MAX, "currency": "INR"},
                "difficulty_level": "BEGINNER",
                "category": "INCOME"
            }),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(
        r.body["errors"][0]["field"], "pricing.monthly_fee",
        "{}",
        r.text
    );
}

// --------------------------------------------------------- finding 8b

#[tokio::test]
async fn a_partner_cannot_subscribe_a_kelvin_sign_look_alike_as_another_person() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let (zebu, _) = app.partner("ZEBU", &[]).await;
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            partner_subscribe_body(&template, "\u{212A}im@example.com"),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "user_email", "{}", r.text);
    assert!(app.events("SubscribedToTemplate").await.is_empty());
}

#[tokio::test]
async fn a_token_whose_email_has_a_non_ascii_local_part_is_refused() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    // Signed by the real secret, so only the identity rule can refuse it.
    let claims = json!({
        "sub": "x",
        "email": "\u{212A}im@example.com",
        "iat": chrono::Utc::now().timestamp(),
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET),
    )
    .expect("sign");
    let r = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &Cred::Jwt(forged),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text);
}

// --------------------------------------------------------- finding 8d

#[tokio::test]
async fn a_partner_subscription_charges_the_share_in_force_not_the_cached_one() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let (zebu, key_id) = app.partner("ZEBU", &[]).await;
    // A second instance of the same deployment, with its own credential cache.
    let store = Arc::clone(&app.store);
    let other = spawn_with(server(Backend::Sqlite).wrap_event_store(move |_| store)).await;
    // The credential is cached there at 30 %.
    let warm = other
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            partner_subscribe_body(&template, "first@example.com"),
        )
        .await;
    assert_eq!(warm.status, 201, "{}", warm.text);
    assert_eq!(warm.body["revenue_share"]["partner_commission"], 29970);

    // The share drops to 10 % through the first instance.
    let updated = app
        .put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &app.admin(),
            json!({"revenue_share": {"platform_percentage": 90, "partner_percentage": 10}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);

    let r = other
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            partner_subscribe_body(&template, "second@example.com"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.body["revenue_share"]["partner_commission"], 9990,
        "{}",
        r.text
    );
    let charges = app.events("SubscriptionCharged").await;
    let last = charges.last().expect("a charge");
    assert_eq!(last.data["partner_bps"], 1000);
    assert_eq!(last.data["partner_share"], 9990);
    let subscribed = app.events("SubscribedToTemplate").await;
    let last = subscribed.last().expect("a subscription");
    assert_eq!(
        last.data["revenue_share"]["partner_bps"], 1000,
        "{}",
        last.data
    );
}

// --------------------------------------------------------- finding 8e

async fn issue(app: &TestApp, partner_id: &str) -> crate::helpers::Resp {
    app.post(
        "/admin/partner-api-keys",
        &app.admin(),
        json!({
            "partner_id": partner_id,
            "partner_name": format!("{partner_id} Broking"),
            "partner_type": "BROKER",
            "broker_id": partner_id.to_lowercase(),
            "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
            "rate_limits": {"requests_per_minute": 3, "requests_per_day": 1000},
        }),
    )
    .await
}

fn cred_of(r: &crate::helpers::Resp) -> Cred {
    Cred::Partner {
        key: r.body["api_key"].as_str().expect("api_key").to_string(),
        secret: r.body["api_secret"]
            .as_str()
            .expect("api_secret")
            .to_string(),
    }
}

#[tokio::test]
async fn a_revoked_partner_gets_a_new_key_and_a_partner_may_hold_two() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let first = issue(&app, "ZEBU").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let first_id = first.body["api_key_id"].as_str().expect("id").to_string();

    // A second key beside the first, with its own id and secret.
    let second = issue(&app, "ZEBU").await;
    assert_eq!(second.status, 201, "{}", second.text);
    let second_id = second.body["api_key_id"].as_str().expect("id").to_string();
    assert_ne!(first_id, second_id);
    assert_ne!(first.body["api_key"], second.body["api_key"]);
    for (i, cred) in [cred_of(&first), cred_of(&second)].iter().enumerate() {
        let r = app
            .post(
                "/partner/marketplace/subscribe",
                cred,
                partner_subscribe_body(&template, &format!("k{i}@example.com")),
            )
            .await;
        assert_eq!(r.status, 201, "key {i}: {}", r.text);
    }

    // Both revoked: the partner is not locked out for ever.
    for id in [&first_id, &second_id] {
        let r = app
            .delete(&format!("/admin/partner-api-keys/{id}"), &app.admin())
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let third = issue(&app, "ZEBU").await;
    assert_eq!(third.status, 201, "{}", third.text);
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &cred_of(&third),
            partner_subscribe_body(&template, "new@example.com"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &cred_of(&first),
            partner_subscribe_body(&template, "old@example.com"),
        )
        .await;
    assert_eq!(r.status, 401, "a revoked key stays revoked: {}", r.text);
}

#[tokio::test]
async fn a_partners_rate_limit_counts_all_its_keys_together() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let first = issue(&app, "ZEBU").await;
    let second = issue(&app, "ZEBU").await;
    assert_eq!(second.status, 201, "{}", second.text);
    app.clock.freeze();
    for i in 0..3 {
        let r = app
            .post(
                "/partner/marketplace/subscribe",
                &cred_of(&first),
                partner_subscribe_body(&template, &format!("c{i}@example.com")),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &cred_of(&second),
            partner_subscribe_body(&template, "c9@example.com"),
        )
        .await;
    r.assert_problem(429, "rate_limited");
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn a_postgres_partner_may_hold_two_keys() {
    let app = spawn_app_on(Backend::Postgres).await;
    let first = issue(&app, "ZEBU").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let second = issue(&app, "ZEBU").await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_ne!(first.body["api_key_id"], second.body["api_key_id"]);
}
