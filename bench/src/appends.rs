//! B1 (durable appends through `EventStore`, against a naive loop and the
//! fastest bulk load the same engine offers) and B2 (the same workload through
//! `cqrs-es` + `postgres-es`).
//!
//! Workload: `WRITERS` tasks append for a fixed time, one event per append,
//! each append to a fresh stream (`subscription-{uuid}`, expected revision
//! "no stream"), as subscribing does. The payload is the same ~600-byte
//! JSON for every engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use basketry_store::{Actor, EventStore, ExpectedRevision, NewEvent, NewMetadata, StreamId};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Pool;
use uuid::Uuid;

/// Concurrent writers.
pub const WRITERS: usize = 64;

/// Connections of the naive baseline's and the peer's PostgreSQL pools
/// (the server allows 100 for everyone; Basketry's writer uses one).
pub const PG_POOL: u32 = 16;

/// The event data every engine writes.
pub fn payload(i: u64) -> Value {
    json!({
        "subscription_id": Uuid::from_u128(u128::from(i) + 1).to_string(),
        "template_id": "01934b2e-7c1a-7d3e-9f00-5a1b2c3d4e5f",
        "user_id": "6f0e2b7a-1c2d-5e3f-8a9b-0c1d2e3f4a5b",
        "user_email": format!("customer{i}@example.com"),
        "partner": {"partner_id": "ZEBU", "api_key_id": "01934b2e-0000-7000-8000-000000000001"},
        "broker_allocations": [{
            "allocation_id": "01934b2e-0000-7000-8000-000000000002",
            "broker_id": "zebu", "client_id": format!("C{i:06}"),
            "lot_multiplier": "1.50", "priority": 1, "max_lots_per_order": 50,
            "status": "LINKED"
        }],
        "pricing": {"type": "PAID", "monthly_fee": 99900, "currency": "INR"},
        "subscribed_at": "2026-11-21T09:00:00.000000Z",
    })
}

fn new_event(i: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "SubscribedToTemplate".into(),
        schema_version: 1,
        data: payload(i),
        metadata: NewMetadata {
            actor: Actor {
                kind: "partner".into(),
                id: "01934b2e-0000-7000-8000-000000000001".into(),
            },
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
        },
    }
}

/// Appends through Basketry's store for `duration` with `WRITERS` writers;
/// events per second.
pub async fn basketry(store: Arc<dyn EventStore>, duration: Duration) -> anyhow::Result<f64> {
    basketry_with(store, duration, WRITERS).await
}

/// [`basketry`] with `writers` writers.
pub async fn basketry_with(
    store: Arc<dyn EventStore>,
    duration: Duration,
    writers: usize,
) -> anyhow::Result<f64> {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = Arc::clone(&store);
        let counter = Arc::clone(&counter);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let stream = StreamId::parse(format!("subscription-{}", Uuid::now_v7()))?;
                store
                    .append(&stream, ExpectedRevision::NoStream, vec![new_event(i)])
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Appends started before the deadline all finished: count them all.
    Ok(counter.load(Ordering::Relaxed) as f64 / elapsed)
}

const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS plain_events (
    position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, revision INTEGER NOT NULL,
    event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL, schema_version INTEGER NOT NULL,
    data TEXT NOT NULL, metadata TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    recorded_at TEXT NOT NULL, UNIQUE (stream_id, revision))";

const PG_TABLE: &str = "CREATE TABLE IF NOT EXISTS plain_events (
    position BIGSERIAL PRIMARY KEY, stream_id TEXT NOT NULL, revision BIGINT NOT NULL,
    event_id UUID NOT NULL UNIQUE, event_type TEXT NOT NULL, schema_version INTEGER NOT NULL,
    data JSON NOT NULL, metadata JSON NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL, UNIQUE (stream_id, revision))";

const FAKE_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The plain table of the baselines, on SQLite (WAL, synchronous=FULL) or
/// PostgreSQL.
pub enum Plain {
    Sqlite(Pool<sqlx::Sqlite>),
    Postgres(Pool<sqlx::Postgres>),
}

impl Plain {
    /// A fresh SQLite file at `path` (one connection: SQLite has one writer).
    pub async fn sqlite(path: &std::path::Path) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::query(SQLITE_TABLE).execute(&pool).await?;
        Ok(Plain::Sqlite(pool))
    }

    /// The table in the PostgreSQL database at `url`.
    pub async fn postgres(url: &str) -> anyhow::Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(PG_POOL)
            .connect(url)
            .await?;
        sqlx::query(PG_TABLE).execute(&pool).await?;
        Ok(Plain::Postgres(pool))
    }

    async fn insert_one(&self, i: u64) -> anyhow::Result<()> {
        let e = new_event(i);
        let stream = format!("subscription-{}", Uuid::now_v7());
        let data = serde_json::to_string(&e.data)?;
        let metadata = serde_json::to_string(&e.metadata)?;
        match self {
            Plain::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO plain_events (stream_id, revision, event_id, event_type, \
                     schema_version, data, metadata, prev_hash, hash, recorded_at) \
                     VALUES (?, 0, ?, ?, 1, ?, ?, ?, ?, ?)",
                )
                .bind(stream)
                .bind(e.event_id.to_string())
                .bind(e.event_type)
                .bind(data)
                .bind(metadata)
                .bind(FAKE_HASH)
                .bind(FAKE_HASH)
                .bind(chrono::Utc::now().to_rfc3339())
                .execute(pool)
                .await?;
            }
            Plain::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO plain_events (stream_id, revision, event_id, event_type, \
                     schema_version, data, metadata, prev_hash, hash, recorded_at) \
                     VALUES ($1, 0, $2, $3, 1, $4::json, $5::json, $6, $7, now())",
                )
                .bind(stream)
                .bind(e.event_id)
                .bind(e.event_type)
                .bind(data)
                .bind(metadata)
                .bind(FAKE_HASH)
                .bind(FAKE_HASH)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Baseline (a): `WRITERS` tasks insert one row per autocommitted
    /// statement (one transaction per event) for `duration`; events/s.
    pub async fn naive(self: &Arc<Self>, duration: Duration) -> anyhow::Result<f64> {
        let counter = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let plain = Arc::clone(self);
            let counter = Arc::clone(&counter);
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    plain.insert_one(i).await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(counter.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
    }

    /// Baseline (b) on PostgreSQL: `n` events in one transaction, both
    /// ways PostgreSQL offers for bulk loading, each into the emptied
    /// table: `COPY … FROM STDIN` (text format, streamed in 1 MiB chunks)
    /// and `INSERT … SELECT FROM UNNEST(arrays)` (batches of 5 000 rows,
    /// one prepared statement reused). JSON encoding included in both.
    pub async fn postgres_bulk(&self, n: u64) -> anyhow::Result<PgBulk> {
        let Plain::Postgres(pool) = self else {
            anyhow::bail!("postgres_bulk needs the PostgreSQL table");
        };
        sqlx::query("TRUNCATE plain_events").execute(pool).await?;
        let copy = pg_copy(pool, n).await?;
        sqlx::query("TRUNCATE plain_events").execute(pool).await?;
        let unnest = pg_unnest(pool, n).await?;
        Ok(PgBulk { copy, unnest })
    }
}

/// One event's row of the plain table: stream, event id, data, metadata.
fn plain_row(i: u64) -> anyhow::Result<(String, Uuid, String, String)> {
    let e = new_event(i);
    Ok((
        format!("subscription-{}", Uuid::now_v7()),
        e.event_id,
        serde_json::to_string(&e.data)?,
        serde_json::to_string(&e.metadata)?,
    ))
}

/// Baseline (b) on SQLite: `n` events in one transaction through one
/// prepared `INSERT` reused for every row, on a connection of its own
/// (`rusqlite`, on a blocking thread: no hand-off per statement), WAL and
/// `synchronous=FULL` as the store; events/s, JSON encoding included.
pub async fn sqlite_bulk(path: &std::path::Path, n: u64) -> anyhow::Result<f64> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let mut conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute(SQLITE_TABLE, [])?;
        let start = Instant::now();
        let tx = conn.transaction()?;
        {
            let now = chrono::Utc::now().to_rfc3339();
            let mut insert = tx.prepare(
                "INSERT INTO plain_events (stream_id, revision, event_id, event_type, \
                 schema_version, data, metadata, prev_hash, hash, recorded_at) \
                 VALUES (?1, 0, ?2, 'SubscribedToTemplate', 1, ?3, ?4, ?5, ?5, ?6)",
            )?;
            let mut id = String::with_capacity(36);
            for i in 0..n {
                let (stream, event_id, data, metadata) = plain_row(i)?;
                id.clear();
                id.push_str(
                    event_id
                        .hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer()),
                );
                insert.execute(rusqlite::params![
                    stream, id, data, metadata, FAKE_HASH, now
                ])?;
            }
        }
        tx.commit()?;
        Ok(n as f64 / start.elapsed().as_secs_f64())
    })
    .await?
}

/// The two PostgreSQL bulk figures (events/s).
#[derive(Debug, Clone, Copy)]
pub struct PgBulk {
    pub copy: f64,
    pub unnest: f64,
}

impl PgBulk {
    /// The faster of the two, and its name.
    pub fn best(self) -> (f64, &'static str) {
        if self.copy >= self.unnest {
            (self.copy, "COPY")
        } else {
            (self.unnest, "UNNEST")
        }
    }
}

/// Appends `s` to a `COPY … FROM STDIN` text-format field.
fn copy_field(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

async fn pg_copy(pool: &Pool<sqlx::Postgres>, n: u64) -> anyhow::Result<f64> {
    const CHUNK: usize = 1 << 20;
    let start = Instant::now();
    let now = chrono::Utc::now().to_rfc3339();
    let mut tx = pool.begin().await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY plain_events (stream_id, revision, event_id, event_type, schema_version, \
             data, metadata, prev_hash, hash, recorded_at) FROM STDIN",
        )
        .await?;
    let mut buf = String::with_capacity(CHUNK + 4096);
    for i in 0..n {
        let (stream, event_id, data, metadata) = plain_row(i)?;
        buf.push_str(&stream);
        buf.push_str("\t0\t");
        buf.push_str(
            event_id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
        );
        buf.push_str("\tSubscribedToTemplate\t1\t");
        copy_field(&mut buf, &data);
        buf.push('\t');
        copy_field(&mut buf, &metadata);
        for field in [FAKE_HASH, FAKE_HASH, now.as_str()] {
            buf.push('\t');
            buf.push_str(field);
        }
        buf.push('\n');
        if buf.len() >= CHUNK {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_bytes()).await?;
    }
    let rows = copy.finish().await?;
    tx.commit().await?;
    anyhow::ensure!(rows == n, "COPY wrote {rows} rows, expected {n}");
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn pg_unnest(pool: &Pool<sqlx::Postgres>, n: u64) -> anyhow::Result<f64> {
    const ROWS: u64 = 5_000;
    let start = Instant::now();
    let mut tx = pool.begin().await?;
    for from in (0..n).step_by(ROWS as usize) {
        let to = (from + ROWS).min(n);
        let len = (to - from) as usize;
        let (mut streams, mut ids, mut datas, mut metas) = (
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
            Vec::with_capacity(len),
        );
        for i in from..to {
            let (s, id, d, m) = plain_row(i)?;
            streams.push(s);
            ids.push(id);
            datas.push(d);
            metas.push(m);
        }
        sqlx::query(
            "INSERT INTO plain_events (stream_id, revision, event_id, event_type, \
             schema_version, data, metadata, prev_hash, hash, recorded_at) \
             SELECT s, 0, id, 'SubscribedToTemplate', 1, d::json, m::json, $5, $5, now() \
             FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[]) AS t (s, id, d, m)",
        )
        .bind(streams)
        .bind(ids)
        .bind(datas)
        .bind(metas)
        .bind(FAKE_HASH)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// B2's peer: one aggregate per append, one `Recorded` event each, through
/// `cqrs-es`'s framework on `postgres-es`'s repository.
pub mod peer {
    use super::*;
    use cqrs_es::event_sink::EventSink;
    use cqrs_es::{Aggregate, CqrsFramework, DomainEvent};
    use postgres_es::{PostgresCqrs, PostgresEventRepository};
    use serde::{Deserialize, Serialize};

    /// The peer's aggregate: counts what it recorded.
    #[derive(Debug, Default, Serialize, Deserialize)]
    pub struct Journal {
        recorded: u64,
    }

    /// The peer's one event.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum JournalEvent {
        Recorded { payload: Value },
    }

    impl DomainEvent for JournalEvent {
        fn event_type(&self) -> String {
            "Recorded".into()
        }
        fn event_version(&self) -> String {
            "1".into()
        }
    }

    /// Never raised: recording always succeeds.
    #[derive(Debug)]
    pub struct JournalError;

    impl std::fmt::Display for JournalError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("journal error")
        }
    }

    impl std::error::Error for JournalError {}

    impl Aggregate for Journal {
        const TYPE: &'static str = "journal";
        type Command = Value;
        type Event = JournalEvent;
        type Error = JournalError;
        type Services = ();

        async fn handle(
            &mut self,
            command: Value,
            _service: &(),
            sink: &EventSink<Self>,
        ) -> Result<(), JournalError> {
            sink.write(JournalEvent::Recorded { payload: command }, self)
                .await;
            Ok(())
        }

        fn apply(&mut self, _event: JournalEvent) {
            self.recorded += 1;
        }
    }

    /// The peer's schema, as `postgres-es` 0.5 documents it (`db/init.sql`).
    const SCHEMA: [&str; 2] = [
        "CREATE TABLE events (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
         sequence bigint CHECK (sequence >= 0) NOT NULL, event_type text NOT NULL, \
         event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL, \
         PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
        "CREATE TABLE snapshots (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
         last_sequence bigint CHECK (last_sequence >= 0) NOT NULL, \
         current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL, \
         payload json NOT NULL, PRIMARY KEY (aggregate_type, aggregate_id, last_sequence))",
    ];

    /// Runs the workload against the (empty) database at `url`; events/s.
    pub async fn run(url: &str, duration: Duration) -> anyhow::Result<f64> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(PG_POOL)
            .connect(url)
            .await
            .context("connecting the peer's pool")?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        let cqrs: Arc<PostgresCqrs<Journal>> = Arc::new(CqrsFramework::new(
            cqrs_es::persist::PersistedEventStore::new_event_store(PostgresEventRepository::new(
                pool.clone(),
            )),
            vec![],
            (),
        ));
        let counter = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let cqrs = Arc::clone(&cqrs);
            let counter = Arc::clone(&counter);
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let id = format!("subscription-{}", Uuid::now_v7());
                    cqrs.execute(&id, payload(i))
                        .await
                        .map_err(|e| anyhow::anyhow!("cqrs-es execute: {e}"))?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let rate = counter.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        pool.close().await;
        Ok(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::copy_field;

    #[test]
    fn copy_fields_escape_what_the_text_format_reserves() {
        let mut out = String::new();
        copy_field(&mut out, "{\"a\":\"b\\\"c\"}\tx\ny\rz");
        assert_eq!(out, "{\"a\":\"b\\\\\"c\"}\\tx\\ny\\rz");
    }
}
