//! Black-box tests of `basketry store …` against an embedded SQLite store.

use std::path::Path;
use std::process::Command;

use basketry_store::sqlite::SqliteStore;
use basketry_store::{Actor, EventStore, ExpectedRevision, NewEvent, NewMetadata, StreamId};
use sqlx::Connection;

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "StrategyAdded".into(),
        schema_version: 1,
        data: serde_json::json!({ "n": n }),
        metadata: NewMetadata {
            actor: Actor {
                kind: "user".into(),
                id: "tester".into(),
            },
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
        },
    }
}

/// Writes two streams of three events each into `data_dir/events.db`.
async fn seed(data_dir: &Path) {
    let store = SqliteStore::open(data_dir.join("events.db"))
        .await
        .expect("open store");
    for name in ["basket-a", "basket-b"] {
        let stream = StreamId::parse(name).expect("valid stream id");
        store
            .append(
                &stream,
                ExpectedRevision::NoStream,
                (0..3).map(event).collect(),
            )
            .await
            .expect("append");
    }
}

fn basketry(data_dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_basketry"))
        .args(args)
        .env("BASKETRY_DATA_DIR", data_dir)
        .env_remove("BASKETRY_EVENT_STORE")
        .output()
        .expect("run basketry");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn store_status_reports_the_newest_position() {
    let dir = tempfile::tempdir().expect("temp dir");
    seed(dir.path()).await;
    let (code, out) = basketry(dir.path(), &["store", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("newest position 6/6"), "{out}");
}

#[tokio::test]
async fn store_verify_passes_on_an_untouched_log_and_names_a_tampered_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    seed(dir.path()).await;
    let (code, out) = basketry(dir.path(), &["store", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("6 events in 2 streams; 0 broken chains"),
        "{out}"
    );

    let url = format!("sqlite://{}", dir.path().join("events.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let changed = sqlx::query(
        "UPDATE events SET data = '{\"n\":99}' WHERE stream_id = 'basket-b' AND revision = 1",
    )
    .execute(&mut conn)
    .await
    .expect("tamper");
    assert_eq!(changed.rows_affected(), 1);
    conn.close().await.expect("close");

    let (code, out) = basketry(dir.path(), &["store", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("hash chain of stream basket-b breaks at revision 1"),
        "{out}"
    );
    assert!(out.contains("1 broken chains"), "{out}");
}

#[tokio::test]
async fn billing_run_refuses_a_future_as_of_and_reports_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, out) = basketry(dir.path(), &["billing", "run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 subscriptions examined"), "{out}");
    let (code, _) = basketry(
        dir.path(),
        &["billing", "run", "--as-of", "2999-01-01T00:00:00Z"],
    );
    assert_ne!(code, 0, "a future as_of is refused");
}
