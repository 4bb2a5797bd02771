//! `scalegate workload`, black box: the real binary on loopback, driven by reqwest and curl.
//! Request counting, chosen statuses and failures, honest CPU burning (seen in `/proc`), health
//! flips, `/exit`, and the SIGTERM drain.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{binary, client, poll_until, poll_until_async, require_tool, START_DEADLINE};
use serde_json::Value;

/// How long a stopping server may take to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// A running `scalegate workload` process, killed on drop.
struct Workload {
    child: Child,
    address: SocketAddr,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl Workload {
    /// Starts the server on 127.0.0.1:0 with extra flags.
    fn start(args: &[&str]) -> Workload {
        Self::start_with(args, &[("SCALEGATE_TASK_ID", "task-under-test")])
    }

    /// Starts the server with `args` (a `--listen` is added unless `PORT` is in `env`) and
    /// waits for its `listening` log line.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Workload {
        let mut command = Command::new(binary());
        command.args(["--log-format", "json", "workload"]);
        if !env.iter().any(|(name, _)| *name == "PORT") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .env_remove("PORT")
            .env_remove("SCALEGATE_TASK_ID")
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scalegate workload starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                    logs.lock().unwrap().push(value);
                }
            });
        }
        let mut listening = None;
        poll_until(START_DEADLINE, || {
            listening = logs
                .lock()
                .unwrap()
                .iter()
                .find(|line| line["message"] == "listening")
                .cloned();
            listening.is_some() || matches!(child.try_wait(), Ok(Some(_)))
        });
        let Some(listening) = listening else {
            let _ = child.kill();
            panic!("no `listening` log line; log: {:?}", logs.lock().unwrap());
        };
        let logged: SocketAddr = listening["address"]
            .as_str()
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("listening line without an address: {listening}"));
        // A server on 0.0.0.0 is reached on loopback.
        let address = SocketAddr::from(([127, 0, 0, 1], logged.port()));
        Workload {
            child,
            address,
            logs,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.address)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit; panics if it does not within [`EXIT_DEADLINE`].
    fn wait_for_exit(&mut self) -> ExitStatus {
        let mut status = None;
        poll_until(EXIT_DEADLINE, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status.unwrap_or_else(|| panic!("still running after {EXIT_DEADLINE:?}"))
    }

    fn has_log(&self, message: &str) -> bool {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .any(|line| line["message"] == message)
    }

    fn log_line(&self, message: &str) -> Option<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .find(|line| line["message"] == message)
            .cloned()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.expect("request answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn post(url: &str) -> u16 {
    client()
        .post(url)
        .send()
        .await
        .expect("request answered")
        .status()
        .as_u16()
}

/// `curl`'s status code for `url`, with extra arguments.
fn curl_status(url: &str, extra: &[&str]) -> String {
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--noproxy",
            "*",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// utime + stime of a process, from `/proc/<pid>/stat`, in seconds.
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    let output = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

#[tokio::test]
async fn counts_requests_and_reports_them() {
    let server = Workload::start(&[]);
    let (status, first) = get_json(&server.url("/")).await;
    assert_eq!(status, 200);
    assert_eq!(first["request"], 1);
    assert_eq!(first["task_id"], "task-under-test");
    // Control endpoints are not workload requests.
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    let response = client().get(server.url("/any/path")).send().await.unwrap();
    assert_eq!(response.headers()["x-workload-request"], "2");
    assert_eq!(response.headers()["x-workload-task-id"], "task-under-test");
    let second: Value = response.json().await.unwrap();
    assert_eq!(second["request"], 2);

    let (status, stats) = get_json(&server.url("/stats")).await;
    assert_eq!(status, 200);
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["in_flight"], 0);
    assert_eq!(stats["task_id"], "task-under-test");
    assert!(stats["uptime_seconds"].as_f64().unwrap() > 0.0);

    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\nworkload_requests_total 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nworkload_in_flight_requests 0\n"));
    common::promtool_accepts(&metrics);
    assert!(server.log_line("listening").unwrap()["task_id"] == "task-under-test");
}

#[tokio::test]
async fn status_failures_and_body_size_follow_flags_and_query() {
    require_tool("curl");
    let server = Workload::start(&["--status", "201"]);
    assert_eq!(curl_status(&server.url("/"), &[]), "201");
    assert_eq!(curl_status(&server.url("/?status=503"), &[]), "503");
    assert_eq!(
        curl_status(&server.url("/?status=503"), &["--http2-prior-knowledge"]),
        "503"
    );
    for _ in 0..10 {
        let (status, body) = get_json(&server.url("/?fail_percent=100")).await;
        assert_eq!(status, 500);
        assert_eq!(body["failed"], true);
    }
    assert_eq!(get_json(&server.url("/?fail_percent=0")).await.0, 201);
    let (_, stats) = get_json(&server.url("/stats")).await;
    assert_eq!(stats["failed"], 10);

    let response = client()
        .get(server.url("/?bytes=100000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.content_length(), Some(100_000));
    assert_eq!(response.bytes().await.unwrap().len(), 100_000);

    let (status, error) = get_json(&server.url("/?cpu_ms=lots")).await;
    assert_eq!(status, 400);
    assert!(
        error["error"].as_str().unwrap().starts_with("cpu_ms:"),
        "{error}"
    );
}

#[tokio::test]
async fn cpu_ms_shows_in_the_process_cpu_time() {
    let server = Workload::start(&[]);
    // Warm up the connection pool and the server's first-request paths.
    assert_eq!(get_json(&server.url("/")).await.0, 200);
    let before = process_cpu_seconds(server.pid());
    let started = Instant::now();
    for _ in 0..10 {
        let (status, body) = get_json(&server.url("/?cpu_ms=50")).await;
        assert_eq!(status, 200);
        assert!(body["cpu_ms_burned"].as_f64().unwrap() >= 50.0, "{body}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let used = process_cpu_seconds(server.pid()) - before;
    // 10 × 50 ms = 0.5 s of CPU; ticks are 10 ms and HTTP costs a little.
    assert!(
        (0.45..1.0).contains(&used),
        "CPU used {used:.3} s for 0.5 s asked"
    );
    assert!(elapsed >= 0.5, "burning is CPU time, so it takes time");
    let (_, stats) = get_json(&server.url("/stats")).await;
    let counted = stats["cpu_seconds"].as_f64().unwrap();
    assert!((0.5..0.6).contains(&counted), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_burns_queue_for_slots_without_blocking_other_connections() {
    let server = Workload::start(&["--cpu-workers", "1"]);
    let burns: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/?cpu_ms=1200");
            tokio::spawn(async move { get_json(&url).await.0 })
        })
        .collect();
    let started = Instant::now();
    let busy = poll_until_async(Duration::from_secs(5), || async {
        get_json(&server.url("/stats")).await.1["in_flight"] == 2
    })
    .await;
    assert!(busy, "both burns in flight");
    // The I/O thread still answers while the only CPU slot is busy and a burn waits for it
    // (a burn on the I/O thread would hold this answer for a second or more).
    let probe = Instant::now();
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    assert!(
        probe.elapsed() < Duration::from_millis(800),
        "{:?}",
        probe.elapsed()
    );
    for burn in burns {
        assert_eq!(burn.await.unwrap(), 200);
    }
    // One slot: the second burn ran after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(2300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn health_flips_by_request_and_by_time() {
    let server = Workload::start(&["--health-path", "/ready"]);
    assert_eq!(get_json(&server.url("/ready")).await.0, 200);
    assert_eq!(post(&server.url("/health/fail")).await, 200);
    let (status, body) = get_json(&server.url("/ready")).await;
    assert_eq!((status, &body["healthy"]), (503, &Value::Bool(false)));
    assert_eq!(post(&server.url("/health/ok")).await, 200);
    assert_eq!(get_json(&server.url("/ready")).await.0, 200);
    // Flipping is POST only, so a crawler or health checker cannot flip it by accident.
    assert_eq!(get_json(&server.url("/health/fail")).await.0, 405);
    assert_eq!(get_json(&server.url("/ready")).await.0, 200);

    let server = Workload::start(&["--unhealthy-after-seconds", "1"]);
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
    let failing = poll_until_async(Duration::from_secs(5), || async {
        get_json(&server.url("/health")).await.0 == 503
    })
    .await;
    assert!(
        failing,
        "health did not fail after --unhealthy-after-seconds"
    );
    assert_eq!(post(&server.url("/health/ok")).await, 200);
    assert_eq!(get_json(&server.url("/health")).await.0, 200);
}

#[tokio::test]
async fn exit_ends_the_process_with_the_code_asked_for() {
    require_tool("curl");
    let mut server = Workload::start(&[]);
    assert_eq!(curl_status(&server.url("/exit?code=3"), &[]), "405");
    assert_eq!(
        curl_status(&server.url("/exit?code=3"), &["-X", "POST"]),
        "200"
    );
    assert_eq!(server.wait_for_exit().code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let mut server = Workload::start(&[]);
    let h1 = {
        let url = server.url("/?sleep_ms=500");
        tokio::spawn(async move { get_json(&url).await })
    };
    let h2 = {
        let url = server.url("/?sleep_ms=500");
        let h2c = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        tokio::spawn(async move {
            let response = h2c.get(url).send().await.expect("h2c answered");
            assert_eq!(response.version(), reqwest::Version::HTTP_2);
            response.status().as_u16()
        })
    };
    let in_flight = poll_until_async(Duration::from_secs(5), || async {
        get_json(&server.url("/stats")).await.1["in_flight"] == 2
    })
    .await;
    assert!(in_flight);
    let signalled = Instant::now();
    common::signal(server.pid(), "TERM");

    let (status, body) = h1.await.unwrap();
    assert_eq!((status, body["sleep_ms"].as_f64()), (200, Some(500.0)));
    assert_eq!(h2.await.unwrap(), 200);
    assert_eq!(server.wait_for_exit().code(), Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(server.has_log("stopped"));
    // The listener is gone.
    assert!(std::net::TcpStream::connect(server.address).is_err());
}

#[tokio::test]
async fn sigterm_cuts_requests_that_outlast_the_grace() {
    let mut server = Workload::start(&["--shutdown-grace-seconds", "1"]);
    let slow = {
        let url = server.url("/?sleep_ms=30000");
        tokio::spawn(async move { client().get(url).send().await.is_ok() })
    };
    let in_flight = poll_until_async(Duration::from_secs(5), || async {
        get_json(&server.url("/stats")).await.1["in_flight"] == 1
    })
    .await;
    assert!(in_flight);
    let signalled = Instant::now();
    common::signal(server.pid(), "TERM");
    assert_eq!(server.wait_for_exit().code(), Some(0));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(
        !slow.await.unwrap(),
        "the cut request must not look answered"
    );
    let warning = server.log_line("shutdown grace ran out; cutting requests");
    assert_eq!(warning.expect("warning logged")["abandoned"], 1);
}

#[tokio::test]
async fn port_from_the_environment_when_no_listen_flag() {
    let server = Workload::start_with(&[], &[("PORT", "0")]);
    let listening = server.log_line("listening").unwrap();
    assert!(
        listening["address"]
            .as_str()
            .unwrap()
            .starts_with("0.0.0.0:"),
        "{listening}"
    );
    assert_eq!(get_json(&server.url("/")).await.1["task_id"], Value::Null);
}
