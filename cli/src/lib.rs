//! `flash`: one command to run a whole sale (`flash up`), and the operator's tools. The
//! binary (`main.rs`) parses the command line; the commands live here so tests can run them.
//!
//! Map of the crate:
//! - [`common`]: the settings every tool shares (Redis, PostgreSQL, the sale) and connecting.
//! - [`admin`]: `worker`, `sale create|show`, `stock sync`, `reconcile`, `orders`, `migrate`.
//! - [`up`]: the whole stack as supervised children, with a demo catalog.
//! - [`simulate`]: a flash crowd through the real HTTP edge, then a verification.

pub mod admin;
pub mod common;
pub mod simulate;
pub mod up;
