//! Subscriptions built on paged reads, for the backends that number their
//! log with one sequence (memory, SQLite, PostgreSQL).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::{EventStream, Position, RecordedEvent, StoreError};

/// How long a subscription waits for an in-process wake-up before polling the
/// database again (another process may have appended).
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Page size of subscriptions catching up.
const SUBSCRIPTION_PAGE: usize = 512;

/// A subscription built on paged reads: catch up from `after`, then wait for
/// a wake-up from `appended` (or [`POLL_INTERVAL`], for writers in other
/// processes) and read again. Positions only grow and become visible in
/// order, so paging strictly after the last delivered position neither skips
/// nor repeats an event. A failed read is delivered as an error item and
/// retried after the poll interval.
pub(crate) fn poll_subscription<F, Fut>(
    after: Option<Position>,
    appended: Arc<Notify>,
    fetch: F,
) -> EventStream
where
    F: Fn(Option<Position>, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send + 'static,
{
    struct State<F> {
        after: Option<Position>,
        buffer: VecDeque<RecordedEvent>,
        appended: Arc<Notify>,
        fetch: F,
        failed: bool,
    }
    let state = State {
        after,
        buffer: VecDeque::new(),
        appended,
        fetch,
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.buffer.pop_front() {
                st.after = Some(event.position);
                return Some((Ok(event), st));
            }
            if st.failed {
                tokio::time::sleep(POLL_INTERVAL).await;
                st.failed = false;
            }
            let appended = Arc::clone(&st.appended);
            let notified = appended.notified();
            tokio::pin!(notified);
            // Register for the wake-up before reading, so an append that
            // lands between the read and the wait is not missed.
            notified.as_mut().enable();
            match (st.fetch)(st.after, SUBSCRIPTION_PAGE).await {
                Ok(page) if !page.is_empty() => st.buffer.extend(page),
                Ok(_) => {
                    let _ = tokio::time::timeout(POLL_INTERVAL, notified).await;
                }
                Err(e) => {
                    st.failed = true;
                    return Some((Err(e), st));
                }
            }
        }
    }))
}
