//! Loading a listener's certificate files: one implementation shared by validation and the
//! proxy, so `scalegate check` accepts exactly what `scalegate run` can serve.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::CertificateFiles;

/// A certificate chain and key read from disk, ready to hand to rustls.
#[derive(Debug)]
pub struct LoadedCertificate {
    /// The chain as in the PEM file, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// The leaf's DNS subject alternative names, lower-cased, for SNI selection.
    pub dns_names: Vec<String>,
}

/// Which of the two files a certificate problem is in, so validation can point at that field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CertificateProblem {
    /// The certificate chain file is unreadable, empty or malformed.
    #[error("{0}")]
    Chain(String),
    /// The private key file is unreadable, holds no key or is malformed.
    #[error("{0}")]
    Key(String),
}

/// Reads and parses a PEM certificate chain and its private key.
///
/// The error says which file is wrong and why, in words fit for a config error.
pub fn load_certificate(files: &CertificateFiles) -> Result<LoadedCertificate, String> {
    load_certificate_files(files).map_err(|problem| problem.to_string())
}

/// [`load_certificate`] keeping which file failed.
pub(crate) fn load_certificate_files(
    files: &CertificateFiles,
) -> Result<LoadedCertificate, CertificateProblem> {
    let chain = read_chain(&files.certificate).map_err(CertificateProblem::Chain)?;
    let dns_names =
        leaf_dns_names(&chain[0], &files.certificate).map_err(CertificateProblem::Chain)?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key)
        .map_err(|error| {
            describe_pem_error(
                error,
                &files.private_key,
                "private key (PKCS#8, PKCS#1 or SEC1)",
            )
        })
        .map_err(CertificateProblem::Key)?;
    Ok(LoadedCertificate {
        chain,
        key,
        dns_names,
    })
}

/// Every certificate in a PEM file; at least one.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| describe_pem_error(error, path, "certificate"))?;
    if chain.is_empty() {
        return Err(describe_pem_error(
            pem::Error::NoItemsFound,
            path,
            "certificate",
        ));
    }
    Ok(chain)
}

/// The DNS names in the leaf certificate's subject alternative name, lower-cased.
fn leaf_dns_names(leaf: &CertificateDer<'_>, path: &Path) -> Result<Vec<String>, String> {
    let (_, certificate) = X509Certificate::from_der(leaf).map_err(|error| {
        format!(
            "{}: the first certificate is not valid X.509: {error}",
            path.display()
        )
    })?;
    let names = certificate.subject_alternative_name().map_err(|error| {
        format!(
            "{}: unreadable subject alternative name: {error}",
            path.display()
        )
    })?;
    Ok(names
        .map(|extension| {
            extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// A PEM error in words: what was looked for, in which file.
fn describe_pem_error(error: pem::Error, path: &Path, wanted: &str) -> String {
    match error {
        pem::Error::Io(io) => format!("cannot read {}: {io}", path.display()),
        pem::Error::NoItemsFound => format!("no PEM {wanted} found in {}", path.display()),
        other => format!("{}: malformed PEM: {other}", path.display()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Writes a self-signed certificate for `names` and its key into `dir`, named after `stem`.
    pub(crate) fn write_test_certificate(
        dir: &Path,
        stem: &str,
        names: &[&str],
    ) -> CertificateFiles {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("rcgen generates");
        let certificate = dir.join(format!("{stem}.crt"));
        let private_key = dir.join(format!("{stem}.key"));
        std::fs::write(&certificate, certified.cert.pem()).unwrap();
        std::fs::write(&private_key, certified.key_pair.serialize_pem()).unwrap();
        CertificateFiles {
            certificate,
            private_key,
        }
    }

    #[test]
    fn loads_chain_key_and_lowercased_dns_names() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_test_certificate(dir.path(), "site", &["Example.COM", "www.example.com"]);
        let loaded = load_certificate(&files).unwrap();
        assert_eq!(loaded.chain.len(), 1);
        assert_eq!(loaded.dns_names, ["example.com", "www.example.com"]);
    }

    #[test]
    fn missing_files_say_which_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertificateFiles {
            certificate: dir.path().join("none.crt"),
            private_key: PathBuf::from("none.key"),
        };
        let error = load_certificate_files(&files).unwrap_err();
        assert!(
            matches!(&error, CertificateProblem::Chain(reason) if reason.starts_with("cannot read ")),
            "{error}"
        );
    }

    #[test]
    fn key_file_without_a_key_is_reported_against_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = write_test_certificate(dir.path(), "site", &["example.com"]);
        files.private_key = files.certificate.clone();
        let error = load_certificate_files(&files).unwrap_err();
        assert!(
            matches!(&error, CertificateProblem::Key(reason) if reason.starts_with("no PEM private key")),
            "{error}"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = write_test_certificate(dir.path(), "site", &["example.com"]);
        std::fs::write(&files.certificate, "hello\n").unwrap();
        files.private_key = dir.path().join("site.key");
        let error = load_certificate(&files).unwrap_err();
        assert!(error.starts_with("no PEM certificate found in "), "{error}");
    }
}
