//! `flash-worker`: run one (or many) order consumers, sync stock, reconcile.
//!
//! Settings come from flags, then the environment, then a `.env` file in the working
//! directory (read at start, never overriding what the environment already says).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use flash_client::FlashClient;
use flash_worker::consumer::{Config, Counters, run};
use flash_worker::migrate::migrate;
use flash_worker::stock::{reconcile, sync, table};
use tokio_postgres::NoTls;
use tracing::info;

#[derive(Parser)]
#[command(
    name = "flash-worker",
    about = "Flash's order worker: the sale's order stream into PostgreSQL"
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Args)]
struct Settings {
    /// The engine: redis-server with the Flash module, or a plain one (the Lua twin).
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379/",
        global = true
    )]
    redis_url: String,
    /// PostgreSQL, e.g. postgres://flash@127.0.0.1:5432/flash.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// The sale whose orders this worker applies.
    #[arg(long, env = "FLASH_SALE", default_value = "demo", global = true)]
    sale: String,
}

#[derive(Subcommand)]
enum Task {
    /// Consume the order stream (the default): migrate, then apply, settle, acknowledge.
    Run(RunArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Load every product's unsold stock into the sale (held and pending units not counted
    /// twice).
    Sync,
    /// Compare the database's stock with the sale's ledger; exit 1 on any difference.
    Reconcile,
}

#[derive(Args, Default)]
struct RunArgs {
    /// Entries per database transaction.
    #[arg(long, env = "FLASH_BATCH_SIZE", default_value_t = 256)]
    batch_size: usize,
    /// This worker's name in the consumer group (default: host and process id). Run many
    /// workers with different names.
    #[arg(long, env = "FLASH_CONSUMER")]
    consumer: Option<String>,
    /// Take over entries pending this long in a consumer presumed dead.
    #[arg(long, default_value_t = 30_000)]
    claim_idle_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match execute(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("flash-worker: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> Result<ExitCode> {
    let settings = cli.settings;
    let database_url = settings.database_url.clone().context(
        "DATABASE_URL is not set: pass --database-url or set it in the environment or .env",
    )?;
    let (mut pg, connection) = tokio_postgres::connect(&database_url, NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {database_url}"))?;
    tokio::spawn(connection);
    let task = cli.task.unwrap_or(Task::Run(RunArgs::default_from_env()));
    match task {
        Task::Migrate => {
            let applied = migrate(&mut pg).await?;
            println!("migrations applied now: {applied:?}");
        }
        Task::Sync => {
            migrate(&mut pg).await?;
            let engine = engine(&settings.redis_url).await?;
            let products = sync(&pg, &engine, &settings.sale).await?;
            println!("loaded {products} products into sale '{}'", settings.sale);
        }
        Task::Reconcile => {
            let engine = engine(&settings.redis_url).await?;
            let rows = reconcile(&pg, &engine, &settings.sale).await?;
            print!("{}", table(&rows));
            if rows.iter().any(|row| !row.matches()) {
                println!("the database and the sale differ");
                return Ok(ExitCode::FAILURE);
            }
            println!("every product matches");
        }
        Task::Run(args) => {
            migrate(&mut pg).await?;
            drop(pg);
            let consumer = args
                .consumer
                .unwrap_or_else(|| flash_worker::consumer::default_consumer_name(""));
            let mut config = Config::new(
                &settings.redis_url,
                &database_url,
                &settings.sale,
                &consumer,
            );
            config.batch_size = args.batch_size.max(1);
            config.claim_idle = Duration::from_millis(args.claim_idle_ms);
            info!(sale = %settings.sale, %consumer, batch_size = config.batch_size, "worker: starting");
            let counters = Arc::new(Counters::default());
            run(config, counters, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await;
            info!("worker: stopped");
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl RunArgs {
    /// `flash-worker` with no subcommand runs with the defaults (and the environment).
    fn default_from_env() -> RunArgs {
        RunArgs {
            batch_size: std::env::var("FLASH_BATCH_SIZE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256),
            consumer: std::env::var("FLASH_CONSUMER").ok(),
            claim_idle_ms: 30_000,
        }
    }
}

async fn engine(url: &str) -> Result<FlashClient> {
    FlashClient::connect(url)
        .await
        .with_context(|| format!("cannot reach the engine at {url}"))
}
