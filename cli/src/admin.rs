//! The operator's tools: the worker, the sale, stock, reconcile, orders, migrations.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use flash_client::SaleSettings;
use flash_worker::consumer::Counters;
use flash_worker::settings::WorkerSettings;
use flash_worker::stock::{reconcile as compare, sync, table};
use tracing::info;

use crate::common::{Common, stop_signal};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub worker: WorkerSettings,
    /// This worker's name in the consumer group (default: host and process id). Run many
    /// workers with different names; restart one under its old name to finish its entries.
    #[arg(long, env = "FLASH_CONSUMER")]
    pub consumer: Option<String>,
}

/// `flash worker`: migrates, then consumes the order stream until Ctrl-C or SIGTERM (the
/// batch in hand is finished first).
pub async fn worker(args: WorkerArgs) -> Result<ExitCode> {
    let common = &args.common;
    let config = args.worker.config(
        &common.redis_url,
        common.database_url()?,
        &common.sale,
        args.consumer.as_deref(),
        "",
    );
    flash_worker::migrate::migrate(&mut common.database().await?).await?;
    info!(sale = %config.sale, consumer = %config.consumer, batch_size = config.batch_size, "worker: starting");
    flash_worker::consumer::run(config, Arc::new(Counters::default()), stop_signal()?).await;
    info!("worker: stopped");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct SaleArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub action: SaleAction,
}

#[derive(Debug, Subcommand)]
pub enum SaleAction {
    /// Create the sale, or change the settings given (the others keep their values).
    Create {
        /// The cart timer, in milliseconds.
        #[arg(long)]
        hold_ms: Option<i64>,
        /// Units one user may hold, check out and buy in this sale (0: no cap).
        #[arg(long)]
        limit: Option<i64>,
        /// Opening time, unix milliseconds (0: open now).
        #[arg(long)]
        start_ms: Option<i64>,
        /// Closing time, unix milliseconds (0: never).
        #[arg(long)]
        end_ms: Option<i64>,
        /// How long a finished cart (settled, rejected, expired) is kept, ms (0: forever;
        /// default one day).
        #[arg(long)]
        retain_ms: Option<i64>,
    },
    /// The sale's settings and its ledger per product.
    Show,
}

pub async fn sale(args: SaleArgs) -> Result<ExitCode> {
    let engine = args.common.engine().await?;
    let name = &args.common.sale;
    match args.action {
        SaleAction::Create {
            hold_ms,
            limit,
            start_ms,
            end_ms,
            retain_ms,
        } => {
            let settings = SaleSettings {
                hold_ms,
                limit,
                start_ms,
                end_ms,
                retain_ms,
            };
            engine.sale(name, &settings).await?;
            println!("sale '{name}' saved");
            show(&engine, name).await?;
        }
        SaleAction::Show => show(&engine, name).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(engine: &flash_client::FlashClient, name: &str) -> Result<()> {
    let info = engine
        .info(name)
        .await
        .with_context(|| format!("no sale '{name}' (create it: flash sale create)"))?;
    let when = |ms: i64| {
        if ms == 0 {
            "-".to_owned()
        } else {
            ms.to_string()
        }
    };
    println!(
        "sale {name}: {}, hold {} ms, limit {}, start {}, end {}, finished carts kept {}, {} held carts",
        if info.open { "open" } else { "closed" },
        info.hold_ms,
        if info.limit == 0 {
            "none".to_owned()
        } else {
            info.limit.to_string()
        },
        when(info.start_ms),
        when(info.end_ms),
        if info.retain_ms == 0 {
            "forever".to_owned()
        } else {
            format!("{} ms", info.retain_ms)
        },
        info.held_carts,
    );
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "product", "loaded", "available", "held", "pending", "sold"
    );
    for (sku, units) in info.skus.iter().chain(std::iter::once(&(0, info.total))) {
        println!(
            "{:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            if *sku == 0 {
                "total".to_owned()
            } else {
                sku.to_string()
            },
            units.loaded,
            units.available,
            units.held,
            units.pending,
            units.sold
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct StockArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub action: StockAction,
}

#[derive(Debug, Subcommand)]
pub enum StockAction {
    /// Load every product's unsold stock from PostgreSQL into the sale; units held in carts
    /// or waiting in orders are not counted twice.
    Sync,
    /// Put `flash up`'s demo catalog (41 products) into PostgreSQL, only if it has no
    /// products yet; `stock sync` then loads it into the sale.
    Demo,
}

pub async fn stock(args: StockArgs) -> Result<ExitCode> {
    match args.action {
        StockAction::Demo => {
            let mut pg = args.common.database().await?;
            flash_worker::migrate::migrate(&mut pg).await?;
            let added = crate::up::demo::seed_if_empty(&mut pg).await?;
            if added == 0 {
                println!("the database has products already: the demo catalog was not added");
            } else {
                println!("added the demo catalog: {added} products");
            }
        }
        StockAction::Sync => {
            let mut pg = args.common.database().await?;
            flash_worker::migrate::migrate(&mut pg).await?;
            let engine = args.common.engine().await?;
            let products = sync(&pg, &engine, &args.common.sale).await?;
            println!(
                "loaded {products} products into sale '{}'",
                args.common.sale
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn reconcile(common: &Common) -> Result<ExitCode> {
    let pg = common.database().await?;
    let engine = common.engine().await?;
    let rows = compare(&pg, &engine, &common.sale).await?;
    print!("{}", table(&rows));
    if rows.iter().any(|row| !row.matches()) {
        println!(
            "the database and the sale differ (if orders are still being applied, run again \
             once the worker has caught up)"
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("every product matches: database stock = available + held + pending");
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(common: &Common) -> Result<ExitCode> {
    let applied = flash_worker::migrate::migrate(&mut common.database().await?).await?;
    if applied.is_empty() {
        println!("the schema is up to date");
    } else {
        println!("applied migrations {applied:?}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct OrdersArgs {
    #[command(flatten)]
    pub common: Common,
    /// How many of the most recent orders.
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    /// Only orders with this status in PostgreSQL (confirmed or rejected).
    #[arg(long)]
    pub status: Option<String>,
}

/// Recent orders from PostgreSQL, each with its state in the engine beside it, and the
/// stream's backlog (orders checked out, not yet in PostgreSQL).
pub async fn orders(args: OrdersArgs) -> Result<ExitCode> {
    let pg = args.common.database().await?;
    let engine = args.common.engine().await?;
    let rows = pg
        .query(
            "SELECT o.id, u.username, o.status, o.created_at::text,
                    coalesce(sum(l.qty), 0)::bigint, coalesce(sum(l.qty * l.unit_price_cents), 0)::bigint
             FROM orders o
             LEFT JOIN users u ON u.id = o.user_id
             LEFT JOIN order_lines l ON l.sale = o.sale AND l.order_id = o.id
             WHERE o.sale = $1 AND ($2::text IS NULL OR o.status = $2)
             GROUP BY o.sale, o.id, u.username
             ORDER BY o.created_at DESC, o.id
             LIMIT $3",
            &[&args.common.sale, &args.status, &args.limit.clamp(1, 10_000)],
        )
        .await?;
    println!(
        "{:<38} {:<16} {:<10} {:>6} {:>11} {:<12} created",
        "order", "user", "database", "units", "total", "engine"
    );
    for row in &rows {
        let id: String = row.get(0);
        let engine_state = match engine.cart(&args.common.sale, &id).await {
            Ok(view) => view.state.as_str().to_owned(),
            Err(error) => error.code().map_or("?", |code| code.as_str()).to_owned(),
        };
        let cents: i64 = row.get(5);
        println!(
            "{:<38} {:<16} {:<10} {:>6} {:>11} {:<12} {}",
            id,
            row.get::<_, Option<String>>(1).unwrap_or_default(),
            row.get::<_, String>(2),
            row.get::<_, i64>(4),
            format!("{}.{:02}", cents / 100, cents % 100),
            engine_state,
            row.get::<_, String>(3),
        );
    }
    let info = engine.info(&args.common.sale).await?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    println!(
        "{} orders shown; in the engine now: {} units pending (checked out, not yet in \
         PostgreSQL), {} held in {} carts (at {now_ms})",
        rows.len(),
        info.total.pending,
        info.total.held,
        info.held_carts
    );
    Ok(ExitCode::SUCCESS)
}
