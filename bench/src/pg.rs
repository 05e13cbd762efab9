//! Throwaway PostgreSQL databases: created per run, dropped after.

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection};

/// A database created for this run; call [`Throwaway::drop_db`] when done.
pub struct Throwaway {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl Throwaway {
    /// Creates `basketry_bench_{pid}_{suffix}` on the server of `admin_url`.
    pub async fn create(admin_url: &str, suffix: &str) -> anyhow::Result<Self> {
        let name = format!("basketry_bench_{}_{suffix}", std::process::id());
        let mut conn = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {admin_url}"))?;
        conn.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
            .await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .context("creating the benchmark database")?;
        conn.close().await?;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url, |(base, _)| base);
        Ok(Self {
            admin_url: admin_url.to_string(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    /// Drops the database, disconnecting whoever still uses it.
    pub async fn drop_db(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect(&self.admin_url).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .context("dropping the benchmark database")?;
        conn.close().await?;
        Ok(())
    }
}
