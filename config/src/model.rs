//! The typed shape of scalegate's YAML file.
//!
//! Names and defaults follow the AWS ALB API (see `shared/reference/alb-ecs-semantics.md`), and
//! for services ECS and Application Auto Scaling (`autoscaling-semantics.md`), spelled in
//! snake_case, so a user who knows AWS recognises every field. Every struct denies unknown
//! fields: a misspelt option is an error, never silently ignored.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole file: one load balancer (its listeners and target groups), the admin endpoint,
/// the embedded service registry, and the services scalegate runs and scales.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Load-balancer-wide attributes (ALB `LoadBalancerAttribute`s).
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    /// The admin listener: `/metrics`, `/healthz`, `/api/listeners`.
    #[serde(default)]
    pub admin: Admin,
    /// Optional access log, one line per request with ALB's access-log fields.
    #[serde(default)]
    pub access_log: AccessLog,
    /// Listeners: where clients connect. At most 50, as on ALB.
    #[serde(default)]
    pub listeners: Vec<Listener>,
    /// Target groups that `forward` actions send traffic to. At most 100, as on ALB.
    #[serde(default)]
    pub target_groups: Vec<TargetGroup>,
    /// The embedded Cloud Map-style DNS registry: namespaces served authoritatively, where
    /// services register their instances. Off while no namespace is configured.
    #[serde(default)]
    pub registry: ServiceRegistry,
    /// What services run, ECS-style: one definition per family (command, resources, port).
    /// scalegate numbers revisions itself (`family:1`, `family:2` when a reload changes it).
    #[serde(default)]
    pub task_definitions: Vec<TaskDefinition>,
    /// Services: keep a number of tasks of a task definition running behind target groups,
    /// optionally scaled by Application Auto Scaling-style policies. `scalegate run` starts
    /// them as local processes and a reload updates them.
    #[serde(default)]
    pub services: Vec<Service>,
}

impl Config {
    /// Runs every service's scaling policies under `profile`, whatever the file says (per-policy
    /// `profile` settings included): how `scalegate run --scaling-profile` and load-test
    /// scenarios compare `fast` with `aws` on one config. Applied after validation, so a
    /// `fast:` block left in the file is simply unused under `aws`.
    pub fn with_scaling_profile(mut self, profile: TimingProfile) -> Config {
        for scaling in self.services.iter_mut().filter_map(|s| s.scaling.as_mut()) {
            scaling.profile = profile;
            for policy in &mut scaling.policies {
                match policy {
                    ScalingPolicy::TargetTracking(policy) => policy.profile = None,
                    ScalingPolicy::StepScaling(policy) => policy.profile = None,
                }
            }
        }
        self
    }
}

/// Load-balancer attributes; defaults are ALB's documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancer {
    /// Name used in metrics labels and access logs (ALB's load balancer name).
    pub name: String,
    /// `idle_timeout.timeout_seconds`: a connection with no bytes either way for this long is
    /// closed, and a target that sends nothing for this long gets a 504. 1–4000, default 60.
    pub idle_timeout_seconds: u64,
    /// `client_keep_alive.seconds`: the longest a client connection is kept alive, after which
    /// it is closed gracefully. 60–604800, default 3600.
    pub client_keep_alive_seconds: u64,
    /// Time a client has to send a full request head before the connection is closed (ALB
    /// answers 408 for a client that sends nothing within the idle timeout). 1–4000, default 60.
    pub header_read_timeout_seconds: u64,
    /// `routing.http.xff_header_processing.mode`: append (default), preserve or remove.
    pub xff_header_processing_mode: XffMode,
    /// `routing.http.xff_client_port.enabled`: append the client's port to X-Forwarded-For.
    pub xff_client_port: bool,
    /// `routing.http.preserve_host_header.enabled`: send the Host header unchanged.
    pub preserve_host_header: bool,
    /// `routing.http2.enabled`: offer HTTP/2 by ALPN on HTTPS listeners. Default true.
    pub http2_enabled: bool,
    /// `routing.http.drop_invalid_header_fields.enabled`: drop headers whose names are not
    /// `[-A-Za-z0-9]+` instead of forwarding them. Default false.
    pub drop_invalid_header_fields: bool,
    /// How the proxy spreads connections over CPU cores.
    pub runtime: RuntimeLayout,
}

impl Default for LoadBalancer {
    fn default() -> Self {
        LoadBalancer {
            name: "scalegate".to_string(),
            idle_timeout_seconds: 60,
            client_keep_alive_seconds: 3600,
            header_read_timeout_seconds: 60,
            xff_header_processing_mode: XffMode::Append,
            xff_client_port: false,
            preserve_host_header: false,
            http2_enabled: true,
            drop_invalid_header_fields: false,
            runtime: RuntimeLayout::default(),
        }
    }
}

/// `routing.http.xff_header_processing.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum XffMode {
    /// Append the client address to X-Forwarded-For (or create it).
    #[default]
    Append,
    /// Forward X-Forwarded-For unchanged.
    Preserve,
    /// Strip X-Forwarded-For before forwarding.
    Remove,
}

/// How listener sockets and request handling are spread over cores. Measured in
/// `docs/benchmarks.md`; the default is the faster layout on this kind of machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeLayout {
    /// `per_core`: one single-threaded runtime per worker, each with its own SO_REUSEPORT
    /// socket (no cross-thread handoff); `multi_thread`: one work-stealing runtime.
    pub mode: RuntimeMode,
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
}

impl Default for RuntimeLayout {
    fn default() -> Self {
        RuntimeLayout {
            mode: RuntimeMode::PerCore,
            workers: 0,
        }
    }
}

/// See [`RuntimeLayout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeMode {
    /// One current-thread runtime per worker, sockets shared with SO_REUSEPORT.
    #[default]
    PerCore,
    /// One multi-threaded work-stealing runtime.
    MultiThread,
}

/// The admin listener serving `/metrics`, `/healthz` and `/api/listeners` (bound addresses).
///
/// It answers on loopback without credentials by default. With a token set, every endpoint
/// except `/healthz` requires `Authorization: Bearer <token>`; a non-loopback `address`
/// requires a token, so the admin API is never open to the network by accident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Address to bind; default `127.0.0.1:9901`. Port 0 picks a free port (logged at start).
    /// An address that is not loopback needs `auth_token` or `auth_token_env`.
    pub address: SocketAddr,
    /// Bearer token: when set, every admin endpoint except `/healthz` requires
    /// `Authorization: Bearer <token>`. Not together with `auth_token_env`; must not be empty.
    pub auth_token: Option<String>,
    /// Name of an environment variable holding the bearer token, to keep the secret out of
    /// the file; an unset or empty variable is an error when the token is read. Same effect
    /// as `auth_token`, which it excludes.
    pub auth_token_env: Option<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
            auth_token: None,
            auth_token_env: None,
        }
    }
}

impl Admin {
    /// The bearer token the admin API requires, or `None` when it is open (loopback only).
    ///
    /// Reads the variable named by `auth_token_env` when that is set, so the secret can come
    /// from the environment (a container secret) rather than the file. An unset, empty or
    /// non-UTF-8 variable is an error naming it: starting without the intended protection
    /// would be worse than not starting.
    pub fn resolve_token(&self) -> Result<Option<String>, String> {
        self.resolve_token_with(|name| std::env::var(name))
    }

    /// [`Admin::resolve_token`] with the environment lookup injected, for tests.
    fn resolve_token_with(
        &self,
        lookup: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Option<String>, String> {
        match (&self.auth_token, &self.auth_token_env) {
            (Some(_), Some(_)) => {
                Err("set either admin.auth_token or admin.auth_token_env, not both".to_string())
            }
            (Some(token), None) if token.is_empty() => {
                Err("admin.auth_token must not be empty".to_string())
            }
            (Some(token), None) => Ok(Some(token.clone())),
            (None, Some(name)) => match lookup(name) {
                Ok(token) if token.is_empty() => Err(format!(
                    "environment variable `{name}` (admin.auth_token_env) is empty"
                )),
                Ok(token) => Ok(Some(token)),
                Err(std::env::VarError::NotPresent) => Err(format!(
                    "environment variable `{name}` (admin.auth_token_env) is not set"
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                    "environment variable `{name}` (admin.auth_token_env) is not valid UTF-8"
                )),
            },
            (None, None) => Ok(None),
        }
    }
}

/// Access log settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLog {
    /// Write one line per request. Default false.
    pub enabled: bool,
    /// `stdout` or a file path (appended to); a relative path is relative to the config file.
    pub path: AccessLogPath,
    /// `text` (ALB's space-delimited fields) or `json` (the same fields as an object).
    pub format: AccessLogFormat,
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(from = "String", into = "String")]
pub enum AccessLogPath {
    /// Standard output.
    #[default]
    Stdout,
    /// A file, created if missing and appended to.
    File(std::path::PathBuf),
}

impl From<String> for AccessLogPath {
    fn from(value: String) -> Self {
        if value == "stdout" || value == "-" {
            AccessLogPath::Stdout
        } else {
            AccessLogPath::File(value.into())
        }
    }
}

impl From<AccessLogPath> for String {
    fn from(value: AccessLogPath) -> Self {
        match value {
            AccessLogPath::Stdout => "stdout".to_string(),
            AccessLogPath::File(path) => path.display().to_string(),
        }
    }
}

/// Access-log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// ALB's space-delimited format.
    #[default]
    Text,
    /// One JSON object per line with ALB's field names.
    Json,
}

/// Client-facing protocol of a listener or a target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
pub enum Protocol {
    /// Plain HTTP.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP over TLS.
    #[serde(rename = "HTTPS")]
    Https,
}

impl Protocol {
    /// The name as written in the config file and by ALB (`HTTP`, `HTTPS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        }
    }
}

/// A listener: an address the load balancer accepts connections on, its rules and its default
/// action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// Unique name, used in metrics and logs. Defaults to `<protocol>-<port>`.
    #[serde(default)]
    pub name: Option<String>,
    /// HTTP or HTTPS.
    #[serde(default)]
    pub protocol: Protocol,
    /// Address and port to bind, e.g. `0.0.0.0:80` or `127.0.0.1:0` (0 picks a free port).
    pub address: SocketAddr,
    /// Accept cleartext HTTP/2 with prior knowledge (h2c) on an HTTP listener, beside HTTP/1.1.
    #[serde(default)]
    pub http2_prior_knowledge: bool,
    /// Certificates for an HTTPS listener: required there, rejected on HTTP.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Rules evaluated lowest priority first; the first whose conditions all match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What happens when no rule matches (ALB's default rule).
    pub default_action: Action,
}

impl Listener {
    /// The name used in metrics, logs and errors: `name`, or `<protocol lowercase>-<port>`
    /// (`http-80`) when it is not set, so every listener has a stable, readable label.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!(
                "{}-{}",
                self.protocol.as_str().to_ascii_lowercase(),
                self.address.port()
            ),
        }
    }
}

/// Certificates of an HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Used when the client sends no SNI or no other certificate matches it.
    pub default_certificate: CertificateFiles,
    /// Extra certificates chosen by SNI against their DNS names (at most 25, as on ALB).
    #[serde(default)]
    pub certificates: Vec<CertificateFiles>,
}

/// A PEM certificate chain and its private key, read at start and on every reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// PEM file with the certificate chain, leaf first. Relative paths are relative to the
    /// config file.
    pub certificate: std::path::PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: std::path::PathBuf,
}

/// A listener rule: conditions that must all match, and the action to take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// 1–50000, unique per listener; lower is evaluated first.
    pub priority: u32,
    /// All must match (AND); the values inside one condition are alternatives (OR).
    pub conditions: Vec<Condition>,
    /// The terminal action.
    pub action: Action,
}

/// One rule condition, as ALB's `RuleCondition`. At most one each of host_header,
/// path_pattern, http_request_method and source_ip per rule; any number of http_header and
/// query_string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Host names, case-insensitive, with `*` and `?` wildcards.
    HostHeader(Vec<String>),
    /// Path patterns, case-sensitive, with `*` and `?`; the query string is never seen.
    PathPattern(Vec<String>),
    /// A header by name (case-insensitive) and values (case-insensitive, wildcards).
    HttpHeader(HttpHeaderCondition),
    /// Request methods, exact and case-sensitive.
    HttpRequestMethod(Vec<String>),
    /// Query-string key/value pairs (case-insensitive, wildcards); any pair found matches.
    QueryString(Vec<QueryStringPair>),
    /// Client CIDRs, IPv4 or IPv6, matched against the TCP peer.
    SourceIp(Vec<String>),
}

/// The `http_header` condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpHeaderCondition {
    /// Header name (not `Host`; use host_header).
    pub name: String,
    /// Alternatives for its value.
    pub values: Vec<String>,
}

/// One `query_string` pair. An omitted key matches any key with that value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryStringPair {
    /// Key pattern; omitted matches any key.
    #[serde(default)]
    pub key: Option<String>,
    /// Value pattern.
    pub value: String,
}

/// A rule's terminal action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Send the request to a target group (or several, by weight).
    Forward(ForwardAction),
    /// Answer with a 301/302 redirect built from the request.
    Redirect(RedirectAction),
    /// Answer with a fixed status, content type and body.
    FixedResponse(FixedResponseAction),
}

/// `forward`: either `target_group: name` or `target_groups: [{name, weight}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardAction {
    /// A single target group.
    #[serde(default)]
    pub target_group: Option<String>,
    /// Several target groups with weights 0–999 (at most 5).
    #[serde(default)]
    pub target_groups: Vec<WeightedTargetGroup>,
    /// Group-level stickiness with the `AWSALBTG` cookie.
    #[serde(default)]
    pub stickiness: Option<TargetGroupStickiness>,
}

/// A target group and its weight inside a forward action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedTargetGroup {
    /// Target group name.
    pub name: String,
    /// 0–999; traffic is proportional to weight. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// `TargetGroupStickinessConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetGroupStickiness {
    /// Turn group stickiness on.
    #[serde(default)]
    pub enabled: bool,
    /// 1–604800 seconds. Default 3600.
    #[serde(default = "default_group_stickiness_seconds")]
    pub duration_seconds: u64,
}

fn default_group_stickiness_seconds() -> u64 {
    3600
}

/// `redirect`: each component defaults to the request's own (`#{protocol}` and so on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectAction {
    /// `HTTP`, `HTTPS` or `#{protocol}` (default).
    #[serde(default = "placeholder_protocol")]
    pub protocol: String,
    /// Host, may use `#{host}`; default `#{host}`.
    #[serde(default = "placeholder_host")]
    pub host: String,
    /// 1–65535 or `#{port}` (default).
    #[serde(default = "placeholder_port")]
    pub port: String,
    /// Absolute path, may use `#{path}` (which has no leading `/`); default `/#{path}`.
    #[serde(default = "placeholder_path")]
    pub path: String,
    /// Query without the leading `?`; default `#{query}`.
    #[serde(default = "placeholder_query")]
    pub query: String,
    /// `HTTP_301` or `HTTP_302`.
    pub status_code: RedirectStatus,
}

fn placeholder_protocol() -> String {
    "#{protocol}".into()
}
fn placeholder_host() -> String {
    "#{host}".into()
}
fn placeholder_port() -> String {
    "#{port}".into()
}
fn placeholder_path() -> String {
    "/#{path}".into()
}
fn placeholder_query() -> String {
    "#{query}".into()
}

/// Redirect status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RedirectStatus {
    /// Moved permanently.
    #[serde(rename = "HTTP_301")]
    Http301,
    /// Found.
    #[serde(rename = "HTTP_302")]
    Http302,
}

/// `fixed-response`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FixedResponseAction {
    /// 2XX, 4XX or 5XX.
    pub status_code: u16,
    /// text/plain, text/css, text/html, application/javascript or application/json.
    #[serde(default)]
    pub content_type: Option<String>,
    /// 0–1024 characters.
    #[serde(default)]
    pub message_body: String,
}

/// HTTP version spoken to targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum ProtocolVersion {
    /// HTTP/1.1 to targets (default).
    #[default]
    #[serde(rename = "HTTP1")]
    Http1,
    /// HTTP/2 to targets (prior knowledge over HTTP, ALPN over HTTPS).
    #[serde(rename = "HTTP2")]
    Http2,
}

/// A target group: where forwarded requests go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// Unique name, ≤32 characters, letters, digits and hyphens, not starting or ending with a
    /// hyphen (as ALB).
    pub name: String,
    /// Protocol to targets; HTTPS does not verify the target's certificate, as ALB.
    #[serde(default)]
    pub protocol: Protocol,
    /// HTTP1 or HTTP2 to targets.
    #[serde(default)]
    pub protocol_version: ProtocolVersion,
    /// Default port for targets that do not name one.
    #[serde(default = "default_target_port")]
    pub port: u16,
    /// Static targets: `ip:port`, `ip` (uses `port`), `[v6]:port`, or `{address, port}`. Only IP
    /// addresses and `localhost`: follow a host name with `discovery.dns_name`.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Time to establish a target connection before answering 504. Default 10 s (ALB).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// Time to wait for response headers before answering 504. Default: the load balancer's
    /// idle timeout.
    #[serde(default)]
    pub response_timeout_seconds: Option<u64>,
    /// Idle keep-alive connections kept per target. Default 256.
    #[serde(default = "default_pool_idle")]
    pub max_idle_connections_per_target: usize,
    /// Active health checks: which targets get traffic. Defaults are ALB's.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// `deregistration_delay.timeout_seconds`: how long a deregistered (draining) target may
    /// finish its in-flight requests; it gets no new ones. 0–3600, default 300. Unlike ALB,
    /// which always waits the full delay, a draining target is removed as soon as it has no
    /// requests in flight, or when the delay ends, whichever is first.
    #[serde(default = "default_deregistration_delay")]
    pub deregistration_delay_seconds: u64,
    /// `slow_start.duration_seconds`: a target that becomes healthy receives a share of
    /// requests that grows linearly to its full share over this time, so it can warm up.
    /// 0 (off, the default) or 30–900. Cannot be combined with `least_outstanding_requests`
    /// (as on ALB).
    #[serde(default)]
    pub slow_start_duration_seconds: u64,
    /// `load_balancing.algorithm.type`: how a target is chosen for each request.
    #[serde(default)]
    pub load_balancing_algorithm: LoadBalancingAlgorithm,
    /// `load_balancing.algorithm.anomaly_mitigation`: send less traffic to a target whose
    /// share of 5xx responses and connection errors is well above its peers', until it
    /// recovers. Only with `load_balancing_algorithm: weighted_random` (as on ALB). Default
    /// false.
    #[serde(default)]
    pub anomaly_mitigation: bool,
    /// Target stickiness (ALB `stickiness.*`): keep a client on one target by cookie.
    #[serde(default)]
    pub stickiness: TargetStickiness,
    /// Passive health: learn from failed requests between health checks (ALB has no
    /// equivalent setting).
    #[serde(default)]
    pub passive_health: PassiveHealth,
    /// Targets found by watching a DNS name or a file, in addition to `targets`: new
    /// addresses are registered (and health-checked), vanished ones drained.
    #[serde(default)]
    pub discovery: Option<TargetDiscovery>,
}

fn default_target_port() -> u16 {
    80
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_pool_idle() -> usize {
    256
}
fn default_deregistration_delay() -> u64 {
    300
}

/// How a target group picks a target for each request (ALB `load_balancing.algorithm.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancingAlgorithm {
    /// Each target in turn (default): best when requests cost about the same and targets are
    /// alike.
    #[default]
    RoundRobin,
    /// The target with the fewest requests in flight: best when request cost or target
    /// capacity varies. Cannot be combined with slow start.
    LeastOutstandingRequests,
    /// A random target, all equally likely unless slow start or anomaly mitigation lowers a
    /// target's weight. Needed for `anomaly_mitigation`.
    WeightedRandom,
}

/// A target group's active health checks (ALB `HealthCheck*` settings and `Matcher`).
///
/// A check is a `GET` of `path` on each target; a target is in service while its checks
/// pass. Defaults are ALB's, except `initial_healthy_threshold_count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    /// Run health checks. Default true. With false every registered target is in service,
    /// and only passive health takes a failing one out (ALB cannot turn checks off for IP
    /// targets).
    pub enabled: bool,
    /// HTTP or HTTPS (HTTPS does not verify the target's certificate). Default: the target
    /// group's protocol, as the ALB console does (the ALB API's default is HTTP).
    pub protocol: Option<Protocol>,
    /// Path to request: 1–1024 printable ASCII characters without spaces, starting with `/`,
    /// may include a `?query`. Default `/`, or `/AWS.ALB/healthcheck` when
    /// `matcher.grpc_code` is set (gRPC paths are `/package.service/method`).
    pub path: Option<String>,
    /// `traffic-port` (default: each target's own port) or a port 1–65535.
    pub port: HealthCheckPort,
    /// Time between checks of one target. 5–300, default 30.
    pub interval_seconds: u64,
    /// A check with no response in this time fails. 2–120, default 5; must be less than
    /// `interval_seconds`.
    pub timeout_seconds: u64,
    /// Consecutive passed checks that bring an unhealthy target back into service. 2–10,
    /// default 5.
    pub healthy_threshold_count: u32,
    /// Consecutive failed checks that take a target out of service. 2–10, default 2.
    pub unhealthy_threshold_count: u32,
    /// Checks a newly registered target must pass before it gets traffic. 1–10, default 1.
    /// ALB's user guide says one check; ECS observations match the healthy threshold (set
    /// this equal to `healthy_threshold_count` for that). One is the default because new
    /// capacity should serve as soon as it answers; the healthy threshold exists to stop a
    /// target that has failed from flapping back.
    pub initial_healthy_threshold_count: u32,
    /// Which responses count as a pass.
    pub matcher: Matcher,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            enabled: true,
            protocol: None,
            path: None,
            port: HealthCheckPort::TrafficPort,
            interval_seconds: 30,
            timeout_seconds: 5,
            healthy_threshold_count: 5,
            unhealthy_threshold_count: 2,
            initial_healthy_threshold_count: 1,
            matcher: Matcher::default(),
        }
    }
}

/// The path a gRPC health check requests when none is set (ALB's default).
const DEFAULT_GRPC_HEALTH_CHECK_PATH: &str = "/AWS.ALB/healthcheck";

impl HealthCheck {
    /// The path to request: `path`, or ALB's default for the kind of check (`/`, or
    /// `/AWS.ALB/healthcheck` for gRPC), so the checker never guesses.
    pub fn effective_path(&self) -> &str {
        match (&self.path, &self.matcher.grpc_code) {
            (Some(path), _) => path,
            (None, Some(_)) => DEFAULT_GRPC_HEALTH_CHECK_PATH,
            (None, None) => "/",
        }
    }

    /// The protocol to check with: `protocol`, or the target group's (`group`) when unset.
    pub fn effective_protocol(&self, group: Protocol) -> Protocol {
        self.protocol.unwrap_or(group)
    }
}

/// The port a health check connects to (ALB `HealthCheckPort`).
///
/// Written `traffic-port` or as a number (`8080`; a quoted `"8080"` works too, as in the ALB
/// API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HealthCheckPort {
    /// Each target's own port, where it receives traffic.
    #[default]
    TrafficPort,
    /// This port on every target, e.g. a separate management port. Validation rejects 0.
    Port(u16),
}

/// How [`HealthCheckPort::TrafficPort`] is written.
const TRAFFIC_PORT: &str = "traffic-port";

impl HealthCheckPort {
    /// The port to check a target whose traffic port is `traffic_port`.
    pub fn resolve(self, traffic_port: u16) -> u16 {
        match self {
            HealthCheckPort::TrafficPort => traffic_port,
            HealthCheckPort::Port(port) => port,
        }
    }
}

impl Serialize for HealthCheckPort {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let port = match self {
            HealthCheckPort::TrafficPort => None,
            HealthCheckPort::Port(port) => Some(*port),
        };
        serialize_keyword_or_port(serializer, TRAFFIC_PORT, port)
    }
}

impl<'de> Deserialize<'de> for HealthCheckPort {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(deserialize_keyword_or_port(deserializer, TRAFFIC_PORT)?
            .map_or(HealthCheckPort::TrafficPort, HealthCheckPort::Port))
    }
}

fn serialize_keyword_or_port<S: serde::Serializer>(
    serializer: S,
    keyword: &'static str,
    port: Option<u16>,
) -> Result<S::Ok, S::Error> {
    match port {
        None => serializer.serialize_str(keyword),
        Some(port) => serializer.serialize_u16(port),
    }
}

/// Reads `keyword` (→ `None`), a port number, or a port number in a string: the form of
/// settings that are either a special word or a port (`traffic-port`, `dynamic`).
fn deserialize_keyword_or_port<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    keyword: &'static str,
) -> Result<Option<u16>, D::Error> {
    deserializer.deserialize_any(KeywordOrPortVisitor { keyword })
}

struct KeywordOrPortVisitor {
    keyword: &'static str,
}

impl serde::de::Visitor<'_> for KeywordOrPortVisitor {
    type Value = Option<u16>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(formatter, "`{}` or a port number 1–65535", self.keyword)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        u16::try_from(value)
            .map(Some)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        u64::try_from(value)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
            .and_then(|value| self.visit_u64(value))
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        if value == self.keyword {
            return Ok(None);
        }
        value
            .parse::<u16>()
            .map(Some)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(value), &self))
    }
}

impl JsonSchema for HealthCheckPort {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HealthCheckPort".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The port a health check connects to (ALB `HealthCheckPort`).",
            "oneOf": [
                {
                    "const": TRAFFIC_PORT,
                    "description": "Each target's own port, where it receives traffic (default)."
                },
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 65535,
                    "description": "This port on every target, e.g. a separate management port."
                }
            ]
        })
    }
}

/// Allowed values of `matcher.http_code` (ALB's range).
pub const HTTP_CODE_RANGE: RangeInclusive<u16> = 200..=499;
/// Allowed values of `matcher.grpc_code` (ALB's range).
pub const GRPC_CODE_RANGE: RangeInclusive<u16> = 0..=99;

/// Which health-check responses pass (ALB `Matcher`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Matcher {
    /// HTTP status codes that pass, 200–499: one (`"200"`), a list (`"200,202"`), a range
    /// (`"200-299"`) or a mix (`"200,300-399"`). Default `"200"`. Not used when `grpc_code`
    /// is set.
    pub http_code: String,
    /// gRPC status codes that pass, 0–99, same syntax as `http_code` (ALB's default for gRPC
    /// groups is `"12"`). Setting it makes the check a gRPC call; only for
    /// `protocol_version: HTTP2`. Default: unset, an HTTP check.
    pub grpc_code: Option<String>,
}

impl Default for Matcher {
    fn default() -> Self {
        Matcher {
            http_code: "200".to_string(),
            grpc_code: None,
        }
    }
}

impl Matcher {
    /// The HTTP status codes that pass, as ranges. Assumes validated input: text that does
    /// not parse yields no ranges, so every check fails visibly rather than passing.
    pub fn http_codes(&self) -> Vec<RangeInclusive<u16>> {
        parse_code_matcher(&self.http_code, HTTP_CODE_RANGE).unwrap_or_default()
    }

    /// The gRPC status codes that pass, or `None` for an HTTP check. Assumes validated input,
    /// like [`Matcher::http_codes`].
    pub fn grpc_codes(&self) -> Option<Vec<RangeInclusive<u16>>> {
        self.grpc_code
            .as_deref()
            .map(|text| parse_code_matcher(text, GRPC_CODE_RANGE).unwrap_or_default())
    }
}

/// Parses ALB's code-matcher syntax (`"200"`, `"200,202"`, `"200-299"`, `"200,300-399"`) into
/// ranges, each inside `allowed`. One parser serves validation and the health checker, so
/// what `check` accepts is what is matched.
///
/// Errors name the offending item: an empty item, a reversed range, a value outside
/// `allowed`, or something that is not a number.
pub fn parse_code_matcher(
    text: &str,
    allowed: RangeInclusive<u16>,
) -> Result<Vec<RangeInclusive<u16>>, String> {
    let (start, end) = (allowed.start(), allowed.end());
    if text.trim().is_empty() {
        return Err(format!(
            "must not be empty; write codes {start}–{end}: one, a comma-separated list, or a `low-high` range"
        ));
    }
    let parse_code = |item: &str, code: &str| -> Result<u16, String> {
        let code = code.trim();
        if code.is_empty() {
            return Err(format!("`{item}` is missing a code; a range is `low-high`"));
        }
        if !code.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(format!("`{item}`: `{code}` is not a number"));
        }
        match code.parse::<u16>() {
            Ok(value) if allowed.contains(&value) => Ok(value),
            _ => Err(format!("`{item}`: {code} is outside {start}–{end}")),
        }
    };
    let mut ranges = Vec::new();
    for (index, item) in text.split(',').enumerate() {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!(
                "`{text}`: item {} is empty; separate codes with single commas",
                index + 1
            ));
        }
        let range = match item.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (parse_code(item, low)?, parse_code(item, high)?);
                if low > high {
                    return Err(format!(
                        "`{item}` is reversed; write the lower code first: `{high}-{low}`"
                    ));
                }
                low..=high
            }
            None => {
                let code = parse_code(item, item)?;
                code..=code
            }
        };
        ranges.push(range);
    }
    Ok(ranges)
}

/// Target stickiness (ALB `stickiness.*` attributes): keeps a client's requests on one
/// target while its cookie is valid. Different from a forward action's stickiness, which
/// keeps a client on one target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TargetStickiness {
    /// Turn target stickiness on. Default false.
    pub enabled: bool,
    /// `lb_cookie` (default, as the ALB console) or `app_cookie`.
    #[serde(rename = "type")]
    pub kind: StickinessType,
    /// How long a client stays on its target: 1–604800 (7 days), default 86400 (one day).
    /// ALB `stickiness.lb_cookie.duration_seconds` / `stickiness.app_cookie.duration_seconds`.
    pub duration_seconds: u64,
    /// The application's cookie, for `type: app_cookie` (required there when enabled,
    /// rejected with `lb_cookie`). A cookie-name token (RFC 6265) of at most 255 characters,
    /// not starting with `AWSALB`: ALB reserves `AWSALB`, `AWSALBAPP` and `AWSALBTG`.
    pub cookie_name: Option<String>,
}

impl Default for TargetStickiness {
    fn default() -> Self {
        TargetStickiness {
            enabled: false,
            kind: StickinessType::LbCookie,
            duration_seconds: 86_400,
            cookie_name: None,
        }
    }
}

/// Which cookie target stickiness follows (ALB `stickiness.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum StickinessType {
    /// Duration-based: the load balancer issues its own `AWSALB` cookie naming the target.
    #[default]
    LbCookie,
    /// Application-based: clients stick once the target sets the cookie `cookie_name`; the
    /// load balancer then issues its own `AWSALBAPP` cookie beside it.
    AppCookie,
}

/// Passive health: what the proxy learns from real requests between health checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveHealth {
    /// When a request fails to connect, or its connection is reset before any response byte,
    /// retry it once on another target when that is safe, and mark the target suspect.
    /// Default true. (ALB documents no retries.)
    pub enabled: bool,
    /// How long a suspect target is skipped when health checks are disabled: 1–3600, default
    /// 10. With health checks on, a suspect target is skipped until its next check passes.
    pub suspect_seconds: u64,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            enabled: true,
            suspect_seconds: 10,
        }
    }
}

/// A registered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Target {
    /// `"10.0.0.5:8080"`, `"10.0.0.5"`, or `"[::1]:8080"`.
    Short(String),
    /// `{address: 10.0.0.5, port: 8080}`.
    Full(TargetAddress),
}

/// The long form of a target. A separate struct so that a misspelt field (`prt: 3`) is an
/// error rather than silently ignored, which an untagged enum variant cannot deny.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetAddress {
    /// IP address or `localhost`.
    pub address: String,
    /// Port; defaults to the group's port.
    #[serde(default)]
    pub port: Option<u16>,
}

impl Target {
    /// The address to connect to, with `default_port` (the group's port) when the target names
    /// none. Validation and the proxy both use this, so what `check` accepts is what `run` dials.
    ///
    /// Only IP literals and `localhost` (→ 127.0.0.1) are accepted: a host name's addresses
    /// change, so names are watched by `discovery`, not resolved once here.
    pub fn socket_addr(&self, default_port: u16) -> Result<SocketAddr, String> {
        let (host, port) = match self {
            Target::Short(text) => split_host_port(text)?,
            Target::Full(TargetAddress { address, port }) => (address.as_str(), *port),
        };
        let host_without_brackets = host
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(host);
        let ip = if host_without_brackets.eq_ignore_ascii_case("localhost") {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            host_without_brackets.parse().map_err(|_| {
                if host_without_brackets.is_empty() {
                    "the target has no address".to_string()
                } else {
                    format!("`{host}` is not an IP address; for a host name use the group's `discovery.dns_name`")
                }
            })?
        };
        match port.unwrap_or(default_port) {
            0 => Err("target port must be 1–65535, not 0".to_string()),
            port => Ok(SocketAddr::new(ip, port)),
        }
    }
}

/// Splits `host:port`, `[v6]:port`, `[v6]`, `v6` or `host` into host and optional port.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let text = text.trim();
    let parse_port = |port: &str| {
        port.parse::<u16>()
            .map_err(|_| format!("`{text}`: `{port}` is not a port (1–65535)"))
    };
    if text.starts_with('[') {
        return match text.split_once("]:") {
            Some((host, port)) => Ok((&text[..host.len() + 1], Some(parse_port(port)?))),
            None => Ok((text, None)),
        };
    }
    match text.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Ok((text, None)),
        Some((host, port)) => Ok((host, Some(parse_port(port)?))),
        None => Ok((text, None)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scaling_profile_override_reaches_every_policy() {
        let config = crate::parse(
            crate::EXAMPLE,
            std::path::Path::new("x"),
            std::path::Path::new("."),
        )
        .unwrap()
        .with_scaling_profile(TimingProfile::Aws);
        let scaling = config.services[0].scaling.as_ref().unwrap();
        assert_eq!(scaling.profile, TimingProfile::Aws);
        for policy in &scaling.policies {
            assert_eq!(scaling.profile_of(policy), TimingProfile::Aws);
        }
    }

    use std::env::VarError;

    use super::*;

    #[test]
    fn code_matchers_parse_lists_and_ranges() {
        assert_eq!(
            parse_code_matcher("200", HTTP_CODE_RANGE),
            Ok(vec![200..=200])
        );
        assert_eq!(
            parse_code_matcher("200,202", HTTP_CODE_RANGE),
            Ok(vec![200..=200, 202..=202])
        );
        assert_eq!(
            parse_code_matcher("200,300-399", HTTP_CODE_RANGE),
            Ok(vec![200..=200, 300..=399])
        );
        assert_eq!(
            parse_code_matcher(" 200 , 204-206 ", HTTP_CODE_RANGE),
            Ok(vec![200..=200, 204..=206])
        );
        assert_eq!(
            parse_code_matcher("0-99", GRPC_CODE_RANGE),
            Ok(vec![0..=99])
        );
    }

    #[test]
    fn code_matcher_errors_are_precise() {
        let error = |text: &str| parse_code_matcher(text, HTTP_CODE_RANGE).unwrap_err();
        assert!(error("").starts_with("must not be empty; write codes 200–499"));
        assert_eq!(
            error("200,"),
            "`200,`: item 2 is empty; separate codes with single commas"
        );
        assert_eq!(
            error("299-200"),
            "`299-200` is reversed; write the lower code first: `200-299`"
        );
        assert_eq!(error("100"), "`100`: 100 is outside 200–499");
        assert_eq!(error("200-500"), "`200-500`: 500 is outside 200–499");
        assert_eq!(error("99999"), "`99999`: 99999 is outside 200–499");
        assert_eq!(error("ok"), "`ok`: `ok` is not a number");
        assert_eq!(error("+200"), "`+200`: `+200` is not a number");
        assert_eq!(
            error("-200"),
            "`-200` is missing a code; a range is `low-high`"
        );
        assert_eq!(
            error("200-300-400"),
            "`200-300-400`: `300-400` is not a number"
        );
        let grpc = parse_code_matcher("100", GRPC_CODE_RANGE).unwrap_err();
        assert_eq!(grpc, "`100`: 100 is outside 0–99");
    }

    #[test]
    fn unvalidated_matchers_match_nothing() {
        let matcher = Matcher {
            http_code: "nope".to_string(),
            grpc_code: Some("nope".to_string()),
        };
        assert!(matcher.http_codes().is_empty());
        assert_eq!(matcher.grpc_codes(), Some(Vec::new()));
        assert_eq!(Matcher::default().grpc_codes(), None);
        assert_eq!(Matcher::default().http_codes(), vec![200..=200]);
    }

    #[test]
    fn effective_path_and_protocol() {
        let mut check = HealthCheck::default();
        assert_eq!(check.effective_path(), "/");
        check.matcher.grpc_code = Some("12".to_string());
        assert_eq!(check.effective_path(), "/AWS.ALB/healthcheck");
        check.path = Some("/pkg.Service/Check".to_string());
        assert_eq!(check.effective_path(), "/pkg.Service/Check");
        assert_eq!(check.effective_protocol(Protocol::Https), Protocol::Https);
        assert_eq!(check.effective_protocol(Protocol::Http), Protocol::Http);
        check.protocol = Some(Protocol::Http);
        assert_eq!(check.effective_protocol(Protocol::Https), Protocol::Http);
    }

    fn admin(token: Option<&str>, variable: Option<&str>) -> Admin {
        Admin {
            auth_token: token.map(str::to_string),
            auth_token_env: variable.map(str::to_string),
            ..Admin::default()
        }
    }

    #[test]
    fn admin_token_comes_from_the_file_or_the_environment() {
        let environment = |name: &str| match name {
            "TOKEN" => Ok("from-env".to_string()),
            "EMPTY" => Ok(String::new()),
            "BINARY" => Err(VarError::NotUnicode("\u{fffd}".into())),
            _ => Err(VarError::NotPresent),
        };
        let resolve = |admin: Admin| admin.resolve_token_with(environment);
        assert_eq!(resolve(admin(None, None)), Ok(None));
        assert_eq!(
            resolve(admin(Some("in-file"), None)),
            Ok(Some("in-file".to_string()))
        );
        assert_eq!(
            resolve(admin(None, Some("TOKEN"))),
            Ok(Some("from-env".to_string()))
        );
        assert_eq!(
            resolve(admin(None, Some("MISSING"))).unwrap_err(),
            "environment variable `MISSING` (admin.auth_token_env) is not set"
        );
        assert_eq!(
            resolve(admin(None, Some("EMPTY"))).unwrap_err(),
            "environment variable `EMPTY` (admin.auth_token_env) is empty"
        );
        assert!(resolve(admin(None, Some("BINARY")))
            .unwrap_err()
            .contains("not valid UTF-8"));
        assert!(resolve(admin(Some("a"), Some("TOKEN")))
            .unwrap_err()
            .contains("not both"));
        assert!(resolve(admin(Some(""), None))
            .unwrap_err()
            .contains("must not be empty"));
    }

    #[test]
    fn resolve_token_reads_the_process_environment() {
        // PATH is set wherever tests run; reading it proves the real lookup is wired in.
        let path = std::env::var("PATH").expect("PATH is set");
        if !path.is_empty() {
            assert_eq!(admin(None, Some("PATH")).resolve_token(), Ok(Some(path)));
        }
        assert!(
            admin(None, Some("SCALEGATE_TEST_VARIABLE_THAT_IS_NEVER_SET"))
                .resolve_token()
                .unwrap_err()
                .contains("is not set")
        );
    }
}

/// Where a target group finds targets besides its static `targets`: exactly one of
/// `dns_name`, `srv_name` or `file`.
///
/// A DNS source re-resolves when its records' TTL runs out (clamped to the refresh bounds), so
/// it follows Docker's embedded DNS, a Cloud Map namespace on AWS, or scalegate's own registry.
/// A name inside this process's own registry (with no `name_servers`) is read from the
/// registry directly, told of every change: the refresh and failure settings then do not apply.
/// Settings a source cannot use are errors (`port` with `srv_name`; `address_family` and
/// `name_servers` with `file`), so nothing written is silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TargetDiscovery {
    /// A name whose A/AAAA records are the targets, each address with `port`: a compose
    /// service name, a Cloud Map `awsvpc` service, or `service.namespace` of the embedded
    /// registry. Dot-separated labels of letters, digits, hyphens and underscores (≤63
    /// characters each, ≤253 in all), optionally ending in a dot; no port, and not an IP
    /// address (those go in `targets`).
    pub dns_name: Option<String>,
    /// An SRV name, `_service._tcp.name` (or `_udp`): each record's target host (its A/AAAA
    /// records) and port. Cloud Map `bridge`/`host` services publish only SRV.
    pub srv_name: Option<String>,
    /// A YAML or JSON list of targets (the same forms as `targets`), re-read when it changes.
    /// Relative to the config file; it must exist and be readable when the config is loaded.
    pub file: Option<std::path::PathBuf>,
    /// Port paired with every address of `dns_name` (and used by file targets without one),
    /// 1–65535. Default: the group's `port`. Not with `srv_name`: SRV records carry ports.
    pub port: Option<u16>,
    /// Which address records a DNS source asks for: `any` (A and AAAA, the default), `ipv4`,
    /// `ipv6`. Not with `file`.
    pub address_family: AddressFamily,
    /// Name servers to ask, `ip:port` (port 1–65535), over UDP with TCP fallback. Default: the
    /// embedded registry for names in its namespaces, otherwise the system's
    /// (`/etc/resolv.conf`). Not with `file`.
    pub name_servers: Vec<SocketAddr>,
    /// Shortest time between two resolutions, whatever the TTL says. 1–3600, default 1; at
    /// most `max_refresh_seconds`.
    pub min_refresh_seconds: u64,
    /// Longest time between two resolutions, whatever the TTL says. 1–3600, default 300.
    pub max_refresh_seconds: u64,
    /// Time to wait for an answer (each try) before the query counts as failed. 1–60,
    /// default 2.
    pub query_timeout_seconds: u64,
    /// On a resolver failure (timeout, SERVFAIL, refused, unreachable) keep the last known
    /// targets (the default) rather than drain them all.
    pub keep_last_known_on_failure: bool,
    /// Consecutive NXDOMAIN (or empty) answers, for a name that had targets, before its
    /// targets are drained; one bad answer must not empty a group. 1–100, default 3.
    pub nxdomain_removal_after: u32,
}

impl Default for TargetDiscovery {
    fn default() -> Self {
        TargetDiscovery {
            dns_name: None,
            srv_name: None,
            file: None,
            port: None,
            address_family: AddressFamily::Any,
            name_servers: Vec::new(),
            min_refresh_seconds: 1,
            max_refresh_seconds: 300,
            query_timeout_seconds: 2,
            keep_last_known_on_failure: true,
            nxdomain_removal_after: 3,
        }
    }
}

/// Which address records a DNS source asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AddressFamily {
    /// A and AAAA records.
    #[default]
    Any,
    /// A records only.
    Ipv4,
    /// AAAA records only.
    Ipv6,
}

/// The embedded registry (Cloud Map's role): authoritative DNS for its namespaces, over UDP
/// and TCP on one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceRegistry {
    /// Where the DNS server listens (UDP and TCP, same port). Default `127.0.0.1:0`: a free
    /// port, logged at start and shown by `GET /api/registry`; target groups' DNS sources find
    /// it on their own. Changing it needs a restart.
    pub address: SocketAddr,
    /// The namespaces served, such as `scalegate.local`; at most 50 (Cloud Map's quota). None:
    /// the registry is off.
    pub namespaces: Vec<RegistryNamespace>,
}

impl Default for ServiceRegistry {
    fn default() -> Self {
        ServiceRegistry {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            namespaces: Vec::new(),
        }
    }
}

/// One namespace: a DNS zone whose names are `service.namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryNamespace {
    /// The zone, e.g. `scalegate.local`: dot-separated DNS labels of letters, digits, hyphens
    /// and underscores. Unique (case-insensitively), and not inside another namespace: one
    /// name must have one authority.
    pub name: String,
    /// TTL of the records served, unless a service sets its own. 0–2147483647 (Cloud Map's
    /// range), default 5: short, so scale-outs are seen fast.
    #[serde(default = "default_registry_ttl")]
    pub ttl_seconds: u32,
    /// How long resolvers may cache "no such name" (the SOA minimum in NXDOMAIN answers).
    /// 0–2147483647, default 5 (Cloud Map's is reported to be 900).
    #[serde(default = "default_registry_ttl")]
    pub negative_ttl_seconds: u32,
    /// Services declared up front, with their own TTL or static instances. Services are also
    /// created when an instance is first registered through the API.
    #[serde(default)]
    pub services: Vec<RegistryService>,
}

fn default_registry_ttl() -> u32 {
    5
}

/// A service of a namespace: `name.namespace` (A/AAAA) and `_name._tcp.name.namespace` (SRV).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryService {
    /// The service's DNS label: letters, digits, hyphens and underscores, no dots, at most 62
    /// characters (so that the SRV label `_name` fits in 63). Unique in its namespace,
    /// case-insensitively.
    pub name: String,
    /// Record TTL for this service, 0–2147483647. Default: the namespace's.
    #[serde(default)]
    pub ttl_seconds: Option<u32>,
    /// Instances registered from the config (the API can add more); at most 1000 (Cloud
    /// Map's quota per service).
    #[serde(default)]
    pub instances: Vec<RegistryInstance>,
}

/// An instance registered from the config, as Cloud Map's `RegisterInstance` would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryInstance {
    /// Instance ID: a DNS label (letters, digits, hyphens, underscores; ≤63 characters), so
    /// that `id.service.namespace` can be the SRV target. Unique in its service,
    /// case-insensitively.
    pub id: String,
    /// The address published in A/AAAA records.
    pub address: std::net::IpAddr,
    /// The port published in SRV records, 1–65535.
    pub port: u16,
    /// Custom attributes (≤30; key 1–255, value ≤1024 characters, ≤5000 in all), as Cloud
    /// Map allows. `AWS_INIT_HEALTH_STATUS: HEALTHY` or `UNHEALTHY` sets the instance's
    /// initial health (default healthy). `AWS_INSTANCE_IPV4`, `AWS_INSTANCE_IPV6` and
    /// `AWS_INSTANCE_PORT` are rejected: they come from `address` and `port`.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// Environment variables scalegate sets in every task, so a task definition's `env` must not
/// set them: the task's port, its ID, its service, its `family:N` revision and the metadata
/// URL (named as ECS names its task metadata endpoint variable).
pub const TASK_ENVIRONMENT: [&str; 5] = [
    "PORT",
    "SCALEGATE_TASK_ID",
    "SCALEGATE_SERVICE",
    "SCALEGATE_TASK_DEFINITION",
    "ECS_CONTAINER_METADATA_URI_V4",
];

/// A task definition (ECS `RegisterTaskDefinition`, one process instead of containers): what
/// each task of a service runs and what it reserves.
///
/// The file holds one definition per family. A revision is a number scalegate gives: the
/// first definition loaded is `family:1`; a reload that changes it registers `family:2` and
/// keeps `family:1`, and services using the family roll onto the new revision (ECS's "latest
/// ACTIVE revision" when a service names only the family). To roll back, restore the old text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDefinition {
    /// The family name: 1–255 letters, digits, hyphens and underscores (as ECS), unique.
    pub family: String,
    /// The program to run. `scalegate` is the running scalegate executable itself (so
    /// `args: [workload, ...]` runs the workload server, on `PATH` or not); another name
    /// without `/` is looked up on `PATH` when the task starts; a path with `/` is relative to
    /// the config file and must be an executable file.
    pub command: String,
    /// Its arguments, passed as they are (no shell, no `$PORT` expansion: read the
    /// environment, or run `sh -c '... "$PORT"'`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables, in addition to scalegate's own environment. Names are
    /// non-empty without `=`; values are strings (quote numbers: `"1"`). `PORT`,
    /// `SCALEGATE_TASK_ID`, `SCALEGATE_SERVICE`, `SCALEGATE_TASK_DEFINITION` and
    /// `ECS_CONTAINER_METADATA_URI_V4` are set by scalegate and cannot be set here.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Working directory of the process; relative to the config file; it must exist.
    /// Default: the directory scalegate runs in.
    #[serde(default)]
    pub working_dir: Option<std::path::PathBuf>,
    /// Reserved CPU in units, 1024 = one vCPU (one core here), 128–196608 (ECS task-level
    /// range). `ECSServiceAverageCPUUtilization` is CPU used as a percentage of this, so it
    /// exceeds 100 when a task uses more than it reserved (nothing limits a local process).
    /// Default 1024, so the metric reads as a percentage of one core.
    #[serde(default = "default_task_cpu")]
    pub cpu: u32,
    /// Reserved memory in MiB, 6–1048576 (6 is Docker's smallest limit).
    /// `ECSServiceAverageMemoryUtilization` is resident memory as a percentage of this; a
    /// local process is not limited to it. Default 2048 (with cpu 1024, a valid Fargate size).
    #[serde(default = "default_task_memory")]
    pub memory: u32,
    /// The port the task serves on: `dynamic` (the default) gives each task a free port in
    /// `$PORT`, as ECS dynamic host port mapping does, so any number of tasks fit on one host;
    /// a number is a fixed port, which only one task at a time can use (see `services`).
    #[serde(default)]
    pub port: TaskPort,
    /// Seconds between SIGTERM and SIGKILL when a task is stopped (ECS `stopTimeout`),
    /// 2–120, default 30: Fargate's range, kept locally so a task cannot hold up scalegate's
    /// own shutdown for longer, and so the value carries over to AWS.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_seconds: u64,
}

fn default_task_cpu() -> u32 {
    1024
}
fn default_task_memory() -> u32 {
    2048
}
fn default_stop_timeout() -> u64 {
    30
}

/// The port a task serves on.
///
/// Written `dynamic` or as a number (`8080`; a quoted `"8080"` works too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TaskPort {
    /// A free port chosen by scalegate for each task and passed in `$PORT`.
    #[default]
    Dynamic,
    /// This port for every task (and `$PORT` says so too). Validation rejects 0.
    Fixed(u16),
}

/// How [`TaskPort::Dynamic`] is written.
const DYNAMIC_PORT: &str = "dynamic";

impl Serialize for TaskPort {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let port = match self {
            TaskPort::Dynamic => None,
            TaskPort::Fixed(port) => Some(*port),
        };
        serialize_keyword_or_port(serializer, DYNAMIC_PORT, port)
    }
}

impl<'de> Deserialize<'de> for TaskPort {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(deserialize_keyword_or_port(deserializer, DYNAMIC_PORT)?
            .map_or(TaskPort::Dynamic, TaskPort::Fixed))
    }
}

impl JsonSchema for TaskPort {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TaskPort".into()
    }

    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The port a task serves on.",
            "oneOf": [
                {
                    "const": DYNAMIC_PORT,
                    "description": "A free port chosen by scalegate for each task and passed in `$PORT` (default)."
                },
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 65535,
                    "description": "This port for every task; only one task at a time can use it."
                }
            ]
        })
    }
}

/// A service (ECS `CreateService`, `REPLICA` strategy): keeps `desired_count` tasks of a task
/// definition running, registers them in target groups and the discovery registry, replaces
/// the ones that crash or fail health checks, and lets `scaling` change the count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// 1–255 letters, digits, hyphens and underscores (as ECS), unique. Used in metrics, logs,
    /// task log paths and (by default) the registry name.
    pub name: String,
    /// The family of a task definition in `task_definitions`. Its tasks run the family's
    /// latest revision; `family:N` is not accepted because revision numbers are given at run
    /// time, not written in the file.
    pub task_definition: String,
    /// Tasks to keep running, 0–10000. Default 1 (CloudFormation's default). With `scaling`,
    /// the count is brought into `[min_capacity, max_capacity]` at start, as
    /// RegisterScalableTarget does, and the policies change it from there.
    #[serde(default = "default_desired_count")]
    pub desired_count: u32,
    /// Bounds on the task count while tasks are replaced (deployments, unhealthy tasks).
    #[serde(default)]
    pub deployment_configuration: DeploymentConfiguration,
    /// Seconds after a task starts during which failed target group health checks do not get
    /// it replaced (ECS `healthCheckGracePeriodSeconds`), 0–2147483647, default 0. Only with
    /// `load_balancers`, whose health checks it suspends.
    #[serde(default)]
    pub health_check_grace_period_seconds: u64,
    /// Target groups the tasks are registered in (each task as `127.0.0.1:<its port>`), at
    /// most 5 (as ECS). A task counts as healthy once every one of them says so.
    #[serde(default)]
    pub load_balancers: Vec<ServiceLoadBalancer>,
    /// The discovery registry name the tasks register under (ECS `serviceRegistries`, Cloud
    /// Map): A and SRV records of `service.namespace`.
    #[serde(default)]
    pub service_registry: Option<ServiceRegistration>,
    /// Where tasks run: `local` (child processes of scalegate), the only backend so far.
    #[serde(default)]
    pub backend: Backend,
    /// Application Auto Scaling for this service: capacity bounds, policies and schedules.
    /// Without it the service keeps `desired_count`.
    #[serde(default)]
    pub scaling: Option<ServiceScaling>,
}

fn default_desired_count() -> u32 {
    1
}

impl Service {
    /// The registry service name the tasks register under (`service_registry.service`, or
    /// this service's name) with its namespace; `None` without `service_registry`. One place
    /// for the default so validation and registration agree.
    pub fn registry_name(&self) -> Option<(&str, &str)> {
        self.service_registry.as_ref().map(|registration| {
            (
                registration.namespace.as_str(),
                registration.service.as_deref().unwrap_or(&self.name),
            )
        })
    }
}

/// ECS `deploymentConfiguration` for rolling replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentConfiguration {
    /// Healthy tasks may not fall below `ceil(desired × this / 100)` while tasks are replaced.
    /// 0–100, default 100.
    pub minimum_healthy_percent: u32,
    /// Tasks (starting, running or stopping) may not exceed `floor(desired × this / 100)`,
    /// so a replacement can start before the task it replaces stops. At least 100, default
    /// 200. With both at 100 no task could ever be replaced, so that is rejected.
    pub maximum_percent: u32,
}

impl Default for DeploymentConfiguration {
    fn default() -> Self {
        DeploymentConfiguration {
            minimum_healthy_percent: 100,
            maximum_percent: 200,
        }
    }
}

/// A target group a service's tasks register in (ECS `loadBalancers` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceLoadBalancer {
    /// A target group in `target_groups`, listed once per service. Its static targets and
    /// discovery, if any, stay beside the tasks.
    pub target_group: String,
}

/// Where a service's tasks register in the embedded discovery registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRegistration {
    /// A namespace of `registry.namespaces`.
    pub namespace: String,
    /// The registry service (one DNS label, at most 62 characters); it need not be declared
    /// in the namespace. Default: the service's name, which must then be a DNS label.
    #[serde(default)]
    pub service: Option<String>,
}

/// Where a service's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Child processes of scalegate, each in its own process group, stopped with scalegate.
    #[default]
    Local,
}

/// A service's scalable target and its scaling (Application Auto Scaling
/// `RegisterScalableTarget`, `PutScalingPolicy`, `PutScheduledAction`).
///
/// Several policies combine as AWS combines them: scale out if any policy says out (to the
/// largest capacity), scale in only if all policies that may scale in agree. Scale-in waits
/// while a deployment is in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceScaling {
    /// No policy scales below this, 0–10000.
    pub min_capacity: u32,
    /// No policy scales above this, 0–10000, at least `min_capacity`.
    pub max_capacity: u32,
    /// Kinds of scaling that are paused.
    #[serde(default)]
    pub suspended_state: SuspendedState,
    /// How quickly policies react, unless a policy sets its own: `fast` (default) or `aws`.
    #[serde(default)]
    pub profile: TimingProfile,
    /// Parameters of the `fast` profile, for the policies that use it (a policy can override
    /// each). Setting them when no policy uses `fast` is an error.
    #[serde(default)]
    pub fast: FastProfile,
    /// Target-tracking and step scaling policies, at most 50 (AWS's quota per scalable
    /// target), names unique.
    #[serde(default)]
    pub policies: Vec<ScalingPolicy>,
    /// Changes of min/max capacity at given times, at most 200 (AWS's quota), names unique.
    #[serde(default)]
    pub scheduled_actions: Vec<ScheduledAction>,
}

impl ServiceScaling {
    /// The profile `policy` runs with: its own, else the service's.
    pub fn profile_of(&self, policy: &ScalingPolicy) -> TimingProfile {
        let own = match policy {
            ScalingPolicy::TargetTracking(policy) => policy.profile,
            ScalingPolicy::StepScaling(policy) => policy.profile,
        };
        own.unwrap_or(self.profile)
    }

    /// The fast-profile parameters of a target-tracking policy: the service's, with the
    /// policy's overrides applied.
    pub fn fast_profile_of(&self, policy: &TargetTrackingPolicy) -> FastProfile {
        self.fast.overridden_by(policy.fast.as_ref())
    }

    /// A target-tracking policy's scale-out cooldown in seconds: its own, else 300 (AWS's
    /// default for ECS) under `aws`, else the fast profile's.
    pub fn scale_out_cooldown_seconds(&self, policy: &TargetTrackingPolicy) -> u64 {
        policy.scale_out_cooldown_seconds.unwrap_or_else(|| {
            match policy.profile.unwrap_or(self.profile) {
                TimingProfile::Aws => AWS_DEFAULT_COOLDOWN_SECONDS,
                TimingProfile::Fast => self.fast_profile_of(policy).scale_out_cooldown_seconds,
            }
        })
    }

    /// A target-tracking policy's scale-in cooldown in seconds: its own, else 300 under
    /// `aws`, else the fast profile's.
    pub fn scale_in_cooldown_seconds(&self, policy: &TargetTrackingPolicy) -> u64 {
        policy.scale_in_cooldown_seconds.unwrap_or_else(|| {
            match policy.profile.unwrap_or(self.profile) {
                TimingProfile::Aws => AWS_DEFAULT_COOLDOWN_SECONDS,
                TimingProfile::Fast => self.fast_profile_of(policy).scale_in_cooldown_seconds,
            }
        })
    }

    /// A step policy's cooldown in seconds: its own, else 300 under `aws`, else the fast
    /// profile's scale-in cooldown (the longer one by default: a step policy may go either way).
    pub fn step_cooldown_seconds(&self, policy: &StepScalingPolicy) -> u64 {
        policy
            .cooldown_seconds
            .unwrap_or(match policy.profile.unwrap_or(self.profile) {
                TimingProfile::Aws => AWS_DEFAULT_COOLDOWN_SECONDS,
                TimingProfile::Fast => self.fast.scale_in_cooldown_seconds,
            })
    }
}

/// Application Auto Scaling's default cooldown for ECS services, in seconds.
pub const AWS_DEFAULT_COOLDOWN_SECONDS: u64 = 300;

/// Which kinds of scaling are paused (`SuspendedState` of RegisterScalableTarget). All false
/// by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SuspendedState {
    /// Policies may not remove capacity.
    pub dynamic_scaling_in_suspended: bool,
    /// Policies may not add capacity.
    pub dynamic_scaling_out_suspended: bool,
    /// Scheduled actions do not run.
    pub scheduled_scaling_suspended: bool,
}

/// How quickly policies react.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimingProfile {
    /// Decides every second: a short window that may only scale out reacts to a burst within
    /// seconds (like Knative's panic mode), scale-in waits for a long stable window, and the
    /// direction never reverses inside a cooldown. See `fast`.
    #[default]
    Fast,
    /// Faithful to AWS: 60 s datapoints, target tracking's scale-out alarm 3 of 3 above the
    /// target and scale-in alarm 15 of 15 below 90 % of it, cooldowns 300 s by default; shows
    /// locally what AWS would do with the same policy.
    Aws,
}

/// Parameters of the `fast` profile. Ranges follow Knative's autoscaler, which it is modelled
/// on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FastProfile {
    /// The metric averaged over this many seconds drives normal scaling; scale-in needs it
    /// below target for the whole window. 6–3600, default 60.
    pub stable_window_seconds: u64,
    /// The short window that reacts to bursts; it may only scale out. 1–`stable_window_seconds`,
    /// default 6.
    pub panic_window_seconds: u64,
    /// The panic window acts when it asks for at least this percentage of the current
    /// capacity. 110–1000, default 200.
    pub panic_threshold_percent: u32,
    /// Default scale-out cooldown of target-tracking policies under this profile, 0–86400,
    /// default 10.
    pub scale_out_cooldown_seconds: u64,
    /// Default scale-in cooldown of target-tracking policies (and cooldown of step policies)
    /// under this profile, 0–86400, default 30.
    pub scale_in_cooldown_seconds: u64,
}

impl Default for FastProfile {
    fn default() -> Self {
        FastProfile {
            stable_window_seconds: 60,
            panic_window_seconds: 6,
            panic_threshold_percent: 200,
            scale_out_cooldown_seconds: 10,
            scale_in_cooldown_seconds: 30,
        }
    }
}

impl FastProfile {
    /// These parameters with a policy's overrides applied.
    pub fn overridden_by(&self, overrides: Option<&FastProfileOverride>) -> FastProfile {
        let Some(overrides) = overrides else {
            return *self;
        };
        FastProfile {
            stable_window_seconds: overrides
                .stable_window_seconds
                .unwrap_or(self.stable_window_seconds),
            panic_window_seconds: overrides
                .panic_window_seconds
                .unwrap_or(self.panic_window_seconds),
            panic_threshold_percent: overrides
                .panic_threshold_percent
                .unwrap_or(self.panic_threshold_percent),
            scale_out_cooldown_seconds: overrides
                .scale_out_cooldown_seconds
                .unwrap_or(self.scale_out_cooldown_seconds),
            scale_in_cooldown_seconds: overrides
                .scale_in_cooldown_seconds
                .unwrap_or(self.scale_in_cooldown_seconds),
        }
    }
}

/// A target-tracking policy's own fast-profile parameters; unset ones are the service's
/// `scaling.fast`. Same ranges as there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FastProfileOverride {
    /// See `scaling.fast.stable_window_seconds`.
    pub stable_window_seconds: Option<u64>,
    /// See `scaling.fast.panic_window_seconds`.
    pub panic_window_seconds: Option<u64>,
    /// See `scaling.fast.panic_threshold_percent`.
    pub panic_threshold_percent: Option<u32>,
    /// See `scaling.fast.scale_out_cooldown_seconds`.
    pub scale_out_cooldown_seconds: Option<u64>,
    /// See `scaling.fast.scale_in_cooldown_seconds`.
    pub scale_in_cooldown_seconds: Option<u64>,
}

/// A scaling policy (`PutScalingPolicy`), written as `target_tracking: {...}` or
/// `step_scaling: {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ScalingPolicy {
    /// `TargetTrackingScaling`: keep a metric near a target value.
    TargetTracking(TargetTrackingPolicy),
    /// `StepScaling`: adjust capacity in steps when an alarm fires.
    StepScaling(StepScalingPolicy),
}

impl ScalingPolicy {
    /// The policy's name, whichever kind it is.
    pub fn name(&self) -> &str {
        match self {
            ScalingPolicy::TargetTracking(policy) => &policy.name,
            ScalingPolicy::StepScaling(policy) => &policy.name,
        }
    }
}

/// A target-tracking policy (`TargetTrackingScalingPolicyConfiguration`): capacity follows
/// metric / target, rounded up when adding and never removing so much that the metric would
/// pass the target. Exactly one of `predefined_metric_specification` and
/// `customized_metric_specification`; two target-tracking policies of a service may not
/// watch the same metric (as on AWS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetTrackingPolicy {
    /// `PolicyName`: 1–256 printable characters, unique among the service's policies.
    pub name: String,
    /// The value to hold the metric at: greater than 0 (at most 1.174271e108, AWS's bound).
    /// Percent for CPU and memory, requests per target per minute for
    /// `ALBRequestCountPerTarget`.
    pub target_value: f64,
    /// One of AWS's predefined ECS metrics.
    #[serde(default)]
    pub predefined_metric_specification: Option<PredefinedMetricSpecification>,
    /// A Prometheus metric instead of CloudWatch's custom metrics. It must fall as capacity
    /// rises (a per-task average, not a total).
    #[serde(default)]
    pub customized_metric_specification: Option<CustomizedMetricSpecification>,
    /// After a scale-out, no further scale-out unless larger, for this many seconds,
    /// 0–86400. Default 300 (AWS's) under `aws`, the fast profile's under `fast`.
    #[serde(default)]
    pub scale_out_cooldown_seconds: Option<u64>,
    /// After a scale-in, no further scale-in for this many seconds (a scale-out ends it),
    /// 0–86400. Default 300 under `aws`, the fast profile's under `fast`.
    #[serde(default)]
    pub scale_in_cooldown_seconds: Option<u64>,
    /// The policy never removes capacity and does not vote on scale-in. Default false.
    #[serde(default)]
    pub disable_scale_in: bool,
    /// `fast` or `aws` for this policy; default: the service's `scaling.profile`.
    #[serde(default)]
    pub profile: Option<TimingProfile>,
    /// This policy's fast-profile parameters, over the service's; only when the policy runs
    /// the fast profile.
    #[serde(default)]
    pub fast: Option<FastProfileOverride>,
}

/// `PredefinedMetricSpecification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredefinedMetricSpecification {
    /// Which metric.
    pub predefined_metric_type: PredefinedMetricType,
    /// For `ALBRequestCountPerTarget` only: the target group whose requests are counted, by
    /// name, or in AWS's form `app/<load-balancer>/<id>/targetgroup/<name>/<id>` (its `<name>`
    /// is used). It must be one of the service's `load_balancers`; it may be left out when
    /// the service has exactly one.
    #[serde(default)]
    pub resource_label: Option<String>,
}

impl PredefinedMetricSpecification {
    /// The target group an `ALBRequestCountPerTarget` metric counts: the one `resource_label`
    /// names, else the service's only target group. `None` for the other metrics, or when it
    /// cannot be told (validation rejects those files).
    pub fn target_group<'a>(&'a self, service: &'a Service) -> Option<&'a str> {
        if self.predefined_metric_type != PredefinedMetricType::AlbRequestCountPerTarget {
            return None;
        }
        match &self.resource_label {
            Some(label) => Some(target_group_of_resource_label(label)),
            None => match service.load_balancers.as_slice() {
                [only] => Some(&only.target_group),
                _ => None,
            },
        }
    }
}

/// The target group name in a resource label: the label itself, or `<name>` of AWS's
/// `app/<load-balancer>/<id>/targetgroup/<name>/<id>`.
pub fn target_group_of_resource_label(label: &str) -> &str {
    let parts: Vec<&str> = label.split('/').collect();
    match parts.as_slice() {
        ["app", _, _, "targetgroup", name, _] => name,
        _ => label,
    }
}

/// Application Auto Scaling's predefined metrics for ECS services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PredefinedMetricType {
    /// CPU used by the service's tasks as a percentage of the CPU they reserve, averaged.
    #[serde(rename = "ECSServiceAverageCPUUtilization")]
    EcsServiceAverageCpuUtilization,
    /// Resident memory as a percentage of reserved memory, averaged over the tasks.
    #[serde(rename = "ECSServiceAverageMemoryUtilization")]
    EcsServiceAverageMemoryUtilization,
    /// Requests per target per minute in one of the service's target groups.
    #[serde(rename = "ALBRequestCountPerTarget")]
    AlbRequestCountPerTarget,
}

impl PredefinedMetricType {
    /// AWS's name, as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            PredefinedMetricType::EcsServiceAverageCpuUtilization => {
                "ECSServiceAverageCPUUtilization"
            }
            PredefinedMetricType::EcsServiceAverageMemoryUtilization => {
                "ECSServiceAverageMemoryUtilization"
            }
            PredefinedMetricType::AlbRequestCountPerTarget => "ALBRequestCountPerTarget",
        }
    }
}

/// A metric from Prometheus, where AWS would use a CloudWatch custom metric: `scrape` one
/// from an exposition URL, or ask a Prometheus server a `promql` query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CustomizedMetricSpecification {
    /// Read a metric from a Prometheus text exposition every second.
    Scrape(ScrapedMetric),
    /// Evaluate a PromQL query every second.
    Promql(PromQlQuery),
}

/// A metric scraped from an exposition endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrapedMetric {
    /// The exposition URL, `http://` or `https://`, e.g. `http://127.0.0.1:9100/metrics`.
    pub url: String,
    /// The metric name: letters, digits, `_` and `:`, not starting with a digit.
    pub metric_name: String,
    /// Label values that select the series (labels not named may be anything; several
    /// matching series are summed). Label names: letters, digits and `_`, not starting with
    /// a digit or `__`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A PromQL query that returns one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromQlQuery {
    /// The Prometheus server, `http://` or `https://`, e.g. `http://127.0.0.1:9090`
    /// (`/api/v1/query` is added).
    pub server_url: String,
    /// The query; it must return a single sample (a scalar or a one-element vector). Its
    /// syntax is checked by the server.
    pub query: String,
}

/// A step scaling policy (`StepScalingPolicyConfiguration`) and the alarm that drives it
/// (on AWS a separate CloudWatch alarm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepScalingPolicy {
    /// `PolicyName`: 1–256 printable characters, unique among the service's policies.
    pub name: String,
    /// How `scaling_adjustment` is read.
    pub adjustment_type: AdjustmentType,
    /// 1–20 steps (AWS's quota). Bounds are relative to the alarm threshold. As AWS requires:
    /// the ranges may neither overlap nor leave a gap, at most one step has no lower bound and
    /// at most one no upper bound, no step lacks both, a negative lower bound needs a step
    /// without lower bound and a positive upper bound one without upper bound.
    pub step_adjustments: Vec<StepAdjustment>,
    /// The smallest change, for `PercentChangeInCapacity` only: at least 1.
    #[serde(default)]
    pub min_adjustment_magnitude: Option<u32>,
    /// Seconds after a scaling activity before this policy acts again, 0–86400. Default 300
    /// (AWS's) under `aws`, the fast profile's `scale_in_cooldown_seconds` under `fast`.
    #[serde(default)]
    pub cooldown_seconds: Option<u64>,
    /// How the alarm's datapoints become the value the steps are chosen by: `Average`
    /// (default, as AWS when unset), `Minimum` or `Maximum`.
    #[serde(default)]
    pub metric_aggregation_type: MetricAggregationType,
    /// The alarm that triggers the policy.
    pub alarm: MetricAlarm,
    /// `fast` or `aws` for this policy; default: the service's `scaling.profile`.
    #[serde(default)]
    pub profile: Option<TimingProfile>,
}

/// How a step's `scaling_adjustment` changes capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AdjustmentType {
    /// Add (or remove, when negative) this many tasks.
    ChangeInCapacity,
    /// Add (or remove) this percentage of the current capacity, rounded as AWS rounds.
    PercentChangeInCapacity,
    /// Set the capacity to exactly this (not negative).
    ExactCapacity,
}

/// One step (`StepAdjustment`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepAdjustment {
    /// Lower bound of metric − threshold; unset is −∞. Inclusive above the threshold,
    /// exclusive below it.
    #[serde(default)]
    pub metric_interval_lower_bound: Option<f64>,
    /// Upper bound of metric − threshold; unset is +∞. Exclusive above the threshold,
    /// inclusive below it.
    #[serde(default)]
    pub metric_interval_upper_bound: Option<f64>,
    /// The adjustment, read as `adjustment_type` says.
    pub scaling_adjustment: i64,
}

/// `MetricAggregationType` of a step policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum MetricAggregationType {
    /// Mean of the datapoints.
    #[default]
    Average,
    /// Smallest datapoint.
    Minimum,
    /// Largest datapoint.
    Maximum,
}

/// The alarm a step policy hangs on (CloudWatch `PutMetricAlarm`): in ALARM when
/// `datapoints_to_alarm` of the last `evaluation_periods` datapoints breach the threshold.
/// Exactly one of `predefined_metric_specification` and `customized_metric_specification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricAlarm {
    /// One of AWS's predefined ECS metrics.
    #[serde(default)]
    pub predefined_metric_specification: Option<PredefinedMetricSpecification>,
    /// A Prometheus metric.
    #[serde(default)]
    pub customized_metric_specification: Option<CustomizedMetricSpecification>,
    /// How one period's samples become a datapoint. Default `Average`.
    #[serde(default)]
    pub statistic: Statistic,
    /// Length of a datapoint in seconds. Default 60. Under `aws`, CloudWatch's values: 10, 20,
    /// 30 or a multiple of 60; under `fast`, 1–86400. `period_seconds × evaluation_periods`
    /// is at most one day (seven days for periods of an hour or more), as CloudWatch allows.
    #[serde(default = "default_alarm_period")]
    pub period_seconds: u64,
    /// The value datapoints are compared with (a finite number).
    pub threshold: f64,
    /// How a datapoint is compared with the threshold.
    pub comparison_operator: ComparisonOperator,
    /// Datapoints considered ("N" of "M out of N"), at least 1. Default 1.
    #[serde(default = "default_evaluation_periods")]
    pub evaluation_periods: u32,
    /// Breaching datapoints among them that put the alarm in ALARM ("M"),
    /// 1–`evaluation_periods`. Default: `evaluation_periods`.
    #[serde(default)]
    pub datapoints_to_alarm: Option<u32>,
}

fn default_alarm_period() -> u64 {
    60
}
fn default_evaluation_periods() -> u32 {
    1
}

impl MetricAlarm {
    /// `datapoints_to_alarm`, or `evaluation_periods` when unset (CloudWatch's default).
    pub fn effective_datapoints_to_alarm(&self) -> u32 {
        self.datapoints_to_alarm.unwrap_or(self.evaluation_periods)
    }
}

/// How an alarm combines one period's samples (CloudWatch `Statistic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum Statistic {
    /// Mean of the samples.
    #[default]
    Average,
    /// Smallest sample.
    Minimum,
    /// Largest sample.
    Maximum,
    /// Sum of the samples.
    Sum,
    /// Number of samples.
    SampleCount,
}

/// How an alarm compares a datapoint with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ComparisonOperator {
    /// `datapoint >= threshold`.
    GreaterThanOrEqualToThreshold,
    /// `datapoint > threshold`.
    GreaterThanThreshold,
    /// `datapoint < threshold`.
    LessThanThreshold,
    /// `datapoint <= threshold`.
    LessThanOrEqualToThreshold,
}

/// A scheduled action (`PutScheduledAction`): at the given times, set new capacity bounds;
/// capacity outside them is brought inside at once (cooldowns do not apply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledAction {
    /// `ScheduledActionName`: 1–256 ASCII characters without control characters, `:`, `/` or
    /// `|`, not starting with a space; unique among the service's scheduled actions.
    pub name: String,
    /// `at(yyyy-mm-ddThh:mm:ss)` once, `rate(value unit)` with a positive whole value and unit
    /// minute(s), hour(s) or day(s), or `cron(minutes hours day-of-month month day-of-week
    /// year)`: AWS's six fields, with `, - * /`, `?` in exactly one of day-of-month and
    /// day-of-week, `L` and `W` in day-of-month, `L` and `#` in day-of-week, names `JAN`–`DEC`
    /// and `SUN`–`SAT`. Validation checks this shape and the values' ranges; when the action
    /// runs is the autoscaler's business.
    pub schedule: String,
    /// IANA time zone the schedule is read in, DST-aware, e.g. `Europe/Berlin`; spelt as the
    /// time zone database spells it. Default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The action does not run before this RFC 3339 timestamp, e.g. `2026-06-01T00:00:00Z`.
    #[serde(default)]
    pub start_time: Option<String>,
    /// The action does not run after this RFC 3339 timestamp; later than `start_time`.
    #[serde(default)]
    pub end_time: Option<String>,
    /// The new bounds: one or both.
    pub scalable_target_action: ScalableTargetAction,
}

/// The capacity bounds a scheduled action sets (`ScalableTargetAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ScalableTargetAction {
    /// New minimum, 0–10000; capacity below it is raised to it.
    pub min_capacity: Option<u32>,
    /// New maximum, 0–10000, at least `min_capacity`; capacity above it is lowered to it.
    pub max_capacity: Option<u32>,
}
