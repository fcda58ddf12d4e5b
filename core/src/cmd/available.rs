use crate::Sku;
use crate::args::Args;
use crate::error::Error;
use crate::error::Result;
use crate::keys::Counter;
use crate::reply::Reply;
use crate::store::Store;

/// Available units of many SKUs in one reply (a catalog page).
///
/// # Format
/// `FLASH.AVAILABLE sale sku [sku …]`
///
/// Replies an array in argument order: an integer per SKU, nil for a SKU never loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    pub sale: String,
    pub skus: Vec<Sku>,
}

impl Available {
    pub(crate) fn parse(args: &mut Args<'_>) -> Result<Available> {
        let sale = args.token("sale")?;
        let mut skus = vec![args.sku()?];
        while args.remaining() > 0 {
            skus.push(args.sku()?);
        }
        Ok(Available { sale, skus })
    }

    pub(crate) fn write_args(&self, out: &mut Vec<String>) {
        out.push(self.sale.clone());
        out.extend(self.skus.iter().map(Sku::to_string));
    }

    pub(crate) fn apply(&self, store: &mut impl Store) -> Result<Reply> {
        // A catalog page reads no settings: only that the sale exists.
        if !store.has_sale()? {
            return Err(Error::no_sale(&self.sale));
        }
        let mut units = Vec::with_capacity(self.skus.len());
        for &sku in &self.skus {
            units.push(
                store
                    .units(Counter::Available, sku)?
                    .map_or(Reply::Nil, Reply::Int),
            );
        }
        Ok(Reply::Array(units))
    }
}
