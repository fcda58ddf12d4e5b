//! The table of latest values: what every product is at, what the next tick must carry,
//! and the sequence numbers that keep a value read back from overwriting a newer message.
//! The types a tick and a snapshot are made of live here too.

use std::collections::HashMap;

use tokio_tungstenite::tungstenite::Utf8Bytes;

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

/// The table of latest values and what the next tick must carry.
#[derive(Default)]
pub(super) struct Stock {
    pub(super) products: HashMap<i64, Known>,
    /// Products changed since the last tick, each once (`Known::dirty` says it is here).
    pub(super) dirty: Vec<i64>,
    /// Bumped by every recorded pub/sub message: orders a message against a read-back.
    pub(super) events_seq: u64,
    /// The number of the last tick broadcast.
    pub(super) last_tick: u64,
    /// While the subscription is live, pub/sub is the only authority on values (see
    /// [`super::Hub::publish_local`]).
    pub(super) subscription_live: bool,
}

pub(super) struct Known {
    pub(super) available: i64,
    /// `events_seq` when a pub/sub message last set it (a read-back sent before loses).
    pub(super) written_seq: u64,
    /// The tick that last carried it to clients (or, for a value read back and never
    /// broadcast, the tick current when it was read).
    pub(super) broadcast_tick: u64,
    pub(super) dirty: bool,
}

impl Stock {
    fn mark_dirty(dirty: &mut Vec<i64>, product_id: i64, known: &mut Known) {
        if !known.dirty {
            known.dirty = true;
            dirty.push(product_id);
        }
    }

    /// A pub/sub message: the newest word on the product, always taken.
    pub(super) fn record_event(&mut self, product_id: i64, available: i64) {
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
    pub(super) fn record_hint(&mut self, product_id: i64, available: i64) {
        self.set(product_id, available, None);
    }

    /// Values read with FLASH.AVAILABLE when `events_seq` was `seq_at_send`. A product that
    /// got a pub/sub message since keeps it: that message is at least as new as the read
    /// (the subscription was active before the read was sent, and messages arrive in order).
    /// A known product whose value changed is broadcast (clients may hold the old one); a
    /// product new to the table only if `broadcast_new`.
    pub(super) fn apply_read_back(
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
    pub(super) fn build_tick(&mut self) -> Option<StockUpdate> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_read_back_never_overwrites_a_message_that_arrived_after_it_was_sent() {
        let mut stock = Stock::default();
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

    #[test]
    fn a_value_read_for_one_subscriber_is_remembered_but_not_broadcast() {
        let mut stock = Stock::default();
        stock.apply_read_back(&[(3, Some(30)), (99, None)], 0, false);
        assert!(stock.build_tick().is_none());
        assert_eq!(stock.products[&3].available, 30);
        assert!(!stock.products.contains_key(&99));
    }
}
