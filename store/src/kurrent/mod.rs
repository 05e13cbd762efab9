//! KurrentDB backend: [`KurrentStore`], over the official `kurrentdb` 1.2
//! gRPC client.
//!
//! One file per concern: `connection` (the client and its replacement),
//! `append`, `read`, `subscription` (with its `spin` guard), `codec`
//! (events as KurrentDB stores them) and `errors`.
//!
//! # How the store's concepts map onto KurrentDB
//!
//! * A Basketry stream is the KurrentDB stream of the same name, and
//!   [`Revision`] `n` is KurrentDB's stream revision (event number) `n`.
//! * [`Position`] `{commit, prepare}` is KurrentDB's `$all` position, copied
//!   verbatim. The gRPC append writes every event as its own self-committed
//!   prepare record, so the server reports `(p, p)` for it — `p` being the
//!   record's log position — whether the event is read from its stream, from
//!   `$all` or from a subscription; all three views therefore agree.
//! * An event is stored with `data` as its JSON body (content type
//!   `application/json`), the event type as KurrentDB's event type,
//!   `NewEvent::event_id` as its id, and a custom-metadata JSON object holding
//!   `schema_version`, `prev_hash`, `hash`, `actor`, `correlation_id`,
//!   `causation_id`, `idempotency_key` and `recorded_at` (see
//!   `KurrentMetadata` in `codec.rs`). Events that do not decode that way
//!   are reported as [`StoreError::Corrupt`]: the database is Basketry's
//!   alone.
//! * System events — streams or event types starting with `$` — are never
//!   shown: a server-side filter drops `$` streams from `$all` reads and
//!   subscriptions, and a client-side check drops anything left over.
//!
//! # Appends and the hash chain
//!
//! An append first reads the stream's last event (backwards, one event,
//! from the leader) to learn its revision and hash, answers `Conflict`
//! without writing if the caller's [`ExpectedRevision`] does not admit that
//! revision, seals the batch onto that hash, and writes it in one
//! `append_to_stream` call whose expected state is the exact revision the
//! hash came from (`StreamRevision(r)`, or `NoStream`) — never the caller's
//! `Any`. A writer that slips in between therefore makes the append fail with
//! `WrongExpectedVersion` instead of forking the chain; the failure becomes
//! `Conflict { actual }` with the server's current revision, except for `Any`
//! appends, which re-read, re-seal and retry (up to 64 times, with a little
//! jitter; each round has a winner, so this only runs out under extreme
//! contention).
//!
//! `AppendOutcome::last_position` is the write result's position for a
//! single event, which is `(p, p)`. For a batch the server reports
//! `(log position of its last record, log position of its first)`, which
//! lies *between* the batch's events, so the backend reads the last event
//! back from its stream (one more round trip, from the leader) to return its
//! exact position; should that read fail, it falls back to `(c, c)` for the
//! reported commit position `c`.
//!
//! # Subscriptions and their watchdog
//!
//! [`EventStore::subscribe_all`] runs `Client::subscribe_to_all` from the
//! last delivered position (exclusive), with the client's retry option on
//! (5 attempts, 500 ms apart) and a filter that excludes `$` streams and
//! asks for a checkpoint every 32 considered events. On top of that:
//!
//! * **Idle watchdog.** If no message at all — event, checkpoint,
//!   confirmation, caught-up — arrives for [`SUBSCRIPTION_IDLE_TIMEOUT`]
//!   (30 s), the subscription is dropped and a new one started from the last
//!   delivered position. This catches a server that stops feeding a
//!   subscription without ending it. On a database nobody writes to at all
//!   this resubscribes every 30 s, which costs one small catch-up read.
//! * **Spin guard.** When the server *ends* the gRPC stream cleanly, client
//!   1.2 never returns: `Subscription::next_subscription_event` keeps
//!   re-polling the finished stream, which answers at once, so the future
//!   never yields and no timeout can fire (it would also pin a runtime
//!   worker at 100 % CPU). Each poll of the client's subscription therefore
//!   runs under a tracing dispatcher that forwards everything to the
//!   application's own dispatcher but counts the warning the client logs on
//!   every turn of that loop ("Received an unknown subscription message",
//!   target `kurrentdb::commands`); after 1 000 of them within one call it
//!   panics out of the loop, the panic is caught, and the subscription is
//!   restarted like an idle one. (The panic message is printed by the
//!   process's panic hook; with `panic = "abort"` this would abort.)
//! * **Exactly once, in order.** Every event whose position is not strictly
//!   after the last delivered one is dropped, so no resubscription — the
//!   client's own or the watchdog's — can deliver an event twice or out of
//!   order.
//! * **Errors and pacing.** When the client gives up (its retries are
//!   exhausted) the stream resubscribes, and from the third consecutive
//!   failure on (no message from the server in between) it also yields an
//!   `Err(StoreError::Unavailable)` item; it keeps going for as long as it
//!   is polled. A restart after a subscription that delivered an event or a
//!   checkpoint is immediate; further restarts without either back off from
//!   200 ms, doubling up to 5 s. Access denied and an undecodable event end
//!   the stream after their error item.
//!
//! # Client options used
//!
//! * `ClientSettings` parsed from the connection string (`kurrentdb://`,
//!   `kurrentdb+discover://`, `esdb://`, `esdb+discover://`, `kurrent://`,
//!   `kdb://`, with `tls`, `tlsVerifyCert`, `nodePreference`,
//!   `keepAliveInterval`/`Timeout`, `defaultDeadline`, … as the client
//!   documents them). HTTP/2 keep-alive (10 s / 10 s by default) is what
//!   turns a silently dead connection into an error.
//! * `ReadStreamOptions`: `forwards`, `position`, `max_count`, and for the
//!   small reads of an append (`End`, max 1; the read-back of a batch)
//!   `requires_leader(true)` and a 10 s `deadline`.
//! * `ReadAllOptions`: `position`, `forwards`/`backwards`, `max_count` and
//!   `SubscriptionFilter::on_stream_name().exclude_system_events()`.
//! * `AppendToStreamOptions::stream_state` with `StreamRevision`/`NoStream`.
//! * `SubscribeToAllOptions`: `position`, the same filter with `max(32)` (the
//!   checkpoint interval) and `RetryOptions` (limit 5, delay 500 ms).
//!
//! # Connection recovery
//!
//! The client's connection task stops for good when it cannot reach a node
//! within its discovery attempts (3 by default); every later call then fails
//! with `ConnectionClosed`. The store notices that and replaces the client
//! (once per dead client, however many calls notice), and retries a call
//! once when its request was never sent (`ConnectionClosed`, `NotLeader`).
//! Transport failures map to [`StoreError::Unavailable`]. Error messages and
//! logs never contain the connection string's password.

mod append;
mod codec;
mod connection;
mod errors;
mod read;
mod spin;
mod subscription;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use subscription::SUBSCRIPTION_IDLE_TIMEOUT;

use crate::{
    AppendError, AppendOutcome, EventStore, EventStream, ExpectedRevision, NewEvent, Position,
    RecordedEvent, Revision, StoreError, StreamId,
};
use connection::{build_client, parse_settings, redact, Conn};

/// Deadline of the one-event reads around an append, and of `head`.
const SMALL_READ_DEADLINE: Duration = Duration::from_secs(10);

/// The KurrentDB event store.
pub struct KurrentStore {
    conn: Arc<Conn>,
}

impl fmt::Debug for KurrentStore {
    // Hand-written: `ClientSettings`' own Debug prints the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KurrentStore")
            .field("hosts", self.conn.settings.hosts())
            .finish_non_exhaustive()
    }
}

impl KurrentStore {
    /// Parses a connection string (`kurrentdb://user:pass@host:2113?tls=false`,
    /// `esdb+discover://…`, …) and creates the client. Nothing is sent to the
    /// server yet: connection problems surface on the first operation.
    ///
    /// Must be called inside a Tokio runtime (the client spawns its
    /// connection task on it); [`StoreError::Invalid`] otherwise.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let settings = parse_settings(url)?;
        let client = build_client(&settings).map_err(|e| match e {
            StoreError::Invalid(m) => StoreError::Invalid(redact(&m, url)),
            other => other,
        })?;
        Ok(Self {
            conn: Arc::new(Conn::new(settings, client)),
        })
    }
}

#[async_trait::async_trait]
impl EventStore for KurrentStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, AppendError> {
        self.append_events(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Revision,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_events(stream, from).await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_events(after, limit).await
    }

    async fn subscribe_all(&self, after: Option<Position>) -> Result<EventStream, StoreError> {
        Ok(subscription::subscribe(Arc::clone(&self.conn), after))
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.head_position().await
    }
}
