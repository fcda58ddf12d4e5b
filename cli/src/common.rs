//! What every tool needs: where Redis and PostgreSQL are, which sale; connecting to them
//! with errors that say what to do; and the signals that stop a long-running command.

use std::future::Future;

use anyhow::{Context, Result};
use flash_client::FlashClient;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_postgres::{Client, NoTls};

/// Where Redis and PostgreSQL are.
#[derive(Clone, Debug, clap::Args)]
pub struct Servers {
    /// The engine: redis-server with the Flash module, or a plain one (the Lua twin); a
    /// cluster as redis+cluster://host:port,host:port,….
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    /// PostgreSQL, e.g. postgres://flash@127.0.0.1:5432/flash.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

/// The servers and the sale a tool acts on.
#[derive(Clone, Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    pub servers: Servers,
    /// The default sale: it sells every product no sale of the catalog (`sales`,
    /// `sale_products`) lists, besides its own.
    #[arg(long, env = "FLASH_SALE", default_value = DEFAULT_SALE)]
    pub default_sale: String,
    /// The sale to act on (default: the default sale).
    #[arg(long)]
    pub sale: Option<String>,
}

/// The default sale's name when `FLASH_SALE` is not set.
pub const DEFAULT_SALE: &str = "demo";

impl Common {
    /// The servers, and `sale` as the default sale (the tools' settings before the catalog).
    pub fn new(servers: Servers, sale: &str) -> Common {
        Common {
            servers,
            default_sale: sale.to_owned(),
            sale: None,
        }
    }

    /// The sale to act on: `--sale`, else the default sale.
    pub fn sale(&self) -> &str {
        self.sale.as_deref().unwrap_or(&self.default_sale)
    }
}

/// `common.database()`, `common.redis_url`: the servers' settings and connections.
impl std::ops::Deref for Common {
    type Target = Servers;

    fn deref(&self) -> &Servers {
        &self.servers
    }
}

impl Servers {
    pub fn database_url(&self) -> Result<&str> {
        self.database_url.as_deref().context(
            "DATABASE_URL is not set: pass --database-url, or set it in the environment or \
             .env (`flash up` prints the one it runs)",
        )
    }

    pub async fn database(&self) -> Result<Client> {
        let url = self.database_url()?;
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {url}: is it running?"))?;
        tokio::spawn(connection);
        Ok(client)
    }

    pub async fn engine(&self) -> Result<FlashClient> {
        FlashClient::connect(&self.redis_url)
            .await
            .with_context(|| {
                format!(
                    "cannot reach Redis at {}: is redis-server running (`flash up` starts one)?",
                    self.redis_url
                )
            })
    }
}

/// Ctrl-C and SIGTERM, the signals that stop a long-running command: `docker stop` and
/// service managers send SIGTERM, and it stops cleanly as on Ctrl-C.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub fn new() -> Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot watch Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        })
    }

    /// The next one, by name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Resolves on the first Ctrl-C or SIGTERM (`flash worker` then finishes its batch in hand,
/// `flash edge` drains).
pub fn stop_signal() -> Result<impl Future<Output = ()>> {
    let mut signals = Signals::new()?;
    Ok(async move {
        signals.recv().await;
    })
}
