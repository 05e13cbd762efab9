//! Users' and partners' subscriptions, and template subscribers.

use serde_json::json;

use crate::helpers::{admin, executor, user, user_id, BasketSeed, SubscriptionSeed, TestApp};
use crate::on_every_backend;

on_every_backend!(
    users_list_their_own_subscriptions_filtered_by_status,
    a_user_reads_one_subscription_with_its_history_and_not_anothers,
    partners_see_only_the_subscriptions_they_created,
    executors_page_through_active_subscribers_with_allocations,
);

async fn users_list_their_own_subscriptions_filtered_by_status(app: TestApp) {
    let t = BasketSeed::template(&app, "Nifty weekly income");
    app.seed_basket(&t).await;
    let active = SubscriptionSeed::new(&app, "u@example.com", &t.basket_id);
    let cancelled = SubscriptionSeed {
        status: "CANCELLED".into(),
        ..SubscriptionSeed::new(&app, "u@example.com", &t.basket_id)
    };
    let via_partner = SubscriptionSeed {
        partner_id: Some("ZEBU".into()),
        ..SubscriptionSeed::new(&app, "u@example.com", &t.basket_id)
    };
    let someone_else = SubscriptionSeed::new(&app, "v@example.com", &t.basket_id);
    for s in [&active, &cancelled, &via_partner, &someone_else] {
        app.seed_subscription(s).await;
    }
    let u = user("u@example.com");
    let all = app.get("/user/subscriptions", &u).await;
    assert_eq!(
        all.ids("subscriptions", "subscription_id"),
        vec![
            via_partner.subscription_id.clone(),
            cancelled.subscription_id.clone(),
            active.subscription_id.clone()
        ]
    );
    let first = &all.body["subscriptions"][2];
    assert_eq!(first["template_name"], "Nifty weekly income");
    assert_eq!(first["template_id"], t.basket_id.as_str());
    assert_eq!(first["user_id"], user_id("u@example.com").as_str());
    assert_eq!(first["status"], "ACTIVE");
    assert_eq!(first["next_billing_date"], "2026-12-05");
    assert_eq!(
        first["pricing"],
        json!({"type": "PAID", "monthly_fee": 99900, "currency": "INR"})
    );
    assert_eq!(first["broker_allocations"], active.allocations);
    assert!(all.body["subscriptions"][1]["next_billing_date"].is_null());

    let cancelled_only = app.get("/user/subscriptions?status=CANCELLED", &u).await;
    assert_eq!(
        cancelled_only.ids("subscriptions", "subscription_id"),
        vec![cancelled.subscription_id.clone()]
    );
    let active_only = app.get("/user/subscriptions?status=active", &u).await;
    assert_eq!(active_only.ids("subscriptions", "subscription_id").len(), 2);
    app.get("/user/subscriptions?status=EXPIRED", &u)
        .await
        .assert_problem(422, "validation_failed");

    let paged = app
        .all_pages("/user/subscriptions?", &u, "subscriptions", 1)
        .await;
    assert_eq!(paged.len(), 3);
}

async fn a_user_reads_one_subscription_with_its_history_and_not_anothers(app: TestApp) {
    let t = BasketSeed::template(&app, "Nifty weekly income");
    app.seed_basket(&t).await;
    let mine = SubscriptionSeed::new(&app, "u@example.com", &t.basket_id);
    let theirs = SubscriptionSeed::new(&app, "v@example.com", &t.basket_id);
    app.seed_subscription(&mine).await;
    app.seed_subscription(&theirs).await;
    let u = user("u@example.com");
    let one = app
        .get(&format!("/user/subscriptions/{}", mine.subscription_id), &u)
        .await;
    let body = one.ok();
    assert_eq!(body["subscription_id"], mine.subscription_id.as_str());
    assert_eq!(body["status_history"][0]["to"], "ACTIVE");
    assert_eq!(body["broker_allocations"][0]["client_id"], "ZB1234");
    app.get(
        &format!("/user/subscriptions/{}", theirs.subscription_id),
        &u,
    )
    .await
    .assert_problem(404, "not_found");
    app.get("/user/subscriptions/nope", &u)
        .await
        .assert_problem(404, "not_found");
    let (partner, _) = app.partner("ZEBU", &[], None).await;
    app.get("/user/subscriptions", &partner)
        .await
        .assert_problem(403, "forbidden");
}

async fn partners_see_only_the_subscriptions_they_created(app: TestApp) {
    let t = BasketSeed::template(&app, "Nifty weekly income");
    app.seed_basket(&t).await;
    let (zebu, _) = app.partner("ZEBU", &[], None).await;
    let (angel, _) = app.partner("ANGEL", &[], None).await;
    let zebus = SubscriptionSeed {
        partner_id: Some("ZEBU".into()),
        ..SubscriptionSeed::new(&app, "u@example.com", &t.basket_id)
    };
    let paused = SubscriptionSeed {
        partner_id: Some("ZEBU".into()),
        status: "PAUSED".into(),
        ..SubscriptionSeed::new(&app, "w@example.com", &t.basket_id)
    };
    let angels = SubscriptionSeed {
        partner_id: Some("ANGEL".into()),
        ..SubscriptionSeed::new(&app, "v@example.com", &t.basket_id)
    };
    let direct = SubscriptionSeed::new(&app, "x@example.com", &t.basket_id);
    for s in [&zebus, &paused, &angels, &direct] {
        app.seed_subscription(s).await;
    }

    let list = app.get("/partner/subscriptions", &zebu).await;
    assert_eq!(
        list.ids("subscriptions", "subscription_id"),
        vec![
            paused.subscription_id.clone(),
            zebus.subscription_id.clone()
        ]
    );
    assert!(list.header("ratelimit-policy").is_some());
    let paused_only = app.get("/partner/subscriptions?status=PAUSED", &zebu).await;
    assert_eq!(
        paused_only.ids("subscriptions", "subscription_id"),
        vec![paused.subscription_id.clone()]
    );
    let one = app
        .get(
            &format!("/partner/subscriptions/{}", zebus.subscription_id),
            &zebu,
        )
        .await;
    assert_eq!(one.ok()["partner_id"], "ZEBU");
    for other in [&angels.subscription_id, &direct.subscription_id] {
        let refused = app
            .get(&format!("/partner/subscriptions/{other}"), &zebu)
            .await;
        refused.assert_problem(404, "not_found");
        assert!(refused.header("ratelimit").is_some());
    }
    assert_eq!(
        app.get("/partner/subscriptions", &angel)
            .await
            .ids("subscriptions", "subscription_id"),
        vec![angels.subscription_id.clone()]
    );
    app.get("/partner/subscriptions", &user("u@example.com"))
        .await
        .assert_problem(403, "forbidden");
    app.get("/partner/subscriptions", &admin())
        .await
        .assert_problem(403, "forbidden");
}

async fn executors_page_through_active_subscribers_with_allocations(app: TestApp) {
    let t = BasketSeed::template(&app, "Nifty weekly income");
    let other = BasketSeed::template(&app, "Other");
    app.seed_basket(&t).await;
    app.seed_basket(&other).await;
    let mut active = Vec::new();
    for i in 0..4 {
        let s = SubscriptionSeed::new(&app, &format!("u{i}@example.com"), &t.basket_id);
        app.seed_subscription(&s).await;
        active.push(s.subscription_id);
    }
    for status in ["PAUSED", "CANCELLED"] {
        app.seed_subscription(&SubscriptionSeed {
            status: status.into(),
            ..SubscriptionSeed::new(&app, "p@example.com", &t.basket_id)
        })
        .await;
    }
    app.seed_subscription(&SubscriptionSeed::new(
        &app,
        "o@example.com",
        &other.basket_id,
    ))
    .await;

    let path = format!("/execution/templates/{}/subscribers", t.basket_id);
    // A subscriber arrives between every two pages: oldest-first paging
    // meets the newcomers at the end and never repeats or skips anyone.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut arrived = Vec::new();
    loop {
        let url = match &cursor {
            None => format!("{path}?limit=3"),
            Some(c) => format!("{path}?limit=3&cursor={c}"),
        };
        let page = app.get(&url, &executor()).await;
        let body = page.ok();
        assert_eq!(body["template_id"], t.basket_id.as_str());
        for s in body["subscribers"].as_array().unwrap() {
            assert_eq!(s["status"], "ACTIVE");
            assert_eq!(s["broker_allocations"][0]["lot_multiplier"], 2);
            seen.push(s["subscription_id"].as_str().unwrap().to_string());
        }
        match page.next_cursor() {
            Some(c) => cursor = Some(c),
            None => break,
        }
        let s = SubscriptionSeed::new(&app, "late@example.com", &t.basket_id);
        app.seed_subscription(&s).await;
        arrived.push(s.subscription_id);
    }
    let mut expected = active.clone();
    expected.extend(arrived);
    assert_eq!(seen, expected);

    app.get(&path, &admin()).await.ok();
    app.get(&path, &user("u0@example.com"))
        .await
        .assert_problem(403, "forbidden");
    app.get(
        &format!("/execution/templates/{}/subscribers", uuid::Uuid::now_v7()),
        &executor(),
    )
    .await
    .assert_problem(404, "not_found");
}
