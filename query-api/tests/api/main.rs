//! Black-box HTTP tests of the query API: the real app on port 0 (beside
//! the command API, as production mounts them) over a fresh read-model
//! database per test, seeded as the projectors would seed it. Every case
//! runs on SQLite and on PostgreSQL (a throwaway database from
//! `basketry_test_support::postgres`); without `BASKETRY_TEST_POSTGRES_URL`
//! at build time the PostgreSQL cases are reported as ignored.

mod helpers;

mod api_keys;
mod audit;
mod baskets;
mod consistency;
mod errors;
mod execution;
mod ledger;
mod marketplace;
mod openapi;
mod security;
mod subscriptions;
