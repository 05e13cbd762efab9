//! The projections against real read databases: every test runs on SQLite
//! and on PostgreSQL (a throwaway database per test; reported as ignored
//! unless `BASKETRY_TEST_POSTGRES_URL` was set when the tests were built). Histories are written through the domain's deciders,
//! as the command API writes them.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use basketry_domain::basket::{
    self, AddStrategy, BasketAggregate, MarketplaceConfigInput, RemoveStrategy, ReplaceStrategy,
    Strategy, StrategyInput, UnpublishTemplate, UpdateBasket, UpdateBasketInput,
    UpdateMarketplaceConfig,
};
use basketry_domain::partner::{
    self, ApiKeyStatus, GracePeriodHours, PartnerAggregate, RevokeApiKey, RotateApiKey, SecretHash,
    SetApiKeyStatus, UpdatePartnerConfig, UpdatePartnerConfigInput,
};
use basketry_domain::subscription::{
    self, AllocationInput, BrokerAllocation, CancelSubscription, ChargeDue, PauseSubscription,
    ResumeSubscription, SetBrokerAllocations, SubscriptionAggregate,
};
use basketry_domain::{Actor, AllocationId, BasisPoints, Reason, StrategyId};
use basketry_projections::projectors;
use basketry_projections::runtime::checkpoints;
use basketry_projections::{
    DecodedEvent, FailingProjector, ProjectionError, Projector, ProjectorRuntime, RuntimeConfig,
};
use basketry_store::chain::format_timestamp;
use basketry_store::{Position, RecordedEvent, Revision, StreamId};
use common::*;
use serde_json::{json, Value};
use sqlx::AnyConnection;

on_every_backend!(
    realistic_flow_fills_every_read_model,
    subscriber_count_is_exact_after_200_concurrent_subscribes_and_cancels,
    rebuild_gives_the_live_rows_in_place_and_in_a_fresh_database,
    a_projector_killed_mid_batch_resumes_without_loss_or_duplication,
    a_failed_batch_moves_neither_rows_nor_checkpoint,
    a_live_runner_aborted_mid_batch_leaves_rows_and_checkpoint_together,
    the_live_runtime_retries_failed_batches_with_backoff,
    unknown_event_types_are_skipped_and_undecodable_known_ones_stop_the_projector,
    a_store_that_redelivers_an_event_is_refused_rather_than_applied_twice,
    the_live_runtime_picks_up_new_events_quickly_reports_lag_and_stops_gracefully,
    migrations_tolerate_other_components_migrations_in_the_same_database,
);

fn runtime(log: &Log, db: &TestDb, batch_size: usize) -> ProjectorRuntime {
    ProjectorRuntime::new(log.store.clone(), db.pool.clone(), projectors::all()).with_config(
        RuntimeConfig {
            batch_size,
            ..RuntimeConfig::default()
        },
    )
}

fn parse(text: &Value) -> Value {
    serde_json::from_str(text.as_str().unwrap()).unwrap()
}

fn strategy(id: StrategyId, name: &str, entry: &str) -> Strategy {
    let input: StrategyInput = serde_json::from_value(strategy_input(name, entry)).unwrap();
    Strategy::parse(id, &input).unwrap()
}

fn reason(text: &str) -> Option<Reason> {
    Some(Reason::parse(text).unwrap())
}

/// The first event of a stream.
async fn first_event(log: &Log, stream: &str) -> RecordedEvent {
    log.store
        .read_stream(&StreamId::parse(stream).unwrap(), Revision::START)
        .await
        .unwrap()
        .remove(0)
}

/// Every event of the log.
async fn whole_log(log: &Log) -> Vec<RecordedEvent> {
    log.store.read_all(None, usize::MAX).await.unwrap()
}

/// A clean run of `log` into a fresh database of the same kind.
async fn clean_run(log: &Log, kind: Kind) -> Snapshot {
    let fresh = TestDb::create(kind).await;
    runtime(log, &fresh, 500).catch_up().await.unwrap();
    let rows = snapshot(&fresh.pool, &projected_tables()).await;
    fresh.destroy().await;
    rows
}

// ---------------------------------------------------------------- the flow

async fn realistic_flow_fills_every_read_model(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::sqlite(dir.path()).await;
    let admin = admin();
    let (admin_id, _) = person("ops@basketry.dev");

    // An admin's basket through its whole life, then published and re-configured.
    let basket_id = create_basket(
        &log,
        admin.clone(),
        json!({
            "name": "Nifty Income",
            "description": "Weekly premium",
            "category": "INCOME",
            "strategies": [strategy_input("Iron Fly", "09:20"), strategy_input("Strangle", "10:00")],
        }),
        at("2026-01-05T09:00:00Z"),
    )
    .await;
    let stream = basket::stream_name(&basket_id);
    let (state, _) = log.load::<BasketAggregate>(&stream).await;
    let ids: Vec<StrategyId> = state
        .basket
        .unwrap()
        .strategies
        .iter()
        .map(|s| s.strategy_id)
        .collect();
    let update: UpdateBasketInput =
        serde_json::from_value(json!({"description": "Weekly premium, hedged"})).unwrap();
    log.exec::<BasketAggregate>(
        &stream,
        UpdateBasket::from_input(admin.clone(), &update, at("2026-01-05T10:00:00Z")).unwrap(),
    )
    .await;
    let butterfly = StrategyId::from_uuid(v7());
    log.exec::<BasketAggregate>(
        &stream,
        AddStrategy {
            actor: admin.clone(),
            strategy: strategy(butterfly, "Butterfly", "11:00"),
            now: at("2026-01-05T11:00:00Z"),
        },
    )
    .await;
    log.exec::<BasketAggregate>(
        &stream,
        ReplaceStrategy {
            actor: admin.clone(),
            strategy: strategy(ids[0], "Iron Fly v2", "09:25"),
            now: at("2026-01-05T12:00:00Z"),
        },
    )
    .await;
    log.exec::<BasketAggregate>(
        &stream,
        RemoveStrategy {
            actor: admin.clone(),
            strategy_id: ids[1],
            now: at("2026-01-05T13:00:00Z"),
        },
    )
    .await;
    publish(
        &log,
        admin.clone(),
        basket_id,
        json!({
            "visibility": "PUBLIC",
            "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
            "difficulty_level": "INTERMEDIATE",
            "tags": ["WEEKLY", "INCOME"],
            "category": "INCOME",
        }),
        at("2026-01-05T14:00:00Z"),
    )
    .await;
    let published_position = log.head().await.commit;
    let config: MarketplaceConfigInput = serde_json::from_value(
        json!({"difficulty_level": "ADVANCED", "tags": ["WEEKLY", "HEDGED"]}),
    )
    .unwrap();
    log.exec::<BasketAggregate>(
        &stream,
        UpdateMarketplaceConfig::from_input(admin.clone(), &config, at("2026-01-05T15:00:00Z"))
            .unwrap(),
    )
    .await;

    // A user's private basket, and a FREE template.
    let (bob, _) = person("bob@example.com");
    let bob_basket = create_basket(
        &log,
        Actor::User { user_id: bob },
        json!({"name": "Bob's momentum", "category": "MOMENTUM"}),
        at("2026-01-06T08:00:00Z"),
    )
    .await;
    let free = template(
        &log,
        "Free Hedge",
        json!({"type": "FREE"}),
        at("2026-01-06T09:00:00Z"),
    )
    .await;
    let free_first_publish = log.head().await.commit;

    // A broker partner with a key.
    let (zebu, k1) = partner_with_key(&log, "ZEBU", 30, at("2026-01-06T10:00:00Z")).await;

    // Subscriptions: direct to the PAID template, via the partner, and to the FREE one.
    let alice = subscribe(
        &log,
        "alice@example.com",
        basket_id,
        Via::Direct,
        at("2026-01-31T10:00:00Z"),
    )
    .await;
    let carol = subscribe(
        &log,
        "carol@example.com",
        basket_id,
        Via::Partner {
            partner_id: zebu.clone(),
            api_key_id: k1,
            partner_bps: 3000,
            client_id: "ZC123".into(),
        },
        at("2026-02-01T10:00:00Z"),
    )
    .await;
    let dave = subscribe(
        &log,
        "dave@example.com",
        free,
        Via::Direct,
        at("2026-02-01T11:00:00Z"),
    )
    .await;
    let (alice_id, _) = person("alice@example.com");
    let alice_stream = subscription::stream_name(&alice);
    let carol_stream = subscription::stream_name(&carol);
    log.exec::<SubscriptionAggregate>(
        &alice_stream,
        SetBrokerAllocations {
            actor: Actor::User { user_id: alice_id },
            allocations: BrokerAllocation::parse_list(
                &[AllocationInput {
                    broker_id: Some("ANGEL".into()),
                    client_id: Some("A1".into()),
                    lot_multiplier: Some(serde_json::from_value(json!("1.5")).unwrap()),
                    ..AllocationInput::default()
                }],
                || AllocationId::from_uuid(v7()),
            )
            .unwrap(),
            now: at("2026-02-02T09:00:00Z"),
        },
    )
    .await;
    log.exec::<SubscriptionAggregate>(
        &alice_stream,
        PauseSubscription {
            actor: Actor::User { user_id: alice_id },
            reason: reason("Vacation"),
            now: at("2026-02-10T09:00:00Z"),
        },
    )
    .await;

    // The partner's configuration changes, a second key, rotation, suspension.
    let partner_stream = partner::stream_name(&zebu);
    let change: UpdatePartnerConfigInput = serde_json::from_value(json!({
        "revenue_share": {"platform_percentage": 75, "partner_percentage": 25},
        "rate_limits": {"requests_per_minute": 200},
    }))
    .unwrap();
    log.exec::<PartnerAggregate>(
        &partner_stream,
        UpdatePartnerConfig::from_input(admin.clone(), &change, at("2026-02-15T09:00:00Z"))
            .unwrap(),
    )
    .await;
    let k2 = issue_key(&log, &zebu, at("2026-02-16T09:00:00Z")).await;
    log.exec::<PartnerAggregate>(
        &partner_stream,
        RotateApiKey {
            actor: admin.clone(),
            api_key_id: k1,
            new_secret_hash: SecretHash::parse(SECRET_HASH).unwrap(),
            grace_period: GracePeriodHours::NONE,
            now: at("2026-02-20T09:00:00Z"),
        },
    )
    .await;
    log.exec::<PartnerAggregate>(
        &partner_stream,
        SetApiKeyStatus {
            actor: admin.clone(),
            api_key_id: k2,
            status: ApiKeyStatus::Suspended,
            reason: reason("audit"),
            now: at("2026-02-21T09:00:00Z"),
        },
    )
    .await;

    // A billing run charges carol's second month at the share in force (25 %);
    // alice resumes after her paid period ended, so billing restarts.
    log.exec::<SubscriptionAggregate>(
        &carol_stream,
        ChargeDue {
            as_of: at("2026-03-02T00:00:00Z"),
            partner_bps_now: Some(BasisPoints::new(2500).unwrap()),
        },
    )
    .await;
    log.exec::<SubscriptionAggregate>(
        &alice_stream,
        ResumeSubscription {
            actor: Actor::User { user_id: alice_id },
            reason: None,
            partner_bps_now: None,
            now: at("2026-03-15T12:00:00Z"),
        },
    )
    .await;
    log.exec::<SubscriptionAggregate>(
        &carol_stream,
        CancelSubscription {
            actor: Actor::Partner {
                partner_id: zebu.clone(),
                api_key_id: k1,
            },
            reason: reason("Customer request"),
            now: at("2026-03-20T09:00:00Z"),
        },
    )
    .await;
    log.exec::<PartnerAggregate>(
        &partner_stream,
        RevokeApiKey {
            actor: admin.clone(),
            api_key_id: k1,
            reason: None,
            now: at("2026-03-25T09:00:00Z"),
        },
    )
    .await;
    // The FREE template is disabled, then published again.
    let free_stream = basket::stream_name(&free);
    log.exec::<BasketAggregate>(
        &free_stream,
        UnpublishTemplate {
            actor: admin.clone(),
            reason: reason("Refresh"),
            now: at("2026-03-26T09:00:00Z"),
        },
    )
    .await;
    let bob_template = basket::stream_name(&bob_basket);

    // Small batches, so the flow crosses many batch boundaries.
    let rt = runtime(&log, db, 7);
    rt.catch_up().await.unwrap();
    let pool = &db.pool;

    // ---- rm_baskets / rm_template_tags
    let b = row(
        pool,
        "SELECT * FROM rm_baskets WHERE basket_id = $1",
        &basket_id.to_string(),
    )
    .await;
    assert_eq!(b["owner_id"], json!(admin_id.to_string()));
    assert_eq!(b["owner_is_admin"], json!(1));
    assert_eq!(b["name"], json!("Nifty Income"));
    assert_eq!(b["description"], json!("Weekly premium, hedged"));
    assert_eq!(b["category"], json!("INCOME"));
    let strategies = parse(&b["strategies"]);
    let names: Vec<&str> = strategies
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Iron Fly v2", "Butterfly"]);
    assert_eq!(strategies[0]["strategy_id"], json!(ids[0].to_string()));
    assert_eq!(strategies[0]["entry_time"], json!("09:25"));
    assert_eq!(strategies[1]["strategy_id"], json!(butterfly.to_string()));
    assert_eq!(
        strategies[0],
        serde_json::to_value(strategy(ids[0], "Iron Fly v2", "09:25")).unwrap(),
        "strategies are kept in the events' own shape"
    );
    assert_eq!(b["strategy_count"], json!(2));
    assert_eq!(b["revision"], json!(7));
    assert_eq!(b["created_at"], json!("2026-01-05T09:00:00.000000Z"));
    assert_eq!(b["updated_at"], json!("2026-01-05T15:00:00.000000Z"));
    assert_eq!(b["is_template"], json!(1));
    assert_eq!(b["visibility"], json!("PUBLIC"));
    assert_eq!(b["pricing_type"], json!("PAID"));
    assert_eq!(b["monthly_fee"], json!(99900));
    assert_eq!(b["currency"], json!("INR"));
    assert_eq!(b["difficulty_level"], json!("ADVANCED"));
    assert_eq!(parse(&b["tags"]), json!(["WEEKLY", "HEDGED"]));
    assert_eq!(b["template_category"], json!("INCOME"));
    assert_eq!(b["published_at"], json!("2026-01-05T14:00:00.000000Z"));
    assert_eq!(b["published_position"], json!(published_position));
    assert_eq!(
        b["created_position"],
        json!(first_event(&log, &stream).await.position.commit)
    );
    assert_eq!(b["subscriber_count"], json!(1), "alice; carol cancelled");
    assert_eq!(b["performance_metrics"], Value::Null);
    let tags = snapshot(pool, &["rm_template_tags"]).await;
    let template_tags: Vec<&Vec<Value>> = tags["rm_template_tags"]
        .iter()
        .filter(|r| r[0] == json!(basket_id.to_string()))
        .collect();
    assert_eq!(
        template_tags,
        [
            &vec![json!(basket_id.to_string()), json!("HEDGED")],
            &vec![json!(basket_id.to_string()), json!("WEEKLY")]
        ]
    );

    let bob_row = row(
        pool,
        "SELECT * FROM rm_baskets WHERE basket_id = $1",
        &bob_basket.to_string(),
    )
    .await;
    assert_eq!(bob_row["owner_is_admin"], json!(0));
    assert_eq!(bob_row["is_template"], json!(0));
    assert_eq!(bob_row["strategy_count"], json!(0));
    assert_eq!(parse(&bob_row["strategies"]), json!([]));
    assert_eq!(bob_row["visibility"], Value::Null);
    assert_eq!(bob_row["published_position"], Value::Null);
    assert_eq!(bob_row["subscriber_count"], json!(0));
    assert!(bob_template.starts_with("basket-"));

    let free_row = row(
        pool,
        "SELECT * FROM rm_baskets WHERE basket_id = $1",
        &free.to_string(),
    )
    .await;
    assert_eq!(free_row["is_template"], json!(0), "unpublished");
    assert_eq!(
        free_row["visibility"],
        json!("PUBLIC"),
        "config kept for the record"
    );
    assert_eq!(free_row["pricing_type"], json!("FREE"));
    assert_eq!(free_row["monthly_fee"], json!(0));
    assert_eq!(free_row["subscriber_count"], json!(1), "dave keeps running");
    assert_eq!(free_row["published_position"], json!(free_first_publish));

    // Published again: published_at moves, published_position stays the first.
    publish(
        &log,
        admin.clone(),
        free,
        json!({"pricing": {"type": "FREE"}, "tags": ["HEDGE"]}),
        at("2026-03-27T09:00:00Z"),
    )
    .await;
    rt.catch_up().await.unwrap();
    let free_row = row(
        pool,
        "SELECT * FROM rm_baskets WHERE basket_id = $1",
        &free.to_string(),
    )
    .await;
    assert_eq!(free_row["is_template"], json!(1));
    assert_eq!(
        free_row["published_at"],
        json!("2026-03-27T09:00:00.000000Z")
    );
    assert_eq!(free_row["published_position"], json!(free_first_publish));
    assert_eq!(parse(&free_row["tags"]), json!(["HEDGE"]));
    assert_eq!(
        count(
            pool,
            &format!("SELECT COUNT(*) FROM rm_template_tags WHERE template_id = '{free}'")
        )
        .await,
        1
    );

    // ---- rm_subscriptions: the same data as the domain's fold (and so as
    // the command API's `views::subscription()`).
    for id in [alice, carol, dave] {
        let s = row(
            pool,
            "SELECT * FROM rm_subscriptions WHERE subscription_id = $1",
            &id.to_string(),
        )
        .await;
        let (state, _) = log
            .load::<SubscriptionAggregate>(&subscription::stream_name(&id))
            .await;
        let sub = state.subscription.clone().unwrap();
        assert_eq!(s["status"], json!(sub.status.to_string()));
        assert_eq!(s["template_id"], json!(sub.template_id.to_string()));
        assert_eq!(s["template_name"], json!(sub.template_name.to_string()));
        assert_eq!(s["user_id"], json!(sub.user_id.to_string()));
        assert_eq!(s["user_email"], json!(sub.user_email.to_string()));
        assert_eq!(s["pricing_type"], json!(sub.pricing_type.to_string()));
        assert_eq!(s["monthly_fee"], json!(sub.price.amount_minor()));
        assert_eq!(s["currency"], json!("INR"));
        assert_eq!(
            s["partner_id"],
            json!(sub.partner.as_ref().map(|p| p.partner_id.to_string()))
        );
        assert_eq!(
            s["api_key_id"],
            json!(sub.partner.as_ref().map(|p| p.api_key_id.to_string()))
        );
        assert_eq!(
            parse(&s["allocations"]),
            serde_json::to_value(&sub.allocations).unwrap()
        );
        assert_eq!(
            s["next_billing_date"],
            json!(state
                .next_billing_date()
                .map(|d| d.date_naive().to_string()))
        );
        let history: Vec<Value> = sub
            .status_history
            .iter()
            .map(|h| {
                json!({"from": h.from, "to": h.to, "actor": h.actor, "reason": h.reason,
                       "at": format_timestamp(&h.at)})
            })
            .collect();
        assert_eq!(parse(&s["status_history"]), json!(history));
        assert_eq!(s["created_at"], json!(format_timestamp(&sub.created_at)));
        assert_eq!(
            s["created_position"],
            json!(
                first_event(&log, &subscription::stream_name(&id))
                    .await
                    .position
                    .commit
            )
        );
    }
    let a = row(
        pool,
        "SELECT * FROM rm_subscriptions WHERE subscription_id = $1",
        &alice.to_string(),
    )
    .await;
    assert_eq!(a["status"], json!("ACTIVE"));
    assert_eq!(
        a["next_billing_date"],
        json!("2026-04-15"),
        "restarted at the resume"
    );
    assert_eq!(a["updated_at"], json!("2026-03-15T12:00:00.000000Z"));
    let history = parse(&a["status_history"]);
    assert_eq!(history.as_array().unwrap().len(), 3);
    assert_eq!(
        history[1],
        json!({"from": "ACTIVE", "to": "PAUSED", "reason": "Vacation",
               "actor": {"kind": "user", "user_id": alice_id.to_string()},
               "at": "2026-02-10T09:00:00.000000Z"})
    );
    let allocations = parse(&a["allocations"]);
    assert_eq!(allocations[0]["broker_id"], json!("ANGEL"));
    assert_eq!(allocations[0]["max_lots_per_order"], json!(50));
    let c = row(
        pool,
        "SELECT * FROM rm_subscriptions WHERE subscription_id = $1",
        &carol.to_string(),
    )
    .await;
    assert_eq!(c["status"], json!("CANCELLED"));
    assert_eq!(c["next_billing_date"], Value::Null);
    assert_eq!(c["partner_id"], json!("ZEBU"));
    assert_eq!(parse(&c["allocations"])[0]["client_id"], json!("ZC123"));
    assert_eq!(
        parse(&c["status_history"])[1]["actor"],
        json!({"kind": "partner", "partner_id": "ZEBU", "api_key_id": k1.to_string()})
    );
    let d = row(
        pool,
        "SELECT * FROM rm_subscriptions WHERE subscription_id = $1",
        &dave.to_string(),
    )
    .await;
    assert_eq!(
        (d["pricing_type"].clone(), d["next_billing_date"].clone()),
        (json!("FREE"), Value::Null)
    );

    // ---- rm_ledger: one line per charge, copied as carried.
    let charges: Vec<RecordedEvent> = whole_log(&log)
        .await
        .into_iter()
        .filter(|e| e.event_type == "SubscriptionCharged")
        .collect();
    assert_eq!(charges.len(), 4);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM rm_ledger").await, 4);
    for charge in &charges {
        let l = row(
            pool,
            "SELECT * FROM rm_ledger WHERE event_id = $1",
            &charge.event_id.to_string(),
        )
        .await;
        let data = &charge.data;
        assert_eq!(l["commit_position"], json!(charge.position.commit));
        assert_eq!(l["prepare_position"], json!(charge.position.prepare));
        for key in [
            "subscription_id",
            "template_id",
            "user_id",
            "partner_id",
            "currency",
        ] {
            assert_eq!(l[key], data[key], "{key}");
        }
        for key in [
            "period_index",
            "amount",
            "partner_bps",
            "platform_bps",
            "partner_share",
            "platform_share",
        ] {
            assert_eq!(l[key], data[key], "{key}");
        }
        assert_eq!(
            l["recorded_at"],
            json!(format_timestamp(&charge.metadata.recorded_at))
        );
    }
    let carol_lines = snapshot(pool, &["rm_ledger"]).await["rm_ledger"]
        .iter()
        .filter(|r| r.contains(&json!(carol.to_string())))
        .count();
    assert_eq!(carol_lines, 2);
    let first_carol = row(
        pool,
        "SELECT * FROM rm_ledger WHERE subscription_id = $1 AND period_index = 0",
        &carol.to_string(),
    )
    .await;
    assert_eq!(
        first_carol["period_start"],
        json!("2026-02-01T10:00:00.000000Z")
    );
    assert_eq!(
        first_carol["period_end"],
        json!("2026-03-01T10:00:00.000000Z")
    );
    assert_eq!(
        (
            first_carol["partner_share"].clone(),
            first_carol["platform_share"].clone()
        ),
        (json!(29970), json!(69930)),
        "₹999 through a 70/30 partner"
    );
    let second_carol = row(
        pool,
        "SELECT * FROM rm_ledger WHERE subscription_id = $1 AND period_index = 1",
        &carol.to_string(),
    )
    .await;
    assert_eq!(
        (
            second_carol["partner_bps"].clone(),
            second_carol["partner_share"].clone(),
            second_carol["platform_share"].clone()
        ),
        (json!(2500), json!(24975), json!(74925))
    );
    let direct = row(
        pool,
        "SELECT * FROM rm_ledger WHERE subscription_id = $1 AND period_start = '2026-01-31T10:00:00.000000Z'",
        &alice.to_string(),
    )
    .await;
    assert_eq!(direct["partner_id"], Value::Null);
    assert_eq!(
        (
            direct["platform_bps"].clone(),
            direct["platform_share"].clone()
        ),
        (json!(10000), json!(99900))
    );
    assert_eq!(
        direct["period_end"],
        json!("2026-02-28T10:00:00.000000Z"),
        "31 Jan → 28 Feb"
    );

    // ---- rm_partner_keys / rm_partners
    let key1 = row(
        pool,
        "SELECT * FROM rm_partner_keys WHERE api_key_id = $1",
        &k1.to_string(),
    )
    .await;
    assert_eq!(key1["partner_id"], json!("ZEBU"));
    assert!(key1["api_key"]
        .as_str()
        .unwrap()
        .starts_with("pk_zebu_live_"));
    assert_eq!(key1["partner_name"], json!("ZEBU Securities"));
    assert_eq!(key1["partner_type"], json!("BROKER"));
    assert_eq!(key1["broker_id"], json!("ZEBU"));
    assert_eq!(key1["status"], json!("REVOKED"));
    assert_eq!(
        (key1["platform_bps"].clone(), key1["partner_bps"].clone()),
        (json!(7500), json!(2500))
    );
    assert_eq!(
        parse(&key1["permissions"]),
        json!(["marketplace:read", "marketplace:subscribe"])
    );
    assert_eq!(
        parse(&key1["rate_limits"]),
        json!({"requests_per_minute": 200, "requests_per_day": 10000})
    );
    assert_eq!(
        parse(&key1["branding"]),
        json!({"show_platform_branding": true, "custom_logo_url": null})
    );
    assert_eq!(key1["issued_at"], json!("2026-01-06T10:00:00.000000Z"));
    assert_eq!(key1["rotated_at"], json!("2026-02-20T09:00:00.000000Z"));
    assert_eq!(key1["revoked_at"], json!("2026-03-25T09:00:00.000000Z"));
    let key2 = row(
        pool,
        "SELECT * FROM rm_partner_keys WHERE api_key_id = $1",
        &k2.to_string(),
    )
    .await;
    assert_eq!(key2["status"], json!("SUSPENDED"));
    assert_eq!(
        key2["partner_bps"],
        json!(2500),
        "copied from the partner at issue"
    );
    assert_eq!(
        parse(&key2["rate_limits"])["requests_per_minute"],
        json!(200)
    );
    assert_eq!(
        (key2["rotated_at"].clone(), key2["revoked_at"].clone()),
        (Value::Null, Value::Null)
    );
    let p = row(
        pool,
        "SELECT * FROM rm_partners WHERE partner_id = $1",
        "ZEBU",
    )
    .await;
    assert_eq!(p["updated_at"], json!("2026-03-25T09:00:00.000000Z"));
    assert_eq!(p["registered_at"], json!("2026-01-06T10:00:00.000000Z"));

    // Secrets never reach a read model, not even as hashes.
    let everything = serde_json::to_string(&snapshot(pool, &projected_tables()).await).unwrap();
    assert!(!everything.contains("argon2"), "a secret hash leaked");

    // ---- rm_execution_schedule / rm_execution_baskets: the admin's basket
    // as edited (Strangle removed, Iron Fly moved to 09:25, Butterfly
    // added), every row at the basket's last revision and, published, not
    // traded for its owner; Bob's basket has no strategy, so no rows.
    let schedule = snapshot(pool, &["rm_execution_schedule"]).await;
    let mut planned: Vec<(String, String, String, i64)> = schedule["rm_execution_schedule"]
        .iter()
        .filter(|r| r[0] == json!(basket_id.to_string()))
        .map(|r| {
            assert_eq!((&r[7], &r[12]), (&json!(0), &json!(7)), "{r:?}");
            (
                r[8].as_str().unwrap().to_string(),
                r[2].as_str().unwrap().to_string(),
                r[3].as_str().unwrap().to_string(),
                r[4].as_i64().unwrap(),
            )
        })
        .collect();
    planned.sort();
    let mut expected = Vec::new();
    for (name, entry) in [("Butterfly", 11 * 60), ("Iron Fly v2", 9 * 60 + 25)] {
        for (phase, minute) in [("ENTRY", entry), ("EXIT", 15 * 60 + 15)] {
            for day in ["FRI", "MON", "WED"] {
                expected.push((name.to_string(), phase.to_string(), day.to_string(), minute));
            }
        }
    }
    assert_eq!(planned, expected);
    let owners = snapshot(pool, &["rm_execution_baskets"]).await;
    assert!(owners["rm_execution_baskets"].contains(&vec![
        json!(basket_id.to_string()),
        json!(admin_id.to_string()),
        json!(0),
        json!(7)
    ]));
    assert!(owners["rm_execution_baskets"]
        .iter()
        .any(|r| r[0] == json!(bob_basket.to_string()) && r[2] == json!(1)));
    assert!(!schedule["rm_execution_schedule"]
        .iter()
        .any(|r| r[0] == json!(bob_basket.to_string())));

    // ---- checkpoints: every projector consumed the whole log.
    let head = log.head().await;
    let cps = checkpoints(pool).await.unwrap();
    assert_eq!(cps.len(), projectors::all().len());
    for cp in cps {
        assert_eq!(cp.position, head, "{}", cp.name);
        assert_eq!(cp.events_applied, head.commit, "{}", cp.name);
    }
}

// ---------------------------------------------------------------- concurrency

async fn subscriber_count_is_exact_after_200_concurrent_subscribes_and_cancels(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::sqlite(dir.path()).await;
    let t0 = at("2026-05-01T09:00:00Z");
    let template_id = template(
        &log,
        "Popular",
        json!({"type": "PAID", "monthly_fee": 19900, "currency": "INR"}),
        t0,
    )
    .await;
    let (partner_id, api_key_id) = partner_with_key(&log, "CROWD", 20, t0).await;
    let rt = Arc::new(runtime(&log, db, 16));
    let live = tokio::spawn({
        let rt = Arc::clone(&rt);
        async move { rt.run().await }
    });

    // 150 subscribes, 50 of them followed by a cancel: 200 operations racing
    // each other and the live projectors.
    let tasks: Vec<_> = (0..150)
        .map(|i| {
            let log = log.clone();
            let partner_id = partner_id.clone();
            tokio::spawn(async move {
                let via = if i % 2 == 0 {
                    Via::Direct
                } else {
                    Via::Partner {
                        partner_id,
                        api_key_id,
                        partner_bps: 2000,
                        client_id: format!("C{i}"),
                    }
                };
                let now = t0 + chrono::TimeDelta::seconds(i);
                let id = subscribe(
                    &log,
                    &format!("crowd{i}@example.com"),
                    template_id,
                    via,
                    now,
                )
                .await;
                if i % 3 == 0 {
                    cancel(&log, id, now + chrono::TimeDelta::seconds(1)).await;
                }
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    wait_caught_up(&rt, Duration::from_secs(120)).await;
    rt.stop();
    live.await.unwrap();

    let pool = &db.pool;
    assert_eq!(
        count(
            pool,
            &format!("SELECT subscriber_count FROM rm_baskets WHERE basket_id = '{template_id}'")
        )
        .await,
        100
    );
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM rm_subscriptions").await,
        150
    );
    assert_eq!(
        count(
            pool,
            "SELECT COUNT(*) FROM rm_subscriptions WHERE status = 'CANCELLED'"
        )
        .await,
        50
    );
    assert_eq!(
        count(pool, &format!("SELECT COUNT(*) FROM rm_subscriptions WHERE template_id = '{template_id}' AND status <> 'CANCELLED'")).await,
        100,
        "subscriber_count agrees with the subscriptions it counts"
    );
    assert_eq!(count(pool, "SELECT COUNT(*) FROM rm_ledger").await, 150);
    assert_eq!(
        count(pool, "SELECT CAST(SUM(amount) AS BIGINT) FROM rm_ledger").await,
        150 * 19900
    );
    assert_eq!(
        count(
            pool,
            "SELECT CAST(SUM(partner_share) AS BIGINT) FROM rm_ledger WHERE partner_id = 'CROWD'"
        )
        .await,
        75 * 3980
    );
}

// ---------------------------------------------------------------- rebuild

async fn rebuild_gives_the_live_rows_in_place_and_in_a_fresh_database(db: &TestDb) {
    let log = Log::memory();
    let rt = Arc::new(runtime(&log, db, 25));
    let live = tokio::spawn({
        let rt = Arc::clone(&rt);
        async move { rt.run().await }
    });
    // Written while the live runtime follows it.
    busy_marketplace(&log, 40, 4).await;
    let (partner_id, _) = partner_with_key(&log, "LATE", 10, at("2026-04-06T00:00:00Z")).await;
    issue_key(&log, &partner_id, at("2026-04-07T00:00:00Z")).await;
    wait_caught_up(&rt, Duration::from_secs(60)).await;
    rt.stop();
    live.await.unwrap();

    let tables = projected_tables();
    let live_rows = snapshot(&db.pool, &tables).await;
    for table in &tables {
        assert!(!live_rows[*table].is_empty(), "{table} is empty");
    }

    let mut reports = Vec::new();
    rt.rebuild(None, |done, total| reports.push((done, total)))
        .await
        .unwrap();
    let total = projectors::all().len() as u64 * log.len().await;
    assert_eq!(reports.first(), Some(&(0, total)));
    assert_eq!(reports.last(), Some(&(total, total)));
    assert!(reports.windows(2).all(|w| w[0].0 <= w[1].0), "{reports:?}");
    assert!(
        reports.len() > 8,
        "progress is reported per batch: {reports:?}"
    );
    assert_same(
        &live_rows,
        &snapshot(&db.pool, &tables).await,
        "rebuilt in place",
    );

    rt.rebuild(Some("ledger"), |_, _| {}).await.unwrap();
    assert_same(
        &live_rows,
        &snapshot(&db.pool, &tables).await,
        "ledger rebuilt",
    );
    assert!(matches!(
        rt.rebuild(Some("nope"), |_, _| {}).await,
        Err(ProjectionError::UnknownProjector(name)) if name == "nope"
    ));

    let fresh = TestDb::create(db.kind).await;
    runtime(&log, &fresh, 500).catch_up().await.unwrap();
    let fresh_rows = snapshot(&fresh.pool, &tables).await;
    fresh.destroy().await;
    assert_same(&live_rows, &fresh_rows, "rebuilt in a fresh database");
}

// ---------------------------------------------------------------- crashes

/// Every projector wrapped to fail its `fail_at`-th apply call, `times` over.
fn failing(fail_at: u64, times: u64) -> Vec<Arc<FailingProjector>> {
    projectors::all()
        .into_iter()
        .map(|p| Arc::new(FailingProjector::new(p, fail_at, times)))
        .collect()
}

fn as_projectors(failing: &[Arc<FailingProjector>]) -> Vec<Arc<dyn Projector>> {
    failing
        .iter()
        .map(|f| Arc::clone(f) as Arc<dyn Projector>)
        .collect()
}

async fn a_projector_killed_mid_batch_resumes_without_loss_or_duplication(db: &TestDb) {
    let log = Log::memory();
    let template_id = busy_marketplace(&log, 30, 3).await;
    let clean = clean_run(&log, db.kind).await;

    // Each projector dies at the 5th event of its 3rd batch, three times over.
    let batch = 10;
    let wrappers = failing(2 * batch + 5, 3);
    let rt = ProjectorRuntime::new(log.store.clone(), db.pool.clone(), as_projectors(&wrappers))
        .with_config(RuntimeConfig {
            batch_size: batch as usize,
            ..RuntimeConfig::default()
        });
    let mut failures = 0;
    loop {
        match rt.catch_up().await {
            Ok(()) => break,
            Err(ProjectionError::Injected(_)) => failures += 1,
            Err(e) => panic!("unexpected failure: {e}"),
        }
        assert!(failures <= 3, "more failures than injected");
    }
    assert_eq!(failures, 3);
    assert!(wrappers.iter().all(|w| w.failures_left() == 0));

    assert_same(
        &clean,
        &snapshot(&db.pool, &projected_tables()).await,
        "after crashes",
    );
    // No loss, no duplicate: the exact counts.
    let pool = &db.pool;
    let charges = whole_log(&log)
        .await
        .iter()
        .filter(|e| e.event_type == "SubscriptionCharged")
        .count() as i64;
    assert_eq!(
        charges,
        30 + 20,
        "30 first months, 20 active subscriptions charged again"
    );
    assert_eq!(count(pool, "SELECT COUNT(*) FROM rm_ledger").await, charges);
    assert_eq!(
        count(
            pool,
            &format!("SELECT subscriber_count FROM rm_baskets WHERE basket_id = '{template_id}'")
        )
        .await,
        20
    );
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM rm_subscriptions").await,
        30
    );
}

async fn a_failed_batch_moves_neither_rows_nor_checkpoint(db: &TestDb) {
    let log = Log::memory();
    busy_marketplace(&log, 10, 2).await;
    let clean = clean_run(&log, db.kind).await;
    let tables = projected_tables();

    // Exactly one batch of 10 events committed.
    runtime(&log, db, 10)
        .run_until(Position::sequence(10))
        .await
        .unwrap();
    let before_rows = snapshot(&db.pool, &tables).await;
    let before = checkpoints(&db.pool).await.unwrap();
    assert_eq!(before.len(), projectors::all().len());
    assert!(before
        .iter()
        .all(|c| c.position == Position::sequence(10) && c.events_applied == 10));

    // The next batch fails at its 7th event: nothing of it may remain.
    let rt = ProjectorRuntime::new(
        log.store.clone(),
        db.pool.clone(),
        as_projectors(&failing(7, 1)),
    )
    .with_config(RuntimeConfig {
        batch_size: 10,
        ..RuntimeConfig::default()
    });
    assert!(matches!(
        rt.catch_up().await,
        Err(ProjectionError::Injected(_))
    ));
    assert_eq!(
        checkpoints(&db.pool).await.unwrap(),
        before,
        "a checkpoint moved"
    );
    assert_same(
        &before_rows,
        &snapshot(&db.pool, &tables).await,
        "rows of a failed batch",
    );

    // And the projectors carry on from there.
    rt.catch_up().await.unwrap();
    assert_same(
        &clean,
        &snapshot(&db.pool, &tables).await,
        "after the retry",
    );
}

/// A projector that takes its time, so a batch is reliably in progress when
/// the runner is killed.
struct Slow(Arc<dyn Projector>);

#[async_trait::async_trait]
impl Projector for Slow {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn tables(&self) -> &'static [&'static str] {
        self.0.tables()
    }

    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        for _ in events {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.0.apply_batch(conn, events).await
    }
}

async fn a_live_runner_aborted_mid_batch_leaves_rows_and_checkpoint_together(db: &TestDb) {
    let log = Log::memory();
    busy_marketplace(&log, 30, 3).await;
    let clean = clean_run(&log, db.kind).await;
    let slow: Vec<Arc<dyn Projector>> = projectors::all()
        .into_iter()
        .map(|p| Arc::new(Slow(p)) as Arc<dyn Projector>)
        .collect();
    let rt = Arc::new(
        ProjectorRuntime::new(log.store.clone(), db.pool.clone(), slow).with_config(
            RuntimeConfig {
                batch_size: 20,
                ..RuntimeConfig::default()
            },
        ),
    );
    let live = tokio::spawn({
        let rt = Arc::clone(&rt);
        async move { rt.run().await }
    });
    // About 75 ms into a run that needs ~250 ms per projector: mid-batch.
    tokio::time::sleep(Duration::from_millis(75)).await;
    live.abort();
    assert!(live.await.unwrap_err().is_cancelled());

    // Whatever committed, rows match their checkpoint: the ledger holds
    // exactly the charges up to the ledger's checkpoint.
    let pool = &db.pool;
    let ledger_at = checkpoints(pool)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "ledger")
        .map_or(0, |c| c.position.commit);
    assert!(
        ledger_at < log.len().await,
        "the runner finished before it was killed"
    );
    let charges_before = whole_log(&log)
        .await
        .iter()
        .filter(|e| e.event_type == "SubscriptionCharged" && e.position.commit <= ledger_at)
        .count() as i64;
    assert_eq!(
        count(pool, "SELECT COUNT(*) FROM rm_ledger").await,
        charges_before
    );

    // A new runner resumes to exactly the clean rows.
    runtime(&log, db, 20).catch_up().await.unwrap();
    assert_same(
        &clean,
        &snapshot(pool, &projected_tables()).await,
        "after the kill",
    );
}

async fn the_live_runtime_retries_failed_batches_with_backoff(db: &TestDb) {
    let log = Log::memory();
    busy_marketplace(&log, 20, 4).await;
    let clean = clean_run(&log, db.kind).await;
    let wrappers = failing(5, 4);
    let rt = Arc::new(
        ProjectorRuntime::new(log.store.clone(), db.pool.clone(), as_projectors(&wrappers))
            .with_config(RuntimeConfig {
                batch_size: 8,
                retry_initial: Duration::from_millis(10),
                retry_max: Duration::from_millis(40),
            }),
    );
    let live = tokio::spawn({
        let rt = Arc::clone(&rt);
        async move { rt.run().await }
    });
    let status = wait_caught_up(&rt, Duration::from_secs(60)).await;
    rt.stop();
    live.await.unwrap();
    assert!(wrappers.iter().all(|w| w.failures_left() == 0));
    assert!(status.iter().all(|s| s.last_error.is_none()), "{status:#?}");
    assert_same(
        &clean,
        &snapshot(&db.pool, &projected_tables()).await,
        "after retries",
    );
}

// ---------------------------------------------------------------- decoding

async fn unknown_event_types_are_skipped_and_undecodable_known_ones_stop_the_projector(
    db: &TestDb,
) {
    let log = Log::memory();
    let t0 = at("2026-06-01T09:00:00Z");
    let template_id = template(&log, "Future proof", json!({"type": "FREE"}), t0).await;
    // From a newer build: a type nobody here knows.
    log.append_raw(
        "archive-2026",
        "TemplateArchivedForever",
        3,
        json!({"template_id": template_id.to_string()}),
    )
    .await;
    subscribe(&log, "eve@example.com", template_id, Via::Direct, t0).await;
    let rt = runtime(&log, db, 500);
    rt.catch_up().await.unwrap();
    let head = log.head().await;
    assert!(checkpoints(&db.pool)
        .await
        .unwrap()
        .iter()
        .all(|c| c.position == head));
    assert_eq!(
        count(
            &db.pool,
            &format!("SELECT subscriber_count FROM rm_baskets WHERE basket_id = '{template_id}'")
        )
        .await,
        1
    );

    // A known type whose data does not decode stops its projector, loudly.
    log.append_raw(
        "basket-broken",
        "BasketCreated",
        1,
        json!({"nonsense": true}),
    )
    .await;
    match rt.catch_up().await {
        Err(ProjectionError::Decode { event_type, .. }) => assert_eq!(event_type, "BasketCreated"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    let after = log.head().await;
    for cp in checkpoints(&db.pool).await.unwrap() {
        // Both projectors of basket events stop at it.
        let expected = if matches!(cp.name.as_str(), "baskets" | "schedule") {
            head
        } else {
            after
        };
        assert_eq!(cp.position, expected, "{}", cp.name);
    }
    // So does a version newer than this build reads.
    let fresh = TestDb::create(db.kind).await;
    let newer = Log::memory();
    newer
        .append_raw(
            "subscription-x",
            "SubscriptionCharged",
            9,
            json!({"amount": 1}),
        )
        .await;
    let result = runtime(&newer, &fresh, 500).catch_up().await;
    fresh.destroy().await;
    assert!(
        matches!(&result, Err(ProjectionError::Decode { reason, .. }) if reason.contains("newer")),
        "{result:?}"
    );
}

/// A broken store: every page after a position starts again with the event
/// at that position.
struct Redelivering(Arc<dyn basketry_store::EventStore>);

#[async_trait::async_trait]
impl basketry_store::EventStore for Redelivering {
    async fn append(
        &self,
        stream: &StreamId,
        expected: basketry_store::ExpectedRevision,
        events: Vec<basketry_store::NewEvent>,
    ) -> Result<basketry_store::AppendOutcome, basketry_store::AppendError> {
        self.0.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Revision,
    ) -> Result<Vec<RecordedEvent>, basketry_store::StoreError> {
        self.0.read_stream(stream, from).await
    }

    async fn read_all(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, basketry_store::StoreError> {
        let mut page = self.0.read_all(after, limit).await?;
        if let Some(at) = after {
            let before = (at.commit > 1).then(|| Position::sequence(at.commit - 1));
            let again = self.0.read_all(before, 1).await?;
            page.splice(0..0, again);
        }
        Ok(page)
    }

    async fn subscribe_all(
        &self,
        after: Option<Position>,
    ) -> Result<basketry_store::EventStream, basketry_store::StoreError> {
        self.0.subscribe_all(after).await
    }

    async fn head(&self) -> Result<Option<Position>, basketry_store::StoreError> {
        self.0.head().await
    }
}

async fn a_store_that_redelivers_an_event_is_refused_rather_than_applied_twice(db: &TestDb) {
    let log = Log::memory();
    busy_marketplace(&log, 6, 2).await;
    let broken = Log {
        store: Arc::new(Redelivering(log.store.clone())),
    };
    let rt = runtime(&broken, db, 5);
    match rt.catch_up().await {
        Err(ProjectionError::Store(basketry_store::StoreError::Corrupt(_))) => {}
        other => panic!("expected the redelivery to be refused, got {other:?}"),
    }
    // Only the first, clean page was applied.
    let cps = checkpoints(&db.pool).await.unwrap();
    assert!(
        cps.iter().all(|c| c.position == Position::sequence(5)),
        "{cps:?}"
    );
    let charges = whole_log(&log)
        .await
        .iter()
        .filter(|e| e.event_type == "SubscriptionCharged" && e.position.commit <= 5)
        .count() as i64;
    assert_eq!(
        count(&db.pool, "SELECT COUNT(*) FROM rm_ledger").await,
        charges
    );
    // Through an honest store, the same runtime catches up.
    runtime(&log, db, 5).catch_up().await.unwrap();
    assert_same(
        &clean_run(&log, db.kind).await,
        &snapshot(&db.pool, &projected_tables()).await,
        "after the redelivery",
    );
}

// ---------------------------------------------------------------- live

async fn the_live_runtime_picks_up_new_events_quickly_reports_lag_and_stops_gracefully(
    db: &TestDb,
) {
    let log = Log::memory();
    let t0 = at("2026-06-01T09:00:00Z");
    let template_id = template(&log, "Live", json!({"type": "FREE"}), t0).await;
    let rt = Arc::new(runtime(&log, db, 500));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = rt.status().await.unwrap();
    assert_eq!(before.len(), projectors::all().len());
    for s in &before {
        assert_eq!(
            (s.position, s.events_applied, s.lag_events),
            (None, 0, 2),
            "{s:?}"
        );
        assert!(s.lag_seconds >= 0.02, "{s:?}");
    }

    let live = tokio::spawn({
        let rt = Arc::clone(&rt);
        async move { rt.run().await }
    });
    let caught_up = wait_caught_up(&rt, Duration::from_secs(10)).await;
    for s in &caught_up {
        assert_eq!(
            (s.events_applied, s.lag_events, s.lag_seconds),
            (2, 0, 0.0),
            "{s:?}"
        );
    }

    // A new event is applied within milliseconds, not a polling interval.
    let started = Instant::now();
    subscribe(&log, "frank@example.com", template_id, Via::Direct, t0).await;
    let head = log.head().await;
    loop {
        let cps = checkpoints(&db.pool).await.unwrap();
        if cps.iter().all(|c| c.position >= head) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "not picked up: {cps:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let latency = started.elapsed();
    println!("live pickup latency: {latency:?}");
    assert!(latency < Duration::from_millis(500), "{latency:?}");

    // Stop: run returns, and nothing is applied afterwards.
    rt.stop_handle().stop();
    tokio::time::timeout(Duration::from_secs(5), live)
        .await
        .expect("run did not return after stop")
        .unwrap();
    subscribe(&log, "grace@example.com", template_id, Via::Direct, t0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = rt.status().await.unwrap();
    assert!(stopped
        .iter()
        .all(|s| s.position == Some(head) && s.lag_events == 2));
    assert_eq!(
        count(
            &db.pool,
            &format!("SELECT subscriber_count FROM rm_baskets WHERE basket_id = '{template_id}'")
        )
        .await,
        1
    );
}

// ---------------------------------------------------------------- database

async fn migrations_tolerate_other_components_migrations_in_the_same_database(db: &TestDb) {
    // Another component (the command API's idempotency tables) keeps its
    // migrations in the same `_sqlx_migrations` table.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(20261121100001_i64)
    .bind("idempotency keys")
    .bind(true)
    .bind(vec![0_u8; 48])
    .bind(1_i64)
    .execute(&db.pool)
    .await
    .unwrap();
    let again = basketry_projections::db::open(&db.url).await.unwrap();
    assert_eq!(
        count(&again, "SELECT COUNT(*) FROM projector_checkpoints").await,
        0
    );
    match db.kind {
        Kind::Sqlite => {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&again)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            assert_eq!(count(&again, "PRAGMA synchronous").await, 2, "FULL");
            assert!(count(&again, "PRAGMA busy_timeout").await >= 5000);
        }
        Kind::Postgres => {
            // The event store may share the database too.
            let store = basketry_store::postgres::PostgresStore::connect(&db.url)
                .await
                .unwrap();
            let log = Log {
                store: Arc::new(store),
            };
            template(
                &log,
                "Shared",
                json!({"type": "FREE"}),
                at("2026-06-01T09:00:00Z"),
            )
            .await;
            let reopened = basketry_projections::db::open(&db.url).await.unwrap();
            let rt = ProjectorRuntime::new(log.store.clone(), reopened.clone(), projectors::all());
            rt.catch_up().await.unwrap();
            assert_eq!(count(&reopened, "SELECT COUNT(*) FROM rm_baskets").await, 1);
            reopened.close().await;
        }
    }
    again.close().await;
}
