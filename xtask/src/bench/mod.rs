//! `cargo xtask bench`: redis-benchmark of FLASH.RESERVE against INCR (the floor of any write
//! command), against its Lua twin (EVALSHA) and against the naive three round trips
//! (DECR, RPUSH, LLEN), all on one redis-server with the release module; and the server's
//! cost per call of FLASH.RESERVE and FLASH.AVAILABLE against Redis's own HINCRBY and HGET on
//! one hash field (the floor of a counter write and of a counter read).
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
//! `commandstats` times the command alone: what AOF and replication add (feeding the AOF
//! buffer and the replicas' output, writing them out) happens after it, so each run also
//! reads the server process's CPU time (`INFO cpu`, user + system) per request.
//!
//! Three configurations, each on its own servers, visited in turn within every round:
//! plain (no persistence), aof (`appendonly yes`, `appendfsync everysec`) and replica (one
//! replica with the module attached, link up). The plain server runs every workload; the
//! others run what issue 10's targets compare (see [`config::Config::runs`]).
//!
//! This measures; it never fails on a missed target, only when a run cannot be measured.
//!
//! Then, unless `--no-latency`, [`latency`]'s phases (`cargo xtask bench-latency`): PING's
//! round trip while the module's timer has many idle sales or many due holds.
//!
//! Files: `mod.rs` runs the sweep and checks the books; [`config`] starts each
//! configuration's servers; [`workload`] names what each row sends; [`measure`] runs
//! redis-benchmark once and reads the server's counters; [`table`] prints the tables and the
//! targets' ratios.

pub mod cluster;
mod config;
pub mod latency;
mod measure;
pub mod memory;
mod table;
mod workload;

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail, ensure};
use flash_core::keys::SaleKeys;
use flash_core::names;
use redis::{Connection, ConnectionLike, Value};

use crate::workspace::{Profile, build_api_floor, build_module, info_field, quote, which};

use crate::{deps, reply};
use config::{Config, Servers};
pub(crate) use measure::median;
use measure::{Measure, measure};
use table::{print_comparison, print_table};
use workload::{LuaTwin, Workload, strings};

pub(super) const PIPELINES: [u32; 2] = [1, 16];
/// redis-benchmark's `-r`: random numbers in 0..KEYSPACE.
pub(super) const KEYSPACE: u32 = 1_000_000;
pub(super) const SKU: &str = "14";
pub(super) const USER: &str = "bench-user";
/// The module's sale and the Lua twin's: the same settings, the same stock.
pub(super) const MODULE_SALE: &str = "bench";
pub(super) const LUA_SALE: &str = "benchlua";
/// Ten minutes: every cart made by a run stays held (not EXPIRED) until the bench is over.
pub(super) const HOLD_MS: &str = "600000";
/// Far more units than any run reserves, so SOLDOUT never cuts a run short.
pub(super) const STOCK: &str = "1000000000";
/// The sale whose waiting room FLASH.JOIN and FLASH.POSITION are measured in: open, one
/// admission live at a time that lasts a day (so after the first shopper nobody is admitted
/// and the line only grows), nobody dropped for silence during the bench.
pub(super) const QUEUE_SALE: &str = "benchqueue";
/// The shopper whose place FLASH.POSITION reads.
pub(super) const QUEUE_WAITER: &str = "bench-waiter";
/// The cart the one-time check of each implementation reserves into before the runs.
pub(super) const CHECK_CART: &str = "bench-check";

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Requests per redis-benchmark run (redis-benchmark -n).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) requests: u64,
    /// Parallel connections (redis-benchmark -c).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(super) clients: u64,
    /// Sweeps over every workload, interleaved; the table shows each figure's median, so a
    /// burst of noise on this shared machine moves one sample, not the result.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(super) rounds: u32,
    /// Server configurations, comma-separated: plain (no persistence: every workload at -P 1
    /// and -P 16), aof (appendonly yes, appendfsync everysec) and replica (one replica
    /// attached); the last two run issue 10's cost comparisons at -P 16 only. Each has its
    /// own servers; each round visits every configuration in turn.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Config::ALL)]
    config: Vec<Config>,
    /// Skip the last part, `bench-latency`'s phases with its defaults (PING's latency with
    /// 100,000 idle sales and while 100,000 holds fall due).
    #[arg(long)]
    no_latency: bool,
}

/// Samples per (configuration, workload, pipeline), one per round.
type Samples = BTreeMap<(Config, Workload, u32), Vec<Measure>>;

pub fn run(args: &BenchArgs) -> Result<()> {
    deps::ensure()?;
    let module = build_module(Profile::Release)?;
    let floor = build_api_floor()?;
    if which("redis-benchmark").is_none() {
        bail!("redis-benchmark is not on PATH: install redis-tools (cargo xtask deps)");
    }
    let configs = config::distinct(&args.config);
    let mut servers: Vec<Servers> = Vec::new();
    let mut lua: Option<LuaTwin> = None;
    for config in &configs {
        let mut set = Servers::start(*config, &module, &floor)?;
        if config.has_module() {
            prepare_sale(&mut set.conn, MODULE_SALE)?;
            prepare_queue(&mut set.conn)?;
        }
        if config.has_lua() {
            prepare_sale(&mut set.conn, LUA_SALE)?;
            let twin = load_lua_twin(&mut set.conn)?;
            check_both_reserve(&mut set.conn, &twin)?;
            lua = Some(twin);
        }
        servers.push(set);
    }
    // The Lua twin's SHA1 is the script's: the same on any server that loaded it.
    let lua = match lua {
        Some(twin) => twin,
        None => LuaTwin {
            sha: flash_client::lua::script("FLASH.RESERVE")
                .map(|script| script.get_hash().to_owned())
                .unwrap_or_default(),
        },
    };
    let Some(first) = servers.first_mut() else {
        bail!("no configuration to measure");
    };
    let server_info: String = redis::cmd("INFO").arg("server").query(&mut first.conn)?;
    let version = info_field(&server_info, "redis_version")
        .unwrap_or("?")
        .to_owned();

    println!(
        "\ncargo xtask bench --requests {} --clients {} --rounds {} --config {}",
        args.requests,
        args.clients,
        args.rounds,
        configs
            .iter()
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "redis-server {version}, module {}, redis-benchmark -r {KEYSPACE}, {} CPUs",
        module.display(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for set in &servers {
        println!(
            "  {:<8} port {}: {}",
            set.config.label(),
            set.master.port,
            set.config.describe()
        );
    }
    println!(
        "each run: redis-benchmark -h 127.0.0.1 -p <port> -c {} -n {} -r {KEYSPACE} -P <1|16> \
         -q --csv <command>",
        args.clients, args.requests
    );
    for workload in Workload::ALL {
        let words: Vec<String> = workload
            .command(PIPELINES[0], 1, &lua)
            .iter()
            .map(|word| quote(word))
            .collect();
        println!("  {:<30} {}", workload.label(), words.join(" "));
    }

    let mut samples: Samples = BTreeMap::new();
    let mut failures: Vec<(Config, String)> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for round in 1..=args.rounds {
        for set in &mut servers {
            let config = set.config;
            let name = config.label();
            for (pipeline, workload) in config.runs() {
                let words = workload.command(pipeline, round, &lua);
                let label = workload.label();
                match measure(
                    &mut set.conn,
                    set.master.port,
                    args,
                    workload,
                    pipeline,
                    &words,
                    &mut warnings,
                ) {
                    Ok(result) => {
                        println!(
                            "  round {round}  {name:<7} {label:<30} -P {pipeline:<2} {:>12.0} \
                             req/s",
                            result.requests_per_sec
                        );
                        samples
                            .entry((config, workload, pipeline))
                            .or_default()
                            .push(result);
                    }
                    Err(error) => {
                        println!(
                            "  round {round}  {name:<7} {label:<30} -P {pipeline:<2} FAILED: \
                             {error:#}"
                        );
                        failures.push((config, format!("{label} at -P {pipeline}: {error:#}")));
                    }
                }
            }
        }
    }

    for set in &mut servers {
        let config = set.config;
        let results: BTreeMap<(Workload, u32), Measure> = samples
            .iter()
            .filter(|((c, _, _), _)| *c == config)
            .map(|((_, workload, pipeline), runs)| ((*workload, *pipeline), Measure::median(runs)))
            .collect();
        println!("\n{}: {}", config.label(), config.describe());
        warnings.extend(check_config(set, &results)?);
        println!("medians of {} round(s):", args.rounds);
        print_table(&results);
    }
    print_comparison(&configs, &samples);
    for warning in &warnings {
        println!("WARNING: {warning}");
    }
    if !failures.is_empty() {
        let mut logs = String::new();
        for set in &servers {
            if failures.iter().any(|(config, _)| *config == set.config) {
                let log = set.master.log();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                logs.push_str(&format!(
                    "\nthe {} server's log ends with:\n{}",
                    set.config.label(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
        bail!(
            "{} run(s) could not be measured:\n  {}{logs}",
            failures.len(),
            failures
                .iter()
                .map(|(config, failure)| format!("{}: {failure}", config.label()))
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    // The servers above are done with; the latency phases get a fresh one of their own.
    drop(servers);
    if !args.no_latency {
        latency::run(&latency::BenchLatencyArgs::default())?;
    }
    Ok(())
}

/// A fresh redis-server (no persistence) with the release module, built if needed: the
/// server of `bench-memory` and `bench-latency`.
pub(super) fn release_server() -> Result<(std::path::PathBuf, flash_tests::RedisServer)> {
    deps::ensure()?;
    let module = build_module(Profile::Release)?;
    let server = flash_tests::RedisServer::start(flash_tests::ServerOptions {
        module: Some(module.clone()),
        ..flash_tests::ServerOptions::default()
    })
    .context("cannot start redis-server with the release module")?;
    Ok((module, server))
}

/// The books of one configuration's sales after its runs; with a replica, the replica's
/// books once it has caught up, which must match the master's.
fn check_config(
    set: &mut Servers,
    results: &BTreeMap<(Workload, u32), Measure>,
) -> Result<Vec<String>> {
    let sales: &[&str] = if set.config.has_lua() {
        &[MODULE_SALE, LUA_SALE]
    } else if set.config.has_module() {
        &[MODULE_SALE]
    } else {
        &[]
    };
    // The check reserve before the runs added one unit to each sale it ran on.
    let checked = u64::from(set.config.has_lua());
    let mut warnings = check_sales(&mut set.conn, sales, checked, results)?;
    if set.replica.is_some() {
        set.wait_replica_caught_up()?;
    }
    if let Some(replica) = &set.replica {
        let mut replica_conn = replica.client().get_connection()?;
        for sale in sales {
            let on_master = send(&mut set.conn, &strings(&["FLASH.INFO", sale]))?;
            let on_replica = send(&mut replica_conn, &strings(&["FLASH.INFO", sale]))?;
            let (master_total, replica_total) = (info_total(&on_master), info_total(&on_replica));
            if master_total.is_some() && master_total == replica_total {
                println!("sale {sale}: the replica's ledger matches the master's");
            } else {
                warnings.push(format!(
                    "sale {sale}: the replica's ledger {replica_total:?} differs from the \
                     master's {master_total:?}"
                ));
            }
        }
    }
    Ok(warnings)
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

/// The waiting room FLASH.JOIN and FLASH.POSITION run in, with [`QUEUE_WAITER`] in it.
fn prepare_queue(conn: &mut Connection) -> Result<()> {
    redis::cmd("FLASH.SALE")
        .arg(QUEUE_SALE)
        .arg(&["CAP", "1", "ADMIT", "86400000", "IDLE", "86400000", "SEED"])
        .arg("0123456789abcdef0123456789abcdef")
        .exec(conn)
        .with_context(|| format!("FLASH.SALE {QUEUE_SALE} CAP 1 … failed"))?;
    // The first takes the one admission for the day; the waiter waits, first in line, while
    // the joins of the runs grow the line behind it.
    for user in ["bench-first", QUEUE_WAITER] {
        redis::cmd("FLASH.JOIN")
            .arg(QUEUE_SALE)
            .arg(user)
            .exec(conn)
            .with_context(|| format!("FLASH.JOIN {QUEUE_SALE} {user} failed"))?;
    }
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

/// After the runs: each sale conserves units (loaded = available + held + pending + sold),
/// and holds exactly one unit per successful reserve (`checked`: the check reserve's).
fn check_sales(
    conn: &mut Connection,
    sales: &[&str],
    checked: u64,
    results: &BTreeMap<(Workload, u32), Measure>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for &sale in sales {
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
        let reserved: u64 = checked
            + results
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
    let position = items.iter().position(
        |item| matches!(item, Value::BulkString(name) if name == names::reply::TOTAL.as_bytes()),
    )?;
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    #[test]
    fn config_takes_a_comma_separated_list_and_defaults_to_all() -> Result<()> {
        let parsed = Cli::try_parse_from(["bench", "--config", "aof,replica"])?;
        assert_eq!(parsed.args.config, vec![Config::Aof, Config::Replica]);
        assert_eq!(
            Cli::try_parse_from(["bench"])?.args.config,
            Config::ALL.to_vec()
        );
        assert!(Cli::try_parse_from(["bench", "--config", "rdb"]).is_err());
        Ok(())
    }
}
