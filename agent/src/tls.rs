//! TLS for the agent's two connections (`mqtts://` to the broker, `https://` to the
//! server): which certificates are trusted. A pinned CA (the config's `ca_file` or inline
//! `server_ca_pem`) replaces the system's roots; without one the system's roots apply.
//! Connecting and verifying are rumqttc's and reqwest's.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// The certificates of a PEM text: at least one, or an error saying why not.
pub fn parse_pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// A rustls client configuration trusting `ca_pem` alone, or the system's roots.
pub fn client_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in parse_pem_certs(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("pinned CA refused: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no pinned CA and no system root certificates".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The HTTP client for media: trusting `ca_pem` alone when given.
pub fn http_client(ca_pem: Option<&str>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(300));
    if let Some(pem) = ca_pem {
        builder = builder.tls_built_in_root_certs(false);
        for cert in parse_pem_certs(pem)? {
            let cert = reqwest::Certificate::from_der(&cert)
                .map_err(|e| format!("pinned CA refused: {e}"))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_is_checked() {
        assert!(parse_pem_certs("")
            .unwrap_err()
            .contains("no PEM certificate"));
        assert!(parse_pem_certs("hello").is_err());
        let bad = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(parse_pem_certs(bad).is_err());
        assert!(client_config(Some("nothing")).is_err());
    }
}
