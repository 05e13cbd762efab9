//! The billing run: charge every due period of every ACTIVE subscription,
//! each exactly once however often the run repeats.
//!
//! The run finds due subscriptions in the billing index (`rm_billing_index`,
//! kept by the `billing` projector: PAID subscriptions not cancelled, with
//! when their next period starts), a page at a time in subscription order,
//! instead of scanning the log. The index only says where to look: the
//! subscription aggregate decides `ChargeDue` on the subscription's own
//! stream, charging only periods after the last one charged, and the append
//! is conditional on the stream's revision. So an index that lags delays a
//! charge (to the next run) but never doubles one, and two concurrent runs
//! cannot charge a period twice.
//!
//! A subscription that fails (its stream does not load, the store refuses
//! the append, …) is counted and named with the reason, and the run goes on
//! with the others. A run that stops part-way needs no bookkeeping: what it
//! charged is no longer due in the index once projected, so the next run
//! takes up exactly the rest (the index is the cursor). See
//! `docs/adr/0014-signed-checkpoints-and-the-billing-index.md`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use basketry_domain::subscription::{self, ChargeDue, SubscriptionAggregate, SubscriptionEvent};
use basketry_domain::{BasisPoints, PartnerId, SubscriptionId};
use basketry_store::{EventStore, Position};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyPool, Row};

use crate::command::{execute, CommandMeta};
use crate::error::ApiError;
use crate::load::stream;
use crate::workflows::subscribe::share_in_force;

/// Index rows read per page.
const PAGE: usize = 1_000;

/// Subscriptions charged at once: their appends share the store's group
/// commits.
const CONCURRENCY: usize = 32;

/// Failing subscriptions named in a report (all are counted).
pub const MAX_FAILURES_LISTED: usize = 100;

/// How long a run waits for the index to reach the log's head as it was
/// when the run started; past it the run goes on with the index as it is
/// (what it misses is charged by the next run).
pub const INDEX_WAIT: Duration = Duration::from_secs(10);

/// A subscription the run could not charge.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BillingFailure {
    /// The subscription.
    pub subscription_id: String,
    /// Why.
    pub reason: String,
}

/// What a billing run did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct BillingReport {
    /// The instant periods were charged up to.
    #[schema(required = true)]
    pub as_of: Option<DateTime<Utc>>,
    /// Subscriptions looked at (those the index lists as due).
    pub subscriptions_examined: u64,
    /// Subscriptions that got at least one charge.
    pub subscriptions_charged: u64,
    /// Charges made (one per period).
    pub charges: u64,
    /// Sum of the charges, in minor units.
    pub amount_charged: i64,
    /// Subscriptions that could not be charged; the run went on with the
    /// others, and the next run tries them again.
    pub subscriptions_failed: u64,
    /// The first failing subscriptions (at most 100), each with its reason.
    pub failures: Vec<BillingFailure>,
    /// Whether the billing index had caught up with the log as of the
    /// run's start (when not, later subscriptions wait for the next run).
    pub index_caught_up: bool,
    /// Position of the last charge appended: the consistency token.
    #[serde(skip)]
    pub last_position: Option<Position>,
}

/// Where a run finds the subscriptions due.
#[async_trait::async_trait]
pub trait DueIndex: Send + Sync {
    /// Up to `limit` subscriptions whose next period starts by `as_of`,
    /// with their partner, in subscription-id order after `after`.
    async fn due(
        &self,
        as_of: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(SubscriptionId, Option<PartnerId>)>, ApiError>;

    /// Position of the last event the index reflects.
    async fn position(&self) -> Result<Option<Position>, ApiError>;
}

/// The billing index in the read database (`rm_billing_index` and the
/// `billing` projector's checkpoint).
#[derive(Debug, Clone)]
pub struct SqlDueIndex {
    pool: AnyPool,
}

impl SqlDueIndex {
    /// The index in `pool`, the read database.
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }
}

fn read_db(e: sqlx::Error) -> ApiError {
    ApiError::Unavailable(format!("billing index: {e}"))
}

#[async_trait::async_trait]
impl DueIndex for SqlDueIndex {
    async fn due(
        &self,
        as_of: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(SubscriptionId, Option<PartnerId>)>, ApiError> {
        let rows = sqlx::query(
            "SELECT subscription_id, partner_id FROM rm_billing_index \
             WHERE active = 1 AND subscription_id > $1 AND next_charge_at <= $2 \
             ORDER BY subscription_id LIMIT $3",
        )
        .bind(after.unwrap_or(""))
        .bind(basketry_store::chain::format_timestamp(&as_of))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(read_db)?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("subscription_id").map_err(read_db)?;
                let partner: Option<String> = r.try_get("partner_id").map_err(read_db)?;
                let id = id.parse::<SubscriptionId>().map_err(|_| {
                    ApiError::Internal(format!("billing index holds a bad id {id:?}"))
                })?;
                let partner = partner
                    .map(|p| {
                        p.parse::<PartnerId>().map_err(|_| {
                            ApiError::Internal(format!("billing index holds a bad partner {p:?}"))
                        })
                    })
                    .transpose()?;
                Ok((id, partner))
            })
            .collect()
    }

    async fn position(&self) -> Result<Option<Position>, ApiError> {
        let row = sqlx::query(
            "SELECT commit_position, prepare_position FROM projector_checkpoints \
             WHERE name = 'billing'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(read_db)?;
        row.map(|r| {
            let commit: i64 = r.try_get("commit_position").map_err(read_db)?;
            let prepare: i64 = r.try_get("prepare_position").map_err(read_db)?;
            Ok(Position {
                commit: u64::try_from(commit).unwrap_or(0),
                prepare: u64::try_from(prepare).unwrap_or(0),
            })
        })
        .transpose()
    }
}

/// Waits (at most [`INDEX_WAIT`]) until the index reflects `head`.
async fn index_reaches(index: &dyn DueIndex, head: Option<Position>) -> Result<bool, ApiError> {
    let Some(head) = head else { return Ok(true) };
    let deadline = tokio::time::Instant::now() + INDEX_WAIT;
    loop {
        if index.position().await?.is_some_and(|p| p >= head) {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The revenue shares of partners, read once per run.
#[derive(Default)]
struct Shares(Mutex<HashMap<PartnerId, Option<BasisPoints>>>);

impl Shares {
    async fn of(
        &self,
        store: &dyn EventStore,
        partner: &PartnerId,
    ) -> Result<Option<BasisPoints>, ApiError> {
        let cached = self
            .0
            .lock()
            .map_err(|_| ApiError::Internal("share cache poisoned".into()))?
            .get(partner)
            .copied();
        if let Some(bps) = cached {
            return Ok(bps);
        }
        let bps = share_in_force(store, partner).await?;
        self.0
            .lock()
            .map_err(|_| ApiError::Internal("share cache poisoned".into()))?
            .insert(partner.clone(), bps);
        Ok(bps)
    }
}

/// What charging one subscription gave: its charges, their sum and the
/// position of the append.
type Charged = (u64, i64, Option<Position>);

async fn charge_one(
    store: &dyn EventStore,
    shares: &Shares,
    meta: &CommandMeta,
    as_of: DateTime<Utc>,
    id: &SubscriptionId,
    partner: Option<&PartnerId>,
) -> Result<Charged, ApiError> {
    let partner_bps_now = match partner {
        Some(p) => shares.of(store, p).await?,
        None => None,
    };
    let s = stream(subscription::stream_name(id))?;
    let executed = execute::<SubscriptionAggregate, _>(store, &s, meta, |_| {
        Ok(ChargeDue {
            as_of,
            partner_bps_now,
        }
        .into())
    })
    .await?;
    let mut charges = 0;
    let mut amount = 0i64;
    for e in &executed.events {
        if let SubscriptionEvent::SubscriptionCharged(c) = e {
            charges += 1;
            amount = amount.saturating_add(c.amount);
        }
    }
    Ok((charges, amount, executed.position.filter(|_| charges > 0)))
}

/// Charges every due period up to `as_of` of the subscriptions `index`
/// lists as due.
pub async fn run(
    store: &dyn EventStore,
    index: &dyn DueIndex,
    meta: &CommandMeta,
    as_of: DateTime<Utc>,
) -> Result<BillingReport, ApiError> {
    let mut report = BillingReport {
        as_of: Some(as_of),
        ..BillingReport::default()
    };
    report.index_caught_up = index_reaches(index, store.head().await?).await?;
    let shares = Shares::default();
    let mut after: Option<String> = None;
    loop {
        let page = index.due(as_of, after.as_deref(), PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.to_string());
        // A chunk at a time: the appends of a chunk share group commits.
        let mut outcomes = Vec::with_capacity(page.len());
        for chunk in page.chunks(CONCURRENCY) {
            let charging = chunk
                .iter()
                .map(|(id, partner)| charge_one(store, &shares, meta, as_of, id, partner.as_ref()));
            let done = futures::future::join_all(charging).await;
            outcomes.extend(chunk.iter().map(|(id, _)| id).zip(done));
        }
        for (id, outcome) in outcomes {
            report.subscriptions_examined += 1;
            match outcome {
                Ok((charges, amount, position)) => {
                    if charges > 0 {
                        report.subscriptions_charged += 1;
                        report.charges += charges;
                        report.amount_charged = report.amount_charged.saturating_add(amount);
                        report.last_position = report.last_position.max(position);
                    }
                }
                Err(e) => {
                    report.subscriptions_failed += 1;
                    // The detail may quote stored data: it goes to the
                    // admin's report, the log gets the kind only.
                    tracing::warn!(
                        subscription_id = %id,
                        error = error_kind(&e),
                        "billing a subscription failed; the run goes on"
                    );
                    if report.failures.len() < MAX_FAILURES_LISTED {
                        report.failures.push(BillingFailure {
                            subscription_id: id.to_string(),
                            reason: failure_reason(&e),
                        });
                    }
                }
            }
        }
    }
    Ok(report)
}

/// The kind of a failure, for logs.
fn error_kind(e: &ApiError) -> &'static str {
    match e {
        ApiError::Unavailable(_) => "unavailable",
        ApiError::Concurrency => "concurrent_modification",
        ApiError::Domain(_) => "refused_by_the_domain",
        _ => "internal",
    }
}

/// The reason given for a failing subscription: the error with its detail
/// (only ids, types and revisions; no personal data is in these errors).
fn failure_reason(e: &ApiError) -> String {
    match e {
        ApiError::Internal(detail) | ApiError::Unavailable(detail) => format!("{e}: {detail}"),
        other => other.to_string(),
    }
}
