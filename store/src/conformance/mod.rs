//! The conformance suite every [`EventStore`] backend must pass.
//!
//! Each case is a `pub async fn(Fixture) -> Result<(), String>`: `Ok` when
//! the backend behaved, `Err` with the first broken expectation otherwise.
//! [`cases`] lists them so that a harness (`store/tests/conformance.rs`) can
//! run every case against every backend.
//!
//! A KurrentDB server is shared and never wiped between runs, so the cases
//! never assume that the log is empty or that positions start anywhere in
//! particular: every case names its streams `{ns}-…` with the unique prefix of
//! its [`Fixture`], reads `$all` from the head it found when it started, and
//! looks only at the events of its own streams. Nor do they assert on speed:
//! waits are generous timeouts that only turn a hang into a failure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::chain::{self, GENESIS_HASH};
use crate::{
    Actor, AppendError, AppendOutcome, EventStore, EventStream, ExpectedRevision, NewEvent,
    NewMetadata, Position, RecordedEvent, Revision, StoreError, StreamId,
};

/// What a case runs against.
#[derive(Clone)]
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn EventStore>,
    /// A second, independent handle on the same log (another connection
    /// pool / writer, as a second process would have). Backends that cannot
    /// have two handles pass `store` again.
    pub peer: Arc<dyn EventStore>,
    /// Unique prefix of every stream the case touches.
    pub ns: String,
}

impl Fixture {
    /// A fixture whose peer is the store itself.
    pub fn single(store: Arc<dyn EventStore>, ns: impl Into<String>) -> Self {
        Self {
            peer: Arc::clone(&store),
            store,
            ns: ns.into(),
        }
    }
}

/// The outcome of one case.
pub type CaseResult = Result<(), String>;
/// A running case.
pub type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;
/// A case, as the harness calls it.
pub type Case = fn(Fixture) -> CaseFuture;

/// How long a subscription may stay silent while an event is owed to it.
/// Generous on purpose: this turns a hang into a failure, it is not a speed
/// requirement.
pub const SUBSCRIPTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a subscription is watched for events it must *not* deliver.
const QUIET_PERIOD: Duration = Duration::from_millis(500);

macro_rules! case_list {
    ($($name:ident),* $(,)?) => {
        vec![$((
            stringify!($name),
            (|fx: Fixture| -> CaseFuture { Box::pin($name(fx)) }) as Case,
        )),*]
    };
}

/// Every case, by name, in a stable order.
pub fn cases() -> Vec<(&'static str, Case)> {
    case_list![
        append_and_read_round_trip,
        multi_event_append_is_atomic_and_consecutive,
        expected_no_stream,
        expected_exact,
        expected_any_always_succeeds,
        read_stream_from_a_middle_revision,
        missing_stream_reads_empty,
        invalid_appends_are_refused,
        concurrent_appenders_get_one_winner_per_revision,
        read_all_orders_events_across_streams,
        read_all_pages_return_each_event_once,
        subscribe_from_checkpoint_receives_exactly_the_later_events,
        ten_thousand_concurrent_appends_across_100_streams,
        tailing_readers_never_skip_late_commits,
        hash_chain_verifies,
        head_is_the_last_position,
    ]
}

// ---------------------------------------------------------------------------
// Assertion helpers

/// Fails the case with a message and the line of the check.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{} [{}:{}]", format!($($fmt)+), file!(), line!()));
        }
    };
}

/// Fails the case unless both sides are equal; both are printed with `{:?}`,
/// so keep them small.
macro_rules! check_eq {
    ($left:expr, $right:expr, $($fmt:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(format!(
                "{}: got {:?}, expected {:?} [{}:{}]",
                format!($($fmt)+),
                left,
                right,
                file!(),
                line!()
            ));
        }
    }};
}

trait Context<T> {
    fn ctx(self, what: impl Display) -> Result<T, String>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl Display) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

fn stream(ns: &str, name: &str) -> Result<StreamId, String> {
    StreamId::parse(format!("{ns}-{name}")).ctx("conformance stream name")
}

fn is_own(ns: &str, e: &RecordedEvent) -> bool {
    e.stream_id
        .as_str()
        .strip_prefix(ns)
        .is_some_and(|rest| rest.starts_with('-'))
}

fn metadata() -> NewMetadata {
    NewMetadata {
        actor: Actor {
            kind: "system".into(),
            id: "conformance".into(),
        },
        correlation_id: Uuid::new_v4(),
        causation_id: None,
        idempotency_key: None,
    }
}

/// A small event numbered `n`.
fn ev(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "ItemAdded".into(),
        schema_version: 1,
        data: json!({ "n": n }),
        metadata: metadata(),
    }
}

fn evs(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(ev).collect()
}

async fn append(
    store: &dyn EventStore,
    s: &StreamId,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
) -> Result<AppendOutcome, String> {
    let n = events.len();
    store.append(s, expected, events).await.ctx(format_args!(
        "append of {n} event(s) to {s} expecting {expected}"
    ))
}

async fn read_stream(
    store: &dyn EventStore,
    s: &StreamId,
    from: Revision,
) -> Result<Vec<RecordedEvent>, String> {
    store
        .read_stream(s, from)
        .await
        .ctx(format_args!("read_stream({s}, from {from})"))
}

/// Where this case's view of `$all` starts: the head when it began.
async fn start_of(store: &dyn EventStore) -> Result<Option<Position>, String> {
    store.head().await.ctx("head()")
}

/// Pages through `$all` strictly after `after` with pages of `limit` until a
/// page comes back empty, checking the paging contract on the way, and
/// returns the events of `ns`'s streams in the order read.
async fn read_own(
    store: &dyn EventStore,
    ns: &str,
    after: Option<Position>,
    limit: usize,
) -> Result<Vec<RecordedEvent>, String> {
    read_own_from(store, ns, after, limit)
        .await
        .map(|(own, _)| own)
}

/// [`read_own`], also returning the position of the last event read (own or
/// not), from which to continue.
async fn read_own_from(
    store: &dyn EventStore,
    ns: &str,
    after: Option<Position>,
    limit: usize,
) -> Result<(Vec<RecordedEvent>, Option<Position>), String> {
    let mut own = Vec::new();
    let mut cursor = after;
    loop {
        let page = store
            .read_all(cursor, limit)
            .await
            .ctx(format_args!("read_all(after {cursor:?}, limit {limit})"))?;
        if page.is_empty() {
            return Ok((own, cursor));
        }
        check!(
            page.len() <= limit,
            "read_all(after {cursor:?}, limit {limit}) returned {} events",
            page.len()
        );
        for e in page {
            if let Some(c) = cursor {
                check!(
                    e.position > c,
                    "read_all returned position {} after {} (event {} of {} rev {})",
                    e.position,
                    c,
                    e.event_id,
                    e.stream_id,
                    e.revision
                );
            }
            cursor = Some(e.position);
            if is_own(ns, &e) {
                own.push(e);
            }
        }
    }
}

fn check_positions_increase(events: &[RecordedEvent], what: &str) -> CaseResult {
    for w in events.windows(2) {
        check!(
            w[0].position < w[1].position,
            "{what}: position {} ({} rev {}) is followed by {} ({} rev {})",
            w[0].position,
            w[0].stream_id,
            w[0].revision,
            w[1].position,
            w[1].stream_id,
            w[1].revision
        );
    }
    Ok(())
}

/// `events` is one whole stream: revisions 0.., each linked to the one
/// before, each hash matching its content.
fn check_chain(events: &[RecordedEvent]) -> CaseResult {
    chain::verify_stream(events).map_err(|e| format!("hash chain: {e}"))?;
    let mut prev = GENESIS_HASH;
    for (i, e) in events.iter().enumerate() {
        check_eq!(
            e.revision,
            Revision(i as u64),
            "revision of event {i} of {}",
            e.stream_id
        );
        check_eq!(
            e.metadata.prev_hash.as_str(),
            prev,
            "prev_hash of {} rev {}",
            e.stream_id,
            e.revision
        );
        check!(
            e.metadata.hash.len() == 64
                && e.metadata
                    .hash
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "hash of {} rev {} is not lower-case hex SHA-256: {:?}",
            e.stream_id,
            e.revision,
            e.metadata.hash
        );
        check_eq!(
            chain::expected_hash(e),
            e.metadata.hash,
            "hash of {} rev {} recomputed",
            e.stream_id,
            e.revision
        );
        prev = &e.metadata.hash;
    }
    Ok(())
}

fn expect_conflict(
    result: Result<AppendOutcome, AppendError>,
    expected: ExpectedRevision,
    actual: Option<Revision>,
    what: &str,
) -> CaseResult {
    match result {
        Err(AppendError::Conflict {
            expected: e,
            actual: a,
        }) => {
            check_eq!(e, expected, "{what}: Conflict.expected");
            check_eq!(a, actual, "{what}: Conflict.actual");
            Ok(())
        }
        Ok(o) => Err(format!(
            "{what}: expected Conflict {{ actual: {actual:?} }}, but the append succeeded at {o:?}"
        )),
        Err(e) => Err(format!(
            "{what}: expected Conflict {{ actual: {actual:?} }}, got error {e:?}"
        )),
    }
}

fn expect_invalid(result: Result<AppendOutcome, AppendError>, what: &str) -> CaseResult {
    match result {
        Err(AppendError::Store(StoreError::Invalid(_))) => Ok(()),
        Ok(o) => Err(format!(
            "{what}: expected StoreError::Invalid, but the append succeeded at {o:?}"
        )),
        Err(e) => Err(format!("{what}: expected StoreError::Invalid, got {e:?}")),
    }
}

async fn join_all<T>(handles: Vec<JoinHandle<Result<T, String>>>) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(handles.len());
    let mut first_err = None;
    for h in handles {
        match h.await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("task failed: {e}"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The next event of `ns`'s streams from `sub`, or an error after
/// `timeout` of silence.
async fn next_own(
    sub: &mut EventStream,
    ns: &str,
    timeout: Duration,
) -> Result<Option<RecordedEvent>, String> {
    let wait = async {
        loop {
            match sub.next().await {
                None => return Err("the subscription ended".to_string()),
                Some(Err(e)) => return Err(format!("the subscription failed: {e}")),
                Some(Ok(e)) if is_own(ns, &e) => return Ok(e),
                Some(Ok(_)) => {}
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r.map(Some),
        Err(_) => Ok(None),
    }
}

/// Receives exactly `n` own events from `sub`, failing after
/// [`SUBSCRIPTION_TIMEOUT`] of silence.
async fn receive_own(
    sub: &mut EventStream,
    ns: &str,
    n: usize,
) -> Result<Vec<RecordedEvent>, String> {
    let mut got: Vec<RecordedEvent> = Vec::with_capacity(n);
    while got.len() < n {
        match next_own(sub, ns, SUBSCRIPTION_TIMEOUT).await? {
            Some(e) => got.push(e),
            None => {
                return Err(format!(
                    "the subscription delivered {} of the {n} events owed to it, then nothing for {:?} (last: {:?})",
                    got.len(),
                    SUBSCRIPTION_TIMEOUT,
                    got.last().map(|e| (e.stream_id.to_string(), e.revision, e.position))
                ))
            }
        }
    }
    Ok(got)
}

fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

/// Compares two views of the same events by id and position, naming the
/// first difference.
fn check_same_sequence(got: &[RecordedEvent], want: &[RecordedEvent], what: &str) -> CaseResult {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        check!(
            g.event_id == w.event_id && g.position == w.position,
            "{what}: event {i} is {} rev {} at {}, expected {} rev {} at {}",
            g.stream_id,
            g.revision,
            g.position,
            w.stream_id,
            w.revision,
            w.position
        );
    }
    check_eq!(got.len(), want.len(), "{what}: number of events");
    Ok(())
}

// ---------------------------------------------------------------------------
// Cases

/// Every field the writer gave comes back as given; the store's stamps are
/// sane and identical whichever way the event is read.
pub async fn append_and_read_round_trip(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    // Every character a stream name may hold.
    let s = stream(&fx.ns, "basket-1_user:alice@example.com.v2")?;
    let first = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "BasketCreated".into(),
        schema_version: 1,
        data: json!({
            "name": "Δ-neutral iron condor ✓ — 日本",
            "quote": "it's \"quoted\" \\ back\nslash\ttab",
            "legs": [
                {"strike": 4500, "right": "put", "qty": -1},
                {"strike": 4600, "right": "call", "qty": 1}
            ],
            "weight": 0.25,
            "beyond_f64": 9_007_199_254_740_993u64,
            "negative": -42,
            "flags": {"zeta": true, "alpha": false, "note": null},
            "empty_object": {},
            "empty_array": []
        }),
        metadata: NewMetadata {
            actor: Actor {
                kind: "user".into(),
                id: "0190c0de-0000-7000-8000-00000000a11c".into(),
            },
            correlation_id: Uuid::new_v4(),
            causation_id: Some(Uuid::new_v4()),
            idempotency_key: Some("idem-Key_1:ü".into()),
        },
    };
    let second = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "BasketRebalanced".into(),
        schema_version: 3,
        data: json!(["a", 1, null]),
        metadata: NewMetadata {
            actor: Actor {
                kind: "partner".into(),
                id: "key-42".into(),
            },
            correlation_id: first.metadata.correlation_id,
            causation_id: None,
            idempotency_key: None,
        },
    };
    let third = NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "BasketArchived2".into(),
        schema_version: 2,
        data: json!("just a string"),
        metadata: NewMetadata {
            actor: Actor {
                kind: "admin".into(),
                id: "root".into(),
            },
            correlation_id: Uuid::new_v4(),
            causation_id: Some(second.event_id),
            idempotency_key: Some(String::new()),
        },
    };
    let written = vec![first.clone(), second.clone(), third.clone()];

    let before = Utc::now();
    let o1 = append(store, &s, ExpectedRevision::NoStream, vec![first, second]).await?;
    let o2 = append(store, &s, ExpectedRevision::Exact(Revision(1)), vec![third]).await?;
    let after = Utc::now();
    check_eq!(
        o1.last_revision,
        Revision(1),
        "first append's last_revision"
    );
    check_eq!(
        o2.last_revision,
        Revision(2),
        "second append's last_revision"
    );
    check!(
        o1.last_position < o2.last_position,
        "append outcomes' positions must grow: {} then {}",
        o1.last_position,
        o2.last_position
    );
    if let Some(start) = start {
        check!(
            o1.last_position > start,
            "a new event's position {} is not after the earlier head {start}",
            o1.last_position
        );
    }

    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 3, "events read back");
    for (i, (got, want)) in read.iter().zip(&written).enumerate() {
        let what = format!("event {i}");
        check_eq!(got.event_id, want.event_id, "{what}: event_id");
        check_eq!(got.stream_id, s, "{what}: stream_id");
        check_eq!(got.revision, Revision(i as u64), "{what}: revision");
        check_eq!(got.event_type, want.event_type, "{what}: event_type");
        check_eq!(
            got.schema_version,
            want.schema_version,
            "{what}: schema_version"
        );
        check_eq!(got.data, want.data, "{what}: data");
        check_eq!(got.metadata.actor, want.metadata.actor, "{what}: actor");
        check_eq!(
            got.metadata.correlation_id,
            want.metadata.correlation_id,
            "{what}: correlation_id"
        );
        check_eq!(
            got.metadata.causation_id,
            want.metadata.causation_id,
            "{what}: causation_id"
        );
        check_eq!(
            got.metadata.idempotency_key,
            want.metadata.idempotency_key,
            "{what}: idempotency_key"
        );
        let at = got.metadata.recorded_at;
        check_eq!(
            at.timestamp_subsec_nanos() % 1_000,
            0,
            "{what}: recorded_at {at} must be truncated to microseconds"
        );
        check!(
            at >= before - chrono::Duration::seconds(60)
                && at <= after + chrono::Duration::seconds(60),
            "{what}: recorded_at {at} is far from the time of the append ({before} .. {after})"
        );
    }
    check_eq!(
        read[1].position,
        o1.last_position,
        "position of the first append's last event"
    );
    check_eq!(
        read[2].position,
        o2.last_position,
        "position of the second append's last event"
    );
    check_positions_increase(&read, "read_stream")?;
    check_chain(&read)?;

    // The same events, field for field, whichever way they are read.
    let again = read_stream(store, &s, Revision::START).await?;
    check!(again == read, "a second read_stream differs from the first");
    let all = read_own(store, &fx.ns, start, 100).await?;
    check!(
        all == read,
        "read_all's copy of the events differs from read_stream's: {:?} vs {:?}",
        all.iter()
            .map(|e| (e.revision, e.position, e.metadata.recorded_at))
            .collect::<Vec<_>>(),
        read.iter()
            .map(|e| (e.revision, e.position, e.metadata.recorded_at))
            .collect::<Vec<_>>()
    );
    let mut sub = store
        .subscribe_all(start)
        .await
        .ctx("subscribe_all(start)")?;
    let live = receive_own(&mut sub, &fx.ns, 3).await?;
    check!(
        live == read,
        "subscribe_all's copy of the events differs from read_stream's"
    );
    Ok(())
}

/// One append of several events gets consecutive revisions, all or nothing,
/// and readers never see part of it.
pub async fn multi_event_append_is_atomic_and_consecutive(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let s = stream(&fx.ns, "multi")?;
    let o = append(store, &s, ExpectedRevision::NoStream, evs(0..5)).await?;
    check_eq!(
        o.last_revision,
        Revision(4),
        "last_revision of a 5-event append"
    );
    let o = append(store, &s, ExpectedRevision::Exact(Revision(4)), evs(5..8)).await?;
    check_eq!(
        o.last_revision,
        Revision(7),
        "last_revision of the next 3-event append"
    );
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 8, "events in the stream");
    check_positions_increase(&read, "read_stream")?;
    check_eq!(
        read[7].position,
        o.last_position,
        "last_position of the 3-event append"
    );
    for (i, e) in read.iter().enumerate() {
        check_eq!(e.data, json!({ "n": i }), "data of revision {i}");
    }

    // A conflicting multi-event append writes none of its events.
    let rejected = evs(100..103);
    let rejected_ids: HashSet<Uuid> = rejected.iter().map(|e| e.event_id).collect();
    expect_conflict(
        store
            .append(&s, ExpectedRevision::Exact(Revision(2)), rejected)
            .await,
        ExpectedRevision::Exact(Revision(2)),
        Some(Revision(7)),
        "stale multi-event append",
    )?;
    // So does one with a single invalid event among valid ones.
    let mut mixed = evs(200..203);
    mixed[1].event_type = "Not Valid".into();
    let mixed_ids: HashSet<Uuid> = mixed.iter().map(|e| e.event_id).collect();
    expect_invalid(
        store
            .append(&s, ExpectedRevision::Exact(Revision(7)), mixed)
            .await,
        "append with one invalid event among three",
    )?;
    let after = read_stream(store, &s, Revision::START).await?;
    check!(after == read, "a refused append changed the stream");
    let all = read_own(store, &fx.ns, start, 1000).await?;
    check!(
        all.iter()
            .all(|e| !rejected_ids.contains(&e.event_id) && !mixed_ids.contains(&e.event_id)),
        "an event of a refused append is in $all"
    );
    check_eq!(all.len(), 8, "own events in $all");

    // Readers racing a writer of 4-event appends only ever see whole appends.
    let racy = stream(&fx.ns, "multi-racy")?;
    let writer = {
        let store = Arc::clone(&fx.store);
        let racy = racy.clone();
        tokio::spawn(async move {
            for k in 0..30u64 {
                append(&*store, &racy, ExpectedRevision::Any, evs(k * 4..k * 4 + 4)).await?;
            }
            Ok::<(), String>(())
        })
    };
    let mut observations = 0usize;
    let (mut cursor, mut in_all) = (start, 0usize);
    loop {
        let done = writer.is_finished();
        let seen = read_stream(store, &racy, Revision::START).await?;
        observations += 1;
        check!(
            seen.len() % 4 == 0,
            "read_stream saw {} events of a stream written only in appends of 4",
            seen.len()
        );
        for (i, e) in seen.iter().enumerate() {
            check_eq!(e.revision, Revision(i as u64), "revision in racing read");
        }
        // The same through $all: an append's events all get positions after
        // everything already visible, so paging to the end sees all or none.
        let (new, next) = read_own_from(store, &fx.ns, cursor, 1000).await?;
        cursor = next;
        in_all += new.iter().filter(|e| e.stream_id == racy).count();
        check!(
            in_all % 4 == 0,
            "read_all saw {in_all} events of a stream written only in appends of 4"
        );
        if done {
            check_eq!(seen.len(), 120, "events after the writer finished");
            check_eq!(in_all, 120, "events in $all after the writer finished");
            break;
        }
        tokio::task::yield_now().await;
    }
    writer.await.ctx("writer task")??;
    check!(observations > 0, "the racing reader never read");
    let final_read = read_stream(store, &racy, Revision::START).await?;
    check_chain(&final_read)?;
    Ok(())
}

/// `NoStream` creates a stream and refuses an existing one.
pub async fn expected_no_stream(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "reservation")?;
    let o = append(store, &s, ExpectedRevision::NoStream, vec![ev(0)]).await?;
    check_eq!(
        o.last_revision,
        Revision(0),
        "first revision of a new stream"
    );
    expect_conflict(
        store
            .append(&s, ExpectedRevision::NoStream, vec![ev(1)])
            .await,
        ExpectedRevision::NoStream,
        Some(Revision(0)),
        "NoStream on a stream with one event",
    )?;
    append(store, &s, ExpectedRevision::Exact(Revision(0)), evs(1..3)).await?;
    expect_conflict(
        store
            .append(&s, ExpectedRevision::NoStream, evs(3..5))
            .await,
        ExpectedRevision::NoStream,
        Some(Revision(2)),
        "NoStream on a stream with three events",
    )?;
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 3, "events after the refused appends");
    // Streams are independent: another name is still free.
    let other = stream(&fx.ns, "reservation-2")?;
    let o = append(store, &other, ExpectedRevision::NoStream, vec![ev(0)]).await?;
    check_eq!(
        o.last_revision,
        Revision(0),
        "first revision of a second new stream"
    );
    Ok(())
}

/// `Exact` admits only the stream's last revision and reports the real one.
pub async fn expected_exact(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "exact")?;
    expect_conflict(
        store
            .append(&s, ExpectedRevision::Exact(Revision(0)), vec![ev(0)])
            .await,
        ExpectedRevision::Exact(Revision(0)),
        None,
        "Exact(0) on a missing stream",
    )?;
    check!(
        read_stream(store, &s, Revision::START).await?.is_empty(),
        "a refused Exact append created the stream"
    );
    append(store, &s, ExpectedRevision::NoStream, evs(0..2)).await?;
    let o = append(store, &s, ExpectedRevision::Exact(Revision(1)), vec![ev(2)]).await?;
    check_eq!(o.last_revision, Revision(2), "revision after Exact(1)");
    for stale in [0, 1, 3, 17] {
        expect_conflict(
            store
                .append(&s, ExpectedRevision::Exact(Revision(stale)), vec![ev(99)])
                .await,
            ExpectedRevision::Exact(Revision(stale)),
            Some(Revision(2)),
            &format!("Exact({stale}) on a stream at revision 2"),
        )?;
    }
    let o = append(store, &s, ExpectedRevision::Exact(Revision(2)), vec![ev(3)]).await?;
    check_eq!(o.last_revision, Revision(3), "revision after Exact(2)");
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 4, "events after the refused appends");
    for (i, e) in read.iter().enumerate() {
        check_eq!(e.data, json!({ "n": i }), "data of revision {i}");
    }
    check_chain(&read)?;
    Ok(())
}

/// `Any` appends whatever the stream holds, even under contention.
pub async fn expected_any_always_succeeds(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "any")?;
    let o = append(store, &s, ExpectedRevision::Any, vec![ev(0)]).await?;
    check_eq!(o.last_revision, Revision(0), "Any on a missing stream");
    let o = append(store, &s, ExpectedRevision::Any, evs(1..3)).await?;
    check_eq!(o.last_revision, Revision(2), "Any on an existing stream");

    const WRITERS: u64 = 20;
    let barrier = Arc::new(Barrier::new(WRITERS as usize));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            Arc::clone(&fx.store)
        } else {
            Arc::clone(&fx.peer)
        };
        let s = s.clone();
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            let e = ev(100 + w);
            let id = e.event_id;
            barrier.wait().await;
            let o = append(&*store, &s, ExpectedRevision::Any, vec![e]).await?;
            Ok((o.last_revision, id))
        }));
    }
    let outcomes = join_all(handles).await?;
    let revisions: BTreeMap<Revision, Uuid> = outcomes.iter().copied().collect();
    check_eq!(
        revisions.len(),
        WRITERS as usize,
        "distinct revisions handed to {WRITERS} concurrent Any appends"
    );
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(
        read.len(),
        3 + WRITERS as usize,
        "events after the concurrent Any appends"
    );
    for (rev, id) in &revisions {
        check_eq!(
            read.get(rev.0 as usize).map(|e| e.event_id),
            Some(*id),
            "the event at the revision its append reported ({rev})"
        );
    }
    check_chain(&read)?;
    Ok(())
}

/// `read_stream` from revision `k` returns the stream's suffix.
pub async fn read_stream_from_a_middle_revision(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "middle")?;
    append(store, &s, ExpectedRevision::NoStream, evs(0..2)).await?;
    append(store, &s, ExpectedRevision::Exact(Revision(1)), evs(2..6)).await?;
    let full = read_stream(store, &s, Revision::START).await?;
    check_eq!(full.len(), 6, "events in the stream");
    for from in 0..=6u64 {
        let part = read_stream(store, &s, Revision(from)).await?;
        check!(
            part.as_slice() == &full[from as usize..],
            "read_stream from {from} returned revisions {:?}",
            part.iter().map(|e| e.revision.0).collect::<Vec<_>>()
        );
    }
    for beyond in [7, 1_000, u32::MAX as u64] {
        let part = read_stream(store, &s, Revision(beyond)).await?;
        check!(
            part.is_empty(),
            "read_stream from {beyond} past the end returned {} events",
            part.len()
        );
    }
    Ok(())
}

/// A stream nobody wrote reads as empty, not as an error.
pub async fn missing_stream_reads_empty(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let s = stream(&fx.ns, "never-written")?;
    for from in [0, 1, 50] {
        let read = read_stream(store, &s, Revision(from)).await?;
        check!(
            read.is_empty(),
            "missing stream from {from}: {} events",
            read.len()
        );
    }
    // A stream whose name extends a written one is still missing.
    let written = stream(&fx.ns, "written")?;
    append(store, &written, ExpectedRevision::NoStream, vec![ev(0)]).await?;
    let longer = stream(&fx.ns, "written-not")?;
    check!(
        read_stream(store, &longer, Revision::START)
            .await?
            .is_empty(),
        "a stream whose name extends a written one is not empty"
    );
    let shorter = stream(&fx.ns, "writte")?;
    check!(
        read_stream(store, &shorter, Revision::START)
            .await?
            .is_empty(),
        "a stream whose name is a prefix of a written one is not empty"
    );
    Ok(())
}

/// Empty appends and malformed events are refused with `Invalid`, and write
/// nothing.
pub async fn invalid_appends_are_refused(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    for bad in [
        "",
        "$bad",
        "has space",
        "x".repeat(201).as_str(),
        "ünïcode",
        "a/b",
    ] {
        check!(
            StreamId::parse(bad.to_string()).is_err(),
            "StreamId::parse accepted {bad:?}"
        );
    }
    let s = stream(&fx.ns, "invalid")?;
    for expected in [ExpectedRevision::Any, ExpectedRevision::NoStream] {
        expect_invalid(
            store.append(&s, expected, Vec::new()).await,
            &format!("empty append expecting {expected}"),
        )?;
    }
    let bad_types = [
        String::new(),
        "Has Space".into(),
        "$System".into(),
        "Dashed-Type".into(),
        "Dotted.Type".into(),
        "Ümlaut".into(),
        "A".repeat(101),
    ];
    for bad in &bad_types {
        let mut e = ev(0);
        e.event_type = bad.clone();
        expect_invalid(
            store.append(&s, ExpectedRevision::Any, vec![e]).await,
            &format!("event type {bad:?}"),
        )?;
    }
    let mut e = ev(0);
    e.schema_version = 0;
    expect_invalid(
        store.append(&s, ExpectedRevision::Any, vec![e]).await,
        "schema_version 0",
    )?;
    check!(
        read_stream(store, &s, Revision::START).await?.is_empty(),
        "a refused append created the stream"
    );
    // The longest valid type is accepted.
    let mut e = ev(0);
    e.event_type = "A".repeat(100);
    append(store, &s, ExpectedRevision::NoStream, vec![e]).await?;
    // An existing stream is not touched by refused appends either.
    expect_invalid(
        store
            .append(&s, ExpectedRevision::Exact(Revision(0)), Vec::new())
            .await,
        "empty append to an existing stream",
    )?;
    let mut bad_last = evs(1..3);
    bad_last[1].event_type = "Bad Type".into();
    expect_invalid(
        store
            .append(&s, ExpectedRevision::Exact(Revision(0)), bad_last)
            .await,
        "a valid event followed by an invalid one",
    )?;
    let read = read_stream(store, &s, Revision::START).await?;
    check_eq!(read.len(), 1, "events after the refused appends");
    let all = read_own(store, &fx.ns, start, 1000).await?;
    check_eq!(all.len(), 1, "own events in $all after the refused appends");
    Ok(())
}

/// 50 writers race for one stream: each revision is won by exactly one, the
/// others are told the stream's real revision, and the stream ends whole.
pub async fn concurrent_appenders_get_one_winner_per_revision(fx: Fixture) -> CaseResult {
    const WRITERS: usize = 50;
    let s = stream(&fx.ns, "contended")?;

    struct Win {
        id: Uuid,
        expected: ExpectedRevision,
        revision: Revision,
        conflicts: usize,
    }

    // Round 1: all start with NoStream at once and retry with the revision
    // the conflict reports until each has appended its event.
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            Arc::clone(&fx.store)
        } else {
            Arc::clone(&fx.peer)
        };
        let s = s.clone();
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            let e = ev(w as u64);
            let id = e.event_id;
            let mut expected = ExpectedRevision::NoStream;
            let mut conflicts = 0;
            barrier.wait().await;
            loop {
                match store.append(&s, expected, vec![e.clone()]).await {
                    Ok(o) => {
                        return Ok(Win {
                            id,
                            expected,
                            revision: o.last_revision,
                            conflicts,
                        })
                    }
                    Err(AppendError::Conflict {
                        expected: echoed,
                        actual,
                    }) => {
                        check_eq!(echoed, expected, "writer {w}: Conflict.expected");
                        // The stream only grows, so the real revision is
                        // past the one this writer last saw.
                        let grown = match (expected, actual) {
                            (ExpectedRevision::NoStream, Some(_)) => true,
                            (ExpectedRevision::Exact(seen), Some(a)) => a > seen,
                            _ => false,
                        };
                        check!(
                            grown,
                            "writer {w}: expecting {expected}, got Conflict with actual {actual:?}"
                        );
                        conflicts += 1;
                        check!(
                            conflicts <= 10 * WRITERS,
                            "writer {w}: {conflicts} conflicts without ever winning"
                        );
                        expected = ExpectedRevision::Exact(actual.unwrap_or(Revision::START));
                    }
                    Err(e) => return Err(format!("writer {w}: append expecting {expected}: {e}")),
                }
            }
        }));
    }
    let wins = join_all(handles).await?;
    let mut by_revision: BTreeMap<Revision, &Win> = BTreeMap::new();
    for win in &wins {
        let want = match win.expected {
            ExpectedRevision::NoStream => Revision(0),
            ExpectedRevision::Exact(r) => r.next(),
            ExpectedRevision::Any => return Err("a writer used Any".into()),
        };
        check_eq!(
            win.revision,
            want,
            "revision won expecting {}",
            win.expected
        );
        if let Some(other) = by_revision.insert(win.revision, win) {
            return Err(format!(
                "revision {} was won twice: by {} and {}",
                win.revision, other.id, win.id
            ));
        }
    }
    check_eq!(by_revision.len(), WRITERS, "revisions won");
    let no_stream_wins = wins
        .iter()
        .filter(|w| w.expected == ExpectedRevision::NoStream)
        .count();
    check_eq!(no_stream_wins, 1, "writers that won with NoStream");
    let conflicts: usize = wins.iter().map(|w| w.conflicts).sum();
    check!(
        conflicts >= WRITERS - 1,
        "only {conflicts} conflicts among {WRITERS} writers that all started with NoStream"
    );
    let read = read_stream(&*fx.store, &s, Revision::START).await?;
    check_eq!(read.len(), WRITERS, "events in the contended stream");
    for (rev, win) in &by_revision {
        check_eq!(
            read[rev.0 as usize].event_id,
            win.id,
            "event at revision {rev}"
        );
    }
    check_chain(&read)?;

    // Round 2: all expect the current last revision at once; exactly one
    // wins and every other is told the winner's revision.
    let last = Revision(WRITERS as u64 - 1);
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            Arc::clone(&fx.store)
        } else {
            Arc::clone(&fx.peer)
        };
        let s = s.clone();
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            let e = ev(1000 + w as u64);
            let id = e.event_id;
            barrier.wait().await;
            match store
                .append(&s, ExpectedRevision::Exact(last), vec![e])
                .await
            {
                Ok(o) => Ok(Some((id, o.last_revision))),
                Err(AppendError::Conflict { expected, actual }) => {
                    check_eq!(
                        expected,
                        ExpectedRevision::Exact(last),
                        "writer {w}: Conflict.expected"
                    );
                    check_eq!(actual, Some(last.next()), "writer {w}: Conflict.actual");
                    Ok(None)
                }
                Err(e) => Err(format!("writer {w}: {e}")),
            }
        }));
    }
    let winners: Vec<(Uuid, Revision)> = join_all(handles).await?.into_iter().flatten().collect();
    check_eq!(
        winners.len(),
        1,
        "winners among {WRITERS} writers expecting {last}"
    );
    check_eq!(winners[0].1, last.next(), "the winner's revision");
    let read = read_stream(&*fx.store, &s, Revision::START).await?;
    check_eq!(read.len(), WRITERS + 1, "events after round 2");
    check_eq!(
        read[WRITERS].event_id,
        winners[0].0,
        "the last event is the winner's"
    );
    check_chain(&read)?;
    Ok(())
}

/// `$all` holds every stream's events in the order they were appended.
pub async fn read_all_orders_events_across_streams(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let names = ["a", "b", "c"];
    let streams: Vec<StreamId> = names
        .iter()
        .map(|n| stream(&fx.ns, &format!("order-{n}")))
        .collect::<Result<_, _>>()?;
    // (stream, number of events), appended one after another.
    let plan = [
        (0, 2),
        (1, 1),
        (0, 1),
        (2, 3),
        (1, 2),
        (0, 1),
        (2, 1),
        (1, 1),
    ];
    let mut expected_ids = Vec::new();
    let mut outcomes = Vec::new();
    let mut n = 0;
    for (k, count) in plan {
        let batch = evs(n..n + count);
        n += count;
        expected_ids.extend(batch.iter().map(|e| e.event_id));
        let o = append(store, &streams[k], ExpectedRevision::Any, batch).await?;
        if let Some((_, prev)) = outcomes.last() {
            let prev: &AppendOutcome = prev;
            check!(
                o.last_position > prev.last_position,
                "a later append's position {} is not after the earlier one's {}",
                o.last_position,
                prev.last_position
            );
        }
        outcomes.push((expected_ids.len() - 1, o));
    }
    let all = read_own(store, &fx.ns, start, 1000).await?;
    check!(
        ids(&all) == expected_ids,
        "read_all does not return the events in append order: revisions {:?}",
        all.iter()
            .map(|e| format!("{}@{}", e.stream_id, e.revision))
            .collect::<Vec<_>>()
    );
    check_positions_increase(&all, "read_all")?;
    for (index, o) in &outcomes {
        check_eq!(
            all[*index].position,
            o.last_position,
            "position of append's last event"
        );
    }
    for s in &streams {
        let from_all: Vec<RecordedEvent> =
            all.iter().filter(|e| &e.stream_id == s).cloned().collect();
        let from_stream = read_stream(store, s, Revision::START).await?;
        check!(
            from_all == from_stream,
            "{s}: the events read_all shows differ from read_stream's"
        );
        for (i, e) in from_all.iter().enumerate() {
            check_eq!(
                e.revision,
                Revision(i as u64),
                "{s}: revision order in read_all"
            );
        }
    }
    Ok(())
}

/// Paging through `$all` with `after` and `limit` returns each event
/// exactly once, in order, whatever the page size.
pub async fn read_all_pages_return_each_event_once(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let streams: Vec<StreamId> = (0..4)
        .map(|k| stream(&fx.ns, &format!("page-{k}")))
        .collect::<Result<_, _>>()?;
    for n in 0..25u64 {
        let batch = if n % 5 == 0 {
            evs(n * 10..n * 10 + 2)
        } else {
            vec![ev(n * 10)]
        };
        append(
            store,
            &streams[(n % 4) as usize],
            ExpectedRevision::Any,
            batch,
        )
        .await?;
    }
    let reference = read_own(store, &fx.ns, start, 10_000).await?;
    check_eq!(reference.len(), 30, "own events in $all");
    check_positions_increase(&reference, "read_all")?;
    let unique: HashSet<Uuid> = reference.iter().map(|e| e.event_id).collect();
    check_eq!(unique.len(), reference.len(), "distinct event ids in $all");

    for limit in [1, 2, 3, 7, 29, 30, 31, 1000] {
        let paged = read_own(store, &fx.ns, start, limit).await?;
        check!(
            paged == reference,
            "paging with limit {limit} returned {} own events, not the same {} as one big page",
            paged.len(),
            reference.len()
        );
    }
    // Starting after the k-th own event continues with the (k+1)-th.
    for k in [0, 1, 9, 28] {
        let page = store
            .read_all(Some(reference[k].position), 1)
            .await
            .ctx("read_all(after an own event, 1)")?;
        check_eq!(page.len(), 1, "events after own event {k} (limit 1)");
        let rest = read_own(store, &fx.ns, Some(reference[k].position), 5).await?;
        check!(
            rest.as_slice() == &reference[k + 1..],
            "reading after own event {k} did not return exactly the later own events"
        );
    }
    let after_last = read_own(store, &fx.ns, Some(reference[29].position), 100).await?;
    check!(
        after_last.is_empty(),
        "events after the last own event: {}",
        after_last.len()
    );

    // From the very beginning of the log. (On a fresh store `start` is
    // `None`, so the paging above already read the whole log from there; a
    // shared KurrentDB log may be too long to scan on every run.)
    let first = store.read_all(None, 1).await.ctx("read_all(None, 1)")?;
    check_eq!(first.len(), 1, "events at the start of a non-empty log");
    check!(
        first[0].position <= reference[0].position,
        "the log's first event {} comes after an own event at {}",
        first[0].position,
        reference[0].position
    );
    Ok(())
}

/// A subscription from a checkpoint delivers exactly the later events: the
/// stored ones, then the ones appended while it runs.
pub async fn subscribe_from_checkpoint_receives_exactly_the_later_events(
    fx: Fixture,
) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let a = stream(&fx.ns, "sub-a")?;
    let b = stream(&fx.ns, "sub-b")?;
    for n in 0..10u64 {
        let s = if n % 3 == 0 { &b } else { &a };
        append(store, s, ExpectedRevision::Any, vec![ev(n)]).await?;
    }
    let stored = read_own(store, &fx.ns, start, 1000).await?;
    check_eq!(stored.len(), 10, "own events before subscribing");
    const K: usize = 3;
    let checkpoint = stored[K].position;

    let mut sub = store
        .subscribe_all(Some(checkpoint))
        .await
        .ctx("subscribe_all(checkpoint)")?;
    // Appended before the subscription is first polled.
    let mut expected_later = Vec::new();
    for n in 10..12u64 {
        let e = ev(n);
        expected_later.push(e.event_id);
        append(store, &a, ExpectedRevision::Any, vec![e]).await?;
    }
    let caught_up = receive_own(&mut sub, &fx.ns, stored.len() - K - 1 + 2).await?;
    check!(
        caught_up[..stored.len() - K - 1] == stored[K + 1..],
        "the subscription did not start with exactly the stored events after the checkpoint: got {:?}",
        caught_up.iter().map(|e| e.position).collect::<Vec<_>>()
    );
    check_eq!(
        ids(&caught_up[stored.len() - K - 1..]),
        expected_later,
        "events appended right after subscribing"
    );
    // Appended while the subscription is live and waiting.
    let live_store = Arc::clone(&fx.store);
    let (a2, b2) = (a.clone(), b.clone());
    let writer = tokio::spawn(async move {
        let mut written = Vec::new();
        for n in 12..17u64 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let e = ev(n);
            written.push(e.event_id);
            let s = if n % 2 == 0 { &a2 } else { &b2 };
            append(&*live_store, s, ExpectedRevision::Any, vec![e]).await?;
            if n == 14 {
                // One multi-event append among the live ones.
                let batch = evs(140..143);
                written.extend(batch.iter().map(|e| e.event_id));
                append(&*live_store, &a2, ExpectedRevision::Any, batch).await?;
            }
        }
        Ok::<_, String>(written)
    });
    let live = receive_own(&mut sub, &fx.ns, 8).await?;
    let written = writer.await.ctx("writer task")??;
    check_eq!(ids(&live), written, "events appended while subscribed");
    let mut received = caught_up;
    received.extend(live);
    check_positions_increase(&received, "subscription")?;
    // Nothing more is owed: no duplicates, no phantom events.
    if let Some(extra) = next_own(&mut sub, &fx.ns, QUIET_PERIOD).await? {
        return Err(format!(
            "the subscription delivered an extra event: {} rev {} at {}",
            extra.stream_id, extra.revision, extra.position
        ));
    }
    // And what it delivered is what the log holds after the checkpoint.
    let log = read_own(store, &fx.ns, Some(checkpoint), 1000).await?;
    check!(
        log == received,
        "the subscription's events differ from read_all's"
    );
    Ok(())
}

/// 10 000 appends by 100 concurrent writers to 100 streams: `$all` then
/// holds every event once, in strictly increasing position order, each
/// stream whole and chained.
pub async fn ten_thousand_concurrent_appends_across_100_streams(fx: Fixture) -> CaseResult {
    const STREAMS: u64 = 100;
    const PER_STREAM: u64 = 100;
    let start = start_of(&*fx.store).await?;
    let mut handles = Vec::new();
    for k in 0..STREAMS {
        let store = Arc::clone(&fx.store);
        let s = stream(&fx.ns, &format!("bulk-{k}"))?;
        handles.push(tokio::spawn(async move {
            let mut written = Vec::with_capacity(PER_STREAM as usize);
            let mut expected = ExpectedRevision::NoStream;
            let mut last_position: Option<Position> = None;
            for i in 0..PER_STREAM {
                let e = ev(k * 1000 + i);
                let id = e.event_id;
                let o = append(&*store, &s, expected, vec![e]).await?;
                check_eq!(o.last_revision, Revision(i), "{s}: revision of append {i}");
                check!(
                    last_position.is_none_or(|p| o.last_position > p),
                    "{s}: append {i} got position {}, not after {:?}",
                    o.last_position,
                    last_position
                );
                last_position = Some(o.last_position);
                expected = ExpectedRevision::Exact(o.last_revision);
                written.push((id, o.last_position));
            }
            Ok((s, written))
        }));
    }
    let written = join_all(handles).await?;
    let mut position_of: HashMap<Uuid, Position> = HashMap::new();
    for (_, w) in &written {
        position_of.extend(w.iter().copied());
    }
    check_eq!(
        position_of.len(),
        (STREAMS * PER_STREAM) as usize,
        "distinct events written"
    );

    let all = read_own(&*fx.store, &fx.ns, start, 1000).await?;
    check_eq!(
        all.len(),
        (STREAMS * PER_STREAM) as usize,
        "own events in $all"
    );
    check_positions_increase(&all, "read_all")?;
    let mut seen = HashSet::with_capacity(all.len());
    let mut next_revision: HashMap<&StreamId, u64> = HashMap::new();
    for e in &all {
        check!(
            seen.insert(e.event_id),
            "event {} appears twice in $all",
            e.event_id
        );
        check_eq!(
            position_of.get(&e.event_id).copied(),
            Some(e.position),
            "position of {} rev {} against its append's outcome",
            e.stream_id,
            e.revision
        );
        let next = next_revision.entry(&e.stream_id).or_insert(0);
        check_eq!(
            e.revision,
            Revision(*next),
            "{}: revision order in $all",
            e.stream_id
        );
        *next += 1;
    }
    check_eq!(next_revision.len(), STREAMS as usize, "streams in $all");
    for (s, w) in &written {
        let read = read_stream(&*fx.store, s, Revision::START).await?;
        check_eq!(read.len(), PER_STREAM as usize, "{s}: events");
        check!(
            read.iter()
                .map(|e| e.event_id)
                .eq(w.iter().map(|(id, _)| *id)),
            "{s}: events differ from those appended"
        );
        check_chain(&read)?;
    }
    let head = fx.store.head().await.ctx("head()")?;
    check!(
        head >= all.last().map(|e| e.position),
        "head() {head:?} is before the last appended event {:?}",
        all.last().map(|e| e.position)
    );
    Ok(())
}

/// Readers tailing `$all` — a pager and a subscription — while many writers
/// append through two store handles see positions strictly increase and, in
/// the end, exactly the sequence a final full read returns: no event that
/// committed late at an earlier position is skipped.
pub async fn tailing_readers_never_skip_late_commits(fx: Fixture) -> CaseResult {
    const WRITERS: u64 = 16;
    const APPENDS: u64 = 30;
    let start = start_of(&*fx.store).await?;
    let total: usize = (0..WRITERS)
        .map(|_| (0..APPENDS).map(|i| (i % 3 + 1) as usize).sum::<usize>())
        .sum();

    let mut sub = fx
        .store
        .subscribe_all(start)
        .await
        .ctx("subscribe_all(start)")?;
    let writers_done = Arc::new(AtomicBool::new(false));

    // The pager: reads pages after the last position it saw, checking every
    // page against the one before, until the writers are done and a page
    // read after that comes back empty.
    let pager = {
        let store = Arc::clone(&fx.store);
        let ns = fx.ns.clone();
        let done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut cursor = start;
            let mut own = Vec::new();
            let mut pages = 0usize;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.read_all(cursor, 37).await.ctx("tailing read_all")?;
                pages += 1;
                if page.is_empty() {
                    if finished {
                        return Ok((own, pages));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                for e in page {
                    if let Some(c) = cursor {
                        check!(
                            e.position > c,
                            "tailing reader: position {} after {c}",
                            e.position
                        );
                    }
                    cursor = Some(e.position);
                    if is_own(&ns, &e) {
                        own.push(e);
                    }
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let subscriber = {
        let ns = fx.ns.clone();
        tokio::spawn(async move {
            receive_own(&mut sub, &ns, total)
                .await
                .map(|got| (got, sub))
        })
    };

    let barrier = Arc::new(Barrier::new(WRITERS as usize));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 {
            Arc::clone(&fx.store)
        } else {
            Arc::clone(&fx.peer)
        };
        let s = stream(&fx.ns, &format!("tail-{}", w % 8))?;
        let barrier = Arc::clone(&barrier);
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            for i in 0..APPENDS {
                let n = w * 1000 + i * 10;
                let size = i % 3 + 1;
                append(&*store, &s, ExpectedRevision::Any, evs(n..n + size)).await?;
            }
            Ok(())
        }));
    }
    let writers = join_all(handles).await;
    writers_done.store(true, Ordering::SeqCst);
    let (paged, pages) = pager.await.ctx("tailing reader task")??;
    writers?;
    let (subscribed, mut sub) = subscriber.await.ctx("subscriber task")??;

    let all = read_own(&*fx.store, &fx.ns, start, 1000).await?;
    check_eq!(all.len(), total, "own events in the final read");
    let unique: HashSet<Uuid> = all.iter().map(|e| e.event_id).collect();
    check_eq!(unique.len(), total, "distinct own events in the final read");
    check!(pages > 1, "the tailing reader read only {pages} page(s)");
    check_same_sequence(&paged, &all, "tailing read_all vs final read")?;
    check_same_sequence(&subscribed, &all, "subscription vs final read")?;
    if let Some(extra) = next_own(&mut sub, &fx.ns, QUIET_PERIOD).await? {
        return Err(format!(
            "the subscription delivered an extra event: {} rev {} at {}",
            extra.stream_id, extra.revision, extra.position
        ));
    }
    for k in 0..8 {
        let s = stream(&fx.ns, &format!("tail-{k}"))?;
        check_chain(&read_stream(&*fx.store, &s, Revision::START).await?)?;
    }
    Ok(())
}

/// Every stream is an unbroken hash chain, identical whichever way it is
/// read, and the chain check really detects tampering.
pub async fn hash_chain_verifies(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let start = start_of(store).await?;
    let streams: Vec<StreamId> = (0..3)
        .map(|k| stream(&fx.ns, &format!("chain-{k}")))
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for (round, size) in [1u64, 3, 2, 1, 4].into_iter().enumerate() {
        for s in &streams {
            // Same content in every stream: every hash must still be unique.
            let batch: Vec<NewEvent> = (0..size)
                .map(|i| {
                    let mut e = ev(round as u64 * 10 + i);
                    e.metadata.correlation_id = Uuid::nil();
                    e
                })
                .collect();
            n += size;
            append(store, s, ExpectedRevision::Any, batch).await?;
        }
    }
    let mut hashes = HashSet::new();
    for s in &streams {
        let read = read_stream(store, s, Revision::START).await?;
        check_eq!(read.len() as u64, n / 3, "{s}: events");
        check_chain(&read)?;
        for e in &read {
            check!(
                hashes.insert(e.metadata.hash.clone()),
                "hash {} occurs twice",
                e.metadata.hash
            );
        }
        let tail = read_stream(store, s, Revision(4)).await?;
        check!(
            tail.as_slice() == &read[4..],
            "{s}: read from revision 4 differs"
        );
        // The check can fail: a changed byte breaks the chain.
        let mut tampered = read.clone();
        tampered[5].data = json!({ "n": 666 });
        check!(
            chain::verify_stream(&tampered).is_err(),
            "{s}: verify_stream accepted a tampered event"
        );
        let mut relinked = read.clone();
        relinked.swap(2, 3);
        check!(
            chain::verify_stream(&relinked).is_err(),
            "{s}: verify_stream accepted reordered events"
        );
    }
    let all = read_own(store, &fx.ns, start, 1000).await?;
    for s in &streams {
        let from_all: Vec<RecordedEvent> =
            all.iter().filter(|e| &e.stream_id == s).cloned().collect();
        check_chain(&from_all)?;
    }
    Ok(())
}

/// `head()` is the position of the newest event of the log.
pub async fn head_is_the_last_position(fx: Fixture) -> CaseResult {
    let store = &*fx.store;
    let empty = store
        .read_all(None, 1)
        .await
        .ctx("read_all(None, 1)")?
        .is_empty();
    let head = store.head().await.ctx("head()")?;
    if empty {
        check_eq!(head, None, "head() of an empty log");
    } else {
        check!(head.is_some(), "head() is None but the log holds events");
    }
    let s = stream(&fx.ns, "head")?;
    let mut last = None;
    for n in 0..3u64 {
        let o = append(store, &s, ExpectedRevision::Any, evs(n * 2..n * 2 + 2)).await?;
        let head = store.head().await.ctx("head()")?;
        check!(
            head >= Some(o.last_position),
            "head() {head:?} is before the position {} just appended",
            o.last_position
        );
        last = Some(o.last_position);
    }
    // Bracket the log's end between two heads: on a store nobody else
    // writes to, that makes head() equal to the last event's position.
    let before = store.head().await.ctx("head()")?;
    let mut cursor = last;
    loop {
        let page = store
            .read_all(cursor, 1000)
            .await
            .ctx("read_all to the end")?;
        match page.last() {
            Some(e) => cursor = Some(e.position),
            None => break,
        }
    }
    let after = store.head().await.ctx("head()")?;
    check!(
        before <= cursor && cursor <= after,
        "the log ends at {cursor:?}, but head() said {before:?} before reading it and {after:?} after"
    );
    Ok(())
}
