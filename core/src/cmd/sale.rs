use super::keyword;
use crate::args::{
    Args, MAX_HOLD_MS, MAX_LANES, MAX_QUEUE_RATE, MAX_RETAIN_MS, MAX_SEED_LEN, MAX_TIME_MS,
    MAX_UNITS, MIN_SEED_LEN,
};
use crate::error::{Error, ErrorCode, Result};
use crate::keys::SaleKey;
use crate::model::{Lanes, Sale, Seed};
use crate::reply::Reply;
use crate::store::Store;

/// Creates a sale, or changes the settings it is given; the others keep their values.
///
/// # Format
/// `FLASH.SALE sale [HOLD ms] [LIMIT units] [START unix_ms] [END unix_ms] [RETAIN ms]
///  [RATE per_second] [CAP admissions] [ADMIT ms] [IDLE ms] [SEED hex]`
///
/// HOLD defaults to 40000 (1..=86400000); LIMIT 0 means no cap; START/END 0 mean unbounded.
/// RETAIN (default 86400000, at most 30 days, 0 = forever) is how long a finished cart
/// (settled, rejected, expired) is kept before Redis removes it, and how old an order-stream
/// entry every consumer group has acknowledged must be before FLASH.EXPIRE trims it.
/// A new HOLD applies to carts made afterwards, a new RETAIN to carts finished afterwards.
///
/// The waiting room: with RATE (admissions per second, at most 1,000,000) or CAP (most
/// admissions live at once) above 0 the sale has one, and RESERVE and BUY need an admission
/// (FLASH.JOIN, FLASH.ADMIT). ADMIT (default 60000) is how long an admission lasts unused,
/// IDLE (default 30000) how long a waiting shopper may go without asking for their place.
/// SEED (32 to 48 hex digits) orders the shoppers who join before START; it is required
/// with a waiting room, its SHA-1 is published (FLASH.INFO) and the seed itself revealed
/// from START on. It cannot change while anyone waits. RATE 0 CAP 0 turns the room off.
/// Replies `OK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleCmd {
    pub sale: String,
    pub hold_ms: Option<i64>,
    pub limit: Option<i64>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub retain_ms: Option<i64>,
    pub queue_rate: Option<i64>,
    pub queue_cap: Option<i64>,
    pub admit_ms: Option<i64>,
    pub idle_ms: Option<i64>,
    pub seed: Option<Seed>,
}

impl SaleCmd {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<SaleCmd> {
        let mut cmd = SaleCmd {
            sale: args.token("sale")?,
            hold_ms: None,
            limit: None,
            start_ms: None,
            end_ms: None,
            retain_ms: None,
            queue_rate: None,
            queue_cap: None,
            admit_ms: None,
            idle_ms: None,
            seed: None,
        };
        while args.remaining() > 0 {
            match args.keyword()?.as_str() {
                keyword::HOLD => cmd.hold_ms = Some(args.int(keyword::HOLD, 1, MAX_HOLD_MS)?),
                keyword::LIMIT => cmd.limit = Some(args.int(keyword::LIMIT, 0, MAX_UNITS)?),
                keyword::START => cmd.start_ms = Some(args.int(keyword::START, 0, MAX_TIME_MS)?),
                keyword::END => cmd.end_ms = Some(args.int(keyword::END, 0, MAX_TIME_MS)?),
                keyword::RETAIN => {
                    cmd.retain_ms = Some(args.int(keyword::RETAIN, 0, MAX_RETAIN_MS)?)
                }
                keyword::RATE => {
                    cmd.queue_rate = Some(args.int(keyword::RATE, 0, MAX_QUEUE_RATE)?)
                }
                keyword::CAP => cmd.queue_cap = Some(args.int(keyword::CAP, 0, MAX_UNITS)?),
                keyword::ADMIT => cmd.admit_ms = Some(args.int(keyword::ADMIT, 1, MAX_HOLD_MS)?),
                keyword::IDLE => cmd.idle_ms = Some(args.int(keyword::IDLE, 1, MAX_HOLD_MS)?),
                keyword::SEED => {
                    let raw = args.raw()?;
                    cmd.seed = Some(Seed::parse(raw).ok_or_else(|| {
                        Error::new(
                            ErrorCode::Err,
                            format!("SEED must be {MIN_SEED_LEN} to {MAX_SEED_LEN} hex digits"),
                        )
                    })?);
                }
                other => {
                    return Err(Error::new(
                        ErrorCode::Err,
                        format!(
                            "unknown option '{other}'; expected HOLD, LIMIT, START, END, \
                             RETAIN, RATE, CAP, ADMIT, IDLE or SEED"
                        ),
                    ));
                }
            }
        }
        Ok(cmd)
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.push(self.sale.clone());
        for (keyword, value) in [
            (keyword::HOLD, self.hold_ms),
            (keyword::LIMIT, self.limit),
            (keyword::START, self.start_ms),
            (keyword::END, self.end_ms),
            (keyword::RETAIN, self.retain_ms),
            (keyword::RATE, self.queue_rate),
            (keyword::CAP, self.queue_cap),
            (keyword::ADMIT, self.admit_ms),
            (keyword::IDLE, self.idle_ms),
        ] {
            if let Some(value) = value {
                out.extend([keyword.to_owned(), value.to_string()]);
            }
        }
        if let Some(seed) = &self.seed {
            out.extend([keyword::SEED.to_owned(), seed.as_str().to_owned()]);
        }
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        let existing = store.sale()?;
        let mut sale = existing.clone().unwrap_or_default();
        sale.hold_ms = self.hold_ms.unwrap_or(sale.hold_ms);
        sale.limit = self.limit.unwrap_or(sale.limit);
        sale.start_ms = self.start_ms.unwrap_or(sale.start_ms);
        sale.end_ms = self.end_ms.unwrap_or(sale.end_ms);
        sale.retain_ms = self.retain_ms.unwrap_or(sale.retain_ms);
        if sale.start_ms > 0 && sale.end_ms > 0 && sale.end_ms <= sale.start_ms {
            return Err(Error::new(ErrorCode::Err, "END must be after START"));
        }
        let queue = &mut sale.queue;
        queue.rate = self.queue_rate.unwrap_or(queue.rate);
        queue.cap = self.queue_cap.unwrap_or(queue.cap);
        queue.admit_ms = self.admit_ms.unwrap_or(queue.admit_ms);
        queue.idle_ms = self.idle_ms.unwrap_or(queue.idle_ms);
        if let Some(seed) = self.seed
            && seed != queue.seed
        {
            // The line's pre-queue places were drawn from the old seed.
            if store.count(SaleKey::Line)? > 0 {
                return Err(Error::new(
                    ErrorCode::Err,
                    "SEED cannot change while shoppers wait in the line",
                ));
            }
            queue.seed = seed;
        }
        if queue.is_on() && queue.seed.is_empty() {
            return Err(Error::new(
                ErrorCode::Err,
                format!(
                    "a waiting room needs SEED ({MIN_SEED_LEN} to {MAX_SEED_LEN} hex digits), \
                     committed before START"
                ),
            ));
        }
        sale.lanes = lanes_after(store, existing.as_ref(), sale.hold_ms)?;
        store.guard(&[SaleKey::Sale], None)?;
        store.set_sale(&sale)?;
        Ok(Reply::Status("OK"))
    }
}

/// The deadline lists a sale keeps once its HOLD is `hold_ms`: that one, and each earlier
/// one that still has entries (carts made with it may still be held). Refuses a new HOLD
/// while [`MAX_LANES`] earlier ones still have entries.
fn lanes_after(store: &mut impl Store, existing: Option<&Sale>, hold_ms: i64) -> Result<Lanes> {
    let mut lanes = Lanes::default();
    lanes.insert(hold_ms);
    for earlier in existing
        .map(Sale::lanes_to_look_at)
        .unwrap_or_default()
        .iter()
    {
        if earlier != hold_ms && store.lane_len(earlier)? > 0 && !lanes.insert(earlier) {
            return Err(Error::new(
                ErrorCode::Err,
                format!(
                    "HOLD cannot change now: {MAX_LANES} holds are in use by held carts; \
                     try again once the oldest have run out"
                ),
            ));
        }
    }
    Ok(lanes)
}
