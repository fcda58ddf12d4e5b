//! A typed client of the edge's HTTP API: what `flash simulate`, `cargo xtask bench-edge` and
//! the tests speak to the edge (`flash edge`) with.
//!
//! A crate of its own, and not a module of flash-edge or flash-client, because its callers
//! must not pull a server in (flash-edge is one) and flash-client is the door into Redis,
//! not HTTP. It depends on flash-core only for the cart state words.
//!
//! Built on hyper's connection-level client, one keep-alive HTTP/1.1 connection per
//! [`EdgeClient`], like the hand-written load generator it replaces in bench-edge: no pool,
//! no per-request bookkeeping beyond building the request. [`EdgeClient::call_unparsed`]
//! checks a reply's status without parsing its body, for the load generator.
//!
//! Map of the crate:
//! - [`client`]: [`EdgeClient`] (a method per call; the session, as a bearer token or a
//!   cookie, [`Carrier`]; [`EdgeClient::send`] for any request) and [`Call`] (one call's
//!   request and documented status, built once).
//! - [`types`]: the replies ([`SignedIn`], [`ProductsPage`], [`Sale`], [`Cart`],
//!   [`CartChange`], [`OrderAccepted`], [`Order`], [`Health`]) and request bodies
//!   ([`LineChange`], [`Buy`]).
//! - [`error`]: [`ApiError`]: a refusal ([`Refusal`]: status and the `{"error", "message"}`
//!   body) apart from an undocumented reply, no reply, and no connection.
//! - [`connection`]: the base URL, one connection, one exchange, and the raw [`Reply`].

pub mod client;
pub mod connection;
pub mod error;
pub mod types;

pub use client::{Call, Carrier, EdgeClient};
pub use connection::Reply;
pub use error::{ApiError, Refusal};
pub use hyper::{Method, StatusCode};
pub use types::{
    Buy, Cart, CartChange, Health, Line, LineChange, Order, OrderAccepted, OrderStatus, Place,
    Product, ProductsPage, Sale, SaleQueue, SignedIn, User,
};
