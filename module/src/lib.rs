//! The Flash module: the `FLASH.*` commands inside redis-server.
//!
//! The rules live in `flash-core`; this crate is the glue:
//! - [`command`]: the handler every command is registered with (parse, apply, reply).
//! - [`store`]: the core's `Store` over the Redis key API, replicating effects.
//! - [`expiry`]: the master's timer that releases overdue holds with no caller.
//! - [`migration`]: on a cluster, refuses to start moving a slot that holds a live sale.
//! - [`api`]: owned strings and keys over the raw module API.
//!
//! Load it with `redis-server --loadmodule target/release/libflash_module.so`.

mod api;
mod command;
mod expiry;
mod migration;
mod store;

use std::ffi::{CString, c_int};

use flash_core::cmd::COMMANDS;
use redis_module::{Context, RedisString, Status, raw, redis_module};

/// The raw API functions this crate calls that a server might lack: checked at load, so a
/// server too old for the module refuses to load it instead of crashing later.
macro_rules! missing_api {
    ($($name:ident),* $(,)?) => {{
        let mut missing: Vec<&str> = Vec::new();
        // Copies each function pointer out of the table the crate filled at load.
        $(if unsafe { raw::$name }.is_none() { missing.push(stringify!($name)); })*
        missing
    }};
}

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    let missing = missing_api!(
        RedisModule_CreateString,
        RedisModule_CreateStringFromLongLong,
        RedisModule_FreeString,
        RedisModule_StringPtrLen,
        RedisModule_OpenKey,
        RedisModule_CloseKey,
        RedisModule_KeyType,
        RedisModule_ValueLength,
        RedisModule_HashGet,
        RedisModule_HashSet,
        RedisModule_StringDMA,
        RedisModule_StringSet,
        RedisModule_ListPush,
        RedisModule_ListPop,
        RedisModule_ListGet,
        RedisModule_StreamAdd,
        RedisModule_StreamTrimByID,
        RedisModule_SetAbsExpire,
        RedisModule_GetExpire,
        RedisModule_Call,
        RedisModule_Replicate,
        RedisModule_PublishMessageShard,
        RedisModule_Milliseconds,
        RedisModule_GetContextFlags,
        RedisModule_GetSelectedDb,
        RedisModule_SubscribeToKeyspaceEvents,
        RedisModule_SubscribeToServerEvent,
        RedisModule_SelectDb,
        RedisModule_CreateTimer,
        RedisModule_ScanCursorCreate,
        RedisModule_Scan,
        RedisModule_ScanCursorDestroy,
        RedisModule_ReplyWithError,
        RedisModule_ReplyWithStringBuffer,
        RedisModule_ReplyWithArray,
        RedisModule_Log,
        RedisModule_CreateCommand,
        RedisModule_ScanCursorRestart,
        RedisModule_ReplyWithLongLong,
        RedisModule_ReplyWithSimpleString,
        RedisModule_ReplyWithNull,
        RedisModule_RegisterCommandFilter,
        RedisModule_CommandFilterArgsCount,
        RedisModule_CommandFilterArgGet,
        RedisModule_CommandFilterArgReplace,
        RedisModule_ZsetAdd,
        RedisModule_ZsetRem,
        RedisModule_ZsetScore,
        RedisModule_ZsetFirstInScoreRange,
        RedisModule_ZsetRangeCurrentElement,
        RedisModule_ZsetRangeNext,
        RedisModule_ZsetRangeEndReached,
        RedisModule_ZsetRangeStop,
    );
    if !missing.is_empty() {
        ctx.log_warning(&format!(
            "flash: this redis-server lacks module API functions {missing:?}; Redis 7.0 or newer is required"
        ));
        return Status::Err;
    }
    for spec in COMMANDS {
        let flags = if spec.writes {
            "write deny-oom"
        } else {
            "readonly"
        };
        let (Ok(name), Ok(flags)) = (CString::new(spec.name), CString::new(flags)) else {
            return Status::Err;
        };
        // Key positions 1, 1, 1: the sale is the key, so cluster clients route by it.
        let status = unsafe {
            api::api!(RedisModule_CreateCommand)(
                ctx.ctx,
                name.as_ptr(),
                Some(command::handle),
                flags.as_ptr(),
                1,
                1,
                1,
            )
        };
        if status != raw::REDISMODULE_OK as c_int {
            ctx.log_warning(&format!("flash: cannot register {}", spec.name));
            return Status::Err;
        }
    }
    store::settings_cache::start(ctx.ctx);
    expiry::start(ctx.ctx);
    let cluster = api::context_flags(ctx.ctx) & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0;
    if cluster && !migration::start(ctx.ctx) {
        ctx.log_warning("flash: cannot guard slot migrations (FLASH.SETSLOT and its filter)");
        return Status::Err;
    }
    Status::Ok
}

redis_module! {
    name: "flash",
    version: 1,
    allocator: (std::alloc::System, std::alloc::System),
    data_types: [],
    init: init,
}
