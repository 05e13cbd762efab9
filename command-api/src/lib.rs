//! Basketry command API (actix-web): every write of the marketplace over
//! HTTP — authentication, rate limits, idempotency and the command handlers
//! (parse → load → decide → append).
//!
//! Empty until the command API issue lands; the crate exists so the
//! workspace has its final shape and dependency direction from the start.
