//! Basketry projections: the projector runtime (consume the global log from
//! a checkpoint, apply a batch and write the checkpoint in one transaction,
//! rebuild from zero), the read-model schema with its sqlx migrations, and
//! the projectors that fill it.
//!
//! Read models live in SQLite (embedded default) or PostgreSQL, reached
//! through sqlx's `Any` driver with one portable schema
//! (`migrations/`): see [`db`].
//!
//! Wiring, as `basketry serve` does it: open the read database with
//! [`db::open`], build a [`ProjectorRuntime`] over the event store, that pool
//! and [`projectors::all`], and spawn [`ProjectorRuntime::run`]; call
//! [`ProjectorRuntime::stop`] on shutdown. `/metrics` and `/readyz` read
//! [`ProjectorRuntime::status`]; `basketry projections rebuild [NAME]` calls
//! [`ProjectorRuntime::rebuild`]; a process that does not run the projectors
//! (the query role) can follow their progress with [`runtime::checkpoints`].

#![warn(missing_docs)]

pub mod db;
pub mod lease;
pub mod projectors;
pub mod runtime;

pub use runtime::{
    Checkpoint, FailingProjector, ProjectorRuntime, ProjectorStatus, RuntimeConfig, StopHandle,
};

use basketry_domain::basket::BasketEvent;
use basketry_domain::partner::PartnerEvent;
use basketry_domain::subscription::SubscriptionEvent;
use basketry_domain::DomainEvent;
use basketry_store::{RecordedEvent, StoreError};
use sqlx::AnyConnection;

/// A named consumer of the global log that keeps some read-model tables.
///
/// `apply_batch` runs inside the batch transaction the runtime opened; the
/// runtime writes the projector's checkpoint in the same transaction, so an
/// event is applied exactly once across crashes. Projectors copy what events
/// carry; they never re-run business rules, so a rebuild from position zero
/// gives identical rows.
#[async_trait::async_trait]
pub trait Projector: Send + Sync + 'static {
    /// Stable name: the checkpoint key and the CLI argument.
    fn name(&self) -> &'static str;

    /// The tables this projector alone writes (emptied by a rebuild and
    /// compared by audits).
    fn tables(&self) -> &'static [&'static str];

    /// Applies a batch of events (non-empty, in log order, each decoded once
    /// for every projector of the batch), ignoring the types it does not
    /// care about. The rows it leaves must be those that applying the events
    /// one by one would leave; how it gets there (multi-row statements,
    /// state accumulated over the batch and written once) is its own
    /// business.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError>;
}

/// Which of the domain's event enums a stored type belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// [`BasketEvent`].
    Basket,
    /// [`SubscriptionEvent`].
    Subscription,
    /// [`PartnerEvent`].
    Partner,
}

/// What an event's data decoded to.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// A basket event.
    Basket(BasketEvent),
    /// A subscription event.
    Subscription(SubscriptionEvent),
    /// A partner event.
    Partner(PartnerEvent),
    /// A type of `family` whose data does not decode (or whose version is
    /// newer than this build reads): every projector of that family stops
    /// at it.
    Invalid {
        /// The enum the type belongs to.
        family: Family,
        /// What the domain's decoder said.
        reason: String,
    },
    /// A type no projector here reads (another aggregate's, or one from a
    /// newer build): skipped by every projector.
    Other,
}

/// An event of the log, decoded once for every projector of a batch.
///
/// The event's `data` is moved into [`DecodedEvent::decoded`] when a
/// domain enum knows its type (`event.data` is then `null`, also when it
/// does not decode); an event of an unknown type keeps it.
#[derive(Debug, Clone)]
pub struct DecodedEvent {
    /// The stored event (position, id, metadata).
    pub event: RecordedEvent,
    /// Its data, decoded through the domain's upcasters.
    pub decoded: Decoded,
}

impl DecodedEvent {
    /// Decodes `event` with whichever domain enum knows its type.
    pub fn new(mut event: RecordedEvent) -> Self {
        fn take<E: DomainEvent>(
            event: &mut RecordedEvent,
            family: Family,
            wrap: fn(E) -> Decoded,
        ) -> Option<Decoded> {
            E::current_version(&event.event_type)?;
            let data = std::mem::take(&mut event.data);
            Some(
                match E::from_stored(&event.event_type, event.schema_version, data) {
                    Ok(e) => wrap(e),
                    Err(e) => Decoded::Invalid {
                        family,
                        reason: e.to_string(),
                    },
                },
            )
        }
        let decoded =
            take::<SubscriptionEvent>(&mut event, Family::Subscription, Decoded::Subscription)
                .or_else(|| take::<BasketEvent>(&mut event, Family::Basket, Decoded::Basket))
                .or_else(|| take::<PartnerEvent>(&mut event, Family::Partner, Decoded::Partner))
                .unwrap_or(Decoded::Other);
        Self { event, decoded }
    }

    fn invalid(&self, family: Family) -> Result<(), ProjectionError> {
        match &self.decoded {
            Decoded::Invalid { family: f, reason } if *f == family => {
                Err(ProjectionError::Decode {
                    event_id: self.event.event_id,
                    event_type: self.event.event_type.clone(),
                    reason: reason.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The basket event, `None` for another family's or an unknown type, a
    /// [`ProjectionError::Decode`] for a basket type that does not decode.
    pub fn basket(&self) -> Result<Option<&BasketEvent>, ProjectionError> {
        self.invalid(Family::Basket)?;
        Ok(match &self.decoded {
            Decoded::Basket(e) => Some(e),
            _ => None,
        })
    }

    /// The subscription event (as [`Self::basket`]).
    pub fn subscription(&self) -> Result<Option<&SubscriptionEvent>, ProjectionError> {
        self.invalid(Family::Subscription)?;
        Ok(match &self.decoded {
            Decoded::Subscription(e) => Some(e),
            _ => None,
        })
    }

    /// The partner event (as [`Self::basket`]).
    pub fn partner(&self) -> Result<Option<&PartnerEvent>, ProjectionError> {
        self.invalid(Family::Partner)?;
        Ok(match &self.decoded {
            Decoded::Partner(e) => Some(e),
            _ => None,
        })
    }
}

/// Why a projector could not make progress.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read database failed or refused a statement.
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
    /// The event store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event does not decode through the domain's upcasters.
    #[error("event {event_id} ({event_type}) does not decode: {reason}")]
    Decode {
        /// The event.
        event_id: uuid::Uuid,
        /// Its stored type.
        event_type: String,
        /// What the domain's decoder said.
        reason: String,
    },
    /// An event refers to a read-model row that its history never created
    /// (e.g. a strategy added to a basket the log never created). A correct
    /// log cannot contain one, so the projector stops rather than guess.
    #[error("event {event_id} ({event_type}) does not fit the read model: {reason}")]
    Inconsistent {
        /// The event.
        event_id: uuid::Uuid,
        /// Its stored type.
        event_type: String,
        /// What is missing or wrong.
        reason: String,
    },
    /// Another runner (a rebuild, or a second instance of the projector)
    /// moved the checkpoint while this batch was being applied; the batch
    /// was rolled back and the runner resumes from the new checkpoint.
    #[error("checkpoint of projector {projector} moved under this batch")]
    CheckpointMoved {
        /// The projector whose checkpoint moved.
        projector: String,
    },
    /// No projector has that name.
    #[error("unknown projector {0}")]
    UnknownProjector(String),
    /// The read database URL is not one this crate can open.
    #[error("invalid read database URL: {0}")]
    InvalidUrl(String),
    /// The read-model migrations could not be applied.
    #[error("read database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A failure injected by a test (crash simulation).
    #[error("injected failure: {0}")]
    Injected(String),
}

impl ProjectionError {
    /// A [`ProjectionError::Inconsistent`] about `event`.
    pub fn inconsistent(event: &RecordedEvent, reason: impl Into<String>) -> Self {
        ProjectionError::Inconsistent {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            reason: reason.into(),
        }
    }
}

/// Decodes `event` as one of the enum `E`'s types, through the domain's
/// upcasters.
///
/// `Ok(None)` when `E` has no event of that type (another aggregate's event,
/// or a type from a newer build that this projector does not know: skipped,
/// so an unknown type never stalls a projector). A type `E` knows whose data
/// does not decode is an error: copying half-understood facts into a read
/// model would be worse than stopping.
pub fn decode<E: basketry_domain::DomainEvent>(
    event: &RecordedEvent,
) -> Result<Option<E>, ProjectionError> {
    if E::current_version(&event.event_type).is_none() {
        return Ok(None);
    }
    E::from_stored(&event.event_type, event.schema_version, event.data.clone())
        .map(Some)
        .map_err(|e| ProjectionError::Decode {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use basketry_domain::BasketEvent;
    use basketry_store::{Actor, EventMetadata, Position, Revision, StreamId};
    use serde_json::{json, Value};

    use super::*;

    fn recorded(event_type: &str, schema_version: u32, data: Value) -> RecordedEvent {
        RecordedEvent {
            event_id: uuid::Uuid::now_v7(),
            stream_id: StreamId::parse("basket-x").unwrap(),
            revision: Revision(0),
            position: Position::sequence(1),
            event_type: event_type.into(),
            schema_version,
            data,
            metadata: EventMetadata {
                actor: Actor {
                    kind: "system".into(),
                    id: "test".into(),
                },
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: None,
                idempotency_key: None,
                recorded_at: chrono::Utc::now(),
                prev_hash: String::new(),
                hash: String::new(),
            },
        }
    }

    #[test]
    fn types_of_other_aggregates_and_unknown_types_are_not_decoded() {
        for event_type in ["SubscribedToTemplate", "SomethingFromTheFuture"] {
            let e = recorded(event_type, 1, json!({}));
            assert!(decode::<BasketEvent>(&e).unwrap().is_none(), "{event_type}");
        }
    }

    #[test]
    fn a_known_type_that_does_not_decode_is_an_error() {
        let malformed = recorded("BasketCreated", 1, json!({"nonsense": true}));
        let newer = recorded("TemplateUnpublished", 7, json!({}));
        for e in [malformed, newer] {
            match decode::<BasketEvent>(&e) {
                Err(ProjectionError::Decode {
                    event_id,
                    event_type,
                    ..
                }) => assert_eq!((event_id, event_type), (e.event_id, e.event_type.clone())),
                other => panic!("expected a decode error, got {other:?}"),
            }
        }
    }
}
