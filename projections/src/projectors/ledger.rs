//! `ledger`: the revenue-share ledger (`rm_ledger`), one line per
//! `SubscriptionCharged`, keyed by the event's id.
//!
//! Amounts, basis points and both shares are copied exactly as the charge
//! carries them (the split was made once, by the domain, at charge time).
//! `period_start` / `period_end` keep the full timestamps of the event
//! (RFC 3339 text, which sorts and compares like the dates it starts with:
//! `period_start >= '2026-10-01' AND period_start < '2026-11-01'` is
//! October). `recorded_at` is when the store accepted the charge.

use basketry_domain::subscription::SubscriptionEvent;
use basketry_store::RecordedEvent;
use sqlx::AnyConnection;

use super::{int, ts};
use crate::runtime::db_int;
use crate::{decode, ProjectionError, Projector};

/// Projects charges into the ledger.
#[derive(Debug, Clone, Copy, Default)]
pub struct LedgerProjector;

#[async_trait::async_trait]
impl Projector for LedgerProjector {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_ledger"]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        // Only charges matter: other subscription events are not decoded.
        if event.event_type != "SubscriptionCharged" {
            return Ok(());
        }
        let Some(SubscriptionEvent::SubscriptionCharged(c)) = decode::<SubscriptionEvent>(event)?
        else {
            return Ok(());
        };
        // The event id is the key: a ledger line can exist once only.
        sqlx::query(
            "INSERT INTO rm_ledger (event_id, commit_position, prepare_position, \
             subscription_id, template_id, user_id, partner_id, period_index, period_start, \
             period_end, amount, currency, partner_bps, platform_bps, partner_share, \
             platform_share, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.event_id.to_string())
        .bind(db_int(event.position.commit)?)
        .bind(db_int(event.position.prepare)?)
        .bind(c.subscription_id.to_string())
        .bind(c.template_id.to_string())
        .bind(c.user_id.to_string())
        .bind(c.partner_id.as_ref().map(ToString::to_string))
        .bind(int(c.period_index))
        .bind(ts(&c.period_start))
        .bind(ts(&c.period_end))
        .bind(c.amount)
        .bind(c.currency.to_string())
        .bind(int(c.partner_bps.get()))
        .bind(int(c.platform_bps.get()))
        .bind(c.partner_share)
        .bind(c.platform_share)
        .bind(ts(&event.metadata.recorded_at))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
