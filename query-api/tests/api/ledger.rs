//! The revenue-share ledger, its CSV export and monthly statements.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{admin, auditor, executor, user, TestApp};
use crate::on_every_backend;

on_every_backend!(
    ledger_totals_cover_the_whole_range_and_equal_the_sum_of_the_lines_over_pages,
    the_ledger_needs_ledger_read_and_valid_dates,
    csv_gives_the_whole_range_with_a_header_row,
    a_statement_digest_recomputes_from_the_documented_canonical_form,
    admins_and_auditors_read_any_partners_ledger_or_all,
    ledger_pages_never_repeat_or_skip_while_charges_arrive,
    a_large_csv_range_is_streamed_chunked_with_the_same_bytes,
);

/// ZEBU's October lines (with both edges of the month), and lines that must
/// stay out of its October range.
async fn seed_october(app: &TestApp) -> Vec<String> {
    let mut zebu = Vec::new();
    for (start, amount) in [
        ("2026-10-01T00:00:00.000000Z", 99900),
        ("2026-10-05T09:30:00.000000Z", 99900),
        ("2026-10-09T12:00:00.000000Z", 49900),
        ("2026-10-15T08:00:00.000000Z", 1),
        ("2026-10-20T08:00:00.000000Z", 12345),
        ("2026-10-28T08:00:00.000000Z", 99900),
        ("2026-10-31T23:59:59.999999Z", 29900),
    ] {
        zebu.push(app.seed_ledger(Some("ZEBU"), start, amount, 3000).await);
    }
    app.seed_ledger(Some("ZEBU"), "2026-09-30T23:59:59.999999Z", 99900, 3000)
        .await;
    app.seed_ledger(Some("ZEBU"), "2026-11-01T00:00:00.000000Z", 99900, 3000)
        .await;
    app.seed_ledger(Some("ANGEL"), "2026-10-10T00:00:00.000000Z", 99900, 2500)
        .await;
    app.seed_ledger(None, "2026-10-11T00:00:00.000000Z", 99900, 0)
        .await;
    zebu
}

fn sum(entries: &[Value], field: &str) -> i64 {
    entries.iter().map(|e| e[field].as_i64().unwrap()).sum()
}

async fn ledger_totals_cover_the_whole_range_and_equal_the_sum_of_the_lines_over_pages(
    app: TestApp,
) {
    let expected_ids = seed_october(&app).await;
    let (zebu, _) = app.partner("ZEBU", &["ledger:read"], None).await;
    let range = "/partner/ledger?from=2026-10-01&to=2026-10-31";

    let mut entries = Vec::new();
    let mut totals = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => format!("{range}&limit=3"),
            Some(c) => format!("{range}&limit=3&cursor={c}"),
        };
        let page = app.get(&url, &zebu).await;
        let body = page.ok();
        assert!(body["entries"].as_array().unwrap().len() <= 3);
        entries.extend(body["entries"].as_array().unwrap().iter().cloned());
        totals.push(body["totals"].clone());
        assert_eq!(body["entry_count"], 7);
        match page.next_cursor() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(totals.len(), 3);
    assert!(totals.iter().all(|t| t == &totals[0]), "{totals:?}");
    let ids: Vec<&str> = entries
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, expected_ids);
    let t = &totals[0];
    assert_eq!(t["gross"].as_i64().unwrap(), sum(&entries, "amount"));
    assert_eq!(
        t["platform_share"].as_i64().unwrap(),
        sum(&entries, "platform_share")
    );
    assert_eq!(
        t["partner_share"].as_i64().unwrap(),
        sum(&entries, "partner_share")
    );
    assert_eq!(t["currency"], "INR");
    assert_eq!(
        t["gross"].as_i64().unwrap(),
        t["platform_share"].as_i64().unwrap() + t["partner_share"].as_i64().unwrap()
    );

    // docs/reference/domain.md#revenue-share: one ₹999 charge at 70/30.
    let first = &entries[0];
    assert_eq!(
        (
            &first["amount"],
            &first["platform_share"],
            &first["partner_share"]
        ),
        (
            &Value::from(99900),
            &Value::from(69930),
            &Value::from(29970)
        )
    );
    // Each line names its event and log position, for disputes.
    let position = format!("{}.{}", first["commit_position"], first["prepare_position"]);
    assert_eq!(first["position"], position.as_str());
    assert_eq!(first["partner_id"], "ZEBU");

    // Without dates: every ZEBU line (9).
    let everything = app
        .all_pages("/partner/ledger?", &zebu, "entries", 100)
        .await;
    assert_eq!(everything.len(), 9);
}

async fn the_ledger_needs_ledger_read_and_valid_dates(app: TestApp) {
    seed_october(&app).await;
    let (no_ledger, _) = app.partner("ZEBU", &["marketplace:read"], None).await;
    let refused = app.get("/partner/ledger", &no_ledger).await;
    refused.assert_problem(403, "missing_permission");
    assert!(refused.header("ratelimit-policy").is_some());
    app.get("/partner/statements/2026-10", &no_ledger)
        .await
        .assert_problem(403, "missing_permission");
    app.get("/partner/ledger", &user("u@example.com"))
        .await
        .assert_problem(403, "forbidden");

    let (angel, _) = app.partner("ANGEL", &["ledger:read"], None).await;
    let own = app.get("/partner/ledger", &angel).await;
    assert_eq!(own.ok()["entries"].as_array().unwrap().len(), 1);
    assert_eq!(own.body["entries"][0]["partner_id"], "ANGEL");
    assert_eq!(own.body["totals"]["partner_share"], 24975);

    for bad in [
        "/partner/ledger?from=2026-10",
        "/partner/ledger?to=2026-02-30",
        "/partner/ledger?from=2026-11-01&to=2026-10-01",
        "/partner/ledger?limit=0",
        "/partner/ledger?limit=101",
    ] {
        let r = app.get(bad, &angel).await;
        r.assert_problem(422, "validation_failed");
        assert!(r.body["errors"][0]["field"].is_string(), "{bad}");
    }
    // A day with no line: empty, zero totals, no currency.
    let empty = app
        .get("/partner/ledger?from=2026-01-01&to=2026-01-31", &angel)
        .await;
    assert_eq!(empty.ok()["entries"].as_array().unwrap().len(), 0);
    assert_eq!(empty.body["totals"]["gross"], 0);
    assert!(empty.body["totals"]["currency"].is_null());
    assert!(empty.body["next_cursor"].is_null());
}

async fn csv_gives_the_whole_range_with_a_header_row(app: TestApp) {
    let ids = seed_october(&app).await;
    let (zebu, _) = app.partner("ZEBU", &["ledger:read"], None).await;
    let csv = app
        .get_with(
            "/partner/ledger?from=2026-10-01&to=2026-10-31&limit=2",
            &zebu,
            &[("Accept", "text/csv")],
        )
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(csv.header("ratelimit").is_some());
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines[0],
        "event_id,position,commit_position,prepare_position,subscription_id,template_id,\
         user_id,partner_id,period_index,period_start,period_end,amount,currency,partner_bps,\
         platform_bps,partner_share,platform_share,recorded_at"
    );
    assert!(csv.text.ends_with("\r\n"));
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 7, "no paging in CSV");
    assert!(rows.iter().all(|r| r.len() == 18));
    let csv_ids: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(csv_ids, ids);

    let json = app
        .get("/partner/ledger?from=2026-10-01&to=2026-10-31", &zebu)
        .await;
    let gross: i64 = rows.iter().map(|r| r[11].parse::<i64>().unwrap()).sum();
    let partner: i64 = rows.iter().map(|r| r[15].parse::<i64>().unwrap()).sum();
    assert_eq!(json.ok()["totals"]["gross"].as_i64().unwrap(), gross);
    assert_eq!(
        json.body["totals"]["partner_share"].as_i64().unwrap(),
        partner
    );
    assert_eq!(rows[0][7], "ZEBU");
    assert_eq!(rows[0][1], format!("{}.{}", rows[0][2], rows[0][3]));

    // Direct lines have an empty partner_id in the admin export.
    let all = app
        .get_with("/admin/ledger", &admin(), &[("Accept", "text/csv")])
        .await;
    let direct: Vec<&str> = all
        .text
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(7) == Some(""))
        .collect();
    assert_eq!(direct.len(), 1);
}

/// The canonical form of the query API's docs, written again from the
/// documentation rather than from the implementation.
fn recompute_digest(entries: &[Value]) -> String {
    let mut sorted: Vec<&Value> = entries.iter().collect();
    sorted.sort_by_key(|e| {
        (
            e["commit_position"].as_i64().unwrap(),
            e["prepare_position"].as_i64().unwrap(),
        )
    });
    let mut text = String::new();
    for e in sorted {
        let s = |k: &str| e[k].as_str().unwrap().to_string();
        let n = |k: &str| e[k].as_i64().unwrap().to_string();
        let fields = [
            s("event_id").to_lowercase(),
            format!("{}.{}", n("commit_position"), n("prepare_position")),
            s("subscription_id").to_lowercase(),
            s("period_start"),
            s("period_end"),
            n("amount"),
            s("currency"),
            n("partner_bps"),
            n("partner_share"),
            n("platform_share"),
        ];
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn a_statement_digest_recomputes_from_the_documented_canonical_form(app: TestApp) {
    let ids = seed_october(&app).await;
    let (zebu, _) = app.partner("ZEBU", &["ledger:read"], None).await;
    let statement = app.get("/partner/statements/2026-10", &zebu).await;
    let body = statement.ok();
    assert_eq!(body["partner_id"], "ZEBU");
    assert_eq!(body["month"], "2026-10");
    assert_eq!(body["from"], "2026-10-01");
    assert_eq!(body["to"], "2026-10-31");
    assert_eq!(body["canonical_form_version"], 1);
    let entries = body["entries"].as_array().unwrap();
    let statement_ids: Vec<&str> = entries
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(statement_ids, ids);
    assert_eq!(body["digest"].as_str().unwrap(), recompute_digest(entries));
    assert_eq!(body["digest"].as_str().unwrap().len(), 64);
    assert_eq!(
        body["totals"]["gross"].as_i64().unwrap(),
        sum(entries, "amount")
    );
    assert_eq!(body["entry_count"], 7);

    // The same month's JSON ledger agrees with the statement.
    let ledger = app
        .get(
            "/partner/ledger?from=2026-10-01&to=2026-10-31&limit=100",
            &zebu,
        )
        .await;
    assert_eq!(ledger.ok()["totals"], body["totals"]);
    assert_eq!(ledger.body["entries"].as_array().unwrap(), entries);

    // A changed line changes the digest.
    let mut tampered = entries.clone();
    tampered[3]["amount"] = Value::from(2);
    assert_ne!(
        recompute_digest(&tampered),
        body["digest"].as_str().unwrap()
    );

    // A month without lines.
    let empty = app.get("/partner/statements/2025-02", &zebu).await;
    assert_eq!(
        empty.ok()["digest"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(empty.body["to"], "2025-02-28");
    assert_eq!(empty.body["totals"]["gross"], 0);

    for bad in ["2026-13", "2026-1", "october", "2026-10-01"] {
        app.get(&format!("/partner/statements/{bad}"), &zebu)
            .await
            .assert_problem(400, "invalid_month");
    }
}

async fn admins_and_auditors_read_any_partners_ledger_or_all(app: TestApp) {
    seed_october(&app).await;
    for reader in [admin(), auditor()] {
        let all = app.all_pages("/admin/ledger?", &reader, "entries", 4).await;
        assert_eq!(all.len(), 11);
        assert_eq!(all.iter().filter(|e| e["partner_id"].is_null()).count(), 1);
        let angel = app.get("/admin/ledger?partner_id=ANGEL", &reader).await;
        assert_eq!(angel.ok()["entries"].as_array().unwrap().len(), 1);
        assert_eq!(angel.body["totals"]["gross"], 99900);
        let october = app
            .get(
                "/admin/ledger?partner_id=zebu&from=2026-10-01&to=2026-10-31",
                &reader,
            )
            .await;
        assert_eq!(october.ok()["entry_count"], 7);
        let whole = app
            .get(
                "/admin/ledger?from=2026-10-01&to=2026-10-31&limit=2",
                &reader,
            )
            .await;
        assert_eq!(whole.ok()["entry_count"], 9);
        assert_eq!(
            whole.body["totals"]["gross"],
            99900 * 5 + 49900 + 1 + 12345 + 29900
        );
    }
    app.get("/admin/ledger", &user("u@example.com"))
        .await
        .assert_problem(403, "forbidden");
    app.get("/admin/ledger", &executor())
        .await
        .assert_problem(403, "forbidden");
    let (zebu, _) = app.partner("ZEBU", &["ledger:read"], None).await;
    app.get("/admin/ledger", &zebu)
        .await
        .assert_problem(403, "forbidden");
}

async fn ledger_pages_never_repeat_or_skip_while_charges_arrive(app: TestApp) {
    let mut expected = Vec::new();
    for day in 1..=5 {
        let start = format!("2026-10-{day:02}T10:00:00.000000Z");
        expected.push(app.seed_ledger(Some("ZEBU"), &start, 99900, 3000).await);
    }
    let (zebu, _) = app.partner("ZEBU", &["ledger:read"], None).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => "/partner/ledger?limit=2".to_string(),
            Some(c) => format!("/partner/ledger?limit=2&cursor={c}"),
        };
        let page = app.get(&url, &zebu).await;
        for e in page.ok()["entries"].as_array().unwrap() {
            seen.push(e["event_id"].as_str().unwrap().to_string());
        }
        match page.next_cursor() {
            Some(c) => cursor = Some(c),
            None => break,
        }
        // A charge for an *earlier* period arrives: log order puts it last.
        expected.push(
            app.seed_ledger(Some("ZEBU"), "2026-09-01T10:00:00.000000Z", 100, 3000)
                .await,
        );
    }
    assert_eq!(seen, expected);
}

async fn a_large_csv_range_is_streamed_chunked_with_the_same_bytes(app: TestApp) {
    // More lines than two pages of the export, over the whole month.
    let n = 2 * basketry_query_api::ledger::CSV_PAGE as usize + 321;
    for i in 0..n {
        let start = format!(
            "2026-10-{:02}T{:02}:{:02}:00.000000Z",
            1 + i % 30,
            (i / 30) % 24,
            i % 60
        );
        app.seed_ledger(Some("ZEBU"), &start, 1_000 + i as i64, 3000)
            .await;
    }
    app.seed_ledger(Some("ANGEL"), "2026-10-10T00:00:00.000000Z", 99900, 2500)
        .await;
    let (zebu, _) = app.partner("ZEBU", &["ledger:read"], None).await;
    let csv = app
        .get_with(
            "/partner/ledger?from=2026-10-01&to=2026-10-31",
            &zebu,
            &[("Accept", "text/csv")],
        )
        .await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(csv.header("transfer-encoding"), Some("chunked"));
    assert_eq!(csv.header("content-length"), None);
    // The same bytes as the buffered rendering of the same lines (the
    // month's statement lists exactly these).
    let statement = basketry_query_api::ledger::Statement::load(&app.db, "ZEBU", "2026-10")
        .await
        .expect("statement");
    assert_eq!(statement.lines.len(), n);
    assert_eq!(csv.text, statement.to_csv());
}
