//! One worker for many sales ([`run_sales`]): a consumer per sale (its own task, its own
//! connections, the group on that sale's stream), and, with the catalog on, the sales of
//! PostgreSQL's `sales` table found while it runs.
//!
//! Each sale is the single-sale worker of [`crate::consumer::run`], unchanged: on a cluster a
//! sale's stream lives on the master serving its slot, and each task's XREADGROUP goes
//! there (the client routes by key), so sales on different masters never wait on each other.
//! A sale found in the catalog that the engine does not have yet (no FLASH.SALE made it) is
//! waited for, quietly, and consumed from the start of its stream once it exists. A sale that
//! leaves the catalog keeps its consumer until the worker stops: its stream may still hold
//! orders.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flash_client::{ClientError, FlashClient};
use flash_core::ErrorCode;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_postgres::NoTls;
use tracing::{info, warn};

use crate::consumer::{Config, Counters, WorkerError, run};

/// How often the catalog is read again unless told otherwise.
pub const DEFAULT_CATALOG_REFRESH: Duration = Duration::from_secs(3);

/// Which sales one worker consumes.
#[derive(Clone, Debug)]
pub struct SaleSet {
    /// Consumed from the start, as a single-sale worker would be (the group is made, and the
    /// stream with it, even before the sale exists): the `--sale`s, or the default sale.
    pub named: Vec<String>,
    /// Also every sale in `sales`, read again this often (None: the named ones only).
    pub catalog_refresh: Option<Duration>,
}

impl SaleSet {
    /// Just these sales.
    pub fn named(sales: impl IntoIterator<Item = impl Into<String>>) -> SaleSet {
        SaleSet {
            named: sales.into_iter().map(Into::into).collect(),
            catalog_refresh: None,
        }
    }

    /// `default_sale` and every sale of the catalog, which is read again every `refresh`.
    pub fn all(default_sale: &str, refresh: Duration) -> SaleSet {
        SaleSet {
            named: vec![default_sale.to_owned()],
            catalog_refresh: Some(refresh),
        }
    }
}

/// Runs a consumer for every sale of `sales` (each as [`run`] with `config`'s settings and
/// its own `sale`) until `shutdown` resolves; then every consumer finishes its batch in hand
/// and this returns. `counters` add up over all the sales. Errors are logged and retried,
/// per sale and for the catalog, never returned.
pub async fn run_sales(
    config: Config,
    sales: SaleSet,
    counters: Arc<Counters>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let (stop, stopping) = watch::channel(false);
    let mut consumers = Consumers {
        config,
        counters,
        stopping,
        started: HashSet::new(),
        tasks: JoinSet::new(),
    };
    for sale in &sales.named {
        consumers.start(sale, None);
    }
    if let Some(refresh) = sales.catalog_refresh {
        let mut catalog: Option<Catalog> = None;
        let mut tick = tokio::time::interval(refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            match Catalog::read(&mut catalog, &consumers.config).await {
                Ok((names, engine)) => {
                    for sale in names {
                        if !consumers.started.contains(&sale) {
                            info!(%sale, "worker: a sale of the catalog, consumed from now on");
                            consumers.start(&sale, Some((engine.clone(), refresh)));
                        }
                    }
                }
                Err(error) => {
                    warn!(%error, "worker: cannot read the catalog of sales; trying again");
                }
            }
        }
    } else {
        shutdown.await;
    }
    // Every consumer sees the stop and finishes its batch in hand.
    let _ = stop.send(true);
    while let Some(ended) = consumers.tasks.join_next().await {
        if let Err(error) = ended {
            warn!(%error, "worker: a sale's consumer ended abnormally");
        }
    }
}

/// The consumers started so far.
struct Consumers {
    config: Config,
    counters: Arc<Counters>,
    stopping: watch::Receiver<bool>,
    started: HashSet<String>,
    tasks: JoinSet<()>,
}

impl Consumers {
    /// Starts `sale`'s consumer, once. With `wait_for` (an engine and how often to ask), it
    /// first waits until the engine has the sale.
    fn start(&mut self, sale: &str, wait_for: Option<(FlashClient, Duration)>) {
        if !self.started.insert(sale.to_owned()) {
            return;
        }
        let config = Config {
            sale: sale.to_owned(),
            ..self.config.clone()
        };
        let counters = self.counters.clone();
        let mut stopping = self.stopping.clone();
        self.tasks.spawn(async move {
            let stopped = async move {
                // A dropped sender is a stop too.
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            tokio::pin!(stopped);
            if let Some((engine, every)) = wait_for {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = until_the_engine_has(&engine, &config.sale, every) => {}
                }
            }
            run(config, counters, stopped).await;
        });
    }
}

/// Returns once the engine has `sale` (FLASH.INFO answers), asking every `every`.
async fn until_the_engine_has(engine: &FlashClient, sale: &str, every: Duration) {
    let mut said = false;
    loop {
        match engine.info(sale).await {
            Ok(_) => return,
            Err(ClientError::Flash(error)) if error.code == ErrorCode::NoSale => {
                if !said {
                    info!(%sale, "worker: the sale is in the catalog but not in the engine yet: waiting for it");
                    said = true;
                }
            }
            Err(error) => warn!(%sale, %error, "worker: cannot ask the engine for the sale"),
        }
        tokio::time::sleep(every).await;
    }
}

/// The connections the catalog is read over (and the engine that waiting sales ask).
struct Catalog {
    pg: tokio_postgres::Client,
    engine: FlashClient,
}

impl Catalog {
    /// The sales of the catalog, over `catalog`'s connections (made first when there are
    /// none; dropped on an error, so the next read connects again).
    async fn read(
        catalog: &mut Option<Catalog>,
        config: &Config,
    ) -> Result<(Vec<String>, FlashClient), WorkerError> {
        let connected = match catalog.take() {
            Some(connected) => connected,
            None => Catalog::connect(config).await?,
        };
        let names = crate::sales::names(&connected.pg).await?;
        let engine = connected.engine.clone();
        *catalog = Some(connected);
        Ok((names, engine))
    }

    async fn connect(config: &Config) -> Result<Catalog, WorkerError> {
        let (pg, connection) = tokio_postgres::connect(&config.database_url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                warn!(%error, "worker: the catalog's database connection closed");
            }
        });
        let engine = FlashClient::connect(&config.redis_url).await?;
        Ok(Catalog { pg, engine })
    }
}
