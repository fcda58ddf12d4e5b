//! [`Store`] over the Redis key API, with effects replication.
//!
//! Why effects and not the command: FLASH.RESERVE reads the clock, so a replica or an AOF
//! replay running the command again would compute another deadline. Each write is therefore
//! propagated as the plain command that produces the same value, with absolute values
//! (`HSET … 7`, never `HINCRBY … -1`; a cart's whole record with `SET`; `RPUSH` of the
//! deadline entry in unix ms; `XADD` with the id the master chose). Redis wraps one command's propagated writes in MULTI/EXEC, so
//! replicas and the AOF apply each FLASH command whole, and need not load the module.
//!
//! Writes are buffered and applied by [`RedisStore::flush`] once the command has
//! succeeded: one `HSET` (and at most one `HDEL`) per hash, one `SET` per cart, one `LPOP`
//! and one `RPUSH` per deadline list, however many fields the rules touched. Propagating a command costs far more than writing a field, so a
//! reserve replicates four commands, not nine. Reads see the buffered values.
//!
//! Files: `mod.rs` is the store (key handles, reads, the flush that applies and propagates);
//! `buffer.rs` holds the buffered writes; `names_cache.rs` the sale's key names, formatted
//! (and made Redis strings) once per sale rather than once per command; `events.rs` the
//! stock changes, announced coalesced by a timer.

use std::rc::Rc;

use std::collections::VecDeque;

use flash_core::keys::{
    Counter, HELD_CARTS_FIELD, SaleKey, deadline_entry, parse_deadline_entry, parse_stock_field,
    stock_field,
};
use flash_core::model::{Cart, CartRecord, Lanes, OrderEntry, QueueSettings, Sale, Seed};
use flash_core::names::{self, Name};
use flash_core::store::Store;
use flash_core::wire::StreamId;
use flash_core::{Error, Sku};
use redis_module::{Context, RedisValue, raw};

use crate::api::{
    Ctx, Key, Kind, RString, bytes, monotonic_us, now_ms, replicate, replicate_argv, selected_db,
};
use buffer::{Bytes, HashWrites, KeyRef, Value};
use names_cache::{SaleNames, sale_names};

pub use crate::expiry::News;

mod buffer;
mod events;
mod names_cache;
pub mod settings_cache;

/// A cart key this command opened, with its record as the dataset plus this command's
/// writes have it (read once, written back once by the flush).
struct OpenCart {
    id: String,
    name: RString,
    key: Key,
    /// Read from the key yet.
    loaded: bool,
    /// `None`: no cart (yet).
    cart: Option<Cart>,
    /// Ascending by SKU.
    lines: Vec<(Sku, i64)>,
    /// Changed by this command: the flush writes the record.
    dirty: bool,
}

/// A deadline list this command opened.
struct OpenLane {
    hold_ms: i64,
    name: RString,
    key: Key,
    /// Entries [`Store::due_carts`] returned from its head.
    returned: usize,
    /// Of those, how many [`Store::remove_deadline`] dropped: popped by the flush.
    dropped: usize,
    /// Entries to append, in order.
    appended: Vec<String>,
}

pub struct RedisStore {
    ctx: Ctx,
    names: Rc<SaleNames>,
    write: bool,
    /// The clock, read on first use (most commands never ask), then fixed: FLASH.BUY's
    /// reserve and checkout see one "now".
    now_ms: Option<i64>,
    /// The fixed keys' handles once opened (and type-checked).
    fixed: [Option<Key>; SaleKey::ALL.len()],
    /// Carts opened so far. A command names one cart, an expiry batch a few hundred:
    /// searched from the most recent, which is the one asked for.
    carts: Vec<OpenCart>,
    /// Buffered hash writes, by key in first-write order.
    writes: HashWrites,
    /// Deadline lists opened so far (a sale has one, a few while an older HOLD's carts
    /// are still held).
    lanes: Vec<OpenLane>,
    /// The lists (positions in `lanes`) of the entries `due_carts` returned and not yet
    /// dropped, in the order returned.
    due: VecDeque<usize>,
    /// What the expiry timer learns from this command once it succeeded.
    news: News,
    /// Carts to remove at a time (unix ms), applied after their hash writes.
    removals: Vec<(KeyRef, i64)>,
    /// Stock changes to announce once the command succeeded: SKU, available units.
    stock_changes: Vec<(Sku, i64)>,
    /// The waiting room's sorted-set writes, applied at once and propagated by the flush
    /// in order: the set, the member, its score (`None`: removed).
    zset_writes: Vec<(SaleKey, RString, Option<i64>)>,
}

impl RedisStore {
    pub fn new(ctx: Ctx, sale: &str, write: bool) -> RedisStore {
        RedisStore {
            ctx,
            names: sale_names(sale),
            write,
            now_ms: None,
            fixed: Default::default(),
            carts: Vec::new(),
            writes: HashWrites::default(),
            lanes: Vec::new(),
            due: VecDeque::new(),
            news: News::default(),
            removals: Vec::new(),
            stock_changes: Vec::new(),
            zset_writes: Vec::new(),
        }
    }

    /// What the command wrote that the expiry timer must know (read after [`Self::flush`]).
    pub fn news(&self) -> News {
        self.news
    }

    /// The earliest deadline in the sale's deadline lists (each list's first entry), if
    /// any; read after [`Self::flush`].
    pub fn earliest_deadline(&mut self) -> Option<i64> {
        let lanes = self.sale().ok()??.lanes_to_look_at();
        lanes
            .iter()
            .filter_map(|hold_ms| {
                let name = RString::new(self.ctx, self.names.keys.deadlines(hold_ms).as_bytes());
                let key = Key::open(self.ctx, &name, Kind::List, false).ok()?;
                let first = key.list_get(0)?;
                parse_deadline_entry(first.as_bytes()).map(|(deadline_ms, _)| deadline_ms)
            })
            .min()
    }

    /// The millisecond part of the order stream's first entry id, if it has one.
    pub fn orders_first_ms(&mut self) -> Option<u64> {
        self.fixed(SaleKey::Orders).ok()?.stream_first_ms()
    }

    fn fixed(&mut self, key: SaleKey) -> Result<&Key, Error> {
        let slot = key.index();
        if self.fixed[slot].is_none() {
            let opened = Key::open(self.ctx, &self.names.fixed[slot], Kind::of(key), self.write)?;
            self.fixed[slot] = Some(opened);
        }
        self.fixed[slot].as_ref().ok_or_else(Error::wrong_type)
    }

    fn cart_ref(&mut self, cart: &str) -> Result<KeyRef, Error> {
        if let Some(i) = self.carts.iter().rposition(|open| open.id == cart) {
            return Ok(KeyRef::Cart(i));
        }
        let name = RString::new(self.ctx, self.names.keys.cart(cart).as_bytes());
        let key = Key::open(self.ctx, &name, Kind::String, self.write)?;
        let i = self.carts.len();
        self.carts.push(OpenCart {
            id: cart.to_owned(),
            name,
            key,
            loaded: false,
            cart: None,
            lines: Vec::new(),
            dirty: false,
        });
        Ok(KeyRef::Cart(i))
    }

    /// The cart, opened and its record read (WRONGTYPE for a key under its name that is
    /// not a cart: another type, or a string Flash did not write).
    fn open_cart(&mut self, cart: &str) -> Result<&mut OpenCart, Error> {
        let KeyRef::Cart(i) = self.cart_ref(cart)? else {
            return Err(Error::wrong_type());
        };
        let open = self.carts.get_mut(i).ok_or_else(Error::wrong_type)?;
        if !open.loaded {
            if let Some(raw) = open.key.string_bytes() {
                let record = CartRecord::decode(raw).ok_or_else(Error::wrong_type)?;
                open.cart = Some(record.cart);
                open.lines = record.lines;
            }
            open.loaded = true;
        }
        Ok(open)
    }

    /// The deadline list of carts held for `hold_ms`, opened (and type-checked) once.
    fn lane(&mut self, hold_ms: i64) -> Result<usize, Error> {
        if let Some(i) = self.lanes.iter().position(|lane| lane.hold_ms == hold_ms) {
            return Ok(i);
        }
        let name = RString::new(self.ctx, self.names.keys.deadlines(hold_ms).as_bytes());
        let key = Key::open(self.ctx, &name, Kind::List, self.write)?;
        self.lanes.push(OpenLane {
            hold_ms,
            name,
            key,
            returned: 0,
            dropped: 0,
            appended: Vec::new(),
        });
        Ok(self.lanes.len() - 1)
    }

    fn handle(&mut self, key: KeyRef) -> Result<&Key, Error> {
        match key {
            KeyRef::Fixed(fixed) => self.fixed(fixed),
            KeyRef::Cart(_) => Err(Error::wrong_type()),
        }
    }

    /// A key's handle if it is open.
    fn opened(&self, key: KeyRef) -> Option<&Key> {
        match key {
            KeyRef::Fixed(fixed) => self.fixed[fixed.index()].as_ref(),
            KeyRef::Cart(_) => None,
        }
    }

    fn key_name(&self, key: KeyRef) -> Option<&RString> {
        match key {
            KeyRef::Fixed(fixed) => Some(&self.names.fixed[fixed.index()]),
            KeyRef::Cart(_) => None,
        }
    }

    fn buffered(&self, key: KeyRef, field: &[u8]) -> Option<&Value> {
        self.writes.get(key, field)
    }

    /// A hash field as the command sees it: buffered writes first, then the dataset.
    fn get_text(&mut self, key: KeyRef, field: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match self.buffered(key, field) {
            Some(Value::Int(n)) => return Ok(Some(n.to_string().into_bytes())),
            Some(Value::Text(t)) => return Ok(Some(t.as_slice().to_vec())),
            Some(Value::Delete) => return Ok(None),
            None => {}
        }
        Ok(self
            .handle(key)?
            .hash_get(field)
            .map(|v| bytes(v.ptr).to_vec()))
    }

    fn get_int(&mut self, key: KeyRef, field: &[u8]) -> Result<Option<i64>, Error> {
        match self.buffered(key, field) {
            Some(Value::Int(n)) => return Ok(Some(*n)),
            Some(Value::Text(t)) => return Ok(parse(t.as_slice())),
            Some(Value::Delete) => return Ok(None),
            None => {}
        }
        Ok(self
            .handle(key)?
            .hash_get(field)
            .and_then(|v| parse(bytes(v.ptr))))
    }

    fn set(&mut self, key: KeyRef, field: &[u8], value: Value) -> Result<(), Error> {
        self.handle(key)?;
        self.writes.set(key, field, value);
        Ok(())
    }

    /// Applies the buffered writes and propagates them: one HSET and at most one HDEL per
    /// hash, the deadline changes in order; then notes the stock changes for the next announcement (`events`). Called only
    /// after the command succeeded, so a refused command writes, propagates and announces
    /// nothing. (The one immediate write is checkout's XADD, which must run to learn its id;
    /// no check follows it.)
    pub fn flush(&mut self) {
        if self.writes.of(SALE).is_some() {
            names_cache::forget_settings();
            self.news.settings_written = true;
        }
        self.flush_hashes();
        self.flush_carts();
        self.flush_removals();
        self.flush_deadlines();
        self.flush_zsets();
        for (sku, available) in std::mem::take(&mut self.stock_changes) {
            events::note(self.ctx, &self.names, sku, available);
        }
    }

    /// Each deadline list: its dropped head entries (`LPOP name n`), then its new entries
    /// (one `RPUSH`).
    fn flush_deadlines(&mut self) {
        let ctx = self.ctx;
        self.due.clear();
        let mut digits = itoa::Buffer::new();
        for lane in std::mem::take(&mut self.lanes) {
            if lane.dropped > 0 {
                for _ in 0..lane.dropped {
                    lane.key.list_pop_head();
                }
                let count = RString::new(ctx, digits.format(lane.dropped).as_bytes());
                replicate_argv(ctx, b"LPOP\0", &mut [lane.name.ptr, count.ptr]);
            }
            if lane.appended.is_empty() {
                continue;
            }
            let entries: Vec<RString> = lane
                .appended
                .iter()
                .map(|entry| RString::new(ctx, entry.as_bytes()))
                .collect();
            let mut argv = vec![lane.name.ptr];
            for entry in &entries {
                lane.key.list_push_tail(entry);
                argv.push(entry.ptr);
            }
            replicate_argv(ctx, b"RPUSH\0", &mut argv);
        }
    }

    /// The sorted-set writes, already applied: each run of adds to one set is one `ZADD`,
    /// each run of removals one `ZREM`, in the order made.
    fn flush_zsets(&mut self) {
        let ctx = self.ctx;
        let writes = std::mem::take(&mut self.zset_writes);
        let mut start = 0;
        while start < writes.len() {
            let (set, _, score) = &writes[start];
            let adds = score.is_some();
            let end = writes[start..]
                .iter()
                .position(|(s, _, score)| s != set || score.is_some() != adds)
                .map_or(writes.len(), |n| start + n);
            let mut strings = Vec::new();
            let mut argv = vec![self.names.fixed[set.index()].ptr];
            for (_, member, score) in &writes[start..end] {
                if let Some(score) = score {
                    let score = RString::from_i64(ctx, *score);
                    argv.push(score.ptr);
                    strings.push(score);
                }
                argv.push(member.ptr);
            }
            let command: &'static [u8] = if adds { b"ZADD\0" } else { b"ZREM\0" };
            replicate_argv(ctx, command, &mut argv);
            drop(strings);
            start = end;
        }
    }

    /// Each cart this command changed: its whole record, one `SET`.
    fn flush_carts(&mut self) {
        let ctx = self.ctx;
        for open in &mut self.carts {
            if !open.dirty {
                continue;
            }
            open.dirty = false;
            let Some(cart) = open.cart.take() else {
                continue;
            };
            let record = CartRecord {
                cart,
                lines: std::mem::take(&mut open.lines),
            };
            let value = RString::new(ctx, record.encode().as_bytes());
            open.key.string_set(&value);
            replicate_argv(ctx, b"SET\0", &mut [open.name.ptr, value.ptr]);
            open.cart = Some(record.cart);
            open.lines = record.lines;
        }
    }

    /// Key expiry of finished carts, as absolute times (PEXPIREAT), so a replica or an AOF
    /// replay removes each at the master's moment.
    fn flush_removals(&mut self) {
        let ctx = self.ctx;
        let mut digits = itoa::Buffer::new();
        for (key_ref, at_ms) in std::mem::take(&mut self.removals) {
            let KeyRef::Cart(i) = key_ref else {
                continue;
            };
            let Some(open) = self.carts.get(i) else {
                continue;
            };
            open.key.expire_at(at_ms);
            let at_ms = RString::new(ctx, digits.format(at_ms).as_bytes());
            replicate_argv(ctx, b"PEXPIREAT\0", &mut [open.name.ptr, at_ms.ptr]);
        }
    }

    fn flush_hashes(&mut self) {
        let ctx = self.ctx;
        for (key_ref, fields) in self.writes.take() {
            // Every buffered key was opened by the write that buffered it.
            let (Some(key), Some(name)) = (self.opened(key_ref), self.key_name(key_ref)) else {
                continue;
            };
            // The strings live until the propagation below has taken its references.
            let mut strings = Vec::new();
            let mut set = vec![name.ptr];
            let mut deleted = vec![name.ptr];
            for (field, value) in fields {
                let field = RString::new(ctx, field.as_slice());
                let value = match value {
                    Value::Int(n) => RString::from_i64(ctx, n),
                    Value::Text(text) => RString::new(ctx, text.as_slice()),
                    Value::Delete => {
                        key.hash_del(field.as_bytes());
                        deleted.push(field.ptr);
                        strings.push(field);
                        continue;
                    }
                };
                key.hash_set(&field, &value);
                set.extend([field.ptr, value.ptr]);
                strings.extend([field, value]);
            }
            if deleted.len() > 1 {
                replicate_argv(ctx, b"HDEL\0", &mut deleted);
            }
            if set.len() > 1 {
                replicate_argv(ctx, b"HSET\0", &mut set);
            }
        }
    }

    /// HGETALL through RM_Call: for the few reads that need a whole hash (never on the
    /// reserve path). Buffered writes are not visible here; callers read before writing.
    fn hgetall(&self, key: KeyRef) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let Some(name) = self.key_name(key) else {
            return Ok(Vec::new());
        };
        let name = String::from_utf8_lossy(name.as_bytes()).into_owned();
        let ctx = Context::new(self.ctx);
        let reply = ctx
            .call("HGETALL", &[name.as_str()])
            .map_err(|_| Error::wrong_type())?;
        let RedisValue::Array(items) = reply else {
            return Ok(Vec::new());
        };
        let mut items = items.into_iter().map(|item| match item {
            RedisValue::StringBuffer(b) => b,
            RedisValue::SimpleString(s) | RedisValue::BulkString(s) => s.into_bytes(),
            RedisValue::BulkRedisString(s) => s.as_slice().to_vec(),
            _ => Vec::new(),
        });
        let mut pairs = Vec::new();
        while let (Some(field), Some(value)) = (items.next(), items.next()) {
            pairs.push((String::from_utf8_lossy(&field).into_owned(), value));
        }
        Ok(pairs)
    }
}

/// The bytes of a string reply.
fn text_of(value: &RedisValue) -> Option<Vec<u8>> {
    match value {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => Some(s.as_bytes().to_vec()),
        RedisValue::SimpleStringStatic(s) => Some(s.as_bytes().to_vec()),
        RedisValue::StringBuffer(b) => Some(b.clone()),
        RedisValue::BulkRedisString(s) => Some(s.as_slice().to_vec()),
        _ => None,
    }
}

fn parse<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

const SALE: KeyRef = KeyRef::Fixed(SaleKey::Sale);
const STOCK: KeyRef = KeyRef::Fixed(SaleKey::Stock);
const USERS: KeyRef = KeyRef::Fixed(SaleKey::Users);
const QUEUE: KeyRef = KeyRef::Fixed(SaleKey::Queue);

impl Store for RedisStore {
    fn now_ms(&mut self) -> i64 {
        *self.now_ms.get_or_insert_with(now_ms)
    }

    fn clock_us(&mut self) -> i64 {
        monotonic_us()
    }

    fn guard(&mut self, keys: &[SaleKey], cart: Option<&str>) -> Result<(), Error> {
        for &key in keys {
            self.fixed(key)?;
        }
        if let Some(cart) = cart {
            self.open_cart(cart)?;
        }
        Ok(())
    }

    fn guard_lane(&mut self, hold_ms: i64) -> Result<(), Error> {
        self.lane(hold_ms).map(drop)
    }

    fn has_sale(&mut self) -> Result<bool, Error> {
        if settings_cache::enabled() && self.names.settings(selected_db(self.ctx)).is_some() {
            return Ok(true);
        }
        Ok(self.writes.of(SALE).is_some() || !self.fixed(SaleKey::Sale)?.is_empty())
    }

    fn sale(&mut self) -> Result<Option<Sale>, Error> {
        if self.writes.of(SALE).is_none() {
            let db = selected_db(self.ctx);
            if let Some(sale) = self
                .names
                .settings(db)
                .filter(|_| settings_cache::enabled())
            {
                return Ok(Some(sale));
            }
            // One call for every setting.
            let key = self.fixed(SaleKey::Sale)?;
            if key.is_empty() {
                return Ok(None);
            }
            let [
                hold_ms,
                limit,
                start_ms,
                end_ms,
                retain_ms,
                lanes,
                queue_rate,
                queue_cap,
                admit_ms,
                idle_ms,
                queue_seed,
            ] = key.hash_get_many(names::sale::ALL.map(Name::as_c_str));
            let int = |v: Option<RString>, default| {
                v.and_then(|v| parse(bytes(v.ptr))).unwrap_or(default)
            };
            let defaults = Sale::default();
            let queue = defaults.queue;
            let sale = Sale {
                hold_ms: int(hold_ms, defaults.hold_ms),
                limit: int(limit, defaults.limit),
                start_ms: int(start_ms, defaults.start_ms),
                end_ms: int(end_ms, defaults.end_ms),
                retain_ms: int(retain_ms, defaults.retain_ms),
                lanes: lanes.map_or_else(Lanes::default, |v| Lanes::parse(bytes(v.ptr))),
                queue: QueueSettings {
                    rate: int(queue_rate, queue.rate),
                    cap: int(queue_cap, queue.cap),
                    admit_ms: int(admit_ms, queue.admit_ms),
                    idle_ms: int(idle_ms, queue.idle_ms),
                    seed: queue_seed.map_or_else(Seed::default, |v| Seed::stored(bytes(v.ptr))),
                },
            };
            if !self.fixed(SaleKey::Sale)?.has_expiry() {
                self.names.keep_settings(db, &sale);
            }
            return Ok(Some(sale));
        }
        let hold_ms = self.get_int(SALE, names::sale::HOLD_MS.as_bytes())?;
        if hold_ms.is_none() && self.fixed(SaleKey::Sale)?.is_empty() {
            return Ok(None);
        }
        let defaults = Sale::default();
        Ok(Some(Sale {
            hold_ms: hold_ms.unwrap_or(defaults.hold_ms),
            limit: self
                .get_int(SALE, names::sale::LIMIT.as_bytes())?
                .unwrap_or(defaults.limit),
            start_ms: self
                .get_int(SALE, names::sale::START_MS.as_bytes())?
                .unwrap_or(defaults.start_ms),
            end_ms: self
                .get_int(SALE, names::sale::END_MS.as_bytes())?
                .unwrap_or(defaults.end_ms),
            retain_ms: self
                .get_int(SALE, names::sale::RETAIN_MS.as_bytes())?
                .unwrap_or(defaults.retain_ms),
            lanes: self
                .get_text(SALE, names::sale::LANES.as_bytes())?
                .map_or_else(Lanes::default, |v| Lanes::parse(&v)),
            queue: QueueSettings {
                rate: self
                    .get_int(SALE, names::sale::QUEUE_RATE.as_bytes())?
                    .unwrap_or(defaults.queue.rate),
                cap: self
                    .get_int(SALE, names::sale::QUEUE_CAP.as_bytes())?
                    .unwrap_or(defaults.queue.cap),
                admit_ms: self
                    .get_int(SALE, names::sale::ADMIT_MS.as_bytes())?
                    .unwrap_or(defaults.queue.admit_ms),
                idle_ms: self
                    .get_int(SALE, names::sale::IDLE_MS.as_bytes())?
                    .unwrap_or(defaults.queue.idle_ms),
                seed: self
                    .get_text(SALE, names::sale::QUEUE_SEED.as_bytes())?
                    .map_or_else(Seed::default, |v| Seed::stored(&v)),
            },
        }))
    }

    fn set_sale(&mut self, sale: &Sale) -> Result<(), Error> {
        self.set(
            SALE,
            names::sale::HOLD_MS.as_bytes(),
            Value::Int(sale.hold_ms),
        )?;
        self.set(SALE, names::sale::LIMIT.as_bytes(), Value::Int(sale.limit))?;
        self.set(
            SALE,
            names::sale::START_MS.as_bytes(),
            Value::Int(sale.start_ms),
        )?;
        self.set(
            SALE,
            names::sale::END_MS.as_bytes(),
            Value::Int(sale.end_ms),
        )?;
        self.set(
            SALE,
            names::sale::RETAIN_MS.as_bytes(),
            Value::Int(sale.retain_ms),
        )?;
        let lanes = Bytes::new(sale.lanes.to_text().as_bytes());
        self.set(SALE, names::sale::LANES.as_bytes(), Value::Text(lanes))?;
        let queue = &sale.queue;
        for (field, value) in [
            (names::sale::QUEUE_RATE, queue.rate),
            (names::sale::QUEUE_CAP, queue.cap),
            (names::sale::ADMIT_MS, queue.admit_ms),
            (names::sale::IDLE_MS, queue.idle_ms),
        ] {
            self.set(SALE, field.as_bytes(), Value::Int(value))?;
        }
        let seed = Bytes::new(queue.seed.as_str().as_bytes());
        self.set(SALE, names::sale::QUEUE_SEED.as_bytes(), Value::Text(seed))
    }

    fn units(&mut self, counter: Counter, sku: Sku) -> Result<Option<i64>, Error> {
        self.get_int(STOCK, &stock_field(sku, counter))
    }

    fn set_units(&mut self, counter: Counter, sku: Sku, units: i64) -> Result<(), Error> {
        self.set(STOCK, &stock_field(sku, counter), Value::Int(units))
    }

    fn all_units(&mut self) -> Result<Vec<(Sku, Counter, i64)>, Error> {
        Ok(self
            .hgetall(KeyRef::Fixed(SaleKey::Stock))?
            .into_iter()
            .filter_map(|(field, units)| {
                let (sku, counter) = parse_stock_field(field.as_bytes())?;
                Some((sku, counter, parse(&units)?))
            })
            .collect())
    }

    fn user_units(&mut self, user: &str) -> Result<i64, Error> {
        Ok(self.get_int(USERS, user.as_bytes())?.unwrap_or(0))
    }

    fn set_user_units(&mut self, user: &str, units: i64) -> Result<(), Error> {
        let value = if units == 0 {
            Value::Delete
        } else {
            Value::Int(units)
        };
        self.set(USERS, user.as_bytes(), value)
    }

    fn cart(&mut self, cart: &str) -> Result<Option<Cart>, Error> {
        Ok(self.open_cart(cart)?.cart.clone())
    }

    fn set_cart(&mut self, cart: &str, fields: &Cart) -> Result<(), Error> {
        let open = self.open_cart(cart)?;
        if open.cart.as_ref() != Some(fields) {
            open.cart = Some(fields.clone());
            open.dirty = true;
        }
        Ok(())
    }

    fn cart_line(&mut self, cart: &str, sku: Sku) -> Result<i64, Error> {
        let open = self.open_cart(cart)?;
        Ok(open
            .lines
            .binary_search_by_key(&sku, |&(s, _)| s)
            .map_or(0, |i| open.lines[i].1))
    }

    fn set_cart_line(&mut self, cart: &str, sku: Sku, qty: i64) -> Result<(), Error> {
        let open = self.open_cart(cart)?;
        match open.lines.binary_search_by_key(&sku, |&(s, _)| s) {
            Ok(i) if qty == 0 => {
                open.lines.remove(i);
            }
            Ok(i) => open.lines[i].1 = qty,
            Err(i) if qty != 0 => open.lines.insert(i, (sku, qty)),
            Err(_) => return Ok(()),
        }
        open.dirty = true;
        Ok(())
    }

    fn cart_lines(&mut self, cart: &str) -> Result<Vec<(Sku, i64)>, Error> {
        Ok(self.open_cart(cart)?.lines.clone())
    }

    fn remove_cart_at(&mut self, cart: &str, at_ms: i64) -> Result<(), Error> {
        let key = self.cart_ref(cart)?;
        self.removals.push((key, at_ms));
        Ok(())
    }

    fn add_deadline(&mut self, cart: &str, deadline_ms: i64, hold_ms: i64) -> Result<(), Error> {
        let i = self.lane(hold_ms)?;
        self.lanes[i]
            .appended
            .push(deadline_entry(deadline_ms, cart));
        let earliest = self.news.earliest_deadline_ms.get_or_insert(deadline_ms);
        *earliest = (*earliest).min(deadline_ms);
        Ok(())
    }

    fn remove_deadline(&mut self) -> Result<(), Error> {
        if let Some(i) = self.due.pop_front()
            && let Some(lane) = self.lanes.get_mut(i)
        {
            lane.dropped += 1;
        }
        Ok(())
    }

    fn due_carts(
        &mut self,
        lanes: &Lanes,
        now_ms: i64,
        count: i64,
    ) -> Result<Vec<(String, i64)>, Error> {
        let count = usize::try_from(count).unwrap_or(0);
        // Each list is in deadline order: its due entries are a run from its head, after
        // those already returned. The runs are merged, earliest first.
        let mut due: Vec<(i64, String, usize)> = Vec::new();
        for hold_ms in lanes.iter() {
            let i = self.lane(hold_ms)?;
            let lane = &self.lanes[i];
            for index in lane.returned..lane.returned + count {
                let Some(element) = lane.key.list_get(index) else {
                    break;
                };
                // An entry Flash did not write is due at once: dropped as stale.
                let (deadline_ms, cart) = parse_deadline_entry(element.as_bytes())
                    .map_or((i64::MIN, String::new()), |(ms, cart)| {
                        (ms, cart.to_owned())
                    });
                if deadline_ms > now_ms {
                    break;
                }
                due.push((deadline_ms, cart, i));
            }
        }
        due.sort_by_key(|(deadline_ms, _, _)| *deadline_ms);
        due.truncate(count);
        for (_, _, i) in &due {
            self.lanes[*i].returned += 1;
            self.due.push_back(*i);
        }
        Ok(due
            .into_iter()
            .map(|(deadline_ms, cart, _)| (cart, deadline_ms))
            .collect())
    }

    fn lane_len(&mut self, hold_ms: i64) -> Result<i64, Error> {
        let i = self.lane(hold_ms)?;
        Ok(self.lanes[i].key.len() as i64)
    }

    fn held_carts(&mut self) -> Result<i64, Error> {
        Ok(self
            .get_int(STOCK, HELD_CARTS_FIELD.as_bytes())?
            .unwrap_or(0))
    }

    fn set_held_carts(&mut self, carts: i64) -> Result<(), Error> {
        self.set(STOCK, HELD_CARTS_FIELD.as_bytes(), Value::Int(carts))
    }

    fn append_order(&mut self, order: &OrderEntry) -> Result<String, Error> {
        let ctx = self.ctx;
        let encoded = order.to_fields();
        let fields: Vec<(&[u8], &[u8])> = encoded
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .collect();
        let raw::RedisModuleStreamID { ms, seq } =
            self.fixed(SaleKey::Orders)?.stream_add(&fields)?;
        self.news.orders_appended = true;
        let name = &self.names.fixed[SaleKey::Orders.index()];
        let id = format!("{ms}-{seq}");
        let mut args: Vec<&[u8]> = vec![name.as_bytes(), id.as_bytes()];
        args.extend(fields.iter().flat_map(|(field, value)| [*field, *value]));
        replicate(ctx, b"XADD\0", &args);
        Ok(id)
    }

    fn orders_needed_from(&mut self) -> Result<Option<StreamId>, Error> {
        if self.fixed(SaleKey::Orders)?.is_empty() {
            return Ok(None);
        }
        let name = String::from_utf8_lossy(self.names.fixed[SaleKey::Orders.index()].as_bytes())
            .into_owned();
        let ctx = Context::new(self.ctx);
        let groups = match ctx.call("XINFO", &["GROUPS", &name]) {
            Ok(RedisValue::Array(groups)) => groups,
            _ => return Ok(None),
        };
        let mut needed: Option<StreamId> = None;
        for group in groups {
            let RedisValue::Array(pairs) = group else {
                continue;
            };
            let field = |wanted: &str| {
                pairs
                    .chunks(2)
                    .find(|pair| text_of(&pair[0]).as_deref() == Some(wanted.as_bytes()))
                    .and_then(|pair| pair.get(1))
            };
            let pending = matches!(field("pending"), Some(RedisValue::Integer(n)) if *n > 0);
            let group_name = field("name").and_then(text_of);
            let last_delivered = field("last-delivered-id")
                .and_then(text_of)
                .and_then(|id| StreamId::parse(&id));
            let from = match (pending, group_name) {
                (true, Some(group_name)) => {
                    let group_name = String::from_utf8_lossy(&group_name).into_owned();
                    match ctx.call("XPENDING", &[name.as_str(), group_name.as_str()]) {
                        Ok(RedisValue::Array(summary)) => summary
                            .get(1)
                            .and_then(text_of)
                            .and_then(|id| StreamId::parse(&id)),
                        _ => None,
                    }
                }
                _ => last_delivered,
            };
            // A group we cannot read is one that may need everything: trim nothing.
            let Some(from) = from else {
                return Ok(Some(StreamId::default()));
            };
            needed = Some(needed.map_or(from, |n| n.min(from)));
        }
        Ok(needed)
    }

    fn trim_orders(&mut self, min_id: StreamId) -> Result<i64, Error> {
        let ctx = self.ctx;
        let trimmed = self
            .fixed(SaleKey::Orders)?
            .stream_trim_below(raw::RedisModuleStreamID {
                ms: min_id.ms,
                seq: min_id.seq,
            });
        if trimmed > 0 {
            let name = self.names.fixed[SaleKey::Orders.index()].as_bytes();
            let min_id = min_id.to_string();
            replicate(ctx, b"XTRIM\0", &[name, b"MINID", min_id.as_bytes()]);
        }
        Ok(trimmed)
    }

    fn score(&mut self, set: SaleKey, user: &str) -> Result<Option<i64>, Error> {
        let member = RString::new(self.ctx, user.as_bytes());
        Ok(self
            .fixed(set)?
            .zset_score(&member)
            .map(|score| score as i64))
    }

    fn set_score(&mut self, set: SaleKey, user: &str, score: Option<i64>) -> Result<(), Error> {
        let member = RString::new(self.ctx, user.as_bytes());
        let key = self.fixed(set)?;
        match score {
            // Scores are integers below 2^53: exact as doubles.
            Some(score) => key.zset_add(&member, score as f64),
            None => key.zset_rem(&member),
        }
        if set == SaleKey::Line && score.is_some() {
            self.news.joined = true;
        }
        self.zset_writes.push((set, member, score));
        Ok(())
    }

    fn rank(&mut self, set: SaleKey, user: &str) -> Result<Option<i64>, Error> {
        // The key API has no rank: ZRANK through RM_Call (O(log n)).
        self.fixed(set)?;
        let name = String::from_utf8_lossy(self.names.fixed[set.index()].as_bytes()).into_owned();
        let ctx = Context::new(self.ctx);
        match ctx.call("ZRANK", &[name.as_str(), user]) {
            Ok(RedisValue::Integer(rank)) => Ok(Some(rank)),
            Ok(_) => Ok(None),
            Err(_) => Err(Error::wrong_type()),
        }
    }

    fn count(&mut self, set: SaleKey) -> Result<i64, Error> {
        Ok(self.fixed(set)?.len() as i64)
    }

    fn lowest(
        &mut self,
        set: SaleKey,
        max_score: i64,
        count: i64,
    ) -> Result<Vec<(String, i64)>, Error> {
        let count = usize::try_from(count).unwrap_or(0);
        let max = if max_score == i64::MAX {
            f64::INFINITY
        } else {
            max_score as f64
        };
        Ok(self
            .fixed(set)?
            .zset_lowest(max, count)
            .into_iter()
            .map(|(member, score)| (String::from_utf8_lossy(&member).into_owned(), score as i64))
            .collect())
    }

    fn queue_counter(&mut self, field: Name) -> Result<i64, Error> {
        Ok(self.get_int(QUEUE, field.as_bytes())?.unwrap_or(0))
    }

    fn set_queue_counter(&mut self, field: Name, value: i64) -> Result<(), Error> {
        self.set(QUEUE, field.as_bytes(), Value::Int(value))
    }

    fn publish_available(&mut self, sku: Sku, available: i64) {
        self.stock_changes.push((sku, available));
    }
}
