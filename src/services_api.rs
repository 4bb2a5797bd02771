//! The services' admin API, in ECS's and Application Auto Scaling's shapes (snake_case):
//!
//! - `GET /api/services`: every service as DescribeServices shows it, with its tasks and events
//! - `GET /api/services/{name}`: one service
//! - `GET /api/services/{name}/activities?include_not_scaled=true`: DescribeScalingActivities,
//!   newest first
//! - `PUT /api/services/{name}/desired_count` `{"desired_count": N}`: UpdateService (with
//!   scaling, policies and min/max still apply afterwards)
//! - `POST /api/services/{name}/tasks/{task_id}/stop`: StopTask; the service replaces the task
//!
//! And, without the admin token because a task cannot hold it, the task metadata endpoint the
//! `ECS_CONTAINER_METADATA_URI_V4` variable points at: `GET /v4/{task_id}` (the container) and
//! `GET /v4/{task_id}/task` (the task).

use std::sync::Arc;

use scalegate_autoscaler::scheduler::{ServiceSnapshot, TaskSnapshot};
use scalegate_proxy::admin::axum;
use serde::Deserialize;
use serde_json::{json, Value};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};

use crate::services::Services;

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

fn not_found(service: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("service `{service}` not found"),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DesiredCountBody {
    desired_count: u32,
}

#[derive(Debug, Deserialize)]
struct ActivitiesQuery {
    #[serde(default)]
    include_not_scaled: Option<bool>,
}

/// Largest desired count the API accepts: the config's bound.
const MAX_DESIRED: u32 = 10_000;

/// The `/api/services` routes.
pub fn routes(services: Arc<Services>) -> Router {
    let view = services.view();
    let list = {
        let view = Arc::clone(&view);
        move || async move {
            let snapshots: Vec<ServiceSnapshot> = view
                .lock()
                .expect("view lock")
                .values()
                .map(|service| ServiceSnapshot::clone(&service.handle.snapshot()))
                .collect();
            Json(json!({ "services": snapshots }))
        }
    };
    let one = {
        let view = Arc::clone(&view);
        move |Path(name): Path<String>| async move {
            let snapshot = view
                .lock()
                .expect("view lock")
                .get(&name)
                .map(|service| service.handle.snapshot());
            match snapshot {
                Some(snapshot) => Json(&*snapshot).into_response(),
                None => not_found(&name),
            }
        }
    };
    let activities = {
        let view = Arc::clone(&view);
        move |Path(name): Path<String>, Query(query): Query<ActivitiesQuery>| async move {
            let service = view.lock().expect("view lock").get(&name).cloned();
            match service {
                None => not_found(&name),
                Some(service) => {
                    let activities = service
                        .activities
                        .map(|log| log.list(query.include_not_scaled.unwrap_or(false)))
                        .unwrap_or_default();
                    Json(json!({ "scaling_activities": activities })).into_response()
                }
            }
        }
    };
    let desired = {
        let view = Arc::clone(&view);
        move |Path(name): Path<String>, body: Result<Json<DesiredCountBody>, JsonRejection>| async move {
            let body = match body {
                Ok(Json(body)) => body,
                Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
            };
            if body.desired_count > MAX_DESIRED {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("desired_count must be 0–{MAX_DESIRED}"),
                );
            }
            let service = view.lock().expect("view lock").get(&name).cloned();
            match service {
                None => not_found(&name),
                Some(service) => match service.handle.set_desired_count(body.desired_count) {
                    Ok(()) => Json(json!({ "desired_count": body.desired_count })).into_response(),
                    Err(failure) => error(StatusCode::SERVICE_UNAVAILABLE, failure),
                },
            }
        }
    };
    let stop = move |Path((name, task)): Path<(String, String)>| {
        let services = Arc::clone(&services);
        async move {
            if !services
                .view()
                .lock()
                .expect("view lock")
                .contains_key(&name)
            {
                return not_found(&name);
            }
            match services.stop_task(&name, &task).await {
                Ok(()) => (
                    StatusCode::ACCEPTED,
                    Json(json!({ "task_id": task, "desired_status": "STOPPED" })),
                )
                    .into_response(),
                Err(failure) => error(StatusCode::NOT_FOUND, failure),
            }
        }
    };
    Router::new()
        .route("/api/services", get(list))
        .route("/api/services/{name}", get(one))
        .route("/api/services/{name}/activities", get(activities))
        .route("/api/services/{name}/desired_count", put(desired))
        .route("/api/services/{name}/tasks/{task}/stop", post(stop))
}

/// The task metadata routes (`/v4/{task_id}` and `/v4/{task_id}/task`).
pub fn metadata_routes(services: Arc<Services>) -> Router {
    let find = {
        let view = services.view();
        move |id: &str| -> Option<(Arc<ServiceSnapshot>, TaskSnapshot)> {
            view.lock()
                .expect("view lock")
                .values()
                .find_map(|service| {
                    let snapshot = service.handle.snapshot();
                    let task = snapshot
                        .tasks
                        .iter()
                        .find(|task| task.task_id == id)?
                        .clone();
                    Some((snapshot, task))
                })
        }
    };
    let container = {
        let find = find.clone();
        move |Path(id): Path<String>| async move {
            match find(&id) {
                Some((service, task)) => Json(container_metadata(&service, &task)).into_response(),
                None => error(StatusCode::NOT_FOUND, format!("task `{id}` not found")),
            }
        }
    };
    let task = move |Path(id): Path<String>| async move {
        match find(&id) {
            Some((service, task)) => {
                let (family, revision) = task
                    .task_definition
                    .rsplit_once(':')
                    .unwrap_or((task.task_definition.as_str(), ""));
                Json(json!({
                    "Cluster": "scalegate",
                    "TaskARN": task_arn(&task),
                    "Family": family,
                    "Revision": revision,
                    "ServiceName": service.service_name,
                    "DesiredStatus": task.desired_status,
                    "KnownStatus": task.last_status,
                    "LaunchType": "LOCAL",
                    "Containers": [container_metadata(&service, &task)],
                }))
                .into_response()
            }
            None => error(StatusCode::NOT_FOUND, format!("task `{id}` not found")),
        }
    };
    Router::new()
        .route("/v4/{id}", get(container))
        .route("/v4/{id}/task", get(task))
}

fn task_arn(task: &TaskSnapshot) -> String {
    format!("arn:scalegate:ecs:local:task/scalegate/{}", task.task_id)
}

fn container_metadata(service: &ServiceSnapshot, task: &TaskSnapshot) -> Value {
    let (ip, port) = task
        .address
        .rsplit_once(':')
        .map(|(ip, port)| (ip.to_string(), port.parse::<u16>().unwrap_or(0)))
        .unwrap_or_default();
    json!({
        "DockerId": task.task_id,
        "Name": service.service_name,
        "DesiredStatus": task.desired_status,
        "KnownStatus": task.last_status,
        "Labels": {
            "com.amazonaws.ecs.cluster": "scalegate",
            "com.amazonaws.ecs.task-arn": task_arn(task),
            "com.amazonaws.ecs.task-definition-family": task.task_definition.rsplit_once(':').map(|(family, _)| family).unwrap_or(""),
            "com.amazonaws.ecs.task-definition-version": task.task_definition.rsplit_once(':').map(|(_, revision)| revision).unwrap_or(""),
        },
        "Networks": [{ "NetworkMode": "host", "IPv4Addresses": [ip] }],
        "Ports": [{ "ContainerPort": port, "HostPort": port, "Protocol": "tcp", "HostIp": ip }],
        "ProcessId": task.pid,
    })
}
