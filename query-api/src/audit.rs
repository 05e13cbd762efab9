//! The audit routes (admins and auditors): the event log itself, with every
//! event's full metadata, so history can be read and its hash chains checked
//! without access to the database.
//!
//! * `GET /audit/streams/{stream_id}?cursor=&limit=` — one stream
//!   (`basket-…`, `subscription-…`, `partner-…`, `user-…`, `apikey-…`) in
//!   revision order; `cursor` is the `next_cursor` of the previous page. A
//!   stream with no events is 404.
//! * `GET /audit/events?after=&limit=` — the global log in position order,
//!   strictly after `after` (a position `commit.prepare`, as in
//!   `X-Consistency-Token`; a bare integer `n` means `n.n`, the SQL stores'
//!   spelling); `next_cursor` is the position to pass as the next `after`,
//!   `null` at the end of the log.
//!
//! Both read the event store, not the read models: what they answer is what
//! was recorded, whatever the projectors did with it. Each event carries
//! `metadata {actor {kind, id}, correlation_id, causation_id,
//! idempotency_key, recorded_at, prev_hash, hash}`; `hash` is SHA-256 over
//! `prev_hash` and the event's canonical form (`basketry_store::chain`), so
//! a reader can recompute every link.

use actix_web::{web, HttpRequest, HttpResponse};
use basketry_command_api::openapi::schemas;
use basketry_http::consistency::consistency_token;
use basketry_http::Principal;
use basketry_store::{chain, Position, RecordedEvent, Revision, StreamId};
use serde_json::{json, Value};

use crate::consistency::Token;
use crate::error::QueryError;
use crate::openapi;
use crate::paging::limit;
use crate::params::Params;
use crate::request::{run, Reply};
use crate::QueryState;

/// The query parameters of `GET /audit/streams/{stream_id}`.
pub const STREAM_PARAMS: &[&str] = &["cursor", "limit"];

/// The query parameters of `GET /audit/events`.
pub const EVENTS_PARAMS: &[&str] = &["after", "limit"];

/// An event with its metadata, as the audit routes render it.
pub fn event_view(event: &RecordedEvent) -> Value {
    let m = &event.metadata;
    json!({
        "event_id": event.event_id.hyphenated().to_string(),
        "stream_id": event.stream_id.as_str(),
        "revision": event.revision.0,
        "position": consistency_token(event.position),
        "commit_position": event.position.commit,
        "prepare_position": event.position.prepare,
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "data": event.data,
        "metadata": {
            "actor": {"kind": m.actor.kind, "id": m.actor.id},
            "correlation_id": m.correlation_id.hyphenated().to_string(),
            "causation_id": m.causation_id.map(|id| id.hyphenated().to_string()),
            "idempotency_key": m.idempotency_key,
            "recorded_at": chain::format_timestamp(&m.recorded_at),
            "prev_hash": m.prev_hash,
            "hash": m.hash,
        },
    })
}

/// Reads `commit.prepare` (the consistency token's spelling) or a bare
/// `n` (meaning `n.n`); no whitespace.
pub fn parse_position(raw: &str) -> Option<Position> {
    if raw.trim() != raw {
        return None;
    }
    if raw.contains('.') {
        let token = Token::parse(raw)?;
        return Some(Position {
            commit: u64::try_from(token.commit).ok()?,
            prepare: u64::try_from(token.prepare).ok()?,
        });
    }
    (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse().ok().map(Position::sequence))
        .flatten()
}

/// A stream's events
///
/// Admins and auditors: the events of one stream in revision order, each
/// with its full metadata and hash-chain link. A stream with no events is
/// 404.
#[utoipa::path(
    get,
    path = "/audit/streams/{stream_id}",
    tag = "Audit",
    params(
        ("stream_id" = String, Path, description = "A stream name such as `subscription-0193…` or `partner-ZEBU`.", example = "partner-ZEBU"),
        openapi::Page,
    ),
    responses(
        (status = 200, description = "A page of the stream's events.", body = openapi::AuditStream),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 404, response = schemas::NotFound),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
pub async fn stream_events(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        stream_query(&state, &req, &principal)
    })
    .await
}

async fn stream_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    principal.require_auditor()?;
    let params = Params::of(req, STREAM_PARAMS)?;
    let limit = limit(&params)? as usize;
    let from = match params.get("cursor") {
        None => Revision::START,
        Some(raw) => raw
            .parse::<u64>()
            .map(Revision)
            .map_err(|_| QueryError::bad_request("invalid_cursor", "the cursor is not valid"))?,
    };
    let raw = req.match_info().get("stream_id").unwrap_or_default();
    // A name the store would refuse names no stream.
    let stream = StreamId::parse(raw).map_err(|_| QueryError::not_found("stream"))?;
    let events = state.store.read_stream(&stream, from).await?;
    if events.is_empty() && from == Revision::START {
        return Err(QueryError::not_found("stream"));
    }
    let next_cursor = events
        .get(limit)
        .map(|next| Value::String(next.revision.0.to_string()))
        .unwrap_or(Value::Null);
    Ok(Reply::Json(json!({
        "stream_id": stream.as_str(),
        "events": events.iter().take(limit).map(event_view).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

/// The global log
///
/// Admins and auditors: every event of every stream in log (position)
/// order, strictly after `after`, each with its full metadata.
#[utoipa::path(
    get,
    path = "/audit/events",
    tag = "Audit",
    params(openapi::AuditPage),
    responses(
        (status = 200, description = "A page of the log.", body = openapi::AuditEventList),
        (status = 400, response = schemas::BadRequest),
        (status = 401, response = schemas::Unauthorized),
        (status = 403, response = schemas::Forbidden),
        (status = 422, response = schemas::UnprocessableEntity),
        (status = 429, response = schemas::TooManyRequests),
        (status = 500, response = schemas::InternalError),
        (status = 503, response = schemas::ServiceUnavailable),
    ),
    security(("bearer_jwt" = [])),
)]
pub async fn log_events(
    state: web::Data<QueryState>,
    req: HttpRequest,
    principal: Principal,
) -> HttpResponse {
    run(&state, &req, &principal, || {
        log_query(&state, &req, &principal)
    })
    .await
}

async fn log_query(
    state: &QueryState,
    req: &HttpRequest,
    principal: &Principal,
) -> Result<Reply, QueryError> {
    principal.require_auditor()?;
    let params = Params::of(req, EVENTS_PARAMS)?;
    let limit = limit(&params)? as usize;
    let after = params
        .get("after")
        .map(|raw| {
            parse_position(raw).ok_or_else(|| {
                QueryError::invalid("after", "must be a log position written commit.prepare")
            })
        })
        .transpose()?;
    // One more than asked tells whether another page follows.
    let mut events = state.store.read_all(after, limit + 1).await?;
    let more = events.len() > limit;
    events.truncate(limit);
    let next_cursor = match (more, events.last()) {
        (true, Some(last)) => Value::String(consistency_token(last.position)),
        _ => Value::Null,
    };
    Ok(Reply::Json(json!({
        "events": events.iter().map(event_view).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_both_spellings_strictly() {
        assert_eq!(
            parse_position("12.7"),
            Some(Position {
                commit: 12,
                prepare: 7
            })
        );
        assert_eq!(parse_position("5"), Some(Position::sequence(5)));
        for bad in ["", ".", "1.", ".1", "-1", "1.2.3", "a", "1e3", " 1"] {
            assert_eq!(parse_position(bad), None, "{bad:?}");
        }
    }
}
