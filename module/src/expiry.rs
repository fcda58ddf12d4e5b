//! Hold expiry with no caller: a timer on the master releases overdue holds.
//!
//! Deadlines live in the dataset (`flash:{S}:deadlines`), not in the timer: the timer only
//! decides *when* to look. So a restarted or promoted server releases holds that fell due
//! while it was down on its first tick, and a replica never expires anything by itself
//! (its timer sees it is not a master and waits; the master's expiries reach it as effects).
//!
//! The timer needs the names of the sales. It keeps them in memory, filled by a SCAN of every
//! database when the server becomes a master (first tick after start or load, promotion), and
//! by every command that can create a hold.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_int, c_void};
use std::ptr;

use flash_core::cmd::Expire;
use flash_core::keys::SaleKeys;
use flash_core::{Error, ErrorCode};
use redis_module::raw;

use crate::api::{Ctx, api, bytes, context_flags};
use crate::store::RedisStore;

/// How often the timer looks. Half the 100 ms promise, so a busy tick still keeps it.
const TICK_MS: i64 = 50;
/// Carts one tick may expire per sale; the rest wait one tick.
const PER_TICK: i64 = 10_000;

#[derive(Default)]
struct Registry {
    /// db → sale names.
    sales: BTreeMap<c_int, BTreeSet<String>>,
    /// Whether the last tick saw a master: a change to master means rescan.
    was_master: bool,
}

thread_local! {
    // Commands and timers run on Redis's main thread only.
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// Notes a sale a command touched, in the client's current database.
pub fn remember(ctx: Ctx, sale: &str) {
    let db = unsafe { api!(RedisModule_GetSelectedDb)(ctx) };
    REGISTRY.with_borrow_mut(|registry| {
        let sales = registry.sales.entry(db).or_default();
        if !sales.contains(sale) {
            sales.insert(sale.to_owned());
        }
    });
}

pub fn start(ctx: Ctx) {
    schedule(ctx);
}

fn schedule(ctx: Ctx) {
    unsafe { api!(RedisModule_CreateTimer)(ctx, TICK_MS, Some(tick), ptr::null_mut()) };
}

unsafe extern "C" fn tick(ctx: Ctx, _data: *mut c_void) {
    let flags = context_flags(ctx);
    let master = flags & raw::REDISMODULE_CTX_FLAGS_MASTER != 0
        && flags & raw::REDISMODULE_CTX_FLAGS_LOADING == 0;
    if master {
        if !REGISTRY.with_borrow(|r| r.was_master) {
            rescan(ctx);
        }
        expire_all(ctx);
    }
    REGISTRY.with_borrow_mut(|r| r.was_master = master);
    schedule(ctx);
}

fn expire_all(ctx: Ctx) {
    let sales: Vec<(c_int, String)> = REGISTRY.with_borrow(|r| {
        r.sales
            .iter()
            .flat_map(|(db, names)| names.iter().map(|name| (*db, name.clone())))
            .collect()
    });
    for (db, sale) in sales {
        if unsafe { api!(RedisModule_SelectDb)(ctx, db) } != raw::REDISMODULE_OK as c_int {
            continue;
        }
        let expire = Expire {
            sale: sale.clone(),
            count: PER_TICK,
        };
        let mut store = RedisStore::new(ctx, &sale, true);
        match expire.apply(&mut store) {
            Ok(_) => store.flush(),
            // Deleted (or flushed): forget it until a command or a rescan finds it again.
            Err(Error {
                code: ErrorCode::NoSale,
                ..
            }) => REGISTRY.with_borrow_mut(|r| {
                if let Some(names) = r.sales.get_mut(&db) {
                    names.remove(&sale);
                }
            }),
            Err(error) => log_warning(ctx, &format!("flash: expiry of sale '{sale}': {error}")),
        }
    }
}

/// Finds every sale in every database by its settings key.
fn rescan(ctx: Ctx) {
    let mut found: BTreeMap<c_int, BTreeSet<String>> = BTreeMap::new();
    let mut db: c_int = 0;
    while unsafe { api!(RedisModule_SelectDb)(ctx, db) } == raw::REDISMODULE_OK as c_int {
        let mut names = BTreeSet::new();
        unsafe {
            let cursor = api!(RedisModule_ScanCursorCreate)();
            while api!(RedisModule_Scan)(
                ctx,
                cursor,
                Some(collect_sale),
                (&mut names as *mut BTreeSet<String>).cast(),
            ) != 0
            {}
            api!(RedisModule_ScanCursorDestroy)(cursor);
        }
        if !names.is_empty() {
            found.insert(db, names);
        }
        db += 1;
    }
    REGISTRY.with_borrow_mut(|r| {
        for (db, names) in found {
            r.sales.entry(db).or_default().extend(names);
        }
    });
}

unsafe extern "C" fn collect_sale(
    _ctx: Ctx,
    keyname: *mut raw::RedisModuleString,
    _key: *mut raw::RedisModuleKey,
    names: *mut c_void,
) {
    let names = unsafe { &mut *names.cast::<BTreeSet<String>>() };
    if let Some(sale) = SaleKeys::sale_of_settings_key(bytes(keyname)) {
        names.insert(sale.to_owned());
    }
}

fn log_warning(ctx: Ctx, message: &str) {
    let message = std::ffi::CString::new(message).unwrap_or_default();
    unsafe { api!(RedisModule_Log)(ctx, c"warning".as_ptr(), c"%s".as_ptr(), message.as_ptr()) };
}
