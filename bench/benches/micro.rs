//! Micro-benchmarks of the hot pure functions: sealing an event into the
//! hash chain, its canonical JSON, the revenue split, and deciding a
//! subscribe. `cargo bench -p basketry-bench`.

use basketry_domain::event::Aggregate;
use basketry_domain::ids::{SubscriptionId, UserId};
use basketry_domain::money::{split, BasisPoints};
use basketry_domain::subscription::{
    BrokerAllocation, SubscribeToTemplate, SubscriptionAggregate, SubscriptionCommand,
    SubscriptionState,
};
use basketry_domain::values::Email;
use basketry_store::chain::{canonical_form, seal, GENESIS_HASH};
use basketry_store::{Actor, EventMetadata, NewEvent, NewMetadata, Position, Revision, StreamId};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;
use uuid::Uuid;

fn event() -> NewEvent {
    NewEvent {
        event_id: Uuid::from_u128(0x0193_4b2e_7c1a_7d3e_9f00_5a1b_2c3d_4e5f),
        event_type: "SubscribedToTemplate".into(),
        schema_version: 1,
        data: json!({
            "subscription_id": "01934b2e-7c1a-7d3e-9f00-5a1b2c3d4e60",
            "template_id": "01934b2e-7c1a-7d3e-9f00-5a1b2c3d4e5f",
            "user_email": "customer@example.com",
            "broker_allocations": [{"broker_id": "zebu", "client_id": "C000001",
                "lot_multiplier": "1.50", "priority": 1, "max_lots_per_order": 50}],
            "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
        }),
        metadata: NewMetadata {
            actor: Actor {
                kind: "partner".into(),
                id: "01934b2e-0000-7000-8000-000000000001".into(),
            },
            correlation_id: Uuid::from_u128(7),
            causation_id: None,
            idempotency_key: None,
        },
    }
}

fn chain(c: &mut Criterion) {
    let stream = StreamId::parse("subscription-01934b2e-7c1a-7d3e-9f00-5a1b2c3d4e60")
        .expect("a valid stream name");
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-21T09:15:00.123456Z")
        .expect("a valid time")
        .to_utc();
    let e = event();
    c.bench_function("chain::seal (one event)", |b| {
        b.iter(|| {
            seal(
                &stream,
                Revision(3),
                Position::sequence(42),
                GENESIS_HASH,
                at,
                black_box(e.clone()),
            )
        })
    });
    let metadata = EventMetadata {
        actor: e.metadata.actor.clone(),
        correlation_id: e.metadata.correlation_id,
        causation_id: None,
        idempotency_key: None,
        recorded_at: at,
        prev_hash: GENESIS_HASH.into(),
        hash: String::new(),
    };
    c.bench_function("chain::canonical_form", |b| {
        b.iter(|| {
            canonical_form(
                &stream,
                Revision(3),
                &e.event_id,
                &e.event_type,
                1,
                black_box(&e.data),
                &metadata,
            )
        })
    });
}

fn money(c: &mut Criterion) {
    let bps = BasisPoints::new(3_000).expect("30 %");
    c.bench_function("money::split", |b| {
        b.iter(|| split(black_box(99_900), black_box(bps)))
    });
}

fn decide(c: &mut Criterion) {
    let email = Email::parse("customer@example.com").expect("a valid e-mail");
    let user_id = UserId::from_email(&email);
    let command = SubscribeToTemplate {
        actor: serde_json::from_value(json!({"kind": "user", "user_id": user_id}))
            .expect("an actor"),
        subscription_id: SubscriptionId::from_uuid(Uuid::from_u128(1)),
        user_id,
        user_email: email,
        template: serde_json::from_value(json!({
            "template_id": "01934b2e-7c1a-7d3e-9f00-5a1b2c3d4e5f",
            "name": "Short call spread",
            "enabled": true,
            "visibility": "PUBLIC",
            "pricing": {"type": "PAID", "monthly_fee": 99_900, "currency": "INR"},
            "revision": 2,
        }))
        .expect("template terms"),
        partner: None,
        allocations: BrokerAllocation::parse_list(
            &[serde_json::from_value(json!({
                "broker_id": "zebu", "client_id": "C000001", "lot_multiplier": "1.5", "priority": 1
            }))
            .expect("an allocation")],
            || basketry_domain::ids::AllocationId::from_uuid(Uuid::from_u128(2)),
        )
        .expect("a valid allocation"),
        now: chrono::DateTime::parse_from_rfc3339("2026-11-21T09:15:00Z")
            .expect("a valid time")
            .to_utc(),
    };
    let state = SubscriptionState::default();
    c.bench_function("subscription decide (subscribe, PAID)", |b| {
        b.iter(|| {
            SubscriptionAggregate::decide(
                black_box(&state),
                SubscriptionCommand::SubscribeToTemplate(command.clone()),
            )
        })
    });
}

criterion_group!(benches, chain, money, decide);
criterion_main!(benches);
