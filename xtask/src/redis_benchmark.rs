//! redis-benchmark as both benchmarks run it (`bench` and `bench-edge`'s yardstick): random
//! keys with `-r`, quiet CSV output, read back here.

use std::process::Command;

/// One redis-benchmark run against a loopback server.
pub struct Run<'a> {
    pub port: u16,
    /// Parallel connections (`-c`).
    pub clients: u64,
    /// Requests in all (`-n`).
    pub requests: u64,
    /// `__rand_int__` takes values in 0..keyspace (`-r`).
    pub keyspace: u32,
    /// Requests in flight per connection (`-P`).
    pub pipeline: u32,
    /// The command line sent.
    pub words: &'a [String],
}

impl Run<'_> {
    pub fn command(&self) -> Command {
        let mut command = Command::new("redis-benchmark");
        command
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-c")
            .arg(self.clients.to_string())
            .arg("-n")
            .arg(self.requests.to_string())
            .arg("-r")
            .arg(self.keyspace.to_string())
            .arg("-P")
            .arg(self.pipeline.to_string())
            .args(["-q", "--csv"])
            .args(self.words);
        command
    }
}

/// What a run's CSV says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Csv {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// redis-benchmark's `-q --csv` data line: `"test","rps","avg","min","p50","p95","p99","max"`,
/// read from the end (the test name may itself hold commas).
pub fn parse_csv(stdout: &str) -> Option<Csv> {
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
