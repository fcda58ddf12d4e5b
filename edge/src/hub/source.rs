//! Where current values come from when pub/sub has not told them: FLASH.AVAILABLE on the
//! engine, bounded in time, on a connection replaced after Redis restarts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use flash_client::FlashClient;
use futures::future::BoxFuture;

use super::lock;

/// Where current values come from when pub/sub has not told them yet.
pub(super) trait StockSource: Send + Sync {
    /// Units per product in argument order, `None` for a product never loaded.
    fn available<'a>(
        &'a self,
        products: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<Option<i64>>, String>>;
}

/// FLASH.AVAILABLE on the engine.
pub(super) struct EngineSource {
    sale: String,
    redis_url: String,
    engine: Mutex<FlashClient>,
    /// When the engine connection was last replaced: at most one attempt per second, so a
    /// Redis outage does not turn every subscribe into a connection attempt.
    last_reconnect: Mutex<Option<Instant>>,
    /// Bound on one read (reconnecting included): a session waiting on it waits no longer.
    read_timeout: Duration,
}

/// FLASH.AVAILABLE takes any number of SKUs; chunks keep one call a few ms of server time.
const READ_BACK_CHUNK: usize = 1000;

impl EngineSource {
    pub(super) fn new(
        sale: &str,
        redis_url: &str,
        engine: FlashClient,
        read_timeout: Duration,
    ) -> EngineSource {
        EngineSource {
            sale: sale.to_owned(),
            redis_url: redis_url.to_owned(),
            engine: Mutex::new(engine),
            last_reconnect: Mutex::new(None),
            read_timeout,
        }
    }

    async fn read(&self, products: &[i64]) -> Result<Vec<Option<i64>>, flash_client::ClientError> {
        let engine = lock(&self.engine).clone();
        let mut values = Vec::with_capacity(products.len());
        for chunk in products.chunks(READ_BACK_CHUNK) {
            values.extend(engine.available(&self.sale, chunk).await?);
        }
        Ok(values)
    }

    /// A fresh engine connection: a multiplexed connection does not come back by itself
    /// after Redis restarts.
    async fn reconnect(&self) -> bool {
        {
            let mut last = lock(&self.last_reconnect);
            if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match FlashClient::connect(&self.redis_url).await {
            Ok(engine) => {
                *lock(&self.engine) = engine;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "hub: cannot reconnect to the engine");
                false
            }
        }
    }
}

impl StockSource for EngineSource {
    fn available<'a>(
        &'a self,
        products: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<Option<i64>>, String>> {
        Box::pin(async move {
            let attempt = async {
                match self.read(products).await {
                    Ok(values) => Ok(values),
                    Err(flash_client::ClientError::Redis(first)) if self.reconnect().await => self
                        .read(products)
                        .await
                        .map_err(|error| format!("{first}; after reconnecting: {error}")),
                    Err(error) => Err(error.to_string()),
                }
            };
            tokio::time::timeout(self.read_timeout, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no FLASH.AVAILABLE answer within {:?}",
                        self.read_timeout
                    ))
                })
        })
    }
}
