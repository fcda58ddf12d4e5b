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

impl ClusterOptions {
    /// The default cluster for `backend`: the module on every node, or plain nodes for the
    /// Lua twin.
    pub fn for_backend(backend: flash_client::Backend) -> io::Result<ClusterOptions> {
        Ok(ClusterOptions {
            module: match backend {
                flash_client::Backend::Module => Some(crate::module_path()?),
                flash_client::Backend::Lua => None,
            },
            ..ClusterOptions::default()
        })
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
        let replicas = options.masters * options.replicas_per_master;
        block_on(wait_ready(&ports, replicas, READY_TIMEOUT))?.map_err(|error| io_error(&error))?;
        Ok(RedisCluster { nodes })
    }

    /// The seed URLs a cluster client starts from: every node's.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The one setting (`REDIS_URL`) that points Flash at this cluster: every node as a
    /// seed, in the client's cluster form.
    pub fn redis_url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!(
            "{}{}",
            flash_client::connection::CLUSTER_SCHEME,
            seeds.join(",")
        )
    }

    /// The live master serving `key`'s slot now, by a live node's `CLUSTER NODES`
    /// (which follows a failover once the nodes agree on it).
    pub async fn master_of(&self, key: &str) -> redis::RedisResult<Option<u16>> {
        let mut last_error = None;
        for node in &self.nodes {
            let asked = async {
                let mut conn = node.client().get_multiplexed_async_connection().await?;
                let slot: u16 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(key)
                    .query_async(&mut conn)
                    .await?;
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await?;
                Ok::<_, redis::RedisError>(serving(&nodes, slot))
            };
            // A killed node does not answer: ask the next.
            match asked.await {
                Ok(port) => return Ok(port),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| (redis::ErrorKind::Io, "no nodes").into()))
    }

    /// `count` sale names (`<prefix><n>`) whose slots are served by `count` different masters,
    /// with each one's master port: a test or a bench that needs a sale on every shard.
    pub async fn sales_on_masters(
        &self,
        prefix: &str,
        count: usize,
    ) -> io::Result<Vec<(String, u16)>> {
        let mut picked: Vec<(String, u16)> = Vec::new();
        for n in 0..1000 {
            let sale = format!("{prefix}{n}");
            let key = flash_core::keys::SaleKeys::new(&sale).sale();
            let Some(master) = self.master_of(&key).await.map_err(io::Error::other)? else {
                continue;
            };
            if picked.iter().all(|(_, taken)| *taken != master) {
                picked.push((sale, master));
            }
            if picked.len() == count {
                return Ok(picked);
            }
        }
        Err(io::Error::other(format!(
            "no {count} masters among 1000 sale names: found {picked:?}"
        )))
    }

    /// Waits until every replica of the master on `port` has acknowledged everything the
    /// master had written when asked (its `master_repl_offset`). `WAIT` on a connection of
    /// our own would not do: it waits for that connection's own writes only, and the writes
    /// to wait for came through the cluster client's connections.
    pub async fn wait_replicated(&self, port: u16) -> io::Result<()> {
        let node = self
            .node(port)
            .ok_or_else(|| io::Error::other(format!("no node on port {port}")))?;
        let mut conn = node
            .client()
            .get_multiplexed_async_connection()
            .await
            .map_err(io::Error::other)?;
        let info = |conn: &mut redis::aio::MultiplexedConnection| {
            let mut conn = conn.clone();
            async move {
                redis::cmd("INFO")
                    .arg("replication")
                    .query_async::<String>(&mut conn)
                    .await
                    .map_err(io::Error::other)
            }
        };
        let written = replication_number(&info(&mut conn).await?, "master_repl_offset")
            .ok_or_else(|| io::Error::other("INFO replication has no master_repl_offset"))?;
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let replication = info(&mut conn).await?;
            let offsets: Vec<u64> = replication
                .lines()
                .filter(|line| line.starts_with("slave"))
                .filter_map(|line| {
                    line.split(',')
                        .find_map(|part| part.strip_prefix("offset="))?
                        .parse()
                        .ok()
                })
                .collect();
            if !offsets.is_empty() && offsets.iter().all(|offset| *offset >= written) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "the replicas of {port} did not reach offset {written}:\n{replication}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cuts the replication link of the master on `port` (as a network partition between it
    /// and its replica would, the cluster bus untouched) and returns the replica's port. The
    /// replica stops receiving writes and cannot reconnect (it is given a wrong `masterauth`,
    /// so each attempt fails at AUTH), yet may still be promoted when the master dies
    /// (`cluster-replica-validity-factor 0`: however old its data). Writes the master takes
    /// from here on are on the master only: what a failover loses.
    pub async fn cut_replication(&self, port: u16) -> io::Result<u16> {
        let replication: String = self
            .query(port, &["INFO", "replication"])
            .await
            .map_err(io::Error::other)?;
        let replica: u16 = replication
            .lines()
            .find(|line| line.starts_with("slave0:"))
            .and_then(|line| {
                line.split(',')
                    .find_map(|part| part.strip_prefix("port="))?
                    .parse()
                    .ok()
            })
            .ok_or_else(|| io::Error::other(format!("{port} has no replica:\n{replication}")))?;
        for words in [
            ["CONFIG", "SET", "masterauth", "not-the-password"].as_slice(),
            &["CONFIG", "SET", "cluster-replica-validity-factor", "0"],
        ] {
            let () = self.query(replica, words).await.map_err(io::Error::other)?;
        }
        let _: i64 = self
            .query(port, &["CLIENT", "KILL", "TYPE", "replica"])
            .await
            .map_err(io::Error::other)?;
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let state: String = self
                .query(replica, &["INFO", "replication"])
                .await
                .map_err(io::Error::other)?;
            if state.contains("master_link_status:down") {
                return Ok(replica);
            }
            if std::time::Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{replica} still replicates:\n{state}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A cluster client knowing every node.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        // The URLs are built from port numbers; they always parse.
        redis::cluster::ClusterClient::new(self.urls()).expect("valid cluster seed URLs")
    }

    /// Runs one command on the node on `port` (not through the cluster: no redirection).
    pub async fn query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        words: &[&str],
    ) -> redis::RedisResult<T> {
        let node = self
            .node(port)
            .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no such node")))?;
        let mut conn = node.client().get_multiplexed_async_connection().await?;
        let mut command = redis::cmd(words[0]);
        for word in &words[1..] {
            command.arg(*word);
        }
        command.query_async(&mut conn).await
    }

    /// Kills the node on `port` with SIGKILL (a crash); it stays down.
    pub fn kill_node(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|node| node.port == port) {
            node.kill();
        }
    }

    /// The node serving `port`.
    pub fn node(&self, port: u16) -> Option<&RedisServer> {
        self.nodes.iter().find(|node| node.port == port)
    }
}

/// The port of the master that `CLUSTER NODES` (one line per node: `id host:port@bus flags
/// master-id ping pong epoch link slot-ranges…`) shows serving `slot`, if it is not failed.
fn serving(nodes: &str, slot: u16) -> Option<u16> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.contains("master") || flags.contains("fail") {
            return None;
        }
        let owns = fields.iter().skip(8).any(|range| {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            match (first.parse::<u16>(), last.parse::<u16>()) {
                (Ok(first), Ok(last)) => (first..=last).contains(&slot),
                // `[slot->-node]` / `[slot-<-node]`: a slot in migration, not owned here.
                _ => false,
            }
        });
        if !owns {
            return None;
        }
        let address = fields.get(1)?.split('@').next()?;
        address.rsplit_once(':')?.1.parse().ok()
    })
}

fn replication_number(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}
