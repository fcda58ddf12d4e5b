//! What a sale, a cart and an order are.

use crate::Sku;
use crate::args::{DEFAULT_HOLD_MS, DEFAULT_RETAIN_MS};

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
}

impl Default for Sale {
    fn default() -> Sale {
        Sale {
            hold_ms: DEFAULT_HOLD_MS,
            limit: 0,
            start_ms: 0,
            end_ms: 0,
            retain_ms: DEFAULT_RETAIN_MS,
        }
    }
}

impl Sale {
    /// Open at `now_ms`: `start_ms <= now < end_ms`, each edge ignored when 0.
    pub fn is_open(&self, now_ms: i64) -> bool {
        (self.start_ms == 0 || now_ms >= self.start_ms)
            && (self.end_ms == 0 || now_ms < self.end_ms)
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

/// A cart's scalar fields; its lines are read and written one by one.
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

/// One checkout as appended to the order stream (encoded and decoded in [`crate::wire`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderEntry {
    pub order: String,
    pub user: String,
    /// Ascending by SKU.
    pub lines: Vec<(Sku, i64)>,
    pub units: i64,
}
