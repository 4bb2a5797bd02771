//! Target groups as long-lived objects: registered targets, their health, draining, and the
//! routing table the request path reads.
//!
//! A [`TargetGroup`] outlives config reloads (same name, same object), so a reload does not
//! forget which targets are healthy or restart their draining. Everything that changes who
//! gets traffic (a health check result, a registration, a passive failure, a slow-start step)
//! goes through [`TargetGroup::publish`], which rebuilds an immutable [`RoutingTable`] and
//! swaps it in; requests read the table without locks. Control-plane state (registrations,
//! consecutive check counts) sits behind a mutex that the request path never takes, except to
//! mark a target suspect after a failed connection, which is rare by nature.

pub mod anomaly;
pub mod balancer;
pub mod health;
pub mod probe;
pub mod stickiness;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, Guard};
use http::uri::Authority;
use scalegate_config::{
    HealthCheckPort, LoadBalancingAlgorithm, StickinessType, TargetGroup as TargetGroupConfig,
};
use serde::Serialize;
use tokio::sync::Notify;

use crate::metrics::{Metrics, TargetGroupMetrics, TargetMetrics};
use crate::upstream::{PoolSettings, TargetPool};
use anomaly::{AnomalyDetector, AnomalyVerdict, TargetCounters};
use balancer::{Algorithm, Balancer, CumulativeWeights};
use health::HealthScheduler;
use probe::{ProbeOutcome, ProbeSettings};
use stickiness::TargetStickiness;

/// ALB's target health states (`TargetHealthStateEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Registered, not yet through its first health checks: no traffic yet.
    Initial,
    /// Passing health checks: in rotation.
    Healthy,
    /// Failing health checks: out of rotation (unless the whole group fails open).
    Unhealthy,
    /// Not in service: the group is not used by any rule, or the target is not registered.
    Unused,
    /// Deregistered and finishing its requests: no new ones.
    Draining,
    /// Health checks are disabled: in rotation without checks.
    Unavailable,
}

impl HealthState {
    /// Every state, for per-state gauges, in declaration order (so `state as usize` indexes
    /// it).
    pub const ALL: [HealthState; 6] = [
        HealthState::Initial,
        HealthState::Healthy,
        HealthState::Unhealthy,
        HealthState::Unused,
        HealthState::Draining,
        HealthState::Unavailable,
    ];

    /// ALB's spelling, as in `DescribeTargetHealth`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Initial => "initial",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Unused => "unused",
            HealthState::Draining => "draining",
            HealthState::Unavailable => "unavailable",
        }
    }
}

/// ALB's reason codes for a target's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthReason {
    /// `Elb.RegistrationInProgress`: registered, no check started yet.
    RegistrationInProgress,
    /// `Elb.InitialHealthChecking`: checks running, not yet passed.
    InitialHealthChecking,
    /// `Target.ResponseCodeMismatch`: the check got a status outside the matcher.
    ResponseCodeMismatch,
    /// `Target.Timeout`: the check got no answer within its timeout.
    Timeout,
    /// `Target.FailedHealthChecks`: connection refused or reset, TLS failure, bad response.
    FailedHealthChecks,
    /// `Elb.InternalError`: the check could not be made on scalegate's side.
    InternalError,
    /// `Target.NotRegistered`: the target is not registered with the group.
    NotRegistered,
    /// `Target.NotInUse`: no listener rule forwards to the group.
    NotInUse,
    /// `Target.DeregistrationInProgress`: draining.
    DeregistrationInProgress,
    /// `Target.HealthCheckDisabled`: the group has health checks off.
    HealthCheckDisabled,
}

impl HealthReason {
    /// ALB's reason code string.
    pub fn code(self) -> &'static str {
        match self {
            HealthReason::RegistrationInProgress => "Elb.RegistrationInProgress",
            HealthReason::InitialHealthChecking => "Elb.InitialHealthChecking",
            HealthReason::ResponseCodeMismatch => "Target.ResponseCodeMismatch",
            HealthReason::Timeout => "Target.Timeout",
            HealthReason::FailedHealthChecks => "Target.FailedHealthChecks",
            HealthReason::InternalError => "Elb.InternalError",
            HealthReason::NotRegistered => "Target.NotRegistered",
            HealthReason::NotInUse => "Target.NotInUse",
            HealthReason::DeregistrationInProgress => "Target.DeregistrationInProgress",
            HealthReason::HealthCheckDisabled => "Target.HealthCheckDisabled",
        }
    }

    /// ALB's description for reasons that have a fixed one.
    fn default_description(self) -> &'static str {
        match self {
            HealthReason::RegistrationInProgress => "Target registration is in progress",
            HealthReason::InitialHealthChecking => "Initial health checks in progress",
            HealthReason::ResponseCodeMismatch => "Health checks failed",
            HealthReason::Timeout => "Request timed out",
            HealthReason::FailedHealthChecks => "Health checks failed",
            HealthReason::InternalError => "Health checks failed with an internal error",
            HealthReason::NotRegistered => "Target is not registered to the target group",
            HealthReason::NotInUse => {
                "Target group is not configured to receive traffic from the load balancer"
            }
            HealthReason::DeregistrationInProgress => "Target deregistration is in progress",
            HealthReason::HealthCheckDisabled => "Health checks are disabled",
        }
    }
}

/// A group's health-check settings in the form the scheduler uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// What one check sends and accepts.
    pub probe: ProbeSettings,
    /// Time between checks of one target.
    pub interval: Duration,
    /// Consecutive successes that bring an unhealthy target back.
    pub healthy_threshold: u32,
    /// Consecutive failures that take a target out.
    pub unhealthy_threshold: u32,
    /// Successes a newly registered target needs before it gets traffic.
    pub initial_healthy_threshold: u32,
}

/// A target group's behaviour, compiled from its config; replaced whole on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// `None` when health checks are disabled.
    pub health_check: Option<HealthCheckSettings>,
    /// How a target is picked.
    pub algorithm: Algorithm,
    /// Reduce the share of targets detected as anomalous (weighted_random only).
    pub anomaly_mitigation: bool,
    /// Ramp-up time of a target that became healthy; zero for none.
    pub slow_start: Duration,
    /// Longest time a deregistered target drains.
    pub deregistration_delay: Duration,
    /// Target stickiness, if enabled.
    pub stickiness: Option<TargetStickiness>,
    /// Retry once elsewhere and mark the target suspect after a connection failure.
    pub passive_health: bool,
    /// How long a suspect target is skipped when there are no health checks to clear it.
    pub suspect_duration: Duration,
    /// Port for targets registered without one.
    pub default_port: u16,
}

impl GroupSettings {
    /// Compiles a group's config (already validated).
    pub fn from_config(group: &TargetGroupConfig) -> GroupSettings {
        let check = &group.health_check;
        let health_check = check.enabled.then(|| HealthCheckSettings {
            probe: ProbeSettings {
                protocol: check.effective_protocol(group.protocol),
                protocol_version: group.protocol_version,
                path: check.effective_path().to_string(),
                port: match check.port {
                    HealthCheckPort::TrafficPort => None,
                    HealthCheckPort::Port(port) => Some(port),
                },
                timeout: Duration::from_secs(check.timeout_seconds),
                http_codes: check.matcher.http_codes(),
                grpc_codes: check.matcher.grpc_codes(),
            },
            interval: Duration::from_secs(check.interval_seconds),
            healthy_threshold: check.healthy_threshold_count,
            unhealthy_threshold: check.unhealthy_threshold_count,
            initial_healthy_threshold: check.initial_healthy_threshold_count,
        });
        let stickiness = group.stickiness.enabled.then(|| {
            let duration = Duration::from_secs(group.stickiness.duration_seconds);
            match group.stickiness.kind {
                StickinessType::LbCookie => TargetStickiness::LoadBalancerCookie { duration },
                StickinessType::AppCookie => TargetStickiness::ApplicationCookie {
                    cookie_name: group.stickiness.cookie_name.clone().unwrap_or_default(),
                    duration,
                },
            }
        });
        GroupSettings {
            health_check,
            algorithm: match group.load_balancing_algorithm {
                LoadBalancingAlgorithm::RoundRobin => Algorithm::RoundRobin,
                LoadBalancingAlgorithm::LeastOutstandingRequests => {
                    Algorithm::LeastOutstandingRequests
                }
                LoadBalancingAlgorithm::WeightedRandom => Algorithm::WeightedRandom,
            },
            anomaly_mitigation: group.anomaly_mitigation,
            slow_start: Duration::from_secs(group.slow_start_duration_seconds),
            deregistration_delay: Duration::from_secs(group.deregistration_delay_seconds),
            stickiness,
            passive_health: group.passive_health.enabled,
            suspect_duration: Duration::from_secs(group.passive_health.suspect_seconds),
            default_port: group.port,
        }
    }
}

/// The mutable health record of one target; only the control plane touches it.
#[derive(Debug, Clone)]
struct HealthRecord {
    state: HealthState,
    reason: Option<HealthReason>,
    description: String,
    consecutive_successes: u32,
    consecutive_failures: u32,
    /// When the target entered slow start (it became healthy while a full-share peer served).
    slow_start_since: Option<Instant>,
    /// Registered in one operation into a group with no healthy full-share target (or reset
    /// with all its peers), so its first healthy transition skips slow start, as ALB's does;
    /// later ones (after it was unhealthy) slow start as usual.
    slow_start_exempt: bool,
    /// When a client request last failed to reach it (passive health).
    suspect_since: Option<Instant>,
    /// When draining must end at the latest.
    draining_deadline: Option<Instant>,
    last_check: Option<LastCheck>,
    anomaly: AnomalyVerdict,
}

#[derive(Debug, Clone)]
struct LastCheck {
    at: SystemTime,
    latency: Duration,
    passed: bool,
}

impl HealthRecord {
    fn new(state: HealthState, reason: Option<HealthReason>) -> HealthRecord {
        HealthRecord {
            state,
            reason,
            description: reason
                .map(|reason| reason.default_description().to_string())
                .unwrap_or_default(),
            consecutive_successes: 0,
            consecutive_failures: 0,
            slow_start_since: None,
            slow_start_exempt: false,
            suspect_since: None,
            draining_deadline: None,
            last_check: None,
            anomaly: AnomalyVerdict {
                anomalous: false,
                mitigated: false,
                weight: CumulativeWeights::FULL_WEIGHT,
            },
        }
    }

    fn set(&mut self, state: HealthState, reason: Option<HealthReason>) {
        self.state = state;
        self.reason = reason;
        self.description = reason
            .map(|reason| reason.default_description().to_string())
            .unwrap_or_default();
    }
}

/// A registered target: where to connect, its pools, and what the balancer reads per request.
pub struct Target {
    /// Where to connect.
    pub address: SocketAddr,
    /// `ip:port` for upstream URIs.
    pub authority: Authority,
    /// Per-target metrics, resolved once.
    pub metrics: TargetMetrics,
    /// One connection pool per worker; swapped when the group's connection settings change.
    pools: ArcSwap<Vec<Arc<TargetPool>>>,
    outstanding: AtomicUsize,
    suspect: AtomicBool,
    draining: AtomicBool,
    /// Bumped to cancel scheduled health checks (deregistered, group out of use).
    check_generation: AtomicU64,
    /// Wakes the scheduler when a draining target's last request ends.
    scheduler_wake: Arc<Notify>,
    record: Mutex<HealthRecord>,
}

impl Target {
    /// The pool `worker` sends through; every worker has its own.
    pub fn pool(&self, worker: usize) -> Arc<TargetPool> {
        let pools = self.pools.load();
        Arc::clone(&pools[worker % pools.len()])
    }

    /// Requests sent to this target whose responses have not finished.
    pub fn outstanding_requests(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// True once deregistered.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// True after a client request failed to connect, until a check passes again.
    pub fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Relaxed)
    }

    /// Counts a request as outstanding until the returned guard is dropped (with the end of
    /// the response body, or of a WebSocket tunnel).
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight {
            target: Arc::clone(self),
        }
    }

    fn record(&self) -> MutexGuard<'_, HealthRecord> {
        self.record.lock().expect("target health lock")
    }

    fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.check_generation.fetch_add(1, Ordering::Relaxed);
        for pool in self.pools.load().iter() {
            pool.drain();
        }
    }
}

/// An outstanding request on a target; dropping it ends the request.
pub struct InFlight {
    target: Arc<Target>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let before = self.target.outstanding.fetch_sub(1, Ordering::Relaxed);
        if before == 1 && self.target.draining.load(Ordering::Relaxed) {
            self.target.scheduler_wake.notify_one();
        }
    }
}

/// What the request path reads to pick a target: the routable targets of this moment and
/// how to choose among them. Immutable; replaced whole.
pub struct RoutingTable {
    targets: Box<[Arc<Target>]>,
    weights: Option<CumulativeWeights>,
    balancer: Balancer,
    /// No target is healthy and some failed their checks, so every registered one is
    /// routable (ALB's fail-open). A group whose targets are all still `initial` also routes
    /// to them, as the only way to serve, without counting it as failing open.
    pub fail_open: bool,
    /// The settings this table was built with.
    pub settings: Arc<GroupSettings>,
}

impl RoutingTable {
    /// Picks a target, never `skip` (the target a retry just failed on).
    pub fn pick(&self, skip: Option<&Arc<Target>>) -> Option<&Arc<Target>> {
        let skip_index = skip.and_then(|skip| {
            self.targets
                .iter()
                .position(|target| Arc::ptr_eq(target, skip))
        });
        let index = self.balancer.pick(
            self.targets.len(),
            self.weights.as_ref(),
            |index| self.targets[index].outstanding_requests(),
            skip_index,
            fastrand::u64(..),
        )?;
        self.targets.get(index)
    }

    /// The routable target at `address`, for stickiness.
    pub fn find(&self, address: SocketAddr) -> Option<&Arc<Target>> {
        self.targets.iter().find(|target| target.address == address)
    }

    /// The routable targets.
    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }
}

/// Where a registration came from; a target stays registered while any source wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationSource {
    /// The config file's `targets` list.
    Config,
    /// The admin API or another in-process caller (the autoscaler).
    Api,
    /// The group's discovery source (DNS names or a targets file).
    Discovery,
}

struct Registration {
    target: Arc<Target>,
    from_config: bool,
    from_api: bool,
    from_discovery: bool,
}

impl Registration {
    fn wanted(&self) -> bool {
        self.from_config || self.from_api || self.from_discovery
    }
}

struct Control {
    registrations: Vec<Registration>,
    pool_settings: PoolSettings,
    workers: usize,
    anomaly: AnomalyDetector,
    fail_open: bool,
    /// Requests total and time at the start of the current `RequestCountPerTarget` minute.
    minute_start: (Instant, u64),
}

/// A target group: its registered targets, their health, and its routing table.
pub struct TargetGroup {
    name: String,
    metrics: TargetGroupMetrics,
    all_metrics: Arc<Metrics>,
    settings: ArcSwap<GroupSettings>,
    routing: ArcSwap<RoutingTable>,
    control: Mutex<Control>,
    in_use: AtomicBool,
    scheduler: Arc<HealthScheduler>,
}

/// Why a registration or deregistration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The target's address cannot be used (port 0).
    #[error("target {0}: port must be 1–65535")]
    InvalidTarget(SocketAddr),
    /// The target is not registered (deregistering).
    #[error("target {0} is not registered with target group {1}")]
    NotRegistered(SocketAddr, String),
    /// ALB's 1000-target limit.
    #[error("target group {0} would have more than 1000 targets")]
    TooManyTargets(String),
}

/// ALB's limit on targets per group.
const MAX_TARGETS: usize = 1000;

/// One target in `DescribeTargetHealth`'s shape (snake_case), plus what scalegate adds.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealthDescription {
    /// `Target`: the address.
    pub target: TargetId,
    /// `HealthCheckPort`: the port checks go to.
    pub health_check_port: String,
    /// `TargetHealth`: state, reason and description.
    pub target_health: TargetHealthView,
    /// `AnomalyDetection` (automatic target weights).
    pub anomaly_detection: AnomalyDetectionView,
    /// Requests sent and not yet answered in full.
    pub outstanding_requests: usize,
    /// A client request failed to connect to it; skipped until a check passes.
    pub suspect: bool,
    /// Still ramping up its share after becoming healthy.
    pub in_slow_start: bool,
    /// The last health check, if one ran.
    pub last_health_check: Option<LastCheckView>,
}

/// `Target`: ALB's `Id` and `Port`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetId {
    /// IP address.
    pub id: String,
    /// Port.
    pub port: u16,
}

/// `TargetHealth`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealthView {
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining` or `unavailable`.
    pub state: HealthState,
    /// ALB reason code, absent when healthy.
    pub reason: Option<&'static str>,
    /// Human description.
    pub description: String,
}

/// `AnomalyDetection`.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyDetectionView {
    /// `anomalous` or `normal`.
    pub result: &'static str,
    /// `yes` when its traffic is being reduced.
    pub mitigation_in_effect: &'static str,
}

/// The last check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct LastCheckView {
    /// Seconds since the Unix epoch.
    pub at_unix_seconds: u64,
    /// How long it took, in milliseconds.
    pub latency_milliseconds: f64,
    /// Whether it passed.
    pub passed: bool,
}

/// A group's request volume, in the form the autoscaler turns into ALB's
/// `RequestCountPerTarget`: take two readings, divide the request delta by the routable
/// targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TargetGroupLoad {
    /// Requests sent to the group's targets since it was created.
    pub requests_total: u64,
    /// Targets in service: healthy, or unavailable (health checks off).
    pub healthy_targets: usize,
    /// Targets that get traffic now (healthy ones, or all of them when failing open).
    pub routable_targets: usize,
}

impl TargetGroup {
    fn new(
        name: &str,
        settings: GroupSettings,
        pool_settings: PoolSettings,
        workers: usize,
        metrics: &Arc<Metrics>,
        scheduler: &Arc<HealthScheduler>,
    ) -> Arc<TargetGroup> {
        let settings = Arc::new(settings);
        let group_metrics = metrics.target_group(name);
        let requests = group_metrics.request_count();
        Arc::new(TargetGroup {
            name: name.to_string(),
            metrics: group_metrics,
            all_metrics: Arc::clone(metrics),
            routing: ArcSwap::from_pointee(RoutingTable {
                targets: Box::new([]),
                weights: None,
                balancer: Balancer::new(settings.algorithm),
                fail_open: false,
                settings: Arc::clone(&settings),
            }),
            control: Mutex::new(Control {
                registrations: Vec::new(),
                pool_settings,
                workers: workers.max(1),
                anomaly: AnomalyDetector::new(settings.anomaly_mitigation),
                fail_open: false,
                minute_start: (Instant::now(), requests),
            }),
            settings: ArcSwap::new(settings),
            in_use: AtomicBool::new(false),
            scheduler: Arc::clone(scheduler),
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group's metrics.
    pub fn metrics(&self) -> &TargetGroupMetrics {
        &self.metrics
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<GroupSettings> {
        self.settings.load_full()
    }

    /// The routing table of this moment, for a quick look (admin, metrics).
    pub fn routing(&self) -> Guard<Arc<RoutingTable>> {
        self.routing.load()
    }

    /// The routing table of this moment, owned: a request keeps it across awaits (a retry
    /// picks from the same table), which arc-swap's short-lived guards are not meant for.
    pub fn routing_table(&self) -> Arc<RoutingTable> {
        self.routing.load_full()
    }

    /// Whether a listener rule forwards to this group.
    pub fn in_use(&self) -> bool {
        self.in_use.load(Ordering::Relaxed)
    }

    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().expect("target group lock")
    }

    /// Registers targets (ALB `RegisterTargets`). Already registered targets are kept as they
    /// are; new ones start `initial` and get traffic once they pass their first checks.
    pub fn register(
        self: &Arc<Self>,
        addresses: &[SocketAddr],
        source: RegistrationSource,
    ) -> Result<(), RegistrationError> {
        if let Some(invalid) = addresses.iter().find(|address| address.port() == 0) {
            return Err(RegistrationError::InvalidTarget(*invalid));
        }
        {
            let mut control = self.control();
            let active = control
                .registrations
                .iter()
                .filter(|registration| !registration.target.is_draining())
                .count();
            let new = addresses
                .iter()
                .filter(|address| find_active(&control.registrations, **address).is_none())
                .count();
            if active + new > MAX_TARGETS {
                return Err(RegistrationError::TooManyTargets(self.name.clone()));
            }
            let slow_start = self.slow_start_eligible(&control, &self.settings.load());
            for address in addresses {
                self.register_locked(&mut control, *address, source, slow_start);
            }
        }
        self.publish();
        Ok(())
    }

    /// Registers one target of a registration operation; `slow_start` says whether the group
    /// had a healthy full-share target when the operation began (ALB decides per operation,
    /// so targets registered together into an empty group all get a full share).
    fn register_locked(
        self: &Arc<Self>,
        control: &mut Control,
        address: SocketAddr,
        source: RegistrationSource,
        slow_start: bool,
    ) {
        if let Some(index) = find_active(&control.registrations, address) {
            let registration = &mut control.registrations[index];
            match source {
                RegistrationSource::Config => registration.from_config = true,
                RegistrationSource::Api => registration.from_api = true,
                RegistrationSource::Discovery => registration.from_discovery = true,
            }
            return;
        }
        let settings = self.settings.load();
        let metrics = self.all_metrics.target(&self.name, &address.to_string());
        let pools = (0..control.workers)
            .map(|_| TargetPool::new(address, control.pool_settings.clone(), metrics.clone()))
            .collect();
        let (state, reason) = self.entry_state(&settings);
        let mut record = HealthRecord::new(state, reason);
        record.slow_start_exempt = !slow_start;
        if state == HealthState::Unavailable && slow_start {
            record.slow_start_since = Some(Instant::now());
        }
        let target = Arc::new(Target {
            address,
            authority: Authority::try_from(address.to_string())
                .expect("a socket address is a valid authority"),
            metrics,
            pools: ArcSwap::from_pointee(pools),
            outstanding: AtomicUsize::new(0),
            suspect: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            check_generation: AtomicU64::new(0),
            scheduler_wake: self.scheduler.wake_handle(),
            record: Mutex::new(record),
        });
        tracing::info!(target_group = %self.name, address = %address, state = state.as_str(), "target registered");
        if state == HealthState::Initial {
            self.scheduler.schedule_first(self, &target, &settings);
        }
        control.registrations.push(Registration {
            target,
            from_config: source == RegistrationSource::Config,
            from_api: source == RegistrationSource::Api,
            from_discovery: source == RegistrationSource::Discovery,
        });
    }

    /// The state a target enters on registration (or when the group's use changes).
    fn entry_state(&self, settings: &GroupSettings) -> (HealthState, Option<HealthReason>) {
        if !self.in_use() {
            (HealthState::Unused, Some(HealthReason::NotInUse))
        } else if settings.health_check.is_none() {
            (
                HealthState::Unavailable,
                Some(HealthReason::HealthCheckDisabled),
            )
        } else {
            (
                HealthState::Initial,
                Some(HealthReason::RegistrationInProgress),
            )
        }
    }

    /// ALB applies slow start only when at least one healthy target is not itself in slow
    /// start, so a group that was empty gets full traffic at once.
    fn slow_start_eligible(&self, control: &Control, settings: &GroupSettings) -> bool {
        !settings.slow_start.is_zero()
            && control.registrations.iter().any(|registration| {
                let record = registration.target.record();
                !registration.target.is_draining()
                    && matches!(
                        record.state,
                        HealthState::Healthy | HealthState::Unavailable
                    )
                    && record.slow_start_since.is_none()
            })
    }

    /// Deregisters targets (ALB `DeregisterTargets`): they get no new requests and drain for
    /// up to the deregistration delay. A config- or discovery-sourced deregistration keeps a
    /// target another source still wants; the API's removes it whatever registered it.
    /// All-or-nothing: an unknown target changes nothing.
    pub fn deregister(
        self: &Arc<Self>,
        addresses: &[SocketAddr],
        source: RegistrationSource,
    ) -> Result<(), RegistrationError> {
        {
            let mut control = self.control();
            if let Some(unknown) = addresses
                .iter()
                .find(|address| find_active(&control.registrations, **address).is_none())
            {
                return Err(RegistrationError::NotRegistered(
                    *unknown,
                    self.name.clone(),
                ));
            }
            for address in addresses {
                self.deregister_locked(&mut control, *address, source);
            }
        }
        self.sweep_draining(Instant::now());
        self.publish();
        Ok(())
    }

    fn deregister_locked(
        &self,
        control: &mut Control,
        address: SocketAddr,
        source: RegistrationSource,
    ) {
        let Some(index) = find_active(&control.registrations, address) else {
            return;
        };
        let registration = &mut control.registrations[index];
        match source {
            RegistrationSource::Config => registration.from_config = false,
            RegistrationSource::Discovery => registration.from_discovery = false,
            // An operator's deregistration wins over every other source.
            RegistrationSource::Api => {
                registration.from_config = false;
                registration.from_api = false;
                registration.from_discovery = false;
            }
        }
        if registration.wanted() {
            return;
        }
        let delay = self.settings.load().deregistration_delay;
        let target = &registration.target;
        {
            let mut record = target.record();
            record.set(
                HealthState::Draining,
                Some(HealthReason::DeregistrationInProgress),
            );
            record.draining_deadline = Some(Instant::now() + delay);
            record.slow_start_since = None;
        }
        target.start_draining();
        tracing::info!(target_group = %self.name, address = %address, outstanding = target.outstanding_requests(), delay_seconds = delay.as_secs(), "target draining");
    }

    /// Applies a reloaded config: settings, connection settings, and the config's target list
    /// (added targets registered, removed ones drained).
    pub(crate) fn configure(
        self: &Arc<Self>,
        settings: GroupSettings,
        pool_settings: PoolSettings,
        config_targets: &[SocketAddr],
    ) {
        let previous = self.settings.swap(Arc::new(settings));
        let settings = self.settings.load_full();
        {
            let mut control = self.control();
            if control.pool_settings != pool_settings {
                for registration in &control.registrations {
                    if registration.target.is_draining() {
                        continue;
                    }
                    let target = &registration.target;
                    let pools: Vec<_> = (0..control.workers)
                        .map(|_| {
                            TargetPool::new(
                                target.address,
                                pool_settings.clone(),
                                target.metrics.clone(),
                            )
                        })
                        .collect();
                    for old in target.pools.swap(Arc::new(pools)).iter() {
                        old.drain();
                    }
                }
                control.pool_settings = pool_settings;
            }
            control.anomaly.set_mitigation(settings.anomaly_mitigation);
            if previous.health_check.is_some() != settings.health_check.is_some() {
                self.reset_states_locked(&control, &settings);
            }
            let stale: Vec<SocketAddr> = control
                .registrations
                .iter()
                .filter(|registration| {
                    registration.from_config
                        && !registration.target.is_draining()
                        && !config_targets.contains(&registration.target.address)
                })
                .map(|registration| registration.target.address)
                .collect();
            for address in stale {
                self.deregister_locked(&mut control, address, RegistrationSource::Config);
            }
            let slow_start = self.slow_start_eligible(&control, &settings);
            for address in config_targets {
                self.register_locked(
                    &mut control,
                    *address,
                    RegistrationSource::Config,
                    slow_start,
                );
            }
        }
        self.sweep_draining(Instant::now());
        self.publish();
    }

    /// Puts every active target back to its entry state (the group's use or health-check
    /// setting changed) and schedules checks where they apply.
    fn reset_states_locked(self: &Arc<Self>, control: &Control, settings: &GroupSettings) {
        let (state, reason) = self.entry_state(settings);
        for registration in &control.registrations {
            let target = &registration.target;
            if target.is_draining() {
                continue;
            }
            target.check_generation.fetch_add(1, Ordering::Relaxed);
            {
                let mut record = target.record();
                record.set(state, reason);
                record.consecutive_successes = 0;
                record.consecutive_failures = 0;
                record.slow_start_since = None;
                // Every peer is reset too: like a registration into an empty group.
                record.slow_start_exempt = true;
            }
            if state == HealthState::Initial {
                self.scheduler.schedule_first(self, target, settings);
            }
        }
    }

    /// Marks whether any listener rule forwards here. ALB does not check the targets of an
    /// unused group; neither do we.
    pub(crate) fn set_in_use(self: &Arc<Self>, in_use: bool) {
        if self.in_use.swap(in_use, Ordering::Relaxed) == in_use {
            return;
        }
        let settings = self.settings.load_full();
        {
            let control = self.control();
            self.reset_states_locked(&control, &settings);
        }
        self.publish();
    }

    /// Drains every target: the group left the config.
    pub(crate) fn retire(self: &Arc<Self>) {
        self.in_use.store(false, Ordering::Relaxed);
        let mut control = self.control();
        let addresses: Vec<SocketAddr> = control
            .registrations
            .iter()
            .filter(|registration| !registration.target.is_draining())
            .map(|registration| registration.target.address)
            .collect();
        for address in addresses {
            self.deregister_locked(&mut control, address, RegistrationSource::Api);
        }
    }

    /// A client request could not reach `target` (refused, reset, timed out before any
    /// response): skip it until a health check passes, or for `suspect_duration` when checks
    /// are off.
    pub fn mark_suspect(&self, target: &Arc<Target>) {
        if target.suspect.swap(true, Ordering::Relaxed) {
            return;
        }
        target.record().suspect_since = Some(Instant::now());
        tracing::warn!(target_group = %self.name, address = %target.address, "target failed a client request; skipping it until it passes a health check");
        self.publish();
    }

    /// Marks a scheduled check as started (`Elb.InitialHealthChecking` for new targets).
    /// Returns false when the check no longer applies.
    pub(crate) fn check_starting(&self, target: &Target, generation: u64) -> bool {
        if generation != target.check_generation.load(Ordering::Relaxed)
            || target.is_draining()
            || !self.in_use()
        {
            return false;
        }
        let mut record = target.record();
        if record.reason == Some(HealthReason::RegistrationInProgress) {
            record.set(
                HealthState::Initial,
                Some(HealthReason::InitialHealthChecking),
            );
        }
        true
    }

    /// Applies one check's outcome to the target's state; republishes when routing changes.
    pub(crate) fn record_check(
        &self,
        target: &Arc<Target>,
        generation: u64,
        outcome: &ProbeOutcome,
    ) {
        if generation != target.check_generation.load(Ordering::Relaxed) || target.is_draining() {
            return;
        }
        let settings = self.settings.load_full();
        let Some(check) = &settings.health_check else {
            return;
        };
        self.metrics.observe_health_check(outcome);
        let routing_changed = {
            let control = self.control();
            let slow_start = self.slow_start_eligible(&control, &settings);
            let mut record = target.record();
            let before = record.state;
            let changed = record.apply_check(outcome, check, slow_start, Instant::now());
            let after = record.state;
            drop(record);
            if before != after {
                tracing::info!(target_group = %self.name, address = %target.address, from = before.as_str(), to = after.as_str(), "target health changed");
            }
            let was_suspect = matches!(outcome, ProbeOutcome::Success { .. })
                && target.suspect.swap(false, Ordering::Relaxed);
            changed || was_suspect
        };
        if routing_changed {
            self.publish();
        }
    }

    /// Once a second: ends draining, expires suspicion, advances slow start, runs anomaly
    /// detection and refreshes gauges.
    pub(crate) fn tick(&self, now: Instant) {
        self.sweep_draining(now);
        let settings = self.settings.load_full();
        let mut changed = false;
        {
            let mut control = self.control();
            let mut observed = Vec::new();
            let mut observed_targets = Vec::new();
            for registration in &control.registrations {
                let target = &registration.target;
                if target.is_draining() {
                    continue;
                }
                let mut record = target.record();
                if settings.health_check.is_none() {
                    if let Some(since) = record.suspect_since {
                        if now.duration_since(since) >= settings.suspect_duration
                            && target.suspect.swap(false, Ordering::Relaxed)
                        {
                            record.suspect_since = None;
                            changed = true;
                        }
                    }
                }
                if let Some(since) = record.slow_start_since {
                    // Every step of the ramp is a new weight.
                    changed = true;
                    if now.duration_since(since) >= settings.slow_start {
                        record.slow_start_since = None;
                    }
                }
                if matches!(
                    record.state,
                    HealthState::Healthy | HealthState::Unavailable
                ) {
                    observed.push((
                        target.address,
                        TargetCounters {
                            requests: target.metrics.requests_total(),
                            errors: target.metrics.errors_total(),
                        },
                    ));
                    observed_targets.push(Arc::clone(target));
                }
            }
            let verdicts = control.anomaly.update(now, &observed);
            let mut anomalous = 0;
            let mut mitigated = 0;
            for (target, verdict) in observed_targets.iter().zip(verdicts) {
                anomalous += usize::from(verdict.anomalous);
                mitigated += usize::from(verdict.mitigated);
                let mut record = target.record();
                if record.anomaly != verdict {
                    if record.anomaly.anomalous != verdict.anomalous {
                        tracing::warn!(target_group = %self.name, address = %target.address, anomalous = verdict.anomalous, "target anomaly detection changed");
                    }
                    changed |= record.anomaly.weight != verdict.weight;
                    record.anomaly = verdict;
                }
            }
            self.metrics.set_anomalous_targets(anomalous, mitigated);
            let (started, requests_then) = control.minute_start;
            if now.duration_since(started) >= Duration::from_secs(60) {
                let requests = self.metrics.request_count();
                let routable = self.routing.load().targets.len().max(1);
                self.metrics.set_request_count_per_target(
                    requests.saturating_sub(requests_then) as f64 / routable as f64,
                );
                control.minute_start = (now, requests);
            }
            for registration in &control.registrations {
                let target = &registration.target;
                target
                    .metrics
                    .set_outstanding(target.outstanding_requests());
            }
        }
        if changed {
            self.publish();
        }
    }

    /// Removes draining targets whose requests have all finished, or whose delay is over.
    pub(crate) fn sweep_draining(&self, now: Instant) {
        let mut control = self.control();
        let mut removed = Vec::new();
        control.registrations.retain(|registration| {
            let target = &registration.target;
            if !target.is_draining() {
                return true;
            }
            let deadline = target.record().draining_deadline;
            let done = target.outstanding_requests() == 0
                || deadline.is_some_and(|deadline| now >= deadline);
            if done {
                removed.push((target.address, target.outstanding_requests()));
            }
            !done
        });
        for (address, outstanding) in removed {
            tracing::info!(target_group = %self.name, address = %address, outstanding, "target deregistered");
            if find_any(&control.registrations, address).is_none() {
                self.all_metrics
                    .remove_target(&self.name, &address.to_string());
            }
        }
        drop(control);
        self.update_state_gauges();
    }

    /// Rebuilds the routing table from the targets' states and swaps it in.
    pub fn publish(&self) {
        let settings = self.settings.load_full();
        let now = Instant::now();
        let mut control = self.control();
        let in_use = self.in_use();
        let mut active = Vec::new();
        let mut healthy = Vec::new();
        let mut healthy_not_suspect = Vec::new();
        for registration in &control.registrations {
            let target = &registration.target;
            if target.is_draining() {
                continue;
            }
            active.push(Arc::clone(target));
            let state = target.record().state;
            let routable =
                !in_use || matches!(state, HealthState::Healthy | HealthState::Unavailable);
            if routable {
                healthy.push(Arc::clone(target));
                if !target.is_suspect() {
                    healthy_not_suspect.push(Arc::clone(target));
                }
            }
        }
        let (targets, fail_open) = if !healthy_not_suspect.is_empty() {
            (healthy_not_suspect, false)
        } else if !healthy.is_empty() {
            (healthy, false)
        } else {
            let fail_open = !active.is_empty();
            (active, fail_open)
        };
        // Failing open because targets failed their checks is an event worth a warning; a
        // group whose targets are all still in their first checks (at start) is not.
        let failed = fail_open
            && targets
                .iter()
                .any(|target| target.record().state == HealthState::Unhealthy);
        let weights = if fail_open {
            None
        } else {
            CumulativeWeights::new(targets.iter().map(|target| {
                let record = target.record();
                let mut weight = CumulativeWeights::FULL_WEIGHT;
                if let Some(since) = record.slow_start_since {
                    weight =
                        balancer::slow_start_weight(now.duration_since(since), settings.slow_start);
                }
                if settings.anomaly_mitigation && record.anomaly.mitigated {
                    weight = (u64::from(weight) * u64::from(record.anomaly.weight)
                        / u64::from(CumulativeWeights::FULL_WEIGHT))
                        as u32;
                }
                weight
            }))
        };
        if failed && !control.fail_open {
            self.metrics.fail_open_started();
            tracing::warn!(target_group = %self.name, targets = targets.len(), "no healthy target: routing to all targets (fail-open)");
        } else if !failed && control.fail_open {
            tracing::info!(target_group = %self.name, "fail-open ended");
        }
        control.fail_open = failed;
        self.routing.store(Arc::new(RoutingTable {
            targets: targets.into_boxed_slice(),
            weights,
            balancer: Balancer::new(settings.algorithm),
            fail_open: failed,
            settings,
        }));
        drop(control);
        self.update_state_gauges();
    }

    fn update_state_gauges(&self) {
        let control = self.control();
        self.metrics.set_state_counts(
            control
                .registrations
                .iter()
                .map(|registration| registration.target.record().state),
        );
    }

    /// `DescribeTargetHealth`: every registered target (draining included), or only the given
    /// ones (unknown ones reported `unused` / `Target.NotRegistered`).
    pub fn describe(&self, only: Option<&[SocketAddr]>) -> Vec<TargetHealthDescription> {
        let settings = self.settings.load_full();
        let check_port = |address: SocketAddr| match &settings.health_check {
            Some(check) => check.probe.port.unwrap_or(address.port()).to_string(),
            None => address.port().to_string(),
        };
        let control = self.control();
        let describe = |target: &Arc<Target>| {
            let record = target.record();
            TargetHealthDescription {
                target: TargetId {
                    id: target.address.ip().to_string(),
                    port: target.address.port(),
                },
                health_check_port: check_port(target.address),
                target_health: TargetHealthView {
                    state: record.state,
                    reason: record.reason.map(HealthReason::code),
                    description: record.description.clone(),
                },
                anomaly_detection: AnomalyDetectionView {
                    result: if record.anomaly.anomalous {
                        "anomalous"
                    } else {
                        "normal"
                    },
                    mitigation_in_effect: if record.anomaly.mitigated {
                        "yes"
                    } else {
                        "no"
                    },
                },
                outstanding_requests: target.outstanding_requests(),
                suspect: target.is_suspect(),
                in_slow_start: record.slow_start_since.is_some(),
                last_health_check: record.last_check.as_ref().map(|check| LastCheckView {
                    at_unix_seconds: check
                        .at
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |since| since.as_secs()),
                    latency_milliseconds: check.latency.as_secs_f64() * 1000.0,
                    passed: check.passed,
                }),
            }
        };
        match only {
            None => control
                .registrations
                .iter()
                .map(|registration| describe(&registration.target))
                .collect(),
            Some(addresses) => addresses
                .iter()
                .map(|address| match find_any(&control.registrations, *address) {
                    Some(index) => describe(&control.registrations[index].target),
                    None => TargetHealthDescription {
                        target: TargetId {
                            id: address.ip().to_string(),
                            port: address.port(),
                        },
                        health_check_port: check_port(*address),
                        target_health: TargetHealthView {
                            state: HealthState::Unused,
                            reason: Some(HealthReason::NotRegistered.code()),
                            description: HealthReason::NotRegistered
                                .default_description()
                                .to_string(),
                        },
                        anomaly_detection: AnomalyDetectionView {
                            result: "normal",
                            mitigation_in_effect: "no",
                        },
                        outstanding_requests: 0,
                        suspect: false,
                        in_slow_start: false,
                        last_health_check: None,
                    },
                })
                .collect(),
        }
    }

    /// The group's request volume and target counts, for `RequestCountPerTarget`.
    pub fn load(&self) -> TargetGroupLoad {
        let control = self.control();
        let healthy_targets = control
            .registrations
            .iter()
            .filter(|registration| {
                matches!(
                    registration.target.record().state,
                    HealthState::Healthy | HealthState::Unavailable
                )
            })
            .count();
        drop(control);
        TargetGroupLoad {
            requests_total: self.metrics.request_count(),
            healthy_targets,
            routable_targets: self.routing.load().targets.len(),
        }
    }

    /// Addresses of registered targets (draining included), for metrics retention.
    pub fn registered_addresses(&self) -> Vec<SocketAddr> {
        self.control()
            .registrations
            .iter()
            .map(|registration| registration.target.address)
            .collect()
    }
}

fn find_active(registrations: &[Registration], address: SocketAddr) -> Option<usize> {
    registrations.iter().position(|registration| {
        registration.target.address == address && !registration.target.is_draining()
    })
}

fn find_any(registrations: &[Registration], address: SocketAddr) -> Option<usize> {
    find_active(registrations, address).or_else(|| {
        registrations
            .iter()
            .position(|registration| registration.target.address == address)
    })
}

impl HealthRecord {
    /// ALB's health state machine for one check result. Returns true when the target's
    /// routability or weight changed.
    fn apply_check(
        &mut self,
        outcome: &ProbeOutcome,
        check: &HealthCheckSettings,
        slow_start_eligible: bool,
        now: Instant,
    ) -> bool {
        let before = self.state;
        match outcome {
            ProbeOutcome::Success { latency, .. } => {
                self.last_check = Some(LastCheck {
                    at: SystemTime::now(),
                    latency: *latency,
                    passed: true,
                });
                self.consecutive_failures = 0;
                self.consecutive_successes = self.consecutive_successes.saturating_add(1);
                let needed = match self.state {
                    HealthState::Initial => check.initial_healthy_threshold,
                    HealthState::Unhealthy => check.healthy_threshold,
                    _ => u32::MAX,
                };
                if self.consecutive_successes >= needed {
                    self.set(HealthState::Healthy, None);
                    self.slow_start_since =
                        (slow_start_eligible && !self.slow_start_exempt).then_some(now);
                    self.slow_start_exempt = false;
                } else if self.state == HealthState::Initial {
                    self.set(
                        HealthState::Initial,
                        Some(HealthReason::InitialHealthChecking),
                    );
                }
            }
            ProbeOutcome::Failure {
                failure,
                description,
                latency,
            } => {
                self.last_check = Some(LastCheck {
                    at: SystemTime::now(),
                    latency: *latency,
                    passed: false,
                });
                self.consecutive_successes = 0;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let reason = match failure {
                    probe::ProbeFailure::ResponseCodeMismatch => HealthReason::ResponseCodeMismatch,
                    probe::ProbeFailure::Timeout => HealthReason::Timeout,
                    probe::ProbeFailure::FailedHealthChecks => HealthReason::FailedHealthChecks,
                    probe::ProbeFailure::InternalError => HealthReason::InternalError,
                };
                let to_unhealthy = match self.state {
                    HealthState::Unhealthy => true,
                    HealthState::Initial | HealthState::Healthy => {
                        self.consecutive_failures >= check.unhealthy_threshold
                    }
                    _ => false,
                };
                if to_unhealthy {
                    self.state = HealthState::Unhealthy;
                    self.reason = Some(reason);
                    self.description = description.clone();
                    self.slow_start_since = None;
                }
            }
        }
        before != self.state
    }
}

/// Every target group of the running config, by name; outlives reloads.
pub struct TargetGroups {
    groups: Mutex<Vec<Arc<TargetGroup>>>,
    scheduler: Arc<HealthScheduler>,
    metrics: Arc<Metrics>,
}

/// A group as a config would have it, compiled but not yet applied.
pub(crate) struct PreparedGroup {
    pub group: Arc<TargetGroup>,
    settings: GroupSettings,
    pool_settings: PoolSettings,
    targets: Vec<SocketAddr>,
}

impl TargetGroups {
    /// An empty set whose health checks run on `scheduler`.
    pub fn new(metrics: Arc<Metrics>, scheduler: Arc<HealthScheduler>) -> Arc<TargetGroups> {
        Arc::new(TargetGroups {
            groups: Mutex::new(Vec::new()),
            scheduler,
            metrics,
        })
    }

    /// The group called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<TargetGroup>> {
        self.groups
            .lock()
            .expect("target groups lock")
            .iter()
            .find(|group| group.name == name)
            .cloned()
    }

    /// Every group, in config order.
    pub fn all(&self) -> Vec<Arc<TargetGroup>> {
        self.groups.lock().expect("target groups lock").clone()
    }

    /// Compiles a config's groups without changing anything running: existing groups are
    /// reused by name, new ones created empty.
    pub(crate) fn prepare(
        &self,
        config: &scalegate_config::Config,
        idle_timeout: Duration,
        workers: usize,
    ) -> Result<Vec<PreparedGroup>, String> {
        let existing = self.all();
        let mut prepared = Vec::with_capacity(config.target_groups.len());
        for group_config in &config.target_groups {
            let settings = GroupSettings::from_config(group_config);
            let pool_settings = PoolSettings::new(group_config, idle_timeout);
            let mut targets = Vec::with_capacity(group_config.targets.len());
            for target in &group_config.targets {
                let address = target
                    .socket_addr(group_config.port)
                    .map_err(|error| format!("target group {}: {error}", group_config.name))?;
                if !targets.contains(&address) {
                    targets.push(address);
                }
            }
            let group = match existing
                .iter()
                .find(|group| group.name == group_config.name)
            {
                Some(group) => Arc::clone(group),
                None => TargetGroup::new(
                    &group_config.name,
                    settings.clone(),
                    pool_settings.clone(),
                    workers,
                    &self.metrics,
                    &self.scheduler,
                ),
            };
            prepared.push(PreparedGroup {
                group,
                settings,
                pool_settings,
                targets,
            });
        }
        Ok(prepared)
    }

    /// Applies prepared groups: configures each, marks which are used by rules, and retires
    /// groups that left the config.
    pub(crate) fn commit(&self, prepared: Vec<PreparedGroup>, in_use: impl Fn(&str) -> bool) {
        let mut next = Vec::with_capacity(prepared.len());
        for PreparedGroup {
            group,
            settings,
            pool_settings,
            targets,
        } in prepared
        {
            group.set_in_use(in_use(&group.name));
            group.configure(settings, pool_settings, &targets);
            self.scheduler.add_group(&group);
            next.push(group);
        }
        let previous = std::mem::replace(
            &mut *self.groups.lock().expect("target groups lock"),
            next.clone(),
        );
        for group in previous {
            if !next.iter().any(|kept| Arc::ptr_eq(kept, &group)) {
                tracing::info!(target_group = %group.name, "target group removed");
                group.retire();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(initial: u32, healthy: u32, unhealthy: u32) -> HealthCheckSettings {
        HealthCheckSettings {
            probe: ProbeSettings {
                protocol: scalegate_config::Protocol::Http,
                protocol_version: scalegate_config::ProtocolVersion::Http1,
                path: "/".into(),
                port: None,
                timeout: Duration::from_secs(2),
                http_codes: vec![200..=200],
                grpc_codes: None,
            },
            interval: Duration::from_secs(5),
            healthy_threshold: healthy,
            unhealthy_threshold: unhealthy,
            initial_healthy_threshold: initial,
        }
    }

    fn pass() -> ProbeOutcome {
        ProbeOutcome::Success {
            status: 200,
            latency: Duration::from_millis(1),
        }
    }

    fn fail(failure: probe::ProbeFailure) -> ProbeOutcome {
        ProbeOutcome::Failure {
            failure,
            description: "Health checks failed with these codes: [503]".into(),
            latency: Duration::from_millis(1),
        }
    }

    fn initial() -> HealthRecord {
        HealthRecord::new(
            HealthState::Initial,
            Some(HealthReason::RegistrationInProgress),
        )
    }

    #[test]
    fn a_new_target_becomes_healthy_after_the_initial_threshold() {
        let settings = check(2, 5, 2);
        let mut record = initial();
        let now = Instant::now();
        assert!(!record.apply_check(&pass(), &settings, false, now));
        assert_eq!(record.state, HealthState::Initial);
        assert_eq!(record.reason, Some(HealthReason::InitialHealthChecking));
        assert!(record.apply_check(&pass(), &settings, false, now));
        assert_eq!((record.state, record.reason), (HealthState::Healthy, None));
    }

    #[test]
    fn failures_take_a_target_out_only_at_the_unhealthy_threshold() {
        let settings = check(1, 3, 3);
        let mut record = initial();
        let now = Instant::now();
        record.apply_check(&pass(), &settings, false, now);
        assert_eq!(record.state, HealthState::Healthy);
        let mismatch = fail(probe::ProbeFailure::ResponseCodeMismatch);
        assert!(!record.apply_check(&mismatch, &settings, false, now));
        // A pass in between resets the count.
        record.apply_check(&pass(), &settings, false, now);
        record.apply_check(&mismatch, &settings, false, now);
        record.apply_check(&mismatch, &settings, false, now);
        assert_eq!(record.state, HealthState::Healthy);
        assert!(record.apply_check(&mismatch, &settings, false, now));
        assert_eq!(record.state, HealthState::Unhealthy);
        assert_eq!(record.reason, Some(HealthReason::ResponseCodeMismatch));
        assert!(record.description.contains("[503]"));
        // The latest failure's reason is shown.
        record.apply_check(&fail(probe::ProbeFailure::Timeout), &settings, false, now);
        assert_eq!(record.reason, Some(HealthReason::Timeout));
    }

    #[test]
    fn an_unhealthy_target_needs_the_healthy_threshold_to_return() {
        let settings = check(1, 3, 2);
        let mut record = initial();
        let now = Instant::now();
        let refused = fail(probe::ProbeFailure::FailedHealthChecks);
        record.apply_check(&refused, &settings, false, now);
        assert_eq!(
            record.state,
            HealthState::Initial,
            "one failure is not enough"
        );
        record.apply_check(&refused, &settings, false, now);
        assert_eq!(record.state, HealthState::Unhealthy);
        assert_eq!(record.reason, Some(HealthReason::FailedHealthChecks));
        record.apply_check(&pass(), &settings, true, now);
        record.apply_check(&pass(), &settings, true, now);
        assert_eq!(record.state, HealthState::Unhealthy);
        assert!(record.apply_check(&pass(), &settings, true, now));
        assert_eq!(record.state, HealthState::Healthy);
        assert_eq!(record.slow_start_since, Some(now), "re-enters slow start");
    }

    #[test]
    fn reason_codes_are_albs() {
        assert_eq!(
            HealthReason::RegistrationInProgress.code(),
            "Elb.RegistrationInProgress"
        );
        assert_eq!(HealthReason::NotInUse.code(), "Target.NotInUse");
        assert_eq!(
            HealthReason::DeregistrationInProgress.code(),
            "Target.DeregistrationInProgress"
        );
        assert_eq!(
            HealthReason::HealthCheckDisabled.code(),
            "Target.HealthCheckDisabled"
        );
        assert_eq!(HealthState::Unavailable.as_str(), "unavailable");
    }

    fn group_with(settings: GroupSettings) -> Arc<TargetGroup> {
        let metrics = Metrics::new("unit");
        let group_config: TargetGroupConfig =
            serde_json::from_value(serde_json::json!({"name": "app"})).expect("group config");
        TargetGroup::new(
            "app",
            settings,
            PoolSettings::new(&group_config, Duration::from_secs(60)),
            1,
            &metrics,
            &HealthScheduler::new(),
        )
    }

    fn settings(health_checks: bool) -> GroupSettings {
        let mut config: TargetGroupConfig =
            serde_json::from_value(serde_json::json!({"name": "app"})).expect("group config");
        config.health_check.enabled = health_checks;
        config.deregistration_delay_seconds = 30;
        GroupSettings::from_config(&config)
    }

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn states(group: &TargetGroup) -> Vec<(u16, HealthState)> {
        group
            .describe(None)
            .into_iter()
            .map(|target| (target.target.port, target.target_health.state))
            .collect()
    }

    #[test]
    fn targets_of_an_unused_group_are_unused_and_become_initial_when_used() {
        let group = group_with(settings(true));
        group
            .register(&[address(1001)], RegistrationSource::Api)
            .expect("registers");
        assert_eq!(states(&group), vec![(1001, HealthState::Unused)]);
        group.set_in_use(true);
        assert_eq!(states(&group), vec![(1001, HealthState::Initial)]);
        // Only-initial targets are routed to (nothing else could serve) without failing open.
        let table = group.routing_table();
        assert_eq!(table.targets().len(), 1);
        assert!(!table.fail_open);
    }

    #[test]
    fn without_health_checks_targets_are_unavailable_and_routed() {
        let group = group_with(settings(false));
        group.set_in_use(true);
        group
            .register(&[address(1001), address(1002)], RegistrationSource::Api)
            .expect("registers");
        assert_eq!(
            states(&group),
            vec![
                (1001, HealthState::Unavailable),
                (1002, HealthState::Unavailable)
            ]
        );
        assert_eq!(group.routing_table().targets().len(), 2);
        assert_eq!(group.load().healthy_targets, 2);
    }

    #[test]
    fn a_suspect_target_is_skipped_unless_it_is_the_only_one() {
        let group = group_with(settings(false));
        group.set_in_use(true);
        group
            .register(&[address(1001), address(1002)], RegistrationSource::Api)
            .expect("registers");
        let first = Arc::clone(&group.routing_table().targets()[0]);
        group.mark_suspect(&first);
        let table = group.routing_table();
        assert_eq!(table.targets().len(), 1);
        assert_eq!(table.targets()[0].address, address(1002));
        let second = Arc::clone(&table.targets()[0]);
        group.mark_suspect(&second);
        assert_eq!(
            group.routing_table().targets().len(),
            2,
            "all suspect: use them"
        );
    }

    #[test]
    fn deregistering_drains_until_the_last_request_ends() {
        let group = group_with(settings(false));
        group.set_in_use(true);
        group
            .register(&[address(1001), address(1002)], RegistrationSource::Api)
            .expect("registers");
        let target = Arc::clone(
            group
                .routing_table()
                .find(address(1001))
                .expect("registered"),
        );
        let request = target.begin_request();
        group
            .deregister(&[address(1001)], RegistrationSource::Api)
            .expect("deregisters");
        assert!(states(&group).contains(&(1001, HealthState::Draining)));
        assert!(
            group.routing_table().find(address(1001)).is_none(),
            "no new requests"
        );
        assert_eq!(
            group.deregister(&[address(1001)], RegistrationSource::Api),
            Err(RegistrationError::NotRegistered(
                address(1001),
                "app".into()
            ))
        );
        drop(request);
        group.sweep_draining(Instant::now());
        assert_eq!(states(&group), vec![(1002, HealthState::Unavailable)]);
        let unknown = group.describe(Some(&[address(1001)]));
        assert_eq!(unknown[0].target_health.state, HealthState::Unused);
        assert_eq!(
            unknown[0].target_health.reason,
            Some("Target.NotRegistered")
        );
    }

    #[test]
    fn a_config_deregistration_keeps_a_target_the_api_registered() {
        let group = group_with(settings(false));
        group.set_in_use(true);
        group
            .register(&[address(1001)], RegistrationSource::Config)
            .expect("registers");
        group
            .register(&[address(1001)], RegistrationSource::Api)
            .expect("registers");
        group
            .deregister(&[address(1001)], RegistrationSource::Config)
            .expect("deregisters");
        assert_eq!(states(&group), vec![(1001, HealthState::Unavailable)]);
    }

    #[test]
    fn discovery_removal_keeps_a_config_target_but_an_operator_removal_wins() {
        let group = group_with(settings(false));
        group.set_in_use(true);
        group
            .register(
                &[address(1001), address(1002)],
                RegistrationSource::Discovery,
            )
            .expect("registers");
        group
            .register(&[address(1001)], RegistrationSource::Config)
            .expect("registers");
        // Discovery dropping both: the config still wants 1001; 1002 drains.
        group
            .deregister(
                &[address(1001), address(1002)],
                RegistrationSource::Discovery,
            )
            .expect("deregisters");
        assert_eq!(states(&group), vec![(1001, HealthState::Unavailable)]);
        // The admin API deregisters whatever source registered it.
        group
            .register(&[address(1003)], RegistrationSource::Discovery)
            .expect("registers");
        group
            .deregister(&[address(1003)], RegistrationSource::Api)
            .expect("deregisters");
        assert_eq!(states(&group), vec![(1001, HealthState::Unavailable)]);
    }

    #[test]
    fn port_zero_and_the_target_limit_are_refused() {
        let group = group_with(settings(false));
        assert_eq!(
            group.register(&[address(0)], RegistrationSource::Api),
            Err(RegistrationError::InvalidTarget(address(0)))
        );
        let many: Vec<SocketAddr> = (1..=1001).map(address).collect();
        assert_eq!(
            group.register(&many, RegistrationSource::Api),
            Err(RegistrationError::TooManyTargets("app".into()))
        );
        assert!(states(&group).is_empty(), "all or nothing");
    }
}

/// Slow-start eligibility at registration.
#[cfg(test)]
mod slow_start_tests {
    use super::*;

    /// A group `app` used by a rule, with slow start and checks on, and no target yet.
    fn slow_start_group(health_checks: bool) -> Arc<TargetGroup> {
        let yaml = format!(
            "listeners:
  - name: web
    address: 127.0.0.1:0
    default_action:
      forward:
        target_group: app
target_groups:
  - name: app
    slow_start_duration_seconds: 30
    health_check:
      enabled: {health_checks}
"
        );
        let config = scalegate_config::parse(
            &yaml,
            std::path::Path::new("test.yaml"),
            std::path::Path::new("."),
        )
        .expect("config parses");
        let group_config = &config.target_groups[0];
        let group = TargetGroup::new(
            "app",
            GroupSettings::from_config(group_config),
            PoolSettings::new(group_config, Duration::from_secs(60)),
            1,
            &Metrics::new("test"),
            &HealthScheduler::new(),
        );
        group.set_in_use(true);
        group
    }

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn target(group: &TargetGroup, address: SocketAddr) -> Arc<Target> {
        let control = group.control();
        let index = find_active(&control.registrations, address).expect("registered");
        Arc::clone(&control.registrations[index].target)
    }

    fn check(group: &TargetGroup, address: SocketAddr, passed: bool) {
        let target = target(group, address);
        let generation = target.check_generation.load(Ordering::Relaxed);
        let outcome = if passed {
            ProbeOutcome::Success {
                status: 200,
                latency: Duration::from_millis(1),
            }
        } else {
            ProbeOutcome::Failure {
                failure: probe::ProbeFailure::ResponseCodeMismatch,
                description: "Health checks failed with these codes: [503]".into(),
                latency: Duration::from_millis(1),
            }
        };
        group.record_check(&target, generation, &outcome);
    }

    fn in_slow_start(group: &TargetGroup, address: SocketAddr) -> bool {
        target(group, address).record().slow_start_since.is_some()
    }

    #[test]
    fn targets_registered_together_into_an_empty_group_do_not_slow_start() {
        let group = slow_start_group(true);
        let (first, second) = (address(8001), address(8002));
        group
            .register(&[first, second], RegistrationSource::Api)
            .unwrap();
        // The first to pass becomes a healthy full-share peer before the second passes: the
        // second must still not slow start, as both came in one registration.
        check(&group, first, true);
        check(&group, second, true);
        assert!(!in_slow_start(&group, first));
        assert!(!in_slow_start(&group, second));
    }

    #[test]
    fn config_targets_of_a_new_group_do_not_slow_start() {
        let group = slow_start_group(true);
        let (first, second) = (address(8001), address(8002));
        let settings = (*group.settings()).clone();
        let pool_settings = group.control().pool_settings.clone();
        group.configure(settings, pool_settings, &[first, second]);
        check(&group, first, true);
        check(&group, second, true);
        assert!(!in_slow_start(&group, first));
        assert!(!in_slow_start(&group, second));
    }

    #[test]
    fn a_target_registered_beside_a_healthy_one_slow_starts() {
        let group = slow_start_group(true);
        let (first, second) = (address(8001), address(8002));
        group.register(&[first], RegistrationSource::Api).unwrap();
        check(&group, first, true);
        group.register(&[second], RegistrationSource::Api).unwrap();
        check(&group, second, true);
        assert!(!in_slow_start(&group, first));
        assert!(in_slow_start(&group, second));
    }

    #[test]
    fn the_exemption_covers_only_the_first_healthy_transition() {
        let group = slow_start_group(true);
        let (first, second) = (address(8001), address(8002));
        group
            .register(&[first, second], RegistrationSource::Api)
            .unwrap();
        check(&group, first, true);
        check(&group, second, true);
        // Unhealthy (threshold 2), then healthy again (threshold 5) beside a full-share peer.
        check(&group, second, false);
        check(&group, second, false);
        assert_eq!(
            target(&group, second).record().state,
            HealthState::Unhealthy
        );
        for _ in 0..5 {
            check(&group, second, true);
        }
        assert_eq!(target(&group, second).record().state, HealthState::Healthy);
        assert!(in_slow_start(&group, second));
    }

    #[test]
    fn without_health_checks_targets_registered_together_do_not_slow_start() {
        let group = slow_start_group(false);
        let (first, second, third) = (address(8001), address(8002), address(8003));
        group
            .register(&[first, second], RegistrationSource::Api)
            .unwrap();
        assert!(!in_slow_start(&group, first));
        assert!(!in_slow_start(&group, second));
        group.register(&[third], RegistrationSource::Api).unwrap();
        assert!(in_slow_start(&group, third));
    }
}
