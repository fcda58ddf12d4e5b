//! The whole contract as one list of named constants: the limits, the key layout, every
//! field name, cart state, option keyword, reply label and error word. The client renders it
//! as the Lua twin's header (`local MAX_QTY = 1000000` …), so a rename here reaches the
//! twin with no Lua edit, and its tests refuse a Lua file that spells one of these values
//! itself.

use crate::args;
use crate::cmd::keyword;
use crate::error::ErrorCode;
use crate::keys::{self, Counter, SaleKey};
use crate::model::CartState;
use crate::names::{self, Name};
use crate::queue;

/// A constant's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Text(&'static str),
    /// A list of words (a Lua array).
    List(Vec<&'static str>),
}

/// One named constant of the contract. Names are upper-case and unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constant {
    pub name: String,
    pub value: Value,
}

fn int(name: &str, value: i64) -> Constant {
    Constant {
        name: name.to_owned(),
        value: Value::Int(value),
    }
}

fn text(name: impl Into<String>, value: &'static str) -> Constant {
    Constant {
        name: name.into(),
        value: Value::Text(value),
    }
}

fn list(name: &str, values: impl IntoIterator<Item = &'static str>) -> Constant {
    Constant {
        name: name.to_owned(),
        value: Value::List(values.into_iter().collect()),
    }
}

/// `prefix` + the name upper-cased: `F_` + `hold_ms` = `F_HOLD_MS`.
fn named(prefix: &str, name: Name) -> Constant {
    text(
        format!("{prefix}{}", name.as_str().to_ascii_uppercase()),
        name.as_str(),
    )
}

/// Every constant, grouped: limits; keys (`KEY_*`, `SALE_KEYS` in KEYS order with their
/// `SALE_KEY_TYPES`); stock counters (`C_*`, `COUNTERS` in FLASH.INFO's column order); sale
/// settings fields (`SALE_*`); the cart record's separators (`CART_*`) and states (`S_*`, `CART_STATES`);
/// order stream fields (`ORDER_*`); stock event members (`EVENT_*`); the waiting room's
/// counters (`Q_*`), place states (`P_*`) and order (`TICKET_BASE`, `DRAW_*`); reply labels
/// (`R_*`); option keywords (`KW_*`); error words (`E_*`).
pub fn constants() -> Vec<Constant> {
    let mut all = vec![
        int("MAX_QTY", args::MAX_QTY),
        int("MAX_UNITS", args::MAX_UNITS),
        int("MAX_LOADED_UNITS", args::MAX_LOADED_UNITS),
        int("MAX_SKU", args::MAX_SKU),
        int("MAX_HOLD_MS", args::MAX_HOLD_MS),
        int("DEFAULT_HOLD_MS", args::DEFAULT_HOLD_MS),
        int("DEFAULT_RETAIN_MS", args::DEFAULT_RETAIN_MS),
        int("MAX_RETAIN_MS", args::MAX_RETAIN_MS),
        int("MAX_TIME_MS", args::MAX_TIME_MS),
        int("MAX_EXPIRE_COUNT", args::MAX_EXPIRE_COUNT),
        int("DEFAULT_EXPIRE_COUNT", args::DEFAULT_EXPIRE_COUNT),
        int("EXPIRE_BUDGET_US", args::EXPIRE_BUDGET_US),
        int("MAX_TOKEN_LEN", args::MAX_TOKEN_LEN as i64),
        int("MAX_LANES", args::MAX_LANES as i64),
        int("MAX_QUEUE_RATE", args::MAX_QUEUE_RATE),
        int("DEFAULT_ADMIT_MS", args::DEFAULT_ADMIT_MS),
        int("DEFAULT_IDLE_MS", args::DEFAULT_IDLE_MS),
        int("MIN_SEED_LEN", args::MIN_SEED_LEN as i64),
        int("MAX_SEED_LEN", args::MAX_SEED_LEN as i64),
        int("MAX_ADMIT_COUNT", args::MAX_ADMIT_COUNT),
        int("QUEUE_CREDIT_WINDOW_MS", args::QUEUE_CREDIT_WINDOW_MS),
        int("DEFAULT_ADMIT_COUNT", args::DEFAULT_ADMIT_COUNT),
        int("TICKET_BASE", queue::TICKET_BASE),
        int("DRAW_DIGITS", queue::DRAW_DIGITS as i64),
        text("DRAW_SEPARATOR", queue::DRAW_SEPARATOR),
        text("KEY_PREFIX", keys::KEY_PREFIX),
        text("KEY_CART", keys::CART_SUFFIX),
        text("CART_KEY_TYPE", keys::CART_TYPE),
        text("KEY_DEADLINES", keys::DEADLINES_SUFFIX),
        text("DEADLINES_KEY_TYPE", keys::DEADLINES_TYPE),
        text("DEADLINE_SEPARATOR", keys::DEADLINE_SEPARATOR),
        text("HELD_CARTS_FIELD", keys::HELD_CARTS_FIELD),
        text("KEY_EVENTS", keys::EVENTS_SUFFIX),
        list("SALE_KEYS", SaleKey::ALL.map(SaleKey::suffix)),
        list("SALE_KEY_TYPES", SaleKey::ALL.map(SaleKey::redis_type)),
        text("STOCK_FIELD_SEPARATOR", keys::STOCK_FIELD_SEPARATOR),
        list("COUNTERS", Counter::ALL.map(Counter::name)),
    ];
    all.extend(Counter::ALL.map(|counter| {
        text(
            format!("C_{}", counter.name().to_ascii_uppercase()),
            counter.name(),
        )
    }));
    all.extend(names::sale::ALL.map(|name| named("SALE_", name)));
    all.push(text("SALE_LANE_SEPARATOR", names::sale::LANE_SEPARATOR));
    all.push(text("CART_SEPARATOR", names::cart::SEPARATOR));
    all.push(text("CART_NO_ENTRY", names::cart::NO_ENTRY));
    all.extend(CartState::ALL.map(|state| {
        text(
            format!("S_{}", state.as_str().to_ascii_uppercase()),
            state.as_str(),
        )
    }));
    all.push(list("CART_STATES", CartState::ALL.map(CartState::as_str)));
    all.extend(names::order::ALL.map(|name| named("ORDER_", name)));
    all.push(text("ORDER_QTY_SEPARATOR", names::order::QTY_SEPARATOR));
    all.push(text("ORDER_LINE_SEPARATOR", names::order::LINE_SEPARATOR));
    all.extend([names::event::SKU, names::event::AVAILABLE].map(|name| named("EVENT_", name)));
    all.extend(names::queue::ALL.map(|name| named("Q_", name)));
    all.extend(
        [
            names::place::EARLY,
            names::place::WAITING,
            names::place::ADMITTED,
        ]
        .map(|state| text(format!("P_{}", state.to_ascii_uppercase()), state)),
    );
    let mut labels = names::reply::CART.to_vec();
    labels.extend(names::reply::INFO);
    labels.extend(names::reply::QUEUE_INFO);
    labels.extend(names::reply::PLACE);
    let mut seen = std::collections::HashSet::new();
    labels.retain(|name| seen.insert(name.as_str()));
    all.extend(labels.into_iter().map(|name| named("R_", name)));
    all.extend(
        [
            keyword::HOLD,
            keyword::LIMIT,
            keyword::START,
            keyword::END,
            keyword::RETAIN,
            keyword::RATE,
            keyword::CAP,
            keyword::ADMIT,
            keyword::IDLE,
            keyword::SEED,
            keyword::TOTAL,
            keyword::OK,
            keyword::REJECT,
            keyword::COUNT,
        ]
        .map(|word| text(format!("KW_{word}"), word)),
    );
    all.extend(ErrorCode::ALL.map(|code| text(format!("E_{}", code.as_str()), code.as_str())));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constant_has_its_own_upper_case_name() {
        let all = constants();
        let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert!(names.iter().all(|name| {
            name.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        }));
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "two constants share a name");
    }

    #[test]
    fn the_list_holds_the_contract() {
        let all = constants();
        let value = |name: &str| {
            all.iter()
                .find(|c| c.name == name)
                .map(|c| c.value.clone())
                .unwrap_or_else(|| panic!("no constant {name}"))
        };
        assert_eq!(value("MAX_QTY"), Value::Int(args::MAX_QTY));
        assert_eq!(value("SALE_HOLD_MS"), Value::Text("hold_ms"));
        assert_eq!(value("CART_NO_ENTRY"), Value::Text("-"));
        assert_eq!(value("KEY_DEADLINES"), Value::Text("deadlines:"));
        assert_eq!(value("S_CHECKED_OUT"), Value::Text("checked_out"));
        assert_eq!(value("E_SOLDOUT"), Value::Text("SOLDOUT"));
        assert_eq!(value("KW_REJECT"), Value::Text("REJECT"));
        assert_eq!(value("R_HELD_CARTS"), Value::Text("held_carts"));
        assert_eq!(
            value("SALE_KEYS"),
            Value::List(vec![
                "sale", "stock", "users", "orders", "queue", "line", "seen", "admitted"
            ])
        );
        // Every limit stays where the Lua twin's doubles are exact.
        assert!(all.iter().all(|c| match c.value {
            Value::Int(n) => n < (1 << 53),
            _ => true,
        }));
    }
}
