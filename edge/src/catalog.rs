//! The catalog: which sales the shop runs, and each sale's products (names and prices) from
//! PostgreSQL, held in memory for a short while.
//!
//! A flash sale has few products (dozens to thousands) and thousands of page views a second,
//! so the edge reads a sale's products at most once per `ttl` (one reader at a time; the
//! others wait for its result) and serves pages and cart lines from that snapshot: one
//! snapshot per sale, made on the sale's first request. Which products a sale sells is
//! [`flash_worker::sales::listing`]'s rule (the default sale: its own and every product no
//! sale lists). The list of sales (`sales`, plus the default sale, which needs no row) is
//! held the same way; a name not in it is read again at most every `MISS_REREAD`, so made-up
//! sale names cannot turn into a table read each. Live `available` never comes from here: it
//! is asked of the engine per page.

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

/// A sale the shop runs.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SaleEntry {
    pub sale: String,
    pub title: String,
    /// The edge's `FLASH_SALE`: served on the paths without `/sales/{sale}` too.
    pub default: bool,
}

/// Every sale of the catalog, the default sale first, then the others by name.
pub type SaleList = Vec<SaleEntry>;

pub struct Catalog {
    pool: Pool,
    ttl: Duration,
    default_sale: Arc<SaleCatalog>,
    sales: Mutex<Option<(Instant, Arc<SaleList>)>>,
    /// One catalog per sale asked for (only sales of the list get one, so it is bounded by
    /// the `sales` table).
    by_sale: std::sync::Mutex<HashMap<String, Arc<SaleCatalog>>>,
}

impl Catalog {
    pub fn new(pool: Pool, ttl: Duration, default_sale: &str) -> Catalog {
        Catalog {
            default_sale: Arc::new(SaleCatalog::new(
                pool.clone(),
                ttl,
                default_sale,
                default_sale,
            )),
            pool,
            ttl,
            sales: Mutex::new(None),
            by_sale: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The default sale (`FLASH_SALE`), known without asking the database.
    pub fn default_sale(&self) -> Arc<SaleCatalog> {
        self.default_sale.clone()
    }

    /// The sales the shop runs, read again if older than the ttl.
    pub async fn sales(&self) -> Result<Arc<SaleList>, ApiError> {
        self.sales_younger_than(self.ttl).await
    }

    /// `name`'s catalog, or 404 `NOSALE` when the shop runs no such sale.
    pub async fn sale(&self, name: &str) -> Result<Arc<SaleCatalog>, ApiError> {
        if name == self.default_sale.name {
            return Ok(self.default_sale());
        }
        let listed = |sales: &SaleList| sales.iter().any(|entry| entry.sale == name);
        if !listed(&*self.sales().await?)
            && !listed(&*self.sales_younger_than(MISS_REREAD.min(self.ttl)).await?)
        {
            return Err(ApiError::no_sale(name));
        }
        let mut by_sale = self
            .by_sale
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(by_sale
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(SaleCatalog::new(
                    self.pool.clone(),
                    self.ttl,
                    name,
                    &self.default_sale.name,
                ))
            })
            .clone())
    }

    async fn sales_younger_than(&self, max_age: Duration) -> Result<Arc<SaleList>, ApiError> {
        let mut cached = self.sales.lock().await;
        if let Some((read_at, sales)) = cached.as_ref()
            && read_at.elapsed() < max_age
        {
            return Ok(sales.clone());
        }
        let rows = flash_worker::sales::list(&*self.pool.get().await?).await?;
        let default = &self.default_sale.name;
        let mut sales = vec![SaleEntry {
            sale: default.clone(),
            title: rows
                .iter()
                .find(|row| &row.name == default)
                .map_or_else(|| default.clone(), |row| row.title.clone()),
            default: true,
        }];
        sales.extend(
            rows.into_iter()
                .filter(|row| &row.name != default)
                .map(|row| SaleEntry {
                    sale: row.name,
                    title: row.title,
                    default: false,
                }),
        );
        let sales = Arc::new(sales);
        *cached = Some((Instant::now(), sales.clone()));
        Ok(sales)
    }
}

/// One sale's products.
pub struct SaleCatalog {
    /// The sale's name, as the engine knows it.
    pub name: String,
    default_sale: String,
    pool: Pool,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl SaleCatalog {
    fn new(pool: Pool, ttl: Duration, name: &str, default_sale: &str) -> SaleCatalog {
        SaleCatalog {
            name: name.to_owned(),
            default_sale: default_sale.to_owned(),
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

    /// A product of this sale by id. One not in the snapshot may have been added since: the
    /// table is read again, but at most every `MISS_REREAD`, so requests naming made-up ids
    /// cannot turn into a table read each.
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

    /// [`SaleCatalog::product`], or 404 `NOSKU` (the engine's word for a product it does not
    /// sell): a product of another sale is unknown in this one.
    pub async fn sold_product(&self, id: i64) -> Result<Product, ApiError> {
        self.product(id)
            .await?
            .ok_or_else(|| ApiError::not_sold(&self.name, id))
    }

    /// Drops the snapshot: the next call reads the table.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn read(&self) -> Result<Snapshot, ApiError> {
        let client = self.pool.get().await?;
        let listed = flash_worker::sales::listing(&client, &self.name, &self.default_sale).await?;
        Ok(Snapshot::new(
            listed
                .into_iter()
                .map(|product| Product {
                    id: product.id,
                    name: product.name,
                    price_cents: product.price_cents,
                })
                .collect(),
        ))
    }
}
