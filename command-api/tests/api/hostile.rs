//! Hostile input (docs/reference/api.md#request-bodies): oversized, deeply nested, badly encoded and
//! out-of-range bodies, unknown members, and injection or traversal
//! attempts in path ids, on every route family of the command API. Every
//! answer must be a 4xx problem+json with a `code` — never a 5xx — and the
//! store must be intact afterwards.
//!
//! Requests whose exact bytes matter (literal `../`, NUL, chunked bodies)
//! go over a raw TCP connection, since an HTTP client normalises them.

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{basket_body, spawn_app, strategy_body, token, Cred, Resp, TestApp};
use crate::security::assert_problem_shape;

const LIMIT: usize = 64 * 1024;

/// What the fixtures below created: one of each resource.
struct World {
    user: Cred,
    partner: Cred,
    basket_id: String,
    strategy_id: String,
    template_id: String,
    user_subscription: String,
    partner_subscription: String,
    key_id: String,
}

async fn world(app: &TestApp) -> World {
    let user = Cred::Jwt(token("asha@example.com", &[]));
    let basket = app.post("/baskets", &user, basket_body()).await;
    assert_eq!(basket.status, 201, "{}", basket.text);
    let template_id = app.paid_template().await;
    let sub = app
        .post(
            &format!("/marketplace/subscribe/{template_id}"),
            &user,
            json!({}),
        )
        .await;
    assert_eq!(sub.status, 201, "{}", sub.text);
    let (partner, key_id) = app
        .partner("ZEBU", &["marketplace:subscribe", "subscriptions:manage"])
        .await;
    // Room for the many requests below.
    let r = app
        .put(
            &format!("/admin/partner-api-keys/{key_id}"),
            &app.admin(),
            json!({"rate_limits": {"requests_per_minute": 100000, "requests_per_day": 1000000}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let psub = app
        .post(
            "/partner/marketplace/subscribe",
            &partner,
            json!({"template_id": template_id, "user_email": "ravi@example.com",
                   "broker_client_id": "ZB1", "auto_link_broker": true}),
        )
        .await;
    assert_eq!(psub.status, 201, "{}", psub.text);
    World {
        user,
        partner,
        basket_id: basket.body["basket_id"].as_str().expect("id").into(),
        strategy_id: basket.body["strategies"][0]["strategy_id"]
            .as_str()
            .expect("id")
            .into(),
        template_id,
        user_subscription: sub.body["subscription_id"].as_str().expect("id").into(),
        partner_subscription: psub.body["subscription_id"].as_str().expect("id").into(),
        key_id,
    }
}

/// Every command route that reads a body, with the credential it needs
/// and a valid body, at real ids.
fn body_routes(app: &TestApp, w: &World) -> Vec<(Method, String, Cred, Value)> {
    let admin = app.admin();
    vec![
        (
            Method::POST,
            "/baskets".into(),
            w.user.clone(),
            basket_body(),
        ),
        (
            Method::PUT,
            format!("/baskets/{}", w.basket_id),
            w.user.clone(),
            json!({"name": "Renamed"}),
        ),
        (
            Method::POST,
            format!("/baskets/{}/strategies", w.basket_id),
            w.user.clone(),
            strategy_body(),
        ),
        (
            Method::PUT,
            format!("/baskets/{}/strategies/{}", w.basket_id, w.strategy_id),
            w.user.clone(),
            strategy_body(),
        ),
        (
            Method::PUT,
            format!("/admin/marketplace/templates/{}", w.template_id),
            admin.clone(),
            json!({"tags": ["NIFTY"]}),
        ),
        (
            Method::POST,
            format!("/marketplace/subscribe/{}", w.template_id),
            Cred::Jwt(token("new@example.com", &[])),
            json!({"broker_allocations": []}),
        ),
        (
            Method::PUT,
            format!("/user/subscriptions/{}/allocations", w.user_subscription),
            w.user.clone(),
            json!({"broker_allocations": [{"broker_id": "zebu", "client_id": "C1"}]}),
        ),
        (
            Method::PUT,
            format!("/user/subscriptions/{}/pause", w.user_subscription),
            w.user.clone(),
            json!({"reason": "holiday"}),
        ),
        (
            Method::POST,
            "/partner/marketplace/subscribe".into(),
            w.partner.clone(),
            json!({"template_id": w.template_id, "user_email": "z@example.com",
                   "broker_client_id": "ZB9", "auto_link_broker": true, "lot_multiplier": 1}),
        ),
        (
            Method::PUT,
            format!("/partner/subscriptions/{}/pause", w.partner_subscription),
            w.partner.clone(),
            json!({"reason": "customer asked"}),
        ),
        (
            Method::POST,
            "/admin/partner-api-keys".into(),
            admin.clone(),
            json!({"partner_id": "ANGEL", "partner_name": "Angel", "partner_type": "BROKER",
                   "broker_id": "angel",
                   "revenue_share": {"platform_percentage": 80, "partner_percentage": 20}}),
        ),
        (
            Method::PUT,
            format!("/admin/partner-api-keys/{}", w.key_id),
            admin.clone(),
            json!({"partner_name": "Zebu"}),
        ),
        (
            Method::POST,
            format!("/admin/partner-api-keys/{}/rotate", w.key_id),
            admin.clone(),
            json!({"grace_period_hours": 1}),
        ),
        (
            Method::POST,
            "/admin/billing/run".into(),
            admin,
            json!({"as_of": "2026-01-01T00:00:00Z"}),
        ),
    ]
}

fn auth_header(cred: &Cred) -> String {
    match cred {
        Cred::None => String::new(),
        Cred::Jwt(t) => format!("Authorization: Bearer {t}\r\n"),
        Cred::Partner { key, secret } => {
            format!("Authorization: Bearer {key}\r\nX-Partner-Secret: {secret}\r\n")
        }
    }
}

/// A response read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    content_type: Option<String>,
    body: Value,
    text: String,
}

/// Sends `head` (request line and headers, without the blank line) and
/// then `body` in `chunks` (chunked transfer encoding when `Some`) over a
/// fresh connection; reads the whole answer.
async fn raw(app: &TestApp, head: &[u8], body: &[u8], chunks: Option<usize>) -> Raw {
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let mut request = head.to_vec();
    request.extend_from_slice(b"Host: 127.0.0.1\r\nConnection: close\r\n");
    match chunks {
        None => {
            request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            request.extend_from_slice(body);
            // The server may answer (and close) before reading it all.
            let _ = stream.write_all(&request).await;
        }
        Some(size) => {
            request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let _ = stream.write_all(&request).await;
            for chunk in body.chunks(size) {
                let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(chunk);
                framed.extend_from_slice(b"\r\n");
                if stream.write_all(&framed).await.is_err() {
                    break;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body_text = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_string()
    };
    Raw {
        status,
        content_type: header("content-type"),
        body: serde_json::from_str(&body_text).unwrap_or(Value::Null),
        text: body_text,
    }
}

fn raw_problem(r: &Raw, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/problem+json"),
        "{what}"
    );
    for member in ["type", "title", "detail", "code"] {
        assert!(r.body[member].is_string(), "{what}: {member} in {}", r.text);
    }
    assert_eq!(r.body["status"], status, "{what}");
}

async fn event_count(app: &TestApp) -> usize {
    app.all_events().await.len()
}

/// Pads `json` with trailing blanks to exactly `len` bytes.
fn padded(json: &Value, len: usize) -> Vec<u8> {
    let mut bytes = json.to_string().into_bytes();
    assert!(bytes.len() <= len);
    bytes.resize(len, b' ');
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_64_kib_are_413_on_every_body_route_declared_or_streamed() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let before = event_count(&app).await;
    for (method, path, cred, body) in body_routes(&app, &w) {
        let what = format!("{method} {path}");
        let head = format!(
            "{method} {path} HTTP/1.1\r\n{}Content-Type: application/json\r\n",
            auth_header(&cred)
        );
        let over = padded(&body, LIMIT + 1);
        let declared = raw(&app, head.as_bytes(), &over, None).await;
        raw_problem(&declared, 413, &format!("{what} declared"));
        assert_eq!(declared.body["code"], "payload_too_large");
        let streamed = raw(
            &app,
            head.as_bytes(),
            &padded(&body, 4 * LIMIT),
            Some(8 * 1024),
        )
        .await;
        raw_problem(&streamed, 413, &format!("{what} chunked"));
    }
    assert_eq!(
        event_count(&app).await,
        before,
        "an oversized body was applied"
    );
    // Exactly 64 KiB is within the limit.
    let r = app
        .send_raw(
            Method::PUT,
            &format!("/baskets/{}", w.basket_id),
            &w.user,
            Some("application/json"),
            padded(&json!({"name": "Exactly at the limit"}), LIMIT),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_nesting_and_invalid_utf8_are_400_and_the_server_lives_on() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let user = w.user.clone();
    let send = |bytes: Vec<u8>| {
        app.send_raw(
            Method::POST,
            "/baskets",
            &user,
            Some("application/json"),
            bytes,
        )
    };
    // 100 000 `[` is over the size limit before it is parsed.
    send(vec![b'['; 100_000])
        .await
        .assert_problem(413, "payload_too_large");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("60 000 [", vec![b'['; 60_000]),
        ("60 000 [ closed", {
            let mut v = vec![b'['; 30_000];
            v.extend(vec![b']'; 30_000]);
            v
        }),
        ("nested objects in a member", {
            let mut v = b"{\"name\": ".to_vec();
            v.extend("{\"a\":".repeat(10_000).into_bytes());
            v.extend(b"1");
            v.extend(vec![b'}'; 10_000]);
            v.push(b'}');
            v
        }),
        ("nested strategies", {
            let mut v = b"{\"name\":\"x\",\"category\":\"INCOME\",\"strategies\":".to_vec();
            v.extend(vec![b'['; 20_000]);
            v
        }),
        (
            "invalid utf-8",
            b"{\"name\": \"\xff\xfe\xfd\", \"category\": \"INCOME\"}".to_vec(),
        ),
        (
            "overlong utf-8",
            b"{\"name\": \"\xc0\xaf\", \"category\": \"INCOME\"}".to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"name": "\ud800", "category": "INCOME"}"#.to_vec(),
        ),
        ("truncated", br#"{"name": "x", "category": "#.to_vec()),
        ("two documents", br#"{"name": "x"} {"name": "y"}"#.to_vec()),
        ("a bare string", br#""INCOME""#.to_vec()),
        ("an array", br#"[{"name": "x"}]"#.to_vec()),
        ("NaN literal", br#"{"name": NaN}"#.to_vec()),
        (
            "a BOM",
            b"\xef\xbb\xbf{\"name\": \"x\", \"category\": \"INCOME\"}".to_vec(),
        ),
        (
            "NUL byte",
            b"{\"name\": \"x\x00\", \"category\": \"INCOME\"}".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let r = send(bytes).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_problem_shape(&r);
        assert_eq!(r.body["code"], "malformed_json", "{what}");
    }
    // Wrong or missing content types.
    for ct in [
        Some("text/plain"),
        Some("application/jsonx"),
        Some("multipart/form-data"),
        None,
    ] {
        let r = app
            .send_raw(
                Method::POST,
                "/baskets",
                &user,
                ct,
                basket_body().to_string().into_bytes(),
            )
            .await;
        r.assert_problem(415, "unsupported_media_type");
    }
    // Still serving.
    let r = app.post("/baskets", &user, basket_body()).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Sends `body` and asserts the answer is `status` with an error at
/// `field` (422) or a 400 problem whose detail names it.
async fn expect_refusal(
    app: &TestApp,
    method: Method,
    path: &str,
    cred: &Cred,
    body: Value,
    status: u16,
    field: &str,
) -> Resp {
    let r = app.send(method, path, cred, Some(body.clone()), &[]).await;
    assert_eq!(r.status, status, "{path} {body:.200}: {}", r.text);
    assert_problem_shape(&r);
    match status {
        422 => {
            let fields: Vec<&str> = r.body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .filter_map(|e| e["field"].as_str())
                .collect();
            assert!(
                fields.contains(&field),
                "{field} not in {fields:?}: {body:.200}"
            );
        }
        400 => assert!(
            r.body["detail"].as_str().is_some_and(|d| d.contains(field)),
            "{field} not named: {}",
            r.text
        ),
        _ => {}
    }
    r
}

fn with_leg_lots(lots: Value) -> Value {
    let mut s = strategy_body();
    s["legs"][0]["lots"] = lots;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_numbers_and_lot_multipliers_are_refused_with_their_field() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let strategies = format!("/baskets/{}/strategies", w.basket_id);
    let before = event_count(&app).await;
    // Numbers a JSON integer field cannot hold are malformed bodies: 400.
    for lots in [
        "1e400",
        "18446744073709551616",
        "-9223372036854775809",
        "1.5",
        "1e3",
        "\"3\"",
    ] {
        let text = with_leg_lots(json!(0))
            .to_string()
            .replace("\"lots\":0", &format!("\"lots\":{lots}"));
        assert!(text.contains(lots));
        let r = app
            .send_raw(
                Method::POST,
                &strategies,
                &w.user,
                Some("application/json"),
                text.into_bytes(),
            )
            .await;
        r.assert_problem(400, "malformed_json");
    }
    // Numbers that fit but break the rules: 422 at the leg's path.
    for lots in [
        json!(-1),
        json!(0),
        json!(1001),
        json!(i64::MAX),
        json!(i64::MIN),
    ] {
        expect_refusal(
            &app,
            Method::POST,
            &strategies,
            &w.user,
            with_leg_lots(lots),
            422,
            "legs[0].lots",
        )
        .await;
    }
    let template = format!("/admin/marketplace/templates/{}", w.template_id);
    for fee in [json!(-1), json!(i64::MIN)] {
        expect_refusal(
            &app,
            Method::PUT,
            &template,
            &app.admin(),
            json!({"pricing": {"type": "PAID", "monthly_fee": fee, "currency": "INR"}}),
            422,
            "pricing.monthly_fee",
        )
        .await;
    }
    let key = format!("/admin/partner-api-keys/{}", w.key_id);
    for (limits, field) in [
        (
            json!({"requests_per_minute": 0}),
            "rate_limits.requests_per_minute",
        ),
        (
            json!({"requests_per_minute": -5}),
            "rate_limits.requests_per_minute",
        ),
        (
            json!({"requests_per_day": 4294967296i64}),
            "rate_limits.requests_per_day",
        ),
    ] {
        expect_refusal(
            &app,
            Method::PUT,
            &key,
            &app.admin(),
            json!({"rate_limits": limits}),
            422,
            field,
        )
        .await;
    }
    for share in [
        json!({"platform_percentage": 70.001, "partner_percentage": 29.999}),
        json!({"platform_percentage": "NaN", "partner_percentage": 30}),
        json!({"platform_percentage": 130, "partner_percentage": -30}),
        json!({"platform_percentage": "Infinity", "partner_percentage": 0}),
    ] {
        let r = app
            .put(&key, &app.admin(), json!({"revenue_share": share}))
            .await;
        r.assert_problem(422, "validation_failed");
        assert!(r.text.contains("revenue_share"), "{}", r.text);
    }

    // Lot multipliers: 0 < m ≤ 100 with at most two decimals.
    let partner_body = |m: Value| {
        json!({"template_id": w.template_id, "user_email": "m@example.com",
               "broker_client_id": "ZB7", "auto_link_broker": true, "lot_multiplier": m})
    };
    let allocations = format!("/user/subscriptions/{}/allocations", w.user_subscription);
    let bad: Vec<Value> = vec![
        json!(-1),
        json!(0),
        json!(-0.0),
        json!(0.001),
        json!(1.234),
        json!(100.01),
        json!(101),
        json!(1e20),
        json!("NaN"),
        json!("nan"),
        json!("Infinity"),
        json!("-Infinity"),
        json!("1.234"),
        json!("abc"),
        json!(""),
        json!("1e400"),
        json!("0x10"),
        json!(" "),
    ];
    for m in bad {
        expect_refusal(
            &app,
            Method::POST,
            "/partner/marketplace/subscribe",
            &w.partner,
            partner_body(m.clone()),
            422,
            "lot_multiplier",
        )
        .await;
        expect_refusal(&app, Method::PUT, &allocations, &w.user,
            json!({"broker_allocations": [{"broker_id": "zebu", "client_id": "C1", "lot_multiplier": m}]}),
            422, "broker_allocations[0].lot_multiplier").await;
    }
    // Not representable as a JSON number at all: malformed.
    for m in ["1e400", "-1e400"] {
        let text = partner_body(json!(1))
            .to_string()
            .replace("\"lot_multiplier\":1", &format!("\"lot_multiplier\":{m}"));
        let r = app
            .send_raw(
                Method::POST,
                "/partner/marketplace/subscribe",
                &w.partner,
                Some("application/json"),
                text.into_bytes(),
            )
            .await;
        r.assert_problem(400, "malformed_json");
    }
    for (field, value) in [
        ("priority", json!(0)),
        ("priority", json!(-1)),
        ("max_lots_per_order", json!(0)),
        ("max_lots_per_order", json!(10_001)),
    ] {
        let mut a = json!({"broker_id": "zebu", "client_id": "C1"});
        a[field] = value;
        expect_refusal(
            &app,
            Method::PUT,
            &allocations,
            &w.user,
            json!({"broker_allocations": [a]}),
            422,
            &format!("broker_allocations[0].{field}"),
        )
        .await;
    }
    assert_eq!(
        event_count(&app).await,
        before,
        "a refused body was applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_character_strings_are_422_naming_the_field() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let long = "x".repeat(10_000);
    let upper = "X".repeat(10_000);
    let before = event_count(&app).await;
    let mut strategy = strategy_body();
    strategy["name"] = json!(long);
    let mut leg = strategy_body();
    leg["legs"][1]["strike"] = json!(format!("ATM+{}", "9".repeat(10_000)));
    let mut underlying = strategy_body();
    underlying["underlying"] = json!(upper);
    let basket = format!("/baskets/{}", w.basket_id);
    let strategies = format!("{basket}/strategies");
    let cases: Vec<(Method, String, Cred, Value, &str)> = vec![
        (
            Method::PUT,
            basket.clone(),
            w.user.clone(),
            json!({"name": long}),
            "name",
        ),
        (
            Method::PUT,
            basket.clone(),
            w.user.clone(),
            json!({"description": long}),
            "description",
        ),
        (
            Method::PUT,
            basket.clone(),
            w.user.clone(),
            json!({"category": upper}),
            "category",
        ),
        (
            Method::POST,
            strategies.clone(),
            w.user.clone(),
            strategy,
            "name",
        ),
        (
            Method::POST,
            strategies.clone(),
            w.user.clone(),
            leg,
            "legs[1].strike",
        ),
        (
            Method::POST,
            strategies,
            w.user.clone(),
            underlying,
            "underlying",
        ),
        (
            Method::PUT,
            format!("/admin/marketplace/templates/{}", w.template_id),
            app.admin(),
            json!({"tags": [upper]}),
            "tags[0]",
        ),
        (
            Method::PUT,
            format!("/user/subscriptions/{}/pause", w.user_subscription),
            w.user.clone(),
            json!({"reason": long}),
            "reason",
        ),
        (
            Method::PUT,
            format!("/user/subscriptions/{}/allocations", w.user_subscription),
            w.user.clone(),
            json!({"broker_allocations": [{"broker_id": long, "client_id": long}]}),
            "broker_allocations[0].client_id",
        ),
        (
            Method::POST,
            "/partner/marketplace/subscribe".into(),
            w.partner.clone(),
            json!({"template_id": w.template_id, "user_email": format!("{long}@example.com"), "broker_client_id": "Z", "auto_link_broker": true}),
            "user_email",
        ),
        (
            Method::POST,
            "/partner/marketplace/subscribe".into(),
            w.partner.clone(),
            json!({"template_id": w.template_id, "user_email": "q@example.com", "broker_client_id": long, "auto_link_broker": true}),
            "broker_client_id",
        ),
        (
            Method::PUT,
            format!("/admin/partner-api-keys/{}", w.key_id),
            app.admin(),
            json!({"partner_name": long}),
            "partner_name",
        ),
        (
            Method::PUT,
            format!("/admin/partner-api-keys/{}", w.key_id),
            app.admin(),
            json!({"branding": {"custom_logo_url": format!("https://cdn.example.com/{long}")}}),
            "branding.custom_logo_url",
        ),
        (
            Method::POST,
            "/admin/partner-api-keys".into(),
            app.admin(),
            json!({"partner_id": upper, "partner_name": "P", "partner_type": "OTHER", "broker_id": "p",
                   "revenue_share": {"platform_percentage": 100, "partner_percentage": 0}}),
            "partner_id",
        ),
    ];
    for (method, path, cred, body, field) in cases {
        expect_refusal(&app, method, &path, &cred, body, 422, field).await;
    }
    assert_eq!(
        event_count(&app).await,
        before,
        "a refused body was applied"
    );

    // Idempotency-Key: at most 255 visible ASCII characters.
    let body = json!({"name": "Keyed"});
    // A space or tab inside is a header value's right, but not a key's.
    for key in [
        "k".repeat(256),
        "k".repeat(10_000),
        "ключ".to_string(),
        "order 42".to_string(),
        "order\t42".to_string(),
    ] {
        let r = app
            .client
            .put(format!("{}{basket}", app.base))
            .bearer_auth(match &w.user {
                Cred::Jwt(t) => t.clone(),
                _ => unreachable!(),
            })
            .header("idempotency-key", key.as_bytes())
            .json(&body)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = r.text().await.expect("body");
        assert_eq!(status, 400, "{key:.20}: {text}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        assert!(text.contains("invalid_idempotency_key"), "{text}");
    }
    assert_eq!(event_count(&app).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_members_are_400_naming_them_and_nothing_of_them_is_stored() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let before = event_count(&app).await;
    for (method, path, cred, body) in body_routes(&app, &w) {
        let mut top = body.clone();
        top["is_admin"] = json!(true);
        expect_refusal(&app, method.clone(), &path, &cred, top, 400, "is_admin").await;
    }
    // Nested members, where a permissive parser would let them through.
    let mut leg = basket_body();
    leg["strategies"][0]["legs"][0]["owner_id"] = json!("someone-else");
    let mut strategy = strategy_body();
    strategy["strategy_id"] = json!("0190a3b2-7c4e-7d1a-9f00-000000000001");
    let nested: Vec<(Method, String, Cred, Value, &str)> = vec![
        (
            Method::POST,
            "/baskets".into(),
            w.user.clone(),
            leg,
            "owner_id",
        ),
        (
            Method::POST,
            format!("/baskets/{}/strategies", w.basket_id),
            w.user.clone(),
            strategy,
            "strategy_id",
        ),
        (
            Method::PUT,
            format!("/admin/marketplace/templates/{}", w.template_id),
            app.admin(),
            json!({"pricing": {"type": "PAID", "monthly_fee": 1, "currency": "INR", "discount": 100}}),
            "discount",
        ),
        (
            Method::PUT,
            format!("/user/subscriptions/{}/allocations", w.user_subscription),
            w.user.clone(),
            json!({"broker_allocations": [{"broker_id": "zebu", "client_id": "C1", "user_id": "x"}]}),
            "user_id",
        ),
        (
            Method::PUT,
            format!("/admin/partner-api-keys/{}", w.key_id),
            app.admin(),
            json!({"revenue_share": {"platform_percentage": 70, "partner_percentage": 30, "bonus": 5}}),
            "bonus",
        ),
        (
            Method::PUT,
            format!("/admin/partner-api-keys/{}", w.key_id),
            app.admin(),
            json!({"partner_name": "Zebu", "secret_hash": "$argon2id$v=19$m=8,t=1,p=1$x$y"}),
            "secret_hash",
        ),
        (
            Method::PUT,
            format!("/admin/partner-api-keys/{}", w.key_id),
            app.admin(),
            json!({"rate_limits": {"requests_per_minute": 5, "burst": 1000}}),
            "burst",
        ),
        (
            Method::POST,
            "/admin/partner-api-keys".into(),
            app.admin(),
            json!({"partner_id": "NEWP", "partner_name": "P", "partner_type": "OTHER", "broker_id": "p",
                   "revenue_share": {"platform_percentage": 100, "partner_percentage": 0},
                   "branding": {"show_platform_branding": false, "css": "x"}}),
            "css",
        ),
    ];
    for (method, path, cred, body, field) in nested {
        expect_refusal(&app, method, &path, &cred, body, 400, field).await;
    }
    assert_eq!(
        event_count(&app).await,
        before,
        "a refused body was applied"
    );
    for e in app.all_events().await {
        let data = e.data.to_string();
        for name in [
            "\"is_admin\"",
            "someone-else",
            "\"discount\"",
            "$argon2id$v=19$m=8",
            "\"burst\"",
            "\"css\"",
        ] {
            assert!(!data.contains(name), "{name} stored in {}", e.event_type);
        }
    }
}

/// Ids that must never reach a query, a stream name or a file path.
fn hostile_ids() -> Vec<String> {
    vec![
        "'%3B%20DROP%20TABLE%20events%3B--".into(),
        "';DROP%20TABLE%20events;--".into(),
        "1%20OR%201=1".into(),
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
        "..%5c..%5cwindows".into(),
        "%00".into(),
        "abc%00def".into(),
        "0190a3b2-7c4e-7d1a-9f00-000000000001%00".into(),
        "%ff%fe".into(),
        "%C0%AF".into(),
        "%F0%9F%92%A5".into(),
        "00000000-0000-0000-0000-000000000000".into(),
        "0190A3B2-7C4E-7D1A-9F00-00000000000Z".into(),
        "{basket_id}".into(),
        "*".into(),
        "a".repeat(10_000),
        format!("{}", "9".repeat(4_000)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_and_traversal_in_path_ids_are_4xx_problems_on_every_route_family() {
    let app = spawn_app().await;
    let w = world(&app).await;
    let before = event_count(&app).await;
    let admin = app.admin();
    let families: Vec<(Method, &str, Cred, Value)> = vec![
        (
            Method::PUT,
            "/baskets/{id}",
            w.user.clone(),
            json!({"name": "x"}),
        ),
        (
            Method::POST,
            "/baskets/{id}/strategies",
            w.user.clone(),
            strategy_body(),
        ),
        (
            Method::PUT,
            "/baskets/{basket}/strategies/{id}",
            w.user.clone(),
            strategy_body(),
        ),
        (
            Method::DELETE,
            "/baskets/{basket}/strategies/{id}",
            w.user.clone(),
            json!({}),
        ),
        (
            Method::POST,
            "/admin/marketplace/templates/{id}",
            admin.clone(),
            json!({"pricing": {"type": "FREE"}}),
        ),
        (
            Method::PUT,
            "/admin/marketplace/templates/{id}",
            admin.clone(),
            json!({"tags": []}),
        ),
        (
            Method::DELETE,
            "/admin/marketplace/templates/{id}",
            admin.clone(),
            json!({}),
        ),
        (
            Method::POST,
            "/marketplace/subscribe/{id}",
            w.user.clone(),
            json!({}),
        ),
        (
            Method::PUT,
            "/user/subscriptions/{id}/pause",
            w.user.clone(),
            json!({}),
        ),
        (
            Method::PUT,
            "/user/subscriptions/{id}/resume",
            w.user.clone(),
            json!({}),
        ),
        (
            Method::DELETE,
            "/user/subscriptions/{id}",
            w.user.clone(),
            json!({}),
        ),
        (
            Method::PUT,
            "/user/subscriptions/{id}/allocations",
            w.user.clone(),
            json!({"broker_allocations": []}),
        ),
        (
            Method::PUT,
            "/partner/subscriptions/{id}/pause",
            w.partner.clone(),
            json!({}),
        ),
        (
            Method::PUT,
            "/partner/subscriptions/{id}/resume",
            w.partner.clone(),
            json!({}),
        ),
        (
            Method::DELETE,
            "/partner/subscriptions/{id}",
            w.partner.clone(),
            json!({}),
        ),
        (
            Method::PUT,
            "/admin/partner-api-keys/{id}",
            admin.clone(),
            json!({"partner_name": "x"}),
        ),
        (
            Method::POST,
            "/admin/partner-api-keys/{id}/rotate",
            admin.clone(),
            json!({}),
        ),
        (
            Method::DELETE,
            "/admin/partner-api-keys/{id}",
            admin.clone(),
            json!({}),
        ),
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for (method, template, cred, body) in &families {
        for id in hostile_ids() {
            let path = template
                .replace("{basket}", &w.basket_id)
                .replace("{id}", &id);
            let head = format!(
                "{method} {path} HTTP/1.1\r\n{}Content-Type: application/json\r\n",
                auth_header(cred)
            );
            let r = raw(&app, head.as_bytes(), body.to_string().as_bytes(), None).await;
            assert!(
                (400..500).contains(&r.status),
                "{method} {path:.120}: {} {}",
                r.status,
                r.text
            );
            raw_problem(&r, r.status, &format!("{method} {path:.120}"));
            *statuses.entry(r.status).or_insert(0) += 1;
        }
    }
    // Literal traversal and control bytes, sent as they are: refused by the
    // HTTP parser (400) or, once normalised, by the router (404).
    for path in [
        "/user/subscriptions/../../etc/passwd/pause".to_string(),
        "/baskets/..%2f..%2f".to_string(),
        "/baskets/%2e%2e/%2e%2e/etc/passwd".to_string(),
        "/baskets/a\u{0}b".to_string(),
        "/baskets/a b".to_string(),
        format!("/baskets/{}", "%".repeat(3)),
    ] {
        let head = format!(
            "PUT {path} HTTP/1.1\r\n{}Content-Type: application/json\r\n",
            auth_header(&w.user)
        );
        let r = raw(&app, head.as_bytes(), br#"{"name":"x"}"#, None).await;
        assert!(
            (400..500).contains(&r.status),
            "{path:?}: {} {}",
            r.status,
            r.text
        );
    }
    // The store is intact: nothing was written, and the real resources
    // answer as before.
    assert_eq!(event_count(&app).await, before, "a hostile id wrote");
    let r = app
        .put(
            &format!("/baskets/{}", w.basket_id),
            &w.user,
            json!({"name": "Still here"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .put(
            &format!("/partner/subscriptions/{}/pause", w.partner_subscription),
            &w.partner,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    eprintln!("hostile ids: statuses {statuses:?}");
}
