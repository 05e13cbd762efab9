use chrono::TimeDelta;
use serde_json::json;

use crate::helpers::{spawn_app, token, Cred};

#[tokio::test]
async fn a_billing_run_charges_each_due_period_once_skips_paused_and_charges_on_late_resume() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let subscribe = |email: &'static str| {
        let app = &app;
        let template = template.clone();
        async move {
            let r = app
                .post(
                    &format!("/marketplace/subscribe/{template}"),
                    &Cred::Jwt(token(email, &[])),
                    json!({}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["subscription_id"].as_str().expect("id").to_string()
        }
    };
    let _active = subscribe("active@example.com").await;
    let paused = subscribe("paused@example.com").await;
    let pauser = Cred::Jwt(token("paused@example.com", &[]));
    let r = app
        .put(
            &format!("/user/subscriptions/{paused}/pause"),
            &pauser,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.events("SubscriptionCharged").await.len(),
        2,
        "first months"
    );

    let run = app
        .post("/admin/billing/run", &app.admin(), json!({}))
        .await;
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.body["charges"], 0, "nothing is due yet");

    app.clock.advance(TimeDelta::days(32));
    let run = app
        .post("/admin/billing/run", &app.admin(), json!({}))
        .await;
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(
        run.body["charges"], 1,
        "only the active subscription: {}",
        run.text
    );
    assert_eq!(run.body["amount_charged"], 99900);
    let again = app
        .post("/admin/billing/run", &app.admin(), json!({}))
        .await;
    assert_eq!(
        again.body["charges"], 0,
        "a repeated run charges nothing new"
    );
    assert_eq!(app.events("SubscriptionCharged").await.len(), 3);

    let resumed = app
        .put(
            &format!("/user/subscriptions/{paused}/resume"),
            &pauser,
            json!({}),
        )
        .await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    assert_eq!(
        app.events("SubscriptionCharged").await.len(),
        4,
        "resuming after the paid period charges a new one"
    );

    let future = app
        .post(
            "/admin/billing/run",
            &app.admin(),
            json!({"as_of": "2999-01-01T00:00:00Z"}),
        )
        .await;
    future.assert_problem(422, "validation_failed");
    let by_user = app
        .post(
            "/admin/billing/run",
            &Cred::Jwt(token("x@example.com", &[])),
            json!({}),
        )
        .await;
    by_user.assert_problem(403, "forbidden");
}
