//! The admin HTTP listener (default `127.0.0.1:9901`): `/metrics` for Prometheus and
//! `/healthz` for liveness probes, plus whatever JSON endpoints other parts of scalegate add.
//!
//! It is built on axum (tower-based) because it is an edge API that grows endpoints over time
//! and benefits from routing, method handling and extractors; the data plane does not use it.
//! Unknown paths answer 404 and known paths answer 405 (with `Allow`) to other methods.

use std::future::Future;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::metrics::{Metrics, TEXT_CONTENT_TYPE};
use crate::target_group::{RegistrationSource, TargetGroups};

/// Re-exported so that callers adding endpoints use the same axum version as the server.
pub use axum;

/// What the admin server serves: the process's metrics plus routes contributed by other
/// parts of scalegate (config, targets, services…), kept open for extension.
#[derive(Clone)]
pub struct AdminState {
    metrics: Arc<Metrics>,
    extra_routes: Router,
    public_routes: Router,
    bearer_token: Option<Arc<str>>,
}

impl AdminState {
    /// Serves `/metrics` from `metrics` and `/healthz`; add more with the `with_*` methods.
    pub fn new(metrics: Arc<Metrics>) -> AdminState {
        AdminState {
            metrics,
            extra_routes: Router::new(),
            public_routes: Router::new(),
            bearer_token: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on every endpoint but `/healthz` (which
    /// liveness probes call without credentials).
    pub fn with_bearer_token(mut self, token: Option<String>) -> AdminState {
        self.bearer_token = token.map(Arc::from);
        self
    }

    /// Adds the target-group API over `groups`.
    pub fn with_target_groups(self, groups: Arc<TargetGroups>) -> AdminState {
        self.with_routes(target_group_routes(groups))
    }

    /// Adds arbitrary routes (with their state already applied). Panics, like
    /// [`Router::merge`], if a path is routed twice, which is a programming error.
    pub fn with_routes(mut self, routes: Router) -> AdminState {
        self.extra_routes = self.extra_routes.merge(routes);
        self
    }

    /// Adds routes served without the bearer token, for callers that cannot hold it: a task
    /// reading its own metadata (`ECS_CONTAINER_METADATA_URI_V4`). Only for read-only data
    /// that a local process may see anyway.
    pub fn with_public_routes(mut self, routes: Router) -> AdminState {
        self.public_routes = self.public_routes.merge(routes);
        self
    }

    /// Adds a `GET path` endpoint answering the JSON `render` produces at request time, for
    /// the common case of exposing a snapshot of some state without writing axum handlers.
    pub fn with_json<F>(self, path: &str, render: F) -> AdminState
    where
        F: Fn() -> serde_json::Value + Clone + Send + Sync + 'static,
    {
        let route = Router::new().route(path, get(move || async move { Json(render()) }));
        self.with_routes(route)
    }

    /// The metrics this server exports.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// The admin API as a router, for serving it some other way or testing it in memory.
pub fn router(state: AdminState) -> Router {
    let metrics = state.metrics;
    let protected = Router::new()
        .route("/metrics", get(move || render_metrics(metrics.clone())))
        .merge(state.extra_routes)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") });
    let protected = match state.bearer_token {
        Some(token) => protected.layer(axum::middleware::from_fn(move |request, next| {
            require_bearer(Arc::clone(&token), request, next)
        })),
        None => protected,
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(state.public_routes)
        .merge(protected)
}

/// Lets a request through only with the configured bearer token (compared in constant time,
/// so the token cannot be guessed byte by byte from response timing).
async fn require_bearer(
    token: Arc<str>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let matches = presented.len() == token.len()
        && presented
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0;
    if matches {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the admin API needs Authorization: Bearer <token>\n",
        )
            .into_response()
    }
}

/// A target in a register or deregister call: `"10.0.0.5:8080"`, `{"id": "10.0.0.5", "port":
/// 8080}`, or `{"id": "10.0.0.5"}` (the group's port).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
enum TargetSpec {
    Text(String),
    Object {
        id: String,
        #[serde(default)]
        port: Option<u16>,
    },
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsBody {
    targets: Vec<TargetSpec>,
}

#[derive(Debug, serde::Deserialize)]
struct HealthQuery {
    /// Comma-separated `ip:port` list to describe only those targets.
    #[serde(default)]
    targets: Option<String>,
}

fn json_error(status: StatusCode, message: impl std::fmt::Display) -> axum::response::Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

fn parse_target(spec: &TargetSpec, default_port: u16) -> Result<SocketAddr, String> {
    let target = match spec {
        TargetSpec::Text(text) => scalegate_config::Target::Short(text.clone()),
        TargetSpec::Object { id, port } => {
            scalegate_config::Target::Full(scalegate_config::TargetAddress {
                address: id.clone(),
                port: *port,
            })
        }
    };
    target.socket_addr(default_port)
}

/// The target-group API: ALB's `DescribeTargetHealth`, `RegisterTargets` and
/// `DeregisterTargets` in scalegate's JSON.
pub fn target_group_routes(groups: Arc<TargetGroups>) -> Router {
    let list = {
        let groups = Arc::clone(&groups);
        move || {
            let groups = Arc::clone(&groups);
            async move {
                let summary: Vec<serde_json::Value> = groups
                    .all()
                    .iter()
                    .map(|group| {
                        let settings = group.settings();
                        serde_json::json!({
                            "name": group.name(),
                            "in_use": group.in_use(),
                            "algorithm": settings.algorithm.as_str(),
                            "health_checks": settings.health_check.is_some(),
                            "fail_open": group.routing().fail_open,
                            "load": group.load(),
                        })
                    })
                    .collect();
                Json(serde_json::json!({ "target_groups": summary }))
            }
        }
    };
    let health = {
        let groups = Arc::clone(&groups);
        move |Path(name): Path<String>, Query(query): Query<HealthQuery>| {
            let groups = Arc::clone(&groups);
            async move {
                let Some(group) = groups.get(&name) else {
                    return json_error(StatusCode::NOT_FOUND, format!("no target group {name:?}"));
                };
                let only = match query.targets.as_deref() {
                    None | Some("") => None,
                    Some(list) => {
                        let parsed: Result<Vec<SocketAddr>, String> = list
                            .split(',')
                            .map(|text| {
                                parse_target(
                                    &TargetSpec::Text(text.to_string()),
                                    group.settings().default_port,
                                )
                            })
                            .collect();
                        match parsed {
                            Ok(addresses) => Some(addresses),
                            Err(error) => return json_error(StatusCode::BAD_REQUEST, error),
                        }
                    }
                };
                Json(serde_json::json!({
                    "target_group": group.name(),
                    "target_health_descriptions": group.describe(only.as_deref()),
                }))
                .into_response()
            }
        }
    };
    let change = |register: bool| {
        let groups = Arc::clone(&groups);
        move |Path(name): Path<String>,
              body: Result<Json<TargetsBody>, axum::extract::rejection::JsonRejection>| {
            let groups = Arc::clone(&groups);
            async move {
                let Some(group) = groups.get(&name) else {
                    return json_error(StatusCode::NOT_FOUND, format!("no target group {name:?}"));
                };
                let Json(body) = match body {
                    Ok(body) => body,
                    Err(rejection) => {
                        return json_error(StatusCode::BAD_REQUEST, rejection.body_text())
                    }
                };
                let default_port = group.settings().default_port;
                let addresses: Result<Vec<SocketAddr>, String> = body
                    .targets
                    .iter()
                    .map(|spec| parse_target(spec, default_port))
                    .collect();
                let addresses = match addresses {
                    Ok(addresses) if !addresses.is_empty() => addresses,
                    Ok(_) => return json_error(StatusCode::BAD_REQUEST, "targets is empty"),
                    Err(error) => return json_error(StatusCode::BAD_REQUEST, error),
                };
                let result = if register {
                    group.register(&addresses, RegistrationSource::Api)
                } else {
                    group.deregister(&addresses, RegistrationSource::Api)
                };
                match result {
                    Ok(()) => Json(serde_json::json!({
                        "target_group": group.name(),
                        "target_health_descriptions": group.describe(Some(&addresses)),
                    }))
                    .into_response(),
                    Err(error) => json_error(StatusCode::BAD_REQUEST, error),
                }
            }
        }
    };
    Router::new()
        .route("/api/target-groups", get(list))
        .route("/api/target-groups/{name}/health", get(health))
        .route("/api/target-groups/{name}/register", post(change(true)))
        .route("/api/target-groups/{name}/deregister", post(change(false)))
}

async fn render_metrics(metrics: Arc<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
        metrics.encode_text(),
    )
}

/// Serves the admin API on `listener` until `shutdown` completes, then lets in-flight
/// requests finish.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct RawResponse {
        status: u16,
        head: String,
        body: String,
    }

    /// A raw HTTP/1.1 exchange over a real socket, so the test covers what Prometheus sees.
    async fn exchange(address: std::net::SocketAddr, method: &str, path: &str) -> RawResponse {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("admin listens");
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request sent");
        let mut raw = String::new();
        stream
            .read_to_string(&mut raw)
            .await
            .expect("response read");
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .expect("a complete response head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status");
        RawResponse {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }

    #[tokio::test]
    async fn serves_metrics_healthz_and_extra_routes_until_shutdown() {
        let metrics = Metrics::new("admin-test");
        metrics.listener("http-80").request();
        let state = AdminState::new(metrics).with_json(
            "/config",
            || serde_json::json!({ "listeners": ["http-80"] }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("bound address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_admin(listener, state, async {
            let _ = stopped.await;
        }));

        let metrics_response = exchange(address, "GET", "/metrics").await;
        assert_eq!(metrics_response.status, 200);
        assert!(metrics_response
            .head
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"));
        assert!(metrics_response.body.contains("scalegate_requests_total{"));

        let health = exchange(address, "GET", "/healthz").await;
        assert_eq!((health.status, health.body.as_str()), (200, "ok"));

        let config = exchange(address, "GET", "/config").await;
        assert_eq!(config.status, 200);
        assert!(config.head.contains("content-type: application/json"));
        assert_eq!(config.body, r#"{"listeners":["http-80"]}"#);

        assert_eq!(exchange(address, "GET", "/nope").await.status, 404);
        let post = exchange(address, "POST", "/metrics").await;
        assert_eq!(post.status, 405);
        assert!(post.head.contains("allow: get,head"), "{}", post.head);

        stop.send(()).expect("server still running");
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("server stops after the shutdown signal")
            .expect("server task does not panic");
        assert!(result.is_ok());
    }
}
