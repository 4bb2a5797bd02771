//! Harness for black-box tests of the `scalegate` binary: start it on loopback with port 0,
//! read the bound ports from its JSON log, talk to it with real clients, stop it on drop.
//!
//! Every wait is a poll with a deadline; nothing sleeps to synchronise.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

/// How long the binary may take to start listening.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// Path of the binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_scalegate")
}

/// Polls `condition` every 10 ms until it is true or `deadline` passes; returns whether it
/// became true.
pub fn poll_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Async variant of [`poll_until`].
pub async fn poll_until_async<F, Fut>(deadline: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Where [`Scalegate::start`] has services write their task logs, under its temp dir.
pub const TASK_LOG_DIR: &str = "tasks";

/// A running `scalegate run` process.
pub struct Scalegate {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config: PathBuf,
    logs: Arc<Mutex<Vec<Value>>>,
    raw: Arc<Mutex<Vec<String>>>,
}

impl Scalegate {
    /// Writes `yaml` to a temp dir, starts the binary (log level `info`, or
    /// `$SCALEGATE_TEST_RUST_LOG`) and waits until the admin listener (and
    /// so every listener, which are bound before it) is up. Panics with the log on failure.
    pub fn start(yaml: &str) -> Scalegate {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, yaml)
    }

    /// Like [`Scalegate::start`], in a directory the caller already filled (certificates).
    pub fn start_in(dir: tempfile::TempDir, yaml: &str) -> Scalegate {
        let config = dir.path().join("scalegate.yaml");
        std::fs::write(&config, yaml).expect("config written");
        // Task logs in the temp dir, not in the crate's directory (the default is relative).
        let mut child = Command::new(binary())
            .args(["--log-format", "json", "run", "-c"])
            .arg(&config)
            .args(["--shutdown-grace-seconds", "2"])
            .arg("--task-log-dir")
            .arg(dir.path().join(TASK_LOG_DIR))
            .env(
                "RUST_LOG",
                std::env::var("SCALEGATE_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scalegate starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        {
            let logs = Arc::clone(&logs);
            let raw = Arc::clone(&raw);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(value) = serde_json::from_str::<Value>(&line) {
                        logs.lock().unwrap().push(value);
                    }
                    raw.lock().unwrap().push(line);
                }
            });
        }
        let mut gate = Scalegate {
            child: Some(child),
            dir,
            config,
            logs,
            raw,
        };
        let started = poll_until(START_DEADLINE, || {
            gate.has_log(|line| line["message"] == "admin listening") || gate.exited()
        });
        if !started || gate.exited() {
            panic!(
                "scalegate did not start within {START_DEADLINE:?}; log:\n{}",
                gate.log_text()
            );
        }
        gate
    }

    fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The temp directory holding the config (put certificates here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the config file the process runs with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Every JSON log line so far.
    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().unwrap().clone()
    }

    /// The raw stderr so far, for failure messages.
    pub fn log_text(&self) -> String {
        self.raw.lock().unwrap().join("\n")
    }

    /// Whether a log line matching `predicate` was written.
    pub fn has_log(&self, predicate: impl Fn(&Value) -> bool) -> bool {
        self.logs.lock().unwrap().iter().any(predicate)
    }

    /// How many log lines match `predicate`.
    pub fn count_logs(&self, predicate: impl Fn(&Value) -> bool) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| predicate(l))
            .count()
    }

    /// Waits for a log line matching `predicate`; panics with the log if none comes in time.
    pub fn wait_for_log(&self, predicate: impl Fn(&Value) -> bool, deadline: Duration) -> Value {
        let mut found = None;
        poll_until(deadline, || {
            found = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| predicate(l))
                .cloned();
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!(
                "no matching log line within {deadline:?}; log:\n{}",
                self.log_text()
            )
        })
    }

    /// Waits until at least `count` lines match `predicate`.
    pub fn wait_for_log_count(
        &self,
        predicate: impl Fn(&Value) -> bool,
        count: usize,
        deadline: Duration,
    ) {
        if !poll_until(deadline, || self.count_logs(&predicate) >= count) {
            panic!(
                "expected {count} matching log lines within {deadline:?}; log:\n{}",
                self.log_text()
            );
        }
    }

    /// The address the named listener bound (the latest `listening` line for it).
    pub fn listener_address(&self, name: &str) -> SocketAddr {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l["message"] == "listening" && l["listener"] == name)
            .and_then(|l| l["address"].as_str()?.parse().ok())
            .unwrap_or_else(|| panic!("no listener {name} in the log:\n{}", self.log_text()))
    }

    /// `http://127.0.0.1:PORT` of the named listener.
    pub fn url(&self, listener: &str) -> String {
        format!("http://{}", self.listener_address(listener))
    }

    /// The admin listener's address.
    pub fn admin_address(&self) -> SocketAddr {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| l["message"] == "admin listening")
            .and_then(|l| l["address"].as_str()?.parse().ok())
            .expect("admin address logged")
    }

    /// Replaces the config file atomically (write then rename), which triggers a reload.
    pub fn rewrite_config(&self, yaml: &str) {
        let temp = self.dir.path().join(".scalegate.yaml.new");
        std::fs::write(&temp, yaml).expect("new config written");
        std::fs::rename(&temp, &self.config).expect("config replaced");
    }

    /// Sends SIGHUP (reload).
    pub fn sighup(&self) {
        signal(self.pid(), "HUP");
    }

    /// Reload outcomes logged so far: (`config reloaded`, rejected-or-failed).
    pub fn reload_counts(&self) -> (usize, usize) {
        let ok = self.count_logs(|l| l["message"] == "config reloaded");
        let bad = self.count_logs(|l| {
            l["message"].as_str().is_some_and(|m| {
                m.starts_with("config reload rejected") || m.starts_with("config reload failed")
            })
        });
        (ok, bad)
    }

    /// The directory services write task logs to (`<dir>/<service>/<task-id>.log`).
    pub fn task_log_dir(&self) -> PathBuf {
        self.dir.path().join(TASK_LOG_DIR)
    }

    /// Stops the process with SIGTERM and waits for it (SIGKILL after 10 s); returns whether
    /// it exited by itself.
    pub fn stop(&mut self) -> bool {
        self.stop_with("TERM", Duration::from_secs(10))
    }

    /// Sends `signal_name` (`INT`, `TERM`, `KILL`...) and waits up to `deadline` for the
    /// process to exit (then SIGKILLs it); returns whether it exited within the deadline.
    pub fn stop_with(&mut self, signal_name: &str, deadline: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        signal(child.id(), signal_name);
        let exited = poll_until(deadline, || matches!(child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = child.kill();
        }
        let _ = child.wait();
        exited
    }
}

impl Drop for Scalegate {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends a signal with the `kill` utility (no libc dependency needed).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// A reqwest client for loopback: no proxies from the environment, no redirects followed.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client builds")
}

/// What a [`Backend`] echoes back.
#[derive(Debug, Clone)]
pub struct Echo {
    pub status: u16,
    pub json: Value,
    pub response_headers: reqwest::header::HeaderMap,
}

impl Echo {
    /// The backend id that answered.
    pub fn backend(&self) -> &str {
        self.json["backend"].as_str().unwrap_or("")
    }

    /// All values the target saw for header `name` (lower case).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.json["headers"][name]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The single value the target saw for header `name`, if any.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.header_values(name);
        assert!(values.len() <= 1, "{name} repeated: {values:?}");
        values.into_iter().next()
    }
}

/// Sends `request` and decodes the backend's echo (panics if the answer is not an echo).
pub async fn echo(request: reqwest::RequestBuilder) -> Echo {
    let response = request.send().await.expect("request completes");
    let status = response.status().as_u16();
    let response_headers = response.headers().clone();
    let text = response.text().await.expect("body read");
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: not a backend echo: {text}"));
    Echo {
        status,
        json,
        response_headers,
    }
}

/// A test target: an HTTP/1.1 + h2c (prior knowledge) server on 127.0.0.1:0 that echoes each
/// request as JSON `{backend, method, path, query, version, headers, body}` with
/// `x-backend: <id>` and `x-connection: <n>` (the n-th TCP connection this backend accepted,
/// from 1). Special paths: `/status/<code>`, `/sleep/<ms>`, `/set-cookie/<name>` (the echo
/// with `Set-Cookie: <name>=1; Path=/`, as an application starting a session), `/ws`
/// (upgrade: 101 then echoes bytes).
///
/// Its behaviour can be switched during a test through [`BackendControl`]: `/health` answers
/// the configured status (200 at first), every other request waits the configured delay and
/// answers the configured status (its own at first), and requests other than `/health` are
/// counted. Dropping the backend (or [`Backend::stop`])
/// closes its port, so connections are refused: a dead target.
pub struct Backend {
    pub id: String,
    pub address: SocketAddr,
    pub control: Arc<BackendControl>,
    server: Option<LoopbackServer>,
}

/// Switches of a running [`Backend`].
#[derive(Debug)]
pub struct BackendControl {
    health_status: std::sync::atomic::AtomicU16,
    delay_milliseconds: std::sync::atomic::AtomicU64,
    /// Status every request but `/health` answers; 0 leaves each request's own.
    status_override: std::sync::atomic::AtomicU16,
    served: AtomicUsize,
    health_checks: AtomicUsize,
    last_health_headers: Mutex<Option<BTreeMap<String, Vec<String>>>>,
}

impl BackendControl {
    /// Status `/health` answers from now on.
    pub fn set_health(&self, status: u16) {
        self.health_status.store(status, Ordering::Relaxed);
    }

    /// Delay before answering every request but `/health`.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_milliseconds
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Status every request but `/health` answers from now on, whatever its path (a target
    /// that fails while its health checks pass); 0 goes back to each request's own status.
    pub fn set_status(&self, status: u16) {
        self.status_override.store(status, Ordering::Relaxed);
    }

    /// Requests other than `/health` answered (or being answered) so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }

    /// `/health` requests received so far.
    pub fn health_checks(&self) -> usize {
        self.health_checks.load(Ordering::Relaxed)
    }

    /// The headers of the latest `/health` request (names lower case), to check what a
    /// health checker sends.
    pub fn last_health_headers(&self) -> Option<BTreeMap<String, Vec<String>>> {
        self.last_health_headers.lock().unwrap().clone()
    }
}

impl Backend {
    /// Starts a backend on its own runtime (usable from sync and async tests alike).
    pub fn start(id: &str) -> Backend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("backend binds");
        Backend::start_on(id, listener)
    }

    /// Starts a backend serving on an already bound `listener` (another loopback address, or
    /// a port shared with other backends).
    pub fn start_on(id: &str, listener: std::net::TcpListener) -> Backend {
        let id_owned = id.to_string();
        let control = Arc::new(BackendControl {
            health_status: std::sync::atomic::AtomicU16::new(200),
            delay_milliseconds: std::sync::atomic::AtomicU64::new(0),
            status_override: std::sync::atomic::AtomicU16::new(0),
            served: AtomicUsize::new(0),
            health_checks: AtomicUsize::new(0),
            last_health_headers: Mutex::new(None),
        });
        let shared_control = Arc::clone(&control);
        let server = LoopbackServer::start_on(listener, move |stream, connection| {
            let id = id_owned.clone();
            let control = Arc::clone(&shared_control);
            async move {
                let service = hyper::service::service_fn(move |request| {
                    let id = id.clone();
                    let control = Arc::clone(&control);
                    async move {
                        if request.uri().path() == "/health" {
                            *control.last_health_headers.lock().unwrap() =
                                Some(header_map(request.headers()));
                            control.health_checks.fetch_add(1, Ordering::Relaxed);
                            let status =
                                StatusCode::from_u16(control.health_status.load(Ordering::Relaxed))
                                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                            return Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("x-backend", id.as_str())
                                    .body(Full::new(Bytes::from_static(b"health\n")))
                                    .expect("health response builds"),
                            );
                        }
                        control.served.fetch_add(1, Ordering::Relaxed);
                        let delay = control.delay_milliseconds.load(Ordering::Relaxed);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        let mut response = answer(&id, request).await;
                        response
                            .headers_mut()
                            .insert("x-connection", connection.into());
                        let status = control.status_override.load(Ordering::Relaxed);
                        if let Ok(status) = StatusCode::from_u16(status) {
                            *response.status_mut() = status;
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            }
        });
        Backend {
            id: id.to_string(),
            address: server.address,
            control,
            server: Some(server),
        }
    }

    /// Closes the port and every open connection: from now on the target refuses
    /// connections, like a process that died.
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// `127.0.0.1:PORT`, as a target in the config.
    pub fn target(&self) -> String {
        self.address.to_string()
    }

    /// TCP connections this backend has accepted so far.
    pub fn connections_accepted(&self) -> usize {
        self.server
            .as_ref()
            .map_or(0, |server| server.accepted.load(Ordering::Relaxed))
    }
}

/// A target group's targets as `GET /api/target-groups/{group}/health` describes them:
/// `(ip:port, state, reason)`.
pub async fn target_states(gate: &Scalegate, group: &str) -> Vec<(String, String, Option<String>)> {
    let url = format!(
        "http://{}/api/target-groups/{group}/health",
        gate.admin_address()
    );
    let Ok(response) = client().get(url).send().await else {
        return Vec::new();
    };
    let Ok(body) = response.json::<Value>().await else {
        return Vec::new();
    };
    body["target_health_descriptions"]
        .as_array()
        .map(|targets| {
            targets
                .iter()
                .map(|target| {
                    (
                        format!(
                            "{}:{}",
                            target["target"]["id"].as_str().unwrap_or(""),
                            target["target"]["port"]
                        ),
                        target["target_health"]["state"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        target["target_health"]["reason"]
                            .as_str()
                            .map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Calls the admin API: `method path` with an optional JSON `body`; returns the status and
/// the JSON answer (`Value::Null` when the body is not JSON).
pub async fn admin_json(
    gate: &Scalegate,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = client().request(method, format!("http://{}{path}", gate.admin_address()));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("admin answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("admin body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls until `target` (`ip:port`) of `group` is in `state`; returns whether it got there
/// within `deadline`.
pub async fn wait_for_target_state(
    gate: &Scalegate,
    group: &str,
    target: &str,
    state: &str,
    deadline: Duration,
) -> bool {
    poll_until_async(deadline, || async {
        target_states(gate, group)
            .await
            .iter()
            .any(|(address, current, _)| address == target && current == state)
    })
    .await
}

/// A TCP server on 127.0.0.1:0 with its own runtime (usable from sync and async tests alike)
/// that hands each accepted connection, numbered from 1, to a task; stopped on drop.
struct LoopbackServer {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl LoopbackServer {
    fn start<F, Fut>(serve: F) -> LoopbackServer
    where
        F: Fn(tokio::net::TcpStream, usize) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("backend binds");
        LoopbackServer::start_on(listener, serve)
    }

    /// Like [`LoopbackServer::start`], on an already bound listener.
    fn start_on<F, Fut>(listener: std::net::TcpListener, serve: F) -> LoopbackServer
    where
        F: Fn(tokio::net::TcpStream, usize) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("backend runtime");
        listener.set_nonblocking(true).expect("non-blocking");
        let address = listener.local_addr().expect("backend address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let connection = counter.fetch_add(1, Ordering::Relaxed) + 1;
                tokio::spawn(serve(stream, connection));
            }
        });
        LoopbackServer {
            address,
            accepted,
            runtime: Some(runtime),
        }
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Header values by (lower-case) name, in arrival order.
fn header_map(headers: &hyper::HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    map
}

async fn answer(id: &str, mut request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    if path == "/ws" && request.headers().contains_key(hyper::header::UPGRADE) {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = hyper_util::rt::TokioIo::new(upgraded);
                let (mut reader, mut writer) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("x-backend", id)
            .body(Full::new(Bytes::new()))
            .expect("101 builds");
    }
    let mut status = StatusCode::OK;
    if let Some(code) = path.strip_prefix("/status/") {
        status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
    }
    if let Some(ms) = path.strip_prefix("/sleep/") {
        let ms = ms.parse::<u64>().unwrap_or(0).min(60_000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let headers = header_map(request.headers());
    let method = request.method().to_string();
    let query = request.uri().query().map(str::to_string);
    let version = format!("{:?}", request.version());
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = json!({
        "backend": id,
        "method": method,
        "path": path,
        "query": query,
        "version": version,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-backend", id);
    if let Some(name) = path.strip_prefix("/set-cookie/") {
        response = response.header("set-cookie", format!("{name}=1; Path=/"));
    }
    response
        .body(Full::new(Bytes::from(echo.to_string())))
        .expect("echo builds")
}

/// When a [`ClosingBackend`] closes a keep-alive connection, always without `Connection:
/// close`: silently, as a target whose keep-alive is shorter than the load balancer's does.
#[derive(Debug, Clone, Copy)]
pub enum SilentClose {
    /// After the connection has been idle (no new request) for this long.
    AfterIdle(Duration),
    /// Right after writing each response.
    AfterEachResponse,
}

/// A minimal HTTP/1.1 target that answers every request `200` with the JSON body
/// `{"backend": id, "connection": n}` (n-th accepted connection, from 1) and closes its
/// connections silently as [`SilentClose`] says. Requests must not have bodies.
pub struct ClosingBackend {
    pub address: SocketAddr,
    answered: Arc<AtomicUsize>,
    server: LoopbackServer,
}

impl ClosingBackend {
    pub fn start(id: &str, close: SilentClose) -> ClosingBackend {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let answered = Arc::new(AtomicUsize::new(0));
        let answered_count = Arc::clone(&answered);
        let id = id.to_string();
        let server = LoopbackServer::start(move |mut stream, connection| {
            let body = json!({"backend": id, "connection": connection}).to_string();
            let answered = Arc::clone(&answered_count);
            async move {
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let wait = match close {
                    SilentClose::AfterIdle(idle) => idle,
                    SilentClose::AfterEachResponse => Duration::from_secs(30),
                };
                let mut head = Vec::new();
                let mut buffer = [0u8; 8192];
                loop {
                    // Read one request head; an idle connection is closed after `wait`.
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
                            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buffer[..n]),
                            _ => return,
                        }
                    }
                    head.clear();
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                    if matches!(close, SilentClose::AfterEachResponse) {
                        return;
                    }
                }
            }
        });
        ClosingBackend {
            address: server.address,
            answered,
            server,
        }
    }

    /// `127.0.0.1:PORT`, as a target in the config.
    pub fn target(&self) -> String {
        self.address.to_string()
    }

    /// TCP connections accepted so far.
    pub fn connections_accepted(&self) -> usize {
        self.server.accepted.load(Ordering::Relaxed)
    }

    /// Responses written so far.
    pub fn responses(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }
}

/// A target that accepts TCP connections (the kernel completes the handshake into the
/// backlog) and never answers.
pub struct BlackHole {
    _listener: std::net::TcpListener,
    pub address: SocketAddr,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("black hole binds");
        let address = listener.local_addr().expect("address");
        BlackHole {
            _listener: listener,
            address,
        }
    }
}

/// A loopback port nothing listens on (bound, read, released): connecting is refused.
pub fn refused_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// Sends raw bytes on a fresh TCP connection and reads until the peer closes or 10 s pass;
/// returns what came back (lossy UTF-8). Write errors are ignored: the server may answer and
/// close before reading everything.
pub fn raw_exchange(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buffer[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response text (`HTTP/1.1 431 ...`).
pub fn raw_status(response: &str) -> Option<u16> {
    response
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .trim()
        .parse()
        .ok()
}

/// Fetches `/metrics` from the admin listener.
pub async fn metrics_text(gate: &Scalegate) -> String {
    let response = client()
        .get(format!("http://{}/metrics", gate.admin_address()))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status(), 200);
    response.text().await.expect("metrics body")
}

/// Sum of the samples of `name` whose labels include every `(label, value)` in `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let (metric, label_text) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        let all = labels
            .iter()
            .all(|(label, wanted)| label_text.contains(&format!("{label}=\"{wanted}\"")));
        if all {
            total += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// The `admin:` block every test config uses.
pub const ADMIN: &str = "admin:\n  address: 127.0.0.1:0\n";

/// Whether a third-party tool is on PATH.
pub fn have_tool(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// For tools that may be skipped (promtool, h2load): true to run; false (with a message) to
/// skip when `CI` is unset; panics when `CI` is set and the tool is missing.
pub fn optional_tool(tool: &str) -> bool {
    if have_tool(tool) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is not installed; CI must install it (see scripts/test.sh)");
    }
    eprintln!("skipped: {tool} not installed");
    false
}

/// For tools a test cannot do without (curl): panics with a clear message when missing.
pub fn require_tool(tool: &str) {
    assert!(
        have_tool(tool),
        "{tool} is not installed: apt-get install {tool} (scripts/test.sh does this in CI)"
    );
}

/// A single-worker `load_balancer:` block, so every client connection shares one set of
/// target pools and connection counts are exact.
pub const ONE_WORKER: &str = "load_balancer:\n  runtime:\n    mode: per_core\n    workers: 1\n";

/// Polls `/metrics` until `metric_sum(name, labels)` satisfies `wanted` or `deadline` passes;
/// returns the last exposition text and whether it did.
pub async fn poll_metric(
    gate: &Scalegate,
    name: &str,
    labels: &[(&str, &str)],
    deadline: Duration,
    wanted: impl Fn(f64) -> bool,
) -> (String, bool) {
    let end = Instant::now() + deadline;
    loop {
        let text = metrics_text(gate).await;
        if wanted(metric_sum(&text, name, labels)) {
            return (text, true);
        }
        if Instant::now() >= end {
            return (text, false);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connects to an HTTPS listener as `name` (DNS overridden to `address`) on a fresh client,
/// trusting only `trusted` (or anything when `None`); returns the peer certificate DER, the
/// HTTP version and the body.
pub async fn https_fetch(
    address: SocketAddr,
    name: &str,
    trusted: Option<&str>,
) -> Result<(Vec<u8>, reqwest::Version, String), reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_info(true)
        .resolve(name, address);
    builder = match trusted {
        Some(pem) => builder
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()),
        None => builder.danger_accept_invalid_certs(true),
    };
    let http = builder.build().unwrap();
    let response = http
        .get(format!("https://{name}:{}/", address.port()))
        .send()
        .await?;
    let der = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("peer certificate")
        .to_vec();
    let version = response.version();
    Ok((der, version, response.text().await?))
}

/// A self-signed certificate for `name` (its own CA) written to `dir` as `<file>.crt` and
/// `<file>.key`; returns (certificate PEM, certificate DER).
pub fn write_certificate(dir: &Path, name: &str, file: &str) -> (String, Vec<u8>) {
    let generated =
        rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("certificate");
    let pem = generated.cert.pem();
    std::fs::write(dir.join(format!("{file}.crt")), &pem).unwrap();
    std::fs::write(
        dir.join(format!("{file}.key")),
        generated.key_pair.serialize_pem(),
    )
    .unwrap();
    (pem, generated.cert.der().to_vec())
}

/// Asserts that `promtool check metrics` accepts an exposition (skipped without promtool,
/// which `scripts/test.sh` installs).
pub fn promtool_accepts(metrics: &str) {
    if !optional_tool("promtool") {
        return;
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Discovery and the embedded registry (issue 4).

/// Starts one [`Backend`] per `(id, address)`, every one on the same port of its own loopback
/// address (127.0.0.x), as the tasks behind one DNS name whose A records all share one port.
/// Retries a bounded number of times when the port is already taken on one of the addresses.
pub fn backends_sharing_port(backends: &[(&str, std::net::Ipv4Addr)]) -> Vec<Backend> {
    assert!(!backends.is_empty(), "no backend asked for");
    for _ in 0..50 {
        let first = std::net::TcpListener::bind((backends[0].1, 0)).expect("backend binds");
        let port = first.local_addr().expect("backend address").port();
        let mut listeners = vec![first];
        for (_, address) in &backends[1..] {
            match std::net::TcpListener::bind((*address, port)) {
                Ok(listener) => listeners.push(listener),
                Err(_) => break,
            }
        }
        if listeners.len() == backends.len() {
            return backends
                .iter()
                .zip(listeners)
                .map(|((id, _), listener)| Backend::start_on(id, listener))
                .collect();
        }
    }
    panic!("no port free on every one of {backends:?} after 50 attempts");
}

/// One resource record as `dig` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// The owner name, with its final dot.
    pub name: String,
    pub ttl: u32,
    /// `A`, `AAAA`, `SRV`, `SOA`...
    pub record_type: String,
    /// The record data as dig prints it (`127.0.0.1`, `1 1 8081 app-1.app.scalegate.local.`).
    pub data: String,
}

/// A response as `dig` reported it (its default output, parsed).
#[derive(Debug, Clone)]
pub struct DigAnswer {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`...
    pub status: String,
    /// Header flags: `qr`, `aa`, `tc`, `rd`...
    pub flags: Vec<String>,
    pub answer: Vec<DnsRecord>,
    pub authority: Vec<DnsRecord>,
    pub additional: Vec<DnsRecord>,
    /// `UDP` or `TCP`: how the response that dig printed came.
    pub transport: String,
    /// dig's whole output, for failure messages.
    pub text: String,
}

impl DigAnswer {
    /// Whether the header has `flag` (`aa`, `tc`...).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The data of the answer records of `record_type`, sorted.
    pub fn answer_data(&self, record_type: &str) -> Vec<String> {
        let mut data: Vec<String> = self
            .answer
            .iter()
            .filter(|record| record.record_type == record_type)
            .map(|record| record.data.clone())
            .collect();
        data.sort();
        data
    }
}

/// Runs `dig @server -p port <args>` (3 s per try, two tries) and parses what it printed.
/// Panics (with the output) when dig itself fails, e.g. when it got no answer at all.
pub fn dig(server: SocketAddr, args: &[&str]) -> DigAnswer {
    require_tool("dig");
    let output = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=3", "+tries=2"])
        .args(args)
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dig {args:?} failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_dig(&text)
}

/// Parses dig's default output (see [`dig`]).
pub fn parse_dig(text: &str) -> DigAnswer {
    let mut answer = DigAnswer {
        status: String::new(),
        flags: Vec::new(),
        answer: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
        transport: String::new(),
        text: text.to_string(),
    };
    #[derive(PartialEq)]
    enum Section {
        None,
        Answer,
        Authority,
        Additional,
    }
    let mut section = Section::None;
    for line in text.lines() {
        if let Some(rest) = line.split_once("status: ").map(|(_, rest)| rest) {
            answer.status = rest.split(',').next().unwrap_or("").trim().to_string();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            answer.flags = rest
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect();
        } else if let Some(rest) = line.strip_prefix(";; SERVER: ") {
            answer.transport = rest
                .rsplit('(')
                .next()
                .unwrap_or("")
                .trim_end_matches(')')
                .to_string();
        } else if line.starts_with(";; ANSWER SECTION:") {
            section = Section::Answer;
        } else if line.starts_with(";; AUTHORITY SECTION:") {
            section = Section::Authority;
        } else if line.starts_with(";; ADDITIONAL SECTION:") {
            section = Section::Additional;
        } else if line.trim().is_empty() || line.starts_with(';') {
            if line.trim().is_empty() {
                section = Section::None;
            }
        } else if section != Section::None {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 {
                continue;
            }
            let record = DnsRecord {
                name: fields[0].to_string(),
                ttl: fields[1].parse().unwrap_or(u32::MAX),
                record_type: fields[3].to_string(),
                data: fields[4..].join(" "),
            };
            match section {
                Section::Answer => answer.answer.push(record),
                Section::Authority => answer.authority.push(record),
                Section::Additional => answer.additional.push(record),
                Section::None => {}
            }
        }
    }
    answer
}

/// The registry's DNS address (`GET /api/registry` → `dns_address`); panics when it does not
/// serve.
pub async fn registry_dns_address(gate: &Scalegate) -> SocketAddr {
    let (status, body) = admin_json(gate, reqwest::Method::GET, "/api/registry", None).await;
    assert_eq!(status, 200, "{body}");
    body["dns_address"]
        .as_str()
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no dns_address in /api/registry: {body}"))
}

/// The admin path of an instance of the embedded registry.
pub fn instance_path(namespace: &str, service: &str, id: &str) -> String {
    format!("/api/registry/namespaces/{namespace}/services/{service}/instances/{id}")
}

/// Registers (or updates) an instance through the admin API (Cloud Map's RegisterInstance);
/// returns the instance as the API lists it. Panics unless it answers 200.
pub async fn register_instance(
    gate: &Scalegate,
    namespace: &str,
    service: &str,
    id: &str,
    address: SocketAddr,
) -> Value {
    let body = json!({"address": address.ip(), "port": address.port()}).to_string();
    let (status, answer) = admin_json(
        gate,
        reqwest::Method::PUT,
        &instance_path(namespace, service, id),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "register {id}: {answer}");
    answer
}

/// Deregisters an instance through the admin API; returns the answer
/// (`{"keep_reachable_for_seconds": N}`). Panics unless it answers 200.
pub async fn deregister_instance(
    gate: &Scalegate,
    namespace: &str,
    service: &str,
    id: &str,
) -> Value {
    let (status, answer) = admin_json(
        gate,
        reqwest::Method::DELETE,
        &instance_path(namespace, service, id),
        None,
    )
    .await;
    assert_eq!(status, 200, "deregister {id}: {answer}");
    answer
}

/// Sets an instance's health (`HEALTHY` or `UNHEALTHY`) through the admin API.
pub async fn set_instance_health(
    gate: &Scalegate,
    namespace: &str,
    service: &str,
    id: &str,
    health: &str,
) {
    let path = format!("{}/health", instance_path(namespace, service, id));
    let body = json!({ "status": health }).to_string();
    let (status, answer) = admin_json(gate, reqwest::Method::PUT, &path, Some(&body)).await;
    assert_eq!(status, 200, "health of {id}: {answer}");
}

/// The `GET /api/discovery` entry of target group `group` (`{target_group, source, status}`);
/// `Value::Null` when it has no watch.
pub async fn discovery_watch(gate: &Scalegate, group: &str) -> Value {
    let (status, body) = admin_json(gate, reqwest::Method::GET, "/api/discovery", None).await;
    assert_eq!(status, 200, "{body}");
    body["watches"]
        .as_array()
        .and_then(|watches| {
            watches
                .iter()
                .find(|watch| watch["target_group"] == group)
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// Whether a log line is the target group's `message` about `address` (`ip:port`), such as
/// `target registered` or `target draining`.
pub fn is_target_log(line: &Value, message: &str, group: &str, address: &str) -> bool {
    line["message"] == message && line["target_group"] == group && line["address"] == address
}

/// One request of a [`SteadyLoad`], as its client saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// When the request was sent.
    pub sent: Instant,
    /// When its response ended (or it failed).
    pub done: Instant,
    /// The response status; `None` for a transport error.
    pub status: Option<u16>,
    /// The `x-backend` header, else the transport or body error.
    pub answered_by: String,
}

impl Exchange {
    /// Anything but a complete 200 is a failed request.
    pub fn failed(&self) -> bool {
        self.status != Some(200)
    }
}

/// A closed-loop load in the background: `clients` tasks, each sending its next GET as soon
/// as the previous one is answered, so about `clients` requests are in flight at a time, until
/// stopped or until `cap` requests in all (no loop runs unbounded).
pub struct SteadyLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SteadyLoad {
    /// Starts the clients on the current tokio runtime, all sending GET `url`.
    pub fn start(url: String, clients: usize, cap: usize) -> SteadyLoad {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let http = client();
        let tasks = (0..clients)
            .map(|_| {
                let (stop, exchanges, http, url) = (
                    Arc::clone(&stop),
                    Arc::clone(&exchanges),
                    http.clone(),
                    url.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) && exchanges.lock().unwrap().len() < cap {
                        let sent = Instant::now();
                        let (status, answered_by) = match http.get(&url).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                let backend = response
                                    .headers()
                                    .get("x-backend")
                                    .map(|value| value.to_str().unwrap_or("").to_string());
                                match (response.bytes().await, backend) {
                                    (Ok(_), Some(backend)) => (Some(status), backend),
                                    (Ok(body), None) => (
                                        Some(status),
                                        String::from_utf8_lossy(&body).trim().to_string(),
                                    ),
                                    (Err(error), _) => (None, format!("body error: {error}")),
                                }
                            }
                            Err(error) => (None, format!("transport error: {error}")),
                        };
                        exchanges.lock().unwrap().push(Exchange {
                            sent,
                            done: Instant::now(),
                            status,
                            answered_by,
                        });
                    }
                })
            })
            .collect();
        SteadyLoad {
            stop,
            exchanges,
            tasks,
        }
    }

    /// Requests ended (answered or failed) so far.
    pub fn count(&self) -> usize {
        self.exchanges.lock().unwrap().len()
    }

    /// Failed requests so far.
    pub fn failures(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .unwrap()
            .iter()
            .filter(|exchange| exchange.failed())
            .cloned()
            .collect()
    }

    /// Waits until `more` requests beyond those ended so far have ended; returns whether they
    /// did within `deadline`.
    pub async fn wait_for_more(&self, more: usize, deadline: Duration) -> bool {
        let already = self.count();
        poll_until_async(deadline, || async { self.count() >= already + more }).await
    }

    /// Stops the clients (each finishes its request in flight) and returns every exchange.
    pub async fn finish(self) -> Vec<Exchange> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let exchanges = self.exchanges.lock().unwrap().clone();
        exchanges
    }
}

// ---------------------------------------------------------------------------------------------
// Processes: whether a task's process group outlived scalegate.

/// Members of process group `pgid`, from `/proc/<pid>/stat`.
pub fn process_group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| process_state_and_group(pid).is_some_and(|(_, group)| group == pgid))
        .collect()
}

/// A process's state letter and process group, from `/proc/<pid>/stat` (fields 3 and 5);
/// `None` when it does not exist.
pub fn process_state_and_group(pid: i32) -> Option<(String, i32)> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = line[line.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.to_string();
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

/// Gone, or a zombie nobody reaped (PID 1 of a container may never reap).
pub fn process_is_dead(pid: i32) -> bool {
    process_state_and_group(pid).is_none_or(|(state, _)| state == "Z" || state == "X")
}

// --- services: a gateway with workload tasks (tests/services.rs, tests/loadtest.rs) ---

/// A listener `web` forwarding to target group `app`, health-checked every 5 s (2 s timeout, 2
/// checks to pass or fail), with a 5 s deregistration delay; the registry serving
/// `scalegate.local` with a 1 s TTL (a stopping task waits it out before SIGTERM). Then the
/// test's task definitions and services.
pub fn gateway_config(task_definitions_and_services: &str) -> String {
    format!(
        r#"admin:
  address: 127.0.0.1:0
listeners:
  - name: web
    protocol: HTTP
    address: 127.0.0.1:0
    default_action:
      forward:
        target_group: app
target_groups:
  - name: app
    protocol: HTTP
    health_check:
      path: /health
      interval_seconds: 5
      timeout_seconds: 2
      healthy_threshold_count: 2
      unhealthy_threshold_count: 2
    deregistration_delay_seconds: 5
registry:
  address: 127.0.0.1:0
  namespaces:
    - name: scalegate.local
      ttl_seconds: 1
{task_definitions_and_services}"#
    )
}

/// Task definition `app`: the workload server (`scalegate` is the binary under test) on its
/// `$PORT`, plus `extra_args`.
pub fn workload_definition(extra_args: &str) -> String {
    format!(
        r#"task_definitions:
  - family: app
    command: scalegate
    args: [workload, --host, 127.0.0.1{extra_args}]
    cpu: 256
    memory: 256
    stop_timeout_seconds: 5
"#
    )
}

/// Service `app` of `desired` workload tasks in target group `app` and the registry, with a
/// 5 s health-check grace period, and `scaling` (YAML under `scaling:`, indented 6) if any.
pub fn workload_service(desired: u32, scaling: Option<&str>) -> String {
    let mut service = format!(
        r#"services:
  - name: app
    task_definition: app
    desired_count: {desired}
    health_check_grace_period_seconds: 5
    load_balancers:
      - target_group: app
    service_registry:
      namespace: scalegate.local
"#
    );
    if let Some(scaling) = scaling {
        service.push_str("    scaling:\n");
        service.push_str(scaling);
    }
    service
}
