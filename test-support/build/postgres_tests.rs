//! The build-time half of Basketry's PostgreSQL test policy, included by the
//! `build.rs` of every package with PostgreSQL tests.
//!
//! With `BASKETRY_TEST_POSTGRES_URL` set, the package is compiled with
//! `cfg(postgres_tests)` and its PostgreSQL tests run. Without it they are
//! compiled as ignored — `cargo test` lists them as `ignored`, never as
//! `ok` — through
//! `#[cfg_attr(not(postgres_tests), ignore = "set BASKETRY_TEST_POSTGRES_URL to run")]`.
//! `BASKETRY_REQUIRE_POSTGRES=1` (CI) makes a missing URL a build failure,
//! so no PostgreSQL test can be skipped there.

const URL_VAR: &str = "BASKETRY_TEST_POSTGRES_URL";
const REQUIRE_VAR: &str = "BASKETRY_REQUIRE_POSTGRES";

/// Emits `cfg(postgres_tests)` when the URL is set; panics when PostgreSQL
/// is required and the URL is not set.
pub fn configure() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed={URL_VAR}");
    println!("cargo::rerun-if-env-changed={REQUIRE_VAR}");
    let set = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let url = set(URL_VAR);
    let required = set(REQUIRE_VAR).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
    if url.is_some() {
        println!("cargo::rustc-cfg=postgres_tests");
    } else if required {
        panic!(
            "{REQUIRE_VAR}=1 but {URL_VAR} is not set: the PostgreSQL tests would be skipped. \
             Set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/postgres) or unset {REQUIRE_VAR}."
        );
    }
}
