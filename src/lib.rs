//! The `basketry` program as a library: configuration and the composition
//! of command API, query API and projectors, shared by the binary and its
//! black-box tests.

pub mod audit;
pub mod config;
pub mod demo;
pub mod observability;
pub mod startup;
