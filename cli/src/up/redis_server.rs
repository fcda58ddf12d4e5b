//! redis-server with the Flash module, its data in `<data>/redis` with the append-only file
//! on: every acknowledged reserve and checkout is in the file, and the next start replays it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use super::child::Server;
use super::data::shown;

/// Replaying a large append-only file is not instant.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts redis-server on 127.0.0.1:`port` with `module` loaded.
pub fn spawn(port: u16, dir: &Path, module: &Path) -> Result<Server> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the Redis folder {}", dir.display()))?;
    let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
    let mut command = Command::new(&program);
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        // Written only when named; the smoke test reads it to check the server is gone.
        .arg("--pidfile")
        .arg(dir.join("redis.pid"))
        // The append-only file is the durable copy; RDB snapshots would only duplicate it.
        .args(["--appendonly", "yes", "--save", ""])
        .arg("--loadmodule")
        .arg(module)
        .current_dir(dir);
    // SIGTERM is redis-server's SHUTDOWN: it fsyncs the append-only file, then exits 0.
    Server::spawn(
        "redis-server",
        command,
        &dir.join("redis.log"),
        libc::SIGTERM,
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

/// Waits until the server answers PING (while it replays its file it answers LOADING);
/// returns its version.
pub async fn ready(server: &mut Server, url: &str) -> Result<String> {
    let client = redis::Client::open(url).context("a Redis URL")?;
    let deadline = Instant::now() + START_TIMEOUT;
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
                "redis-server did not answer PING within {START_TIMEOUT:?}; the end of its log \
                 ({}):\n{}",
                shown(&server.log),
                server.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
