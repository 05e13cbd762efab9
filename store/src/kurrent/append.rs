//! Appends: read the stream's tip, seal the batch onto its hash, write it
//! expecting exactly that tip, and find the position of what was written
//! (see the module documentation of [`super`]).

use std::time::Duration;

use kurrentdb as kdb;

use super::codec::{decode, event_data, from_kdb, original, raw};
use super::connection::Current;
use super::errors::{current_revision, store_error, unsent, Fail};
use super::{KurrentStore, SMALL_READ_DEADLINE};
use crate::chain::{self, GENESIS_HASH};
use crate::{
    check_append, now_micros, AppendError, AppendOutcome, ExpectedRevision, NewEvent, Position,
    RecordedEvent, Revision, StoreError, StreamId,
};

/// Rounds an `Any` append may lose to racing writers before it reports a
/// conflict.
const ANY_APPEND_ATTEMPTS: u32 = 64;

impl KurrentStore {
    /// [`crate::EventStore::append`] on KurrentDB.
    pub(super) async fn append_events(
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

/// A short random pause before an `Any` append tries again, so that racing
/// writers do not keep colliding in lockstep.
pub(super) fn jitter(round: u32) -> Duration {
    let spread_us = 1_000 * u64::from(round.min(10));
    let random = (uuid::Uuid::new_v4().as_u128() & u128::from(u64::MAX)) as u64;
    Duration::from_micros(random % spread_us.max(1))
}

/// The revision and hash an append links to.
pub(super) struct Tip {
    pub(super) revision: Revision,
    pub(super) hash: String,
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
pub(super) fn seal_batch(
    stream: &StreamId,
    tip: Option<&Tip>,
    events: Vec<NewEvent>,
) -> Vec<RecordedEvent> {
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
