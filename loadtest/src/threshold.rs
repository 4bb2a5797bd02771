//! Pass/fail thresholds, k6 style: `--threshold 'p99<50ms' --threshold 'errors<0.1%'` turn a
//! run into an exit code.

use std::fmt;
use std::str::FromStr;

/// What a threshold measures, and the unit of its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdMetric {
    /// Latency at a percentile (`p99`, `p99.9`, `p50`), in seconds.
    LatencyPercentile(f64),
    /// Largest latency (`max`), in seconds.
    MaxLatency,
    /// Failed requests / all requests (`errors`), as a fraction.
    ErrorRate,
    /// Requests that could not be sent on time / all requests (`late`), as a fraction.
    LateRate,
}

/// How the observed value must compare with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

/// One threshold, e.g. `p99<50ms`: latency at p99 must be below 0.050 s.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub metric: ThresholdMetric,
    /// How it must compare.
    pub comparison: Comparison,
    /// The limit, in the metric's unit (seconds or a fraction).
    pub limit: f64,
    /// The text it was parsed from, for reports.
    pub source: String,
}

impl Threshold {
    /// Whether a run whose metric came out at `observed` (same unit as `limit`) passes.
    pub fn passes(&self, observed: f64) -> bool {
        match self.comparison {
            Comparison::Less => observed < self.limit,
            Comparison::LessOrEqual => observed <= self.limit,
            Comparison::Greater => observed > self.limit,
            Comparison::GreaterOrEqual => observed >= self.limit,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Why a threshold's text was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold `{text}`: {reason}")]
pub struct InvalidThreshold {
    /// The text given.
    pub text: String,
    /// What is wrong, with the accepted forms.
    pub reason: String,
}

impl FromStr for Threshold {
    type Err = InvalidThreshold;

    /// Parses `METRIC OP VALUE`: metric `pNN[.N]`, `max`, `errors` or `late`; op `<`, `<=`,
    /// `>`, `>=`; latency values with `us`, `ms` or `s`; rates as `0.1%` or a fraction.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| InvalidThreshold {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let op_at = compact
            .find(['<', '>'])
            .ok_or_else(|| invalid("expected a comparison: <, <=, > or >="))?;
        let (name, rest) = compact.split_at(op_at);
        let (comparison, value) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Comparison::LessOrEqual, &rest[2..]),
            [b'>', b'=', ..] => (Comparison::GreaterOrEqual, &rest[2..]),
            [b'<', ..] => (Comparison::Less, &rest[1..]),
            _ => (Comparison::Greater, &rest[1..]),
        };
        let metric = match name {
            "max" => ThresholdMetric::MaxLatency,
            "errors" => ThresholdMetric::ErrorRate,
            "late" => ThresholdMetric::LateRate,
            _ => match name.strip_prefix('p').map(str::parse::<f64>) {
                Some(Ok(percentile)) if percentile > 0.0 && percentile <= 100.0 => {
                    ThresholdMetric::LatencyPercentile(percentile)
                }
                _ => {
                    return Err(invalid(
                        "metric must be pNN (e.g. p99, p99.9), max, errors or late",
                    ))
                }
            },
        };
        let limit = match metric {
            ThresholdMetric::LatencyPercentile(_) | ThresholdMetric::MaxLatency => {
                crate::units::parse_seconds(value)
                    .ok_or_else(|| invalid("latency limit needs a unit: us, ms or s"))?
            }
            ThresholdMetric::ErrorRate | ThresholdMetric::LateRate => parse_fraction(value)
                .ok_or_else(|| {
                    invalid("rate limit must be a percentage (0.1%) or a fraction 0–1")
                })?,
        };
        Ok(Threshold {
            metric,
            comparison,
            limit,
            source: text.trim().to_string(),
        })
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

fn parse_fraction(text: &str) -> Option<f64> {
    match text.strip_suffix('%') {
        Some(percent) => parse_number(percent)
            .map(|p| p / 100.0)
            .filter(|f| *f <= 1.0),
        None => parse_number(text).filter(|f| *f <= 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Threshold {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn latency_thresholds() {
        let t = parse("p99<50ms");
        assert_eq!(t.metric, ThresholdMetric::LatencyPercentile(99.0));
        assert_eq!(t.comparison, Comparison::Less);
        assert!((t.limit - 0.05).abs() < 1e-12);
        assert!(t.passes(0.049));
        assert!(!t.passes(0.05));

        assert_eq!(
            parse("p99.9 <= 1s").metric,
            ThresholdMetric::LatencyPercentile(99.9)
        );
        assert_eq!(parse("p99.9 <= 1s").comparison, Comparison::LessOrEqual);
        assert!((parse("max<250us").limit - 0.000_25).abs() < 1e-12);
    }

    #[test]
    fn rate_thresholds() {
        let t = parse("errors<0.1%");
        assert_eq!(t.metric, ThresholdMetric::ErrorRate);
        assert!((t.limit - 0.001).abs() < 1e-12);
        assert!(t.passes(0.0));
        assert!(!t.passes(0.002));
        assert!((parse("late<=0.05").limit - 0.05).abs() < 1e-12);
        assert!(parse("errors>=0").passes(0.0));
    }

    #[test]
    fn malformed_thresholds_are_explained() {
        for bad in [
            "p99",
            "p99<50",
            "p0<1s",
            "p101<1s",
            "q99<1s",
            "errors<150%",
            "errors<2",
            "p99<-1ms",
        ] {
            assert!(
                bad.parse::<Threshold>().is_err(),
                "`{bad}` should be rejected"
            );
        }
        let error = "p99<50".parse::<Threshold>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "threshold `p99<50`: latency limit needs a unit: us, ms or s"
        );
    }
}
