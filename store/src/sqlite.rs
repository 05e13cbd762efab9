//! SQLite event store: the zero-configuration embedded default.
//!
//! One file (WAL journal, `synchronous=FULL`, so a committed append survives
//! a power cut). Appends go through the group-commit writer
//! ([`crate::group_commit`]) on a dedicated connection with
//! `BEGIN IMMEDIATE`, which takes SQLite's write lock up front: even another
//! process appending to the same file is serialised, and positions become
//! visible in order. Reads use a separate pool of connections.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows per INSERT statement: 11 bound values each, well under SQLite's
/// 32 766-variable limit.
const ROWS_PER_INSERT: usize = 1_000;

/// How long the writer waits for SQLite's write lock (another process or a
/// backup holding it) before the whole batch is answered unavailable. Short,
/// so a locked file is a prompt 503, not a hang
/// (`docs/adr/0013-back-pressure-timeouts-and-pools.md`).
const WRITE_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

const SELECT_EVENTS: &str = "SELECT position, stream_id, revision, event_id, event_type, \
     schema_version, data, metadata, prev_hash, hash FROM events";

/// Creates the database file of `options`, when it does not exist yet, with
/// mode 0600 (owner only) before SQLite opens it: SQLite creates its `-wal`
/// and `-shm` files with the database file's mode, so the whole database
/// stays private to the account running Basketry. In-memory databases and
/// existing files are left alone.
pub fn create_private_file(options: &SqliteConnectOptions) -> std::io::Result<()> {
    let path = options.get_filename();
    let name = path.to_string_lossy();
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        return Ok(());
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The SQLite event store. Cheap to clone; clones share the writer.
#[derive(Clone)]
pub struct SqliteStore {
    readers: SqlitePool,
    writer: Writer,
    appended: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in the file at `path` and applies
    /// its migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true);
        Self::with_options(options).await
    }

    /// Opens the store named by a `sqlite://path` URL.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true);
        Self::with_options(options).await
    }

    async fn with_options(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        create_private_file(&options)
            .map_err(|e| StoreError::Unavailable(format!("creating the SQLite file: {e}")))?;
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-16384");
        let writer_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().busy_timeout(WRITE_BUSY_TIMEOUT))
            .await
            .map_err(unavailable)?;
        MIGRATOR.run(&writer_pool).await.map_err(|e| {
            StoreError::Unavailable(format!("migrating the SQLite event store: {e}"))
        })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(unavailable)?;
        let appended = Arc::new(Notify::new());
        let writer = spawn_writer(
            SqliteWriter { pool: writer_pool },
            Arc::clone(&appended),
            WriterLimits::default(),
        );
        Ok(Self {
            readers,
            writer,
            appended,
        })
    }

    async fn page(
        readers: &SqlitePool,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let after = after.map_or(0, |p| p.commit) as i64;
        let rows = sqlx::query(&format!(
            "{SELECT_EVENTS} WHERE position > ? ORDER BY position LIMIT ?"
        ))
        .bind(after)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(readers)
        .await
        .map_err(unavailable)?;
        rows.iter().map(decode_row).collect()
    }
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("SQLite: {e}"))
}

fn decode_row(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
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
    let position = get_i64("position")? as u64;
    let stream_id = StreamId::parse(get_str("stream_id")?)?;
    let event_id =
        uuid::Uuid::parse_str(&get_str("event_id")?).map_err(|e| corrupt("event_id", &e))?;
    let data = serde_json::from_str(&get_str("data")?).map_err(|e| corrupt("data", &e))?;
    let stored: StoredMetadata =
        serde_json::from_str(&get_str("metadata")?).map_err(|e| corrupt("metadata", &e))?;
    Ok(RecordedEvent {
        event_id,
        stream_id,
        revision: Revision(get_i64("revision")? as u64),
        position: Position::sequence(position),
        event_type: get_str("event_type")?,
        schema_version: get_i64("schema_version")? as u32,
        data,
        metadata: stored.into_metadata(get_str("prev_hash")?, get_str("hash")?)?,
    })
}

struct SqliteWriter {
    pool: SqlitePool,
}

/// Whether an SQLite result code (extended codes included) is `SQLITE_BUSY`
/// or `SQLITE_LOCKED`.
fn is_busy(code: Option<&str>) -> bool {
    const SQLITE_BUSY: i64 = 5;
    const SQLITE_LOCKED: i64 = 6;
    code.and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

impl SqliteWriter {
    async fn try_batch(
        &self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        // BEGIN IMMEDIATE takes the write lock now, not at the first insert,
        // so the heads and the highest position read below cannot change
        // before commit.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        // Every stream's head in one statement: the batch's distinct stream
        // ids go in as one JSON array, so no variable limit applies.
        let streams = serde_json::to_string(&batch_streams(requests))
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let head_rows = sqlx::query_as(
            "SELECT e.stream_id, e.revision, e.hash FROM json_each(?) s \
             JOIN events e ON e.stream_id = s.value AND e.revision = \
             (SELECT MAX(m.revision) FROM events m WHERE m.stream_id = s.value)",
        )
        .bind(streams)
        .fetch_all(&mut *tx)
        .await?;
        let heads = heads_from_rows(head_rows)?;
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let recorded_at = format_timestamp(&now_micros());
        let (rows, outcomes) = plan_batch(requests, heads, last as u64, &recorded_at);
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (position, stream_id, revision, event_id, event_type, \
                 schema_version, data, metadata, prev_hash, hash, recorded_at) ",
            );
            insert.push_values(chunk, |mut b, e| {
                b.push_bind(e.position.commit as i64)
                    .push_bind(e.stream_id.as_str())
                    .push_bind(e.revision.0 as i64)
                    .push_bind(e.event.event_id.to_string())
                    .push_bind(e.event.event_type.as_str())
                    .push_bind(e.event.schema_version as i64)
                    .push_bind(e.event.data_json.as_str())
                    .push_bind(e.metadata_json.as_str())
                    .push_bind(e.prev_hash.as_str())
                    .push_bind(e.hash.as_str())
                    .push_bind(recorded_at.as_str());
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

#[async_trait::async_trait]
impl BatchWriter for SqliteWriter {
    async fn write_batch(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchError> {
        self.try_batch(requests).await.map_err(|e| match e {
            // Busy or locked: another connection holds the write lock past
            // the busy timeout. The whole batch is unavailable; retrying its
            // requests one by one would only wait the timeout again each.
            sqlx::Error::Database(db) if !is_busy(db.code().as_deref()) => {
                BatchError::Rejected(format!("SQLite: {db}"))
            }
            other => BatchError::Unavailable(format!("SQLite: {other}")),
        })
    }
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
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
            "{SELECT_EVENTS} WHERE stream_id = ? AND revision >= ? ORDER BY revision"
        ))
        .bind(stream.as_str())
        .bind(from.0 as i64)
        .fetch_all(&self.readers)
        .await
        .map_err(unavailable)?;
        rows.iter().map(decode_row).collect()
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Self::page(&self.readers, after, limit).await
    }

    async fn subscribe_all(&self, after: Option<Position>) -> Result<EventStream, StoreError> {
        let readers = self.readers.clone();
        Ok(poll_subscription(
            after,
            Arc::clone(&self.appended),
            move |after, limit| {
                let readers = readers.clone();
                async move { Self::page(&readers, after, limit).await }
            },
        ))
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(&self.readers)
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
    fn busy_and_locked_are_recognised_with_their_extended_codes() {
        for code in ["5", "6", "517", "261", "262"] {
            assert!(super::is_busy(Some(code)), "{code}");
        }
        for code in ["19", "2067", "1", "x"] {
            assert!(!super::is_busy(Some(code)), "{code}");
        }
        assert!(!super::is_busy(None));
    }
}
