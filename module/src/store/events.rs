//! Stock events, coalesced: a command notes a SKU's new available units; a timer publishes
//! the latest value of each changed SKU once, [`PUBLISH_AFTER_MS`] after the first change.
//!
//! Published as shard messages (SPUBLISH's way, see `api::publish`), so on a cluster they
//! stay within the sale's shard.
//!
//! Why coalesced: a hot SKU changes on every reserve, tens of thousands of times a second,
//! and each publish formats a message and writes it to every subscriber's buffer on the one
//! thread that also serves the reserves. Readers want the latest number, not every step (the
//! edge coalesces to 50 ms for browsers anyway). The bound: a change reaches the channel
//! within [`PUBLISH_AFTER_MS`] plus the event loop's delay; intermediate values of one SKU
//! within that window are not announced. Nothing is replicated: pub/sub never is.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::ptr;
use std::rc::Rc;

use flash_core::Sku;
use flash_core::wire::StockEvent;

use super::names_cache::SaleNames;
use crate::api::{Ctx, api, publish, selected_db};
use redis_module::raw;

/// How long after a SKU's first unannounced change its latest value is published.
pub(crate) const PUBLISH_AFTER_MS: i64 = 10;

#[derive(Default)]
struct Pending {
    /// SKU → (database, sale, latest available). A SKU id is usually in one sale.
    latest: HashMap<Sku, Vec<(c_int, Rc<SaleNames>, i64)>>,
    /// A publish timer is set.
    armed: bool,
}

thread_local! {
    // Commands and timers run on Redis's main thread only.
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Notes that `sku` of the sale now has `available` units; arms the publish timer if needed.
pub(super) fn note(ctx: Ctx, sale: &Rc<SaleNames>, sku: Sku, available: i64) {
    // Sales of one name in two databases share the channel, but each has its own latest.
    let db = selected_db(ctx);
    let arm = PENDING.with_borrow_mut(|pending| {
        let sales = pending.latest.entry(sku).or_default();
        match sales
            .iter_mut()
            .find(|(at, names, _)| *at == db && names.same_sale(sale))
        {
            Some((_, _, latest)) => *latest = available,
            None => sales.push((db, Rc::clone(sale), available)),
        }
        !std::mem::replace(&mut pending.armed, true)
    });
    if arm {
        unsafe {
            api!(RedisModule_CreateTimer)(
                ctx,
                PUBLISH_AFTER_MS,
                Some(publish_pending),
                ptr::null_mut(),
            )
        };
    }
}

unsafe extern "C" fn publish_pending(ctx: Ctx, _data: *mut c_void) {
    let latest = PENDING.with_borrow_mut(|pending| {
        pending.armed = false;
        std::mem::take(&mut pending.latest)
    });
    for (sku, sales) in latest {
        for (_, names, available) in sales {
            let message = StockEvent { sku, available }.to_json();
            publish(ctx, &names.channel, message.as_bytes());
        }
    }
}
