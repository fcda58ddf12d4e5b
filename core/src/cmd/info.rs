use std::collections::BTreeMap;

use super::require_sale;
use crate::args::Args;
use crate::error::Result;
use crate::keys::SaleKey;
use crate::model::Sale;
use crate::names::{queue, reply, sale as settings};
use crate::queue::commitment;
use crate::reply::Reply;
use crate::store::Store;

/// A sale's settings and its units per SKU and in total.
///
/// # Format
/// `FLASH.INFO sale`
///
/// Replies field/value pairs: `hold_ms`, `limit`, `start_ms`, `end_ms`, `retain_ms`, `open` (1 or 0 now),
/// `held_carts`, `total` (`[loaded, available, held, pending, sold]`) and `skus` (one
/// `[sku, loaded, available, held, pending, sold]` per SKU, ascending). For every row,
/// loaded = available + held + pending + sold. Last, `queue`: nil when the sale has no
/// waiting room, else field/value pairs: `queue_rate`, `queue_cap`, `admit_ms`, `idle_ms`,
/// `seed_sha1` (the seed's commitment), `seed` (nil before START), `line` (shoppers
/// waiting), `admitted_now` (admissions live, expired ones not yet ended included), and the
/// counters `admitted`, `lapsed` and `abandoned`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub sale: String,
}

impl Info {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Info> {
        Ok(Info {
            sale: args.token("sale")?,
        })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.push(self.sale.clone());
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        let now_ms = store.now_ms();
        let sale = require_sale(store, &self.sale)?;
        let mut rows: BTreeMap<i64, [i64; 5]> = BTreeMap::new();
        for (sku, counter, units) in store.all_units()? {
            rows.entry(sku).or_default()[counter.column()] = units;
        }
        let mut total = [0i64; 5];
        for row in rows.values() {
            for (sum, units) in total.iter_mut().zip(row) {
                *sum += units;
            }
        }
        let queue = queue_info(store, &sale, now_ms)?;
        Ok(Reply::Array(vec![
            Reply::label(reply::HOLD_MS),
            Reply::Int(sale.hold_ms),
            Reply::label(reply::LIMIT),
            Reply::Int(sale.limit),
            Reply::label(reply::START_MS),
            Reply::Int(sale.start_ms),
            Reply::label(reply::END_MS),
            Reply::Int(sale.end_ms),
            Reply::label(reply::RETAIN_MS),
            Reply::Int(sale.retain_ms),
            Reply::label(reply::OPEN),
            Reply::Int(i64::from(sale.is_open(now_ms))),
            Reply::label(reply::HELD_CARTS),
            Reply::Int(store.held_carts()?),
            Reply::label(reply::TOTAL),
            Reply::ints(total),
            Reply::label(reply::SKUS),
            Reply::Array(
                rows.into_iter()
                    .map(|(sku, row)| Reply::ints(std::iter::once(sku).chain(row)))
                    .collect(),
            ),
            Reply::label(reply::QUEUE),
            queue,
        ]))
    }
}

/// The `queue` part of the reply.
fn queue_info(store: &mut impl Store, sale: &Sale, now_ms: i64) -> Result<Reply> {
    let room = &sale.queue;
    if !room.is_on() {
        return Ok(Reply::Nil);
    }
    let seed = room.seed.as_str();
    let revealed = now_ms >= sale.start_ms;
    Ok(Reply::Array(vec![
        Reply::label(settings::QUEUE_RATE),
        Reply::Int(room.rate),
        Reply::label(settings::QUEUE_CAP),
        Reply::Int(room.cap),
        Reply::label(settings::ADMIT_MS),
        Reply::Int(room.admit_ms),
        Reply::label(settings::IDLE_MS),
        Reply::Int(room.idle_ms),
        Reply::label(reply::SEED_SHA1),
        Reply::Bulk(commitment(seed)),
        Reply::label(reply::SEED),
        if revealed {
            Reply::bulk(seed)
        } else {
            Reply::Nil
        },
        Reply::label(reply::LINE),
        Reply::Int(store.count(SaleKey::Line)?),
        Reply::label(reply::ADMITTED_NOW),
        Reply::Int(store.count(SaleKey::Admitted)?),
        Reply::label(queue::ADMITTED),
        Reply::Int(store.queue_counter(queue::ADMITTED)?),
        Reply::label(queue::LAPSED),
        Reply::Int(store.queue_counter(queue::LAPSED)?),
        Reply::label(queue::ABANDONED),
        Reply::Int(store.queue_counter(queue::ABANDONED)?),
    ]))
}
