//! Black-box tests of the command API: the whole program on port 0, started
//! in this process by the same start-up code as `basketry serve`
//! (`basketry_test_support::server`), over HTTP.
//!
//! Tests that need PostgreSQL (`…_postgres`, `postgres::…`) are reported as
//! ignored unless `BASKETRY_TEST_POSTGRES_URL` was set when they were built
//! (see README, "Running the PostgreSQL suite");
//! `BASKETRY_TEST_API_BACKEND=postgres` runs every other test on PostgreSQL
//! too.

mod baskets;
mod billing;
mod errors;
mod helpers;
mod hostile;
mod idempotency;
mod identities;
mod openapi;
mod partners;
mod security;
mod subscriptions;
