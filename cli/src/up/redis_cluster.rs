//! `flash up --shards N`: a local Redis Cluster instead of one redis-server: N masters and a
//! replica each, every node with the Flash module and its append-only file on, in
//! `<data>/redis-cluster/<port>`.
//!
//! The first run starts the nodes and joins them (`redis-cli --cluster create`); a later run
//! starts the same nodes on the same ports, and they find each other again from their
//! `nodes.conf`. The ports are kept in `<data>/redis-cluster/ports`: a cluster's nodes know
//! one another by address, so it cannot move to other ports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flash_servers::redis::{has_aof, ready};
use flash_servers::{Aof, ClusterNode, RedisConfig, Server, Supervision, cluster, shown};

use super::check_port;

/// Replaying a large append-only file is not instant.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a master may be unreachable before its replica takes over: short enough that a
/// crashed node's sales come back within seconds, long enough for a loaded laptop's pauses.
const NODE_TIMEOUT_MS: u64 = 5_000;
/// Joining, then every replica's first sync.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the cluster's nodes into `slots` (so that each is stopped whatever happens next),
/// makes the cluster on a first run, and waits until it serves; returns its `REDIS_URL` and
/// the lines that describe it.
pub async fn start(
    slots: &mut Vec<Server>,
    shards: u16,
    first_port: u16,
    dir: &Path,
    module: &Path,
) -> Result<(String, Vec<String>)> {
    let nodes = usize::from(shards) * 2;
    let ports_file = dir.join("ports");
    let (ports, made) = match std::fs::read_to_string(&ports_file) {
        Ok(text) => (kept_ports(&text, nodes, &ports_file)?, false),
        Err(_) => {
            let ports: Vec<u16> = (0..nodes)
                .map(|n| {
                    u16::try_from(n)
                        .ok()
                        .and_then(|n| first_port.checked_add(n))
                        .filter(|port| port.checked_add(10_000).is_some())
                })
                .collect::<Option<_>>()
                .with_context(|| {
                    format!("{nodes} ports from {first_port} (and their bus ports, + 10000)")
                })?;
            (ports, true)
        }
    };
    for port in &ports {
        for (port, what) in [
            (*port, "a cluster node"),
            (port + 10_000, "a node's cluster bus"),
        ] {
            check_port(
                port,
                &format!(
                    "(needed for {what}): stop what uses it, or start the cluster on other \
                     ports with --redis-port (only with a new --data-dir: a cluster keeps its \
                     ports)"
                ),
            )?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", shown(dir)))?;
    let reused = ports.iter().all(|port| has_aof(&node_dir(dir, *port)));
    for port in &ports {
        let config = RedisConfig {
            port: *port,
            dir: node_dir(dir, *port),
            module: Some(module.to_path_buf()),
            extra_modules: Vec::new(),
            aof: Aof::EverySecond,
            replica_of: None,
            debug_command: false,
            cluster: Some(ClusterNode {
                node_timeout_ms: NODE_TIMEOUT_MS,
            }),
        };
        slots.push(config.spawn(Supervision::Supervised)?);
    }
    let mut version = String::new();
    for (server, port) in slots.iter_mut().zip(&ports) {
        version = ready(server, *port, START_TIMEOUT).await?;
    }
    if made {
        let joining = ports.clone();
        tokio::task::spawn_blocking(move || cluster::create(&joining, 1))
            .await
            .context("redis-cli --cluster create")??;
        let listed: Vec<String> = ports.iter().map(u16::to_string).collect();
        std::fs::write(&ports_file, listed.join(","))
            .with_context(|| format!("cannot write {}", shown(&ports_file)))?;
    }
    cluster::wait_ready(&ports, usize::from(shards), READY_TIMEOUT).await?;

    let seeds: Vec<String> = ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let url = format!("redis+cluster://{}", seeds.join(","));
    let lines = vec![
        format!(
            "  redis cluster {version}, {shards} masters and {shards} replicas on 127.0.0.1:{}..{}, \
             Flash module {}",
            ports[0],
            ports[ports.len() - 1],
            shown(module)
        ),
        format!(
            "                data {} (append-only files, {}; cluster {})",
            shown(dir),
            if reused { "reused" } else { "new" },
            if made { "made now" } else { "rejoined" }
        ),
    ];
    Ok((url, lines))
}

fn node_dir(dir: &Path, port: u16) -> PathBuf {
    dir.join(port.to_string())
}

/// The ports a first run chose, which this run must use too.
fn kept_ports(text: &str, nodes: usize, file: &Path) -> Result<Vec<u16>> {
    let ports: Vec<u16> = text
        .trim()
        .split(',')
        .map(|port| port.trim().parse::<u16>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a list of ports", shown(file)))?;
    if ports.len() != nodes {
        bail!(
            "this data folder holds a cluster of {} nodes ({}): run with --shards {}, or use \
             another --data-dir for {} shards",
            ports.len(),
            shown(file),
            ports.len() / 2,
            nodes / 2
        );
    }
    Ok(ports)
}
