//! Keeping the command API's document honest: request schemas against the
//! types the handlers really deserialise, error bodies against `Problem`,
//! and the route table against the annotations.

use std::collections::BTreeSet;

use basketry_domain::basket::{
    self, CreateBasket, PublishTemplate, Strategy, UpdateBasket, UpdateMarketplaceConfig,
};
use basketry_domain::partner::{self, RegisterPartner, UpdatePartnerConfig};
use basketry_domain::subscription::{self, BrokerAllocation};
use basketry_domain::{
    Actor, AllocationId, BasketId, DomainError, StrategyId, SubscriptionId, UserId,
    ValidationErrors,
};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use utoipa::OpenApi;
use uuid::Uuid;

use super::shape::{self, ExampleOptions};
use super::CommandApiDoc;
use crate::error::ApiError;

fn doc() -> Value {
    serde_json::to_value(CommandApiDoc::openapi()).expect("the document serialises")
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("schema {name} is not in the document"))
}

/// Property names of a (possibly `allOf`) object schema.
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = shape::resolve(doc, schema);
    let mut names = BTreeSet::new();
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            names.extend(properties(doc, part));
        }
    }
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        names.extend(p.keys().cloned());
    }
    names
}

/// Builds examples of the documented schema `name` — every property,
/// each `oneOf` alternative in turn — and deserialises them into `T`, the
/// type the handler really reads.
fn deserializes_into<T: DeserializeOwned>(doc: &Value, name: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for alternative in 0..2 {
        let options = ExampleOptions {
            object_examples: false,
            alternative,
        };
        let example = shape::example(doc, schema(doc, name), options);
        if let Err(e) = serde_json::from_value::<T>(example.clone()) {
            errors.push(format!(
                "{name}: a body with every documented property does not deserialise into {}: \
                 {e}\n  body: {example}",
                std::any::type_name::<T>()
            ));
        }
    }
    errors
}

/// [`deserializes_into`], and every member of `T` is documented: the
/// members of `T::default()` serialised are the schema's properties.
fn mirrors<T: DeserializeOwned + Serialize + Default>(doc: &Value, name: &str) -> Vec<String> {
    let mut errors = deserializes_into::<T>(doc, name);
    let members: BTreeSet<String> = serde_json::to_value(T::default())
        .ok()
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default();
    let documented = properties(doc, schema(doc, name));
    if members != documented {
        errors.push(format!(
            "{name}: documented properties {documented:?} differ from the members of {}: \
             {members:?}",
            std::any::type_name::<T>()
        ));
    }
    errors
}

#[test]
fn request_schemas_mirror_the_domain_inputs_exactly() {
    let doc = doc();
    let mut errors = Vec::new();
    errors.extend(mirrors::<basket::BasketInput>(&doc, "BasketInput"));
    errors.extend(mirrors::<basket::UpdateBasketInput>(
        &doc,
        "UpdateBasketInput",
    ));
    errors.extend(mirrors::<basket::StrategyInput>(&doc, "StrategyInput"));
    errors.extend(mirrors::<basket::LegInput>(&doc, "LegInput"));
    errors.extend(mirrors::<basket::PricingInput>(&doc, "PricingInput"));
    errors.extend(mirrors::<basket::MarketplaceConfigInput>(
        &doc,
        "MarketplaceConfigInput",
    ));
    errors.extend(mirrors::<subscription::AllocationInput>(
        &doc,
        "AllocationInput",
    ));
    errors.extend(mirrors::<basketry_domain::RevenueShareInput>(
        &doc,
        "RevenueShareInput",
    ));
    errors.extend(mirrors::<partner::RateLimitsInput>(&doc, "RateLimitsInput"));
    errors.extend(mirrors::<partner::BrandingInput>(&doc, "BrandingInput"));
    errors.extend(mirrors::<partner::RegisterPartnerInput>(
        &doc,
        "RegisterPartnerInput",
    ));
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn api_request_schemas_deserialise_into_the_handlers_inputs() {
    use crate::routes::{
        AllocationsInput, BillingInput, NoInput, PartnerSubscribeInput, ReasonInput, RotateInput,
        SubscribeInput, UpdateKeyInput,
    };
    let doc = doc();
    let mut errors = Vec::new();
    errors.extend(deserializes_into::<ReasonInput>(&doc, "ReasonInput"));
    errors.extend(deserializes_into::<NoInput>(&doc, "EmptyBody"));
    errors.extend(deserializes_into::<SubscribeInput>(&doc, "SubscribeInput"));
    errors.extend(deserializes_into::<PartnerSubscribeInput>(
        &doc,
        "PartnerSubscribeInput",
    ));
    errors.extend(deserializes_into::<AllocationsInput>(
        &doc,
        "AllocationsInput",
    ));
    errors.extend(deserializes_into::<UpdateKeyInput>(
        &doc,
        "UpdateApiKeyInput",
    ));
    // …and documents every member: the partner configuration's, plus the
    // key's own `status` and `reason`.
    let mut members: BTreeSet<String> =
        serde_json::to_value(partner::UpdatePartnerConfigInput::default())
            .ok()
            .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
            .unwrap_or_default();
    members.extend(["status".to_string(), "reason".to_string()]);
    let documented = properties(&doc, schema(&doc, "UpdateApiKeyInput"));
    if members != documented {
        errors.push(format!("UpdateApiKeyInput: {documented:?} != {members:?}"));
    }
    errors.extend(deserializes_into::<RotateInput>(&doc, "RotateInput"));
    errors.extend(deserializes_into::<BillingInput>(&doc, "BillingRunInput"));
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The document's own example of `name`, read as `T`.
fn documented_example<T: DeserializeOwned>(doc: &Value, name: &str) -> T {
    let options = ExampleOptions {
        object_examples: true,
        alternative: 0,
    };
    let example = shape::example(doc, schema(doc, name), options);
    serde_json::from_value(example.clone())
        .unwrap_or_else(|e| panic!("{name} example {example} does not deserialise: {e}"))
}

#[test]
fn documented_examples_pass_the_domains_validation() {
    let doc = doc();
    let actor = Actor::Admin {
        user_id: UserId::from_uuid(Uuid::now_v7()),
    };
    let now = Utc::now();
    let show = |name: &str, r: Result<(), ValidationErrors>| {
        r.map_err(|e| format!("{name}: the documented example is refused: {e:?}"))
    };
    let results = [
        show(
            "BasketInput",
            CreateBasket::from_input(
                actor.clone(),
                BasketId::from_uuid(Uuid::now_v7()),
                &documented_example(&doc, "BasketInput"),
                || StrategyId::from_uuid(Uuid::now_v7()),
                now,
            )
            .map(drop),
        ),
        show(
            "UpdateBasketInput",
            UpdateBasket::from_input(
                actor.clone(),
                &documented_example(&doc, "UpdateBasketInput"),
                now,
            )
            .map(drop),
        ),
        show(
            "StrategyInput",
            Strategy::parse(
                StrategyId::from_uuid(Uuid::now_v7()),
                &documented_example(&doc, "StrategyInput"),
            )
            .map(drop),
        ),
        show(
            "MarketplaceConfigInput (publish)",
            PublishTemplate::from_input(
                actor.clone(),
                &documented_example(&doc, "MarketplaceConfigInput"),
                now,
            )
            .map(drop),
        ),
        show(
            "MarketplaceConfigInput (update)",
            UpdateMarketplaceConfig::from_input(
                actor.clone(),
                &documented_example(&doc, "MarketplaceConfigInput"),
                now,
            )
            .map(drop),
        ),
        show(
            "AllocationInput",
            BrokerAllocation::parse_list(&[documented_example(&doc, "AllocationInput")], || {
                AllocationId::from_uuid(Uuid::now_v7())
            })
            .map(drop),
        ),
        show(
            "RegisterPartnerInput",
            RegisterPartner::from_input(
                actor.clone(),
                &documented_example(&doc, "RegisterPartnerInput"),
                now,
            )
            .map(drop),
        ),
        show(
            "UpdateApiKeyInput",
            UpdatePartnerConfig::from_input(
                actor,
                &documented_example::<crate::routes::UpdateKeyInput>(&doc, "UpdateApiKeyInput")
                    .config,
                now,
            )
            .map(drop),
        ),
    ];
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn error_bodies_match_the_problem_schema() {
    let doc = doc();
    let problem = schema(&doc, "Problem");
    let samples = [
        ApiError::from(ValidationErrors::single("name", "must not be empty")),
        ApiError::Domain(DomainError::AlreadySubscribed {
            subscription_id: SubscriptionId::from_uuid(Uuid::now_v7()),
        }),
        ApiError::NotFound { what: "basket" },
        ApiError::bad_request("malformed_json", "request body: expected value"),
        ApiError::Edge(basketry_http::EdgeError::RateLimited {
            retry_after_secs: 3,
        }),
        ApiError::from(crate::auth::AuthError::Missing),
        ApiError::IdempotencyKeyReused,
        ApiError::IdempotencyKeyCommitted {
            position: basketry_store::Position::sequence(42),
            streams: vec!["basket-0190".into()],
        },
        ApiError::Unavailable("store down".into()),
        ApiError::Internal("bug".into()),
    ];
    for e in samples {
        let (_, headers, body) = e.problem();
        assert!(headers.contains(&("content-type", "application/problem+json".into())));
        let body: Value = serde_json::from_str(&body).expect("problem+json");
        let errors = shape::check(&doc, problem, &body);
        assert!(errors.is_empty(), "{e:?}: {errors:?}\n{body}");
    }
}

/// `{name}` segments of a path template.
fn template_names(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_route_table_and_the_annotations_agree() {
    let doc = doc();
    let mut registered = BTreeSet::new();
    for endpoint in crate::routes::endpoints() {
        let method = endpoint.method.as_str().to_ascii_lowercase();
        registered.insert((method, endpoint.path.to_string()));
    }
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(registered, documented);
}

#[test]
fn every_command_documents_what_run_gives_it() {
    let doc = doc();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let at = format!("{method} {path}");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let named = |name: &str, place: &str| {
                params
                    .iter()
                    .filter(|p| p["in"] == place)
                    .any(|p| p["name"] == name)
            };
            assert!(named("Idempotency-Key", "header"), "{at}");
            for name in template_names(path) {
                assert!(named(&name, "path"), "{at}: path parameter {name}");
            }
            let path_params = params.iter().filter(|p| p["in"] == "path").count();
            assert_eq!(path_params, template_names(path).len(), "{at}");
            assert!(op["security"].is_array(), "{at}: no security");
            let responses = op["responses"].as_object().expect("responses");
            let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
            assert_eq!(success.len(), 1, "{at}: {success:?}");
            let ok = &responses[success[0]];
            assert!(
                ok["headers"]["X-Consistency-Token"].is_object(),
                "{at}: X-Consistency-Token"
            );
            assert!(
                ok["content"]["application/json"]["schema"].is_object(),
                "{at}"
            );
            for status in [400, 401, 403, 409, 413, 422, 429, 500, 503] {
                assert!(
                    responses.contains_key(&status.to_string()),
                    "{at}: {status}"
                );
            }
            for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                let resolved = shape::resolve(&doc, response);
                let body = &resolved["content"]["application/problem+json"]["schema"];
                assert_eq!(
                    shape::ref_name(body),
                    Some("Problem"),
                    "{at} {status}: errors are Problems"
                );
            }
        }
    }
}
