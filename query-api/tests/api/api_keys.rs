//! Partner keys, admin view.

use serde_json::{json, Value};

use crate::helpers::{admin, user, Arg, TestApp};
use crate::on_every_backend;

on_every_backend!(
    admins_read_keys_as_the_command_api_renders_them_with_usage_and_no_secret,
    keys_are_admin_only_filterable_and_paged,
);

/// Writes the `rm_partner_keys` row the projector would write for a key the
/// command API answered `created` for.
pub(crate) async fn seed_key(app: &TestApp, created: &Value, position: i64) {
    let pct = |v: &Value| (v.as_f64().unwrap() * 100.0).round() as i64;
    app.exec(
        "INSERT INTO rm_partner_keys (api_key_id, partner_id, api_key, partner_name, \
         partner_type, broker_id, status, platform_bps, partner_bps, permissions, rate_limits, \
         branding, issued_at, rotated_at, revoked_at, issued_position) VALUES ($1, $2, $3, $4, \
         $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        vec![
            Arg::T(created["api_key_id"].as_str().unwrap().into()),
            Arg::T(created["partner_id"].as_str().unwrap().into()),
            Arg::T(created["api_key"].as_str().unwrap().into()),
            Arg::T(created["partner_name"].as_str().unwrap().into()),
            Arg::T(created["partner_type"].as_str().unwrap().into()),
            Arg::T(created["broker_id"].as_str().unwrap().into()),
            Arg::T(created["status"].as_str().unwrap().into()),
            Arg::I(pct(&created["revenue_share"]["platform_percentage"])),
            Arg::I(pct(&created["revenue_share"]["partner_percentage"])),
            Arg::T(created["permissions"].to_string()),
            Arg::T(created["rate_limits"].to_string()),
            Arg::T(created["branding"].to_string()),
            Arg::T(created["issued_at"].as_str().unwrap().into()),
            Arg::N,
            Arg::N,
            Arg::I(position),
        ],
    )
    .await;
}

async fn create_key(app: &TestApp, partner_id: &str, partner_pct: f64) -> Value {
    let created = app
        .post(
            "/admin/partner-api-keys",
            &admin(),
            json!({
                "partner_id": partner_id,
                "partner_name": format!("{partner_id} Broking"),
                "partner_type": "BROKER",
                "broker_id": partner_id.to_lowercase(),
                "revenue_share": {
                    "platform_percentage": 100.0 - partner_pct,
                    "partner_percentage": partner_pct
                },
                "permissions": ["marketplace:read", "ledger:read"],
                "rate_limits": {"requests_per_minute": 60, "requests_per_day": 5000},
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.body
}

async fn admins_read_keys_as_the_command_api_renders_them_with_usage_and_no_secret(app: TestApp) {
    let created = create_key(&app, "ZEBU", 27.5).await;
    seed_key(&app, &created, app.next_position()).await;
    let id = created["api_key_id"].as_str().unwrap();

    let fresh = app
        .get(&format!("/admin/partner-api-keys/{id}"), &admin())
        .await;
    let body = fresh.ok();
    let mut expected = created.clone();
    let map = expected.as_object_mut().unwrap();
    map.remove("api_secret");
    for (field, value) in map.iter() {
        assert_eq!(&body[field], value, "{field}");
    }
    assert!(body.get("api_secret").is_none());
    assert!(!fresh.text.contains("sk_"), "{}", fresh.text);
    assert!(body["last_used_at"].is_null());
    assert_eq!(body["usage"], json!({"request_count": 0}));
    assert_eq!(body["revenue_share"]["partner_percentage"], 27.5);

    app.exec(
        "INSERT INTO partner_key_usage (api_key_id, last_used_at, request_count) \
         VALUES ($1, $2, $3)",
        vec![
            Arg::T(id.into()),
            Arg::T("2026-11-21T09:00:00.000000Z".into()),
            Arg::I(42),
        ],
    )
    .await;
    let used = app
        .get(&format!("/admin/partner-api-keys/{id}"), &admin())
        .await;
    assert_eq!(used.ok()["last_used_at"], "2026-11-21T09:00:00.000000Z");
    assert_eq!(used.body["usage"]["request_count"], 42);

    app.get(
        &format!("/admin/partner-api-keys/{}", uuid::Uuid::now_v7()),
        &admin(),
    )
    .await
    .assert_problem(404, "not_found");
    app.get("/admin/partner-api-keys/pk_zebu_live_x", &admin())
        .await
        .assert_problem(404, "not_found");
}

async fn keys_are_admin_only_filterable_and_paged(app: TestApp) {
    let zebu = create_key(&app, "ZEBU", 30.0).await;
    let angel = create_key(&app, "ANGEL", 25.0).await;
    let upstox = create_key(&app, "UPSTOX", 20.0).await;
    for k in [&zebu, &angel, &upstox] {
        seed_key(&app, k, app.next_position()).await;
    }
    let list = app.get("/admin/partner-api-keys", &admin()).await;
    let ids = list.ids("api_keys", "api_key_id");
    let newest_first: Vec<String> = [&upstox, &angel, &zebu]
        .iter()
        .map(|k| k["api_key_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, newest_first);
    assert!(!list.text.contains("sk_"));

    let paged = app
        .all_pages("/admin/partner-api-keys?", &admin(), "api_keys", 2)
        .await;
    assert_eq!(paged.len(), 3);
    let angel_only = app
        .get("/admin/partner-api-keys?partner_id=ANGEL", &admin())
        .await;
    assert_eq!(
        angel_only.ids("api_keys", "api_key_id"),
        vec![angel["api_key_id"].as_str().unwrap().to_string()]
    );
    let revoked = app
        .get("/admin/partner-api-keys?status=REVOKED", &admin())
        .await;
    assert!(revoked.ids("api_keys", "api_key_id").is_empty());

    app.get("/admin/partner-api-keys", &user("u@example.com"))
        .await
        .assert_problem(403, "forbidden");
    let (partner, _) = app.partner("KITE", &[], None).await;
    app.get("/admin/partner-api-keys", &partner)
        .await
        .assert_problem(403, "forbidden");
}
