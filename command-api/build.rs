//! Rebuilds when an embedded sqlx migration is added or changed, and
//! compiles this package's PostgreSQL tests as ignored unless
//! `BASKETRY_TEST_POSTGRES_URL` is set (see the test-support crate).

#[path = "../test-support/build/postgres_tests.rs"]
mod postgres_tests;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    postgres_tests::configure();
}
