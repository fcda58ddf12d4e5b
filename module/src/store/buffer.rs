//! The hash writes a command makes, buffered until it has succeeded (see the store's
//! notes): reads see them first, and the flush applies each key's fields together.
//!
//! Built for the hot path: a reserve buffers about nine fields over four keys, so the
//! buffer searches short vectors instead of hashing, and keeps field names and short values
//! inline instead of allocating each. An expiry batch touches hundreds of fields of one hash
//! (every user of the batch): past [`INDEXED_FROM`] fields a key gets an index, so that stays
//! linear.

use std::collections::HashMap;

use flash_core::keys::SaleKey;

/// Fields of one key searched one by one up to this many; an index beyond.
const INDEXED_FROM: usize = 16;

/// Bytes kept inline: every field name and value Flash writes fits (names and ids are
/// tokens of at most 64 bytes); anything longer goes to the heap.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Bytes {
    Inline { len: u8, bytes: [u8; 64] },
    Heap(Vec<u8>),
}

impl Bytes {
    pub(super) fn new(from: &[u8]) -> Bytes {
        if from.len() <= 64 {
            let mut bytes = [0u8; 64];
            bytes[..from.len()].copy_from_slice(from);
            Bytes::Inline {
                len: from.len() as u8,
                bytes,
            }
        } else {
            Bytes::Heap(from.to_vec())
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Bytes::Heap(bytes) => bytes,
        }
    }
}

/// A buffered hash field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    Int(i64),
    Text(Bytes),
    Delete,
}

/// Buffered writes to one hash: field → value, in first-write order.
#[derive(Default)]
pub(super) struct Fields {
    values: Vec<(Bytes, Value)>,
    /// Field → position, once there are many.
    index: Option<HashMap<Bytes, usize>>,
}

impl Fields {
    fn position(&self, field: &[u8]) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&Bytes::new(field)).copied(),
            None => self.values.iter().position(|(f, _)| f.as_slice() == field),
        }
    }

    fn get(&self, field: &[u8]) -> Option<&Value> {
        self.position(field).map(|i| &self.values[i].1)
    }

    fn set(&mut self, field: &[u8], value: Value) {
        if let Some(i) = self.position(field) {
            self.values[i].1 = value;
            return;
        }
        let field = Bytes::new(field);
        if let Some(index) = &mut self.index {
            index.insert(field.clone(), self.values.len());
        }
        self.values.push((field, value));
        if self.index.is_none() && self.values.len() > INDEXED_FROM {
            let index = self.values.iter().enumerate();
            self.index = Some(index.map(|(i, (f, _))| (f.clone(), i)).collect());
        }
    }
}

/// One of the keys a command touches: a fixed sale key, or the n-th cart opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum KeyRef {
    Fixed(SaleKey),
    Cart(usize),
}

/// Every buffered hash write of one command, by key in first-write order (a handful of
/// keys, or one per cart of an expiry batch: searched from the most recent).
#[derive(Default)]
pub(super) struct HashWrites {
    writes: Vec<(KeyRef, Fields)>,
}

impl HashWrites {
    fn position(&self, key: KeyRef) -> Option<usize> {
        self.writes.iter().rposition(|(k, _)| *k == key)
    }

    /// The writes to one key, if any.
    pub(super) fn of(&self, key: KeyRef) -> Option<&Fields> {
        self.position(key).map(|i| &self.writes[i].1)
    }

    pub(super) fn get(&self, key: KeyRef, field: &[u8]) -> Option<&Value> {
        self.of(key)?.get(field)
    }

    pub(super) fn set(&mut self, key: KeyRef, field: &[u8], value: Value) {
        let i = match self.position(key) {
            Some(i) => i,
            None => {
                self.writes.push((key, Fields::default()));
                self.writes.len() - 1
            }
        };
        self.writes[i].1.set(field, value);
    }

    /// Everything buffered, leaving the buffer empty.
    pub(super) fn take(&mut self) -> Vec<(KeyRef, Fields)> {
        std::mem::take(&mut self.writes)
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = &'a (Bytes, Value);
    type IntoIter = std::slice::Iter<'a, (Bytes, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.values.iter()
    }
}

impl IntoIterator for Fields {
    type Item = (Bytes, Value);
    type IntoIter = std::vec::IntoIter<(Bytes, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.values.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_the_last_write_in_first_write_order_small_and_indexed() {
        for count in [3usize, 200] {
            let mut writes = HashWrites::default();
            let users = KeyRef::Fixed(SaleKey::Users);
            for i in 0..count {
                writes.set(users, format!("u{i}").as_bytes(), Value::Int(i as i64));
            }
            writes.set(users, b"u1", Value::Int(-1));
            writes.set(KeyRef::Cart(0), b"state", Value::Text(Bytes::new(b"held")));
            assert_eq!(writes.get(users, b"u1"), Some(&Value::Int(-1)));
            assert_eq!(writes.get(users, b"u2"), Some(&Value::Int(2)));
            assert_eq!(writes.get(users, b"nobody"), None);
            assert_eq!(writes.get(KeyRef::Cart(1), b"state"), None);
            let taken = writes.take();
            assert_eq!(taken.len(), 2);
            let fields: Vec<_> = taken
                .into_iter()
                .next()
                .expect("users first")
                .1
                .into_iter()
                .collect();
            assert_eq!(fields.len(), count);
            assert_eq!(fields[0].0.as_slice(), b"u0");
            assert_eq!(fields[1].1, Value::Int(-1));
            assert!(writes.of(users).is_none());
        }
    }

    #[test]
    fn long_bytes_go_to_the_heap_intact() {
        let long = vec![b'x'; 100];
        assert_eq!(Bytes::new(&long).as_slice(), &long[..]);
        assert!(matches!(Bytes::new(&long), Bytes::Heap(_)));
        assert_eq!(Bytes::new(b"14:held").as_slice(), b"14:held");
    }
}
