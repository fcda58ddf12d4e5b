//! Thin safe-ish wrappers over the raw Redis module API: owned strings, open keys.
//!
//! The module does not use automatic memory management: every string it creates is freed
//! when its owner drops, which keeps the hot path free of the auto-memory pool's bookkeeping.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;

use flash_core::Error;
use redis_module::raw;

/// Calls a function of the Redis module API. [`crate::init`] checked that each exists.
macro_rules! api {
    ($name:ident) => {
        // SAFETY of the unwrap: `crate::missing_api!` lists every function used here and the
        // module refuses to load when one is missing.
        raw::$name.unwrap_unchecked()
    };
}
pub(crate) use api;

pub type Ctx = *mut raw::RedisModuleCtx;

/// A RedisModuleString this code created and frees.
pub struct RString {
    ctx: Ctx,
    pub ptr: *mut raw::RedisModuleString,
}

impl RString {
    pub fn new(ctx: Ctx, bytes: &[u8]) -> RString {
        let ptr =
            unsafe { api!(RedisModule_CreateString)(ctx, bytes.as_ptr().cast(), bytes.len()) };
        RString { ctx, ptr }
    }

    pub fn from_i64(ctx: Ctx, value: i64) -> RString {
        let ptr = unsafe { api!(RedisModule_CreateStringFromLongLong)(ctx, value) };
        RString { ctx, ptr }
    }

    /// A string kept between commands (a sale's key names): made without a context, so no
    /// command's lifetime is tied to it.
    pub fn retained(bytes: &[u8]) -> RString {
        RString::new(ptr::null_mut(), bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        bytes(self.ptr)
    }

    /// Takes ownership of a string the API returned to us.
    fn adopt(ctx: Ctx, ptr: *mut raw::RedisModuleString) -> Option<RString> {
        (!ptr.is_null()).then(|| RString { ctx, ptr })
    }
}

impl Drop for RString {
    fn drop(&mut self) {
        unsafe { api!(RedisModule_FreeString)(self.ctx, self.ptr) }
    }
}

/// The bytes of a RedisModuleString; valid while the string lives.
pub fn bytes<'a>(s: *const raw::RedisModuleString) -> &'a [u8] {
    let mut len = 0usize;
    let data = unsafe { api!(RedisModule_StringPtrLen)(s, &mut len) };
    if data.is_null() {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }
    }
}

/// A field name as a NUL-terminated C string, on the stack when short (they all are).
fn with_cfield<R>(field: &[u8], f: impl FnOnce(*const c_char) -> R) -> R {
    let mut buf = [0u8; 128];
    if field.len() < buf.len() {
        buf[..field.len()].copy_from_slice(field);
        f(buf.as_ptr().cast())
    } else {
        let mut owned = field.to_vec();
        owned.push(0);
        f(owned.as_ptr().cast())
    }
}

/// The kinds of value Flash keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hash,
    Stream,
    /// A cart's record.
    String,
    /// A deadline list.
    List,
    /// A waiting room's sorted set.
    Zset,
}

impl Kind {
    /// The kind a sale key holds (core's key layout says which).
    pub fn of(key: flash_core::keys::SaleKey) -> Kind {
        match key.redis_type() {
            "stream" => Kind::Stream,
            "zset" => Kind::Zset,
            _ => Kind::Hash,
        }
    }

    fn code(self) -> c_int {
        (match self {
            Kind::Hash => raw::REDISMODULE_KEYTYPE_HASH,
            Kind::Stream => raw::REDISMODULE_KEYTYPE_STREAM,
            Kind::String => raw::REDISMODULE_KEYTYPE_STRING,
            Kind::List => raw::REDISMODULE_KEYTYPE_LIST,
            Kind::Zset => raw::REDISMODULE_KEYTYPE_ZSET,
        }) as c_int
    }
}

/// An open key of a known kind: empty, or holding that kind (checked at open).
pub struct Key {
    ctx: Ctx,
    ptr: *mut raw::RedisModuleKey,
}

impl Key {
    /// Opens `name`; WRONGTYPE if it exists with another kind.
    pub fn open(ctx: Ctx, name: &RString, kind: Kind, write: bool) -> Result<Key, Error> {
        let mode = raw::REDISMODULE_READ | if write { raw::REDISMODULE_WRITE } else { 0 };
        // OpenKey keeps its own reference to the name, so the caller's may drop right after.
        let ptr = unsafe { api!(RedisModule_OpenKey)(ctx, name.ptr, mode as c_int) };
        let key = Key {
            ctx,
            ptr: ptr.cast(),
        };
        let found = unsafe { api!(RedisModule_KeyType)(key.ptr) };
        if found == raw::REDISMODULE_KEYTYPE_EMPTY as c_int || found == kind.code() {
            Ok(key)
        } else {
            Err(Error::wrong_type())
        }
    }

    pub fn is_empty(&self) -> bool {
        unsafe { api!(RedisModule_KeyType)(self.ptr) == raw::REDISMODULE_KEYTYPE_EMPTY as c_int }
    }

    /// Elements in the value (fields of a hash, members of a zset); 0 when empty.
    pub fn len(&self) -> usize {
        unsafe { api!(RedisModule_ValueLength)(self.ptr) }
    }

    pub fn hash_get(&self, field: &[u8]) -> Option<RString> {
        if self.is_empty() {
            return None;
        }
        let mut value: *mut raw::RedisModuleString = ptr::null_mut();
        with_cfield(field, |cfield| unsafe {
            api!(RedisModule_HashGet)(
                self.ptr,
                raw::REDISMODULE_HASH_CFIELDS as c_int,
                cfield,
                &mut value as *mut *mut raw::RedisModuleString,
                ptr::null_mut::<c_void>(),
            )
        });
        RString::adopt(self.ctx, value)
    }

    /// Several fields in one call (the API is variadic, so the count is fixed per call
    /// site); absent fields read as `None`.
    pub fn hash_get_many<const N: usize>(&self, fields: [&CStr; N]) -> [Option<RString>; N] {
        let mut values = [ptr::null_mut::<raw::RedisModuleString>(); N];
        if !self.is_empty() {
            for (chunk, out) in fields.chunks(4).zip(values.chunks_mut(4)) {
                self.hash_get_up_to_4(chunk, out);
            }
        }
        values.map(|value| RString::adopt(self.ctx, value))
    }

    fn hash_get_up_to_4(&self, fields: &[&CStr], out: &mut [*mut raw::RedisModuleString]) {
        let flags = raw::REDISMODULE_HASH_CFIELDS as c_int;
        let end = ptr::null_mut::<c_void>();
        let get = unsafe { api!(RedisModule_HashGet) };
        let f = |i: usize| fields[i].as_ptr();
        unsafe {
            match (fields.len(), out) {
                (1, [a]) => get(self.ptr, flags, f(0), a as *mut _, end),
                (2, [a, b]) => get(self.ptr, flags, f(0), a as *mut _, f(1), b as *mut _, end),
                (3, [a, b, c]) => get(
                    self.ptr,
                    flags,
                    f(0),
                    a as *mut _,
                    f(1),
                    b as *mut _,
                    f(2),
                    c as *mut _,
                    end,
                ),
                (4, [a, b, c, d]) => get(
                    self.ptr,
                    flags,
                    f(0),
                    a as *mut _,
                    f(1),
                    b as *mut _,
                    f(2),
                    c as *mut _,
                    f(3),
                    d as *mut _,
                    end,
                ),
                _ => 0,
            };
        }
    }

    pub fn hash_set(&self, field: &RString, value: &RString) {
        unsafe {
            api!(RedisModule_HashSet)(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                field.ptr,
                value.ptr,
                ptr::null_mut::<c_void>(),
            )
        };
    }

    pub fn hash_del(&self, field: &[u8]) {
        with_cfield(field, |cfield| unsafe {
            api!(RedisModule_HashSet)(
                self.ptr,
                raw::REDISMODULE_HASH_CFIELDS as c_int,
                cfield,
                raw::REDISMODULE_HASH_DELETE as *mut raw::RedisModuleString,
                ptr::null_mut::<c_void>(),
            )
        });
    }

    /// Whether the key has a time to live.
    pub fn has_expiry(&self) -> bool {
        unsafe { api!(RedisModule_GetExpire)(self.ptr) != raw::REDISMODULE_NO_EXPIRE as i64 }
    }

    /// Removes the key at `at_ms`, unix ms (Redis's own key expiry).
    pub fn expire_at(&self, at_ms: i64) {
        unsafe { api!(RedisModule_SetAbsExpire)(self.ptr, at_ms) };
    }

    /// Removes the stream's entries below `min_id` (exact, as `XTRIM MINID` without `~`, so
    /// the replicas trim the same entries); returns how many went.
    pub fn stream_trim_below(&self, min_id: raw::RedisModuleStreamID) -> i64 {
        let mut id = min_id;
        let trimmed = unsafe { api!(RedisModule_StreamTrimByID)(self.ptr, 0, &mut id) };
        trimmed.max(0)
    }

    /// A string key's bytes, without a copy; valid until the key is written or closed.
    pub fn string_bytes(&self) -> Option<&[u8]> {
        if self.is_empty() {
            return None;
        }
        let mut len = 0usize;
        let data = unsafe {
            api!(RedisModule_StringDMA)(self.ptr, &mut len, raw::REDISMODULE_READ as c_int)
        };
        (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
    }

    /// Sets a string key (its time to live, if any, goes: as `SET` does).
    pub fn string_set(&self, value: &RString) {
        unsafe { api!(RedisModule_StringSet)(self.ptr, value.ptr) };
    }

    /// A list's element at `index` from the head, if there is one. Reading the elements in
    /// order costs O(1) each: the API keeps its place in the list between calls.
    pub fn list_get(&self, index: usize) -> Option<RString> {
        if index >= self.len() {
            return None;
        }
        let index = std::ffi::c_long::try_from(index).ok()?;
        let element = unsafe { api!(RedisModule_ListGet)(self.ptr, index) };
        RString::adopt(self.ctx, element)
    }

    pub fn list_push_tail(&self, element: &RString) {
        unsafe {
            api!(RedisModule_ListPush)(self.ptr, raw::REDISMODULE_LIST_TAIL as c_int, element.ptr)
        };
    }

    /// Removes the list's first element (Redis deletes a list left empty).
    pub fn list_pop_head(&self) {
        let element =
            unsafe { api!(RedisModule_ListPop)(self.ptr, raw::REDISMODULE_LIST_HEAD as c_int) };
        drop(RString::adopt(self.ctx, element));
    }

    /// A member's score in a sorted set.
    pub fn zset_score(&self, member: &RString) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        let mut score = 0f64;
        let found = unsafe { api!(RedisModule_ZsetScore)(self.ptr, member.ptr, &mut score) };
        (found == raw::REDISMODULE_OK as c_int).then_some(score)
    }

    /// Adds a member or moves it to `score`.
    pub fn zset_add(&self, member: &RString, score: f64) {
        unsafe { api!(RedisModule_ZsetAdd)(self.ptr, score, member.ptr, ptr::null_mut()) };
    }

    /// Removes a member (Redis deletes a set left empty).
    pub fn zset_rem(&self, member: &RString) {
        unsafe { api!(RedisModule_ZsetRem)(self.ptr, member.ptr, ptr::null_mut()) };
    }

    /// Up to `count` members with a score at or below `max`, lowest first (equal scores by
    /// member, as ZRANGEBYSCORE).
    pub fn zset_lowest(&self, max: f64, count: usize) -> Vec<(Vec<u8>, f64)> {
        let mut found = Vec::new();
        if self.is_empty() || count == 0 {
            return found;
        }
        unsafe {
            let started =
                api!(RedisModule_ZsetFirstInScoreRange)(self.ptr, f64::NEG_INFINITY, max, 0, 0);
            if started != raw::REDISMODULE_OK as c_int {
                return found;
            }
            while found.len() < count && api!(RedisModule_ZsetRangeEndReached)(self.ptr) == 0 {
                let mut score = 0f64;
                let member = api!(RedisModule_ZsetRangeCurrentElement)(self.ptr, &mut score);
                let Some(member) = RString::adopt(self.ctx, member) else {
                    break;
                };
                found.push((member.as_bytes().to_vec(), score));
                if api!(RedisModule_ZsetRangeNext)(self.ptr) == 0 {
                    break;
                }
            }
            api!(RedisModule_ZsetRangeStop)(self.ptr);
        }
        found
    }

    /// The millisecond part of a stream's first entry id; `None` for an empty stream.
    pub fn stream_first_ms(&self) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        let mut id = raw::RedisModuleStreamID { ms: 0, seq: 0 };
        let mut fields: std::ffi::c_long = 0;
        unsafe {
            let started = api!(RedisModule_StreamIteratorStart)(
                self.ptr,
                0,
                ptr::null_mut(),
                ptr::null_mut(),
            );
            if started != raw::REDISMODULE_OK as c_int {
                return None;
            }
            let found = api!(RedisModule_StreamIteratorNextID)(self.ptr, &mut id, &mut fields);
            api!(RedisModule_StreamIteratorStop)(self.ptr);
            (found == raw::REDISMODULE_OK as c_int).then_some(id.ms)
        }
    }

    /// Appends an entry with an id chosen by the server; returns the id.
    pub fn stream_add(&self, fields: &[(&[u8], &[u8])]) -> Result<raw::RedisModuleStreamID, Error> {
        let strings: Vec<RString> = fields
            .iter()
            .flat_map(|(name, value)| [RString::new(self.ctx, name), RString::new(self.ctx, value)])
            .collect();
        let mut argv: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.ptr).collect();
        let mut id = raw::RedisModuleStreamID { ms: 0, seq: 0 };
        let status = unsafe {
            api!(RedisModule_StreamAdd)(
                self.ptr,
                raw::REDISMODULE_STREAM_ADD_AUTOID as c_int,
                &mut id,
                argv.as_mut_ptr(),
                fields.len() as i64,
            )
        };
        if status == raw::REDISMODULE_OK as c_int {
            Ok(id)
        } else {
            Err(Error::new(
                flash_core::ErrorCode::Err,
                "the order stream refused the entry (its last id is in the future?)",
            ))
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        unsafe { api!(RedisModule_CloseKey)(self.ptr) }
    }
}

/// Propagates one command to replicas and the AOF, exactly as given.
pub fn replicate(ctx: Ctx, command: &'static [u8], args: &[&[u8]]) {
    let strings: Vec<RString> = args.iter().map(|arg| RString::new(ctx, arg)).collect();
    let mut argv: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.ptr).collect();
    replicate_argv(ctx, command, &mut argv);
}

/// [`replicate`] with arguments the caller already holds as strings (the server takes its
/// own references to them).
pub fn replicate_argv(ctx: Ctx, command: &'static [u8], argv: &mut [*mut raw::RedisModuleString]) {
    unsafe {
        api!(RedisModule_Replicate)(
            ctx,
            command.as_ptr().cast(),
            c"v".as_ptr(),
            argv.as_mut_ptr(),
            argv.len(),
        );
    }
}

/// Publishes `message` on the shard channel `channel` (what SPUBLISH does): on a cluster
/// it reaches only the nodes of the shard serving the channel's slot, where classic PUBLISH
/// crosses the cluster bus to every node. Subscribers use SSUBSCRIBE.
pub fn publish(ctx: Ctx, channel: &RString, message: &[u8]) {
    let message = RString::new(ctx, message);
    unsafe { api!(RedisModule_PublishMessageShard)(ctx, channel.ptr, message.ptr) };
}

/// The database the calling client (or timer) has selected.
pub fn selected_db(ctx: Ctx) -> c_int {
    unsafe { api!(RedisModule_GetSelectedDb)(ctx) }
}

/// Microseconds on a monotonic clock (from the first reading), for work budgets.
pub fn monotonic_us() -> i64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = EPOCH.get_or_init(std::time::Instant::now).elapsed();
    i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
}

pub fn now_ms() -> i64 {
    unsafe { api!(RedisModule_Milliseconds)() }
}

pub fn context_flags(ctx: Ctx) -> u32 {
    unsafe { api!(RedisModule_GetContextFlags)(ctx) as u32 }
}
