//! The audit routes: the log itself, with metadata, for admins and auditors.

use basketry_store::chain::GENESIS_HASH;
use serde_json::{json, Value};

use crate::helpers::{admin, auditor, executor, user, TestApp};
use crate::on_every_backend;

on_every_backend!(
    a_stream_reads_in_revision_order_with_metadata_and_an_unbroken_chain,
    the_global_log_pages_in_position_order_without_gaps_or_repeats,
    only_admins_and_auditors_read_the_log,
    bad_positions_cursors_and_streams_are_refused_clearly,
);

/// A strategy as the command API takes it.
fn strategy(name: &str) -> Value {
    json!({"name": name, "underlying": "NIFTY", "product": "MIS",
           "entry_time": "09:20", "exit_time": "15:15", "trading_days": ["MON", "WED"],
           "legs": [{"action": "SELL", "option_type": "CE", "strike": "ATM",
                     "expiry": "WEEKLY", "lots": 1}]})
}

/// A basket created, renamed and given a second strategy by one user, with
/// an idempotency key on the creation; its id.
async fn basket_with_history(app: &TestApp) -> String {
    let owner = user("owner@example.com");
    let created = app
        .send(
            reqwest::Method::POST,
            "/baskets",
            &owner,
            Some(json!({"name": "Audited", "category": "INCOME",
                        "strategies": [strategy("First")]})),
            &[("Idempotency-Key", "audit-create-1")],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["basket_id"].as_str().expect("id").to_string();
    let renamed = app
        .send(
            reqwest::Method::PUT,
            &format!("/baskets/{id}"),
            &owner,
            Some(json!({"name": "Audited twice"})),
            &[],
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let added = app
        .post(
            &format!("/baskets/{id}/strategies"),
            &owner,
            strategy("Second"),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    id
}

async fn a_stream_reads_in_revision_order_with_metadata_and_an_unbroken_chain(app: TestApp) {
    let id = basket_with_history(&app).await;
    let page = app
        .get(&format!("/audit/streams/basket-{id}"), &auditor())
        .await;
    let body = page.ok();
    assert_eq!(body["stream_id"], format!("basket-{id}"));
    assert_eq!(body["next_cursor"], Value::Null);
    let events = body["events"].as_array().expect("events");
    let types: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(types, ["BasketCreated", "BasketUpdated", "StrategyAdded"]);

    let first = &events[0];
    assert_eq!(first["revision"], 0);
    assert_eq!(first["schema_version"], 1);
    assert_eq!(first["data"]["name"], "Audited");
    let meta = &first["metadata"];
    assert_eq!(meta["actor"]["kind"], "user");
    assert_eq!(
        meta["actor"]["id"],
        crate::helpers::user_id("owner@example.com")
    );
    assert_eq!(meta["idempotency_key"], "audit-create-1");
    assert!(meta["correlation_id"]
        .as_str()
        .is_some_and(|c| c.len() == 36));
    assert!(meta["recorded_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(meta["prev_hash"], GENESIS_HASH);
    // The chain links: each event's prev_hash is the hash before it, and
    // its position is where the global log has it.
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["metadata"]["prev_hash"],
            pair[0]["metadata"]["hash"]
        );
        assert_eq!(
            pair[1]["revision"].as_u64(),
            pair[0]["revision"].as_u64().map(|r| r + 1)
        );
    }
    // Every hash is recomputable from what the route shows.
    for event in events {
        let recorded: basketry_store::RecordedEvent = serde_json::from_value(json!({
            "event_id": event["event_id"],
            "stream_id": event["stream_id"],
            "revision": event["revision"],
            "position": {"commit": event["commit_position"], "prepare": event["prepare_position"]},
            "event_type": event["event_type"],
            "schema_version": event["schema_version"],
            "data": event["data"],
            "metadata": event["metadata"],
        }))
        .expect("an audit event is a recorded event");
        assert_eq!(
            basketry_store::chain::expected_hash(&recorded),
            event["metadata"]["hash"].as_str().expect("hash")
        );
    }

    // Paged one at a time, the same three events.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("/audit/streams/basket-{id}?limit=1"),
            Some(c) => format!("/audit/streams/basket-{id}?limit=1&cursor={c}"),
        };
        let page = app.get(&url, &admin()).await;
        let body = page.ok().clone();
        paged.extend(body["events"].as_array().expect("events").iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(paged.len() <= 3, "paging does not end");
    }
    assert_eq!(&paged, events);
}

async fn the_global_log_pages_in_position_order_without_gaps_or_repeats(app: TestApp) {
    for _ in 0..3 {
        basket_with_history(&app).await;
    }
    let (_, _) = app.partner("ZEBU", &[], None).await;
    let all = app.get("/audit/events?limit=100", &auditor()).await;
    let all = all.ok()["events"].as_array().expect("events").clone();
    assert!(all.len() >= 10, "{}", all.len());

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            None => "/audit/events?limit=3".to_string(),
            Some(a) => format!("/audit/events?limit=3&after={a}"),
        };
        let page = app.get(&url, &auditor()).await;
        let body = page.ok().clone();
        let events = body["events"].as_array().expect("events").clone();
        assert!(events.len() <= 3);
        paged.extend(events);
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(
                    Some(next),
                    paged.last().and_then(|e| e["position"].as_str())
                );
                after = Some(next.to_string());
            }
            None => break,
        }
        assert!(paged.len() <= all.len(), "paging does not end");
    }
    assert_eq!(paged, all);
    let positions: Vec<u64> = all
        .iter()
        .map(|e| e["commit_position"].as_u64().expect("position"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    // Partner events are there with a partner stream and an admin actor.
    let issued = all
        .iter()
        .find(|e| e["event_type"] == "ApiKeyIssued")
        .expect("key issued");
    assert_eq!(issued["stream_id"], "partner-ZEBU");
    assert_eq!(issued["metadata"]["actor"]["kind"], "admin");
    // No secret or its hash is shown as a secret: the route shows what the
    // event holds, and the event holds no plaintext secret.
    assert!(!issued["data"].to_string().contains("sk_zebu_live_"));

    // `after` also takes a bare integer, and the end of the log is empty.
    let last = positions.last().copied().expect("last");
    let tail = app
        .get(&format!("/audit/events?after={}", last - 1), &admin())
        .await;
    assert_eq!(tail.ok()["events"].as_array().map(Vec::len), Some(1));
    let end = app
        .get(&format!("/audit/events?after={last}"), &admin())
        .await;
    assert_eq!(end.ok()["events"], json!([]));
    assert_eq!(end.ok()["next_cursor"], Value::Null);
}

async fn only_admins_and_auditors_read_the_log(app: TestApp) {
    let id = basket_with_history(&app).await;
    let (partner, _) = app.partner("ZEBU", &[], None).await;
    for path in [
        "/audit/events".to_string(),
        format!("/audit/streams/basket-{id}"),
    ] {
        app.get(&path, &user("owner@example.com"))
            .await
            .assert_problem(403, "forbidden");
        app.get(&path, &executor())
            .await
            .assert_problem(403, "forbidden");
        app.get(&path, &partner)
            .await
            .assert_problem(403, "forbidden");
        app.get(&path, &crate::helpers::Cred::None)
            .await
            .assert_problem(401, "authentication_required");
        app.get(&path, &admin()).await.ok();
        app.get(&path, &auditor()).await.ok();
    }
}

async fn bad_positions_cursors_and_streams_are_refused_clearly(app: TestApp) {
    basket_with_history(&app).await;
    for bad in ["abc", "1.", "-3", "1.2.3"] {
        let r = app
            .get(&format!("/audit/events?after={bad}"), &auditor())
            .await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.body["errors"][0]["field"], "after", "{}", r.text);
    }
    app.get("/audit/events?limit=0", &auditor())
        .await
        .assert_problem(422, "validation_failed");
    app.get("/audit/events?from=1", &auditor())
        .await
        .assert_problem(400, "unknown_parameter");
    app.get("/audit/streams/basket-nothing-here", &auditor())
        .await
        .assert_problem(404, "not_found");
    app.get("/audit/streams/..%2F..%2Fetc%2Fpasswd", &auditor())
        .await
        .assert_problem(404, "not_found");
    let stream = app.get("/audit/events?limit=1", &auditor()).await;
    let stream_id = stream.ok()["events"][0]["stream_id"]
        .as_str()
        .expect("stream")
        .to_string();
    app.get(&format!("/audit/streams/{stream_id}?cursor=x"), &auditor())
        .await
        .assert_problem(400, "invalid_cursor");
}
