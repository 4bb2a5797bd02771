//! What one workload request does, and how command-line flags and query parameters say it.
//!
//! The same parsers serve the flags (the server's defaults) and the query parameters (per-request
//! overrides), so `--cpu-ms 20` and `?cpu_ms=20` accept exactly the same values and limits.

use std::time::Duration;

/// Largest `cpu_ms`: one minute of CPU per request is far beyond any demo and keeps a typo from
/// pinning a core for hours.
pub const MAX_CPU_MS: f64 = 60_000.0;
/// Largest `sleep_ms`: ten minutes, longer than any load balancer's idle timeout.
pub const MAX_SLEEP_MS: f64 = 600_000.0;
/// Largest `bytes`: 1 GiB. Bodies are streamed from one static buffer, so size costs no memory.
pub const MAX_BODY_BYTES: u64 = 1 << 30;

/// Per-request behaviour of the workload server: the defaults come from its flags, and each
/// request may override any of them with query parameters, so a load test shapes the load
/// without restarting tasks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadBehaviour {
    /// CPU time to burn per request (`cpu_ms`), so CPU-based policies have something to track.
    pub cpu: Duration,
    /// Time to sleep per request (`sleep_ms`): I/O-like latency without CPU.
    pub sleep: Duration,
    /// Status of answers that are not chosen to fail (`status`).
    pub status: u16,
    /// Percentage (0–100) of requests answered with 500 instead (`fail_percent`).
    pub fail_percent: f64,
    /// Exact response body size (`bytes`); `None` answers with a small JSON description.
    pub body_bytes: Option<u64>,
}

impl Default for WorkloadBehaviour {
    fn default() -> Self {
        WorkloadBehaviour {
            cpu: Duration::ZERO,
            sleep: Duration::ZERO,
            status: 200,
            fail_percent: 0.0,
            body_bytes: None,
        }
    }
}

/// A flag or query parameter whose value is out of range or not a number; the message names
/// the parameter, the accepted range and the value, and is what a client gets in its 400.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name}: expected {expected}, got {value:?}")]
pub struct ParamError {
    /// The parameter's name as the query spells it (`cpu_ms`).
    pub name: &'static str,
    /// What would have been accepted.
    pub expected: &'static str,
    /// The value given.
    pub value: String,
}

impl WorkloadBehaviour {
    /// This behaviour with the overrides in `query` (`cpu_ms=20&status=503`) applied. Unknown
    /// parameters are ignored (cache busters, a load tester's own markers); for a repeated one
    /// the last wins.
    pub fn with_query(&self, query: Option<&str>) -> Result<WorkloadBehaviour, ParamError> {
        let mut behaviour = *self;
        for (name, value) in query_pairs(query) {
            match name {
                "cpu_ms" => behaviour.cpu = parse_cpu_ms(value)?,
                "sleep_ms" => behaviour.sleep = parse_sleep_ms(value)?,
                "status" => behaviour.status = parse_status(value)?,
                "fail_percent" => behaviour.fail_percent = parse_fail_percent(value)?,
                "bytes" => behaviour.body_bytes = Some(parse_body_bytes(value)?),
                _ => {}
            }
        }
        Ok(behaviour)
    }

    /// Whether a request with this behaviour fails, given a uniform random draw in `[0, 1)`.
    pub fn fails(&self, draw: f64) -> bool {
        draw * 100.0 < self.fail_percent
    }
}

/// `name=value` pairs of a query string, without percent-decoding: every value the server
/// understands is a plain number.
pub(crate) fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Parses `cpu_ms` (milliseconds, decimals allowed).
pub fn parse_cpu_ms(value: &str) -> Result<Duration, ParamError> {
    parse_millis("cpu_ms", "milliseconds from 0 to 60000", MAX_CPU_MS, value)
}

/// Parses `sleep_ms` (milliseconds, decimals allowed).
pub fn parse_sleep_ms(value: &str) -> Result<Duration, ParamError> {
    parse_millis(
        "sleep_ms",
        "milliseconds from 0 to 600000",
        MAX_SLEEP_MS,
        value,
    )
}

/// Parses `status`: a final HTTP status, 200–599 (1xx are not final answers).
pub fn parse_status(value: &str) -> Result<u16, ParamError> {
    value
        .parse::<u16>()
        .ok()
        .filter(|status| (200..=599).contains(status))
        .ok_or_else(|| ParamError {
            name: "status",
            expected: "an HTTP status from 200 to 599",
            value: value.to_string(),
        })
}

/// Parses `fail_percent`: 0–100, decimals allowed.
pub fn parse_fail_percent(value: &str) -> Result<f64, ParamError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|percent| (0.0..=100.0).contains(percent))
        .ok_or_else(|| ParamError {
            name: "fail_percent",
            expected: "a percentage from 0 to 100",
            value: value.to_string(),
        })
}

/// Parses `bytes`: the exact body size, up to 1 GiB.
pub fn parse_body_bytes(value: &str) -> Result<u64, ParamError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|bytes| *bytes <= MAX_BODY_BYTES)
        .ok_or_else(|| ParamError {
            name: "bytes",
            expected: "a byte count from 0 to 1073741824",
            value: value.to_string(),
        })
}

/// Parses the `code` of `POST /exit`: a process exit status, 0–255.
pub fn parse_exit_code(value: &str) -> Result<u8, ParamError> {
    value.parse::<u8>().map_err(|_| ParamError {
        name: "code",
        expected: "an exit status from 0 to 255",
        value: value.to_string(),
    })
}

fn parse_millis(
    name: &'static str,
    expected: &'static str,
    max: f64,
    value: &str,
) -> Result<Duration, ParamError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|millis| (0.0..=max).contains(millis))
        .map(|millis| Duration::from_secs_f64(millis / 1000.0))
        .ok_or_else(|| ParamError {
            name,
            expected,
            value: value.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_query_keeps_the_defaults() {
        let defaults = WorkloadBehaviour {
            cpu: Duration::from_millis(5),
            ..WorkloadBehaviour::default()
        };
        assert_eq!(defaults.with_query(None), Ok(defaults));
        assert_eq!(defaults.with_query(Some("")), Ok(defaults));
    }

    #[test]
    fn every_parameter_overrides_its_default() {
        let behaviour = WorkloadBehaviour::default()
            .with_query(Some(
                "cpu_ms=12.5&sleep_ms=300&status=503&fail_percent=2.5&bytes=1024",
            ))
            .unwrap();
        assert_eq!(
            behaviour,
            WorkloadBehaviour {
                cpu: Duration::from_micros(12_500),
                sleep: Duration::from_millis(300),
                status: 503,
                fail_percent: 2.5,
                body_bytes: Some(1024),
            }
        );
    }

    #[test]
    fn unknown_and_empty_pairs_are_ignored_and_the_last_repeat_wins() {
        let behaviour = WorkloadBehaviour::default()
            .with_query(Some("nocache=123&&flag&status=404&status=201"))
            .unwrap();
        assert_eq!(behaviour.status, 201);
        assert_eq!(behaviour.cpu, Duration::ZERO);
    }

    #[test]
    fn out_of_range_values_name_the_parameter_and_the_range() {
        let cases = [
            ("cpu_ms=-1", "cpu_ms"),
            ("cpu_ms=60001", "cpu_ms"),
            ("cpu_ms=NaN", "cpu_ms"),
            ("cpu_ms=", "cpu_ms"),
            ("sleep_ms=abc", "sleep_ms"),
            ("sleep_ms=inf", "sleep_ms"),
            ("status=199", "status"),
            ("status=600", "status"),
            ("status=2OO", "status"),
            ("fail_percent=100.1", "fail_percent"),
            ("fail_percent=-0.5", "fail_percent"),
            ("bytes=-1", "bytes"),
            ("bytes=1073741825", "bytes"),
        ];
        for (query, name) in cases {
            let error = WorkloadBehaviour::default()
                .with_query(Some(query))
                .unwrap_err();
            assert_eq!(error.name, name, "{query}");
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("{name}: expected ")),
                "{message}"
            );
        }
        assert_eq!(
            parse_status("700").unwrap_err().to_string(),
            "status: expected an HTTP status from 200 to 599, got \"700\""
        );
    }

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(parse_cpu_ms("60000"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_sleep_ms("0"), Ok(Duration::ZERO));
        assert_eq!(parse_status("200"), Ok(200));
        assert_eq!(parse_status("599"), Ok(599));
        assert_eq!(parse_fail_percent("100"), Ok(100.0));
        assert_eq!(parse_body_bytes("1073741824"), Ok(1 << 30));
        assert_eq!(parse_exit_code("255"), Ok(255));
        assert!(parse_exit_code("256").is_err());
    }

    #[test]
    fn fail_percent_splits_the_unit_interval() {
        let none = WorkloadBehaviour::default();
        assert!(!none.fails(0.0));
        let all = WorkloadBehaviour {
            fail_percent: 100.0,
            ..none
        };
        assert!(all.fails(0.0) && all.fails(0.999_999));
        let quarter = WorkloadBehaviour {
            fail_percent: 25.0,
            ..none
        };
        assert!(quarter.fails(0.249));
        assert!(!quarter.fails(0.25));
    }
}
