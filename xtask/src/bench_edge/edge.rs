//! The edge under test: `target/release/flash edge` as a child process, and its metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use flash_api_client::{EdgeClient, StatusCode};
use flash_servers::process::{Server, Supervision};
use flash_tests::{RedisServer, free_port};

use super::{BenchEdgeArgs, SALE, SECRET};
use crate::workspace::{show, target_dir};

/// `target/release/flash edge` as a child process (flash-servers' guard: killed when it
/// drops).
pub(super) struct EdgeProcess {
    server: Server,
    pub address: SocketAddr,
    /// `http://address`, for the API client.
    pub url: String,
    pub log: PathBuf,
    pub command_line: String,
}

impl EdgeProcess {
    pub async fn start(
        binary: &Path,
        args: &BenchEdgeArgs,
        redis: &RedisServer,
        database_url: &str,
    ) -> Result<EdgeProcess> {
        // A directory of its own: the edge reads `.env` from where it runs, and the
        // workspace's would change its settings behind the bench's back.
        let dir = target_dir()?.join("bench-edge");
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("edge.log");
        // One run's output: the guard appends, so start from an empty file.
        std::fs::write(&log, "")?;
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let ws_per_ip = args.ws_clients.max(10_000) * 2;
        let max_connections = (args.ws_clients + args.connections).max(15_000) * 2;
        let mut command = Command::new(binary);
        command
            .current_dir(&dir)
            .env("RUST_LOG", "warn")
            .arg("edge")
            .arg("--listen")
            .arg(address.to_string())
            .arg("--redis-url")
            .arg(redis.url())
            .arg("--database-url")
            .arg(database_url)
            .args(["--sale", SALE, "--secret", SECRET, "--demo-login"])
            .args(["--rate-per-ip", "0", "--rate-per-user", "0"])
            // Every client of the bench comes from 127.0.0.1.
            .args(["--connections-per-ip", "0"])
            .arg("--ws-per-ip")
            .arg(ws_per_ip.to_string())
            .arg("--max-connections")
            .arg(max_connections.to_string())
            .arg("--no-worker");
        let command_line = show(&command);
        let server = Server::spawn(
            "flash edge",
            command,
            &log,
            libc::SIGTERM,
            Supervision::Attached,
        )?;
        let mut edge = EdgeProcess {
            server,
            address,
            url: format!("http://{address}"),
            log,
            command_line,
        };
        edge.wait_until_healthy().await?;
        Ok(edge)
    }

    pub fn pid(&self) -> u32 {
        self.server.pid
    }

    async fn wait_until_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = EdgeClient::new(&self.url)?;
        loop {
            if let Some(status) = self.server.try_exited()? {
                bail!(
                    "flash edge exited with {status}:\n{}",
                    self.server.log_tail(30)
                );
            }
            if let Ok((StatusCode::OK, _)) = client.health().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "flash edge on {} did not answer GET /healthz with 200 in 30 s:\n{}",
                    self.address,
                    self.server.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails (with the log) if the edge died during a run.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.server.try_exited()? {
            bail!(
                "flash edge exited with {status} during the run:\n{}",
                self.server.log_tail(30)
            );
        }
        Ok(())
    }
}

impl EdgeProcess {
    /// The edge's `/metrics` text, or nothing if it cannot be read.
    pub async fn metrics(&self) -> String {
        match EdgeClient::new(&self.url) {
            Ok(client) => client.metrics().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

/// A metric's value in Prometheus text (a series without labels).
pub(super) fn metric<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then_some(value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_reads_an_unlabelled_series() {
        let text = "# TYPE flash_ws_clients gauge\nflash_ws_clients 10000\n";
        assert_eq!(metric(text, "flash_ws_clients"), Some("10000"));
        assert_eq!(metric(text, "flash_ws_lag_resyncs_total"), None);
    }
}
