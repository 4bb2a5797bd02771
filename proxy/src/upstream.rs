//! Connections to targets: pooled, keep-alive, with ALB's connect timeout.
//!
//! One [`UpstreamClient`] per target group and worker thread, so a worker's requests reuse
//! that worker's own idle connections and never hand a request to another thread's connection
//! task. The pool is keyed by target address.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::metrics::{ConnectionGuard, Metrics};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use scalegate_config::{ProtocolVersion, TargetGroup};

/// The pooled HTTP(S) client used to reach one target group's targets.
pub type UpstreamClient = Client<CountingConnector, RequestBody>;

/// The settings that decide how a client is built: a reload that leaves them unchanged keeps
/// the old clients, and with them their warm idle connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    protocol_version: ProtocolVersion,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_target: usize,
}

impl ClientSettings {
    /// Reads the client-relevant settings of a target group.
    pub fn new(group: &TargetGroup, idle_timeout: Duration) -> Self {
        ClientSettings {
            protocol_version: group.protocol_version,
            connect_timeout: Duration::from_secs(group.connect_timeout_seconds),
            idle_timeout,
            max_idle_per_target: group.max_idle_connections_per_target,
        }
    }

    /// Builds a client; HTTPS targets are not verified, as ALB does not verify target
    /// certificates. New connections are counted per target in `metrics`.
    pub fn build(&self, metrics: &Arc<Metrics>, target_group: &str) -> UpstreamClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyTargetCertificate))
        .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = match self.protocol_version {
            ProtocolVersion::Http1 => builder.enable_http1().wrap_connector(http),
            ProtocolVersion::Http2 => builder.enable_http2().wrap_connector(http),
        };
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(self.idle_timeout)
            .pool_max_idle_per_host(self.max_idle_per_target)
            .http2_only(self.protocol_version == ProtocolVersion::Http2);
        client.build(CountingConnector {
            inner: connector,
            metrics: Arc::clone(metrics),
            target_group: Arc::from(target_group),
        })
    }
}

/// Opens target connections through the HTTP(S) connector and keeps each one counted in its
/// target's active and new connection metrics (ALB's `ActiveConnectionCount` and
/// `NewConnectionCount` include load balancer → target connections).
#[derive(Clone)]
pub struct CountingConnector {
    inner: HttpsConnector<HttpConnector>,
    metrics: Arc<Metrics>,
    target_group: Arc<str>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for CountingConnector {
    type Response = CountedConnection<MaybeHttpsStream<TokioIo<TcpStream>>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let target = uri
            .authority()
            .map(|authority| authority.as_str().to_owned());
        let connecting = self.inner.call(uri);
        let metrics = Arc::clone(&self.metrics);
        let target_group = Arc::clone(&self.target_group);
        Box::pin(async move {
            let io = connecting.await?;
            let guard =
                target.map(|target| metrics.target(&target_group, &target).connection_opened());
            Ok(CountedConnection { io, _guard: guard })
        })
    }
}

pin_project_lite::pin_project! {
    /// A target connection that stays in the active-connections gauge until it closes.
    pub struct CountedConnection<T> {
        #[pin]
        io: T,
        _guard: Option<ConnectionGuard>,
    }
}

impl<T: Connection> Connection for CountedConnection<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: hyper::rt::Read> hyper::rt::Read for CountedConnection<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write> hyper::rt::Write for CountedConnection<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
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
