//! The worker: checked-out orders from the engine's stream, made permanent in PostgreSQL.
//!
//! Map of the crate:
//! - [`apply`]: one batch of orders in one transaction ([`apply::BatchWriter`]): rows locked
//!   in id order, each order decided whole, a replay a no-op (the order INSERT checks).
//! - [`consumer`]: the loop ([`consumer::run`], the entry point the edge embeds): pending
//!   entries first, claims from dead consumers, new entries in batches; apply, then settle
//!   and acknowledge while the next batch applies; dead letters; retries that never give up.
//! - [`stock`]: `sync` (database stock into the sale) and `reconcile` (the two compared).
//! - [`settings`]: the worker's flags (`flash worker` and `flash edge` share them) and the one
//!   function that turns them into a [`consumer::Config`].
//! - [`migrate`]: the schema, as versioned SQL files (`migrations/`) applied in order, each
//!   in one transaction, by whichever process starts first.

pub mod apply;
pub mod consumer;
pub mod migrate;
pub mod settings;
pub mod stock;
