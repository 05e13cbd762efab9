//! The workflow reads every stream once and answers what its callers
//! need, checked against the in-memory store with a hook that counts the reads
//! of each stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use basketry_domain::basket::{BasketInput, CreateBasket, MarketplaceConfigInput, PublishTemplate};
use basketry_domain::{Actor, ApiKeyId, BasketId, BrokerId, StrategyId};
use basketry_store::memory::MemoryStore;
use basketry_test_support::stores::{Intercepted, StoreHooks};
use serde_json::json;

use super::*;

/// Reads of each stream, counted by a hook on the in-memory store.
#[derive(Default)]
struct Counts {
    reads: Mutex<BTreeMap<String, usize>>,
}

impl StoreHooks for Counts {
    fn before_read_stream(&self, stream: &StreamId) {
        *self
            .reads
            .lock()
            .expect("the counts")
            .entry(stream.to_string())
            .or_default() += 1;
    }
}

impl Counts {
    /// Reads of `stream` since the last call, which starts counting again.
    fn reads_of(&self, stream: &str) -> usize {
        let mut reads = self.reads.lock().expect("the counts");
        let n = reads.get(stream).copied().unwrap_or(0);
        reads.clear();
        n
    }

    /// Every count since the last call, which starts counting again.
    fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.reads.lock().expect("the counts"))
    }
}

/// The in-memory store, with every read of a stream counted.
fn counting() -> (Arc<dyn EventStore>, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let store = Intercepted::wrap(Arc::new(MemoryStore::default()), counts.clone());
    (store, counts)
}

fn meta(actor: Actor) -> CommandMeta {
    CommandMeta {
        actor,
        correlation_id: Uuid::now_v7(),
        idempotency_key: None,
        now: Utc::now(),
    }
}

fn email(text: &str) -> Email {
    Email::parse(text).expect("an e-mail")
}

/// A FREE template published by an admin.
async fn template(store: &dyn EventStore) -> TemplateId {
    let admin = Actor::Admin {
        user_id: UserId::from_email(&email("admin@example.com")),
    };
    let basket_id = BasketId::from_uuid(Uuid::now_v7());
    let input: BasketInput = serde_json::from_value(json!({
        "name": "Nifty weekly income",
        "category": "INCOME",
        "strategies": [{
            "name": "Short straddle",
            "underlying": "NIFTY",
            "product": "MIS",
            "entry_time": "09:20",
            "exit_time": "15:15",
            "trading_days": ["MON", "TUE", "WED", "THU", "FRI"],
            "legs": [
                {"action": "SELL", "option_type": "CE", "strike": "ATM", "expiry": "WEEKLY", "lots": 1}
            ]
        }]
    }))
    .expect("a basket body");
    let config: MarketplaceConfigInput =
        serde_json::from_value(json!({"pricing": {"type": "FREE"}})).expect("a template body");
    let now = Utc::now();
    let create = CreateBasket::from_input(
        admin.clone(),
        basket_id,
        &input,
        || StrategyId::from_uuid(Uuid::now_v7()),
        now,
    )
    .expect("a valid basket");
    let publish = PublishTemplate::from_input(admin.clone(), &config, now).expect("valid terms");
    let s = stream(basket::stream_name(&basket_id)).expect("a stream id");
    let meta = meta(admin);
    execute::<BasketAggregate, _>(store, &s, &meta, |_| Ok(create.clone().into()))
        .await
        .expect("the basket");
    execute::<BasketAggregate, _>(store, &s, &meta, |_| Ok(publish.clone().into()))
        .await
        .expect("the template");
    basket_id
}

fn person(text: &str) -> NewSubscription {
    let email = email(text);
    NewSubscription {
        user_id: UserId::from_email(&email),
        email,
        partner: None,
        allocations: Vec::new(),
    }
}

#[tokio::test]
async fn a_partner_subscribe_reads_the_template_the_user_and_the_partner_once_each() {
    let (store, counts) = counting();
    let template_id = template(&*store).await;
    counts.take();
    let partner_id = PartnerId::parse("ZEBU").expect("a partner id");
    let api_key_id = ApiKeyId::from_uuid(Uuid::now_v7());
    let mut new = person("asha@example.com");
    new.partner = Some(PartnerAttribution {
        partner_id: partner_id.clone(),
        api_key_id,
        broker_id: BrokerId::parse("zebu").expect("a broker id"),
        partner_bps: BasisPoints::new(3_000).expect("a share"),
    });
    let user_id = new.user_id;
    let subscribed = subscribe(
        &*store,
        &meta(Actor::Partner {
            partner_id: partner_id.clone(),
            api_key_id,
        }),
        template_id,
        new,
    )
    .await
    .expect("subscribed");
    let reads = counts.take();
    let expected: BTreeMap<String, usize> = [
        basket::stream_name(&template_id),
        user_link::stream_name(&user_id),
        partner::stream_name(&partner_id),
    ]
    .into_iter()
    .map(|s| (s, 1))
    .collect();
    assert_eq!(reads, expected, "the new subscription's stream is not read");
    assert_eq!(
        subscribed.subscription.partner.map(|p| p.partner_id),
        Some(partner_id)
    );
    assert_eq!(subscribed.position, store.head().await.expect("the head"));
}

#[tokio::test]
async fn a_cancel_loads_the_subscription_once_and_answers_the_position_of_the_release() {
    let (store, counts) = counting();
    let template_id = template(&*store).await;
    let new = person("asha@example.com");
    let user = Person::new(new.email.clone(), BTreeSet::new());
    let me = meta(Actor::User {
        user_id: new.user_id,
    });
    let subscribed = subscribe(&*store, &me, template_id, new)
        .await
        .expect("subscribed");
    let id = subscribed.subscription.subscription_id;
    counts.take();
    let changed = change_status(&*store, &me, Owner::User(&user), id, Change::Cancel, None)
        .await
        .expect("cancelled");
    assert_eq!(counts.reads_of(&subscription::stream_name(&id)), 1);
    assert_eq!(changed.subscription.status, SubscriptionStatus::Cancelled);
    assert_eq!(
        changed.position,
        store.head().await.expect("the head"),
        "the release is the command's last event"
    );
    // The reservation is gone: the person may subscribe again.
    subscribe(&*store, &me, template_id, person("asha@example.com"))
        .await
        .expect("subscribed again");
}

#[tokio::test]
async fn another_partner_is_refused_without_the_subscription_id_and_the_person_with_it() {
    let (store, _) = counting();
    let template_id = template(&*store).await;
    let new = person("asha@example.com");
    let me = meta(Actor::User {
        user_id: new.user_id,
    });
    let first = subscribe(&*store, &me, template_id, new)
        .await
        .expect("subscribed");
    let again = subscribe(&*store, &me, template_id, person("asha@example.com")).await;
    assert!(
        matches!(
            again,
            Err(ApiError::Domain(DomainError::AlreadySubscribed { subscription_id }))
                if subscription_id == first.subscription.subscription_id
        ),
        "{again:?}"
    );
    let partner_id = PartnerId::parse("ZEBU").expect("a partner id");
    let api_key_id = ApiKeyId::from_uuid(Uuid::now_v7());
    let mut by_partner = person("asha@example.com");
    by_partner.partner = Some(PartnerAttribution {
        partner_id: partner_id.clone(),
        api_key_id,
        broker_id: BrokerId::parse("zebu").expect("a broker id"),
        partner_bps: BasisPoints::new(3_000).expect("a share"),
    });
    let refused = subscribe(
        &*store,
        &meta(Actor::Partner {
            partner_id,
            api_key_id,
        }),
        template_id,
        by_partner,
    )
    .await;
    assert!(
        matches!(refused, Err(ApiError::AlreadySubscribedUnnamed)),
        "{refused:?}"
    );
}
