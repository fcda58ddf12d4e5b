use super::position::live_admission;
use super::{add_units, add_user_units, check_live, check_owner, require_sale, write_line_args};
use crate::Sku;
use crate::args::{Args, MAX_UNITS};
use crate::error::{Error, ErrorCode, Result};
use crate::keys::Counter;
use crate::keys::SaleKey;
use crate::model::{Cart, CartState};
use crate::reply::Reply;
use crate::store::Store;

/// What follows a reserve in the same command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Nothing: a new cart waits for its deadline (FLASH.RESERVE).
    Wait,
    /// A checkout (FLASH.BUY): the cart never waits, so it gets no deadline entry.
    CheckOut,
}

/// The bouncer: takes `qty` units of a SKU into a cart, or refuses and changes nothing.
///
/// # Format
/// `FLASH.RESERVE sale cart user sku [qty]`
///
/// Checks, in order: the sale exists (NOSALE) and is open (CLOSED); when it has a waiting
/// room, the user holds a live admission (NOTADMITTED); the SKU is loaded
/// (NOSKU); an existing cart is the user's (NOTOWNER), held and before its deadline
/// (EXPIRED, BADSTATE); the user stays within LIMIT, and within MAX_UNITS (10^9) whatever
/// LIMIT says; enough units are available (SOLDOUT).
/// A new cart's deadline is now + HOLD; later reserves never extend it. A new cart carries
/// the user's admission to its deadline, so the shopper may fill it until then.
///
/// Replies `[available, deadline_ms, cart_units]`: the SKU's units left, the cart's
/// deadline and the units in the cart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserve {
    pub sale: String,
    pub cart: String,
    pub user: String,
    pub sku: Sku,
    pub qty: i64,
}

impl Reserve {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Reserve> {
        Ok(Reserve {
            sale: args.token("sale")?,
            cart: args.token("cart")?,
            user: args.token("user")?,
            sku: args.sku()?,
            qty: args.qty()?,
        })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        write_line_args(out, &self.sale, &self.cart, &self.user, self.sku, self.qty);
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        let (available, cart) = self.reserve(store, Then::Wait)?;
        Ok(Reply::ints([available, cart.deadline_ms, cart.units]))
    }

    /// Reserves; returns the SKU's units left and the cart as it now is.
    pub(crate) fn reserve(&self, store: &mut impl Store, then: Then) -> Result<(i64, Cart)> {
        let now_ms = store.now_ms();
        let sale = require_sale(store, &self.sale)?;
        if !sale.is_open(now_ms) {
            return Err(Error::closed(&self.sale));
        }
        let admission = if sale.queue.is_on() {
            let until_ms = live_admission(store, &self.user, now_ms)?
                .ok_or_else(|| Error::not_admitted(&self.sale, &self.user))?;
            Some(until_ms)
        } else {
            None
        };
        let available = store.units(Counter::Available, self.sku)?.ok_or_else(|| {
            Error::new(
                ErrorCode::NoSku,
                format!("sku {} is not loaded in sale '{}'", self.sku, self.sale),
            )
        })?;
        let existing = store.cart(&self.cart)?;
        if let Some(cart) = &existing {
            check_owner(&self.cart, cart, &self.user)?;
            check_live(&self.cart, cart, now_ms)?;
        }
        let user_units = store.user_units(&self.user)?;
        if sale.limit > 0 && user_units + self.qty > sale.limit {
            return Err(Error::new(
                ErrorCode::Limit,
                format!(
                    "at most {} units per user in this sale; user '{}' has {}",
                    sale.limit, self.user, user_units
                ),
            ));
        }
        // The engine's own bound, whatever the sale's LIMIT: a user's units (so each of
        // their carts) stay at or under MAX_UNITS. A user's units are at least any one of
        // their carts', so the cart is bounded too.
        if user_units + self.qty > MAX_UNITS {
            return Err(Error::new(
                ErrorCode::Limit,
                format!(
                    "at most {MAX_UNITS} units per user in a sale; user '{}' has {}",
                    self.user, user_units
                ),
            ));
        }
        if available < self.qty {
            return Err(Error::new(
                ErrorCode::SoldOut,
                format!("sku {} has {} units left", self.sku, available),
            ));
        }

        store.guard(&[SaleKey::Stock, SaleKey::Users], Some(&self.cart))?;
        if admission.is_some() {
            store.guard(&[SaleKey::Admitted], None)?;
        }
        let waits = existing.is_none() && then == Then::Wait;
        if waits {
            store.guard_lane(sale.hold_ms)?;
        }

        let left = available - self.qty;
        store.set_units(Counter::Available, self.sku, left)?;
        add_units(store, Counter::Held, self.sku, self.qty)?;
        add_user_units(store, &self.user, self.qty)?;
        let line = store.cart_line(&self.cart, self.sku)?;
        store.set_cart_line(&self.cart, self.sku, line + self.qty)?;
        let cart = match existing {
            Some(cart) => Cart {
                units: cart.units + self.qty,
                ..cart
            },
            None => {
                let deadline_ms = now_ms + sale.hold_ms;
                if waits {
                    store.add_deadline(&self.cart, deadline_ms, sale.hold_ms)?;
                }
                let held_carts = store.held_carts()?;
                store.set_held_carts(held_carts + 1)?;
                Cart {
                    state: CartState::Held,
                    user: self.user.clone(),
                    deadline_ms,
                    units: self.qty,
                    entry: None,
                }
            }
        };
        store.set_cart(&self.cart, &cart)?;
        if let Some(until_ms) = admission
            && waits
            && cart.deadline_ms > until_ms
        {
            store.set_score(SaleKey::Admitted, &self.user, Some(cart.deadline_ms))?;
        }
        store.publish_available(self.sku, left);
        Ok((left, cart))
    }
}
