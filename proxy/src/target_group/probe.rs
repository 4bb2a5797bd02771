//! One health check of one target, made the way an ALB node makes it (spec §3.1): a fresh
//! connection, one `GET <path>` (or one gRPC call), a verdict from the status code (or the
//! `grpc-status`), and the connection closed afterwards. Scheduling the checks and the
//! healthy/unhealthy thresholds are the caller's business; this module only answers "did this
//! one check pass, and if not, with which ALB reason".
//!
//! Checks run for every target every interval, so a check costs one task's worth of work: the
//! hyper connection is driven inside the check's own future (no spawned task for HTTP/1, no
//! thread), and the TLS configuration is shared with the data plane's target pools.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, FusedFuture, FutureExt};
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, HOST, TE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use scalegate_config::{Protocol, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::upstream::{tls_connector, ErrorChain};

/// The `User-Agent` of every health check. It keeps ALB's `ELB-HealthChecker/2.0` prefix, which
/// applications allow-list or exclude from their logs, and says who is really asking.
pub const USER_AGENT: &str = "ELB-HealthChecker/2.0 (scalegate)";

/// How much of a response body a check reads (and throws away) before closing: enough to end a
/// typical health page cleanly, so the target sees a FIN rather than a reset, without paying
/// for a large one.
const MAX_BODY_READ: usize = 64 * 1024;

/// The request body of a gRPC check: one empty message (not compressed, length 0), which is
/// what an empty `HealthCheckRequest`, or any empty request message, encodes to.
const GRPC_EMPTY_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];

/// How to check one target group's targets; built by the lead from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// HTTP or HTTPS; HTTPS does not verify the target's certificate, as ALB.
    pub protocol: Protocol,
    /// HTTP1 → HTTP/1.1; HTTP2 → h2 (prior knowledge over HTTP, ALPN `h2` over HTTPS). A gRPC
    /// check always uses h2, since gRPC has no HTTP/1 form.
    pub protocol_version: ProtocolVersion,
    /// Path and optional query, starting with `/`.
    pub path: String,
    /// The port to check; `None` is the target's traffic port (ALB's `traffic-port`).
    pub port: Option<u16>,
    /// Bounds the whole check: connect, TLS, request, response head (and trailers for gRPC).
    pub timeout: Duration,
    /// The HTTP status codes that count as healthy (ALB's `Matcher.HttpCode`).
    pub http_codes: Vec<RangeInclusive<u16>>,
    /// `Some` makes this a gRPC check, healthy when `grpc-status` is in these codes (ALB's
    /// `Matcher.GrpcCode`).
    pub grpc_codes: Option<Vec<RangeInclusive<u16>>>,
}

/// The result of one check, with what ALB's `DescribeTargetHealth` would say about a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The target answered with a code the matcher accepts.
    Success {
        /// The HTTP status (for gRPC, the HTTP status of the call, 200).
        status: u16,
        /// From the start of the check to the verdict.
        latency: Duration,
    },
    /// The check failed.
    Failure {
        /// Which ALB reason code the failure maps to.
        failure: ProbeFailure,
        /// ALB-style description, e.g. `Health checks failed with these codes: [503]`.
        description: String,
        /// From the start of the check to the verdict.
        latency: Duration,
    },
}

impl ProbeOutcome {
    /// True for a passed check, which is all a threshold counter needs to know.
    pub fn is_success(&self) -> bool {
        matches!(self, ProbeOutcome::Success { .. })
    }

    /// How long the check took to reach its verdict, for metrics and logs.
    pub fn latency(&self) -> Duration {
        match self {
            ProbeOutcome::Success { latency, .. } | ProbeOutcome::Failure { latency, .. } => {
                *latency
            }
        }
    }
}

/// Why a check failed, one variant per ALB reason code of an unhealthy target (spec §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The target answered with a code outside the matcher.
    ResponseCodeMismatch,
    /// No verdict within the timeout.
    Timeout,
    /// Connection refused or reset, TLS failure, malformed response, missing `grpc-status`.
    FailedHealthChecks,
    /// Something on our side, e.g. the request could not be built.
    InternalError,
}

impl ProbeFailure {
    /// Every failure, in the order metrics label them.
    pub const ALL: [ProbeFailure; 4] = [
        ProbeFailure::ResponseCodeMismatch,
        ProbeFailure::Timeout,
        ProbeFailure::FailedHealthChecks,
        ProbeFailure::InternalError,
    ];

    /// ALB's reason code for this failure, as `DescribeTargetHealth` reports it.
    pub fn reason_code(self) -> &'static str {
        match self {
            ProbeFailure::ResponseCodeMismatch => "Target.ResponseCodeMismatch",
            ProbeFailure::Timeout => "Target.Timeout",
            ProbeFailure::FailedHealthChecks => "Target.FailedHealthChecks",
            ProbeFailure::InternalError => "Elb.InternalError",
        }
    }
}

/// Checks `target` once. The check goes to `settings.port` when set, otherwise to the target's
/// own port. It never panics and never outlives `settings.timeout` by more than a poll: every
/// failure, including the timeout, is an outcome.
pub async fn probe(settings: &ProbeSettings, target: SocketAddr) -> ProbeOutcome {
    let started = Instant::now();
    let deadline = started + settings.timeout;
    let address = SocketAddr::new(target.ip(), settings.port.unwrap_or(target.port()));
    let verdict = check(settings, address, started, deadline).await;
    match verdict.result {
        Ok(status) => ProbeOutcome::Success {
            status,
            latency: verdict.latency,
        },
        Err(Failed {
            failure,
            description,
        }) => ProbeOutcome::Failure {
            failure,
            description,
            latency: verdict.latency,
        },
    }
}

/// A failed check before it becomes an outcome.
#[derive(Debug)]
struct Failed {
    failure: ProbeFailure,
    description: String,
}

impl Failed {
    fn timeout() -> Self {
        Failed {
            failure: ProbeFailure::Timeout,
            description: "Request timed out".to_string(),
        }
    }

    fn health_checks(reason: impl std::fmt::Display) -> Self {
        Failed {
            failure: ProbeFailure::FailedHealthChecks,
            description: format!("Health checks failed: {reason}"),
        }
    }

    fn http(error: &hyper::Error) -> Self {
        Failed::health_checks(ErrorChain(error))
    }

    fn code_mismatch(kind: &str, code: u16) -> Self {
        Failed {
            failure: ProbeFailure::ResponseCodeMismatch,
            description: format!("Health checks failed with these {kind}: [{code}]"),
        }
    }
}

/// The verdict of a check and when it was reached (closing the connection afterwards is not
/// part of the latency).
struct Verdict {
    result: Result<u16, Failed>,
    latency: Duration,
}

/// Connects to `address` (TCP, then TLS for HTTPS) and hands the connection to [`exchange`];
/// every step is bounded by the one `deadline`.
async fn check(
    settings: &ProbeSettings,
    address: SocketAddr,
    started: Instant,
    deadline: Instant,
) -> Verdict {
    let verdict = |result| verdict_now(result, started);
    let version = if settings.grpc_codes.is_some() {
        ProtocolVersion::Http2
    } else {
        settings.protocol_version
    };
    let request = match build_request(settings, address, version) {
        Ok(request) => request,
        Err(error) => {
            return verdict(Err(Failed {
                failure: ProbeFailure::InternalError,
                description: format!("Cannot build the health-check request: {error}"),
            }))
        }
    };
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
        Err(_) => return verdict(Err(Failed::timeout())),
        Ok(Err(error)) => return verdict(Err(Failed::health_checks(connect_error(&error)))),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    match settings.protocol {
        Protocol::Http => exchange(stream, version, request, settings, started, deadline).await,
        Protocol::Https => {
            let name = ServerName::IpAddress(address.ip().into());
            let handshake = tls_connector(version).connect(name, stream);
            match tokio::time::timeout_at(deadline, handshake).await {
                Err(_) => verdict(Err(Failed::timeout())),
                Ok(Err(error)) => verdict(Err(Failed::health_checks(format_args!(
                    "TLS handshake failed: {error}"
                )))),
                Ok(Ok(tls)) => exchange(tls, version, request, settings, started, deadline).await,
            }
        }
    }
}

/// A connect error in a few words for the common cases, the OS's message otherwise.
fn connect_error(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::ConnectionReset => "connection reset".to_string(),
        _ => format!("connection failed: {error}"),
    }
}

/// `ip:port` for the Host header and `:authority`, the IPv6 address in brackets (and without a
/// zone, which has no place in an authority).
fn authority(address: SocketAddr) -> String {
    match address.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", address.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", address.port()),
    }
}

/// The check's request: `GET` with ALB's Host, User-Agent and `Connection: close` over HTTP/1.1;
/// over h2 the scheme and authority go in the URI; a gRPC check is a `POST` of one empty message.
fn build_request(
    settings: &ProbeSettings,
    address: SocketAddr,
    version: ProtocolVersion,
) -> Result<Request<Full<Bytes>>, String> {
    // A URI also parses from `*` or an authority; a health-check path must be a path.
    if !settings.path.starts_with('/') {
        return Err(format!("path {:?} does not start with '/'", settings.path));
    }
    let authority = authority(address);
    let builder = Request::builder().header(http::header::USER_AGENT, USER_AGENT);
    let builder = match version {
        ProtocolVersion::Http1 => builder
            .version(Version::HTTP_11)
            .uri(settings.path.as_str())
            .header(HOST, authority)
            .header(CONNECTION, "close"),
        ProtocolVersion::Http2 => {
            let scheme = match settings.protocol {
                Protocol::Http => "http",
                Protocol::Https => "https",
            };
            builder
                .version(Version::HTTP_2)
                .uri(format!("{scheme}://{authority}{}", settings.path))
        }
    };
    let built = if settings.grpc_codes.is_some() {
        builder
            .method(Method::POST)
            .header(CONTENT_TYPE, "application/grpc")
            .header(TE, "trailers")
            .body(Full::new(Bytes::from_static(GRPC_EMPTY_MESSAGE)))
    } else {
        builder.method(Method::GET).body(Full::new(Bytes::new()))
    };
    built.map_err(|error| format!("path {:?}: {error}", settings.path))
}

/// The sending half of a check's connection, HTTP/1.1 or h2.
enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            Sender::Http1(sender) => sender.send_request(request).await,
            Sender::Http2(sender) => sender.send_request(request).await,
        }
    }
}

/// Sends the check's request on `io` and judges the answer, then closes the connection.
async fn exchange<I>(
    io: I,
    version: ProtocolVersion,
    request: Request<Full<Bytes>>,
    settings: &ProbeSettings,
    started: Instant,
    deadline: Instant,
) -> Verdict
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let handshake = async {
        match version {
            ProtocolVersion::Http1 => http1::Builder::new()
                .handshake(io)
                .await
                .map(|(sender, connection)| (Sender::Http1(sender), Either::Left(connection))),
            ProtocolVersion::Http2 => http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map(|(sender, connection)| (Sender::Http2(sender), Either::Right(connection))),
        }
    };
    let (mut sender, connection) = match tokio::time::timeout_at(deadline, handshake).await {
        Err(_) => return verdict_now(Err(Failed::timeout()), started),
        Ok(Err(error)) => return verdict_now(Err(Failed::http(&error)), started),
        Ok(Ok(handshaken)) => handshaken,
    };
    let mut connection = pin!(connection.fuse());

    let judged = tokio::time::timeout_at(
        deadline,
        while_driving(connection.as_mut(), async {
            match sender.send(request).await {
                Ok(response) => judge(settings, response).await,
                Err(error) => (Err(Failed::http(&error)), None),
            }
        }),
    )
    .await;
    let (result, unread_body) = match judged {
        Err(_) => (Err(Failed::timeout()), None),
        Ok(Err(error)) => (Err(Failed::http(&error)), None),
        Ok(Ok(judged)) => judged,
    };
    let verdict = verdict_now(result, started);

    // Close the way ALB does: read the rest of a small body so the connection can end cleanly,
    // then let hyper finish it (HTTP/1.1 after `Connection: close`; h2 with GOAWAY once the
    // sender is gone). Whatever is left at the deadline is dropped, which closes the socket.
    if let Some(body) = unread_body {
        let _ = tokio::time::timeout_at(
            deadline,
            while_driving(connection.as_mut(), discard(body, MAX_BODY_READ)),
        )
        .await;
    }
    drop(sender);
    if !connection.is_terminated() {
        let _ = tokio::time::timeout_at(deadline, connection.as_mut()).await;
    }
    verdict
}

/// The verdict `result`, reached now.
fn verdict_now(result: Result<u16, Failed>, started: Instant) -> Verdict {
    Verdict {
        result,
        latency: started.elapsed(),
    }
}

/// The verdict on a response, and its body when the verdict did not need it (to be discarded).
async fn judge(
    settings: &ProbeSettings,
    response: Response<Incoming>,
) -> (Result<u16, Failed>, Option<Incoming>) {
    let status = response.status().as_u16();
    let Some(grpc_codes) = &settings.grpc_codes else {
        let result = if matches_any(&settings.http_codes, status) {
            Ok(status)
        } else {
            Err(Failed::code_mismatch("codes", status))
        };
        return (result, Some(response.into_body()));
    };
    if response.status() != StatusCode::OK {
        return (
            Err(Failed::code_mismatch("codes", status)),
            Some(response.into_body()),
        );
    }
    let (head, mut body) = response.into_parts();
    // A trailers-only response (an error without messages) carries grpc-status in its headers.
    let grpc_status = match head.headers.get("grpc-status") {
        Some(value) => Some(value.clone()),
        None => match read_trailers(&mut body).await {
            Ok(trailers) => trailers.and_then(|trailers| trailers.get("grpc-status").cloned()),
            Err(error) => return (Err(Failed::http(&error)), None),
        },
    };
    let result = match grpc_status.as_ref().map(parse_grpc_status) {
        None => Err(Failed::health_checks("no grpc-status in the response")),
        Some(None) => Err(Failed::health_checks("invalid grpc-status in the response")),
        Some(Some(code)) if matches_any(grpc_codes, code) => Ok(status),
        Some(Some(code)) => Err(Failed::code_mismatch("gRPC codes", code)),
    };
    (result, Some(body))
}

fn matches_any(codes: &[RangeInclusive<u16>], code: u16) -> bool {
    codes.iter().any(|range| range.contains(&code))
}

fn parse_grpc_status(value: &HeaderValue) -> Option<u16> {
    value.to_str().ok()?.trim().parse().ok()
}

/// Reads a gRPC response's messages (discarding them, up to [`MAX_BODY_READ`]) until its
/// trailers; `None` when the body ends, or grows too large, without any.
async fn read_trailers(body: &mut Incoming) -> Result<Option<HeaderMap>, hyper::Error> {
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        match frame?.into_trailers() {
            Ok(trailers) => return Ok(Some(trailers)),
            Err(frame) => {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > MAX_BODY_READ {
                    return Ok(None);
                }
            }
        }
    }
    Ok(None)
}

/// Reads and drops up to `limit` bytes of `body`.
async fn discard(mut body: Incoming, limit: usize) {
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > limit {
            return;
        }
    }
}

/// Runs `work` while polling `connection`: a hyper client connection only makes progress while
/// it is polled, and polling it here rather than in a spawned task means dropping the check
/// drops (closes) the connection too. A connection error ends the work early.
async fn while_driving<C, W>(
    mut connection: Pin<&mut C>,
    work: W,
) -> Result<W::Output, hyper::Error>
where
    C: FusedFuture<Output = Result<(), hyper::Error>>,
    W: Future,
{
    let mut work = pin!(work);
    std::future::poll_fn(|context| {
        if let Poll::Ready(output) = work.as_mut().poll(context) {
            return Poll::Ready(Ok(output));
        }
        if !connection.is_terminated() {
            if let Poll::Ready(Err(error)) = connection.as_mut().poll(context) {
                return Poll::Ready(Err(error));
            }
        }
        // Either both are pending, or the connection ended cleanly and the work (which was
        // registered above) is about to see its end.
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use http::request::Parts;
    use http_body_util::combinators::BoxBody;
    use http_body_util::{Empty, StreamBody};
    use hyper::body::Frame;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    type TestBody = BoxBody<Bytes, Infallible>;
    type Handler = Arc<dyn Fn(Parts, Bytes) -> Response<TestBody> + Send + Sync>;

    /// Generous enough for a loaded CI machine; the tests that expect success never wait it out.
    const GENEROUS: Duration = Duration::from_secs(10);

    fn http_settings() -> ProbeSettings {
        ProbeSettings {
            protocol: Protocol::Http,
            protocol_version: ProtocolVersion::Http1,
            path: "/health".to_string(),
            port: None,
            timeout: GENEROUS,
            http_codes: vec![200..=200],
            grpc_codes: None,
        }
    }

    fn grpc_settings(codes: Vec<RangeInclusive<u16>>) -> ProbeSettings {
        ProbeSettings {
            protocol_version: ProtocolVersion::Http2,
            path: "/grpc.health.v1.Health/Check".to_string(),
            grpc_codes: Some(codes),
            ..http_settings()
        }
    }

    /// What a raw target saw of one check: the request head, and whether the prober then
    /// closed the connection (EOF) rather than leaving it open.
    struct Seen {
        head: String,
        closed_after: bool,
    }

    /// A target written on raw TCP: reads each request head, answers `response`, then waits
    /// (bounded) for the prober to close.
    async fn raw_target(response: &'static str) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (seen, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => head.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let _ = stream.write_all(response.as_bytes()).await;
                    let closed_after = matches!(
                        tokio::time::timeout(GENEROUS, stream.read(&mut buffer)).await,
                        Ok(Ok(0))
                    );
                    let _ = seen.send(Seen {
                        head: String::from_utf8_lossy(&head).into_owned(),
                        closed_after,
                    });
                });
            }
        });
        (address, receiver)
    }

    fn status_response(status: u16) -> &'static str {
        let text = format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 2\r\n\r\nok");
        Box::leak(text.into_boxed_str())
    }

    /// An address where nothing listens: bound to find a free port, then released.
    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    /// A target written with hyper's server, over `version`, optionally behind TLS; `handler`
    /// gets each request's head and whole body. The receiver hears of each connection that ended
    /// (the prober hung up).
    async fn hyper_target(
        version: ProtocolVersion,
        tls: Option<TlsAcceptor>,
        handler: Handler,
    ) -> (SocketAddr, mpsc::UnboundedReceiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (ended, ended_seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = Arc::clone(&handler);
                let tls = tls.clone();
                let ended = ended.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, version, handler).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, version, handler).await;
                            }
                        }
                    }
                    let _ = ended.send(());
                });
            }
        });
        (address, ended_seen)
    }

    /// Waits (bounded) for a hyper target to report that the prober closed its connection.
    async fn assert_connection_ended(ended: &mut mpsc::UnboundedReceiver<()>) {
        let hung_up = tokio::time::timeout(GENEROUS, ended.recv()).await;
        assert_eq!(hung_up, Ok(Some(())), "the check left its connection open");
    }

    async fn serve<I>(io: I, version: ProtocolVersion, handler: Handler)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let handler = Arc::clone(&handler);
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|collected| collected.to_bytes())
                    .unwrap_or_default();
                Ok::<_, Infallible>(handler(parts, body))
            }
        });
        let io = TokioIo::new(io);
        let _ = match version {
            ProtocolVersion::Http1 => {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
            }
            ProtocolVersion::Http2 => {
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await
            }
        };
    }

    fn empty_response(status: u16) -> Response<TestBody> {
        Response::builder()
            .status(status)
            .body(Empty::new().boxed())
            .unwrap()
    }

    /// A gRPC answer: one empty message, then `grpc-status` in the trailers.
    fn grpc_response(grpc_status: Option<&'static str>) -> Response<TestBody> {
        let mut trailers = HeaderMap::new();
        if let Some(code) = grpc_status {
            trailers.insert("grpc-status", HeaderValue::from_static(code));
        }
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(GRPC_EMPTY_MESSAGE))),
            Ok(Frame::trailers(trailers)),
        ];
        Response::builder()
            .header(CONTENT_TYPE, "application/grpc")
            .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
            .unwrap()
    }

    /// A TLS acceptor with a fresh self-signed certificate, offering `alpn`.
    fn self_signed_acceptor(alpn: &[&[u8]]) -> TlsAcceptor {
        let generated =
            rcgen::generate_simple_self_signed(vec!["target.invalid".to_string()]).unwrap();
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        TlsAcceptor::from(Arc::new(config))
    }

    fn assert_failure(outcome: &ProbeOutcome, expected: ProbeFailure, description_part: &str) {
        match outcome {
            ProbeOutcome::Failure {
                failure,
                description,
                ..
            } => {
                assert_eq!(*failure, expected, "{description}");
                assert!(
                    description.contains(description_part),
                    "{description:?} should contain {description_part:?}"
                );
            }
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }

    fn assert_success(outcome: &ProbeOutcome, expected_status: u16) {
        match outcome {
            ProbeOutcome::Success { status, .. } => assert_eq!(*status, expected_status),
            other => panic!("expected success, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn status_200_is_success() {
        let (target, _seen) = raw_target(status_response(200)).await;
        let outcome = probe(&http_settings(), target).await;
        assert_success(&outcome, 200);
        assert!(outcome.is_success());
    }

    #[tokio::test]
    async fn status_outside_the_matcher_is_a_code_mismatch_naming_the_code() {
        let (target, _seen) = raw_target(status_response(503)).await;
        let outcome = probe(&http_settings(), target).await;
        assert_failure(
            &outcome,
            ProbeFailure::ResponseCodeMismatch,
            "Health checks failed with these codes: [503]",
        );
    }

    #[tokio::test]
    async fn codes_match_by_list_and_range() {
        let settings = ProbeSettings {
            http_codes: vec![200..=200, 202..=204],
            ..http_settings()
        };
        let (in_range, _seen) = raw_target(status_response(203)).await;
        assert_success(&probe(&settings, in_range).await, 203);
        let (in_list, _seen) = raw_target(status_response(200)).await;
        assert_success(&probe(&settings, in_list).await, 200);
        let (between, _seen) = raw_target(status_response(201)).await;
        assert_failure(
            &probe(&settings, between).await,
            ProbeFailure::ResponseCodeMismatch,
            "[201]",
        );
    }

    #[tokio::test]
    async fn refused_connection_fails_health_checks() {
        let outcome = probe(&http_settings(), closed_port().await).await;
        assert_failure(
            &outcome,
            ProbeFailure::FailedHealthChecks,
            "Health checks failed: connection refused",
        );
    }

    #[tokio::test]
    async fn a_target_that_never_answers_times_out_and_its_connection_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let (closed, mut closed_seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            // Read the request and never answer; report when the prober hangs up.
            let mut buffer = [0u8; 4096];
            while let Ok(read) = stream.read(&mut buffer).await {
                if read == 0 {
                    let _ = closed.send(());
                    return;
                }
            }
        });
        let settings = ProbeSettings {
            timeout: Duration::from_millis(300),
            ..http_settings()
        };
        let outcome = probe(&settings, target).await;
        assert_failure(&outcome, ProbeFailure::Timeout, "Request timed out");
        let hung_up = tokio::time::timeout(GENEROUS, closed_seen.recv()).await;
        assert_eq!(
            hung_up,
            Ok(Some(())),
            "the timed-out check left its connection open"
        );
    }

    #[tokio::test]
    async fn https_check_of_a_plain_http_target_fails_the_tls_handshake() {
        // A plain-HTTP server answers the ClientHello with a 400, as nginx and friends do.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let settings = ProbeSettings {
            protocol: Protocol::Https,
            ..http_settings()
        };
        assert_failure(
            &probe(&settings, target).await,
            ProbeFailure::FailedHealthChecks,
            "Health checks failed: TLS handshake failed",
        );
    }

    #[tokio::test]
    async fn malformed_response_fails_health_checks() {
        let (target, _seen) = raw_target("this is not HTTP\r\n\r\n").await;
        let outcome = probe(&http_settings(), target).await;
        assert_failure(
            &outcome,
            ProbeFailure::FailedHealthChecks,
            "Health checks failed: ",
        );
    }

    #[tokio::test]
    async fn request_carries_alb_headers_and_the_connection_is_closed_after() {
        let (target, mut seen) = raw_target(status_response(200)).await;
        let settings = ProbeSettings {
            path: "/health?deep=1".to_string(),
            ..http_settings()
        };
        assert_success(&probe(&settings, target).await, 200);
        let seen = seen.recv().await.expect("the target saw the check");
        let head = seen.head.to_ascii_lowercase();
        assert!(
            head.starts_with("get /health?deep=1 http/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", target.port())),
            "{head}"
        );
        assert!(
            head.contains("\r\nuser-agent: elb-healthchecker/2.0 (scalegate)\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(seen.closed_after, "the check left its connection open");
    }

    #[tokio::test]
    async fn health_check_port_overrides_the_traffic_port() {
        let (checked, mut seen) = raw_target(status_response(200)).await;
        let traffic = closed_port().await;
        let settings = ProbeSettings {
            port: Some(checked.port()),
            ..http_settings()
        };
        assert_success(&probe(&settings, traffic).await, 200);
        let head = seen
            .recv()
            .await
            .expect("the checked port saw the check")
            .head;
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("\r\nhost: 127.0.0.1:{}\r\n", checked.port())),
            "{head}"
        );
    }

    #[tokio::test]
    async fn https_target_with_a_self_signed_certificate_is_checked() {
        let (requests, mut seen) = mpsc::unbounded_channel();
        let handler: Handler = Arc::new(move |parts, _| {
            let _ = requests.send(parts.version);
            empty_response(200)
        });
        let (target, mut ended) = hyper_target(
            ProtocolVersion::Http1,
            Some(self_signed_acceptor(&[b"http/1.1"])),
            handler,
        )
        .await;
        let settings = ProbeSettings {
            protocol: Protocol::Https,
            ..http_settings()
        };
        assert_success(&probe(&settings, target).await, 200);
        assert_eq!(seen.recv().await, Some(Version::HTTP_11));
        assert_connection_ended(&mut ended).await;
    }

    #[tokio::test]
    async fn https_http2_target_is_checked_over_h2_by_alpn() {
        let (requests, mut seen) = mpsc::unbounded_channel();
        let handler: Handler = Arc::new(move |parts, _| {
            let _ = requests.send(parts.version);
            empty_response(204)
        });
        let (target, _ended) = hyper_target(
            ProtocolVersion::Http2,
            Some(self_signed_acceptor(&[b"h2"])),
            handler,
        )
        .await;
        let settings = ProbeSettings {
            protocol: Protocol::Https,
            protocol_version: ProtocolVersion::Http2,
            http_codes: vec![200..=299],
            ..http_settings()
        };
        assert_success(&probe(&settings, target).await, 204);
        assert_eq!(seen.recv().await, Some(Version::HTTP_2));
    }

    #[tokio::test]
    async fn http2_prior_knowledge_target_is_checked() {
        let (requests, mut seen) = mpsc::unbounded_channel();
        let handler: Handler = Arc::new(move |parts: Parts, _| {
            let _ = requests.send(parts);
            empty_response(200)
        });
        let (target, mut ended) = hyper_target(ProtocolVersion::Http2, None, handler).await;
        let settings = ProbeSettings {
            protocol_version: ProtocolVersion::Http2,
            ..http_settings()
        };
        assert_success(&probe(&settings, target).await, 200);
        let parts = seen.recv().await.expect("the target saw the check");
        assert_eq!(parts.version, Version::HTTP_2);
        assert_eq!(parts.method, Method::GET);
        assert_eq!(
            parts.uri.authority().map(|a| a.as_str().to_string()),
            Some(format!("127.0.0.1:{}", target.port()))
        );
        assert_eq!(parts.uri.path(), "/health");
        assert_eq!(parts.headers[http::header::USER_AGENT], USER_AGENT);
        assert_connection_ended(&mut ended).await;
    }

    /// What a gRPC target reports: each request's head and body, and each connection's end.
    struct GrpcTarget {
        address: SocketAddr,
        requests: mpsc::UnboundedReceiver<(Parts, Bytes)>,
        ended: mpsc::UnboundedReceiver<()>,
    }

    /// An h2 (prior knowledge) target answering every call with `answer()`.
    async fn grpc_target(answer: fn() -> Response<TestBody>) -> GrpcTarget {
        let (requests, seen) = mpsc::unbounded_channel();
        let handler: Handler = Arc::new(move |parts, body| {
            let _ = requests.send((parts, body));
            answer()
        });
        let (address, ended) = hyper_target(ProtocolVersion::Http2, None, handler).await;
        GrpcTarget {
            address,
            requests: seen,
            ended,
        }
    }

    #[tokio::test]
    async fn grpc_status_in_trailers_is_matched() {
        // 12 (UNIMPLEMENTED) is what a server without the health service answers, hence ALB's
        // default matcher.
        let mut grpc = grpc_target(|| grpc_response(Some("12"))).await;
        let target = grpc.address;
        assert_success(&probe(&grpc_settings(vec![12..=12]), target).await, 200);
        let (parts, body) = grpc
            .requests
            .recv()
            .await
            .expect("the target saw the check");
        assert_eq!(parts.method, Method::POST);
        assert_eq!(parts.uri.path(), "/grpc.health.v1.Health/Check");
        assert_eq!(parts.headers[CONTENT_TYPE], "application/grpc");
        assert_eq!(parts.headers[TE], "trailers");
        assert_eq!(&body[..], GRPC_EMPTY_MESSAGE);
        assert_connection_ended(&mut grpc.ended).await;

        let outcome = probe(&grpc_settings(vec![0..=0]), target).await;
        assert_failure(
            &outcome,
            ProbeFailure::ResponseCodeMismatch,
            "Health checks failed with these gRPC codes: [12]",
        );
    }

    #[tokio::test]
    async fn grpc_trailers_only_response_is_matched() {
        let target = grpc_target(|| {
            Response::builder()
                .header(CONTENT_TYPE, "application/grpc")
                .header("grpc-status", "12")
                .body(Empty::new().boxed())
                .unwrap()
        })
        .await
        .address;
        assert_success(
            &probe(&grpc_settings(vec![0..=0, 10..=12]), target).await,
            200,
        );
        assert_failure(
            &probe(&grpc_settings(vec![0..=0]), target).await,
            ProbeFailure::ResponseCodeMismatch,
            "[12]",
        );
    }

    #[tokio::test]
    async fn grpc_response_without_grpc_status_fails_health_checks() {
        let target = grpc_target(|| grpc_response(None)).await.address;
        assert_failure(
            &probe(&grpc_settings(vec![0..=99]), target).await,
            ProbeFailure::FailedHealthChecks,
            "no grpc-status",
        );
    }

    #[tokio::test]
    async fn grpc_call_answered_with_an_http_error_is_a_code_mismatch() {
        let target = grpc_target(|| empty_response(503)).await.address;
        assert_failure(
            &probe(&grpc_settings(vec![0..=99]), target).await,
            ProbeFailure::ResponseCodeMismatch,
            "Health checks failed with these codes: [503]",
        );
    }

    #[tokio::test]
    async fn a_path_that_is_not_a_path_is_an_internal_error() {
        let settings = ProbeSettings {
            path: "health".to_string(),
            ..http_settings()
        };
        let outcome = probe(&settings, closed_port().await).await;
        assert_failure(&outcome, ProbeFailure::InternalError, "\"health\"");
    }

    #[test]
    fn authority_brackets_ipv6() {
        let v6: SocketAddr = "[fe80::1%2]:8080".parse().unwrap();
        assert_eq!(authority(v6), "[fe80::1]:8080");
        let v4: SocketAddr = "10.0.0.7:80".parse().unwrap();
        assert_eq!(authority(v4), "10.0.0.7:80");
    }

    #[test]
    fn failures_map_to_alb_reason_codes() {
        assert_eq!(
            ProbeFailure::ResponseCodeMismatch.reason_code(),
            "Target.ResponseCodeMismatch"
        );
        assert_eq!(ProbeFailure::Timeout.reason_code(), "Target.Timeout");
        assert_eq!(
            ProbeFailure::FailedHealthChecks.reason_code(),
            "Target.FailedHealthChecks"
        );
        assert_eq!(
            ProbeFailure::InternalError.reason_code(),
            "Elb.InternalError"
        );
    }
}
