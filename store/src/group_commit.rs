//! Machinery shared by the SQL backends: group commit and polling
//! subscriptions.
//!
//! **Group commit.** Every append is sent to one writer task per store. The
//! task takes the first waiting request plus every other request already
//! queued (up to [`MAX_BATCH_EVENTS`] events) and commits them in one
//! database transaction, so N concurrent writers pay for one fsync, not N.
//! Each request keeps its own expected-revision check: a request that
//! conflicts is answered `Conflict` and left out, the rest of the batch
//! commits. A reply is sent only after the transaction committed, so an
//! acknowledged append is durable. If the batch transaction fails for any
//! reason but a lost connection (say, a duplicate event id in one request),
//! the writer retries the requests one transaction each, so one bad request
//! cannot fail its neighbours.
//!
//! Inside the transaction the backend holds the store's write lock (SQLite:
//! `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), reads
//! the highest position and numbers the new events after it. Commits are
//! therefore serialised and positions become visible strictly in order: a
//! reader that has seen position N has seen every position below N, so a
//! projector paging by position never skips an event that commits late.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::chain::{self, GENESIS_HASH};
use crate::{
    AppendError, AppendOutcome, EventStream, ExpectedRevision, NewEvent, Position, RecordedEvent,
    Revision, StoreError, StreamId,
};

/// Upper bound on the events committed in one transaction.
pub(crate) const MAX_BATCH_EVENTS: usize = 8_192;

/// How long a subscription waits for an in-process wake-up before polling the
/// database again (another process may have appended).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Page size of subscriptions catching up.
const SUBSCRIPTION_PAGE: usize = 512;

/// One append waiting for the writer.
pub(crate) struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

/// The last event of a stream, as far as a batch is concerned.
#[derive(Clone)]
pub(crate) struct StreamHead {
    pub revision: Revision,
    pub hash: String,
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
/// and the log's highest position. Returns the rows to insert and, per
/// request, its outcome; conflicting requests contribute no rows.
pub(crate) fn plan_batch(
    requests: &[&AppendRequest],
    mut heads: HashMap<StreamId, StreamHead>,
    mut last_position: u64,
    recorded_at: DateTime<Utc>,
) -> (Vec<RecordedEvent>, Vec<Result<AppendOutcome, AppendError>>) {
    let mut rows = Vec::new();
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
            let sealed = chain::seal(
                &req.stream,
                revision,
                position,
                &prev_hash,
                recorded_at,
                event.clone(),
            );
            prev_hash = sealed.metadata.hash.clone();
            rows.push(sealed);
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

/// Starts the writer task and returns the queue feeding it. The task ends
/// when every sender is dropped. `appended` is notified after each commit.
pub(crate) fn spawn_writer<W: BatchWriter>(
    mut writer: W,
    appended: Arc<Notify>,
) -> mpsc::UnboundedSender<AppendRequest> {
    let (tx, mut rx) = mpsc::unbounded_channel::<AppendRequest>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let mut events = batch[0].events.len();
            while events < MAX_BATCH_EVENTS {
                match rx.try_recv() {
                    Ok(next) => {
                        events += next.events.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            let outcomes = commit(&mut writer, &batch).await;
            for (req, outcome) in batch.into_iter().zip(outcomes) {
                // The caller may have gone away (request cancelled); the
                // append is committed either way.
                let _ = req.reply.send(outcome);
            }
            appended.notify_waiters();
        }
    });
    tx
}

async fn commit<W: BatchWriter>(
    writer: &mut W,
    batch: &[AppendRequest],
) -> Vec<Result<AppendOutcome, AppendError>> {
    let all: Vec<&AppendRequest> = batch.iter().collect();
    match writer.write_batch(&all).await {
        Ok(outcomes) => outcomes,
        Err(BatchError::Unavailable(msg)) => batch
            .iter()
            .map(|_| Err(StoreError::Unavailable(msg.clone()).into()))
            .collect(),
        Err(BatchError::Rejected(msg)) if batch.len() == 1 => {
            vec![Err(StoreError::Invalid(msg).into())]
        }
        Err(BatchError::Rejected(_)) => {
            let mut outcomes = Vec::with_capacity(batch.len());
            for req in batch {
                outcomes.push(match writer.write_batch(&[req]).await {
                    Ok(mut one) => one
                        .pop()
                        .unwrap_or_else(|| Err(StoreError::Invalid("empty outcome".into()).into())),
                    Err(BatchError::Unavailable(msg)) => Err(StoreError::Unavailable(msg).into()),
                    Err(BatchError::Rejected(msg)) => Err(StoreError::Invalid(msg).into()),
                });
            }
            outcomes
        }
    }
}

/// Hands `request` to the writer and waits for its outcome.
pub(crate) async fn submit(
    queue: &mpsc::UnboundedSender<AppendRequest>,
    stream: &StreamId,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
) -> Result<AppendOutcome, AppendError> {
    let (reply, outcome) = oneshot::channel();
    queue
        .send(AppendRequest {
            stream: stream.clone(),
            expected,
            events,
            reply,
        })
        .map_err(|_| StoreError::Unavailable("event store writer has stopped".into()))?;
    outcome
        .await
        .map_err(|_| StoreError::Unavailable("event store writer has stopped".into()))?
}

/// A subscription built on paged reads: catch up from `after`, then wait for
/// a wake-up from `appended` (or [`POLL_INTERVAL`], for writers in other
/// processes) and read again. Positions only grow and become visible in
/// order, so paging strictly after the last delivered position neither skips
/// nor repeats an event. A failed read is delivered as an error item and
/// retried after the poll interval.
pub(crate) fn poll_subscription<F, Fut>(
    after: Option<Position>,
    appended: Arc<Notify>,
    fetch: F,
) -> EventStream
where
    F: Fn(Option<Position>, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send + 'static,
{
    struct State<F> {
        after: Option<Position>,
        buffer: VecDeque<RecordedEvent>,
        appended: Arc<Notify>,
        fetch: F,
        failed: bool,
    }
    let state = State {
        after,
        buffer: VecDeque::new(),
        appended,
        fetch,
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.buffer.pop_front() {
                st.after = Some(event.position);
                return Some((Ok(event), st));
            }
            if st.failed {
                tokio::time::sleep(POLL_INTERVAL).await;
                st.failed = false;
            }
            let appended = Arc::clone(&st.appended);
            let notified = appended.notified();
            tokio::pin!(notified);
            // Register for the wake-up before reading, so an append that
            // lands between the read and the wait is not missed.
            notified.as_mut().enable();
            match (st.fetch)(st.after, SUBSCRIPTION_PAGE).await {
                Ok(page) if !page.is_empty() => st.buffer.extend(page),
                Ok(_) => {
                    let _ = tokio::time::timeout(POLL_INTERVAL, notified).await;
                }
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    }))
}
