//! The write path's retries against the in-memory store: a first state
//! that is out of date is reloaded and decided again.

use super::*;
use basketry_domain::user_link::{self, ReserveTemplateSubscription, UserLinkAggregate};
use basketry_domain::{DomainError, Email, SubscriptionId, TemplateId, UserId};
use basketry_store::memory::MemoryStore;

fn meta() -> CommandMeta {
    CommandMeta {
        actor: Actor::System,
        correlation_id: Uuid::now_v7(),
        idempotency_key: None,
        now: Utc::now(),
    }
}

fn reserve(
    user_id: UserId,
    template_id: TemplateId,
) -> impl FnMut(
    &Loaded<<UserLinkAggregate as Aggregate>::State>,
) -> Result<<UserLinkAggregate as Aggregate>::Command, ApiError> {
    let subscription_id = SubscriptionId::from_uuid(Uuid::now_v7());
    move |_| {
        Ok(ReserveTemplateSubscription {
            user_id,
            template_id,
            subscription_id,
            now: Utc::now(),
        }
        .into())
    }
}

/// A first state that is out of date (here: "no stream" for a stream
/// another request wrote) is not trusted: the append conflicts, the
/// stream is reloaded and the domain decides on what is really there.
#[tokio::test]
async fn a_stale_first_state_is_reloaded_and_decided_again() {
    let store = MemoryStore::new();
    let email = Email::parse("asha@example.com").expect("an e-mail");
    let user_id = UserId::from_email(&email);
    let template_id = TemplateId::from_uuid(Uuid::now_v7());
    let stream = StreamId::parse(user_link::stream_name(&user_id)).expect("a stream id");
    let first = execute_from::<UserLinkAggregate, _>(
        &store,
        &stream,
        &meta(),
        Some(Loaded::empty()),
        reserve(user_id, template_id),
    )
    .await
    .expect("the first reservation");
    assert_eq!(first.events.len(), 1);
    let second = execute_from::<UserLinkAggregate, _>(
        &store,
        &stream,
        &meta(),
        Some(Loaded::empty()),
        reserve(user_id, template_id),
    )
    .await;
    assert!(
        matches!(
            second,
            Err(ApiError::Domain(DomainError::AlreadySubscribed { .. }))
        ),
        "{second:?}"
    );
    let events = store
        .read_stream(&stream, basketry_store::Revision::START)
        .await
        .expect("the stream");
    assert_eq!(events.len(), 1);
}
