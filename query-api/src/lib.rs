//! Basketry query API (actix-web): read endpoints over the read models, with
//! cursor paging and read-your-writes waiting.
//!
//! Empty until the projections issue lands; the crate exists so the
//! workspace has its final shape and dependency direction from the start.
