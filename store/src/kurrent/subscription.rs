//! `subscribe_all`: the client's `$all` subscription under a watchdog that
//! resubscribes from the last delivered position when it goes silent, ends
//! or fails, and never delivers an event twice or out of order (see the
//! module documentation of [`super`]).

use std::sync::Arc;
use std::time::Duration;

use kurrentdb as kdb;

use super::codec::{decode, from_kdb, is_system, original, raw, system_filter, to_kdb};
use super::connection::Conn;
use super::errors::store_error;
use super::spin;
use crate::{EventStream, Position, RecordedEvent, StoreError};
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
pub(super) const RESUBSCRIBE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Consecutive subscription failures before they are reported to the
/// consumer as `Err` items.
const REPORT_FAILURES_AFTER: u32 = 3;

/// A live feed of `$all` strictly after `after`, for as long as it is
/// polled.
pub(super) fn subscribe(conn: Arc<Conn>, after: Option<Position>) -> EventStream {
    let tail = Tail::new(conn, after);
    Box::pin(futures::stream::unfold(tail, |mut tail| async move {
        let item = tail.next().await?;
        Some((item, tail))
    }))
}

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
pub(super) fn is_after(last: Option<Position>, position: Position) -> bool {
    last.is_none_or(|last| position > last)
}

/// Pause before a resubscription, after `quiet_restarts` restarts without
/// an event or checkpoint: none after a subscription that made progress,
/// then 200 ms doubling up to 5 s.
pub(super) fn backoff(quiet_restarts: u32) -> Duration {
    if quiet_restarts <= 1 {
        return Duration::ZERO;
    }
    let doublings = (quiet_restarts - 2).min(16);
    RESUBSCRIBE_BACKOFF_START
        .saturating_mul(1 << doublings)
        .min(RESUBSCRIBE_BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kurrent::append::jitter;

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
}
