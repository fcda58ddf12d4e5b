//! Routing: `match (method, path)`, one file per group of routes.
//!
//! One router for every sale: `/sales/{sale}/…` is the default sale's API (`/products/`,
//! `/cart/…`, `/orders/…`, `/queue`, `/ws/catalog`, `/ws/queue`, `/sale`) for the sale named, the same handlers
//! with the sale in the [`Call`]; the paths without the prefix are the default sale's
//! (`FLASH_SALE`). `GET /sales/` lists the sales.
//!
//! Every handler takes a [`Call`] (the request with its route, built once here; it gives
//! the caller, the parsed body and the path's id) and returns `Result<Response, ApiError>`;
//! [`handle`] checks what every request must have (a `Host` on HTTP/1.1, the per-IP rate
//! limit, `origin.rs`'s cross-site checks), turns errors into their JSON replies, and
//! records each request's route, status and latency.

mod assets;
mod body;
mod cart;
mod context;
mod health;
mod orders;
mod origin;
mod products;
mod queue;
mod session;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, Version, header};

use crate::app::App;
use crate::error::{ApiError, Body};

pub use body::read_json;
pub use context::{Call, NamesUser};

/// Serves one request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    let started = Instant::now();
    // The client, not a trusted proxy in front of it, is who the limits count.
    let peer = app.proxies.client(peer, req.headers());
    let route = route_of(req.uri().path());
    let result = match admit(&app, &req, peer, &route) {
        Ok(()) => dispatch(&app, req, peer, &route).await,
        Err(refused) => Err(refused),
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

/// The checks before any handler runs, cheapest first.
fn admit(app: &App, req: &Request<Incoming>, peer: IpAddr, route: &Route) -> Result<(), ApiError> {
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without exactly one
    // Host (the same-host Origin rule reads it, and proxies route by it).
    if req.version() == Version::HTTP_11 && req.headers().get_all(header::HOST).iter().count() != 1
    {
        return Err(ApiError::bad_request(
            "an HTTP/1.1 request needs one Host header",
        ));
    }
    // Only limited routes spend the allowance: a health check or a page's files must not
    // use up the API calls of the shoppers behind one address.
    if route.limited {
        app.limits.check_ip(peer)?;
    }
    origin::check(req, route.name, &app.settings.allowed_origins)
}

/// A route's name for metrics (ids and the sale folded away, so a shop with many sales has
/// no more series than one with one), whether the per-IP limit applies, and the sale.
struct Route {
    name: &'static str,
    limited: bool,
    /// `/sales/{sale}/…`: the sale named, and where the sale's own path starts; `None`
    /// for the paths of the default sale.
    scope: Option<Scope>,
}

struct Scope {
    sale: String,
    /// The path after `/sales/{sale}`: `/cart/add`, say.
    rest_at: usize,
}

/// The prefix of every sale's API; `/sales/` itself lists the sales.
const SALES: &str = "/sales/";

fn route_of(path: &str) -> Route {
    if let Some(scoped) = path.strip_prefix(SALES)
        && !scoped.is_empty()
    {
        let (sale, rest) = scoped.split_at(scoped.find('/').unwrap_or(scoped.len()));
        let name = sale_route(rest);
        return Route {
            name,
            limited: !is_websocket(name),
            scope: Some(Scope {
                sale: sale.to_owned(),
                rest_at: path.len() - rest.len(),
            }),
        };
    }
    // By path alone: a known path with the wrong method is a 405, not a 404.
    let name = match path {
        "/" | "/display" => "/",
        p if p.starts_with("/static/") => "/static",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        "/session" => "/session",
        "/login" => "/login",
        "/sales" | SALES => SALES,
        other => sale_route(other),
    };
    // Health checks and scrapes come from the operator's own systems; the WebSocket has a
    // cap of its own (connections per IP). The page and its files are compiled in and cost a
    // copy: one page load fetches some twenty of them (the UI's modules), which must not eat
    // the API budget of the shoppers behind one address.
    let limited = !matches!(name, "/healthz" | "/metrics" | "/" | "/static") && !is_websocket(name);
    Route {
        name,
        limited,
        scope: None,
    }
}

/// The WebSocket routes: capped per address by connections, not by requests.
fn is_websocket(route: &str) -> bool {
    matches!(route, "/ws/catalog" | "/ws/queue")
}

/// The routes of one sale: the default sale's at the root, any sale's under
/// `/sales/{sale}` (where `/sales/{sale}` alone is the sale's `/sale`). The session is the
/// shop's, not a sale's, but `/sales/{sale}/session` is it too: a client given a sale's base
/// URL (`flash simulate --url …/sales/spring`) signs in where it shops.
fn sale_route(path: &str) -> &'static str {
    match path {
        "" | "/" | "/sale" => "/sale",
        "/session" => "/session",
        "/ws/catalog" => "/ws/catalog",
        "/ws/queue" => "/ws/queue",
        "/queue" => "/queue",
        "/products" | "/products/" => "/products/",
        p if p.starts_with("/products/") => "/products/{id}",
        "/cart/add" => "/cart/add",
        "/cart/remove" => "/cart/remove",
        "/cart/checkout" => "/cart/checkout",
        p if p.starts_with("/cart/") => "/cart/{id}",
        "/orders" | "/orders/" => "/orders/",
        p if p.starts_with("/orders/") => "/orders/{id}",
        _ => "other",
    }
}

async fn dispatch(
    app: &Arc<App>,
    req: Request<Incoming>,
    peer: IpAddr,
    route: &Route,
) -> Result<Response<Body>, ApiError> {
    let name = route.name;
    // HEAD is GET without the body (hyper leaves the body out), wherever GET is served; not
    // for the WebSocket, whose handshake is a GET by definition.
    let method = match req.method() {
        &Method::HEAD if !is_websocket(name) => Method::GET,
        method => method.clone(),
    };
    if name == "other" {
        return Err(ApiError::not_found(format!(
            "no route {}",
            req.uri().path()
        )));
    }
    // The sale before anything else: an unknown one is 404 `NOSALE` whatever the route.
    let (sale, rest_at) = match &route.scope {
        None => (app.catalog.default_sale(), 0),
        Some(scope) => (app.catalog.sale(&scope.sale).await?, scope.rest_at),
    };
    let call = Call::new(app, name, peer, req, sale, rest_at);
    match (&method, name) {
        (&Method::GET, "/") => Ok(assets::index()),
        (&Method::GET, "/static") => assets::file(call.path()),
        (&Method::GET, "/healthz") => Ok(health::healthz(app)),
        (&Method::GET, "/metrics") => Ok(health::metrics(app)),
        (&Method::GET, "/ws/catalog") => {
            let hub = app.hubs.hub(&call.sale.name).await?;
            Ok(crate::ws::upgrade(call.into_request(), peer, &hub, &app.ws))
        }
        (&Method::GET, "/ws/queue") => queue::watch(call).await,
        (&Method::POST, "/queue") => queue::join(&call).await,
        (&Method::GET, "/queue") => queue::show(&call).await,
        (&Method::GET, "/login") => Ok(session::login_modes(app)),
        (&Method::POST, "/session") => session::sign_in(call).await,
        (&Method::GET, "/session") => session::whoami(&call),
        (&Method::DELETE, "/session") => session::sign_out(&call).await,
        (&Method::GET, SALES) => products::sales(app).await,
        (&Method::GET, "/sale") => products::sale(&call).await,
        (&Method::GET, "/products/") => products::page(&call).await,
        (&Method::GET, "/products/{id}") => products::detail(&call).await,
        (&Method::POST, "/cart/add") => cart::add(call).await,
        (&Method::POST, "/cart/remove") => cart::remove(call).await,
        (&Method::POST, "/cart/checkout") => cart::checkout(call).await,
        (&Method::GET, "/cart/{id}") => cart::show(&call).await,
        (&Method::POST, "/orders/") => orders::buy(call).await,
        (&Method::GET, "/orders/{id}") => orders::show(&call).await,
        (method, route) => Err(ApiError::new(
            hyper::StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not allowed on {route}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::route_of;

    #[test]
    fn the_page_and_its_files_do_not_spend_the_per_ip_budget() {
        for path in ["/", "/display", "/static/app.js", "/static/views/cart.js"] {
            assert!(!route_of(path).limited, "{path}");
        }
        for path in ["/session", "/products/", "/cart/add", "/orders/o1", "/nope"] {
            assert!(route_of(path).limited, "{path}");
        }
        assert_eq!(route_of("/cart/c-1").name, "/cart/{id}");
    }

    #[test]
    fn a_sales_paths_are_the_default_sales_routes_with_the_sale_named() {
        for (path, name, rest) in [
            ("/sales/spring/cart/add", "/cart/add", "/cart/add"),
            ("/sales/spring/cart/c-1", "/cart/{id}", "/cart/c-1"),
            ("/sales/spring/products/", "/products/", "/products/"),
            ("/sales/spring/ws/catalog", "/ws/catalog", "/ws/catalog"),
            ("/sales/spring/ws/queue", "/ws/queue", "/ws/queue"),
            ("/sales/spring/queue", "/queue", "/queue"),
            ("/sales/spring", "/sale", ""),
            ("/sales/spring/session", "/session", "/session"),
            ("/sales/spring/static/app.js", "other", "/static/app.js"),
        ] {
            let route = route_of(path);
            assert_eq!(route.name, name, "{path}");
            assert_eq!(route.limited, !name.starts_with("/ws/"), "{path}");
            let scope = route.scope.unwrap();
            assert_eq!(scope.sale, "spring", "{path}");
            assert_eq!(&path[scope.rest_at..], rest, "{path}");
        }
        for path in ["/sales/", "/sales"] {
            let route = route_of(path);
            assert_eq!(route.name, "/sales/", "{path}");
            assert!(route.scope.is_none(), "{path}");
        }
        assert!(route_of("/cart/add").scope.is_none());
    }
}
