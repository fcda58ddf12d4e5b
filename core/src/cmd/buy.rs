use super::reserve::Then;
use super::{Checkout, Reserve, check_owner, order_reply, require_sale};
use crate::args::Args;
use crate::error::Result;
use crate::keys::SaleKey;
use crate::reply::Reply;
use crate::store::Store;

/// Reserve and check out in one command: a single-item order. The order id names the cart;
/// repeating the command for an order already made returns it and changes nothing.
///
/// # Format
/// `FLASH.BUY sale order user sku [qty]`
///
/// Errors are those of FLASH.RESERVE. Replies `[order, entry_id, units]` like FLASH.CHECKOUT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buy {
    pub reserve: Reserve,
}

impl Buy {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Buy> {
        Ok(Buy {
            reserve: Reserve {
                sale: args.token("sale")?,
                cart: args.token("order")?,
                user: args.token("user")?,
                sku: args.sku()?,
                qty: args.qty()?,
            },
        })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        self.reserve.write_args(out);
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        let r = &self.reserve;
        require_sale(store, &r.sale)?;
        if let Some(order) = store.cart(&r.cart)?.filter(|cart| cart.state.is_order()) {
            check_owner(&r.cart, &order, &r.user)?;
            return Ok(order_reply(&r.cart, &order));
        }
        // The checkout writes keys the reserve does not: their types are checked before the
        // reserve writes anything. Then, once the reserve succeeds, the checkout cannot fail:
        // the sale is open, the cart is held, non-empty and before its deadline at this
        // command's single clock reading.
        store.guard(&[SaleKey::Orders], Some(&r.cart))?;
        // The cart is checked out within this command: it never waits for a deadline.
        r.reserve(store, Then::CheckOut)?;
        Checkout {
            sale: r.sale.clone(),
            cart: r.cart.clone(),
            user: r.user.clone(),
        }
        .apply(store)
    }
}
