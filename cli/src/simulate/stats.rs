//! What the crowd measured: a latency histogram per route, the status and error word of
//! every reply, and a timeline (requests completed per second, their p99) for the chart.
//!
//! Every request is recorded under one lock: a record is a few histogram increments
//! (well under a microsecond), far below a request's cost, so one lock does not skew what
//! it measures, and the numbers are exact rather than merged from per-task copies.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The routes a buyer calls, in the order of a journey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    Session,
    CartAdd,
    CartRemove,
    Checkout,
}

impl Route {
    pub const ALL: [Route; 4] = [
        Route::Session,
        Route::CartAdd,
        Route::CartRemove,
        Route::Checkout,
    ];

    /// The status of the route's documented success (the client takes no other).
    pub fn status(self) -> u16 {
        match self {
            Route::Checkout => 202,
            Route::Session | Route::CartAdd | Route::CartRemove => 200,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Route::Session => "/session",
            Route::CartAdd => "/cart/add",
            Route::CartRemove => "/cart/remove",
            Route::Checkout => "/cart/checkout",
        }
    }
}

/// What one request ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx reply.
    Success(u16),
    /// A 4xx or 5xx reply and its error word (`SOLDOUT`, …; `HTTP <status>` when the body
    /// has none).
    Refused(u16, String),
    /// No reply: connection refused or reset, a timeout.
    Transport,
}

impl Outcome {
    /// The word a refusal is counted under.
    pub fn word(&self) -> Option<&str> {
        match self {
            Outcome::Success(_) => None,
            Outcome::Refused(_, word) => Some(word),
            Outcome::Transport => Some("TRANSPORT"),
        }
    }
}

/// Latencies are kept in microseconds, from 1 µs to 5 minutes (longer saturates).
const MAX_MICROS: u64 = 300_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // The bounds are constants, so creation cannot fail.
    Histogram::new_with_bounds(1, MAX_MICROS, sigfig).expect("constant histogram bounds")
}

/// One stretch of the crowd's timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slice {
    /// The stretch's middle, in seconds since the crowd started.
    pub at_secs: f64,
    /// Requests completed in it, per second.
    pub per_second: f64,
    /// The p99 latency of those requests (zero when there were none).
    pub p99: Duration,
}

/// A route's numbers at the end.
#[derive(Clone, Debug)]
pub struct RouteSummary {
    pub route: &'static str,
    pub requests: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

#[derive(Debug)]
struct Inner {
    routes: BTreeMap<Route, Histogram<u64>>,
    /// Per route, per status (0 = no reply): how many.
    statuses: BTreeMap<(Route, u16), u64>,
    /// Per error word, per route: how many.
    words: BTreeMap<String, BTreeMap<Route, u64>>,
    /// Every request: (when it ended, since the start; its latency), in microseconds. 16
    /// bytes a request, a few MB for a large run, and any slicing of the timeline is exact.
    samples: Vec<(u64, u64)>,
}

#[derive(Debug)]
pub struct Stats {
    started: Instant,
    inner: Mutex<Inner>,
    /// For the progress bar, without taking the lock.
    completed: AtomicU64,
    rate_limited: AtomicU64,
}

impl Stats {
    pub fn new(started: Instant) -> Stats {
        Stats {
            started,
            inner: Mutex::new(Inner {
                routes: BTreeMap::new(),
                statuses: BTreeMap::new(),
                words: BTreeMap::new(),
                samples: Vec::new(),
            }),
            completed: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }

    /// Records one request that ended at `ended` after `latency`.
    pub fn record(&self, route: Route, latency: Duration, ended: Instant, outcome: &Outcome) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        let ended = u64::try_from(ended.saturating_duration_since(self.started).as_micros())
            .unwrap_or(u64::MAX);
        let status = match outcome {
            Outcome::Success(status) | Outcome::Refused(status, _) => *status,
            Outcome::Transport => 0,
        };
        self.completed.fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        // A poisoned lock only means another buyer panicked mid-record; the counts are
        // still the best there are.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .routes
            .entry(route)
            .or_insert_with(|| histogram(3))
            .saturating_record(micros.max(1));
        *inner.statuses.entry((route, status)).or_default() += 1;
        if let Some(word) = outcome.word() {
            *inner
                .words
                .entry(word.to_owned())
                .or_default()
                .entry(route)
                .or_default() += 1;
        }
        inner.samples.push((ended, micros));
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// The final numbers, once the crowd is done.
    pub fn summary(&self) -> Summary {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = histogram(3);
        let mut routes = Vec::new();
        for (route, latency) in &inner.routes {
            // Same bounds and precision: adding cannot fail.
            let _ = all.add(latency);
            routes.push(summarize(route.path(), latency));
        }
        if !all.is_empty() {
            routes.push(summarize("all", &all));
        }
        Summary {
            requests: all.len(),
            routes,
            statuses: inner
                .statuses
                .iter()
                .map(|((route, status), n)| ((route.path(), *status), *n))
                .collect(),
            rejects: inner
                .words
                .iter()
                .map(|(word, per_route)| {
                    (
                        word.clone(),
                        per_route
                            .iter()
                            .map(|(route, n)| (route.path(), *n))
                            .collect(),
                    )
                })
                .collect(),
            samples: inner.samples.clone(),
        }
    }
}

fn summarize(route: &'static str, latency: &Histogram<u64>) -> RouteSummary {
    let at = |q: f64| Duration::from_micros(latency.value_at_quantile(q));
    RouteSummary {
        route,
        requests: latency.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: Duration::from_micros(latency.max()),
    }
}

/// Everything the crowd measured, for the report and the chart.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub requests: u64,
    /// Per route, then `all`.
    pub routes: Vec<RouteSummary>,
    /// (route, status) → count; status 0 is "no reply".
    pub statuses: BTreeMap<(&'static str, u16), u64>,
    /// Error word → (route → count).
    pub rejects: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// (ended since the crowd's start, latency) per request, in microseconds.
    samples: Vec<(u64, u64)>,
}

impl Summary {
    /// Refusals counted under `word`, on every route.
    pub fn rejects_of(&self, word: &str) -> u64 {
        self.rejects.get(word).map_or(0, |r| r.values().sum())
    }

    /// The crowd's `crowd` long timeline cut into equal slices: one per second for a run of
    /// 20 s or more (slightly longer or shorter, so the last one is whole too), 20 for a
    /// shorter one, so even a small run draws a curve.
    pub fn timeline(&self, crowd: Duration) -> Vec<Slice> {
        let total = crowd.as_secs_f64();
        if total <= 0.0 || self.samples.is_empty() {
            return Vec::new();
        }
        let count = total.round().max(20.0) as usize;
        let width = total / count as f64;
        let mut slices: Vec<Vec<u64>> = vec![Vec::new(); count];
        for (ended, latency) in &self.samples {
            let index = ((*ended as f64 / 1e6) / width) as usize;
            slices[index.min(count - 1)].push(*latency);
        }
        slices
            .into_iter()
            .enumerate()
            .map(|(index, mut latencies)| {
                latencies.sort_unstable();
                // The nearest-rank p99: the smallest latency at or above 99% of them.
                let rank = (latencies.len() as f64 * 0.99).ceil() as usize;
                let p99 = latencies.get(rank.saturating_sub(1)).copied().unwrap_or(0);
                Slice {
                    at_secs: (index as f64 + 0.5) * width,
                    per_second: latencies.len() as f64 / width,
                    p99: Duration::from_micros(p99),
                }
            })
            .collect()
    }

    /// Replies with this status, on every route.
    pub fn with_status(&self, status: u16) -> u64 {
        self.statuses
            .iter()
            .filter(|((_, s), _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_route_their_word_and_their_second() {
        let start = Instant::now();
        let stats = Stats::new(start);
        let ms = Duration::from_millis;
        stats.record(
            Route::CartAdd,
            ms(2),
            start + ms(100),
            &Outcome::Success(200),
        );
        stats.record(
            Route::CartAdd,
            ms(4),
            start + ms(1500),
            &Outcome::Refused(409, "SOLDOUT".into()),
        );
        stats.record(
            Route::Checkout,
            ms(8),
            start + ms(1600),
            &Outcome::Transport,
        );
        stats.record(
            Route::Session,
            ms(1),
            start + ms(2100),
            &Outcome::Refused(429, "RATE_LIMITED".into()),
        );
        let summary = stats.summary();
        assert_eq!(summary.requests, 4);
        assert_eq!(stats.completed(), 4);
        assert_eq!(stats.rate_limited(), 1);
        assert_eq!(summary.rejects_of("SOLDOUT"), 1);
        assert_eq!(summary.rejects_of("TRANSPORT"), 1);
        assert_eq!(summary.with_status(200), 1);
        assert_eq!(summary.statuses[&("/cart/checkout", 0)], 1);
        // 2.5 s cut into 20 slices of 125 ms: requests in slices 0, 12 and 16.
        let timeline = summary.timeline(ms(2500));
        assert_eq!(timeline.len(), 20);
        let busy: Vec<(usize, f64)> = timeline
            .iter()
            .enumerate()
            .filter(|(_, slice)| slice.per_second > 0.0)
            .map(|(index, slice)| (index, slice.per_second))
            .collect();
        assert_eq!(busy, [(0, 8.0), (12, 16.0), (16, 8.0)]);
        assert_eq!(timeline[12].p99, ms(8));
        assert_eq!(timeline[1].p99, Duration::ZERO);
        // A long run: one slice per second.
        assert_eq!(summary.timeline(ms(30_400)).len(), 30);
        let add = &summary.routes[1];
        assert_eq!((add.route, add.requests), ("/cart/add", 2));
        assert!(add.max >= ms(4) && add.p50 <= add.max);
        assert_eq!(summary.routes.last().map(|r| r.route), Some("all"));
    }
}
