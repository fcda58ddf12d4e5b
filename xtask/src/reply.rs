//! Replies printed as redis-cli prints them in a terminal, so the demo in `up` reads like the
//! session a user would type.

use redis::Value;

/// The reply as redis-cli shows it: `OK`, `(integer) 3`, `"text"`, numbered nested arrays.
pub fn format(value: &Value) -> String {
    lines(value).join("\n")
}

fn lines(value: &Value) -> Vec<String> {
    match value {
        Value::Nil => vec!["(nil)".to_owned()],
        Value::Int(n) => vec![format!("(integer) {n}")],
        Value::Okay => vec!["OK".to_owned()],
        Value::SimpleString(text) => vec![text.clone()],
        Value::BulkString(bytes) => vec![quoted(bytes)],
        Value::VerbatimString { text, .. } => vec![quoted(text.as_bytes())],
        Value::Double(x) => vec![format!("(double) {x}")],
        Value::Boolean(b) => vec![format!("({b})")],
        Value::ServerError(error) => vec![match error.details() {
            Some(details) => format!("(error) {} {details}", error.code()),
            None => format!("(error) {}", error.code()),
        }],
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            numbered(items.iter().map(lines).collect(), "(empty array)")
        }
        Value::Map(pairs) => numbered(
            pairs
                .iter()
                .map(|(key, value)| {
                    let mut entry = lines(key);
                    entry.extend(lines(value));
                    entry
                })
                .collect(),
            "(empty hash)",
        ),
        other => vec![format!("{other:?}")],
    }
}

/// `1) …` per item, right-aligned numbers, continuation lines indented under the first.
fn numbered(items: Vec<Vec<String>>, empty: &str) -> Vec<String> {
    if items.is_empty() {
        return vec![empty.to_owned()];
    }
    let width = items.len().to_string().len();
    let mut out = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let label = format!("{:>width$}) ", index + 1);
        let indent = " ".repeat(label.len());
        for (line_no, line) in item.into_iter().enumerate() {
            if line_no == 0 {
                out.push(format!("{label}{line}"));
            } else {
                out.push(format!("{indent}{line}"));
            }
        }
    }
    out
}

/// A bulk string in double quotes with redis-cli's escapes.
fn quoted(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_arrays_are_numbered_and_indented_like_redis_cli() {
        let reply = Value::Array(vec![
            Value::BulkString(b"total".to_vec()),
            Value::Array(vec![Value::Int(100), Value::Int(98)]),
        ]);
        assert_eq!(
            format(&reply),
            "1) \"total\"\n2) 1) (integer) 100\n   2) (integer) 98"
        );
    }

    #[test]
    fn empty_arrays_and_quotes_read_like_redis_cli() {
        assert_eq!(format(&Value::Array(vec![])), "(empty array)");
        assert_eq!(
            format(&Value::BulkString(b"{\"sku\":14}".to_vec())),
            r#""{\"sku\":14}""#
        );
    }
}
