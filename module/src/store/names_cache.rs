//! A sale's key names, cached between commands.

use std::cell::RefCell;
use std::rc::Rc;

use flash_core::keys::SaleKeys;

use crate::api::RString;

/// A sale's key names, formatted once and made Redis strings once, reused while commands
/// keep naming the same sale (a flash sale is one sale hit many thousand times a second):
/// opening a key or propagating a write then allocates no name.
pub(super) struct SaleNames {
    sale: String,
    pub(super) keys: SaleKeys,
    /// The fixed keys' names, in [`flash_core::keys::SaleKey`] order.
    pub(super) fixed: [RString; 5],
    pub(super) channel: RString,
}

thread_local! {
    // Commands run on Redis's main thread only.
    static LAST_SALE: RefCell<Option<Rc<SaleNames>>> = const { RefCell::new(None) };
}

pub(super) fn sale_names(sale: &str) -> Rc<SaleNames> {
    LAST_SALE.with_borrow_mut(|last| {
        if let Some(names) = last.as_ref().filter(|n| n.sale == sale) {
            return Rc::clone(names);
        }
        let keys = SaleKeys::new(sale);
        let names = Rc::new(SaleNames {
            sale: sale.to_owned(),
            fixed: keys.all().map(|name| RString::retained(name.as_bytes())),
            channel: RString::retained(keys.channel().as_bytes()),
            keys,
        });
        *last = Some(Rc::clone(&names));
        names
    })
}
