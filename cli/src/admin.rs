//! The operator's tools: the worker, the sale, stock, reconcile, orders, migrations.

use flash_core::model::Seed;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use flash_client::SaleSettings;
use flash_core::ErrorCode;
use flash_worker::SaleSet;
use flash_worker::consumer::Counters;
use flash_worker::sale_set::DEFAULT_CATALOG_REFRESH;
use flash_worker::settings::WorkerSettings;
use flash_worker::stock::{reconcile_sale, sync_sale, table};
use tracing::info;

use crate::common::{Common, DEFAULT_SALE, Servers, stop_signal};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub servers: Servers,
    /// The default sale: consumed when no --sale is given, and always with --all-sales.
    #[arg(long, env = "FLASH_SALE", default_value = DEFAULT_SALE)]
    pub default_sale: String,
    /// A sale to consume; repeat it (or give a comma-separated list) for more. Default: the
    /// default sale.
    #[arg(long = "sale", value_delimiter = ',')]
    pub sales: Vec<String>,
    /// Consume the default sale and every sale recorded in PostgreSQL (`flash sale create
    /// --title/--products`), reading them again every --sales-refresh-ms: a sale recorded
    /// while this runs is consumed too, once FLASH.SALE has made it.
    #[arg(long)]
    pub all_sales: bool,
    /// With --all-sales: how often to look for new sales, in milliseconds.
    #[arg(long, env = "FLASH_SALES_REFRESH_MS", default_value_t = DEFAULT_CATALOG_REFRESH.as_millis() as u64)]
    pub sales_refresh_ms: u64,
    #[command(flatten)]
    pub worker: WorkerSettings,
    /// This worker's name in the consumer groups (default: host and process id). Run many
    /// workers with different names; restart one under its old name to finish its entries.
    #[arg(long, env = "FLASH_CONSUMER")]
    pub consumer: Option<String>,
}

impl WorkerArgs {
    /// The sales this worker consumes.
    pub fn sale_set(&self) -> SaleSet {
        let mut named = self.sales.clone();
        if named.is_empty() || self.all_sales {
            named.insert(0, self.default_sale.clone());
        }
        named.dedup();
        SaleSet {
            named,
            // Zero would read the catalog in a loop.
            catalog_refresh: self
                .all_sales
                .then(|| Duration::from_millis(self.sales_refresh_ms.max(100))),
        }
    }
}

/// `flash worker`: migrates, then consumes the sales' order streams until Ctrl-C or SIGTERM
/// (each sale's batch in hand is finished first).
pub async fn worker(args: WorkerArgs) -> Result<ExitCode> {
    let servers = &args.servers;
    let sales = args.sale_set();
    let config = args.worker.config(
        &servers.redis_url,
        servers.database_url()?,
        &args.default_sale,
        args.consumer.as_deref(),
        "",
    );
    flash_worker::migrate::migrate(&mut servers.database().await?).await?;
    info!(sales = ?sales.named, all_sales = args.all_sales, consumer = %config.consumer, batch_size = config.batch_size, "worker: starting");
    flash_worker::run_sales(config, sales, Arc::new(Counters::default()), stop_signal()?).await;
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
        #[command(flatten)]
        queue: Box<QueueArgs>,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// The sale's settings and its ledger per product.
    Show,
}

/// The sale's waiting room (README, "Waiting room"): `--queue-rate` or `--queue-cap` above 0
/// turns it on (both 0: off).
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Shoppers admitted per second (0: no rate, only the cap).
    #[arg(long)]
    pub queue_rate: Option<i64>,
    /// Most admitted shoppers shopping at once (0: no cap).
    #[arg(long)]
    pub queue_cap: Option<i64>,
    /// How long an admission lasts unused, ms (default 60000).
    #[arg(long)]
    pub admit_ms: Option<i64>,
    /// How long a waiting shopper may go without a sign of life before losing the place, ms
    /// (default 30000).
    #[arg(long)]
    pub idle_ms: Option<i64>,
    /// The seed of the pre-queue's draw (32 to 48 hex digits). Without it, turning the room
    /// on makes a random one; its SHA-1 is published with the sale, the seed at START.
    #[arg(long, value_parser = parse_seed)]
    pub seed: Option<Seed>,
}

fn parse_seed(text: &str) -> std::result::Result<Seed, String> {
    Seed::parse(text.as_bytes()).ok_or_else(|| "32 to 48 hex digits".to_owned())
}

/// A random seed for a waiting room: 32 hex digits (128 bits) from the OS's generator.
pub fn random_seed() -> Seed {
    let digits: String = (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    Seed::parse(digits.as_bytes()).unwrap_or_default()
}

/// What `sale create` records in PostgreSQL's catalog, besides the engine's settings.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// What shoppers see when they pick the sale; records the sale in PostgreSQL (`sales`).
    #[arg(long)]
    pub title: Option<String>,
    /// Products this sale sells (ids, comma-separated); records the sale in PostgreSQL and
    /// loads their stock into it. A product another sale sells is refused.
    #[arg(long, value_delimiter = ',')]
    pub products: Vec<i64>,
}

pub async fn sale(args: SaleArgs) -> Result<ExitCode> {
    let common = &args.common;
    let name = common.sale();
    match args.action {
        SaleAction::Create {
            hold_ms,
            limit,
            start_ms,
            end_ms,
            retain_ms,
            queue,
            catalog,
        } => {
            let engine = common.engine().await?;
            let turns_on =
                queue.queue_rate.is_some_and(|r| r > 0) || queue.queue_cap.is_some_and(|c| c > 0);
            let seed = match queue.seed {
                Some(seed) => Some(seed),
                // A room turned on needs a seed: a new one unless the sale has one already.
                None if turns_on => match engine.info(name).await {
                    Ok(info) if info.queue.is_some() => None,
                    _ => Some(random_seed()),
                },
                None => None,
            };
            let settings = SaleSettings {
                hold_ms,
                limit,
                start_ms,
                end_ms,
                retain_ms,
                queue_rate: queue.queue_rate,
                queue_cap: queue.queue_cap,
                admit_ms: queue.admit_ms,
                idle_ms: queue.idle_ms,
                seed,
            };
            // The catalog first: a refused product leaves the engine as it was.
            let mut pg = None;
            if catalog.title.is_some() || !catalog.products.is_empty() {
                let mut client = common.database().await?;
                flash_worker::migrate::migrate(&mut client).await?;
                record(&mut client, &engine, common, &catalog).await?;
                pg = Some(client);
            }
            engine.sale(name, &settings).await?;
            println!("sale '{name}' saved");
            if let Some(pg) = pg {
                let products = sync_sale(&pg, &engine, name, &common.default_sale).await?;
                println!("loaded {products} products into sale '{name}'");
            }
            show(&engine, name).await?;
        }
        SaleAction::Show => show(&common.engine().await?, name).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Records the sale in the catalog. A product leaving the default sale for this one is
/// refused while the default sale still carries units of it in the engine: both sales would
/// sell them.
async fn record(
    pg: &mut tokio_postgres::Client,
    engine: &flash_client::FlashClient,
    common: &Common,
    catalog: &CatalogArgs,
) -> Result<()> {
    let name = common.sale();
    let default_sale = &common.default_sale;
    let mut products = catalog.products.clone();
    products.sort_unstable();
    products.dedup();
    if name != default_sale && !products.is_empty() {
        let in_default: Vec<i64> = flash_worker::sales::products(pg, default_sale, default_sale)
            .await?
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let moving: Vec<i64> = products
            .iter()
            .copied()
            .filter(|id| in_default.contains(id))
            .collect();
        if !moving.is_empty() {
            let carried = match engine.info(default_sale).await {
                Ok(info) => info.skus,
                Err(error) if error.code() == Some(ErrorCode::NoSale) => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            for (sku, units) in carried {
                let unsold = units.available + units.held + units.pending;
                if moving.contains(&sku) && unsold > 0 {
                    bail!(
                        "product {sku} is on sale in the default sale '{default_sale}' ({unsold} \
                         units available, held or pending there): take it off first \
                         (`redis-cli FLASH.LOAD {default_sale} {sku} 0`, once its carts and \
                         orders are finished), then record it in '{name}'"
                    );
                }
            }
        }
    }
    flash_worker::sales::record(pg, name, catalog.title.as_deref(), &products)
        .await
        .map_err(|error| anyhow::anyhow!("{}: {error}", error.code()))?;
    println!(
        "sale '{name}' recorded in PostgreSQL{}",
        if products.is_empty() {
            String::new()
        } else {
            format!(" with products {products:?}")
        }
    );
    Ok(())
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
    if let Some(queue) = &info.queue {
        println!(
            "waiting room: rate {}/s, cap {}, admission {} ms, idle {} ms; {} waiting, {} admitted now ({} ever, {} lapsed, {} abandoned)",
            queue.rate,
            if queue.cap == 0 {
                "none".to_owned()
            } else {
                queue.cap.to_string()
            },
            queue.admit_ms,
            queue.idle_ms,
            queue.line,
            queue.admitted_now,
            queue.admitted,
            queue.lapsed,
            queue.abandoned,
        );
        println!(
            "draw commitment sha1(seed) {}; seed {}",
            queue.seed_sha1,
            queue.seed.as_deref().unwrap_or("(revealed at START)"),
        );
    }
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
    /// Load the unsold stock of the sale's products from PostgreSQL into it (those the
    /// catalog lists for it; for the default sale also every product no sale lists); units
    /// held in carts or waiting in orders are not counted twice.
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
            let sale = args.common.sale();
            let products = sync_sale(&pg, &engine, sale, &args.common.default_sale).await?;
            println!("loaded {products} products into sale '{sale}'");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn reconcile(common: &Common) -> Result<ExitCode> {
    let pg = common.database().await?;
    let engine = common.engine().await?;
    let rows = reconcile_sale(&pg, &engine, common.sale(), &common.default_sale).await?;
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
            &[&args.common.sale(), &args.status, &args.limit.clamp(1, 10_000)],
        )
        .await?;
    println!(
        "{:<38} {:<16} {:<10} {:>6} {:>11} {:<12} created",
        "order", "user", "database", "units", "total", "engine"
    );
    for row in &rows {
        let id: String = row.get(0);
        let engine_state = match engine.cart(args.common.sale(), &id).await {
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
    let info = engine.info(args.common.sale()).await?;
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
