//! `WS /ws/catalog`: live stock in the browser.
//!
//! [`upgrade`] (in [`handshake`]) checks the handshake (a proper WebSocket upgrade, an
//! allowed `Origin`, the per-address connection cap), answers 101 and spawns one session
//! per client; [`run_session`] (in [`session`]) is that session, generic over any
//! `Sink`/`Stream` of messages so it is tested with channels. This file holds the protocol
//! and the endpoint's settings.
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

pub mod handshake;
pub mod session;

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use handshake::{check_handshake, origin_allowed, upgrade};
pub use session::{SessionEnd, run_session};

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
    /// How often `/ws/queue` pushes a waiting shopper's place (each push reads it from the
    /// engine, which is the shopper's sign of life: keep it well under the sale's IDLE).
    pub queue_poll: Duration,
    /// After the 101 reply, hyper must hand the socket over within this; until it does, a
    /// task waits for it holding one of the address's WebSocket places. A backstop: hyper
    /// hands it over once the 101 is written.
    pub handshake_timeout: Duration,
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
            handshake_timeout: Duration::from_secs(10),
            queue_poll: Duration::from_secs(2),
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
