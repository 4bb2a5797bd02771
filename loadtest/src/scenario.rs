//! `scalegate loadtest --scenario FILE`: the same load against the same scalegate config once
//! per autoscaling profile (`fast`, `aws`), each on a fresh `scalegate run`, compared side by
//! side. This is how docs/autoscaling.md's comparison tables were made.
//!
//! A scenario file (YAML, same dialect and error messages as the config):
//!
//! ```yaml
//! config: ../examples/scalegate.yaml   # the scalegate config to run, relative to this file
//! service: app                         # default: the config's only service
//! profiles: [fast, aws]                # default: both
//! loadtest: [--start-rate, "20", --stages, "30s:20,0s:80,120s:80", --capacity-per-task, "10"]
//! ```
//!
//! `loadtest` holds `scalegate loadtest` arguments, so a scenario and a one-off run speak the
//! same language. The URL defaults to the config's first listener, the admin URL to its admin
//! address; results go to `<scenario name>-results/` beside the file unless `output` says.
//! File arguments (`--trace`, `--urls-file`, `--body-file`, `--ca-file`) are relative to the
//! scenario file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use scalegate_config::{Config, TimingProfile};
use serde::Deserialize;

use crate::admin::AdminClient;
use crate::cli::{LoadtestArgs, LoadtestPlan};
use crate::report::RunReport;
use crate::run::{self, RunError, THRESHOLDS_FAILED_EXIT_CODE};

/// How long a fresh scalegate may take until its service has all desired tasks healthy.
const DEFAULT_READY_TIMEOUT_SECONDS: u64 = 60;
/// How long a scalegate may take to drain and stop its tasks after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports; default: the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// The scalegate config to run, relative to the scenario file.
    pub config: PathBuf,
    /// The service to follow; default: the config's only service.
    #[serde(default)]
    pub service: Option<String>,
    /// Where to send load; default: `http://<first listener>/`.
    #[serde(default)]
    pub url: Option<String>,
    /// Profiles to compare, in order; default `[fast, aws]`.
    #[serde(default = "both_profiles")]
    pub profiles: Vec<TimingProfile>,
    /// `scalegate loadtest` arguments: the schedule, capacity, SLO, thresholds, ….
    #[serde(default)]
    pub loadtest: Vec<String>,
    /// Results directory, relative to the scenario file; default `<name>-results`.
    #[serde(default)]
    pub output: Option<PathBuf>,
    /// Seconds to wait for the service to be ready before each run; default 60.
    #[serde(default)]
    pub ready_timeout_seconds: Option<u64>,
}

fn both_profiles() -> Vec<TimingProfile> {
    vec![TimingProfile::Fast, TimingProfile::Aws]
}

/// The name a profile has on the command line and in reports.
pub fn profile_name(profile: TimingProfile) -> &'static str {
    match profile {
        TimingProfile::Fast => "fast",
        TimingProfile::Aws => "aws",
    }
}

/// Runs a scenario file; returns the exit code (0, 99 when a threshold failed in any run, 2
/// for a bad file, 1 when a run failed).
pub fn command(file: &Path, progress: bool) -> u8 {
    let prepared = scalegate_config::load_yaml::<Scenario>(
        file,
        "a scenario needs at least `config:` and `loadtest:` (docs/loadtest.md)",
    )
    .map_err(|errors| format!("invalid scenario:\n{errors}"))
    .and_then(|scenario| prepare(file, &scenario, progress));
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(message) => {
            eprintln!("scalegate loadtest: scenario {}: {message}", file.display());
            return 2;
        }
    };
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a runtime: {error}"))
        .and_then(|runtime| runtime.block_on(execute(&prepared)));
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("scalegate loadtest: scenario {}: {message}", file.display());
            1
        }
    }
}

/// A checked scenario: everything is resolved before the first scalegate starts, so a mistake
/// in the file is exit code 2 and not a failure halfway through the second profile.
struct PreparedScenario {
    name: String,
    config_path: PathBuf,
    output: PathBuf,
    profiles: Vec<TimingProfile>,
    admin_url: String,
    token: Option<String>,
    service: Option<String>,
    ready_timeout: Duration,
    /// The same load for every profile.
    plan: LoadtestPlan,
}

fn prepare(file: &Path, scenario: &Scenario, progress: bool) -> Result<PreparedScenario, String> {
    let base = file.parent().unwrap_or(Path::new("."));
    let config_path = base.join(&scenario.config);
    let config = scalegate_config::load(&config_path)
        .map_err(|errors| format!("invalid config {}:\n{errors}", config_path.display()))?;
    let name = scenario.name.clone().unwrap_or_else(|| {
        file.file_stem().map_or("scenario".to_string(), |stem| {
            stem.to_string_lossy().into_owned()
        })
    });
    let output = base.join(
        scenario
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{name}-results"))),
    );
    if scenario.profiles.is_empty() {
        return Err("`profiles` is empty".into());
    }
    let url = match &scenario.url {
        Some(url) => url.clone(),
        None => default_url(&config)?,
    };
    let admin_url = format!("http://{}", config.admin.address);
    let token = config
        .admin
        .resolve_token()
        .map_err(|reason| format!("invalid config: admin: {reason}"))?;
    let mut argv: Vec<String> = vec!["loadtest".into(), url, "--admin".into(), admin_url.clone()];
    if let Some(service) = &scenario.service {
        argv.extend(["--service".into(), service.clone()]);
    }
    argv.extend(resolve_paths(&scenario.loadtest, base));
    if !progress {
        argv.push("--no-progress".into());
    }
    let plan = parse_args(&argv)
        .and_then(|args| args.into_plan())
        .map_err(|message| format!("loadtest: {message}"))?;
    Ok(PreparedScenario {
        name,
        config_path,
        output,
        profiles: scenario.profiles.clone(),
        admin_url,
        token,
        service: scenario.service.clone(),
        ready_timeout: Duration::from_secs(
            scenario
                .ready_timeout_seconds
                .unwrap_or(DEFAULT_READY_TIMEOUT_SECONDS),
        ),
        plan,
    })
}

async fn execute(scenario: &PreparedScenario) -> Result<u8, String> {
    let PreparedScenario { name, output, .. } = scenario;
    let mut runs: Vec<(String, RunReport)> = Vec::new();
    for &profile in &scenario.profiles {
        let profile_name = profile_name(profile);
        let dir = output.join(profile_name);
        eprintln!("== {name}: profile {profile_name} ==");
        std::fs::create_dir_all(&dir)
            .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
        let mut scalegate = start_scalegate(&scenario.config_path, profile_name, &dir)?;
        let outcome = async {
            wait_ready(
                &scenario.admin_url,
                scenario.token.clone(),
                scenario.service.clone(),
                scenario.ready_timeout,
                &dir,
            )
            .await?;
            run::run(&scenario.plan)
                .await
                .map_err(|error: RunError| error.to_string())
        }
        .await;
        stop_scalegate(&mut scalegate).await;
        let report = outcome?;
        run::write_output(&report, &dir).map_err(|error| error.to_string())?;
        print!("{}", crate::render::summary_text(&report));
        runs.push((profile_name.to_string(), report));
    }

    let table = crate::render::comparison_table_markdown(&runs);
    let files =
        crate::render::write_comparison_files(&runs, output).map_err(|error| error.to_string())?;
    let table_file = output.join("comparison.md");
    std::fs::write(&table_file, &table)
        .map_err(|error| format!("cannot write {}: {error}", table_file.display()))?;
    println!("\n{name}: profiles side by side\n\n{table}");
    println!("Written:");
    for file in files.iter().chain([&table_file]) {
        println!("  {}", file.display());
    }
    for (profile, _) in &runs {
        println!("  {}", output.join(profile).join("report.html").display());
    }
    Ok(if runs.iter().all(|(_, report)| report.passed()) {
        0
    } else {
        THRESHOLDS_FAILED_EXIT_CODE
    })
}

/// `scalegate loadtest` options whose value is a file: relative to the scenario file, as the
/// config's own paths are relative to the config.
const FILE_OPTIONS: [&str; 4] = ["--trace", "--urls-file", "--body-file", "--ca-file"];

fn resolve_paths(args: &[String], base: &Path) -> Vec<String> {
    let resolve = |value: &str| -> String {
        let path = Path::new(value);
        if path.is_absolute() {
            value.to_string()
        } else {
            base.join(path).to_string_lossy().into_owned()
        }
    };
    let mut resolved = Vec::with_capacity(args.len());
    let mut next_is_file = false;
    for arg in args {
        if next_is_file {
            resolved.push(resolve(arg));
            next_is_file = false;
            continue;
        }
        match arg.split_once('=') {
            Some((option, value)) if FILE_OPTIONS.contains(&option) => {
                resolved.push(format!("{option}={}", resolve(value)));
            }
            _ => {
                next_is_file = FILE_OPTIONS.contains(&arg.as_str());
                resolved.push(arg.clone());
            }
        }
    }
    resolved
}

fn parse_args(argv: &[String]) -> Result<LoadtestArgs, String> {
    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LoadtestArgs,
    }
    Wrapper::try_parse_from(argv)
        .map(|wrapper| wrapper.args)
        .map_err(|error| error.to_string().trim().to_string())
}

/// `http://<first listener address>/`, with an unspecified address made loopback.
fn default_url(config: &Config) -> Result<String, String> {
    let listener = config
        .listeners
        .first()
        .ok_or("the config has no listener; set `url`")?;
    let mut address = listener.address;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if listener.tls.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{address}/"))
}

fn start_scalegate(
    config: &Path,
    profile: &str,
    dir: &Path,
) -> Result<tokio::process::Child, String> {
    let exe = std::env::current_exe().map_err(|error| format!("cannot find scalegate: {error}"))?;
    let log_path = dir.join("scalegate.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|error| format!("cannot create {}: {error}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|error| format!("cannot open {}: {error}", log_path.display()))?;
    tokio::process::Command::new(exe)
        .arg("run")
        .arg("-c")
        .arg(config)
        .args(["--scaling-profile", profile])
        .arg("--task-log-dir")
        .arg(dir.join("tasks"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot start scalegate: {error}"))
}

/// Polls until the service has at least one task and all desired tasks healthy.
async fn wait_ready(
    admin_url: &str,
    token: Option<String>,
    service: Option<String>,
    timeout: Duration,
    dir: &Path,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match AdminClient::connect(admin_url, token.clone(), service.clone()).await {
            Ok(admin) => match admin.counts().await {
                Ok(counts)
                    if counts.desired_count > 0 && counts.healthy_count >= counts.desired_count =>
                {
                    return Ok(())
                }
                Ok(counts) => format!(
                    "{} of {} desired tasks healthy",
                    counts.healthy_count, counts.desired_count
                ),
                Err(error) => error.to_string(),
            },
            Err(error) => error.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the service was not ready within {}s ({last}); see {}",
                timeout.as_secs(),
                dir.join("scalegate.log").display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM, then wait for a graceful stop (tasks drained); SIGKILL if it takes too long.
async fn stop_scalegate(child: &mut tokio::process::Child) {
    if let Some(pid) = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_options_resolve_against_the_scenario_file() {
        let args: Vec<String> = [
            "--trace",
            "t.csv",
            "--urls-file=/abs/u.txt",
            "--body-file=b",
            "-r",
            "5",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        assert_eq!(
            resolve_paths(&args, Path::new("/scenarios")),
            [
                "--trace",
                "/scenarios/t.csv",
                "--urls-file=/abs/u.txt",
                "--body-file=/scenarios/b",
                "-r",
                "5"
            ]
        );
    }
}
