//! One batch of orders, applied to PostgreSQL in one transaction.
//!
//! The batch's product rows are locked with `SELECT … FOR UPDATE` in ascending id order, so
//! two workers with overlapping batches queue behind each other instead of deadlocking. Each
//! order is decided whole (every line or none) against the locked stock, in stream order;
//! then one UPDATE writes every changed product and multi-row INSERTs write the orders and
//! their lines. An order already in the database (a replayed stream entry) keeps its stored
//! verdict and changes nothing: the primary key makes a replay a no-op by construction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::{Client, Error};

/// One checked-out order, as read from the sale's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderMessage {
    pub stream_id: String,
    pub order: String,
    /// The engine's user: a `users.id`.
    pub user_id: i64,
    /// `(product id, qty)`, ascending by product.
    pub lines: Vec<(i64, i64)>,
}

/// What the database made of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written, stock taken: the engine settles it OK.
    Confirmed,
    /// Written as refused (not enough stock): the engine settles it REJECT.
    Rejected,
    /// Cannot be processed (unknown product or user): for the dead-letter stream.
    Invalid(String),
}

/// Applies `orders` (in stream order) for `sale`; returns one outcome per order.
pub async fn apply_batch(
    client: &mut Client,
    sale: &str,
    orders: &[OrderMessage],
) -> Result<Vec<Outcome>, Error> {
    let tx = client.transaction().await?;

    let ids: Vec<&str> = orders.iter().map(|o| o.order.as_str()).collect();
    let stored: HashMap<String, String> = tx
        .query(
            "SELECT id, status FROM orders WHERE sale = $1 AND id = ANY($2)",
            &[&sale, &ids],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();

    let products: Vec<i64> = orders
        .iter()
        .filter(|o| !stored.contains_key(&o.order))
        .flat_map(|o| o.lines.iter().map(|(product, _)| *product))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Ascending ids, every worker alike: the lock order that rules out deadlocks.
    let mut stock: BTreeMap<i64, (i64, i64)> = tx
        .query(
            "SELECT id, stock, price_cents FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&products],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let users: Vec<i64> = orders.iter().map(|o| o.user_id).collect();
    let known_users: BTreeSet<i64> = tx
        .query("SELECT id FROM users WHERE id = ANY($1)", &[&users])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();

    let original: BTreeMap<i64, i64> = stock.iter().map(|(id, (units, _))| (*id, *units)).collect();
    let mut decided: HashMap<&str, Outcome> = HashMap::new();
    let mut rows = NewRows::default();
    let mut outcomes = Vec::with_capacity(orders.len());
    for order in orders {
        if let Some(status) = stored.get(&order.order) {
            outcomes.push(stored_outcome(status));
            continue;
        }
        // The same order twice in one batch: the second is a replay of the first.
        if let Some(outcome) = decided.get(order.order.as_str()) {
            outcomes.push(outcome.clone());
            continue;
        }
        let outcome = decide(order, &mut stock, &known_users);
        if !matches!(outcome, Outcome::Invalid(_)) {
            rows.add(order, &outcome, &stock);
        }
        decided.insert(&order.order, outcome.clone());
        outcomes.push(outcome);
    }

    let changed: Vec<(i64, i64)> = stock
        .iter()
        .filter(|(id, (units, _))| original.get(id) != Some(units))
        .map(|(id, (units, _))| (*id, *units))
        .collect();
    if !changed.is_empty() {
        let (ids, units): (Vec<i64>, Vec<i64>) = changed.into_iter().unzip();
        tx.execute(
            "UPDATE products SET stock = changed.stock
             FROM (SELECT unnest($1::bigint[]) AS id, unnest($2::bigint[]) AS stock) AS changed
             WHERE products.id = changed.id",
            &[&ids, &units],
        )
        .await?;
    }
    rows.insert(&tx, sale).await?;
    tx.commit().await?;
    Ok(outcomes)
}

fn stored_outcome(status: &str) -> Outcome {
    if status == "confirmed" {
        Outcome::Confirmed
    } else {
        Outcome::Rejected
    }
}

/// Decides one order whole against the running stock, taking its units if it fits.
fn decide(
    order: &OrderMessage,
    stock: &mut BTreeMap<i64, (i64, i64)>,
    known_users: &BTreeSet<i64>,
) -> Outcome {
    if !known_users.contains(&order.user_id) {
        return Outcome::Invalid(format!("unknown user {}", order.user_id));
    }
    if let Some((product, _)) = order.lines.iter().find(|(p, _)| !stock.contains_key(p)) {
        return Outcome::Invalid(format!("unknown product {product}"));
    }
    let fits = order
        .lines
        .iter()
        .all(|(product, qty)| stock.get(product).is_some_and(|(units, _)| units >= qty));
    if !fits {
        return Outcome::Rejected;
    }
    for (product, qty) in &order.lines {
        if let Some((units, _)) = stock.get_mut(product) {
            *units -= qty;
        }
    }
    Outcome::Confirmed
}

/// The rows a batch inserts, as column arrays for one multi-row INSERT per table.
#[derive(Default)]
struct NewRows {
    order_ids: Vec<String>,
    user_ids: Vec<i64>,
    statuses: Vec<&'static str>,
    stream_ids: Vec<String>,
    line_orders: Vec<String>,
    line_products: Vec<i64>,
    line_qty: Vec<i64>,
    line_prices: Vec<i64>,
}

impl NewRows {
    fn add(&mut self, order: &OrderMessage, outcome: &Outcome, stock: &BTreeMap<i64, (i64, i64)>) {
        self.order_ids.push(order.order.clone());
        self.user_ids.push(order.user_id);
        self.statuses.push(if *outcome == Outcome::Confirmed {
            "confirmed"
        } else {
            "rejected"
        });
        self.stream_ids.push(order.stream_id.clone());
        for (product, qty) in &order.lines {
            self.line_orders.push(order.order.clone());
            self.line_products.push(*product);
            self.line_qty.push(*qty);
            self.line_prices
                .push(stock.get(product).map_or(0, |(_, price)| *price));
        }
    }

    async fn insert(&self, tx: &tokio_postgres::Transaction<'_>, sale: &str) -> Result<(), Error> {
        if self.order_ids.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO orders (sale, id, user_id, status, stream_id)
             SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[])
             ON CONFLICT DO NOTHING",
            &[
                &sale,
                &self.order_ids,
                &self.user_ids,
                &self.statuses,
                &self.stream_ids,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO order_lines (sale, order_id, product_id, qty, unit_price_cents)
             SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
             ON CONFLICT DO NOTHING",
            &[
                &sale,
                &self.line_orders,
                &self.line_products,
                &self.line_qty,
                &self.line_prices,
            ],
        )
        .await?;
        Ok(())
    }
}
