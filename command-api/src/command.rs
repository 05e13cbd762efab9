//! The write path every handler shares.
//!
//! [`run`] wraps a handler with what SPEC §4 asks of every command:
//! partner and person rate limits (and their headers on every response,
//! [`basketry_http::admission`]), the `Idempotency-Key` protocol, and the
//! `X-Consistency-Token` header.
//! [`execute`] is load → decide → append with the expected revision, retried
//! a bounded number of times when another writer moved the stream first.

use std::future::Future;
use std::sync::Arc;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use basketry_domain::{Actor, Aggregate, DomainEvent};
use basketry_store::{
    AppendError, EventStore, NewEvent, NewMetadata, Position, StoreError, StreamId,
};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use basketry_http::admission::admit;
use basketry_http::{IdempotencyKey, Principal};

use crate::error::ApiError;
use crate::limits::{
    fingerprint, Begin, Claim, Completion, Earlier, IdempotencyStore, RateLimitPolicy, RateLimiter,
    StoredResponse,
};
use crate::load::{load, Loaded};

/// How often a command is decided again after losing a race for its stream.
pub const MAX_ATTEMPTS: usize = 8;

/// Largest accepted request body (SPEC §4).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub use basketry_http::admission::{rate_key, rate_policy};
pub use basketry_http::clock::Clock;
pub use basketry_http::consistency::{consistency_token, CONSISTENCY_TOKEN};

/// What the command side needs from the process.
pub struct AppState {
    /// Where events go.
    pub store: Arc<dyn EventStore>,
    /// Partner and person rate limits.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Every person's (JWT) limit ([`RateLimitPolicy::per_person`]).
    pub user_rate_limit: RateLimitPolicy,
    /// Stored responses for `Idempotency-Key` retries.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The time commands are decided at.
    pub clock: Clock,
    /// Where billing runs find the subscriptions due (the billing index of
    /// the read database).
    pub billing_index: Arc<dyn crate::billing::DueIndex>,
}

/// Who is acting, on behalf of which request.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    /// The domain actor the command runs as.
    pub actor: Actor,
    /// Shared by every event this request causes.
    pub correlation_id: Uuid,
    /// The request's `Idempotency-Key`, recorded in event metadata.
    pub idempotency_key: Option<String>,
    /// The instant the command is decided at.
    pub now: DateTime<Utc>,
}

impl CommandMeta {
    fn store_actor(&self) -> basketry_store::Actor {
        let (kind, id) = match &self.actor {
            Actor::User { user_id } => ("user", user_id.to_string()),
            Actor::Admin { user_id } => ("admin", user_id.to_string()),
            Actor::Partner { api_key_id, .. } => ("partner", api_key_id.to_string()),
            Actor::System => ("system", "basketry".to_string()),
        };
        basketry_store::Actor {
            kind: kind.into(),
            id,
        }
    }

    /// Wraps domain events for the store.
    pub fn new_events<E: DomainEvent>(&self, events: &[E]) -> Vec<NewEvent> {
        events
            .iter()
            .map(|e| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: e.event_type().to_string(),
                schema_version: e.schema_version(),
                data: e.to_data(),
                metadata: NewMetadata {
                    actor: self.store_actor(),
                    correlation_id: self.correlation_id,
                    causation_id: None,
                    idempotency_key: self.idempotency_key.clone(),
                },
            })
            .collect()
    }
}

/// A command's result: the aggregate as it now is and where its events went.
#[derive(Debug)]
pub struct Executed<S, E> {
    /// State after the new events.
    pub state: S,
    /// The events appended (empty when the command changed nothing).
    pub events: Vec<E>,
    /// Position of the last appended event, or of the stream's last event
    /// when nothing was appended.
    pub position: Option<Position>,
}

/// Loads `stream` as `A`, builds the command from what was loaded, decides
/// and appends at the loaded revision. When another writer got there first,
/// reloads and decides again, up to [`MAX_ATTEMPTS`] times; the domain's
/// verdict on the fresh state is final.
pub async fn execute<A, F>(
    store: &dyn EventStore,
    stream: &StreamId,
    meta: &CommandMeta,
    mut command: F,
) -> Result<Executed<A::State, A::Event>, ApiError>
where
    A: Aggregate,
    F: FnMut(&Loaded<A::State>) -> Result<A::Command, ApiError>,
{
    execute_many::<A, _>(store, stream, meta, |loaded| Ok(vec![command(loaded)?])).await
}

/// [`execute`] for several commands decided in sequence on one stream, whose
/// events are appended together (all or none), e.g. registering a partner
/// and issuing its first key.
pub async fn execute_many<A, F>(
    store: &dyn EventStore,
    stream: &StreamId,
    meta: &CommandMeta,
    commands: F,
) -> Result<Executed<A::State, A::Event>, ApiError>
where
    A: Aggregate,
    F: FnMut(&Loaded<A::State>) -> Result<Vec<A::Command>, ApiError>,
{
    execute_many_from::<A, _>(store, stream, meta, None, commands).await
}

/// [`execute`] whose first attempt, when `first` is given, decides on it:
/// the stream as the caller already loaded it (e.g. together with other streams), or as it
/// knows it to be: the empty state of a stream named by an id it has just
/// generated. The append still expects exactly that revision, so a stream
/// that moved (or exists after all) is a conflict like any other: it is
/// reloaded and decided again.
pub async fn execute_from<A, F>(
    store: &dyn EventStore,
    stream: &StreamId,
    meta: &CommandMeta,
    first: Option<Loaded<A::State>>,
    mut command: F,
) -> Result<Executed<A::State, A::Event>, ApiError>
where
    A: Aggregate,
    F: FnMut(&Loaded<A::State>) -> Result<A::Command, ApiError>,
{
    execute_many_from::<A, _>(store, stream, meta, first, |loaded| {
        Ok(vec![command(loaded)?])
    })
    .await
}

async fn execute_many_from<A, F>(
    store: &dyn EventStore,
    stream: &StreamId,
    meta: &CommandMeta,
    mut first: Option<Loaded<A::State>>,
    mut commands: F,
) -> Result<Executed<A::State, A::Event>, ApiError>
where
    A: Aggregate,
    F: FnMut(&Loaded<A::State>) -> Result<Vec<A::Command>, ApiError>,
{
    for _ in 0..MAX_ATTEMPTS {
        let loaded = match first.take() {
            Some(loaded) => loaded,
            None => load::<A>(store, stream).await?,
        };
        let mut state = loaded.state.clone();
        let mut events = Vec::new();
        for cmd in commands(&loaded)? {
            let (next, more) = A::execute(state, cmd)?;
            state = next;
            events.extend(more);
        }
        if events.is_empty() {
            return Ok(Executed {
                state,
                events,
                position: loaded.position,
            });
        }
        match store
            .append(stream, loaded.expected(), meta.new_events(&events))
            .await
        {
            Ok(outcome) => {
                return Ok(Executed {
                    state,
                    events,
                    position: Some(outcome.last_position),
                })
            }
            Err(AppendError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Concurrency)
}

/// What a handler answers on success.
pub struct Reply {
    /// 200 or 201.
    pub status: StatusCode,
    /// The resource.
    pub body: Value,
    /// The consistency token: position of the command's last event.
    pub position: Option<Position>,
    /// Members of `body` sent in this response only: the copy kept for
    /// `Idempotency-Key` replays leaves them out (a partner secret is
    /// shown once, SPEC §1, and must not rest in the idempotency store).
    pub once: Vec<&'static str>,
}

impl Reply {
    /// 201 with the created resource.
    pub fn created(body: Value, position: Option<Position>) -> Self {
        Self {
            status: StatusCode::CREATED,
            body,
            position,
            once: Vec::new(),
        }
    }

    /// 200 with the resource as it now is.
    pub fn ok(body: Value, position: Option<Position>) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            position,
            once: Vec::new(),
        }
    }

    /// The same reply, with `member` of the body left out of replays.
    pub fn shown_once(mut self, member: &'static str) -> Self {
        self.once.push(member);
        self
    }
}

/// A request body read up to [`MAX_BODY_BYTES`]; larger ones are refused
/// with 413 before they are buffered.
pub struct Body(pub Bytes);

impl actix_web::FromRequest for Body {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        use futures::StreamExt;
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
                return Err(ApiError::PayloadTooLarge);
            }
            let mut body = actix_web::web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request("unreadable_body", format!("request body: {e}"))
                })?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Body(body.freeze()))
        })
    }
}

/// Reads a JSON body: 415 unless `application/json`, 400 when malformed
/// (unknown fields included), an empty body reads as `{}`.
pub fn parse_body<T: DeserializeOwned>(req: &HttpRequest, body: &Bytes) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_str("{}")
            .map_err(|e| ApiError::bad_request("malformed_json", format!("request body: {e}")));
    }
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("request body: {e}")))
}

/// Runs a command handler with rate limiting, idempotency and the
/// consistency token. `handler` gets the command metadata and the raw body.
pub async fn run<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    body: Bytes,
    handler: F,
) -> HttpResponse
where
    F: FnOnce(CommandMeta, Bytes) -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    let now = state.clock.now();
    let rate_headers = match admit(
        state.rate_limiter.as_ref(),
        principal,
        state.user_rate_limit,
        now,
    )
    .await
    {
        Ok(headers) => headers,
        Err(refused) => return refused,
    };
    let response = match idempotent(state, req, principal, body, now, handler).await {
        Ok(r) => r,
        Err(e) => e.error_response(),
    };
    rate_headers.apply(response)
}

async fn idempotent<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    body: Bytes,
    now: DateTime<Utc>,
    handler: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(CommandMeta, Bytes) -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    let key = IdempotencyKey::from_headers(req.headers())?;
    let mut meta = CommandMeta {
        actor: principal.actor(),
        correlation_id: Uuid::now_v7(),
        idempotency_key: key.as_ref().map(|k| k.as_str().to_string()),
        now,
    };
    let Some(key) = key else {
        return Ok(Rendered::of(handler(meta, body).await).into_response());
    };
    let scope = principal.principal_key();
    let print = fingerprint(req.method().as_str(), req.path(), &body);
    // Read before the claim: whatever this request appends comes after it,
    // which is where a request taking the key over will look.
    let head = state.store.head().await?;
    let claim = match state
        .idempotency
        .begin(&scope, &key, &print, head, now)
        .await?
    {
        Begin::Replay(stored) => {
            let mut response =
                HttpResponse::build(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK));
            for (name, value) in &stored.headers {
                response.insert_header((name.as_str(), value.as_str()));
            }
            response.insert_header(("idempotent-replayed", "true"));
            return Ok(response.body(stored.body));
        }
        Begin::InFlight => return Err(ApiError::IdempotencyInFlight),
        Begin::Mismatch => return Err(ApiError::IdempotencyKeyReused),
        Begin::Proceed(claim) => claim,
        Begin::TakeOver { claim, earlier } => {
            let held = Held {
                state,
                scope: &scope,
                key: &key,
                claim,
                now,
            };
            let actor = meta.store_actor();
            match committed_earlier(state.store.as_ref(), &actor.id, &key, earlier, head).await {
                Ok(None) => claim,
                Ok(Some((position, streams))) => {
                    // An earlier request with this key committed and its
                    // response was lost: running the command again would do
                    // it twice. Say so, and keep that as the key's answer.
                    let rendered =
                        Rendered::of(Err(ApiError::IdempotencyKeyCommitted { position, streams }));
                    held.finish(&rendered).await;
                    return Ok(rendered.into_response());
                }
                Err(e) => {
                    // Unknown whether it committed: release the key so a
                    // retry searches again, rather than run blind.
                    held.release().await;
                    return Err(e.into());
                }
            }
        }
    };
    meta.correlation_id = claim.token;
    let rendered = Rendered::of(handler(meta, body).await);
    if rendered.status.is_success() && fault_exit_after_append() {
        tracing::error!("BASKETRY_FAULT=exit_after_append: exiting before the completion");
        std::process::abort();
    }
    Held {
        state,
        scope: &scope,
        key: &key,
        claim,
        now,
    }
    .finish(&rendered)
    .await;
    Ok(rendered.into_response())
}

/// A request's claim on its `Idempotency-Key`, to be completed or released.
struct Held<'a> {
    state: &'a AppState,
    scope: &'a str,
    key: &'a IdempotencyKey,
    claim: Claim,
    now: DateTime<Utc>,
}

impl Held<'_> {
    /// Records `rendered` as the key's answer, or releases the key when the
    /// answer tells the client to retry. The caller answers `rendered`
    /// whatever happens here: the command's events may be committed, so a
    /// failure to record them must not turn into an error for a write that
    /// happened (a retry after the in-flight timeout finds them in the log).
    async fn finish(&self, rendered: &Rendered) {
        if rendered.retryable {
            self.release().await;
            return;
        }
        let stored = StoredResponse {
            status: rendered.status.as_u16(),
            headers: rendered.headers.clone(),
            body: rendered
                .replay_body
                .clone()
                .unwrap_or_else(|| rendered.body.clone()),
        };
        // Logged: the status and the claim token (the events' correlation
        // id), never the key, the principal or the body.
        match self
            .state
            .idempotency
            .complete(self.scope, self.key, &self.claim, &stored, self.now)
            .await
        {
            Ok(Completion::Recorded) => {}
            Ok(Completion::Superseded) => tracing::warn!(
                correlation_id = %self.claim.token,
                status = stored.status,
                "Idempotency-Key taken over while the request ran; its response is not recorded"
            ),
            Err(e) => tracing::error!(
                correlation_id = %self.claim.token,
                status = stored.status,
                error = %e,
                "recording the response for its Idempotency-Key failed; answering it anyway"
            ),
        }
    }

    /// Gives the key up so that a retry runs (after looking in the log).
    async fn release(&self) {
        if let Err(e) = self
            .state
            .idempotency
            .abandon(self.scope, self.key, &self.claim)
            .await
        {
            tracing::warn!(
                correlation_id = %self.claim.token,
                error = %e,
                "releasing an Idempotency-Key failed; a retry waits for the in-flight timeout"
            );
        }
    }
}

/// Events per page when searching the log for a taken-over key's events.
const SEARCH_PAGE: usize = 1_000;

/// What earlier requests with `key` by `actor_id` committed after
/// `earlier.after`, up to `head` (read before the takeover): the position
/// of the last such event and the streams written, in log order; `None`
/// when there is none.
async fn committed_earlier(
    store: &dyn EventStore,
    actor_id: &str,
    key: &IdempotencyKey,
    earlier: Earlier,
    head: Option<Position>,
) -> Result<Option<(Position, Vec<String>)>, StoreError> {
    let Some(head) = head else {
        return Ok(None);
    };
    let mut after = earlier.after;
    let mut last = None;
    let mut streams: Vec<String> = Vec::new();
    while after.is_none_or(|a| a < head) {
        let page = store.read_all(after, SEARCH_PAGE).await?;
        let Some(end) = page.last() else { break };
        after = Some(end.position);
        for e in page.iter().filter(|e| e.position <= head) {
            if e.metadata.idempotency_key.as_deref() == Some(key.as_str())
                && e.metadata.actor.id == actor_id
            {
                last = Some(e.position);
                if !streams.iter().any(|s| s == e.stream_id.as_str()) {
                    streams.push(e.stream_id.as_str().to_string());
                }
            }
        }
    }
    Ok(last.map(|p| (p, streams)))
}

/// Whether `BASKETRY_FAULT=exit_after_append` is set: a crash-test hook
/// that ends the process, as abruptly as a SIGKILL, right after a command
/// with an `Idempotency-Key` succeeded and before its response is recorded
/// (see docs/adr/0012-idempotency-fenced-by-the-log.md). Does nothing when
/// the variable is unset or has any other value.
fn fault_exit_after_append() -> bool {
    static FAULT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAULT.get_or_init(|| std::env::var("BASKETRY_FAULT").is_ok_and(|v| v == "exit_after_append"))
}

/// A response in parts, so it can be both stored for replay and sent.
struct Rendered {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body to keep for replays when it differs from `body`
    /// ([`Reply::once`]).
    replay_body: Option<Vec<u8>>,
    /// The answer tells the client to retry: it is never kept for replays.
    retryable: bool,
}

impl Rendered {
    fn of(outcome: Result<Reply, ApiError>) -> Self {
        match outcome {
            Ok(reply) => {
                let mut headers =
                    vec![("content-type".to_string(), "application/json".to_string())];
                if let Some(p) = reply.position {
                    headers.push((CONSISTENCY_TOKEN.to_string(), consistency_token(p)));
                }
                let replay_body = match &reply.body {
                    Value::Object(map) if !reply.once.is_empty() => {
                        let mut kept = map.clone();
                        for member in &reply.once {
                            kept.remove(*member);
                        }
                        Some(Value::Object(kept).to_string().into_bytes())
                    }
                    _ => None,
                };
                Self {
                    status: reply.status,
                    headers,
                    body: reply.body.to_string().into_bytes(),
                    replay_body,
                    retryable: false,
                }
            }
            Err(e) => {
                let (status, headers, body) = e.problem();
                Self {
                    status,
                    headers: headers
                        .into_iter()
                        .map(|(n, v)| (n.to_string(), v))
                        .collect(),
                    body: body.into_bytes(),
                    replay_body: None,
                    retryable: e.tells_to_retry(),
                }
            }
        }
    }

    fn into_response(self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            response.insert_header((name.as_str(), value.as_str()));
        }
        response.body(self.body)
    }
}

#[cfg(test)]
mod tests;
