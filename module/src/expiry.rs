//! Hold expiry with no caller: a timer on the master releases overdue holds.
//!
//! Deadlines live in the dataset (`flash:{S}:deadlines`), not in the timer: the timer only
//! decides *when* to look. So a restarted or promoted server releases holds that fell due
//! while it was down on its first ticks, and a replica never expires anything by itself
//! (its timer sees it is not a master and waits; the master's expiries reach it as effects).
//!
//! The timer shares Redis's one thread with every client, so each tick has a time budget:
//! it expires in batches while the budget lasts, and when work is left it comes back after
//! 1 ms instead of 50, interleaving with client traffic rather than stalling it.
//!
//! The timer needs the names of the sales. It keeps them in memory: every command notes
//! the sale it names, and a SCAN of every database (in budgeted steps across ticks) finds
//! the rest when the server becomes a master (start, load, promotion) or when a known sale
//! vanished (deleted, flushed, swapped or moved to another database).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_int, c_void};
use std::ptr;
use std::time::{Duration, Instant};

use flash_core::cmd::Expire;
use flash_core::keys::SaleKeys;
use flash_core::{Error, ErrorCode};
use redis_module::raw;

use crate::api::{Ctx, Key, Kind, RString, api, bytes, context_flags, now_ms, selected_db};
use crate::store::RedisStore;

/// How often the timer looks when idle: half the 100 ms promise, so a late tick keeps it.
const TICK_MS: i64 = 50;
/// How soon the next tick comes when this one left work undone.
const CATCH_UP_MS: i64 = 1;
/// Main-thread time one tick may take.
const BUDGET: Duration = Duration::from_millis(3);
/// Carts per expiry batch: the budget is checked between batches.
const BATCH: i64 = 200;
/// How often each known sale's order stream is trimmed (FLASH.EXPIRE's second half): a
/// trim reads the consumer groups (XINFO GROUPS, XPENDING), a few µs per sale, so once a
/// second is plenty for entries kept a day.
const TRIM_EVERY_MS: i64 = 1000;

type Sales = BTreeMap<c_int, BTreeSet<String>>;

/// A SCAN of every database in progress.
struct Rescan {
    db: c_int,
    cursor: *mut raw::RedisModuleScanCursor,
    found: Sales,
}

#[derive(Default)]
struct Registry {
    /// db → sale names.
    sales: Sales,
    /// Whether the last tick saw a master: a change to master means rescan.
    was_master: bool,
    rescan: Option<Rescan>,
    /// Where the next tick starts among the sales, so a backlog in one sale cannot starve
    /// the others.
    rotation: usize,
    /// When the order streams were last trimmed (unix ms).
    trimmed_at_ms: i64,
}

thread_local! {
    // Commands and timers run on Redis's main thread only.
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// Notes the sale a command named, in the client's current database.
pub fn remember(ctx: Ctx, sale: &str) {
    let db = selected_db(ctx);
    REGISTRY.with_borrow_mut(|registry| {
        let sales = registry.sales.entry(db).or_default();
        if !sales.contains(sale) {
            sales.insert(sale.to_owned());
        }
    });
}

pub fn start(ctx: Ctx) {
    schedule(ctx, TICK_MS);
}

fn schedule(ctx: Ctx, after_ms: i64) {
    unsafe { api!(RedisModule_CreateTimer)(ctx, after_ms, Some(tick), ptr::null_mut()) };
}

unsafe extern "C" fn tick(ctx: Ctx, _data: *mut c_void) {
    let started = Instant::now();
    let flags = context_flags(ctx);
    let master = flags & raw::REDISMODULE_CTX_FLAGS_MASTER != 0
        && flags & raw::REDISMODULE_CTX_FLAGS_LOADING == 0;
    let mut busy = false;
    if master {
        if !REGISTRY.with_borrow(|r| r.was_master) {
            start_rescan();
        }
        busy |= continue_rescan(ctx, started);
        busy |= expire_due(ctx, started);
        trim_streams(ctx);
    }
    REGISTRY.with_borrow_mut(|r| r.was_master = master);
    schedule(ctx, if busy { CATCH_UP_MS } else { TICK_MS });
}

/// Expires overdue holds of every known sale within the budget; true if work is left.
fn expire_due(ctx: Ctx, started: Instant) -> bool {
    let sales = known_sales();
    let first = REGISTRY.with_borrow(|r| {
        if sales.is_empty() {
            0
        } else {
            r.rotation % sales.len()
        }
    });
    for (turn, (db, sale)) in sales
        .iter()
        .cycle()
        .skip(first)
        .take(sales.len())
        .enumerate()
    {
        if unsafe { api!(RedisModule_SelectDb)(ctx, *db) } != raw::REDISMODULE_OK as c_int {
            continue;
        }
        match look(ctx, sale) {
            Look::Idle => continue,
            Look::Gone => {
                forget(*db, sale);
                continue;
            }
            Look::Due => {}
        }
        let expire = Expire {
            sale: sale.clone(),
            count: BATCH,
        };
        loop {
            let mut store = RedisStore::new(ctx, sale, true);
            match expire.release_due(&mut store) {
                Ok(expired) => {
                    store.flush();
                    if expired < BATCH {
                        break;
                    }
                }
                Err(Error {
                    code: ErrorCode::NoSale,
                    ..
                }) => {
                    forget(*db, sale);
                    break;
                }
                Err(error) => {
                    log_warning(ctx, &format!("flash: expiry of sale '{sale}': {error}"));
                    break;
                }
            }
            if started.elapsed() >= BUDGET {
                // Start the next tick with the sale after this one.
                REGISTRY.with_borrow_mut(|r| r.rotation = first + turn + 1);
                return true;
            }
        }
    }
    false
}

/// Every sale the timer knows of, with its database.
fn known_sales() -> Vec<(c_int, String)> {
    REGISTRY.with_borrow(|r| {
        r.sales
            .iter()
            .flat_map(|(db, names)| names.iter().map(|name| (*db, name.clone())))
            .collect()
    })
}

/// Trims every known sale's order stream, once per [`TRIM_EVERY_MS`].
fn trim_streams(ctx: Ctx) {
    let now = now_ms();
    let due = REGISTRY.with_borrow_mut(|r| {
        let due = now - r.trimmed_at_ms >= TRIM_EVERY_MS;
        if due {
            r.trimmed_at_ms = now;
        }
        due
    });
    if !due {
        return;
    }
    for (db, sale) in known_sales() {
        if unsafe { api!(RedisModule_SelectDb)(ctx, db) } != raw::REDISMODULE_OK as c_int {
            continue;
        }
        let expire = Expire {
            sale: sale.clone(),
            count: BATCH,
        };
        let mut store = RedisStore::new(ctx, &sale, true);
        match expire.trim_orders(&mut store) {
            Ok(_) => store.flush(),
            // A sale gone since the last look: the expiry pass notices and rescans.
            Err(error) if error.code == ErrorCode::NoSale => {}
            Err(error) => log_warning(ctx, &format!("flash: trimming sale '{sale}': {error}")),
        }
    }
}

enum Look {
    /// A hold is past its deadline.
    Due,
    /// Nothing to do now.
    Idle,
    /// The sale is not here any more (deleted, flushed, swapped or moved away).
    Gone,
}

/// A glance at a sale in two key lookups, so the many quiet sales of a long-running server
/// cost each tick next to nothing.
fn look(ctx: Ctx, sale: &str) -> Look {
    let keys = SaleKeys::new(sale);
    let name = |name: String| RString::new(ctx, name.as_bytes());
    match Key::open(ctx, &name(keys.sale()), Kind::Hash, false) {
        Ok(key) if key.is_empty() => return Look::Gone,
        Ok(_) => {}
        // Not a hash (written by hand): not a sale to expire, and no reason to rescan.
        Err(_) => return Look::Idle,
    }
    let due = Key::open(ctx, &name(keys.deadlines()), Kind::Zset, false)
        .is_ok_and(|key| !key.zset_up_to(now_ms() as f64, 1).is_empty());
    if due { Look::Due } else { Look::Idle }
}

/// A known sale is gone from where it was: forget it, and look again for where it went.
fn forget(db: c_int, sale: &str) {
    REGISTRY.with_borrow_mut(|r| {
        if let Some(names) = r.sales.get_mut(&db) {
            names.remove(sale);
        }
    });
    start_rescan();
}

fn start_rescan() {
    REGISTRY.with_borrow_mut(|r| {
        if r.rescan.is_none() {
            let cursor = unsafe { api!(RedisModule_ScanCursorCreate)() };
            r.rescan = Some(Rescan {
                db: 0,
                cursor,
                found: Sales::new(),
            });
        }
    });
}

/// Scans on from where the last tick stopped, within the budget; true if not finished.
fn continue_rescan(ctx: Ctx, started: Instant) -> bool {
    let Some(mut rescan) = REGISTRY.with_borrow_mut(|r| r.rescan.take()) else {
        return false;
    };
    loop {
        if unsafe { api!(RedisModule_SelectDb)(ctx, rescan.db) } != raw::REDISMODULE_OK as c_int {
            // Past the last database: the scan is complete.
            unsafe { api!(RedisModule_ScanCursorDestroy)(rescan.cursor) };
            REGISTRY.with_borrow_mut(|r| {
                for (db, names) in rescan.found {
                    r.sales.entry(db).or_default().extend(names);
                }
            });
            return false;
        }
        let names = rescan.found.entry(rescan.db).or_default();
        let more = unsafe {
            api!(RedisModule_Scan)(
                ctx,
                rescan.cursor,
                Some(collect_sale),
                (names as *mut BTreeSet<String>).cast(),
            )
        };
        if more == 0 {
            rescan.db += 1;
            unsafe { api!(RedisModule_ScanCursorRestart)(rescan.cursor) };
        }
        if started.elapsed() >= BUDGET {
            REGISTRY.with_borrow_mut(|r| r.rescan = Some(rescan));
            return true;
        }
    }
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
