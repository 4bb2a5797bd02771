//! scalegate's autoscaler: ECS-style services and the Application Auto Scaling policies that size
//! them.
//!
//! This crate owns the control loop at the end of scalegate's one-way data flow: config →
//! discovery → target groups → proxy → metrics → **autoscaler → backend** → discovery. It reads
//! metrics, decides a desired count the way Application Auto Scaling would, and hands it to a
//! [`Backend`], which keeps that many tasks running and registers them for discovery.
//!
//! - [`task`]: tasks and their ECS lifecycle ([`TaskState`], [`StopReason`]).
//! - [`service`]: [`TaskDefinition`] revisions (`family:N`), [`Service`] and its deployment limits.
//! - [`backend`]: the [`Backend`] trait (local processes, Docker, AWS ECS) and the task-level
//!   [`TaskRuntime`] that scalegate's own scheduler drives for local processes and Docker.
//! - [`scaling`]: [`ScalableTarget`] and [`ScalingPolicy`] (target tracking, step, scheduled),
//!   with the capacity arithmetic AWS documents.
//! - [`activity`]: [`ScalingActivity`], the record of every decision, as
//!   `DescribeScalingActivities` reports it.
//! - [`engine`]: the decision [`Engine`], a pure function of [`MetricHistory`] and time that
//!   applies the policies under the `aws` or `fast` timing profile and explains every decision
//!   as an activity.
//! - [`scheduler`]: the ECS service scheduler: [`scheduler::plan()`], a pure function, and the
//!   loop per service ([`scheduler::spawn`]) that carries it out through a [`TaskRuntime`] and
//!   registers tasks through a [`scheduler::TaskRegistrar`].
//! - [`autoscaling`]: the loop per scaled service that samples metrics every second, evaluates
//!   the engine and sets the scheduler's desired count; [`metrics`] reads Prometheus for it.
//! - [`from_config`]: the validated config in these types: the [`TaskDefinitionStore`] that
//!   numbers revisions, [`service_from_config`] and [`scaling_from_config`].
//! - [`local`]: the local task runtime (child processes under the `task-exec` supervisor).
//!
//! The binary (`src/services.rs`) implements the two interfaces that reach outside this crate,
//! `TaskRegistrar` and `autoscaling::LoadBalancerMetrics`, over the proxy's target groups and
//! the embedded registry. Issue 7 adds the Docker runtime, issue 8 the AWS backend. The
//! arithmetic (rounding, deployment bounds, step selection, lifecycle order, `family:N`), the
//! engine, the plan and the loop are unit-tested against hand-computed cases because everything
//! later depends on them being exactly AWS's.
#![forbid(unsafe_code)]

pub mod activity;
pub mod autoscaling;
pub mod backend;
pub mod engine;
pub mod from_config;
pub mod local;
pub mod metrics;
pub mod scaling;
pub mod scheduler;
pub mod service;
pub mod task;

pub use activity::{NotScaledReason, NotScaledReasonCode, ScalingActivity, StatusCode};
pub use backend::{Backend, BackendError, ResourceUsage, ServiceStatus, TaskRuntime};
pub use engine::{
    retention_for, AlarmState, AwsParameters, Decision, Engine, EngineSettings, EvaluationInputs,
    FastParameters, MetricHistory, PolicyInput, Sample,
};
pub use from_config::{
    scaling_from_config, service_from_config, MappingError, ServiceScalingPlan, TaskDefinitionStore,
};
pub use scaling::{
    AdjustmentType, Alarm, ComparisonOperator, MetricSpec, PredefinedMetricType, ScalableTarget,
    ScalingPolicy, ScheduleError, ScheduleExpression, ScheduledAction, Statistic, StepAdjustment,
    StepScaling, SuspendedState, TargetTracking, TimingProfile,
};
pub use service::{DeploymentConfiguration, Service, TaskDefinition, TaskDefinitionRevision};
pub use task::{StopReason, Task, TaskId, TaskState};
