//! The access log (spec §5.3): one line per request with ALB's fields in ALB's order, as
//! space-delimited text or as JSON objects, checked against what the client and the target saw.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// ALB's access-log fields, in ALB's order (the 2023 list in §5.3).
const FIELDS: [&str; 29] = [
    "type",
    "time",
    "elb",
    "client:port",
    "target:port",
    "request_processing_time",
    "target_processing_time",
    "response_processing_time",
    "elb_status_code",
    "target_status_code",
    "received_bytes",
    "sent_bytes",
    "request",
    "user_agent",
    "ssl_cipher",
    "ssl_protocol",
    "target_group_arn",
    "trace_id",
    "domain_name",
    "chosen_cert_arn",
    "matched_rule_priority",
    "request_creation_time",
    "actions_executed",
    "redirect_url",
    "error_reason",
    "target:port_list",
    "target_status_code_list",
    "classification",
    "classification_reason",
];

const USER_AGENT: &str = "scalegate-test/1.0 (access log)";

fn config(app: &Backend, dead: SocketAddr, log: &Path, format: &str) -> String {
    format!(
        r#"{ADMIN}load_balancer:
  name: test-lb
access_log:
  enabled: true
  path: {log}
  format: {format}
listeners:
  - name: web
    address: 127.0.0.1:0
    rules:
      - priority: 3
        conditions:
          - path_pattern: ["/fixed"]
        action:
          fixed_response:
            status_code: 200
            content_type: text/plain
            message_body: "fixed"
      - priority: 7
        conditions:
          - path_pattern: ["/moved"]
        action:
          redirect:
            path: "/new/#{{path}}"
            status_code: HTTP_301
      - priority: 9
        conditions:
          - path_pattern: ["/dead"]
        action:
          forward:
            target_group: dead
    default_action:
      forward:
        target_group: app
target_groups:
  - name: app
    targets: ["{app}"]
  - name: dead
    targets: ["{dead}"]
"#,
        app = app.target(),
        log = log.display(),
    )
}

/// Splits an ALB text line into its fields: space-delimited, quoted fields may hold spaces
/// and backslash escapes (`\"`, `\\`), which are undone.
fn split_text_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    while chars.peek().is_some() {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => field.extend(chars.next()),
                    Some('"') | None => break,
                    Some(c) => field.push(c),
                }
            }
            assert!(
                matches!(chars.next(), Some(' ') | None),
                "a quoted field must be followed by a space: {line}"
            );
        } else {
            for c in chars.by_ref() {
                if c == ' ' {
                    break;
                }
                field.push(c);
            }
        }
        fields.push(field);
    }
    fields
}

/// One logged request, field name → value as text (`-` for a missing value in both formats).
type Entry = BTreeMap<&'static str, String>;

fn parse_text(line: &str) -> Entry {
    let values = split_text_line(line);
    assert_eq!(
        values.len(),
        FIELDS.len(),
        "ALB's {} fields expected: {line}",
        FIELDS.len()
    );
    FIELDS.into_iter().zip(values).collect()
}

fn parse_json(line: &str) -> Entry {
    let object: serde_json::Map<String, Value> =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
    let names: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "ALB's field names: {line}");
    // And in ALB's order in the line itself.
    let positions: Vec<usize> = FIELDS
        .iter()
        .map(|name| line.find(&format!("\"{name}\":")).expect("field present"))
        .collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "fields out of ALB's order: {line}"
    );
    FIELDS
        .into_iter()
        .map(|name| {
            let value = match &object[name] {
                Value::Null => "-".to_string(),
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                other => panic!("{name} is {other}: {line}"),
            };
            (name, value)
        })
        .collect()
}

/// Polls the log file until it holds `count` complete lines; returns them.
fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let complete = poll_until(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        lines = text.lines().map(str::to_string).collect();
        text.ends_with('\n') && lines.len() >= count
    });
    assert!(
        complete,
        "expected {count} access-log lines, got {lines:#?}"
    );
    assert_eq!(lines.len(), count, "one line per request: {lines:#?}");
    lines
}

/// `Root=1-<8 hex>-<24 hex>`.
fn is_root_trace_id(value: &str) -> bool {
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    match value
        .strip_prefix("Root=1-")
        .and_then(|rest| rest.split_once('-'))
    {
        Some((time, id)) => hex(time, 8) && hex(id, 24),
        None => false,
    }
}

/// The three processing times.
fn processing_times(entry: &Entry) -> [f64; 3] {
    [
        "request_processing_time",
        "target_processing_time",
        "response_processing_time",
    ]
    .map(|name| seconds(entry, name))
}

fn seconds(entry: &Entry, name: &str) -> f64 {
    entry[name]
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {entry:#?}"))
}

/// Sends a forwarded request, a fixed response, a redirect and a request to a dead target,
/// then checks the four lines (parsed by `parse`) against what the client and target saw.
async fn check_access_log(format: &str, parse: fn(&str) -> Entry) {
    let app = Backend::start("app");
    let dead = refused_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gate = Scalegate::start_in(dir, &config(&app, dead, &log, format));
    let listener = gate.listener_address("web");
    let port = listener.port();
    let base = gate.url("web");
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();

    let forwarded = echo(http.get(format!("{base}/app/item?q=1&r=two"))).await;
    assert_eq!(forwarded.status, 200);
    let trace_id = forwarded.header("x-amzn-trace-id").expect("trace id sent");
    let fixed = http.get(format!("{base}/fixed")).send().await.unwrap();
    assert_eq!(fixed.status(), 200);
    let moved = http.get(format!("{base}/moved?x=2")).send().await.unwrap();
    assert_eq!(moved.status(), 301);
    let location = moved.headers()["location"].to_str().unwrap().to_string();
    let failed = http.get(format!("{base}/dead")).send().await.unwrap();
    assert_eq!(failed.status(), 502);

    let entries: Vec<Entry> = wait_for_lines(&log, 4).iter().map(|l| parse(l)).collect();
    // Lines are written as bodies end; find each by its request rather than by position.
    let find = |path: &str| {
        let request = format!("GET http://127.0.0.1:{port}{path} HTTP/1.1");
        entries
            .iter()
            .find(|entry| entry["request"] == request)
            .unwrap_or_else(|| panic!("no line with request {request:?}: {entries:#?}"))
            .clone()
    };

    for entry in &entries {
        assert_eq!(entry["type"], "http", "{entry:#?}");
        assert_eq!(entry["elb"], "test-lb", "{entry:#?}");
        let client: SocketAddr = entry["client:port"].parse().expect("client ip:port");
        assert_eq!(client.ip().to_string(), "127.0.0.1", "{entry:#?}");
        assert_ne!(client.port(), 0, "{entry:#?}");
        assert_eq!(entry["user_agent"], USER_AGENT, "{entry:#?}");
        assert!(entry["time"].ends_with('Z'), "{entry:#?}");
        assert!(entry["request_creation_time"].ends_with('Z'), "{entry:#?}");
        assert_eq!(entry["ssl_cipher"], "-", "{entry:#?}");
        assert_eq!(entry["ssl_protocol"], "-", "{entry:#?}");
        assert_eq!(entry["domain_name"], "-", "{entry:#?}");
        assert_eq!(entry["classification"], "-", "{entry:#?}");
    }

    let entry = find("/app/item?q=1&r=two");
    assert_eq!(entry["target:port"], app.target(), "{entry:#?}");
    assert_eq!(entry["elb_status_code"], "200", "{entry:#?}");
    assert_eq!(entry["target_status_code"], "200", "{entry:#?}");
    assert_eq!(entry["target_group_arn"], "app", "{entry:#?}");
    assert!(is_root_trace_id(&entry["trace_id"]), "{entry:#?}");
    assert_eq!(entry["trace_id"], trace_id, "the trace id the target saw");
    assert_eq!(
        entry["matched_rule_priority"], "0",
        "default rule: {entry:#?}"
    );
    assert_eq!(entry["actions_executed"], "forward", "{entry:#?}");
    assert_eq!(entry["redirect_url"], "-", "{entry:#?}");
    assert_eq!(entry["error_reason"], "-", "{entry:#?}");
    assert_eq!(entry["target:port_list"], app.target(), "{entry:#?}");
    assert_eq!(entry["target_status_code_list"], "200", "{entry:#?}");
    assert!(
        processing_times(&entry).iter().all(|&time| time >= 0.0),
        "{entry:#?}"
    );
    assert!(seconds(&entry, "received_bytes") > 0.0, "{entry:#?}");
    assert!(seconds(&entry, "sent_bytes") > 0.0, "{entry:#?}");

    let entry = find("/fixed");
    assert_eq!(entry["target:port"], "-", "{entry:#?}");
    assert_eq!(entry["elb_status_code"], "200", "{entry:#?}");
    assert_eq!(entry["target_status_code"], "-", "{entry:#?}");
    assert_eq!(entry["target_group_arn"], "-", "{entry:#?}");
    assert_eq!(entry["matched_rule_priority"], "3", "{entry:#?}");
    assert_eq!(entry["actions_executed"], "fixed-response", "{entry:#?}");
    assert_eq!(entry["redirect_url"], "-", "{entry:#?}");

    let entry = find("/moved?x=2");
    assert_eq!(entry["target:port"], "-", "{entry:#?}");
    assert_eq!(entry["elb_status_code"], "301", "{entry:#?}");
    assert_eq!(entry["target_status_code"], "-", "{entry:#?}");
    assert_eq!(entry["target_group_arn"], "-", "{entry:#?}");
    assert_eq!(entry["matched_rule_priority"], "7", "{entry:#?}");
    assert_eq!(entry["actions_executed"], "redirect", "{entry:#?}");
    assert_eq!(entry["redirect_url"], location, "the Location sent");
    assert!(location.contains("/new/moved"), "{location}");

    // A dead target: dispatched but never answered, so ALB's -1 times and an error reason.
    let entry = find("/dead");
    assert_eq!(entry["elb_status_code"], "502", "{entry:#?}");
    assert_eq!(entry["target_status_code"], "-", "{entry:#?}");
    assert_eq!(entry["target_group_arn"], "dead", "{entry:#?}");
    assert_eq!(entry["matched_rule_priority"], "9", "{entry:#?}");
    assert_eq!(entry["actions_executed"], "forward", "{entry:#?}");
    assert_eq!(processing_times(&entry), [-1.0; 3], "{entry:#?}");
    assert_eq!(entry["error_reason"], "TargetConnectionError", "{entry:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_access_log_has_albs_fields_in_albs_order() {
    check_access_log("text", parse_text).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_has_albs_field_names_in_albs_order() {
    check_access_log("json", parse_json).await;
}

#[test]
fn text_line_splitting_respects_quotes_and_escapes() {
    assert_eq!(
        split_text_line(r#"http - "GET / HTTP/1.1" "a \"b\" \\c" 0"#),
        ["http", "-", "GET / HTTP/1.1", r#"a "b" \c"#, "0"]
    );
}
