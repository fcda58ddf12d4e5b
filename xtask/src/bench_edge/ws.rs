//! The WebSocket half: thousands of clients subscribed to a few products, stock changed
//! at a fixed rate straight in the engine (FLASH.LOAD) on a schedule whose values encode
//! each change's sequence number, then the delivery figures: latency, frames lost, final
//! values, and what the hub's metrics say.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use flash_core::Command;
use flash_core::cmd::Load;
use flash_tests::RedisServer;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Semaphore, watch};

use super::cpu::CpuProbe;
use super::edge::{EdgeProcess, metric};
use super::table::{new_histogram, print_table};
use super::ws_client::{ClientStats, ws_client};
use super::{BenchEdgeArgs, SALE};

/// WebSocket values are `WS_BASE + seq`: far below the catalog's units (so a value left from
/// the HTTP half is never mistaken for a change) and far above anything a run sends.
pub(super) const WS_BASE: i64 = 1_000_000;
/// Handshakes in flight at once: the edge's accept backlog (tokio's 1024) never overflows.
const WS_CONNECT_BATCH: usize = 256;
/// After the last change, how long clients may take to show every final value.
const WS_DRAIN: Duration = Duration::from_secs(10);

/// The change schedule: change `seq` (1..=changes) sets product `product_of(seq)` to
/// `WS_BASE + seq`, round-robin over `products` products (ids 1..=products).
#[derive(Clone, Copy, Debug)]
pub(super) struct Schedule {
    pub changes: u64,
    pub products: u64,
}

impl Schedule {
    fn new(rate: u64, seconds: u64) -> Schedule {
        // Each product changes every 500 ms on average (at least 450 ms apart, see
        // `drive_changes`): nine 50 ms ticks, so a late message cannot land in the same
        // tick as the product's next change.
        Schedule {
            changes: rate * seconds,
            products: rate.div_ceil(2).max(1),
        }
    }

    pub fn product_of(&self, seq: u64) -> i64 {
        ((seq - 1) % self.products + 1) as i64
    }

    /// The last change of each product (index product − 1); 0 for a product never changed.
    pub fn finals(&self) -> Vec<u64> {
        let mut finals = vec![0; self.products as usize];
        for seq in self.changes.saturating_sub(self.products) + 1..=self.changes {
            finals[(self.product_of(seq) - 1) as usize] = seq;
        }
        finals
    }
}

/// Shared between the change driver and the clients.
pub(super) struct WsShared {
    pub base: Instant,
    /// Nanoseconds from `base` to the moment change `seq` was sent, plus one (0: not sent).
    pub sent_at: Vec<AtomicU64>,
    /// Clients that hold the starting value of every product.
    pub ready: AtomicUsize,
    /// Clients that hold the final value of every product.
    pub complete: AtomicUsize,
    /// Clients whose connection or handshake failed.
    pub failed: AtomicUsize,
    /// Per change: the clients it reached, and the sum of their latencies in µs. A change
    /// that reached nobody was merged into the next one by the hub (a late tick); one that
    /// reached some clients only was lost on the way to the others.
    pub delivered: Vec<AtomicU64>,
    pub latency_sum_us: Vec<AtomicU64>,
}

pub(super) async fn bench_ws(
    args: &BenchEdgeArgs,
    edge: &EdgeProcess,
    redis: &RedisServer,
    cpu: &CpuProbe,
) -> Result<()> {
    let schedule = Schedule::new(args.ws_rate, args.ws_seconds);
    println!(
        "\n== WebSocket: {} clients subscribed to products 1..={}, {} changes at {}/s \
         (FLASH.LOAD straight in the engine, round-robin at random moments within each slot: each product about every {} ms)",
        args.ws_clients,
        schedule.products,
        schedule.changes,
        args.ws_rate,
        1000 * schedule.products / args.ws_rate
    );
    // Every watched product starts at WS_BASE (change 0).
    let mut driver = redis.client().get_connection()?;
    let stock: Vec<(i64, i64)> = (1..=schedule.products as i64)
        .map(|product| (product, WS_BASE))
        .collect();
    send_load(&mut driver, stock)?;
    // Let the hub take the starting values from the channel before clients ask for them.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let shared = Arc::new(WsShared {
        base: Instant::now(),
        sent_at: (0..=schedule.changes).map(|_| AtomicU64::new(0)).collect(),
        ready: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        delivered: (0..=schedule.changes).map(|_| AtomicU64::new(0)).collect(),
        latency_sum_us: (0..=schedule.changes).map(|_| AtomicU64::new(0)).collect(),
    });
    let (stop, stopped) = watch::channel(false);
    let handshakes = Arc::new(Semaphore::new(WS_CONNECT_BATCH));
    let connect_started = Instant::now();
    let before_connect = cpu.sample();
    let clients: Vec<_> = (0..args.ws_clients)
        .map(|_| {
            tokio::spawn(ws_client(
                edge.address,
                schedule,
                shared.clone(),
                handshakes.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    let clients_total = args.ws_clients as usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ready = shared.ready.load(Ordering::Acquire);
        let failed = shared.failed.load(Ordering::Acquire);
        if ready + failed >= clients_total {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "after 300 s only {ready} of {clients_total} clients are subscribed ({failed} failed)"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let connect_cpu = cpu.sample().share_since(&before_connect);
    let ready = shared.ready.load(Ordering::Acquire);
    println!(
        "{ready} clients connected and subscribed in {connect_seconds:.1} s ({} failed; {})",
        shared.failed.load(Ordering::Acquire),
        connect_cpu.describe()
    );
    // Idle clients: what the heartbeat and open sockets cost at rest.
    let before_idle = cpu.sample();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "idle, {ready} sockets open: {}",
        cpu.sample().share_since(&before_idle).describe()
    );

    let metrics_before = edge.metrics().await;
    let before_drive = cpu.sample();
    let driver_shared = shared.clone();
    let rate = args.ws_rate;
    let drive = tokio::task::spawn_blocking(move || {
        drive_changes(&mut driver, schedule, rate, &driver_shared)
    });
    let drive_seconds = drive.await??;
    let drain_started = Instant::now();
    while shared.complete.load(Ordering::Acquire) < ready && drain_started.elapsed() < WS_DRAIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_seconds = drain_started.elapsed().as_secs_f64();
    let drive_cpu = cpu.sample().share_since(&before_drive);
    let hub_metrics = edge.metrics().await;
    let _ = stop.send(true);
    println!(
        "{} changes sent in {drive_seconds:.2} s ({:.1}/s); every client held every final \
         value {drain_seconds:.2} s after the last one{}",
        schedule.changes,
        schedule.changes as f64 / drive_seconds,
        if shared.complete.load(Ordering::Acquire) < ready {
            " (or gave up waiting)"
        } else {
            ""
        }
    );
    let delta = |name: &str| -> Option<f64> {
        let after: f64 = metric(&hub_metrics, name)?.parse().ok()?;
        let before: f64 = metric(&metrics_before, name)?.parse().ok()?;
        Some(after - before)
    };
    let busy_seconds = drive_seconds + drain_seconds;
    if let (Some(frames), Some(ticks)) = (
        delta("flash_ws_messages_sent_total"),
        delta("flash_hub_ticks_total"),
    ) && frames > 0.0
    {
        println!(
            "the edge wrote {frames:.0} frames in {ticks:.0} ticks ({:.0} frames/s; {} ticks \
             would carry every change alone): {:.1} µs of edge CPU per frame, {:.0}% of it in \
             the kernel; {}",
            frames / busy_seconds,
            schedule.changes,
            drive_cpu.edge * busy_seconds / frames * 1e6,
            100.0 * drive_cpu.edge_system / drive_cpu.edge.max(1e-9),
            drive_cpu.describe()
        );
    }

    let totals = gather(clients, &schedule.finals()).await?;
    let WsTotals {
        latency_us,
        received,
        stale,
        unexpected,
        with_finals,
        ended_early,
    } = totals;
    let connected = ready as u64;
    let expected = connected * schedule.changes;
    let lost = expected.saturating_sub(received);
    let all_final = with_finals == args.ws_clients;
    let p99_ms = latency_us.value_at_quantile(0.99) as f64 / 1000.0;

    println!();
    print_table(
        &[
            "clients",
            "changes/s",
            "messages expected",
            "received",
            "lost",
            "final value at all clients",
            "p50 ms",
            "p99 ms",
            "max ms",
        ],
        &[vec![
            format!("{connected}"),
            format!("{rate}"),
            format!("{expected}"),
            format!("{received}"),
            format!("{lost}"),
            if all_final {
                "yes".to_owned()
            } else {
                format!("no: {with_finals} of {}", args.ws_clients)
            },
            format!("{:.2}", latency_us.value_at_quantile(0.50) as f64 / 1000.0),
            format!("{p99_ms:.2}"),
            format!("{:.2}", latency_us.max() as f64 / 1000.0),
        ]],
    );
    let verdict = if p99_ms < 150.0 && all_final && connected == args.ws_clients {
        "met"
    } else {
        "missed"
    };
    println!(
        "\nWebSocket p99 {p99_ms:.2} ms at {connected} clients, final value at {with_finals} of \
         {} clients (target p99 < 150 ms and the final value always delivered: {verdict})",
        args.ws_clients
    );
    println!(
        "(latency: FLASH.LOAD sent → frame read by the client, both clocks in this process; \
         includes the hub's 50 ms coalescing tick)"
    );
    print_delivery(&shared, schedule, connected, args.ws_rate);
    if stale + unexpected > 0 {
        println!(
            "frames repeating or older than one already received: {stale}; foreign: {unexpected}"
        );
    }
    for (reason, count) in &ended_early {
        println!("WARNING: {count} client(s) ended early: {reason}");
    }
    let hub_line: Vec<String> = [
        "flash_ws_clients",
        "flash_ws_messages_sent_total",
        "flash_ws_updates_dropped_total",
        "flash_ws_lag_resyncs_total",
        "flash_hub_ticks_total",
    ]
    .iter()
    .filter_map(|name| Some(format!("{name} {}", metric(&hub_metrics, name)?)))
    .collect();
    if !hub_line.is_empty() {
        println!("edge metrics: {}", hub_line.join(", "));
    }
    Ok(())
}

/// Every client's figures, added up.
struct WsTotals {
    latency_us: Histogram<u64>,
    received: u64,
    stale: u64,
    unexpected: u64,
    /// Clients that ended on the final value of every product.
    with_finals: u64,
    /// Clients whose socket ended before the run did, by reason.
    ended_early: BTreeMap<String, u64>,
}

async fn gather(
    clients: Vec<tokio::task::JoinHandle<Option<ClientStats>>>,
    finals: &[u64],
) -> Result<WsTotals> {
    let mut totals = WsTotals {
        latency_us: new_histogram()?,
        received: 0,
        stale: 0,
        unexpected: 0,
        with_finals: 0,
        ended_early: BTreeMap::new(),
    };
    for client in clients {
        let Some(stats) = client.await? else {
            continue;
        };
        for &latency in &stats.latency_us {
            totals.latency_us.saturating_record(u64::from(latency));
        }
        totals.received += stats.received;
        totals.stale += stats.stale;
        totals.unexpected += stats.unexpected;
        let has_finals = stats
            .last
            .iter()
            .zip(finals)
            .all(|(&last, &seq)| last == WS_BASE + seq as i64);
        if has_finals {
            totals.with_finals += 1;
        }
        if let Some(reason) = stats.ended_early {
            *totals.ended_early.entry(reason).or_default() += 1;
        }
    }
    Ok(totals)
}

/// Where the lost frames went, and whether latency grew during the run (a backlog: the edge
/// or the clients could not keep up) or stayed flat.
fn print_delivery(shared: &WsShared, schedule: Schedule, clients: u64, rate: u64) {
    let delivered: Vec<u64> = shared
        .delivered
        .iter()
        .map(|count| count.load(Ordering::Relaxed))
        .collect();
    let to_nobody: Vec<u64> = (1..=schedule.changes)
        .filter(|&seq| delivered[seq as usize] == 0)
        .collect();
    let to_some = (1..=schedule.changes)
        .filter(|&seq| (1..clients).contains(&delivered[seq as usize]))
        .count();
    if !to_nobody.is_empty() || to_some > 0 {
        let shown: Vec<String> = to_nobody.iter().take(12).map(u64::to_string).collect();
        println!(
            "changes that reached no client (merged with the product's next change by the \
             hub): {} [{}{}]; changes that reached only some clients: {to_some}",
            to_nobody.len(),
            shown.join(", "),
            if to_nobody.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    // Mean latency per second of the schedule.
    let per_second: Vec<String> = (1..=schedule.changes)
        .collect::<Vec<_>>()
        .chunks(rate.max(1) as usize)
        .map(|seqs| {
            let (sum, count) = seqs.iter().fold((0, 0), |(sum, count), &seq| {
                (
                    sum + shared.latency_sum_us[seq as usize].load(Ordering::Relaxed),
                    count + delivered[seq as usize],
                )
            });
            if count == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}", sum as f64 / count as f64 / 1000.0)
            }
        })
        .collect();
    println!(
        "mean latency (ms) by second of the run: {}",
        per_second.join(" ")
    );
}

/// Sends the schedule's changes at `rate` per second on a blocking connection of its own
/// (its own thread, so the clients' work never delays a send), recording each send time
/// just before the command leaves. Returns the seconds it took.
///
/// Each change goes at a random moment within its slot of 1/rate s: at exactly 20/s the
/// sends would keep one phase against the hub's 50 ms ticker, and every change would wait
/// the same (arbitrary) part of a tick. At random moments the wait averages half a tick, as
/// for real traffic; a product's changes stay at least 450 ms apart.
fn drive_changes(
    conn: &mut redis::Connection,
    schedule: Schedule,
    rate: u64,
    shared: &WsShared,
) -> Result<f64> {
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let mut rng = SmallRng::seed_from_u64(rate);
    let start = Instant::now();
    for seq in 1..=schedule.changes {
        let slot = (seq - 1) as f64 + rng.random_range(0.0..1.0);
        let due = start + period.mul_f64(slot);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = Instant::now().duration_since(shared.base).as_nanos() as u64 + 1;
        shared.sent_at[seq as usize].store(sent, Ordering::Release);
        send_load(conn, vec![(schedule.product_of(seq), WS_BASE + seq as i64)])?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// FLASH.LOAD on the bench's sale, as a typed command, over a plain blocking connection:
/// the changes are sent from a thread of their own at precise moments.
fn send_load(conn: &mut redis::Connection, stock: Vec<(i64, i64)>) -> Result<()> {
    let command = Command::Load(Load {
        sale: SALE.to_owned(),
        total: false,
        stock,
    });
    redis::cmd(command.spec().name)
        .arg(command.to_args())
        .exec(conn)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_spaces_each_product_and_knows_the_finals() {
        let schedule = Schedule::new(20, 12);
        assert_eq!(schedule.changes, 240);
        assert_eq!(schedule.products, 10);
        assert_eq!(schedule.product_of(1), 1);
        assert_eq!(schedule.product_of(10), 10);
        assert_eq!(schedule.product_of(11), 1);
        let finals = schedule.finals();
        assert_eq!(finals.first(), Some(&231));
        assert_eq!(finals.last(), Some(&240));
        // Fewer changes than products: the others keep their starting value.
        let short = Schedule {
            changes: 3,
            products: 5,
        };
        assert_eq!(short.finals(), vec![1, 2, 3, 0, 0]);
    }
}
