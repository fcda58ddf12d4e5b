//! `cargo xtask bench-edge`: the edge under load, as a separate `flash-edge` process in front
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

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use flash_client::{FlashClient, SaleSettings};
use flash_tests::{PostgresServer, RedisServer, ServerOptions, free_port};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio_postgres::NoTls;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::deps;
use crate::workspace::{self, Profile, build_module, cargo, log_tail, show, target_dir};

const SALE: &str = "bench-edge";
/// The catalog: products 1..=PRODUCTS, each with far more units than a run reserves.
const PRODUCTS: i64 = 100;
const STOCK: i64 = 1_000_000_000;
/// One hour: no cart made by the run expires while it lasts.
const HOLD_MS: i64 = 3_600_000;
/// Must be at least 32 bytes; a throwaway key for a throwaway edge.
const SECRET: &str = "bench-edge-secret-not-for-production-0123456789";
/// The SKU and user of redis-benchmark's reserves. One fixed user, because redis-benchmark
/// gives every `__rand_int__` its own number and stops at the first error reply: random
/// users would sooner or later reserve into another user's random cart (NOTOWNER). With a
/// fixed user a repeated cart is simply reserved into again.
const RESERVE_SKU: &str = "14";
const RESERVE_USER: &str = "bench-user";
/// redis-benchmark's `-r`: random cart numbers in 0..KEYSPACE.
const KEYSPACE: u32 = 1_000_000;
/// A first FLASH.RESERVE run of this many requests, not counted, warms the server and tells
/// how many requests make a run last `--seconds`.
const CALIBRATION_REQUESTS: u64 = 20_000;
/// HTTP requests before this much time has passed are not counted (connections warm up,
/// the edge's pools fill).
const WARMUP: Duration = Duration::from_secs(1);
/// A catalog page of the UI.
const PAGE: i64 = 12;
/// WebSocket values are `WS_BASE + seq`: far below the catalog's units (so a value left from
/// the HTTP half is never mistaken for a change) and far above anything a run sends.
const WS_BASE: i64 = 1_000_000;
/// Handshakes in flight at once: the edge's accept backlog (tokio's 1024) never overflows.
const WS_CONNECT_BATCH: usize = 256;
/// After the last change, how long clients may take to show every final value.
const WS_DRAIN: Duration = Duration::from_secs(10);
/// Linux reports CPU time in clock ticks of 1/100 s (USER_HZ, 100 on every mainstream ABI).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

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

/// Builds `flash-edge` in release mode and returns its path.
fn build_edge() -> Result<PathBuf> {
    workspace::run(
        "build the edge",
        cargo().args(["build", "--release", "-p", "flash-edge"]),
    )?;
    let binary = target_dir()?.join("release").join("flash-edge");
    ensure!(
        binary.is_file(),
        "`cargo build -p flash-edge` succeeded but {} is missing",
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
        let outcome = bench_http(args, &edge, &redis, &engine, &cpu).await;
        edge.check_alive()?;
        outcome?;
    }
    if !args.skip_ws {
        let outcome = bench_ws(args, &edge, &redis, &cpu).await;
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

/// `target/release/flash-edge` as a child process, killed when the guard drops.
struct EdgeProcess {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
    command_line: String,
}

impl EdgeProcess {
    async fn start(
        binary: &Path,
        args: &BenchEdgeArgs,
        redis: &RedisServer,
        database_url: &str,
    ) -> Result<EdgeProcess> {
        // A directory of its own: the edge reads `.env` from where it runs, and the
        // workspace's would change its settings behind the bench's back.
        let dir = target_dir()?.join("bench-edge");
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("edge.log");
        let log_file = File::create(&log)?;
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let ws_per_ip = args.ws_clients.max(10_000) * 2;
        let max_connections = (args.ws_clients + args.connections).max(15_000) * 2;
        let mut command = Command::new(binary);
        command
            .current_dir(&dir)
            .env("RUST_LOG", "warn")
            .arg("--listen")
            .arg(address.to_string())
            .arg("--redis-url")
            .arg(redis.url())
            .arg("--database-url")
            .arg(database_url)
            .args(["--sale", SALE, "--secret", SECRET])
            .args(["--rate-per-ip", "0", "--rate-per-user", "0"])
            .arg("--ws-per-ip")
            .arg(ws_per_ip.to_string())
            .arg("--max-connections")
            .arg(max_connections.to_string())
            .arg("--no-worker")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let command_line = show(&command);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {command_line}"))?;
        let mut edge = EdgeProcess {
            child,
            address,
            log,
            command_line,
        };
        edge.wait_until_healthy().await?;
        Ok(edge)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_until_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "flash-edge exited with {status}:\n{}",
                    log_tail(&self.log, 30)
                );
            }
            if let Ok((StatusCode::OK, _)) = get(self.address, "/healthz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "flash-edge on {} did not answer GET /healthz with 200 in 30 s:\n{}",
                    self.address,
                    log_tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails (with the log) if the edge died during a run.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "flash-edge exited with {status} during the run:\n{}",
                log_tail(&self.log, 30)
            );
        }
        Ok(())
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on a fresh connection: (status, body).
async fn get(address: SocketAddr, path: &str) -> Result<(StatusCode, Bytes)> {
    let mut sender = connect_http(address).await?;
    let request = Request::get(path)
        .header(header::HOST, address.to_string())
        .body(Full::new(Bytes::new()))?;
    send(&mut sender, request).await
}

async fn connect_http(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// CPU time of the processes that share the machine, to say who took the cores.
struct CpuProbe {
    edge: u32,
    redis: u32,
}

#[derive(Clone, Copy, Default)]
struct CpuSample {
    at: Option<Instant>,
    edge: f64,
    /// The edge's time in the kernel (system calls, and on loopback the receiving side's
    /// TCP work, which runs in the sender's context).
    edge_system: f64,
    redis: f64,
    /// This process: the load generator and the WebSocket clients.
    own: f64,
    /// Children this process has waited for: redis-benchmark.
    children: f64,
    /// Every process on the machine (`/proc/stat`), to tell how much went to others.
    machine: f64,
}

/// Cores used by each part over an interval (1.0 = one core all the time).
#[derive(Clone, Copy, Default, Debug)]
struct CpuShare {
    edge: f64,
    edge_system: f64,
    redis: f64,
    own: f64,
    benchmark: f64,
    /// Everything else on the machine: PostgreSQL, other users' work.
    other: f64,
}

impl CpuProbe {
    fn sample(&self) -> CpuSample {
        let edge = process_cpu(&format!("/proc/{}/stat", self.edge)).unwrap_or_default();
        let redis = process_cpu(&format!("/proc/{}/stat", self.redis)).unwrap_or_default();
        let own = process_cpu("/proc/self/stat").unwrap_or_default();
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| parse_machine_busy(&text))
            .unwrap_or(0.0);
        CpuSample {
            at: Some(Instant::now()),
            edge: edge.user + edge.system,
            edge_system: edge.system,
            redis: redis.user + redis.system,
            own: own.user + own.system,
            children: own.children,
            machine,
        }
    }
}

impl CpuSample {
    fn share_since(&self, before: &CpuSample) -> CpuShare {
        let seconds = match (self.at, before.at) {
            (Some(now), Some(then)) => now.duration_since(then).as_secs_f64().max(1e-9),
            _ => return CpuShare::default(),
        };
        let share = |now: f64, then: f64| (now - then).max(0.0) / seconds;
        let edge = share(self.edge, before.edge);
        let redis = share(self.redis, before.redis);
        let own = share(self.own, before.own);
        let benchmark = share(self.children, before.children);
        let machine = share(self.machine, before.machine);
        CpuShare {
            edge,
            edge_system: share(self.edge_system, before.edge_system),
            redis,
            own,
            benchmark,
            other: (machine - edge - redis - own - benchmark).max(0.0),
        }
    }
}

impl CpuShare {
    fn describe(&self) -> String {
        let mut parts = vec![
            format!("edge {:.2}", self.edge),
            format!("redis {:.2}", self.redis),
        ];
        if self.benchmark >= 0.005 {
            parts.push(format!("redis-benchmark {:.2}", self.benchmark));
        }
        if self.own >= 0.005 {
            parts.push(format!("load generator {:.2}", self.own));
        }
        parts.push(format!("other processes {:.2}", self.other));
        format!("cores: {}", parts.join(", "))
    }
}

/// CPU seconds of one process, from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct ProcessCpu {
    user: f64,
    system: f64,
    /// User and system time of the children it waited for.
    children: f64,
}

fn process_cpu(path: &str) -> Option<ProcessCpu> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat_cpu(&text)
}

/// CPU seconds the whole machine spent busy: the `cpu` line of `/proc/stat` less idle and
/// iowait (user nice system idle iowait irq softirq steal …, in clock ticks).
fn parse_machine_busy(text: &str) -> Option<f64> {
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((ticks.iter().sum::<f64>() - idle) / CLOCK_TICKS_PER_SEC)
}

/// utime, stime, cutime and cstime: the 14th to 17th fields, counted after the
/// parenthesised name (which may hold spaces and parentheses).
fn parse_stat_cpu(text: &str) -> Option<ProcessCpu> {
    let after_name = &text[text.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (field 14) is index 11 here.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |index: usize| -> Option<f64> {
        Some(fields.get(index)?.parse::<f64>().ok()? / CLOCK_TICKS_PER_SEC)
    };
    Some(ProcessCpu {
        user: tick(11)?,
        system: tick(12)?,
        children: tick(13)? + tick(14)?,
    })
}

// ---------------------------------------------------------------------------------------
// HTTP

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Route {
    CartAdd,
    Products,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::CartAdd => "POST /cart/add",
            Route::Products => "GET /products/",
        }
    }
}

/// One run of a route (or of redis-benchmark).
#[derive(Clone, Debug, Default)]
struct HttpMeasure {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// 200s in the measured window.
    ok: u64,
    /// 200s in the whole run, warm-up included (each /cart/add 200 holds one unit).
    ok_total: u64,
    /// Other statuses, whole run.
    statuses: BTreeMap<u16, u64>,
    /// Requests that got no response (the connection failed; it is made again).
    transport_errors: u64,
    cpu: CpuShare,
}

async fn bench_http(
    args: &BenchEdgeArgs,
    edge: &EdgeProcess,
    redis: &RedisServer,
    engine: &FlashClient,
    cpu: &CpuProbe,
) -> Result<()> {
    println!(
        "\n== HTTP: {} connections, {} s measured per run after a {} s warm-up, {} rounds",
        args.connections,
        args.seconds,
        WARMUP.as_secs(),
        args.rounds
    );
    let tokens = sign_in(edge.address, args.connections).await?;
    println!(
        "signed in {} users (bench-1 … bench-{}), one per connection",
        tokens.len(),
        tokens.len()
    );
    let reserve_words: Vec<String> = [
        "FLASH.RESERVE",
        SALE,
        "cart:__rand_int__",
        RESERVE_USER,
        RESERVE_SKU,
        "1",
    ]
    .map(str::to_owned)
    .to_vec();
    let calibration =
        redis_benchmark(redis, args, CALIBRATION_REQUESTS, &reserve_words, cpu).await?;
    let mut reserves_sent: u64 = CALIBRATION_REQUESTS;
    let requests_for = |rate: f64| ((rate * args.seconds as f64) as u64).max(10_000);
    let mut reserve_requests = requests_for(calibration.requests_per_sec);
    let mut reserve_runs: Vec<HttpMeasure> = Vec::new();
    let mut runs: BTreeMap<Route, Vec<HttpMeasure>> = BTreeMap::new();
    for round in 1..=args.rounds {
        let reserve = redis_benchmark(redis, args, reserve_requests, &reserve_words, cpu).await?;
        reserves_sent += reserve_requests;
        println!(
            "round {round}: FLASH.RESERVE      {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  \
             ({reserve_requests} requests; {})",
            reserve.requests_per_sec,
            reserve.p50_ms,
            reserve.p99_ms,
            reserve.cpu.describe()
        );
        reserve_requests = requests_for(reserve.requests_per_sec);
        for route in [Route::CartAdd, Route::Products] {
            let measure = http_run(edge.address, route, &tokens, round, args, cpu).await?;
            println!(
                "round {round}: {:<16} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  \
                 ({:.2}× FLASH.RESERVE; {}{})",
                route.label(),
                measure.requests_per_sec,
                measure.p50_ms,
                measure.p99_ms,
                measure.requests_per_sec / reserve.requests_per_sec,
                measure.cpu.describe(),
                refusals(&measure)
            );
            runs.entry(route).or_default().push(measure);
        }
        reserve_runs.push(reserve);
    }

    println!();
    print_http_table(&reserve_runs, &runs);
    let ratios: Vec<f64> = runs
        .get(&Route::CartAdd)
        .map(|cart| {
            cart.iter()
                .zip(&reserve_runs)
                .map(|(cart, reserve)| cart.requests_per_sec / reserve.requests_per_sec)
                .collect()
        })
        .unwrap_or_default();
    let verdict = match median(ratios.clone()) {
        Some(ratio) if ratio >= 0.4 => format!("{ratio:.2} (target ≥ 0.40: met)"),
        Some(ratio) => format!("{ratio:.2} (target ≥ 0.40: missed)"),
        None => "- (not measured)".to_owned(),
    };
    println!(
        "\nPOST /cart/add / FLASH.RESERVE = {verdict}; per round: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "(median over rounds of each round's ratio, both at {} connections; /cart/add is \
         FLASH.RESERVE + FLASH.CART in one round trip plus HTTP, JSON and the session check)",
        args.connections
    );

    let cart_ok: u64 = runs
        .get(&Route::CartAdd)
        .map_or(0, |runs| runs.iter().map(|m| m.ok_total).sum());
    check_ledger(engine, reserves_sent + cart_ok, cart_ok).await
}

/// `; not 200: 409×3, …`: the statuses other than 200, and the requests with no response.
fn refusals(measure: &HttpMeasure) -> String {
    let mut parts: Vec<String> = measure
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}×{count}"))
        .collect();
    if measure.transport_errors > 0 {
        parts.push(format!("no response×{}", measure.transport_errors));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; not 200: {}", parts.join(", "))
    }
}

/// Every reserve that succeeded holds one unit: redis-benchmark's (it stops at the first
/// error, so all it sent) plus every 200 of /cart/add. And the ledger balances.
async fn check_ledger(engine: &FlashClient, expected_held: u64, cart_ok: u64) -> Result<()> {
    let info = engine.info(SALE).await?;
    let total = &info.total;
    let conserved = total.loaded == total.available + total.held + total.pending + total.sold;
    let held = u64::try_from(total.held).unwrap_or(0);
    if conserved && held == expected_held {
        println!(
            "ledger: loaded {} = available {} + held {} + pending {} + sold {}; held = \
             redis-benchmark's reserves + {cart_ok} /cart/add 200s",
            total.loaded, total.available, total.held, total.pending, total.sold
        );
    } else {
        println!(
            "WARNING: ledger: loaded {} available {} held {} pending {} sold {} (conserved: \
             {conserved}); expected {expected_held} held: redis-benchmark's reserves + \
             {cart_ok} /cart/add 200s",
            total.loaded, total.available, total.held, total.pending, total.sold
        );
    }
    Ok(())
}

/// `POST /session` for users bench-1 … bench-n; their bearer tokens.
async fn sign_in(address: SocketAddr, users: u64) -> Result<Vec<String>> {
    let mut sender = connect_http(address).await?;
    let mut tokens = Vec::new();
    for n in 1..=users {
        let request = Request::post("/session")
            .header(header::HOST, address.to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(format!(
                "{{\"username\":\"bench-{n}\"}}"
            ))))?;
        let (status, body) = send(&mut sender, request).await?;
        ensure!(
            status == StatusCode::OK,
            "POST /session answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let reply: serde_json::Value = serde_json::from_slice(&body)?;
        let token = reply["token"]
            .as_str()
            .ok_or_else(|| anyhow!("POST /session: no token in {reply}"))?;
        tokens.push(format!("Bearer {token}"));
    }
    Ok(tokens)
}

/// redis-benchmark with `words` at -P 1, `--connections` clients.
async fn redis_benchmark(
    redis: &RedisServer,
    args: &BenchEdgeArgs,
    requests: u64,
    words: &[String],
    cpu: &CpuProbe,
) -> Result<HttpMeasure> {
    let mut command = tokio::process::Command::new("redis-benchmark");
    command
        .args(["-h", "127.0.0.1", "-p"])
        .arg(redis.port.to_string())
        .arg("-c")
        .arg(args.connections.to_string())
        .arg("-n")
        .arg(requests.to_string())
        .arg("-r")
        .arg(KEYSPACE.to_string())
        .args(["-P", "1", "-q", "--csv"])
        .args(words);
    let shown = show(command.as_std());
    let before = cpu.sample();
    let output = command
        .output()
        .await
        .with_context(|| format!("cannot run {shown}"))?;
    let share = cpu.sample().share_since(&before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{shown} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let csv = parse_csv(&stdout).ok_or_else(|| anyhow!("no CSV result from {shown}:\n{stdout}"))?;
    Ok(HttpMeasure {
        requests_per_sec: csv.requests_per_sec,
        p50_ms: csv.p50_ms,
        p99_ms: csv.p99_ms,
        ok: requests,
        ok_total: requests,
        cpu: share,
        ..HttpMeasure::default()
    })
}

#[derive(Debug, PartialEq)]
struct Csv {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// redis-benchmark's `-q --csv` data line: `"test","rps","avg","min","p50","p95","p99","max"`,
/// read from the end (the test name may itself hold commas).
fn parse_csv(stdout: &str) -> Option<Csv> {
    let line = stdout
        .lines()
        .rfind(|line| line.starts_with('"') && !line.starts_with("\"test\""))?;
    let fields: Vec<&str> = line.rsplitn(8, ',').collect();
    let number =
        |index: usize| -> Option<f64> { fields.get(index)?.trim_matches('"').parse().ok() };
    Some(Csv {
        requests_per_sec: number(6)?,
        p50_ms: number(3)?,
        p99_ms: number(1)?,
    })
}

/// What one connection saw.
struct ConnectionStats {
    latency_us: Histogram<u64>,
    ok: u64,
    ok_total: u64,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
}

/// `--connections` keep-alive connections on one route: connect, warm up, measure.
async fn http_run(
    address: SocketAddr,
    route: Route,
    tokens: &[String],
    round: u32,
    args: &BenchEdgeArgs,
    cpu: &CpuProbe,
) -> Result<HttpMeasure> {
    let mut senders = Vec::new();
    for _ in tokens {
        senders.push(connect_http(address).await?);
    }
    let start = Instant::now();
    let window = (
        start + WARMUP,
        start + WARMUP + Duration::from_secs(args.seconds),
    );
    let tasks: Vec<_> = senders
        .into_iter()
        .zip(tokens.iter().cloned())
        .enumerate()
        .map(|(index, (sender, token))| {
            tokio::spawn(http_connection(
                address, route, sender, token, round, index, window,
            ))
        })
        .collect();
    // The CPU figures cover the measured window only.
    tokio::time::sleep_until(window.0.into()).await;
    let before = cpu.sample();
    tokio::time::sleep_until(window.1.into()).await;
    let share = cpu.sample().share_since(&before);
    let mut latency_us = new_histogram()?;
    let mut measure = HttpMeasure {
        cpu: share,
        ..HttpMeasure::default()
    };
    for task in tasks {
        let stats = task.await??;
        latency_us.add(&stats.latency_us)?;
        measure.ok += stats.ok;
        measure.ok_total += stats.ok_total;
        measure.transport_errors += stats.transport_errors;
        for (status, count) in stats.statuses {
            *measure.statuses.entry(status).or_default() += count;
        }
    }
    ensure!(
        measure.ok > 0,
        "no {} request succeeded in {} s{}",
        route.label(),
        args.seconds,
        refusals(&measure)
    );
    measure.requests_per_sec = measure.ok as f64 / args.seconds as f64;
    measure.p50_ms = latency_us.value_at_quantile(0.50) as f64 / 1000.0;
    measure.p99_ms = latency_us.value_at_quantile(0.99) as f64 / 1000.0;
    Ok(measure)
}

/// Microseconds from 1 µs to 60 s, 3 significant digits.
fn new_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// One connection's loop: one request at a time until the window closes. A request counts
/// when its response arrives inside the window (throughput over exactly the window).
async fn http_connection(
    address: SocketAddr,
    route: Route,
    mut sender: SendRequest<Full<Bytes>>,
    token: String,
    round: u32,
    index: usize,
    (measure_from, measure_until): (Instant, Instant),
) -> Result<ConnectionStats> {
    let mut rng = SmallRng::seed_from_u64(u64::from(round) << 32 | index as u64);
    let mut stats = ConnectionStats {
        latency_us: new_histogram()?,
        ok: 0,
        ok_total: 0,
        statuses: BTreeMap::new(),
        transport_errors: 0,
    };
    let host = address.to_string();
    let pages = (PRODUCTS + PAGE - 1) / PAGE;
    for n in 0u64.. {
        let request = match route {
            Route::CartAdd => {
                let product = rng.random_range(1..=PRODUCTS);
                Request::post("/cart/add")
                    .header(header::HOST, &host)
                    .header(header::AUTHORIZATION, &token)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(format!(
                        "{{\"product_id\":{product},\"cart_id\":\"r{round}c{index}-{n}\"}}"
                    ))))?
            }
            Route::Products => {
                let skip = rng.random_range(0..pages) * PAGE;
                Request::get(format!("/products/?skip={skip}&limit={PAGE}"))
                    .header(header::HOST, &host)
                    .body(Full::new(Bytes::new()))?
            }
        };
        let sent = Instant::now();
        let outcome = send(&mut sender, request).await;
        let done = Instant::now();
        match outcome {
            Ok((StatusCode::OK, _)) => {
                stats.ok_total += 1;
                if done >= measure_from && done < measure_until {
                    stats.ok += 1;
                    stats
                        .latency_us
                        .saturating_record(done.duration_since(sent).as_micros() as u64);
                }
            }
            Ok((status, _)) => *stats.statuses.entry(status.as_u16()).or_default() += 1,
            Err(_) => {
                stats.transport_errors += 1;
                sender = connect_http(address).await?;
            }
        }
        if done >= measure_until {
            break;
        }
    }
    Ok(stats)
}

fn print_http_table(reserve: &[HttpMeasure], runs: &BTreeMap<Route, Vec<HttpMeasure>>) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let row = |label: &str, measures: &[HttpMeasure], ratio: Option<f64>| {
        let med = |f: fn(&HttpMeasure) -> f64| median(measures.iter().map(f).collect());
        let cpu = |f: fn(&CpuShare) -> f64| {
            median(measures.iter().map(|m| f(&m.cpu)).collect()).unwrap_or(0.0)
        };
        vec![
            label.to_owned(),
            number(med(|m| m.requests_per_sec), 0),
            number(med(|m| m.p50_ms), 2),
            number(med(|m| m.p99_ms), 2),
            number(ratio, 2),
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2}",
                cpu(|c| c.edge),
                cpu(|c| c.redis),
                cpu(|c| c.own + c.benchmark),
                cpu(|c| c.other)
            ),
        ]
    };
    rows.push(row("FLASH.RESERVE (redis-benchmark)", reserve, Some(1.0)));
    for (route, measures) in runs {
        let ratios = measures
            .iter()
            .zip(reserve)
            .map(|(m, r)| m.requests_per_sec / r.requests_per_sec)
            .collect();
        rows.push(row(route.label(), measures, median(ratios)));
    }
    print_table(
        &[
            "route",
            "req/s",
            "p50 ms",
            "p99 ms",
            "vs FLASH.RESERVE",
            "cores: edge / redis / client / other",
        ],
        &rows,
    );
}

// ---------------------------------------------------------------------------------------
// WebSocket

/// The change schedule: change `seq` (1..=changes) sets product `product_of(seq)` to
/// `WS_BASE + seq`, round-robin over `products` products (ids 1..=products).
#[derive(Clone, Copy, Debug)]
struct Schedule {
    changes: u64,
    products: u64,
}

impl Schedule {
    fn new(rate: u64, seconds: u64) -> Schedule {
        // Each product changes every 500 ms on average (at least 450 ms apart, see
        // `drive_changes`): nine 50 ms ticks, so a late message cannot land in the same
        // tick as the product's next change.
        Schedule {
            changes: rate * seconds,
            products: rate.div_ceil(2).max(1),
        }
    }

    fn product_of(&self, seq: u64) -> i64 {
        ((seq - 1) % self.products + 1) as i64
    }

    /// The last change of each product (index product − 1); 0 for a product never changed.
    fn finals(&self) -> Vec<u64> {
        let mut finals = vec![0; self.products as usize];
        for seq in self.changes.saturating_sub(self.products) + 1..=self.changes {
            finals[(self.product_of(seq) - 1) as usize] = seq;
        }
        finals
    }
}

/// Shared between the change driver and the clients.
struct WsShared {
    base: Instant,
    /// Nanoseconds from `base` to the moment change `seq` was sent, plus one (0: not sent).
    sent_at: Vec<AtomicU64>,
    /// Clients that hold the starting value of every product.
    ready: AtomicUsize,
    /// Clients that hold the final value of every product.
    complete: AtomicUsize,
    /// Clients whose connection or handshake failed.
    failed: AtomicUsize,
    /// Per change: the clients it reached, and the sum of their latencies in µs. A change
    /// that reached nobody was merged into the next one by the hub (a late tick); one that
    /// reached some clients only was lost on the way to the others.
    delivered: Vec<AtomicU64>,
    latency_sum_us: Vec<AtomicU64>,
}

/// What one client saw.
#[derive(Default)]
struct ClientStats {
    /// Delivery latency of each change received, in microseconds.
    latency_us: Vec<u32>,
    /// Distinct changes received.
    received: u64,
    /// Frames carrying a change already received (or older than one received).
    stale: u64,
    /// Frames that were not a stock frame this run sent.
    unexpected: u64,
    /// The last value of each product.
    last: Vec<i64>,
    ended_early: Option<String>,
}

async fn bench_ws(
    args: &BenchEdgeArgs,
    edge: &EdgeProcess,
    redis: &RedisServer,
    cpu: &CpuProbe,
) -> Result<()> {
    let schedule = Schedule::new(args.ws_rate, args.ws_seconds);
    println!(
        "\n== WebSocket: {} clients subscribed to products 1..={}, {} changes at {}/s \
         (FLASH.LOAD straight in the engine, round-robin at random moments within each slot: each product about every {} ms)",
        args.ws_clients,
        schedule.products,
        schedule.changes,
        args.ws_rate,
        1000 * schedule.products / args.ws_rate
    );
    // Every watched product starts at WS_BASE (change 0).
    let mut driver = redis.client().get_connection()?;
    let mut load = redis::cmd("FLASH.LOAD");
    load.arg(SALE);
    for product in 1..=schedule.products {
        load.arg(product).arg(WS_BASE);
    }
    load.exec(&mut driver)?;
    // Let the hub take the starting values from the channel before clients ask for them.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let shared = Arc::new(WsShared {
        base: Instant::now(),
        sent_at: (0..=schedule.changes).map(|_| AtomicU64::new(0)).collect(),
        ready: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        delivered: (0..=schedule.changes).map(|_| AtomicU64::new(0)).collect(),
        latency_sum_us: (0..=schedule.changes).map(|_| AtomicU64::new(0)).collect(),
    });
    let (stop, stopped) = watch::channel(false);
    let handshakes = Arc::new(Semaphore::new(WS_CONNECT_BATCH));
    let connect_started = Instant::now();
    let before_connect = cpu.sample();
    let clients: Vec<_> = (0..args.ws_clients)
        .map(|_| {
            tokio::spawn(ws_client(
                edge.address,
                schedule,
                shared.clone(),
                handshakes.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    let clients_total = args.ws_clients as usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ready = shared.ready.load(Ordering::Acquire);
        let failed = shared.failed.load(Ordering::Acquire);
        if ready + failed >= clients_total {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "after 300 s only {ready} of {clients_total} clients are subscribed ({failed} failed)"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let connect_cpu = cpu.sample().share_since(&before_connect);
    let ready = shared.ready.load(Ordering::Acquire);
    println!(
        "{ready} clients connected and subscribed in {connect_seconds:.1} s ({} failed; {})",
        shared.failed.load(Ordering::Acquire),
        connect_cpu.describe()
    );
    // Idle clients: what the heartbeat and open sockets cost at rest.
    let before_idle = cpu.sample();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "idle, {ready} sockets open: {}",
        cpu.sample().share_since(&before_idle).describe()
    );

    let metrics_before = scrape_metrics(edge.address).await;
    let before_drive = cpu.sample();
    let driver_shared = shared.clone();
    let rate = args.ws_rate;
    let drive = tokio::task::spawn_blocking(move || {
        drive_changes(&mut driver, schedule, rate, &driver_shared)
    });
    let drive_seconds = drive.await??;
    let drain_started = Instant::now();
    while shared.complete.load(Ordering::Acquire) < ready && drain_started.elapsed() < WS_DRAIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    let drive_cpu = cpu.sample().share_since(&before_drive);
    let hub_metrics = scrape_metrics(edge.address).await;
    let _ = stop.send(true);
    println!(
        "{} changes sent in {drive_seconds:.2} s ({:.1}/s); every client held every final \
         value {drain_seconds:.2} s after the last one{}",
        schedule.changes,
        schedule.changes as f64 / drive_seconds,
        if shared.complete.load(Ordering::Acquire) < ready {
            " (or gave up waiting)"
        } else {
            ""
        }
    );
    let delta = |name: &str| -> Option<f64> {
        let after: f64 = metric(&hub_metrics, name)?.parse().ok()?;
        let before: f64 = metric(&metrics_before, name)?.parse().ok()?;
        Some(after - before)
    };
    let busy_seconds = drive_seconds + drain_seconds;
    if let (Some(frames), Some(ticks)) = (
        delta("flash_ws_messages_sent_total"),
        delta("flash_hub_ticks_total"),
    ) && frames > 0.0
    {
        println!(
            "the edge wrote {frames:.0} frames in {ticks:.0} ticks ({:.0} frames/s; {} ticks \
             would carry every change alone): {:.1} µs of edge CPU per frame, {:.0}% of it in \
             the kernel; {}",
            frames / busy_seconds,
            schedule.changes,
            drive_cpu.edge * busy_seconds / frames * 1e6,
            100.0 * drive_cpu.edge_system / drive_cpu.edge.max(1e-9),
            drive_cpu.describe()
        );
    }

    let totals = gather(clients, &schedule.finals()).await?;
    let WsTotals {
        latency_us,
        received,
        stale,
        unexpected,
        with_finals,
        ended_early,
    } = totals;
    let connected = ready as u64;
    let expected = connected * schedule.changes;
    let lost = expected.saturating_sub(received);
    let all_final = with_finals == args.ws_clients;
    let p99_ms = latency_us.value_at_quantile(0.99) as f64 / 1000.0;

    println!();
    print_table(
        &[
            "clients",
            "changes/s",
            "messages expected",
            "received",
            "lost",
            "final value at all clients",
            "p50 ms",
            "p99 ms",
            "max ms",
        ],
        &[vec![
            format!("{connected}"),
            format!("{rate}"),
            format!("{expected}"),
            format!("{received}"),
            format!("{lost}"),
            if all_final {
                "yes".to_owned()
            } else {
                format!("no: {with_finals} of {}", args.ws_clients)
            },
            format!("{:.2}", latency_us.value_at_quantile(0.50) as f64 / 1000.0),
            format!("{p99_ms:.2}"),
            format!("{:.2}", latency_us.max() as f64 / 1000.0),
        ]],
    );
    let verdict = if p99_ms < 150.0 && all_final && connected == args.ws_clients {
        "met"
    } else {
        "missed"
    };
    println!(
        "\nWebSocket p99 {p99_ms:.2} ms at {connected} clients, final value at {with_finals} of \
         {} clients (target p99 < 150 ms and the final value always delivered: {verdict})",
        args.ws_clients
    );
    println!(
        "(latency: FLASH.LOAD sent → frame read by the client, both clocks in this process; \
         includes the hub's 50 ms coalescing tick)"
    );
    print_delivery(&shared, schedule, connected, args.ws_rate);
    if stale + unexpected > 0 {
        println!(
            "frames repeating or older than one already received: {stale}; foreign: {unexpected}"
        );
    }
    for (reason, count) in &ended_early {
        println!("WARNING: {count} client(s) ended early: {reason}");
    }
    let hub_line: Vec<String> = [
        "flash_ws_clients",
        "flash_ws_messages_sent_total",
        "flash_ws_updates_dropped_total",
        "flash_ws_lag_resyncs_total",
        "flash_hub_ticks_total",
    ]
    .iter()
    .filter_map(|name| Some(format!("{name} {}", metric(&hub_metrics, name)?)))
    .collect();
    if !hub_line.is_empty() {
        println!("edge metrics: {}", hub_line.join(", "));
    }
    Ok(())
}

/// Every client's figures, added up.
struct WsTotals {
    latency_us: Histogram<u64>,
    received: u64,
    stale: u64,
    unexpected: u64,
    /// Clients that ended on the final value of every product.
    with_finals: u64,
    /// Clients whose socket ended before the run did, by reason.
    ended_early: BTreeMap<String, u64>,
}

async fn gather(
    clients: Vec<tokio::task::JoinHandle<Option<ClientStats>>>,
    finals: &[u64],
) -> Result<WsTotals> {
    let mut totals = WsTotals {
        latency_us: new_histogram()?,
        received: 0,
        stale: 0,
        unexpected: 0,
        with_finals: 0,
        ended_early: BTreeMap::new(),
    };
    for client in clients {
        let Some(stats) = client.await? else {
            continue;
        };
        for &latency in &stats.latency_us {
            totals.latency_us.saturating_record(u64::from(latency));
        }
        totals.received += stats.received;
        totals.stale += stats.stale;
        totals.unexpected += stats.unexpected;
        let has_finals = stats
            .last
            .iter()
            .zip(finals)
            .all(|(&last, &seq)| last == WS_BASE + seq as i64);
        if has_finals {
            totals.with_finals += 1;
        }
        if let Some(reason) = stats.ended_early {
            *totals.ended_early.entry(reason).or_default() += 1;
        }
    }
    Ok(totals)
}

/// Where the lost frames went, and whether latency grew during the run (a backlog: the edge
/// or the clients could not keep up) or stayed flat.
fn print_delivery(shared: &WsShared, schedule: Schedule, clients: u64, rate: u64) {
    let delivered: Vec<u64> = shared
        .delivered
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .collect();
    let to_nobody: Vec<u64> = (1..=schedule.changes)
        .filter(|&seq| delivered[seq as usize] == 0)
        .collect();
    let to_some = (1..=schedule.changes)
        .filter(|&seq| (1..clients).contains(&delivered[seq as usize]))
        .count();
    if !to_nobody.is_empty() || to_some > 0 {
        let shown: Vec<String> = to_nobody.iter().take(12).map(u64::to_string).collect();
        println!(
            "changes that reached no client (merged with the product's next change by the \
             hub): {} [{}{}]; changes that reached only some clients: {to_some}",
            to_nobody.len(),
            shown.join(", "),
            if to_nobody.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    // Mean latency per second of the schedule.
    let per_second: Vec<String> = (1..=schedule.changes)
        .collect::<Vec<_>>()
        .chunks(rate.max(1) as usize)
        .map(|seqs| {
            let (sum, count) = seqs.iter().fold((0, 0), |(sum, count), &seq| {
                (
                    sum + shared.latency_sum_us[seq as usize].load(Ordering::Relaxed),
                    count + delivered[seq as usize],
                )
            });
            if count == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}", sum as f64 / count as f64 / 1000.0)
            }
        })
        .collect();
    println!(
        "mean latency (ms) by second of the run: {}",
        per_second.join(" ")
    );
}

/// The edge's `/metrics` text, or nothing if it cannot be read.
async fn scrape_metrics(address: SocketAddr) -> String {
    match get(address, "/metrics").await {
        Ok((StatusCode::OK, body)) => String::from_utf8_lossy(&body).into_owned(),
        _ => String::new(),
    }
}

/// A metric's value in Prometheus text (a series without labels).
fn metric<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then_some(value.trim())
    })
}

/// Sends the schedule's changes at `rate` per second on a blocking connection of its own
/// (its own thread, so the clients' work never delays a send), recording each send time
/// just before the command leaves. Returns the seconds it took.
///
/// Each change goes at a random moment within its slot of 1/rate s: at exactly 20/s the
/// sends would keep one phase against the hub's 50 ms ticker, and every change would wait
/// the same (arbitrary) part of a tick. At random moments the wait averages half a tick, as
/// for real traffic; a product's changes stay at least 450 ms apart.
fn drive_changes(
    conn: &mut redis::Connection,
    schedule: Schedule,
    rate: u64,
    shared: &WsShared,
) -> Result<f64> {
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let mut rng = SmallRng::seed_from_u64(rate);
    let start = Instant::now();
    for seq in 1..=schedule.changes {
        let slot = (seq - 1) as f64 + rng.random_range(0.0..1.0);
        let due = start + period.mul_f64(slot);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = Instant::now().duration_since(shared.base).as_nanos() as u64 + 1;
        shared.sent_at[seq as usize].store(sent, Ordering::Release);
        redis::cmd("FLASH.LOAD")
            .arg(SALE)
            .arg(schedule.product_of(seq))
            .arg(WS_BASE + seq as i64)
            .exec(conn)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// One WebSocket client: connect (a handshake permit at a time), subscribe, wait for the
/// starting values, then record every change until told to stop. `None` if it never
/// connected.
async fn ws_client(
    address: SocketAddr,
    schedule: Schedule,
    shared: Arc<WsShared>,
    handshakes: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Option<ClientStats> {
    let products = schedule.products as usize;
    let mut stats = ClientStats {
        last: vec![0; products],
        latency_us: Vec::with_capacity(schedule.changes as usize / products + 8),
        ..ClientStats::default()
    };
    let finals = schedule.finals();
    let mut socket = {
        let _permit = handshakes.acquire().await.ok()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match ws_connect(address, products).await {
                Ok(socket) => break socket,
                Err(_) if attempt < 3 => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(_) => {
                    shared.failed.fetch_add(1, Ordering::AcqRel);
                    return None;
                }
            }
        }
    };
    let mut ready = false;
    let mut complete = false;
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = stop.changed() => break,
        };
        let received_at = Instant::now();
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(frame))) => {
                stats.ended_early = Some(format!("closed by the edge: {frame:?}"));
                break;
            }
            Some(Ok(Message::Binary(_))) => {
                stats.unexpected += 1;
                continue;
            }
            Some(Err(error)) => {
                stats.ended_early = Some(format!("read failed: {error}"));
                break;
            }
            None => {
                stats.ended_early = Some("the connection ended".to_owned());
                break;
            }
        };
        let Some((product, available)) = parse_stock_frame(text.as_str()) else {
            stats.unexpected += 1;
            continue;
        };
        let Some(index) = usize::try_from(product - 1).ok().filter(|&i| i < products) else {
            stats.unexpected += 1;
            continue;
        };
        let seq = available - WS_BASE;
        if seq >= 1 && seq as u64 <= schedule.changes {
            if available <= stats.last[index] {
                stats.stale += 1;
            } else {
                stats.received += 1;
                let sent = shared.sent_at[seq as usize].load(Ordering::Acquire);
                let now = received_at.duration_since(shared.base).as_nanos() as u64 + 1;
                let micros = now.saturating_sub(sent) / 1000;
                stats
                    .latency_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                shared.delivered[seq as usize].fetch_add(1, Ordering::Relaxed);
                shared.latency_sum_us[seq as usize].fetch_add(micros, Ordering::Relaxed);
            }
        } else if available != WS_BASE {
            stats.unexpected += 1;
            continue;
        }
        stats.last[index] = stats.last[index].max(available);
        if !ready && stats.last.iter().all(|&value| value >= WS_BASE) {
            ready = true;
            shared.ready.fetch_add(1, Ordering::AcqRel);
        }
        if !complete
            && stats
                .last
                .iter()
                .zip(&finals)
                .all(|(&last, &seq)| last == WS_BASE + seq as i64)
        {
            complete = true;
            shared.complete.fetch_add(1, Ordering::AcqRel);
        }
    }
    if !ready {
        // Counted, so the wait for subscriptions ends.
        shared.failed.fetch_add(1, Ordering::AcqRel);
    }
    let _ = socket.close(None).await;
    Some(stats)
}

type WsSocket = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn ws_connect(address: SocketAddr, products: usize) -> Result<WsSocket> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let request = format!("ws://{address}/ws/catalog").into_client_request()?;
    // Small buffers: the default read buffer is 128 KiB, allocated per connection.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(4096);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    let ids: Vec<String> = (1..=products).map(|id| id.to_string()).collect();
    socket
        .send(Message::text(format!(
            "{{\"subscribe\":[{}]}}",
            ids.join(",")
        )))
        .await?;
    Ok(socket)
}

/// `{"product_id":14,"available":7}` → (14, 7), by a scan: the clients read 200,000 frames a
/// second between them, on the cores the edge needs.
fn parse_stock_frame(text: &str) -> Option<(i64, i64)> {
    let field = |name: &str| -> Option<i64> {
        let start = text.find(name)? + name.len();
        let rest = &text[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    Some((field("\"product_id\":")?, field("\"available\":")?))
}

// ---------------------------------------------------------------------------------------
// Output

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

/// A table in columns: text left, numbers right.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            let numeric = cell
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '-');
            if index == 0 || !numeric {
                out.push_str(&format!("{cell}{pad} | "));
            } else {
                out.push_str(&format!("{pad}{cell} | "));
            }
        }
        out.trim_end_matches([' ', '|']).to_owned()
    };
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    println!("{}", line(&headers));
    println!(
        "{}",
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>())
    );
    for row in rows {
        println!("{}", line(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_gives_rate_and_percentiles() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                   \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"FLASH.RESERVE a,b\",\"38000.00\",\"1.2\",\"0.1\",\"1.10\",\"2.0\",\"3.50\",\
                   \"9.9\"\n";
        assert_eq!(
            parse_csv(out),
            Some(Csv {
                requests_per_sec: 38_000.0,
                p50_ms: 1.10,
                p99_ms: 3.50
            })
        );
        assert_eq!(parse_csv("\"test\",\"rps\"\n"), None);
    }

    #[test]
    fn stock_frames_are_read_by_scanning() {
        assert_eq!(
            parse_stock_frame(r#"{"product_id":14,"available":1000007}"#),
            Some((14, 1_000_007))
        );
        assert_eq!(parse_stock_frame(r#"{"product_id":14}"#), None);
    }

    #[test]
    fn schedule_spaces_each_product_and_knows_the_finals() {
        let schedule = Schedule::new(20, 12);
        assert_eq!(schedule.changes, 240);
        assert_eq!(schedule.products, 10);
        assert_eq!(schedule.product_of(1), 1);
        assert_eq!(schedule.product_of(10), 10);
        assert_eq!(schedule.product_of(11), 1);
        let finals = schedule.finals();
        assert_eq!(finals.first(), Some(&231));
        assert_eq!(finals.last(), Some(&240));
        // Fewer changes than products: the others keep their starting value.
        let short = Schedule {
            changes: 3,
            products: 5,
        };
        assert_eq!(short.finals(), vec![1, 2, 3, 0, 0]);
    }

    #[test]
    fn proc_stat_cpu_skips_names_with_spaces() {
        let line = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 30 20 20 0 1 0 100";
        assert_eq!(
            parse_stat_cpu(line),
            Some(ProcessCpu {
                user: 2.5,
                system: 0.5,
                children: 0.5
            })
        );
    }

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() {
        let text = "cpu  100 0 50 1000 30 5 5 0 0 0\ncpu0 50 0 25 500 15 2 3 0 0 0\n";
        assert_eq!(parse_machine_busy(text), Some(1.6));
    }

    #[test]
    fn metric_reads_an_unlabelled_series() {
        let text = "# TYPE flash_ws_clients gauge\nflash_ws_clients 10000\n";
        assert_eq!(metric(text, "flash_ws_clients"), Some("10000"));
        assert_eq!(metric(text, "flash_ws_lag_resyncs_total"), None);
    }
}
