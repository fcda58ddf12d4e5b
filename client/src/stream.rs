//! [`OrderStream`]: one sale's order stream read through a consumer group, as typed
//! [`OrderEntry`]s. The worker's only way to the stream: it names no key and sends no raw
//! stream command.
//!
//! A consumer group hands each entry to one consumer and keeps it pending there until it is
//! acknowledged, so an entry read but never acknowledged (its worker crashed) is read again:
//! by the same consumer from its own pending list, or by another that claims it once idle.

use std::collections::HashMap;
use std::time::Duration;

use flash_core::keys::SaleKeys;
use flash_core::model::OrderEntry;
use flash_core::names;
use flash_core::wire::DecodeError;
use redis::AsyncCommands;
use redis::Value;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};

use crate::client::FlashClient;
use crate::connection::FlashConnection;
use crate::durable::{Durability, promotable_replicas, wait_for_replicas};
use crate::error::ClientError;

/// One entry as delivered to this consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The entry's id in the stream (what is acknowledged).
    pub id: String,
    /// The order, or why the entry cannot be read (it belongs in the dead letters).
    pub entry: Result<OrderEntry, DecodeError>,
    /// The fields as read, by name: what a dead letter copies.
    pub fields: Vec<(String, String)>,
}

/// A sale's order stream, seen by one consumer of one group.
#[derive(Clone)]
pub struct OrderStream {
    conn: FlashConnection,
    orders: String,
    dead_letters: String,
    group: String,
    consumer: String,
}

impl OrderStream {
    /// The stream of `sale` for `consumer` in `group`, over `client`'s connection.
    pub fn new(client: &FlashClient, sale: &str, group: &str, consumer: &str) -> OrderStream {
        let keys = SaleKeys::new(sale);
        OrderStream {
            conn: client.connection(),
            orders: keys.orders(),
            dead_letters: keys.dead_letters(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
        }
    }

    /// Creates the group (reading from the stream's start, creating the stream if there is
    /// none yet); a group that exists already is fine.
    pub async fn create_group(&self) -> Result<(), ClientError> {
        let mut conn = self.conn.clone();
        let created: redis::RedisResult<()> = conn
            .xgroup_create_mkstream(&self.orders, &self.group, "0")
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Up to `count` entries never delivered to anyone, waiting up to `block` for the first
    /// (no wait when `None`).
    pub async fn read_new(
        &self,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Delivery>, ClientError> {
        self.read(">", count, block).await
    }

    /// Up to `count` entries delivered to this consumer and not acknowledged (what it held
    /// when it last stopped), oldest first.
    pub async fn read_own_pending(&self, count: usize) -> Result<Vec<Delivery>, ClientError> {
        self.read("0", count, None).await
    }

    async fn read(
        &self,
        from: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Delivery>, ClientError> {
        let mut options = StreamReadOptions::default()
            .group(&self.group, &self.consumer)
            .count(count);
        if let Some(block) = block {
            options = options.block(block.as_millis() as usize);
        }
        let mut conn = self.conn.clone();
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[&self.orders], &[from], &options)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(delivery)
            .collect())
    }

    /// Takes over up to `count` entries pending longer than `min_idle` in other consumers
    /// (presumed dead): they become this consumer's.
    pub async fn claim_idle(
        &self,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, ClientError> {
        let mut conn = self.conn.clone();
        let reply: StreamAutoClaimReply = conn
            .xautoclaim_options(
                &self.orders,
                &self.group,
                &self.consumer,
                min_idle.as_millis() as usize,
                "0-0",
                StreamAutoClaimOptions::default().count(count),
            )
            .await?;
        Ok(reply.claimed.into_iter().map(delivery).collect())
    }

    /// How often each of these entries (this consumer's, ascending ids) has been delivered,
    /// in one XPENDING over their id range.
    pub async fn deliveries(&self, ids: &[&str]) -> Result<HashMap<String, usize>, ClientError> {
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(HashMap::new());
        };
        let mut conn = self.conn.clone();
        let reply: StreamPendingCountReply = conn
            .xpending_consumer_count(
                &self.orders,
                &self.group,
                *first,
                *last,
                ids.len(),
                &self.consumer,
            )
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|pending| (pending.id, pending.times_delivered))
            .collect())
    }

    /// Claims this consumer's own pending entries again (XCLAIM JUSTID: no delivery counted,
    /// nothing changes but their idle time). It is replicated, so a WAIT on this connection
    /// afterwards covers the entries.
    pub async fn reclaim(&self, ids: &[&str]) -> Result<(), ClientError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut xclaim = redis::cmd("XCLAIM");
        xclaim
            .arg(&self.orders)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(ids)
            .arg("JUSTID");
        let mut conn = self.conn.clone();
        conn.run_at_key(&self.orders, &xclaim).await?;
        Ok(())
    }

    /// `WAIT replicas timeout` on the stream's node, over the connection that read it: how
    /// many replicas have everything this connection wrote (its reads and claims of the
    /// group included, and so every entry they returned).
    pub async fn wait_replicated(&self, durability: Durability) -> Result<i64, ClientError> {
        wait_for_replicas(&mut self.conn.clone(), &self.orders, durability).await
    }

    /// How many replicas could take over from the stream's master if it died now: on a
    /// cluster, its replicas in the cluster's view not flagged failed (connected to it or
    /// not: a replica cut off from its master can still be promoted, with what it had); on
    /// a single server, the replicas connected to it (there is no failover without a cluster).
    pub async fn promotable_replicas(&self) -> Result<usize, ClientError> {
        promotable_replicas(&mut self.conn.clone(), &self.orders).await
    }

    /// Acknowledges entries: the group forgets them.
    pub async fn ack(&self, ids: &[&str]) -> Result<(), ClientError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: i64 = conn.xack(&self.orders, &self.group, ids).await?;
        Ok(())
    }

    /// Copies an entry that cannot be processed to the sale's dead letters, with its id and
    /// the reason, where an operator will see it. The caller still acknowledges it.
    pub async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), ClientError> {
        let mut fields = delivery.fields.clone();
        fields.sort();
        fields.push((names::dead::SOURCE_ID.to_string(), delivery.id.clone()));
        fields.push((names::dead::REASON.to_string(), reason.to_owned()));
        let mut conn = self.conn.clone();
        let _: String = conn.xadd(&self.dead_letters, "*", &fields).await?;
        Ok(())
    }
}

/// Decodes one entry as read.
fn delivery(entry: StreamId) -> Delivery {
    let fields: Vec<(String, String)> = entry
        .map
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::BulkString(bytes) => Some((name, String::from_utf8_lossy(&bytes).into_owned())),
            Value::SimpleString(text) => Some((name, text)),
            _ => None,
        })
        .collect();
    let decoded = OrderEntry::from_fields(|name| {
        fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    });
    Delivery {
        id: entry.id,
        entry: decoded,
        fields,
    }
}
