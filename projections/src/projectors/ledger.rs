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
use sqlx::AnyConnection;

use super::{execute_rows, int, ts, AnyQuery, BindRow};
use crate::runtime::db_int;
use crate::{DecodedEvent, ProjectionError, Projector};

/// Projects charges into the ledger.
#[derive(Debug, Clone, Copy, Default)]
pub struct LedgerProjector;

/// One ledger line.
struct Line {
    event_id: String,
    commit_position: i64,
    prepare_position: i64,
    subscription_id: String,
    template_id: String,
    user_id: String,
    partner_id: Option<String>,
    period_index: i64,
    period_start: String,
    period_end: String,
    amount: i64,
    currency: String,
    partner_bps: i64,
    platform_bps: i64,
    partner_share: i64,
    platform_share: i64,
    recorded_at: String,
}

impl BindRow for Line {
    const COLS: usize = 17;
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(self.event_id.as_str())
            .bind(self.commit_position)
            .bind(self.prepare_position)
            .bind(self.subscription_id.as_str())
            .bind(self.template_id.as_str())
            .bind(self.user_id.as_str())
            .bind(self.partner_id.as_deref())
            .bind(self.period_index)
            .bind(self.period_start.as_str())
            .bind(self.period_end.as_str())
            .bind(self.amount)
            .bind(self.currency.as_str())
            .bind(self.partner_bps)
            .bind(self.platform_bps)
            .bind(self.partner_share)
            .bind(self.platform_share)
            .bind(self.recorded_at.as_str())
    }
}

#[async_trait::async_trait]
impl Projector for LedgerProjector {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_ledger"]
    }

    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        let mut lines = Vec::new();
        for decoded in events {
            let event = &decoded.event;
            // Only charges matter: other subscription events are not looked at.
            if event.event_type != "SubscriptionCharged" {
                continue;
            }
            let Some(SubscriptionEvent::SubscriptionCharged(c)) = decoded.subscription()? else {
                continue;
            };
            lines.push(Line {
                event_id: event.event_id.to_string(),
                commit_position: db_int(event.position.commit)?,
                prepare_position: db_int(event.position.prepare)?,
                subscription_id: c.subscription_id.to_string(),
                template_id: c.template_id.to_string(),
                user_id: c.user_id.to_string(),
                partner_id: c.partner_id.as_ref().map(ToString::to_string),
                period_index: int(c.period_index),
                period_start: ts(&c.period_start),
                period_end: ts(&c.period_end),
                amount: c.amount,
                currency: c.currency.to_string(),
                partner_bps: int(c.partner_bps.get()),
                platform_bps: int(c.platform_bps.get()),
                partner_share: c.partner_share,
                platform_share: c.platform_share,
                recorded_at: ts(&event.metadata.recorded_at),
            });
        }
        // The event id is the key: a ledger line can exist once only.
        execute_rows(
            conn,
            "INSERT INTO rm_ledger (event_id, commit_position, prepare_position, \
             subscription_id, template_id, user_id, partner_id, period_index, period_start, \
             period_end, amount, currency, partner_bps, platform_bps, partner_share, \
             platform_share, recorded_at) VALUES",
            "ON CONFLICT (event_id) DO NOTHING",
            &lines,
        )
        .await?;
        Ok(())
    }
}
