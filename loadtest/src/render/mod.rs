//! TEMPORARY stub until helper-render merges.
use std::path::{Path, PathBuf};

use crate::report::RunReport;

/// Stub.
#[derive(Debug, thiserror::Error)]
#[error("render")]
pub struct RenderError;

/// Stub.
pub fn summary_text(report: &RunReport) -> String {
    format!("{report:?}\n")
}

/// Stub.
pub fn write_report_files(_report: &RunReport, _dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
    Ok(Vec::new())
}

/// Stub.
pub fn comparison_table_markdown(_runs: &[(String, RunReport)]) -> String {
    String::new()
}

/// Stub.
pub fn write_comparison_files(
    _runs: &[(String, RunReport)],
    _dir: &Path,
) -> Result<Vec<PathBuf>, RenderError> {
    Ok(Vec::new())
}
