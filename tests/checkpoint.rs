//! Signed checkpoints on the command line: `basketry audit checkpoint`
//! signs the log head, and `basketry audit verify --checkpoint` names each
//! stream deleted, cut short or holed straight in the database afterwards
//! (SQLite, or PostgreSQL with `BASKETRY_TEST_API_BACKEND=postgres`), reports
//! the missing positions, and refuses a checkpoint signed by another key.

use std::process::Output;

use serde_json::Value;
use sqlx::{AnyConnection, Connection, Row};

mod support;

use support::Stores;

fn basketry(stores: &Stores, args: &[&str]) -> Output {
    stores.basketry().args(args).output().expect("run basketry")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `audit verify --json --checkpoint … --public-key …`: exit code and the
/// checkpoint part of the report.
fn verify(stores: &Stores, checkpoint: &str, public_key: &str) -> (i32, Value) {
    let out = basketry(
        stores,
        &[
            "audit",
            "verify",
            "--json",
            "--checkpoint",
            checkpoint,
            "--public-key",
            public_key,
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    (
        out.status.code().unwrap_or(-1),
        report["checkpoint"].clone(),
    )
}

async fn events_db(stores: &Stores) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(&stores.event_store_url())
        .await
        .expect("open the event store's database")
}

/// `(stream_id, revision, position)` of the rows `sql` selects.
async fn rows(db: &mut AnyConnection, sql: &str) -> Vec<(String, i64, i64)> {
    sqlx::query(sql)
        .fetch_all(db)
        .await
        .expect("query")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn named(check: &Value, kind: &str) -> Vec<String> {
    check["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter(|s| s["kind"] == kind)
        .map(|s| s["stream_id"].as_str().expect("id").to_string())
        .collect()
}

fn gaps(check: &Value) -> Vec<(i64, i64)> {
    check["gaps"]
        .as_array()
        .expect("gaps")
        .iter()
        .map(|g| {
            (
                g["from"].as_i64().expect("from"),
                g["to"].as_i64().expect("to"),
            )
        })
        .collect()
}

#[tokio::test]
async fn verify_names_streams_deleted_or_cut_short_after_a_signed_checkpoint() {
    let stores = Stores::new().await;
    let out = basketry(&stores, &["demo", "--users", "12"]);
    assert!(out.status.success(), "demo: {}", text(&out.stderr));

    let key = stores.data_dir().join("auditor.key");
    let key_s = key.to_str().expect("utf-8 path").to_string();
    let out = basketry(&stores, &["audit", "checkpoint", "--new-key", &key_s]);
    assert!(out.status.success(), "checkpoint: {}", text(&out.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is the auditor's alone"
        );
    }
    let public = format!("{key_s}.pub");
    let signed: Value = serde_json::from_slice(&out.stdout).expect("checkpoint JSON");
    let events = signed["checkpoint"]["events"].as_u64().expect("events");
    assert!(events > 50, "{signed:#}");
    let file = stores.data_dir().join("checkpoint.json");
    std::fs::write(&file, &out.stdout).expect("write checkpoint");
    let file = file.to_str().expect("utf-8 path").to_string();

    // Untouched: it holds, and a second key of the same format is refused.
    let (code, check) = verify(&stores, &file, &public);
    assert_eq!(code, 0, "{check:#}");
    assert_eq!(check["ok"], true);
    assert_eq!(check["events_now"], events);
    let other = stores.data_dir().join("other.key");
    let other_s = other.to_str().expect("utf-8 path").to_string();
    assert!(
        basketry(&stores, &["audit", "checkpoint", "--new-key", &other_s])
            .status
            .success()
    );
    let refused = basketry(
        &stores,
        &[
            "audit",
            "verify",
            "--checkpoint",
            &file,
            "--public-key",
            &format!("{other_s}.pub"),
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("does not verify"),
        "{}",
        text(&refused.stderr)
    );

    let mut db = events_db(&stores).await;

    // 1. The last event of a subscription with several events.
    let last = rows(
        &mut db,
        "SELECT stream_id, revision, position FROM events e \
         WHERE stream_id LIKE 'subscription-%' AND revision > 0 \
           AND revision = (SELECT MAX(revision) FROM events f WHERE f.stream_id = e.stream_id) \
         ORDER BY position LIMIT 1",
    )
    .await;
    let (cut, _, cut_at) = last[0].clone();
    sqlx::query("DELETE FROM events WHERE position = $1")
        .bind(cut_at)
        .execute(&mut db)
        .await
        .expect("delete the last event");
    let (code, check) = verify(&stores, &file, &public);
    assert_eq!(code, 1, "{check:#}");
    assert_eq!(named(&check, "shorter"), vec![cut.clone()], "{check:#}");
    assert_eq!(gaps(&check), vec![(cut_at, cut_at)], "{check:#}");

    // 2. A whole stream: a basket's.
    let basket = rows(
        &mut db,
        "SELECT stream_id, MIN(revision), MIN(position) FROM events \
         WHERE stream_id LIKE 'basket-%' GROUP BY stream_id ORDER BY stream_id LIMIT 1",
    )
    .await;
    let gone = basket[0].0.clone();
    let positions: Vec<i64> = rows(
        &mut db,
        &format!(
            "SELECT stream_id, revision, position FROM events WHERE stream_id = '{gone}' \
             ORDER BY position"
        ),
    )
    .await
    .into_iter()
    .map(|r| r.2)
    .collect();
    sqlx::query("DELETE FROM events WHERE stream_id = $1")
        .bind(&gone)
        .execute(&mut db)
        .await
        .expect("delete a stream");
    let (code, check) = verify(&stores, &file, &public);
    assert_eq!(code, 1, "{check:#}");
    assert_eq!(named(&check, "missing"), vec![gone.clone()], "{check:#}");
    assert_eq!(named(&check, "shorter"), vec![cut.clone()], "{check:#}");
    let reported = gaps(&check);
    for p in positions.iter().chain([&cut_at]) {
        assert!(
            reported.iter().any(|(from, to)| from <= p && p <= to),
            "position {p} not reported: {check:#}"
        );
    }

    // 3. One event in the middle of the positions, of a stream that keeps
    //    its last event: the stream's own chain breaks, and the position is
    //    reported missing.
    let middle = rows(
        &mut db,
        &format!(
            "SELECT stream_id, revision, position FROM events e \
             WHERE revision > 0 AND stream_id <> '{cut}' \
               AND revision < (SELECT MAX(revision) FROM events f WHERE f.stream_id = e.stream_id) \
             ORDER BY position LIMIT 1 OFFSET 3"
        ),
    )
    .await;
    let (holed, _, hole_at) = middle[0].clone();
    sqlx::query("DELETE FROM events WHERE position = $1")
        .bind(hole_at)
        .execute(&mut db)
        .await
        .expect("delete an event in the middle");
    db.close().await.expect("close");
    let (code, check) = verify(&stores, &file, &public);
    assert_eq!(code, 1, "{check:#}");
    assert!(
        gaps(&check)
            .iter()
            .any(|(from, to)| *from <= hole_at && hole_at <= *to),
        "{check:#}"
    );
    assert_eq!(
        check["events_now"].as_u64(),
        Some(events - 2 - positions.len() as u64),
        "{check:#}"
    );
    // The human report names every stream.
    let out = basketry(
        &stores,
        &[
            "audit",
            "verify",
            "--checkpoint",
            &file,
            "--public-key",
            &public,
        ],
    );
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("stream {gone} is gone")),
        "{report}"
    );
    assert!(
        report.contains(&format!("stream {cut} ends at revision")),
        "{report}"
    );
    assert!(report.contains(&format!("stream {holed}")), "{report}");
    assert!(
        report.contains(&format!("positions {hole_at} to {hole_at} are missing")),
        "{report}"
    );
}
