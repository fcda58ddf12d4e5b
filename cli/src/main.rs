//! `flash`: the command line. Settings come from flags, then the environment, then `.env`
//! in the working directory. The commands themselves are in the library (`lib.rs`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flash_cli::{admin, common, simulate, up};
use flash_edge::settings::EdgeSettings;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "flash",
    version,
    about = "Flash: a flash-sale engine. `flash up` runs a whole sale on this machine.",
    long_about = "Flash: a flash-sale engine.\n\n`flash up` runs a whole sale on this machine \
                  (redis-server with the Flash module, PostgreSQL, the edge with its worker) \
                  and serves it on http://127.0.0.1:8000. The other commands run one part, or \
                  inspect and check a running sale.\n\nSettings come from flags, the \
                  environment (REDIS_URL, DATABASE_URL, FLASH_SALE, …) and .env."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything here: redis-server with the module, PostgreSQL (unless DATABASE_URL is
    /// set), migrations, a demo catalog and sale, the edge and its worker. Ctrl-C stops it.
    Up(up::UpArgs),
    /// Serve the HTTP API, the UI and live stock (with the order worker, unless --no-worker).
    Edge(Box<EdgeSettings>),
    /// Apply checked-out orders to PostgreSQL (run one or many).
    Worker(admin::WorkerArgs),
    /// Create, change or show the sale.
    Sale(admin::SaleArgs),
    /// The sale's stock: load it from PostgreSQL.
    Stock(admin::StockArgs),
    /// Compare PostgreSQL's stock with the sale's ledger; exit 1 on any difference.
    Reconcile(common::Common),
    /// Recent orders and their states.
    Orders(admin::OrdersArgs),
    /// Apply the database migrations.
    Migrate(common::Common),
    /// A flash crowd of virtual buyers through the HTTP edge, then verify the books.
    Simulate(simulate::SimulateArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("flash: ignoring .env: {error}");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                // The migrations' "already exists, skipping" notices are not news.
                .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
        Command::Edge(settings) => edge(*settings).await,
        Command::Worker(args) => admin::worker(args).await,
        Command::Sale(args) => admin::sale(args).await,
        Command::Stock(args) => admin::stock(args).await,
        Command::Reconcile(common) => admin::reconcile(&common).await,
        Command::Orders(args) => admin::orders(args).await,
        Command::Migrate(common) => admin::migrate(&common).await,
        Command::Simulate(args) => simulate::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("flash: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `flash edge`: serves until Ctrl-C or SIGTERM, then drains (and its worker finishes the
/// batch in hand).
async fn edge(settings: EdgeSettings) -> anyhow::Result<ExitCode> {
    flash_edge::server::run(settings, |_| {}, common::stop_signal()?).await?;
    Ok(ExitCode::SUCCESS)
}
