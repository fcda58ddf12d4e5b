//! The load generator: one keep-alive connection of the typed API client per signed-in
//! user, one request in flight on each, `POST /cart/add` (a new cart per request) or
//! `GET /products/` (a random page) until the measured window closes. Replies are checked
//! for their status and read whole, not parsed: the generator's CPU is the edge's loss.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use flash_api_client::{ApiError, Call, EdgeClient, LineChange};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::cpu::CpuProbe;
use super::http::{HttpMeasure, Route, refusals};
use super::table::new_histogram;
use super::{BenchEdgeArgs, PRODUCTS};

/// HTTP requests before this much time has passed are not counted (connections warm up,
/// the edge's pools fill).
pub(super) const WARMUP: Duration = Duration::from_secs(1);
/// A catalog page of the UI.
const PAGE: u64 = 12;

/// `POST /session` for users bench-1 … bench-n, on one connection; their tokens.
pub(super) async fn sign_in(url: &str, users: u64) -> Result<Vec<String>> {
    let client = EdgeClient::new(url)?;
    let mut tokens = Vec::new();
    for n in 1..=users {
        let signed = client
            .sign_in(&format!("bench-{n}"))
            .await
            .with_context(|| format!("POST /session as bench-{n}"))?;
        tokens.push(signed.token);
    }
    Ok(tokens)
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
pub(super) async fn http_run(
    url: &str,
    route: Route,
    tokens: &[String],
    round: u32,
    args: &BenchEdgeArgs,
    cpu: &CpuProbe,
) -> Result<HttpMeasure> {
    let mut clients = Vec::new();
    for token in tokens {
        let client = EdgeClient::new(url)?.with_token(token)?;
        client.connect().await?;
        clients.push(client);
    }
    let start = Instant::now();
    let window = (
        start + WARMUP,
        start + WARMUP + Duration::from_secs(args.seconds),
    );
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(index, client)| tokio::spawn(http_connection(client, route, round, index, window)))
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

/// One connection's loop: one request at a time until the window closes. A request counts
/// when its response arrives inside the window (throughput over exactly the window).
async fn http_connection(
    client: EdgeClient,
    route: Route,
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
    let pages = (PRODUCTS as u64).div_ceil(PAGE);
    for n in 0u64.. {
        // Each request is built before its clock starts, as a client would have it ready.
        let sent;
        let outcome = match route {
            Route::CartAdd => {
                let product = rng.random_range(1..=PRODUCTS);
                let cart_id = format!("r{round}c{index}-{n}");
                let call = Call::cart_add(&LineChange::one(product, &cart_id));
                sent = Instant::now();
                client.call_unparsed(call).await
            }
            Route::Products => {
                let call = Call::products(rng.random_range(0..pages) * PAGE, PAGE);
                sent = Instant::now();
                client.call_unparsed(call).await
            }
        };
        let done = Instant::now();
        match outcome {
            Ok(()) => {
                stats.ok_total += 1;
                if done >= measure_from && done < measure_until {
                    stats.ok += 1;
                    stats
                        .latency_us
                        .saturating_record(done.duration_since(sent).as_micros() as u64);
                }
            }
            Err(error) => match error.status() {
                Some(status) => *stats.statuses.entry(status.as_u16()).or_default() += 1,
                None => match error {
                    // No reply: count it, and go on over a new connection.
                    ApiError::Transport(_) => {
                        stats.transport_errors += 1;
                        client.connect().await?;
                    }
                    other => bail!("{}: {other}", route.label()),
                },
            },
        }
        if done >= measure_until {
            break;
        }
    }
    Ok(stats)
}
