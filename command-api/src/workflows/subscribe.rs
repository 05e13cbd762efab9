//! Subscribing and changing a subscription's status: the commands that
//! span several streams.
//!
//! A subscription lives in its own stream, but "at most one live
//! subscription per user and template" is kept in the user's stream (a
//! reservation, see the user-link aggregate), and a partner's revenue share
//! in force is read from the partner's stream. So:
//!
//! * [`subscribe`] reads the template, the user's stream and (for a
//!   partner) the partner's stream at once, reserves (user, template),
//!   clearing a stale reservation first, then records the subscription;
//! * [`change_status`] pauses, resumes (charging with the share in force)
//!   or cancels, and a cancel releases the reservation.
//!
//! Each reads every stream once and returns what its caller answers with:
//! the subscription, the first charge and the consistency token of the
//! command's last event.

use basketry_domain::basket::{self, BasketAggregate};
use basketry_domain::partner::{self, PartnerAggregate};
use basketry_domain::subscription::{
    self, AbandonSubscription, BrokerAllocation, CancelSubscription, PartnerAttribution,
    PauseSubscription, ResumeSubscription, SubscribeToTemplate, Subscription,
    SubscriptionAggregate, SubscriptionCharged, SubscriptionEvent, SubscriptionState,
    SubscriptionStatus,
};
use basketry_domain::user_link::{
    self, ReleaseTemplateSubscription, ReserveTemplateSubscription, UserLinkAggregate,
    UserLinkEvent,
};
use basketry_domain::{
    BasisPoints, DomainError, Email, PartnerId, Reason, SubscriptionId, TemplateId, UserId,
};
use basketry_store::{EventStore, Position, StreamId};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::{PartnerPrincipal, Person};
use crate::command::{execute, execute_from, CommandMeta};
use crate::error::ApiError;
use crate::load::{load, read, stream, Loaded};

/// Everything a new subscription needs besides its template.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    /// The subscriber.
    pub user_id: UserId,
    /// The subscriber's e-mail (their identity).
    pub email: Email,
    /// For a partner's subscription: its `partner_bps` is the credential's
    /// until [`subscribe`] replaces it with the share in force in the
    /// partner's stream (ADR 0015).
    pub partner: Option<PartnerAttribution>,
    /// The broker allocations, parsed.
    pub allocations: Vec<BrokerAllocation>,
}

/// A subscription made by [`subscribe`].
#[derive(Debug)]
pub struct Subscribed {
    /// The subscription as recorded.
    pub subscription: Subscription,
    /// The first charge, for a PAID template.
    pub first_charge: Option<SubscriptionCharged>,
    /// The consistency token: position of the subscription's last event.
    pub position: Option<Position>,
}

/// Subscribes `new`'s person to the template `template_id`: reserves
/// (user, template) in the user's stream, then records the subscription in
/// a new stream.
///
/// An existing live subscription is refused with `already_subscribed`,
/// naming it only to a caller who may read it: the person (their own), or
/// the partner that made it. Anyone else learns only that the person
/// already subscribes, so a partner cannot probe for other partners'
/// customers (ADR 0015).
///
/// A reservation left by a cancelled subscription (a crash between cancel
/// and release) is released and the reservation retried; so is one whose
/// subscription never appeared within [`ABANDONED_RESERVATION`], once its
/// subscription stream is claimed.
pub async fn subscribe(
    store: &dyn EventStore,
    meta: &CommandMeta,
    template_id: TemplateId,
    mut new: NewSubscription,
) -> Result<Subscribed, ApiError> {
    let template_stream = stream(basket::stream_name(&template_id))?;
    let link_stream = stream(user_link::stream_name(&new.user_id))?;
    // Three independent reads, at once: the template, the person's stream
    // (where the reservation goes; its first attempt decides on this load)
    // and, for a partner, the partner's stream for the share in force.
    let (template, link, share) = futures::try_join!(
        async {
            load::<BasketAggregate>(store, &template_stream)
                .await
                .map_err(ApiError::from)
        },
        async {
            load::<UserLinkAggregate>(store, &link_stream)
                .await
                .map_err(ApiError::from)
        },
        async {
            match new.partner.as_ref() {
                Some(p) => share_in_force(store, &p.partner_id).await,
                None => Ok(None),
            }
        },
    )?;
    if let (Some(partner), Some(bps)) = (new.partner.as_mut(), share) {
        partner.partner_bps = bps;
    }
    let refusal = Refusal {
        partner: new.partner.as_ref().map(|p| p.partner_id.clone()),
    };
    let terms = template
        .state
        .template_terms()
        .ok_or(ApiError::NotFound { what: "template" })?;
    if !terms.enabled {
        return Err(DomainError::TemplateNotAvailable.into());
    }
    let subscription_id = SubscriptionId::from_uuid(Uuid::now_v7());
    let mut link = Some(link);
    for _ in 0..2 {
        let reserved =
            execute_from::<UserLinkAggregate, _>(store, &link_stream, meta, link.take(), |_| {
                Ok(ReserveTemplateSubscription {
                    user_id: new.user_id,
                    template_id,
                    subscription_id,
                    now: meta.now,
                }
                .into())
            })
            .await;
        match reserved {
            Ok(_) => break,
            Err(ApiError::Domain(DomainError::AlreadySubscribed {
                subscription_id: existing,
            })) => {
                let existing_stream = stream(subscription::stream_name(&existing))?;
                let current = load::<SubscriptionAggregate>(store, &existing_stream).await?;
                let (stale, seen) = match current.state.subscription.as_ref() {
                    Some(s) => (s.status == SubscriptionStatus::Cancelled, current.state),
                    // Reserved but never written: another request is still
                    // on its way (the winner of a race), or one crashed
                    // between its two appends long ago. Before releasing,
                    // claim its stream, so that the request, if it is only
                    // slow, fails its `NoStream` append instead of making a
                    // second live subscription.
                    None if reserved_before(store, &link_stream, existing, meta.now).await? => {
                        abandon(store, meta, &existing_stream, &new, template_id, existing).await?
                    }
                    None => (false, current.state),
                };
                if !stale {
                    return Err(refusal.of(existing, &seen));
                }
                release(store, meta, new.user_id, template_id, existing).await?;
            }
            Err(e) => return Err(e),
        }
    }
    let s = stream(subscription::stream_name(&subscription_id))?;
    // The id was generated above, so its stream is new: the first attempt
    // decides on the empty state without reading it, and appends expecting
    // no stream (a stream there after all is a conflict, then reloaded).
    let executed = execute_from::<SubscriptionAggregate, _>(
        store,
        &s,
        meta,
        Some(Loaded::empty()),
        |loaded| {
            if let Some(existing) = loaded.state.subscription.as_ref() {
                return Err(refusal.of(existing.subscription_id, &loaded.state));
            }
            Ok(SubscribeToTemplate {
                actor: meta.actor.clone(),
                subscription_id,
                user_id: new.user_id,
                user_email: new.email.clone(),
                template: terms.clone(),
                partner: new.partner.clone(),
                allocations: new.allocations.clone(),
                now: meta.now,
            }
            .into())
        },
    )
    .await?;
    let first_charge = executed.events.iter().find_map(|e| match e {
        SubscriptionEvent::SubscriptionCharged(c) => Some(c.clone()),
        _ => None,
    });
    let subscription = executed.state.subscription.ok_or(ApiError::NotFound {
        what: "subscription",
    })?;
    Ok(Subscribed {
        subscription,
        first_charge,
        position: executed.position,
    })
}

/// How [`subscribe`] refuses a person who already subscribes.
struct Refusal {
    /// The partner subscribing its customer; `None` for a person's own.
    partner: Option<PartnerId>,
}

impl Refusal {
    /// The refusal for the existing subscription `subscription_id`, whose
    /// stream was seen as `existing`: it names the subscription to the
    /// person, and to the partner that made it; to another partner it does
    /// not.
    fn of(&self, subscription_id: SubscriptionId, existing: &SubscriptionState) -> ApiError {
        match &self.partner {
            Some(partner) if !existing.is_owned_by_partner(partner) => {
                ApiError::AlreadySubscribedUnnamed
            }
            _ => DomainError::AlreadySubscribed { subscription_id }.into(),
        }
    }
}

/// The partner's revenue share in force, read from its stream (`None` when
/// the stream holds no share).
pub async fn share_in_force(
    store: &dyn EventStore,
    partner_id: &PartnerId,
) -> Result<Option<BasisPoints>, ApiError> {
    let s = stream(partner::stream_name(partner_id))?;
    let loaded = load::<PartnerAggregate>(store, &s).await?;
    Ok(loaded.state.revenue_share().map(|r| r.partner_bps()))
}

/// How long a reservation may wait for its subscription before it counts as
/// abandoned by a crashed request.
pub const ABANDONED_RESERVATION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Whether the reservation of `subscription_id` in the user's stream was
/// recorded more than [`ABANDONED_RESERVATION`] before `now`. The folded
/// user state does not keep when a reservation was made, so this reads the
/// stream's history (only on this rare path).
async fn reserved_before(
    store: &dyn EventStore,
    link_stream: &StreamId,
    subscription_id: SubscriptionId,
    now: DateTime<Utc>,
) -> Result<bool, ApiError> {
    let history = read::<UserLinkAggregate>(store, link_stream).await?;
    Ok(history
        .iter()
        .rev()
        .find_map(|recorded| match &recorded.event {
            UserLinkEvent::TemplateSubscriptionReserved(r)
                if r.subscription_id == subscription_id =>
            {
                Some(recorded.recorded_at + ABANDONED_RESERVATION < now)
            }
            _ => None,
        })
        .unwrap_or(false))
}

/// Claims the empty stream of the abandoned `subscription_id` with
/// `SubscriptionAbandoned`. Answers whether it is abandoned (now or
/// before), so its reservation may go — not when its subscription appeared
/// after all — and the stream as it now is.
async fn abandon(
    store: &dyn EventStore,
    meta: &CommandMeta,
    subscription_stream: &StreamId,
    new: &NewSubscription,
    template_id: TemplateId,
    subscription_id: SubscriptionId,
) -> Result<(bool, SubscriptionState), ApiError> {
    let claimed = execute::<SubscriptionAggregate, _>(store, subscription_stream, meta, |_| {
        Ok(AbandonSubscription {
            actor: meta.actor.clone(),
            subscription_id,
            user_id: new.user_id,
            template_id,
            now: meta.now,
        }
        .into())
    })
    .await?;
    let abandoned = match claimed.state.subscription.as_ref() {
        Some(s) => s.status == SubscriptionStatus::Cancelled,
        None => claimed.state.abandoned,
    };
    Ok((abandoned, claimed.state))
}

/// Releases the reservation of `subscription_id` in the user's stream.
/// Answers the stream's position after the release: of the release's
/// event, or of the stream's last when there was nothing to release.
async fn release(
    store: &dyn EventStore,
    meta: &CommandMeta,
    user_id: UserId,
    template_id: TemplateId,
    subscription_id: SubscriptionId,
) -> Result<Option<Position>, ApiError> {
    let link_stream = stream(user_link::stream_name(&user_id))?;
    let released = execute::<UserLinkAggregate, _>(store, &link_stream, meta, |_| {
        Ok(ReleaseTemplateSubscription {
            user_id,
            template_id,
            subscription_id,
            now: meta.now,
        }
        .into())
    })
    .await?;
    Ok(released.position)
}

/// Who is changing a subscription, and therefore which ones they may see.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// The subscriber.
    User(&'a Person),
    /// The partner that made the subscription.
    Partner(&'a PartnerPrincipal),
}

impl Owner<'_> {
    /// Whether the subscription in `state` is this caller's.
    fn owns(&self, state: &SubscriptionState) -> bool {
        match self {
            Owner::User(p) => state.is_owned_by_user(&p.user_id),
            Owner::Partner(p) => state.is_owned_by_partner(&p.partner_id),
        }
    }
}

/// A change of a subscription's status.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// ACTIVE → PAUSED.
    Pause,
    /// PAUSED → ACTIVE, charging a new period when the paid one is over.
    Resume,
    /// → CANCELLED, releasing the reservation.
    Cancel,
}

/// A subscription after [`change_status`].
#[derive(Debug)]
pub struct Changed {
    /// The subscription as it now is.
    pub subscription: Subscription,
    /// The consistency token: position of the command's last event (the
    /// release's, for a cancel that released the reservation).
    pub position: Option<Position>,
}

/// Changes the status of the subscription `id`, which must be `owner`'s
/// (anyone else's is 404). A resume charges with the partner's share in
/// force now; a cancel releases the (user, template) reservation.
pub async fn change_status(
    store: &dyn EventStore,
    meta: &CommandMeta,
    owner: Owner<'_>,
    id: SubscriptionId,
    change: Change,
    reason: Option<Reason>,
) -> Result<Changed, ApiError> {
    let s = stream(subscription::stream_name(&id))?;
    let current = load::<SubscriptionAggregate>(store, &s).await?;
    if !owner.owns(&current.state) {
        return Err(ApiError::NotFound {
            what: "subscription",
        });
    }
    let bps_now = match (change, current.state.subscription.as_ref()) {
        (Change::Resume, Some(sub)) => match sub.partner.as_ref() {
            Some(attribution) => Some(
                share_in_force(store, &attribution.partner_id)
                    .await?
                    .unwrap_or(attribution.partner_bps),
            ),
            None => None,
        },
        _ => None,
    };
    // The first attempt decides on the stream as just loaded; a conflict
    // reloads it and checks the owner again.
    let executed =
        execute_from::<SubscriptionAggregate, _>(store, &s, meta, Some(current), |loaded| {
            if !owner.owns(&loaded.state) {
                return Err(ApiError::NotFound {
                    what: "subscription",
                });
            }
            Ok(match change {
                Change::Pause => PauseSubscription {
                    actor: meta.actor.clone(),
                    reason: reason.clone(),
                    now: meta.now,
                }
                .into(),
                Change::Resume => ResumeSubscription {
                    actor: meta.actor.clone(),
                    reason: reason.clone(),
                    partner_bps_now: bps_now,
                    now: meta.now,
                }
                .into(),
                Change::Cancel => CancelSubscription {
                    actor: meta.actor.clone(),
                    reason: reason.clone(),
                    now: meta.now,
                }
                .into(),
            })
        })
        .await?;
    let subscription = executed.state.subscription.ok_or(ApiError::NotFound {
        what: "subscription",
    })?;
    let mut position = executed.position;
    if let Change::Cancel = change {
        let released = release(
            store,
            meta,
            subscription.user_id,
            subscription.template_id,
            subscription.subscription_id,
        )
        .await?;
        // The release is the command's last event when it wrote one.
        position = position.max(released);
    }
    Ok(Changed {
        subscription,
        position,
    })
}

#[cfg(test)]
mod tests;
