//! The projector runtime: follow the global log from each projector's
//! checkpoint, apply events in batches, and write the checkpoint in the same
//! transaction as the rows.
//!
//! # Exactly once
//!
//! A batch is one transaction: every event of the batch is applied, then the
//! checkpoint row (`projector_checkpoints`) is moved to the batch's last
//! position, then the transaction commits. A failure anywhere — database,
//! decode, an injected crash, the process dying — rolls the whole batch back,
//! rows and checkpoint together, and the runner resumes from the checkpoint
//! that committed. An event can therefore be neither skipped nor applied
//! twice.
//!
//! The checkpoint write is a compare-and-set: it inserts the row only if
//! there is none, and updates it only if it still holds the position the
//! batch started from. If anything else moved it meanwhile (a rebuild, or a
//! second instance of the same projector in a scale-out deployment), the
//! batch is rolled back with [`ProjectionError::CheckpointMoved`] and the
//! runner starts again from the new checkpoint, so two runners can never
//! both apply the same events.
//!
//! # One reader for every projector
//!
//! The projectors do not read the log each on its own. One reader pages
//! through it from the lowest of their checkpoints; each page is decoded
//! once ([`crate::DecodedEvent`]) and handed to every projector
//! ([`crate::Projector::apply_batch`]) in **one** transaction that also moves
//! every checkpoint (each with its own compare-and-set). A projector whose
//! checkpoint is ahead of the page's start gets only the events after it,
//! so projectors that are behind catch up first and the others join them
//! as the reader reaches their checkpoints; from then on they move
//! together.
//!
//! A projector whose part of a batch fails is taken out of it and the batch
//! is applied again without it: the failing projector stays at its
//! checkpoint (rows and checkpoint rolled back together), the others carry
//! on. The catch-up paths return the first error once the others are done;
//! the live runner lets the failed projector retry on its own after a
//! backoff.
//!
//! # Running
//!
//! * [`ProjectorRuntime::run`] follows the log live (`subscribe_all` from
//!   the lowest checkpoint, grouped into batches of what is ready, at most
//!   [`RuntimeConfig::batch_size`]), retrying failed batches with backoff,
//!   until [`ProjectorRuntime::stop`]: the batch in progress commits, then
//!   `run` returns.
//! * [`ProjectorRuntime::catch_up`] / [`ProjectorRuntime::run_until`] page
//!   through the log until the checkpoints reach the head (or a position)
//!   and return the first error instead of retrying: for tests, the CLI's
//!   rebuild and audits. The next page is read and decoded by a task of its
//!   own while the current one is applied.
//! * [`ProjectorRuntime::rebuild`] empties the projectors' tables and
//!   checkpoints in one transaction and catches them up together from
//!   position zero.
//! * [`ProjectorRuntime::status`] reports each projector's position and lag
//!   for `/metrics` and `/readyz`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basketry_store::chain::format_timestamp;
use basketry_store::{EventStore, Position, StoreError};
use chrono::{DateTime, Utc};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row};
use tokio::sync::{mpsc, watch};

use crate::db::Backend;
use crate::{DecodedEvent, ProjectionError, Projector};

/// How the runtime batches and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// Wait after the first failed batch; doubled after each further
    /// failure, reset by a success.
    pub retry_initial: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// Where a projector is in the global log, as committed with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The projector.
    pub name: String,
    /// Position of the last event applied.
    pub position: Position,
    /// Events consumed since the projector's last rebuild, counting those it
    /// ignored (they moved the checkpoint too).
    pub events_applied: u64,
    /// `recorded_at` of the last event applied.
    pub last_recorded_at: DateTime<Utc>,
}

/// A projector's progress, for `/metrics` and `/readyz`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectorStatus {
    /// The projector.
    pub name: String,
    /// Its checkpoint; `None` before its first batch.
    pub position: Option<Position>,
    /// Events consumed since its last rebuild.
    pub events_applied: u64,
    /// How far behind the head of the log it is: head commit position minus
    /// checkpoint commit position. Exact on the SQL and memory stores, whose
    /// positions number events one by one; on KurrentDB commit positions
    /// are log offsets, so there it only says "behind or not" and grows with
    /// the backlog.
    pub lag_events: u64,
    /// How long the oldest event it has not applied has been in the log
    /// (now minus that event's `recorded_at`); 0 when caught up. Measuring
    /// from the oldest *pending* event rather than the last applied one keeps
    /// a projector that was idle for a day from looking a day behind when
    /// one new event arrives.
    pub lag_seconds: f64,
    /// The error of the last failed batch of this runtime's live runner,
    /// cleared by the next batch that commits.
    pub last_error: Option<String>,
}

/// Stops a running [`ProjectorRuntime`]; cheap to clone and hand to a signal
/// handler.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl StopHandle {
    /// Asks every runner to finish its current batch and return. Idempotent.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// Runs projectors against an event store and a read database.
pub struct ProjectorRuntime {
    /// The log.
    store: Arc<dyn EventStore>,
    /// The read database (see [`crate::db::open`]).
    pool: AnyPool,
    /// The projectors run, each with its own checkpoint.
    projectors: Vec<Arc<dyn Projector>>,
    /// Batching and retries.
    config: RuntimeConfig,
    /// Set once to stop [`ProjectorRuntime::run`].
    stop: StopHandle,
    /// Last batch error per projector of the live runner; shared with the
    /// runtime's successors ([`Self::successor`]).
    errors: Arc<Mutex<HashMap<&'static str, String>>>,
}

impl ProjectorRuntime {
    /// A runtime for `projectors` (names must be distinct: they key the
    /// checkpoints) with the default [`RuntimeConfig`].
    pub fn new(
        store: Arc<dyn EventStore>,
        pool: AnyPool,
        projectors: Vec<Arc<dyn Projector>>,
    ) -> Self {
        Self {
            store,
            pool,
            projectors,
            config: RuntimeConfig::default(),
            stop: StopHandle(Arc::new(watch::Sender::new(false))),
            errors: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A runtime of the same projectors and settings on `pool`, with a stop
    /// handle of its own, that reports its batch errors to this one: what
    /// the projector lease runs each time it is held, so the runtime that
    /// `/readyz` reads sees the errors of the one that runs.
    pub fn successor(&self, pool: AnyPool) -> Self {
        Self {
            store: Arc::clone(&self.store),
            pool,
            projectors: self.projectors.clone(),
            config: self.config.clone(),
            stop: StopHandle(Arc::new(watch::Sender::new(false))),
            errors: Arc::clone(&self.errors),
        }
    }

    /// Forgets every reported batch error (a runner that stands by has none).
    pub fn clear_errors(&self) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The same runtime with other batching and retry settings.
    pub fn with_config(mut self, config: RuntimeConfig) -> Self {
        // A batch of zero events would never make progress.
        self.config = RuntimeConfig {
            batch_size: config.batch_size.max(1),
            ..config
        };
        self
    }

    /// The read database.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The projectors, in the order they were given.
    pub fn projectors(&self) -> &[Arc<dyn Projector>] {
        &self.projectors
    }

    /// A handle that stops [`ProjectorRuntime::run`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Asks [`ProjectorRuntime::run`] to finish its current batches and
    /// return. A stopped runtime stays stopped.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Follows the log live with every projector until [`Self::stop`].
    ///
    /// The projectors follow the log together: one subscription from the
    /// lowest of their checkpoints, read in batches of what is ready (at most
    /// `batch_size` events), each batch applied by every projector in one
    /// transaction with their checkpoints (a projector already past some of
    /// a batch's events applies only the rest). A new event appended in this
    /// process is picked up at once (other processes' within the store's
    /// poll interval, 100 ms on SQL stores).
    ///
    /// A projector whose part of a batch fails is taken out of the batch,
    /// which is applied again without it, so the others carry on; the failed
    /// batch is logged and rolled back, and the failed projector follows the
    /// log on its own from its last committed checkpoint after a backoff —
    /// retrying forever, since a projector that stopped for good would serve
    /// ever staler reads; the failure shows in [`Self::status`]
    /// (`last_error`, growing lag).
    pub async fn run(&self) {
        let (split_tx, mut split_rx) = mpsc::unbounded_channel();
        let mut groups = FuturesUnordered::new();
        groups.push(self.run_group(self.projectors.clone(), None, split_tx.clone()));
        loop {
            tokio::select! {
                Some((group, delay)) = split_rx.recv() => {
                    groups.push(self.run_group(group, Some(delay), split_tx.clone()));
                }
                finished = groups.next() => {
                    if finished.is_none() {
                        return;
                    }
                }
            }
        }
    }

    /// Follows the log with `group` (after `delay`, if given) until stopped;
    /// projectors that fail are handed to `splits` to retry on their own.
    async fn run_group(
        &self,
        mut group: Vec<Arc<dyn Projector>>,
        delay: Option<Duration>,
        splits: mpsc::UnboundedSender<(Vec<Arc<dyn Projector>>, Duration)>,
    ) {
        let mut stop = self.stop.0.subscribe();
        let mut retry = self.config.retry_initial;
        if let Some(delay) = delay {
            tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => return,
                () = tokio::time::sleep(delay) => {}
            }
            retry = (delay * 2).min(self.config.retry_max);
        }
        while !*stop.borrow() && !group.is_empty() {
            let mut members = group.iter().map(Member::new).collect();
            let Err(failure) = self.follow(&mut members, &mut stop, &mut retry).await else {
                return;
            };
            for (projector, error) in &failure.failed {
                tracing::warn!(
                    projector = projector.name(),
                    %error,
                    retry_in_ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX),
                    "projector batch failed; retrying from its last checkpoint"
                );
                self.set_error(projector.name(), Some(error.clone()));
            }
            let failed: Vec<Arc<dyn Projector>> =
                failure.failed.into_iter().map(|(p, _)| p).collect();
            if members.is_empty() {
                group = failed;
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(self.config.retry_max);
            } else {
                // The others carry on at once, from where they are.
                group = members.into_iter().map(|m| m.projector).collect();
                if splits.send((failed, retry)).is_err() {
                    return;
                }
            }
        }
    }

    /// Follows the log with `members` from their committed checkpoints until
    /// stopped (`Ok`) or until a batch fails for some of them (`Err`, those
    /// taken out of `members`, their part of the batch rolled back).
    async fn follow(
        &self,
        members: &mut Vec<Member>,
        stop: &mut watch::Receiver<bool>,
        retry: &mut Duration,
    ) -> Result<(), PageFailure> {
        if let Err(e) = self.load_checkpoints(members).await {
            return Err(PageFailure::all(members, e));
        }
        let mut after = lowest(members);
        let mut batches = match self.store.subscribe_all(after).await {
            Ok(s) => s.ready_chunks(self.config.batch_size),
            Err(e) => return Err(PageFailure::all(members, e.into())),
        };
        loop {
            // Stopping is only checked between batches: a batch in progress
            // always gets to commit (or fail) before `run` returns.
            let chunk = tokio::select! {
                biased;
                _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
                chunk = batches.next() => chunk,
            };
            let Some(chunk) = chunk else {
                let ended = StoreError::Unavailable("the log subscription ended".into());
                return Err(PageFailure::all(members, ended.into()));
            };
            let mut page = Vec::with_capacity(chunk.len());
            let mut failure = None;
            for item in chunk {
                match item {
                    Ok(event) => page.push(DecodedEvent::new(event)),
                    Err(e) => {
                        // Apply what came before the error; the rest is read
                        // again after resubscribing.
                        failure = Some(e);
                        break;
                    }
                }
            }
            if let Some(last) = page.last() {
                let last = last.event.position;
                if let Some(failure) = self.apply_page(members, after, &page).await {
                    return Err(failure);
                }
                after = Some(last);
                *retry = self.config.retry_initial;
                for member in members.iter() {
                    self.set_error(member.projector.name(), None);
                }
            }
            if let Some(e) = failure {
                return Err(PageFailure::all(members, e.into()));
            }
        }
    }

    fn set_error(&self, projector: &'static str, error: Option<String>) {
        // A poisoned lock only means a panic elsewhere mid-insert; the map
        // of messages is still usable.
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            Some(e) => errors.insert(projector, e),
            None => errors.remove(projector),
        };
    }

    /// Reads the committed checkpoint of every member.
    async fn load_checkpoints(&self, members: &mut [Member]) -> Result<(), ProjectionError> {
        for member in members {
            member.checkpoint = read_checkpoint(&self.pool, member.projector.name()).await?;
        }
        Ok(())
    }

    /// Applies `page` (read after `after`) to every member that has not
    /// applied all of it. A member whose part fails is taken out and the
    /// page applied again to the others, until it commits for all that are
    /// left; what failed is returned.
    async fn apply_page(
        &self,
        members: &mut Vec<Member>,
        after: Option<Position>,
        page: &[DecodedEvent],
    ) -> Option<PageFailure> {
        if let Err(e) = check_order(after, page) {
            return Some(PageFailure::all(members, e));
        }
        let mut failure: Option<PageFailure> = None;
        while !members.is_empty() {
            let (failed, error) = match self.try_page(members, page).await {
                Ok(()) => break,
                Err(TryError::Member(i, e)) => (vec![members.remove(i)], e),
                Err(TryError::All(e)) => (std::mem::take(members), e),
            };
            let message = error.to_string();
            let failed = failed.into_iter().map(|m| (m.projector, message.clone()));
            match &mut failure {
                Some(f) => f.failed.extend(failed),
                None => {
                    failure = Some(PageFailure {
                        failed: failed.collect(),
                        first: error,
                    })
                }
            }
        }
        failure
    }

    /// Applies each member's part of `page` (the events after its
    /// checkpoint) and moves its checkpoint, all in one transaction.
    async fn try_page(
        &self,
        members: &mut [Member],
        page: &[DecodedEvent],
    ) -> Result<(), TryError> {
        let Some(last) = page.last().map(|e| &e.event) else {
            return Ok(());
        };
        let mut parts = Vec::with_capacity(members.len());
        for (i, member) in members.iter().enumerate() {
            let start = member.checkpoint.as_ref().map_or(0, |c| {
                page.partition_point(|e| e.event.position <= c.position)
            });
            if start < page.len() {
                let next = Checkpoint {
                    name: member.projector.name().to_owned(),
                    position: last.position,
                    events_applied: member.checkpoint.as_ref().map_or(0, |c| c.events_applied)
                        + (page.len() - start) as u64,
                    last_recorded_at: last.metadata.recorded_at,
                };
                parts.push((i, start, next));
            }
        }
        if parts.is_empty() {
            return Ok(());
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| TryError::All(e.into()))?;
        let begin = Backend::of(&conn).begin_statement();
        let mut tx = conn
            .begin_with(begin)
            .await
            .map_err(|e| TryError::All(e.into()))?;
        let applied = async {
            for (i, start, _) in &parts {
                members[*i]
                    .projector
                    .apply_batch(&mut tx, &page[*start..])
                    .await
                    .map_err(|e| TryError::Member(*i, e))?;
            }
            for (i, _, next) in &parts {
                let from = members[*i].checkpoint.as_ref().map(|c| c.position);
                write_checkpoint(&mut tx, from, next)
                    .await
                    .map_err(|e| TryError::Member(*i, e))?;
            }
            Ok(())
        }
        .await;
        match applied {
            Ok(()) => {
                tx.commit().await.map_err(|e| TryError::All(e.into()))?;
                for (i, _, next) in parts {
                    members[i].checkpoint = Some(next);
                }
                Ok(())
            }
            Err(e) => {
                // Dropping the transaction would roll back too; doing it here
                // returns the connection clean and surfaces nothing new (the
                // batch's own error is the one worth reporting).
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Reads the log once for all of `projectors` — from the lowest of their
    /// checkpoints up to `target` (or the end of the log when `None`, or when
    /// the log ends before it) — applying each page to every projector not
    /// past it, and calling `on_batch` with the members' checkpoints after
    /// each page. The next page is read and decoded while one is applied.
    /// A projector that fails drops out; the others go on, and the first
    /// error is returned at the end.
    async fn catch_up_group(
        &self,
        projectors: &[Arc<dyn Projector>],
        target: Option<Position>,
        mut on_batch: impl FnMut(&[Member]),
    ) -> Result<(), ProjectionError> {
        let mut members: Vec<Member> = projectors.iter().map(Member::new).collect();
        self.load_checkpoints(&mut members).await?;
        let reached = |m: &Member| match (target, &m.checkpoint) {
            (Some(target), Some(c)) => c.position >= target,
            _ => false,
        };
        members.retain(|m| !reached(m));
        if members.is_empty() {
            return Ok(());
        }
        let mut pages = Pages::read(
            Arc::clone(&self.store),
            lowest(&members),
            target,
            self.config.batch_size,
        );
        let mut first_error = None;
        while let Some(page) = pages.rx.recv().await {
            let (after, page) = match page {
                Ok(page) => page,
                Err(e) => {
                    first_error.get_or_insert(e.into());
                    break;
                }
            };
            if let Some(failure) = self.apply_page(&mut members, after, &page).await {
                first_error.get_or_insert(failure.first);
            }
            on_batch(&members);
            if members.iter().all(reached) {
                break;
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Brings every projector up to the current head of the log and returns.
    /// Unlike [`Self::run`] it does not retry: the first failed batch is
    /// returned (after the other projectors finished), with its rows and
    /// checkpoint rolled back.
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        match self.store.head().await? {
            Some(head) => self.run_until(head).await,
            None => Ok(()),
        }
    }

    /// Brings every projector to `position` — applying every event up to it
    /// and none after it — or to the end of the log if that comes first (it
    /// does not wait for future events). A projector already past
    /// `position` is left where it is. The log is read once for all of
    /// them.
    pub async fn run_until(&self, position: Position) -> Result<(), ProjectionError> {
        self.catch_up_group(&self.projectors, Some(position), |_| {})
            .await
    }

    /// Rebuilds one projector (`Some(name)`) or all of them from position
    /// zero: one transaction deletes every row of their tables and their
    /// checkpoints, then they catch up together, reading the log once, to
    /// the head of the log as it was when the rebuild started.
    ///
    /// `progress(done, total)` is called at the start and after each batch,
    /// in commit-position units summed over the projectors rebuilt: on the
    /// SQL and memory stores that is events; on KurrentDB, log offsets (the
    /// ratio still reads as a percentage).
    ///
    /// Readers see the tables empty and then filling during a rebuild. It is
    /// safe beside a live [`Self::run`] of the same projectors (the
    /// checkpoint compare-and-set keeps the two from applying an event
    /// twice), but meant to run with the live runner stopped.
    pub async fn rebuild(
        &self,
        projector_name: Option<&str>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), ProjectionError> {
        let selected: Vec<Arc<dyn Projector>> = match projector_name {
            Some(name) => vec![Arc::clone(
                self.projectors
                    .iter()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| ProjectionError::UnknownProjector(name.to_owned()))?,
            )],
            None => self.projectors.clone(),
        };
        let head = self.store.head().await?;
        let per_projector = head.map_or(0, |h| h.commit);
        let total = per_projector * selected.len() as u64;
        progress(0, total);
        self.reset(&selected).await?;
        if let Some(head) = head {
            let mut done: HashMap<&'static str, u64> = HashMap::new();
            self.catch_up_group(&selected, Some(head), |members| {
                for m in members {
                    let at = m.checkpoint.as_ref().map_or(0, |c| c.position.commit);
                    done.insert(m.projector.name(), at.min(per_projector));
                }
                progress(done.values().sum(), total);
            })
            .await?;
        }
        progress(total, total);
        Ok(())
    }

    /// Deletes the projectors' rows and checkpoints in one transaction.
    async fn reset(&self, projectors: &[Arc<dyn Projector>]) -> Result<(), ProjectionError> {
        let mut conn = self.pool.acquire().await?;
        let begin = Backend::of(&conn).begin_statement();
        let mut tx = conn.begin_with(begin).await?;
        for projector in projectors {
            for table in projector.tables() {
                // Table names come from the projector's static list, never
                // from input, so formatting them into the statement is safe.
                sqlx::query(&format!("DELETE FROM {table}"))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM projector_checkpoints WHERE name = $1")
                .bind(projector.name())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Each projector's position and lag behind the head of the log.
    pub async fn status(&self) -> Result<Vec<ProjectorStatus>, ProjectionError> {
        let head = self.store.head().await?;
        let now = Utc::now();
        let mut statuses = Vec::with_capacity(self.projectors.len());
        for projector in &self.projectors {
            let checkpoint = read_checkpoint(&self.pool, projector.name()).await?;
            let position = checkpoint.as_ref().map(|c| c.position);
            let behind = match (head, position) {
                (Some(head), Some(at)) => at < head,
                (Some(_), None) => true,
                (None, _) => false,
            };
            let lag_seconds = if behind {
                match self.store.read_all(position, 1).await?.first() {
                    Some(oldest) => {
                        (now - oldest.metadata.recorded_at)
                            .num_microseconds()
                            .unwrap_or(0) as f64
                            / 1e6
                    }
                    None => 0.0,
                }
                .max(0.0)
            } else {
                0.0
            };
            statuses.push(ProjectorStatus {
                name: projector.name().to_owned(),
                position,
                events_applied: checkpoint.as_ref().map_or(0, |c| c.events_applied),
                lag_events: head
                    .map_or(0, |h| h.commit)
                    .saturating_sub(position.map_or(0, |p| p.commit)),
                lag_seconds,
                last_error: self
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(projector.name())
                    .cloned(),
            });
        }
        Ok(statuses)
    }
}

/// A projector following the log with others, and its committed checkpoint.
struct Member {
    projector: Arc<dyn Projector>,
    checkpoint: Option<Checkpoint>,
}

impl Member {
    fn new(projector: &Arc<dyn Projector>) -> Self {
        Self {
            projector: Arc::clone(projector),
            checkpoint: None,
        }
    }
}

/// The lowest checkpoint of `members`: where one reader for all starts.
fn lowest(members: &[Member]) -> Option<Position> {
    members
        .iter()
        .map(|m| m.checkpoint.as_ref().map(|c| c.position))
        .min()
        .flatten()
}

/// The projectors a batch failed for (with each one's error) and the first
/// error.
struct PageFailure {
    failed: Vec<(Arc<dyn Projector>, String)>,
    first: ProjectionError,
}

impl PageFailure {
    /// Every member failed with `error` (and is taken out).
    fn all(members: &mut Vec<Member>, error: ProjectionError) -> Self {
        let message = error.to_string();
        Self {
            failed: members
                .drain(..)
                .map(|m| (m.projector, message.clone()))
                .collect(),
            first: error,
        }
    }
}

/// Why a batch transaction was rolled back.
enum TryError {
    /// The member at this index failed (its rows or its checkpoint).
    Member(usize, ProjectionError),
    /// The transaction itself failed.
    All(ProjectionError),
}

/// The store promises events strictly after the position read from, in
/// order. Should a backend ever break that (a redelivery after a
/// resubscribe), applying would count or charge twice: refuse loudly.
fn check_order(after: Option<Position>, page: &[DecodedEvent]) -> Result<(), ProjectionError> {
    let mut previous = after;
    for e in page {
        let position = e.event.position;
        if previous.is_some_and(|p| position <= p) {
            return Err(ProjectionError::Store(StoreError::Corrupt(format!(
                "the log delivered position {} after {}",
                position,
                previous.map_or_else(String::new, |p| p.to_string())
            ))));
        }
        previous = Some(position);
    }
    Ok(())
}

/// A page of the log and the position it was read after.
type Page = (Option<Position>, Vec<DecodedEvent>);

/// Pages of the log read and decoded ahead by a task of their own, each
/// with the position it was read after; at most one page waits while
/// another is applied, so memory stays bounded by the batch size.
struct Pages {
    rx: mpsc::Receiver<Result<Page, StoreError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Pages {
    /// Reads the log after `from`, `size` events a page, up to `target`.
    fn read(
        store: Arc<dyn EventStore>,
        from: Option<Position>,
        target: Option<Position>,
        size: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let mut after = from;
            loop {
                let mut events = match store.read_all(after, size).await {
                    Ok(events) => events,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let read = events.len();
                // Never past the target: a replay "as of" a position applies
                // exactly the events up to it.
                if let Some(target) = target {
                    events.retain(|e| e.position <= target);
                }
                let Some(last) = events.last().map(|e| e.position) else {
                    return;
                };
                let past_target = events.len() < read;
                let page = events.into_iter().map(DecodedEvent::new).collect();
                if tx.send(Ok((after, page))).await.is_err() || past_target {
                    return;
                }
                after = Some(last);
            }
        });
        Self { rx, task }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const SELECT_CHECKPOINT: &str = "SELECT name, commit_position, prepare_position, \
     events_applied, last_recorded_at FROM projector_checkpoints";

/// The committed checkpoint of projector `name`, if it has one.
pub async fn read_checkpoint<'e, E>(
    executor: E,
    name: &str,
) -> Result<Option<Checkpoint>, ProjectionError>
where
    E: Executor<'e, Database = Any>,
{
    let row = sqlx::query(&format!("{SELECT_CHECKPOINT} WHERE name = $1"))
        .bind(name)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(checkpoint_of).transpose()
}

/// Every committed checkpoint, by name: what a process that does not run the
/// projectors (the query API) needs to wait for a consistency token.
pub async fn checkpoints(pool: &AnyPool) -> Result<Vec<Checkpoint>, ProjectionError> {
    let rows = sqlx::query(&format!("{SELECT_CHECKPOINT} ORDER BY name"))
        .fetch_all(pool)
        .await?;
    rows.iter().map(checkpoint_of).collect()
}

fn checkpoint_of(row: &AnyRow) -> Result<Checkpoint, ProjectionError> {
    let unsigned = |col: &str| -> Result<u64, ProjectionError> {
        let v: i64 = row.try_get(col)?;
        u64::try_from(v).map_err(|e| column_error(col, e))
    };
    let recorded: String = row.try_get("last_recorded_at")?;
    Ok(Checkpoint {
        name: row.try_get("name")?,
        position: Position {
            commit: unsigned("commit_position")?,
            prepare: unsigned("prepare_position")?,
        },
        events_applied: unsigned("events_applied")?,
        last_recorded_at: DateTime::parse_from_rfc3339(&recorded)
            .map_err(|e| column_error("last_recorded_at", e))?
            .with_timezone(&Utc),
    })
}

fn column_error(
    column: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> ProjectionError {
    ProjectionError::Database(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(source),
    })
}

/// A log position or count as the read database stores it (`BIGINT`).
pub(crate) fn db_int(value: u64) -> Result<i64, ProjectionError> {
    i64::try_from(value).map_err(|e| ProjectionError::Database(sqlx::Error::Encode(Box::new(e))))
}

/// Moves the checkpoint from `expected` to `next`, or fails with
/// [`ProjectionError::CheckpointMoved`] if it is not at `expected` any more.
async fn write_checkpoint(
    conn: &mut AnyConnection,
    expected: Option<Position>,
    next: &Checkpoint,
) -> Result<(), ProjectionError> {
    let values = (
        db_int(next.position.commit)?,
        db_int(next.position.prepare)?,
        db_int(next.events_applied)?,
        format_timestamp(&next.last_recorded_at),
    );
    let written =
        match expected {
            None => {
                sqlx::query(
                    "INSERT INTO projector_checkpoints \
                 (name, commit_position, prepare_position, events_applied, last_recorded_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&next.name)
                .bind(values.0)
                .bind(values.1)
                .bind(values.2)
                .bind(values.3)
                .execute(&mut *conn)
                .await?
            }
            Some(at) => sqlx::query(
                "UPDATE projector_checkpoints SET commit_position = $2, prepare_position = $3, \
                 events_applied = $4, last_recorded_at = $5 \
                 WHERE name = $1 AND commit_position = $6 AND prepare_position = $7",
            )
            .bind(&next.name)
            .bind(values.0)
            .bind(values.1)
            .bind(values.2)
            .bind(values.3)
            .bind(db_int(at.commit)?)
            .bind(db_int(at.prepare)?)
            .execute(&mut *conn)
            .await?,
        };
    if written.rows_affected() == 1 {
        Ok(())
    } else {
        Err(ProjectionError::CheckpointMoved {
            projector: next.name.clone(),
        })
    }
}

/// A projector that fails on purpose, to show that a crash mid-batch loses
/// and duplicates nothing.
///
/// It delegates to `inner` (same name, same tables, so it shares the inner
/// projector's checkpoint) but fails at its `fail_at`-th event, counted over
/// the batches given to it since its creation or its previous injected
/// failure, `failures` times. The failing batch is rolled back and the count
/// restarts, so with a fixed batch size, `fail_at = k × batch_size + n`
/// (n ≤ batch size) kills the `n`-th event of the `(k + 1)`-th batch after
/// each (re)start, until the failures are used up.
pub struct FailingProjector {
    /// The projector that does the work.
    inner: Arc<dyn Projector>,
    /// Which event fails (1-based).
    fail_at: u64,
    /// Injected failures still to come.
    failures_left: AtomicU64,
    /// Events given to it since creation or the last injected failure.
    calls: AtomicU64,
}

impl FailingProjector {
    /// Wraps `inner` to fail at its `fail_at`-th event (1-based), `failures`
    /// times over.
    pub fn new(inner: Arc<dyn Projector>, fail_at: u64, failures: u64) -> Self {
        Self {
            inner,
            fail_at: fail_at.max(1),
            failures_left: AtomicU64::new(failures),
            calls: AtomicU64::new(0),
        }
    }

    /// Injected failures still to come.
    pub fn failures_left(&self) -> u64 {
        self.failures_left.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Projector for FailingProjector {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }

    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        if self.failures_left.load(Ordering::SeqCst) > 0 {
            let len = events.len() as u64;
            let before = self.calls.fetch_add(len, Ordering::SeqCst);
            if before + len >= self.fail_at {
                self.calls.store(0, Ordering::SeqCst);
                self.failures_left.fetch_sub(1, Ordering::SeqCst);
                let at = usize::try_from(self.fail_at.saturating_sub(before + 1))
                    .unwrap_or(usize::MAX)
                    .min(events.len().saturating_sub(1));
                let (position, event_type) = events
                    .get(at)
                    .map(|e| (e.event.position.to_string(), e.event.event_type.as_str()))
                    .unwrap_or_default();
                return Err(ProjectionError::Injected(format!(
                    "{} failed on purpose at event {position} ({event_type})",
                    self.inner.name(),
                )));
            }
        }
        self.inner.apply_batch(conn, events).await
    }
}
