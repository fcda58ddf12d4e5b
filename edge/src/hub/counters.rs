//! The hub's figures: counters kept as it works, read for `/metrics` and health checks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Hub, lock};

#[derive(Default)]
pub(super) struct Counters {
    pub(super) messages_sent: AtomicU64,
    pub(super) updates_dropped: AtomicU64,
    pub(super) lag_resyncs: AtomicU64,
    pub(super) ticks_published: AtomicU64,
    pub(super) events_received: AtomicU64,
    pub(super) events_malformed: AtomicU64,
    pub(super) reconnects: AtomicU64,
    pub(super) subscription_live: AtomicBool,
}

impl Hub {
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
        self.inner.connections.live()
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
}
