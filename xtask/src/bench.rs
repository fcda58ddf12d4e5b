//! `cargo xtask bench`: redis-benchmark of FLASH.RESERVE against INCR (the floor of any write
//! command), against its Lua twin (EVALSHA) and against the naive three round trips
//! (DECR, RPUSH, LLEN), all on one redis-server with the release module.
//!
//! Facts about redis-benchmark (7.0) this relies on, checked on a real server:
//! - every `__rand_int__` in a command gets its own random number, so a command cannot name
//!   one random cart twice (as the Lua twin must: in KEYS and in ARGV). Hence the workloads
//!   below: the module's "new carts" uses a random cart with a fixed user (LIMIT is 0, so one
//!   user never runs into it, and a repeated cart is just reserved into again); the
//!   comparison with Lua uses one fixed cart per run on both sides, so both do the same work;
//! - it stops at the first error reply, exit status 1, the error on stderr;
//! - `-q --csv` prints a header and one line: `"test","rps","avg_latency_ms",…` (7 numbers).
//!
//! The server's own cost per call comes from `INFO commandstats` (`cmdstat_incr`,
//! `cmdstat_FLASH.RESERVE`, `cmdstat_evalsha`, …) after a `CONFIG RESETSTAT` before each run.
//!
//! This measures; it never fails on a missed target, only when a run cannot be measured.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail, ensure};
use flash_core::keys::SaleKeys;
use flash_tests::{RedisServer, ServerOptions};
use redis::{Connection, ConnectionLike, Value};

use crate::workspace::{Profile, build_module, info_field, quote, show, which};
use crate::{deps, reply};

const PIPELINES: [u32; 2] = [1, 16];
/// redis-benchmark's `-r`: random numbers in 0..KEYSPACE.
const KEYSPACE: u32 = 1_000_000;
const SKU: &str = "14";
const USER: &str = "bench-user";
/// The module's sale and the Lua twin's: the same settings, the same stock.
const MODULE_SALE: &str = "bench";
const LUA_SALE: &str = "benchlua";
/// Ten minutes: every cart made by a run stays held (not EXPIRED) until the bench is over.
const HOLD_MS: &str = "600000";
/// Far more units than any run reserves, so SOLDOUT never cuts a run short.
const STOCK: &str = "1000000000";
/// The cart the one-time check of each implementation reserves into before the runs.
const CHECK_CART: &str = "bench-check";

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Requests per redis-benchmark run (redis-benchmark -n).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Parallel connections (redis-benchmark -c).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    clients: u64,
    /// Sweeps over every workload, interleaved; the table shows each figure's median, so a
    /// burst of noise on this shared machine moves one sample, not the result.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
}

/// What one row of the table measures.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Workload {
    Incr,
    ModuleNewCarts,
    ModuleOneCart,
    LuaOneCart,
    NaiveDecr,
    NaiveRpush,
    NaiveLlen,
}

impl Workload {
    const ALL: [Workload; 7] = [
        Workload::Incr,
        Workload::ModuleNewCarts,
        Workload::ModuleOneCart,
        Workload::LuaOneCart,
        Workload::NaiveDecr,
        Workload::NaiveRpush,
        Workload::NaiveLlen,
    ];

    fn label(self) -> &'static str {
        match self {
            Workload::Incr => "INCR (baseline)",
            Workload::ModuleNewCarts => "FLASH.RESERVE, random carts",
            Workload::ModuleOneCart => "FLASH.RESERVE, one cart",
            Workload::LuaOneCart => "Lua twin (EVALSHA), one cart",
            Workload::NaiveDecr => "naive: DECR",
            Workload::NaiveRpush => "naive: RPUSH",
            Workload::NaiveLlen => "naive: LLEN",
        }
    }

    /// The `cmdstat_<name>` line of `INFO commandstats` that counts this workload's calls.
    fn stat_name(self) -> &'static str {
        match self {
            Workload::Incr => "incr",
            Workload::ModuleNewCarts | Workload::ModuleOneCart => "flash.reserve",
            Workload::LuaOneCart => "evalsha",
            Workload::NaiveDecr => "decr",
            Workload::NaiveRpush => "rpush",
            Workload::NaiveLlen => "llen",
        }
    }

    /// The command line given to redis-benchmark.
    fn command(self, pipeline: u32, round: u32, lua: &LuaTwin) -> Vec<String> {
        // One cart per run: a later run must not reserve into an earlier run's cart, whose
        // hold could end during a long bench.
        let one_cart = format!("hot-p{pipeline}-r{round}");
        match self {
            Workload::Incr => strings(&["INCR", "bench:counter:__rand_int__"]),
            Workload::ModuleNewCarts => strings(&[
                "FLASH.RESERVE",
                MODULE_SALE,
                "cart:__rand_int__",
                USER,
                SKU,
                "1",
            ]),
            Workload::ModuleOneCart => {
                strings(&["FLASH.RESERVE", MODULE_SALE, &one_cart, USER, SKU, "1"])
            }
            Workload::LuaOneCart => lua.evalsha(&one_cart),
            Workload::NaiveDecr => strings(&["DECR", "bench:naive:stock"]),
            Workload::NaiveRpush => strings(&["RPUSH", "bench:naive:cart:__rand_int__", SKU]),
            Workload::NaiveLlen => strings(&["LLEN", "bench:naive:cart:__rand_int__"]),
        }
    }

    /// The sale whose held units this workload adds to (one unit per successful call).
    fn sale(self) -> Option<&'static str> {
        match self {
            Workload::ModuleNewCarts | Workload::ModuleOneCart => Some(MODULE_SALE),
            Workload::LuaOneCart => Some(LUA_SALE),
            _ => None,
        }
    }
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| (*word).to_owned()).collect()
}

/// The client's Lua FLASH.RESERVE, loaded into the server's script cache.
struct LuaTwin {
    sha: String,
}

impl LuaTwin {
    /// `EVALSHA sha numkeys <keys…> <sale cart user sku qty>`, the call the client makes.
    fn evalsha(&self, cart: &str) -> Vec<String> {
        let keys = flash_client::lua::keys(LUA_SALE, &[cart]);
        let mut words = vec![
            "EVALSHA".to_owned(),
            self.sha.clone(),
            keys.len().to_string(),
        ];
        words.extend(keys);
        words.extend(strings(&[LUA_SALE, cart, USER, SKU, "1"]));
        words
    }
}

/// One redis-benchmark run's numbers.
#[derive(Clone, Debug)]
struct Measure {
    requests_per_sec: f64,
    /// From commandstats; None when the expected `cmdstat_` line was missing.
    usec_per_call: Option<f64>,
    successful_calls: u64,
}

impl Measure {
    /// The rounds of one workload: median rate and cost, every successful call counted.
    fn median(runs: &[Measure]) -> Measure {
        let rates: Vec<f64> = runs.iter().map(|m| m.requests_per_sec).collect();
        let costs: Vec<f64> = runs.iter().filter_map(|m| m.usec_per_call).collect();
        Measure {
            requests_per_sec: median(rates).unwrap_or(0.0),
            usec_per_call: median(costs),
            successful_calls: runs.iter().map(|m| m.successful_calls).sum(),
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

pub fn run(args: &BenchArgs) -> Result<()> {
    deps::ensure()?;
    let module = build_module(Profile::Release)?;
    if which("redis-benchmark").is_none() {
        bail!("redis-benchmark is not on PATH: install redis-tools (cargo xtask deps)");
    }
    let server = RedisServer::start(ServerOptions {
        module: Some(module.clone()),
        ..ServerOptions::default()
    })
    .context("cannot start redis-server with the release module")?;
    let mut conn = server
        .client()
        .get_connection()
        .context("cannot connect to the bench server")?;
    let server_info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
    let version = info_field(&server_info, "redis_version")
        .unwrap_or("?")
        .to_owned();

    for sale in [MODULE_SALE, LUA_SALE] {
        prepare_sale(&mut conn, sale)?;
    }
    let lua = load_lua_twin(&mut conn)?;
    check_both_reserve(&mut conn, &lua)?;

    println!(
        "\ncargo xtask bench --requests {} --clients {} --rounds {}",
        args.requests, args.clients, args.rounds
    );
    println!(
        "redis-server {version}, module {}, redis-benchmark -r {KEYSPACE}, {} CPUs",
        module.display(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    println!(
        "each run: redis-benchmark -h 127.0.0.1 -p {} -c {} -n {} -r {KEYSPACE} -P <1|16> -q \
         --csv <command>",
        server.port, args.clients, args.requests
    );
    for workload in Workload::ALL {
        let words: Vec<String> = workload
            .command(PIPELINES[0], 1, &lua)
            .iter()
            .map(|word| quote(word))
            .collect();
        println!("  {:<30} {}", workload.label(), words.join(" "));
    }

    let mut samples: BTreeMap<(Workload, u32), Vec<Measure>> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for round in 1..=args.rounds {
        for pipeline in PIPELINES {
            for workload in Workload::ALL {
                let words = workload.command(pipeline, round, &lua);
                let label = workload.label();
                match measure(
                    &mut conn,
                    &server,
                    args,
                    workload,
                    pipeline,
                    &words,
                    &mut warnings,
                ) {
                    Ok(result) => {
                        println!(
                            "  round {round}  {label:<30} -P {pipeline:<2} {:>12.0} req/s",
                            result.requests_per_sec
                        );
                        samples
                            .entry((workload, pipeline))
                            .or_default()
                            .push(result);
                    }
                    Err(error) => {
                        println!("  round {round}  {label:<30} -P {pipeline:<2} FAILED: {error:#}");
                        failures.push(format!("{label} at -P {pipeline}: {error:#}"));
                    }
                }
            }
        }
    }
    let results: BTreeMap<(Workload, u32), Measure> = samples
        .iter()
        .map(|(key, runs)| (*key, Measure::median(runs)))
        .collect();

    warnings.extend(check_sales(&mut conn, &results)?);
    println!("\nmedians of {} round(s):", args.rounds);
    print_table(&results);
    print_summary(&samples);
    for warning in &warnings {
        println!("WARNING: {warning}");
    }
    if !failures.is_empty() {
        let log = server.log();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        bail!(
            "{} run(s) could not be measured:\n  {}\nthe server's log ends with:\n{}",
            failures.len(),
            failures.join("\n  "),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

fn prepare_sale(conn: &mut Connection, sale: &str) -> Result<()> {
    redis::cmd("FLASH.SALE")
        .arg(sale)
        .arg("HOLD")
        .arg(HOLD_MS)
        .exec(conn)
        .with_context(|| format!("FLASH.SALE {sale} HOLD {HOLD_MS} failed"))?;
    redis::cmd("FLASH.LOAD")
        .arg(sale)
        .arg(SKU)
        .arg(STOCK)
        .exec(conn)
        .with_context(|| format!("FLASH.LOAD {sale} {SKU} {STOCK} failed"))?;
    Ok(())
}

/// Loads the client's own FLASH.RESERVE script, so EVALSHA runs exactly what the client runs.
fn load_lua_twin(conn: &mut Connection) -> Result<LuaTwin> {
    let script = flash_client::lua::script("FLASH.RESERVE").ok_or_else(|| {
        anyhow!("flash_client::lua::script(\"FLASH.RESERVE\") is None: the client has no Lua twin")
    })?;
    // Script::load sends the script's source with SCRIPT LOAD; the server names it by SHA1.
    let sha = script
        .load(conn)
        .context("SCRIPT LOAD of the Lua FLASH.RESERVE failed")?;
    ensure!(
        sha == script.get_hash(),
        "SCRIPT LOAD returned {sha} but the client calls EVALSHA {}: the client would miss the \
         script cache",
        script.get_hash()
    );
    Ok(LuaTwin { sha })
}

/// One reserve through each implementation before the runs: a wrong argument layout then
/// shows one clear error here rather than a failed run, and both must reply alike.
fn check_both_reserve(conn: &mut Connection, lua: &LuaTwin) -> Result<()> {
    let cart_key = SaleKeys::new(LUA_SALE).cart(CHECK_CART);
    let keys = flash_client::lua::keys(LUA_SALE, &[CHECK_CART]);
    ensure!(
        keys.contains(&cart_key),
        "flash_client::lua::keys({LUA_SALE:?}, [{CHECK_CART:?}]) lacks the cart key {cart_key}: \
         {keys:?}"
    );
    let module_words = strings(&["FLASH.RESERVE", MODULE_SALE, CHECK_CART, USER, SKU, "1"]);
    let module_reply = send(conn, &module_words)?;
    let lua_reply = send(conn, &lua.evalsha(CHECK_CART))?;
    for (name, words, value) in [
        ("module", &module_words, &module_reply),
        ("Lua twin", &lua.evalsha(CHECK_CART), &lua_reply),
    ] {
        let shape_ok = matches!(value, Value::Array(items)
            if items.len() == 3 && items.iter().all(|item| matches!(item, Value::Int(_))));
        ensure!(
            shape_ok,
            "the {name}'s reserve `{}` replied\n{}\ninstead of [available, deadline_ms, \
             cart_units]",
            words.join(" "),
            reply::format(value)
        );
    }
    // Same stock, same request: the same units left and in the cart (deadlines differ by ms).
    if let (Value::Array(m), Value::Array(l)) = (&module_reply, &lua_reply) {
        ensure!(
            m.first() == l.first() && m.get(2) == l.get(2),
            "the module and the Lua twin disagree on the same reserve:\n{}\nversus\n{}",
            reply::format(&module_reply),
            reply::format(&lua_reply)
        );
    }
    Ok(())
}

fn send(conn: &mut Connection, words: &[String]) -> Result<Value> {
    let mut command = redis::cmd(&words[0]);
    for word in &words[1..] {
        command.arg(word);
    }
    Ok(conn.req_command(&command)?)
}

fn measure(
    conn: &mut Connection,
    server: &RedisServer,
    args: &BenchArgs,
    workload: Workload,
    pipeline: u32,
    words: &[String],
    warnings: &mut Vec<String>,
) -> Result<Measure> {
    redis::cmd("CONFIG").arg("RESETSTAT").exec(conn)?;
    let mut command = Command::new("redis-benchmark");
    command
        .args(["-h", "127.0.0.1", "-p"])
        .arg(server.port.to_string())
        .arg("-c")
        .arg(args.clients.to_string())
        .arg("-n")
        .arg(args.requests.to_string())
        .arg("-r")
        .arg(KEYSPACE.to_string())
        .arg("-P")
        .arg(pipeline.to_string())
        .args(["-q", "--csv"])
        .args(words);
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
    let requests_per_sec = parse_csv_rps(&stdout)
        .ok_or_else(|| anyhow!("no CSV result from {}:\n{stdout}", show(&command)))?;

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
    })
}

/// The requests per second of `redis-benchmark -q --csv`: the data line's 7th field from the
/// end (the test name before it may itself hold commas).
fn parse_csv_rps(stdout: &str) -> Option<f64> {
    let line = stdout
        .lines()
        .rfind(|line| line.starts_with('"') && !line.starts_with("\"test\""))?;
    let fields: Vec<&str> = line.rsplitn(8, ',').collect();
    fields.get(6)?.trim_matches('"').parse().ok()
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct CommandStat {
    calls: u64,
    usec_per_call: f64,
    failed: u64,
    rejected: u64,
}

/// `cmdstat_<name>:calls=…,usec=…,usec_per_call=…,rejected_calls=…,failed_calls=…`. The name
/// is matched without case: Redis lowercases its own commands (`cmdstat_incr`) but shows a
/// module's as registered (`cmdstat_FLASH.RESERVE`).
fn command_stat(info: &str, name: &str) -> Option<CommandStat> {
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

/// After the runs: each sale conserves units (loaded = available + held + pending + sold),
/// and holds exactly one unit per successful reserve (the check reserve included).
fn check_sales(
    conn: &mut Connection,
    results: &BTreeMap<(Workload, u32), Measure>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for sale in [MODULE_SALE, LUA_SALE] {
        let info = send(conn, &strings(&["FLASH.INFO", sale]))?;
        let Some([loaded, available, held, pending, sold]) = info_total(&info) else {
            warnings.push(format!(
                "FLASH.INFO {sale} has no total row:\n{}",
                reply::format(&info)
            ));
            continue;
        };
        if loaded != available + held + pending + sold {
            warnings.push(format!(
                "sale {sale} does not conserve units: loaded {loaded} ≠ available {available} + \
                 held {held} + pending {pending} + sold {sold}"
            ));
        }
        let reserved: u64 = 1 + results
            .iter()
            .filter(|((workload, _), _)| workload.sale() == Some(sale))
            .map(|(_, measure)| measure.successful_calls)
            .sum::<u64>();
        if u64::try_from(held).ok() != Some(reserved) {
            warnings.push(format!(
                "sale {sale} holds {held} units but {reserved} reserves of 1 unit succeeded"
            ));
        } else {
            println!(
                "sale {sale}: loaded {loaded} = available {available} + held {held} + pending \
                 {pending} + sold {sold}; held = {reserved} successful reserves"
            );
        }
    }
    Ok(warnings)
}

/// The `total` row of a FLASH.INFO reply: `[loaded, available, held, pending, sold]`.
fn info_total(info: &Value) -> Option<[i64; 5]> {
    let Value::Array(items) = info else {
        return None;
    };
    let position = items
        .iter()
        .position(|item| matches!(item, Value::BulkString(name) if name == b"total"))?;
    let Value::Array(row) = items.get(position + 1)? else {
        return None;
    };
    let numbers: Vec<i64> = row
        .iter()
        .map(|value| match value {
            Value::Int(n) => Some(*n),
            _ => None,
        })
        .collect::<Option<_>>()?;
    numbers.try_into().ok()
}

/// One table row: label, pipeline, req/s, ratio to INCR, server µs/call.
type Row = (String, u32, Option<f64>, Option<f64>, Option<f64>);

fn print_table(results: &BTreeMap<(Workload, u32), Measure>) {
    let rps = |workload: Workload, pipeline: u32| {
        results
            .get(&(workload, pipeline))
            .map(|m| m.requests_per_sec)
    };
    let mut rows: Vec<Row> = Vec::new();
    for workload in Workload::ALL {
        for pipeline in PIPELINES {
            let measure = results.get(&(workload, pipeline));
            rows.push((
                workload.label().to_owned(),
                pipeline,
                measure.map(|m| m.requests_per_sec),
                ratio(rps(workload, pipeline), rps(Workload::Incr, pipeline)),
                measure.and_then(|m| m.usec_per_call),
            ));
        }
    }
    for pipeline in PIPELINES {
        let naive = [
            Workload::NaiveDecr,
            Workload::NaiveRpush,
            Workload::NaiveLlen,
        ];
        let combined = naive_reserve_rate(&naive.map(|w| rps(w, pipeline)));
        let usec: Option<f64> = naive
            .iter()
            .map(|w| results.get(&(*w, pipeline)).and_then(|m| m.usec_per_call))
            .sum();
        rows.push((
            "naive reserve (3 round trips)".to_owned(),
            pipeline,
            combined,
            ratio(combined, rps(Workload::Incr, pipeline)),
            usec,
        ));
    }

    let headers = ["command", "pipeline", "req/s", "× INCR", "server µs/call"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|(label, pipeline, rate, times, usec)| {
            [
                label.clone(),
                format!("-P {pipeline}"),
                rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.0}")),
                times.map_or_else(|| "-".to_owned(), |t| format!("{t:.2}")),
                usec.map_or_else(|| "-".to_owned(), |u| format!("{u:.2}")),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: [&str; 5]| {
        let mut out = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            // Text left, numbers right.
            if index == 0 {
                out.push_str(&format!("{cell}{pad}  "));
            } else {
                out.push_str(&format!("{pad}{cell}  "));
            }
        }
        out.trim_end().to_owned()
    };
    println!("{}", line(headers));
    println!(
        "{}",
        line(widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str))
    );
    for row in &cells {
        println!("{}", line(row.each_ref().map(String::as_str)));
    }
}

/// One naive reserve is three calls in a row, so its rate is 1 / (1/r1 + 1/r2 + 1/r3).
fn naive_reserve_rate(rates: &[Option<f64>; 3]) -> Option<f64> {
    let mut seconds_per_reserve = 0.0;
    for rate in rates {
        let rate = (*rate).filter(|r| *r > 0.0)?;
        seconds_per_reserve += 1.0 / rate;
    }
    Some(1.0 / seconds_per_reserve)
}

fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    let denominator = denominator.filter(|d| *d > 0.0)?;
    Some(numerator? / denominator)
}

/// The targets, each as the median over rounds of the ratio within a round: both figures
/// of a ratio come from the same minute of this shared machine, so a burst of noise in one
/// round moves one sample, not the verdict.
fn print_summary(samples: &BTreeMap<(Workload, u32), Vec<Measure>>) {
    let round_ratio = |a: (Workload, u32), b: (Workload, u32)| {
        let (Some(a), Some(b)) = (samples.get(&a), samples.get(&b)) else {
            return None;
        };
        median(
            a.iter()
                .zip(b)
                .map(|(a, b)| a.requests_per_sec / b.requests_per_sec)
                .collect(),
        )
    };
    let verdict = |value: Option<f64>, target: f64| match value {
        Some(v) if v >= target => format!("{v:.2} (target ≥ {target:.1}: met)"),
        Some(v) => format!("{v:.2} (target ≥ {target:.1}: missed)"),
        None => format!("- (target ≥ {target:.1}: not measured)"),
    };
    println!();
    println!(
        "FLASH.RESERVE / INCR at -P 1 = {}",
        verdict(
            round_ratio((Workload::ModuleNewCarts, 1), (Workload::Incr, 1)),
            0.9
        )
    );
    println!(
        "FLASH.RESERVE / Lua at -P 16 = {}",
        verdict(
            round_ratio((Workload::ModuleOneCart, 16), (Workload::LuaOneCart, 16)),
            2.0
        )
    );
    println!(
        "(median over rounds of each round's ratio; vs INCR: random carts, as traffic arrives; \
         vs Lua: one cart per run on both sides, because redis-benchmark cannot repeat one \
         random cart id in KEYS and ARGV)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rps_is_the_seventh_field_from_the_end() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                   \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"INCR a,b:__rand_int__\",\"400000.00\",\"0.154\",\"0.040\",\"0.111\",\
                   \"0.327\",\"1.431\",\"1.439\"\n";
        assert_eq!(parse_csv_rps(out), Some(400_000.0));
        assert_eq!(parse_csv_rps("\"test\",\"rps\"\n"), None);
    }

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
    fn naive_reserve_costs_the_three_calls_in_a_row() {
        let rate = naive_reserve_rate(&[Some(300.0), Some(300.0), Some(300.0)]);
        assert!(rate.is_some_and(|r| (r - 100.0).abs() < 1e-9));
        assert_eq!(naive_reserve_rate(&[Some(1.0), None, Some(1.0)]), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
