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

use std::collections::HashMap;

use basketry_domain::subscription::SubscriptionEvent;
use sqlx::AnyConnection;

use super::{execute_rows, ts, AnyQuery, BindRow};
use crate::{DecodedEvent, ProjectionError, Projector};

/// Projects the billing index.
#[derive(Debug, Clone, Copy, Default)]
pub struct BillingIndexProjector;

/// What a batch did to one subscription's row: worked out in memory, event
/// by event, and written once at the end of the batch.
enum Pending {
    /// The whole row as the batch leaves it (written with an upsert that
    /// sets every column, as `SubscribedToTemplate` always did).
    Row {
        partner_id: Option<String>,
        active: i64,
        next_charge_at: String,
    },
    /// Deleted (a later update finds no row, as it would in the database).
    Deleted,
    /// Changes to a row from before the batch (which may not exist: an
    /// update of no row changes nothing).
    Changed {
        active: Option<i64>,
        next_charge_at: Option<String>,
    },
}

/// A whole row, for the upsert.
struct Row<'a> {
    subscription_id: &'a str,
    partner_id: Option<&'a str>,
    active: i64,
    next_charge_at: &'a str,
}

impl BindRow for Row<'_> {
    const COLS: usize = 4;
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(self.subscription_id)
            .bind(self.partner_id)
            .bind(self.active)
            .bind(self.next_charge_at)
    }
}

#[async_trait::async_trait]
impl Projector for BillingIndexProjector {
    fn name(&self) -> &'static str {
        "billing"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_billing_index"]
    }

    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        let mut pending: HashMap<String, Pending> = HashMap::new();
        for decoded in events {
            // Allocation changes do not matter here: not even looked at.
            if decoded.event.event_type == "BrokerAllocationsSet" {
                continue;
            }
            let Some(e) = decoded.subscription()? else {
                continue;
            };
            match e {
                SubscriptionEvent::SubscribedToTemplate(s) => {
                    let Some(anchor) = &s.billing_anchor else {
                        continue;
                    };
                    pending.insert(
                        s.subscription_id.to_string(),
                        Pending::Row {
                            partner_id: s.partner_id.as_ref().map(ToString::to_string),
                            active: 1,
                            next_charge_at: ts(anchor),
                        },
                    );
                }
                SubscriptionEvent::SubscriptionCharged(c) => {
                    let next = ts(&c.period_end);
                    match pending
                        .entry(c.subscription_id.to_string())
                        .or_insert(Pending::Changed {
                            active: None,
                            next_charge_at: None,
                        }) {
                        Pending::Row { next_charge_at, .. } => *next_charge_at = next,
                        Pending::Changed { next_charge_at, .. } => *next_charge_at = Some(next),
                        Pending::Deleted => {}
                    }
                }
                SubscriptionEvent::SubscriptionPaused(p) => {
                    set_active(&mut pending, p.subscription_id.to_string(), 0, None);
                }
                SubscriptionEvent::SubscriptionResumed(r) => {
                    let anchor = r.new_billing_anchor.as_ref().map(ts);
                    set_active(&mut pending, r.subscription_id.to_string(), 1, anchor);
                }
                SubscriptionEvent::SubscriptionCancelled(c) => {
                    pending.insert(c.subscription_id.to_string(), Pending::Deleted);
                }
                // An abandoned stream never held a subscription: nothing to bill.
                SubscriptionEvent::BrokerAllocationsSet(_)
                | SubscriptionEvent::SubscriptionAbandoned(_) => {}
            }
        }
        write(conn, &pending).await
    }
}

/// Sets `active` (and, when given, `next_charge_at`) of a subscription's row.
fn set_active(pending: &mut HashMap<String, Pending>, id: String, to: i64, next: Option<String>) {
    match pending.entry(id).or_insert(Pending::Changed {
        active: None,
        next_charge_at: None,
    }) {
        Pending::Row {
            active,
            next_charge_at,
            ..
        } => {
            *active = to;
            if let Some(next) = next {
                *next_charge_at = next;
            }
        }
        Pending::Changed {
            active,
            next_charge_at,
        } => {
            *active = Some(to);
            if next.is_some() {
                *next_charge_at = next;
            }
        }
        Pending::Deleted => {}
    }
}

/// Writes what the batch did: one upsert of the whole rows, one delete, and
/// an update per changed row from before the batch.
async fn write(
    conn: &mut AnyConnection,
    pending: &HashMap<String, Pending>,
) -> Result<(), ProjectionError> {
    let mut rows = Vec::new();
    let mut deleted = Vec::new();
    for (id, p) in pending {
        match p {
            Pending::Row {
                partner_id,
                active,
                next_charge_at,
            } => rows.push(Row {
                subscription_id: id,
                partner_id: partner_id.as_deref(),
                active: *active,
                next_charge_at,
            }),
            Pending::Deleted => deleted.push(id.clone()),
            Pending::Changed {
                active,
                next_charge_at,
            } => {
                sqlx::query(
                    "UPDATE rm_billing_index SET active = COALESCE($2, active), \
                     next_charge_at = COALESCE($3, next_charge_at) WHERE subscription_id = $1",
                )
                .bind(id.as_str())
                .bind(*active)
                .bind(next_charge_at.as_deref())
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    execute_rows(
        conn,
        "DELETE FROM rm_billing_index WHERE subscription_id IN (",
        ")",
        &deleted,
    )
    .await?;
    execute_rows(
        conn,
        "INSERT INTO rm_billing_index (subscription_id, partner_id, active, next_charge_at) \
         VALUES",
        "ON CONFLICT (subscription_id) DO UPDATE SET partner_id = excluded.partner_id, \
         active = excluded.active, next_charge_at = excluded.next_charge_at",
        &rows,
    )
    .await?;
    Ok(())
}
