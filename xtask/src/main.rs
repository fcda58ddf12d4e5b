//! The project's automation, run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`).
//!
//! Map of the crate:
//! - `main.rs`: the command line.
//! - [`deps`]: the system packages the rest needs (redis-server, redis-tools, clang, libclang).
//! - [`test`]: the CI gate `.ci/run` calls: fmt, clippy, the module build, the test suite.
//! - [`up`]: builds and execs `flash up`, the whole stack with its data in `.flash/`.
//! - [`bench`]: redis-benchmark of FLASH.RESERVE against INCR, the Lua twin and naive calls,
//!   with no persistence, with AOF and with a replica; `bench::memory`: bytes per held cart
//!   and the memory coming back (`bench-memory`).
//! - [`bench_worker`]: the worker's orders per second, batch size 1 against a full batch.
//! - [`bench_edge`]: the edge as a separate process: HTTP req/s against FLASH.RESERVE, and
//!   WebSocket fan-out latency to 10,000 clients.
//! - [`redis_benchmark`]: one redis-benchmark run and its CSV, for both benchmarks.
//! - [`workspace`]: paths and child processes shared by the tasks.
//! - [`reply`]: replies printed the way redis-cli prints them.
//!
//! xtask never depends on flash-module: building the module needs libclang, which `deps`
//! installs, so the module is built by a child `cargo build` after `deps` has run.

mod bench;
mod bench_durability;
mod bench_edge;
mod bench_worker;
mod deps;
mod redis_benchmark;
mod reply;
mod test;
mod up;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Automation for the Flash workspace",
    after_help = "Start with `cargo xtask test` (what CI runs) or `cargo xtask up` (run it)."
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the missing system packages: redis-server (with redis-cli and
    /// redis-benchmark), clang and libclang-dev (the module's bindgen needs them),
    /// PostgreSQL, chromium and chromium-driver (the browser test), docker-compose (the
    /// compose check) and the DejaVu font (the simulator's chart).
    ///
    /// Uses apt-get (through sudo when not root); does nothing when all are present.
    Deps,
    /// The CI gate (`.ci/run`): deps, `cargo fmt --check`, the compose check, clippy with
    /// -D warnings, the module and `flash` builds, then `cargo test --workspace`.
    Test,
    /// Run it: install what running needs when missing (redis-server, redis-tools, clang,
    /// libclang-dev, PostgreSQL), build in release mode, and run `flash up`
    /// (redis-server with the module, PostgreSQL, the demo sale, the edge on
    /// http://127.0.0.1:8000); arguments after `--` go to `flash up`.
    Up(up::UpArgs),
    /// Measure FLASH.RESERVE with redis-benchmark against INCR, HINCRBY, the Lua twin and
    /// the naive three round trips, with the release module, in three server configurations
    /// (no persistence, AOF everysec, one replica attached).
    Bench(bench::BenchArgs),
    /// Measure memory on a fresh redis-server with the release module: bytes per held cart
    /// (1,000,000 carts by default), and used_memory once the carts have expired and their
    /// keys are gone (a short HOLD and RETAIN), against before the sale.
    BenchMemory(bench::memory::BenchMemoryArgs),
    /// Measure what the module's timer costs other clients: PING round trips on a quiet
    /// server, with 100,000 idle sales, and while 100,000 holds fall due (by the timer alone,
    /// and with a client calling FLASH.EXPIRE too). Also the last part of `bench`.
    BenchLatency(bench::latency::BenchLatencyArgs),
    /// Measure FLASH.RESERVE over 1, 2 and 3 masters of a real Redis Cluster, one sale per
    /// master, each driven by its own redis-benchmark at once: the aggregate rate and each
    /// master's cost per call.
    BenchCluster(bench::cluster::BenchClusterArgs),
    /// Measure what a durable checkout costs: checkouts per second and latency, plain and
    /// through `DurableWrites` (WAIT for one replica), with a replica attached.
    BenchDurability(bench_durability::BenchDurabilityArgs),
    /// Measure the worker: orders applied per second at batch size 1 and at a full batch,
    /// for one hot product and for 100 products (real PostgreSQL, fsync on).
    BenchWorker(bench_worker::BenchWorkerArgs),
    /// Measure the edge (a separate `flash edge` process, worker off): POST /cart/add and
    /// GET /products/ req/s against redis-benchmark FLASH.RESERVE at the same concurrency,
    /// and stock fan-out latency to 10,000 WebSocket clients.
    BenchEdge(bench_edge::BenchEdgeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Deps => deps::ensure(),
        Task::Test => test::run_all(),
        Task::Up(args) => up::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::BenchMemory(args) => bench::memory::run(&args),
        Task::BenchLatency(args) => bench::latency::run(&args),
        Task::BenchCluster(args) => bench::cluster::run(&args),
        Task::BenchDurability(args) => bench_durability::run(&args),
        Task::BenchWorker(args) => bench_worker::run(&args),
        Task::BenchEdge(args) => bench_edge::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
