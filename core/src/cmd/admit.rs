use super::{QUEUE_KEYS, count_option, keyword, require_sale};
use crate::args::{
    Args, DEFAULT_ADMIT_COUNT, MAX_ADMIT_COUNT, QUEUE_CREDIT_WINDOW_MS as CREDIT_WINDOW_MS,
};
use crate::error::Result;
use crate::keys::SaleKey;
use crate::model::Sale;
use crate::names::queue;
use crate::reply::Reply;
use crate::store::Store;

/// Runs a waiting room: ends the admissions that ran out unused, drops the waiting shoppers
/// who stopped asking for their place for the sale's IDLE, then, while the sale is open,
/// admits from the front of the line as the RATE allows (a token bucket of one second) and
/// while the admissions live stay under the CAP. Each kind of work handles at most COUNT
/// entries (default 1000). Nothing is admitted before START: that is when the pre-queue's
/// drawn order starts to move.
///
/// # Format
/// `FLASH.ADMIT sale [COUNT n]`
///
/// Replies `[admitted, lapsed, abandoned, waiting]`: shoppers admitted, admissions ended
/// unused, places dropped, and shoppers still waiting (all 0 when the sale has no waiting
/// room). The module does this by itself on a master every 50 ms; with the Lua twin
/// something must call it that often (the worker does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admit {
    pub sale: String,
    pub count: i64,
}

impl Admit {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Admit> {
        let sale = args.token("sale")?;
        let count = count_option(args, DEFAULT_ADMIT_COUNT, MAX_ADMIT_COUNT)?;
        Ok(Admit { sale, count })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.extend([
            self.sale.clone(),
            keyword::COUNT.to_owned(),
            self.count.to_string(),
        ]);
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        Ok(Reply::ints(self.run(store)?))
    }

    /// Runs the waiting room; returns `[admitted, lapsed, abandoned, waiting]`.
    pub fn run(&self, store: &mut impl Store) -> Result<[i64; 4]> {
        let now_ms = store.now_ms();
        let sale = require_sale(store, &self.sale)?;
        if !sale.queue.is_on() {
            return Ok([0; 4]);
        }
        store.guard(&QUEUE_KEYS, None)?;
        let lapsed = store.lowest(SaleKey::Admitted, now_ms, self.count)?;
        for (user, _) in &lapsed {
            store.set_score(SaleKey::Admitted, user, None)?;
        }
        let idle_since = now_ms.saturating_sub(sale.queue.idle_ms);
        let abandoned = store.lowest(SaleKey::Seen, idle_since - 1, self.count)?;
        for (user, _) in &abandoned {
            store.set_score(SaleKey::Line, user, None)?;
            store.set_score(SaleKey::Seen, user, None)?;
        }
        let waiting = store.count(SaleKey::Line)?;
        let admitted = if sale.is_open(now_ms) && waiting > 0 {
            self.admit(store, &sale, now_ms, waiting)?
        } else {
            0
        };
        let lapsed = lapsed.len() as i64;
        let abandoned = abandoned.len() as i64;
        for (field, more) in [
            (queue::ADMITTED, admitted),
            (queue::LAPSED, lapsed),
            (queue::ABANDONED, abandoned),
        ] {
            if more > 0 {
                let total = store.queue_counter(field)?;
                store.set_queue_counter(field, total + more)?;
            }
        }
        Ok([admitted, lapsed, abandoned, waiting - admitted])
    }

    /// Admits from the front of the line; returns how many.
    fn admit(&self, store: &mut impl Store, sale: &Sale, now_ms: i64, waiting: i64) -> Result<i64> {
        let settings = &sale.queue;
        let room = if settings.cap > 0 {
            (settings.cap - store.count(SaleKey::Admitted)?).max(0)
        } else {
            i64::MAX
        };
        // The bucket fills at RATE per second from START (or from its last count), up to a
        // second's worth; kept in thousandths, so no admission is lost to rounding.
        let credit = if settings.rate > 0 {
            let held = store.queue_counter(queue::CREDIT)?;
            let counted_at = store.queue_counter(queue::CREDIT_AT_MS)?.max(sale.start_ms);
            let elapsed = (now_ms - counted_at).clamp(0, CREDIT_WINDOW_MS);
            Some((held + elapsed * settings.rate).min(CREDIT_WINDOW_MS * settings.rate))
        } else {
            None
        };
        let allowed = credit.map_or(i64::MAX, |credit| credit / 1000);
        let take = self.count.min(room).min(allowed).min(waiting);
        let front = if take > 0 {
            store.lowest(SaleKey::Line, i64::MAX, take)?
        } else {
            Vec::new()
        };
        let until_ms = now_ms + settings.admit_ms;
        for (user, _) in &front {
            store.set_score(SaleKey::Line, user, None)?;
            store.set_score(SaleKey::Seen, user, None)?;
            store.set_score(SaleKey::Admitted, user, Some(until_ms))?;
        }
        let admitted = front.len() as i64;
        if let Some(credit) = credit {
            store.set_queue_counter(queue::CREDIT, credit - admitted * 1000)?;
            store.set_queue_counter(queue::CREDIT_AT_MS, now_ms)?;
        }
        Ok(admitted)
    }
}
