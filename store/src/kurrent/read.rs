//! Reads: one stream forwards, `$all` forwards in pages, and the head of
//! `$all`. Each runs through [`KurrentStore::run`], which replaces a dead
//! client and retries a request that was never sent.

use kurrentdb as kdb;

use super::codec::{decode, from_kdb, is_system, original, raw, system_filter, to_kdb};
use super::{KurrentStore, SMALL_READ_DEADLINE};
use crate::{Position, RecordedEvent, Revision, StoreError, StreamId};

/// Largest page `read_all` asks the server for.
const READ_ALL_PAGE: usize = 1000;

/// Page size of `head`'s backwards scan.
const HEAD_PAGE: usize = 32;

impl KurrentStore {
    /// [`crate::EventStore::read_stream`] on KurrentDB.
    pub(super) async fn read_stream_events(
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

    /// [`crate::EventStore::read_all`] on KurrentDB.
    pub(super) async fn read_all_events(
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

    /// [`crate::EventStore::head`] on KurrentDB.
    pub(super) async fn head_position(&self) -> Result<Option<Position>, StoreError> {
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
