//! Live stock: one Redis subscription per edge process, coalesced per product, fanned out to
//! every WebSocket client of the process.
//!
//! ```text
//! engine ──SPUBLISH {"sku":14,"available":7}──▶ flash_client::StockEvents ──▶ subscription task
//!                                                               │ record: latest[14] = 7, dirty
//!                 ticker (every 50 ms, a thread of its own) ◀──┘
//!                   │ one StockUpdate per tick: every product changed since the last tick,
//!                   │ its JSON text built once
//!                   ▼
//!      broadcast (bounded: `update_backlog` ticks) ──▶ one receiver per WebSocket session
//! ```
//!
//! Files: `table.rs` (latest values, dirty products, sequence numbers; the tick and
//! snapshot types), `subscription.rs` (stock events into the table, read-backs), `source.rs`
//! (FLASH.AVAILABLE for values pub/sub has not told), `ticker.rs` (the tick thread),
//! `counters.rs` (figures for metrics and health). Admission of WebSocket clients per
//! address is [`crate::limits::connections`]'s.
//!
//! - **Coalescing**: a product changing 40 times within one tick costs each client one frame,
//!   carrying the last value. The JSON text of a product is made once per tick and shared
//!   (reference counted) by every client, so 10,000 clients cost 10,000 frame writes, not
//!   10,000 serialisations.
//! - **Overload**: the ticker is an OS thread, not a task: it keeps its 50 ms however many
//!   sessions are queued on the runtime, and a session that wakes late finds several ticks
//!   waiting and writes them as one (see [`crate::ws`]), so an edge short of CPU sends fewer,
//!   fuller writes instead of falling further behind. The broadcast is sent outside the
//!   table's lock: waking 10,000 sessions never holds up a message being recorded.
//! - **Slow clients**: a session that falls `update_backlog` ticks behind gets `Lagged` from
//!   the broadcast; instead of the missed ticks it is sent the current value of every product
//!   it watches that changed since the last tick it got ([`Hub::changed_since`]). Nobody waits
//!   for it, and it still ends on the latest value.
//! - **Reconnects**: the subscription ([`flash_client::StockEvents`]) reconnects by itself
//!   (backoff 0.1 s doubling to 5 s), to the new master after a failover on a cluster, and
//!   pings the connection every few seconds, so a half-open socket is noticed too; the hub
//!   counts each return ([`Hub::reconnects`]) and shows whether it is up
//!   ([`Hub::subscription_live`]). Messages published while it was
//!   away are lost (pub/sub keeps nothing), so after every (re)subscription the hub reads
//!   every known product back with FLASH.AVAILABLE and broadcasts those that changed.
//! - **Ordering**: pub/sub messages arrive in the order the engine applied the changes, so the
//!   last message of a product always carries its current value. Values read with
//!   FLASH.AVAILABLE travel on another connection and may be older than a message that
//!   arrived meanwhile: each recorded message gets a sequence number, and a value read back
//!   is dropped for a product that got a message after the read was sent.

mod counters;
mod sales;
mod source;
mod subscription;
mod table;
mod ticker;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use flash_client::{FlashClient, StockEvents, SubscriptionSettings};
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;

use crate::limits::{ClientSlot, Connections};
use counters::Counters;
use source::{EngineSource, StockSource};
use table::{Known, Stock};

pub use sales::SaleHubs;
pub use table::{ProductStock, Snapshot, StockUpdate, stock_json};

/// How the hub paces itself. The defaults suit production; tests shrink them.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Changes of one product reach clients at most once per tick.
    pub tick: Duration,
    /// Ticks a session may fall behind before it is resynchronised from the latest values.
    pub update_backlog: usize,
    /// The stock event subscription's pacing. Its `liveness_interval` also spaces retries of
    /// a failed read-back, and its `connect_timeout` bounds a FLASH.AVAILABLE read.
    pub subscription: SubscriptionSettings,
}

impl Default for HubSettings {
    fn default() -> HubSettings {
        HubSettings {
            tick: Duration::from_millis(50),
            // 256 ticks of 50 ms: a client may stall about 13 s before it is resynchronised.
            update_backlog: 256,
            subscription: SubscriptionSettings::default(),
        }
    }
}

/// The live stock hub. Cheap to clone: clones share one subscription, one ticker and one
/// table of latest values.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    stock: Mutex<Stock>,
    /// Held while a tick is built and broadcast (taken before `stock`, never while holding
    /// it): a new receiver and the tick number it starts after agree, without the broadcast
    /// (which wakes every session) happening under `stock`.
    publishing: Mutex<()>,
    updates: broadcast::Sender<Arc<StockUpdate>>,
    /// Where values nobody published yet come from (FLASH.AVAILABLE); `None` for a detached hub.
    source: Option<Arc<dyn StockSource>>,
    shutdown: watch::Sender<bool>,
    /// Live WebSocket connections, per address group and in all.
    connections: Connections,
    counters: Counters,
    /// The subscription task, stopped when the last handle goes (the ticker thread notices
    /// that by itself).
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

/// A state that stays consistent even if a holder panicked (every mutation completes before
/// anything that could panic), so a poisoned lock is simply taken over.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// Subscribes to the sale's stock events and starts the subscription task and the
    /// ticker. Fails if the first subscription cannot be made (a bad URL, Redis down at
    /// boot); later drops are retried forever in the background.
    pub async fn start(
        redis_url: &str,
        sale: &str,
        engine: FlashClient,
    ) -> Result<Hub, flash_client::ClientError> {
        Hub::start_with(redis_url, sale, engine, HubSettings::default()).await
    }

    pub async fn start_with(
        redis_url: &str,
        sale: &str,
        engine: FlashClient,
        settings: HubSettings,
    ) -> Result<Hub, flash_client::ClientError> {
        Hub::start_admitting(redis_url, sale, engine, settings, Connections::default()).await
    }

    /// [`Hub::start_with`], admitting WebSocket clients against `connections` (shared with
    /// other hubs, so that the per-address cap counts every sale's sockets together).
    pub(crate) async fn start_admitting(
        redis_url: &str,
        sale: &str,
        engine: FlashClient,
        settings: HubSettings,
        connections: Connections,
    ) -> Result<Hub, flash_client::ClientError> {
        let events = StockEvents::subscribe(redis_url, sale, settings.subscription.clone()).await?;
        let source = Arc::new(EngineSource::new(
            sale,
            redis_url,
            engine,
            settings.subscription.connect_timeout,
        ));
        let hub = Hub::build(Some(source.clone()), &settings, connections);
        hub.spawn_ticker(settings.tick);
        let subscription = tokio::spawn(subscription::run(
            Arc::downgrade(&hub.inner),
            source,
            events,
            settings.subscription.liveness_interval,
        ));
        lock(&hub.inner.tasks).push(subscription.abort_handle());
        Ok(hub)
    }

    /// A hub with no Redis behind it: values come only from [`Hub::publish_local`]. For tests
    /// of code that needs a hub. Must be called inside a Tokio runtime (it spawns the ticker).
    pub fn detached(settings: HubSettings) -> Hub {
        let hub = Hub::build(None, &settings, Connections::default());
        hub.spawn_ticker(settings.tick);
        hub
    }

    fn build(
        source: Option<Arc<dyn StockSource>>,
        settings: &HubSettings,
        connections: Connections,
    ) -> Hub {
        let (updates, _) = broadcast::channel(settings.update_backlog.max(1));
        let (shutdown, _) = watch::channel(false);
        Hub {
            inner: Arc::new(Inner {
                stock: Mutex::new(Stock::default()),
                publishing: Mutex::new(()),
                updates,
                source,
                shutdown,
                connections,
                counters: Counters::default(),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Current values for a new subscriber, each product at most once in the answer:
    /// from the table where known, the others with one FLASH.AVAILABLE round trip (and then
    /// remembered). Products never loaded are left out; so are unknown ones when the engine
    /// cannot be reached (the failure is logged).
    pub async fn current(&self, products: &[i64]) -> Vec<(i64, i64)> {
        self.snapshot(products).await.values
    }

    /// [`Hub::current`] with the tick it is consistent with.
    pub async fn snapshot(&self, products: &[i64]) -> Snapshot {
        let (mut snapshot, unknown, seq_at_send) = {
            let stock = lock(&self.inner.stock);
            let mut values = Vec::with_capacity(products.len());
            let mut unknown = Vec::new();
            for &product_id in products {
                match stock.products.get(&product_id) {
                    Some(known) => values.push((product_id, known.available)),
                    None => unknown.push(product_id),
                }
            }
            let snapshot = Snapshot {
                through_tick: stock.last_tick,
                values,
            };
            (snapshot, unknown, stock.events_seq)
        };
        if unknown.is_empty() {
            return snapshot;
        }
        let Some(source) = &self.inner.source else {
            return snapshot;
        };
        match source.available(&unknown).await {
            Ok(read) => {
                let read: Vec<(i64, Option<i64>)> = unknown.iter().copied().zip(read).collect();
                let mut stock = lock(&self.inner.stock);
                // Not broadcast: only this subscriber asked; everyone else hears of the
                // product at its next change.
                stock.apply_read_back(&read, seq_at_send, false);
                for (product_id, available) in read {
                    if available.is_some()
                        && let Some(known) = stock.products.get(&product_id)
                    {
                        snapshot.values.push((product_id, known.available));
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "hub: FLASH.AVAILABLE for new subscribers failed"),
        }
        snapshot
    }

    /// The latest value of every product (of `watched`, or all when `None`) that changed
    /// after tick `seen_tick`: what a lagging session missed.
    pub fn changed_since(&self, seen_tick: u64, watched: Option<&HashSet<i64>>) -> Snapshot {
        let stock = lock(&self.inner.stock);
        let newer = |known: &Known| known.broadcast_tick > seen_tick || known.dirty;
        let values = match watched {
            Some(watched) => watched
                .iter()
                .filter_map(|&product_id| {
                    let known = stock.products.get(&product_id)?;
                    newer(known).then_some((product_id, known.available))
                })
                .collect(),
            None => stock
                .products
                .iter()
                .filter(|(_, known)| newer(known))
                .map(|(&product_id, known)| (product_id, known.available))
                .collect(),
        };
        Snapshot {
            through_tick: stock.last_tick,
            values,
        }
    }

    /// A receiver of every tick from now on, and the last tick already broadcast (the
    /// receiver starts after it).
    pub fn subscribe_updates(&self) -> (broadcast::Receiver<Arc<StockUpdate>>, u64) {
        // Under the lock ticks are built and sent under: the tick number and the receiver's
        // starting point agree.
        let _publishing = lock(&self.inner.publishing);
        let last_tick = lock(&self.inner.stock).last_tick;
        (self.inner.updates.subscribe(), last_tick)
    }

    /// A value the HTTP handlers learned from an engine reply (e.g. FLASH.RESERVE's
    /// `available`). Taken only while the subscription is down: while it is live, the
    /// engine's own message brings the same value within milliseconds and in the right
    /// order, whereas a reply may overtake a newer message and would leave clients on an
    /// older value. After a reconnect, the read-back replaces whatever hints gave.
    pub fn publish_local(&self, product_id: i64, available: i64) {
        let mut stock = lock(&self.inner.stock);
        if !stock.subscription_live {
            stock.record_hint(product_id, available);
        }
    }

    /// Asks every session to close (1001 going away) and stops the subscription; for a
    /// graceful shutdown. Sessions opened afterwards close at once.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
        self.inner.set_live(false);
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// A WebSocket slot for `peer`, or `None` when its address group already holds
    /// `max_per_ip` (see [`crate::limits::connections`]); the hub counts them for metrics.
    pub fn admit(&self, peer: IpAddr, max_per_ip: usize) -> Option<ClientSlot> {
        self.inner.connections.admit(peer, max_per_ip)
    }

    /// Records a pub/sub message as if it came from the channel (tests).
    #[cfg(test)]
    pub(crate) fn record_event(&self, product_id: i64, available: i64) {
        self.inner.record_event(flash_client::StockEvent {
            sku: product_id,
            available,
        });
    }

    /// Broadcasts a tick now (tests drive ticks by hand).
    #[cfg(test)]
    pub(crate) fn tick_now(&self) {
        self.inner.publish_tick();
    }

    /// A hub over a given source, with no ticker (tests drive ticks by hand).
    #[cfg(test)]
    fn manual(source: Option<Arc<dyn StockSource>>, update_backlog: usize) -> Hub {
        Hub::build(
            source,
            &HubSettings {
                update_backlog,
                ..HubSettings::default()
            },
            Connections::default(),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests;
