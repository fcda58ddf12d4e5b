//! [`Store`] over the Redis key API, with effects replication.
//!
//! Why effects and not the command: FLASH.RESERVE reads the clock, so a replica or an AOF
//! replay running the command again would compute another deadline. Each write is therefore
//! propagated as the plain command that produces the same value, with absolute values
//! (`HSET … 7`, never `HINCRBY … -1`; `ZADD` with the deadline in unix ms; `XADD` with the
//! id the master chose). Redis wraps one command's propagated writes in MULTI/EXEC, so
//! replicas and the AOF apply each FLASH command whole, and need not load the module.
//!
//! Hash writes are buffered and applied by [`RedisStore::flush`] once the command has
//! succeeded: one `HSET` (and at most one `HDEL`) per key per command, however many fields
//! the rules touched. Propagating a command costs far more than writing a field, so a
//! reserve replicates four commands, not nine. Reads see the buffered values.
//!
//! Files: `mod.rs` is the store (key handles, reads, the flush that applies and propagates);
//! `buffer.rs` holds the buffered writes; `names_cache.rs` the sale's key names, formatted
//! (and made Redis strings) once per sale rather than once per command; `events.rs` the
//! stock changes, announced coalesced by a timer.

use std::collections::BTreeMap;
use std::rc::Rc;

use flash_core::keys::{
    Counter, SaleKey, line_field, parse_line_field, parse_stock_field, stock_field,
};
use flash_core::model::{Cart, CartState, OrderEntry, Sale};
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

/// A cart key this command opened.
struct OpenCart {
    id: String,
    name: RString,
    key: Key,
    /// The cart's scalar fields as the dataset plus this command's writes have them, when
    /// known: [`Store::set_cart`] then writes (and propagates) only the fields that change.
    /// A reserve into an existing cart changes one of four.
    known: Option<Cart>,
}

pub struct RedisStore {
    ctx: Ctx,
    names: Rc<SaleNames>,
    write: bool,
    /// The clock, read on first use (most commands never ask), then fixed: FLASH.BUY's
    /// reserve and checkout see one "now".
    now_ms: Option<i64>,
    /// The fixed keys' handles once opened (and type-checked).
    fixed: [Option<Key>; 5],
    /// Carts opened so far. A command names one cart, an expiry batch a few hundred:
    /// searched from the most recent, which is the one asked for.
    carts: Vec<OpenCart>,
    /// Buffered hash writes, by key in first-write order.
    writes: HashWrites,
    /// Buffered deadline changes in order: `Some(ms)` adds the cart, `None` removes it.
    deadline_writes: Vec<(String, Option<i64>)>,
    /// How many of `deadline_writes` are removals.
    deadlines_removed: usize,
    /// What the expiry timer learns from this command once it succeeded.
    news: News,
    /// Carts to remove at a time (unix ms), applied after their hash writes.
    removals: Vec<(KeyRef, i64)>,
    /// Stock changes to announce once the command succeeded: SKU, available units.
    stock_changes: Vec<(Sku, i64)>,
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
            deadline_writes: Vec::new(),
            deadlines_removed: 0,
            news: News::default(),
            removals: Vec::new(),
            stock_changes: Vec::new(),
        }
    }

    /// What the command wrote that the expiry timer must know (read after [`Self::flush`]).
    pub fn news(&self) -> News {
        self.news
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
        let key = Key::open(self.ctx, &name, Kind::Hash, self.write)?;
        let i = self.carts.len();
        self.carts.push(OpenCart {
            id: cart.to_owned(),
            name,
            key,
            known: None,
        });
        Ok(KeyRef::Cart(i))
    }

    fn handle(&mut self, key: KeyRef) -> Result<&Key, Error> {
        match key {
            KeyRef::Fixed(fixed) => self.fixed(fixed),
            KeyRef::Cart(i) => self
                .carts
                .get(i)
                .map(|open| &open.key)
                .ok_or_else(Error::wrong_type),
        }
    }

    /// A key's handle if it is open.
    fn opened(&self, key: KeyRef) -> Option<&Key> {
        match key {
            KeyRef::Fixed(fixed) => self.fixed[fixed.index()].as_ref(),
            KeyRef::Cart(i) => self.carts.get(i).map(|open| &open.key),
        }
    }

    fn key_name(&self, key: KeyRef) -> Option<&RString> {
        match key {
            KeyRef::Fixed(fixed) => Some(&self.names.fixed[fixed.index()]),
            KeyRef::Cart(i) => self.carts.get(i).map(|open| &open.name),
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
        self.flush_removals();
        self.flush_deadlines();
        for (sku, available) in std::mem::take(&mut self.stock_changes) {
            events::note(self.ctx, &self.names, sku, available);
        }
    }

    fn flush_deadlines(&mut self) {
        let ctx = self.ctx;
        let writes = std::mem::take(&mut self.deadline_writes);
        self.deadlines_removed = 0;
        if writes.is_empty() {
            return;
        }
        self.news.earliest_deadline_ms = writes.iter().filter_map(|(_, ms)| *ms).min();
        let names = Rc::clone(&self.names);
        let name = &names.fixed[SaleKey::Deadlines.index()];
        let Ok(key) = self.fixed(SaleKey::Deadlines) else {
            return;
        };
        let mut digits = itoa::Buffer::new();
        for (cart, deadline_ms) in writes {
            let member = RString::new(ctx, cart.as_bytes());
            match deadline_ms {
                Some(ms) => {
                    key.zset_add(&member, ms as f64);
                    let score = RString::new(ctx, digits.format(ms).as_bytes());
                    replicate_argv(ctx, b"ZADD\0", &mut [name.ptr, score.ptr, member.ptr]);
                }
                None => {
                    key.zset_rem(&member);
                    replicate_argv(ctx, b"ZREM\0", &mut [name.ptr, member.ptr]);
                }
            }
        }
    }

    /// Key expiry of finished carts, as absolute times (PEXPIREAT), so a replica or an AOF
    /// replay removes each at the master's moment.
    fn flush_removals(&mut self) {
        let ctx = self.ctx;
        let mut digits = itoa::Buffer::new();
        for (key_ref, at_ms) in std::mem::take(&mut self.removals) {
            let Ok(key) = self.handle(key_ref) else {
                continue;
            };
            key.expire_at(at_ms);
            let Some(name) = self.key_name(key_ref) else {
                continue;
            };
            let at_ms = RString::new(ctx, digits.format(at_ms).as_bytes());
            replicate_argv(ctx, b"PEXPIREAT\0", &mut [name.ptr, at_ms.ptr]);
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
            self.cart_ref(cart)?;
        }
        Ok(())
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
            let [hold_ms, limit, start_ms, end_ms, retain_ms] =
                key.hash_get_many(names::sale::ALL.map(Name::as_c_str));
            let int = |v: Option<RString>, default| {
                v.and_then(|v| parse(bytes(v.ptr))).unwrap_or(default)
            };
            let defaults = Sale::default();
            let sale = Sale {
                hold_ms: int(hold_ms, defaults.hold_ms),
                limit: int(limit, defaults.limit),
                start_ms: int(start_ms, defaults.start_ms),
                end_ms: int(end_ms, defaults.end_ms),
                retain_ms: int(retain_ms, defaults.retain_ms),
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
        )
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
        let key = self.cart_ref(cart)?;
        if self.writes.of(key).is_none() {
            // The common case, one call for the cart's fields.
            let handle = self.handle(key)?;
            if handle.is_empty() {
                return Ok(None);
            }
            let [state, user, deadline_ms, units, entry] =
                handle.hash_get_many(names::cart::SCALARS.map(Name::as_c_str));
            let text = |v: &RString| String::from_utf8_lossy(bytes(v.ptr)).into_owned();
            let int = |v: Option<RString>| v.and_then(|v| parse(bytes(v.ptr))).unwrap_or(0);
            // A hash under our cart name without a state was not written by Flash.
            let state = state
                .and_then(|s| CartState::parse(bytes(s.ptr)))
                .ok_or_else(Error::wrong_type)?;
            // Only a cart whose fields all read back is a base to diff against.
            let exact = user.is_some() && deadline_ms.is_some() && units.is_some();
            let read = Cart {
                state,
                user: user.as_ref().map(text).unwrap_or_default(),
                deadline_ms: int(deadline_ms),
                units: int(units),
                entry: entry.as_ref().map(text),
            };
            if let (KeyRef::Cart(i), true) = (key, exact)
                && let Some(open) = self.carts.get_mut(i)
            {
                open.known = Some(read.clone());
            }
            return Ok(Some(read));
        }
        let Some(state) = self.get_text(key, names::cart::STATE.as_bytes())? else {
            if self.handle(key)?.is_empty() {
                return Ok(None);
            }
            // A hash under our cart name without a state was not written by Flash.
            return Err(Error::wrong_type());
        };
        let state = CartState::parse(&state).ok_or_else(Error::wrong_type)?;
        let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(Some(Cart {
            state,
            user: text(self.get_text(key, names::cart::USER.as_bytes())?).unwrap_or_default(),
            deadline_ms: self
                .get_int(key, names::cart::DEADLINE_MS.as_bytes())?
                .unwrap_or(0),
            units: self
                .get_int(key, names::cart::UNITS.as_bytes())?
                .unwrap_or(0),
            entry: text(self.get_text(key, names::cart::ENTRY.as_bytes())?),
        }))
    }

    fn set_cart(&mut self, cart: &str, fields: &Cart) -> Result<(), Error> {
        let key = self.cart_ref(cart)?;
        let KeyRef::Cart(i) = key else {
            return Err(Error::wrong_type());
        };
        let known = self
            .carts
            .get_mut(i)
            .and_then(|open| open.known.replace(fields.clone()));
        let known = known.as_ref();
        if known.is_none_or(|k| k.state != fields.state) {
            let state = Bytes::new(fields.state.as_str().as_bytes());
            self.set(key, names::cart::STATE.as_bytes(), Value::Text(state))?;
        }
        if known.is_none_or(|k| k.user != fields.user) {
            let user = Bytes::new(fields.user.as_bytes());
            self.set(key, names::cart::USER.as_bytes(), Value::Text(user))?;
        }
        if known.is_none_or(|k| k.deadline_ms != fields.deadline_ms) {
            let deadline_ms = Value::Int(fields.deadline_ms);
            self.set(key, names::cart::DEADLINE_MS.as_bytes(), deadline_ms)?;
        }
        if known.is_none_or(|k| k.units != fields.units) {
            self.set(key, names::cart::UNITS.as_bytes(), Value::Int(fields.units))?;
        }
        if let Some(entry) = &fields.entry
            && known.is_none_or(|k| k.entry.as_ref() != Some(entry))
        {
            let entry = Bytes::new(entry.as_bytes());
            self.set(key, names::cart::ENTRY.as_bytes(), Value::Text(entry))?;
        }
        Ok(())
    }

    fn cart_line(&mut self, cart: &str, sku: Sku) -> Result<i64, Error> {
        let key = self.cart_ref(cart)?;
        Ok(self.get_int(key, &line_field(sku))?.unwrap_or(0))
    }

    fn set_cart_line(&mut self, cart: &str, sku: Sku, qty: i64) -> Result<(), Error> {
        let key = self.cart_ref(cart)?;
        let value = if qty == 0 {
            Value::Delete
        } else {
            Value::Int(qty)
        };
        self.set(key, &line_field(sku), value)
    }

    fn cart_lines(&mut self, cart: &str) -> Result<Vec<(Sku, i64)>, Error> {
        let key = self.cart_ref(cart)?;
        let mut lines: BTreeMap<Sku, i64> = self
            .hgetall(key)?
            .into_iter()
            .filter_map(|(field, qty)| Some((parse_line_field(field.as_bytes())?, parse(&qty)?)))
            .collect();
        // FLASH.BUY checks out the lines its reserve just wrote: they are still buffered.
        if let Some(fields) = self.writes.of(key) {
            for (field, value) in fields {
                let Some(sku) = parse_line_field(field.as_slice()) else {
                    continue;
                };
                match value {
                    Value::Int(qty) => lines.insert(sku, *qty),
                    _ => lines.remove(&sku),
                };
            }
        }
        Ok(lines.into_iter().collect())
    }

    fn remove_cart_at(&mut self, cart: &str, at_ms: i64) -> Result<(), Error> {
        let key = self.cart_ref(cart)?;
        self.removals.push((key, at_ms));
        Ok(())
    }

    fn add_deadline(&mut self, cart: &str, deadline_ms: i64) -> Result<(), Error> {
        self.fixed(SaleKey::Deadlines)?;
        self.deadline_writes
            .push((cart.to_owned(), Some(deadline_ms)));
        Ok(())
    }

    fn remove_deadline(&mut self, cart: &str) -> Result<(), Error> {
        self.fixed(SaleKey::Deadlines)?;
        self.deadline_writes.push((cart.to_owned(), None));
        self.deadlines_removed += 1;
        Ok(())
    }

    fn due_carts(&mut self, now_ms: i64, count: i64) -> Result<Vec<String>, Error> {
        // Removals wait for the flush, and only the earliest due are removed before a second
        // look (the trait's contract): skipping that many leaves them out.
        let skip = self.deadlines_removed;
        Ok(self
            .fixed(SaleKey::Deadlines)?
            .zset_up_to(now_ms as f64, skip, usize::try_from(count).unwrap_or(0))
            .into_iter()
            .map(|cart| String::from_utf8_lossy(&cart).into_owned())
            .collect())
    }

    fn held_carts(&mut self) -> Result<i64, Error> {
        Ok(self.fixed(SaleKey::Deadlines)?.len() as i64)
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

    fn publish_available(&mut self, sku: Sku, available: i64) {
        self.stock_changes.push((sku, available));
    }
}
