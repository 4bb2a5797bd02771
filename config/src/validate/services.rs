//! Validation of task definitions, services and their scaling: ECS's and Application Auto
//! Scaling's names, ranges and quotas (see `shared/reference/alb-ecs-semantics.md` §6 and
//! `autoscaling-semantics.md` §1), references to target groups and registry namespaces, and
//! what one host can run (two tasks cannot share a fixed port).

use std::collections::HashMap;
use std::path::Path;

use super::schedule::{check_schedule, check_time_zone, parse_timestamp};
use super::*;

impl Checker<'_> {
    pub(super) fn task_definitions(&mut self, definitions: &[TaskDefinition]) {
        let mut families: HashMap<&str, usize> = HashMap::new();
        for (index, definition) in definitions.iter().enumerate() {
            let path = format!("task_definitions[{index}]");
            let family_path = format!("{path}.family");
            self.check_text(
                &family_path,
                &definition.family,
                MAX_ECS_NAME_CHARS,
                is_ecs_name_char,
                ECS_NAME_CHARS,
            );
            if let Some(first) = families.insert(&definition.family, index) {
                self.report(
                    &family_path,
                    format!(
                        "family `{}` is already defined as task_definitions[{first}]; a family \
                         has one definition (scalegate numbers its revisions)",
                        definition.family
                    ),
                );
            }
            self.task_command(&path, definition);
            self.task_environment(&format!("{path}.env"), definition);
            if let Some(directory) = &definition.working_dir {
                if !directory.is_dir() {
                    self.report(
                        &format!("{path}.working_dir"),
                        format!("{} is not a directory", directory.display()),
                    );
                }
            }
            self.check_range(
                &format!("{path}.cpu"),
                definition.cpu.into(),
                TASK_CPU_UNITS,
            );
            self.check_range(
                &format!("{path}.memory"),
                definition.memory.into(),
                TASK_MEMORY_MIB,
            );
            if definition.port == TaskPort::Fixed(0) {
                self.report(
                    &format!("{path}.port"),
                    "must be `dynamic` or 1–65535, not 0; `dynamic` gives each task a free port \
                     in $PORT",
                );
            }
            self.check_range(
                &format!("{path}.stop_timeout_seconds"),
                definition.stop_timeout_seconds,
                STOP_TIMEOUT_SECONDS,
            );
        }
    }

    /// The command and its arguments: text a process can be given, and a command path that
    /// exists now (a name on `PATH` is looked up when the task starts).
    fn task_command(&mut self, path: &str, definition: &TaskDefinition) {
        let command_path = format!("{path}.command");
        let command = &definition.command;
        if command.is_empty() {
            self.report(&command_path, "must not be empty");
        } else if command.contains('\0') {
            self.report(&command_path, "must not contain a NUL character");
        } else if command.contains('/') {
            if let Err(reason) = check_executable(Path::new(command)) {
                self.report(&command_path, reason);
            }
        }
        for (index, argument) in definition.args.iter().enumerate() {
            if argument.contains('\0') {
                self.report(
                    &format!("{path}.args[{index}]"),
                    "must not contain a NUL character",
                );
            }
        }
    }

    fn task_environment(&mut self, path: &str, definition: &TaskDefinition) {
        for (name, value) in &definition.env {
            let variable_path = format!("{path}.{name}");
            if name.is_empty() || name.contains(['=', '\0']) {
                self.report(
                    &variable_path,
                    format!(
                        "`{name}` is not an environment variable name (non-empty, without `=`)"
                    ),
                );
            } else if name == "PORT" {
                self.report(
                    &variable_path,
                    "scalegate sets `PORT` to the task's port; choose it with the definition's \
                     `port` instead",
                );
            } else if TASK_ENVIRONMENT.contains(&name.as_str()) {
                self.report(
                    &variable_path,
                    format!(
                        "scalegate sets `{name}` in every task (its task metadata), so it \
                         cannot be set here"
                    ),
                );
            }
            if value.contains('\0') {
                self.report(&variable_path, "must not contain a NUL character");
            }
        }
    }

    pub(super) fn services(&mut self, config: &Config) {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (index, service) in config.services.iter().enumerate() {
            let path = format!("services[{index}]");
            let name_path = format!("{path}.name");
            self.check_text(
                &name_path,
                &service.name,
                MAX_ECS_NAME_CHARS,
                is_ecs_name_char,
                ECS_NAME_CHARS,
            );
            if let Some(first) = names.insert(&service.name, index) {
                self.report(
                    &name_path,
                    format!(
                        "service `{}` is already defined as services[{first}]",
                        service.name
                    ),
                );
            }
            let definition = self.task_definition_reference(&path, service, config);
            self.check_range(
                &format!("{path}.desired_count"),
                service.desired_count.into(),
                0..=MAX_TASK_COUNT,
            );
            self.deployment_configuration(&path, service);
            self.service_load_balancers(&path, service);
            if let Some(registration) = &service.service_registry {
                self.service_registration(&path, service, registration, &config.registry);
            }
            if let Some(scaling) = &service.scaling {
                self.scaling(&format!("{path}.scaling"), service, scaling);
            }
            if let Some(definition) = definition {
                self.fixed_port_allows_one_task(&path, service, definition);
            }
        }
        self.fixed_port_conflicts(config);
    }

    /// The service's task definition, if `task_definition` names a defined family.
    fn task_definition_reference<'c>(
        &mut self,
        path: &str,
        service: &Service,
        config: &'c Config,
    ) -> Option<&'c TaskDefinition> {
        let reference_path = format!("{path}.task_definition");
        let family = &service.task_definition;
        if let Some((named_family, revision)) = family.rsplit_once(':') {
            self.report(
                &reference_path,
                format!(
                    "`{family}` names revision {revision}; name the family alone \
                     (`{named_family}`): scalegate numbers revisions as definitions change, and \
                     a service runs its family's latest one"
                ),
            );
            return None;
        }
        let found = config
            .task_definitions
            .iter()
            .find(|definition| &definition.family == family);
        if found.is_none() {
            let known = if config.task_definitions.is_empty() {
                "no task_definitions are defined".to_string()
            } else {
                let quoted: Vec<String> = config
                    .task_definitions
                    .iter()
                    .map(|definition| format!("`{}`", definition.family))
                    .collect();
                format!("known: {}", quoted.join(", "))
            };
            self.report(
                &reference_path,
                format!("no task definition with family `{family}` ({known})"),
            );
        }
        found
    }

    fn deployment_configuration(&mut self, path: &str, service: &Service) {
        let deployment = &service.deployment_configuration;
        let deployment_path = format!("{path}.deployment_configuration");
        self.check_range(
            &format!("{deployment_path}.minimum_healthy_percent"),
            deployment.minimum_healthy_percent.into(),
            MINIMUM_HEALTHY_PERCENT,
        );
        let maximum_path = format!("{deployment_path}.maximum_percent");
        if deployment.maximum_percent < 100 {
            self.report(
                &maximum_path,
                format!(
                    "must be at least 100, not {}: below that the service could not even run \
                     its desired count",
                    deployment.maximum_percent
                ),
            );
        } else if deployment.maximum_percent == 100 && deployment.minimum_healthy_percent == 100 {
            self.report(
                &maximum_path,
                "with minimum_healthy_percent 100 and maximum_percent 100 no task could ever be \
                 replaced (none may stop first, none may start first); raise maximum_percent to \
                 start replacements first, or lower minimum_healthy_percent to stop tasks first",
            );
        }
        self.check_range(
            &format!("{path}.health_check_grace_period_seconds"),
            service.health_check_grace_period_seconds,
            HEALTH_CHECK_GRACE_PERIOD_SECONDS,
        );
        if service.health_check_grace_period_seconds > 0 && service.load_balancers.is_empty() {
            self.report(
                &format!("{path}.health_check_grace_period_seconds"),
                "only used with `load_balancers`: it suspends the target groups' health checks \
                 after a task starts, and this service has none",
            );
        }
    }

    fn service_load_balancers(&mut self, path: &str, service: &Service) {
        let balancers_path = format!("{path}.load_balancers");
        self.check_count(
            &balancers_path,
            service.load_balancers.len(),
            MAX_LOAD_BALANCERS_PER_SERVICE,
            "target groups",
        );
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (index, balancer) in service.load_balancers.iter().enumerate() {
            let group_path = format!("{balancers_path}[{index}].target_group");
            self.check_target_group_reference(&group_path, &balancer.target_group);
            if let Some(first) = seen.insert(&balancer.target_group, index) {
                self.report(
                    &group_path,
                    format!(
                        "target group `{}` is already listed as {balancers_path}[{first}]",
                        balancer.target_group
                    ),
                );
            }
        }
    }

    /// The registry name the tasks register under: a configured namespace, and a service
    /// label that, with it, makes valid DNS names.
    fn service_registration(
        &mut self,
        path: &str,
        service: &Service,
        registration: &crate::ServiceRegistration,
        registry: &ServiceRegistry,
    ) {
        let registration_path = format!("{path}.service_registry");
        let namespace = normalized_dns_name(&registration.namespace);
        let zone = registry
            .namespaces
            .iter()
            .find(|configured| normalized_dns_name(&configured.name) == namespace);
        if zone.is_none() {
            let known = if registry.namespaces.is_empty() {
                "registry.namespaces is empty".to_string()
            } else {
                let quoted: Vec<String> = registry
                    .namespaces
                    .iter()
                    .map(|configured| format!("`{}`", configured.name))
                    .collect();
                format!("known: {}", quoted.join(", "))
            };
            self.report(
                &format!("{registration_path}.namespace"),
                format!(
                    "no registry namespace `{}` ({known})",
                    registration.namespace
                ),
            );
        }
        let Some((_, label)) = service.registry_name() else {
            return;
        };
        let (label_path, whose) = match &registration.service {
            Some(_) => (format!("{registration_path}.service"), String::new()),
            None => (
                registration_path.clone(),
                " (the service's name, used when `service` is not set)".to_string(),
            ),
        };
        if !is_dns_label(label, MAX_SERVICE_NAME_CHARS) {
            self.report(
                &label_path,
                format!(
                    "`{label}`{whose} is not a registry service name: 1–{MAX_SERVICE_NAME_CHARS} \
                     letters, digits, hyphens and underscores (one DNS label)"
                ),
            );
        } else if zone.is_some() {
            let srv_name = format!("_{label}._tcp.{label}.{namespace}");
            if srv_name.len() > MAX_DNS_NAME_CHARS {
                self.report(
                    &label_path,
                    format!(
                        "makes the SRV name `{srv_name}` {} characters long; a DNS name has at \
                         most {MAX_DNS_NAME_CHARS}",
                        srv_name.len()
                    ),
                );
            }
        }
    }

    /// A fixed port fits one task at a time on one host: the service must never want two,
    /// not even for a moment while a task is replaced.
    fn fixed_port_allows_one_task(
        &mut self,
        path: &str,
        service: &Service,
        definition: &TaskDefinition,
    ) {
        let TaskPort::Fixed(port) = definition.port else {
            return;
        };
        let fix = "use `port: dynamic` in the task definition (each task gets a free port in \
                   $PORT)";
        let one_task = |what: String| {
            format!(
                "{what}, but task definition `{}` listens on fixed port {port} and two tasks \
                 cannot share a port on one host; run at most 1 task, or {fix}",
                definition.family
            )
        };
        if service.desired_count > 1 {
            self.report(
                &format!("{path}.desired_count"),
                one_task(format!("asks for {} tasks", service.desired_count)),
            );
        }
        let mut may_run = service.desired_count > 0;
        if let Some(scaling) = &service.scaling {
            may_run |= scaling.max_capacity > 0;
            if scaling.max_capacity > 1 {
                self.report(
                    &format!("{path}.scaling.max_capacity"),
                    one_task(format!("lets scaling run {} tasks", scaling.max_capacity)),
                );
            }
            for (index, action) in scaling.scheduled_actions.iter().enumerate() {
                let target = action.scalable_target_action;
                let most = target.min_capacity.max(target.max_capacity).unwrap_or(0);
                may_run |= most > 0;
                if most > 1 {
                    self.report(
                        &format!(
                            "{path}.scaling.scheduled_actions[{index}].scalable_target_action"
                        ),
                        one_task(format!("sets capacity bounds up to {most}")),
                    );
                }
            }
        }
        let maximum_percent = service.deployment_configuration.maximum_percent;
        if may_run && maximum_percent > 100 {
            self.report(
                &format!("{path}.deployment_configuration.maximum_percent"),
                format!(
                    "is {maximum_percent}, which starts a replacement task before the old one \
                     stops, but task definition `{}` listens on fixed port {port}, which the \
                     two cannot share; set `deployment_configuration: {{minimum_healthy_percent: \
                     0, maximum_percent: 100}}` (stop first, then start), or {fix}",
                    definition.family
                ),
            );
        }
    }

    /// Fixed task ports already bound by a listener, the admin endpoint, the registry or
    /// another service's tasks. A task may bind any address, so only the port is compared.
    fn fixed_port_conflicts(&mut self, config: &Config) {
        let mut holders: Vec<(u16, String)> = Vec::new();
        holders.push((
            config.admin.address.port(),
            "the admin endpoint".to_string(),
        ));
        holders.push((config.registry.address.port(), "the registry".to_string()));
        for (index, listener) in config.listeners.iter().enumerate() {
            holders.push((
                listener.address.port(),
                format!("listeners[{index}] (`{}`)", listener.display_name()),
            ));
        }
        holders.retain(|(port, _)| *port != 0);
        for (index, service) in config.services.iter().enumerate() {
            let definition = config
                .task_definitions
                .iter()
                .find(|definition| definition.family == service.task_definition);
            let Some(TaskPort::Fixed(port @ 1..)) = definition.map(|definition| definition.port)
            else {
                continue;
            };
            if let Some((_, holder)) = holders.iter().find(|(held, _)| *held == port) {
                self.report(
                    &format!("services[{index}].task_definition"),
                    format!(
                        "task definition `{}` listens on fixed port {port}, which {holder} \
                         already uses",
                        service.task_definition
                    ),
                );
            }
            holders.push((port, format!("services[{index}] (`{}`)", service.name)));
        }
    }

    fn scaling(&mut self, path: &str, service: &Service, scaling: &ServiceScaling) {
        for (field, value) in [
            ("min_capacity", scaling.min_capacity),
            ("max_capacity", scaling.max_capacity),
        ] {
            self.check_range(&format!("{path}.{field}"), value.into(), 0..=MAX_TASK_COUNT);
        }
        if scaling.min_capacity > scaling.max_capacity {
            self.report(
                &format!("{path}.min_capacity"),
                format!(
                    "must not be more than max_capacity ({}), not {}",
                    scaling.max_capacity, scaling.min_capacity
                ),
            );
        }
        self.fast_profile(&format!("{path}.fast"), &scaling.fast);
        let uses_fast = scaling
            .policies
            .iter()
            .any(|policy| scaling.profile_of(policy) == TimingProfile::Fast);
        if scaling.fast != FastProfile::default() && !uses_fast {
            self.report(
                &format!("{path}.fast"),
                "no policy of this service runs the fast profile, so these settings would be \
                 ignored; remove them or set `profile: fast`",
            );
        }
        self.policies(path, service, scaling);
        self.scheduled_actions(path, scaling);
    }

    /// The fast profile's ranges, and its panic window inside its stable window.
    fn fast_profile(&mut self, path: &str, fast: &FastProfile) {
        self.check_range(
            &format!("{path}.stable_window_seconds"),
            fast.stable_window_seconds,
            STABLE_WINDOW_SECONDS,
        );
        self.check_range(
            &format!("{path}.panic_window_seconds"),
            fast.panic_window_seconds,
            1..=STABLE_WINDOW_SECONDS.end().to_owned(),
        );
        self.check_panic_inside_stable(&format!("{path}.panic_window_seconds"), fast);
        self.check_range(
            &format!("{path}.panic_threshold_percent"),
            fast.panic_threshold_percent.into(),
            PANIC_THRESHOLD_PERCENT,
        );
        for (field, value) in [
            (
                "scale_out_cooldown_seconds",
                fast.scale_out_cooldown_seconds,
            ),
            ("scale_in_cooldown_seconds", fast.scale_in_cooldown_seconds),
        ] {
            self.check_range(&format!("{path}.{field}"), value, COOLDOWN_SECONDS);
        }
    }

    fn check_panic_inside_stable(&mut self, path: &str, fast: &FastProfile) {
        if fast.panic_window_seconds > fast.stable_window_seconds
            && STABLE_WINDOW_SECONDS.contains(&fast.stable_window_seconds)
        {
            self.report(
                path,
                format!(
                    "the panic window ({} s) must not be longer than the stable window ({} s): \
                     it is the short one, that reacts to bursts",
                    fast.panic_window_seconds, fast.stable_window_seconds
                ),
            );
        }
    }

    /// A policy's fast-profile overrides: each set value in range, and the merged windows
    /// consistent (reported here only when this policy's overrides make them inconsistent).
    fn fast_profile_override(
        &mut self,
        path: &str,
        service_fast: &FastProfile,
        overrides: &FastProfileOverride,
    ) {
        let windows = [
            (
                "stable_window_seconds",
                overrides.stable_window_seconds,
                STABLE_WINDOW_SECONDS,
            ),
            (
                "panic_window_seconds",
                overrides.panic_window_seconds,
                1..=STABLE_WINDOW_SECONDS.end().to_owned(),
            ),
            (
                "panic_threshold_percent",
                overrides.panic_threshold_percent.map(u64::from),
                PANIC_THRESHOLD_PERCENT,
            ),
            (
                "scale_out_cooldown_seconds",
                overrides.scale_out_cooldown_seconds,
                COOLDOWN_SECONDS,
            ),
            (
                "scale_in_cooldown_seconds",
                overrides.scale_in_cooldown_seconds,
                COOLDOWN_SECONDS,
            ),
        ];
        for (field, value, range) in windows {
            if let Some(value) = value {
                self.check_range(&format!("{path}.{field}"), value, range);
            }
        }
        if overrides.stable_window_seconds.is_some() || overrides.panic_window_seconds.is_some() {
            let field = if overrides.panic_window_seconds.is_some() {
                "panic_window_seconds"
            } else {
                "stable_window_seconds"
            };
            let merged = service_fast.overridden_by(Some(overrides));
            self.check_panic_inside_stable(&format!("{path}.{field}"), &merged);
        }
    }

    fn policies(&mut self, scaling_path: &str, service: &Service, scaling: &ServiceScaling) {
        let policies_path = format!("{scaling_path}.policies");
        self.check_count(
            &policies_path,
            scaling.policies.len(),
            MAX_POLICIES_PER_SERVICE,
            "policies",
        );
        let mut names: HashMap<&str, usize> = HashMap::new();
        // Target-tracking metrics so far, as comparable keys, with their policy's index.
        let mut tracked: Vec<(String, usize)> = Vec::new();
        for (index, policy) in scaling.policies.iter().enumerate() {
            let kind = match policy {
                ScalingPolicy::TargetTracking(_) => "target_tracking",
                ScalingPolicy::StepScaling(_) => "step_scaling",
            };
            let path = format!("{policies_path}[{index}].{kind}");
            let name_path = format!("{path}.name");
            self.check_text(
                &name_path,
                policy.name(),
                MAX_SCALING_NAME_CHARS,
                |c| !c.is_control(),
                "printable characters",
            );
            if let Some(first) = names.insert(policy.name(), index) {
                self.report(
                    &name_path,
                    format!(
                        "policy `{}` is already defined as {policies_path}[{first}]",
                        policy.name()
                    ),
                );
            }
            let profile = scaling.profile_of(policy);
            match policy {
                ScalingPolicy::TargetTracking(policy) => {
                    self.target_tracking(&path, service, scaling, policy, profile);
                    if let Some(key) = tracked_metric_key(policy, service) {
                        match tracked.iter().find(|(other, _)| *other == key) {
                            Some((_, first)) => self.report(
                                &path,
                                format!(
                                    "watches the same metric as {policies_path}[{first}]; each \
                                     target-tracking policy must use a different metric (as on \
                                     AWS), or the two would fight"
                                ),
                            ),
                            None => tracked.push((key, index)),
                        }
                    }
                }
                ScalingPolicy::StepScaling(policy) => {
                    self.step_scaling(&path, service, policy, profile)
                }
            }
        }
    }

    fn target_tracking(
        &mut self,
        path: &str,
        service: &Service,
        scaling: &ServiceScaling,
        policy: &TargetTrackingPolicy,
        profile: TimingProfile,
    ) {
        let target = policy.target_value;
        let target_path = format!("{path}.target_value");
        if target.is_nan() || target <= 0.0 {
            self.report(
                &target_path,
                format!("must be greater than 0, not {target}: capacity follows metric / target"),
            );
        } else if target > MAX_TARGET_VALUE {
            self.report(
                &target_path,
                format!("must be at most {MAX_TARGET_VALUE:e} (AWS's bound), not {target:e}"),
            );
        }
        self.metric_source(
            path,
            service,
            policy.predefined_metric_specification.as_ref(),
            policy.customized_metric_specification.as_ref(),
        );
        for (field, value) in [
            (
                "scale_out_cooldown_seconds",
                policy.scale_out_cooldown_seconds,
            ),
            (
                "scale_in_cooldown_seconds",
                policy.scale_in_cooldown_seconds,
            ),
        ] {
            if let Some(value) = value {
                self.check_range(&format!("{path}.{field}"), value, COOLDOWN_SECONDS);
            }
        }
        if let Some(overrides) = &policy.fast {
            let fast_path = format!("{path}.fast");
            if profile == TimingProfile::Aws {
                self.report(
                    &fast_path,
                    "this policy runs the aws profile, so fast-profile settings would be \
                     ignored; remove them or set `profile: fast`",
                );
            } else {
                self.fast_profile_override(&fast_path, &scaling.fast, overrides);
            }
        }
    }

    /// The metric of a target-tracking policy or an alarm: exactly one specification, each
    /// valid, and a request count only of the service's own target groups.
    fn metric_source(
        &mut self,
        path: &str,
        service: &Service,
        predefined: Option<&PredefinedMetricSpecification>,
        customized: Option<&CustomizedMetricSpecification>,
    ) {
        match (predefined, customized) {
            (Some(_), Some(_)) => self.report(
                path,
                "set either `predefined_metric_specification` or \
                 `customized_metric_specification`, not both",
            ),
            (None, None) => self.report(
                path,
                "needs a metric: `predefined_metric_specification` (ECSServiceAverageCPUUtilization, \
                 ECSServiceAverageMemoryUtilization or ALBRequestCountPerTarget) or \
                 `customized_metric_specification` (a Prometheus metric)",
            ),
            _ => {}
        }
        if let Some(predefined) = predefined {
            self.predefined_metric(
                &format!("{path}.predefined_metric_specification"),
                service,
                predefined,
            );
        }
        if let Some(customized) = customized {
            self.customized_metric(
                &format!("{path}.customized_metric_specification"),
                customized,
            );
        }
    }

    fn predefined_metric(
        &mut self,
        path: &str,
        service: &Service,
        specification: &PredefinedMetricSpecification,
    ) {
        let label_path = format!("{path}.resource_label");
        let counts_requests =
            specification.predefined_metric_type == PredefinedMetricType::AlbRequestCountPerTarget;
        let attached: Vec<String> = service
            .load_balancers
            .iter()
            .map(|balancer| format!("`{}`", balancer.target_group))
            .collect();
        match (&specification.resource_label, counts_requests) {
            (Some(_), false) => self.report(
                &label_path,
                format!(
                    "only for ALBRequestCountPerTarget (as on AWS); {} needs no target group",
                    specification.predefined_metric_type.as_str()
                ),
            ),
            (Some(label), true) => {
                let group = target_group_of_resource_label(label);
                let is_attached = service
                    .load_balancers
                    .iter()
                    .any(|balancer| balancer.target_group == group);
                if is_attached {
                    return;
                }
                if !self.target_group_names.iter().any(|known| known == group) {
                    self.check_target_group_reference(&label_path, group);
                } else {
                    let attached = if attached.is_empty() {
                        "the service has no load_balancers".to_string()
                    } else {
                        format!("the service's are {}", attached.join(", "))
                    };
                    self.report(
                        &label_path,
                        format!(
                            "target group `{group}` is not one of this service's \
                             load_balancers ({attached}); ALBRequestCountPerTarget counts the \
                             requests its own tasks receive"
                        ),
                    );
                }
            }
            (None, true) => match attached.len() {
                1 => {}
                0 => self.report(
                    path,
                    "ALBRequestCountPerTarget counts requests per target of one of the service's \
                     target groups, and this service has no load_balancers",
                ),
                _ => self.report(
                    path,
                    format!(
                        "name the target group whose requests are counted in `resource_label`: \
                         the service is in {}",
                        attached.join(", ")
                    ),
                ),
            },
            (None, false) => {}
        }
    }

    fn customized_metric(&mut self, path: &str, specification: &CustomizedMetricSpecification) {
        match specification {
            CustomizedMetricSpecification::Scrape(scraped) => {
                let path = format!("{path}.scrape");
                if let Err(reason) = check_http_url(&scraped.url) {
                    self.report(&format!("{path}.url"), reason);
                }
                if !is_prometheus_name(&scraped.metric_name, true) {
                    self.report(
                        &format!("{path}.metric_name"),
                        format!(
                            "`{}` is not a Prometheus metric name: letters, digits, `_` and `:`, \
                             not starting with a digit",
                            scraped.metric_name
                        ),
                    );
                }
                for name in scraped.labels.keys() {
                    if !is_prometheus_name(name, false) || name.starts_with("__") {
                        self.report(
                            &format!("{path}.labels.{name}"),
                            format!(
                                "`{name}` is not a Prometheus label name: letters, digits and \
                                 `_`, not starting with a digit or `__`"
                            ),
                        );
                    }
                }
            }
            CustomizedMetricSpecification::Promql(query) => {
                let path = format!("{path}.promql");
                if let Err(reason) = check_http_url(&query.server_url) {
                    self.report(&format!("{path}.server_url"), reason);
                }
                if query.query.trim().is_empty() {
                    self.report(&format!("{path}.query"), "must not be empty");
                }
            }
        }
    }

    fn step_scaling(
        &mut self,
        path: &str,
        service: &Service,
        policy: &StepScalingPolicy,
        profile: TimingProfile,
    ) {
        self.step_adjustments(path, policy);
        if let Some(magnitude) = policy.min_adjustment_magnitude {
            let magnitude_path = format!("{path}.min_adjustment_magnitude");
            if policy.adjustment_type != AdjustmentType::PercentChangeInCapacity {
                self.report(
                    &magnitude_path,
                    "only for `adjustment_type: PercentChangeInCapacity` (as on AWS)",
                );
            } else if magnitude == 0 {
                self.report(&magnitude_path, "must be at least 1, not 0");
            }
        }
        if let Some(cooldown) = policy.cooldown_seconds {
            self.check_range(
                &format!("{path}.cooldown_seconds"),
                cooldown,
                COOLDOWN_SECONDS,
            );
        }
        self.alarm(&format!("{path}.alarm"), service, &policy.alarm, profile);
    }

    /// AWS's rules for step adjustments: bounds in order, at most one open end each way, and
    /// together one interval without gaps or overlaps that reaches past the threshold on the
    /// side its bounds use.
    fn step_adjustments(&mut self, path: &str, policy: &StepScalingPolicy) {
        let steps_path = format!("{path}.step_adjustments");
        let steps = &policy.step_adjustments;
        if steps.is_empty() {
            self.report(&steps_path, "needs at least one step");
            return;
        }
        self.check_count(&steps_path, steps.len(), MAX_STEP_ADJUSTMENTS, "steps");
        let mut well_formed = true;
        let (mut open_below, mut open_above): (Option<usize>, Option<usize>) = (None, None);
        for (index, step) in steps.iter().enumerate() {
            let step_path = format!("{steps_path}[{index}]");
            let (lower, upper) = (
                step.metric_interval_lower_bound,
                step.metric_interval_upper_bound,
            );
            if policy.adjustment_type == AdjustmentType::ExactCapacity
                && step.scaling_adjustment < 0
            {
                self.report(
                    &format!("{step_path}.scaling_adjustment"),
                    format!(
                        "is a capacity with `ExactCapacity`, so it must not be negative, not {}",
                        step.scaling_adjustment
                    ),
                );
            }
            match (lower, upper) {
                (None, None) => {
                    self.report(
                        &step_path,
                        "needs metric_interval_lower_bound, metric_interval_upper_bound or both \
                         (AWS: the two cannot both be unset)",
                    );
                    well_formed = false;
                }
                (Some(lower), Some(upper)) if lower >= upper => {
                    self.report(
                        &format!("{step_path}.metric_interval_upper_bound"),
                        format!(
                            "must be greater than metric_interval_lower_bound ({lower}), not \
                             {upper}"
                        ),
                    );
                    well_formed = false;
                }
                _ => {}
            }
            for (is_open, first, field, end) in [
                (
                    lower.is_none(),
                    &mut open_below,
                    "metric_interval_lower_bound",
                    "−∞",
                ),
                (
                    upper.is_none(),
                    &mut open_above,
                    "metric_interval_upper_bound",
                    "+∞",
                ),
            ] {
                if !is_open {
                    continue;
                }
                match *first {
                    Some(first) => {
                        self.report(
                            &step_path,
                            format!(
                                "only one step may leave {field} unset ({end}), and \
                                 {steps_path}[{first}] does already"
                            ),
                        );
                        well_formed = false;
                    }
                    None => *first = Some(index),
                }
            }
        }
        if !well_formed {
            return;
        }
        let mut order: Vec<usize> = (0..steps.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |index: usize| {
                steps[index]
                    .metric_interval_lower_bound
                    .unwrap_or(f64::NEG_INFINITY)
            };
            key(a).total_cmp(&key(b))
        });
        for pair in order.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let end = steps[before]
                .metric_interval_upper_bound
                .unwrap_or(f64::INFINITY);
            let start = steps[after]
                .metric_interval_lower_bound
                .unwrap_or(f64::NEG_INFINITY);
            let after_path = format!("{steps_path}[{after}].metric_interval_lower_bound");
            if end < start {
                self.report(
                    &after_path,
                    format!(
                        "leaves a gap after {steps_path}[{before}], which ends at {end}; steps \
                         must cover their range without gaps (start this one at {end})"
                    ),
                );
            } else if end > start {
                self.report(
                    &after_path,
                    format!(
                        "overlaps {steps_path}[{before}], which ends at {}; steps must not \
                         overlap (start this one at {end})",
                        bound_text(steps[before].metric_interval_upper_bound, "+∞")
                    ),
                );
            }
        }
        let lowest = order[0];
        if let Some(lower) = steps[lowest].metric_interval_lower_bound {
            if lower < 0.0 {
                self.report(
                    &format!("{steps_path}[{lowest}].metric_interval_lower_bound"),
                    format!(
                        "is negative ({lower}), so, as AWS requires, the lowest step must have no \
                         lower bound: leave it unset here to cover everything below"
                    ),
                );
            }
        }
        let highest = *order.last().expect("at least one step");
        if let Some(upper) = steps[highest].metric_interval_upper_bound {
            if upper > 0.0 {
                self.report(
                    &format!("{steps_path}[{highest}].metric_interval_upper_bound"),
                    format!(
                        "is positive ({upper}), so, as AWS requires, the highest step must have \
                         no upper bound: leave it unset here to cover everything above"
                    ),
                );
            }
        }
    }

    fn alarm(
        &mut self,
        path: &str,
        service: &Service,
        alarm: &MetricAlarm,
        profile: TimingProfile,
    ) {
        self.metric_source(
            path,
            service,
            alarm.predefined_metric_specification.as_ref(),
            alarm.customized_metric_specification.as_ref(),
        );
        let period = alarm.period_seconds;
        let period_path = format!("{path}.period_seconds");
        let period_ok = match profile {
            TimingProfile::Aws => {
                let ok =
                    matches!(period, 10 | 20 | 30) || (period > 0 && period.is_multiple_of(60));
                if !ok {
                    self.report(
                        &period_path,
                        format!(
                            "must be 10, 20, 30 or a multiple of 60 under the aws profile (as \
                             CloudWatch), not {period}"
                        ),
                    );
                }
                ok
            }
            TimingProfile::Fast => {
                self.check_range(&period_path, period, FAST_ALARM_PERIOD_SECONDS);
                FAST_ALARM_PERIOD_SECONDS.contains(&period)
            }
        };
        let evaluation_periods = alarm.evaluation_periods;
        if evaluation_periods == 0 {
            self.report(
                &format!("{path}.evaluation_periods"),
                "must be at least 1, not 0",
            );
        }
        if let Some(datapoints) = alarm.datapoints_to_alarm {
            if datapoints == 0 || datapoints > evaluation_periods {
                self.report(
                    &format!("{path}.datapoints_to_alarm"),
                    format!(
                        "must be 1–{evaluation_periods} (evaluation_periods), not {datapoints}"
                    ),
                );
            }
        }
        let range = period.saturating_mul(evaluation_periods.into());
        let limit = if period < 3600 {
            MAX_ALARM_RANGE_SECONDS
        } else {
            MAX_LONG_ALARM_RANGE_SECONDS
        };
        if period_ok && range > limit {
            self.report(
                &format!("{path}.evaluation_periods"),
                format!(
                    "{evaluation_periods} periods of {period} s span {range} s; an alarm looks \
                     back at most {limit} s (as CloudWatch)"
                ),
            );
        }
    }

    fn scheduled_actions(&mut self, scaling_path: &str, scaling: &ServiceScaling) {
        let actions_path = format!("{scaling_path}.scheduled_actions");
        self.check_count(
            &actions_path,
            scaling.scheduled_actions.len(),
            MAX_SCHEDULED_ACTIONS_PER_SERVICE,
            "scheduled actions",
        );
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (index, action) in scaling.scheduled_actions.iter().enumerate() {
            let path = format!("{actions_path}[{index}]");
            let name_path = format!("{path}.name");
            self.check_text(
                &name_path,
                &action.name,
                MAX_SCALING_NAME_CHARS,
                is_scheduled_action_name_char,
                SCHEDULED_ACTION_NAME_CHARS,
            );
            if action.name.starts_with(' ') {
                self.report(&name_path, "must not start with a space");
            }
            if let Some(first) = names.insert(&action.name, index) {
                self.report(
                    &name_path,
                    format!(
                        "scheduled action `{}` is already defined as {actions_path}[{first}]",
                        action.name
                    ),
                );
            }
            if let Err(reason) = check_schedule(&action.schedule) {
                self.report(&format!("{path}.schedule"), reason);
            }
            if let Some(zone) = &action.timezone {
                if let Err(reason) = check_time_zone(zone) {
                    self.report(&format!("{path}.timezone"), reason);
                }
            }
            self.schedule_window(&path, action);
            self.scalable_target_action(&format!("{path}.scalable_target_action"), action);
        }
    }

    /// `start_time` and `end_time`: timestamps, in order.
    fn schedule_window(&mut self, path: &str, action: &ScheduledAction) {
        let mut parse = |field: &str, text: &Option<String>| {
            let text = text.as_ref()?;
            match parse_timestamp(text) {
                Ok(timestamp) => Some(timestamp),
                Err(reason) => {
                    self.report(&format!("{path}.{field}"), reason);
                    None
                }
            }
        };
        let start = parse("start_time", &action.start_time);
        let end = parse("end_time", &action.end_time);
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                self.report(
                    &format!("{path}.end_time"),
                    format!("must be later than start_time ({start}), not {end}"),
                );
            }
        }
    }

    fn scalable_target_action(&mut self, path: &str, action: &ScheduledAction) {
        let target = action.scalable_target_action;
        if target.min_capacity.is_none() && target.max_capacity.is_none() {
            self.report(
                path,
                "set min_capacity, max_capacity or both: the action changes nothing otherwise",
            );
        }
        for (field, value) in [
            ("min_capacity", target.min_capacity),
            ("max_capacity", target.max_capacity),
        ] {
            if let Some(value) = value {
                self.check_range(&format!("{path}.{field}"), value.into(), 0..=MAX_TASK_COUNT);
            }
        }
        if let (Some(min), Some(max)) = (target.min_capacity, target.max_capacity) {
            if min > max {
                self.report(
                    &format!("{path}.min_capacity"),
                    format!("must not be more than max_capacity ({max}), not {min}"),
                );
            }
        }
    }
}

const ECS_NAME_CHARS: &str = "letters, digits, hyphens and underscores (as ECS)";

/// ECS family and service names: letters, digits, hyphens and underscores.
fn is_ecs_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

const SCHEDULED_ACTION_NAME_CHARS: &str =
    "ASCII characters except control characters, `:`, `/` and `|` (as AWS)";

fn is_scheduled_action_name_char(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_control() && !matches!(c, ':' | '/' | '|')
}

/// A command given as a path: an executable regular file.
fn check_executable(path: &Path) -> Result<(), String> {
    let metadata = std::fs::metadata(path)
        .map_err(|error| format!("cannot run {}: {error}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "{} is not executable (chmod +x it, or run it through its interpreter)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// A comparable key for a target-tracking policy's metric, so two policies on one metric are
/// caught; `None` when the metric is not valid enough to compare.
fn tracked_metric_key(policy: &TargetTrackingPolicy, service: &Service) -> Option<String> {
    match (
        &policy.predefined_metric_specification,
        &policy.customized_metric_specification,
    ) {
        (Some(predefined), None) => Some(format!(
            "{}/{}",
            predefined.predefined_metric_type.as_str(),
            predefined.target_group(service).unwrap_or_default()
        )),
        (None, Some(customized)) => serde_json::to_string(customized).ok(),
        _ => None,
    }
}

/// A bound for messages: the number, or the infinity it stands for.
fn bound_text(bound: Option<f64>, infinity: &str) -> String {
    bound.map_or_else(|| infinity.to_string(), |value| value.to_string())
}

/// A Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, without colons, a label name.
fn is_prometheus_name(name: &str, colons: bool) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':');
    name.chars()
        .next()
        .is_some_and(|first| !first.is_ascii_digit())
        && name.chars().all(allowed)
}

/// An `http://` or `https://` URL with a host, as the metric readers fetch.
fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("`{url}` is not an `http://` or `https://` URL"))?;
    if let Some(bad) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{url}` contains {bad:?}; percent-encode it"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("`{url}` has no host, e.g. `http://127.0.0.1:9090`"));
    }
    Ok(())
}
