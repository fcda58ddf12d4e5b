//! The test harness: real servers, started for a test and stopped when it ends. The
//! integration suites live in `tests/`; `cargo xtask bench` uses the same guards.
//!
//! - [`redis_server`]: [`RedisServer`], with or without the Flash module.
//! - [`postgres`]: [`PostgresServer`], initdb into a temp dir, one fresh database per test.
//! - [`stack`]: [`Stack`]: both servers, a catalog, an open sale and the edge, for the edge's
//!   tests and benchmarks.

pub mod postgres;
pub mod redis_server;
pub mod stack;

use std::io;
use std::net::{Ipv4Addr, TcpListener};

pub use postgres::PostgresServer;
pub use redis_server::{RedisServer, ServerOptions, module_path, workspace_root};
pub use stack::{Stack, StackOptions};

/// The built `flash-worker` binary: `$FLASH_WORKER_BIN`, else `target/debug/flash-worker`.
pub fn worker_binary() -> io::Result<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("FLASH_WORKER_BIN") {
        return Ok(path.into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), std::path::PathBuf::from);
    let path = target.join("debug").join("flash-worker");
    if path.exists() {
        Ok(path)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "flash-worker not built: run `cargo build -p flash-worker` (cargo xtask test does it)",
        ))
    }
}

/// A port nobody listens on right now (the OS picks it).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
