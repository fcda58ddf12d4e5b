//! Hold expiry with no caller: a timer on the master releases overdue holds, trims the
//! order streams, and runs the waiting rooms (FLASH.ADMIT).
//!
//! Deadlines live in the dataset (`flash:{S}:deadlines:<hold>` lists), not in the timer: the timer only
//! decides *when* to look. So a restarted or promoted server releases holds that fell due
//! while it was down on its first ticks, and a replica never expires anything by itself
//! (its timer sees it is not a master and waits; the master's expiries reach it as effects).
//!
//! The timer shares Redis's one thread with every client, so each tick has a time budget
//! ([`BUDGET`]): when work is left it comes back after 1 ms instead of 50, interleaving with
//! client traffic rather than stalling it.
//!
//! A server may hold many sales, most of them idle, so the timer never visits them in turn:
//! it keeps an agenda, each sale's next look by time. A sale's expiry look is planned at its
//! earliest deadline (every command that adds a deadline tells it, after the command
//! succeeded: [`remember`]), and after each look at the earliest deadline still listed;
//! a trim look when orders were appended, then when the oldest entry's retention runs out;
//! an admission look every tick while the sale's waiting room has anyone in it (waiting or
//! admitted), planned again by a join or a FLASH.SALE.
//! A tick pops only what is due, so sales with nothing due cost it nothing.
//!
//! The agenda is memory, rebuilt from the dataset: every command notes the sale it names,
//! and a SCAN of every database (in budgeted steps across ticks) finds the rest when the
//! server becomes a master (start, load, promotion) or when a known sale vanished (deleted,
//! flushed, swapped or moved to another database); a sale found so is looked at at once.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{c_int, c_void};
use std::ptr;
use std::time::{Duration, Instant};

use flash_core::ErrorCode;
use flash_core::cmd::{Admit, Expire};
use flash_core::keys::SaleKeys;
use flash_core::store::Store;
use redis_module::raw;

use crate::api::{Ctx, api, bytes, context_flags, now_ms, selected_db};
use crate::store::RedisStore;

/// How often the timer looks when idle: half the 100 ms promise, so a late tick keeps it.
const TICK_MS: i64 = 50;
/// How soon the next tick comes when this one left work undone.
const CATCH_UP_MS: i64 = 1;
/// Main-thread time one tick may take (a release that starts just before it runs out may
/// take up to FLASH.EXPIRE's own budget more): PING's p99 stays at a couple of ms while
/// 100,000 holds fall due at once.
const BUDGET: Duration = Duration::from_micros(500);
/// Carts per expiry look: one look per sale per turn, so one sale's backlog cannot starve
/// the others.
const BATCH: i64 = 64;
/// The first trim look after a command appended orders to a stream with no look planned:
/// it then plans the next one from the oldest entry.
const TRIM_SOON_MS: i64 = 1_000;
/// The next trim look when the oldest entry is past retention but a consumer group still
/// needs it (pending, or not read yet): a worker usually catches up in seconds, and a
/// minute is nothing against a day's retention, while 100,000 stalled streams cost the
/// timer ~1,700 looks a second.
const TRIM_RETRY_MS: i64 = 60_000;
/// Entries per admission look and kind of work (admitted, lapsed, abandoned): a rate of
/// 10,000 a second is 500 a tick; a look that used them all comes back at once.
const ADMIT_BATCH: i64 = 500;

/// What the timer does for a sale at its planned time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    /// Release the holds past their deadline.
    Expire,
    /// Trim the order stream.
    Trim,
    /// Run the waiting room: admit, end lapsed admissions, drop abandoned places.
    Admit,
}

const JOBS: [Job; 3] = [Job::Expire, Job::Trim, Job::Admit];

/// A sale's planned looks (unix ms), `None` when none is needed.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    expire_at: Option<i64>,
    trim_at: Option<i64>,
    admit_at: Option<i64>,
}

impl Plan {
    fn at(&mut self, job: Job) -> &mut Option<i64> {
        match job {
            Job::Expire => &mut self.expire_at,
            Job::Trim => &mut self.trim_at,
            Job::Admit => &mut self.admit_at,
        }
    }
}

/// What a command that succeeded wrote that the timer must know.
#[derive(Clone, Copy, Debug, Default)]
pub struct News {
    /// The earliest deadline it added.
    pub earliest_deadline_ms: Option<i64>,
    /// It appended to the order stream.
    pub orders_appended: bool,
    /// It wrote the sale's settings (FLASH.SALE: RETAIN may have changed).
    pub settings_written: bool,
    /// It put a shopper in the waiting room's line.
    pub joined: bool,
}

/// A SCAN of every database in progress.
struct Rescan {
    db: c_int,
    cursor: *mut raw::RedisModuleScanCursor,
    found: BTreeMap<c_int, BTreeSet<String>>,
}

#[derive(Default)]
struct Registry {
    /// db → sale → its planned looks.
    sales: HashMap<c_int, HashMap<String, Plan>>,
    /// Every planned look: (when, job, db, sale), earliest first. Holds exactly the times
    /// in `sales`.
    agenda: BTreeSet<(i64, Job, c_int, String)>,
    /// Whether the last tick saw a master: a change to master means rescan.
    was_master: bool,
    rescan: Option<Rescan>,
}

impl Registry {
    /// Plans `job` for the sale at `at` (`None`: not at all), replacing what was planned.
    fn plan(&mut self, db: c_int, sale: &str, job: Job, at: Option<i64>) {
        let Some(plan) = self
            .sales
            .get_mut(&db)
            .and_then(|sales| sales.get_mut(sale))
        else {
            return;
        };
        let slot = plan.at(job);
        if *slot == at {
            return;
        }
        if let Some(old) = slot.take() {
            self.agenda.remove(&(old, job, db, sale.to_owned()));
        }
        *slot = at;
        if let Some(at) = at {
            self.agenda.insert((at, job, db, sale.to_owned()));
        }
    }

    /// Plans `job` at `at` unless it is planned earlier already.
    fn plan_by(&mut self, db: c_int, sale: &str, job: Job, at: i64) {
        let planned = self
            .sales
            .get_mut(&db)
            .and_then(|sales| sales.get_mut(sale))
            .and_then(|plan| *plan.at(job));
        if planned.is_none_or(|planned| planned > at) {
            self.plan(db, sale, job, Some(at));
        }
    }

    /// Adds a sale not known yet, with both looks planned at `now` (its deadlines and its
    /// stream are unknown to the timer); false if it was known.
    fn add(&mut self, db: c_int, sale: &str, now: i64) -> bool {
        let sales = self.sales.entry(db).or_default();
        if sales.contains_key(sale) {
            return false;
        }
        sales.insert(sale.to_owned(), Plan::default());
        for job in JOBS {
            self.plan(db, sale, job, Some(now));
        }
        true
    }

    /// Plans both looks of every known sale at `now` at the latest.
    fn look_at_all(&mut self, now: i64) {
        let known: Vec<(c_int, String)> = self
            .sales
            .iter()
            .flat_map(|(db, sales)| sales.keys().map(|sale| (*db, sale.clone())))
            .collect();
        for (db, sale) in known {
            for job in JOBS {
                self.plan_by(db, &sale, job, now);
            }
        }
    }

    /// Forgets a sale and its planned looks.
    fn remove(&mut self, db: c_int, sale: &str) {
        for job in JOBS {
            self.plan(db, sale, job, None);
        }
        if let Some(sales) = self.sales.get_mut(&db) {
            sales.remove(sale);
        }
    }

    /// The earliest planned look if it is due at `now`, taken off the agenda (its plan
    /// cleared: the look plans the next one).
    fn pop_due(&mut self, now: i64) -> Option<(Job, c_int, String)> {
        let first = self.agenda.first().filter(|(at, ..)| *at <= now)?;
        let (_, job, db, sale) = first.clone();
        self.plan(db, &sale, job, None);
        Some((job, db, sale))
    }
}

thread_local! {
    // Commands and timers run on Redis's main thread only.
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// Notes the sale a command named (in the client's current database) and what it wrote
/// that changes the sale's planned looks. On the hot path: one map lookup when nothing
/// changes, as a later deadline than the planned look changes nothing.
pub fn remember(ctx: Ctx, sale: &str, news: News) {
    let db = selected_db(ctx);
    REGISTRY.with_borrow_mut(|registry| {
        let plan = registry.sales.get(&db).and_then(|sales| sales.get(sale));
        let Some(plan) = plan.copied() else {
            registry.add(db, sale, now_ms());
            return;
        };
        if let Some(deadline) = news.earliest_deadline_ms
            && plan.expire_at.is_none_or(|at| at > deadline)
        {
            registry.plan(db, sale, Job::Expire, Some(deadline));
        }
        if news.settings_written || (news.orders_appended && plan.trim_at.is_none()) {
            registry.plan_by(db, sale, Job::Trim, now_ms() + TRIM_SOON_MS);
        }
        if (news.joined || news.settings_written) && plan.admit_at.is_none() {
            registry.plan(db, sale, Job::Admit, Some(now_ms()));
        }
    });
}

/// The sales known in database `db`, or `None` while a rescan is still finding them.
pub fn known_sales(db: c_int) -> Option<Vec<String>> {
    REGISTRY.with_borrow(|registry| {
        if registry.rescan.is_some() {
            return None;
        }
        Some(
            registry
                .sales
                .get(&db)
                .map(|sales| sales.keys().cloned().collect())
                .unwrap_or_default(),
        )
    })
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
            // As a replica (or while loading) the dataset changed under the agenda, by
            // writes that told it nothing: look at every known sale, and find the others.
            REGISTRY.with_borrow_mut(|r| r.look_at_all(now_ms()));
            start_rescan();
        }
        busy |= continue_rescan(ctx, started);
        busy |= run_due(ctx, started);
    }
    REGISTRY.with_borrow_mut(|r| r.was_master = master);
    schedule(ctx, if busy { CATCH_UP_MS } else { TICK_MS });
}

/// Runs the planned looks that are due, earliest first, within the budget; true if work
/// is left.
fn run_due(ctx: Ctx, started: Instant) -> bool {
    let now = now_ms();
    while started.elapsed() < BUDGET {
        let Some((job, db, sale)) = REGISTRY.with_borrow_mut(|r| r.pop_due(now)) else {
            return false;
        };
        if unsafe { api!(RedisModule_SelectDb)(ctx, db) } != raw::REDISMODULE_OK as c_int {
            REGISTRY.with_borrow_mut(|r| r.remove(db, &sale));
            continue;
        }
        let next = match job {
            Job::Expire => expire(ctx, &sale),
            Job::Trim => trim(ctx, &sale, now),
            Job::Admit => admit(ctx, &sale, now),
        };
        match next {
            Next::At(at) => REGISTRY.with_borrow_mut(|r| r.plan_by(db, &sale, job, at)),
            Next::Never => {}
            Next::Gone => forget(db, &sale),
        }
    }
    REGISTRY.with_borrow(|r| r.agenda.first().is_some_and(|(at, ..)| *at <= now))
}

/// What a look decided.
enum Next {
    /// Look again then.
    At(i64),
    /// Nothing to look at until a command plans it.
    Never,
    /// The sale is not here any more (deleted, flushed, swapped or moved away).
    Gone,
}

/// One expiry look: releases up to a batch of due holds, then plans the next look at the
/// earliest deadline left (now, if the batch or the budget stopped it).
fn expire(ctx: Ctx, sale: &str) -> Next {
    // FLASH.EXPIRE's own checks tell a sale that went (NOSALE: rescan) from a sale key of
    // another type (written by hand: logged, nothing to expire, no reason to rescan).
    let expire = Expire {
        sale: sale.to_owned(),
        count: BATCH,
    };
    let mut store = RedisStore::new(ctx, sale, true);
    match expire.release_due(&mut store) {
        Ok(_) => store.flush(),
        Err(error) if error.code == ErrorCode::NoSale => return Next::Gone,
        Err(error) => {
            // A sale key of another type: the next look would fail the same way, until a
            // command on the sale (which fails too) or a rescan plans it again.
            log_warning(ctx, &format!("flash: expiry of sale '{sale}': {error}"));
            return Next::Never;
        }
    }
    store.earliest_deadline().map_or(Next::Never, Next::At)
}

/// One trim look: trims the order stream (FLASH.EXPIRE's second half), then plans the next
/// look for when the oldest entry left passes retention.
fn trim(ctx: Ctx, sale: &str, now: i64) -> Next {
    let expire = Expire {
        sale: sale.to_owned(),
        count: BATCH,
    };
    let mut store = RedisStore::new(ctx, sale, true);
    match expire.trim_orders(&mut store) {
        Ok(_) => store.flush(),
        // The expiry look notices a sale that went, and rescans.
        Err(error) if error.code == ErrorCode::NoSale => return Next::Never,
        Err(error) => {
            log_warning(ctx, &format!("flash: trimming sale '{sale}': {error}"));
            return Next::Never;
        }
    }
    let retain_ms = match store.sale() {
        Ok(Some(settings)) if settings.retain_ms > 0 => settings.retain_ms,
        // Kept forever (or unreadable): a FLASH.SALE plans the next look.
        _ => return Next::Never,
    };
    let Some(oldest_ms) = store.orders_first_ms() else {
        // Empty: the next append plans the next look.
        return Next::Never;
    };
    let passes_retention_at = i64::try_from(oldest_ms)
        .unwrap_or(i64::MAX)
        .saturating_add(retain_ms)
        .saturating_add(1);
    if passes_retention_at > now {
        Next::At(passes_retention_at)
    } else {
        Next::At(now + TRIM_RETRY_MS)
    }
}

/// One admission look: runs the sale's waiting room (FLASH.ADMIT), then plans the next look
/// for the next tick while anyone waits or holds an admission (at once if a batch ran
/// full), and none otherwise (a join or a FLASH.SALE plans one).
fn admit(ctx: Ctx, sale: &str, now: i64) -> Next {
    let admit = Admit {
        sale: sale.to_owned(),
        count: ADMIT_BATCH,
    };
    let mut store = RedisStore::new(ctx, sale, true);
    let done = match admit.run(&mut store) {
        Ok(done) => done,
        // The expiry look notices a sale that went, and rescans.
        Err(error) if error.code == ErrorCode::NoSale => return Next::Never,
        Err(error) => {
            log_warning(
                ctx,
                &format!("flash: waiting room of sale '{sale}': {error}"),
            );
            return Next::Never;
        }
    };
    store.flush();
    let [admitted, lapsed, abandoned, waiting] = done;
    if admitted == ADMIT_BATCH || lapsed == ADMIT_BATCH || abandoned == ADMIT_BATCH {
        return Next::At(now);
    }
    let admissions = store
        .count(flash_core::keys::SaleKey::Admitted)
        .unwrap_or(0);
    if waiting > 0 || admissions > 0 {
        Next::At(now + TICK_MS)
    } else {
        Next::Never
    }
}

/// A known sale is gone from where it was: forget it, and look again for where it went.
fn forget(db: c_int, sale: &str) {
    REGISTRY.with_borrow_mut(|r| r.remove(db, sale));
    start_rescan();
}

fn start_rescan() {
    REGISTRY.with_borrow_mut(|r| {
        if r.rescan.is_none() {
            let cursor = unsafe { api!(RedisModule_ScanCursorCreate)() };
            r.rescan = Some(Rescan {
                db: 0,
                cursor,
                found: BTreeMap::new(),
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
            let now = now_ms();
            REGISTRY.with_borrow_mut(|r| {
                for (db, names) in rescan.found {
                    for name in names {
                        r.add(db, &name, now);
                    }
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
