//! Errors with a stable first word.
//!
//! A client branches on [`ErrorCode`] (the first word of the Redis error), never on the message,
//! which says what to do and may be reworded. Every error leaves the dataset untouched.

use std::fmt;

/// The first word of every error reply. The set is a public contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Fewer units available than asked for.
    SoldOut,
    /// The user's units in this sale (held + checked out + sold) would pass the sale's LIMIT.
    Limit,
    /// The sale is outside its START..END window.
    Closed,
    /// The cart's hold deadline has passed (or it was already expired).
    Expired,
    /// The cart belongs to another user.
    NotOwner,
    /// No such cart (or order).
    NoCart,
    /// Checkout of a cart that holds no units.
    Empty,
    /// No such sale.
    NoSale,
    /// The SKU was never loaded into the sale, or the cart holds none of it.
    NoSku,
    /// The cart is in a state the command cannot act on (e.g. reserve into a checked-out cart,
    /// settle a cart that was never checked out, a second verdict that contradicts the first).
    BadState,
    /// Syntax, arity, a non-integer or an out-of-range number, a malformed name.
    Err,
    /// A sale key holds a value of another type.
    WrongType,
    /// The sale has a waiting room and the user holds no live admission (never admitted, or
    /// the admission ran out or was used by a checkout).
    NotAdmitted,
    /// The sale has no waiting room.
    NoQueue,
    /// The user is neither waiting nor admitted (never joined, or lost the place by not
    /// asking for it for IDLE ms).
    NotQueued,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::SoldOut,
        ErrorCode::Limit,
        ErrorCode::Closed,
        ErrorCode::Expired,
        ErrorCode::NotOwner,
        ErrorCode::NoCart,
        ErrorCode::Empty,
        ErrorCode::NoSale,
        ErrorCode::NoSku,
        ErrorCode::BadState,
        ErrorCode::Err,
        ErrorCode::WrongType,
        ErrorCode::NotAdmitted,
        ErrorCode::NoQueue,
        ErrorCode::NotQueued,
    ];

    /// The word as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::SoldOut => "SOLDOUT",
            ErrorCode::Limit => "LIMIT",
            ErrorCode::Closed => "CLOSED",
            ErrorCode::Expired => "EXPIRED",
            ErrorCode::NotOwner => "NOTOWNER",
            ErrorCode::NoCart => "NOCART",
            ErrorCode::Empty => "EMPTY",
            ErrorCode::NoSale => "NOSALE",
            ErrorCode::NoSku => "NOSKU",
            ErrorCode::BadState => "BADSTATE",
            ErrorCode::Err => "ERR",
            ErrorCode::WrongType => "WRONGTYPE",
            ErrorCode::NotAdmitted => "NOTADMITTED",
            ErrorCode::NoQueue => "NOQUEUE",
            ErrorCode::NotQueued => "NOTQUEUED",
        }
    }

    /// Reads the code from the first word of an error reply.
    pub fn from_word(word: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == word)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reply: the code, then a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// The full error line as sent to the client: `CODE message`.
    pub fn to_line(&self) -> String {
        format!("{} {}", self.code, self.message)
    }

    pub fn wrong_type() -> Error {
        Error::new(
            ErrorCode::WrongType,
            "Operation against a key holding the wrong kind of value",
        )
    }

    pub fn arity(command: &str) -> Error {
        Error::new(
            ErrorCode::Err,
            format!("wrong number of arguments for '{command}' command"),
        )
    }

    pub fn no_sale(sale: &str) -> Error {
        Error::new(
            ErrorCode::NoSale,
            format!("sale '{sale}' does not exist; create it with FLASH.SALE"),
        )
    }

    pub fn no_cart(cart: &str) -> Error {
        Error::new(ErrorCode::NoCart, format!("cart '{cart}' does not exist"))
    }

    pub fn not_owner(cart: &str) -> Error {
        Error::new(
            ErrorCode::NotOwner,
            format!("cart '{cart}' belongs to another user"),
        )
    }

    pub fn expired(cart: &str) -> Error {
        Error::new(
            ErrorCode::Expired,
            format!("cart '{cart}' expired; start a new cart"),
        )
    }

    pub fn bad_state(cart: &str, state: &str) -> Error {
        Error::new(ErrorCode::BadState, format!("cart '{cart}' is {state}"))
    }

    pub fn not_admitted(sale: &str, user: &str) -> Error {
        Error::new(
            ErrorCode::NotAdmitted,
            format!("user '{user}' has no admission to sale '{sale}'; join its waiting room"),
        )
    }

    pub fn no_queue(sale: &str) -> Error {
        Error::new(
            ErrorCode::NoQueue,
            format!("sale '{sale}' has no waiting room"),
        )
    }

    pub fn closed(sale: &str) -> Error {
        Error::new(ErrorCode::Closed, format!("sale '{sale}' is not open"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
