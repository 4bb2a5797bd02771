//! Prometheus metrics mirroring ALB's CloudWatch metrics (`AWS/ApplicationELB`).
//!
//! The request path must stay cheap, so label lookups happen once, when a config snapshot is
//! compiled: [`Metrics::listener`], [`Metrics::target_group`] and [`Metrics::target`] return
//! small handles of pre-resolved series, and every hot-path method on those handles only
//! touches atomics (no lock, no map lookup, no allocation).
//!
//! Naming follows Prometheus conventions: prefix `scalegate_`, `_total` for counters,
//! `_seconds` / `_bytes` units. Every series carries the constant label `load_balancer`
//! (ALB's `LoadBalancer` dimension). Per-target series are removed when a target leaves the
//! config ([`Metrics::remove_target`], [`Metrics::retain_targets`]) so that label cardinality
//! follows the live set of targets; group-level totals such as
//! `scalegate_target_group_requests_total` survive target churn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::target_group::probe::{ProbeFailure, ProbeOutcome};
use crate::target_group::HealthState;
use crate::upstream::UpstreamError;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Content type of [`Metrics::encode_text`]'s output (Prometheus text format 0.0.4).
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds (seconds) of `scalegate_target_response_time_seconds`: from 100 µs (a target
/// on the same host) up to 60 s (ALB's default idle timeout, after which the answer is a 504).
pub const RESPONSE_TIME_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Status codes scalegate itself can answer with (ALB's troubleshooting table plus 431); their
/// series exist from the start so that alerts on, say, 502 see a zero rather than nothing.
/// Any other code (for example a fixed-response 418) gets its series on first use.
pub const KNOWN_ELB_STATUS_CODES: [u16; 15] = [
    400, 405, 408, 413, 414, 431, 460, 463, 464, 500, 501, 502, 503, 504, 505,
];

const LOWEST_STATUS: u16 = 100;
const HIGHEST_STATUS: u16 = 599;
const STATUS_SLOTS: usize = (HIGHEST_STATUS - LOWEST_STATUS + 1) as usize;
const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const OTHER: &str = "other";

/// The process's metrics: one per process, shared as `Arc<Metrics>` by listeners, the config
/// reloader and the admin endpoint.
pub struct Metrics {
    registry: Registry,
    load_balancer_name: String,
    families: Families,
    config_reloads_success: IntCounter,
    config_reloads_failure: IntCounter,
    config_last_reload_success: IntGauge,
    config_last_reload_timestamp: Gauge,
    config_last_reload_success_timestamp: Gauge,
    access_log_dropped: IntCounter,
    handles: Mutex<Handles>,
}

/// Handles already handed out, so that compiling a new snapshot reuses the same series (and
/// the same lazily created status-code series) and so that removal knows what exists.
#[derive(Default)]
struct Handles {
    listeners: HashMap<String, ListenerMetrics>,
    target_groups: HashMap<String, TargetGroupMetrics>,
    targets: HashMap<(String, String), TargetMetrics>,
}

struct Families {
    requests: IntCounterVec,
    elb_responses: IntCounterVec,
    client_connections_active: IntGaugeVec,
    client_connections: IntCounterVec,
    rejected_connections: IntCounterVec,
    processed_bytes: IntCounterVec,
    fixed_responses: IntCounterVec,
    redirects: IntCounterVec,
    redirect_url_limit_exceeded: IntCounterVec,
    client_tls_negotiation_errors: IntCounterVec,
    non_compliant_requests: IntCounterVec,
    dropped_invalid_header_requests: IntCounterVec,
    forwarded_invalid_header_requests: IntCounterVec,

    group_requests: IntCounterVec,
    group_healthy_targets: IntGaugeVec,
    group_unhealthy_targets: IntGaugeVec,
    group_targets_by_state: IntGaugeVec,
    group_health_checks: IntCounterVec,
    group_health_check_duration: HistogramVec,
    group_retries: IntCounterVec,
    group_fail_open_events: IntCounterVec,
    group_unhealthy_routing_requests: IntCounterVec,
    group_non_sticky_requests: IntCounterVec,
    group_anomalous_targets: IntGaugeVec,
    group_mitigated_targets: IntGaugeVec,
    group_request_count_per_target: GaugeVec,
    target_outstanding_requests: IntGaugeVec,

    target_requests: IntCounterVec,
    target_responses: IntCounterVec,
    target_response_time: HistogramVec,
    target_connection_errors: IntCounterVec,
    target_connections_active: IntGaugeVec,
    target_connections: IntCounterVec,
    target_tls_negotiation_errors: IntCounterVec,
}

/// Builds and registers metric families; registration only fails on a programming error
/// (duplicate or malformed name), which the unit tests catch.
struct FamilyBuilder<'a> {
    registry: &'a Registry,
}

impl FamilyBuilder<'_> {
    fn register<C: Collector + Clone + 'static>(&self, collector: C) -> C {
        self.registry
            .register(Box::new(collector.clone()))
            .expect("unique metric name");
        collector
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::new(name, help).expect("valid counter definition"))
    }

    fn gauge(&self, name: &str, help: &str) -> Gauge {
        self.register(Gauge::new(name, help).expect("valid gauge definition"))
    }

    fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(name, help).expect("valid gauge definition"))
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid definition"))
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.register(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid definition"))
    }

    fn float_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.register(GaugeVec::new(Opts::new(name, help), labels).expect("valid definition"))
    }

    fn histogram_vec(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(RESPONSE_TIME_BUCKETS.to_vec());
        self.register(HistogramVec::new(opts, labels).expect("valid definition"))
    }
}

const LISTENER: &[&str] = &["listener"];
const TARGET_GROUP: &[&str] = &["target_group"];
const TARGET: &[&str] = &["target_group", "target"];

impl Families {
    fn register(builder: &FamilyBuilder<'_>) -> Families {
        let b = builder;
        Families {
            requests: b.counter_vec(
                "scalegate_requests_total",
                "Requests that got a routing decision: forwarded to a chosen target, or answered \
                 by a fixed-response or redirect action. Mirrors ALB RequestCount.",
                LISTENER,
            ),
            elb_responses: b.counter_vec(
                "scalegate_elb_responses_total",
                "Responses generated by scalegate itself (errors, redirects, fixed responses), \
                 by exact code and class. Mirrors ALB HTTPCode_ELB_3XX/4XX/5XX_Count and \
                 HTTPCode_ELB_500/502/503/504_Count.",
                &["listener", "code", "code_class"],
            ),
            client_connections_active: b.gauge_vec(
                "scalegate_client_connections_active",
                "Open client connections. Mirrors the client side of ALB ActiveConnectionCount.",
                LISTENER,
            ),
            client_connections: b.counter_vec(
                "scalegate_client_connections_total",
                "Accepted client connections. Mirrors the client side of ALB NewConnectionCount.",
                LISTENER,
            ),
            rejected_connections: b.counter_vec(
                "scalegate_rejected_connections_total",
                "Client connections refused because the connection limit was reached. Mirrors \
                 ALB RejectedConnectionCount.",
                LISTENER,
            ),
            processed_bytes: b.counter_vec(
                "scalegate_processed_bytes_total",
                "Bytes (headers and bodies) received from and sent to clients. Mirrors ALB \
                 ProcessedBytes.",
                &["listener", "direction"],
            ),
            fixed_responses: b.counter_vec(
                "scalegate_fixed_responses_total",
                "Requests answered by a fixed-response action. Mirrors ALB \
                 HTTP_Fixed_Response_Count.",
                LISTENER,
            ),
            redirects: b.counter_vec(
                "scalegate_redirects_total",
                "Requests answered by a redirect action. Mirrors ALB HTTP_Redirect_Count.",
                LISTENER,
            ),
            redirect_url_limit_exceeded: b.counter_vec(
                "scalegate_redirect_url_limit_exceeded_total",
                "Redirects not sent because the Location URL exceeded 8K. Mirrors ALB \
                 HTTP_Redirect_Url_Limit_Exceeded_Count.",
                LISTENER,
            ),
            client_tls_negotiation_errors: b.counter_vec(
                "scalegate_client_tls_negotiation_errors_total",
                "TLS handshakes with clients that failed. Mirrors ALB \
                 ClientTLSNegotiationErrorCount.",
                LISTENER,
            ),
            non_compliant_requests: b.counter_vec(
                "scalegate_desync_non_compliant_requests_total",
                "Requests classified Acceptable, Ambiguous or Severe by desync mitigation. \
                 Mirrors ALB DesyncMitigationMode_NonCompliant_Request_Count.",
                LISTENER,
            ),
            dropped_invalid_header_requests: b.counter_vec(
                "scalegate_dropped_invalid_header_requests_total",
                "Requests whose invalid header fields were removed before forwarding. Mirrors \
                 ALB DroppedInvalidHeaderRequestCount.",
                LISTENER,
            ),
            forwarded_invalid_header_requests: b.counter_vec(
                "scalegate_forwarded_invalid_header_requests_total",
                "Requests forwarded with invalid header fields kept. Mirrors ALB \
                 ForwardedInvalidHeaderRequestCount.",
                LISTENER,
            ),

            group_requests: b.counter_vec(
                "scalegate_target_group_requests_total",
                "Requests sent to a target of the group; survives target churn. Mirrors ALB \
                 RequestCount with the TargetGroup dimension (divide by healthy targets for \
                 RequestCountPerTarget).",
                TARGET_GROUP,
            ),
            group_healthy_targets: b.gauge_vec(
                "scalegate_target_group_healthy_targets",
                "Targets considered healthy. Mirrors ALB HealthyHostCount.",
                TARGET_GROUP,
            ),
            group_unhealthy_targets: b.gauge_vec(
                "scalegate_target_group_unhealthy_targets",
                "Targets considered unhealthy. Mirrors ALB UnHealthyHostCount.",
                TARGET_GROUP,
            ),
            group_targets_by_state: b.gauge_vec(
                "scalegate_target_group_targets",
                "Registered targets by ALB health state (initial, healthy, unhealthy, unused, \
                 draining, unavailable).",
                &["target_group", "state"],
            ),
            group_health_checks: b.counter_vec(
                "scalegate_target_group_health_checks_total",
                "Health checks run, by result: success or ALB's failure reason code.",
                &["target_group", "result"],
            ),
            group_health_check_duration: b.histogram_vec(
                "scalegate_target_group_health_check_duration_seconds",
                "Time a health check took, from connecting to the response head.",
                TARGET_GROUP,
            ),
            group_retries: b.counter_vec(
                "scalegate_target_group_retries_total",
                "Requests sent to a second target after the first failed before answering \
                 (passive health), by why the first failed.",
                &["target_group", "reason"],
            ),
            group_fail_open_events: b.counter_vec(
                "scalegate_target_group_fail_open_events_total",
                "Times the group started routing to all targets because none was healthy.",
                TARGET_GROUP,
            ),
            group_unhealthy_routing_requests: b.counter_vec(
                "scalegate_target_group_unhealthy_routing_requests_total",
                "Requests routed while failing open (no healthy target). Mirrors ALB \
                 UnhealthyRoutingRequestCount.",
                TARGET_GROUP,
            ),
            group_non_sticky_requests: b.counter_vec(
                "scalegate_target_group_non_sticky_requests_total",
                "Requests with target stickiness on that got a new target (no, invalid or \
                 expired cookie, or its target gone or unhealthy). Mirrors ALB \
                 NonStickyRequestCount.",
                TARGET_GROUP,
            ),
            group_anomalous_targets: b.gauge_vec(
                "scalegate_target_group_anomalous_targets",
                "Targets whose error rate stands out from their peers'. Mirrors ALB \
                 AnomalousHostCount.",
                TARGET_GROUP,
            ),
            group_mitigated_targets: b.gauge_vec(
                "scalegate_target_group_mitigated_targets",
                "Anomalous targets whose share of traffic is being reduced (weighted_random \
                 with anomaly mitigation).",
                TARGET_GROUP,
            ),
            group_request_count_per_target: b.float_gauge_vec(
                "scalegate_target_group_request_count_per_target",
                "Requests in the last full minute divided by the targets receiving traffic. \
                 Mirrors ALB RequestCountPerTarget (the autoscaler's ALBRequestCountPerTarget).",
                TARGET_GROUP,
            ),
            target_outstanding_requests: b.gauge_vec(
                "scalegate_target_outstanding_requests",
                "Requests sent to the target and not yet answered in full (what \
                 least_outstanding_requests balances on); refreshed every second.",
                TARGET,
            ),

            target_requests: b.counter_vec(
                "scalegate_target_requests_total",
                "Requests sent to the target. Mirrors ALB RequestCount per target (sum by \
                 target_group for the TargetGroup dimension).",
                TARGET,
            ),
            target_responses: b.counter_vec(
                "scalegate_target_responses_total",
                "Responses received from the target, by status class. Mirrors ALB \
                 HTTPCode_Target_2XX/3XX/4XX/5XX_Count.",
                &["target_group", "target", "code_class"],
            ),
            target_response_time: b.histogram_vec(
                "scalegate_target_response_time_seconds",
                "Time from the request leaving scalegate until the target's response headers \
                 arrived. Mirrors ALB TargetResponseTime.",
                TARGET,
            ),
            target_connection_errors: b.counter_vec(
                "scalegate_target_connection_errors_total",
                "Connections to the target that could not be established. Mirrors ALB \
                 TargetConnectionErrorCount.",
                TARGET,
            ),
            target_connections_active: b.gauge_vec(
                "scalegate_target_connections_active",
                "Open connections to the target. Mirrors the target side of ALB \
                 ActiveConnectionCount.",
                TARGET,
            ),
            target_connections: b.counter_vec(
                "scalegate_target_connections_total",
                "Connections opened to the target. Mirrors the target side of ALB \
                 NewConnectionCount.",
                TARGET,
            ),
            target_tls_negotiation_errors: b.counter_vec(
                "scalegate_target_tls_negotiation_errors_total",
                "TLS handshakes with the target that failed. Mirrors ALB \
                 TargetTLSNegotiationErrorCount.",
                TARGET,
            ),
        }
    }
}

impl Metrics {
    /// Creates the registry with every process-level series; `load_balancer_name` becomes the
    /// constant `load_balancer` label, like ALB's `LoadBalancer` dimension.
    pub fn new(load_balancer_name: &str) -> Arc<Metrics> {
        let constant_labels =
            HashMap::from([("load_balancer".to_string(), load_balancer_name.to_string())]);
        let registry = Registry::new_custom(None, Some(constant_labels))
            .expect("a label name and any value are a valid constant label");
        let builder = FamilyBuilder {
            registry: &registry,
        };
        let families = Families::register(&builder);

        let reloads = builder.counter_vec(
            "scalegate_config_reloads_total",
            "Config loads and reloads by outcome; the initial load counts as one.",
            &["result"],
        );
        let build_info = builder.gauge_vec(
            "scalegate_build_info",
            "Always 1; the labels tell which build is running.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let metrics = Metrics {
            config_reloads_success: reloads.with_label_values(&["success"]),
            config_reloads_failure: reloads.with_label_values(&["failure"]),
            config_last_reload_success: builder.int_gauge(
                "scalegate_config_last_reload_success",
                "1 if the last config load or reload was applied, 0 if it was rejected.",
            ),
            config_last_reload_timestamp: builder.gauge(
                "scalegate_config_last_reload_timestamp_seconds",
                "Unix time of the last config load or reload attempt, applied or not.",
            ),
            config_last_reload_success_timestamp: builder.gauge(
                "scalegate_config_last_reload_success_timestamp_seconds",
                "Unix time of the last config load or reload that was applied.",
            ),
            access_log_dropped: builder.counter(
                "scalegate_access_log_dropped_total",
                "Access-log lines dropped because the writer could not keep up.",
            ),
            registry,
            load_balancer_name: load_balancer_name.to_string(),
            families,
            handles: Mutex::new(Handles::default()),
        };
        Arc::new(metrics)
    }

    /// The name given to [`Metrics::new`], for the access log's `elb` field and the like.
    pub fn load_balancer_name(&self) -> &str {
        &self.load_balancer_name
    }

    /// The registry, so other subsystems (discovery, autoscaler) can register their own
    /// metrics and have them served by the admin endpoint.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders every series in Prometheus text format 0.0.4 for the admin `/metrics` endpoint.
    pub fn encode_text(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding into memory does not fail");
        String::from_utf8(buffer).expect("the text encoder writes UTF-8")
    }

    /// Records the outcome of a config load or reload; call it for the initial load too so
    /// that `scalegate_config_last_reload_success` is meaningful from the start.
    pub fn record_reload(&self, applied: bool) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let now = now.as_secs_f64();
        self.config_last_reload_timestamp.set(now);
        if applied {
            self.config_reloads_success.inc();
            self.config_last_reload_success.set(1);
            self.config_last_reload_success_timestamp.set(now);
        } else {
            self.config_reloads_failure.inc();
            self.config_last_reload_success.set(0);
        }
    }

    /// The counter the access logger bumps when it drops a line, so drops are visible.
    pub fn access_log_dropped(&self) -> IntCounter {
        self.access_log_dropped.clone()
    }

    fn handles(&self) -> MutexGuard<'_, Handles> {
        // A panic while holding this lock cannot leave the maps inconsistent (each operation
        // is a single insert or remove), so a poisoned lock is still usable.
        self.handles
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The pre-resolved series of one listener; call when compiling a snapshot, not per
    /// request. The same name always yields handles on the same series.
    pub fn listener(&self, name: &str) -> ListenerMetrics {
        let mut handles = self.handles();
        if let Some(existing) = handles.listeners.get(name) {
            return existing.clone();
        }
        let created = ListenerMetrics::new(&self.families, name);
        handles.listeners.insert(name.to_string(), created.clone());
        created
    }

    /// The pre-resolved series of one target group; call when compiling a snapshot.
    pub fn target_group(&self, name: &str) -> TargetGroupMetrics {
        let mut handles = self.handles();
        Self::target_group_locked(&mut handles, &self.families, name)
    }

    fn target_group_locked(
        handles: &mut Handles,
        families: &Families,
        name: &str,
    ) -> TargetGroupMetrics {
        if let Some(existing) = handles.target_groups.get(name) {
            return existing.clone();
        }
        let created = TargetGroupMetrics::new(families, name);
        handles
            .target_groups
            .insert(name.to_string(), created.clone());
        created
    }

    /// The pre-resolved series of one target (`target` is usually `ip:port`) of a group; call
    /// when compiling a snapshot or registering a target.
    pub fn target(&self, target_group: &str, target: &str) -> TargetMetrics {
        let mut handles = self.handles();
        let key = (target_group.to_string(), target.to_string());
        if let Some(existing) = handles.targets.get(&key) {
            return existing.clone();
        }
        let group = Self::target_group_locked(&mut handles, &self.families, target_group);
        let created = TargetMetrics::new(&self.families, &group, target);
        handles.targets.insert(key, created.clone());
        created
    }

    /// Drops a listener's series, for a listener that left the config. Handles still held by
    /// an old snapshot keep working but are no longer exported.
    pub fn remove_listener(&self, name: &str) {
        if let Some(removed) = self.handles().listeners.remove(name) {
            removed.remove_series(&self.families);
        }
    }

    /// Drops a target group's series and those of all its targets.
    pub fn remove_target_group(&self, name: &str) {
        let mut handles = self.handles();
        if let Some(removed) = handles.target_groups.remove(name) {
            removed.remove_series(&self.families);
        }
        handles.targets.retain(|(group, _), target| {
            let keep = group != name;
            if !keep {
                target.remove_series(&self.families);
            }
            keep
        });
    }

    /// Drops one target's series, for a target that was deregistered (after draining).
    pub fn remove_target(&self, target_group: &str, target: &str) {
        let key = (target_group.to_string(), target.to_string());
        if let Some(removed) = self.handles().targets.remove(&key) {
            removed.remove_series(&self.families);
        }
    }

    /// Keeps only the listeners for which `keep(name)` holds: call after compiling a new
    /// snapshot to sweep listeners that disappeared.
    pub fn retain_listeners(&self, mut keep: impl FnMut(&str) -> bool) {
        self.handles().listeners.retain(|name, listener| {
            let kept = keep(name);
            if !kept {
                listener.remove_series(&self.families);
            }
            kept
        });
    }

    /// Keeps only the target groups for which `keep(name)` holds (their targets go too).
    pub fn retain_target_groups(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut handles = self.handles();
        handles.target_groups.retain(|name, group| {
            let kept = keep(name);
            if !kept {
                group.remove_series(&self.families);
            }
            kept
        });
        let Handles {
            target_groups,
            targets,
            ..
        } = &mut *handles;
        targets.retain(|(group, _), target| {
            let kept = target_groups.contains_key(group);
            if !kept {
                target.remove_series(&self.families);
            }
            kept
        });
    }

    /// Keeps only the targets for which `keep(target_group, target)` holds.
    pub fn retain_targets(&self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.handles().targets.retain(|(group, address), target| {
            let kept = keep(group, address);
            if !kept {
                target.remove_series(&self.families);
            }
            kept
        });
    }
}

/// Keeps a connection gauge up while a connection is open: created by `connection_opened`,
/// it decrements the gauge when dropped, so every exit path of a connection task is counted.
#[must_use = "the connection counts as open only while the guard lives"]
pub struct ConnectionGuard {
    active: IntGauge,
}

impl ConnectionGuard {
    fn open(active: &IntGauge, opened: &IntCounter) -> ConnectionGuard {
        opened.inc();
        active.inc();
        ConnectionGuard {
            active: active.clone(),
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.active.dec();
    }
}

fn code_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        // ALB answers 502 for a status it cannot use, so anything else counts as 5xx.
        _ => 4,
    }
}

/// Hot-path handle on one listener's series. Cloning is one atomic increment.
#[derive(Clone)]
pub struct ListenerMetrics {
    inner: Arc<ListenerSeries>,
}

struct ListenerSeries {
    name: String,
    elb_responses_family: IntCounterVec,
    /// One slot per status 100–599; known ALB codes are filled at creation, others on first
    /// use (a one-time allocation, then lock-free).
    elb_responses: Box<[OnceLock<IntCounter>]>,
    elb_responses_other: OnceLock<IntCounter>,
    requests: IntCounter,
    client_connections_active: IntGauge,
    client_connections: IntCounter,
    rejected_connections: IntCounter,
    received_bytes: IntCounter,
    sent_bytes: IntCounter,
    fixed_responses: IntCounter,
    redirects: IntCounter,
    redirect_url_limit_exceeded: IntCounter,
    client_tls_negotiation_errors: IntCounter,
    non_compliant_requests: IntCounter,
    dropped_invalid_header_requests: IntCounter,
    forwarded_invalid_header_requests: IntCounter,
}

impl ListenerMetrics {
    fn new(families: &Families, name: &str) -> ListenerMetrics {
        let label = &[name];
        let series = ListenerSeries {
            name: name.to_string(),
            elb_responses_family: families.elb_responses.clone(),
            elb_responses: (0..STATUS_SLOTS).map(|_| OnceLock::new()).collect(),
            elb_responses_other: OnceLock::new(),
            requests: families.requests.with_label_values(label),
            client_connections_active: families.client_connections_active.with_label_values(label),
            client_connections: families.client_connections.with_label_values(label),
            rejected_connections: families.rejected_connections.with_label_values(label),
            received_bytes: families
                .processed_bytes
                .with_label_values(&[name, "received"]),
            sent_bytes: families.processed_bytes.with_label_values(&[name, "sent"]),
            fixed_responses: families.fixed_responses.with_label_values(label),
            redirects: families.redirects.with_label_values(label),
            redirect_url_limit_exceeded: families
                .redirect_url_limit_exceeded
                .with_label_values(label),
            client_tls_negotiation_errors: families
                .client_tls_negotiation_errors
                .with_label_values(label),
            non_compliant_requests: families.non_compliant_requests.with_label_values(label),
            dropped_invalid_header_requests: families
                .dropped_invalid_header_requests
                .with_label_values(label),
            forwarded_invalid_header_requests: families
                .forwarded_invalid_header_requests
                .with_label_values(label),
        };
        let listener = ListenerMetrics {
            inner: Arc::new(series),
        };
        for status in KNOWN_ELB_STATUS_CODES {
            listener.elb_response_counter(status);
        }
        listener
    }

    fn elb_response_counter(&self, status: u16) -> &IntCounter {
        let series = &*self.inner;
        if !(LOWEST_STATUS..=HIGHEST_STATUS).contains(&status) {
            return series.elb_responses_other.get_or_init(|| {
                series
                    .elb_responses_family
                    .with_label_values(&[series.name.as_str(), OTHER, OTHER])
            });
        }
        series.elb_responses[usize::from(status - LOWEST_STATUS)].get_or_init(|| {
            let code = status.to_string();
            let class = CODE_CLASSES[code_class_index(status)];
            series
                .elb_responses_family
                .with_label_values(&[series.name.as_str(), &code, class])
        })
    }

    /// Counts a response scalegate generated itself (an error such as 400/460/502/503/504,
    /// or a redirect or fixed response), like ALB's `HTTPCode_ELB_*` metrics.
    pub fn elb_response(&self, status: u16) {
        self.elb_response_counter(status).inc();
    }

    /// Counts a request that got a routing decision (ALB `RequestCount`): call once when a
    /// forward action chose a target, or when a fixed-response or redirect action answered.
    /// Requests rejected before routing (400, 408, 431, 463, desync blocks) and requests for
    /// which no target could be chosen (503) are not counted, as on ALB; they show in
    /// `scalegate_elb_responses_total`.
    pub fn request(&self) {
        self.inner.requests.inc();
    }

    /// Counts an accepted client connection and keeps it in the active gauge until the guard
    /// is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        ConnectionGuard::open(
            &self.inner.client_connections_active,
            &self.inner.client_connections,
        )
    }

    /// Counts a client connection refused at the connection limit.
    pub fn rejected_connection(&self) {
        self.inner.rejected_connections.inc();
    }

    /// Adds bytes read from a client (headers and body) to `ProcessedBytes`.
    pub fn received_bytes(&self, bytes: u64) {
        self.inner.received_bytes.inc_by(bytes);
    }

    /// Adds bytes written to a client (headers and body) to `ProcessedBytes`.
    pub fn sent_bytes(&self, bytes: u64) {
        self.inner.sent_bytes.inc_by(bytes);
    }

    /// Counts a fixed-response answer; also counts `status` as an ELB response, so the caller
    /// does not call [`ListenerMetrics::elb_response`] for it.
    pub fn fixed_response(&self, status: u16) {
        self.inner.fixed_responses.inc();
        self.elb_response(status);
    }

    /// Counts a redirect answer; also counts `status` as an ELB response (ALB's
    /// `HTTPCode_ELB_3XX_Count`).
    pub fn redirect(&self, status: u16) {
        self.inner.redirects.inc();
        self.elb_response(status);
    }

    /// Counts a redirect that was not sent because its URL exceeded ALB's 8K limit (the
    /// caller answers with an error and counts that with [`ListenerMetrics::elb_response`]).
    pub fn redirect_url_limit_exceeded(&self) {
        self.inner.redirect_url_limit_exceeded.inc();
    }

    /// Counts a failed client TLS handshake.
    pub fn client_tls_negotiation_error(&self) {
        self.inner.client_tls_negotiation_errors.inc();
    }

    /// Counts a request desync mitigation classified as not compliant.
    pub fn non_compliant_request(&self) {
        self.inner.non_compliant_requests.inc();
    }

    /// Counts a request whose invalid header fields were dropped.
    pub fn dropped_invalid_header_request(&self) {
        self.inner.dropped_invalid_header_requests.inc();
    }

    /// Counts a request forwarded with its invalid header fields kept.
    pub fn forwarded_invalid_header_request(&self) {
        self.inner.forwarded_invalid_header_requests.inc();
    }

    fn remove_series(&self, families: &Families) {
        let series = &*self.inner;
        let name = series.name.as_str();
        for (slot, cell) in series.elb_responses.iter().enumerate() {
            if cell.get().is_some() {
                let status = LOWEST_STATUS + slot as u16;
                let code = status.to_string();
                let class = CODE_CLASSES[code_class_index(status)];
                let _ = families
                    .elb_responses
                    .remove_label_values(&[name, &code, class]);
            }
        }
        if series.elb_responses_other.get().is_some() {
            let _ = families
                .elb_responses
                .remove_label_values(&[name, OTHER, OTHER]);
        }
        let _ = families
            .processed_bytes
            .remove_label_values(&[name, "received"]);
        let _ = families
            .processed_bytes
            .remove_label_values(&[name, "sent"]);
        for family in [
            &families.requests,
            &families.client_connections,
            &families.rejected_connections,
            &families.fixed_responses,
            &families.redirects,
            &families.redirect_url_limit_exceeded,
            &families.client_tls_negotiation_errors,
            &families.non_compliant_requests,
            &families.dropped_invalid_header_requests,
            &families.forwarded_invalid_header_requests,
        ] {
            let _ = family.remove_label_values(&[name]);
        }
        let _ = families
            .client_connections_active
            .remove_label_values(&[name]);
    }
}

/// Handle on one target group's series: health gauges set by the health checker, and the
/// group-level request total that survives target churn.
#[derive(Clone)]
pub struct TargetGroupMetrics {
    inner: Arc<TargetGroupSeries>,
}

struct TargetGroupSeries {
    name: String,
    requests: IntCounter,
    healthy_targets: IntGauge,
    unhealthy_targets: IntGauge,
    targets_by_state: [IntGauge; HealthState::ALL.len()],
    health_check_success: IntCounter,
    health_check_failures: [IntCounter; ProbeFailure::ALL.len()],
    health_check_duration: Histogram,
    retries: [IntCounter; UpstreamError::KINDS.len()],
    fail_open_events: IntCounter,
    unhealthy_routing_requests: IntCounter,
    non_sticky_requests: IntCounter,
    anomalous_targets: IntGauge,
    mitigated_targets: IntGauge,
    request_count_per_target: Gauge,
}

impl TargetGroupMetrics {
    fn new(families: &Families, name: &str) -> TargetGroupMetrics {
        let label = &[name];
        let series = TargetGroupSeries {
            name: name.to_string(),
            requests: families.group_requests.with_label_values(label),
            healthy_targets: families.group_healthy_targets.with_label_values(label),
            unhealthy_targets: families.group_unhealthy_targets.with_label_values(label),
            targets_by_state: HealthState::ALL.map(|state| {
                families
                    .group_targets_by_state
                    .with_label_values(&[name, state.as_str()])
            }),
            health_check_success: families
                .group_health_checks
                .with_label_values(&[name, "success"]),
            health_check_failures: ProbeFailure::ALL.map(|failure| {
                families
                    .group_health_checks
                    .with_label_values(&[name, failure.reason_code()])
            }),
            health_check_duration: families
                .group_health_check_duration
                .with_label_values(label),
            retries: UpstreamError::KINDS
                .map(|kind| families.group_retries.with_label_values(&[name, kind])),
            fail_open_events: families.group_fail_open_events.with_label_values(label),
            unhealthy_routing_requests: families
                .group_unhealthy_routing_requests
                .with_label_values(label),
            non_sticky_requests: families.group_non_sticky_requests.with_label_values(label),
            anomalous_targets: families.group_anomalous_targets.with_label_values(label),
            mitigated_targets: families.group_mitigated_targets.with_label_values(label),
            request_count_per_target: families
                .group_request_count_per_target
                .with_label_values(label),
        };
        TargetGroupMetrics {
            inner: Arc::new(series),
        }
    }

    /// Sets `HealthyHostCount`; the health checker calls it whenever a target changes state.
    pub fn set_healthy_targets(&self, count: usize) {
        self.inner
            .healthy_targets
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets `UnHealthyHostCount`.
    pub fn set_unhealthy_targets(&self, count: usize) {
        self.inner
            .unhealthy_targets
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Requests sent to this group's targets so far, for in-process consumers such as the
    /// autoscaler's `ALBRequestCountPerTarget`.
    pub fn request_count(&self) -> u64 {
        self.inner.requests.get()
    }

    /// Counts targets by state from their states; healthy (and
    /// unavailable: in service without checks) and unhealthy also feed the ALB-style gauges.
    pub fn set_state_counts(&self, states: impl IntoIterator<Item = HealthState>) {
        let mut counts = [0usize; HealthState::ALL.len()];
        for state in states {
            counts[state as usize] += 1;
        }
        for (gauge, count) in self.inner.targets_by_state.iter().zip(counts) {
            gauge.set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.set_healthy_targets(
            counts[HealthState::Healthy as usize] + counts[HealthState::Unavailable as usize],
        );
        self.set_unhealthy_targets(counts[HealthState::Unhealthy as usize]);
    }

    /// Counts one health check and its duration.
    pub fn observe_health_check(&self, outcome: &ProbeOutcome) {
        self.inner
            .health_check_duration
            .observe(outcome.latency().as_secs_f64());
        match outcome {
            ProbeOutcome::Success { .. } => self.inner.health_check_success.inc(),
            ProbeOutcome::Failure { failure, .. } => {
                if let Some(index) = ProbeFailure::ALL.iter().position(|known| known == failure) {
                    self.inner.health_check_failures[index].inc();
                }
            }
        }
    }

    /// Counts a request retried on another target after `error`.
    pub fn retry(&self, error: &UpstreamError) {
        if let Some(index) = UpstreamError::KINDS
            .iter()
            .position(|kind| *kind == error.kind())
        {
            self.inner.retries[index].inc();
        }
    }

    /// Counts the group starting to fail open.
    pub fn fail_open_started(&self) {
        self.inner.fail_open_events.inc();
    }

    /// Counts a request routed while failing open.
    pub fn unhealthy_routing_request(&self) {
        self.inner.unhealthy_routing_requests.inc();
    }

    /// Counts a request that stickiness could not pin.
    pub fn non_sticky_request(&self) {
        self.inner.non_sticky_requests.inc();
    }

    /// Sets the anomaly-detection gauges.
    pub fn set_anomalous_targets(&self, anomalous: usize, mitigated: usize) {
        self.inner
            .anomalous_targets
            .set(i64::try_from(anomalous).unwrap_or(i64::MAX));
        self.inner
            .mitigated_targets
            .set(i64::try_from(mitigated).unwrap_or(i64::MAX));
    }

    /// Sets `RequestCountPerTarget` for the last minute.
    pub fn set_request_count_per_target(&self, value: f64) {
        self.inner.request_count_per_target.set(value);
    }

    fn remove_series(&self, families: &Families) {
        let name = self.inner.name.as_str();
        let label = &[name];
        let _ = families.group_requests.remove_label_values(label);
        let _ = families.group_healthy_targets.remove_label_values(label);
        let _ = families.group_unhealthy_targets.remove_label_values(label);
        for state in HealthState::ALL {
            let _ = families
                .group_targets_by_state
                .remove_label_values(&[name, state.as_str()]);
        }
        for result in ProbeFailure::ALL
            .map(ProbeFailure::reason_code)
            .iter()
            .chain(&["success"])
        {
            let _ = families
                .group_health_checks
                .remove_label_values(&[name, result]);
        }
        let _ = families
            .group_health_check_duration
            .remove_label_values(label);
        for kind in UpstreamError::KINDS {
            let _ = families.group_retries.remove_label_values(&[name, kind]);
        }
        let _ = families.group_fail_open_events.remove_label_values(label);
        let _ = families
            .group_unhealthy_routing_requests
            .remove_label_values(label);
        let _ = families
            .group_non_sticky_requests
            .remove_label_values(label);
        let _ = families.group_anomalous_targets.remove_label_values(label);
        let _ = families.group_mitigated_targets.remove_label_values(label);
        let _ = families
            .group_request_count_per_target
            .remove_label_values(label);
    }
}

/// Hot-path handle on one target's series. Cloning is one atomic increment.
#[derive(Clone)]
pub struct TargetMetrics {
    inner: Arc<TargetSeries>,
}

struct TargetSeries {
    target_group: String,
    target: String,
    group_requests: IntCounter,
    requests: IntCounter,
    responses_by_class: [IntCounter; 5],
    response_time: Histogram,
    connection_errors: IntCounter,
    connections_active: IntGauge,
    connections: IntCounter,
    tls_negotiation_errors: IntCounter,
    outstanding_requests: IntGauge,
}

impl TargetMetrics {
    fn new(families: &Families, group: &TargetGroupMetrics, target: &str) -> TargetMetrics {
        let group_name = group.inner.name.as_str();
        let labels = &[group_name, target];
        let series = TargetSeries {
            target_group: group_name.to_string(),
            target: target.to_string(),
            group_requests: group.inner.requests.clone(),
            requests: families.target_requests.with_label_values(labels),
            responses_by_class: CODE_CLASSES.map(|class| {
                families
                    .target_responses
                    .with_label_values(&[group_name, target, class])
            }),
            response_time: families.target_response_time.with_label_values(labels),
            connection_errors: families.target_connection_errors.with_label_values(labels),
            connections_active: families.target_connections_active.with_label_values(labels),
            connections: families.target_connections.with_label_values(labels),
            tls_negotiation_errors: families
                .target_tls_negotiation_errors
                .with_label_values(labels),
            outstanding_requests: families
                .target_outstanding_requests
                .with_label_values(labels),
        };
        TargetMetrics {
            inner: Arc::new(series),
        }
    }

    /// Counts a request sent to this target, in the target's and its group's totals.
    pub fn request(&self) {
        self.inner.requests.inc();
        self.inner.group_requests.inc();
    }

    /// Records the target's response: its status class (`HTTPCode_Target_*`) and the time
    /// from sending the request to receiving the response headers (`TargetResponseTime`).
    pub fn observe_response(&self, status: u16, elapsed: Duration) {
        self.inner.responses_by_class[code_class_index(status)].inc();
        self.inner.response_time.observe(elapsed.as_secs_f64());
    }

    /// Counts a connection to the target that could not be established.
    pub fn connection_error(&self) {
        self.inner.connection_errors.inc();
    }

    /// Requests sent to this target so far (anomaly detection reads it).
    pub fn requests_total(&self) -> u64 {
        self.inner.requests.get()
    }

    /// 5xx responses plus connection errors so far: what anomaly detection compares.
    pub fn errors_total(&self) -> u64 {
        self.inner.responses_by_class[4].get() + self.inner.connection_errors.get()
    }

    /// Publishes the target's outstanding requests.
    pub fn set_outstanding(&self, count: usize) {
        self.inner
            .outstanding_requests
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts a failed TLS handshake with the target.
    pub fn tls_negotiation_error(&self) {
        self.inner.tls_negotiation_errors.inc();
    }

    /// Counts a new connection to the target and keeps it in the active gauge until the guard
    /// is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        ConnectionGuard::open(&self.inner.connections_active, &self.inner.connections)
    }

    fn remove_series(&self, families: &Families) {
        let series = &*self.inner;
        let labels = &[series.target_group.as_str(), series.target.as_str()];
        for class in CODE_CLASSES {
            let _ = families.target_responses.remove_label_values(&[
                series.target_group.as_str(),
                series.target.as_str(),
                class,
            ]);
        }
        let _ = families.target_requests.remove_label_values(labels);
        let _ = families
            .target_outstanding_requests
            .remove_label_values(labels);
        let _ = families.target_response_time.remove_label_values(labels);
        let _ = families
            .target_connection_errors
            .remove_label_values(labels);
        let _ = families
            .target_connections_active
            .remove_label_values(labels);
        let _ = families.target_connections.remove_label_values(labels);
        let _ = families
            .target_tls_negotiation_errors
            .remove_label_values(labels);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Value of the sample `name{labels}` in text-format output, ignoring label order; the
    /// constant `load_balancer` label is not part of `labels`.
    pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        wanted.sort();
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, label_text) = match series.split_once('{') {
                    Some((series_name, rest)) => (series_name, rest.strip_suffix('}')?),
                    None => (series, ""),
                };
                let mut found: Vec<String> = label_text
                    .split(',')
                    .filter(|label| !label.is_empty() && !label.starts_with("load_balancer="))
                    .map(str::to_string)
                    .collect();
                found.sort();
                (series_name == name && found == wanted)
                    .then(|| value.parse().expect("numeric sample"))
            })
    }

    fn sample_metrics() -> Arc<Metrics> {
        let metrics = Metrics::new("my-alb");
        let listener = metrics.listener("http-80");
        listener.request();
        listener.elb_response(502);
        listener.elb_response(502);
        listener.fixed_response(418);
        listener.redirect(301);
        listener.received_bytes(100);
        listener.sent_bytes(250);
        let _connection = listener.connection_opened();
        let target = metrics.target("web", "10.0.0.1:8080");
        target.request();
        target.observe_response(200, Duration::from_millis(3));
        target.observe_response(503, Duration::from_millis(40));
        target.connection_error();
        metrics.target_group("web").set_healthy_targets(1);
        metrics.record_reload(true);
        metrics
    }

    #[test]
    fn counters_move_and_carry_their_labels() {
        let text = sample_metrics().encode_text();
        let value = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
        let listener = ("listener", "http-80");
        assert!(text.contains(r#"load_balancer="my-alb""#));
        assert_eq!(value("scalegate_requests_total", &[listener]), Some(1.0));
        let elb = "scalegate_elb_responses_total";
        assert_eq!(
            value(elb, &[listener, ("code", "502"), ("code_class", "5xx")]),
            Some(2.0)
        );
        assert_eq!(
            value(elb, &[listener, ("code", "418"), ("code_class", "4xx")]),
            Some(1.0)
        );
        assert_eq!(
            value(elb, &[listener, ("code", "301"), ("code_class", "3xx")]),
            Some(1.0)
        );
        assert_eq!(
            value(elb, &[listener, ("code", "463"), ("code_class", "4xx")]),
            Some(0.0),
            "known ALB codes exist before they happen"
        );
        assert_eq!(
            value("scalegate_fixed_responses_total", &[listener]),
            Some(1.0)
        );
        assert_eq!(value("scalegate_redirects_total", &[listener]), Some(1.0));
        let bytes = "scalegate_processed_bytes_total";
        assert_eq!(
            value(bytes, &[listener, ("direction", "received")]),
            Some(100.0)
        );
        assert_eq!(
            value(bytes, &[listener, ("direction", "sent")]),
            Some(250.0)
        );
        assert_eq!(
            value("scalegate_client_connections_active", &[listener]),
            Some(0.0),
            "the guard was dropped"
        );
        assert_eq!(
            value("scalegate_client_connections_total", &[listener]),
            Some(1.0)
        );

        let group = ("target_group", "web");
        let target = [group, ("target", "10.0.0.1:8080")];
        let responses = "scalegate_target_responses_total";
        assert_eq!(
            value(responses, &[target[0], target[1], ("code_class", "2xx")]),
            Some(1.0)
        );
        assert_eq!(
            value(responses, &[target[0], target[1], ("code_class", "5xx")]),
            Some(1.0)
        );
        let bucket = "scalegate_target_response_time_seconds_bucket";
        assert_eq!(
            value(bucket, &[target[0], target[1], ("le", "0.005")]),
            Some(1.0)
        );
        assert_eq!(
            value(bucket, &[target[0], target[1], ("le", "0.0001")]),
            Some(0.0)
        );
        assert_eq!(
            value("scalegate_target_response_time_seconds_count", &target),
            Some(2.0)
        );
        assert_eq!(value("scalegate_target_requests_total", &target), Some(1.0));
        assert_eq!(
            value("scalegate_target_connection_errors_total", &target),
            Some(1.0)
        );
        assert_eq!(
            value("scalegate_target_group_requests_total", &[group]),
            Some(1.0)
        );
        assert_eq!(
            value("scalegate_target_group_healthy_targets", &[group]),
            Some(1.0)
        );

        assert_eq!(
            value("scalegate_config_reloads_total", &[("result", "success")]),
            Some(1.0)
        );
        assert_eq!(
            value("scalegate_config_last_reload_success", &[]),
            Some(1.0)
        );
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            value("scalegate_build_info", &[("version", version)]),
            Some(1.0)
        );
        assert!(text.contains("Mirrors ALB HTTPCode_ELB_3XX/4XX/5XX_Count"));
    }

    #[test]
    fn handles_for_the_same_name_share_series() {
        let metrics = Metrics::new("lb");
        metrics.listener("a").request();
        metrics.listener("a").request();
        metrics.target("g", "t").request();
        metrics.target("g", "t").request();
        let text = metrics.encode_text();
        assert_eq!(
            sample(&text, "scalegate_requests_total", &[("listener", "a")]),
            Some(2.0)
        );
        assert_eq!(metrics.target_group("g").request_count(), 2);
    }

    #[test]
    fn failed_reload_flips_the_success_gauge() {
        let metrics = Metrics::new("lb");
        metrics.record_reload(true);
        metrics.record_reload(false);
        let text = metrics.encode_text();
        assert_eq!(
            sample(&text, "scalegate_config_last_reload_success", &[]),
            Some(0.0)
        );
        let reloads = "scalegate_config_reloads_total";
        assert_eq!(sample(&text, reloads, &[("result", "failure")]), Some(1.0));
        assert_eq!(sample(&text, reloads, &[("result", "success")]), Some(1.0));
    }

    #[test]
    fn removal_drops_every_series_of_the_removed_item() {
        let metrics = sample_metrics();
        metrics.target("web", "10.0.0.2:8080").request();
        metrics.target("api", "10.0.1.1:9000").request();

        metrics.remove_target("web", "10.0.0.1:8080");
        let text = metrics.encode_text();
        assert!(!text.contains("10.0.0.1:8080"), "{text}");
        assert!(text.contains("10.0.0.2:8080"));
        let group_requests = "scalegate_target_group_requests_total";
        assert_eq!(
            sample(&text, group_requests, &[("target_group", "web")]),
            Some(2.0)
        );

        metrics.retain_targets(|_, target| target != "10.0.0.2:8080");
        assert!(!metrics.encode_text().contains("10.0.0.2:8080"));

        metrics.remove_target_group("api");
        let text = metrics.encode_text();
        assert!(!text.contains(r#"target_group="api""#), "{text}");
        assert!(text.contains(r#"target_group="web""#));

        metrics.retain_target_groups(|_| false);
        assert!(!metrics.encode_text().contains("target_group="));

        metrics.retain_listeners(|name| name != "http-80");
        let text = metrics.encode_text();
        assert!(!text.contains("listener="), "{text}");
        // A listener that comes back starts from zero.
        metrics.listener("http-80");
        let text = metrics.encode_text();
        assert_eq!(
            sample(
                &text,
                "scalegate_requests_total",
                &[("listener", "http-80")]
            ),
            Some(0.0)
        );
        metrics.remove_listener("http-80");
        assert!(!metrics.encode_text().contains("listener="));
    }

    #[test]
    fn output_passes_promtool_check_metrics() {
        let Ok(mut child) = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        else {
            println!("skipping: promtool is not installed (apt-get install -y prometheus)");
            return;
        };
        let text = sample_metrics().encode_text();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin
                .write_all(text.as_bytes())
                .expect("promtool reads its input");
        }
        let output = child.wait_with_output().expect("promtool runs");
        assert!(
            output.status.success(),
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
