//! The conformance suite every [`EventStore`] backend must pass.
//!
//! Each case is a `pub async fn(Fixture) -> Result<(), String>`: `Ok` when
//! the backend behaved, `Err` with the first broken expectation otherwise.
//! [`cases`] lists them so that a harness (`store/tests/conformance.rs`) can
//! run every case against every backend. The cases live in `appends.rs`,
//! `reads.rs` and `concurrency.rs`; this file holds the fixture, the list
//! and the helpers they share.
//!
//! Compiled only with the crate's `conformance` feature: the suite is for
//! test harnesses, never part of a library or binary build.
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
// Cases (after the helpers and their macros, which they use)

mod appends;
mod concurrency;
mod reads;

pub use appends::*;
pub use concurrency::*;
pub use reads::*;
