//! [`ShardChannel`]: listening to one shard channel (SSUBSCRIBE) on the node that serves it,
//! a single server or the master owning the channel's slot in a Redis Cluster.
//!
//! Why by hand: redis-rs 1.8 has SSUBSCRIBE only on its cluster connection (RESP3, with a
//! resubscription of its own that says nothing when it happens, so a consumer could not
//! know when to read values back), and none on `aio::PubSub`, whose message stream drops
//! `smessage` frames. So this opens a plain multiplexed connection in RESP3 with a push
//! sender: SSUBSCRIBE is sent as an ordinary command (its `ssubscribe` confirmation is the
//! reply), messages and the server's own `sunsubscribe` arrive as pushes, and PING still
//! works on the subscribed connection.
//!
//! On a cluster the owner is found by asking: SSUBSCRIBE on a node that does not serve the
//! slot (another master, a replica) answers `MOVED <slot> <host:port>`, which names it.
//! A replica of the owner accepts the SSUBSCRIBE itself; its ROLE then names its master,
//! where the subscription moves (see [`Listening::master_if_replica`] for why). The last
//! owner is tried first next time, then every seed: after a failover the dead owner
//! refuses, its replica points at it until promoted, and a live node points at the promoted
//! replica once the cluster agrees.
//! Listening ends when the node drops the connection (killed, restarted) or stops serving
//! the slot (resharding, or a master demoted to replica: the server then unsubscribes its
//! shard subscribers with a `sunsubscribe` push); the caller then subscribes again.

use std::collections::VecDeque;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    ProtocolVersion, PushInfo, PushKind, RedisError, RedisResult, ServerErrorKind, Value,
};
use tokio::sync::mpsc;

use crate::connection::Deployment;
use crate::error::ClientError;

/// MOVED replies followed in one attempt: one is the normal case (asked a node that does
/// not serve the slot); more mean the nodes disagree during a failover, and the attempt is
/// better retried a moment later.
const MAX_REDIRECTIONS: usize = 3;

/// A shard channel and where to look for it.
pub(crate) struct ShardChannel {
    channel: String,
    nodes: Nodes,
}

enum Nodes {
    Single(ConnectionInfo),
    Cluster {
        seeds: Vec<ConnectionInfo>,
        /// The node that served the channel last time: tried first.
        owner: Option<ConnectionInfo>,
    },
}

/// One subscribed connection.
pub(crate) struct Listening {
    conn: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    channel: String,
    /// `host:port`, for messages.
    node: String,
}

/// What the connection heard.
#[derive(Debug)]
pub(crate) enum Heard {
    /// A message's payload.
    Message(Vec<u8>),
    /// Listening has ended: why.
    Lost(String),
}

impl ShardChannel {
    /// `redis_url` as `REDIS_URL` gives it (see [`Deployment`]).
    pub(crate) fn new(redis_url: &str, channel: String) -> Result<ShardChannel, ClientError> {
        let nodes = match Deployment::parse(redis_url)? {
            Deployment::Single(url) => Nodes::Single(url.into_connection_info()?),
            Deployment::Cluster(seeds) => Nodes::Cluster {
                seeds: seeds
                    .into_iter()
                    .map(IntoConnectionInfo::into_connection_info)
                    .collect::<RedisResult<_>>()?,
                owner: None,
            },
        };
        Ok(ShardChannel { channel, nodes })
    }

    /// Subscribes on the node serving the channel. `limit` bounds each node's connect and
    /// SSUBSCRIBE (on a cluster, several nodes may be tried in turn).
    pub(crate) async fn subscribe(&mut self, limit: Duration) -> RedisResult<Listening> {
        let (seeds, owner) = match &mut self.nodes {
            Nodes::Single(node) => return subscribe_on(node, &self.channel, limit).await,
            Nodes::Cluster { seeds, owner } => (seeds, owner),
        };
        // The last owner once: a dead one costs a connect attempt (a timeout, unreachable).
        let mut candidates: VecDeque<ConnectionInfo> = owner.iter().cloned().collect();
        candidates.extend(
            seeds
                .iter()
                .filter(|seed| {
                    owner
                        .as_ref()
                        .is_none_or(|owner| owner.addr() != seed.addr())
                })
                .cloned(),
        );
        let mut redirections = 0;
        let mut last_error = None;
        while let Some(node) = candidates.pop_front() {
            // Where this node sends us instead, if anywhere.
            let (error, redirected) = match subscribe_on(&node, &self.channel, limit).await {
                Ok(mut listening) => match listening.master_if_replica(&node).await {
                    Ok(None) => {
                        *owner = Some(node);
                        return Ok(listening);
                    }
                    Ok(Some(master)) => {
                        let error = RedisError::from((
                            ErrorKind::Client,
                            "the node is a replica of the channel's master",
                            format!("{} replicates {}", node.addr(), master.addr()),
                        ));
                        (error, Some(master))
                    }
                    Err(error) => (error, None),
                },
                Err(error) => {
                    let moved = if error.kind() == ErrorKind::Server(ServerErrorKind::Moved) {
                        moved_to(&node, &error)
                    } else {
                        None
                    };
                    (error, moved)
                }
            };
            if let Some(next) = redirected
                && redirections < MAX_REDIRECTIONS
            {
                redirections += 1;
                candidates.push_front(next);
            }
            last_error = Some(error);
        }
        Err(last_error.unwrap_or_else(|| (ErrorKind::Client, "no cluster seed nodes").into()))
    }
}

/// The node a MOVED reply names, with `asked`'s credentials and settings.
fn moved_to(asked: &ConnectionInfo, error: &RedisError) -> Option<ConnectionInfo> {
    let (address, _slot) = error.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    Some(same_settings_at(asked, host, port.parse().ok()?))
}

/// `asked`'s credentials and settings, at another node.
fn same_settings_at(asked: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    // Redis writes an IPv6 address bare in MOVED; the crate wants it without brackets too.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addr = match asked.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    asked.clone().set_addr(addr)
}

/// Connects to `node` in RESP3 and subscribes, within `limit`.
async fn subscribe_on(
    node: &ConnectionInfo,
    channel: &str,
    limit: Duration,
) -> RedisResult<Listening> {
    let name = node.addr().to_string();
    let attempt = async {
        let info = node.clone();
        let redis = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(redis))?;
        let (pushes_in, pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(limit))
            .set_response_timeout(Some(limit))
            .set_push_sender(pushes_in);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let _: Value = redis::cmd("SSUBSCRIBE")
            .arg(channel)
            .query_async(&mut conn)
            .await?;
        Ok(Listening {
            conn,
            pushes,
            channel: channel.to_owned(),
            node: name.clone(),
        })
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no SSUBSCRIBE {channel} on {name} within {limit:?}"),
        )
        .into()),
    }
}

impl Listening {
    /// The next message, or the end of listening. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Heard {
        loop {
            let Some(push) = self.pushes.recv().await else {
                return Heard::Lost(format!("the connection to {} closed", self.node));
            };
            match push.kind {
                PushKind::SMessage | PushKind::Message => {
                    // [channel, payload]; the connection listens to one channel.
                    if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                        return Heard::Message(payload);
                    }
                }
                PushKind::SUnsubscribe => {
                    return Heard::Lost(format!(
                        "{} no longer serves {} (its slot moved, or the node became a replica)",
                        self.node, self.channel
                    ));
                }
                PushKind::Disconnection => {
                    return Heard::Lost(format!("the connection to {} closed", self.node));
                }
                // The confirmation of our SSUBSCRIBE, or a kind this connection never asked for.
                _ => {}
            }
        }
    }

    /// On a cluster, a replica of the slot's master serves SSUBSCRIBE too (the master
    /// passes shard messages to its replicas over the cluster bus). Listening there is not
    /// enough: a master killed between a change and its (coalesced) message leaves the
    /// replica, once promoted, with the change and without the message, and a subscriber
    /// that never lost its connection would never read the value back. So the subscription
    /// belongs on the master: ROLE says whether `node` is one, and if not which it follows.
    async fn master_if_replica(
        &mut self,
        node: &ConnectionInfo,
    ) -> RedisResult<Option<ConnectionInfo>> {
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut self.conn).await?;
        let text = |value: Option<&Value>| match value {
            Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
            Some(Value::SimpleString(text)) => Some(text.clone()),
            _ => None,
        };
        // ["master", …] or ["slave", master_host, master_port, state, offset].
        if text(role.first()).as_deref() != Some("slave") {
            return Ok(None);
        }
        let host = text(role.get(1));
        let port = match role.get(2) {
            Some(Value::Int(port)) => u16::try_from(*port).ok(),
            _ => None,
        };
        match (host, port) {
            (Some(host), Some(port)) => Ok(Some(same_settings_at(node, &host, port))),
            _ => Err(RedisError::from((
                ErrorKind::Parse,
                "a ROLE reply without the master's address",
                format!("{role:?}"),
            ))),
        }
    }

    /// A PING on the subscribed connection (RESP3 allows commands there).
    pub(crate) async fn ping(&mut self) -> RedisResult<()> {
        let _: Value = redis::cmd("PING").query_async(&mut self.conn).await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn moved_names_the_owner_with_the_askers_credentials() {
        let asked = "redis://flash:secret@127.0.0.1:7000"
            .into_connection_info()
            .unwrap();
        let error = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "moved",
            "3999 127.0.0.1:7002".to_owned(),
        ));
        let owner = moved_to(&asked, &error).unwrap();
        assert_eq!(
            owner.addr(),
            &ConnectionAddr::Tcp("127.0.0.1".to_owned(), 7002)
        );
        assert_eq!(owner.redis_settings().password(), Some("secret"));
        assert_eq!(owner.redis_settings().username(), Some("flash"));
    }
}
