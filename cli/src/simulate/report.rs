//! What a run found, as a value ([`Report`], [`Fates`]) and as the text `flash simulate`
//! prints.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::buyer::{CartRecord, Fate};
use super::stats::Summary;
use super::verify::{Journal, Verification};
use super::{RATE_LIMITED_HINT, waits};

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
    pub(super) fn count(carts: &[CartRecord]) -> Fates {
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
        if !v.orders_lost.is_empty() || v.holds_lost > 0 {
            writeln!(
                f,
                "lost to a failover: {} orders answered 202 are in neither PostgreSQL nor the \
                 engine, and {} carts that held units are gone from the engine (a master died \
                 before its replica had them; --durability replica keeps every order answered \
                 202)",
                v.orders_lost.len(),
                v.holds_lost
            )?;
        }
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
                waits::MONITOR_EVERY.as_millis()
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
