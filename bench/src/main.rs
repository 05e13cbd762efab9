//! `basketry-bench`: Basketry's benchmark harness.
//!
//! ```text
//! cargo run --release -p basketry-bench -- all          # B1–B7, full sizes
//! cargo run --release -p basketry-bench -- all --quick  # small sizes
//! cargo run --release -p basketry-bench -- b4           # one benchmark
//! ```
//!
//! Each benchmark prints its figure and the ratio to a baseline measured in
//! the same run, then the whole report is printed as a Markdown table (and
//! written to `--out` when given). The verdict column checks the targets of
//! `docs/benchmarks.md`; `--quick` checks the ratios only and marks the
//! absolute targets (rates, latencies, durations) "not checked". Benchmarks
//! print figures; they assert nothing about time.
//!
//! * B1 — durable appends/s through `EventStore` (64 writers, 1 event per
//!   append) on SQLite and PostgreSQL, against a naive one-transaction-per-
//!   event loop and the engine's fastest bulk load of the same rows: one
//!   reused prepared statement in one transaction on SQLite, the faster of
//!   `COPY` and `INSERT … SELECT FROM UNNEST` on PostgreSQL ([`appends`]).
//! * B2 — the same workload through `cqrs-es` + `postgres-es`.
//! * B3 — partner subscribe commands/s over HTTP against `GET /healthz` on
//!   the same server, then latency at half of that rate.
//! * B4 — `ProjectorRuntime::rebuild` from 1 000 000 events against the
//!   fastest full read of the log in the same process ([`scan`]), with peak
//!   RSS at 250 000 and 1 000 000 events.
//! * B5 — `GET /marketplace/templates` with 10 000 templates and 1 000 000
//!   subscriptions against `/healthz`, load from a separate process
//!   ([`loadgen`]).
//! * B6 — `GET /execution/plan` (ndjson) for a minute with 100 000 ACTIVE
//!   subscribers: time to last byte and peak RSS.
//!
//! * B7 — a billing run (`basketry_command_api::billing::run`) over 100 000
//!   due PAID subscriptions on SQLite: charges per second, against reading
//!   and deciding the same subscriptions without appending (the run's
//!   floor).
//!
//! Data for B4–B7 comes from the bulk loader ([`data`]).

mod appends;
mod data;
mod loadgen;
mod pg;
mod report;
mod scan;
mod server;
mod sys;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use basketry_projections::ProjectorRuntime;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;

use crate::data::{Loaded, Scenario, Spec, SubKind};
use crate::loadgen::LoadArgs;
use crate::report::{mib, ms, per_sec, ratio, thousands, Report, Verdict};

#[derive(Parser)]
#[command(
    name = "basketry-bench",
    about = "Basketry's benchmark harness (B1-B7)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// B1 to B7.
    All(Opts),
    /// Durable appends through EventStore vs naive and bulk SQL.
    B1(Opts),
    /// The same appends through cqrs-es + postgres-es.
    B2(Opts),
    /// Partner subscribe over HTTP: throughput, then latency.
    B3(Opts),
    /// Rebuild of every read model vs a raw scan, with peak RSS.
    B4(Opts),
    /// GET /marketplace/templates vs /healthz.
    B5(Opts),
    /// GET /execution/plan (ndjson) for 100 000 ACTIVE subscribers.
    B6(Opts),
    /// A billing run over 100 000 due subscriptions on SQLite.
    B7(Opts),
    /// The load generator (used by B3 and B5 as a separate process).
    Load(LoadArgs),
    /// One B4 phase in a process of its own (so that its peak RSS is the
    /// scan's and the rebuild's alone): scans the log, rebuilds every read
    /// model, prints JSON.
    #[command(hide = true)]
    RebuildPhase {
        /// The SQLite event store file.
        #[arg(long)]
        events: PathBuf,
        /// The SQLite read database file.
        #[arg(long)]
        read: PathBuf,
        /// Events per projector transaction (the runtime's default: 500).
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
    },
}

#[derive(Args, Clone)]
struct Opts {
    /// Small sizes, for development.
    #[arg(long)]
    quick: bool,
    /// A PostgreSQL server URL (trust auth); each run creates and drops
    /// its own databases there.
    #[arg(
        long,
        env = "BASKETRY_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Directory for the benchmark's SQLite files (a temporary directory
    /// under it is removed at the end).
    #[arg(long, env = "BASKETRY_BENCH_DIR")]
    dir: Option<PathBuf>,
}

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// `--quick`: absolute targets are shown but not checked.
    quick: bool,
    append_seconds: f64,
    bulk_events: u64,
    http_seconds: f64,
    rebuild_events: u64,
    rebuild_templates: usize,
    market_templates: usize,
    market_subscriptions: usize,
    hot_templates: usize,
    hot_subscriptions: usize,
}

impl Sizes {
    fn of(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                append_seconds: 2.0,
                bulk_events: 20_000,
                http_seconds: 3.0,
                rebuild_events: 40_000,
                rebuild_templates: 100,
                market_templates: 300,
                market_subscriptions: 20_000,
                hot_templates: 10,
                hot_subscriptions: 2_000,
            }
        } else {
            Self {
                quick,
                append_seconds: 6.0,
                bulk_events: 200_000,
                http_seconds: 8.0,
                rebuild_events: 1_000_000,
                rebuild_templates: 1_000,
                market_templates: 10_000,
                market_subscriptions: 1_000_000,
                hot_templates: 100,
                hot_subscriptions: 100_000,
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.cmd {
            Cmd::Load(args) => loadgen::run(args).await,
            Cmd::RebuildPhase {
                events,
                read,
                batch_size,
            } => rebuild_phase(&events, &read, batch_size).await,
            Cmd::All(o) => run(o, &["b1", "b2", "b3", "b4", "b5", "b6", "b7"]).await,
            Cmd::B1(o) => run(o, &["b1"]).await,
            Cmd::B2(o) => run(o, &["b2"]).await,
            Cmd::B3(o) => run(o, &["b3"]).await,
            Cmd::B4(o) => run(o, &["b4"]).await,
            Cmd::B5(o) => run(o, &["b5"]).await,
            Cmd::B6(o) => run(o, &["b6"]).await,
            Cmd::B7(o) => run(o, &["b7"]).await,
        }
    })
}

/// Figures one benchmark hands to a later one.
#[derive(Default)]
struct Shared {
    postgres_appends: Option<f64>,
}

async fn run(opts: Opts, which: &[&str]) -> anyhow::Result<()> {
    let sizes = Sizes::of(opts.quick);
    let mut report = Report::default();
    println!(
        "# basketry-bench {}",
        if opts.quick { "(quick)" } else { "" }
    );
    for (k, v) in sys::machine() {
        println!("{k}: {v}");
    }
    let base = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)?;
    let scratch = tempfile::Builder::new()
        .prefix("basketry-bench-")
        .tempdir_in(&base)
        .context("creating the scratch directory")?;
    // BASKETRY_BENCH_KEEP=1 keeps the data for profiling or inspection.
    let keep = std::env::var_os("BASKETRY_BENCH_KEEP").is_some();
    let started = Instant::now();
    let mut shared = Shared::default();
    for b in which {
        println!("\n## {}", b.to_uppercase());
        let t = Instant::now();
        let dir = scratch.path().join(b);
        std::fs::create_dir_all(&dir)?;
        let result = match *b {
            "b1" => b1(&opts, sizes, &dir, &mut report, &mut shared).await,
            "b2" => b2(&opts, sizes, &mut report, &mut shared).await,
            "b3" => b3(sizes, &dir, &mut report).await,
            "b4" => b4(sizes, &dir, &mut report).await,
            "b5" => b56(sizes, &dir, &mut report, true, which.contains(&"b6")).await,
            "b6" => {
                if which.contains(&"b5") {
                    Ok(()) // run with B5's data
                } else {
                    b56(sizes, &dir, &mut report, false, true).await
                }
            }
            "b7" => b7(sizes, &dir, &mut report).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            report.note(format!("{} failed: {e:#}", b.to_uppercase()));
        }
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        println!(
            "({} took {:.1} s)",
            b.to_uppercase(),
            t.elapsed().as_secs_f64()
        );
    }
    report.note(format!(
        "total time {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        sys::loadavg()
    ));
    if keep {
        println!("data kept in {}", scratch.keep().display());
    }
    let md = report.markdown();
    println!("\n## Report\n\n{md}");
    if let Some(out) = &opts.out {
        let mut text = String::from("Machine:\n\n");
        for (k, v) in sys::machine() {
            text.push_str(&format!("* {k}: {v}\n"));
        }
        text.push('\n');
        text.push_str(&md);
        std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

async fn b1(
    opts: &Opts,
    sizes: Sizes,
    dir: &Path,
    report: &mut Report,
    shared: &mut Shared,
) -> anyhow::Result<()> {
    let d = seconds(sizes.append_seconds);
    // SQLite.
    let store =
        basketry_store::connect(&format!("sqlite://{}", dir.join("events.db").display())).await?;
    let ours = appends::basketry(store, d).await?;
    let naive = Arc::new(appends::Plain::sqlite(&dir.join("naive.db")).await?);
    let naive_rate = naive.naive(d).await?;
    let bulk_rate = appends::sqlite_bulk(&dir.join("bulk.db"), sizes.bulk_events).await?;
    report.note(format!(
        "B1 SQLite bulk baseline: {} events in one transaction through one reused prepared \
         INSERT (rusqlite on a thread of its own, WAL, synchronous=FULL, same table and \
         unique indexes): {}",
        thousands(sizes.bulk_events),
        per_sec(bulk_rate)
    ));
    append_rows(
        report,
        opts.quick,
        &Engine {
            name: "SQLite",
            naive_times: 10.0,
            floor: 100_000.0,
        },
        ours,
        naive_rate,
        bulk_rate,
    );
    // Tried: more appends in flight, so that each group commit is larger.
    let store =
        basketry_store::connect(&format!("sqlite://{}", dir.join("wide.db").display())).await?;
    let wide = appends::basketry_with(store, d, 512).await?;
    report.note(format!(
        "B1 tried: SQLite with 512 writers instead of 64: {} (vs {})",
        per_sec(wide),
        per_sec(ours)
    ));

    // PostgreSQL.
    let db = pg::Throwaway::create(&opts.postgres, "b1").await?;
    let result = async {
        let store = basketry_store::connect(&db.url).await?;
        let ours = appends::basketry(store, d).await?;
        let naive = Arc::new(appends::Plain::postgres(&db.url).await?);
        let naive_rate = naive.naive(d).await?;
        let bulk = naive.postgres_bulk(sizes.bulk_events).await?;
        if let appends::Plain::Postgres(pool) = naive.as_ref() {
            pool.close().await;
        }
        anyhow::Ok((ours, naive_rate, bulk))
    }
    .await;
    db.drop_db().await?;
    let (ours, naive_rate, bulk) = result?;
    shared.postgres_appends = Some(ours);
    let (bulk_rate, how) = bulk.best();
    report.note(format!(
        "B1 PostgreSQL bulk baseline: {} events in one transaction, the faster of COPY FROM \
         STDIN (text format, 1 MiB chunks) {} and INSERT … SELECT FROM UNNEST (5 000-row \
         arrays, one prepared statement) {}: {how}",
        thousands(sizes.bulk_events),
        per_sec(bulk.copy),
        per_sec(bulk.unnest)
    ));
    append_rows(
        report,
        opts.quick,
        &Engine {
            name: "PostgreSQL",
            naive_times: 4.0,
            floor: 40_000.0,
        },
        ours,
        naive_rate,
        bulk_rate,
    );
    Ok(())
}

/// B1's targets on one engine.
struct Engine {
    name: &'static str,
    /// Times the naive loop.
    naive_times: f64,
    /// Appends/s (checked on full runs only).
    floor: f64,
}

fn append_rows(report: &mut Report, quick: bool, e: &Engine, ours: f64, naive: f64, bulk: f64) {
    let what = format!("appends/s via EventStore, {}, 64 writers", e.name);
    report.row(
        "B1",
        &format!("{what} vs (a) naive"),
        per_sec(ours),
        per_sec(naive),
        ratio(ours, naive),
        &format!("≥ {}×", e.naive_times),
        Verdict::of(ours >= e.naive_times * naive),
    );
    report.row(
        "B1",
        &format!("{what} vs (b) bulk"),
        per_sec(ours),
        per_sec(bulk),
        ratio(ours, bulk),
        "≥ 0.30×",
        Verdict::of(ours >= 0.3 * bulk),
    );
    report.row(
        "B1",
        &format!("{what}, absolute"),
        per_sec(ours),
        "-".into(),
        "-".into(),
        &format!("≥ {}", per_sec(e.floor)),
        Verdict::absolute(quick, ours >= e.floor),
    );
}

async fn b2(
    opts: &Opts,
    sizes: Sizes,
    report: &mut Report,
    shared: &mut Shared,
) -> anyhow::Result<()> {
    let d = seconds(sizes.append_seconds);
    let ours = match shared.postgres_appends {
        Some(r) => r,
        None => {
            let db = pg::Throwaway::create(&opts.postgres, "b2ours").await?;
            let r = async {
                let store = basketry_store::connect(&db.url).await?;
                appends::basketry(store, d).await
            }
            .await;
            db.drop_db().await?;
            r?
        }
    };
    let db = pg::Throwaway::create(&opts.postgres, "b2peer").await?;
    let peer = appends::peer::run(&db.url, d).await;
    db.drop_db().await?;
    let peer = peer?;
    report.row(
        "B2",
        "appends/s, cqrs-es 0.5 + postgres-es 0.5, PostgreSQL, 64 writers",
        per_sec(peer),
        format!("Basketry {}", per_sec(ours)),
        format!("Basketry {}", ratio(ours, peer)),
        "Basketry ≥ 8×",
        Verdict::of(ours >= 8.0 * peer),
    );
    Ok(())
}

/// Runs the load generator against `server`.
#[allow(clippy::too_many_arguments)]
async fn load(
    server: &server::Server,
    method: &str,
    path: &str,
    headers: Vec<String>,
    body: Option<String>,
    start: u64,
    connections: usize,
    secs: f64,
    rate: f64,
) -> anyhow::Result<loadgen::LoadResult> {
    loadgen::spawn(&LoadArgs {
        url: format!("{}{path}", server.base),
        method: method.into(),
        headers,
        body,
        start,
        connections,
        seconds: secs,
        rate,
    })
    .await
}

async fn b3(sizes: Sizes, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    let app_dir = dir.join("app");
    let server = server::Server::start(&app_dir).await?;
    let admin = server::token("admin@bench.basketry.dev", &["Admins"])?;
    let template =
        server::publish_template(&server, &admin, "B3 template", "09:15", "15:10", 99_900).await?;
    let key = server::partner_key(&server, &admin).await?;
    // The first request verifies the secret (argon2) and fills the
    // credential cache; the measured ones hit the cache.
    server::partner_subscribe(&server, &key, &template, "warm-up@bench.basketry.dev").await?;
    let body = server::partner_subscribe_body(&template, "b3-customer-NNN@bench.basketry.dev")
        .to_string()
        .replace("NNN", "{n}");
    let headers = vec![
        format!("authorization: Bearer {}", key.0),
        format!("x-partner-secret: {}", key.1),
    ];
    // The HTTP floor, on the same server, with as many requests in flight.
    let health = load(
        &server,
        "GET",
        "/healthz",
        vec![],
        None,
        0,
        64,
        sizes.http_seconds,
        0.0,
    )
    .await?;
    let max = load(
        &server,
        "POST",
        "/partner/marketplace/subscribe",
        headers.clone(),
        Some(body.clone()),
        0,
        64,
        sizes.http_seconds,
        0.0,
    )
    .await?;
    let ok_rate = (max.requests - max.errors) as f64 / max.seconds;
    let fixed = load(
        &server,
        "POST",
        "/partner/marketplace/subscribe",
        headers,
        Some(body),
        100_000_000,
        64,
        sizes.http_seconds,
        ok_rate / 2.0,
    )
    .await?;
    let events = server.store.head().await?.map_or(0, |p| p.commit);
    server.stop().await?;
    report.row(
        "B3",
        "partner subscribe commands/s over HTTP (SQLite), max",
        per_sec(ok_rate),
        format!("/healthz {}", per_sec(health.rps)),
        ratio(ok_rate, health.rps),
        "≥ 0.25× /healthz",
        Verdict::of(ok_rate >= 0.25 * health.rps && health.errors == 0),
    );
    report.row(
        "B3",
        &format!(
            "subscribe latency at {} (50 % of max): p50 / p99",
            per_sec(fixed.rps)
        ),
        format!("{} / {}", ms(fixed.p50_us), ms(fixed.p99_us)),
        "-".into(),
        "-".into(),
        "p99 ≤ 20 ms",
        Verdict::absolute(sizes.quick, fixed.p99_us <= 20_000 && fixed.errors == 0),
    );
    report.note(format!(
        "B3: /healthz {} requests ({} errors) with 64 in flight, p99 {}; max run {} requests \
         ({} errors) with 64 in flight, p50 {} p99 {}; fixed-rate run {} requests ({} errors); \
         each subscribe appends 3 events (reservation, subscription, first charge): {} events \
         in the log at the end",
        health.requests,
        health.errors,
        ms(health.p99_us),
        max.requests,
        max.errors,
        ms(max.p50_us),
        ms(max.p99_us),
        fixed.requests,
        fixed.errors,
        thousands(events)
    ));
    Ok(())
}

/// What one B4 phase measured (printed by `rebuild-phase` as JSON).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Phase {
    events: u64,
    /// The fastest of the three scans below: B4's baseline.
    scan_rate: f64,
    /// `read_all` in pages of 500 and of 5 000 events, and one streaming
    /// `SELECT` on a connection of its own ([`scan`]).
    scan_pages: f64,
    scan_large_pages: f64,
    scan_stream: f64,
    /// Peak RSS during the scan, and the RSS before it (KiB).
    scan_peak: u64,
    base_rss: u64,
    rebuild_rate: f64,
    rebuild_secs: f64,
    /// Peak RSS during the rebuild (KiB).
    rebuild_peak: u64,
}

/// `basketry-bench rebuild-phase`: runs in a fresh process.
async fn rebuild_phase(events_path: &Path, read: &Path, batch_size: usize) -> anyhow::Result<()> {
    let store = basketry_store::connect(&format!("sqlite://{}", events_path.display())).await?;
    let read_db = basketry_projections::db::open(&format!("sqlite://{}", read.display()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = ProjectorRuntime::new(
        Arc::clone(&store),
        read_db,
        basketry_projections::projectors::all(),
    )
    .with_config(basketry_projections::RuntimeConfig {
        batch_size,
        ..Default::default()
    });
    let events = store.head().await?.map_or(0, |p| p.commit);
    let base_rss = sys::rss_kib().unwrap_or(0);
    sys::reset_peak_rss();
    let pages = scan::read_all(&store, 500).await?;
    let large_pages = scan::read_all(&store, 5_000).await?;
    let stream = scan::stream(events_path).await?;
    for s in [pages, large_pages, stream] {
        anyhow::ensure!(
            s.events == events,
            "a scan read {} events of {events}",
            s.events
        );
    }
    let scan_rate = pages.rate.max(large_pages.rate).max(stream.rate);
    let scan_peak = sys::peak_rss_kib().unwrap_or(0);
    sys::reset_peak_rss();
    let t = Instant::now();
    runtime
        .rebuild(None, |_, _| {})
        .await
        .map_err(|e| anyhow::anyhow!("rebuild: {e}"))?;
    let rebuild_secs = t.elapsed().as_secs_f64();
    let phase = Phase {
        events,
        scan_rate,
        scan_pages: pages.rate,
        scan_large_pages: large_pages.rate,
        scan_stream: stream.rate,
        scan_peak,
        base_rss,
        rebuild_rate: events as f64 / rebuild_secs,
        rebuild_secs,
        rebuild_peak: sys::peak_rss_kib().unwrap_or(0),
    };
    println!("{}", serde_json::to_string(&phase)?);
    Ok(())
}

/// Runs one phase in a child process, then checks the read models it built.
async fn measure_rebuild(
    dir: &Path,
    loaded: &Loaded,
    batch_size: usize,
) -> anyhow::Result<(Phase, String)> {
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe)
        .arg("rebuild-phase")
        .arg("--batch-size")
        .arg(batch_size.to_string())
        .arg("--events")
        .arg(dir.join("events.db"))
        .arg("--read")
        .arg(dir.join("read.db"))
        .output()
        .await?;
    if !out.status.success() {
        anyhow::bail!(
            "the rebuild phase failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let phase: Phase = serde_json::from_str(text.lines().last().unwrap_or_default())
        .context("reading the rebuild phase's result")?;
    let read_db =
        basketry_projections::db::open(&format!("sqlite://{}", dir.join("read.db").display()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let counts = data::check_counts(&read_db, loaded).await;
    read_db.close().await;
    Ok((phase, counts?))
}

fn add(a: Loaded, b: Loaded) -> Loaded {
    Loaded {
        events: a.events + b.events,
        templates: a.templates + b.templates,
        subscriptions: a.subscriptions + b.subscriptions,
        active: a.active + b.active,
        paused: a.paused + b.paused,
        hot_active: a.hot_active + b.hot_active,
        seconds: a.seconds + b.seconds,
    }
}

async fn b4(sizes: Sizes, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    let scenario = Scenario::record(&dir.join("scenario")).await?;
    let store =
        basketry_store::connect(&format!("sqlite://{}", dir.join("events.db").display())).await?;
    // Subscriptions needed for `events` events in all.
    let per_sub = (5.0 * scenario.subscription_events(SubKind::ColdActive) as f64
        + scenario.subscription_events(SubKind::ColdPaused) as f64
        + 4.0 * scenario.subscription_events(SubKind::FreeActive) as f64)
        / 10.0;
    let fixed = scenario.shared_events()
        + sizes.rebuild_templates * scenario.template_events(data::Kind::Cold);
    let subs_for = |events: u64| ((events as f64 - fixed as f64) / per_sub).max(1.0) as usize;
    let quarter = subs_for(sizes.rebuild_events / 4);
    let all = subs_for(sizes.rebuild_events);
    let spec = |range: std::ops::Range<usize>, first: bool| Spec {
        templates: sizes.rebuild_templates,
        hot_templates: 10,
        subscriptions: range,
        hot_subscriptions: 0,
        with_templates: first,
    };
    let first = data::load(&store, &scenario, spec(0..quarter, true)).await?;
    report.note(format!(
        "B4: bulk loader wrote {} events ({} templates, {} subscriptions) in {:.1} s ({})",
        thousands(first.events),
        first.templates,
        first.subscriptions,
        first.seconds,
        per_sec(first.events as f64 / first.seconds)
    ));
    let (small, counts) = measure_rebuild(dir, &first, 500).await?;
    report.note(format!(
        "B4 at {} events: {counts}",
        thousands(small.events)
    ));
    // Tried: ten times larger projector transactions.
    let (larger, _) = measure_rebuild(dir, &first, 5_000).await?;
    report.note(format!(
        "B4 tried at {} events: batches of 5 000 events instead of 500: rebuild {} (vs {}), \
         peak RSS {} (vs {})",
        thousands(larger.events),
        per_sec(larger.rebuild_rate),
        per_sec(small.rebuild_rate),
        mib(larger.rebuild_peak),
        mib(small.rebuild_peak)
    ));
    let second = data::load(&store, &scenario, spec(quarter..all, false)).await?;
    let loaded = add(first, second);
    let (big, counts) = measure_rebuild(dir, &loaded, 500).await?;
    report.note(format!("B4 at {} events: {counts}", thousands(big.events)));
    let projectors = basketry_projections::projectors::all().len();
    report.row(
        "B4",
        &format!(
            "rebuild of all {projectors} read models from {} events (SQLite)",
            thousands(big.events)
        ),
        per_sec(big.rebuild_rate),
        format!("scan {}", per_sec(big.scan_rate)),
        ratio(big.rebuild_rate, big.scan_rate),
        "≥ 0.25× scan",
        Verdict::of(big.rebuild_rate >= 0.25 * big.scan_rate),
    );
    report.row(
        "B4",
        "rebuild events/s, absolute",
        per_sec(big.rebuild_rate),
        "-".into(),
        "-".into(),
        "≥ 100 000/s",
        Verdict::absolute(sizes.quick, big.rebuild_rate >= 100_000.0),
    );
    let (r_small, r_big) = (small.rebuild_peak, big.rebuild_peak);
    report.row(
        "B4",
        &format!(
            "rebuild peak RSS at {} vs {} events (process of its own)",
            thousands(big.events),
            thousands(small.events)
        ),
        mib(r_big),
        mib(r_small),
        ratio(r_big as f64, r_small as f64),
        "flat (≤ 1.25×)",
        Verdict::of(r_small > 0 && (r_big as f64) <= 1.25 * r_small as f64),
    );
    report.note(format!(
        "B4 scan baseline, the fastest of three full reads of the log into RecordedEvents in the \
         rebuild's process, at {} events: read_all pages of 500 {}, pages of 5 000 {}, one \
         streaming SELECT (rusqlite, one prepared statement) {}",
        thousands(big.events),
        per_sec(big.scan_pages),
        per_sec(big.scan_large_pages),
        per_sec(big.scan_stream)
    ));
    report.note(format!(
        "B4: rebuild took {:.1} s at {} events ({}), {:.1} s at {}; RSS of the phase process \
         before its scan {} / {}, scan peak {} / {}; scan at {} events {}",
        small.rebuild_secs,
        thousands(small.events),
        per_sec(small.rebuild_rate),
        big.rebuild_secs,
        thousands(big.events),
        mib(small.base_rss),
        mib(big.base_rss),
        mib(small.scan_peak),
        mib(big.scan_peak),
        thousands(small.events),
        per_sec(small.scan_rate),
    ));
    Ok(())
}

/// 09:15 IST on Monday 2026-11-23: the hot templates' entry minute.
const PLAN_AT: &str = "2026-11-23T03:45:00Z";

async fn b56(
    sizes: Sizes,
    dir: &Path,
    report: &mut Report,
    run5: bool,
    run6: bool,
) -> anyhow::Result<()> {
    let scenario = Scenario::record(&dir.join("scenario")).await?;
    let app_dir = dir.join("app");
    std::fs::create_dir_all(&app_dir)?;
    let loaded = {
        let store =
            basketry_store::connect(&format!("sqlite://{}", app_dir.join("events.db").display()))
                .await?;
        let loaded = data::load(
            &store,
            &scenario,
            Spec {
                templates: sizes.market_templates,
                hot_templates: sizes.hot_templates,
                subscriptions: 0..sizes.market_subscriptions,
                hot_subscriptions: sizes.hot_subscriptions,
                with_templates: true,
            },
        )
        .await?;
        report.note(format!(
            "B5/B6 data: {} events ({} templates, {} subscriptions of which {} ACTIVE on the \
             09:15 templates) loaded in {:.1} s",
            thousands(loaded.events),
            thousands(loaded.templates),
            thousands(loaded.subscriptions),
            thousands(loaded.hot_active),
            loaded.seconds
        ));
        let read_db = basketry_projections::db::open(&format!(
            "sqlite://{}",
            app_dir.join("read.db").display()
        ))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Preparation, not a measured figure: large batches to save time.
        let runtime = ProjectorRuntime::new(
            Arc::clone(&store),
            read_db.clone(),
            basketry_projections::projectors::all(),
        )
        .with_config(basketry_projections::RuntimeConfig {
            batch_size: 5_000,
            ..Default::default()
        });
        let t = Instant::now();
        runtime
            .catch_up()
            .await
            .map_err(|e| anyhow::anyhow!("projecting: {e}"))?;
        let secs = t.elapsed().as_secs_f64();
        let counts = data::check_counts(&read_db, &loaded).await?;
        report.note(format!(
            "B5/B6 data projected in {secs:.1} s ({}); {counts}",
            per_sec(loaded.events as f64 / secs)
        ));
        read_db.close().await;
        loaded
    };
    let server = server::Server::start(&app_dir).await?;
    let result = async {
        if run5 {
            b5(sizes, &server, report, &loaded).await?;
        }
        if run6 {
            b6(sizes.quick, &server, report, &loaded).await?;
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await?;
    result
}

async fn b5(
    sizes: Sizes,
    server: &server::Server,
    report: &mut Report,
    loaded: &Loaded,
) -> anyhow::Result<()> {
    let user = server::token("browser@bench.basketry.dev", &[])?;
    let auth = vec![format!("authorization: Bearer {user}")];
    let secs = sizes.http_seconds;
    let health = load(server, "GET", "/healthz", vec![], None, 0, 32, secs, 0.0).await?;
    let max = load(
        server,
        "GET",
        "/marketplace/templates",
        auth.clone(),
        None,
        0,
        32,
        secs,
        0.0,
    )
    .await?;
    let max_ok = (max.requests - max.errors) as f64 / max.seconds;
    let fixed = load(
        server,
        "GET",
        "/marketplace/templates",
        auth,
        None,
        0,
        32,
        secs,
        max_ok / 2.0,
    )
    .await?;
    report.row(
        "B5",
        &format!(
            "GET /marketplace/templates req/s ({} templates, {} subscriptions)",
            thousands(loaded.templates),
            thousands(loaded.subscriptions)
        ),
        per_sec(max_ok),
        format!("/healthz {}", per_sec(health.rps)),
        ratio(max_ok, health.rps),
        "≥ 0.50× /healthz",
        Verdict::of(max_ok >= 0.5 * health.rps && max.errors == 0 && health.errors == 0),
    );
    report.row(
        "B5",
        &format!(
            "GET /marketplace/templates latency at {} (50 % of max): p50 / p99",
            per_sec(fixed.rps)
        ),
        format!("{} / {}", ms(fixed.p50_us), ms(fixed.p99_us)),
        "-".into(),
        "-".into(),
        "p99 ≤ 5 ms",
        Verdict::absolute(sizes.quick, fixed.p99_us <= 5_000 && fixed.errors == 0),
    );
    report.note(format!(
        "B5: 32 requests in flight from a separate process; /healthz {} requests p99 {}; \
         templates max run {} requests ({} errors) p99 {}",
        health.requests,
        ms(health.p99_us),
        max.requests,
        max.errors,
        ms(max.p99_us)
    ));
    Ok(())
}

async fn b6(
    quick: bool,
    server: &server::Server,
    report: &mut Report,
    loaded: &Loaded,
) -> anyhow::Result<()> {
    let executor = server::token("executor@bench.basketry.dev", &["Executors"])?;
    let url = format!("{}/execution/plan?at={PLAN_AT}", server.base);
    let mut runs = Vec::new();
    let mut summary = String::new();
    // BASKETRY_BENCH_B6_RUNS=N repeats the plan N times (3 by default), e.g.
    // to profile it.
    let repeats = std::env::var("BASKETRY_BENCH_B6_RUNS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    for _ in 0..repeats {
        let rss_before = sys::rss_kib().unwrap_or(0);
        sys::reset_peak_rss();
        let t = Instant::now();
        let resp = server
            .http
            .get(&url)
            .header("authorization", format!("Bearer {executor}"))
            .header("accept", "application/x-ndjson")
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            anyhow::bail!("GET /execution/plan answered {status}: {text}");
        }
        let mut body = resp.bytes_stream();
        let (mut bytes, mut lines) = (0u64, 0u64);
        let mut tail: Vec<u8> = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            tail.extend_from_slice(&chunk);
            if tail.len() > 4096 {
                tail.drain(..tail.len() - 4096);
            }
        }
        let ttlb = t.elapsed();
        let peak = sys::peak_rss_kib().unwrap_or(0);
        let tail = String::from_utf8_lossy(&tail);
        let end: serde_json::Value = tail
            .trim_end()
            .rsplit('\n')
            .next()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(serde_json::Value::Null);
        if end["type"] != "end" {
            anyhow::bail!("the plan stream ended without its end line");
        }
        summary = format!(
            "{} orders, {} skipped, {} lines, {}",
            end["order_count"],
            end["skipped_count"],
            lines,
            mib(bytes / 1024)
        );
        runs.push((ttlb, peak, peak.saturating_sub(rss_before), bytes));
    }
    runs.sort_by_key(|r| r.0);
    let (median, worst_growth) = (
        runs[runs.len() / 2],
        runs.iter().map(|r| r.2).max().unwrap_or(0),
    );
    let peak = runs.iter().map(|r| r.1).max().unwrap_or(0);
    report.row(
        "B6",
        &format!(
            "GET /execution/plan ndjson, {} ACTIVE subscribers: time to last byte (median of {repeats})",
            thousands(loaded.hot_active)
        ),
        format!("{:.0} ms", median.0.as_secs_f64() * 1000.0),
        "-".into(),
        "-".into(),
        "≤ 1 s",
        Verdict::absolute(quick, median.0 <= Duration::from_secs(1)),
    );
    report.row(
        "B6",
        "peak RSS during the plan (growth over the RSS before it)",
        format!("{} (+{})", mib(peak), mib(worst_growth)),
        format!("body {}", mib(median.3 / 1024)),
        "-".into(),
        "bounded (growth < 64 MiB)",
        Verdict::of(worst_growth < 64 * 1024),
    );
    report.note(format!(
        "B6: {summary}; runs: {}",
        runs.iter()
            .map(|r| format!("{:.0} ms", r.0.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// B7: one billing run over `sizes.hot_subscriptions` PAID ACTIVE
/// subscriptions all due (as of 32 days after they were recorded), from the
/// billing index, on SQLite.
async fn b7(sizes: Sizes, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    use basketry_command_api::billing::{self, SqlDueIndex};
    let scenario = Scenario::record(&dir.join("scenario")).await?;
    let app_dir = dir.join("app");
    std::fs::create_dir_all(&app_dir)?;
    let store =
        basketry_store::connect(&format!("sqlite://{}", app_dir.join("events.db").display()))
            .await?;
    let n = sizes.hot_subscriptions;
    let loaded = data::load(
        &store,
        &scenario,
        Spec {
            // One template of each kind (the loader needs them); every
            // subscription is on the hot, PAID one.
            templates: 4,
            hot_templates: 1,
            subscriptions: 0..n,
            hot_subscriptions: n,
            with_templates: true,
        },
    )
    .await?;
    let read_db =
        basketry_projections::db::open(&format!("sqlite://{}", app_dir.join("read.db").display()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Preparation, not measured: the billing index up to the log.
    ProjectorRuntime::new(
        Arc::clone(&store),
        read_db.clone(),
        basketry_projections::projectors::named("billing")
            .into_iter()
            .collect(),
    )
    .with_config(basketry_projections::RuntimeConfig {
        batch_size: 5_000,
        ..Default::default()
    })
    .catch_up()
    .await
    .map_err(|e| anyhow::anyhow!("projecting the billing index: {e}"))?;
    let as_of = chrono::Utc::now() + chrono::TimeDelta::days(32);
    let meta = basketry_command_api::command::CommandMeta {
        actor: basketry_domain::Actor::System,
        correlation_id: uuid::Uuid::now_v7(),
        idempotency_key: None,
        now: as_of,
    };
    let index = SqlDueIndex::new(read_db.clone());
    let t = Instant::now();
    let run = billing::run(store.as_ref(), &index, &meta, as_of)
        .await
        .map_err(|e| anyhow::anyhow!("billing run: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    let rate = run.charges as f64 / secs;
    // The floor: read each due subscription's stream, as the run does,
    // without deciding or appending.
    let t = Instant::now();
    let mut streams = 0u64;
    let mut after = None;
    loop {
        let page = store.read_all(after, 5_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for e in page
            .iter()
            .filter(|e| e.event_type == "SubscribedToTemplate")
        {
            store
                .read_stream(&e.stream_id, basketry_store::Revision::START)
                .await?;
            streams += 1;
        }
    }
    let read_rate = streams as f64 / t.elapsed().as_secs_f64();
    report.row(
        "B7",
        &format!(
            "billing run over {} due subscriptions (SQLite): charges/s",
            thousands(n as u64)
        ),
        per_sec(rate),
        format!("{} (stream reads)", per_sec(read_rate)),
        ratio(rate, read_rate),
        "≥ 5 000/s",
        Verdict::of(rate >= 5_000.0 && run.subscriptions_failed == 0 && run.charges == n as u64),
    );
    report.note(format!(
        "B7: {} events loaded in {:.1} s; the run examined {} subscriptions, made {} charges \
         ({} failed) in {secs:.2} s",
        thousands(loaded.events),
        loaded.seconds,
        thousands(run.subscriptions_examined),
        thousands(run.charges),
        run.subscriptions_failed,
    ));
    read_db.close().await;
    Ok(())
}
