//! `basketry` — one binary for every role and tool of Basketry.
//!
//! Thin wiring only: parse the command line, open what it names, call into
//! the library crates.

use basketry::{config, startup};

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use basketry_store::{chain, EventStore, Position, RecordedEvent};
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
    /// and nothing else.
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
        /// `baskets`, `subscriptions`, `ledger` or `partner_keys`.
        name: Option<String>,
    },
    /// Print each projector's position and lag.
    Status,
}

#[derive(Subcommand)]
enum BillingCommand {
    /// Charge every due period of every ACTIVE subscription, each exactly
    /// once however often this runs (same path as POST /admin/billing/run).
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
            let token = basketry_command_api::auth::mint_hs256(
                &settings.jwt_secret()?,
                &email,
                &groups,
                std::time::Duration::from_secs(ttl_hours.saturating_mul(3600)),
                chrono::Utc::now(),
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
            let now = chrono::Utc::now();
            let as_of = as_of.unwrap_or(now);
            anyhow::ensure!(as_of <= now, "--as-of must not be in the future");
            let meta = basketry_command_api::command::CommandMeta {
                actor: basketry_domain::Actor::System,
                correlation_id: uuid::Uuid::now_v7(),
                idempotency_key: None,
                now,
            };
            let report = basketry_command_api::billing::run(store.as_ref(), &meta, as_of)
                .await
                .map_err(|e| anyhow::anyhow!("billing run: {e}"))?;
            println!(
                "billing run as of {}: {} subscriptions examined, {} charged, {} charges, {} minor units",
                basketry_store::chain::format_timestamp(&as_of),
                report.subscriptions_examined,
                report.subscriptions_charged,
                report.charges,
                report.amount_charged
            );
            Ok(ExitCode::SUCCESS)
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
    }
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
                    "no projector named {n:?}; try baskets, subscriptions, ledger or partner_keys"
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

/// Reads the log page by page, groups events by stream and checks each
/// stream's chain from revision 0.
async fn verify(store: &dyn EventStore) -> anyhow::Result<ExitCode> {
    let mut streams: BTreeMap<String, Vec<RecordedEvent>> = BTreeMap::new();
    let mut after: Option<Position> = None;
    let mut total = 0usize;
    loop {
        let page = store.read_all(after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        total += page.len();
        for event in page {
            streams
                .entry(event.stream_id.to_string())
                .or_default()
                .push(event);
        }
    }
    let mut broken = 0usize;
    for events in streams.values_mut() {
        events.sort_by_key(|e| e.revision);
        if let Err(brk) = chain::verify_stream(events) {
            broken += 1;
            println!("BROKEN {brk}");
        }
    }
    println!(
        "{total} events in {} streams; {broken} broken chains",
        streams.len()
    );
    Ok(if broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
