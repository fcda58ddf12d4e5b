//! [`StockEvents`]: a sale's stock events (the engine's shard channel) as typed items, on
//! a subscription that keeps itself alive, on one server or a Redis Cluster.
//!
//! ```text
//! engine ──SPUBLISH {"sku":14,"available":7}──▶ subscription task ──▶ Subscribed
//!                                               │ (its own connection, Stock(StockEvent)
//!                                               │ SSUBSCRIBE on the    Malformed(payload)
//!                                               │ node serving the     Lost(why)
//!                                               │ sale's slot)         Retrying{…}
//!                                               │ PING every           Restored
//!                                               ▼ liveness_interval
//!                              drop or slot gone ─▶ find the owner, subscribe again with backoff
//! ```
//!
//! Pub/sub keeps nothing: a message published while nobody listens is gone. So the stream
//! says when listening (re)starts, [`StockEvent`]s after that item were published after it,
//! and a consumer that must not miss a change reads current values (FLASH.AVAILABLE) once it
//! sees [`SubscriptionEvent::Subscribed`] or [`SubscriptionEvent::Restored`]; messages then
//! published arrive after that item and are at least as new as the read.
//!
//! The channel is a shard channel (the engine publishes with SPUBLISH), in the slot of the
//! sale's hash tag: on a cluster, only the shard serving the sale carries its messages, and
//! the subscription follows that shard's master (see [`crate::shard_channel`]): after a
//! failover or a slot moved elsewhere it says `Lost`, finds the new owner and says
//! `Restored`. On a single server a shard channel is just a channel.
//!
//! The task pings the connection every `liveness_interval`: a half-open socket (a cable
//! pulled, a NAT forgetting us) never ends the message stream, an unanswered PING does. It
//! runs on its own, whether or not the consumer is reading, and stops when [`StockEvents`]
//! is dropped.

use std::time::Duration;

use flash_core::keys::SaleKeys;
use flash_core::wire::StockEvent;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::ClientError;
use crate::shard_channel::{Heard, Listening, ShardChannel};

/// How the subscription keeps itself alive. The defaults suit production; tests shrink them.
#[derive(Clone, Debug)]
pub struct SubscriptionSettings {
    /// First wait before subscribing again after a drop; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// A PING on the subscription this often: a connection that does not answer within
    /// `connect_timeout` is replaced.
    pub liveness_interval: Duration,
    /// Bound on connecting + SSUBSCRIBE to one node, and on a liveness PING.
    pub connect_timeout: Duration,
}

impl Default for SubscriptionSettings {
    fn default() -> SubscriptionSettings {
        SubscriptionSettings {
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            liveness_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// One item of the stream, in the order things happened on the subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// Listening, the first time (always the first item). Changes published before it are
    /// not in the stream.
    Subscribed,
    /// Listening again after [`SubscriptionEvent::Lost`]: changes published in between
    /// were missed.
    Restored,
    /// A SKU's units changed.
    Stock(StockEvent),
    /// A message on the channel that is not a stock event (someone else published there):
    /// the payload as received.
    Malformed(Vec<u8>),
    /// The connection closed, stopped answering PING, or its node stopped serving the
    /// sale's slot (a failover, resharding); the task subscribes again.
    Lost(String),
    /// An attempt to subscribe again failed; the next one comes after `retry_in`.
    Retrying { error: String, retry_in: Duration },
}

/// A sale's stock events. Dropping it stops the subscription.
pub struct StockEvents {
    items: mpsc::UnboundedReceiver<SubscriptionEvent>,
    task: AbortHandle,
}

impl Drop for StockEvents {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StockEvents {
    /// Subscribes to `sale`'s channel (`redis_url` as `REDIS_URL` gives it: one server or a
    /// cluster's seeds) on a connection of its own and starts the task that keeps it alive.
    /// Fails if this first subscription cannot be made (a bad URL, Redis down; on a cluster
    /// each node tried may take `connect_timeout`); later drops are retried for ever.
    /// Must be called inside a Tokio runtime.
    pub async fn subscribe(
        redis_url: &str,
        sale: &str,
        settings: SubscriptionSettings,
    ) -> Result<StockEvents, ClientError> {
        let mut channel = ShardChannel::new(redis_url, SaleKeys::new(sale).channel())?;
        let first = channel.subscribe(settings.connect_timeout).await?;
        // Unbounded: the connection's own message queue is unbounded too, and the task must
        // keep pinging while the consumer is busy (a read-back, say), not wait for room.
        let (sender, items) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(channel, settings, first, sender));
        Ok(StockEvents {
            items,
            task: task.abort_handle(),
        })
    }

    /// The next item; waits for one. Cancel-safe (an item is never lost to a `select!`).
    /// `None` only if the task has stopped, which it does not while `self` lives.
    pub async fn next(&mut self) -> Option<SubscriptionEvent> {
        self.items.recv().await
    }
}

/// Up to a quarter more: edge processes that lost Redis together do not all come back in
/// the same millisecond.
fn with_jitter(wait: Duration) -> Duration {
    wait.mul_f64(1.0 + rand::random::<f64>() / 4.0)
}

/// The task: forward messages; on a drop, subscribe again with backoff. Ends when the
/// receiver is gone.
async fn run(
    mut channel: ShardChannel,
    settings: SubscriptionSettings,
    first: Listening,
    items: mpsc::UnboundedSender<SubscriptionEvent>,
) {
    if items.send(SubscriptionEvent::Subscribed).is_err() {
        return;
    }
    let mut connected = Some(first);
    loop {
        let listening = match connected.take() {
            Some(listening) => listening,
            None => match resubscribe(&mut channel, &settings, &items).await {
                Some(listening) => listening,
                None => return,
            },
        };
        let lost = forward(listening, &settings, &items).await;
        let Some(lost) = lost else {
            return;
        };
        if items.send(SubscriptionEvent::Lost(lost)).is_err() {
            return;
        }
        // A dropped connection usually means Redis restarts or a failover has begun: give it
        // a moment.
        tokio::time::sleep(with_jitter(settings.reconnect_min)).await;
    }
}

/// Subscribes again, waiting 0.1 s doubling to 5 s (by default) between attempts, and says
/// so with `Restored`; `None` once nobody listens.
async fn resubscribe(
    channel: &mut ShardChannel,
    settings: &SubscriptionSettings,
    items: &mpsc::UnboundedSender<SubscriptionEvent>,
) -> Option<Listening> {
    let mut backoff = settings.reconnect_min;
    loop {
        match channel.subscribe(settings.connect_timeout).await {
            Ok(listening) => {
                items.send(SubscriptionEvent::Restored).ok()?;
                return Some(listening);
            }
            Err(error) => {
                let retrying = SubscriptionEvent::Retrying {
                    error: error.to_string(),
                    retry_in: backoff,
                };
                items.send(retrying).ok()?;
                tokio::time::sleep(with_jitter(backoff)).await;
                backoff = (backoff * 2).min(settings.reconnect_max);
            }
        }
    }
}

/// Forwards the connection's messages until listening ends or the connection stops
/// answering PING (`Some(why)`) or nobody listens any more (`None`).
async fn forward(
    mut listening: Listening,
    settings: &SubscriptionSettings,
    items: &mpsc::UnboundedSender<SubscriptionEvent>,
) -> Option<String> {
    let mut liveness = tokio::time::interval(settings.liveness_interval);
    liveness.tick().await;
    loop {
        tokio::select! {
            heard = listening.next() => {
                let payload = match heard {
                    Heard::Message(payload) => payload,
                    Heard::Lost(why) => return Some(why),
                };
                let item = match StockEvent::parse(&payload) {
                    Some(event) => SubscriptionEvent::Stock(event),
                    None => SubscriptionEvent::Malformed(payload),
                };
                items.send(item).ok()?;
            }
            _ = liveness.tick() => {
                match tokio::time::timeout(settings.connect_timeout, listening.ping()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return Some(format!("PING failed: {error}")),
                    Err(_) => {
                        return Some(format!(
                            "PING unanswered within {:?}",
                            settings.connect_timeout
                        ));
                    }
                }
            }
            () = items.closed() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_adds_up_to_a_quarter() {
        let wait = Duration::from_millis(400);
        for _ in 0..1000 {
            let jittered = with_jitter(wait);
            assert!(jittered >= wait, "{jittered:?}");
            assert!(jittered <= Duration::from_millis(500), "{jittered:?}");
        }
    }
}
