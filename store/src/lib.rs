//! The Basketry event store.
//!
//! One trait, [`EventStore`], and four backends, each but the first behind
//! a cargo feature of the same name:
//!
//! * `memory::MemoryStore` — in-process, for unit tests (always compiled);
//! * `sqlite::SqliteStore` — the zero-configuration embedded default (WAL),
//!   feature `sqlite` (on by default);
//! * `postgres::PostgresStore` — shared SQL store for scale-out, feature
//!   `postgres`;
//! * `kurrent::KurrentStore` — KurrentDB, the production store, feature
//!   `kurrentdb`.
//!
//! [`connect`] opens the backend a URL names ([`Backend::from_url`] is the
//! one place a URL's scheme is read) and refuses one whose feature was left
//! out of the build.
//!
//! Every backend seals events the same way ([`chain`]): it stamps
//! `recorded_at`, links each event to the previous one of its stream with a
//! SHA-256 hash chain and returns [`RecordedEvent`]s whose global
//! [`Position`]s only grow. The `conformance` module (feature
//! `conformance`, for test harnesses only) holds the one suite every
//! backend must pass.
//!
//! The store knows nothing of baskets or subscriptions: event data is opaque
//! JSON tagged with a type name and a schema version. Turning that into domain
//! events (and upcasting old versions) is the caller's business.

pub mod chain;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group_commit;
#[cfg(feature = "kurrentdb")]
pub mod kurrent;
pub mod memory;
mod poll;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::fmt;
use std::pin::Pin;

use chrono::{DateTime, SubsecRound, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest stream name accepted by every backend.
pub const MAX_STREAM_ID_LEN: usize = 200;

/// The name of a stream, e.g. `subscription-0190…`.
///
/// Stream names are part of the audit contract (docs/reference/events.md#streams), so they are checked
/// once here: 1–200 characters, ASCII letters, digits and `-_.:@`, and never
/// starting with `$` (KurrentDB reserves that prefix for system streams).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Parses a stream name, refusing anything a backend could not store
    /// faithfully.
    pub fn parse(name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        let valid_char = |c: char| c.is_ascii_alphanumeric() || "-_.:@".contains(c);
        if name.is_empty()
            || name.len() > MAX_STREAM_ID_LEN
            || name.starts_with('$')
            || !name.chars().all(valid_char)
        {
            return Err(StoreError::Invalid(format!(
                "stream id must be 1-{MAX_STREAM_ID_LEN} characters of [A-Za-z0-9-_.:@], got {:?}",
                name.chars().take(40).collect::<String>()
            )));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Zero-based index of an event within its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Revision(pub u64);

impl Revision {
    pub const START: Revision = Revision(0);

    pub fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the writer believes about the stream it appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet (reservations, creations).
    NoStream,
    /// The stream's last event must have exactly this revision.
    Exact(Revision),
}

impl ExpectedRevision {
    /// Whether a stream whose last revision is `actual` satisfies `self`.
    pub fn admits(self, actual: Option<Revision>) -> bool {
        match self {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => actual.is_none(),
            ExpectedRevision::Exact(r) => actual == Some(r),
        }
    }
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::Exact(r) => write!(f, "revision {r}"),
        }
    }
}

/// A place in the global log.
///
/// KurrentDB addresses `$all` with a (commit, prepare) pair; the SQL and
/// memory backends use one global sequence number and set both halves to it.
/// Positions compare commit first, then prepare, and strictly increase along
/// the log.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct Position {
    pub commit: u64,
    pub prepare: u64,
}

impl Position {
    /// The position of the `n`th event of a single-sequence log.
    pub fn sequence(n: u64) -> Self {
        Self {
            commit: n,
            prepare: n,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.commit, self.prepare)
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `admin`, `user`, `partner`, `auditor`, `executor` or `system`.
    pub kind: String,
    /// The actor's id: a user id, a partner's api key id, `billing`, ….
    pub id: String,
}

/// Metadata the writer supplies with each event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMetadata {
    pub actor: Actor,
    /// Shared by every event caused by one request.
    pub correlation_id: Uuid,
    /// The event or request that caused this one, when there is one.
    pub causation_id: Option<Uuid>,
    /// The request's `Idempotency-Key`, when it had one.
    pub idempotency_key: Option<String>,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// UUIDv7, chosen by the writer so that retries can be recognised.
    pub event_id: Uuid,
    /// PascalCase, past tense: `SubscribedToTemplate`.
    pub event_type: String,
    /// Version of `data`'s schema for this event type; readers upcast older ones.
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub metadata: NewMetadata,
}

/// Metadata as recorded: what the writer gave plus what the store stamped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    /// When the store accepted the event, truncated to microseconds so every
    /// backend round-trips it exactly.
    pub recorded_at: DateTime<Utc>,
    /// Hash of the previous event of the stream ([`chain::GENESIS_HASH`] for
    /// the first one), lower-case hex.
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this event's canonical form, lower-case hex.
    pub hash: String,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream_id: StreamId,
    pub revision: Revision,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub metadata: EventMetadata,
}

/// The result of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    /// Revision of the last event written: the next `Exact` expectation.
    pub last_revision: Revision,
    /// Global position of the last event written: the consistency token.
    pub last_position: Position,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream was not where the writer expected it; nothing was written.
    #[error("stream is at {}, expected {expected}", actual.map_or("no stream".to_string(), |r| format!("revision {r}")))]
    Conflict {
        expected: ExpectedRevision,
        /// The stream's last revision, `None` when it does not exist.
        actual: Option<Revision>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Failures of the store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or refused the operation; retry later.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A stored event could not be decoded.
    #[error("stored event is corrupt: {0}")]
    Corrupt(String),
    /// The request itself is invalid (bad stream id, empty append, …).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A live feed of the global log, in position order.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>;

/// The event store every Basketry component talks to.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream` atomically if the stream is at `expected`.
    /// Either every event is written, with consecutive revisions, or none.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError>;

    /// The stream's events from revision `from` on, in revision order; empty
    /// when the stream does not exist.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Revision,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the global log strictly after `after` (from the
    /// start when `None`), in position order. A page never skips an event
    /// that a later page would show at an earlier position.
    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Every event strictly after `after`, then every later one as it is
    /// appended, for as long as the stream is polled.
    async fn subscribe_all(&self, after: Option<Position>) -> Result<EventStream, StoreError>;

    /// Position of the newest event of the log, `None` when it is empty.
    async fn head(&self) -> Result<Option<Position>, StoreError>;

    /// Whether the store can take appends now, for `/readyz`: `Ok` when it
    /// answers reads and (on the SQL stores) its writer runs, is not stuck
    /// and did not last fail to reach the database.
    async fn health(&self) -> Result<(), StoreError> {
        self.head().await.map(|_| ())
    }
}

/// The kind of event store a URL names, read from its scheme.
///
/// Every backend is listed whether or not this build has it, so that any
/// build understands a URL (and can refuse it clearly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `memory:` — a fresh in-process store.
    Memory,
    /// `sqlite://path` or `sqlite:path` — embedded.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
    /// `kurrentdb://…`, `kurrentdb+discover://…`, `esdb://…` or
    /// `esdb+discover://…`.
    KurrentDb,
}

impl Backend {
    /// The backend `url` names, by its scheme (the text before the first
    /// `:`); [`StoreError::Invalid`] for any other scheme. Nothing else of
    /// the URL is looked at, nor echoed (it may hold a password).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "memory" => Ok(Backend::Memory),
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "kurrentdb" | "kurrentdb+discover" | "esdb" | "esdb+discover" => Ok(Backend::KurrentDb),
            _ => Err(StoreError::Invalid(
                "event store URL must start with sqlite://, postgres://, kurrentdb:// or memory:"
                    .into(),
            )),
        }
    }

    /// The cargo feature of `basketry-store` that compiles this backend in;
    /// `None` for the memory backend, which is always there.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Backend::Memory => None,
            Backend::Sqlite => Some("sqlite"),
            Backend::Postgres => Some("postgres"),
            Backend::KurrentDb => Some("kurrentdb"),
        }
    }

    /// Whether this build can open the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Memory => true,
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::KurrentDb => cfg!(feature = "kurrentdb"),
        }
    }

    /// Whether the backend numbers its log 1, 2, 3, … without gaps (the SQL
    /// and memory backends), so that a missing position means a missing
    /// event. KurrentDB's positions are offsets into its log, where gaps
    /// mean nothing.
    pub fn numbers_positions_densely(self) -> bool {
        !matches!(self, Backend::KurrentDb)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::KurrentDb => "KurrentDB",
        })
    }
}

/// Opens the event store named by `url`:
///
/// * `sqlite://path/to/events.db` (or `sqlite:path`) — embedded;
/// * `postgres://…` / `postgresql://…`;
/// * `kurrentdb://…` / `kurrentdb+discover://…` / `esdb://…` — KurrentDB;
/// * `memory:` — a fresh in-process store.
///
/// A backend whose cargo feature this build left out is refused with
/// [`StoreError::Invalid`] naming the feature.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn EventStore>, StoreError> {
    use std::sync::Arc;
    Ok(match Backend::from_url(url)? {
        Backend::Memory => Arc::new(memory::MemoryStore::new()),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(url).await?),
        #[cfg(feature = "postgres")]
        Backend::Postgres => Arc::new(postgres::PostgresStore::connect(url).await?),
        #[cfg(feature = "kurrentdb")]
        Backend::KurrentDb => Arc::new(kurrent::KurrentStore::connect(url)?),
        #[allow(unreachable_patterns)] // when every backend is compiled in
        left_out => return Err(not_compiled(left_out)),
    })
}

/// The refusal of a URL whose backend this build does not have.
fn not_compiled(backend: Backend) -> StoreError {
    StoreError::Invalid(format!(
        "this build has no {backend} event store: \
         rebuild with the `{}` feature of basketry-store",
        backend.feature().unwrap_or("memory")
    ))
}

/// A copy of an embedded migrator that tolerates versions it does not know.
///
/// sqlx keeps every migration of a database in one `_sqlx_migrations` table.
/// When the event store and the read models share a PostgreSQL database,
/// each side's migrator would otherwise refuse to run because of the other
/// side's versions; their version numbers never collide (see
/// `docs/adr/0003-event-store-schema.md`).
pub async fn sharing_migrator(
    embedded: &'static sqlx::migrate::Migrator,
) -> Result<sqlx::migrate::Migrator, sqlx::migrate::MigrateError> {
    #[derive(Debug)]
    struct Embedded(&'static [sqlx::migrate::Migration]);
    impl<'s> sqlx::migrate::MigrationSource<'s> for Embedded {
        fn resolve(
            self,
        ) -> futures::future::BoxFuture<
            's,
            Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
        > {
            Box::pin(async move { Ok(self.0.to_vec()) })
        }
    }
    let migrations: &'static [sqlx::migrate::Migration] = &embedded.migrations;
    let mut migrator = sqlx::migrate::Migrator::new(Embedded(migrations)).await?;
    migrator.set_ignore_missing(true);
    Ok(migrator)
}

/// Current time truncated to microseconds: the precision every backend keeps.
pub(crate) fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Refuses appends that no backend may accept.
pub(crate) fn check_append(events: &[NewEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::Invalid(
            "an append needs at least one event".into(),
        ));
    }
    for e in events {
        if e.event_type.is_empty()
            || e.event_type.len() > 100
            || e.event_type.starts_with('$')
            || !e.event_type.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(StoreError::Invalid(format!(
                "event type must be 1-100 ASCII letters or digits, got {:?}",
                e.event_type.chars().take(40).collect::<String>()
            )));
        }
        if e.schema_version == 0 {
            return Err(StoreError::Invalid("schema_version starts at 1".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_its_backend_by_scheme() {
        for (url, backend) in [
            ("memory:", Backend::Memory),
            ("sqlite://./data/events.db", Backend::Sqlite),
            ("sqlite:events.db", Backend::Sqlite),
            ("sqlite::memory:", Backend::Sqlite),
            ("postgres://u@h/db", Backend::Postgres),
            ("postgresql://u@h/db", Backend::Postgres),
            ("kurrentdb://h:2113?tls=false", Backend::KurrentDb),
            ("kurrentdb+discover://h:2113", Backend::KurrentDb),
            ("esdb://h:2113", Backend::KurrentDb),
            ("esdb+discover://h:2113", Backend::KurrentDb),
        ] {
            assert_eq!(Backend::from_url(url).ok(), Some(backend), "{url}");
        }
        for url in ["", "mysql://u:pw@h/db", "SQLITE://x", "./events.db"] {
            match Backend::from_url(url) {
                Err(StoreError::Invalid(message)) => assert!(!message.contains("pw"), "{message}"),
                other => panic!("{url}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn only_kurrentdb_numbers_its_log_with_gaps() {
        assert!(Backend::Memory.numbers_positions_densely());
        assert!(Backend::Sqlite.numbers_positions_densely());
        assert!(Backend::Postgres.numbers_positions_densely());
        assert!(!Backend::KurrentDb.numbers_positions_densely());
    }

    #[test]
    fn a_backend_left_out_of_the_build_is_refused_naming_its_feature() {
        for backend in [Backend::Sqlite, Backend::Postgres, Backend::KurrentDb] {
            let feature = backend.feature().expect("behind a feature");
            match not_compiled(backend) {
                StoreError::Invalid(message) => {
                    assert!(
                        message.contains(&format!("`{feature}` feature")),
                        "{message}"
                    );
                }
                other => panic!("expected Invalid, got {other:?}"),
            }
        }
        assert_eq!(Backend::Memory.feature(), None);
        assert!(Backend::Memory.is_compiled());
    }

    #[tokio::test]
    async fn connect_opens_the_memory_backend_and_refuses_unknown_schemes() {
        let store = connect("memory:")
            .await
            .expect("memory is always compiled in");
        assert_eq!(store.head().await.expect("answers"), None);
        assert!(matches!(
            connect("mysql://localhost/db").await.map(|_| ()),
            Err(StoreError::Invalid(_))
        ));
    }
}
