//! Partner key usage: when each key was last used and how many requests it
//! made, for the admin view of keys.
//!
//! Usage is not an event (one per request would swamp the log), so it is
//! counted in memory as partners authenticate and flushed periodically into
//! the read database's `partner_key_usage` table, adding to what is there.
//! A crash loses at most one flush interval of counts; `last_used_at` and
//! `request_count` are operational figures, not money.
//!
//! # Who owns `partner_key_usage`
//!
//! This module does: [`UsageLog`] is the table's only writer, and its
//! columns (`api_key_id`, `last_used_at`, `request_count`) are the contract
//! it writes to; the query API's admin view of keys only reads them. The
//! table is created by the read database's first migration
//! (`projections/migrations/20261121200001_read_models.sql`), because the
//! read database has one migration history and an applied migration cannot
//! change; it is not a projection: projectors never write it, a rebuild of
//! the read models neither fills nor empties it, and the audit's replay
//! does not compare it. A change to its columns is a new read-database
//! migration made together with a change here.

use std::collections::HashMap;
use std::sync::Mutex;

use basketry_domain::ApiKeyId;
use chrono::{DateTime, Utc};
use sqlx::AnyPool;

/// Counts not yet written, per key.
#[derive(Debug, Default)]
pub struct UsageLog {
    pending: Mutex<HashMap<ApiKeyId, (DateTime<Utc>, i64)>>,
}

impl UsageLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes one authenticated request of `api_key_id` at `at`.
    pub fn record(&self, api_key_id: ApiKeyId, at: DateTime<Utc>) {
        // A poisoned lock only means another request panicked mid-update of
        // a counter; the map itself is still usable.
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pending.entry(api_key_id).or_insert((at, 0));
        entry.0 = entry.0.max(at);
        entry.1 += 1;
    }

    /// Adds the pending counts to `partner_key_usage`; on failure they are
    /// put back for the next flush. Returns how many keys were written.
    pub async fn flush(&self, db: &AnyPool) -> Result<usize, sqlx::Error> {
        let batch: Vec<(ApiKeyId, (DateTime<Utc>, i64))> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let result = Self::write(db, &batch).await;
        if result.is_err() {
            for (id, (at, n)) in batch.iter().cloned() {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                let entry = pending.entry(id).or_insert((at, 0));
                entry.0 = entry.0.max(at);
                entry.1 += n;
            }
        }
        result.map(|()| batch.len())
    }

    async fn write(
        db: &AnyPool,
        batch: &[(ApiKeyId, (DateTime<Utc>, i64))],
    ) -> Result<(), sqlx::Error> {
        let mut tx = db.begin().await?;
        for (id, (at, n)) in batch {
            sqlx::query(
                "INSERT INTO partner_key_usage (api_key_id, last_used_at, request_count) \
                 VALUES ($1, $2, $3) ON CONFLICT (api_key_id) DO UPDATE SET \
                 last_used_at = CASE WHEN partner_key_usage.last_used_at > excluded.last_used_at \
                 THEN partner_key_usage.last_used_at ELSE excluded.last_used_at END, \
                 request_count = partner_key_usage.request_count + excluded.request_count",
            )
            .bind(id.to_string())
            .bind(basketry_store::chain::format_timestamp(at))
            .bind(*n)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    async fn db() -> (tempfile::TempDir, AnyPool) {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("read.db").display());
        let pool = AnyPool::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TABLE partner_key_usage (api_key_id TEXT PRIMARY KEY, \
             last_used_at TEXT NOT NULL, request_count BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        (dir, pool)
    }

    async fn row(pool: &AnyPool, id: ApiKeyId) -> (String, i64) {
        let r = sqlx::query(
            "SELECT last_used_at, request_count FROM partner_key_usage WHERE api_key_id = $1",
        )
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .unwrap();
        (r.get(0), r.get(1))
    }

    #[tokio::test]
    async fn flushing_adds_counts_and_keeps_the_latest_use() {
        let (_dir, pool) = db().await;
        let log = UsageLog::new();
        let (a, b) = (
            ApiKeyId::from_uuid(uuid::Uuid::now_v7()),
            ApiKeyId::from_uuid(uuid::Uuid::now_v7()),
        );
        let t0 = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for s in [5, 1, 3] {
            log.record(a, t0 + chrono::TimeDelta::seconds(s));
        }
        log.record(b, t0);
        assert_eq!(log.flush(&pool).await.unwrap(), 2);
        assert_eq!(
            row(&pool, a).await,
            ("2026-11-21T10:00:05.000000Z".to_string(), 3)
        );
        assert_eq!(
            log.flush(&pool).await.unwrap(),
            0,
            "nothing pending after a flush"
        );
        log.record(a, t0 + chrono::TimeDelta::seconds(2));
        log.flush(&pool).await.unwrap();
        assert_eq!(
            row(&pool, a).await,
            ("2026-11-21T10:00:05.000000Z".to_string(), 4)
        );
        assert_eq!(row(&pool, b).await.1, 1);
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_the_counts_for_the_next_one() {
        let (_dir, pool) = db().await;
        let log = UsageLog::new();
        let a = ApiKeyId::from_uuid(uuid::Uuid::now_v7());
        log.record(a, Utc::now());
        sqlx::query("ALTER TABLE partner_key_usage RENAME TO moved")
            .execute(&pool)
            .await
            .unwrap();
        assert!(log.flush(&pool).await.is_err());
        sqlx::query("ALTER TABLE moved RENAME TO partner_key_usage")
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(log.flush(&pool).await.unwrap(), 1);
        assert_eq!(row(&pool, a).await.1, 1);
    }
}
