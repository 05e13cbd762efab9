//! Real answers of every command have exactly the shape the OpenAPI
//! document gives them: each route is exercised over HTTP and its body
//! checked against the documented schema of its status (no undocumented
//! member, every required one present, documented types and formats), and
//! so are the error bodies.

use std::collections::BTreeSet;

use basketry_command_api::openapi::{shape, CommandApiDoc};
use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::helpers::{basket_body, spawn_app, strategy_body, token, Cred, Resp};

/// Checks responses against the document and records which operations
/// were seen.
struct Checker {
    doc: Value,
    seen: BTreeSet<(String, String)>,
}

impl Checker {
    fn new() -> Self {
        Self {
            doc: serde_json::to_value(CommandApiDoc::openapi()).expect("document"),
            seen: BTreeSet::new(),
        }
    }

    /// `resp`, answered by `method template`, matches the document.
    fn check(&mut self, method: &str, template: &str, resp: &Resp) {
        let expected_type = if resp.status >= 400 {
            "application/problem+json"
        } else {
            "application/json"
        };
        assert_eq!(
            resp.header("content-type"),
            Some(expected_type),
            "{method} {template}: {}",
            resp.text
        );
        if let Err(e) = shape::check_response(&self.doc, method, template, resp.status, &resp.body)
        {
            panic!("{e}");
        }
        if resp.status < 400 {
            self.seen
                .insert((method.to_ascii_lowercase(), template.to_string()));
        }
    }

    fn documented(&self) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("item").keys() {
                ops.insert((method.clone(), path.clone()));
            }
        }
        ops
    }
}

fn id(resp: &Resp, field: &str) -> String {
    resp.body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}: {}", resp.text))
        .to_string()
}

fn expect(resp: Resp, status: u16) -> Resp {
    assert_eq!(resp.status, status, "{}", resp.text);
    resp
}

#[tokio::test]
async fn every_command_answers_the_documented_shape() {
    let app = spawn_app().await;
    let mut c = Checker::new();
    let admin = app.admin();
    let user = Cred::Jwt(token("asha@example.com", &[]));

    // Baskets: a user's basket never published has `marketplace: null`.
    let own = expect(app.post("/baskets", &user, basket_body()).await, 201);
    c.check("POST", "/baskets", &own);
    assert!(own.body["marketplace"].is_null());

    let b = expect(app.post("/baskets", &admin, basket_body()).await, 201);
    c.check("POST", "/baskets", &b);
    // The check has teeth: an undocumented member, a missing one or a
    // wrong type anywhere in the body fails it.
    for broken in [
        {
            let mut v = b.body.clone();
            v["surprise"] = json!(1);
            v
        },
        {
            let mut v = b.body.clone();
            v.as_object_mut().expect("object").remove("revision");
            v
        },
        {
            let mut v = b.body.clone();
            v["strategies"][0]["legs"][0]["lots"] = json!("3");
            v
        },
    ] {
        assert!(shape::check_response(&c.doc, "POST", "/baskets", 201, &broken).is_err());
    }
    let basket = id(&b, "basket_id");
    let r = app
        .put(
            &format!("/baskets/{basket}"),
            &admin,
            json!({"description": "Weekly straddles"}),
        )
        .await;
    c.check("PUT", "/baskets/{basket_id}", &expect(r, 200));
    let r = app
        .post(
            &format!("/baskets/{basket}/strategies"),
            &admin,
            strategy_body(),
        )
        .await;
    let added = expect(r, 201);
    c.check("POST", "/baskets/{basket_id}/strategies", &added);
    let strategy = id(&added, "strategy_id");
    let mut replaced = strategy_body();
    replaced["target_pct"] = json!(27.5);
    let r = app
        .put(
            &format!("/baskets/{basket}/strategies/{strategy}"),
            &admin,
            replaced,
        )
        .await;
    c.check(
        "PUT",
        "/baskets/{basket_id}/strategies/{strategy_id}",
        &expect(r, 200),
    );
    let r = app
        .delete(&format!("/baskets/{basket}/strategies/{strategy}"), &admin)
        .await;
    c.check(
        "DELETE",
        "/baskets/{basket_id}/strategies/{strategy_id}",
        &expect(r, 200),
    );

    // Templates.
    let template_path = format!("/admin/marketplace/templates/{basket}");
    let config = json!({
        "visibility": "PUBLIC",
        "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
        "difficulty_level": "BEGINNER",
        "tags": ["NIFTY"],
        "category": "INCOME"
    });
    let r = app.post(&template_path, &admin, config).await;
    c.check(
        "POST",
        "/admin/marketplace/templates/{basket_id}",
        &expect(r, 201),
    );
    let r = app
        .put(&template_path, &admin, json!({"tags": ["NIFTY", "WEEKLY"]}))
        .await;
    c.check(
        "PUT",
        "/admin/marketplace/templates/{basket_id}",
        &expect(r, 200),
    );

    // A free template too: its subscriptions have no first charge.
    let free = expect(app.post("/baskets", &admin, basket_body()).await, 201);
    let free = id(&free, "basket_id");
    let r = app
        .post(
            &format!("/admin/marketplace/templates/{free}"),
            &admin,
            json!({"pricing": {"type": "FREE"}}),
        )
        .await;
    expect(r, 201);

    // A person's subscriptions.
    let r = app
        .post(
            &format!("/marketplace/subscribe/{basket}"),
            &user,
            json!({"broker_allocations": [{"broker_id": "zerodha", "client_id": "AB1234", "lot_multiplier": 1.5}]}),
        )
        .await;
    let sub = expect(r, 201);
    c.check("POST", "/marketplace/subscribe/{template_id}", &sub);
    assert!(sub.body["first_charge"].is_object(), "{}", sub.text);
    let subscription = id(&sub, "subscription_id");
    let r = app
        .post(&format!("/marketplace/subscribe/{free}"), &user, json!({}))
        .await;
    let free_sub = expect(r, 201);
    c.check("POST", "/marketplace/subscribe/{template_id}", &free_sub);
    assert!(free_sub.body["first_charge"].is_null());

    let r = app
        .put(
            &format!("/user/subscriptions/{subscription}/allocations"),
            &user,
            json!({"broker_allocations": [
                {"broker_id": "zerodha", "client_id": "AB1234", "priority": 1},
                {"broker_id": "upstox", "client_id": "UP99", "lot_multiplier": "0.5", "priority": 2, "max_lots_per_order": 10}
            ]}),
        )
        .await;
    c.check(
        "PUT",
        "/user/subscriptions/{id}/allocations",
        &expect(r, 200),
    );
    for (method, action) in [("PUT", "pause"), ("PUT", "resume")] {
        let r = app
            .put(
                &format!("/user/subscriptions/{subscription}/{action}"),
                &user,
                json!({"reason": "testing"}),
            )
            .await;
        c.check(
            method,
            &format!("/user/subscriptions/{{id}}/{action}"),
            &expect(r, 200),
        );
    }
    let r = app
        .delete(&format!("/user/subscriptions/{subscription}"), &user)
        .await;
    c.check("DELETE", "/user/subscriptions/{id}", &expect(r, 200));

    // Partner keys and the partner API.
    let body = json!({
        "partner_id": "ZEBU",
        "partner_name": "Zebu Broking",
        "partner_type": "BROKER",
        "broker_id": "zebu",
        "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
        "permissions": ["marketplace:read", "marketplace:subscribe", "subscriptions:manage", "ledger:read"],
        "rate_limits": {"requests_per_minute": 1000},
        "branding": {"show_platform_branding": false, "custom_logo_url": "https://zebu.example/logo.png"}
    });
    let issued = expect(app.post("/admin/partner-api-keys", &admin, body).await, 201);
    c.check("POST", "/admin/partner-api-keys", &issued);
    let key_id = id(&issued, "api_key_id");
    let zebu = Cred::Partner {
        key: id(&issued, "api_key"),
        secret: id(&issued, "api_secret"),
    };
    let r = app
        .put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &admin,
            json!({"partner_name": "Zebu Share and Wealth"}),
        )
        .await;
    c.check(
        "PUT",
        "/admin/partner-api-keys/{api_key_id}",
        &expect(r, 200),
    );
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            json!({
                "template_id": basket,
                "user_email": "ravi@example.com",
                "broker_client_id": "ZB1234",
                "auto_link_broker": true,
                "lot_multiplier": 2
            }),
        )
        .await;
    let partner_sub = expect(r, 201);
    c.check("POST", "/partner/marketplace/subscribe", &partner_sub);
    let partner_subscription = id(&partner_sub, "subscription_id");
    for action in ["pause", "resume"] {
        let r = app
            .put(
                &format!("/partner/subscriptions/{partner_subscription}/{action}"),
                &zebu,
                json!({}),
            )
            .await;
        c.check(
            "PUT",
            &format!("/partner/subscriptions/{{id}}/{action}"),
            &expect(r, 200),
        );
    }
    let r = app
        .delete(
            &format!("/partner/subscriptions/{partner_subscription}"),
            &zebu,
        )
        .await;
    c.check("DELETE", "/partner/subscriptions/{id}", &expect(r, 200));
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            &zebu,
            json!({"template_id": free, "user_email": "meera@example.com", "auto_link_broker": false}),
        )
        .await;
    let unlinked = expect(r, 201);
    c.check("POST", "/partner/marketplace/subscribe", &unlinked);
    assert!(unlinked.body["broker_allocation"].is_null());

    // Billing, rotation, revocation, unpublishing.
    let r = app.post("/admin/billing/run", &admin, json!({})).await;
    c.check("POST", "/admin/billing/run", &expect(r, 200));
    let r = app
        .post(
            &format!("/admin/partner-api-keys/{key_id}/rotate"),
            &admin,
            json!({"grace_period_hours": 24}),
        )
        .await;
    c.check(
        "POST",
        "/admin/partner-api-keys/{api_key_id}/rotate",
        &expect(r, 200),
    );
    let r = app
        .delete(&format!("/admin/partner-api-keys/{key_id}"), &admin)
        .await;
    c.check(
        "DELETE",
        "/admin/partner-api-keys/{api_key_id}",
        &expect(r, 200),
    );
    let r = app
        .send(
            reqwest::Method::DELETE,
            &template_path,
            &admin,
            Some(json!({"reason": "retired"})),
            &[],
        )
        .await;
    c.check(
        "DELETE",
        "/admin/marketplace/templates/{basket_id}",
        &expect(r, 200),
    );

    let missing: Vec<_> = c.documented().difference(&c.seen).cloned().collect();
    assert!(missing.is_empty(), "operations not exercised: {missing:?}");
}

#[tokio::test]
async fn error_answers_are_documented_problems() {
    let app = spawn_app().await;
    let mut c = Checker::new();
    let admin = app.admin();
    let user = Cred::Jwt(token("asha@example.com", &[]));
    let template = app.paid_template().await;

    // 401, 403, 404.
    let r = app.post("/baskets", &Cred::None, basket_body()).await;
    c.check("POST", "/baskets", &expect(r, 401));
    let r = app.post("/admin/billing/run", &user, json!({})).await;
    c.check("POST", "/admin/billing/run", &expect(r, 403));
    let r = app
        .put(
            "/baskets/0192f3a4-5b6c-7d8e-9f00-112233445566",
            &admin,
            json!({"name": "x"}),
        )
        .await;
    c.check("PUT", "/baskets/{basket_id}", &expect(r, 404));

    // 422 with field errors, 400.
    let mut bad = basket_body();
    bad["strategies"][0]["legs"][0]["lots"] = json!(0);
    bad["name"] = json!("");
    let r = expect(app.post("/baskets", &admin, bad).await, 422);
    assert_eq!(
        r.body["errors"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.text
    );
    c.check("POST", "/baskets", &r);
    let r = app.post("/baskets", &admin, json!({"nmae": "typo"})).await;
    c.check("POST", "/baskets", &expect(r, 400));
    // 409 already_subscribed names the subscription.
    let first = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &user,
            json!({}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = app
        .post(
            &format!("/marketplace/subscribe/{template}"),
            &user,
            json!({}),
        )
        .await;
    let again = expect(again, 409);
    assert_eq!(again.body["subscription_id"], first.body["subscription_id"]);
    c.check("POST", "/marketplace/subscribe/{template_id}", &again);
}
