//! Numbers and tables shared by the text summary, the markdown table and the HTML report, so
//! that every output words and rounds a metric the same way.

use std::borrow::Cow;

use crate::report::{CapacityRecovery, ElasticityReport, ErrorClass, LatencySummary, RunReport};
use crate::threshold::{Threshold, ThresholdMetric};

/// Reads one statistic, in ms, from a latency summary.
pub(super) type LatencyStatistic = fn(&LatencySummary) -> f64;

/// The latency columns of every report, in order, with how to read each from a summary.
pub(super) const LATENCY_COLUMNS: [(&str, LatencyStatistic); 7] = [
    ("p50", |l| l.p50_ms),
    ("p90", |l| l.p90_ms),
    ("p99", |l| l.p99_ms),
    ("p99.9", |l| l.p99_9_ms),
    ("p99.99", |l| l.p99_99_ms),
    ("max", |l| l.max_ms),
    ("mean", |l| l.mean_ms),
];

/// A latency in milliseconds, two decimals (microsecond resolution, as measured).
pub(super) fn ms(value: f64) -> String {
    format!("{value:.2}")
}

/// `part` as a percentage of `whole`; `0.00%` when there is no whole.
pub(super) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.00%".to_string();
    }
    fraction(part as f64 / whole as f64)
}

/// A fraction 0–1 as a percentage with enough digits to tell 0.1% from 0.
pub(super) fn fraction(value: f64) -> String {
    let percent = value * 100.0;
    if percent != 0.0 && percent.abs() < 0.01 {
        format!("{percent:.4}%")
    } else {
        format!("{percent:.2}%")
    }
}

/// A rate in requests per second.
pub(super) fn rate(per_second: f64) -> String {
    format!("{per_second:.1}/s")
}

/// A byte count in binary units (`1.21 MiB`).
pub(super) fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Requests that were attempted: the denominator of error and status percentages.
pub(super) fn attempted_requests(report: &RunReport) -> u64 {
    report.sent_requests.max(report.completed_requests)
}

/// Failures without a response per class, every class listed (zeros too) in report order.
pub(super) fn error_counts(report: &RunReport) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    ErrorClass::ALL.into_iter().map(|class| {
        (
            class.name(),
            report.errors.get(&class).copied().unwrap_or(0),
        )
    })
}

/// Whether the run was rate-driven (the open model), where late and unsent requests exist.
pub(super) fn is_open_model(report: &RunReport) -> bool {
    report.setup.model != "closed"
}

/// A threshold's observed value in the threshold's own unit: ms for latency, % for rates.
pub(super) fn threshold_observed(threshold: &str, observed: f64) -> String {
    match threshold.parse::<Threshold>().map(|parsed| parsed.metric) {
        Ok(ThresholdMetric::LatencyPercentile(_) | ThresholdMetric::MaxLatency) => {
            format!("{} ms", ms(observed * 1000.0))
        }
        Ok(ThresholdMetric::ErrorRate | ThresholdMetric::LateRate) => fraction(observed),
        Err(_) => format!("{observed}"),
    }
}

/// The verdict line of a run with thresholds; `None` without thresholds.
pub(super) fn verdict(report: &RunReport) -> Option<String> {
    let total = report.thresholds.len();
    if total == 0 {
        return None;
    }
    let failed = report.thresholds.iter().filter(|t| !t.passed).count();
    Some(if failed == 0 {
        format!("PASS: all {total} thresholds met")
    } else {
        format!("FAIL: {failed} of {total} thresholds not met")
    })
}

/// One elasticity metric: its symbol, name, value with unit, and how to read it.
pub(super) struct ElasticityRow {
    /// θ_U, τ_O, …; empty for metrics without a symbol.
    pub symbol: &'static str,
    /// What it is called.
    pub name: &'static str,
    /// Value and unit.
    pub value: String,
    /// One line on how to read it.
    pub meaning: String,
}

/// The elasticity metrics as rows, in the order of the SPEC RG definitions.
pub(super) fn elasticity_rows(elasticity: &ElasticityReport) -> Vec<ElasticityRow> {
    let m = &elasticity.metrics;
    let slo_meaning = format!(
        "seconds with p99 above {} ms or any error",
        ms(elasticity.slo_p99_ms)
    );
    let capacity_meaning = format!(
        "requests/s one task serves within the SLO ({}); demand = offered / this",
        elasticity.capacity_source
    );
    let row = |symbol, name, value, meaning| ElasticityRow {
        symbol,
        name,
        value,
        meaning,
    };
    vec![
        row(
            "θ_U",
            "under-provisioning accuracy",
            format!("{:.2} tasks", m.under_provisioning_accuracy),
            "average tasks missing (demand above healthy tasks)".to_string(),
        ),
        row(
            "θ_O",
            "over-provisioning accuracy",
            format!("{:.2} tasks", m.over_provisioning_accuracy),
            "average tasks in excess of demand".to_string(),
        ),
        row(
            "τ_U",
            "under-provisioning timeshare",
            fraction(m.under_provisioning_timeshare),
            "share of the run with too few healthy tasks".to_string(),
        ),
        row(
            "τ_O",
            "over-provisioning timeshare",
            fraction(m.over_provisioning_timeshare),
            "share of the run with more tasks than needed".to_string(),
        ),
        row(
            "υ",
            "instability",
            fraction(m.instability),
            "share of seconds supply and demand moved in different directions".to_string(),
        ),
        row(
            "j",
            "jitter",
            format!("{:+.2} /min", m.jitter_per_minute),
            "supply changes minus demand changes per minute (<0 inert, >0 oscillating)".to_string(),
        ),
        row(
            "",
            "task-seconds",
            format!("{:.0} task·s", m.task_seconds),
            "what the run cost: healthy tasks summed over seconds".to_string(),
        ),
        row(
            "",
            "SLO-violation seconds",
            format!("{} s", elasticity.slo_violation_seconds),
            slo_meaning,
        ),
        row(
            "",
            "capacity per task",
            rate(elasticity.capacity_per_task),
            capacity_meaning,
        ),
    ]
}

/// How long a rise in demand took to be met, or that it never was.
pub(super) fn time_to_adequate(recovery: &CapacityRecovery) -> String {
    match recovery.seconds_to_adequate {
        Some(seconds) => format!("{seconds:.1} s"),
        None => "not met".to_string(),
    }
}

/// The headers of the per-profile comparison table.
pub(super) const COMPARISON_HEADERS: [&str; 13] = [
    "profile",
    "θ_U (tasks)",
    "θ_O (tasks)",
    "τ_U",
    "τ_O",
    "υ",
    "jitter (/min)",
    "task-seconds",
    "SLO-violation s",
    "slowest recovery",
    "p99 (ms)",
    "errors",
    "achieved",
];

/// One row of the comparison table per run, cells in [`COMPARISON_HEADERS`] order. Runs
/// without elasticity metrics show `–` in those columns.
pub(super) fn comparison_rows(runs: &[(String, RunReport)]) -> Vec<Vec<String>> {
    runs.iter()
        .map(|(profile, report)| {
            let mut cells = vec![profile.clone()];
            match &report.elasticity {
                Some(elasticity) => {
                    let m = &elasticity.metrics;
                    cells.extend([
                        format!("{:.2}", m.under_provisioning_accuracy),
                        format!("{:.2}", m.over_provisioning_accuracy),
                        fraction(m.under_provisioning_timeshare),
                        fraction(m.over_provisioning_timeshare),
                        fraction(m.instability),
                        format!("{:+.2}", m.jitter_per_minute),
                        format!("{:.0}", m.task_seconds),
                        elasticity.slo_violation_seconds.to_string(),
                        slowest_recovery(&elasticity.recoveries),
                    ]);
                }
                None => cells.extend(std::iter::repeat_n("–".to_string(), 9)),
            }
            cells.extend([
                ms(report.latency.p99_ms),
                percent(report.failed_requests, attempted_requests(report)),
                rate(report.achieved_rate_per_second),
            ]);
            cells
        })
        .collect()
}

/// The longest time to adequate capacity; `not met` if any rise was never met, `–` if demand
/// never rose.
fn slowest_recovery(recoveries: &[CapacityRecovery]) -> String {
    if recoveries.iter().any(|r| r.seconds_to_adequate.is_none()) {
        return "not met".to_string();
    }
    recoveries
        .iter()
        .filter_map(|r| r.seconds_to_adequate)
        .reduce(f64::max)
        .map_or_else(|| "–".to_string(), |seconds| format!("{seconds:.1} s"))
}

/// `text` with `<`, `>`, `&`, `"` and `'` replaced by entities, for HTML text and attributes.
pub(super) fn escape_html(text: &str) -> Cow<'_, str> {
    if !text.contains(['<', '>', '&', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

/// Where the load went: the service when known, else the URL.
pub(super) fn target_name(report: &RunReport) -> String {
    match &report.service {
        Some(service) => format!("{service} ({})", report.setup.url),
        None => report.setup.url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_keep_small_rates_visible() {
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(0, 0), "0.00%");
        assert_eq!(fraction(0.000_02), "0.0020%");
        assert_eq!(fraction(0.0), "0.00%");
    }

    #[test]
    fn bytes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.00 MiB");
    }

    #[test]
    fn threshold_values_are_shown_in_the_threshold_unit() {
        assert_eq!(threshold_observed("p99<50ms", 0.0123), "12.30 ms");
        assert_eq!(threshold_observed("errors<0.1%", 0.0025), "0.25%");
        assert_eq!(threshold_observed("nonsense", 1.5), "1.5");
    }

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(matches!(escape_html("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn slowest_recovery_says_when_a_rise_was_never_met() {
        let recovery = |seconds| CapacityRecovery {
            at_second: 0,
            from_tasks: 1,
            to_tasks: 2,
            seconds_to_adequate: seconds,
        };
        assert_eq!(slowest_recovery(&[]), "–");
        assert_eq!(
            slowest_recovery(&[recovery(Some(3.0)), recovery(Some(9.5))]),
            "9.5 s"
        );
        assert_eq!(
            slowest_recovery(&[recovery(Some(3.0)), recovery(None)]),
            "not met"
        );
    }
}
