//! The one clock of both APIs: commands are decided, credentials expire
//! and rate-limit buckets refill on the same time line.
//!
//! The application registers its [`Clock`] as `web::Data<Clock>`; the
//! [`crate::auth::Principal`] extractor reads it there, and the command and
//! query states hold clones of it for the rate limiter.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

/// System time plus an offset that is zero in production. Tests move it
/// forward to reach later billing periods, or freeze it to make rate-limit
/// refills deterministic, through the real HTTP path. Clones share one
/// time line.
#[derive(Debug, Clone)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
    /// Milliseconds since the epoch the clock stands still at, or
    /// [`i64::MIN`] while it runs.
    frozen_at_ms: Arc<AtomicI64>,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            offset_ms: Arc::new(AtomicI64::new(0)),
            frozen_at_ms: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }
}

impl Clock {
    /// System time.
    pub fn system() -> Self {
        Self::default()
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        let frozen = self.frozen_at_ms.load(Ordering::Relaxed);
        if frozen != i64::MIN {
            return DateTime::from_timestamp_millis(frozen).unwrap_or_else(Utc::now);
        }
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
        let frozen = self.frozen_at_ms.load(Ordering::Relaxed);
        if frozen != i64::MIN {
            self.frozen_at_ms
                .store(frozen + by.num_milliseconds(), Ordering::Relaxed);
        }
    }

    /// Stops the clock at its current instant.
    pub fn freeze(&self) {
        self.frozen_at_ms
            .store(self.now().timestamp_millis(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_time_line_and_a_frozen_clock_still_advances() {
        let clock = Clock::system();
        let clone = clock.clone();
        clock.freeze();
        let at = clone.now();
        clone.advance(TimeDelta::seconds(61));
        assert_eq!(clock.now(), at + TimeDelta::seconds(61));
    }
}
