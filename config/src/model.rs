//! The typed shape of scalegate's YAML file.
//!
//! Names and defaults follow the AWS ALB API (see `shared/reference/alb-ecs-semantics.md`), spelled
//! in snake_case, so a user who knows ALB recognises every field. Every struct denies unknown
//! fields: a misspelt option is an error, never silently ignored.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole file: one load balancer (its listeners and target groups) plus the admin endpoint.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Address to bind; default `127.0.0.1:9901`. Port 0 picks a free port (logged at start).
    pub address: SocketAddr,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
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
    /// addresses and `localhost` for now: host names arrive with DNS discovery.
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
    /// Only IP literals and `localhost` (→ 127.0.0.1) are accepted for now: host names arrive
    /// with DNS discovery.
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
                    format!("`{host}` is not an IP address; host names arrive with DNS discovery; use an IP address")
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
