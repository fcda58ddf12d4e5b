//! `flash simulate --queue`: a crowd arriving at a sale's waiting room, half of it before
//! the sale opens, and the checks that the room is fair.
//!
//! The waiting room lives in the engine and the edge relays its commands one to one
//! (`POST /queue` is FLASH.JOIN, each push of `/ws/queue` a FLASH.POSITION), so the crowd
//! talks to the engine directly: 100,000 arrivals through the edge would first be 100,000
//! sign-ins, which measure PostgreSQL's users table, not the line.
//!
//! The run makes a sale of its own (`queue-sim-<run>`, one product with a unit for everyone,
//! a random seed whose SHA-1 is read back before START), then each arrival joins at its
//! time, tries a reserve at once (it must be refused: no admission yet), asks for its place
//! every `poll` (its sign of life) until admitted, and reserves. A few stop asking after
//! joining (abandoners): they must lose the place. The admission time of each shopper is
//! exact: the engine's admission ends `ADMIT` ms after it was given (`until_ms`).
//!
//! Checks (each a violation when it fails):
//! - no reserve without admission: every early reserve refused, every reserve after
//!   admission taken, the engine's units out = the reserves taken;
//! - the seed revealed at START is the one whose SHA-1 was published before it, and the
//!   pre-queue was admitted exactly in the order `sha1(seed ":" user)` gives;
//! - the pre-queue's admission order is independent of its arrival order: Spearman's |ρ|
//!   under 0.05 (or 4/√n for small crowds, where 0.05 is within chance);
//! - everyone who came before START was admitted before anyone who came after;
//! - after START, first come, first served: a shopper whose join was answered before
//!   another's was sent is never admitted after them;
//! - the admission rate over the run is within ±5% of the setting;
//! - every shopper who kept asking was admitted; the abandoners lost their places.
//!
//! Reported besides: the ETA error (when admitted, against the estimate given at the join,
//! or at the first place read after START for the pre-queue), and the admission timeline
//! (shoppers waiting, admitted per second) as a chart.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use flash_client::{Backend, ClientError, ErrorCode, FlashClient, PlaceState, SaleSettings};
use flash_core::queue::{commitment, draw_score};
use plotters::style::{BLUE, GREEN};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::AbortOnDrop;
use super::chart::{Panel, write_panels};
use crate::common::Common;

/// How often the run admits on the Lua twin: the worker's period (and the module timer's).
const ADMIT_EVERY: Duration = Duration::from_millis(50);

/// The one product of the run's sale.
const SKU: i64 = 1;

/// A queue run's settings.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    pub arrivals: usize,
    /// Admissions per second.
    pub rate: i64,
    /// How long before START the first arrivals come (half the crowd comes in this time).
    pub pre_start: Duration,
    /// The fraction of arrivals who stop asking for their place after joining.
    pub abandon: f64,
    /// How often a waiting shopper asks for their place.
    pub poll: Duration,
    /// The sale's IDLE: a shopper silent this long loses the place.
    pub idle_ms: i64,
    pub chart: Option<PathBuf>,
    pub seed: Option<u64>,
}

/// One arrival, as it went.
#[derive(Clone, Debug, Default)]
struct Arrival {
    user: String,
    before_start: bool,
    abandoner: bool,
    /// When its join was sent and answered (unix ms, fractional).
    join_sent_ms: f64,
    join_answered_ms: f64,
    /// The estimate it was given: at the join after START, at the first place read after
    /// START for the pre-queue (unix ms; 0 if none).
    eta_ms: i64,
    /// When the engine admitted it (unix ms).
    admitted_ms: Option<i64>,
    /// The engine dropped its place (NOTQUEUED).
    lost: bool,
    /// A reserve made before admission was taken.
    reserved_early: bool,
    /// The reserve after admission was taken.
    reserved: bool,
    /// An error no rule explains.
    error: Option<String>,
}

/// What a queue run saw and concluded.
#[derive(Clone, Debug)]
pub struct QueueReport {
    pub run_id: String,
    /// Who admitted: the module's timer, or this run for the Lua twin.
    pub admitted_by: &'static str,
    pub sale: String,
    pub seed: u64,
    pub arrivals: usize,
    pub before_start: usize,
    pub abandoners: usize,
    pub admitted: usize,
    pub rate_set: i64,
    pub rate_measured: f64,
    /// Spearman's ρ of arrival order against admission order: the pre-queue, and after START.
    pub rho_pre_queue: f64,
    pub rho_threshold: f64,
    pub rho_after_start: f64,
    /// |admitted − estimate| in ms: median and 90th percentile, and the mean signed error
    /// (positive: later than estimated).
    pub eta_abs_median_ms: f64,
    pub eta_abs_p90_ms: f64,
    pub eta_mean_ms: f64,
    pub abandoned_in_engine: i64,
    pub violations: Vec<String>,
    pub chart: Option<Result<PathBuf, String>>,
    /// Seconds since the run started: shoppers waiting, and admitted in that second.
    pub timeline: Vec<(f64, i64, i64)>,
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Runs the queue simulation against the engine `common` names.
pub async fn simulate_queue(common: &Common, config: &QueueConfig) -> Result<QueueReport> {
    if config.arrivals < 2 || config.rate <= 0 {
        bail!("--arrivals must be at least 2 and --queue-rate above 0");
    }
    let engine = common.engine().await?;
    let seed = config.seed.unwrap_or_else(rand::random);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let sale = format!("queue-sim-{run_id}");
    let draw_seed = crate::admin::random_seed();
    let started_ms = unix_ms();
    let pre_start_ms = config.pre_start.as_millis() as f64;
    let start_ms = (started_ms + pre_start_ms) as i64;
    // Twice as many arrivals a second after START as are admitted: the line never empties
    // while the rate is measured.
    let after = config.arrivals - config.arrivals / 2;
    let after_window_ms = (after as f64 * 1000.0 / (2.0 * config.rate as f64)).max(1.0);
    let admit_ms = 60_000;
    engine
        .sale(
            &sale,
            &SaleSettings {
                // Long enough that no cart runs out before the units are counted.
                hold_ms: Some(600_000),
                start_ms: Some(start_ms),
                queue_rate: Some(config.rate),
                admit_ms: Some(admit_ms),
                idle_ms: Some(config.idle_ms),
                seed: Some(draw_seed),
                ..SaleSettings::default()
            },
        )
        .await?;
    engine.load(&sale, &[(SKU, config.arrivals as i64)]).await?;
    let published = engine.info(&sale).await?.queue.context("no waiting room")?;
    let mut violations = Vec::new();
    if published.seed.is_some() {
        violations.push("the seed was readable before START".to_owned());
    }

    // The crowd: one task per arrival, each sleeping until its time.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tasks = JoinSet::new();
    for i in 0..config.arrivals {
        let before_start = i < config.arrivals / 2;
        let at_ms = if before_start {
            rng.random_range(0.0..(pre_start_ms - 300.0).max(1.0))
        } else {
            pre_start_ms + rng.random_range(0.0..after_window_ms)
        };
        let arrival = Arrival {
            user: format!("q{i}"),
            before_start,
            abandoner: rng.random_bool(config.abandon),
            ..Arrival::default()
        };
        let (engine, sale) = (engine.clone(), sale.clone());
        let (poll, jitter) = (config.poll, rng.random_range(0.0..1.0));
        tasks.spawn(async move {
            let wait = (started_ms + at_ms - unix_ms()).max(0.0);
            tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
            arrive(engine, &sale, arrival, start_ms, admit_ms, poll, jitter).await
        });
    }
    let monitor = Monitor::start(engine.clone(), sale.clone());
    // The Lua twin has no timer: what the worker does for it (FLASH.ADMIT every 50 ms), the
    // run does itself.
    let admitter = (engine.backend() == Backend::Lua).then(|| {
        AbortOnDrop(tokio::spawn(flash_worker::consumer::admit_loop(
            engine.clone(),
            sale.clone(),
            ADMIT_EVERY,
        )))
    });
    let mut arrivals = Vec::with_capacity(config.arrivals);
    while let Some(arrival) = tasks.join_next().await {
        arrivals.push(arrival.context("an arrival's task panicked")?);
    }
    let waiting_samples = monitor.stop().await;
    drop(admitter);

    let info = engine.info(&sale).await?;
    let queue = info.queue.context("no waiting room")?;
    match &queue.seed {
        Some(revealed) if commitment(revealed) == published.seed_sha1 => {}
        other => violations.push(format!(
            "the seed revealed ({other:?}) is not the one committed to ({})",
            published.seed_sha1
        )),
    }
    let revealed = queue.seed.clone().unwrap_or_default();

    for arrival in &arrivals {
        if let Some(error) = &arrival.error {
            violations.push(format!("{}: {error}", arrival.user));
        }
        if arrival.reserved_early {
            violations.push(format!("{} reserved before being admitted", arrival.user));
        }
        if !arrival.abandoner && (arrival.admitted_ms.is_none() || !arrival.reserved) {
            violations.push(format!(
                "{} kept asking but was not admitted and served (lost: {})",
                arrival.user, arrival.lost
            ));
        }
    }
    let reserved = arrivals.iter().filter(|a| a.reserved).count() as i64;
    let taken = info.total.held + info.total.pending + info.total.sold;
    if taken != reserved {
        violations.push(format!(
            "the engine gave out {taken} units but {reserved} admitted reserves were taken"
        ));
    }

    // The draw, recomputed from the revealed seed.
    let mut pre: Vec<&Arrival> = arrivals
        .iter()
        .filter(|a| a.before_start && a.admitted_ms.is_some())
        .collect();
    pre.sort_by_key(|a| (draw_score(&revealed, &a.user), a.user.clone()));
    let out_of_draw = pre
        .windows(2)
        .filter(|pair| pair[0].admitted_ms > pair[1].admitted_ms)
        .count();
    if out_of_draw > 0 {
        violations.push(format!(
            "{out_of_draw} pre-queue shoppers were admitted out of the order drawn from the seed"
        ));
    }
    let post: Vec<&Arrival> = arrivals
        .iter()
        .filter(|a| !a.before_start && a.admitted_ms.is_some())
        .collect();
    let last_pre = pre.iter().filter_map(|a| a.admitted_ms).max();
    let first_post = post.iter().filter_map(|a| a.admitted_ms).min();
    if let (Some(last_pre), Some(first_post)) = (last_pre, first_post)
        && last_pre > first_post
    {
        violations.push(format!(
            "a pre-queue shopper was admitted at {last_pre}, after a later arrival at {first_post}"
        ));
    }
    let overtaken = overtakes(&post);
    if overtaken > 0 {
        violations.push(format!(
            "{overtaken} shoppers who came after START were admitted after someone who joined \
             after their join was answered"
        ));
    }

    let rho_pre_queue = spearman(&pre, |a| a.join_sent_ms);
    let rho_after_start = spearman(&post, |a| a.join_sent_ms);
    let rho_threshold = (4.0 / (pre.len().max(2) as f64 - 1.0).sqrt()).max(0.05);
    if rho_pre_queue.abs() >= rho_threshold {
        violations.push(format!(
            "the pre-queue's admission order follows its arrival order: Spearman ρ = \
             {rho_pre_queue:.4} (|ρ| must stay under {rho_threshold:.3})"
        ));
    }

    let mut admitted: Vec<i64> = arrivals.iter().filter_map(|a| a.admitted_ms).collect();
    admitted.sort_unstable();
    // Every admission the engine made (the abandoners' too, which nobody observed), over
    // the span from the first observed to the last.
    let rate_measured = match (admitted.first(), admitted.last()) {
        (Some(first), Some(last)) if last > first => {
            (queue.admitted - 1) as f64 * 1000.0 / (last - first) as f64
        }
        _ => 0.0,
    };
    if (rate_measured / config.rate as f64 - 1.0).abs() > 0.05 {
        violations.push(format!(
            "admitted {rate_measured:.1} a second, not {} ± 5%",
            config.rate
        ));
    }

    let abandoners = arrivals.iter().filter(|a| a.abandoner).count() as i64;
    let ran_ms = unix_ms() - started_ms;
    if queue.abandoned > abandoners {
        violations.push(format!(
            "the engine dropped {} places but only {abandoners} shoppers stopped asking",
            queue.abandoned
        ));
    }
    if abandoners > 0 && queue.abandoned == 0 && ran_ms > pre_start_ms + 2.0 * config.idle_ms as f64
    {
        violations.push(format!(
            "{abandoners} shoppers stopped asking, yet no place was dropped in {:.1} s",
            ran_ms / 1000.0
        ));
    }

    let mut errors: Vec<f64> = arrivals
        .iter()
        .filter(|a| a.eta_ms > 0)
        .filter_map(|a| Some((a.admitted_ms? - a.eta_ms) as f64))
        .collect();
    let eta_mean_ms = errors.iter().sum::<f64>() / errors.len().max(1) as f64;
    for error in &mut errors {
        *error = error.abs();
    }
    errors.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        errors
            .get(((errors.len() as f64 - 1.0) * p).round().max(0.0) as usize)
            .copied()
            .unwrap_or(0.0)
    };

    let timeline = timeline(started_ms, &admitted, &waiting_samples);
    let chart = config.chart.as_ref().map(|path| {
        let title = format!(
            "flash simulate --queue {run_id}: {} arrivals, {} before START, rate {}/s",
            config.arrivals,
            config.arrivals / 2,
            config.rate
        );
        chart_timeline(path, &title, &timeline)
            .map(|()| path.clone())
            .map_err(|e| format!("{e:#}"))
    });
    Ok(QueueReport {
        run_id,
        admitted_by: match engine.backend() {
            Backend::Module => "the module's timer",
            Backend::Lua => {
                "FLASH.ADMIT every 50 ms from this run (the worker's part with the Lua twin)"
            }
        },
        sale,
        seed,
        arrivals: arrivals.len(),
        before_start: arrivals.iter().filter(|a| a.before_start).count(),
        abandoners: abandoners as usize,
        admitted: admitted.len(),
        rate_set: config.rate,
        rate_measured,
        rho_pre_queue,
        rho_threshold,
        rho_after_start,
        eta_abs_median_ms: percentile(0.5),
        eta_abs_p90_ms: percentile(0.9),
        eta_mean_ms,
        abandoned_in_engine: queue.abandoned,
        violations,
        chart,
        timeline,
    })
}

/// One shopper's visit: join, a reserve that must be refused, places read until admitted
/// (or never again, for an abandoner), then the reserve.
async fn arrive(
    engine: FlashClient,
    sale: &str,
    mut arrival: Arrival,
    start_ms: i64,
    admit_ms: i64,
    poll: Duration,
    jitter: f64,
) -> Arrival {
    let user = arrival.user.clone();
    arrival.join_sent_ms = unix_ms();
    let joined = engine.join(sale, &user).await;
    arrival.join_answered_ms = unix_ms();
    let mut place = match joined {
        Ok(place) => place,
        Err(error) => {
            arrival.error = Some(format!("join: {error}"));
            return arrival;
        }
    };
    if place.state == PlaceState::Waiting {
        arrival.eta_ms = place.eta_ms;
    }
    if place.state != PlaceState::Admitted {
        match engine.reserve(sale, &user, &user, SKU, 1).await {
            Ok(_) => arrival.reserved_early = true,
            Err(ClientError::Flash(error))
                if matches!(error.code, ErrorCode::NotAdmitted | ErrorCode::Closed) => {}
            Err(error) => arrival.error = Some(format!("early reserve: {error}")),
        }
    }
    if arrival.abandoner {
        return arrival;
    }
    // Spread over the poll period, so the crowd's reads do not come in waves.
    let mut next = poll.mul_f64(jitter);
    while place.state != PlaceState::Admitted {
        tokio::time::sleep(next).await;
        next = poll;
        place = match engine.position(sale, &user).await {
            Ok(place) => place,
            Err(ClientError::Flash(error)) if error.code == ErrorCode::NotQueued => {
                arrival.lost = true;
                return arrival;
            }
            Err(error) => {
                arrival.error = Some(format!("position: {error}"));
                return arrival;
            }
        };
        if arrival.eta_ms == 0 && place.state == PlaceState::Waiting && unix_ms() >= start_ms as f64
        {
            arrival.eta_ms = place.eta_ms;
        }
    }
    arrival.admitted_ms = Some(place.until_ms - admit_ms);
    match engine.reserve(sale, &user, &user, SKU, 1).await {
        Ok(_) => arrival.reserved = true,
        Err(error) => arrival.error = Some(format!("reserve once admitted: {error}")),
    }
    arrival
}

/// Shoppers after START admitted after someone who joined only once their own join was
/// answered (so surely later).
fn overtakes(post: &[&Arrival]) -> usize {
    let mut by_answer: Vec<(f64, i64)> = post
        .iter()
        .filter_map(|a| Some((a.join_answered_ms, a.admitted_ms?)))
        .collect();
    by_answer.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The latest admission among those answered up to each point.
    let mut latest = Vec::with_capacity(by_answer.len());
    let mut max = i64::MIN;
    for (_, admitted) in &by_answer {
        max = max.max(*admitted);
        latest.push(max);
    }
    post.iter()
        .filter(|b| {
            let Some(admitted) = b.admitted_ms else {
                return false;
            };
            let before = by_answer.partition_point(|(answered, _)| *answered < b.join_sent_ms);
            before > 0 && latest[before - 1] > admitted
        })
        .count()
}

/// Spearman's ρ between `key` (arrival) and admission time, ties given their mean rank.
fn spearman(arrivals: &[&Arrival], key: impl Fn(&Arrival) -> f64) -> f64 {
    let xs: Vec<f64> = arrivals.iter().map(|a| key(a)).collect();
    let ys: Vec<f64> = arrivals
        .iter()
        .map(|a| a.admitted_ms.unwrap_or(0) as f64)
        .collect();
    pearson(&ranks(&xs), &ranks(&ys))
}

fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0;
        for &k in &order[i..=j] {
            ranks[k] = mean;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// Per second since the run started: the shoppers waiting (the last sample in the second)
/// and those admitted in it.
fn timeline(started_ms: f64, admitted: &[i64], waiting: &[(f64, i64)]) -> Vec<(f64, i64, i64)> {
    let end = admitted
        .last()
        .map_or(0.0, |last| (*last as f64 - started_ms) / 1000.0)
        .max(waiting.last().map_or(0.0, |w| (w.0 - started_ms) / 1000.0));
    let seconds = end.ceil().max(1.0) as usize;
    let mut rows: Vec<(f64, i64, i64)> = (0..seconds).map(|s| (s as f64 + 1.0, 0, 0)).collect();
    for at in admitted {
        let second = ((*at as f64 - started_ms) / 1000.0).floor().max(0.0) as usize;
        if let Some(row) = rows.get_mut(second) {
            row.2 += 1;
        }
    }
    for (at, line) in waiting {
        let second = ((at - started_ms) / 1000.0).floor().max(0.0) as usize;
        if let Some(row) = rows.get_mut(second) {
            row.1 = *line;
        }
    }
    rows
}

fn chart_timeline(path: &std::path::Path, title: &str, rows: &[(f64, i64, i64)]) -> Result<()> {
    let waiting: Vec<(f64, f64)> = rows.iter().map(|r| (r.0, r.1 as f64)).collect();
    let admitted: Vec<(f64, f64)> = rows.iter().map(|r| (r.0, r.2 as f64)).collect();
    write_panels(
        path,
        title,
        "seconds since the first arrival could come",
        rows.len() as f64 + 1.0,
        &[
            Panel {
                caption: "shoppers waiting in the line",
                unit: "waiting",
                points: &waiting,
                color: BLUE,
            },
            Panel {
                caption: "shoppers admitted per second",
                unit: "admitted/s",
                points: &admitted,
                color: GREEN,
            },
        ],
    )
}

/// Reads how many wait, every 250 ms, while the crowd runs.
struct Monitor {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<(f64, i64)>>,
}

impl Monitor {
    fn start(engine: FlashClient, sale: String) -> Monitor {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let engine = Arc::new(engine);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                if let Ok(info) = engine.info(&sale).await
                    && let Some(queue) = info.queue
                {
                    samples.push((unix_ms(), queue.line));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = &mut stopped => return samples,
                }
            }
        });
        Monitor { stop, task }
    }

    async fn stop(self) -> Vec<(f64, i64)> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

impl fmt::Display for QueueReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "flash simulate --queue {} (seed {}): sale {}",
            self.run_id, self.seed, self.sale
        )?;
        writeln!(f, "  admission           by {}", self.admitted_by)?;
        writeln!(
            f,
            "  arrivals            {} ({} before START, {} abandoners)",
            self.arrivals, self.before_start, self.abandoners
        )?;
        writeln!(
            f,
            "  admitted            {} ({} places dropped by the engine)",
            self.admitted, self.abandoned_in_engine
        )?;
        writeln!(
            f,
            "  admission rate      {:.1}/s measured, {}/s set ({:+.2}%)",
            self.rate_measured,
            self.rate_set,
            (self.rate_measured / self.rate_set as f64 - 1.0) * 100.0
        )?;
        writeln!(
            f,
            "  pre-queue fairness  Spearman ρ(arrival, admission) = {:.4} (|ρ| < {:.3} required)",
            self.rho_pre_queue, self.rho_threshold
        )?;
        writeln!(
            f,
            "  after START         Spearman ρ(arrival, admission) = {:.4} (first come, first served)",
            self.rho_after_start
        )?;
        writeln!(
            f,
            "  ETA error           median {:.0} ms, p90 {:.0} ms, mean {:+.0} ms (+: later than estimated)",
            self.eta_abs_median_ms, self.eta_abs_p90_ms, self.eta_mean_ms
        )?;
        match &self.chart {
            Some(Ok(path)) => writeln!(f, "  chart               {}", path.display())?,
            Some(Err(error)) => writeln!(f, "  chart               not written: {error}")?,
            None => {}
        }
        if self.violations.is_empty() {
            writeln!(f, "  verdict             fair: every check passed")
        } else {
            writeln!(
                f,
                "  verdict             {} violations:",
                self.violations.len()
            )?;
            for violation in self.violations.iter().take(20) {
                writeln!(f, "    - {violation}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_sees_order_and_its_absence() {
        let arrivals: Vec<Arrival> = (0..100)
            .map(|i| Arrival {
                join_sent_ms: f64::from(i),
                admitted_ms: Some(i64::from(i / 10)),
                ..Arrival::default()
            })
            .collect();
        let all: Vec<&Arrival> = arrivals.iter().collect();
        assert!(spearman(&all, |a| a.join_sent_ms) > 0.98, "ties in batches");
        assert!(
            (spearman(&all, |a| -a.join_sent_ms) + spearman(&all, |a| a.join_sent_ms)).abs() < 1e-9
        );
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [2.5, 0.0, 2.5, 1.0]);
    }

    #[test]
    fn an_overtake_is_a_later_join_admitted_earlier() {
        let arrival = |sent: f64, answered: f64, admitted: i64| Arrival {
            join_sent_ms: sent,
            join_answered_ms: answered,
            admitted_ms: Some(admitted),
            ..Arrival::default()
        };
        let fair = [
            arrival(0.0, 1.0, 10),
            arrival(2.0, 3.0, 10),
            arrival(4.0, 5.0, 20),
        ];
        assert_eq!(overtakes(&fair.iter().collect::<Vec<_>>()), 0);
        let unfair = [arrival(0.0, 1.0, 30), arrival(2.0, 3.0, 20)];
        assert_eq!(overtakes(&unfair.iter().collect::<Vec<_>>()), 1);
        // Joins in flight together may be served either way.
        let racing = [arrival(0.0, 3.0, 30), arrival(1.0, 2.0, 20)];
        assert_eq!(overtakes(&racing.iter().collect::<Vec<_>>()), 0);
    }
}
