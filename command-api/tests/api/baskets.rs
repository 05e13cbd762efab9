use serde_json::json;

use crate::helpers::{basket_body, spawn_app, strategy_body, token, Cred};

fn user(email: &str) -> Cred {
    Cred::Jwt(token(email, &[]))
}

#[tokio::test]
async fn creating_a_basket_answers_201_with_its_ids_and_a_consistency_token() {
    let app = spawn_app().await;
    let r = app
        .post("/baskets", &user("asha@example.com"), basket_body())
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["basket_id"].is_string());
    assert_eq!(r.body["name"], "Nifty weekly income");
    assert_eq!(r.body["strategies"][0]["legs"][0]["lots"], 3);
    assert!(r.body["strategies"][0]["strategy_id"].is_string());
    assert_eq!(r.body["strategies"][0]["stop_loss_pct"], 25.0);
    assert!(r.header("x-consistency-token").is_some());
    assert_eq!(app.events("BasketCreated").await.len(), 1);
}

#[tokio::test]
async fn the_owner_can_rename_add_replace_and_remove_strategies() {
    let app = spawn_app().await;
    let owner = user("asha@example.com");
    let b = app.post("/baskets", &owner, basket_body()).await;
    let id = b.body["basket_id"].as_str().expect("id").to_string();

    let renamed = app
        .put(
            &format!("/baskets/{id}"),
            &owner,
            json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(renamed.body["name"], "Renamed");
    assert_eq!(renamed.body["revision"], 2);

    let added = app
        .post(
            &format!("/baskets/{id}/strategies"),
            &owner,
            strategy_body(),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    let sid = added.body["strategy_id"]
        .as_str()
        .expect("strategy_id")
        .to_string();

    let mut replacement = strategy_body();
    replacement["legs"][0]["lots"] = json!(7);
    let replaced = app
        .put(
            &format!("/baskets/{id}/strategies/{sid}"),
            &owner,
            replacement,
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    assert_eq!(replaced.body["legs"][0]["lots"], 7);

    let removed = app
        .delete(&format!("/baskets/{id}/strategies/{sid}"), &owner)
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(removed.body["strategies"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn another_user_cannot_change_a_basket_and_gets_404() {
    let app = spawn_app().await;
    let b = app
        .post("/baskets", &user("asha@example.com"), basket_body())
        .await;
    let id = b.body["basket_id"].as_str().expect("id").to_string();
    let r = app
        .put(
            &format!("/baskets/{id}"),
            &user("mallory@example.com"),
            json!({"name": "Mine"}),
        )
        .await;
    r.assert_problem(404, "not_found");
}

#[tokio::test]
async fn an_invalid_basket_is_422_with_an_error_per_violated_field() {
    let app = spawn_app().await;
    let mut body = basket_body();
    body["name"] = json!("");
    body["category"] = json!("income");
    body["strategies"][0]["legs"][1]["lots"] = json!(5000);
    body["strategies"][0]["exit_time"] = json!("09:00");
    let r = app.post("/baskets", &user("asha@example.com"), body).await;
    r.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    for f in [
        "name",
        "category",
        "strategies[0].legs[1].lots",
        "strategies[0].exit_time",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

#[tokio::test]
async fn only_admins_publish_templates_and_only_baskets_with_strategies() {
    let app = spawn_app().await;
    let config = json!({
        "visibility": "PUBLIC",
        "pricing": {"type": "FREE", "monthly_fee": 0, "currency": "INR"},
        "difficulty_level": "BEGINNER", "tags": [], "category": "INCOME"
    });
    let b = app.post("/baskets", &app.admin(), basket_body()).await;
    let id = b.body["basket_id"].as_str().expect("id").to_string();
    let by_user = app
        .post(
            &format!("/admin/marketplace/templates/{id}"),
            &user("asha@example.com"),
            config.clone(),
        )
        .await;
    by_user.assert_problem(403, "forbidden");

    let mut empty = basket_body();
    empty["strategies"] = json!([]);
    let e = app.post("/baskets", &app.admin(), empty).await;
    let empty_id = e.body["basket_id"].as_str().expect("id").to_string();
    let refused = app
        .post(
            &format!("/admin/marketplace/templates/{empty_id}"),
            &app.admin(),
            config.clone(),
        )
        .await;
    refused.assert_problem(409, "template_needs_strategy");

    let published = app
        .post(
            &format!("/admin/marketplace/templates/{id}"),
            &app.admin(),
            config,
        )
        .await;
    assert_eq!(published.status, 201, "{}", published.text);
    assert_eq!(published.body["template_id"], id.as_str());
    assert_eq!(published.body["enabled"], true);

    let updated = app
        .put(
            &format!("/admin/marketplace/templates/{id}"),
            &app.admin(),
            json!({"tags": ["HEDGED"]}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.body["tags"], json!(["HEDGED"]));

    let disabled = app
        .delete(&format!("/admin/marketplace/templates/{id}"), &app.admin())
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(disabled.body["enabled"], false);

    let subscribe = app
        .post(
            &format!("/marketplace/subscribe/{id}"),
            &user("asha@example.com"),
            json!({}),
        )
        .await;
    subscribe.assert_problem(409, "template_not_available");
}
