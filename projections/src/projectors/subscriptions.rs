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

use std::collections::HashMap;

use basketry_domain::subscription::{SubscriptionEvent, SubscriptionStatus};
use basketry_domain::{Actor, Reason};
use basketry_store::RecordedEvent;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::{
    date, execute_rows, in_list_sql, json, parse_json, statement_chunks, ts, AnyQuery, BindRow,
};
use crate::runtime::db_int;
use crate::{DecodedEvent, ProjectionError, Projector};

/// Projects subscriptions.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriptionsProjector;

/// A row of `rm_subscriptions`.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    subscription_id: String,
    created_position: i64,
    user_id: String,
    user_email: String,
    template_id: String,
    template_name: String,
    partner_id: Option<String>,
    api_key_id: Option<String>,
    status: String,
    pricing_type: String,
    monthly_fee: i64,
    currency: String,
    allocations: String,
    next_billing_date: Option<String>,
    status_history: String,
    created_at: String,
    updated_at: String,
}

const COLUMNS: &str = "subscription_id, created_position, user_id, user_email, template_id, \
     template_name, partner_id, api_key_id, status, pricing_type, monthly_fee, currency, \
     allocations, next_billing_date, status_history, created_at, updated_at";

impl BindRow for Row {
    const COLS: usize = 17;
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(self.subscription_id.as_str())
            .bind(self.created_position)
            .bind(self.user_id.as_str())
            .bind(self.user_email.as_str())
            .bind(self.template_id.as_str())
            .bind(self.template_name.as_str())
            .bind(self.partner_id.as_deref())
            .bind(self.api_key_id.as_deref())
            .bind(self.status.as_str())
            .bind(self.pricing_type.as_str())
            .bind(self.monthly_fee)
            .bind(self.currency.as_str())
            .bind(self.allocations.as_str())
            .bind(self.next_billing_date.as_deref())
            .bind(self.status_history.as_str())
            .bind(self.created_at.as_str())
            .bind(self.updated_at.as_str())
    }
}

#[async_trait::async_trait]
impl Projector for SubscriptionsProjector {
    fn name(&self) -> &'static str {
        "subscriptions"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_subscriptions"]
    }

    /// Works the batch out in memory, event by event, over the rows it
    /// touches (those from before the batch read in one statement first),
    /// then writes each touched row once.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        let mut rows = load(conn, events).await?;
        // Rows of `rows` that the batch changed, in the order first touched.
        let mut touched: Vec<String> = Vec::new();
        for decoded in events {
            let event = &decoded.event;
            let Some(e) = decoded.subscription()? else {
                continue;
            };
            let id = match e {
                SubscriptionEvent::SubscribedToTemplate(s) => {
                    let history = vec![history_entry(None, s.status, &s.actor, None, &s.at)];
                    let row = Row {
                        subscription_id: s.subscription_id.to_string(),
                        created_position: db_int(event.position.commit)?,
                        user_id: s.user_id.to_string(),
                        user_email: s.user_email.to_string(),
                        template_id: s.template_id.to_string(),
                        template_name: s.template_name.to_string(),
                        partner_id: s.partner_id.as_ref().map(ToString::to_string),
                        api_key_id: s.api_key_id.as_ref().map(ToString::to_string),
                        status: s.status.to_string(),
                        pricing_type: s.pricing_type.to_string(),
                        monthly_fee: s.price.amount_minor(),
                        currency: s.price.currency().to_string(),
                        allocations: json(event, &s.allocations)?,
                        next_billing_date: s.next_billing_date.as_ref().map(date),
                        status_history: json(event, &history)?,
                        created_at: ts(&s.at),
                        updated_at: ts(&s.at),
                    };
                    let id = row.subscription_id.clone();
                    rows.insert(id.clone(), Some(row));
                    id
                }
                SubscriptionEvent::SubscriptionPaused(p) => {
                    let change = Change {
                        from: p.from,
                        to: SubscriptionStatus::Paused,
                        actor: &p.actor,
                        reason: p.reason.as_ref(),
                        at: &p.at,
                    };
                    let id = p.subscription_id.to_string();
                    change_status(
                        row_of(&mut rows, &id, event, Missing::Status)?,
                        event,
                        change,
                        Billing::Keep,
                    )?;
                    id
                }
                SubscriptionEvent::SubscriptionResumed(r) => {
                    let change = Change {
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
                    let id = r.subscription_id.to_string();
                    change_status(
                        row_of(&mut rows, &id, event, Missing::Status)?,
                        event,
                        change,
                        billing,
                    )?;
                    id
                }
                SubscriptionEvent::SubscriptionCancelled(c) => {
                    let change = Change {
                        from: c.from,
                        to: SubscriptionStatus::Cancelled,
                        actor: &c.actor,
                        reason: c.reason.as_ref(),
                        at: &c.at,
                    };
                    let id = c.subscription_id.to_string();
                    change_status(
                        row_of(&mut rows, &id, event, Missing::Status)?,
                        event,
                        change,
                        Billing::Clear,
                    )?;
                    id
                }
                SubscriptionEvent::BrokerAllocationsSet(a) => {
                    let id = a.subscription_id.to_string();
                    let row = row_of(&mut rows, &id, event, Missing::Update)?;
                    row.allocations = json(event, &a.allocations)?;
                    row.updated_at = ts(&a.at);
                    id
                }
                SubscriptionEvent::SubscriptionCharged(c) => {
                    let id = c.subscription_id.to_string();
                    let row = row_of(&mut rows, &id, event, Missing::Update)?;
                    // A cancelled subscription is never charged; this only
                    // keeps "NULL once cancelled" true whatever the log says.
                    row.next_billing_date =
                        (row.status != "CANCELLED").then(|| date(&c.period_end));
                    id
                }
                // A subscription id claimed so that it is never created: there
                // is no subscription to show.
                SubscriptionEvent::SubscriptionAbandoned(_) => continue,
            };
            touched.push(id);
        }
        let mut seen = std::collections::HashSet::with_capacity(touched.len());
        let written: Vec<&Row> = touched
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| rows.get(id).and_then(Option::as_ref))
            .collect();
        execute_rows(
            conn,
            &format!("INSERT INTO rm_subscriptions ({COLUMNS}) VALUES"),
            "ON CONFLICT (subscription_id) DO UPDATE SET \
             created_position = excluded.created_position, user_id = excluded.user_id, \
             user_email = excluded.user_email, template_id = excluded.template_id, \
             template_name = excluded.template_name, partner_id = excluded.partner_id, \
             api_key_id = excluded.api_key_id, status = excluded.status, \
             pricing_type = excluded.pricing_type, monthly_fee = excluded.monthly_fee, \
             currency = excluded.currency, allocations = excluded.allocations, \
             next_billing_date = excluded.next_billing_date, \
             status_history = excluded.status_history, \
             created_at = excluded.created_at, updated_at = excluded.updated_at",
            &written,
        )
        .await?;
        Ok(())
    }
}

/// The rows from before the batch that its events change before (or
/// without) creating them, read in a few statements; `None`
/// for an id without a row.
async fn load(
    conn: &mut AnyConnection,
    events: &[DecodedEvent],
) -> Result<HashMap<String, Option<Row>>, ProjectionError> {
    let mut rows: HashMap<String, Option<Row>> = HashMap::new();
    let mut created = std::collections::HashSet::new();
    let mut wanted = Vec::new();
    for decoded in events {
        let Ok(Some(e)) = decoded.subscription() else {
            continue;
        };
        let id = match e {
            SubscriptionEvent::SubscribedToTemplate(s) => {
                created.insert(s.subscription_id.to_string());
                continue;
            }
            SubscriptionEvent::SubscriptionPaused(p) => p.subscription_id.to_string(),
            SubscriptionEvent::SubscriptionResumed(r) => r.subscription_id.to_string(),
            SubscriptionEvent::SubscriptionCancelled(c) => c.subscription_id.to_string(),
            SubscriptionEvent::BrokerAllocationsSet(a) => a.subscription_id.to_string(),
            SubscriptionEvent::SubscriptionCharged(c) => c.subscription_id.to_string(),
            SubscriptionEvent::SubscriptionAbandoned(_) => continue,
        };
        if !created.contains(&id) && !rows.contains_key(&id) {
            rows.insert(id.clone(), None);
            wanted.push(id);
        }
    }
    for chunk in statement_chunks(&wanted, 256) {
        let sql = in_list_sql(
            conn,
            &format!("SELECT {COLUMNS} FROM rm_subscriptions WHERE subscription_id IN"),
            chunk.len(),
            "",
        );
        let mut query = sqlx::query_as::<_, Row>(&sql);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id = row.subscription_id.clone();
            rows.insert(id, Some(row));
        }
    }
    Ok(rows)
}

/// How the old statements reported a missing row.
enum Missing {
    /// A status change read the row first.
    Status,
    /// An update expected to change one row.
    Update,
}

/// The row an event changes.
fn row_of<'r>(
    rows: &'r mut HashMap<String, Option<Row>>,
    id: &str,
    event: &RecordedEvent,
    missing: Missing,
) -> Result<&'r mut Row, ProjectionError> {
    rows.get_mut(id).and_then(Option::as_mut).ok_or_else(|| {
        ProjectionError::inconsistent(
            event,
            match missing {
                Missing::Status => "no subscription row",
                Missing::Update => "expected one subscription row, found 0",
            },
        )
    })
}

/// One status transition, as the event gives it.
struct Change<'a> {
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

fn change_status(
    row: &mut Row,
    event: &RecordedEvent,
    change: Change<'_>,
    billing: Billing,
) -> Result<(), ProjectionError> {
    let mut history: Vec<Value> = parse_json(event, "status_history", &row.status_history)?;
    history.push(history_entry(
        Some(change.from),
        change.to,
        change.actor,
        change.reason,
        change.at,
    ));
    row.status = change.to.to_string();
    row.status_history = json(event, &history)?;
    row.updated_at = ts(change.at);
    match billing {
        Billing::Keep => {}
        Billing::Set(d) => row.next_billing_date = Some(d),
        Billing::Clear => row.next_billing_date = None,
    }
    Ok(())
}
