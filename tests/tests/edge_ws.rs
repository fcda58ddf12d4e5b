//! The stock WebSocket end to end: a real redis-server with the module, the hub subscribed
//! to it, `flash_edge::ws::upgrade` served by a bare hyper server on a free port, and
//! tokio-tungstenite clients.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flash_client::{FlashClient, SaleSettings};
use flash_core::StockEvent;
use flash_core::keys::SaleKeys;
use flash_edge::hub::{Hub, HubSettings};
use flash_edge::ws::{WsSettings, upgrade};
use flash_tests::{RedisServer, ServerOptions, ShardSubscriber, module_path};
use futures::{SinkExt, StreamExt};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SALE: &str = "spring";

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Redis with the module, a loaded sale (SKU 14: 10 units, SKU 7: 5), the hub, and an HTTP
/// server answering every request with `ws::upgrade`.
struct Edge {
    _redis: RedisServer,
    engine: FlashClient,
    hub: Hub,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Edge {
    async fn start(ws: WsSettings, hub_settings: HubSettings) -> Edge {
        let redis = RedisServer::start(ServerOptions {
            module: Some(module_path().expect("the module is built")),
            ..ServerOptions::default()
        })
        .expect("redis-server starts");
        let engine = FlashClient::connect(&redis.url()).await.unwrap();
        engine.sale(SALE, &SaleSettings::default()).await.unwrap();
        // The module announces stock changes a few ms later (coalesced): the load's must be
        // out before the hub listens, or the tests would see them as changes.
        let mut probe = ShardSubscriber::start(&redis.client(), &SaleKeys::new(SALE).channel())
            .await
            .unwrap();
        engine.load(SALE, &[(14, 10), (7, 5)]).await.unwrap();
        let mut announced = Vec::new();
        while announced.len() < 2 {
            let message = probe
                .next(Duration::from_secs(5))
                .await
                .expect("the load announced within 5 s");
            announced.push(StockEvent::parse(message.as_bytes()).unwrap());
        }
        drop(probe);
        let hub = Hub::start_with(&redis.url(), SALE, engine.clone(), hub_settings)
            .await
            .unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ws = Arc::new(ws);
        let server_hub = hub.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let hub = server_hub.clone();
                let ws = ws.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let response = upgrade(req, peer.ip(), &hub, &ws);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Edge {
            _redis: redis,
            engine,
            hub,
            addr,
            server,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws/catalog", self.addr)
    }

    async fn connect(&self) -> Client {
        let (client, response) = tokio_tungstenite::connect_async(self.url()).await.unwrap();
        assert_eq!(response.status(), 101);
        client
    }

    /// A handshake written by hand; the status, the head and the body (by Content-Length:
    /// after a 101 the connection stays open, so reading to the end would never end).
    async fn raw_handshake(&self, extra_headers: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "GET /ws/catalog HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let read = async {
            let mut reply = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let text = String::from_utf8_lossy(&reply).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                        return (status, head.to_owned(), body.to_owned());
                    }
                }
                let n = stream.read(&mut buffer).await.unwrap();
                assert!(n > 0, "connection closed mid-reply: {text}");
                reply.extend_from_slice(&buffer[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("a reply within 5 s")
    }
}

/// The next stock frame, as (product, available); pings and pongs are skipped.
async fn next_stock(client: &mut Client) -> (i64, i64) {
    loop {
        match next_message(client).await {
            Message::Text(text) => {
                let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                return (
                    value["product_id"].as_i64().unwrap(),
                    value["available"].as_i64().unwrap(),
                );
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a stock frame, got {other:?}"),
        }
    }
}

async fn next_message(client: &mut Client) -> Message {
    tokio::time::timeout(Duration::from_secs(5), client.next())
        .await
        .expect("a frame within 5 s")
        .expect("the socket is open")
        .unwrap()
}

/// Pings and waits for the pong: the session is running (and listening to the hub).
async fn ping_pong(client: &mut Client) {
    client
        .send(Message::Ping(b"sync".to_vec().into()))
        .await
        .unwrap();
    loop {
        match next_message(client).await {
            Message::Pong(payload) => {
                assert_eq!(&payload[..], b"sync");
                return;
            }
            Message::Text(_) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

/// Frames that arrive within `wait` (stock frames only).
async fn frames_within(client: &mut Client, wait: Duration) -> Vec<(i64, i64)> {
    let mut frames = Vec::new();
    while let Ok(frame) = tokio::time::timeout(wait, next_stock(client)).await {
        frames.push(frame);
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_reaches_every_client_watching_the_product() {
    let edge = Edge::start(WsSettings::default(), HubSettings::default()).await;
    // `watcher` subscribes to 14 only; `everything` never subscribes: it gets every change.
    let mut watcher = edge.connect().await;
    let mut everything = edge.connect().await;
    watcher
        .send(Message::text(r#"{"subscribe":[14]}"#))
        .await
        .unwrap();
    assert_eq!(next_stock(&mut watcher).await, (14, 10));
    ping_pong(&mut everything).await;
    assert_eq!(edge.hub.clients(), 2);

    let reservation = edge
        .engine
        .reserve(SALE, "c1", "alice", 14, 2)
        .await
        .unwrap();
    assert_eq!(reservation.available, 8);
    assert_eq!(next_stock(&mut watcher).await, (14, 8));
    assert_eq!(next_stock(&mut everything).await, (14, 8));

    edge.engine.reserve(SALE, "c2", "bob", 7, 1).await.unwrap();
    assert_eq!(next_stock(&mut everything).await, (7, 4));
    assert!(
        frames_within(&mut watcher, Duration::from_millis(300))
            .await
            .is_empty(),
        "the watcher does not watch 7"
    );
    assert!(edge.hub.messages_sent() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reserves_ends_on_the_last_value_for_every_client() {
    let edge = Edge::start(WsSettings::default(), HubSettings::default()).await;
    let mut first = edge.connect().await;
    let mut second = edge.connect().await;
    for client in [&mut first, &mut second] {
        client
            .send(Message::text(r#"{"subscribe":[14]}"#))
            .await
            .unwrap();
        assert_eq!(next_stock(client).await, (14, 10));
    }
    for cart in 0..10 {
        edge.engine
            .reserve(SALE, &format!("c{cart}"), &format!("u{cart}"), 14, 1)
            .await
            .unwrap();
    }
    for client in [&mut first, &mut second] {
        let frames = frames_within(client, Duration::from_millis(500)).await;
        assert_eq!(frames.last(), Some(&(14, 0)), "{frames:?}");
        // Coalesced: 10 changes, fewer frames (the reserves run faster than the 50 ms tick).
        assert!(frames.len() < 10, "{frames:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_with_403_and_a_json_body() {
    let edge = Edge::start(WsSettings::default(), HubSettings::default()).await;
    let (status, _, body) = edge.raw_handshake("Origin: https://evil.example\r\n").await;
    assert_eq!(status, 403);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "FORBIDDEN");
    assert!(body["message"].is_string());

    // An allowed origin, and a page served under another hostname (Origin host == Host).
    let (status, head, _) = edge
        .raw_handshake("Origin: http://localhost:8000\r\n")
        .await;
    assert_eq!(status, 101);
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    let same_host = format!("Origin: http://{}\r\n", edge.addr);
    let (status, _, _) = edge.raw_handshake(&same_host).await;
    assert_eq!(status, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_closes_with_1009() {
    let edge = Edge::start(WsSettings::default(), HubSettings::default()).await;
    let mut client = edge.connect().await;
    client
        .send(Message::text("x".repeat(64 * 1024)))
        .await
        .unwrap();
    match next_message(&mut client).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // The slot is given back once the socket is gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while edge.hub.clients() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_per_address_cap_get_429_until_one_closes() {
    let ws = WsSettings {
        max_per_ip: 2,
        ..WsSettings::default()
    };
    let edge = Edge::start(ws, HubSettings::default()).await;
    let mut first = edge.connect().await;
    let _second = edge.connect().await;

    let (status, head, body) = edge.raw_handshake("").await;
    assert_eq!(status, 429);
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "RATE_LIMITED");

    // A clean close frees the slot.
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while edge.hub.clients() > 1 {
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut third = edge.connect().await;
    ping_pong(&mut third).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_missed_while_the_subscription_was_down_reach_clients_after_it_returns() {
    // A long first backoff, so the reserve below surely lands while the hub is away.
    let mut hub_settings = HubSettings::default();
    hub_settings.subscription.reconnect_min = Duration::from_millis(500);
    let edge = Edge::start(WsSettings::default(), hub_settings).await;
    let mut client = edge.connect().await;
    client
        .send(Message::text(r#"{"subscribe":[14]}"#))
        .await
        .unwrap();
    assert_eq!(next_stock(&mut client).await, (14, 10));

    let mut conn = edge.engine.connection();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while edge.hub.subscription_live() {
        assert!(tokio::time::Instant::now() < deadline, "drop not noticed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Published to nobody: the hub is between connections.
    edge.engine
        .reserve(SALE, "c1", "alice", 14, 3)
        .await
        .unwrap();

    assert_eq!(next_stock(&mut client).await, (14, 7));
    assert!(edge.hub.subscription_live());
    assert_eq!(edge.hub.reconnects(), 1);
    // And live messages flow again.
    edge.engine
        .reserve(SALE, "c1", "alice", 14, 1)
        .await
        .unwrap();
    assert_eq!(next_stock(&mut client).await, (14, 6));
}
