//! One batch of orders, applied to PostgreSQL in one transaction.
//!
//! The batch's product rows are locked with `SELECT … FOR UPDATE` in ascending id order, so
//! two workers with overlapping batches queue behind each other instead of deadlocking. Each
//! order is decided whole (every line or none) against the locked stock, in stream order;
//! then one UPDATE writes every changed product and multi-row INSERTs write the orders and
//! their lines.
//!
//! A replay (an entry processed again after a crash, or by two workers at once after a
//! claim) must change nothing. The primary key on orders is the check: the order INSERT
//! returns the rows it really wrote, and unless that is every order the batch decided, the
//! transaction is rolled back and the batch decided again, this time reading the stored
//! verdicts first (after the product locks, so a concurrent writer of the same orders has
//! committed by then). Fresh batches, nearly all of them, skip that read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flash_core::model::OrderEntry;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Statement};

/// One checked-out order as the database takes it: the engine's entry (decoded by
/// flash-client from the stream), its stream id, and its user as a `users.id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOrder {
    pub stream_id: String,
    /// The engine's user, which the edge names by `users.id`.
    pub user_id: i64,
    /// Lines are `(product id, qty)`, ascending by product.
    pub entry: OrderEntry,
}

impl BatchOrder {
    /// The order of a stream entry; an error (for the dead letters) when its user is not a
    /// `users.id`.
    pub fn new(stream_id: &str, entry: OrderEntry) -> Result<BatchOrder, String> {
        let user_id = entry
            .user
            .parse()
            .map_err(|_| format!("user '{}' is not a users.id", entry.user))?;
        Ok(BatchOrder {
            stream_id: stream_id.to_owned(),
            user_id,
            entry,
        })
    }
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

/// The batch statements, prepared once per connection: a batch then costs two pipelined
/// round trips plus the commit, instead of a parse and plan per statement.
struct Statements {
    stored: Statement,
    lock_products: Statement,
    share_users: Statement,
    update_stock: Statement,
    insert_orders: Statement,
    insert_lines: Statement,
}

/// Applies batches over one database connection.
pub struct BatchWriter {
    client: Client,
    statements: Statements,
}

impl BatchWriter {
    pub async fn new(client: Client) -> Result<BatchWriter, Error> {
        // A generic plan, chosen while the orders table was still small, kept scanning the
        // whole table for the replay lookup as it grew (a 256-order batch went from 1 ms to
        // 100 ms within 20,000 orders, measured). Planning these small statements afresh
        // each time is cheap; the preparing still saves the parse and its round trip.
        client
            .batch_execute("SET plan_cache_mode = force_custom_plan")
            .await?;
        let statements = Statements {
            stored: client
                .prepare(
                    "SELECT id, status, stream_id FROM orders WHERE sale = $1 AND id = ANY($2)",
                )
                .await?,
            // Ascending ids, every worker alike: the lock order that rules out deadlocks.
            lock_products: client
                .prepare(
                    "SELECT id, stock, price_cents FROM products
                     WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                )
                .await?,
            // KEY SHARE: what a foreign key check would take; no user vanishes before commit.
            share_users: client
                .prepare("SELECT id FROM users WHERE id = ANY($1) FOR KEY SHARE")
                .await?,
            update_stock: client
                .prepare(
                    "UPDATE products SET stock = changed.stock
                     FROM (SELECT unnest($1::bigint[]) AS id, unnest($2::bigint[]) AS stock)
                          AS changed
                     WHERE products.id = changed.id",
                )
                .await?,
            insert_orders: client
                .prepare(
                    "INSERT INTO orders (sale, id, user_id, status, stream_id)
                     SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[])
                     ON CONFLICT DO NOTHING
                     RETURNING id",
                )
                .await?,
            insert_lines: client
                .prepare(
                    "INSERT INTO order_lines (sale, order_id, product_id, qty, unit_price_cents)
                     SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
                     ON CONFLICT DO NOTHING",
                )
                .await?,
        };
        Ok(BatchWriter { client, statements })
    }

    /// The connection, for reads beside the batches.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Applies `orders` (in stream order) for `sale` in one transaction; returns one outcome
    /// per order.
    pub async fn apply(
        &mut self,
        sale: &str,
        orders: &[BatchOrder],
    ) -> Result<Vec<Outcome>, ApplyError> {
        // The first try assumes a fresh batch; the next ones read what is already stored. A
        // third try is needed only if another worker wrote some of these orders between our
        // read and our insert, which its row locks make all but impossible.
        for read_stored in [false, true, true] {
            if let Some(outcomes) = self.try_apply(sale, orders, read_stored).await? {
                return Ok(outcomes);
            }
        }
        Err(ApplyError::Contended)
    }

    /// One transaction; `None` (rolled back) when some order turned out to be stored already.
    async fn try_apply(
        &mut self,
        sale: &str,
        orders: &[BatchOrder],
        read_stored: bool,
    ) -> Result<Option<Vec<Outcome>>, Error> {
        let statements = &self.statements;
        let tx = self.client.transaction().await?;

        let products: Vec<i64> = orders
            .iter()
            .flat_map(|o| o.entry.lines.iter().map(|(product, _)| *product))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let users: Vec<i64> = orders
            .iter()
            .map(|o| o.user_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let ids: Vec<&str> = orders.iter().map(|o| o.entry.order.as_str()).collect();
        // One round trip, run in this order by the server: the locks first, so the stored
        // verdicts are read after any concurrent writer of these products has committed.
        let (locked, known_users, stored) = tokio::try_join!(
            async { tx.query(&statements.lock_products, &[&products]).await },
            async { tx.query(&statements.share_users, &[&users]).await },
            async {
                if read_stored {
                    tx.query(&statements.stored, &[&sale, &ids]).await
                } else {
                    Ok(Vec::new())
                }
            },
        )?;
        let mut stock: BTreeMap<i64, (i64, i64)> = locked
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect();
        let known_users: BTreeSet<i64> = known_users.iter().map(|row| row.get(0)).collect();
        // Order id → (status, stream entry id) of the orders stored already.
        let stored: HashMap<String, (String, String)> = stored
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect();

        let original: BTreeMap<i64, i64> =
            stock.iter().map(|(id, (units, _))| (*id, *units)).collect();
        let mut decided: HashMap<&str, (&str, Outcome)> = HashMap::new();
        let mut rows = NewRows::default();
        let mut outcomes = Vec::with_capacity(orders.len());
        for order in orders {
            // An order stored already: the same stream entry is a replay and gets the stored
            // verdict; another entry under the same id is a new order reusing a finished
            // one's id (the engine frees an id once the sale's RETAIN has passed), which the
            // database cannot hold twice: refused, so its units go back on sale.
            if let Some((status, stream_id)) = stored.get(&order.entry.order) {
                outcomes.push(if *stream_id == order.stream_id {
                    stored_outcome(status)
                } else {
                    reused_id(order, stream_id)
                });
                continue;
            }
            // The same order twice in one batch: the second is a replay of the first.
            if let Some((stream_id, outcome)) = decided.get(order.entry.order.as_str()) {
                outcomes.push(if *stream_id == order.stream_id {
                    outcome.clone()
                } else {
                    reused_id(order, stream_id)
                });
                continue;
            }
            let outcome = decide(order, &mut stock, &known_users);
            if !matches!(outcome, Outcome::Invalid(_)) {
                rows.add(order, &outcome, &stock);
            }
            decided.insert(&order.entry.order, (&order.stream_id, outcome.clone()));
            outcomes.push(outcome);
        }

        let (changed_ids, changed_units): (Vec<i64>, Vec<i64>) = stock
            .iter()
            .filter(|(id, (units, _))| original.get(id) != Some(units))
            .map(|(id, (units, _))| (*id, *units))
            .unzip();
        // The writes share one round trip too; any error aborts the whole transaction.
        let (_, written) = tokio::try_join!(
            async {
                if changed_ids.is_empty() {
                    return Ok(0);
                }
                tx.execute(&statements.update_stock, &[&changed_ids, &changed_units])
                    .await
            },
            rows.insert(&tx, statements, sale),
        )?;
        if written < rows.order_ids.len() {
            // Some order was stored already: its stock must not be taken again.
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(outcomes))
    }
}

/// Why a batch could not be applied; either way nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database: {0}")]
    Database(#[from] Error),
    #[error("orders of the batch kept appearing from another writer")]
    Contended,
}

/// A new order under the id of another (stored, or earlier in the batch): refused.
fn reused_id(order: &BatchOrder, first_entry: &str) -> Outcome {
    tracing::warn!(
        order = %order.entry.order,
        entry = %order.stream_id,
        first_entry,
        "an order id used again after the first order was finished: refused"
    );
    Outcome::Rejected
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
    order: &BatchOrder,
    stock: &mut BTreeMap<i64, (i64, i64)>,
    known_users: &BTreeSet<i64>,
) -> Outcome {
    if !known_users.contains(&order.user_id) {
        return Outcome::Invalid(format!("unknown user {}", order.user_id));
    }
    if let Some((product, _)) = order
        .entry
        .lines
        .iter()
        .find(|(p, _)| !stock.contains_key(p))
    {
        return Outcome::Invalid(format!("unknown product {product}"));
    }
    let fits = order
        .entry
        .lines
        .iter()
        .all(|(product, qty)| stock.get(product).is_some_and(|(units, _)| units >= qty));
    if !fits {
        return Outcome::Rejected;
    }
    for (product, qty) in &order.entry.lines {
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
    fn add(&mut self, order: &BatchOrder, outcome: &Outcome, stock: &BTreeMap<i64, (i64, i64)>) {
        self.order_ids.push(order.entry.order.clone());
        self.user_ids.push(order.user_id);
        self.statuses.push(if *outcome == Outcome::Confirmed {
            "confirmed"
        } else {
            "rejected"
        });
        self.stream_ids.push(order.stream_id.clone());
        for (product, qty) in &order.entry.lines {
            self.line_orders.push(order.entry.order.clone());
            self.line_products.push(*product);
            self.line_qty.push(*qty);
            self.line_prices
                .push(stock.get(product).map_or(0, |(_, price)| *price));
        }
    }

    async fn insert(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        statements: &Statements,
        sale: &str,
    ) -> Result<usize, Error> {
        if self.order_ids.is_empty() {
            return Ok(0);
        }
        let (orders, _) = tokio::try_join!(
            async {
                let params: [&(dyn ToSql + Sync); 5] = [
                    &sale,
                    &self.order_ids,
                    &self.user_ids,
                    &self.statuses,
                    &self.stream_ids,
                ];
                tx.query(&statements.insert_orders, &params).await
            },
            async {
                let params: [&(dyn ToSql + Sync); 5] = [
                    &sale,
                    &self.line_orders,
                    &self.line_products,
                    &self.line_qty,
                    &self.line_prices,
                ];
                tx.execute(&statements.insert_lines, &params).await
            },
        )?;
        Ok(orders.len())
    }
}
