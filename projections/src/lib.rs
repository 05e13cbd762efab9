//! Basketry projections: the projector runtime (consume the global log from a
//! checkpoint, apply and checkpoint in one transaction, rebuild from zero)
//! and the read-model schema with its sqlx migrations.
//!
//! Empty until the projections issue lands; the crate exists so the
//! workspace has its final shape and dependency direction from the start.
