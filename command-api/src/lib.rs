//! Basketry command API (actix-web): every write of the marketplace over
//! HTTP — authentication, rate limits, idempotency and the command handlers
//! (parse → load → decide → append).
//!
//! * [`routes`] — the Commands table of SPEC §4, one thin handler each;
//! * [`command`] — the shared write path: rate limits, `Idempotency-Key`,
//!   load → decide → append with bounded retries, consistency tokens;
//! * [`auth`] — JWT and partner-key authentication;
//! * [`limits`] — rate-limit and idempotency stores;
//! * [`billing`] — the billing run;
//! * [`error`] — the one place errors become problem+json responses;
//! * [`app`] — mounting the routes on an actix app;
//! * [`openapi`] — the OpenAPI 3.1 description of the routes.

pub mod app;
pub mod auth;
pub mod billing;
pub mod command;
pub mod error;
pub mod limits;
pub mod load;
pub mod openapi;
pub mod routes;
pub mod views;
