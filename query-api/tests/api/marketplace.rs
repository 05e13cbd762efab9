//! Browsing, template details and the admin's templates.

use serde_json::json;

use crate::helpers::{admin, admin_id, executor, user, user_id, Arg, BasketSeed, TestApp};
use crate::on_every_backend;

on_every_backend!(
    browse_lists_public_enabled_templates_with_the_item_shape,
    browse_filters_by_category_difficulty_tag_pricing_and_name,
    browse_sorts_by_popularity_newest_and_price_with_unique_tie_breaks,
    newest_pages_never_repeat_or_skip_while_templates_are_published,
    template_details_show_legs_only_to_the_owner_admins_and_executors,
    details_render_previews_for_rows_projected_before_they_were_stored,
    disabled_and_unpublished_templates_are_hidden_but_private_ones_are_served_by_id,
    partners_browse_only_with_marketplace_read_and_get_rate_limit_headers,
    admins_list_their_own_templates_enabled_or_not,
);

async fn browse_lists_public_enabled_templates_with_the_item_shape(app: TestApp) {
    let public = BasketSeed {
        subscriber_count: 7,
        ..BasketSeed::template(&app, "Nifty weekly income")
    };
    app.seed_basket(&public).await;
    let private = BasketSeed {
        visibility: "PRIVATE".into(),
        ..BasketSeed::template(&app, "Private")
    };
    app.seed_basket(&private).await;
    let disabled = BasketSeed {
        enabled: false,
        ..BasketSeed::template(&app, "Disabled")
    };
    app.seed_basket(&disabled).await;
    app.seed_basket(&BasketSeed::basket(&app, "u@example.com", "Mine"))
        .await;

    let list = app
        .get("/marketplace/templates", &user("u@example.com"))
        .await;
    assert_eq!(list.header("content-type"), Some("application/json"));
    assert_eq!(
        list.ids("templates", "template_id"),
        vec![public.basket_id.clone()]
    );
    assert!(list.body["next_cursor"].is_null());
    let item = &list.body["templates"][0];
    assert_eq!(
        item,
        &json!({
            "template_id": public.basket_id,
            "basket_id": public.basket_id,
            "name": "Nifty weekly income",
            "description": "Nifty weekly income description",
            "category": "INCOME",
            "difficulty_level": "BEGINNER",
            "tags": ["NIFTY", "WEEKLY"],
            "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
            "visibility": "PUBLIC",
            "enabled": true,
            "is_template": true,
            "subscriber_count": 7,
            "strategy_count": 1,
            "basket_revision": 2,
            "published_at": "2026-11-03T10:00:00.000000Z",
        })
    );
}

async fn browse_filters_by_category_difficulty_tag_pricing_and_name(app: TestApp) {
    let income = BasketSeed::template(&app, "Nifty Weekly 50% Income");
    let hedge = BasketSeed {
        category: "HEDGING".into(),
        difficulty_level: "ADVANCED".into(),
        pricing_type: "FREE".into(),
        monthly_fee: 0,
        tags: vec!["BANKNIFTY".into()],
        ..BasketSeed::template(&app, "Bank hedge 50 income")
    };
    for b in [&income, &hedge] {
        app.seed_basket(b).await;
    }
    let u = user("u@example.com");
    let ids = |path: &'static str| {
        let app = &app;
        let u = u.clone();
        async move { app.get(path, &u).await.ids("templates", "template_id") }
    };
    assert_eq!(
        ids("/marketplace/templates?category=hedging").await,
        vec![hedge.basket_id.clone()]
    );
    assert_eq!(
        ids("/marketplace/templates?difficulty_level=BEGINNER").await,
        vec![income.basket_id.clone()]
    );
    assert_eq!(
        ids("/marketplace/templates?tag=WEEKLY").await,
        vec![income.basket_id.clone()]
    );
    assert_eq!(
        ids("/marketplace/templates?pricing_type=FREE").await,
        vec![hedge.basket_id.clone()]
    );
    // Case-insensitive substring; `%` and `_` match only themselves.
    assert_eq!(
        ids("/marketplace/templates?q=WEEKLY").await,
        vec![income.basket_id.clone()]
    );
    assert_eq!(
        ids("/marketplace/templates?q=50%25").await,
        vec![income.basket_id.clone()]
    );
    assert_eq!(
        ids("/marketplace/templates?q=50_").await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids("/marketplace/templates?q=income&category=INCOME&tag=NIFTY&pricing_type=paid").await,
        vec![income.basket_id.clone()]
    );
    app.get("/marketplace/templates?difficulty_level=EASY", &u)
        .await
        .assert_problem(422, "validation_failed");
    app.get("/marketplace/templates?sort=cheapest", &u)
        .await
        .assert_problem(422, "validation_failed");
}

async fn browse_sorts_by_popularity_newest_and_price_with_unique_tie_breaks(app: TestApp) {
    // Published in this order: a, b, c, d.
    let a = BasketSeed {
        subscriber_count: 5,
        monthly_fee: 50000,
        ..BasketSeed::template(&app, "A")
    };
    let b = BasketSeed {
        subscriber_count: 9,
        monthly_fee: 99900,
        ..BasketSeed::template(&app, "B")
    };
    let c = BasketSeed {
        subscriber_count: 5,
        monthly_fee: 50000,
        ..BasketSeed::template(&app, "C")
    };
    let d = BasketSeed {
        subscriber_count: 1,
        pricing_type: "FREE".into(),
        monthly_fee: 0,
        ..BasketSeed::template(&app, "D")
    };
    for t in [&a, &b, &c, &d] {
        app.seed_basket(t).await;
    }
    let u = user("u@example.com");
    let ac_by_id = {
        let mut v = vec![a.basket_id.clone(), c.basket_id.clone()];
        v.sort();
        v
    };

    let popular = app.get("/marketplace/templates", &u).await;
    let mut expected = vec![b.basket_id.clone()];
    expected.extend(ac_by_id.clone());
    expected.push(d.basket_id.clone());
    assert_eq!(popular.ids("templates", "template_id"), expected);
    assert_eq!(
        app.get("/marketplace/templates?sort=popular", &u)
            .await
            .ids("templates", "template_id"),
        expected
    );

    let newest = app.get("/marketplace/templates?sort=newest", &u).await;
    assert_eq!(
        newest.ids("templates", "template_id"),
        vec![
            d.basket_id.clone(),
            c.basket_id.clone(),
            b.basket_id.clone(),
            a.basket_id.clone()
        ]
    );

    let price = app.get("/marketplace/templates?sort=price", &u).await;
    let mut expected = vec![d.basket_id.clone()];
    expected.extend(ac_by_id);
    expected.push(b.basket_id.clone());
    assert_eq!(price.ids("templates", "template_id"), expected);

    // Paging one by one gives the same order as one page, for every sort.
    for sort in ["popular", "newest", "price"] {
        let one_page: Vec<String> = app
            .get(&format!("/marketplace/templates?sort={sort}"), &u)
            .await
            .ids("templates", "template_id");
        let paged: Vec<String> = app
            .all_pages(
                &format!("/marketplace/templates?sort={sort}"),
                &u,
                "templates",
                1,
            )
            .await
            .iter()
            .map(|t| t["template_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(paged, one_page, "sort={sort}");
    }
    // A cursor of one sort is refused by another.
    let first = app
        .get("/marketplace/templates?sort=newest&limit=1", &u)
        .await;
    let cursor = first.next_cursor().unwrap();
    app.get(
        &format!("/marketplace/templates?sort=price&cursor={cursor}"),
        &u,
    )
    .await
    .assert_problem(400, "invalid_cursor");
}

async fn newest_pages_never_repeat_or_skip_while_templates_are_published(app: TestApp) {
    let mut existing = Vec::new();
    for i in 0..5 {
        let t = BasketSeed::template(&app, &format!("T{i}"));
        app.seed_basket(&t).await;
        existing.push(t.basket_id);
    }
    let u = user("u@example.com");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/marketplace/templates?sort=newest&limit=2".to_string(),
            Some(c) => format!("/marketplace/templates?sort=newest&limit=2&cursor={c}"),
        };
        let page = app.get(&path, &u).await;
        seen.extend(page.ids("templates", "template_id"));
        // A template is published between every two page requests.
        app.seed_basket(&BasketSeed::template(&app, "Arrived later"))
            .await;
        match page.next_cursor() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    existing.reverse();
    assert_eq!(seen, existing, "every existing template exactly once");
}

async fn template_details_show_legs_only_to_the_owner_admins_and_executors(app: TestApp) {
    let t = BasketSeed {
        performance_metrics: Some(json!({"cagr_pct": 18.5, "max_drawdown_pct": 7.2})),
        subscriber_count: 3,
        ..BasketSeed::template(&app, "Nifty weekly income")
    };
    app.seed_basket(&t).await;
    let path = format!("/marketplace/templates/{}", t.basket_id);

    let seen_by_user = app.get(&path, &user("u@example.com")).await;
    let body = seen_by_user.ok();
    assert_eq!(body["template_id"], t.basket_id.as_str());
    assert_eq!(body["subscriber_count"], 3);
    assert_eq!(body["basket_revision"], 2);
    assert_eq!(body["pricing"]["monthly_fee"], 99900);
    assert_eq!(body["performance_metrics"]["cagr_pct"], 18.5);
    let preview = &body["strategies"][0];
    assert_eq!(
        preview,
        &json!({
            "strategy_id": t.strategies[0]["strategy_id"],
            "name": "Short straddle",
            "underlying": "NIFTY",
            "product": "MIS",
            "entry_time": "09:20",
            "exit_time": "15:15",
            "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
            "leg_count": 2,
        })
    );

    for privileged in [admin(), executor()] {
        let full = app.get(&path, &privileged).await;
        let strategy = &full.ok()["strategies"][0];
        assert_eq!(strategy["legs"].as_array().unwrap().len(), 2);
        assert_eq!(strategy["legs"][0]["lots"], 3);
        assert_eq!(strategy["stop_loss_pct"], 25);
        assert_eq!(strategy["leg_count"], 2);
    }

    // A template without metrics says so with null.
    let plain = BasketSeed::template(&app, "No metrics");
    app.seed_basket(&plain).await;
    let plain_detail = app
        .get(
            &format!("/marketplace/templates/{}", plain.basket_id),
            &user("u@example.com"),
        )
        .await;
    assert!(plain_detail.ok()["performance_metrics"].is_null());
}

async fn details_render_previews_for_rows_projected_before_they_were_stored(app: TestApp) {
    let stored = BasketSeed::template(&app, "Stored previews");
    let older = BasketSeed::template(&app, "Projected before previews");
    app.seed_basket(&stored).await;
    app.seed_basket(&older).await;
    app.exec(
        "UPDATE rm_baskets SET strategy_previews = NULL WHERE basket_id = $1",
        vec![Arg::T(older.basket_id.clone())],
    )
    .await;
    let reader = user("u@example.com");
    let a = app
        .get(
            &format!("/marketplace/templates/{}", stored.basket_id),
            &reader,
        )
        .await;
    let b = app
        .get(
            &format!("/marketplace/templates/{}", older.basket_id),
            &reader,
        )
        .await;
    assert_eq!(a.ok()["strategies"][0]["leg_count"], 2);
    let strip_id = |v: &serde_json::Value| {
        let mut v = v["strategies"].clone();
        v[0]["strategy_id"] = serde_json::Value::Null;
        v
    };
    assert_eq!(strip_id(a.ok()), strip_id(b.ok()));
    assert!(b.ok()["strategies"][0].get("legs").is_none());
}

async fn disabled_and_unpublished_templates_are_hidden_but_private_ones_are_served_by_id(
    app: TestApp,
) {
    let disabled = BasketSeed {
        enabled: false,
        ..BasketSeed::template(&app, "Disabled")
    };
    let private = BasketSeed {
        visibility: "PRIVATE".into(),
        ..BasketSeed::template(&app, "Private")
    };
    let draft = BasketSeed::basket(&app, "owner@example.com", "Draft");
    for b in [&disabled, &private, &draft] {
        app.seed_basket(b).await;
    }
    let u = user("u@example.com");
    let path = |id: &str| format!("/marketplace/templates/{id}");

    app.get(&path(&disabled.basket_id), &u)
        .await
        .assert_problem(404, "not_found");
    app.get(&path(&disabled.basket_id), &admin()).await.ok();
    app.get(&path(&draft.basket_id), &u)
        .await
        .assert_problem(404, "not_found");
    app.get(&path(&draft.basket_id), &admin())
        .await
        .assert_problem(404, "not_found");
    let own = app
        .get(&path(&draft.basket_id), &user("owner@example.com"))
        .await;
    assert!(own.ok()["pricing"].is_null());
    assert_eq!(own.body["strategies"][0]["legs"][0]["lots"], 3);

    let by_id = app.get(&path(&private.basket_id), &u).await;
    assert_eq!(by_id.ok()["visibility"], "PRIVATE");

    app.get(&path("not-a-uuid"), &u)
        .await
        .assert_problem(404, "not_found");
    app.get(&path(&uuid::Uuid::now_v7().to_string()), &u)
        .await
        .assert_problem(404, "not_found");
    // Upper-case spelling of an id names the same template.
    app.get(&path(&private.basket_id.to_uppercase()), &u)
        .await
        .ok();
}

async fn partners_browse_only_with_marketplace_read_and_get_rate_limit_headers(app: TestApp) {
    let t = BasketSeed::template(&app, "Nifty weekly income");
    app.seed_basket(&t).await;
    let (reader, _) = app.partner("ZEBU", &["marketplace:read"], None).await;
    let (no_read, _) = app.partner("ANGEL", &["ledger:read"], None).await;

    let list = app.get("/marketplace/templates", &reader).await;
    assert_eq!(
        list.ids("templates", "template_id"),
        vec![t.basket_id.clone()]
    );
    assert_eq!(
        list.header("ratelimit-policy"),
        Some("\"minute\";q=100;w=60, \"day\";q=10000;w=86400")
    );
    assert!(list
        .header("ratelimit")
        .unwrap()
        .starts_with("\"minute\";r="));
    let detail = app
        .get(&format!("/marketplace/templates/{}", t.basket_id), &reader)
        .await;
    assert!(detail.ok()["strategies"][0].get("legs").is_none());

    let refused = app.get("/marketplace/templates", &no_read).await;
    refused.assert_problem(403, "missing_permission");
    assert!(refused.header("ratelimit").is_some());
    app.get(&format!("/marketplace/templates/{}", t.basket_id), &no_read)
        .await
        .assert_problem(403, "missing_permission");
}

async fn admins_list_their_own_templates_enabled_or_not(app: TestApp) {
    let enabled = BasketSeed::template(&app, "Enabled");
    let disabled = BasketSeed {
        enabled: false,
        ..BasketSeed::template(&app, "Disabled")
    };
    let draft = BasketSeed {
        owner_id: admin_id(),
        ..BasketSeed::basket(&app, "admin@basketry.dev", "Draft")
    };
    let other_admins = BasketSeed {
        owner_id: user_id("other-admin@basketry.dev"),
        ..BasketSeed::template(&app, "Someone else's")
    };
    for b in [&enabled, &disabled, &draft, &other_admins] {
        app.seed_basket(b).await;
    }
    let list = app.get("/admin/marketplace/templates", &admin()).await;
    assert_eq!(
        list.ids("templates", "template_id"),
        vec![disabled.basket_id.clone(), enabled.basket_id.clone()]
    );
    assert_eq!(list.body["templates"][0]["enabled"], false);
    assert_eq!(list.body["templates"][1]["enabled"], true);
    let paged = app
        .all_pages("/admin/marketplace/templates?", &admin(), "templates", 1)
        .await;
    assert_eq!(paged.len(), 2);

    app.get("/admin/marketplace/templates", &user("u@example.com"))
        .await
        .assert_problem(403, "forbidden");
    app.get("/admin/marketplace/templates", &executor())
        .await
        .assert_problem(403, "forbidden");
}
