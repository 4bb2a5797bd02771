//! The HTTP(S) client custom metrics share: pooled keep-alive connections (a reading a second
//! should not open a connection a second), a deadline under the sampling period, and a cap on
//! the body so a runaway exporter cannot exhaust memory.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::MetricError;

/// One pooled HTTP/1.1 client (http:// and https://, trusting the bundled Mozilla roots) for
/// every custom metric in the process; clones share the pool.
#[derive(Debug, Clone)]
pub struct MetricClient {
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
    max_body_bytes: usize,
}

/// A response read in full (within the limits).
pub(crate) struct Fetched {
    pub status: StatusCode,
    /// The `Location` of a redirect, which is not followed.
    pub location: Option<String>,
    pub body: Bytes,
}

impl MetricClient {
    /// How long one reading may take, request to last body byte: below the one-second
    /// sampling period, so a slow source costs a missing sample, never a backlog.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(900);
    /// The largest body read (16 MiB); a larger exposition is refused.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

    /// A client with [`Self::DEFAULT_TIMEOUT`] and [`Self::DEFAULT_MAX_BODY_BYTES`].
    pub fn new() -> Self {
        let provider = rustls::crypto::ring::default_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(provider))
            .expect("ring supports rustls's default protocol versions")
            .https_or_http()
            .enable_http1()
            .build();
        MetricClient {
            http: Client::builder(TokioExecutor::new()).build(connector),
            timeout: Self::DEFAULT_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The same client with another per-reading deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same client with another body cap.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// GETs `uri` and reads the whole body, within the deadline and the cap. Any status is
    /// returned: what a non-2xx means depends on the source. `shown_url` names the source
    /// in errors.
    pub(crate) async fn get(
        &self,
        uri: &Uri,
        accept: &'static str,
        shown_url: &str,
    ) -> Result<Fetched, MetricError> {
        let request = Request::get(uri.clone())
            .header(header::ACCEPT, accept)
            .header(
                header::USER_AGENT,
                concat!("scalegate/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                "x-prometheus-scrape-timeout-seconds",
                format!("{:.3}", self.timeout.as_secs_f64()),
            )
            .body(Empty::new())
            .map_err(|error| MetricError::InvalidUrl {
                url: shown_url.to_owned(),
                reason: error.to_string(),
            })?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|error| {
                // hyper's own words ("client error (Connect)") say nothing; its causes do.
                let reason = error.source().map_or_else(|| error.to_string(), sources);
                if error.is_connect() {
                    MetricError::Connect {
                        url: shown_url.to_owned(),
                        reason,
                    }
                } else {
                    MetricError::Request {
                        url: shown_url.to_owned(),
                        reason,
                    }
                }
            })?;
            let status = response.status();
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let body = Limited::new(response.into_body(), self.max_body_bytes)
                .collect()
                .await
                .map_err(|error| {
                    if error.is::<http_body_util::LengthLimitError>() {
                        MetricError::BodyTooLarge {
                            url: shown_url.to_owned(),
                            limit: self.max_body_bytes,
                        }
                    } else {
                        MetricError::Request {
                            url: shown_url.to_owned(),
                            reason: format!("reading the body: {}", sources(error.as_ref())),
                        }
                    }
                })?
                .to_bytes();
            Ok(Fetched {
                status,
                location,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| MetricError::Timeout {
                url: shown_url.to_owned(),
                timeout: self.timeout,
            })?
    }
}

impl Default for MetricClient {
    /// Same as [`MetricClient::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// An error and its causes, `outer: inner: innermost`.
fn sources(error: &(dyn std::error::Error + 'static)) -> String {
    let mut words = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        words.push_str(": ");
        words.push_str(&inner.to_string());
        cause = inner.source();
    }
    words
}
