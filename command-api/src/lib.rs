//! Basketry command API (actix-web): every write of the marketplace over
//! HTTP — authentication, rate limits, idempotency and the command handlers
//! (parse → load → decide → append).
//!
//! * [`routes`] — the command routes, one module per resource (baskets,
//!   templates, subscriptions, partner keys, billing), each handler
//!   parse → decide → append → respond;
//! * [`workflows`] — the commands that span several streams (subscribing,
//!   status changes), each reading every stream once;
//! * [`command`] — the shared write path: rate limits, `Idempotency-Key`,
//!   load → decide → append with bounded retries, consistency tokens;
//! * [`auth`] — JWT and partner-key authentication;
//! * [`limits`] — rate-limit and idempotency stores;
//! * [`load`] — reading streams, every event decoded through the domain;
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
pub mod workflows;
