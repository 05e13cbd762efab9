//! SQLite event store: the zero-configuration embedded default.
//!
//! One file (WAL journal, `synchronous=FULL`, so a committed append survives
//! a power cut). Appends go through the group-commit writer
//! ([`crate::group_commit`]) on a dedicated `rusqlite` connection owned by
//! the writer's own thread (`docs/adr/0016-data-path.md`), with
//! `BEGIN IMMEDIATE`, which takes SQLite's write lock up front: even another
//! process appending to the same file is serialised, and positions become
//! visible in order. Migrations and reads use sqlx: reads a separate pool of
//! connections.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::Notify;

use crate::chain::{format_timestamp, StoredMetadata};
use crate::group_commit::{
    batch_streams, heads_from_rows, plan_batch, spawn_thread_writer, AppendRequest, BatchError,
    BlockingBatchWriter, Writer, WriterLimits,
};
use crate::poll::poll_subscription;
use crate::{
    check_append, now_micros, AppendError, AppendOutcome, EventStore, EventStream,
    ExpectedRevision, NewEvent, Position, RecordedEvent, Revision, StoreError, StreamId,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

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
        // Migrations run on sqlx before the writer's own connection opens.
        let migrations = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().busy_timeout(WRITE_BUSY_TIMEOUT))
            .await
            .map_err(unavailable)?;
        MIGRATOR.run(&migrations).await.map_err(|e| {
            StoreError::Unavailable(format!("migrating the SQLite event store: {e}"))
        })?;
        migrations.close().await;
        let path = options.get_filename().to_path_buf();
        let sqlite_writer = tokio::task::spawn_blocking(move || SqliteWriter::open(&path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the SQLite writer: {e}")))?
            .map_err(|e| StoreError::Unavailable(format!("opening the SQLite writer: {e}")))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(unavailable)?;
        let appended = Arc::new(Notify::new());
        let writer = spawn_thread_writer(
            "basketry-sqlite-writer",
            sqlite_writer,
            Arc::clone(&appended),
            WriterLimits::default(),
        )
        .map_err(|e| StoreError::Unavailable(format!("starting the SQLite writer: {e}")))?;
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

/// The append path's connection: `rusqlite` on the writer's own thread
/// (see `docs/adr/0016-data-path.md`), so a batch runs statement after
/// statement without a hand-off to another thread for each.
struct SqliteWriter {
    conn: rusqlite::Connection,
}

/// Every stream's head in one statement: the batch's distinct stream ids go
/// in as one JSON array, so no variable limit applies.
const SELECT_HEADS: &str = "SELECT e.stream_id, e.revision, e.hash FROM json_each(?1) s \
     JOIN events e ON e.stream_id = s.value AND e.revision = \
     (SELECT MAX(m.revision) FROM events m WHERE m.stream_id = s.value)";

const SELECT_LAST_POSITION: &str = "SELECT COALESCE(MAX(position), 0) FROM events";

const INSERT_EVENT: &str = "INSERT INTO events (position, stream_id, revision, event_id, \
     event_type, schema_version, data, metadata, prev_hash, hash, recorded_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

/// How the group commit treats a failed statement of the writer. Busy or
/// locked (another connection holds the write lock past the busy timeout),
/// or no answer from SQLite at all, makes the whole batch unavailable:
/// retrying its requests one by one would only wait the timeout again each.
/// Any other refusal by SQLite (a constraint, bad data) is retried request
/// by request, to find the culprit.
fn batch_error(e: rusqlite::Error) -> BatchError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) | None => {
            BatchError::Unavailable(format!("SQLite: {e}"))
        }
        Some(_) => BatchError::Rejected(format!("SQLite: {e}")),
    }
}

impl SqliteWriter {
    /// Opens the writer's connection to the (migrated) database file at
    /// `path`: WAL, `synchronous=FULL`, [`WRITE_BUSY_TIMEOUT`].
    fn open(path: &Path) -> rusqlite::Result<Self> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(WRITE_BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -16384)?;
        Ok(Self { conn })
    }

    fn try_batch(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchError> {
        // BEGIN IMMEDIATE takes the write lock now, not at the first insert,
        // so the heads and the highest position read below cannot change
        // before commit, whichever process writes to the file.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(batch_error)?;
        if requests.is_empty() {
            tx.commit().map_err(batch_error)?;
            return Ok(Vec::new());
        }
        let streams = serde_json::to_string(&batch_streams(requests))
            .map_err(|e| BatchError::Unavailable(format!("SQLite: {e}")))?;
        let mut head_rows = Vec::with_capacity(requests.len());
        {
            let mut heads = tx.prepare_cached(SELECT_HEADS).map_err(batch_error)?;
            let mut rows = heads.query([streams]).map_err(batch_error)?;
            while let Some(row) = rows.next().map_err(batch_error)? {
                head_rows.push((
                    row.get::<_, String>(0).map_err(batch_error)?,
                    row.get::<_, i64>(1).map_err(batch_error)?,
                    row.get::<_, String>(2).map_err(batch_error)?,
                ));
            }
        }
        let heads = heads_from_rows(head_rows)
            .map_err(|e| BatchError::Unavailable(format!("SQLite: {e}")))?;
        // The highest position is read inside the transaction, never kept
        // from the last batch: another process may have appended since.
        let last: i64 = tx
            .prepare_cached(SELECT_LAST_POSITION)
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(batch_error)?;
        let recorded_at = format_timestamp(&now_micros());
        let (rows, outcomes) = plan_batch(requests, heads, last as u64, &recorded_at);
        {
            let mut insert = tx.prepare_cached(INSERT_EVENT).map_err(batch_error)?;
            let mut id = uuid::Uuid::encode_buffer();
            for e in &rows {
                let event_id = &*e.event.event_id.hyphenated().encode_lower(&mut id);
                insert
                    .execute(rusqlite::params![
                        e.position.commit as i64,
                        e.stream_id.as_str(),
                        e.revision.0 as i64,
                        event_id,
                        e.event.event_type.as_str(),
                        i64::from(e.event.schema_version),
                        e.event.data_json.as_str(),
                        e.metadata_json.as_str(),
                        e.prev_hash.as_str(),
                        e.hash.as_str(),
                        recorded_at.as_str(),
                    ])
                    .map_err(batch_error)?;
            }
        }
        tx.commit().map_err(batch_error)?;
        Ok(outcomes)
    }
}

impl BlockingBatchWriter for SqliteWriter {
    fn write_batch(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchError> {
        self.try_batch(requests)
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
    use super::{batch_error, BatchError};

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn busy_and_locked_fail_the_batch_as_unavailable_other_refusals_are_retried() {
        // SQLITE_BUSY, SQLITE_LOCKED and extended codes of both.
        for code in [5, 6, 517, 261, 262] {
            assert!(
                matches!(batch_error(failure(code)), BatchError::Unavailable(_)),
                "{code}"
            );
        }
        // SQLITE_CONSTRAINT, SQLITE_CONSTRAINT_UNIQUE, SQLITE_ERROR.
        for code in [19, 2067, 1] {
            assert!(
                matches!(batch_error(failure(code)), BatchError::Rejected(_)),
                "{code}"
            );
        }
        assert!(matches!(
            batch_error(rusqlite::Error::InvalidQuery),
            BatchError::Unavailable(_)
        ));
    }
}
