//! The commands, one file each. [`Command::parse`] reads a command line; [`Command::apply`]
//! runs it against a [`Store`] holding that sale.

mod admit;
mod available;
mod buy;
mod cart;
mod checkout;
mod expire;
mod info;
mod join;
mod load;
mod position;
mod release;
mod reserve;
mod sale;
mod settle;

pub use admit::Admit;
pub use available::Available;
pub use buy::Buy;
pub use cart::CartInfo;
pub use checkout::Checkout;
pub use expire::Expire;
pub use info::Info;
pub use join::Join;
pub use load::Load;
pub use position::Position;
pub use release::Release;
pub use reserve::Reserve;
pub use sale::SaleCmd;
pub use settle::{Settle, Verdict};

use crate::Sku;
use crate::args::Args;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::{Counter, SaleKey};
use crate::model::{Cart, CartState, Sale};
use crate::reply::Reply;
use crate::store::Store;

/// The option keywords of the commands (matched case-insensitively, sent upper-case).
pub mod keyword {
    /// FLASH.SALE's options.
    pub const HOLD: &str = "HOLD";
    pub const LIMIT: &str = "LIMIT";
    pub const START: &str = "START";
    pub const END: &str = "END";
    pub const RETAIN: &str = "RETAIN";
    /// FLASH.SALE's waiting-room options.
    pub const RATE: &str = "RATE";
    pub const CAP: &str = "CAP";
    pub const ADMIT: &str = "ADMIT";
    pub const IDLE: &str = "IDLE";
    pub const SEED: &str = "SEED";
    /// FLASH.LOAD's whole-stock form.
    pub const TOTAL: &str = "TOTAL";
    /// FLASH.SETTLE's verdicts.
    pub const OK: &str = "OK";
    pub const REJECT: &str = "REJECT";
    /// FLASH.EXPIRE's and FLASH.ADMIT's batch size.
    pub const COUNT: &str = "COUNT";
}

/// What everyone who sends, registers or routes a command needs to know about it, written
/// once (like Redis's own `src/commands/*.json`): the module registers each name with its
/// read/write flags from it, the client retries reads and builds the Lua twin's KEYS by it.
///
/// The arity is stated for readers and held to the parsers by a test, but not given to
/// Redis: Redis would then refuse a short line with its own arity error before the engine's
/// checks run, and a line such as `FLASH.RESERVE a{b}` must keep answering the engine's
/// error for the malformed sale name, from the module and the Lua twin alike.
///
/// Every command's first argument is its sale, declared as the key (first 1, last 1, step
/// 1), so cluster-aware clients route it.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Redis's convention: the name counts; negative means "at least" (`-5`: 5 or more).
    pub arity: i32,
    /// Writes the dataset (`write deny-oom`), or only reads (`readonly`: safe to repeat).
    pub writes: bool,
    /// The argument (0 = the sale, the first after the name) naming the cart or order the
    /// command acts on: its key is the one cart key the Lua twin is given.
    pub cart_arg: Option<usize>,
    /// The option keywords it accepts.
    pub keywords: &'static [&'static str],
}

impl CommandSpec {
    /// The spec of `name`, matched case-insensitively.
    pub fn find(name: &str) -> Option<&'static CommandSpec> {
        COMMANDS
            .iter()
            .find(|spec| spec.name.eq_ignore_ascii_case(name))
    }

    /// The cart or order a command line names (its arguments after the name), if any.
    pub fn cart_in<'a, T: AsRef<str>>(&self, args: &'a [T]) -> Option<&'a str> {
        self.cart_arg.and_then(|i| args.get(i)).map(AsRef::as_ref)
    }
}

const fn spec(
    name: &'static str,
    arity: i32,
    writes: bool,
    cart_arg: Option<usize>,
    keywords: &'static [&'static str],
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        writes,
        cart_arg,
        keywords,
    }
}

/// Every command, in [`Command`]'s order.
pub const COMMANDS: [CommandSpec; 14] = [
    spec(
        "FLASH.SALE",
        -2,
        true,
        None,
        &[
            keyword::HOLD,
            keyword::LIMIT,
            keyword::START,
            keyword::END,
            keyword::RETAIN,
            keyword::RATE,
            keyword::CAP,
            keyword::ADMIT,
            keyword::IDLE,
            keyword::SEED,
        ],
    ),
    spec("FLASH.LOAD", -4, true, None, &[keyword::TOTAL]),
    spec("FLASH.AVAILABLE", -3, false, None, &[]),
    spec("FLASH.RESERVE", -5, true, Some(1), &[]),
    spec("FLASH.RELEASE", -5, true, Some(1), &[]),
    spec("FLASH.CHECKOUT", 4, true, Some(1), &[]),
    spec("FLASH.BUY", -5, true, Some(1), &[]),
    spec(
        "FLASH.SETTLE",
        4,
        true,
        Some(1),
        &[keyword::OK, keyword::REJECT],
    ),
    spec("FLASH.EXPIRE", -2, true, None, &[keyword::COUNT]),
    spec("FLASH.CART", 3, false, Some(1), &[]),
    spec("FLASH.INFO", 2, false, None, &[]),
    // A sign of life writes (when the shopper was last seen), so POSITION is a write too.
    spec("FLASH.JOIN", 3, true, None, &[]),
    spec("FLASH.POSITION", 3, true, None, &[]),
    spec("FLASH.ADMIT", -2, true, None, &[keyword::COUNT]),
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
    Join(Join),
    Position(Position),
    Admit(Admit),
}

impl Command {
    /// Parses `name args…`; `name` is matched case-insensitively. Leftover arguments are an
    /// error, never ignored.
    pub fn parse(name: &str, args: &[&[u8]]) -> Result<Command> {
        let spec = CommandSpec::find(name)
            .ok_or_else(|| Error::new(ErrorCode::Err, format!("unknown command '{name}'")))?;
        let mut args = Args::new(spec.name, args);
        let command = match spec.name {
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
            "FLASH.JOIN" => Command::Join(Join::parse(&mut args)?),
            "FLASH.POSITION" => Command::Position(Position::parse(&mut args)?),
            "FLASH.ADMIT" => Command::Admit(Admit::parse(&mut args)?),
            _ => Command::Info(Info::parse(&mut args)?),
        };
        args.finish()?;
        Ok(command)
    }

    /// The command's facts (name, arity, writes, cart argument).
    pub fn spec(&self) -> &'static CommandSpec {
        let index = match self {
            Command::Sale(_) => 0,
            Command::Load(_) => 1,
            Command::Available(_) => 2,
            Command::Reserve(_) => 3,
            Command::Release(_) => 4,
            Command::Checkout(_) => 5,
            Command::Buy(_) => 6,
            Command::Settle(_) => 7,
            Command::Expire(_) => 8,
            Command::Cart(_) => 9,
            Command::Info(_) => 10,
            Command::Join(_) => 11,
            Command::Position(_) => 12,
            Command::Admit(_) => 13,
        };
        &COMMANDS[index]
    }

    /// The arguments after the name, as the command line a client sends (what mini-redis's
    /// `into_frame` is): `Command::parse(spec.name, to_args())` gives the command back.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(6);
        match self {
            Command::Sale(c) => c.write_args(&mut out),
            Command::Load(c) => c.write_args(&mut out),
            Command::Available(c) => c.write_args(&mut out),
            Command::Reserve(c) => c.write_args(&mut out),
            Command::Release(c) => c.write_args(&mut out),
            Command::Checkout(c) => c.write_args(&mut out),
            Command::Buy(c) => c.write_args(&mut out),
            Command::Settle(c) => c.write_args(&mut out),
            Command::Expire(c) => c.write_args(&mut out),
            Command::Cart(c) => c.write_args(&mut out),
            Command::Info(c) => c.write_args(&mut out),
            Command::Join(c) => c.write_args(&mut out),
            Command::Position(c) => c.write_args(&mut out),
            Command::Admit(c) => c.write_args(&mut out),
        }
        out
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
            Command::Join(c) => &c.sale,
            Command::Position(c) => &c.sale,
            Command::Admit(c) => &c.sale,
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
            Command::Join(c) => c.apply(store),
            Command::Position(c) => c.apply(store),
            Command::Admit(c) => c.apply(store),
        }
    }
}

/// FLASH.EXPIRE's and FLASH.ADMIT's options: `[COUNT n]`, n in 1..=`max`.
fn count_option(args: &mut Args<'_>, default: i64, max: i64) -> Result<i64> {
    let mut count = default;
    while args.remaining() > 0 {
        match args.keyword()?.as_str() {
            keyword::COUNT => count = args.int(keyword::COUNT, 1, max)?,
            other => {
                return Err(Error::new(
                    ErrorCode::Err,
                    format!("unknown option '{other}'; expected COUNT"),
                ));
            }
        }
    }
    Ok(count)
}

/// The waiting room's keys: what FLASH.JOIN and FLASH.ADMIT write.
const QUEUE_KEYS: [SaleKey; 4] = [
    SaleKey::Queue,
    SaleKey::Line,
    SaleKey::Seen,
    SaleKey::Admitted,
];

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

/// A cart has just finished (settled, rejected or expired): it goes away once the sale's
/// retention has passed, so memory returns after a sale (never, with RETAIN 0).
fn retire_cart(store: &mut impl Store, sale: &Sale, cart: &str, now_ms: i64) -> Result<()> {
    if sale.retain_ms > 0 {
        store.remove_cart_at(cart, now_ms.saturating_add(sale.retain_ms))?;
    }
    Ok(())
}

/// Adds `delta` to the user's units in the sale.
fn add_user_units(store: &mut impl Store, user: &str, delta: i64) -> Result<()> {
    let units = store.user_units(user)? + delta;
    store.set_user_units(user, units)
}

/// The arguments of a line command (RESERVE, RELEASE, BUY): `sale cart user sku qty`.
fn write_line_args(out: &mut Vec<String>, sale: &str, cart: &str, user: &str, sku: Sku, qty: i64) {
    out.extend([
        sale.to_owned(),
        cart.to_owned(),
        user.to_owned(),
        sku.to_string(),
        qty.to_string(),
    ]);
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
#[cfg(test)]
mod tests_queue;
