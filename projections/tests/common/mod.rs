//! Test helpers: throwaway read databases (SQLite, and PostgreSQL through
//! `basketry_test_support::postgres`), an event log written through the
//! domain's deciders, and table snapshots.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basketry_domain::basket::{
    self, BasketAggregate, BasketInput, CreateBasket, MarketplaceConfigInput, PublishTemplate,
};
use basketry_domain::partner::{
    self, ApiKeyToken, IssueApiKey, PartnerAggregate, RegisterPartner, RegisterPartnerInput,
    SecretHash,
};
use basketry_domain::subscription::{
    self, AllocationInput, BrokerAllocation, CancelSubscription, PartnerAttribution,
    SubscribeToTemplate, SubscriptionAggregate,
};
use basketry_domain::user_link::{self, ReserveTemplateSubscription, UserLinkAggregate};
use basketry_domain::{
    Actor, Aggregate, AllocationId, ApiKeyId, BasketId, DomainEvent, Email, PartnerId, StrategyId,
    SubscriptionId, TemplateId, TemplateTerms, UserId,
};
use basketry_projections::{ProjectorRuntime, ProjectorStatus};
use basketry_store::{
    AppendError, EventStore, ExpectedRevision, NewEvent, NewMetadata, Position, Revision, StreamId,
};
use basketry_test_support::postgres::TestDatabase;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

// ---------------------------------------------------------------- databases

/// The read database backends every test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A read database that exists for one test.
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    pub pool: AnyPool,
    /// Keeps the SQLite file alive.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop.
    pg: Option<TestDatabase>,
}

impl TestDb {
    /// A fresh, migrated read database.
    pub async fn create(kind: Kind) -> TestDb {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("read.db").display());
                let pool = basketry_projections::db::open(&url).await.unwrap();
                TestDb {
                    kind,
                    url,
                    pool,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Kind::Postgres => {
                let db = TestDatabase::create()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let url = db.url().to_string();
                let pool = basketry_projections::db::open(&url).await.unwrap();
                TestDb {
                    kind,
                    url,
                    pool,
                    _dir: None,
                    pg: Some(db),
                }
            }
        }
    }

    /// Closes the pool and drops a PostgreSQL database.
    pub async fn destroy(self) {
        self.pool.close().await;
        if let Some(db) = self.pg {
            db.drop_now().await.unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Generates `mod $name { sqlite, postgres }` running `async fn $name(&TestDb)`
/// against a fresh database of each kind, dropping it afterwards even when
/// the test fails. The PostgreSQL variant is reported as ignored unless
/// `BASKETRY_TEST_POSTGRES_URL` was set when the tests were built.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use super::common::{Kind, TestDb};

            async fn on(kind: Kind) {
                let db = TestDb::create(kind).await;
                let outcome = futures::FutureExt::catch_unwind(
                    std::panic::AssertUnwindSafe(super::$name(&db)),
                )
                .await;
                db.destroy().await;
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                on(Kind::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
            async fn postgres() {
                on(Kind::Postgres).await;
            }
        }
    )+};
}

// ---------------------------------------------------------------- snapshots

/// Every row of every table, each table's rows sorted: what "identical read
/// models" means.
pub type Snapshot = BTreeMap<String, Vec<Vec<Value>>>;

/// The tables the projectors write, plus the checkpoints.
pub fn projected_tables() -> Vec<&'static str> {
    let mut tables: Vec<&'static str> = basketry_projections::projectors::all()
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    tables.push("projector_checkpoints");
    tables
}

/// A snapshot of `tables`, values read portably (integers, text, NULL).
pub async fn snapshot(pool: &AnyPool, tables: &[&str]) -> Snapshot {
    let mut out = Snapshot::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(pool)
            .await
            .unwrap();
        let mut values: Vec<Vec<Value>> = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                            json!(v)
                        } else {
                            json!(row.try_get::<Option<String>, _>(i).unwrap())
                        }
                    })
                    .collect()
            })
            .collect();
        values.sort_by_key(|row| serde_json::to_string(row).unwrap());
        out.insert((*table).to_string(), values);
    }
    out
}

/// Asserts two snapshots are equal, naming the first table that differs.
#[track_caller]
pub fn assert_same(left: &Snapshot, right: &Snapshot, what: &str) {
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        right.keys().collect::<Vec<_>>()
    );
    for (table, rows) in left {
        assert_eq!(
            rows.len(),
            right[table].len(),
            "{what}: {table} has a different number of rows"
        );
        assert_eq!(rows, &right[table], "{what}: {table} differs");
    }
}

/// One row of a query as a JSON object, for readable assertions.
pub async fn row(pool: &AnyPool, sql: &str, key: &str) -> serde_json::Map<String, Value> {
    let row = sqlx::query(sql).bind(key).fetch_one(pool).await.unwrap();
    let mut map = serde_json::Map::new();
    for (i, column) in sqlx::Row::columns(&row).iter().enumerate() {
        let name = sqlx::Column::name(column).to_string();
        let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            json!(v)
        } else {
            json!(row.try_get::<Option<String>, _>(i).unwrap())
        };
        map.insert(name, value);
    }
    map
}

/// A single integer from a query.
pub async fn count(pool: &AnyPool, sql: &str) -> i64 {
    sqlx::query(sql)
        .fetch_one(pool)
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

/// Polls until every projector of `runtime` has caught up with the head of
/// the log, or panics after `timeout`.
pub async fn wait_caught_up(runtime: &ProjectorRuntime, timeout: Duration) -> Vec<ProjectorStatus> {
    let started = Instant::now();
    loop {
        let status = runtime.status().await.unwrap();
        if status
            .iter()
            .all(|s| s.lag_events == 0 && s.position.is_some())
        {
            return status;
        }
        assert!(
            started.elapsed() < timeout,
            "projectors did not catch up within {timeout:?}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- the log

/// Parses an RFC 3339 timestamp.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A new UUIDv7.
pub fn v7() -> Uuid {
    Uuid::now_v7()
}

/// An event store written through the domain's deciders, as the command API
/// does: load the stream, decide, append at the loaded revision.
#[derive(Clone)]
pub struct Log {
    pub store: Arc<dyn EventStore>,
}

impl Log {
    /// A fresh in-memory store.
    pub fn memory() -> Log {
        Log {
            store: Arc::new(basketry_store::memory::MemoryStore::new()),
        }
    }

    /// A fresh SQLite store in `dir`.
    pub async fn sqlite(dir: &std::path::Path) -> Log {
        Log {
            store: Arc::new(
                basketry_store::sqlite::SqliteStore::open(dir.join("events.db"))
                    .await
                    .unwrap(),
            ),
        }
    }

    /// The state of `stream` folded as `A`, with its last revision.
    pub async fn load<A: Aggregate>(&self, stream: &str) -> (A::State, Option<Revision>) {
        let stream = StreamId::parse(stream).unwrap();
        let recorded = self
            .store
            .read_stream(&stream, Revision::START)
            .await
            .unwrap();
        let mut state = A::State::default();
        let mut revision = None;
        for r in recorded {
            let event = A::Event::from_stored(&r.event_type, r.schema_version, r.data).unwrap();
            state = A::evolve(state, &event);
            revision = Some(r.revision);
        }
        (state, revision)
    }

    /// Decides `command` on `stream` and appends the events; retries on a
    /// concurrency conflict. Panics when the domain refuses.
    pub async fn exec<A>(&self, stream: &str, command: impl Into<A::Command>) -> Vec<A::Event>
    where
        A: Aggregate,
        A::Command: Clone,
    {
        let command = command.into();
        let id = StreamId::parse(stream).unwrap();
        for _ in 0..50 {
            let (state, revision) = self.load::<A>(stream).await;
            let events = A::decide(&state, command.clone())
                .unwrap_or_else(|e| panic!("{stream}: the domain refused: {e:?}"));
            if events.is_empty() {
                return events;
            }
            let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            match self.store.append(&id, expected, new_events(&events)).await {
                Ok(_) => return events,
                Err(AppendError::Conflict { .. }) => continue,
                Err(e) => panic!("{stream}: append failed: {e}"),
            }
        }
        panic!("{stream}: too many concurrency conflicts")
    }

    /// Appends one raw event (for unknown types and corrupt data).
    pub async fn append_raw(&self, stream: &str, event_type: &str, version: u32, data: Value) {
        let event = NewEvent {
            event_id: v7(),
            event_type: event_type.into(),
            schema_version: version,
            data,
            metadata: metadata(),
        };
        self.store
            .append(
                &StreamId::parse(stream).unwrap(),
                ExpectedRevision::Any,
                vec![event],
            )
            .await
            .unwrap();
    }

    /// The head of the log.
    pub async fn head(&self) -> Position {
        self.store.head().await.unwrap().unwrap()
    }

    /// How many events the log holds (positions are a sequence on the
    /// memory and SQLite stores).
    pub async fn len(&self) -> u64 {
        self.store.head().await.unwrap().map_or(0, |p| p.commit)
    }
}

fn metadata() -> NewMetadata {
    NewMetadata {
        actor: basketry_store::Actor {
            kind: "system".into(),
            id: "projections-tests".into(),
        },
        correlation_id: v7(),
        causation_id: None,
        idempotency_key: None,
    }
}

/// Domain events as the store takes them.
pub fn new_events<E: DomainEvent>(events: &[E]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent {
            event_id: v7(),
            event_type: e.event_type().into(),
            schema_version: e.schema_version(),
            data: e.to_data(),
            metadata: metadata(),
        })
        .collect()
}

// ---------------------------------------------------------------- scenarios

/// A person by e-mail.
pub fn person(email: &str) -> (UserId, Email) {
    let email = Email::parse(email).unwrap();
    (UserId::from_email(&email), email)
}

/// A strategy request body.
pub fn strategy_input(name: &str, entry: &str) -> Value {
    json!({
        "name": name,
        "underlying": "NIFTY",
        "product": "MIS",
        "entry_time": entry,
        "exit_time": "15:15",
        "trading_days": ["MON", "WED", "FRI"],
        "stop_loss_pct": 25,
        "legs": [
            {"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": 1},
            {"action": "SELL", "option_type": "PE", "strike": "ATM", "expiry": "WEEKLY", "lots": 1}
        ]
    })
}

/// Creates a basket owned by `actor` from a request body.
pub async fn create_basket(log: &Log, actor: Actor, body: Value, now: DateTime<Utc>) -> BasketId {
    let basket_id = BasketId::from_uuid(v7());
    let input: BasketInput = serde_json::from_value(body).unwrap();
    let command = CreateBasket::from_input(
        actor,
        basket_id,
        &input,
        || StrategyId::from_uuid(v7()),
        now,
    )
    .unwrap();
    log.exec::<BasketAggregate>(&basket::stream_name(&basket_id), command)
        .await;
    basket_id
}

/// Publishes a basket with a marketplace config request body.
pub async fn publish(
    log: &Log,
    admin: Actor,
    basket_id: BasketId,
    config: Value,
    now: DateTime<Utc>,
) {
    let input: MarketplaceConfigInput = serde_json::from_value(config).unwrap();
    let command = PublishTemplate::from_input(admin, &input, now).unwrap();
    log.exec::<BasketAggregate>(&basket::stream_name(&basket_id), command)
        .await;
}

/// An admin's template with one strategy, published with `pricing`.
pub async fn template(log: &Log, name: &str, pricing: Value, now: DateTime<Utc>) -> BasketId {
    let admin = admin();
    let id = create_basket(
        log,
        admin.clone(),
        json!({"name": name, "category": "INCOME", "strategies": [strategy_input("Straddle", "09:20")]}),
        now,
    )
    .await;
    publish(
        log,
        admin,
        id,
        json!({"pricing": pricing, "tags": ["WEEKLY"]}),
        now,
    )
    .await;
    id
}

/// The admin who owns the templates.
pub fn admin() -> Actor {
    Actor::Admin {
        user_id: person("ops@basketry.dev").0,
    }
}

/// The template's terms now, as the subscribe handler reads them.
pub async fn terms(log: &Log, template_id: TemplateId) -> TemplateTerms {
    let (state, _) = log
        .load::<BasketAggregate>(&basket::stream_name(&template_id))
        .await;
    state.template_terms().unwrap()
}

/// A partner with one key: (partner id, key id, broker id).
pub async fn partner_with_key(
    log: &Log,
    partner_id: &str,
    partner_pct: u32,
    now: DateTime<Utc>,
) -> (PartnerId, ApiKeyId) {
    let input: RegisterPartnerInput = serde_json::from_value(json!({
        "partner_id": partner_id,
        "partner_name": format!("{partner_id} Securities"),
        "partner_type": "BROKER",
        "broker_id": partner_id,
        "revenue_share": {"platform_percentage": 100 - partner_pct, "partner_percentage": partner_pct},
    }))
    .unwrap();
    let register = RegisterPartner::from_input(admin(), &input, now).unwrap();
    let pid = register.partner_id.clone();
    log.exec::<PartnerAggregate>(&partner::stream_name(&pid), register)
        .await;
    let key = issue_key(log, &pid, now).await;
    (pid, key)
}

/// A secret hash as the command API stores it (the tests check it never
/// reaches a read model).
pub const SECRET_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

/// Issues another key to a partner.
pub async fn issue_key(log: &Log, partner_id: &PartnerId, now: DateTime<Utc>) -> ApiKeyId {
    let api_key_id = ApiKeyId::from_uuid(v7());
    let random: String = api_key_id.to_string().replace('-', "");
    let command = IssueApiKey {
        actor: admin(),
        api_key_id,
        key: ApiKeyToken::parse(&format!("pk_{}_live_{random}", partner_id.key_segment())).unwrap(),
        secret_hash: SecretHash::parse(SECRET_HASH).unwrap(),
        now,
    };
    log.exec::<PartnerAggregate>(&partner::stream_name(partner_id), command)
        .await;
    api_key_id
}

/// Who subscribes, and how.
pub enum Via {
    /// The user themself.
    Direct,
    /// A partner with its key, revenue share and an auto-linked allocation
    /// for this client id.
    Partner {
        partner_id: PartnerId,
        api_key_id: ApiKeyId,
        partner_bps: u32,
        client_id: String,
    },
}

/// Subscribes `email` to a template as the command API does: reserve in the
/// user's stream, then write the subscription (and its first charge).
pub async fn subscribe(
    log: &Log,
    email: &str,
    template_id: TemplateId,
    via: Via,
    now: DateTime<Utc>,
) -> SubscriptionId {
    let (user_id, user_email) = person(email);
    let subscription_id = SubscriptionId::from_uuid(v7());
    log.exec::<UserLinkAggregate>(
        &user_link::stream_name(&user_id),
        ReserveTemplateSubscription {
            user_id,
            template_id,
            subscription_id,
            now,
        },
    )
    .await;
    let (actor, partner, allocations) = match via {
        Via::Direct => (Actor::User { user_id }, None, vec![]),
        Via::Partner {
            partner_id,
            api_key_id,
            partner_bps,
            client_id,
        } => {
            let allocations = BrokerAllocation::parse_list(
                &[AllocationInput {
                    broker_id: Some(partner_id.to_string()),
                    client_id: Some(client_id),
                    lot_multiplier: Some(serde_json::from_value(json!(2)).unwrap()),
                    priority: Some(1),
                    ..AllocationInput::default()
                }],
                || AllocationId::from_uuid(v7()),
            )
            .unwrap();
            (
                Actor::Partner {
                    partner_id: partner_id.clone(),
                    api_key_id,
                },
                Some(PartnerAttribution {
                    broker_id: basketry_domain::BrokerId::parse(partner_id.as_str()).unwrap(),
                    partner_id,
                    api_key_id,
                    partner_bps: basketry_domain::BasisPoints::new(partner_bps).unwrap(),
                }),
                allocations,
            )
        }
    };
    let command = SubscribeToTemplate {
        actor,
        subscription_id,
        user_id,
        user_email,
        template: terms(log, template_id).await,
        partner,
        allocations,
        now,
    };
    log.exec::<SubscriptionAggregate>(&subscription::stream_name(&subscription_id), command)
        .await;
    subscription_id
}

/// Cancels a subscription as the system.
pub async fn cancel(log: &Log, subscription_id: SubscriptionId, now: DateTime<Utc>) {
    log.exec::<SubscriptionAggregate>(
        &subscription::stream_name(&subscription_id),
        CancelSubscription {
            actor: Actor::System,
            reason: None,
            now,
        },
    )
    .await;
}

/// A marketplace of `subscribers` subscriptions to one PAID template, every
/// `cancel_every`-th cancelled, and a billing run a month later: a history
/// with many ledger lines and counter moves. Returns the template id.
pub async fn busy_marketplace(log: &Log, subscribers: usize, cancel_every: usize) -> TemplateId {
    let t0 = at("2026-03-01T09:00:00Z");
    let template_id = template(
        log,
        "Busy Template",
        json!({"type": "PAID", "monthly_fee": 49900, "currency": "INR"}),
        t0,
    )
    .await;
    let (partner_id, api_key_id) = partner_with_key(log, "BUSY", 30, t0).await;
    let mut subs = Vec::new();
    for i in 0..subscribers {
        let via = if i % 2 == 0 {
            Via::Direct
        } else {
            Via::Partner {
                partner_id: partner_id.clone(),
                api_key_id,
                partner_bps: 3000,
                client_id: format!("C{i}"),
            }
        };
        let now = t0 + TimeDelta::minutes(i as i64);
        let id = subscribe(log, &format!("user{i}@example.com"), template_id, via, now).await;
        if cancel_every > 0 && i % cancel_every == 0 {
            cancel(log, id, now + TimeDelta::seconds(30)).await;
        }
        subs.push(id);
    }
    for id in subs {
        log.exec::<SubscriptionAggregate>(
            &subscription::stream_name(&id),
            subscription::ChargeDue {
                as_of: at("2026-04-05T00:00:00Z"),
                partner_bps_now: None,
            },
        )
        .await;
    }
    template_id
}
