//! A person's own baskets.

use serde_json::{json, Value};

use crate::helpers::{admin, user, user_id, BasketSeed, TestApp};
use crate::on_every_backend;

on_every_backend!(
    a_basket_reads_back_exactly_as_the_command_api_answered,
    baskets_lists_only_the_callers_own_newest_first,
    someone_elses_basket_is_404_and_partners_are_403,
    basket_pages_never_repeat_or_skip_while_baskets_are_created,
);

/// The strategies of the stored `BasketCreated` event (what the projector
/// copies into `rm_baskets.strategies`).
async fn created_strategies(app: &TestApp, basket_id: &str) -> Value {
    let events = app.store.read_all(None, 1000).await.unwrap();
    let created = events
        .iter()
        .find(|e| e.event_type == "BasketCreated" && e.data["basket_id"] == basket_id)
        .expect("BasketCreated");
    created.data["strategies"].clone()
}

async fn a_basket_reads_back_exactly_as_the_command_api_answered(app: TestApp) {
    let owner = user("trader@example.com");
    let created = app
        .post(
            "/baskets",
            &owner,
            json!({
                "name": "My straddles",
                "description": "Weekly",
                "category": "INCOME",
                "strategies": [{
                    "name": "Short straddle",
                    "underlying": "NIFTY",
                    "product": "MIS",
                    "entry_time": "09:20",
                    "exit_time": "15:15",
                    "trading_days": ["MON", "WED"],
                    "stop_loss_pct": 27.5,
                    "legs": [
                        {"action": "SELL", "option_type": "CE", "strike": "ATM+1", "expiry": "WEEKLY", "lots": 2}
                    ]
                }]
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.body["basket_id"].as_str().unwrap().to_string();
    app.seed_basket(&BasketSeed {
        basket_id: id.clone(),
        name: "My straddles".into(),
        strategies: created_strategies(&app, &id).await,
        revision: 1,
        ..BasketSeed::basket(&app, "trader@example.com", "My straddles")
    })
    .await;

    let read = app.get(&format!("/baskets/{id}"), &owner).await;
    let body = read.ok();
    assert_eq!(body["strategies"], created.body["strategies"]);
    assert_eq!(body["basket_id"], id.as_str());
    assert_eq!(body["owner_id"], user_id("trader@example.com").as_str());
    assert_eq!(body["is_template"], false);
    assert!(body["marketplace"].is_null());
    for field in [
        "basket_id",
        "owner_id",
        "name",
        "description",
        "category",
        "strategies",
        "revision",
        "is_template",
        "marketplace",
        "created_at",
        "updated_at",
    ] {
        assert!(
            created.body.get(field).is_some() && body.get(field).is_some(),
            "{field}"
        );
    }
}

async fn baskets_lists_only_the_callers_own_newest_first(app: TestApp) {
    let first = BasketSeed::basket(&app, "a@example.com", "First");
    let second = BasketSeed::basket(&app, "a@example.com", "Second");
    let others = BasketSeed::basket(&app, "b@example.com", "Others");
    let published = BasketSeed::template(&app, "Admin's template");
    for b in [&first, &second, &others, &published] {
        app.seed_basket(b).await;
    }
    let list = app.get("/baskets", &user("a@example.com")).await;
    assert_eq!(
        list.ids("baskets", "basket_id"),
        vec![second.basket_id.clone(), first.basket_id.clone()]
    );
    assert_eq!(
        list.body["baskets"][0]["strategies"][0]["legs"][0]["lots"],
        3
    );
    assert!(list.body["next_cursor"].is_null());

    // The admin's list carries the marketplace part of published baskets.
    let admins = app.get("/baskets", &admin()).await;
    assert_eq!(
        admins.ids("baskets", "basket_id"),
        vec![published.basket_id.clone()]
    );
    let marketplace = &admins.body["baskets"][0]["marketplace"];
    assert_eq!(marketplace["template_id"], published.basket_id.as_str());
    assert_eq!(marketplace["enabled"], true);
    assert_eq!(marketplace["pricing"]["type"], "PAID");
    assert_eq!(marketplace["tags"], json!(["NIFTY", "WEEKLY"]));
}

async fn someone_elses_basket_is_404_and_partners_are_403(app: TestApp) {
    let theirs = BasketSeed::basket(&app, "b@example.com", "Theirs");
    app.seed_basket(&theirs).await;
    let path = format!("/baskets/{}", theirs.basket_id);
    app.get(&path, &user("a@example.com"))
        .await
        .assert_problem(404, "not_found");
    app.get(&path, &admin())
        .await
        .assert_problem(404, "not_found");
    app.get(&path, &user("b@example.com")).await.ok();
    app.get("/baskets/12345", &user("b@example.com"))
        .await
        .assert_problem(404, "not_found");
    let (partner, _) = app.partner("ZEBU", &[], None).await;
    app.get("/baskets", &partner)
        .await
        .assert_problem(403, "forbidden");
}

async fn basket_pages_never_repeat_or_skip_while_baskets_are_created(app: TestApp) {
    let mut existing = Vec::new();
    for i in 0..5 {
        let b = BasketSeed::basket(&app, "a@example.com", &format!("B{i}"));
        app.seed_basket(&b).await;
        existing.push(b.basket_id);
    }
    let owner = user("a@example.com");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/baskets?limit=2".to_string(),
            Some(c) => format!("/baskets?limit=2&cursor={c}"),
        };
        let page = app.get(&path, &owner).await;
        seen.extend(page.ids("baskets", "basket_id"));
        app.seed_basket(&BasketSeed::basket(&app, "a@example.com", "New"))
            .await;
        match page.next_cursor() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    existing.reverse();
    assert_eq!(seen, existing);
}
