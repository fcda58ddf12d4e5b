//! [`DurableWrites`]: checkout and buy acknowledged only once a replica has them.
//!
//! Redis replication is asynchronous: a master that acknowledged a checkout and died before
//! its replica received it takes the order with it, and the promoted replica has never heard
//! of it. `WAIT numreplicas timeout` after the write closes that window: it returns once that
//! many replicas acknowledged everything the *connection* wrote, or at the timeout with how
//! many did. Because WAIT counts the connection's own writes (and blocks the connection while
//! it waits), each durable write takes a connection of its own from a small pool, writes,
//! WAITs on the same connection (on a cluster, on the sale's master: the node the write went
//! to) and gives it back; the shared multiplexed connection of [`FlashClient`] is never held
//! up.
//!
//! What it guarantees: an `Ok` order had reached `replicas` replicas when it was returned,
//! so a failover promoting one of them keeps it. A [`ClientError::NotDurable`] order exists
//! on the master but may be lost if the master dies before its replicas catch up; the caller
//! says so (the edge answers 503). A repeated checkout of an order already made writes
//! nothing, so its WAIT has nothing new to wait for.

use std::sync::Arc;
use std::time::Duration;

use flash_core::Sku;
use flash_core::keys::SaleKeys;
use redis::Value;
use tokio::sync::{Mutex, Semaphore};

use crate::client::FlashClient;
use crate::connection::FlashConnection;
use crate::error::ClientError;
use crate::replies::Order;

/// How many replicas must have a write, and how long to wait for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability {
    pub replicas: u32,
    pub timeout: Duration,
}

/// A pool of connections for durable writes (clones share it).
#[derive(Clone)]
pub struct DurableWrites {
    durability: Durability,
    idle: Arc<Mutex<Vec<FlashClient>>>,
    permits: Arc<Semaphore>,
}

impl DurableWrites {
    /// `connections` clients of their own to `url` (each a connection, or a connection per
    /// node of a cluster): at most that many durable writes wait at once.
    pub async fn connect(
        url: &str,
        connections: usize,
        durability: Durability,
    ) -> Result<DurableWrites, ClientError> {
        let mut idle = Vec::with_capacity(connections);
        for _ in 0..connections.max(1) {
            let conn = FlashConnection::connect_unretried(url).await?;
            idle.push(FlashClient::with_connection(conn).await?);
        }
        Ok(DurableWrites {
            durability,
            permits: Arc::new(Semaphore::new(idle.len())),
            idle: Arc::new(Mutex::new(idle)),
        })
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// FLASH.CHECKOUT, then WAIT for the replicas.
    pub async fn checkout(&self, sale: &str, cart: &str, user: &str) -> Result<Order, ClientError> {
        self.with_client(sale, |client| async move {
            client.checkout(sale, cart, user).await
        })
        .await
    }

    /// FLASH.BUY, then WAIT for the replicas.
    pub async fn buy(
        &self,
        sale: &str,
        order: &str,
        user: &str,
        sku: Sku,
        qty: i64,
    ) -> Result<Order, ClientError> {
        self.with_client(sale, |client| async move {
            client.buy(sale, order, user, sku, qty).await
        })
        .await
    }

    /// Runs `write` on a connection of its own, then WAITs on it (routed by the sale's key,
    /// so on a cluster to the master the write went to).
    async fn with_client<F, Fut>(&self, sale: &str, write: F) -> Result<Order, ClientError>
    where
        F: FnOnce(FlashClient) -> Fut,
        Fut: std::future::Future<Output = Result<Order, ClientError>>,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ClientError::Reply {
                command: "WAIT",
                detail: "the durable-write pool is closed".into(),
            })?;
        let Some(client) = self.idle.lock().await.pop() else {
            return Err(ClientError::Reply {
                command: "WAIT",
                detail: "no idle connection under a permit".into(),
            });
        };
        let result = self.write_and_wait(&client, sale, write).await;
        self.idle.lock().await.push(client);
        result
    }

    async fn write_and_wait<F, Fut>(
        &self,
        client: &FlashClient,
        sale: &str,
        write: F,
    ) -> Result<Order, ClientError>
    where
        F: FnOnce(FlashClient) -> Fut,
        Fut: std::future::Future<Output = Result<Order, ClientError>>,
    {
        let order = write(client.clone()).await?;
        let acked = match wait_for_replicas(
            &mut client.connection(),
            &SaleKeys::new(sale).sale(),
            self.durability,
        )
        .await
        {
            Ok(acked) => acked,
            // The master did not answer the WAIT (it died under it, say): the order exists
            // and nothing is known of its copies. Never asked again: see
            // `FlashConnection::connect_unretried`.
            Err(ClientError::Redis(_)) => 0,
            Err(other) => return Err(other),
        };
        if acked < i64::from(self.durability.replicas) {
            return Err(ClientError::NotDurable {
                order: Box::new(order),
                acked,
                wanted: self.durability.replicas,
            });
        }
        Ok(order)
    }
}

/// `WAIT replicas timeout` on the master serving `key`, over `conn`: how many replicas have
/// everything this connection wrote to that node (at most `replicas`; fewer at the timeout).
pub(crate) async fn wait_for_replicas(
    conn: &mut FlashConnection,
    key: &str,
    durability: Durability,
) -> Result<i64, ClientError> {
    let mut wait = redis::cmd("WAIT");
    let timeout_ms = u64::try_from(durability.timeout.as_millis()).unwrap_or(u64::MAX);
    wait.arg(durability.replicas).arg(timeout_ms);
    match conn.run_at_key(key, &wait).await? {
        Value::Int(acked) => Ok(acked),
        other => Err(ClientError::Reply {
            command: "WAIT",
            detail: format!("{other:?}"),
        }),
    }
}

/// How many replicas could take over from the master serving `key` if it died now: on a
/// cluster, its replicas in the cluster's view not flagged failed (connected to it or not: a
/// replica cut off from its master can still be promoted, with what it had); on a single
/// server, the replicas connected to it (there is no failover without a cluster).
pub(crate) async fn promotable_replicas(
    conn: &mut FlashConnection,
    key: &str,
) -> Result<usize, ClientError> {
    if conn.is_cluster() {
        let nodes = conn
            .run_at_key(key, redis::cmd("CLUSTER").arg("NODES"))
            .await?;
        Ok(replicas_in_cluster_nodes(&text("CLUSTER NODES", nodes)?))
    } else {
        let info = conn
            .run_at_key(key, redis::cmd("INFO").arg("replication"))
            .await?;
        Ok(text("INFO", info)?
            .lines()
            .find_map(|line| line.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }
}

/// A reply that is text (bulk, or RESP3's verbatim string).
fn text(command: &'static str, reply: Value) -> Result<String, ClientError> {
    match reply {
        Value::BulkString(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Value::VerbatimString { text, .. } => Ok(text),
        other => Err(ClientError::Reply {
            command,
            detail: format!("{other:?}"),
        }),
    }
}

/// The replicas of the node that answered `CLUSTER NODES` (the line flagged `myself`) that
/// are not flagged failed. Each line: `id address flags master-id …`.
fn replicas_in_cluster_nodes(nodes: &str) -> usize {
    let lines: Vec<Vec<&str>> = nodes
        .lines()
        .map(|line| line.split_whitespace().collect())
        .filter(|fields: &Vec<&str>| fields.len() >= 4)
        .collect();
    let Some(me) = lines
        .iter()
        .find(|fields| fields[2].split(',').any(|flag| flag == "myself"))
        .map(|fields| fields[0])
    else {
        return 0;
    };
    lines
        .iter()
        .filter(|fields| fields[3] == me)
        .filter(|fields| !fields[2].split(',').any(|flag| flag == "fail"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::replicas_in_cluster_nodes;

    #[test]
    fn counts_the_replicas_of_myself_that_have_not_failed() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b1 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a2 127.0.0.1:7004@17004 slave a1 0 0 1 connected
a3 127.0.0.1:7007@17007 slave,fail a1 0 0 1 disconnected
a4 127.0.0.1:7008@17008 slave,fail? a1 0 0 1 connected
b2 127.0.0.1:7005@17005 slave b1 0 0 2 connected
";
        assert_eq!(
            replicas_in_cluster_nodes(nodes),
            2,
            "a2 and a4 (only suspected)"
        );
        assert_eq!(replicas_in_cluster_nodes(""), 0);
        let alone = "a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-16383\n";
        assert_eq!(replicas_in_cluster_nodes(alone), 0);
    }
}
