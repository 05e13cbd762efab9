use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_on, token, Backend, Cred, TestApp};

fn user(email: &str) -> Cred {
    Cred::Jwt(token(email, &[]))
}

#[tokio::test]
async fn a_direct_subscription_to_a_paid_template_charges_the_first_month_to_the_platform() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let r = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &user("asha@example.com"),
            json!({"broker_allocations": [
                {"broker_id": "zerodha", "client_id": "AB1234", "lot_multiplier": 2.5, "priority": 1}
            ]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "ACTIVE");
    assert_eq!(r.body["template_id"], template.as_str());
    assert_eq!(r.body["first_charge"]["amount"], 99900);
    assert_eq!(r.body["first_charge"]["platform_share"], 99900);
    assert_eq!(r.body["first_charge"]["partner_share"], 0);
    assert!(r.body["next_billing_date"].is_string());
    let charges = app.events("SubscriptionCharged").await;
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].data["platform_share"], 99900);
}

#[tokio::test]
async fn a_second_live_subscription_to_the_same_template_is_409_naming_the_first() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let path = format!("/marketplace/subscribe/{template}");
    let first = app.post(&path, &user("asha@example.com"), json!({})).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let second = app.post(&path, &user("asha@example.com"), json!({})).await;
    second.assert_problem(409, "already_subscribed");
    assert_eq!(
        second.body["subscription_id"],
        first.body["subscription_id"]
    );

    // After cancelling, subscribing again is allowed.
    let id = first.body["subscription_id"].as_str().expect("id");
    let cancelled = app
        .delete(
            &format!("/user/subscriptions/{id}"),
            &user("asha@example.com"),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "CANCELLED");
    let again = app.post(&path, &user("asha@example.com"), json!({})).await;
    assert_eq!(again.status, 201, "{}", again.text);
}

async fn hundred_concurrent_subscribes_make_exactly_one_subscription(app: TestApp) {
    let template = app.paid_template().await;
    let path = format!("/marketplace/subscribe/{template}");
    let who = user("rush@example.com");
    let results =
        futures::future::join_all((0..100).map(|_| app.post(&path, &who, json!({})))).await;
    let winners: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(winners.len(), 1, "exactly one 201");
    let winner = &winners[0].body["subscription_id"];
    for r in results.iter().filter(|r| r.status != 201) {
        r.assert_problem(409, "already_subscribed");
        assert_eq!(&r.body["subscription_id"], winner);
    }
    assert_eq!(app.events("SubscribedToTemplate").await.len(), 1);
    assert_eq!(app.events("SubscriptionCharged").await.len(), 1);
}

#[tokio::test]
async fn one_hundred_concurrent_subscribes_for_one_user_and_template_give_one_201_on_sqlite() {
    hundred_concurrent_subscribes_make_exactly_one_subscription(spawn_app().await).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn one_hundred_concurrent_subscribes_for_one_user_and_template_give_one_201_on_postgres() {
    hundred_concurrent_subscribes_make_exactly_one_subscription(
        spawn_app_on(Backend::Postgres).await,
    )
    .await;
}

#[tokio::test]
async fn pause_resume_and_cancel_follow_the_status_rules_and_record_history() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let asha = user("asha@example.com");
    let s = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &asha,
            json!({}),
        )
        .await;
    let id = s.body["subscription_id"].as_str().expect("id").to_string();
    let base = format!("/user/subscriptions/{id}");

    let r = app.put(&format!("{base}/resume"), &asha, json!({})).await;
    r.assert_problem(409, "invalid_transition");
    let r = app
        .put(
            &format!("{base}/pause"),
            &asha,
            json!({"reason": "holiday"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "PAUSED");
    let r = app.put(&format!("{base}/pause"), &asha, json!({})).await;
    r.assert_problem(409, "invalid_transition");
    let r = app.put(&format!("{base}/resume"), &asha, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ACTIVE");
    let r = app.delete(&base, &asha).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "CANCELLED");
    let history = r.body["status_history"].as_array().expect("history");
    assert_eq!(history.len(), 4, "{history:?}");
    assert_eq!(history[1]["reason"], "holiday");
    let r = app.put(&format!("{base}/resume"), &asha, json!({})).await;
    r.assert_problem(409, "invalid_transition");
}

#[tokio::test]
async fn another_users_subscription_answers_404() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let s = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &user("asha@example.com"),
            json!({}),
        )
        .await;
    let id = s.body["subscription_id"].as_str().expect("id");
    let mallory = user("mallory@example.com");
    for r in [
        app.put(
            &format!("/user/subscriptions/{id}/pause"),
            &mallory,
            json!({}),
        )
        .await,
        app.delete(&format!("/user/subscriptions/{id}"), &mallory)
            .await,
        app.put(
            &format!("/user/subscriptions/{id}/allocations"),
            &mallory,
            json!({"broker_allocations": []}),
        )
        .await,
    ] {
        r.assert_problem(404, "not_found");
    }
}

#[tokio::test]
async fn allocations_are_replaced_and_validated_field_by_field() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let asha = user("asha@example.com");
    let s = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &asha,
            json!({}),
        )
        .await;
    let id = s.body["subscription_id"].as_str().expect("id");
    let path = format!("/user/subscriptions/{id}/allocations");
    let ok = app
        .put(
            &path,
            &asha,
            json!({"broker_allocations": [
                {"broker_id": "zerodha", "client_id": "AB1", "lot_multiplier": "1.5", "priority": 1},
                {"broker_id": "upstox", "client_id": "XY9", "lot_multiplier": 2, "priority": 2, "max_lots_per_order": 10}
            ]}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        ok.body["broker_allocations"].as_array().map(Vec::len),
        Some(2)
    );

    let bad = app
        .put(
            &path,
            &asha,
            json!({"broker_allocations": [
                {"broker_id": "zerodha", "client_id": "AB1", "lot_multiplier": 0, "priority": 1},
                {"broker_id": "upstox", "client_id": "XY9", "lot_multiplier": "1.234", "priority": 2},
                {"broker_id": "dhan", "client_id": "D1", "lot_multiplier": 1, "priority": 3},
                {"broker_id": "fyers", "client_id": "F1", "lot_multiplier": 1, "priority": 3}
            ]}),
        )
        .await;
    bad.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"broker_allocations[0].lot_multiplier"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"broker_allocations[1].lot_multiplier"),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("broker_allocations[3]") && f.ends_with("priority")),
        "{fields:?}"
    );
}

#[tokio::test]
async fn a_reservation_abandoned_by_a_crashed_request_stops_blocking_after_a_minute() {
    use basketry_store::{Actor, ExpectedRevision, NewEvent, NewMetadata, StreamId};
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let email = "crash@example.com";
    let user_id =
        basketry_domain::UserId::from_email(&basketry_domain::Email::parse(email).expect("email"));
    // What a request that died between its two appends leaves behind.
    let ghost = uuid::Uuid::now_v7();
    app.store
        .append(
            &StreamId::parse(format!("user-{user_id}")).expect("stream"),
            ExpectedRevision::NoStream,
            vec![NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "TemplateSubscriptionReserved".into(),
                schema_version: 1,
                data: json!({
                    "user_id": user_id, "template_id": template,
                    "subscription_id": ghost, "at": chrono::Utc::now()
                }),
                metadata: NewMetadata {
                    actor: Actor {
                        kind: "user".into(),
                        id: user_id.to_string(),
                    },
                    correlation_id: uuid::Uuid::now_v7(),
                    causation_id: None,
                    idempotency_key: None,
                },
            }],
        )
        .await
        .expect("append reservation");
    let path = format!("/marketplace/subscribe/{template}");
    let blocked = app.post(&path, &user(email), json!({})).await;
    blocked.assert_problem(409, "already_subscribed");
    assert_eq!(blocked.body["subscription_id"], ghost.to_string());

    app.clock.advance(chrono::TimeDelta::seconds(61));
    let r = app.post(&path, &user(email), json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.body["subscription_id"], ghost.to_string());
}
