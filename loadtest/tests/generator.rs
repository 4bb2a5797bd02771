//! The load generator against local servers: rate accuracy and exact per-second offered
//! counts, coordinated-omission correction against a server that stalls, the closed model over
//! HTTP/1.1, h2c and HTTP/2 over TLS, error classes, keep-alive connections the server closes,
//! and stopping early.
//!
//! Every server listens on 127.0.0.1 and every run is bounded by its schedule plus a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use scalegate_loadtest::generator::{
    self, Arrivals, GeneratorOptions, LoadTotals, Protocol, RequestTemplate, SecondStats,
    TlsOptions,
};
use scalegate_loadtest::{ErrorClass, LoadModel, Schedule, Stage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Longest any test run may take, schedule included.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    Arc::new(move |request| Box::pin(f(request)))
}

fn ok() -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"ok")))
}

/// A hyper server (HTTP/1.1 and h2c on one port; behind TLS when `tls` is given, with the
/// protocol its ALPN picked) running `handler` for every request.
async fn http_server(handler: Handler, tls: Option<TlsAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = Arc::clone(&handler);
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = handler(request);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                match tls {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                }
            });
        }
    });
    address
}

/// A raw TCP server that hands every accepted connection to `connection`.
async fn raw_server<F, Fut>(connection: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(connection(stream));
        }
    });
    address
}

/// Reads one request head (up to the blank line); `false` at EOF.
async fn read_request_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => head.extend_from_slice(&byte[..read]),
        }
    }
    true
}

/// A raw server that answers the first request on each connection with `response` and closes
/// the connection.
async fn answer_once_and_close(response: &'static [u8]) -> SocketAddr {
    raw_server(move |mut stream| async move {
        if read_request_head(&mut stream).await {
            let _ = stream.write_all(response).await;
        }
    })
    .await
}

/// A self-signed certificate for 127.0.0.1 and a TLS acceptor offering `alpn`.
fn tls_acceptor(alpn: &[&[u8]]) -> (TlsAcceptor, String) {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let certificate = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certificate], key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    (TlsAcceptor::from(Arc::new(config)), generated.cert.pem())
}

fn template(urls: &[String]) -> RequestTemplate {
    RequestTemplate {
        method: Method::GET,
        urls: urls.iter().map(|url| url.parse().unwrap()).collect(),
        headers: HeaderMap::new(),
        body: Bytes::new(),
    }
}

fn open(max_in_flight: usize, protocol: Protocol, threads: usize) -> GeneratorOptions {
    GeneratorOptions {
        model: LoadModel::Open { max_in_flight },
        protocol,
        threads,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..GeneratorOptions::default()
    }
}

fn closed(connections: usize, protocol: Protocol, threads: usize) -> GeneratorOptions {
    GeneratorOptions {
        model: LoadModel::Closed { connections },
        ..open(1, protocol, threads)
    }
}

fn constant(rate: f64, seconds: f64) -> Schedule {
    Schedule::Constant {
        rate,
        duration: Duration::from_secs_f64(seconds),
    }
}

/// Runs load to the end and returns every second and the totals.
async fn run(
    template: RequestTemplate,
    schedule: Schedule,
    options: GeneratorOptions,
) -> (Vec<SecondStats>, LoadTotals) {
    let mut running = generator::start(template, schedule, options).expect("load starts");
    let mut seconds = Vec::new();
    let collected = tokio::time::timeout(RUN_DEADLINE, async {
        while let Some(second) = running.next_second().await {
            seconds.push(second);
        }
    })
    .await;
    assert!(
        collected.is_ok(),
        "the run did not end within {RUN_DEADLINE:?}"
    );
    let totals = tokio::task::spawn_blocking(move || running.finish())
        .await
        .unwrap()
        .expect("threads finish");
    for (index, second) in seconds.iter().enumerate() {
        assert_eq!(
            second.second, index as u64,
            "seconds are consecutive from 0"
        );
    }
    (seconds, totals)
}

/// The whole run, summed over its seconds.
fn summary(seconds: &[SecondStats]) -> SecondStats {
    let mut summary = SecondStats::empty(0);
    for second in seconds {
        summary.add(second);
    }
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_sends_the_schedule_within_one_percent() {
    let address = http_server(handler(|_| async { ok() }), None).await;
    let (seconds, totals) = run(
        template(&[format!("http://{address}/")]),
        constant(2000.0, 3.0),
        open(64, Protocol::Http1, 2),
    )
    .await;
    let summary = summary(&seconds);
    let intended: Vec<u64> = seconds.iter().map(|second| second.intended).collect();
    assert_eq!(
        &intended[..3],
        &[2000, 2000, 2000],
        "per-second offered counts"
    );
    assert!(intended[3..].iter().all(|count| *count == 0));
    assert_eq!(summary.intended, 6000);
    assert!(
        summary.sent.abs_diff(6000) <= 60,
        "sent {} of 6000 intended",
        summary.sent
    );
    assert_eq!(summary.sent + totals.unsent, 6000);
    assert_eq!(summary.completed, summary.sent);
    assert_eq!(summary.failed, 0, "errors: {:?}", summary.errors);
    assert_eq!(summary.statuses.get(&200), Some(&summary.completed));
    assert!(
        totals.connections_opened <= 64,
        "keep-alive: {} connections",
        totals.connections_opened
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_offers_its_integral_in_every_second() {
    let address = http_server(handler(|_| async { ok() }), None).await;
    // 0 → 200/s over 4 s (C(s) = 25 s²), then a hold at 200/s; three threads share it.
    let schedule = Schedule::Stages {
        start_rate: 0.0,
        stages: vec![
            Stage {
                duration: Duration::from_secs(4),
                target_rate: 200.0,
            },
            Stage {
                duration: Duration::from_secs(2),
                target_rate: 200.0,
            },
        ],
    };
    let (seconds, totals) = run(
        template(&[format!("http://{address}/a"), format!("http://{address}/b")]),
        schedule,
        open(32, Protocol::Http1, 3),
    )
    .await;
    let intended: Vec<u64> = seconds.iter().map(|second| second.intended).collect();
    assert_eq!(&intended[..6], &[25, 75, 125, 175, 200, 200]);
    let summary = summary(&seconds);
    assert_eq!(summary.sent + totals.unsent, 800);
    assert_eq!(summary.failed, 0, "errors: {:?}", summary.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_counts_from_the_intended_time_when_the_server_stalls() {
    // Answers at once, except that requests arriving between 2 s and 3 s after the first one
    // are all held until 3 s: a one-second stall.
    let first_request: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let stalling = handler(move |_| {
        let first = *first_request.get_or_init(Instant::now);
        async move {
            let since_first = first.elapsed();
            if since_first >= Duration::from_secs(2) && since_first < Duration::from_secs(3) {
                tokio::time::sleep_until((first + Duration::from_secs(3)).into()).await;
            }
            ok()
        }
    });
    let address = http_server(stalling, None).await;
    let (seconds, _) = run(
        template(&[format!("http://{address}/")]),
        constant(200.0, 10.0),
        open(8, Protocol::Http1, 1),
    )
    .await;
    let summary = summary(&seconds);
    assert_eq!(summary.failed, 0, "errors: {:?}", summary.errors);
    assert_eq!(summary.completed, 2000);
    // The 200 requests intended during the stall wait from 1 s down to 0: P(latency > x) ≈
    // (1 − x)/10, so p99 ≈ 0.9 s.
    let p99 = Duration::from_micros(summary.latency.value_at_quantile(0.99));
    assert!(
        p99 >= Duration::from_millis(750) && p99 <= Duration::from_millis(1050),
        "corrected p99 {p99:?}"
    );
    // Only the 8 requests caught on the wire during the stall have a long service time (0.4 %
    // of all): service-time p99 stays at loopback speed.
    let service_p99 = Duration::from_micros(summary.service_time.value_at_quantile(0.99));
    assert!(
        service_p99 < Duration::from_millis(200),
        "service-time p99 {service_p99:?}"
    );
    let late: u64 = seconds.iter().map(|second| second.late).sum();
    assert!(
        late >= 150,
        "requests queued behind the stall are late ({late})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_counts_statuses() {
    let address = http_server(
        handler(|request| async move {
            let mut response = ok();
            if request.uri().path() == "/missing" {
                *response.status_mut() = StatusCode::NOT_FOUND;
            }
            response
        }),
        None,
    )
    .await;
    let (seconds, totals) = run(
        template(&[
            format!("http://{address}/"),
            format!("http://{address}/missing"),
        ]),
        constant(0.0, 1.0),
        closed(4, Protocol::Http1, 2),
    )
    .await;
    let summary = summary(&seconds);
    let found = summary.statuses.get(&200).copied().unwrap_or(0);
    let missing = summary.statuses.get(&404).copied().unwrap_or(0);
    assert!(
        found > 100 && missing > 100,
        "statuses {:?}",
        summary.statuses
    );
    assert_eq!(summary.failed, missing);
    assert_eq!(summary.completed, found + missing);
    assert_eq!(summary.intended, summary.sent);
    assert_eq!(summary.sent, summary.completed);
    assert_eq!(totals.connections_opened, 4);
    assert_eq!(summary.latency.len(), summary.service_time.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_over_h2c_multiplexes_streams() {
    let address = http_server(
        handler(|request| async move {
            assert_eq!(request.version(), http::Version::HTTP_2);
            ok()
        }),
        None,
    )
    .await;
    let options = GeneratorOptions {
        http2_connections: 2,
        ..closed(16, Protocol::Http2, 1)
    };
    let (seconds, totals) = run(
        template(&[format!("http://{address}/")]),
        constant(0.0, 1.0),
        options,
    )
    .await;
    let summary = summary(&seconds);
    assert!(summary.completed > 100, "completed {}", summary.completed);
    assert_eq!(summary.failed, 0, "errors: {:?}", totals.error_samples);
    assert_eq!(totals.connections_opened, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_with_a_self_signed_certificate() {
    let (acceptor, _) = tls_acceptor(&[b"h2", b"http/1.1"]);
    let address = http_server(
        handler(|request| async move {
            assert_eq!(request.version(), http::Version::HTTP_2);
            ok()
        }),
        Some(acceptor),
    )
    .await;
    let mut options = open(8, Protocol::Http2, 1);
    options.tls.insecure = true;
    let (seconds, totals) = run(
        template(&[format!("https://localhost:{}/", address.port())]),
        constant(200.0, 1.0),
        options,
    )
    .await;
    let summary = summary(&seconds);
    assert_eq!(summary.failed, 0, "errors: {:?}", totals.error_samples);
    assert_eq!(summary.completed, 200);
    assert_eq!(totals.connections_opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_tls_trusting_a_ca_file() {
    let (acceptor, certificate_pem) = tls_acceptor(&[b"http/1.1"]);
    let address = http_server(handler(|_| async { ok() }), Some(acceptor)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, certificate_pem).unwrap();
    let mut options = closed(2, Protocol::Http1, 1);
    options.tls = TlsOptions {
        insecure: false,
        ca_file: Some(ca_file),
    };
    let (seconds, totals) = run(
        template(&[format!("https://localhost:{}/", address.port())]),
        constant(0.0, 0.5),
        options,
    )
    .await;
    let summary = summary(&seconds);
    assert!(summary.completed > 10, "completed {}", summary.completed);
    assert_eq!(summary.failed, 0, "errors: {:?}", totals.error_samples);
    assert_eq!(totals.connections_opened, 2);
}

/// Runs 50 requests/s for 0.4 s (20 requests) and returns the error counts and samples.
async fn errors_of(url: String, options: GeneratorOptions) -> (SecondStats, LoadTotals) {
    let (seconds, totals) = run(template(&[url]), constant(50.0, 0.4), options).await;
    (summary(&seconds), totals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_connect_error() {
    let address = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let (summary, totals) =
        errors_of(format!("http://{address}/"), open(4, Protocol::Http1, 1)).await;
    assert_eq!(
        summary.errors.get(&ErrorClass::Connect),
        Some(&20),
        "{:?}",
        summary.errors
    );
    assert_eq!(
        (summary.sent, summary.completed, summary.failed),
        (20, 20, 20)
    );
    assert!(totals.error_samples[&ErrorClass::Connect].contains("refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_response_is_a_reset() {
    let address =
        answer_once_and_close(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial").await;
    let (summary, _) = errors_of(format!("http://{address}/"), open(4, Protocol::Http1, 1)).await;
    assert_eq!(
        summary.errors.get(&ErrorClass::Reset),
        Some(&20),
        "{:?}",
        summary.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    let address = raw_server(|mut stream| async move {
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
    })
    .await;
    let options = GeneratorOptions {
        timeout: Duration::from_millis(200),
        ..open(32, Protocol::Http1, 1)
    };
    let (summary, _) = errors_of(format!("http://{address}/"), options).await;
    assert_eq!(
        summary.errors.get(&ErrorClass::Timeout),
        Some(&20),
        "{:?}",
        summary.errors
    );
    let p50 = Duration::from_micros(summary.service_time.value_at_quantile(0.5));
    assert!(p50 >= Duration::from_millis(200), "timed out after {p50:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_plain_server_is_a_tls_error() {
    let address = http_server(handler(|_| async { ok() }), None).await;
    let mut options = open(4, Protocol::Http1, 1);
    options.tls.insecure = true;
    let (summary, _) = errors_of(format!("https://{address}/"), options).await;
    assert_eq!(
        summary.errors.get(&ErrorClass::Tls),
        Some(&20),
        "{:?}",
        summary.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_needs_alpn_h2_over_tls() {
    let (acceptor, _) = tls_acceptor(&[b"http/1.1"]);
    let address = http_server(handler(|_| async { ok() }), Some(acceptor)).await;
    let mut options = open(4, Protocol::Http2, 1);
    options.tls.insecure = true;
    let (summary, totals) = errors_of(format!("https://{address}/"), options).await;
    assert_eq!(
        summary.errors.get(&ErrorClass::Tls),
        Some(&20),
        "{:?}",
        summary.errors
    );
    assert!(totals.error_samples[&ErrorClass::Tls].contains("ALPN h2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_responses_retire_connections_without_errors() {
    let address = http_server(
        handler(|_| async {
            let mut response = ok();
            response
                .headers_mut()
                .insert(http::header::CONNECTION, "close".parse().unwrap());
            response
        }),
        None,
    )
    .await;
    let (seconds, totals) = run(
        template(&[format!("http://{address}/")]),
        constant(0.0, 0.5),
        closed(4, Protocol::Http1, 1),
    )
    .await;
    let summary = summary(&seconds);
    assert!(summary.completed > 20, "completed {}", summary.completed);
    assert_eq!(summary.failed, 0, "errors: {:?}", totals.error_samples);
    assert_eq!(totals.connections_opened, summary.completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_the_server_closed_are_replaced_without_errors() {
    // Answers one request per connection, without saying so, and closes it.
    let address = answer_once_and_close(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let (seconds, totals) = run(
        template(&[format!("http://{address}/")]),
        constant(100.0, 1.0),
        open(2, Protocol::Http1, 1),
    )
    .await;
    let summary = summary(&seconds);
    assert_eq!(summary.completed, 100);
    assert_eq!(summary.failed, 0, "errors: {:?}", totals.error_samples);
    assert_eq!(totals.connections_opened, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_run_early() {
    let address = http_server(handler(|_| async { ok() }), None).await;
    let mut running = generator::start(
        template(&[format!("http://{address}/")]),
        constant(100.0, 30.0),
        open(4, Protocol::Http1, 2),
    )
    .unwrap();
    let first = tokio::time::timeout(RUN_DEADLINE, running.next_second())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.second, 0);
    running.stop_handle().stop();
    let stopped_at = Instant::now();
    let mut last = 0;
    while let Some(second) = tokio::time::timeout(RUN_DEADLINE, running.next_second())
        .await
        .unwrap()
    {
        last = second.second;
    }
    assert!(last < 5, "the run went on to second {last}");
    assert!(stopped_at.elapsed() < Duration::from_secs(5));
    let totals = tokio::task::spawn_blocking(move || running.finish())
        .await
        .unwrap()
        .unwrap();
    assert!(totals.elapsed < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisson_arrivals_follow_the_rate() {
    let address = http_server(handler(|_| async { ok() }), None).await;
    let options = GeneratorOptions {
        arrivals: Arrivals::Poisson,
        seed: Some(42),
        ..open(16, Protocol::Http1, 2)
    };
    let (seconds, _) = run(
        template(&[format!("http://{address}/")]),
        constant(1000.0, 2.0),
        options,
    )
    .await;
    let summary = summary(&seconds);
    // Poisson with mean 2000: five standard deviations is ±224.
    assert!(
        summary.intended.abs_diff(2000) < 224,
        "intended {}",
        summary.intended
    );
    assert_eq!(summary.failed, 0, "errors: {:?}", summary.errors);
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    let refused = |urls: &[&str], options: GeneratorOptions| {
        let template = template(&urls.iter().map(|url| url.to_string()).collect::<Vec<_>>());
        generator::start(template, constant(1.0, 1.0), options).is_err()
    };
    let options = || open(1, Protocol::Http1, 1);
    assert!(refused(&[], options()));
    assert!(refused(&["ftp://127.0.0.1/"], options()));
    assert!(refused(
        &["http://127.0.0.1:1/", "http://127.0.0.1:2/"],
        options()
    ));
    assert!(refused(
        &["http://127.0.0.1/"],
        GeneratorOptions {
            threads: 0,
            ..options()
        }
    ));
    let mut missing_ca = options();
    missing_ca.tls.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(refused(&["https://127.0.0.1/"], missing_ca));
    let negative = generator::start(
        template(&["http://127.0.0.1/".to_string()]),
        constant(-1.0, 1.0),
        options(),
    );
    assert!(negative.is_err());
}
