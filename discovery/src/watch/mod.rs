//! Watching a target group's discovery source (a DNS name or a file) and turning what it says
//! into [`crate::TargetUpdate`]s.
//!
//! [`spawn`] starts one task per target group. The task owns the source (a hickory resolver
//! with no cache, or a `notify` watch on the file's directory), applies the
//! [`FailurePolicy`](crate::FailurePolicy), counts every resolution in [`DiscoveryMetrics`],
//! and publishes the membership it currently believes in. [`Watch::next`] turns that membership
//! into deltas against what the target group was last given, so a slow consumer sees the net
//! change rather than a backlog, and dropping the [`Watch`] stops the task and its timers.

mod dns;
#[cfg(test)]
mod fake_dns;
mod file;
mod registry;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use scalegate_config::{AddressFamily, TargetDiscovery};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::registry::EmbeddedRegistry;
use crate::source::RegistryLink;
use crate::{
    diff_targets, DiscoveryError, DiscoveryMetrics, FailurePolicy, ResolverSpec, SourceSpec,
    TargetUpdate, TtlBounds,
};

/// Everything one watch needs, decided once from the config so that the task never reads
/// config and `describe` can show exactly what is being asked of whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSpec {
    /// What to watch.
    pub source: SourceSpec,
    /// Which name servers to ask (ignored for a file).
    pub resolver: ResolverSpec,
    /// Bounds on the refresh interval; a file is re-read every `max` as a safety net.
    pub bounds: TtlBounds,
    /// What failures and NXDOMAIN answers do to the current targets.
    pub failure: FailurePolicy,
    /// Which address records to ask for (A, AAAA or both).
    pub family: AddressFamily,
    /// Time to wait for one try of one query.
    pub query_timeout: Duration,
    /// Port for file targets that name none (the discovery `port`, else the group's).
    pub default_port: u16,
}

impl WatchSpec {
    /// Builds the spec for one target group's `discovery` block.
    ///
    /// `registry`: the embedded registry and the namespaces it will serve, when it runs. The
    /// resolver is: explicit `name_servers` > the registry, in-process, when the name is inside
    /// one of its namespaces (case-insensitive, label-wise suffix) > the system's
    /// (/etc/resolv.conf).
    ///
    /// Fails when the block names no source or several, when a name is not a DNS name (an SRV
    /// name must look like `_service._proto.name`), or when the system resolver is needed and
    /// its configuration cannot be read.
    pub fn from_config(
        discovery: &TargetDiscovery,
        group_port: u16,
        registry: Option<(&[String], &Arc<EmbeddedRegistry>)>,
    ) -> Result<WatchSpec, DiscoveryError> {
        let port = discovery.port.unwrap_or(group_port);
        let source = match (&discovery.dns_name, &discovery.srv_name, &discovery.file) {
            (Some(name), None, None) => SourceSpec::Address {
                name: dns::check_name(name, false)?,
                port,
            },
            (None, Some(name), None) => SourceSpec::Srv {
                name: dns::check_name(name, true)?,
            },
            (None, None, Some(path)) => SourceSpec::File(path.clone()),
            _ => {
                return Err(DiscoveryError::InvalidName {
                    name: String::new(),
                    reason: "set exactly one of `dns_name`, `srv_name` or `file`".to_string(),
                })
            }
        };
        let resolver = match &source {
            SourceSpec::File(_) => ResolverSpec::System,
            SourceSpec::Address { name, .. } | SourceSpec::Srv { name } => {
                if !discovery.name_servers.is_empty() {
                    ResolverSpec::NameServers(discovery.name_servers.clone())
                } else if let Some(link) = registry.and_then(|(namespaces, registry)| {
                    namespaces
                        .iter()
                        .find(|namespace| in_namespace(name, namespace))
                        .map(|namespace| RegistryLink {
                            namespace: namespace.clone(),
                            registry: Arc::clone(registry),
                        })
                }) {
                    ResolverSpec::Embedded(link)
                } else {
                    dns::check_system_config()?;
                    ResolverSpec::System
                }
            }
        };
        Ok(WatchSpec {
            source,
            resolver,
            bounds: TtlBounds {
                min: Duration::from_secs(discovery.min_refresh_seconds),
                max: Duration::from_secs(discovery.max_refresh_seconds),
            },
            failure: FailurePolicy {
                keep_last_known: discovery.keep_last_known_on_failure,
                nxdomain_removal_after: discovery.nxdomain_removal_after,
            },
            family: discovery.address_family,
            query_timeout: Duration::from_secs(discovery.query_timeout_seconds),
            default_port: port,
        })
    }

    /// One line for logs and the admin API: `dns app.scalegate.local:8080 via 127.0.0.1:5353`,
    /// `srv _web._tcp.web.scalegate.local via the system resolver`, `file /etc/targets.yaml`.
    pub fn describe(&self) -> String {
        let via = match &self.resolver {
            ResolverSpec::System => "the system resolver".to_string(),
            ResolverSpec::Embedded(_) => "the embedded registry".to_string(),
            ResolverSpec::NameServers(servers) => servers
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        match &self.source {
            SourceSpec::File(path) => format!("file {}", path.display()),
            SourceSpec::Address { name, port } => format!("dns {name}:{port} via {via}"),
            SourceSpec::Srv { name } => format!("srv {name} via {via}"),
        }
    }
}

/// Whether `name` is `namespace` or below it, comparing whole labels without case, so
/// `web.Scalegate.Local.` is in `scalegate.local` but `web.myscalegate.local` is not.
fn in_namespace(name: &str, namespace: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let namespace = namespace.trim_end_matches('.').to_ascii_lowercase();
    !namespace.is_empty()
        && (name == namespace
            || name
                .strip_suffix(&namespace)
                .is_some_and(|prefix| prefix.ends_with('.')))
}

/// How one resolution (or one read of a watched file) ended: the `result` label of
/// `scalegate_discovery_resolutions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResolutionResult {
    /// Addresses were found.
    Success,
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no usable records (NOERROR with no answer, or SRV targets
    /// without addresses).
    Empty,
    /// The server failed (SERVFAIL).
    ServFail,
    /// The server refused to answer (REFUSED).
    Refused,
    /// No answer in time from any server.
    Timeout,
    /// Anything else: connection refused, a malformed answer, an unreadable or invalid file.
    Error,
}

impl ResolutionResult {
    /// Every result, so the metric's label values come from the enum it counts.
    pub const ALL: [ResolutionResult; 7] = [
        ResolutionResult::Success,
        ResolutionResult::NxDomain,
        ResolutionResult::Empty,
        ResolutionResult::ServFail,
        ResolutionResult::Refused,
        ResolutionResult::Timeout,
        ResolutionResult::Error,
    ];

    /// The metric label: `success`, `nxdomain`, `empty`, `servfail`, `refused`, `timeout`,
    /// `error` (DNS's own words for the response codes, lower-cased).
    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionResult::Success => "success",
            ResolutionResult::NxDomain => "nxdomain",
            ResolutionResult::Empty => "empty",
            ResolutionResult::ServFail => "servfail",
            ResolutionResult::Refused => "refused",
            ResolutionResult::Timeout => "timeout",
            ResolutionResult::Error => "error",
        }
    }
}

/// A watch's state for the admin API: what it asks, what it has, how the last attempt went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchStatus {
    /// [`WatchSpec::describe`].
    pub source: String,
    /// The addresses the source currently provides (after the failure policy), sorted.
    pub targets: Vec<SocketAddr>,
    /// [`ResolutionResult::as_str`] of the last attempt; `None` before the first one ends.
    pub last_result: Option<&'static str>,
    /// The most recent failure's error, kept after recovery so a flapping source can be
    /// diagnosed.
    pub last_error: Option<String>,
    /// Attempts in a row that did not succeed (failures, NXDOMAIN and empty answers).
    pub consecutive_failures: u32,
    /// Unix time of the last successful attempt.
    pub last_success_unix_seconds: Option<u64>,
    /// Time until the next attempt; `None` before the first is scheduled.
    pub next_refresh_in_seconds: Option<f64>,
}

/// A running watch: the target group's end of the task that [`spawn`] started.
///
/// Dropping it aborts the task, which drops the resolver, the file watcher and every timer.
pub struct Watch {
    membership: watch::Receiver<BTreeSet<SocketAddr>>,
    delivered: BTreeSet<SocketAddr>,
    pending: VecDeque<TargetUpdate>,
    status: Arc<Mutex<StatusState>>,
    metrics: DiscoveryMetrics,
    target_group: String,
    task: JoinHandle<()>,
}

impl Watch {
    /// The next change to hand to the target group: removals before additions, relative to
    /// everything returned so far (starting from `initial`). Waits until there is one.
    ///
    /// Cancel-safe: the only await point is a `watch` channel's `changed`, and nothing is
    /// taken from the channel before it returns, so a `select!` that drops this future loses
    /// nothing. Returns `None` only if the task has ended (it panicked) and everything it
    /// published has been returned.
    pub async fn next(&mut self) -> Option<TargetUpdate> {
        loop {
            if let Some(update) = self.pending.pop_front() {
                let (change, count) = match &update {
                    TargetUpdate::Add(addresses) => ("add", addresses.len()),
                    TargetUpdate::Remove(addresses) => ("remove", addresses.len()),
                };
                self.metrics
                    .target_updates
                    .with_label_values(&[self.target_group.as_str(), change])
                    .inc_by(count as u64);
                return Some(update);
            }
            self.membership.changed().await.ok()?;
            let latest = self.membership.borrow_and_update().clone();
            self.pending.extend(diff_targets(&self.delivered, &latest));
            self.delivered = latest;
        }
    }

    /// The watch's current state, for `GET /api/target-groups/...` style endpoints.
    pub fn status(&self) -> WatchStatus {
        lock(&self.status).snapshot()
    }

    /// A handle that reads the status while the watch itself is owned by the task consuming
    /// its updates.
    pub fn status_handle(&self) -> WatchStatusHandle {
        WatchStatusHandle(Arc::clone(&self.status))
    }
}

/// Reads a [`Watch`]'s status from elsewhere (the admin API).
#[derive(Clone)]
pub struct WatchStatusHandle(Arc<Mutex<StatusState>>);

impl WatchStatusHandle {
    /// The status now.
    pub fn snapshot(&self) -> WatchStatus {
        lock(&self.0).snapshot()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `spec` for `target_group` on the current tokio runtime (it panics outside
/// one, as `tokio::spawn` does).
///
/// `initial` is the membership a previous watch of the same group provided (on config
/// reload): the first answer is diffed against it, and the failure policy treats it as the
/// targets the group has, so a reload during a DNS outage keeps them.
pub fn spawn(
    spec: WatchSpec,
    target_group: &str,
    initial: BTreeSet<SocketAddr>,
    metrics: DiscoveryMetrics,
) -> Watch {
    let (publisher, membership) = watch::channel(initial.clone());
    let status = Arc::new(Mutex::new(StatusState::new(spec.describe(), &initial)));
    let reporter = Reporter {
        target_group: target_group.to_string(),
        source: spec.describe(),
        current: initial.clone(),
        publisher,
        status: status.clone(),
        metrics: metrics.clone(),
        streak: 0,
    };
    reporter.set_gauge();
    // Every series exists from the start at 0, so rates and alerts work before the first event.
    for result in ResolutionResult::ALL {
        metrics
            .resolutions
            .with_label_values(&[target_group, result.as_str()]);
    }
    metrics.kept_last_known.with_label_values(&[target_group]);
    for change in ["add", "remove"] {
        metrics
            .target_updates
            .with_label_values(&[target_group, change]);
    }
    let task = match spec.source.clone() {
        SourceSpec::File(path) => {
            tokio::spawn(file::run(path, spec.default_port, spec.bounds, reporter))
        }
        SourceSpec::Address { ref name, .. } | SourceSpec::Srv { ref name }
            if matches!(spec.resolver, ResolverSpec::Embedded(_)) =>
        {
            let ResolverSpec::Embedded(link) = spec.resolver.clone() else {
                unreachable!("matched above")
            };
            let srv = matches!(spec.source, SourceSpec::Srv { .. });
            let name = registry::RegistryName::parse(name, &link.namespace, srv);
            let port = match spec.source {
                SourceSpec::Address { port, .. } => port,
                _ => spec.default_port,
            };
            tokio::spawn(registry::run(
                link.registry,
                name,
                port,
                spec.family,
                spec.bounds,
                reporter,
            ))
        }
        SourceSpec::Address { .. } | SourceSpec::Srv { .. } => {
            tokio::spawn(dns::run(spec, reporter))
        }
    };
    Watch {
        membership,
        delivered: initial,
        pending: VecDeque::new(),
        status,
        metrics,
        target_group: target_group.to_string(),
        task,
    }
}

/// The status fields the task updates; [`WatchStatus`] is its snapshot.
#[derive(Debug)]
struct StatusState {
    source: String,
    targets: Vec<SocketAddr>,
    last_result: Option<ResolutionResult>,
    last_error: Option<String>,
    consecutive_failures: u32,
    last_success_unix_seconds: Option<u64>,
    next_refresh_at: Option<Instant>,
}

impl StatusState {
    fn new(source: String, initial: &BTreeSet<SocketAddr>) -> StatusState {
        StatusState {
            source,
            targets: initial.iter().copied().collect(),
            last_result: None,
            last_error: None,
            consecutive_failures: 0,
            last_success_unix_seconds: None,
            next_refresh_at: None,
        }
    }

    fn snapshot(&self) -> WatchStatus {
        WatchStatus {
            source: self.source.clone(),
            targets: self.targets.clone(),
            last_result: self.last_result.map(ResolutionResult::as_str),
            last_error: self.last_error.clone(),
            consecutive_failures: self.consecutive_failures,
            last_success_unix_seconds: self.last_success_unix_seconds,
            next_refresh_in_seconds: self
                .next_refresh_at
                .map(|at| at.saturating_duration_since(Instant::now()).as_secs_f64()),
        }
    }
}

/// Locks the status, ignoring poisoning: the state is plain data, valid after any panic.
fn lock(status: &Mutex<StatusState>) -> MutexGuard<'_, StatusState> {
    status
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a failure does to the targets the group has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnFailure {
    /// Keep them (counted in `kept_last_known` when there are any).
    Keep,
    /// Remove them all.
    Remove,
}

/// The one place a source's outcome becomes published membership, status, metrics and logs,
/// shared by the DNS and file watchers so they count and log alike.
struct Reporter {
    target_group: String,
    source: String,
    current: BTreeSet<SocketAddr>,
    publisher: watch::Sender<BTreeSet<SocketAddr>>,
    status: Arc<Mutex<StatusState>>,
    metrics: DiscoveryMetrics,
    /// Attempts in a row that did not succeed; decides which failures are logged.
    streak: u32,
}

impl Reporter {
    /// A good answer: `targets` are the membership now.
    fn success(&mut self, targets: BTreeSet<SocketAddr>) {
        if self.streak > 0 {
            tracing::info!(
                target_group = %self.target_group,
                source = %self.source,
                failed_attempts = self.streak,
                targets = targets.len(),
                "discovery source recovered"
            );
        }
        self.streak = 0;
        let now = unix_seconds();
        self.count(ResolutionResult::Success);
        self.metrics
            .last_success
            .with_label_values(&[self.target_group.as_str()])
            .set(i64::try_from(now).unwrap_or(i64::MAX));
        {
            let mut status = lock(&self.status);
            status.last_result = Some(ResolutionResult::Success);
            status.consecutive_failures = 0;
            status.last_success_unix_seconds = Some(now);
        }
        self.replace(targets);
    }

    /// A failed or suspicious attempt (`result` is not `Success`); `on_failure` is what the
    /// policy decided for the current targets. Logs the first of a streak and every tenth.
    fn failure(&mut self, result: ResolutionResult, error: &str, on_failure: OnFailure) {
        self.streak = self.streak.saturating_add(1);
        self.count(result);
        {
            let mut status = lock(&self.status);
            status.last_result = Some(result);
            status.last_error = Some(error.to_string());
            status.consecutive_failures = self.streak;
        }
        let had = self.current.len();
        let action = match on_failure {
            OnFailure::Keep if had > 0 => {
                self.metrics
                    .kept_last_known
                    .with_label_values(&[self.target_group.as_str()])
                    .inc();
                "keeping the last known targets"
            }
            OnFailure::Remove if had > 0 => "removing all targets",
            _ => "no targets to keep",
        };
        if self.streak == 1
            || self.streak.is_multiple_of(10)
            || (on_failure == OnFailure::Remove && had > 0)
        {
            tracing::warn!(
                target_group = %self.target_group,
                source = %self.source,
                result = result.as_str(),
                error,
                consecutive_failures = self.streak,
                targets = had,
                "discovery failed; {action}"
            );
        }
        if on_failure == OnFailure::Remove {
            self.replace(BTreeSet::new());
        }
    }

    /// Records when the next attempt is due.
    fn schedule(&self, wait: Duration) {
        lock(&self.status).next_refresh_at = Some(Instant::now() + wait);
    }

    fn count(&self, result: ResolutionResult) {
        self.metrics
            .resolutions
            .with_label_values(&[self.target_group.as_str(), result.as_str()])
            .inc();
    }

    fn set_gauge(&self) {
        self.metrics
            .targets
            .with_label_values(&[self.target_group.as_str()])
            .set(i64::try_from(self.current.len()).unwrap_or(i64::MAX));
    }

    /// Makes `targets` the membership: status, gauge, a log line when it changed, and the
    /// channel [`Watch::next`] reads.
    fn replace(&mut self, targets: BTreeSet<SocketAddr>) {
        if targets != self.current {
            let added = targets.difference(&self.current).count();
            let removed = self.current.difference(&targets).count();
            tracing::info!(
                target_group = %self.target_group,
                source = %self.source,
                added,
                removed,
                targets = targets.len(),
                "discovered targets changed"
            );
        }
        self.current = targets;
        lock(&self.status).targets = self.current.iter().copied().collect();
        self.set_gauge();
        let current = &self.current;
        self.publisher.send_if_modified(|published| {
            if published == current {
                false
            } else {
                published.clone_from(current);
                true
            }
        });
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Helpers the watcher tests share: polling with a deadline instead of sleeping.
#[cfg(test)]
mod testing {
    use std::time::Duration;

    use super::*;

    /// Long enough for any condition in these tests on a loaded 2-core machine.
    pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

    /// Waits for the next update, failing the test after [`DEADLINE`].
    pub(crate) async fn next_update(watch: &mut Watch) -> TargetUpdate {
        tokio::time::timeout(DEADLINE, watch.next())
            .await
            .expect("an update before the deadline")
            .expect("the watch is running")
    }

    /// Polls `condition` every 10 ms until it holds, failing the test after [`DEADLINE`].
    pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !condition() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    pub(crate) fn counter(metrics: &DiscoveryMetrics, group: &str, result: &str) -> u64 {
        metrics
            .resolutions
            .with_label_values(&[group, result])
            .get()
    }

    pub(crate) fn kept(metrics: &DiscoveryMetrics, group: &str) -> u64 {
        metrics.kept_last_known.with_label_values(&[group]).get()
    }

    /// A reporter for group `unit` with `initial` targets, outside any task.
    pub(crate) fn reporter(initial: &[&str]) -> (Reporter, DiscoveryMetrics) {
        let initial: BTreeSet<SocketAddr> = addrs(initial).into_iter().collect();
        let (publisher, _) = watch::channel(initial.clone());
        let metrics = DiscoveryMetrics::unregistered();
        let reporter = Reporter {
            target_group: "unit".to_string(),
            source: "test".to_string(),
            current: initial.clone(),
            publisher,
            status: Arc::new(Mutex::new(StatusState::new("test".to_string(), &initial))),
            metrics: metrics.clone(),
            streak: 0,
        };
        (reporter, metrics)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::testing::*;
    use super::*;

    fn discovery() -> TargetDiscovery {
        TargetDiscovery {
            dns_name: Some("web.Scalegate.Local".to_string()),
            ..TargetDiscovery::default()
        }
    }

    #[test]
    fn from_config_maps_every_field() {
        let config = TargetDiscovery {
            dns_name: Some("app".to_string()),
            port: Some(9000),
            address_family: AddressFamily::Ipv6,
            name_servers: vec!["10.0.0.2:53".parse().unwrap()],
            min_refresh_seconds: 2,
            max_refresh_seconds: 60,
            query_timeout_seconds: 3,
            keep_last_known_on_failure: false,
            nxdomain_removal_after: 5,
            ..TargetDiscovery::default()
        };
        let spec = WatchSpec::from_config(&config, 80, None).unwrap();
        assert_eq!(
            spec,
            WatchSpec {
                source: SourceSpec::Address {
                    name: "app".to_string(),
                    port: 9000
                },
                resolver: ResolverSpec::NameServers(vec!["10.0.0.2:53".parse().unwrap()]),
                bounds: TtlBounds {
                    min: Duration::from_secs(2),
                    max: Duration::from_secs(60)
                },
                failure: FailurePolicy {
                    keep_last_known: false,
                    nxdomain_removal_after: 5
                },
                family: AddressFamily::Ipv6,
                query_timeout: Duration::from_secs(3),
                default_port: 9000,
            }
        );
        assert_eq!(spec.describe(), "dns app:9000 via 10.0.0.2:53");
    }

    #[test]
    fn names_in_a_registry_namespace_ask_the_registry() {
        let namespaces = ["other.local".to_string(), "scalegate.local.".to_string()];
        let embedded = EmbeddedRegistry::new(DiscoveryMetrics::unregistered());
        let registry = Some((&namespaces[..], &embedded));
        let spec = WatchSpec::from_config(&discovery(), 8080, registry).unwrap();
        assert_eq!(
            spec.describe(),
            "dns web.Scalegate.Local:8080 via the embedded registry"
        );
        let srv = TargetDiscovery {
            dns_name: None,
            srv_name: Some("_web._tcp.web.scalegate.local".to_string()),
            ..TargetDiscovery::default()
        };
        let spec = WatchSpec::from_config(&srv, 80, registry).unwrap();
        assert_eq!(
            spec.describe(),
            "srv _web._tcp.web.scalegate.local via the embedded registry"
        );
        // Explicit name servers win over the registry.
        let explicit = TargetDiscovery {
            name_servers: vec!["127.0.0.1:53".parse().unwrap()],
            ..discovery()
        };
        let spec = WatchSpec::from_config(&explicit, 80, registry).unwrap();
        assert_eq!(
            spec.describe(),
            "dns web.Scalegate.Local:80 via 127.0.0.1:53"
        );
    }

    #[test]
    fn names_outside_the_namespaces_use_the_system_resolver() {
        let namespaces = ["scalegate.local".to_string()];
        let embedded = EmbeddedRegistry::new(DiscoveryMetrics::unregistered());
        let registry = Some((&namespaces[..], &embedded));
        for name in ["web.myscalegate.local", "scalegate.local.example", "web"] {
            let config = TargetDiscovery {
                dns_name: Some(name.to_string()),
                ..TargetDiscovery::default()
            };
            match WatchSpec::from_config(&config, 80, registry) {
                Ok(spec) => assert_eq!(spec.resolver, ResolverSpec::System, "{name}"),
                // A machine without /etc/resolv.conf cannot use the system resolver.
                Err(DiscoveryError::Resolver(_)) => {}
                Err(error) => panic!("{name}: {error}"),
            }
        }
    }

    #[test]
    fn namespace_matching_is_label_wise_and_case_insensitive() {
        assert!(in_namespace("web.scalegate.local", "scalegate.local"));
        assert!(in_namespace("WEB.ScaleGate.LOCAL.", "scalegate.local"));
        assert!(in_namespace("scalegate.local", "scalegate.local."));
        assert!(in_namespace(
            "_web._tcp.web.scalegate.local",
            "scalegate.local"
        ));
        assert!(!in_namespace("web.myscalegate.local", "scalegate.local"));
        assert!(!in_namespace("local", "scalegate.local"));
        assert!(!in_namespace("web", ""));
    }

    #[test]
    fn from_config_rejects_zero_or_several_sources_and_bad_names() {
        let none = TargetDiscovery::default();
        assert!(WatchSpec::from_config(&none, 80, None).is_err());
        let two = TargetDiscovery {
            dns_name: Some("a".to_string()),
            file: Some(PathBuf::from("t.yaml")),
            ..TargetDiscovery::default()
        };
        assert!(WatchSpec::from_config(&two, 80, None).is_err());
        for (dns_name, srv_name) in [
            (Some("bad name"), None),
            (Some(""), None),
            (Some("a..b"), None),
            (None, Some("web.scalegate.local")),
            (None, Some("_web.scalegate.local")),
        ] {
            let config = TargetDiscovery {
                dns_name: dns_name.map(str::to_string),
                srv_name: srv_name.map(str::to_string),
                name_servers: vec!["127.0.0.1:53".parse().unwrap()],
                ..TargetDiscovery::default()
            };
            assert!(
                matches!(
                    WatchSpec::from_config(&config, 80, None),
                    Err(DiscoveryError::InvalidName { .. })
                ),
                "{dns_name:?} {srv_name:?}"
            );
        }
    }

    #[test]
    fn file_sources_describe_their_path_and_default_port() {
        let config = TargetDiscovery {
            file: Some(PathBuf::from("/etc/scalegate/targets.yaml")),
            ..TargetDiscovery::default()
        };
        let spec = WatchSpec::from_config(&config, 8080, None).unwrap();
        assert_eq!(spec.describe(), "file /etc/scalegate/targets.yaml");
        assert_eq!(spec.default_port, 8080);
    }

    #[test]
    fn result_labels_are_distinct_lowercase_words() {
        let labels: BTreeSet<&str> = ResolutionResult::ALL
            .iter()
            .map(|result| result.as_str())
            .collect();
        assert_eq!(labels.len(), ResolutionResult::ALL.len());
        assert!(labels
            .iter()
            .all(|label| label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    }

    #[test]
    fn status_serializes_for_the_admin_api() {
        let state = StatusState::new(
            "file t.yaml".to_string(),
            &addrs(&["10.0.0.1:80"]).into_iter().collect(),
        );
        let json = serde_json::to_value(state.snapshot()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "source": "file t.yaml",
                "targets": ["10.0.0.1:80"],
                "last_result": null,
                "last_error": null,
                "consecutive_failures": 0,
                "last_success_unix_seconds": null,
                "next_refresh_in_seconds": null
            })
        );
    }
}
