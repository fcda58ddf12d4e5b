//! The subscription task: the sale's stock events (from [`flash_client::StockEvents`], which
//! owns the Redis side: the channel, the liveness PING, reconnecting with backoff) into the
//! table, and a read-back of every known product whenever listening (re)starts, since what
//! was published meanwhile is lost.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use flash_client::{StockEvent, StockEvents, SubscriptionEvent};
use tokio::sync::watch;

use super::source::{EngineSource, StockSource};
use super::{Inner, lock};

/// Feeds the stream into the table until the hub is shut down or gone. A failed read-back
/// is retried every `retry_every`: until it succeeds, clients may hold values that will
/// not change.
pub(super) async fn run(
    weak: Weak<Inner>,
    source: Arc<EngineSource>,
    mut events: StockEvents,
    retry_every: Duration,
) {
    let Some(mut shutdown) = weak.upgrade().map(|inner| inner.shutdown.subscribe()) else {
        return;
    };
    let mut retry = tokio::time::interval(retry_every);
    retry.tick().await;
    let mut read_back_due = false;
    loop {
        tokio::select! {
            item = events.next() => {
                let Some(item) = item else {
                    // The subscription's task is gone (it cannot end otherwise while the
                    // stream lives): say so, so health and metrics stop reporting it live
                    // and local hints are taken again.
                    tracing::error!("hub: the stock event subscription ended");
                    if let Some(inner) = weak.upgrade() {
                        inner.set_live(false);
                    }
                    return;
                };
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                if inner.apply(item) {
                    drop(inner);
                    // Messages published meanwhile wait in the stream, and are recorded
                    // after the read-back's values, which they then correct.
                    read_back_due = !read_back(&weak, source.as_ref()).await;
                    retry.reset();
                } else if !inner.subscription_live() {
                    // Nothing to read back into until listening again: that read-back
                    // covers this one.
                    read_back_due = false;
                }
            }
            _ = retry.tick(), if read_back_due => {
                read_back_due = !read_back(&weak, source.as_ref()).await;
            }
            () = stopped(&mut shutdown) => return,
        }
    }
}

impl Inner {
    /// Takes one item of the stream; true when listening (re)started, so what may have been
    /// missed must be read back.
    fn apply(&self, item: SubscriptionEvent) -> bool {
        match item {
            SubscriptionEvent::Stock(event) => self.record_event(event),
            SubscriptionEvent::Malformed(payload) => self.record_malformed(&payload),
            SubscriptionEvent::Subscribed => {
                // Live before the read-back is sent: from here on a hint could be older than
                // a message, and messages are what the read-back is ordered against.
                self.set_live(true);
                return true;
            }
            SubscriptionEvent::Restored => {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!("hub: subscription restored");
                self.set_live(true);
                return true;
            }
            SubscriptionEvent::Lost(why) => {
                self.set_live(false);
                tracing::warn!(%why, "hub: subscription dropped; reconnecting");
            }
            SubscriptionEvent::Retrying { error, retry_in } => {
                tracing::warn!(%error, ?retry_in, "hub: cannot subscribe");
            }
        }
        false
    }

    pub(super) fn record_event(&self, event: StockEvent) {
        self.counters
            .events_received
            .fetch_add(1, Ordering::Relaxed);
        lock(&self.stock).record_event(event.sku, event.available);
    }

    fn record_malformed(&self, payload: &[u8]) {
        self.counters
            .events_received
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .events_malformed
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(payload = %String::from_utf8_lossy(payload), "hub: malformed stock message");
    }

    pub(super) fn set_live(&self, live: bool) {
        lock(&self.stock).subscription_live = live;
        self.counters
            .subscription_live
            .store(live, Ordering::Relaxed);
    }

    fn subscription_live(&self) -> bool {
        self.counters.subscription_live.load(Ordering::Relaxed)
    }
}

/// Reads every known product back (messages may have been published while nobody
/// listened) and broadcasts the ones that changed. False if the read failed (to be retried).
async fn read_back(weak: &Weak<Inner>, source: &EngineSource) -> bool {
    let (products, seq_at_send) = {
        let Some(inner) = weak.upgrade() else {
            return true;
        };
        let stock = lock(&inner.stock);
        let products: Vec<i64> = stock.products.keys().copied().collect();
        (products, stock.events_seq)
    };
    if products.is_empty() {
        return true;
    }
    match StockSource::available(source, &products).await {
        Ok(values) => {
            if let Some(inner) = weak.upgrade() {
                let values: Vec<(i64, Option<i64>)> = products.into_iter().zip(values).collect();
                lock(&inner.stock).apply_read_back(&values, seq_at_send, true);
            }
            true
        }
        Err(error) => {
            tracing::warn!(%error, "hub: read-back after (re)subscribing failed; will retry");
            false
        }
    }
}

/// Resolves once the hub is shut down (or gone). The borrowed value is dropped here: it is
/// not `Send` and must not live across the caller's awaits.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopped| *stopped).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::hub::tests::manual_hub;

    #[tokio::test]
    async fn malformed_messages_are_counted_and_skipped() {
        let hub = manual_hub(None, 16);
        let inner = &hub.inner;
        let event = StockEvent {
            sku: 14,
            available: 7,
        };
        assert!(!inner.apply(SubscriptionEvent::Stock(event)));
        assert!(!inner.apply(SubscriptionEvent::Malformed(b"not json".to_vec())));
        assert_eq!(hub.events_received(), 2);
        assert_eq!(hub.events_malformed(), 1);
        assert_eq!(hub.current(&[14]).await, vec![(14, 7)]);
    }

    #[tokio::test]
    async fn listening_again_is_counted_and_asks_for_a_read_back() {
        let hub = manual_hub(None, 16);
        let inner = &hub.inner;
        assert!(inner.apply(SubscriptionEvent::Subscribed));
        assert!(hub.subscription_live());
        assert_eq!(hub.reconnects(), 0);
        assert!(!inner.apply(SubscriptionEvent::Lost("gone".to_owned())));
        assert!(!hub.subscription_live());
        let retrying = SubscriptionEvent::Retrying {
            error: "refused".to_owned(),
            retry_in: Duration::from_millis(100),
        };
        assert!(!inner.apply(retrying));
        assert!(!hub.subscription_live());
        assert!(inner.apply(SubscriptionEvent::Restored));
        assert!(hub.subscription_live());
        assert_eq!(hub.reconnects(), 1);
    }
}
