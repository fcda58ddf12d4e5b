use super::{add_units, add_user_units, keyword, require_cart, require_sale, retire_cart};
use crate::args::Args;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::Counter;
use crate::keys::SaleKey;
use crate::model::{Cart, CartState};
use crate::reply::Reply;
use crate::store::Store;

/// The database's verdict on a checked-out order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Written to the database: pending units become sold.
    Ok,
    /// Refused by the database: pending units return to available.
    Reject,
}

impl Verdict {
    /// The word FLASH.SETTLE takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => keyword::OK,
            Verdict::Reject => keyword::REJECT,
        }
    }
}

/// The worker's verdict once the database has the order (OK) or refused it (REJECT).
/// Idempotent: the same verdict again replies the same and changes nothing; a contradicting
/// verdict is BADSTATE.
///
/// # Format
/// `FLASH.SETTLE sale order OK|REJECT`
///
/// Replies the order's state: `settled` or `rejected`. The settled or rejected cart is kept
/// for the sale's RETAIN, then removed (a verdict after that is NOCART).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settle {
    pub sale: String,
    pub order: String,
    pub verdict: Verdict,
}

impl Settle {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Settle> {
        let sale = args.token("sale")?;
        let order = args.token("order")?;
        let verdict = match args.keyword()?.as_str() {
            keyword::OK => Verdict::Ok,
            keyword::REJECT => Verdict::Reject,
            _ => return Err(Error::new(ErrorCode::Err, "verdict must be OK or REJECT")),
        };
        Ok(Settle {
            sale,
            order,
            verdict,
        })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.extend([
            self.sale.clone(),
            self.order.clone(),
            self.verdict.as_str().to_owned(),
        ]);
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        let now_ms = store.now_ms();
        let sale = require_sale(store, &self.sale)?;
        let cart = require_cart(store, &self.order)?;
        let target = match self.verdict {
            Verdict::Ok => CartState::Settled,
            Verdict::Reject => CartState::Rejected,
        };
        if cart.state == target {
            return Ok(Reply::Status(target.as_str()));
        }
        if cart.state != CartState::CheckedOut {
            return Err(Error::bad_state(&self.order, cart.state.as_str()));
        }
        let lines = store.cart_lines(&self.order)?;
        let destination = match self.verdict {
            Verdict::Ok => Counter::Sold,
            Verdict::Reject => Counter::Available,
        };
        store.guard(&[SaleKey::Stock, SaleKey::Users], Some(&self.order))?;

        for &(sku, qty) in &lines {
            add_units(store, Counter::Pending, sku, -qty)?;
            let units = add_units(store, destination, sku, qty)?;
            if destination == Counter::Available {
                store.publish_available(sku, units);
            }
        }
        if self.verdict == Verdict::Reject {
            // Refused units no longer count against the user's LIMIT.
            add_user_units(store, &cart.user, -cart.units)?;
        }
        store.set_cart(
            &self.order,
            &Cart {
                state: target,
                ..cart
            },
        )?;
        retire_cart(store, &sale, &self.order, now_ms)?;
        Ok(Reply::Status(target.as_str()))
    }
}
