//! What Basketry's tests share: throwaway PostgreSQL databases
//! ([`postgres`]), tokens ([`tokens`]), event store wrappers that inject
//! faults ([`stores`]) and the whole program started in-process by the same
//! start-up code as `basketry serve` ([`server`]).
//!
//! A dev-dependency only. Without features it is the PostgreSQL part alone,
//! so a crate's unit tests can use it without linking the rest of Basketry;
//! `tokens`, `stores` and `server` add the other parts (`server` pulls in
//! the root `basketry` package, for integration tests).
//!
//! # PostgreSQL tests that cannot run are reported as ignored
//!
//! Every package with PostgreSQL tests has a `build.rs` that includes
//! `build/postgres_tests.rs`: with `BASKETRY_TEST_POSTGRES_URL` set it
//! compiles the package with `cfg(postgres_tests)`, and each PostgreSQL test
//! carries
//!
//! ```text
//! #[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]
//! ```
//!
//! so without the URL `cargo test` reports it `ignored`, never `ok`.
//! `BASKETRY_REQUIRE_POSTGRES=1` (CI) turns a missing URL into a build
//! failure. A test that runs a SQLite and a PostgreSQL variant is two tests,
//! `…_sqlite` and `…_postgres`, so that only the one that cannot run is
//! ignored.

pub mod postgres;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "stores")]
pub mod stores;
#[cfg(feature = "tokens")]
pub mod tokens;
