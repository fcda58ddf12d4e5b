use super::{
    add_units, add_user_units, check_live, check_owner, require_cart, require_sale, write_line_args,
};
use crate::Sku;
use crate::args::Args;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::Counter;
use crate::keys::SaleKey;
use crate::model::Cart;
use crate::reply::Reply;
use crate::store::Store;

/// Gives units of a held cart back (remove from cart). The cart keeps its deadline, even
/// when it becomes empty. Allowed after the sale closes: returning stock is always safe.
///
/// # Format
/// `FLASH.RELEASE sale cart user sku [qty]`
///
/// Replies `[available, deadline_ms, cart_units]` like FLASH.RESERVE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub sale: String,
    pub cart: String,
    pub user: String,
    pub sku: Sku,
    pub qty: i64,
}

impl Release {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Release> {
        Ok(Release {
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
        let now_ms = store.now_ms();
        require_sale(store, &self.sale)?;
        let cart = require_cart(store, &self.cart)?;
        check_owner(&self.cart, &cart, &self.user)?;
        check_live(&self.cart, &cart, now_ms)?;
        let line = store.cart_line(&self.cart, self.sku)?;
        if line == 0 {
            return Err(Error::new(
                ErrorCode::NoSku,
                format!("cart '{}' holds no units of sku {}", self.cart, self.sku),
            ));
        }
        if self.qty > line {
            return Err(Error::new(
                ErrorCode::Err,
                format!(
                    "cart '{}' holds only {} units of sku {}",
                    self.cart, line, self.sku
                ),
            ));
        }
        store.guard(&[SaleKey::Stock, SaleKey::Users], Some(&self.cart))?;

        let available = add_units(store, Counter::Available, self.sku, self.qty)?;
        add_units(store, Counter::Held, self.sku, -self.qty)?;
        add_user_units(store, &self.user, -self.qty)?;
        store.set_cart_line(&self.cart, self.sku, line - self.qty)?;
        let cart = Cart {
            units: cart.units - self.qty,
            ..cart
        };
        store.set_cart(&self.cart, &cart)?;
        store.publish_available(self.sku, available);
        Ok(Reply::ints([available, cart.deadline_ms, cart.units]))
    }
}
