//! Reading order entries off the sale's stream (the contract in the README's key layout:
//! fields `order`, `user`, `lines`, `units`).

use std::collections::HashMap;

use flash_core::model::OrderEntry;
use redis::Value;

use crate::apply::OrderMessage;

/// An entry's fields as text.
pub fn fields(map: &HashMap<String, Value>) -> HashMap<String, String> {
    map.iter()
        .filter_map(|(name, value)| match value {
            Value::BulkString(bytes) => {
                Some((name.clone(), String::from_utf8_lossy(bytes).into_owned()))
            }
            Value::SimpleString(text) => Some((name.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

/// Parses one entry; the error says why it cannot be processed (for the dead letters).
pub fn parse(stream_id: &str, fields: &HashMap<String, String>) -> Result<OrderMessage, String> {
    let field = |name: &str| fields.get(name).ok_or_else(|| format!("no field '{name}'"));
    let order = field("order")?;
    if flash_core::args::parse_token("order", order.as_bytes()).is_err() {
        return Err(format!("malformed order id '{order}'"));
    }
    let user = field("user")?;
    let user_id: i64 = user
        .parse()
        .map_err(|_| format!("user '{user}' is not a users.id"))?;
    let lines_text = field("lines")?;
    let lines = OrderEntry::parse_lines(lines_text)
        .filter(|lines| !lines.is_empty() && lines.iter().all(|(sku, qty)| *sku > 0 && *qty > 0))
        .ok_or_else(|| format!("malformed lines '{lines_text}'"))?;
    let units: i64 = field("units")?
        .parse()
        .map_err(|_| "malformed units".to_owned())?;
    if units != lines.iter().map(|(_, qty)| qty).sum::<i64>() {
        return Err(format!(
            "units {units} do not add up to the lines '{lines_text}'"
        ));
    }
    Ok(OrderMessage {
        stream_id: stream_id.to_owned(),
        order: order.clone(),
        user_id,
        lines,
    })
}
