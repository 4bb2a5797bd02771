//! `scalegate loadtest`'s command line, turned into a checked [`LoadtestPlan`] before any
//! request is sent, so that a typo is a clear message and not a half-finished run.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::generator::{Arrivals, GeneratorOptions, Protocol, RequestTemplate, TlsOptions};
use crate::schedule::{LoadModel, Schedule, Stage, TraceReplay};
use crate::threshold::Threshold;
use crate::trace::{parse_trace, TraceColumns};
use crate::units::{parse_duration, parse_ratio};

/// Open-model cap on requests in flight when `-c` is not given: high enough that a stalled
/// server shows as latency rather than as requests the generator could not send.
const DEFAULT_OPEN_MAX_IN_FLIGHT: usize = 1000;
/// Closed-model connections when `-c` is not given (oha's default).
const DEFAULT_CLOSED_CONNECTIONS: usize = 50;

/// Arguments of `scalegate loadtest`.
#[derive(Debug, Clone, Args)]
#[command(after_help = LOADTEST_EXAMPLES)]
pub struct LoadtestArgs {
    /// URL to request (http:// or https://). Not needed with --urls-file or --scenario.
    pub url: Option<String>,

    // ---- what to send ----
    /// File with one URL per line, requested in rotation (same scheme and host:port).
    #[arg(long, value_name = "FILE", help_heading = "Request")]
    pub urls_file: Option<PathBuf>,
    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET", help_heading = "Request")]
    pub method: String,
    /// Extra header, `Name: value`; repeatable.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "HEADER",
        help_heading = "Request"
    )]
    pub headers: Vec<String>,
    /// Request body.
    #[arg(
        short = 'd',
        long,
        conflicts_with = "body_file",
        help_heading = "Request"
    )]
    pub body: Option<String>,
    /// Request body from a file.
    #[arg(long, value_name = "FILE", help_heading = "Request")]
    pub body_file: Option<PathBuf>,
    /// Speak HTTP/2: ALPN h2 over https://, prior knowledge (h2c) over http://.
    #[arg(long, help_heading = "Request")]
    pub http2: bool,
    /// HTTP/2 connections per generator thread (streams are spread over them).
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Request")]
    pub http2_connections: usize,
    /// Accept any TLS certificate (self-signed local targets).
    #[arg(long, help_heading = "Request")]
    pub insecure: bool,
    /// Also trust these PEM CA certificates.
    #[arg(long, value_name = "FILE", help_heading = "Request")]
    pub ca_file: Option<PathBuf>,
    /// Deadline for a whole request, from send to the end of the body.
    #[arg(long, default_value = "10s", value_parser = parse_duration, help_heading = "Request")]
    pub timeout: Duration,
    /// Deadline for connecting (TCP and TLS).
    #[arg(long, default_value = "5s", value_parser = parse_duration, help_heading = "Request")]
    pub connect_timeout: Duration,

    // ---- when to send ----
    /// Constant rate, requests per second (open model).
    #[arg(
        short = 'r',
        long,
        value_name = "PER_SECOND",
        help_heading = "Schedule"
    )]
    pub rate: Option<f64>,
    /// Run length for --rate and for the closed model.
    #[arg(short = 'z', long, default_value = "10s", value_parser = parse_duration, help_heading = "Schedule")]
    pub duration: Duration,
    /// k6-style stages, `DURATION:RATE` comma-separated: each moves linearly from the previous
    /// rate to RATE; `0s:RATE` steps. E.g. `30s:100,0s:400,60s:400`.
    #[arg(long, value_name = "STAGES", help_heading = "Schedule")]
    pub stages: Option<String>,
    /// Rate at time zero for --stages.
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "PER_SECOND",
        help_heading = "Schedule"
    )]
    pub start_rate: f64,
    /// Replay a CSV of request counts per interval (e.g. the World Cup 1998 trace).
    #[arg(long, value_name = "CSV", help_heading = "Schedule")]
    pub trace: Option<PathBuf>,
    /// The trace's count column.
    #[arg(
        long,
        default_value = "count",
        value_name = "NAME",
        help_heading = "Schedule"
    )]
    pub trace_count_column: String,
    /// The trace's interval-label column.
    #[arg(
        long,
        default_value = "period",
        value_name = "NAME",
        help_heading = "Schedule"
    )]
    pub trace_period_column: String,
    /// Start at the first row whose label starts with this (e.g. `1998-06-30 08:00`).
    #[arg(long, value_name = "LABEL", help_heading = "Schedule")]
    pub trace_start: Option<String>,
    /// Replay at most this many rows.
    #[arg(long, value_name = "N", help_heading = "Schedule")]
    pub trace_rows: Option<usize>,
    /// Replay time per trace row (time compression: 5s replays a trace minute in 5 s).
    #[arg(long, default_value = "5s", value_parser = parse_duration, help_heading = "Schedule")]
    pub trace_bucket: Duration,
    /// Multiplier on every count, a number or fraction (`1/2000`).
    #[arg(long, default_value = "1", value_parser = parse_ratio, value_name = "RATIO", help_heading = "Schedule")]
    pub trace_scale: f64,
    /// Load model: `open` (requests at the schedule's times; default with a schedule) or
    /// `closed` (N connections flat out; default without one).
    #[arg(long, value_enum, help_heading = "Schedule")]
    pub model: Option<ModelArg>,
    /// Closed model: connections. Open model: cap on requests in flight [default: 50 closed,
    /// 1000 open].
    #[arg(short = 'c', long, value_name = "N", help_heading = "Schedule")]
    pub concurrency: Option<usize>,
    /// How arrivals are spaced in the open model.
    #[arg(long, value_enum, default_value = "uniform", help_heading = "Schedule")]
    pub arrivals: ArrivalsArg,
    /// Generator threads [default: number of CPUs].
    #[arg(short = 't', long, value_name = "N", help_heading = "Schedule")]
    pub threads: Option<usize>,
    /// Seed for Poisson arrivals, to repeat a run exactly.
    #[arg(long, value_name = "N", help_heading = "Schedule")]
    pub seed: Option<u64>,
    /// A request sent later than this after its intended time counts as late.
    #[arg(long, default_value = "10ms", value_parser = parse_duration, help_heading = "Schedule")]
    pub late_after: Duration,

    // ---- reporting ----
    /// Print the JSON report on stdout instead of the summary.
    #[arg(long, help_heading = "Report")]
    pub json: bool,
    /// Write report.json, charts (SVG, PNG) and report.html into this directory.
    #[arg(short = 'o', long, value_name = "DIR", help_heading = "Report")]
    pub output: Option<PathBuf>,
    /// Pass/fail condition, k6 style: `p99<50ms`, `p99.9<=200ms`, `max<1s`, `errors<0.1%`,
    /// `late<1%`; repeatable. Any failure exits with code 99.
    #[arg(long = "threshold", value_name = "EXPR", help_heading = "Report")]
    pub thresholds: Vec<String>,
    /// No live progress.
    #[arg(long, help_heading = "Report")]
    pub no_progress: bool,

    // ---- the service under test ----
    /// scalegate admin URL: follow the service's task counts and scaling activities.
    #[arg(long, value_name = "URL", help_heading = "Service")]
    pub admin: Option<String>,
    /// Bearer token for the admin API.
    #[arg(
        long,
        env = "SCALEGATE_ADMIN_TOKEN",
        hide_env_values = true,
        help_heading = "Service"
    )]
    pub admin_token: Option<String>,
    /// The service to follow [default: the only one].
    #[arg(long, value_name = "NAME", help_heading = "Service")]
    pub service: Option<String>,
    /// Requests per second one task serves within the SLO: turns load into demand in tasks.
    #[arg(long, value_name = "PER_SECOND", help_heading = "Service")]
    pub capacity_per_task: Option<f64>,
    /// Measure the capacity per task first, by a rising rate against one task directly.
    #[arg(long, conflicts_with = "capacity_per_task", help_heading = "Service")]
    pub probe_capacity: bool,
    /// The latency SLO: a second with p99 above it (or any failure) is an SLO violation.
    #[arg(long, default_value = "100ms", value_parser = parse_duration, help_heading = "Service")]
    pub slo_p99: Duration,

    /// Run a scenario file instead: one schedule against a scalegate service once per
    /// autoscaling profile, compared side by side (docs/loadtest.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "rate", "stages", "trace"])]
    pub scenario: Option<PathBuf>,
}

const LOADTEST_EXAMPLES: &str = "Examples:
  scalegate loadtest http://127.0.0.1:8080/ -z 10s -c 64            closed model, max throughput
  scalegate loadtest http://127.0.0.1:8080/ -r 500 -z 30s            open model, 500 req/s
  scalegate loadtest http://127.0.0.1:8080/ --start-rate 20 --stages 20s:20,0s:80,60s:80 \\
      --admin http://127.0.0.1:9901 --capacity-per-task 10 -o report/
  scalegate loadtest http://127.0.0.1:8080/ --trace ../shared/traces/worldcup98/per-minute.csv \\
      --trace-start '1998-06-30 08:00' --trace-rows 1440 --trace-bucket 5s --trace-scale 1/2000
  scalegate loadtest http://127.0.0.1:8080/ -r 200 --threshold 'p99<50ms' --threshold 'errors<0.1%'";

/// `--model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// Requests leave at their scheduled times whatever the server does.
    Open,
    /// N connections, each sending when the previous answer arrived.
    Closed,
}

/// `--arrivals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArrivalsArg {
    /// Evenly spaced.
    Uniform,
    /// Poisson (exponential gaps), as independent users arrive.
    Poisson,
}

/// Where the run reports task counts from, and how demand is derived.
#[derive(Debug, Clone)]
pub struct ServiceWatch {
    /// Admin base URL, e.g. `http://127.0.0.1:9901`.
    pub admin: String,
    /// Bearer token, if the admin API needs one.
    pub token: Option<String>,
    /// Service name; `None` = the only one.
    pub service: Option<String>,
}

/// Where the per-task capacity comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CapacitySource {
    /// Not known: no demand curve, no elasticity metrics.
    Unknown,
    /// Given on the command line.
    Given(f64),
    /// Measured against one task before the run.
    Probe,
}

/// A checked load test: everything the runner needs.
#[derive(Debug, Clone)]
pub struct LoadtestPlan {
    /// What to send.
    pub template: RequestTemplate,
    /// When to send it.
    pub schedule: Schedule,
    /// How.
    pub options: GeneratorOptions,
    /// Pass/fail conditions.
    pub thresholds: Vec<Threshold>,
    /// `--json`.
    pub json: bool,
    /// `--output`.
    pub output: Option<PathBuf>,
    /// Live progress on stderr.
    pub progress: bool,
    /// The service to follow, if any.
    pub watch: Option<ServiceWatch>,
    /// Per-task capacity.
    pub capacity: CapacitySource,
    /// The p99 SLO.
    pub slo_p99: Duration,
}

impl LoadtestArgs {
    /// Checks the arguments and builds the plan; the error is a message for the user.
    pub fn into_plan(self) -> Result<LoadtestPlan, String> {
        let template = self.template()?;
        let schedule = self.schedule()?;
        let schedule_given = self.rate.is_some() || self.stages.is_some() || self.trace.is_some();
        let model = self.model.unwrap_or(if schedule_given {
            ModelArg::Open
        } else {
            ModelArg::Closed
        });
        if model == ModelArg::Closed && schedule_given {
            return Err(
                "--model closed sends as fast as the connections allow; it takes no \
                        --rate, --stages or --trace (use -z for its length)"
                    .into(),
            );
        }
        let concurrency = self.concurrency.unwrap_or(match model {
            ModelArg::Open => DEFAULT_OPEN_MAX_IN_FLIGHT,
            ModelArg::Closed => DEFAULT_CLOSED_CONNECTIONS,
        });
        if concurrency == 0 {
            return Err("-c must be at least 1".into());
        }
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        if threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if self.http2_connections == 0 {
            return Err("--http2-connections must be at least 1".into());
        }
        let model = match model {
            ModelArg::Open => LoadModel::Open {
                max_in_flight: concurrency,
            },
            ModelArg::Closed => LoadModel::Closed {
                connections: concurrency,
            },
        };
        let thresholds = self
            .thresholds
            .iter()
            .map(|text| Threshold::from_str(text).map_err(|error| error.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let watch = self.admin.clone().map(|admin| ServiceWatch {
            admin: admin.trim_end_matches('/').to_string(),
            token: self.admin_token.clone(),
            service: self.service.clone(),
        });
        let capacity = match (self.capacity_per_task, self.probe_capacity) {
            (Some(capacity), _) if !(capacity.is_finite() && capacity > 0.0) => {
                return Err(
                    "--capacity-per-task must be a positive number of requests per \
                            second"
                        .into(),
                )
            }
            (Some(capacity), _) => CapacitySource::Given(capacity),
            (None, true) => CapacitySource::Probe,
            (None, false) => CapacitySource::Unknown,
        };
        if capacity == CapacitySource::Probe && watch.is_none() {
            return Err("--probe-capacity needs --admin, to find a task to probe".into());
        }
        Ok(LoadtestPlan {
            template,
            schedule,
            options: GeneratorOptions {
                model,
                protocol: if self.http2 {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                },
                threads,
                http2_connections: self.http2_connections,
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                late_after: self.late_after,
                arrivals: match self.arrivals {
                    ArrivalsArg::Uniform => Arrivals::Uniform,
                    ArrivalsArg::Poisson => Arrivals::Poisson,
                },
                tls: TlsOptions {
                    insecure: self.insecure,
                    ca_file: self.ca_file.clone(),
                },
                seed: self.seed,
            },
            thresholds,
            json: self.json,
            output: self.output,
            progress: !self.no_progress,
            watch,
            capacity,
            slo_p99: self.slo_p99,
        })
    }

    fn template(&self) -> Result<RequestTemplate, String> {
        let mut texts: Vec<String> = Vec::new();
        if let Some(url) = &self.url {
            texts.push(url.clone());
        }
        if let Some(file) = &self.urls_file {
            let content = std::fs::read_to_string(file)
                .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
            texts.extend(
                content
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(String::from),
            );
        }
        if texts.is_empty() {
            return Err("give a URL to load (or --urls-file, or --scenario)".into());
        }
        let urls = parse_urls(&texts)?;
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", self.method))?;
        let mut headers = HeaderMap::new();
        for header in &self.headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("header `{header}` is not `Name: value`"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                format!("header `{header}`: `{}` is not a header name", name.trim())
            })?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("header `{header}`: the value has characters HTTP forbids"))?;
            headers.append(name, value);
        }
        let body = match (&self.body, &self.body_file) {
            (Some(body), _) => Bytes::from(body.clone()),
            (None, Some(file)) => Bytes::from(
                std::fs::read(file)
                    .map_err(|error| format!("cannot read {}: {error}", file.display()))?,
            ),
            (None, None) => Bytes::new(),
        };
        Ok(RequestTemplate {
            method,
            urls,
            headers,
            body,
        })
    }

    fn schedule(&self) -> Result<Schedule, String> {
        let given = [
            self.rate.is_some(),
            self.stages.is_some(),
            self.trace.is_some(),
        ]
        .iter()
        .filter(|given| **given)
        .count();
        if given > 1 {
            return Err("give one schedule: --rate, --stages or --trace".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number of requests per second".into());
            }
            return Ok(Schedule::Constant {
                rate,
                duration: self.duration,
            });
        }
        if let Some(stages) = &self.stages {
            return Ok(Schedule::Stages {
                start_rate: self.start_rate,
                stages: parse_stages(stages)?,
            });
        }
        if let Some(file) = &self.trace {
            let text = std::fs::read_to_string(file)
                .map_err(|error| format!("cannot read trace {}: {error}", file.display()))?;
            let columns = TraceColumns {
                period: self.trace_period_column.clone(),
                count: self.trace_count_column.clone(),
            };
            let rows = parse_trace(&text, &columns)
                .map_err(|error| format!("{}: {error}", file.display()))?;
            let start = match &self.trace_start {
                Some(label) => rows
                    .iter()
                    .position(|row| row.period.starts_with(label.as_str()))
                    .ok_or_else(|| {
                        format!(
                            "{}: no row's `{}` starts with `{label}`",
                            file.display(),
                            columns.period
                        )
                    })?,
                None => 0,
            };
            let end = self
                .trace_rows
                .map_or(rows.len(), |count| (start + count).min(rows.len()));
            let counts: Vec<f64> = rows[start..end].iter().map(|row| row.count).collect();
            if counts.is_empty() {
                return Err(format!("{}: no rows to replay", file.display()));
            }
            if self.trace_bucket.is_zero() {
                return Err("--trace-bucket must be longer than zero".into());
            }
            return Ok(Schedule::Trace(TraceReplay {
                counts,
                bucket: self.trace_bucket,
                scale: self.trace_scale,
            }));
        }
        // Closed model: only the duration matters.
        Ok(Schedule::Constant {
            rate: 0.0,
            duration: self.duration,
        })
    }
}

/// Parses absolute URLs that must share one scheme and authority (one connection pool).
pub fn parse_urls(texts: &[String]) -> Result<Vec<Uri>, String> {
    let mut urls: Vec<Uri> = Vec::with_capacity(texts.len());
    for text in texts {
        let url: Uri = text
            .parse()
            .map_err(|error| format!("`{text}` is not a URL: {error}"))?;
        match url.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(format!(
                    "`{text}`: only http:// and https:// URLs can be loaded"
                ))
            }
        }
        if url.authority().is_none() {
            return Err(format!("`{text}` has no host"));
        }
        if let Some(first) = urls.first() {
            if first.scheme() != url.scheme() || first.authority() != url.authority() {
                return Err(format!(
                    "`{text}`: every URL must have the same scheme and host:port as `{first}` \
                     (one connection pool)"
                ));
            }
        }
        urls.push(url);
    }
    Ok(urls)
}

/// Parses `DURATION:RATE[,DURATION:RATE…]`.
pub fn parse_stages(text: &str) -> Result<Vec<Stage>, String> {
    let stages = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (duration, rate) = part
                .split_once(':')
                .ok_or_else(|| format!("stage `{part}` is not DURATION:RATE, e.g. 30s:100"))?;
            let duration =
                parse_duration(duration).map_err(|error| format!("stage `{part}`: {error}"))?;
            let target_rate: f64 = rate
                .trim()
                .parse()
                .ok()
                .filter(|rate: &f64| rate.is_finite() && *rate >= 0.0)
                .ok_or_else(|| {
                    format!("stage `{part}`: `{rate}` is not a rate in requests per second")
                })?;
            Ok(Stage {
                duration,
                target_rate,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if stages.iter().all(|stage| stage.duration.is_zero()) {
        return Err("--stages needs at least one stage longer than zero".into());
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn plan(line: &[&str]) -> Result<LoadtestPlan, String> {
        let mut argv = vec!["loadtest"];
        argv.extend_from_slice(line);
        Wrapper::try_parse_from(argv)
            .map_err(|error| error.to_string())?
            .args
            .into_plan()
    }

    #[test]
    fn a_url_alone_is_a_closed_run() {
        let plan = plan(&["http://127.0.0.1:1/", "-c", "8", "-z", "2s"]).unwrap();
        assert_eq!(plan.options.model, LoadModel::Closed { connections: 8 });
        assert_eq!(plan.schedule.duration(), Duration::from_secs(2));
    }

    #[test]
    fn a_rate_is_an_open_run() {
        let plan = plan(&["http://127.0.0.1:1/", "-r", "100", "-z", "3s"]).unwrap();
        assert_eq!(
            plan.options.model,
            LoadModel::Open {
                max_in_flight: 1000
            }
        );
        assert_eq!(plan.schedule.rate_at(Duration::ZERO), Some(100.0));
    }

    #[test]
    fn stages_parse_and_bad_ones_say_why() {
        let stages = parse_stages("30s:100, 0s:400,1m:400").unwrap();
        assert_eq!(stages.len(), 3);
        assert_eq!(stages[2].duration, Duration::from_secs(60));
        assert!(parse_stages("30s").unwrap_err().contains("DURATION:RATE"));
        assert!(parse_stages("30x:5")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_stages("0s:5")
            .unwrap_err()
            .contains("longer than zero"));
    }

    #[test]
    fn urls_must_share_an_origin() {
        let ok = parse_urls(&["http://a:1/x".into(), "http://a:1/y".into()]).unwrap();
        assert_eq!(ok.len(), 2);
        let error = parse_urls(&["http://a:1/x".into(), "http://b:1/y".into()]).unwrap_err();
        assert!(error.contains("same scheme and host:port"), "{error}");
        assert!(parse_urls(&["ftp://a/".into()])
            .unwrap_err()
            .contains("only http"));
    }

    #[test]
    fn contradictions_are_refused() {
        let error = plan(&["http://127.0.0.1:1/", "-r", "5", "--stages", "1s:5"]).unwrap_err();
        assert!(error.contains("one schedule"), "{error}");
        let error = plan(&["http://127.0.0.1:1/", "-r", "5", "--model", "closed"]).unwrap_err();
        assert!(error.contains("takes no"), "{error}");
        let error = plan(&["http://127.0.0.1:1/", "--threshold", "p99<fast"]).unwrap_err();
        assert!(error.contains("p99<fast"), "{error}");
        let error = plan(&["http://127.0.0.1:1/", "-H", "nocolon"]).unwrap_err();
        assert!(error.contains("Name: value"), "{error}");
        let error = plan(&["http://127.0.0.1:1/", "--probe-capacity"]).unwrap_err();
        assert!(error.contains("--admin"), "{error}");
    }

    #[test]
    fn a_trace_replays_from_a_start_label() {
        let dir = std::env::temp_dir().join(format!("sg-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.csv");
        std::fs::write(&file, "period,count\n08:00,600\n08:01,1200\n08:02,60\n").unwrap();
        let path = file.to_str().unwrap();
        let plan = plan(&[
            "http://127.0.0.1:1/",
            "--trace",
            path,
            "--trace-start",
            "08:01",
            "--trace-bucket",
            "2s",
            "--trace-scale",
            "1/10",
        ])
        .unwrap();
        assert_eq!(plan.schedule.duration(), Duration::from_secs(4));
        assert_eq!(plan.schedule.rate_at(Duration::ZERO), Some(60.0));
        let error = plan_error_for_bad_trace(&dir);
        assert!(error.contains("line 3"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }

    fn plan_error_for_bad_trace(dir: &std::path::Path) -> String {
        let file = dir.join("bad.csv");
        std::fs::write(&file, "period,count\n08:00,600\n08:01,lots\n").unwrap();
        plan(&["http://127.0.0.1:1/", "--trace", file.to_str().unwrap()]).unwrap_err()
    }
}
