//! The yardstick: `redis-benchmark` FLASH.RESERVE at the same concurrency, read from its CSV.

use anyhow::{Context, Result, anyhow, bail};
use flash_tests::RedisServer;

use super::BenchEdgeArgs;
use super::cpu::CpuProbe;
use super::http::HttpMeasure;
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
}
