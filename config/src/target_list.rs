//! Targets files: the list a target group's `discovery.file` names, re-read when it changes.
//!
//! A targets file uses the same target forms as `targets:` in the config, and the same YAML
//! front end (JSON is YAML too), so its errors point at `file:line:column` exactly as config
//! errors do and a target that `check` accepts in the config is accepted here.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;

use crate::yaml::{parse_document, Position, PositionIndex};
use crate::{ConfigError, ConfigErrors, Target};

/// How a valid targets file looks, for errors about its overall shape.
const SHAPE_HINT: &str = "a targets file is a list of targets (`- 10.0.0.5:8080`, `- 10.0.0.5`, \
                          `- {address: 10.0.0.5, port: 8080}`) or a mapping `targets: [...]`; \
                          write `[]` for no targets";

/// A targets file (YAML or JSON): a list of targets in the same forms as `targets:`
/// (`"ip:port"`, `"ip"` with `default_port`, `{address, port}`), or a mapping
/// `{targets: [...]}`. Duplicates are dropped, keeping the first occurrence's place.
///
/// Every bad target is reported, each with `file:line:column`, so a user fixes the file in one
/// pass. An empty file is an error rather than "no targets": a file caught half-written must
/// not empty a target group (write `[]` for no targets).
pub fn parse_target_list(
    text: &str,
    file: &Path,
    default_port: u16,
) -> Result<Vec<SocketAddr>, ConfigErrors> {
    if text.trim().is_empty() {
        return Err(ConfigErrors::single(ConfigError::whole_file(
            file,
            format!("the file is empty; {SHAPE_HINT}"),
        )));
    }
    let document = parse_document(text).map_err(|error| {
        ConfigErrors::single(error_at(
            file,
            Some(error.position),
            error.path,
            error.reason,
        ))
    })?;
    let positions = &document.positions;
    let (items, list_path) = match document.value {
        Value::Array(items) => (items, String::new()),
        Value::Object(mut entries) => {
            if let Some(key) = entries.keys().find(|key| key.as_str() != "targets") {
                return Err(ConfigErrors::single(error_at(
                    file,
                    positions.locate_key(key),
                    key.clone(),
                    format!("unknown field `{key}`, expected `targets`"),
                )));
            }
            match entries.remove("targets") {
                Some(Value::Array(items)) => (items, "targets".to_string()),
                Some(_) => {
                    return Err(ConfigErrors::single(error_at(
                        file,
                        positions.locate("targets"),
                        "targets".to_string(),
                        format!("`targets` must be a list; {SHAPE_HINT}"),
                    )))
                }
                None => {
                    return Err(ConfigErrors::single(error_at(
                        file,
                        positions.locate(""),
                        String::new(),
                        format!("missing field `targets`; {SHAPE_HINT}"),
                    )))
                }
            }
        }
        _ => {
            return Err(ConfigErrors::single(error_at(
                file,
                positions.locate(""),
                String::new(),
                SHAPE_HINT.to_string(),
            )))
        }
    };
    targets_from_items(items, &list_path, positions, file, default_port)
}

/// Turns the list's items into addresses, collecting every item's error.
fn targets_from_items(
    items: Vec<Value>,
    list_path: &str,
    positions: &PositionIndex,
    file: &Path,
    default_port: u16,
) -> Result<Vec<SocketAddr>, ConfigErrors> {
    let mut targets = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let path = format!("{list_path}[{index}]");
        let parsed = serde_json::from_value::<Target>(item)
            .map_err(|_| {
                "a target is `\"10.0.0.5:8080\"`, `\"10.0.0.5\"` (uses the default port), \
                 `\"[::1]:8080\"` or `{address: 10.0.0.5, port: 8080}`"
                    .to_string()
            })
            .and_then(|target| target.socket_addr(default_port).map_err(file_reason));
        match parsed {
            Ok(address) => {
                if seen.insert(address) {
                    targets.push(address);
                }
            }
            Err(reason) => errors.push(error_at(file, positions.locate(&path), path, reason)),
        }
    }
    if errors.is_empty() {
        Ok(targets)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Rewords `Target::socket_addr`'s hint about host names, which in a targets file (itself a
/// discovery source) should point at `dns_name` instead.
fn file_reason(reason: String) -> String {
    match reason.split_once("; host names arrive with DNS discovery") {
        Some((head, _)) => {
            format!("{head}; a targets file lists IP addresses (watch host names with `dns_name`)")
        }
        None => reason,
    }
}

/// A config error at `position` (or the whole file when there is none).
fn error_at(file: &Path, position: Option<Position>, path: String, reason: String) -> ConfigError {
    let (line, column) = position.map(|p| (p.line, p.column)).unwrap_or((0, 0));
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        path,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<SocketAddr>, ConfigErrors> {
        parse_target_list(text, Path::new("targets.yaml"), 8080)
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn accepts_every_target_form_in_a_yaml_list() {
        let text = "- 10.0.0.1:80\n- 10.0.0.2\n- \"[::1]:81\"\n- {address: 10.0.0.3, port: 82}\n\
                    - {address: localhost}\n";
        assert_eq!(
            parse(text).unwrap(),
            addrs(&[
                "10.0.0.1:80",
                "10.0.0.2:8080",
                "[::1]:81",
                "10.0.0.3:82",
                "127.0.0.1:8080"
            ])
        );
    }

    #[test]
    fn accepts_json_and_a_targets_mapping() {
        assert_eq!(
            parse(r#"["10.0.0.1:80", {"address": "10.0.0.2", "port": 81}]"#).unwrap(),
            addrs(&["10.0.0.1:80", "10.0.0.2:81"])
        );
        assert_eq!(
            parse("targets:\n  - 10.0.0.1\n").unwrap(),
            addrs(&["10.0.0.1:8080"])
        );
        assert_eq!(
            parse(r#"{"targets": ["10.0.0.1:1"]}"#).unwrap(),
            addrs(&["10.0.0.1:1"])
        );
        assert_eq!(parse("[]").unwrap(), Vec::<SocketAddr>::new());
        assert_eq!(parse("targets: []").unwrap(), Vec::<SocketAddr>::new());
    }

    #[test]
    fn drops_duplicates_keeping_the_first_place() {
        let text = "- 10.0.0.2:80\n- 10.0.0.1:80\n- {address: 10.0.0.2, port: 80}\n";
        assert_eq!(parse(text).unwrap(), addrs(&["10.0.0.2:80", "10.0.0.1:80"]));
    }

    #[test]
    fn reports_every_bad_target_with_its_position() {
        let text = "targets:\n  - 10.0.0.1\n  - web:80\n  - {address: 10.0.0.2, prt: 3}\n  - 7\n";
        let errors = parse(text).unwrap_err().0;
        let places: Vec<(usize, usize, &str)> = errors
            .iter()
            .map(|e| (e.line, e.column, e.path.as_str()))
            .collect();
        assert_eq!(
            places,
            [
                (3, 5, "targets[1]"),
                (4, 6, "targets[2]"),
                (5, 5, "targets[3]")
            ]
        );
        assert!(
            errors[0].reason.contains("`web` is not an IP address")
                && errors[0].reason.contains("dns_name"),
            "{}",
            errors[0].reason
        );
        assert!(errors[1].reason.starts_with("a target is"));
        assert_eq!(
            errors[0].to_string(),
            format!("targets.yaml:3:5: targets[1]: {}", errors[0].reason)
        );
    }

    #[test]
    fn a_port_of_zero_needs_a_real_default() {
        let errors = parse_target_list("- 10.0.0.1", Path::new("t.yaml"), 0)
            .unwrap_err()
            .0;
        assert_eq!((errors[0].line, errors[0].column), (1, 3));
        assert!(errors[0].reason.contains("not 0"));
    }

    #[test]
    fn rejects_the_wrong_shape() {
        let error = &parse("").unwrap_err().0[0];
        assert_eq!(error.line, 0);
        assert!(error.reason.contains("empty") && error.reason.contains("`[]`"));
        let error = &parse("# only a comment\n").unwrap_err().0[0];
        assert!(error.reason.starts_with("a targets file is"), "{error}");
        let error = &parse("10.0.0.1:80\n").unwrap_err().0[0];
        assert!(error.reason.starts_with("a targets file is"), "{error}");
        let error = &parse("targets:\n  x: 1\nother: 2\n").unwrap_err().0[0];
        assert_eq!((error.line, error.path.as_str()), (3, "other"));
        let error = &parse("targets: 10.0.0.1\n").unwrap_err().0[0];
        assert_eq!((error.line, error.path.as_str()), (1, "targets"));
        assert!(error.reason.contains("must be a list"));
        let error = &parse("{}").unwrap_err().0[0];
        assert!(error.reason.contains("missing field `targets`"));
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let error = &parse("- 10.0.0.1\n- [10.0.0.2\n").unwrap_err().0[0];
        assert!(error.reason.starts_with("invalid YAML"), "{error}");
        assert!(error.line >= 2, "{error}");
    }
}
