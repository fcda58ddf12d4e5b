//! The edge: buyers' HTTP and WebSocket traffic, turned into FLASH commands.
//!
//! Map of the crate:
//! - [`server`]: the accept loop, the connection cap, graceful shutdown, the embedded worker.
//! - [`routes`]: `match (method, path)`; one file per group: session, products (and the
//!   sale), cart, orders, health and metrics, the UI's assets; JSON bodies.
//! - [`app`]: the shared state, built once: engine client, database pool, caches, limits.
//! - [`session`]: signed session tokens: the caller is proven, never read from the body.
//! - [`limits`]: rate limits per IP and per user.
//! - [`catalog`]: products from PostgreSQL, held in memory briefly.
//! - [`hub`]: live stock: one Redis subscription per process, coalesced per product, fanned
//!   out to every WebSocket client.
//! - [`ws`]: the `/ws/catalog` WebSocket: the handshake checks and one session loop per client.
//! - [`metrics`]: the Prometheus exposition.
//! - [`error`]: every refusal as a status and a JSON body with a stable code.
//! - [`settings`]: flags and environment.

pub mod app;
pub mod catalog;
pub mod error;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod session;
pub mod settings;
pub mod ws;
