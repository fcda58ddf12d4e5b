//! [`FlashConnection`]: one connection type for both deployments, a single redis-server or a
//! Redis Cluster, chosen by the one setting (`REDIS_URL`).
//!
//! - `redis://host:port` (or `rediss://`, `unix://`, anything `redis::Client::open` takes):
//!   one server, through a [`ConnectionManager`] that reconnects after a drop.
//! - `redis+cluster://host:port,host:port,…`: a Redis Cluster, given by seed nodes (any
//!   few of its nodes; the client learns the rest from `CLUSTER SLOTS`). A user and password
//!   before the hosts (`redis+cluster://user:secret@h1:7000,h2:7001`) apply to every node.
//!   The client routes each command by its key's slot and follows MOVED and ASK, waits and
//!   retries TRYAGAIN and CLUSTERDOWN, and refreshes the slot map after a failover.
//!
//! Both variants are `Clone` (clones share one multiplexed connection per node) and
//! implement [`ConnectionLike`], so plain Redis commands run on either as they are.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Cmd, RedisFuture, RedisResult, Value};

use crate::error::ClientError;

/// The scheme that makes `REDIS_URL` a list of cluster seed nodes.
pub const CLUSTER_SCHEME: &str = "redis+cluster://";

/// How long connecting to a node, and one reply, may take. A reply may take up to 5 s (the
/// crate's default, 0.5 s, is the worker's XREADGROUP BLOCK time and would cut it off).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// On a cluster, one call with its redirections and waits (TRYAGAIN, a failover's
/// CLUSTERDOWN) may take this long in all: a failover takes about `cluster-node-timeout`
/// plus an election, and the caller would rather wait it out than fail.
const CLUSTER_OVERALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Retries of one cluster call, waits between them (ms, doubling from the crate's 10 ms
/// factor, jittered between the two bounds). The crate's defaults (16 retries, waits up to
/// 11 minutes) outlast any caller; these span about the overall timeout.
const CLUSTER_RETRIES: u32 = 10;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 100;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 2_000;

/// What `REDIS_URL` says: one server, or a cluster's seed nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deployment {
    Single(String),
    /// Seed node URLs (`redis://[user:password@]host:port`), one per node given.
    Cluster(Vec<String>),
}

impl Deployment {
    /// Reads the setting. A cluster form with no host, a host without a port, or a path
    /// (a cluster has one database) is refused with what to write instead.
    pub fn parse(url: &str) -> Result<Deployment, ClientError> {
        let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) else {
            return Ok(Deployment::Single(url.to_owned()));
        };
        let refuse = |why: String| {
            ClientError::Redis(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid cluster REDIS_URL",
                format!("{why}; expected {CLUSTER_SCHEME}[user:password@]host:port,host:port,…"),
            )))
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // The credentials end at the last '@': a host never contains one.
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (Some(auth), hosts),
            None => (None, rest),
        };
        if hosts.contains('/') || hosts.contains('?') {
            return Err(refuse(format!(
                "{hosts:?} has a path or options (a cluster has one database)"
            )));
        }
        let mut seeds = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let port_ok = host
                .rsplit_once(':')
                .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(refuse(format!("seed node {host:?} is not host:port")));
            }
            seeds.push(match auth {
                Some(auth) => format!("redis://{auth}@{host}"),
                None => format!("redis://{host}"),
            });
        }
        Ok(Deployment::Cluster(seeds))
    }
}

/// A connection to a single server or to a cluster; cheap to clone.
#[derive(Clone)]
pub enum FlashConnection {
    Single(ConnectionManager),
    Cluster(ClusterLink),
}

/// A cluster connection that is made anew when it stops answering.
///
/// The crate's cluster connection runs its routing in a task of its own; calls are handed to
/// it and answered through it. After a failover under load we have seen that task stop
/// taking calls for good: every call timed out for minutes while the promoted master, which
/// it had already reached once, answered others at once (`cluster_failover`'s crowd, once in
/// a few full runs). Calls that time out twice in a row, with no answer between them, are
/// taken as that: the link connects again from the seed nodes (in the background; calls
/// go on over the old connection until the new one is there). Clones share the link.
#[derive(Clone)]
pub struct ClusterLink {
    shared: Arc<SharedLink>,
}

struct SharedLink {
    /// Where a new connection comes from: the seed nodes and the settings.
    client: ClusterClient,
    state: Mutex<LinkState>,
}

struct LinkState {
    conn: ClusterConnection,
    health: LinkHealth,
}

/// What the calls over one link said lately, and whether it is being made anew.
#[derive(Debug, Default)]
struct LinkHealth {
    /// Bumped each time the link is made anew: an outcome of a call over an older
    /// connection says nothing of the current one.
    generation: u64,
    /// The last call over this connection timed out.
    timed_out: bool,
    rebuilding: bool,
}

impl LinkHealth {
    /// Records a call's outcome over connection `generation`; true when the link must be
    /// made anew now (and this caller is the one to do it).
    fn record(&mut self, generation: u64, timed_out: bool) -> bool {
        if generation != self.generation {
            return false;
        }
        if !timed_out {
            self.timed_out = false;
            return false;
        }
        if self.timed_out && !self.rebuilding {
            self.rebuilding = true;
            return true;
        }
        self.timed_out = true;
        false
    }

    /// The new connection is in place.
    fn rebuilt(&mut self) {
        self.generation += 1;
        self.timed_out = false;
        self.rebuilding = false;
    }
}

impl ClusterLink {
    async fn connect(client: ClusterClient) -> RedisResult<ClusterLink> {
        let conn = client.get_async_connection().await?;
        Ok(ClusterLink {
            shared: Arc::new(SharedLink {
                client,
                state: Mutex::new(LinkState {
                    conn,
                    health: LinkHealth::default(),
                }),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current connection and its generation.
    fn current(&self) -> (ClusterConnection, u64) {
        let state = self.lock();
        (state.conn.clone(), state.health.generation)
    }

    /// Runs `call` over the current connection and watches its outcome.
    async fn run<T, F, Fut>(&self, call: F) -> RedisResult<T>
    where
        F: FnOnce(ClusterConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let (conn, generation) = self.current();
        let result = call(conn).await;
        let timed_out = result.as_ref().is_err_and(redis::RedisError::is_timeout);
        if self.lock().health.record(generation, timed_out) {
            let link = self.clone();
            tokio::spawn(async move { link.rebuild().await });
        }
        result
    }

    async fn rebuild(&self) {
        match self.shared.client.get_async_connection().await {
            Ok(conn) => {
                let mut state = self.lock();
                state.conn = conn;
                state.health.rebuilt();
                tracing::warn!("redis cluster: calls kept timing out; connected anew");
            }
            Err(error) => {
                // Another pair of timeouts will try again.
                let mut state = self.lock();
                state.health.rebuilding = false;
                tracing::warn!(%error, "redis cluster: cannot connect anew");
            }
        }
    }
}

impl From<ConnectionManager> for FlashConnection {
    fn from(conn: ConnectionManager) -> FlashConnection {
        FlashConnection::Single(conn)
    }
}

impl FlashConnection {
    /// Connects as `REDIS_URL` says (see the module's documentation).
    ///
    /// A single server's connection is managed: after Redis restarts or the link drops, the
    /// calls in flight fail and the next ones reconnect. A cluster connection keeps one
    /// connection per node, reconnects to a node that dropped, and re-reads the slot map
    /// when a node answers MOVED or a master stops answering.
    pub async fn connect(url: &str) -> Result<FlashConnection, ClientError> {
        FlashConnection::connect_waiting(url, RESPONSE_TIMEOUT).await
    }

    /// [`FlashConnection::connect`] for calls that wait on the server by design (`XREAD
    /// BLOCK`): a reply may take `response_timeout` before the call fails. Give such calls a
    /// connection of their own: a blocked call holds up every call behind it on its node.
    pub async fn connect_waiting(
        url: &str,
        response_timeout: Duration,
    ) -> Result<FlashConnection, ClientError> {
        FlashConnection::open(url, response_timeout, true).await
    }

    /// [`FlashConnection::connect`] whose calls the cluster client never retries: a call
    /// that meets a dead node or a redirection fails instead of running again elsewhere.
    /// For a write followed by `WAIT` ([`crate::DurableWrites`]): WAIT counts what its own
    /// connection wrote, so a WAIT retried on a new connection (after the master died under
    /// it) counts nothing of ours and would answer "replicated" at once.
    pub async fn connect_unretried(url: &str) -> Result<FlashConnection, ClientError> {
        FlashConnection::open(url, RESPONSE_TIMEOUT, false).await
    }

    async fn open(
        url: &str,
        response_timeout: Duration,
        retried: bool,
    ) -> Result<FlashConnection, ClientError> {
        match Deployment::parse(url)? {
            Deployment::Single(url) => {
                // A failed call is not sent again here: the manager reconnects for the next.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(2);
                let client = redis::Client::open(url)?;
                Ok(ConnectionManager::new_with_config(client, config)
                    .await?
                    .into())
            }
            Deployment::Cluster(seeds) => {
                let client = ClusterClientBuilder::new(seeds)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(response_timeout)
                    // Room for a failover's retries on top of one full wait.
                    .overall_response_timeout(Some(
                        CLUSTER_OVERALL_TIMEOUT.max(response_timeout + CLUSTER_OVERALL_TIMEOUT / 2),
                    ))
                    .retries(if retried { CLUSTER_RETRIES } else { 0 })
                    .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                    .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                    .build()?;
                Ok(FlashConnection::Cluster(
                    ClusterLink::connect(client).await?,
                ))
            }
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, FlashConnection::Cluster(_))
    }

    /// Runs `cmd` on the master serving `key`'s slot (on a single server: there), whatever
    /// the command's own keys: e.g. SCRIPT LOAD on the node that answered NOSCRIPT for a
    /// script run on that key.
    pub async fn run_at_key(&mut self, key: &str, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            FlashConnection::Single(conn) => conn.req_packed_command(cmd).await,
            FlashConnection::Cluster(link) => {
                let route = Route::with_key(key, SlotAddr::Master);
                link.run(|mut conn| async move {
                    conn.route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await
                })
                .await
            }
        }
    }

    /// Runs `cmd` on every master (on a single server: once); one reply per master.
    pub async fn run_on_masters(&mut self, cmd: &Cmd) -> RedisResult<Vec<Value>> {
        match self {
            FlashConnection::Single(conn) => Ok(vec![conn.req_packed_command(cmd).await?]),
            FlashConnection::Cluster(link) => {
                // No response policy: the crate answers a map of node address → reply.
                let replies = link
                    .run(|mut conn| async move {
                        conn.route_command(
                            cmd.clone(),
                            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                        )
                        .await
                    })
                    .await?;
                match replies {
                    Value::Map(pairs) => Ok(pairs.into_iter().map(|(_, reply)| reply).collect()),
                    other => Ok(vec![other]),
                }
            }
        }
    }
}

impl ConnectionLike for FlashConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            FlashConnection::Single(conn) => conn.req_packed_command(cmd),
            FlashConnection::Cluster(link) => Box::pin(
                link.run(move |mut conn| async move { conn.req_packed_command(cmd).await }),
            ),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            FlashConnection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            FlashConnection::Cluster(link) => Box::pin(link.run(move |mut conn| async move {
                conn.req_packed_commands(pipeline, offset, count).await
            })),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            FlashConnection::Single(conn) => conn.get_db(),
            FlashConnection::Cluster(link) => link.current().0.get_db(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn two_timeouts_in_a_row_make_the_link_anew_once() {
        let mut health = LinkHealth::default();
        assert!(!health.record(0, true), "one timeout is a slow call");
        assert!(!health.record(0, false), "an answer clears it");
        assert!(!health.record(0, true));
        assert!(health.record(0, true), "two in a row: connect anew");
        assert!(!health.record(0, true), "only one caller rebuilds");
        health.rebuilt();
        assert_eq!(health.generation, 1);
        assert!(
            !health.record(0, true) && !health.record(0, true),
            "calls over the old connection say nothing of the new one"
        );
        assert!(!health.record(1, true));
        assert!(health.record(1, true));
    }

    #[test]
    fn a_plain_url_is_one_server() {
        assert_eq!(
            Deployment::parse("redis://127.0.0.1:6379/2").unwrap(),
            Deployment::Single("redis://127.0.0.1:6379/2".into())
        );
    }

    #[test]
    fn the_cluster_form_lists_seed_nodes_with_their_credentials() {
        assert_eq!(
            Deployment::parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7001/").unwrap(),
            Deployment::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7001".into()
            ])
        );
        assert_eq!(
            Deployment::parse("redis+cluster://flash:secret@a:1,b:2").unwrap(),
            Deployment::Cluster(vec![
                "redis://flash:secret@a:1".into(),
                "redis://flash:secret@b:2".into()
            ])
        );
    }

    #[test]
    fn a_cluster_form_without_ports_or_with_a_database_is_refused() {
        for url in [
            "redis+cluster://",
            "redis+cluster://a:1,b",
            "redis+cluster://a:1,,b:2",
            "redis+cluster://a:1/3",
            "redis+cluster://:7000",
        ] {
            assert!(Deployment::parse(url).is_err(), "{url} was taken");
        }
    }
}
