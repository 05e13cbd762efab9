//! Basketry events as KurrentDB stores them, and back: the JSON body, the
//! custom metadata ([`KurrentMetadata`]), positions, and the filter that
//! keeps system events out of sight.

use kurrentdb as kdb;
use serde::{Deserialize, Serialize};

use crate::chain::StoredMetadata;
use crate::{Position, RecordedEvent, Revision, StoreError, StreamId};

/// The custom metadata stored with every event.
#[derive(Serialize, Deserialize)]
pub(super) struct KurrentMetadata {
    schema_version: u32,
    prev_hash: String,
    hash: String,
    #[serde(flatten)]
    stored: StoredMetadata,
}

impl KurrentMetadata {
    pub(super) fn of(e: &RecordedEvent) -> Self {
        Self {
            schema_version: e.schema_version,
            prev_hash: e.metadata.prev_hash.clone(),
            hash: e.metadata.hash.clone(),
            stored: StoredMetadata::of(&e.metadata),
        }
    }
}

pub(super) fn event_data(e: &RecordedEvent) -> Result<kdb::EventData, StoreError> {
    kdb::EventData::json(&e.event_type, &e.data)
        .and_then(|d| d.id(e.event_id).metadata_as_json(&KurrentMetadata::of(e)))
        .map_err(|err| {
            StoreError::Invalid(format!("event {} cannot be encoded: {err}", e.event_id))
        })
}

/// The parts of a stored event that decoding needs (the client's
/// `RecordedEvent` cannot be built outside the client, so tests use this).
pub(super) struct RawEvent<'a> {
    stream: &'a str,
    id: uuid::Uuid,
    revision: u64,
    position: Position,
    event_type: &'a str,
    data: &'a [u8],
    custom_metadata: &'a [u8],
}

pub(super) fn raw(ev: &kdb::RecordedEvent) -> RawEvent<'_> {
    RawEvent {
        stream: ev.stream_id(),
        id: ev.id,
        revision: ev.revision,
        position: from_kdb(ev.position),
        event_type: &ev.event_type,
        data: &ev.data,
        custom_metadata: &ev.custom_metadata,
    }
}

pub(super) fn decode(ev: &RawEvent<'_>) -> Result<RecordedEvent, StoreError> {
    let at = || format!("{} rev {}", ev.stream, ev.revision);
    let stream_id = StreamId::parse(ev.stream)
        .map_err(|_| StoreError::Corrupt(format!("{}: not a Basketry stream name", at())))?;
    let meta: KurrentMetadata = serde_json::from_slice(ev.custom_metadata)
        .map_err(|e| StoreError::Corrupt(format!("{}: metadata: {e}", at())))?;
    let data: serde_json::Value = serde_json::from_slice(ev.data)
        .map_err(|e| StoreError::Corrupt(format!("{}: data: {e}", at())))?;
    let metadata = meta
        .stored
        .into_metadata(meta.prev_hash, meta.hash)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", at())))?;
    Ok(RecordedEvent {
        event_id: ev.id,
        stream_id,
        revision: Revision(ev.revision),
        position: ev.position,
        event_type: ev.event_type.to_string(),
        schema_version: meta.schema_version,
        data,
        metadata,
    })
}

/// The event a read returned (the link itself, should one show up).
pub(super) fn original(resolved: &kdb::ResolvedEvent) -> Option<&kdb::RecordedEvent> {
    resolved.link.as_ref().or(resolved.event.as_ref())
}

pub(super) fn is_system(ev: &kdb::RecordedEvent) -> bool {
    ev.stream_id().starts_with('$') || ev.event_type.starts_with('$')
}

/// Drops every event of a `$` stream on the server.
pub(super) fn system_filter() -> kdb::SubscriptionFilter {
    kdb::SubscriptionFilter::on_stream_name().exclude_system_events()
}

pub(super) fn to_kdb(p: Position) -> kdb::Position {
    kdb::Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

pub(super) fn from_kdb(p: kdb::Position) -> Position {
    Position {
        commit: p.commit,
        prepare: p.prepare,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{self, GENESIS_HASH};
    use crate::kurrent::append::{seal_batch, Tip};
    use crate::{Actor, NewEvent, NewMetadata};

    fn new_event(n: u64) -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "ItemAdded".into(),
            schema_version: 2,
            data: serde_json::json!({"n": n, "name": "Δ ✓", "big": 9_007_199_254_740_993u64}),
            metadata: NewMetadata {
                actor: Actor {
                    kind: "user".into(),
                    id: "u-1".into(),
                },
                correlation_id: uuid::Uuid::new_v4(),
                causation_id: Some(uuid::Uuid::new_v4()),
                idempotency_key: Some("idem-1".into()),
            },
        }
    }

    /// Encodes `e` the way `append` does and decodes it the way reads do.
    fn round_trip(e: &RecordedEvent, position: Position) -> Result<RecordedEvent, StoreError> {
        let data = serde_json::to_vec(&e.data).expect("JSON values serialize");
        let meta = serde_json::to_vec(&KurrentMetadata::of(e)).expect("metadata serializes");
        decode(&RawEvent {
            stream: e.stream_id.as_str(),
            id: e.event_id,
            revision: e.revision.0,
            position,
            event_type: &e.event_type,
            data: &data,
            custom_metadata: &meta,
        })
    }

    #[test]
    fn sealed_events_survive_the_metadata_encoding_and_keep_their_chain() {
        let s = StreamId::parse("basket-1").expect("valid");
        let first = seal_batch(&s, None, vec![new_event(0), new_event(1)]);
        assert_eq!(first[0].revision, Revision(0));
        assert_eq!(first[0].metadata.prev_hash, GENESIS_HASH);
        assert_eq!(first[1].metadata.prev_hash, first[0].metadata.hash);
        let tip = Tip {
            revision: first[1].revision,
            hash: first[1].metadata.hash.clone(),
        };
        let second = seal_batch(&s, Some(&tip), vec![new_event(2)]);
        assert_eq!(second[0].revision, Revision(2));
        assert_eq!(second[0].metadata.prev_hash, first[1].metadata.hash);

        let mut read = Vec::new();
        for (i, e) in first.iter().chain(&second).enumerate() {
            let position = Position::sequence(100 + i as u64);
            let back = round_trip(e, position).expect("decodes");
            let mut want = e.clone();
            want.position = position;
            assert_eq!(back, want);
            read.push(back);
        }
        assert_eq!(chain::verify_stream(&read), Ok(()));
    }

    #[test]
    fn the_custom_metadata_holds_the_documented_fields() {
        let s = StreamId::parse("basket-1").expect("valid");
        let e = &seal_batch(&s, None, vec![new_event(0)])[0];
        let value = serde_json::to_value(KurrentMetadata::of(e)).expect("serializes");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "actor",
                "causation_id",
                "correlation_id",
                "hash",
                "idempotency_key",
                "prev_hash",
                "recorded_at",
                "schema_version"
            ]
        );
        assert_eq!(value["schema_version"], 2);
    }

    #[test]
    fn undecodable_events_are_corrupt() {
        let s = StreamId::parse("basket-1").expect("valid");
        let e = &seal_batch(&s, None, vec![new_event(0)])[0];
        let data = serde_json::to_vec(&e.data).expect("serializes");
        let meta = serde_json::to_vec(&KurrentMetadata::of(e)).expect("serializes");
        let good = RawEvent {
            stream: "basket-1",
            id: e.event_id,
            revision: 0,
            position: Position::default(),
            event_type: &e.event_type,
            data: &data,
            custom_metadata: &meta,
        };
        assert!(decode(&good).is_ok());
        let cases = [
            RawEvent {
                custom_metadata: b"",
                ..good
            },
            RawEvent {
                custom_metadata: br#"{"schema_version":1}"#,
                ..good
            },
            RawEvent {
                data: b"not json",
                ..good
            },
            RawEvent {
                stream: "no spaces allowed",
                ..good
            },
        ];
        for bad in &cases {
            assert!(
                matches!(decode(bad), Err(StoreError::Corrupt(_))),
                "{} / {:?} decoded",
                bad.stream,
                String::from_utf8_lossy(bad.custom_metadata)
            );
        }
        let mut broken_time = serde_json::to_value(KurrentMetadata::of(e)).expect("serializes");
        broken_time["recorded_at"] = "yesterday".into();
        let broken_time = serde_json::to_vec(&broken_time).expect("serializes");
        assert!(matches!(
            decode(&RawEvent {
                custom_metadata: &broken_time,
                ..good
            }),
            Err(StoreError::Corrupt(_))
        ));
    }
}
