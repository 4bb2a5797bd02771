//! The renderer against hand-built reports: with and without task data, elasticity and
//! thresholds, and a run that measured nothing.

use std::path::PathBuf;

use super::fixture::{
    empty_run, plain_run, step_run, HOSTILE_CAUSE, LATENCY_SERIES, LOAD_SERIES, REPORT_IDS,
    STEP_RUN_EVENTS,
};
use super::*;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Writes the report files into a fresh directory and reads them back by name.
struct Written {
    _dir: tempfile::TempDir,
    paths: Vec<PathBuf>,
}

impl Written {
    fn report(report: &RunReport) -> Written {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = write_report_files(report, &dir.path().join("out")).expect("rendered");
        Written { _dir: dir, paths }
    }

    fn bytes(&self, name: &str) -> Vec<u8> {
        let path = self
            .paths
            .iter()
            .find(|path| path.file_name().is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("{name} not written"));
        std::fs::read(path).expect("readable")
    }

    fn text(&self, name: &str) -> String {
        String::from_utf8(self.bytes(name)).expect("UTF-8")
    }
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_step_run_produces_charts_with_every_series_and_marker() {
    let written = Written::report(&step_run());
    assert_eq!(
        names(&written.paths),
        [
            "load.svg",
            "load.png",
            "latency.svg",
            "latency.png",
            "report.html"
        ]
    );
    for png in ["load.png", "latency.png"] {
        let bytes = written.bytes(png);
        assert!(bytes.starts_with(PNG_SIGNATURE), "{png} is a PNG");
        assert!(
            bytes.len() > 10_000,
            "{png} has content: {} bytes",
            bytes.len()
        );
    }

    for (name, id, classes) in [
        ("load.svg", "chart-load", &LOAD_SERIES[..]),
        ("latency.svg", "chart-latency", &LATENCY_SERIES[..]),
    ] {
        let svg = written.text(name);
        assert!(svg.starts_with(&format!("<svg id=\"{id}\"")), "{name}");
        let markers = svg.matches("class=\"scaling-event\"").count();
        assert_eq!(markers, STEP_RUN_EVENTS, "{name}");
        for class in classes {
            assert!(
                svg.contains(&format!("class=\"{class}\"")),
                "{name}: {class}"
            );
        }
    }
    assert!(written
        .text("load.svg")
        .contains("tasks (1 task = 50 req/s)"));
}

#[test]
fn the_html_report_is_self_contained_and_escaped() {
    let written = Written::report(&step_run());
    let html = written.text("report.html");
    for id in REPORT_IDS.iter().chain(&["verdict"]) {
        assert_eq!(html.matches(&format!("id=\"{id}\"")).count(), 1, "{id}");
    }
    assert!(html.contains("FAIL: 1 of 2 thresholds not met"));
    for external in ["<script", "<link", "src=", "url(", "@import"] {
        assert!(
            !html.contains(external),
            "no external resources: {external}"
        );
    }
    assert!(html.contains("alarm &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;cpu&quot;"));
    assert!(!html.contains(HOSTILE_CAUSE));
    assert!(html.contains("search?q=&lt;b&gt;&amp;page=&quot;1&quot;"));
    assert!(html.contains("θ_U"));
    assert!(
        html.contains("<td class=\"num\">14.0 s</td>"),
        "recovery time"
    );
}

#[test]
fn a_plain_load_test_renders_without_task_data() {
    let written = Written::report(&plain_run());
    let load = written.text("load.svg");
    assert!(load.contains("class=\"series-offered\""));
    assert!(load.contains("class=\"series-achieved\""));
    assert!(load.contains("class=\"series-errors\""));
    for absent in [
        "series-healthy",
        "series-demand",
        "scaling-event",
        "tasks (",
    ] {
        assert!(!load.contains(absent), "{absent}");
    }
    assert!(!written.text("latency.svg").contains("series-slo"));
    let html = written.text("report.html");
    assert!(html.contains("No thresholds were set."));
    assert!(html.contains("Not measured"));
    assert!(html.contains("No service was watched"));
    assert!(!html.contains("id=\"verdict\""));
}

#[test]
fn a_run_that_measured_nothing_still_renders() {
    let written = Written::report(&empty_run());
    assert!(written.bytes("load.png").starts_with(PNG_SIGNATURE));
    assert!(written.text("latency.svg").contains("</svg>"));
    let html = written.text("report.html");
    assert!(html.contains("No responses."));
    assert!(!html.contains("Late / unsent"), "closed model");
}

#[test]
fn the_summary_reads_like_a_load_tester_summary() {
    let summary = summary_text(&step_run());
    for expected in [
        "Load test of web (http://127.0.0.1:8080/search?q=<b>&page=\"1\")",
        "open model, http1, 2 thread(s), up to 256 in flight",
        "intended",
        "unsent",
        "! The generator could not keep to the schedule",
        "from intended send time",
        "service time",
        "Status codes",
        "timeout",
        "✗ p99<50ms",
        "observed 610.00 ms",
        "✓ errors<1%",
        "FAIL: 1 of 2 thresholds not met",
        "θ_U under-provisioning accuracy",
        "demand rose at 20 s (1 → 4 tasks): adequate after 14.0 s",
        "Scaling activity: 2 event(s) for web",
    ] {
        assert!(
            summary.contains(expected),
            "missing {expected:?} in\n{summary}"
        );
    }
    // Latency columns line up under their headers.
    let lines: Vec<&str> = summary.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("Latency (ms)"))
        .unwrap();
    let end_of = |line: &str, word: &str| line.find(word).unwrap() + word.len();
    assert_eq!(
        end_of(lines[header], "p50"),
        end_of(lines[header + 1], "2.10")
    );
    assert_eq!(
        end_of(lines[header], "mean"),
        end_of(lines[header + 2], "6.20")
    );
}

#[test]
fn the_summary_leaves_out_what_was_not_measured() {
    let plain = summary_text(&plain_run());
    for absent in ["Thresholds", "Elasticity", "Scaling activity"] {
        assert!(!plain.contains(absent), "{absent} in\n{plain}");
    }
    let empty = summary_text(&empty_run());
    assert!(empty.contains("closed model, h2c, 1 thread(s), 4 connections"));
    assert!(empty.contains("(no responses)"));
    for absent in ["\n  intended ", "\n  unsent ", "offered rate"] {
        assert!(!empty.contains(absent), "{absent} in\n{empty}");
    }
}

#[test]
fn the_comparison_has_one_row_and_panel_per_profile() {
    let runs = vec![
        ("fast".to_string(), step_run()),
        ("aws | default".to_string(), plain_run()),
    ];
    let table = comparison_table_markdown(&runs);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("| profile | θ_U (tasks) |"));
    assert!(lines[1].starts_with("|---|---:|"));
    assert!(lines[2].starts_with("| fast | "));
    assert!(
        lines[2].contains("| 14.0 s |"),
        "slowest recovery: {}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("| aws \\| default | – |"),
        "{}",
        lines[3]
    );
    let columns = |line: &str| line.replace("\\|", "").matches('|').count();
    assert!(lines.iter().all(|line| columns(line) == columns(lines[0])));

    let dir = tempfile::tempdir().unwrap();
    let paths = write_comparison_files(&runs, dir.path()).unwrap();
    assert_eq!(
        names(&paths),
        ["comparison.svg", "comparison.png", "comparison.html"]
    );
    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    assert_eq!(svg.matches("class=\"scaling-event\"").count(), 2);
    assert!(svg.contains("fast: θ_U"));
    let html = std::fs::read_to_string(&paths[2]).unwrap();
    assert!(html.contains("id=\"chart-comparison\""));
    assert!(html.contains("id=\"comparison\""));
    assert!(html.contains("aws | default"));

    assert!(matches!(
        write_comparison_files(&[], dir.path()),
        Err(RenderError::NoRuns)
    ));
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let error = write_report_files(&step_run(), &file).unwrap_err();
    assert!(
        matches!(&error, RenderError::Write { path, .. } if path == &file),
        "{error}"
    );
}
