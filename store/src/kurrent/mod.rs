//! KurrentDB backend: [`KurrentStore`], over the official `kurrentdb` 1.2
//! gRPC client.
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
//!   [`StoredMetadata`]). Events that do not decode that way are reported as
//!   [`StoreError::Corrupt`]: the database is Basketry's alone.
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

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use kurrentdb as kdb;
use serde::{Deserialize, Serialize};

use crate::chain::{self, StoredMetadata, GENESIS_HASH};
use crate::{
    check_append, now_micros, AppendError, AppendOutcome, EventStore, EventStream,
    ExpectedRevision, NewEvent, Position, RecordedEvent, Revision, StoreError, StreamId,
};

/// How long a `$all` subscription may stay completely silent before the
/// watchdog drops it and resubscribes from the last delivered position.
pub const SUBSCRIPTION_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Considered events between two checkpoints of a filtered subscription.
const CHECKPOINT_INTERVAL: u32 = 32;

/// The client's own resubscription policy.
const CLIENT_RETRY_LIMIT: usize = 5;
const CLIENT_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Backoff between resubscriptions that made no progress.
const RESUBSCRIBE_BACKOFF_START: Duration = Duration::from_millis(200);
const RESUBSCRIBE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Consecutive subscription failures before they are reported to the
/// consumer as `Err` items.
const REPORT_FAILURES_AFTER: u32 = 3;

/// Rounds an `Any` append may lose to racing writers before it reports a
/// conflict.
const ANY_APPEND_ATTEMPTS: u32 = 64;

/// Deadline of the one-event reads around an append, and of `head`.
const SMALL_READ_DEADLINE: Duration = Duration::from_secs(10);

/// Largest page `read_all` asks the server for.
const READ_ALL_PAGE: usize = 1000;

/// Page size of `head`'s backwards scan.
const HEAD_PAGE: usize = 32;

/// gRPC `INVALID_ARGUMENT`, e.g. a `$all` position that is not a record.
const GRPC_INVALID_ARGUMENT: i32 = 3;

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
            conn: Arc::new(Conn {
                settings,
                current: RwLock::new(Current {
                    generation: 0,
                    client: Arc::new(client),
                }),
            }),
        })
    }

    /// Runs a read with the current client, replacing a dead client and
    /// retrying once when the request was never sent.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(Arc<kdb::Client>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, Fail>> + Send,
        T: Send,
    {
        let mut retried = false;
        loop {
            let cur = self.conn.current();
            match op(Arc::clone(&cur.client)).await {
                Ok(v) => return Ok(v),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Client(e)) => {
                    self.conn.recover(cur.generation, &e);
                    if !retried && unsent(&e) {
                        retried = true;
                        continue;
                    }
                    return Err(store_error(e));
                }
            }
        }
    }

    /// The position of the last event of a successful append.
    async fn written_position(
        &self,
        cur: &Current,
        stream: &StreamId,
        last: Revision,
        written: kdb::Position,
        count: usize,
    ) -> Position {
        let reported = from_kdb(written);
        if count == 1 && reported != Position::default() {
            return reported;
        }
        // The batch's last event is self-committed at the batch's commit
        // position; used only if reading it back fails.
        let estimate = Position {
            commit: written.commit,
            prepare: written.commit,
        };
        match position_of(&cur.client, stream, last).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::warn!(
                    stream = %stream,
                    revision = %last,
                    "kurrentdb: appended event not found when reading it back; \
                     estimating its position"
                );
                estimate
            }
            Err(e) => {
                if let Fail::Client(e) = &e {
                    self.conn.recover(cur.generation, e);
                }
                tracing::warn!(
                    stream = %stream,
                    revision = %last,
                    error = %e,
                    "kurrentdb: could not read an appended event back; estimating its position"
                );
                estimate
            }
        }
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
        check_append(&events)?;
        let count = events.len();
        let mut lost_races = 0u32;
        let mut resent = false;
        loop {
            let cur = self.conn.current();
            let tip = match read_tip(&cur.client, stream).await {
                Ok(tip) => tip,
                Err(Fail::Store(e)) => return Err(e.into()),
                Err(Fail::Client(e)) => {
                    self.conn.recover(cur.generation, &e);
                    if !resent && unsent(&e) {
                        resent = true;
                        continue;
                    }
                    return Err(store_error(e).into());
                }
            };
            let actual = tip.as_ref().map(|t| t.revision);
            if !expected.admits(actual) {
                return Err(AppendError::Conflict { expected, actual });
            }
            let sealed = seal_batch(stream, tip.as_ref(), events.clone());
            let last_revision = match sealed.last() {
                Some(e) => e.revision,
                None => return Err(StoreError::Invalid("nothing to append".into()).into()),
            };
            let payload = sealed
                .iter()
                .map(event_data)
                .collect::<Result<Vec<_>, _>>()?;
            let state = match actual {
                None => kdb::StreamState::NoStream,
                Some(r) => kdb::StreamState::StreamRevision(r.0),
            };
            let options = kdb::AppendToStreamOptions::default().stream_state(state);
            match cur
                .client
                .append_to_stream(stream.as_str(), &options, payload)
                .await
            {
                Ok(written) => {
                    let last_position = self
                        .written_position(&cur, stream, last_revision, written.position, count)
                        .await;
                    return Ok(AppendOutcome {
                        last_revision,
                        last_position,
                    });
                }
                Err(kdb::Error::WrongExpectedVersion { current, .. }) => {
                    let actual = current_revision(current);
                    lost_races += 1;
                    if expected == ExpectedRevision::Any && lost_races < ANY_APPEND_ATTEMPTS {
                        tokio::time::sleep(jitter(lost_races)).await;
                        continue;
                    }
                    return Err(AppendError::Conflict { expected, actual });
                }
                Err(e) => {
                    self.conn.recover(cur.generation, &e);
                    if !resent && unsent(&e) {
                        resent = true;
                        continue;
                    }
                    return Err(store_error(e).into());
                }
            }
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Revision,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.run(move |client| async move {
            let options = kdb::ReadStreamOptions::default()
                .forwards()
                .position(kdb::StreamPosition::Position(from.0));
            let mut read = match client.read_stream(stream.as_str(), &options).await {
                Ok(read) => read,
                Err(kdb::Error::ResourceNotFound) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            loop {
                match read.next().await {
                    Ok(Some(resolved)) => {
                        if let Some(ev) = original(&resolved) {
                            if !is_system(ev) {
                                out.push(decode(&raw(ev))?);
                            }
                        }
                    }
                    Ok(None) => return Ok(out),
                    Err(kdb::Error::ResourceNotFound) => return Ok(Vec::new()),
                    Err(e) => return Err(e.into()),
                }
            }
        })
        .await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.run(move |client| async move {
            let mut out = Vec::new();
            // Position of the last event seen, delivered or not. Reading
            // `$all` forwards from a position includes the event at it,
            // hence the extra event asked for and the `<=` skip.
            let mut cursor = after;
            while out.len() < limit {
                let asked = (limit - out.len()).min(READ_ALL_PAGE) + 1;
                let options = kdb::ReadAllOptions::default()
                    .position(cursor.map_or(kdb::StreamPosition::Start, |p| {
                        kdb::StreamPosition::Position(to_kdb(p))
                    }))
                    .forwards()
                    .filter(system_filter())
                    .max_count(asked);
                let mut read = client.read_all(&options).await?;
                let mut received = 0usize;
                while let Some(resolved) = read.next().await? {
                    received += 1;
                    let Some(ev) = original(&resolved) else {
                        continue;
                    };
                    let position = from_kdb(ev.position);
                    if cursor.is_some_and(|c| position <= c) {
                        continue;
                    }
                    cursor = Some(position);
                    if !is_system(ev) && out.len() < limit {
                        out.push(decode(&raw(ev))?);
                    }
                }
                if received < asked {
                    break; // the end of the log
                }
            }
            Ok(out)
        })
        .await
    }

    async fn subscribe_all(&self, after: Option<Position>) -> Result<EventStream, StoreError> {
        let tail = Tail::new(Arc::clone(&self.conn), after);
        Ok(Box::pin(futures::stream::unfold(
            tail,
            |mut tail| async move {
                let item = tail.next().await?;
                Some((item, tail))
            },
        )))
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.run(move |client| async move {
            // Scans `$all` backwards from its end for the newest event that
            // is not a system event (the server filter drops `$` streams;
            // `$` event types elsewhere are skipped here).
            let mut cursor: Option<kdb::Position> = None;
            loop {
                let options = kdb::ReadAllOptions::default()
                    .position(
                        cursor.map_or(kdb::StreamPosition::End, kdb::StreamPosition::Position),
                    )
                    .backwards()
                    .filter(system_filter())
                    .max_count(HEAD_PAGE)
                    .deadline(SMALL_READ_DEADLINE);
                let mut read = client.read_all(&options).await?;
                let mut received = 0usize;
                let mut progressed = false;
                while let Some(resolved) = read.next().await? {
                    received += 1;
                    let Some(ev) = original(&resolved) else {
                        continue;
                    };
                    if cursor.is_some_and(|c| ev.position >= c) {
                        continue;
                    }
                    progressed = true;
                    cursor = Some(ev.position);
                    if !is_system(ev) {
                        return Ok(Some(from_kdb(ev.position)));
                    }
                }
                if received < HEAD_PAGE || !progressed {
                    return Ok(None);
                }
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------------
// The client and its replacement

/// The settings and the client currently in use.
struct Conn {
    settings: kdb::ClientSettings,
    current: RwLock<Current>,
}

/// A client and how many clients came before it.
#[derive(Clone)]
struct Current {
    generation: u64,
    client: Arc<kdb::Client>,
}

impl Conn {
    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces client `seen` if `err` says its connection task has stopped
    /// (it never restarts by itself). Calls that noticed the same dead
    /// client replace it only once.
    fn recover(&self, seen: u64, err: &kdb::Error) {
        if !matches!(
            err,
            kdb::Error::ConnectionClosed | kdb::Error::GrpcConnectionError(_)
        ) {
            return;
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.generation != seen {
            return;
        }
        match build_client(&self.settings) {
            Ok(client) => {
                tracing::info!(
                    error = %err,
                    "kurrentdb: the client's connection task stopped; using a new client"
                );
                *current = Current {
                    generation: seen + 1,
                    client: Arc::new(client),
                };
            }
            Err(e) => tracing::warn!(error = %e, "kurrentdb: could not create a new client"),
        }
    }
}

fn parse_settings(url: &str) -> Result<kdb::ClientSettings, StoreError> {
    url.parse::<kdb::ClientSettings>().map_err(|e| {
        // The parse error's message may be the whole connection string.
        let detail = match e.error() {
            Some(parse) => parse.to_string(),
            None => e.message().to_string(),
        };
        StoreError::Invalid(redact(
            &format!("invalid KurrentDB connection string {url}: {detail}"),
            url,
        ))
    })
}

fn build_client(settings: &kdb::ClientSettings) -> Result<kdb::Client, StoreError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        StoreError::Invalid("the KurrentDB client must be created inside a Tokio runtime".into())
    })?;
    let settings = settings.clone();
    // The client unwraps the contents of a `tlsCAFile`; a bad file must not
    // take the caller down.
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        kdb::Client::with_runtime_handle(handle, settings)
    })) {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(StoreError::Invalid(format!(
            "cannot set up the KurrentDB client: {e}"
        ))),
        Err(_) => Err(StoreError::Invalid(
            "cannot set up the KurrentDB client: unreadable TLS certificate file".into(),
        )),
    }
}

/// The password of a connection string, if it has one. Errs towards
/// returning too much (everything up to the last `@`), never too little.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let userinfo = &rest[..rest.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// `text` with the connection string's password replaced by `***`.
fn redact(text: &str, url: &str) -> String {
    match url_password(url) {
        Some(password) => text.replace(password, "***"),
        None => text.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Errors

/// Why a read failed: the client's error (which may call for a new client),
/// or the store's own.
#[derive(Debug)]
enum Fail {
    Client(kdb::Error),
    Store(StoreError),
}

impl From<kdb::Error> for Fail {
    fn from(e: kdb::Error) -> Self {
        Fail::Client(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Client(e) => write!(f, "{e}"),
            Fail::Store(e) => write!(f, "{e}"),
        }
    }
}

/// Whether a failed request certainly never reached the server's write
/// path, so that sending it again cannot write twice.
fn unsent(e: &kdb::Error) -> bool {
    matches!(
        e,
        kdb::Error::ConnectionClosed | kdb::Error::NotLeaderException(_)
    )
}

fn store_error(e: kdb::Error) -> StoreError {
    match e {
        kdb::Error::ResourceDeleted => StoreError::Corrupt(
            "the stream was deleted in KurrentDB (Basketry never deletes streams)".into(),
        ),
        kdb::Error::AccessDenied => StoreError::Unavailable(
            "KurrentDB denied access (check the credentials of the connection string)".into(),
        ),
        kdb::Error::Grpc { code, message } if i32::from(code) == GRPC_INVALID_ARGUMENT => {
            StoreError::Invalid(format!("KurrentDB refused the request: {message}"))
        }
        other => StoreError::Unavailable(format!("KurrentDB: {other}")),
    }
}

fn current_revision(current: kdb::CurrentRevision) -> Option<Revision> {
    match current {
        kdb::CurrentRevision::Current(r) => Some(Revision(r)),
        kdb::CurrentRevision::NoStream => None,
    }
}

/// A short random pause before an `Any` append tries again, so that racing
/// writers do not keep colliding in lockstep.
fn jitter(round: u32) -> Duration {
    let spread_us = 1_000 * u64::from(round.min(10));
    let random = (uuid::Uuid::new_v4().as_u128() & u128::from(u64::MAX)) as u64;
    Duration::from_micros(random % spread_us.max(1))
}

// ---------------------------------------------------------------------------
// Events

/// The custom metadata stored with every event.
#[derive(Serialize, Deserialize)]
struct KurrentMetadata {
    schema_version: u32,
    prev_hash: String,
    hash: String,
    #[serde(flatten)]
    stored: StoredMetadata,
}

impl KurrentMetadata {
    fn of(e: &RecordedEvent) -> Self {
        Self {
            schema_version: e.schema_version,
            prev_hash: e.metadata.prev_hash.clone(),
            hash: e.metadata.hash.clone(),
            stored: StoredMetadata::of(&e.metadata),
        }
    }
}

fn event_data(e: &RecordedEvent) -> Result<kdb::EventData, StoreError> {
    kdb::EventData::json(&e.event_type, &e.data)
        .and_then(|d| d.id(e.event_id).metadata_as_json(&KurrentMetadata::of(e)))
        .map_err(|err| {
            StoreError::Invalid(format!("event {} cannot be encoded: {err}", e.event_id))
        })
}

/// The parts of a stored event that decoding needs (the client's
/// `RecordedEvent` cannot be built outside the client, so tests use this).
struct RawEvent<'a> {
    stream: &'a str,
    id: uuid::Uuid,
    revision: u64,
    position: Position,
    event_type: &'a str,
    data: &'a [u8],
    custom_metadata: &'a [u8],
}

fn raw(ev: &kdb::RecordedEvent) -> RawEvent<'_> {
    RawEvent {
        stream: ev.stream_id(),
        id: ev.id,
        revision: ev.revision,
        position: from_kdb(ev.position),
        event_type: &ev.event_type,
        data: &ev.data,
        custom_metadata: &ev.custom_metadata,
    }
}

fn decode(ev: &RawEvent<'_>) -> Result<RecordedEvent, StoreError> {
    let at = || format!("{} rev {}", ev.stream, ev.revision);
    let stream_id = StreamId::parse(ev.stream)
        .map_err(|_| StoreError::Corrupt(format!("{}: not a Basketry stream name", at())))?;
    let meta: KurrentMetadata = serde_json::from_slice(ev.custom_metadata)
        .map_err(|e| StoreError::Corrupt(format!("{}: metadata: {e}", at())))?;
    let data: serde_json::Value = serde_json::from_slice(ev.data)
        .map_err(|e| StoreError::Corrupt(format!("{}: data: {e}", at())))?;
    let metadata = meta
        .stored
        .into_metadata(meta.prev_hash, meta.hash)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", at())))?;
    Ok(RecordedEvent {
        event_id: ev.id,
        stream_id,
        revision: Revision(ev.revision),
        position: ev.position,
        event_type: ev.event_type.to_string(),
        schema_version: meta.schema_version,
        data,
        metadata,
    })
}

/// The event a read returned (the link itself, should one show up).
fn original(resolved: &kdb::ResolvedEvent) -> Option<&kdb::RecordedEvent> {
    resolved.link.as_ref().or(resolved.event.as_ref())
}

fn is_system(ev: &kdb::RecordedEvent) -> bool {
    ev.stream_id().starts_with('$') || ev.event_type.starts_with('$')
}

/// Drops every event of a `$` stream on the server.
fn system_filter() -> kdb::SubscriptionFilter {
    kdb::SubscriptionFilter::on_stream_name().exclude_system_events()
}

fn to_kdb(p: Position) -> kdb::Position {
    kdb::Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

fn from_kdb(p: kdb::Position) -> Position {
    Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

/// The revision and hash an append links to.
struct Tip {
    revision: Revision,
    hash: String,
}

/// The stream's last event, read from the leader.
async fn read_tip(client: &kdb::Client, stream: &StreamId) -> Result<Option<Tip>, Fail> {
    let options = kdb::ReadStreamOptions::default()
        .position(kdb::StreamPosition::End)
        .max_count(1)
        .requires_leader(true)
        .deadline(SMALL_READ_DEADLINE);
    let mut read = match client.read_stream(stream.as_str(), &options).await {
        Ok(read) => read,
        Err(kdb::Error::ResourceNotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    loop {
        match read.next().await {
            Ok(Some(resolved)) => {
                let Some(ev) = original(&resolved) else {
                    continue;
                };
                let last = decode(&raw(ev))?;
                return Ok(Some(Tip {
                    revision: last.revision,
                    hash: last.metadata.hash,
                }));
            }
            Ok(None) | Err(kdb::Error::ResourceNotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The position of `stream`'s event `revision`, read from the leader.
async fn position_of(
    client: &kdb::Client,
    stream: &StreamId,
    revision: Revision,
) -> Result<Option<Position>, Fail> {
    let options = kdb::ReadStreamOptions::default()
        .forwards()
        .position(kdb::StreamPosition::Position(revision.0))
        .max_count(1)
        .requires_leader(true)
        .deadline(SMALL_READ_DEADLINE);
    let mut read = client.read_stream(stream.as_str(), &options).await?;
    while let Some(resolved) = read.next().await? {
        if let Some(ev) = original(&resolved) {
            // Servers that do not know a stream event's position send -1.
            if ev.revision == revision.0 && ev.position.commit != u64::MAX {
                return Ok(Some(from_kdb(ev.position)));
            }
        }
    }
    Ok(None)
}

/// Seals `events` onto the stream's tip: consecutive revisions, each linked
/// to the hash of the one before, all stamped with the same time.
fn seal_batch(stream: &StreamId, tip: Option<&Tip>, events: Vec<NewEvent>) -> Vec<RecordedEvent> {
    let recorded_at = now_micros();
    let (mut revision, mut prev) = match tip {
        Some(t) => (t.revision.next(), t.hash.clone()),
        None => (Revision::START, GENESIS_HASH.to_string()),
    };
    events
        .into_iter()
        .map(|event| {
            let sealed = chain::seal(
                stream,
                revision,
                Position::default(),
                &prev,
                recorded_at,
                event,
            );
            prev.clone_from(&sealed.metadata.hash);
            revision = revision.next();
            sealed
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Subscriptions

/// The state behind one [`EventStream`] of `subscribe_all`.
struct Tail {
    conn: Arc<Conn>,
    /// Position of the last event delivered (or the caller's start).
    last: Option<Position>,
    /// The client's subscription and the generation of the client it runs on.
    sub: Option<(u64, kdb::Subscription)>,
    guard: spin::SpinGuard,
    /// Restarts since the last event or checkpoint: paces resubscriptions.
    quiet_restarts: u32,
    /// Consecutive client errors without a message from the server in
    /// between: decides when errors are reported.
    errors: u32,
    done: bool,
}

impl Tail {
    fn new(conn: Arc<Conn>, after: Option<Position>) -> Self {
        Self {
            conn,
            last: after,
            sub: None,
            guard: spin::SpinGuard::new(),
            quiet_restarts: 0,
            errors: 0,
            done: false,
        }
    }

    fn options(&self) -> kdb::SubscribeToAllOptions {
        let start = self.last.map_or(kdb::StreamPosition::Start, |p| {
            kdb::StreamPosition::Position(to_kdb(p))
        });
        kdb::SubscribeToAllOptions::default()
            .position(start)
            .filter(system_filter().max(CHECKPOINT_INTERVAL))
            .retry_options(
                kdb::RetryOptions::default()
                    .retry_limit(CLIENT_RETRY_LIMIT)
                    .retry_delay(CLIENT_RETRY_DELAY),
            )
    }

    /// The next item of the stream; `None` once it has ended.
    async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        while !self.done {
            if self.sub.is_none() {
                let pause = backoff(self.quiet_restarts);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let cur = self.conn.current();
                let sub = cur.client.subscribe_to_all(&self.options()).await;
                self.sub = Some((cur.generation, sub));
            }
            let Some((generation, sub)) = self.sub.as_mut() else {
                continue;
            };
            let generation = *generation;
            let step = self
                .guard
                .run(SUBSCRIPTION_IDLE_TIMEOUT, sub.next_subscription_event())
                .await;
            match step {
                spin::Guarded::Done(Ok(kdb::SubscriptionEvent::EventAppeared(resolved))) => {
                    (self.quiet_restarts, self.errors) = (0, 0);
                    if let Some(item) = self.accept(&resolved) {
                        return Some(item);
                    }
                }
                spin::Guarded::Done(Ok(kdb::SubscriptionEvent::Checkpoint(_))) => {
                    (self.quiet_restarts, self.errors) = (0, 0);
                }
                // Confirmations, caught-up, …: the server is there.
                spin::Guarded::Done(Ok(_)) => self.errors = 0,
                spin::Guarded::Done(Err(e)) => {
                    self.sub = None;
                    self.quiet_restarts += 1;
                    self.errors += 1;
                    if matches!(e, kdb::Error::AccessDenied) {
                        self.done = true;
                        return Some(Err(store_error(e)));
                    }
                    self.conn.recover(generation, &e);
                    tracing::warn!(
                        error = %e,
                        failures = self.errors,
                        "kurrentdb: the $all subscription failed; resubscribing"
                    );
                    if self.errors >= REPORT_FAILURES_AFTER {
                        return Some(Err(store_error(e)));
                    }
                }
                spin::Guarded::Idle => {
                    self.sub = None;
                    self.quiet_restarts += 1;
                    tracing::debug!(
                        idle_secs = SUBSCRIPTION_IDLE_TIMEOUT.as_secs(),
                        "kurrentdb: the $all subscription was silent; resubscribing"
                    );
                }
                spin::Guarded::Spin => {
                    self.sub = None;
                    self.quiet_restarts += 1;
                    tracing::warn!(
                        "kurrentdb: the server ended the $all subscription; resubscribing"
                    );
                }
            }
        }
        None
    }

    /// The item to deliver for an event, if any: nothing at or before the
    /// last delivered position, nothing from the system.
    fn accept(
        &mut self,
        resolved: &kdb::ResolvedEvent,
    ) -> Option<Result<RecordedEvent, StoreError>> {
        let ev = original(resolved)?;
        let position = from_kdb(ev.position);
        if !is_after(self.last, position) || is_system(ev) {
            return None;
        }
        match decode(&raw(ev)) {
            Ok(event) => {
                self.last = Some(position);
                Some(Ok(event))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Whether an event at `position` comes after the last delivered one.
fn is_after(last: Option<Position>, position: Position) -> bool {
    last.is_none_or(|last| position > last)
}

/// Pause before a resubscription, after `quiet_restarts` restarts without
/// an event or checkpoint: none after a subscription that made progress,
/// then 200 ms doubling up to 5 s.
fn backoff(quiet_restarts: u32) -> Duration {
    if quiet_restarts <= 1 {
        return Duration::ZERO;
    }
    let doublings = (quiet_restarts - 2).min(16);
    RESUBSCRIBE_BACKOFF_START
        .saturating_mul(1 << doublings)
        .min(RESUBSCRIBE_BACKOFF_MAX)
}

/// Breaks client 1.2's endless loop over a subscription stream the server
/// has ended (see the module documentation).
mod spin {
    use std::fmt;
    use std::future::Future;
    use std::panic::AssertUnwindSafe;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures::FutureExt;
    use tracing::field::{Field, Visit};
    use tracing::instrument::WithSubscriber;
    use tracing::level_filters::LevelFilter;
    use tracing::span::{Attributes, Id, Record};
    use tracing::subscriber::Interest;
    use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

    /// Where and what the client logs on every turn of its loop.
    pub(super) const MARKER_TARGET: &str = "kurrentdb::commands";
    pub(super) const MARKER_MESSAGE: &str = "Received an unknown subscription message";

    /// Markers within one call that mean the client is spinning. A real
    /// unknown message shows up once between network reads; the loop
    /// produces them as fast as the CPU allows (1 000 take milliseconds).
    const SPIN_LIMIT: u64 = 1_000;

    /// The panic payload that carries the guard out of the client's loop.
    const SPIN_PANIC: &str =
        "kurrentdb: the server ended a $all subscription and the client is looping on it; \
         Basketry breaks out and resubscribes";

    /// How one guarded call ended.
    #[derive(Debug)]
    pub(super) enum Guarded<T> {
        Done(T),
        /// Nothing came within the idle bound.
        Idle,
        /// The client was looping on an ended stream.
        Spin,
    }

    pub(super) struct SpinGuard {
        dispatch: Dispatch,
        markers: Arc<AtomicU64>,
    }

    impl SpinGuard {
        /// A guard that forwards tracing to the dispatcher current now.
        pub(super) fn new() -> Self {
            let outer = tracing::dispatcher::get_default(Dispatch::clone);
            let markers = Arc::new(AtomicU64::new(0));
            let dispatch = Dispatch::new(MarkerCounter {
                outer,
                markers: Arc::clone(&markers),
            });
            Self { dispatch, markers }
        }

        /// Polls `fut` to completion under the guard, for at most `idle`.
        pub(super) async fn run<F: Future>(&self, idle: Duration, fut: F) -> Guarded<F::Output> {
            self.markers.store(0, Ordering::Relaxed);
            let guarded =
                AssertUnwindSafe(fut.with_subscriber(self.dispatch.clone())).catch_unwind();
            match tokio::time::timeout(idle, guarded).await {
                Err(_) => Guarded::Idle,
                Ok(Ok(out)) => Guarded::Done(out),
                Ok(Err(payload)) => {
                    if payload.downcast_ref::<&'static str>() == Some(&SPIN_PANIC) {
                        Guarded::Spin
                    } else {
                        std::panic::resume_unwind(payload)
                    }
                }
            }
        }
    }

    /// A tracing subscriber that hands everything to `outer` and counts the
    /// client's loop marker.
    struct MarkerCounter {
        outer: Dispatch,
        markers: Arc<AtomicU64>,
    }

    fn is_marker_callsite(meta: &Metadata<'_>) -> bool {
        meta.is_event() && *meta.level() == Level::WARN && meta.target() == MARKER_TARGET
    }

    fn is_marker(event: &Event<'_>) -> bool {
        struct Message(bool);
        impl Visit for Message {
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "message" && value == MARKER_MESSAGE {
                    self.0 = true;
                }
            }
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                if field.name() == "message" && format!("{value:?}") == MARKER_MESSAGE {
                    self.0 = true;
                }
            }
        }
        if !is_marker_callsite(event.metadata()) {
            return false;
        }
        let mut message = Message(false);
        event.record(&mut message);
        message.0
    }

    impl Subscriber for MarkerCounter {
        fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
            if is_marker_callsite(meta) {
                Interest::always()
            } else {
                self.outer.register_callsite(meta)
            }
        }

        fn max_level_hint(&self) -> Option<LevelFilter> {
            // Keeps WARN enabled process-wide while a guard exists; the
            // outer dispatcher's own hint still counts for everything else.
            Some(LevelFilter::WARN)
        }

        fn enabled(&self, meta: &Metadata<'_>) -> bool {
            is_marker_callsite(meta) || self.outer.enabled(meta)
        }

        fn new_span(&self, span: &Attributes<'_>) -> Id {
            self.outer.new_span(span)
        }

        fn record(&self, span: &Id, values: &Record<'_>) {
            self.outer.record(span, values)
        }

        fn record_follows_from(&self, span: &Id, follows: &Id) {
            self.outer.record_follows_from(span, follows)
        }

        fn event(&self, event: &Event<'_>) {
            if is_marker(event) {
                let seen = self.markers.fetch_add(1, Ordering::Relaxed) + 1;
                if seen >= SPIN_LIMIT {
                    std::panic::panic_any(SPIN_PANIC);
                }
                if seen > 1 || !self.outer.enabled(event.metadata()) {
                    return;
                }
            }
            self.outer.event(event)
        }

        fn enter(&self, span: &Id) {
            self.outer.enter(span)
        }

        fn exit(&self, span: &Id) {
            self.outer.exit(span)
        }

        fn clone_span(&self, id: &Id) -> Id {
            self.outer.clone_span(id)
        }

        fn try_close(&self, id: Id) -> bool {
            self.outer.try_close(id)
        }

        // `current_span` keeps its default (unknown): `tracing` does not
        // re-export its return type, and neither the client nor tonic,
        // hyper or h2 ask the dispatcher for it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, NewMetadata};
    use futures::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn new_event(n: u64) -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "ItemAdded".into(),
            schema_version: 2,
            data: serde_json::json!({"n": n, "name": "Δ ✓", "big": 9_007_199_254_740_993u64}),
            metadata: NewMetadata {
                actor: Actor {
                    kind: "user".into(),
                    id: "u-1".into(),
                },
                correlation_id: uuid::Uuid::new_v4(),
                causation_id: Some(uuid::Uuid::new_v4()),
                idempotency_key: Some("idem-1".into()),
            },
        }
    }

    /// Encodes `e` the way `append` does and decodes it the way reads do.
    fn round_trip(e: &RecordedEvent, position: Position) -> Result<RecordedEvent, StoreError> {
        let data = serde_json::to_vec(&e.data).expect("JSON values serialize");
        let meta = serde_json::to_vec(&KurrentMetadata::of(e)).expect("metadata serializes");
        decode(&RawEvent {
            stream: e.stream_id.as_str(),
            id: e.event_id,
            revision: e.revision.0,
            position,
            event_type: &e.event_type,
            data: &data,
            custom_metadata: &meta,
        })
    }

    #[test]
    fn sealed_events_survive_the_metadata_encoding_and_keep_their_chain() {
        let s = StreamId::parse("basket-1").expect("valid");
        let first = seal_batch(&s, None, vec![new_event(0), new_event(1)]);
        assert_eq!(first[0].revision, Revision(0));
        assert_eq!(first[0].metadata.prev_hash, GENESIS_HASH);
        assert_eq!(first[1].metadata.prev_hash, first[0].metadata.hash);
        let tip = Tip {
            revision: first[1].revision,
            hash: first[1].metadata.hash.clone(),
        };
        let second = seal_batch(&s, Some(&tip), vec![new_event(2)]);
        assert_eq!(second[0].revision, Revision(2));
        assert_eq!(second[0].metadata.prev_hash, first[1].metadata.hash);

        let mut read = Vec::new();
        for (i, e) in first.iter().chain(&second).enumerate() {
            let position = Position::sequence(100 + i as u64);
            let back = round_trip(e, position).expect("decodes");
            let mut want = e.clone();
            want.position = position;
            assert_eq!(back, want);
            read.push(back);
        }
        assert_eq!(chain::verify_stream(&read), Ok(()));
    }

    #[test]
    fn the_custom_metadata_holds_the_documented_fields() {
        let s = StreamId::parse("basket-1").expect("valid");
        let e = &seal_batch(&s, None, vec![new_event(0)])[0];
        let value = serde_json::to_value(KurrentMetadata::of(e)).expect("serializes");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "actor",
                "causation_id",
                "correlation_id",
                "hash",
                "idempotency_key",
                "prev_hash",
                "recorded_at",
                "schema_version"
            ]
        );
        assert_eq!(value["schema_version"], 2);
    }

    #[test]
    fn undecodable_events_are_corrupt() {
        let s = StreamId::parse("basket-1").expect("valid");
        let e = &seal_batch(&s, None, vec![new_event(0)])[0];
        let data = serde_json::to_vec(&e.data).expect("serializes");
        let meta = serde_json::to_vec(&KurrentMetadata::of(e)).expect("serializes");
        let good = RawEvent {
            stream: "basket-1",
            id: e.event_id,
            revision: 0,
            position: Position::default(),
            event_type: &e.event_type,
            data: &data,
            custom_metadata: &meta,
        };
        assert!(decode(&good).is_ok());
        let cases = [
            RawEvent {
                custom_metadata: b"",
                ..good
            },
            RawEvent {
                custom_metadata: br#"{"schema_version":1}"#,
                ..good
            },
            RawEvent {
                data: b"not json",
                ..good
            },
            RawEvent {
                stream: "no spaces allowed",
                ..good
            },
        ];
        for bad in &cases {
            assert!(
                matches!(decode(bad), Err(StoreError::Corrupt(_))),
                "{} / {:?} decoded",
                bad.stream,
                String::from_utf8_lossy(bad.custom_metadata)
            );
        }
        let mut broken_time = serde_json::to_value(KurrentMetadata::of(e)).expect("serializes");
        broken_time["recorded_at"] = "yesterday".into();
        let broken_time = serde_json::to_vec(&broken_time).expect("serializes");
        assert!(matches!(
            decode(&RawEvent {
                custom_metadata: &broken_time,
                ..good
            }),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn client_errors_map_to_store_errors() {
        assert!(matches!(
            store_error(kdb::Error::ConnectionClosed),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::GrpcConnectionError(
                kdb::GrpcConnectionError::MaxDiscoveryAttemptReached(3)
            )),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::ServerError("unavailable".into())),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::DeadlineExceeded),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::AccessDenied),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(kdb::Error::ResourceDeleted),
            StoreError::Corrupt(_)
        ));
        assert_eq!(
            current_revision(kdb::CurrentRevision::Current(7)),
            Some(Revision(7))
        );
        assert_eq!(current_revision(kdb::CurrentRevision::NoStream), None);
        assert!(unsent(&kdb::Error::ConnectionClosed));
        assert!(!unsent(&kdb::Error::DeadlineExceeded));
        assert!(!unsent(&kdb::Error::ServerError("x".into())));
    }

    #[test]
    fn bad_connection_strings_are_invalid_and_never_echo_the_password() {
        for url in [
            "kurrentdb://admin:s3cr3t-pw@localhost:notaport?tls=false",
            "http://admin:s3cr3t-pw@localhost:2113",
            "kurrentdb://admin:s3cr3t-pw@localhost:2113?tls=maybe",
            "kurrentdb://admin:s3cr3t-pw@localhost:2113?nodePreference=nobody",
            "kurrentdb://admin:s3cr3t-pw@localhost:2113/some/path",
            "not a url at all s3cr3t-pw",
        ] {
            match KurrentStore::connect(url) {
                Err(StoreError::Invalid(message)) => {
                    assert!(
                        !message.contains("s3cr3t-pw") || url_password(url).is_none(),
                        "{message}"
                    );
                }
                other => panic!("{url}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn passwords_are_found_and_redacted() {
        assert_eq!(
            url_password("kurrentdb://admin:changeit@host:2113"),
            Some("changeit")
        );
        assert_eq!(
            url_password("esdb://admin:p%40ss@a:1,b:2?tls=true"),
            Some("p%40ss")
        );
        assert_eq!(url_password("kurrentdb://admin@host:2113"), None);
        assert_eq!(url_password("kurrentdb://host:2113?tls=false"), None);
        assert_eq!(
            redact(
                "failed kurrentdb://admin:changeit@host",
                "kurrentdb://admin:changeit@host"
            ),
            "failed kurrentdb://admin:***@host"
        );
    }

    #[tokio::test]
    async fn a_valid_connection_string_makes_a_store_without_contacting_the_server() {
        let store = KurrentStore::connect("kurrentdb://admin:changeit@127.0.0.1:1?tls=false")
            .expect("parses");
        let shown = format!("{store:?}");
        assert!(
            shown.contains("127.0.0.1") && !shown.contains("changeit"),
            "{shown}"
        );
        let store = KurrentStore::connect("esdb+discover://cluster.example:2113").expect("parses");
        assert!(format!("{store:?}").contains("cluster.example"));
    }

    #[test]
    fn connecting_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(matches!(
            KurrentStore::connect("kurrentdb://127.0.0.1:2113?tls=false"),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn resubscriptions_never_deliver_an_event_twice_or_backwards() {
        let p = Position {
            commit: 10,
            prepare: 10,
        };
        assert!(is_after(None, p));
        assert!(!is_after(Some(p), p));
        assert!(!is_after(
            Some(p),
            Position {
                commit: 9,
                prepare: 9
            }
        ));
        assert!(is_after(
            Some(p),
            Position {
                commit: 10,
                prepare: 11
            }
        ));
        assert!(is_after(
            Some(p),
            Position {
                commit: 11,
                prepare: 0
            }
        ));
    }

    #[test]
    fn resubscription_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(6), Duration::from_millis(3200));
        assert_eq!(backoff(7), RESUBSCRIBE_BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), RESUBSCRIBE_BACKOFF_MAX);
        for round in 0..100 {
            assert!(jitter(round) < Duration::from_millis(10));
        }
    }

    fn spin_marker() {
        tracing::warn!(target: "kurrentdb::commands", "Received an unknown subscription message");
    }

    #[tokio::test]
    async fn the_spin_guard_breaks_a_loop_that_never_yields() {
        let guard = spin::SpinGuard::new();
        // Like the client on an ended stream: no await, a marker per turn.
        let looping = async {
            for _ in 0..10_000_000u64 {
                spin_marker();
            }
            "the loop ran to its end"
        };
        let out = guard.run(Duration::from_secs(60), looping).await;
        assert!(matches!(out, spin::Guarded::Spin), "{out:?}");
        // The guard is reusable afterwards.
        let out = guard.run(Duration::from_secs(5), async { 7 }).await;
        assert!(matches!(out, spin::Guarded::Done(7)), "{out:?}");
    }

    #[tokio::test]
    async fn the_spin_guard_tolerates_a_stray_unknown_message_and_times_out_silence() {
        let guard = spin::SpinGuard::new();
        let out = guard
            .run(Duration::from_secs(5), async {
                spin_marker();
                tokio::task::yield_now().await;
                spin_marker();
                "an event"
            })
            .await;
        assert!(matches!(out, spin::Guarded::Done("an event")), "{out:?}");
        let out = guard
            .run(Duration::from_millis(20), std::future::pending::<()>())
            .await;
        assert!(matches!(out, spin::Guarded::Idle), "{out:?}");
    }

    #[tokio::test]
    async fn the_spin_guard_lets_other_panics_through() {
        let guard = spin::SpinGuard::new();
        let result = AssertUnwindSafe(guard.run(Duration::from_secs(5), async {
            panic!("an unrelated bug");
        }))
        .catch_unwind()
        .await;
        assert!(result.is_err());
    }

    /// Counts the events it receives.
    struct Counting(Arc<AtomicUsize>);

    impl tracing::Subscriber for Counting {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[tokio::test]
    async fn the_spin_guard_forwards_logging_to_the_application_dispatcher() {
        let seen = Arc::new(AtomicUsize::new(0));
        let app = tracing::Dispatch::new(Counting(Arc::clone(&seen)));
        let guard = tracing::dispatcher::with_default(&app, spin::SpinGuard::new);
        let out = guard
            .run(Duration::from_secs(5), async {
                tracing::info!(target: "basketry_store::kurrent::tests", "hello from inside");
                spin_marker();
                spin_marker();
            })
            .await;
        assert!(matches!(out, spin::Guarded::Done(())), "{out:?}");
        // The info event and the first marker; repeated markers are dropped.
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }
}
