//! PostgreSQL event store, for running the roles apart without KurrentDB.
//!
//! Appends go through the group-commit writer ([`crate::group_commit`]).
//! Each batch is one autocommitted call of the `basketry_append_batch`
//! function (migration `20261204000001_append_batch.sql`): one round trip
//! and one transaction. The writer checks expected revisions and seals the
//! batch against the stream heads it believes in ([`KnownHeads`]: those it
//! wrote or was told about; a stream it does not know is assumed empty) and
//! sends the rows with those beliefs. The function takes a
//! transaction-scoped advisory lock ([`WRITE_LOCK`]), so every writer — in
//! this process or another, this version or an older one — commits one at a
//! time; checks every believed head; and only if all hold inserts the rows,
//! numbered right after the highest committed position. Otherwise nothing is
//! written and the actual heads come back: the writer plans again on them,
//! and should they keep moving, reads them under the lock in an explicit
//! transaction. PostgreSQL makes a transaction visible before it releases
//! its locks, so positions become visible strictly in order: the classic
//! gap of sequence-numbered logs (position 7 visible while 6 is still in
//! flight, a projector moving past 6 for good) cannot happen.
//!
//! Why only one batch is in flight, and what a commit costs, is recorded in
//! `docs/adr/0016-data-path.md`. `data` and `metadata` are stored as `json`
//! text so they read back byte for byte.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::Notify;

use crate::chain::{format_timestamp, StoredMetadata};
use crate::group_commit::{
    batch_streams, heads_from_rows, plan_batch, spawn_writer, AppendRequest, BatchError,
    BatchWriter, PlannedRow, StreamHead, Writer, WriterLimits,
};
use crate::poll::poll_subscription;
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
            PgWriter {
                pool: writer_pool,
                heads: KnownHeads::default(),
            },
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
    /// What the writer believes the heads of recently written streams are.
    heads: KnownHeads,
}

/// How many times the writer plans a batch on the heads it knows (the
/// second time on those the database just returned) before it falls back
/// to reading them under the lock.
const PLANS_ON_KNOWN_HEADS: usize = 2;

/// Streams per generation of [`KnownHeads`].
const KNOWN_HEADS_GENERATION: usize = 16_384;

/// The heads of the streams this writer wrote or was told about, in two
/// generations so that memory stays bounded (at most two generations of
/// [`KNOWN_HEADS_GENERATION`] streams) while recently used streams stay
/// known. A stream not known is assumed to have no events. A belief is only
/// ever a guess: `basketry_append_batch` checks every head a batch was
/// planned on under the write lock, so a wrong or forgotten one costs one
/// more round trip, never a wrong row or a wrong conflict.
#[derive(Default)]
struct KnownHeads {
    recent: HashMap<StreamId, StreamHead>,
    older: HashMap<StreamId, StreamHead>,
}

impl KnownHeads {
    fn get(&self, stream: &StreamId) -> Option<&StreamHead> {
        self.recent.get(stream).or_else(|| self.older.get(stream))
    }

    fn learn(&mut self, stream: &StreamId, head: Option<StreamHead>) {
        match head {
            Some(head) => {
                if self.recent.len() >= KNOWN_HEADS_GENERATION && !self.recent.contains_key(stream)
                {
                    self.older = std::mem::take(&mut self.recent);
                }
                self.recent.insert(stream.clone(), head);
            }
            None => {
                self.recent.remove(stream);
                self.older.remove(stream);
            }
        }
    }
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

/// One batch in one call: `basketry_append_batch` (migration
/// `20261204000001_append_batch.sql`) takes the write lock, checks the
/// heads the batch was planned on, numbers the rows after the highest
/// position and inserts them.
const APPEND_BATCH: &str = "SELECT applied, last_position, actual_streams, actual_revisions, \
     actual_hashes FROM basketry_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
     $12, $13, $14)";

/// What `basketry_append_batch` answers.
type AppendBatchRow = (
    bool,
    i64,
    Option<Vec<String>>,
    Option<Vec<i64>>,
    Option<Vec<String>>,
);

/// The outcome of one planned batch sent to the database.
enum Attempt {
    /// Inserted and committed (or, in the fallback, inserted in the open
    /// transaction): the requests' outcomes.
    Applied(Vec<Result<AppendOutcome, AppendError>>),
    /// A head the plan assumed was wrong: nothing was written. These are the
    /// actual heads of the batch's streams that have events.
    Stale(HashMap<StreamId, StreamHead>),
}

/// The columns of one batch, as arrays for `UNNEST`, borrowing the planned
/// rows. Positions are not sent: the n-th row gets the n-th position after
/// the highest one, under the lock.
struct Columns<'a> {
    stream_id: Vec<&'a str>,
    revision: Vec<i64>,
    event_id: Vec<uuid::Uuid>,
    event_type: Vec<&'a str>,
    schema_version: Vec<i32>,
    data: Vec<&'a str>,
    metadata: Vec<&'a str>,
    prev_hash: Vec<&'a str>,
    hash: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [PlannedRow<'a>]) -> Self {
        let n = rows.len();
        let mut c = Self {
            stream_id: Vec::with_capacity(n),
            revision: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            schema_version: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        };
        for e in rows {
            c.stream_id.push(e.stream_id.as_str());
            c.revision.push(e.revision.0 as i64);
            c.event_id.push(e.event.event_id);
            c.event_type.push(e.event.event_type.as_str());
            c.schema_version.push(e.event.schema_version as i32);
            c.data.push(e.event.data_json.as_str());
            c.metadata.push(e.metadata_json.as_str());
            c.prev_hash.push(e.prev_hash.as_str());
            c.hash.push(e.hash.as_str());
        }
        c
    }
}

/// The distinct streams of a batch, in request order.
fn distinct_streams<'a>(requests: &[&'a AppendRequest]) -> Vec<&'a StreamId> {
    let mut seen = HashSet::with_capacity(requests.len());
    requests
        .iter()
        .map(|r| &r.stream)
        .filter(|s| seen.insert(*s))
        .collect()
}

/// Plans `requests` on the `assumed` heads of `streams` (every distinct
/// stream of the batch; one missing from `assumed` is assumed to have no
/// events) and sends the plan with its assumptions through `executor`.
/// On success, `heads` learns the batch's new heads.
async fn attempt<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    requests: &[&AppendRequest],
    streams: &[&StreamId],
    assumed: HashMap<StreamId, StreamHead>,
    heads: &mut KnownHeads,
) -> Result<Attempt, sqlx::Error> {
    let mut head_streams = Vec::with_capacity(streams.len());
    let mut head_revisions = Vec::with_capacity(streams.len());
    let mut head_hashes = Vec::with_capacity(streams.len());
    for stream in streams {
        head_streams.push(stream.as_str());
        match assumed.get(*stream) {
            Some(h) => {
                head_revisions.push(h.revision.0 as i64);
                head_hashes.push(h.hash.clone());
            }
            None => {
                head_revisions.push(-1);
                head_hashes.push(String::new());
            }
        }
    }
    let recorded_at = now_micros();
    let stamp = format_timestamp(&recorded_at);
    // Numbered from 1: the database adds the highest position.
    let (rows, mut outcomes) = plan_batch(requests, assumed, 0, &stamp);
    let c = Columns::of(&rows);
    let (applied, last, actual_streams, actual_revisions, actual_hashes): AppendBatchRow =
        sqlx::query_as(APPEND_BATCH)
            .bind(WRITE_LOCK)
            .bind(&head_streams)
            .bind(&head_revisions)
            .bind(&head_hashes)
            .bind(&c.stream_id)
            .bind(&c.revision)
            .bind(&c.event_id)
            .bind(&c.event_type)
            .bind(&c.schema_version)
            .bind(&c.data)
            .bind(&c.metadata)
            .bind(&c.prev_hash)
            .bind(&c.hash)
            .bind(recorded_at)
            .fetch_one(executor)
            .await?;
    if !applied {
        let rows = actual_streams
            .unwrap_or_default()
            .into_iter()
            .zip(actual_revisions.unwrap_or_default())
            .zip(actual_hashes.unwrap_or_default())
            .map(|((s, r), h)| (s, r, h))
            .collect();
        return Ok(Attempt::Stale(heads_from_rows(rows)?));
    }
    let base = u64::try_from(last).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    for outcome in outcomes.iter_mut().flatten() {
        outcome.last_position = Position::sequence(base + outcome.last_position.commit);
    }
    for row in &rows {
        heads.learn(
            row.stream_id,
            Some(StreamHead {
                revision: row.revision,
                hash: row.hash.clone(),
            }),
        );
    }
    Ok(Attempt::Applied(outcomes))
}

impl PgWriter {
    /// Plans the batch on the heads the writer knows and sends it in one
    /// autocommitted call; if a head was wrong, plans again on the heads the
    /// database returned. Should heads keep moving (another process writing
    /// the same streams), falls back to one transaction that reads the heads
    /// under the lock first, which always succeeds.
    async fn try_batch(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, sqlx::Error> {
        let streams = distinct_streams(requests);
        for _ in 0..PLANS_ON_KNOWN_HEADS {
            let assumed = streams
                .iter()
                .filter_map(|s| self.heads.get(s).map(|h| ((*s).clone(), h.clone())))
                .collect();
            match attempt(&self.pool, requests, &streams, assumed, &mut self.heads).await? {
                Attempt::Applied(outcomes) => return Ok(outcomes),
                Attempt::Stale(actual) => {
                    for stream in &streams {
                        self.heads.learn(stream, actual.get(*stream).cloned());
                    }
                }
            }
        }
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
        let actual = heads_from_rows(head_rows)?;
        for stream in &streams {
            self.heads.learn(stream, actual.get(*stream).cloned());
        }
        // The lock is held: the heads just read are the heads.
        let outcomes = match attempt(&mut *tx, requests, &streams, actual, &mut self.heads).await {
            Ok(Attempt::Applied(outcomes)) => outcomes,
            Ok(Attempt::Stale(_)) => {
                return Err(sqlx::Error::Protocol(
                    "the stream heads moved while the write lock was held".into(),
                ))
            }
            Err(e) => return Err(e),
        };
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
