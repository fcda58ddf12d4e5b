//! The worker: checked-out orders from the engine's stream, made permanent in PostgreSQL.
//!
//! Map of the crate:
//! - [`apply`]: one batch of orders in one transaction ([`apply::BatchWriter`]): rows locked
//!   in id order, each order decided whole, a replay a no-op (the order INSERT checks).
//! - [`consumer`]: the loop ([`consumer::run`], the entry point the edge embeds): pending
//!   entries first, claims from dead consumers, new entries in batches; apply, then settle
//!   and acknowledge while the next batch applies; dead letters; retries that never give up.
//! - [`sale_set`]: one worker for many sales ([`run_sales`], the entry point for a set of
//!   sales): a consumer per sale, and the sales of the catalog found while it runs.
//! - [`sales`]: the catalog in PostgreSQL: which sales exist, which products each sells (the
//!   default sale: also every product no sale lists), recording a sale.
//! - [`stock`]: `sync` (database stock into the sale) and `reconcile` (the two compared),
//!   over the sale's products.
//! - [`settings`]: the worker's flags (`flash worker` and `flash edge` share them) and the one
//!   function that turns them into a [`consumer::Config`].
//! - [`migrate`]: the schema, as versioned SQL files (`migrations/`) applied in order, each
//!   in one transaction, by whichever process starts first.
//!
//! Two entry points, both running until their `shutdown` future resolves and never returning
//! on Redis or database trouble (they log it and retry):
//!
//! - one sale: [`consumer::run`]`(config, counters, shutdown)`, the sale in `config.sale`;
//! - a set of sales: [`run_sales`]`(config, sales, counters, shutdown)`, for a process that
//!   consumes many sales (`flash worker --sale a --sale b`, `--all-sales`, or an edge serving
//!   many): one [`consumer::run`] per sale with `config`'s settings and that sale (its own
//!   task and connections, so a sale on another cluster master is read there), `counters`
//!   shared. [`SaleSet::named`] lists the sales; [`SaleSet::all`] takes the default sale and
//!   every sale of the `sales` table, read again every refresh, so a sale recorded while the
//!   worker runs is consumed without a restart (waited for until FLASH.SALE makes it in the
//!   engine). `config.sale` is not used.
//!
//! ```no_run
//! # async fn example(redis: &str, database: &str) {
//! use std::sync::Arc;
//! use flash_worker::consumer::{Config, Counters};
//! use flash_worker::{SaleSet, run_sales};
//!
//! let config = Config::new(redis, database, "demo", "worker-1");
//! let sales = SaleSet::all("demo", flash_worker::sale_set::DEFAULT_CATALOG_REFRESH);
//! run_sales(config, sales, Arc::new(Counters::default()), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # }
//! ```

pub mod apply;
pub mod consumer;
pub mod migrate;
pub mod sale_set;
pub mod sales;
pub mod settings;
pub mod stock;

pub use sale_set::{SaleSet, run_sales};
