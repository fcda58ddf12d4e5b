//! [`Store`] over the Redis key API, with effects replication.
//!
//! Why effects and not the command: FLASH.RESERVE reads the clock, so a replica or an AOF
//! replay running the command again would compute another deadline. Each write here is
//! therefore propagated as the plain command that produces the same value, with absolute
//! values (`HSET … 7`, never `HINCRBY … -1`; `ZADD` with the deadline in unix ms; `XADD`
//! with the id the master chose). Redis wraps a command's propagated writes in MULTI/EXEC,
//! so replicas and the AOF apply each FLASH command whole, and they need not even load the
//! module to hold the same dataset.

use flash_core::keys::{Counter, SaleKeys, line_field, stock_message};
use flash_core::model::{Cart, CartState, OrderEntry, Sale};
use flash_core::store::{SaleKey, Store};
use flash_core::{Error, Sku};
use redis_module::{Context, RedisValue, raw};

use crate::api::{Ctx, Key, Kind, RString, bytes, now_ms, publish, replicate};

/// The sale's fixed keys, in one array so each is opened at most once per command.
const SLOTS: usize = 9;

fn slot(key: SaleKey) -> usize {
    match key {
        SaleKey::Sale => 0,
        SaleKey::Counter(Counter::Loaded) => 1,
        SaleKey::Counter(Counter::Available) => 2,
        SaleKey::Counter(Counter::Held) => 3,
        SaleKey::Counter(Counter::Pending) => 4,
        SaleKey::Counter(Counter::Sold) => 5,
        SaleKey::Users => 6,
        SaleKey::Deadlines => 7,
        SaleKey::Orders => 8,
    }
}

fn kind(key: SaleKey) -> Kind {
    match key {
        SaleKey::Deadlines => Kind::Zset,
        SaleKey::Orders => Kind::Stream,
        _ => Kind::Hash,
    }
}

pub struct RedisStore {
    ctx: Ctx,
    names: SaleKeys,
    write: bool,
    now_ms: i64,
    open: [Option<(String, Key)>; SLOTS],
    /// The last cart opened: commands touch one cart at a time.
    cart: Option<(String, String, Key)>,
}

impl RedisStore {
    pub fn new(ctx: Ctx, sale: &str, write: bool) -> RedisStore {
        RedisStore {
            ctx,
            names: SaleKeys::new(sale),
            write,
            // One clock reading per command: FLASH.BUY's reserve and checkout see one "now".
            now_ms: now_ms(),
            open: Default::default(),
            cart: None,
        }
    }

    fn name(&self, key: SaleKey) -> String {
        match key {
            SaleKey::Sale => self.names.sale(),
            SaleKey::Counter(counter) => self.names.counter(counter),
            SaleKey::Users => self.names.users(),
            SaleKey::Deadlines => self.names.deadlines(),
            SaleKey::Orders => self.names.orders(),
        }
    }

    fn key(&mut self, key: SaleKey) -> Result<&(String, Key), Error> {
        let i = slot(key);
        if self.open[i].is_none() {
            let name = self.name(key);
            let opened = Key::open(self.ctx, &name, kind(key), self.write)?;
            self.open[i] = Some((name, opened));
        }
        // Filled just above.
        self.open[i].as_ref().ok_or_else(Error::wrong_type)
    }

    fn cart_key(&mut self, cart: &str) -> Result<(&str, &Key), Error> {
        if self.cart.as_ref().is_none_or(|(id, _, _)| id != cart) {
            self.cart = None; // close the previous cart before opening the next
            let name = self.names.cart(cart);
            let key = Key::open(self.ctx, &name, Kind::Hash, self.write)?;
            self.cart = Some((cart.to_owned(), name, key));
        }
        let (_, name, key) = self.cart.as_ref().ok_or_else(Error::wrong_type)?;
        Ok((name, key))
    }

    /// HGETALL through RM_Call: for the few reads that need a whole hash (not on the
    /// reserve path).
    fn hgetall(&self, name: &str) -> Result<Pairs, Error> {
        let ctx = Context::new(self.ctx);
        let reply = ctx
            .call("HGETALL", &[name])
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
            pairs.push((field, value));
        }
        Ok(pairs)
    }

    fn int_string(&self, value: i64) -> RString {
        RString::from_i64(self.ctx, value)
    }
}

/// A hash's fields and values, as read by HGETALL.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn parse<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

impl Store for RedisStore {
    fn now_ms(&mut self) -> i64 {
        self.now_ms
    }

    fn guard(&mut self, keys: &[SaleKey], cart: Option<&str>) -> Result<(), Error> {
        for &key in keys {
            self.key(key)?;
        }
        if let Some(cart) = cart {
            self.cart_key(cart)?;
        }
        Ok(())
    }

    fn sale(&mut self) -> Result<Option<Sale>, Error> {
        let (_, key) = self.key(SaleKey::Sale)?;
        if key.is_empty() {
            return Ok(None);
        }
        let defaults = Sale::default();
        Ok(Some(Sale {
            hold_ms: key.hash_get_i64(b"hold_ms").unwrap_or(defaults.hold_ms),
            limit: key.hash_get_i64(b"limit").unwrap_or(defaults.limit),
            start_ms: key.hash_get_i64(b"start_ms").unwrap_or(defaults.start_ms),
            end_ms: key.hash_get_i64(b"end_ms").unwrap_or(defaults.end_ms),
        }))
    }

    fn set_sale(&mut self, sale: &Sale) -> Result<(), Error> {
        let ctx = self.ctx;
        let fields = [
            ("hold_ms", sale.hold_ms),
            ("limit", sale.limit),
            ("start_ms", sale.start_ms),
            ("end_ms", sale.end_ms),
        ];
        let values: Vec<String> = fields.iter().map(|(_, v)| v.to_string()).collect();
        let (name, key) = self.key(SaleKey::Sale)?;
        let mut args: Vec<&[u8]> = vec![name.as_bytes()];
        for ((field, _), value) in fields.iter().zip(&values) {
            key.hash_set(field.as_bytes(), &RString::new(ctx, value.as_bytes()));
            args.extend([field.as_bytes(), value.as_bytes()]);
        }
        replicate(ctx, b"HSET\0", &args);
        Ok(())
    }

    fn units(&mut self, counter: Counter, sku: Sku) -> Result<Option<i64>, Error> {
        let (_, key) = self.key(SaleKey::Counter(counter))?;
        Ok(key.hash_get_i64(sku.to_string().as_bytes()))
    }

    fn set_units(&mut self, counter: Counter, sku: Sku, units: i64) -> Result<(), Error> {
        let value = self.int_string(units);
        let ctx = self.ctx;
        let (name, key) = self.key(SaleKey::Counter(counter))?;
        let field = sku.to_string();
        key.hash_set(field.as_bytes(), &value);
        replicate(
            ctx,
            b"HSET\0",
            &[name.as_bytes(), field.as_bytes(), bytes(value.ptr)],
        );
        Ok(())
    }

    fn all_units(&mut self, counter: Counter) -> Result<Vec<(Sku, i64)>, Error> {
        let name = self.names.counter(counter);
        Ok(self
            .hgetall(&name)?
            .into_iter()
            .filter_map(|(sku, units)| Some((parse(&sku)?, parse(&units)?)))
            .collect())
    }

    fn user_units(&mut self, user: &str) -> Result<i64, Error> {
        let (_, key) = self.key(SaleKey::Users)?;
        Ok(key.hash_get_i64(user.as_bytes()).unwrap_or(0))
    }

    fn set_user_units(&mut self, user: &str, units: i64) -> Result<(), Error> {
        let value = self.int_string(units);
        let ctx = self.ctx;
        let (name, key) = self.key(SaleKey::Users)?;
        key.hash_set(user.as_bytes(), &value);
        replicate(
            ctx,
            b"HSET\0",
            &[name.as_bytes(), user.as_bytes(), bytes(value.ptr)],
        );
        Ok(())
    }

    fn cart(&mut self, cart: &str) -> Result<Option<Cart>, Error> {
        let (_, key) = self.cart_key(cart)?;
        if key.is_empty() {
            return Ok(None);
        }
        let text = |field: &[u8]| {
            key.hash_get(field)
                .map(|value| String::from_utf8_lossy(bytes(value.ptr)).into_owned())
        };
        let state = key
            .hash_get(b"state")
            .and_then(|value| CartState::parse(bytes(value.ptr)));
        // A hash under our cart name without a state was not written by Flash.
        let Some(state) = state else {
            return Err(Error::wrong_type());
        };
        Ok(Some(Cart {
            state,
            user: text(b"user").unwrap_or_default(),
            deadline_ms: key.hash_get_i64(b"deadline_ms").unwrap_or(0),
            units: key.hash_get_i64(b"units").unwrap_or(0),
            entry: text(b"entry"),
        }))
    }

    fn set_cart(&mut self, cart: &str, fields: &Cart) -> Result<(), Error> {
        let ctx = self.ctx;
        let deadline = fields.deadline_ms.to_string();
        let units = fields.units.to_string();
        let mut pairs: Vec<(&[u8], &[u8])> = vec![
            (b"state", fields.state.as_str().as_bytes()),
            (b"user", fields.user.as_bytes()),
            (b"deadline_ms", deadline.as_bytes()),
            (b"units", units.as_bytes()),
        ];
        if let Some(entry) = &fields.entry {
            pairs.push((b"entry", entry.as_bytes()));
        }
        let (name, key) = self.cart_key(cart)?;
        let mut args: Vec<&[u8]> = vec![name.as_bytes()];
        for (field, value) in pairs {
            key.hash_set(field, &RString::new(ctx, value));
            args.extend([field, value]);
        }
        replicate(ctx, b"HSET\0", &args);
        Ok(())
    }

    fn cart_line(&mut self, cart: &str, sku: Sku) -> Result<i64, Error> {
        let (_, key) = self.cart_key(cart)?;
        Ok(key.hash_get_i64(line_field(sku).as_bytes()).unwrap_or(0))
    }

    fn set_cart_line(&mut self, cart: &str, sku: Sku, qty: i64) -> Result<(), Error> {
        let ctx = self.ctx;
        let field = line_field(sku);
        let value = qty.to_string();
        let (name, key) = self.cart_key(cart)?;
        if qty == 0 {
            key.hash_del(field.as_bytes());
            replicate(ctx, b"HDEL\0", &[name.as_bytes(), field.as_bytes()]);
        } else {
            key.hash_set(field.as_bytes(), &RString::new(ctx, value.as_bytes()));
            replicate(
                ctx,
                b"HSET\0",
                &[name.as_bytes(), field.as_bytes(), value.as_bytes()],
            );
        }
        Ok(())
    }

    fn cart_lines(&mut self, cart: &str) -> Result<Vec<(Sku, i64)>, Error> {
        let name = self.names.cart(cart);
        let mut lines: Vec<(Sku, i64)> = self
            .hgetall(&name)?
            .into_iter()
            .filter_map(|(field, qty)| Some((parse(field.strip_prefix(b"line:")?)?, parse(&qty)?)))
            .collect();
        lines.sort_unstable();
        Ok(lines)
    }

    fn add_deadline(&mut self, cart: &str, deadline_ms: i64) -> Result<(), Error> {
        let ctx = self.ctx;
        let (name, key) = self.key(SaleKey::Deadlines)?;
        key.zset_add(cart.as_bytes(), deadline_ms as f64);
        let score = deadline_ms.to_string();
        replicate(
            ctx,
            b"ZADD\0",
            &[name.as_bytes(), score.as_bytes(), cart.as_bytes()],
        );
        Ok(())
    }

    fn remove_deadline(&mut self, cart: &str) -> Result<(), Error> {
        let ctx = self.ctx;
        let (name, key) = self.key(SaleKey::Deadlines)?;
        key.zset_rem(cart.as_bytes());
        replicate(ctx, b"ZREM\0", &[name.as_bytes(), cart.as_bytes()]);
        Ok(())
    }

    fn earliest_deadlines(&mut self, count: i64) -> Result<Vec<(String, i64)>, Error> {
        let (_, key) = self.key(SaleKey::Deadlines)?;
        Ok(key
            .zset_first(usize::try_from(count).unwrap_or(0))
            .into_iter()
            .map(|(cart, score)| (String::from_utf8_lossy(&cart).into_owned(), score as i64))
            .collect())
    }

    fn held_carts(&mut self) -> Result<i64, Error> {
        let (_, key) = self.key(SaleKey::Deadlines)?;
        Ok(key.len() as i64)
    }

    fn append_order(&mut self, order: &OrderEntry) -> Result<String, Error> {
        let ctx = self.ctx;
        let lines = order.lines_field();
        let units = order.units.to_string();
        let fields: [(&[u8], &[u8]); 4] = [
            (b"order", order.order.as_bytes()),
            (b"user", order.user.as_bytes()),
            (b"lines", lines.as_bytes()),
            (b"units", units.as_bytes()),
        ];
        let (name, key) = self.key(SaleKey::Orders)?;
        let raw::RedisModuleStreamID { ms, seq } = key.stream_add(&fields)?;
        let id = format!("{ms}-{seq}");
        let mut args: Vec<&[u8]> = vec![name.as_bytes(), id.as_bytes()];
        args.extend(fields.iter().flat_map(|(field, value)| [*field, *value]));
        replicate(ctx, b"XADD\0", &args);
        Ok(id)
    }

    fn publish_available(&mut self, sku: Sku, available: i64) {
        publish(
            self.ctx,
            &self.names.channel(),
            &stock_message(sku, available),
        );
    }
}
