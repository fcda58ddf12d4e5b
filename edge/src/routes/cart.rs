//! `POST /cart/add`, `POST /cart/remove`, `POST /cart/checkout`, `GET /cart/{id}`.
//!
//! The cart id is made by the browser (so parallel first clicks share one cart); the user
//! always comes from the session. Each call is one engine command, atomic in Redis.

use flash_client::{CartView, ClientError, ErrorCode};
use flash_core::model::CartState;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::catalog::Snapshot;
use crate::error::{ApiError, Body, json_response};
use crate::routes::products::now_ms;
use crate::routes::{Call, NamesUser};
use crate::session::User;

#[derive(Deserialize)]
struct Line {
    product_id: i64,
    cart_id: String,
    qty: Option<i64>,
    user_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Checkout {
    cart_id: String,
    user_id: Option<serde_json::Value>,
}

impl NamesUser for Line {
    fn user_id(&self) -> Option<&serde_json::Value> {
        self.user_id.as_ref()
    }
}

impl NamesUser for Checkout {
    fn user_id(&self) -> Option<&serde_json::Value> {
        self.user_id.as_ref()
    }
}

pub async fn add(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    change(call, false).await
}

pub async fn remove(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    change(call, true).await
}

/// Add or remove, and the reply: the whole cart (the drawer redraws from it) and the
/// product's new stock, from one engine round trip.
async fn change(call: Call<'_>, release: bool) -> Result<Response<Body>, ApiError> {
    let app = call.app;
    let sale = call.sale.clone();
    let (user, line): (User, Line) = call.caller_and_body().await?;
    if !release {
        // Another sale's product is unknown here, whatever the engine holds under this
        // sale's keys. (A release needs no check: the cart holds only what was added.)
        sale.sold_product(line.product_id).await?;
    }
    let changed = app
        .engine
        .change_and_view(
            release,
            &sale.name,
            &line.cart_id,
            &user.engine_id(),
            line.product_id,
            line.qty.unwrap_or(1),
        )
        .await;
    if !release {
        app.metrics.reserve_outcome(outcome_word(&changed));
    }
    let (changed, view) = changed?;
    let snapshot = sale.snapshot().await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "cart": cart_json(&line.cart_id, &view, &snapshot),
            "product_id": line.product_id,
            "available": changed.available,
        }),
    ))
}

pub async fn checkout(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let app = call.app;
    let sale = call.sale.clone();
    let (user, body): (User, Checkout) = call.caller_and_body().await?;
    let (sale, cart, user) = (&sale.name, &body.cart_id, &user.engine_id());
    let order = match &app.durable {
        Some(durable) => durable.checkout(sale, cart, user).await?,
        None => app.engine.checkout(sale, cart, user).await?,
    };
    Ok(accepted(&order))
}

/// 202: the order is accepted and queued; the worker's verdict comes later
/// (`GET /orders/{id}`).
pub fn accepted(order: &flash_client::Order) -> Response<Body> {
    json_response(
        StatusCode::ACCEPTED,
        &json!({ "order_id": order.order, "status": "pending", "units": order.units }),
    )
}

pub async fn show(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &caller_cart_json(call).await?,
    ))
}

/// The caller's cart (or order), the path's id, as JSON, for `GET /cart/{id}` and
/// `GET /orders/{id}`.
pub async fn caller_cart_json(call: &Call<'_>) -> Result<serde_json::Value, ApiError> {
    let app = call.app;
    let cart_id = call.path_id()?;
    let user = call.caller()?;
    let view = owned_cart(app, &call.sale.name, &user, cart_id).await?;
    let snapshot = call.sale.snapshot().await?;
    Ok(cart_json(cart_id, &view, &snapshot))
}

/// The caller's cart or order; someone else's is as unknown as a missing one (404
/// `NOCART`, the very reply the engine's NOCART and NOTOWNER get on the other routes), so
/// ids cannot be probed.
pub async fn owned_cart(
    app: &App,
    sale: &str,
    user: &User,
    cart_id: &str,
) -> Result<CartView, ApiError> {
    match app.engine.cart(sale, cart_id).await {
        Ok(view) if view.user == user.engine_id() => Ok(view),
        Ok(_) => Err(ApiError::no_cart()),
        // A malformed id names no cart either.
        Err(ClientError::Flash(error)) if error.code == ErrorCode::Err => Err(ApiError::no_cart()),
        Err(other) => Err(other.into()),
    }
}

pub fn cart_json(cart_id: &str, view: &CartView, snapshot: &Snapshot) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = view
        .lines
        .iter()
        .map(|(product_id, qty)| {
            let product = snapshot.get(*product_id);
            json!({
                "product_id": product_id,
                "name": product.map(|p| p.name.as_str()),
                "price_cents": product.map(|p| p.price_cents),
                "qty": qty,
            })
        })
        .collect();
    json!({
        "cart_id": cart_id,
        "state": view.state.as_str(),
        "status": order_status(view.state),
        "lines": lines,
        "units": view.units,
        "deadline_ms": view.deadline_ms,
        // The edge's clock; the UI counts down deadline_ms − now_ms from the reply's arrival,
        // so only the difference matters (Redis and the edge share a clock on one host, and
        // NTP keeps them within milliseconds elsewhere).
        "now_ms": now_ms(),
    })
}

/// A cart's state as an order status: what the buyer wants to know.
pub fn order_status(state: CartState) -> &'static str {
    match state {
        CartState::Held => "held",
        CartState::CheckedOut => "pending",
        CartState::Settled => "confirmed",
        CartState::Rejected => "rejected",
        CartState::Expired => "expired",
    }
}

/// `OK` or the engine's error word, for the reserve-outcome metric.
pub fn outcome_word<T>(result: &Result<T, ClientError>) -> &'static str {
    match result {
        Ok(_) => "OK",
        Err(error) => error.code().map_or("UNAVAILABLE", ErrorCode::as_str),
    }
}
