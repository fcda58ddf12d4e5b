use super::QUEUE_KEYS;
use super::position::{admitted_reply, live_admission, place_reply, require_queue};
use crate::args::Args;
use crate::error::{Error, Result};
use crate::keys::SaleKey;
use crate::names::queue::NEXT_TICKET;
use crate::queue::{TICKET_BASE, draw_score};
use crate::reply::Reply;
use crate::store::Store;

/// Joins a sale's waiting room, or keeps the place already held (and counts as a sign of
/// life, like FLASH.POSITION).
///
/// # Format
/// `FLASH.JOIN sale user`
///
/// Before START the user joins the pre-queue, placed by the draw from the sale's seed
/// (`sha1(seed ":" user)`); from START on, at the end of the line. An admitted user stays
/// admitted. Errors: NOSALE, NOQUEUE, CLOSED once the sale has ended. Replies as
/// FLASH.POSITION.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    pub sale: String,
    pub user: String,
}

impl Join {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Join> {
        Ok(Join {
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
        if sale.end_ms > 0 && now_ms >= sale.end_ms {
            return Err(Error::closed(&self.sale));
        }
        store.guard(&QUEUE_KEYS, None)?;
        if let Some(until_ms) = live_admission(store, &self.user, now_ms)? {
            return admitted_reply(store, until_ms);
        }
        // A new ticket is the highest score in the line: its place is the last.
        let mut ticketed = false;
        if store.score(SaleKey::Line, &self.user)?.is_none() {
            let score = if now_ms < sale.start_ms {
                draw_score(sale.queue.seed.as_str(), &self.user)
            } else {
                let ticket = store.queue_counter(NEXT_TICKET)?;
                store.set_queue_counter(NEXT_TICKET, ticket + 1)?;
                ticketed = true;
                TICKET_BASE + ticket
            };
            store.set_score(SaleKey::Line, &self.user, Some(score))?;
        }
        store.set_score(SaleKey::Seen, &self.user, Some(now_ms))?;
        place_reply(store, &sale, &self.user, now_ms, ticketed)
    }
}
