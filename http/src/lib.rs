//! Basketry's HTTP edge, shared by the command API and the query API.
//!
//! * [`shapes`] — the response bodies both APIs send, one typed struct per
//!   shape; the OpenAPI document is generated from them.
//!
//! The query API depends on this crate and never on the command API.

pub mod shapes;
