use super::{add_units, add_user_units, count_option, keyword, require_sale, retire_cart};
use crate::args::{Args, DEFAULT_EXPIRE_COUNT, EXPIRE_BUDGET_US, MAX_EXPIRE_COUNT};
use crate::error::{ErrorCode, Result};
use crate::keys::Counter;
use crate::keys::SaleKey;
use crate::model::{Cart, CartState, Sale};
use crate::store::Store;
use crate::wire::StreamId;

/// Due deadlines read per look: a call stopped by its budget after a few hundred carts has
/// not read (and allocated) the thousands COUNT allowed.
const DUE_CHUNK: i64 = 64;

/// Releases holds past their deadline: each cart's units return to available and the cart
/// becomes `expired` (kept for the sale's RETAIN, then removed). Looks at the `COUNT`
/// earliest deadlines (default 1000), and stops after about a millisecond of work
/// ([`EXPIRE_BUDGET_US`]) whatever COUNT says, so one call never stalls Redis's thread: a
/// caller with a backlog calls again while the reply is above 0. Then trims the order
/// stream: entries every consumer group has acknowledged and older than RETAIN go (none
/// while the stream has no group, none with RETAIN 0); the dead letters are never trimmed.
///
/// # Format
/// `FLASH.EXPIRE sale [COUNT n]`
///
/// Replies the number of carts expired. The module also does both by itself on a master;
/// with the Lua twin something must call it periodically (the worker does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expire {
    pub sale: String,
    pub count: i64,
}

impl Expire {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Expire> {
        let sale = args.token("sale")?;
        let count = count_option(args, DEFAULT_EXPIRE_COUNT, MAX_EXPIRE_COUNT)?;
        Ok(Expire { sale, count })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.extend([
            self.sale.clone(),
            keyword::COUNT.to_owned(),
            self.count.to_string(),
        ]);
    }

    /// Releases due holds, then trims the order stream; returns how many carts expired.
    pub fn apply(&self, store: &mut impl Store) -> Result<i64> {
        // The trim reads the order stream: a key of another type there must refuse the
        // command before the release has written anything.
        if store.sale()?.is_some_and(|sale| sale.retain_ms > 0) {
            store.guard(&[SaleKey::Orders], None)?;
        }
        let expired = self.release_due(store)?;
        self.trim_orders(store)?;
        Ok(expired)
    }

    /// Removes the order-stream entries no consumer group needs any more and older than the
    /// sale's RETAIN (so a late reader of the stream, or an operator, still sees a day of
    /// orders); returns how many went.
    pub fn trim_orders(&self, store: &mut impl Store) -> Result<i64> {
        let now_ms = store.now_ms();
        let sale = require_sale(store, &self.sale)?;
        if sale.retain_ms == 0 {
            return Ok(0);
        }
        let Some(needed) = store.orders_needed_from()? else {
            return Ok(0);
        };
        let retained_from = StreamId::at_ms(u64::try_from(now_ms - sale.retain_ms).unwrap_or(0));
        let min_id = needed.min(retained_from);
        if min_id == StreamId::default() {
            return Ok(0);
        }
        store.guard(&[SaleKey::Orders], None)?;
        store.trim_orders(min_id)
    }

    /// Releases holds past their deadline, earliest first: at most `count`, and for at most
    /// [`EXPIRE_BUDGET_US`] of work (the deadlines are read a chunk at a time, so a call
    /// that stops early has not read ids it will not use). Returns how many carts expired.
    pub fn release_due(&self, store: &mut impl Store) -> Result<i64> {
        let now_ms = store.now_ms();
        let sale: Sale = require_sale(store, &self.sale)?;
        let stop_at_us = store.clock_us().saturating_add(EXPIRE_BUDGET_US);
        let mut looked = 0;
        let mut expired = 0;
        let lanes = sale.lanes_to_look_at();
        while looked < self.count {
            let chunk = (self.count - looked).min(DUE_CHUNK);
            let due = store.due_carts(&lanes, now_ms, chunk)?;
            if due.is_empty() {
                break;
            }
            if looked == 0 {
                store.guard(&[SaleKey::Stock, SaleKey::Users], None)?;
            }
            for (cart_id, _) in &due {
                looked += 1;
                if self.release(store, &sale, cart_id, now_ms)? {
                    expired += 1;
                }
                if store.clock_us() >= stop_at_us {
                    return Ok(expired);
                }
            }
        }
        Ok(expired)
    }

    /// Releases the hold of a due entry's cart; false if the entry was stale (dropped,
    /// nothing else): its cart gone, checked out, or a later cart of the same id whose own
    /// deadline is still ahead (that cart's entry comes later in a list).
    fn release(
        &self,
        store: &mut impl Store,
        sale: &Sale,
        cart_id: &str,
        now_ms: i64,
    ) -> Result<bool> {
        store.remove_deadline()?;
        // A deadline whose cart is gone, no longer held, not yet due, or not a Flash cart at
        // all (a key of another type, a string that is no cart record: written by hand) is
        // stale. Dropping it is all there is to do, and one bad key must not stall the
        // sale's expiry.
        let cart = match store
            .guard(&[], Some(cart_id))
            .and_then(|()| store.cart(cart_id))
        {
            Ok(Some(cart)) if cart.state == CartState::Held && cart.deadline_ms <= now_ms => cart,
            Ok(_) => return Ok(false),
            Err(error) if error.code == ErrorCode::WrongType => return Ok(false),
            Err(error) => return Err(error),
        };
        for (sku, qty) in store.cart_lines(cart_id)? {
            add_units(store, Counter::Held, sku, -qty)?;
            let available = add_units(store, Counter::Available, sku, qty)?;
            store.publish_available(sku, available);
        }
        add_user_units(store, &cart.user, -cart.units)?;
        let held_carts = store.held_carts()?;
        store.set_held_carts(held_carts - 1)?;
        store.set_cart(
            cart_id,
            &Cart {
                state: CartState::Expired,
                ..cart
            },
        )?;
        retire_cart(store, sale, cart_id, now_ms)?;
        Ok(true)
    }
}
