//! `GET /products/?skip&limit` and `GET /sale`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::error::{ApiError, Body, json_response};
use crate::routes::Call;
use crate::settings::MAX_PAGE;

/// One catalog page: names and prices from the catalog snapshot, `available` from the
/// engine in one FLASH.AVAILABLE for the whole page.
pub async fn page(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let app = call.app;
    let query = query_pairs(call.query())?;
    let skip = number(&query, "skip", 0)?;
    if skip > MAX_SKIP {
        return Err(ApiError::invalid(format!(
            "query `skip`: at most {MAX_SKIP}, not {skip}"
        )));
    }
    let limit = number(&query, "limit", 12)?.clamp(1, MAX_PAGE);
    let snapshot = app.catalog.snapshot().await?;
    let products = snapshot.page(skip, limit);
    let ids: Vec<i64> = products.iter().map(|p| p.id).collect();
    let available = if ids.is_empty() {
        Vec::new()
    } else {
        app.engine.available(&app.settings.sale, &ids).await?
    };
    let items: Vec<serde_json::Value> = products
        .iter()
        .zip(available.iter().chain(std::iter::repeat(&None)))
        .map(|(product, available)| {
            json!({
                "id": product.id,
                "name": product.name,
                "price_cents": product.price_cents,
                // A product the sale never loaded has nothing to sell.
                "available": available.unwrap_or(0),
                "on_sale": available.is_some(),
            })
        })
        .collect();
    let total = snapshot.products.len();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "items": items,
            "total": total,
            "skip": skip,
            "limit": limit,
            "page": skip / limit + 1,
            "pages": total.div_ceil(limit),
        }),
    ))
}

/// The sale's settings and whether it is open, with the server's clock for countdowns.
pub async fn sale(app: &App) -> Result<Response<Body>, ApiError> {
    let info = app.engine.info(&app.settings.sale).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "sale": app.settings.sale,
            "open": info.open,
            "hold_ms": info.hold_ms,
            "limit": info.limit,
            "start_ms": info.start_ms,
            "end_ms": info.end_ms,
            "now_ms": now_ms(),
        }),
    ))
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A catalog has dozens to thousands of products; a `skip` past this is no page of it, and
/// bounding it keeps `skip / limit + 1` and the like far from overflow.
pub const MAX_SKIP: usize = 1_000_000;

/// The query's names and values, percent-decoded (and `+` as a space) as browsers encode
/// them. A name given twice is refused: which one counts would be a guess, and a proxy in
/// front may guess otherwise.
fn query_pairs(query: &str) -> Result<HashMap<Cow<'_, str>, Cow<'_, str>>, ApiError> {
    let mut pairs = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name.is_empty() {
            continue;
        }
        if pairs.contains_key(&name) {
            return Err(ApiError::invalid(format!("query `{name}` given twice")));
        }
        pairs.insert(name, value);
    }
    Ok(pairs)
}

fn number(
    query: &HashMap<Cow<'_, str>, Cow<'_, str>>,
    name: &str,
    default: usize,
) -> Result<usize, ApiError> {
    match query.get(name).map(|value| value.as_ref()) {
        None | Some("") => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ApiError::invalid(format!(
                "query `{name}`: a non-negative integer, not {text:?}"
            ))
        }),
    }
}
