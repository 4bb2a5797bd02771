//! The workload server (`scalegate workload`): a small HTTP/1.1 + h2c server that autoscaling
//! examples and tests run as tasks, so the service behind the proxy has a cost and failures
//! that are known and can be changed per request.
//!
//! - Every request outside the control endpoints is a *workload request*: it sleeps `sleep_ms`,
//!   burns `cpu_ms` of CPU, and answers `status` (or 500 for `fail_percent` of requests) with a
//!   small JSON body, or exactly `bytes` of filler. Flags set the defaults; query parameters of
//!   the same names override them per request ([`WorkloadBehaviour::with_query`]).
//! - Control endpoints: `GET /health` (path set by `--health-path`), `POST /health/fail` and
//!   `POST /health/ok`, `POST /exit?code=N`, `GET /stats` (JSON) and `GET /metrics`
//!   (Prometheus).
//! - CPU model: burns run on tokio's blocking threads, at most `--cpu-workers` (default: the
//!   number of cores) at a time; further requests wait for a slot, as on a server with that
//!   many worker threads. Each burn spins until its own thread's CPU clock has advanced by
//!   `cpu_ms` ([`burn`]), so `/proc` CPU accounting rises by what the requests asked for and the
//!   I/O threads stay free to serve other connections.
//! - Stop: SIGTERM or Ctrl-C closes the listener, lets in-flight requests finish within
//!   `--shutdown-grace-seconds`, and exits 0.
//!
//! See docs/workload.md for the user-facing description.

pub mod body;
pub mod burn;
pub mod params;
pub mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use params::{ParamError, WorkloadBehaviour};
pub use server::{serve, Stopped};

/// Port used when neither `--listen` nor `$PORT` says one.
pub const DEFAULT_PORT: u16 = 8080;

/// Why the workload server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// `$PORT` is set but is not a port number.
    #[error("PORT={value:?} is not a port number (0–65535)")]
    Port {
        /// The environment variable's value.
        value: String,
    },
    /// The listen address is taken or not ours.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The tokio runtime or the signal handlers could not be set up.
    #[error("cannot start: {0}")]
    Start(#[source] std::io::Error),
}

/// Everything the server needs, resolved from flags and environment ([`WorkloadArgs`]) or built
/// directly to embed the server in a test.
#[derive(Debug, Clone)]
pub struct WorkloadOptions {
    /// Where to listen (port 0 picks a free one; the `listening` log line says which).
    pub listen: SocketAddr,
    /// Per-request behaviour when a request's query does not override it.
    pub defaults: WorkloadBehaviour,
    /// Path of the health endpoint, for target group health checks.
    pub health_path: String,
    /// Health starts failing this long after start (tests of unhealthy-task replacement).
    pub unhealthy_after: Option<Duration>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How many requests may burn CPU at the same time.
    pub cpu_workers: usize,
    /// Tokio worker threads doing the HTTP work.
    pub io_threads: usize,
    /// The task this server runs as (`$SCALEGATE_TASK_ID`), reported in answers and logs.
    pub task_id: Option<String>,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            defaults: WorkloadBehaviour::default(),
            health_path: "/health".to_string(),
            unhealthy_after: None,
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECONDS),
            cpu_workers: default_cpu_workers(),
            io_threads: 1,
            task_id: None,
        }
    }
}

/// Default drain time after SIGTERM: under ECS's default 30 s stop timeout, so a task stopped
/// by the scheduler exits on its own before SIGKILL.
pub const DEFAULT_SHUTDOWN_GRACE_SECONDS: u64 = 20;

fn default_cpu_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Run the workload server: a task for autoscaling demos and tests, whose per-request CPU,
/// latency, status and failures are set by these flags and overridden per request by query
/// parameters of the same names (`?cpu_ms=50&sleep_ms=100&status=503&fail_percent=10&bytes=1024`).
/// Control endpoints: GET /health, POST /health/fail, POST /health/ok, POST /exit?code=N,
/// GET /stats, GET /metrics. SIGTERM drains in-flight requests and exits 0.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkloadArgs {
    /// Address to listen on. Default: 0.0.0.0:$PORT when PORT is set (scalegate gives each task
    /// one), else 0.0.0.0:8080.
    #[arg(long, value_name = "ADDRESS", conflicts_with = "host")]
    pub listen: Option<SocketAddr>,
    /// The interface to listen on with $PORT (or 8080) when `--listen` is not given, e.g.
    /// `127.0.0.1` to keep a local task off the network.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub host: std::net::IpAddr,
    /// CPU time each request burns, in milliseconds (`cpu_ms`).
    #[arg(long, value_name = "MS", default_value = "0", value_parser = params::parse_cpu_ms)]
    pub cpu_ms: Duration,
    /// Time each request sleeps, in milliseconds (`sleep_ms`).
    #[arg(long, value_name = "MS", default_value = "0", value_parser = params::parse_sleep_ms)]
    pub sleep_ms: Duration,
    /// Status of answers (`status`).
    #[arg(long, default_value = "200", value_parser = params::parse_status)]
    pub status: u16,
    /// Percentage of requests answered 500 (`fail_percent`).
    #[arg(long, value_name = "PERCENT", default_value = "0", value_parser = params::parse_fail_percent)]
    pub fail_percent: f64,
    /// Exact body size of answers (`bytes`); without it, a small JSON description.
    #[arg(long, value_parser = params::parse_body_bytes)]
    pub bytes: Option<u64>,
    /// Path of the health endpoint.
    #[arg(long, value_name = "PATH", default_value = "/health", value_parser = parse_health_path)]
    pub health_path: String,
    /// Start failing health checks this many seconds after start.
    #[arg(long, value_name = "SECONDS")]
    pub unhealthy_after_seconds: Option<u64>,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECONDS)]
    pub shutdown_grace_seconds: u64,
    /// How many requests may burn CPU at once. Default: the number of cores.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub cpu_workers: Option<u16>,
    /// Threads serving HTTP.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub io_threads: u16,
    /// Task ID reported in answers, /stats and logs.
    #[arg(long, value_name = "ID", env = "SCALEGATE_TASK_ID")]
    pub task_id: Option<String>,
}

fn parse_health_path(value: &str) -> Result<String, String> {
    if value.starts_with('/') {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} must start with '/'"))
    }
}

impl WorkloadArgs {
    /// The options these flags and the process environment (`$PORT`) describe.
    pub fn into_options(self) -> Result<WorkloadOptions, WorkloadError> {
        let port = std::env::var("PORT").ok();
        Ok(WorkloadOptions {
            listen: resolve_listen(self.listen, self.host, port.as_deref())?,
            defaults: WorkloadBehaviour {
                cpu: self.cpu_ms,
                sleep: self.sleep_ms,
                status: self.status,
                fail_percent: self.fail_percent,
                body_bytes: self.bytes,
            },
            health_path: self.health_path,
            unhealthy_after: self.unhealthy_after_seconds.map(Duration::from_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            cpu_workers: self
                .cpu_workers
                .map_or_else(default_cpu_workers, usize::from),
            io_threads: usize::from(self.io_threads),
            task_id: self.task_id.filter(|id| !id.is_empty()),
        })
    }
}

/// The listen address: `--listen`, else `host` (all interfaces by default) on `$PORT` (how
/// scalegate and most platforms hand a task its port), else `host` on 8080.
pub fn resolve_listen(
    listen: Option<SocketAddr>,
    host: std::net::IpAddr,
    port: Option<&str>,
) -> Result<SocketAddr, WorkloadError> {
    if let Some(listen) = listen {
        return Ok(listen);
    }
    let port = match port.map(str::trim).filter(|port| !port.is_empty()) {
        Some(port) => port.parse::<u16>().map_err(|_| WorkloadError::Port {
            value: port.to_string(),
        })?,
        None => DEFAULT_PORT,
    };
    Ok(SocketAddr::from((host, port)))
}

/// Runs the server until SIGTERM or Ctrl-C (returns exit status 0) or `POST /exit?code=N`
/// (returns N). Blocks the calling thread; builds its own runtime.
pub fn run(options: WorkloadOptions) -> Result<u8, WorkloadError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.io_threads.max(1))
        .thread_name("workload")
        .enable_all()
        .build()
        .map_err(WorkloadError::Start)?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| WorkloadError::Bind {
                address: options.listen,
                source,
            })?;
        // Installed before `serve` logs `listening`, so a SIGTERM right after it is a stop.
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).map_err(WorkloadError::Start)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(WorkloadError::Start)?;
        let stop = async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        Ok(match serve(listener, &options, stop).await {
            Stopped::Stop { .. } => 0,
            Stopped::ExitRequested(code) => code,
        })
    });
    // A burn whose client went away (or that /exit cut off) may still be spinning on its
    // blocking thread: do not wait for it.
    runtime.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: WorkloadArgs,
    }

    fn parse(args: &[&str]) -> Result<WorkloadArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("workload").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    const ANY: std::net::IpAddr = std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED);

    #[test]
    fn host_applies_to_port_and_the_default() {
        let loopback = std::net::IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            resolve_listen(None, loopback, Some("7000")).unwrap(),
            "127.0.0.1:7000".parse().unwrap()
        );
        assert!(parse(&["--listen", "127.0.0.1:1", "--host", "127.0.0.1"]).is_err());
    }

    #[test]
    fn listen_comes_from_the_flag_then_port_then_8080() {
        let flag: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(resolve_listen(Some(flag), ANY, Some("7000")).unwrap(), flag);
        assert_eq!(
            resolve_listen(None, ANY, Some("7000")).unwrap(),
            "0.0.0.0:7000".parse().unwrap()
        );
        assert_eq!(
            resolve_listen(None, ANY, Some("0")).unwrap(),
            "0.0.0.0:0".parse().unwrap()
        );
        assert_eq!(
            resolve_listen(None, ANY, None).unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            resolve_listen(None, ANY, Some("")).unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        let error = resolve_listen(None, ANY, Some("http")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "PORT=\"http\" is not a port number (0–65535)"
        );
    }

    #[test]
    fn flags_set_the_defaults_with_the_query_parsers() {
        let args = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--cpu-ms",
            "2.5",
            "--sleep-ms",
            "10",
            "--status",
            "201",
            "--fail-percent",
            "5",
            "--bytes",
            "64",
            "--health-path",
            "/ready",
            "--unhealthy-after-seconds",
            "3",
            "--cpu-workers",
            "4",
            "--task-id",
            "t-1",
        ])
        .unwrap();
        let options = args.into_options().unwrap();
        assert_eq!(
            options.defaults,
            WorkloadBehaviour {
                cpu: Duration::from_micros(2500),
                sleep: Duration::from_millis(10),
                status: 201,
                fail_percent: 5.0,
                body_bytes: Some(64),
            }
        );
        assert_eq!(options.health_path, "/ready");
        assert_eq!(options.unhealthy_after, Some(Duration::from_secs(3)));
        assert_eq!(options.cpu_workers, 4);
        assert_eq!(options.io_threads, 1);
        assert_eq!(options.task_id.as_deref(), Some("t-1"));
        assert_eq!(
            options.shutdown_grace,
            Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECONDS)
        );
    }

    #[test]
    fn bad_flags_are_refused_with_the_parameter_message() {
        let error = parse(&["--status", "99"]).unwrap_err().to_string();
        assert!(error.contains("an HTTP status from 200 to 599"), "{error}");
        assert!(parse(&["--health-path", "health"]).is_err());
        assert!(parse(&["--cpu-workers", "0"]).is_err());
        assert!(parse(&["--cpu-ms", "-5"]).is_err());
    }
}
