//! The Flash sale engine, without Redis.
//!
//! Every `FLASH.*` command is parsed from its arguments and applied to a [`Store`], a small
//! trait over the sale's keys. The native module (`module/`) implements the trait with the
//! Redis key API; the unit tests implement it with maps. The Lua twin (`lua/`) mirrors these
//! rules line for line, and one conformance suite (`tests/`) holds both to the same replies.
//!
//! Map of the crate:
//! - [`cmd`]: one file per command: `parse(args)` apart from `apply(store)`; [`cmd::Command`]
//!   dispatches by name.
//! - [`args`]: the argument reader and the limits on every number and name.
//! - [`error`]: [`Error`] with the stable first words (`SOLDOUT`, `LIMIT`, …).
//! - [`model`]: sale settings, carts and their states, the order entry.
//! - [`keys`]: the key layout, the public contract shared with the Lua twin and the client.
//! - [`store`]: the [`Store`] trait.
//! - [`reply`]: the reply tree a command returns.

pub mod args;
pub mod cmd;
pub mod error;
pub mod keys;
pub mod model;
pub mod reply;
pub mod store;

#[cfg(test)]
mod mem;

pub use cmd::Command;
pub use error::{Error, ErrorCode};
pub use reply::Reply;
pub use store::Store;

/// A product id: the PostgreSQL product id. Kept within 2^53 so the Lua twin, whose numbers
/// are doubles, represents every SKU exactly.
pub type Sku = i64;
