//! The PNG: requests completed per second (top) and their p99 latency in milliseconds
//! (bottom), over the crowd's seconds.
//!
//! plotters draws text with ab_glyph from a font file read at run time: the default `ttf`
//! feature would need fontconfig and freetype development packages to build. The font is
//! DejaVu Sans from Debian's `fonts-dejavu-core` (`cargo xtask deps` installs it), or
//! `$FLASH_CHART_FONT`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::stats::Slice;

const FONT_CANDIDATES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font once per process for plotters' "sans-serif"; the error says where it
/// looked.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let outcome = REGISTERED.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("FLASH_CHART_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
            .collect();
        for path in &candidates {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            // plotters keeps fonts for the life of the process; this runs once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(path.clone());
            }
        }
        Err(format!(
            "no usable font for the chart's text (looked at {}): install fonts-dejavu-core \
             (`cargo xtask deps`) or set FLASH_CHART_FONT to a .ttf file",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    });
    outcome.as_ref().map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// Writes the chart of `timeline` (see [`super::stats::Summary::timeline`]) to `path`.
pub fn write(path: &Path, title: &str, timeline: &[Slice]) -> Result<()> {
    let rates: Vec<(f64, f64)> = timeline.iter().map(|s| (s.at_secs, s.per_second)).collect();
    let p99: Vec<(f64, f64)> = timeline
        .iter()
        .filter(|slice| slice.per_second > 0.0)
        .map(|slice| (slice.at_secs, slice.p99.as_secs_f64() * 1000.0))
        .collect();
    let width = match timeline {
        [first, ..] => first.at_secs * 2.0,
        [] => 1.0,
    };
    let x_end = (timeline.len() as f64 * width).max(0.001);
    let every = if (width - 1.0).abs() < 0.1 {
        "per second".to_owned()
    } else {
        format!("per {:.0} ms", width * 1000.0)
    };
    let rates_caption = format!("requests completed per second (measured {every})");
    let p99_caption = format!("p99 latency of the requests completed {every}");
    write_panels(
        path,
        title,
        "seconds since the crowd started",
        x_end,
        &[
            Panel {
                caption: &rates_caption,
                unit: "req/s",
                points: &rates,
                color: BLUE,
            },
            Panel {
                caption: &p99_caption,
                unit: "p99 (ms)",
                points: &p99,
                color: RED,
            },
        ],
    )
}

/// One panel of a chart: a line of points over the seconds.
pub struct Panel<'a> {
    pub caption: &'a str,
    pub unit: &'a str,
    pub points: &'a [(f64, f64)],
    pub color: RGBColor,
}

/// Writes panels stacked top to bottom, over one x axis from 0 to `x_end`.
pub fn write_panels(
    path: &Path,
    title: &str,
    x_desc: &str,
    x_end: f64,
    panels: &[Panel<'_>],
) -> Result<()> {
    ensure_font()?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let top = |points: &[(f64, f64)]| {
        points
            .iter()
            .map(|(_, y)| *y)
            .fold(0.0_f64, f64::max)
            .max(1.0)
            * 1.1
    };
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let areas = root.split_evenly((panels.len().max(1), 1));
        for (area, panel) in areas.iter().zip(panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(panel.caption, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..x_end.max(0.001), 0.0..top(panel.points))?;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(panel.unit)
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style(("sans-serif", 14))
                .draw()?;
            chart.draw_series(LineSeries::new(
                panel.points.iter().copied(),
                panel.color.stroke_width(2),
            ))?;
            chart.draw_series(
                panel
                    .points
                    .iter()
                    .map(|&point| Circle::new(point, 3, panel.color.filled())),
            )?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow!("cannot draw the chart {}: {e}", path.display()))
}
