//! `GET /products/?skip&limit`, `GET /products/{id}`, `GET /sale` (each for the call's
//! sale) and `GET /sales/`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use flash_client::{ClientError, ErrorCode};
use futures::future::try_join_all;
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
    let snapshot = call.sale.snapshot().await?;
    let products = snapshot.page(skip, limit);
    let ids: Vec<i64> = products.iter().map(|p| p.id).collect();
    let available = if ids.is_empty() {
        Vec::new()
    } else {
        app.engine.available(&call.sale.name, &ids).await?
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

/// One product of the call's sale, with its live `available`; 404 `NOSKU` for a product the
/// sale does not sell (another sale's among them).
pub async fn detail(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let id: i64 = call
        .path_id()?
        .parse()
        .map_err(|_| ApiError::not_found(format!("no route {}", call.path())))?;
    let product = call.sale.sold_product(id).await?;
    let available = call
        .app
        .engine
        .available(&call.sale.name, &[id])
        .await?
        .first()
        .copied()
        .flatten();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": product.id,
            "name": product.name,
            "price_cents": product.price_cents,
            "available": available.unwrap_or(0),
            "on_sale": available.is_some(),
            "sale": call.sale.name,
        }),
    ))
}

/// The sale's settings and whether it is open, with the server's clock for countdowns;
/// `queue` is the waiting room (null without one): its rate and cap, the seed's commitment
/// (`seed_sha1`, published before START) and the seed (from START on, so anyone can
/// recompute the pre-queue's order), and how many wait.
pub async fn sale(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let name = &call.sale.name;
    let info = call.app.engine.info(name).await?;
    let queue = info.queue.as_ref().map(|queue| {
        json!({
            "rate": queue.rate,
            "cap": queue.cap,
            "admit_ms": queue.admit_ms,
            "idle_ms": queue.idle_ms,
            "seed_sha1": queue.seed_sha1,
            "seed": queue.seed,
            "line": queue.line,
            "admitted_now": queue.admitted_now,
        })
    });
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "sale": name,
            "open": info.open,
            "hold_ms": info.hold_ms,
            "limit": info.limit,
            "start_ms": info.start_ms,
            "end_ms": info.end_ms,
            "queue": queue,
            "now_ms": now_ms(),
        }),
    ))
}

/// The sales the shop runs, the default first: each with its title and, from one
/// FLASH.INFO per sale (asked at once: on a cluster each goes to its own master), whether it
/// is open and its window. A sale of the catalog the engine does not have yet (no FLASH.SALE
/// made it) is listed closed, with `in_engine: false`.
pub async fn sales(app: &App) -> Result<Response<Body>, ApiError> {
    let sales = app.catalog.sales().await?;
    let infos = try_join_all(sales.iter().map(|entry| async {
        match app.engine.info(&entry.sale).await {
            Ok(info) => Ok(Some(info)),
            Err(ClientError::Flash(error)) if error.code == ErrorCode::NoSale => Ok(None),
            Err(error) => Err(ApiError::from(error)),
        }
    }))
    .await?;
    let items: Vec<serde_json::Value> = sales
        .iter()
        .zip(infos)
        .map(|(entry, info)| {
            json!({
                "sale": entry.sale,
                "title": entry.title,
                "default": entry.default,
                "in_engine": info.is_some(),
                "open": info.as_ref().is_some_and(|info| info.open),
                "start_ms": info.as_ref().map(|info| info.start_ms),
                "end_ms": info.as_ref().map(|info| info.end_ms),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "sales": items, "now_ms": now_ms() }),
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
