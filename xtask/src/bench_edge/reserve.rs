//! The yardstick: `redis-benchmark` FLASH.RESERVE at the same concurrency, read from its CSV.

use anyhow::{Context, Result, anyhow, bail};
use flash_tests::RedisServer;

use super::BenchEdgeArgs;
use super::cpu::CpuProbe;
use super::http::HttpMeasure;
use crate::redis_benchmark;
use crate::workspace::show;

/// The SKU and user of redis-benchmark's reserves. One fixed user, because redis-benchmark
/// gives every `__rand_int__` its own number and stops at the first error reply: random
/// users would sooner or later reserve into another user's random cart (NOTOWNER). With a
/// fixed user a repeated cart is simply reserved into again.
pub(super) const RESERVE_SKU: &str = "14";
pub(super) const RESERVE_USER: &str = "bench-user";
/// redis-benchmark's `-r`: random cart numbers in 0..KEYSPACE.
pub(super) const KEYSPACE: u32 = 1_000_000;
/// A first FLASH.RESERVE run of this many requests, not counted, warms the server and tells
/// how many requests make a run last `--seconds`.
pub(super) const CALIBRATION_REQUESTS: u64 = 20_000;

/// redis-benchmark with `words` at -P 1, `--connections` clients.
pub(super) async fn redis_benchmark(
    redis: &RedisServer,
    args: &BenchEdgeArgs,
    requests: u64,
    words: &[String],
    cpu: &CpuProbe,
) -> Result<HttpMeasure> {
    let mut command = tokio::process::Command::from(
        redis_benchmark::Run {
            port: redis.port,
            clients: args.connections,
            requests,
            keyspace: KEYSPACE,
            pipeline: 1,
            words,
        }
        .command(),
    );
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
    let csv = redis_benchmark::parse_csv(&stdout)
        .ok_or_else(|| anyhow!("no CSV result from {shown}:\n{stdout}"))?;
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
