//! PostgreSQL for `flash up` when DATABASE_URL is unset: a cluster of its own in
//! `<data>/postgres`, made once by `initdb`, served on 127.0.0.1 only (as `nobody` when run
//! as root: see `flash_servers::postgres`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use flash_servers::postgres::{prepare, ready, url};
use flash_servers::{Server, Supervision, shown};

/// The database the stack uses.
const DATABASE: &str = "flash";
/// Crash recovery after a kill may replay some WAL first.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes the cluster in `<data>/postgres` if missing, starts it on 127.0.0.1:`port` into
/// `slot` (so that it is stopped whatever happens next), waits until it answers and creates
/// the database once; returns its URL and the line that describes it.
pub async fn start(slot: &mut Option<Server>, port: u16, data: &Path) -> Result<(String, String)> {
    let cluster = prepare(&data.join("postgres"), true).await?;
    let log = data.join("postgres.log");
    let server = slot.insert(cluster.spawn(port, &log, &[], Supervision::Supervised)?);
    let admin = ready(server, port, START_TIMEOUT).await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await?
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .context("cannot create the database")?;
    }
    let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    let line = format!(
        "  postgres      {}, pid {}, 127.0.0.1:{port}, data {} ({}), log {}",
        version.split_whitespace().next().unwrap_or("?"),
        server.pid,
        shown(&cluster.dir),
        if cluster.created { "new" } else { "reused" },
        shown(&log)
    );
    Ok((url(port, DATABASE), line))
}
