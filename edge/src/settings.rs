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
    /// Open connections (HTTP and WebSocket) the process accepts at once.
    #[arg(long, env = "FLASH_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// How long a catalog page may be served from memory, in milliseconds.
    #[arg(long, env = "FLASH_CATALOG_TTL_MS", default_value_t = 2_000)]
    pub catalog_ttl_ms: u64,
    /// Database connections the edge's pool keeps (the embedded worker has its own).
    #[arg(long, env = "FLASH_DB_POOL", default_value_t = 8)]
    pub db_pool: usize,
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
