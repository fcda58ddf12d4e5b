//! The test harness: real servers, started for a test and stopped when it ends. The
//! integration suites live in `tests/`; `cargo xtask bench` uses the same guards.
//!
//! - [`redis_server`]: [`RedisServer`], with or without the Flash module.
//! - [`redis_cluster`]: [`RedisCluster`], a real Redis Cluster of such servers.
//! - [`postgres`]: [`PostgresServer`], initdb into a temp dir, one fresh database per test.
//! - [`shard_subscriber`]: [`ShardSubscriber`], a bare SSUBSCRIBE to read the engine's stock
//!   messages as sent.
//! - [`cli_servers`]: [`CliServers`], both servers for running the built `flash` program.
//! - [`stock_events`]: the next item of a live-stock subscription, within a time.
//! - [`stack`]: [`Stack`]: both servers, a catalog, an open sale and the edge, for the edge's
//!   tests and benchmarks.
//! - here: [`flash_binary`], [`free_port`], [`free_cluster_port`].
//!
//! Both guards start their server through `flash-servers`, the code `flash up` starts its own
//! with; they add what tests need: temp folders, free ports, a synchronous API.

pub mod cli_servers;
pub mod postgres;
pub mod redis_cluster;
pub mod redis_server;
pub mod shard_subscriber;
pub mod stack;
pub mod stock_events;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;

pub use cli_servers::{CLI_SALE, CliServers, explain};
pub use flash_servers::MODULE_FILE;
pub use postgres::PostgresServer;
pub use redis_cluster::{ClusterOptions, RedisCluster};
pub use redis_server::{RedisServer, ServerOptions, module_path, workspace_root};
pub use shard_subscriber::ShardSubscriber;
pub use stack::{RedisDeployment, Stack, StackOptions};

/// The built `flash` program: `$FLASH_BIN`, else `flash` in the target folder's debug
/// profile. Panics, saying how to build it, when it is missing.
pub fn flash_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FLASH_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let path = target.join("debug").join("flash");
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p flash-cli` (cargo xtask test does it), or set \
         FLASH_BIN",
        path.display()
    );
    path
}

/// Ports this process will not hand out again: every port it handed out (two tests running at
/// once must not both be given a port neither has bound yet), and the ports of killed servers
/// (see [`redis_server::RedisServer::kill`]).
static RETIRED_PORTS: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

fn retire_port(port: u16) {
    RETIRED_PORTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(port);
}

fn is_retired(port: u16) -> bool {
    RETIRED_PORTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&port)
}

/// Runs an `async fn(Backend)` test once per backend: `mod name { fn module(); fn lua(); }`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn module() {
                    super::$name(flash_client::Backend::Module).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn lua() {
                    super::$name(flash_client::Backend::Lua).await
                }
            }
        )*
    };
}

/// A port nobody listens on right now (the OS picks it), never handed out by this process
/// before.
pub fn free_port() -> io::Result<u16> {
    let port = unclaimed_port()?;
    retire_port(port);
    Ok(port)
}

/// A free port whose cluster bus port (+ 10000) is free too, for a Redis Cluster node.
pub fn free_cluster_port() -> io::Result<u16> {
    let port = unclaimed_cluster_port()?;
    retire_port(port);
    retire_port(port + 10_000);
    Ok(port)
}

/// The first of `count` consecutive free ports whose bus ports (+ 10000) are free too: what
/// `flash up --shards` takes from its `--redis-port`.
pub fn free_cluster_ports(count: u16) -> io::Result<u16> {
    let free =
        |port: u16| !is_retired(port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
    for _ in 0..200 {
        let first = unclaimed_cluster_port()?;
        let all_free = (0..count).all(|n| {
            let Some(port) = first.checked_add(n) else {
                return false;
            };
            port.checked_add(10_000)
                .is_some_and(|bus| free(port) && free(bus))
        });
        if all_free {
            for port in first..first + count {
                retire_port(port);
                retire_port(port + 10_000);
            }
            return Ok(first);
        }
    }
    Err(io::Error::other(format!(
        "no {count} consecutive ports with free bus ports after 200 tries"
    )))
}

/// A port nobody listens on and this process has not handed out.
fn unclaimed_port() -> io::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if !is_retired(port) {
            return Ok(port);
        }
    }
    Err(io::Error::other("only retired ports after 100 tries"))
}

/// [`unclaimed_port`] whose bus port is free and unclaimed too.
fn unclaimed_cluster_port() -> io::Result<u16> {
    for _ in 0..100 {
        let port = unclaimed_port()?;
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if !is_retired(bus) && TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::other(
        "no port with a free bus port after 100 tries",
    ))
}

/// Runs a start-up step of `flash-servers` (async, as `flash up` needs it) to completion for
/// the guards' synchronous API. On a thread of its own: the caller may be a test already
/// inside a runtime, where blocking on another one is refused.
fn block_on<T: Send>(future: impl Future<Output = T> + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(future))
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// An error from `flash-servers`, with its whole chain of causes, as the guards' io::Error.
fn io_error(error: &anyhow::Error) -> io::Error {
    io::Error::other(format!("{error:#}"))
}
