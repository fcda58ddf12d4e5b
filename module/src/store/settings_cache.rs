//! A sale's parsed settings, cached between commands, and what makes the cache forget.
//!
//! Why: every command reads the sale's settings, and reading five hash fields through the
//! module API costs more than a microsecond (a string made for each field name and each
//! value); FLASH.AVAILABLE costs about three times less without it. The settings change
//! almost never, so they are kept with the sale's names ([`super::names_cache`]) and read
//! again only after something may have changed them:
//! - FLASH.SALE itself (the store forgets when it flushes a write to the settings);
//! - any other write to a key named like a sale's settings, whoever makes it: a replica or
//!   an AOF replay applying the master's HSET, an HSET or DEL by hand, RENAME, MOVE, RESTORE,
//!   COPY, expiry, eviction (keyspace events of every class, filtered by key name);
//! - a change of the whole dataset: FLUSHALL/FLUSHDB, SWAPDB, an RDB or AOF load, a
//!   replica's full sync (server events).
//!
//! Settings whose key has a time to live are not kept (the key could lapse with no event
//! until Redis notices). If the server refuses any of these subscriptions, the cache stays
//! off and every command reads the settings, as before.
//!
//! The price: for every keyspace event of the server (any client's write, a key expiring),
//! Redis makes a module context and calls [`on_key_event`], which looks at the key's name and
//! returns: measured about 0.1 µs more per notifying write (HINCRBY 0.30 → 0.42 µs).

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void};

use flash_core::keys::SaleKeys;
use redis_module::raw;

use super::names_cache::forget_settings;
use crate::api::{Ctx, api, bytes};

thread_local! {
    // Commands, timers and notifications run on Redis's main thread only.
    static ENABLED: Cell<bool> = const { Cell::new(false) };
}

/// Whether cached settings may be used (every invalidation is subscribed).
pub(super) fn enabled() -> bool {
    ENABLED.get()
}

/// Subscribes to everything that can change a sale's settings behind the module's back;
/// turns the cache on only if every subscription holds.
pub fn start(ctx: Ctx) {
    let status = unsafe {
        api!(RedisModule_SubscribeToKeyspaceEvents)(
            ctx,
            raw::REDISMODULE_NOTIFY_ALL as c_int,
            Some(on_key_event),
        )
    };
    let keyspace = status == raw::REDISMODULE_OK as c_int;
    let server_events = [
        raw::REDISMODULE_EVENT_FLUSHDB,
        raw::REDISMODULE_EVENT_SWAPDB,
        raw::REDISMODULE_EVENT_LOADING,
        raw::REDISMODULE_EVENT_REPL_ASYNC_LOAD,
    ]
    .into_iter()
    .all(|id| {
        let event = raw::RedisModuleEvent { id, dataver: 1 };
        let status =
            unsafe { api!(RedisModule_SubscribeToServerEvent)(ctx, event, Some(on_server_event)) };
        status == raw::REDISMODULE_OK as c_int
    });
    ENABLED.set(keyspace && server_events);
}

unsafe extern "C" fn on_key_event(
    _ctx: Ctx,
    _type: c_int,
    _event: *const c_char,
    key: *mut raw::RedisModuleString,
) -> c_int {
    let key = bytes(key);
    if SaleKeys::sale_of_settings_key(key).is_some() {
        forget_settings();
    }
    raw::REDISMODULE_OK as c_int
}

unsafe extern "C" fn on_server_event(
    _ctx: Ctx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut c_void,
) {
    forget_settings();
}
