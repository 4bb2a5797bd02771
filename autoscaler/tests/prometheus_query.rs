//! `CustomMetric::promql` (and a scrape of its `/metrics`) against a real Prometheus server (the Debian `prometheus` package,
//! which `scripts/test.sh` installs): the query API's real answers, not hand-written JSON.
//!
//! Skipped, saying so, when `prometheus` is not on PATH.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use scalegate_autoscaler::metrics::{CustomMetric, MetricClient, MetricError};

/// How long Prometheus may take to become ready (it opens its TSDB first).
const READY_DEADLINE: Duration = Duration::from_secs(60);
const READY_POLL: Duration = Duration::from_millis(100);

/// A Prometheus server on a loopback port, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with a config that scrapes nothing; `None` when it is not installed.
    fn start() -> Option<Prometheus> {
        if Command::new("prometheus")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  evaluation_interval: 1m\n").expect("write config");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        // A free port: bound, read, released for Prometheus to take.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a loopback port")
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Some(Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        })
    }

    /// Polls `/-/ready` until it answers 200, Prometheus exits, or the deadline passes.
    async fn wait_ready(&mut self) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let ready: http::Uri = format!("{}/-/ready", self.url).parse().expect("ready URL");
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(response) = client.get(ready.clone()).await {
                if response.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().expect("poll prometheus") {
                panic!("prometheus exited ({status}) before ready:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within {READY_DEADLINE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.dir.path().join("prometheus.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn promql_queries_against_a_real_prometheus() {
    let Some(mut prometheus) = Prometheus::start() else {
        eprintln!(
            "SKIPPED promql_queries_against_a_real_prometheus: `prometheus` is not on PATH \
             (Debian: apt-get install prometheus; scripts/test.sh installs it)"
        );
        return;
    };
    prometheus.wait_ready().await;
    let client = MetricClient::new();
    let query =
        |text: &str| CustomMetric::promql(&client, &prometheus.url, text).expect("valid URL");

    assert_eq!(query("vector(42)").sample().await, Ok(Some(42.0)));
    assert_eq!(query("scalar(vector(3))").sample().await, Ok(Some(3.0)));

    match query("sum(").sample().await {
        Err(MetricError::QueryRefused { error_type, .. }) => assert_eq!(error_type, "bad_data"),
        other => panic!("a syntax error must be refused: {other:?}"),
    }
    match query(r#"vector(1) or label_replace(vector(2), "copy", "yes", "", "")"#)
        .sample()
        .await
    {
        Err(MetricError::QuerySeveralSeries { count, .. }) => assert_eq!(count, 2),
        other => panic!("two series must be refused: {other:?}"),
    }
    assert_eq!(
        query("no_such_metric_anywhere").sample().await,
        Err(MetricError::QueryNoSeries {
            query: "no_such_metric_anywhere".to_owned()
        })
    );
    // Its own /metrics is a real exposition (histograms, summaries, escaped help text).
    let mut build_info = CustomMetric::scrape(
        &client,
        &format!("{}/metrics", prometheus.url),
        "prometheus_build_info",
        Default::default(),
    )
    .expect("valid URL");
    assert_eq!(build_info.sample().await, Ok(Some(1.0)));

    match query("vector(1)[1m:10s]").sample().await {
        Err(MetricError::QueryAnswer { reason, .. }) => {
            assert!(reason.contains("range vector"), "{reason}")
        }
        other => panic!("a range vector must be refused: {other:?}"),
    }
}
