use super::{add_units, check_live, check_owner, order_reply, require_cart, require_sale};
use crate::args::Args;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::Counter;
use crate::keys::SaleKey;
use crate::model::{Cart, CartState, OrderEntry};
use crate::reply::Reply;
use crate::store::Store;

/// Turns a held, unexpired, non-empty cart into an order: its units move from held to
/// pending, it stops counting as held (it can never expire now: its deadline entry is
/// dropped when it comes due), and ONE entry is appended
/// to the order stream. Repeating it returns the same order and appends nothing.
///
/// # Format
/// `FLASH.CHECKOUT sale cart user`
///
/// Checks, in order: NOSALE, NOCART, NOTOWNER; an order already made is returned as it is;
/// then CLOSED, EXPIRED, EMPTY. Replies `[order, entry_id, units]`. In a sale with a
/// waiting room the checkout ends the user's admission (its place under the CAP frees).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    pub sale: String,
    pub cart: String,
    pub user: String,
}

impl Checkout {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Checkout> {
        Ok(Checkout {
            sale: args.token("sale")?,
            cart: args.token("cart")?,
            user: args.token("user")?,
        })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.extend([self.sale.clone(), self.cart.clone(), self.user.clone()]);
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        let now_ms = store.now_ms();
        let sale = require_sale(store, &self.sale)?;
        let cart = require_cart(store, &self.cart)?;
        check_owner(&self.cart, &cart, &self.user)?;
        if cart.state.is_order() {
            return Ok(order_reply(&self.cart, &cart));
        }
        if !sale.is_open(now_ms) {
            return Err(Error::closed(&self.sale));
        }
        check_live(&self.cart, &cart, now_ms)?;
        if cart.units == 0 {
            return Err(Error::new(
                ErrorCode::Empty,
                format!("cart '{}' holds no units", self.cart),
            ));
        }
        let lines = store.cart_lines(&self.cart)?;
        // The admission is used up: its place under the waiting room's CAP goes to the next
        // shopper.
        let admitted = sale.queue.is_on() && store.score(SaleKey::Admitted, &cart.user)?.is_some();
        store.guard(&[SaleKey::Stock, SaleKey::Orders], Some(&self.cart))?;

        for &(sku, qty) in &lines {
            add_units(store, Counter::Held, sku, -qty)?;
            add_units(store, Counter::Pending, sku, qty)?;
        }
        let entry = store.append_order(&OrderEntry {
            order: self.cart.clone(),
            user: cart.user.clone(),
            lines,
            units: cart.units,
        })?;
        let held_carts = store.held_carts()?;
        store.set_held_carts(held_carts - 1)?;
        let order = Cart {
            state: CartState::CheckedOut,
            entry: Some(entry),
            ..cart
        };
        if admitted {
            store.set_score(SaleKey::Admitted, &order.user, None)?;
        }
        store.set_cart(&self.cart, &order)?;
        Ok(order_reply(&self.cart, &order))
    }
}
