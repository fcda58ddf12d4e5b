//! The one entry point of every FLASH command: arguments in, [`Command`] parsed and applied,
//! the reply tree written out.

use std::ffi::{CString, c_int};

use flash_core::{Command, Error, Reply};
use redis_module::raw;

use crate::api::{Ctx, api, bytes};
use crate::expiry;
use crate::store::RedisStore;

/// The command handler registered for every `FLASH.*` name; `argv[0]` says which.
pub unsafe extern "C" fn handle(
    ctx: Ctx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    let argv = unsafe { std::slice::from_raw_parts(argv, usize::try_from(argc).unwrap_or(0)) };
    let Some((name, args)) = argv.split_first() else {
        return raw::REDISMODULE_ERR as c_int;
    };
    // Zero-copy: the argument bytes live as long as this call.
    let args: Vec<&[u8]> = args.iter().map(|&arg| bytes(arg)).collect();
    let name = String::from_utf8_lossy(bytes(*name));
    let result = Command::parse(&name, &args).and_then(|command| run(ctx, &command));
    match result {
        Ok(reply) => write_reply(ctx, &reply),
        Err(error) => write_error(ctx, &error),
    }
    raw::REDISMODULE_OK as c_int
}

fn run(ctx: Ctx, command: &Command) -> Result<Reply, Error> {
    let mut store = RedisStore::new(ctx, command.sale(), command.spec().writes);
    let reply = command.apply(&mut store)?;
    store.flush();
    // The expiry timer learns of sales from the commands that succeed on them (a command
    // on a sale that does not exist must not send it looking).
    expiry::remember(ctx, command.sale(), store.news());
    Ok(reply)
}

fn write_error(ctx: Ctx, error: &Error) {
    // Messages are built from validated tokens and numbers; a NUL cannot occur, but if it
    // did the code alone still reaches the client.
    let line = CString::new(error.to_line())
        .or_else(|_| CString::new(error.code.as_str()))
        .unwrap_or_default();
    unsafe { api!(RedisModule_ReplyWithError)(ctx, line.as_ptr()) };
}

fn write_reply(ctx: Ctx, reply: &Reply) {
    unsafe {
        match reply {
            Reply::Int(n) => api!(RedisModule_ReplyWithLongLong)(ctx, *n),
            Reply::Bulk(text) => {
                api!(RedisModule_ReplyWithStringBuffer)(ctx, text.as_ptr().cast(), text.len())
            }
            Reply::Status(text) => {
                let text = CString::new(*text).unwrap_or_default();
                api!(RedisModule_ReplyWithSimpleString)(ctx, text.as_ptr())
            }
            Reply::Nil => api!(RedisModule_ReplyWithNull)(ctx),
            Reply::Array(items) => {
                api!(RedisModule_ReplyWithArray)(ctx, items.len() as _);
                for item in items {
                    write_reply(ctx, item);
                }
                raw::REDISMODULE_OK as c_int
            }
        };
    }
}
