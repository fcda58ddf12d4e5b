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
    let entry = OrderEntry::from_fields(|name| fields.get(name).map(String::as_str))
        .map_err(|error| error.0)?;
    let user_id: i64 = entry
        .user
        .parse()
        .map_err(|_| format!("user '{}' is not a users.id", entry.user))?;
    Ok(OrderMessage {
        stream_id: stream_id.to_owned(),
        order: entry.order,
        user_id,
        lines: entry.lines,
    })
}
