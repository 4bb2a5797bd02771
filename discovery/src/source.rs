//! What a target group watches, and how a watch treats time and failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::registry::EmbeddedRegistry;

/// Where a target group's targets come from.
///
/// Static targets already live in the config (`targets:`); the other sources are what issue 4
/// adds. A source names *what* to watch; the watcher decides *when* (from TTLs) and applies the
/// [`FailurePolicy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A YAML or JSON list of targets, re-read when the file changes.
    File(PathBuf),
    /// A/AAAA records of `name`, each address with `port`: Docker's embedded DNS, Cloud Map
    /// `awsvpc` services, or the embedded registry's `name.namespace`.
    Address {
        /// The DNS name.
        name: String,
        /// Port to pair with every address (A records carry none).
        port: u16,
    },
    /// SRV records of `_service._tcp.name`: each record's port and target host (resolved through
    /// the additional section or a follow-up A/AAAA query). Cloud Map `bridge`/`host` services
    /// publish only SRV.
    Srv {
        /// The full SRV name, `_service._tcp.name`.
        name: String,
    },
}

/// Which name servers to ask.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ResolverSpec {
    /// The system's resolver configuration (`/etc/resolv.conf`).
    #[default]
    System,
    /// These servers, UDP with TCP fallback on truncation.
    NameServers(Vec<SocketAddr>),
    /// The embedded registry of this process, asked directly (no 8-record limit, no polling).
    Embedded(RegistryLink),
}

/// The embedded registry and the namespace a watched name lies in.
#[derive(Clone)]
pub struct RegistryLink {
    /// The namespace, as configured.
    pub namespace: String,
    /// The registry serving it.
    pub registry: Arc<EmbeddedRegistry>,
}

impl PartialEq for RegistryLink {
    fn eq(&self, other: &Self) -> bool {
        self.namespace == other.namespace && Arc::ptr_eq(&self.registry, &other.registry)
    }
}

impl Eq for RegistryLink {}

impl std::fmt::Debug for RegistryLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLink")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Bounds on how often a DNS source re-resolves.
///
/// Refresh follows the records' TTL, but a TTL of 0 would make a watcher spin and a TTL of a day
/// would hide a scale-out for a day, so the TTL is clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlBounds {
    /// Shortest interval between two queries.
    pub min: Duration,
    /// Longest interval between two queries.
    pub max: Duration,
}

impl Default for TtlBounds {
    /// 1 s to 300 s: fast enough to follow a scale-out, bounded for zero-TTL records.
    fn default() -> Self {
        TtlBounds {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

/// The longest wait between two retries of a failing source, whatever `max` says: a resolver
/// that is back should be noticed within half a minute, not after a five-minute refresh.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

impl TtlBounds {
    /// When to query again after an answer whose lowest record TTL is `ttl`.
    pub fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min, self.max.max(self.min))
    }

    /// When to retry after the `failures`-th failure in a row (1 for the first): `min`, then
    /// doubling, capped at `max` and at [`MAX_RETRY_BACKOFF`], but never below `min` (which
    /// is a promise about query rate, so it wins over the cap).
    pub fn backoff(&self, failures: u32) -> Duration {
        let cap = self.max.min(MAX_RETRY_BACKOFF).max(self.min);
        let doublings = failures.saturating_sub(1).min(31);
        self.min.saturating_mul(1 << doublings).min(cap)
    }
}

/// What a DNS source does when an answer is missing or suspicious.
///
/// A resolver outage must not empty a target group: losing DNS for a minute should not become
/// an outage of the service behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// On timeout, SERVFAIL or an empty answer during an outage, keep the last known good
    /// targets (`true`, the default) rather than remove them.
    pub keep_last_known: bool,
    /// How many consecutive NXDOMAIN (or empty NOERROR) answers, for a name that had targets,
    /// before its targets are removed; one bad answer must not empty a group. Default 3.
    pub nxdomain_removal_after: u32,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            keep_last_known: true,
            nxdomain_removal_after: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_clamped_into_bounds() {
        let bounds = TtlBounds::default();
        assert_eq!(bounds.clamp(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            bounds.clamp(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert_eq!(
            bounds.clamp(Duration::from_secs(86_400)),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn backoff_doubles_from_min_up_to_the_cap() {
        let bounds = TtlBounds {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        };
        let waits: Vec<u64> = (1..=7).map(|n| bounds.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(bounds.backoff(0), Duration::from_secs(1));
        assert_eq!(bounds.backoff(u32::MAX), MAX_RETRY_BACKOFF);
        let short_max = TtlBounds {
            min: Duration::from_secs(1),
            max: Duration::from_secs(5),
        };
        assert_eq!(short_max.backoff(10), Duration::from_secs(5));
        let long_min = TtlBounds {
            min: Duration::from_secs(60),
            max: Duration::from_secs(300),
        };
        assert_eq!(long_min.backoff(3), Duration::from_secs(60));
    }

    #[test]
    fn inverted_bounds_do_not_panic() {
        let bounds = TtlBounds {
            min: Duration::from_secs(10),
            max: Duration::from_secs(5),
        };
        assert_eq!(
            bounds.clamp(Duration::from_secs(1)),
            Duration::from_secs(10)
        );
    }
}
