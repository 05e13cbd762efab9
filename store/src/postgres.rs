//! PostgreSQL event store, for running the roles apart without KurrentDB.
//!
//! Appends go through the group-commit writer ([`crate::group_commit`]).
//! Each batch transaction first takes a transaction-scoped advisory lock
//! ([`WRITE_LOCK`]), so every writer — in this process or another — commits
//! one at a time and numbers its events after the highest committed
//! position. PostgreSQL makes a transaction visible before it releases its
//! locks, so positions become visible strictly in order: the classic gap of
//! sequence-numbered logs (position 7 visible while 6 is still in flight, a
//! projector moving past 6 for good) cannot happen.
//!
//! New events are inserted with one `INSERT … SELECT FROM UNNEST(…)` per
//! batch, whatever its size. `data` and `metadata` are stored as `json` text
//! so they read back byte for byte.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::Notify;

use crate::chain::{format_timestamp, StoredMetadata};
use crate::group_commit::{
    batch_streams, heads_from_rows, plan_batch, poll_subscription, spawn_writer, AppendRequest,
    BatchError, BatchWriter, Writer, WriterLimits,
};
use crate::{
    check_append, now_micros, AppendError, AppendOutcome, EventStore, EventStream,
    ExpectedRevision, NewEvent, Position, RecordedEvent, Revision, StoreError, StreamId,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Advisory lock key held by the appending transaction ("bskt").
pub const WRITE_LOCK: i64 = 0x6273_6b74;

/// Session settings of every connection of the store: no statement, lock
/// wait or forgotten transaction can hold an append (or a connection)
/// forever (`docs/adr/0013-back-pressure-timeouts-and-pools.md`). The lock
/// wait is short, so a held write lock is a prompt 503; a batch's
/// statements are far below the statement bound.
pub const SESSION_TIMEOUTS: [(&str, &str); 3] = [
    ("statement_timeout", "15s"),
    ("lock_timeout", "3s"),
    ("idle_in_transaction_session_timeout", "30s"),
];

const SELECT_EVENTS: &str = "SELECT position, stream_id, revision, event_id, event_type, \
     schema_version, data::text AS data, metadata::text AS metadata, prev_hash, hash FROM events";

/// The PostgreSQL event store. Cheap to clone; clones share the writer.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    writer: Writer,
    appended: Arc<Notify>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) with [`SESSION_TIMEOUTS`] and
    /// applies the store's migrations. The writer gets a connection of its
    /// own, so a flood of reads holding the pool cannot stall appends.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {e}")))?
            .options(SESSION_TIMEOUTS);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        let writer_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Self::with_pools(pool, writer_pool).await
    }

    /// Uses an existing pool (shared with read models, for instance) for
    /// reads and appends alike.
    pub async fn with_pool(pool: PgPool) -> Result<Self, StoreError> {
        Self::with_pools(pool.clone(), pool).await
    }

    async fn with_pools(pool: PgPool, writer_pool: PgPool) -> Result<Self, StoreError> {
        crate::sharing_migrator(&MIGRATOR)
            .await
            .map_err(|e| StoreError::Unavailable(format!("loading migrations: {e}")))?
            .run(&pool)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("migrating the PostgreSQL event store: {e}"))
            })?;
        let appended = Arc::new(Notify::new());
        let writer = spawn_writer(
            PgWriter { pool: writer_pool },
            Arc::clone(&appended),
            WriterLimits::default(),
        );
        Ok(Self {
            pool,
            writer,
            appended,
        })
    }

    async fn page(
        pool: &PgPool,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let after = after.map_or(0, |p| p.commit) as i64;
        let rows = sqlx::query(&format!(
            "{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(after)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(decode_row).collect()
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("PostgreSQL: {e}"))
}

fn decode_row(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    // Name the event in any error, so that a damaged row can be found.
    let at = format!(
        "event at position {} (stream {}, revision {})",
        row.try_get::<i64, _>("position")
            .map_or_else(|_| "?".to_string(), |p| p.to_string()),
        row.try_get::<String, _>("stream_id")
            .unwrap_or_else(|_| "?".to_string()),
        row.try_get::<i64, _>("revision")
            .map_or_else(|_| "?".to_string(), |r| r.to_string()),
    );
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{at}: {what}: {e}"));
    let get_i64 = |col: &str| row.try_get::<i64, _>(col).map_err(|e| corrupt(col, &e));
    let get_str = |col: &str| row.try_get::<String, _>(col).map_err(|e| corrupt(col, &e));
    let data = serde_json::from_str(&get_str("data")?).map_err(|e| corrupt("data", &e))?;
    let stored: StoredMetadata =
        serde_json::from_str(&get_str("metadata")?).map_err(|e| corrupt("metadata", &e))?;
    Ok(RecordedEvent {
        event_id: row
            .try_get::<uuid::Uuid, _>("event_id")
            .map_err(|e| corrupt("event_id", &e))?,
        stream_id: StreamId::parse(get_str("stream_id")?)?,
        revision: Revision(get_i64("revision")? as u64),
        position: Position::sequence(get_i64("position")? as u64),
        event_type: get_str("event_type")?,
        schema_version: row
            .try_get::<i32, _>("schema_version")
            .map_err(|e| corrupt("schema_version", &e))? as u32,
        data,
        metadata: stored.into_metadata(get_str("prev_hash")?, get_str("hash")?)?,
    })
}

struct PgWriter {
    pool: PgPool,
}

/// Whether a SQLSTATE says the database could not run the transaction now
/// (connection, resources, a timeout, a lock wait, a serialisation
/// conflict, shutdown) rather than refused what it was given: the whole
/// batch is then unavailable, not retried request by request.
fn is_transient(sqlstate: Option<&str>) -> bool {
    let Some(code) = sqlstate else { return false };
    ["08", "40", "53", "57", "58"]
        .iter()
        .any(|class| code.starts_with(class))
        || matches!(code, "55P03" | "55006" | "25P03")
}

/// The columns of one batch, as arrays for `UNNEST`, borrowing the planned
/// rows.
struct Columns<'a> {
    position: Vec<i64>,
    stream_id: Vec<&'a str>,
    revision: Vec<i64>,
    event_id: Vec<uuid::Uuid>,
    event_type: Vec<&'a str>,
    schema_version: Vec<i32>,
    data: Vec<&'a str>,
    metadata: Vec<&'a str>,
    prev_hash: Vec<&'a str>,
    hash: Vec<&'a str>,
    recorded_at: Vec<DateTime<Utc>>,
}

impl Columns<'_> {
    fn with_capacity(n: usize) -> Self {
        Self {
            position: Vec::with_capacity(n),
            stream_id: Vec::with_capacity(n),
            revision: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            schema_version: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            recorded_at: Vec::with_capacity(n),
        }
    }
}

impl PgWriter {
    async fn try_batch(
        &self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        let head_rows = sqlx::query_as(
            "SELECT DISTINCT ON (stream_id) stream_id, revision, hash FROM events \
             WHERE stream_id = ANY($1) ORDER BY stream_id, revision DESC",
        )
        .bind(batch_streams(requests))
        .fetch_all(&mut *tx)
        .await?;
        let heads = heads_from_rows(head_rows)?;
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let recorded_at = now_micros();
        let stamp = format_timestamp(&recorded_at);
        let (rows, outcomes) = plan_batch(requests, heads, last as u64, &stamp);
        if !rows.is_empty() {
            let mut c = Columns::with_capacity(rows.len());
            for e in &rows {
                c.position.push(e.position.commit as i64);
                c.stream_id.push(e.stream_id.as_str());
                c.revision.push(e.revision.0 as i64);
                c.event_id.push(e.event.event_id);
                c.event_type.push(e.event.event_type.as_str());
                c.schema_version.push(e.event.schema_version as i32);
                c.data.push(e.event.data_json.as_str());
                c.metadata.push(e.metadata_json.as_str());
                c.prev_hash.push(e.prev_hash.as_str());
                c.hash.push(e.hash.as_str());
                c.recorded_at.push(recorded_at);
            }
            sqlx::query(
                "INSERT INTO events (position, stream_id, revision, event_id, event_type, \
                 schema_version, data, metadata, prev_hash, hash, recorded_at) \
                 SELECT p, s, r, i, t, v, d::json, m::json, ph, h, at FROM UNNEST(\
                 $1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], \
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[]) \
                 AS u(p, s, r, i, t, v, d, m, ph, h, at)",
            )
            .bind(&c.position)
            .bind(&c.stream_id)
            .bind(&c.revision)
            .bind(&c.event_id)
            .bind(&c.event_type)
            .bind(&c.schema_version)
            .bind(&c.data)
            .bind(&c.metadata)
            .bind(&c.prev_hash)
            .bind(&c.hash)
            .bind(&c.recorded_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

#[async_trait::async_trait]
impl BatchWriter for PgWriter {
    async fn write_batch(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchError> {
        self.try_batch(requests).await.map_err(|e| match e {
            sqlx::Error::Database(db) if !is_transient(db.code().as_deref()) => {
                BatchError::Rejected(format!("PostgreSQL: {db}"))
            }
            other => BatchError::Unavailable(format!("PostgreSQL: {other}")),
        })
    }
}

#[async_trait::async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        check_append(&events)?;
        self.writer.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Revision,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_EVENTS} WHERE stream_id = $1 AND revision >= $2 ORDER BY revision"
        ))
        .bind(stream.as_str())
        .bind(from.0 as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(decode_row).collect()
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Self::page(&self.pool, after, limit).await
    }

    async fn subscribe_all(&self, after: Option<Position>) -> Result<EventStream, StoreError> {
        let pool = self.pool.clone();
        Ok(poll_subscription(
            after,
            Arc::clone(&self.appended),
            move |after, limit| {
                let pool = pool.clone();
                async move { Self::page(&pool, after, limit).await }
            },
        ))
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(last.map(|p| Position::sequence(p as u64)))
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.writer.health()?;
        self.head().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timeouts_and_lost_connections_are_transient_and_bad_data_is_not() {
        for code in [
            "55P03", "57014", "25P03", "08006", "40001", "40P01", "53300",
        ] {
            assert!(super::is_transient(Some(code)), "{code}");
        }
        for code in ["23505", "22P02", "42P01"] {
            assert!(!super::is_transient(Some(code)), "{code}");
        }
        assert!(!super::is_transient(None));
    }
}
