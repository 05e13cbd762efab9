//! Audits and reconciliation on the command line against real data:
//! `basketry audit verify` after the demo, after a byte of an event was
//! changed in SQLite and after a ledger row was deleted; `basketry audit
//! as-of` around a cancellation; `basketry ledger export` against
//! `GET /partner/statements/{month}`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{Connection, Row, SqliteConnection};

mod support;

use support::{token, Stores};

/// Runs the program on `stores` with `args`.
fn basketry(stores: &Stores, args: &[&str]) -> Output {
    stores.basketry().args(args).output().expect("run basketry")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `audit verify --json`: the exit code and the report.
fn verify(stores: &Stores) -> (i32, Value) {
    let out = basketry(stores, &["audit", "verify", "--json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}\n{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn demo(stores: &Stores) {
    let out = basketry(stores, &["demo", "--users", "40"]);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn sqlite(path: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open SQLite file")
}

#[tokio::test]
async fn verify_passes_after_the_demo_and_names_a_changed_byte_by_stream_and_revision() {
    let stores = Stores::sqlite();
    demo(&stores);
    let (code, report) = verify(&stores);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    for check in ["hash_chains", "decoding", "read_models", "ledger_totals"] {
        assert_eq!(report[check]["ok"], true, "{check}: {report:#}");
    }
    assert!(report["events"].as_u64().unwrap_or(0) > 100, "{report:#}");
    assert!(report["ledger_totals"]["charges"].as_u64().unwrap_or(0) > 0);
    let tables: Vec<&str> = report["read_models"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| t["table"].as_str())
        .collect();
    for table in [
        "rm_baskets",
        "rm_subscriptions",
        "rm_ledger",
        "rm_partner_keys",
    ] {
        assert!(tables.contains(&table), "{table} not compared: {tables:?}");
    }

    // Change one byte of one charge's data, straight in the SQLite file:
    // the last digit of its amount.
    let mut events = sqlite(&stores.data_dir().join("events.db")).await;
    let row = sqlx::query(
        "SELECT position, stream_id, revision, data FROM events \
         WHERE event_type = 'SubscriptionCharged' ORDER BY position LIMIT 1 OFFSET 3",
    )
    .fetch_one(&mut events)
    .await
    .expect("a charge");
    let (position, stream, revision, data): (i64, String, i64, String) = (
        row.get("position"),
        row.get("stream_id"),
        row.get("revision"),
        row.get("data"),
    );
    let at = data.find("\"amount\":").expect("amount") + "\"amount\":".len();
    let end = at + data[at..].find(|c: char| !c.is_ascii_digit()).expect("end");
    let mut bytes = data.into_bytes();
    bytes[end - 1] = if bytes[end - 1] == b'9' {
        b'8'
    } else {
        bytes[end - 1] + 1
    };
    let tampered = String::from_utf8(bytes).expect("still UTF-8");
    sqlx::query("UPDATE events SET data = $1 WHERE position = $2")
        .bind(&tampered)
        .bind(position)
        .execute(&mut events)
        .await
        .expect("tamper");
    events.close().await.expect("close");

    let (code, report) = verify(&stores);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    let breaks = report["hash_chains"]["breaks"].as_array().expect("breaks");
    assert_eq!(breaks.len(), 1, "{report:#}");
    assert_eq!(breaks[0]["stream_id"], stream.as_str());
    assert_eq!(breaks[0]["revision"], revision);
    // The changed amount no longer matches its shares, nor the ledger line
    // projected before the change.
    assert_eq!(report["ledger_totals"]["ok"], false, "{report:#}");
    assert_eq!(report["decoding"]["ok"], true);

    // The human report names it too.
    let text = stdout(&basketry(&stores, &["audit", "verify"]));
    assert!(
        text.contains(&format!("stream {stream} breaks at revision {revision}")),
        "{text}"
    );
    assert!(text.contains("audit FAILED"), "{text}");
}

#[tokio::test]
async fn verify_names_a_ledger_row_deleted_from_the_read_model() {
    let stores = Stores::sqlite();
    demo(&stores);
    let mut read = sqlite(&stores.data_dir().join("read.db")).await;
    let row = sqlx::query(
        "SELECT event_id, partner_id, period_start, amount FROM rm_ledger \
         WHERE partner_id IS NOT NULL ORDER BY commit_position LIMIT 1",
    )
    .fetch_one(&mut read)
    .await
    .expect("a partner's ledger line");
    let event_id: String = row.get("event_id");
    let partner: String = row.get("partner_id");
    let month: String = row.get::<String, _>("period_start")[..7].to_string();
    let amount: i64 = row.get("amount");
    sqlx::query("DELETE FROM rm_ledger WHERE event_id = $1")
        .bind(&event_id)
        .execute(&mut read)
        .await
        .expect("delete");
    read.close().await.expect("close");

    let (code, report) = verify(&stores);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["hash_chains"]["ok"], true);
    let ledger = report["read_models"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == "rm_ledger")
        .expect("rm_ledger compared");
    assert_eq!(ledger["ok"], false);
    assert_eq!(ledger["difference_count"], 1);
    assert_eq!(ledger["differences"][0]["kind"], "missing_from_live");
    assert_eq!(
        ledger["differences"][0]["row"],
        format!("event_id={event_id}")
    );
    assert_eq!(
        ledger["live_rows"].as_u64().expect("live") + 1,
        ledger["rebuilt_rows"].as_u64().expect("rebuilt")
    );
    // Every other table still equals its replay.
    for t in report["read_models"]["tables"].as_array().expect("tables") {
        if t["table"] != "rm_ledger" {
            assert_eq!(t["ok"], true, "{t:#}");
        }
    }
    // The recomputed totals name the partner and month the line was in.
    let mismatches = report["ledger_totals"]["mismatches"]
        .as_array()
        .expect("mismatches");
    assert_eq!(mismatches.len(), 1, "{report:#}");
    let m = &mismatches[0];
    assert_eq!(m["partner_id"], partner.as_str());
    assert_eq!(m["month"], month.as_str());
    assert_eq!(
        m["from_events"]["gross"].as_i64().expect("gross")
            - m["in_read_model"]["gross"].as_i64().expect("gross"),
        amount
    );
}

/// A published PAID (₹999) template and a partner ZEBU (30 % share):
/// the template id and the partner's key and secret.
async fn marketplace(http: &reqwest::Client, base: &str) -> (String, String, String) {
    let admin = token("admin@basketry.dev", &["Admins"]);
    let basket: Value = http
        .post(format!("{base}/baskets"))
        .bearer_auth(&admin)
        .json(
            &json!({"name": "Audit straddle", "category": "INCOME", "strategies": [{
            "name": "Short straddle", "underlying": "NIFTY", "product": "MIS",
            "entry_time": "09:20", "exit_time": "15:15",
            "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
            "legs": [{"action": "SELL", "option_type": "CE", "strike": "ATM",
                      "expiry": "WEEKLY", "lots": 1}]}]}),
        )
        .send()
        .await
        .expect("create basket")
        .json()
        .await
        .expect("basket");
    let template = basket["basket_id"].as_str().expect("basket_id").to_string();
    let published = http
        .post(format!("{base}/admin/marketplace/templates/{template}"))
        .bearer_auth(&admin)
        .json(&json!({"visibility": "PUBLIC",
                      "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
                      "difficulty_level": "BEGINNER", "tags": [], "category": "INCOME"}))
        .send()
        .await
        .expect("publish");
    assert_eq!(published.status(), 201);
    let key: Value = http
        .post(format!("{base}/admin/partner-api-keys"))
        .bearer_auth(&admin)
        .json(
            &json!({"partner_id": "ZEBU", "partner_name": "Zebu", "partner_type": "BROKER",
                      "broker_id": "zebu",
                      "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
                      "permissions": ["marketplace:read", "marketplace:subscribe",
                                      "subscriptions:manage", "ledger:read"]}),
        )
        .send()
        .await
        .expect("issue key")
        .json()
        .await
        .expect("key");
    (
        template,
        key["api_key"].as_str().expect("api_key").to_string(),
        key["api_secret"].as_str().expect("api_secret").to_string(),
    )
}

/// Subscribes `email` through partner `key`; the subscription id and the
/// consistency token.
async fn partner_subscribe(
    http: &reqwest::Client,
    base: &str,
    (key, secret): (&str, &str),
    template: &str,
    email: &str,
) -> (String, String) {
    let r = http
        .post(format!("{base}/partner/marketplace/subscribe"))
        .bearer_auth(key)
        .header("X-Partner-Secret", secret)
        .json(&json!({"template_id": template, "user_email": email,
                      "broker_client_id": "C1", "auto_link_broker": true, "lot_multiplier": 1}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(r.status(), 201);
    let token = r
        .headers()
        .get("x-consistency-token")
        .and_then(|v| v.to_str().ok())
        .expect("token")
        .to_string();
    let body: Value = r.json().await.expect("body");
    (
        body["subscription_id"].as_str().expect("id").to_string(),
        token,
    )
}

fn template_count(report: &Value, template: &str) -> i64 {
    report["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|t| t["template_id"] == template)
        .map_or(-1, |t| t["subscriber_count"].as_i64().expect("count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_before_and_after_a_cancellation_gives_different_subscriber_counts() {
    let stores = Stores::sqlite();
    let base = support::serve_in_process(&stores).await;
    let http = reqwest::Client::new();
    let (template, key, secret) = marketplace(&http, &base).await;
    let (first, _) =
        partner_subscribe(&http, &base, (&key, &secret), &template, "a@example.com").await;
    partner_subscribe(&http, &base, (&key, &secret), &template, "b@example.com").await;
    // Both subscriptions are recorded by now; the cancellation comes after.
    let before = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cancelled = http
        .delete(format!("{base}/partner/subscriptions/{first}"))
        .bearer_auth(&key)
        .header("X-Partner-Secret", &secret)
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancelled.status(), 200);
    let after = chrono::Utc::now();

    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let kept = stores.data_dir().join("as-of-before.db");
    let out = basketry(
        &stores,
        &[
            "audit",
            "as-of",
            &at(before),
            "--json",
            "--out",
            kept.to_str().expect("path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let then: Value = serde_json::from_slice(&out.stdout).expect("json");
    let out = basketry(&stores, &["audit", "as-of", &at(after), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now: Value = serde_json::from_slice(&out.stdout).expect("json");

    assert_eq!(template_count(&then, &template), 2, "{then:#}");
    assert_eq!(template_count(&now, &template), 1, "{now:#}");
    assert!(now["events"].as_u64() > then["events"].as_u64());
    // Both charges were recorded before the cancellation: ZEBU had earned
    // 2 × ₹299.70 by then, and no refund follows.
    for report in [&then, &now] {
        let zebu = &report["partners"][0];
        assert_eq!(zebu["partner_id"], "ZEBU", "{report:#}");
        assert_eq!(zebu["partner_share"], 2 * 29_970);
        assert_eq!(zebu["gross"], 2 * 99_900);
    }

    // --out keeps the read models as they stood, for any SQL to ask.
    let mut db = sqlite(&kept).await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM rm_subscriptions WHERE subscription_id = $1")
            .bind(&first)
            .fetch_one(&mut db)
            .await
            .expect("the subscription as it stood");
    assert_eq!(status, "ACTIVE");
    // An existing file is never overwritten.
    let again = basketry(
        &stores,
        &[
            "audit",
            "as-of",
            &at(after),
            "--out",
            kept.to_str().expect("path"),
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    // Nothing recorded before the first event.
    let out = basketry(&stores, &["audit", "as-of", "2020-01-01", "--json"]);
    let empty: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(empty["events"], 0);
    assert_eq!(empty["position"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_statement_is_the_apis_byte_for_byte_with_the_same_digest() {
    let stores = Stores::sqlite();
    let base = support::serve_in_process(&stores).await;
    let http = reqwest::Client::new();
    let (template, key, secret) = marketplace(&http, &base).await;
    let mut token = String::new();
    for i in 0..3 {
        let email = format!("s{i}@example.com");
        token = partner_subscribe(&http, &base, (&key, &secret), &template, &email)
            .await
            .1;
    }
    // The first period of each starts now: this month's statement.
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let statement = |accept: &'static str| {
        http.get(format!("{base}/partner/statements/{month}"))
            .bearer_auth(&key)
            .header("X-Partner-Secret", &secret)
            .header("X-Consistency-Token", &token)
            .header("Accept", accept)
            .send()
    };
    let api_json = statement("application/json").await.expect("statement");
    assert_eq!(api_json.status(), 200);
    let api_json = api_json.bytes().await.expect("body");
    let api_csv = statement("text/csv").await.expect("csv");
    assert_eq!(api_csv.status(), 200);
    let api_csv = api_csv.bytes().await.expect("body");

    let cli_json = basketry(
        &stores,
        &["ledger", "export", "--partner", "zebu", "--month", &month],
    );
    assert!(
        cli_json.status.success(),
        "{}",
        String::from_utf8_lossy(&cli_json.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&cli_json.stdout),
        String::from_utf8_lossy(&api_json)
    );
    let doc: Value = serde_json::from_slice(&api_json).expect("json");
    assert_eq!(doc["entry_count"], 3);
    let digest = doc["digest"].as_str().expect("digest");
    assert_eq!(digest.len(), 64);
    // The CLI names the digest on stderr, beside the bytes on stdout.
    assert!(
        String::from_utf8_lossy(&cli_json.stderr).contains(digest),
        "{}",
        String::from_utf8_lossy(&cli_json.stderr)
    );
    // Every line names the event and the position it came from.
    for entry in doc["entries"].as_array().expect("entries") {
        assert!(entry["event_id"].is_string() && entry["position"].is_string());
    }

    let out = stores.data_dir().join("statement.csv");
    let cli_csv = basketry(
        &stores,
        &[
            "ledger",
            "export",
            "--partner",
            "ZEBU",
            "--month",
            &month,
            "--format",
            "csv",
            "--out",
            out.to_str().expect("path"),
        ],
    );
    assert!(cli_csv.status.success());
    assert_eq!(std::fs::read(&out).expect("csv file"), api_csv.to_vec());
    assert_eq!(String::from_utf8_lossy(&api_csv).lines().count(), 4);

    // A bad month is refused, as the API refuses it.
    let bad = basketry(
        &stores,
        &[
            "ledger",
            "export",
            "--partner",
            "ZEBU",
            "--month",
            "2026-13",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn verify_on_postgresql_compares_rows_and_names_a_changed_column() {
    // Both stores on one throwaway PostgreSQL database (the stores'
    // `basketry` command points at it); dropped with `stores`.
    let stores = Stores {
        dir: tempfile::tempdir().expect("temp dir"),
        pg: Some(
            basketry_test_support::postgres::TestDatabase::create()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        ),
    };
    let url = stores.event_store_url();
    let run = |args: &[&str]| basketry(&stores, args);
    let out = run(&["demo", "--users", "25"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["audit", "verify", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert!(report["read_models"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .all(|t| t["live_rows"] == t["rebuilt_rows"] && t["ok"] == true));

    let mut db = sqlx::PgConnection::connect(&url).await.expect("connect");
    let id: String = sqlx::query_scalar(
        "UPDATE rm_subscriptions SET status = 'CANCELLED' WHERE subscription_id = \
         (SELECT subscription_id FROM rm_subscriptions WHERE status = 'ACTIVE' \
          ORDER BY subscription_id LIMIT 1) RETURNING subscription_id",
    )
    .fetch_one(&mut db)
    .await
    .expect("change a row");
    db.close().await.expect("close");
    let out = run(&["audit", "verify", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let subs = report["read_models"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["table"] == "rm_subscriptions")
        .expect("compared")
        .clone();
    assert_eq!(subs["difference_count"], 1, "{subs:#}");
    let d = &subs["differences"][0];
    assert_eq!(d["kind"], "differs");
    assert_eq!(d["row"], format!("subscription_id={id}"));
    assert_eq!(
        d["columns"],
        json!([{"column": "status", "live": "CANCELLED", "rebuilt": "ACTIVE"}])
    );
}
