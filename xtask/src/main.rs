//! The project's automation, run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`).
//!
//! Map of the crate:
//! - `main.rs`: the command line.
//! - [`deps`]: the system packages the rest needs (redis-server, redis-tools, clang, libclang).
//! - [`test`]: the CI gate `.ci/run` calls: fmt, clippy, the module build, the test suite.
//! - [`up`]: a local redis-server with the module, data kept in `.flash/redis/`, a live demo.
//! - [`bench`]: redis-benchmark of FLASH.RESERVE against INCR, the Lua twin and naive calls.
//! - [`bench_worker`]: the worker's orders per second, batch size 1 against a full batch.
//! - [`workspace`]: paths and child processes shared by the tasks.
//! - [`reply`]: replies printed the way redis-cli prints them.
//!
//! xtask never depends on flash-module: building the module needs libclang, which `deps`
//! installs, so the module is built by a child `cargo build` after `deps` has run.

mod bench;
mod bench_worker;
mod deps;
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
    /// redis-benchmark), clang and libclang-dev (the module's bindgen needs them).
    ///
    /// Uses apt-get (through sudo when not root); does nothing when all are present.
    Deps,
    /// The CI gate (`.ci/run`): deps, `cargo fmt --check`, clippy with -D warnings, the
    /// module build, then `cargo test --workspace` against that module.
    Test,
    /// Run it: redis-server with the release module on 127.0.0.1, data kept in
    /// `.flash/redis/`, a guide and a live demo; Ctrl-C stops it cleanly.
    Up(up::UpArgs),
    /// Measure FLASH.RESERVE with redis-benchmark against INCR, the Lua twin and the naive
    /// three round trips, on one redis-server with the release module.
    Bench(bench::BenchArgs),
    /// Measure the worker: orders applied per second at batch size 1 and at a full batch,
    /// for one hot product and for 100 products (real PostgreSQL, fsync on).
    BenchWorker(bench_worker::BenchWorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Deps => deps::ensure(),
        Task::Test => test::run_all(),
        Task::Up(args) => up::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::BenchWorker(args) => bench_worker::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
