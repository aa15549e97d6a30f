//! The comparison as an SVG bar chart: jobs/s per workload, one bar per
//! system, so a reader sees the ratios at a glance. Latency rows are left
//! out (they are milliseconds, not jobs/s; the table has them).

use std::path::Path;

use plotters::prelude::*;

use crate::workloads::{Measured, Workload};

const COLOURS: [RGBColor; 3] = [
    RGBColor(0x1f, 0x6f, 0xeb),
    RGBColor(0xd9, 0x48, 0x2b),
    RGBColor(0x3a, 0x9a, 0x4a),
];

pub fn draw(
    path: &Path,
    label: &str,
    systems: &[&str],
    work: &[(Workload, u64)],
    results: &[Measured],
) -> anyhow::Result<()> {
    let rows: Vec<String> = work
        .iter()
        .filter(|(w, _)| !matches!(w, Workload::Latency { .. }))
        .map(|(w, _)| w.to_string())
        .collect();
    let rate = |system: &str, row: &str| -> f64 {
        results
            .iter()
            .find(|m| m.system == system && m.workload == row)
            .and_then(Measured::per_second)
            .unwrap_or(0.0)
    };
    let top = rows
        .iter()
        .flat_map(|r| systems.iter().map(move |s| rate(s, r)))
        .fold(1.0, f64::max)
        * 1.1;

    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Jobs per second, same Redis ({label}); higher is better"),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..rows.len() as f64, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("jobs/s")
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .draw()?;

    let width = 0.8 / systems.len() as f64;
    for (s, system) in systems.iter().enumerate() {
        let colour = COLOURS[s % COLOURS.len()];
        let bars = rows.iter().enumerate().map(|(i, row)| {
            let x0 = i as f64 + 0.1 + s as f64 * width;
            Rectangle::new(
                [(x0, 0.0), (x0 + width * 0.9, rate(system, row))],
                colour.filled(),
            )
        });
        chart
            .draw_series(bars)?
            .label(*system)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    // Workload names under the middle of each group of bars.
    let label_style = ("sans-serif", 14).into_font().color(&BLACK);
    for (i, row) in rows.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(
            row.clone(),
            (x - 4 * row.len() as i32, y + 10),
            label_style.clone(),
        ))?;
    }
    root.present()?;
    Ok(())
}
