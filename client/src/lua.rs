//! The Lua twin: the FLASH commands as scripts, for a Redis without the module.
//!
//! Each script is `lua/prelude.lua`, a newline and the command's body. It takes the module
//! command's arguments as ARGV (the command name excluded) and the keys from [`keys`]: the
//! five sale keys, then the cart keys (README, "The Lua twin"). [`redis::Script`] sends
//! EVALSHA and loads the script on NOSCRIPT.

use std::sync::OnceLock;

use flash_core::keys::SaleKeys;

const PRELUDE: &str = include_str!("../../lua/prelude.lua");

/// Every command's body, by the module's command name.
const BODIES: [(&str, &str); 11] = [
    ("FLASH.SALE", include_str!("../../lua/sale.lua")),
    ("FLASH.LOAD", include_str!("../../lua/load.lua")),
    ("FLASH.AVAILABLE", include_str!("../../lua/available.lua")),
    ("FLASH.RESERVE", include_str!("../../lua/reserve.lua")),
    ("FLASH.RELEASE", include_str!("../../lua/release.lua")),
    ("FLASH.CHECKOUT", include_str!("../../lua/checkout.lua")),
    ("FLASH.BUY", include_str!("../../lua/buy.lua")),
    ("FLASH.SETTLE", include_str!("../../lua/settle.lua")),
    ("FLASH.EXPIRE", include_str!("../../lua/expire.lua")),
    ("FLASH.CART", include_str!("../../lua/cart.lua")),
    ("FLASH.INFO", include_str!("../../lua/info.lua")),
];

/// The script for a FLASH command name (case-insensitive, e.g. "FLASH.RESERVE"): prelude +
/// body, built once.
pub fn script(command: &str) -> Option<&'static redis::Script> {
    static SCRIPTS: OnceLock<Vec<(&'static str, redis::Script)>> = OnceLock::new();
    SCRIPTS
        .get_or_init(|| {
            BODIES
                .iter()
                .map(|&(name, body)| (name, redis::Script::new(&format!("{PRELUDE}\n{body}"))))
                .collect()
        })
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(command))
        .map(|(_, script)| script)
}

/// How many fixed sale keys come before the carts in KEYS.
const SALE_KEYS: usize = 5;

/// KEYS for any script: the fixed sale keys (sale, stock, users, deadlines, orders, in the
/// order `lua/prelude.lua` reads them), then one key per cart id given.
pub fn keys(sale: &str, carts: &[&str]) -> Vec<String> {
    let sale_keys = SaleKeys::new(sale);
    let mut keys = Vec::with_capacity(SALE_KEYS + carts.len());
    keys.push(sale_keys.sale());
    keys.push(sale_keys.stock());
    keys.push(sale_keys.users());
    keys.push(sale_keys.deadlines());
    keys.push(sale_keys.orders());
    keys.extend(carts.iter().map(|cart| sale_keys.cart(cart)));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use flash_core::args;
    use flash_core::cmd::COMMANDS;
    use flash_core::keys::{Counter, stock_field};

    fn script_or_panic(name: &str) -> &'static redis::Script {
        script(name).unwrap_or_else(|| panic!("no script for {name}"))
    }

    #[test]
    fn every_command_has_one_script_whatever_the_case() {
        assert_eq!(BODIES.len(), COMMANDS.len());
        for info in COMMANDS {
            let upper = script_or_panic(info.name);
            let lower = script_or_panic(&info.name.to_ascii_lowercase());
            assert!(std::ptr::eq(upper, lower), "{} is built once", info.name);
        }
        assert!(script("FLASH.NOPE").is_none());
        assert!(script("RESERVE").is_none());
    }

    #[test]
    fn each_script_is_the_prelude_then_its_own_body() {
        let mut hashes: Vec<&str> = COMMANDS
            .iter()
            .map(|info| script_or_panic(info.name).get_hash())
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), COMMANDS.len(), "two commands share a script");

        for (name, body) in BODIES {
            let whole = redis::Script::new(&format!("{PRELUDE}\n{body}"));
            assert_eq!(script_or_panic(name).get_hash(), whole.get_hash());
            // The body names its own command, which the arity error quotes.
            assert!(body.contains(&format!("begin('{name}')")), "{name}");
        }
    }

    #[test]
    fn keys_are_the_sale_keys_then_the_carts() {
        assert_eq!(
            keys("s", &["c1", "c2"]),
            [
                "flash:{s}:sale",
                "flash:{s}:stock",
                "flash:{s}:users",
                "flash:{s}:deadlines",
                "flash:{s}:orders",
                "flash:{s}:cart:c1",
                "flash:{s}:cart:c2",
            ]
        );
        assert_eq!(keys("spring", &[]).len(), SALE_KEYS);
    }

    /// The prelude spells the names out (it checks KEYS against the sale in ARGV, and the
    /// channel is not a key): they must be core's.
    #[test]
    fn the_prelude_spells_cores_names() {
        let sale_keys = SaleKeys::new("s");
        let suffix = |name: String| name.trim_start_matches("flash:{s}:").to_owned();
        let quoted: Vec<String> = keys("s", &[])
            .into_iter()
            .map(|key| format!("'{}'", suffix(key)))
            .collect();
        let list = format!("local SALE_KEY_NAMES = {{ {} }}", quoted.join(", "));
        assert!(PRELUDE.contains(&list), "prelude.lua must say: {list}");
        // The name the prelude builds from a sale name and a suffix is SaleKeys's.
        assert!(PRELUDE.contains("return 'flash:{' .. sale_name .. '}:' .. suffix"));
        assert_eq!(sale_keys.sale(), "flash:{s}:sale");
        let cart = format!(
            "sale_key_name(sale_name, '{}' .. cart_id)",
            suffix(sale_keys.cart(""))
        );
        assert!(PRELUDE.contains(&cart), "prelude.lua must say: {cart}");
        let channel = format!(
            "sale_key_name(sale_name, '{}')",
            suffix(sale_keys.channel())
        );
        assert!(
            PRELUDE.contains(&channel),
            "prelude.lua must say: {channel}"
        );
        // Stock fields `<sku>:<counter>`, the counters in core's order (FLASH.INFO columns).
        assert_eq!(stock_field(14, Counter::Held), b"14:held");
        assert!(PRELUDE.contains("return int_text(sku) .. ':' .. counter"));
        let counters: Vec<String> = Counter::ALL
            .iter()
            .map(|counter| format!("'{}'", counter.name()))
            .collect();
        let list = format!("local COUNTERS = {{ {} }}", counters.join(", "));
        assert!(PRELUDE.contains(&list), "prelude.lua must say: {list}");
    }

    /// The prelude's limits are literals (Lua cannot read Rust constants): they must equal
    /// core's, or the twins would accept different arguments.
    #[test]
    fn the_prelude_limits_are_cores() {
        let limits = [
            ("MAX_QTY", args::MAX_QTY),
            ("MAX_UNITS", args::MAX_UNITS),
            ("MAX_SKU", args::MAX_SKU),
            ("MAX_HOLD_MS", args::MAX_HOLD_MS),
            ("DEFAULT_HOLD_MS", args::DEFAULT_HOLD_MS),
            ("MAX_TIME_MS", args::MAX_TIME_MS),
            ("MAX_EXPIRE_COUNT", args::MAX_EXPIRE_COUNT),
            ("DEFAULT_EXPIRE_COUNT", args::DEFAULT_EXPIRE_COUNT),
            ("MAX_TOKEN_LEN", args::MAX_TOKEN_LEN as i64),
        ];
        for (name, value) in limits {
            let line = format!("local {name} = {value}\n");
            assert!(PRELUDE.contains(&line), "prelude.lua must say: {line}");
        }
        // Every limit stays where a double is exact.
        assert!(limits.iter().all(|&(_, value)| value < (1 << 53)));
    }
}
