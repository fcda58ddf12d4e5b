//! The product catalog: names and prices from PostgreSQL, held in memory for a short while.
//!
//! A flash sale has few products (dozens to thousands) and thousands of page views a second,
//! so the edge reads the whole `products` table at most once per `ttl` (one reader at a time;
//! the others wait for its result) and serves pages and cart lines from that snapshot. Live
//! `available` never comes from here: it is asked of the engine per page.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::error::ApiError;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
}

/// The catalog as read at one moment: products ascending by id.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub products: Vec<Product>,
    by_id: HashMap<i64, usize>,
}

impl Snapshot {
    pub fn new(products: Vec<Product>) -> Snapshot {
        let by_id = products
            .iter()
            .enumerate()
            .map(|(index, product)| (product.id, index))
            .collect();
        Snapshot { products, by_id }
    }

    pub fn get(&self, id: i64) -> Option<&Product> {
        self.by_id.get(&id).map(|index| &self.products[*index])
    }

    pub fn page(&self, skip: usize, limit: usize) -> &[Product] {
        let start = skip.min(self.products.len());
        let end = start.saturating_add(limit).min(self.products.len());
        &self.products[start..end]
    }
}

const MISS_REREAD: Duration = Duration::from_millis(250);

pub struct Catalog {
    pool: Pool,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl Catalog {
    pub fn new(pool: Pool, ttl: Duration) -> Catalog {
        Catalog {
            pool,
            ttl,
            cached: Mutex::new(None),
        }
    }

    /// The current snapshot, read again if older than the ttl.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, ApiError> {
        self.snapshot_younger_than(self.ttl).await
    }

    async fn snapshot_younger_than(&self, max_age: Duration) -> Result<Arc<Snapshot>, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((read_at, snapshot)) = cached.as_ref()
            && read_at.elapsed() < max_age
        {
            return Ok(snapshot.clone());
        }
        let snapshot = Arc::new(self.read().await?);
        *cached = Some((Instant::now(), snapshot.clone()));
        Ok(snapshot)
    }

    /// A product by id. One not in the snapshot may have been added since: the table is read
    /// again, but at most every `MISS_REREAD`, so requests naming made-up ids cannot turn
    /// into a table read each.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, ApiError> {
        let snapshot = self.snapshot().await?;
        if let Some(product) = snapshot.get(id) {
            return Ok(Some(product.clone()));
        }
        Ok(self
            .snapshot_younger_than(MISS_REREAD.min(self.ttl))
            .await?
            .get(id)
            .cloned())
    }

    /// Drops the snapshot: the next call reads the table.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn read(&self) -> Result<Snapshot, ApiError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, name, price_cents FROM products ORDER BY id",
                &[],
            )
            .await?;
        Ok(Snapshot::new(
            rows.iter()
                .map(|row| Product {
                    id: row.get(0),
                    name: row.get(1),
                    price_cents: row.get(2),
                })
                .collect(),
        ))
    }
}
