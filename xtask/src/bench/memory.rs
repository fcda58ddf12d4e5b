//! `cargo xtask bench-memory`: what a held cart costs in memory, and whether the memory
//! comes back once the carts are over (issue 10's targets: at most 200 bytes per held cart;
//! after the sale's carts are gone, `used_memory` within 10% of before plus what the sale
//! keeps on purpose: its ledger, the per-user hash and the order stream).
//!
//! On a fresh redis-server with the release module: one sale with a short HOLD and RETAIN,
//! one SKU loaded with a unit per cart, then one reserve of one unit into each of N distinct
//! carts (`c0`, `c1`, …), pipelined from here in batches. `used_memory` (INFO memory) is
//! read before the sale, after it is made, with every cart held (the peak), and after some
//! carts are checked out (the order stream grows). Those are then settled, the others' holds
//! run out (the module's timer expires them by itself), finished carts' keys expire RETAIN
//! ms later (Redis removes them), and `used_memory` is read again once only the sale's fixed
//! keys are left.

use std::fmt;
use std::str::FromStr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use flash_core::keys::SaleKeys;
use redis::{Connection, Value};

use super::config::info_number;
use super::{SKU, info_total, release_server, send};
use crate::workspace::info_field;

const SALE: &str = "mem";

/// How the carts are shared among users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Users {
    /// One user per cart, `u<n>` for cart `c<n>`: the per-user hash gets a field per cart.
    PerCart,
    /// This many users, cart `c<n>` belonging to `u<n mod users>`.
    Fixed(u64),
}

impl Users {
    fn of(self, cart: u64) -> u64 {
        match self {
            Users::PerCart => cart,
            Users::Fixed(users) => cart % users,
        }
    }
}

impl FromStr for Users {
    type Err = String;

    fn from_str(text: &str) -> Result<Users, String> {
        if text == "per-cart" {
            return Ok(Users::PerCart);
        }
        match text.parse::<u64>() {
            Ok(users) if users >= 1 => Ok(Users::Fixed(users)),
            _ => Err(format!(
                "'{text}' is neither `per-cart` nor a number of users (1 or more)"
            )),
        }
    }
}

impl fmt::Display for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Users::PerCart => f.write_str("per-cart"),
            Users::Fixed(users) => write!(f, "{users}"),
        }
    }
}

#[derive(clap::Args)]
pub struct BenchMemoryArgs {
    /// Distinct carts reserved into (one unit each).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    carts: u64,
    /// `per-cart` (user u<n> owns cart c<n>) or a number of users sharing the carts.
    #[arg(long, default_value_t = Users::PerCart)]
    users: Users,
    /// Reserves per pipelined round trip.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    /// The sale's HOLD: long enough for every cart to be made and measured while still held
    /// (the bench checks), short enough not to wait long for the holds to run out.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    hold_ms: u64,
    /// The sale's RETAIN: how long a finished cart's key outlives it.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    retain_ms: u64,
    /// Carts checked out (and then settled) while the others are held; default a tenth of
    /// the carts.
    #[arg(long)]
    checkouts: Option<u64>,
    /// Seconds to wait for the holds to run out and the keys to go, beyond HOLD and RETAIN.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

/// One `used_memory` reading, and where MEMORY STATS puts it.
struct Reading {
    label: &'static str,
    bytes: i64,
    stats: Stats,
}

impl Reading {
    fn take(conn: &mut Connection, label: &'static str) -> Result<Reading> {
        Ok(Reading {
            label,
            bytes: used_memory(conn)?,
            stats: memory_stats(conn)?,
        })
    }
}

/// The parts of MEMORY STATS that say where memory goes: the data itself, and Redis's
/// overhead, of which the main key table's and the expiry table's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stats {
    dataset: Option<i64>,
    overhead: Option<i64>,
    main_table: Option<i64>,
    expires_table: Option<i64>,
}

pub fn run(args: &BenchMemoryArgs) -> Result<()> {
    let checkouts = args.checkouts.unwrap_or(args.carts / 10);
    ensure!(
        checkouts <= args.carts,
        "--checkouts {checkouts} is more than --carts {}",
        args.carts
    );
    let (module, server) = release_server()?;
    let mut conn = server
        .client()
        .get_connection()
        .context("cannot connect to the bench server")?;
    let server_info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
    let keys = SaleKeys::new(SALE);

    println!(
        "\ncargo xtask bench-memory --carts {} --users {} --batch {} --hold-ms {} --retain-ms {} \
         --checkouts {checkouts}",
        args.carts, args.users, args.batch, args.hold_ms, args.retain_ms
    );
    println!(
        "redis-server {} (no persistence), module {}",
        info_field(&server_info, "redis_version").unwrap_or("?"),
        module.display()
    );
    println!(
        "carts c0..c{}, {}; one unit of SKU {SKU} each, LIMIT 0; pipelined {} reserves per \
         round trip",
        args.carts - 1,
        match args.users {
            Users::PerCart => format!("one user per cart (u<n> owns c<n>): {} users", args.carts),
            Users::Fixed(users) => format!("{users} users (u<n mod {users}> owns c<n>)"),
        },
        args.batch
    );

    let mut readings: Vec<Reading> = Vec::new();
    readings.push(Reading::take(&mut conn, "before the sale")?);
    make_sale(&mut conn, args)?;
    readings.push(Reading::take(&mut conn, "sale made, stock loaded")?);

    let started = Instant::now();
    pipelined(&mut conn, args.carts, args.batch, "reserve", |pipe, n| {
        pipe.cmd("FLASH.RESERVE")
            .arg(SALE)
            .arg(cart(n))
            .arg(user(args.users, n))
            .arg(SKU)
            .arg(1);
    })?;
    let elapsed = started.elapsed();
    let held = ledger(&mut conn)?[2];
    ensure!(
        u64::try_from(held).ok() == Some(args.carts),
        "{held} units held after {} reserves: some holds ran out before the peak was measured \
         (the reserves took {elapsed:.1?}); raise --hold-ms",
        args.carts
    );
    readings.push(Reading::take(&mut conn, "every cart held (peak)")?);
    let dbsize_peak: i64 = redis::cmd("DBSIZE").query(&mut conn)?;
    let users_peak = memory_usage(&mut conn, &keys.users())?;
    let deadlines_peak = memory_usage(&mut conn, &keys.deadlines(args.hold_ms as i64))?;
    let one_cart = memory_usage(&mut conn, &keys.cart(&cart(0)))?;
    println!(
        "{} reserves in {elapsed:.1?} ({:.0}/s); {held} units held, DBSIZE {dbsize_peak}",
        args.carts,
        args.carts as f64 / elapsed.as_secs_f64()
    );

    let xlen_before: i64 = redis::cmd("XLEN").arg(keys.orders()).query(&mut conn)?;
    if checkouts > 0 {
        pipelined(&mut conn, checkouts, args.batch, "checkout", |pipe, n| {
            pipe.cmd("FLASH.CHECKOUT")
                .arg(SALE)
                .arg(cart(n))
                .arg(user(args.users, n));
        })?;
        readings.push(Reading::take(&mut conn, "checked-out carts pending")?);
    }
    let xlen_peak: i64 = redis::cmd("XLEN").arg(keys.orders()).query(&mut conn)?;
    let orders_peak = memory_usage(&mut conn, &keys.orders())?;
    if checkouts > 0 {
        // Settled, the checked-out carts are finished: their keys expire RETAIN ms later.
        pipelined(&mut conn, checkouts, args.batch, "settle", |pipe, n| {
            pipe.cmd("FLASH.SETTLE").arg(SALE).arg(cart(n)).arg("OK");
        })?;
    }

    wait_until_gone(&mut conn, args, &keys)?;
    wait_memory_settled(&mut conn)?;
    let last = Reading::take(&mut conn, "carts gone (after)")?;
    let after = last.bytes;
    readings.push(last);
    let xlen_after: i64 = redis::cmd("XLEN").arg(keys.orders()).query(&mut conn)?;
    let [loaded, available, held, pending, sold] = ledger(&mut conn)?;
    let balanced = loaded == available + held + pending + sold
        && held == 0
        && pending == 0
        && u64::try_from(sold).ok() == Some(checkouts);

    let mut kept: Vec<(String, i64)> = Vec::new();
    for key in keys.all() {
        let exists: i64 = redis::cmd("EXISTS").arg(&key).query(&mut conn)?;
        if exists == 1 {
            let bytes = memory_usage(&mut conn, &key)?;
            kept.push((key, bytes));
        }
    }

    println!();
    println!(
        "used_memory (INFO memory), and MEMORY STATS' dataset.bytes, overhead.total and, of it, \
         db.0's main and expires tables:"
    );
    let base = readings[0].bytes;
    let shown = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for reading in &readings {
        println!(
            "  {:<26} {:>10} bytes ({:+7.1} MB)  dataset {:>10}  overhead {:>10}  main {:>9}  \
             expires {:>9}",
            reading.label,
            reading.bytes,
            (reading.bytes - base) as f64 / 1e6,
            shown(reading.stats.dataset),
            shown(reading.stats.overhead),
            shown(reading.stats.main_table),
            shown(reading.stats.expires_table),
        );
    }
    let sale_made = readings[1].bytes;
    let peak = readings[2].bytes;
    let per_cart = bytes_per_cart(peak, sale_made, args.carts);
    println!();
    println!(
        "at the peak (MEMORY USAGE … SAMPLES 0): one cart {one_cart} bytes, the per-user \
         hash {users_peak} bytes ({:.0} per cart), the deadline list {deadlines_peak} bytes ({:.0} \
         per cart)",
        bytes_per_cart(users_peak, 0, args.carts),
        bytes_per_cart(deadlines_peak, 0, args.carts)
    );
    println!(
        "order stream: XLEN {xlen_before} before, {xlen_peak} after {} checkouts ({orders_peak} \
         bytes), {xlen_after} at the end (no consumer group, so nothing is trimmed)",
        checkouts
    );
    println!(
        "ledger at the end: loaded {loaded} = available {available} + held {held} + pending \
         {pending} + sold {sold}: {}",
        if balanced {
            "balanced, nothing held or pending, sold = checkouts"
        } else {
            "NOT as expected"
        }
    );
    println!("kept by the sale at the end (MEMORY USAGE … SAMPLES 0):");
    for (key, bytes) in &kept {
        println!("  {key:<28} {bytes:>14} bytes");
    }
    let kept_bytes: i64 = kept.iter().map(|(_, bytes)| bytes).sum();
    let expected = base + kept_bytes;
    println!();
    println!(
        "bytes per held cart = (peak − sale made) / carts = ({peak} − {sale_made}) / {} = \
         {per_cart:.0} (target ≤ 200: {})",
        args.carts,
        if per_cart <= 200.0 { "met" } else { "missed" }
    );
    println!(
        "after / before = {after} / {base} = {:.2}",
        after as f64 / base as f64
    );
    let ratio = after as f64 / expected as f64;
    println!(
        "after / (before + the sale's kept keys) = {after} / ({base} + {kept_bytes}) = {ratio:.3} \
         (target ≤ 1.10: {})",
        if ratio <= 1.10 { "met" } else { "missed" }
    );
    ensure!(
        balanced,
        "the sale's ledger is not as expected at the end (see above)"
    );
    Ok(())
}

fn make_sale(conn: &mut Connection, args: &BenchMemoryArgs) -> Result<()> {
    let words = [
        "FLASH.SALE".to_owned(),
        SALE.to_owned(),
        "HOLD".to_owned(),
        args.hold_ms.to_string(),
        "LIMIT".to_owned(),
        "0".to_owned(),
        "RETAIN".to_owned(),
        args.retain_ms.to_string(),
    ];
    let reply = send(conn, &words)?;
    if let Value::ServerError(error) = &reply {
        bail!(
            "the module refused `{}`: {} {}\nRETAIN (a finished cart's key expires RETAIN ms \
             after it finished) is needed to measure the memory coming back; it comes with \
             branch main: merge it and run again",
            words.join(" "),
            error.code(),
            error.details().unwrap_or("")
        );
    }
    ensure!(
        matches!(reply, Value::Okay),
        "`{}` replied {reply:?}",
        words.join(" ")
    );
    redis::cmd("FLASH.LOAD")
        .arg(SALE)
        .arg(SKU)
        .arg(args.carts)
        .exec(conn)
        .with_context(|| format!("FLASH.LOAD {SALE} {SKU} {} failed", args.carts))?;
    Ok(())
}

fn cart(n: u64) -> String {
    format!("c{n}")
}

fn user(users: Users, cart: u64) -> String {
    format!("u{}", users.of(cart))
}

/// Sends `count` commands in pipelined batches; any error reply fails the bench, naming the
/// command.
pub(super) fn pipelined(
    conn: &mut Connection,
    count: u64,
    batch: u64,
    what: &str,
    mut add: impl FnMut(&mut redis::Pipeline, u64),
) -> Result<()> {
    let started = Instant::now();
    let mut next_report = count / 10;
    let mut start = 0;
    while start < count {
        let end = (start + batch).min(count);
        let mut pipe = redis::pipe();
        for n in start..end {
            add(&mut pipe, n);
        }
        let replies: Vec<Value> = pipe
            .query(conn)
            .with_context(|| format!("a {what} among c{start}..c{} failed", end - 1))?;
        if let Some((offset, error)) = replies
            .iter()
            .enumerate()
            .find(|(_, reply)| matches!(reply, Value::ServerError(_)))
        {
            bail!("the {what} of c{} failed: {error:?}", start + offset as u64);
        }
        start = end;
        if start >= next_report && start < count {
            println!("  {what}: {start} of {count} in {:.1?}", started.elapsed());
            next_report += count / 10;
        }
    }
    Ok(())
}

fn memory_stats(conn: &mut Connection) -> Result<Stats> {
    let reply: Value = redis::cmd("MEMORY").arg("STATS").query(conn)?;
    Ok(parse_stats(&reply))
}

/// MEMORY STATS: name/value pairs, `db.<n>` holding pairs of its own.
fn parse_stats(reply: &Value) -> Stats {
    let field = |pairs: &Value, name: &str| -> Option<Value> {
        let items = match pairs {
            Value::Array(items) => items
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair.get(1).cloned()))
                .collect::<Vec<_>>(),
            Value::Map(pairs) => pairs
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect(),
            _ => return None,
        };
        items.into_iter().find_map(|(key, value)| match key {
            Value::BulkString(key) if key == name.as_bytes() => value,
            Value::SimpleString(key) if key == name => value,
            _ => None,
        })
    };
    let int = |value: Option<Value>| match value {
        Some(Value::Int(n)) => Some(n),
        _ => None,
    };
    let db = field(reply, "db.0");
    Stats {
        dataset: int(field(reply, "dataset.bytes")),
        overhead: int(field(reply, "overhead.total")),
        main_table: db
            .as_ref()
            .and_then(|db| int(field(db, "overhead.hashtable.main"))),
        expires_table: db
            .as_ref()
            .and_then(|db| int(field(db, "overhead.hashtable.expires"))),
    }
}

fn used_memory(conn: &mut Connection) -> Result<i64> {
    let info: String = redis::cmd("INFO").arg("memory").query(conn)?;
    info_number(&info, "used_memory").ok_or_else(|| anyhow!("INFO memory has no used_memory"))
}

/// `MEMORY USAGE key SAMPLES 0`: every element counted, not a sample.
fn memory_usage(conn: &mut Connection, key: &str) -> Result<i64> {
    let bytes: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query(conn)?;
    Ok(bytes.unwrap_or(0))
}

/// The sale's `[loaded, available, held, pending, sold]` for its one SKU.
fn ledger(conn: &mut Connection) -> Result<[i64; 5]> {
    let info = send(conn, &["FLASH.INFO".to_owned(), SALE.to_owned()])?;
    info_total(&info).ok_or_else(|| anyhow!("FLASH.INFO {SALE} has no total row: {info:?}"))
}

/// Waits for the holds to run out, then for the finished carts' keys to expire, until only
/// the sale's fixed keys are left.
fn wait_until_gone(conn: &mut Connection, args: &BenchMemoryArgs, keys: &SaleKeys) -> Result<()> {
    let started = Instant::now();
    let deadline = started
        + Duration::from_millis(args.hold_ms + args.retain_ms)
        + Duration::from_secs(args.timeout_secs);
    let fixed = keys.all();
    let mut last_report = Instant::now();
    let mut held_gone: Option<Duration> = None;
    loop {
        let [_, _, held, pending, _] = ledger(conn)?;
        let dbsize: i64 = redis::cmd("DBSIZE").query(conn)?;
        if held == 0 && pending == 0 && held_gone.is_none() {
            held_gone = Some(started.elapsed());
        }
        if held_gone.is_some() && only_fixed_keys(conn, dbsize, &fixed)? {
            println!(
                "holds ran out {:.1?} and the carts' keys were gone {:.1?} after the last \
                 command",
                held_gone.unwrap_or_default(),
                started.elapsed()
            );
            return Ok(());
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            let keyspace: String = redis::cmd("INFO").arg("keyspace").query(conn)?;
            println!(
                "  waiting {:.0?}: {held} units held, {pending} pending, DBSIZE {dbsize}, with \
                 a TTL {}",
                started.elapsed(),
                keyspace_expires(&keyspace).unwrap_or(0)
            );
            last_report = Instant::now();
        }
        if Instant::now() > deadline {
            bail!(
                "after {:.0?}: {held} units still held, {pending} pending, {dbsize} keys left (the \
                 sale has {} fixed keys); do finished carts get a key expiry (RETAIN)?",
                started.elapsed(),
                fixed.len()
            );
        }
        sleep(Duration::from_millis(500));
    }
}

/// Whether every key left is one of the sale's fixed keys.
fn only_fixed_keys(conn: &mut Connection, dbsize: i64, fixed: &[String]) -> Result<bool> {
    if dbsize > fixed.len() as i64 {
        return Ok(false);
    }
    let left: Vec<String> = redis::cmd("KEYS").arg("*").query(conn)?;
    Ok(extra_keys(&left, fixed).is_empty())
}

/// The keys that are not among `fixed`.
fn extra_keys<'a>(left: &'a [String], fixed: &[String]) -> Vec<&'a String> {
    left.iter().filter(|key| !fixed.contains(key)).collect()
}

/// Waits for Redis to finish shrinking its tables: reads `used_memory` each second until two
/// readings in a row are within 0.1%, for 30 seconds at most.
fn wait_memory_settled(conn: &mut Connection) -> Result<i64> {
    let mut last = used_memory(conn)?;
    for _ in 0..30 {
        sleep(Duration::from_secs(1));
        let now = used_memory(conn)?;
        if (now - last).abs() as f64 <= last as f64 * 0.001 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// `expires=` of db0 in INFO keyspace (`db0:keys=5,expires=0,avg_ttl=0`).
fn keyspace_expires(info: &str) -> Option<i64> {
    info_field(info, "db0")?
        .split(',')
        .find_map(|pair| pair.strip_prefix("expires="))?
        .parse()
        .ok()
}

/// What each cart added, on average, between two readings.
fn bytes_per_cart(peak: i64, base: i64, carts: u64) -> f64 {
    (peak - base) as f64 / carts as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_per_cart_or_a_count() {
        assert_eq!("per-cart".parse::<Users>(), Ok(Users::PerCart));
        assert_eq!("5".parse::<Users>(), Ok(Users::Fixed(5)));
        assert!("0".parse::<Users>().is_err());
        assert!("many".parse::<Users>().is_err());
        assert_eq!(Users::Fixed(5).to_string(), "5");
        assert_eq!(Users::PerCart.to_string(), "per-cart");
        assert_eq!(user(Users::Fixed(5), 12), "u2");
        assert_eq!(user(Users::PerCart, 12), "u12");
    }

    #[test]
    fn keyspace_gives_the_keys_with_a_ttl() {
        let info = "# Keyspace\r\ndb0:keys=1000005,expires=1000,avg_ttl=812\r\n";
        assert_eq!(keyspace_expires(info), Some(1000));
        assert_eq!(keyspace_expires("# Keyspace\r\n"), None);
    }

    #[test]
    fn only_the_sales_fixed_keys_may_be_left() {
        let fixed = SaleKeys::new(SALE).all();
        let left = vec![SaleKeys::new(SALE).users(), SaleKeys::new(SALE).cart("c7")];
        assert_eq!(extra_keys(&left, &fixed), vec![&left[1]]);
        assert!(extra_keys(&left[..1], &fixed).is_empty());
    }

    #[test]
    fn memory_stats_gives_the_dataset_and_the_tables() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let reply = Value::Array(vec![
            bulk("peak.allocated"),
            Value::Int(893_936),
            bulk("overhead.total"),
            Value::Int(876_360),
            bulk("db.0"),
            Value::Array(vec![
                bulk("overhead.hashtable.main"),
                Value::Int(256),
                bulk("overhead.hashtable.expires"),
                Value::Int(32),
            ]),
            bulk("dataset.bytes"),
            Value::Int(38_128),
        ]);
        assert_eq!(
            parse_stats(&reply),
            Stats {
                dataset: Some(38_128),
                overhead: Some(876_360),
                main_table: Some(256),
                expires_table: Some(32),
            }
        );
        assert_eq!(parse_stats(&Value::Nil), Stats::default());
    }

    #[test]
    fn bytes_per_cart_is_the_growth_over_the_carts() {
        assert_eq!(bytes_per_cart(1_200_000, 1_000_000, 1000), 200.0);
    }
}
