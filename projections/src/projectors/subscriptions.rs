//! `subscriptions`: one row per subscription (`rm_subscriptions`), serving
//! users, partners and template subscribers.
//!
//! The JSON columns have the shapes of the command API's
//! `views::subscription()`, so the query API can pass them through:
//! `allocations` is the `broker_allocations` list, `status_history` the list
//! of `{from, to, actor, reason, at}` starting with the creation entry
//! (`from: null`). Timestamps inside them use the read models' format
//! (RFC 3339, microseconds, `Z`).
//!
//! `next_billing_date` is copied from the events that carry it: the period
//! 0 end in `SubscribedToTemplate`, each `SubscriptionCharged`'s
//! `period_end`, and a resume's `new_billing_anchor` (the restarted period
//! is due at once; its charge follows in the same append). It is NULL for
//! FREE subscriptions and once cancelled. `updated_at` moves with status
//! and allocation changes, not with charges (a billing run's `charged_at` is
//! its `as_of`, which may lie before the last change).

use basketry_domain::subscription::{SubscriptionEvent, SubscriptionStatus};
use basketry_domain::{Actor, Reason, SubscriptionId};
use basketry_store::RecordedEvent;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};

use super::{date, json, one_row, parse_json, ts};
use crate::runtime::db_int;
use crate::{decode, ProjectionError, Projector};

/// Projects subscriptions.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriptionsProjector;

#[async_trait::async_trait]
impl Projector for SubscriptionsProjector {
    fn name(&self) -> &'static str {
        "subscriptions"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_subscriptions"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let Some(e) = decode::<SubscriptionEvent>(event)? else {
            return Ok(());
        };
        match e {
            SubscriptionEvent::SubscribedToTemplate(s) => {
                let history = vec![history_entry(None, s.status, &s.actor, None, &s.at)];
                sqlx::query(
                    "INSERT INTO rm_subscriptions (subscription_id, created_position, user_id, \
                     user_email, template_id, template_name, partner_id, api_key_id, status, \
                     pricing_type, monthly_fee, currency, allocations, next_billing_date, \
                     status_history, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $16) \
                     ON CONFLICT (subscription_id) DO UPDATE SET \
                     created_position = excluded.created_position, user_id = excluded.user_id, \
                     user_email = excluded.user_email, template_id = excluded.template_id, \
                     template_name = excluded.template_name, partner_id = excluded.partner_id, \
                     api_key_id = excluded.api_key_id, status = excluded.status, \
                     pricing_type = excluded.pricing_type, monthly_fee = excluded.monthly_fee, \
                     currency = excluded.currency, allocations = excluded.allocations, \
                     next_billing_date = excluded.next_billing_date, \
                     status_history = excluded.status_history, \
                     created_at = excluded.created_at, updated_at = excluded.updated_at",
                )
                .bind(s.subscription_id.to_string())
                .bind(db_int(event.position.commit)?)
                .bind(s.user_id.to_string())
                .bind(s.user_email.to_string())
                .bind(s.template_id.to_string())
                .bind(s.template_name.to_string())
                .bind(s.partner_id.as_ref().map(ToString::to_string))
                .bind(s.api_key_id.as_ref().map(ToString::to_string))
                .bind(s.status.to_string())
                .bind(s.pricing_type.to_string())
                .bind(s.price.amount_minor())
                .bind(s.price.currency().to_string())
                .bind(json(event, &s.allocations)?)
                .bind(s.next_billing_date.as_ref().map(date))
                .bind(json(event, &history)?)
                .bind(ts(&s.at))
                .execute(&mut *conn)
                .await?;
            }
            SubscriptionEvent::SubscriptionPaused(p) => {
                let change = Change {
                    subscription_id: &p.subscription_id,
                    from: p.from,
                    to: SubscriptionStatus::Paused,
                    actor: &p.actor,
                    reason: p.reason.as_ref(),
                    at: &p.at,
                };
                change_status(conn, event, change, Billing::Keep).await?;
            }
            SubscriptionEvent::SubscriptionResumed(r) => {
                let change = Change {
                    subscription_id: &r.subscription_id,
                    from: r.from,
                    to: SubscriptionStatus::Active,
                    actor: &r.actor,
                    reason: r.reason.as_ref(),
                    at: &r.at,
                };
                let billing = match &r.new_billing_anchor {
                    Some(anchor) => Billing::Set(date(anchor)),
                    None => Billing::Keep,
                };
                change_status(conn, event, change, billing).await?;
            }
            SubscriptionEvent::SubscriptionCancelled(c) => {
                let change = Change {
                    subscription_id: &c.subscription_id,
                    from: c.from,
                    to: SubscriptionStatus::Cancelled,
                    actor: &c.actor,
                    reason: c.reason.as_ref(),
                    at: &c.at,
                };
                change_status(conn, event, change, Billing::Clear).await?;
            }
            SubscriptionEvent::BrokerAllocationsSet(a) => {
                let result = sqlx::query(
                    "UPDATE rm_subscriptions SET allocations = $2, updated_at = $3 \
                     WHERE subscription_id = $1",
                )
                .bind(a.subscription_id.to_string())
                .bind(json(event, &a.allocations)?)
                .bind(ts(&a.at))
                .execute(&mut *conn)
                .await?;
                one_row(result, event, "subscription")?;
            }
            SubscriptionEvent::SubscriptionCharged(c) => {
                // A cancelled subscription is never charged; the CASE only
                // keeps "NULL once cancelled" true whatever the log says.
                let result = sqlx::query(
                    "UPDATE rm_subscriptions SET next_billing_date = \
                     CASE WHEN status = 'CANCELLED' THEN NULL ELSE $2 END \
                     WHERE subscription_id = $1",
                )
                .bind(c.subscription_id.to_string())
                .bind(date(&c.period_end))
                .execute(&mut *conn)
                .await?;
                one_row(result, event, "subscription")?;
            }
            // A subscription id claimed so that it is never created: there
            // is no subscription to show.
            SubscriptionEvent::SubscriptionAbandoned(_) => {}
        }
        Ok(())
    }
}

/// One status transition, as the event gives it.
struct Change<'a> {
    subscription_id: &'a SubscriptionId,
    from: SubscriptionStatus,
    to: SubscriptionStatus,
    actor: &'a Actor,
    reason: Option<&'a Reason>,
    at: &'a DateTime<Utc>,
}

/// What a transition does to `next_billing_date`.
enum Billing {
    Keep,
    Set(String),
    Clear,
}

/// An entry of `status_history`, shaped like the command API's view.
fn history_entry(
    from: Option<SubscriptionStatus>,
    to: SubscriptionStatus,
    actor: &Actor,
    reason: Option<&Reason>,
    at: &DateTime<Utc>,
) -> Value {
    json!({
        "from": from,
        "to": to,
        "actor": actor,
        "reason": reason,
        "at": ts(at),
    })
}

async fn change_status(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    change: Change<'_>,
    billing: Billing,
) -> Result<(), ProjectionError> {
    let id = change.subscription_id.to_string();
    let row = sqlx::query("SELECT status_history FROM rm_subscriptions WHERE subscription_id = $1")
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| ProjectionError::inconsistent(event, "no subscription row"))?;
    let text: String = row.try_get("status_history")?;
    let mut history: Vec<Value> = parse_json(event, "status_history", &text)?;
    history.push(history_entry(
        Some(change.from),
        change.to,
        change.actor,
        change.reason,
        change.at,
    ));
    let (billing_sql, billing_date) = match billing {
        Billing::Keep => ("", None),
        Billing::Set(d) => (", next_billing_date = $5", Some(d)),
        Billing::Clear => (", next_billing_date = NULL", None),
    };
    let sql = format!(
        "UPDATE rm_subscriptions SET status = $2, status_history = $3, updated_at = $4\
         {billing_sql} WHERE subscription_id = $1"
    );
    let mut update = sqlx::query(&sql)
        .bind(&id)
        .bind(change.to.to_string())
        .bind(json(event, &history)?)
        .bind(ts(change.at));
    if let Some(d) = billing_date {
        update = update.bind(d);
    }
    let result = update.execute(&mut *conn).await?;
    one_row(result, event, "subscription")
}
