//! `WS /ws/catalog`: live stock in the browser.
//!
//! [`upgrade`] checks the handshake (a proper WebSocket upgrade, an allowed `Origin`, the
//! per-address connection cap), answers 101 and spawns one session per client;
//! [`run_session`] is that session, generic over any `Sink`/`Stream` of messages so it is
//! tested with channels.
//!
//! # Protocol
//!
//! Server → client, one text frame per product and change (coalesced: at most one per
//! product per tick, ~50 ms, always ending on the latest value):
//!
//! ```text
//! {"product_id":14,"available":7}
//! ```
//!
//! Frames come in bursts: everything due for a client when its session runs (the products
//! of one tick, or of several ticks when the edge is busy, merged so that each product
//! appears once with its latest value) goes out in one write. An edge short of CPU thus
//! makes fewer, fuller writes (its cost is the write, not the bytes) and delivers later
//! rather than falling behind without end.
//!
//! Until the client sends anything it receives every product's changes. Client → server:
//!
//! ```text
//! {"subscribe":[14,7,3]}
//! ```
//!
//! replaces the watched set (an empty list watches nothing), answers at once with the
//! current value of each of those products that the engine knows (never-loaded ones are
//! left out), then pushes only their changes. At most [`WsSettings::max_subscribe_ids`]
//! ids, each a valid product id (1..2^53−1); duplicates are fine.
//!
//! Closing codes the server uses:
//!
//! | code | when |
//! |---|---|
//! | 1000 | answering the client's close |
//! | 1001 | the server shuts down |
//! | 1003 | a binary frame (the protocol is text only) |
//! | 1008 | a text frame that is not exactly `{"subscribe":[ids]}`, too many ids, an id out of range |
//! | 1009 | a message over [`WsSettings::max_message_bytes`] |
//!
//! A client that stops reading is disconnected once a write has waited
//! [`WsSettings::send_timeout`]; until then the updates it misses are not queued for it (the
//! hub's bounded broadcast drops them, and it is resent the latest values instead), so it
//! costs a bounded amount of memory. A client silent for [`WsSettings::idle_timeout`]
//! (browsers answer the server's pings every [`WsSettings::heartbeat`]) is dropped.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use flash_core::args::MAX_SKU;
use futures::{Sink, SinkExt, Stream, StreamExt};
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::error::{ApiError, Body};
use crate::hub::{Hub, ProductStock, StockUpdate};

/// The WebSocket endpoint's limits.
#[derive(Clone, Debug)]
pub struct WsSettings {
    /// Origins (`scheme://host[:port]`) whose pages may connect. An `Origin` whose host equals
    /// the request's `Host` is accepted too, and so is a request with no `Origin` (not a
    /// browser: it could send any Origin anyway).
    pub allowed_origins: Vec<String>,
    /// Live connections per address (per /64 for IPv6).
    pub max_per_ip: usize,
    /// Largest message (and frame) a client may send; bigger closes with 1009.
    pub max_message_bytes: usize,
    /// Most product ids in one `subscribe`.
    pub max_subscribe_ids: usize,
    /// How long one write to a client may wait before the client is dropped as not reading.
    pub send_timeout: Duration,
    /// The server pings every client this often.
    pub heartbeat: Duration,
    /// A client that sends nothing (not even a pong) this long is dropped.
    pub idle_timeout: Duration,
}

impl Default for WsSettings {
    fn default() -> WsSettings {
        WsSettings {
            allowed_origins: vec![
                "http://127.0.0.1:8000".to_owned(),
                "http://localhost:8000".to_owned(),
            ],
            max_per_ip: 32,
            max_message_bytes: 4096,
            max_subscribe_ids: 200,
            send_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
        }
    }
}

impl WsSettings {
    /// The socket configuration: small buffers (10,000 clients), incoming messages capped.
    pub fn socket_config(&self) -> WebSocketConfig {
        let max = self.max_message_bytes.max(1);
        WebSocketConfig::default()
            // Eagerly allocated per connection: 128 KiB by default, 1.3 GB for 10,000 clients.
            .read_buffer_size(4096)
            .write_buffer_size(8192)
            // A backstop only: writes wait for the socket (and time out) long before this.
            .max_write_buffer_size(1 << 20)
            .max_message_size(Some(max))
            .max_frame_size(Some(max))
    }
}

/// Answers a `GET /ws/catalog` upgrade request: 101 and a spawned session, or a JSON refusal:
/// 400 `BAD_REQUEST` (not a WebSocket upgrade), 403 `FORBIDDEN` (an `Origin` not allowed),
/// 429 `RATE_LIMITED` (`max_per_ip` connections from this address already). The server
/// connection must be served `with_upgrades()`.
pub fn upgrade(
    req: Request<hyper::body::Incoming>,
    peer: IpAddr,
    hub: &Hub,
    settings: &WsSettings,
) -> Response<Body> {
    let accept_key = match check_handshake(&req, settings) {
        Ok(accept_key) => accept_key,
        Err(refusal) => return *refusal,
    };
    let Some(slot) = hub.admit(peer, settings.max_per_ip) else {
        return ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!(
                    "at most {} live connections per address; close one first",
                    settings.max_per_ip
                ),
            )
        }
        .into_response();
    };
    let Ok(accept_value) = HeaderValue::from_str(&accept_key) else {
        // Base64 is always a valid header value; kept as an error rather than a panic.
        return ApiError::internal("cannot encode Sec-WebSocket-Accept").into_response();
    };

    let on_upgrade = hyper::upgrade::on(req);
    let hub = hub.clone();
    let config = settings.socket_config();
    let limits = settings.clone();
    tokio::spawn(async move {
        // Held for the session's whole life: dropped when this task ends, however it ends
        // (return, panic, abort), which frees the address's slot.
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, %peer, "ws: upgrade did not complete");
                return;
            }
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let (mut sink, mut stream) = socket.split();
        let end = run_session(&mut sink, &mut stream, &hub, &limits).await;
        tracing::debug!(?end, %peer, "ws: session ended");
        if let Ok(socket) = sink.reunite(stream) {
            linger(socket).await;
        }
    });

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept_value);
    response
}

/// Closes the TCP connection gently: our FIN first, then whatever the client still sends is
/// read and dropped until it closes too. Closing with unread data in the kernel's buffer (the
/// rest of an oversized message, say) would send a RST, and the client could lose the close
/// frame that explains why.
async fn linger(socket: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) {
    let mut io = socket.into_inner();
    let drain = async {
        let _ = io.shutdown().await;
        let mut buffer = [0u8; 4096];
        // Bounded: a client that never closes costs 2 s and 1 MiB of reading at most.
        let mut budget: usize = 1 << 20;
        while let Ok(read) = io.read(&mut buffer).await {
            if read == 0 || read >= budget {
                break;
            }
            budget -= read;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// The checks of a WebSocket handshake (RFC 6455 §4.2.1) and the `Origin` allowlist; the
/// `Sec-WebSocket-Accept` value on success.
pub fn check_handshake<B>(
    req: &Request<B>,
    settings: &WsSettings,
) -> Result<String, Box<Response<Body>>> {
    let refuse = |message: &str| Box::new(ApiError::bad_request(message).into_response());
    let headers = req.headers();
    if req.method() != Method::GET {
        return Err(refuse("a WebSocket upgrade is a GET"));
    }
    if req.version() != Version::HTTP_11 {
        return Err(refuse("a WebSocket upgrade needs HTTP/1.1"));
    }
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(refuse(
            "not a WebSocket upgrade: send Connection: Upgrade and Upgrade: websocket",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version.as_bytes() != b"13")
    {
        let mut response = refuse("only WebSocket version 13 is supported");
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(response);
    }
    // The key is 16 random bytes in base64 (24 characters).
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| {
            base64::engine::general_purpose::STANDARD
                .decode(key.trim_ascii())
                .is_ok_and(|bytes| bytes.len() == 16)
        });
    let Some(key) = key else {
        return Err(refuse("Sec-WebSocket-Key must be 16 bytes in base64"));
    };
    if !origin_allowed(
        headers.get(header::ORIGIN),
        headers.get(header::HOST),
        &settings.allowed_origins,
    ) {
        return Err(Box::new(
            ApiError::forbidden("this Origin may not open the stock WebSocket").into_response(),
        ));
    }
    Ok(derive_accept_key(key.trim_ascii()))
}

/// Whether a comma-separated header (any of its lines) holds `token`, ignoring case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// Browsers always send `Origin` on a WebSocket handshake; a page from another site must
/// not read our socket with its visitors' cookies (cross-site WebSocket hijacking). A
/// request without one is not from a browser page and is let through.
pub fn origin_allowed(
    origin: Option<&HeaderValue>,
    host: Option<&HeaderValue>,
    allowed_origins: &[String],
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim();
    if allowed_origins
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    // Same host: a deployment under any hostname serves its own pages. (`Origin: null`, from
    // sandboxed frames and files, has no authority and never matches.)
    let (Some((scheme, authority)), Some(host)) =
        (origin.split_once("://"), host.and_then(|h| h.to_str().ok()))
    else {
        return false;
    };
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return false;
    }
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let strip = |authority: &str| -> String {
        let lower = authority.trim().to_ascii_lowercase();
        match lower.strip_suffix(default_port) {
            Some(bare) => bare.to_owned(),
            None => lower,
        }
    };
    strip(authority) == strip(host)
}

/// Why a session ended (for logs and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent a close frame (answered).
    ClosedByClient,
    /// The connection ended without a close frame.
    Disconnected,
    /// Closed 1008: a message that is not a valid subscribe.
    PolicyViolation,
    /// Closed 1003: a binary message.
    UnsupportedData,
    /// Closed 1009: a message over the size limit.
    MessageTooBig,
    /// A write failed or waited longer than `send_timeout` (a client that stopped reading).
    SendFailed,
    /// Nothing heard from the client for `idle_timeout`.
    Idle,
    /// Closed 1001: the hub shut down.
    ServerShutdown,
    /// The socket failed (a protocol error, an I/O error).
    ReadError(String),
}

/// What a client asks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRequest {
    subscribe: Vec<i64>,
}

/// The products of a `{"subscribe":[…]}` message, deduplicated and sorted; the close reason
/// otherwise (kept under the 123 bytes a close frame allows).
fn parse_subscribe(text: &str, max_ids: usize) -> Result<Vec<i64>, String> {
    let request: ClientRequest = serde_json::from_str(text)
        .map_err(|_| "expected {\"subscribe\":[product ids]}".to_owned())?;
    let mut products = request.subscribe;
    if products.len() > max_ids {
        return Err(format!("at most {max_ids} product ids per subscribe"));
    }
    if products.iter().any(|&id| !(1..=MAX_SKU).contains(&id)) {
        return Err("product ids are integers from 1 to 2^53-1".to_owned());
    }
    products.sort_unstable();
    products.dedup();
    Ok(products)
}

/// One client's session: pushes stock changes (all, then only the subscribed products'),
/// answers subscribes, and closes as the protocol table in the module docs says. Returns
/// when the session is over; the caller then drops the socket.
///
/// The caller's socket answers pings itself (tungstenite queues the pong and writes it on the
/// next read or flush; the session flushes on every ping so it goes out at once).
pub async fn run_session<S, R>(
    sink: &mut S,
    stream: &mut R,
    hub: &Hub,
    settings: &WsSettings,
) -> SessionEnd
where
    S: Sink<Message> + Unpin,
    S::Error: Display,
    R: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let (mut updates, mut seen_tick) = hub.subscribe_updates();
    let mut shutdown = hub.shutdown_signal();
    if *shutdown.borrow_and_update() {
        close(sink, CloseCode::Away, "server shutting down").await;
        return SessionEnd::ServerShutdown;
    }
    // Made once, not per turn of the loop: each new `changed()` would enlist in (and leave)
    // the hub's shared list of waiters on every wake-up of every session.
    let stopping = async move {
        let _ = shutdown.wait_for(|stopped| *stopped).await;
    };
    tokio::pin!(stopping);
    // `None`: every product, until the first subscribe.
    let mut watched: Option<HashSet<i64>> = None;
    // Ticks up to this one carry nothing newer than what a snapshot already sent.
    let mut covered_through = seen_tick;
    let heartbeat_every = settings.heartbeat.max(Duration::from_millis(10));
    let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat_every, heartbeat_every);
    let mut last_heard = Instant::now();

    loop {
        tokio::select! {
            incoming = stream.next() => {
                let message = match incoming {
                    None => return SessionEnd::Disconnected,
                    Some(Ok(message)) => message,
                    Some(Err(WsError::Capacity(_))) => {
                        // tungstenite only reports the oversized message; the close frame
                        // that tells the client why is ours to send.
                        close(sink, CloseCode::Size, "message too big").await;
                        return SessionEnd::MessageTooBig;
                    }
                    Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                        return SessionEnd::Disconnected;
                    }
                    Some(Err(error)) => return SessionEnd::ReadError(error.to_string()),
                };
                last_heard = Instant::now();
                match message {
                    Message::Text(text) => {
                        let products = match parse_subscribe(text.as_str(), settings.max_subscribe_ids) {
                            Ok(products) => products,
                            Err(reason) => {
                                close(sink, CloseCode::Policy, &reason).await;
                                return SessionEnd::PolicyViolation;
                            }
                        };
                        let snapshot = hub.snapshot(&products).await;
                        watched = Some(products.into_iter().collect());
                        covered_through = covered_through.max(snapshot.through_tick);
                        seen_tick = seen_tick.max(snapshot.through_tick);
                        if !send_values(sink, hub, &snapshot.values, settings).await {
                            return SessionEnd::SendFailed;
                        }
                    }
                    Message::Binary(_) => {
                        close(sink, CloseCode::Unsupported, "text frames only").await;
                        return SessionEnd::UnsupportedData;
                    }
                    Message::Ping(_) => {
                        if !flush(sink, settings).await {
                            return SessionEnd::SendFailed;
                        }
                    }
                    Message::Close(_) => {
                        // The socket queued the reply close frame; write it out.
                        let _ = flush(sink, settings).await;
                        return SessionEnd::ClosedByClient;
                    }
                    Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            update = updates.recv() => {
                // Everything waiting goes out in one write: a session that wakes late (the
                // edge is busy) must not pay a write per tick, which is what made it late.
                let ready = drain_ready(update, &mut updates);
                if ready.missed > 0 {
                    // The missed ticks are gone; the latest values replace them (and the
                    // ticks read after the gap, which are no newer).
                    hub.count_lag(ready.missed);
                    let snapshot = hub.changed_since(seen_tick, watched.as_ref());
                    covered_through = snapshot.through_tick;
                    seen_tick = snapshot.through_tick;
                    if !send_values(sink, hub, &snapshot.values, settings).await {
                        return SessionEnd::SendFailed;
                    }
                } else if !ready.ticks.is_empty() {
                    let due: Vec<&StockUpdate> = ready
                        .ticks
                        .iter()
                        .map(AsRef::as_ref)
                        .filter(|update| update.tick > covered_through)
                        .collect();
                    if let Some(last) = due.last() {
                        seen_tick = last.tick;
                    }
                    let frames = merged_frames(&due, watched.as_ref());
                    if !send_frames(sink, hub, frames, settings).await {
                        return SessionEnd::SendFailed;
                    }
                }
                if ready.closed {
                    close(sink, CloseCode::Away, "server shutting down").await;
                    return SessionEnd::ServerShutdown;
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > settings.idle_timeout {
                    return SessionEnd::Idle;
                }
                if !send_frames(sink, hub, vec![Message::Ping(Bytes::new())], settings).await {
                    return SessionEnd::SendFailed;
                }
            }
            () = &mut stopping => {
                close(sink, CloseCode::Away, "server shutting down").await;
                return SessionEnd::ServerShutdown;
            }
        }
    }
}

/// The ticks a session found waiting when it woke.
#[derive(Debug, Default)]
struct Ready {
    /// Oldest first.
    ticks: Vec<Arc<StockUpdate>>,
    /// Ticks the broadcast dropped before this session read them.
    missed: u64,
    /// The hub is gone: after what is here, nothing more comes.
    closed: bool,
}

/// The tick `recv` gave, and every tick already waiting behind it.
fn drain_ready(
    first: Result<Arc<StockUpdate>, RecvError>,
    updates: &mut broadcast::Receiver<Arc<StockUpdate>>,
) -> Ready {
    let mut ready = Ready::default();
    let mut next = first.map_err(|error| match error {
        RecvError::Lagged(missed) => TryRecvError::Lagged(missed),
        RecvError::Closed => TryRecvError::Closed,
    });
    loop {
        match next {
            Ok(update) => ready.ticks.push(update),
            Err(TryRecvError::Lagged(missed)) => ready.missed += missed,
            Err(TryRecvError::Empty) => return ready,
            Err(TryRecvError::Closed) => {
                ready.closed = true;
                return ready;
            }
        }
        next = updates.try_recv();
    }
}

/// The products of one tick this session watches: a lookup per watched product when it
/// watches fewer products than the tick carries, a scan otherwise.
fn entries_for<'a>(
    update: &'a StockUpdate,
    watched: Option<&HashSet<i64>>,
) -> Vec<&'a ProductStock> {
    match watched {
        None => update.entries.iter().collect(),
        Some(watched) if watched.len() < update.entries.len() => watched
            .iter()
            .filter_map(|&product_id| update.get(product_id))
            .collect(),
        Some(watched) => update
            .entries
            .iter()
            .filter(|entry| watched.contains(&entry.product_id))
            .collect(),
    }
}

/// The frames for ticks (oldest first) this session watches: one per product, its value
/// from the newest tick that carries it. The text of each is the hub's, made once per tick
/// for every client.
fn merged_frames(ticks: &[&StockUpdate], watched: Option<&HashSet<i64>>) -> Vec<Message> {
    let frame = |entry: &ProductStock| Message::Text(entry.json.clone());
    match ticks {
        [] => Vec::new(),
        [update] => entries_for(update, watched)
            .into_iter()
            .map(frame)
            .collect(),
        ticks => {
            let mut latest: BTreeMap<i64, &ProductStock> = BTreeMap::new();
            for update in ticks {
                for entry in entries_for(update, watched) {
                    latest.insert(entry.product_id, entry);
                }
            }
            latest.into_values().map(frame).collect()
        }
    }
}

async fn send_values<S>(
    sink: &mut S,
    hub: &Hub,
    values: &[(i64, i64)],
    settings: &WsSettings,
) -> bool
where
    S: Sink<Message> + Unpin,
    S::Error: Display,
{
    let frames = values
        .iter()
        .map(|&(product_id, available)| {
            Message::text(crate::hub::stock_json(product_id, available))
        })
        .collect();
    send_frames(sink, hub, frames, settings).await
}

/// Writes frames and flushes once, within `send_timeout`; false when the client is not
/// taking them (and the session must end).
async fn send_frames<S>(
    sink: &mut S,
    hub: &Hub,
    frames: Vec<Message>,
    settings: &WsSettings,
) -> bool
where
    S: Sink<Message> + Unpin,
    S::Error: Display,
{
    if frames.is_empty() {
        return true;
    }
    let stock_frames = frames.iter().filter(|frame| frame.is_text()).count();
    let write = async {
        for frame in frames {
            sink.feed(frame).await?;
        }
        sink.flush().await
    };
    match tokio::time::timeout(settings.send_timeout, write).await {
        Ok(Ok(())) => {
            hub.count_sent(stock_frames);
            true
        }
        Ok(Err(error)) => {
            tracing::debug!(%error, "ws: write failed");
            false
        }
        Err(_) => {
            tracing::debug!("ws: client not reading; dropped");
            false
        }
    }
}

async fn flush<S>(sink: &mut S, settings: &WsSettings) -> bool
where
    S: Sink<Message> + Unpin,
{
    matches!(
        tokio::time::timeout(settings.send_timeout, sink.flush()).await,
        Ok(Ok(()))
    )
}

/// Sends a close frame, best effort (the session ends either way).
async fn close<S>(sink: &mut S, code: CloseCode, reason: &str)
where
    S: Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::hub::tests::{FakeEngine, manual_hub};
    use futures::channel::mpsc;
    use tokio_tungstenite::tungstenite::error::CapacityError;

    /// A session on channels: what the test sends arrives as client frames; what the session
    /// writes, the test reads.
    struct Client {
        to_server: mpsc::UnboundedSender<Result<Message, WsError>>,
        from_server: mpsc::Receiver<Message>,
        session: tokio::task::JoinHandle<SessionEnd>,
    }

    fn connect(hub: &Hub, settings: WsSettings, outgoing_capacity: usize) -> Client {
        let (to_server, mut incoming) = mpsc::unbounded();
        let (mut outgoing, from_server) = mpsc::channel(outgoing_capacity);
        let hub = hub.clone();
        let session = tokio::spawn(async move {
            run_session(&mut outgoing, &mut incoming, &hub, &settings).await
        });
        Client {
            to_server,
            from_server,
            session,
        }
    }

    impl Client {
        fn send(&self, text: &str) {
            self.to_server
                .unbounded_send(Ok(Message::text(text)))
                .unwrap();
        }

        async fn next(&mut self) -> Message {
            tokio::time::timeout(Duration::from_secs(5), self.from_server.next())
                .await
                .expect("a frame within 5 s")
                .expect("the session is still writing")
        }

        /// The next stock frame as (product, available).
        async fn next_stock(&mut self) -> (i64, i64) {
            let message = self.next().await;
            let text = message.to_text().unwrap();
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            (
                value["product_id"].as_i64().unwrap(),
                value["available"].as_i64().unwrap(),
            )
        }

        async fn next_stocks(&mut self, count: usize) -> Vec<(i64, i64)> {
            let mut frames = Vec::new();
            for _ in 0..count {
                frames.push(self.next_stock().await);
            }
            frames.sort_unstable();
            frames
        }

        fn assert_quiet(&mut self) {
            assert!(
                self.from_server.try_recv().is_err(),
                "no frame expected now"
            );
        }

        async fn close_code(&mut self) -> CloseCode {
            match self.next().await {
                Message::Close(Some(frame)) => frame.code,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }

        async fn end(self) -> SessionEnd {
            tokio::time::timeout(Duration::from_secs(5), self.session)
                .await
                .expect("the session ends within 5 s")
                .unwrap()
        }
    }

    /// Lets the session task run until it waits again.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn before_subscribing_a_client_receives_every_products_changes() {
        let hub = manual_hub(None, 16);
        let mut client = connect(&hub, WsSettings::default(), 64);
        settle().await;
        hub.record_event(1, 10);
        hub.record_event(2, 20);
        hub.tick_now();
        assert_eq!(client.next_stocks(2).await, vec![(1, 10), (2, 20)]);
    }

    #[tokio::test]
    async fn subscribe_sends_current_values_then_only_the_watched_products() {
        // 3 is known only to the engine; 99 was never loaded.
        let engine = FakeEngine::new(&[(3, 30)]);
        let hub = manual_hub(Some(engine), 16);
        hub.record_event(1, 10);
        hub.record_event(2, 20);
        hub.tick_now();
        let mut client = connect(&hub, WsSettings::default(), 64);
        settle().await;

        client.send(r#"{"subscribe":[3,1,99,1]}"#);
        assert_eq!(client.next_stocks(2).await, vec![(1, 10), (3, 30)]);
        settle().await;
        client.assert_quiet();

        hub.record_event(1, 9);
        hub.record_event(2, 19);
        hub.tick_now();
        assert_eq!(client.next_stock().await, (1, 9));
        hub.record_event(2, 18);
        hub.record_event(3, 29);
        hub.tick_now();
        assert_eq!(client.next_stock().await, (3, 29));
        settle().await;
        client.assert_quiet();

        // A new subscribe replaces the set.
        client.send(r#"{"subscribe":[2]}"#);
        assert_eq!(client.next_stock().await, (2, 18));
        hub.record_event(1, 8);
        hub.record_event(2, 17);
        hub.tick_now();
        assert_eq!(client.next_stock().await, (2, 17));
        settle().await;
        client.assert_quiet();
    }

    #[tokio::test]
    async fn ticks_older_than_the_subscribe_snapshot_are_not_replayed() {
        let hub = manual_hub(None, 16);
        let mut client = connect(&hub, WsSettings::default(), 64);
        settle().await;
        // A tick the session has not read yet when the subscribe's snapshot is taken.
        hub.record_event(1, 10);
        hub.tick_now();
        hub.record_event(1, 9);
        client.send(r#"{"subscribe":[1]}"#);
        // The tick (1 → 10) may arrive before the subscribe is read; after it, only newer
        // values, ending on 9.
        let mut last = client.next_stock().await;
        if last == (1, 10) {
            last = client.next_stock().await;
        }
        assert_eq!(last, (1, 9));
        hub.tick_now();
        // The pending 9 goes out with the tick (harmless repeat); never 10 again.
        assert_eq!(client.next_stock().await, (1, 9));
        settle().await;
        client.assert_quiet();
    }

    #[tokio::test]
    async fn a_lagging_client_skips_to_the_latest_values() {
        // Room for 2 ticks in the broadcast and 1 frame in the client's pipe: a client that
        // does not read falls behind at once.
        let hub = manual_hub(None, 2);
        let mut client = connect(&hub, WsSettings::default(), 1);
        settle().await;
        client.send(r#"{"subscribe":[1,2]}"#);
        settle().await;
        for available in (50..100).rev() {
            hub.record_event(1, available);
            if available % 10 == 0 {
                hub.record_event(2, available);
            }
            hub.tick_now();
            settle().await;
        }
        hub.record_event(3, 7);
        hub.tick_now();

        // Read everything the session sends; the last value of each product must be the
        // latest, even though most ticks were never delivered.
        let mut last: std::collections::HashMap<i64, i64> = Default::default();
        let mut frames = 0;
        loop {
            let next = tokio::time::timeout(Duration::from_millis(300), client.next_stock()).await;
            let Ok((product, available)) = next else {
                break;
            };
            frames += 1;
            last.insert(product, available);
        }
        assert_eq!(last.get(&1), Some(&50));
        assert_eq!(last.get(&2), Some(&50));
        assert_eq!(last.get(&3), None, "3 is not watched");
        assert!(
            frames < 50,
            "missed ticks are not replayed: {frames} frames"
        );
        assert!(hub.updates_dropped() > 0);
        assert!(hub.lag_resyncs() > 0);
    }

    /// A socket that records what each flush wrote: one entry per write a real socket makes.
    struct RecordingSink {
        pending: Vec<Message>,
        writes: Arc<std::sync::Mutex<Vec<Vec<Message>>>>,
    }

    impl Sink<Message> for RecordingSink {
        type Error = std::convert::Infallible;

        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn start_send(self: std::pin::Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            self.get_mut().pending.push(item);
            Ok(())
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            let this = self.get_mut();
            if !this.pending.is_empty() {
                let write = std::mem::take(&mut this.pending);
                this.writes.lock().unwrap().push(write);
            }
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            self.poll_flush(cx)
        }
    }

    /// A session writing to a [`RecordingSink`]: the sender of client frames, the writes.
    type Recorded = (
        mpsc::UnboundedSender<Result<Message, WsError>>,
        Arc<std::sync::Mutex<Vec<Vec<Message>>>>,
    );

    fn connect_recorded(hub: &Hub) -> Recorded {
        let (to_server, mut incoming) = mpsc::unbounded();
        let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut sink = RecordingSink {
            pending: Vec::new(),
            writes: writes.clone(),
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            run_session(&mut sink, &mut incoming, &hub, &WsSettings::default()).await
        });
        (to_server, writes)
    }

    /// The writes since the last call, each as its frames' (product, available); every frame
    /// must be exactly one `{"product_id":…,"available":…}` object.
    fn take_writes(writes: &std::sync::Mutex<Vec<Vec<Message>>>) -> Vec<Vec<(i64, i64)>> {
        std::mem::take(&mut *writes.lock().unwrap())
            .into_iter()
            .map(|write| {
                write
                    .iter()
                    .map(|frame| {
                        let text = frame.to_text().unwrap();
                        let value: serde_json::Value = serde_json::from_str(text).unwrap();
                        let (product_id, available) = (
                            value["product_id"].as_i64().unwrap(),
                            value["available"].as_i64().unwrap(),
                        );
                        assert_eq!(text, crate::hub::stock_json(product_id, available));
                        (product_id, available)
                    })
                    .collect()
            })
            .collect()
    }

    #[tokio::test]
    async fn ticks_waiting_together_go_out_in_one_write_with_the_latest_value_per_product() {
        let hub = manual_hub(None, 16);
        let (_to_server, writes) = connect_recorded(&hub);
        settle().await;
        // Three ticks before the session runs again, as when the edge is busy.
        hub.record_event(1, 10);
        hub.record_event(2, 20);
        hub.tick_now();
        hub.record_event(1, 9);
        hub.tick_now();
        hub.record_event(3, 30);
        hub.record_event(1, 8);
        hub.tick_now();
        settle().await;
        assert_eq!(take_writes(&writes), vec![vec![(1, 8), (2, 20), (3, 30)]]);
        assert_eq!(hub.messages_sent(), 3);

        // A session that keeps up writes each tick as it comes.
        hub.record_event(2, 19);
        hub.tick_now();
        settle().await;
        hub.record_event(2, 18);
        hub.tick_now();
        settle().await;
        assert_eq!(take_writes(&writes), vec![vec![(2, 19)], vec![(2, 18)]]);
    }

    #[tokio::test]
    async fn a_subscribed_session_merges_only_its_products_and_skips_what_its_snapshot_sent() {
        let hub = manual_hub(None, 16);
        hub.record_event(1, 10);
        hub.record_event(2, 20);
        hub.tick_now();
        let (to_server, writes) = connect_recorded(&hub);
        settle().await;
        to_server
            .unbounded_send(Ok(Message::text(r#"{"subscribe":[1,3]}"#)))
            .unwrap();
        settle().await;
        assert_eq!(take_writes(&writes), vec![vec![(1, 10)]]);

        hub.record_event(1, 9);
        hub.record_event(2, 19);
        hub.tick_now();
        hub.record_event(2, 18);
        hub.tick_now();
        hub.record_event(3, 30);
        hub.record_event(1, 8);
        hub.tick_now();
        hub.record_event(1, 7);
        hub.tick_now();
        settle().await;
        assert_eq!(take_writes(&writes), vec![vec![(1, 7), (3, 30)]]);
        // Ticks that carry none of its products write nothing.
        hub.record_event(2, 17);
        hub.tick_now();
        settle().await;
        assert!(take_writes(&writes).is_empty());
    }

    #[test]
    fn merging_keeps_one_frame_per_product_with_its_newest_value() {
        let tick = |tick: u64, values: &[(i64, i64)]| StockUpdate {
            tick,
            entries: values
                .iter()
                .map(|&(product_id, available)| ProductStock::new(product_id, available))
                .collect(),
        };
        let first = tick(1, &[(1, 10), (2, 20), (5, 50)]);
        let second = tick(2, &[(2, 19)]);
        let third = tick(3, &[(1, 9), (2, 18)]);
        let texts = |frames: Vec<Message>| -> Vec<String> {
            frames
                .iter()
                .map(|frame| frame.to_text().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            texts(merged_frames(&[&first, &second, &third], None)),
            vec![
                r#"{"product_id":1,"available":9}"#,
                r#"{"product_id":2,"available":18}"#,
                r#"{"product_id":5,"available":50}"#,
            ]
        );
        let watched: HashSet<i64> = [2, 5].into();
        assert_eq!(
            texts(merged_frames(&[&first, &second], Some(&watched))),
            vec![
                r#"{"product_id":2,"available":19}"#,
                r#"{"product_id":5,"available":50}"#,
            ]
        );
        // A single tick: its entries as they are, each a plain object.
        assert_eq!(
            texts(merged_frames(&[&second], None)),
            vec![r#"{"product_id":2,"available":19}"#]
        );
        assert!(merged_frames(&[], None).is_empty());
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
        let hub = manual_hub(None, 4);
        let settings = WsSettings {
            send_timeout: Duration::from_millis(100),
            ..WsSettings::default()
        };
        let client = connect(&hub, settings, 1);
        settle().await;
        for available in 0..10 {
            hub.record_event(available, available);
            hub.tick_now();
            settle().await;
        }
        assert_eq!(client.end().await, SessionEnd::SendFailed);
    }

    #[tokio::test]
    async fn garbage_and_oversized_subscribes_close_with_policy_violation() {
        let hub = manual_hub(None, 16);
        for text in [
            "hello",
            r#"{"subscribe":"14"}"#,
            r#"{"subscribe":[1.5]}"#,
            r#"{"subscribe":[0]}"#,
            r#"{"subscribe":[1],"also":2}"#,
        ] {
            let mut client = connect(&hub, WsSettings::default(), 64);
            client.send(text);
            assert_eq!(client.close_code().await, CloseCode::Policy, "{text}");
            assert_eq!(client.end().await, SessionEnd::PolicyViolation);
        }
        let settings = WsSettings {
            max_subscribe_ids: 3,
            ..WsSettings::default()
        };
        let mut client = connect(&hub, settings, 64);
        client.send(r#"{"subscribe":[1,2,3,4]}"#);
        assert_eq!(client.close_code().await, CloseCode::Policy);
    }

    #[tokio::test]
    async fn binary_frames_close_with_unsupported_data() {
        let hub = manual_hub(None, 16);
        let mut client = connect(&hub, WsSettings::default(), 64);
        client
            .to_server
            .unbounded_send(Ok(Message::binary(vec![1, 2, 3])))
            .unwrap();
        assert_eq!(client.close_code().await, CloseCode::Unsupported);
        assert_eq!(client.end().await, SessionEnd::UnsupportedData);
    }

    #[tokio::test]
    async fn an_oversized_message_closes_with_1009() {
        let hub = manual_hub(None, 16);
        let mut client = connect(&hub, WsSettings::default(), 64);
        let too_long = CapacityError::MessageTooLong {
            size: 5000,
            max_size: 4096,
        };
        client
            .to_server
            .unbounded_send(Err(WsError::Capacity(too_long)))
            .unwrap();
        assert_eq!(client.close_code().await, CloseCode::Size);
        assert_eq!(client.end().await, SessionEnd::MessageTooBig);
    }

    #[tokio::test]
    async fn a_client_close_ends_the_session() {
        let hub = manual_hub(None, 16);
        let client = connect(&hub, WsSettings::default(), 64);
        client
            .to_server
            .unbounded_send(Ok(Message::Close(None)))
            .unwrap();
        assert_eq!(client.end().await, SessionEnd::ClosedByClient);
    }

    #[tokio::test]
    async fn shutdown_closes_sessions_with_going_away() {
        let hub = manual_hub(None, 16);
        let mut client = connect(&hub, WsSettings::default(), 64);
        settle().await;
        hub.shutdown();
        assert_eq!(client.close_code().await, CloseCode::Away);
        assert_eq!(client.end().await, SessionEnd::ServerShutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_pinged_then_dropped() {
        let hub = manual_hub(None, 16);
        let settings = WsSettings {
            heartbeat: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            ..WsSettings::default()
        };
        let mut client = connect(&hub, settings, 64);
        // Paused time jumps to the next timer, so no timeouts here: they would fire first.
        assert!(matches!(
            client.from_server.next().await,
            Some(Message::Ping(_))
        ));
        assert!(matches!(
            client.from_server.next().await,
            Some(Message::Ping(_))
        ));
        assert_eq!(client.session.await.unwrap(), SessionEnd::Idle);
    }

    fn handshake(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/ws/catalog");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    const UPGRADE_HEADERS: [(&str, &str); 5] = [
        ("host", "127.0.0.1:8000"),
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn a_proper_handshake_gets_the_rfc_accept_key() {
        let req = handshake(&UPGRADE_HEADERS);
        // The example of RFC 6455 §1.3.
        assert_eq!(
            check_handshake(&req, &WsSettings::default()).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn requests_that_are_not_upgrades_get_400() {
        let settings = WsSettings::default();
        for drop in [
            "connection",
            "upgrade",
            "sec-websocket-version",
            "sec-websocket-key",
        ] {
            let headers: Vec<_> = UPGRADE_HEADERS
                .iter()
                .copied()
                .filter(|(name, _)| *name != drop)
                .collect();
            let refusal = check_handshake(&handshake(&headers), &settings).unwrap_err();
            assert_eq!(refusal.status(), StatusCode::BAD_REQUEST, "without {drop}");
        }
        let mut headers = UPGRADE_HEADERS.to_vec();
        headers[4] = ("sec-websocket-key", "c2hvcnQ=");
        let refusal = check_handshake(&handshake(&headers), &settings).unwrap_err();
        assert_eq!(refusal.status(), StatusCode::BAD_REQUEST);
        let mut headers = UPGRADE_HEADERS.to_vec();
        headers[3] = ("sec-websocket-version", "8");
        let refusal = check_handshake(&handshake(&headers), &settings).unwrap_err();
        assert_eq!(refusal.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }

    #[test]
    fn a_foreign_origin_gets_403_and_an_allowed_one_passes() {
        let settings = WsSettings::default();
        let with_origin = |origin: &str| {
            let mut headers = UPGRADE_HEADERS.to_vec();
            headers.push(("origin", origin));
            check_handshake(&handshake(&headers), &settings)
        };
        assert!(with_origin("http://localhost:8000").is_ok());
        let refusal = with_origin("https://evil.example").unwrap_err();
        assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn origin_rules() {
        let allowed = WsSettings::default().allowed_origins;
        let value = |text: &str| HeaderValue::from_str(text).unwrap();
        let check = |origin: Option<&str>, host: Option<&str>| {
            origin_allowed(
                origin.map(value).as_ref(),
                host.map(value).as_ref(),
                &allowed,
            )
        };
        // No Origin: not a browser.
        assert!(check(None, Some("shop.example")));
        assert!(check(Some("http://127.0.0.1:8000"), Some("127.0.0.1:8000")));
        assert!(check(Some("HTTP://LOCALHOST:8000"), None));
        // Same host as the request, default ports either way.
        assert!(check(Some("https://shop.example"), Some("shop.example")));
        assert!(check(
            Some("https://shop.example"),
            Some("shop.example:443")
        ));
        assert!(check(
            Some("http://shop.example:8080"),
            Some("Shop.Example:8080")
        ));
        assert!(!check(
            Some("http://shop.example:8080"),
            Some("shop.example")
        ));
        assert!(!check(Some("https://evil.example"), Some("shop.example")));
        assert!(!check(Some("null"), Some("shop.example")));
        assert!(!check(
            Some("http://user@shop.example"),
            Some("shop.example")
        ));
        assert!(!check(
            Some("http://127.0.0.1:8001"),
            Some("127.0.0.1:8000")
        ));
    }

    #[test]
    fn subscribe_parsing() {
        assert_eq!(
            parse_subscribe(r#"{"subscribe":[3,1,3]}"#, 200),
            Ok(vec![1, 3])
        );
        assert_eq!(parse_subscribe(r#"{"subscribe":[]}"#, 200), Ok(vec![]));
        assert!(parse_subscribe(r#"{"subscribe":[9007199254740992]}"#, 200).is_err());
        assert!(parse_subscribe(r#"{"subscribe":[-1]}"#, 200).is_err());
        assert!(parse_subscribe("[1,2]", 200).is_err());
        assert!(parse_subscribe(r#"{"subscribe":[1,2,3]}"#, 2).is_err());
    }
}
