//! The hash writes a command makes, buffered until it has succeeded (see the store's
//! notes): reads see them first, and the flush applies each key's fields together.

use std::collections::HashMap;

use flash_core::keys::SaleKey;

/// A buffered hash field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    Int(i64),
    Text(Vec<u8>),
    Delete,
}

/// Buffered writes to one hash: field → value, in first-write order, indexed so that a
/// command touching thousands of fields (an expiry run over many users' carts) stays linear.
#[derive(Default)]
pub(super) struct Fields {
    values: Vec<(Vec<u8>, Value)>,
    index: HashMap<Vec<u8>, usize>,
}

impl Fields {
    fn get(&self, field: &[u8]) -> Option<&Value> {
        self.index.get(field).map(|&i| &self.values[i].1)
    }

    fn set(&mut self, field: &[u8], value: Value) {
        match self.index.get(field) {
            Some(&i) => self.values[i].1 = value,
            None => {
                self.index.insert(field.to_vec(), self.values.len());
                self.values.push((field.to_vec(), value));
            }
        }
    }
}

/// One of the keys a command touches: a fixed sale key, or the n-th cart opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum KeyRef {
    Fixed(SaleKey),
    Cart(usize),
}

/// Every buffered hash write of one command, by key in first-write order.
#[derive(Default)]
pub(super) struct HashWrites {
    writes: Vec<(KeyRef, Fields)>,
    index: HashMap<KeyRef, usize>,
}

impl HashWrites {
    /// The writes to one key, if any.
    pub(super) fn of(&self, key: KeyRef) -> Option<&Fields> {
        self.index.get(&key).map(|&i| &self.writes[i].1)
    }

    pub(super) fn get(&self, key: KeyRef, field: &[u8]) -> Option<&Value> {
        self.of(key)?.get(field)
    }

    pub(super) fn set(&mut self, key: KeyRef, field: &[u8], value: Value) {
        let i = *self.index.entry(key).or_insert_with(|| {
            self.writes.push((key, Fields::default()));
            self.writes.len() - 1
        });
        self.writes[i].1.set(field, value);
    }

    /// Everything buffered, leaving the buffer empty.
    pub(super) fn take(&mut self) -> Vec<(KeyRef, Fields)> {
        self.index.clear();
        std::mem::take(&mut self.writes)
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = &'a (Vec<u8>, Value);
    type IntoIter = std::slice::Iter<'a, (Vec<u8>, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.values.iter()
    }
}

impl IntoIterator for Fields {
    type Item = (Vec<u8>, Value);
    type IntoIter = std::vec::IntoIter<(Vec<u8>, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.values.into_iter()
    }
}
