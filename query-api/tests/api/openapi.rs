//! Real answers of every query have exactly the shape the OpenAPI document
//! gives them: each route is called over HTTP (read models seeded as the
//! projectors write them) and its body checked against the documented
//! schema of its status, error bodies included.

use std::collections::BTreeSet;

use basketry_command_api::openapi::shape;
use basketry_query_api::openapi::QueryApiDoc;
use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::api_keys::seed_key;
use crate::helpers::{
    admin, auditor, executor, user, BasketSeed, Cred, Resp, SubscriptionSeed, TestApp,
};
use crate::on_every_backend;

on_every_backend!(
    every_query_answers_the_documented_shape,
    error_answers_are_documented_problems,
);

/// Checks answers against the document; remembers the operations seen.
struct Checker {
    doc: Value,
    seen: BTreeSet<String>,
}

impl Checker {
    fn new() -> Self {
        Self {
            doc: serde_json::to_value(QueryApiDoc::openapi()).expect("document"),
            seen: BTreeSet::new(),
        }
    }

    fn check(&mut self, template: &str, resp: &Resp, status: u16) {
        assert_eq!(resp.status, status, "GET {template}: {}", resp.text);
        let media_type = if status >= 400 {
            "application/problem+json"
        } else {
            "application/json"
        };
        assert_eq!(
            resp.header("content-type"),
            Some(media_type),
            "GET {template}"
        );
        if let Err(e) = shape::check_response(&self.doc, "GET", template, status, &resp.body) {
            panic!("{e}");
        }
        if status < 400 {
            self.seen.insert(template.to_string());
        }
    }
}

fn documented_paths(doc: &Value) -> BTreeSet<String> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect()
}

async fn every_query_answers_the_documented_shape(app: TestApp) {
    let mut c = Checker::new();
    let owner = "asha@example.com";

    let mut template = BasketSeed::template(&app, "Nifty weekly income");
    template.performance_metrics = Some(json!({"cagr_pct": 12.5, "max_drawdown_pct": 8}));
    app.seed_basket(&template).await;
    let free = BasketSeed {
        pricing_type: "FREE".into(),
        monthly_fee: 0,
        ..BasketSeed::template(&app, "Free hedge")
    };
    app.seed_basket(&free).await;
    let mine = BasketSeed::basket(&app, owner, "My own basket");
    app.seed_basket(&mine).await;
    let t = &template.basket_id;

    // The marketplace, as a person (previews) and as the admin (in full).
    let r = app
        .get("/marketplace/templates?sort=newest&limit=1", &user(owner))
        .await;
    c.check("/marketplace/templates", &r, 200);
    assert!(r.body["next_cursor"].is_string(), "{}", r.text);
    let r = app
        .get(&format!("/marketplace/templates/{t}"), &user(owner))
        .await;
    c.check("/marketplace/templates/{id}", &r, 200);
    assert!(r.body["strategies"][0].get("legs").is_none());
    let r = app
        .get(&format!("/marketplace/templates/{t}"), &admin())
        .await;
    c.check("/marketplace/templates/{id}", &r, 200);
    assert!(r.body["strategies"][0]["legs"].is_array());
    let r = app.get("/admin/marketplace/templates", &admin()).await;
    c.check("/admin/marketplace/templates", &r, 200);

    // A person's baskets: never published, `marketplace` is null.
    let r = app.get("/baskets", &user(owner)).await;
    c.check("/baskets", &r, 200);
    let r = app
        .get(&format!("/baskets/{}", mine.basket_id), &user(owner))
        .await;
    c.check("/baskets/{basket_id}", &r, 200);
    assert!(r.body["marketplace"].is_null());
    let r = app
        .get(&format!("/baskets/{}", template.basket_id), &admin())
        .await;
    c.check("/baskets/{basket_id}", &r, 200);
    assert!(r.body["marketplace"].is_object());

    // Subscriptions of a person and of a partner.
    let direct = SubscriptionSeed::new(&app, owner, t);
    app.seed_subscription(&direct).await;
    let cancelled = SubscriptionSeed {
        status: "CANCELLED".into(),
        ..SubscriptionSeed::new(&app, owner, &free.basket_id)
    };
    app.seed_subscription(&cancelled).await;
    let created = app
        .post(
            "/admin/partner-api-keys",
            &admin(),
            json!({
                "partner_id": "ZEBU",
                "partner_name": "Zebu Broking",
                "partner_type": "BROKER",
                "broker_id": "zebu",
                "revenue_share": {"platform_percentage": 72.5, "partner_percentage": 27.5},
                "permissions": ["marketplace:read", "subscriptions:manage", "ledger:read"],
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    seed_key(&app, &created.body, app.next_position()).await;
    let zebu = Cred::Partner {
        key: created.body["api_key"].as_str().expect("key").into(),
        secret: created.body["api_secret"].as_str().expect("secret").into(),
    };
    let customer = SubscriptionSeed {
        partner_id: Some("ZEBU".into()),
        ..SubscriptionSeed::new(&app, "ravi@example.com", t)
    };
    app.seed_subscription(&customer).await;

    let r = app
        .get("/user/subscriptions?status=active", &user(owner))
        .await;
    c.check("/user/subscriptions", &r, 200);
    let r = app.get("/user/subscriptions", &user(owner)).await;
    c.check("/user/subscriptions", &r, 200);
    let r = app
        .get(
            &format!("/user/subscriptions/{}", cancelled.subscription_id),
            &user(owner),
        )
        .await;
    c.check("/user/subscriptions/{id}", &r, 200);
    assert!(r.body["next_billing_date"].is_null());
    let r = app.get("/partner/subscriptions", &zebu).await;
    c.check("/partner/subscriptions", &r, 200);
    assert!(r.header("ratelimit").is_some() && r.header("ratelimit-policy").is_some());
    let r = app
        .get(
            &format!("/partner/subscriptions/{}", customer.subscription_id),
            &zebu,
        )
        .await;
    c.check("/partner/subscriptions/{id}", &r, 200);
    let r = app
        .get(
            &format!("/execution/templates/{t}/subscribers"),
            &executor(),
        )
        .await;
    c.check("/execution/templates/{id}/subscribers", &r, 200);

    // The ledger: lines of the partner and a direct one.
    app.seed_ledger(Some("ZEBU"), "2026-10-05T09:30:00.000000Z", 99900, 2750)
        .await;
    app.seed_ledger(None, "2026-10-07T09:30:00.000000Z", 99900, 0)
        .await;
    let r = app.get("/partner/ledger?from=2026-10-01", &zebu).await;
    c.check("/partner/ledger", &r, 200);
    let csv = app
        .get_with("/partner/ledger", &zebu, &[("Accept", "text/csv")])
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        shape::response_schema(&c.doc, "GET", "/partner/ledger", 200, "text/csv").is_some(),
        "CSV is documented"
    );
    let r = app.get("/partner/statements/2026-10", &zebu).await;
    c.check("/partner/statements/{month}", &r, 200);
    let r = app.get("/admin/ledger", &auditor()).await;
    c.check("/admin/ledger", &r, 200);
    let r = app.get("/admin/ledger?partner_id=nobody", &admin()).await;
    c.check("/admin/ledger", &r, 200);
    assert!(r.body["totals"]["currency"].is_null());

    // Partner keys.
    let r = app.get("/admin/partner-api-keys", &admin()).await;
    c.check("/admin/partner-api-keys", &r, 200);
    let key_id = created.body["api_key_id"].as_str().expect("id");
    let r = app
        .get(&format!("/admin/partner-api-keys/{key_id}"), &admin())
        .await;
    c.check("/admin/partner-api-keys/{api_key_id}", &r, 200);

    // The log (the key's creation put events in it).
    let r = app.get("/audit/events?limit=2", &auditor()).await;
    c.check("/audit/events", &r, 200);
    let stream = r.body["events"][0]["stream_id"]
        .as_str()
        .expect("an event")
        .to_string();
    let r = app.get(&format!("/audit/streams/{stream}"), &admin()).await;
    c.check("/audit/streams/{stream_id}", &r, 200);

    // The plan of the minute the seeded template's strategy enters (09:20
    // IST on a Monday; execution.rs checks full plans against the document).
    let r = app
        .get(
            "/execution/plan?at=2026-11-23T09:20:00%2B05:30",
            &executor(),
        )
        .await;
    c.check("/execution/plan", &r, 200);

    let missing: Vec<_> = documented_paths(&c.doc)
        .difference(&c.seen)
        .cloned()
        .collect();
    assert!(missing.is_empty(), "queries not exercised: {missing:?}");
}

async fn error_answers_are_documented_problems(app: TestApp) {
    let mut c = Checker::new();
    let r = app.get("/baskets", &Cred::None).await;
    c.check("/baskets", &r, 401);
    let r = app
        .get("/admin/partner-api-keys", &user("x@example.com"))
        .await;
    c.check("/admin/partner-api-keys", &r, 403);
    let r = app
        .get(
            "/marketplace/templates/0192f3a4-5b6c-7d8e-9f00-112233445566",
            &user("x@example.com"),
        )
        .await;
    c.check("/marketplace/templates/{id}", &r, 404);
    let r = app
        .get(
            "/marketplace/templates?categroy=INCOME",
            &user("x@example.com"),
        )
        .await;
    c.check("/marketplace/templates", &r, 400);
    let r = app
        .get("/marketplace/templates?limit=1000", &user("x@example.com"))
        .await;
    c.check("/marketplace/templates", &r, 422);
    assert_eq!(r.body["errors"][0]["field"], "limit");
    let r = app.get("/partner/statements/2026-13", &admin()).await;
    c.check("/partner/statements/{month}", &r, 403);
    // A consistency token the read models never reach.
    let r = app
        .get_with(
            "/baskets",
            &user("x@example.com"),
            &[("X-Consistency-Token", "999999.999999")],
        )
        .await;
    c.check("/baskets", &r, 503);
    assert_eq!(r.body["code"], "consistency_timeout");
    assert!(r.header("retry-after").is_some());
}
