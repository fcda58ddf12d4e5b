//! An in-memory [`Store`] for the unit tests: the rules checked without Redis. The real
//! storage is tested against a real redis-server in `tests/`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::Sku;
use crate::error::{Error, Result};
use crate::keys::Counter;
use crate::keys::SaleKey;
use crate::model::{Cart, OrderEntry, Sale};
use crate::store::Store;
use crate::wire::StreamId;

#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct MemStore {
    pub now_ms: i64,
    /// The work clock (µs); each read advances it by `clock_step_us`, so a test can make
    /// work take time.
    pub clock_us: i64,
    pub clock_step_us: i64,
    pub sale: Option<Sale>,
    pub counters: HashMap<(Counter, Sku), i64>,
    pub users: HashMap<String, i64>,
    pub carts: HashMap<String, Cart>,
    pub lines: HashMap<String, BTreeMap<Sku, i64>>,
    pub deadlines: BTreeMap<String, i64>,
    pub orders: Vec<OrderEntry>,
    pub published: Vec<(Sku, i64)>,
    /// Cart → when it is to be removed (unix ms).
    pub removals: BTreeMap<String, i64>,
    /// What the consumer groups still need (set by a test; `None`: no group).
    pub orders_needed_from: Option<StreamId>,
    /// Every `XTRIM MINID` asked for, in order.
    pub trims: Vec<StreamId>,
    /// Keys that hold "another type": guard fails on them.
    pub wrong_type: HashSet<String>,
}

impl Store for MemStore {
    fn has_sale(&mut self) -> Result<bool> {
        Ok(self.sale.is_some())
    }

    fn now_ms(&mut self) -> i64 {
        self.now_ms
    }

    fn clock_us(&mut self) -> i64 {
        self.clock_us += self.clock_step_us;
        self.clock_us
    }

    fn guard(&mut self, keys: &[SaleKey], cart: Option<&str>) -> Result<()> {
        let hit = keys
            .iter()
            .any(|k| self.wrong_type.contains(&format!("{k:?}")))
            || cart.is_some_and(|c| self.wrong_type.contains(c));
        if hit {
            Err(Error::wrong_type())
        } else {
            Ok(())
        }
    }

    fn sale(&mut self) -> Result<Option<Sale>> {
        Ok(self.sale.clone())
    }

    fn set_sale(&mut self, sale: &Sale) -> Result<()> {
        self.sale = Some(sale.clone());
        Ok(())
    }

    fn units(&mut self, counter: Counter, sku: Sku) -> Result<Option<i64>> {
        Ok(self.counters.get(&(counter, sku)).copied())
    }

    fn set_units(&mut self, counter: Counter, sku: Sku, units: i64) -> Result<()> {
        self.counters.insert((counter, sku), units);
        Ok(())
    }

    fn all_units(&mut self) -> Result<Vec<(Sku, Counter, i64)>> {
        Ok(self
            .counters
            .iter()
            .map(|((counter, sku), units)| (*sku, *counter, *units))
            .collect())
    }

    fn user_units(&mut self, user: &str) -> Result<i64> {
        Ok(self.users.get(user).copied().unwrap_or(0))
    }

    fn set_user_units(&mut self, user: &str, units: i64) -> Result<()> {
        if units == 0 {
            self.users.remove(user);
        } else {
            self.users.insert(user.to_owned(), units);
        }
        Ok(())
    }

    fn cart(&mut self, cart: &str) -> Result<Option<Cart>> {
        Ok(self.carts.get(cart).cloned())
    }

    fn set_cart(&mut self, cart: &str, fields: &Cart) -> Result<()> {
        self.carts.insert(cart.to_owned(), fields.clone());
        Ok(())
    }

    fn cart_line(&mut self, cart: &str, sku: Sku) -> Result<i64> {
        Ok(self
            .lines
            .get(cart)
            .and_then(|l| l.get(&sku))
            .copied()
            .unwrap_or(0))
    }

    fn set_cart_line(&mut self, cart: &str, sku: Sku, qty: i64) -> Result<()> {
        let lines = self.lines.entry(cart.to_owned()).or_default();
        if qty == 0 {
            lines.remove(&sku);
        } else {
            lines.insert(sku, qty);
        }
        Ok(())
    }

    fn cart_lines(&mut self, cart: &str) -> Result<Vec<(Sku, i64)>> {
        Ok(self
            .lines
            .get(cart)
            .map(|l| l.iter().map(|(s, q)| (*s, *q)).collect())
            .unwrap_or_default())
    }

    fn remove_cart_at(&mut self, cart: &str, at_ms: i64) -> Result<()> {
        self.removals.insert(cart.to_owned(), at_ms);
        Ok(())
    }

    fn add_deadline(&mut self, cart: &str, deadline_ms: i64) -> Result<()> {
        self.deadlines.insert(cart.to_owned(), deadline_ms);
        Ok(())
    }

    fn remove_deadline(&mut self, cart: &str) -> Result<()> {
        self.deadlines.remove(cart);
        Ok(())
    }

    fn due_carts(&mut self, now_ms: i64, count: i64) -> Result<Vec<String>> {
        let mut due: Vec<(i64, String)> = self
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now_ms)
            .map(|(c, d)| (*d, c.clone()))
            .collect();
        due.sort();
        due.truncate(usize::try_from(count).unwrap_or(0));
        Ok(due.into_iter().map(|(_, cart)| cart).collect())
    }

    fn held_carts(&mut self) -> Result<i64> {
        Ok(self.deadlines.len() as i64)
    }

    fn append_order(&mut self, order: &OrderEntry) -> Result<String> {
        self.orders.push(order.clone());
        Ok(format!("{}-{}", self.now_ms, self.orders.len()))
    }

    fn orders_needed_from(&mut self) -> Result<Option<StreamId>> {
        Ok(self.orders_needed_from)
    }

    fn trim_orders(&mut self, min_id: StreamId) -> Result<i64> {
        self.trims.push(min_id);
        Ok(0)
    }

    fn publish_available(&mut self, sku: Sku, available: i64) {
        self.published.push((sku, available));
    }
}
