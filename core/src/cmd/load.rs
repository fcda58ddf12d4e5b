use super::{add_units, keyword, require_sale};
use crate::Sku;
use crate::args::{Args, MAX_LOADED_UNITS, MAX_UNITS};
use crate::error::{Error, ErrorCode, Result};
use crate::keys::Counter;
use crate::keys::SaleKey;
use crate::reply::Reply;
use crate::store::Store;

/// Sets SKUs' available units (admin, and the database sync). `loaded` moves by the same
/// difference, so the conservation rule keeps holding. Pairs apply in order.
///
/// With `TOTAL`, `units` is the SKU's whole unsold stock (the database's count): available
/// becomes `units - held - pending`, so units already in carts or orders are not counted
/// twice, computed atomically with those counts. A total below them is an error.
///
/// # Format
/// `FLASH.LOAD sale [TOTAL] sku units [sku units …]`
///
/// A SKU's `loaded` counts every unit ever put on sale and may not pass 10^12
/// ([`MAX_LOADED_UNITS`]): a command that would carry it further is refused whole (ERR).
///
/// Replies the number of pairs applied. Publishes each SKU's new available units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    pub sale: String,
    pub total: bool,
    pub stock: Vec<(Sku, i64)>,
}

impl Load {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Load> {
        let sale = args.token("sale")?;
        let total = args.accept(keyword::TOTAL);
        let mut stock = vec![(args.sku()?, args.int("units", 0, MAX_UNITS)?)];
        while args.remaining() > 0 {
            stock.push((args.sku()?, args.int("units", 0, MAX_UNITS)?));
        }
        Ok(Load { sale, total, stock })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.push(self.sale.clone());
        if self.total {
            out.push(keyword::TOTAL.to_owned());
        }
        for (sku, units) in &self.stock {
            out.extend([sku.to_string(), units.to_string()]);
        }
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        require_sale(store, &self.sale)?;
        // Every pair is checked before the first is written.
        let mut targets = Vec::with_capacity(self.stock.len());
        for &(sku, units) in &self.stock {
            if !self.total {
                targets.push((sku, units));
                continue;
            }
            let taken = store.units(Counter::Held, sku)?.unwrap_or(0)
                + store.units(Counter::Pending, sku)?.unwrap_or(0);
            if units < taken {
                return Err(Error::new(
                    ErrorCode::Err,
                    format!("sku {sku}: total {units} is below the {taken} units held or pending"),
                ));
            }
            targets.push((sku, units - taken));
        }
        check_loaded_bound(store, &targets)?;
        store.guard(&[SaleKey::Stock], None)?;
        for (sku, units) in targets {
            let before = store.units(Counter::Available, sku)?.unwrap_or(0);
            add_units(store, Counter::Loaded, sku, units - before)?;
            store.set_units(Counter::Available, sku, units)?;
            store.publish_available(sku, units);
        }
        Ok(Reply::Int(self.stock.len() as i64))
    }
}

/// Refuses the whole command if applying `targets` in order would carry some SKU's `loaded`
/// counter past [`MAX_LOADED_UNITS`] (a SKU named twice is followed through both pairs).
fn check_loaded_bound(store: &mut impl Store, targets: &[(Sku, i64)]) -> Result<()> {
    // SKU → (available, loaded) as the pairs so far would leave them.
    let mut after: Vec<(Sku, i64, i64)> = Vec::with_capacity(targets.len());
    for &(sku, units) in targets {
        let (available, loaded) = match after.iter().find(|(s, _, _)| *s == sku) {
            Some(&(_, available, loaded)) => (available, loaded),
            None => (
                store.units(Counter::Available, sku)?.unwrap_or(0),
                store.units(Counter::Loaded, sku)?.unwrap_or(0),
            ),
        };
        let loaded = loaded + units - available;
        if loaded > MAX_LOADED_UNITS {
            return Err(Error::new(
                ErrorCode::Err,
                format!(
                    "sku {sku}: loading {units} units would carry its loaded units past \
                     {MAX_LOADED_UNITS}"
                ),
            ));
        }
        match after.iter_mut().find(|(s, _, _)| *s == sku) {
            Some(entry) => *entry = (sku, units, loaded),
            None => after.push((sku, units, loaded)),
        }
    }
    Ok(())
}
