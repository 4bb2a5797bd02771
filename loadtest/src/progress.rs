//! Live progress on stderr: a bar on a terminal, one plain line per second otherwise (CI logs),
//! nothing with `--no-progress`. Each update shows the last second: offered and achieved rate,
//! p50/p99, errors, and the service's task counts when followed.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::admin::ServiceCounts;
use crate::generator::SecondStats;

/// Where progress goes.
pub struct Progress {
    output: Output,
}

enum Output {
    Hidden,
    Bar(ProgressBar),
    Lines { total_seconds: u64 },
}

impl Progress {
    /// A progress display for a run of `total` (the schedule's length).
    pub fn new(enabled: bool, total: Duration) -> Progress {
        let total_seconds = total.as_secs_f64().ceil() as u64;
        let output = if !enabled {
            Output::Hidden
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total_seconds);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {pos}/{len}s {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            Output::Bar(bar)
        } else {
            Output::Lines { total_seconds }
        };
        Progress { output }
    }

    /// Shows one finished second.
    pub fn second(&self, stats: &SecondStats, counts: Option<ServiceCounts>) {
        let line = || describe(stats, counts);
        match &self.output {
            Output::Hidden => {}
            Output::Bar(bar) => {
                bar.set_position(stats.second + 1);
                bar.set_message(line());
            }
            Output::Lines { total_seconds } => {
                eprintln!("[{:>4}/{total_seconds}s] {}", stats.second + 1, line());
            }
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Output::Bar(bar) = &self.output {
            bar.finish_and_clear();
        }
    }
}

/// `offered 100/s  achieved 99/s  p50 1.2ms  p99 4.5ms  errors 0  tasks 3 desired 4`
fn describe(stats: &SecondStats, counts: Option<ServiceCounts>) -> String {
    let ms = |micros: u64| format_ms(micros as f64 / 1e3);
    let mut line = format!(
        "offered {}/s  achieved {}/s",
        stats.intended, stats.completed
    );
    if !stats.latency.is_empty() {
        line.push_str(&format!(
            "  p50 {}  p99 {}",
            ms(stats.latency.value_at_quantile(0.5)),
            ms(stats.latency.value_at_quantile(0.99))
        ));
    }
    line.push_str(&format!("  errors {}", stats.failed));
    if let Some(counts) = counts {
        line.push_str(&format!(
            "  tasks {} healthy / {} running / {} desired",
            counts.healthy_count, counts.running_count, counts.desired_count
        ));
    }
    line
}

/// Milliseconds with precision that suits their size: `0.42ms`, `12.3ms`, `1520ms`.
pub fn format_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2}ms")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}
