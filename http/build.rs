//! Compiles this package's PostgreSQL tests as ignored unless
//! `BASKETRY_TEST_POSTGRES_URL` is set (see the test-support crate).

#[path = "../test-support/build/postgres_tests.rs"]
mod postgres_tests;

fn main() {
    postgres_tests::configure();
}
