//! The storage a sale lives in.
//!
//! Reads come first in every command and writes last, so a command that fails (a rule, or
//! a key of the wrong type found by [`Store::guard`]) has written nothing. Writes carry
//! absolute values, never increments: that is what the module replicates, so a replica or an
//! AOF replay lands on exactly the master's numbers.

use crate::Sku;
use crate::error::Result;
use crate::keys::{Counter, SaleKey};
use crate::model::{Cart, Lanes, OrderEntry, Sale};
use crate::names::Name;
use crate::wire::StreamId;

pub trait Store {
    /// The clock (unix ms). Read once per command.
    fn now_ms(&mut self) -> i64;

    /// A monotonic clock in microseconds (any origin), for work budgets: FLASH.EXPIRE stops
    /// after [`crate::args::EXPIRE_BUDGET_US`].
    fn clock_us(&mut self) -> i64;

    /// Fails with WRONGTYPE if any of these keys (or the cart's, if given) exists with
    /// another type. Called before the first write.
    fn guard(&mut self, keys: &[SaleKey], cart: Option<&str>) -> Result<()>;
    /// The same for the deadline list of carts held for `hold_ms`.
    fn guard_lane(&mut self, hold_ms: i64) -> Result<()>;

    fn sale(&mut self) -> Result<Option<Sale>>;
    /// Whether the sale exists, without reading its settings (FLASH.AVAILABLE's hot path).
    fn has_sale(&mut self) -> Result<bool>;
    fn set_sale(&mut self, sale: &Sale) -> Result<()>;

    /// A SKU's counter; `None` when the SKU has no field (never loaded).
    fn units(&mut self, counter: Counter, sku: Sku) -> Result<Option<i64>>;
    fn set_units(&mut self, counter: Counter, sku: Sku, units: i64) -> Result<()>;
    /// Every counter of every SKU, in any order.
    fn all_units(&mut self) -> Result<Vec<(Sku, Counter, i64)>>;

    fn user_units(&mut self, user: &str) -> Result<i64>;
    /// Sets the user's units; 0 removes the user (absent reads as 0), so the hash keeps only
    /// the users who hold, wait for or bought units, and memory returns after a sale.
    fn set_user_units(&mut self, user: &str, units: i64) -> Result<()>;

    /// The cart's scalar fields; WRONGTYPE for a key under its name that is not a cart.
    fn cart(&mut self, cart: &str) -> Result<Option<Cart>>;
    /// Writes the cart's scalar fields (creating the cart). `units` must be its lines' sum.
    fn set_cart(&mut self, cart: &str, fields: &Cart) -> Result<()>;
    fn cart_line(&mut self, cart: &str, sku: Sku) -> Result<i64>;
    /// Sets one line; 0 removes it.
    fn set_cart_line(&mut self, cart: &str, sku: Sku, qty: i64) -> Result<()>;
    /// Every line, ascending by SKU.
    fn cart_lines(&mut self, cart: &str) -> Result<Vec<(Sku, i64)>>;

    /// Removes the cart (key and all) at `at_ms`, unix ms: a finished cart past its sale's
    /// retention. The time is absolute, so a replica or an AOF replay removes it at the same
    /// moment as the master.
    fn remove_cart_at(&mut self, cart: &str, at_ms: i64) -> Result<()>;

    /// Appends the cart's deadline to the list of carts held for `hold_ms` (the sale's
    /// HOLD when the cart was made, so each list is in deadline order).
    fn add_deadline(&mut self, cart: &str, deadline_ms: i64, hold_ms: i64) -> Result<()>;
    /// Drops the first entry [`Store::due_carts`] returned and no earlier call dropped:
    /// the caller handles the due entries in the order given. A cart checked out keeps its
    /// entry until it comes due (dropping from the middle of a list costs a scan); expiry
    /// then finds the cart no longer held and drops the entry.
    fn remove_deadline(&mut self) -> Result<()>;
    /// Up to `count` entries of these lanes' lists whose deadline is at or before `now_ms`,
    /// earliest first, after those already returned by this command: each a cart and the
    /// deadline its entry carries.
    fn due_carts(&mut self, lanes: &Lanes, now_ms: i64, count: i64) -> Result<Vec<(String, i64)>>;
    /// Entries in the list of carts held for `hold_ms`.
    fn lane_len(&mut self, hold_ms: i64) -> Result<i64>;
    /// Carts in state `held` (a counter the rules keep: [`Store::set_held_carts`]).
    fn held_carts(&mut self) -> Result<i64>;
    fn set_held_carts(&mut self, carts: i64) -> Result<()>;

    /// Appends the order to the stream; returns the entry id.
    fn append_order(&mut self, order: &OrderEntry) -> Result<String>;

    /// The lowest order-stream id some consumer group still needs: its oldest entry
    /// delivered but not acknowledged, or else the last entry it was given (everything after
    /// is new to it). `None` when the stream has no group: then nobody has read anything.
    fn orders_needed_from(&mut self) -> Result<Option<StreamId>>;

    /// Removes the order-stream entries below `min_id` (`XTRIM MINID`); returns how many.
    fn trim_orders(&mut self, min_id: StreamId) -> Result<i64>;

    /// A user's score in one of the waiting room's sorted sets ([`SaleKey::Line`],
    /// [`SaleKey::Seen`], [`SaleKey::Admitted`]); `None` when the user is not in it.
    ///
    /// Unlike the hashes, these sets are written at once, so a later read of the same
    /// command sees the write; the rules still write only after their last check.
    fn score(&mut self, set: SaleKey, user: &str) -> Result<Option<i64>>;
    /// Sets a user's score; `None` removes the user.
    fn set_score(&mut self, set: SaleKey, user: &str, score: Option<i64>) -> Result<()>;
    /// The user's rank in the set from 0, lowest score first (equal scores by name), or
    /// `None` when the user is not in it.
    fn rank(&mut self, set: SaleKey, user: &str) -> Result<Option<i64>>;
    /// Users in the set.
    fn count(&mut self, set: SaleKey) -> Result<i64>;
    /// Up to `count` users with a score at or below `max_score`, lowest first.
    fn lowest(&mut self, set: SaleKey, max_score: i64, count: i64) -> Result<Vec<(String, i64)>>;
    /// One of the waiting room's counters ([`crate::names::queue`]); absent reads 0.
    fn queue_counter(&mut self, field: Name) -> Result<i64>;
    fn set_queue_counter(&mut self, field: Name, value: i64) -> Result<()>;

    /// Announces a SKU's new available units on the sale's channel.
    fn publish_available(&mut self, sku: Sku, available: i64);
}
