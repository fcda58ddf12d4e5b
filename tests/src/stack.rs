//! A whole sale for a test: redis-server (with the module, or bare for the Lua twin) or a
//! Redis Cluster the test started ([`Stack::start_on`]), a PostgreSQL with a fresh database
//! holding a catalog, an open sale synced from it, and the edge (with its embedded worker)
//! serving on a free port in this process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use flash_client::{FlashClient, SaleSettings};
use flash_edge::settings::{ConnectionSettings, EdgeSettings, LoginSettings};
use flash_worker::settings::WorkerSettings;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

use crate::{PostgresServer, RedisCluster, RedisServer, ServerOptions, module_path};

/// Where the stack's Redis is: what `REDIS_URL` says to reach it.
pub trait RedisDeployment {
    fn redis_url(&self) -> String;
}

impl RedisDeployment for RedisServer {
    fn redis_url(&self) -> String {
        self.url()
    }
}

impl RedisDeployment for RedisCluster {
    fn redis_url(&self) -> String {
        RedisCluster::redis_url(self)
    }
}

/// One product of a test catalog: id, name, price in cents, stock.
pub type CatalogRow = (i64, &'static str, i64, i64);

pub struct StackOptions {
    pub catalog: Vec<CatalogRow>,
    /// The engine backend: the module (true) or the Lua twin on a bare server. (On a
    /// cluster given to [`Stack::start_on`], the cluster's nodes decide.)
    pub module: bool,
    pub sale: SaleSettings,
    /// Changes to the edge's settings (rate limits, the worker, …).
    pub edge: Box<dyn FnOnce(&mut EdgeSettings) + Send>,
}

impl Default for StackOptions {
    fn default() -> StackOptions {
        StackOptions {
            catalog: vec![
                (1, "Mechanical keyboard", 8900, 5),
                (2, "Wireless mouse", 2900, 3),
                (3, "27-inch monitor", 24900, 1),
            ],
            module: true,
            sale: SaleSettings::default(),
            edge: Box::new(|_| {}),
        }
    }
}

pub struct Stack<R = RedisServer> {
    pub redis: R,
    pub postgres: PostgresServer,
    pub database_url: String,
    pub sale: String,
    /// The edge's address.
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    edge: Option<JoinHandle<Result<()>>>,
}

impl Stack {
    pub async fn start(options: StackOptions) -> Result<Stack> {
        let redis = RedisServer::start(ServerOptions {
            module: if options.module {
                Some(module_path()?)
            } else {
                None
            },
            ..ServerOptions::default()
        })?;
        Stack::start_on(redis, options).await
    }
}

impl<R: RedisDeployment> Stack<R> {
    /// The stack on a Redis the caller started (a cluster, say); `options.module` is not
    /// looked at.
    pub async fn start_on(redis: R, options: StackOptions) -> Result<Stack<R>> {
        let postgres = PostgresServer::start()?;
        let database_url = postgres.create_database()?;
        let sale = "test-sale".to_owned();
        {
            let (mut pg, connection) = tokio_postgres::connect(&database_url, NoTls).await?;
            tokio::spawn(connection);
            flash_worker::migrate::migrate(&mut pg).await?;
            for (id, name, price, stock) in &options.catalog {
                pg.execute(
                    "INSERT INTO products (id, name, price_cents, stock) VALUES ($1, $2, $3, $4)",
                    &[id, name, price, stock],
                )
                .await?;
            }
            let engine = FlashClient::connect(&redis.redis_url()).await?;
            engine.sale(&sale, &options.sale).await?;
            flash_worker::stock::sync(&pg, &engine, &sale).await?;
        }
        let mut settings = EdgeSettings {
            listen: "127.0.0.1:0".parse()?,
            redis_url: redis.redis_url(),
            database_url: database_url.clone(),
            sale: sale.clone(),
            secret: Some("a test secret that is long enough to sign".to_owned()),
            // The tests sign in by name (the shop's login has tests of its own).
            login: LoginSettings {
                demo_login: true,
                ..LoginSettings::default()
            },
            session_ttl_secs: 3600,
            no_worker: false,
            worker: WorkerSettings::default(),
            consumer: None,
            trusted_proxies: Vec::new(),
            rate_per_ip: 0,
            rate_per_user: 0,
            allowed_origins: vec!["http://127.0.0.1:8000".to_owned()],
            ws_per_ip: 32,
            max_connections: 1000,
            queue_poll_ms: 2_000,
            connections: ConnectionSettings::default(),
            catalog_ttl_ms: 2000,
            db_pool: 4,
            durability_connections: 32,
        };
        (options.edge)(&mut settings);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let edge = tokio::spawn(flash_edge::server::run(
            settings,
            move |address| {
                let _ = ready_tx.send(address);
            },
            async {
                let _ = stopped.await;
            },
        ));
        let address = match tokio::time::timeout(Duration::from_secs(20), ready_rx).await {
            Ok(Ok(address)) => address,
            _ => {
                let outcome = edge.await;
                anyhow::bail!("the edge did not start: {outcome:?}");
            }
        };
        Ok(Stack {
            redis,
            postgres,
            database_url,
            sale,
            address,
            stop: Some(stop),
            edge: Some(edge),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn engine(&self) -> Result<FlashClient> {
        Ok(FlashClient::connect(&self.redis.redis_url()).await?)
    }

    pub async fn database(&self) -> Result<tokio_postgres::Client> {
        let (pg, connection) = tokio_postgres::connect(&self.database_url, NoTls).await?;
        tokio::spawn(connection);
        Ok(pg)
    }

    /// Another sale of the shop: these products added to `products`, the sale recorded in
    /// the catalog (`sales`, `sale_products`), made in the engine and loaded from the
    /// database, as `flash sale` does. The edge and its worker find it as it runs.
    pub async fn add_sale(
        &self,
        sale: &str,
        products: &[CatalogRow],
        settings: &SaleSettings,
    ) -> Result<()> {
        let mut pg = self.database().await?;
        for (id, name, price, stock) in products {
            pg.execute(
                "INSERT INTO products (id, name, price_cents, stock) VALUES ($1, $2, $3, $4)",
                &[id, name, price, stock],
            )
            .await?;
        }
        let ids: Vec<i64> = products.iter().map(|row| row.0).collect();
        flash_worker::sales::record(&mut pg, sale, Some(&format!("The {sale} sale")), &ids).await?;
        let engine = self.engine().await?;
        engine.sale(sale, settings).await?;
        flash_worker::stock::sync_sale(&pg, &engine, sale, &self.sale).await?;
        Ok(())
    }

    /// Stops the edge (and its worker) gracefully; the servers stop when dropped.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(edge) = self.edge.take() {
            edge.await.context("the edge task panicked")??;
        }
        Ok(())
    }
}
