//! The optional access log: one line per request with ALB's access-log fields, in ALB's
//! order, so that existing ALB log tooling (Athena tables, grok patterns) reads it unchanged.
//!
//! The request path only moves an [`AccessLogEntry`] into a bounded channel
//! ([`AccessLogger::log`]); formatting and writing happen on a dedicated thread with a
//! buffered writer flushed at least every 100 ms. When the writer falls behind, lines are
//! dropped rather than slowing requests down, and counted in
//! `scalegate_access_log_dropped_total`.
//!
//! Text lines follow ALB exactly: space-delimited, `-` for a missing value, `-1` for a
//! processing time that could not be measured. Inside quoted fields `"` and `\` are escaped
//! with a backslash and control characters are written as `\xNN`, so that a line can never be
//! split or unbalanced by client-controlled input. JSON lines are one object per line with
//! ALB's field names in ALB's order; numbers stay numbers, and `-` becomes `null`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use scalegate_config::{AccessLog, AccessLogFormat, AccessLogPath};

/// Lines that may wait for the writer before new ones are dropped: a few seconds of a busy
/// proxy's traffic, a few MB of memory when full.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;

/// Longest time a written line may sit in the buffer before it reaches the file.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// ALB truncates the user agent at 8 KB; so do we, to bound line size.
pub const USER_AGENT_LIMIT: usize = 8 * 1024;

/// The `type` field: the client-facing protocol of the request or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    /// HTTP/1.x without TLS.
    Http,
    /// HTTP/1.x over TLS.
    Https,
    /// HTTP/2 over TLS.
    H2,
    /// WebSocket without TLS (logged when the connection closes).
    Ws,
    /// WebSocket over TLS.
    Wss,
    /// gRPC over HTTP/2 with TLS.
    Grpcs,
}

impl RequestType {
    fn as_str(self) -> &'static str {
        match self {
            RequestType::Http => "http",
            RequestType::Https => "https",
            RequestType::H2 => "h2",
            RequestType::Ws => "ws",
            RequestType::Wss => "wss",
            RequestType::Grpcs => "grpcs",
        }
    }
}

/// The `matched_rule_priority` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedRule {
    /// A listener rule with this priority (1–50000) matched.
    Priority(u32),
    /// No rule matched and the default action ran (ALB writes `0`).
    Default,
    /// Rule evaluation failed (ALB writes `-1`).
    EvaluationError,
    /// Rules were never evaluated, e.g. the request was malformed (ALB writes `-`).
    NotEvaluated,
}

/// One of ALB's `actions_executed` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The request was inspected by a WAF.
    Waf,
    /// WAF inspection failed and the request went on (fail open).
    WafFailed,
    /// An authenticate action ran.
    Authenticate,
    /// A redirect action answered.
    Redirect,
    /// A fixed-response action answered.
    FixedResponse,
    /// The request was forwarded to a target.
    Forward,
}

/// In execution order: ALB always runs WAF, then authentication, then the final action.
const ACTIONS: [(Action, &str); 6] = [
    (Action::Waf, "waf"),
    (Action::WafFailed, "waf-failed"),
    (Action::Authenticate, "authenticate"),
    (Action::Redirect, "redirect"),
    (Action::FixedResponse, "fixed-response"),
    (Action::Forward, "forward"),
];

/// The set of actions that ran, kept as bits so building an entry does not allocate; written
/// comma-separated in execution order, `-` when none ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ActionsExecuted(u8);

impl ActionsExecuted {
    /// The set with `action` added.
    #[must_use]
    pub fn with(self, action: Action) -> ActionsExecuted {
        ActionsExecuted(self.0 | 1 << action as u8)
    }

    /// Whether `action` ran.
    pub fn contains(self, action: Action) -> bool {
        self.0 & (1 << action as u8) != 0
    }

    fn write(self, out: &mut String) -> bool {
        let mut first = true;
        for (action, name) in ACTIONS {
            if self.contains(action) {
                if !first {
                    out.push(',');
                }
                out.push_str(name);
                first = false;
            }
        }
        !first
    }
}

impl From<Action> for ActionsExecuted {
    fn from(action: Action) -> ActionsExecuted {
        ActionsExecuted::default().with(action)
    }
}

/// The `classification` field: desync mitigation's verdict on a non-compliant request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// Not RFC 7230 compliant, no known threat.
    Acceptable,
    /// Not compliant and could be parsed differently by other proxies.
    Ambiguous,
    /// High risk; blocked in defensive and strictest modes.
    Severe,
}

impl Classification {
    fn as_str(self) -> &'static str {
        match self {
            Classification::Acceptable => "Acceptable",
            Classification::Ambiguous => "Ambiguous",
            Classification::Severe => "Severe",
        }
    }
}

/// Everything ALB logs about one request, in ALB's field order. `None` is written as `-`
/// (or `-1` for the processing times), as ALB does. The `elb` field comes from the logger,
/// and `target:port_list` / `target_status_code_list` are derived from `target` and
/// `target_status_code` because scalegate, like ALB, never retries on another target.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLogEntry {
    /// `type`.
    pub request_type: RequestType,
    /// `time`: when the response (or the error) was sent to the client.
    pub time: SystemTime,
    /// `client:port`.
    pub client: SocketAddr,
    /// `target:port`; `None` when no target was connected.
    pub target: Option<SocketAddr>,
    /// `request_processing_time`: request received → sent to the target; `None` (`-1`) when
    /// the request was never dispatched.
    pub request_processing_time: Option<Duration>,
    /// `target_processing_time`: request sent → response headers received.
    pub target_processing_time: Option<Duration>,
    /// `response_processing_time`: response headers received → response sent to the client.
    pub response_processing_time: Option<Duration>,
    /// `elb_status_code`: the status scalegate sent to the client.
    pub elb_status_code: Option<u16>,
    /// `target_status_code`: the status the target sent.
    pub target_status_code: Option<u16>,
    /// `received_bytes`: bytes received from the client (headers and body).
    pub received_bytes: u64,
    /// `sent_bytes`: bytes sent to the client (headers and body).
    pub sent_bytes: u64,
    /// `request`: `METHOD scheme://host:port/path?query HTTP/x.y`; `None` for a request that
    /// could not be parsed, written `- - - ` like ALB.
    pub request: Option<String>,
    /// `user_agent`, truncated to 8 KB when written.
    pub user_agent: Option<String>,
    /// `ssl_cipher` (OpenSSL-style name), HTTPS listeners only.
    pub ssl_cipher: Option<&'static str>,
    /// `ssl_protocol` (`TLSv1.2`, `TLSv1.3`), HTTPS listeners only.
    pub ssl_protocol: Option<&'static str>,
    /// `target_group_arn`: scalegate has no ARNs and writes the target group's name.
    pub target_group: Option<Arc<str>>,
    /// `trace_id`: the `X-Amzn-Trace-Id` value sent to the target.
    pub trace_id: Option<String>,
    /// `domain_name`: the SNI name from the TLS handshake.
    pub domain_name: Option<String>,
    /// `chosen_cert_arn`: scalegate writes the certificate's name.
    pub chosen_cert: Option<Arc<str>>,
    /// `matched_rule_priority`.
    pub matched_rule: MatchedRule,
    /// `request_creation_time`: when the first byte of the request arrived.
    pub request_creation_time: SystemTime,
    /// `actions_executed`.
    pub actions_executed: ActionsExecuted,
    /// `redirect_url`: the Location of a redirect action.
    pub redirect_url: Option<String>,
    /// `error_reason`: ALB's error reason code (e.g. `TargetConnectionError`).
    pub error_reason: Option<&'static str>,
    /// `classification`: `None` for a compliant request.
    pub classification: Option<Classification>,
    /// `classification_reason`: desync mitigation's reason code, e.g. `AmbiguousUri`.
    pub classification_reason: Option<&'static str>,
}

/// How a field is written: ALB quotes some fields and not others, and JSON keeps numbers as
/// numbers.
#[derive(Clone, Copy)]
enum Shape {
    Bare,
    Quoted,
    Number,
}

impl AccessLogEntry {
    /// Calls `field` with each field name, shape and value (`None` = `-`) in ALB's order, so
    /// both formats share one definition of the field list.
    fn visit(&self, elb: &str, mut field: impl FnMut(&'static str, Shape, Option<Cow<'_, str>>)) {
        use Shape::{Bare, Number, Quoted};
        let text = |value: &str| Some(Cow::Owned(value.to_string()));
        let borrowed = |value: Option<&'static str>| value.map(Cow::Borrowed);
        let number = |value: Option<u16>| value.map(|number| Cow::Owned(number.to_string()));
        let seconds = |value: Option<Duration>| {
            Some(Cow::Owned(match value {
                Some(duration) => format!("{:.3}", duration.as_secs_f64()),
                None => "-1".to_string(),
            }))
        };
        let target = self.target.map(|address| address.to_string());

        field(
            "type",
            Bare,
            Some(Cow::Borrowed(self.request_type.as_str())),
        );
        field("time", Bare, Some(Cow::Owned(iso8601_micros(self.time))));
        field("elb", Bare, Some(Cow::Borrowed(elb)));
        field(
            "client:port",
            Bare,
            Some(Cow::Owned(self.client.to_string())),
        );
        field("target:port", Bare, target.as_deref().map(Cow::Borrowed));
        field(
            "request_processing_time",
            Number,
            seconds(self.request_processing_time),
        );
        field(
            "target_processing_time",
            Number,
            seconds(self.target_processing_time),
        );
        field(
            "response_processing_time",
            Number,
            seconds(self.response_processing_time),
        );
        field("elb_status_code", Number, number(self.elb_status_code));
        field(
            "target_status_code",
            Number,
            number(self.target_status_code),
        );
        field(
            "received_bytes",
            Number,
            Some(Cow::Owned(self.received_bytes.to_string())),
        );
        field(
            "sent_bytes",
            Number,
            Some(Cow::Owned(self.sent_bytes.to_string())),
        );
        field(
            "request",
            Quoted,
            Some(Cow::Borrowed(self.request.as_deref().unwrap_or("- - - "))),
        );
        let user_agent = self
            .user_agent
            .as_deref()
            .map(|agent| truncate(agent, USER_AGENT_LIMIT));
        field("user_agent", Quoted, user_agent.map(Cow::Borrowed));
        field("ssl_cipher", Bare, borrowed(self.ssl_cipher));
        field("ssl_protocol", Bare, borrowed(self.ssl_protocol));
        field(
            "target_group_arn",
            Bare,
            self.target_group.as_deref().and_then(text),
        );
        field(
            "trace_id",
            Quoted,
            self.trace_id.as_deref().map(Cow::Borrowed),
        );
        field(
            "domain_name",
            Quoted,
            self.domain_name.as_deref().map(Cow::Borrowed),
        );
        field(
            "chosen_cert_arn",
            Quoted,
            self.chosen_cert.as_deref().and_then(text),
        );
        let rule = match self.matched_rule {
            MatchedRule::Priority(priority) => Some(Cow::Owned(priority.to_string())),
            MatchedRule::Default => Some(Cow::Borrowed("0")),
            MatchedRule::EvaluationError => Some(Cow::Borrowed("-1")),
            MatchedRule::NotEvaluated => None,
        };
        field("matched_rule_priority", Number, rule);
        field(
            "request_creation_time",
            Bare,
            Some(Cow::Owned(iso8601_micros(self.request_creation_time))),
        );
        let mut actions = String::new();
        let actions = self
            .actions_executed
            .write(&mut actions)
            .then_some(Cow::Owned(actions));
        field("actions_executed", Quoted, actions);
        field(
            "redirect_url",
            Quoted,
            self.redirect_url.as_deref().map(Cow::Borrowed),
        );
        field("error_reason", Quoted, borrowed(self.error_reason));
        field(
            "target:port_list",
            Quoted,
            target.as_deref().map(Cow::Borrowed),
        );
        field(
            "target_status_code_list",
            Quoted,
            number(self.target_status_code),
        );
        field(
            "classification",
            Quoted,
            self.classification
                .map(|class| Cow::Borrowed(class.as_str())),
        );
        field(
            "classification_reason",
            Quoted,
            borrowed(self.classification_reason),
        );
    }

    /// Appends ALB's space-delimited line (without the newline); `elb` is the load balancer's
    /// name.
    pub fn write_text(&self, elb: &str, out: &mut String) {
        let mut first = true;
        self.visit(elb, |_, shape, value| {
            if !first {
                out.push(' ');
            }
            first = false;
            match (shape, value) {
                (Shape::Quoted, value) => {
                    out.push('"');
                    escape_into(value.as_deref().unwrap_or("-"), out, false);
                    out.push('"');
                }
                (_, Some(value)) => escape_into(&value, out, true),
                (_, None) => out.push('-'),
            }
        });
    }

    /// Appends one JSON object (without the newline) with ALB's field names in ALB's order.
    pub fn write_json(&self, elb: &str, out: &mut String) {
        out.push('{');
        let mut first = true;
        self.visit(elb, |name, shape, value| {
            if !first {
                out.push(',');
            }
            first = false;
            push_json_string(name, out);
            out.push(':');
            match (shape, value) {
                (_, None) => out.push_str("null"),
                (Shape::Number, Some(value)) => out.push_str(&value),
                (_, Some(value)) => push_json_string(&value, out),
            }
        });
        out.push('}');
    }
}

fn push_json_string(value: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(value).expect("a string always serialises"));
}

/// Escapes so a field can neither end early nor split the line. In bare (unquoted) fields a
/// space would split the field, so it is escaped too.
fn escape_into(value: &str, out: &mut String, bare: bool) {
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' ' if bare => out.push_str("\\x20"),
            character if character.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(character));
            }
            character => out.push(character),
        }
    }
}

fn truncate(value: &str, limit: usize) -> &str {
    if value.len() <= limit {
        return value;
    }
    let mut end = limit;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the UTC timestamp format of ALB's access logs.
pub fn iso8601_micros(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let second_of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since_epoch.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm), so the
/// log needs no date-time dependency.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Errors setting up or controlling the access log.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The log file could not be opened for appending.
    #[error("cannot open access log {path}: {source}")]
    Open {
        /// The configured path.
        path: PathBuf,
        /// Why opening failed.
        source: io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the access log writer thread: {0}")]
    Spawn(io::Error),
    /// The writer thread is gone (it panicked), so nothing can be logged any more.
    #[error("the access log writer thread has stopped")]
    WriterStopped,
}

/// Where lines are written.
pub enum AccessLogDestination {
    /// Standard output.
    Stdout,
    /// A file, created if missing, appended to, and reopened by [`AccessLogger::reopen`].
    File(PathBuf),
    /// Any writer, e.g. an in-memory buffer in tests.
    Writer(Box<dyn Write + Send>),
}

impl AccessLogDestination {
    fn open(&mut self) -> Result<Box<dyn Write + Send>, AccessLogError> {
        match self {
            AccessLogDestination::Stdout => Ok(Box::new(io::stdout())),
            AccessLogDestination::File(path) => Ok(Box::new(open_append(path)?)),
            AccessLogDestination::Writer(writer) => {
                Ok(std::mem::replace(writer, Box::new(io::sink())))
            }
        }
    }
}

fn open_append(path: &PathBuf) -> Result<File, AccessLogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| AccessLogError::Open {
            path: path.clone(),
            source,
        })
}

enum Message {
    Entry(Box<AccessLogEntry>),
    Reopen,
    Flush(SyncSender<()>),
}

/// Hands access-log entries to the writer thread without blocking; cheap to clone, one per
/// process. Dropping the last clone flushes and stops the writer.
#[derive(Clone)]
pub struct AccessLogger {
    inner: Arc<LoggerInner>,
}

struct LoggerInner {
    sender: Option<SyncSender<Message>>,
    writer: Option<JoinHandle<()>>,
    dropped: IntCounter,
}

impl AccessLogger {
    /// Starts the access log described by the config, or returns `None` when it is disabled;
    /// `dropped` is [`crate::metrics::Metrics::access_log_dropped`].
    pub fn from_config(
        config: &AccessLog,
        load_balancer_name: &str,
        dropped: IntCounter,
    ) -> Result<Option<AccessLogger>, AccessLogError> {
        if !config.enabled {
            return Ok(None);
        }
        let destination = match &config.path {
            AccessLogPath::Stdout => AccessLogDestination::Stdout,
            AccessLogPath::File(path) => AccessLogDestination::File(path.clone()),
        };
        let logger = AccessLogger::start(
            destination,
            config.format,
            load_balancer_name,
            dropped,
            DEFAULT_QUEUE_CAPACITY,
        )?;
        Ok(Some(logger))
    }

    /// Opens `destination` and starts the writer thread; at most `queue_capacity` lines wait
    /// for it before new ones are dropped.
    pub fn start(
        mut destination: AccessLogDestination,
        format: AccessLogFormat,
        load_balancer_name: &str,
        dropped: IntCounter,
        queue_capacity: usize,
    ) -> Result<AccessLogger, AccessLogError> {
        let output = destination.open()?;
        let (sender, receiver) = mpsc::sync_channel(queue_capacity);
        let writer = Writer {
            destination,
            output: BufWriter::with_capacity(64 * 1024, output),
            format,
            elb: load_balancer_name.to_string(),
            line: String::with_capacity(1024),
            dirty: false,
            last_flush: Instant::now(),
            failing: false,
        };
        let handle = std::thread::Builder::new()
            .name("access-log".to_string())
            .spawn(move || writer.run(receiver))
            .map_err(AccessLogError::Spawn)?;
        Ok(AccessLogger {
            inner: Arc::new(LoggerInner {
                sender: Some(sender),
                writer: Some(handle),
                dropped,
            }),
        })
    }

    fn sender(&self) -> &SyncSender<Message> {
        self.inner
            .sender
            .as_ref()
            .expect("the sender lives as long as the logger")
    }

    /// Queues one line without blocking; if the writer is behind, the line is dropped and
    /// counted in `scalegate_access_log_dropped_total`.
    pub fn log(&self, entry: AccessLogEntry) {
        match self.sender().try_send(Message::Entry(Box::new(entry))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.inner.dropped.inc(),
        }
    }

    /// Asks the writer to reopen the log file (after logrotate moved it, on SIGHUP). Waits
    /// only for queue space, not for the reopen itself; failures are reported by `tracing`
    /// and the old file stays in use.
    pub fn reopen(&self) -> Result<(), AccessLogError> {
        self.sender()
            .send(Message::Reopen)
            .map_err(|_| AccessLogError::WriterStopped)
    }

    /// Blocks until every line queued before the call is written and flushed; for shutdown
    /// and tests (call from a blocking context, not an async task).
    pub fn flush(&self) -> Result<(), AccessLogError> {
        let (done, wait) = mpsc::sync_channel(1);
        self.sender()
            .send(Message::Flush(done))
            .map_err(|_| AccessLogError::WriterStopped)?;
        wait.recv().map_err(|_| AccessLogError::WriterStopped)
    }
}

impl Drop for LoggerInner {
    fn drop(&mut self) {
        // Closing the channel makes the writer drain what is queued, flush and exit.
        drop(self.sender.take());
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

struct Writer {
    destination: AccessLogDestination,
    output: BufWriter<Box<dyn Write + Send>>,
    format: AccessLogFormat,
    elb: String,
    line: String,
    dirty: bool,
    last_flush: Instant,
    /// Set after a write error so that a full disk produces one warning, not one per line.
    failing: bool,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Message>) {
        loop {
            let timeout = if self.dirty {
                FLUSH_INTERVAL
            } else {
                Duration::from_secs(3600)
            };
            match receiver.recv_timeout(timeout) {
                Ok(Message::Entry(entry)) => {
                    self.write(&entry);
                    if self.last_flush.elapsed() >= FLUSH_INTERVAL {
                        self.flush();
                    }
                }
                Ok(Message::Reopen) => self.reopen(),
                Ok(Message::Flush(done)) => {
                    self.flush();
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => self.flush(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            }
        }
    }

    fn write(&mut self, entry: &AccessLogEntry) {
        self.line.clear();
        match self.format {
            AccessLogFormat::Text => entry.write_text(&self.elb, &mut self.line),
            AccessLogFormat::Json => entry.write_json(&self.elb, &mut self.line),
        }
        self.line.push('\n');
        let result = self.output.write_all(self.line.as_bytes());
        self.dirty = true;
        self.report(result);
    }

    fn flush(&mut self) {
        let result = self.output.flush();
        self.dirty = false;
        self.last_flush = Instant::now();
        self.report(result);
    }

    fn reopen(&mut self) {
        self.flush();
        if !matches!(self.destination, AccessLogDestination::File(_)) {
            return;
        }
        match self.destination.open() {
            Ok(output) => {
                self.output = BufWriter::with_capacity(64 * 1024, output);
                self.failing = false;
            }
            Err(error) => tracing::warn!(%error, "access log not reopened; keeping the old file"),
        }
    }

    fn report(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) => self.failing = false,
            Err(error) if !self.failing => {
                self.failing = true;
                tracing::warn!(%error, "cannot write the access log; lines are being lost");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    const ELB: &str = "app/my-loadbalancer/50dc6c495c0c9188";

    fn at(unix_seconds: u64, micros: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix_seconds) + Duration::from_micros(micros)
    }

    /// The first example entry of ALB's access-log documentation.
    fn alb_documentation_entry() -> AccessLogEntry {
        AccessLogEntry {
            request_type: RequestType::Http,
            time: at(1_530_570_180, 186_641),
            client: "192.168.131.39:2817".parse().unwrap(),
            target: Some("10.0.0.1:80".parse().unwrap()),
            request_processing_time: Some(Duration::ZERO),
            target_processing_time: Some(Duration::from_millis(1)),
            response_processing_time: Some(Duration::ZERO),
            elb_status_code: Some(200),
            target_status_code: Some(200),
            received_bytes: 34,
            sent_bytes: 366,
            request: Some("GET http://www.example.com:80/ HTTP/1.1".to_string()),
            user_agent: Some("curl/7.46.0".to_string()),
            ssl_cipher: None,
            ssl_protocol: None,
            target_group: Some(
                "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067"
                    .into(),
            ),
            trace_id: Some("Root=1-58337262-36d228ad5d99923122bbe354".to_string()),
            domain_name: None,
            chosen_cert: None,
            matched_rule: MatchedRule::Default,
            request_creation_time: at(1_530_570_168, 364_000),
            actions_executed: Action::Forward.into(),
            redirect_url: None,
            error_reason: None,
            classification: None,
            classification_reason: None,
        }
    }

    /// A request that failed before reaching a target, with hostile characters.
    fn failed_entry() -> AccessLogEntry {
        AccessLogEntry {
            request_type: RequestType::H2,
            target: None,
            request_processing_time: None,
            target_processing_time: None,
            response_processing_time: None,
            elb_status_code: Some(503),
            target_status_code: None,
            request: None,
            user_agent: Some("evil \"agent\"\n\\".to_string()),
            ssl_cipher: Some("ECDHE-RSA-AES128-GCM-SHA256"),
            ssl_protocol: Some("TLSv1.2"),
            target_group: None,
            trace_id: None,
            domain_name: Some("www.example.com".to_string()),
            chosen_cert: Some("main-cert".into()),
            matched_rule: MatchedRule::Priority(10),
            actions_executed: ActionsExecuted::default()
                .with(Action::Forward)
                .with(Action::Waf),
            error_reason: Some("NoHealthyTargets"),
            classification: Some(Classification::Ambiguous),
            classification_reason: Some("SpaceInUri"),
            ..alb_documentation_entry()
        }
    }

    #[test]
    fn text_line_matches_alb_documentation_example() {
        let mut line = String::new();
        alb_documentation_entry().write_text(ELB, &mut line);
        assert_eq!(
            line,
            "http 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 \
             10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 \"GET http://www.example.com:80/ HTTP/1.1\" \
             \"curl/7.46.0\" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 \
             \"Root=1-58337262-36d228ad5d99923122bbe354\" \"-\" \"-\" 0 2018-07-02T22:22:48.364000Z \"forward\" \
             \"-\" \"-\" \"10.0.0.1:80\" \"200\" \"-\" \"-\""
        );
    }

    #[test]
    fn text_line_of_a_failed_request_uses_dashes_and_escapes_quotes() {
        let mut line = String::new();
        failed_entry().write_text(ELB, &mut line);
        assert_eq!(
            line,
            "h2 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 - \
             -1 -1 -1 503 - 34 366 \"- - - \" \"evil \\\"agent\\\"\\x0a\\\\\" ECDHE-RSA-AES128-GCM-SHA256 \
             TLSv1.2 - \"-\" \"www.example.com\" \"main-cert\" 10 2018-07-02T22:22:48.364000Z \
             \"waf,forward\" \"-\" \"NoHealthyTargets\" \"-\" \"-\" \"Ambiguous\" \"SpaceInUri\""
        );
    }

    #[test]
    fn json_line_has_alb_field_names_in_order() {
        let mut line = String::new();
        failed_entry().write_json(ELB, &mut line);
        assert_eq!(
            line,
            r#"{"type":"h2","time":"2018-07-02T22:23:00.186641Z","elb":"app/my-loadbalancer/50dc6c495c0c9188","client:port":"192.168.131.39:2817","target:port":null,"request_processing_time":-1,"target_processing_time":-1,"response_processing_time":-1,"elb_status_code":503,"target_status_code":null,"received_bytes":34,"sent_bytes":366,"request":"- - - ","user_agent":"evil \"agent\"\n\\","ssl_cipher":"ECDHE-RSA-AES128-GCM-SHA256","ssl_protocol":"TLSv1.2","target_group_arn":null,"trace_id":null,"domain_name":"www.example.com","chosen_cert_arn":"main-cert","matched_rule_priority":10,"request_creation_time":"2018-07-02T22:22:48.364000Z","actions_executed":"waf,forward","redirect_url":null,"error_reason":"NoHealthyTargets","target:port_list":null,"target_status_code_list":null,"classification":"Ambiguous","classification_reason":"SpaceInUri"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["request_processing_time"], serde_json::json!(-1));
        let mut documented = String::new();
        alb_documentation_entry().write_json(ELB, &mut documented);
        let parsed: serde_json::Value = serde_json::from_str(&documented).expect("valid JSON");
        assert_eq!(parsed["target_processing_time"].as_f64(), Some(0.001));
        assert_eq!(parsed["target:port_list"], "10.0.0.1:80");
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        assert_eq!(iso8601_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            iso8601_micros(at(1_709_251_199, 999_999)),
            "2024-02-29T23:59:59.999999Z"
        );
    }

    #[test]
    fn user_agent_is_truncated_on_a_character_boundary() {
        let entry = AccessLogEntry {
            user_agent: Some("é".repeat(USER_AGENT_LIMIT)),
            ..alb_documentation_entry()
        };
        let mut line = String::new();
        entry.write_text(ELB, &mut line);
        let agent = line.split('"').nth(3).expect("user agent field");
        assert_eq!(agent.len(), USER_AGENT_LIMIT);
    }

    /// A writer whose output the test can read and whose writes can be held back.
    #[derive(Clone, Default)]
    struct SharedWriter {
        written: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for SharedWriter {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl SharedWriter {
        fn lines(&self) -> Vec<String> {
            let written = self.written.lock().unwrap();
            String::from_utf8(written.clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    fn counter() -> IntCounter {
        IntCounter::new("dropped_total", "test").unwrap()
    }

    #[test]
    fn lines_reach_the_writer_in_the_configured_format() {
        let writer = SharedWriter::default();
        let destination = AccessLogDestination::Writer(Box::new(writer.clone()));
        let logger = AccessLogger::start(destination, AccessLogFormat::Json, ELB, counter(), 16)
            .expect("logger starts");
        logger.log(alb_documentation_entry());
        logger.log(failed_entry());
        logger.flush().expect("writer alive");
        let lines = writer.lines();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(r#"{"type":"http","#));
        assert!(lines[1].starts_with(r#"{"type":"h2","#));
    }

    #[test]
    fn lines_are_flushed_without_an_explicit_flush() {
        let writer = SharedWriter::default();
        let destination = AccessLogDestination::Writer(Box::new(writer.clone()));
        let logger = AccessLogger::start(destination, AccessLogFormat::Text, ELB, counter(), 16)
            .expect("logger starts");
        logger.log(alb_documentation_entry());
        let deadline = Instant::now() + Duration::from_secs(2);
        while writer.lines().is_empty() {
            assert!(
                Instant::now() < deadline,
                "line not flushed within the flush interval"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(logger);
        assert_eq!(writer.lines().len(), 1);
    }

    #[test]
    fn a_full_queue_drops_and_counts_lines() {
        let writer = SharedWriter::default();
        let held = writer.gate.lock().unwrap();
        let dropped = counter();
        let destination = AccessLogDestination::Writer(Box::new(writer.clone()));
        let logger =
            AccessLogger::start(destination, AccessLogFormat::Text, ELB, dropped.clone(), 4)
                .expect("logger starts");
        // The writer takes the first line and blocks writing it out at the next flush.
        logger.log(alb_documentation_entry());
        std::thread::sleep(FLUSH_INTERVAL * 4);
        for _ in 0..10 {
            logger.log(alb_documentation_entry());
        }
        assert_eq!(dropped.get(), 6, "4 lines fit in the queue, 6 are dropped");
        drop(held);
        logger.flush().expect("writer alive");
        assert_eq!(writer.lines().len(), 5);
    }

    #[test]
    fn file_destination_appends_and_reopens() {
        let directory =
            std::env::temp_dir().join(format!("scalegate-access-log-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("access.log");
        let rotated = directory.join("access.log.1");
        let config = AccessLog {
            enabled: true,
            path: AccessLogPath::File(path.clone()),
            format: AccessLogFormat::Text,
        };
        let logger = AccessLogger::from_config(&config, ELB, counter())
            .unwrap()
            .expect("enabled");
        logger.log(alb_documentation_entry());
        logger.flush().unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        logger.reopen().unwrap();
        logger.log(failed_entry());
        drop(logger);
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(
            old.starts_with("http ") && old.lines().count() == 1,
            "{old}"
        );
        assert!(new.starts_with("h2 ") && new.lines().count() == 1, "{new}");
        std::fs::remove_dir_all(&directory).unwrap();

        let disabled = AccessLog {
            enabled: false,
            ..config
        };
        assert!(AccessLogger::from_config(&disabled, ELB, counter())
            .unwrap()
            .is_none());
    }
}
