//! Connections to targets: one small pool per target and worker, on hyper's connection API.
//!
//! Why not hyper-util's pooled client: it hashes its pool key on every checkout and return,
//! spawns a task per request to wait for the connection to become idle again, and boxes a
//! large future per request; measured with callgrind that was ~8k instructions of a ~42k
//! request. Here a request takes the most recently used idle connection of its target
//! (LIFO, so hot connections stay hot), and the connection goes back when the response body
//! has been read to its end. Each worker has its own pools, so in the `per_core` layout a
//! pool's lock is never contended.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use scalegate_config::{Protocol, ProtocolVersion, TargetGroup};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::metrics::TargetMetrics;
use crate::target_group::InFlight;

/// How a target group reaches its targets. A reload that leaves these unchanged keeps the
/// pools, and with them their warm connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    protocol: Protocol,
    protocol_version: ProtocolVersion,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

/// ALB's timeout for the TLS handshake with a target (then 502).
pub const TARGET_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl PoolSettings {
    /// Reads the connection settings of a target group; `idle_timeout` is the load
    /// balancer's, which ALB applies to target connections too.
    pub fn new(group: &TargetGroup, idle_timeout: Duration) -> Self {
        PoolSettings {
            protocol: group.protocol,
            protocol_version: group.protocol_version,
            connect_timeout: Duration::from_secs(group.connect_timeout_seconds),
            idle_timeout,
            max_idle: group.max_idle_connections_per_target,
        }
    }
}

/// Why a request could not be exchanged with a target; the handler maps it to ALB's codes.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection within the target group's connect timeout (ALB: 504).
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The connection was refused or failed (ALB: 502).
    #[error("connect failed: {0}")]
    Connect(io::Error),
    /// The TLS handshake with the target failed or timed out (ALB: 502).
    #[error("TLS handshake with the target failed: {0}")]
    Tls(io::Error),
    /// The HTTP exchange failed: reset, closed early, malformed response (ALB: 502).
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

impl UpstreamError {
    /// Every value of [`UpstreamError::kind`], for metric labels.
    pub const KINDS: [&'static str; 4] = [
        "connect_timeout",
        "connect_error",
        "tls_error",
        "connection_closed",
    ];

    /// A short label for the kind of failure (the reason a passive retry is counted under).
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::ConnectTimeout(_) => Self::KINDS[0],
            UpstreamError::Connect(_) => Self::KINDS[1],
            UpstreamError::Tls(_) => Self::KINDS[2],
            UpstreamError::Http(_) => Self::KINDS[3],
        }
    }

    /// True when no connection to the target could be established (ALB's
    /// `TargetConnectionErrorCount`).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            UpstreamError::ConnectTimeout(_) | UpstreamError::Connect(_) | UpstreamError::Tls(_)
        )
    }
}

/// A failed exchange, with the request handed back when sending it to another target is
/// safe: it never left (no connection, or hyper returned it unsent), or it is idempotent,
/// bodiless, and the connection died before any response byte.
pub struct SendFailure {
    /// What went wrong.
    pub error: UpstreamError,
    /// The request, ready to send elsewhere, when that is safe.
    pub unsent: Option<Request<RequestBody>>,
}

impl SendFailure {
    fn fatal(error: impl Into<UpstreamError>) -> SendFailure {
        SendFailure {
            error: error.into(),
            unsent: None,
        }
    }
}

enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

struct IdleConnection {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// One worker's connections to one target.
pub struct TargetPool {
    address: SocketAddr,
    settings: PoolSettings,
    tls: Option<tokio_rustls::TlsConnector>,
    metrics: TargetMetrics,
    /// Most recently used at the back (reused first), oldest at the front (expired first).
    idle: Mutex<VecDeque<IdleConnection>>,
    shared_http2: Mutex<Option<http2::SendRequest<RequestBody>>>,
    /// The target is draining (or the pool was replaced): connections close after their
    /// current request instead of going back to the pool.
    draining: AtomicBool,
}

impl TargetPool {
    /// A pool for `address`; connections are counted in `metrics`.
    pub fn new(address: SocketAddr, settings: PoolSettings, metrics: TargetMetrics) -> Arc<Self> {
        let tls = (settings.protocol == Protocol::Https)
            .then(|| tls_connector(settings.protocol_version));
        Arc::new(TargetPool {
            address,
            settings,
            tls,
            metrics,
            idle: Mutex::new(VecDeque::new()),
            shared_http2: Mutex::new(None),
            draining: AtomicBool::new(false),
        })
    }

    /// Stops reusing connections: idle ones close now, busy ones after their request (a
    /// shared HTTP/2 connection after its last stream).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.idle.lock().expect("pool lock").clear();
        self.shared_http2.lock().expect("pool lock").take();
    }

    /// The settings this pool was built with, to decide whether a reload may keep it.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// Sends `request` on an idle connection, or a new one.
    ///
    /// A pooled connection may have been closed by the target just before we reuse it (the
    /// keep-alive race behind many load balancers' 502s). If hyper notices before writing, it
    /// hands the request back and it goes out on another connection. If it was written into
    /// the dead connection, it is sent once more on a fresh connection, but only when that is
    /// safe: an idempotent method, no body, and no response byte received.
    ///
    /// With `keep_for_retry`, a request that failed that safely is handed back in the
    /// [`SendFailure`] so the caller can try another target (passive health checks).
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<RequestBody>,
        keep_for_retry: bool,
    ) -> Result<Response<UpstreamBody>, SendFailure> {
        if self.settings.protocol_version == ProtocolVersion::Http2 {
            return self.send_http2(request).await;
        }
        let mut replay = None;
        let mut fresh_only = false;
        loop {
            let pooled = if fresh_only {
                None
            } else {
                self.checkout().await
            };
            let (mut sender, reused) = match pooled {
                Some(sender) => (sender, true),
                None => match self.connect().await {
                    Ok(Sender::Http1(sender)) => (sender, false),
                    Ok(Sender::Http2(_)) => unreachable!("HTTP1 pools open HTTP/1 connections"),
                    Err(error) => {
                        return Err(SendFailure {
                            error,
                            unsent: Some(request),
                        })
                    }
                },
            };
            if replay.is_none() && (reused || keep_for_retry) {
                // A reused connection can be stale; a fresh one needs a copy only when the
                // caller may retry elsewhere.
                replay = replayable_head(&request);
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let release = Some(Release {
                        sender,
                        pool: Arc::clone(self),
                    });
                    return Ok(response.map(|body| UpstreamBody {
                        inner: body,
                        release,
                        in_flight: None,
                    }));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    Some(unsent) => {
                        return Err(SendFailure {
                            error: UpstreamError::Http(error.into_error()),
                            unsent: Some(unsent),
                        })
                    }
                    None => {
                        let error = error.into_error();
                        match replay.take() {
                            Some(head) if reused && !fresh_only && is_stale_connection(&error) => {
                                tracing::debug!(target = %self.address, error = %ErrorChain(&error), "pooled target connection was closed; sending again on a fresh one");
                                request = Request::from_parts(head, RequestBody::empty());
                                fresh_only = true;
                                replay =
                                    keep_for_retry.then(|| replayable_head(&request)).flatten();
                            }
                            Some(head) if keep_for_retry && is_stale_connection(&error) => {
                                return Err(SendFailure {
                                    error: UpstreamError::Http(error),
                                    unsent: Some(Request::from_parts(head, RequestBody::empty())),
                                })
                            }
                            _ => return Err(SendFailure::fatal(error)),
                        }
                    }
                },
            }
        }
    }

    async fn send_http2(
        self: &Arc<Self>,
        request: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, SendFailure> {
        let existing = self
            .shared_http2
            .lock()
            .expect("pool lock")
            .clone()
            .filter(|sender| !sender.is_closed());
        let mut sender = match existing {
            Some(sender) => sender,
            None => match self.connect().await {
                Ok(Sender::Http2(sender)) => {
                    if !self.draining.load(Ordering::Relaxed) {
                        *self.shared_http2.lock().expect("pool lock") = Some(sender.clone());
                    }
                    sender
                }
                Ok(Sender::Http1(_)) => unreachable!("HTTP2 pools open HTTP/2 connections"),
                Err(error) => {
                    return Err(SendFailure {
                        error,
                        unsent: Some(request),
                    })
                }
            },
        };
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response.map(|body| UpstreamBody {
                inner: body,
                release: None,
                in_flight: None,
            })),
            Err(mut error) => {
                let unsent = error.take_message();
                Err(SendFailure {
                    error: UpstreamError::Http(error.into_error()),
                    unsent,
                })
            }
        }
    }

    /// The most recently used idle connection that is still open and not expired.
    async fn checkout(&self) -> Option<http1::SendRequest<RequestBody>> {
        loop {
            let idle = self.idle.lock().expect("pool lock").pop_back()?;
            if idle.sender.is_closed() || idle.since.elapsed() >= self.settings.idle_timeout {
                continue;
            }
            let mut sender = idle.sender;
            // The previous response has been read in full; the connection task is at most a
            // step away from taking the next request, or has found the connection closed.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn release(&self, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() || self.draining.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().expect("pool lock");
        // Close the oldest idle connection once it has been idle for the idle timeout, as ALB
        // closes target connections (one per return keeps this O(1)).
        if idle
            .front()
            .is_some_and(|oldest| now.duration_since(oldest.since) >= self.settings.idle_timeout)
        {
            idle.pop_front();
        }
        if idle.len() < self.settings.max_idle {
            idle.push_back(IdleConnection { sender, since: now });
        }
    }

    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let stream = match tokio::time::timeout(
            self.settings.connect_timeout,
            TcpStream::connect(self.address),
        )
        .await
        {
            Err(_) => return Err(UpstreamError::ConnectTimeout(self.settings.connect_timeout)),
            Ok(Err(error)) => return Err(UpstreamError::Connect(error)),
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let guard = self.metrics.connection_opened();
        match &self.tls {
            None => self.handshake(stream, guard).await,
            Some(connector) => {
                let name = ServerName::IpAddress(self.address.ip().into());
                match tokio::time::timeout(
                    TARGET_TLS_HANDSHAKE_TIMEOUT,
                    connector.connect(name, stream),
                )
                .await
                {
                    Ok(Ok(tls)) => self.handshake(tls, guard).await,
                    Ok(Err(error)) => {
                        self.metrics.tls_negotiation_error();
                        Err(UpstreamError::Tls(error))
                    }
                    Err(_) => {
                        self.metrics.tls_negotiation_error();
                        Err(UpstreamError::Tls(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "TLS handshake timed out",
                        )))
                    }
                }
            }
        }
    }

    async fn handshake<I>(
        &self,
        io: I,
        guard: crate::metrics::ConnectionGuard,
    ) -> Result<Sender, UpstreamError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        let address = self.address;
        match self.settings.protocol_version {
            ProtocolVersion::Http1 => {
                let (sender, connection) = http1::Builder::new().handshake(io).await?;
                tokio::spawn(async move {
                    let _open = guard;
                    if let Err(error) = connection.with_upgrades().await {
                        tracing::debug!(target = %address, %error, "target connection ended with an error");
                    }
                });
                Ok(Sender::Http1(sender))
            }
            ProtocolVersion::Http2 => {
                let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await?;
                tokio::spawn(async move {
                    let _open = guard;
                    if let Err(error) = connection.await {
                        tracing::debug!(target = %address, %error, "target connection ended with an error");
                    }
                });
                Ok(Sender::Http2(sender))
            }
        }
    }
}

/// A copy of a request's head when sending it twice would be harmless: an idempotent method
/// (RFC 9110 §9.2.2) and no body. Copying the head costs an allocation or two; it buys zero
/// failed requests when a target closes a keep-alive connection under us.
fn replayable_head(request: &Request<RequestBody>) -> Option<http::request::Parts> {
    use http::Method;
    let idempotent = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    );
    if !idempotent || !request.body().is_end_stream() {
        return None;
    }
    let (mut head, ()) = Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version())
        .body(())
        .ok()?
        .into_parts();
    head.headers = request.headers().clone();
    Some(head)
}

/// Whether a failure looks like a reused connection the target had already closed: it ended
/// before a response began (reset, broken pipe, or closed mid-message).
fn is_stale_connection(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() || error.is_canceled() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
            );
        }
        source = cause.source();
    }
    false
}

/// Shows an error with its causes (`connection error: Connection reset by peer`), which
/// hyper's own message alone hides.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Hands an HTTP/1 connection back to its pool once its response has been read.
struct Release {
    sender: http1::SendRequest<RequestBody>,
    pool: Arc<TargetPool>,
}

/// A target's response body. When it has been read to the end its connection returns to the
/// pool; dropped before the end, the connection is closed (it still carries unread bytes).
pub struct UpstreamBody {
    inner: Incoming,
    release: Option<Release>,
    /// Keeps the request counted as outstanding on its target until the body ends.
    in_flight: Option<InFlight>,
}

impl UpstreamBody {
    /// The response is a protocol switch (101): the connection now belongs to the tunnel,
    /// which takes over the outstanding-request count.
    pub fn detach(&mut self) -> Option<InFlight> {
        self.release = None;
        self.in_flight.take()
    }

    /// Counts the request as outstanding on its target until this body ends or is dropped.
    pub fn hold(&mut self, in_flight: InFlight) {
        self.in_flight = Some(in_flight);
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            if self.inner.is_end_stream() {
                release.pool.release(release.sender);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            if let Some(release) = self.release.take() {
                release.pool.release(release.sender);
            }
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The TLS connector for targets that speak `version`: certificates are not verified (as ALB)
/// and ALPN offers that version. Built once per version and shared by every pool and health
/// check, so a reload or a check does not rebuild a `ClientConfig`; a clone is an `Arc` clone.
pub(crate) fn tls_connector(version: ProtocolVersion) -> tokio_rustls::TlsConnector {
    static HTTP1: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    static HTTP2: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    let connector = match version {
        ProtocolVersion::Http1 => &HTTP1,
        ProtocolVersion::Http2 => &HTTP2,
    };
    connector
        .get_or_init(|| build_tls_connector(version))
        .clone()
}

fn build_tls_connector(version: ProtocolVersion) -> tokio_rustls::TlsConnector {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnyTargetCertificate))
    .with_no_client_auth();
    config.alpn_protocols = match version {
        ProtocolVersion::Http1 => vec![b"http/1.1".to_vec()],
        ProtocolVersion::Http2 => vec![b"h2".to_vec()],
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// ALB does not validate target certificates (self-signed and expired are fine); neither do we.
#[derive(Debug)]
struct AcceptAnyTargetCertificate;

impl ServerCertVerifier for AcceptAnyTargetCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
