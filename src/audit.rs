//! Audits: prove the log, replay it, and check the read models against it
//! (`basketry audit verify`, `basketry audit as-of`).
//!
//! [`verify`] reads the whole log once and checks four things:
//!
//! 1. **hash chains** — every stream's chain links from revision 0
//!    ([`ChainVerifier`]); the first broken link of each stream is named by
//!    stream and revision;
//! 2. **decoding** — every stored `(event_type, schema_version)` still
//!    decodes through the upcaster chain of the aggregate its stream belongs
//!    to;
//! 3. **read models** — every projector is replayed into a scratch database
//!    up to the position its live checkpoint is at, and each of its tables
//!    is compared with the live one row by row (a SHA-256 digest per row,
//!    keyed by the primary key); rows missing from the live table, rows the
//!    replay does not produce and rows whose columns differ are named, with
//!    the differing columns;
//! 4. **ledger totals** — lines and sums of `amount`, `partner_share` and
//!    `platform_share` per partner (direct lines apart), month of
//!    `period_start` and currency are recomputed from the
//!    `SubscriptionCharged` events and compared with the ledger read model;
//!    each charge's shares are also checked against its amount and basis
//!    points with the split rule.
//!
//! With a signed checkpoint ([`checkpoint`]), the same pass also checks
//! that nothing the checkpoint saw was removed: every stream it names is
//! still there, as long, with the same event at the checkpointed revision,
//! and no position up to its head is missing.
//!
//! The live read models are read in one snapshot (a read transaction; on
//! PostgreSQL `REPEATABLE READ`), so a running server does not make the
//! comparison race: what is compared is the live state at its checkpoints.
//!
//! [`as_of`] replays every projector into a database of the caller's choice
//! up to the last event recorded at or before an instant, and summarises
//! what a reader would have seen then.

pub mod checkpoint;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use basketry_command_api::command::consistency_token;
use basketry_domain::{
    split, Aggregate, BasketAggregate, DomainEvent, PartnerAggregate, SubscriptionAggregate,
    SubscriptionEvent, UserLinkAggregate,
};
use basketry_projections::db::{self, Backend};
use basketry_projections::runtime::{read_checkpoint, ProjectorRuntime};
use basketry_projections::{ProjectionError, Projector};
use basketry_store::chain::{format_timestamp, ChainVerifier};
use basketry_store::{EventStore, Position, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Column, Row};

/// Events read per page of the log.
const PAGE: usize = 1_000;

/// How many differing rows a table reports in detail (all are counted).
const MAX_DIFFERENCES: usize = 50;

/// Why an audit could not run (a failed check is not an error: it is in the
/// report).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The event store could not be read.
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    /// A database could not be read or written.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Replaying into the scratch database failed.
    #[error("replay: {0}")]
    Replay(#[from] ProjectionError),
    /// The output database is not empty or could not be created.
    #[error("{0}")]
    Output(String),
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Whether all four checks hold.
    pub ok: bool,
    /// Events read.
    pub events: u64,
    /// Streams seen.
    pub streams: usize,
    /// Position of the newest event read (`commit.prepare`).
    pub head: Option<String>,
    /// Check 1.
    pub hash_chains: ChainCheck,
    /// Check 2.
    pub decoding: DecodeCheck,
    /// Check 3.
    pub read_models: ReadModelCheck,
    /// Check 4.
    pub ledger_totals: LedgerCheck,
    /// With `--checkpoint`: nothing the checkpoint saw is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<checkpoint::CheckpointCheck>,
}

/// Every stream's hash chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainCheck {
    /// No stream is broken.
    pub ok: bool,
    /// The first broken link of each broken stream.
    pub breaks: Vec<ChainBreakView>,
}

/// A broken link.
#[derive(Debug, Clone, Serialize)]
pub struct ChainBreakView {
    /// The stream.
    pub stream_id: String,
    /// The revision whose link fails.
    pub revision: u64,
    /// Why.
    pub reason: String,
}

/// Every event decodes.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeCheck {
    /// Every event decodes.
    pub ok: bool,
    /// How many events of each `EventType@version` were decoded.
    pub decoded: BTreeMap<String, u64>,
    /// The events that do not.
    pub failures: Vec<DecodeFailure>,
}

/// An event that does not decode.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeFailure {
    /// Its stream.
    pub stream_id: String,
    /// Its revision.
    pub revision: u64,
    /// Its id.
    pub event_id: String,
    /// Its stored type.
    pub event_type: String,
    /// Its stored version.
    pub schema_version: u32,
    /// What the decoder said.
    pub reason: String,
}

/// Read models equal a replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReadModelCheck {
    /// Every table equals its replay.
    pub ok: bool,
    /// Where the replay was written.
    pub scratch: String,
    /// One entry per table.
    pub tables: Vec<TableComparison>,
}

/// One table, live against replayed.
#[derive(Debug, Clone, Serialize)]
pub struct TableComparison {
    /// The table.
    pub table: String,
    /// The projector that writes it.
    pub projector: String,
    /// The live checkpoint the replay stopped at (`null`: the projector has
    /// not run, so the table must be empty).
    pub position: Option<String>,
    /// Rows in the live table.
    pub live_rows: u64,
    /// Rows the replay produced.
    pub rebuilt_rows: u64,
    /// SHA-256 over the live rows' digests in key order.
    pub live_digest: String,
    /// The same over the replayed rows.
    pub rebuilt_digest: String,
    /// The digests are equal.
    pub ok: bool,
    /// How many rows differ in all.
    pub difference_count: u64,
    /// The first differing rows.
    pub differences: Vec<RowDifference>,
    /// Why the replay of the log stopped before the live checkpoint, when
    /// it did (a log with events removed or changed can make a projector
    /// meet an event that does not fit): the table then does not match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_error: Option<String>,
}

/// A row that is not the same live and replayed.
#[derive(Debug, Clone, Serialize)]
pub struct RowDifference {
    /// The row's primary key, `column=value` joined by `, `.
    pub row: String,
    /// `missing_from_live` (the replay has it, the live table does not),
    /// `not_in_replay` (the live table has a row the log does not produce)
    /// or `differs`.
    pub kind: &'static str,
    /// For `differs`: the columns whose values differ.
    pub columns: Vec<ColumnDifference>,
}

/// One column of a differing row.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDifference {
    /// The column.
    pub column: String,
    /// Its live value.
    pub live: Value,
    /// Its replayed value.
    pub rebuilt: Value,
}

/// Ledger totals recomputed from the charge events.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerCheck {
    /// Every group matches and every charge's split holds.
    pub ok: bool,
    /// The ledger projector's checkpoint the charges were counted up to.
    pub position: Option<String>,
    /// Charges counted.
    pub charges: u64,
    /// (partner, month, currency) groups compared.
    pub groups: usize,
    /// Groups whose totals differ.
    pub mismatches: Vec<LedgerMismatch>,
    /// Charges whose shares do not follow from their amount and basis
    /// points.
    pub split_errors: Vec<String>,
}

/// A (partner, month, currency) group whose totals differ.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerMismatch {
    /// The partner; `null` for direct subscriptions.
    pub partner_id: Option<String>,
    /// `YYYY-MM` of `period_start`.
    pub month: String,
    /// The currency.
    pub currency: String,
    /// Recomputed from the events.
    pub from_events: Sums,
    /// Read from the ledger read model.
    pub in_read_model: Sums,
}

/// Lines and sums of a group, minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sums {
    /// Ledger lines.
    pub lines: i64,
    /// Sum of `amount`.
    pub gross: i64,
    /// Sum of `partner_share`.
    pub partner_share: i64,
    /// Sum of `platform_share`.
    pub platform_share: i64,
}

impl std::ops::AddAssign for Sums {
    fn add_assign(&mut self, other: Sums) {
        self.lines += other.lines;
        self.gross += other.gross;
        self.partner_share += other.partner_share;
        self.platform_share += other.platform_share;
    }
}

/// `(partner or "", month, currency)`.
type GroupKey = (String, String, String);

/// Runs the four checks against `store` and the live read models in
/// `live`, replaying into the (empty or new) database at `scratch_url`.
/// `progress(done, total)` follows the read of the log.
pub async fn verify(
    store: Arc<dyn EventStore>,
    live: &AnyPool,
    scratch_url: &str,
    progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, AuditError> {
    verify_against(store, live, scratch_url, None, progress).await
}

/// [`verify`], and with `against` also the log against a signed checkpoint
/// (opened and its signature checked by the caller).
pub async fn verify_against(
    store: Arc<dyn EventStore>,
    live: &AnyPool,
    scratch_url: &str,
    mut against: Option<checkpoint::CheckpointAudit>,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, AuditError> {
    let projectors = basketry_projections::projectors::all();

    // The live side first, in one snapshot: checkpoints and every table.
    let mut snapshot = LiveSnapshot::read(live, &projectors).await?;
    let ledger_position = snapshot.checkpoint("ledger");

    // One pass over the log: chains, decoding, ledger sums.
    let head = store.head().await?;
    let total = head.map_or(0, |h| h.commit);
    progress(0, total);
    let mut chains = ChainVerifier::new();
    let mut decoded: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut charges = 0u64;
    let mut from_events: BTreeMap<GroupKey, Sums> = BTreeMap::new();
    let mut split_errors = Vec::new();
    let mut last: Option<Position> = None;
    loop {
        let page = store.read_all(last, PAGE).await?;
        let Some(newest) = page.last() else { break };
        last = Some(newest.position);
        for event in &page {
            chains.push(event);
            if let Some(against) = &mut against {
                against.push(event);
            }
            match decode(event) {
                Ok(()) => {
                    *decoded
                        .entry(format!("{}@{}", event.event_type, event.schema_version))
                        .or_default() += 1;
                }
                Err(reason) => failures.push(DecodeFailure {
                    stream_id: event.stream_id.to_string(),
                    revision: event.revision.0,
                    event_id: event.event_id.to_string(),
                    event_type: event.event_type.clone(),
                    schema_version: event.schema_version,
                    reason,
                }),
            }
            if ledger_position.is_some_and(|at| event.position <= at) {
                if let Some((key, sums, error)) = charge(event) {
                    charges += 1;
                    *from_events.entry(key).or_default() += sums;
                    split_errors.extend(error);
                }
            }
        }
        progress(newest.position.commit.min(total), total);
    }

    // Replay each projector to its live checkpoint and compare.
    let scratch = db::open(scratch_url).await?;
    let mut tables = Vec::new();
    for projector in &projectors {
        let position = snapshot.checkpoint(projector.name());
        let mut replay_error = None;
        if let Some(position) = position {
            match ProjectorRuntime::new(
                Arc::clone(&store),
                scratch.clone(),
                vec![projector.clone()],
            )
            .run_until(position)
            .await
            {
                Ok(()) => {}
                // The log no longer replays: a finding, not a reason to
                // stop the audit.
                Err(
                    e @ (ProjectionError::Decode { .. } | ProjectionError::Inconsistent { .. }),
                ) => replay_error = Some(e.to_string()),
                Err(e) => return Err(e.into()),
            }
        }
        for table in projector.tables() {
            let live_rows = snapshot.take_table(table);
            let rebuilt = dump_table(&scratch, table).await?;
            let mut comparison = compare(
                live,
                &scratch,
                projector.as_ref(),
                table,
                position,
                &live_rows,
                &rebuilt,
            )
            .await?;
            if replay_error.is_some() {
                comparison.ok = false;
                comparison.replay_error.clone_from(&replay_error);
            }
            tables.push(comparison);
        }
    }
    scratch.close().await;

    let in_read_model = ledger_groups(live).await?;
    let ledger = compare_ledger(
        ledger_position,
        charges,
        from_events,
        in_read_model,
        split_errors,
    );

    let hash_chains = ChainCheck {
        ok: chains.breaks().is_empty(),
        breaks: chains
            .breaks()
            .iter()
            .map(|b| ChainBreakView {
                stream_id: b.stream_id.clone(),
                revision: b.revision,
                reason: b.reason.clone(),
            })
            .collect(),
    };
    let decoding = DecodeCheck {
        ok: failures.is_empty(),
        decoded,
        failures,
    };
    let read_models = ReadModelCheck {
        ok: tables.iter().all(|t| t.ok),
        scratch: redact(scratch_url),
        tables,
    };
    let checkpoint = against.map(checkpoint::CheckpointAudit::finish);
    Ok(VerifyReport {
        ok: hash_chains.ok
            && decoding.ok
            && read_models.ok
            && ledger.ok
            && checkpoint.as_ref().is_none_or(|c| c.ok),
        events: chains.events(),
        streams: chains.streams(),
        head: last.map(consistency_token),
        hash_chains,
        decoding,
        read_models,
        ledger_totals: ledger,
        checkpoint,
    })
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Decodes `event` through the upcasters of its stream's aggregate.
fn decode(event: &RecordedEvent) -> Result<(), String> {
    fn with<A: Aggregate>(event: &RecordedEvent) -> Result<(), String> {
        A::Event::from_stored(&event.event_type, event.schema_version, event.data.clone())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    let prefix = event
        .stream_id
        .as_str()
        .split_once('-')
        .map_or("", |(p, _)| p);
    match prefix {
        p if p == BasketAggregate::STREAM_PREFIX => with::<BasketAggregate>(event),
        p if p == SubscriptionAggregate::STREAM_PREFIX => with::<SubscriptionAggregate>(event),
        p if p == PartnerAggregate::STREAM_PREFIX => with::<PartnerAggregate>(event),
        p if p == UserLinkAggregate::STREAM_PREFIX => with::<UserLinkAggregate>(event),
        p if p == basketry_domain::api_key_index::ApiKeyIndexAggregate::STREAM_PREFIX => {
            with::<basketry_domain::api_key_index::ApiKeyIndexAggregate>(event)
        }
        _ => Err(format!(
            "stream {} belongs to no known aggregate",
            event.stream_id
        )),
    }
}

/// A charge's group, its sums, and a split error if its shares do not
/// follow from its amount and basis points.
fn charge(event: &RecordedEvent) -> Option<(GroupKey, Sums, Option<String>)> {
    if event.event_type != "SubscriptionCharged" {
        return None;
    }
    let Ok(SubscriptionEvent::SubscriptionCharged(c)) =
        SubscriptionEvent::from_stored(&event.event_type, event.schema_version, event.data.clone())
    else {
        // Reported by the decoding check.
        return None;
    };
    let expected = split(c.amount, c.partner_bps);
    let error = (expected.partner_share != c.partner_share
        || expected.platform_share != c.platform_share
        || c.partner_bps.get() + c.platform_bps.get() != 10_000)
        .then(|| {
            format!(
                "charge {} ({} revision {}): amount {} at {} bps gives partner {} / platform {}, \
                 the event says {} / {} ({} + {} bps)",
                event.event_id,
                event.stream_id,
                event.revision.0,
                c.amount,
                c.partner_bps.get(),
                expected.partner_share,
                expected.platform_share,
                c.partner_share,
                c.platform_share,
                c.partner_bps.get(),
                c.platform_bps.get(),
            )
        });
    let key = (
        c.partner_id.map(|p| p.to_string()).unwrap_or_default(),
        c.period_start.format("%Y-%m").to_string(),
        c.currency.to_string(),
    );
    let sums = Sums {
        lines: 1,
        gross: c.amount,
        partner_share: c.partner_share,
        platform_share: c.platform_share,
    };
    Some((key, sums, error))
}

/// The ledger read model's groups.
async fn ledger_groups(live: &AnyPool) -> Result<BTreeMap<GroupKey, Sums>, AuditError> {
    let rows = sqlx::query(
        "SELECT COALESCE(partner_id, '') AS partner, SUBSTR(period_start, 1, 7) AS month, \
         currency, COUNT(*) AS line_count, CAST(SUM(amount) AS BIGINT) AS gross, \
         CAST(SUM(partner_share) AS BIGINT) AS partner_share, \
         CAST(SUM(platform_share) AS BIGINT) AS platform_share \
         FROM rm_ledger GROUP BY COALESCE(partner_id, ''), SUBSTR(period_start, 1, 7), currency",
    )
    .fetch_all(live)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                (
                    row.try_get::<String, _>("partner")?,
                    row.try_get::<String, _>("month")?,
                    row.try_get::<String, _>("currency")?,
                ),
                Sums {
                    lines: row.try_get("line_count")?,
                    gross: row.try_get("gross")?,
                    partner_share: row.try_get("partner_share")?,
                    platform_share: row.try_get("platform_share")?,
                },
            ))
        })
        .collect()
}

fn compare_ledger(
    position: Option<Position>,
    charges: u64,
    from_events: BTreeMap<GroupKey, Sums>,
    in_read_model: BTreeMap<GroupKey, Sums>,
    split_errors: Vec<String>,
) -> LedgerCheck {
    let mut keys: Vec<&GroupKey> = from_events.keys().chain(in_read_model.keys()).collect();
    keys.sort();
    keys.dedup();
    let mismatches: Vec<LedgerMismatch> = keys
        .iter()
        .filter_map(|key| {
            let events = from_events.get(*key).copied().unwrap_or_default();
            let model = in_read_model.get(*key).copied().unwrap_or_default();
            (events != model).then(|| LedgerMismatch {
                partner_id: Some(key.0.clone()).filter(|p| !p.is_empty()),
                month: key.1.clone(),
                currency: key.2.clone(),
                from_events: events,
                in_read_model: model,
            })
        })
        .collect();
    LedgerCheck {
        ok: mismatches.is_empty() && split_errors.is_empty(),
        position: position.map(consistency_token),
        charges,
        groups: keys.len(),
        mismatches,
        split_errors,
    }
}

// ------------------------------------------------------------- read models

/// A table's rows: primary key text → (row digest, key values).
#[derive(Debug, Default)]
struct TableRows {
    key_columns: Vec<String>,
    rows: BTreeMap<String, (String, Vec<Value>)>,
}

/// The live read models as one snapshot.
struct LiveSnapshot {
    checkpoints: HashMap<String, Position>,
    tables: HashMap<String, TableRows>,
}

impl LiveSnapshot {
    async fn read(live: &AnyPool, projectors: &[Arc<dyn Projector>]) -> Result<Self, AuditError> {
        let mut tx = basketry_query_api::rows::snapshot(live).await?;
        let mut checkpoints = HashMap::new();
        let mut tables = HashMap::new();
        for projector in projectors {
            if let Some(c) = read_checkpoint(&mut *tx, projector.name()).await? {
                checkpoints.insert(projector.name().to_string(), c.position);
            }
            for table in projector.tables() {
                tables.insert(table.to_string(), dump(&mut tx, table).await?);
            }
        }
        tx.commit().await?;
        Ok(Self {
            checkpoints,
            tables,
        })
    }

    fn checkpoint(&self, name: &str) -> Option<Position> {
        self.checkpoints.get(name).copied()
    }

    /// The live rows of `table`, handed over once.
    fn take_table(&mut self, table: &str) -> TableRows {
        self.tables.remove(table).unwrap_or_default()
    }
}

async fn dump_table(pool: &AnyPool, table: &str) -> Result<TableRows, AuditError> {
    let mut conn = pool.acquire().await?;
    dump(&mut conn, table).await
}

/// Every row of `table` (a name from a projector's static list, never
/// input) with its digest.
async fn dump(conn: &mut AnyConnection, table: &str) -> Result<TableRows, AuditError> {
    let key_columns = primary_key(conn, table).await?;
    let rows = sqlx::query(&format!("SELECT * FROM {table}"))
        .fetch_all(&mut *conn)
        .await?;
    let mut out = TableRows {
        key_columns: key_columns.clone(),
        rows: BTreeMap::new(),
    };
    for row in &rows {
        let values = row_values(row);
        let canonical = Value::Object(values.clone()).to_string();
        let digest = hex::encode(Sha256::digest(canonical.as_bytes()));
        let (key, key_values) = if key_columns.is_empty() {
            (canonical, Vec::new())
        } else {
            let key_values: Vec<Value> = key_columns
                .iter()
                .map(|c| values.get(c).cloned().unwrap_or(Value::Null))
                .collect();
            (key_text(&key_columns, &key_values), key_values)
        };
        out.rows.insert(key, (digest, key_values));
    }
    Ok(out)
}

/// `column=value, …`.
fn key_text(columns: &[String], values: &[Value]) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| match v {
            Value::String(s) => format!("{c}={s}"),
            other => format!("{c}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The primary key columns of `table`, in key order.
async fn primary_key(conn: &mut AnyConnection, table: &str) -> Result<Vec<String>, AuditError> {
    let sql = match Backend::of(conn) {
        Backend::Postgres => {
            "SELECT CAST(kcu.column_name AS TEXT) AS name \
             FROM information_schema.table_constraints tc \
             JOIN information_schema.key_column_usage kcu \
               ON kcu.constraint_name = tc.constraint_name \
              AND kcu.table_schema = tc.table_schema \
              AND kcu.table_name = tc.table_name \
             WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_name = $1 \
               AND tc.table_schema = current_schema() \
             ORDER BY kcu.ordinal_position"
        }
        Backend::Sqlite => "SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk",
    };
    let rows = sqlx::query(sql).bind(table).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("name").map_err(AuditError::from))
        .collect()
}

/// A row's columns as JSON values, the same on SQLite and PostgreSQL:
/// integers of any width as numbers, text as strings, `NULL` as null.
fn row_values(row: &AnyRow) -> Map<String, Value> {
    let mut values = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<i16>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
            v.map_or(Value::Null, |b| Value::from(i64::from(b)))
        } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
            v.map_or(Value::Null, Value::from)
        } else {
            Value::String("<unreadable>".into())
        };
        values.insert(column.name().to_string(), value);
    }
    values
}

/// Table digest: SHA-256 over `key \t digest \n` in key order.
fn table_digest(rows: &TableRows) -> String {
    let mut h = Sha256::new();
    for (key, (digest, _)) in &rows.rows {
        h.update(key.as_bytes());
        h.update(b"\t");
        h.update(digest.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

async fn compare(
    live_pool: &AnyPool,
    scratch: &AnyPool,
    projector: &dyn Projector,
    table: &str,
    position: Option<Position>,
    live: &TableRows,
    rebuilt: &TableRows,
) -> Result<TableComparison, AuditError> {
    let mut differences = Vec::new();
    let mut count = 0u64;
    let mut note = |difference: RowDifference| {
        count += 1;
        if differences.len() < MAX_DIFFERENCES {
            differences.push(difference);
        }
    };
    let mut pending_details = Vec::new();
    for (key, (digest, key_values)) in &rebuilt.rows {
        match live.rows.get(key) {
            None => note(RowDifference {
                row: key.clone(),
                kind: "missing_from_live",
                columns: Vec::new(),
            }),
            Some((live_digest, _)) if live_digest != digest => {
                if pending_details.len() < MAX_DIFFERENCES {
                    pending_details.push((key.clone(), key_values.clone()));
                }
                note(RowDifference {
                    row: key.clone(),
                    kind: "differs",
                    columns: Vec::new(),
                });
            }
            Some(_) => {}
        }
    }
    for key in live.rows.keys() {
        if !rebuilt.rows.contains_key(key) {
            note(RowDifference {
                row: key.clone(),
                kind: "not_in_replay",
                columns: Vec::new(),
            });
        }
    }
    // Name the differing columns of the first rows that differ.
    for (key, key_values) in pending_details {
        let live_row = fetch_row(live_pool, table, &rebuilt.key_columns, &key_values).await?;
        let rebuilt_row = fetch_row(scratch, table, &rebuilt.key_columns, &key_values).await?;
        let columns = rebuilt_row
            .iter()
            .filter(|(c, v)| live_row.get(*c) != Some(*v))
            .map(|(c, v)| ColumnDifference {
                column: c.clone(),
                live: live_row.get(c).cloned().unwrap_or(Value::Null),
                rebuilt: v.clone(),
            })
            .collect();
        if let Some(d) = differences.iter_mut().find(|d| d.row == key) {
            d.columns = columns;
        }
    }
    let live_digest = table_digest(live);
    let rebuilt_digest = table_digest(rebuilt);
    Ok(TableComparison {
        table: table.to_string(),
        projector: projector.name().to_string(),
        position: position.map(consistency_token),
        live_rows: live.rows.len() as u64,
        rebuilt_rows: rebuilt.rows.len() as u64,
        ok: count == 0 && live_digest == rebuilt_digest,
        live_digest,
        rebuilt_digest,
        difference_count: count,
        replay_error: None,
        differences,
    })
}

/// One row of `table` by its primary key, as [`row_values`].
async fn fetch_row(
    pool: &AnyPool,
    table: &str,
    key_columns: &[String],
    key_values: &[Value],
) -> Result<Map<String, Value>, AuditError> {
    let condition = key_columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!("SELECT * FROM {table} WHERE {condition}");
    let mut query = sqlx::query(&sql);
    for value in key_values {
        query = match value {
            Value::Number(n) => query.bind(n.as_i64()),
            Value::String(s) => query.bind(s.clone()),
            _ => query.bind(None::<String>),
        };
    }
    Ok(query
        .fetch_optional(pool)
        .await?
        .map(|row| row_values(&row))
        .unwrap_or_default())
}

// ------------------------------------------------------------------ as-of

/// What the read models said at an instant ([`as_of`]).
#[derive(Debug, Clone, Serialize)]
pub struct AsOfReport {
    /// The instant asked for.
    pub at: String,
    /// The last event recorded at or before it (`null`: none was).
    pub position: Option<String>,
    /// Events replayed.
    pub events: u64,
    /// Where the read models were written.
    pub database: String,
    /// Every template published by then, with its subscribers then.
    pub templates: Vec<TemplateAsOf>,
    /// Every partner's ledger totals by then, per currency.
    pub partners: Vec<PartnerAsOf>,
}

/// A template at the instant.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateAsOf {
    /// The template (its basket's id).
    pub template_id: String,
    /// Its name then.
    pub name: String,
    /// Enabled in the marketplace then.
    pub enabled: bool,
    /// Subscriptions not cancelled.
    pub subscriber_count: i64,
    /// Of which ACTIVE.
    pub active: i64,
    /// Of which PAUSED.
    pub paused: i64,
}

/// A partner's earnings by the instant.
#[derive(Debug, Clone, Serialize)]
pub struct PartnerAsOf {
    /// The partner.
    pub partner_id: String,
    /// The currency.
    pub currency: String,
    /// Charges.
    pub lines: i64,
    /// Sum charged.
    pub gross: i64,
    /// The partner's commission.
    pub partner_share: i64,
    /// The platform's share.
    pub platform_share: i64,
}

/// Replays every projector into the empty database at `out_url` up to the
/// last event recorded at or before `at` (the log's prefix: replay stops at
/// the first event recorded after `at`), and summarises it.
pub async fn as_of(
    store: Arc<dyn EventStore>,
    at: DateTime<Utc>,
    out_url: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<AsOfReport, AuditError> {
    let out = db::open(out_url).await?;
    let already: i64 = sqlx::query("SELECT COUNT(*) AS n FROM projector_checkpoints")
        .fetch_one(&out)
        .await?
        .try_get("n")?;
    if already > 0 {
        return Err(AuditError::Output(format!(
            "{} already holds read models; give an empty database",
            redact(out_url)
        )));
    }

    // The prefix of the log recorded by `at`.
    let head = store.head().await?;
    let total = head.map_or(0, |h| h.commit);
    progress(0, total);
    let mut last: Option<Position> = None;
    let mut cut: Option<Position> = None;
    let mut events = 0u64;
    'scan: loop {
        let page = store.read_all(last, PAGE).await?;
        let Some(newest) = page.last() else { break };
        last = Some(newest.position);
        for event in &page {
            if event.metadata.recorded_at > at {
                break 'scan;
            }
            cut = Some(event.position);
            events += 1;
        }
        progress(newest.position.commit.min(total), total);
    }
    if let Some(cut) = cut {
        ProjectorRuntime::new(store, out.clone(), basketry_projections::projectors::all())
            .run_until(cut)
            .await?;
    }
    progress(total, total);

    let templates = sqlx::query(
        "SELECT b.basket_id, b.name, b.is_template, b.subscriber_count, \
         (SELECT COUNT(*) FROM rm_subscriptions s WHERE s.template_id = b.basket_id \
            AND s.status = 'ACTIVE') AS active, \
         (SELECT COUNT(*) FROM rm_subscriptions s WHERE s.template_id = b.basket_id \
            AND s.status = 'PAUSED') AS paused \
         FROM rm_baskets b WHERE b.published_at IS NOT NULL \
         ORDER BY b.subscriber_count DESC, b.basket_id",
    )
    .fetch_all(&out)
    .await?
    .iter()
    .map(|r| {
        Ok(TemplateAsOf {
            template_id: r.try_get("basket_id")?,
            name: r.try_get("name")?,
            enabled: r
                .try_get::<i64, _>("is_template")
                .or_else(|_| r.try_get::<i32, _>("is_template").map(i64::from))?
                != 0,
            subscriber_count: r.try_get("subscriber_count")?,
            active: r.try_get("active")?,
            paused: r.try_get("paused")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let partners = sqlx::query(
        "SELECT partner_id, currency, COUNT(*) AS line_count, \
         CAST(SUM(amount) AS BIGINT) AS gross, \
         CAST(SUM(partner_share) AS BIGINT) AS partner_share, \
         CAST(SUM(platform_share) AS BIGINT) AS platform_share \
         FROM rm_ledger WHERE partner_id IS NOT NULL \
         GROUP BY partner_id, currency ORDER BY partner_id, currency",
    )
    .fetch_all(&out)
    .await?
    .iter()
    .map(|r| {
        Ok(PartnerAsOf {
            partner_id: r.try_get("partner_id")?,
            currency: r.try_get("currency")?,
            lines: r.try_get("line_count")?,
            gross: r.try_get("gross")?,
            partner_share: r.try_get("partner_share")?,
            platform_share: r.try_get("platform_share")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.close().await;
    Ok(AsOfReport {
        at: format_timestamp(&at),
        position: cut.map(consistency_token),
        events,
        database: redact(out_url),
        templates,
        partners,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://audit:s3cret@db:5432/read"),
            "postgres://audit:***@db:5432/read"
        );
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }

    #[test]
    fn keys_name_their_columns() {
        assert_eq!(
            key_text(
                &["template_id".into(), "tag".into()],
                &[Value::from("t1"), Value::from("NIFTY")]
            ),
            "template_id=t1, tag=NIFTY"
        );
        assert_eq!(key_text(&["n".into()], &[Value::from(3)]), "n=3");
    }

    #[test]
    fn ledger_groups_are_compared_both_ways() {
        let key = |p: &str| (p.to_string(), "2026-10".to_string(), "INR".to_string());
        let sums = |gross| Sums {
            lines: 1,
            gross,
            partner_share: gross * 3 / 10,
            platform_share: gross - gross * 3 / 10,
        };
        let events = BTreeMap::from([(key("ZEBU"), sums(1000)), (key(""), sums(500))]);
        let same = compare_ledger(None, 2, events.clone(), events.clone(), Vec::new());
        assert!(same.ok && same.mismatches.is_empty());
        assert_eq!(same.groups, 2);

        let mut model = events.clone();
        model.remove(&key("ZEBU"));
        model.insert(key("ACME"), sums(10));
        let off = compare_ledger(None, 2, events, model, Vec::new());
        assert!(!off.ok);
        let named: Vec<_> = off
            .mismatches
            .iter()
            .map(|m| {
                (
                    m.partner_id.clone(),
                    m.from_events.gross,
                    m.in_read_model.gross,
                )
            })
            .collect();
        assert_eq!(
            named,
            vec![
                (Some("ACME".to_string()), 0, 10),
                (Some("ZEBU".to_string()), 1000, 0)
            ]
        );
    }
}
