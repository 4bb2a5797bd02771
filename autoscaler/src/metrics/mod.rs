//! Custom metrics: where AWS would read a CloudWatch custom metric, scalegate reads a
//! Prometheus metric scraped from an exposition URL, or a PromQL query against a Prometheus
//! server.
//!
//! A [`CustomMetric`] is one such source, sampled once a second by its caller into a
//! [`crate::MetricHistory`]. Each [`CustomMetric::sample`] is one HTTP GET through a shared
//! [`MetricClient`] and yields a number, nothing (legitimately no value yet), or a
//! [`MetricError`] that says what to fix.
//!
//! - Scrape (`GET <url>`, text exposition 0.0.4): the series with the metric's exact name whose
//!   labels carry the configured values are summed. A gauge or untyped metric is read as it
//!   is; a counter (and a histogram's or summary's `_sum`/`_count`/`_bucket`) is read as its
//!   per-second rate between this reading and the previous one, timed by when the readings
//!   arrived. The first reading of a counter, and a reading lower than the previous one (a
//!   reset: the exporter restarted or a summed series went away), yield `Ok(None)`.
//! - PromQL (`GET <server>/api/v1/query?query=...`): the query must return a scalar or a
//!   one-element vector; its value is the reading.

mod client;
mod error;
mod exposition;
mod promql;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use http::Uri;

pub use client::MetricClient;
pub use error::MetricError;
pub(crate) use exposition::Selector;

use crate::scaling::MetricSpec;
use exposition::{Exposition, SelectError};
use promql::AnswerError;

/// The `Accept` header of a scrape: the text format, as Prometheus asks for it.
const EXPOSITION_ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";
/// The `Accept` header of a query.
const JSON_ACCEPT: &str = "application/json";
/// How much of an error body an [`MetricError::HttpStatus`] message quotes.
const BODY_EXCERPT_CHARS: usize = 200;

/// A stateful reader of one custom metric source (it remembers a counter's previous reading
/// to turn it into a rate), made from a policy's [`MetricSpec`].
#[derive(Debug)]
pub struct CustomMetric {
    client: MetricClient,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Scrape(Scrape),
    PromQl(PromQl),
}

/// A metric read from an exposition URL.
#[derive(Debug)]
struct Scrape {
    url: String,
    uri: Uri,
    metric_name: String,
    labels: BTreeMap<String, String>,
    counter: CounterRate,
}

/// A PromQL query evaluated by a server.
#[derive(Debug)]
struct PromQl {
    server_url: String,
    uri: Uri,
    query: String,
}

impl CustomMetric {
    /// A reader of `metric_name` (exact; `_bucket`, `_sum`, `_count` series by their own
    /// names) at the exposition `url`, summing the series whose labels carry `labels`' values.
    pub fn scrape(
        client: &MetricClient,
        url: &str,
        metric_name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<Self, MetricError> {
        Ok(CustomMetric {
            client: client.clone(),
            source: Source::Scrape(Scrape {
                url: url.to_owned(),
                uri: http_uri(url, url)?,
                metric_name: metric_name.to_owned(),
                labels,
                counter: CounterRate::default(),
            }),
        })
    }

    /// A reader of the PromQL `query` evaluated by the Prometheus server at `server_url`
    /// (`/api/v1/query` is added to it).
    pub fn promql(
        client: &MetricClient,
        server_url: &str,
        query: &str,
    ) -> Result<Self, MetricError> {
        if server_url.contains(['?', '#']) {
            return Err(MetricError::InvalidUrl {
                url: server_url.to_owned(),
                reason: "a server URL has no query string or fragment".to_owned(),
            });
        }
        let query_string = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .finish();
        let address = format!(
            "{}/api/v1/query?{query_string}",
            server_url.trim_end_matches('/')
        );
        Ok(CustomMetric {
            client: client.clone(),
            source: Source::PromQl(PromQl {
                server_url: server_url.to_owned(),
                uri: http_uri(&address, server_url)?,
                query: query.to_owned(),
            }),
        })
    }

    /// The reader for a custom-metric spec; `Ok(None)` for a predefined metric, which the
    /// service's own collectors measure.
    pub fn from_spec(
        client: &MetricClient,
        spec: &MetricSpec,
    ) -> Result<Option<Self>, MetricError> {
        match spec {
            MetricSpec::Predefined { .. } => Ok(None),
            MetricSpec::Scraped {
                url,
                metric_name,
                labels,
            } => Self::scrape(client, url, metric_name, labels.clone()).map(Some),
            MetricSpec::PromQl { server, query } => Self::promql(client, server, query).map(Some),
        }
    }

    /// Takes one reading: the value, `Ok(None)` when there is legitimately none yet (a
    /// counter's first reading, or a counter reset), or why there is none. Cancel-safe: a
    /// reading dropped half-way leaves the counter state as it was.
    pub async fn sample(&mut self) -> Result<Option<f64>, MetricError> {
        match &mut self.source {
            Source::Scrape(scrape) => scrape.sample(&self.client).await,
            Source::PromQl(query) => query.sample(&self.client).await.map(Some),
        }
    }
}

impl Scrape {
    async fn sample(&mut self, client: &MetricClient) -> Result<Option<f64>, MetricError> {
        let fetched = client.get(&self.uri, EXPOSITION_ACCEPT, &self.url).await?;
        let arrived = Instant::now();
        if !fetched.status.is_success() {
            return Err(status_error(&self.url, &fetched));
        }
        let unreadable = |reason: String| MetricError::Exposition {
            url: self.url.clone(),
            reason,
        };
        let text = std::str::from_utf8(&fetched.body)
            .map_err(|error| unreadable(format!("the body is not UTF-8 ({error})")))?;
        let exposition = Exposition::parse(text).map_err(|error| unreadable(error.to_string()))?;
        let selector = Selector::new(&self.metric_name, &self.labels);
        let value =
            exposition
                .select(&self.metric_name, &self.labels)
                .map_err(|error| match error {
                    SelectError::Absent => MetricError::MetricAbsent {
                        url: self.url.clone(),
                        metric: self.metric_name.clone(),
                    },
                    SelectError::NoMatch {
                        series_count,
                        examples,
                    } => MetricError::NoSeriesMatched {
                        url: self.url.clone(),
                        selector: selector.to_string(),
                        series_count,
                        examples,
                    },
                })?;
        let value = finite(value, || format!("{selector} at {}", self.url))?;
        if exposition.is_cumulative(&self.metric_name) {
            Ok(self.counter.rate(value, arrived))
        } else {
            Ok(Some(value))
        }
    }
}

impl PromQl {
    async fn sample(&self, client: &MetricClient) -> Result<f64, MetricError> {
        let fetched = client.get(&self.uri, JSON_ACCEPT, &self.server_url).await?;
        let answer = promql::parse_answer(&fetched.body);
        // Prometheus explains refused queries in JSON under 400, 422 or 503; any other
        // failure status is the server's (or a proxy's) own.
        if !fetched.status.is_success() && !matches!(answer, Err(AnswerError::Refused { .. })) {
            return Err(status_error(&self.server_url, &fetched));
        }
        let value = answer.map_err(|error| match error {
            AnswerError::Refused { error_type, error } => MetricError::QueryRefused {
                server: self.server_url.clone(),
                query: self.query.clone(),
                error_type,
                error,
            },
            AnswerError::NoSeries => MetricError::QueryNoSeries {
                query: self.query.clone(),
            },
            AnswerError::SeveralSeries { count, examples } => MetricError::QuerySeveralSeries {
                query: self.query.clone(),
                count,
                examples,
            },
            AnswerError::Unexpected(reason) => MetricError::QueryAnswer {
                server: self.server_url.clone(),
                query: self.query.clone(),
                reason,
            },
        })?;
        finite(value, || format!("PromQL `{}`", self.query))
    }
}

impl fmt::Display for CustomMetric {
    /// The source as errors and logs name it: `name{label="v"} at <url>` or PromQL `query`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Scrape(scrape) => write!(
                f,
                "{} at {}",
                Selector::new(&scrape.metric_name, &scrape.labels),
                scrape.url
            ),
            Source::PromQl(query) => write!(f, "PromQL `{}`", query.query),
        }
    }
}

/// A counter's previous reading, to turn the next one into a per-second rate.
#[derive(Debug, Default)]
struct CounterRate {
    previous: Option<(f64, Instant)>,
}

impl CounterRate {
    /// The rate since the previous reading; `None` for the first reading, after a reset
    /// (the value went down), or when no time has passed.
    fn rate(&mut self, value: f64, at: Instant) -> Option<f64> {
        let Some((previous_value, previous_at)) = self.previous else {
            self.previous = Some((value, at));
            return None;
        };
        let elapsed = at.saturating_duration_since(previous_at);
        if value >= previous_value && elapsed.is_zero() {
            // Keep the older reading: the next rate is measured from it.
            return None;
        }
        self.previous = Some((value, at));
        if value < previous_value {
            return None;
        }
        Some((value - previous_value) / elapsed.as_secs_f64())
    }
}

/// `value`, or [`MetricError::NotFinite`] naming the metric.
fn finite(value: f64, metric: impl FnOnce() -> String) -> Result<f64, MetricError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(MetricError::NotFinite {
            metric: metric(),
            value,
        })
    }
}

/// `address` as an absolute http:// or https:// URI; errors name `shown_url`.
fn http_uri(address: &str, shown_url: &str) -> Result<Uri, MetricError> {
    let invalid = |reason: String| MetricError::InvalidUrl {
        url: shown_url.to_owned(),
        reason,
    };
    let uri: Uri = address
        .parse()
        .map_err(|error| invalid(format!("{error}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(invalid(format!("scheme `{other}` is not http or https"))),
        None => return Err(invalid("it has no scheme (http:// or https://)".to_owned())),
    }
    if uri.authority().is_none() {
        return Err(invalid("it has no host".to_owned()));
    }
    Ok(uri)
}

/// The error for a non-2xx answer: quotes the start of the body, or says where a redirect
/// pointed (redirects are not followed).
fn status_error(url: &str, fetched: &client::Fetched) -> MetricError {
    let detail = if let (true, Some(location)) =
        (fetched.status.is_redirection(), fetched.location.as_ref())
    {
        format!(" (a redirect to {location}, which is not followed: configure that URL)")
    } else {
        let text = String::from_utf8_lossy(&fetched.body);
        let excerpt: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(BODY_EXCERPT_CHARS)
            .collect();
        if excerpt.is_empty() {
            String::new()
        } else {
            format!(": {excerpt}")
        }
    };
    MetricError::HttpStatus {
        url: url.to_owned(),
        status: fetched.status.as_u16(),
        detail,
    }
}
