//! What each row of the table sends.

use super::{LUA_SALE, MODULE_SALE, QUEUE_SALE, QUEUE_WAITER, SKU, USER};

/// What one row of the table measures.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Workload {
    Incr,
    Hincrby,
    Hget,
    FloorNoop,
    FloorHget,
    ModuleAvailable,
    ModuleNewCarts,
    ModuleOneCart,
    LuaOneCart,
    Zadd,
    QueueJoin,
    QueuePosition,
    NaiveDecr,
    NaiveRpush,
    NaiveLlen,
}

impl Workload {
    pub(super) const ALL: [Workload; 15] = [
        Workload::Incr,
        Workload::Hincrby,
        Workload::Hget,
        Workload::FloorNoop,
        Workload::FloorHget,
        Workload::ModuleAvailable,
        Workload::ModuleNewCarts,
        Workload::ModuleOneCart,
        Workload::LuaOneCart,
        Workload::Zadd,
        Workload::QueueJoin,
        Workload::QueuePosition,
        Workload::NaiveDecr,
        Workload::NaiveRpush,
        Workload::NaiveLlen,
    ];

    /// What issue 10's targets compare, measured in every configuration.
    pub(super) const SUMMARY: [Workload; 6] = [
        Workload::Incr,
        Workload::Hincrby,
        Workload::Hget,
        Workload::ModuleAvailable,
        Workload::ModuleNewCarts,
        Workload::ModuleOneCart,
    ];

    /// The module API's floor (module/examples/api_floor.rs), on the plain server at -P 16.
    pub(super) fn is_floor(self) -> bool {
        matches!(self, Workload::FloorNoop | Workload::FloorHget)
    }

    /// Redis's own commands the module's figures are compared with.
    pub(super) fn is_baseline(self) -> bool {
        matches!(self, Workload::Incr | Workload::Hincrby | Workload::Hget)
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Workload::Incr => "INCR (baseline)",
            Workload::Hincrby => "HINCRBY (baseline)",
            Workload::Hget => "HGET (baseline)",
            Workload::FloorNoop => "module API floor: a reply",
            Workload::FloorHget => "module API floor: one field",
            Workload::ModuleAvailable => "FLASH.AVAILABLE, one SKU",
            Workload::ModuleNewCarts => "FLASH.RESERVE, random carts",
            Workload::ModuleOneCart => "FLASH.RESERVE, one cart",
            Workload::LuaOneCart => "Lua twin (EVALSHA), one cart",
            Workload::Zadd => "ZADD, random members",
            Workload::QueueJoin => "FLASH.JOIN, random users",
            Workload::QueuePosition => "FLASH.POSITION, one waiting",
            Workload::NaiveDecr => "naive: DECR",
            Workload::NaiveRpush => "naive: RPUSH",
            Workload::NaiveLlen => "naive: LLEN",
        }
    }

    /// The `cmdstat_<name>` line of `INFO commandstats` that counts this workload's calls.
    pub(super) fn stat_name(self) -> &'static str {
        match self {
            Workload::Incr => "incr",
            Workload::Hincrby => "hincrby",
            Workload::Hget => "hget",
            Workload::FloorNoop => "floor.noop",
            Workload::FloorHget => "floor.hget",
            Workload::ModuleAvailable => "flash.available",
            Workload::ModuleNewCarts | Workload::ModuleOneCart => "flash.reserve",
            Workload::LuaOneCart => "evalsha",
            Workload::Zadd => "zadd",
            Workload::QueueJoin => "flash.join",
            Workload::QueuePosition => "flash.position",
            Workload::NaiveDecr => "decr",
            Workload::NaiveRpush => "rpush",
            Workload::NaiveLlen => "llen",
        }
    }

    /// The command line given to redis-benchmark.
    pub(super) fn command(self, pipeline: u32, round: u32, lua: &LuaTwin) -> Vec<String> {
        // One cart per run: a later run must not reserve into an earlier run's cart, whose
        // hold could end during a long bench.
        let one_cart = format!("hot-p{pipeline}-r{round}");
        match self {
            Workload::Incr => strings(&["INCR", "bench:counter:__rand_int__"]),
            // One field of one hash, as the engine's counters are: the floor of a hash write
            // and of a hash read.
            Workload::Hincrby => strings(&["HINCRBY", "bench:hash", "field", "1"]),
            Workload::Hget => strings(&["HGET", "bench:hash", "field"]),
            // The same read through the module API alone: FLASH.AVAILABLE's floor.
            Workload::FloorNoop => strings(&["FLOOR.NOOP"]),
            Workload::FloorHget => strings(&["FLOOR.HGET", "bench:hash", "field"]),
            Workload::ModuleAvailable => strings(&["FLASH.AVAILABLE", MODULE_SALE, SKU]),
            Workload::ModuleNewCarts => strings(&[
                "FLASH.RESERVE",
                MODULE_SALE,
                "cart:__rand_int__",
                USER,
                SKU,
                "1",
            ]),
            Workload::ModuleOneCart => {
                strings(&["FLASH.RESERVE", MODULE_SALE, &one_cart, USER, SKU, "1"])
            }
            Workload::LuaOneCart => lua.evalsha(&one_cart),
            // What a join costs Redis itself: a new member of a growing sorted set (a join
            // adds the shopper to two, the line and the signs of life).
            Workload::Zadd => strings(&["ZADD", "bench:zset", "__rand_int__", "m:__rand_int__"]),
            // A line of up to a million shoppers (the keyspace), after START: a ticket each
            // (a shopper drawn twice keeps the place: a sign of life).
            Workload::QueueJoin => strings(&["FLASH.JOIN", QUEUE_SALE, "shopper:__rand_int__"]),
            // A place read (ZRANK) and a sign of life, in that line.
            Workload::QueuePosition => strings(&["FLASH.POSITION", QUEUE_SALE, QUEUE_WAITER]),
            Workload::NaiveDecr => strings(&["DECR", "bench:naive:stock"]),
            Workload::NaiveRpush => strings(&["RPUSH", "bench:naive:cart:__rand_int__", SKU]),
            Workload::NaiveLlen => strings(&["LLEN", "bench:naive:cart:__rand_int__"]),
        }
    }

    /// The sale whose held units this workload adds to (one unit per successful call).
    pub(super) fn sale(self) -> Option<&'static str> {
        match self {
            Workload::ModuleNewCarts | Workload::ModuleOneCart => Some(MODULE_SALE),
            Workload::LuaOneCart => Some(LUA_SALE),
            _ => None,
        }
    }
}

pub(super) fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| (*word).to_owned()).collect()
}

/// The client's Lua FLASH.RESERVE, loaded into the server's script cache.
pub(super) struct LuaTwin {
    pub(super) sha: String,
}

impl LuaTwin {
    /// `EVALSHA sha numkeys <keys…> <sale cart user sku qty>`, the call the client makes.
    pub(super) fn evalsha(&self, cart: &str) -> Vec<String> {
        let keys = flash_client::lua::keys(LUA_SALE, &[cart]);
        let mut words = vec![
            "EVALSHA".to_owned(),
            self.sha.clone(),
            keys.len().to_string(),
        ];
        words.extend(keys);
        words.extend(strings(&[LUA_SALE, cart, USER, SKU, "1"]));
        words
    }
}
