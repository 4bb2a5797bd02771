//! Deserialization with field paths, and semantic validation against ALB's rules.
//!
//! PLACEHOLDER: minimal version; the full ALB validation lands next.

use std::path::Path;

use crate::{Config, ConfigError, ConfigErrors};

/// Parses YAML into the typed model, reporting the failing field's path and position.
pub(crate) fn deserialize(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        ConfigErrors::single(ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            path,
            reason: inner.to_string(),
        })
    })
}

/// Makes certificate paths absolute against the config file's directory.
pub(crate) fn resolve_paths(config: &mut Config, base_dir: &Path) {
    for listener in &mut config.listeners {
        if let Some(tls) = &mut listener.tls {
            for files in
                std::iter::once(&mut tls.default_certificate).chain(tls.certificates.iter_mut())
            {
                if files.certificate.is_relative() {
                    files.certificate = base_dir.join(&files.certificate);
                }
                if files.private_key.is_relative() {
                    files.private_key = base_dir.join(&files.private_key);
                }
            }
        }
    }
}

/// Checks everything serde cannot: ranges, references, uniqueness, ALB quotas.
pub(crate) fn validate(_config: &Config, _text: &str, _file: &Path) -> Result<(), ConfigErrors> {
    Ok(())
}
