//! Breaks client 1.2's endless loop over a subscription stream the server
//! has ended (see the module documentation of [`super`]).

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
        let guarded = AssertUnwindSafe(fut.with_subscriber(self.dispatch.clone())).catch_unwind();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kurrent::spin;
    use std::sync::atomic::AtomicUsize;

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
