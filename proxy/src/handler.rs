//! The request path. Every request goes through the same named phases, in this order:
//!
//! 1. **admit**: checks ALB makes before routing (TRACE → 405, request line > 16 KB → 414,
//!    more than 30 X-Forwarded-For addresses → 463). Header-size limits (431) are enforced
//!    by the HTTP parser before a request reaches this module.
//! 2. **route**: listener rules, lowest priority first, then the default action.
//! 3. **act**: fixed response, redirect, or forward: pick the target group (weights,
//!    stickiness), then a target (round robin), rewrite headers, send on a pooled connection.
//! 4. **respond**: map target failures to ALB's codes (502 reset or malformed, 503 no target,
//!    504 connect or response timeout), strip hop-by-hop headers, count everything.

use std::convert::Infallible;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use crate::actions::{CompiledForward, RedirectRequest};
use crate::body::ProxyBody;
use crate::headers::{self, canonical_ip, split_host_port};
use crate::matching::RequestFacts;
use crate::routing::CompiledAction;
use crate::snapshot::{ListenerRuntime, TargetGroupRuntime};

/// ALB's limit on the request line (method, target and version).
pub const MAX_REQUEST_LINE_BYTES: usize = 16 * 1024;
/// ALB's limit on one header field (name, `: ` and value); the parser only bounds the whole
/// head (64 KB), so this one is checked here.
pub const MAX_HEADER_FIELD_BYTES: usize = 16 * 1024;

/// What every request on one client connection shares.
pub struct ConnectionContext {
    /// The listener's current compiled config; loaded once per request.
    pub listener: Arc<ArcSwap<ListenerRuntime>>,
    /// The client's address (the TCP peer).
    pub peer: SocketAddr,
    /// The worker whose upstream pools this connection uses.
    pub worker: usize,
    /// Whether the client spoke TLS to us.
    pub tls: bool,
    /// Requests being served on this connection; the idle timer only closes idle connections.
    pub in_flight: AtomicUsize,
}

/// Serves one request; never fails, since every failure becomes an ALB-style response.
pub async fn handle(
    context: Arc<ConnectionContext>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let listener = context.listener.load_full();
    context.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(&context.in_flight);
    Ok(serve(&context, &listener, request).await)
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(
    context: &ConnectionContext,
    listener: &ListenerRuntime,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    // Phase 1: admit.
    if let Some(status) = refuse(&request) {
        return elb_response(listener, status);
    }
    // Phase 2: route.
    let action = {
        let facts = RequestFacts {
            method: request.method().as_str(),
            host: request_host(&request),
            path: request.uri().path(),
            query: request.uri().query(),
            headers: request.headers(),
            peer_ip: canonical_ip(context.peer.ip()),
        };
        listener.routes.route(&facts).action
    };
    // Phase 3 and 4: act and respond.
    match action {
        CompiledAction::FixedResponse(fixed) => {
            listener.metrics.fixed_response(fixed.status().as_u16());
            let mut response = Response::new(ProxyBody::full(fixed.body()));
            *response.status_mut() = fixed.status();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, fixed.content_type().clone());
            response
        }
        CompiledAction::Redirect(redirect) => {
            let host = request_host(&request)
                .map(|host| split_host_port(host).0)
                .unwrap_or(&listener.shared.load_balancer.name);
            let host = host.to_ascii_lowercase();
            let target = RedirectRequest {
                protocol: if context.tls {
                    scalegate_config::Protocol::Https
                } else {
                    scalegate_config::Protocol::Http
                },
                host: &host,
                port: listener.port,
                path: request.uri().path(),
                query: request.uri().query(),
            };
            match redirect.location(&target) {
                Ok(location) => {
                    listener.metrics.redirect(redirect.status().as_u16());
                    let mut response = Response::new(ProxyBody::empty());
                    *response.status_mut() = redirect.status();
                    response.headers_mut().insert(header::LOCATION, location);
                    response
                }
                Err(_) => {
                    listener.metrics.redirect_url_limit_exceeded();
                    elb_response(listener, StatusCode::INTERNAL_SERVER_ERROR)
                }
            }
        }
        CompiledAction::Forward(forward_action) => {
            forward(context, listener, forward_action, request).await
        }
    }
}

/// ALB's pre-routing refusals.
fn refuse(request: &Request<Incoming>) -> Option<StatusCode> {
    if request.method() == Method::TRACE {
        return Some(StatusCode::METHOD_NOT_ALLOWED);
    }
    let target_length = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target_length + request.method().as_str().len() + 10 > MAX_REQUEST_LINE_BYTES {
        return Some(StatusCode::URI_TOO_LONG);
    }
    if request
        .headers()
        .iter()
        .any(|(name, value)| name.as_str().len() + 2 + value.len() > MAX_HEADER_FIELD_BYTES)
    {
        return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    if headers::forwarded_for_count(request.headers()) > headers::MAX_FORWARDED_FOR_ADDRESSES {
        return Some(StatusCode::from_u16(463).expect("463 is a valid status"));
    }
    None
}

/// The first Host header (HTTP/1) or the `:authority` (HTTP/2), as rules see it.
fn request_host(request: &Request<Incoming>) -> Option<&str> {
    match request.uri().authority() {
        Some(authority) if request.version() == Version::HTTP_2 => Some(authority.as_str()),
        _ => request
            .headers()
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .or_else(|| {
                request
                    .uri()
                    .authority()
                    .map(|authority| authority.as_str())
            }),
    }
}

async fn forward(
    context: &ConnectionContext,
    listener: &ListenerRuntime,
    action: &CompiledForward,
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    let choice = action.choose(
        request.headers().get_all(header::COOKIE).iter(),
        fastrand::u32(..),
    );
    let Some(group) = listener.shared.target_groups.get(choice.target_group) else {
        return elb_response(listener, StatusCode::SERVICE_UNAVAILABLE);
    };
    let Some(target) = group.next_target() else {
        return elb_response(listener, StatusCode::SERVICE_UNAVAILABLE);
    };
    listener.metrics.request();
    let is_upgrade =
        request.version() == Version::HTTP_11 && request.headers().contains_key(header::UPGRADE);
    let client_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut request));

    let (mut parts, body) = request.into_parts();
    rewrite_request_headers(context, listener, &mut parts, is_upgrade);
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(group.scheme.clone());
    uri.authority = Some(target.authority.clone());
    uri.path_and_query = Some(path_and_query);
    parts.uri = match Uri::from_parts(uri) {
        Ok(uri) => uri,
        Err(_) => return elb_response(listener, StatusCode::BAD_REQUEST),
    };
    parts.version = Version::HTTP_11;

    target.metrics.request();
    let started = Instant::now();
    let mut guard = ClientGoneGuard {
        listener,
        armed: true,
    };
    let sent = group
        .client(context.worker)
        .request(Request::from_parts(parts, body));
    let outcome = tokio::time::timeout(group.response_timeout, sent).await;
    guard.armed = false;
    match outcome {
        Ok(Ok(mut response)) => {
            let status = response.status();
            target
                .metrics
                .observe_response(status.as_u16(), started.elapsed());
            let upgraded = status == StatusCode::SWITCHING_PROTOCOLS && is_upgrade;
            if upgraded {
                if let Some(client_upgrade) = client_upgrade {
                    let target_upgrade = hyper::upgrade::on(&mut response);
                    tokio::spawn(tunnel(client_upgrade, target_upgrade));
                }
            }
            headers::remove_hop_by_hop(response.headers_mut(), upgraded);
            for cookie in choice.set_cookie.into_iter().flatten() {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            response.map(ProxyBody::from)
        }
        Ok(Err(error)) => {
            let status = classify_target_error(&error, group);
            if error.is_connect() {
                target.metrics.connection_error();
            }
            tracing::debug!(target = %target.address, target_group = %group.name, %error, "target request failed");
            elb_response(listener, status)
        }
        Err(_) => {
            tracing::debug!(target = %target.address, target_group = %group.name, "target response timed out");
            elb_response(listener, StatusCode::GATEWAY_TIMEOUT)
        }
    }
}

/// Counts a client that went away while its request was with a target (ALB's 460); the
/// upstream request is cancelled by dropping it.
struct ClientGoneGuard<'a> {
    listener: &'a ListenerRuntime,
    armed: bool,
}

impl Drop for ClientGoneGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.listener.metrics.elb_response(460);
        }
    }
}

fn rewrite_request_headers(
    context: &ConnectionContext,
    listener: &ListenerRuntime,
    parts: &mut http::request::Parts,
    is_upgrade: bool,
) {
    let settings = &listener.shared.load_balancer;
    let headers = &mut parts.headers;
    headers::remove_hop_by_hop(headers, is_upgrade);
    if settings.drop_invalid_header_fields {
        drop_invalid_header_names(headers);
    }
    headers::apply_forwarded_for(
        headers,
        settings.xff_mode,
        context.peer,
        settings.xff_client_port,
    );
    headers.insert(
        &headers::X_FORWARDED_PROTO,
        listener.forwarded_proto.clone(),
    );
    headers.insert(&headers::X_FORWARDED_PORT, listener.forwarded_port.clone());
    headers::apply_trace_id(headers);
    let incoming_host = match parts.uri.authority() {
        Some(authority)
            if parts.version == Version::HTTP_2 || !headers.contains_key(header::HOST) =>
        {
            Some(authority.as_str().to_string())
        }
        _ => headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .map(str::to_string),
    };
    match incoming_host {
        Some(host) if settings.preserve_host_header => {
            if !headers.contains_key(header::HOST) {
                if let Ok(value) = HeaderValue::from_str(&host) {
                    headers.insert(header::HOST, value);
                }
            }
        }
        Some(host) => {
            if let Some(value) = headers::rewritten_host(&host, listener.port) {
                headers.insert(header::HOST, value);
            }
        }
        None => {
            headers.insert(header::HOST, settings.default_host.clone());
        }
    }
}

fn drop_invalid_header_names(headers: &mut http::HeaderMap) {
    let invalid: Vec<header::HeaderName> = headers
        .keys()
        .filter(|name| {
            !name
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .cloned()
        .collect();
    for name in invalid {
        headers.remove(name);
    }
}

/// Maps a failed target exchange to ALB's status: a connect timeout is 504; a refused or
/// reset connection, or a malformed response, is 502.
fn classify_target_error(
    error: &hyper_util::client::legacy::Error,
    _group: &TargetGroupRuntime,
) -> StatusCode {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return StatusCode::GATEWAY_TIMEOUT;
            }
        }
        source = cause.source();
    }
    StatusCode::BAD_GATEWAY
}

/// Copies bytes both ways once client and target have both switched protocols (WebSocket).
async fn tunnel(client: hyper::upgrade::OnUpgrade, target: hyper::upgrade::OnUpgrade) {
    let (client, target) = match tokio::try_join!(client, target) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut target = hyper_util::rt::TokioIo::new(target);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut target).await {
        tracing::debug!(%error, "upgraded connection ended with an error");
    }
}

/// A response generated by the load balancer itself, shaped like ALB's (small HTML page),
/// counted per status code.
pub fn elb_response(listener: &ListenerRuntime, status: StatusCode) -> Response<ProxyBody> {
    listener.metrics.elb_response(status.as_u16());
    error_page(status)
}

/// The HTML error page ALB-style load balancers return.
pub fn error_page(status: StatusCode) -> Response<ProxyBody> {
    let reason = status.canonical_reason().unwrap_or(match status.as_u16() {
        460 => "Client Closed Request",
        463 => "Too Many Forwarded Addresses",
        464 => "Incompatible Protocol",
        _ => "Error",
    });
    let code = status.as_str();
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(ProxyBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    headers.insert(header::SERVER, HeaderValue::from_static("scalegate"));
    response
}
