//! What a sale, a cart and an order are.

use crate::Sku;
use crate::args::{
    DEFAULT_ADMIT_MS, DEFAULT_HOLD_MS, DEFAULT_IDLE_MS, DEFAULT_RETAIN_MS, MAX_LANES, MAX_SEED_LEN,
    MIN_SEED_LEN, stored_int,
};
use crate::names;

/// A sale's settings (`flash:{S}:sale`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sale {
    /// How long a new cart holds its units: the global cart timer.
    pub hold_ms: i64,
    /// Most units one user may hold + check out + buy in the sale; 0 = no cap.
    pub limit: i64,
    /// Unix ms the sale opens; 0 = always open from the start.
    pub start_ms: i64,
    /// Unix ms the sale closes; 0 = never closes.
    pub end_ms: i64,
    /// How long a cart is kept once finished (settled, rejected, expired); 0 = forever.
    pub retain_ms: i64,
    /// The holds whose deadline lists may have entries (FLASH.SALE keeps them).
    pub lanes: Lanes,
    /// The waiting room, if the sale has one.
    pub queue: QueueSettings,
}

impl Default for Sale {
    fn default() -> Sale {
        Sale {
            hold_ms: DEFAULT_HOLD_MS,
            limit: 0,
            start_ms: 0,
            end_ms: 0,
            retain_ms: DEFAULT_RETAIN_MS,
            lanes: Lanes::default(),
            queue: QueueSettings::default(),
        }
    }
}

impl Sale {
    /// Open at `now_ms`: `start_ms <= now < end_ms`, each edge ignored when 0.
    pub fn is_open(&self, now_ms: i64) -> bool {
        (self.start_ms == 0 || now_ms >= self.start_ms)
            && (self.end_ms == 0 || now_ms < self.end_ms)
    }

    /// The deadline lists expiry looks at: the recorded lanes and the current HOLD's (a sale
    /// hash written before lanes were recorded has none).
    pub fn lanes_to_look_at(&self) -> Lanes {
        let mut lanes = self.lanes;
        lanes.insert(self.hold_ms);
        lanes
    }
}

/// A sale's waiting room (README, "Waiting room"). Inline, like [`Lanes`], so a sale's
/// settings copy without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// Admissions per second; 0 = no rate (only the cap holds shoppers back).
    pub rate: i64,
    /// Most admissions live at once; 0 = no cap.
    pub cap: i64,
    /// How long an admission lasts unused (ms). A reserve carries it to the cart's deadline;
    /// a checkout ends it.
    pub admit_ms: i64,
    /// How long a waiting shopper may go without asking for their place (ms) before
    /// losing it.
    pub idle_ms: i64,
    /// Orders the shoppers who came before START ([`crate::queue::draw_score`]).
    pub seed: Seed,
}

impl Default for QueueSettings {
    fn default() -> QueueSettings {
        QueueSettings {
            rate: 0,
            cap: 0,
            admit_ms: DEFAULT_ADMIT_MS,
            idle_ms: DEFAULT_IDLE_MS,
            seed: Seed::default(),
        }
    }
}

impl QueueSettings {
    /// The sale has a waiting room: RESERVE and BUY need an admission.
    pub fn is_on(&self) -> bool {
        self.rate > 0 || self.cap > 0
    }
}

/// A waiting room's seed: [`MIN_SEED_LEN`] to [`MAX_SEED_LEN`] lower-case hex digits, or
/// empty (none yet).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Seed {
    len: u8,
    digits: [u8; MAX_SEED_LEN],
}

impl Default for Seed {
    fn default() -> Seed {
        Seed {
            len: 0,
            digits: [0; MAX_SEED_LEN],
        }
    }
}

impl Seed {
    /// Reads a seed: hex digits in either case, kept lower-case; `None` for anything else.
    pub fn parse(text: &[u8]) -> Option<Seed> {
        if !(MIN_SEED_LEN..=MAX_SEED_LEN).contains(&text.len())
            || !text.iter().all(u8::is_ascii_hexdigit)
        {
            return None;
        }
        let mut seed = Seed::default();
        seed.digits[..text.len()].copy_from_slice(text);
        seed.digits[..text.len()].make_ascii_lowercase();
        seed.len = text.len() as u8;
        Some(seed)
    }

    /// What the settings hash holds: a seed Flash did not write reads as none.
    pub fn stored(text: &[u8]) -> Seed {
        Seed::parse(text).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seed({:?})", self.as_str())
    }
}

/// A set of holds (ms), at most [`MAX_LANES`]: each names a deadline list
/// ([`crate::keys::SaleKeys::deadlines`]). Inline, so a sale's settings copy without
/// allocating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lanes {
    len: usize,
    holds: [i64; MAX_LANES],
}

impl Lanes {
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.holds[..self.len].iter().copied()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, hold_ms: i64) -> bool {
        self.iter().any(|h| h == hold_ms)
    }

    /// Adds a hold; false when the set is full (and the hold not in it).
    pub fn insert(&mut self, hold_ms: i64) -> bool {
        if self.contains(hold_ms) {
            return true;
        }
        if self.len == MAX_LANES {
            return false;
        }
        self.holds[self.len] = hold_ms;
        self.len += 1;
        true
    }

    /// The sale hash's `lanes` field: holds, comma-separated.
    pub fn to_text(&self) -> String {
        let mut digits = itoa::Buffer::new();
        let mut text = String::new();
        for (i, hold_ms) in self.iter().enumerate() {
            if i > 0 {
                text.push_str(names::sale::LANE_SEPARATOR);
            }
            text.push_str(digits.format(hold_ms));
        }
        text
    }

    /// Reads the `lanes` field back; what does not read as a hold is skipped.
    pub fn parse(text: &[u8]) -> Lanes {
        let mut lanes = Lanes::default();
        for part in text.split(|&b| names::sale::LANE_SEPARATOR.as_bytes() == [b]) {
            if let Some(hold_ms) = stored_int(part).filter(|&h| h > 0) {
                lanes.insert(hold_ms);
            }
        }
        lanes
    }
}

/// Where a cart is in its life. `held` carts expire; the others never do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CartState {
    /// Holding units until `deadline_ms`.
    Held,
    /// In the order stream, waiting for the worker's verdict.
    CheckedOut,
    /// The database accepted the order: its units are sold.
    Settled,
    /// The database refused the order: its units went back to available.
    Rejected,
    /// The hold ran out: its units went back to available.
    Expired,
}

impl CartState {
    pub fn as_str(self) -> &'static str {
        match self {
            CartState::Held => "held",
            CartState::CheckedOut => "checked_out",
            CartState::Settled => "settled",
            CartState::Rejected => "rejected",
            CartState::Expired => "expired",
        }
    }

    pub const ALL: [CartState; 5] = [
        CartState::Held,
        CartState::CheckedOut,
        CartState::Settled,
        CartState::Rejected,
        CartState::Expired,
    ];

    pub fn parse(text: &[u8]) -> Option<CartState> {
        CartState::ALL
            .into_iter()
            .find(|state| state.as_str().as_bytes() == text)
    }

    /// Checked out at some point: the cart is an order, and checkout answers with it again.
    pub fn is_order(self) -> bool {
        matches!(
            self,
            CartState::CheckedOut | CartState::Settled | CartState::Rejected
        )
    }
}

/// A cart's scalar fields (its lines are read and written one by one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cart {
    pub state: CartState,
    pub user: String,
    /// When the hold ends (unix ms). Fixed at the first reserve: later reserves never extend it.
    pub deadline_ms: i64,
    /// Units over all lines.
    pub units: i64,
    /// The order's stream entry id, once checked out.
    pub entry: Option<String>,
}

/// What a cart key holds: the cart and its lines, as one string (format in
/// [`crate::names::cart`]). One key with one small string per cart is the cheapest layout
/// Redis has for it (measured in README, "Benchmark"), and keeps per-key expiry for RETAIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartRecord {
    pub cart: Cart,
    /// Ascending by SKU, each quantity above 0.
    pub lines: Vec<(Sku, i64)>,
}

impl CartRecord {
    pub fn encode(&self) -> String {
        use names::cart::{NO_ENTRY, SEPARATOR};
        let cart = &self.cart;
        let mut digits = itoa::Buffer::new();
        let mut text = String::with_capacity(48);
        for part in [
            cart.state.as_str(),
            cart.user.as_str(),
            digits.format(cart.deadline_ms),
            cart.entry.as_deref().unwrap_or(NO_ENTRY),
        ] {
            text.push_str(part);
            text.push_str(SEPARATOR);
        }
        crate::wire::write_lines(&mut text, &self.lines);
        text
    }

    /// Reads a record back; `None` for anything Flash did not write (the stores answer
    /// WRONGTYPE: a string under a cart's name that is not a cart). `units` is the lines' sum.
    pub fn decode(raw: &[u8]) -> Option<CartRecord> {
        let text = std::str::from_utf8(raw).ok()?;
        let mut parts = text.splitn(5, names::cart::SEPARATOR);
        let state = CartState::parse(parts.next()?.as_bytes())?;
        let user = parts.next().filter(|u| !u.is_empty())?;
        let deadline_ms = stored_int(parts.next()?.as_bytes())?;
        let entry = match parts.next()? {
            names::cart::NO_ENTRY => None,
            entry => Some(entry.to_owned()),
        };
        let lines = match parts.next()? {
            "" => Vec::new(),
            lines => crate::wire::parse_lines(lines)?,
        };
        if !lines.windows(2).all(|pair| pair[0].0 < pair[1].0)
            || lines.iter().any(|&(_, qty)| qty <= 0)
        {
            return None;
        }
        let units = lines.iter().map(|&(_, qty)| qty).sum();
        Some(CartRecord {
            cart: Cart {
                state,
                user: user.to_owned(),
                deadline_ms,
                units,
                entry,
            },
            lines,
        })
    }

    /// The quantity of one line (0 when the cart has none of the SKU).
    pub fn line(&self, sku: Sku) -> i64 {
        self.lines
            .binary_search_by_key(&sku, |&(s, _)| s)
            .map_or(0, |i| self.lines[i].1)
    }

    /// Sets one line, keeping the order; 0 removes it.
    pub fn set_line(&mut self, sku: Sku, qty: i64) {
        match self.lines.binary_search_by_key(&sku, |&(s, _)| s) {
            Ok(i) if qty == 0 => {
                self.lines.remove(i);
            }
            Ok(i) => self.lines[i].1 = qty,
            Err(i) if qty != 0 => self.lines.insert(i, (sku, qty)),
            Err(_) => {}
        }
    }
}

/// One checkout as appended to the order stream (encoded and decoded in [`crate::wire`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderEntry {
    pub order: String,
    pub user: String,
    /// Ascending by SKU.
    pub lines: Vec<(Sku, i64)>,
    pub units: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cart_record_reads_back_and_refuses_what_flash_did_not_write() {
        let mut record = CartRecord {
            cart: Cart {
                state: CartState::Held,
                user: "alice@shop".into(),
                deadline_ms: 1_764_640_000_000,
                units: 0,
                entry: None,
            },
            lines: Vec::new(),
        };
        assert_eq!(record.encode(), "held alice@shop 1764640000000 - ");
        assert_eq!(
            CartRecord::decode(record.encode().as_bytes()),
            Some(record.clone())
        );
        record.set_line(15, 2);
        record.set_line(14, 1);
        record.set_line(16, 0);
        record.cart.units = 3;
        record.cart.state = CartState::CheckedOut;
        record.cart.entry = Some("1764640000001-0".into());
        assert_eq!(
            record.encode(),
            "checked_out alice@shop 1764640000000 1764640000001-0 14:1,15:2"
        );
        assert_eq!(
            CartRecord::decode(record.encode().as_bytes()),
            Some(record.clone())
        );
        assert_eq!((record.line(15), record.line(99)), (2, 0));
        for bad in [
            &b"not a cart"[..],
            b"held  1 - ",
            b"held u 12x - ",
            b"held u 1 - 14:0",
            b"held u 1 - 15:1,14:1",
            b"held u 1 -",
            b"gone u 1 - ",
        ] {
            assert_eq!(
                CartRecord::decode(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn lanes_hold_each_hold_once_up_to_the_bound() {
        let mut lanes = Lanes::parse(b"60000,30000,60000,x,-5");
        assert_eq!(lanes.iter().collect::<Vec<_>>(), [60000, 30000]);
        assert_eq!(lanes.to_text(), "60000,30000");
        for hold in 1..=6 {
            assert!(lanes.insert(hold));
        }
        assert!(!lanes.insert(7), "full");
        assert!(lanes.insert(60000), "already in");
        assert_eq!(lanes.len(), MAX_LANES);
        assert!(Lanes::parse(b"").is_empty());
    }
}
