//! redis-server with the Flash module, its data in `<data>/redis` with the append-only file
//! on: every acknowledged reserve and checkout is in the file, and the next start replays it.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use flash_servers::redis::{has_aof, ready};
use flash_servers::{Aof, RedisConfig, Server, Supervision, shown};

/// Replaying a large append-only file is not instant.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts redis-server on 127.0.0.1:`port` with `module` loaded, into `slot` (so that it is
/// stopped whatever happens next), and waits until it answers; returns its URL and the lines
/// that describe it.
pub async fn start(
    slots: &mut Vec<Server>,
    port: u16,
    dir: &Path,
    module: &Path,
) -> Result<(String, Vec<String>)> {
    let reused = has_aof(dir);
    let config = RedisConfig {
        port,
        dir: dir.to_path_buf(),
        module: Some(module.to_path_buf()),
        extra_modules: Vec::new(),
        aof: Aof::EverySecond,
        replica_of: None,
        debug_command: false,
        cluster: None,
    };
    slots.push(config.spawn(Supervision::Supervised)?);
    let Some(server) = slots.last_mut() else {
        anyhow::bail!("redis-server was not kept");
    };
    let version = ready(server, port, START_TIMEOUT).await?;
    let lines = vec![
        format!(
            "  redis-server  {version}, pid {}, 127.0.0.1:{port}, Flash module {}",
            server.pid,
            shown(module)
        ),
        format!(
            "                data {} (append-only file, {}), log {}",
            shown(dir),
            if reused { "reused" } else { "new" },
            shown(&server.log)
        ),
    ];
    Ok((config.url(), lines))
}
