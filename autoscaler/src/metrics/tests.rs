//! `CustomMetric::sample` against a real HTTP server on loopback: what each kind of source
//! and each kind of failure yields.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;
use crate::scaling::PredefinedMetricType;

/// What the test server answers.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Never answer (to hit the client's deadline).
    hang: bool,
}

impl Reply {
    fn ok(body: &str) -> Reply {
        Reply::status(200, body)
    }

    fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            hang: false,
        }
    }
}

/// A request the server received: the URI as sent and its `Accept` header.
#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    accept: String,
}

/// An HTTP/1.1 server on 127.0.0.1 whose answer a test changes between readings.
struct TestServer {
    address: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start(reply: Reply) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("bound address");
        let reply = Arc::new(Mutex::new(reply));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (loop_reply, loop_seen) = (reply.clone(), seen.clone());
        let accept_loop = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (reply, seen) = (loop_reply.clone(), loop_seen.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (reply, seen) = (reply.clone(), seen.clone());
                    async move {
                        seen.lock().unwrap().push(Seen {
                            uri: request.uri().to_string(),
                            accept: request
                                .headers()
                                .get(http::header::ACCEPT)
                                .and_then(|value| value.to_str().ok())
                                .unwrap_or_default()
                                .to_owned(),
                        });
                        let reply = reply.lock().unwrap().clone();
                        if reply.hang {
                            std::future::pending::<()>().await;
                        }
                        let mut response = Response::builder().status(reply.status);
                        for (name, value) in reply.headers {
                            response = response.header(name, value);
                        }
                        Ok::<_, Infallible>(
                            response
                                .body(Full::new(Bytes::from(reply.body)))
                                .expect("valid response"),
                        )
                    }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestServer {
            address,
            reply,
            seen,
            accept_loop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn answer(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(label, value)| (label.to_string(), value.to_string()))
        .collect()
}

/// A scrape of `metric_name{labels}` at the server's `/metrics`.
fn scrape(server: &TestServer, metric_name: &str, selected: &[(&str, &str)]) -> CustomMetric {
    CustomMetric::scrape(
        &MetricClient::new(),
        &server.url("/metrics"),
        metric_name,
        labels(selected),
    )
    .expect("valid URL")
}

/// A PromQL reader of `query` against the server.
fn promql(server: &TestServer, query: &str) -> CustomMetric {
    CustomMetric::promql(&MetricClient::new(), &server.url(""), query).expect("valid URL")
}

fn vector_answer(values: &[&str]) -> String {
    let elements: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            format!(r#"{{"metric":{{"instance":"i{index}"}},"value":[1700000000.5,"{value}"]}}"#)
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        elements.join(",")
    )
}

/// A loopback port with nothing listening: bound, then released.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    listener.local_addr().expect("bound address")
}

#[tokio::test]
async fn a_gauge_is_read_as_it_is_with_the_text_format_requested() {
    let server = TestServer::start(Reply::ok("# TYPE queue_depth gauge\nqueue_depth 7\n")).await;
    let mut metric = scrape(&server, "queue_depth", &[]);
    assert_eq!(metric.sample().await, Ok(Some(7.0)));
    server.answer(Reply::ok("# TYPE queue_depth gauge\nqueue_depth 3.5\n"));
    assert_eq!(metric.sample().await, Ok(Some(3.5)));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].uri, "/metrics");
    assert!(
        seen[0].accept.starts_with("text/plain;version=0.0.4"),
        "{}",
        seen[0].accept
    );
}

#[tokio::test]
async fn an_untyped_metric_is_read_as_it_is() {
    let server = TestServer::start(Reply::ok("inflight 4\n")).await;
    let mut metric = scrape(&server, "inflight", &[]);
    assert_eq!(metric.sample().await, Ok(Some(4.0)));
    assert_eq!(metric.sample().await, Ok(Some(4.0)));
}

#[tokio::test]
async fn a_counter_is_read_as_its_rate_between_two_readings() {
    let counter =
        |value: u32| Reply::ok(&format!("# TYPE jobs_total counter\njobs_total {value}\n"));
    let server = TestServer::start(counter(100)).await;
    let mut metric = scrape(&server, "jobs_total", &[]);

    let first_started = Instant::now();
    assert_eq!(metric.sample().await, Ok(None), "no rate from one reading");
    let first_done = Instant::now();
    server.answer(counter(110));
    let second_started = Instant::now();
    let rate = metric.sample().await.expect("reads").expect("a rate");
    let second_done = Instant::now();

    // The readings were timed somewhere inside their calls, so the rate lies between 10
    // over the longest and 10 over the shortest possible interval.
    let longest = second_done.duration_since(first_started).as_secs_f64();
    let shortest = second_started.duration_since(first_done).as_secs_f64();
    assert!(
        rate >= 10.0 / longest && (shortest == 0.0 || rate <= 10.0 / shortest),
        "rate {rate} outside [10/{longest}, 10/{shortest}]"
    );
}

#[tokio::test]
async fn a_counter_reset_yields_no_value_then_rates_resume() {
    let counter =
        |value: u32| Reply::ok(&format!("# TYPE jobs_total counter\njobs_total {value}\n"));
    let server = TestServer::start(counter(500)).await;
    let mut metric = scrape(&server, "jobs_total", &[]);
    assert_eq!(metric.sample().await, Ok(None));
    server.answer(counter(3));
    assert_eq!(metric.sample().await, Ok(None), "went down: a reset");
    server.answer(counter(8));
    let rate = metric.sample().await.expect("reads").expect("a rate");
    assert!(rate > 0.0, "{rate}");
}

#[tokio::test]
async fn a_histogram_count_is_a_counter_by_its_exact_name() {
    let histogram = |count: u32| {
        Reply::ok(&format!(
            "# TYPE latency_seconds histogram\nlatency_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             latency_seconds_sum 1\nlatency_seconds_count {count}\n"
        ))
    };
    let server = TestServer::start(histogram(1)).await;
    let mut metric = scrape(&server, "latency_seconds_count", &[]);
    assert_eq!(metric.sample().await, Ok(None));
    server.answer(histogram(2));
    assert!(matches!(metric.sample().await, Ok(Some(rate)) if rate > 0.0));
}

#[tokio::test]
async fn labels_select_series_and_matching_series_are_summed() {
    let page = "\
# TYPE connections gauge
connections{pool=\"db\",host=\"a\"} 3
connections{pool=\"db\",host=\"b\"} 4
connections{pool=\"cache\",host=\"a\"} 50
";
    let server = TestServer::start(Reply::ok(page)).await;
    assert_eq!(
        scrape(&server, "connections", &[("pool", "db")])
            .sample()
            .await,
        Ok(Some(7.0))
    );
    assert_eq!(
        scrape(&server, "connections", &[("pool", "db"), ("host", "b")])
            .sample()
            .await,
        Ok(Some(4.0))
    );
    assert_eq!(
        scrape(&server, "connections", &[]).sample().await,
        Ok(Some(57.0))
    );
}

#[tokio::test]
async fn a_missing_metric_is_named_with_the_url() {
    let server = TestServer::start(Reply::ok("# TYPE other gauge\nother 1\n")).await;
    let error = scrape(&server, "queue_depth", &[])
        .sample()
        .await
        .expect_err("absent");
    assert_eq!(
        error,
        MetricError::MetricAbsent {
            url: server.url("/metrics"),
            metric: "queue_depth".to_owned(),
        }
    );
    assert!(error.to_string().starts_with(&format!(
        "metric `queue_depth` is not in the exposition at {}",
        server.url("/metrics")
    )));
}

#[tokio::test]
async fn unmatched_labels_show_the_series_that_exist() {
    let server = TestServer::start(Reply::ok("connections{pool=\"db\"} 3\n")).await;
    let error = scrape(&server, "connections", &[("pool", "dB")])
        .sample()
        .await
        .expect_err("no match");
    assert_eq!(
        error.to_string(),
        format!(
            "no series at {} matches connections{{pool=\"dB\"}}; the metric has 1 series, e.g. connections{{pool=\"db\"}}",
            server.url("/metrics")
        )
    );
}

#[tokio::test]
async fn an_http_error_status_quotes_the_body() {
    let server = TestServer::start(Reply::status(500, "exporter broke:\n  disk full\n")).await;
    let error = scrape(&server, "m", &[]).sample().await.expect_err("500");
    assert_eq!(
        error,
        MetricError::HttpStatus {
            url: server.url("/metrics"),
            status: 500,
            detail: ": exporter broke: disk full".to_owned(),
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{} answered HTTP 500: exporter broke: disk full",
            server.url("/metrics")
        )
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_says_where_it_points() {
    let mut reply = Reply::status(301, "");
    reply
        .headers
        .push(("location", "http://elsewhere/metrics".to_owned()));
    let server = TestServer::start(reply).await;
    let error = scrape(&server, "m", &[]).sample().await.expect_err("301");
    assert!(
        error
            .to_string()
            .contains("a redirect to http://elsewhere/metrics, which is not followed"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_connection_names_the_url() {
    let url = format!("http://{}/metrics", closed_port().await);
    let mut metric =
        CustomMetric::scrape(&MetricClient::new(), &url, "m", BTreeMap::new()).expect("valid");
    let error = metric.sample().await.expect_err("refused");
    let MetricError::Connect { url: named, reason } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(named, &url);
    assert!(reason.contains("Connection refused"), "{reason}");
    assert!(error
        .to_string()
        .starts_with(&format!("cannot connect to {url}: ")));
}

#[tokio::test]
async fn https_speaks_tls() {
    // A plain-HTTP server cannot complete a TLS handshake: the https:// URL is read over TLS.
    let server = TestServer::start(Reply::ok("m 1\n")).await;
    let url = format!("https://{}/metrics", server.address);
    let mut metric =
        CustomMetric::scrape(&MetricClient::new(), &url, "m", BTreeMap::new()).expect("valid");
    let error = metric.sample().await.expect_err("no TLS there");
    assert!(
        matches!(&error, MetricError::Connect { url: named, .. } if named == &url),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out() {
    let mut reply = Reply::ok("m 1\n");
    reply.hang = true;
    let server = TestServer::start(reply).await;
    let client = MetricClient::new().with_timeout(Duration::from_millis(150));
    let mut metric =
        CustomMetric::scrape(&client, &server.url("/metrics"), "m", BTreeMap::new()).unwrap();
    let error = metric.sample().await.expect_err("hangs");
    assert_eq!(
        error,
        MetricError::Timeout {
            url: server.url("/metrics"),
            timeout: Duration::from_millis(150),
        }
    );
    assert!(error.to_string().ends_with("did not answer within 150 ms"));
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused() {
    let server = TestServer::start(Reply::ok(&"m 1\n".repeat(100))).await;
    let client = MetricClient::new().with_max_body_bytes(64);
    let mut metric =
        CustomMetric::scrape(&client, &server.url("/metrics"), "m", BTreeMap::new()).unwrap();
    assert_eq!(
        metric.sample().await,
        Err(MetricError::BodyTooLarge {
            url: server.url("/metrics"),
            limit: 64,
        })
    );
}

#[tokio::test]
async fn nan_and_infinite_values_are_errors() {
    let server = TestServer::start(Reply::ok("m{a=\"x\"} NaN\n")).await;
    let error = scrape(&server, "m", &[("a", "x")])
        .sample()
        .await
        .expect_err("NaN");
    assert_eq!(
        error.to_string(),
        format!(
            "m{{a=\"x\"}} at {} is NaN, not a finite number",
            server.url("/metrics")
        )
    );
    server.answer(Reply::ok("m +Inf\n"));
    assert!(matches!(
        scrape(&server, "m", &[]).sample().await,
        Err(MetricError::NotFinite { value, .. }) if value == f64::INFINITY
    ));
}

#[tokio::test]
async fn a_malformed_exposition_names_the_line() {
    let server = TestServer::start(Reply::ok("m 1\nm{a=\"1\" 2\n")).await;
    let error = scrape(&server, "m", &[]).sample().await.expect_err("bad");
    assert_eq!(
        error,
        MetricError::Exposition {
            url: server.url("/metrics"),
            reason: "line 2: expected `,` or `}` after label `a`".to_owned(),
        }
    );
}

#[tokio::test]
async fn promql_sends_the_query_encoded_and_reads_a_one_element_vector() {
    let server = TestServer::start(Reply::ok(&vector_answer(&["42"]))).await;
    let query = "sum(rate(http_requests_total{job=\"api\"}[1m])) + 1";
    let mut metric = CustomMetric::promql(
        &MetricClient::new(),
        &format!("{}/", server.url("/prom")),
        query,
    )
    .unwrap();
    assert_eq!(metric.sample().await, Ok(Some(42.0)));
    let seen = server.seen();
    let (path, query_string) = seen[0].uri.split_once('?').expect("a query string");
    assert_eq!(path, "/prom/api/v1/query");
    let sent: Vec<(String, String)> = form_urlencoded::parse(query_string.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(sent, vec![("query".to_owned(), query.to_owned())]);
    assert_eq!(seen[0].accept, "application/json");
}

#[tokio::test]
async fn promql_reads_a_scalar() {
    let server = TestServer::start(Reply::ok(
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#,
    ))
    .await;
    assert_eq!(
        promql(&server, "scalar(vector(3))").sample().await,
        Ok(Some(3.0))
    );
}

#[tokio::test]
async fn promql_error_json_is_reported_with_its_type() {
    let server = TestServer::start(Reply::status(
        400,
        r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#,
    ))
    .await;
    let error = promql(&server, "sum(").sample().await.expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "Prometheus at {} refused the query `sum(`: bad_data: 1:5: parse error: unclosed left parenthesis",
            server.url("")
        )
    );
}

#[tokio::test]
async fn promql_with_several_or_no_series_says_so() {
    let server = TestServer::start(Reply::ok(&vector_answer(&["1", "2"]))).await;
    let mut metric = promql(&server, "up");
    assert_eq!(
        metric.sample().await,
        Err(MetricError::QuerySeveralSeries {
            query: "up".to_owned(),
            count: 2,
            examples: vec![
                "{instance=\"i0\"}".to_owned(),
                "{instance=\"i1\"}".to_owned()
            ],
        })
    );
    server.answer(Reply::ok(&vector_answer(&[])));
    assert_eq!(
        metric.sample().await,
        Err(MetricError::QueryNoSeries {
            query: "up".to_owned()
        })
    );
}

#[tokio::test]
async fn promql_non_json_error_status_is_an_http_error() {
    let server = TestServer::start(Reply::status(503, "Service Unavailable")).await;
    assert_eq!(
        promql(&server, "up").sample().await,
        Err(MetricError::HttpStatus {
            url: server.url(""),
            status: 503,
            detail: ": Service Unavailable".to_owned(),
        })
    );
}

#[tokio::test]
async fn promql_nan_is_an_error() {
    let server = TestServer::start(Reply::ok(&vector_answer(&["NaN"]))).await;
    assert_eq!(
        promql(&server, "x / 0")
            .sample()
            .await
            .unwrap_err()
            .to_string(),
        "PromQL `x / 0` is NaN, not a finite number"
    );
}

#[test]
fn unusable_urls_are_refused_up_front() {
    let client = MetricClient::new();
    for url in ["ftp://host/metrics", "/metrics", "http://", "not a url"] {
        assert!(
            matches!(
                CustomMetric::scrape(&client, url, "m", BTreeMap::new()),
                Err(MetricError::InvalidUrl { url: named, .. }) if named == url
            ),
            "{url}"
        );
    }
    assert!(matches!(
        CustomMetric::promql(&client, "http://prom:9090/?x=1", "up"),
        Err(MetricError::InvalidUrl { .. })
    ));
}

#[test]
fn from_spec_builds_readers_for_custom_metrics_only() {
    let client = MetricClient::new();
    let predefined = MetricSpec::Predefined {
        metric: PredefinedMetricType::EcsServiceAverageCpuUtilization,
        target_group: None,
    };
    assert!(CustomMetric::from_spec(&client, &predefined)
        .unwrap()
        .is_none());

    let scraped = MetricSpec::Scraped {
        url: "http://127.0.0.1:9100/metrics".to_owned(),
        metric_name: "jobs_total".to_owned(),
        labels: labels(&[("queue", "a\"b")]),
    };
    assert_eq!(scraped.to_string(), r#"jobs_total{queue="a\"b"}"#);
    let reader = CustomMetric::from_spec(&client, &scraped).unwrap().unwrap();
    assert_eq!(
        reader.to_string(),
        r#"jobs_total{queue="a\"b"} at http://127.0.0.1:9100/metrics"#
    );

    let query = MetricSpec::PromQl {
        server: "http://127.0.0.1:9090".to_owned(),
        query: "vector(1)".to_owned(),
    };
    let reader = CustomMetric::from_spec(&client, &query).unwrap().unwrap();
    assert_eq!(reader.to_string(), "PromQL `vector(1)`");
}

#[test]
fn counter_rate_arithmetic() {
    let start = Instant::now();
    let at = |seconds: u64| start + Duration::from_secs(seconds);
    let mut counter = CounterRate::default();
    assert_eq!(counter.rate(100.0, at(0)), None, "first reading");
    assert_eq!(counter.rate(110.0, at(2)), Some(5.0));
    assert_eq!(
        counter.rate(110.0, at(3)),
        Some(0.0),
        "flat is zero, not missing"
    );
    assert_eq!(counter.rate(120.0, at(3)), None, "no time passed");
    assert_eq!(
        counter.rate(130.0, at(5)),
        Some(10.0),
        "measured from the older reading"
    );
    assert_eq!(counter.rate(4.0, at(6)), None, "reset");
    assert_eq!(
        counter.rate(10.0, at(9)),
        Some(2.0),
        "from the reset reading"
    );
}
