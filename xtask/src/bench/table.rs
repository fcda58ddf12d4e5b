//! The table: each workload's median rate and cost, and the targets as ratios.

use std::collections::BTreeMap;

use super::config::Config;
use super::measure::{Measure, median};
use super::workload::Workload;
use super::{PIPELINES, Samples};

/// One row of the full table: label and pipeline, then req/s, ratio to INCR, server µs/call
/// and CPU µs/request.
type Row = (String, u32, [Option<f64>; 4]);

/// One configuration's medians: every workload it ran, at each pipeline.
pub(super) fn print_table(results: &BTreeMap<(Workload, u32), Measure>) {
    let rps = |workload: Workload, pipeline: u32| {
        results
            .get(&(workload, pipeline))
            .map(|m| m.requests_per_sec)
    };
    let mut rows: Vec<Row> = Vec::new();
    for workload in Workload::ALL {
        for pipeline in PIPELINES {
            // A configuration that did not run it has no row.
            let Some(measure) = results.get(&(workload, pipeline)) else {
                continue;
            };
            rows.push((
                workload.label().to_owned(),
                pipeline,
                [
                    Some(measure.requests_per_sec),
                    ratio(rps(workload, pipeline), rps(Workload::Incr, pipeline)),
                    measure.usec_per_call,
                    measure.cpu_usec_per_request,
                ],
            ));
        }
    }
    let naive = [
        Workload::NaiveDecr,
        Workload::NaiveRpush,
        Workload::NaiveLlen,
    ];
    for pipeline in PIPELINES {
        let measures: Option<Vec<&Measure>> =
            naive.iter().map(|w| results.get(&(*w, pipeline))).collect();
        let Some(measures) = measures else {
            continue;
        };
        let combined = naive_reserve_rate(&naive.map(|w| rps(w, pipeline)));
        rows.push((
            "naive reserve (3 round trips)".to_owned(),
            pipeline,
            [
                combined,
                ratio(combined, rps(Workload::Incr, pipeline)),
                measures.iter().map(|m| m.usec_per_call).sum(),
                measures.iter().map(|m| m.cpu_usec_per_request).sum(),
            ],
        ));
    }

    let headers = [
        "command",
        "pipeline",
        "req/s",
        "× INCR",
        "server µs/call",
        "CPU µs/req",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(label, pipeline, [rate, times, usec, cpu])| {
            vec![
                label.clone(),
                format!("-P {pipeline}"),
                number(*rate, 0),
                number(*times, 2),
                number(*usec, 2),
                number(*cpu, 2),
            ]
        })
        .collect();
    print_cells(&headers, &cells);
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// Columns padded to their widest cell: the first (text) left, the rest (numbers) right.
fn print_cells(headers: &[&str], cells: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[&str]| {
        let mut out = String::new();
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            if index == 0 {
                out.push_str(&format!("{cell}{pad}  "));
            } else {
                out.push_str(&format!("{pad}{cell}  "));
            }
        }
        out.trim_end().to_owned()
    };
    println!("{}", line(headers));
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!(
        "{}",
        line(&rules.iter().map(String::as_str).collect::<Vec<_>>())
    );
    for row in cells {
        println!(
            "{}",
            line(&row.iter().map(String::as_str).collect::<Vec<_>>())
        );
    }
}

/// One naive reserve is three calls in a row, so its rate is 1 / (1/r1 + 1/r2 + 1/r3).
fn naive_reserve_rate(rates: &[Option<f64>; 3]) -> Option<f64> {
    let mut seconds_per_reserve = 0.0;
    for rate in rates {
        let rate = (*rate).filter(|r| *r > 0.0)?;
        seconds_per_reserve += 1.0 / rate;
    }
    Some(1.0 / seconds_per_reserve)
}

fn ratio(numerator: Option<f64>, denominator: Option<f64>) -> Option<f64> {
    let denominator = denominator.filter(|d| *d > 0.0)?;
    Some(numerator? / denominator)
}

/// A target on a ratio: at least or at most this many times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met(self, value: f64) -> bool {
        match self {
            Target::AtLeast(target) => value >= target,
            Target::AtMost(target) => value <= target,
        }
    }

    fn show(self) -> String {
        match self {
            Target::AtLeast(target) => format!("≥ {target}×"),
            Target::AtMost(target) => format!("≤ {target}×"),
        }
    }
}

/// A ratio and its verdict: `5.86× met`.
fn verdict(value: Option<f64>, target: Option<Target>) -> String {
    match (value, target) {
        (None, _) => "-".to_owned(),
        (Some(v), None) => format!("{v:.2}×"),
        (Some(v), Some(t)) if t.met(v) => format!("{v:.2}× met"),
        (Some(v), Some(_)) => format!("{v:.2}× missed"),
    }
}

/// Which figure of a [`Measure`] a row shows.
#[derive(Clone, Copy)]
enum Figure {
    Rate,
    ServerUsec,
    CpuUsec,
}

impl Figure {
    fn of(self, measure: &Measure) -> Option<f64> {
        match self {
            Figure::Rate => Some(measure.requests_per_sec),
            Figure::ServerUsec => measure.usec_per_call,
            Figure::CpuUsec => measure.cpu_usec_per_request,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Figure::Rate => "req/s",
            Figure::ServerUsec => "server µs/call",
            Figure::CpuUsec => "CPU µs/req",
        }
    }
}

/// The median over rounds of each round's ratio `a / b` of one figure: both figures of a
/// ratio come from the same minute of this shared machine, so a burst of noise in one round
/// moves one sample, not the verdict.
fn round_ratio(a: &[Measure], b: &[Measure], figure: Figure) -> Option<f64> {
    median(
        a.iter()
            .zip(b)
            .filter_map(|(a, b)| {
                let (a, b) = (figure.of(a)?, figure.of(b)?);
                (b > 0.0).then(|| a / b)
            })
            .collect(),
    )
}

/// One table, a column per configuration: the -P 16 costs issue 10's targets compare, then
/// the targets' ratios with their verdicts.
pub(super) fn print_comparison(configs: &[Config], samples: &Samples) {
    let mut headers: Vec<&str> = vec!["median over rounds"];
    headers.extend(configs.iter().map(|c| c.label()));
    headers.push("target");
    let mut cells: Vec<Vec<String>> = Vec::new();

    for (figure, decimals) in [
        (Figure::ServerUsec, 2),
        (Figure::CpuUsec, 2),
        (Figure::Rate, 0),
    ] {
        for workload in Workload::SUMMARY
            .into_iter()
            .chain([Workload::FloorNoop, Workload::FloorHget])
        {
            let mut row = vec![format!("{}, -P 16: {}", figure.name(), workload.label())];
            for config in configs {
                let value = samples
                    .get(&(*config, workload, 16))
                    .and_then(|runs| figure.of(&Measure::median(runs)));
                row.push(number(value, decimals));
            }
            row.push(String::new());
            cells.push(row);
        }
    }

    let ratios = [
        (
            "FLASH.RESERVE new carts / HINCRBY",
            (Workload::ModuleNewCarts, Workload::Hincrby, 16),
            Figure::ServerUsec,
            Some(Target::AtMost(8.0)),
        ),
        (
            "FLASH.RESERVE one cart / HINCRBY",
            (Workload::ModuleOneCart, Workload::Hincrby, 16),
            Figure::ServerUsec,
            Some(Target::AtMost(5.0)),
        ),
        (
            "FLASH.AVAILABLE / HGET",
            (Workload::ModuleAvailable, Workload::Hget, 16),
            Figure::ServerUsec,
            Some(Target::AtMost(2.0)),
        ),
        (
            "module API floor, one field / HGET",
            (Workload::FloorHget, Workload::Hget, 16),
            Figure::ServerUsec,
            None,
        ),
        (
            "FLASH.AVAILABLE / module API floor, one field",
            (Workload::ModuleAvailable, Workload::FloorHget, 16),
            Figure::ServerUsec,
            None,
        ),
        (
            "FLASH.RESERVE new carts / HINCRBY",
            (Workload::ModuleNewCarts, Workload::Hincrby, 16),
            Figure::CpuUsec,
            None,
        ),
        (
            "FLASH.RESERVE new carts / INCR",
            (Workload::ModuleNewCarts, Workload::Incr, 1),
            Figure::Rate,
            Some(Target::AtLeast(0.9)),
        ),
        (
            "FLASH.RESERVE one cart / Lua twin",
            (Workload::ModuleOneCart, Workload::LuaOneCart, 16),
            Figure::Rate,
            Some(Target::AtLeast(2.0)),
        ),
    ];
    for (label, (a, b, pipeline), figure, target) in ratios {
        let mut row = vec![format!("{label} ({}, -P {pipeline})", figure.name())];
        for config in configs {
            let value = match (
                samples.get(&(*config, a, pipeline)),
                samples.get(&(*config, b, pipeline)),
            ) {
                (Some(a), Some(b)) => round_ratio(a, b, figure),
                _ => None,
            };
            row.push(verdict(value, target));
        }
        row.push(target.map_or_else(String::new, Target::show));
        cells.push(row);
    }

    println!();
    println!("issue 10's comparisons per configuration:");
    print_cells(&headers, &cells);
    for note in [
        "server µs/call: INFO commandstats, the command alone; CPU µs/req: the server process's",
        "user + system time per request, which also counts the sockets, the AOF and the",
        "replication stream. Ratios: the median of each round's ratio. vs INCR: random carts, as",
        "traffic arrives; vs Lua: one cart per run on both sides, because redis-benchmark cannot",
        "repeat one random cart id in KEYS and ARGV; the Lua twin runs on the plain server only.",
    ] {
        println!("  {note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_reserve_costs_the_three_calls_in_a_row() {
        let rate = naive_reserve_rate(&[Some(300.0), Some(300.0), Some(300.0)]);
        assert!(rate.is_some_and(|r| (r - 100.0).abs() < 1e-9));
        assert_eq!(naive_reserve_rate(&[Some(1.0), None, Some(1.0)]), None);
    }

    fn sample(rate: f64, usec: f64) -> Measure {
        Measure {
            requests_per_sec: rate,
            usec_per_call: Some(usec),
            successful_calls: 0,
            cpu_usec_per_request: None,
        }
    }

    #[test]
    fn ratios_are_the_median_of_each_rounds_ratio() {
        let a = [sample(100.0, 8.0), sample(90.0, 9.0), sample(300.0, 30.0)];
        let b = [sample(200.0, 1.0), sample(100.0, 1.0), sample(100.0, 1.0)];
        // Rates per round: 0.5, 0.9, 3.0.
        assert_eq!(round_ratio(&a, &b, Figure::Rate), Some(0.9));
        assert_eq!(round_ratio(&a, &b, Figure::ServerUsec), Some(9.0));
        assert_eq!(round_ratio(&a, &b, Figure::CpuUsec), None);
    }

    #[test]
    fn verdicts_say_met_or_missed() {
        assert_eq!(verdict(Some(5.86), Some(Target::AtLeast(2.0))), "5.86× met");
        assert_eq!(
            verdict(Some(42.7), Some(Target::AtMost(8.0))),
            "42.70× missed"
        );
        assert_eq!(verdict(Some(1.5), None), "1.50×");
        assert_eq!(verdict(None, Some(Target::AtMost(8.0))), "-");
        assert_eq!(Target::AtLeast(0.9).show(), "≥ 0.9×");
    }
}
