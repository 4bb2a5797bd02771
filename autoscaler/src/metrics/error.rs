//! Why a custom metric has no reading, in words a user can act on.

use std::time::Duration;

/// Why [`super::CustomMetric::sample`] failed. Each message names the source (URL, metric,
/// query) and what was wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// The configured URL cannot be requested.
    #[error("`{url}` is not a usable http:// or https:// URL: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection (refused, unknown host, TLS handshake or certificate failure).
    #[error("cannot connect to {url}: {reason} (is the server running and reachable there?)")]
    Connect {
        /// The URL requested.
        url: String,
        /// The underlying error and its causes.
        reason: String,
    },
    /// The request failed after connecting (connection closed, malformed response).
    #[error("GET {url} failed: {reason}")]
    Request {
        /// The URL requested.
        url: String,
        /// The underlying error and its causes.
        reason: String,
    },
    /// No complete answer within the client's deadline.
    #[error("{url} did not answer within {} ms", timeout.as_millis())]
    Timeout {
        /// The URL requested.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The server answered with a status other than 2xx.
    #[error("{url} answered HTTP {status}{detail}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// `: <start of the body>`, or where a redirect pointed; may be empty.
        detail: String,
    },
    /// The body exceeded the client's cap.
    #[error("the response from {url} is larger than {limit} bytes; not read")]
    BodyTooLarge {
        /// The URL requested.
        url: String,
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body is not a Prometheus text exposition (format 0.0.4).
    #[error("{url} did not send a readable Prometheus text exposition: {reason}")]
    Exposition {
        /// The URL scraped.
        url: String,
        /// The line and what is wrong with it.
        reason: String,
    },
    /// The exposition has no series with the metric's name.
    #[error("metric `{metric}` is not in the exposition at {url} (names are exact: a histogram's series are `_bucket`, `_sum` and `_count`)")]
    MetricAbsent {
        /// The URL scraped.
        url: String,
        /// The metric name.
        metric: String,
    },
    /// Series with the name exist, but none has the configured label values.
    #[error("no series at {url} matches {selector}; the metric has {series_count} series, e.g. {}", examples.join(", "))]
    NoSeriesMatched {
        /// The URL scraped.
        url: String,
        /// The metric name and label values looked for.
        selector: String,
        /// How many series have the name.
        series_count: usize,
        /// A few of them.
        examples: Vec<String>,
    },
    /// The reading is NaN or infinite, which no policy can compare with a target.
    #[error("{metric} is {value}, not a finite number")]
    NotFinite {
        /// The metric (selector or query).
        metric: String,
        /// The value read.
        value: f64,
    },
    /// Prometheus refused the query (`{"status":"error","errorType":...,"error":...}`).
    #[error("Prometheus at {server} refused the query `{query}`: {error_type}: {error}")]
    QueryRefused {
        /// The server.
        server: String,
        /// The query.
        query: String,
        /// Prometheus's `errorType`, e.g. `bad_data`.
        error_type: String,
        /// Prometheus's `error`.
        error: String,
    },
    /// The query returned an empty vector.
    #[error("the PromQL query `{query}` returned no series (nothing matches it yet); it must return exactly one sample")]
    QueryNoSeries {
        /// The query.
        query: String,
    },
    /// The query returned several series.
    #[error("the PromQL query `{query}` returned {count} series, e.g. {}; it must return exactly one (aggregate them, e.g. with `sum(...)`)", examples.join(", "))]
    QuerySeveralSeries {
        /// The query.
        query: String,
        /// How many series.
        count: usize,
        /// A few of them.
        examples: Vec<String>,
    },
    /// The answer is not a scalar or vector from the query API.
    #[error("unexpected answer from Prometheus at {server} to `{query}`: {reason}")]
    QueryAnswer {
        /// The server.
        server: String,
        /// The query.
        query: String,
        /// What was unexpected.
        reason: String,
    },
}
