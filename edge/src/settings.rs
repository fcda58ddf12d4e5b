//! The edge's settings: flags, each with an environment variable (and `.env`, read by main).

use std::net::SocketAddr;
use std::time::Duration;

/// Everything `flash edge` takes.
#[derive(Clone, Debug, clap::Args)]
pub struct EdgeSettings {
    /// Where to listen.
    #[arg(long, env = "FLASH_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The sale this edge serves.
    #[arg(long, env = "FLASH_SALE", default_value = "demo")]
    pub sale: String,
    /// The key that signs session tokens (at least 32 bytes). Without it a random key is made
    /// at start: fine for development, but sessions then die with the process and cannot be
    /// shared by several edges.
    #[arg(long, env = "FLASH_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Who may sign in, and how: the shop's login (JWTs), the demo login (a name alone).
    #[command(flatten)]
    pub login: LoginSettings,
    /// How long a session token stays valid, in seconds.
    #[arg(long, env = "FLASH_SESSION_TTL", default_value_t = 86_400)]
    pub session_ttl_secs: u64,
    /// Do not run the order worker in this process (separate `flash worker`s run instead).
    #[arg(long, env = "FLASH_NO_WORKER")]
    pub no_worker: bool,
    /// The embedded worker's settings, the same flags as `flash worker`'s.
    #[command(flatten)]
    pub worker: flash_worker::settings::WorkerSettings,
    /// The embedded worker's name in the consumer group (default: `edge-<host>-<pid>`).
    /// A flag only, never the environment: a `FLASH_CONSUMER` shared with a `flash worker`
    /// would put two processes under one name.
    #[arg(long)]
    pub consumer: Option<String>,
    /// Reverse proxies in front of the edge (CIDRs, comma-separated): for their requests the
    /// client is read from `X-Forwarded-For`, and their connections are not capped per
    /// address. Without it the header is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "FLASH_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Requests per second allowed per client IP (burst: twice that); 0 turns the limit off.
    #[arg(long, env = "FLASH_RATE_PER_IP", default_value_t = 100)]
    pub rate_per_ip: u32,
    /// Cart and order calls per second allowed per signed-in user (burst: twice that); 0
    /// turns the limit off.
    #[arg(long, env = "FLASH_RATE_PER_USER", default_value_t = 10)]
    pub rate_per_user: u32,
    /// Browser origins allowed to open the stock WebSocket and to write with the session
    /// cookie, comma-separated (an origin with the request's own host is always allowed).
    #[arg(
        long,
        env = "FLASH_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8000,http://localhost:8000"
    )]
    pub allowed_origins: Vec<String>,
    /// Open WebSockets allowed per client IP.
    #[arg(long, env = "FLASH_WS_PER_IP", default_value_t = 32)]
    pub ws_per_ip: usize,
    /// How often the waiting page's WebSocket (`/ws/queue`) pushes the shopper's place, in
    /// milliseconds. Each push is one FLASH.POSITION, which also keeps the place: stay well
    /// under the sale's IDLE.
    #[arg(long, env = "FLASH_QUEUE_POLL_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub queue_poll_ms: u64,
    /// Open connections (HTTP and WebSocket) the process accepts at once.
    #[arg(long, env = "FLASH_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Per-connection limits: connections per address, timeouts, the header buffer.
    #[command(flatten)]
    pub connections: ConnectionSettings,
    /// How long a catalog page may be served from memory, in milliseconds.
    #[arg(long, env = "FLASH_CATALOG_TTL_MS", default_value_t = 2_000)]
    pub catalog_ttl_ms: u64,
    /// Database connections the edge's pool keeps (the embedded worker has its own).
    #[arg(long, env = "FLASH_DB_POOL", default_value_t = 8)]
    pub db_pool: usize,
    /// With `--durability replica` (a flag of the worker's settings, above: it rules the
    /// embedded worker too): connections kept for durable writes, at most this many waiting
    /// for a replica at once.
    #[arg(long, env = "FLASH_DURABILITY_CONNECTIONS", default_value_t = 32)]
    pub durability_connections: usize,
}

pub use flash_worker::settings::DurabilityMode;

/// How shoppers sign in (README, "Signing in").
#[derive(Clone, Debug, Default, clap::Args)]
pub struct LoginSettings {
    /// The demo login: `POST /session {"username": …}` signs in as anyone, with no password.
    /// For trying Flash out (`flash up` turns it on); never on a shop's public edge.
    #[arg(long, env = "FLASH_DEMO_LOGIN")]
    pub demo_login: bool,
    /// The shop's login, HS256: the secret its identity provider signs tokens with (at least
    /// 32 bytes).
    #[arg(long, env = "FLASH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// The shop's login, RS256 and ES256: a JWKS file with its identity provider's public keys.
    #[arg(long, env = "FLASH_JWT_JWKS")]
    pub jwt_jwks: Option<std::path::PathBuf>,
    /// The issuer (`iss`) every shop token must name.
    #[arg(long, env = "FLASH_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The audience (`aud`) every shop token must name: this shop's Flash.
    #[arg(long, env = "FLASH_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// The shop's sign-in page, where the UI sends a shopper (with `return_to`, the page to
    /// come back to); the shop sends them back with its token after `#token=`.
    #[arg(long, env = "FLASH_SHOP_LOGIN_URL")]
    pub shop_login_url: Option<String>,
}

/// What one client may hold of the edge: open connections per address, how long a request
/// may take to arrive, how long a keep-alive connection may sit idle, how big the headers.
/// Without these a client that opens sockets and sends nothing, or half a request, holds a
/// descriptor and buffers for as long as it likes.
#[derive(Clone, Debug, clap::Args)]
pub struct ConnectionSettings {
    /// Open connections (HTTP and WebSocket) per client address (per /64 for IPv6), checked
    /// when a connection is accepted; 0 turns the cap off.
    #[arg(long, env = "FLASH_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub connections_per_ip: usize,
    /// A request's line and headers must arrive within this many milliseconds: of the
    /// connection's opening for its first request, of their first byte for later ones.
    #[arg(long, env = "FLASH_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// A request's body must arrive, and its reply be ready, within this many milliseconds
    /// of its headers; after it the reply is 408 and the connection closes.
    #[arg(long, env = "FLASH_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// A keep-alive connection that sends nothing for this many milliseconds after a reply
    /// is closed.
    #[arg(long, env = "FLASH_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// After the 101 reply, a WebSocket upgrade must complete within this many milliseconds.
    #[arg(long, env = "FLASH_WS_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000)]
    pub ws_handshake_timeout_ms: u64,
    /// The largest request line plus headers, in bytes (431 beyond); also the bound of a
    /// connection's read buffer (at least 8 KiB).
    #[arg(long, env = "FLASH_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,
}

impl Default for ConnectionSettings {
    /// The flags' defaults.
    fn default() -> ConnectionSettings {
        ConnectionSettings {
            connections_per_ip: 256,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            ws_handshake_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl ConnectionSettings {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    pub fn ws_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.ws_handshake_timeout_ms)
    }
}

impl EdgeSettings {
    pub fn catalog_ttl(&self) -> Duration {
        Duration::from_millis(self.catalog_ttl_ms)
    }
}

/// Request bodies above this get 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A catalog page holds at most this many products.
pub const MAX_PAGE: usize = 60;
