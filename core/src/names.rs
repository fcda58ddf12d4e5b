//! The names inside the keys: hash fields, stream fields, the stock event's JSON members and
//! the labels of the field/value replies. A public contract (README, "Key layout" and
//! "Commands"), written once here: the module reads them from here, the Lua twin gets them
//! as locals of a header generated from [`crate::contract`], the worker and the edge decode
//! through [`crate::wire`].

use std::ffi::CStr;

/// A field name: as text for Rust and Lua, and NUL-terminated for the module's C API (which
/// takes C strings for hash fields, so a read costs no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    text: &'static str,
    c: &'static CStr,
}

impl Name {
    /// `with_nul` is the name followed by one NUL (the macro below writes it).
    const fn new(text: &'static str, with_nul: &'static str) -> Name {
        match CStr::from_bytes_with_nul(with_nul.as_bytes()) {
            Ok(c) => Name { text, c },
            Err(_) => panic!("a field name holds a NUL"),
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.text
    }

    pub const fn as_bytes(self) -> &'static [u8] {
        self.text.as_bytes()
    }

    pub const fn as_c_str(self) -> &'static CStr {
        self.c
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text)
    }
}

macro_rules! names {
    ($($(#[$doc:meta])* $id:ident = $text:literal;)*) => {
        $($(#[$doc])* pub const $id: $crate::names::Name =
            $crate::names::Name::new($text, concat!($text, "\0"));)*
    };
}

/// Fields of the sale's settings hash `flash:{S}:sale`. Its existence is the sale's.
pub mod sale {
    names! {
        /// How long a new cart holds its units (ms).
        HOLD_MS = "hold_ms";
        /// Units one user may hold + check out + buy; 0 = no cap.
        LIMIT = "limit";
        /// Unix ms the sale opens; 0 = unbounded.
        START_MS = "start_ms";
        /// Unix ms the sale closes; 0 = unbounded.
        END_MS = "end_ms";
        /// How long a finished cart is kept (ms); 0 = forever.
        RETAIN_MS = "retain_ms";
        /// The holds (ms) whose deadline lists may have entries, comma-separated: the
        /// current HOLD and earlier ones that carts still held were made with.
        LANES = "lanes";
        /// The waiting room's admissions per second; 0 = no rate.
        QUEUE_RATE = "queue_rate";
        /// Most admissions live at once; 0 = no cap. The sale has a waiting room when
        /// QUEUE_RATE or QUEUE_CAP is above 0.
        QUEUE_CAP = "queue_cap";
        /// How long an admission lasts unused (ms).
        ADMIT_MS = "admit_ms";
        /// How long a waiting shopper may go without asking for their place (ms).
        IDLE_MS = "idle_ms";
        /// The seed that orders the shoppers who came before START (hex); empty when none.
        QUEUE_SEED = "queue_seed";
    }

    /// Every settings field, in the order the stores read them.
    pub const ALL: [super::Name; 11] = [
        HOLD_MS, LIMIT, START_MS, END_MS, RETAIN_MS, LANES, QUEUE_RATE, QUEUE_CAP, ADMIT_MS,
        IDLE_MS, QUEUE_SEED,
    ];
    /// Between two holds in [`LANES`].
    pub const LANE_SEPARATOR: &str = ",";
}

/// The record a cart key holds (an order is the cart it became): one string,
/// `<state> <user> <deadline_ms> <entry> <lines>`, e.g. `held alice 1764640000000 - 14:1,15:2`
/// ([`crate::model::CartRecord`]). `entry` is the order's stream entry id once checked out,
/// [`cart::NO_ENTRY`] before; `lines` are `sku:qty` ascending by SKU, with the order entry's
/// separators, empty when the cart holds nothing. Names are tokens, which never hold a space.
pub mod cart {
    /// Between two parts of the record.
    pub const SEPARATOR: &str = " ";
    /// The entry part of a cart never checked out.
    pub const NO_ENTRY: &str = "-";
}

/// Fields of an order stream entry (`flash:{S}:orders`); encoded and decoded by
/// [`crate::wire::OrderFields`].
pub mod order {
    names! {
        /// The order id (= the cart id).
        ORDER = "order";
        USER = "user";
        /// `sku:qty` pairs, comma-separated, ascending by SKU.
        LINES = "lines";
        /// Units over all lines.
        UNITS = "units";
    }

    /// Every field, in the order they are appended.
    pub const ALL: [super::Name; 4] = [ORDER, USER, LINES, UNITS];
    /// Between a line's SKU and its quantity.
    pub const QTY_SEPARATOR: &str = ":";
    /// Between two lines.
    pub const LINE_SEPARATOR: &str = ",";
}

/// Fields a dead letter (`flash:{S}:dead`) adds to the entry it copies.
pub mod dead {
    names! {
        /// The id of the order entry that could not be processed.
        SOURCE_ID = "source_id";
        /// Why, for the operator.
        REASON = "reason";
    }
}

/// Fields of the waiting room's counters `flash:{S}:queue`, all integers (absent reads 0).
pub mod queue {
    names! {
        /// The next ticket a shopper arriving after START is given.
        NEXT_TICKET = "next_ticket";
        /// Admissions the rate allows now, in thousandths (a token bucket of one second).
        CREDIT = "credit_milli";
        /// When [`CREDIT`] was last counted (unix ms).
        CREDIT_AT_MS = "credit_at_ms";
        /// Shoppers admitted, ever.
        ADMITTED = "admitted";
        /// Admissions that ran out unused, ever.
        LAPSED = "lapsed";
        /// Places lost by waiting shoppers who stopped asking, ever.
        ABANDONED = "abandoned";
    }

    /// Every field, in FLASH.INFO's order.
    pub const ALL: [super::Name; 6] = [
        NEXT_TICKET,
        CREDIT,
        CREDIT_AT_MS,
        ADMITTED,
        LAPSED,
        ABANDONED,
    ];
}

/// A shopper's place in a waiting room, as FLASH.JOIN and FLASH.POSITION name it.
pub mod place {
    /// Came before START: in the pre-queue, whose order is drawn at START.
    pub const EARLY: &str = "early";
    /// In the line, at a known position.
    pub const WAITING: &str = "waiting";
    /// Admitted: may reserve and buy until `until_ms`.
    pub const ADMITTED: &str = "admitted";
}

/// Members of the stock event published on `flash:{S}:events`:
/// `{"sku":14,"available":7}` ([`crate::wire::StockEvent`]).
pub mod event {
    names! {
        SKU = "sku";
        AVAILABLE = "available";
    }
}

/// Labels of the field/value replies of FLASH.CART and FLASH.INFO.
pub mod reply {
    names! {
        STATE = "state";
        USER = "user";
        DEADLINE_MS = "deadline_ms";
        UNITS = "units";
        LINES = "lines";
        ENTRY = "entry";
        HOLD_MS = "hold_ms";
        LIMIT = "limit";
        START_MS = "start_ms";
        END_MS = "end_ms";
        RETAIN_MS = "retain_ms";
        OPEN = "open";
        HELD_CARTS = "held_carts";
        TOTAL = "total";
        SKUS = "skus";
        QUEUE = "queue";
        POSITION = "position";
        LINE = "line";
        ETA_MS = "eta_ms";
        UNTIL_MS = "until_ms";
        SEED_SHA1 = "seed_sha1";
        SEED = "seed";
        ADMITTED_NOW = "admitted_now";
    }

    /// The labels of FLASH.INFO's `queue` part, in reply order (nil when the sale has no
    /// waiting room): its settings, the seed's commitment and the seed (nil before START),
    /// shoppers waiting, admissions live now, and the counters.
    pub const QUEUE_INFO: [super::Name; 11] = [
        super::sale::QUEUE_RATE,
        super::sale::QUEUE_CAP,
        super::sale::ADMIT_MS,
        super::sale::IDLE_MS,
        SEED_SHA1,
        SEED,
        LINE,
        ADMITTED_NOW,
        super::queue::ADMITTED,
        super::queue::LAPSED,
        super::queue::ABANDONED,
    ];

    /// FLASH.JOIN's and FLASH.POSITION's labels, in reply order.
    pub const PLACE: [super::Name; 5] = [STATE, POSITION, LINE, ETA_MS, UNTIL_MS];

    /// FLASH.CART's labels, in reply order.
    pub const CART: [super::Name; 6] = [STATE, USER, DEADLINE_MS, UNITS, LINES, ENTRY];
    /// FLASH.INFO's labels, in reply order.
    pub const INFO: [super::Name; 10] = [
        HOLD_MS, LIMIT, START_MS, END_MS, RETAIN_MS, OPEN, HELD_CARTS, TOTAL, SKUS, QUEUE,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_the_same_text_for_rust_and_for_c() {
        for name in sale::ALL
            .into_iter()
            .chain(order::ALL)
            .chain(reply::CART)
            .chain(reply::INFO)
        {
            assert_eq!(name.as_c_str().to_bytes(), name.as_bytes());
            assert!(!name.as_str().is_empty());
        }
        assert_eq!(sale::LANES.to_string(), "lanes");
    }
}
