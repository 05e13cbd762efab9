//! Runs the conformance suite ([`basketry_store::conformance`]) against every
//! backend: one trial per (backend, case), named `backend::case`.
//!
//! * memory and SQLite always (a fresh store / temporary file per trial);
//! * PostgreSQL when `BASKETRY_TEST_POSTGRES_URL` is set (a throwaway
//!   database per trial, dropped afterwards); when it is not, its trials are
//!   reported as ignored — or, with `BASKETRY_REQUIRE_POSTGRES=1` (CI), the
//!   run fails;
//! * KurrentDB when `BASKETRY_TEST_KURRENTDB_URL` is set (a shared server:
//!   each trial works in streams of its own unique prefix);
//!   `BASKETRY_REQUIRE_KURRENTDB=1` likewise turns the skip into a failure.
//!
//! Each trial gets its own multi-threaded tokio runtime with two workers.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use basketry_store::conformance::{self, Case, Fixture};
use basketry_store::kurrent::KurrentStore;
use basketry_store::memory::MemoryStore;
use basketry_store::postgres::PostgresStore;
use basketry_store::sqlite::SqliteStore;
use basketry_store::EventStore;
use basketry_test_support::postgres::TestDatabase;
use libtest_mimic::{Arguments, Failed, Trial};
use uuid::Uuid;

/// Turns a hung case into a failure. Not a speed requirement.
const CASE_TIMEOUT: Duration = Duration::from_secs(300);

const POSTGRES_URL: &str = "BASKETRY_TEST_POSTGRES_URL";
const REQUIRE_POSTGRES: &str = "BASKETRY_REQUIRE_POSTGRES";
const KURRENTDB_URL: &str = "BASKETRY_TEST_KURRENTDB_URL";
const REQUIRE_KURRENTDB: &str = "BASKETRY_REQUIRE_KURRENTDB";

#[derive(Clone)]
enum Backend {
    Memory,
    Sqlite,
    Postgres(String),
    Kurrent(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
            Backend::Kurrent(_) => "kurrentdb",
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> bool {
    env_var(name).is_some_and(|v| v.trim() != "0" && !v.trim().eq_ignore_ascii_case("false"))
}

fn main() -> ExitCode {
    let args = Arguments::from_args();

    // (backend, skipped) in the order they are listed.
    let mut backends = vec![(Backend::Memory, false), (Backend::Sqlite, false)];
    for (url_var, require_var, example, make) in [
        (
            POSTGRES_URL,
            REQUIRE_POSTGRES,
            "postgres://postgres@localhost:5432/postgres",
            Backend::Postgres as fn(String) -> Backend,
        ),
        (
            KURRENTDB_URL,
            REQUIRE_KURRENTDB,
            "kurrentdb://localhost:2113?tls=false",
            Backend::Kurrent as fn(String) -> Backend,
        ),
    ] {
        match env_var(url_var) {
            Some(url) => backends.push((make(url), false)),
            None => {
                let backend = make(String::new());
                if required(require_var) {
                    eprintln!(
                        "error: {} backend required ({require_var}=1) but {url_var} is not set; \
                         set {url_var}={example} to run it",
                        backend.name()
                    );
                    return ExitCode::FAILURE;
                }
                println!(
                    "{} backend: skipped (set {url_var}={example} to run it)",
                    backend.name()
                );
                backends.push((backend, true));
            }
        }
    }

    let mut trials = Vec::new();
    for (backend, skipped) in &backends {
        for (case_name, case) in conformance::cases() {
            let backend = backend.clone();
            trials.push(
                Trial::test(format!("{}::{case_name}", backend.name()), move || {
                    run_trial(&backend, case)
                })
                .with_ignored_flag(*skipped),
            );
        }
    }
    libtest_mimic::run(&args, trials).exit_code()
}

fn run_trial(backend: &Backend, case: Case) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("building the tokio runtime: {e}"))?;
    let ns = format!("conf{}", &Uuid::new_v4().simple().to_string()[..12]);
    let result = rt.block_on(async {
        match backend {
            Backend::Memory => {
                let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
                run_case(case, Fixture::single(store, ns)).await
            }
            Backend::Sqlite => {
                let dir = tempfile::TempDir::new().map_err(|e| format!("temp dir: {e}"))?;
                let path = dir.path().join("events.db");
                let store = SqliteStore::open(&path)
                    .await
                    .map_err(|e| format!("opening SQLite at {}: {e}", path.display()))?;
                // A second store on the same file, as a second process would open it.
                let peer = SqliteStore::open(&path)
                    .await
                    .map_err(|e| format!("opening SQLite a second time: {e}"))?;
                let result = run_case(
                    case,
                    Fixture {
                        store: Arc::new(store),
                        peer: Arc::new(peer),
                        ns,
                    },
                )
                .await;
                drop(dir);
                result
            }
            Backend::Postgres(url) => {
                let db = TestDatabase::create_on(url)
                    .await
                    .map_err(|e| e.to_string())?;
                let db_url = db.url().to_string();
                let result = async {
                    let store = PostgresStore::connect(&db_url)
                        .await
                        .map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
                    let peer = PostgresStore::connect(&db_url)
                        .await
                        .map_err(|e| format!("connecting to PostgreSQL a second time: {e}"))?;
                    run_case(
                        case,
                        Fixture {
                            store: Arc::new(store),
                            peer: Arc::new(peer),
                            ns,
                        },
                    )
                    .await
                }
                .await;
                // Dropped (forcibly: a store may still hold connections)
                // whatever the case returned.
                let dropped = db.drop_now().await.map_err(|e| e.to_string());
                result.and(dropped)
            }
            Backend::Kurrent(url) => {
                // A shared server: the case's unique stream prefix keeps it
                // apart from other trials and earlier runs.
                let store = KurrentStore::connect(url)
                    .map_err(|e| format!("connecting to KurrentDB: {e}"))?;
                let peer = KurrentStore::connect(url)
                    .map_err(|e| format!("connecting to KurrentDB a second time: {e}"))?;
                run_case(
                    case,
                    Fixture {
                        store: Arc::new(store),
                        peer: Arc::new(peer),
                        ns,
                    },
                )
                .await
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(10));
    result.map_err(Failed::from)
}

async fn run_case(case: Case, fixture: Fixture) -> Result<(), String> {
    match tokio::time::timeout(CASE_TIMEOUT, case(fixture)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "the case did not finish within {} s (hung?)",
            CASE_TIMEOUT.as_secs()
        )),
    }
}
