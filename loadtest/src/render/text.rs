//! The end-of-run summary for a terminal (aligned like oha, wrk2 and k6 print theirs) and the
//! markdown comparison table for docs and pull requests.

use std::fmt::Write as _;

use super::format::{
    attempted_requests, bytes, comparison_rows, elasticity_rows, error_counts, is_open_model, ms,
    percent, rate, target_name, threshold_observed, time_to_adequate, verdict, COMPARISON_HEADERS,
    LATENCY_COLUMNS,
};
use crate::report::{LatencySummary, RunReport};

/// Width of the label column of the request and latency tables.
const LABEL: usize = 26;

/// One aligned line: indented label, right-aligned value, then a note.
fn row(out: &mut String, label_width: usize, label: &str, value: &str, note: &str) {
    let line = format!("  {label:<label_width$}{value:>12}  {note}");
    out.push_str(line.trim_end());
    out.push('\n');
}

/// A share, right-aligned so that percentages line up.
fn share(part: u64, whole: u64) -> String {
    format!("{:>7}", percent(part, whole))
}

/// The human end-of-run summary. Sections without data (late requests in the closed model,
/// thresholds, elasticity, scaling) are left out.
pub(super) fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    setup(&mut out, report);
    requests(&mut out, report);
    latency(&mut out, report);
    statuses_and_errors(&mut out, report);
    let _ = writeln!(
        out,
        "\n{:<LABEL$}{}",
        "Bytes received",
        bytes(report.bytes_received)
    );
    thresholds(&mut out, report);
    elasticity(&mut out, report);
    if report.service.is_some() || !report.scaling_events.is_empty() {
        let _ = writeln!(
            out,
            "\nScaling activity: {} event(s){}",
            report.scaling_events.len(),
            report
                .service
                .as_ref()
                .map(|service| format!(" for {service}"))
                .unwrap_or_default()
        );
    }
    out
}

fn setup(out: &mut String, report: &RunReport) {
    let setup = &report.setup;
    let concurrency = if is_open_model(report) {
        format!("up to {} in flight", setup.concurrency)
    } else {
        format!("{} connections", setup.concurrency)
    };
    let _ = writeln!(out, "Load test of {}", target_name(report));
    let _ = writeln!(
        out,
        "  {} model, {}, {} thread(s), {concurrency}, ran {:.2} s\n  schedule: {}",
        setup.model, setup.protocol, setup.threads, report.duration_seconds, setup.schedule
    );
}

fn requests(out: &mut String, report: &RunReport) {
    let attempted = attempted_requests(report);
    let _ = writeln!(out, "\nRequests");
    let mut line =
        |label: &str, value: String, note: String| row(out, LABEL - 2, label, &value, &note);
    if is_open_model(report) {
        line(
            "intended",
            report.intended_requests.to_string(),
            String::new(),
        );
    }
    line("sent", report.sent_requests.to_string(), String::new());
    line(
        "completed",
        report.completed_requests.to_string(),
        "responses with any status".to_string(),
    );
    line(
        "failed",
        report.failed_requests.to_string(),
        format!(
            "{} of sent (transport errors and statuses outside 200–399)",
            percent(report.failed_requests, attempted)
        ),
    );
    if is_open_model(report) {
        line(
            "offered rate",
            rate(report.offered_rate_per_second),
            String::new(),
        );
    }
    line(
        "achieved rate",
        rate(report.achieved_rate_per_second),
        String::new(),
    );
    if !is_open_model(report) {
        return;
    }
    line(
        "late",
        report.late_requests.to_string(),
        format!(
            "sent more than {} ms after their intended time",
            ms(report.late_after_ms)
        ),
    );
    line(
        "unsent",
        report.unsent_requests.to_string(),
        "never sent: the run ended first".to_string(),
    );
    if report.late_requests > 0 || report.unsent_requests > 0 {
        let _ = writeln!(
            out,
            "  ! The generator could not keep to the schedule (all connections busy, or the \
             machine too slow);\n    latency still counts from each request's intended send \
             time, so the stall shows."
        );
    }
}

fn latency(out: &mut String, report: &RunReport) {
    let _ = write!(out, "\n{:<LABEL$}", "Latency (ms)");
    for (name, _) in LATENCY_COLUMNS {
        let _ = write!(out, "{name:>10}");
    }
    out.push('\n');
    let rows: [(&str, &LatencySummary); 2] = [
        ("from intended send time", &report.latency),
        ("service time", &report.service_time),
    ];
    for (label, summary) in rows {
        let _ = write!(out, "  {label:<w$}", w = LABEL - 2);
        for (_, value) in LATENCY_COLUMNS {
            let _ = write!(out, "{:>10}", ms(value(summary)));
        }
        out.push('\n');
    }
}

fn statuses_and_errors(out: &mut String, report: &RunReport) {
    let attempted = attempted_requests(report);
    let _ = writeln!(out, "\nStatus codes");
    if report.status_counts.is_empty() {
        let _ = writeln!(out, "  (no responses)");
    }
    for (status, count) in &report.status_counts {
        let note = share(*count, attempted);
        row(out, LABEL - 2, status, &count.to_string(), &note);
    }
    let _ = writeln!(out, "\nErrors (no response)");
    for (class, count) in error_counts(report) {
        let note = share(count, attempted);
        row(out, LABEL - 2, class, &count.to_string(), &note);
    }
    for (class, example) in &report.error_examples {
        let _ = writeln!(out, "  first {} error: {example}", class.name());
    }
}

fn thresholds(out: &mut String, report: &RunReport) {
    let Some(verdict) = verdict(report) else {
        return;
    };
    let _ = writeln!(out, "\nThresholds");
    for result in &report.thresholds {
        let mark = if result.passed { '✓' } else { '✗' };
        let _ = writeln!(
            out,
            "  {mark} {:<w$}observed {}",
            result.threshold,
            threshold_observed(&result.threshold, result.observed),
            w = LABEL - 4
        );
    }
    let _ = writeln!(out, "  {verdict}");
}

fn elasticity(out: &mut String, report: &RunReport) {
    let Some(elasticity) = &report.elasticity else {
        return;
    };
    let _ = writeln!(
        out,
        "\nElasticity (supply: healthy tasks; demand: offered / capacity)"
    );
    for metric in elasticity_rows(elasticity) {
        let name = if metric.symbol.is_empty() {
            metric.name.to_string()
        } else {
            format!("{} {}", metric.symbol, metric.name)
        };
        row(out, LABEL + 6, &name, &metric.value, &metric.meaning);
    }
    for recovery in &elasticity.recoveries {
        let _ = writeln!(
            out,
            "  demand rose at {} s ({} → {} tasks): adequate after {}",
            recovery.at_second,
            recovery.from_tasks,
            recovery.to_tasks,
            time_to_adequate(recovery)
        );
    }
}

/// A GitHub-flavoured markdown table, one row per profile.
pub(super) fn comparison_markdown(runs: &[(String, RunReport)]) -> String {
    let escape_cell = |cell: &str| cell.replace('|', "\\|");
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", COMPARISON_HEADERS.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        COMPARISON_HEADERS
            .iter()
            .enumerate()
            .map(|(column, _)| if column == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for row in comparison_rows(runs) {
        let cells: Vec<String> = row.iter().map(|cell| escape_cell(cell)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}
