//! The Flash sale engine, without Redis.
//!
//! Every `FLASH.*` command is parsed from its arguments and applied to a [`Store`], a small
//! trait over the sale's keys. The native module (`module/`) implements the trait with the
//! Redis key API; the unit tests implement it with maps. The Lua twin (`lua/`) mirrors these
//! rules line for line, and one conformance suite (`tests/`) holds both to the same replies.
//!
//! This crate is also the one source of the engine's public contract: every other crate
//! (module, client, worker, edge, tools) takes key names, field names, limits, error words,
//! command facts and the wire formats from here, and the Lua twin gets them as a generated
//! header.
//!
//! Map of the crate:
//! - [`cmd`]: one file per command: `parse(args)` apart from `apply(store)` and
//!   `to_args()`; [`cmd::Command`] dispatches by name; [`cmd::COMMANDS`] is the table of
//!   command facts (name, arity, writes, cart argument, keywords).
//! - [`args`]: the argument reader and the limits on every number and name.
//! - [`error`]: [`Error`] with the stable first words (`SOLDOUT`, `LIMIT`, …).
//! - [`model`]: sale settings, carts and their states, the order entry.
//! - [`keys`]: the key layout: key names, the stock and line field formats, key types.
//! - [`names`]: hash and stream field names, stock event members, reply labels.
//! - [`wire`]: the order stream entry and the stock event, encoded and decoded.
//! - [`queue`]: the waiting room's order (the pre-queue's draw, tickets) and estimates.
//! - [`contract`]: all of the above as one list of named constants (the Lua header).
//! - [`store`]: the [`Store`] trait.
//! - [`reply`]: the reply tree a command returns.

pub mod args;
pub mod cmd;
pub mod contract;
pub mod error;
pub mod keys;
pub mod model;
pub mod names;
pub mod queue;
pub mod reply;
pub mod store;
pub mod wire;

#[cfg(test)]
mod mem;

pub use cmd::{Command, CommandSpec};
pub use error::{Error, ErrorCode};
pub use reply::Reply;
pub use store::Store;
pub use wire::StockEvent;

/// A product id: the PostgreSQL product id. Kept within 2^53 so the Lua twin, whose numbers
/// are doubles, represents every SKU exactly.
pub type Sku = i64;
