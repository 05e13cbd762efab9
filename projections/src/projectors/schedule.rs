//! `schedule`: the execution schedule — one `rm_execution_schedule` row per
//! (basket, strategy, phase, trading day), keyed for the lookup by
//! `(weekday, minute_of_day)` that the plan of one minute makes, and one
//! `rm_execution_baskets` row per basket.
//!
//! A strategy gives an `ENTRY` row at its `entry_time` and an `EXIT` row at
//! its `exit_time` for each of its `trading_days`; each row carries what an
//! order needs (strategy name, underlying, product, legs as JSON, the
//! basket's revision and owner), so the plan joins the rows of one minute
//! with the template's ACTIVE subscriptions and nothing else.
//!
//! Every basket event is followed at once: a strategy added, replaced (an
//! admin's edit of lots or times) or removed rewrites that strategy's rows
//! in the same transaction as the checkpoint, and every event copies the
//! basket's new revision into its rows, so the very next plan is the
//! edited one.
//!
//! `owner_trades` says whether the plan has lines for the basket's owner:
//! 1 for a basket as created, 0 from its first `TemplatePublished` on (only
//! an admin's basket can be published). A published template is the
//! admin's product, traded for its subscribers; disabling it later keeps
//! existing subscriptions running and does not start trading it on the
//! admin's own account.

use basketry_domain::basket::{BasketEvent, Strategy};
use basketry_domain::{StrategyId, TemplateId};
use basketry_store::RecordedEvent;
use sqlx::{AnyConnection, Row};

use super::{json, one_row};
use crate::runtime::db_int;
use crate::{DecodedEvent, ProjectionError, Projector};

/// Projects the execution schedule.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScheduleProjector;

#[async_trait::async_trait]
impl Projector for ScheduleProjector {
    fn name(&self) -> &'static str {
        "schedule"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_execution_baskets", "rm_execution_schedule"]
    }

    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        for decoded in events {
            if let Some(e) = decoded.basket()? {
                apply_one(conn, &decoded.event, e).await?;
            }
        }
        Ok(())
    }
}

/// Applies one basket event.
async fn apply_one(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    e: &BasketEvent,
) -> Result<(), ProjectionError> {
    let revision = db_int(e.revision())?;
    match &e {
        BasketEvent::BasketCreated(c) => {
            let basket_id = c.basket_id.to_string();
            sqlx::query(
                "INSERT INTO rm_execution_baskets (basket_id, owner_id, owner_trades, revision) \
                     VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (basket_id) DO UPDATE SET owner_id = excluded.owner_id, \
                     owner_trades = excluded.owner_trades, revision = excluded.revision",
            )
            .bind(&basket_id)
            .bind(c.owner_id.to_string())
            .bind(revision)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM rm_execution_schedule WHERE basket_id = $1")
                .bind(&basket_id)
                .execute(&mut *conn)
                .await?;
            let basket = BasketRow {
                basket_id,
                owner_id: c.owner_id.to_string(),
                owner_trades: 1,
            };
            for strategy in &c.strategies {
                insert_rows(conn, event, &basket, strategy, revision).await?;
            }
        }
        BasketEvent::StrategyAdded(s) => {
            let basket = set_revision(conn, event, &s.basket_id, revision).await?;
            insert_rows(conn, event, &basket, &s.strategy, revision).await?;
        }
        BasketEvent::StrategyReplaced(s) => {
            let basket = set_revision(conn, event, &s.basket_id, revision).await?;
            delete_rows(conn, &s.basket_id, &s.strategy.strategy_id).await?;
            insert_rows(conn, event, &basket, &s.strategy, revision).await?;
        }
        BasketEvent::StrategyRemoved(s) => {
            set_revision(conn, event, &s.basket_id, revision).await?;
            delete_rows(conn, &s.basket_id, &s.strategy_id).await?;
        }
        BasketEvent::TemplatePublished(p) => {
            let id = p.template_id.to_string();
            let result = sqlx::query(
                "UPDATE rm_execution_baskets SET owner_trades = 0, revision = $2 \
                     WHERE basket_id = $1",
            )
            .bind(&id)
            .bind(revision)
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "basket")?;
            sqlx::query(
                "UPDATE rm_execution_schedule SET owner_trades = 0, basket_revision = $2 \
                     WHERE basket_id = $1",
            )
            .bind(&id)
            .bind(revision)
            .execute(&mut *conn)
            .await?;
        }
        BasketEvent::BasketUpdated(u) => {
            set_revision(conn, event, &u.basket_id, revision).await?;
        }
        BasketEvent::MarketplaceConfigUpdated(u) => {
            set_revision(conn, event, &u.template_id, revision).await?;
        }
        BasketEvent::TemplateUnpublished(u) => {
            set_revision(conn, event, &u.template_id, revision).await?;
        }
    }
    Ok(())
}

/// What a strategy's rows repeat of their basket.
struct BasketRow {
    basket_id: String,
    owner_id: String,
    owner_trades: i64,
}

/// Moves the basket and all its rows to `revision`; the basket as it is.
async fn set_revision(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    basket_id: &TemplateId,
    revision: i64,
) -> Result<BasketRow, ProjectionError> {
    let id = basket_id.to_string();
    let row = sqlx::query(
        "UPDATE rm_execution_baskets SET revision = $2 WHERE basket_id = $1 \
         RETURNING owner_id, owner_trades",
    )
    .bind(&id)
    .bind(revision)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ProjectionError::inconsistent(event, "no basket row"))?;
    let basket = BasketRow {
        basket_id: id,
        owner_id: row.try_get("owner_id")?,
        owner_trades: row.try_get("owner_trades")?,
    };
    sqlx::query("UPDATE rm_execution_schedule SET basket_revision = $2 WHERE basket_id = $1")
        .bind(&basket.basket_id)
        .bind(revision)
        .execute(&mut *conn)
        .await?;
    Ok(basket)
}

async fn delete_rows(
    conn: &mut AnyConnection,
    basket_id: &TemplateId,
    strategy_id: &StrategyId,
) -> Result<(), ProjectionError> {
    sqlx::query("DELETE FROM rm_execution_schedule WHERE basket_id = $1 AND strategy_id = $2")
        .bind(basket_id.to_string())
        .bind(strategy_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The phases of a strategy: name, rank in a plan (exits first) and minute.
fn phases(strategy: &Strategy) -> [(&'static str, i64, i64); 2] {
    [
        (
            "EXIT",
            0,
            i64::from(strategy.exit_time.minutes_since_midnight()),
        ),
        (
            "ENTRY",
            1,
            i64::from(strategy.entry_time.minutes_since_midnight()),
        ),
    ]
}

async fn insert_rows(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    basket: &BasketRow,
    strategy: &Strategy,
    revision: i64,
) -> Result<(), ProjectionError> {
    let legs = json(event, &strategy.legs)?;
    let strategy_id = strategy.strategy_id.to_string();
    for (phase, rank, minute) in phases(strategy) {
        for day in &strategy.trading_days {
            sqlx::query(
                "INSERT INTO rm_execution_schedule (basket_id, strategy_id, phase, weekday, \
                 minute_of_day, phase_rank, owner_id, owner_trades, strategy_name, underlying, \
                 product, legs, basket_revision) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (basket_id, strategy_id, phase, weekday) DO UPDATE SET \
                 minute_of_day = excluded.minute_of_day, phase_rank = excluded.phase_rank, \
                 owner_id = excluded.owner_id, owner_trades = excluded.owner_trades, \
                 strategy_name = excluded.strategy_name, underlying = excluded.underlying, \
                 product = excluded.product, legs = excluded.legs, \
                 basket_revision = excluded.basket_revision",
            )
            .bind(&basket.basket_id)
            .bind(&strategy_id)
            .bind(phase)
            .bind(day.as_str())
            .bind(minute)
            .bind(rank)
            .bind(&basket.owner_id)
            .bind(basket.owner_trades)
            .bind(strategy.name.to_string())
            .bind(strategy.underlying.to_string())
            .bind(strategy.product.as_str())
            .bind(&legs)
            .bind(revision)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
