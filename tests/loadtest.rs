//! `scalegate loadtest`, black box: the real binary against loopback servers (the test
//! harness's backend, and scalegate itself running an autoscaled service). Exit codes of
//! thresholds, the JSON report against its committed schema (checked by Python's
//! `jsonschema`), trace replay of the World Cup 1998 trace and its bad-row errors, following a
//! scaling service into a timeline with elasticity metrics, and a scenario comparing profiles.
//! Every run is bounded by its schedule; every wait is a poll with a deadline.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{binary, gateway_config, workload_definition, workload_service, Backend, Scalegate};
use serde_json::Value;

/// Runs `scalegate loadtest ARGS` to completion (every schedule here is a few seconds).
fn loadtest(args: &[&str]) -> Output {
    Command::new(binary())
        .arg("loadtest")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("scalegate loadtest runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn workspace_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The JSON on stdout of a `--json` run.
fn json_report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not a JSON report ({error}):\n{}\nstderr:\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

#[test]
fn thresholds_decide_the_exit_code_as_in_k6() {
    let backend = Backend::start("b");
    let url = format!("http://{}/", backend.target());
    let base = ["-r", "50", "-z", "1s", "--no-progress"];

    let passing = loadtest(
        &[
            &[url.as_str()][..],
            &base,
            &["--threshold", "p99<5s", "--threshold", "errors<1%"],
        ]
        .concat(),
    );
    assert_eq!(passing.status.code(), Some(0), "{}", text(&passing.stderr));
    let summary = text(&passing.stdout);
    assert!(summary.contains("p99<5s"), "{summary}");

    let failing = loadtest(&[&[url.as_str()][..], &base, &["--threshold", "p99<1us"]].concat());
    assert_eq!(failing.status.code(), Some(99), "{}", text(&failing.stderr));
    assert!(text(&failing.stdout).contains("p99<1us"));

    let malformed = loadtest(&[&[url.as_str()][..], &base, &["--threshold", "p99<fast"]].concat());
    assert_eq!(malformed.status.code(), Some(2));
    assert!(
        text(&malformed.stderr).contains("threshold `p99<fast`"),
        "{}",
        text(&malformed.stderr)
    );
}

#[test]
fn the_json_report_matches_its_committed_schema() {
    let backend = Backend::start("b");
    let url = format!("http://{}/", backend.target());
    let output = loadtest(&[
        &url,
        "-r",
        "40",
        "-z",
        "2s",
        "--json",
        "--no-progress",
        "--threshold",
        "p99<5s",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json_report(&output);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["intended_requests"], 80);
    assert_eq!(report["completed_requests"], 80);
    assert_eq!(report["failed_requests"], 0);
    assert_eq!(report["status_counts"]["200"], 80);
    assert_eq!(report["setup"]["model"], "open");
    assert_eq!(report["thresholds"][0]["passed"], true);
    let timeline = report["timeline"].as_array().expect("timeline");
    assert!(timeline.len() >= 2, "{timeline:?}");
    assert_eq!(timeline[0]["offered"], 40);
    assert_eq!(
        backend.control.served(),
        80,
        "the server saw every request once"
    );

    // Validated by a third party: Python's jsonschema against the committed schema.
    let dir = tempfile::tempdir().unwrap();
    let report_file = dir.path().join("report.json");
    std::fs::write(&report_file, &output.stdout).unwrap();
    let validation = Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema; \
             jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
        ])
        .arg(&report_file)
        .arg(workspace_file("docs/loadtest-report.schema.json"))
        .output()
        .expect("python3 runs");
    assert!(
        validation.status.success(),
        "the report does not match docs/loadtest-report.schema.json (pip install jsonschema if \
         missing; scripts/test.sh does):\n{}",
        text(&validation.stderr)
    );
}

#[test]
fn the_world_cup_trace_replays_compressed_and_scaled() {
    let backend = Backend::start("b");
    let url = format!("http://{}/", backend.target());
    let trace = workspace_file("loadtest/traces/worldcup98/busy-day.csv");
    // 14:23–14:26 of the busiest day, one trace minute per second, at 1/2000 of the rate.
    let output = loadtest(&[
        &url,
        "--trace",
        trace.to_str().unwrap(),
        "--trace-start",
        "1998-06-30 14:23",
        "--trace-rows",
        "3",
        "--trace-bucket",
        "1s",
        "--trace-scale",
        "1/2000",
        "--json",
        "--no-progress",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json_report(&output);
    let rows: Vec<f64> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .skip_while(|line| !line.starts_with("1998-06-30 14:23"))
        .take(3)
        .map(|line| line.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let offered: Vec<u64> = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|point| point["offered"].as_u64().unwrap())
        .collect();
    for (second, (&count, &offered)) in rows.iter().zip(&offered).enumerate() {
        let expected = count / 2000.0;
        assert!(
            (offered as f64 - expected).abs() <= 1.0,
            "second {second}: offered {offered}, trace says {expected}"
        );
    }
    let total: f64 = rows.iter().sum::<f64>() / 2000.0;
    let intended = report["intended_requests"].as_f64().unwrap();
    assert!((intended - total).abs() <= 1.0, "{intended} vs {total}");
}

#[test]
fn a_bad_trace_row_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, "period,count\n08:00,600\n08:01,many\n").unwrap();
    let output = loadtest(&["http://127.0.0.1:9/", "--trace", trace.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("trace.csv: line 3: `many` in column `count`"),
        "{stderr}"
    );
    let wrong_column = loadtest(&[
        "http://127.0.0.1:9/",
        "--trace",
        trace.to_str().unwrap(),
        "--trace-count-column",
        "requests",
    ]);
    assert!(text(&wrong_column.stderr).contains("no column `requests`"));
}

#[test]
fn connection_failures_are_classified_not_fatal() {
    // A port nothing listens on: every request fails to connect, the run still reports.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let output = loadtest(&[&url, "-r", "20", "-z", "1s", "--json", "--no-progress"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json_report(&output);
    assert_eq!(report["errors"]["connect"], 20, "{report}");
    assert_eq!(report["failed_requests"], 20);
    let why = report["error_examples"]["connect"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("refused"), "the report says why: {why:?}");
}

/// scalegate with service `app`: workload tasks (2 ms of CPU each request) behind listener
/// `web`, scaled by requests per target (target 300/min = 5/s per task) on the fast profile
/// with short cooldowns, 1–4 tasks.
fn scaling_gateway() -> String {
    gateway_config(&format!(
        "{}{}",
        workload_definition(", --cpu-ms, \"2\""),
        workload_service(
            1,
            Some(
                r#"      min_capacity: 1
      max_capacity: 4
      fast:
        scale_out_cooldown_seconds: 2
      policies:
        - target_tracking:
            name: requests
            target_value: 300
            predefined_metric_specification:
              predefined_metric_type: ALBRequestCountPerTarget
"#
            )
        )
    ))
}

/// Polls the admin API (with curl, as a user would) until service `app` has one healthy task;
/// returns the admin base URL.
fn wait_for_one_healthy_task(gate: &Scalegate) -> String {
    let admin = format!("http://{}", gate.admin_address());
    let ready = common::poll_until(Duration::from_secs(30), || {
        let output = Command::new("curl")
            .args(["-s", &format!("{admin}/api/services/app")])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&output.stdout)
            .is_ok_and(|service| service["healthy_count"] == 1)
    });
    assert!(ready, "the service's first task became healthy within 30 s");
    admin
}

#[test]
fn following_a_scaling_service_yields_a_timeline_and_elasticity_metrics() {
    let gate = Scalegate::start(&scaling_gateway());
    let admin = wait_for_one_healthy_task(&gate);
    let url = gate.url("web");

    let dir = tempfile::tempdir().unwrap();
    let output_dir = dir.path().join("report");
    // 4 s at 4/s (one task's worth), then a step to 16/s (four tasks) for 12 s.
    let output = loadtest(&[
        &url,
        "--start-rate",
        "4",
        "--stages",
        "4s:4,0s:16,12s:16",
        "--admin",
        &admin,
        "--capacity-per-task",
        "5",
        "--slo-p99",
        "500ms",
        "--no-progress",
        "-o",
        output_dir.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let summary = text(&output.stdout);
    assert!(summary.contains("report.html"), "{summary}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(output_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["service"], "app");
    assert_eq!(
        report["failed_requests"], 0,
        "no request failed while scaling out"
    );
    let timeline = report["timeline"].as_array().unwrap();
    assert!(timeline.len() >= 16);
    assert_eq!(timeline[1]["demand_tasks"], 1);
    assert_eq!(timeline[6]["demand_tasks"], 4);
    let healthy: Vec<u64> = timeline
        .iter()
        .filter_map(|point| point["healthy_tasks"].as_u64())
        .collect();
    assert!(
        healthy.len() >= 14,
        "task counts were sampled every second: {healthy:?}"
    );
    assert!(
        healthy.iter().max() > Some(&1),
        "the service scaled out during the run: {healthy:?}"
    );
    let events = report["scaling_events"].as_array().unwrap();
    assert!(
        events.iter().any(|event| event["description"]
            .as_str()
            .unwrap()
            .starts_with("Setting desired count to")),
        "{events:?}"
    );
    let elasticity = &report["elasticity"];
    assert_eq!(elasticity["capacity_per_task"], 5.0);
    assert_eq!(elasticity["capacity_source"], "given");
    let metrics = &elasticity["metrics"];
    assert!(metrics["under_provisioning_timeshare"].as_f64().unwrap() > 0.0);
    assert!(metrics["task_seconds"].as_f64().unwrap() >= 16.0);
    let recoveries = elasticity["recoveries"].as_array().unwrap();
    assert_eq!(recoveries[0]["at_second"], 4, "{recoveries:?}");
    for file in [
        "report.html",
        "load.svg",
        "load.png",
        "latency.svg",
        "latency.png",
    ] {
        let path = output_dir.join(file);
        assert!(
            std::fs::metadata(&path).is_ok_and(|meta| meta.len() > 0),
            "{} written",
            path.display()
        );
    }
}

#[test]
fn a_scenario_compares_the_profiles_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    // Fixed loopback ports are unavoidable here (each profile runs a fresh scalegate from the
    // same file); take free ones now.
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let config = scaling_gateway()
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{}", free_port()), 1)
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{}", free_port()), 1)
        .replacen("127.0.0.1:0", &format!("127.0.0.1:{}", free_port()), 1);
    std::fs::write(dir.path().join("scalegate.yaml"), config).unwrap();
    std::fs::write(
        dir.path().join("step.yaml"),
        r#"config: scalegate.yaml
profiles: [fast, aws]
loadtest: [--start-rate, "4", --stages, "3s:4,0s:16,8s:16", --capacity-per-task, "5"]
"#,
    )
    .unwrap();
    let output = Command::new(binary())
        .args(["loadtest", "--no-progress", "--scenario"])
        .arg(dir.path().join("step.yaml"))
        .stdin(Stdio::null())
        .output()
        .expect("scenario runs");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let results = dir.path().join("step-results");
    let table = std::fs::read_to_string(results.join("comparison.md")).unwrap();
    assert!(table.contains("fast") && table.contains("aws"), "{table}");
    let report = |profile: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(results.join(profile).join("report.json")).unwrap(),
        )
        .unwrap()
    };
    let (fast, aws) = (report("fast"), report("aws"));
    // Within 11 s the fast profile scales out; AWS's timing (3 one-minute datapoints) cannot.
    assert!(
        !fast["scaling_events"].as_array().unwrap().is_empty(),
        "{}",
        fast["scaling_events"]
    );
    assert!(
        aws["scaling_events"].as_array().unwrap().is_empty(),
        "{}",
        aws["scaling_events"]
    );
    for file in ["comparison.svg", "comparison.png", "comparison.html"] {
        assert!(results.join(file).exists(), "{file} written");
    }
    let scalegate_log = std::fs::read_to_string(results.join("aws").join("scalegate.log")).unwrap();
    assert!(!scalegate_log.is_empty());
}

#[test]
fn the_capacity_probe_finds_what_one_task_serves() {
    // One task that serves at most 50 req/s: 20 ms of CPU per request on one CPU worker.
    let gate = Scalegate::start(&gateway_config(&format!(
        "{}{}",
        workload_definition(", --cpu-ms, \"20\", --cpu-workers, \"1\""),
        workload_service(1, None)
    )));
    let admin = wait_for_one_healthy_task(&gate);

    let output = loadtest(&[
        &gate.url("web"),
        "-r",
        "5",
        "-z",
        "2s",
        "--admin",
        &admin,
        "--probe-capacity",
        "--slo-p99",
        "60ms",
        "--json",
        "--no-progress",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("probing the capacity of task"), "{stderr}");
    let report = json_report(&output);
    let elasticity = &report["elasticity"];
    assert_eq!(elasticity["capacity_source"], "probe", "{report}");
    // The probe's steps are 5 × 1.5^k req/s; the last one under 50 req/s that kept p99 under
    // 60 ms is at least 16.9 (well under capacity) and below the task's 50.
    let capacity = elasticity["capacity_per_task"].as_f64().unwrap();
    assert!(
        (16.0..50.0).contains(&capacity),
        "probed capacity {capacity} req/s; the task serves at most 50"
    );
}

#[test]
fn a_bad_scenario_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scalegate.yaml"), scaling_gateway()).unwrap();
    let scenario = |name: &str, text: &str| -> Output {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        Command::new(binary())
            .args(["loadtest", "--no-progress", "--scenario"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("scenario runs")
    };

    let typo = scenario("typo.yaml", "config: scalegate.yaml\nprofile: [fast]\n");
    assert_eq!(typo.status.code(), Some(2));
    let stderr = text(&typo.stderr);
    assert!(stderr.contains("typo.yaml:2"), "file and line: {stderr}");
    assert!(stderr.contains("profile"), "{stderr}");

    let bad_load = scenario(
        "bad-load.yaml",
        "config: scalegate.yaml\nloadtest: [--stages, \"30s\"]\n",
    );
    assert_eq!(bad_load.status.code(), Some(2));
    assert!(text(&bad_load.stderr).contains("DURATION:RATE"));
    assert!(
        !dir.path().join("bad-load-results").exists(),
        "nothing ran for a bad scenario"
    );
}
