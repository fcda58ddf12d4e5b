use super::{require_cart, require_sale};
use crate::args::Args;
use crate::error::Result;
use crate::names::reply;
use crate::reply::Reply;
use crate::store::Store;

/// A cart's (or order's) state.
///
/// # Format
/// `FLASH.CART sale cart`
///
/// Replies field/value pairs: `state` (held, checked_out, settled, rejected, expired),
/// `user`, `deadline_ms`, `units`, `lines` (a flat array `sku, qty, …` ascending by SKU) and
/// `entry` (the order's stream id, nil before checkout). A held cart past its deadline
/// reads `held` until the expiry runs (within 100 ms with the module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartInfo {
    pub sale: String,
    pub cart: String,
}

impl CartInfo {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<CartInfo> {
        Ok(CartInfo {
            sale: args.token("sale")?,
            cart: args.token("cart")?,
        })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.extend([self.sale.clone(), self.cart.clone()]);
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        require_sale(store, &self.sale)?;
        let cart = require_cart(store, &self.cart)?;
        let lines = store.cart_lines(&self.cart)?;
        Ok(Reply::Array(vec![
            Reply::label(reply::STATE),
            Reply::bulk(cart.state.as_str()),
            Reply::label(reply::USER),
            Reply::Bulk(cart.user),
            Reply::label(reply::DEADLINE_MS),
            Reply::Int(cart.deadline_ms),
            Reply::label(reply::UNITS),
            Reply::Int(cart.units),
            Reply::label(reply::LINES),
            Reply::ints(lines.into_iter().flat_map(|(sku, qty)| [sku, qty])),
            Reply::label(reply::ENTRY),
            cart.entry.map_or(Reply::Nil, Reply::Bulk),
        ]))
    }
}
