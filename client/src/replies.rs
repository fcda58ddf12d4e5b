//! Typed replies, read from the engine's documented reply shapes.

use flash_core::Sku;
use flash_core::model::CartState;
use flash_core::names::{Name, place, reply};
use redis::Value;

use crate::error::ClientError;

/// FLASH.RESERVE and FLASH.RELEASE: `[available, deadline_ms, cart_units]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The SKU's units left for everyone.
    pub available: i64,
    /// When the cart's hold ends (unix ms): the countdown a UI shows.
    pub deadline_ms: i64,
    pub cart_units: i64,
}

/// FLASH.CHECKOUT and FLASH.BUY: `[order, entry_id, units]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub order: String,
    /// The order's id in the sale's order stream.
    pub entry: String,
    pub units: i64,
}

/// FLASH.CART.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartView {
    pub state: CartState,
    pub user: String,
    pub deadline_ms: i64,
    pub units: i64,
    /// Ascending by SKU.
    pub lines: Vec<(Sku, i64)>,
    pub entry: Option<String>,
}

/// One row of FLASH.INFO: a SKU's ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkuUnits {
    pub loaded: i64,
    pub available: i64,
    pub held: i64,
    pub pending: i64,
    pub sold: i64,
}

impl SkuUnits {
    /// The conservation rule: loaded = available + held + pending + sold.
    pub fn is_conserved(&self) -> bool {
        self.loaded == self.available + self.held + self.pending + self.sold
    }
}

/// FLASH.INFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleInfo {
    pub hold_ms: i64,
    pub limit: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// How long finished carts are kept (ms); 0 = forever.
    pub retain_ms: i64,
    pub open: bool,
    pub held_carts: i64,
    pub total: SkuUnits,
    /// Ascending by SKU.
    pub skus: Vec<(Sku, SkuUnits)>,
    /// The waiting room, if the sale has one.
    pub queue: Option<QueueInfo>,
}

/// FLASH.INFO's `queue` part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    /// Admissions per second (0: none, only the cap).
    pub rate: i64,
    /// Most admissions live at once (0: no cap).
    pub cap: i64,
    pub admit_ms: i64,
    pub idle_ms: i64,
    /// `sha1(seed)`, published before START.
    pub seed_sha1: String,
    /// The seed, revealed from START on.
    pub seed: Option<String>,
    /// Shoppers waiting.
    pub line: i64,
    /// Admissions live now.
    pub admitted_now: i64,
    /// Shoppers admitted, ever.
    pub admitted: i64,
    /// Admissions that ran out unused, ever.
    pub lapsed: i64,
    /// Places dropped because the shopper stopped asking, ever.
    pub abandoned: i64,
}

/// Where a shopper stands in a waiting room (FLASH.JOIN, FLASH.POSITION).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceState {
    /// Came before START: the pre-queue's order is drawn at START.
    Early,
    Waiting,
    Admitted,
}

impl PlaceState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlaceState::Early => place::EARLY,
            PlaceState::Waiting => place::WAITING,
            PlaceState::Admitted => place::ADMITTED,
        }
    }
}

/// FLASH.JOIN and FLASH.POSITION.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub state: PlaceState,
    /// From 1 while waiting; 0 otherwise.
    pub position: i64,
    /// Shoppers waiting.
    pub line: i64,
    /// When the shopper should be admitted (unix ms); 0 when unknown or admitted.
    pub eta_ms: i64,
    /// When the admission ends (unix ms); 0 when not admitted.
    pub until_ms: i64,
}

/// FLASH.ADMIT: what one run of the waiting room did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    pub admitted: i64,
    pub lapsed: i64,
    pub abandoned: i64,
    pub waiting: i64,
}

/// Reads replies for one command, naming it in every complaint.
pub(crate) struct Reader {
    pub command: &'static str,
}

impl Reader {
    pub fn fail(&self, detail: impl Into<String>) -> ClientError {
        ClientError::Reply {
            command: self.command,
            detail: detail.into(),
        }
    }

    pub fn int(&self, value: &Value) -> Result<i64, ClientError> {
        match value {
            Value::Int(n) => Ok(*n),
            other => Err(self.fail(format!("expected an integer, got {other:?}"))),
        }
    }

    pub fn text(&self, value: &Value) -> Result<String, ClientError> {
        match value {
            Value::BulkString(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
            Value::SimpleString(text) => Ok(text.clone()),
            Value::Okay => Ok("OK".to_owned()),
            other => Err(self.fail(format!("expected a string, got {other:?}"))),
        }
    }

    pub fn array<'v>(
        &self,
        value: &'v Value,
        len: Option<usize>,
    ) -> Result<&'v [Value], ClientError> {
        match value {
            Value::Array(items) if len.is_none_or(|n| n == items.len()) => Ok(items),
            other => Err(self.fail(format!("expected an array of {len:?}, got {other:?}"))),
        }
    }

    pub fn ints(&self, value: &Value, len: Option<usize>) -> Result<Vec<i64>, ClientError> {
        self.array(value, len)?
            .iter()
            .map(|v| self.int(v))
            .collect()
    }

    /// A flat `field, value, …` array, checked against the expected field names.
    pub fn fields<'v>(
        &self,
        value: &'v Value,
        names: &[Name],
    ) -> Result<Vec<&'v Value>, ClientError> {
        let items = self.array(value, Some(names.len() * 2))?;
        names
            .iter()
            .zip(items.chunks(2))
            .map(|(name, pair)| {
                if self.text(&pair[0])? == name.as_str() {
                    Ok(&pair[1])
                } else {
                    Err(self.fail(format!("expected field {name}, got {:?}", pair[0])))
                }
            })
            .collect()
    }

    pub fn reservation(&self, value: &Value) -> Result<Reservation, ClientError> {
        let v = self.ints(value, Some(3))?;
        Ok(Reservation {
            available: v[0],
            deadline_ms: v[1],
            cart_units: v[2],
        })
    }

    pub fn order(&self, value: &Value) -> Result<Order, ClientError> {
        let items = self.array(value, Some(3))?;
        Ok(Order {
            order: self.text(&items[0])?,
            entry: self.text(&items[1])?,
            units: self.int(&items[2])?,
        })
    }

    pub fn cart(&self, value: &Value) -> Result<CartView, ClientError> {
        let f = self.fields(value, &reply::CART)?;
        let state = self.text(f[0])?;
        let lines = self.ints(f[4], None)?;
        if lines.len() % 2 != 0 {
            return Err(self.fail(format!("lines must be sku, qty pairs: {lines:?}")));
        }
        Ok(CartView {
            state: CartState::parse(state.as_bytes())
                .ok_or_else(|| self.fail(format!("unknown cart state {state}")))?,
            user: self.text(f[1])?,
            deadline_ms: self.int(f[2])?,
            units: self.int(f[3])?,
            lines: lines
                .chunks_exact(2)
                .map(|pair| (pair[0], pair[1]))
                .collect(),
            entry: match f[5] {
                Value::Nil => None,
                other => Some(self.text(other)?),
            },
        })
    }

    fn units(&self, v: &[i64]) -> SkuUnits {
        SkuUnits {
            loaded: v[0],
            available: v[1],
            held: v[2],
            pending: v[3],
            sold: v[4],
        }
    }

    pub fn info(&self, value: &Value) -> Result<SaleInfo, ClientError> {
        let f = self.fields(value, &reply::INFO)?;
        let skus = self
            .array(f[8], None)?
            .iter()
            .map(|row| {
                let row = self.ints(row, Some(6))?;
                Ok((row[0], self.units(&row[1..])))
            })
            .collect::<Result<_, ClientError>>()?;
        Ok(SaleInfo {
            hold_ms: self.int(f[0])?,
            limit: self.int(f[1])?,
            start_ms: self.int(f[2])?,
            end_ms: self.int(f[3])?,
            retain_ms: self.int(f[4])?,
            open: self.int(f[5])? == 1,
            held_carts: self.int(f[6])?,
            total: self.units(&self.ints(f[7], Some(5))?),
            skus,
            queue: match f[9] {
                Value::Nil => None,
                queue => Some(self.queue_info(queue)?),
            },
        })
    }

    fn queue_info(&self, value: &Value) -> Result<QueueInfo, ClientError> {
        let f = self.fields(value, &reply::QUEUE_INFO)?;
        Ok(QueueInfo {
            rate: self.int(f[0])?,
            cap: self.int(f[1])?,
            admit_ms: self.int(f[2])?,
            idle_ms: self.int(f[3])?,
            seed_sha1: self.text(f[4])?,
            seed: match f[5] {
                Value::Nil => None,
                seed => Some(self.text(seed)?),
            },
            line: self.int(f[6])?,
            admitted_now: self.int(f[7])?,
            admitted: self.int(f[8])?,
            lapsed: self.int(f[9])?,
            abandoned: self.int(f[10])?,
        })
    }

    pub fn place(&self, value: &Value) -> Result<Place, ClientError> {
        let f = self.fields(value, &reply::PLACE)?;
        let state = self.text(f[0])?;
        let state = [PlaceState::Early, PlaceState::Waiting, PlaceState::Admitted]
            .into_iter()
            .find(|s| s.as_str() == state)
            .ok_or_else(|| self.fail(format!("unknown place state {state}")))?;
        Ok(Place {
            state,
            position: self.int(f[1])?,
            line: self.int(f[2])?,
            eta_ms: self.int(f[3])?,
            until_ms: self.int(f[4])?,
        })
    }

    pub fn admission(&self, value: &Value) -> Result<Admission, ClientError> {
        let v = self.ints(value, Some(4))?;
        Ok(Admission {
            admitted: v[0],
            lapsed: v[1],
            abandoned: v[2],
            waiting: v[3],
        })
    }
}
