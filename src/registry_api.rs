//! The embedded registry's admin API: Cloud Map's RegisterInstance, DeregisterInstance,
//! UpdateInstanceCustomHealthStatus and DiscoverInstances, in scalegate's own JSON.
//!
//! - `GET /api/registry`: the DNS address and every namespace, service and instance
//! - `GET /api/registry/namespaces/{ns}/services/{svc}/instances?health_status=...`
//! - `PUT /api/registry/namespaces/{ns}/services/{svc}/instances/{id}` `{"address", "port", "attributes"}`
//! - `DELETE …/instances/{id}` → `{"keep_reachable_for_seconds": N}`
//! - `PUT …/instances/{id}/health` `{"status": "HEALTHY" | "UNHEALTHY"}`
//!
//! Errors are `{"error": "..."}`: 404 for an unknown namespace, service or instance, 400 for a
//! bad body or a registration Cloud Map's limits refuse.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use scalegate_discovery::registry::{
    EmbeddedRegistry, HealthStatus, HealthStatusFilter, ServiceInstance,
};
use scalegate_discovery::DiscoveryError;
use scalegate_proxy::admin::axum;
use serde::Deserialize;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};

/// `PUT …/instances/{id}`: what RegisterInstance needs besides the names in the path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    address: IpAddr,
    port: u16,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// `PUT …/instances/{id}/health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthBody {
    status: HealthStatus,
}

/// `GET …/instances?health_status=`: parsed by hand for a message listing the choices.
#[derive(Debug, Deserialize)]
struct DiscoverQuery {
    health_status: Option<String>,
}

/// `{ns}/{svc}` and `{ns}/{svc}/{id}` path segments.
type ServicePath = Path<(String, String)>;
type InstancePath = Path<(String, String, String)>;

fn json_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

fn registry_error(error: DiscoveryError) -> Response {
    let status = match error {
        DiscoveryError::NotFound { .. } => StatusCode::NOT_FOUND,
        DiscoveryError::InvalidRegistration(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(status, error)
}

/// An instance as DiscoverInstances lists it.
fn instance_json(namespace: &str, service: &str, instance: &ServiceInstance) -> serde_json::Value {
    serde_json::json!({
        "instance_id": instance.instance_id,
        "namespace_name": namespace,
        "service_name": service,
        "health_status": instance.health,
        "attributes": instance.attributes,
    })
}

/// The registry routes, over `registry`; `dns_address` tells where its DNS server listens,
/// if it runs (shown so that users know what to point `dig` at).
pub fn routes<F>(registry: Arc<EmbeddedRegistry>, dns_address: F) -> Router
where
    F: Fn() -> Option<SocketAddr> + Clone + Send + Sync + 'static,
{
    let overview = {
        let registry = Arc::clone(&registry);
        move || {
            let registry = Arc::clone(&registry);
            let dns_address = dns_address();
            async move {
                Json(serde_json::json!({
                    "dns_address": dns_address.map(|address| address.to_string()),
                    "namespaces": registry.view().namespaces,
                }))
            }
        }
    };
    let discover = {
        let registry = Arc::clone(&registry);
        move |Path((namespace, service)): ServicePath, Query(query): Query<DiscoverQuery>| {
            let registry = Arc::clone(&registry);
            async move {
                let filter = match query.health_status.as_deref() {
                    None | Some("") => HealthStatusFilter::default(),
                    Some(text) => match text.parse::<HealthStatusFilter>() {
                        Ok(filter) => filter,
                        Err(error) => return json_error(StatusCode::BAD_REQUEST, error),
                    },
                };
                match registry.discover_instances(&namespace, &service, filter) {
                    Ok(instances) => Json(serde_json::json!({
                        "instances": instances
                            .iter()
                            .map(|instance| instance_json(&namespace, &service, instance))
                            .collect::<Vec<_>>(),
                    }))
                    .into_response(),
                    Err(error) => registry_error(error),
                }
            }
        }
    };
    let register = {
        let registry = Arc::clone(&registry);
        move |Path((namespace, service, instance_id)): InstancePath,
              body: Result<Json<RegisterBody>, JsonRejection>| {
            let registry = Arc::clone(&registry);
            async move {
                let Json(body) = match body {
                    Ok(body) => body,
                    Err(rejection) => {
                        return json_error(StatusCode::BAD_REQUEST, rejection.body_text())
                    }
                };
                let instance = ServiceInstance {
                    instance_id: instance_id.clone(),
                    address: body.address,
                    port: body.port,
                    health: HealthStatus::Healthy,
                    attributes: body.attributes,
                };
                if let Err(error) = registry.register_instance(&namespace, &service, instance) {
                    return registry_error(error);
                }
                let registered = registry
                    .discover_instances(&namespace, &service, HealthStatusFilter::All)
                    .ok()
                    .and_then(|instances| {
                        instances
                            .into_iter()
                            .find(|i| i.instance_id.eq_ignore_ascii_case(&instance_id))
                    });
                match registered {
                    Some(instance) => {
                        Json(instance_json(&namespace, &service, &instance)).into_response()
                    }
                    None => json_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "instance registered but not listed",
                    ),
                }
            }
        }
    };
    let deregister = {
        let registry = Arc::clone(&registry);
        move |Path((namespace, service, instance_id)): InstancePath| {
            let registry = Arc::clone(&registry);
            async move {
                match registry.deregister_instance(&namespace, &service, &instance_id) {
                    Ok(gone) => Json(serde_json::json!({
                        "keep_reachable_for_seconds": gone.keep_reachable_for.as_secs(),
                    }))
                    .into_response(),
                    Err(error) => registry_error(error),
                }
            }
        }
    };
    let health = {
        let registry = Arc::clone(&registry);
        move |Path((namespace, service, instance_id)): InstancePath,
              body: Result<Json<HealthBody>, JsonRejection>| {
            let registry = Arc::clone(&registry);
            async move {
                let status = match body {
                    Ok(Json(HealthBody {
                        status: status @ (HealthStatus::Healthy | HealthStatus::Unhealthy),
                    })) => status,
                    Ok(_) => {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            "status must be HEALTHY or UNHEALTHY",
                        )
                    }
                    Err(rejection) => {
                        return json_error(StatusCode::BAD_REQUEST, rejection.body_text())
                    }
                };
                match registry.set_instance_health(&namespace, &service, &instance_id, status) {
                    Ok(()) => Json(serde_json::json!({
                        "instance_id": instance_id,
                        "health_status": status,
                    }))
                    .into_response(),
                    Err(error) => registry_error(error),
                }
            }
        }
    };
    let instances = "/api/registry/namespaces/{namespace}/services/{service}/instances";
    Router::new()
        .route("/api/registry", get(overview))
        .route(instances, get(discover))
        .route(
            &format!("{instances}/{{instance_id}}"),
            put(register).delete(deregister),
        )
        .route(&format!("{instances}/{{instance_id}}/health"), put(health))
}

#[cfg(test)]
mod tests {
    use super::*;
    use scalegate_discovery::DiscoveryMetrics;

    struct Api {
        base: String,
        client: reqwest::Client,
        registry: Arc<EmbeddedRegistry>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Drop for Api {
        fn drop(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
        }
    }

    async fn api() -> Api {
        let registry = EmbeddedRegistry::new(DiscoveryMetrics::unregistered());
        registry.configure(&scalegate_config::ServiceRegistry {
            namespaces: vec![scalegate_config::RegistryNamespace {
                name: "scalegate.local".to_string(),
                ttl_seconds: 5,
                negative_ttl_seconds: 5,
                services: Vec::new(),
            }],
            ..scalegate_config::ServiceRegistry::default()
        });
        let router = routes(Arc::clone(&registry), || {
            Some("127.0.0.1:5353".parse().expect("address"))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("bound");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Api {
            base: format!("http://{address}/api/registry"),
            client: reqwest::Client::new(),
            registry,
            stop: Some(stop),
        }
    }

    impl Api {
        async fn send(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<serde_json::Value>,
        ) -> (u16, serde_json::Value) {
            let mut request = self.client.request(method, format!("{}{path}", self.base));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("admin answers");
            let status = response.status().as_u16();
            let json = response.json().await.expect("a JSON body");
            (status, json)
        }
    }

    const WEB: &str = "/namespaces/scalegate.local/services/web/instances";

    #[tokio::test]
    async fn register_discover_health_and_deregister() {
        let api = api().await;
        let (status, body) = api
            .send(
                reqwest::Method::PUT,
                &format!("{WEB}/task-1"),
                Some(serde_json::json!({
                    "address": "10.0.0.5", "port": 8080, "attributes": {"ECS_SERVICE_NAME": "web"}
                })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["instance_id"], "task-1");
        assert_eq!(body["health_status"], "HEALTHY");
        assert_eq!(body["attributes"]["AWS_INSTANCE_IPV4"], "10.0.0.5");

        let (status, body) = api.send(reqwest::Method::GET, WEB, None).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            serde_json::json!({"instances": [{
                "instance_id": "task-1",
                "namespace_name": "scalegate.local",
                "service_name": "web",
                "health_status": "HEALTHY",
                "attributes": {
                    "AWS_INSTANCE_IPV4": "10.0.0.5",
                    "AWS_INSTANCE_PORT": "8080",
                    "ECS_SERVICE_NAME": "web"
                }
            }]})
        );

        let (status, body) = api
            .send(
                reqwest::Method::PUT,
                &format!("{WEB}/task-1/health"),
                Some(serde_json::json!({"status": "UNHEALTHY"})),
            )
            .await;
        assert_eq!(
            (status, &body["health_status"]),
            (200, &serde_json::json!("UNHEALTHY"))
        );
        let (_, healthy) = api
            .send(
                reqwest::Method::GET,
                &format!("{WEB}?health_status=HEALTHY"),
                None,
            )
            .await;
        assert_eq!(healthy["instances"], serde_json::json!([]));
        let (_, fallback) = api.send(reqwest::Method::GET, WEB, None).await;
        assert_eq!(fallback["instances"].as_array().map(Vec::len), Some(1));

        let (status, overview) = api.send(reqwest::Method::GET, "", None).await;
        assert_eq!(status, 200);
        assert_eq!(overview["dns_address"], "127.0.0.1:5353");
        assert_eq!(overview["namespaces"][0]["name"], "scalegate.local");
        assert_eq!(
            overview["namespaces"][0]["services"][0]["instances"][0]["health"],
            "UNHEALTHY"
        );

        let (status, body) = api
            .send(reqwest::Method::DELETE, &format!("{WEB}/task-1"), None)
            .await;
        assert_eq!(
            (status, body),
            (200, serde_json::json!({"keep_reachable_for_seconds": 5}))
        );
        let (_, overview) = api.send(reqwest::Method::GET, "", None).await;
        assert_eq!(
            overview["namespaces"][0]["services"][0]["instances"][0]["deregistering"],
            true
        );
        assert!(api
            .registry
            .discover_instances("scalegate.local", "web", HealthStatusFilter::All)
            .expect("service exists during grace")
            .is_empty());
    }

    #[tokio::test]
    async fn errors_are_json_with_the_right_status() {
        let api = api().await;
        let put = |path: String, body: serde_json::Value| {
            let api = &api;
            async move { api.send(reqwest::Method::PUT, &path, Some(body)).await }
        };
        let (status, body) = put(
            "/namespaces/nope.local/services/web/instances/a".to_string(),
            serde_json::json!({"address": "10.0.0.1", "port": 80}),
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(body["error"], "no such namespace `nope.local`");

        let (status, body) = put(format!("{WEB}/a"), serde_json::json!({"port": 80})).await;
        assert_eq!(status, 400);
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("address"),
            "{body}"
        );

        let (status, body) = put(
            format!("{WEB}/a.b"),
            serde_json::json!({"address": "10.0.0.1", "port": 80}),
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("DNS label"),
            "{body}"
        );

        let (status, _) = api.send(reqwest::Method::GET, WEB, None).await;
        assert_eq!(status, 404, "unknown service");
        let (status, body) = api
            .send(
                reqwest::Method::GET,
                &format!("{WEB}?health_status=SOMETIMES"),
                None,
            )
            .await;
        assert_eq!(status, 400);
        assert!(body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("HEALTHY_OR_ELSE_ALL"));

        put(
            format!("{WEB}/a"),
            serde_json::json!({"address": "10.0.0.1", "port": 80}),
        )
        .await;
        let (status, _) = api
            .send(reqwest::Method::DELETE, &format!("{WEB}/b"), None)
            .await;
        assert_eq!(status, 404);
        let (status, body) = put(
            format!("{WEB}/a/health"),
            serde_json::json!({"status": "UNKNOWN"}),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let (status, _) = put(
            format!("{WEB}/a/health"),
            serde_json::json!({"status": "ok"}),
        )
        .await;
        assert_eq!(status, 400);
    }
}
