//! The catalog of sales in PostgreSQL (migration 0004): which sales exist (`sales`) and which
//! products each one sells (`sale_products`, one sale per product).
//!
//! The rule every tool follows: a sale sells the products listed for it; the **default
//! sale** (the `FLASH_SALE` setting) sells its own and also every product no sale lists, so a
//! database from before the catalog keeps its single sale unchanged.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

/// Why a sale could not be recorded. Each has a stable code ([`RecordError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "product {product} is in sale '{sale}' already: a product is sold by one sale at a \
         time (leave it out, or record it with --sale {sale})"
    )]
    InAnotherSale { product: i64, sale: String },
    #[error("no product {0} in the database: add it to `products` first")]
    UnknownProduct(i64),
    #[error("invalid sale: {0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
}

impl RecordError {
    /// The stable code, for programs that branch on the error.
    pub fn code(&self) -> &'static str {
        match self {
            RecordError::InAnotherSale { .. } => "INOTHERSALE",
            RecordError::UnknownProduct(_) => "NOPRODUCT",
            RecordError::Invalid(_) => "INVALID",
            RecordError::Database(_) => "DATABASE",
        }
    }
}

/// The names of every sale in `sales`, in name order.
pub async fn names(pg: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(list(pg).await?.into_iter().map(|row| row.name).collect())
}

/// One row of `sales`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleRow {
    pub name: String,
    pub title: String,
}

/// Every sale in `sales` with its title, in name order.
pub async fn list(pg: &Client) -> Result<Vec<SaleRow>, tokio_postgres::Error> {
    Ok(pg
        .query("SELECT name, title FROM sales ORDER BY name", &[])
        .await?
        .iter()
        .map(|row| SaleRow {
            name: row.get(0),
            title: row.get(1),
        })
        .collect())
}

/// A product a sale sells, as `products` holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleProduct {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    /// Unsold stock.
    pub stock: i64,
}

/// The products `sale` sells, in id order: those listed for it, and when it is
/// `default_sale`, every product no sale lists as well. The one query of that rule (the
/// edge's catalog and `sync`/`reconcile` both read it).
pub async fn listing(
    pg: &Client,
    sale: &str,
    default_sale: &str,
) -> Result<Vec<SaleProduct>, tokio_postgres::Error> {
    Ok(pg
        .query(
            "SELECT p.id, p.name, p.price_cents, p.stock FROM products p
             LEFT JOIN sale_products s ON s.product_id = p.id
             WHERE s.sale = $1 OR (s.sale IS NULL AND $1 = $2)
             ORDER BY p.id",
            &[&sale, &default_sale],
        )
        .await?
        .iter()
        .map(|row| SaleProduct {
            id: row.get(0),
            name: row.get(1),
            price_cents: row.get(2),
            stock: row.get(3),
        })
        .collect())
}

/// The products `sale` sells with their unsold stock, in id order ([`listing`]'s rule).
pub async fn products(
    pg: &Client,
    sale: &str,
    default_sale: &str,
) -> Result<Vec<(i64, i64)>, tokio_postgres::Error> {
    Ok(listing(pg, sale, default_sale)
        .await?
        .into_iter()
        .map(|product| (product.id, product.stock))
        .collect())
}

/// Records `sale` in `sales` (made with `title`, or the sale's name when none is given; an
/// existing row keeps its title unless one is given) and adds `products` to it, in one
/// transaction: a product another sale sells, or one the database does not have, refuses
/// the whole call and records nothing. Products the sale lists already are fine; none is
/// taken away (a product leaving a sale would take its units in the engine along).
pub async fn record(
    pg: &mut Client,
    sale: &str,
    title: Option<&str>,
    products: &[i64],
) -> Result<(), RecordError> {
    if let Some(title) = title
        && !(1..=200).contains(&title.chars().count())
    {
        return Err(RecordError::Invalid(
            "a title is 1 to 200 characters".into(),
        ));
    }
    let tx = pg.transaction().await?;
    let made = tx
        .execute(
            "INSERT INTO sales (name, title) VALUES ($1, coalesce($2, $1))
             ON CONFLICT (name) DO UPDATE SET title = coalesce($2, sales.title)",
            &[&sale, &title],
        )
        .await;
    if let Err(error) = made {
        return Err(match error.code() {
            Some(code) if *code == SqlState::CHECK_VIOLATION => RecordError::Invalid(format!(
                "'{sale}' is not a sale name (1 to 64 of A-Z a-z 0-9 - _ . : @)"
            )),
            _ => error.into(),
        });
    }
    if !products.is_empty() {
        let known: Vec<i64> = tx
            .query("SELECT id FROM products WHERE id = ANY($1)", &[&products])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if let Some(missing) = products.iter().find(|id| !known.contains(id)) {
            return Err(RecordError::UnknownProduct(*missing));
        }
        // The UNIQUE (product_id) decides between two sales recording one product at once:
        // the loser's insert does nothing, and the check below finds the winner.
        tx.execute(
            "INSERT INTO sale_products (sale, product_id) SELECT $1, unnest($2::bigint[])
             ON CONFLICT DO NOTHING",
            &[&sale, &products],
        )
        .await?;
        let taken = tx
            .query_opt(
                "SELECT product_id, sale FROM sale_products
                 WHERE product_id = ANY($1) AND sale <> $2
                 ORDER BY product_id LIMIT 1",
                &[&products, &sale],
            )
            .await?;
        if let Some(row) = taken {
            return Err(RecordError::InAnotherSale {
                product: row.get(0),
                sale: row.get(1),
            });
        }
    }
    tx.commit().await?;
    Ok(())
}
