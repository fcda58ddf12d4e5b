//! A real Redis Cluster on loopback: masters and replicas, each a [`RedisServer`] started as
//! a cluster node on a free port with a free bus port, joined by `redis-cli --cluster
//! create`, ready once every node says `cluster_state:ok` and every replica has finished
//! its first sync. Dropping it kills every node and removes their folders.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use flash_servers::ClusterNode;
use flash_servers::cluster::{create, wait_ready};

use crate::redis_server::{RedisServer, ServerOptions};
use crate::{block_on, io_error};

/// How long the nodes may take to agree and the replicas to sync.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub masters: usize,
    pub replicas_per_master: usize,
    /// Load the Flash module on every node (None: plain servers, for the Lua twin).
    pub module: Option<PathBuf>,
    /// `cluster-node-timeout`: small, so a killed master's replica is promoted in about a
    /// second.
    pub node_timeout_ms: u64,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            masters: 3,
            replicas_per_master: 1,
            module: None,
            node_timeout_ms: 1_000,
        }
    }
}

/// A running cluster. Nodes in the order given to `redis-cli --cluster create`: the masters
/// first (as created; a failover changes who is master, so ask the cluster, not the order).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(options: ClusterOptions) -> io::Result<RedisCluster> {
        let count = options.masters * (options.replicas_per_master + 1);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(RedisServer::start(ServerOptions {
                module: options.module.clone(),
                cluster: Some(ClusterNode {
                    node_timeout_ms: options.node_timeout_ms,
                }),
                ..ServerOptions::default()
            })?);
        }
        let ports: Vec<u16> = nodes.iter().map(|node| node.port).collect();
        create(&ports, options.replicas_per_master).map_err(|error| io_error(&error))?;
        block_on(wait_ready(&ports, READY_TIMEOUT))?.map_err(|error| io_error(&error))?;
        Ok(RedisCluster { nodes })
    }

    /// The seed URLs a cluster client starts from: every node's.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// A cluster client knowing every node.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        // The URLs are built from port numbers; they always parse.
        redis::cluster::ClusterClient::new(self.urls()).expect("valid cluster seed URLs")
    }

    /// The node serving `port`.
    pub fn node(&self, port: u16) -> Option<&RedisServer> {
        self.nodes.iter().find(|node| node.port == port)
    }
}
