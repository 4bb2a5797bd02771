//! scalegate's configuration: one YAML file, typed with serde, validated with precise errors.
//!
//! Loading is two steps so that a reload can never half-apply: [`load`] parses and validates
//! everything (including reading certificates), and only a fully valid [`Config`] is handed to
//! the running parts. Every error carries file, line, column, the field's path and the reason.
#![forbid(unsafe_code)]

mod certificate;
pub mod cloud_map;
mod error;
mod model;
mod reference;
mod target_list;
mod validate;
mod yaml;

use std::path::{Path, PathBuf};

pub use certificate::{load_certificate, LoadedCertificate};
pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use reference::{
    config_reference_markdown, json_schema_text, ANNOTATED_EXAMPLE, REGENERATE_COMMAND,
};
pub use target_list::parse_target_list;

/// Reads, parses and validates the config file at `path`.
///
/// Relative paths (certificates, access log, discovery files) are resolved against the file's
/// directory, so the returned config can be used from any working directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read(path)?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&text, path, &base_dir)
}

/// Parses and validates config text; `file` names it in errors and `base_dir` anchors relative
/// paths.
pub fn parse(text: &str, file: &Path, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let (mut config, positions) =
        validate::deserialize::<Config>(text, file, "start from examples/scalegate.yaml")?;
    validate::resolve_paths(&mut config, base_dir);
    validate::validate(&config, positions, file)?;
    Ok(config)
}

/// Reads another YAML file of scalegate's (a load-test scenario) into `T` with the config's
/// YAML handling and error positions: the same dialect and the same `file:line:column: field:
/// reason` messages. `empty_hint` says what an empty file should start from.
pub fn load_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    empty_hint: &str,
) -> Result<T, ConfigErrors> {
    let text = read(path)?;
    validate::deserialize::<T>(&text, path, empty_hint).map(|(value, _)| value)
}

fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors::single(ConfigError::whole_file(
            path,
            format!("cannot read file: {error}"),
        ))
    })
}

/// The JSON Schema of the config file, for editor completion (`scalegate schema`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("schema serializes")
}

/// The embedded default config: the bundled example that `scalegate run` uses without `-c`.
pub const EXAMPLE: &str = include_str!("../../examples/scalegate.yaml");
