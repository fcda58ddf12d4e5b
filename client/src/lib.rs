//! The Flash client that edge and worker share: their only door into Redis.
//!
//! It speaks `FLASH.*` to a redis-server that loaded the module, and runs the same commands
//! as the Lua twin's scripts (EVALSHA, reloaded on NOSCRIPT) where the module is absent:
//! [`FlashClient::connect`] asks the server (every master of a cluster) whether
//! `FLASH.RESERVE` exists and picks.
//!
//! Map of the crate:
//! - [`client`]: [`FlashClient`]: one method per command, typed replies, and [`FlashClient::call`]
//!   for the raw reply.
//! - [`connection`]: [`FlashConnection`]: one connection type for a single server or a
//!   Redis Cluster, chosen by `REDIS_URL` (`redis://…` or `redis+cluster://h:p,h:p,…`).
//! - [`durable`]: [`DurableWrites`]: checkout and buy answered once a replica has them
//!   (WAIT on a connection of their own).
//! - [`replies`]: the typed replies ([`Reservation`], [`Order`], [`CartView`], [`SaleInfo`]).
//! - [`error`]: [`ClientError`]: an engine refusal (with its stable code) apart from
//!   connection trouble and malformed replies.
//! - [`lua`]: the Lua twin's scripts (a header generated from core's contract, `lua/prelude.lua`
//!   and one `lua/*.lua` body each) and the KEYS they are sent with.
//! - [`stream`]: [`OrderStream`]: a sale's order stream through a consumer group, as typed
//!   order entries (read, claim, acknowledge, dead-letter): the worker's way in.
//! - [`events`]: [`StockEvents`]: a sale's stock events from its shard channel as typed
//!   items, on a subscription that pings itself and reconnects with backoff.
//! - `shard_channel`: SSUBSCRIBE on the node serving a channel's slot (a single server, or
//!   the owning master of a cluster, found by MOVED), for [`StockEvents`].

pub mod client;
pub mod connection;
pub mod durable;
pub mod error;
pub mod events;
pub mod lua;
pub mod replies;
mod shard_channel;
pub mod stream;

pub use client::{Backend, FlashClient, SaleSettings};
pub use connection::FlashConnection;
pub use durable::{Durability, DurableWrites};
pub use error::ClientError;
pub use events::{StockEvents, SubscriptionEvent, SubscriptionSettings};
pub use flash_core::cmd::Verdict;
pub use flash_core::wire::StockEvent;
pub use flash_core::{Error as FlashError, ErrorCode};
pub use replies::{
    Admission, CartView, Order, Place, PlaceState, QueueInfo, Reservation, SaleInfo, SkuUnits,
};
pub use stream::{Delivery, OrderStream};
