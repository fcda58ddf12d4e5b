//! `POST /orders/ {product_id, qty?, order_id?}` (single-item buy) and `GET /orders/{id}`.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::error::{ApiError, Body, json_response};
use crate::routes::cart::{accepted, caller_cart_json, outcome_word};
use crate::routes::{caller, read_json, same_user};

#[derive(Deserialize)]
struct Buy {
    product_id: i64,
    qty: Option<i64>,
    /// An idempotency key: the same order id twice is one order. Made here if absent.
    order_id: Option<String>,
    user_id: Option<serde_json::Value>,
}

pub async fn buy(app: &App, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let user = caller(app, &req)?;
    let body: Buy = read_json(req).await?;
    same_user(body.user_id.as_ref(), &user)?;
    let order_id = body
        .order_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let bought = app
        .engine
        .buy(
            &app.settings.sale,
            &order_id,
            &user.engine_id(),
            body.product_id,
            body.qty.unwrap_or(1),
        )
        .await;
    app.metrics.reserve_outcome(outcome_word(&bought));
    Ok(accepted(&bought?))
}

/// An order (or a cart) and its status: pending until the worker's verdict, then confirmed
/// or rejected; expired for a cart whose hold ran out.
pub async fn show(
    app: &App,
    req: &Request<Incoming>,
    order_id: &str,
) -> Result<Response<Body>, ApiError> {
    let cart = caller_cart_json(app, req, order_id).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "order_id": order_id,
            "status": cart["status"],
            "units": cart["units"],
            "lines": cart["lines"],
        }),
    ))
}
