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
        redis::Value::Int(acked) => Ok(acked),
        other => Err(ClientError::Reply {
            command: "WAIT",
            detail: format!("{other:?}"),
        }),
    }
}
