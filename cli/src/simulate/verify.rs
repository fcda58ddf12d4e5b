//! The books after the crowd: the baseline taken before it and the four checks (the waits
//! between are in [`super::waits`]). Each violation is one line naming the product, order
//! or cart.
//!
//! The checks assume the simulator is the sale's only buyer while it runs (a test sale, or
//! a dress rehearsal): stock moved by anyone else shows up as a difference.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result};
use flash_client::{ClientError, ErrorCode, FlashClient, SkuUnits};
use flash_core::model::CartState;
use futures::{StreamExt, stream};
use tokio_postgres::Client;

use super::buyer::{CartRecord, Fate};

/// Each product's stock on both sides before the crowd.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    /// `products.stock` in PostgreSQL: units not yet sold.
    pub database_stock: BTreeMap<i64, i64>,
    /// The engine's ledger per product.
    pub engine: BTreeMap<i64, SkuUnits>,
}

impl Baseline {
    /// A product's database stock at the start (0 for one that was not there).
    pub fn stock_of(&self, product: i64) -> i64 {
        self.database_stock.get(&product).copied().unwrap_or(0)
    }
}

pub async fn baseline(pg: &Client, engine: &FlashClient, sale: &str) -> Result<Baseline> {
    Ok(Baseline {
        database_stock: database_stock(pg).await?,
        engine: engine.info(sale).await?.skus.into_iter().collect(),
    })
}

async fn database_stock(pg: &Client) -> Result<BTreeMap<i64, i64>> {
    Ok(pg
        .query("SELECT id, stock FROM products", &[])
        .await
        .context("reading products from PostgreSQL")?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// What a run leaves to verify: enough to verify again later (the tests tamper with the
/// database and verify once more).
#[derive(Clone, Debug)]
pub struct Journal {
    pub run_id: String,
    pub sale: String,
    /// The default sale (`FLASH_SALE`): which products `sale` sells depends on it (the
    /// default sale also sells every product no sale lists).
    pub default_sale: String,
    /// The products the crowd bought from.
    pub products: Vec<i64>,
    pub baseline: Baseline,
    pub carts: Vec<CartRecord>,
}

/// One check and what broke it.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    /// What was checked, e.g. "10 products".
    pub scope: String,
    pub violations: Vec<String>,
}

/// The checks' results and the figures read on the way.
#[derive(Clone, Debug, Default)]
pub struct Verification {
    pub checks: Vec<Check>,
    /// Units in this run's confirmed orders in PostgreSQL, per product.
    pub sold: BTreeMap<i64, i64>,
    pub orders_confirmed: usize,
    pub orders_rejected: usize,
    /// Orders in PostgreSQL whose checkout got no reply (they count, they are not errors).
    pub orders_unanswered: usize,
    /// Orders answered 202 that neither PostgreSQL nor the engine has: taken by a master that
    /// died before its replica received them (a failover without `--durability replica`).
    /// Counted, not a violation: the books stay exact without them.
    pub orders_lost: Vec<String>,
    /// Carts that held units and that the engine no longer has: made on a master that died
    /// before its replica had them (a failover). Their units were never held on the promoted
    /// master, so they are on sale there; counted, not a violation.
    pub holds_lost: usize,
    /// Carts that held units and were left (abandoned, or refused at checkout), each found
    /// expired.
    pub holds_expired: usize,
    /// Products with no stock left in PostgreSQL.
    pub sold_out: usize,
    pub database_stock: BTreeMap<i64, i64>,
}

impl Verification {
    /// Every violation, prefixed with its check's name.
    pub fn violations(&self) -> Vec<String> {
        self.checks
            .iter()
            .flat_map(|check| {
                check
                    .violations
                    .iter()
                    .map(move |v| format!("{}: {v}", check.name))
            })
            .collect()
    }
}

/// One order of the run as PostgreSQL has it.
#[derive(Debug, Default)]
struct StoredOrder {
    user_id: i64,
    confirmed: bool,
    lines: BTreeMap<i64, i64>,
}

async fn stored_orders(
    pg: &Client,
    sale: &str,
    run_id: &str,
) -> Result<HashMap<String, StoredOrder>> {
    // The run's users are named sim-<run id>-<n>; a run id is hex, so no LIKE wildcard.
    let rows = pg
        .query(
            "SELECT o.id, o.user_id, o.status, l.product_id, l.qty
             FROM orders o
             JOIN users u ON u.id = o.user_id
             LEFT JOIN order_lines l ON l.sale = o.sale AND l.order_id = o.id
             WHERE o.sale = $1 AND u.username LIKE $2",
            &[&sale, &format!("sim-{run_id}-%")],
        )
        .await
        .context("reading the run's orders from PostgreSQL")?;
    let mut orders: HashMap<String, StoredOrder> = HashMap::new();
    for row in &rows {
        let order = orders.entry(row.get(0)).or_default();
        order.user_id = row.get(1);
        order.confirmed = row.get::<_, String>(2) == "confirmed";
        if let (Some(product), Some(qty)) =
            (row.get::<_, Option<i64>>(3), row.get::<_, Option<i64>>(4))
        {
            *order.lines.entry(product).or_default() += qty;
        }
    }
    Ok(orders)
}

/// A cart's state and user in the engine; None when the engine has no such cart.
type EngineCart = Option<(CartState, String)>;

/// The engine's view of every cart the run made.
async fn cart_states(
    engine: &FlashClient,
    sale: &str,
    carts: &[CartRecord],
) -> Result<HashMap<String, EngineCart>> {
    // FLASH.CART per cart, many in flight on the multiplexed connection (pipelined).
    let states: Vec<Result<(String, EngineCart)>> =
        stream::iter(carts.iter().map(|record| &record.cart_id))
            .map(|id| async move {
                match engine.cart(sale, id).await {
                    Ok(view) => Ok((id.clone(), Some((view.state, view.user)))),
                    Err(ClientError::Flash(error)) if error.code == ErrorCode::NoCart => {
                        Ok((id.clone(), None))
                    }
                    Err(other) => {
                        Err(anyhow::Error::new(other).context(format!("FLASH.CART {id}")))
                    }
                }
            })
            .buffer_unordered(128)
            .collect()
            .await;
    states.into_iter().collect()
}

/// Runs the four checks against PostgreSQL and the engine as they are now.
pub async fn verify(pg: &Client, engine: &FlashClient, journal: &Journal) -> Result<Verification> {
    let sale = &journal.sale;
    let stock_now = database_stock(pg).await?;
    let info = engine.info(sale).await?;
    let ledger: BTreeMap<i64, SkuUnits> = info.skus.iter().copied().collect();
    let reconciled = flash_worker::stock::reconcile_sale(pg, engine, sale, &journal.default_sale)
        .await
        .context("reconcile")?;
    let orders = stored_orders(pg, sale, &journal.run_id).await?;
    let states = cart_states(engine, sale, &journal.carts).await?;

    let mut result = Verification {
        database_stock: stock_now.clone(),
        ..Verification::default()
    };
    for order in orders.values() {
        if order.confirmed {
            result.orders_confirmed += 1;
            for (product, qty) in &order.lines {
                *result.sold.entry(*product).or_default() += qty;
            }
        } else {
            result.orders_rejected += 1;
        }
    }
    let sold = |product: i64| result.sold.get(&product).copied().unwrap_or(0);

    // (1) No oversell: the database never goes below zero, and the run never sells more
    // than there was.
    let mut oversell = Vec::new();
    for (product, stock) in &stock_now {
        if *stock < 0 {
            oversell.push(format!("product {product}: database stock is {stock}"));
        }
    }
    for product in &journal.products {
        let before = journal.baseline.stock_of(*product);
        if sold(*product) > before {
            oversell.push(format!(
                "product {product}: {} units sold in confirmed orders, only {before} in stock \
                 at the start",
                sold(*product)
            ));
        }
    }
    result.checks.push(Check {
        name: "no oversell",
        scope: format!("{} products", journal.products.len()),
        violations: oversell,
    });

    // (2) Conservation: the database's unsold stock is the engine's available + held +
    // pending (reconcile), the engine's ledger balances, and both sides moved by exactly
    // the units this run's confirmed orders hold.
    let mut conservation = Vec::new();
    for row in reconciled.iter().filter(|row| !row.matches()) {
        conservation.push(match row.engine {
            Some(engine_units) => format!(
                "product {}: database stock {} but the engine's available + held + pending \
                 is {engine_units}",
                row.product, row.database
            ),
            None => format!(
                "product {}: database stock {} but the sale does not carry it",
                row.product, row.database
            ),
        });
    }
    for (product, units) in &info.skus {
        if !units.is_conserved() {
            conservation.push(format!(
                "product {product}: ledger does not balance: loaded {} ≠ available {} + held \
                 {} + pending {} + sold {}",
                units.loaded, units.available, units.held, units.pending, units.sold
            ));
        }
    }
    if info.total.pending != 0 {
        conservation.push(format!(
            "{} units still pending: orders checked out and not yet in PostgreSQL (is a \
             worker running? the edge runs one unless --no-worker)",
            info.total.pending
        ));
    }
    for product in &journal.products {
        let before = journal.baseline.stock_of(*product);
        let after = stock_now.get(product).copied().unwrap_or(0);
        if before - after != sold(*product) {
            conservation.push(format!(
                "product {product}: database stock went {before} → {after} but this run's \
                 confirmed orders hold {} units (did someone else buy or restock?)",
                sold(*product)
            ));
        }
        let engine_before = journal
            .baseline
            .engine
            .get(product)
            .copied()
            .unwrap_or_default();
        let engine_after = ledger.get(product).copied().unwrap_or_default();
        if engine_after.sold - engine_before.sold != sold(*product) {
            conservation.push(format!(
                "product {product}: the engine's sold went {} → {} but PostgreSQL confirmed \
                 {} units for this run",
                engine_before.sold,
                engine_after.sold,
                sold(*product)
            ));
        }
    }
    result.checks.push(Check {
        name: "conservation",
        scope: format!("{} products", reconciled.len()),
        violations: conservation,
    });

    // (3) Every accepted order in PostgreSQL exactly once (the primary key (sale, id) makes
    // "at most once" structural; this checks "at least", and that it is the cart the buyer
    // saw), settled in the engine as PostgreSQL decided; and no order nobody checked out.
    let mut order_violations = Vec::new();
    let mut checked_out = 0;
    let mut known: HashSet<&str> = HashSet::new();
    for record in &journal.carts {
        let engine_state = states.get(&record.cart_id).cloned().flatten();
        match &record.fate {
            Fate::CheckedOut {
                order_id, units, ..
            } => {
                checked_out += 1;
                known.insert(order_id);
                let Some(stored) = orders.get(order_id) else {
                    match &engine_state {
                        // The engine never made it an order, or forgot it did: lost.
                        None | Some((CartState::Held | CartState::Expired, _)) => {
                            result.orders_lost.push(order_id.clone());
                        }
                        Some((state, _)) => order_violations.push(format!(
                            "order {order_id} (202 to {}) is not in PostgreSQL, the engine \
                             says {}",
                            record.username,
                            state.as_str()
                        )),
                    }
                    continue;
                };
                if Some(stored.user_id) != record.user_id {
                    order_violations.push(format!(
                        "order {order_id}: PostgreSQL says user {}, the buyer was {:?}",
                        stored.user_id, record.user_id
                    ));
                }
                if !record.uncertain && (stored.lines != record.lines || *units != record.units()) {
                    order_violations.push(format!(
                        "order {order_id}: PostgreSQL has {:?}, the checkout said {units} units \
                         and the cart showed {:?}",
                        stored.lines, record.lines
                    ));
                }
                if let Some((_, engine_user)) = &engine_state
                    && record.user_id.map(|id| id.to_string()).as_ref() != Some(engine_user)
                {
                    order_violations.push(format!(
                        "order {order_id}: the engine says user {engine_user}, the buyer was {:?}",
                        record.user_id
                    ));
                }
                if let Some(mismatch) = verdict_mismatch(order_id, stored, engine_state.as_ref()) {
                    order_violations.push(mismatch);
                }
            }
            Fate::CheckoutUnknown => match orders.get(&record.cart_id) {
                Some(stored) => {
                    known.insert(&record.cart_id);
                    result.orders_unanswered += 1;
                    if let Some(mismatch) =
                        verdict_mismatch(&record.cart_id, stored, engine_state.as_ref())
                    {
                        order_violations.push(mismatch);
                    }
                }
                None => {
                    if let Some((state, _)) = engine_state.filter(|(state, _)| state.is_order()) {
                        order_violations.push(format!(
                            "order {} is {} in the engine but not in PostgreSQL",
                            record.cart_id,
                            state.as_str()
                        ));
                    }
                }
            },
            _ => {}
        }
    }
    for id in orders.keys() {
        if !known.contains(id.as_str()) {
            order_violations.push(format!(
                "order {id} is in PostgreSQL but no buyer of this run checked it out"
            ));
        }
    }
    result.checks.push(Check {
        name: "orders exactly once",
        scope: format!("{checked_out} accepted checkouts"),
        violations: order_violations,
    });

    // (4) Every hold left behind ran out: carts that held units and were never checked out
    // are expired, carts whose every add was refused were never made, and nothing is held.
    let mut hold_violations = Vec::new();
    let mut left = 0;
    for record in &journal.carts {
        let state = states.get(&record.cart_id).cloned().flatten();
        let cart = &record.cart_id;
        match &record.fate {
            Fate::CheckedOut { order_id, .. } => {
                // A lost order's cart is where the surviving master had it: its hold must
                // have run out too.
                if let Some((CartState::Held, _)) = state
                    && result.orders_lost.contains(order_id)
                {
                    hold_violations.push(format!("cart {cart} (a lost order) is still held"));
                }
            }
            Fate::CheckoutUnknown => {
                // Without a reply the cart may be an order (checked above) or a hold, and a
                // hold must have run out.
                if let Some((CartState::Held, _)) = state {
                    hold_violations.push(format!("cart {cart} is still held"));
                }
            }
            _ if record.held => {
                left += 1;
                match state {
                    Some((CartState::Expired, _)) => result.holds_expired += 1,
                    Some((other, _)) => hold_violations.push(format!(
                        "cart {cart} ({:?}) is {} in the engine, expected expired",
                        record.fate,
                        other.as_str()
                    )),
                    None => result.holds_lost += 1,
                }
            }
            _ if record.uncertain => {
                // An add without a reply may have made the cart; it must not be held.
                if let Some((CartState::Held, _)) = state {
                    hold_violations.push(format!("cart {cart} is still held"));
                }
            }
            _ => {
                if let Some((state, _)) = state {
                    hold_violations.push(format!(
                        "cart {cart}: every add was refused, yet the engine has it ({})",
                        state.as_str()
                    ));
                }
            }
        }
    }
    if info.total.held != 0 || info.held_carts != 0 {
        hold_violations.push(format!(
            "{} units still held in {} carts at the end",
            info.total.held, info.held_carts
        ));
    }
    result.checks.push(Check {
        name: "holds released",
        scope: format!("{left} carts that held units and were not checked out"),
        violations: hold_violations,
    });

    result.sold_out = journal
        .products
        .iter()
        .filter(|product| stock_now.get(product).copied() == Some(0))
        .count();
    Ok(result)
}

/// The engine's state of an order must be PostgreSQL's verdict: settled for confirmed,
/// rejected for rejected.
fn verdict_mismatch(
    order_id: &str,
    stored: &StoredOrder,
    engine_state: Option<&(CartState, String)>,
) -> Option<String> {
    let (expected, verdict) = if stored.confirmed {
        (CartState::Settled, "confirmed")
    } else {
        (CartState::Rejected, "rejected")
    };
    let state = engine_state.map(|(state, _)| *state);
    // An order the database has and the engine does not know as one: a failover took it back
    // after the worker had written it (its units are on sale again in the engine).
    let forgotten = match state {
        None | Some(CartState::Held | CartState::Expired) => {
            " (forgotten by the engine: was the worker run without --durability replica \
             through a failover?)"
        }
        _ => "",
    };
    (state != Some(expected)).then(|| {
        format!(
            "order {order_id}: PostgreSQL says {verdict}, the engine says {}{forgotten}",
            state.map_or("no such cart", CartState::as_str)
        )
    })
}
