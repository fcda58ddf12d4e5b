//! Routing: `match (method, path)`, one file per group of routes.
//!
//! Every handler returns `Result<Response, ApiError>`; [`handle`] turns errors into their
//! JSON replies, applies the per-IP rate limit, and records each request's route, status
//! and latency.

mod assets;
mod body;
mod cart;
mod health;
mod orders;
mod products;
mod session;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, header};

use crate::app::App;
use crate::error::{ApiError, Body};
use crate::session::User;

pub use body::read_json;

/// Serves one request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    let started = Instant::now();
    let route = route_of(req.uri().path());
    let result = match app.limits.check_ip(peer) {
        Err(refused) if route.limited => Err(refused),
        _ => dispatch(&app, req, peer, route.name).await,
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    app.metrics
        .request(route.name, response.status().as_u16(), started.elapsed());
    response
}

/// A route's name for metrics (ids folded away) and whether the per-IP limit applies.
struct Route {
    name: &'static str,
    limited: bool,
}

fn route_of(path: &str) -> Route {
    // By path alone: a known path with the wrong method is a 405, not a 404.
    let name = match path {
        "/" | "/display" => "/",
        p if p.starts_with("/static/") => "/static",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        "/ws/catalog" => "/ws/catalog",
        "/session" => "/session",
        "/sale" => "/sale",
        "/products" | "/products/" => "/products/",
        "/cart/add" => "/cart/add",
        "/cart/remove" => "/cart/remove",
        "/cart/checkout" => "/cart/checkout",
        p if p.starts_with("/cart/") => "/cart/{id}",
        "/orders" | "/orders/" => "/orders/",
        p if p.starts_with("/orders/") => "/orders/{id}",
        _ => "other",
    };
    // Health checks and scrapes come from the operator's own systems; the WebSocket has a
    // cap of its own (connections per IP).
    let limited = !matches!(name, "/healthz" | "/metrics" | "/ws/catalog");
    Route { name, limited }
}

async fn dispatch(
    app: &Arc<App>,
    req: Request<Incoming>,
    peer: IpAddr,
    route: &'static str,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    match (req.method(), route) {
        (&Method::GET, "/") => Ok(assets::index()),
        (&Method::GET, "/static") => assets::file(&path),
        (&Method::GET, "/healthz") => health::healthz(app).await,
        (&Method::GET, "/metrics") => Ok(health::metrics(app)),
        (&Method::GET, "/ws/catalog") => Ok(crate::ws::upgrade(req, peer, &app.hub, &app.ws)),
        (&Method::POST, "/session") => session::sign_in(app, req).await,
        (&Method::GET, "/session") => session::whoami(app, &req),
        (&Method::DELETE, "/session") => Ok(session::sign_out(app)),
        (&Method::GET, "/sale") => products::sale(app).await,
        (&Method::GET, "/products/") => products::page(app, &req).await,
        (&Method::POST, "/cart/add") => cart::add(app, req).await,
        (&Method::POST, "/cart/remove") => cart::remove(app, req).await,
        (&Method::POST, "/cart/checkout") => cart::checkout(app, req).await,
        (&Method::GET, "/cart/{id}") => cart::show(app, &req, id_after(&path, "/cart/")?).await,
        (&Method::POST, "/orders/") => orders::buy(app, req).await,
        (&Method::GET, "/orders/{id}") => {
            orders::show(app, &req, id_after(&path, "/orders/")?).await
        }
        (_, "other") => Err(ApiError::not_found(format!("no route {path}"))),
        (method, route) => Err(ApiError::new(
            hyper::StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not allowed on {route}"),
        )),
    }
}

/// The id in `/cart/{id}` or `/orders/{id}`.
fn id_after<'a>(path: &'a str, prefix: &str) -> Result<&'a str, ApiError> {
    let id = path.strip_prefix(prefix).unwrap_or_default();
    let id = id.strip_suffix('/').unwrap_or(id);
    if id.is_empty() || id.contains('/') {
        return Err(ApiError::not_found(format!("no route {path}")));
    }
    Ok(id)
}

/// The signed-in caller, with the per-user limit applied: for cart and order calls.
fn caller(app: &App, req: &Request<Incoming>) -> Result<User, ApiError> {
    let user = app
        .signer
        .caller(req.headers())
        .ok_or_else(ApiError::unauthenticated)?;
    app.limits.check_user(user.id)?;
    Ok(user)
}

/// A body's `user_id`, if it has one, must be the caller's: the original API trusted it,
/// Flash refuses a disagreement instead of acting for someone else.
fn same_user(body_user: Option<&serde_json::Value>, user: &User) -> Result<(), ApiError> {
    let agrees = match body_user {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(user.id),
        Some(serde_json::Value::String(s)) => s.parse::<i64>().ok() == Some(user.id),
        Some(_) => false,
    };
    if agrees {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "user_id does not match the signed-in user; omit it, the session says who you are",
        ))
    }
}
