//! The worker: checked-out orders from the engine's stream, made permanent in PostgreSQL.
//!
//! Map of the crate (grows with the worker issue):
//! - [`migrate`]: the schema, as versioned SQL files (`migrations/`) applied in order, each
//!   in one transaction, by whichever process starts first.

pub mod migrate;
