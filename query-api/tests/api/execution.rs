//! `GET /execution/plan`: baskets, templates and subscriptions are made
//! through the command API, the projectors turn the log into the read
//! models (`TestApp::project`), and the plan is read over HTTP. The
//! 20 000-subscriber case appends its subscriptions straight to the event
//! store through the domain's decider, as the command API would, and lets
//! the projectors build the rows.

use basketry_command_api::openapi::shape;
use basketry_domain::basket::{self, BasketAggregate, BasketEvent};
use basketry_domain::subscription::{
    self, AllocationInput, BrokerAllocation, SubscribeToTemplate, SubscriptionAggregate,
    SubscriptionState,
};
use basketry_domain::{
    Actor, Aggregate, AllocationId, BasketId, DomainEvent, Email, SubscriptionId, UserId,
};
use basketry_query_api::openapi::QueryApiDoc;
use basketry_store::{ExpectedRevision, NewEvent, NewMetadata, Revision, StreamId};
use serde_json::{json, Value};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::helpers::{admin, auditor, executor, user, Cred, Resp, TestApp};
use crate::on_every_backend;

on_every_backend!(
    lots_are_multiplied_floored_and_split_per_allocation,
    the_owner_trades_their_own_basket_and_a_template_only_for_subscribers,
    paused_and_cancelled_subscriptions_are_left_out_until_resumed,
    an_admin_edit_is_in_the_next_plan_for_every_subscriber,
    exits_reverse_every_leg_and_come_before_entries,
    weekends_and_quiet_minutes_have_an_empty_plan,
    the_ndjson_form_streams_the_same_plan_line_by_line,
    a_missing_or_malformed_at_is_400_and_only_executors_and_admins_may_ask,
    a_plan_of_20_000_subscriptions_streams_and_counts_exactly,
);

/// Monday 23 November 2026, 09:20 in Asia/Kolkata.
const MONDAY_0920: &str = "2026-11-23T09:20:00%2B05:30";

fn strategy(name: &str, entry: &str, exit: &str, legs: Value) -> Value {
    json!({
        "name": name,
        "underlying": "NIFTY",
        "product": "MIS",
        "entry_time": entry,
        "exit_time": exit,
        "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
        "legs": legs,
    })
}

fn leg(action: &str, option_type: &str, lots: u32) -> Value {
    json!({"action": action, "option_type": option_type, "strike": "ATM", "expiry": "WEEKLY",
           "lots": lots})
}

fn allocation(broker: &str, multiplier: Value, priority: u32, max: u32) -> Value {
    json!({"broker_id": broker, "client_id": format!("{broker}-client"),
           "lot_multiplier": multiplier, "priority": priority, "max_lots_per_order": max})
}

/// A basket of `owner` with `strategies`; its id and its strategies' ids.
async fn basket(app: &TestApp, owner: &Cred, strategies: Vec<Value>) -> (String, Vec<String>) {
    let created = app
        .post(
            "/baskets",
            owner,
            json!({"name": "Nifty income", "category": "INCOME", "strategies": strategies}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["basket_id"].as_str().expect("id").to_string();
    let strategy_ids = created.body["strategies"]
        .as_array()
        .expect("strategies")
        .iter()
        .map(|s| s["strategy_id"].as_str().expect("strategy id").to_string())
        .collect();
    (id, strategy_ids)
}

/// An admin's basket with `strategies`, published as a FREE template.
async fn template(app: &TestApp, strategies: Vec<Value>) -> (String, Vec<String>) {
    let (id, strategy_ids) = basket(app, &admin(), strategies).await;
    publish(app, &id).await;
    (id, strategy_ids)
}

async fn publish(app: &TestApp, id: &str) {
    let published = app
        .post(
            &format!("/admin/marketplace/templates/{id}"),
            &admin(),
            json!({"pricing": {"type": "FREE"}, "tags": ["NIFTY"]}),
        )
        .await;
    assert_eq!(published.status, 201, "{}", published.text);
}

/// Subscribes `email` with `allocations`; the subscription id.
async fn subscribe(app: &TestApp, email: &str, template_id: &str, allocations: Value) -> String {
    let created = app
        .post(
            &format!("/marketplace/subscribe/{template_id}"),
            &user(email),
            json!({"broker_allocations": allocations}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body["subscription_id"]
        .as_str()
        .expect("id")
        .to_string()
}

async fn put(app: &TestApp, path: &str, cred: &Cred, body: Value) -> Resp {
    let r = app
        .send(reqwest::Method::PUT, path, cred, Some(body), &[])
        .await;
    assert_eq!(r.status, 200, "PUT {path}: {}", r.text);
    r
}

/// The JSON plan at `at` (already URL-encoded), as an executor reads it.
async fn plan(app: &TestApp, at: &str) -> Value {
    let r = app
        .get(&format!("/execution/plan?at={at}"), &executor())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.body.clone();
    let orders = body["orders"].as_array().expect("orders").len();
    let skipped = body["skipped"].as_array().expect("skipped").len();
    assert_eq!(body["order_count"], orders, "{}", r.text);
    assert_eq!(body["skipped_count"], skipped, "{}", r.text);
    body
}

/// `field` of every order.
fn column(plan: &Value, list: &str, field: &str) -> Vec<Value> {
    plan[list]
        .as_array()
        .expect("list")
        .iter()
        .map(|o| o[field].clone())
        .collect()
}

// ------------------------------------------------------------------ cases

async fn lots_are_multiplied_floored_and_split_per_allocation(app: TestApp) {
    let (t, strategies) = template(
        &app,
        vec![strategy(
            "Hedged strangle",
            "09:20",
            "15:15",
            json!([leg("SELL", "CE", 3), leg("BUY", "PE", 1)]),
        )],
    )
    .await;
    // Two brokers, each with its own multiplier and order size.
    let asha = subscribe(
        &app,
        "asha@example.com",
        &t,
        json!([
            allocation("angel", json!(0.5), 2, 50),
            allocation("zebu", json!(2.5), 1, 5),
        ]),
    )
    .await;
    let ravi = subscribe(&app, "ravi@example.com", &t, json!([])).await;
    app.project().await;

    let p = plan(&app, MONDAY_0920).await;
    assert_eq!(p["minute"], "2026-11-23T09:20:00+05:30");
    assert_eq!(p["weekday"], "MON");
    let got: Vec<(String, u64, String, u64, u64, u64, u64)> = p["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            (
                o["broker_id"].as_str().expect("broker").to_string(),
                o["leg_index"].as_u64().expect("leg"),
                o["action"].as_str().expect("action").to_string(),
                o["lots"].as_u64().expect("lots"),
                o["total_lots"].as_u64().expect("total"),
                o["slice"].as_u64().expect("slice"),
                o["slices"].as_u64().expect("slices"),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        got,
        vec![
            // zebu (priority 1): 3 × 2.5 = 7.5 → 7 lots at most 5 per
            // order; 1 × 2.5 → 2.
            (s("zebu"), 0, s("SELL"), 5, 7, 1, 2),
            (s("zebu"), 0, s("SELL"), 2, 7, 2, 2),
            (s("zebu"), 1, s("BUY"), 2, 2, 1, 1),
            // angel (priority 2): 3 × 0.5 → 1; 1 × 0.5 → 0, skipped.
            (s("angel"), 0, s("SELL"), 1, 1, 1, 1),
        ]
    );
    let first = &p["orders"][0];
    assert_eq!(first["type"], "order");
    assert_eq!(first["phase"], "ENTRY");
    assert_eq!(first["position_effect"], "OPEN");
    assert_eq!(first["source"], "SUBSCRIPTION");
    assert_eq!(first["subscription_id"], asha.as_str());
    assert_eq!(first["template_id"], t.as_str());
    assert_eq!(first["basket_id"], t.as_str());
    assert_eq!(first["strategy_id"], strategies[0].as_str());
    assert_eq!(first["strategy_name"], "Hedged strangle");
    assert_eq!(
        first["user_id"],
        crate::helpers::user_id("asha@example.com")
    );
    assert_eq!(first["lot_multiplier"], 2.5);
    assert_eq!(first["max_lots_per_order"], 5);
    assert_eq!(first["leg_action"], "SELL");
    assert_eq!(
        (first["underlying"].clone(), first["product"].clone()),
        (json!("NIFTY"), json!("MIS"))
    );
    assert!(p["orders"][3]["allocation_id"].is_string());
    assert_ne!(p["orders"][3]["allocation_id"], first["allocation_id"]);

    // The 0-lot leg and the subscription without allocation, with reasons.
    let skipped = p["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 2, "{p}");
    assert_eq!(skipped[0]["code"], "zero_lots");
    assert_eq!(skipped[0]["subscription_id"], asha.as_str());
    assert_eq!(skipped[0]["allocation_id"], p["orders"][3]["allocation_id"]);
    assert_eq!(skipped[0]["leg_index"], 1);
    assert!(skipped[0]["reason"]
        .as_str()
        .expect("reason")
        .contains("0.5"));
    assert_eq!(skipped[1]["code"], "no_allocation");
    assert_eq!(skipped[1]["subscription_id"], ravi.as_str());
    assert!(skipped[1]["allocation_id"].is_null());
    assert!(!skipped[1]["reason"].as_str().expect("reason").is_empty());
    assert!(skipped.iter().all(|s| s["type"] == "skipped"));

    // Admins may read it too, and see the same plan.
    let r = app
        .get(&format!("/execution/plan?at={MONDAY_0920}"), &admin())
        .await;
    assert_eq!(r.ok()["orders"], p["orders"]);
}

async fn the_owner_trades_their_own_basket_and_a_template_only_for_subscribers(app: TestApp) {
    let owner = "owner@example.com";
    let (mine, _) = basket(
        &app,
        &user(owner),
        vec![strategy(
            "Big straddle",
            "09:20",
            "15:15",
            json!([leg("SELL", "CE", 120)]),
        )],
    )
    .await;
    // An admin's basket: traded for the admin until it is published.
    let (admins, _) = basket(
        &app,
        &admin(),
        vec![strategy(
            "Admin's own",
            "09:20",
            "15:15",
            json!([leg("BUY", "CE", 1)]),
        )],
    )
    .await;
    app.project().await;

    let p = plan(&app, MONDAY_0920).await;
    let baskets = column(&p, "orders", "basket_id");
    assert_eq!(
        p["orders"].as_array().expect("orders").len(),
        4,
        "120 lots at the default 50 per order, and one admin order: {p}"
    );
    let own: Vec<&Value> = p["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["basket_id"] == mine.as_str())
        .collect();
    assert_eq!(
        own.iter().map(|o| o["lots"].clone()).collect::<Vec<_>>(),
        vec![json!(50), json!(50), json!(20)]
    );
    for o in &own {
        assert_eq!(o["source"], "OWNER");
        assert_eq!(o["user_id"], crate::helpers::user_id(owner));
        assert!(o["subscription_id"].is_null() && o["allocation_id"].is_null());
        assert!(o["template_id"].is_null() && o["broker_id"].is_null());
        assert_eq!(o["lot_multiplier"], 1.0);
        assert_eq!(o["max_lots_per_order"], 50);
    }
    assert!(baskets.contains(&json!(admins)));

    // Published, the admin's basket trades for its subscribers only — also
    // once disabled again.
    publish(&app, &admins).await;
    let sub = subscribe(
        &app,
        "sub@example.com",
        &admins,
        json!([allocation("zebu", json!(1), 1, 50)]),
    )
    .await;
    app.project().await;
    let p = plan(&app, MONDAY_0920).await;
    let of_template: Vec<&Value> = p["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|o| o["basket_id"] == admins.as_str())
        .collect();
    assert_eq!(of_template.len(), 1, "{p}");
    assert_eq!(of_template[0]["subscription_id"], sub.as_str());
    let disabled = app
        .send(
            reqwest::Method::DELETE,
            &format!("/admin/marketplace/templates/{admins}"),
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    app.project().await;
    let p = plan(&app, MONDAY_0920).await;
    assert_eq!(
        p["orders"]
            .as_array()
            .expect("orders")
            .iter()
            .filter(|o| o["basket_id"] == admins.as_str())
            .map(|o| o["source"].clone())
            .collect::<Vec<_>>(),
        vec![json!("SUBSCRIPTION")],
        "existing subscriptions keep running, the admin does not start trading it"
    );
}

async fn paused_and_cancelled_subscriptions_are_left_out_until_resumed(app: TestApp) {
    let (t, _) = template(
        &app,
        vec![strategy(
            "Straddle",
            "09:20",
            "15:15",
            json!([leg("SELL", "CE", 1)]),
        )],
    )
    .await;
    let one = allocation("zebu", json!(1), 1, 50);
    let a = subscribe(&app, "a@example.com", &t, json!([one.clone()])).await;
    let b = subscribe(&app, "b@example.com", &t, json!([one.clone()])).await;
    let c = subscribe(&app, "c@example.com", &t, json!([one])).await;
    app.project().await;
    let subscriptions = |p: &Value| column(p, "orders", "subscription_id");
    let p = plan(&app, MONDAY_0920).await;
    assert_eq!(subscriptions(&p), vec![json!(a), json!(b), json!(c)]);

    put(
        &app,
        &format!("/user/subscriptions/{b}/pause"),
        &user("b@example.com"),
        json!({}),
    )
    .await;
    app.project().await;
    let p = plan(&app, MONDAY_0920).await;
    assert_eq!(subscriptions(&p), vec![json!(a), json!(c)]);
    assert!(p["skipped"].as_array().expect("skipped").is_empty());

    put(
        &app,
        &format!("/user/subscriptions/{b}/resume"),
        &user("b@example.com"),
        json!({}),
    )
    .await;
    let cancelled = app
        .send(
            reqwest::Method::DELETE,
            &format!("/user/subscriptions/{c}"),
            &user("c@example.com"),
            None,
            &[],
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    app.project().await;
    let p = plan(&app, MONDAY_0920).await;
    assert_eq!(subscriptions(&p), vec![json!(a), json!(b)]);
}

async fn an_admin_edit_is_in_the_next_plan_for_every_subscriber(app: TestApp) {
    let (t, strategies) = template(
        &app,
        vec![strategy(
            "Straddle",
            "09:20",
            "15:15",
            json!([leg("SELL", "CE", 1)]),
        )],
    )
    .await;
    let s = &strategies[0];
    subscribe(
        &app,
        "a@example.com",
        &t,
        json!([allocation("zebu", json!(2), 1, 50)]),
    )
    .await;
    subscribe(
        &app,
        "b@example.com",
        &t,
        json!([allocation("angel", json!(3), 1, 50)]),
    )
    .await;
    app.project().await;
    let p = plan(&app, MONDAY_0920).await;
    assert_eq!(column(&p, "orders", "lots"), vec![json!(2), json!(3)]);
    let revision = p["orders"][0]["basket_revision"]
        .as_u64()
        .expect("revision");

    // The admin doubles the lots: every subscriber's next plan has them.
    put(
        &app,
        &format!("/baskets/{t}/strategies/{s}"),
        &admin(),
        strategy("Straddle", "09:20", "15:15", json!([leg("SELL", "CE", 2)])),
    )
    .await;
    app.project().await;
    let p = plan(&app, MONDAY_0920).await;
    assert_eq!(column(&p, "orders", "lots"), vec![json!(4), json!(6)]);
    assert_eq!(
        column(&p, "orders", "basket_revision"),
        vec![json!(revision + 1), json!(revision + 1)]
    );

    // …then moves the entry to 09:30.
    put(
        &app,
        &format!("/baskets/{t}/strategies/{s}"),
        &admin(),
        strategy("Straddle", "09:30", "15:15", json!([leg("SELL", "CE", 2)])),
    )
    .await;
    app.project().await;
    let p = plan(&app, MONDAY_0920).await;
    assert!(p["orders"].as_array().expect("orders").is_empty(), "{p}");
    let p = plan(&app, "2026-11-23T04:00:00Z").await;
    assert_eq!(column(&p, "orders", "lots"), vec![json!(4), json!(6)]);

    // A strategy added shows up; one removed is gone.
    let added = app
        .post(
            &format!("/baskets/{t}/strategies"),
            &admin(),
            strategy("Late fly", "09:20", "15:15", json!([leg("BUY", "PE", 1)])),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    app.project().await;
    let p = plan(&app, MONDAY_0920).await;
    assert_eq!(
        column(&p, "orders", "strategy_name"),
        vec![json!("Late fly"); 2]
    );
    let removed = app
        .send(
            reqwest::Method::DELETE,
            &format!("/baskets/{t}/strategies/{s}"),
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    app.project().await;
    let p = plan(&app, "2026-11-23T04:00:00Z").await;
    assert!(p["orders"].as_array().expect("orders").is_empty(), "{p}");
}

async fn exits_reverse_every_leg_and_come_before_entries(app: TestApp) {
    let (t, strategies) = template(
        &app,
        vec![
            strategy(
                "Morning",
                "09:20",
                "11:00",
                json!([leg("SELL", "CE", 2), leg("BUY", "PE", 1)]),
            ),
            strategy("Midday", "11:00", "15:15", json!([leg("SELL", "PE", 1)])),
        ],
    )
    .await;
    subscribe(
        &app,
        "a@example.com",
        &t,
        json!([allocation("zebu", json!(1), 1, 50)]),
    )
    .await;
    app.project().await;

    // 11:00: "Morning" exits (each leg reversed), "Midday" enters.
    let p = plan(&app, "2026-11-25T11:00:00%2B05:30").await;
    assert_eq!(p["weekday"], "WED");
    let rows: Vec<(Value, Value, Value, Value, Value)> = p["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            (
                o["phase"].clone(),
                o["strategy_id"].clone(),
                o["action"].clone(),
                o["leg_action"].clone(),
                o["position_effect"].clone(),
            )
        })
        .collect();
    let (morning, midday) = (json!(strategies[0]), json!(strategies[1]));
    assert_eq!(
        rows,
        vec![
            (
                json!("EXIT"),
                morning.clone(),
                json!("BUY"),
                json!("SELL"),
                json!("CLOSE")
            ),
            (
                json!("EXIT"),
                morning,
                json!("SELL"),
                json!("BUY"),
                json!("CLOSE")
            ),
            (
                json!("ENTRY"),
                midday,
                json!("SELL"),
                json!("SELL"),
                json!("OPEN")
            ),
        ]
    );
    assert_eq!(p["orders"][0]["lots"], 2);
}

async fn weekends_and_quiet_minutes_have_an_empty_plan(app: TestApp) {
    let (t, _) = template(
        &app,
        vec![strategy(
            "Straddle",
            "09:20",
            "15:15",
            json!([leg("SELL", "CE", 1)]),
        )],
    )
    .await;
    subscribe(
        &app,
        "a@example.com",
        &t,
        json!([allocation("zebu", json!(1), 1, 50)]),
    )
    .await;
    app.project().await;

    // Saturday 09:20 IST.
    let p = plan(&app, "2026-11-28T09:20:00%2B05:30").await;
    assert!(p["weekday"].is_null());
    assert!(p["orders"].as_array().expect("orders").is_empty());
    assert!(p["skipped"].as_array().expect("skipped").is_empty());
    // Monday 09:21: nothing enters or exits.
    let p = plan(&app, "2026-11-23T09:21:00%2B05:30").await;
    assert_eq!(p["weekday"], "MON");
    assert!(p["orders"].as_array().expect("orders").is_empty());
    // 03:50:59 UTC is 09:20:59 IST: the 09:20 plan.
    let p = plan(&app, "2026-11-23T03:50:59.5Z").await;
    assert_eq!(p["minute"], "2026-11-23T09:20:00+05:30");
    assert_eq!(p["at"], "2026-11-23T03:50:59.500Z");
    assert_eq!(p["orders"].as_array().expect("orders").len(), 1);
    // Friday 23:59 in UTC is already Saturday in India.
    let p = plan(&app, "2026-11-27T18:31:00Z").await;
    assert!(p["weekday"].is_null());
}

async fn the_ndjson_form_streams_the_same_plan_line_by_line(app: TestApp) {
    let (t, _) = template(
        &app,
        vec![strategy(
            "Straddle",
            "09:20",
            "15:15",
            json!([leg("SELL", "CE", 3), leg("SELL", "PE", 1)]),
        )],
    )
    .await;
    subscribe(
        &app,
        "a@example.com",
        &t,
        json!([allocation("zebu", json!(2.5), 1, 5)]),
    )
    .await;
    subscribe(&app, "b@example.com", &t, json!([])).await;
    subscribe(
        &app,
        "c@example.com",
        &t,
        json!([allocation("angel", json!(0.5), 1, 50)]),
    )
    .await;
    app.project().await;

    let json_plan = plan(&app, MONDAY_0920).await;
    let r = app
        .get_with(
            &format!("/execution/plan?at={MONDAY_0920}"),
            &executor(),
            &[("Accept", "application/x-ndjson")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert!(r.text.ends_with('\n'));
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |kind: &str| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["type"] == kind)
            .cloned()
            .collect()
    };
    assert_eq!(Value::from(of("order")), json_plan["orders"]);
    assert_eq!(Value::from(of("skipped")), json_plan["skipped"]);
    assert_eq!(of("order").len(), 4);
    assert_eq!(of("skipped").len(), 2);
    // Orders, then skipped entries, then the end line.
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        vec!["order", "order", "order", "order", "skipped", "skipped", "end"]
    );
    let end = lines.last().expect("end");
    assert_eq!(end["order_count"], 4);
    assert_eq!(end["skipped_count"], 2);
    assert_eq!(end["minute"], json_plan["minute"]);
    let doc = serde_json::to_value(QueryApiDoc::openapi()).expect("document");
    let line_schema =
        shape::response_schema(&doc, "GET", "/execution/plan", 200, "application/x-ndjson")
            .expect("the ndjson form is documented");
    for line in &lines {
        let errors = shape::check(&doc, line_schema, line);
        assert!(errors.is_empty(), "{errors:?}: {line}");
    }
}

async fn a_missing_or_malformed_at_is_400_and_only_executors_and_admins_may_ask(app: TestApp) {
    let doc = serde_json::to_value(QueryApiDoc::openapi()).expect("document");
    let check = |r: &Resp, status: u16| {
        if let Err(e) = shape::check_response(&doc, "GET", "/execution/plan", status, &r.body) {
            panic!("{e}");
        }
    };
    let r = app.get("/execution/plan", &executor()).await;
    r.assert_problem(400, "missing_parameter");
    check(&r, 400);
    for bad in [
        "2026-11-23",
        "2026-11-23T09:20:00",
        "monday",
        "2026-13-01T00:00:00Z",
    ] {
        let r = app
            .get(&format!("/execution/plan?at={bad}"), &executor())
            .await;
        r.assert_problem(400, "invalid_timestamp");
    }
    app.get(
        &format!("/execution/plan?at={MONDAY_0920}&limit=5"),
        &executor(),
    )
    .await
    .assert_problem(400, "unknown_parameter");

    let path = format!("/execution/plan?at={MONDAY_0920}");
    let r = app.get(&path, &Cred::None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    check(&r, 401);
    for who in [user("someone@example.com"), auditor()] {
        let r = app.get(&path, &who).await;
        r.assert_problem(403, "forbidden");
        check(&r, 403);
    }
    let (zebu, _) = app.partner("ZEBU", &[], None).await;
    app.get(&path, &zebu).await.assert_problem(403, "forbidden");

    let r = app.get(&path, &executor()).await;
    check(&r, 200);
    let r = app.get(&path, &admin()).await;
    check(&r, 200);
    // An order and a skipped entry of each kind against the document too.
    let (t, _) = template(
        &app,
        vec![strategy(
            "Straddle",
            "09:20",
            "15:15",
            json!([leg("SELL", "CE", 1)]),
        )],
    )
    .await;
    subscribe(
        &app,
        "a@example.com",
        &t,
        json!([allocation("zebu", json!(0.5), 1, 50)]),
    )
    .await;
    subscribe(&app, "b@example.com", &t, json!([])).await;
    subscribe(
        &app,
        "c@example.com",
        &t,
        json!([allocation("angel", json!(1), 1, 50)]),
    )
    .await;
    basket(
        &app,
        &user("owner@example.com"),
        vec![strategy(
            "Mine",
            "09:20",
            "15:15",
            json!([leg("BUY", "CE", 1)]),
        )],
    )
    .await;
    app.project().await;
    let r = app.get(&path, &executor()).await;
    assert_eq!(r.ok()["order_count"], 2, "{}", r.text);
    assert_eq!(r.ok()["skipped_count"], 2, "{}", r.text);
    check(&r, 200);
}

async fn a_plan_of_20_000_subscriptions_streams_and_counts_exactly(app: TestApp) {
    const SUBSCRIPTIONS: usize = 20_000;
    let (t, _) = template(
        &app,
        vec![strategy(
            "Straddle",
            "09:20",
            "15:15",
            json!([leg("SELL", "CE", 1)]),
        )],
    )
    .await;
    app.project().await;
    let template_id = BasketId::from_uuid(Uuid::parse_str(&t).expect("uuid"));
    let terms = {
        let stream = StreamId::parse(basket::stream_name(&template_id)).expect("stream");
        let history = app
            .store
            .read_stream(&stream, Revision::START)
            .await
            .expect("basket history");
        let events: Vec<BasketEvent> = history
            .into_iter()
            .map(|r| BasketEvent::from_stored(&r.event_type, r.schema_version, r.data))
            .collect::<Result<_, _>>()
            .expect("basket events");
        BasketAggregate::replay(&events)
            .template_terms()
            .expect("a template")
    };

    // The subscriptions, decided by the domain and appended as the command
    // API appends them; every tenth has no allocation.
    let mut expected = Vec::with_capacity(SUBSCRIPTIONS);
    for i in 0..SUBSCRIPTIONS {
        let email = Email::parse(&format!("bulk{i}@example.com")).expect("email");
        let user_id = UserId::from_email(&email);
        let subscription_id = SubscriptionId::from_uuid(Uuid::now_v7());
        let allocations = if i % 10 == 0 {
            vec![]
        } else {
            BrokerAllocation::parse_list(
                &[AllocationInput {
                    broker_id: Some("zebu".into()),
                    client_id: Some(format!("C{i}")),
                    ..AllocationInput::default()
                }],
                || AllocationId::from_uuid(Uuid::now_v7()),
            )
            .expect("allocation")
        };
        let events = SubscriptionAggregate::decide(
            &SubscriptionState::default(),
            SubscribeToTemplate {
                actor: Actor::User { user_id },
                subscription_id,
                user_id,
                user_email: email,
                template: terms.clone(),
                partner: None,
                allocations,
                now: chrono::Utc::now(),
            }
            .into(),
        )
        .expect("subscribe");
        let new_events = events
            .iter()
            .map(|e| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: e.event_type().into(),
                schema_version: e.schema_version(),
                data: e.to_data(),
                metadata: NewMetadata {
                    actor: basketry_store::Actor {
                        kind: "user".into(),
                        id: user_id.to_string(),
                    },
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                    idempotency_key: None,
                },
            })
            .collect();
        let stream = StreamId::parse(subscription::stream_name(&subscription_id)).expect("stream");
        app.store
            .append(&stream, ExpectedRevision::NoStream, new_events)
            .await
            .expect("append");
        expected.push((subscription_id.to_string(), i % 10 != 0));
    }
    app.project().await;

    let p = plan(&app, MONDAY_0920).await;
    let traded: Vec<Value> = expected
        .iter()
        .filter(|(_, has)| *has)
        .map(|(id, _)| json!(id))
        .collect();
    let left_out: Vec<Value> = expected
        .iter()
        .filter(|(_, has)| !*has)
        .map(|(id, _)| json!(id))
        .collect();
    assert_eq!(p["order_count"], 18_000);
    assert_eq!(p["skipped_count"], 2_000);
    // Exactly these subscriptions, oldest first.
    assert_eq!(column(&p, "orders", "subscription_id"), traded);
    assert_eq!(column(&p, "skipped", "subscription_id"), left_out);

    // The ndjson form, read as a stream and parsed line by line.
    let mut resp = app
        .client
        .get(format!("{}/execution/plan?at={MONDAY_0920}", app.base))
        .bearer_auth(match executor() {
            Cred::Jwt(t) => t,
            _ => unreachable!("executor() is a JWT"),
        })
        .header("Accept", "application/x-ndjson")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let (mut pending, mut orders, mut skipped, mut end) = (Vec::new(), 0u64, 0u64, None);
    let mut order_ids = Vec::with_capacity(18_000);
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        pending.extend_from_slice(&chunk);
        while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            let value: Value = serde_json::from_slice(&line).expect("one JSON object per line");
            match value["type"].as_str() {
                Some("order") => {
                    orders += 1;
                    order_ids.push(value["subscription_id"].clone());
                }
                Some("skipped") => skipped += 1,
                Some("end") => end = Some(value),
                other => panic!("unexpected line type {other:?}"),
            }
        }
    }
    assert!(pending.is_empty(), "the last line ends with a newline");
    assert_eq!((orders, skipped), (18_000, 2_000));
    assert_eq!(order_ids, traded);
    let end = end.expect("an end line");
    assert_eq!(
        (end["order_count"].clone(), end["skipped_count"].clone()),
        (json!(18_000), json!(2_000))
    );
}
