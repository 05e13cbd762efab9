//! Event store wrappers for tests that inject faults: [`Intercepted`]
//! passes every call to the real store, after a test's [`StoreHooks`] have
//! seen it. A hook may hold an append back (to stage a race or a process
//! that stops), refuse it (to stage a conflict or an outage), or count
//! reads of the log.

use std::sync::Arc;

use async_trait::async_trait;
use basketry_store::{
    AppendError, AppendOutcome, EventStore, EventStream, ExpectedRevision, NewEvent, Position,
    RecordedEvent, Revision, StoreError, StreamId,
};

/// What a test does before a call reaches the real store; by default,
/// nothing.
#[async_trait]
pub trait StoreHooks: Send + Sync + 'static {
    /// Runs before the append to `stream`; an error is returned to the
    /// caller instead of appending.
    async fn before_append(
        &self,
        _stream: &StreamId,
        _expected: ExpectedRevision,
    ) -> Result<(), AppendError> {
        Ok(())
    }

    /// Runs before `stream` is read.
    fn before_read_stream(&self, _stream: &StreamId) {}

    /// Runs before each page of the whole log is read.
    fn before_read_all(&self) {}
}

/// An event store whose calls pass through a test's [`StoreHooks`].
pub struct Intercepted<H> {
    inner: Arc<dyn EventStore>,
    hook: Arc<H>,
}

impl<H: StoreHooks> Intercepted<H> {
    /// `inner` with its calls passing through `hook` first.
    pub fn wrap(inner: Arc<dyn EventStore>, hook: Arc<H>) -> Arc<dyn EventStore> {
        Arc::new(Self { inner, hook })
    }
}

#[async_trait]
impl<H: StoreHooks> EventStore for Intercepted<H> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.hook.before_append(stream, expected).await?;
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Revision,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.hook.before_read_stream(stream);
        self.inner.read_stream(stream, from).await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.hook.before_read_all();
        self.inner.read_all(after, limit).await
    }

    async fn subscribe_all(&self, after: Option<Position>) -> Result<EventStream, StoreError> {
        self.inner.subscribe_all(after).await
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.inner.head().await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.inner.health().await
    }
}
