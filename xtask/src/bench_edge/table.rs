//! The figures: latency histograms, medians, and the tables they are printed in.

use anyhow::Result;
use hdrhistogram::Histogram;

/// Microseconds from 1 µs to 60 s, 3 significant digits.
pub(super) fn new_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

pub(super) fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// A table in columns: text left, numbers right.
pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            let numeric = cell
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '-');
            if index == 0 || !numeric {
                out.push_str(&format!("{cell}{pad} | "));
            } else {
                out.push_str(&format!("{pad}{cell} | "));
            }
        }
        out.trim_end_matches([' ', '|']).to_owned()
    };
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    println!("{}", line(&headers));
    println!(
        "{}",
        line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>())
    );
    for row in rows {
        println!("{}", line(row));
    }
}
