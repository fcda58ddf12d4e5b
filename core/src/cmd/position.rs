use super::require_sale;
use crate::args::Args;
use crate::error::{Error, ErrorCode, Result};
use crate::keys::SaleKey;
use crate::model::Sale;
use crate::names::{place, reply};
use crate::queue::eta_ms;
use crate::reply::Reply;
use crate::store::Store;

/// A waiting shopper's place, and a sign of life: a shopper who stops asking for IDLE ms
/// loses the place (FLASH.ADMIT drops it).
///
/// # Format
/// `FLASH.POSITION sale user`
///
/// Errors: NOSALE; NOQUEUE when the sale has no waiting room; NOTQUEUED when the user is
/// neither waiting nor admitted (never joined, or lost the place: join again).
///
/// Replies field/value pairs (FLASH.JOIN answers the same):
/// - `state`: `early` (came before START: the order is drawn at START), `waiting` or
///   `admitted`;
/// - `position`: the place in the line from 1 (`waiting`), 0 otherwise;
/// - `line`: shoppers waiting (before START: the pre-queue);
/// - `eta_ms`: when the shopper should be admitted at the sale's RATE (unix ms; before START
///   for a place in the middle of the pre-queue), 0 when admitted or the sale has no RATE;
/// - `until_ms`: when the admission ends (unix ms), 0 when not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub sale: String,
    pub user: String,
}

impl Position {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Position> {
        Ok(Position {
            sale: args.token("sale")?,
            user: args.token("user")?,
        })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.extend([self.sale.clone(), self.user.clone()]);
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        let now_ms = store.now_ms();
        let sale = require_queue(store, &self.sale)?;
        store.guard(&[SaleKey::Line, SaleKey::Seen, SaleKey::Admitted], None)?;
        if let Some(until_ms) = live_admission(store, &self.user, now_ms)? {
            return admitted_reply(store, until_ms);
        }
        if store.score(SaleKey::Line, &self.user)?.is_none() {
            return Err(Error::new(
                ErrorCode::NotQueued,
                format!(
                    "user '{}' is not in the waiting room of sale '{}'; join it again",
                    self.user, self.sale
                ),
            ));
        }
        store.set_score(SaleKey::Seen, &self.user, Some(now_ms))?;
        place_reply(store, &sale, &self.user, now_ms, false)
    }
}

/// The sale's settings if it has a waiting room: NOSALE, NOQUEUE.
pub(super) fn require_queue(store: &mut impl Store, sale_name: &str) -> Result<Sale> {
    let sale = require_sale(store, sale_name)?;
    if sale.queue.is_on() {
        Ok(sale)
    } else {
        Err(Error::no_queue(sale_name))
    }
}

/// When the user's admission ends, if it is live at `now_ms`.
pub(super) fn live_admission(
    store: &mut impl Store,
    user: &str,
    now_ms: i64,
) -> Result<Option<i64>> {
    Ok(store
        .score(SaleKey::Admitted, user)?
        .filter(|&until_ms| until_ms > now_ms))
}

/// The reply of an admitted user.
pub(super) fn admitted_reply(store: &mut impl Store, until_ms: i64) -> Result<Reply> {
    let line = store.count(SaleKey::Line)?;
    Ok(reply(place::ADMITTED, 0, line, 0, until_ms))
}

/// The reply of a user in the line; `last`: the user just took the last place (a new
/// ticket), so the position is the line's length, and the rank lookup (a ZRANK through
/// RM_Call in the module) is saved.
pub(super) fn place_reply(
    store: &mut impl Store,
    sale: &Sale,
    user: &str,
    now_ms: i64,
    last: bool,
) -> Result<Reply> {
    let line = store.count(SaleKey::Line)?;
    let rate = sale.queue.rate;
    if sale.start_ms > now_ms {
        // The pre-queue's order is secret until START: the estimate is for the middle.
        let eta = eta_ms(sale.start_ms, (line + 1) / 2, rate);
        return Ok(reply(place::EARLY, 0, line, eta, 0));
    }
    let position = if last {
        line
    } else {
        store
            .rank(SaleKey::Line, user)?
            .map_or(line, |rank| rank + 1)
    };
    Ok(reply(
        place::WAITING,
        position,
        line,
        eta_ms(now_ms, position, rate),
        0,
    ))
}

fn reply(state: &str, position: i64, line: i64, eta_ms: i64, until_ms: i64) -> Reply {
    Reply::Array(vec![
        Reply::label(reply::STATE),
        Reply::bulk(state),
        Reply::label(reply::POSITION),
        Reply::Int(position),
        Reply::label(reply::LINE),
        Reply::Int(line),
        Reply::label(reply::ETA_MS),
        Reply::Int(eta_ms),
        Reply::label(reply::UNTIL_MS),
        Reply::Int(until_ms),
    ])
}
