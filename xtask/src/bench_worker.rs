//! `cargo xtask bench-worker`: orders applied per second by the worker, batch size 1 (the
//! naive one-order-per-transaction consumer) against a full batch, for one hot product and
//! for 100 products, in the same run.
//!
//! Each case gets a fresh database and sale with its orders already checked out; the clock
//! runs from the worker's start until the engine has no order pending (applied in
//! PostgreSQL, settled, acknowledged). PostgreSQL runs with its default durability (fsync
//! on), so a commit costs what it costs in production.
//!
//! Then the cost of `--durability replica` to the worker (a WAIT per batch before it writes):
//! the hot product at the full batch on a master with a replica attached, without and with
//! it, rounds interleaved, medians.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use flash_client::{Durability, FlashClient};
use flash_tests::{PostgresServer, RedisServer, ServerOptions};
use flash_worker::consumer::{Config, Counters, run as run_worker};
use flash_worker::migrate::migrate;
use flash_worker::stock::sync;
use futures::future::join_all;
use tokio_postgres::NoTls;

use crate::bench::median;
use crate::bench_durability::master_and_replica;
use crate::deps;
use crate::workspace::{Profile, build_module};

#[derive(clap::Args)]
pub struct BenchWorkerArgs {
    /// Orders per case at the full batch size.
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Orders per case at batch size 1 (slow by design: one transaction each).
    #[arg(long, default_value_t = 2_000)]
    single_orders: usize,
    /// The full batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Rounds of the durability comparison (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

struct Case {
    products: i64,
    batch: usize,
    orders: usize,
    seconds: f64,
}

impl Case {
    fn rate(&self) -> f64 {
        self.orders as f64 / self.seconds
    }
}

pub fn run(args: &BenchWorkerArgs) -> Result<()> {
    deps::ensure()?;
    let module = build_module(Profile::Release)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(bench(args, module))
}

async fn bench(args: &BenchWorkerArgs, module: std::path::PathBuf) -> Result<()> {
    let postgres = PostgresServer::start_with(true).context("cannot start PostgreSQL")?;
    let redis = RedisServer::start(ServerOptions {
        module: Some(module.clone()),
        ..ServerOptions::default()
    })
    .context("cannot start redis-server with the module")?;
    println!(
        "cargo xtask bench-worker --orders {} --single-orders {} --batch {} --rounds {}",
        args.orders, args.single_orders, args.batch, args.rounds
    );
    println!("PostgreSQL with fsync on, redis-server with the release module, single-line orders");
    let mut cases = Vec::new();
    for products in [1, 100] {
        for (batch, orders) in [(1, args.single_orders), (args.batch, args.orders)] {
            let seconds = measure(&postgres, &redis, products, batch, orders, None).await?;
            println!(
                "  {products:>3} product(s), batch {batch:>3}: {orders} orders in {seconds:.2} s"
            );
            cases.push(Case {
                products,
                batch,
                orders,
                seconds,
            });
        }
    }
    println!(
        "\n{:<14} {:>6} {:>8} {:>12} {:>10}",
        "products", "batch", "orders", "orders/s", "× batch 1"
    );
    for case in &cases {
        let single = cases
            .iter()
            .find(|c| c.products == case.products && c.batch == 1)
            .map_or(f64::NAN, Case::rate);
        println!(
            "{:<14} {:>6} {:>8} {:>12.0} {:>10.1}",
            if case.products == 1 {
                "1 (hot)".to_owned()
            } else {
                case.products.to_string()
            },
            case.batch,
            case.orders,
            case.rate(),
            case.rate() / single
        );
    }
    durability(args, &postgres, &module).await
}

/// The worker without and with `--durability replica`, on a master with a replica.
async fn durability(
    args: &BenchWorkerArgs,
    postgres: &PostgresServer,
    module: &std::path::Path,
) -> Result<()> {
    let (master, _replica) = master_and_replica(module).await?;
    let durable = Durability {
        replicas: 1,
        timeout: Duration::from_millis(500),
    };
    println!(
        "\nthe worker's --durability: 1 product (hot), batch {}, {} orders, a master with one \
         replica attached on loopback",
        args.batch, args.orders
    );
    let (mut plain, mut waited) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds.max(1) {
        for (label, mode, rates) in [
            ("none", None, &mut plain),
            ("replica", Some(durable), &mut waited),
        ] {
            let seconds = measure(postgres, &master, 1, args.batch, args.orders, mode).await?;
            let rate = args.orders as f64 / seconds;
            println!("  round {round}  --durability {label:<8} {rate:>8.0} orders/s");
            rates.push(rate);
        }
    }
    let (plain, waited) = (
        median(plain).unwrap_or(f64::NAN),
        median(waited).unwrap_or(f64::NAN),
    );
    println!("\n{:<22} {:>10}", "worker", "orders/s");
    println!("{:<22} {:>10.0}", "--durability none", plain);
    println!("{:<22} {:>10.0}", "--durability replica", waited);
    println!("replica / none: {:.2}×", waited / plain);
    Ok(())
}

/// One case: a fresh database and sale, `orders` checked out, then the worker's run timed.
async fn measure(
    postgres: &PostgresServer,
    redis: &RedisServer,
    products: i64,
    batch: usize,
    orders: usize,
    durability: Option<Durability>,
) -> Result<f64> {
    let url = postgres.create_database()?;
    let (mut pg, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(connection);
    migrate(&mut pg).await?;
    pg.batch_execute("INSERT INTO users (id, username) VALUES (1, 'bench')")
        .await?;
    pg.execute(
        "INSERT INTO products (id, name, price_cents, stock)
         SELECT g, 'product ' || g, 100, 1000000000 FROM generate_series(1, $1::bigint) AS g",
        &[&products],
    )
    .await?;
    // A sale per case: cases share a server, and a sale's order ids would repeat.
    static CASES: AtomicUsize = AtomicUsize::new(0);
    let sale = format!(
        "bw-{products}-{batch}-{}",
        CASES.fetch_add(1, Ordering::Relaxed)
    );
    let engine = FlashClient::connect(&redis.url()).await?;
    engine.sale(&sale, &Default::default()).await?;
    sync(&pg, &engine, &sale).await?;
    for chunk in (0..orders).collect::<Vec<_>>().chunks(500) {
        let bought = join_all(chunk.iter().map(|n| {
            let (engine, sale) = (engine.clone(), sale.clone());
            async move {
                let product = 1 + (*n as i64 % products);
                engine.buy(&sale, &format!("o{n}"), "1", product, 1).await
            }
        }))
        .await;
        for result in bought {
            result?;
        }
    }

    let mut config = Config::new(&redis.url(), &url, &sale, "bench");
    config.batch_size = batch;
    config.block = Duration::from_millis(50);
    config.durability = durability;
    let counters = Arc::new(Counters::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let worker = tokio::spawn(run_worker(config, counters, async {
        let _ = stopped.await;
    }));
    let deadline = started + Duration::from_secs(600);
    loop {
        let info = engine.info(&sale).await?;
        if info.total.pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the worker did not finish {orders} orders in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    worker.await?;
    let confirmed: i64 = pg
        .query_one(
            "SELECT count(*) FROM orders WHERE status = 'confirmed'",
            &[],
        )
        .await?
        .get(0);
    if confirmed != orders as i64 {
        bail!("{confirmed} orders confirmed in PostgreSQL, {orders} expected");
    }
    Ok(seconds)
}
