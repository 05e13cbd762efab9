//! Machinery shared by the SQL backends: group commit (their polling
//! subscriptions are in [`crate::poll`]).
//!
//! **Group commit.** Every append is sent to one writer task per store. The
//! task takes the first waiting request plus every other request already
//! queued (up to [`MAX_BATCH_EVENTS`] events) and commits them in one
//! database transaction, so N concurrent writers pay for one fsync, not N.
//! While the batch is smaller than the last one, it first yields to the
//! appending tasks for up to [`MAX_LINGER`], so that the callers it just
//! answered join the next commit instead of splitting it.
//! Each request keeps its own expected-revision check: a request that
//! conflicts is answered `Conflict` and left out, the rest of the batch
//! commits. A reply is sent only after the transaction committed, so an
//! acknowledged append is durable. If the batch transaction fails for any
//! reason but a lost connection (say, a duplicate event id in one request),
//! the writer retries the requests one transaction each, so one bad request
//! cannot fail its neighbours.
//!
//! **Back-pressure and supervision** (`docs/adr/0013-back-pressure-timeouts-and-pools.md`).
//! The queue is bounded ([`WriterLimits::capacity`]): a full queue refuses
//! an append at once as unavailable. A request waits at most
//! [`WriterLimits::queue_wait`] for the writer to *take* it; one not taken by
//! then is withdrawn (never written) and answered unavailable. Once taken it
//! is answered with its real outcome, however long that takes: the
//! transaction is bounded by the database's own timeouts (SQLite's busy
//! timeout, PostgreSQL's `lock_timeout` and `statement_timeout`), so a
//! caller is never told "failed" for an append that then commits. A batch
//! the database could not run (locked, busy, unreachable) fails as a whole;
//! the writer then probes the write lock every [`PROBE_EVERY`] while idle,
//! and [`Writer::health`] reports it unavailable until a transaction
//! succeeds again. A writer task that ended or panicked, or whose batch has
//! run longer than [`WriterLimits::stuck_after`], makes every new append and
//! the health probe answer unavailable at once.
//!
//! Inside the transaction the backend holds the store's write lock (SQLite:
//! `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), reads
//! the highest position and numbers the new events after it. Commits are
//! therefore serialised and positions become visible strictly in order: a
//! reader that has seen position N has seen every position below N, so a
//! projector paging by position never skips an event that commits late.

// SQLite's writer is a thread ([`spawn_thread_writer`]), PostgreSQL's a
// task ([`spawn_writer`]): a build with one of the two backends leaves the
// other flavour unused.
#![cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};

use crate::chain::{self, GENESIS_HASH};
use crate::{
    AppendError, AppendOutcome, ExpectedRevision, NewEvent, Position, Revision, StoreError,
    StreamId,
};

/// Upper bound on the events committed in one transaction.
pub(crate) const MAX_BATCH_EVENTS: usize = 8_192;

/// Longest the writer waits, yielding to the tasks queuing appends, for a
/// batch to grow back to the size of the last one (see [`spawn_writer`]). A
/// fraction of one PostgreSQL commit's flush on this class of disk
/// (`docs/adr/0016-data-path.md`); the wait also ends as soon as a yield
/// brings no new append.
const MAX_LINGER: Duration = Duration::from_micros(500);

/// How long an idle writer whose last transaction failed as unavailable
/// waits before trying the write lock again (so health recovers without a
/// write).
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The writer's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterLimits {
    /// Appends the queue holds; one more is refused at once.
    pub capacity: usize,
    /// Longest wait in the queue for the writer to take an append.
    pub queue_wait: Duration,
    /// A batch running longer than this means the writer is stuck. Longer
    /// than any batch the database's timeouts let run.
    pub stuck_after: Duration,
}

impl Default for WriterLimits {
    fn default() -> Self {
        Self {
            capacity: 4_096,
            queue_wait: Duration::from_secs(5),
            stuck_after: Duration::from_secs(60),
        }
    }
}

/// An append's place in its life: still queued, taken by the writer, or
/// withdrawn by its caller. Moving out of `QUEUED` is a compare-and-set, so
/// the writer and a caller that gives up can never both win.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

/// An event made ready for the writer by the appending task: everything of
/// its stored row and of its hash that does not depend on where the writer
/// puts it (revision, position, previous hash, commit time) is computed
/// before it is queued, off the writer's critical path.
pub(crate) struct PreparedEvent {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// `data` as stored.
    pub data_json: String,
    /// The stored metadata document without `recorded_at`
    /// ([`chain::StoredMetadata::json_head`]).
    metadata_head: String,
    canonical: chain::CanonicalParts,
}

impl PreparedEvent {
    pub(crate) fn of(stream: &StreamId, event: NewEvent) -> Self {
        Self {
            canonical: chain::CanonicalParts::of(stream, &event),
            metadata_head: chain::StoredMetadata::json_head(&event.metadata),
            data_json: event.data.to_string(),
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
        }
    }
}

/// One event row a batch inserts.
pub(crate) struct PlannedRow<'a> {
    pub position: Position,
    pub stream_id: &'a StreamId,
    pub revision: Revision,
    pub event: &'a PreparedEvent,
    /// The stored metadata document.
    pub metadata_json: String,
    pub prev_hash: String,
    pub hash: String,
}

/// One append waiting for the writer.
pub(crate) struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedRevision,
    pub events: Vec<PreparedEvent>,
    pub reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
    state: Arc<AtomicU8>,
}

impl AppendRequest {
    /// Whether the writer may write this request (and from now on must).
    fn take(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, TAKEN, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// What the writer task reports about itself.
#[derive(Default)]
struct WriterHealth {
    /// When the batch in progress started; `None` while idle.
    busy_since: Mutex<Option<Instant>>,
    /// Why the last transaction failed as unavailable, until one succeeds.
    failing: Mutex<Option<String>>,
    /// The task ended (panicked, or every sender went).
    dead: AtomicBool,
}

impl WriterHealth {
    fn busy_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // Only whole values are stored: a poisoned lock holds a valid one.
        self.busy_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The handle appends go through; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<AppendRequest>,
    health: Arc<WriterHealth>,
    limits: WriterLimits,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("event store writer has stopped".into())
}

impl Writer {
    /// `Ok` while the writer runs, is not stuck and its last transaction
    /// did not fail as unavailable.
    pub(crate) fn health(&self) -> Result<(), StoreError> {
        self.alive()?;
        match self.health.failing().clone() {
            Some(why) => Err(StoreError::Unavailable(why)),
            None => Ok(()),
        }
    }

    /// `Ok` unless the writer task ended or is stuck in a batch.
    fn alive(&self) -> Result<(), StoreError> {
        if self.health.dead.load(Ordering::SeqCst) {
            return Err(stopped());
        }
        if let Some(since) = *self.health.busy_since() {
            if since.elapsed() > self.limits.stuck_after {
                return Err(StoreError::Unavailable(format!(
                    "event store writer is stuck in a transaction for {} s",
                    since.elapsed().as_secs()
                )));
            }
        }
        Ok(())
    }

    /// Hands the append to the writer and waits for its outcome (see the
    /// module documentation for the bounds).
    pub(crate) async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.alive()?;
        let events = events
            .into_iter()
            .map(|e| PreparedEvent::of(stream, e))
            .collect();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (reply, outcome) = oneshot::channel();
        self.queue
            .try_send(AppendRequest {
                stream: stream.clone(),
                expected,
                events,
                reply,
                state: Arc::clone(&state),
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("the event store's write queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => stopped(),
            })?;
        tokio::pin!(outcome);
        if let Ok(answer) = tokio::time::timeout(self.limits.queue_wait, &mut outcome).await {
            return answer.map_err(|_| stopped())?;
        }
        if state
            .compare_exchange(QUEUED, WITHDRAWN, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            // The writer will skip it: nothing was or will be written.
            return Err(StoreError::Unavailable(
                "the event store's writer did not take the append in time".into(),
            )
            .into());
        }
        // Taken: the transaction runs under the database's timeouts, and
        // only its outcome may answer (it may commit).
        outcome.await.map_err(|_| stopped())?
    }
}

/// The last event of a stream, as far as a batch is concerned.
#[derive(Clone)]
pub(crate) struct StreamHead {
    pub revision: Revision,
    pub hash: String,
}

/// The distinct streams of a batch, sorted: what its one head lookup asks
/// for.
pub(crate) fn batch_streams<'a>(requests: &[&'a AppendRequest]) -> Vec<&'a str> {
    let mut streams: Vec<&str> = requests.iter().map(|r| r.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    streams
}

/// The heads of a batch's streams from the `(stream_id, revision, hash)`
/// rows of its head lookup (a stream without events has no row).
pub(crate) fn heads_from_rows(
    rows: Vec<(String, i64, String)>,
) -> Result<HashMap<StreamId, StreamHead>, sqlx::Error> {
    let mut heads = HashMap::with_capacity(rows.len());
    for (stream, revision, hash) in rows {
        let stream = StreamId::parse(stream).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        heads.insert(
            stream,
            StreamHead {
                revision: Revision(revision as u64),
                hash,
            },
        );
    }
    Ok(heads)
}

/// What a backend does inside one transaction.
#[async_trait::async_trait]
pub(crate) trait BatchWriter: Send + 'static {
    /// Opens a transaction holding the store's write lock, runs
    /// [`plan_batch`] with the current heads of the requests' streams and
    /// the highest position, inserts the planned rows and commits. Returns
    /// the per-request outcomes, or the error that aborted the transaction.
    async fn write_batch(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchError>;
}

/// Why a batch transaction did not commit.
pub(crate) enum BatchError {
    /// The database cannot be reached: every request fails alike.
    Unavailable(String),
    /// The database refused the transaction (constraint, bad data): retry the
    /// requests one by one to find the culprit.
    Rejected(String),
}

/// Numbers and seals the events of `requests` against the given stream heads
/// and the log's highest position, stamping them with `recorded_at`
/// (formatted with [`chain::format_timestamp`]). Returns the rows to insert
/// and, per request, its outcome; conflicting requests contribute no rows.
/// The hashes are those [`chain::seal`] gives; only the hashing of each
/// prepared canonical form is left to do here.
pub(crate) fn plan_batch<'a>(
    requests: &[&'a AppendRequest],
    mut heads: HashMap<StreamId, StreamHead>,
    mut last_position: u64,
    recorded_at: &str,
) -> (Vec<PlannedRow<'a>>, Vec<Result<AppendOutcome, AppendError>>) {
    let mut rows = Vec::with_capacity(requests.iter().map(|r| r.events.len()).sum());
    let mut outcomes = Vec::with_capacity(requests.len());
    for req in requests {
        let head = heads.get(&req.stream).cloned();
        let actual = head.as_ref().map(|h| h.revision);
        if !req.expected.admits(actual) {
            outcomes.push(Err(AppendError::Conflict {
                expected: req.expected,
                actual,
            }));
            continue;
        }
        let mut prev_hash = head.map_or_else(|| GENESIS_HASH.to_string(), |h| h.hash);
        let mut revision = actual.map_or(Revision::START, Revision::next);
        let mut outcome = None;
        for event in &req.events {
            last_position += 1;
            let position = Position::sequence(last_position);
            let hash = event.canonical.link_hash(&prev_hash, revision, recorded_at);
            let row_prev = std::mem::replace(&mut prev_hash, hash.clone());
            rows.push(PlannedRow {
                position,
                stream_id: &req.stream,
                revision,
                event,
                metadata_json: chain::StoredMetadata::finish_json(
                    &event.metadata_head,
                    recorded_at,
                ),
                prev_hash: row_prev,
                hash,
            });
            outcome = Some(AppendOutcome {
                last_revision: revision,
                last_position: position,
            });
            revision = revision.next();
        }
        match outcome {
            Some(o) => {
                heads.insert(
                    req.stream.clone(),
                    StreamHead {
                        revision: o.last_revision,
                        hash: prev_hash,
                    },
                );
                outcomes.push(Ok(o));
            }
            None => outcomes.push(Err(StoreError::Invalid(
                "an append needs at least one event".into(),
            )
            .into())),
        }
    }
    (rows, outcomes)
}

/// Starts the writer task, and a watcher that marks it dead should it end,
/// and returns the handle feeding it. The task ends when every handle is
/// dropped. `appended` is notified after each commit.
pub(crate) fn spawn_writer<W: BatchWriter>(
    mut writer: W,
    appended: Arc<Notify>,
    limits: WriterLimits,
) -> Writer {
    let (tx, mut rx) = mpsc::channel::<AppendRequest>(limits.capacity.max(1));
    let health = Arc::new(WriterHealth::default());
    let report = Arc::clone(&health);
    let task = tokio::spawn(async move {
        let mut last_batch = 0;
        loop {
            let failing = report.failing().is_some();
            let first = if failing {
                match tokio::time::timeout(PROBE_EVERY, rx.recv()).await {
                    Ok(Some(first)) => first,
                    Ok(None) => break,
                    Err(_) => {
                        // Idle while unavailable: try the write lock with an
                        // empty transaction, so health recovers by itself.
                        *report.busy_since() = Some(Instant::now());
                        let probed = writer.write_batch(&[]).await;
                        *report.busy_since() = None;
                        *report.failing() = match probed {
                            Ok(_) => None,
                            Err(BatchError::Unavailable(why) | BatchError::Rejected(why)) => {
                                Some(why)
                            }
                        };
                        continue;
                    }
                }
            } else {
                match rx.recv().await {
                    Some(first) => first,
                    None => break,
                }
            };
            let mut batch = Vec::new();
            let mut events = 0;
            if first.take() {
                events += first.events.len();
                batch.push(first);
            }
            drain_queue(&mut rx, &mut batch, &mut events);
            // The callers of the last batch, answered a moment ago, are
            // typically still queuing their next appends: let them, so that
            // one commit carries them all rather than the first few.
            let lingering = Instant::now();
            while batch.len() < last_batch && lingering.elapsed() < MAX_LINGER {
                tokio::task::yield_now().await;
                if !drain_queue(&mut rx, &mut batch, &mut events) {
                    break;
                }
            }
            if batch.is_empty() {
                continue;
            }
            last_batch = batch.len();
            *report.busy_since() = Some(Instant::now());
            let outcomes = commit(&mut writer, &batch).await;
            *report.busy_since() = None;
            *report.failing() = outcomes.iter().find_map(|o| match o {
                Err(AppendError::Store(StoreError::Unavailable(why))) => Some(why.clone()),
                _ => None,
            });
            for (req, outcome) in batch.into_iter().zip(outcomes) {
                // The caller may have gone away (request cancelled); the
                // append is committed either way.
                let _ = req.reply.send(outcome);
            }
            appended.notify_waiters();
        }
    });
    let watched = Arc::clone(&health);
    tokio::spawn(async move {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the event store writer task died; appends answer 503");
        }
        watched.dead.store(true, Ordering::SeqCst);
    });
    Writer {
        queue: tx,
        health,
        limits,
    }
}

/// What a backend whose connection lives on a thread of its own does inside
/// one transaction: [`BatchWriter::write_batch`], called on that thread, so
/// a batch costs no hand-off per statement.
pub(crate) trait BlockingBatchWriter: Send + 'static {
    /// As [`BatchWriter::write_batch`]; an empty `requests` only takes and
    /// releases the write lock (the health probe).
    fn write_batch(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchError>;
}

/// How often a failing thread writer looks at its queue while it waits to
/// probe the write lock again.
const PROBE_POLL: Duration = Duration::from_millis(10);

/// Marks the writer dead when its thread ends, however it ends (a panic
/// unwinds through this guard).
struct MarkDeadOnExit(Arc<WriterHealth>);

impl Drop for MarkDeadOnExit {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the event store writer thread died; appends answer 503");
        }
        self.0.dead.store(true, Ordering::SeqCst);
    }
}

/// [`spawn_writer`] for a [`BlockingBatchWriter`]: the queue is read by an
/// OS thread named `name` that owns the writer, takes batches exactly as the
/// writer task does (same bounds, same take/withdraw rule, same health), and
/// answers each request from that thread. The thread ends when every handle
/// is dropped.
pub(crate) fn spawn_thread_writer<W: BlockingBatchWriter>(
    name: &str,
    mut writer: W,
    appended: Arc<Notify>,
    limits: WriterLimits,
) -> std::io::Result<Writer> {
    let (tx, mut rx) = mpsc::channel::<AppendRequest>(limits.capacity.max(1));
    let health = Arc::new(WriterHealth::default());
    let report = Arc::clone(&health);
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _dead = MarkDeadOnExit(Arc::clone(&report));
            let mut idle_since = Instant::now();
            let mut last_batch = 0;
            loop {
                let first = if report.failing().is_some() {
                    match rx.try_recv() {
                        Ok(first) => first,
                        Err(mpsc::error::TryRecvError::Disconnected) => break,
                        Err(mpsc::error::TryRecvError::Empty) => {
                            if idle_since.elapsed() < PROBE_EVERY {
                                std::thread::sleep(PROBE_POLL);
                                continue;
                            }
                            // Idle while unavailable: try the write lock with
                            // an empty transaction, so health recovers by
                            // itself.
                            *report.busy_since() = Some(Instant::now());
                            let probed = writer.write_batch(&[]);
                            *report.busy_since() = None;
                            *report.failing() = match probed {
                                Ok(_) => None,
                                Err(BatchError::Unavailable(why) | BatchError::Rejected(why)) => {
                                    Some(why)
                                }
                            };
                            idle_since = Instant::now();
                            continue;
                        }
                    }
                } else {
                    match rx.blocking_recv() {
                        Some(first) => first,
                        None => break,
                    }
                };
                let batch = take_batch(first, &mut rx, last_batch);
                if batch.is_empty() {
                    continue;
                }
                last_batch = batch.len();
                *report.busy_since() = Some(Instant::now());
                let outcomes = commit_blocking(&mut writer, &batch);
                *report.busy_since() = None;
                *report.failing() = outcomes.iter().find_map(|o| match o {
                    Err(AppendError::Store(StoreError::Unavailable(why))) => Some(why.clone()),
                    _ => None,
                });
                for (req, outcome) in batch.into_iter().zip(outcomes) {
                    // The caller may have gone away (request cancelled); the
                    // append is committed either way.
                    let _ = req.reply.send(outcome);
                }
                appended.notify_waiters();
                idle_since = Instant::now();
            }
        })?;
    Ok(Writer {
        queue: tx,
        health,
        limits,
    })
}

/// `first` and every request already queued behind it that the writer may
/// still take, up to [`MAX_BATCH_EVENTS`] events. As the writer task does,
/// while the batch is smaller than the last one (`last_batch`) the thread
/// gives way to the appending tasks for at most [`MAX_LINGER`], so the
/// callers it has just answered can queue their next appends into this
/// commit; at low load (a last batch of one) it never waits.
fn take_batch(
    first: AppendRequest,
    rx: &mut mpsc::Receiver<AppendRequest>,
    last_batch: usize,
) -> Vec<AppendRequest> {
    let mut batch = Vec::new();
    let mut events = 0;
    if first.take() {
        events += first.events.len();
        batch.push(first);
    }
    drain_queue(rx, &mut batch, &mut events);
    let lingering = Instant::now();
    while batch.len() < last_batch && events < MAX_BATCH_EVENTS && lingering.elapsed() < MAX_LINGER
    {
        std::thread::yield_now();
        drain_queue(rx, &mut batch, &mut events);
    }
    batch
}

/// Moves the requests already queued that the writer may still take into
/// `batch`, up to [`MAX_BATCH_EVENTS`] events. Whether it took any.
fn drain_queue(
    rx: &mut mpsc::Receiver<AppendRequest>,
    batch: &mut Vec<AppendRequest>,
    events: &mut usize,
) -> bool {
    let before = batch.len();
    while *events < MAX_BATCH_EVENTS {
        match rx.try_recv() {
            Ok(next) => {
                if next.take() {
                    *events += next.events.len();
                    batch.push(next);
                }
            }
            Err(_) => break,
        }
    }
    batch.len() > before
}

/// [`commit`] for a [`BlockingBatchWriter`].
fn commit_blocking<W: BlockingBatchWriter>(
    writer: &mut W,
    batch: &[AppendRequest],
) -> Vec<Result<AppendOutcome, AppendError>> {
    let all: Vec<&AppendRequest> = batch.iter().collect();
    if let Some(outcomes) = batch_outcomes(batch.len(), writer.write_batch(&all)) {
        return outcomes;
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut unavailable = None;
    for req in batch {
        // Once the database is unavailable, the rest would only wait out the
        // same timeout one by one.
        let outcome = match &unavailable {
            Some(msg) => Err(StoreError::Unavailable(Clone::clone(msg)).into()),
            None => single_outcome(writer.write_batch(&[req]), &mut unavailable),
        };
        outcomes.push(outcome);
    }
    outcomes
}

async fn commit<W: BatchWriter>(
    writer: &mut W,
    batch: &[AppendRequest],
) -> Vec<Result<AppendOutcome, AppendError>> {
    let all: Vec<&AppendRequest> = batch.iter().collect();
    if let Some(outcomes) = batch_outcomes(batch.len(), writer.write_batch(&all).await) {
        return outcomes;
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut unavailable = None;
    for req in batch {
        // Once the database is unavailable, the rest would only wait out the
        // same timeout one by one.
        let outcome = match &unavailable {
            Some(msg) => Err(StoreError::Unavailable(Clone::clone(msg)).into()),
            None => single_outcome(writer.write_batch(&[req]).await, &mut unavailable),
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// What a whole batch's result means for each of its requests; `None` when
/// the database rejected the batch and its requests must be retried one by
/// one, so that one bad request cannot fail its neighbours.
fn batch_outcomes(
    len: usize,
    result: Result<Vec<Result<AppendOutcome, AppendError>>, BatchError>,
) -> Option<Vec<Result<AppendOutcome, AppendError>>> {
    match result {
        Ok(outcomes) => Some(outcomes),
        Err(BatchError::Unavailable(msg)) => Some(
            (0..len)
                .map(|_| Err(StoreError::Unavailable(msg.clone()).into()))
                .collect(),
        ),
        Err(BatchError::Rejected(msg)) if len == 1 => {
            Some(vec![Err(StoreError::Invalid(msg).into())])
        }
        Err(BatchError::Rejected(_)) => None,
    }
}

/// The outcome of one request retried alone; an unavailable database is
/// noted in `unavailable`, so the requests after it are not tried.
fn single_outcome(
    result: Result<Vec<Result<AppendOutcome, AppendError>>, BatchError>,
    unavailable: &mut Option<String>,
) -> Result<AppendOutcome, AppendError> {
    match result {
        Ok(mut one) => one
            .pop()
            .unwrap_or_else(|| Err(StoreError::Invalid("empty outcome".into()).into())),
        Err(BatchError::Unavailable(msg)) => {
            *unavailable = Some(msg.clone());
            Err(StoreError::Unavailable(msg).into())
        }
        Err(BatchError::Rejected(msg)) => Err(StoreError::Invalid(msg).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, NewMetadata};

    /// A writer that commits whatever it is given (numbering from zero each
    /// time) after `gate` lets it, panics on `panic_on`, and records the
    /// streams it wrote.
    struct Fake {
        gate: Arc<tokio::sync::Semaphore>,
        written: Arc<Mutex<Vec<String>>>,
        panic_on: Option<String>,
    }

    #[async_trait::async_trait]
    impl BatchWriter for Fake {
        async fn write_batch(
            &mut self,
            requests: &[&AppendRequest],
        ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchError> {
            if requests.is_empty() {
                return Ok(Vec::new());
            }
            if requests
                .iter()
                .any(|r| Some(r.stream.as_str()) == self.panic_on.as_deref())
            {
                panic!("injected writer failure");
            }
            self.gate
                .acquire()
                .await
                .map_err(|e| BatchError::Unavailable(e.to_string()))?
                .forget();
            let stamp = chain::format_timestamp(&crate::now_micros());
            let (_, outcomes) = plan_batch(requests, HashMap::new(), 0, &stamp);
            self.written
                .lock()
                .unwrap()
                .extend(requests.iter().map(|r| r.stream.to_string()));
            Ok(outcomes)
        }
    }

    fn event() -> Vec<NewEvent> {
        vec![NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "Happened".into(),
            schema_version: 1,
            data: serde_json::json!({}),
            metadata: NewMetadata {
                actor: Actor {
                    kind: "system".into(),
                    id: "test".into(),
                },
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: None,
                idempotency_key: None,
            },
        }]
    }

    fn stream(name: &str) -> StreamId {
        StreamId::parse(name).unwrap()
    }

    const LIMITS: WriterLimits = WriterLimits {
        capacity: 1,
        queue_wait: Duration::from_millis(200),
        stuck_after: Duration::from_millis(600),
    };

    /// [`Fake`] on a thread of its own ([`spawn_thread_writer`]).
    struct BlockingFake(Fake);

    impl BlockingBatchWriter for BlockingFake {
        fn write_batch(
            &mut self,
            requests: &[&AppendRequest],
        ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchError> {
            if !requests.is_empty() {
                if requests
                    .iter()
                    .any(|r| Some(r.stream.as_str()) == self.0.panic_on.as_deref())
                {
                    panic!("injected writer failure");
                }
                loop {
                    match self.0.gate.try_acquire() {
                        Ok(permit) => {
                            permit.forget();
                            break;
                        }
                        Err(tokio::sync::TryAcquireError::NoPermits) => {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(e) => return Err(BatchError::Unavailable(e.to_string())),
                    }
                }
            }
            let stamp = chain::format_timestamp(&crate::now_micros());
            let (_, outcomes) = plan_batch(requests, HashMap::new(), 0, &stamp);
            self.0
                .written
                .lock()
                .unwrap()
                .extend(requests.iter().map(|r| r.stream.to_string()));
            Ok(outcomes)
        }
    }

    type Spawned = (Writer, Arc<tokio::sync::Semaphore>, Arc<Mutex<Vec<String>>>);

    fn spawn_thread(panic_on: Option<&str>) -> Spawned {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let written = Arc::new(Mutex::new(Vec::new()));
        let writer = spawn_thread_writer(
            "test-writer",
            BlockingFake(Fake {
                gate: Arc::clone(&gate),
                written: Arc::clone(&written),
                panic_on: panic_on.map(str::to_string),
            }),
            Arc::new(Notify::new()),
            LIMITS,
        )
        .unwrap();
        (writer, gate, written)
    }

    fn spawn(panic_on: Option<&str>) -> Spawned {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let written = Arc::new(Mutex::new(Vec::new()));
        let writer = spawn_writer(
            Fake {
                gate: Arc::clone(&gate),
                written: Arc::clone(&written),
                panic_on: panic_on.map(str::to_string),
            },
            Arc::new(Notify::new()),
            LIMITS,
        );
        (writer, gate, written)
    }

    fn is_unavailable(r: &Result<AppendOutcome, AppendError>) -> bool {
        matches!(r, Err(AppendError::Store(StoreError::Unavailable(_))))
    }

    fn request(
        stream_name: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> AppendRequest {
        let stream = stream(stream_name);
        let (reply, _) = oneshot::channel();
        AppendRequest {
            events: events
                .iter()
                .map(|e| PreparedEvent::of(&stream, e.clone()))
                .collect(),
            stream,
            expected,
            reply,
            state: Arc::new(AtomicU8::new(TAKEN)),
        }
    }

    /// The writer's rows, sealed from prepared parts, are exactly what
    /// `chain::seal` makes of the same events in the same places: hash,
    /// previous hash, stored `data` and `metadata` documents.
    #[test]
    fn planned_rows_are_the_rows_seal_makes() {
        let mut a = event();
        a.extend(event());
        a[1].data = serde_json::json!({"z": [1, {"b": "é\"", "a": null}], "a": 2});
        a[1].metadata.idempotency_key = Some("idem \"1\"".into());
        let mut b = event();
        b[0].metadata.causation_id = Some(uuid::Uuid::now_v7());
        let requests = [
            request("basket-1", ExpectedRevision::Exact(Revision(4)), &a),
            request("basket-2", ExpectedRevision::NoStream, &b),
            // Conflicts: contributes no row.
            request("basket-2", ExpectedRevision::Exact(Revision(9)), &b),
            request("basket-1", ExpectedRevision::Any, &b),
        ];
        let refs: Vec<&AppendRequest> = requests.iter().collect();
        let head = StreamHead {
            revision: Revision(4),
            hash: "ab".repeat(32),
        };
        let heads = HashMap::from([(stream("basket-1"), head.clone())]);
        let at = crate::now_micros();
        let (rows, outcomes) = plan_batch(&refs, heads, 41, &chain::format_timestamp(&at));
        assert!(matches!(outcomes[2], Err(AppendError::Conflict { .. })));
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 3);

        let mut expected = Vec::new();
        let mut prev = HashMap::from([("basket-1", (Revision(5), head.hash))]);
        let mut position = 41;
        for (name, events) in [("basket-1", &a), ("basket-2", &b), ("basket-1", &b)] {
            let link = prev
                .entry(name)
                .or_insert((Revision::START, GENESIS_HASH.to_string()));
            for e in events.iter() {
                position += 1;
                let sealed = chain::seal(
                    &stream(name),
                    link.0,
                    Position::sequence(position),
                    &link.1,
                    at,
                    e.clone(),
                );
                *link = (link.0.next(), sealed.metadata.hash.clone());
                expected.push(sealed);
            }
        }
        assert_eq!(rows.len(), expected.len());
        for (row, sealed) in rows.iter().zip(&expected) {
            assert_eq!(row.position, sealed.position);
            assert_eq!(row.stream_id, &sealed.stream_id);
            assert_eq!(row.revision, sealed.revision);
            assert_eq!(row.event.event_id, sealed.event_id);
            assert_eq!(row.event.event_type, sealed.event_type);
            assert_eq!(row.event.schema_version, sealed.schema_version);
            assert_eq!(row.event.data_json, sealed.data.to_string());
            assert_eq!(
                row.metadata_json,
                chain::StoredMetadata::of(&sealed.metadata).to_json()
            );
            assert_eq!(row.prev_hash, sealed.metadata.prev_hash);
            assert_eq!(row.hash, sealed.metadata.hash);
            assert_eq!(chain::expected_hash(sealed), row.hash);
        }
    }

    #[tokio::test]
    async fn a_slow_writer_refuses_in_bounded_time_and_never_writes_a_withdrawn_append() {
        a_slow_writer_refuses_in_bounded_time_and_never_writes_a_withdrawn_append_with(spawn).await;
    }

    #[tokio::test]
    async fn on_a_thread_a_slow_writer_refuses_in_bounded_time_and_never_writes_a_withdrawn_append()
    {
        a_slow_writer_refuses_in_bounded_time_and_never_writes_a_withdrawn_append_with(
            spawn_thread,
        )
        .await;
    }

    async fn a_slow_writer_refuses_in_bounded_time_and_never_writes_a_withdrawn_append_with(
        spawn: fn(Option<&str>) -> Spawned,
    ) {
        let (writer, gate, written) = spawn(None);
        // `taken` is taken at once and held at the gate.
        let w = writer.clone();
        let taken = tokio::spawn(async move {
            w.append(&stream("taken"), ExpectedRevision::Any, event())
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // `queued` fills the one-place queue; the next one is refused at once.
        let w = writer.clone();
        let queued = tokio::spawn(async move {
            w.append(&stream("queued"), ExpectedRevision::Any, event())
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let full = writer
            .append(&stream("full"), ExpectedRevision::Any, event())
            .await;
        assert!(is_unavailable(&full), "{full:?}");
        assert!(started.elapsed() < LIMITS.queue_wait);
        // `queued` is not taken within the queue wait: withdrawn, 503.
        let queued = queued.await.unwrap();
        assert!(is_unavailable(&queued), "{queued:?}");
        // `taken` outlives the queue wait and keeps waiting for its outcome.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !taken.is_finished(),
            "a taken append is answered by its outcome only"
        );
        gate.add_permits(10);
        let taken = taken.await.unwrap();
        assert!(taken.is_ok(), "{taken:?}");
        // Whatever the writer does next, the withdrawn append is never written.
        writer
            .append(&stream("later"), ExpectedRevision::Any, event())
            .await
            .expect("the writer goes on");
        assert_eq!(*written.lock().unwrap(), vec!["taken", "later"]);
        assert!(writer.health().is_ok());
    }

    #[tokio::test]
    async fn a_stuck_writer_makes_health_and_new_appends_unavailable_at_once() {
        a_stuck_writer_makes_health_and_new_appends_unavailable_at_once_with(spawn).await;
    }

    #[tokio::test]
    async fn on_a_thread_a_stuck_writer_makes_health_and_new_appends_unavailable_at_once() {
        a_stuck_writer_makes_health_and_new_appends_unavailable_at_once_with(spawn_thread).await;
    }

    async fn a_stuck_writer_makes_health_and_new_appends_unavailable_at_once_with(
        spawn: fn(Option<&str>) -> Spawned,
    ) {
        let (writer, gate, _) = spawn(None);
        let w = writer.clone();
        let stuck = tokio::spawn(async move {
            w.append(&stream("stuck"), ExpectedRevision::Any, event())
                .await
        });
        tokio::time::sleep(LIMITS.stuck_after + Duration::from_millis(100)).await;
        assert!(writer.health().is_err(), "stuck for longer than the bound");
        let started = Instant::now();
        let refused = writer
            .append(&stream("next"), ExpectedRevision::Any, event())
            .await;
        assert!(is_unavailable(&refused), "{refused:?}");
        assert!(started.elapsed() < LIMITS.queue_wait);
        gate.add_permits(10);
        assert!(stuck.await.unwrap().is_ok());
        assert!(writer.health().is_ok(), "unstuck: healthy again");
    }

    #[tokio::test]
    async fn a_dead_writer_makes_health_and_appends_unavailable() {
        a_dead_writer_makes_health_and_appends_unavailable_with(spawn).await;
    }

    #[tokio::test]
    async fn on_a_thread_a_dead_writer_makes_health_and_appends_unavailable() {
        a_dead_writer_makes_health_and_appends_unavailable_with(spawn_thread).await;
    }

    async fn a_dead_writer_makes_health_and_appends_unavailable_with(
        spawn: fn(Option<&str>) -> Spawned,
    ) {
        let (writer, gate, _) = spawn(Some("boom"));
        gate.add_permits(10);
        let died = writer
            .append(&stream("boom"), ExpectedRevision::Any, event())
            .await;
        assert!(is_unavailable(&died), "{died:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(writer.health().is_err());
        let after = writer
            .append(&stream("after"), ExpectedRevision::Any, event())
            .await;
        assert!(is_unavailable(&after), "{after:?}");
    }
}
