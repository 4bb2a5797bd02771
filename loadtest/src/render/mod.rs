//! Turns a [`RunReport`] into what a person reads: the end-of-run text summary, SVG and PNG
//! charts (plotters), a self-contained HTML report, and for `--scenario` a side-by-side
//! comparison of one run per autoscaling profile.
//!
//! - [`summary_text`]: the terminal summary, like oha, wrk2 and k6 print.
//! - [`write_report_files`]: `load.svg`/`.png` (offered and achieved load against the
//!   service's tasks, scaling events marked), `latency.svg`/`.png` and `report.html`.
//! - [`write_comparison_files`] and [`comparison_table_markdown`]: one run per profile.
//!
//! The HTML has stable element ids (`chart-load`, `chart-latency`, `summary`, `thresholds`,
//! `elasticity`, `scaling-events`, `status-codes`, `errors`) and the SVG elements classes
//! (`series-offered`, `series-healthy`, `series-p99`, `scaling-event`, …) so that tests and
//! user styles can find them.

mod chart;
mod format;
mod html;
mod text;

use std::path::{Path, PathBuf};

use crate::report::RunReport;

/// Why report files could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// plotters failed to draw a chart.
    #[error("drawing a chart: {0}")]
    Chart(String),
    /// The bundled font did not parse (a corrupt build).
    #[error("the bundled chart font could not be loaded")]
    Font,
    /// A PNG could not be encoded.
    #[error("encoding a PNG: {0}")]
    Png(String),
    /// A file or the output directory could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A comparison was asked for without runs.
    #[error("no runs to compare")]
    NoRuns,
}

/// Writes `<dir>/load.svg`, `load.png`, `latency.svg`, `latency.png` and `report.html`
/// (creating `dir`), so a run can be looked at rather than read. Returns the paths written.
pub fn write_report_files(report: &RunReport, dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let load = chart::render(&chart::LoadChart(report))?;
    let latency = chart::render(&chart::LatencyChart(report))?;
    let page = html::report_page(report, &load.svg, &latency.svg);
    write_files(
        dir,
        [
            ("load.svg", load.svg.into_bytes()),
            ("load.png", load.png),
            ("latency.svg", latency.svg.into_bytes()),
            ("latency.png", latency.png),
            ("report.html", page.into_bytes()),
        ],
    )
}

/// For `--scenario`: one run per autoscaling profile, side by side, so profiles can be
/// compared on the same schedule. Writes `comparison.svg`, `comparison.png` and
/// `comparison.html` (creating `dir`) and returns their paths.
pub fn write_comparison_files(
    runs: &[(String, RunReport)],
    dir: &Path,
) -> Result<Vec<PathBuf>, RenderError> {
    if runs.is_empty() {
        return Err(RenderError::NoRuns);
    }
    let comparison = chart::render(&chart::ComparisonChart(runs))?;
    let page = html::comparison_page(runs, &comparison.svg);
    write_files(
        dir,
        [
            ("comparison.svg", comparison.svg.into_bytes()),
            ("comparison.png", comparison.png),
            ("comparison.html", page.into_bytes()),
        ],
    )
}

/// The per-profile comparison as a markdown table (elasticity metrics, SLO-violation seconds,
/// p99, errors, achieved rate), for `docs/autoscaling.md` and terminals.
pub fn comparison_table_markdown(runs: &[(String, RunReport)]) -> String {
    text::comparison_markdown(runs)
}

/// The human end-of-run summary: setup, requests and rates, late and unsent requests,
/// latency from intended send time and service time, status codes, errors by class, bytes,
/// thresholds, elasticity and scaling activity.
pub fn summary_text(report: &RunReport) -> String {
    text::summary(report)
}

fn write_files<const N: usize>(
    dir: &Path,
    files: [(&str, Vec<u8>); N],
) -> Result<Vec<PathBuf>, RenderError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RenderError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let mut written = Vec::with_capacity(N);
    for (name, contents) in files {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(failed(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
#[path = "../../tests/fixtures/run_report.rs"]
mod fixture;

#[cfg(test)]
mod tests;
