//! Reading a [`StockEvents`] subscription in a test: the next item within a time, failing the
//! test when none comes.

use std::time::Duration;

use flash_client::{StockEvents, SubscriptionEvent};

/// The subscription's next item; panics when none arrives `within` or it has ended.
pub async fn next_event(events: &mut StockEvents, within: Duration) -> SubscriptionEvent {
    tokio::time::timeout(within, events.next())
        .await
        .unwrap_or_else(|_| panic!("no item within {within:?}"))
        .expect("the subscription is running")
}

/// The next item that is not `Retrying` (how many attempts fail depends on timing).
pub async fn next_settled(events: &mut StockEvents, within: Duration) -> SubscriptionEvent {
    loop {
        match next_event(events, within).await {
            SubscriptionEvent::Retrying { .. } => {}
            item => return item,
        }
    }
}
