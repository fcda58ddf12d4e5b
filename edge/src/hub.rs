//! Live stock: one Redis subscription per edge process, coalesced per product, fanned out to
//! every WebSocket client of the process.
//!
//! ```text
//! engine ──PUBLISH flash:{S}:events {"sku":14,"available":7}──▶ subscription task
//!                                                               │ record: latest[14] = 7, dirty
//!                 ticker (every 50 ms, a thread of its own) ◀──┘
//!                   │ one StockUpdate per tick: every product changed since the last tick,
//!                   │ its JSON text built once
//!                   ▼
//!      broadcast (bounded: `update_backlog` ticks) ──▶ one receiver per WebSocket session
//! ```
//!
//! - **Coalescing**: a product changing 40 times within one tick costs each client one frame,
//!   carrying the last value. The JSON text of a product is made once per tick and shared
//!   (reference counted) by every client, so 10,000 clients cost 10,000 frame writes, not
//!   10,000 serialisations.
//! - **Overload**: the ticker is an OS thread, not a task: it keeps its 50 ms however many
//!   sessions are queued on the runtime, and a session that wakes late finds several ticks
//!   waiting and writes them as one (see [`crate::ws`]), so an edge short of CPU sends fewer,
//!   fuller writes instead of falling further behind. The broadcast is sent outside the
//!   table's lock: waking 10,000 sessions never holds up [`Inner::record_event`].
//! - **Slow clients**: a session that falls `update_backlog` ticks behind gets `Lagged` from
//!   the broadcast; instead of the missed ticks it is sent the current value of every product
//!   it watches that changed since the last tick it got ([`Hub::changed_since`]). Nobody waits
//!   for it, and it still ends on the latest value.
//! - **Reconnects**: the subscription task reconnects by itself (backoff 0.1 s doubling to
//!   5 s) and pings the connection every few seconds, so a half-open socket is noticed too.
//!   Messages published while it was away are lost (pub/sub keeps nothing), so after every
//!   (re)subscription it reads every known product back with FLASH.AVAILABLE and broadcasts
//!   those that changed.
//! - **Ordering**: pub/sub messages arrive in the order the engine applied the changes, so the
//!   last message of a product always carries its current value. Values read with
//!   FLASH.AVAILABLE travel on another connection and may be older than a message that
//!   arrived meanwhile: each recorded message gets a sequence number, and a value read back
//!   is dropped for a product that got a message after the read was sent.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use flash_client::FlashClient;
use flash_core::keys::SaleKeys;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// How the hub paces itself. The defaults suit production; tests shrink them.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Changes of one product reach clients at most once per tick.
    pub tick: Duration,
    /// Ticks a session may fall behind before it is resynchronised from the latest values.
    pub update_backlog: usize,
    /// First wait before reconnecting the subscription; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// A PING on the subscription this often: a connection that does not answer within
    /// `connect_timeout` is replaced.
    pub liveness_interval: Duration,
    /// Bound on connecting + SUBSCRIBE, and on a liveness PING.
    pub connect_timeout: Duration,
}

impl Default for HubSettings {
    fn default() -> HubSettings {
        HubSettings {
            tick: Duration::from_millis(50),
            // 256 ticks of 50 ms: a client may stall about 13 s before it is resynchronised.
            update_backlog: 256,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            liveness_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// One product's value as every client receives it.
#[derive(Clone, Debug)]
pub struct ProductStock {
    pub product_id: i64,
    pub available: i64,
    /// `{"product_id":14,"available":7}`, built once per tick and shared by every client.
    pub json: Utf8Bytes,
}

impl ProductStock {
    pub fn new(product_id: i64, available: i64) -> ProductStock {
        ProductStock {
            product_id,
            available,
            json: Utf8Bytes::from(stock_json(product_id, available)),
        }
    }
}

/// The text frame clients receive for one product.
pub fn stock_json(product_id: i64, available: i64) -> String {
    format!("{{\"product_id\":{product_id},\"available\":{available}}}")
}

/// Everything that changed during one tick: at most one entry per product, its last value.
#[derive(Debug)]
pub struct StockUpdate {
    /// Ticks count from 1. A session skips the ticks a snapshot it sent already covers.
    pub tick: u64,
    /// Sorted by product id, so a session watching few products looks them up instead of
    /// scanning every entry.
    pub entries: Vec<ProductStock>,
}

impl StockUpdate {
    pub fn get(&self, product_id: i64) -> Option<&ProductStock> {
        self.entries
            .binary_search_by_key(&product_id, |entry| entry.product_id)
            .ok()
            .and_then(|index| self.entries.get(index))
    }
}

/// Current values for a session, with the last tick they include: ticks up to
/// `through_tick` carry nothing newer for these products and can be skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub through_tick: u64,
    /// (product id, available); products the engine never loaded are left out.
    pub values: Vec<(i64, i64)>,
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
    /// Live WebSocket connections per address group (see [`address_group`]).
    connections: Mutex<HashMap<IpAddr, usize>>,
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

#[derive(Default)]
struct Counters {
    clients: AtomicUsize,
    messages_sent: AtomicU64,
    updates_dropped: AtomicU64,
    lag_resyncs: AtomicU64,
    ticks_published: AtomicU64,
    events_received: AtomicU64,
    events_malformed: AtomicU64,
    reconnects: AtomicU64,
    subscription_live: AtomicBool,
}

/// The table of latest values and what the next tick must carry.
#[derive(Default)]
struct Stock {
    products: HashMap<i64, Known>,
    /// Products changed since the last tick, each once (`Known::dirty` says it is here).
    dirty: Vec<i64>,
    /// Bumped by every recorded pub/sub message: orders a message against a read-back.
    events_seq: u64,
    /// The number of the last tick broadcast.
    last_tick: u64,
    /// While the subscription is live, pub/sub is the only authority on values (see
    /// [`Hub::publish_local`]).
    subscription_live: bool,
}

struct Known {
    available: i64,
    /// `events_seq` when a pub/sub message last set it (a read-back sent before loses).
    written_seq: u64,
    /// The tick that last carried it to clients (or, for a value read back and never
    /// broadcast, the tick current when it was read).
    broadcast_tick: u64,
    dirty: bool,
}

impl Stock {
    fn mark_dirty(dirty: &mut Vec<i64>, product_id: i64, known: &mut Known) {
        if !known.dirty {
            known.dirty = true;
            dirty.push(product_id);
        }
    }

    /// A pub/sub message: the newest word on the product, always taken.
    fn record_event(&mut self, product_id: i64, available: i64) {
        self.events_seq += 1;
        let seq = self.events_seq;
        self.set(product_id, available, Some(seq));
    }

    /// Sets a value and queues it for the next tick if it changed (or is new). `seq` is the
    /// message's sequence number; `None` for a value that must not outrank a later read-back.
    fn set(&mut self, product_id: i64, available: i64, seq: Option<u64>) {
        match self.products.get_mut(&product_id) {
            Some(known) => {
                if known.available != available {
                    known.available = available;
                    Stock::mark_dirty(&mut self.dirty, product_id, known);
                }
                if let Some(seq) = seq {
                    known.written_seq = seq;
                }
            }
            None => {
                let mut known = Known {
                    available,
                    written_seq: seq.unwrap_or(0),
                    broadcast_tick: self.last_tick,
                    dirty: false,
                };
                Stock::mark_dirty(&mut self.dirty, product_id, &mut known);
                self.products.insert(product_id, known);
            }
        }
    }

    /// A hint from an engine reply: taken, but never outranks a later read-back.
    fn record_hint(&mut self, product_id: i64, available: i64) {
        self.set(product_id, available, None);
    }

    /// Values read with FLASH.AVAILABLE when `events_seq` was `seq_at_send`. A product that
    /// got a pub/sub message since keeps it: that message is at least as new as the read
    /// (the subscription was active before the read was sent, and messages arrive in order).
    /// A known product whose value changed is broadcast (clients may hold the old one); a
    /// product new to the table only if `broadcast_new`.
    fn apply_read_back(
        &mut self,
        values: &[(i64, Option<i64>)],
        seq_at_send: u64,
        broadcast_new: bool,
    ) {
        let last_tick = self.last_tick;
        for &(product_id, available) in values {
            // Never loaded: nothing to show, and nothing to remember (garbage ids must not
            // grow the table).
            let Some(available) = available else {
                continue;
            };
            match self.products.get_mut(&product_id) {
                Some(known) if known.written_seq > seq_at_send => {}
                Some(known) => {
                    if known.available != available {
                        known.available = available;
                        Stock::mark_dirty(&mut self.dirty, product_id, known);
                    }
                }
                None => {
                    let mut known = Known {
                        available,
                        written_seq: seq_at_send,
                        broadcast_tick: last_tick,
                        dirty: false,
                    };
                    if broadcast_new {
                        Stock::mark_dirty(&mut self.dirty, product_id, &mut known);
                    }
                    self.products.insert(product_id, known);
                }
            }
        }
    }

    /// The update for the products changed since the last tick, if any.
    fn build_tick(&mut self) -> Option<StockUpdate> {
        if self.dirty.is_empty() {
            return None;
        }
        self.last_tick += 1;
        let tick = self.last_tick;
        let mut entries = Vec::with_capacity(self.dirty.len());
        for product_id in self.dirty.drain(..) {
            if let Some(known) = self.products.get_mut(&product_id) {
                known.dirty = false;
                known.broadcast_tick = tick;
                entries.push(ProductStock::new(product_id, known.available));
            }
        }
        entries.sort_unstable_by_key(|entry| entry.product_id);
        Some(StockUpdate { tick, entries })
    }
}

/// A state that stays consistent even if a holder panicked (every mutation completes before
/// anything that could panic), so a poisoned lock is simply taken over.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where current values come from when pub/sub has not told them yet.
trait StockSource: Send + Sync {
    /// Units per product in argument order, `None` for a product never loaded.
    fn available<'a>(
        &'a self,
        products: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<Option<i64>>, String>>;
}

/// FLASH.AVAILABLE on the engine.
struct EngineSource {
    sale: String,
    redis_url: String,
    engine: Mutex<FlashClient>,
    /// When the engine connection was last replaced: at most one attempt per second, so a
    /// Redis outage does not turn every subscribe into a connection attempt.
    last_reconnect: Mutex<Option<Instant>>,
    /// Bound on one read (reconnecting included): a session waiting on it waits no longer.
    read_timeout: Duration,
}

/// FLASH.AVAILABLE takes any number of SKUs; chunks keep one call a few ms of server time.
const READ_BACK_CHUNK: usize = 1000;

impl EngineSource {
    async fn read(&self, products: &[i64]) -> Result<Vec<Option<i64>>, flash_client::ClientError> {
        let engine = lock(&self.engine).clone();
        let mut values = Vec::with_capacity(products.len());
        for chunk in products.chunks(READ_BACK_CHUNK) {
            values.extend(engine.available(&self.sale, chunk).await?);
        }
        Ok(values)
    }

    /// A fresh engine connection: a multiplexed connection does not come back by itself
    /// after Redis restarts.
    async fn reconnect(&self) -> bool {
        {
            let mut last = lock(&self.last_reconnect);
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match FlashClient::connect(&self.redis_url).await {
            Ok(engine) => {
                *lock(&self.engine) = engine;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "hub: cannot reconnect to the engine");
                false
            }
        }
    }
}

impl StockSource for EngineSource {
    fn available<'a>(
        &'a self,
        products: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<Option<i64>>, String>> {
        Box::pin(async move {
            let attempt = async {
                match self.read(products).await {
                    Ok(values) => Ok(values),
                    Err(flash_client::ClientError::Redis(first)) if self.reconnect().await => self
                        .read(products)
                        .await
                        .map_err(|error| format!("{first}; after reconnecting: {error}")),
                    Err(error) => Err(error.to_string()),
                }
            };
            tokio::time::timeout(self.read_timeout, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no FLASH.AVAILABLE answer within {:?}",
                        self.read_timeout
                    ))
                })
        })
    }
}

/// The engine's message on the sale's channel.
#[derive(Deserialize)]
struct StockEvent {
    sku: i64,
    available: i64,
}

/// A held WebSocket slot: counted in [`Hub::clients`] and against its address's cap until
/// dropped, which happens however the session ends (close, error, panic, abort).
pub struct ClientSlot {
    inner: Arc<Inner>,
    group: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut connections = lock(&self.inner.connections);
        if let Some(count) = connections.get_mut(&self.group) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                connections.remove(&self.group);
            }
        }
        self.inner.counters.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The key the per-address cap counts under: the address itself for IPv4 (and IPv4-mapped
/// IPv6), the /64 for IPv6, since one IPv6 host commonly holds a whole /64.
pub fn address_group(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

impl Hub {
    /// Subscribes to the sale's channel and starts the subscription task and the ticker.
    /// Fails if the first subscription cannot be made (a bad URL, Redis down at boot); later
    /// drops are retried forever in the background.
    pub async fn start(
        redis_url: &str,
        sale: &str,
        engine: FlashClient,
    ) -> Result<Hub, redis::RedisError> {
        Hub::start_with(redis_url, sale, engine, HubSettings::default()).await
    }

    pub async fn start_with(
        redis_url: &str,
        sale: &str,
        engine: FlashClient,
        settings: HubSettings,
    ) -> Result<Hub, redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        let channel = SaleKeys::new(sale).channel();
        let first = subscribe(&client, &channel, settings.connect_timeout).await?;
        let source = Arc::new(EngineSource {
            sale: sale.to_owned(),
            redis_url: redis_url.to_owned(),
            engine: Mutex::new(engine),
            last_reconnect: Mutex::new(None),
            read_timeout: settings.connect_timeout,
        });
        let hub = Hub::build(Some(source.clone()), &settings);
        hub.spawn_ticker(settings.tick);
        let subscription = tokio::spawn(run_subscription(
            Arc::downgrade(&hub.inner),
            source,
            client,
            channel,
            settings,
            first,
        ));
        lock(&hub.inner.tasks).push(subscription.abort_handle());
        Ok(hub)
    }

    /// A hub with no Redis behind it: values come only from [`Hub::publish_local`]. For tests
    /// of code that needs a hub. Must be called inside a Tokio runtime (it spawns the ticker).
    pub fn detached(settings: HubSettings) -> Hub {
        let hub = Hub::build(None, &settings);
        hub.spawn_ticker(settings.tick);
        hub
    }

    fn build(source: Option<Arc<dyn StockSource>>, settings: &HubSettings) -> Hub {
        let (updates, _) = broadcast::channel(settings.update_backlog.max(1));
        let (shutdown, _) = watch::channel(false);
        Hub {
            inner: Arc::new(Inner {
                stock: Mutex::new(Stock::default()),
                publishing: Mutex::new(()),
                updates,
                source,
                shutdown,
                connections: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The ticker runs on a thread of its own: as a task it would wait its turn behind every
    /// session the previous tick woke, and under load ticks came late and irregularly (143 to
    /// 218 ticks in 12 s instead of 240). It ends at shutdown or when the hub is gone.
    fn spawn_ticker(&self, tick: Duration) {
        let weak = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.subscribe();
        let tick = tick.max(Duration::from_millis(1));
        let spawned = std::thread::Builder::new()
            .name("flash-hub-ticker".to_owned())
            .spawn(move || {
                let mut due = Instant::now() + tick;
                loop {
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if *shutdown.borrow() {
                        return;
                    }
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    inner.publish_tick();
                    drop(inner);
                    // After a stall, carry on at the normal pace: whatever changed meanwhile
                    // goes out with the next tick, so catching up would only add ticks.
                    due = (due + tick).max(Instant::now());
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "hub: cannot start the ticker thread; live stock is off");
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
    /// `max_per_ip`.
    pub fn admit(&self, peer: IpAddr, max_per_ip: usize) -> Option<ClientSlot> {
        let group = address_group(peer);
        let mut connections = lock(&self.inner.connections);
        let count = connections.entry(group).or_insert(0);
        if *count >= max_per_ip {
            if *count == 0 {
                connections.remove(&group);
            }
            return None;
        }
        *count += 1;
        self.inner.counters.clients.fetch_add(1, Ordering::Relaxed);
        Some(ClientSlot {
            inner: self.inner.clone(),
            group,
        })
    }

    pub(crate) fn count_sent(&self, frames: usize) {
        if frames > 0 {
            self.inner
                .counters
                .messages_sent
                .fetch_add(frames as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_lag(&self, missed_ticks: u64) {
        let counters = &self.inner.counters;
        counters
            .updates_dropped
            .fetch_add(missed_ticks, Ordering::Relaxed);
        counters.lag_resyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Connected WebSocket clients (a gauge).
    pub fn clients(&self) -> usize {
        self.inner.counters.clients.load(Ordering::Relaxed)
    }

    /// Stock frames written to clients (a counter).
    pub fn messages_sent(&self) -> u64 {
        self.inner.counters.messages_sent.load(Ordering::Relaxed)
    }

    /// Ticks that lagging clients skipped, replaced by the latest values (a counter).
    pub fn updates_dropped(&self) -> u64 {
        self.inner.counters.updates_dropped.load(Ordering::Relaxed)
    }

    /// Times a lagging client was resynchronised from the latest values (a counter).
    pub fn lag_resyncs(&self) -> u64 {
        self.inner.counters.lag_resyncs.load(Ordering::Relaxed)
    }

    /// Ticks broadcast, i.e. ticks in which something changed (a counter).
    pub fn ticks_published(&self) -> u64 {
        self.inner.counters.ticks_published.load(Ordering::Relaxed)
    }

    /// Messages received from the sale's channel (a counter).
    pub fn events_received(&self) -> u64 {
        self.inner.counters.events_received.load(Ordering::Relaxed)
    }

    /// Messages on the channel that were not `{"sku":…,"available":…}` (a counter).
    pub fn events_malformed(&self) -> u64 {
        self.inner.counters.events_malformed.load(Ordering::Relaxed)
    }

    /// Times the subscription was made again after a drop (a counter).
    pub fn reconnects(&self) -> u64 {
        self.inner.counters.reconnects.load(Ordering::Relaxed)
    }

    /// Whether the subscription is up right now (for health checks).
    pub fn subscription_live(&self) -> bool {
        self.inner
            .counters
            .subscription_live
            .load(Ordering::Relaxed)
    }

    /// Every figure above as Prometheus series: (name, type, value).
    pub fn metric_series(&self) -> Vec<(&'static str, &'static str, u64)> {
        vec![
            ("flash_ws_clients", "gauge", self.clients() as u64),
            (
                "flash_ws_messages_sent_total",
                "counter",
                self.messages_sent(),
            ),
            (
                "flash_ws_updates_dropped_total",
                "counter",
                self.updates_dropped(),
            ),
            ("flash_ws_lag_resyncs_total", "counter", self.lag_resyncs()),
            ("flash_hub_ticks_total", "counter", self.ticks_published()),
            ("flash_hub_events_total", "counter", self.events_received()),
            (
                "flash_hub_events_malformed_total",
                "counter",
                self.events_malformed(),
            ),
            ("flash_hub_reconnects_total", "counter", self.reconnects()),
            (
                "flash_hub_subscription_live",
                "gauge",
                u64::from(self.subscription_live()),
            ),
            (
                "flash_hub_products_known",
                "gauge",
                self.products_known() as u64,
            ),
        ]
    }

    /// Products in the table of latest values (a gauge).
    pub fn products_known(&self) -> usize {
        lock(&self.inner.stock).products.len()
    }

    /// Records a pub/sub message as if it came from the channel (tests).
    #[cfg(test)]
    pub(crate) fn record_event(&self, product_id: i64, available: i64) {
        lock(&self.inner.stock).record_event(product_id, available);
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
        )
    }
}

impl Inner {
    fn publish_tick(&self) {
        let _publishing = lock(&self.publishing);
        // The table is locked only to build the tick: the send below wakes every session,
        // and pub/sub messages must not wait for that.
        let update = lock(&self.stock).build_tick();
        if let Some(update) = update {
            // An error only means no session is listening.
            let _ = self.updates.send(Arc::new(update));
            self.counters
                .ticks_published
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn record_event(&self, payload: &[u8]) {
        self.counters
            .events_received
            .fetch_add(1, Ordering::Relaxed);
        match serde_json::from_slice::<StockEvent>(payload) {
            Ok(event) => lock(&self.stock).record_event(event.sku, event.available),
            Err(error) => {
                self.counters
                    .events_malformed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, payload = %String::from_utf8_lossy(payload), "hub: malformed stock message");
            }
        }
    }

    fn set_live(&self, live: bool) {
        lock(&self.stock).subscription_live = live;
        self.counters
            .subscription_live
            .store(live, Ordering::Relaxed);
    }
}

/// Connects and subscribes, within `limit`.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
    limit: Duration,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no SUBSCRIBE {channel} within {limit:?}"),
        )
        .into()),
    }
}

/// Why a subscription stopped.
enum SubscriptionEnd {
    /// The connection closed or stopped answering: make another.
    Dropped,
    /// The hub is gone or shut down.
    Stop,
}

/// The subscription task: pump messages into the table; on a drop, reconnect with backoff
/// and read back what may have been missed.
async fn run_subscription(
    weak: Weak<Inner>,
    source: Arc<EngineSource>,
    client: redis::Client,
    channel: String,
    settings: HubSettings,
    first: redis::aio::PubSub,
) {
    let mut connected = Some(first);
    let mut backoff = settings.reconnect_min;
    loop {
        let pubsub = match connected.take() {
            Some(pubsub) => pubsub,
            None => match subscribe(&client, &channel, settings.connect_timeout).await {
                Ok(pubsub) => {
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    inner.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%channel, "hub: subscription restored");
                    pubsub
                }
                Err(error) => {
                    tracing::warn!(%error, %channel, retry_in = ?backoff, "hub: cannot subscribe");
                    tokio::time::sleep(with_jitter(backoff)).await;
                    backoff = (backoff * 2).min(settings.reconnect_max);
                    continue;
                }
            },
        };
        backoff = settings.reconnect_min;
        {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            // Live before the read-back is sent: from here on a hint could be older than a
            // message, and messages are what the read-back is ordered against.
            inner.set_live(true);
        }
        let end = pump(&weak, source.as_ref(), pubsub, &settings).await;
        if let Some(inner) = weak.upgrade() {
            inner.set_live(false);
        }
        match end {
            SubscriptionEnd::Stop => return,
            SubscriptionEnd::Dropped => {
                tracing::warn!(%channel, "hub: subscription dropped; reconnecting");
                tokio::time::sleep(with_jitter(backoff)).await;
            }
        }
    }
}

/// Up to a quarter more: edge processes that lost Redis together do not all come back in
/// the same millisecond.
fn with_jitter(wait: Duration) -> Duration {
    wait.mul_f64(1.0 + rand::random::<f64>() / 4.0)
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

/// Reads back what may have been missed, then feeds messages into the table until the
/// connection drops, stops answering PING, or the hub goes. A failed read-back is retried at
/// every liveness tick: until it succeeds, clients may hold values that will not change.
async fn pump(
    weak: &Weak<Inner>,
    source: &EngineSource,
    pubsub: redis::aio::PubSub,
    settings: &HubSettings,
) -> SubscriptionEnd {
    let Some(mut shutdown) = weak.upgrade().map(|inner| inner.shutdown.subscribe()) else {
        return SubscriptionEnd::Stop;
    };
    let (mut control, mut messages) = pubsub.split();
    let mut liveness = tokio::time::interval(settings.liveness_interval);
    liveness.tick().await;
    // Messages published meanwhile wait in the connection's queue, and are recorded after
    // the read-back's values, which they then correct.
    let mut read_back_due = !read_back(weak, source).await;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return SubscriptionEnd::Dropped;
                };
                let Some(inner) = weak.upgrade() else {
                    return SubscriptionEnd::Stop;
                };
                inner.record_event(message.get_payload_bytes());
            }
            _ = liveness.tick() => {
                if read_back_due {
                    read_back_due = !read_back(weak, source).await;
                }
                // A half-open connection (a cable pulled, a NAT forgetting us) never ends the
                // message stream; an unanswered PING does.
                let ping = control.ping::<redis::Value>();
                match tokio::time::timeout(settings.connect_timeout, ping).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "hub: subscription PING failed");
                        return SubscriptionEnd::Dropped;
                    }
                    Err(_) => {
                        tracing::warn!("hub: subscription PING unanswered");
                        return SubscriptionEnd::Dropped;
                    }
                }
            }
            () = stopped(&mut shutdown) => return SubscriptionEnd::Stop,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use tokio::sync::broadcast::error::TryRecvError;

    /// A fake engine: fixed values, and a count of round trips.
    pub(crate) struct FakeEngine {
        pub values: HashMap<i64, i64>,
        pub calls: AtomicUsize,
    }

    impl FakeEngine {
        pub(crate) fn new(values: &[(i64, i64)]) -> Arc<FakeEngine> {
            Arc::new(FakeEngine {
                values: values.iter().copied().collect(),
                calls: AtomicUsize::new(0),
            })
        }
    }

    impl StockSource for FakeEngine {
        fn available<'a>(
            &'a self,
            products: &'a [i64],
        ) -> BoxFuture<'a, Result<Vec<Option<i64>>, String>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let values = products
                .iter()
                .map(|p| self.values.get(p).copied())
                .collect();
            Box::pin(async move { Ok(values) })
        }
    }

    pub(crate) fn manual_hub(engine: Option<Arc<FakeEngine>>, update_backlog: usize) -> Hub {
        Hub::manual(
            engine.map(|engine| engine as Arc<dyn StockSource>),
            update_backlog,
        )
    }

    fn pairs(update: &StockUpdate) -> Vec<(i64, i64)> {
        update
            .entries
            .iter()
            .map(|entry| (entry.product_id, entry.available))
            .collect()
    }

    #[tokio::test]
    async fn many_changes_in_one_tick_become_one_entry_per_product_with_the_last_value() {
        let hub = manual_hub(None, 16);
        let (mut updates, _) = hub.subscribe_updates();
        for available in (0..=10).rev() {
            hub.record_event(14, available);
        }
        hub.record_event(7, 25);
        hub.record_event(7, 24);
        hub.tick_now();

        let update = updates.try_recv().unwrap();
        assert_eq!(pairs(&update), vec![(7, 24), (14, 0)]);
        assert_eq!(
            update.get(14).unwrap().json.as_str(),
            r#"{"product_id":14,"available":0}"#
        );
        // Nothing changed since: no tick at all.
        hub.tick_now();
        assert!(matches!(updates.try_recv(), Err(TryRecvError::Empty)));
        assert_eq!(hub.ticks_published(), 1);
    }

    #[tokio::test]
    async fn a_message_repeating_the_broadcast_value_sends_nothing() {
        let hub = manual_hub(None, 16);
        let (mut updates, _) = hub.subscribe_updates();
        hub.record_event(14, 5);
        hub.tick_now();
        assert_eq!(pairs(&updates.try_recv().unwrap()), vec![(14, 5)]);
        hub.record_event(14, 5);
        hub.tick_now();
        assert!(matches!(updates.try_recv(), Err(TryRecvError::Empty)));
        // A change and its undo within one tick still go out (the value may have been shown
        // elsewhere meanwhile, and one frame is cheap).
        hub.record_event(14, 4);
        hub.record_event(14, 5);
        hub.tick_now();
        assert_eq!(pairs(&updates.try_recv().unwrap()), vec![(14, 5)]);
    }

    #[tokio::test]
    async fn current_reads_unknown_products_once_and_skips_never_loaded_ones() {
        let engine = FakeEngine::new(&[(3, 30), (4, 40)]);
        let hub = manual_hub(Some(engine.clone()), 16);
        hub.record_event(1, 10);

        let mut values = hub.current(&[1, 3, 99]).await;
        values.sort_unstable();
        assert_eq!(values, vec![(1, 10), (3, 30)]);
        assert_eq!(engine.calls.load(Ordering::Relaxed), 1);

        // 3 is remembered; 99 (never loaded) is not, so the table does not grow on garbage.
        let values = hub.current(&[1, 3]).await;
        assert_eq!(values.len(), 2);
        assert_eq!(engine.calls.load(Ordering::Relaxed), 1);
        assert_eq!(hub.products_known(), 2);
    }

    #[tokio::test]
    async fn a_read_back_never_overwrites_a_message_that_arrived_after_it_was_sent() {
        let hub = manual_hub(None, 16);
        let mut stock = lock(&hub.inner.stock);
        stock.record_event(14, 10);
        let seq_at_send = stock.events_seq;
        // A newer message lands while the read is in flight; the read answers older data.
        stock.record_event(14, 8);
        stock.apply_read_back(&[(14, Some(9)), (15, Some(3))], seq_at_send, true);
        assert_eq!(stock.products[&14].available, 8);
        assert_eq!(stock.products[&15].available, 3);
        // A read sent after the last message is taken.
        let seq_at_send = stock.events_seq;
        stock.apply_read_back(&[(14, Some(6))], seq_at_send, true);
        assert_eq!(stock.products[&14].available, 6);
    }

    #[tokio::test]
    async fn local_hints_are_ignored_while_the_subscription_is_live() {
        let hub = manual_hub(None, 16);
        hub.publish_local(14, 9);
        assert_eq!(hub.current(&[14]).await, vec![(14, 9)]);
        hub.inner.set_live(true);
        hub.publish_local(14, 3);
        assert_eq!(hub.current(&[14]).await, vec![(14, 9)]);
    }

    #[tokio::test]
    async fn changed_since_returns_only_products_changed_after_the_tick() {
        let hub = manual_hub(None, 16);
        hub.record_event(1, 10);
        hub.record_event(2, 20);
        hub.tick_now();
        let (_, seen) = hub.subscribe_updates();
        hub.record_event(2, 19);
        hub.tick_now();
        hub.record_event(3, 30);

        let mut all = hub.changed_since(seen, None).values;
        all.sort_unstable();
        // 3 is still pending for the next tick, and included: the snapshot is the newest.
        assert_eq!(all, vec![(2, 19), (3, 30)]);
        let watched: HashSet<i64> = [1, 3].into();
        assert_eq!(
            hub.changed_since(seen, Some(&watched)).values,
            vec![(3, 30)]
        );
    }

    #[tokio::test]
    async fn the_per_address_cap_is_released_when_a_slot_drops() {
        let hub = manual_hub(None, 16);
        let alice = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let bob = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let first = hub.admit(alice, 2).unwrap();
        let _second = hub.admit(alice, 2).unwrap();
        assert!(hub.admit(alice, 2).is_none());
        let _other = hub.admit(bob, 2).unwrap();
        assert_eq!(hub.clients(), 3);
        drop(first);
        assert_eq!(hub.clients(), 2);
        assert!(hub.admit(alice, 2).is_some());
    }

    #[test]
    fn ipv6_peers_are_capped_per_64_and_mapped_ipv4_as_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_group(a.into()), address_group(b.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            address_group(mapped.into()),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_ticker_keeps_time_while_the_runtime_is_busy_and_stops_at_shutdown() {
        let hub = Hub::detached(HubSettings {
            tick: Duration::from_millis(10),
            ..HubSettings::default()
        });
        let (mut updates, _) = hub.subscribe_updates();
        hub.publish_local(14, 9);
        // The runtime's only thread is blocked: a ticker task could not run.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(hub.ticks_published(), 1);
        assert_eq!(pairs(&updates.try_recv().unwrap()), vec![(14, 9)]);

        hub.shutdown();
        std::thread::sleep(Duration::from_millis(50));
        hub.publish_local(14, 8);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(hub.ticks_published(), 1);
    }

    #[tokio::test]
    async fn malformed_messages_are_counted_and_skipped() {
        let hub = manual_hub(None, 16);
        hub.inner.record_event(br#"{"sku":14,"available":7}"#);
        hub.inner.record_event(b"not json");
        assert_eq!(hub.events_received(), 2);
        assert_eq!(hub.events_malformed(), 1);
        assert_eq!(hub.current(&[14]).await, vec![(14, 7)]);
    }
}
