//! Where requests go and how to reach it: the URL's addresses, the TLS client, opening a
//! connection, and the requests built once from the template (serialized bytes for HTTP/1.1,
//! parts every HTTP/2 request clones).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri, Version};
use http_body_util::Full;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::exchange::Failure;
use super::http1::Http1Connection;
use super::{GeneratorError, GeneratorOptions, Protocol, RequestTemplate, TlsOptions};
use crate::report::ErrorClass;

/// The body type of every request: the template's bytes, shared, never copied.
pub(super) type RequestBody = Full<Bytes>;
/// The sending half of an HTTP/2 connection (clonable, many streams).
pub(super) type Http2Sender = http2::SendRequest<RequestBody>;

/// Headers that mean something only to one HTTP/1.1 hop; HTTP/2 forbids them.
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// The server every request goes to, and what to send it.
pub(super) struct Target {
    addresses: Vec<SocketAddr>,
    tls: Option<TlsTarget>,
    protocol: Protocol,
    connect_timeout: Duration,
    method: Method,
    /// HTTP/1.1: one whole request per template URL, written as is.
    http1_requests: Vec<Bytes>,
    /// HTTP/2: one absolute URI per template URL.
    uris: Vec<Uri>,
    headers: HeaderMap,
    body: Bytes,
}

struct TlsTarget {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl Target {
    /// Checks the template (one scheme and authority for all URLs), resolves the host and
    /// builds the TLS client, so that every mistake surfaces before the run starts.
    pub(super) fn new(
        template: &RequestTemplate,
        options: &GeneratorOptions,
    ) -> Result<Self, GeneratorError> {
        let invalid = |message: String| GeneratorError::Invalid(message);
        let first = template
            .urls
            .first()
            .ok_or_else(|| invalid("at least one URL is needed".to_string()))?;
        let (scheme, authority) = scheme_and_authority(first)?;
        for url in &template.urls[1..] {
            let (other_scheme, other_authority) = scheme_and_authority(url)?;
            if other_scheme != scheme || other_authority != authority {
                return Err(invalid(format!(
                    "all URLs must share one scheme and host:port ({first} and {url} differ)"
                )));
            }
        }
        let secure = scheme == Scheme::HTTPS;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let addresses: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|error| invalid(format!("cannot resolve {host}: {error}")))?
            .collect();
        if addresses.is_empty() {
            return Err(invalid(format!("{host} resolves to no address")));
        }
        let tls = if secure {
            let server_name = ServerName::try_from(host.to_string()).map_err(|error| {
                invalid(format!("{host} is not a valid TLS server name: {error}"))
            })?;
            let config = client_config(&options.tls, options.protocol)?;
            Some(TlsTarget {
                connector: TlsConnector::from(Arc::new(config)),
                server_name,
            })
        } else {
            None
        };

        let mut headers = template.headers.clone();
        let host_override = headers.remove(header::HOST);
        let uri_authority = match (&host_override, options.protocol) {
            (Some(value), Protocol::Http2) => value
                .to_str()
                .ok()
                .and_then(|text| text.parse::<Authority>().ok())
                .ok_or_else(|| invalid(format!("invalid host header {value:?}")))?,
            _ => authority.clone(),
        };
        if !template.body.is_empty() || expects_body(&template.method) {
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(template.body.len()),
            );
        }
        let (http1_requests, uris) = match options.protocol {
            Protocol::Http1 => {
                let host = match host_override {
                    Some(value) => value,
                    None => HeaderValue::from_str(authority.as_str())
                        .map_err(|error| invalid(format!("invalid host {authority}: {error}")))?,
                };
                let requests = template
                    .urls
                    .iter()
                    .map(|url| {
                        serialize_http1(
                            &template.method,
                            &path_and_query(url),
                            &host,
                            &headers,
                            &template.body,
                        )
                    })
                    .collect();
                (requests, Vec::new())
            }
            Protocol::Http2 => {
                for name in &CONNECTION_SPECIFIC {
                    headers.remove(name);
                }
                let uris = template
                    .urls
                    .iter()
                    .map(|url| {
                        Uri::builder()
                            .scheme(scheme.clone())
                            .authority(uri_authority.clone())
                            .path_and_query(path_and_query(url))
                            .build()
                            .map_err(|error| invalid(format!("invalid URL {url}: {error}")))
                    })
                    .collect::<Result<_, _>>()?;
                (Vec::new(), uris)
            }
        };
        Ok(Target {
            addresses,
            tls,
            protocol: options.protocol,
            connect_timeout: options.connect_timeout,
            method: template.method.clone(),
            http1_requests,
            uris,
            headers,
            body: template.body.clone(),
        })
    }

    /// How many URLs requests rotate over.
    pub(super) fn url_count(&self) -> usize {
        self.http1_requests.len().max(self.uris.len())
    }

    /// Whether requests are `HEAD` (their responses have no body whatever they say).
    pub(super) fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }

    /// The whole HTTP/1.1 request for URL `url` (an index into the template's list).
    pub(super) fn http1_request(&self, url: usize) -> &[u8] {
        &self.http1_requests[url]
    }

    /// The HTTP/2 request for URL `url`, built from shared parts: the only allocation is the
    /// header map's copy, which hyper consumes.
    pub(super) fn http2_request(&self, url: usize) -> Request<RequestBody> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uris[url].clone();
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = self.headers.clone();
        request
    }

    /// Opens a TCP connection (TCP_NODELAY) and, for `https://`, completes the TLS handshake,
    /// all within the connect timeout. `attempt` picks among the resolved addresses.
    async fn connect(&self, attempt: usize) -> Result<Stream, Failure> {
        let address = self.addresses[attempt % self.addresses.len()];
        let connecting = async {
            let tcp = TcpStream::connect(address).await.map_err(|error| {
                Failure::new(
                    ErrorClass::Connect,
                    format!("connect to {address}: {error}"),
                )
            })?;
            // Without it a small request can wait for Nagle's timer; failing to set it only
            // costs latency, so it is not an error.
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &self.tls else {
                return Ok(Stream::Plain(tcp));
            };
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|error| {
                    Failure::new(
                        ErrorClass::Tls,
                        format!("TLS handshake with {address}: {error}"),
                    )
                })?;
            if self.protocol == Protocol::Http2 && stream.get_ref().1.alpn_protocol() != Some(b"h2")
            {
                return Err(Failure::new(
                    ErrorClass::Tls,
                    format!(
                        "{address} did not negotiate HTTP/2 over TLS (ALPN h2); use HTTP/1.1 \
                         for this server"
                    ),
                ));
            }
            Ok(Stream::Tls(Box::new(stream)))
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                ErrorClass::Connect,
                format!(
                    "no connection to {address} within the connect timeout ({:?})",
                    self.connect_timeout
                ),
            )),
        }
    }

    /// A new HTTP/1.1 connection.
    pub(super) async fn connect_http1(&self, attempt: usize) -> Result<Http1Connection, Failure> {
        Ok(Http1Connection::new(self.connect(attempt).await?))
    }

    /// A new HTTP/2 connection, its I/O driven by a task of its own on the current runtime.
    pub(super) async fn connect_http2(&self, attempt: usize) -> Result<Http2Sender, Failure> {
        let stream = self.connect(attempt).await?;
        let handshake = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(stream));
        let (sender, connection) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| {
                Failure::new(
                    ErrorClass::Connect,
                    "no HTTP/2 handshake within the connect timeout".to_string(),
                )
            })?
            .map_err(|error| {
                Failure::new(ErrorClass::Connect, format!("HTTP/2 handshake: {error}"))
            })?;
        tokio::task::spawn_local(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP/2 connection ended");
            }
        });
        Ok(sender)
    }
}

fn scheme_and_authority(url: &Uri) -> Result<(Scheme, Authority), GeneratorError> {
    let scheme = url
        .scheme()
        .filter(|scheme| **scheme == Scheme::HTTP || **scheme == Scheme::HTTPS)
        .ok_or_else(|| GeneratorError::Invalid(format!("{url}: only http:// and https:// URLs")))?;
    let authority = url
        .authority()
        .ok_or_else(|| GeneratorError::Invalid(format!("{url}: the URL needs a host")))?;
    if authority.as_str().contains('@') {
        return Err(GeneratorError::Invalid(format!(
            "{url}: user information in URLs is not supported; send an authorization header"
        )));
    }
    Ok((scheme.clone(), authority.clone()))
}

/// Methods whose requests carry a body, so an empty one is sent as `content-length: 0` (a
/// server would otherwise wait for one).
fn expects_body(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PUT || *method == Method::PATCH
}

/// An HTTP/1.1 request as bytes on the wire: request line, `host` first, the other headers,
/// the body.
fn serialize_http1(
    method: &Method,
    path: &PathAndQuery,
    host: &HeaderValue,
    headers: &HeaderMap,
    body: &Bytes,
) -> Bytes {
    let mut request = Vec::with_capacity(256 + body.len());
    request.extend_from_slice(method.as_str().as_bytes());
    request.push(b' ');
    request.extend_from_slice(path.as_str().as_bytes());
    request.extend_from_slice(b" HTTP/1.1\r\n");
    let fields = std::iter::once((&header::HOST, host)).chain(headers.iter());
    for (name, value) in fields {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    Bytes::from(request)
}

fn path_and_query(url: &Uri) -> PathAndQuery {
    url.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// The rustls client: Mozilla's roots plus `--ca-file`, or any certificate when insecure; ALPN
/// offers the protocol asked for (HTTP/2 also offers http/1.1, so that a server without h2 is
/// reported as such rather than as a failed handshake).
fn client_config(tls: &TlsOptions, protocol: Protocol) -> Result<ClientConfig, GeneratorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| GeneratorError::Invalid(format!("TLS setup: {error}")))?;
    let mut config = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &tls.ca_file {
            let invalid = |error: &dyn std::fmt::Display| {
                GeneratorError::Invalid(format!("CA file {}: {error}", path.display()))
            };
            let mut added = 0;
            for certificate in
                CertificateDer::pem_file_iter(path).map_err(|error| invalid(&error))?
            {
                let certificate = certificate.map_err(|error| invalid(&error))?;
                roots.add(certificate).map_err(|error| invalid(&error))?;
                added += 1;
            }
            if added == 0 {
                return Err(invalid(&"no PEM certificate in the file"));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = match protocol {
        Protocol::Http1 => vec![b"http/1.1".to_vec()],
        Protocol::Http2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// `--insecure`: any certificate chain and name are accepted (self-signed test servers), but
/// the handshake signatures are still checked, as `curl -k` does.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
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
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A connection's byte stream: plain TCP or TLS over TCP, one type so the rest of the generator
/// is written once.
#[derive(Debug)]
pub(super) enum Stream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://` (boxed: a TLS session is large and connections are few).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
