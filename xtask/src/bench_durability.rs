//! `cargo xtask bench-durability`: what a durable checkout costs. One redis-server with the
//! release module and a replica attached; concurrent buyers reserve a new cart and check it
//! out, for a while plainly (`FlashClient::checkout`) and for as long through
//! `DurableWrites` (the checkout, then `WAIT 1` on a connection of its own: the edge's
//! `--durability replica`), rounds interleaved. Then the same through the edge: a whole
//! stack (edge, PostgreSQL, a master and its replica) per setting, `--durability none` and
//! `--durability replica`, the buyers signed-in HTTP clients: `POST /cart/add` into a new
//! cart, then `POST /cart/checkout` (timed). Prints checkouts per second and the checkout's
//! latency (p50, p99) each way, medians over rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use flash_api_client::{EdgeClient, LineChange};
use flash_client::{Durability, DurableWrites, FlashClient, SaleSettings};
use flash_edge::settings::DurabilityMode;
use flash_tests::{RedisServer, ServerOptions, Stack, StackOptions};
use hdrhistogram::Histogram;

use crate::deps;
use crate::workspace::{Profile, build_module};

const SALE: &str = "bench-durable";
const SKU: i64 = 14;

#[derive(Debug, clap::Args)]
pub struct BenchDurabilityArgs {
    /// Buyers at once (and durable connections in the pool).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    buyers: u64,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Interleaved rounds of each way; the table shows medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// How long a durable checkout waits for the replica.
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
}

/// One run's figures.
struct Run {
    per_second: f64,
    p50_us: u64,
    p99_us: u64,
    not_durable: u64,
}

pub fn run(args: &BenchDurabilityArgs) -> Result<()> {
    deps::ensure()?;
    if cfg!(debug_assertions) {
        println!(
            "note: this xtask is a debug build, and so are the client and the edge it measures \
             (in this process): for the figures that ship, `cargo run --release -p xtask -- \
             bench-durability`"
        );
    }
    let module = build_module(Profile::Release)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let (master, replica) = runtime.block_on(master_and_replica(&module))?;
    runtime.block_on(async {
        let url = format!("redis://127.0.0.1:{}/", master.port);
        let engine = FlashClient::connect(&url).await?;
        let settings = SaleSettings {
            hold_ms: Some(3_600_000),
            ..SaleSettings::default()
        };
        engine.sale(SALE, &settings).await?;
        engine.load(SALE, &[(SKU, 1_000_000_000)]).await?;
        let durability = Durability {
            replicas: 1,
            timeout: Duration::from_millis(args.timeout_ms),
        };
        let durable = DurableWrites::connect(&url, args.buyers as usize, durability).await?;

        println!(
            "\ncargo xtask bench-durability --buyers {} --seconds {} --rounds {} --timeout-ms {}",
            args.buyers, args.seconds, args.rounds, args.timeout_ms
        );
        println!(
            "redis-server with the release module ({}) and one replica attached on loopback; each \
             buyer: FLASH.RESERVE into a new cart, then the checkout (timed)",
            module.display()
        );
        let mut plain = Vec::new();
        let mut waited = Vec::new();
        let next_cart = Arc::new(AtomicU64::new(0));
        for round in 1..=args.rounds {
            for durable_way in [false, true] {
                let run = crowd(
                    args,
                    &engine,
                    durable_way.then_some(&durable),
                    next_cart.clone(),
                )
                .await?;
                println!(
                    "  round {round}  {:<28} {:>8.0} checkouts/s  p50 {:>6} µs  p99 {:>6} µs{}",
                    if durable_way {
                        "durable (checkout + WAIT 1)"
                    } else {
                        "plain checkout"
                    },
                    run.per_second,
                    run.p50_us,
                    run.p99_us,
                    if run.not_durable > 0 {
                        format!("  ({} not confirmed in time)", run.not_durable)
                    } else {
                        String::new()
                    }
                );
                if durable_way {
                    waited.push(run)
                } else {
                    plain.push(run)
                }
            }
        }
        println!();
        println!(
            "{:<30} {:>12} {:>10} {:>10}",
            "checkout", "per second", "p50 µs", "p99 µs"
        );
        let median = |runs: &[Run], figure: fn(&Run) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(figure).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        for (label, runs) in [("plain", &plain), ("durable (WAIT 1 replica)", &waited)] {
            println!(
                "{label:<30} {:>12.0} {:>10.0} {:>10.0}",
                median(runs, |r| r.per_second),
                median(runs, |r| r.p50_us as f64),
                median(runs, |r| r.p99_us as f64)
            );
        }
        let ratio = median(&waited, |r| r.per_second) / median(&plain, |r| r.per_second);
        println!("durable / plain, checkouts per second: {ratio:.2}×");

        println!();
        println!(
            "through the edge: POST /cart/add into a new cart, then POST /cart/checkout (timed), \
             {} signed-in HTTP clients; a stack (edge with its worker off, PostgreSQL, a master \
             and its replica) per setting",
            args.buyers
        );
        let mut edge_runs: Vec<(&str, Vec<Run>)> = Vec::new();
        for (label, mode) in [
            ("--durability none", DurabilityMode::None),
            ("--durability replica", DurabilityMode::Replica),
        ] {
            let stack = edge_stack(&module, mode, args.timeout_ms).await?;
            let mut runs = Vec::new();
            for round in 1..=args.rounds {
                let run = http_crowd(args, &stack.0).await?;
                println!(
                    "  round {round}  {label:<22} {:>8.0} checkouts/s  p50 {:>6} µs  p99 {:>6} µs",
                    run.per_second, run.p50_us, run.p99_us
                );
                runs.push(run);
            }
            edge_runs.push((label, runs));
        }
        println!();
        println!(
            "{:<30} {:>12} {:>10} {:>10}",
            "POST /cart/checkout", "per second", "p50 µs", "p99 µs"
        );
        for (label, runs) in &edge_runs {
            println!(
                "{label:<30} {:>12.0} {:>10.0} {:>10.0}",
                median(runs, |r| r.per_second),
                median(runs, |r| r.p50_us as f64),
                median(runs, |r| r.p99_us as f64)
            );
        }
        if let [(_, none), (_, replica)] = edge_runs.as_slice() {
            let ratio = median(replica, |r| r.per_second) / median(none, |r| r.per_second);
            println!("replica / none, checkouts per second through the edge: {ratio:.2}×");
        }
        Ok::<(), anyhow::Error>(())
    })?;
    drop(replica);
    drop(master);
    Ok(())
}

/// A stack for one setting: its own master and replica (linked), PostgreSQL, and the edge
/// with `--durability mode` and its worker off (the orders stay in the stream).
async fn edge_stack(
    module: &std::path::Path,
    mode: DurabilityMode,
    timeout_ms: u64,
) -> Result<(Stack, RedisServer)> {
    let (master, replica) = master_and_replica(module).await?;
    let stack = Stack::start_on(
        master,
        StackOptions {
            catalog: vec![(1, "the hot one", 1000, 1_000_000_000)],
            sale: SaleSettings {
                hold_ms: Some(3_600_000),
                ..SaleSettings::default()
            },
            edge: Box::new(move |settings| {
                settings.worker.durability.mode = mode;
                settings.worker.durability.durability_timeout_ms = timeout_ms;
                settings.no_worker = true;
                settings.max_connections = 10_000;
            }),
            ..StackOptions::default()
        },
    )
    .await?;
    Ok((stack, replica))
}

/// `args.buyers` signed-in clients of the edge for `args.seconds`: add to a new cart, then
/// check it out (the checkout timed).
async fn http_crowd(args: &BenchDurabilityArgs, stack: &Stack) -> Result<Run> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let stop_at = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.buyers {
        let anonymous = EdgeClient::new(&stack.url(""))?;
        let user = format!("b{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let token = anonymous.sign_in(&user).await?.token;
        let buyer = EdgeClient::new(&stack.url(""))?.with_token(&token)?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new(3)?;
            while Instant::now() < stop_at {
                let cart = format!("h{}", NEXT.fetch_add(1, Ordering::Relaxed));
                buyer.cart_add(&LineChange::one(1, &cart)).await?;
                let started = Instant::now();
                buyer.checkout(&cart).await?;
                latencies
                    .record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))?;
            }
            Ok::<Histogram<u64>, anyhow::Error>(latencies)
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    ensure!(!all.is_empty(), "no checkout through the edge");
    Ok(Run {
        per_second: all.len() as f64 / args.seconds as f64,
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        not_durable: 0,
    })
}

/// `args.buyers` buyers for `args.seconds`: each reserves a new cart and checks it out.
async fn crowd(
    args: &BenchDurabilityArgs,
    engine: &FlashClient,
    durable: Option<&DurableWrites>,
    next_cart: Arc<AtomicU64>,
) -> Result<Run> {
    let stop_at = Instant::now() + Duration::from_secs(args.seconds);
    let not_durable = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for buyer in 0..args.buyers {
        let (engine, durable) = (engine.clone(), durable.cloned());
        let (next_cart, not_durable) = (next_cart.clone(), not_durable.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new(3)?;
            let user = format!("u{buyer}");
            while Instant::now() < stop_at {
                let cart = format!("c{}", next_cart.fetch_add(1, Ordering::Relaxed));
                engine.reserve(SALE, &cart, &user, SKU, 1).await?;
                let started = Instant::now();
                let outcome = match &durable {
                    Some(durable) => durable.checkout(SALE, &cart, &user).await,
                    None => engine.checkout(SALE, &cart, &user).await,
                };
                match outcome {
                    Ok(_) => {}
                    Err(flash_client::ClientError::NotDurable { .. }) => {
                        not_durable.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => return Err(anyhow::Error::from(error)),
                }
                latencies
                    .record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))?;
            }
            Ok::<Histogram<u64>, anyhow::Error>(latencies)
        }));
    }
    let started = Instant::now();
    let mut all = Histogram::<u64>::new(3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    let elapsed = started.elapsed().as_secs_f64().max(args.seconds as f64);
    ensure!(!all.is_empty(), "no checkout in {elapsed:.1} s");
    Ok(Run {
        per_second: all.len() as f64 / elapsed,
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        not_durable: not_durable.load(Ordering::Relaxed),
    })
}

/// A redis-server with the module and a replica of it, linked.
pub(crate) async fn master_and_replica(
    module: &std::path::Path,
) -> Result<(RedisServer, RedisServer)> {
    let options = ServerOptions {
        module: Some(module.to_path_buf()),
        ..ServerOptions::default()
    };
    let master = RedisServer::start(options.clone()).context("the master")?;
    let replica = RedisServer::start(ServerOptions {
        replica_of: Some(master.port),
        ..options
    })
    .context("the replica")?;
    wait_linked(&replica).await?;
    Ok((master, replica))
}

async fn wait_linked(replica: &RedisServer) -> Result<()> {
    let mut conn = replica.client().get_multiplexed_async_connection().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await?;
        if info.contains("master_link_status:up") {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the replica never linked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
