//! Every event type survives the store's codec (`to_data` → `from_stored`),
//! the data is the event's data only, and the upcasting hook runs before
//! decoding.

mod common;

use std::collections::BTreeSet;

use basketry_domain::*;
use serde_json::{json, Value};

/// Round-trips every event and checks that together they cover every type.
fn assert_codec<E>(events: &[E])
where
    E: DomainEvent + PartialEq + std::fmt::Debug,
{
    let mut seen = BTreeSet::new();
    for event in events {
        let (event_type, version, data) =
            (event.event_type(), event.schema_version(), event.to_data());
        assert_eq!(version, 1, "{event_type}");
        assert!(data.is_object(), "{event_type} data is an object");
        assert!(
            data.get(event_type).is_none(),
            "{event_type} data carries no enum tag"
        );
        let back = E::from_stored(event_type, version, data).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&back, event);
        seen.insert(event_type);
    }
    let all: BTreeSet<&str> = E::EVENT_TYPES.iter().copied().collect();
    assert_eq!(seen, all, "the story must record every event type");
}

#[test]
fn every_basket_event_type_round_trips_through_the_codec() {
    assert_codec(&common::basket_story());
}

#[test]
fn every_subscription_event_type_round_trips_through_the_codec() {
    let mut story = common::subscription_story();
    story.extend(common::abandoned_subscription_story());
    assert_codec(&story);
}

#[test]
fn every_user_link_event_type_round_trips_through_the_codec() {
    assert_codec(&common::user_link_story());
}

#[test]
fn every_partner_event_type_round_trips_through_the_codec() {
    assert_codec(&common::partner_story());
}

#[test]
fn event_type_names_are_pascal_case_and_unique_across_aggregates() {
    let all: Vec<&str> = [
        BasketEvent::EVENT_TYPES,
        SubscriptionEvent::EVENT_TYPES,
        UserLinkEvent::EVENT_TYPES,
        PartnerEvent::EVENT_TYPES,
    ]
    .concat();
    let unique: BTreeSet<&str> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len());
    for name in all {
        assert!(name.starts_with(|c: char| c.is_ascii_uppercase()), "{name}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
    }
    for spec_name in [
        "BasketCreated",
        "StrategyAdded",
        "TemplatePublished",
        "MarketplaceConfigUpdated",
        "TemplateUnpublished",
        "SubscribedToTemplate",
        "SubscriptionPaused",
        "SubscriptionResumed",
        "SubscriptionCancelled",
        "BrokerAllocationsSet",
        "SubscriptionCharged",
        "PartnerRegistered",
        "ApiKeyIssued",
        "ApiKeyRotated",
        "ApiKeyRevoked",
        "PartnerConfigUpdated",
    ] {
        assert!(unique.contains(spec_name), "events.md names {spec_name}");
    }
}

#[test]
fn a_charge_carries_amount_currency_period_basis_points_and_both_shares() {
    let story = common::subscription_story();
    let charge = story
        .iter()
        .find(|e| e.event_type() == "SubscriptionCharged")
        .unwrap()
        .to_data();
    assert_eq!(
        charge,
        json!({
            "subscription_id": "00000000-0000-0000-0000-0000000000c8",
            "template_id": "00000000-0000-0000-0000-000000000064",
            "user_id": "6a7d8f5d-807f-5d29-9a65-9eb7713f1da8",
            "partner_id": "ZEBU",
            "billing_anchor": "2026-01-31T10:00:00Z",
            "period_index": 0,
            "period_start": "2026-01-31T10:00:00Z",
            "period_end": "2026-02-28T10:00:00Z",
            "amount": 99900,
            "currency": "INR",
            "partner_bps": 3000,
            "platform_bps": 7000,
            "partner_share": 29970,
            "platform_share": 69930,
            "charged_at": "2026-01-31T10:00:00Z"
        })
    );
}

#[test]
fn the_secret_itself_never_appears_in_partner_events() {
    for event in common::partner_story() {
        let text = event.to_data().to_string();
        assert!(!text.contains("sk_"), "{}: {text}", event.event_type());
    }
}

#[test]
fn an_unknown_event_type_is_refused() {
    let err = SubscriptionEvent::from_stored("SubscriptionTeleported", 1, json!({})).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownEventType {
            event_type: "SubscriptionTeleported".into()
        }
    );
}

#[test]
fn data_written_by_a_newer_schema_version_is_refused() {
    let err = BasketEvent::from_stored("BasketCreated", 2, json!({})).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::UnsupportedVersion {
            version: 2,
            current: 1,
            ..
        }
    ));
}

#[test]
fn an_old_version_without_an_upcaster_is_refused() {
    let err = BasketEvent::from_stored("BasketCreated", 0, json!({})).unwrap_err();
    assert_eq!(
        err,
        DecodeError::MissingUpcaster {
            event_type: "BasketCreated".into(),
            from_version: 0
        }
    );
}

#[test]
fn malformed_data_is_refused_with_the_reason() {
    let err = UserLinkEvent::from_stored("TemplateSubscriptionReserved", 1, json!({"user_id": 5}))
        .unwrap_err();
    assert!(matches!(err, DecodeError::Malformed { .. }), "{err:?}");
}

#[test]
fn invalid_values_in_stored_data_are_refused_not_trusted() {
    let story = common::subscription_story();
    let mut data = story[0].to_data();
    data["price"]["amount_minor"] = json!(-1);
    assert!(SubscriptionEvent::from_stored("SubscribedToTemplate", 1, data).is_err());
}

/// A hypothetical v0 of `SubscriptionPaused` that named the reason `note` and
/// had no `from` (every pause was from ACTIVE then). Not production data: it
/// proves the hook, as a real upcaster will be written when a schema changes.
fn paused_v0_to_v1(mut data: Value) -> Result<Value, String> {
    let object = data.as_object_mut().ok_or("data is not an object")?;
    let note = object.remove("note").unwrap_or(Value::Null);
    object.insert("reason".into(), note);
    object.insert("from".into(), json!("ACTIVE"));
    Ok(data)
}

const TEST_UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "SubscriptionPaused",
    from_version: 0,
    apply: paused_v0_to_v1,
}];

fn paused_v1() -> SubscriptionEvent {
    common::subscription_story()
        .into_iter()
        .find(|e| e.event_type() == "SubscriptionPaused")
        .unwrap()
}

#[test]
fn an_old_schema_version_is_upcast_before_decoding() {
    let current = paused_v1();
    let mut v0 = current.to_data();
    let object = v0.as_object_mut().unwrap();
    let reason = object.remove("reason").unwrap();
    object.remove("from");
    object.insert("note".into(), reason);

    let decoded =
        SubscriptionEvent::from_stored_with(TEST_UPCASTERS, "SubscriptionPaused", 0, v0.clone())
            .unwrap();
    assert_eq!(decoded, current);
    // The production chain has no such upcaster.
    assert!(SubscriptionEvent::from_stored("SubscriptionPaused", 0, v0).is_err());
}

#[test]
fn the_upcast_chain_steps_one_version_at_a_time_and_reports_failures() {
    fn add_one(mut v: Value) -> Result<Value, String> {
        let n = v["n"].as_i64().ok_or("no n")?;
        v["n"] = json!(n + 1);
        Ok(v)
    }
    let chain = [
        Upcaster {
            event_type: "X",
            from_version: 1,
            apply: add_one,
        },
        Upcaster {
            event_type: "X",
            from_version: 2,
            apply: add_one,
        },
        Upcaster {
            event_type: "Y",
            from_version: 1,
            apply: |_| Err("boom".into()),
        },
    ];
    assert_eq!(
        upcast(&chain, "X", 1, 3, json!({"n": 0})),
        Ok((3, json!({"n": 2})))
    );
    assert_eq!(
        upcast(&chain, "X", 3, 3, json!({"n": 0})),
        Ok((3, json!({"n": 0})))
    );
    assert_eq!(
        upcast(&chain, "X", 1, 4, json!({"n": 0})),
        Err(DecodeError::MissingUpcaster {
            event_type: "X".into(),
            from_version: 3
        })
    );
    assert_eq!(
        upcast(&chain, "Y", 1, 2, json!({})),
        Err(DecodeError::UpcastFailed {
            event_type: "Y".into(),
            from_version: 1,
            message: "boom".into()
        })
    );
}
