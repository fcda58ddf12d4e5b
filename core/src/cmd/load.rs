use super::{add_units, require_sale};
use crate::Sku;
use crate::args::{Args, MAX_UNITS};
use crate::error::Result;
use crate::keys::Counter;
use crate::reply::Reply;
use crate::store::{SaleKey, Store};

/// Sets SKUs' available units (admin, and the database sync). `loaded` moves by the same
/// difference, so the conservation rule keeps holding. Pairs apply in order.
///
/// # Format
/// `FLASH.LOAD sale sku units [sku units …]`
///
/// Replies the number of pairs applied. Publishes each SKU's new available units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    pub sale: String,
    pub stock: Vec<(Sku, i64)>,
}

impl Load {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Load> {
        let sale = args.token("sale")?;
        let mut stock = vec![(args.sku()?, args.int("units", 0, MAX_UNITS)?)];
        while args.remaining() > 0 {
            stock.push((args.sku()?, args.int("units", 0, MAX_UNITS)?));
        }
        Ok(Load { sale, stock })
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        require_sale(store, &self.sale)?;
        store.guard(&[SaleKey::Stock], None)?;
        for &(sku, units) in &self.stock {
            let before = store.units(Counter::Available, sku)?.unwrap_or(0);
            add_units(store, Counter::Loaded, sku, units - before)?;
            store.set_units(Counter::Available, sku, units)?;
            store.publish_available(sku, units);
        }
        Ok(Reply::Int(self.stock.len() as i64))
    }
}
