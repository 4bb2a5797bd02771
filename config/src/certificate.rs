//! Reading certificate files, shared by validation and the proxy so both see the same result.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::CertificateFiles;

/// A certificate chain and key read from disk, with the DNS names SNI can select it by.
#[derive(Debug)]
pub struct LoadedCertificate {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub private_key: PrivateKeyDer<'static>,
    /// Lower-cased DNS names from the leaf's subject alternative names.
    pub dns_names: Vec<String>,
}

/// Reads and parses a certificate chain and its key; the error says which file and why.
pub fn load_certificate(files: &CertificateFiles) -> Result<LoadedCertificate, String> {
    let chain = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| {
            format!(
                "cannot read certificate {}: {error}",
                files.certificate.display()
            )
        })?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "no PEM certificate found in {}",
            files.certificate.display()
        ));
    };
    let private_key = PrivateKeyDer::from_pem_file(&files.private_key).map_err(|error| {
        format!(
            "cannot read private key {}: {error}",
            files.private_key.display()
        )
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|error| {
        format!(
            "cannot parse certificate {}: {error}",
            files.certificate.display()
        )
    })?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                dns_names.push(dns.to_ascii_lowercase());
            }
        }
    }
    Ok(LoadedCertificate {
        chain,
        private_key,
        dns_names,
    })
}
