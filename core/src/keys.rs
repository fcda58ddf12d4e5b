//! The key layout: a public contract (README, "Key layout").
//!
//! Every key of sale `S` starts with `flash:{S}:`, so the hash tag puts the whole sale in one
//! cluster slot and one command (or script) may touch any of its keys.

/// The per-SKU counters, all in the sale's `stock` hash as fields `<sku>:<counter>`. For
/// every SKU at every moment: `loaded = available + held + pending + sold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Units ever put into the sale by FLASH.LOAD, net of later reloads.
    Loaded,
    /// Units anyone may reserve now.
    Available,
    /// Units in held (not checked out) carts.
    Held,
    /// Units in checked-out orders the worker has not settled yet.
    Pending,
    /// Units in orders settled OK.
    Sold,
}

impl Counter {
    pub const ALL: [Counter; 5] = [
        Counter::Loaded,
        Counter::Available,
        Counter::Held,
        Counter::Pending,
        Counter::Sold,
    ];

    pub fn parse(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Counter::Loaded => "loaded",
            Counter::Available => "available",
            Counter::Held => "held",
            Counter::Pending => "pending",
            Counter::Sold => "sold",
        }
    }
}

/// The names of one sale's keys.
#[derive(Clone, Debug)]
pub struct SaleKeys {
    prefix: String,
}

impl SaleKeys {
    pub fn new(sale: &str) -> SaleKeys {
        SaleKeys {
            prefix: format!("flash:{{{sale}}}:"),
        }
    }

    /// Hash of settings: `hold_ms`, `limit`, `start_ms`, `end_ms`. Its existence is the sale's.
    pub fn sale(&self) -> String {
        format!("{}sale", self.prefix)
    }

    /// Hash of every SKU's counters: field `<sku>:<counter>` (e.g. `14:available`) → units.
    /// One hash, so a reserve or a checkout reads and writes one key for its counters.
    pub fn stock(&self) -> String {
        format!("{}stock", self.prefix)
    }

    /// Hash user → units held + checked out + sold in this sale (what LIMIT caps).
    pub fn users(&self) -> String {
        format!("{}users", self.prefix)
    }

    /// Hash for one cart (an order is the cart it became): `state`, `user`, `deadline_ms`,
    /// `units`, `entry` (the order's stream id once checked out) and `line:<sku>` → qty.
    pub fn cart(&self, cart: &str) -> String {
        format!("{}cart:{cart}", self.prefix)
    }

    /// Sorted set of held carts scored by hold deadline (unix ms).
    pub fn deadlines(&self) -> String {
        format!("{}deadlines", self.prefix)
    }

    /// Stream of checked-out orders: fields `order`, `user`, `lines` (`sku:qty,…`), `units`.
    pub fn orders(&self) -> String {
        format!("{}orders", self.prefix)
    }

    /// Stream of order entries the worker could not process (malformed, unknown product or
    /// user, failed too often): the original fields plus `source_id` and `reason`.
    pub fn dead_letters(&self) -> String {
        format!("{}dead", self.prefix)
    }

    /// Pub/sub channel (not a key): `{"sku":14,"available":7}` on every change of available.
    pub fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// The pattern `SCAN` uses to find every sale's settings key.
    pub const SALE_PATTERN: &'static str = "flash:{*}:sale";

    /// The sale name inside a settings key name, if it is one.
    pub fn sale_of_settings_key(key: &[u8]) -> Option<&str> {
        let inner = key.strip_prefix(b"flash:{")?.strip_suffix(b"}:sale")?;
        let name = std::str::from_utf8(inner).ok()?;
        crate::args::parse_token("sale", inner).ok().map(|_| name)
    }
}

/// The `stock` hash field of one SKU's counter.
pub fn stock_field(sku: i64, counter: Counter) -> String {
    format!("{sku}:{}", counter.name())
}

/// Reads a `stock` hash field back.
pub fn parse_stock_field(field: &str) -> Option<(i64, Counter)> {
    let (sku, counter) = field.split_once(':')?;
    Some((sku.parse().ok()?, Counter::parse(counter)?))
}

/// The hash field of one cart line.
pub fn line_field(sku: i64) -> String {
    format!("line:{sku}")
}

/// The JSON message published on the sale's channel.
pub fn stock_message(sku: i64, available: i64) -> String {
    format!("{{\"sku\":{sku},\"available\":{available}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_sale_hash_tag() {
        let keys = SaleKeys::new("spring");
        assert_eq!(keys.sale(), "flash:{spring}:sale");
        assert_eq!(keys.stock(), "flash:{spring}:stock");
        assert_eq!(stock_field(14, Counter::Held), "14:held");
        assert_eq!(parse_stock_field("14:held"), Some((14, Counter::Held)));
        assert_eq!(parse_stock_field("14:lost"), None);
        assert_eq!(keys.cart("c1"), "flash:{spring}:cart:c1");
        assert_eq!(
            SaleKeys::sale_of_settings_key(b"flash:{spring}:sale"),
            Some("spring")
        );
        assert_eq!(
            SaleKeys::sale_of_settings_key(b"flash:{spring}:users"),
            None
        );
    }
}
