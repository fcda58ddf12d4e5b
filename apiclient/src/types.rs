//! The API's bodies as Rust types: what the edge sends back (the README's "API" table) and
//! what a call sends. Replies ignore fields they do not know, so an edge that adds one does
//! not break its clients; a missing or mistyped documented field is an error.

use flash_core::model::CartState;
use serde::{Deserialize, Deserializer, Serialize};

/// A user, as the session names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
}

/// `POST /session`: the bearer token and who it is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub token: String,
    pub user: User,
}

/// `GET /session`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WhoAmI {
    pub user: User,
}

/// A product on a catalog page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    /// Units the engine can still reserve (0 when not on sale).
    pub available: i64,
    /// Whether the sale has stock loaded for it.
    pub on_sale: bool,
}

/// `GET /products/?skip=…&limit=…`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductsPage {
    pub items: Vec<Product>,
    pub total: u64,
    pub skip: u64,
    /// The page size used (the edge caps it at 60).
    pub limit: u64,
    /// 1-based.
    pub page: u64,
    pub pages: u64,
}

/// `GET /sale`: the sale this edge serves and its settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    pub sale: String,
    pub open: bool,
    pub hold_ms: i64,
    pub limit: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The waiting room, if the sale has one.
    #[serde(default)]
    pub queue: Option<SaleQueue>,
    pub now_ms: i64,
}

/// `GET /sale`'s `queue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleQueue {
    pub rate: i64,
    pub cap: i64,
    pub admit_ms: i64,
    pub idle_ms: i64,
    /// SHA-1 of the seed, published before START.
    pub seed_sha1: String,
    /// The seed, from START on.
    pub seed: Option<String>,
    pub line: i64,
    pub admitted_now: i64,
}

/// `POST /queue` and `GET /queue`: a shopper's place in the waiting room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// `early` (before START), `waiting` or `admitted`.
    pub state: String,
    /// From 1 while waiting.
    pub position: i64,
    pub line: i64,
    pub eta_ms: i64,
    pub until_ms: i64,
    pub now_ms: i64,
}

/// What the API calls an order's status (a cart's state, in a buyer's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Held,
    Pending,
    Confirmed,
    Rejected,
    Expired,
}

/// A cart line, with the catalog's name and price (absent for a product the catalog lost).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub product_id: i64,
    pub name: Option<String>,
    pub price_cents: Option<i64>,
    pub qty: i64,
}

/// A cart: `GET /cart/{id}`, and inside every add and remove reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub cart_id: String,
    /// The engine's state word, read with core's table.
    #[serde(deserialize_with = "cart_state", serialize_with = "cart_state_word")]
    pub state: CartState,
    pub status: OrderStatus,
    pub lines: Vec<Line>,
    pub units: i64,
    /// The hold's end on the edge's clock; count down `deadline_ms − now_ms` from the
    /// reply's arrival, never from this machine's clock.
    pub deadline_ms: i64,
    pub now_ms: i64,
}

impl Cart {
    /// Milliseconds of hold left when the reply was made (0 once past).
    pub fn hold_left_ms(&self) -> u64 {
        u64::try_from(self.deadline_ms - self.now_ms).unwrap_or(0)
    }
}

fn cart_state<'de, D: Deserializer<'de>>(deserializer: D) -> Result<CartState, D::Error> {
    let word = String::deserialize(deserializer)?;
    CartState::parse(word.as_bytes())
        .ok_or_else(|| serde::de::Error::custom(format!("unknown cart state {word:?}")))
}

fn cart_state_word<S: serde::Serializer>(
    state: &CartState,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.as_str())
}

/// `POST /cart/add` and `POST /cart/remove`: the cart after the change, and the product's
/// units left to reserve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartChange {
    pub cart: Cart,
    pub product_id: i64,
    pub available: i64,
}

/// `POST /cart/checkout` and `POST /orders/` (202): the order is accepted, its status
/// `pending` until the worker writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub order_id: String,
    pub status: OrderStatus,
    pub units: i64,
}

/// `GET /orders/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub status: OrderStatus,
    pub units: i64,
    pub lines: Vec<Line>,
}

/// `GET /healthz`, 200 or 503: `ok`, or what failed, for each backing service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    pub redis: String,
    pub postgres: String,
}

impl Health {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// The body of `POST /cart/add` and `POST /cart/remove`. The user is the session's.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct LineChange<'a> {
    pub product_id: i64,
    pub cart_id: &'a str,
    /// Default 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<i64>,
}

impl<'a> LineChange<'a> {
    /// One unit of `product_id` into (or out of) `cart_id`.
    pub fn one(product_id: i64, cart_id: &'a str) -> LineChange<'a> {
        LineChange {
            product_id,
            cart_id,
            qty: None,
        }
    }
}

/// The body of `POST /orders/`: a single-item order.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Buy<'a> {
    pub product_id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qty: Option<i64>,
    /// An idempotency key: the same key is the same order (the edge makes one if absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) enum SignIn<'a> {
    /// The demo login.
    #[serde(rename = "username")]
    Username(&'a str),
    /// The shop's login: its identity provider's JWT.
    #[serde(rename = "token")]
    ShopToken(&'a str),
}

#[derive(Serialize)]
pub(crate) struct CheckoutBody<'a> {
    pub cart_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cart_reads_core_state_words_and_refuses_others() {
        let text = r#"{"cart_id":"c1","state":"checked_out","status":"pending","units":2,
            "lines":[{"product_id":1,"name":null,"price_cents":null,"qty":2}],
            "deadline_ms":1000,"now_ms":400,"extra":true}"#;
        let cart: Cart = serde_json::from_str(text).expect("a cart");
        assert_eq!(cart.state, CartState::CheckedOut);
        assert_eq!(cart.status, OrderStatus::Pending);
        assert_eq!(cart.lines[0].name, None);
        assert_eq!(cart.hold_left_ms(), 600);
        let odd = text.replace("checked_out", "parked");
        let error = serde_json::from_str::<Cart>(&odd).expect_err("an unknown state");
        assert!(error.to_string().contains("parked"), "{error}");
    }

    #[test]
    fn optional_fields_are_left_out_of_request_bodies() {
        let body = serde_json::to_string(&LineChange::one(14, "c1")).expect("json");
        assert_eq!(body, r#"{"product_id":14,"cart_id":"c1"}"#);
        let buy = Buy {
            product_id: 3,
            qty: Some(2),
            order_id: None,
        };
        let body = serde_json::to_string(&buy).expect("json");
        assert_eq!(body, r#"{"product_id":3,"qty":2}"#);
    }
}
