//! Recorded events, as the audit routes show them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Timestamp;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditActor {
    /// `user`, `admin`, `partner` or `system`.
    pub kind: String,
    pub id: String,
}

/// An event's metadata, with its link of the stream's hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditMetadata {
    pub actor: AuditActor,
    pub correlation_id: Uuid,
    #[schema(required = true)]
    pub causation_id: Option<Uuid>,
    #[schema(required = true)]
    pub idempotency_key: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    /// Lower-case hex SHA-256 of the previous event of the stream (64 zeros
    /// for the first).
    pub prev_hash: String,
    /// Lower-case hex SHA-256 over `prev_hash` and this event's canonical
    /// form.
    pub hash: String,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub event_id: Uuid,
    pub stream_id: String,
    /// Its place in its stream, from 0.
    #[schema(value_type = i64)]
    pub revision: u64,
    /// `commit.prepare`.
    #[schema(example = "1042.1042")]
    pub position: String,
    #[schema(value_type = i64)]
    pub commit_position: u64,
    #[schema(value_type = i64)]
    pub prepare_position: u64,
    /// PascalCase past tense, e.g. `SubscribedToTemplate`.
    pub event_type: String,
    #[schema(value_type = i64)]
    pub schema_version: u32,
    /// The event's data as stored.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub metadata: AuditMetadata,
}

/// A page of one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditStream {
    pub stream_id: String,
    pub events: Vec<AuditEvent>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A page of the global log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEventList {
    pub events: Vec<AuditEvent>,
    /// The position to pass as the next `after`; `null` at the end of the
    /// log.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}
