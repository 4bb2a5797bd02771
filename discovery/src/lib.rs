//! scalegate's service discovery: where a target group's targets come from.
//!
//! This crate owns two things, and nothing else touches DNS:
//!
//! - **Watching** ([`watch`]): a target group names a source (a file, an A/AAAA name plus a
//!   port, or an SRV name); [`watch::spawn`] runs it and the group's [`watch::Watch`] yields
//!   [`TargetUpdate`]s, in the style of linkerd2-proxy's discovery. The target group never sees
//!   DNS answers, only additions and removals, so a new target enters as `initial` and is
//!   health-checked and a vanished one goes `draining`; it is never cut mid-request. Refresh
//!   follows the records' TTL within [`TtlBounds`]; failures and NXDOMAIN answers go through
//!   the [`FailurePolicy`], so an outage of DNS is not an outage of the service.
//! - **Registering** ([`registry`]): an embedded, authoritative Cloud Map-style registry where
//!   backends register the tasks they start, so the same DNS-watching path works on one machine,
//!   under Docker's embedded DNS and against a Cloud Map private namespace on AWS.
//!
//! Data flows one way: config → **discovery** → target groups → proxy → metrics → autoscaler →
//! backend → **discovery** (the backend registers tasks here).
//!
//! A name inside the process's own registry is watched in-process (no 8-record DNS limit, no
//! polling); every other name goes through hickory-resolver without a cache, files through
//! `notify`. The registry's DNS server is hickory-server over UDP and TCP
//! ([`registry::serve_dns`]).
#![forbid(unsafe_code)]

pub mod metrics;
pub mod registry;
pub mod source;
pub mod watch;

use std::collections::BTreeSet;
use std::net::SocketAddr;

pub use metrics::DiscoveryMetrics;
pub use source::{FailurePolicy, ResolverSpec, SourceSpec, TtlBounds};
pub use watch::{ResolutionResult, Watch, WatchSpec, WatchStatus};

/// One change to a target group's membership.
///
/// Updates, not snapshots: the target group owns each target's health state machine, and only a
/// delta tells it which targets are new (→ `initial`) and which have left (→ `draining`) without
/// resetting the health of those that stayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetUpdate {
    /// These addresses joined the source's answer; register them with the target group.
    Add(Vec<SocketAddr>),
    /// These addresses left the source's answer; deregister (drain) them.
    Remove(Vec<SocketAddr>),
}

/// Why discovery could not start or a registry call was refused.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The name is not something the source can watch (bad SRV form, empty name, ...).
    #[error("invalid discovery name `{name}`: {reason}")]
    InvalidName {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A targets file could not be read or parsed.
    #[error("targets file {path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong, with a line number where there is one.
        reason: String,
    },
    /// The resolver could not be built (bad name-server address, unreadable resolv.conf).
    #[error("resolver: {0}")]
    Resolver(String),
    /// A registry call named a namespace or service the registry does not serve.
    #[error("no such {kind} `{name}`")]
    NotFound {
        /// `namespace`, `service` or `instance`.
        kind: &'static str,
        /// The name looked up.
        name: String,
    },
    /// A registry call was refused by Cloud Map's own limits (instance ID length, attribute count).
    #[error("invalid registration: {0}")]
    InvalidRegistration(String),
    /// The registry's DNS server could not listen (address taken, not local, no permission).
    #[error("cannot serve DNS on {address}: {reason}")]
    Serve {
        /// The configured address.
        address: SocketAddr,
        /// What failed, with the transport (UDP or TCP).
        reason: String,
    },
}

/// The updates that turn the membership `previous` into `current`: removals first, then
/// additions, each sorted, and nothing for an unchanged set.
///
/// Every watcher (file, A/AAAA, SRV) ends with a set of addresses; this is the one place that
/// turns two sets into the deltas the target group consumes.
pub fn diff_targets(
    previous: &BTreeSet<SocketAddr>,
    current: &BTreeSet<SocketAddr>,
) -> Vec<TargetUpdate> {
    let removed: Vec<SocketAddr> = previous.difference(current).copied().collect();
    let added: Vec<SocketAddr> = current.difference(previous).copied().collect();
    let mut updates = Vec::with_capacity(2);
    if !removed.is_empty() {
        updates.push(TargetUpdate::Remove(removed));
    }
    if !added.is_empty() {
        updates.push(TargetUpdate::Add(added));
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addrs: &[&str]) -> BTreeSet<SocketAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn unchanged_membership_yields_nothing() {
        let s = set(&["10.0.0.1:80", "10.0.0.2:80"]);
        assert!(diff_targets(&s, &s).is_empty());
    }

    #[test]
    fn first_answer_is_a_single_add() {
        let updates = diff_targets(&BTreeSet::new(), &set(&["10.0.0.2:80", "10.0.0.1:80"]));
        assert_eq!(
            updates,
            vec![TargetUpdate::Add(vec![
                "10.0.0.1:80".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap()
            ])]
        );
    }

    #[test]
    fn removals_come_before_additions() {
        let updates = diff_targets(
            &set(&["10.0.0.1:80", "10.0.0.2:80"]),
            &set(&["10.0.0.2:80", "10.0.0.3:80"]),
        );
        assert_eq!(
            updates,
            vec![
                TargetUpdate::Remove(vec!["10.0.0.1:80".parse().unwrap()]),
                TargetUpdate::Add(vec!["10.0.0.3:80".parse().unwrap()]),
            ]
        );
    }

    #[test]
    fn same_address_on_another_port_is_a_different_target() {
        let updates = diff_targets(&set(&["10.0.0.1:80"]), &set(&["10.0.0.1:81"]));
        assert_eq!(updates.len(), 2);
    }
}
