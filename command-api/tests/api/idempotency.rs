//! The `Idempotency-Key` protocol when its own bookkeeping fails: a
//! response that cannot be recorded after the events committed, a claim
//! taken over after the in-flight timeout, and errors that tell the client
//! to retry (docs/adr/0012-idempotency-fenced-by-the-log.md). The faults
//! come from wrappers around the app's real stores, on SQLite and (with
//! `BASKETRY_TEST_POSTGRES_URL`) PostgreSQL.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use basketry_command_api::limits::{
    Begin, Claim, Completion, IdempotencyError, IdempotencyStore, StoredResponse,
};
use basketry_store::{AppendError, ExpectedRevision, Position, StoreError, StreamId};
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use basketry_test_support::stores::{Intercepted, StoreHooks};

use crate::helpers::{basket_body, server, spawn_with, Backend, Resp, TestApp};

/// Faults to inject, switched on and off by the test.
#[derive(Default)]
struct Faults {
    /// `complete` fails as if the idempotency database went away.
    fail_complete: AtomicBool,
    /// `abandon` fails likewise.
    fail_abandon: AtomicBool,
    /// Appends still to be refused with a conflict.
    conflicts: AtomicUsize,
    /// Appends fail as if the event store went away.
    fail_append: AtomicBool,
}

struct FaultyIdempotency {
    inner: Arc<dyn IdempotencyStore>,
    faults: Arc<Faults>,
}

#[async_trait]
impl IdempotencyStore for FaultyIdempotency {
    async fn begin(
        &self,
        principal: &str,
        key: &basketry_http::IdempotencyKey,
        request_fingerprint: &str,
        head: Option<Position>,
        now: DateTime<Utc>,
    ) -> Result<Begin, IdempotencyError> {
        self.inner
            .begin(principal, key, request_fingerprint, head, now)
            .await
    }

    async fn complete(
        &self,
        principal: &str,
        key: &basketry_http::IdempotencyKey,
        claim: &Claim,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<Completion, IdempotencyError> {
        if self.faults.fail_complete.load(Ordering::SeqCst) {
            return Err(IdempotencyError::Unavailable("injected fault".into()));
        }
        self.inner
            .complete(principal, key, claim, response, now)
            .await
    }

    async fn abandon(
        &self,
        principal: &str,
        key: &basketry_http::IdempotencyKey,
        claim: &Claim,
    ) -> Result<(), IdempotencyError> {
        if self.faults.fail_abandon.load(Ordering::SeqCst) {
            return Err(IdempotencyError::Unavailable("injected fault".into()));
        }
        self.inner.abandon(principal, key, claim).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, IdempotencyError> {
        self.inner.purge_expired(now).await
    }
}

/// The event store's faults: appends refused as conflicts or as an outage.
#[async_trait]
impl StoreHooks for Faults {
    async fn before_append(
        &self,
        _stream: &StreamId,
        expected: ExpectedRevision,
    ) -> Result<(), AppendError> {
        if self.fail_append.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected fault".into()).into());
        }
        let refuse = self
            .conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refuse {
            return Err(AppendError::Conflict {
                expected,
                actual: None,
            });
        }
        Ok(())
    }
}

/// The app on `backend` with both stores behind `faults`.
async fn faulty_app(backend: Backend) -> (TestApp, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let (f1, f2) = (Arc::clone(&faults), Arc::clone(&faults));
    let app = spawn_with(
        server(backend)
            .wrap_event_store(move |inner| Intercepted::wrap(inner, f1))
            .wrap_idempotency(move |inner| Arc::new(FaultyIdempotency { inner, faults: f2 })),
    )
    .await;
    (app, faults)
}

/// Past the default in-flight timeout (60 s) of every claim made so far.
const PAST_IN_FLIGHT_TIMEOUT: TimeDelta = TimeDelta::seconds(61);

async fn keyed(app: &TestApp, method: Method, path: &str, body: Value, key: &str) -> Resp {
    app.send(
        method,
        path,
        &app.admin(),
        Some(body),
        &[("Idempotency-Key", key)],
    )
    .await
}

fn partner_body() -> Value {
    json!({
        "partner_id": "ZEBU",
        "partner_name": "Zebu Broking",
        "partner_type": "BROKER",
        "broker_id": "zebu",
        "revenue_share": {"platform_percentage": 70, "partner_percentage": 30},
    })
}

fn subscribe_body(template: &str) -> Value {
    json!({"template_id": template, "user_email": "ravi@example.com",
           "broker_client_id": "C1", "auto_link_broker": true, "lot_multiplier": 1})
}

// ---- 1. a failed completion still answers the committed result ----

async fn a_failed_completion_still_answers_the_committed_result(backend: Backend) {
    let (app, faults) = faulty_app(backend).await;
    faults.fail_complete.store(true, Ordering::SeqCst);
    let created = keyed(
        &app,
        Method::POST,
        "/admin/partner-api-keys",
        partner_body(),
        "create-zebu",
    )
    .await;
    assert_eq!(
        created.status, 201,
        "the partner was created: {}",
        created.text
    );
    let secret = created.body["api_secret"].as_str().unwrap_or_default();
    assert!(
        !secret.is_empty(),
        "the new secret is shown: {}",
        created.text
    );
    assert!(created.header("x-consistency-token").is_some());
    assert_eq!(app.events("PartnerRegistered").await.len(), 1);
}

#[tokio::test]
async fn a_failed_completion_still_answers_the_committed_result_sqlite() {
    a_failed_completion_still_answers_the_committed_result(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn a_failed_completion_still_answers_the_committed_result_postgres() {
    a_failed_completion_still_answers_the_committed_result(Backend::Postgres).await;
}

// ---- 2. a committed command is never run twice for one key ----

async fn a_taken_over_key_whose_command_committed_is_not_run_again(backend: Backend) {
    let (app, faults) = faulty_app(backend).await;
    let template = app.paid_template().await;
    let (zebu, _) = app.partner("ZEBU", &[]).await;
    let subscribe = |key: &'static str| {
        let zebu = zebu.clone();
        let (app, body) = (&app, subscribe_body(&template));
        async move {
            app.send(
                Method::POST,
                "/partner/marketplace/subscribe",
                &zebu,
                Some(body),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };

    // The subscription commits; its response is never recorded (as if the
    // instance died between the append and the completion).
    faults.fail_complete.store(true, Ordering::SeqCst);
    let first = subscribe("order-42").await;
    faults.fail_complete.store(false, Ordering::SeqCst);
    let subscribed = app.events("SubscribedToTemplate").await;
    assert_eq!(subscribed.len(), 1, "{}", first.text);
    let stream = subscribed[0].stream_id.as_str().to_string();

    // Within the in-flight timeout the key is still taken.
    subscribe("order-42")
        .await
        .assert_problem(409, "idempotency_request_in_progress");

    // After it, the retry takes the key over, finds the committed events and
    // says so instead of subscribing again.
    app.clock.advance(PAST_IN_FLIGHT_TIMEOUT);
    let retry = subscribe("order-42").await;
    retry.assert_problem(409, "idempotency_key_committed");
    // The answer names what the first request wrote: its last event's
    // position and its streams (the customer's reservation and the
    // subscription).
    let written: Vec<_> = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e.metadata.idempotency_key.as_deref() == Some("order-42"))
        .collect();
    let last = written.last().expect("the first request's events").position;
    let token = retry.body["consistency_token"].as_str().unwrap_or_default();
    assert_eq!(
        token,
        format!("{}.{}", last.commit, last.prepare),
        "{}",
        retry.text
    );
    assert_eq!(retry.header("x-consistency-token"), Some(token));
    let mut streams: Vec<&str> = Vec::new();
    for e in &written {
        if !streams.contains(&e.stream_id.as_str()) {
            streams.push(e.stream_id.as_str());
        }
    }
    assert!(streams.contains(&stream.as_str()), "{streams:?}");
    assert_eq!(retry.body["streams"], json!(streams), "{}", retry.text);
    assert_eq!(app.events("SubscribedToTemplate").await.len(), 1);
    assert_eq!(app.events("SubscriptionCharged").await.len(), 1);

    // That answer is now the key's record, replayed like any other.
    let again = subscribe("order-42").await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, retry.body);
}

#[tokio::test]
async fn a_taken_over_key_whose_command_committed_is_not_run_again_sqlite() {
    a_taken_over_key_whose_command_committed_is_not_run_again(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn a_taken_over_key_whose_command_committed_is_not_run_again_postgres() {
    a_taken_over_key_whose_command_committed_is_not_run_again(Backend::Postgres).await;
}

async fn a_taken_over_basket_creation_does_not_make_a_second_basket(backend: Backend) {
    let (app, faults) = faulty_app(backend).await;
    faults.fail_complete.store(true, Ordering::SeqCst);
    let first = keyed(&app, Method::POST, "/baskets", basket_body(), "basket-1").await;
    assert_eq!(first.status, 201, "{}", first.text);
    faults.fail_complete.store(false, Ordering::SeqCst);
    app.clock.advance(PAST_IN_FLIGHT_TIMEOUT);
    let retry = keyed(&app, Method::POST, "/baskets", basket_body(), "basket-1").await;
    retry.assert_problem(409, "idempotency_key_committed");
    let basket = first.body["basket_id"].as_str().expect("basket_id");
    assert_eq!(retry.body["streams"], json!([format!("basket-{basket}")]));
    assert_eq!(app.events("BasketCreated").await.len(), 1, "one basket");
}

#[tokio::test]
async fn a_taken_over_basket_creation_does_not_make_a_second_basket_sqlite() {
    a_taken_over_basket_creation_does_not_make_a_second_basket(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn a_taken_over_basket_creation_does_not_make_a_second_basket_postgres() {
    a_taken_over_basket_creation_does_not_make_a_second_basket(Backend::Postgres).await;
}

async fn a_taken_over_key_whose_command_never_committed_runs(backend: Backend) {
    let (app, faults) = faulty_app(backend).await;
    // The event store is down and the key cannot be released either: the
    // claim is left in flight with nothing committed.
    faults.fail_append.store(true, Ordering::SeqCst);
    faults.fail_abandon.store(true, Ordering::SeqCst);
    let first = keyed(&app, Method::POST, "/baskets", basket_body(), "basket-2").await;
    first.assert_problem(503, "service_unavailable");
    faults.fail_append.store(false, Ordering::SeqCst);
    faults.fail_abandon.store(false, Ordering::SeqCst);
    app.clock.advance(PAST_IN_FLIGHT_TIMEOUT);
    let retry = keyed(&app, Method::POST, "/baskets", basket_body(), "basket-2").await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(app.events("BasketCreated").await.len(), 1);
}

#[tokio::test]
async fn a_taken_over_key_whose_command_never_committed_runs_sqlite() {
    a_taken_over_key_whose_command_never_committed_runs(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn a_taken_over_key_whose_command_never_committed_runs_postgres() {
    a_taken_over_key_whose_command_never_committed_runs(Backend::Postgres).await;
}

// ---- 4. retryable errors are not stored ----

async fn a_concurrent_modification_is_not_replayed(backend: Backend) {
    let (app, faults) = faulty_app(backend).await;
    // Every attempt of the first request loses its race.
    faults.conflicts.store(
        basketry_command_api::command::MAX_ATTEMPTS,
        Ordering::SeqCst,
    );
    let first = keyed(&app, Method::POST, "/baskets", basket_body(), "basket-3").await;
    first.assert_problem(409, "concurrent_modification");
    // The client is told to retry, and the retry runs.
    let retry = keyed(&app, Method::POST, "/baskets", basket_body(), "basket-3").await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(retry.header("idempotent-replayed"), None);
    assert_eq!(app.events("BasketCreated").await.len(), 1);

    // A 503 likewise.
    faults.fail_append.store(true, Ordering::SeqCst);
    let down = keyed(&app, Method::POST, "/baskets", basket_body(), "basket-4").await;
    down.assert_problem(503, "service_unavailable");
    faults.fail_append.store(false, Ordering::SeqCst);
    let retry = keyed(&app, Method::POST, "/baskets", basket_body(), "basket-4").await;
    assert_eq!(retry.status, 201, "{}", retry.text);
    assert_eq!(app.events("BasketCreated").await.len(), 2);
}

#[tokio::test]
async fn a_concurrent_modification_is_not_replayed_sqlite() {
    a_concurrent_modification_is_not_replayed(Backend::Sqlite).await;
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
async fn a_concurrent_modification_is_not_replayed_postgres() {
    a_concurrent_modification_is_not_replayed(Backend::Postgres).await;
}
