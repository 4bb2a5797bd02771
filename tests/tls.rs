//! HTTPS listeners (spec §1.1): certificate chosen by SNI, the default certificate for unknown
//! names, ALPN h2.

mod common;

use std::net::SocketAddr;

use common::*;

struct Pki {
    /// (name, certificate PEM, certificate DER) for default, a and b.
    certs: Vec<(String, String, Vec<u8>)>,
}

/// Writes three self-signed certificates (each its own CA) into `dir`.
fn write_certificates(dir: &std::path::Path) -> Pki {
    let certs = ["default.test", "a.test", "b.test"]
        .into_iter()
        .map(|name| {
            let (pem, der) = write_certificate(dir, name, name);
            (name.to_string(), pem, der)
        })
        .collect();
    Pki { certs }
}

fn config() -> String {
    config_with("default.test", &["a.test", "b.test"])
}

/// An HTTPS listener answering "secure", with `<default>.crt/.key` as its default certificate
/// and `<name>.crt/.key` for each of `others`.
fn config_with(default: &str, others: &[&str]) -> String {
    let mut certificates = String::new();
    if !others.is_empty() {
        certificates.push_str("      certificates:\n");
        for name in others {
            certificates.push_str(&format!(
                "        - certificate: {name}.crt\n          private_key: {name}.key\n"
            ));
        }
    }
    format!(
        r#"{ADMIN}listeners:
  - name: secure
    protocol: HTTPS
    address: 127.0.0.1:0
    tls:
      default_certificate:
        certificate: {default}.crt
        private_key: {default}.key
{certificates}    default_action:
      fixed_response:
        status_code: 200
        content_type: text/plain
        message_body: "secure"
"#
    )
}

fn start() -> (Scalegate, Pki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_certificates(dir.path());
    let gate = Scalegate::start_in(dir, &config());
    (gate, pki)
}

/// Connects as `name` trusting only `trusted`; returns the peer certificate DER, the HTTP
/// version and the body.
async fn fetch(
    address: SocketAddr,
    name: &str,
    trusted: Option<&str>,
) -> (Vec<u8>, reqwest::Version, String) {
    https_fetch(address, name, trusted)
        .await
        .unwrap_or_else(|error| panic!("https://{name}: {error:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_certificates_and_alpn_negotiates_h2() {
    let (gate, pki) = start();
    let address = gate.listener_address("secure");
    let [default, a, b] = [&pki.certs[0], &pki.certs[1], &pki.certs[2]];

    // Each SNI name gets its own certificate, verified against only that CA.
    for cert in [a, b, default] {
        let (der, version, body) = fetch(address, &cert.0, Some(&cert.1)).await;
        assert_eq!(der, cert.2, "{} got the wrong certificate", cert.0);
        assert_eq!(version, reqwest::Version::HTTP_2, "ALPN h2 for {}", cert.0);
        assert_eq!(body, "secure");
    }

    // An unknown name gets the default certificate.
    let (der, _, _) = fetch(address, "unknown.test", None).await;
    assert_eq!(
        der, default.2,
        "an unknown SNI name gets the default certificate"
    );
}

#[test]
fn curl_verifies_sni_certificate_and_speaks_h2() {
    require_tool("curl");
    let (gate, _pki) = start();
    let address = gate.listener_address("secure");
    let output = std::process::Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--http2", "-w", " %{http_version}"])
        .arg("--cacert")
        .arg(gate.dir().join("b.test.crt"))
        .arg("--resolve")
        .arg(format!("b.test:{}:127.0.0.1", address.port()))
        .arg(format!("https://b.test:{}/", address.port()))
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "secure 2");

    // a.test presented with b's CA only must fail verification: SNI really picks certificates.
    let output = std::process::Command::new("curl")
        .args(["-sS", "--noproxy", "*"])
        .arg("--cacert")
        .arg(gate.dir().join("b.test.crt"))
        .arg("--resolve")
        .arg(format!("a.test:{}:127.0.0.1", address.port()))
        .arg(format!("https://a.test:{}/", address.port()))
        .output()
        .expect("curl runs");
    assert!(
        !output.status.success(),
        "a.test must not verify with b's CA"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_switches_the_listener_to_a_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (pem_a, der_a) = write_certificate(dir.path(), "site.test", "cert-a");
    let gate = Scalegate::start_in(dir, &config_with("cert-a", &[]));
    let address = gate.listener_address("secure");
    let (der, _, body) = fetch(address, "site.test", Some(&pem_a)).await;
    assert_eq!(der, der_a);
    assert_eq!(body, "secure");

    // Certificate B in a new file; the config now points at it.
    let (pem_b, der_b) = write_certificate(gate.dir(), "site.test", "cert-b");
    gate.rewrite_config(&config_with("cert-b", &[]));
    gate.sighup();
    let seen = std::sync::Mutex::new(Vec::new());
    let switched = poll_until_async(std::time::Duration::from_secs(10), || async {
        let der = https_fetch(address, "site.test", None)
            .await
            .map(|(der, _, _)| der)
            .unwrap_or_default();
        *seen.lock().unwrap() = der;
        *seen.lock().unwrap() == der_b
    })
    .await;
    assert!(
        switched,
        "clients never saw certificate B (still A: {}); log:\n{}",
        *seen.lock().unwrap() == der_a,
        gate.log_text()
    );
    // B verifies against its own CA; the listener stayed on the same port.
    let (der, _, body) = fetch(address, "site.test", Some(&pem_b)).await;
    assert_eq!(der, der_b);
    assert_eq!(body, "secure");
    assert_eq!(gate.listener_address("secure"), address);
}
