//! The SVG chart of a comparison: each proxy's median relative to haproxy's, per
//! scenario (haproxy = 1).

use crate::compare::Row;
use plotters::prelude::*;
use std::path::Path;

/// Draws the ratios of `rows` into an SVG file at `path`.
pub fn ratios(rows: &[Row], path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let max = rows
        .iter()
        .flat_map(|r| r.medians.iter().map(move |(_, v)| v / r.medians[1].1))
        .filter(|v| v.is_finite())
        .fold(1.5f64, f64::max);
    let n = rows.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "median / haproxy's median (latency and memory rows: lower is better)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(50)
        .build_cartesian_2d((0u32..n * 4).into_segmented(), 0f64..max * 1.1)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() * 4)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(v) if v % 4 == 1 => rows
                .get((v / 4) as usize)
                .map(|r| r.scenario.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("ratio to haproxy")
        .draw()
        .map_err(|e| err(&e))?;
    const COLORS: [RGBColor; 3] = [
        RGBColor(200, 60, 40),
        RGBColor(90, 90, 90),
        RGBColor(40, 120, 60),
    ];
    for (p, color) in COLORS.iter().enumerate() {
        let data: Vec<(u32, f64)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u32 * 4 + p as u32, r.medians[p].1 / r.medians[1].1))
            .collect();
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(color.filled())
                    .margin(2)
                    .data(data),
            )
            .map_err(|e| err(&e))?
            .label(
                rows.first()
                    .map(|r| r.medians[p].0.clone())
                    .unwrap_or_default(),
            )
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
