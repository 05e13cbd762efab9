//! The security contract on the read side, end to end: commands through the
//! command API, the real projectors, then queries. A partner reads only its
//! own subscriptions, ledger and statements (another's id is a 404 that
//! tells nothing); no parameter smuggles another partner in; the plaintext
//! partner secret is in no read-model row and no key response; hostile ids
//! and parameters are 4xx problems; and the query parsers never panic.

use basketry_query_api::consistency::Token;
use basketry_query_api::paging::{Dir, Kind, Ordering};
use basketry_query_api::params::Params;
use serde_json::{json, Value};

use crate::helpers::{admin, auditor, user, Cred, Resp, TestApp};
use crate::on_every_backend;

on_every_backend!(
    partners_read_only_their_own_subscriptions_ledger_and_statements,
    the_partner_secret_is_in_no_read_model_row_and_no_key_response,
    hostile_ids_and_parameters_on_query_routes_are_4xx_problems,
);

fn assert_problem_shape(r: &Resp, what: &str) {
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}: {} {}",
        r.status,
        r.text
    );
    for member in ["type", "title", "detail", "code"] {
        assert!(r.body[member].is_string(), "{what}: {member} in {}", r.text);
    }
    assert_eq!(r.body["status"], r.status, "{what}");
}

/// A PAID ₹999 template published through the command API; its id.
async fn template(app: &TestApp) -> String {
    let basket = app
        .post(
            "/baskets",
            &admin(),
            json!({
                "name": "Nifty weekly income", "category": "INCOME",
                "strategies": [{
                    "name": "Short straddle", "underlying": "NIFTY", "product": "MIS",
                    "entry_time": "09:20", "exit_time": "15:15",
                    "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
                    "legs": [{"action": "SELL", "option_type": "CE", "strike": "ATM",
                              "expiry": "WEEKLY", "lots": 1}]
                }]
            }),
        )
        .await;
    assert_eq!(basket.status, 201, "{}", basket.text);
    let id = basket.body["basket_id"].as_str().expect("id").to_string();
    let published = app
        .post(
            &format!("/admin/marketplace/templates/{id}"),
            &admin(),
            json!({"pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"}}),
        )
        .await;
    assert_eq!(published.status, 201, "{}", published.text);
    id
}

async fn subscribe(app: &TestApp, partner: &Cred, template: &str, email: &str) -> String {
    let r = app
        .post(
            "/partner/marketplace/subscribe",
            partner,
            json!({"template_id": template, "user_email": email,
                   "broker_client_id": "C1", "auto_link_broker": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["subscription_id"].as_str().expect("id").to_string()
}

async fn partners_read_only_their_own_subscriptions_ledger_and_statements(app: TestApp) {
    let template = template(&app).await;
    let perms = [
        "marketplace:read",
        "marketplace:subscribe",
        "subscriptions:manage",
        "ledger:read",
    ];
    let (zebu, _) = app.partner("ZEBU", &perms, None).await;
    let (angel, _) = app.partner("ANGEL", &perms, None).await;
    let zebus = subscribe(&app, &zebu, &template, "ravi@example.com").await;
    let angels = subscribe(&app, &angel, &template, "asha@example.com").await;
    app.project().await;

    // One subscription of another partner: a 404 like any unknown id.
    let theirs = app
        .get(&format!("/partner/subscriptions/{zebus}"), &angel)
        .await;
    theirs.assert_problem(404, "not_found");
    let unknown = app
        .get(
            &format!("/partner/subscriptions/{}", uuid::Uuid::now_v7()),
            &angel,
        )
        .await;
    assert_eq!(
        (theirs.status, &theirs.body),
        (unknown.status, &unknown.body)
    );
    assert_eq!(
        app.get("/partner/subscriptions", &angel)
            .await
            .ids("subscriptions", "subscription_id"),
        vec![angels.clone()]
    );
    // Nor through the user or admin routes.
    app.get(&format!("/user/subscriptions/{zebus}"), &angel)
        .await
        .assert_problem(403, "forbidden");
    app.get("/admin/ledger?partner_id=ZEBU", &angel)
        .await
        .assert_problem(403, "forbidden");
    // No parameter names another partner.
    for path in [
        "/partner/ledger?partner_id=ZEBU",
        "/partner/subscriptions?partner_id=ZEBU",
        "/partner/subscriptions?partner=ZEBU",
        "/partner/ledger?partner_id=ZEBU&partner_id=ANGEL",
    ] {
        let r = app.get(path, &angel).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_problem_shape(&r, path);
    }

    // The ledger, its CSV and the month's statement hold ANGEL's line only.
    let ledger = app.get("/partner/ledger", &angel).await;
    let entries = ledger.ok()["entries"].as_array().expect("entries").clone();
    assert_eq!(entries.len(), 1, "{}", ledger.text);
    assert_eq!(entries[0]["partner_id"], "ANGEL");
    assert!(!ledger.text.contains(&zebus), "{}", ledger.text);
    let csv = app
        .get_with("/partner/ledger", &angel, &[("accept", "text/csv")])
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(
        csv.text.contains(&angels) && !csv.text.contains(&zebus),
        "{}",
        csv.text
    );
    let month = entries[0]["recorded_at"]
        .as_str()
        .or_else(|| entries[0]["period_start"].as_str())
        .expect("a date")[..7]
        .to_string();
    let statement = app
        .get(&format!("/partner/statements/{month}"), &angel)
        .await;
    assert_eq!(statement.ok()["partner_id"], "ANGEL");
    assert!(!statement.text.contains(&zebus), "{}", statement.text);
    // ZEBU's own view still has its line; the auditor sees both.
    let own = app.get("/partner/ledger", &zebu).await;
    assert!(own.ok()["entries"].to_string().contains(&zebus));
    let all = app.get("/admin/ledger", &auditor()).await;
    assert_eq!(all.ok()["entries"].as_array().expect("entries").len(), 2);
    // The customer reads her own subscription; another person does not.
    let hers = app
        .get(
            &format!("/user/subscriptions/{angels}"),
            &user("asha@example.com"),
        )
        .await;
    assert_eq!(hers.ok()["subscription_id"], angels.as_str());
    app.get(
        &format!("/user/subscriptions/{angels}"),
        &user("ravi@example.com"),
    )
    .await
    .assert_problem(404, "not_found");
}

/// Every value of every column of every table of the read database.
async fn dump_read_models(app: &TestApp) -> Vec<String> {
    let sqlite: Result<Vec<(String,)>, _> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&app.db)
            .await;
    let is_sqlite = sqlite.is_ok();
    let tables: Vec<(String, Vec<String>)> = match sqlite {
        Ok(tables) => {
            let mut out = Vec::new();
            for (table,) in tables {
                let columns: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .fetch_all(&app.db)
                        .await
                        .expect("columns");
                out.push((table, columns.into_iter().map(|(c,)| c).collect()));
            }
            out
        }
        Err(_) => {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) \
                 FROM information_schema.columns WHERE table_schema = current_schema()",
            )
            .fetch_all(&app.db)
            .await
            .expect("columns");
            let mut out: Vec<(String, Vec<String>)> = Vec::new();
            for (table, column) in rows {
                match out.iter_mut().find(|(t, _)| *t == table) {
                    Some((_, columns)) => columns.push(column),
                    None => out.push((table, vec![column])),
                }
            }
            out
        }
    };
    assert!(
        tables.iter().any(|(t, _)| t == "rm_partner_keys"),
        "{tables:?}"
    );
    let mut values = Vec::new();
    for (table, columns) in tables {
        for column in columns {
            // SQLite may hold bytes that are not UTF-8; PostgreSQL renders
            // every type, bytea included, as text.
            let cast = if is_sqlite { "BLOB" } else { "TEXT" };
            let sql = format!("SELECT CAST(\"{column}\" AS {cast}) FROM \"{table}\"");
            if is_sqlite {
                let rows: Vec<(Option<Vec<u8>>,)> = sqlx::query_as(&sql)
                    .fetch_all(&app.db)
                    .await
                    .expect("dump column");
                values.extend(rows.into_iter().filter_map(|(v,)| {
                    v.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                }));
            } else {
                let rows: Vec<(Option<String>,)> = sqlx::query_as(&sql)
                    .fetch_all(&app.db)
                    .await
                    .expect("dump column");
                values.extend(rows.into_iter().filter_map(|(v,)| v));
            }
        }
    }
    values
}

async fn the_partner_secret_is_in_no_read_model_row_and_no_key_response(app: TestApp) {
    let (zebu, key_id) = app.partner("ZEBU", &[], None).await;
    let Cred::Partner { key, secret: first } = zebu else {
        panic!("partner credential")
    };
    let rotated = app
        .post(
            &format!("/admin/partner-api-keys/{key_id}/rotate"),
            &admin(),
            json!({"grace_period_hours": 1}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let second = rotated.body["api_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    // Used, so usage and last_used_at are projected too.
    let r = app
        .get(
            "/partner/subscriptions",
            &Cred::Partner {
                key: key.clone(),
                secret: second.clone(),
            },
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.project().await;

    let one = app
        .get(&format!("/admin/partner-api-keys/{key_id}"), &admin())
        .await;
    assert_eq!(one.ok()["api_key"], key.as_str());
    assert!(one.body.get("api_secret").is_none());
    let list = app.get("/admin/partner-api-keys", &admin()).await;
    assert_eq!(list.ok()["api_keys"].as_array().expect("keys").len(), 1);
    let rows = dump_read_models(&app).await;
    assert!(
        rows.iter().any(|r| r.contains(&key)),
        "the key row was not dumped"
    );
    for secret in [&first, &second] {
        for r in [&one, &list] {
            assert!(!r.text.contains(secret.as_str()), "{}", r.text);
        }
        for row in &rows {
            assert!(
                !row.contains(secret.as_str()),
                "a read-model row holds a secret: {row}"
            );
        }
    }
}

async fn hostile_ids_and_parameters_on_query_routes_are_4xx_problems(app: TestApp) {
    let template = template(&app).await;
    let (zebu, _) = app
        .partner(
            "ZEBU",
            &["marketplace:read", "marketplace:subscribe", "ledger:read"],
            None,
        )
        .await;
    subscribe(&app, &zebu, &template, "ravi@example.com").await;
    app.project().await;
    let count = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM rm_subscriptions")
                .fetch_one(&db)
                .await
                .expect("count");
            n
        }
    };
    let before = count(&app).await;
    let ids = [
        "'%3B%20DROP%20TABLE%20rm_subscriptions%3B--",
        "1%20OR%201=1",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%2F..%2Fetc%2Fpasswd",
        "%00",
        "abc%00def",
        "%ff%fe",
        "00000000-0000-0000-0000-000000000000",
        "*",
    ];
    let long = "a".repeat(10_000);
    let routes: Vec<(&str, Cred)> = vec![
        ("/marketplace/templates/{id}", user("u@example.com")),
        ("/baskets/{id}", admin()),
        ("/user/subscriptions/{id}", user("ravi@example.com")),
        ("/partner/subscriptions/{id}", zebu.clone()),
        ("/partner/statements/{id}", zebu.clone()),
        ("/admin/partner-api-keys/{id}", admin()),
        ("/execution/templates/{id}/subscribers", admin()),
    ];
    for (route, cred) in &routes {
        for id in ids.iter().copied().chain([long.as_str()]) {
            let path = route.replace("{id}", id);
            let r = app.get(&path, cred).await;
            assert!(
                (400..500).contains(&r.status),
                "{path:.100}: {} {}",
                r.status,
                r.text
            );
            assert_problem_shape(&r, &path[..path.len().min(100)]);
        }
    }
    let params = [
        "/partner/ledger?from=2026-01-01'%3B--",
        "/partner/ledger?from=99999-01-01",
        "/partner/ledger?to=2026-02-30",
        "/partner/ledger?limit=1e400",
        "/partner/ledger?limit=-1",
        "/partner/ledger?limit=18446744073709551616",
        "/partner/ledger?cursor=%00",
        "/partner/ledger?cursor=eyJvIjoibGVkZ2VyIiwiayI6WzEsMiwzXX0",
        "/partner/subscriptions?status=ACTIVE'%20OR%20'1'='1",
        "/partner/subscriptions?cursor=W10",
        "/partner/subscriptions?%ff=1",
        "/marketplace/templates?sort=price%3BDROP",
        "/marketplace/templates?q=%25%27%20OR%201=1--&limit=0",
    ];
    for path in params {
        let cred = if path.starts_with("/marketplace") {
            user("u@example.com")
        } else {
            zebu.clone()
        };
        let r = app.get(path, &cred).await;
        // Malformed (400) or a value out of its rules (422): never a 5xx.
        assert!(matches!(r.status, 400 | 422), "{path}: {}", r.text);
        assert_problem_shape(&r, path);
        eprintln!("{path} -> {} {}", r.status, r.body["code"]);
    }
    // A search text is data, not SQL: it matches nothing and breaks nothing.
    let r = app
        .get(
            "/marketplace/templates?q=%27%20OR%201=1--",
            &user("u@example.com"),
        )
        .await;
    assert_eq!(r.ok()["templates"], json!([]));
    for token in [
        "x",
        "1",
        "1.",
        ".1",
        "-1.-1",
        "99999999999999999999.1",
        "1.1.1",
        "1 .2",
    ] {
        let r = app
            .get_with(
                "/partner/subscriptions",
                &zebu,
                &[("x-consistency-token", token)],
            )
            .await;
        if r.status != 200 {
            assert_eq!(r.status, 400, "{token:?}: {}", r.text);
            r.assert_problem(400, "invalid_consistency_token");
        } else {
            panic!("{token:?} accepted as a consistency token");
        }
    }
    assert_eq!(
        count(&app).await,
        before,
        "a hostile request changed the read model"
    );
    let r = app.get("/partner/ledger", &zebu).await;
    assert_eq!(r.ok()["entries"].as_array().expect("entries").len(), 1);
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn text(&mut self, alphabet: &[u8], max: u64) -> String {
        let len = self.next() % (max + 1);
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Cursors, consistency tokens and query strings of any shape give a value
/// or a 400, never a panic: 20 000 generated inputs each.
#[test]
fn query_parsers_never_panic_on_arbitrary_input() {
    const ORDERING: Ordering = Ordering {
        name: "security-test",
        keys: &[("a", Dir::Desc, Kind::Int), ("b", Dir::Asc, Kind::Text)],
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let all: Vec<u8> = (0u8..=255).collect();
    let json_ish = br#"{}[]",:0123456789.eE+-ok abnull"#;
    let b64_ish = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.%";
    let query_ish = b"abcdefghijklmnopqrstuvwxyz_=&%20+;#?/'\"0123456789";
    let mut decoded = 0;
    for round in 0..20_000u32 {
        // A cursor: raw text, base64url of junk, or of near-valid JSON.
        let cursor = match round % 4 {
            0 => rng.text(b64_ish, 64),
            1 => b64(rng.text(&all, 64).as_bytes()),
            2 => b64(rng.text(json_ish, 80).as_bytes()),
            _ => b64(
                json!({"o": "security-test", "k": [rng.next() as i64, rng.text(json_ish, 8)]})
                    .to_string()
                    .as_bytes(),
            ),
        };
        if ORDERING.decode(&cursor).is_ok() {
            decoded += 1;
        }
        let token = match round % 3 {
            0 => rng.text(b"0123456789.", 45),
            1 => rng.text(&all, 24),
            _ => format!("{}.{}", rng.next(), rng.text(b"0123456789-+ ", 22)),
        };
        if let Some(t) = Token::parse(&token) {
            assert!(t.commit >= 0 && t.prepare >= 0, "{token:?}");
        }
        let query = rng.text(query_ish, 80);
        if let Ok(params) = Params::parse(&query, &["limit", "cursor", "status", "from", "to"]) {
            let _ = basketry_query_api::paging::limit(&params);
            let _ = params.date("from");
            let _ = params.identifier("status");
            let _ = basketry_query_api::params::DateRange::from_params(&params);
        }
    }
    // The well-formed cursors (a quarter) decode: the test reaches past
    // the first check.
    assert!(decoded >= 4_000, "{decoded}");
    // Every cursor handed out reads back.
    let key = vec![
        basketry_query_api::paging::KeyValue::Int(i64::MIN),
        basketry_query_api::paging::KeyValue::Text("'; DROP TABLE x;--\u{0}".into()),
    ];
    assert_eq!(
        ORDERING.decode(&ORDERING.encode(key.clone())).ok(),
        Some(key)
    );
    let _: Value = json!(null);
}
