//! The ticker: every `tick`, the products changed since the last tick go out as one
//! [`StockUpdate`](super::StockUpdate) on the broadcast every session listens to.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Hub, Inner, lock};

impl Hub {
    /// The ticker runs on a thread of its own: as a task it would wait its turn behind every
    /// session the previous tick woke, and under load ticks came late and irregularly (143 to
    /// 218 ticks in 12 s instead of 240). It ends at shutdown or when the hub is gone.
    pub(super) fn spawn_ticker(&self, tick: Duration) {
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
}

impl Inner {
    pub(super) fn publish_tick(&self) {
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::hub::HubSettings;
    use crate::hub::tests::pairs;

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
}
