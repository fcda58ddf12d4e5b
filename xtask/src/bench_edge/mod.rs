//! `cargo xtask bench-edge`: the edge under load, as a separate `flash edge` process in front
//! of redis-server with the release module and a PostgreSQL, with two questions:
//!
//! - **HTTP**: `POST /cart/add` (a new cart per request, one signed-in user per connection)
//!   and `GET /products/` from a load generator in this process (keep-alive HTTP/1.1, one
//!   request in flight per connection), against `redis-benchmark` FLASH.RESERVE at the same
//!   concurrency in the same run. Rounds interleave the three; the table shows medians and
//!   the target is the median of the per-round ratios (the machine is shared and noisy: two
//!   figures of one round come from the same minute).
//! - **WebSocket fan-out**: thousands of clients subscribed to a few products, stock changed
//!   at a fixed rate straight in the engine (FLASH.LOAD). The value of each change encodes its
//!   sequence number, so every client knows which change a frame carries and when it was
//!   sent: p50/p99 delivery latency, frames lost, and whether every client ends on the final
//!   value of every product.
//!
//! The schedule keeps coalescing out of the count: changes go round-robin over enough
//! products that one product changes about every 500 ms (never within 450 ms, nine of the
//! hub's 50 ms ticks), so no two changes of a product share a tick while the hub keeps pace,
//! and every change is owed to every client.
//!
//! The embedded order worker is off (`--no-worker`): the HTTP figures are the edge's own.
//! Everything runs on one machine: the edge, redis-server, PostgreSQL, redis-benchmark and the
//! load generator share its cores, and the CPU each took is printed next to each figure.
//!
//! This measures; it never fails on a missed target, only when a run cannot be measured.
//!
//! Map of the module:
//! - here: the flags ([`BenchEdgeArgs`]), the build, the servers and the sale, the two halves.
//! - [`edge`]: the edge under test as a child process, and its metrics.
//! - [`cpu`]: the cores each process took.
//! - [`reserve`]: redis-benchmark FLASH.RESERVE, the yardstick.
//! - [`http`]: the HTTP rounds, their table and the ledger check; [`load`]: the load
//!   generator (keep-alive connections of the typed API client, one signed-in user each).
//! - [`ws`]: the WebSocket fan-out, its schedule and its figures; [`ws_client`]: one client.
//! - [`table`]: histograms, medians, tables.

mod cpu;
mod edge;
mod http;
mod load;
mod reserve;
mod table;
mod ws;
mod ws_client;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, ensure};
use flash_client::{FlashClient, SaleSettings};
use flash_tests::{PostgresServer, RedisServer, ServerOptions};
use tokio_postgres::NoTls;

use crate::deps;
use crate::workspace::{self, Profile, build_module, cargo, target_dir};
use cpu::CpuProbe;
use edge::EdgeProcess;

const SALE: &str = "bench-edge";
/// The catalog: products 1..=PRODUCTS, each with far more units than a run reserves.
const PRODUCTS: i64 = 100;
const STOCK: i64 = 1_000_000_000;
/// One hour: no cart made by the run expires while it lasts.
const HOLD_MS: i64 = 3_600_000;
/// Must be at least 32 bytes; a throwaway key for a throwaway edge.
const SECRET: &str = "bench-edge-secret-not-for-production-0123456789";

#[derive(clap::Args)]
pub struct BenchEdgeArgs {
    /// Parallel connections: HTTP keep-alive connections, and redis-benchmark's -c.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=2_000))]
    connections: u64,
    /// Measured seconds per HTTP run (after a 1 s warm-up), and about as long per
    /// redis-benchmark run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Interleaved rounds of FLASH.RESERVE, /cart/add and /products/; the table shows medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// WebSocket clients connected at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    ws_clients: u64,
    /// Seconds of stock changes for the WebSocket clients.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=600))]
    ws_seconds: u64,
    /// Stock changes per second (round-robin over enough products that each changes about
    /// twice a second; at most 400, as a client may watch at most 200 products).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=400))]
    ws_rate: u64,
    /// Only the WebSocket half.
    #[arg(long, conflicts_with = "skip_ws")]
    skip_http: bool,
    /// Only the HTTP half.
    #[arg(long)]
    skip_ws: bool,
}

impl BenchEdgeArgs {
    /// The command line that reproduces this run.
    fn command_line(&self) -> String {
        let mut line = format!(
            "cargo xtask bench-edge --connections {} --seconds {} --rounds {} --ws-clients {} \
             --ws-seconds {} --ws-rate {}",
            self.connections,
            self.seconds,
            self.rounds,
            self.ws_clients,
            self.ws_seconds,
            self.ws_rate
        );
        if self.skip_http {
            line.push_str(" --skip-http");
        }
        if self.skip_ws {
            line.push_str(" --skip-ws");
        }
        line
    }

    fn sockets_needed(&self) -> u64 {
        let ws = if self.skip_ws { 0 } else { self.ws_clients };
        ws + self.connections + 256
    }
}

pub fn run(args: &BenchEdgeArgs) -> Result<()> {
    let started = Instant::now();
    println!("{}", args.command_line());
    if cfg!(debug_assertions) {
        // The load generator runs in this process: built in debug it, not the edge, is
        // what saturates first (measured: /cart/add at half its release figure).
        println!(
            "WARNING: this xtask is a debug build, so is the load generator; for figures to \
             compare, run `cargo run --release -p xtask -- bench-edge`"
        );
    }
    deps::ensure()?;
    let module = build_module(Profile::Release)?;
    let edge_binary = build_edge()?;
    raise_descriptor_limit(args.sockets_needed())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args, module, edge_binary))?;
    println!(
        "\n{} finished in {:.0} s",
        args.command_line(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds `flash` (whose `flash edge` is the edge) in release mode and returns its path.
fn build_edge() -> Result<PathBuf> {
    workspace::run(
        "build flash",
        cargo().args(["build", "--release", "-p", "flash-cli"]),
    )?;
    let binary = target_dir()?.join("release").join("flash");
    ensure!(
        binary.is_file(),
        "`cargo build -p flash-cli` succeeded but {} is missing",
        binary.display()
    );
    Ok(binary)
}

/// Every WebSocket is a descriptor on both ends (here and in the edge, which inherits the
/// limit): the soft limit goes up to the hard one, and must then cover the run.
fn raise_descriptor_limit(needed: u64) -> Result<()> {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .context("cannot raise the open-files limit (RLIMIT_NOFILE)")?;
    ensure!(
        limit >= needed,
        "this run needs about {needed} open files per process but the hard limit is {limit}: \
         raise it (`ulimit -Hn`, limits.conf) or ask for fewer --ws-clients"
    );
    println!("open-files limit: {limit} (this run needs about {needed} per process)");
    Ok(())
}

async fn bench(args: &BenchEdgeArgs, module: PathBuf, edge_binary: PathBuf) -> Result<()> {
    let postgres = PostgresServer::start_with(true).context("cannot start PostgreSQL")?;
    let redis = RedisServer::start(ServerOptions {
        module: Some(module),
        ..ServerOptions::default()
    })
    .context("cannot start redis-server with the module")?;
    let database_url = postgres.create_database()?;
    let engine = FlashClient::connect(&redis.url()).await?;
    prepare_sale(&database_url, &engine).await?;
    let mut edge = EdgeProcess::start(&edge_binary, args, &redis, &database_url).await?;
    let redis_pid = redis_pid(&engine).await?;
    let cpu = CpuProbe {
        edge: edge.pid(),
        redis: redis_pid,
    };
    println!(
        "redis-server {} with the release module (pid {redis_pid}); PostgreSQL with fsync on; \
         {PRODUCTS} products of {STOCK} units; sale {SALE}: HOLD {HOLD_MS} ms, no LIMIT",
        redis_version(&engine).await.unwrap_or_default()
    );
    println!(
        "edge: {} (pid {}, log {})",
        edge.command_line,
        edge.pid(),
        edge.log.display()
    );
    println!(
        "the edge's embedded order worker is off (--no-worker): the figures are the edge's own"
    );
    // A run that fails because the edge died says so, with the edge's log.
    if !args.skip_http {
        let outcome = http::bench_http(args, &edge, &redis, &engine, &cpu).await;
        edge.check_alive()?;
        outcome?;
    }
    if !args.skip_ws {
        let outcome = ws::bench_ws(args, &edge, &redis, &cpu).await;
        edge.check_alive()?;
        outcome?;
    }
    drop(edge);
    Ok(())
}

/// The schema, the catalog, the sale, and the catalog's stock loaded into the engine.
async fn prepare_sale(database_url: &str, engine: &FlashClient) -> Result<()> {
    let (mut pg, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(connection);
    flash_worker::migrate::migrate(&mut pg).await?;
    pg.execute(
        "INSERT INTO products (id, name, price_cents, stock)
         SELECT g, 'product ' || g, 1000 + g, $2::bigint FROM generate_series(1, $1::bigint) AS g",
        &[&PRODUCTS, &STOCK],
    )
    .await?;
    engine
        .sale(
            SALE,
            &SaleSettings {
                hold_ms: Some(HOLD_MS),
                limit: Some(0),
                ..SaleSettings::default()
            },
        )
        .await?;
    flash_worker::stock::sync(&pg, engine, SALE).await?;
    Ok(())
}

async fn redis_pid(engine: &FlashClient) -> Result<u32> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut engine.connection())
        .await?;
    workspace::info_field(&info, "process_id")
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| anyhow!("INFO server has no process_id"))
}

async fn redis_version(engine: &FlashClient) -> Result<String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut engine.connection())
        .await?;
    Ok(workspace::info_field(&info, "redis_version")
        .unwrap_or("?")
        .to_owned())
}
