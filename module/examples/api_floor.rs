//! The module API's own floor, for `cargo xtask bench`: what a module command costs before it
//! does any work of its own, measured beside Redis's commands and Flash's.
//!
//! - `FLOOR.NOOP`: Redis calls the module and it replies an integer.
//! - `FLOOR.HGET key field`: the fewest API calls that read one hash field (open the key, get
//!   the field, parse it, reply, close): FLASH.AVAILABLE's work for one SKU, with nothing of
//!   Flash's (no arguments parsed, no sale checked).
//!
//! Load it with `--loadmodule target/release/examples/libapi_floor.so`. Not part of Flash.

use std::ffi::{c_int, c_void};
use std::ptr;

use redis_module::{Context, RedisString, Status, raw, redis_module};

unsafe extern "C" fn noop(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    unsafe { raw::RedisModule_ReplyWithLongLong.unwrap_unchecked()(ctx, 1) }
}

unsafe extern "C" fn hget(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    unsafe {
        if argc != 3 {
            return raw::RedisModule_WrongArity.unwrap_unchecked()(ctx);
        }
        let key = raw::RedisModule_OpenKey.unwrap_unchecked()(
            ctx,
            *argv.add(1),
            raw::REDISMODULE_READ as c_int,
        )
        .cast::<raw::RedisModuleKey>();
        let mut value: *mut raw::RedisModuleString = ptr::null_mut();
        raw::RedisModule_HashGet.unwrap_unchecked()(
            key,
            raw::REDISMODULE_HASH_NONE as c_int,
            *argv.add(2),
            &mut value as *mut *mut raw::RedisModuleString,
            ptr::null_mut::<c_void>(),
        );
        let mut number: std::ffi::c_longlong = 0;
        if !value.is_null() {
            raw::RedisModule_StringToLongLong.unwrap_unchecked()(value, &mut number);
            raw::RedisModule_FreeString.unwrap_unchecked()(ctx, value);
        }
        raw::RedisModule_CloseKey.unwrap_unchecked()(key);
        raw::RedisModule_ReplyWithLongLong.unwrap_unchecked()(ctx, number)
    }
}

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    let commands: [(&std::ffi::CStr, raw::RedisModuleCmdFunc, c_int); 2] = [
        (c"floor.noop", Some(noop), 0),
        (c"floor.hget", Some(hget), 1),
    ];
    for (name, handler, first_key) in commands {
        let Some(create) = (unsafe { raw::RedisModule_CreateCommand }) else {
            return Status::Err;
        };
        let status = unsafe {
            create(
                ctx.ctx,
                name.as_ptr(),
                handler,
                c"readonly fast".as_ptr(),
                first_key,
                first_key,
                first_key,
            )
        };
        if status != raw::REDISMODULE_OK as c_int {
            return Status::Err;
        }
    }
    Status::Ok
}

redis_module! {
    name: "floor",
    version: 1,
    allocator: (std::alloc::System, std::alloc::System),
    data_types: [],
    init: init,
}
