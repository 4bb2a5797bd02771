//! Task definitions and services, as ECS shapes them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A task definition revision, `family:N`.
///
/// Task definitions are immutable: changing one makes revision N+1 and keeps N, so a service
/// always names exactly what its tasks run and a deployment is a move from one revision to another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskDefinitionRevision {
    /// The family name, shared by all revisions.
    pub family: String,
    /// The revision number, from 1.
    pub revision: u32,
}

impl fmt::Display for TaskDefinitionRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.family, self.revision)
    }
}

/// Why a `family:N` string is not a revision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a task definition revision; expected `family:N` with N ≥ 1")]
pub struct InvalidRevision(pub String);

impl FromStr for TaskDefinitionRevision {
    type Err = InvalidRevision;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidRevision(text.to_string());
        let (family, revision) = text.rsplit_once(':').ok_or_else(invalid)?;
        let valid_family = !family.is_empty()
            && family.len() <= 255
            && family
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        // Digits only: `u32::from_str` would also accept a leading `+`.
        if !valid_family || !revision.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        match revision.parse::<u32>() {
            Ok(revision) if revision >= 1 => Ok(TaskDefinitionRevision {
                family: family.to_string(),
                revision,
            }),
            _ => Err(invalid()),
        }
    }
}

/// Which port a task listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerPort {
    /// A fixed port (one task per port on one host).
    Fixed(u16),
    /// Assigned by scalegate and passed in `$PORT`, like ECS dynamic port mapping.
    Dynamic,
}

/// What a task runs: one revision of a family. Backend-specific parts (image for Docker,
/// nothing for AWS, which owns its own task definitions) are added by their issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinition {
    /// `family:N`.
    pub revision: TaskDefinitionRevision,
    /// Program to run (local backend) or the image's entrypoint override (Docker).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment, in addition to the task metadata scalegate injects.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub working_dir: Option<PathBuf>,
    /// Reserved CPU, 1024 units = 1 vCPU; CPU utilisation is measured against it.
    pub cpu_units: u32,
    /// Reserved memory in MiB; memory utilisation is measured against it.
    pub memory_mib: u32,
    /// The port it serves on.
    pub container_port: ContainerPort,
    /// Time between SIGTERM and SIGKILL. Default 30 s, as ECS.
    pub stop_timeout: Duration,
}

/// Bounds on tasks during a deployment or a replacement (`deploymentConfiguration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentConfiguration {
    /// Healthy running tasks may not fall below `ceil(desired × min / 100)`. Default 100.
    pub minimum_healthy_percent: u32,
    /// Pending + running (+ stopping) tasks may not exceed `floor(desired × max / 100)`.
    /// Default 200.
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

impl DeploymentConfiguration {
    /// The fewest healthy tasks the scheduler may leave running: `ceil(desired × min / 100)`.
    pub fn minimum_healthy_tasks(&self, desired: u32) -> u32 {
        (u64::from(desired) * u64::from(self.minimum_healthy_percent)).div_ceil(100) as u32
    }

    /// The most tasks that may exist at once: `floor(desired × max / 100)`.
    pub fn maximum_tasks(&self, desired: u32) -> u32 {
        (u64::from(desired) * u64::from(self.maximum_percent) / 100) as u32
    }
}

/// A service: keep `desired_count` tasks of one revision running behind its target groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Unique service name.
    pub name: String,
    /// The revision its tasks run; a change starts a rolling deployment.
    pub task_definition: TaskDefinitionRevision,
    /// How many tasks it should run; the autoscaler changes this.
    pub desired_count: u32,
    /// Deployment bounds.
    pub deployment: DeploymentConfiguration,
    /// Time after a task starts during which failed health checks do not get it replaced.
    /// Default 0, as ECS.
    pub health_check_grace_period: Duration,
    /// Target groups its tasks register into (ECS allows up to 5).
    pub target_groups: Vec<String>,
    /// The discovery registry name (`service.namespace`) its tasks register under, if any.
    pub dns_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_round_trips() {
        let revision: TaskDefinitionRevision = "web:12".parse().unwrap();
        assert_eq!(revision.family, "web");
        assert_eq!(revision.revision, 12);
        assert_eq!(revision.to_string(), "web:12");
    }

    #[test]
    fn revision_rejects_malformed_text() {
        for bad in [
            "web", "web:", ":1", "web:0", "web:+1", "we b:1", "web:1.5", "web:x",
        ] {
            assert!(
                bad.parse::<TaskDefinitionRevision>().is_err(),
                "`{bad}` should be rejected"
            );
        }
    }

    #[test]
    fn deployment_bounds_match_the_ecs_guide_examples() {
        let bounds = |min, max| DeploymentConfiguration {
            minimum_healthy_percent: min,
            maximum_percent: max,
        };
        // desired 4, min 50 → may stop 2 first.
        assert_eq!(bounds(50, 200).minimum_healthy_tasks(4), 2);
        // desired 2, min 75 → ceil(1.5) = 2, cannot stop any.
        assert_eq!(bounds(75, 200).minimum_healthy_tasks(2), 2);
        // desired 4, max 200 → may start 4 first.
        assert_eq!(bounds(100, 200).maximum_tasks(4), 8);
        // desired 3, max 125 → floor(3.75) = 3, cannot start any.
        assert_eq!(bounds(100, 125).maximum_tasks(3), 3);
    }
}
