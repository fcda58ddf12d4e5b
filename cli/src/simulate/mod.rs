//! `flash simulate`: a flash crowd of virtual buyers through the real HTTP edge, then a
//! verification of the books in PostgreSQL and the engine.
//!
//! Map of the module:
//! - here: the command's flags ([`SimulateArgs`]), [`Config`], and [`simulate`] (setup,
//!   crowd, waits, checks, chart).
//! - [`buyer`]: the API as the crowd calls it (flash-api-client, timed), and one buyer's
//!   journey ([`CartRecord`]).
//! - [`stats`]: latency per route, error words, the per-second timeline.
//! - [`waits`]: the drain and the release of holds after the crowd, timed by a monitor.
//! - [`verify`]: the baseline before the crowd and the four checks after it.
//! - [`report`]: the [`Report`] a run returns and prints.
//! - [`chart`]: the PNG (throughput and p99 latency per second).
//! - [`queue`]: `--queue`, the waiting room's crowd and its fairness checks.

pub mod buyer;
pub mod chart;
pub mod queue;
pub mod report;
pub mod stats;
pub mod verify;
pub mod waits;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use crate::common::Common;
pub use buyer::{CartRecord, Fate};
pub use report::{Fates, Report};
pub use stats::Summary;
pub use verify::{Journal, Verification};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Redis, PostgreSQL and the sale: the verification reads both directly.
    #[command(flatten)]
    pub common: Common,
    /// The edge the crowd goes through. Run it without rate limits (`--rate-per-ip 0
    /// --rate-per-user 0`): the whole crowd comes from one address.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Virtual buyers, each with its own user and cart.
    #[arg(long, default_value_t = 20_000)]
    pub buyers: usize,
    /// Buyers in flight at once (each on its own keep-alive connection).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Buy from the first N products on sale (default: all of them). The first ones are the
    /// hot ones: product k is picked in proportion to 1/k.
    #[arg(long)]
    pub products: Option<usize>,
    /// The fraction of buyers who leave their cart; their holds must run out by themselves.
    #[arg(long, default_value_t = 0.15, value_parser = fraction)]
    pub abandon: f64,
    /// The fraction of buyers who remove one line before deciding.
    #[arg(long, default_value_t = 0.15, value_parser = fraction)]
    pub remove: f64,
    /// Where to write the chart (throughput and p99 latency per second).
    #[arg(long, default_value = "simulate.png")]
    pub chart: PathBuf,
    /// Do not write the chart.
    #[arg(long)]
    pub no_chart: bool,
    /// How long to wait, after the crowd, for the orders to reach PostgreSQL, and for the
    /// abandoned holds to run out past their deadline.
    #[arg(long, default_value_t = 60)]
    pub wait_timeout_secs: u64,
    /// The seed of the buyers' choices (default: random; the report prints it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulate the waiting room instead: arrivals join a sale of their own (made for the
    /// run, with a waiting room), half before it opens, and the run checks the room is fair
    /// (`queue.rs`). Talks to the engine only (`REDIS_URL`).
    #[arg(long)]
    pub queue: bool,
    /// With `--queue`: shoppers arriving.
    #[arg(long, default_value_t = 100_000)]
    pub arrivals: usize,
    /// With `--queue`: shoppers admitted per second.
    #[arg(long, default_value_t = 2_000)]
    pub queue_rate: i64,
    /// With `--queue`: seconds from the first arrival to START (half the crowd arrives in
    /// them; the rest after START, twice as fast as they are admitted).
    #[arg(long, default_value_t = 10)]
    pub pre_start_secs: u64,
    /// With `--queue`: the fraction of arrivals who close the page after joining.
    #[arg(long, default_value_t = 0.02, value_parser = fraction)]
    pub queue_abandon: f64,
    /// With `--queue`: how often a waiting shopper asks for their place, ms.
    #[arg(long, default_value_t = 2_000)]
    pub queue_poll_ms: u64,
    /// With `--queue`: the sale's IDLE, ms (a shopper silent this long loses the place).
    #[arg(long, default_value_t = 10_000)]
    pub queue_idle_ms: i64,
    /// With `--queue`: where to write the admission timeline chart.
    #[arg(long, default_value = "simulate-queue.png")]
    pub queue_chart: PathBuf,
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=1.0).contains(&value) => Ok(value),
        _ => Err(format!("{text} is not a fraction between 0 and 1")),
    }
}

/// A run's settings, for [`simulate`].
#[derive(Clone, Debug)]
pub struct Config {
    /// The edge's base URL, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    pub common: Common,
    pub buyers: usize,
    pub concurrency: usize,
    pub products: Option<usize>,
    pub abandon: f64,
    pub remove: f64,
    pub chart: Option<PathBuf>,
    pub wait_timeout: Duration,
    pub seed: Option<u64>,
    /// Draw the progress bar (on stderr, and only on a terminal).
    pub progress: bool,
}

impl From<SimulateArgs> for Config {
    fn from(args: SimulateArgs) -> Config {
        Config {
            url: args.url,
            common: args.common,
            buyers: args.buyers,
            concurrency: args.concurrency,
            products: args.products,
            abandon: args.abandon,
            remove: args.remove,
            chart: (!args.no_chart).then_some(args.chart),
            wait_timeout: Duration::from_secs(args.wait_timeout_secs),
            seed: args.seed,
            progress: true,
        }
    }
}

pub async fn run(args: SimulateArgs) -> Result<ExitCode> {
    if args.queue {
        let config = queue::QueueConfig {
            arrivals: args.arrivals,
            rate: args.queue_rate,
            pre_start: Duration::from_secs(args.pre_start_secs),
            abandon: args.queue_abandon,
            poll: Duration::from_millis(args.queue_poll_ms.max(10)),
            idle_ms: args.queue_idle_ms,
            chart: (!args.no_chart).then_some(args.queue_chart),
            seed: args.seed,
        };
        let report = queue::simulate_queue(&args.common, &config).await?;
        print!("{report}");
        return Ok(if report.violations.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let report = simulate(&Config::from(args)).await?;
    print!("{report}");
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Everything on sale, in the catalog's order (the edge serves at most 60 per page).
async fn products_on_sale(api: &buyer::Api) -> Result<Vec<(i64, i64)>> {
    let mut products = Vec::new();
    let mut skip = 0;
    loop {
        let page = api.products(skip, 60).await?;
        products.extend(
            page.items
                .iter()
                .filter(|item| item.on_sale)
                .map(|item| (item.id, item.available)),
        );
        skip += page.items.len() as u64;
        if page.items.is_empty() || skip >= page.total {
            return Ok(products);
        }
    }
}

fn spinner(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
        spinner.set_style(style);
    }
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner
}

/// Stops a helper task (the progress ticker) when the run ends, or fails half-way.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const RATE_LIMITED_HINT: &str = "the edge answers 429 RATE_LIMITED: its rate limits are on. \
     The whole crowd comes from one address, so run the edge with --rate-per-ip 0 \
     --rate-per-user 0 (flash up takes them too); these requests count as rejects";

/// Runs a whole simulation: setup, the crowd, the waits, the checks and the chart.
pub async fn simulate(config: &Config) -> Result<Report> {
    if config.buyers == 0 || config.concurrency == 0 {
        bail!("--buyers and --concurrency must be at least 1");
    }
    if !(0.0..=1.0).contains(&config.abandon) || !(0.0..=1.0).contains(&config.remove) {
        bail!("--abandon and --remove are fractions between 0 and 1");
    }
    let concurrency = config.concurrency.min(config.buyers);
    let setup = buyer::Api::new(&config.url)?;
    let sale_reply = setup.sale().await?;
    let sale = sale_reply.sale;
    if sale != config.common.sale() {
        bail!(
            "the edge at {} serves sale '{sale}', but the sale to verify is '{}': pass --sale \
             {sale} (or set FLASH_SALE)",
            config.url,
            config.common.sale()
        );
    }
    if !sale_reply.open {
        bail!("sale '{sale}' is not open (flash sale create --start-ms 0 --end-ms 0 opens it)");
    }
    let hold_ms = sale_reply.hold_ms;
    let mut products = products_on_sale(&setup).await?;
    if let Some(first) = config.products {
        products.truncate(first.max(1));
    }
    if products.iter().all(|(_, available)| *available == 0) {
        bail!(
            "sale '{sale}' has nothing to sell ({} products, no unit available): load stock \
             with `flash stock sync`",
            products.len()
        );
    }
    let product_ids: Vec<i64> = products.iter().map(|(id, _)| *id).collect();

    let pg = config.common.database().await?;
    let engine = config.common.engine().await?;
    // Orders pending from before would move stock during the run and spoil the comparison of
    // the books before and after it.
    if waits::wait_drained(&engine, &sale, config.wait_timeout, |_| {})
        .await?
        .is_none()
    {
        bail!(
            "sale '{sale}' has units pending from before the run and they did not drain in {} \
             s: is a worker running?",
            config.wait_timeout.as_secs()
        );
    }
    let baseline = verify::baseline(&pg, &engine, &sale).await?;
    let seed = config.seed.unwrap_or_else(rand::random);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    let monitor = waits::Monitor::start(engine.clone(), sale.clone());
    // The crowd: `concurrency` tasks, each taking the next buyer until none is left.
    let started = Instant::now();
    let stats = Arc::new(stats::Stats::new(started));
    let shop = Arc::new(buyer::Shop::new(
        product_ids.clone(),
        config.abandon,
        config.remove,
    )?);
    let bar = if config.progress {
        ProgressBar::new(config.buyers as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "[{elapsed_precise}] [{bar:40.cyan/blue}] {pos}/{len} buyers, {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    // Each task on a keep-alive connection of its own, for one buyer after another.
    for _ in 0..concurrency {
        let api = buyer::Api::new(&config.url)?.recording(stats.clone());
        let (shop, next, bar) = (shop.clone(), next.clone(), bar.clone());
        let (run_id, buyers) = (run_id.clone(), config.buyers);
        tasks.spawn(async move {
            let mut records = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= buyers {
                    return records;
                }
                records.push(buyer::journey(&api, &shop, &run_id, n, seed).await);
                bar.inc(1);
            }
        });
    }
    let ticker = {
        let (stats, bar) = (stats.clone(), bar.clone());
        AbortOnDrop(tokio::spawn(async move {
            let mut warned = false;
            let mut last = (Instant::now(), 0);
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = (Instant::now(), stats.completed());
                let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64();
                last = now;
                bar.set_message(format!("{rate:.0} req/s"));
                if !warned && stats.rate_limited() > 0 {
                    warned = true;
                    bar.suspend(|| eprintln!("flash simulate: {RATE_LIMITED_HINT}"));
                }
            }
        }))
    };
    let mut carts = Vec::with_capacity(config.buyers);
    while let Some(records) = tasks.join_next().await {
        carts.extend(records.context("a buyer task panicked")?);
    }
    let crowd = started.elapsed();
    drop(ticker);
    bar.finish_and_clear();

    // The drain: every accepted order written to PostgreSQL and settled.
    let last_checkout = carts
        .iter()
        .filter_map(|record| match record.fate {
            Fate::CheckedOut { at, .. } => Some(at),
            _ => None,
        })
        .max();
    let waiting = spinner(config.progress);
    let drained = waits::wait_drained(&engine, &sale, config.wait_timeout, |info| {
        waiting.set_message(format!(
            "{} units pending: waiting for the worker to write them to PostgreSQL",
            info.total.pending
        ));
    })
    .await?;
    // The abandoned holds: past their deadline they must be released by the engine alone.
    let crowd_end = started + crowd;
    let hold = Duration::from_millis(u64::try_from(hold_ms).unwrap_or(0));
    let last_deadline = carts
        .iter()
        .filter(|record| !matches!(record.fate, Fate::CheckedOut { .. }))
        .filter_map(|record| match record.hold_deadline {
            // An add without a reply may have made a cart whose deadline nobody saw: it
            // falls due at the latest one hold after the crowd.
            None if record.uncertain => Some(crowd_end + hold),
            deadline => deadline,
        })
        .max();
    let released = match last_deadline {
        Some(deadline) => {
            waits::wait_released(
                &engine,
                &sale,
                deadline,
                deadline.max(Instant::now()) + config.wait_timeout,
                |info| {
                    let left = deadline.saturating_duration_since(Instant::now());
                    waiting.set_message(format!(
                        "{} units held in {} carts: waiting for the holds to run out (the \
                         last deadline is in {:.1} s)",
                        info.total.held,
                        info.held_carts,
                        left.as_secs_f64()
                    ));
                },
            )
            .await?
        }
        None => None,
    };
    let samples = monitor.stop().await;
    // Timed from the monitor's readings when it saw the moment, else from the wait's.
    let drain = last_checkout.and_then(|last| {
        let seen = waits::reached_after(&samples, last, |s| s.pending == 0).or(drained)?;
        Some(seen.saturating_duration_since(last))
    });
    let release_lag = last_deadline.and_then(|deadline| {
        let seen = waits::reached_after(&samples, deadline, |s| s.held == 0 && s.held_carts == 0)
            .or(released)?;
        Some(seen.saturating_duration_since(deadline))
    });
    waiting.finish_and_clear();

    let journal = Journal {
        run_id: run_id.clone(),
        sale: sale.clone(),
        default_sale: config.common.default_sale.clone(),
        products: product_ids,
        baseline,
        carts,
    };
    let verification = verify::verify(&pg, &engine, &journal).await?;
    let summary = stats.summary();
    let chart = config.chart.as_ref().map(|path| {
        let title = format!(
            "flash simulate {run_id}: {} buyers, {} products, sale {sale}",
            config.buyers,
            journal.products.len()
        );
        chart::write(path, &title, &summary.timeline(crowd))
            .map(|()| path.clone())
            .map_err(|e| format!("{e:#}"))
    });
    let mut violations = verification.violations();
    let internal = summary
        .statuses
        .iter()
        .filter(|((_, status), _)| *status == 500)
        .map(|(_, n)| n)
        .sum::<u64>();
    if internal > 0 {
        violations.push(format!(
            "edge: {internal} replies were 500 (INTERNAL or WRONGTYPE): a bug, or a sale key \
             written by hand; see the edge's log"
        ));
    }
    Ok(Report {
        run_id,
        seed,
        url: config.url.clone(),
        sale,
        buyers: config.buyers,
        concurrency,
        hold_ms,
        crowd,
        fates: Fates::count(&journal.carts),
        units_checked_out: journal
            .carts
            .iter()
            .filter_map(|record| match record.fate {
                Fate::CheckedOut { units, .. } => Some(units),
                _ => None,
            })
            .sum(),
        summary,
        drain,
        release_lag,
        verification,
        violations,
        chart,
        journal,
    })
}

/// Again: the four checks on the books as they are now (after the run, or after someone
/// changed them).
pub async fn verify_again(common: &Common, journal: &Journal) -> Result<Verification> {
    let pg = common.database().await?;
    let engine = common.engine().await?;
    verify::verify(&pg, &engine, journal).await
}
