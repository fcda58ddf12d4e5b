//! One redis-benchmark run, and the server's own counters read around it.

use anyhow::{Context, Result, anyhow, bail};
use redis::Connection;

use super::config::cpu_seconds;
use super::workload::Workload;
use super::{BenchArgs, KEYSPACE};
use crate::redis_benchmark;
use crate::workspace::show;

/// One redis-benchmark run's numbers.
#[derive(Clone, Debug)]
pub(super) struct Measure {
    pub(super) requests_per_sec: f64,
    /// From commandstats; None when the expected `cmdstat_` line was missing.
    pub(super) usec_per_call: Option<f64>,
    pub(super) successful_calls: u64,
    /// The server process's CPU time (user + system, every thread) per request sent: unlike
    /// commandstats, it counts the reads and writes of the sockets, the AOF and the
    /// replication stream.
    pub(super) cpu_usec_per_request: Option<f64>,
}

impl Measure {
    /// The rounds of one workload: median rate and cost, every successful call counted.
    pub(super) fn median(runs: &[Measure]) -> Measure {
        let rates: Vec<f64> = runs.iter().map(|m| m.requests_per_sec).collect();
        let costs: Vec<f64> = runs.iter().filter_map(|m| m.usec_per_call).collect();
        let cpu: Vec<f64> = runs.iter().filter_map(|m| m.cpu_usec_per_request).collect();
        Measure {
            requests_per_sec: median(rates).unwrap_or(0.0),
            usec_per_call: median(costs),
            successful_calls: runs.iter().map(|m| m.successful_calls).sum(),
            cpu_usec_per_request: median(cpu),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count); None when empty.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

pub(super) fn measure(
    conn: &mut Connection,
    port: u16,
    args: &BenchArgs,
    workload: Workload,
    pipeline: u32,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Measure> {
    redis::cmd("CONFIG").arg("RESETSTAT").exec(conn)?;
    let cpu_before = server_cpu(conn)?;
    let mut command = redis_benchmark::Run {
        port,
        clients: args.clients,
        requests: args.requests,
        keyspace: KEYSPACE,
        pipeline,
        words,
    }
    .command();
    let output = command
        .output()
        .with_context(|| format!("cannot run {}", show(&command)))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "{} exited with {}: {}",
            show(&command),
            output.status,
            stderr.trim()
        );
    }
    let requests_per_sec = redis_benchmark::parse_csv(&stdout)
        .ok_or_else(|| anyhow!("no CSV result from {}:\n{stdout}", show(&command)))?
        .requests_per_sec;

    let cpu_after = server_cpu(conn)?;
    let stats: String = redis::cmd("INFO").arg("commandstats").query(conn)?;
    let stat = command_stat(&stats, workload.stat_name());
    if stat.is_none() {
        warnings.push(format!(
            "no cmdstat_{} after {} at -P {pipeline}; commandstats had: {}",
            workload.stat_name(),
            workload.label(),
            stat_names(&stats).join(", ")
        ));
    }
    let errors: String = redis::cmd("INFO").arg("errorstats").query(conn)?;
    let error_counts = error_stats(&errors);
    if !error_counts.is_empty() {
        warnings.push(format!(
            "error replies during {} at -P {pipeline}: {}",
            workload.label(),
            error_counts
                .iter()
                .map(|(code, count)| format!("{code}×{count}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Measure {
        requests_per_sec,
        usec_per_call: stat.map(|s| s.usec_per_call),
        successful_calls: stat.map_or(0, |s| s.calls.saturating_sub(s.failed + s.rejected)),
        cpu_usec_per_request: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| (after - before) * 1e6 / args.requests as f64),
    })
}

fn server_cpu(conn: &mut Connection) -> Result<Option<f64>> {
    let info: String = redis::cmd("INFO").arg("cpu").query(conn)?;
    Ok(cpu_seconds(&info))
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CommandStat {
    pub(super) calls: u64,
    pub(super) usec_per_call: f64,
    pub(super) failed: u64,
    pub(super) rejected: u64,
}

/// `cmdstat_<name>:calls=…,usec=…,usec_per_call=…,rejected_calls=…,failed_calls=…`. The name
/// is matched without case: Redis lowercases its own commands (`cmdstat_incr`) but shows a
/// module's as registered (`cmdstat_FLASH.RESERVE`).
pub(super) fn command_stat(info: &str, name: &str) -> Option<CommandStat> {
    let fields = info.lines().find_map(|line| {
        let (key, value) = line.strip_prefix("cmdstat_")?.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })?;
    let field = |key: &str| {
        fields
            .split(',')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    };
    Some(CommandStat {
        calls: field("calls")?.parse().ok()?,
        usec_per_call: field("usec_per_call")?.parse().ok()?,
        failed: field("failed_calls")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        rejected: field("rejected_calls")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

fn stat_names(info: &str) -> Vec<&str> {
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_")?.split(':').next())
        .collect()
}

/// `errorstat_<CODE>:count=<n>` lines.
fn error_stats(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|line| {
            let (code, rest) = line.strip_prefix("errorstat_")?.split_once(':')?;
            let count = rest.trim().strip_prefix("count=")?.parse().ok()?;
            Some((code.to_owned(), count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_stat_reads_calls_and_cost() {
        let info = "# Commandstats\r\ncmdstat_FLASH.RESERVE:calls=2005,usec=398,\
                    usec_per_call=0.20,rejected_calls=1,failed_calls=5\r\n";
        assert_eq!(
            command_stat(info, "flash.reserve"),
            Some(CommandStat {
                calls: 2005,
                usec_per_call: 0.20,
                failed: 5,
                rejected: 1
            })
        );
        assert_eq!(command_stat(info, "incr"), None);
        assert_eq!(stat_names(info), vec!["FLASH.RESERVE"]);
    }

    #[test]
    fn error_stats_reads_codes_and_counts() {
        let info = "# Errorstats\r\nerrorstat_ERR:count=5\r\nerrorstat_NOTOWNER:count=2\r\n";
        assert_eq!(
            error_stats(info),
            vec![("ERR".to_owned(), 5), ("NOTOWNER".to_owned(), 2)]
        );
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
