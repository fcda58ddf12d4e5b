//! `cargo xtask bench-latency` (also the last part of `cargo xtask bench`): what the module's
//! own work costs every other client of the server. Issue 13's targets: PING's p99 at most
//! 2 ms with 100,000 idle sales on the server, and while 100,000 holds fall due at once.
//!
//! On a fresh redis-server with the release module, one client sends PING after PING (one
//! in flight, over loopback) and records each round trip, in four phases:
//! 1. a quiet server (the floor: loopback and the client);
//! 2. 100,000 idle sales (`FLASH.SALE idle<n>`), once the timer has had its first look at
//!    each;
//! 3. 100,000 holds falling due within about a second, released by the module's timer alone,
//!    from the first deadline until none is held;
//! 4. the same with a client calling `FLASH.EXPIRE … COUNT 10000` in a loop as fast as it
//!    answers (what the Lua twin's worker does, here against the module): each call's round
//!    trip and carts released are recorded too.
//!
//! Each phase also reports redis-server's CPU time over its wall time (`INFO cpu`). This
//! measures; it fails only when a phase cannot be measured or the books do not balance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use hdrhistogram::Histogram;
use redis::{Client, Connection, Value};

use super::config::cpu_seconds;
use super::memory::pipelined;
use super::{SKU, info_total, release_server, send};
use crate::workspace::info_field;

const DUE_SALE: &str = "due";
/// Commands per pipelined round trip while the sales and carts are made.
const BATCH: u64 = 1000;

#[derive(clap::Args, Clone)]
pub struct BenchLatencyArgs {
    /// Idle sales made for phase 2.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub sales: u64,
    /// Holds made to fall due at once in phases 3 and 4.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub holds: u64,
    /// Seconds of PING in phases 1 and 2.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
}

impl Default for BenchLatencyArgs {
    fn default() -> BenchLatencyArgs {
        BenchLatencyArgs {
            sales: 100_000,
            holds: 100_000,
            seconds: 5,
        }
    }
}

/// One phase's figures.
struct Phase {
    label: String,
    pings: Histogram<u64>,
    wall: Duration,
    cpu_seconds: f64,
    note: String,
}

pub fn run(args: &BenchLatencyArgs) -> Result<()> {
    let (module, server) = release_server()?;
    let client = server.client();
    let mut conn = client
        .get_connection()
        .context("cannot connect to the bench server")?;
    let server_info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
    println!(
        "\ncargo xtask bench-latency --sales {} --holds {} --seconds {}",
        args.sales, args.holds, args.seconds
    );
    println!(
        "redis-server {} (no persistence), module {}; PING one at a time over loopback",
        info_field(&server_info, "redis_version").unwrap_or("?"),
        module.display()
    );
    let window = Duration::from_secs(args.seconds);
    let mut phases = Vec::new();

    phases.push(measure(
        &client,
        &mut conn,
        "quiet server",
        String::new(),
        |_| {
            sleep(window);
            Ok(String::new())
        },
    )?);

    let started = Instant::now();
    pipelined(&mut conn, args.sales, BATCH, "sale", |pipe, n| {
        pipe.cmd("FLASH.SALE")
            .arg(format!("idle{n}"))
            .arg("HOLD")
            .arg(60_000);
    })?;
    let made = started.elapsed();
    let settled = wait_quiet(&mut conn)?;
    phases.push(measure(
        &client,
        &mut conn,
        &format!("{} idle sales", args.sales),
        format!("made in {made:.1?}; the timer's first looks done {settled:.1?} later"),
        |_| {
            sleep(window);
            Ok(String::new())
        },
    )?);

    phases.push(due_holds(&client, &mut conn, args, false)?);
    phases.push(due_holds(&client, &mut conn, args, true)?);

    println!();
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}  notes",
        "phase", "PINGs", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "redis CPU"
    );
    for phase in &phases {
        println!(
            "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8.0}%  {}",
            phase.label,
            phase.pings.len(),
            phase.pings.value_at_quantile(0.50),
            phase.pings.value_at_quantile(0.99),
            phase.pings.value_at_quantile(0.999),
            phase.pings.max(),
            100.0 * phase.cpu_seconds / phase.wall.as_secs_f64(),
            phase.note
        );
    }
    println!();
    for phase in &phases[1..] {
        let p99_ms = phase.pings.value_at_quantile(0.99) as f64 / 1000.0;
        println!(
            "{}: PING p99 {p99_ms:.2} ms (target ≤ 2 ms: {})",
            phase.label,
            if p99_ms <= 2.0 { "met" } else { "missed" }
        );
    }
    Ok(())
}

/// Phases 3 and 4: holds that fall due at once, released by the timer alone or with a
/// client calling FLASH.EXPIRE too.
fn due_holds(
    client: &Client,
    conn: &mut Connection,
    args: &BenchLatencyArgs,
    with_caller: bool,
) -> Result<Phase> {
    let sale = if with_caller {
        format!("{DUE_SALE}-called")
    } else {
        DUE_SALE.to_owned()
    };
    // Long enough that every hold is made before the first falls due (the bench checks).
    let hold_ms = 2_000 + args.holds / 50;
    send_ok(conn, &["FLASH.SALE", &sale, "HOLD", &hold_ms.to_string()])?;
    send_ok(conn, &["FLASH.LOAD", &sale, SKU, &args.holds.to_string()])?;
    let first_deadline = Instant::now() + Duration::from_millis(hold_ms);
    let started = Instant::now();
    pipelined(conn, args.holds, BATCH, "reserve", |pipe, n| {
        pipe.cmd("FLASH.RESERVE")
            .arg(&sale)
            .arg(format!("c{n}"))
            .arg(format!("u{n}"))
            .arg(SKU)
            .arg(1);
    })?;
    let made = started.elapsed();
    let [_, _, held, _, _] = ledger(conn, &sale)?;
    ensure!(
        u64::try_from(held).ok() == Some(args.holds),
        "{held} units held after {} reserves: holds ran out before they were all made",
        args.holds
    );
    sleep(first_deadline.saturating_duration_since(Instant::now()));
    let label = if with_caller {
        format!("{} holds due, FLASH.EXPIRE called too", args.holds)
    } else {
        format!("{} holds due, the timer alone", args.holds)
    };
    let mut phase = measure(client, conn, &label, String::new(), |conn| {
        let caller = with_caller.then(|| spawn_caller(client, &sale));
        let released = Instant::now();
        loop {
            let [_, _, held, _, _] = ledger(conn, &sale)?;
            if held == 0 {
                break;
            }
            ensure!(
                released.elapsed() < Duration::from_secs(300),
                "{held} units still held 5 minutes after the first deadline"
            );
            sleep(Duration::from_millis(20));
        }
        let took = released.elapsed();
        let mut note = format!(
            "{} reserves in {made:.1?}; all released {took:.1?} after the first deadline",
            args.holds
        );
        if let Some(caller) = caller {
            let calls = caller.finish()?;
            note.push_str(&format!(
                "; FLASH.EXPIRE: {} calls releasing {} carts (most {} in one), round trip \
                 p50 {} µs, p99 {} µs, max {} µs",
                calls.round_trips.len(),
                calls.released,
                calls.most_in_one,
                calls.round_trips.value_at_quantile(0.50),
                calls.round_trips.value_at_quantile(0.99),
                calls.round_trips.max()
            ));
        }
        Ok(note)
    })?;
    let [loaded, available, held, pending, sold] = ledger(conn, &sale)?;
    ensure!(
        loaded == available + held + pending + sold && available == loaded,
        "sale {sale}'s ledger after expiry: loaded {loaded}, available {available}, held \
         {held}, pending {pending}, sold {sold}"
    );
    phase.note = phase.note.trim_start_matches("; ").to_owned();
    Ok(phase)
}

/// Runs `during` while a second connection sends PINGs; the PINGs' round trips, the wall
/// time and redis-server's CPU time over it.
fn measure(
    client: &Client,
    conn: &mut Connection,
    label: &str,
    note: String,
    during: impl FnOnce(&mut Connection) -> Result<String>,
) -> Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut pinger = client.get_connection()?;
    let pinging = {
        let stop = stop.clone();
        thread::spawn(move || -> Result<Histogram<u64>> {
            let mut pings = Histogram::<u64>::new(3)?;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let _: String = redis::cmd("PING").query(&mut pinger)?;
                pings.saturating_record(sent.elapsed().as_micros() as u64);
            }
            Ok(pings)
        })
    };
    let cpu_before = cpu(conn)?;
    let started = Instant::now();
    let outcome = during(conn);
    let wall = started.elapsed();
    let cpu_after = cpu(conn)?;
    stop.store(true, Ordering::Relaxed);
    let pings = pinging
        .join()
        .map_err(|_| anyhow!("the PING thread panicked"))??;
    let more = outcome?;
    Ok(Phase {
        label: label.to_owned(),
        pings,
        wall,
        cpu_seconds: cpu_after - cpu_before,
        note: [note, more]
            .into_iter()
            .filter(|n| !n.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// A client calling FLASH.EXPIRE in a loop until told to stop.
struct Caller {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Result<Calls>>,
}

struct Calls {
    round_trips: Histogram<u64>,
    released: i64,
    most_in_one: i64,
}

fn spawn_caller(client: &Client, sale: &str) -> Caller {
    let stop = Arc::new(AtomicBool::new(false));
    let client = client.clone();
    let sale = sale.to_owned();
    let thread = {
        let stop = stop.clone();
        thread::spawn(move || -> Result<Calls> {
            let mut conn = client.get_connection()?;
            let mut calls = Calls {
                round_trips: Histogram::<u64>::new(3)?,
                released: 0,
                most_in_one: 0,
            };
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let released: i64 = redis::cmd("FLASH.EXPIRE")
                    .arg(&sale)
                    .arg("COUNT")
                    .arg(10_000)
                    .query(&mut conn)?;
                calls
                    .round_trips
                    .saturating_record(sent.elapsed().as_micros() as u64);
                calls.released += released;
                calls.most_in_one = calls.most_in_one.max(released);
            }
            Ok(calls)
        })
    };
    Caller { stop, thread }
}

impl Caller {
    fn finish(self) -> Result<Calls> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow!("the FLASH.EXPIRE thread panicked"))?
    }
}

/// Waits until redis-server's CPU use falls below 5% over a second (the timer has had its
/// first look at every sale just made); how long that took.
fn wait_quiet(conn: &mut Connection) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let before = cpu(conn)?;
        sleep(Duration::from_secs(1));
        let used = cpu(conn)? - before;
        if used < 0.05 || started.elapsed() > Duration::from_secs(60) {
            return Ok(started.elapsed());
        }
    }
}

fn cpu(conn: &mut Connection) -> Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query(conn)?;
    cpu_seconds(&info).ok_or_else(|| anyhow!("INFO cpu has no used_cpu_* fields"))
}

fn ledger(conn: &mut Connection, sale: &str) -> Result<[i64; 5]> {
    let info = send(conn, &["FLASH.INFO".to_owned(), sale.to_owned()])?;
    info_total(&info).ok_or_else(|| anyhow!("FLASH.INFO {sale} has no total row: {info:?}"))
}

fn send_ok(conn: &mut Connection, words: &[&str]) -> Result<()> {
    let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    match send(conn, &words)? {
        Value::ServerError(error) => Err(anyhow!("{}: {error:?}", words.join(" "))),
        _ => Ok(()),
    }
}
