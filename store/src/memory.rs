//! In-process event store for unit tests and examples.
//!
//! One mutex guards the whole log, so appends are atomic and positions are
//! handed out in the order events become visible. Subscribers are woken by a
//! [`Notify`] after each append.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::chain::{self, GENESIS_HASH};
use crate::{
    check_append, now_micros, AppendError, AppendOutcome, EventStore, EventStream,
    ExpectedRevision, NewEvent, Position, RecordedEvent, Revision, StoreError, StreamId,
};

#[derive(Default)]
struct Log {
    /// Every event, in position order; event `i` has position `i + 1`.
    events: Vec<RecordedEvent>,
    /// For each stream, the log indices of its events in revision order.
    streams: HashMap<StreamId, Vec<usize>>,
    /// Every stored event id, to refuse a second write of the same event.
    ids: HashSet<uuid::Uuid>,
}

/// An event store that lives and dies with the process.
#[derive(Clone, Default)]
pub struct MemoryStore {
    log: Arc<Mutex<Log>>,
    appended: Arc<Notify>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Log>, StoreError> {
        self.log
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }

    fn page(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.lock()?;
        // Positions are 1-based indices into `events`.
        let start = after.map_or(0, |p| p.commit as usize).min(log.events.len());
        Ok(log.events[start..].iter().take(limit).cloned().collect())
    }
}

#[async_trait::async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        check_append(&events)?;
        let outcome = {
            let mut log = self.lock()?;
            let indices = log.streams.get(stream);
            let actual = indices
                .and_then(|ix| ix.last())
                .map(|&i| log.events[i].revision);
            if !expected.admits(actual) {
                return Err(AppendError::Conflict { expected, actual });
            }
            let mut fresh = HashSet::with_capacity(events.len());
            if let Some(dup) = events
                .iter()
                .find(|e| log.ids.contains(&e.event_id) || !fresh.insert(e.event_id))
            {
                return Err(StoreError::Invalid(format!(
                    "event id {} already stored",
                    dup.event_id
                ))
                .into());
            }
            let mut prev_hash = indices
                .and_then(|ix| ix.last())
                .map_or(GENESIS_HASH.to_string(), |&i| {
                    log.events[i].metadata.hash.clone()
                });
            let mut revision = actual.map_or(Revision::START, Revision::next);
            let recorded_at = now_micros();
            let mut last = None;
            for event in events {
                let position = Position::sequence(log.events.len() as u64 + 1);
                let sealed =
                    chain::seal(stream, revision, position, &prev_hash, recorded_at, event);
                prev_hash = sealed.metadata.hash.clone();
                let index = log.events.len();
                log.ids.insert(sealed.event_id);
                log.events.push(sealed);
                log.streams.entry(stream.clone()).or_default().push(index);
                last = Some(AppendOutcome {
                    last_revision: revision,
                    last_position: position,
                });
                revision = revision.next();
            }
            last.ok_or_else(|| StoreError::Invalid("an append needs at least one event".into()))?
        };
        self.appended.notify_waiters();
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Revision,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let log = self.lock()?;
        Ok(log
            .streams
            .get(stream)
            .map(|ix| {
                ix.iter()
                    .skip(from.0 as usize)
                    .map(|&i| log.events[i].clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.page(after, limit)
    }

    async fn subscribe_all(&self, after: Option<Position>) -> Result<EventStream, StoreError> {
        let store = self.clone();
        Ok(crate::poll::poll_subscription(
            after,
            Arc::clone(&self.appended),
            move |after, limit| {
                let store = store.clone();
                async move { store.page(after, limit) }
            },
        ))
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let log = self.lock()?;
        Ok(log.events.last().map(|e| e.position))
    }
}
