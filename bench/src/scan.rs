//! B4's scan baselines: full reads of the SQLite event log in the same
//! process, every row decoded into the `RecordedEvent` the projectors get.
//! The fastest of them is the figure the rebuild is compared with.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use basketry_store::{
    Actor, EventMetadata, EventStore, Position, RecordedEvent, Revision, StreamId,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One scan's result.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Scan {
    pub events: u64,
    pub rate: f64,
}

/// `read_all` pages of `page` events to the end of the log (what a
/// projector runtime can get through the `EventStore` trait).
pub async fn read_all(store: &Arc<dyn EventStore>, page: usize) -> anyhow::Result<Scan> {
    let start = Instant::now();
    let mut after: Option<Position> = None;
    let mut n = 0u64;
    loop {
        let events = store.read_all(after, page).await?;
        match events.last() {
            Some(last) => after = Some(last.position),
            None => break,
        }
        n += events.len() as u64;
    }
    Ok(Scan {
        events: n,
        rate: n as f64 / start.elapsed().as_secs_f64(),
    })
}

/// The metadata document the SQLite store keeps beside `data`
/// (`store/src/chain.rs`).
#[derive(serde::Deserialize)]
struct StoredMetadata {
    actor: Actor,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    idempotency_key: Option<String>,
    recorded_at: String,
}

/// One plain streaming `SELECT … ORDER BY position` over the events table
/// on a read-only connection of its own (`rusqlite`, one prepared
/// statement, on a blocking thread), each row decoded as the store decodes
/// it. The engine's floor for reading the log.
pub async fn stream(events: &Path) -> anyhow::Result<Scan> {
    let path = events.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Scan> {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let start = Instant::now();
        let mut select = conn.prepare(
            "SELECT position, stream_id, revision, event_id, event_type, schema_version, data, \
             metadata, prev_hash, hash FROM events ORDER BY position",
        )?;
        let mut rows = select.query([])?;
        let mut n = 0u64;
        while let Some(row) = rows.next()? {
            let event = decode(row)?;
            std::hint::black_box(&event);
            n += 1;
        }
        Ok(Scan {
            events: n,
            rate: n as f64 / start.elapsed().as_secs_f64(),
        })
    })
    .await?
}

fn decode(row: &rusqlite::Row<'_>) -> anyhow::Result<RecordedEvent> {
    let position: i64 = row.get(0)?;
    let stored: StoredMetadata = serde_json::from_str(row.get_ref(7)?.as_str()?)?;
    Ok(RecordedEvent {
        event_id: Uuid::parse_str(row.get_ref(3)?.as_str()?)?,
        stream_id: StreamId::parse(row.get::<_, String>(1)?)?,
        revision: Revision(row.get::<_, i64>(2)? as u64),
        position: Position::sequence(position as u64),
        event_type: row.get(4)?,
        schema_version: row.get::<_, i64>(5)? as u32,
        data: serde_json::from_str(row.get_ref(6)?.as_str()?)?,
        metadata: EventMetadata {
            actor: stored.actor,
            correlation_id: stored.correlation_id,
            causation_id: stored.causation_id,
            idempotency_key: stored.idempotency_key,
            recorded_at: DateTime::parse_from_rfc3339(&stored.recorded_at)?.with_timezone(&Utc),
            prev_hash: row.get(8)?,
            hash: row.get(9)?,
        },
    })
}
