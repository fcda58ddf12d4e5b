//! The server configurations the bench measures side by side: no persistence, the
//! append-only file with an fsync a second, and one replica attached.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use flash_tests::{RedisServer, ServerOptions};
use redis::Connection;

use super::PIPELINES;
use super::workload::Workload;
use crate::workspace::info_field;

/// How long the AOF's first rewrite or the replica's first sync may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, clap::ValueEnum)]
pub(super) enum Config {
    /// No persistence: the bench's original setting.
    Plain,
    /// `appendonly yes`, `appendfsync everysec`.
    Aof,
    /// One replica (a second redis-server with the module) attached, link up.
    Replica,
    /// No module at all: Redis's own commands only. The module subscribes to keyspace
    /// events (to forget cached sale settings), which every notifying write of any client
    /// pays for; this server shows the baselines without that toll.
    Bare,
}

impl Config {
    pub(super) const ALL: [Config; 4] = [Config::Plain, Config::Aof, Config::Replica, Config::Bare];

    pub(super) fn label(self) -> &'static str {
        match self {
            Config::Plain => "plain",
            Config::Aof => "aof",
            Config::Replica => "replica",
            Config::Bare => "bare",
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Config::Plain => "no persistence",
            Config::Aof => "appendonly yes, appendfsync everysec (CONFIG SET, first rewrite done)",
            Config::Replica => {
                "one replica with the module (REPLICAOF), master_link_status:up before measuring"
            }
            Config::Bare => "no module, no persistence: the baselines alone",
        }
    }

    /// What this configuration runs, in order: (pipeline, workload). The plain server runs
    /// every workload at both pipelines (the full table, with the Lua twin and the naive
    /// calls); the others run what issue 10's cost targets compare, at -P 16 only, to keep
    /// the default run near five minutes: the baselines, FLASH.AVAILABLE and both reserves.
    pub(super) fn runs(self) -> Vec<(u32, Workload)> {
        let mut runs = Vec::new();
        for pipeline in PIPELINES {
            for workload in Workload::ALL {
                let wanted = match self {
                    Config::Plain => pipeline == 16 || !workload.is_floor(),
                    Config::Aof | Config::Replica => {
                        pipeline == 16 && Workload::SUMMARY.contains(&workload)
                    }
                    Config::Bare => pipeline == 16 && workload.is_baseline(),
                };
                if wanted {
                    runs.push((pipeline, workload));
                }
            }
        }
        runs
    }

    /// Whether the server loads the module (and holds the module's sale).
    pub(super) fn has_module(self) -> bool {
        self != Config::Bare
    }

    /// Whether the Lua twin's sale is made and checked (it runs on the plain server only).
    pub(super) fn has_lua(self) -> bool {
        self.runs()
            .iter()
            .any(|(_, workload)| *workload == Workload::LuaOneCart)
    }
}

/// The configurations asked for, each once, in the order given.
pub(super) fn distinct(configs: &[Config]) -> Vec<Config> {
    let mut out: Vec<Config> = Vec::new();
    for config in configs {
        if !out.contains(config) {
            out.push(*config);
        }
    }
    out
}

/// One configuration's servers: the master the bench sends to, and its replica if any.
pub(super) struct Servers {
    pub(super) config: Config,
    pub(super) master: RedisServer,
    pub(super) replica: Option<RedisServer>,
    pub(super) conn: Connection,
}

impl Servers {
    /// `floor`: the module API's floor (loaded on the plain server, which runs its rows).
    pub(super) fn start(config: Config, module: &Path, floor: &Path) -> Result<Servers> {
        let runs_floor = config
            .runs()
            .iter()
            .any(|(_, workload)| workload.is_floor());
        let options = ServerOptions {
            module: config.has_module().then(|| module.to_path_buf()),
            extra_modules: runs_floor
                .then(|| floor.to_path_buf())
                .into_iter()
                .collect(),
            ..ServerOptions::default()
        };
        let master = RedisServer::start(options.clone()).with_context(|| {
            format!(
                "cannot start redis-server with the release module ({})",
                config.label()
            )
        })?;
        let mut conn = master
            .client()
            .get_connection()
            .context("cannot connect to the bench server")?;
        let mut replica = None;
        match config {
            Config::Plain | Config::Bare => {}
            Config::Aof => {
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("appendfsync")
                    .arg("everysec")
                    .exec(&mut conn)?;
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("appendonly")
                    .arg("yes")
                    .exec(&mut conn)
                    .context("CONFIG SET appendonly yes failed")?;
                wait_for(&mut conn, "persistence", "the first AOF rewrite", aof_ready)?;
            }
            Config::Replica => {
                let server = RedisServer::start(ServerOptions {
                    replica_of: Some(master.port),
                    ..options
                })
                .context("cannot start the replica")?;
                let mut replica_conn = server.client().get_connection()?;
                wait_for(
                    &mut replica_conn,
                    "replication",
                    "the replica's link to the master",
                    link_up,
                )?;
                replica = Some(server);
            }
        }
        Ok(Servers {
            config,
            master,
            replica,
            conn,
        })
    }

    /// Waits until the replica has applied everything the master wrote.
    pub(super) fn wait_replica_caught_up(&mut self) -> Result<()> {
        let Some(replica) = &self.replica else {
            return Ok(());
        };
        let mut replica_conn = replica.client().get_connection()?;
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let master: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut self.conn)?;
            let slave: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut replica_conn)?;
            let master_offset = info_number(&master, "master_repl_offset");
            let replica_offset = info_number(&slave, "slave_repl_offset");
            if master_offset.is_some() && master_offset == replica_offset {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the replica did not catch up within {SETUP_TIMEOUT:?}: master offset \
                     {master_offset:?}, replica offset {replica_offset:?}"
                );
            }
            sleep(Duration::from_millis(100));
        }
    }
}

/// Polls `INFO <section>` until `ready` says so.
fn wait_for(
    conn: &mut Connection,
    section: &str,
    what: &str,
    ready: fn(&str) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let info: String = redis::cmd("INFO").arg(section).query(conn)?;
        if ready(&info) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what} was not ready within {SETUP_TIMEOUT:?}; INFO {section}:\n{info}");
        }
        sleep(Duration::from_millis(50));
    }
}

/// AOF on and its first rewrite (which `CONFIG SET appendonly yes` starts) finished well.
fn aof_ready(info: &str) -> bool {
    info_field(info, "aof_enabled") == Some("1")
        && info_field(info, "aof_rewrite_in_progress") == Some("0")
        && info_field(info, "aof_rewrite_scheduled") == Some("0")
        && info_field(info, "aof_last_bgrewrite_status") == Some("ok")
}

/// A replica whose link to its master is up.
fn link_up(info: &str) -> bool {
    info_field(info, "role") == Some("slave")
        && info_field(info, "master_link_status") == Some("up")
}

/// An integer field of an INFO section.
pub(super) fn info_number(info: &str, name: &str) -> Option<i64> {
    info_field(info, name)?.parse().ok()
}

/// The process's CPU time so far, user + system, in seconds (`INFO cpu`).
pub(super) fn cpu_seconds(info: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> { info_field(info, name)?.parse().ok() };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aof_is_ready_once_the_first_rewrite_is_done() {
        let writing = "# Persistence\r\naof_enabled:1\r\naof_rewrite_in_progress:1\r\n\
                       aof_rewrite_scheduled:0\r\naof_last_bgrewrite_status:ok\r\n";
        assert!(!aof_ready(writing));
        let done = writing.replace("aof_rewrite_in_progress:1", "aof_rewrite_in_progress:0");
        assert!(aof_ready(&done));
        assert!(!aof_ready(&done.replace("aof_enabled:1", "aof_enabled:0")));
        assert!(!aof_ready(&done.replace(
            "aof_last_bgrewrite_status:ok",
            "aof_last_bgrewrite_status:err"
        )));
    }

    #[test]
    fn link_is_up_on_a_replica_only() {
        let info = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n\
                    master_link_status:up\r\nslave_repl_offset:42\r\n";
        assert!(link_up(info));
        assert!(!link_up(&info.replace(":up", ":down")));
        assert!(!link_up("# Replication\r\nrole:master\r\n"));
        assert_eq!(info_number(info, "slave_repl_offset"), Some(42));
    }

    #[test]
    fn cpu_is_user_plus_system() {
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\n\
                    used_cpu_sys_children:0.000000\r\n";
        assert_eq!(cpu_seconds(info), Some(3.75));
        assert_eq!(cpu_seconds("# CPU\r\nused_cpu_sys:1.0\r\n"), None);
    }

    #[test]
    fn configs_are_kept_once_in_the_order_given() {
        assert_eq!(
            distinct(&[Config::Replica, Config::Plain, Config::Replica]),
            vec![Config::Replica, Config::Plain]
        );
    }

    #[test]
    fn only_the_plain_server_runs_the_lua_twin_and_the_naive_calls() {
        assert!(Config::Plain.has_lua());
        assert!(!Config::Bare.has_lua() && !Config::Bare.has_module());
        assert_eq!(
            Config::Bare.runs(),
            [
                (16, Workload::Incr),
                (16, Workload::Hincrby),
                (16, Workload::Hget)
            ]
        );
        // Every workload at both pipelines but the module API's floor, at -P 16 only.
        assert_eq!(
            Config::Plain.runs().len(),
            Workload::ALL.len() * PIPELINES.len() - 2
        );
        assert!(Config::Plain.runs().contains(&(16, Workload::FloorHget)));
        assert!(!Config::Plain.runs().contains(&(1, Workload::FloorHget)));
        for config in [Config::Aof, Config::Replica] {
            assert!(!config.has_lua());
            let runs = config.runs();
            assert_eq!(runs.len(), Workload::SUMMARY.len());
            assert!(runs.contains(&(16, Workload::ModuleOneCart)));
            assert!(!runs.contains(&(1, Workload::ModuleNewCarts)));
            assert!(!runs.contains(&(16, Workload::NaiveDecr)));
            assert!(!runs.contains(&(16, Workload::FloorHget)));
        }
    }
}
