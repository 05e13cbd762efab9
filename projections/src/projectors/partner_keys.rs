//! `partner_keys`: the admin view of partner API keys (`rm_partner_keys`),
//! one row per key with its partner's configuration copied onto it, and one
//! row per partner (`rm_partners`).
//!
//! `ApiKeyIssued` does not repeat the partner's configuration, and a key may
//! be issued long after `PartnerRegistered`, so the partner's current
//! configuration is kept in `rm_partners` for new keys to copy;
//! `PartnerConfigUpdated` rewrites it there and on every key of the partner.
//!
//! Secrets never reach the read models: not the secret (no event has it)
//! and not its hash (`ApiKeyIssued` / `ApiKeyRotated` carry one; it is not
//! copied).

use basketry_domain::partner::PartnerEvent;
use basketry_domain::PartnerId;
use basketry_store::RecordedEvent;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{int, json, one_row, ts};
use crate::runtime::db_int;
use crate::{DecodedEvent, ProjectionError, Projector};

/// Projects partners and their keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartnerKeysProjector;

#[async_trait::async_trait]
impl Projector for PartnerKeysProjector {
    fn name(&self) -> &'static str {
        "partner_keys"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_partner_keys", "rm_partners"]
    }

    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        for decoded in events {
            if let Some(e) = decoded.partner()? {
                apply_one(conn, &decoded.event, e).await?;
            }
        }
        Ok(())
    }
}

/// Applies one partner event.
async fn apply_one(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    e: &PartnerEvent,
) -> Result<(), ProjectionError> {
    match e {
        PartnerEvent::PartnerRegistered(r) => {
            sqlx::query(
                "INSERT INTO rm_partners (partner_id, partner_name, partner_type, broker_id, \
                     platform_bps, partner_bps, permissions, rate_limits, branding, \
                     registered_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                     ON CONFLICT (partner_id) DO UPDATE SET \
                     partner_name = excluded.partner_name, partner_type = excluded.partner_type, \
                     broker_id = excluded.broker_id, platform_bps = excluded.platform_bps, \
                     partner_bps = excluded.partner_bps, permissions = excluded.permissions, \
                     rate_limits = excluded.rate_limits, branding = excluded.branding, \
                     registered_at = excluded.registered_at, updated_at = excluded.updated_at",
            )
            .bind(r.partner_id.to_string())
            .bind(r.partner_name.to_string())
            .bind(r.partner_type.to_string())
            .bind(r.broker_id.to_string())
            .bind(int(r.revenue_share.platform_bps().get()))
            .bind(int(r.revenue_share.partner_bps().get()))
            .bind(json(event, &r.permissions)?)
            .bind(json(event, &r.rate_limits)?)
            .bind(json(event, &r.branding)?)
            .bind(ts(&r.at))
            .execute(&mut *conn)
            .await?;
        }
        PartnerEvent::ApiKeyIssued(k) => {
            let partner = sqlx::query(
                "SELECT partner_name, partner_type, broker_id, platform_bps, partner_bps, \
                     permissions, rate_limits, branding FROM rm_partners WHERE partner_id = $1",
            )
            .bind(k.partner_id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| ProjectionError::inconsistent(event, "no partner row"))?;
            sqlx::query(
                "INSERT INTO rm_partner_keys (api_key_id, partner_id, api_key, partner_name, \
                     partner_type, broker_id, status, platform_bps, partner_bps, permissions, \
                     rate_limits, branding, issued_at, rotated_at, revoked_at, issued_position) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, \
                     $14) \
                     ON CONFLICT (api_key_id) DO UPDATE SET partner_id = excluded.partner_id, \
                     api_key = excluded.api_key, partner_name = excluded.partner_name, \
                     partner_type = excluded.partner_type, broker_id = excluded.broker_id, \
                     status = excluded.status, platform_bps = excluded.platform_bps, \
                     partner_bps = excluded.partner_bps, permissions = excluded.permissions, \
                     rate_limits = excluded.rate_limits, branding = excluded.branding, \
                     issued_at = excluded.issued_at, rotated_at = NULL, revoked_at = NULL, \
                     issued_position = excluded.issued_position",
            )
            .bind(k.api_key_id.to_string())
            .bind(k.partner_id.to_string())
            .bind(k.key.to_string())
            .bind(partner.try_get::<String, _>("partner_name")?)
            .bind(partner.try_get::<String, _>("partner_type")?)
            .bind(partner.try_get::<String, _>("broker_id")?)
            .bind(k.status.to_string())
            .bind(partner.try_get::<i64, _>("platform_bps")?)
            .bind(partner.try_get::<i64, _>("partner_bps")?)
            .bind(partner.try_get::<String, _>("permissions")?)
            .bind(partner.try_get::<String, _>("rate_limits")?)
            .bind(partner.try_get::<String, _>("branding")?)
            .bind(ts(&k.at))
            .bind(db_int(event.position.commit)?)
            .execute(&mut *conn)
            .await?;
            touch_partner(conn, event, &k.partner_id, &k.at).await?;
        }
        PartnerEvent::PartnerConfigUpdated(u) => {
            let values = (
                u.partner_name.to_string(),
                int(u.revenue_share.platform_bps().get()),
                int(u.revenue_share.partner_bps().get()),
                json(event, &u.permissions)?,
                json(event, &u.rate_limits)?,
                json(event, &u.branding)?,
            );
            let result = sqlx::query(
                "UPDATE rm_partners SET partner_name = $2, platform_bps = $3, \
                     partner_bps = $4, permissions = $5, rate_limits = $6, branding = $7, \
                     updated_at = $8 WHERE partner_id = $1",
            )
            .bind(u.partner_id.to_string())
            .bind(&values.0)
            .bind(values.1)
            .bind(values.2)
            .bind(&values.3)
            .bind(&values.4)
            .bind(&values.5)
            .bind(ts(&u.at))
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "partner")?;
            // Every key of the partner shows the partner's configuration.
            sqlx::query(
                "UPDATE rm_partner_keys SET partner_name = $2, platform_bps = $3, \
                     partner_bps = $4, permissions = $5, rate_limits = $6, branding = $7 \
                     WHERE partner_id = $1",
            )
            .bind(u.partner_id.to_string())
            .bind(&values.0)
            .bind(values.1)
            .bind(values.2)
            .bind(&values.3)
            .bind(&values.4)
            .bind(&values.5)
            .execute(&mut *conn)
            .await?;
        }
        PartnerEvent::ApiKeyStatusChanged(s) => {
            let result =
                sqlx::query("UPDATE rm_partner_keys SET status = $2 WHERE api_key_id = $1")
                    .bind(s.api_key_id.to_string())
                    .bind(s.to.to_string())
                    .execute(&mut *conn)
                    .await?;
            one_row(result, event, "api key")?;
            touch_partner(conn, event, &s.partner_id, &s.at).await?;
        }
        PartnerEvent::ApiKeyRotated(r) => {
            let result =
                sqlx::query("UPDATE rm_partner_keys SET rotated_at = $2 WHERE api_key_id = $1")
                    .bind(r.api_key_id.to_string())
                    .bind(ts(&r.at))
                    .execute(&mut *conn)
                    .await?;
            one_row(result, event, "api key")?;
            touch_partner(conn, event, &r.partner_id, &r.at).await?;
        }
        PartnerEvent::ApiKeyRevoked(r) => {
            let result = sqlx::query(
                "UPDATE rm_partner_keys SET status = 'REVOKED', revoked_at = $2 \
                     WHERE api_key_id = $1",
            )
            .bind(r.api_key_id.to_string())
            .bind(ts(&r.at))
            .execute(&mut *conn)
            .await?;
            one_row(result, event, "api key")?;
            touch_partner(conn, event, &r.partner_id, &r.at).await?;
        }
    }
    Ok(())
}

/// Every partner event changes the partner, as in the domain's fold.
async fn touch_partner(
    conn: &mut AnyConnection,
    event: &RecordedEvent,
    partner_id: &PartnerId,
    at: &DateTime<Utc>,
) -> Result<(), ProjectionError> {
    let result = sqlx::query("UPDATE rm_partners SET updated_at = $2 WHERE partner_id = $1")
        .bind(partner_id.to_string())
        .bind(ts(at))
        .execute(&mut *conn)
        .await?;
    one_row(result, event, "partner")
}
