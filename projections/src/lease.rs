//! A lease so that one process at a time runs the projectors.
//!
//! Scale-out runs the projector role on several machines for availability,
//! but two live runners would only contend (the checkpoint compare-and-set
//! already keeps them from applying an event twice). The holder renews its
//! row in `projector_leases` every third of the lease's time to live; a
//! standby takes the row over once it has expired. The lease lives in the
//! read database, so it works the same on SQLite (processes on one host)
//! and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{AnyPool, Row};
use tokio::sync::watch;

use crate::runtime::ProjectorRuntime;
use crate::ProjectionError;

/// The lease row's name.
const LEASE: &str = "projectors";

/// One contender for the projector lease.
#[derive(Debug, Clone)]
pub struct Lease {
    pool: AnyPool,
    holder: String,
    ttl: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Lease {
    /// A contender identified by a fresh id, holding for `ttl` per renewal.
    pub fn new(pool: AnyPool, ttl: Duration) -> Self {
        Self {
            pool,
            holder: uuid::Uuid::now_v7().to_string(),
            ttl,
        }
    }

    /// This contender's id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes the lease if it is free or expired, or renews it if held;
    /// returns whether this contender holds it now.
    pub async fn try_acquire(&self) -> Result<bool, ProjectionError> {
        let now = now_ms();
        let until = now + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        sqlx::query(
            "INSERT INTO projector_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE projector_leases.holder = excluded.holder OR projector_leases.expires_at < $4",
        )
        .bind(LEASE)
        .bind(&self.holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT holder FROM projector_leases WHERE name = $1")
            .bind(LEASE)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<String, _>(0)? == self.holder,
            None => false,
        })
    }

    /// Whether this contender holds the lease now (held by it and not
    /// expired), without taking or renewing it: for work that only the
    /// holder may do, such as scheduled billing.
    pub async fn is_held(&self) -> Result<bool, ProjectionError> {
        let row = sqlx::query("SELECT holder, expires_at FROM projector_leases WHERE name = $1")
            .bind(LEASE)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => {
                r.try_get::<String, _>(0)? == self.holder && r.try_get::<i64, _>(1)? > now_ms()
            }
            None => false,
        })
    }

    /// Gives the lease up (if held), so a standby need not wait for expiry.
    pub async fn release(&self) -> Result<(), ProjectionError> {
        sqlx::query("DELETE FROM projector_leases WHERE name = $1 AND holder = $2")
            .bind(LEASE)
            .bind(&self.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Runs `runtime`'s projectors on `pool` whenever `lease` is held, standing
/// by otherwise, until `stop` turns true; then finishes the current batch
/// and releases the lease. Losing the lease (a renewal that fails or finds
/// another holder) stops this runner at once.
///
/// Each term runs a [`ProjectorRuntime::successor`] of `runtime`, so batch
/// errors show in `runtime`'s status (what `/readyz` reads); they are
/// cleared when a term ends. `pool` should be the lease's own small pool,
/// not the one requests use, so a flood of requests can stall neither
/// projection nor the lease's renewals
/// (`docs/adr/0013-back-pressure-timeouts-and-pools.md`).
pub async fn run_with_lease(
    runtime: Arc<ProjectorRuntime>,
    pool: AnyPool,
    lease: Lease,
    mut stop: watch::Receiver<bool>,
) {
    let beat = lease.ttl / 3;
    while !*stop.borrow() {
        match lease.try_acquire().await {
            Ok(true) => {
                tracing::info!(holder = lease.holder(), "projector lease acquired");
                let term = Arc::new(runtime.successor(pool.clone()));
                let running = {
                    let term = Arc::clone(&term);
                    tokio::spawn(async move { term.run().await })
                };
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => break,
                        () = tokio::time::sleep(beat) => {}
                    }
                    match lease.try_acquire().await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("projector lease lost to another holder; standing by");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "projector lease renewal failed; standing by");
                            break;
                        }
                    }
                }
                term.stop();
                let _ = running.await;
                runtime.clear_errors();
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "projector lease unavailable; retrying"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            () = tokio::time::sleep(beat) => {}
        }
    }
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "releasing the projector lease failed; it expires by itself");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pool() -> (tempfile::TempDir, AnyPool) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("read.db").display());
        let pool = crate::db::open(&url).await.expect("open");
        (dir, pool)
    }

    #[tokio::test]
    async fn one_contender_holds_the_lease_and_a_standby_takes_over_after_expiry() {
        let (_dir, pool) = pool().await;
        let a = Lease::new(pool.clone(), Duration::from_millis(300));
        let b = Lease::new(pool.clone(), Duration::from_millis(300));
        assert!(a.try_acquire().await.expect("a"));
        assert!(!b.try_acquire().await.expect("b"), "held by a");
        assert!(a.try_acquire().await.expect("a renews"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(b.try_acquire().await.expect("b"), "a's lease expired");
        assert!(!a.try_acquire().await.expect("a"), "now held by b");
        b.release().await.expect("release");
        assert!(
            a.try_acquire().await.expect("a"),
            "released leases are free at once"
        );
    }
}
