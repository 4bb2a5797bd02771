//! The registry's state and its Cloud Map-style operations.
//!
//! Everything lives in one [`State`] behind one lock in [`EmbeddedRegistry`]: writes are rare
//! (a task starts, stops or changes health; the config reloads) and DNS reads are short, so a
//! read-write lock keeps answers consistent (a service and its instances always come from the
//! same moment) without anything cleverer.
//!
//! Time is passed in (`now`) rather than read inside, so tests of the deregistration grace
//! period move the clock instead of sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Metadata, Query};
use hickory_proto::rr::Name;
use serde::Serialize;

use super::answer::{self, AnswerContext, Response};
use super::{
    Deregistered, HealthStatus, HealthStatusFilter, Registry, ServiceInstance,
    AWS_INIT_HEALTH_STATUS, AWS_INSTANCE_IPV4, AWS_INSTANCE_IPV6, AWS_INSTANCE_PORT,
};
use crate::{DiscoveryError, DiscoveryMetrics};

/// Cloud Map's quota of instances per service.
pub(crate) const MAX_INSTANCES_PER_SERVICE: usize = 1000;
/// Cloud Map's quota of instances per DNS namespace.
pub(crate) const MAX_INSTANCES_PER_NAMESPACE: usize = 2000;
/// A DNS label's maximum length (RFC 1035).
const MAX_LABEL_CHARS: usize = 63;
/// The label under a service that holds its SRV name (`_svc._tcp.svc.ns`), so no instance may
/// take it as its ID.
const TCP_LABEL: &str = "_tcp";

/// Where an instance was registered from; decides what a config reload may remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceSource {
    /// Declared in `registry:` of the config; a reload that drops it deregisters it.
    Config,
    /// Registered through the API or the Rust interface; survives reloads while its namespace
    /// exists.
    Api,
}

/// One instance and its bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The instance; its attributes exclude the ones derived from address and port.
    pub(crate) instance: ServiceInstance,
    /// `instance-id.service.namespace.`, lowercase: the SRV target and the instance's own name.
    pub(crate) dns_name: Name,
    pub(crate) source: InstanceSource,
    /// Set once deregistered: out of service answers, but its own name answers until then.
    pub(crate) leaving_until: Option<Instant>,
}

impl Entry {
    /// Registered and not deregistered: in service answers and in `DiscoverInstances`.
    pub(crate) fn is_active(&self) -> bool {
        self.leaving_until.is_none()
    }

    /// Still answering at its own name: active, or deregistered less than a TTL ago.
    pub(crate) fn is_live(&self, now: Instant) -> bool {
        self.leaving_until.is_none_or(|until| until > now)
    }
}

/// A service of a namespace.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    /// The service's label, lowercase.
    pub(crate) name: String,
    /// The service's own TTL from the config; the namespace's when `None`.
    pub(crate) ttl_override: Option<u32>,
    /// Declared in the config: kept even with no instances.
    pub(crate) declared: bool,
    /// By lowercase instance ID, so answers list instances in a stable order.
    pub(crate) instances: BTreeMap<String, Entry>,
}

impl Service {
    fn new(name: &str) -> Service {
        Service {
            name: name.to_string(),
            ttl_override: None,
            declared: false,
            instances: BTreeMap::new(),
        }
    }

    /// Whether `service.namespace` exists in DNS: some instance still answers under it.
    pub(crate) fn is_live(&self, now: Instant) -> bool {
        self.instances.values().any(|entry| entry.is_live(now))
    }

    /// Instances in service answers and `DiscoverInstances`, in ID order.
    pub(crate) fn active(&self) -> impl Iterator<Item = &ServiceInstance> {
        self.instances
            .values()
            .filter(|entry| entry.is_active())
            .map(|entry| &entry.instance)
    }

    fn active_count(&self) -> usize {
        self.instances.values().filter(|e| e.is_active()).count()
    }
}

/// A namespace: one DNS zone served authoritatively.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    /// The zone, lowercase, without the trailing dot.
    pub(crate) name: String,
    /// The zone's labels, lowercase, to match query names by suffix.
    pub(crate) labels: Vec<String>,
    /// The zone apex as a DNS name (fully qualified).
    pub(crate) apex: Name,
    pub(crate) ttl: u32,
    pub(crate) negative_ttl: u32,
    /// By lowercase service name.
    pub(crate) services: BTreeMap<String, Service>,
}

impl Namespace {
    fn new(name: &str, apex: Name) -> Namespace {
        Namespace {
            name: name.to_string(),
            labels: name.split('.').map(str::to_string).collect(),
            apex,
            ttl: 0,
            negative_ttl: 0,
            services: BTreeMap::new(),
        }
    }

    /// The TTL of a service's records: its own, or the namespace's.
    pub(crate) fn service_ttl(&self, service: &Service) -> u32 {
        service.ttl_override.unwrap_or(self.ttl)
    }

    fn active_count(&self) -> usize {
        self.services.values().map(Service::active_count).sum()
    }
}

/// Everything the registry knows, as one value so that one lock guards it.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// By lowercase name.
    pub(crate) namespaces: BTreeMap<String, Namespace>,
    /// The SOA serial: bumped on every change.
    pub(crate) serial: u32,
    /// The earliest end of a deregistration grace period, so purging is free until then.
    next_expiry: Option<Instant>,
    /// `(namespace, service)` pairs with published instance gauges, to remove vanished ones.
    published: BTreeSet<(String, String)>,
}

/// Lowercases a zone, service or instance name and drops a trailing dot, as DNS compares them.
fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks that `label` can be one DNS label of the registry's names.
fn check_label(kind: &str, label: &str) -> Result<(), DiscoveryError> {
    let chars_ok = label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if label.is_empty() || label.len() > MAX_LABEL_CHARS || !chars_ok {
        return Err(DiscoveryError::InvalidRegistration(format!(
            "{kind} `{label}` must be a DNS label: 1-{MAX_LABEL_CHARS} letters, digits, hyphens or underscores"
        )));
    }
    Ok(())
}

/// Checks that an attribute derived from address or port, when a caller passes it anyway,
/// agrees with the field it mirrors.
fn check_derived(
    attributes: &BTreeMap<String, String>,
    key: &str,
    expected: Option<String>,
) -> Result<(), DiscoveryError> {
    match (attributes.get(key), expected) {
        (None, _) => Ok(()),
        (Some(given), Some(expected)) if *given == expected => Ok(()),
        (Some(given), Some(expected)) => Err(DiscoveryError::InvalidRegistration(format!(
            "attribute {key}={given} disagrees with the instance's {expected}"
        ))),
        (Some(given), None) => Err(DiscoveryError::InvalidRegistration(format!(
            "attribute {key}={given} does not match the instance's address family"
        ))),
    }
}

/// Validates an instance against Cloud Map's limits and returns it as stored (without the
/// attributes derived from address and port) with the health `AWS_INIT_HEALTH_STATUS` asks for.
fn validate_instance(
    mut instance: ServiceInstance,
) -> Result<(ServiceInstance, Option<HealthStatus>), DiscoveryError> {
    check_label("instance ID", &instance.instance_id)?;
    if instance.instance_id.eq_ignore_ascii_case(TCP_LABEL) {
        return Err(DiscoveryError::InvalidRegistration(format!(
            "instance ID `{}` is reserved for SRV names",
            instance.instance_id
        )));
    }
    if instance.port == 0 {
        return Err(DiscoveryError::InvalidRegistration(format!(
            "instance `{}`: port must be 1-65535",
            instance.instance_id
        )));
    }
    if instance.address.is_unspecified() {
        return Err(DiscoveryError::InvalidRegistration(format!(
            "instance `{}`: address {} is unspecified; give the address clients connect to",
            instance.instance_id, instance.address
        )));
    }
    let attributes = &instance.attributes;
    let (ipv4, ipv6) = match instance.address {
        IpAddr::V4(address) => (Some(address.to_string()), None),
        IpAddr::V6(address) => (None, Some(address.to_string())),
    };
    check_derived(attributes, AWS_INSTANCE_IPV4, ipv4)?;
    check_derived(attributes, AWS_INSTANCE_IPV6, ipv6)?;
    check_derived(
        attributes,
        AWS_INSTANCE_PORT,
        Some(instance.port.to_string()),
    )?;
    if let Some(problem) = scalegate_config::cloud_map::attribute_problems(attributes)
        .into_iter()
        .next()
    {
        return Err(DiscoveryError::InvalidRegistration(match problem.key {
            Some(key) => format!("attribute `{key}`: {}", problem.reason),
            None => format!("attributes: {}", problem.reason),
        }));
    }
    let init_health = match attributes.get(AWS_INIT_HEALTH_STATUS).map(String::as_str) {
        Some("HEALTHY") => Some(HealthStatus::Healthy),
        Some("UNHEALTHY") => Some(HealthStatus::Unhealthy),
        // Any other value was refused just above.
        _ => None,
    };
    for derived in [AWS_INSTANCE_IPV4, AWS_INSTANCE_IPV6, AWS_INSTANCE_PORT] {
        instance.attributes.remove(derived);
    }
    Ok((instance, init_health))
}

/// The instance as `DiscoverInstances` returns it: with the attributes Cloud Map derives from
/// the address and port.
fn in_cloud_map_form(instance: &ServiceInstance) -> ServiceInstance {
    let mut instance = instance.clone();
    let address_key = match instance.address {
        IpAddr::V4(_) => AWS_INSTANCE_IPV4,
        IpAddr::V6(_) => AWS_INSTANCE_IPV6,
    };
    instance
        .attributes
        .insert(address_key.to_string(), instance.address.to_string());
    instance
        .attributes
        .insert(AWS_INSTANCE_PORT.to_string(), instance.port.to_string());
    instance
}

fn not_found(kind: &'static str, name: &str) -> DiscoveryError {
    DiscoveryError::NotFound {
        kind,
        name: name.to_string(),
    }
}

impl State {
    fn bump(&mut self) {
        self.serial = self.serial.wrapping_add(1);
    }

    fn namespace_mut(&mut self, namespace: &str) -> Result<&mut Namespace, DiscoveryError> {
        self.namespaces
            .get_mut(&canonical(namespace))
            .ok_or_else(|| not_found("namespace", namespace))
    }

    fn service(&self, namespace: &str, service: &str) -> Result<&Service, DiscoveryError> {
        self.namespaces
            .get(&canonical(namespace))
            .ok_or_else(|| not_found("namespace", namespace))?
            .services
            .get(&canonical(service))
            .ok_or_else(|| not_found("service", &format!("{service}.{namespace}")))
    }

    /// The namespace whose zone holds a name given by its lowercase labels (the longest match,
    /// should one namespace sit inside another).
    pub(crate) fn zone_for(&self, labels: &[String]) -> Option<&Namespace> {
        self.namespaces
            .values()
            .filter(|zone| labels.ends_with(&zone.labels))
            .max_by_key(|zone| zone.labels.len())
    }

    /// RegisterInstance: adds the instance, updates it (keeping its health) or revives it from
    /// its deregistration grace period.
    pub(crate) fn register(
        &mut self,
        namespace: &str,
        service: &str,
        instance: ServiceInstance,
        source: InstanceSource,
    ) -> Result<(), DiscoveryError> {
        let (instance, init_health) = validate_instance(instance)?;
        let service_key = canonical(service);
        check_label("service name", &service_key)?;
        let zone = self.namespace_mut(namespace)?;
        let id_key = instance.instance_id.to_ascii_lowercase();
        let existing_active = zone
            .services
            .get(&service_key)
            .and_then(|service| service.instances.get(&id_key))
            .is_some_and(Entry::is_active);
        if !existing_active {
            if zone.active_count() >= MAX_INSTANCES_PER_NAMESPACE {
                return Err(DiscoveryError::InvalidRegistration(format!(
                    "namespace `{}` already has {MAX_INSTANCES_PER_NAMESPACE} instances",
                    zone.name
                )));
            }
            let in_service = zone
                .services
                .get(&service_key)
                .map_or(0, Service::active_count);
            if in_service >= MAX_INSTANCES_PER_SERVICE {
                return Err(DiscoveryError::InvalidRegistration(format!(
                    "service `{service_key}.{}` already has {MAX_INSTANCES_PER_SERVICE} instances",
                    zone.name
                )));
            }
        }
        let dns_name = zone
            .apex
            .prepend_label(service_key.as_str())
            .and_then(|name| name.prepend_label(id_key.as_str()))
            .map_err(|error| DiscoveryError::InvalidRegistration(error.to_string()))?;
        let service_entry = zone
            .services
            .entry(service_key.clone())
            .or_insert_with(|| Service::new(&service_key));
        let health = match service_entry.instances.get(&id_key) {
            Some(current) if current.is_active() => current.instance.health,
            _ => init_health.unwrap_or(instance.health),
        };
        let entry = Entry {
            instance: ServiceInstance { health, ..instance },
            dns_name,
            source,
            leaving_until: None,
        };
        let unchanged = service_entry.instances.get(&id_key).is_some_and(|current| {
            current.is_active() && current.instance == entry.instance && current.source == source
        });
        if !unchanged {
            service_entry.instances.insert(id_key, entry);
            self.bump();
        }
        Ok(())
    }

    /// Takes an instance out of service answers; its own name answers for one TTL more (none
    /// when the TTL is 0).
    fn start_leaving(&mut self, zone_key: &str, service_key: &str, id_key: &str, now: Instant) {
        let Some(zone) = self.namespaces.get_mut(zone_key) else {
            return;
        };
        let Some(service) = zone.services.get(service_key) else {
            return;
        };
        let ttl = zone.service_ttl(service);
        let Some(service) = zone.services.get_mut(service_key) else {
            return;
        };
        if ttl == 0 {
            service.instances.remove(id_key);
            if !service.declared && service.instances.is_empty() {
                zone.services.remove(service_key);
            }
        } else if let Some(entry) = service.instances.get_mut(id_key) {
            let until = now + Duration::from_secs(u64::from(ttl));
            entry.leaving_until = Some(until);
            self.next_expiry = Some(self.next_expiry.map_or(until, |next| next.min(until)));
        }
        self.bump();
    }

    /// DeregisterInstance. Deregistering an instance already in its grace period is not an
    /// error (a retried call): it reports the time left.
    pub(crate) fn deregister(
        &mut self,
        namespace: &str,
        service: &str,
        instance_id: &str,
        now: Instant,
    ) -> Result<Deregistered, DiscoveryError> {
        let found = self.service(namespace, service)?;
        let id_key = instance_id.to_ascii_lowercase();
        let entry = found
            .instances
            .get(&id_key)
            .filter(|entry| entry.is_live(now))
            .ok_or_else(|| not_found("instance", instance_id))?;
        if let Some(until) = entry.leaving_until {
            return Ok(Deregistered {
                keep_reachable_for: until.saturating_duration_since(now),
            });
        }
        let zone_key = canonical(namespace);
        let service_key = canonical(service);
        let ttl = self.namespaces[&zone_key].service_ttl(found);
        self.start_leaving(&zone_key, &service_key, &id_key, now);
        Ok(Deregistered {
            keep_reachable_for: Duration::from_secs(u64::from(ttl)),
        })
    }

    /// UpdateInstanceCustomHealthStatus, effective at once.
    pub(crate) fn set_health(
        &mut self,
        namespace: &str,
        service: &str,
        instance_id: &str,
        health: HealthStatus,
    ) -> Result<(), DiscoveryError> {
        let zone = self.namespace_mut(namespace)?;
        let entry = zone
            .services
            .get_mut(&canonical(service))
            .ok_or_else(|| not_found("service", &format!("{service}.{namespace}")))?
            .instances
            .get_mut(&instance_id.to_ascii_lowercase())
            .filter(|entry| entry.is_active())
            .ok_or_else(|| not_found("instance", instance_id))?;
        if entry.instance.health != health {
            entry.instance.health = health;
            self.bump();
        }
        Ok(())
    }

    /// DiscoverInstances: the active instances that pass `filter`, with Cloud Map's derived
    /// attributes.
    pub(crate) fn discover(
        &self,
        namespace: &str,
        service: &str,
        filter: HealthStatusFilter,
    ) -> Result<Vec<ServiceInstance>, DiscoveryError> {
        let active: Vec<ServiceInstance> = self
            .service(namespace, service)?
            .active()
            .cloned()
            .collect();
        Ok(filter
            .apply(&active)
            .into_iter()
            .map(in_cloud_map_form)
            .collect())
    }

    /// Whether some grace period has ended and [`State::purge`] has work to do.
    fn needs_purge(&self, now: Instant) -> bool {
        self.next_expiry.is_some_and(|next| next <= now)
    }

    /// Ends grace periods that are over. Cheap until the earliest one ends.
    pub(crate) fn purge(&mut self, now: Instant) {
        if !self.needs_purge(now) {
            return;
        }
        let mut next_expiry: Option<Instant> = None;
        for zone in self.namespaces.values_mut() {
            for service in zone.services.values_mut() {
                service.instances.retain(|_, entry| entry.is_live(now));
                for until in service.instances.values().filter_map(|e| e.leaving_until) {
                    next_expiry = Some(next_expiry.map_or(until, |next| next.min(until)));
                }
            }
            zone.services
                .retain(|_, service| service.declared || !service.instances.is_empty());
        }
        self.next_expiry = next_expiry;
        self.bump();
    }

    /// Applies the config's `registry:` section; see [`EmbeddedRegistry::configure`].
    pub(crate) fn configure(&mut self, config: &scalegate_config::ServiceRegistry, now: Instant) {
        let mut wanted: BTreeMap<String, &scalegate_config::RegistryNamespace> = BTreeMap::new();
        for namespace in &config.namespaces {
            let key = canonical(&namespace.name);
            if Name::from_ascii(format!("{key}.")).is_err() || key.is_empty() {
                tracing::warn!(namespace = %namespace.name, "registry: not a DNS name; namespace skipped");
                continue;
            }
            wanted.insert(key, namespace);
        }
        let before = self.namespaces.len();
        self.namespaces.retain(|key, _| wanted.contains_key(key));
        let mut changed = before != self.namespaces.len();
        for (zone_key, declared) in wanted {
            if !self.namespaces.contains_key(&zone_key) {
                let Ok(apex) = Name::from_ascii(format!("{zone_key}.")) else {
                    continue;
                };
                self.namespaces
                    .insert(zone_key.clone(), Namespace::new(&zone_key, apex));
                changed = true;
            }
            let zone = self
                .namespaces
                .get_mut(&zone_key)
                .expect("namespace inserted above");
            changed |= zone.ttl != declared.ttl_seconds
                || zone.negative_ttl != declared.negative_ttl_seconds;
            zone.ttl = declared.ttl_seconds;
            zone.negative_ttl = declared.negative_ttl_seconds;

            let mut wanted_services: BTreeMap<String, &scalegate_config::RegistryService> =
                BTreeMap::new();
            for service in &declared.services {
                let key = canonical(&service.name);
                if let Err(error) = check_label("service name", &key) {
                    tracing::warn!(namespace = %zone_key, %error, "registry: service skipped");
                    continue;
                }
                wanted_services.insert(key, service);
            }
            // Config instances that the config no longer declares leave with the usual grace.
            let mut leaving = Vec::new();
            for (service_key, service) in zone.services.iter_mut() {
                let still = wanted_services.get(service_key);
                if still.is_none() {
                    changed |= service.declared || service.ttl_override.is_some();
                    service.declared = false;
                    service.ttl_override = None;
                }
                for (id_key, entry) in &service.instances {
                    let kept = still.is_some_and(|declared| {
                        declared
                            .instances
                            .iter()
                            .any(|instance| instance.id.eq_ignore_ascii_case(id_key))
                    });
                    if entry.source == InstanceSource::Config && entry.is_active() && !kept {
                        leaving.push((service_key.clone(), id_key.clone()));
                    }
                }
            }
            for (service_key, declared_service) in &wanted_services {
                let service = zone
                    .services
                    .entry(service_key.clone())
                    .or_insert_with(|| Service::new(service_key));
                changed |=
                    !service.declared || service.ttl_override != declared_service.ttl_seconds;
                service.declared = true;
                service.ttl_override = declared_service.ttl_seconds;
            }
            for (service_key, id_key) in leaving {
                self.start_leaving(&zone_key, &service_key, &id_key, now);
            }
            for (service_key, declared_service) in wanted_services {
                for declared_instance in &declared_service.instances {
                    let instance = ServiceInstance {
                        instance_id: declared_instance.id.clone(),
                        address: declared_instance.address,
                        port: declared_instance.port,
                        health: HealthStatus::Healthy,
                        attributes: declared_instance.attributes.clone(),
                    };
                    if let Err(error) =
                        self.register(&zone_key, &service_key, instance, InstanceSource::Config)
                    {
                        tracing::warn!(
                            namespace = %zone_key,
                            service = %service_key,
                            instance = %declared_instance.id,
                            %error,
                            "registry: config instance not registered"
                        );
                    }
                }
            }
            if let Some(zone) = self.namespaces.get_mut(&zone_key) {
                zone.services
                    .retain(|_, service| service.declared || !service.instances.is_empty());
            }
        }
        if changed {
            self.bump();
        }
    }

    /// The whole registry for the admin API, including instances in their grace period.
    pub(crate) fn view(&self, now: Instant) -> RegistryView {
        let namespaces = self
            .namespaces
            .values()
            .map(|zone| NamespaceView {
                name: zone.name.clone(),
                ttl_seconds: zone.ttl,
                negative_ttl_seconds: zone.negative_ttl,
                serial: self.serial,
                services: zone
                    .services
                    .values()
                    .map(|service| ServiceView {
                        name: service.name.clone(),
                        ttl_seconds: zone.service_ttl(service),
                        declared_in_config: service.declared,
                        instances: service
                            .instances
                            .values()
                            .filter(|entry| entry.is_live(now))
                            .map(|entry| InstanceView {
                                instance_id: entry.instance.instance_id.clone(),
                                address: entry.instance.address,
                                port: entry.instance.port,
                                health: entry.instance.health,
                                attributes: entry.instance.attributes.clone(),
                                source: entry.source,
                                deregistering: !entry.is_active(),
                                reachable_for_seconds: entry.leaving_until.map(|until| {
                                    until.saturating_duration_since(now).as_secs_f64().ceil() as u64
                                }),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        RegistryView { namespaces }
    }

    /// Sets `registry_instances` to the active instances of every service, per health, and
    /// removes the series of services that are gone, so the gauge never drifts.
    fn publish_gauges(&mut self, metrics: &DiscoveryMetrics) {
        let mut current = BTreeSet::new();
        for zone in self.namespaces.values() {
            for service in zone.services.values() {
                for health in HealthStatus::ALL {
                    let count = service.active().filter(|i| i.health == health).count();
                    metrics
                        .registry_instances
                        .with_label_values(&[
                            zone.name.as_str(),
                            service.name.as_str(),
                            health.as_str(),
                        ])
                        .set(i64::try_from(count).unwrap_or(i64::MAX));
                }
                current.insert((zone.name.clone(), service.name.clone()));
            }
        }
        for (zone, service) in self.published.difference(&current) {
            for health in HealthStatus::ALL {
                let _ = metrics.registry_instances.remove_label_values(&[
                    zone.as_str(),
                    service.as_str(),
                    health.as_str(),
                ]);
            }
        }
        self.published = current;
    }
}

/// The registry as `GET /api/registry` shows it: namespaces → services → instances.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryView {
    /// Served namespaces, by name.
    pub namespaces: Vec<NamespaceView>,
}

/// One namespace of [`RegistryView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamespaceView {
    /// The zone, lowercase.
    pub name: String,
    /// Default record TTL.
    pub ttl_seconds: u32,
    /// How long resolvers may cache NXDOMAIN (SOA minimum).
    pub negative_ttl_seconds: u32,
    /// The SOA serial: changes whenever anything in the registry does.
    pub serial: u32,
    /// Services, by name.
    pub services: Vec<ServiceView>,
}

/// One service of [`NamespaceView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    /// The service label, lowercase.
    pub name: String,
    /// The TTL its records carry.
    pub ttl_seconds: u32,
    /// Declared in the config (kept when empty) rather than created by a registration.
    pub declared_in_config: bool,
    /// Instances, including those in their deregistration grace period.
    pub instances: Vec<InstanceView>,
}

/// One instance of [`ServiceView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceView {
    /// The ID as registered.
    pub instance_id: String,
    /// Its A/AAAA address.
    pub address: IpAddr,
    /// Its SRV port.
    pub port: u16,
    /// Its health.
    pub health: HealthStatus,
    /// Custom attributes.
    pub attributes: BTreeMap<String, String>,
    /// Config or API.
    pub source: InstanceSource,
    /// Deregistered: out of service answers, still answering at its own name.
    pub deregistering: bool,
    /// For a deregistering instance: seconds until its own name stops answering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable_for_seconds: Option<u64>,
}

/// The embedded Cloud Map-style registry: what backends register tasks in and what the DNS
/// server answers from.
///
/// Methods are synchronous and short (one lock); the async [`Registry`] trait delegates to
/// them. Health changes take effect on the next answer: Cloud Map waits about 30 s after
/// `UpdateInstanceCustomHealthStatus`, which only delays recovery, so this registry does not.
pub struct EmbeddedRegistry {
    state: RwLock<State>,
    metrics: DiscoveryMetrics,
    /// Advances per DNS query, to rotate the multivalue window.
    rotation: AtomicUsize,
    /// The serial after every change, for in-process watchers (see
    /// [`EmbeddedRegistry::subscribe`]).
    changes: tokio::sync::watch::Sender<u32>,
}

impl std::fmt::Debug for EmbeddedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedRegistry")
            .field("namespaces", &self.namespaces())
            .finish_non_exhaustive()
    }
}

impl EmbeddedRegistry {
    /// An empty registry serving no namespace until [`EmbeddedRegistry::configure`].
    pub fn new(metrics: DiscoveryMetrics) -> Arc<EmbeddedRegistry> {
        Arc::new(EmbeddedRegistry {
            state: RwLock::new(State {
                serial: 1,
                ..State::default()
            }),
            metrics,
            rotation: AtomicUsize::new(0),
            changes: tokio::sync::watch::Sender::new(1),
        })
    }

    /// A receiver that sees the registry's serial change on every registration,
    /// deregistration, health change or reload, so a watcher in the same
    /// process reacts at once instead of polling DNS.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u32> {
        self.changes.subscribe()
    }

    fn write<T>(&self, change: impl FnOnce(&mut State, Instant) -> T) -> T {
        let now = Instant::now();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.purge(now);
        let result = change(&mut state, now);
        state.publish_gauges(&self.metrics);
        let serial = state.serial;
        drop(state);
        self.changes
            .send_if_modified(|seen| std::mem::replace(seen, serial) != serial);
        result
    }

    fn read<T>(&self, look: impl FnOnce(&State, Instant) -> T) -> T {
        let now = Instant::now();
        let needs_purge = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .needs_purge(now);
        if needs_purge {
            // Ending grace periods first keeps listings and gauges exact.
            self.write(|_, _| ());
        }
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        look(&state, now)
    }

    /// Applies `registry:` from the config (at start and on every reload): namespaces are
    /// added and removed (with all their instances), TTLs updated, and config-declared
    /// instances added, updated or removed (removed ones get the usual grace period).
    /// Instances registered through the API survive reloads while their namespace exists.
    pub fn configure(&self, config: &scalegate_config::ServiceRegistry) {
        self.write(|state, now| state.configure(config, now));
    }

    /// The served namespaces, lowercase.
    pub fn namespaces(&self) -> Vec<String> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.namespaces.keys().cloned().collect()
    }

    /// RegisterInstance: adds `instance` to `service` (created on first registration) of
    /// `namespace`, updates it when the ID exists (keeping its current health), or revives it
    /// when it is in its deregistration grace period.
    pub fn register_instance(
        &self,
        namespace: &str,
        service: &str,
        instance: ServiceInstance,
    ) -> Result<(), DiscoveryError> {
        self.write(|state, _| state.register(namespace, service, instance, InstanceSource::Api))
    }

    /// DeregisterInstance: the instance leaves service answers at once but its own name
    /// (`instance-id.service.namespace`) keeps answering for one TTL, the time returned, which
    /// the caller waits before stopping the task.
    pub fn deregister_instance(
        &self,
        namespace: &str,
        service: &str,
        instance_id: &str,
    ) -> Result<Deregistered, DiscoveryError> {
        self.write(|state, now| state.deregister(namespace, service, instance_id, now))
    }

    /// Sets an instance's health; the next DNS answer reflects it.
    pub fn set_instance_health(
        &self,
        namespace: &str,
        service: &str,
        instance_id: &str,
        health: HealthStatus,
    ) -> Result<(), DiscoveryError> {
        self.write(|state, _| state.set_health(namespace, service, instance_id, health))
    }

    /// DiscoverInstances: the service's registered instances passing `filter`, with
    /// `AWS_INSTANCE_IPV4`/`AWS_INSTANCE_IPV6` and `AWS_INSTANCE_PORT` filled in.
    pub fn discover_instances(
        &self,
        namespace: &str,
        service: &str,
        filter: HealthStatusFilter,
    ) -> Result<Vec<ServiceInstance>, DiscoveryError> {
        self.read(|state, _| state.discover(namespace, service, filter))
    }

    /// Everything, for the admin API.
    pub fn view(&self) -> RegistryView {
        self.read(|state, now| state.view(now))
    }

    /// Answers one DNS query from the current state (see `answer.rs`).
    pub(crate) fn respond(
        &self,
        request: &Metadata,
        queries: &[&Query],
        request_edns: Option<&Edns>,
        server_ip: Option<IpAddr>,
    ) -> Response {
        let context = AnswerContext {
            rotation: self.rotation.fetch_add(1, Ordering::Relaxed),
            now: Instant::now(),
            server_ip,
        };
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        answer::respond(&state, request, queries, request_edns, &context)
    }

    /// The metrics this registry and its DNS server count into.
    pub(crate) fn metrics(&self) -> &DiscoveryMetrics {
        &self.metrics
    }
}

impl Registry for EmbeddedRegistry {
    fn register(
        &self,
        namespace: &str,
        service: &str,
        instance: ServiceInstance,
    ) -> impl std::future::Future<Output = Result<(), DiscoveryError>> + Send {
        std::future::ready(self.register_instance(namespace, service, instance))
    }

    fn deregister(
        &self,
        namespace: &str,
        service: &str,
        instance_id: &str,
    ) -> impl std::future::Future<Output = Result<Deregistered, DiscoveryError>> + Send {
        std::future::ready(self.deregister_instance(namespace, service, instance_id))
    }

    fn set_health(
        &self,
        namespace: &str,
        service: &str,
        instance_id: &str,
        health: HealthStatus,
    ) -> impl std::future::Future<Output = Result<(), DiscoveryError>> + Send {
        std::future::ready(self.set_instance_health(namespace, service, instance_id, health))
    }

    fn discover(
        &self,
        namespace: &str,
        service: &str,
        filter: HealthStatusFilter,
    ) -> impl std::future::Future<Output = Result<Vec<ServiceInstance>, DiscoveryError>> + Send
    {
        std::future::ready(self.discover_instances(namespace, service, filter))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A config with namespace `scalegate.local` (TTL 5, negative TTL 7) and the given services.
    pub(crate) fn config(
        services: Vec<scalegate_config::RegistryService>,
    ) -> scalegate_config::ServiceRegistry {
        scalegate_config::ServiceRegistry {
            namespaces: vec![scalegate_config::RegistryNamespace {
                name: "scalegate.local".to_string(),
                ttl_seconds: 5,
                negative_ttl_seconds: 7,
                services,
            }],
            ..scalegate_config::ServiceRegistry::default()
        }
    }

    pub(crate) fn instance(id: &str, address: &str, port: u16) -> ServiceInstance {
        ServiceInstance {
            instance_id: id.to_string(),
            address: address.parse().expect("test address"),
            port,
            health: HealthStatus::Healthy,
            attributes: BTreeMap::new(),
        }
    }

    pub(crate) fn configured_state() -> State {
        let mut state = State::default();
        state.configure(&config(Vec::new()), Instant::now());
        state
    }

    fn ids(instances: &[ServiceInstance]) -> Vec<&str> {
        instances.iter().map(|i| i.instance_id.as_str()).collect()
    }

    #[test]
    fn registration_creates_the_service_and_discovery_fills_cloud_map_attributes() {
        let mut state = configured_state();
        let mut task = instance("task-1", "10.0.0.1", 8080);
        task.attributes
            .insert("ECS_SERVICE_NAME".into(), "web".into());
        state
            .register("Scalegate.Local.", "web", task, InstanceSource::Api)
            .unwrap();
        let found = state
            .discover("scalegate.local", "WEB", HealthStatusFilter::All)
            .unwrap();
        assert_eq!(ids(&found), ["task-1"]);
        let attributes = &found[0].attributes;
        assert_eq!(attributes[AWS_INSTANCE_IPV4], "10.0.0.1");
        assert_eq!(attributes[AWS_INSTANCE_PORT], "8080");
        assert_eq!(attributes["ECS_SERVICE_NAME"], "web");
        assert!(!attributes.contains_key(AWS_INSTANCE_IPV6));
    }

    #[test]
    fn unknown_namespace_service_and_instance_are_not_found() {
        let mut state = configured_state();
        let error = state
            .register(
                "nope.local",
                "web",
                instance("a", "10.0.0.1", 80),
                InstanceSource::Api,
            )
            .unwrap_err();
        assert!(
            matches!(
                error,
                DiscoveryError::NotFound {
                    kind: "namespace",
                    ..
                }
            ),
            "{error}"
        );
        let error = state
            .discover("scalegate.local", "web", HealthStatusFilter::All)
            .unwrap_err();
        assert!(
            matches!(
                error,
                DiscoveryError::NotFound {
                    kind: "service",
                    ..
                }
            ),
            "{error}"
        );
        state
            .register(
                "scalegate.local",
                "web",
                instance("a", "10.0.0.1", 80),
                InstanceSource::Api,
            )
            .unwrap();
        let error = state
            .deregister("scalegate.local", "web", "b", Instant::now())
            .unwrap_err();
        assert_eq!(error.to_string(), "no such instance `b`");
        let error = state
            .set_health("scalegate.local", "web", "b", HealthStatus::Unhealthy)
            .unwrap_err();
        assert!(matches!(
            error,
            DiscoveryError::NotFound {
                kind: "instance",
                ..
            }
        ));
    }

    #[test]
    fn validation_follows_cloud_map_limits() {
        let mut state = configured_state();
        let mut reject = |instance: ServiceInstance, needle: &str| {
            let error = state
                .register("scalegate.local", "web", instance, InstanceSource::Api)
                .unwrap_err();
            assert!(
                matches!(error, DiscoveryError::InvalidRegistration(_))
                    && error.to_string().contains(needle),
                "{error} should mention {needle}"
            );
        };
        reject(instance("a.b", "10.0.0.1", 80), "DNS label");
        reject(instance(&"x".repeat(64), "10.0.0.1", 80), "DNS label");
        reject(instance("_tcp", "10.0.0.1", 80), "reserved");
        reject(instance("a", "10.0.0.1", 0), "port");
        reject(instance("a", "0.0.0.0", 80), "unspecified");
        let mut many = instance("a", "10.0.0.1", 80);
        many.attributes = (0..31)
            .map(|n| (format!("k{n}"), "v".to_string()))
            .collect();
        reject(many, "31 custom attributes");
        let mut long_key = instance("a", "10.0.0.1", 80);
        long_key.attributes.insert("k".repeat(256), "v".into());
        reject(long_key, "the key is 256 characters");
        let mut long_value = instance("a", "10.0.0.1", 80);
        long_value.attributes.insert("k".into(), "v".repeat(1025));
        reject(long_value, "1025 characters");
        let mut big = instance("a", "10.0.0.1", 80);
        big.attributes = (0..6)
            .map(|n| (format!("k{n}"), "v".repeat(1000)))
            .collect();
        reject(big, "add up to");
        let mut bad_init = instance("a", "10.0.0.1", 80);
        bad_init
            .attributes
            .insert(AWS_INIT_HEALTH_STATUS.into(), "MAYBE".into());
        reject(bad_init, "`HEALTHY` or `UNHEALTHY`");
        let mut wrong_port = instance("a", "10.0.0.1", 80);
        wrong_port
            .attributes
            .insert(AWS_INSTANCE_PORT.into(), "81".into());
        reject(wrong_port, "disagrees");
        let error = state
            .register(
                "scalegate.local",
                "we.b",
                instance("a", "10.0.0.1", 80),
                InstanceSource::Api,
            )
            .unwrap_err();
        assert!(error.to_string().contains("service name"), "{error}");
    }

    #[test]
    fn at_most_a_thousand_instances_per_service() {
        let mut state = configured_state();
        for n in 0..MAX_INSTANCES_PER_SERVICE {
            let address = format!("10.0.{}.{}", n / 250, n % 250 + 1);
            state
                .register(
                    "scalegate.local",
                    "web",
                    instance(&format!("t{n}"), &address, 80),
                    InstanceSource::Api,
                )
                .unwrap();
        }
        let error = state
            .register(
                "scalegate.local",
                "web",
                instance("one-more", "10.9.0.1", 80),
                InstanceSource::Api,
            )
            .unwrap_err();
        assert!(error.to_string().contains("1000 instances"), "{error}");
        // Updating an existing one is still allowed.
        state
            .register(
                "scalegate.local",
                "web",
                instance("t0", "10.9.0.1", 81),
                InstanceSource::Api,
            )
            .unwrap();
    }

    #[test]
    fn init_health_attribute_applies_at_registration_and_updates_keep_health() {
        let mut state = configured_state();
        let mut task = instance("a", "10.0.0.1", 80);
        task.attributes
            .insert(AWS_INIT_HEALTH_STATUS.into(), "UNHEALTHY".into());
        state
            .register("scalegate.local", "web", task, InstanceSource::Api)
            .unwrap();
        let health = |state: &State| {
            state
                .discover("scalegate.local", "web", HealthStatusFilter::All)
                .unwrap()[0]
                .health
        };
        assert_eq!(health(&state), HealthStatus::Unhealthy);
        state
            .set_health("scalegate.local", "web", "A", HealthStatus::Healthy)
            .unwrap();
        assert_eq!(health(&state), HealthStatus::Healthy);
        let mut updated = instance("a", "10.0.0.2", 80);
        updated
            .attributes
            .insert(AWS_INIT_HEALTH_STATUS.into(), "UNHEALTHY".into());
        state
            .register("scalegate.local", "web", updated, InstanceSource::Api)
            .unwrap();
        assert_eq!(
            health(&state),
            HealthStatus::Healthy,
            "an update keeps the current health"
        );
    }

    #[test]
    fn health_filters_follow_cloud_map() {
        let mut state = configured_state();
        for (id, address) in [("a", "10.0.0.1"), ("b", "10.0.0.2")] {
            state
                .register(
                    "scalegate.local",
                    "web",
                    instance(id, address, 80),
                    InstanceSource::Api,
                )
                .unwrap();
        }
        state
            .set_health("scalegate.local", "web", "a", HealthStatus::Unhealthy)
            .unwrap();
        let with = |state: &State, filter| {
            ids(&state.discover("scalegate.local", "web", filter).unwrap())
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(with(&state, HealthStatusFilter::Healthy), ["b"]);
        assert_eq!(with(&state, HealthStatusFilter::Unhealthy), ["a"]);
        assert_eq!(with(&state, HealthStatusFilter::All), ["a", "b"]);
        assert_eq!(with(&state, HealthStatusFilter::HealthyOrElseAll), ["b"]);
        state
            .set_health("scalegate.local", "web", "b", HealthStatus::Unhealthy)
            .unwrap();
        assert_eq!(
            with(&state, HealthStatusFilter::Healthy),
            Vec::<String>::new()
        );
        assert_eq!(
            with(&state, HealthStatusFilter::HealthyOrElseAll),
            ["a", "b"]
        );
    }

    #[test]
    fn deregistration_keeps_the_instance_for_one_ttl_and_reregistration_revives_it() {
        let mut state = configured_state();
        let start = Instant::now();
        state
            .register(
                "scalegate.local",
                "web",
                instance("a", "10.0.0.1", 80),
                InstanceSource::Api,
            )
            .unwrap();
        let serial = state.serial;
        let gone = state
            .deregister("scalegate.local", "web", "a", start)
            .unwrap();
        assert_eq!(gone.keep_reachable_for, Duration::from_secs(5));
        assert!(state.serial != serial, "deregistration bumps the serial");
        assert!(state
            .discover("scalegate.local", "web", HealthStatusFilter::All)
            .unwrap()
            .is_empty());
        let view = state.view(start);
        let listed = &view.namespaces[0].services[0].instances[0];
        assert!(listed.deregistering);
        assert_eq!(listed.reachable_for_seconds, Some(5));
        // A retried deregistration reports the time left.
        let again = state
            .deregister(
                "scalegate.local",
                "web",
                "a",
                start + Duration::from_secs(2),
            )
            .unwrap();
        assert_eq!(again.keep_reachable_for, Duration::from_secs(3));
        // Revived during grace.
        state
            .register(
                "scalegate.local",
                "web",
                instance("a", "10.0.0.1", 80),
                InstanceSource::Api,
            )
            .unwrap();
        assert_eq!(
            state
                .discover("scalegate.local", "web", HealthStatusFilter::All)
                .unwrap()
                .len(),
            1
        );
        // Deregistered again, then the grace period ends: the service disappears with it.
        state
            .deregister("scalegate.local", "web", "a", start)
            .unwrap();
        state.purge(start + Duration::from_secs(4));
        assert_eq!(state.view(start).namespaces[0].services.len(), 1);
        state.purge(start + Duration::from_secs(5));
        assert!(state.view(start).namespaces[0].services.is_empty());
        let error = state
            .deregister(
                "scalegate.local",
                "web",
                "a",
                start + Duration::from_secs(5),
            )
            .unwrap_err();
        assert!(matches!(error, DiscoveryError::NotFound { .. }));
    }

    #[test]
    fn reload_adds_updates_and_removes_config_instances_but_keeps_api_ones() {
        let mut state = State::default();
        let declared = |instances: Vec<(&str, &str)>, ttl: Option<u32>| {
            config(vec![scalegate_config::RegistryService {
                name: "web".to_string(),
                ttl_seconds: ttl,
                instances: instances
                    .into_iter()
                    .map(|(id, address)| scalegate_config::RegistryInstance {
                        id: id.to_string(),
                        address: address.parse().unwrap(),
                        port: 80,
                        attributes: BTreeMap::new(),
                    })
                    .collect(),
            }])
        };
        let start = Instant::now();
        state.configure(
            &declared(vec![("c1", "10.0.0.1"), ("c2", "10.0.0.2")], Some(3)),
            start,
        );
        state
            .register(
                "scalegate.local",
                "web",
                instance("api", "10.0.0.9", 80),
                InstanceSource::Api,
            )
            .unwrap();
        state
            .register(
                "scalegate.local",
                "other",
                instance("o", "10.0.1.1", 80),
                InstanceSource::Api,
            )
            .unwrap();
        state.configure(&declared(vec![("c1", "10.0.0.11")], None), start);
        let view = state.view(start);
        let zone = &view.namespaces[0];
        assert_eq!(zone.services.len(), 2, "API-created service survives");
        let web = zone.services.iter().find(|s| s.name == "web").unwrap();
        assert_eq!(
            web.ttl_seconds, 5,
            "the namespace TTL once the override is gone"
        );
        let summary: Vec<(&str, String, bool)> = web
            .instances
            .iter()
            .map(|i| {
                (
                    i.instance_id.as_str(),
                    i.address.to_string(),
                    i.deregistering,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("api", "10.0.0.9".to_string(), false),
                ("c1", "10.0.0.11".to_string(), false),
                ("c2", "10.0.0.2".to_string(), true),
            ]
        );
        // Dropping the namespace drops everything in it.
        state.configure(&scalegate_config::ServiceRegistry::default(), start);
        assert!(state.namespaces.is_empty());
    }

    #[test]
    fn gauges_count_active_instances_and_vanish_with_their_service() {
        let metrics = DiscoveryMetrics::unregistered();
        let registry = EmbeddedRegistry::new(metrics.clone());
        registry.configure(&config(Vec::new()));
        let gauge = |health: &str| {
            metrics
                .registry_instances
                .with_label_values(&["scalegate.local", "web", health])
                .get()
        };
        registry
            .register_instance("scalegate.local", "web", instance("a", "10.0.0.1", 80))
            .unwrap();
        registry
            .register_instance("scalegate.local", "web", instance("b", "10.0.0.2", 80))
            .unwrap();
        registry
            .set_instance_health("scalegate.local", "web", "b", HealthStatus::Unhealthy)
            .unwrap();
        assert_eq!(
            (gauge("HEALTHY"), gauge("UNHEALTHY"), gauge("UNKNOWN")),
            (1, 1, 0)
        );
        registry
            .deregister_instance("scalegate.local", "web", "b")
            .unwrap();
        assert_eq!((gauge("HEALTHY"), gauge("UNHEALTHY")), (1, 0));
        registry.configure(&scalegate_config::ServiceRegistry::default());
        let families = {
            let registry = prometheus::Registry::new();
            registry
                .register(Box::new(metrics.registry_instances.clone()))
                .unwrap();
            registry.gather()
        };
        let series: usize = families
            .iter()
            .map(|family| family.get_metric().len())
            .sum();
        assert_eq!(series, 0, "series of removed services are gone");
    }

    #[tokio::test]
    async fn the_registry_trait_delegates_to_the_sync_methods() {
        let registry = EmbeddedRegistry::new(DiscoveryMetrics::unregistered());
        registry.configure(&config(Vec::new()));
        Registry::register(
            &*registry,
            "scalegate.local",
            "web",
            instance("a", "10.0.0.1", 80),
        )
        .await
        .unwrap();
        Registry::set_health(
            &*registry,
            "scalegate.local",
            "web",
            "a",
            HealthStatus::Unhealthy,
        )
        .await
        .unwrap();
        let found = Registry::discover(
            &*registry,
            "scalegate.local",
            "web",
            HealthStatusFilter::Unhealthy,
        )
        .await
        .unwrap();
        assert_eq!(found.len(), 1);
        let gone = Registry::deregister(&*registry, "scalegate.local", "web", "a")
            .await
            .unwrap();
        assert_eq!(gone.keep_reachable_for, Duration::from_secs(5));
        assert_eq!(registry.namespaces(), ["scalegate.local"]);
    }
}
