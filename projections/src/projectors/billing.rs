//! `billing`: the billing index (`rm_billing_index`), one row per PAID
//! subscription that is not cancelled, with whether it is billed now
//! (ACTIVE) and when its next period starts.
//!
//! The billing run (`command-api/src/billing.rs`) reads the rows due by its
//! `as_of` instead of scanning the log; the subscription aggregate still
//! decides each charge on its own stream. Every column is copied from the
//! events: `next_charge_at` is the billing anchor of `SubscribedToTemplate`
//! (period 0, charged in the same append), then each `SubscriptionCharged`'s
//! `period_end`, and a resume's `new_billing_anchor`. A pause keeps the row
//! with `active = 0`; a cancellation deletes it.

use basketry_domain::subscription::SubscriptionEvent;
use basketry_store::RecordedEvent;
use sqlx::AnyConnection;

use super::ts;
use crate::{decode, ProjectionError, Projector};

/// Projects the billing index.
#[derive(Debug, Clone, Copy, Default)]
pub struct BillingIndexProjector;

#[async_trait::async_trait]
impl Projector for BillingIndexProjector {
    fn name(&self) -> &'static str {
        "billing"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_billing_index"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        // Allocation changes do not matter here: not even decoded.
        if event.event_type == "BrokerAllocationsSet" {
            return Ok(());
        }
        let Some(e) = decode::<SubscriptionEvent>(event)? else {
            return Ok(());
        };
        match e {
            SubscriptionEvent::SubscribedToTemplate(s) => {
                let Some(anchor) = s.billing_anchor else {
                    return Ok(());
                };
                sqlx::query(
                    "INSERT INTO rm_billing_index (subscription_id, partner_id, active, \
                     next_charge_at) VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (subscription_id) DO UPDATE SET \
                     partner_id = excluded.partner_id, active = excluded.active, \
                     next_charge_at = excluded.next_charge_at",
                )
                .bind(s.subscription_id.to_string())
                .bind(s.partner_id.as_ref().map(ToString::to_string))
                .bind(ts(&anchor))
                .execute(&mut *conn)
                .await?;
            }
            SubscriptionEvent::SubscriptionCharged(c) => {
                sqlx::query(
                    "UPDATE rm_billing_index SET next_charge_at = $2 WHERE subscription_id = $1",
                )
                .bind(c.subscription_id.to_string())
                .bind(ts(&c.period_end))
                .execute(&mut *conn)
                .await?;
            }
            SubscriptionEvent::SubscriptionPaused(p) => {
                sqlx::query("UPDATE rm_billing_index SET active = 0 WHERE subscription_id = $1")
                    .bind(p.subscription_id.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
            SubscriptionEvent::SubscriptionResumed(r) => {
                sqlx::query(
                    "UPDATE rm_billing_index SET active = 1, \
                     next_charge_at = COALESCE($2, next_charge_at) WHERE subscription_id = $1",
                )
                .bind(r.subscription_id.to_string())
                .bind(r.new_billing_anchor.as_ref().map(ts))
                .execute(&mut *conn)
                .await?;
            }
            SubscriptionEvent::SubscriptionCancelled(c) => {
                sqlx::query("DELETE FROM rm_billing_index WHERE subscription_id = $1")
                    .bind(c.subscription_id.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
            // An abandoned stream never held a subscription: nothing to bill.
            SubscriptionEvent::BrokerAllocationsSet(_)
            | SubscriptionEvent::SubscriptionAbandoned(_) => {}
        }
        Ok(())
    }
}
