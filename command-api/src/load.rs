//! Loading aggregates from the event store: read the stream, decode each
//! event through the domain's upcasters, fold. The command side reads
//! stored events only through here: [`read`] for the decoded history
//! (with when each event was recorded), [`load`] for the folded state.

use basketry_domain::{Aggregate, DecodeError, DomainEvent};
use basketry_store::{EventStore, ExpectedRevision, Position, Revision, StoreError, StreamId};
use chrono::{DateTime, Utc};

use crate::error::ApiError;

/// An aggregate's state and the revision it was folded up to.
#[derive(Debug, Clone)]
pub struct Loaded<S> {
    /// The folded state (`Default` when the stream does not exist).
    pub state: S,
    /// The stream's last revision, `None` when it does not exist.
    pub revision: Option<Revision>,
    /// Global position of the stream's last event: the consistency token of
    /// a command that changed nothing.
    pub position: Option<Position>,
}

impl<S: Default> Loaded<S> {
    /// A stream that does not exist: the default state, no revision.
    pub fn empty() -> Self {
        Self {
            state: S::default(),
            revision: None,
            position: None,
        }
    }
}

impl<S> Loaded<S> {
    /// The expectation under which appending keeps this state's decisions
    /// valid.
    pub fn expected(&self) -> ExpectedRevision {
        self.revision
            .map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact)
    }

    /// Whether the stream exists.
    pub fn exists(&self) -> bool {
        self.revision.is_some()
    }
}

/// Why an aggregate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event no longer decodes: a bug or a missing upcaster.
    #[error("event {revision} of stream {stream} does not decode: {source}")]
    Decode {
        stream: String,
        revision: u64,
        source: DecodeError,
    },
}

/// The stream named `name`; the names come from the domain's
/// `stream_name` functions, so a refusal here is a bug.
pub fn stream(name: String) -> Result<StreamId, ApiError> {
    StreamId::parse(name).map_err(|e| ApiError::Internal(e.to_string()))
}

/// One event of a stream, decoded through the domain's upcasters.
#[derive(Debug, Clone)]
pub struct Recorded<E> {
    /// The event, at its current schema version.
    pub event: E,
    /// Its revision in the stream.
    pub revision: Revision,
    /// Its global position.
    pub position: Position,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
}

/// Reads the whole stream `stream` as the events of aggregate `A`.
pub async fn read<A: Aggregate>(
    store: &dyn EventStore,
    stream: &StreamId,
) -> Result<Vec<Recorded<A::Event>>, LoadError> {
    store
        .read_stream(stream, Revision::START)
        .await?
        .into_iter()
        .map(|recorded| {
            let event =
                A::Event::from_stored(&recorded.event_type, recorded.schema_version, recorded.data)
                    .map_err(|source| LoadError::Decode {
                        stream: stream.to_string(),
                        revision: recorded.revision.0,
                        source,
                    })?;
            Ok(Recorded {
                event,
                revision: recorded.revision,
                position: recorded.position,
                recorded_at: recorded.metadata.recorded_at,
            })
        })
        .collect()
}

/// Reads and folds the whole stream `stream` as aggregate `A`.
pub async fn load<A: Aggregate>(
    store: &dyn EventStore,
    stream: &StreamId,
) -> Result<Loaded<A::State>, LoadError> {
    let mut loaded = Loaded::empty();
    for recorded in read::<A>(store, stream).await? {
        loaded.state = A::evolve(loaded.state, &recorded.event);
        loaded.revision = Some(recorded.revision);
        loaded.position = Some(recorded.position);
    }
    Ok(loaded)
}
