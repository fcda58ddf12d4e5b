use std::collections::BTreeMap;

use super::require_sale;
use crate::args::Args;
use crate::error::Result;
use crate::names::reply;
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
/// loaded = available + held + pending + sold.
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
        ]))
    }
}
