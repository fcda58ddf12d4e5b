//! `GET /metrics`: Prometheus text format.
//!
//! The edge's own series live in a `prometheus` registry. The worker's counters and the
//! WebSocket figures are atomics owned by those parts; they are read at scrape time and
//! written as their own series, so neither part depends on a metrics library.

use std::sync::atomic::Ordering;
use std::time::Duration;

use flash_worker::consumer::Counters;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    reserve_outcomes: IntCounterVec,
}

/// Latency buckets, in seconds: from well under a millisecond to a slow second.
const BUCKETS: &[f64] = &[
    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "flash_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "flash_http_request_duration_seconds",
                "Time from request to response, by route",
            )
            .buckets(BUCKETS.to_vec()),
            &["route"],
        )?;
        let reserve_outcomes = IntCounterVec::new(
            Opts::new(
                "flash_reserve_outcomes_total",
                "Cart adds and buys by outcome: OK or the engine's error word",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(reserve_outcomes.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            reserve_outcomes,
        })
    }

    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, itoa::Buffer::new().format(status)])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn reserve_outcome(&self, outcome: &str) {
        self.reserve_outcomes.with_label_values(&[outcome]).inc();
    }

    /// The whole exposition: the registry, then the worker's and the WebSocket series.
    pub fn render(
        &self,
        worker: Option<&Counters>,
        ws: &[(&'static str, &'static str, u64)],
    ) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for lack of space; a failure would be a bug in
        // the metric names, caught by the tests.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        let mut text = String::from_utf8(out).unwrap_or_default();
        if let Some(counters) = worker {
            let orders = [
                ("confirmed", counters.confirmed.load(Ordering::Relaxed)),
                ("rejected", counters.rejected.load(Ordering::Relaxed)),
                (
                    "dead_lettered",
                    counters.dead_lettered.load(Ordering::Relaxed),
                ),
            ];
            text.push_str("# HELP flash_worker_orders_total Orders the embedded worker finished, by outcome\n");
            text.push_str("# TYPE flash_worker_orders_total counter\n");
            for (outcome, n) in orders {
                text.push_str(&format!(
                    "flash_worker_orders_total{{outcome=\"{outcome}\"}} {n}\n"
                ));
            }
            let batches = counters.batches.load(Ordering::Relaxed);
            let micros = counters.batch_micros.load(Ordering::Relaxed);
            text.push_str(
                "# HELP flash_worker_batch_seconds Batch latency, read to acknowledged\n",
            );
            text.push_str("# TYPE flash_worker_batch_seconds summary\n");
            text.push_str(&format!(
                "flash_worker_batch_seconds_sum {}\nflash_worker_batch_seconds_count {batches}\n",
                micros as f64 / 1e6
            ));
        }
        for (name, kind, value) in ws {
            text.push_str(&format!("# TYPE {name} {kind}\n{name} {value}\n"));
        }
        text
    }
}
