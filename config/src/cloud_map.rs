//! Cloud Map's limits on an instance's attributes, in one place: config validation checks the
//! instances a config declares and the registry checks those the admin API registers, with the
//! same rules and words.

use std::collections::BTreeMap;

/// The attribute that registers an instance healthy or unhealthy.
pub const AWS_INIT_HEALTH_STATUS: &str = "AWS_INIT_HEALTH_STATUS";
/// Attributes Cloud Map derives from the instance's address and port, with the field each
/// mirrors.
pub const DERIVED_ATTRIBUTES: [(&str, &str); 3] = [
    ("AWS_INSTANCE_IPV4", "address"),
    ("AWS_INSTANCE_IPV6", "address"),
    ("AWS_INSTANCE_PORT", "port"),
];
/// Custom attributes per instance.
pub const MAX_CUSTOM_ATTRIBUTES: usize = 30;
/// Characters in an attribute key.
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 255;
/// Characters in an attribute value.
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 1024;
/// Characters of all keys and values of one instance together.
pub const MAX_ATTRIBUTES_TOTAL_CHARS: usize = 5000;

/// One broken rule: the key it concerns (`None` for the attributes as a whole) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeProblem {
    /// The attribute key, or `None` for a limit on all attributes together.
    pub key: Option<String>,
    /// What is wrong, in a sentence.
    pub reason: String,
}

/// Every way `attributes` break Cloud Map's limits: count of custom attributes (the init-health
/// and derived ones are not custom), key and value lengths, the total, and the value of
/// `AWS_INIT_HEALTH_STATUS`. Derived attributes are not judged here: the config rejects them
/// and the API accepts them when they agree with the instance.
pub fn attribute_problems(attributes: &BTreeMap<String, String>) -> Vec<AttributeProblem> {
    let mut problems = Vec::new();
    let is_custom = |key: &str| {
        key != AWS_INIT_HEALTH_STATUS && !DERIVED_ATTRIBUTES.iter().any(|(k, _)| *k == key)
    };
    let custom = attributes.keys().filter(|key| is_custom(key)).count();
    if custom > MAX_CUSTOM_ATTRIBUTES {
        problems.push(AttributeProblem {
            key: None,
            reason: format!(
                "{custom} custom attributes; at most {MAX_CUSTOM_ATTRIBUTES} are allowed \
                 (Cloud Map's limit)"
            ),
        });
    }
    let total: usize = attributes
        .iter()
        .map(|(key, value)| key.chars().count() + value.chars().count())
        .sum();
    if total > MAX_ATTRIBUTES_TOTAL_CHARS {
        problems.push(AttributeProblem {
            key: None,
            reason: format!(
                "keys and values add up to {total} characters; at most \
                 {MAX_ATTRIBUTES_TOTAL_CHARS} are allowed (Cloud Map's limit)"
            ),
        });
    }
    for (key, value) in attributes {
        let mut report = |reason: String| {
            problems.push(AttributeProblem {
                key: Some(key.clone()),
                reason,
            })
        };
        let key_chars = key.chars().count();
        if key.is_empty() {
            report("an attribute key must not be empty".to_string());
        } else if key_chars > MAX_ATTRIBUTE_KEY_CHARS {
            report(format!(
                "the key is {key_chars} characters long; at most {MAX_ATTRIBUTE_KEY_CHARS} are \
                 allowed"
            ));
        }
        let value_chars = value.chars().count();
        if value_chars > MAX_ATTRIBUTE_VALUE_CHARS {
            report(format!(
                "the value is {value_chars} characters long; at most \
                 {MAX_ATTRIBUTE_VALUE_CHARS} are allowed"
            ));
        }
        if key == AWS_INIT_HEALTH_STATUS && !matches!(value.as_str(), "HEALTHY" | "UNHEALTHY") {
            report(format!("must be `HEALTHY` or `UNHEALTHY`, not `{value}`"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn within_limits_has_no_problem() {
        let ok = attributes(&[("version", "2"), (AWS_INIT_HEALTH_STATUS, "UNHEALTHY")]);
        assert!(attribute_problems(&ok).is_empty());
    }

    #[test]
    fn each_limit_is_reported() {
        let many: BTreeMap<String, String> =
            (0..31).map(|n| (format!("k{n}"), String::new())).collect();
        assert_eq!(attribute_problems(&many).len(), 1);
        let long_key = "k".repeat(256);
        let problems = attribute_problems(&attributes(&[
            (&long_key, ""),
            ("v", &"x".repeat(1025)),
            ("", ""),
            (AWS_INIT_HEALTH_STATUS, "MAYBE"),
        ]));
        let keys: Vec<Option<&str>> = problems.iter().map(|p| p.key.as_deref()).collect();
        assert_eq!(
            keys,
            [
                Some(""),
                Some(AWS_INIT_HEALTH_STATUS),
                Some(long_key.as_str()),
                Some("v")
            ]
        );
        let total: BTreeMap<String, String> = (0..6)
            .map(|n| (format!("k{n}"), "x".repeat(1000)))
            .collect();
        assert!(attribute_problems(&total)[0].reason.contains("add up to"));
    }
}
