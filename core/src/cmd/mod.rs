//! The commands, one file each. [`Command::parse`] reads a command line; [`Command::apply`]
//! runs it against a [`Store`] holding that sale.

mod available;
mod buy;
mod cart;
mod checkout;
mod expire;
mod info;
mod load;
mod release;
mod reserve;
mod sale;
mod settle;

pub use available::Available;
pub use buy::Buy;
pub use cart::CartInfo;
pub use checkout::Checkout;
pub use expire::Expire;
pub use info::Info;
pub use load::Load;
pub use release::Release;
pub use reserve::Reserve;
pub use sale::SaleCmd;
pub use settle::{Settle, Verdict};

use crate::Sku;
use crate::args::Args;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::Counter;
use crate::model::{Cart, CartState, Sale};
use crate::reply::Reply;
use crate::store::Store;

/// Registration facts of one command: every command's first argument is its sale, declared
/// as the key (first 1, last 1, step 1) so cluster-aware clients route it.
#[derive(Clone, Copy, Debug)]
pub struct CommandInfo {
    pub name: &'static str,
    pub writes: bool,
}

pub const COMMANDS: [CommandInfo; 11] = [
    CommandInfo {
        name: "FLASH.SALE",
        writes: true,
    },
    CommandInfo {
        name: "FLASH.LOAD",
        writes: true,
    },
    CommandInfo {
        name: "FLASH.AVAILABLE",
        writes: false,
    },
    CommandInfo {
        name: "FLASH.RESERVE",
        writes: true,
    },
    CommandInfo {
        name: "FLASH.RELEASE",
        writes: true,
    },
    CommandInfo {
        name: "FLASH.CHECKOUT",
        writes: true,
    },
    CommandInfo {
        name: "FLASH.BUY",
        writes: true,
    },
    CommandInfo {
        name: "FLASH.SETTLE",
        writes: true,
    },
    CommandInfo {
        name: "FLASH.EXPIRE",
        writes: true,
    },
    CommandInfo {
        name: "FLASH.CART",
        writes: false,
    },
    CommandInfo {
        name: "FLASH.INFO",
        writes: false,
    },
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Sale(SaleCmd),
    Load(Load),
    Available(Available),
    Reserve(Reserve),
    Release(Release),
    Checkout(Checkout),
    Buy(Buy),
    Settle(Settle),
    Expire(Expire),
    Cart(CartInfo),
    Info(Info),
}

impl Command {
    /// Parses `name args…`; `name` is matched case-insensitively. Leftover arguments are an
    /// error, never ignored.
    pub fn parse(name: &str, args: &[&[u8]]) -> Result<Command> {
        let info = COMMANDS
            .iter()
            .find(|info| info.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::new(ErrorCode::Err, format!("unknown command '{name}'")))?;
        let mut args = Args::new(info.name, args);
        let command = match info.name {
            "FLASH.SALE" => Command::Sale(SaleCmd::parse(&mut args)?),
            "FLASH.LOAD" => Command::Load(Load::parse(&mut args)?),
            "FLASH.AVAILABLE" => Command::Available(Available::parse(&mut args)?),
            "FLASH.RESERVE" => Command::Reserve(Reserve::parse(&mut args)?),
            "FLASH.RELEASE" => Command::Release(Release::parse(&mut args)?),
            "FLASH.CHECKOUT" => Command::Checkout(Checkout::parse(&mut args)?),
            "FLASH.BUY" => Command::Buy(Buy::parse(&mut args)?),
            "FLASH.SETTLE" => Command::Settle(Settle::parse(&mut args)?),
            "FLASH.EXPIRE" => Command::Expire(Expire::parse(&mut args)?),
            "FLASH.CART" => Command::Cart(CartInfo::parse(&mut args)?),
            _ => Command::Info(Info::parse(&mut args)?),
        };
        args.finish()?;
        Ok(command)
    }

    /// The sale the command acts on (its key).
    pub fn sale(&self) -> &str {
        match self {
            Command::Sale(c) => &c.sale,
            Command::Load(c) => &c.sale,
            Command::Available(c) => &c.sale,
            Command::Reserve(c) => &c.sale,
            Command::Release(c) => &c.sale,
            Command::Checkout(c) => &c.sale,
            Command::Buy(c) => &c.reserve.sale,
            Command::Settle(c) => &c.sale,
            Command::Expire(c) => &c.sale,
            Command::Cart(c) => &c.sale,
            Command::Info(c) => &c.sale,
        }
    }

    pub fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        match self {
            Command::Sale(c) => c.apply(store),
            Command::Load(c) => c.apply(store),
            Command::Available(c) => c.apply(store),
            Command::Reserve(c) => c.apply(store),
            Command::Release(c) => c.apply(store),
            Command::Checkout(c) => c.apply(store),
            Command::Buy(c) => c.apply(store),
            Command::Settle(c) => c.apply(store),
            Command::Expire(c) => c.apply(store).map(Reply::Int),
            Command::Cart(c) => c.apply(store),
            Command::Info(c) => c.apply(store),
        }
    }
}

/// The sale's settings, or NOSALE.
fn require_sale(store: &mut impl Store, sale: &str) -> Result<Sale> {
    store.sale()?.ok_or_else(|| Error::no_sale(sale))
}

/// The cart, or NOCART.
fn require_cart(store: &mut impl Store, cart: &str) -> Result<Cart> {
    store.cart(cart)?.ok_or_else(|| Error::no_cart(cart))
}

/// Refuses a cart of another user (NOTOWNER).
fn check_owner(cart_id: &str, cart: &Cart, user: &str) -> Result<()> {
    if cart.user == user {
        Ok(())
    } else {
        Err(Error::not_owner(cart_id))
    }
}

/// Refuses a cart that can no longer change: EXPIRED when its hold ran out (whether or not
/// the expiry has run yet), BADSTATE when it was checked out.
fn check_live(cart_id: &str, cart: &Cart, now_ms: i64) -> Result<()> {
    match cart.state {
        CartState::Held if now_ms < cart.deadline_ms => Ok(()),
        CartState::Held | CartState::Expired => Err(Error::expired(cart_id)),
        state => Err(Error::bad_state(cart_id, state.as_str())),
    }
}

/// Adds `delta` to a SKU's counter; returns the new value.
fn add_units(store: &mut impl Store, counter: Counter, sku: Sku, delta: i64) -> Result<i64> {
    let units = store.units(counter, sku)?.unwrap_or(0) + delta;
    store.set_units(counter, sku, units)?;
    Ok(units)
}

/// Adds `delta` to the user's units in the sale.
fn add_user_units(store: &mut impl Store, user: &str, delta: i64) -> Result<()> {
    let units = store.user_units(user)? + delta;
    store.set_user_units(user, units)
}

/// The reply of CHECKOUT and BUY: `[order, entry, units]`.
fn order_reply(order: &str, cart: &Cart) -> Reply {
    Reply::Array(vec![
        Reply::bulk(order),
        cart.entry.clone().map_or(Reply::Nil, Reply::Bulk),
        Reply::Int(cart.units),
    ])
}

#[cfg(test)]
mod tests;
