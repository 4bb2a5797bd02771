//! Deserialization with field paths, and semantic validation against ALB's rules.
//!
//! Validation never stops at the first problem: every check runs and every error is reported
//! with the position of the offending value, so a user fixes a file in one pass. Limits are
//! ALB's, and Cloud Map's for the registry (see `shared/reference/alb-ecs-semantics.md` §1–2
//! and §7).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::Path;

use crate::certificate::{load_certificate_files, CertificateProblem};
use crate::cloud_map;
use crate::yaml::{parse_document, Document, Position, PositionIndex};
use crate::{
    parse_code_matcher, target_group_of_resource_label, Action, AddressFamily, AdjustmentType,
    Admin, CertificateFiles, Condition, Config, ConfigError, ConfigErrors,
    CustomizedMetricSpecification, FastProfile, FastProfileOverride, FixedResponseAction,
    ForwardAction, HealthCheck, HealthCheckPort, Listener, LoadBalancingAlgorithm, MetricAlarm,
    PassiveHealth, PredefinedMetricSpecification, PredefinedMetricType, Protocol, ProtocolVersion,
    RedirectAction, RegistryInstance, RegistryNamespace, RegistryService, Rule, ScalingPolicy,
    ScheduledAction, Service, ServiceRegistry, ServiceScaling, StepScalingPolicy, StickinessType,
    TargetDiscovery, TargetGroup, TargetStickiness, TargetTrackingPolicy, TaskDefinition, TaskPort,
    TimingProfile, GRPC_CODE_RANGE, HTTP_CODE_RANGE, TASK_ENVIRONMENT,
};

const IDLE_TIMEOUT_SECONDS: RangeInclusive<u64> = 1..=4000;
const CLIENT_KEEP_ALIVE_SECONDS: RangeInclusive<u64> = 60..=604_800;
const HEADER_READ_TIMEOUT_SECONDS: RangeInclusive<u64> = 1..=4000;
const MAX_WORKERS: usize = 1024;
const MAX_LISTENERS: usize = 50;
const MAX_SNI_CERTIFICATES: usize = 25;
const RULE_PRIORITY: RangeInclusive<u64> = 1..=50_000;
const MAX_CONDITION_VALUES_PER_RULE: usize = 5;
const MAX_WILDCARDS_PER_RULE: usize = 5;
const MAX_CONDITION_VALUE_CHARS: usize = 128;
const MAX_HEADER_NAME_CHARS: usize = 40;
const MAX_METHOD_CHARS: usize = 40;
const TARGET_GROUP_WEIGHT: RangeInclusive<u64> = 0..=999;
const MAX_TARGET_GROUPS_PER_ACTION: usize = 5;
const STICKINESS_SECONDS: RangeInclusive<u64> = 1..=604_800;
const MAX_REDIRECT_COMPONENT_CHARS: usize = 128;
const FIXED_RESPONSE_CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];
const MAX_FIXED_RESPONSE_BODY_CHARS: usize = 1024;
const MAX_TARGET_GROUPS: usize = 100;
const MAX_TARGET_GROUP_NAME_CHARS: usize = 32;
const CONNECT_TIMEOUT_SECONDS: RangeInclusive<u64> = 1..=3600;
const RESPONSE_TIMEOUT_SECONDS: RangeInclusive<u64> = 1..=4000;
const MAX_TARGETS_PER_GROUP: usize = 1000;
const HEALTH_CHECK_INTERVAL_SECONDS: RangeInclusive<u64> = 5..=300;
const HEALTH_CHECK_TIMEOUT_SECONDS: RangeInclusive<u64> = 2..=120;
const HEALTH_CHECK_THRESHOLD_COUNT: RangeInclusive<u64> = 2..=10;
const INITIAL_HEALTHY_THRESHOLD_COUNT: RangeInclusive<u64> = 1..=10;
const MAX_HEALTH_CHECK_PATH_CHARS: usize = 1024;
const DEREGISTRATION_DELAY_SECONDS: RangeInclusive<u64> = 0..=3600;
const SLOW_START_DURATION_SECONDS: RangeInclusive<u64> = 30..=900;
const MAX_STICKINESS_COOKIE_NAME_CHARS: usize = 255;
/// ALB reserves cookie names starting with this (`AWSALB`, `AWSALBAPP`, `AWSALBTG`).
const RESERVED_COOKIE_PREFIX: &str = "AWSALB";
const SUSPECT_SECONDS: RangeInclusive<u64> = 1..=3600;
const MAX_DNS_LABEL_CHARS: usize = 63;
const MAX_DNS_NAME_CHARS: usize = 253;
const DISCOVERY_REFRESH_SECONDS: RangeInclusive<u64> = 1..=3600;
const DISCOVERY_QUERY_TIMEOUT_SECONDS: RangeInclusive<u64> = 1..=60;
const NXDOMAIN_REMOVAL_AFTER: RangeInclusive<u64> = 1..=100;
/// Cloud Map's quota of namespaces per region.
const MAX_NAMESPACES: usize = 50;
/// Cloud Map's DNS record TTL range.
const REGISTRY_TTL_SECONDS: RangeInclusive<u64> = 0..=2_147_483_647;
/// Cloud Map's quota of instances per service.
const MAX_INSTANCES_PER_SERVICE: usize = 1000;
/// ECS's limit on family and service names.
const MAX_ECS_NAME_CHARS: usize = 255;
/// ECS task-level CPU units on EC2 (0.125–192 vCPU).
const TASK_CPU_UNITS: RangeInclusive<u64> = 128..=196_608;
/// Docker's smallest memory limit, up to 1 TiB.
const TASK_MEMORY_MIB: RangeInclusive<u64> = 6..=1_048_576;
/// Fargate's `stopTimeout` range.
const STOP_TIMEOUT_SECONDS: RangeInclusive<u64> = 2..=120;
/// scalegate's bound on task counts and capacities: far above what one host runs.
const MAX_TASK_COUNT: u64 = 10_000;
const MINIMUM_HEALTHY_PERCENT: RangeInclusive<u64> = 0..=100;
/// ECS's `healthCheckGracePeriodSeconds` maximum.
const HEALTH_CHECK_GRACE_PERIOD_SECONDS: RangeInclusive<u64> = 0..=2_147_483_647;
/// ECS's limit of target groups per service.
const MAX_LOAD_BALANCERS_PER_SERVICE: usize = 5;
/// Application Auto Scaling quotas per scalable target and per step policy.
const MAX_POLICIES_PER_SERVICE: usize = 50;
const MAX_SCHEDULED_ACTIONS_PER_SERVICE: usize = 200;
const MAX_STEP_ADJUSTMENTS: usize = 20;
/// Policy and scheduled action names (`PolicyName`, `ScheduledActionName`).
const MAX_SCALING_NAME_CHARS: usize = 256;
/// AWS takes any non-negative cooldown; scalegate caps it at one day.
const COOLDOWN_SECONDS: RangeInclusive<u64> = 0..=86_400;
/// AWS's bound on `TargetValue` (its low end is "greater than 0" for scalegate).
const MAX_TARGET_VALUE: f64 = 1.174271e108;
/// Knative's ranges for the parameters the fast profile borrows.
const STABLE_WINDOW_SECONDS: RangeInclusive<u64> = 6..=3600;
const PANIC_THRESHOLD_PERCENT: RangeInclusive<u64> = 110..=1000;
/// Alarm periods under the fast profile.
const FAST_ALARM_PERIOD_SECONDS: RangeInclusive<u64> = 1..=86_400;
/// CloudWatch's longest evaluation range, for periods under an hour and from an hour on.
const MAX_ALARM_RANGE_SECONDS: u64 = 86_400;
const MAX_LONG_ALARM_RANGE_SECONDS: u64 = 604_800;

/// Parses YAML into the typed model, reporting the failing field's path and position.
///
/// Returns the position index too, so validation can place its errors without reparsing.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
    empty_hint: &str,
) -> Result<(T, PositionIndex), ConfigErrors> {
    if text.trim().is_empty() {
        return Err(ConfigErrors::single(ConfigError::whole_file(
            file,
            format!("the file is empty; {empty_hint}"),
        )));
    }
    let error_at = |position: Option<Position>, path: String, reason: String| {
        let (line, column) = position.map(|p| (p.line, p.column)).unwrap_or((0, 0));
        ConfigErrors::single(ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            path,
            reason,
        })
    };
    let Document { value, positions } = parse_document(text)
        .map_err(|error| error_at(Some(error.position), error.path, error.reason))?;
    match serde_path_to_error::deserialize(value) {
        Ok(config) => Ok((config, positions)),
        Err(error) => {
            let path = match error.path().to_string() {
                root if root == "." => String::new(),
                path => path,
            };
            let reason = readable_deserialize_reason(&error.into_inner().to_string(), &path);
            let position = if reason.starts_with("unknown field") {
                positions.locate_key(&path)
            } else {
                positions.locate(&path)
            };
            Err(error_at(position, path, reason))
        }
    }
}

/// Rewrites serde's messages where they are cryptic.
fn readable_deserialize_reason(message: &str, path: &str) -> String {
    let field = path.rsplit(['.', ']']).next().unwrap_or_default();
    if message.contains("untagged enum Target") {
        return "a target is `\"10.0.0.5:8080\"`, `\"10.0.0.5\"` (uses the group's port), `\"[::1]:8080\"` \
                or `{address: 10.0.0.5, port: 8080}`"
            .to_string();
    }
    if message.starts_with("invalid socket address syntax") {
        return format!(
            "{message}: expected `ip:port`, e.g. `0.0.0.0:80`, `127.0.0.1:0` or `[::]:443`"
        );
    }
    let not_one_variant = message.ends_with("expected map with a single key")
        || message.ends_with("expected string or map");
    if not_one_variant && field.ends_with("action") {
        return "an action is exactly one of `forward`, `redirect` or `fixed_response`".to_string();
    }
    if not_one_variant && path.contains("conditions[") && path.ends_with(']') {
        return "a condition is exactly one of `host_header`, `path_pattern`, `http_header`, `http_request_method`, \
                `query_string` or `source_ip`; write several list items for several conditions"
            .to_string();
    }
    if not_one_variant && path.contains(".policies[") && path.ends_with(']') {
        return "a policy is exactly one of `target_tracking` or `step_scaling`; write several \
                list items for several policies"
            .to_string();
    }
    if not_one_variant && field == "customized_metric_specification" {
        return "a customized metric is exactly one of `scrape` (a metric read from an exposition \
                URL) or `promql` (a query to a Prometheus server)"
            .to_string();
    }
    let backend = message.split('`').nth(1).unwrap_or_default();
    let is_later_backend = ["docker", "aws", "ecs", "fargate"]
        .iter()
        .any(|later| later.eq_ignore_ascii_case(backend));
    if field == "backend" && message.starts_with("unknown variant") && is_later_backend {
        return format!(
            "the `{backend}` backend is not available yet (docker and aws come in later \
             releases); use `backend: local`, which runs tasks as child processes"
        );
    }
    let is_task_text = path.starts_with("task_definitions[")
        && (path.contains(".env.") || path.contains(".args["));
    if is_task_text && message.contains("expected a string") {
        return format!("{message}; quote it, e.g. `\"1\"` or `\"true\"`");
    }
    if path.starts_with("registry.") && field.ends_with("ttl_seconds") {
        return message.replace(
            "expected u32",
            "expected a whole number of seconds 0–2147483647 (Cloud Map's TTL range)",
        );
    }
    // Unit-only enums (`HTTP_301`, `append`, ...) say "string or map", though only a name fits.
    let message = message.replace(", expected string or map", ", expected a name");
    let message = [
        ("expected u16", "expected a whole number 0–65535"),
        ("expected u32", "expected a whole number 0–4294967295"),
        ("expected u64", "expected a whole number ≥ 0"),
        ("expected usize", "expected a whole number ≥ 0"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
    ]
    .iter()
    .fold(message, |message, (rust_type, words)| {
        message.replace(rust_type, words)
    });
    if path.ends_with("redirect.status_code") {
        return format!("{message}; redirects use `HTTP_301` or `HTTP_302`");
    }
    message
}

/// Makes certificate, access-log and discovery-file paths absolute against the config file's
/// directory.
pub(crate) fn resolve_paths(config: &mut Config, base_dir: &Path) {
    if let crate::AccessLogPath::File(path) = &mut config.access_log.path {
        if path.is_relative() {
            *path = base_dir.join(&*path);
        }
    }
    for group in &mut config.target_groups {
        let file = group
            .discovery
            .as_mut()
            .and_then(|discovery| discovery.file.as_mut());
        if let Some(file) = file {
            if file.is_relative() {
                *file = base_dir.join(&*file);
            }
        }
    }
    for definition in &mut config.task_definitions {
        // Like a shell: a bare name is looked up on PATH, a path is a file.
        if definition.command.contains('/') {
            let command = Path::new(&definition.command);
            if command.is_relative() {
                let inside: std::path::PathBuf = command
                    .components()
                    .filter(|part| *part != std::path::Component::CurDir)
                    .collect();
                definition.command = base_dir.join(inside).to_string_lossy().into_owned();
            }
        }
        if let Some(directory) = &mut definition.working_dir {
            if directory.is_relative() {
                *directory = base_dir.join(&*directory);
            }
        }
    }
    for listener in &mut config.listeners {
        if let Some(tls) = &mut listener.tls {
            for files in
                std::iter::once(&mut tls.default_certificate).chain(tls.certificates.iter_mut())
            {
                if files.certificate.is_relative() {
                    files.certificate = base_dir.join(&files.certificate);
                }
                if files.private_key.is_relative() {
                    files.private_key = base_dir.join(&files.private_key);
                }
            }
        }
    }
}

/// Checks everything serde cannot: ranges, references, uniqueness, ALB quotas.
pub(crate) fn validate(
    config: &Config,
    positions: PositionIndex,
    file: &Path,
) -> Result<(), ConfigErrors> {
    let mut checker = Checker {
        file,
        index: positions,
        errors: Vec::new(),
        target_group_names: config
            .target_groups
            .iter()
            .map(|group| group.name.clone())
            .collect(),
    };
    checker.load_balancer(config);
    checker.admin(&config.admin);
    checker.listeners(config);
    checker.target_groups(&config.target_groups);
    checker.registry(&config.registry);
    checker.task_definitions(&config.task_definitions);
    checker.services(config);
    if checker.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(checker.errors))
    }
}

/// Collects errors while walking the config.
struct Checker<'a> {
    file: &'a Path,
    index: PositionIndex,
    errors: Vec<ConfigError>,
    /// Target group names in file order, for reference checks and "known names" hints.
    target_group_names: Vec<String>,
}

impl Checker<'_> {
    /// Records an error at `path`, positioned at its value (or nearest written ancestor).
    fn report(&mut self, path: &str, reason: impl Into<String>) {
        let (line, column) = self
            .index
            .locate(path)
            .map(|p| (p.line, p.column))
            .unwrap_or((0, 0));
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    /// Reports `value` outside `range`.
    fn check_range(&mut self, path: &str, value: u64, range: RangeInclusive<u64>) {
        if !range.contains(&value) {
            self.report(
                path,
                format!("must be {}–{}, not {value}", range.start(), range.end()),
            );
        }
    }

    /// Reports a list longer than an ALB quota.
    fn check_count(&mut self, path: &str, count: usize, max: usize, what: &str) {
        if count > max {
            self.report(path, format!("{count} {what}; at most {max} are allowed"));
        }
    }

    /// Reports an empty string or one longer than `max_chars` characters.
    fn check_length(&mut self, path: &str, value: &str, max_chars: usize) -> bool {
        let chars = value.chars().count();
        if value.is_empty() {
            self.report(path, "must not be empty");
        } else if chars > max_chars {
            self.report(
                path,
                format!("is {chars} characters long; at most {max_chars} are allowed"),
            );
        } else {
            return true;
        }
        false
    }

    /// Reports an empty or too long value, or one with a character outside `allowed`.
    fn check_text(
        &mut self,
        path: &str,
        value: &str,
        max_chars: usize,
        allowed: fn(char) -> bool,
        described: &str,
    ) {
        if !self.check_length(path, value, max_chars) {
            return;
        }
        if let Some(bad) = value.chars().find(|&c| !allowed(c)) {
            self.report(
                path,
                format!("`{value}` contains {bad:?}; allowed characters are {described}"),
            );
        }
    }

    fn load_balancer(&mut self, config: &Config) {
        let lb = &config.load_balancer;
        self.check_range(
            "load_balancer.idle_timeout_seconds",
            lb.idle_timeout_seconds,
            IDLE_TIMEOUT_SECONDS,
        );
        self.check_range(
            "load_balancer.client_keep_alive_seconds",
            lb.client_keep_alive_seconds,
            CLIENT_KEEP_ALIVE_SECONDS,
        );
        self.check_range(
            "load_balancer.header_read_timeout_seconds",
            lb.header_read_timeout_seconds,
            HEADER_READ_TIMEOUT_SECONDS,
        );
        if lb.runtime.workers > MAX_WORKERS {
            self.report(
                "load_balancer.runtime.workers",
                format!(
                    "must be 0 (one per core) to {MAX_WORKERS}, not {}",
                    lb.runtime.workers
                ),
            );
        }
    }

    fn admin(&mut self, admin: &Admin) {
        let has_token = admin.auth_token.is_some() || admin.auth_token_env.is_some();
        if !admin.address.ip().is_loopback() && !has_token {
            self.report(
                "admin.address",
                format!(
                    "the admin API is bound to {}, which is not a loopback address; \
                     set admin.auth_token_env (or admin.auth_token) so it requires a token, \
                     or bind it to 127.0.0.1",
                    admin.address.ip()
                ),
            );
        }
        if admin.auth_token.is_some() && admin.auth_token_env.is_some() {
            self.report(
                "admin.auth_token_env",
                "set either admin.auth_token or admin.auth_token_env, not both",
            );
        }
        if admin.auth_token.as_deref() == Some("") {
            self.report(
                "admin.auth_token",
                "must not be empty; an empty token would protect nothing",
            );
        }
        if let Some(name) = &admin.auth_token_env {
            if name.is_empty() || name.contains(['=', '\0']) {
                self.report(
                    "admin.auth_token_env",
                    format!("`{name}` is not an environment variable name"),
                );
            }
        }
    }

    fn listeners(&mut self, config: &Config) {
        self.check_count(
            "listeners",
            config.listeners.len(),
            MAX_LISTENERS,
            "listeners",
        );
        let mut names: HashMap<String, usize> = HashMap::new();
        // Bound addresses so far, with who holds them, for conflict messages.
        let mut bound: Vec<(SocketAddr, String)> =
            vec![(config.admin.address, "the admin endpoint".to_string())];
        for (index, listener) in config.listeners.iter().enumerate() {
            let path = format!("listeners[{index}]");
            let name = listener.display_name();
            match names.get(&name) {
                Some(first) => self.report(
                    &format!("{path}.name"),
                    format!("listener name `{name}` is already used by listeners[{first}]"),
                ),
                None => {
                    names.insert(name.clone(), index);
                }
            }
            let address = listener.address;
            if let Some((_, holder)) = bound
                .iter()
                .find(|(other, _)| addresses_conflict(*other, address))
            {
                self.report(
                    &format!("{path}.address"),
                    format!("{address} is already bound by {holder}"),
                );
            }
            bound.push((address, format!("listeners[{index}] (`{name}`)")));
            self.listener_tls(&path, listener);
            self.rules(&path, listener);
            self.action(
                &format!("{path}.default_action"),
                &listener.default_action,
                listener.protocol,
            );
        }
    }

    fn listener_tls(&mut self, path: &str, listener: &Listener) {
        match (listener.protocol, &listener.tls) {
            (Protocol::Https, None) => self.report(
                &format!("{path}.tls"),
                "an HTTPS listener needs `tls` with a `default_certificate` (certificate and private_key)",
            ),
            (Protocol::Http, Some(_)) => {
                self.report(&format!("{path}.tls"), "`tls` is only for HTTPS listeners; set `protocol: HTTPS` or remove it")
            }
            (Protocol::Https, Some(tls)) => {
                self.certificate(&format!("{path}.tls.default_certificate"), &tls.default_certificate, false);
                self.check_count(
                    &format!("{path}.tls.certificates"),
                    tls.certificates.len(),
                    MAX_SNI_CERTIFICATES,
                    "extra certificates",
                );
                for (index, files) in tls.certificates.iter().enumerate() {
                    self.certificate(&format!("{path}.tls.certificates[{index}]"), files, true);
                }
            }
            (Protocol::Http, None) => {}
        }
        if listener.http2_prior_knowledge && listener.protocol == Protocol::Https {
            self.report(
                &format!("{path}.http2_prior_knowledge"),
                "only for HTTP listeners; HTTPS listeners offer HTTP/2 by ALPN (load_balancer.http2_enabled)",
            );
        }
    }

    /// Loads one certificate as the proxy will; an SNI certificate must name a host.
    fn certificate(&mut self, path: &str, files: &CertificateFiles, chosen_by_sni: bool) {
        match load_certificate_files(files) {
            Err(CertificateProblem::Chain(reason)) => self.report(&format!("{path}.certificate"), reason),
            Err(CertificateProblem::Key(reason)) => self.report(&format!("{path}.private_key"), reason),
            Ok(loaded) if chosen_by_sni && loaded.dns_names.is_empty() => self.report(
                &format!("{path}.certificate"),
                format!(
                    "{} has no DNS name in its subject alternative names, so SNI can never select it",
                    files.certificate.display()
                ),
            ),
            Ok(_) => {}
        }
    }

    fn rules(&mut self, listener_path: &str, listener: &Listener) {
        let mut priorities: HashMap<u32, usize> = HashMap::new();
        for (index, rule) in listener.rules.iter().enumerate() {
            let path = format!("{listener_path}.rules[{index}]");
            self.check_range(
                &format!("{path}.priority"),
                rule.priority.into(),
                RULE_PRIORITY,
            );
            match priorities.get(&rule.priority) {
                Some(first) => self.report(
                    &format!("{path}.priority"),
                    format!(
                        "priority {} is already used by {listener_path}.rules[{first}]",
                        rule.priority
                    ),
                ),
                None => {
                    priorities.insert(rule.priority, index);
                }
            }
            self.conditions(&path, rule);
            self.action(&format!("{path}.action"), &rule.action, listener.protocol);
        }
    }

    fn conditions(&mut self, rule_path: &str, rule: &Rule) {
        let conditions_path = format!("{rule_path}.conditions");
        if rule.conditions.is_empty() {
            self.report(
                &conditions_path,
                "a rule needs at least one condition; use default_action to catch everything",
            );
        }
        let mut single_kinds: HashMap<&'static str, usize> = HashMap::new();
        let (mut values, mut wildcards) = (0, 0);
        for (index, condition) in rule.conditions.iter().enumerate() {
            let path = format!("{conditions_path}[{index}]");
            let kind = condition_kind(condition);
            if !matches!(
                condition,
                Condition::HttpHeader(_) | Condition::QueryString(_)
            ) {
                match single_kinds.get(kind) {
                    Some(first) => self.report(
                        &format!("{path}.{kind}"),
                        format!(
                            "a rule may have one {kind} condition and {conditions_path}[{first}] is one already; \
                             list all values there"
                        ),
                    ),
                    None => {
                        single_kinds.insert(kind, index);
                    }
                }
            }
            let (condition_values, condition_wildcards) =
                self.condition(&format!("{path}.{kind}"), condition);
            values += condition_values;
            wildcards += condition_wildcards;
        }
        if values > MAX_CONDITION_VALUES_PER_RULE {
            self.report(
                &conditions_path,
                format!(
                    "{values} condition values in one rule; ALB allows {MAX_CONDITION_VALUES_PER_RULE} \
                     (split it into several rules)"
                ),
            );
        }
        if wildcards > MAX_WILDCARDS_PER_RULE {
            self.report(
                &conditions_path,
                format!("{wildcards} wildcards (`*`, `?`) in one rule; ALB allows {MAX_WILDCARDS_PER_RULE}"),
            );
        }
    }

    /// Checks one condition's values; returns how many values and wildcards it uses.
    fn condition(&mut self, path: &str, condition: &Condition) -> (usize, usize) {
        let mut wildcards = 0;
        let values = match condition {
            Condition::HostHeader(hosts) => {
                wildcards += self.check_values(
                    path,
                    hosts,
                    MAX_CONDITION_VALUE_CHARS,
                    is_host_pattern_char,
                    HOST_CHARS,
                );
                hosts.len()
            }
            Condition::PathPattern(patterns) => {
                wildcards += self.check_values(
                    path,
                    patterns,
                    MAX_CONDITION_VALUE_CHARS,
                    is_path_pattern_char,
                    PATH_CHARS,
                );
                patterns.len()
            }
            Condition::HttpHeader(header) => {
                let name_path = format!("{path}.name");
                self.check_text(
                    &name_path,
                    &header.name,
                    MAX_HEADER_NAME_CHARS,
                    is_header_name_char,
                    HEADER_NAME_CHARS,
                );
                if header.name.eq_ignore_ascii_case("host") {
                    self.report(
                        &name_path,
                        "use a host_header condition to match the Host header",
                    );
                }
                let values_path = format!("{path}.values");
                wildcards += self.check_values(
                    &values_path,
                    &header.values,
                    MAX_CONDITION_VALUE_CHARS,
                    |_| true,
                    "",
                );
                header.values.len()
            }
            Condition::HttpRequestMethod(methods) => {
                self.check_values(
                    path,
                    methods,
                    MAX_METHOD_CHARS,
                    is_method_char,
                    METHOD_CHARS,
                );
                methods.len()
            }
            Condition::QueryString(pairs) => {
                self.check_not_empty_list(path, pairs.len());
                for (index, pair) in pairs.iter().enumerate() {
                    if let Some(key) = &pair.key {
                        self.check_length(
                            &format!("{path}[{index}].key"),
                            key,
                            MAX_CONDITION_VALUE_CHARS,
                        );
                        wildcards += count_unescaped_wildcards(key);
                    }
                    self.check_length(
                        &format!("{path}[{index}].value"),
                        &pair.value,
                        MAX_CONDITION_VALUE_CHARS,
                    );
                    wildcards += count_unescaped_wildcards(&pair.value);
                }
                pairs.len()
            }
            Condition::SourceIp(cidrs) => {
                self.check_not_empty_list(path, cidrs.len());
                for (index, cidr) in cidrs.iter().enumerate() {
                    if let Err(reason) = check_source_ip(cidr) {
                        self.report(&format!("{path}[{index}]"), reason);
                    }
                }
                cidrs.len()
            }
        };
        (values, wildcards)
    }

    /// Checks a condition's value list (non-empty, each value's length and characters) and
    /// returns how many wildcards the values use.
    fn check_values(
        &mut self,
        path: &str,
        values: &[String],
        max_chars: usize,
        allowed: fn(char) -> bool,
        described: &str,
    ) -> usize {
        self.check_not_empty_list(path, values.len());
        for (index, value) in values.iter().enumerate() {
            self.check_text(
                &format!("{path}[{index}]"),
                value,
                max_chars,
                allowed,
                described,
            );
        }
        values.iter().map(|value| count_wildcards(value)).sum()
    }

    fn check_not_empty_list(&mut self, path: &str, len: usize) {
        if len == 0 {
            self.report(path, "needs at least one value");
        }
    }

    fn action(&mut self, path: &str, action: &Action, listener_protocol: Protocol) {
        match action {
            Action::Forward(forward) => self.forward(&format!("{path}.forward"), forward),
            Action::Redirect(redirect) => {
                self.redirect(&format!("{path}.redirect"), redirect, listener_protocol)
            }
            Action::FixedResponse(fixed) => {
                self.fixed_response(&format!("{path}.fixed_response"), fixed)
            }
        }
    }

    fn forward(&mut self, path: &str, forward: &ForwardAction) {
        match (&forward.target_group, forward.target_groups.is_empty()) {
            (Some(_), false) => {
                self.report(
                    path,
                    "set either `target_group` or `target_groups`, not both",
                );
            }
            (None, true) => self.report(
                path,
                "forward needs `target_group: <name>` or `target_groups: [{name, weight}]`",
            ),
            _ => {}
        }
        if let Some(name) = &forward.target_group {
            self.check_target_group_reference(&format!("{path}.target_group"), name);
        }
        let groups_path = format!("{path}.target_groups");
        self.check_count(
            &groups_path,
            forward.target_groups.len(),
            MAX_TARGET_GROUPS_PER_ACTION,
            "target groups",
        );
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (index, weighted) in forward.target_groups.iter().enumerate() {
            let entry_path = format!("{groups_path}[{index}]");
            self.check_target_group_reference(&format!("{entry_path}.name"), &weighted.name);
            if let Some(first) = seen.insert(&weighted.name, index) {
                self.report(
                    &format!("{entry_path}.name"),
                    format!(
                        "target group `{}` is already listed as {groups_path}[{first}]",
                        weighted.name
                    ),
                );
            }
            self.check_range(
                &format!("{entry_path}.weight"),
                weighted.weight.into(),
                TARGET_GROUP_WEIGHT,
            );
        }
        if forward.target_groups.len() > 1
            && forward
                .target_groups
                .iter()
                .all(|weighted| weighted.weight == 0)
        {
            self.report(
                &groups_path,
                "every weight is 0, so no target group would receive traffic",
            );
        }
        if let Some(stickiness) = &forward.stickiness {
            self.check_range(
                &format!("{path}.stickiness.duration_seconds"),
                stickiness.duration_seconds,
                STICKINESS_SECONDS,
            );
        }
    }

    fn check_target_group_reference(&mut self, path: &str, name: &str) {
        if self.target_group_names.iter().any(|known| known == name) {
            return;
        }
        let known = if self.target_group_names.is_empty() {
            "no target groups are defined".to_string()
        } else {
            let quoted: Vec<String> = self
                .target_group_names
                .iter()
                .map(|known| format!("`{known}`"))
                .collect();
            format!("known: {}", quoted.join(", "))
        };
        self.report(path, format!("no target group named `{name}` ({known})"));
    }

    fn redirect(&mut self, path: &str, redirect: &RedirectAction, listener_protocol: Protocol) {
        let protocol_path = format!("{path}.protocol");
        match redirect.protocol.as_str() {
            "HTTP" if listener_protocol == Protocol::Https => self.report(
                &protocol_path,
                "an HTTPS listener must not redirect to HTTP (ALB forbids the downgrade)",
            ),
            "HTTP" | "HTTPS" | "#{protocol}" => {}
            other => self.report(
                &protocol_path,
                format!("`{other}` is not `HTTP`, `HTTPS` or `#{{protocol}}`"),
            ),
        }
        if redirect.port != "#{port}"
            && !matches!(redirect.port.parse::<u16>(), Ok(port) if port > 0)
        {
            self.report(
                &format!("{path}.port"),
                format!("`{}` is not a port 1–65535 or `#{{port}}`", redirect.port),
            );
        }
        let components: [(&str, &str, &[&str]); 3] = [
            ("host", &redirect.host, &["host"]),
            ("path", &redirect.path, &["host", "port", "path"]),
            (
                "query",
                &redirect.query,
                &["protocol", "host", "port", "path", "query"],
            ),
        ];
        for (field, value, allowed) in components {
            let field_path = format!("{path}.{field}");
            let chars = value.chars().count();
            if chars > MAX_REDIRECT_COMPONENT_CHARS {
                self.report(
                    &field_path,
                    format!("is {chars} characters long; at most {MAX_REDIRECT_COMPONENT_CHARS} are allowed"),
                );
            }
            for placeholder in placeholders(value) {
                if !allowed.contains(&placeholder) {
                    let allowed: Vec<String> = allowed
                        .iter()
                        .map(|name| format!("`#{{{name}}}`"))
                        .collect();
                    self.report(
                        &field_path,
                        format!(
                            "`#{{{placeholder}}}` cannot be used in {field}; it may use {}",
                            allowed.join(", ")
                        ),
                    );
                }
            }
        }
        if redirect.host.is_empty() {
            self.report(
                &format!("{path}.host"),
                "must not be empty (default `#{host}`)",
            );
        }
        if !redirect.path.starts_with('/') {
            self.report(
                &format!("{path}.path"),
                format!("`{}` must start with `/`", redirect.path),
            );
        }
        let is_loop = redirect.protocol == "#{protocol}"
            && redirect.host == "#{host}"
            && redirect.port == "#{port}"
            && redirect.path == "/#{path}";
        if is_loop {
            self.report(
                path,
                "this redirect sends clients back to the same URL; change at least one of protocol, host, port or path",
            );
        }
    }

    fn fixed_response(&mut self, path: &str, fixed: &FixedResponseAction) {
        if !matches!(fixed.status_code, 200..=299 | 400..=599) {
            self.report(
                &format!("{path}.status_code"),
                format!("must be 2XX, 4XX or 5XX, not {}", fixed.status_code),
            );
        }
        if let Some(content_type) = &fixed.content_type {
            if !FIXED_RESPONSE_CONTENT_TYPES.contains(&content_type.as_str()) {
                self.report(
                    &format!("{path}.content_type"),
                    format!(
                        "`{content_type}` is not one of {}",
                        FIXED_RESPONSE_CONTENT_TYPES.join(", ")
                    ),
                );
            }
        }
        let chars = fixed.message_body.chars().count();
        if chars > MAX_FIXED_RESPONSE_BODY_CHARS {
            self.report(
                &format!("{path}.message_body"),
                format!("is {chars} characters long; at most {MAX_FIXED_RESPONSE_BODY_CHARS} are allowed"),
            );
        }
    }

    fn target_groups(&mut self, groups: &[TargetGroup]) {
        self.check_count(
            "target_groups",
            groups.len(),
            MAX_TARGET_GROUPS,
            "target groups",
        );
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (index, group) in groups.iter().enumerate() {
            let path = format!("target_groups[{index}]");
            let name_path = format!("{path}.name");
            if let Err(reason) = check_target_group_name(&group.name) {
                self.report(&name_path, reason);
            }
            if let Some(first) = names.insert(&group.name, index) {
                self.report(
                    &name_path,
                    format!(
                        "target group `{}` is already defined as target_groups[{first}]",
                        group.name
                    ),
                );
            }
            if group.port == 0 {
                self.report(&format!("{path}.port"), "must be 1–65535, not 0");
            }
            self.check_range(
                &format!("{path}.connect_timeout_seconds"),
                group.connect_timeout_seconds,
                CONNECT_TIMEOUT_SECONDS,
            );
            if let Some(seconds) = group.response_timeout_seconds {
                self.check_range(
                    &format!("{path}.response_timeout_seconds"),
                    seconds,
                    RESPONSE_TIMEOUT_SECONDS,
                );
            }
            self.check_count(
                &format!("{path}.targets"),
                group.targets.len(),
                MAX_TARGETS_PER_GROUP,
                "targets",
            );
            self.health_check(&format!("{path}.health_check"), group);
            self.target_group_attributes(&path, group);
            self.target_stickiness(&format!("{path}.stickiness"), &group.stickiness);
            self.passive_health(&format!("{path}.passive_health"), &group.passive_health);
            if let Some(discovery) = &group.discovery {
                self.discovery(&format!("{path}.discovery"), discovery);
            }
            let mut addresses: HashMap<SocketAddr, usize> = HashMap::new();
            for (target_index, target) in group.targets.iter().enumerate() {
                let target_path = format!("{path}.targets[{target_index}]");
                match target.socket_addr(group.port) {
                    Err(reason) => self.report(&target_path, reason),
                    Ok(address) => {
                        if let Some(first) = addresses.insert(address, target_index) {
                            self.report(
                                &target_path,
                                format!(
                                    "{address} is already registered as {path}.targets[{first}]"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    fn health_check(&mut self, path: &str, group: &TargetGroup) {
        let check: &HealthCheck = &group.health_check;
        if let Some(check_path) = &check.path {
            let field = format!("{path}.path");
            if self.check_length(&field, check_path, MAX_HEALTH_CHECK_PATH_CHARS) {
                if !check_path.starts_with('/') {
                    self.report(&field, format!("`{check_path}` must start with `/`"));
                } else if let Some(bad) = check_path.chars().find(|c| !c.is_ascii_graphic()) {
                    self.report(
                        &field,
                        format!(
                            "`{check_path}` contains {bad:?}; a health check path is printable \
                             ASCII without spaces (percent-encode anything else)"
                        ),
                    );
                }
            }
        }
        if check.port == HealthCheckPort::Port(0) {
            self.report(
                &format!("{path}.port"),
                "must be `traffic-port` or 1–65535, not 0",
            );
        }
        self.check_range(
            &format!("{path}.interval_seconds"),
            check.interval_seconds,
            HEALTH_CHECK_INTERVAL_SECONDS,
        );
        let timeout_path = format!("{path}.timeout_seconds");
        if !HEALTH_CHECK_TIMEOUT_SECONDS.contains(&check.timeout_seconds) {
            self.check_range(
                &timeout_path,
                check.timeout_seconds,
                HEALTH_CHECK_TIMEOUT_SECONDS,
            );
        } else if check.timeout_seconds >= check.interval_seconds {
            self.report(
                &timeout_path,
                format!(
                    "must be less than interval_seconds ({}), not {}: a check must end before \
                     the next one starts",
                    check.interval_seconds, check.timeout_seconds
                ),
            );
        }
        for (field, value, range) in [
            (
                "healthy_threshold_count",
                check.healthy_threshold_count,
                HEALTH_CHECK_THRESHOLD_COUNT,
            ),
            (
                "unhealthy_threshold_count",
                check.unhealthy_threshold_count,
                HEALTH_CHECK_THRESHOLD_COUNT,
            ),
            (
                "initial_healthy_threshold_count",
                check.initial_healthy_threshold_count,
                INITIAL_HEALTHY_THRESHOLD_COUNT,
            ),
        ] {
            self.check_range(&format!("{path}.{field}"), value.into(), range);
        }
        let matcher_path = format!("{path}.matcher");
        if let Err(reason) = parse_code_matcher(&check.matcher.http_code, HTTP_CODE_RANGE) {
            self.report(&format!("{matcher_path}.http_code"), reason);
        }
        if let Some(grpc_code) = &check.matcher.grpc_code {
            let field = format!("{matcher_path}.grpc_code");
            if let Err(reason) = parse_code_matcher(grpc_code, GRPC_CODE_RANGE) {
                self.report(&field, reason);
            }
            if group.protocol_version != ProtocolVersion::Http2 {
                self.report(
                    &field,
                    "gRPC health checks need `protocol_version: HTTP2` on the target group",
                );
            }
        }
    }

    fn target_group_attributes(&mut self, path: &str, group: &TargetGroup) {
        self.check_range(
            &format!("{path}.deregistration_delay_seconds"),
            group.deregistration_delay_seconds,
            DEREGISTRATION_DELAY_SECONDS,
        );
        let slow_start_path = format!("{path}.slow_start_duration_seconds");
        let slow_start = group.slow_start_duration_seconds;
        if slow_start != 0 && !SLOW_START_DURATION_SECONDS.contains(&slow_start) {
            self.report(
                &slow_start_path,
                format!(
                    "must be 0 (off) or {}–{}, not {slow_start}",
                    SLOW_START_DURATION_SECONDS.start(),
                    SLOW_START_DURATION_SECONDS.end()
                ),
            );
        }
        let algorithm = group.load_balancing_algorithm;
        if slow_start != 0 && algorithm == LoadBalancingAlgorithm::LeastOutstandingRequests {
            self.report(
                &slow_start_path,
                "slow start cannot be combined with `load_balancing_algorithm: \
                 least_outstanding_requests` (as on ALB); set it to 0 or use round_robin or \
                 weighted_random",
            );
        }
        if group.anomaly_mitigation && algorithm != LoadBalancingAlgorithm::WeightedRandom {
            self.report(
                &format!("{path}.anomaly_mitigation"),
                format!(
                    "only works with `load_balancing_algorithm: weighted_random` (as on ALB), \
                     not {}",
                    algorithm_name(algorithm)
                ),
            );
        }
    }

    fn target_stickiness(&mut self, path: &str, stickiness: &TargetStickiness) {
        self.check_range(
            &format!("{path}.duration_seconds"),
            stickiness.duration_seconds,
            STICKINESS_SECONDS,
        );
        let cookie_path = format!("{path}.cookie_name");
        match (stickiness.kind, &stickiness.cookie_name) {
            (StickinessType::LbCookie, Some(_)) => self.report(
                &cookie_path,
                "only for `type: app_cookie`; lb_cookie stickiness uses the load balancer's own \
                 `AWSALB` cookie",
            ),
            (StickinessType::AppCookie, None) if stickiness.enabled => self.report(
                &cookie_path,
                "`type: app_cookie` needs the name of the application's cookie",
            ),
            (StickinessType::AppCookie, Some(name)) => {
                self.check_text(
                    &cookie_path,
                    name,
                    MAX_STICKINESS_COOKIE_NAME_CHARS,
                    is_cookie_name_char,
                    COOKIE_NAME_CHARS,
                );
                if name.starts_with(RESERVED_COOKIE_PREFIX) {
                    self.report(
                        &cookie_path,
                        format!(
                            "`{name}` starts with `{RESERVED_COOKIE_PREFIX}`, which is reserved for \
                             the load balancer's own cookies (AWSALB, AWSALBAPP, AWSALBTG)"
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    fn passive_health(&mut self, path: &str, passive: &PassiveHealth) {
        self.check_range(
            &format!("{path}.suspect_seconds"),
            passive.suspect_seconds,
            SUSPECT_SECONDS,
        );
    }

    /// A target group's discovery source: exactly one of `dns_name`, `srv_name` or `file`,
    /// and only the settings that source can use, so nothing in the file is silently ignored.
    fn discovery(&mut self, path: &str, discovery: &TargetDiscovery) {
        let sources: Vec<&str> = [
            ("dns_name", discovery.dns_name.is_some()),
            ("srv_name", discovery.srv_name.is_some()),
            ("file", discovery.file.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect();
        match sources.as_slice() {
            [] => self.report(
                path,
                "needs exactly one source: `dns_name` (A/AAAA records), `srv_name` (SRV records) \
                 or `file` (a list of targets)",
            ),
            [_] => {}
            [others @ .., last] => {
                let named: Vec<String> = others.iter().map(|field| format!("`{field}`")).collect();
                self.report(
                    path,
                    format!(
                        "set exactly one of `dns_name`, `srv_name` or `file`, not {} and `{last}`",
                        named.join(", ")
                    ),
                );
            }
        }
        if let Some(name) = &discovery.dns_name {
            if let Err(reason) = check_watched_name(name) {
                self.report(&format!("{path}.dns_name"), reason);
            }
        }
        let port_path = format!("{path}.port");
        if let Some(name) = &discovery.srv_name {
            if let Err(reason) = check_srv_name(name) {
                self.report(&format!("{path}.srv_name"), reason);
            }
            if discovery.port.is_some() {
                self.report(
                    &port_path,
                    "SRV records carry their own ports; remove `port` (or watch `dns_name`, \
                     whose addresses take this port)",
                );
            }
        }
        if discovery.port == Some(0) {
            self.report(&port_path, "must be 1–65535, not 0");
        }
        for (index, server) in discovery.name_servers.iter().enumerate() {
            if server.port() == 0 {
                self.report(
                    &format!("{path}.name_servers[{index}]"),
                    format!(
                        "`{server}` has port 0; name the port the server answers on (DNS's \
                         usual one is 53)"
                    ),
                );
            }
        }
        if let Some(file) = &discovery.file {
            self.discovery_file(&format!("{path}.file"), file);
            if discovery.address_family != AddressFamily::Any {
                self.report(
                    &format!("{path}.address_family"),
                    "only for `dns_name` and `srv_name`; a file lists its addresses itself",
                );
            }
            if !discovery.name_servers.is_empty() {
                self.report(
                    &format!("{path}.name_servers"),
                    "only for `dns_name` and `srv_name`; a file is read, not resolved",
                );
            }
        }
        self.discovery_timing(path, discovery);
    }

    /// Refresh bounds, query timeout and NXDOMAIN patience of a discovery source.
    fn discovery_timing(&mut self, path: &str, discovery: &TargetDiscovery) {
        let (min, max) = (discovery.min_refresh_seconds, discovery.max_refresh_seconds);
        let min_path = format!("{path}.min_refresh_seconds");
        self.check_range(&min_path, min, DISCOVERY_REFRESH_SECONDS);
        self.check_range(
            &format!("{path}.max_refresh_seconds"),
            max,
            DISCOVERY_REFRESH_SECONDS,
        );
        let both_in_range =
            DISCOVERY_REFRESH_SECONDS.contains(&min) && DISCOVERY_REFRESH_SECONDS.contains(&max);
        if both_in_range && min > max {
            self.report(
                &min_path,
                format!("must not be more than max_refresh_seconds ({max}), not {min}"),
            );
        }
        self.check_range(
            &format!("{path}.query_timeout_seconds"),
            discovery.query_timeout_seconds,
            DISCOVERY_QUERY_TIMEOUT_SECONDS,
        );
        self.check_range(
            &format!("{path}.nxdomain_removal_after"),
            discovery.nxdomain_removal_after.into(),
            NXDOMAIN_REMOVAL_AFTER,
        );
    }

    /// A target list file must be readable now, so a typo fails `check` rather than leaving
    /// the group empty at run time. Its content is parsed by the file watcher.
    fn discovery_file(&mut self, path: &str, file: &Path) {
        // The kind of file first: opening a FIFO would block the load.
        let problem = match std::fs::metadata(file) {
            Err(error) => Some(format!("cannot read {}: {error}", file.display())),
            Ok(metadata) if metadata.is_dir() => Some(format!(
                "{} is a directory; name a YAML or JSON file listing targets",
                file.display()
            )),
            Ok(metadata) if !metadata.is_file() => Some(format!(
                "{} is not a regular file; name a YAML or JSON file listing targets",
                file.display()
            )),
            Ok(_) => std::fs::File::open(file)
                .err()
                .map(|error| format!("cannot read {}: {error}", file.display())),
        };
        if let Some(reason) = problem {
            self.report(path, reason);
        }
    }

    /// The embedded registry: Cloud Map's quotas and DNS's rules for every name it will serve.
    fn registry(&mut self, registry: &ServiceRegistry) {
        self.check_count(
            "registry.namespaces",
            registry.namespaces.len(),
            MAX_NAMESPACES,
            "namespaces",
        );
        // Valid namespaces so far, as lowercase names without the trailing dot, with their index.
        let mut zones: Vec<(String, usize)> = Vec::new();
        for (index, namespace) in registry.namespaces.iter().enumerate() {
            let path = format!("registry.namespaces[{index}]");
            let name_path = format!("{path}.name");
            let zone = match check_dns_name(&namespace.name) {
                Ok(_) => Some(normalized_dns_name(&namespace.name)),
                Err(reason) => {
                    self.report(&name_path, reason);
                    None
                }
            };
            if let Some(zone) = &zone {
                if let Some(reason) = zone_conflict(zone, &zones, &registry.namespaces) {
                    self.report(&name_path, format!("`{}` {reason}", namespace.name));
                }
                zones.push((zone.clone(), index));
            }
            self.check_range(
                &format!("{path}.ttl_seconds"),
                namespace.ttl_seconds.into(),
                REGISTRY_TTL_SECONDS,
            );
            self.check_range(
                &format!("{path}.negative_ttl_seconds"),
                namespace.negative_ttl_seconds.into(),
                REGISTRY_TTL_SECONDS,
            );
            self.registry_services(&path, namespace, zone.as_deref());
        }
    }

    /// The services of one namespace; `zone` is the namespace's normalised name when valid.
    fn registry_services(&mut self, path: &str, namespace: &RegistryNamespace, zone: Option<&str>) {
        let mut names: HashMap<String, usize> = HashMap::new();
        for (index, service) in namespace.services.iter().enumerate() {
            let service_path = format!("{path}.services[{index}]");
            let name_path = format!("{service_path}.name");
            let name = &service.name;
            let chars = name.chars().count();
            if chars > MAX_SERVICE_NAME_CHARS {
                self.report(
                    &name_path,
                    format!(
                        "is {chars} characters long; at most {MAX_SERVICE_NAME_CHARS} are allowed, \
                         so that the SRV label `_{{name}}` fits DNS's {MAX_DNS_LABEL_CHARS}"
                    ),
                );
            } else {
                self.check_text(
                    &name_path,
                    name,
                    MAX_SERVICE_NAME_CHARS,
                    is_dns_label_char,
                    SERVICE_NAME_CHARS,
                );
            }
            let name_is_valid = is_dns_label(name, MAX_SERVICE_NAME_CHARS);
            if let Some(first) = names.insert(name.to_ascii_lowercase(), index) {
                self.report(
                    &name_path,
                    format!(
                        "service `{name}` is already defined as {path}.services[{first}] \
                         (names are case-insensitive)"
                    ),
                );
            }
            let zone = zone.filter(|_| name_is_valid);
            if let Some(zone) = zone {
                let srv_name = format!("_{name}._tcp.{name}.{zone}");
                if srv_name.len() > MAX_DNS_NAME_CHARS {
                    self.report(
                        &name_path,
                        format!(
                            "makes the SRV name `{srv_name}` {} characters long; a DNS name has \
                             at most {MAX_DNS_NAME_CHARS}",
                            srv_name.len()
                        ),
                    );
                }
            }
            if let Some(ttl) = service.ttl_seconds {
                self.check_range(
                    &format!("{service_path}.ttl_seconds"),
                    ttl.into(),
                    REGISTRY_TTL_SECONDS,
                );
            }
            self.registry_instances(&service_path, service, zone);
        }
    }

    /// The static instances of one service; `zone` is set when the service's and the
    /// namespace's names are valid.
    fn registry_instances(&mut self, path: &str, service: &RegistryService, zone: Option<&str>) {
        self.check_count(
            &format!("{path}.instances"),
            service.instances.len(),
            MAX_INSTANCES_PER_SERVICE,
            "instances",
        );
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (index, instance) in service.instances.iter().enumerate() {
            let instance_path = format!("{path}.instances[{index}]");
            let id_path = format!("{instance_path}.id");
            let id = &instance.id;
            self.check_text(
                &id_path,
                id,
                MAX_DNS_LABEL_CHARS,
                is_dns_label_char,
                INSTANCE_ID_CHARS,
            );
            if let Some(first) = ids.insert(id.to_ascii_lowercase(), index) {
                self.report(
                    &id_path,
                    format!(
                        "instance `{id}` is already registered as {path}.instances[{first}] \
                         (IDs are DNS labels, so case-insensitive)"
                    ),
                );
            }
            if let Some(zone) = zone.filter(|_| is_dns_label(id, MAX_DNS_LABEL_CHARS)) {
                let host = format!("{id}.{}.{zone}", service.name);
                if host.len() > MAX_DNS_NAME_CHARS {
                    self.report(
                        &id_path,
                        format!(
                            "makes the SRV target `{host}` {} characters long; a DNS name has at \
                             most {MAX_DNS_NAME_CHARS}",
                            host.len()
                        ),
                    );
                }
            }
            if instance.port == 0 {
                self.report(&format!("{instance_path}.port"), "must be 1–65535, not 0");
            }
            self.instance_attributes(&format!("{instance_path}.attributes"), instance);
        }
    }

    /// Cloud Map's attribute limits (shared with the registry's API), plus the attributes
    /// scalegate derives itself, which a config must not set.
    fn instance_attributes(&mut self, path: &str, instance: &RegistryInstance) {
        for problem in cloud_map::attribute_problems(&instance.attributes) {
            match &problem.key {
                Some(key) => self.report(&format!("{path}.{key}"), problem.reason),
                None => self.report(path, problem.reason),
            }
        }
        for key in instance.attributes.keys() {
            if let Some((_, field)) = cloud_map::DERIVED_ATTRIBUTES
                .iter()
                .find(|(derived, _)| derived == key)
            {
                self.report(
                    &format!("{path}.{key}"),
                    format!(
                        "`{key}` is reserved: scalegate publishes the instance's `{field}` \
                         under it; set `{field}` instead"
                    ),
                );
            }
        }
    }
}

/// A registry service name becomes the SRV label `_name`, which must fit in a DNS label.
const MAX_SERVICE_NAME_CHARS: usize = MAX_DNS_LABEL_CHARS - 1;
const SERVICE_NAME_CHARS: &str =
    "letters, digits, hyphens and underscores (one DNS label: no dots; the namespace is added)";
const INSTANCE_ID_CHARS: &str =
    "letters, digits, hyphens and underscores (one DNS label, so that `id.service.namespace` \
     can be the SRV target)";

/// Characters of a DNS label as scalegate accepts them: underscores too, for SRV names
/// (`_web._tcp`) and the Docker and ECS names that use them.
fn is_dns_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A single label of 1–`max_chars` allowed characters.
fn is_dns_label(label: &str, max_chars: usize) -> bool {
    !label.is_empty() && label.len() <= max_chars && label.chars().all(is_dns_label_char)
}

/// Checks a DNS name as scalegate resolves and serves it: dot-separated labels of 1–63
/// letters, digits, hyphens or underscores, at most 253 characters, an optional trailing dot,
/// and not an IP address. Returns its labels (without the trailing dot's empty one).
fn check_dns_name(name: &str) -> Result<Vec<&str>, String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("`{name}` is an IP address, not a DNS name"));
    }
    let relative = name.strip_suffix('.').unwrap_or(name);
    if relative.is_empty() {
        return Err(
            "`.` is the DNS root, not a name; write one such as `web` or `web.scalegate.local`"
                .to_string(),
        );
    }
    let chars = relative.chars().count();
    if chars > MAX_DNS_NAME_CHARS {
        return Err(format!(
            "is {chars} characters long; a DNS name has at most {MAX_DNS_NAME_CHARS}"
        ));
    }
    let labels: Vec<&str> = relative.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(format!(
                "`{name}` has an empty label; separate labels with single dots"
            ));
        }
        if let Some(bad) = label.chars().find(|&c| !is_dns_label_char(c)) {
            return Err(format!(
                "`{name}` contains {bad:?}; a DNS name is labels of letters, digits, hyphens and \
                 underscores, separated by dots"
            ));
        }
        let label_chars = label.chars().count();
        if label_chars > MAX_DNS_LABEL_CHARS {
            return Err(format!(
                "`{name}`: the label `{label}` is {label_chars} characters long; a DNS label has \
                 at most {MAX_DNS_LABEL_CHARS}"
            ));
        }
    }
    Ok(labels)
}

/// A `dns_name` to watch: a DNS name, with the port and IP-address mistakes explained.
fn check_watched_name(name: &str) -> Result<(), String> {
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(name);
    if unbracketed.parse::<std::net::IpAddr>().is_ok() || name.parse::<SocketAddr>().is_ok() {
        return Err(format!(
            "`{name}` is an IP address, not a DNS name; put IP addresses in the group's `targets`"
        ));
    }
    if let Some((host, port)) = name.rsplit_once(':') {
        let is_port = !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit());
        if is_port && check_dns_name(host).is_ok() {
            return Err(format!(
                "`{name}` includes a port; write the name alone and the port in `discovery.port`"
            ));
        }
    }
    check_dns_name(name).map(drop)
}

/// An `srv_name`: a DNS name of the form `_service._tcp.name` (or `_udp`).
fn check_srv_name(name: &str) -> Result<(), String> {
    let labels = check_dns_name(name)?;
    let is_srv = labels.len() >= 3
        && labels[0].len() > 1
        && labels[0].starts_with('_')
        && (labels[1].eq_ignore_ascii_case("_tcp") || labels[1].eq_ignore_ascii_case("_udp"));
    if is_srv {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an SRV name; write `_service._tcp.name` (or `_udp`), e.g. \
             `_web._tcp.scalegate.local`"
        ))
    }
}

/// The form in which two DNS names compare: lowercase, without the trailing dot.
fn normalized_dns_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Whether normalised name `inner` lies strictly inside zone `outer`.
fn is_inside_zone(inner: &str, outer: &str) -> bool {
    inner
        .strip_suffix(outer)
        .is_some_and(|prefix| prefix.ends_with('.'))
}

/// Why namespace `zone` clashes with one configured before it (`earlier`: normalised names
/// and indexes into `namespaces`), if it does: the same zone, or one inside the other, would
/// give names two authorities.
fn zone_conflict(
    zone: &str,
    earlier: &[(String, usize)],
    namespaces: &[RegistryNamespace],
) -> Option<String> {
    earlier.iter().find_map(|(other, index)| {
        let other_path = format!("registry.namespaces[{index}].name");
        let other_name = &namespaces[*index].name;
        if zone == other {
            Some(format!(
                "is already defined as {other_path} (`{other_name}`; names are case-insensitive)"
            ))
        } else if is_inside_zone(zone, other) {
            Some(format!(
                "lies inside namespace `{other_name}` ({other_path}); one namespace cannot \
                 contain another"
            ))
        } else if is_inside_zone(other, zone) {
            Some(format!(
                "contains namespace `{other_name}` ({other_path}); one namespace cannot \
                 contain another"
            ))
        } else {
            None
        }
    })
}

/// The algorithm's name as written in the file.
fn algorithm_name(algorithm: LoadBalancingAlgorithm) -> &'static str {
    match algorithm {
        LoadBalancingAlgorithm::RoundRobin => "round_robin",
        LoadBalancingAlgorithm::LeastOutstandingRequests => "least_outstanding_requests",
        LoadBalancingAlgorithm::WeightedRandom => "weighted_random",
    }
}

const COOKIE_NAME_CHARS: &str =
    "letters, digits and `! # $ % & ' * + - . ^ _ ` | ~` (an RFC 6265 cookie-name token)";

/// RFC 6265 `cookie-name` = RFC 2616 `token`: visible ASCII except separators.
fn is_cookie_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#'
                | '$'
                | '%'
                | '&'
                | '\''
                | '*'
                | '+'
                | '-'
                | '.'
                | '^'
                | '_'
                | '`'
                | '|'
                | '~'
        )
}

/// Two listen addresses that cannot both be bound: same port (not 0) and the same IP, or one
/// of them the wildcard address (which covers every IP).
fn addresses_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The condition's field name as written in the file.
fn condition_kind(condition: &Condition) -> &'static str {
    match condition {
        Condition::HostHeader(_) => "host_header",
        Condition::PathPattern(_) => "path_pattern",
        Condition::HttpHeader(_) => "http_header",
        Condition::HttpRequestMethod(_) => "http_request_method",
        Condition::QueryString(_) => "query_string",
        Condition::SourceIp(_) => "source_ip",
    }
}

const HOST_CHARS: &str = "letters, digits, `-`, `.`, `*` and `?`";
const PATH_CHARS: &str = "letters, digits and `_ - . $ / ~ \" ' @ : + & * ?`";
const HEADER_NAME_CHARS: &str =
    "letters, digits and `! # $ % & ' + - . ^ _ ` | ~` (an RFC 7230 token, no wildcards)";
const METHOD_CHARS: &str = "`A-Z`, `-` and `_` (methods match exactly and case-sensitively)";

fn is_method_char(c: char) -> bool {
    c.is_ascii_uppercase() || c == '-' || c == '_'
}

fn is_host_pattern_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '?')
}

fn is_path_pattern_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '_' | '-' | '.' | '$' | '/' | '~' | '"' | '\'' | '@' | ':' | '+' | '&' | '*' | '?'
        )
}

/// RFC 7230 `tchar`, minus `*` (ALB header names take no wildcards).
fn is_header_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#' | '$' | '%' | '&' | '\'' | '+' | '-' | '.' | '^' | '_' | '`' | '|' | '~'
        )
}

fn count_wildcards(value: &str) -> usize {
    value.chars().filter(|c| matches!(c, '*' | '?')).count()
}

/// Wildcards in a query-string pattern, where `\*` and `\?` are literal.
fn count_unescaped_wildcards(value: &str) -> usize {
    let mut count = 0;
    let mut escaped = false;
    for c in value.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '*' | '?' if !escaped => count += 1,
            _ => escaped = false,
        }
    }
    count
}

/// A CIDR (`10.0.0.0/8`, `2001:db8::/32`) or bare IP; ALB rejects `255.255.255.255/32`.
fn check_source_ip(value: &str) -> Result<(), String> {
    let network: ipnet::IpNet = match value.parse() {
        Ok(network) => network,
        Err(_) => match value.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.into(),
            Err(_) => {
                return Err(format!(
                    "`{value}` is not a CIDR block (e.g. `10.0.0.0/8`) or an IP address"
                ))
            }
        },
    };
    if network
        == "255.255.255.255/32"
            .parse::<ipnet::IpNet>()
            .expect("valid literal")
    {
        return Err("`255.255.255.255/32` is not allowed (ALB)".to_string());
    }
    Ok(())
}

/// ALB's target group name rule: ≤32 letters, digits or hyphens, no hyphen at either end.
fn check_target_group_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if name.is_empty() {
        Err("must not be empty".to_string())
    } else if chars > MAX_TARGET_GROUP_NAME_CHARS {
        Err(format!("`{name}` is {chars} characters long; at most {MAX_TARGET_GROUP_NAME_CHARS} are allowed"))
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Err(format!(
            "`{name}` may only contain letters, digits and hyphens"
        ))
    } else if name.starts_with('-') || name.ends_with('-') {
        Err(format!("`{name}` must not start or end with a hyphen"))
    } else {
        Ok(())
    }
}

/// The names inside `#{...}` placeholders of a redirect component.
fn placeholders(value: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                found.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    found
}

mod schedule;
mod services;
#[cfg(test)]
mod tests;
