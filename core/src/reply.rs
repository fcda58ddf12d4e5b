//! The reply tree. Only shapes that a Lua script can return too (RESP2: integers, bulk and
//! simple strings, nil, nested arrays), so both implementations answer alike.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Int(i64),
    Bulk(String),
    Status(&'static str),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    pub fn bulk(text: impl Into<String>) -> Reply {
        Reply::Bulk(text.into())
    }

    /// A label of a field/value reply (FLASH.CART, FLASH.INFO).
    pub fn label(name: crate::names::Name) -> Reply {
        Reply::Bulk(name.as_str().to_owned())
    }

    pub fn ints(values: impl IntoIterator<Item = i64>) -> Reply {
        Reply::Array(values.into_iter().map(Reply::Int).collect())
    }
}
