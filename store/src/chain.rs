//! The per-stream hash chain that lets an auditor prove history was not
//! rewritten (docs/reference/events.md#hash-chain).
//!
//! `hash = hex(SHA-256(prev_hash ‖ "\n" ‖ canonical))`, where `prev_hash` is
//! the previous event's hash of the same stream (64 zeros for revision 0) and
//! `canonical` is the compact JSON of
//!
//! ```json
//! {"data":…,"event_id":"…","event_type":"…","metadata":{"actor":{"id":"…","kind":"…"},
//!  "causation_id":…,"correlation_id":"…","idempotency_key":…,"recorded_at":"…"},
//!  "revision":N,"schema_version":N,"stream_id":"…"}
//! ```
//!
//! with object keys sorted by their UTF-8 bytes at every depth, no
//! whitespace, and `recorded_at` written as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
//! The global position is deliberately left out: it is assigned by the
//! backend (KurrentDB only knows it after the write) and the chain is per
//! stream.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{EventMetadata, NewEvent, Position, RecordedEvent, Revision, StoreError, StreamId};

/// `prev_hash` of every stream's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The first link of the chain that fails to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash chain of stream {stream_id} breaks at revision {revision}: {reason}")]
pub struct ChainBreak {
    pub stream_id: String,
    pub revision: u64,
    pub reason: String,
}

/// Formats a timestamp the way the canonical form and every backend store it.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Writes `v` compactly with keys in sorted order, independent of whether
/// serde_json preserves insertion order in this build.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The canonical bytes of an event, as hashed.
pub fn canonical_form(
    stream_id: &StreamId,
    revision: Revision,
    event_id: &uuid::Uuid,
    event_type: &str,
    schema_version: u32,
    data: &Value,
    metadata: &EventMetadata,
) -> String {
    let doc = serde_json::json!({
        "data": data,
        "event_id": event_id.to_string(),
        "event_type": event_type,
        "metadata": {
            "actor": {"id": metadata.actor.id, "kind": metadata.actor.kind},
            "causation_id": metadata.causation_id.map(|c| c.to_string()),
            "correlation_id": metadata.correlation_id.to_string(),
            "idempotency_key": metadata.idempotency_key,
            "recorded_at": format_timestamp(&metadata.recorded_at),
        },
        "revision": revision.0,
        "schema_version": schema_version,
        "stream_id": stream_id.as_str(),
    });
    let mut out = String::with_capacity(256);
    write_canonical(&doc, &mut out);
    out
}

/// `hex(SHA-256(prev_hash ‖ "\n" ‖ canonical))`.
pub fn link_hash(prev_hash: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// An event's canonical form with the two fields the writer assigns left
/// out: `recorded_at` (the batch's commit time) and `revision` (known only
/// once the stream's head is read). The canonical form is
/// `head ‖ "recorded_at" ‖ "},\"revision\":" ‖ revision ‖ tail`, byte for byte
/// what [`canonical_form`] writes (keys in sorted order put `recorded_at`
/// last in `metadata` and `revision` right after it). Built by the appending
/// task before it queues, so that the writer, holding the write lock, only
/// hashes `prev_hash ‖ "\n" ‖` these bytes.
#[derive(Debug, Clone)]
pub struct CanonicalParts {
    /// From `{"data":` up to and including `"recorded_at":`.
    head: String,
    /// From `,"schema_version":` to the closing brace.
    tail: String,
}

/// Appends `s` as a JSON string, escaped as the canonical form writes it.
fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&Value::String(s.to_string()).to_string());
}

impl CanonicalParts {
    /// The parts of `event`'s canonical form in `stream_id`.
    pub fn of(stream_id: &StreamId, event: &NewEvent) -> Self {
        let m = &event.metadata;
        let mut head = String::with_capacity(256);
        head.push_str("{\"data\":");
        write_canonical(&event.data, &mut head);
        head.push_str(",\"event_id\":");
        push_json_str(&mut head, &event.event_id.to_string());
        head.push_str(",\"event_type\":");
        push_json_str(&mut head, &event.event_type);
        head.push_str(",\"metadata\":{\"actor\":{\"id\":");
        push_json_str(&mut head, &m.actor.id);
        head.push_str(",\"kind\":");
        push_json_str(&mut head, &m.actor.kind);
        head.push_str("},\"causation_id\":");
        match m.causation_id {
            Some(c) => push_json_str(&mut head, &c.to_string()),
            None => head.push_str("null"),
        }
        head.push_str(",\"correlation_id\":");
        push_json_str(&mut head, &m.correlation_id.to_string());
        head.push_str(",\"idempotency_key\":");
        match &m.idempotency_key {
            Some(k) => push_json_str(&mut head, k),
            None => head.push_str("null"),
        }
        head.push_str(",\"recorded_at\":");
        let mut tail = String::with_capacity(64);
        tail.push_str(",\"schema_version\":");
        tail.push_str(&event.schema_version.to_string());
        tail.push_str(",\"stream_id\":");
        push_json_str(&mut tail, stream_id.as_str());
        tail.push('}');
        Self { head, tail }
    }

    /// `hex(SHA-256(prev_hash ‖ "\n" ‖ canonical))` of the event at
    /// `revision`, recorded at `recorded_at` (already formatted with
    /// [`format_timestamp`]): the same value as [`link_hash`] of
    /// [`canonical_form`], without building the canonical form.
    pub fn link_hash(&self, prev_hash: &str, revision: Revision, recorded_at: &str) -> String {
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(b"\n");
        h.update(self.head.as_bytes());
        // A formatted timestamp holds nothing JSON escapes.
        h.update(b"\"");
        h.update(recorded_at.as_bytes());
        h.update(b"\"},\"revision\":");
        h.update(revision.0.to_string().as_bytes());
        h.update(self.tail.as_bytes());
        hex::encode(h.finalize())
    }
}

/// Recomputes an event's hash from its content and its recorded `prev_hash`.
pub fn expected_hash(event: &RecordedEvent) -> String {
    let canonical = canonical_form(
        &event.stream_id,
        event.revision,
        &event.event_id,
        &event.event_type,
        event.schema_version,
        &event.data,
        &event.metadata,
    );
    link_hash(&event.metadata.prev_hash, &canonical)
}

/// Turns a [`NewEvent`] into the event the store will keep: stamps the time,
/// links it to `prev_hash` and computes its hash. `position` is whatever the
/// backend assigned (KurrentDB fills it in after the write).
pub fn seal(
    stream_id: &StreamId,
    revision: Revision,
    position: Position,
    prev_hash: &str,
    recorded_at: DateTime<Utc>,
    event: NewEvent,
) -> RecordedEvent {
    let mut metadata = EventMetadata {
        actor: event.metadata.actor,
        correlation_id: event.metadata.correlation_id,
        causation_id: event.metadata.causation_id,
        idempotency_key: event.metadata.idempotency_key,
        recorded_at,
        prev_hash: prev_hash.to_string(),
        hash: String::new(),
    };
    let canonical = canonical_form(
        stream_id,
        revision,
        &event.event_id,
        &event.event_type,
        event.schema_version,
        &event.data,
        &metadata,
    );
    metadata.hash = link_hash(prev_hash, &canonical);
    RecordedEvent {
        event_id: event.event_id,
        stream_id: stream_id.clone(),
        revision,
        position,
        event_type: event.event_type,
        schema_version: event.schema_version,
        data: event.data,
        metadata,
    }
}

/// Checks that `events` — one whole stream from revision 0, in order — form an
/// unbroken chain, and names the first broken link.
pub fn verify_stream(events: &[RecordedEvent]) -> Result<(), ChainBreak> {
    let mut prev = GENESIS_HASH.to_string();
    for (i, e) in events.iter().enumerate() {
        let brk = |reason: String| ChainBreak {
            stream_id: e.stream_id.to_string(),
            revision: e.revision.0,
            reason,
        };
        if e.revision.0 != i as u64 {
            return Err(brk(format!("expected revision {i}")));
        }
        if e.metadata.prev_hash != prev {
            return Err(brk(
                "prev_hash does not match the previous event's hash".into()
            ));
        }
        if expected_hash(e) != e.metadata.hash {
            return Err(brk("hash does not match the event's content".into()));
        }
        prev = e.metadata.hash.clone();
    }
    Ok(())
}

/// Verifies every stream's chain while the log is read once, in position
/// order (each stream's events arrive in revision order), keeping one link
/// per stream rather than the events: memory grows with the number of
/// streams, not of events. Reports the first broken link of each stream and
/// ignores that stream's later events.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    /// Per stream: the next expected revision and the hash it must link to,
    /// or `None` once the stream is broken.
    links: std::collections::HashMap<String, Option<(u64, String)>>,
    breaks: Vec<ChainBreak>,
    events: u64,
}

impl ChainVerifier {
    /// A verifier that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next event of the log; returns the break when this event
    /// is the first broken link of its stream.
    pub fn push(&mut self, e: &RecordedEvent) -> Option<ChainBreak> {
        self.events += 1;
        let link = self
            .links
            .entry(e.stream_id.to_string())
            .or_insert_with(|| Some((0, GENESIS_HASH.to_string())));
        let (revision, prev) = link.as_ref()?;
        let reason = if e.revision.0 != *revision {
            Some(format!("expected revision {revision}"))
        } else if e.metadata.prev_hash != *prev {
            Some("prev_hash does not match the previous event's hash".to_string())
        } else if expected_hash(e) != e.metadata.hash {
            Some("hash does not match the event's content".to_string())
        } else {
            None
        };
        match reason {
            None => {
                *link = Some((e.revision.0 + 1, e.metadata.hash.clone()));
                None
            }
            Some(reason) => {
                *link = None;
                let brk = ChainBreak {
                    stream_id: e.stream_id.to_string(),
                    revision: e.revision.0,
                    reason,
                };
                self.breaks.push(brk.clone());
                Some(brk)
            }
        }
    }

    /// How many events were checked.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// How many streams were seen.
    pub fn streams(&self) -> usize {
        self.links.len()
    }

    /// The first broken link of every broken stream, in the order found.
    pub fn breaks(&self) -> &[ChainBreak] {
        &self.breaks
    }
}

/// Where one stream ended when the log was read: its last revision and that
/// event's hash. An audit checkpoint keeps one per stream, so that a later
/// read can name a stream that disappeared, lost its last events, or had
/// them rewritten.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamHead {
    /// The stream.
    pub stream_id: String,
    /// Revision of its last event.
    pub revision: u64,
    /// Hash of that event.
    pub hash: String,
}

/// `hex(SHA-256(…))` over `stream_id \t revision \t hash \n` for every head in
/// stream-id order (byte order): one digest that changes when any stream's
/// head does.
pub fn heads_digest(heads: &[StreamHead]) -> String {
    let mut sorted: Vec<&StreamHead> = heads.iter().collect();
    sorted.sort_by(|a, b| a.stream_id.as_bytes().cmp(b.stream_id.as_bytes()));
    let mut h = Sha256::new();
    for head in sorted {
        h.update(head.stream_id.as_bytes());
        h.update(b"\t");
        h.update(head.revision.to_string().as_bytes());
        h.update(b"\t");
        h.update(head.hash.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Collects every stream's head and the number of events while the log is
/// read in position order; memory grows with the number of streams.
#[derive(Debug, Default)]
pub struct LogHeads {
    heads: std::collections::BTreeMap<String, (u64, String)>,
    events: u64,
    last: Option<Position>,
}

impl LogHeads {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next event of the log.
    pub fn push(&mut self, e: &RecordedEvent) {
        self.events += 1;
        self.last = Some(e.position);
        let head = self
            .heads
            .entry(e.stream_id.to_string())
            .or_insert((e.revision.0, String::new()));
        if e.revision.0 >= head.0 {
            *head = (e.revision.0, e.metadata.hash.clone());
        }
    }

    /// Events seen.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Position of the last event seen.
    pub fn last(&self) -> Option<Position> {
        self.last
    }

    /// Every stream's head, in stream-id order.
    pub fn heads(&self) -> Vec<StreamHead> {
        self.heads
            .iter()
            .map(|(stream_id, (revision, hash))| StreamHead {
                stream_id: stream_id.clone(),
                revision: *revision,
                hash: hash.clone(),
            })
            .collect()
    }
}

/// Positions missing from a single-sequence log (SQLite, PostgreSQL, memory:
/// positions are 1, 2, 3, … with no hole, see `docs/adr/0003-event-store-schema.md`),
/// as inclusive `(first, last)` ranges, found while it is read in order.
/// KurrentDB positions are byte offsets, not a sequence: do not use it there.
#[derive(Debug, Default)]
pub struct PositionGaps {
    next: u64,
    gaps: Vec<(u64, u64)>,
}

impl PositionGaps {
    /// Expects position 1 first.
    pub fn new() -> Self {
        Self {
            next: 1,
            gaps: Vec::new(),
        }
    }

    /// Takes the next position read.
    pub fn push(&mut self, p: Position) {
        if p.commit > self.next {
            self.gaps.push((self.next, p.commit - 1));
        }
        self.next = self.next.max(p.commit + 1);
    }

    /// Closes the read at `head`: positions after the last one read up to
    /// `head` are missing too.
    pub fn finish(mut self, head: u64) -> Vec<(u64, u64)> {
        if head >= self.next {
            self.gaps.push((self.next, head));
        }
        self.gaps
    }
}

/// The metadata document the SQL backends keep beside `data` (and
/// KurrentDB inside its custom metadata). A build without those backends
/// leaves it unused.
#[derive(serde::Serialize, serde::Deserialize)]
#[cfg_attr(
    not(all(feature = "sqlite", feature = "postgres", feature = "kurrentdb")),
    allow(dead_code)
)]
pub(crate) struct StoredMetadata {
    pub actor: crate::Actor,
    pub correlation_id: uuid::Uuid,
    pub causation_id: Option<uuid::Uuid>,
    pub idempotency_key: Option<String>,
    pub recorded_at: String,
}

#[cfg_attr(
    not(all(feature = "sqlite", feature = "postgres", feature = "kurrentdb")),
    allow(dead_code)
)]
impl StoredMetadata {
    pub(crate) fn of(m: &EventMetadata) -> Self {
        Self {
            actor: m.actor.clone(),
            correlation_id: m.correlation_id,
            causation_id: m.causation_id,
            idempotency_key: m.idempotency_key.clone(),
            recorded_at: format_timestamp(&m.recorded_at),
        }
    }

    /// [`StoredMetadata::to_json`] of `m` stamped later, cut before its last
    /// field: `recorded_at` is serialised last, so the writer completes it
    /// with [`StoredMetadata::finish_json`].
    pub(crate) fn json_head(m: &crate::NewMetadata) -> String {
        #[derive(serde::Serialize)]
        struct Head<'a> {
            actor: &'a crate::Actor,
            correlation_id: uuid::Uuid,
            causation_id: Option<uuid::Uuid>,
            idempotency_key: &'a Option<String>,
        }
        let mut json = serde_json::to_string(&Head {
            actor: &m.actor,
            correlation_id: m.correlation_id,
            causation_id: m.causation_id,
            idempotency_key: &m.idempotency_key,
        })
        .expect("the metadata holds only strings, uuids and options of them");
        // Drop the closing brace; `finish_json` writes the last field.
        json.pop();
        json
    }

    /// Completes [`StoredMetadata::json_head`] with `recorded_at` (formatted
    /// with [`format_timestamp`]).
    pub(crate) fn finish_json(head: &str, recorded_at: &str) -> String {
        let mut json = String::with_capacity(head.len() + recorded_at.len() + 20);
        json.push_str(head);
        json.push_str(",\"recorded_at\":\"");
        json.push_str(recorded_at);
        json.push_str("\"}");
        json
    }

    /// The document as stored; the writer builds it in two parts instead
    /// (`json_head`, `finish_json`), which the tests compare with this.
    #[cfg(test)]
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self)
            .expect("StoredMetadata holds only strings, uuids and options of them")
    }

    pub(crate) fn into_metadata(
        self,
        prev_hash: String,
        hash: String,
    ) -> Result<EventMetadata, StoreError> {
        let recorded_at = DateTime::parse_from_rfc3339(&self.recorded_at)
            .map_err(|e| StoreError::Corrupt(format!("recorded_at: {e}")))?
            .with_timezone(&Utc);
        Ok(EventMetadata {
            actor: self.actor,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            idempotency_key: self.idempotency_key,
            recorded_at,
            prev_hash,
            hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, NewMetadata};

    fn new_event(data: Value) -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::nil(),
            event_type: "BasketCreated".into(),
            schema_version: 1,
            data,
            metadata: NewMetadata {
                actor: Actor {
                    kind: "user".into(),
                    id: "u1".into(),
                },
                correlation_id: uuid::Uuid::nil(),
                causation_id: None,
                idempotency_key: Some("k".into()),
            },
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:00:00.123456Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("literal timestamp parses")
    }

    /// Events whose canonical form exercises every field: escapes, non-ASCII
    /// text, nested objects in any key order, arrays, numbers, present and
    /// absent options.
    fn varied_events() -> Vec<NewEvent> {
        let mut events = Vec::new();
        let datas = [
            serde_json::json!({}),
            serde_json::json!({"z": [3, {"b": null, "a": 1.5}], "a": "x\"y\\z\n\u{1}", "é": true}),
            serde_json::json!({"legs": [{"strike": 10_000_i64, "side": "buy"}], "name": "Ünïcødé 🧺 </script>"}),
            serde_json::json!([1, "two", {"k": -3}]),
            serde_json::json!("just a string"),
        ];
        for (i, data) in datas.into_iter().enumerate() {
            let mut e = new_event(data);
            e.event_id = uuid::Uuid::now_v7();
            e.event_type = format!("Type\"{i}");
            e.schema_version = i as u32 * 7;
            e.metadata.actor.id = format!("partner \"k{i}\" ü");
            e.metadata.correlation_id = uuid::Uuid::now_v7();
            if i % 2 == 0 {
                e.metadata.causation_id = Some(uuid::Uuid::now_v7());
                e.metadata.idempotency_key = None;
            } else {
                e.metadata.idempotency_key = Some(format!("key\\{i}\t"));
            }
            events.push(e);
        }
        events
    }

    #[test]
    fn prepared_parts_hash_exactly_like_seal() {
        let s = StreamId::parse("basket-1").expect("valid");
        let stamps = [
            at(),
            DateTime::parse_from_rfc3339("1999-01-02T03:04:05Z")
                .map(|t| t.with_timezone(&Utc))
                .expect("literal timestamp parses"),
        ];
        let mut prev = GENESIS_HASH.to_string();
        for (i, event) in varied_events().into_iter().enumerate() {
            for (j, stamp) in stamps.iter().enumerate() {
                let revision = Revision((i * 2 + j) as u64 * 1_000_003);
                let parts = CanonicalParts::of(&s, &event);
                let sealed = seal(
                    &s,
                    revision,
                    Position::sequence(1),
                    &prev,
                    *stamp,
                    event.clone(),
                );
                assert_eq!(
                    parts.link_hash(&prev, revision, &format_timestamp(stamp)),
                    sealed.metadata.hash,
                    "event {i}, stamp {j}"
                );
                assert_eq!(expected_hash(&sealed), sealed.metadata.hash);
                prev = sealed.metadata.hash;
            }
        }
    }

    #[test]
    fn prepared_metadata_json_is_the_stored_metadata_json() {
        let s = StreamId::parse("basket-1").expect("valid");
        for event in varied_events() {
            let head = StoredMetadata::json_head(&event.metadata);
            let sealed = seal(
                &s,
                Revision(0),
                Position::sequence(1),
                GENESIS_HASH,
                at(),
                event,
            );
            let stamp = format_timestamp(&sealed.metadata.recorded_at);
            assert_eq!(
                StoredMetadata::finish_json(&head, &stamp),
                StoredMetadata::of(&sealed.metadata).to_json()
            );
        }
    }

    #[test]
    fn the_canonical_form_ignores_key_order() {
        let s = StreamId::parse("basket-1").expect("valid");
        let a = seal(
            &s,
            Revision(0),
            Position::default(),
            GENESIS_HASH,
            at(),
            new_event(serde_json::json!({"b": 1, "a": {"y": 2, "x": 3}})),
        );
        let b = seal(
            &s,
            Revision(0),
            Position::default(),
            GENESIS_HASH,
            at(),
            new_event(serde_json::json!({"a": {"x": 3, "y": 2}, "b": 1})),
        );
        assert_eq!(a.metadata.hash, b.metadata.hash);
    }

    #[test]
    fn a_chain_of_sealed_events_verifies_and_a_changed_byte_breaks_it_at_that_revision() {
        let s = StreamId::parse("basket-1").expect("valid");
        let mut events = Vec::new();
        let mut prev = GENESIS_HASH.to_string();
        for i in 0..3u64 {
            let e = seal(
                &s,
                Revision(i),
                Position::sequence(i + 1),
                &prev,
                at(),
                new_event(serde_json::json!({"n": i})),
            );
            prev = e.metadata.hash.clone();
            events.push(e);
        }
        assert_eq!(verify_stream(&events), Ok(()));
        events[1].data = serde_json::json!({"n": 99});
        let err = verify_stream(&events).expect_err("tampering is detected");
        assert_eq!((err.stream_id.as_str(), err.revision), ("basket-1", 1));
    }

    #[test]
    fn the_incremental_verifier_names_the_first_broken_link_of_each_stream() {
        // Two streams interleaved in the log, three events each.
        let mut prev: std::collections::HashMap<&str, String> = Default::default();
        let mut log = Vec::new();
        for i in 0..3u64 {
            for name in ["basket-1", "partner-ZEBU"] {
                let p = prev.entry(name).or_insert_with(|| GENESIS_HASH.to_string());
                let e = seal(
                    &StreamId::parse(name).expect("valid"),
                    Revision(i),
                    Position::sequence(log.len() as u64 + 1),
                    p,
                    at(),
                    new_event(serde_json::json!({"n": i})),
                );
                *p = e.metadata.hash.clone();
                log.push(e);
            }
        }
        let mut clean = ChainVerifier::new();
        assert!(log.iter().all(|e| clean.push(e).is_none()));
        assert_eq!((clean.events(), clean.streams()), (6, 2));
        assert!(clean.breaks().is_empty());
        let pristine = log.clone();

        // Revision 1 of basket-1 is changed; its revision 2 then links to a
        // hash that no longer matches, but only the first break is named.
        log[2].data = serde_json::json!({"n": 7});
        let mut v = ChainVerifier::new();
        let found: Vec<_> = log.iter().filter_map(|e| v.push(e)).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].stream_id.as_str(), found[0].revision),
            ("basket-1", 1)
        );
        assert_eq!(v.breaks(), &found[..]);

        // A missing event is a break at the next one.
        let mut v = ChainVerifier::new();
        let gap: Vec<_> = pristine
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, e)| e)
            .collect();
        let found: Vec<_> = gap.into_iter().filter_map(|e| v.push(e)).collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].stream_id.as_str(), found[0].revision),
            ("partner-ZEBU", 1)
        );
    }

    #[test]
    fn the_hash_is_sha256_of_prev_hash_newline_and_canonical_bytes() {
        let s = StreamId::parse("partner-ZEBU").expect("valid");
        let e = seal(
            &s,
            Revision(0),
            Position::default(),
            GENESIS_HASH,
            at(),
            new_event(serde_json::json!({"k": "v"})),
        );
        let canonical = r#"{"data":{"k":"v"},"event_id":"00000000-0000-0000-0000-000000000000","event_type":"BasketCreated","metadata":{"actor":{"id":"u1","kind":"user"},"causation_id":null,"correlation_id":"00000000-0000-0000-0000-000000000000","idempotency_key":"k","recorded_at":"2026-11-21T10:00:00.123456Z"},"revision":0,"schema_version":1,"stream_id":"partner-ZEBU"}"#;
        let mut h = Sha256::new();
        h.update(format!("{GENESIS_HASH}\n{canonical}").as_bytes());
        assert_eq!(e.metadata.hash, hex::encode(h.finalize()));
    }

    #[test]
    fn heads_name_each_streams_last_event_and_gaps_are_ranges() {
        let mut prev: std::collections::HashMap<&str, String> = Default::default();
        let mut log = Vec::new();
        for (i, name) in ["basket-1", "partner-ZEBU", "basket-1"].iter().enumerate() {
            let p = prev.entry(name).or_insert_with(|| GENESIS_HASH.to_string());
            let revision = if i == 2 { 1 } else { 0 };
            let e = seal(
                &StreamId::parse(*name).expect("valid"),
                Revision(revision),
                Position::sequence(i as u64 + 1),
                p,
                at(),
                new_event(serde_json::json!({"n": i})),
            );
            *p = e.metadata.hash.clone();
            log.push(e);
        }
        let mut heads = LogHeads::new();
        log.iter().for_each(|e| heads.push(e));
        let got = heads.heads();
        assert_eq!(heads.events(), 3);
        assert_eq!(
            got.iter()
                .map(|h| (h.stream_id.as_str(), h.revision, h.hash.as_str()))
                .collect::<Vec<_>>(),
            vec![
                ("basket-1", 1, log[2].metadata.hash.as_str()),
                ("partner-ZEBU", 0, log[1].metadata.hash.as_str())
            ]
        );
        let mut reversed = got.clone();
        reversed.reverse();
        assert_eq!(heads_digest(&got), heads_digest(&reversed));
        let mut shorter = got.clone();
        shorter[0].revision = 0;
        assert_ne!(heads_digest(&got), heads_digest(&shorter));

        let mut gaps = PositionGaps::new();
        for p in [1, 2, 5, 6, 9] {
            gaps.push(Position::sequence(p));
        }
        assert_eq!(gaps.finish(11), vec![(3, 4), (7, 8), (10, 11)]);
    }
}
