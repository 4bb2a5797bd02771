//! The admin HTTP listener (default `127.0.0.1:9901`): `/metrics` for Prometheus and
//! `/healthz` for liveness probes, plus whatever JSON endpoints other parts of scalegate add.
//!
//! It is built on axum (tower-based) because it is an edge API that grows endpoints over time
//! and benefits from routing, method handling and extractors; the data plane does not use it.
//! Unknown paths answer 404 and known paths answer 405 (with `Allow`) to other methods.

use std::future::Future;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::{Metrics, TEXT_CONTENT_TYPE};

/// Re-exported so that callers adding endpoints use the same axum version as the server.
pub use axum;

/// What the admin server serves: the process's metrics plus routes contributed by other
/// parts of scalegate (config, targets, services…), kept open for extension.
#[derive(Clone)]
pub struct AdminState {
    metrics: Arc<Metrics>,
    extra_routes: Router,
}

impl AdminState {
    /// Serves `/metrics` from `metrics` and `/healthz`; add more with the `with_*` methods.
    pub fn new(metrics: Arc<Metrics>) -> AdminState {
        AdminState {
            metrics,
            extra_routes: Router::new(),
        }
    }

    /// Adds arbitrary routes (with their state already applied). Panics, like
    /// [`Router::merge`], if a path is routed twice, which is a programming error.
    pub fn with_routes(mut self, routes: Router) -> AdminState {
        self.extra_routes = self.extra_routes.merge(routes);
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
    Router::new()
        .route("/metrics", get(move || render_metrics(metrics.clone())))
        .route("/healthz", get(|| async { "ok" }))
        .merge(state.extra_routes)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
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
