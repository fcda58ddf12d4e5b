//! Resharding a live sale is refused, loudly.
//!
//! Every command names the sale as its key, but the sale's name is not a key: during a slot
//! migration Redis would send a command to the node that holds *some* of the sale's keys
//! (ASK), where a reserve could read a missing users hash (LIMIT bypassed) or write a cart the
//! source still holds. So on a cluster the module guards the first step of every migration:
//! `CLUSTER SETSLOT <slot> MIGRATING <node>` on the node that holds the slot (what
//! `redis-cli --cluster reshard` sends before it moves any key). A command filter rewrites it
//! to `FLASH.SETSLOT`, which refuses with `LIVESALE` while any sale in the slot is live (open,
//! or with held carts or units checked out and not settled) and otherwise runs the `CLUSTER
//! SETSLOT` it was given. To move a sale: end it (`FLASH.SALE S END <now>`), let its holds
//! run out and its orders settle, then reshard.
//!
//! The filter costs every command one look at its name, so it is registered on cluster
//! nodes only.

use std::ffi::{CString, c_int};

use flash_core::keys::{Counter, slot_of_sale};
use flash_core::store::Store;
use redis_module::{Context, RedisValue, raw};

use crate::api::{Ctx, api, bytes, now_ms};
use crate::expiry;
use crate::store::RedisStore;

/// The command the filter turns `CLUSTER SETSLOT … MIGRATING …` into.
pub const GUARD_COMMAND: &str = "FLASH.SETSLOT";
/// The error word of a refused migration.
pub const LIVE_SALE: &str = "LIVESALE";

/// Registers the guard command and the filter; call on cluster nodes only.
pub fn start(ctx: Ctx) -> bool {
    let (Ok(name), Ok(flags)) = (CString::new(GUARD_COMMAND), CString::new("admin")) else {
        return false;
    };
    let created = unsafe {
        api!(RedisModule_CreateCommand)(ctx, name.as_ptr(), Some(setslot), flags.as_ptr(), 0, 0, 0)
    };
    if created != raw::REDISMODULE_OK as c_int {
        return false;
    }
    let filter = unsafe {
        api!(RedisModule_RegisterCommandFilter)(
            ctx,
            Some(filter),
            raw::REDISMODULE_CMDFILTER_NOSELF as c_int,
        )
    };
    !filter.is_null()
}

/// `CLUSTER SETSLOT <slot> MIGRATING <node>` becomes `FLASH.SETSLOT SETSLOT <slot> MIGRATING
/// <node>`; every other command passes untouched after one length check of its name.
unsafe extern "C" fn filter(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    let arg = |pos: c_int| {
        let s = unsafe { api!(RedisModule_CommandFilterArgGet)(fctx, pos) };
        if s.is_null() { &[][..] } else { bytes(s) }
    };
    if !arg(0).eq_ignore_ascii_case(b"CLUSTER")
        || unsafe { api!(RedisModule_CommandFilterArgsCount)(fctx) } != 5
        || !arg(1).eq_ignore_ascii_case(b"SETSLOT")
        || !arg(3).eq_ignore_ascii_case(b"MIGRATING")
    {
        return;
    }
    // Redis takes the new string over (and frees the one it replaces).
    let name = GUARD_COMMAND.as_bytes();
    let replacement = unsafe {
        api!(RedisModule_CreateString)(std::ptr::null_mut(), name.as_ptr().cast(), name.len())
    };
    unsafe { api!(RedisModule_CommandFilterArgReplace)(fctx, 0, replacement) };
}

/// `FLASH.SETSLOT SETSLOT <slot> MIGRATING <node>`: refuses while a sale in the slot is live,
/// else runs the `CLUSTER SETSLOT` and replies what it replied.
unsafe extern "C" fn setslot(
    ctx: Ctx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    let argv = unsafe { std::slice::from_raw_parts(argv, usize::try_from(argc).unwrap_or(0)) };
    let context = Context::new(ctx);
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|&arg| String::from_utf8_lossy(bytes(arg)).into_owned())
        .collect();
    let slot = match args.as_slice() {
        [setslot, slot, migrating, _node]
            if setslot.eq_ignore_ascii_case("SETSLOT")
                && migrating.eq_ignore_ascii_case("MIGRATING") =>
        {
            slot.parse::<u16>().ok()
        }
        _ => None,
    };
    let Some(slot) = slot else {
        context.reply_error_string("ERR usage: FLASH.SETSLOT SETSLOT <slot> MIGRATING <node>");
        return raw::REDISMODULE_OK as c_int;
    };
    if let Some(refusal) = refusal(ctx, slot) {
        context.reply_error_string(&refusal);
        return raw::REDISMODULE_OK as c_int;
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let reply = context.call("CLUSTER", args.as_slice());
    if let Ok(RedisValue::SimpleStringStatic("OK") | RedisValue::SimpleString(_)) = &reply {
        context.reply_simple_string("OK");
    } else {
        context.reply(reply);
    }
    raw::REDISMODULE_OK as c_int
}

/// Why the slot may not start migrating, if it may not: each live sale in it.
fn refusal(ctx: Ctx, slot: u16) -> Option<String> {
    let Some(sales) = expiry::known_sales(0) else {
        // The timer is still finding this node's sales (it just started or was promoted).
        return Some(format!(
            "{LIVE_SALE} slot {slot}: this node is still finding its sales; try again in a few \
             seconds"
        ));
    };
    let now = now_ms();
    let live: Vec<String> = sales
        .into_iter()
        .filter(|sale| slot_of_sale(sale) == slot)
        .filter_map(|sale| live_state(ctx, &sale, now).map(|why| format!("'{sale}' ({why})")))
        .collect();
    (!live.is_empty()).then(|| {
        format!(
            "{LIVE_SALE} slot {slot} holds live sale {}: end it (FLASH.SALE <sale> END <now>), \
             let its holds run out and its orders settle, then move it",
            live.join(", ")
        )
    })
}

/// Why a sale is live, or `None` when it has ended with nothing held or pending (or is gone).
fn live_state(ctx: Ctx, sale_name: &str, now: i64) -> Option<String> {
    let mut store = RedisStore::new(ctx, sale_name, false);
    let sale = match store.sale() {
        Ok(Some(sale)) => sale,
        Ok(None) => return None,
        Err(error) => return Some(error.to_line()),
    };
    let held = store.held_carts().unwrap_or(0);
    let pending: i64 = store
        .all_units()
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, counter, _)| *counter == Counter::Pending)
        .map(|(_, _, units)| units)
        .sum();
    let ended = sale.end_ms > 0 && now >= sale.end_ms;
    if ended && held == 0 && pending == 0 {
        return None;
    }
    let open = if ended { "ended" } else { "not ended" };
    Some(format!(
        "{open}; {held} carts held, {pending} units pending"
    ))
}
