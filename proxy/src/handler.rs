//! The request path. Every request goes through the same named phases, in this order:
//!
//! 1. **admit**: checks ALB makes before routing (TRACE → 405, request line > 16 KB → 414,
//!    one header > 16 KB → 431, more than 30 X-Forwarded-For addresses → 463). A request head
//!    over 64 KB is answered 431 by the HTTP parser before it reaches this module.
//! 2. **route**: listener rules, lowest priority first, then the default action.
//! 3. **act**: fixed response, redirect, or forward: pick the target group (weights,
//!    `AWSALBTG` stickiness), then a target (round robin), rewrite headers, send on a pooled
//!    connection.
//! 4. **respond**: map target failures to ALB's codes (502 reset or malformed, 503 no target,
//!    504 connect or response timeout), strip hop-by-hop headers, count everything, and hand
//!    the access-log entry to the response body, which writes it when the body ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use scalegate_config::Protocol;

use crate::access_log::{
    AccessLogEntry, Action as LoggedAction, ActionsExecuted, MatchedRule, RequestType,
};
use crate::actions::{CompiledForward, RedirectRequest};
use crate::body::{PendingLogEntry, ProxyBody, RequestBody, ResponseBody};
use crate::headers::{self, canonical_ip};
use crate::matching::{strip_port, RequestFacts};
use crate::routing::CompiledAction;
use crate::snapshot::ListenerRuntime;
use crate::target_group::stickiness::StickyLookup;
use crate::upstream::UpstreamError;

/// ALB's limit on the request line (method, target and version).
pub const MAX_REQUEST_LINE_BYTES: usize = 16 * 1024;
/// ALB's limit on one header (name, `: ` and value).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// What the TLS handshake of a connection settled, for the access log.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: Option<&'static str>,
    /// OpenSSL-style cipher name.
    pub cipher: Option<&'static str>,
    /// The SNI name the client sent.
    pub server_name: Option<String>,
}

/// What every request on one client connection shares.
pub struct ConnectionContext {
    /// The listener's current compiled config; loaded once per request.
    pub listener: Arc<ArcSwap<ListenerRuntime>>,
    /// The client's address (the TCP peer).
    pub peer: SocketAddr,
    /// The worker whose upstream pools this connection uses.
    pub worker: usize,
    /// Set when the client spoke TLS to us.
    pub tls: Option<TlsInfo>,
    /// The client's address as X-Forwarded-For shows it, without and with the port, formatted
    /// once per connection rather than per request.
    pub forwarded_for: [HeaderValue; 2],
    /// Requests being served on this connection; the idle timer only closes idle connections.
    pub in_flight: AtomicUsize,
}

/// What happened to a request, gathered along the phases for metrics and the access log.
struct Outcome {
    matched_rule: MatchedRule,
    actions: ActionsExecuted,
    target: Option<SocketAddr>,
    target_group: Option<Arc<str>>,
    target_status: Option<u16>,
    dispatched: Option<Instant>,
    target_time: Option<Duration>,
    redirect_url: Option<HeaderValue>,
    error_reason: Option<&'static str>,
    trace_id: Option<HeaderValue>,
}

impl Outcome {
    fn new() -> Self {
        Outcome {
            matched_rule: MatchedRule::NotEvaluated,
            actions: ActionsExecuted::default(),
            target: None,
            target_group: None,
            target_status: None,
            dispatched: None,
            target_time: None,
            redirect_url: None,
            error_reason: None,
            trace_id: None,
        }
    }
}

/// Serves one request; never fails, since every failure becomes an ALB-style response.
pub async fn handle(
    context: Arc<ConnectionContext>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let received = Instant::now();
    let listener = context.listener.load_full();
    context.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(&context.in_flight);

    let request_head_bytes = head_bytes(
        request
            .uri()
            .path_and_query()
            .map_or(1, |pq| pq.as_str().len()),
        request.headers(),
    );
    listener.metrics.received_bytes(request_head_bytes);
    let logging = listener.shared.access_log.as_ref().map(|logger| {
        let entry = log_entry_for(&context, &listener, &request, request_head_bytes);
        (logger.clone(), entry, Arc::new(AtomicU64::new(0)))
    });
    let received_body = logging.as_ref().map(|(_, _, total)| Arc::clone(total));

    let mut outcome = Outcome::new();
    let response = serve(&context, &listener, request, &mut outcome, received_body).await;

    let status = response.status().as_u16();
    let response_head_bytes = head_bytes(3, response.headers());
    let pending = logging.map(|(logger, mut entry, received_body)| {
        complete_entry(&mut entry, outcome, received, status);
        Box::new(PendingLogEntry {
            logger,
            entry,
            received_body,
            response_started: Instant::now(),
        })
    });
    let metrics = listener.metrics.clone();
    Ok(response.map(|body| ResponseBody::new(body, response_head_bytes, metrics, pending)))
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Approximate bytes of a message head: start line plus `name: value\r\n` per header.
fn head_bytes(start_line_bytes: usize, headers: &HeaderMap) -> u64 {
    let headers: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (start_line_bytes + 16 + headers) as u64
}

async fn serve(
    context: &ConnectionContext,
    listener: &ListenerRuntime,
    request: Request<Incoming>,
    outcome: &mut Outcome,
    received_body: Option<Arc<AtomicU64>>,
) -> Response<ProxyBody> {
    // Phase 1: admit.
    if let Some(status) = refuse(&request) {
        return elb_response(listener, status);
    }
    // Phase 2: route.
    let matched = {
        let facts = RequestFacts {
            method: request.method().as_str(),
            host: request_host(&request),
            path: request.uri().path(),
            query: request.uri().query(),
            headers: request.headers(),
            peer_ip: canonical_ip(context.peer.ip()),
        };
        listener.routes.route(&facts)
    };
    outcome.matched_rule = match matched.matched_rule_priority {
        0 => MatchedRule::Default,
        priority => MatchedRule::Priority(priority),
    };
    // Phase 3 and 4: act and respond.
    match matched.action {
        CompiledAction::FixedResponse(fixed) => {
            listener.metrics.request();
            listener.metrics.fixed_response(fixed.status().as_u16());
            outcome.actions = outcome.actions.with(LoggedAction::FixedResponse);
            let mut response = Response::new(ProxyBody::full(fixed.body()));
            *response.status_mut() = fixed.status();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, fixed.content_type().clone());
            response
        }
        CompiledAction::Redirect(redirect) => {
            let host = request_host(&request)
                .map(strip_port)
                .unwrap_or(&listener.shared.load_balancer.name);
            let host = host.to_ascii_lowercase();
            let target = RedirectRequest {
                protocol: listener.protocol,
                host: &host,
                port: listener.port,
                path: request.uri().path(),
                query: request.uri().query(),
            };
            outcome.actions = outcome.actions.with(LoggedAction::Redirect);
            match redirect.location(&target) {
                Ok(location) => {
                    listener.metrics.request();
                    listener.metrics.redirect(redirect.status().as_u16());
                    outcome.redirect_url = Some(location.clone());
                    let mut response = Response::new(ProxyBody::empty());
                    *response.status_mut() = redirect.status();
                    response.headers_mut().insert(header::LOCATION, location);
                    response
                }
                Err(error) => {
                    if matches!(
                        error,
                        crate::actions::RedirectError::UrlLimitExceeded { .. }
                    ) {
                        listener.metrics.redirect_url_limit_exceeded();
                    }
                    elb_response(listener, StatusCode::INTERNAL_SERVER_ERROR)
                }
            }
        }
        CompiledAction::Forward(forward_action) => {
            outcome.actions = outcome.actions.with(LoggedAction::Forward);
            forward(
                context,
                listener,
                forward_action,
                request,
                outcome,
                received_body,
            )
            .await
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
        .any(|(name, value)| name.as_str().len() + value.len() + 2 > MAX_HEADER_BYTES)
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
    outcome: &mut Outcome,
    received_body: Option<Arc<AtomicU64>>,
) -> Response<ProxyBody> {
    let choice = action.choose(
        request.headers().get_all(header::COOKIE).iter(),
        fastrand::u32(..),
    );
    if choice.stickiness == crate::actions::GroupStickiness::InvalidCookie {
        outcome.error_reason = Some("AWSALBTGCookieInvalid");
    }
    let Some(group) = listener.shared.target_groups.get(choice.target_group) else {
        return elb_response(listener, StatusCode::SERVICE_UNAVAILABLE);
    };
    outcome.target_group = Some(Arc::clone(&group.log_name));
    let table = group.group.routing_table();
    let stickiness = table.settings.stickiness.as_ref();
    let now = stickiness.map(|_| SystemTime::now());
    let mut pinned = false;
    let chosen = match (stickiness, now) {
        (Some(stickiness), Some(now)) => {
            let lookup =
                stickiness.pinned_target(request.headers().get_all(header::COOKIE).iter(), now);
            match lookup {
                StickyLookup::Pinned(address) if table.find(address).is_some() => {
                    pinned = true;
                    table.find(address)
                }
                other => {
                    if matches!(other, StickyLookup::Invalid) {
                        outcome.error_reason = Some("AWSALBCookieInvalid");
                    }
                    group.metrics.non_sticky_request();
                    table.pick(None)
                }
            }
        }
        _ => table.pick(None),
    };
    let Some(mut target) = chosen.cloned() else {
        return elb_response(listener, StatusCode::SERVICE_UNAVAILABLE);
    };
    if table.fail_open {
        group.metrics.unhealthy_routing_request();
    }
    listener.metrics.request();
    let is_upgrade =
        request.version() == Version::HTTP_11 && request.headers().contains_key(header::UPGRADE);
    let client_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut request));

    let (mut parts, body) = request.into_parts();
    outcome.trace_id = Some(rewrite_request_headers(
        context, listener, &mut parts, is_upgrade,
    ));
    // HTTP/1 targets get the origin form (`/path?query`); HTTP/2 needs scheme and authority
    // for its pseudo-headers.
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let http2 = group.protocol_version == scalegate_config::ProtocolVersion::Http2;
    let mut uri = http::uri::Parts::default();
    if http2 {
        uri.scheme = Some(group.scheme.clone());
        uri.authority = Some(target.authority.clone());
    }
    uri.path_and_query = Some(path_and_query);
    parts.uri = match Uri::from_parts(uri) {
        Ok(uri) => uri,
        Err(_) => return elb_response(listener, StatusCode::BAD_REQUEST),
    };
    parts.version = Version::HTTP_11;
    let body = RequestBody::new(body, listener.metrics.clone(), received_body);
    let mut request = Request::from_parts(parts, body);

    let passive_health = table.settings.passive_health;
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + group.response_timeout);
    outcome.dispatched = Some(started);
    let mut guard = ClientGoneGuard {
        listener,
        armed: true,
    };
    let mut retried = false;
    let result = loop {
        outcome.target = Some(target.address);
        target.metrics.request();
        let in_flight = target.begin_request();
        let pool = target.pool(context.worker);
        let sent = pool.send(request, passive_health && !retried);
        match tokio::time::timeout_at(deadline, sent).await {
            Ok(Ok(mut response)) => {
                response.body_mut().hold(in_flight);
                break Ok(Ok(response));
            }
            Ok(Err(failure)) => {
                if failure.error.is_connect() {
                    target.metrics.connection_error();
                }
                let retry = match failure.unsent {
                    Some(unsent) if passive_health && !retried => {
                        group.group.mark_suspect(&target);
                        table
                            .pick(Some(&target))
                            .cloned()
                            .map(|next| (unsent, next))
                    }
                    _ => None,
                };
                let Some((mut unsent, next)) = retry else {
                    break Ok(Err(failure.error));
                };
                tracing::debug!(target = %target.address, next = %next.address, target_group = %group.name, error = %crate::upstream::ErrorChain(&failure.error), "target failed before answering; retrying on another target");
                group.metrics.retry(&failure.error);
                if http2 {
                    let mut uri = std::mem::take(unsent.uri_mut()).into_parts();
                    uri.authority = Some(next.authority.clone());
                    *unsent.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
                }
                request = unsent;
                target = next;
                retried = true;
            }
            Err(elapsed) => break Err(elapsed),
        }
    };
    guard.armed = false;
    outcome.target_time = Some(started.elapsed());
    match result {
        Ok(Ok(mut response)) => {
            let status = response.status();
            outcome.target_status = Some(status.as_u16());
            target
                .metrics
                .observe_response(status.as_u16(), started.elapsed());
            let upgraded = status == StatusCode::SWITCHING_PROTOCOLS && is_upgrade;
            if upgraded {
                if let Some(client_upgrade) = client_upgrade {
                    let in_flight = response.body_mut().detach();
                    let target_upgrade = hyper::upgrade::on(&mut response);
                    tokio::spawn(async move {
                        tunnel(client_upgrade, target_upgrade).await;
                        drop(in_flight);
                    });
                }
            }
            if let (Some(stickiness), Some(now)) = (stickiness, now) {
                for cookie in
                    stickiness.set_cookies(target.address, response.headers(), pinned, now)
                {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
            headers::remove_hop_by_hop(response.headers_mut(), upgraded);
            if let Some(cookies) = choice.set_cookie {
                for cookie in cookies {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
            response.map(ProxyBody::from)
        }
        Ok(Err(error)) => {
            let (status, reason) = classify_target_error(&error);
            outcome.error_reason = Some(reason);
            tracing::debug!(target = %target.address, target_group = %group.name, error = %crate::upstream::ErrorChain(&error), "target request failed");
            elb_response(listener, status)
        }
        Err(_) => {
            outcome.error_reason = Some("TargetResponseTimeout");
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

/// Rewrites the request head for the target and returns the trace id it carries.
fn rewrite_request_headers(
    context: &ConnectionContext,
    listener: &ListenerRuntime,
    parts: &mut http::request::Parts,
    is_upgrade: bool,
) -> HeaderValue {
    let settings = &listener.shared.load_balancer;
    let headers = &mut parts.headers;
    headers::remove_hop_by_hop(headers, is_upgrade);
    if settings.drop_invalid_header_fields && drop_invalid_header_names(headers) {
        listener.metrics.dropped_invalid_header_request();
    }
    headers::apply_forwarded_for(
        headers,
        settings.xff_mode,
        &context.forwarded_for[usize::from(settings.xff_client_port)],
    );
    headers.insert(
        &headers::X_FORWARDED_PROTO,
        listener.forwarded_proto.clone(),
    );
    headers.insert(&headers::X_FORWARDED_PORT, listener.forwarded_port.clone());
    let trace_id = headers::apply_trace_id(headers);
    // The Host as received: the request target's authority (HTTP/2's :authority, or an
    // absolute-form HTTP/1 target, which ALB prefers), else the first Host header. Cloning a
    // HeaderValue only bumps a reference count.
    let from_authority = parts.uri.authority().is_some();
    let incoming_host = match parts.uri.authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => headers.get(header::HOST).cloned(),
    };
    match incoming_host {
        Some(host) if settings.preserve_host_header => {
            if !headers.contains_key(header::HOST) {
                headers.insert(header::HOST, host);
            }
        }
        Some(host) => match host.to_str() {
            Ok(text) if headers::host_needs_rewrite(text, listener.port) => {
                if let Some(value) = headers::rewritten_host(text, listener.port) {
                    headers.insert(header::HOST, value);
                }
            }
            _ => {
                if from_authority {
                    headers.insert(header::HOST, host);
                }
            }
        },
        None => {
            headers.insert(header::HOST, settings.default_host.clone());
        }
    }
    trace_id
}

/// Removes headers whose names are outside `[-A-Za-z0-9]+`; true when any was removed.
fn drop_invalid_header_names(headers: &mut HeaderMap) -> bool {
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
    let any = !invalid.is_empty();
    for name in invalid {
        headers.remove(name);
    }
    any
}

/// Maps a failed target exchange to ALB's status and an access-log error reason: a connect
/// timeout is 504; a refused connection, a failed TLS handshake, a reset or a malformed
/// response is 502.
fn classify_target_error(error: &UpstreamError) -> (StatusCode, &'static str) {
    match error {
        UpstreamError::ConnectTimeout(_) => {
            (StatusCode::GATEWAY_TIMEOUT, "TargetConnectionTimeout")
        }
        UpstreamError::Connect(_) => (StatusCode::BAD_GATEWAY, "TargetConnectionError"),
        UpstreamError::Tls(_) => (StatusCode::BAD_GATEWAY, "TargetTLSNegotiationError"),
        UpstreamError::Http(_) => (StatusCode::BAD_GATEWAY, "TargetResponseError"),
    }
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

/// The parts of an access-log entry known when the request arrives.
fn log_entry_for(
    context: &ConnectionContext,
    listener: &ListenerRuntime,
    request: &Request<Incoming>,
    request_head_bytes: u64,
) -> AccessLogEntry {
    let scheme = match listener.protocol {
        Protocol::Http => "http",
        Protocol::Https => "https",
    };
    let host = request_host(request)
        .map(strip_port)
        .unwrap_or(&listener.shared.load_balancer.name);
    let is_upgrade = request.headers().contains_key(header::UPGRADE);
    let request_type = match (context.tls.is_some(), request.version(), is_upgrade) {
        (true, _, true) => RequestType::Wss,
        (false, _, true) => RequestType::Ws,
        (true, Version::HTTP_2, _) | (false, Version::HTTP_2, _) => RequestType::H2,
        (true, _, _) => RequestType::Https,
        (false, _, _) => RequestType::Http,
    };
    let now = SystemTime::now();
    AccessLogEntry {
        request_type,
        time: now,
        client: context.peer,
        target: None,
        request_processing_time: None,
        target_processing_time: None,
        response_processing_time: None,
        elb_status_code: None,
        target_status_code: None,
        received_bytes: request_head_bytes,
        sent_bytes: 0,
        request: Some(format!(
            "{} {scheme}://{host}:{}{} {:?}",
            request.method(),
            listener.port,
            request.uri().path_and_query().map_or("/", |pq| pq.as_str()),
            request.version()
        )),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        ssl_cipher: context.tls.as_ref().and_then(|tls| tls.cipher),
        ssl_protocol: context.tls.as_ref().and_then(|tls| tls.protocol),
        target_group: None,
        trace_id: Some(headers::trace_id_for_log(request.headers())),
        domain_name: context.tls.as_ref().and_then(|tls| tls.server_name.clone()),
        chosen_cert: None,
        matched_rule: MatchedRule::NotEvaluated,
        request_creation_time: now,
        actions_executed: ActionsExecuted::default(),
        redirect_url: None,
        error_reason: None,
        classification: None,
        classification_reason: None,
    }
}

/// Fills in what the phases learned; bytes and the response time come when the body ends.
fn complete_entry(entry: &mut AccessLogEntry, outcome: Outcome, received: Instant, status: u16) {
    entry.elb_status_code = Some(status);
    entry.target = outcome.target;
    entry.target_group = outcome.target_group;
    entry.target_status_code = outcome.target_status;
    entry.matched_rule = outcome.matched_rule;
    entry.actions_executed = outcome.actions;
    entry.error_reason = outcome.error_reason;
    if let Some(sent) = outcome
        .trace_id
        .and_then(|v| v.to_str().ok().map(str::to_string))
    {
        entry.trace_id = Some(sent);
    }
    entry.redirect_url = outcome
        .redirect_url
        .and_then(|v| v.to_str().ok().map(str::to_string));
    match (outcome.dispatched, outcome.target_status) {
        (Some(dispatched), Some(_)) => {
            entry.request_processing_time = Some(dispatched.saturating_duration_since(received));
            entry.target_processing_time = outcome.target_time;
        }
        // Dispatched but no response: ALB writes -1 for all three times.
        (Some(_), None) => {}
        _ => {
            entry.request_processing_time = Some(received.elapsed());
            entry.target_processing_time = Some(Duration::ZERO);
        }
    }
}
