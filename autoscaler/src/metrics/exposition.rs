//! The Prometheus text exposition format, version 0.0.4, parsed as Prometheus does.
//!
//! Written here rather than taken from a crate: `prometheus-parse` matches lines with regexes
//! that reject `:` in names and `}` inside label values, and folds histogram and summary
//! series into aggregates (a policy names `_bucket`, `_sum` and `_count` series exactly);
//! `openmetrics-parser` is LGPL. The format is small: `# HELP` and `# TYPE` comments, other
//! comments, and sample lines `name{label="value",...} value [timestamp]`.
//!
//! A malformed line fails the whole exposition, with its line number, as it fails a
//! Prometheus scrape: a reading taken from a half-understood page would be a guess.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// A metric family's `# TYPE`; it decides whether a series is read as a value or as a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// `untyped`, no `# TYPE` line, or a type this format version does not define.
    Untyped,
}

/// One sample line: a series and its current value (the optional timestamp is checked and
/// dropped, since readings are timed by when they arrive).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition: every series, and the `# TYPE` of every family that declared one.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    types: HashMap<String, MetricType>,
    series: Vec<Series>,
}

/// Why an exposition could not be read, and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub(crate) struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Why [`Exposition::select`] found no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SelectError {
    /// No series has the metric's name.
    Absent,
    /// Series with the name exist, but none carries the selected label values.
    NoMatch {
        /// How many series have the name.
        series_count: usize,
        /// The first few of them, as `name{label="value"}`.
        examples: Vec<String>,
    },
}

/// How many non-matching series a "no series matched" message shows.
const EXAMPLES_SHOWN: usize = 3;

impl Exposition {
    /// Parses a whole exposition.
    pub fn parse(text: &str) -> Result<Exposition, ParseError> {
        let mut exposition = Exposition::default();
        for (index, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let line = line.trim_start_matches([' ', '\t']);
            let error = |reason: String| ParseError {
                line: index + 1,
                reason,
            };
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                exposition.comment(comment).map_err(error)?;
            } else {
                exposition.series.push(parse_sample(line).map_err(error)?);
            }
        }
        Ok(exposition)
    }

    /// `# TYPE` lines are recorded; `# HELP` lines are checked for a name; other comments are
    /// ignored.
    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let mut tokens = comment.split([' ', '\t']).filter(|token| !token.is_empty());
        let keyword = tokens.next();
        if keyword != Some("TYPE") && keyword != Some("HELP") {
            return Ok(());
        }
        let keyword = keyword.unwrap_or_default();
        let name = tokens
            .next()
            .ok_or_else(|| format!("`# {keyword}` without a metric name"))?;
        if !is_metric_name(name) {
            return Err(format!("`{name}` in `# {keyword}` is not a metric name"));
        }
        if keyword == "TYPE" {
            let kind = match tokens.next() {
                Some("counter") => MetricType::Counter,
                Some("gauge") => MetricType::Gauge,
                Some("histogram") => MetricType::Histogram,
                Some("summary") => MetricType::Summary,
                Some(_) => MetricType::Untyped,
                None => return Err(format!("`# TYPE {name}` without a type")),
            };
            self.types.insert(name.to_owned(), kind);
        }
        Ok(())
    }

    /// Whether the series named `name` only ever grows (so a policy reads its per-second
    /// rate): a `counter`, a counter's `_total` series, a histogram's `_bucket`, `_sum` and
    /// `_count`, or a summary's `_sum` and `_count`. A summary's quantiles, gauges and untyped
    /// series are read as they are. A `# TYPE` for the exact name wins over a family's.
    pub fn is_cumulative(&self, name: &str) -> bool {
        if let Some(kind) = self.types.get(name) {
            return *kind == MetricType::Counter;
        }
        let family_type = |suffix: &str| {
            name.strip_suffix(suffix)
                .and_then(|family| self.types.get(family))
                .copied()
        };
        matches!(family_type("_total"), Some(MetricType::Counter))
            || matches!(family_type("_bucket"), Some(MetricType::Histogram))
            || matches!(
                family_type("_sum"),
                Some(MetricType::Histogram | MetricType::Summary)
            )
            || matches!(
                family_type("_count"),
                Some(MetricType::Histogram | MetricType::Summary)
            )
    }

    /// The sum of the series named `name` that carry every label value in `labels` (other
    /// labels may be anything; a label a series lacks counts as the empty value, as in a
    /// Prometheus selector).
    pub fn select(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<f64, SelectError> {
        let named: Vec<&Series> = self.series.iter().filter(|s| s.name == name).collect();
        if named.is_empty() {
            return Err(SelectError::Absent);
        }
        let matching: Vec<f64> = named
            .iter()
            .filter(|series| {
                labels.iter().all(|(label, value)| {
                    series.labels.get(label).map_or("", String::as_str) == value
                })
            })
            .map(|series| series.value)
            .collect();
        if matching.is_empty() {
            return Err(SelectError::NoMatch {
                series_count: named.len(),
                examples: named
                    .iter()
                    .take(EXAMPLES_SHOWN)
                    .map(|series| Selector::new(&series.name, &series.labels).to_string())
                    .collect(),
            });
        }
        Ok(matching.iter().sum())
    }
}

/// A metric name and label values, displayed as Prometheus writes them: `name{label="v"}`,
/// with `\`, `"` and newlines escaped.
pub(crate) struct Selector<'a> {
    name: &'a str,
    labels: &'a BTreeMap<String, String>,
}

impl<'a> Selector<'a> {
    /// The selector for `name` and `labels`.
    pub fn new(name: &'a str, labels: &'a BTreeMap<String, String>) -> Self {
        Selector { name, labels }
    }
}

impl fmt::Display for Selector<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        if self.labels.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (index, (label, value)) in self.labels.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{label}=\"")?;
            for c in value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    name.len() == name_length(name, true) && !name.is_empty()
}

/// The length of the name (metric name when `colons`, else label name) at the start of `text`.
fn name_length(text: &str, colons: bool) -> usize {
    text.bytes()
        .enumerate()
        .take_while(|&(index, byte)| {
            byte.is_ascii_alphabetic()
                || byte == b'_'
                || (colons && byte == b':')
                || (index > 0 && byte.is_ascii_digit())
        })
        .count()
}

/// Skips spaces and tabs.
fn skip_blanks(text: &str) -> &str {
    text.trim_start_matches([' ', '\t'])
}

/// `name[{labels}] value [timestamp]`, leading blanks already removed.
fn parse_sample(line: &str) -> Result<Series, String> {
    let length = name_length(line, true);
    if length == 0 {
        return Err(format!(
            "expected a metric name at `{}`",
            line.chars().take(20).collect::<String>()
        ));
    }
    let (name, mut rest) = line.split_at(length);
    let mut labels = BTreeMap::new();
    rest = skip_blanks(rest);
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut tokens = rest.split([' ', '\t']).filter(|token| !token.is_empty());
    let value = tokens
        .next()
        .ok_or_else(|| format!("`{name}` has no value"))?;
    let value: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number (value of `{name}`)"))?;
    if let Some(timestamp) = tokens.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("`{timestamp}` is not a timestamp in milliseconds"))?;
    }
    if let Some(extra) = tokens.next() {
        return Err(format!("unexpected `{extra}` after the value of `{name}`"));
    }
    Ok(Series {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `label="value",...}` (after the `{`; a trailing comma is allowed); returns the text after
/// the `}`.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        rest = skip_blanks(rest);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let length = name_length(rest, false);
        if length == 0 {
            return Err("expected a label name or `}`".to_owned());
        }
        let (label, after_label) = rest.split_at(length);
        rest = skip_blanks(after_label)
            .strip_prefix('=')
            .ok_or_else(|| format!("expected `=` after label `{label}`"))?;
        rest = skip_blanks(rest)
            .strip_prefix('"')
            .ok_or_else(|| format!("expected `\"` to open the value of label `{label}`"))?;
        let (value, after_value) = parse_label_value(rest, label)?;
        labels.insert(label.to_owned(), value);
        rest = skip_blanks(after_value);
        if let Some(after_comma) = rest.strip_prefix(',') {
            rest = after_comma;
        } else if !rest.starts_with('}') {
            return Err(format!("expected `,` or `}}` after label `{label}`"));
        }
    }
}

/// A label value up to its closing `"`, with the escapes `\\`, `\"` and `\n` decoded;
/// returns the value and the text after the quote.
fn parse_label_value<'a>(text: &'a str, label: &str) -> Result<(String, &'a str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[index + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    return Err(format!(
                        "invalid escape `\\{other}` in the value of label `{label}` \
                         (only \\\\, \\\" and \\n)"
                    ))
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(format!("the value of label `{label}` has no closing `\"`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(label, value)| (label.to_string(), value.to_string()))
            .collect()
    }

    fn only_series(text: &str) -> Series {
        let exposition = Exposition::parse(text).expect("parses");
        assert_eq!(exposition.series.len(), 1, "{:?}", exposition.series);
        exposition.series.into_iter().next().expect("one series")
    }

    fn error_of(text: &str) -> ParseError {
        Exposition::parse(text).expect_err("must not parse")
    }

    #[test]
    fn reads_a_typed_gauge_with_help_and_other_comments() {
        let text = "# HELP queue_depth Jobs waiting.\n# a free comment\n#\n# TYPE queue_depth gauge\nqueue_depth 17\n";
        let exposition = Exposition::parse(text).unwrap();
        assert_eq!(exposition.select("queue_depth", &labels(&[])), Ok(17.0));
        assert!(!exposition.is_cumulative("queue_depth"));
    }

    #[test]
    fn decodes_escapes_in_label_values() {
        let series = only_series(r#"m{path="C:\\dir",quote="say \"hi\"",lines="a\nb"} 1"#);
        assert_eq!(
            series.labels,
            labels(&[
                ("path", r"C:\dir"),
                ("quote", r#"say "hi""#),
                ("lines", "a\nb")
            ])
        );
    }

    #[test]
    fn label_values_may_hold_braces_commas_equals_and_unicode() {
        let series = only_series(r#"m{a="}{,=",b="größe ✓"} 2"#);
        assert_eq!(series.labels, labels(&[("a", "}{,="), ("b", "größe ✓")]));
        assert_eq!(series.value, 2.0);
    }

    #[test]
    fn blanks_trailing_comma_and_empty_braces_are_accepted() {
        assert_eq!(
            only_series("m { a = \"1\" ,\tb=\"2\", } 3").labels,
            labels(&[("a", "1"), ("b", "2")])
        );
        assert_eq!(only_series("m{} 4").value, 4.0);
        assert_eq!(only_series("  \tm\t5\t").value, 5.0);
    }

    #[test]
    fn timestamps_after_the_value_are_accepted_and_ignored() {
        assert_eq!(only_series("m 6 1700000000000").value, 6.0);
        assert_eq!(only_series("m{a=\"x\"} 7 -1").value, 7.0);
        assert_eq!(
            error_of("m 1 12.5").reason,
            "`12.5` is not a timestamp in milliseconds"
        );
    }

    #[test]
    fn special_and_scientific_values() {
        assert_eq!(only_series("m +Inf").value, f64::INFINITY);
        assert_eq!(only_series("m -Inf").value, f64::NEG_INFINITY);
        assert!(only_series("m NaN").value.is_nan());
        assert_eq!(only_series("m 1.5e3").value, 1500.0);
        assert_eq!(only_series("m -2E-2").value, -0.02);
        assert_eq!(only_series("m .5").value, 0.5);
    }

    #[test]
    fn crlf_line_ends_and_blank_lines_are_accepted() {
        let exposition = Exposition::parse("# TYPE m gauge\r\n\r\nm 1\r\n\n").unwrap();
        assert_eq!(exposition.select("m", &labels(&[])), Ok(1.0));
    }

    #[test]
    fn metric_names_may_contain_colons() {
        let series = only_series("job:http_requests:rate5m{job=\"api\"} 12");
        assert_eq!(series.name, "job:http_requests:rate5m");
    }

    #[test]
    fn histogram_series_are_selected_by_exact_name_and_read_as_counters() {
        let text = "\
# HELP latency_seconds Request latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{le=\"0.1\"} 3
latency_seconds_bucket{le=\"+Inf\"} 5
latency_seconds_sum 1.25
latency_seconds_count 5
";
        let exposition = Exposition::parse(text).unwrap();
        assert_eq!(
            exposition.select("latency_seconds_bucket", &labels(&[("le", "+Inf")])),
            Ok(5.0)
        );
        assert_eq!(
            exposition.select("latency_seconds_sum", &labels(&[])),
            Ok(1.25)
        );
        assert_eq!(
            exposition.select("latency_seconds_count", &labels(&[])),
            Ok(5.0)
        );
        assert_eq!(
            exposition.select("latency_seconds", &labels(&[])),
            Err(SelectError::Absent)
        );
        for name in [
            "latency_seconds_bucket",
            "latency_seconds_sum",
            "latency_seconds_count",
        ] {
            assert!(exposition.is_cumulative(name), "{name}");
        }
    }

    #[test]
    fn summary_quantiles_are_values_and_its_count_is_a_counter() {
        let text = "\
# TYPE rpc_seconds summary
rpc_seconds{quantile=\"0.99\"} 0.4
rpc_seconds_sum 10
rpc_seconds_count 40
";
        let exposition = Exposition::parse(text).unwrap();
        assert_eq!(
            exposition.select("rpc_seconds", &labels(&[("quantile", "0.99")])),
            Ok(0.4)
        );
        assert!(!exposition.is_cumulative("rpc_seconds"));
        assert!(exposition.is_cumulative("rpc_seconds_sum"));
        assert!(exposition.is_cumulative("rpc_seconds_count"));
        assert!(!exposition.is_cumulative("rpc_seconds_bucket"));
    }

    #[test]
    fn counter_types_by_exact_name_or_total_family() {
        let text = "\
# TYPE requests_total counter
requests_total 1
# TYPE jobs counter
jobs_total 2
# TYPE pool_count gauge
pool_count 3
# TYPE pool histogram
plain 4
# TYPE odd untyped
odd 5
";
        let exposition = Exposition::parse(text).unwrap();
        assert!(exposition.is_cumulative("requests_total"));
        assert!(exposition.is_cumulative("jobs_total"));
        assert!(!exposition.is_cumulative("pool_count"), "its own TYPE wins");
        assert!(!exposition.is_cumulative("plain"));
        assert!(!exposition.is_cumulative("odd"));
    }

    #[test]
    fn unknown_types_are_untyped() {
        let exposition = Exposition::parse("# TYPE m stateset\nm 1\n").unwrap();
        assert!(!exposition.is_cumulative("m"));
    }

    #[test]
    fn select_sums_the_series_that_carry_the_label_values() {
        let text = "\
http_requests{method=\"GET\",code=\"200\"} 10
http_requests{method=\"GET\",code=\"500\"} 1
http_requests{method=\"POST\",code=\"200\"} 4
other{method=\"GET\"} 100
";
        let exposition = Exposition::parse(text).unwrap();
        assert_eq!(
            exposition.select("http_requests", &labels(&[("method", "GET")])),
            Ok(11.0)
        );
        assert_eq!(
            exposition.select(
                "http_requests",
                &labels(&[("method", "GET"), ("code", "500")])
            ),
            Ok(1.0)
        );
        assert_eq!(exposition.select("http_requests", &labels(&[])), Ok(15.0));
    }

    #[test]
    fn an_empty_selected_value_matches_series_without_the_label() {
        let exposition = Exposition::parse("m{a=\"1\"} 1\nm{b=\"2\"} 2\n").unwrap();
        assert_eq!(exposition.select("m", &labels(&[("a", "")])), Ok(2.0));
    }

    #[test]
    fn no_match_names_a_few_series_that_exist() {
        let text = "m{a=\"1\"} 1\nm{a=\"2\"} 2\nm{a=\"3\"} 3\nm{a=\"4\"} 4\n";
        let exposition = Exposition::parse(text).unwrap();
        assert_eq!(
            exposition.select("m", &labels(&[("a", "9")])),
            Err(SelectError::NoMatch {
                series_count: 4,
                examples: vec![
                    "m{a=\"1\"}".to_owned(),
                    "m{a=\"2\"}".to_owned(),
                    "m{a=\"3\"}".to_owned()
                ],
            })
        );
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let cases = [
            ("ok 1\nm\n", 2, "`m` has no value"),
            ("m abc", 1, "`abc` is not a number (value of `m`)"),
            ("m 1 2 3", 1, "unexpected `3` after the value of `m`"),
            (
                "m{a=\"x} 1",
                1,
                "the value of label `a` has no closing `\"`",
            ),
            (
                "m{a=\"\\t\"} 1",
                1,
                "invalid escape `\\t` in the value of label `a` (only \\\\, \\\" and \\n)",
            ),
            (
                "m{a=1} 1",
                1,
                "expected `\"` to open the value of label `a`",
            ),
            ("m{a \"1\"} 1", 1, "expected `=` after label `a`"),
            (
                "m{a=\"1\" b=\"2\"} 1",
                1,
                "expected `,` or `}` after label `a`",
            ),
            ("m{1a=\"1\"} 1", 1, "expected a label name or `}`"),
            ("m{a:b=\"1\"} 1", 1, "expected `=` after label `a`"),
            ("9m 1", 1, "expected a metric name at `9m 1`"),
            ("\n\n# TYPE m\n", 3, "`# TYPE m` without a type"),
            ("# HELP\n", 1, "`# HELP` without a metric name"),
            (
                "# TYPE 0m gauge\n",
                1,
                "`0m` in `# TYPE` is not a metric name",
            ),
        ];
        for (text, line, reason) in cases {
            assert_eq!(
                error_of(text),
                ParseError {
                    line,
                    reason: reason.to_owned()
                },
                "{text:?}"
            );
        }
    }

    #[test]
    fn selector_display_escapes_values() {
        let selected = labels(&[("b", "x\"y\\z\nw"), ("a", "1")]);
        assert_eq!(
            Selector::new("m", &selected).to_string(),
            r#"m{a="1",b="x\"y\\z\nw"}"#
        );
        assert_eq!(Selector::new("m", &labels(&[])).to_string(), "m");
    }

    #[test]
    fn a_node_exporter_style_page_parses() {
        let text = "\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 2.5e+06
node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 12345.67
node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 2.4e+06
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.42
";
        let exposition = Exposition::parse(text).unwrap();
        assert_eq!(
            exposition.select("node_cpu_seconds_total", &labels(&[("mode", "idle")])),
            Ok(4.9e6)
        );
        assert!(exposition.is_cumulative("node_cpu_seconds_total"));
        assert_eq!(exposition.select("node_load1", &labels(&[])), Ok(0.42));
    }
}
