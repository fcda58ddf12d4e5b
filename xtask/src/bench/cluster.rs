//! `cargo xtask bench-cluster`: FLASH.RESERVE over 1, 2 and 3 masters of a real Redis Cluster,
//! one sale per master, each master driven by its own redis-benchmark at once.
//!
//! A sale lives in one slot, so one master serves it: more sales on more masters is how
//! Flash scales. This machine has 2 cores shared by the masters and the load generators, so
//! the aggregate rate it shows is bounded by them; each master's own cost per call
//! (`INFO commandstats`) is what projects the scaling to a core per master.

use std::process::Child;

use anyhow::{Context, Result, bail};
use flash_tests::{ClusterOptions, RedisCluster};

use super::measure::{command_stat, median};
use crate::redis_benchmark;
use crate::workspace::{Profile, build_module, show};

#[derive(Debug, clap::Args)]
pub struct BenchClusterArgs {
    /// Requests per redis-benchmark run, per master.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Parallel connections per master.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    clients: u64,
    /// Sweeps over 1, 2 and 3 masters; the table shows medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
}

const MASTERS: usize = 3;
const SKU: &str = "14";
const STOCK: &str = "1000000000";
const KEYSPACE: u32 = 1_000_000;

/// One master's part of a run.
struct Part {
    requests_per_sec: f64,
    usec_per_call: f64,
    successful_calls: u64,
}

pub fn run(args: &BenchClusterArgs) -> Result<()> {
    crate::deps::ensure()?;
    let module = build_module(Profile::Release)?;
    let cluster = RedisCluster::start(ClusterOptions {
        masters: MASTERS,
        replicas_per_master: 0,
        module: Some(module.clone()),
        ..ClusterOptions::default()
    })
    .context("cannot start a 3-master cluster")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // One sale per master.
    let sales: Vec<(u16, String)> = runtime
        .block_on(cluster.sales_on_masters("bench", MASTERS))?
        .into_iter()
        .map(|(sale, port)| (port, sale))
        .collect();
    let mut conns = Vec::new();
    for (port, sale) in &sales {
        let node = cluster.node(*port).context("a master")?;
        let mut conn = node.client().get_connection()?;
        redis::cmd("FLASH.SALE")
            .arg(sale)
            .arg("HOLD")
            .arg(600_000)
            .exec(&mut conn)?;
        redis::cmd("FLASH.LOAD")
            .arg(sale)
            .arg(SKU)
            .arg(STOCK)
            .exec(&mut conn)?;
        conns.push(conn);
    }

    println!(
        "\ncargo xtask bench-cluster --requests {} --clients {} --rounds {}",
        args.requests, args.clients, args.rounds
    );
    println!(
        "a Redis Cluster of {MASTERS} masters (no replicas), the release module on each ({}), \
         {} CPUs for the masters and the load generators",
        module.display(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for (port, sale) in &sales {
        println!("  master 127.0.0.1:{port}: sale {sale}");
    }
    println!(
        "each master: redis-benchmark -c {} -n {} -r {KEYSPACE} -P 16 FLASH.RESERVE <its sale> \
         cart:__rand_int__ u {SKU} 1, all at once",
        args.clients, args.requests
    );

    // masters → (aggregate req/s, mean µs/call) per round
    let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); MASTERS];
    let mut reserved: Vec<u64> = vec![0; MASTERS];
    for round in 1..=args.rounds {
        for masters in 1..=MASTERS {
            let parts = run_at_once(args, &sales[..masters], &mut conns[..masters])?;
            let aggregate: f64 = parts.iter().map(|p| p.requests_per_sec).sum();
            let cost = parts.iter().map(|p| p.usec_per_call).sum::<f64>() / parts.len() as f64;
            for (i, part) in parts.iter().enumerate() {
                reserved[i] += part.successful_calls;
            }
            println!(
                "  round {round}  {masters} master(s)  {aggregate:>10.0} req/s in all  \
                 {cost:.2} µs/call per master"
            );
            samples[masters - 1].push((aggregate, cost));
        }
    }

    let single = median(samples[0].iter().map(|(rate, _)| *rate).collect()).unwrap_or(0.0);
    println!();
    println!(
        "{:<8} {:>14} {:>10} {:>22} {:>26}",
        "masters",
        "req/s in all",
        "× 1 master",
        "server µs/call/master",
        "projected req/s, a core each"
    );
    for (index, rounds) in samples.iter().enumerate() {
        let masters = index + 1;
        let rate = median(rounds.iter().map(|(rate, _)| *rate).collect()).unwrap_or(0.0);
        let cost = median(rounds.iter().map(|(_, cost)| *cost).collect()).unwrap_or(0.0);
        let projected = if cost > 0.0 {
            masters as f64 * 1e6 / cost
        } else {
            0.0
        };
        println!(
            "{masters:<8} {rate:>14.0} {:>10.2} {cost:>22.2} {projected:>26.0}",
            if single > 0.0 { rate / single } else { 0.0 }
        );
    }
    println!(
        "  req/s in all: the sum of the masters' redis-benchmark rates, run at once; projected: \
         masters × 1,000,000 / µs per call (each master on a core of its own, the commands \
         alone)"
    );

    // Every successful reserve held one unit on its sale's master.
    for ((port, sale), (conn, expected)) in sales.iter().zip(conns.iter_mut().zip(&reserved)) {
        let info: redis::Value = redis::cmd("FLASH.INFO").arg(sale).query(conn)?;
        let held = held_units(&info);
        if held != Some(*expected as i64) {
            bail!("sale {sale} on {port}: {held:?} units held, {expected} successful reserves");
        }
        println!("sale {sale} on {port}: held = {expected} successful reserves");
    }
    Ok(())
}

/// One redis-benchmark per given master, started together; each one's rate and its master's
/// cost per call.
fn run_at_once(
    args: &BenchClusterArgs,
    sales: &[(u16, String)],
    conns: &mut [redis::Connection],
) -> Result<Vec<Part>> {
    for conn in conns.iter_mut() {
        redis::cmd("CONFIG").arg("RESETSTAT").exec(conn)?;
    }
    let mut children: Vec<(Child, String)> = Vec::new();
    for (port, sale) in sales {
        let words: Vec<String> = ["FLASH.RESERVE", sale, "cart:__rand_int__", "u", SKU, "1"]
            .map(str::to_owned)
            .to_vec();
        let mut command = redis_benchmark::Run {
            port: *port,
            clients: args.clients,
            requests: args.requests,
            keyspace: KEYSPACE,
            pipeline: 16,
            words: &words,
        }
        .command();
        command.stdout(std::process::Stdio::piped());
        let shown = show(&command);
        children.push((
            command
                .spawn()
                .with_context(|| format!("cannot run {shown}"))?,
            shown,
        ));
    }
    let mut parts = Vec::new();
    for ((child, shown), conn) in children.into_iter().zip(conns.iter_mut()) {
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!("{shown} exited with {}", output.status);
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let csv = redis_benchmark::parse_csv(&stdout)
            .with_context(|| format!("no CSV result from {shown}:\n{stdout}"))?;
        let stats: String = redis::cmd("INFO").arg("commandstats").query(conn)?;
        let stat = command_stat(&stats, "flash.reserve")
            .with_context(|| format!("no cmdstat_FLASH.RESERVE after {shown}"))?;
        parts.push(Part {
            requests_per_sec: csv.requests_per_sec,
            usec_per_call: stat.usec_per_call,
            successful_calls: stat.calls.saturating_sub(stat.failed + stat.rejected),
        });
    }
    Ok(parts)
}

/// FLASH.INFO's `total` row's held units.
fn held_units(info: &redis::Value) -> Option<i64> {
    let redis::Value::Array(items) = info else {
        return None;
    };
    let total = items
        .chunks(2)
        .find(|pair| pair[0] == redis::Value::BulkString(b"total".to_vec()))?
        .get(1)?;
    match total {
        redis::Value::Array(columns) => match columns.get(2) {
            Some(redis::Value::Int(held)) => Some(*held),
            _ => None,
        },
        _ => None,
    }
}
