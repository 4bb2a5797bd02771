//! HTTPS listeners: certificates chosen by SNI, a default certificate, ALPN.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use scalegate_config::{CertificateFiles, ListenerTls};
use tokio_rustls::TlsAcceptor;

/// Picks the certificate for a handshake: exact SNI name first, then a wildcard name
/// (`*.example.com` covers exactly one label), then the default certificate, as ALB does.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return Some(key.clone());
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(key) = self.wildcard.get(parent) {
                return Some(key.clone());
            }
        }
        Some(self.default.clone())
    }
}

fn certified_key(files: &CertificateFiles) -> Result<(Arc<CertifiedKey>, Vec<String>), String> {
    let loaded = scalegate_config::load_certificate(files)?;
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&loaded.key).map_err(|error| {
            format!(
                "{}: unsupported private key: {error}",
                files.private_key.display()
            )
        })?;
    Ok((
        Arc::new(CertifiedKey::new(loaded.chain, signing_key)),
        loaded.dns_names,
    ))
}

/// Builds the TLS acceptor of an HTTPS listener from its certificate files, offering `h2`
/// by ALPN when HTTP/2 is enabled.
pub fn build_acceptor(tls: &ListenerTls, http2_enabled: bool) -> Result<TlsAcceptor, String> {
    let (default, _) = certified_key(&tls.default_certificate)?;
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    for files in &tls.certificates {
        let (key, names) = certified_key(files)?;
        for name in names {
            match name.strip_prefix("*.") {
                Some(parent) => wildcard
                    .entry(parent.to_string())
                    .or_insert_with(|| key.clone()),
                None => exact.entry(name).or_insert_with(|| key.clone()),
            };
        }
    }
    let resolver = SniResolver {
        exact,
        wildcard,
        default,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = if http2_enabled {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(TlsAcceptor::from(Arc::new(config)))
}
