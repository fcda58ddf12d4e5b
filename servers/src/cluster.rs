//! A Redis Cluster made of running nodes (redis-servers started with
//! [`crate::redis::ClusterNode`]): `redis-cli --cluster create`, then the wait until every
//! node says `cluster_state:ok` and every replica has finished its first sync (a replica can
//! only be promoted once it has).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::redis::url;

/// Makes one cluster of the nodes on `ports` (127.0.0.1): the first `ports.len() /
/// (replicas + 1)` become masters with the 16384 slots split evenly, each of the others a
/// replica (`redis-cli` picks whose). `$REDIS_CLI` names another program.
pub fn create(ports: &[u16], replicas: usize) -> Result<()> {
    let program = std::env::var_os("REDIS_CLI").unwrap_or_else(|| "redis-cli".into());
    let mut command = Command::new(&program);
    command.arg("--cluster").arg("create");
    for port in ports {
        command.arg(format!("127.0.0.1:{port}"));
    }
    command
        .arg("--cluster-replicas")
        .arg(replicas.to_string())
        .arg("--cluster-yes");
    let output = command.output().with_context(|| {
        format!(
            "cannot run {}: install redis-tools (`cargo xtask deps`)",
            program.to_string_lossy()
        )
    })?;
    if !output.status.success() {
        bail!(
            "redis-cli --cluster create failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Waits until every node on `ports` reports `cluster_state:ok` and knows all the others,
/// and `replicas` of them are replicas whose first sync is done, for at most `timeout`. (A
/// node becomes a replica a moment after `redis-cli --cluster create` returns, and its
/// master may delay the first sync by `repl-diskless-sync-delay`: a replica promoted before
/// it has synced would come up empty.)
pub async fn wait_ready(ports: &[u16], replicas: usize, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut waiting_for = None;
        let mut synced_replicas = 0;
        for port in ports {
            match readiness(*port, ports.len()).await? {
                Readiness::NotReady(reason) => {
                    waiting_for = Some(format!("127.0.0.1:{port}: {reason}"));
                    break;
                }
                Readiness::Master => {}
                Readiness::SyncedReplica => synced_replicas += 1,
            }
        }
        if waiting_for.is_none() && synced_replicas < replicas {
            waiting_for = Some(format!(
                "{synced_replicas} of {replicas} replicas have finished their first sync"
            ));
        }
        let Some(reason) = waiting_for else {
            return Ok(());
        };
        if Instant::now() > deadline {
            bail!("the cluster was not ready within {timeout:?}: {reason}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

enum Readiness {
    NotReady(String),
    Master,
    SyncedReplica,
}

/// Whether the node is ready, and as what.
async fn readiness(port: u16, nodes: usize) -> Result<Readiness> {
    let client = redis::Client::open(url(port)).context("a Redis URL")?;
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return Ok(Readiness::NotReady("does not answer".to_owned()));
    };
    let cluster: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await?;
    if !cluster.contains("cluster_state:ok") {
        return Ok(Readiness::NotReady("cluster_state is not ok".to_owned()));
    }
    let known = field(&cluster, "cluster_known_nodes").unwrap_or(0);
    if known < nodes {
        return Ok(Readiness::NotReady(format!(
            "knows {known} of {nodes} nodes"
        )));
    }
    let replication: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await?;
    if !replication.contains("role:slave") {
        return Ok(Readiness::Master);
    }
    if !replication.contains("master_link_status:up") {
        return Ok(Readiness::NotReady("its first sync is not done".to_owned()));
    }
    Ok(Readiness::SyncedReplica)
}

fn field(info: &str, name: &str) -> Option<usize> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}
