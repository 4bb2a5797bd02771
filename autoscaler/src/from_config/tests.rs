//! Mapping tests: configs parsed and validated by `scalegate_config`, mapped, and compared
//! field by field with hand-written expectations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use scalegate_config as config;

use super::*;

fn parse(text: &str) -> config::Config {
    config::parse(text, Path::new("test.yaml"), Path::new("."))
        .unwrap_or_else(|errors| panic!("the test config should be valid: {errors}"))
}

/// Target groups `web` and `api`, namespace `scalegate.local`, task definition `app` and one
/// service `svc` running it with `fields` (YAML indented 4).
fn service_with(fields: &str) -> config::Service {
    let text = format!(
        "target_groups:
  - name: web
  - name: api
registry:
  namespaces:
    - name: scalegate.local
task_definitions:
  - family: app
    command: sh
services:
  - name: svc
    task_definition: app
{fields}
"
    );
    parse(&text).services.remove(0)
}

/// A service in target group `web` scaling 1–10, with `fields` (indented 6) in `scaling`.
fn scaling_with(fields: &str) -> config::Service {
    service_with(&format!(
        "    load_balancers: [{{target_group: web}}]
    scaling:
      min_capacity: 1
      max_capacity: 10
{fields}"
    ))
}

fn plan(service: &config::Service) -> ServiceScalingPlan {
    scaling_from_config(service)
        .expect("maps")
        .expect("has scaling")
}

fn only_policy(service: &config::Service) -> ScalingPolicy {
    let mut plan = plan(service);
    assert_eq!(plan.policies.len(), 1, "{:#?}", plan.policies);
    plan.policies.remove(0).1
}

/// The plan's entry names, in order.
fn entry_names(plan: &ServiceScalingPlan) -> Vec<&str> {
    plan.policies
        .iter()
        .map(|(name, _)| name.as_str())
        .collect()
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn cpu() -> MetricSpec {
    MetricSpec::Predefined {
        metric: PredefinedMetricType::EcsServiceAverageCpuUtilization,
        target_group: None,
    }
}

// ---------------------------------------------------------------------------------------
// Task definitions

fn definition(family: &str, command: &str) -> config::TaskDefinition {
    config::TaskDefinition {
        family: family.into(),
        command: command.into(),
        args: vec!["-c".into(), "exec sleep 600".into()],
        env: BTreeMap::from([("MODE".into(), "test".into())]),
        working_dir: None,
        cpu: 256,
        memory: 512,
        port: config::TaskPort::Dynamic,
        stop_timeout_seconds: 30,
    }
}

fn revision(text: &str) -> TaskDefinitionRevision {
    text.parse().unwrap()
}

#[test]
fn a_definition_maps_every_field() {
    let mut store = TaskDefinitionStore::new();
    let mut web = definition("web", "sh");
    web.port = config::TaskPort::Fixed(8080);
    web.stop_timeout_seconds = 5;
    web.working_dir = Some("/srv".into());
    assert_eq!(
        store.register(&web, Path::new("/etc/scalegate")),
        TaskDefinition {
            revision: revision("web:1"),
            command: "sh".into(),
            args: vec!["-c".into(), "exec sleep 600".into()],
            env: BTreeMap::from([("MODE".into(), "test".into())]),
            working_dir: Some("/srv".into()),
            cpu_units: 256,
            memory_mib: 512,
            container_port: ContainerPort::Fixed(8080),
            stop_timeout: secs(5),
        }
    );
}

#[test]
fn unchanged_content_keeps_its_revision_and_a_change_makes_the_next() {
    let base = Path::new("/etc/scalegate");
    let mut store = TaskDefinitionStore::new();
    let original = definition("web", "sh");
    assert_eq!(store.register(&original, base).revision, revision("web:1"));
    assert_eq!(store.register(&original, base).revision, revision("web:1"));
    assert_eq!(store.revisions("web").len(), 1);

    // Each field on its own is content: changing it registers the next revision.
    let changes: Vec<fn(&mut config::TaskDefinition)> = vec![
        |d| d.command = "bash".into(),
        |d| d.args.push("--verbose".into()),
        |d| {
            d.env.insert("EXTRA".into(), "1".into());
        },
        |d| d.working_dir = Some("/srv".into()),
        |d| d.cpu = 512,
        |d| d.memory = 1024,
        |d| d.port = config::TaskPort::Fixed(9000),
        |d| d.stop_timeout_seconds = 10,
    ];
    for (index, change) in changes.iter().enumerate() {
        let mut changed = original.clone();
        change(&mut changed);
        let registered = store.register(&changed, base);
        let next = 2 * index as u32 + 2;
        assert_eq!(registered.revision.revision, next, "change {index}");
        // Registering the original again is a change back: yet another revision.
        let back = store.register(&original, base);
        assert_eq!(back.revision.revision, next + 1, "change {index}");
        assert_eq!(back.command, "sh");
        // Each family's numbers are its own.
        store.register(&definition("other", "sh"), base);
    }
    assert_eq!(store.revisions("web").len(), 1 + 2 * changes.len());
    assert_eq!(store.revisions("other").len(), 1);
}

#[test]
fn old_revisions_stay_available() {
    let base = Path::new("/etc/scalegate");
    let mut store = TaskDefinitionStore::new();
    let first = store.register(&definition("web", "sh"), base);
    let second = store.register(&definition("web", "bash"), base);
    assert_eq!(store.get(&revision("web:1")), Some(&first));
    assert_eq!(store.get(&revision("web:2")), Some(&second));
    assert_eq!(store.latest("web"), Some(&second));
    assert_eq!(store.revisions("web"), [first, second]);
    assert_eq!(store.get(&revision("web:3")), None);
    assert_eq!(store.get(&revision("api:1")), None);
    assert_eq!(store.latest("api"), None);
    assert!(store.revisions("api").is_empty());
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let base = Path::new("/etc/scalegate");
    let resolved = |command: &str, working_dir: Option<&str>| {
        let mut raw = definition("web", command);
        raw.working_dir = working_dir.map(PathBuf::from);
        let mapped = TaskDefinitionStore::new().register(&raw, base);
        (mapped.command, mapped.working_dir)
    };
    assert_eq!(
        resolved("./bin/app", Some("data")),
        (
            "/etc/scalegate/bin/app".into(),
            Some("/etc/scalegate/data".into())
        )
    );
    assert_eq!(resolved("bin/app", None).0, "/etc/scalegate/bin/app");
    assert_eq!(
        resolved("../tools/app", None).0,
        "/etc/scalegate/../tools/app"
    );
    // A bare name is looked up on PATH when a task starts; absolute paths stay.
    assert_eq!(resolved("python3", None).0, "python3");
    assert_eq!(
        resolved("/usr/bin/env", Some("/srv")),
        ("/usr/bin/env".into(), Some("/srv".into()))
    );
}

#[test]
fn a_loaded_config_maps_to_the_paths_it_resolved() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let program = dir.path().join("bin/app");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("scalegate.yaml");
    std::fs::write(
        &file,
        "task_definitions:\n  - {family: app, command: ./bin/app, working_dir: data}\n",
    )
    .unwrap();
    let loaded = config::load(&file).unwrap();
    let mapped = TaskDefinitionStore::new().register(&loaded.task_definitions[0], dir.path());
    assert_eq!(mapped.command, program.to_string_lossy());
    assert_eq!(mapped.working_dir, Some(dir.path().join("data")));
}

// ---------------------------------------------------------------------------------------
// Services

#[test]
fn a_service_maps_every_field() {
    let service = service_with(
        "    desired_count: 3
    deployment_configuration: {minimum_healthy_percent: 50, maximum_percent: 150}
    health_check_grace_period_seconds: 45
    load_balancers: [{target_group: web}, {target_group: api}]
    service_registry: {namespace: scalegate.local, service: orders}",
    );
    assert_eq!(
        service_from_config(&service, &revision("app:4")),
        Service {
            name: "svc".into(),
            task_definition: revision("app:4"),
            desired_count: 3,
            deployment: DeploymentConfiguration {
                minimum_healthy_percent: 50,
                maximum_percent: 150,
            },
            health_check_grace_period: secs(45),
            target_groups: vec!["web".into(), "api".into()],
            dns_name: Some("orders.scalegate.local".into()),
        }
    );
}

#[test]
fn service_defaults_are_ecs_and_the_registry_name_defaults_to_the_service() {
    let service = service_with("    service_registry: {namespace: scalegate.local}");
    let mapped = service_from_config(&service, &revision("app:1"));
    assert_eq!(mapped.desired_count, 1);
    assert_eq!(mapped.deployment, DeploymentConfiguration::default());
    assert_eq!(mapped.health_check_grace_period, Duration::ZERO);
    assert!(mapped.target_groups.is_empty());
    assert_eq!(mapped.dns_name.as_deref(), Some("svc.scalegate.local"));
    let unregistered = service_from_config(&service_with(""), &revision("app:1"));
    assert_eq!(unregistered.dns_name, None);
}

#[test]
fn desired_count_is_brought_into_the_scalable_targets_range() {
    let desired = |count: u32, scaling: &str| {
        let service = service_with(&format!("    desired_count: {count}\n{scaling}"));
        service_from_config(&service, &revision("app:1")).desired_count
    };
    let two_to_five = "    scaling: {min_capacity: 2, max_capacity: 5}";
    assert_eq!(desired(0, two_to_five), 2);
    assert_eq!(desired(3, two_to_five), 3);
    assert_eq!(desired(50, two_to_five), 5);
    // Without scaling, the count is the user's.
    assert_eq!(desired(50, ""), 50);
    assert_eq!(desired(0, ""), 0);
}

// ---------------------------------------------------------------------------------------
// Scaling: target and settings

#[test]
fn no_scaling_no_plan() {
    assert_eq!(scaling_from_config(&service_with("")), Ok(None));
}

#[test]
fn the_target_and_settings_come_from_the_scaling_block() {
    let plan = plan(&scaling_with(
        "      suspended_state: {dynamic_scaling_in_suspended: true, scheduled_scaling_suspended: true}
      profile: aws",
    ));
    assert_eq!(
        plan.target,
        ScalableTarget {
            service: "svc".into(),
            min_capacity: 1,
            max_capacity: 10,
            suspended: SuspendedState {
                dynamic_scaling_in_suspended: true,
                dynamic_scaling_out_suspended: false,
                scheduled_scaling_suspended: true,
            },
        }
    );
    assert_eq!(plan.settings.profile, TimingProfile::Aws);
    assert_eq!(plan.settings.aws, AwsParameters::default());
    assert!(plan.policies.is_empty());
}

#[test]
fn the_engines_fast_defaults_are_the_configs() {
    assert_eq!(
        FastParameters::from(&config::FastProfile::default()),
        FastParameters::default()
    );
    let defaults = FastParameters::default();
    assert_eq!(
        (defaults.scale_out_cooldown, defaults.scale_in_cooldown),
        (secs(10), secs(30))
    );
}

#[test]
fn the_services_fast_block_maps_to_fast_parameters() {
    let service = scaling_with(
        "      fast:
        stable_window_seconds: 120
        panic_window_seconds: 12
        panic_threshold_percent: 150
        scale_out_cooldown_seconds: 5
        scale_in_cooldown_seconds: 90
      policies:
        - target_tracking:
            name: cpu
            target_value: 50
            predefined_metric_specification: {predefined_metric_type: ECSServiceAverageCPUUtilization}",
    );
    let plan = plan(&service);
    assert_eq!(
        plan.settings.fast,
        FastParameters {
            stable_window: secs(120),
            panic_window: secs(12),
            panic_threshold: 1.5,
            scale_out_tolerance: 0.1,
            max_scale_in_ratio: 2.0,
            scale_out_cooldown: secs(5),
            scale_in_cooldown: secs(90),
        }
    );
    let ScalingPolicy::TargetTracking(policy) = &plan.policies[0].1 else {
        panic!("{:?}", plan.policies[0]);
    };
    // No overrides: the policy runs the service's parameters, cooldowns set explicitly.
    assert_eq!(policy.fast, None);
    assert_eq!(
        (policy.scale_out_cooldown, policy.scale_in_cooldown),
        (Some(secs(5)), Some(secs(90)))
    );
}

// ---------------------------------------------------------------------------------------
// Scaling: target tracking

const CPU_SPEC: &str =
    "predefined_metric_specification: {predefined_metric_type: ECSServiceAverageCPUUtilization}";

fn policies_with(policies: &str) -> config::Service {
    scaling_with(&format!("      policies:\n{policies}"))
}

#[test]
fn target_tracking_on_cpu_under_the_fast_defaults() {
    let policy = only_policy(&policies_with(&format!(
        "        - target_tracking: {{name: cpu, target_value: 60, {CPU_SPEC}}}"
    )));
    assert_eq!(
        policy,
        ScalingPolicy::TargetTracking(TargetTracking {
            metric: cpu(),
            target_value: 60.0,
            scale_out_cooldown: Some(secs(10)),
            scale_in_cooldown: Some(secs(30)),
            disable_scale_in: false,
            profile: None,
            fast: None,
        })
    );
}

#[test]
fn target_tracking_under_aws_gets_aws_cooldowns_unless_it_sets_its_own() {
    let plan = plan(&policies_with(&format!(
        "        - target_tracking: {{name: cpu, target_value: 60, {CPU_SPEC}, profile: aws}}
        - target_tracking:
            name: memory
            target_value: 70
            predefined_metric_specification: {{predefined_metric_type: ECSServiceAverageMemoryUtilization}}
            profile: aws
            scale_out_cooldown_seconds: 120
            scale_in_cooldown_seconds: 600
            disable_scale_in: true"
    )));
    let [(cpu_name, ScalingPolicy::TargetTracking(cpu_policy)), (memory_name, ScalingPolicy::TargetTracking(memory))] =
        plan.policies.as_slice()
    else {
        panic!("{:#?}", plan.policies);
    };
    assert_eq!((cpu_name.as_str(), memory_name.as_str()), ("cpu", "memory"));
    assert_eq!(cpu_policy.profile, Some(TimingProfile::Aws));
    assert_eq!(
        (cpu_policy.scale_out_cooldown, cpu_policy.scale_in_cooldown),
        (Some(secs(300)), Some(secs(300)))
    );
    assert_eq!(
        *memory,
        TargetTracking {
            metric: MetricSpec::Predefined {
                metric: PredefinedMetricType::EcsServiceAverageMemoryUtilization,
                target_group: None,
            },
            target_value: 70.0,
            scale_out_cooldown: Some(secs(120)),
            scale_in_cooldown: Some(secs(600)),
            disable_scale_in: true,
            profile: Some(TimingProfile::Aws),
            fast: None,
        }
    );
}

#[test]
fn request_count_counts_the_services_only_target_group_or_the_labelled_one() {
    let requests = |service: &config::Service| match only_policy(service) {
        ScalingPolicy::TargetTracking(policy) => policy.metric,
        other => panic!("{other:?}"),
    };
    let only = policies_with(
        "        - target_tracking:
            name: requests
            target_value: 600
            predefined_metric_specification: {predefined_metric_type: ALBRequestCountPerTarget}",
    );
    assert_eq!(
        requests(&only),
        MetricSpec::Predefined {
            metric: PredefinedMetricType::AlbRequestCountPerTarget,
            target_group: Some("web".into()),
        }
    );
    let labelled = service_with(
        "    load_balancers: [{target_group: web}, {target_group: api}]
    scaling:
      min_capacity: 1
      max_capacity: 10
      policies:
        - target_tracking:
            name: requests
            target_value: 600
            predefined_metric_specification:
              predefined_metric_type: ALBRequestCountPerTarget
              resource_label: app/scalegate/50dc6c495c0c9188/targetgroup/api/943f017f100becff",
    );
    assert_eq!(
        requests(&labelled),
        MetricSpec::Predefined {
            metric: PredefinedMetricType::AlbRequestCountPerTarget,
            target_group: Some("api".into()),
        }
    );
}

#[test]
fn customized_metrics_become_scrape_selectors_and_promql_queries() {
    let plan = plan(&policies_with(
        r#"        - target_tracking:
            name: queue
            target_value: 20
            customized_metric_specification:
              scrape:
                url: http://127.0.0.1:9100/metrics
                metric_name: queue_depth
                labels: {queue: orders, tier: 'a"b\c'}
        - target_tracking:
            name: bare
            target_value: 20
            customized_metric_specification:
              scrape: {url: 'http://127.0.0.1:9100/metrics', metric_name: 'jobs:per_worker'}
        - target_tracking:
            name: latency
            target_value: 0.25
            customized_metric_specification:
              promql: {server_url: 'http://127.0.0.1:9090', query: 'avg(rate(latency_sum[1m]))'}"#,
    ));
    let metrics: Vec<MetricSpec> = plan
        .policies
        .into_iter()
        .map(|(_, policy)| match policy {
            ScalingPolicy::TargetTracking(policy) => policy.metric,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        metrics,
        [
            MetricSpec::Scraped {
                url: "http://127.0.0.1:9100/metrics".into(),
                metric_name: "queue_depth".into(),
                labels: [("queue", "orders"), ("tier", "a\"b\\c")]
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value.to_string()))
                    .collect(),
            },
            MetricSpec::Scraped {
                url: "http://127.0.0.1:9100/metrics".into(),
                metric_name: "jobs:per_worker".into(),
                labels: Default::default(),
            },
            MetricSpec::PromQl {
                server: "http://127.0.0.1:9090".into(),
                query: "avg(rate(latency_sum[1m]))".into(),
            },
        ]
    );
}

#[test]
fn a_policys_fast_overrides_apply_over_the_services() {
    let plan = plan(&scaling_with(&format!(
        "      fast: {{stable_window_seconds: 120, scale_in_cooldown_seconds: 45}}
      policies:
        - target_tracking:
            name: cpu
            target_value: 50
            {CPU_SPEC}
            fast: {{panic_window_seconds: 3, panic_threshold_percent: 300, scale_out_cooldown_seconds: 2}}
        - target_tracking:
            name: cooled
            target_value: 50
            predefined_metric_specification: {{predefined_metric_type: ECSServiceAverageMemoryUtilization}}
            scale_in_cooldown_seconds: 7
            fast: {{scale_in_cooldown_seconds: 99}}"
    )));
    let tracking = |index: usize| match &plan.policies[index].1 {
        ScalingPolicy::TargetTracking(policy) => policy.clone(),
        other => panic!("{other:?}"),
    };
    let cpu_policy = tracking(0);
    assert_eq!(
        cpu_policy.fast,
        Some(FastParameters {
            stable_window: secs(120),
            panic_window: secs(3),
            panic_threshold: 3.0,
            scale_out_tolerance: 0.1,
            max_scale_in_ratio: 2.0,
            scale_out_cooldown: secs(2),
            scale_in_cooldown: secs(45),
        })
    );
    assert_eq!(
        (cpu_policy.scale_out_cooldown, cpu_policy.scale_in_cooldown),
        (Some(secs(2)), Some(secs(45)))
    );
    // The policy's own cooldown wins over its fast override, as the config's helper says.
    let cooled = tracking(1);
    assert_eq!(cooled.scale_in_cooldown, Some(secs(7)));
    assert_eq!(cooled.fast.unwrap().scale_in_cooldown, secs(99));
    // The service's parameters are unchanged by either policy.
    assert_eq!(plan.settings.fast.panic_window, secs(6));
    assert_eq!(plan.settings.fast.scale_in_cooldown, secs(45));
}

// ---------------------------------------------------------------------------------------
// Scaling: step scaling

#[test]
fn step_scaling_maps_its_alarm_steps_and_cooldown() {
    let policy = only_policy(&policies_with(
        "        - step_scaling:
            name: memory-burst
            adjustment_type: PercentChangeInCapacity
            min_adjustment_magnitude: 2
            cooldown_seconds: 60
            metric_aggregation_type: Maximum
            profile: aws
            step_adjustments:
              - {metric_interval_lower_bound: 0, metric_interval_upper_bound: 20, scaling_adjustment: 50}
              - {metric_interval_lower_bound: 20, scaling_adjustment: 100}
            alarm:
              predefined_metric_specification: {predefined_metric_type: ECSServiceAverageMemoryUtilization}
              statistic: SampleCount
              period_seconds: 30
              threshold: 80
              comparison_operator: GreaterThanThreshold
              evaluation_periods: 3
              datapoints_to_alarm: 2",
    ));
    assert_eq!(
        policy,
        ScalingPolicy::StepScaling(StepScaling {
            alarm: Alarm {
                metric: MetricSpec::Predefined {
                    metric: PredefinedMetricType::EcsServiceAverageMemoryUtilization,
                    target_group: None,
                },
                statistic: Statistic::SampleCount,
                period: secs(30),
                threshold: 80.0,
                comparison: ComparisonOperator::GreaterThanThreshold,
                evaluation_periods: 3,
                datapoints_to_alarm: 2,
            },
            adjustment_type: AdjustmentType::PercentChangeInCapacity,
            steps: vec![
                StepAdjustment {
                    lower_bound: Some(0.0),
                    upper_bound: Some(20.0),
                    scaling_adjustment: 50,
                },
                StepAdjustment {
                    lower_bound: Some(20.0),
                    upper_bound: None,
                    scaling_adjustment: 100,
                },
            ],
            min_adjustment_magnitude: Some(2),
            metric_aggregation_type: Statistic::Maximum,
            cooldown: secs(60),
            profile: Some(TimingProfile::Aws),
        })
    );
}

#[test]
fn step_scaling_defaults_follow_the_config() {
    let step = |profile: &str| {
        let service = scaling_with(&format!(
            "      fast: {{scale_in_cooldown_seconds: 40}}
      policies:
        - target_tracking: {{name: cpu, target_value: 50, {CPU_SPEC}, profile: fast}}
        - step_scaling:
            name: low
            adjustment_type: ExactCapacity
            {profile}
            step_adjustments: [{{metric_interval_upper_bound: 0, scaling_adjustment: 1}}]
            alarm:
              predefined_metric_specification: {{predefined_metric_type: ALBRequestCountPerTarget}}
              threshold: 10
              comparison_operator: LessThanOrEqualToThreshold"
        ));
        match plan(&service).policies.remove(1).1 {
            ScalingPolicy::StepScaling(policy) => policy,
            other => panic!("{other:?}"),
        }
    };
    let fast = step("");
    // Under fast the cooldown is the service's fast scale-in cooldown; the alarm's defaults
    // are CloudWatch's: Average over 60 s, 1 of 1.
    assert_eq!(fast.cooldown, secs(40));
    assert_eq!(fast.profile, None);
    assert_eq!(
        fast.alarm,
        Alarm {
            metric: MetricSpec::Predefined {
                metric: PredefinedMetricType::AlbRequestCountPerTarget,
                target_group: Some("web".into()),
            },
            statistic: Statistic::Average,
            period: secs(60),
            threshold: 10.0,
            comparison: ComparisonOperator::LessThanOrEqualToThreshold,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
        }
    );
    assert_eq!(fast.metric_aggregation_type, Statistic::Average);
    assert_eq!(fast.adjustment_type, AdjustmentType::ExactCapacity);
    assert_eq!(fast.min_adjustment_magnitude, None);
    let aws = step("profile: aws");
    assert_eq!(aws.cooldown, secs(300));
    assert_eq!(aws.profile, Some(TimingProfile::Aws));
}

// ---------------------------------------------------------------------------------------
// Scaling: scheduled actions

fn utc(text: &str) -> SystemTime {
    text.parse::<jiff::Timestamp>().unwrap().into()
}

#[test]
fn scheduled_actions_map_their_schedule_zone_window_and_bounds() {
    let plan = plan(&scaling_with(
        "      scheduled_actions:
        - name: business-hours
          schedule: cron(0 8 ? * MON-FRI *)
          timezone: Europe/Berlin
          start_time: '2026-01-01T00:00:00+01:00'
          end_time: '2026-12-31T23:59:59Z'
          scalable_target_action: {min_capacity: 3, max_capacity: 10}
        - name: once
          schedule: at(2026-06-01T08:00:00)
          scalable_target_action: {max_capacity: 2}",
    ));
    assert_eq!(
        plan.policies,
        [
            (
                "business-hours".to_string(),
                ScalingPolicy::Scheduled(ScheduledAction {
                    name: "business-hours".into(),
                    schedule: ScheduleExpression::parse("cron(0 8 ? * MON-FRI *)").unwrap(),
                    timezone: Some("Europe/Berlin".into()),
                    start_time: Some(utc("2025-12-31T23:00:00Z")),
                    end_time: Some(
                        SystemTime::UNIX_EPOCH + secs(1_798_761_599) // 2026-12-31T23:59:59Z
                    ),
                    min_capacity: Some(3),
                    max_capacity: Some(10),
                })
            ),
            (
                "once".to_string(),
                ScalingPolicy::Scheduled(ScheduledAction {
                    name: "once".into(),
                    schedule: ScheduleExpression::At("2026-06-01T08:00:00".parse().unwrap()),
                    timezone: None,
                    start_time: None,
                    end_time: None,
                    min_capacity: None,
                    max_capacity: Some(2),
                })
            ),
        ]
    );
}

#[test]
fn scheduled_actions_named_like_a_policy_get_a_prefix_in_the_plan_only() {
    let plan = plan(&scaling_with(&format!(
        "      policies:
        - target_tracking: {{name: night, target_value: 50, {CPU_SPEC}}}
        - target_tracking:
            name: 'scheduled:night'
            target_value: 70
            predefined_metric_specification: {{predefined_metric_type: ECSServiceAverageMemoryUtilization}}
      scheduled_actions:
        - {{name: night, schedule: 'cron(0 22 * * ? *)', scalable_target_action: {{max_capacity: 2}}}}
        - {{name: day, schedule: 'cron(0 6 * * ? *)', scalable_target_action: {{max_capacity: 10}}}}"
    )));
    assert_eq!(
        entry_names(&plan),
        [
            "night",
            "scheduled:night",
            "scheduled:scheduled:night",
            "day"
        ]
    );
    let ScalingPolicy::Scheduled(action) = &plan.policies[2].1 else {
        panic!("{:?}", plan.policies[2]);
    };
    // Activities name the action as the user wrote it.
    assert_eq!(action.name, "night");
}

/// Schedules config validation accepts, each of its syntax rules at least once (its own
/// test's list and more), so the engine's parser is checked against what `scalegate check`
/// lets through.
const SCHEDULES_THE_CONFIG_ACCEPTS: &[&str] = &[
    "at(2026-06-01T08:00:00)",
    "at(2028-02-29T23:59:59)",
    "rate(1 minute)",
    "rate(5 minutes)",
    "rate(2 hours)",
    "rate(1 hour)",
    "rate(1 day)",
    "rate(30 days)",
    "rate(4294967295 minutes)",
    "cron(0 8 ? * MON-FRI *)",
    "cron(0/15 * * * ? *)",
    "cron(0 18 L * ? *)",
    "cron(0 18 LW * ? *)",
    "cron(0 0 15W * ? 2026)",
    "cron(0 9 ? * 6#3 *)",
    "cron(0 9 ? * MON#1 *)",
    "cron(0 10 ? * 2L *)",
    "cron(0 10 ? * friL *)",
    "cron(0 10 ? * L *)",
    "cron(30 8 1,15 JAN-MAR ? 2026-2030)",
    "cron(*/5 9-17 ? * mon,wed,fri *)",
    "cron(0   8  ? * * *)",
    "cron(0 8 ? * * *)",
    "cron(0 8 * * ? *)",
    "cron(59 23 31 12 ? 2199)",
    "cron(0 0 1 1 ? 1970)",
    // Lists of the day fields' specials, and specials beside values.
    "cron(0 0 L,15 * ? *)",
    "cron(0 0 1W,15W * ? *)",
    "cron(0 0 LW,L,1 * ? *)",
    "cron(0 0 ? * 2#1,6L,L *)",
    "cron(0 0 ? * L,2 *)",
    // Ranges that wrap around the field (Quartz reads them through the end of the field).
    "cron(0 0 ? * FRI-MON *)",
    "cron(0 22-2 * * ? *)",
    "cron(50-10/5 * * * ? *)",
    "cron(0 0 25-5 * ? *)",
    "cron(0 0 1 NOV-FEB ? *)",
    "cron(0 0 ? * 7-1 *)",
    // Steps from a value, on ranges, larger than the field, and as large as a u32.
    "cron(5/10 * * * ? *)",
    "cron(0 1-10/3 * * ? *)",
    "cron(0 0 */40 * ? *)",
    "cron(0 0 ? * 2/2 *)",
    "cron(1/4294967295 0 * * ? *)",
    "cron(0 0 1 * ? 2000/4294967295)",
    "cron(0 0 1 * ? */50)",
    // Leading zeros.
    "cron(05 08 01 01 ? 2026)",
];

#[test]
fn every_schedule_the_config_accepts_the_engine_parses() {
    // Config validation allows 200 actions per service; every schedule goes through it.
    let actions: String = SCHEDULES_THE_CONFIG_ACCEPTS
        .iter()
        .enumerate()
        .map(|(index, schedule)| {
            format!(
                "        - {{name: a{index}, schedule: '{schedule}', \
                 scalable_target_action: {{min_capacity: 1}}}}\n"
            )
        })
        .collect();
    let service = scaling_with(&format!("      scheduled_actions:\n{actions}"));
    let plan = plan(&service);
    assert_eq!(plan.policies.len(), SCHEDULES_THE_CONFIG_ACCEPTS.len());
    for ((_, policy), text) in plan.policies.iter().zip(SCHEDULES_THE_CONFIG_ACCEPTS) {
        let ScalingPolicy::Scheduled(action) = policy else {
            panic!("{policy:?}");
        };
        // Parsed, and the parse is of this text (not a default or another action's).
        assert_eq!(action.schedule, ScheduleExpression::parse(text).unwrap());
    }
}

// ---------------------------------------------------------------------------------------
// The annotated example maps whole

#[test]
fn the_annotated_example_maps() {
    let config = config::parse(
        config::ANNOTATED_EXAMPLE,
        Path::new("annotated_example.yaml"),
        Path::new("."),
    )
    .unwrap();
    let mut store = TaskDefinitionStore::new();
    for definition in &config.task_definitions {
        store.register(definition, Path::new("."));
    }
    for service in &config.services {
        let revision = &store.latest(&service.task_definition).unwrap().revision;
        let mapped = service_from_config(service, revision);
        assert_eq!(mapped.task_definition.to_string(), "orders:1");
        let plan = scaling_from_config(service).unwrap().unwrap();
        assert_eq!(
            entry_names(&plan),
            ["cpu", "requests", "queue", "memory-burst", "business-hours"]
        );
    }
}
