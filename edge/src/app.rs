//! The state every request shares: connections, caches, limits, metrics. Built once at
//! start ([`App::start`]) and shared as an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use flash_client::{DurableWrites, FlashClient};
use flash_worker::consumer::Counters;
use tokio_postgres::NoTls;
use tracing::warn;

use crate::catalog::Catalog;
use crate::health::Health;
use crate::hub::{HubSettings, SaleHubs};
use crate::limits::Limits;
use crate::limits::forwarded::TrustedProxies;
use crate::metrics::Metrics;
use crate::session::Signer;
use crate::session::revoked::Revocations;
use crate::session::shop_login::ShopLogin;
use crate::settings::{EdgeSettings, LoginSettings};
use crate::ws::WsSettings;

pub struct App {
    pub settings: EdgeSettings,
    pub engine: FlashClient,
    /// `--durability replica`: checkouts and buys acknowledged by a replica too.
    pub durable: Option<DurableWrites>,
    pub pool: Pool,
    pub catalog: Catalog,
    pub signer: Signer,
    /// The shop's login (`--jwt-secret`, `--jwt-jwks`), when this edge has one.
    pub shop_login: Option<ShopLogin>,
    /// Tokens signed out before their expiry, as every edge must refuse them.
    pub revocations: Revocations,
    /// Redis and PostgreSQL, as last probed (`/healthz`).
    pub health: Health,
    pub limits: Limits,
    /// `--trusted-proxy`: who the client is behind them.
    pub proxies: TrustedProxies,
    pub metrics: Metrics,
    /// Live stock: the default sale's hub, and one per other sale with WebSocket clients.
    pub hubs: SaleHubs,
    pub ws: WsSettings,
    /// The embedded worker's counters, when it runs in this process.
    pub worker: Option<Arc<Counters>>,
}

impl App {
    /// Connects to Redis and PostgreSQL and applies the migrations. The worker is started
    /// by the caller (it needs the shutdown signal).
    pub async fn start(settings: EdgeSettings) -> Result<Arc<App>> {
        let engine = FlashClient::connect(&settings.redis_url)
            .await
            .with_context(|| format!("cannot reach Redis at {}", settings.redis_url))?;
        let durable = match settings.worker.durability.durability() {
            None => None,
            Some(durability) => Some(
                DurableWrites::connect(
                    &settings.redis_url,
                    settings.durability_connections,
                    durability,
                )
                .await
                .context("cannot open the durable-write connections")?,
            ),
        };
        let pg_config: tokio_postgres::Config = settings
            .database_url
            .parse()
            .context("DATABASE_URL is not a PostgreSQL URL")?;
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.db_pool)
            .wait_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .context("cannot build the database pool")?;
        {
            let mut client = pool
                .get()
                .await
                .context("cannot reach PostgreSQL (DATABASE_URL)")?;
            flash_worker::migrate::migrate(&mut client)
                .await
                .context("cannot apply the migrations")?;
        }
        let secret = match &settings.secret {
            Some(secret) if secret.len() >= 32 => secret.as_bytes().to_vec(),
            Some(_) => anyhow::bail!("FLASH_SECRET must be at least 32 bytes"),
            None => {
                warn!(
                    "FLASH_SECRET is not set: signing sessions with a random development key; \
                     sessions end when this process does and are not shared between edges"
                );
                rand::random::<[u8; 32]>().to_vec()
            }
        };
        let shop_login = shop_login(&settings.login)?;
        if shop_login.is_none() && !settings.login.demo_login {
            warn!(
                "no way to sign in: give the shop's login (--jwt-secret or --jwt-jwks), or \
                 --demo-login to try Flash out"
            );
        }
        let revocations = Revocations::start(
            &settings.redis_url,
            engine.connection(),
            settings.session_ttl_secs,
        )
        .await
        .context("cannot read the revoked sessions")?;
        let health = Health::start(engine.clone(), pool.clone()).await;
        let hubs = SaleHubs::start(
            &settings.redis_url,
            &settings.sale,
            engine.clone(),
            HubSettings::default(),
        )
        .await
        .context("cannot subscribe to the sale's stock messages")?;
        Ok(Arc::new(App {
            catalog: Catalog::new(pool.clone(), settings.catalog_ttl(), &settings.sale),
            signer: Signer::new(&secret, settings.session_ttl_secs),
            shop_login,
            revocations,
            health,
            limits: Limits::new(settings.rate_per_ip, settings.rate_per_user),
            proxies: TrustedProxies::new(settings.trusted_proxies.clone()),
            metrics: Metrics::new().context("metrics")?,
            ws: WsSettings {
                allowed_origins: settings.allowed_origins.clone(),
                max_per_ip: settings.ws_per_ip,
                handshake_timeout: settings.connections.ws_handshake_timeout(),
                queue_poll: std::time::Duration::from_millis(settings.queue_poll_ms),
                ..WsSettings::default()
            },
            worker: (!settings.no_worker).then(|| Arc::new(Counters::default())),
            hubs,
            engine,
            durable,
            pool,
            settings,
        }))
    }
}

/// The shop's login as the settings give it: the secret, the JWKS file read and checked now
/// (a key that cannot be used stops the edge at start, not at a shopper's sign-in).
fn shop_login(settings: &LoginSettings) -> Result<Option<ShopLogin>> {
    let jwks = match &settings.jwt_jwks {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the JWKS file {}", path.display()))?;
            let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JWKS (RFC 7517)", path.display()))?;
            Some(set)
        }
        None => None,
    };
    ShopLogin::new(
        settings.jwt_secret.as_deref(),
        jwks.as_ref(),
        settings.jwt_issuer.clone(),
        settings.jwt_audience.clone(),
    )
    .context("the shop's login")
}
