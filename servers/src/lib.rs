//! redis-server and PostgreSQL as child processes, for `flash up` (persistent data, logs,
//! supervision, a clean shutdown) and the test harness (temp folders, free ports, killed on
//! drop). Both callers start them here; only where the data lives and how long it must last
//! differ.
//!
//! Map of the crate:
//! - [`process`]: [`Server`], one child process: its log, its stop signal, a clean stop with
//!   a timeout, killed on drop; optionally supervised (its own process group, stopped by the
//!   kernel should the parent die).
//! - [`redis`]: redis-server's command line ([`RedisConfig`]) and the wait until it answers.
//! - [`cluster`]: running nodes made into one Redis Cluster, and the wait until it is ready.
//! - [`postgres`]: a cluster made by initdb (as `nobody` when root), `postgres` on a port,
//!   the wait until it answers.
//! - [`paths`]: the built module's location, and paths shown as a user would type them.

pub mod cluster;
pub mod paths;
pub mod postgres;
pub mod process;
pub mod redis;

pub use paths::{MODULE_FILE, find_module, shown};
pub use process::{Server, Stopped, Supervision};
pub use redis::{Aof, ClusterNode, RedisConfig};
