//! The command line: version, help, check (valid and invalid files), schema.

mod common;

use std::process::{Command, Output};

use common::binary;

fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("scalegate runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_and_help() {
    let output = run(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout).trim(),
        format!("scalegate {}", env!("CARGO_PKG_VERSION"))
    );

    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    for command in ["run", "check", "schema"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "--help does not list {command}:\n{help}"
        );
    }
}

#[test]
fn check_accepts_the_bundled_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/scalegate.yaml");
    let output = run(&["check", "-c", example]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("valid"));
}

#[test]
fn check_reports_every_error_with_position_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"admin:
  address: 127.0.0.1:0
listeners:
  - name: web
    address: 127.0.0.1:0
    rules:
      - priority: 0
        conditions:
          - path_pattern: ["/a"]
        action:
          forward:
            target_group: nope
    default_action:
      fixed_response:
        status_code: 99
target_groups:
  - name: -bad-
    targets: ["127.0.0.1:1"]
"#,
    )
    .unwrap();
    let output = run(&["check", "-c", path.to_str().unwrap()]);
    assert!(!output.status.success(), "an invalid file must fail");
    let errors = text(&output.stderr);
    let file = path.display().to_string();
    for (line, field) in [
        (7, "listeners[0].rules[0].priority"),
        (12, "listeners[0].rules[0].action.forward.target_group"),
        (15, "listeners[0].default_action.fixed_response.status_code"),
        (17, "target_groups[0].name"),
    ] {
        let prefix = format!("{file}:{line}:");
        assert!(
            errors.lines().any(|l| {
                l.starts_with(&prefix)
                    && l[prefix.len()..]
                        .split(':')
                        .next()
                        .is_some_and(|column| column.parse::<u32>().is_ok())
                    && l.contains(field)
            }),
            "no `{file}:{line}:<column>: {field}` in:\n{errors}"
        );
    }
}

#[test]
fn check_rejects_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.yaml");
    std::fs::write(&path, "admin:\n  adress: 127.0.0.1:0\n").unwrap();
    let output = run(&["check", "-c", path.to_str().unwrap()]);
    assert!(!output.status.success());
    let errors = text(&output.stderr);
    assert!(
        errors.contains(&format!("{}:2:", path.display())),
        "{errors}"
    );
    assert!(errors.contains("adress"), "{errors}");
}

#[test]
fn schema_is_json() {
    let output = run(&["schema"]);
    assert!(output.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert!(schema.is_object());
    let properties = &schema["properties"];
    for key in ["listeners", "target_groups", "admin", "load_balancer"] {
        assert!(properties.get(key).is_some(), "schema lacks {key}");
    }
}

#[test]
fn run_with_an_invalid_file_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "listeners: 3\n").unwrap();
    let output = run(&["run", "-c", path.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("invalid config"),
        "{}",
        text(&output.stderr)
    );
    // Human logs to a pipe or a file carry no terminal colour codes.
    assert!(
        !output.stderr.contains(&0x1b),
        "ANSI escapes in piped logs: {:?}",
        text(&output.stderr)
    );
}

#[test]
fn check_explains_each_service() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.yaml");
    std::fs::write(
        &path,
        "admin:\n  address: 127.0.0.1:0\ntask_definitions:\n  - family: web\n    command: sleep\n    args: [\"60\"]\nservices:\n  - name: web\n    task_definition: web\n    desired_count: 2\n",
    )
    .unwrap();
    let output = run(&["check", "-c", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let explanation = text(&output.stdout);
    assert!(
        explanation
            .lines()
            .any(|line| line == "service web: task definition web, desired count 2, no scaling"),
        "{explanation}"
    );
}
