//! The answer of Prometheus's instant-query API (`GET /api/v1/query`), read as one number.
//!
//! A policy's query must return a single sample: a `scalar`, or a `vector` with exactly one
//! element. Values arrive as `[unix_time, "string number"]`, where the string may be `NaN`,
//! `+Inf` or `-Inf`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::exposition::Selector;

/// Why a query answer holds no usable number (the caller adds the server and the query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnswerError {
    /// Prometheus answered `{"status":"error",...}`.
    Refused { error_type: String, error: String },
    /// An empty vector.
    NoSeries,
    /// A vector with several elements.
    SeveralSeries {
        count: usize,
        /// The first few series, as `name{label="value"}`.
        examples: Vec<String>,
    },
    /// Not the API's JSON, or a result type other than scalar and vector.
    Unexpected(String),
}

/// The envelope every API answer has.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Scalar(SampleValue),
    Vector(Vec<VectorElement>),
    Matrix(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

/// `[unix_time, "value"]`; the time is the query's evaluation time, not needed here.
#[derive(Deserialize)]
struct SampleValue(serde::de::IgnoredAny, String);

#[derive(Deserialize)]
struct VectorElement {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// Absent for a native histogram sample, which has `histogram` instead.
    value: Option<SampleValue>,
}

/// How many series a "several series" message shows.
const EXAMPLES_SHOWN: usize = 3;

/// The one number in an answer body. The value may be NaN or infinite; the caller decides.
pub(crate) fn parse_answer(body: &[u8]) -> Result<f64, AnswerError> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|error| AnswerError::Unexpected(format!("not the query API's JSON ({error})")))?;
    if envelope.status != "success" {
        return Err(AnswerError::Refused {
            error_type: envelope.error_type.unwrap_or_else(|| "unknown".to_owned()),
            error: envelope
                .error
                .unwrap_or_else(|| format!("status `{}` without an error", envelope.status)),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| AnswerError::Unexpected("`success` without `data`".to_owned()))?;
    let sample = match data {
        Data::Scalar(sample) => sample,
        Data::Vector(mut elements) => match elements.len() {
            0 => return Err(AnswerError::NoSeries),
            1 => {
                let element = elements.remove(0);
                element.value.ok_or_else(|| {
                    AnswerError::Unexpected(
                        "the sample is a native histogram, not a number".to_owned(),
                    )
                })?
            }
            count => {
                return Err(AnswerError::SeveralSeries {
                    count,
                    examples: elements
                        .iter()
                        .take(EXAMPLES_SHOWN)
                        .map(|element| series_name(&element.metric))
                        .collect(),
                })
            }
        },
        Data::Matrix(_) => {
            return Err(AnswerError::Unexpected(
                "the query returned a range vector (matrix); remove the `[range]` or wrap it, \
                 e.g. in `rate(...)`"
                    .to_owned(),
            ))
        }
        Data::String(_) => {
            return Err(AnswerError::Unexpected(
                "the query returned a string, not a number".to_owned(),
            ))
        }
    };
    sample
        .1
        .parse()
        .map_err(|_| AnswerError::Unexpected(format!("`{}` is not a number", sample.1)))
}

/// A vector element's labels as `name{label="value"}` (`{label="value"}` without `__name__`).
fn series_name(metric: &BTreeMap<String, String>) -> String {
    let mut labels = metric.clone();
    let name = labels.remove("__name__").unwrap_or_default();
    if name.is_empty() && labels.is_empty() {
        return "{}".to_owned();
    }
    Selector::new(&name, &labels).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Result<f64, AnswerError> {
        parse_answer(json.as_bytes())
    }

    #[test]
    fn a_scalar_is_its_value() {
        assert_eq!(
            answer(
                r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"3"]}}"#
            ),
            Ok(3.0)
        );
    }

    #[test]
    fn a_one_element_vector_is_its_value() {
        let json = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"job":"api"},"value":[1700000000,"42.5"]}]},"warnings":["w"]}"#;
        assert_eq!(answer(json), Ok(42.5));
    }

    #[test]
    fn special_values_are_numbers_for_the_caller_to_judge() {
        let json = |value: &str| {
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}}}}"#
            )
        };
        assert!(answer(&json("NaN")).unwrap().is_nan());
        assert_eq!(answer(&json("+Inf")), Ok(f64::INFINITY));
        assert_eq!(answer(&json("-Inf")), Ok(f64::NEG_INFINITY));
        assert_eq!(
            answer(&json("lots")),
            Err(AnswerError::Unexpected("`lots` is not a number".to_owned()))
        );
    }

    #[test]
    fn an_empty_vector_has_no_series() {
        assert_eq!(
            answer(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
            Err(AnswerError::NoSeries)
        );
    }

    #[test]
    fn several_series_are_counted_and_named() {
        let json = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"a"},"value":[1,"1"]},
            {"metric":{"job":"b"},"value":[1,"1"]},
            {"metric":{},"value":[1,"1"]},
            {"metric":{"job":"d"},"value":[1,"1"]}]}}"#;
        assert_eq!(
            answer(json),
            Err(AnswerError::SeveralSeries {
                count: 4,
                examples: vec![
                    "up{job=\"a\"}".to_owned(),
                    "{job=\"b\"}".to_owned(),
                    "{}".to_owned()
                ],
            })
        );
    }

    #[test]
    fn an_error_answer_is_a_refusal() {
        let json = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#;
        assert_eq!(
            answer(json),
            Err(AnswerError::Refused {
                error_type: "bad_data".to_owned(),
                error: "1:5: parse error: unclosed left parenthesis".to_owned(),
            })
        );
    }

    #[test]
    fn matrices_strings_histograms_and_other_json_are_unexpected() {
        let unexpected = |json: &str| match answer(json) {
            Err(AnswerError::Unexpected(reason)) => reason,
            other => panic!("{json}: {other:?}"),
        };
        assert!(
            unexpected(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#)
                .contains("range vector")
        );
        assert!(unexpected(
            r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#
        )
        .contains("string"));
        assert!(unexpected(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"1"}]}]}}"#
        )
        .contains("native histogram"));
        assert!(unexpected("<html>not json</html>").contains("not the query API's JSON"));
        assert!(unexpected(r#"{"status":"success"}"#).contains("without `data`"));
    }
}
