//! The table: each workload's median rate and cost, and the targets as ratios.

use std::collections::BTreeMap;

use super::PIPELINES;
use super::measure::{Measure, median};
use super::workload::Workload;

/// One table row: label, pipeline, req/s, ratio to INCR, server µs/call.
type Row = (String, u32, Option<f64>, Option<f64>, Option<f64>);

pub(super) fn print_table(results: &BTreeMap<(Workload, u32), Measure>) {
    let rps = |workload: Workload, pipeline: u32| {
        results
            .get(&(workload, pipeline))
            .map(|m| m.requests_per_sec)
    };
    let mut rows: Vec<Row> = Vec::new();
    for workload in Workload::ALL {
        for pipeline in PIPELINES {
            let measure = results.get(&(workload, pipeline));
            rows.push((
                workload.label().to_owned(),
                pipeline,
                measure.map(|m| m.requests_per_sec),
                ratio(rps(workload, pipeline), rps(Workload::Incr, pipeline)),
                measure.and_then(|m| m.usec_per_call),
            ));
        }
    }
    for pipeline in PIPELINES {
        let naive = [
            Workload::NaiveDecr,
            Workload::NaiveRpush,
            Workload::NaiveLlen,
        ];
        let combined = naive_reserve_rate(&naive.map(|w| rps(w, pipeline)));
        let usec: Option<f64> = naive
            .iter()
            .map(|w| results.get(&(*w, pipeline)).and_then(|m| m.usec_per_call))
            .sum();
        rows.push((
            "naive reserve (3 round trips)".to_owned(),
            pipeline,
            combined,
            ratio(combined, rps(Workload::Incr, pipeline)),
            usec,
        ));
    }

    let headers = ["command", "pipeline", "req/s", "× INCR", "server µs/call"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|(label, pipeline, rate, times, usec)| {
            [
                label.clone(),
                format!("-P {pipeline}"),
                rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.0}")),
                times.map_or_else(|| "-".to_owned(), |t| format!("{t:.2}")),
                usec.map_or_else(|| "-".to_owned(), |u| format!("{u:.2}")),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: [&str; 5]| {
        let mut out = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            // Text left, numbers right.
            if index == 0 {
                out.push_str(&format!("{cell}{pad}  "));
            } else {
                out.push_str(&format!("{pad}{cell}  "));
            }
        }
        out.trim_end().to_owned()
    };
    println!("{}", line(headers));
    println!(
        "{}",
        line(widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str))
    );
    for row in &cells {
        println!("{}", line(row.each_ref().map(String::as_str)));
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

/// The targets, each as the median over rounds of the ratio within a round: both figures
/// of a ratio come from the same minute of this shared machine, so a burst of noise in one
/// round moves one sample, not the verdict.
pub(super) fn print_summary(samples: &BTreeMap<(Workload, u32), Vec<Measure>>) {
    let round_ratio = |a: (Workload, u32), b: (Workload, u32)| {
        let (Some(a), Some(b)) = (samples.get(&a), samples.get(&b)) else {
            return None;
        };
        median(
            a.iter()
                .zip(b)
                .map(|(a, b)| a.requests_per_sec / b.requests_per_sec)
                .collect(),
        )
    };
    let verdict = |value: Option<f64>, target: f64| match value {
        Some(v) if v >= target => format!("{v:.2} (target ≥ {target:.1}: met)"),
        Some(v) => format!("{v:.2} (target ≥ {target:.1}: missed)"),
        None => format!("- (target ≥ {target:.1}: not measured)"),
    };
    println!();
    println!(
        "FLASH.RESERVE / INCR at -P 1 = {}",
        verdict(
            round_ratio((Workload::ModuleNewCarts, 1), (Workload::Incr, 1)),
            0.9
        )
    );
    println!(
        "FLASH.RESERVE / Lua at -P 16 = {}",
        verdict(
            round_ratio((Workload::ModuleOneCart, 16), (Workload::LuaOneCart, 16)),
            2.0
        )
    );
    println!(
        "(median over rounds of each round's ratio; vs INCR: random carts, as traffic arrives; \
         vs Lua: one cart per run on both sides, because redis-benchmark cannot repeat one \
         random cart id in KEYS and ARGV)"
    );

    // The server's own cost per call against Redis's own hash commands (issue 10's
    // targets): what the module spends beyond the work, whatever the network costs.
    let cost_ratio = |a: Workload, b: Workload| {
        let (Some(a), Some(b)) = (samples.get(&(a, 16)), samples.get(&(b, 16))) else {
            return None;
        };
        median(
            a.iter()
                .zip(b)
                .filter_map(|(a, b)| Some(a.usec_per_call? / b.usec_per_call?))
                .collect(),
        )
    };
    let at_most = |value: Option<f64>, target: f64| match value {
        Some(v) if v <= target => format!("{v:.1}× (target ≤ {target:.0}×: met)"),
        Some(v) => format!("{v:.1}× (target ≤ {target:.0}×: missed)"),
        None => format!("- (target ≤ {target:.0}×: not measured)"),
    };
    println!();
    println!("server µs per call at -P 16, against Redis's own hash commands:");
    for (label, workload, baseline, target) in [
        (
            "FLASH.RESERVE, new carts / HINCRBY",
            Workload::ModuleNewCarts,
            Workload::Hincrby,
            8.0,
        ),
        (
            "FLASH.RESERVE, one cart / HINCRBY",
            Workload::ModuleOneCart,
            Workload::Hincrby,
            5.0,
        ),
        (
            "FLASH.AVAILABLE / HGET",
            Workload::ModuleAvailable,
            Workload::Hget,
            2.0,
        ),
    ] {
        println!(
            "  {label:<36} = {}",
            at_most(cost_ratio(workload, baseline), target)
        );
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
}
