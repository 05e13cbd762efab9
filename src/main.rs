//! `basketry` — one binary for every role and tool of Basketry.
//!
//! Thin wiring only: parse the command line, open what it names, call into
//! the library crates.

use basketry::{config, startup};

use std::process::ExitCode;

use anyhow::Context;
use basketry_store::{chain, Backend, EventStore, Position};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "basketry",
    version,
    about = "Event-sourced marketplace of options-strategy baskets"
)]
struct Cli {
    #[command(flatten)]
    settings: config::Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the command API, the projectors and the query API on one port
    /// (embedded SQLite under the data directory unless stores are
    /// configured), or only the parts named with --role.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "BASKETRY_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
        /// Run only these parts (repeatable): `command`, `query`,
        /// `projector`. Default: all three in one process. Projector roles
        /// share a lease, so only one runs the projectors at a time.
        #[arg(long = "role", value_enum)]
        roles: Vec<Role>,
    },
    /// Print a JWT signed with the configured (or generated) HS256 secret,
    /// and nothing else (with the configured issuer and first audience).
    /// Refused where HS256 is off (a JWKS deployment, by default).
    Token {
        /// The person's e-mail: their identity.
        #[arg(long)]
        email: String,
        /// A group to include, e.g. `Admins`, `Auditors`, `Executors`.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 12)]
        ttl_hours: u64,
    },
    /// Load a realistic marketplace (24 templates, 3 partners, 2 000 users
    /// and subscriptions, months of billing) through the API, then print an
    /// admin token and a partner key to try.
    Demo {
        /// How many users (and subscriptions) to load.
        #[arg(long, default_value_t = basketry::demo::DEFAULT_USERS)]
        users: usize,
    },
    /// Billing.
    Billing {
        #[command(subcommand)]
        command: BillingCommand,
    },
    /// Read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Inspect the event store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Prove the log and the read models, or see them as of an instant.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The revenue-share ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Read the whole log and check (a) every stream's hash chain, (b) that
    /// every event decodes through the upcasters, (c) that every read model
    /// equals a replay of the log into a scratch database, row by row, and
    /// (d) the ledger totals per partner and month recomputed from the
    /// charge events. Exits 0 only when all four hold, 1 when one fails.
    Verify {
        /// Print the report as one JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Replay into this database (`sqlite://…` or `postgres://…`,
        /// empty) instead of a temporary SQLite file.
        #[arg(long)]
        scratch: Option<String>,
        /// Also check the log against this signed checkpoint (`basketry
        /// audit checkpoint`): fail naming every stream that is gone,
        /// shorter or different, and report gaps in positions up to its
        /// head. Needs --public-key; a checkpoint whose signature does not
        /// verify is refused.
        #[arg(long, requires = "public_key")]
        checkpoint: Option<std::path::PathBuf>,
        /// The auditor's Ed25519 public key (the `.pub` file written by
        /// `audit checkpoint --new-key`).
        #[arg(long, requires = "checkpoint")]
        public_key: Option<std::path::PathBuf>,
    },
    /// Print a checkpoint of the log head (newest position, number of
    /// events, every stream's last revision and hash, a digest over them)
    /// signed with the auditor's Ed25519 key, as JSON on stdout. Keep it
    /// away from the server; `audit verify --checkpoint` then proves that
    /// nothing it saw was removed.
    Checkpoint {
        /// The private key to sign with.
        #[arg(long, conflicts_with = "new_key", required_unless_present = "new_key")]
        key: Option<std::path::PathBuf>,
        /// Make a new key in this file (mode 0600, never overwritten; the
        /// public key goes beside it as FILE.pub) and sign with it.
        #[arg(long)]
        new_key: Option<std::path::PathBuf>,
    },
    /// Replay the log up to an instant into a new database and print what
    /// the read models said then: subscribers per template, earnings per
    /// partner.
    AsOf {
        /// RFC 3339 (`2026-10-31T18:30:00Z`), or a date `YYYY-MM-DD` for the
        /// end of that day (UTC).
        timestamp: String,
        /// Keep the read models in this database: a file path (SQLite, must
        /// not exist yet) or a `sqlite://` / `postgres://` URL of an empty
        /// database. Default: a temporary file, removed afterwards.
        #[arg(long)]
        out: Option<String>,
        /// Print the report as one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Write a partner's monthly statement exactly as
    /// `GET /partner/statements/{month}` answers it (same bytes, same
    /// digest), from the ledger read model.
    Export {
        /// The partner, e.g. `ZEBU`.
        #[arg(long)]
        partner: String,
        /// The month, `YYYY-MM`.
        #[arg(long)]
        month: String,
        /// `json` (the statement with its digest) or `csv` (its lines).
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExportFormat {
    Json,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Command,
    Query,
    Projector,
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Empty a projector's tables and replay the whole log into them (all
    /// projectors when no name is given). Stop `basketry serve` first.
    Rebuild {
        /// `baskets`, `subscriptions`, `ledger`, `partner_keys`, `schedule` or
        /// `billing`.
        name: Option<String>,
    },
    /// Print each projector's position and lag.
    Status,
}

#[derive(Subcommand)]
enum BillingCommand {
    /// Charge every due period of every ACTIVE subscription, each exactly
    /// once however often this runs (same path as POST /admin/billing/run).
    /// A subscription that cannot be charged is named with the reason and
    /// the others are charged; the exit code is then 1.
    Run {
        /// Charge periods started by this instant (RFC 3339; default now,
        /// never later than now).
        #[arg(long)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Open the store (creating and migrating it if needed) and print its
    /// newest position.
    Status,
    /// Read the whole log and verify every stream's hash chain; exits 1 and
    /// names the first broken link of each stream that fails.
    Verify,
}

fn main() -> ExitCode {
    // The configuration file becomes environment defaults before anything
    // else (clap included) reads the environment, and before the runtime
    // starts threads.
    if let Err(e) = config::apply_config_file() {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> ExitCode {
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command {
        Command::Serve { bind, roles } => {
            init_logging();
            let roles = if roles.is_empty() {
                startup::Roles::ALL
            } else {
                startup::Roles {
                    command: roles.contains(&Role::Command),
                    query: roles.contains(&Role::Query),
                    projector: roles.contains(&Role::Projector),
                }
            };
            let listener =
                std::net::TcpListener::bind(&bind).with_context(|| format!("binding {bind}"))?;
            let app = startup::Application::build_with_roles(&settings, listener, roles).await?;
            eprintln!("basketry listening on http://{bind}");
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token {
            email,
            groups,
            ttl_hours,
        } => {
            // With a JWKS the server refuses HS256 unless it is enabled: a
            // token minted here would not verify, so none is printed.
            anyhow::ensure!(
                settings.hs256_enabled(),
                "BASKETRY_JWKS_URL is set and BASKETRY_JWT_HS256 is not `enabled`: the server \
                 accepts only the identity provider's tokens, so a token minted here would not \
                 verify; get one from the identity provider (or set BASKETRY_JWT_HS256=enabled)"
            );
            let audiences = settings.audiences();
            let token = basketry_command_api::auth::mint_hs256_scoped(
                &settings.jwt_secret()?,
                &email,
                &groups,
                std::time::Duration::from_secs(ttl_hours.saturating_mul(3600)),
                chrono::Utc::now(),
                settings.issuer(),
                audiences.first().map(String::as_str),
            )
            .map_err(|e| anyhow::anyhow!("minting a token: {e}"))?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Billing {
            command: BillingCommand::Run { as_of },
        } => {
            let store = basketry_store::connect(&settings.event_store_url()?)
                .await
                .context("opening the event store")?;
            let read_db = basketry_projections::db::open(&settings.read_db_url()?)
                .await
                .context("opening the read database")?;
            let now = chrono::Utc::now();
            let as_of = as_of.unwrap_or(now);
            anyhow::ensure!(as_of <= now, "--as-of must not be in the future");
            // Bring the billing index up to the log first: no server may be
            // running. Safe beside one that is (checkpoints are fenced).
            if let (Some(head), Some(billing)) = (
                store.head().await?,
                basketry_projections::projectors::named("billing"),
            ) {
                basketry_projections::ProjectorRuntime::new(
                    std::sync::Arc::clone(&store),
                    read_db.clone(),
                    vec![billing],
                )
                .run_until(head)
                .await
                .map_err(|e| anyhow::anyhow!("bringing the billing index up to date: {e}"))?;
            }
            let index = basketry_command_api::billing::SqlDueIndex::new(read_db);
            let meta = basketry_command_api::command::CommandMeta {
                actor: basketry_domain::Actor::System,
                correlation_id: uuid::Uuid::now_v7(),
                idempotency_key: None,
                now,
            };
            let report = basketry_command_api::billing::run(store.as_ref(), &index, &meta, as_of)
                .await
                .map_err(|e| anyhow::anyhow!("billing run: {e}"))?;
            println!(
                "billing run as of {}: {} subscriptions examined, {} charged, {} charges, {} minor units, {} failed",
                basketry_store::chain::format_timestamp(&as_of),
                report.subscriptions_examined,
                report.subscriptions_charged,
                report.charges,
                report.amount_charged,
                report.subscriptions_failed
            );
            for f in &report.failures {
                println!("  FAILED subscription {}: {}", f.subscription_id, f.reason);
            }
            if report.subscriptions_failed > report.failures.len() as u64 {
                println!(
                    "  … and {} more",
                    report.subscriptions_failed - report.failures.len() as u64
                );
            }
            // Some subscriptions were not charged: say so to the scheduler
            // that runs this; the next run tries them again.
            Ok(if report.subscriptions_failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Projections { command } => projections(&settings, command).await,
        Command::Demo { users } => {
            let progress = Progress::new("demo users", "loading");
            let summary =
                basketry::demo::run(&settings, users, |done, total| progress.update(done, total))
                    .await?;
            progress.finish();
            println!(
                "loaded {} templates, {} subscriptions, {} charges",
                summary.templates, summary.subscriptions, summary.charges
            );
            println!("admin token:    {}", summary.admin_token);
            println!("partner key:    {}", summary.partner_key);
            println!("partner secret: {}", summary.partner_secret);
            Ok(ExitCode::SUCCESS)
        }
        Command::Store { command } => {
            let store = basketry_store::connect(&settings.event_store_url()?)
                .await
                .context("opening the event store")?;
            match command {
                StoreCommand::Status => {
                    match store.head().await? {
                        Some(p) => println!("event store open; newest position {p}"),
                        None => println!("event store open; empty"),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                StoreCommand::Verify => verify(store.as_ref()).await,
            }
        }
        Command::Audit { command } => audit(&settings, command).await,
        Command::Ledger {
            command:
                LedgerCommand::Export {
                    partner,
                    month,
                    format,
                    out,
                },
        } => ledger_export(&settings, &partner, &month, format, out.as_deref()).await,
    }
}

async fn audit(settings: &config::Settings, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let store = basketry_store::connect(&settings.event_store_url()?)
        .await
        .context("opening the event store")?;
    match command {
        AuditCommand::Checkpoint { key, new_key } => {
            use basketry::audit::checkpoint;
            let key = match (key, new_key) {
                (_, Some(path)) => {
                    let key = checkpoint::new_key(&path)?;
                    eprintln!(
                        "new key in {}, public key in {}",
                        path.display(),
                        checkpoint::public_key_path(&path).display()
                    );
                    key
                }
                (Some(path), None) => checkpoint::read_key(&path)?,
                (None, None) => anyhow::bail!("give --key FILE or --new-key FILE"),
            };
            let signed = checkpoint::take(store.as_ref(), &key)
                .await
                .map_err(|e| anyhow::anyhow!("checkpoint: {e}"))?;
            println!("{}", serde_json::to_string_pretty(&signed)?);
            eprintln!(
                "checkpoint of {} events in {} streams, head {}",
                signed.checkpoint.events,
                signed.checkpoint.streams.len(),
                signed
                    .checkpoint
                    .head
                    .map_or("-".to_string(), |p| p.to_string())
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            json,
            scratch,
            checkpoint,
            public_key,
        } => {
            let against = match (checkpoint, public_key) {
                (Some(file), Some(key)) => {
                    use basketry::audit::checkpoint as cp;
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    let signed: cp::SignedCheckpoint = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a checkpoint", file.display()))?;
                    let body = cp::open(&signed, &cp::read_public_key(&key)?)?;
                    // SQL backends number the log 1, 2, 3, …; KurrentDB
                    // positions are offsets, so gaps mean nothing there.
                    let sequential = Backend::from_url(&settings.event_store_url()?)?
                        .numbers_positions_densely();
                    Some(cp::CheckpointAudit::new(body, sequential))
                }
                _ => None,
            };
            let live = basketry_projections::db::open(&settings.read_db_url()?)
                .await
                .context("opening the read database")?;
            // Removed on drop, after the audit.
            let temp;
            let scratch_url = match scratch {
                Some(url) => url,
                None => {
                    temp = TempDb::new();
                    temp.url()
                }
            };
            let progress = Progress::new("the log", "verifying");
            let report = basketry::audit::verify_against(
                store,
                &live,
                &scratch_url,
                against,
                |done, total| progress.update(done, total),
            )
            .await
            .map_err(|e| anyhow::anyhow!("audit: {e}"))?;
            progress.finish();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_verify(&report);
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::AsOf {
            timestamp,
            out,
            json,
        } => {
            let at = parse_instant(&timestamp)?;
            // Removed on drop, after the replay.
            let temp;
            let out_url = match &out {
                Some(target) if target.contains("://") => target.clone(),
                Some(path) => {
                    anyhow::ensure!(
                        !std::path::Path::new(path).exists(),
                        "{path} exists; give a new file"
                    );
                    format!("sqlite://{path}")
                }
                None => {
                    temp = TempDb::new();
                    temp.url()
                }
            };
            let progress = Progress::new("the log", "replaying");
            let report = basketry::audit::as_of(store, at, &out_url, |done, total| {
                progress.update(done, total)
            })
            .await
            .map_err(|e| anyhow::anyhow!("as-of: {e}"))?;
            progress.finish();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_as_of(&report, out.is_some());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// RFC 3339, or `YYYY-MM-DD` for the last microsecond of that day (UTC).
fn parse_instant(raw: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").with_context(|| {
        format!("{raw:?} is neither an RFC 3339 instant nor a date written YYYY-MM-DD")
    })?;
    let end = day
        .and_hms_micro_opt(23, 59, 59, 999_999)
        .context("the date is out of range")?;
    Ok(end.and_utc())
}

/// A temporary SQLite database file, removed (with its WAL files) on drop.
struct TempDb(std::path::PathBuf);

impl TempDb {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("basketry-audit-{}.db", uuid::Uuid::now_v7())))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            // Best effort: a leftover file in the temp directory is harmless.
            let _ = std::fs::remove_file(path);
        }
    }
}

fn print_verify(report: &basketry::audit::VerifyReport) {
    let mark = |ok: bool| if ok { "OK  " } else { "FAIL" };
    println!(
        "{} events in {} streams, newest position {}",
        report.events,
        report.streams,
        report.head.as_deref().unwrap_or("-")
    );
    let chains = &report.hash_chains;
    println!(
        "{} hash chains: {} broken",
        mark(chains.ok),
        chains.breaks.len()
    );
    for b in &chains.breaks {
        println!(
            "       stream {} breaks at revision {}: {}",
            b.stream_id, b.revision, b.reason
        );
    }
    let decoding = &report.decoding;
    println!(
        "{} decoding: {} event types and versions, {} events do not decode",
        mark(decoding.ok),
        decoding.decoded.len(),
        decoding.failures.len()
    );
    for f in &decoding.failures {
        println!(
            "       stream {} revision {} ({}@{}, event {}): {}",
            f.stream_id, f.revision, f.event_type, f.schema_version, f.event_id, f.reason
        );
    }
    let models = &report.read_models;
    println!(
        "{} read models equal a replay of the log ({} tables)",
        mark(models.ok),
        models.tables.len()
    );
    for t in &models.tables {
        println!(
            "       {} {:<20} {:>8} rows live, {:>8} replayed, at {}{}",
            mark(t.ok),
            t.table,
            t.live_rows,
            t.rebuilt_rows,
            t.position.as_deref().unwrap_or("-"),
            if t.ok {
                String::new()
            } else {
                format!(", {} rows differ", t.difference_count)
            }
        );
        if let Some(e) = &t.replay_error {
            println!("              the log does not replay: {e}");
        }
        for d in &t.differences {
            println!("              {} row {}", d.kind, d.row);
            for c in &d.columns {
                println!(
                    "                {}: live {} / replayed {}",
                    c.column, c.live, c.rebuilt
                );
            }
        }
    }
    let ledger = &report.ledger_totals;
    println!(
        "{} ledger totals recomputed from {} charges in {} (partner, month, currency) groups",
        mark(ledger.ok),
        ledger.charges,
        ledger.groups
    );
    for m in &ledger.mismatches {
        println!(
            "       {} {} {}: events {} lines / {} gross / {} partner / {} platform; \
             read model {} / {} / {} / {}",
            m.partner_id.as_deref().unwrap_or("(direct)"),
            m.month,
            m.currency,
            m.from_events.lines,
            m.from_events.gross,
            m.from_events.partner_share,
            m.from_events.platform_share,
            m.in_read_model.lines,
            m.in_read_model.gross,
            m.in_read_model.partner_share,
            m.in_read_model.platform_share,
        );
    }
    for e in &ledger.split_errors {
        println!("       {e}");
    }
    if let Some(c) = &report.checkpoint {
        println!(
            "{} checkpoint of {} (head {}): {} streams checked, {} events then, {} now",
            mark(c.ok),
            c.created_at,
            c.head.as_deref().unwrap_or("-"),
            c.streams_checked,
            c.events_at_checkpoint,
            c.events_now
        );
        for s in &c.streams {
            println!("       {}: {}", s.kind, s.detail);
        }
        for g in &c.gaps {
            println!("       positions {} to {} are missing", g.from, g.to);
        }
        if !c.gaps_checked {
            println!("       positions not checked for gaps (not a sequence on this store)");
        }
    }
    println!(
        "{}",
        if report.ok {
            "audit passed"
        } else {
            "audit FAILED"
        }
    );
}

fn print_as_of(report: &basketry::audit::AsOfReport, kept: bool) {
    println!(
        "as of {}: {} events, through position {}",
        report.at,
        report.events,
        report
            .position
            .as_deref()
            .unwrap_or("- (nothing recorded yet)")
    );
    println!("\ntemplates (subscriber_count = ACTIVE + PAUSED):");
    for t in &report.templates {
        println!(
            "  {}  {:>6} subscribers ({} active, {} paused){}  {}",
            t.template_id,
            t.subscriber_count,
            t.active,
            t.paused,
            if t.enabled { "" } else { " [disabled]" },
            t.name
        );
    }
    println!("\npartners (charges recorded by then, minor units):");
    for p in &report.partners {
        println!(
            "  {:<12} {} {:>6} charges  gross {:>12}  partner {:>12}  platform {:>12}",
            p.partner_id, p.currency, p.lines, p.gross, p.partner_share, p.platform_share
        );
    }
    if kept {
        println!("\nread models kept in {}", report.database);
    }
}

async fn ledger_export(
    settings: &config::Settings,
    partner: &str,
    month: &str,
    format: ExportFormat,
    out: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let partner = partner.to_ascii_uppercase();
    let db = basketry_projections::db::open(&settings.read_db_url()?)
        .await
        .context("opening the read database")?;
    // Say so when the ledger has not caught up with the log: the statement
    // would lack the newest charges.
    let store = basketry_store::connect(&settings.event_store_url()?)
        .await
        .context("opening the event store")?;
    let head = store.head().await?;
    let at = basketry_projections::runtime::read_checkpoint(&db, "ledger")
        .await
        .map_err(|e| anyhow::anyhow!("reading the ledger checkpoint: {e}"))?
        .map(|c| c.position);
    if head.is_some() && at < head {
        eprintln!(
            "warning: the ledger read model is at position {}, the log at {}; \
             start basketry serve (or run basketry projections rebuild ledger) for the newest lines",
            at.map_or("-".to_string(), |p| p.to_string()),
            head.map_or("-".to_string(), |p| p.to_string()),
        );
    }
    let statement = basketry_query_api::ledger::Statement::load(&db, &partner, month)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let body = match format {
        ExportFormat::Json => statement.to_json(),
        ExportFormat::Csv => statement.to_csv(),
    };
    match out {
        Some(path) => std::fs::write(path, body.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(body.as_bytes())?;
            stdout.flush()?;
        }
    }
    eprintln!(
        "statement {partner} {month}: {} lines, sha256 digest {}",
        statement.lines.len(),
        statement.digest()
    );
    Ok(ExitCode::SUCCESS)
}

/// Structured logs on stderr: human-readable by default, one JSON object
/// per line with `BASKETRY_LOG_FORMAT=json`; the level comes from
/// `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("BASKETRY_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn projections(
    settings: &config::Settings,
    command: ProjectionsCommand,
) -> anyhow::Result<ExitCode> {
    use basketry_projections::runtime::ProjectorRuntime;
    let store = basketry_store::connect(&settings.event_store_url()?)
        .await
        .context("opening the event store")?;
    let db = basketry_projections::db::open(&settings.read_db_url()?)
        .await
        .context("opening the read database")?;
    let runtime = ProjectorRuntime::new(store, db, basketry_projections::projectors::all());
    match command {
        ProjectionsCommand::Rebuild { name } => {
            if let Some(n) = &name {
                anyhow::ensure!(
                    basketry_projections::projectors::named(n).is_some(),
                    "no projector named {n:?}; the projectors are {}",
                    basketry_projections::projectors::all()
                        .iter()
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let started = std::time::Instant::now();
            let progress = Progress::new(name.as_deref().unwrap_or("all projectors"), "rebuilding");
            runtime
                .rebuild(name.as_deref(), |done, total| progress.update(done, total))
                .await
                .map_err(|e| anyhow::anyhow!("rebuild: {e}"))?;
            progress.finish();
            let events = runtime
                .status()
                .await
                .map_err(|e| anyhow::anyhow!("status: {e}"))?
                .iter()
                .map(|s| s.events_applied)
                .max()
                .unwrap_or(0);
            let secs = started.elapsed().as_secs_f64();
            println!(
                "rebuilt {} from {events} events in {secs:.1} s ({:.0} events/s)",
                name.as_deref().unwrap_or("all projectors"),
                events as f64 / secs.max(1e-9)
            );
        }
        ProjectionsCommand::Status => {
            for s in runtime
                .status()
                .await
                .map_err(|e| anyhow::anyhow!("status: {e}"))?
            {
                println!(
                    "{:<14} position {:<12} applied {:<10} lag {} events / {:.1} s{}",
                    s.name,
                    s.position.map_or("-".to_string(), |p| p.to_string()),
                    s.events_applied,
                    s.lag_events,
                    s.lag_seconds,
                    s.last_error
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on a terminal, plain lines (every 10 %) otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    what: String,
    last_decile: std::cell::Cell<u64>,
}

impl Progress {
    fn new(what: &str, verb: &str) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(format!("{verb} {what}"));
            bar
        });
        Self {
            bar,
            what: format!("{verb} {what}"),
            last_decile: std::cell::Cell::new(u64::MAX),
        }
    }

    fn update(&self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            None => {
                let decile = (done * 10).checked_div(total).unwrap_or(10);
                if decile != self.last_decile.get() {
                    self.last_decile.set(decile);
                    eprintln!("{}: {done}/{total}", self.what);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Reads the log page by page and checks every stream's chain from
/// revision 0 as it goes ([`chain::ChainVerifier`]: one link per stream in
/// memory, not the events).
async fn verify(store: &dyn EventStore) -> anyhow::Result<ExitCode> {
    let mut chains = chain::ChainVerifier::new();
    let mut after: Option<Position> = None;
    loop {
        let page = store.read_all(after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for event in &page {
            if let Some(brk) = chains.push(event) {
                println!("BROKEN {brk}");
            }
        }
    }
    let broken = chains.breaks().len();
    println!(
        "{} events in {} streams; {broken} broken chains",
        chains.events(),
        chains.streams()
    );
    Ok(if broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
