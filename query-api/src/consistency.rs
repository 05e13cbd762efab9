//! Read-your-writes (SPEC §4): a query that sends back the
//! `X-Consistency-Token: <commit>.<prepare>` a command answered with waits
//! until the read models include that command.
//!
//! "Include" means every projector's checkpoint in `projector_checkpoints`
//! is at or past the token's position (positions compare by commit, then
//! prepare — the order of the global log). One [`CheckpointWatcher`] per
//! process reads the checkpoints every [`POLL_INTERVAL`] while requests
//! wait; each waits up to [`crate::QueryState::consistency_wait`], then
//! answers 503 `consistency_timeout` with `Retry-After: 1`. While no
//! projector has written a checkpoint at all, nothing is caught up.
//!
//! The token's form and its 400 `invalid_consistency_token` belong to the
//! HTTP edge ([`basketry_http::consistency`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::error::QueryError;
use crate::rows::{int, Sql};

pub use basketry_http::consistency::{Token, CONSISTENCY_TOKEN};

/// How often the watcher reads the checkpoints while requests wait.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The lowest checkpoint of the projectors in `db`: `None` while none has
/// checkpointed, or while a name in `expected` has not.
async fn lowest(db: &AnyPool, expected: &[String]) -> Result<Option<Token>, QueryError> {
    let rows =
        Sql::new("SELECT name, commit_position, prepare_position FROM projector_checkpoints")
            .query()
            .fetch_all(db)
            .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = rows
        .iter()
        .filter_map(|r| sqlx::Row::try_get::<String, _>(r, "name").ok())
        .collect();
    if expected.iter().any(|e| !names.contains(e)) {
        return Ok(None);
    }
    let mut low: Option<Token> = None;
    for row in &rows {
        let at = Token {
            commit: int(row, "commit_position")?,
            prepare: int(row, "prepare_position")?,
        };
        low = Some(low.map_or(at, |l| l.min(at)));
    }
    Ok(low)
}

/// Whether every projector has checkpointed at or past `token` (and at
/// least one has checkpointed at all); every name in `expected` must have a
/// checkpoint.
pub async fn caught_up(
    db: &AnyPool,
    token: Token,
    expected: &[String],
) -> Result<bool, QueryError> {
    Ok(lowest(db, expected).await?.is_some_and(|low| low >= token))
}

/// How long an idle watcher sleeps before checking whether it is still
/// wanted (it ends once its [`CheckpointWatcher`] is dropped).
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The process's one reader of the projectors' checkpoints, shared by every
/// request waiting for a consistency token.
///
/// A background task reads the checkpoints every [`POLL_INTERVAL`] while at
/// least one request waits, and not at all otherwise; waiting requests
/// watch what it publishes. However many requests wait, the database sees
/// one read per interval (`docs/adr/0013-back-pressure-timeouts-and-pools.md`).
#[derive(Clone)]
pub struct CheckpointWatcher {
    inner: Arc<Inner>,
}

struct Inner {
    db: AnyPool,
    expected: Vec<String>,
    /// Checkpoint reads so far.
    reads: AtomicU64,
    /// The lowest checkpoint as last read ([`lowest`]).
    seen: watch::Sender<Option<Token>>,
    /// Requests waiting now.
    waiting: AtomicUsize,
    /// Wakes the idle task when a request starts waiting.
    wake: Notify,
}

/// Counts a request as waiting for as long as it lives.
struct Waiting<'a>(&'a Inner);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CheckpointWatcher {
    /// A watcher of the checkpoints in `db`; a token waits for every name in
    /// `expected` (empty: whichever projectors have checkpointed). Starts
    /// its task on the current Tokio runtime.
    pub fn new(db: AnyPool, expected: Vec<String>) -> Self {
        let inner = Arc::new(Inner {
            db,
            expected,
            reads: AtomicU64::new(0),
            seen: watch::Sender::new(None),
            waiting: AtomicUsize::new(0),
            wake: Notify::new(),
        });
        tokio::spawn(watch_checkpoints(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// How many times the checkpoints have been read from the database.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// Waits until the checkpoints reach `token`, at most `wait`; then
    /// [`QueryError::ConsistencyTimeout`].
    pub async fn wait_for(&self, token: Token, wait: Duration) -> Result<(), QueryError> {
        let deadline = Instant::now() + wait;
        let reached = move |seen: &Option<Token>| seen.is_some_and(|low| low >= token);
        let mut seen = self.inner.seen.subscribe();
        if reached(&seen.borrow_and_update()) {
            return Ok(());
        }
        self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.inner);
        self.inner.wake.notify_one();
        let reached_in_time = tokio::time::timeout_at(deadline, seen.wait_for(reached))
            .await
            .is_ok_and(|r| r.is_ok());
        // The sender lives in `inner`, which outlives this call; a closed
        // channel cannot happen, and would count as a timeout anyway.
        if reached_in_time {
            Ok(())
        } else {
            Err(QueryError::ConsistencyTimeout)
        }
    }
}

/// The watcher's task: reads while requests wait, sleeps otherwise, ends
/// when the watcher is gone.
async fn watch_checkpoints(inner: Weak<Inner>) {
    loop {
        let Some(me) = inner.upgrade() else { return };
        if me.waiting.load(Ordering::SeqCst) == 0 {
            let woken = me.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if me.waiting.load(Ordering::SeqCst) == 0 {
                let _ = tokio::time::timeout(IDLE_CHECK, woken).await;
                continue;
            }
        }
        me.reads.fetch_add(1, Ordering::Relaxed);
        match lowest(&me.db, &me.expected).await {
            Ok(low) => {
                me.seen.send_replace(low);
            }
            // The waiting requests time out with 503 if this persists.
            Err(e) => tracing::warn!(error = %e, "reading projector checkpoints failed"),
        }
        drop(me);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
