//! `flash simulate`: a flash crowd of virtual buyers through the real HTTP edge, then a
//! verification of the books in PostgreSQL and the engine.
//!
//! Map of the module:
//! - here: the command's flags ([`SimulateArgs`]), [`Config`], [`simulate`] (setup, crowd,
//!   waits, checks, chart) and the [`Report`] it prints.
//! - [`buyer`]: the API as the crowd calls it (flash-api-client, timed), and one buyer's
//!   journey ([`CartRecord`]).
//! - [`stats`]: latency per route, error words, the per-second timeline.
//! - [`verify`]: the baseline before the crowd, the waits after it, the four checks.
//! - [`chart`]: the PNG (throughput and p99 latency per second).

pub mod buyer;
pub mod chart;
pub mod stats;
pub mod verify;

use std::fmt;
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
    let report = simulate(&Config::from(args)).await?;
    print!("{report}");
    Ok(if report.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How the buyers' visits ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fates {
    pub checked_out: usize,
    pub abandoned: usize,
    pub empty_handed: usize,
    pub checkout_refused: usize,
    pub checkout_unknown: usize,
    pub no_session: usize,
}

impl Fates {
    fn count(carts: &[CartRecord]) -> Fates {
        let mut fates = Fates::default();
        for record in carts {
            let slot = match record.fate {
                Fate::CheckedOut { .. } => &mut fates.checked_out,
                Fate::Abandoned => &mut fates.abandoned,
                Fate::EmptyHanded => &mut fates.empty_handed,
                Fate::CheckoutRefused(_) => &mut fates.checkout_refused,
                Fate::CheckoutUnknown => &mut fates.checkout_unknown,
                Fate::NoSession => &mut fates.no_session,
            };
            *slot += 1;
        }
        fates
    }
}

/// Everything a run measured and found.
#[derive(Clone, Debug)]
pub struct Report {
    pub run_id: String,
    pub seed: u64,
    pub url: String,
    pub sale: String,
    pub buyers: usize,
    pub concurrency: usize,
    /// The sale's cart timer.
    pub hold_ms: i64,
    /// From the first buyer's start to the last buyer's end.
    pub crowd: Duration,
    pub summary: Summary,
    pub fates: Fates,
    /// Units in the orders that got a 202.
    pub units_checked_out: i64,
    /// From the last checkout reply until the engine had no unit pending: every order
    /// written to PostgreSQL and settled. None when nothing was checked out, or at the
    /// timeout.
    pub drain: Option<Duration>,
    /// From the last abandoned hold's deadline until the engine held nothing. None when no
    /// hold was left, or at the timeout.
    pub release_lag: Option<Duration>,
    pub verification: Verification,
    /// Every broken rule, one line each; empty means the books are right.
    pub violations: Vec<String>,
    /// Where the chart was written, or why it was not.
    pub chart: Option<Result<PathBuf, String>>,
    /// What the run did, to verify again.
    pub journal: Journal,
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
    if sale != config.common.sale {
        bail!(
            "the edge at {} serves sale '{sale}', but the sale to verify is '{}': pass --sale \
             {sale} (or set FLASH_SALE)",
            config.url,
            config.common.sale
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
    if verify::wait_drained(&engine, &sale, config.wait_timeout, |_| {})
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

    let monitor = verify::Monitor::start(engine.clone(), sale.clone());
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
    let drained = verify::wait_drained(&engine, &sale, config.wait_timeout, |info| {
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
            verify::wait_released(
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
        let seen = verify::reached_after(&samples, last, |s| s.pending == 0).or(drained)?;
        Some(seen.saturating_duration_since(last))
    });
    let release_lag = last_deadline.and_then(|deadline| {
        let seen = verify::reached_after(&samples, deadline, |s| s.held == 0 && s.held_carts == 0)
            .or(released)?;
        Some(seen.saturating_duration_since(deadline))
    });
    waiting.finish_and_clear();

    let journal = Journal {
        run_id: run_id.clone(),
        sale: sale.clone(),
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

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

/// At most this many lines of one check's violations are printed.
const SHOWN_VIOLATIONS: usize = 20;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.crowd.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "flash simulate: run {} (seed {}), sale '{}' at {}",
            self.run_id, self.seed, self.sale, self.url
        )?;
        writeln!(
            f,
            "crowd: {} buyers, {} at a time, over {} products, in {:.2} s: {} requests, {:.0} \
             req/s",
            self.buyers,
            self.concurrency,
            self.journal.products.len(),
            secs,
            self.summary.requests,
            self.summary.requests as f64 / secs
        )?;
        writeln!(
            f,
            "\n{:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "requests", "p50", "p90", "p99", "max"
        )?;
        for route in &self.summary.routes {
            let name = if route.route == "all" {
                "all".to_owned()
            } else {
                format!("POST {}", route.route)
            };
            writeln!(
                f,
                "{name:<20} {:>9} {:>9} {:>9} {:>9} {:>9}",
                route.requests,
                ms(route.p50),
                ms(route.p90),
                ms(route.p99),
                ms(route.max)
            )?;
        }
        let fates = &self.fates;
        writeln!(
            f,
            "\nbuyers: {} checked out, {} abandoned their cart, {} left empty-handed (every \
             add refused), {} refused at checkout, {} checkouts unanswered, {} not signed in",
            fates.checked_out,
            fates.abandoned,
            fates.empty_handed,
            fates.checkout_refused,
            fates.checkout_unknown,
            fates.no_session
        )?;
        let v = &self.verification;
        writeln!(
            f,
            "orders: {} accepted (202, {} units); in PostgreSQL {} confirmed, {} rejected; {} \
             units sold",
            fates.checked_out,
            self.units_checked_out,
            v.orders_confirmed,
            v.orders_rejected,
            v.sold.values().sum::<i64>()
        )?;
        let mut rejects: Vec<(&String, u64)> = self
            .summary
            .rejects
            .keys()
            .map(|word| (word, self.summary.rejects_of(word)))
            .collect();
        rejects.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        if rejects.is_empty() {
            writeln!(f, "rejects: none")?;
        } else {
            writeln!(f, "rejects by error word:")?;
            for (word, total) in rejects {
                let routes: Vec<String> = self.summary.rejects[word]
                    .iter()
                    .map(|(route, n)| format!("{route} {n}"))
                    .collect();
                writeln!(f, "  {word:<14} {total:>8}  ({})", routes.join(", "))?;
            }
        }
        if self.summary.with_status(429) > 0 {
            writeln!(f, "  !! {RATE_LIMITED_HINT}")?;
        }
        match (self.drain, fates.checked_out) {
            (_, 0) => writeln!(f, "drain: nothing was checked out")?,
            (Some(drain), _) => writeln!(
                f,
                "drain: {} ms from the last checkout reply until every order was in PostgreSQL \
                 and settled (read every {} ms)",
                ms(drain),
                verify::MONITOR_EVERY.as_millis()
            )?,
            (None, _) => writeln!(f, "drain: orders still pending at the timeout")?,
        }
        match self.release_lag {
            Some(lag) => writeln!(
                f,
                "holds: {} carts held units and were not checked out; every hold was released \
                 by the engine {} ms after the last deadline (hold {} ms)",
                v.holds_expired,
                ms(lag),
                self.hold_ms
            )?,
            None if v.holds_expired == 0 => writeln!(f, "holds: no cart was left holding units")?,
            None => writeln!(f, "holds: still held at the timeout")?,
        }
        writeln!(
            f,
            "\n{:>10} {:>10} {:>10} {:>10}",
            "product", "stock", "sold", "left"
        )?;
        const SHOWN_PRODUCTS: usize = 12;
        for product in self.journal.products.iter().take(SHOWN_PRODUCTS) {
            let before = self.journal.baseline.database_stock.get(product);
            let sold = v.sold.get(product).copied().unwrap_or(0);
            let left = v.database_stock.get(product);
            let show = |n: Option<&i64>| n.map_or("-".to_owned(), i64::to_string);
            writeln!(
                f,
                "{product:>10} {:>10} {sold:>10} {:>10}",
                show(before),
                show(left)
            )?;
        }
        if self.journal.products.len() > SHOWN_PRODUCTS {
            writeln!(
                f,
                "{:>10} ({} more products)",
                "…",
                self.journal.products.len() - SHOWN_PRODUCTS
            )?;
        }
        writeln!(
            f,
            "{} of {} products sold out",
            v.sold_out,
            self.journal.products.len()
        )?;
        writeln!(f, "\nverification:")?;
        for check in &v.checks {
            if check.violations.is_empty() {
                writeln!(f, "  ok    {} ({})", check.name, check.scope)?;
                continue;
            }
            writeln!(
                f,
                "  FAIL  {} ({}): {} violations",
                check.name,
                check.scope,
                check.violations.len()
            )?;
            for line in check.violations.iter().take(SHOWN_VIOLATIONS) {
                writeln!(f, "          {line}")?;
            }
            if check.violations.len() > SHOWN_VIOLATIONS {
                writeln!(
                    f,
                    "          … and {} more",
                    check.violations.len() - SHOWN_VIOLATIONS
                )?;
            }
        }
        let checked: usize = v.checks.iter().map(|c| c.violations.len()).sum();
        for extra in self.violations.iter().skip(checked) {
            writeln!(f, "  FAIL  {extra}")?;
        }
        match &self.chart {
            Some(Ok(path)) => writeln!(f, "chart: {}", path.display())?,
            Some(Err(error)) => writeln!(f, "chart: not written: {error}")?,
            None => {}
        }
        if self.violations.is_empty() {
            writeln!(f, "result: OK, the books are right")
        } else {
            writeln!(f, "result: {} VIOLATIONS", self.violations.len())
        }
    }
}
