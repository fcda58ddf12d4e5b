//! One hub per sale: the default sale's, made at start and kept, and one for every other sale
//! a WebSocket asks for, made on its first client (its own stock event subscription, on the
//! cluster master of that sale's slot) and dropped with its last one.
//!
//! The map holds the other sales' hubs weakly: each session holds its hub, so when the last
//! session of a sale ends the hub goes (its subscription task is aborted, its ticker thread
//! sees it gone), and the next client of that sale subscribes again. Every hub admits clients
//! against one [`Connections`], so the per-address WebSocket cap counts all sales together.

use std::collections::HashMap;
use std::sync::Weak;

use flash_client::{ClientError, FlashClient};
use tokio::sync::Mutex;

use super::{Hub, HubSettings, Inner};
use crate::limits::Connections;

pub struct SaleHubs {
    redis_url: String,
    engine: FlashClient,
    settings: HubSettings,
    default_sale: String,
    default_hub: Hub,
    /// Held across a hub's first subscription, so that two first clients make one hub.
    others: Mutex<HashMap<String, Weak<Inner>>>,
}

impl SaleHubs {
    /// Starts the default sale's hub (failing as [`Hub::start`] does).
    pub async fn start(
        redis_url: &str,
        default_sale: &str,
        engine: FlashClient,
        settings: HubSettings,
    ) -> Result<SaleHubs, ClientError> {
        let default_hub = Hub::start_admitting(
            redis_url,
            default_sale,
            engine.clone(),
            settings.clone(),
            Connections::default(),
        )
        .await?;
        Ok(SaleHubs {
            redis_url: redis_url.to_owned(),
            engine,
            settings,
            default_sale: default_sale.to_owned(),
            default_hub,
            others: Mutex::new(HashMap::new()),
        })
    }

    /// The default sale's hub (its figures are the ones `/metrics` shows).
    pub fn default_hub(&self) -> &Hub {
        &self.default_hub
    }

    /// `sale`'s hub, subscribed now if no client of the sale is connected. The caller has
    /// checked that the shop runs `sale` (a subscription per made-up name would be a cheap
    /// way to exhaust the edge).
    pub async fn hub(&self, sale: &str) -> Result<Hub, ClientError> {
        if sale == self.default_sale {
            return Ok(self.default_hub.clone());
        }
        let mut others = self.others.lock().await;
        if let Some(hub) = others.get(sale).and_then(Weak::upgrade) {
            return Ok(Hub { inner: hub });
        }
        // Sales whose last client left: forgotten here rather than by a sweeper.
        others.retain(|_, hub| hub.strong_count() > 0);
        let hub = Hub::start_admitting(
            &self.redis_url,
            sale,
            self.engine.clone(),
            self.settings.clone(),
            self.default_hub.inner.connections.clone(),
        )
        .await?;
        others.insert(sale.to_owned(), std::sync::Arc::downgrade(&hub.inner));
        Ok(hub)
    }

    /// Hubs of other sales alive now (the default one not counted).
    pub async fn live_sales(&self) -> usize {
        let others = self.others.lock().await;
        others.values().filter(|hub| hub.strong_count() > 0).count()
    }

    /// [`Hub::shutdown`] for every hub: sessions close (1001), subscriptions stop.
    pub async fn shutdown(&self) {
        self.default_hub.shutdown();
        let others: Vec<Hub> = self
            .others
            .lock()
            .await
            .values()
            .filter_map(Weak::upgrade)
            .map(|inner| Hub { inner })
            .collect();
        for hub in others {
            hub.shutdown();
        }
    }
}
