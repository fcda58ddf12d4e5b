//! What travels between the engine and its readers, encoded and decoded in one place: the
//! order stream entry ([`OrderEntry`] ↔ its four fields) and the stock event
//! ([`StockEvent`] ↔ its JSON). The module and the Lua twin write them, the worker and the
//! edge read them; every one of those goes through here (the Lua twin through the names of
//! its generated header).

use std::fmt;

use crate::Sku;
use crate::args::parse_token;
use crate::model::OrderEntry;
use crate::names;

/// An order entry's fields, encoded: `order`, `user`, `lines` (`sku:qty,…` ascending by
/// SKU), `units`, in append order.
pub type OrderFields = [(names::Name, String); 4];

/// An order-stream entry id, `<ms>-<seq>`: ordered as Redis orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// The first id of a millisecond: `XTRIM MINID` with it keeps that millisecond's entries.
    pub fn at_ms(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    /// `<ms>-<seq>` as Redis writes it; `None` for anything else.
    pub fn parse(text: &[u8]) -> Option<StreamId> {
        let text = std::str::from_utf8(text).ok()?;
        let (ms, seq) = text.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Why an order entry cannot be read (it goes to the dead letters with this reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl OrderEntry {
    /// The stream fields, in append order.
    pub fn to_fields(&self) -> OrderFields {
        let mut digits = itoa::Buffer::new();
        [
            (names::order::ORDER, self.order.clone()),
            (names::order::USER, self.user.clone()),
            (names::order::LINES, self.lines_field()),
            (names::order::UNITS, digits.format(self.units).to_owned()),
        ]
    }

    /// The `lines` field: `sku:qty` pairs, comma-separated, ascending by SKU.
    pub fn lines_field(&self) -> String {
        let mut text = String::new();
        write_lines(&mut text, &self.lines);
        text
    }

    /// Reads an entry back from its fields (`field` looks one up by name). Everything the
    /// engine writes reads back; anything else (a hand-written or truncated entry) is an
    /// error naming what is wrong: a missing field, a malformed order id, lines that are
    /// empty or not positive, units that do not add up.
    pub fn from_fields<'a>(
        field: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<OrderEntry, DecodeError> {
        let get = |name: names::Name| {
            field(name.as_str()).ok_or_else(|| DecodeError(format!("no field '{name}'")))
        };
        let order = get(names::order::ORDER)?;
        if parse_token("order", order.as_bytes()).is_err() {
            return Err(DecodeError(format!("malformed order id '{order}'")));
        }
        let user = get(names::order::USER)?;
        let lines_text = get(names::order::LINES)?;
        let lines = parse_lines(lines_text)
            .filter(|lines| !lines.is_empty() && lines.iter().all(|&(sku, qty)| sku > 0 && qty > 0))
            .ok_or_else(|| DecodeError(format!("malformed lines '{lines_text}'")))?;
        let units: i64 = get(names::order::UNITS)?
            .parse()
            .map_err(|_| DecodeError("malformed units".to_owned()))?;
        if units != lines.iter().map(|(_, qty)| qty).sum::<i64>() {
            return Err(DecodeError(format!(
                "units {units} do not add up to the lines '{lines_text}'"
            )));
        }
        Ok(OrderEntry {
            order: order.to_owned(),
            user: user.to_owned(),
            lines,
            units,
        })
    }
}

/// Appends `sku:qty` pairs, comma-separated (an order entry's `lines`, a cart record's).
pub(crate) fn write_lines(text: &mut String, lines: &[(Sku, i64)]) {
    let mut digits = itoa::Buffer::new();
    for (i, (sku, qty)) in lines.iter().enumerate() {
        if i > 0 {
            text.push_str(names::order::LINE_SEPARATOR);
        }
        text.push_str(digits.format(*sku));
        text.push_str(names::order::QTY_SEPARATOR);
        text.push_str(digits.format(*qty));
    }
}

pub(crate) fn parse_lines(field: &str) -> Option<Vec<(Sku, i64)>> {
    field
        .split(names::order::LINE_SEPARATOR)
        .map(|pair| {
            let (sku, qty) = pair.split_once(names::order::QTY_SEPARATOR)?;
            Some((sku.parse().ok()?, qty.parse().ok()?))
        })
        .collect()
}

/// A SKU's available units changed: published on the sale's channel as
/// `{"sku":14,"available":7}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StockEvent {
    pub sku: Sku,
    pub available: i64,
}

impl StockEvent {
    pub fn to_json(self) -> String {
        format!(
            "{{\"{}\":{},\"{}\":{}}}",
            names::event::SKU,
            self.sku,
            names::event::AVAILABLE,
            self.available
        )
    }

    /// Reads a message back: a JSON object with the two integer members, each once, in
    /// either order, whitespace allowed between tokens. A member of another name is skipped
    /// (a later engine may announce more), as long as its value holds no comma. Anything else
    /// is `None` (counted and ignored by the subscriber: someone else published on the
    /// channel).
    pub fn parse(message: &[u8]) -> Option<StockEvent> {
        let text = std::str::from_utf8(message).ok()?.trim();
        let body = text.strip_prefix('{')?.strip_suffix('}')?;
        let (mut sku, mut available) = (None, None);
        for member in body.split(',') {
            let (name, value) = member.split_once(':')?;
            let name = name.trim().strip_prefix('"')?.strip_suffix('"')?;
            let slot = if name == names::event::SKU.as_str() {
                &mut sku
            } else if name == names::event::AVAILABLE.as_str() {
                &mut available
            } else {
                continue;
            };
            let value = value.trim();
            let digits = value.strip_prefix('-').unwrap_or(value);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if slot.replace(value.parse().ok()?).is_some() {
                return None;
            }
        }
        Some(StockEvent {
            sku: sku?,
            available: available?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> OrderEntry {
        OrderEntry {
            order: "c1".into(),
            user: "42".into(),
            lines: vec![(7, 1), (14, 2)],
            units: 3,
        }
    }

    fn decode(fields: &[(&str, &str)]) -> Result<OrderEntry, DecodeError> {
        OrderEntry::from_fields(|name| {
            fields
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, value)| *value)
        })
    }

    #[test]
    fn an_order_entry_reads_back_as_written() {
        let fields = entry().to_fields();
        assert_eq!(
            fields
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect::<Vec<_>>(),
            [
                ("order", "c1"),
                ("user", "42"),
                ("lines", "7:1,14:2"),
                ("units", "3")
            ]
        );
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(decode(&pairs), Ok(entry()));
    }

    #[test]
    fn a_malformed_entry_says_what_is_wrong() {
        let base = [
            ("order", "c1"),
            ("user", "42"),
            ("lines", "7:1,14:2"),
            ("units", "3"),
        ];
        let with = |field: &str, value: &'static str| {
            let mut fields = base.to_vec();
            fields.retain(|(name, _)| *name != field);
            if !value.is_empty() {
                fields.push((field.to_owned().leak(), value));
            }
            decode(&fields).map_err(|e| e.0)
        };
        assert_eq!(with("user", ""), Err("no field 'user'".into()));
        assert_eq!(with("order", "a b"), Err("malformed order id 'a b'".into()));
        assert_eq!(with("lines", "7:0"), Err("malformed lines '7:0'".into()));
        assert_eq!(with("lines", "x"), Err("malformed lines 'x'".into()));
        assert_eq!(with("units", "y"), Err("malformed units".into()));
        assert_eq!(
            with("units", "4"),
            Err("units 4 do not add up to the lines '7:1,14:2'".into())
        );
    }

    #[test]
    fn a_stock_event_reads_back_and_nothing_else_does() {
        let event = StockEvent {
            sku: 14,
            available: 7,
        };
        assert_eq!(event.to_json(), r#"{"sku":14,"available":7}"#);
        assert_eq!(StockEvent::parse(event.to_json().as_bytes()), Some(event));
        assert_eq!(
            StockEvent::parse(br#" { "available" : 0 , "sku": 3 } "#),
            Some(StockEvent {
                sku: 3,
                available: 0
            })
        );
        // A member the engine may add later is skipped.
        assert_eq!(
            StockEvent::parse(br#"{"sku":14,"available":7,"at_ms":1700000000000}"#),
            Some(event)
        );
        for bad in [
            &br#"{"sku":14}"#[..],
            br#"{"sku":14,"available":"7"}"#,
            br#"{"sku":14,"sku":15,"available":7}"#,
            br#"{"sku":14,"available":--7}"#,
            br#"{"sku":1.5,"available":7}"#,
            b"hello",
            b"",
        ] {
            assert_eq!(
                StockEvent::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn stream_ids_parse_print_and_order_as_redis_does() {
        let id = StreamId::parse(b"1764620000000-12").expect("an id");
        assert_eq!(
            id,
            StreamId {
                ms: 1_764_620_000_000,
                seq: 12
            }
        );
        assert_eq!(id.to_string(), "1764620000000-12");
        assert!(StreamId::parse(b"1-2").expect("an id") < StreamId::parse(b"1-10").expect("an id"));
        assert!(
            StreamId::at_ms(2)
                > StreamId {
                    ms: 1,
                    seq: u64::MAX
                }
        );
        for bad in [
            &b""[..],
            b"12",
            b"-1",
            b"1-",
            b"1-x",
            b"+1-2",
            b"1-2-3",
            b"18446744073709551616-0",
        ] {
            assert_eq!(
                StreamId::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
