//! The test harness: real servers, started for a test and stopped when it ends. The
//! integration suites live in `tests/`; `cargo xtask bench` uses the same guards.
//!
//! - [`redis_server`]: [`RedisServer`], with or without the Flash module.
//! - [`postgres`]: [`PostgresServer`], initdb into a temp dir, one fresh database per test.

pub mod postgres;
pub mod redis_server;

use std::io;
use std::net::{Ipv4Addr, TcpListener};

pub use postgres::PostgresServer;
pub use redis_server::{RedisServer, ServerOptions, module_path, workspace_root};

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
