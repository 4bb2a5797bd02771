//! The `scalegate` command: an ALB, its target groups and (soon) an autoscaled service, in one
//! binary configured by one YAML file.
#![forbid(unsafe_code)]

mod app;
mod registry_api;
mod reload;
mod services;
mod services_api;
mod target_discovery;
mod task_exec;

/// mimalloc instead of glibc malloc: the request path makes a few small allocations per
/// request (hyper's futures, header values), and glibc's allocator showed as ~8% of proxy CPU
/// in `perf` (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use scalegate_config::Config;
use scalegate_proxy::admin::{serve_admin, AdminState};

use crate::app::App;

/// scalegate: an Application Load Balancer with target groups, metrics and hot reload, in one
/// binary. Everything is configured in one YAML file; see docs/config.md.
#[derive(Parser)]
#[command(name = "scalegate", version, about, long_about = None)]
struct Cli {
    /// Log format: `human` for people, `json` for log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `scalegate_proxy=debug` (overrides RUST_LOG).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything the config file describes: listeners, rules, target groups, the admin
    /// endpoint. Reloads the file on SIGHUP and when it changes; stops gracefully on Ctrl-C or
    /// SIGTERM.
    Run {
        /// The config file. Without it, the bundled example (examples/scalegate.yaml) runs.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// How long open connections may take to finish their requests at shutdown.
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        shutdown_grace_seconds: u64,
        /// Where services' task logs go: one file per task, `<DIR>/<service>/<task-id>.log`.
        #[arg(long, value_name = "DIR", default_value = "scalegate-tasks")]
        task_log_dir: PathBuf,
        /// Run every service's scaling policies under this timing profile, whatever the file
        /// says: rehearse `aws` timing on a `fast` config, or the reverse.
        #[arg(long, value_enum, value_name = "PROFILE")]
        scaling_profile: Option<ScalingProfileArg>,
    },
    /// Validate a config file and explain what it does. Exits non-zero and prints every error
    /// (file:line:column: field: reason) when it is invalid.
    Check {
        /// The config file to check.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file, for editor completion.
    Schema,
    /// Run the workload server that example and test services run as their tasks
    /// (docs/workload.md).
    Workload(scalegate_loadtest::workload::WorkloadArgs),
    /// Send load: open model at a rate, stages or a replayed trace, or closed model flat out;
    /// report latency (coordinated-omission corrected), errors, and how a scalegate service's
    /// tasks followed demand (docs/loadtest.md).
    Loadtest(Box<scalegate_loadtest::cli::LoadtestArgs>),
    /// Internal: the supervisor a local task runs under, so that the task's whole process group
    /// dies with scalegate (see autoscaler/src/local/supervisor.rs).
    #[command(hide = true)]
    TaskExec {
        /// The scalegate process the task belongs to.
        #[arg(long, value_name = "PID")]
        parent_pid: u32,
        /// The task's command and arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::TaskExec {
        parent_pid,
        command,
    } = cli.command
    {
        task_exec::run(parent_pid, command);
    }
    let log_format = cli.log_format;
    init_logging(log_format, cli.log_level.as_deref());
    let result = match cli.command {
        Command::Run {
            config,
            shutdown_grace_seconds,
            task_log_dir,
            scaling_profile,
        } => run(
            config,
            Duration::from_secs(shutdown_grace_seconds),
            task_log_dir,
            scaling_profile.map(Into::into),
        ),
        Command::Check { config } => return check(&config),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&scalegate_config::json_schema())
                    .expect("schema serializes")
            );
            Ok(())
        }
        Command::TaskExec { .. } => unreachable!("task-exec is dispatched before logging"),
        Command::Loadtest(args) => return ExitCode::from(scalegate_loadtest::command(*args)),
        Command::Workload(args) => {
            match args
                .into_options()
                .and_then(scalegate_loadtest::workload::run)
            {
                Ok(code) => return ExitCode::from(code),
                Err(error) => Err(error.into()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Once: a plain line for a person, or a JSON event for a log shipper.
            match log_format {
                LogFormat::Human => eprintln!("scalegate: {error:#}"),
                LogFormat::Json => tracing::error!("{error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    let requested = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    // hickory-server logs every DNS query at info; keep it quiet unless asked for by name.
    let directives = if requested.contains("hickory") {
        requested
    } else {
        format!("{requested},hickory_server=warn,hickory_proto=warn")
    };
    let filter = tracing_subscriber::EnvFilter::new(directives);
    // Colours only for a person at a terminal; a log file or a pipe gets plain text.
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// `scalegate run --scaling-profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ScalingProfileArg {
    /// Decisions every second, bursts met within seconds.
    Fast,
    /// Application Auto Scaling's timing: 60 s datapoints, 3-minute alarms, 300 s cooldowns.
    Aws,
}

impl From<ScalingProfileArg> for scalegate_config::TimingProfile {
    fn from(profile: ScalingProfileArg) -> Self {
        match profile {
            ScalingProfileArg::Fast => scalegate_config::TimingProfile::Fast,
            ScalingProfileArg::Aws => scalegate_config::TimingProfile::Aws,
        }
    }
}

/// Loads the config as `run` and its reloads see it: from `path` (or the bundled example),
/// with the `--scaling-profile` override applied.
fn load_with(
    path: Option<&Path>,
    profile: Option<scalegate_config::TimingProfile>,
) -> Result<Config, scalegate_config::ConfigErrors> {
    let config = load(path)?;
    Ok(match profile {
        Some(profile) => config.with_scaling_profile(profile),
        None => config,
    })
}

/// Loads the config from `path`, or the bundled example.
fn load(path: Option<&Path>) -> Result<Config, scalegate_config::ConfigErrors> {
    match path {
        Some(path) => scalegate_config::load(path),
        None => scalegate_config::parse(
            scalegate_config::EXAMPLE,
            Path::new("<bundled example>"),
            Path::new("."),
        ),
    }
}

fn check(path: &Path) -> ExitCode {
    match scalegate_config::load(path) {
        Ok(config) => {
            println!("{}: valid", path.display());
            print!("{}", explain(&config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{error}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}

/// A short plain-language account of what a valid config will do.
fn explain(config: &Config) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "load balancer {:?}, admin on {}",
        config.load_balancer.name, config.admin.address
    );
    for listener in &config.listeners {
        let protocol = listener.protocol.as_str();
        let _ = writeln!(
            out,
            "listener {} {protocol} on {}: {} rule(s), then default: {}",
            listener.display_name(),
            listener.address,
            listener.rules.len(),
            describe_action(&listener.default_action)
        );
        let mut rules: Vec<_> = listener.rules.iter().collect();
        rules.sort_by_key(|rule| rule.priority);
        for rule in rules {
            let _ = writeln!(
                out,
                "  priority {:>5}: {} condition(s) -> {}",
                rule.priority,
                rule.conditions.len(),
                describe_action(&rule.action)
            );
        }
    }
    let namespaces: Vec<&str> = config
        .registry
        .namespaces
        .iter()
        .map(|namespace| namespace.name.as_str())
        .collect();
    for group in &config.target_groups {
        let check = &group.health_check;
        let health = if check.enabled {
            format!(
                "health check {} {} every {} s ({} to recover, {} to fail)",
                check.effective_protocol(group.protocol).as_str(),
                check.effective_path(),
                check.interval_seconds,
                check.healthy_threshold_count,
                check.unhealthy_threshold_count
            )
        } else {
            "no health checks".to_string()
        };
        let _ = writeln!(
            out,
            "target group {}: {} target(s), {}, {health}, deregistration delay {} s",
            group.name,
            group.targets.len(),
            serde_json::to_value(group.load_balancing_algorithm)
                .ok()
                .and_then(|value| value.as_str().map(str::to_string))
                .unwrap_or_default(),
            group.deregistration_delay_seconds
        );
        if let Some(discovery) = &group.discovery {
            let _ = writeln!(
                out,
                "  targets also from {}",
                describe_discovery(discovery, group.port, &namespaces)
            );
        }
    }
    if !namespaces.is_empty() {
        let _ = writeln!(
            out,
            "registry DNS on {} (UDP and TCP), authoritative for {}",
            config.registry.address,
            namespaces.join(", ")
        );
        for namespace in &config.registry.namespaces {
            for service in &namespace.services {
                let _ = writeln!(
                    out,
                    "  service {}.{}: {} instance(s) from the config, TTL {} s",
                    service.name,
                    namespace.name,
                    service.instances.len(),
                    service.ttl_seconds.unwrap_or(namespace.ttl_seconds)
                );
            }
        }
    }
    for service in &config.services {
        let _ = writeln!(out, "{}", describe_service(service));
    }
    out
}

/// One line per service for `check`: what it runs, how many, where its tasks register and how
/// it scales.
fn describe_service(service: &scalegate_config::Service) -> String {
    let mut line = format!(
        "service {}: task definition {}, desired count {}",
        service.name, service.task_definition, service.desired_count
    );
    let groups: Vec<&str> = service
        .load_balancers
        .iter()
        .map(|balancer| balancer.target_group.as_str())
        .collect();
    if !groups.is_empty() {
        line.push_str(&format!(", in target group(s) {}", groups.join(", ")));
    }
    if let Some((namespace, name)) = service.registry_name() {
        line.push_str(&format!(", registered as {name}.{namespace}"));
    }
    match &service.scaling {
        Some(scaling) => {
            let policies: Vec<&str> = scaling.policies.iter().map(|p| p.name()).collect();
            let scheduled: Vec<&str> = scaling
                .scheduled_actions
                .iter()
                .map(|action| action.name.as_str())
                .collect();
            line.push_str(&format!(
                ", scaled between {} and {} by policies [{}]",
                scaling.min_capacity,
                scaling.max_capacity,
                policies.join(", ")
            ));
            if !scheduled.is_empty() {
                line.push_str(&format!(
                    " and scheduled actions [{}]",
                    scheduled.join(", ")
                ));
            }
        }
        None => line.push_str(", no scaling"),
    }
    line
}

fn describe_discovery(
    discovery: &scalegate_config::TargetDiscovery,
    group_port: u16,
    namespaces: &[&str],
) -> String {
    let what = if let Some(name) = &discovery.dns_name {
        format!(
            "DNS {name} (A/AAAA) port {}",
            discovery.port.unwrap_or(group_port)
        )
    } else if let Some(name) = &discovery.srv_name {
        format!("DNS {name} (SRV)")
    } else if let Some(file) = &discovery.file {
        return format!("file {} (re-read when it changes)", file.display());
    } else {
        return "nothing".to_string();
    };
    let name = discovery
        .dns_name
        .as_deref()
        .or(discovery.srv_name.as_deref())
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let in_registry = namespaces.iter().any(|namespace| {
        let namespace = namespace.trim_end_matches('.').to_ascii_lowercase();
        name == namespace || name.ends_with(&format!(".{namespace}"))
    });
    let servers = if !discovery.name_servers.is_empty() {
        discovery
            .name_servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    } else if in_registry {
        return format!("{what} via the embedded registry, in-process (every change, at once)");
    } else {
        "the system's resolver (/etc/resolv.conf)".to_string()
    };
    format!(
        "{what} via {servers}, refreshed by TTL within {}–{} s",
        discovery.min_refresh_seconds, discovery.max_refresh_seconds
    )
}

fn describe_action(action: &scalegate_config::Action) -> String {
    match action {
        scalegate_config::Action::Forward(forward) => match &forward.target_group {
            Some(group) => format!("forward to {group}"),
            None => {
                let groups: Vec<String> = forward
                    .target_groups
                    .iter()
                    .map(|g| format!("{} (weight {})", g.name, g.weight))
                    .collect();
                format!("forward to {}", groups.join(", "))
            }
        },
        scalegate_config::Action::Redirect(redirect) => format!(
            "redirect {:?} to {}://{}:{}{}?{}",
            redirect.status_code,
            redirect.protocol,
            redirect.host,
            redirect.port,
            redirect.path,
            redirect.query
        ),
        scalegate_config::Action::FixedResponse(fixed) => {
            format!("fixed response {}", fixed.status_code)
        }
    }
}

fn run(
    path: Option<PathBuf>,
    shutdown_grace: Duration,
    task_log_dir: PathBuf,
    profile: Option<scalegate_config::TimingProfile>,
) -> anyhow::Result<()> {
    let config = load_with(path.as_deref(), profile)
        .map_err(|errors| anyhow::anyhow!("invalid config:\n{errors}"))?;
    if path.is_none() {
        tracing::info!("no --config given: running the bundled example (examples/scalegate.yaml)");
    }
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("scalegate-control")
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;
    let admin_token = config
        .admin
        .resolve_token()
        .map_err(|reason| anyhow::anyhow!("admin: {reason}"))?;
    control.block_on(async move {
        // The admin listener first: tasks get its address in their metadata URL.
        let admin = tokio::net::TcpListener::bind(config.admin.address)
            .await
            .with_context(|| {
                format!("cannot bind the admin listener on {}", config.admin.address)
            })?;
        let environment = services::ServiceEnvironment {
            config_dir: services::config_dir(path.as_deref()),
            task_log_dir,
            metadata_base_url: Some(format!("http://{}/v4", admin.local_addr()?)),
        };
        let app = Arc::new(App::start(&config, environment).await?);
        let reloader =
            path.map(|path| reload::spawn(path, Arc::clone(&app), config.admin.clone(), profile));
        tracing::info!(address = %admin.local_addr()?, "admin listening");
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = tokio::spawn(serve_admin(
            admin,
            AdminState::new(Arc::clone(&app.metrics))
                .with_bearer_token(admin_token)
                .with_target_groups(Arc::clone(app.proxy.target_groups()))
                .with_routes(registry_api::routes(
                    Arc::clone(&app.registry),
                    app.dns_address(),
                ))
                .with_json("/api/listeners", {
                    let proxy = Arc::clone(&app.proxy);
                    move || serde_json::to_value(proxy.listeners()).unwrap_or_default()
                })
                .with_json("/api/discovery", {
                    let discovery = Arc::clone(&app.discovery);
                    move || discovery.describe()
                })
                .with_routes(services_api::routes(Arc::clone(&app.services)))
                .with_public_routes(services_api::metadata_routes(Arc::clone(&app.services))),
            async move {
                let _ = admin_stopped.await;
            },
        ));

        wait_for_stop_signal().await;
        tracing::info!(
            grace_seconds = shutdown_grace.as_secs(),
            "shutting down: finishing open requests"
        );
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        app.shutdown(shutdown_grace).await;
        let _ = stop_admin.send(());
        let _ = admin_task.await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
