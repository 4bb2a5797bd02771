//! One test per rule: a valid file passes, and each bad value yields an error whose path,
//! position and reason are right.

use std::path::Path;

use crate::certificate::tests::write_test_certificate;
use crate::{ConfigError, ConfigErrors};

fn parse(text: &str) -> Result<crate::Config, ConfigErrors> {
    crate::parse(text, Path::new("test.yaml"), Path::new("."))
}

fn errors(text: &str) -> Vec<ConfigError> {
    parse(text).expect_err("the file should be rejected").0
}

/// Asserts `text` is rejected with an error at `path` whose reason contains `reason`, placed
/// on a real line; returns that error for position checks.
#[track_caller]
fn assert_error(text: &str, path: &str, reason: &str) -> ConfigError {
    let all = errors(text);
    let found = all
        .iter()
        .find(|error| error.path == path && error.reason.contains(reason));
    let error = found.unwrap_or_else(|| {
        panic!(
            "no error at `{path}` containing `{reason}`; got:\n{}",
            ConfigErrors(all.clone())
        )
    });
    assert!(error.line > 0 && error.column > 0, "no position: {error}");
    error.clone()
}

/// A valid file with one HTTP listener; `rules` and `action` are spliced in as YAML.
fn listener_with(rules: &str, default_action: &str) -> String {
    format!(
        "listeners:
  - name: web
    address: 127.0.0.1:8080
    rules:
{rules}
    default_action:
{default_action}
target_groups:
  - name: app
    targets: [127.0.0.1:8081]
  - name: api
    targets: [127.0.0.1:8082]
"
    )
}

const FORWARD_APP: &str = "      forward:\n        target_group: app";

/// A rule's action: [`FORWARD_APP`] nested under `action:` (indented 8).
const RULE_FORWARD_APP: &str = "        action: {forward: {target_group: app}}";

/// A file whose one rule has `conditions` (YAML list items, indented 10).
fn rule_with_conditions(conditions: &str) -> String {
    listener_with(
        &format!("      - priority: 1\n        conditions:\n{conditions}\n{RULE_FORWARD_APP}"),
        FORWARD_APP,
    )
}

/// A file whose default action is `action` (YAML indented 6).
fn default_action(action: &str) -> String {
    listener_with("      []", action).replace("    rules:\n      []\n", "")
}

#[test]
fn bundled_example_is_valid() {
    parse(crate::EXAMPLE).unwrap();
}

#[test]
fn the_test_templates_are_valid() {
    parse(&rule_with_conditions("          - path_pattern: [\"/a\"]")).unwrap();
    parse(&default_action(FORWARD_APP)).unwrap();
}

#[test]
fn unknown_field_points_at_the_key() {
    let error = assert_error(
        "admin:\n  adress: 1.2.3.4:5\n",
        "admin.adress",
        "unknown field `adress`",
    );
    assert_eq!((error.line, error.column), (2, 3));
}

#[test]
fn wrong_types_and_enum_values_name_the_field() {
    let error = assert_error(
        "load_balancer:\n  idle_timeout_seconds: soon\n",
        "load_balancer.idle_timeout_seconds",
        "expected a whole number",
    );
    assert_eq!((error.line, error.column), (2, 25));
    assert_error(
        "load_balancer:\n  xff_header_processing_mode: keep\n",
        "load_balancer.xff_header_processing_mode",
        "unknown variant `keep`",
    );
    assert_error(
        "admin:\n  address: localhost\n",
        "admin.address",
        "expected `ip:port`",
    );
    assert_error(
        &default_action("      frward: {}"),
        "listeners[0].default_action",
        "unknown variant `frward`",
    );
    assert_error(
        &default_action("      forward: {}\n      redirect: {}"),
        "listeners[0].default_action",
        "exactly one of `forward`",
    );
}

#[test]
fn target_shape_errors_are_readable() {
    let text = "target_groups:\n  - name: app\n    targets:\n      - [1, 2]\n";
    let error = assert_error(text, "target_groups[0].targets[0]", "a target is");
    assert_eq!(error.line, 4);
}

#[test]
fn empty_and_malformed_files() {
    assert_eq!(errors("\n").len(), 1);
    assert_error("a: 1\na: 2\n", "a", "duplicate key `a`");
    let error = &errors("listeners: [\n")[0];
    assert!(error.reason.starts_with("invalid YAML"), "{error}");
}

#[test]
fn load_balancer_ranges() {
    let text = "load_balancer:
  idle_timeout_seconds: 0
  client_keep_alive_seconds: 59
  header_read_timeout_seconds: 4001
  runtime:
    workers: 5000
";
    let error = assert_error(
        text,
        "load_balancer.idle_timeout_seconds",
        "must be 1–4000, not 0",
    );
    assert_eq!((error.line, error.column), (2, 25));
    assert_error(
        text,
        "load_balancer.client_keep_alive_seconds",
        "must be 60–604800, not 59",
    );
    assert_error(
        text,
        "load_balancer.header_read_timeout_seconds",
        "must be 1–4000",
    );
    assert_error(text, "load_balancer.runtime.workers", "1024");
    assert_eq!(errors(text).len(), 4, "every error is reported");
}

#[test]
fn listener_names_addresses_and_protocols() {
    let text = "listeners:
  - address: 127.0.0.1:80
    default_action: {fixed_response: {status_code: 200}}
  - name: http-80
    address: 0.0.0.0:80
    http2_prior_knowledge: true
    default_action: {fixed_response: {status_code: 200}}
  - protocol: HTTPS
    address: 127.0.0.1:9901
    http2_prior_knowledge: true
    default_action: {fixed_response: {status_code: 200}}
  - address: 127.0.0.1:0
    tls: {default_certificate: {certificate: a.pem, private_key: a.key}}
    default_action: {fixed_response: {status_code: 200}}
  - address: 127.0.0.1:0
    name: zero
    default_action: {fixed_response: {status_code: 200}}
";
    let error = assert_error(
        text,
        "listeners[1].name",
        "`http-80` is already used by listeners[0]",
    );
    assert_eq!(error.line, 4);
    assert_error(
        text,
        "listeners[1].address",
        "0.0.0.0:80 is already bound by listeners[0] (`http-80`)",
    );
    assert_error(
        text,
        "listeners[2].address",
        "already bound by the admin endpoint",
    );
    assert_error(text, "listeners[2].tls", "an HTTPS listener needs `tls`");
    assert_error(
        text,
        "listeners[2].http2_prior_knowledge",
        "only for HTTP listeners",
    );
    assert_error(text, "listeners[3].tls", "only for HTTPS listeners");
    assert!(
        !errors(text)
            .iter()
            .any(|error| error.path == "listeners[4].address"),
        "port 0 never conflicts"
    );
}

#[test]
fn listener_count_is_limited() {
    let listener =
        "  - address: 127.0.0.1:0\n    default_action: {fixed_response: {status_code: 200}}\n";
    let text = format!("listeners:\n{}", listener.repeat(51));
    assert_error(&text, "listeners", "51 listeners; at most 50");
}

#[test]
fn display_name_defaults_to_protocol_and_port() {
    let config = parse(&default_action(FORWARD_APP)).unwrap();
    assert_eq!(config.listeners[0].display_name(), "web");
    let mut listener = config.listeners[0].clone();
    listener.name = None;
    assert_eq!(listener.display_name(), "http-8080");
}

#[test]
fn certificates_are_loaded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_test_certificate(dir.path(), "good", &["example.com"]);
    let no_dns = write_test_certificate(dir.path(), "nodns", &[]);
    let text = "listeners:
  - protocol: HTTPS
    address: 127.0.0.1:0
    tls:
      default_certificate: {certificate: good.crt, private_key: good.key}
      certificates:
        - {certificate: nodns.crt, private_key: nodns.key}
        - {certificate: missing.crt, private_key: good.key}
        - {certificate: good.crt, private_key: good.crt}
    default_action: {fixed_response: {status_code: 200}}
"
    .to_string();
    let result = crate::parse(&text, Path::new("test.yaml"), dir.path());
    let all = result.unwrap_err().0;
    let find = |path: &str| {
        all.iter()
            .find(|error| error.path == path)
            .unwrap_or_else(|| panic!("{path}: {all:?}"))
    };
    assert!(find("listeners[0].tls.certificates[0].certificate")
        .reason
        .contains("no DNS name"));
    assert_eq!(find("listeners[0].tls.certificates[0].certificate").line, 7);
    assert!(find("listeners[0].tls.certificates[1].certificate")
        .reason
        .starts_with("cannot read"));
    assert!(find("listeners[0].tls.certificates[2].private_key")
        .reason
        .starts_with("no PEM private key"));
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(no_dns.certificate.exists() && good.private_key.exists());

    let many = "        - {certificate: good.crt, private_key: good.key}\n".repeat(26);
    let text = text.replace(
        "        - {certificate: nodns.crt, private_key: nodns.key}\n",
        &many,
    );
    let all = crate::parse(&text, Path::new("test.yaml"), dir.path())
        .unwrap_err()
        .0;
    assert!(all
        .iter()
        .any(|error| error.path == "listeners[0].tls.certificates"
            && error.reason.contains("at most 25")));
}

#[test]
fn rule_priorities() {
    let rules = format!(
        "      - priority: 0\n        conditions: [{{path_pattern: [/a]}}]\n{RULE_FORWARD_APP}
      - priority: 7\n        conditions: [{{path_pattern: [/b]}}]\n{RULE_FORWARD_APP}
      - priority: 7\n        conditions: [{{path_pattern: [/c]}}]\n{RULE_FORWARD_APP}
      - priority: 50001\n        conditions: []\n{RULE_FORWARD_APP}"
    );
    let text = listener_with(&rules, FORWARD_APP);
    assert_error(
        &text,
        "listeners[0].rules[0].priority",
        "must be 1–50000, not 0",
    );
    let error = assert_error(
        &text,
        "listeners[0].rules[2].priority",
        "already used by listeners[0].rules[1]",
    );
    assert_eq!(error.line, 11);
    assert_error(&text, "listeners[0].rules[3].priority", "not 50001");
    assert_error(
        &text,
        "listeners[0].rules[3].conditions",
        "at least one condition",
    );
}

#[test]
fn single_condition_kinds_and_quotas() {
    let text = rule_with_conditions(
        "          - host_header: [a.example.com]
          - host_header: [b.example.com]
          - source_ip: [10.0.0.0/8]
          - source_ip: [10.0.0.1]
          - http_request_method: [GET]
          - http_request_method: [PUT]
          - path_pattern: [/a]
          - path_pattern: [/b]",
    );
    let prefix = "listeners[0].rules[0].conditions";
    assert_error(
        &text,
        &format!("{prefix}[1].host_header"),
        "one host_header condition and listeners[0].rules[0].conditions[0]",
    );
    assert_error(&text, &format!("{prefix}[3].source_ip"), "one source_ip");
    assert_error(
        &text,
        &format!("{prefix}[5].http_request_method"),
        "one http_request_method",
    );
    assert_error(
        &text,
        &format!("{prefix}[7].path_pattern"),
        "one path_pattern",
    );
    assert_error(
        &text,
        prefix,
        "8 condition values in one rule; ALB allows 5",
    );
}

#[test]
fn condition_value_counts_include_header_values_and_pairs() {
    let text = rule_with_conditions(
        "          - http_header: {name: X-A, values: [a, b, c]}
          - query_string: [{key: k, value: v}, {value: w}]
          - http_header: {name: X-B, values: [d]}",
    );
    assert_error(
        &text,
        "listeners[0].rules[0].conditions",
        "6 condition values",
    );
    let text = rule_with_conditions("          - http_header: {name: X-A, values: [a, b, c]}\n          - query_string: [{value: v}, {value: w}]");
    parse(&text).unwrap();
}

#[test]
fn wildcards_are_limited_per_rule() {
    let text = rule_with_conditions(
        "          - path_pattern: [\"/*/*/*\"]\n          - host_header: [\"*.?.*\"]",
    );
    assert_error(&text, "listeners[0].rules[0].conditions", "6 wildcards");
    let escaped = rule_with_conditions("          - path_pattern: [\"/*/*/*\"]\n          - query_string: [{value: \"\\\\*\\\\?\"}]");
    parse(&escaped).unwrap();
}

#[test]
fn condition_value_syntax() {
    let long = "a".repeat(129);
    let text = rule_with_conditions(&format!(
        "          - host_header: [\"bad_host.com\", \"{long}\"]
          - path_pattern: [\"/a b\", \"\"]
          - http_header: {{name: Host, values: [\"{long}\"]}}
          - http_header: {{name: \"X(Y)\", values: []}}
          - http_request_method: [get]
          - query_string: [{{key: \"\", value: \"{long}\"}}]
          - source_ip: [\"10.0.0.0/33\", 255.255.255.255/32, \"not-an-ip\"]"
    ));
    let prefix = "listeners[0].rules[0].conditions";
    let error = assert_error(
        &text,
        &format!("{prefix}[0].host_header[0]"),
        "contains '_'",
    );
    assert_eq!((error.line, error.column), (7, 27));
    assert_error(
        &text,
        &format!("{prefix}[0].host_header[1]"),
        "is 129 characters long; at most 128",
    );
    assert_error(
        &text,
        &format!("{prefix}[1].path_pattern[0]"),
        "contains ' '",
    );
    assert_error(
        &text,
        &format!("{prefix}[1].path_pattern[1]"),
        "must not be empty",
    );
    assert_error(
        &text,
        &format!("{prefix}[2].http_header.name"),
        "use a host_header condition",
    );
    assert_error(
        &text,
        &format!("{prefix}[2].http_header.values[0]"),
        "129 characters",
    );
    assert_error(
        &text,
        &format!("{prefix}[3].http_header.name"),
        "contains '('",
    );
    assert_error(
        &text,
        &format!("{prefix}[3].http_header.values"),
        "at least one value",
    );
    assert_error(
        &text,
        &format!("{prefix}[4].http_request_method[0]"),
        "contains 'g'",
    );
    assert_error(
        &text,
        &format!("{prefix}[5].query_string[0].key"),
        "must not be empty",
    );
    assert_error(
        &text,
        &format!("{prefix}[5].query_string[0].value"),
        "129 characters",
    );
    assert_error(
        &text,
        &format!("{prefix}[6].source_ip[0]"),
        "not a CIDR block",
    );
    assert_error(&text, &format!("{prefix}[6].source_ip[1]"), "not allowed");
    assert_error(
        &text,
        &format!("{prefix}[6].source_ip[2]"),
        "not a CIDR block",
    );
}

#[test]
fn forward_references_and_weights() {
    let text = default_action(
        "      forward:
        target_group: nope
        target_groups:
          - {name: app, weight: 1000}
          - {name: app}
          - {name: ghost}
          - {name: api}
          - {name: api}
          - {name: api}
        stickiness: {enabled: true, duration_seconds: 0}",
    );
    let prefix = "listeners[0].default_action.forward";
    assert_error(&text, prefix, "not both");
    let error = assert_error(
        &text,
        &format!("{prefix}.target_group"),
        "no target group named `nope` (known: `app`, `api`)",
    );
    assert_eq!(error.line, 6);
    assert_error(
        &text,
        &format!("{prefix}.target_groups"),
        "6 target groups; at most 5",
    );
    assert_error(
        &text,
        &format!("{prefix}.target_groups[0].weight"),
        "must be 0–999, not 1000",
    );
    assert_error(
        &text,
        &format!("{prefix}.target_groups[1].name"),
        "already listed as",
    );
    assert_error(
        &text,
        &format!("{prefix}.target_groups[2].name"),
        "no target group named `ghost`",
    );
    assert_error(
        &text,
        &format!("{prefix}.stickiness.duration_seconds"),
        "must be 1–604800",
    );
    assert_error(
        &default_action("      forward: {}"),
        prefix,
        "forward needs",
    );
    let zero = default_action(
        "      forward:\n        target_groups: [{name: app, weight: 0}, {name: api, weight: 0}]",
    );
    assert_error(
        &zero,
        &format!("{prefix}.target_groups"),
        "every weight is 0",
    );
    parse(&default_action(
        "      forward:\n        target_groups: [{name: app, weight: 0}, {name: api}]",
    ))
    .unwrap();
}

#[test]
fn redirects() {
    let prefix = "listeners[0].default_action.redirect";
    let redirect = |fields: &str| {
        default_action(&format!(
            "      redirect: {{status_code: HTTP_301, {fields}}}"
        ))
    };
    assert_error(&redirect(""), prefix, "same URL");
    assert_error(
        &redirect("protocol: FTP"),
        &format!("{prefix}.protocol"),
        "`FTP` is not",
    );
    assert_error(
        &redirect("port: \"0\""),
        &format!("{prefix}.port"),
        "not a port",
    );
    assert_error(
        &redirect("port: http"),
        &format!("{prefix}.port"),
        "not a port",
    );
    assert_error(
        &redirect("path: nope"),
        &format!("{prefix}.path"),
        "must start with `/`",
    );
    assert_error(
        &redirect("host: \"#{path}.example.com\""),
        &format!("{prefix}.host"),
        "`#{path}` cannot be used in host",
    );
    assert_error(
        &redirect("path: \"/#{query}\""),
        &format!("{prefix}.path"),
        "`#{query}` cannot be used in path",
    );
    assert_error(
        &redirect("path: \"/#{protocol}\""),
        &format!("{prefix}.path"),
        "cannot be used in path",
    );
    assert_error(
        &redirect("query: \"#{bogus}\", host: example.com"),
        &format!("{prefix}.query"),
        "`#{bogus}`",
    );
    let long = "a".repeat(129);
    assert_error(
        &redirect(&format!("host: {long}")),
        &format!("{prefix}.host"),
        "129 characters",
    );
    assert_error(
        &redirect("host: \"\""),
        &format!("{prefix}.host"),
        "must not be empty",
    );
    let numeric_status = default_action("      redirect: {status_code: 301, host: example.com}");
    assert_error(
        &numeric_status,
        &format!("{prefix}.status_code"),
        "HTTP_301",
    );
    parse(&redirect("protocol: HTTPS, port: \"443\"")).unwrap();
    parse(&redirect(
        "path: \"/x/#{path}\", query: \"#{protocol}#{host}#{port}#{path}#{query}\"",
    ))
    .unwrap();
}

#[test]
fn https_listener_must_not_redirect_to_http() {
    let dir = tempfile::tempdir().unwrap();
    write_test_certificate(dir.path(), "site", &["example.com"]);
    let text = "listeners:
  - protocol: HTTPS
    address: 127.0.0.1:0
    tls: {default_certificate: {certificate: site.crt, private_key: site.key}}
    default_action: {redirect: {protocol: HTTP, port: \"80\", status_code: HTTP_301}}
";
    let all = crate::parse(text, Path::new("test.yaml"), dir.path())
        .unwrap_err()
        .0;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].path, "listeners[0].default_action.redirect.protocol");
    assert!(all[0].reason.contains("must not redirect to HTTP"));
}

#[test]
fn fixed_responses() {
    let prefix = "listeners[0].default_action.fixed_response";
    let long = "x".repeat(1025);
    let text = default_action(&format!(
        "      fixed_response: {{status_code: 302, content_type: text/xml, message_body: \"{long}\"}}"
    ));
    assert_error(
        &text,
        &format!("{prefix}.status_code"),
        "2XX, 4XX or 5XX, not 302",
    );
    assert_error(
        &text,
        &format!("{prefix}.content_type"),
        "`text/xml` is not one of",
    );
    assert_error(&text, &format!("{prefix}.message_body"), "1025 characters");
    parse(&default_action(
        "      fixed_response: {status_code: 503, content_type: application/json}",
    ))
    .unwrap();
}

#[test]
fn target_groups() {
    let text = "target_groups:
  - name: -bad-
    port: 0
    connect_timeout_seconds: 0
    response_timeout_seconds: 4001
    targets:
      - 10.0.0.1:80
      - {address: 10.0.0.1, port: 80}
      - app.internal:80
      - \"10.0.0.1:99999\"
  - name: -bad-
  - name: a_b
  - name: this-name-is-much-longer-than-32-chars
";
    assert_error(
        text,
        "target_groups[0].name",
        "must not start or end with a hyphen",
    );
    assert_error(text, "target_groups[0].port", "1–65535, not 0");
    assert_error(
        text,
        "target_groups[0].connect_timeout_seconds",
        "1–3600, not 0",
    );
    assert_error(
        text,
        "target_groups[0].response_timeout_seconds",
        "1–4000, not 4001",
    );
    let error = assert_error(
        text,
        "target_groups[0].targets[1]",
        "already registered as target_groups[0].targets[0]",
    );
    assert_eq!(error.line, 8);
    assert_error(
        text,
        "target_groups[0].targets[2]",
        "for a host name use the group's `discovery.dns_name`",
    );
    assert_error(text, "target_groups[0].targets[3]", "not a port");
    assert_error(
        text,
        "target_groups[1].name",
        "already defined as target_groups[0]",
    );
    assert_error(text, "target_groups[2].name", "letters, digits and hyphens");
    assert_error(text, "target_groups[3].name", "at most 32");
}

#[test]
fn target_and_group_counts_are_limited() {
    let targets: Vec<String> = (0..1001)
        .map(|index| format!("\"10.0.{}.{}\"", index / 256, index % 256))
        .collect();
    let text = format!(
        "target_groups:\n  - name: big\n    targets: [{}]\n",
        targets.join(", ")
    );
    assert_error(
        &text,
        "target_groups[0].targets",
        "1001 targets; at most 1000",
    );
    let groups: String = (0..101)
        .map(|index| format!("  - name: g{index}\n"))
        .collect();
    assert_error(
        &format!("target_groups:\n{groups}"),
        "target_groups",
        "101 target groups; at most 100",
    );
}

#[test]
fn target_socket_addresses() {
    use crate::Target;
    let short = |text: &str| Target::Short(text.to_string()).socket_addr(80);
    assert_eq!(short("10.0.0.5:8080").unwrap().to_string(), "10.0.0.5:8080");
    assert_eq!(short("10.0.0.5").unwrap().to_string(), "10.0.0.5:80");
    assert_eq!(short("[::1]:8080").unwrap().to_string(), "[::1]:8080");
    assert_eq!(short("[::1]").unwrap().to_string(), "[::1]:80");
    assert_eq!(short("::1").unwrap().to_string(), "[::1]:80");
    assert_eq!(short("localhost:9").unwrap().to_string(), "127.0.0.1:9");
    assert!(short("example.com")
        .unwrap_err()
        .contains("discovery.dns_name"));
    assert!(short("10.0.0.5:0").unwrap_err().contains("not 0"));
    let full = Target::Full(crate::TargetAddress {
        address: "localhost".into(),
        port: None,
    });
    assert_eq!(full.socket_addr(81).unwrap().to_string(), "127.0.0.1:81");
}

#[test]
fn every_error_in_a_file_is_reported() {
    let text = "load_balancer:
  idle_timeout_seconds: 0
listeners:
  - address: 127.0.0.1:80
    rules:
      - priority: 0
        conditions: [{path_pattern: [\"/a b\"]}]
        action: {forward: {target_group: ghost}}
    default_action: {fixed_response: {status_code: 100}}
target_groups:
  - name: -x
";
    let all = errors(text);
    let paths: Vec<&str> = all.iter().map(|error| error.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "load_balancer.idle_timeout_seconds",
            "listeners[0].rules[0].priority",
            "listeners[0].rules[0].conditions[0].path_pattern[0]",
            "listeners[0].rules[0].action.forward.target_group",
            "listeners[0].default_action.fixed_response.status_code",
            "target_groups[0].name",
        ]
    );
    let lines: Vec<usize> = all.iter().map(|error| error.line).collect();
    assert_eq!(lines, [2, 6, 7, 8, 9, 11]);
    assert!(all.iter().all(|error| error.file == Path::new("test.yaml")));
}

/// A file with one target group `app` whose extra fields are `fields` (YAML indented 4).
fn group_with(fields: &str) -> String {
    format!("target_groups:\n  - name: app\n    targets: [127.0.0.1:8081]\n{fields}\n")
}

#[test]
fn target_group_settings_default_to_albs() {
    let config = parse(&group_with("")).unwrap();
    let group = &config.target_groups[0];
    let check = &group.health_check;
    assert!(check.enabled);
    assert_eq!(check.protocol, None);
    assert_eq!(check.port, crate::HealthCheckPort::TrafficPort);
    assert_eq!(
        (
            check.interval_seconds,
            check.timeout_seconds,
            check.healthy_threshold_count,
            check.unhealthy_threshold_count,
            check.initial_healthy_threshold_count,
        ),
        (30, 5, 5, 2, 1)
    );
    assert_eq!(check.matcher.http_code, "200");
    assert_eq!(check.matcher.grpc_code, None);
    assert_eq!(check.effective_path(), "/");
    assert_eq!(group.deregistration_delay_seconds, 300);
    assert_eq!(group.slow_start_duration_seconds, 0);
    assert_eq!(
        group.load_balancing_algorithm,
        crate::LoadBalancingAlgorithm::RoundRobin
    );
    assert!(!group.anomaly_mitigation);
    assert!(!group.stickiness.enabled);
    assert_eq!(group.stickiness.kind, crate::StickinessType::LbCookie);
    assert_eq!(group.stickiness.duration_seconds, 86_400);
    assert_eq!(group.stickiness.cookie_name, None);
    assert!(group.passive_health.enabled);
    assert_eq!(group.passive_health.suspect_seconds, 10);
    assert_eq!(config.admin.auth_token, None);
    assert_eq!(config.admin.auth_token_env, None);
}

#[test]
fn every_target_group_setting_is_read() {
    let text = group_with(
        "    protocol_version: HTTP2
    health_check:
      enabled: false
      protocol: HTTPS
      path: /grpc.health.v1.Health/Check
      port: 9000
      interval_seconds: 10
      timeout_seconds: 3
      healthy_threshold_count: 3
      unhealthy_threshold_count: 4
      initial_healthy_threshold_count: 3
      matcher: {http_code: \"200-299\", grpc_code: \"0,12\"}
    deregistration_delay_seconds: 0
    slow_start_duration_seconds: 60
    load_balancing_algorithm: weighted_random
    anomaly_mitigation: true
    stickiness: {enabled: true, type: app_cookie, duration_seconds: 60, cookie_name: SESSIONID}
    passive_health: {enabled: false, suspect_seconds: 30}",
    );
    let config = parse(&text).unwrap();
    let group = &config.target_groups[0];
    let check = &group.health_check;
    assert!(!check.enabled);
    assert_eq!(
        check.effective_protocol(crate::Protocol::Http),
        crate::Protocol::Https
    );
    assert_eq!(check.effective_path(), "/grpc.health.v1.Health/Check");
    assert_eq!(check.port, crate::HealthCheckPort::Port(9000));
    assert_eq!(
        (
            check.interval_seconds,
            check.timeout_seconds,
            check.healthy_threshold_count,
            check.unhealthy_threshold_count,
            check.initial_healthy_threshold_count,
        ),
        (10, 3, 3, 4, 3)
    );
    assert_eq!(check.matcher.http_codes(), vec![200..=299]);
    assert_eq!(check.matcher.grpc_codes(), Some(vec![0..=0, 12..=12]));
    assert_eq!(group.deregistration_delay_seconds, 0);
    assert_eq!(group.slow_start_duration_seconds, 60);
    assert_eq!(
        group.load_balancing_algorithm,
        crate::LoadBalancingAlgorithm::WeightedRandom
    );
    assert!(group.anomaly_mitigation);
    assert!(group.stickiness.enabled);
    assert_eq!(group.stickiness.kind, crate::StickinessType::AppCookie);
    assert_eq!(group.stickiness.duration_seconds, 60);
    assert_eq!(group.stickiness.cookie_name.as_deref(), Some("SESSIONID"));
    assert!(!group.passive_health.enabled);
    assert_eq!(group.passive_health.suspect_seconds, 30);
}

#[test]
fn health_check_port_is_traffic_port_or_a_number() {
    use crate::HealthCheckPort;
    let port_of = |spelling: &str| {
        let text = group_with(&format!("    health_check: {{port: {spelling}}}"));
        parse(&text).map(|config| config.target_groups[0].health_check.port)
    };
    assert_eq!(
        port_of("traffic-port").unwrap(),
        HealthCheckPort::TrafficPort
    );
    assert_eq!(port_of("8080").unwrap(), HealthCheckPort::Port(8080));
    assert_eq!(port_of("\"8080\"").unwrap(), HealthCheckPort::Port(8080));
    let path = "target_groups[0].health_check.port";
    let error = assert_error(
        &group_with("    health_check:\n      port: 0"),
        path,
        "must be `traffic-port` or 1–65535, not 0",
    );
    assert_eq!((error.line, error.column), (5, 13));
    for bad in ["70000", "-1", "trafic-port", "true", "[80]"] {
        assert_error(
            &group_with(&format!("    health_check: {{port: {bad}}}")),
            path,
            "expected `traffic-port` or a port number 1–65535",
        );
    }
}

#[test]
fn health_check_port_round_trips_through_serde() {
    use crate::HealthCheckPort;
    for port in [HealthCheckPort::TrafficPort, HealthCheckPort::Port(8080)] {
        let value = serde_json::to_value(port).unwrap();
        assert_eq!(
            serde_json::from_value::<HealthCheckPort>(value).unwrap(),
            port
        );
    }
    assert_eq!(
        serde_json::to_value(HealthCheckPort::TrafficPort).unwrap(),
        serde_json::json!("traffic-port")
    );
    assert_eq!(HealthCheckPort::TrafficPort.resolve(8081), 8081);
    assert_eq!(HealthCheckPort::Port(9000).resolve(8081), 9000);
}

#[test]
fn health_check_ranges() {
    let text = group_with(
        "    health_check:
      interval_seconds: 4
      timeout_seconds: 1
      healthy_threshold_count: 1
      unhealthy_threshold_count: 11
      initial_healthy_threshold_count: 0",
    );
    let prefix = "target_groups[0].health_check";
    let error = assert_error(
        &text,
        &format!("{prefix}.interval_seconds"),
        "must be 5–300, not 4",
    );
    assert_eq!(error.line, 5);
    assert_error(
        &text,
        &format!("{prefix}.timeout_seconds"),
        "must be 2–120, not 1",
    );
    assert_error(
        &text,
        &format!("{prefix}.healthy_threshold_count"),
        "must be 2–10, not 1",
    );
    assert_error(
        &text,
        &format!("{prefix}.unhealthy_threshold_count"),
        "must be 2–10, not 11",
    );
    assert_error(
        &text,
        &format!("{prefix}.initial_healthy_threshold_count"),
        "must be 1–10, not 0",
    );
    assert_eq!(errors(&text).len(), 5, "every error is reported");
    let too_many = group_with("    health_check: {initial_healthy_threshold_count: 11}");
    assert_error(
        &too_many,
        &format!("{prefix}.initial_healthy_threshold_count"),
        "not 11",
    );
    let highest = group_with(
        "    health_check: {interval_seconds: 300, timeout_seconds: 120, healthy_threshold_count: 10, \
         unhealthy_threshold_count: 10, initial_healthy_threshold_count: 10}",
    );
    parse(&highest).unwrap();
}

#[test]
fn health_check_timeout_must_be_less_than_interval() {
    let path = "target_groups[0].health_check.timeout_seconds";
    assert_error(
        &group_with("    health_check: {interval_seconds: 10, timeout_seconds: 10}"),
        path,
        "must be less than interval_seconds (10), not 10",
    );
    assert_error(
        &group_with("    health_check: {interval_seconds: 5}"),
        path,
        "must be less than interval_seconds (5), not 5",
    );
    parse(&group_with(
        "    health_check: {interval_seconds: 10, timeout_seconds: 9}",
    ))
    .unwrap();
}

#[test]
fn health_check_paths() {
    let path = "target_groups[0].health_check.path";
    let with_path = |value: &str| group_with(&format!("    health_check: {{path: \"{value}\"}}"));
    assert_error(&with_path("health"), path, "`health` must start with `/`");
    assert_error(&with_path("/a b"), path, "contains ' '");
    assert_error(&with_path("/caf\u{e9}"), path, "printable ASCII");
    assert_error(&with_path(""), path, "must not be empty");
    let long = format!("/{}", "a".repeat(1024));
    assert_error(
        &with_path(&long),
        path,
        "1025 characters long; at most 1024",
    );
    parse(&with_path("/health?full=1&x=%20")).unwrap();
    parse(&with_path(&long[..1024])).unwrap();
}

#[test]
fn health_check_matchers() {
    let http = "target_groups[0].health_check.matcher.http_code";
    let with_http = |code: &str| {
        group_with(&format!(
            "    health_check:\n      matcher:\n        http_code: \"{code}\""
        ))
    };
    let error = assert_error(&with_http("199"), http, "`199`: 199 is outside 200–499");
    assert_eq!((error.line, error.column), (6, 20));
    assert_error(&with_http("500"), http, "500 is outside 200–499");
    assert_error(&with_http("2xx"), http, "`2xx` is not a number");
    assert_error(&with_http("300-200"), http, "`300-200` is reversed");
    assert_error(&with_http("200-"), http, "`200-` is missing a code");
    assert_error(&with_http("200,,202"), http, "item 2 is empty");
    assert_error(&with_http(""), http, "must not be empty");
    for good in ["200", "200,202", "200-299", "200,300-399", "499"] {
        parse(&with_http(good)).unwrap();
    }

    let grpc = "target_groups[0].health_check.matcher.grpc_code";
    assert_error(
        &group_with("    health_check: {matcher: {grpc_code: \"0\"}}"),
        grpc,
        "need `protocol_version: HTTP2`",
    );
    let http2 = |code: &str| {
        group_with(&format!(
            "    protocol_version: HTTP2\n    health_check: {{matcher: {{grpc_code: \"{code}\"}}}}"
        ))
    };
    assert_error(&http2("100"), grpc, "100 is outside 0–99");
    assert_error(&http2("5-1"), grpc, "reversed");
    let config = parse(&http2("0-5,12")).unwrap();
    let check = &config.target_groups[0].health_check;
    assert_eq!(check.effective_path(), "/AWS.ALB/healthcheck");
    assert_eq!(check.matcher.grpc_codes(), Some(vec![0..=5, 12..=12]));
}

#[test]
fn deregistration_delay_slow_start_and_algorithms() {
    let prefix = "target_groups[0]";
    assert_error(
        &group_with("    deregistration_delay_seconds: 3601"),
        &format!("{prefix}.deregistration_delay_seconds"),
        "must be 0–3600, not 3601",
    );
    let slow_start = format!("{prefix}.slow_start_duration_seconds");
    assert_error(
        &group_with("    slow_start_duration_seconds: 29"),
        &slow_start,
        "must be 0 (off) or 30–900, not 29",
    );
    assert_error(
        &group_with("    slow_start_duration_seconds: 901"),
        &slow_start,
        "not 901",
    );
    assert_error(
        &group_with(
            "    slow_start_duration_seconds: 30\n    load_balancing_algorithm: least_outstanding_requests",
        ),
        &slow_start,
        "cannot be combined with `load_balancing_algorithm: least_outstanding_requests`",
    );
    parse(&group_with(
        "    slow_start_duration_seconds: 900\n    load_balancing_algorithm: weighted_random",
    ))
    .unwrap();
    parse(&group_with(
        "    slow_start_duration_seconds: 0\n    load_balancing_algorithm: least_outstanding_requests",
    ))
    .unwrap();
    assert_error(
        &group_with("    anomaly_mitigation: true"),
        &format!("{prefix}.anomaly_mitigation"),
        "only works with `load_balancing_algorithm: weighted_random` (as on ALB), not round_robin",
    );
    assert_error(
        &group_with(
            "    anomaly_mitigation: true\n    load_balancing_algorithm: least_outstanding_requests",
        ),
        &format!("{prefix}.anomaly_mitigation"),
        "not least_outstanding_requests",
    );
    parse(&group_with(
        "    anomaly_mitigation: true\n    load_balancing_algorithm: weighted_random",
    ))
    .unwrap();
    assert_error(
        &group_with("    load_balancing_algorithm: random"),
        &format!("{prefix}.load_balancing_algorithm"),
        "unknown variant `random`",
    );
}

#[test]
fn target_stickiness_rules() {
    let prefix = "target_groups[0].stickiness";
    let cookie = format!("{prefix}.cookie_name");
    let with = |fields: &str| group_with(&format!("    stickiness: {{{fields}}}"));
    assert_error(
        &with("enabled: true, duration_seconds: 0"),
        &format!("{prefix}.duration_seconds"),
        "must be 1–604800, not 0",
    );
    assert_error(
        &with("duration_seconds: 604801"),
        &format!("{prefix}.duration_seconds"),
        "not 604801",
    );
    assert_error(
        &with("enabled: true, cookie_name: session"),
        &cookie,
        "only for `type: app_cookie`",
    );
    assert_error(
        &with("enabled: true, type: app_cookie"),
        &cookie,
        "needs the name of the application's cookie",
    );
    for reserved in ["AWSALB", "AWSALBAPP-0", "AWSALBTG", "AWSALBCORS"] {
        assert_error(
            &with(&format!(
                "enabled: true, type: app_cookie, cookie_name: {reserved}"
            )),
            &cookie,
            "starts with `AWSALB`, which is reserved",
        );
    }
    assert_error(
        &with("enabled: true, type: app_cookie, cookie_name: \"a b\""),
        &cookie,
        "contains ' '",
    );
    assert_error(
        &with("enabled: true, type: app_cookie, cookie_name: \"a=b\""),
        &cookie,
        "contains '='",
    );
    assert_error(
        &with("enabled: true, type: app_cookie, cookie_name: \"\""),
        &cookie,
        "must not be empty",
    );
    let long = "c".repeat(256);
    assert_error(
        &with(&format!(
            "enabled: true, type: app_cookie, cookie_name: {long}"
        )),
        &cookie,
        "256 characters long; at most 255",
    );
    assert_error(
        &with("type: session"),
        &format!("{prefix}.type"),
        "unknown variant",
    );
    parse(&with(
        "enabled: true, type: app_cookie, cookie_name: \"session_id.v2\"",
    ))
    .unwrap();
    parse(&with("enabled: false, type: app_cookie")).unwrap();
    parse(&with(
        "enabled: true, type: lb_cookie, duration_seconds: 604800",
    ))
    .unwrap();
}

#[test]
fn passive_health_ranges() {
    let path = "target_groups[0].passive_health.suspect_seconds";
    assert_error(
        &group_with("    passive_health: {suspect_seconds: 0}"),
        path,
        "must be 1–3600, not 0",
    );
    assert_error(
        &group_with("    passive_health: {suspect_seconds: 3601}"),
        path,
        "not 3601",
    );
    assert_error(
        &group_with("    passive_health: {retries: 2}"),
        "target_groups[0].passive_health.retries",
        "unknown field `retries`",
    );
    parse(&group_with(
        "    passive_health: {enabled: false, suspect_seconds: 3600}",
    ))
    .unwrap();
}

#[test]
fn admin_tokens() {
    let error = assert_error(
        "admin:\n  address: 0.0.0.0:9901\n",
        "admin.address",
        "the admin API is bound to 0.0.0.0, which is not a loopback address; set admin.auth_token_env",
    );
    assert_eq!((error.line, error.column), (2, 12));
    assert_error(
        "admin: {address: \"192.168.1.10:9901\"}\n",
        "admin.address",
        "not a loopback address",
    );
    assert_error(
        "admin: {address: \"[::]:9901\"}\n",
        "admin.address",
        "not a loopback address",
    );
    parse("admin: {address: \"0.0.0.0:9901\", auth_token_env: SCALEGATE_ADMIN_TOKEN}\n").unwrap();
    parse("admin: {address: \"0.0.0.0:9901\", auth_token: s3cret}\n").unwrap();
    parse("admin: {address: \"[::1]:9901\"}\n").unwrap();
    parse("admin: {address: \"127.0.0.2:9901\"}\n").unwrap();
    assert_error(
        "admin: {auth_token: a, auth_token_env: B}\n",
        "admin.auth_token_env",
        "either admin.auth_token or admin.auth_token_env, not both",
    );
    assert_error(
        "admin: {auth_token: \"\"}\n",
        "admin.auth_token",
        "must not be empty",
    );
    assert_error(
        "admin: {auth_token_env: \"\"}\n",
        "admin.auth_token_env",
        "is not an environment variable name",
    );
    assert_error(
        "admin: {address: \"0.0.0.0:9901\", auth_token: \"\"}\n",
        "admin.auth_token",
        "must not be empty",
    );
}

/// A file with one target group `app` whose `discovery` mapping is `fields` (YAML indented 6).
fn discovery_with(fields: &str) -> String {
    group_with(&format!("    discovery:\n{fields}"))
}

/// A file whose registry has `namespaces` (YAML list items indented 4).
fn registry_with(namespaces: &str) -> String {
    format!("registry:\n  address: 127.0.0.1:0\n  namespaces:\n{namespaces}\n")
}

/// A registry with one namespace `scalegate.local` and one service `web` whose one instance has
/// `fields` after its id (flow-mapping entries).
fn instance_with(fields: &str) -> String {
    registry_with(&format!(
        "    - name: scalegate.local
      services:
        - name: web
          instances:
            - {{id: web-1, {fields}}}"
    ))
}

const DISCOVERY: &str = "target_groups[0].discovery";
const INSTANCE: &str = "registry.namespaces[0].services[0].instances[0]";

#[test]
fn discovery_needs_exactly_one_source() {
    let error = assert_error(
        &group_with("    discovery: {}"),
        DISCOVERY,
        "needs exactly one source: `dns_name` (A/AAAA records), `srv_name` (SRV records) or `file`",
    );
    assert_eq!((error.line, error.column), (4, 16));
    assert_error(
        &discovery_with("      dns_name: web\n      srv_name: _web._tcp.local"),
        DISCOVERY,
        "set exactly one of `dns_name`, `srv_name` or `file`, not `dns_name` and `srv_name`",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("targets.yaml"), "[]").unwrap();
    let text = discovery_with(
        "      dns_name: web\n      srv_name: _web._tcp.local\n      file: targets.yaml",
    );
    let all = crate::parse(&text, Path::new("test.yaml"), dir.path())
        .unwrap_err()
        .0;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].path, DISCOVERY);
    assert!(all[0]
        .reason
        .ends_with("not `dns_name`, `srv_name` and `file`"));
    let config = parse(&discovery_with("      dns_name: web")).unwrap();
    assert!(config.target_groups[0].discovery.is_some());
    assert_eq!(
        parse(&group_with("    discovery:")).unwrap().target_groups[0].discovery,
        None
    );
}

#[test]
fn discovery_dns_names() {
    let path = format!("{DISCOVERY}.dns_name");
    let with_name = |name: &str| group_with(&format!("    discovery: {{dns_name: \"{name}\"}}"));
    let label = "a".repeat(63);
    let longest = [label.as_str(); 4].join(".")[..253].to_string();
    for good in [
        "web",
        "WEB.scalegate.local",
        "web.scalegate.local.",
        "my_service.internal",
        "tasks.web-1",
        &format!("{label}.local"),
        &longest,
    ] {
        parse(&with_name(good)).unwrap_or_else(|error| panic!("{good}: {error}"));
    }
    let error = assert_error(
        &discovery_with("      dns_name: 10.0.0.1"),
        &path,
        "`10.0.0.1` is an IP address, not a DNS name; put IP addresses in the group's `targets`",
    );
    assert_eq!((error.line, error.column), (5, 17));
    for address in ["::1", "[::1]", "10.0.0.1:80", "[::1]:80"] {
        assert_error(
            &with_name(address),
            &path,
            "put IP addresses in the group's `targets`",
        );
    }
    assert_error(
        &with_name("web:8080"),
        &path,
        "`web:8080` includes a port; write the name alone and the port in `discovery.port`",
    );
    assert_error(&with_name(""), &path, "must not be empty");
    assert_error(&with_name("."), &path, "`.` is the DNS root");
    assert_error(
        &with_name("web..local"),
        &path,
        "`web..local` has an empty label; separate labels with single dots",
    );
    assert_error(&with_name(".web"), &path, "has an empty label");
    assert_error(&with_name("web.local.."), &path, "has an empty label");
    assert_error(
        &with_name("we b.local"),
        &path,
        "`we b.local` contains ' '; a DNS name is labels of letters, digits, hyphens and underscores",
    );
    assert_error(&with_name("caf\u{e9}.local"), &path, "contains 'é'");
    assert_error(&with_name("web:http"), &path, "contains ':'");
    assert_error(
        &with_name(&format!("{label}a.local")),
        &path,
        "is 64 characters long; a DNS label has at most 63",
    );
    assert_error(
        &with_name(&format!("{longest}a")),
        &path,
        "is 254 characters long; a DNS name has at most 253",
    );
    parse(&with_name(&format!("{longest}."))).unwrap();
}

#[test]
fn discovery_srv_names() {
    let path = format!("{DISCOVERY}.srv_name");
    let with_name = |name: &str| group_with(&format!("    discovery: {{srv_name: \"{name}\"}}"));
    for good in [
        "_web._tcp.scalegate.local",
        "_web._tcp.scalegate.local.",
        "_dns._udp.example.com",
        "_Web._TCP.internal",
    ] {
        parse(&with_name(good)).unwrap_or_else(|error| panic!("{good}: {error}"));
    }
    for bad in [
        "web.scalegate.local",
        "_web._tcp",
        "_web._tcp.",
        "_._tcp.local",
        "web._tcp.local",
        "_web._sctp.local",
        "_web.tcp.local",
    ] {
        assert_error(
            &with_name(bad),
            &path,
            &format!("`{bad}` is not an SRV name; write `_service._tcp.name` (or `_udp`)"),
        );
    }
    assert_error(&with_name("_web._tcp..local"), &path, "has an empty label");
    assert_error(
        &with_name("10.0.0.1"),
        &path,
        "is an IP address, not a DNS name",
    );
    assert_error(&with_name(""), &path, "must not be empty");
    let error = assert_error(
        &discovery_with("      srv_name: _web._tcp.local\n      port: 8080"),
        &format!("{DISCOVERY}.port"),
        "SRV records carry their own ports; remove `port`",
    );
    assert_eq!((error.line, error.column), (6, 13));
}

#[test]
fn discovery_ports_families_and_name_servers() {
    let port = format!("{DISCOVERY}.port");
    assert_error(
        &group_with("    discovery: {dns_name: web, port: 0}"),
        &port,
        "must be 1–65535, not 0",
    );
    assert_error(
        &group_with("    discovery: {dns_name: web, port: 70000}"),
        &port,
        "expected a whole number 0–65535",
    );
    assert_error(
        &group_with("    discovery: {dns_name: web, address_family: ipv5}"),
        &format!("{DISCOVERY}.address_family"),
        "unknown variant `ipv5`",
    );
    let servers = format!("{DISCOVERY}.name_servers");
    let error = assert_error(
        &discovery_with(
            "      dns_name: web\n      name_servers:\n        - 127.0.0.11:53\n        - 127.0.0.1:0",
        ),
        &format!("{servers}[1]"),
        "`127.0.0.1:0` has port 0; name the port the server answers on",
    );
    assert_eq!(error.line, 8);
    assert_error(
        &group_with("    discovery: {dns_name: web, name_servers: [\"localhost:53\"]}"),
        &format!("{servers}[0]"),
        "expected `ip:port`",
    );
    let config = parse(&group_with(
        "    discovery: {dns_name: web, port: 8080, address_family: ipv6, \
         name_servers: [\"127.0.0.11:53\", \"[::1]:5353\"]}",
    ))
    .unwrap();
    let discovery = config.target_groups[0].discovery.as_ref().unwrap();
    assert_eq!(discovery.port, Some(8080));
    assert_eq!(discovery.address_family, crate::AddressFamily::Ipv6);
    assert_eq!(discovery.name_servers[1].to_string(), "[::1]:5353");
    parse(&group_with(
        "    discovery: {srv_name: _web._tcp.local, address_family: ipv4, \
         name_servers: [\"10.0.0.2:53\"]}",
    ))
    .unwrap();
}

#[test]
fn discovery_timing_ranges() {
    let text = discovery_with(
        "      dns_name: web
      min_refresh_seconds: 0
      max_refresh_seconds: 3601
      query_timeout_seconds: 0
      nxdomain_removal_after: 0",
    );
    let error = assert_error(
        &text,
        &format!("{DISCOVERY}.min_refresh_seconds"),
        "must be 1–3600, not 0",
    );
    assert_eq!((error.line, error.column), (6, 28));
    assert_error(
        &text,
        &format!("{DISCOVERY}.max_refresh_seconds"),
        "must be 1–3600, not 3601",
    );
    assert_error(
        &text,
        &format!("{DISCOVERY}.query_timeout_seconds"),
        "must be 1–60, not 0",
    );
    assert_error(
        &text,
        &format!("{DISCOVERY}.nxdomain_removal_after"),
        "must be 1–100, not 0",
    );
    assert_eq!(errors(&text).len(), 4, "every error is reported");
    let above = group_with(
        "    discovery: {dns_name: web, query_timeout_seconds: 61, nxdomain_removal_after: 101}",
    );
    assert_error(
        &above,
        &format!("{DISCOVERY}.query_timeout_seconds"),
        "not 61",
    );
    assert_error(
        &above,
        &format!("{DISCOVERY}.nxdomain_removal_after"),
        "not 101",
    );
    assert_error(
        &group_with("    discovery: {dns_name: web, min_refresh_seconds: 600}"),
        &format!("{DISCOVERY}.min_refresh_seconds"),
        "must not be more than max_refresh_seconds (300), not 600",
    );
    let highest = group_with(
        "    discovery: {dns_name: web, min_refresh_seconds: 3600, max_refresh_seconds: 3600, \
         query_timeout_seconds: 60, nxdomain_removal_after: 100}",
    );
    parse(&highest).unwrap();
}

#[test]
fn discovery_defaults() {
    let config = parse(&group_with("    discovery: {dns_name: web}")).unwrap();
    let discovery = config.target_groups[0].discovery.as_ref().unwrap();
    assert_eq!(
        discovery,
        &crate::TargetDiscovery {
            dns_name: Some("web".to_string()),
            ..crate::TargetDiscovery::default()
        }
    );
    assert_eq!(discovery.port, None);
    assert_eq!(discovery.address_family, crate::AddressFamily::Any);
    assert!(discovery.name_servers.is_empty());
    assert_eq!(
        (
            discovery.min_refresh_seconds,
            discovery.max_refresh_seconds,
            discovery.query_timeout_seconds,
            discovery.nxdomain_removal_after,
        ),
        (1, 300, 2, 3)
    );
    assert!(discovery.keep_last_known_on_failure);
}

#[test]
fn discovery_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("targets.yaml"), "- 127.0.0.1:9000\n").unwrap();
    std::fs::create_dir(dir.path().join("folder")).unwrap();
    let parse_in_dir = |fields: &str| {
        crate::parse(
            &group_with(&format!("    discovery: {{{fields}}}")),
            Path::new("test.yaml"),
            dir.path(),
        )
    };
    let config = parse_in_dir("file: targets.yaml, port: 9000").unwrap();
    let discovery = config.target_groups[0].discovery.as_ref().unwrap();
    assert_eq!(
        discovery.file.as_deref(),
        Some(dir.path().join("targets.yaml").as_path())
    );
    let absolute = dir.path().join("targets.yaml");
    parse(&group_with(&format!(
        "    discovery: {{file: \"{}\"}}",
        absolute.display()
    )))
    .unwrap();

    let path = format!("{DISCOVERY}.file");
    let find = |fields: &str, path: &str| {
        let all = parse_in_dir(fields).unwrap_err().0;
        all.into_iter()
            .find(|error| error.path == path)
            .unwrap_or_else(|| panic!("no error at {path} for {fields}"))
    };
    let missing = find("file: missing.yaml", &path);
    assert!(
        missing.reason.starts_with(&format!(
            "cannot read {}",
            dir.path().join("missing.yaml").display()
        )),
        "{missing}"
    );
    assert_eq!((missing.line, missing.column), (4, 23));
    assert!(find("file: folder", &path)
        .reason
        .ends_with("is a directory; name a YAML or JSON file listing targets"));
    assert!(find("file: /dev/null", &path)
        .reason
        .ends_with("/dev/null is not a regular file; name a YAML or JSON file listing targets"));
    assert!(find(
        "file: targets.yaml, address_family: ipv4",
        &format!("{DISCOVERY}.address_family")
    )
    .reason
    .contains("only for `dns_name` and `srv_name`; a file lists its addresses itself"));
    assert!(find(
        "file: targets.yaml, name_servers: [\"127.0.0.1:53\"]",
        &format!("{DISCOVERY}.name_servers")
    )
    .reason
    .contains("only for `dns_name` and `srv_name`; a file is read, not resolved"));
    parse_in_dir("file: targets.yaml, address_family: any, name_servers: []").unwrap();
}

#[test]
fn registry_namespaces() {
    let text = registry_with(
        "    - name: scalegate.local
    - name: Scalegate.Local.
    - name: api.scalegate.local
    - name: local
    - name: \"bad name\"
    - name: 10.0.0.1
    - name: \"\"
    - name: other.internal",
    );
    let error = assert_error(
        &text,
        "registry.namespaces[1].name",
        "`Scalegate.Local.` is already defined as registry.namespaces[0].name (`scalegate.local`; \
         names are case-insensitive)",
    );
    assert_eq!((error.line, error.column), (5, 13));
    assert_error(
        &text,
        "registry.namespaces[2].name",
        "`api.scalegate.local` lies inside namespace `scalegate.local` \
         (registry.namespaces[0].name); one namespace cannot contain another",
    );
    assert_error(
        &text,
        "registry.namespaces[3].name",
        "`local` contains namespace `scalegate.local` (registry.namespaces[0].name)",
    );
    assert_error(&text, "registry.namespaces[4].name", "contains ' '");
    assert_error(
        &text,
        "registry.namespaces[5].name",
        "`10.0.0.1` is an IP address, not a DNS name",
    );
    assert_error(&text, "registry.namespaces[6].name", "must not be empty");
    assert_eq!(errors(&text).len(), 6, "{}", ConfigErrors(errors(&text)));
    // A common suffix that is not a whole label is no nesting.
    parse(&registry_with(
        "    - name: scalegate.local\n    - name: egate.local\n    - name: a.b",
    ))
    .unwrap();
    assert_error(
        &registry_with("    - name: scalegate.local\n      namespace: x"),
        "registry.namespaces[0].namespace",
        "unknown field `namespace`",
    );
    let many: String = (0..51)
        .map(|index| format!("    - name: ns{index}.local\n"))
        .collect();
    assert_error(
        &registry_with(&many),
        "registry.namespaces",
        "51 namespaces; at most 50",
    );
    let fifty: String = (0..50)
        .map(|index| format!("    - name: ns{index}.local\n"))
        .collect();
    parse(&registry_with(&fifty)).unwrap();
}

#[test]
fn registry_ttls() {
    let text = registry_with(
        "    - name: scalegate.local
      ttl_seconds: 2147483648
      negative_ttl_seconds: 4294967295
      services:
        - name: web
          ttl_seconds: 3000000000",
    );
    let prefix = "registry.namespaces[0]";
    let error = assert_error(
        &text,
        &format!("{prefix}.ttl_seconds"),
        "must be 0–2147483647, not 2147483648",
    );
    assert_eq!((error.line, error.column), (5, 20));
    assert_error(
        &text,
        &format!("{prefix}.negative_ttl_seconds"),
        "not 4294967295",
    );
    assert_error(
        &text,
        &format!("{prefix}.services[0].ttl_seconds"),
        "must be 0–2147483647, not 3000000000",
    );
    for (field, value) in [
        ("ttl_seconds", "4294967296"),
        ("negative_ttl_seconds", "-1"),
    ] {
        let text = registry_with(&format!(
            "    - name: scalegate.local\n      {field}: {value}"
        ));
        assert_error(
            &text,
            &format!("{prefix}.{field}"),
            &format!(
                "invalid value: integer `{value}`, expected a whole number of seconds 0–2147483647 \
                 (Cloud Map's TTL range)"
            ),
        );
    }
    assert_error(
        &registry_with(
            "    - name: scalegate.local\n      services: [{name: web, ttl_seconds: 99999999999}]",
        ),
        &format!("{prefix}.services[0].ttl_seconds"),
        "expected a whole number of seconds 0–2147483647",
    );
    let config = parse(&registry_with(
        "    - name: scalegate.local
      ttl_seconds: 2147483647
      negative_ttl_seconds: 0
      services: [{name: web, ttl_seconds: 0}, {name: api}]",
    ))
    .unwrap();
    let namespace = &config.registry.namespaces[0];
    assert_eq!(
        (namespace.ttl_seconds, namespace.negative_ttl_seconds),
        (2_147_483_647, 0)
    );
    assert_eq!(namespace.services[0].ttl_seconds, Some(0));
    assert_eq!(namespace.services[1].ttl_seconds, None);
    let defaults = parse(&registry_with("    - name: scalegate.local")).unwrap();
    let namespace = &defaults.registry.namespaces[0];
    assert_eq!(
        (namespace.ttl_seconds, namespace.negative_ttl_seconds),
        (5, 5)
    );
    assert_eq!(defaults.registry.address.to_string(), "127.0.0.1:0");
    assert!(parse("{}").unwrap().registry.namespaces.is_empty());
}

#[test]
fn registry_service_names() {
    let long = "s".repeat(63);
    let text = registry_with(&format!(
        "    - name: scalegate.local
      services:
        - name: web.v2
        - name: web
        - name: WEB
        - name: \"\"
        - name: {long}
        - name: \"{}\"
        - name: web_2-b",
        &long[..62]
    ));
    let prefix = "registry.namespaces[0].services";
    let error = assert_error(
        &text,
        &format!("{prefix}[0].name"),
        "`web.v2` contains '.'; allowed characters are letters, digits, hyphens and underscores \
         (one DNS label: no dots; the namespace is added)",
    );
    assert_eq!((error.line, error.column), (6, 17));
    assert_error(
        &text,
        &format!("{prefix}[2].name"),
        "service `WEB` is already defined as registry.namespaces[0].services[1] (names are \
         case-insensitive)",
    );
    assert_error(&text, &format!("{prefix}[3].name"), "must not be empty");
    assert_error(
        &text,
        &format!("{prefix}[4].name"),
        "is 63 characters long; at most 62 are allowed, so that the SRV label `_{name}` fits \
         DNS's 63",
    );
    assert_eq!(errors(&text).len(), 4, "{}", ConfigErrors(errors(&text)));
    // The same service name in two namespaces is two services.
    parse(&registry_with(
        "    - name: a.local\n      services: [{name: web}]\n    - name: b.local\n      services: [{name: web}]",
    ))
    .unwrap();
}

#[test]
fn registry_names_fit_in_253_characters() {
    let label = "n".repeat(49);
    let zone = [label.as_str(); 4].join(".");
    let service = "s".repeat(40);
    let text = registry_with(&format!(
        "    - name: {zone}
      services:
        - name: {service}
        - name: x
          instances:
            - {{id: {}, address: 10.0.0.1, port: 80}}
            - {{id: short, address: 10.0.0.2, port: 80}}",
        "i".repeat(63)
    ));
    let prefix = "registry.namespaces[0].services";
    assert_error(
        &text,
        &format!("{prefix}[0].name"),
        &format!("makes the SRV name `_{service}._tcp.{service}.{zone}` 287 characters long; a DNS name has at most 253"),
    );
    assert_error(
        &text,
        &format!("{prefix}[1].instances[0].id"),
        "characters long; a DNS name has at most 253",
    );
    assert_eq!(errors(&text).len(), 2, "{}", ConfigErrors(errors(&text)));
}

#[test]
fn registry_instances() {
    let text = registry_with(
        "    - name: scalegate.local
      services:
        - name: web
          instances:
            - {id: web-1, address: 10.0.0.1, port: 8080}
            - {id: WEB-1, address: 10.0.0.2, port: 8080}
            - {id: \"web.2\", address: 10.0.0.3, port: 0}
            - {id: \"\", address: \"::1\", port: 8080}",
    );
    let prefix = "registry.namespaces[0].services[0].instances";
    let error = assert_error(
        &text,
        &format!("{prefix}[1].id"),
        "instance `WEB-1` is already registered as registry.namespaces[0].services[0].instances[0]",
    );
    assert_eq!((error.line, error.column), (9, 20));
    assert_error(
        &text,
        &format!("{prefix}[2].id"),
        "`web.2` contains '.'; allowed characters are letters, digits, hyphens and underscores",
    );
    assert_error(
        &text,
        &format!("{prefix}[2].port"),
        "must be 1–65535, not 0",
    );
    assert_error(&text, &format!("{prefix}[3].id"), "must not be empty");
    assert_eq!(errors(&text).len(), 4, "{}", ConfigErrors(errors(&text)));
    assert_error(
        &registry_with(&format!(
            "    - name: scalegate.local\n      services:\n        - name: web\n          instances:\n            - {{id: {}, address: 10.0.0.1, port: 80}}",
            "i".repeat(64)
        )),
        &format!("{prefix}[0].id"),
        "is 64 characters long; at most 63 are allowed",
    );
    assert_error(
        &instance_with("address: web.local, port: 80"),
        &format!("{prefix}[0].address"),
        "invalid IP address syntax",
    );
    assert_error(
        &instance_with("address: 10.0.0.1"),
        &format!("{prefix}[0]"),
        "missing field `port`",
    );
    let many: Vec<String> = (0..1001)
        .map(|index| format!("{{id: i{index}, address: 10.0.0.1, port: 80}}"))
        .collect();
    let text = registry_with(&format!(
        "    - name: scalegate.local\n      services: [{{name: web, instances: [{}]}}]",
        many.join(", ")
    ));
    assert_error(
        &text,
        "registry.namespaces[0].services[0].instances",
        "1001 instances; at most 1000 are allowed",
    );
}

#[test]
fn registry_instance_attributes() {
    let attributes = |entries: &str| {
        instance_with(&format!(
            "address: 10.0.0.1, port: 80, attributes: {{{entries}}}"
        ))
    };
    let path = format!("{INSTANCE}.attributes");
    let custom: Vec<String> = (0..31).map(|index| format!("k{index}: v")).collect();
    assert_error(
        &attributes(&custom.join(", ")),
        &path,
        "31 custom attributes; at most 30 are allowed (Cloud Map's limit)",
    );
    parse(&attributes(&format!(
        "{}, AWS_INIT_HEALTH_STATUS: UNHEALTHY",
        custom[..30].join(", ")
    )))
    .unwrap();
    let big: Vec<String> = (0..5)
        .map(|index| format!("k{index}: {}", "v".repeat(1000)))
        .collect();
    assert_error(
        &attributes(&big.join(", ")),
        &path,
        "keys and values add up to 5010 characters; at most 5000 are allowed",
    );
    let key = "k".repeat(256);
    assert_error(
        &attributes(&format!("{key}: v")),
        &format!("{path}.{key}"),
        "the key is 256 characters long; at most 255 are allowed",
    );
    assert_error(
        &attributes("\"\": v"),
        &format!("{path}."),
        "an attribute key must not be empty",
    );
    assert_error(
        &attributes(&format!("k: {}", "v".repeat(1025))),
        &format!("{path}.k"),
        "the value is 1025 characters long; at most 1024 are allowed",
    );
    parse(&attributes(&format!(
        "{}: {}, empty: \"\"",
        "k".repeat(255),
        "v".repeat(1024)
    )))
    .unwrap();
    for (reserved, field) in [
        ("AWS_INSTANCE_IPV4", "address"),
        ("AWS_INSTANCE_IPV6", "address"),
        ("AWS_INSTANCE_PORT", "port"),
    ] {
        assert_error(
            &attributes(&format!("{reserved}: x")),
            &format!("{path}.{reserved}"),
            &format!(
                "`{reserved}` is reserved: scalegate publishes the instance's `{field}` under it; \
                 set `{field}` instead"
            ),
        );
    }
    let text =
        instance_with("address: 10.0.0.1, port: 80, attributes: {AWS_INIT_HEALTH_STATUS: healthy}");
    let error = assert_error(
        &text,
        &format!("{path}.AWS_INIT_HEALTH_STATUS"),
        "must be `HEALTHY` or `UNHEALTHY`, not `healthy`",
    );
    assert_eq!(error.line, 8);
    for status in ["HEALTHY", "UNHEALTHY"] {
        let config = parse(&attributes(&format!(
            "AWS_INIT_HEALTH_STATUS: {status}, ECS_SERVICE_NAME: web"
        )))
        .unwrap();
        let instance = &config.registry.namespaces[0].services[0].instances[0];
        assert_eq!(instance.attributes["AWS_INIT_HEALTH_STATUS"], status);
    }
}

#[test]
fn a_full_discovery_and_registry_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("targets")).unwrap();
    std::fs::write(
        dir.path().join("targets/extra.json"),
        "[\"127.0.0.1:9100\"]",
    )
    .unwrap();
    let text = "registry:
  address: 127.0.0.1:5353
  namespaces:
    - name: scalegate.local
      ttl_seconds: 10
      negative_ttl_seconds: 30
      services:
        - name: web
          ttl_seconds: 1
          instances:
            - id: web-1
              address: 127.0.0.1
              port: 8081
              attributes: {AWS_INIT_HEALTH_STATUS: HEALTHY, AVAILABILITY_ZONE: local-1a}
            - {id: web-2, address: \"::1\", port: 8082}
        - name: api
    - name: internal.
target_groups:
  - name: web
    port: 8081
    discovery:
      dns_name: web.scalegate.local
      port: 8081
      address_family: ipv4
      min_refresh_seconds: 1
      max_refresh_seconds: 30
      query_timeout_seconds: 2
      keep_last_known_on_failure: true
      nxdomain_removal_after: 3
  - name: web-srv
    discovery:
      srv_name: _web._tcp.web.scalegate.local
      name_servers: [\"127.0.0.1:5353\"]
  - name: compose
    targets: [127.0.0.1:9000]
    discovery: {dns_name: web, keep_last_known_on_failure: false}
  - name: listed
    discovery: {file: targets/extra.json, port: 9100}
";
    let config = crate::parse(text, Path::new("test.yaml"), dir.path()).unwrap();
    let registry = &config.registry;
    assert_eq!(registry.address.to_string(), "127.0.0.1:5353");
    assert_eq!(registry.namespaces.len(), 2);
    let web = &registry.namespaces[0].services[0];
    assert_eq!(web.instances.len(), 2);
    assert_eq!(web.instances[1].address.to_string(), "::1");
    assert_eq!(web.instances[0].attributes.len(), 2);
    let discovery = |index: usize| config.target_groups[index].discovery.clone().unwrap();
    assert_eq!(
        discovery(0).dns_name.as_deref(),
        Some("web.scalegate.local")
    );
    assert_eq!(discovery(0).address_family, crate::AddressFamily::Ipv4);
    assert_eq!(discovery(0).max_refresh_seconds, 30);
    assert_eq!(
        discovery(1).srv_name.as_deref(),
        Some("_web._tcp.web.scalegate.local")
    );
    assert!(!discovery(2).keep_last_known_on_failure);
    assert_eq!(
        discovery(3).file,
        Some(dir.path().join("targets/extra.json"))
    );
}
