//! The Lua twin: the FLASH commands as scripts, for a Redis without the module.
//!
//! Each script is the part of `lua/prelude.lua` (the shared helpers) that the command's body
//! (`lua/<command>.lua`) reaches ([`shake`]), a newline and the body, with core's contract
//! written in ([`header`]: `MAX_QTY` becomes `1000000`; lists such as `SALE_KEYS` are locals
//! of a short header). Redis runs a script's main chunk on every EVALSHA, so what it does not
//! send costs nothing per call. It takes the module command's arguments as ARGV (the command
//! name excluded) and the keys from [`keys`]: the sale keys in [`SaleKey::ALL`] order, then
//! the cart keys (README, "The Lua twin"). [`redis::Script`] sends EVALSHA and loads the
//! script on NOSCRIPT.
//!
//! Files: `header.rs` writes the contract in; `shake.rs` picks the prelude's declarations;
//! `lexer.rs` reads the Lua sources' names (for both) and string literals (for `tests.rs`,
//! which refuses a Lua file that spells a value the contract gives).

mod header;
mod lexer;
mod shake;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use flash_core::keys::{SaleKey, SaleKeys};

const PRELUDE: &str = include_str!("../../../lua/prelude.lua");

/// Every command's body, by the module's command name.
const BODIES: [(&str, &str); 14] = [
    ("FLASH.SALE", include_str!("../../../lua/sale.lua")),
    ("FLASH.LOAD", include_str!("../../../lua/load.lua")),
    (
        "FLASH.AVAILABLE",
        include_str!("../../../lua/available.lua"),
    ),
    ("FLASH.RESERVE", include_str!("../../../lua/reserve.lua")),
    ("FLASH.RELEASE", include_str!("../../../lua/release.lua")),
    ("FLASH.CHECKOUT", include_str!("../../../lua/checkout.lua")),
    ("FLASH.BUY", include_str!("../../../lua/buy.lua")),
    ("FLASH.SETTLE", include_str!("../../../lua/settle.lua")),
    ("FLASH.EXPIRE", include_str!("../../../lua/expire.lua")),
    ("FLASH.CART", include_str!("../../../lua/cart.lua")),
    ("FLASH.INFO", include_str!("../../../lua/info.lua")),
    ("FLASH.JOIN", include_str!("../../../lua/join.lua")),
    ("FLASH.POSITION", include_str!("../../../lua/position.lua")),
    ("FLASH.ADMIT", include_str!("../../../lua/admit.lua")),
];

/// One command's whole script: the prelude's declarations this body reaches, then the body,
/// with the contract's constants written in.
fn script_source(body: &str) -> String {
    let prelude = shake::prelude_for(PRELUDE, body);
    header::script(&format!("{prelude}\n{body}"))
}

/// Every command's script and its source (SCRIPT LOAD sends the source), built once.
fn scripts() -> &'static [(&'static str, redis::Script, String)] {
    static SCRIPTS: OnceLock<Vec<(&'static str, redis::Script, String)>> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        BODIES
            .iter()
            .map(|&(name, body)| {
                let source = script_source(body);
                (name, redis::Script::new(&source), source)
            })
            .collect()
    })
}

/// The script for a FLASH command name (case-insensitive, e.g. "FLASH.RESERVE"), built once.
pub fn script(command: &str) -> Option<&'static redis::Script> {
    scripts()
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(command))
        .map(|(_, script, _)| script)
}

/// `SCRIPT LOAD` of a command's script, to send where the script is missing: on a cluster,
/// to the one node that answered NOSCRIPT (each node keeps its own script cache).
pub fn load_command(command: &str) -> Option<redis::Cmd> {
    let (_, _, source) = scripts()
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(command))?;
    let mut load = redis::cmd("SCRIPT");
    load.arg("LOAD").arg(source.as_str());
    Some(load)
}

/// KEYS for any script: the sale's keys in [`SaleKey::ALL`] order (the `KEYS_*`
/// positions), then one key per cart id given.
pub fn keys(sale: &str, carts: &[&str]) -> Vec<String> {
    let sale_keys = SaleKeys::new(sale);
    let mut keys = Vec::with_capacity(SaleKey::ALL.len() + carts.len());
    keys.extend(sale_keys.all());
    keys.extend(carts.iter().map(|cart| sale_keys.cart(cart)));
    keys
}
