//! The database's stock and the engine's, side by side: `sync` makes the engine match the
//! database, `reconcile` checks that they match.
//!
//! The rule: for every product, units in PostgreSQL (`products.stock`, not yet sold) =
//! the engine's available + held + pending. One window is legitimate: an order the worker
//! committed but has not settled yet is counted in neither side's "unsold" the same way, so
//! run `reconcile` when the worker has caught up (both tools report, neither guesses).
//!
//! Both look at the products the sale sells by the catalog's rule ([`crate::sales`]): its
//! own, and for the default sale every product no sale lists as well. [`sync`] and
//! [`reconcile`] take the sale as the default one (a single-sale setup: every product);
//! [`sync_sale`] and [`reconcile_sale`] are told which sale is the default.

use flash_client::FlashClient;
use tokio_postgres::Client;

use crate::consumer::WorkerError;

/// One product's count on each side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub product: i64,
    pub database: i64,
    /// available + held + pending in the engine; None when the sale does not carry it.
    pub engine: Option<i64>,
}

impl Row {
    pub fn matches(&self) -> bool {
        self.engine == Some(self.database)
    }
}

/// [`sync_sale`] of `sale` as the default sale: every product no other sale lists.
pub async fn sync(pg: &Client, engine: &FlashClient, sale: &str) -> Result<usize, WorkerError> {
    sync_sale(pg, engine, sale, sale).await
}

/// Loads the unsold stock of every product `sale` sells into it, minus what carts and orders
/// already hold (FLASH.LOAD TOTAL: one atomic command, so a reserve cannot slip in between).
pub async fn sync_sale(
    pg: &Client,
    engine: &FlashClient,
    sale: &str,
    default_sale: &str,
) -> Result<usize, WorkerError> {
    let stock = crate::sales::products(pg, sale, default_sale).await?;
    for chunk in stock.chunks(500) {
        engine.load_total(sale, chunk).await?;
    }
    Ok(stock.len())
}

/// [`reconcile_sale`] of `sale` as the default sale.
pub async fn reconcile(
    pg: &Client,
    engine: &FlashClient,
    sale: &str,
) -> Result<Vec<Row>, WorkerError> {
    reconcile_sale(pg, engine, sale, sale).await
}

/// Every product `sale` sells against the sale's ledger.
pub async fn reconcile_sale(
    pg: &Client,
    engine: &FlashClient,
    sale: &str,
    default_sale: &str,
) -> Result<Vec<Row>, WorkerError> {
    let info = engine.info(sale).await?;
    let ledger: std::collections::HashMap<i64, i64> = info
        .skus
        .iter()
        .map(|(sku, units)| (*sku, units.available + units.held + units.pending))
        .collect();
    Ok(crate::sales::products(pg, sale, default_sale)
        .await?
        .into_iter()
        .map(|(product, database)| Row {
            product,
            database,
            engine: ledger.get(&product).copied(),
        })
        .collect())
}

/// The reconcile table as text.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:>10}  {:>10}  {:>10}  {}\n",
        "product", "database", "engine", ""
    );
    for row in rows {
        let engine = row.engine.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let mark = if row.matches() { "ok" } else { "DIFFERS" };
        out.push_str(&format!(
            "{:>10}  {:>10}  {engine:>10}  {mark}\n",
            row.product, row.database
        ));
    }
    out
}
