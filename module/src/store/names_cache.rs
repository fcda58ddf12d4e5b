//! A sale's key names, cached between commands.

use std::cell::RefCell;
use std::ffi::c_int;
use std::rc::Rc;

use flash_core::keys::SaleKeys;
use flash_core::model::Sale;

use crate::api::RString;

/// A sale's key names, formatted once and made Redis strings once, reused while commands
/// keep naming the same sale (a flash sale is one sale hit many thousand times a second):
/// opening a key or propagating a write then allocates no name.
pub(super) struct SaleNames {
    sale: String,
    pub(super) keys: SaleKeys,
    /// The fixed keys' names, in [`flash_core::keys::SaleKey`] order.
    pub(super) fixed: [RString; flash_core::keys::SaleKey::ALL.len()],
    pub(super) channel: RString,
    /// The settings as last read, with the database they were read in; cleared by
    /// [`forget_settings`] (see `settings_cache` for when).
    settings: RefCell<Option<(c_int, Sale)>>,
}

impl SaleNames {
    /// Names the same sale (the cache may hold another copy of the same names).
    pub(super) fn same_sale(&self, other: &SaleNames) -> bool {
        self.sale == other.sale
    }

    /// The settings read in database `db`, if still known.
    pub(super) fn settings(&self, db: c_int) -> Option<Sale> {
        let settings = self.settings.borrow();
        settings
            .as_ref()
            .filter(|(at, _)| *at == db)
            .map(|(_, sale)| sale.clone())
    }

    pub(super) fn keep_settings(&self, db: c_int, sale: &Sale) {
        *self.settings.borrow_mut() = Some((db, sale.clone()));
    }
}

/// Forgets the cached settings (the names stay: they never change).
pub(super) fn forget_settings() {
    LAST_SALE.with_borrow(|last| {
        if let Some(names) = last {
            *names.settings.borrow_mut() = None;
        }
    });
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
            settings: RefCell::new(None),
            keys,
        });
        *last = Some(Rc::clone(&names));
        names
    })
}
