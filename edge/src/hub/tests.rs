#![allow(clippy::unwrap_used)]

use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
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

pub(crate) fn pairs(update: &StockUpdate) -> Vec<(i64, i64)> {
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
