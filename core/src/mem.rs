//! An in-memory [`Store`] for the unit tests: the rules checked without Redis. The real
//! storage is tested against a real redis-server in `tests/`.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::Sku;
use crate::error::{Error, Result};
use crate::keys::Counter;
use crate::keys::SaleKey;
use crate::model::{Cart, Lanes, OrderEntry, Sale};
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
    /// Each deadline list (by hold, ms): (deadline, cart) in the order added.
    pub deadlines: BTreeMap<i64, Vec<(i64, String)>>,
    /// Entries [`Store::due_carts`] returned and not yet removed, in order: their lists.
    pub due_returned: Vec<i64>,
    pub held_carts: i64,
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
    /// The waiting room's sorted sets: user → score.
    pub zsets: HashMap<SaleKey, HashMap<String, i64>>,
    /// The waiting room's counters.
    pub queue_counters: HashMap<&'static str, i64>,
}

impl MemStore {
    /// A sorted set's members, lowest score first (equal scores by name).
    fn sorted(&self, set: SaleKey) -> Vec<(String, i64)> {
        let mut members: Vec<(String, i64)> = self
            .zsets
            .get(&set)
            .map(|m| m.iter().map(|(u, s)| (u.clone(), *s)).collect())
            .unwrap_or_default();
        members.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        members
    }
}

impl MemStore {
    /// What a new command starts from: a real store is made per command, so what
    /// [`Store::due_carts`] returned to the previous one is forgotten.
    pub fn begin_command(&mut self) {
        self.due_returned.clear();
    }
}

impl Store for MemStore {
    fn score(&mut self, set: SaleKey, user: &str) -> Result<Option<i64>> {
        Ok(self.zsets.get(&set).and_then(|m| m.get(user)).copied())
    }

    fn set_score(&mut self, set: SaleKey, user: &str, score: Option<i64>) -> Result<()> {
        let members = self.zsets.entry(set).or_default();
        match score {
            Some(score) => members.insert(user.to_owned(), score),
            None => members.remove(user),
        };
        Ok(())
    }

    fn rank(&mut self, set: SaleKey, user: &str) -> Result<Option<i64>> {
        Ok(self
            .sorted(set)
            .iter()
            .position(|(u, _)| u == user)
            .map(|i| i as i64))
    }

    fn count(&mut self, set: SaleKey) -> Result<i64> {
        Ok(self.zsets.get(&set).map_or(0, |m| m.len() as i64))
    }

    fn lowest(&mut self, set: SaleKey, max_score: i64, count: i64) -> Result<Vec<(String, i64)>> {
        Ok(self
            .sorted(set)
            .into_iter()
            .filter(|(_, score)| *score <= max_score)
            .take(usize::try_from(count).unwrap_or(0))
            .collect())
    }

    fn queue_counter(&mut self, field: crate::names::Name) -> Result<i64> {
        Ok(self
            .queue_counters
            .get(field.as_str())
            .copied()
            .unwrap_or(0))
    }

    fn set_queue_counter(&mut self, field: crate::names::Name, value: i64) -> Result<()> {
        self.queue_counters.insert(field.as_str(), value);
        Ok(())
    }

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

    fn guard_lane(&mut self, hold_ms: i64) -> Result<()> {
        if self.wrong_type.contains(&format!("lane:{hold_ms}")) {
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

    fn add_deadline(&mut self, cart: &str, deadline_ms: i64, hold_ms: i64) -> Result<()> {
        let lane = self.deadlines.entry(hold_ms).or_default();
        lane.push((deadline_ms, cart.to_owned()));
        Ok(())
    }

    fn remove_deadline(&mut self) -> Result<()> {
        if !self.due_returned.is_empty() {
            let hold_ms = self.due_returned.remove(0);
            if let Some(lane) = self.deadlines.get_mut(&hold_ms) {
                lane.remove(0);
                if lane.is_empty() {
                    self.deadlines.remove(&hold_ms);
                }
            }
        }
        Ok(())
    }

    fn due_carts(&mut self, lanes: &Lanes, now_ms: i64, count: i64) -> Result<Vec<(String, i64)>> {
        let mut due: Vec<(i64, String, i64)> = Vec::new();
        for hold_ms in lanes.iter() {
            let returned = self.due_returned.iter().filter(|&&h| h == hold_ms).count();
            let entries = self
                .deadlines
                .get(&hold_ms)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            due.extend(
                entries
                    .iter()
                    .skip(returned)
                    .take_while(|(deadline_ms, _)| *deadline_ms <= now_ms)
                    .map(|(deadline_ms, cart)| (*deadline_ms, cart.clone(), hold_ms)),
            );
        }
        due.sort_by_key(|(deadline_ms, _, _)| *deadline_ms);
        due.truncate(usize::try_from(count).unwrap_or(0));
        self.due_returned
            .extend(due.iter().map(|(_, _, hold_ms)| *hold_ms));
        Ok(due
            .into_iter()
            .map(|(deadline_ms, cart, _)| (cart, deadline_ms))
            .collect())
    }

    fn lane_len(&mut self, hold_ms: i64) -> Result<i64> {
        Ok(self
            .deadlines
            .get(&hold_ms)
            .map_or(0, |lane| lane.len() as i64))
    }

    fn held_carts(&mut self) -> Result<i64> {
        Ok(self.held_carts)
    }

    fn set_held_carts(&mut self, carts: i64) -> Result<()> {
        self.held_carts = carts;
        Ok(())
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
