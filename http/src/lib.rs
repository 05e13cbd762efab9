//! Basketry's HTTP edge, shared by the command API and the query API:
//! everything a request meets before and around a handler, whichever API
//! serves it.
//!
//! * [`auth`] — who is calling: JWT/JWKS verification for people, key and
//!   secret for partners, the [`auth::Principal`] extractor, partner key
//!   usage;
//! * [`problem`] — `application/problem+json`, the one shape of every error
//!   response;
//! * [`error`] — the edge's own errors ([`error::EdgeError`]:
//!   authentication, rate limits, `Idempotency-Key`,
//!   `X-Consistency-Token`) and their statuses;
//! * [`rate`] — the rate limiter: token buckets per minute and per day,
//!   their header values, in memory or in PostgreSQL;
//! * [`admission`] — the rate-limit step both APIs run before a handler;
//! * [`clock`] — the one clock both APIs count time on;
//! * [`consistency`] — the `X-Consistency-Token`, written and read;
//! * [`idempotency_key`] — the `Idempotency-Key` header, validated once;
//! * [`openapi`] — the OpenAPI conventions both documents share: security
//!   schemes, header and parameter helpers;
//! * [`route`] — route table entries and the 404 for unmatched paths;
//! * [`shapes`] — the response bodies both APIs send, one typed struct per
//!   shape; the OpenAPI document is generated from them.
//!
//! Each API keeps one place that maps its own errors to HTTP, on
//! [`problem::Problem`]; the edge's errors map here. The query API depends
//! on this crate and never on the command API.
//!
//! The rate limiter's PostgreSQL table comes from this crate's migrations
//! (`migrations/postgres`), version `20261121100002`, applied by
//! [`rate::PostgresRateLimiter::connect`] beside whatever else shares the
//! database.

pub mod admission;
pub mod auth;
pub mod clock;
pub mod consistency;
pub mod error;
pub mod idempotency_key;
pub mod openapi;
pub mod problem;
pub mod rate;
pub mod route;
pub mod shapes;

pub use auth::{AuthError, AuthState, Principal};
pub use clock::Clock;
pub use error::EdgeError;
pub use idempotency_key::IdempotencyKey;
pub use problem::{Problem, PROBLEM_JSON};
