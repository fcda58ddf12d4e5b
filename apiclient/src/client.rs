//! [`EdgeClient`]: one keep-alive connection to the edge, the session it acts for, and a
//! method per API call; [`Call`]: one call's request and documented reply, built once and
//! sent parsed ([`EdgeClient::call`]) or only checked ([`EdgeClient::call_unparsed`]).

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::connection::{self, Base, Failed, Reply, Sender};
use crate::error::ApiError;
use crate::types::{
    Buy, Cart, CartChange, CheckoutBody, Health, LineChange, Order, OrderAccepted, Place,
    ProductsPage, Sale, SignIn, SignedIn, User, WhoAmI,
};

/// How a signed-in client shows who it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Carrier {
    /// `Authorization: Bearer <token>`, the token from the sign-in reply: an API client.
    #[default]
    Bearer,
    /// The cookie the edge sets, sent back as a browser does (the one `name=value` of the
    /// last `Set-Cookie`, which is all the edge sets; attributes are not kept).
    Cookie,
}

impl Carrier {
    fn header(self) -> HeaderName {
        match self {
            Carrier::Bearer => header::AUTHORIZATION,
            Carrier::Cookie => header::COOKIE,
        }
    }
}

/// One API call: its request, and the status its documented reply comes with. `R` is the
/// reply's type.
#[derive(Debug)]
pub struct Call<R> {
    method: Method,
    path: String,
    body: Option<Bytes>,
    expected: StatusCode,
    reply: PhantomData<fn() -> R>,
}

fn json(body: &impl Serialize) -> Option<Bytes> {
    // The bodies are structs of strings and integers: serializing them cannot fail.
    Some(Bytes::from(
        serde_json::to_vec(body).expect("request bodies always serialize"),
    ))
}

impl<R> Call<R> {
    fn new(method: Method, path: String, body: Option<Bytes>, expected: StatusCode) -> Call<R> {
        Call {
            method,
            path,
            body,
            expected,
            reply: PhantomData,
        }
    }
}

impl Call<ProductsPage> {
    /// `GET /products/?skip=…&limit=…`.
    pub fn products(skip: u64, limit: u64) -> Self {
        let path = format!("/products/?skip={skip}&limit={limit}");
        Call::new(Method::GET, path, None, StatusCode::OK)
    }
}

impl Call<Sale> {
    /// `GET /sale`.
    pub fn sale() -> Self {
        Call::new(Method::GET, "/sale".to_owned(), None, StatusCode::OK)
    }
}

impl Call<Place> {
    /// `POST /queue` with `{}`: joins the sale's waiting room (or keeps the place).
    pub fn join_queue() -> Self {
        let body = json(&serde_json::json!({}));
        Call::new(Method::POST, "/queue".to_owned(), body, StatusCode::OK)
    }

    /// `GET /queue`: the caller's place.
    pub fn place() -> Self {
        Call::new(Method::GET, "/queue".to_owned(), None, StatusCode::OK)
    }
}

impl Call<CartChange> {
    /// `POST /cart/add`.
    pub fn cart_add(line: &LineChange<'_>) -> Self {
        Call::new(
            Method::POST,
            "/cart/add".to_owned(),
            json(line),
            StatusCode::OK,
        )
    }

    /// `POST /cart/remove`.
    pub fn cart_remove(line: &LineChange<'_>) -> Self {
        let body = json(line);
        Call::new(
            Method::POST,
            "/cart/remove".to_owned(),
            body,
            StatusCode::OK,
        )
    }
}

impl Call<Cart> {
    /// `GET /cart/{id}`.
    pub fn cart(cart_id: &str) -> Self {
        Call::new(
            Method::GET,
            format!("/cart/{cart_id}"),
            None,
            StatusCode::OK,
        )
    }
}

impl Call<OrderAccepted> {
    /// `POST /cart/checkout`.
    pub fn checkout(cart_id: &str) -> Self {
        let body = json(&CheckoutBody { cart_id });
        let path = "/cart/checkout".to_owned();
        Call::new(Method::POST, path, body, StatusCode::ACCEPTED)
    }

    /// `POST /orders/`.
    pub fn buy(buy: &Buy<'_>) -> Self {
        Call::new(
            Method::POST,
            "/orders/".to_owned(),
            json(buy),
            StatusCode::ACCEPTED,
        )
    }
}

impl Call<Order> {
    /// `GET /orders/{id}`.
    pub fn order(order_id: &str) -> Self {
        Call::new(
            Method::GET,
            format!("/orders/{order_id}"),
            None,
            StatusCode::OK,
        )
    }
}

struct State {
    /// None until the first request, and after a failure (the next request reconnects).
    sender: Option<Sender>,
    /// The header value that carries the session, once signed in.
    session: Option<HeaderValue>,
}

/// A client of the edge's HTTP API over one keep-alive HTTP/1.1 connection, opened on first
/// use and again after a failure. Calls on one client take turns (HTTP/1.1 carries one
/// request at a time); run one client per concurrent caller.
pub struct EdgeClient {
    base: Base,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    carrier: Carrier,
    state: Mutex<State>,
}

impl EdgeClient {
    /// A client of the edge at `base_url` (`http://host:port`, perhaps with a path prefix),
    /// signed out, without timeouts. Nothing is connected yet.
    pub fn new(base_url: &str) -> Result<EdgeClient, ApiError> {
        Ok(EdgeClient {
            base: Base::parse(base_url)?,
            connect_timeout: None,
            request_timeout: None,
            carrier: Carrier::Bearer,
            state: Mutex::new(State {
                sender: None,
                session: None,
            }),
        })
    }

    /// Gives up on a connection after `connect`, and on a request (sent and answered whole)
    /// after `request`.
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> EdgeClient {
        self.connect_timeout = Some(connect);
        self.request_timeout = Some(request);
        self
    }

    /// Carries the session as `carrier` says (the default is the bearer token).
    pub fn carrying(mut self, carrier: Carrier) -> EdgeClient {
        self.carrier = carrier;
        self
    }

    /// Acts for the user whose token this is (from an earlier [`EdgeClient::sign_in`]), as a
    /// bearer token.
    pub fn with_token(mut self, token: &str) -> Result<EdgeClient, ApiError> {
        self.carrier = Carrier::Bearer;
        self.state.get_mut().session = Some(bearer(token)?);
        Ok(self)
    }

    /// `host:port` of the edge.
    pub fn address(&self) -> &str {
        &self.base.address
    }

    /// Opens the connection now, if it is not open (requests open it when needed).
    pub async fn connect(&self) -> Result<(), ApiError> {
        let mut state = self.state.lock().await;
        if state.sender.as_ref().is_none_or(Sender::is_closed) {
            state.sender = Some(connection::open(&self.base, self.connect_timeout).await?);
        }
        Ok(())
    }

    /// Any request, its reply whole whatever the status: for pages, metrics, and the tests
    /// that send what the API refuses. A `body` goes as `application/json`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, ApiError> {
        let mut state = self.state.lock().await;
        let mut request = Request::builder()
            .method(method)
            .uri(self.base.target(path)?)
            .header(header::HOST, self.base.host.clone());
        if let Some(session) = &state.session {
            request = request.header(self.carrier.header(), session.clone());
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        // A kept-alive connection the edge closed hands the request back unsent: it goes
        // once more, on a new connection.
        for fresh in [false, true] {
            let mut sender = match state.sender.take() {
                Some(sender) if !fresh && !sender.is_closed() => sender,
                _ => connection::open(&self.base, self.connect_timeout).await?,
            };
            match connection::exchange(&mut sender, request, self.request_timeout).await {
                Ok(reply) => {
                    state.sender = Some(sender);
                    if self.carrier == Carrier::Cookie {
                        remember_cookie(&mut state.session, &reply);
                    }
                    return Ok(reply);
                }
                Err(Failed::NotSent(unsent)) => request = *unsent,
                Err(Failed::Lost(error)) => return Err(error),
            }
        }
        Err(ApiError::Transport(
            "the edge closed two connections before the request could be sent".to_owned(),
        ))
    }

    /// Sends `call` and parses its documented reply.
    pub async fn call<R: DeserializeOwned>(&self, call: Call<R>) -> Result<R, ApiError> {
        let expected = call.expected;
        self.send(call.method, &call.path, call.body)
            .await?
            .expect(expected)?
            .json()
    }

    /// Sends `call` and checks its status, reading the reply whole but not parsing it: the
    /// load generator's way, so its own CPU stays off the edge's figures.
    pub async fn call_unparsed<R>(&self, call: Call<R>) -> Result<(), ApiError> {
        let expected = call.expected;
        self.send(call.method, &call.path, call.body)
            .await?
            .expect(expected)
            .map(drop)
    }

    /// `POST /session {"username"}`, the demo login: signs in as `username` (made if new).
    /// The client then acts for that user; a refused sign-in leaves it signed out.
    pub async fn sign_in(&self, username: &str) -> Result<SignedIn, ApiError> {
        self.sign_in_as(SignIn::Username(username)).await
    }

    /// `POST /session {"token"}`, the shop's login: signs in as the shopper the shop's JWT
    /// names (made on first sight).
    pub async fn sign_in_with_token(&self, jwt: &str) -> Result<SignedIn, ApiError> {
        self.sign_in_as(SignIn::ShopToken(jwt)).await
    }

    async fn sign_in_as(&self, sign_in: SignIn<'_>) -> Result<SignedIn, ApiError> {
        self.state.lock().await.session = None;
        let body = json(&sign_in);
        let signed: SignedIn = self
            .send(Method::POST, "/session", body)
            .await?
            .expect(StatusCode::OK)?
            .json()?;
        if self.carrier == Carrier::Bearer {
            self.state.lock().await.session = Some(bearer(&signed.token)?);
        }
        Ok(signed)
    }

    /// `GET /session`: who the session is.
    pub async fn whoami(&self) -> Result<User, ApiError> {
        let reply = self.send(Method::GET, "/session", None).await?;
        Ok(reply.expect(StatusCode::OK)?.json::<WhoAmI>()?.user)
    }

    /// `DELETE /session`: signs out (the client forgets the session either way).
    pub async fn sign_out(&self) -> Result<(), ApiError> {
        let reply = self.send(Method::DELETE, "/session", None).await;
        self.state.lock().await.session = None;
        reply?.expect(StatusCode::OK).map(drop)
    }

    /// `GET /products/?skip=…&limit=…`.
    pub async fn products(&self, skip: u64, limit: u64) -> Result<ProductsPage, ApiError> {
        self.call(Call::products(skip, limit)).await
    }

    /// `GET /sale`.
    pub async fn sale(&self) -> Result<Sale, ApiError> {
        self.call(Call::sale()).await
    }

    /// `POST /queue`.
    pub async fn join_queue(&self) -> Result<Place, ApiError> {
        self.call(Call::join_queue()).await
    }

    /// `GET /queue`.
    pub async fn place(&self) -> Result<Place, ApiError> {
        self.call(Call::place()).await
    }

    /// `POST /cart/add`.
    pub async fn cart_add(&self, line: &LineChange<'_>) -> Result<CartChange, ApiError> {
        self.call(Call::cart_add(line)).await
    }

    /// `POST /cart/remove`.
    pub async fn cart_remove(&self, line: &LineChange<'_>) -> Result<CartChange, ApiError> {
        self.call(Call::cart_remove(line)).await
    }

    /// `GET /cart/{id}`.
    pub async fn cart(&self, cart_id: &str) -> Result<Cart, ApiError> {
        self.call(Call::cart(cart_id)).await
    }

    /// `POST /cart/checkout`.
    pub async fn checkout(&self, cart_id: &str) -> Result<OrderAccepted, ApiError> {
        self.call(Call::checkout(cart_id)).await
    }

    /// `POST /orders/`.
    pub async fn buy(&self, buy: &Buy<'_>) -> Result<OrderAccepted, ApiError> {
        self.call(Call::buy(buy)).await
    }

    /// `GET /orders/{id}`.
    pub async fn order(&self, order_id: &str) -> Result<Order, ApiError> {
        self.call(Call::order(order_id)).await
    }

    /// `GET /healthz`: 200 or 503, each with the state of each backing service.
    pub async fn health(&self) -> Result<(StatusCode, Health), ApiError> {
        let reply = self.send(Method::GET, "/healthz", None).await?;
        let reply = match reply.status {
            StatusCode::SERVICE_UNAVAILABLE => reply,
            _ => reply.expect(StatusCode::OK)?,
        };
        Ok((reply.status, reply.json()?))
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, ApiError> {
        let reply = self.send(Method::GET, "/metrics", None).await?;
        Ok(reply.expect(StatusCode::OK)?.text())
    }
}

fn bearer(token: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ApiError::Invalid("a token that is not a header value".to_owned()))
}

/// A browser's jar, for the one cookie the edge sets: keeps the last `name=value` it was
/// given, and forgets it when the edge clears it (an empty value).
fn remember_cookie(jar: &mut Option<HeaderValue>, reply: &Reply) {
    let Some(set) = reply.header(header::SET_COOKIE) else {
        return;
    };
    let pair = set.split(';').next().unwrap_or_default().trim();
    *jar = match pair.split_once('=') {
        Some((_, value)) if !value.is_empty() => HeaderValue::from_str(pair).ok(),
        _ => None,
    };
}
