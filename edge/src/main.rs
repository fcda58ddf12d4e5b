//! `flash-edge`: the HTTP/WebSocket server of one sale, with the order worker embedded
//! unless `--no-worker`.

use clap::Parser;
use flash_edge::settings::EdgeSettings;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    version,
    about = "Flash's edge: the JSON API, the browser UI and live stock"
)]
struct Cli {
    #[command(flatten)]
    settings: EdgeSettings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("flash-edge: ignoring .env: {error}");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    flash_edge::server::run(cli.settings, |_| {}, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
