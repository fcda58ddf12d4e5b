//! The HTTP half: rounds of redis-benchmark FLASH.RESERVE, `POST /cart/add` and
//! `GET /products/` at the same concurrency, each line as it is measured, the table of
//! medians, the target, and the engine's ledger afterwards.

use std::collections::BTreeMap;

use anyhow::Result;
use flash_client::FlashClient;
use flash_tests::RedisServer;

use super::cpu::{CpuProbe, CpuShare};
use super::edge::EdgeProcess;
use super::load::{WARMUP, http_run, sign_in};
use super::reserve::{CALIBRATION_REQUESTS, RESERVE_SKU, RESERVE_USER, redis_benchmark};
use super::table::{number, print_table};
use super::{BenchEdgeArgs, SALE};
use crate::bench::median;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Route {
    CartAdd,
    Products,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::CartAdd => "POST /cart/add",
            Route::Products => "GET /products/",
        }
    }
}

/// One run of a route (or of redis-benchmark).
#[derive(Clone, Debug, Default)]
pub(super) struct HttpMeasure {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// 200s in the measured window.
    pub ok: u64,
    /// 200s in the whole run, warm-up included (each /cart/add 200 holds one unit).
    pub ok_total: u64,
    /// Other statuses, whole run.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no response (the connection failed; it is made again).
    pub transport_errors: u64,
    pub cpu: CpuShare,
}

pub(super) async fn bench_http(
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
    let tokens = sign_in(&edge.url, args.connections).await?;
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
            let measure = http_run(&edge.url, route, &tokens, round, args, cpu).await?;
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
pub(super) fn refusals(measure: &HttpMeasure) -> String {
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
