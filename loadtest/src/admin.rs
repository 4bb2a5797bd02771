//! Reading the service under test through scalegate's admin API (`/api/services/{name}` and its
//! `/activities`): the load tester sees the autoscaler from outside, as a user would, through
//! the same typed JSON the admin API documents (docs/services.md).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// How long one admin request may take before the poll counts as missed.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the admin API could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The URL is unusable.
    #[error("admin URL `{0}`: {1}")]
    BadUrl(String, String),
    /// The request failed or timed out.
    #[error("admin API {0}: {1}")]
    Request(String, String),
    /// The API answered with an error status.
    #[error("admin API {url} answered {status}: {body}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status.
        status: u16,
        /// The response body, trimmed.
        body: String,
    },
    /// The API answered something that is not the documented JSON.
    #[error("admin API {0}: unexpected JSON: {1}")]
    Json(String, String),
}

/// Task counts of a service at one moment (`DescribeServices`' counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ServiceCounts {
    /// Tasks wanted.
    pub desired_count: u32,
    /// Tasks running.
    pub running_count: u32,
    /// Running tasks the load balancer reports healthy.
    pub healthy_count: u32,
}

/// One task of the service, as much as the probe needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskView {
    /// Task ID.
    pub task_id: String,
    /// `RUNNING`, `STOPPED`, …
    pub last_status: String,
    /// `HEALTHY`, `UNHEALTHY`, `UNKNOWN`.
    pub health_status: String,
    /// `host:port` the task serves on.
    pub address: String,
}

#[derive(Debug, Deserialize)]
struct ServiceView {
    service_name: String,
    #[serde(flatten)]
    counts: ServiceCounts,
    #[serde(default)]
    tasks: Vec<TaskView>,
}

/// A scaling activity as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ActivityView {
    /// "Setting desired count to 4."
    pub description: String,
    /// Why.
    pub cause: String,
    /// `Successful`, `Failed`, …
    pub status_code: String,
    /// RFC 3339 start time.
    pub start_time: String,
}

impl ActivityView {
    /// The start time as a [`SystemTime`], if it parses.
    pub fn started(&self) -> Option<SystemTime> {
        let timestamp: jiff::Timestamp = self.start_time.parse().ok()?;
        Some(SystemTime::from(timestamp))
    }
}

#[derive(Debug, Deserialize)]
struct ActivitiesView {
    scaling_activities: Vec<ActivityView>,
}

/// A client for one scalegate admin endpoint and one service.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    service: String,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl AdminClient {
    /// Connects to `base` (e.g. `http://127.0.0.1:9901`) and resolves the service: the named
    /// one, or the only one when `service` is `None`.
    pub async fn connect(
        base: &str,
        token: Option<String>,
        service: Option<String>,
    ) -> Result<AdminClient, AdminError> {
        if !base.starts_with("http://") {
            return Err(AdminError::BadUrl(
                base.to_string(),
                "only http:// admin URLs are supported".to_string(),
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(ADMIN_TIMEOUT));
        let mut admin = AdminClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            service: String::new(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        };
        admin.service = match service {
            Some(service) => service,
            None => {
                #[derive(Deserialize)]
                struct ServiceList {
                    services: Vec<ServiceView>,
                }
                let list: ServiceList = admin.get_json("/api/services").await?;
                match list.services.as_slice() {
                    [only] => only.service_name.clone(),
                    [] => {
                        return Err(AdminError::Json(
                            format!("{}/api/services", admin.base),
                            "scalegate runs no services".to_string(),
                        ))
                    }
                    many => {
                        let names: Vec<&str> =
                            many.iter().map(|s| s.service_name.as_str()).collect();
                        return Err(AdminError::Json(
                            format!("{}/api/services", admin.base),
                            format!(
                                "several services ({}): choose one with --service",
                                names.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        admin.counts().await?;
        Ok(admin)
    }

    /// The service followed.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The service's task counts now.
    pub async fn counts(&self) -> Result<ServiceCounts, AdminError> {
        let view: ServiceView = self
            .get_json(&format!("/api/services/{}", self.service))
            .await?;
        Ok(view.counts)
    }

    /// The service's tasks now.
    pub async fn tasks(&self) -> Result<Vec<TaskView>, AdminError> {
        let view: ServiceView = self
            .get_json(&format!("/api/services/{}", self.service))
            .await?;
        Ok(view.tasks)
    }

    /// The service's scaling activities (newest first), without "not scaled" records.
    pub async fn activities(&self) -> Result<Vec<ActivityView>, AdminError> {
        let view: ActivitiesView = self
            .get_json(&format!("/api/services/{}/activities", self.service))
            .await?;
        Ok(view.scaling_activities)
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, AdminError> {
        let url = format!("{}{path}", self.base);
        let mut request = http::Request::get(&url);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::new())
            .map_err(|error| AdminError::BadUrl(url.clone(), error.to_string()))?;
        let response = tokio::time::timeout(ADMIN_TIMEOUT, async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        })
        .await
        .map_err(|_| AdminError::Request(url.clone(), "timed out".to_string()))?
        .map_err(|error| AdminError::Request(url.clone(), error.to_string()))?;
        let (status, body) = response;
        if !status.is_success() {
            return Err(AdminError::Status {
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(300)
                    .collect(),
            });
        }
        serde_json::from_slice(&body).map_err(|error| AdminError::Json(url, error.to_string()))
    }
}
