//! Read-your-writes with `X-Consistency-Token`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{user, BasketSeed, TestApp, CONSISTENCY_WAIT};
use crate::on_every_backend;

on_every_backend!(
    a_token_waits_until_every_projector_has_reached_it,
    a_token_never_reached_is_a_503_with_retry_after,
    a_malformed_token_is_a_400,
    the_command_apis_token_is_accepted_as_it_is,
    many_waiting_requests_share_one_checkpoint_watcher,
);

async fn a_token_waits_until_every_projector_has_reached_it(app: TestApp) {
    app.checkpoint("marketplace", 10, 10).await;
    app.checkpoint("ledger", 10, 10).await;
    let t = BasketSeed::template(&app, "Nifty weekly income");
    app.seed_basket(&t).await;
    let u = user("u@example.com");

    // Already reached: no wait.
    let started = Instant::now();
    app.get_with(
        "/marketplace/templates",
        &u,
        &[("X-Consistency-Token", "10.10")],
    )
    .await
    .ok();
    assert!(started.elapsed() < Duration::from_millis(500));

    // The projectors catch up one after the other while the query waits.
    let db = app.db.clone();
    let advance = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sqlx::query("UPDATE projector_checkpoints SET commit_position = 20, prepare_position = 20 WHERE name = 'marketplace'")
            .execute(&db)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("UPDATE projector_checkpoints SET commit_position = 21, prepare_position = 3 WHERE name = 'ledger'")
            .execute(&db)
            .await
            .unwrap();
    });
    let started = Instant::now();
    let waited = app
        .get_with(
            "/marketplace/templates",
            &u,
            &[("X-Consistency-Token", "20.20")],
        )
        .await;
    let elapsed = started.elapsed();
    advance.await.unwrap();
    assert_eq!(
        waited.ids("templates", "template_id"),
        vec![t.basket_id.clone()]
    );
    assert!(
        elapsed >= Duration::from_millis(450),
        "answered after {elapsed:?}, before the second projector caught up"
    );
    assert!(elapsed < CONSISTENCY_WAIT, "{elapsed:?}");
}

async fn a_token_never_reached_is_a_503_with_retry_after(app: TestApp) {
    let u = user("u@example.com");
    // No projector has checkpointed yet: nothing is caught up.
    let none = app
        .get_with("/baskets", &u, &[("X-Consistency-Token", "1.1")])
        .await;
    none.assert_problem(503, "consistency_timeout");

    app.checkpoint("marketplace", 50, 50).await;
    app.checkpoint("ledger", 5, 5).await;
    let started = Instant::now();
    let refused = app
        .get_with("/baskets", &u, &[("X-Consistency-Token", "6.6")])
        .await;
    let elapsed = started.elapsed();
    refused.assert_problem(503, "consistency_timeout");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(elapsed >= CONSISTENCY_WAIT, "{elapsed:?}");
    assert!(
        elapsed < CONSISTENCY_WAIT + Duration::from_secs(2),
        "{elapsed:?}"
    );
}

async fn a_malformed_token_is_a_400(app: TestApp) {
    let u = user("u@example.com");
    for bad in ["abc", "12", "1.2.3", "-1.0", "1.x", ""] {
        app.get_with("/baskets", &u, &[("X-Consistency-Token", bad)])
            .await
            .assert_problem(400, "invalid_consistency_token");
    }
    let (partner, _) = app.partner("ZEBU", &[], None).await;
    let r = app
        .get_with(
            "/marketplace/templates",
            &partner,
            &[("X-Consistency-Token", "oops")],
        )
        .await;
    r.assert_problem(400, "invalid_consistency_token");
    assert!(r.header("ratelimit-policy").is_some());
}

async fn the_command_apis_token_is_accepted_as_it_is(app: TestApp) {
    let owner = user("trader@example.com");
    let created = app
        .post(
            "/baskets",
            &owner,
            json!({"name": "Mine", "description": "", "category": "INCOME"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let token = created
        .header("x-consistency-token")
        .expect("consistency token")
        .to_string();
    let (commit, prepare) = token.split_once('.').unwrap();
    app.checkpoint(
        "marketplace",
        commit.parse().unwrap(),
        prepare.parse().unwrap(),
    )
    .await;
    app.get_with("/baskets", &owner, &[("X-Consistency-Token", &token)])
        .await
        .ok();
}

/// Requests waiting for a token do not each poll the checkpoints: one
/// watcher per process reads them for all of them, and waiting still
/// answers as soon as the projectors pass the token, or 503 after the bound.
async fn many_waiting_requests_share_one_checkpoint_watcher(app: TestApp) {
    const WAITING: usize = 40;
    app.checkpoint("marketplace", 5, 5).await;
    app.checkpoint("ledger", 5, 5).await;
    let u = user("u@example.com");
    // Polled every 20 ms, one watcher reads about 75 times in the 1.5 s
    // wait; forty requests polling on their own read 40 times as often.
    let bound = 2 * (CONSISTENCY_WAIT.as_millis() as u64 / 20) + 20;

    let reads = app.checkpoints.reads();
    let db = app.db.clone();
    let advance = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        sqlx::query("UPDATE projector_checkpoints SET commit_position = 30, prepare_position = 30")
            .execute(&db)
            .await
            .unwrap();
    });
    let started = Instant::now();
    let answers = futures::future::join_all(
        (0..WAITING).map(|_| app.get_with("/baskets", &u, &[("X-Consistency-Token", "30.30")])),
    )
    .await;
    let elapsed = started.elapsed();
    advance.await.unwrap();
    for a in answers {
        a.ok();
    }
    assert!(elapsed >= Duration::from_millis(550), "{elapsed:?}");
    assert!(elapsed < CONSISTENCY_WAIT, "answered after {elapsed:?}");
    let used = app.checkpoints.reads() - reads;
    assert!(
        used <= bound,
        "{used} checkpoint reads for {WAITING} waiting requests (bound {bound})"
    );

    let reads = app.checkpoints.reads();
    let started = Instant::now();
    let refused = futures::future::join_all(
        (0..WAITING).map(|_| app.get_with("/baskets", &u, &[("X-Consistency-Token", "31.31")])),
    )
    .await;
    let elapsed = started.elapsed();
    for r in refused {
        r.assert_problem(503, "consistency_timeout");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert!(
        elapsed < CONSISTENCY_WAIT + Duration::from_secs(3),
        "{elapsed:?}"
    );
    let used = app.checkpoints.reads() - reads;
    assert!(
        used <= bound,
        "{used} checkpoint reads for {WAITING} requests that timed out (bound {bound})"
    );
}
