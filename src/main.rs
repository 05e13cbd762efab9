//! `basketry` — one binary for every role and tool of Basketry.
//!
//! Thin wiring only: parse the command line, open what it names, call into
//! the library crates.

use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// Directory for the embedded SQLite files.
    #[arg(
        long,
        env = "BASKETRY_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    data_dir: PathBuf,
    /// Event store URL: `sqlite://…`, `postgres://…` or `kurrentdb://…`
    /// (default: `events.db` under the data directory).
    #[arg(
        long,
        env = "BASKETRY_EVENT_STORE",
        global = true,
        hide_env_values = true
    )]
    event_store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect the event store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
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

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let url = match cli.event_store {
        Some(url) => url,
        None => {
            std::fs::create_dir_all(&cli.data_dir)
                .with_context(|| format!("creating data directory {}", cli.data_dir.display()))?;
            format!("sqlite://{}", cli.data_dir.join("events.db").display())
        }
    };
    let store = basketry_store::connect(&url)
        .await
        .context("opening the event store")?;
    match cli.command {
        Command::Store { command } => match command {
            StoreCommand::Status => {
                match store.head().await? {
                    Some(p) => println!("event store open; newest position {p}"),
                    None => println!("event store open; empty"),
                }
                Ok(ExitCode::SUCCESS)
            }
            StoreCommand::Verify => verify(store.as_ref()).await,
        },
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
