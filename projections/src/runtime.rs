//! The projector runtime: follow the global log from each projector's
//! checkpoint, apply events in batches, and write the checkpoint in the same
//! transaction as the rows.
//!
//! # Exactly once
//!
//! A batch is one transaction: every event of the batch is applied, then the
//! checkpoint row (`projector_checkpoints`) is moved to the batch's last
//! position, then the transaction commits. A failure anywhere — database,
//! decode, an injected crash, the process dying — rolls the whole batch back,
//! rows and checkpoint together, and the runner resumes from the checkpoint
//! that committed. An event can therefore be neither skipped nor applied
//! twice.
//!
//! The checkpoint write is a compare-and-set: it inserts the row only if
//! there is none, and updates it only if it still holds the position the
//! batch started from. If anything else moved it meanwhile (a rebuild, or a
//! second instance of the same projector in a scale-out deployment), the
//! batch is rolled back with [`ProjectionError::CheckpointMoved`] and the
//! runner starts again from the new checkpoint, so two runners can never
//! both apply the same events.
//!
//! # Running
//!
//! * [`ProjectorRuntime::run`] follows the log live (`subscribe_all` from
//!   the checkpoint, grouped into batches of what is ready, at most
//!   [`RuntimeConfig::batch_size`]), retrying failed batches with backoff,
//!   until [`ProjectorRuntime::stop`]: the batch in progress commits, then
//!   `run` returns.
//! * [`ProjectorRuntime::catch_up`] / [`ProjectorRuntime::run_until`] page
//!   through the log until the checkpoints reach the head (or a position)
//!   and return the first error instead of retrying: for tests, the CLI's
//!   rebuild and audits.
//! * [`ProjectorRuntime::rebuild`] empties a projector's tables and
//!   checkpoint in one transaction and catches up from position zero.
//! * [`ProjectorRuntime::status`] reports each projector's position and lag
//!   for `/metrics` and `/readyz`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basketry_store::chain::format_timestamp;
use basketry_store::{EventStore, Position, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row};
use tokio::sync::watch;

use crate::db::Backend;
use crate::{ProjectionError, Projector};

/// How the runtime batches and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// Wait after the first failed batch; doubled after each further
    /// failure, reset by a success.
    pub retry_initial: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Where a projector is in the global log, as committed with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The projector.
    pub name: String,
    /// Position of the last event applied.
    pub position: Position,
    /// Events consumed since the projector's last rebuild, counting those it
    /// ignored (they moved the checkpoint too).
    pub events_applied: u64,
    /// `recorded_at` of the last event applied.
    pub last_recorded_at: DateTime<Utc>,
}

/// A projector's progress, for `/metrics` and `/readyz`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectorStatus {
    /// The projector.
    pub name: String,
    /// Its checkpoint; `None` before its first batch.
    pub position: Option<Position>,
    /// Events consumed since its last rebuild.
    pub events_applied: u64,
    /// How far behind the head of the log it is: head commit position minus
    /// checkpoint commit position. Exact on the SQL and memory stores, whose
    /// positions number events one by one; on KurrentDB commit positions
    /// are log offsets, so there it only says "behind or not" and grows with
    /// the backlog.
    pub lag_events: u64,
    /// How long the oldest event it has not applied has been in the log
    /// (now minus that event's `recorded_at`); 0 when caught up. Measuring
    /// from the oldest *pending* event rather than the last applied one keeps
    /// a projector that was idle for a day from looking a day behind when
    /// one new event arrives.
    pub lag_seconds: f64,
    /// The error of the last failed batch of this runtime's live runner,
    /// cleared by the next batch that commits.
    pub last_error: Option<String>,
}

/// Stops a running [`ProjectorRuntime`]; cheap to clone and hand to a signal
/// handler.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl StopHandle {
    /// Asks every runner to finish its current batch and return. Idempotent.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// Runs projectors against an event store and a read database.
pub struct ProjectorRuntime {
    /// The log.
    store: Arc<dyn EventStore>,
    /// The read database (see [`crate::db::open`]).
    pool: AnyPool,
    /// The projectors run, each with its own checkpoint.
    projectors: Vec<Arc<dyn Projector>>,
    /// Batching and retries.
    config: RuntimeConfig,
    /// Set once to stop [`ProjectorRuntime::run`].
    stop: StopHandle,
    /// Last batch error per projector of the live runner; shared with the
    /// runtime's successors ([`Self::successor`]).
    errors: Arc<Mutex<HashMap<&'static str, String>>>,
}

impl ProjectorRuntime {
    /// A runtime for `projectors` (names must be distinct: they key the
    /// checkpoints) with the default [`RuntimeConfig`].
    pub fn new(
        store: Arc<dyn EventStore>,
        pool: AnyPool,
        projectors: Vec<Arc<dyn Projector>>,
    ) -> Self {
        Self {
            store,
            pool,
            projectors,
            config: RuntimeConfig::default(),
            stop: StopHandle(Arc::new(watch::Sender::new(false))),
            errors: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A runtime of the same projectors and settings on `pool`, with a stop
    /// handle of its own, that reports its batch errors to this one: what
    /// the projector lease runs each time it is held, so the runtime that
    /// `/readyz` reads sees the errors of the one that runs.
    pub fn successor(&self, pool: AnyPool) -> Self {
        Self {
            store: Arc::clone(&self.store),
            pool,
            projectors: self.projectors.clone(),
            config: self.config.clone(),
            stop: StopHandle(Arc::new(watch::Sender::new(false))),
            errors: Arc::clone(&self.errors),
        }
    }

    /// Forgets every reported batch error (a runner that stands by has none).
    pub fn clear_errors(&self) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The same runtime with other batching and retry settings.
    pub fn with_config(mut self, config: RuntimeConfig) -> Self {
        // A batch of zero events would never make progress.
        self.config = RuntimeConfig {
            batch_size: config.batch_size.max(1),
            ..config
        };
        self
    }

    /// The read database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The projectors, in the order they were given.
    pub fn projectors(&self) -> &[Arc<dyn Projector>] {
        &self.projectors
    }

    /// A handle that stops [`ProjectorRuntime::run`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Asks [`ProjectorRuntime::run`] to finish its current batches and
    /// return. A stopped runtime stays stopped.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Follows the log live with every projector until [`Self::stop`].
    ///
    /// Each projector subscribes to the log after its checkpoint and applies
    /// what is ready in batches of at most `batch_size` events; a new event
    /// appended in this process is picked up at once (other processes' within
    /// the store's poll interval, 100 ms on SQL stores). A failed batch is
    /// logged and rolled back, and the projector resubscribes from its last
    /// committed checkpoint after a backoff — retrying forever, since a
    /// projector that stopped for good would serve ever staler reads; the
    /// failure shows in [`Self::status`] (`last_error`, growing lag).
    pub async fn run(&self) {
        futures::future::join_all(
            self.projectors
                .iter()
                .map(|projector| self.run_projector(projector.as_ref())),
        )
        .await;
    }

    async fn run_projector(&self, projector: &dyn Projector) {
        let mut stop = self.stop.0.subscribe();
        let mut retry = self.config.retry_initial;
        while !*stop.borrow() {
            let Err(error) = self.follow(projector, &mut stop, &mut retry).await else {
                return;
            };
            tracing::warn!(
                projector = projector.name(),
                %error,
                retry_in_ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX),
                "projector batch failed; retrying from its last checkpoint"
            );
            self.set_error(projector.name(), Some(error.to_string()));
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(self.config.retry_max);
        }
    }

    /// Follows the log from the committed checkpoint until stopped (`Ok`) or
    /// until a batch fails (`Err`, with the batch rolled back).
    async fn follow(
        &self,
        projector: &dyn Projector,
        stop: &mut watch::Receiver<bool>,
        retry: &mut Duration,
    ) -> Result<(), ProjectionError> {
        let mut checkpoint = read_checkpoint(&self.pool, projector.name()).await?;
        let after = checkpoint.as_ref().map(|c| c.position);
        let mut batches = self
            .store
            .subscribe_all(after)
            .await?
            .ready_chunks(self.config.batch_size);
        loop {
            // Stopping is only checked between batches: a batch in progress
            // always gets to commit (or fail) before `run` returns.
            let chunk = tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
                chunk = batches.next() => chunk,
            };
            let Some(chunk) = chunk else {
                return Err(StoreError::Unavailable("the log subscription ended".into()).into());
            };
            let mut events = Vec::with_capacity(chunk.len());
            let mut failure = None;
            for item in chunk {
                match item {
                    Ok(event) => events.push(event),
                    Err(e) => {
                        // Apply what came before the error; the rest is read
                        // again after resubscribing.
                        failure = Some(e);
                        break;
                    }
                }
            }
            if !events.is_empty() {
                checkpoint = Some(
                    self.apply_batch(projector, checkpoint.as_ref(), &events)
                        .await?,
                );
                *retry = self.config.retry_initial;
                self.set_error(projector.name(), None);
            }
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
    }

    fn set_error(&self, projector: &'static str, error: Option<String>) {
        // A poisoned lock only means a panic elsewhere mid-insert; the map
        // of messages is still usable.
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(e) => errors.insert(projector, e),
            None => errors.remove(projector),
        };
    }

    /// Applies `events` (non-empty, in log order, strictly after `from`) in
    /// one transaction with the checkpoint that follows them.
    async fn apply_batch(
        &self,
        projector: &dyn Projector,
        from: Option<&Checkpoint>,
        events: &[RecordedEvent],
    ) -> Result<Checkpoint, ProjectionError> {
        let Some(last) = events.last() else {
            return Err(ProjectionError::Store(StoreError::Invalid(
                "a batch needs at least one event".into(),
            )));
        };
        // The store promises events strictly after the checkpoint, in
        // order. Should a backend ever break that (a redelivery after a
        // resubscribe), applying would count or charge twice: refuse loudly.
        let mut previous = from.map(|c| c.position);
        for event in events {
            if previous.is_some_and(|p| event.position <= p) {
                return Err(ProjectionError::Store(StoreError::Corrupt(format!(
                    "the log delivered position {} after {}",
                    event.position,
                    previous.map_or_else(String::new, |p| p.to_string())
                ))));
            }
            previous = Some(event.position);
        }
        let next = Checkpoint {
            name: projector.name().to_owned(),
            position: last.position,
            events_applied: from.map_or(0, |c| c.events_applied) + events.len() as u64,
            last_recorded_at: last.metadata.recorded_at,
        };
        let mut conn = self.pool.acquire().await?;
        let begin = Backend::of(&conn).begin_statement();
        let mut tx = conn.begin_with(begin).await?;
        let applied = async {
            for event in events {
                projector.apply(&mut tx, event).await?;
            }
            write_checkpoint(&mut tx, from.map(|c| c.position), &next).await
        }
        .await;
        match applied {
            Ok(()) => {
                tx.commit().await?;
                Ok(next)
            }
            Err(e) => {
                // Dropping the transaction would roll back too; doing it here
                // returns the connection clean and surfaces nothing new (the
                // batch's own error is the one worth reporting).
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Applies batches until `projector`'s checkpoint reaches `target` (or
    /// the end of the log when `None`, or when the log ends before it),
    /// calling `on_batch` after each commit.
    async fn catch_up_projector(
        &self,
        projector: &dyn Projector,
        target: Option<Position>,
        mut on_batch: impl FnMut(&Checkpoint),
    ) -> Result<Option<Checkpoint>, ProjectionError> {
        let mut checkpoint = read_checkpoint(&self.pool, projector.name()).await?;
        loop {
            let at = checkpoint.as_ref().map(|c| c.position);
            if let (Some(target), Some(at)) = (target, at) {
                if at >= target {
                    return Ok(checkpoint);
                }
            }
            let mut events = self.store.read_all(at, self.config.batch_size).await?;
            // Never past the target: a replay "as of" a position applies
            // exactly the events up to it.
            if let Some(target) = target {
                events.retain(|e| e.position <= target);
            }
            if events.is_empty() {
                return Ok(checkpoint);
            }
            let next = self
                .apply_batch(projector, checkpoint.as_ref(), &events)
                .await?;
            on_batch(&next);
            checkpoint = Some(next);
        }
    }

    /// Brings every projector up to the current head of the log and returns.
    /// Unlike [`Self::run`] it does not retry: the first failed batch is
    /// returned (after the other projectors finished), with its rows and
    /// checkpoint rolled back.
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        match self.store.head().await? {
            Some(head) => self.run_until(head).await,
            None => Ok(()),
        }
    }

    /// Brings every projector to `position` — applying every event up to it
    /// and none after it — or to the end of the log if that comes first (it
    /// does not wait for future events). A projector already past
    /// `position` is left where it is.
    pub async fn run_until(&self, position: Position) -> Result<(), ProjectionError> {
        let results =
            futures::future::join_all(self.projectors.iter().map(|projector| {
                self.catch_up_projector(projector.as_ref(), Some(position), |_| {})
            }))
            .await;
        results.into_iter().try_for_each(|r| r.map(|_| ()))
    }

    /// Rebuilds one projector (`Some(name)`) or all of them from position
    /// zero: for each, one transaction deletes every row of its tables and
    /// its checkpoint, then it catches up to the head of the log as it was
    /// when the rebuild started.
    ///
    /// `progress(done, total)` is called at the start and after each batch,
    /// in commit-position units summed over the projectors rebuilt: on the
    /// SQL and memory stores that is events; on KurrentDB, log offsets (the
    /// ratio still reads as a percentage).
    ///
    /// Readers see the tables empty and then filling during a rebuild. It is
    /// safe beside a live [`Self::run`] of the same projectors (the
    /// checkpoint compare-and-set keeps the two from applying an event
    /// twice), but meant to run with the live runner stopped.
    pub async fn rebuild(
        &self,
        projector_name: Option<&str>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), ProjectionError> {
        let selected: Vec<&Arc<dyn Projector>> = match projector_name {
            Some(name) => vec![self
                .projectors
                .iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| ProjectionError::UnknownProjector(name.to_owned()))?],
            None => self.projectors.iter().collect(),
        };
        let head = self.store.head().await?;
        let per_projector = head.map_or(0, |h| h.commit);
        let total = per_projector * selected.len() as u64;
        progress(0, total);
        for (i, projector) in selected.into_iter().enumerate() {
            let base = per_projector * i as u64;
            self.reset(projector.as_ref()).await?;
            if let Some(head) = head {
                self.catch_up_projector(projector.as_ref(), Some(head), |c| {
                    progress(base + c.position.commit.min(per_projector), total)
                })
                .await?;
            }
            progress(base + per_projector, total);
        }
        Ok(())
    }

    /// Deletes a projector's rows and checkpoint in one transaction.
    async fn reset(&self, projector: &dyn Projector) -> Result<(), ProjectionError> {
        let mut conn = self.pool.acquire().await?;
        let begin = Backend::of(&conn).begin_statement();
        let mut tx = conn.begin_with(begin).await?;
        for table in projector.tables() {
            // Table names come from the projector's static list, never from
            // input, so formatting them into the statement is safe.
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM projector_checkpoints WHERE name = $1")
            .bind(projector.name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Each projector's position and lag behind the head of the log.
    pub async fn status(&self) -> Result<Vec<ProjectorStatus>, ProjectionError> {
        let head = self.store.head().await?;
        let now = Utc::now();
        let mut statuses = Vec::with_capacity(self.projectors.len());
        for projector in &self.projectors {
            let checkpoint = read_checkpoint(&self.pool, projector.name()).await?;
            let position = checkpoint.as_ref().map(|c| c.position);
            let behind = match (head, position) {
                (Some(head), Some(at)) => at < head,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let lag_seconds = if behind {
                match self.store.read_all(position, 1).await?.first() {
                    Some(oldest) => {
                        (now - oldest.metadata.recorded_at)
                            .num_microseconds()
                            .unwrap_or(0) as f64
                            / 1e6
                    }
                    None => 0.0,
                }
                .max(0.0)
            } else {
                0.0
            };
            statuses.push(ProjectorStatus {
                name: projector.name().to_owned(),
                position,
                events_applied: checkpoint.as_ref().map_or(0, |c| c.events_applied),
                lag_events: head
                    .map_or(0, |h| h.commit)
                    .saturating_sub(position.map_or(0, |p| p.commit)),
                lag_seconds,
                last_error: self
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(projector.name())
                    .cloned(),
            });
        }
        Ok(statuses)
    }
}

const SELECT_CHECKPOINT: &str = "SELECT name, commit_position, prepare_position, \
     events_applied, last_recorded_at FROM projector_checkpoints";

/// The committed checkpoint of projector `name`, if it has one.
pub async fn read_checkpoint<'e, E>(
    executor: E,
    name: &str,
) -> Result<Option<Checkpoint>, ProjectionError>
where
    E: Executor<'e, Database = Any>,
{
    let row = sqlx::query(&format!("{SELECT_CHECKPOINT} WHERE name = $1"))
        .bind(name)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(checkpoint_of).transpose()
}

/// Every committed checkpoint, by name: what a process that does not run the
/// projectors (the query API) needs to wait for a consistency token.
pub async fn checkpoints(pool: &AnyPool) -> Result<Vec<Checkpoint>, ProjectionError> {
    let rows = sqlx::query(&format!("{SELECT_CHECKPOINT} ORDER BY name"))
        .fetch_all(pool)
        .await?;
    rows.iter().map(checkpoint_of).collect()
}

fn checkpoint_of(row: &AnyRow) -> Result<Checkpoint, ProjectionError> {
    let unsigned = |col: &str| -> Result<u64, ProjectionError> {
        let v: i64 = row.try_get(col)?;
        u64::try_from(v).map_err(|e| column_error(col, e))
    };
    let recorded: String = row.try_get("last_recorded_at")?;
    Ok(Checkpoint {
        name: row.try_get("name")?,
        position: Position {
            commit: unsigned("commit_position")?,
            prepare: unsigned("prepare_position")?,
        },
        events_applied: unsigned("events_applied")?,
        last_recorded_at: DateTime::parse_from_rfc3339(&recorded)
            .map_err(|e| column_error("last_recorded_at", e))?
            .with_timezone(&Utc),
    })
}

fn column_error(
    column: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> ProjectionError {
    ProjectionError::Database(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(source),
    })
}

/// A log position or count as the read database stores it (`BIGINT`).
pub(crate) fn db_int(value: u64) -> Result<i64, ProjectionError> {
    i64::try_from(value).map_err(|e| ProjectionError::Database(sqlx::Error::Encode(Box::new(e))))
}

/// Moves the checkpoint from `expected` to `next`, or fails with
/// [`ProjectionError::CheckpointMoved`] if it is not at `expected` any more.
async fn write_checkpoint(
    conn: &mut AnyConnection,
    expected: Option<Position>,
    next: &Checkpoint,
) -> Result<(), ProjectionError> {
    let values = (
        db_int(next.position.commit)?,
        db_int(next.position.prepare)?,
        db_int(next.events_applied)?,
        format_timestamp(&next.last_recorded_at),
    );
    let written =
        match expected {
            None => {
                sqlx::query(
                    "INSERT INTO projector_checkpoints \
                 (name, commit_position, prepare_position, events_applied, last_recorded_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&next.name)
                .bind(values.0)
                .bind(values.1)
                .bind(values.2)
                .bind(values.3)
                .execute(&mut *conn)
                .await?
            }
            Some(at) => sqlx::query(
                "UPDATE projector_checkpoints SET commit_position = $2, prepare_position = $3, \
                 events_applied = $4, last_recorded_at = $5 \
                 WHERE name = $1 AND commit_position = $6 AND prepare_position = $7",
            )
            .bind(&next.name)
            .bind(values.0)
            .bind(values.1)
            .bind(values.2)
            .bind(values.3)
            .bind(db_int(at.commit)?)
            .bind(db_int(at.prepare)?)
            .execute(&mut *conn)
            .await?,
        };
    if written.rows_affected() == 1 {
        Ok(())
    } else {
        Err(ProjectionError::CheckpointMoved {
            projector: next.name.clone(),
        })
    }
}

/// A projector that fails on purpose, to show that a crash mid-batch loses
/// and duplicates nothing.
///
/// It delegates to `inner` (same name, same tables, so it shares the inner
/// projector's checkpoint) but fails its `fail_at`-th `apply` call, counted
/// from its creation or its previous injected failure, `failures` times. The
/// failing call's batch is rolled back and the count restarts, so with a
/// fixed batch size, `fail_at = k × batch_size + n` (n ≤ batch size) kills
/// the `n`-th event of the `(k + 1)`-th batch after each (re)start, until the
/// failures are used up.
pub struct FailingProjector {
    /// The projector that does the work.
    inner: Arc<dyn Projector>,
    /// Which call fails (1-based).
    fail_at: u64,
    /// Injected failures still to come.
    failures_left: AtomicU64,
    /// `apply` calls since creation or the last injected failure.
    calls: AtomicU64,
}

impl FailingProjector {
    /// Wraps `inner` to fail its `fail_at`-th apply call (1-based), `failures`
    /// times over.
    pub fn new(inner: Arc<dyn Projector>, fail_at: u64, failures: u64) -> Self {
        Self {
            inner,
            fail_at: fail_at.max(1),
            failures_left: AtomicU64::new(failures),
            calls: AtomicU64::new(0),
        }
    }

    /// Injected failures still to come.
    pub fn failures_left(&self) -> u64 {
        self.failures_left.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Projector for FailingProjector {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if self.failures_left.load(Ordering::SeqCst) > 0 {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if call >= self.fail_at {
                self.calls.store(0, Ordering::SeqCst);
                self.failures_left.fetch_sub(1, Ordering::SeqCst);
                return Err(ProjectionError::Injected(format!(
                    "{} failed on purpose at event {} ({})",
                    self.inner.name(),
                    event.position,
                    event.event_type
                )));
            }
        }
        self.inner.apply(conn, event).await
    }
}
