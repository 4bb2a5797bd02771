//! The workload server: HTTP/1.1 with keep-alive and h2c (prior knowledge) on one listener,
//! control endpoints, and a graceful drain on stop.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::body::ResponseBody;
use super::burn::burn_cpu;
use super::params::{parse_exit_code, query_pairs, WorkloadBehaviour};
use super::WorkloadOptions;

/// How long a client may take to send a request head before its connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After `POST /exit`, how long the process waits for the asking connection to receive its
/// answer before it exits, cutting whatever else is in flight (as a crash would).
const EXIT_FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// Flips the health endpoint to 503.
pub const HEALTH_FAIL_PATH: &str = "/health/fail";
/// Flips the health endpoint back to 200.
pub const HEALTH_OK_PATH: &str = "/health/ok";
/// Exits the process with `?code=N` (default 1).
pub const EXIT_PATH: &str = "/exit";
/// JSON counters.
pub const STATS_PATH: &str = "/stats";
/// Prometheus text exposition.
pub const METRICS_PATH: &str = "/metrics";

/// How [`serve`] ended, so the caller can choose the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The stop future completed (SIGTERM, Ctrl-C): new connections were refused and in-flight
    /// requests given the shutdown grace; `abandoned` is how many were still running after it.
    Stop {
        /// Requests cut off because the grace ran out.
        abandoned: u64,
    },
    /// A client asked for `POST /exit?code=N`.
    ExitRequested(u8),
}

/// Counters and switches shared by every connection.
struct State {
    defaults: WorkloadBehaviour,
    health_path: String,
    task_id: Option<String>,
    started: Instant,
    requests: AtomicU64,
    in_flight: AtomicU64,
    failed: AtomicU64,
    cpu_burned_nanos: AtomicU64,
    healthy: AtomicBool,
    /// One permit per request allowed to burn CPU at a time.
    cpu_slots: Arc<Semaphore>,
    exit: watch::Sender<Option<u8>>,
}

/// Counts a workload request as in flight until dropped (also when the client goes away).
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves workload requests on `listener` until `stop` completes or a client asks to exit.
///
/// On stop it closes the listener (new connections are refused), lets open connections finish
/// their in-flight requests for up to `options.shutdown_grace` (idle keep-alive connections
/// close at once, HTTP/2 ones get GOAWAY), and returns. On `POST /exit` it returns as soon as
/// the asking client has its answer (at most one second), whatever else is in flight.
pub async fn serve(
    listener: TcpListener,
    options: &WorkloadOptions,
    stop: impl Future<Output = ()>,
) -> Stopped {
    let (exit, mut exit_asked) = watch::channel(None);
    let state = Arc::new(State {
        defaults: options.defaults,
        health_path: options.health_path.clone(),
        task_id: options.task_id.clone(),
        started: Instant::now(),
        requests: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        cpu_burned_nanos: AtomicU64::new(0),
        healthy: AtomicBool::new(true),
        cpu_slots: Arc::new(Semaphore::new(options.cpu_workers.max(1))),
        exit,
    });
    let address = listener.local_addr().ok();
    tracing::info!(
        address = address.map(tracing::field::display),
        task_id = options.task_id.as_deref(),
        cpu_workers = options.cpu_workers,
        "listening"
    );
    if let Some(after) = options.unhealthy_after {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            state.healthy.store(false, Ordering::Relaxed);
            tracing::info!(
                after_seconds = after.as_secs_f64(),
                "health now failing (--unhealthy-after-seconds)"
            );
        });
    }

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let connections = GracefulShutdown::new();

    tokio::pin!(stop);
    let exit_code = loop {
        tokio::select! {
            biased;
            () = &mut stop => break None,
            Ok(()) = exit_asked.changed() => break *exit_asked.borrow(),
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&state);
                    let service = service_fn(move |request| handle(Arc::clone(&state), request));
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let connection = connections.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    // Out of file descriptors and similar: let connections close instead of
                    // spinning on the error.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    };
    drop(listener);

    match exit_code {
        Some(code) => {
            let _ = tokio::time::timeout(EXIT_FLUSH_LIMIT, connections.shutdown()).await;
            tracing::info!(code, "exiting as asked (POST /exit)");
            Stopped::ExitRequested(code)
        }
        None => {
            tracing::info!(
                in_flight = state.in_flight.load(Ordering::Relaxed),
                grace_seconds = options.shutdown_grace.as_secs_f64(),
                "stopping: refusing new connections, finishing in-flight requests"
            );
            let drained = tokio::time::timeout(options.shutdown_grace, connections.shutdown())
                .await
                .is_ok();
            let abandoned = if drained {
                0
            } else {
                state.in_flight.load(Ordering::Relaxed)
            };
            if abandoned > 0 {
                tracing::warn!(abandoned, "shutdown grace ran out; cutting requests");
            }
            tracing::info!(requests = state.requests.load(Ordering::Relaxed), "stopped");
            Stopped::Stop { abandoned }
        }
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let path = request.uri().path();
    let method = request.method();
    let control = |allowed: &[Method]| !allowed.contains(method);
    let response = if path == state.health_path {
        if control(&[Method::GET, Method::HEAD]) {
            method_not_allowed("GET, HEAD")
        } else {
            health(&state)
        }
    } else {
        match path {
            HEALTH_FAIL_PATH | HEALTH_OK_PATH if control(&[Method::POST]) => {
                method_not_allowed("POST")
            }
            HEALTH_FAIL_PATH | HEALTH_OK_PATH => {
                let healthy = path == HEALTH_OK_PATH;
                state.healthy.store(healthy, Ordering::Relaxed);
                tracing::info!(healthy, "health flipped by {path}");
                json_response(StatusCode::OK, &json!({ "healthy": healthy }))
            }
            EXIT_PATH if control(&[Method::POST]) => method_not_allowed("POST"),
            EXIT_PATH => exit(&state, request.uri().query()),
            STATS_PATH if control(&[Method::GET, Method::HEAD]) => method_not_allowed("GET, HEAD"),
            STATS_PATH => json_response(StatusCode::OK, &stats(&state)),
            METRICS_PATH if control(&[Method::GET, Method::HEAD]) => {
                method_not_allowed("GET, HEAD")
            }
            METRICS_PATH => {
                let mut response = Response::new(ResponseBody::full(metrics(&state)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            _ => workload(&state, request).await,
        }
    };
    Ok(response)
}

fn health(state: &State) -> Response<ResponseBody> {
    let healthy = state.healthy.load(Ordering::Relaxed);
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({ "healthy": healthy, "task_id": state.task_id }),
    )
}

fn exit(state: &State, query: Option<&str>) -> Response<ResponseBody> {
    let code = query_pairs(query)
        .filter(|(name, _)| *name == "code")
        .last()
        .map_or(Ok(1), |(_, value)| parse_exit_code(value));
    match code {
        Ok(code) => {
            // The serving loop stops accepting, lets this answer go out, then returns.
            state.exit.send_replace(Some(code));
            json_response(StatusCode::OK, &json!({ "exiting": code }))
        }
        Err(error) => bad_request(&error.to_string()),
    }
}

fn stats(state: &State) -> serde_json::Value {
    json!({
        "task_id": state.task_id,
        "requests": state.requests.load(Ordering::Relaxed),
        "in_flight": state.in_flight.load(Ordering::Relaxed),
        "failed": state.failed.load(Ordering::Relaxed),
        "healthy": state.healthy.load(Ordering::Relaxed),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "cpu_seconds": cpu_seconds(state),
    })
}

fn cpu_seconds(state: &State) -> f64 {
    Duration::from_nanos(state.cpu_burned_nanos.load(Ordering::Relaxed)).as_secs_f64()
}

/// The counters in Prometheus text exposition format 0.0.4.
fn metrics(state: &State) -> String {
    let families: [(&str, &str, &str, String); 6] = [
        (
            "workload_requests_total",
            "counter",
            "Workload requests received (control endpoints such as /health not counted).",
            state.requests.load(Ordering::Relaxed).to_string(),
        ),
        (
            "workload_in_flight_requests",
            "gauge",
            "Workload requests being served now.",
            state.in_flight.load(Ordering::Relaxed).to_string(),
        ),
        (
            "workload_failed_requests_total",
            "counter",
            "Workload requests answered 500 because of fail_percent.",
            state.failed.load(Ordering::Relaxed).to_string(),
        ),
        (
            "workload_cpu_burned_seconds_total",
            "counter",
            "CPU time burned for cpu_ms, measured on the burning thread's CPU clock.",
            cpu_seconds(state).to_string(),
        ),
        (
            "workload_healthy",
            "gauge",
            "1 while the health endpoint answers 200, 0 while it answers 503.",
            u8::from(state.healthy.load(Ordering::Relaxed)).to_string(),
        ),
        (
            "workload_uptime_seconds",
            "gauge",
            "Seconds since the server started listening.",
            state.started.elapsed().as_secs_f64().to_string(),
        ),
    ];
    let mut text = String::new();
    for (name, kind, help, value) in families {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    text
}

/// One workload request: sleep, burn CPU, then answer with the chosen status and body.
async fn workload(state: &State, request: Request<Incoming>) -> Response<ResponseBody> {
    let number = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let _in_flight = InFlight::enter(&state.in_flight);
    let behaviour = match state.defaults.with_query(request.uri().query()) {
        Ok(behaviour) => behaviour,
        Err(error) => return bad_request(&error.to_string()),
    };
    // Read the request body to its end so the connection stays usable (keep-alive).
    let mut body = request.into_body();
    while let Some(Ok(_)) = body.frame().await {}

    if !behaviour.sleep.is_zero() {
        tokio::time::sleep(behaviour.sleep).await;
    }
    let burned = if behaviour.cpu.is_zero() {
        Duration::ZERO
    } else {
        burn(state, behaviour.cpu).await
    };
    let failed = behaviour.fails(fastrand::f64());
    let status = if failed {
        state.failed.fetch_add(1, Ordering::Relaxed);
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::from_u16(behaviour.status).unwrap_or(StatusCode::OK)
    };

    let mut response = match behaviour.body_bytes {
        _ if !may_have_body(status) => Response::new(ResponseBody::empty()),
        Some(size) => {
            let mut response = Response::new(ResponseBody::filler(size));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            response
        }
        None => json_response(
            status,
            &json!({
                "task_id": state.task_id,
                "request": number,
                "status": status.as_u16(),
                "failed": failed,
                "cpu_ms": behaviour.cpu.as_secs_f64() * 1000.0,
                "cpu_ms_burned": burned.as_secs_f64() * 1000.0,
                "sleep_ms": behaviour.sleep.as_secs_f64() * 1000.0,
            }),
        ),
    };
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-workload-request", HeaderValue::from(number));
    if let Some(task_id) = state
        .task_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert("x-workload-task-id", task_id);
    }
    response
}

/// Burns `amount` of CPU on a blocking thread once one of the `cpu_workers` slots is free, so
/// the I/O threads keep serving other connections meanwhile. Returns the CPU time used.
async fn burn(state: &State, amount: Duration) -> Duration {
    let Ok(slot) = Arc::clone(&state.cpu_slots).acquire_owned().await else {
        return Duration::ZERO;
    };
    let burned = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        burn_cpu(amount)
    })
    .await
    .unwrap_or_default();
    state.cpu_burned_nanos.fetch_add(
        u64::try_from(burned.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    burned
}

/// 204 and 304 answers carry no body (RFC 9110 §6.4.1).
fn may_have_body(status: StatusCode) -> bool {
    !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn bad_request(message: &str) -> Response<ResponseBody> {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

fn method_not_allowed(allow: &'static str) -> Response<ResponseBody> {
    let mut response = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &json!({ "error": format!("this endpoint answers {allow}") }),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            defaults: WorkloadBehaviour::default(),
            health_path: "/health".into(),
            task_id: Some("task-1".into()),
            started: Instant::now(),
            requests: AtomicU64::new(7),
            in_flight: AtomicU64::new(2),
            failed: AtomicU64::new(1),
            cpu_burned_nanos: AtomicU64::new(1_500_000_000),
            healthy: AtomicBool::new(false),
            cpu_slots: Arc::new(Semaphore::new(1)),
            exit: watch::channel(None).0,
        }
    }

    #[test]
    fn metrics_text_has_help_type_and_value_per_family() {
        let text = metrics(&state());
        for expected in [
            "# TYPE workload_requests_total counter\nworkload_requests_total 7\n",
            "# TYPE workload_in_flight_requests gauge\nworkload_in_flight_requests 2\n",
            "workload_failed_requests_total 1\n",
            "workload_cpu_burned_seconds_total 1.5\n",
            "workload_healthy 0\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 6);
    }

    #[test]
    fn stats_report_the_counters() {
        let stats = stats(&state());
        assert_eq!(stats["task_id"], "task-1");
        assert_eq!(stats["requests"], 7);
        assert_eq!(stats["in_flight"], 2);
        assert_eq!(stats["healthy"], false);
        assert_eq!(stats["cpu_seconds"], 1.5);
    }

    #[test]
    fn exit_code_defaults_to_one_and_rejects_nonsense() {
        let state = state();
        assert_eq!(exit(&state, Some("code=3")).status(), StatusCode::OK);
        assert_eq!(*state.exit.borrow(), Some(3));
        assert_eq!(exit(&state, None).status(), StatusCode::OK);
        assert_eq!(*state.exit.borrow(), Some(1));
        assert_eq!(
            exit(&state, Some("code=300")).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(*state.exit.borrow(), Some(1));
    }
}
