//! redis-server on 127.0.0.1, its data and its log (`redis.log`) in one folder, and the wait
//! until it answers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::paths::shown;
use crate::process::{Server, Supervision};

/// The append-only file: every acknowledged write is in it, and a restart replays it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Aof {
    /// No persistence at all (RDB snapshots are always off here).
    #[default]
    Off,
    /// fsync once a second: `flash up`'s durable copy.
    EverySecond,
    /// fsync on every write: every acknowledged write survives a kill -9 (the durability
    /// tests).
    Always,
}

/// How to start one redis-server.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub port: u16,
    /// Its `--dir`: the append-only file, `redis.log` and `redis.pid`.
    pub dir: PathBuf,
    /// Load the Flash module from this path (None: a plain server, for the Lua twin).
    pub module: Option<PathBuf>,
    /// More modules, loaded after Flash's (the bench's API floor).
    pub extra_modules: Vec<PathBuf>,
    pub aof: Aof,
    /// Replicate from this port on 127.0.0.1.
    pub replica_of: Option<u16>,
    /// Allow DEBUG from loopback (the tests use it; `flash up` does not).
    pub debug_command: bool,
    /// Run as a Redis Cluster node (its bus on port + 10000); `None`: a standalone server.
    pub cluster: Option<ClusterNode>,
}

/// A Redis Cluster node's settings.
#[derive(Clone, Copy, Debug)]
pub struct ClusterNode {
    /// How long a master may be unreachable before its replica is promoted
    /// (`cluster-node-timeout`): small in tests, so a failover takes about a second.
    pub node_timeout_ms: u64,
}

impl RedisConfig {
    /// Its log file, inside its folder.
    pub fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    pub fn url(&self) -> String {
        url(self.port)
    }

    /// Starts it (the folder is made if missing). `$REDIS_SERVER` names another program.
    pub fn spawn(&self, supervision: Supervision) -> Result<Server> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create the Redis folder {}", self.dir.display()))?;
        let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let mut command = Command::new(&program);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log())
            // Written only when named; `flash up`'s smoke test reads it to check the server
            // is gone.
            .arg("--pidfile")
            .arg(self.dir.join("redis.pid"))
            // The append-only file is the durable copy; RDB snapshots would only duplicate it.
            .args(["--save", ""])
            .current_dir(&self.dir);
        match self.aof {
            Aof::Off => {}
            Aof::EverySecond => {
                command.args(["--appendonly", "yes"]);
            }
            Aof::Always => {
                command.args(["--appendonly", "yes", "--appendfsync", "always"]);
            }
        }
        if self.debug_command {
            command.args(["--enable-debug-command", "local"]);
        }
        if let Some(node) = self.cluster {
            // `nodes.conf` in the node's own folder: the cluster's view survives a restart.
            command
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .arg("--cluster-node-timeout")
                .arg(node.node_timeout_ms.to_string())
                // A replica's first sync starts at once rather than after 5 s of waiting for
                // more replicas to share it: until it is done, a failover would promote an
                // empty node.
                .args(["--repl-diskless-sync-delay", "0"]);
        }
        if let Some(master) = self.replica_of {
            command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        for module in self.module.iter().chain(&self.extra_modules) {
            command.arg("--loadmodule").arg(module);
        }
        // SIGTERM is redis-server's SHUTDOWN: it fsyncs the append-only file, then exits 0.
        Server::spawn(
            "redis-server",
            command,
            &self.log(),
            libc::SIGTERM,
            supervision,
        )
        .map_err(|error| {
            error.context(format!(
                "cannot run {}: install it (`sudo apt-get install redis-server`, or `cargo \
                 xtask deps`), point REDIS_SERVER at one, or set REDIS_URL to use a running \
                 Redis",
                program.to_string_lossy()
            ))
        })
    }
}

pub fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// Waits until the server answers PING (while it replays its file it answers LOADING), up
/// to `timeout`; returns its version.
pub async fn ready(server: &mut Server, port: u16, timeout: Duration) -> Result<String> {
    let client = redis::Client::open(url(port)).context("a Redis URL")?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = server.try_exited()? {
            bail!(
                "redis-server exited at start ({status}); the end of its log ({}):\n{}",
                shown(&server.log),
                server.log_tail(15)
            );
        }
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
        {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut conn)
                .await?;
            let version = info
                .lines()
                .find_map(|line| line.strip_prefix("redis_version:"))
                .unwrap_or("?");
            return Ok(version.trim().to_owned());
        }
        if Instant::now() > deadline {
            bail!(
                "redis-server on port {port} did not answer PING within {timeout:?}; the end \
                 of its log ({}):\n{}",
                shown(&server.log),
                server.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `dir` holds an append-only file from an earlier run.
pub fn has_aof(dir: &Path) -> bool {
    dir.join("appendonlydir").exists()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::process::Stopped;

    fn free_port() -> u16 {
        std::net::TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn config(dir: &Path) -> RedisConfig {
        RedisConfig {
            port: free_port(),
            dir: dir.to_path_buf(),
            module: None,
            extra_modules: Vec::new(),
            aof: Aof::EverySecond,
            replica_of: None,
            debug_command: false,
            cluster: None,
        }
    }

    #[tokio::test]
    async fn a_server_answers_then_stops_cleanly_with_its_file_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut server = config.spawn(Supervision::Attached).unwrap();
        let version = ready(&mut server, config.port, Duration::from_secs(20))
            .await
            .unwrap();
        assert!(
            version.chars().next().unwrap().is_ascii_digit(),
            "{version}"
        );
        match server.stop(Duration::from_secs(15)).await.unwrap() {
            Stopped::Exited(status) => assert!(status.success(), "{status}"),
            Stopped::Killed => panic!("redis-server ignored SIGTERM"),
        }
        assert!(has_aof(dir.path()), "the append-only file is on disk");
    }

    #[tokio::test]
    async fn a_dropped_guard_leaves_no_process_behind() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut server = config.spawn(Supervision::Attached).unwrap();
        ready(&mut server, config.port, Duration::from_secs(20))
            .await
            .unwrap();
        let pid = libc::pid_t::try_from(server.pid).unwrap();
        drop(server);
        // SAFETY: signal 0 only asks whether the pid exists; the guard has reaped it.
        assert_eq!(unsafe { libc::kill(pid, 0) }, -1, "pid {pid} still exists");
    }
}
