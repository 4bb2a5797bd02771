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

// Task definitions, services and scaling.

/// Task definition `app` with `fields` (YAML indented 4) after its family.
fn task_with(fields: &str) -> String {
    format!("task_definitions:\n  - family: app\n{fields}\n")
}

/// Target groups `web` and `api`, the namespace `scalegate.local` and the task definition `app`
/// (`sh`, dynamic port): what the service templates build on.
const SERVICE_BASE: &str = "target_groups:
  - name: web
  - name: api
registry:
  namespaces:
    - name: scalegate.local
task_definitions:
  - family: app
    command: sh
    args: [-c, 'exec sleep 600']
";

/// [`SERVICE_BASE`] and one service `svc` running `app`, with `fields` (YAML indented 4).
fn service_with(fields: &str) -> String {
    format!("{SERVICE_BASE}services:\n  - name: svc\n    task_definition: app\n{fields}\n")
}

/// A service in target group `web` with scaling 1–10 and `fields` (indented 6) in `scaling`.
fn scaling_with(fields: &str) -> String {
    service_with(&format!(
        "    load_balancers: [{{target_group: web}}]
    scaling:
      min_capacity: 1
      max_capacity: 10
{fields}"
    ))
}

/// A scaling block whose policies are `policies` (list items indented 8).
fn policies_with(policies: &str) -> String {
    scaling_with(&format!("      policies:\n{policies}"))
}

/// One target-tracking policy `cpu` with `fields` (indented 12).
fn target_tracking_with(fields: &str) -> String {
    policies_with(&format!(
        "        - target_tracking:\n            name: cpu\n{fields}"
    ))
}

const CPU_METRIC: &str =
    "predefined_metric_specification: {predefined_metric_type: ECSServiceAverageCPUUtilization}";

/// A target-tracking policy on CPU at 50 % with `fields` (indented 12).
fn cpu_policy_with(fields: &str) -> String {
    target_tracking_with(&format!(
        "            target_value: 50\n            {CPU_METRIC}\n{fields}"
    ))
}

const STEP_ALARM: &str = "            alarm:
              predefined_metric_specification: {predefined_metric_type: ECSServiceAverageCPUUtilization}
              threshold: 50
              comparison_operator: GreaterThanOrEqualToThreshold";

/// One step policy `burst` with `fields` (indented 12); a CPU alarm is added when `fields` has
/// none.
fn step_with(fields: &str) -> String {
    let alarm = if fields.contains("alarm:") {
        ""
    } else {
        STEP_ALARM
    };
    policies_with(&format!(
        "        - step_scaling:\n            name: burst\n{fields}\n{alarm}"
    ))
}

/// A ChangeInCapacity step policy with `steps` (flow mappings, one per line, indented 14).
fn steps_with(steps: &str) -> String {
    step_with(&format!(
        "            adjustment_type: ChangeInCapacity\n            step_adjustments:\n{steps}"
    ))
}

/// One scheduled action `morning` with `fields` (indented 10).
fn scheduled_with(fields: &str) -> String {
    scaling_with(&format!(
        "      scheduled_actions:\n        - name: morning\n{fields}"
    ))
}

const TASK: &str = "task_definitions[0]";
const SERVICE: &str = "services[0]";
const POLICY: &str = "services[0].scaling.policies[0].target_tracking";
const STEP: &str = "services[0].scaling.policies[0].step_scaling";
const ACTION: &str = "services[0].scaling.scheduled_actions[0]";

#[test]
fn service_templates_are_valid() {
    parse(&task_with("    command: sh")).unwrap();
    parse(&service_with("")).unwrap();
    parse(&cpu_policy_with("")).unwrap();
    parse(&steps_with(
        "              - {metric_interval_lower_bound: 0, scaling_adjustment: 1}",
    ))
    .unwrap();
    parse(&scheduled_with(
        "          schedule: \"cron(0 8 ? * MON-FRI *)\"\n          scalable_target_action: {min_capacity: 2}",
    ))
    .unwrap();
}

#[test]
fn task_definition_defaults_are_ecs() {
    let config = parse(&service_with("")).unwrap();
    let definition = &config.task_definitions[0];
    assert_eq!(definition.cpu, 1024);
    assert_eq!(definition.memory, 2048);
    assert_eq!(definition.port, crate::TaskPort::Dynamic);
    assert_eq!(definition.stop_timeout_seconds, 30);
    assert_eq!(definition.args, ["-c", "exec sleep 600"]);
    assert!(definition.env.is_empty() && definition.working_dir.is_none());
    let service = &config.services[0];
    assert_eq!(service.desired_count, 1);
    assert_eq!(
        service.deployment_configuration,
        crate::DeploymentConfiguration {
            minimum_healthy_percent: 100,
            maximum_percent: 200
        }
    );
    assert_eq!(service.health_check_grace_period_seconds, 0);
    assert_eq!(service.backend, crate::Backend::Local);
    assert!(service.load_balancers.is_empty() && service.scaling.is_none());
    assert_eq!(service.registry_name(), None);
}

#[test]
fn task_families() {
    let text = "task_definitions:
  - {family: web, command: sh}
  - {family: web, command: sh}
  - {family: 'we b', command: sh}
  - {family: '', command: sh}
";
    let error = assert_error(
        text,
        "task_definitions[1].family",
        "family `web` is already defined as task_definitions[0]",
    );
    assert_eq!((error.line, error.column), (3, 14));
    assert_error(text, "task_definitions[2].family", "contains ' '");
    assert_error(text, "task_definitions[3].family", "must not be empty");
    assert_error(
        &format!(
            "task_definitions: [{{family: {}, command: sh}}]",
            "f".repeat(256)
        ),
        "task_definitions[0].family",
        "is 256 characters long; at most 255",
    );
}

#[test]
fn task_commands() {
    assert_error(
        &task_with("    command: ''"),
        &format!("{TASK}.command"),
        "must not be empty",
    );
    assert_error(
        &task_with("    command: ./no-such-program"),
        &format!("{TASK}.command"),
        "cannot run ./no-such-program",
    );
    assert_error(
        &task_with("    command: /"),
        &format!("{TASK}.command"),
        "/ is not a file",
    );
    assert_error(
        &task_with("    command: sh\n    args: [\"a\\0b\"]"),
        &format!("{TASK}.args[0]"),
        "NUL",
    );
    let error = assert_error(
        &task_with("    command: sh\n    args: [-c, 8080]"),
        &format!("{TASK}.args[1]"),
        "quote it",
    );
    assert_eq!(error.line, 4);
}

#[cfg(unix)]
#[test]
fn command_paths_are_relative_to_the_config_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let script = dir.path().join("bin/serve");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let text = task_with("    command: bin/serve\n    working_dir: bin");
    let parse_in_dir = |text: &str| crate::parse(text, Path::new("test.yaml"), dir.path());
    let error = &parse_in_dir(&text).unwrap_err().0[0];
    assert_eq!(error.path, format!("{TASK}.command"));
    assert!(error.reason.contains("is not executable"), "{error}");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = parse_in_dir(&text).unwrap();
    let definition = &config.task_definitions[0];
    assert_eq!(Path::new(&definition.command), script);
    assert_eq!(definition.working_dir, Some(dir.path().join("bin")));
    // A bare name is left for PATH.
    let config = parse_in_dir(&task_with("    command: sh")).unwrap();
    assert_eq!(config.task_definitions[0].command, "sh");
    assert_error(
        &task_with("    command: sh\n    working_dir: no-such-directory"),
        &format!("{TASK}.working_dir"),
        "no-such-directory is not a directory",
    );
}

#[test]
fn task_environment() {
    let text = task_with(
        "    command: sh
    env:
      GOOD: value
      PORT: '80'
      SCALEGATE_TASK_ID: x
      ECS_CONTAINER_METADATA_URI_V4: x
      'A=B': x
      NUL: \"a\\0\"",
    );
    assert_error(&text, &format!("{TASK}.env.PORT"), "scalegate sets `PORT`");
    assert_error(
        &text,
        &format!("{TASK}.env.SCALEGATE_TASK_ID"),
        "scalegate sets `SCALEGATE_TASK_ID` in every task",
    );
    assert_error(
        &text,
        &format!("{TASK}.env.ECS_CONTAINER_METADATA_URI_V4"),
        "cannot be set here",
    );
    assert_error(
        &text,
        &format!("{TASK}.env.A=B"),
        "not an environment variable name",
    );
    assert_error(&text, &format!("{TASK}.env.NUL"), "NUL");
    assert_eq!(errors(&text).len(), 5);
    let error = assert_error(
        &task_with("    command: sh\n    env:\n      DEBUG: 1"),
        &format!("{TASK}.env.DEBUG"),
        "invalid type: integer `1`, expected a string; quote it",
    );
    assert_eq!((error.line, error.column), (5, 14));
}

#[test]
fn task_resources_ports_and_stop_timeout() {
    let text = task_with(
        "    command: sh\n    cpu: 64\n    memory: 5\n    port: 0\n    stop_timeout_seconds: 121",
    );
    assert_error(&text, &format!("{TASK}.cpu"), "must be 128–196608, not 64");
    assert_error(&text, &format!("{TASK}.memory"), "must be 6–1048576, not 5");
    assert_error(
        &text,
        &format!("{TASK}.port"),
        "must be `dynamic` or 1–65535, not 0",
    );
    assert_error(
        &text,
        &format!("{TASK}.stop_timeout_seconds"),
        "must be 2–120, not 121",
    );
    assert_error(
        &task_with("    command: sh\n    port: any"),
        &format!("{TASK}.port"),
        "expected `dynamic` or a port number 1–65535",
    );
    assert_error(
        &task_with("    command: sh\n    port: 70000"),
        &format!("{TASK}.port"),
        "expected `dynamic` or a port number",
    );
    for (written, port) in [
        ("dynamic", crate::TaskPort::Dynamic),
        ("8080", crate::TaskPort::Fixed(8080)),
        ("'8080'", crate::TaskPort::Fixed(8080)),
    ] {
        let config = parse(&task_with(&format!("    command: sh\n    port: {written}"))).unwrap();
        assert_eq!(config.task_definitions[0].port, port, "{written}");
    }
}

#[test]
fn task_port_round_trips_through_serde() {
    for port in [crate::TaskPort::Dynamic, crate::TaskPort::Fixed(9000)] {
        let json = serde_json::to_value(port).unwrap();
        assert_eq!(
            serde_json::from_value::<crate::TaskPort>(json).unwrap(),
            port
        );
    }
    assert_eq!(
        serde_json::to_value(crate::TaskPort::Dynamic).unwrap(),
        serde_json::json!("dynamic")
    );
}

#[test]
fn service_names_and_task_definition_references() {
    let text = format!(
        "{SERVICE_BASE}services:
  - {{name: svc, task_definition: app}}
  - {{name: svc, task_definition: app:2}}
  - {{name: 'a.b', task_definition: missing}}
"
    );
    let error = assert_error(
        &text,
        "services[1].name",
        "service `svc` is already defined as services[0]",
    );
    assert_eq!((error.line, error.column), (13, 12));
    assert_error(
        &text,
        "services[1].task_definition",
        "`app:2` names revision 2; name the family alone (`app`)",
    );
    assert_error(&text, "services[2].name", "contains '.'");
    assert_error(
        &text,
        "services[2].task_definition",
        "no task definition with family `missing` (known: `app`)",
    );
    assert_error(
        "services: [{name: svc, task_definition: app}]\n",
        "services[0].task_definition",
        "no task_definitions are defined",
    );
}

#[test]
fn desired_count_and_deployment_configuration() {
    let text = service_with(
        "    desired_count: 10001
    deployment_configuration: {minimum_healthy_percent: 101, maximum_percent: 99}
    health_check_grace_period_seconds: 2147483648",
    );
    assert_error(
        &text,
        &format!("{SERVICE}.desired_count"),
        "must be 0–10000, not 10001",
    );
    assert_error(
        &text,
        &format!("{SERVICE}.deployment_configuration.minimum_healthy_percent"),
        "must be 0–100, not 101",
    );
    assert_error(
        &text,
        &format!("{SERVICE}.deployment_configuration.maximum_percent"),
        "must be at least 100, not 99",
    );
    assert_error(
        &text,
        &format!("{SERVICE}.health_check_grace_period_seconds"),
        "must be 0–2147483647",
    );
    assert_error(
        &service_with("    deployment_configuration: {maximum_percent: 100}"),
        &format!("{SERVICE}.deployment_configuration.maximum_percent"),
        "no task could ever be replaced",
    );
    parse(&service_with(
        "    deployment_configuration: {minimum_healthy_percent: 50, maximum_percent: 100}",
    ))
    .unwrap();
}

#[test]
fn grace_period_needs_a_load_balancer() {
    assert_error(
        &service_with("    health_check_grace_period_seconds: 30"),
        &format!("{SERVICE}.health_check_grace_period_seconds"),
        "only used with `load_balancers`",
    );
    let config = parse(&service_with(
        "    health_check_grace_period_seconds: 30\n    load_balancers: [{target_group: web}]",
    ))
    .unwrap();
    assert_eq!(config.services[0].health_check_grace_period_seconds, 30);
}

#[test]
fn service_load_balancers() {
    let text = service_with(
        "    load_balancers:
      - target_group: web
      - target_group: nope
      - target_group: web",
    );
    assert_error(
        &text,
        &format!("{SERVICE}.load_balancers[1].target_group"),
        "no target group named `nope` (known: `web`, `api`)",
    );
    assert_error(
        &text,
        &format!("{SERVICE}.load_balancers[2].target_group"),
        "`web` is already listed as services[0].load_balancers[0]",
    );
    let six = "[{target_group: web}, {target_group: api}, {target_group: a}, {target_group: b}, \
               {target_group: c}, {target_group: d}]";
    assert_error(
        &service_with(&format!("    load_balancers: {six}")),
        &format!("{SERVICE}.load_balancers"),
        "6 target groups; at most 5",
    );
    assert_error(
        &service_with("    load_balancers: [{target_group: web, container_port: 80}]"),
        &format!("{SERVICE}.load_balancers[0].container_port"),
        "unknown field `container_port`",
    );
}

#[test]
fn only_the_local_backend_exists_yet() {
    assert_eq!(
        parse(&service_with("    backend: local")).unwrap().services[0].backend,
        crate::Backend::Local
    );
    let error = assert_error(
        &service_with("    backend: docker"),
        &format!("{SERVICE}.backend"),
        "the `docker` backend is not available yet",
    );
    assert!(error.reason.contains("backend: local"), "{error}");
    assert_error(
        &service_with("    backend: aws"),
        &format!("{SERVICE}.backend"),
        "the `aws` backend is not available yet",
    );
    assert_error(
        &service_with("    backend: Local"),
        &format!("{SERVICE}.backend"),
        "unknown variant `Local`, expected `local`",
    );
}

#[test]
fn service_registry_registration() {
    let config = parse(&service_with(
        "    service_registry: {namespace: Scalegate.Local.}",
    ))
    .unwrap();
    assert_eq!(
        config.services[0].registry_name(),
        Some(("Scalegate.Local.", "svc"))
    );
    let config = parse(&service_with(
        "    service_registry: {namespace: scalegate.local, service: api-v2}",
    ))
    .unwrap();
    assert_eq!(
        config.services[0].registry_name(),
        Some(("scalegate.local", "api-v2"))
    );
    assert_error(
        &service_with("    service_registry: {namespace: other.local}"),
        &format!("{SERVICE}.service_registry.namespace"),
        "no registry namespace `other.local` (known: `scalegate.local`)",
    );
    assert_error(
        &service_with("    service_registry: {namespace: x, service: 'a.b'}"),
        &format!("{SERVICE}.service_registry.service"),
        "`a.b` is not a registry service name",
    );
    let long_name = "s".repeat(63);
    let text = service_with("    service_registry: {namespace: scalegate.local}")
        .replace("name: svc", &format!("name: {long_name}"));
    assert_error(
        &text,
        &format!("{SERVICE}.service_registry"),
        "(the service's name, used when `service` is not set) is not a registry service name",
    );
    let label = "s".repeat(62);
    let long_zone = format!("{0}.{0}.local", "z".repeat(60));
    let text = format!(
        "registry:\n  namespaces: [{{name: {long_zone}}}]\n{}",
        service_with(&format!(
            "    service_registry: {{namespace: {long_zone}, service: {label}}}"
        ))
        .replace(
            "registry:\n  namespaces:\n    - name: scalegate.local\n",
            ""
        )
    );
    assert_error(
        &text,
        &format!("{SERVICE}.service_registry.service"),
        "makes the SRV name",
    );
    let without_registry = SERVICE_BASE.replace(
        "registry:\n  namespaces:\n    - name: scalegate.local\n",
        "",
    );
    assert_error(
        &format!(
            "{without_registry}services: [{{name: svc, task_definition: app, \
             service_registry: {{namespace: x}}}}]\n"
        ),
        &format!("{SERVICE}.service_registry.namespace"),
        "registry.namespaces is empty",
    );
}

/// [`service_with`], with `app` listening on fixed port 8080.
fn fixed_port_service_with(fields: &str) -> String {
    service_with(fields).replace("    command: sh\n", "    command: sh\n    port: 8080\n")
}

#[test]
fn a_fixed_port_runs_one_task_at_a_time() {
    let stop_first =
        "    deployment_configuration: {minimum_healthy_percent: 0, maximum_percent: 100}";
    parse(&fixed_port_service_with(stop_first)).unwrap();
    assert_error(
        &fixed_port_service_with(""),
        &format!("{SERVICE}.deployment_configuration.maximum_percent"),
        "is 200, which starts a replacement task before the old one stops",
    );
    assert_error(
        &fixed_port_service_with(&format!("{stop_first}\n    desired_count: 2")),
        &format!("{SERVICE}.desired_count"),
        "asks for 2 tasks, but task definition `app` listens on fixed port 8080",
    );
    let scaled = format!(
        "{stop_first}
    scaling:
      min_capacity: 1
      max_capacity: 3
      scheduled_actions:
        - {{name: peak, schedule: 'rate(1 day)', scalable_target_action: {{max_capacity: 4}}}}"
    );
    assert_error(
        &fixed_port_service_with(&scaled),
        &format!("{SERVICE}.scaling.max_capacity"),
        "lets scaling run 3 tasks",
    );
    assert_error(
        &fixed_port_service_with(&scaled),
        &format!("{SERVICE}.scaling.scheduled_actions[0].scalable_target_action"),
        "sets capacity bounds up to 4",
    );
    // A service that never runs a task cannot clash.
    parse(&fixed_port_service_with("    desired_count: 0")).unwrap();
}

#[test]
fn fixed_ports_must_be_free() {
    let stop_first = "deployment_configuration: {minimum_healthy_percent: 0, maximum_percent: 100}";
    let text = format!(
        "admin:\n  address: 127.0.0.1:9901
listeners:
  - name: web
    address: 0.0.0.0:8080
    default_action: {{fixed_response: {{status_code: 200}}}}
task_definitions:
  - {{family: on-listener, command: sh, port: 8080}}
  - {{family: on-admin, command: sh, port: 9901}}
  - {{family: free, command: sh, port: 7000}}
services:
  - {{name: a, task_definition: on-listener, {stop_first}}}
  - {{name: b, task_definition: on-admin, {stop_first}}}
  - {{name: c, task_definition: free, {stop_first}}}
  - {{name: d, task_definition: free, {stop_first}}}
"
    );
    assert_error(
        &text,
        "services[0].task_definition",
        "fixed port 8080, which listeners[0] (`web`) already uses",
    );
    assert_error(
        &text,
        "services[1].task_definition",
        "fixed port 9901, which the admin endpoint already uses",
    );
    assert_error(
        &text,
        "services[3].task_definition",
        "fixed port 7000, which services[2] (`c`) already uses",
    );
    assert_eq!(errors(&text).len(), 3);
}

#[test]
fn scaling_capacity_bounds() {
    let text = service_with("    scaling: {min_capacity: 5, max_capacity: 2}");
    let error = assert_error(
        &text,
        &format!("{SERVICE}.scaling.min_capacity"),
        "must not be more than max_capacity (2), not 5",
    );
    assert_eq!(error.line, 14);
    assert_error(
        &service_with("    scaling: {min_capacity: 0, max_capacity: 10001}"),
        &format!("{SERVICE}.scaling.max_capacity"),
        "must be 0–10000, not 10001",
    );
    assert_error(
        &service_with("    scaling: {max_capacity: 3}"),
        &format!("{SERVICE}.scaling"),
        "missing field `min_capacity`",
    );
    let config = parse(&service_with(
        "    scaling: {min_capacity: 0, max_capacity: 3}",
    ))
    .unwrap();
    let scaling = config.services[0].scaling.as_ref().unwrap();
    assert_eq!(scaling.profile, crate::TimingProfile::Fast);
    assert_eq!(scaling.suspended_state, crate::SuspendedState::default());
    assert_eq!(scaling.fast, crate::FastProfile::default());
}

#[test]
fn suspended_state_and_profiles_are_read() {
    let config = parse(&cpu_policy_with(
        "            profile: fast
      profile: aws
      suspended_state:
        dynamic_scaling_in_suspended: true
        scheduled_scaling_suspended: true
      fast: {stable_window_seconds: 120}",
    ))
    .unwrap();
    let scaling = config.services[0].scaling.as_ref().unwrap();
    assert_eq!(scaling.profile, crate::TimingProfile::Aws);
    assert!(scaling.suspended_state.dynamic_scaling_in_suspended);
    assert!(!scaling.suspended_state.dynamic_scaling_out_suspended);
    assert!(scaling.suspended_state.scheduled_scaling_suspended);
    assert_eq!(
        scaling.profile_of(&scaling.policies[0]),
        crate::TimingProfile::Fast
    );
    assert_eq!(scaling.fast.stable_window_seconds, 120);
}

#[test]
fn fast_profile_ranges() {
    let text = scaling_with(
        "      fast:
        stable_window_seconds: 5
        panic_window_seconds: 0
        panic_threshold_percent: 100
        scale_out_cooldown_seconds: 86401
        scale_in_cooldown_seconds: 86401",
    );
    let fast = format!("{SERVICE}.scaling.fast");
    assert_error(
        &text,
        &format!("{fast}.stable_window_seconds"),
        "must be 6–3600, not 5",
    );
    assert_error(
        &text,
        &format!("{fast}.panic_window_seconds"),
        "must be 1–3600, not 0",
    );
    assert_error(
        &text,
        &format!("{fast}.panic_threshold_percent"),
        "must be 110–1000, not 100",
    );
    assert_error(
        &text,
        &format!("{fast}.scale_out_cooldown_seconds"),
        "must be 0–86400",
    );
    assert_error(
        &text,
        &format!("{fast}.scale_in_cooldown_seconds"),
        "must be 0–86400",
    );
    assert_error(
        &scaling_with("      fast: {stable_window_seconds: 10, panic_window_seconds: 11}"),
        &format!("{fast}.panic_window_seconds"),
        "the panic window (11 s) must not be longer than the stable window (10 s)",
    );
}

#[test]
fn fast_settings_must_be_used() {
    assert_error(
        &cpu_policy_with("      profile: aws\n      fast: {stable_window_seconds: 30}"),
        &format!("{SERVICE}.scaling.fast"),
        "no policy of this service runs the fast profile",
    );
    // A policy that runs fast under an aws service uses them.
    parse(&cpu_policy_with(
        "            profile: fast\n      profile: aws\n      fast: {stable_window_seconds: 30}",
    ))
    .unwrap();
    assert_error(
        &cpu_policy_with("            profile: aws\n            fast: {panic_window_seconds: 3}"),
        &format!("{POLICY}.fast"),
        "this policy runs the aws profile",
    );
}

#[test]
fn fast_overrides_merge_and_are_checked() {
    let config = parse(&cpu_policy_with(
        "            fast: {stable_window_seconds: 30, scale_in_cooldown_seconds: 5}
      fast: {panic_window_seconds: 3, scale_out_cooldown_seconds: 1}",
    ))
    .unwrap();
    let scaling = config.services[0].scaling.as_ref().unwrap();
    let crate::ScalingPolicy::TargetTracking(policy) = &scaling.policies[0] else {
        panic!("a target-tracking policy");
    };
    assert_eq!(
        scaling.fast_profile_of(policy),
        crate::FastProfile {
            stable_window_seconds: 30,
            panic_window_seconds: 3,
            panic_threshold_percent: 200,
            scale_out_cooldown_seconds: 1,
            scale_in_cooldown_seconds: 5,
        }
    );
    assert_eq!(scaling.scale_out_cooldown_seconds(policy), 1);
    assert_eq!(scaling.scale_in_cooldown_seconds(policy), 5);
    let text = cpu_policy_with(
        "            fast: {panic_threshold_percent: 1001, scale_out_cooldown_seconds: 90000}",
    );
    assert_error(
        &text,
        &format!("{POLICY}.fast.panic_threshold_percent"),
        "must be 110–1000, not 1001",
    );
    assert_error(
        &text,
        &format!("{POLICY}.fast.scale_out_cooldown_seconds"),
        "must be 0–86400",
    );
    // The service's panic window (10 s) does not fit in the policy's stable window.
    assert_error(
        &cpu_policy_with(
            "            fast: {stable_window_seconds: 8}\n      fast: {panic_window_seconds: 10}",
        ),
        &format!("{POLICY}.fast.stable_window_seconds"),
        "the panic window (10 s) must not be longer than the stable window (8 s)",
    );
}

#[test]
fn cooldowns_default_by_profile() {
    let config = parse(&policies_with(
        "        - target_tracking:
            name: fast-one
            target_value: 50
            predefined_metric_specification: {predefined_metric_type: ECSServiceAverageCPUUtilization}
        - target_tracking:
            name: aws-one
            profile: aws
            target_value: 50
            predefined_metric_specification: {predefined_metric_type: ECSServiceAverageMemoryUtilization}
        - target_tracking:
            name: own
            profile: aws
            target_value: 50
            scale_out_cooldown_seconds: 7
            scale_in_cooldown_seconds: 8
            predefined_metric_specification: {predefined_metric_type: ALBRequestCountPerTarget}
        - step_scaling:
            name: step-fast
            adjustment_type: ExactCapacity
            step_adjustments: [{metric_interval_lower_bound: 0, scaling_adjustment: 5}]
            alarm: {threshold: 1, comparison_operator: GreaterThanThreshold, predefined_metric_specification: {predefined_metric_type: ECSServiceAverageCPUUtilization}}
        - step_scaling:
            name: step-aws
            profile: aws
            adjustment_type: ExactCapacity
            step_adjustments: [{metric_interval_lower_bound: 0, scaling_adjustment: 5}]
            alarm: {threshold: 1, comparison_operator: GreaterThanThreshold, predefined_metric_specification: {predefined_metric_type: ECSServiceAverageCPUUtilization}}",
    ))
    .unwrap();
    let scaling = config.services[0].scaling.as_ref().unwrap();
    let cooldowns: Vec<(u64, u64)> = scaling
        .policies
        .iter()
        .map(|policy| match policy {
            crate::ScalingPolicy::TargetTracking(policy) => (
                scaling.scale_out_cooldown_seconds(policy),
                scaling.scale_in_cooldown_seconds(policy),
            ),
            crate::ScalingPolicy::StepScaling(policy) => {
                let cooldown = scaling.step_cooldown_seconds(policy);
                (cooldown, cooldown)
            }
        })
        .collect();
    assert_eq!(
        cooldowns,
        [(10, 30), (300, 300), (7, 8), (30, 30), (300, 300)]
    );
}

#[test]
fn a_policy_is_exactly_one_kind() {
    assert_error(
        &policies_with("        - {target_tracking: {}, step_scaling: {}}"),
        "services[0].scaling.policies[0]",
        "a policy is exactly one of `target_tracking` or `step_scaling`",
    );
    assert_error(
        &policies_with("        - predictive_scaling: {}"),
        "services[0].scaling.policies[0]",
        "unknown variant `predictive_scaling`",
    );
}

#[test]
fn policy_names() {
    let cpu = format!("target_value: 50, {CPU_METRIC}");
    let memory = "target_value: 50, predefined_metric_specification: {predefined_metric_type: ECSServiceAverageMemoryUtilization}";
    let text = policies_with(&format!(
        "        - target_tracking: {{name: cpu, {cpu}}}
        - target_tracking: {{name: cpu, {memory}}}
        - target_tracking: {{name: \"tab\\there\", {memory}}}"
    ));
    assert_error(
        &text,
        "services[0].scaling.policies[1].target_tracking.name",
        "policy `cpu` is already defined as services[0].scaling.policies[0]",
    );
    assert_error(
        &text,
        "services[0].scaling.policies[2].target_tracking.name",
        "contains '\\t'",
    );
    let many: String = (0..51)
        .map(|index| format!("        - target_tracking: {{name: p{index}, {cpu}}}\n"))
        .collect();
    assert_error(
        &policies_with(&many),
        "services[0].scaling.policies",
        "51 policies; at most 50",
    );
}

#[test]
fn target_values() {
    for (value, reason) in [
        ("0", "must be greater than 0, not 0"),
        ("-5", "must be greater than 0, not -5"),
        ("1e109", "must be at most 1.174271e108 (AWS's bound)"),
    ] {
        assert_error(
            &target_tracking_with(&format!(
                "            target_value: {value}\n            {CPU_METRIC}"
            )),
            &format!("{POLICY}.target_value"),
            reason,
        );
    }
    assert_error(
        &target_tracking_with(&format!(
            "            target_value: high\n            {CPU_METRIC}"
        )),
        &format!("{POLICY}.target_value"),
        "invalid type: string \"high\", expected a number",
    );
    assert_error(
        &steps_with("              - {metric_interval_lower_bound: 0, scaling_adjustment: 1.5}"),
        &format!("{STEP}.step_adjustments[0].scaling_adjustment"),
        "expected a whole number",
    );
    let config = parse(&target_tracking_with(&format!(
        "            target_value: 0.5\n            {CPU_METRIC}\n            disable_scale_in: true"
    )))
    .unwrap();
    let crate::ScalingPolicy::TargetTracking(policy) =
        &config.services[0].scaling.as_ref().unwrap().policies[0]
    else {
        panic!("a target-tracking policy");
    };
    assert_eq!(policy.target_value, 0.5);
    assert!(policy.disable_scale_in);
    assert_error(
        &cpu_policy_with("            scale_in_cooldown_seconds: 86401"),
        &format!("{POLICY}.scale_in_cooldown_seconds"),
        "must be 0–86400, not 86401",
    );
}

#[test]
fn a_policy_has_exactly_one_metric() {
    assert_error(
        &target_tracking_with("            target_value: 50"),
        POLICY,
        "needs a metric: `predefined_metric_specification`",
    );
    assert_error(
        &cpu_policy_with(
            "            customized_metric_specification: {promql: {server_url: 'http://127.0.0.1:9090', query: up}}",
        ),
        POLICY,
        "set either `predefined_metric_specification` or `customized_metric_specification`, not both",
    );
    assert_error(
        &target_tracking_with(
            "            target_value: 50\n            predefined_metric_specification: {predefined_metric_type: ECSServiceAverageCPUUtilizationHighResolution}",
        ),
        &format!("{POLICY}.predefined_metric_specification.predefined_metric_type"),
        "unknown variant `ECSServiceAverageCPUUtilizationHighResolution`",
    );
}

/// A target-tracking policy on `ALBRequestCountPerTarget` with `label` as its resource label
/// (none when empty), in a service attached to `groups` (flow list items).
fn request_count_policy(label: &str, groups: &str) -> String {
    let label = if label.is_empty() {
        String::new()
    } else {
        format!(", resource_label: {label}")
    };
    target_tracking_with(&format!(
        "            target_value: 100
            predefined_metric_specification: {{predefined_metric_type: ALBRequestCountPerTarget{label}}}"
    ))
    .replace(
        "load_balancers: [{target_group: web}]",
        &format!("load_balancers: [{groups}]"),
    )
}

#[test]
fn request_count_targets_the_services_own_group() {
    let metric = format!("{POLICY}.predefined_metric_specification");
    let one = "{target_group: web}";
    let two = "{target_group: web}, {target_group: api}";
    let target_group = |text: &str| {
        let config = parse(text).unwrap();
        let service = &config.services[0];
        let crate::ScalingPolicy::TargetTracking(policy) =
            &service.scaling.as_ref().unwrap().policies[0]
        else {
            panic!("a target-tracking policy");
        };
        let specification = policy.predefined_metric_specification.as_ref().unwrap();
        specification.target_group(service).map(str::to_string)
    };
    assert_eq!(
        target_group(&request_count_policy("", one)).as_deref(),
        Some("web")
    );
    assert_eq!(
        target_group(&request_count_policy("api", two)).as_deref(),
        Some("api")
    );
    assert_eq!(
        target_group(&request_count_policy(
            "app/shop/50dc6c495c0c9188/targetgroup/api/73e2d6bc24d8a067",
            two
        ))
        .as_deref(),
        Some("api")
    );
    assert_error(
        &request_count_policy("", two),
        &metric,
        "name the target group whose requests are counted in `resource_label`: the service is in `web`, `api`",
    );
    assert_error(
        &request_count_policy("", ""),
        &metric,
        "this service has no load_balancers",
    );
    assert_error(
        &request_count_policy("api", one),
        &format!("{metric}.resource_label"),
        "target group `api` is not one of this service's load_balancers (the service's are `web`)",
    );
    assert_error(
        &request_count_policy("nope", one),
        &format!("{metric}.resource_label"),
        "no target group named `nope`",
    );
    assert_error(
        &cpu_policy_with("").replace(
            "ECSServiceAverageCPUUtilization}",
            "ECSServiceAverageCPUUtilization, resource_label: web}",
        ),
        &format!("{metric}.resource_label"),
        "only for ALBRequestCountPerTarget (as on AWS)",
    );
}

#[test]
fn target_tracking_policies_watch_different_metrics() {
    let text = policies_with(&format!(
        "        - target_tracking: {{name: a, target_value: 50, {CPU_METRIC}}}
        - target_tracking: {{name: b, target_value: 70, {CPU_METRIC}}}
        - target_tracking: {{name: c, target_value: 9, customized_metric_specification: {{promql: {{server_url: 'http://127.0.0.1:9090', query: up}}}}}}
        - target_tracking: {{name: d, target_value: 9, customized_metric_specification: {{promql: {{server_url: 'http://127.0.0.1:9090', query: up}}}}}}
        - target_tracking: {{name: e, target_value: 9, customized_metric_specification: {{promql: {{server_url: 'http://127.0.0.1:9090', query: down}}}}}}"
    ));
    assert_error(
        &text,
        "services[0].scaling.policies[1].target_tracking",
        "watches the same metric as services[0].scaling.policies[0]",
    );
    assert_error(
        &text,
        "services[0].scaling.policies[3].target_tracking",
        "watches the same metric as services[0].scaling.policies[2]",
    );
    assert_eq!(errors(&text).len(), 2);
}

#[test]
fn customized_metrics() {
    let custom = |specification: &str| {
        target_tracking_with(&format!(
            "            target_value: 10\n            customized_metric_specification: {specification}"
        ))
    };
    let config = parse(&custom(
        "{scrape: {url: 'http://127.0.0.1:9100/metrics', metric_name: 'job:queue_depth', labels: {queue: jobs}}}",
    ))
    .unwrap();
    let crate::ScalingPolicy::TargetTracking(policy) =
        &config.services[0].scaling.as_ref().unwrap().policies[0]
    else {
        panic!("a target-tracking policy");
    };
    let Some(crate::CustomizedMetricSpecification::Scrape(scraped)) =
        &policy.customized_metric_specification
    else {
        panic!("a scraped metric");
    };
    assert_eq!(scraped.labels["queue"], "jobs");
    let path = format!("{POLICY}.customized_metric_specification");
    let text = custom(
        "{scrape: {url: 'ftp://host/metrics', metric_name: 1up, labels: {__name__: x, 'a-b': y}}}",
    );
    assert_error(
        &text,
        &format!("{path}.scrape.url"),
        "`ftp://host/metrics` is not an `http://` or `https://` URL",
    );
    assert_error(
        &text,
        &format!("{path}.scrape.metric_name"),
        "`1up` is not a Prometheus metric name",
    );
    assert_error(
        &text,
        &format!("{path}.scrape.labels.__name__"),
        "not starting with a digit or `__`",
    );
    assert_error(
        &text,
        &format!("{path}.scrape.labels.a-b"),
        "not a Prometheus label name",
    );
    let text = custom("{promql: {server_url: 'http:///api', query: ' '}}");
    assert_error(&text, &format!("{path}.promql.server_url"), "has no host");
    assert_error(&text, &format!("{path}.promql.query"), "must not be empty");
    assert_error(
        &custom("{promql: {server_url: 'http://a b', query: up}}"),
        &format!("{path}.promql.server_url"),
        "contains ' '",
    );
    assert_error(
        &custom("{scrape: {url: 'http://a', metric_name: b}, promql: {server_url: 'http://a', query: up}}"),
        &path,
        "a customized metric is exactly one of `scrape`",
    );
}

#[test]
fn aws_worked_step_example_is_valid() {
    // Threshold 50: out steps 0–10 +0 %, 10–20 +10 %, 20–∞ +30 %; in steps −10–0 0,
    // −20–−10 −10 %, −∞–−20 −30 % (autoscaling-semantics.md §1.3).
    let text = step_with(
        "            adjustment_type: PercentChangeInCapacity
            min_adjustment_magnitude: 2
            cooldown_seconds: 60
            metric_aggregation_type: Maximum
            step_adjustments:
              - {metric_interval_lower_bound: 0, metric_interval_upper_bound: 10, scaling_adjustment: 0}
              - {metric_interval_lower_bound: 10, metric_interval_upper_bound: 20, scaling_adjustment: 10}
              - {metric_interval_lower_bound: 20, scaling_adjustment: 30}
              - {metric_interval_lower_bound: -10, metric_interval_upper_bound: 0, scaling_adjustment: 0}
              - {metric_interval_lower_bound: -20, metric_interval_upper_bound: -10, scaling_adjustment: -10}
              - {metric_interval_upper_bound: -20, scaling_adjustment: -30}
            alarm:
              customized_metric_specification: {scrape: {url: 'http://127.0.0.1:9100/metrics', metric_name: load}}
              statistic: SampleCount
              period_seconds: 10
              threshold: 50
              comparison_operator: GreaterThanThreshold
              evaluation_periods: 5
              datapoints_to_alarm: 3",
    );
    let config = parse(&text).unwrap();
    let scaling = config.services[0].scaling.as_ref().unwrap();
    let crate::ScalingPolicy::StepScaling(policy) = &scaling.policies[0] else {
        panic!("a step policy");
    };
    assert_eq!(policy.step_adjustments.len(), 6);
    assert_eq!(policy.step_adjustments[5].metric_interval_lower_bound, None);
    assert_eq!(
        policy.metric_aggregation_type,
        crate::MetricAggregationType::Maximum
    );
    assert_eq!(scaling.step_cooldown_seconds(policy), 60);
    assert_eq!(policy.alarm.statistic, crate::Statistic::SampleCount);
    assert_eq!(policy.alarm.effective_datapoints_to_alarm(), 3);
    // Alarm defaults: Average over one 60 s period.
    let config = parse(&steps_with(
        "              - {metric_interval_lower_bound: 0, scaling_adjustment: 1}",
    ))
    .unwrap();
    let crate::ScalingPolicy::StepScaling(policy) =
        &config.services[0].scaling.as_ref().unwrap().policies[0]
    else {
        panic!("a step policy");
    };
    assert_eq!(policy.alarm.statistic, crate::Statistic::Average);
    assert_eq!(policy.alarm.period_seconds, 60);
    assert_eq!(policy.alarm.effective_datapoints_to_alarm(), 1);
    assert_eq!(
        policy.metric_aggregation_type,
        crate::MetricAggregationType::Average
    );
}

#[test]
fn step_bounds_are_well_formed() {
    let steps = format!("{STEP}.step_adjustments");
    let text = steps_with(
        "              - {scaling_adjustment: 1}
              - {metric_interval_lower_bound: 5, metric_interval_upper_bound: 5, scaling_adjustment: 1}",
    );
    assert_error(
        &text,
        &format!("{steps}[0]"),
        "needs metric_interval_lower_bound, metric_interval_upper_bound or both",
    );
    assert_error(
        &text,
        &format!("{steps}[1].metric_interval_upper_bound"),
        "must be greater than metric_interval_lower_bound (5), not 5",
    );
    let text = steps_with(
        "              - {metric_interval_upper_bound: 0, scaling_adjustment: -1}
              - {metric_interval_upper_bound: -5, scaling_adjustment: -2}
              - {metric_interval_lower_bound: 0, scaling_adjustment: 1}
              - {metric_interval_lower_bound: 5, scaling_adjustment: 2}",
    );
    assert_error(
        &text,
        &format!("{steps}[1]"),
        "only one step may leave metric_interval_lower_bound unset (−∞), and services[0].scaling.policies[0].step_scaling.step_adjustments[0] does already",
    );
    assert_error(
        &text,
        &format!("{steps}[3]"),
        "only one step may leave metric_interval_upper_bound unset (+∞)",
    );
    assert_error(
        &steps_with(""),
        &steps,
        "invalid type: null, expected a sequence",
    );
    assert_error(
        &step_with(
            "            adjustment_type: ChangeInCapacity\n            step_adjustments: []",
        ),
        &steps,
        "needs at least one step",
    );
    let many: String = (0..21)
        .map(|index| {
            format!(
                "              - {{metric_interval_lower_bound: {index}, metric_interval_upper_bound: {}, scaling_adjustment: 1}}\n",
                index + 1
            )
        })
        .collect();
    assert_error(&steps_with(&many), &steps, "21 steps; at most 20");
}

#[test]
fn steps_cover_their_range_without_gaps_or_overlaps() {
    let steps = format!("{STEP}.step_adjustments");
    assert_error(
        &steps_with(
            "              - {metric_interval_lower_bound: 10, scaling_adjustment: 2}
              - {metric_interval_lower_bound: 0, metric_interval_upper_bound: 5, scaling_adjustment: 1}",
        ),
        &format!("{steps}[0].metric_interval_lower_bound"),
        "leaves a gap after services[0].scaling.policies[0].step_scaling.step_adjustments[1], which ends at 5",
    );
    assert_error(
        &steps_with(
            "              - {metric_interval_lower_bound: 0, metric_interval_upper_bound: 10, scaling_adjustment: 1}
              - {metric_interval_lower_bound: 5, scaling_adjustment: 2}",
        ),
        &format!("{steps}[1].metric_interval_lower_bound"),
        "overlaps services[0].scaling.policies[0].step_scaling.step_adjustments[0], which ends at 10",
    );
    assert_error(
        &steps_with(
            "              - {metric_interval_lower_bound: -10, metric_interval_upper_bound: 0, scaling_adjustment: -1}",
        ),
        &format!("{steps}[0].metric_interval_lower_bound"),
        "is negative (-10), so, as AWS requires, the lowest step must have no lower bound",
    );
    assert_error(
        &steps_with(
            "              - {metric_interval_lower_bound: 0, metric_interval_upper_bound: 10, scaling_adjustment: 1}",
        ),
        &format!("{steps}[0].metric_interval_upper_bound"),
        "is positive (10), so, as AWS requires, the highest step must have no upper bound",
    );
    // A scale-in policy: everything below the threshold, in two steps.
    parse(&steps_with(
        "              - {metric_interval_upper_bound: -10, scaling_adjustment: -2}
              - {metric_interval_lower_bound: -10, metric_interval_upper_bound: 0, scaling_adjustment: -1}",
    ))
    .unwrap();
}

#[test]
fn adjustment_types_and_magnitudes() {
    let text = step_with(
        "            adjustment_type: ExactCapacity
            min_adjustment_magnitude: 2
            cooldown_seconds: 86401
            step_adjustments: [{metric_interval_lower_bound: 0, scaling_adjustment: -1}]",
    );
    assert_error(
        &text,
        &format!("{STEP}.step_adjustments[0].scaling_adjustment"),
        "is a capacity with `ExactCapacity`, so it must not be negative, not -1",
    );
    assert_error(
        &text,
        &format!("{STEP}.min_adjustment_magnitude"),
        "only for `adjustment_type: PercentChangeInCapacity`",
    );
    assert_error(
        &text,
        &format!("{STEP}.cooldown_seconds"),
        "must be 0–86400, not 86401",
    );
    assert_error(
        &step_with(
            "            adjustment_type: PercentChangeInCapacity
            min_adjustment_magnitude: 0
            step_adjustments: [{metric_interval_lower_bound: 0, scaling_adjustment: 50}]",
        ),
        &format!("{STEP}.min_adjustment_magnitude"),
        "must be at least 1, not 0",
    );
    assert_error(
        &step_with(
            "            adjustment_type: Percent\n            step_adjustments: [{metric_interval_lower_bound: 0, scaling_adjustment: 50}]",
        ),
        &format!("{STEP}.adjustment_type"),
        "unknown variant `Percent`, expected one of `ChangeInCapacity`",
    );
}

/// A step policy whose alarm has `fields` (indented 14) besides a CPU metric and threshold.
fn alarm_with(fields: &str) -> String {
    step_with(&format!(
        "            adjustment_type: ChangeInCapacity
            step_adjustments: [{{metric_interval_lower_bound: 0, scaling_adjustment: 1}}]
            alarm:
              predefined_metric_specification: {{predefined_metric_type: ECSServiceAverageCPUUtilization}}
              threshold: 80
{fields}"
    ))
}

#[test]
fn alarms() {
    let alarm = format!("{STEP}.alarm");
    assert_error(
        &alarm_with(""),
        &alarm,
        "missing field `comparison_operator`",
    );
    let text = alarm_with(
        "              comparison_operator: GreaterThanThreshold
              evaluation_periods: 0
              datapoints_to_alarm: 2",
    );
    assert_error(
        &text,
        &format!("{alarm}.evaluation_periods"),
        "must be at least 1, not 0",
    );
    assert_error(
        &text,
        &format!("{alarm}.datapoints_to_alarm"),
        "must be 1–0 (evaluation_periods), not 2",
    );
    assert_error(
        &alarm_with(
            "              comparison_operator: LessThanThreshold\n              evaluation_periods: 3\n              datapoints_to_alarm: 4",
        ),
        &format!("{alarm}.datapoints_to_alarm"),
        "must be 1–3 (evaluation_periods), not 4",
    );
    assert_error(
        &alarm_with("              comparison_operator: LessThanLowerThreshold"),
        &format!("{alarm}.comparison_operator"),
        "unknown variant `LessThanLowerThreshold`",
    );
    assert_error(
        &alarm_with(
            "              comparison_operator: GreaterThanThreshold\n              evaluation_periods: 1441",
        ),
        &format!("{alarm}.evaluation_periods"),
        "1441 periods of 60 s span 86460 s; an alarm looks back at most 86400 s",
    );
    parse(&alarm_with(
        "              comparison_operator: GreaterThanThreshold\n              period_seconds: 3600\n              evaluation_periods: 168",
    ))
    .unwrap();
    assert_error(
        &step_with("            alarm: {threshold: 1, comparison_operator: GreaterThanThreshold}\n            adjustment_type: ChangeInCapacity\n            step_adjustments: [{metric_interval_lower_bound: 0, scaling_adjustment: 1}]"),
        &alarm,
        "needs a metric",
    );
}

#[test]
fn alarm_periods_follow_the_profile() {
    let period = format!("{STEP}.alarm.period_seconds");
    let with_period = |seconds: u64, profile: &str| {
        alarm_with(&format!(
            "              comparison_operator: GreaterThanThreshold\n              period_seconds: {seconds}"
        ))
        .replace("            alarm:\n", &format!("            profile: {profile}\n            alarm:\n"))
    };
    for seconds in [10, 20, 30, 60, 120] {
        parse(&with_period(seconds, "aws")).unwrap();
    }
    for seconds in [0, 1, 45, 90] {
        assert_error(
            &with_period(seconds, "aws"),
            &period,
            "must be 10, 20, 30 or a multiple of 60 under the aws profile",
        );
    }
    parse(&with_period(1, "fast")).unwrap();
    parse(&with_period(45, "fast")).unwrap();
    assert_error(&with_period(0, "fast"), &period, "must be 1–86400, not 0");
}

#[test]
fn schedule_expressions() {
    use super::schedule::check_schedule;
    for valid in [
        "at(2026-06-01T08:00:00)",
        "at(2028-02-29T23:59:59)",
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(2 hours)",
        "rate(1 day)",
        "cron(0 8 ? * MON-FRI *)",
        "cron(0/15 * * * ? *)",
        "cron(0 18 L * ? *)",
        "cron(0 18 LW * ? *)",
        "cron(0 0 15W * ? 2026)",
        "cron(0 9 ? * 6#3 *)",
        "cron(0 10 ? * 2L *)",
        "cron(0 10 ? * L *)",
        "cron(30 8 1,15 JAN-MAR ? 2026-2030)",
        "cron(*/5 9-17 ? * mon,wed,fri *)",
        "cron(0   8  ? * * *)",
    ] {
        assert_eq!(check_schedule(valid), Ok(()), "{valid}");
    }
    for (invalid, reason) in [
        (
            "every 5 minutes",
            "is not a schedule expression; write `at(yyyy-mm-ddThh:mm:ss)`",
        ),
        ("once(2026)", "`once(...)` is not a schedule expression"),
        (
            "at(2026-02-30T08:00:00)",
            "2026-02-30T08:00:00 is not a date and time",
        ),
        ("at(2026-06-01T25:00:00)", "is not a date and time"),
        (
            "at(2026-06-01 08:00:00)",
            "an `at` expression is `at(yyyy-mm-ddThh:mm:ss)`",
        ),
        ("at(2026-06-01T08:00:00Z)", "no offset"),
        (
            "rate(0 minutes)",
            "the rate's value `0` is not a positive whole number",
        ),
        ("rate(1.5 hours)", "`1.5` is not a positive whole number"),
        ("rate(5 weeks)", "the rate's unit `weeks` is not minute"),
        ("rate(5)", "a `rate` expression is `rate(value unit)`"),
        ("cron(0 8 * * ?)", "has 6 fields"),
        ("cron(0 8 * * ? * *)", "not 7"),
        (
            "cron(60 8 ? * * *)",
            "minutes field `60`: 60 is outside 0–59",
        ),
        ("cron(0 24 ? * * *)", "hours field `24`: 24 is outside 0–23"),
        (
            "cron(0 8 0 * ? *)",
            "day-of-month field `0`: 0 is outside 1–31",
        ),
        (
            "cron(0 8 ? 13 * *)",
            "month field `13`: 13 is outside 1–12 or JAN–DEC",
        ),
        (
            "cron(0 8 ? FOO * *)",
            "month field `FOO`: `FOO` is not a value (1–12 or JAN–DEC)",
        ),
        (
            "cron(0 8 ? * 8 *)",
            "day-of-week field `8`: 8 is outside 1–7 or SUN–SAT",
        ),
        (
            "cron(0 8 ? * * 1969)",
            "year field `1969`: 1969 is outside 1970–2199",
        ),
        (
            "cron(0 8 * * * *)",
            "exactly one of day-of-month and day-of-week must be `?`",
        ),
        (
            "cron(0 8 ? * ? *)",
            "exactly one of day-of-month and day-of-week must be `?`",
        ),
        (
            "cron(? 8 1 * ? *)",
            "minutes field `?`: `?` is only for day-of-month and day-of-week",
        ),
        (
            "cron(0/0 8 ? * * *)",
            "the step after `/` must be a positive whole number",
        ),
        ("cron(0 8 ? * 2#6 *)", "the week after `#` must be 1–5"),
        ("cron(0 8 1,,2 * ? *)", "has an empty item"),
        ("cron(0 8 ? * 3W *)", "`3W` is not a value"),
        ("cron(0 8 L# * ? *)", "`L#` is not a value"),
        // Years do not wrap around (the engine and Quartz refuse this too).
        (
            "cron(0 8 1 * ? 2030-2020)",
            "a range of years must run upwards",
        ),
    ] {
        let error = check_schedule(invalid).unwrap_err();
        assert!(
            error.contains(reason),
            "`{invalid}`: expected `{reason}` in `{error}`"
        );
    }
}

#[test]
fn scheduled_actions() {
    let config = parse(&scheduled_with(
        "          schedule: \"cron(0 8 ? * MON-FRI *)\"
          timezone: Europe/Berlin
          start_time: 2026-01-01T00:00:00Z
          end_time: \"2026-12-31T23:00:00+01:00\"
          scalable_target_action: {min_capacity: 2, max_capacity: 8}",
    ))
    .unwrap();
    let action = &config.services[0]
        .scaling
        .as_ref()
        .unwrap()
        .scheduled_actions[0];
    assert_eq!(action.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(action.scalable_target_action.max_capacity, Some(8));
    let error = assert_error(
        &scheduled_with(
            "          schedule: \"cron(0 8 ? * MON-FRY *)\"\n          scalable_target_action: {min_capacity: 2}",
        ),
        &format!("{ACTION}.schedule"),
        "`cron(0 8 ? * MON-FRY *)`: day-of-week field `MON-FRY`: `FRY` is not a value",
    );
    assert_eq!((error.line, error.column), (20, 21));
    let text = scheduled_with(
        "          schedule: rate(1 hour)
          timezone: europe/berlin
          start_time: 2026-01-01T00:00:00
          end_time: 2025-01-01T00:00:00Z
          scalable_target_action: {}",
    );
    assert_error(
        &text,
        &format!("{ACTION}.timezone"),
        "write the time zone as the database spells it: `Europe/Berlin`",
    );
    assert_error(
        &text,
        &format!("{ACTION}.start_time"),
        "`2026-01-01T00:00:00` is not an RFC 3339 timestamp",
    );
    assert_error(
        &text,
        &format!("{ACTION}.scalable_target_action"),
        "set min_capacity, max_capacity or both",
    );
    assert_error(
        &scheduled_with(
            "          schedule: rate(1 hour)
          timezone: Mars/Olympus_Mons
          start_time: 2026-01-01T00:00:00Z
          end_time: 2026-01-01T00:00:00Z
          scalable_target_action: {min_capacity: 9, max_capacity: 10001}",
        ),
        &format!("{ACTION}.timezone"),
        "`Mars/Olympus_Mons` is not an IANA time zone name",
    );
    let text = scheduled_with(
        "          schedule: rate(1 hour)
          start_time: 2026-01-01T00:00:00Z
          end_time: 2026-01-01T00:00:00Z
          scalable_target_action: {min_capacity: 10001, max_capacity: 9}",
    );
    assert_error(
        &text,
        &format!("{ACTION}.end_time"),
        "must be later than start_time (2026-01-01T00:00:00Z), not 2026-01-01T00:00:00Z",
    );
    assert_error(
        &text,
        &format!("{ACTION}.scalable_target_action.min_capacity"),
        "must be 0–10000, not 10001",
    );
    assert_error(
        &text,
        &format!("{ACTION}.scalable_target_action.min_capacity"),
        "must not be more than max_capacity (9), not 10001",
    );
    for zone in [
        "UTC",
        "Etc/GMT+9",
        "Pacific/Tahiti",
        "America/Argentina/Buenos_Aires",
    ] {
        parse(&scheduled_with(&format!(
            "          schedule: rate(1 hour)\n          timezone: {zone}\n          scalable_target_action: {{max_capacity: 5}}"
        )))
        .unwrap();
    }
}

#[test]
fn scheduled_action_names() {
    let action = |name: &str| {
        format!("        - {{name: {name}, schedule: 'rate(1 day)', scalable_target_action: {{min_capacity: 1}}}}\n")
    };
    let text = scaling_with(&format!(
        "      scheduled_actions:\n{}{}{}{}",
        action("night"),
        action("night"),
        action("'a:b'"),
        action("' lead'"),
    ));
    let actions = "services[0].scaling.scheduled_actions";
    assert_error(
        &text,
        &format!("{actions}[1].name"),
        "scheduled action `night` is already defined as services[0].scaling.scheduled_actions[0]",
    );
    assert_error(&text, &format!("{actions}[2].name"), "contains ':'");
    assert_error(
        &text,
        &format!("{actions}[3].name"),
        "must not start with a space",
    );
    let many: String = (0..201).map(|index| action(&format!("a{index}"))).collect();
    assert_error(
        &scaling_with(&format!("      scheduled_actions:\n{many}")),
        actions,
        "201 scheduled actions; at most 200",
    );
}

#[test]
fn every_service_error_is_reported() {
    let text = format!(
        "{SERVICE_BASE}services:
  - name: svc
    task_definition: app
    desired_count: 20000
    load_balancers: [{{target_group: nope}}]
    scaling:
      min_capacity: 3
      max_capacity: 2
      policies:
        - target_tracking: {{name: cpu, target_value: 0, {CPU_METRIC}}}
      scheduled_actions:
        - {{name: x, schedule: 'rate(0 days)', scalable_target_action: {{}}}}
"
    );
    let all = errors(&text);
    let paths: Vec<&str> = all.iter().map(|error| error.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "services[0].desired_count",
            "services[0].load_balancers[0].target_group",
            "services[0].scaling.min_capacity",
            "services[0].scaling.policies[0].target_tracking.target_value",
            "services[0].scaling.scheduled_actions[0].schedule",
            "services[0].scaling.scheduled_actions[0].scalable_target_action",
        ],
        "{}",
        ConfigErrors(all.clone())
    );
}
