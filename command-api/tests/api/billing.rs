use chrono::TimeDelta;
use serde_json::json;

use basketry_test_support::stores::{Intercepted, StoreHooks};

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

/// Subscribes `n` people to `template`; their subscription ids.
async fn subscribe_many(app: &crate::helpers::TestApp, template: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = app
            .post(
                &format!("/marketplace/subscribe/{template}"),
                &Cred::Jwt(token(&format!("payer{i}@example.com"), &[])),
                json!({}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.body["subscription_id"].as_str().expect("id").to_string());
    }
    ids
}

/// Charges per subscription id.
async fn charges_by_subscription(
    app: &crate::helpers::TestApp,
) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for e in app.events("SubscriptionCharged").await {
        let id = e.data["subscription_id"].as_str().expect("id").to_string();
        *out.entry(id).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn one_subscription_that_cannot_be_charged_does_not_stop_the_others_and_is_named() {
    let app = spawn_app().await;
    let template = app.paid_template().await;
    let ids = subscribe_many(&app, &template, 3).await;
    // The middle subscription's stream gets an event no build of the
    // subscription aggregate can read: loading it fails.
    let stream = basketry_store::StreamId::parse(format!("subscription-{}", ids[1])).expect("id");
    app.store
        .append(
            &stream,
            basketry_store::ExpectedRevision::Any,
            vec![basketry_store::NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "SubscriptionAudited".into(),
                schema_version: 1,
                data: json!({}),
                metadata: basketry_store::NewMetadata {
                    actor: basketry_store::Actor {
                        kind: "system".into(),
                        id: "test".into(),
                    },
                    correlation_id: uuid::Uuid::now_v7(),
                    causation_id: None,
                    idempotency_key: None,
                },
            }],
        )
        .await
        .expect("append");

    app.clock.advance(TimeDelta::days(32));
    let run = app
        .post("/admin/billing/run", &app.admin(), json!({}))
        .await;
    assert_eq!(run.status, 200, "{}", run.text);
    assert_eq!(run.body["charges"], 2, "{}", run.text);
    assert_eq!(run.body["subscriptions_charged"], 2, "{}", run.text);
    assert_eq!(run.body["subscriptions_failed"], 1, "{}", run.text);
    assert_eq!(run.body["subscriptions_examined"], 3, "{}", run.text);
    let failures = run.body["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{}", run.text);
    assert_eq!(failures[0]["subscription_id"], ids[1].as_str());
    assert!(
        failures[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("SubscriptionAudited")),
        "{}",
        run.text
    );
    let charged = charges_by_subscription(&app).await;
    assert_eq!(charged.get(&ids[0]), Some(&2));
    assert_eq!(charged.get(&ids[1]), Some(&1), "only its first month");
    assert_eq!(charged.get(&ids[2]), Some(&2));
}

/// Hooks on the store of a test app: counting `read_all` calls and, while
/// `stall` is set, letting only `appends_left` more appends through: the
/// others wait for ever, as a run whose process stops would.
struct Gate {
    read_alls: std::sync::atomic::AtomicU64,
    stall: std::sync::atomic::AtomicBool,
    appends_left: std::sync::atomic::AtomicI64,
}

#[async_trait::async_trait]
impl StoreHooks for Gate {
    async fn before_append(
        &self,
        _stream: &basketry_store::StreamId,
        _expected: basketry_store::ExpectedRevision,
    ) -> Result<(), basketry_store::AppendError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.stall.load(SeqCst) && self.appends_left.fetch_sub(1, SeqCst) <= 0 {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    fn before_read_all(&self) {
        self.read_alls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_run_stopped_part_way_resumes_with_the_rest_and_never_reads_the_log() {
    use basketry_command_api::billing::{self, DueIndex, SqlDueIndex};
    use std::sync::atomic::Ordering::SeqCst;

    let app = spawn_app().await;
    let template = app.paid_template().await;
    let ids = subscribe_many(&app, &template, 6).await;
    app.clock.advance(TimeDelta::days(32));
    let gate = std::sync::Arc::new(Gate {
        read_alls: Default::default(),
        stall: std::sync::atomic::AtomicBool::new(true),
        appends_left: std::sync::atomic::AtomicI64::new(2),
    });
    let gated = Intercepted::wrap(app.store.clone(), std::sync::Arc::clone(&gate));
    let index = SqlDueIndex::new(app.read_db.clone());
    let meta = |now| basketry_command_api::command::CommandMeta {
        actor: basketry_domain::Actor::System,
        correlation_id: uuid::Uuid::now_v7(),
        idempotency_key: None,
        now,
    };
    let now = app.clock.now();

    // The first run charges two subscriptions, then its process "stops":
    // the run is dropped while the other appends hang.
    let stopped = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        billing::run(gated.as_ref(), &index, &meta(now), now),
    )
    .await;
    assert!(stopped.is_err(), "the run was to hang: {stopped:?}");
    let charged = charges_by_subscription(&app).await;
    assert_eq!(charged.values().filter(|n| **n == 2).count(), 2);

    // Once the index has seen those charges, the next run takes up exactly
    // the four left.
    let head = app.store.head().await.expect("head");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while index.position().await.expect("index position") < head {
        assert!(
            std::time::Instant::now() < deadline,
            "index never caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    gate.stall.store(false, SeqCst);
    let report = billing::run(gated.as_ref(), &index, &meta(now), now)
        .await
        .expect("second run");
    assert_eq!(report.subscriptions_examined, 4, "{report:?}");
    assert_eq!(report.charges, 4, "{report:?}");
    assert_eq!(report.subscriptions_failed, 0, "{report:?}");
    assert!(report.index_caught_up);
    let charged = charges_by_subscription(&app).await;
    for id in &ids {
        assert_eq!(charged.get(id), Some(&2), "{id}: {charged:?}");
    }
    // Neither run read the log: due subscriptions come from the index.
    assert_eq!(gate.read_alls.load(SeqCst), 0);
}
