//! The DNS watcher: resolve A/AAAA or SRV records with hickory-resolver, follow their TTL, and
//! apply the failure policy.
//!
//! The resolver is built to ask the server every time: no cache (`cache_size` 0), no hosts
//! file, names queried as FQDNs (so no search-domain expansion, which also makes Docker's
//! embedded DNS answer `web.` for a compose service `web`), UDP with TCP on truncation, and
//! `query_timeout` per try with two tries.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use scalegate_config::AddressFamily;

use super::{OnFailure, Reporter, ResolutionResult, WatchSpec};
use crate::{DiscoveryError, FailurePolicy, ResolverSpec, SourceSpec, TtlBounds};

/// Longest DNS name, in characters without the final dot (RFC 1035).
const MAX_NAME_CHARS: usize = 253;
/// Longest DNS label (RFC 1035).
const MAX_LABEL_CHARS: usize = 63;

/// Checks that `name` is a DNS name (letters, digits, hyphens and underscores in labels of
/// 1–63 characters) and, for SRV, of the form `_service._proto.name`. Returns it trimmed.
pub(super) fn check_name(name: &str, srv: bool) -> Result<String, DiscoveryError> {
    let invalid = |reason: &str| DiscoveryError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = name.trim();
    let bare = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if bare.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if bare.len() > MAX_NAME_CHARS {
        return Err(invalid("a DNS name has at most 253 characters"));
    }
    let labels: Vec<&str> = bare.split('.').collect();
    for label in &labels {
        if label.is_empty() || label.len() > MAX_LABEL_CHARS {
            return Err(invalid(
                "each dot-separated label must have 1–63 characters",
            ));
        }
        if !label
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            return Err(invalid(
                "labels may only contain letters, digits, hyphens and underscores",
            ));
        }
    }
    if srv && (labels.len() < 3 || !labels[0].starts_with('_') || !labels[1].starts_with('_')) {
        return Err(invalid(
            "an SRV name has the form `_service._proto.name`, e.g. `_web._tcp.web.scalegate.local`",
        ));
    }
    fqdn(trimmed).map_err(|error| invalid(&error))?;
    Ok(trimmed.to_string())
}

/// `name` as a fully qualified name (a final `.`), so the resolver never appends search
/// domains.
fn fqdn(name: &str) -> Result<Name, String> {
    let mut parsed = Name::from_ascii(name).map_err(|error| error.to_string())?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// Checks that the system resolver configuration (/etc/resolv.conf) can be read, so a watch
/// that needs it fails at config time rather than on every refresh.
pub(super) fn check_system_config() -> Result<(), DiscoveryError> {
    hickory_resolver::system_conf::read_system_conf()
        .map(|_| ())
        .map_err(|error| {
            DiscoveryError::Resolver(format!(
                "cannot use the system resolver (/etc/resolv.conf): {error}; set `name_servers`"
            ))
        })
}

/// A resolver that asks `spec`'s servers on every call, with `query_timeout` per try.
fn build_resolver(
    spec: &ResolverSpec,
    query_timeout: Duration,
) -> Result<TokioResolver, DiscoveryError> {
    let mut builder = match spec {
        ResolverSpec::System => TokioResolver::builder_tokio().map_err(|error| {
            DiscoveryError::Resolver(format!(
                "cannot use the system resolver (/etc/resolv.conf): {error}"
            ))
        })?,
        ResolverSpec::Embedded(_) => {
            return Err(DiscoveryError::Resolver(
                "the embedded registry is watched in-process, not through a resolver".to_string(),
            ))
        }
        ResolverSpec::NameServers(servers) => Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers.iter().map(name_server).collect()),
            TokioRuntimeProvider::default(),
        ),
    };
    configure(builder.options_mut(), query_timeout);
    builder
        .build()
        .map_err(|error| DiscoveryError::Resolver(error.to_string()))
}

/// The options that make the resolver a watcher's: no cache, no hosts file, two tries.
fn configure(options: &mut ResolverOpts, query_timeout: Duration) {
    options.cache_size = 0;
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = query_timeout;
    // hickory counts retries after the first try: 1 means two tries in all.
    options.attempts = 1;
    options.edns0 = true;
    options.preserve_intermediates = true;
}

/// A name server at `address`: UDP first, TCP when the UDP answer is truncated.
fn name_server(address: &SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = address.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = address.port();
    NameServerConfig::new(address.ip(), true, vec![udp, tcp])
}

/// Why a query produced no addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NoAnswer {
    /// NXDOMAIN (`nx`) or an answer without usable records; `negative_ttl` from the SOA.
    Negative {
        nx: bool,
        negative_ttl: Option<u32>,
        detail: String,
    },
    /// No usable answer at all: timeout, SERVFAIL, REFUSED, connection errors.
    Failed {
        result: ResolutionResult,
        error: String,
    },
}

/// A query's or a resolution's result: what was found and the lowest TTL among the records
/// used, or why nothing was.
type Resolution<T> = Result<(T, u32), NoAnswer>;

/// Resolves `spec`'s source once.
async fn resolve(resolver: &TokioResolver, spec: &WatchSpec) -> Resolution<BTreeSet<SocketAddr>> {
    match &spec.source {
        SourceSpec::Address { name, port } => {
            let name = fqdn(name).map_err(|error| NoAnswer::Failed {
                result: ResolutionResult::Error,
                error,
            })?;
            let (addresses, ttl) = resolve_addresses(resolver, &name, spec.family).await?;
            Ok((
                addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, *port))
                    .collect(),
                ttl,
            ))
        }
        SourceSpec::Srv { name } => {
            let name = fqdn(name).map_err(|error| NoAnswer::Failed {
                result: ResolutionResult::Error,
                error,
            })?;
            resolve_srv(resolver, &name, spec.family).await
        }
        SourceSpec::File(_) => Err(NoAnswer::Failed {
            result: ResolutionResult::Error,
            error: "a file is not a DNS source".to_string(),
        }),
    }
}

/// The record types `family` asks for.
fn record_types(family: AddressFamily) -> &'static [RecordType] {
    match family {
        AddressFamily::Any => &[RecordType::A, RecordType::AAAA],
        AddressFamily::Ipv4 => &[RecordType::A],
        AddressFamily::Ipv6 => &[RecordType::AAAA],
    }
}

/// The address of an A or AAAA record of a type `family` wants.
fn address_of(record: &Record, family: AddressFamily) -> Option<IpAddr> {
    match (&record.data, family) {
        (RData::A(a), AddressFamily::Any | AddressFamily::Ipv4) => Some(IpAddr::V4(a.0)),
        (RData::AAAA(aaaa), AddressFamily::Any | AddressFamily::Ipv6) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

/// A and/or AAAA records of `name`, queried concurrently. One family answering is a success
/// even when the other fails.
async fn resolve_addresses(
    resolver: &TokioResolver,
    name: &Name,
    family: AddressFamily,
) -> Resolution<Vec<IpAddr>> {
    let answers = join_all(record_types(family).iter().map(|&record_type| async move {
        let lookup = query(resolver, name, record_type).await?;
        addresses_in(&lookup, name, record_type, family)
    }))
    .await;
    combine(answers)
}

/// One query, its error sorted into [`NoAnswer`].
async fn query(
    resolver: &TokioResolver,
    name: &Name,
    record_type: RecordType,
) -> Result<Lookup, NoAnswer> {
    resolver
        .lookup(name.clone(), record_type)
        .await
        .map_err(|error| classify(&error, name, record_type))
}

/// The addresses in an A or AAAA answer (following CNAMEs, whose TTLs count too).
fn addresses_in(
    lookup: &Lookup,
    name: &Name,
    record_type: RecordType,
    family: AddressFamily,
) -> Resolution<Vec<IpAddr>> {
    let ttl = lookup
        .answers()
        .iter()
        .map(|record| record.ttl)
        .min()
        .unwrap_or(0);
    let addresses: Vec<IpAddr> = lookup
        .answers()
        .iter()
        .filter(|record| record.record_type() == record_type)
        .filter_map(|record| address_of(record, family))
        .collect();
    if addresses.is_empty() {
        Err(NoAnswer::Negative {
            nx: false,
            negative_ttl: None,
            detail: format!("no {record_type} records for {name}"),
        })
    } else {
        Ok((addresses, ttl))
    }
}

/// Merges the per-family results: any addresses win; else any failure (the failed family
/// might have had addresses); else the name is negative (NXDOMAIN only if every answer said
/// so).
fn combine(parts: Vec<Resolution<Vec<IpAddr>>>) -> Resolution<Vec<IpAddr>> {
    let mut addresses = Vec::new();
    let mut ttl = u32::MAX;
    let mut failure = None;
    let mut all_nx = true;
    let mut negative_ttl: Option<u32> = None;
    let mut details = Vec::new();
    for part in parts {
        match part {
            Ok((found, found_ttl)) => {
                addresses.extend(found);
                ttl = ttl.min(found_ttl);
            }
            Err(NoAnswer::Failed { result, error }) => {
                failure.get_or_insert(NoAnswer::Failed { result, error });
            }
            Err(NoAnswer::Negative {
                nx,
                negative_ttl: part_ttl,
                detail,
            }) => {
                all_nx &= nx;
                negative_ttl = match (negative_ttl, part_ttl) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                details.push(detail);
            }
        }
    }
    if !addresses.is_empty() {
        return Ok((addresses, ttl));
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    Err(NoAnswer::Negative {
        nx: all_nx && !details.is_empty(),
        negative_ttl,
        detail: details.join("; "),
    })
}

/// SRV records of `name`: each record's port with its target host's addresses, taken from the
/// additional section when it has them, otherwise queried. A host whose follow-up query fails
/// fails the whole resolution (keeping the last known targets is safer than draining that
/// host); a host that does not exist just contributes nothing.
async fn resolve_srv(
    resolver: &TokioResolver,
    name: &Name,
    family: AddressFamily,
) -> Resolution<BTreeSet<SocketAddr>> {
    let lookup = query(resolver, name, RecordType::SRV).await?;
    let mut ttl = u32::MAX;
    let mut records: Vec<(u16, Name)> = Vec::new();
    for record in lookup.answers() {
        if let RData::SRV(srv) = &record.data {
            ttl = ttl.min(record.ttl);
            // A target of `.` means "no service here" (RFC 2782).
            if !srv.target.is_root() {
                let mut target = srv.target.clone();
                target.set_fqdn(true);
                records.push((srv.port, target));
            }
        }
    }
    if records.is_empty() {
        return Err(NoAnswer::Negative {
            nx: false,
            negative_ttl: None,
            detail: format!("no SRV records with a target for {name}"),
        });
    }
    let mut hosts: HashMap<LowerName, Vec<IpAddr>> = HashMap::new();
    let mut follow_up: Vec<Name> = Vec::new();
    for (_, target) in &records {
        let key = LowerName::from(target);
        if hosts.contains_key(&key) || follow_up.iter().any(|host| LowerName::from(host) == key) {
            continue;
        }
        let additional: Vec<(IpAddr, u32)> = lookup
            .additionals()
            .iter()
            .filter(|record| LowerName::from(&record.name) == key)
            .filter_map(|record| address_of(record, family).map(|ip| (ip, record.ttl)))
            .collect();
        if additional.is_empty() {
            follow_up.push(target.clone());
        } else {
            ttl = additional.iter().fold(ttl, |ttl, (_, t)| ttl.min(*t));
            hosts.insert(key, additional.into_iter().map(|(ip, _)| ip).collect());
        }
    }
    let resolved = join_all(
        follow_up
            .iter()
            .map(|host| resolve_addresses(resolver, host, family)),
    )
    .await;
    for (host, result) in follow_up.iter().zip(resolved) {
        match result {
            Ok((addresses, host_ttl)) => {
                ttl = ttl.min(host_ttl);
                hosts.insert(LowerName::from(host), addresses);
            }
            Err(NoAnswer::Negative { .. }) => {}
            Err(NoAnswer::Failed { result, error }) => {
                return Err(NoAnswer::Failed {
                    result,
                    error: format!("SRV target {host}: {error}"),
                })
            }
        }
    }
    let targets: BTreeSet<SocketAddr> = records
        .iter()
        .flat_map(|(port, target)| {
            hosts
                .get(&LowerName::from(target))
                .into_iter()
                .flatten()
                .map(move |ip| SocketAddr::new(*ip, *port))
        })
        .collect();
    if targets.is_empty() {
        return Err(NoAnswer::Negative {
            nx: false,
            negative_ttl: None,
            detail: format!("the SRV targets of {name} have no addresses"),
        });
    }
    Ok((targets, ttl))
}

/// Sorts a resolver error into NXDOMAIN/empty (an answer) or a failure (no answer).
fn classify(error: &NetError, name: &Name, record_type: RecordType) -> NoAnswer {
    let failed = |result: ResolutionResult| NoAnswer::Failed {
        result,
        error: format!("{record_type} {name}: {error}"),
    };
    match error {
        NetError::Dns(DnsError::NoRecordsFound(NoRecords {
            response_code,
            negative_ttl,
            ..
        })) => match *response_code {
            ResponseCode::NXDomain => NoAnswer::Negative {
                nx: true,
                negative_ttl: *negative_ttl,
                detail: format!("{name} does not exist (NXDOMAIN)"),
            },
            ResponseCode::NoError => NoAnswer::Negative {
                nx: false,
                negative_ttl: *negative_ttl,
                detail: format!("no {record_type} records for {name}"),
            },
            ResponseCode::ServFail => failed(ResolutionResult::ServFail),
            ResponseCode::Refused => failed(ResolutionResult::Refused),
            _ => failed(ResolutionResult::Error),
        },
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => {
            failed(ResolutionResult::ServFail)
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => {
            failed(ResolutionResult::Refused)
        }
        NetError::Timeout => failed(ResolutionResult::Timeout),
        _ => failed(ResolutionResult::Error),
    }
}

/// The DNS failure policy's memory across refreshes.
#[derive(Debug)]
struct Policy {
    bounds: TtlBounds,
    failure: FailurePolicy,
    /// NXDOMAIN or empty answers in a row (failures in between neither count nor reset).
    negative_streak: u32,
    /// Failures in a row (answers reset it), for the retry backoff.
    failure_streak: u32,
}

impl Policy {
    fn new(bounds: TtlBounds, failure: FailurePolicy) -> Policy {
        Policy {
            bounds,
            failure,
            negative_streak: 0,
            failure_streak: 0,
        }
    }

    /// Applies one resolution to the reporter's targets; returns the wait until the next,
    /// which the status shows before the targets are published.
    fn apply(
        &mut self,
        resolution: Resolution<BTreeSet<SocketAddr>>,
        reporter: &mut Reporter,
    ) -> Duration {
        match resolution {
            Ok((targets, ttl)) => {
                self.negative_streak = 0;
                self.failure_streak = 0;
                let wait = self.bounds.clamp(Duration::from_secs(u64::from(ttl)));
                reporter.schedule(wait);
                reporter.success(targets);
                wait
            }
            Err(NoAnswer::Negative {
                nx,
                negative_ttl,
                detail,
            }) => {
                self.failure_streak = 0;
                self.negative_streak = self.negative_streak.saturating_add(1);
                let on_failure = if self.negative_streak >= self.failure.nxdomain_removal_after {
                    OnFailure::Remove
                } else {
                    OnFailure::Keep
                };
                let result = if nx {
                    ResolutionResult::NxDomain
                } else {
                    ResolutionResult::Empty
                };
                let detail = format!(
                    "{detail} ({} of {} in a row before removal)",
                    self.negative_streak, self.failure.nxdomain_removal_after
                );
                let wait = negative_ttl.map_or(self.bounds.min, |ttl| {
                    self.bounds.clamp(Duration::from_secs(u64::from(ttl)))
                });
                reporter.schedule(wait);
                reporter.failure(result, &detail, on_failure);
                wait
            }
            Err(NoAnswer::Failed { result, error }) => {
                self.failure_streak = self.failure_streak.saturating_add(1);
                let on_failure = if self.failure.keep_last_known {
                    OnFailure::Keep
                } else {
                    OnFailure::Remove
                };
                let wait = self.bounds.backoff(self.failure_streak);
                reporter.schedule(wait);
                reporter.failure(result, &error, on_failure);
                wait
            }
        }
    }
}

/// The watch task for a DNS source: resolve, apply the policy, sleep, forever. The resolver is
/// built on first use and rebuilt after a failure to build it.
pub(super) async fn run(spec: WatchSpec, mut reporter: Reporter) {
    let mut policy = Policy::new(spec.bounds, spec.failure);
    let mut resolver: Option<TokioResolver> = None;
    loop {
        let built = match resolver.take() {
            Some(resolver) => Ok(resolver),
            None => build_resolver(&spec.resolver, spec.query_timeout),
        };
        let resolution = match built {
            Ok(built) => {
                let resolution = resolve(&built, &spec).await;
                resolver = Some(built);
                resolution
            }
            Err(error) => Err(NoAnswer::Failed {
                result: ResolutionResult::Error,
                error: error.to_string(),
            }),
        };
        let wait = policy.apply(resolution, &mut reporter);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use futures_util::FutureExt;

    use super::super::fake_dns::{address, srv, Behaviour, FakeDns};
    use super::super::testing::*;
    use super::super::{spawn, Watch};
    use super::*;
    use crate::{DiscoveryMetrics, TargetUpdate};

    const SECOND: Duration = Duration::from_secs(1);

    fn bounds(min_ms: u64, max_ms: u64) -> TtlBounds {
        TtlBounds {
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    /// A spec asking `server` for `source`, with test-sized timings.
    fn spec(server: &FakeDns, source: SourceSpec) -> WatchSpec {
        WatchSpec {
            source,
            resolver: ResolverSpec::NameServers(vec![server.addr]),
            bounds: bounds(100, 2_000),
            failure: FailurePolicy::default(),
            family: AddressFamily::Any,
            query_timeout: Duration::from_millis(200),
            default_port: 80,
        }
    }

    fn name(name: &str, port: u16) -> SourceSpec {
        SourceSpec::Address {
            name: name.to_string(),
            port,
        }
    }

    fn start(spec: WatchSpec, group: &str) -> (Watch, DiscoveryMetrics) {
        let metrics = DiscoveryMetrics::unregistered();
        let watch = spawn(spec, group, BTreeSet::new(), metrics.clone());
        (watch, metrics)
    }

    /// No update is waiting right now.
    fn no_update(watch: &mut Watch) {
        assert_eq!(watch.next().now_or_never(), None, "unexpected update");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_answer_is_one_add_and_changes_arrive_within_the_ttl() {
        let dns = FakeDns::start().await;
        // A `.local` name, as the embedded registry serves, queried as an FQDN.
        let host = "web.scalegate.local";
        dns.set_records(
            host,
            vec![address(host, "10.0.0.2", 1), address(host, "10.0.0.1", 1)],
        );
        let (mut watch, metrics) = start(spec(&dns, name(host, 8080)), "web");
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.1:8080", "10.0.0.2:8080"]))
        );
        let status = watch.status();
        assert_eq!(status.last_result, Some("success"));
        assert!(status.next_refresh_in_seconds.unwrap() <= 1.0);
        assert!(status.last_success_unix_seconds.unwrap() > 0);

        dns.set_records(
            host,
            vec![address(host, "10.0.0.2", 1), address(host, "10.0.0.3", 1)],
        );
        let changed = Instant::now();
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Remove(addrs(&["10.0.0.1:8080"]))
        );
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.3:8080"]))
        );
        assert!(
            changed.elapsed() < 2 * SECOND,
            "picked up within TTL + 1 s, took {:?}",
            changed.elapsed()
        );
        // No cache: every refresh reached the server, for both families.
        assert!(dns.queries(host, RecordType::A) >= 2);
        assert!(dns.queries(host, RecordType::AAAA) >= 2);
        assert!(counter(&metrics, "web", "success") >= 2);
        let updates = |change: &str| {
            metrics
                .target_updates
                .with_label_values(&["web", change])
                .get()
        };
        assert_eq!((updates("add"), updates("remove")), (3, 1));
        assert_eq!(metrics.targets.with_label_values(&["web"]).get(), 2);
        assert!(metrics.last_success.with_label_values(&["web"]).get() > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_ttls_are_clamped_to_the_refresh_bounds() {
        let dns = FakeDns::start().await;
        dns.set_records("app.test", vec![address("app.test", "10.0.0.1", 86_400)]);
        let mut spec = spec(&dns, name("app.test", 80));
        spec.bounds = bounds(100, 500);
        let (mut watch, _) = start(spec, "clamped");
        next_update(&mut watch).await;
        assert!(watch.status().next_refresh_in_seconds.unwrap() <= 0.5);
        dns.set_records("app.test", vec![address("app.test", "10.0.0.2", 86_400)]);
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Remove(addrs(&["10.0.0.1:80"]))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_label_names_are_asked_as_is() {
        // Docker's embedded DNS answers a compose service name such as `web` as `web.`.
        let dns = FakeDns::start().await;
        dns.set_records("web", vec![address("web", "172.18.0.5", 600)]);
        let (mut watch, _) = start(spec(&dns, name("web", 3000)), "compose");
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["172.18.0.5:3000"]))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_keep_the_last_known_targets_until_the_server_recovers() {
        let dns = FakeDns::start().await;
        let records = vec![address("app.test", "10.0.0.1", 1)];
        dns.set_records("app.test", records.clone());
        let (mut watch, metrics) = start(spec(&dns, name("app.test", 80)), "kept");
        next_update(&mut watch).await;

        for (behaviour, label) in [
            (Behaviour::ServFail, "servfail"),
            (Behaviour::Refused, "refused"),
            (Behaviour::NoAnswer, "timeout"),
        ] {
            dns.set("app.test", behaviour);
            eventually(label, || counter(&metrics, "kept", label) >= 1).await;
            let status = watch.status();
            assert_eq!(status.targets, addrs(&["10.0.0.1:80"]), "{label}");
            assert!(status.consecutive_failures >= 1);
            assert!(status.last_error.is_some());
            no_update(&mut watch);
        }
        assert!(kept(&metrics, "kept") >= 3);
        assert_eq!(metrics.targets.with_label_values(&["kept"]).get(), 1);

        dns.set_records("app.test", records);
        eventually("recovery", || watch.status().consecutive_failures == 0).await;
        assert_eq!(watch.status().last_result, Some("success"));
        no_update(&mut watch);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_server_keeps_the_last_known_targets() {
        let mut dns = FakeDns::start().await;
        dns.set_records("app.test", vec![address("app.test", "10.0.0.1", 1)]);
        let (mut watch, metrics) = start(spec(&dns, name("app.test", 80)), "outage");
        next_update(&mut watch).await;
        dns.stop().await;
        eventually("a failed resolution", || {
            counter(&metrics, "outage", "error") + counter(&metrics, "outage", "timeout") >= 2
        })
        .await;
        assert_eq!(watch.status().targets, addrs(&["10.0.0.1:80"]));
        assert!(kept(&metrics, "outage") >= 2);
        no_update(&mut watch);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_remove_the_targets_when_the_policy_says_so() {
        let dns = FakeDns::start().await;
        let records = vec![address("app.test", "10.0.0.1", 1)];
        dns.set_records("app.test", records.clone());
        let mut spec = spec(&dns, name("app.test", 80));
        spec.failure.keep_last_known = false;
        let (mut watch, metrics) = start(spec, "strict");
        next_update(&mut watch).await;
        dns.set("app.test", Behaviour::ServFail);
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Remove(addrs(&["10.0.0.1:80"]))
        );
        assert_eq!(kept(&metrics, "strict"), 0);
        dns.set_records("app.test", records);
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.1:80"]))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nxdomain_removes_targets_only_after_n_answers_in_a_row() {
        let dns = FakeDns::start().await;
        dns.set_negative_ttl(0);
        dns.set_records("app.test", vec![address("app.test", "10.0.0.1", 1)]);
        let mut spec = spec(&dns, name("app.test", 80));
        spec.bounds = bounds(300, 2_000);
        spec.family = AddressFamily::Ipv4;
        let (mut watch, metrics) = start(spec, "nx");
        next_update(&mut watch).await;
        dns.set("app.test", Behaviour::NxDomain);
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Remove(addrs(&["10.0.0.1:80"]))
        );
        // Removed on the third NXDOMAIN; the first two kept the targets.
        assert_eq!(counter(&metrics, "nx", "nxdomain"), 3);
        assert_eq!(kept(&metrics, "nx"), 2);
        // Once empty, more NXDOMAIN answers keep nothing and change nothing.
        eventually("more NXDOMAIN answers", || {
            counter(&metrics, "nx", "nxdomain") >= 5
        })
        .await;
        assert_eq!(kept(&metrics, "nx"), 2);
        no_update(&mut watch);
        assert_eq!(watch.status().last_result, Some("nxdomain"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_that_never_existed_stays_empty_and_waits_the_negative_ttl() {
        let dns = FakeDns::start().await;
        dns.set_negative_ttl(3);
        let mut spec = spec(&dns, name("missing.test", 80));
        spec.bounds = bounds(100, 10_000);
        let (mut watch, metrics) = start(spec.clone(), "missing");
        eventually("an NXDOMAIN scheduled by its SOA", || {
            let status = watch.status();
            status.last_result == Some("nxdomain")
                && status
                    .next_refresh_in_seconds
                    .is_some_and(|wait| wait > 2.0)
        })
        .await;
        assert_eq!(kept(&metrics, "missing"), 0);
        assert!(watch.status().targets.is_empty());
        no_update(&mut watch);

        // An empty NOERROR answer (the name exists, no A/AAAA) is `empty`.
        dns.set_negative_ttl(0);
        dns.set_records("empty.test", vec![srv("empty.test", 80, "x.test", 1)]);
        let mut spec = spec.clone();
        spec.source = name("empty.test", 80);
        let (_watch, metrics) = start(spec, "empty");
        eventually("an empty answer", || {
            counter(&metrics, "empty", "empty") >= 1
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn address_families_filter_and_one_failing_family_is_still_a_success() {
        let dns = FakeDns::start().await;
        let records = vec![
            address("dual.test", "10.0.0.1", 1),
            address("dual.test", "fd00::1", 1),
        ];
        dns.set_records("dual.test", records.clone());
        for (family, expected) in [
            (AddressFamily::Any, &["10.0.0.1:80", "[fd00::1]:80"][..]),
            (AddressFamily::Ipv4, &["10.0.0.1:80"][..]),
            (AddressFamily::Ipv6, &["[fd00::1]:80"][..]),
        ] {
            let mut spec = spec(&dns, name("dual.test", 80));
            spec.family = family;
            let (mut watch, _) = start(spec, "family");
            assert_eq!(
                next_update(&mut watch).await,
                TargetUpdate::Add(addrs(expected)),
                "{family:?}"
            );
        }

        dns.set(
            "dual.test",
            Behaviour::FailType {
                records,
                failing: RecordType::AAAA,
            },
        );
        let (mut watch, metrics) = start(spec(&dns, name("dual.test", 80)), "half");
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.1:80"]))
        );
        assert_eq!(counter(&metrics, "half", "success"), 1);
        assert_eq!(counter(&metrics, "half", "servfail"), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ipv4_only_never_asks_for_aaaa() {
        let dns = FakeDns::start().await;
        dns.set_records("v4.test", vec![address("v4.test", "10.0.0.1", 1)]);
        let mut spec = spec(&dns, name("v4.test", 80));
        spec.family = AddressFamily::Ipv4;
        let (mut watch, _) = start(spec, "v4");
        next_update(&mut watch).await;
        assert_eq!(dns.queries("v4.test", RecordType::AAAA), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn srv_uses_additional_records_when_present() {
        let dns = FakeDns::start().await;
        let owner = "_web._tcp.web.scalegate.test";
        dns.set(
            owner,
            Behaviour::Records {
                records: vec![
                    srv(owner, 8001, "task-1.web.scalegate.test", 5),
                    srv(owner, 8002, "task-2.web.scalegate.test", 5),
                    srv(owner, 8003, ".", 5),
                ],
                additionals: vec![
                    address("task-1.web.scalegate.test", "10.0.0.1", 5),
                    address("task-2.web.scalegate.test", "10.0.0.2", 5),
                    address("task-2.web.scalegate.test", "fd00::2", 5),
                ],
            },
        );
        let mut spec = spec(
            &dns,
            SourceSpec::Srv {
                name: owner.to_string(),
            },
        );
        spec.family = AddressFamily::Ipv4;
        let (mut watch, _) = start(spec, "srv");
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.1:8001", "10.0.0.2:8002"]))
        );
        assert_eq!(dns.queries("task-1.web.scalegate.test", RecordType::A), 0);
        assert!(watch.status().next_refresh_in_seconds.unwrap() <= 2.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn srv_without_additional_records_asks_for_each_target() {
        let dns = FakeDns::start().await;
        let owner = "_api._tcp.api.test";
        dns.set_records(
            owner,
            vec![
                srv(owner, 9001, "a.api.test", 5),
                srv(owner, 9002, "b.api.test", 5),
                srv(owner, 9003, "gone.api.test", 5),
                srv(owner, 9004, "a.api.test", 5),
            ],
        );
        dns.set_records("a.api.test", vec![address("a.api.test", "10.0.1.1", 5)]);
        dns.set_records(
            "b.api.test",
            vec![
                address("b.api.test", "10.0.1.2", 5),
                address("b.api.test", "fd00::12", 5),
            ],
        );
        let source = SourceSpec::Srv {
            name: owner.to_string(),
        };
        let (mut watch, metrics) = start(spec(&dns, source.clone()), "srv");
        // gone.api.test does not exist: it contributes nothing, the others still count.
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&[
                "10.0.1.1:9001",
                "10.0.1.1:9004",
                "10.0.1.2:9002",
                "[fd00::12]:9002"
            ]))
        );
        assert!(dns.queries("a.api.test", RecordType::A) >= 1);
        assert_eq!(counter(&metrics, "srv", "success"), 1);

        // A target whose lookup fails fails the resolution: nothing is drained.
        dns.set("b.api.test", Behaviour::ServFail);
        eventually("a failed follow-up", || {
            counter(&metrics, "srv", "servfail") >= 1
        })
        .await;
        assert_eq!(watch.status().targets.len(), 4);
        assert!(watch
            .status()
            .last_error
            .unwrap()
            .contains("SRV target b.api.test."));
        no_update(&mut watch);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_answer_is_diffed_against_the_initial_membership() {
        let dns = FakeDns::start().await;
        dns.set_records(
            "app.test",
            vec![
                address("app.test", "10.0.0.1", 1),
                address("app.test", "10.0.0.2", 1),
            ],
        );
        let initial = addrs(&["10.0.0.1:80", "10.0.0.9:80"]).into_iter().collect();
        let metrics = DiscoveryMetrics::unregistered();
        let mut watch = spawn(
            spec(&dns, name("app.test", 80)),
            "reloaded",
            initial,
            metrics,
        );
        assert_eq!(
            watch.status().targets,
            addrs(&["10.0.0.1:80", "10.0.0.9:80"])
        );
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Remove(addrs(&["10.0.0.9:80"]))
        );
        assert_eq!(
            next_update(&mut watch).await,
            TargetUpdate::Add(addrs(&["10.0.0.2:80"]))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_truncated_udp_answer_is_retried_over_tcp() {
        let dns = FakeDns::start().await;
        let records: Vec<Record> = (1..=60)
            .map(|n| address("big.test", &format!("10.0.2.{n}"), 5))
            .collect();
        dns.set_records("big.test", records);
        let mut spec = spec(&dns, name("big.test", 80));
        spec.family = AddressFamily::Ipv4;
        let (mut watch, _) = start(spec, "big");
        match next_update(&mut watch).await {
            TargetUpdate::Add(added) => assert_eq!(added.len(), 60),
            other => panic!("expected one Add, got {other:?}"),
        }
        assert!(dns.tcp_queries() >= 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_watch_stops_its_task() {
        let dns = FakeDns::start().await;
        // Truncated answers make the resolver open a TCP connection too.
        let records: Vec<Record> = (1..=60)
            .map(|n| address("app.test", &format!("10.0.2.{n}"), 0))
            .collect();
        dns.set_records("app.test", records);
        let runtime = tokio::runtime::Handle::current().metrics();
        let tasks_before = runtime.num_alive_tasks();
        let (mut watch, _) = start(spec(&dns, name("app.test", 80)), "dropped");
        next_update(&mut watch).await;
        assert!(runtime.num_alive_tasks() > tasks_before);
        let task_state = Arc::downgrade(&watch.status);
        drop(watch);
        eventually("the task to be dropped", || task_state.strong_count() == 0).await;
        // The resolver's connection tasks end with it; only the fake server's remain.
        eventually("no tasks left behind", || {
            runtime.num_alive_tasks() <= tasks_before
        })
        .await;
    }

    #[test]
    fn watches_can_move_between_threads() {
        fn send_static<T: Send + 'static>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _guard = runtime.enter();
        let spec = WatchSpec {
            source: name("app.test", 80),
            resolver: ResolverSpec::NameServers(vec!["127.0.0.1:9".parse().unwrap()]),
            bounds: bounds(100, 200),
            failure: FailurePolicy::default(),
            family: AddressFamily::Any,
            query_timeout: Duration::from_millis(100),
            default_port: 80,
        };
        let mut watch = spawn(
            spec,
            "sync",
            BTreeSet::new(),
            DiscoveryMetrics::unregistered(),
        );
        send(&watch.next());
        send_static(&watch);
    }

    #[test]
    fn the_next_refresh_follows_ttl_negative_ttl_and_backoff() {
        let (mut reporter, _) = reporter(&[]);
        let mut policy = Policy::new(bounds(1_000, 60_000), FailurePolicy::default());
        let found = |ttl| Ok((addrs(&["10.0.0.1:80"]).into_iter().collect(), ttl));
        assert_eq!(policy.apply(found(0), &mut reporter), SECOND);
        assert_eq!(policy.apply(found(5), &mut reporter), 5 * SECOND);
        assert_eq!(policy.apply(found(86_400), &mut reporter), 60 * SECOND);
        let negative = |negative_ttl| {
            Err(NoAnswer::Negative {
                nx: true,
                negative_ttl,
                detail: String::new(),
            })
        };
        assert_eq!(policy.apply(negative(Some(7)), &mut reporter), 7 * SECOND);
        assert_eq!(policy.apply(negative(None), &mut reporter), SECOND);
        let failed = || {
            Err(NoAnswer::Failed {
                result: ResolutionResult::Timeout,
                error: String::new(),
            })
        };
        let waits: Vec<u64> = (0..7)
            .map(|_| policy.apply(failed(), &mut reporter).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        // An answer resets the backoff.
        policy.apply(found(5), &mut reporter);
        assert_eq!(policy.apply(failed(), &mut reporter), SECOND);
    }

    #[test]
    fn negative_answers_count_in_a_row_and_only_success_resets_them() {
        let (mut reporter, metrics) = reporter(&["10.0.0.1:80"]);
        let mut policy = Policy::new(bounds(1_000, 60_000), FailurePolicy::default());
        let nx = || {
            Err(NoAnswer::Negative {
                nx: true,
                negative_ttl: None,
                detail: String::new(),
            })
        };
        let empty = || {
            Err(NoAnswer::Negative {
                nx: false,
                negative_ttl: None,
                detail: String::new(),
            })
        };
        let timeout = || {
            Err(NoAnswer::Failed {
                result: ResolutionResult::Timeout,
                error: String::new(),
            })
        };
        let found = || Ok((addrs(&["10.0.0.1:80"]).into_iter().collect(), 5));
        policy.apply(nx(), &mut reporter);
        policy.apply(empty(), &mut reporter);
        policy.apply(found(), &mut reporter);
        policy.apply(nx(), &mut reporter);
        policy.apply(timeout(), &mut reporter);
        policy.apply(nx(), &mut reporter);
        assert_eq!(reporter.current.len(), 1, "a success reset the count");
        assert_eq!(kept(&metrics, "unit"), 5);
        policy.apply(empty(), &mut reporter);
        assert!(reporter.current.is_empty(), "third in a row removes");
        assert_eq!(counter(&metrics, "unit", "empty"), 2);
        assert_eq!(counter(&metrics, "unit", "nxdomain"), 3);
        assert_eq!(counter(&metrics, "unit", "timeout"), 1);
        assert_eq!(metrics.targets.with_label_values(&["unit"]).get(), 0);
    }

    #[test]
    fn a_threshold_of_one_removes_at_the_first_nxdomain() {
        let (mut reporter, metrics) = reporter(&["10.0.0.1:80"]);
        let failure = FailurePolicy {
            keep_last_known: true,
            nxdomain_removal_after: 1,
        };
        let mut policy = Policy::new(bounds(1_000, 60_000), failure);
        policy.apply(
            Err(NoAnswer::Negative {
                nx: true,
                negative_ttl: None,
                detail: String::new(),
            }),
            &mut reporter,
        );
        assert!(reporter.current.is_empty());
        assert_eq!(kept(&metrics, "unit"), 0);
    }

    #[test]
    fn per_family_results_combine() {
        let found = |ip: &str, ttl| Ok((vec![ip.parse().unwrap()], ttl));
        let nx = |ttl| {
            Err(NoAnswer::Negative {
                nx: true,
                negative_ttl: ttl,
                detail: "nx".to_string(),
            })
        };
        let nodata = || {
            Err(NoAnswer::Negative {
                nx: false,
                negative_ttl: Some(9),
                detail: "nodata".to_string(),
            })
        };
        let failed = || {
            Err(NoAnswer::Failed {
                result: ResolutionResult::ServFail,
                error: "boom".to_string(),
            })
        };
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            combine(vec![found("10.0.0.1", 5), found("fd00::1", 3)]),
            Ok((vec![ip("10.0.0.1"), ip("fd00::1")], 3))
        );
        assert_eq!(
            combine(vec![found("10.0.0.1", 5), failed()]),
            Ok((vec![ip("10.0.0.1")], 5))
        );
        assert_eq!(combine(vec![nodata(), failed()]), failed());
        assert_eq!(
            combine(vec![nx(Some(4)), nx(None)]),
            Err(NoAnswer::Negative {
                nx: true,
                negative_ttl: Some(4),
                detail: "nx; nx".to_string()
            })
        );
        assert!(matches!(
            combine(vec![nx(None), nodata()]),
            Err(NoAnswer::Negative {
                nx: false,
                negative_ttl: Some(9),
                ..
            })
        ));
    }

    #[test]
    fn names_are_checked_and_made_fully_qualified() {
        assert_eq!(check_name(" web ", false).unwrap(), "web");
        assert_eq!(
            check_name("web.scalegate.local.", false).unwrap(),
            "web.scalegate.local."
        );
        assert!(check_name("_web._tcp.web.scalegate.local", true).is_ok());
        assert!(check_name("_web._tcp", true).is_err());
        assert!(check_name(&"a".repeat(64), false).is_err());
        assert!(check_name("a/b", false).is_err());
        assert!(check_name(".", false).is_err());
        assert!(fqdn("web").unwrap().is_fqdn());
        assert_eq!(fqdn("web").unwrap().to_string(), "web.");
    }
}
