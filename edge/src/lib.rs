//! The edge: buyers' HTTP and WebSocket traffic, turned into FLASH commands. It reaches
//! the engine only through `flash-client` (commands, and the stock events of
//! [`flash_client::StockEvents`]); its one key of its own, the revoked-sessions stream, it
//! reads and writes with plain Redis commands (`session/revoked.rs`).
//!
//! Map of the crate:
//! - [`server`]: the accept loop, the connection caps (per process, per address), each
//!   connection's timeouts (header, body, idle) and bounded header buffer, the open-file
//!   limit, graceful shutdown, the embedded worker (every sale served); one file per part under `server/`.
//! - [`routes`]: `match (method, path)` in `routes/mod.rs`, building one [`routes::Call`] per
//!   request (`routes/context.rs`: the route, the sale (`/sales/{sale}/…` or the default
//!   sale), the caller, the JSON body and its `user_id`
//!   check, the path's id); one file per group of handlers: session, products (and the
//!   sale), cart, orders, health and metrics, the UI's assets; `body.rs` reads JSON bodies.
//! - [`app`]: the shared state, built once: engine client, database pool, caches, limits.
//! - [`session`]: signed session tokens: the caller is proven, never read from the body;
//!   `session/revoked.rs` the signed-out tokens every edge refuses.
//! - [`health`]: Redis and PostgreSQL probed once a second, for `/healthz`.
//! - [`limits`]: rate limits per IP and per user; `limits/connections.rs`: live connections
//!   per address, capped, each held as a slot (for WebSockets, and for every connection).
//! - [`catalog`]: the sales the shop runs and each sale's products from PostgreSQL, held
//!   in memory briefly (one snapshot per sale).
//! - [`hub`]: live stock: one subscription per sale with clients (`hub/sales.rs`), coalesced per product, fanned out to
//!   every WebSocket client. `hub/mod.rs` the hub and its reads, `table.rs` the latest
//!   values and their ordering, `subscription.rs` stock events into the table and
//!   read-backs, `source.rs` FLASH.AVAILABLE, `ticker.rs` the tick thread, `counters.rs`
//!   its figures.
//! - [`ws`]: the `/ws/catalog` WebSocket: `ws/mod.rs` the protocol and its settings,
//!   `handshake.rs` the upgrade checks, `session/` one session loop per client (its tests in
//!   `session/tests.rs`).
//! - [`metrics`]: the Prometheus exposition.
//! - [`error`]: every refusal as a status and a JSON body with a stable code.
//! - [`settings`]: flags and environment.

pub mod app;
pub mod catalog;
pub mod error;
pub mod health;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod session;
pub mod settings;
pub mod ws;
