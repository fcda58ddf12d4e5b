//! `POST /orders/ {product_id, qty?, order_id?}` (single-item buy) and `GET /orders/{id}`.

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Body, json_response};
use crate::routes::cart::{accepted, caller_cart_json, outcome_word};
use crate::routes::{Call, NamesUser};
use crate::session::User;

#[derive(Deserialize)]
struct Buy {
    product_id: i64,
    qty: Option<i64>,
    /// An idempotency key: the same order id twice is one order. Made here if absent.
    order_id: Option<String>,
    user_id: Option<serde_json::Value>,
}

impl NamesUser for Buy {
    fn user_id(&self) -> Option<&serde_json::Value> {
        self.user_id.as_ref()
    }
}

pub async fn buy(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let app = call.app;
    let sale = call.sale.clone();
    let (user, body): (User, Buy) = call.caller_and_body().await?;
    sale.sold_product(body.product_id).await?;
    let order_id = body
        .order_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (user, qty) = (user.engine_id(), body.qty.unwrap_or(1));
    let bought = match &app.durable {
        Some(durable) => {
            durable
                .buy(&sale.name, &order_id, &user, body.product_id, qty)
                .await
        }
        None => {
            app.engine
                .buy(&sale.name, &order_id, &user, body.product_id, qty)
                .await
        }
    };
    app.metrics.reserve_outcome(outcome_word(&bought));
    Ok(accepted(&bought?))
}

/// An order (or a cart) and its status: pending until the worker's verdict, then confirmed
/// or rejected; expired for a cart whose hold ran out.
pub async fn show(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let order_id = call.path_id()?;
    let cart = caller_cart_json(call).await?;
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
