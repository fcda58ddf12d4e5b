//! The key layout: a public contract (README, "Key layout").
//!
//! Every key of sale `S` starts with `flash:{S}:`, so the hash tag puts the whole sale in one
//! cluster slot and one command (or script) may touch any of its keys. The suffixes, the
//! stock and line field formats and the key types are written here once; the module, the
//! client, the Lua twin's header and the tools all take them from here.

use crate::Sku;

/// Every key name starts with this, then the sale's hash tag `{S}:`.
pub const KEY_PREFIX: &str = "flash:";
/// A cart key is the sale's prefix, this, and the cart id.
pub const CART_SUFFIX: &str = "cart:";
/// A cart key holds a string: the cart's record ([`crate::model::CartRecord`]).
pub const CART_TYPE: &str = "string";
/// A deadline list's key is the sale's prefix, this, and the hold (ms) of its carts.
pub const DEADLINES_SUFFIX: &str = "deadlines:";
/// A deadline list is a Redis list of [`deadline_entry`]s.
pub const DEADLINES_TYPE: &str = "list";
/// Between a deadline entry's time and its cart.
pub const DEADLINE_SEPARATOR: &str = ":";
/// The `stock` hash field counting the sale's held carts (it has no SKU, so no stock
/// field parser reads it as a counter).
pub const HELD_CARTS_FIELD: &str = "held_carts";
/// The stream of order entries the worker could not process.
pub const DEAD_LETTERS_SUFFIX: &str = "dead";
/// The pub/sub channel of stock events (not a key).
pub const EVENTS_SUFFIX: &str = "events";

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
    /// In FLASH.INFO's column order.
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

    /// The column of FLASH.INFO's rows (after the SKU).
    pub fn column(self) -> usize {
        self as usize
    }
}

/// The fixed keys of a sale, in the order the Lua twin receives them in KEYS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaleKey {
    /// Hash of settings (fields in [`names::sale`]). Its existence is the sale's.
    Sale,
    /// Hash of every SKU's counters: [`stock_field`] → units.
    Stock,
    /// Hash user → units held + checked out + sold in the sale (what LIMIT caps).
    Users,
    /// Stream of checked-out orders (fields in [`names::order`]).
    Orders,
    /// Hash of the waiting room's counters (fields in [`names::queue`]).
    Queue,
    /// Sorted set of the shoppers waiting to be admitted, in the order they will be: score
    /// [`crate::queue::draw_score`] for those who came before START, [`crate::queue::TICKET_BASE`]
    /// + ticket for the rest.
    Line,
    /// Sorted set user → when the waiting shopper last asked for their place (unix ms).
    Seen,
    /// Sorted set user → when the user's admission ends (unix ms).
    Admitted,
}

impl SaleKey {
    /// In KEYS order.
    pub const ALL: [SaleKey; 8] = [
        SaleKey::Sale,
        SaleKey::Stock,
        SaleKey::Users,
        SaleKey::Orders,
        SaleKey::Queue,
        SaleKey::Line,
        SaleKey::Seen,
        SaleKey::Admitted,
    ];

    /// The key name after `flash:{S}:`.
    pub fn suffix(self) -> &'static str {
        match self {
            SaleKey::Sale => "sale",
            SaleKey::Stock => "stock",
            SaleKey::Users => "users",
            SaleKey::Orders => "orders",
            SaleKey::Queue => "queue",
            SaleKey::Line => "line",
            SaleKey::Seen => "seen",
            SaleKey::Admitted => "admitted",
        }
    }

    /// The Redis type the key holds, as `TYPE` names it.
    pub fn redis_type(self) -> &'static str {
        match self {
            SaleKey::Sale | SaleKey::Stock | SaleKey::Users | SaleKey::Queue => "hash",
            SaleKey::Orders => "stream",
            SaleKey::Line | SaleKey::Seen | SaleKey::Admitted => "zset",
        }
    }

    /// Position in [`SaleKey::ALL`] (and in the Lua twin's KEYS, from 0).
    pub fn index(self) -> usize {
        self as usize
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
            prefix: format!("{KEY_PREFIX}{{{sale}}}:"),
        }
    }

    fn with_suffix(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// One of the fixed keys.
    pub fn key(&self, key: SaleKey) -> String {
        self.with_suffix(key.suffix())
    }

    /// Every fixed key, in KEYS order.
    pub fn all(&self) -> [String; SaleKey::ALL.len()] {
        SaleKey::ALL.map(|key| self.key(key))
    }

    pub fn sale(&self) -> String {
        self.key(SaleKey::Sale)
    }

    pub fn stock(&self) -> String {
        self.key(SaleKey::Stock)
    }

    pub fn users(&self) -> String {
        self.key(SaleKey::Users)
    }

    /// The deadline list of the carts held for `hold_ms`: [`deadline_entry`]s in the order
    /// they were made, which is deadline order (one hold per list; see README, "Time").
    pub fn deadlines(&self, hold_ms: i64) -> String {
        let mut digits = itoa::Buffer::new();
        [
            self.prefix.as_str(),
            DEADLINES_SUFFIX,
            digits.format(hold_ms),
        ]
        .concat()
    }

    pub fn orders(&self) -> String {
        self.key(SaleKey::Orders)
    }

    /// String holding one cart's record ([`crate::model::CartRecord`]).
    pub fn cart(&self, cart: &str) -> String {
        [self.prefix.as_str(), CART_SUFFIX, cart].concat()
    }

    /// Stream of order entries the worker could not process (malformed, unknown product or
    /// user, failed too often): the original fields plus those of [`names::dead`].
    pub fn dead_letters(&self) -> String {
        self.with_suffix(DEAD_LETTERS_SUFFIX)
    }

    /// Pub/sub channel (not a key) of [`crate::wire::StockEvent`]s.
    pub fn channel(&self) -> String {
        self.with_suffix(EVENTS_SUFFIX)
    }

    /// The sale name inside a settings key name, if it is one.
    pub fn sale_of_settings_key(key: &[u8]) -> Option<&str> {
        let tagged = key
            .strip_prefix(KEY_PREFIX.as_bytes())?
            .strip_prefix(b"{")?;
        let inner = tagged
            .strip_suffix(SaleKey::Sale.suffix().as_bytes())?
            .strip_suffix(b"}:")?;
        let name = std::str::from_utf8(inner).ok()?;
        crate::args::parse_token("sale", inner).ok().map(|_| name)
    }
}

/// The Redis Cluster hash slot that holds every key of `sale` (the slot of its hash tag
/// `{sale}`: CRC16/XMODEM of the name, mod 16384, as Redis computes it). The one place the
/// sale → slot mapping is written: a later split of one sale over several slots changes it
/// here.
pub fn slot_of_sale(sale: &str) -> u16 {
    let crc = sale.bytes().fold(0u16, |crc, byte| {
        let mut crc = crc ^ (u16::from(byte) << 8);
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    });
    crc % 16384
}

/// Between a stock field's SKU and its counter name.
pub const STOCK_FIELD_SEPARATOR: &str = ":";

/// A hash field name built on the stack: a stock field or a line field is at most 30 bytes
/// (a 20-character SKU, a separator, a counter name), and they are built several times per
/// reserve, so without an allocation or the formatting machinery.
#[derive(Clone, Copy)]
pub struct ShortField {
    len: u8,
    bytes: [u8; 32],
}

impl ShortField {
    fn of(parts: [&[u8]; 3]) -> ShortField {
        let mut field = ShortField {
            len: 0,
            bytes: [0; 32],
        };
        for part in parts {
            let at = usize::from(field.len);
            field.bytes[at..at + part.len()].copy_from_slice(part);
            field.len += part.len() as u8;
        }
        field
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::ops::Deref for ShortField {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for ShortField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// The `stock` hash field of one SKU's counter: `<sku>:<counter>`, e.g. `14:available`.
pub fn stock_field(sku: Sku, counter: Counter) -> ShortField {
    let mut digits = itoa::Buffer::new();
    ShortField::of([
        digits.format(sku).as_bytes(),
        STOCK_FIELD_SEPARATOR.as_bytes(),
        counter.name().as_bytes(),
    ])
}

/// Reads a `stock` hash field back.
pub fn parse_stock_field(field: &[u8]) -> Option<(Sku, Counter)> {
    let field = std::str::from_utf8(field).ok()?;
    let (sku, counter) = field.split_once(STOCK_FIELD_SEPARATOR)?;
    Some((sku.parse().ok()?, Counter::parse(counter)?))
}

/// A deadline list entry: `<deadline_ms>:<cart>`. The time is in the entry, not only in
/// the cart, so an entry left behind by a cart that was checked out (entries are dropped
/// when they come due, not before) is told apart from the live entry of a later cart of the
/// same id.
pub fn deadline_entry(deadline_ms: i64, cart: &str) -> String {
    let mut digits = itoa::Buffer::new();
    [digits.format(deadline_ms), DEADLINE_SEPARATOR, cart].concat()
}

/// Reads a deadline entry back: the time and the cart.
pub fn parse_deadline_entry(entry: &[u8]) -> Option<(i64, &str)> {
    let entry = std::str::from_utf8(entry).ok()?;
    let (deadline_ms, cart) = entry.split_once(DEADLINE_SEPARATOR)?;
    Some((crate::args::stored_int(deadline_ms.as_bytes())?, cart))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_the_sale_hash_tag() {
        let keys = SaleKeys::new("spring");
        assert_eq!(
            keys.all(),
            [
                "flash:{spring}:sale",
                "flash:{spring}:stock",
                "flash:{spring}:users",
                "flash:{spring}:orders",
                "flash:{spring}:queue",
                "flash:{spring}:line",
                "flash:{spring}:seen",
                "flash:{spring}:admitted",
            ]
        );
        assert_eq!(keys.cart("c1"), "flash:{spring}:cart:c1");
        assert_eq!(keys.deadlines(60000), "flash:{spring}:deadlines:60000");
        assert_eq!(keys.dead_letters(), "flash:{spring}:dead");
        assert_eq!(keys.channel(), "flash:{spring}:events");
        assert_eq!(
            SaleKeys::sale_of_settings_key(b"flash:{spring}:sale"),
            Some("spring")
        );
        assert_eq!(
            SaleKeys::sale_of_settings_key(b"flash:{spring}:users"),
            None
        );
        assert_eq!(SaleKeys::sale_of_settings_key(b"flash:{a b}:sale"), None);
    }

    #[test]
    fn a_sale_lives_in_the_slot_redis_gives_its_hash_tag() {
        // CLUSTER KEYSLOT values from redis-server 7.0: the tag's slot, whatever the suffix.
        assert_eq!(slot_of_sale("foo"), 12182);
        assert_eq!(slot_of_sale("123456789"), 0x31C3);
        assert_eq!(slot_of_sale("spring"), slot_of_sale("spring"));
        assert!((0..16384).contains(&slot_of_sale("a-very-long-sale-name.2026:@x")));
    }

    #[test]
    fn stock_fields_and_deadline_entries_read_back() {
        assert_eq!(stock_field(14, Counter::Held).as_bytes(), b"14:held");
        assert_eq!(
            stock_field(i64::MIN, Counter::Available).as_bytes(),
            b"-9223372036854775808:available"
        );
        assert_eq!(parse_stock_field(b"14:held"), Some((14, Counter::Held)));
        assert_eq!(parse_stock_field(b"14:lost"), None);
        assert_eq!(parse_stock_field(HELD_CARTS_FIELD.as_bytes()), None);
        assert_eq!(
            deadline_entry(1_700_000_000_000, "c:1"),
            "1700000000000:c:1"
        );
        assert_eq!(
            parse_deadline_entry(b"1700000000000:c:1"),
            Some((1_700_000_000_000, "c:1"))
        );
        assert_eq!(parse_deadline_entry(b"soon:c1"), None);
        for counter in Counter::ALL {
            assert_eq!(Counter::ALL[counter.column()], counter);
        }
        for key in SaleKey::ALL {
            assert_eq!(SaleKey::ALL[key.index()], key);
        }
    }
}
