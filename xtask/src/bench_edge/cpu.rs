//! Who took the cores: CPU time of the edge, redis-server, this process, its children and
//! the whole machine, from `/proc`, turned into cores used over an interval.

use std::time::Instant;

/// Linux reports CPU time in clock ticks of 1/100 s (USER_HZ, 100 on every mainstream ABI).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// CPU time of the processes that share the machine, to say who took the cores.
pub(super) struct CpuProbe {
    pub edge: u32,
    pub redis: u32,
}

#[derive(Clone, Copy, Default)]
pub(super) struct CpuSample {
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
pub(super) struct CpuShare {
    pub edge: f64,
    pub edge_system: f64,
    pub redis: f64,
    pub own: f64,
    pub benchmark: f64,
    /// Everything else on the machine: PostgreSQL, other users' work.
    pub other: f64,
}

impl CpuProbe {
    pub fn sample(&self) -> CpuSample {
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
    pub fn share_since(&self, before: &CpuSample) -> CpuShare {
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
    pub fn describe(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
