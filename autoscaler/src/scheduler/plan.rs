//! The service scheduler's decisions as a pure function: given a service's spec and its tasks
//! now, which tasks to start and which to stop, and why.
//!
//! The rules are ECS's (`alb-ecs-semantics.md` §6.2): keep `desired` tasks of the service's
//! revision healthy; during a deployment or a replacement never exceed
//! `floor(desired × maximum_percent / 100)` tasks and never leave fewer than
//! `ceil(desired × minimum_healthy_percent / 100)` healthy ones; replace an unhealthy task by
//! starting its replacement first (ECS since October 2023), and only when there is no room for
//! one, stop unhealthy tasks one at a time; ignore health checks for the grace period after a
//! task starts. Being pure, every rule is tested against hand-worked cases; the scheduler loop
//! only carries the plan out.

use std::time::{Duration, Instant};

use crate::service::{DeploymentConfiguration, TaskDefinitionRevision};
use crate::task::{StopReason, TaskId, TaskState};

/// What the load balancer (or, without one, the process) says of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskHealth {
    /// Not judged yet (target `initial`, or not registered yet).
    Unknown,
    /// Every target group reports it healthy.
    Healthy,
    /// Some target group reports it unhealthy.
    Unhealthy,
}

/// One task as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// The task.
    pub id: TaskId,
    /// The revision it runs.
    pub revision: TaskDefinitionRevision,
    /// Its lifecycle state.
    pub state: TaskState,
    /// When it started (entered PENDING); the grace period counts from here.
    pub started_at: Instant,
    /// Its health.
    pub health: TaskHealth,
}

impl TaskView {
    fn is_live(&self) -> bool {
        !self.state.is_stopping()
    }

    /// Counts toward `minimumHealthyPercent`: RUNNING and healthy (with a load balancer) or
    /// merely RUNNING (without one).
    fn is_healthy(&self, has_load_balancer: bool) -> bool {
        self.state == TaskState::Running
            && (!has_load_balancer || self.health == TaskHealth::Healthy)
    }
}

/// What the service asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Tasks wanted.
    pub desired: u32,
    /// The revision tasks should run; others are replaced (a deployment).
    pub revision: TaskDefinitionRevision,
    /// Bounds during deployments and replacements.
    pub deployment: DeploymentConfiguration,
    /// Health checks are ignored for this long after a task starts.
    pub health_check_grace_period: Duration,
    /// Whether tasks sit behind target groups (health then means target health).
    pub has_load_balancer: bool,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Tasks to start, of the service's revision.
    pub start: u32,
    /// Tasks to stop, with why.
    pub stop: Vec<(TaskId, StopReason)>,
    /// What held the scheduler back, in ECS's service-event words, when something did.
    pub blocked: Option<String>,
}

/// The scheduler's decision for `spec` over `tasks` at `now`.
pub fn plan(spec: &ServiceSpec, tasks: &[TaskView], now: Instant) -> Plan {
    let live: Vec<&TaskView> = tasks.iter().filter(|task| task.is_live()).collect();
    let max_tasks = spec
        .deployment
        .maximum_tasks(spec.desired)
        .max(spec.desired);
    let min_healthy = spec.deployment.minimum_healthy_tasks(spec.desired);
    let in_grace =
        |task: &TaskView| now.duration_since(task.started_at) < spec.health_check_grace_period;
    let failing = |task: &TaskView| {
        task.state == TaskState::Running && task.health == TaskHealth::Unhealthy && !in_grace(task)
    };
    let current = |task: &TaskView| task.revision == spec.revision;

    // Tasks that will make up the service once things settle: current revision, not failing.
    let keepers = live
        .iter()
        .filter(|task| current(task) && !failing(task))
        .count() as u32;
    // Every task that exists counts toward the maximum, stopping ones included (ECS-DG).
    let existing = tasks
        .iter()
        .filter(|task| task.state.counts_toward_maximum())
        .count() as u32;
    let room = max_tasks.saturating_sub(existing);
    let wanted = spec.desired.saturating_sub(keepers);
    let mut result = Plan {
        start: wanted.min(room),
        ..Plan::default()
    };
    if result.start < wanted {
        result.blocked = Some(format!(
            "unable to start {} task(s): {existing} exist and maximumPercent {} allows {max_tasks}",
            wanted - result.start,
            spec.deployment.maximum_percent
        ));
    }

    let mut healthy = live
        .iter()
        .filter(|task| task.is_healthy(spec.has_load_balancer))
        .count() as u32;
    let healthy_keepers = live
        .iter()
        .filter(|task| current(task) && task.is_healthy(spec.has_load_balancer))
        .count() as u32;

    // 1. Failing tasks: stop one once its replacement is healthy (healthy keepers reach the
    //    desired count), or when no replacement can be started at all (stop one at a time).
    let mut failing_tasks: Vec<&TaskView> =
        live.iter().copied().filter(|task| failing(task)).collect();
    failing_tasks.sort_by_key(|task| task.started_at);
    let replacement_ready = healthy_keepers >= spec.desired;
    let no_room = room == 0 && result.start < wanted;
    for (index, task) in failing_tasks.iter().enumerate() {
        if replacement_ready || (no_room && index == 0) {
            result
                .stop
                .push((task.id.clone(), StopReason::FailedHealthChecks));
        }
    }

    // 2. Old revisions (a deployment): every one goes, a healthy one only while the healthy
    //    count stays at or above the minimum.
    let mut old: Vec<&TaskView> = live
        .iter()
        .copied()
        .filter(|task| !current(task) && !failing(task))
        .collect();
    // Those not carrying traffic first: stopping them costs no healthy capacity.
    old.sort_by_key(|task| (task.is_healthy(spec.has_load_balancer), task.started_at));
    for task in old {
        if task.is_healthy(spec.has_load_balancer) {
            if healthy <= min_healthy {
                result.blocked.get_or_insert_with(|| {
                    format!(
                        "unable to stop tasks of the previous revision: {healthy} healthy and \
                         minimumHealthyPercent {} needs {min_healthy}",
                        spec.deployment.minimum_healthy_percent
                    )
                });
                break;
            }
            healthy -= 1;
        }
        result
            .stop
            .push((task.id.clone(), StopReason::DeploymentReplaced));
    }

    // 3. Scale-in: more current-revision keepers than desired.
    let surplus = keepers.saturating_sub(spec.desired);
    if surplus > 0 {
        let mut candidates: Vec<&TaskView> = live
            .iter()
            .copied()
            .filter(|task| current(task) && !failing(task))
            .collect();
        // ECS (no placement strategy, one zone): any task may go. Prefer those that carry no
        // traffic yet, then the newest, so warm tasks keep serving.
        candidates.sort_by_key(|task| {
            (
                task.is_healthy(spec.has_load_balancer),
                std::cmp::Reverse(task.started_at),
            )
        });
        for task in candidates.into_iter().take(surplus as usize) {
            let rule = if task.is_healthy(spec.has_load_balancer) {
                "newest healthy task first (one availability zone, so spreading does not choose)"
            } else {
                "tasks not yet healthy first"
            };
            result.stop.push((
                task.id.clone(),
                StopReason::ScaleIn {
                    rule: rule.to_string(),
                },
            ));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_OFFSET: Duration = Duration::from_secs(3600);

    struct Fixture {
        now: Instant,
        spec: ServiceSpec,
        tasks: Vec<TaskView>,
    }

    impl Fixture {
        fn new(desired: u32, minimum: u32, maximum: u32) -> Fixture {
            Fixture {
                now: Instant::now() + NOW_OFFSET,
                spec: ServiceSpec {
                    desired,
                    revision: "web:2".parse().unwrap(),
                    deployment: DeploymentConfiguration {
                        minimum_healthy_percent: minimum,
                        maximum_percent: maximum,
                    },
                    health_check_grace_period: Duration::from_secs(60),
                    has_load_balancer: true,
                },
                tasks: Vec::new(),
            }
        }

        /// Adds a task started `age` seconds before now.
        fn task(
            &mut self,
            id: &str,
            revision: &str,
            state: TaskState,
            health: TaskHealth,
            age: u64,
        ) {
            self.tasks.push(TaskView {
                id: TaskId(id.to_string()),
                revision: revision.parse().unwrap(),
                state,
                started_at: self.now - Duration::from_secs(age),
                health,
            });
        }

        fn healthy(&mut self, id: &str, revision: &str, age: u64) {
            self.task(id, revision, TaskState::Running, TaskHealth::Healthy, age);
        }

        fn plan(&self) -> Plan {
            plan(&self.spec, &self.tasks, self.now)
        }
    }

    fn stopped(plan: &Plan) -> Vec<(&str, &str)> {
        plan.stop
            .iter()
            .map(|(id, reason)| (id.0.as_str(), reason.stop_code()))
            .collect()
    }

    #[test]
    fn steady_state_does_nothing() {
        let mut f = Fixture::new(2, 100, 200);
        f.healthy("a", "web:2", 100);
        f.healthy("b", "web:2", 100);
        assert_eq!(f.plan(), Plan::default());
    }

    #[test]
    fn scale_out_starts_the_difference() {
        let mut f = Fixture::new(5, 100, 200);
        f.healthy("a", "web:2", 100);
        assert_eq!(f.plan().start, 4);
    }

    #[test]
    fn a_crashed_task_is_started_again() {
        let mut f = Fixture::new(2, 100, 200);
        f.healthy("a", "web:2", 100);
        f.task("b", "web:2", TaskState::Stopped, TaskHealth::Unknown, 100);
        assert_eq!(f.plan().start, 1);
    }

    #[test]
    fn scale_in_stops_tasks_not_yet_healthy_then_the_newest() {
        let mut f = Fixture::new(2, 100, 200);
        f.healthy("old", "web:2", 300);
        f.healthy("young", "web:2", 100);
        f.healthy("newest", "web:2", 10);
        f.task(
            "pending",
            "web:2",
            TaskState::Pending,
            TaskHealth::Unknown,
            1,
        );
        let plan = f.plan();
        assert_eq!(plan.start, 0);
        let ids: Vec<&str> = plan.stop.iter().map(|(id, _)| id.0.as_str()).collect();
        assert_eq!(ids, ["pending", "newest"]);
        match &plan.stop[1].1 {
            StopReason::ScaleIn { rule } => assert!(rule.contains("newest"), "{rule}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stopping_tasks_count_toward_the_maximum_but_not_the_service() {
        let mut f = Fixture::new(2, 100, 100);
        f.healthy("a", "web:2", 100);
        f.task(
            "b",
            "web:2",
            TaskState::Deactivating,
            TaskHealth::Healthy,
            100,
        );
        let plan = f.plan();
        assert_eq!(plan.start, 0, "2 exist and the maximum is 2");
        assert!(plan.blocked.unwrap().contains("maximumPercent 100"));
    }

    #[test]
    fn deployment_with_defaults_starts_all_new_then_stops_old_as_new_turn_healthy() {
        // desired 2, min 100, max 200: start 2 new at once, stop none until new ones are healthy.
        let mut f = Fixture::new(2, 100, 200);
        f.healthy("a", "web:1", 500);
        f.healthy("b", "web:1", 500);
        let plan = f.plan();
        assert_eq!((plan.start, plan.stop.len()), (2, 0));
        assert!(plan
            .blocked
            .unwrap()
            .contains("minimumHealthyPercent 100 needs 2"));

        f.task("n1", "web:2", TaskState::Running, TaskHealth::Healthy, 30);
        f.task(
            "n2",
            "web:2",
            TaskState::Activating,
            TaskHealth::Unknown,
            30,
        );
        let plan = f.plan();
        assert_eq!(plan.start, 0);
        assert_eq!(stopped(&plan), [("a", "ServiceSchedulerInitiated")]);
        assert_eq!(plan.stop[0].1, StopReason::DeploymentReplaced);
    }

    #[test]
    fn deployment_with_minimum_50_stops_half_first() {
        // ECS-DG: desired 4, min 50 → may stop 2 first.
        let mut f = Fixture::new(4, 50, 100);
        for id in ["a", "b", "c", "d"] {
            f.healthy(id, "web:1", 500);
        }
        let plan = f.plan();
        assert_eq!(plan.start, 0, "max 100: no room before stopping");
        assert_eq!(plan.stop.len(), 2);
    }

    #[test]
    fn a_deployment_that_can_neither_start_nor_stop_says_so() {
        // desired 2, min 100, max 100: ECS's "unable to stop or start tasks".
        let mut f = Fixture::new(2, 100, 100);
        f.healthy("a", "web:1", 500);
        f.healthy("b", "web:1", 500);
        let plan = f.plan();
        assert_eq!((plan.start, plan.stop.len()), (0, 0));
        assert!(plan.blocked.is_some());
    }

    #[test]
    fn an_unhealthy_task_is_replaced_before_it_is_stopped() {
        let mut f = Fixture::new(2, 100, 200);
        f.healthy("a", "web:2", 500);
        f.task("b", "web:2", TaskState::Running, TaskHealth::Unhealthy, 500);
        let plan = f.plan();
        assert_eq!((plan.start, plan.stop.len()), (1, 0), "replacement first");

        f.healthy("c", "web:2", 30);
        let plan = f.plan();
        assert_eq!(plan.start, 0);
        assert_eq!(stopped(&plan), [("b", "ServiceSchedulerInitiated")]);
        assert_eq!(plan.stop[0].1, StopReason::FailedHealthChecks);
    }

    #[test]
    fn without_room_unhealthy_tasks_are_stopped_one_at_a_time() {
        let mut f = Fixture::new(3, 100, 100);
        f.healthy("a", "web:2", 500);
        f.task("b", "web:2", TaskState::Running, TaskHealth::Unhealthy, 500);
        f.task("c", "web:2", TaskState::Running, TaskHealth::Unhealthy, 400);
        let plan = f.plan();
        assert_eq!(plan.start, 0);
        assert_eq!(stopped(&plan).len(), 1);
        assert_eq!(plan.stop[0].0 .0, "b", "the oldest first");
    }

    #[test]
    fn health_is_ignored_during_the_grace_period() {
        let mut f = Fixture::new(1, 100, 200);
        f.task("a", "web:2", TaskState::Running, TaskHealth::Unhealthy, 30);
        assert_eq!(f.plan(), Plan::default());
        f.tasks.clear();
        f.task("a", "web:2", TaskState::Running, TaskHealth::Unhealthy, 61);
        assert_eq!(f.plan().start, 1);
    }

    #[test]
    fn without_a_load_balancer_running_is_healthy() {
        let mut f = Fixture::new(1, 100, 200);
        f.spec.has_load_balancer = false;
        f.task("a", "web:1", TaskState::Running, TaskHealth::Unknown, 500);
        f.task("n", "web:2", TaskState::Running, TaskHealth::Unknown, 5);
        let plan = f.plan();
        assert_eq!(stopped(&plan), [("a", "ServiceSchedulerInitiated")]);
    }
}
