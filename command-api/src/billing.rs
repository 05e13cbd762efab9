//! The billing run: charge every due period of every ACTIVE subscription,
//! each exactly once however often the run repeats.
//!
//! The run finds subscriptions by scanning the log for
//! `SubscribedToTemplate` (the command side reads no read model, which may
//! lag), then decides `ChargeDue` on each subscription's own stream. The
//! decider only charges periods after the last one charged, and the append
//! is conditional on the stream's revision, so two concurrent runs cannot
//! charge a period twice.

use std::collections::{BTreeSet, HashMap};

use basketry_domain::partner::{self, PartnerAggregate};
use basketry_domain::subscription::{self, ChargeDue, SubscriptionAggregate, SubscriptionEvent};
use basketry_domain::{BasisPoints, DomainEvent, PartnerId, SubscriptionId};
use basketry_store::{EventStore, Position, StreamId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::command::{execute, CommandMeta};
use crate::error::ApiError;
use crate::load::load;

/// Page size of the scan for subscriptions.
const SCAN_PAGE: usize = 1_000;

/// What a billing run did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct BillingReport {
    /// The instant periods were charged up to.
    #[schema(required = true)]
    pub as_of: Option<DateTime<Utc>>,
    /// Subscriptions looked at.
    pub subscriptions_examined: u64,
    /// Subscriptions that got at least one charge.
    pub subscriptions_charged: u64,
    /// Charges made (one per period).
    pub charges: u64,
    /// Sum of the charges, in minor units.
    pub amount_charged: i64,
    /// Position of the last charge appended: the consistency token.
    #[serde(skip)]
    pub last_position: Option<Position>,
}

fn stream(name: String) -> Result<StreamId, ApiError> {
    StreamId::parse(name).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Every subscription ever created, in creation order.
async fn subscriptions(store: &dyn EventStore) -> Result<Vec<SubscriptionId>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store.read_all(after, SCAN_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for e in page {
            if e.event_type != "SubscribedToTemplate" {
                continue;
            }
            let decoded = SubscriptionEvent::from_stored(&e.event_type, e.schema_version, e.data)
                .map_err(|err| {
                ApiError::Internal(format!("undecodable event {}: {err}", e.event_id))
            })?;
            if let SubscriptionEvent::SubscribedToTemplate(s) = decoded {
                if seen.insert(s.subscription_id) {
                    ids.push(s.subscription_id);
                }
            }
        }
    }
    Ok(ids)
}

/// Charges every due period up to `as_of`.
pub async fn run(
    store: &dyn EventStore,
    meta: &CommandMeta,
    as_of: DateTime<Utc>,
) -> Result<BillingReport, ApiError> {
    let mut report = BillingReport {
        as_of: Some(as_of),
        ..BillingReport::default()
    };
    let mut shares: HashMap<PartnerId, Option<BasisPoints>> = HashMap::new();
    for id in subscriptions(store).await? {
        report.subscriptions_examined += 1;
        let s = stream(subscription::stream_name(&id))?;
        let current = load::<SubscriptionAggregate>(store, &s).await?;
        let partner_id = current
            .state
            .subscription
            .as_ref()
            .and_then(|sub| sub.partner.as_ref())
            .map(|p| p.partner_id.clone());
        let partner_bps_now = match partner_id {
            None => None,
            Some(pid) => match shares.get(&pid) {
                Some(bps) => *bps,
                None => {
                    let p = load::<PartnerAggregate>(store, &stream(partner::stream_name(&pid))?)
                        .await?;
                    let bps = p.state.revenue_share().map(|r| r.partner_bps());
                    shares.insert(pid, bps);
                    bps
                }
            },
        };
        let executed = execute::<SubscriptionAggregate, _>(store, &s, meta, |_| {
            Ok(ChargeDue {
                as_of,
                partner_bps_now,
            }
            .into())
        })
        .await?;
        let mut charged = false;
        for e in &executed.events {
            if let SubscriptionEvent::SubscriptionCharged(c) = e {
                charged = true;
                report.charges += 1;
                report.amount_charged += c.amount;
            }
        }
        if charged {
            report.subscriptions_charged += 1;
            report.last_position = executed.position;
        }
    }
    Ok(report)
}
